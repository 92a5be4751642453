/*
 * parley.js: a small client for the parley chat protocol, version 1.1
 * (JSON over WebSocket), with promise-based requests, events and
 * automatic reconnection. No dependencies; works in any page that has a
 * WebSocket global and can be copied into third-party pages as it is.
 *
 *   import { Parley } from './parley.js';
 *   const chat = new Parley(new URL('/ws', location.href));
 *   chat.on('welcome', (m) => chat.request('join_room', { roomName: 'general' }));
 *   chat.on('new_message', (m) => console.log(m.sender, m.message));
 *   chat.connect();
 *
 * new Parley(url, options)
 *   url: ws:, wss:, http: or https: URL (string or URL); http(s) is
 *   turned into ws(s). options (all optional):
 *     timeout    ms to wait for a reply, and for welcome after connecting
 *                (10000)
 *     minDelay   first reconnection delay in ms (500); doubles per failure
 *     maxDelay   longest reconnection delay in ms (15000)
 *     heartbeat  ms between client pings while connected, 0 for none
 *                (25000); an unanswered ping drops the connection
 *     WebSocket  the WebSocket constructor to use (globalThis.WebSocket)
 *
 * chat.connect()       opens the connection; reconnects until close()
 * chat.close()         closes it for good (pending requests are rejected)
 * chat.reconnectNow()  skips the wait when a reconnection is scheduled
 * chat.state           'idle', 'connecting' (until welcome), 'open',
 *                      'waiting' (a reconnection is scheduled) or 'closed'
 * chat.welcome         the last welcome message (or null)
 *
 * chat.request(type, fields, { timeout, sync }) -> Promise
 *   Sends { type, id, ...fields } (fields.id, when given, is the id).
 *   Resolves with the first reply carrying that id; rejects with the
 *   error object ({ type: 'error', code, message, id }) when the reply
 *   is an error, or with { type: 'error', code: 'timeout' } or
 *   { type: 'error', code: 'disconnected' } when none comes. A plain
 *   send_message has no reply (only the new_message broadcast), so with
 *   sync (the default for send_message) a ping follows it: the server
 *   answers in order, so its pong resolves the request with null when
 *   nothing else answered first.
 * chat.send(type, fields) -> boolean
 *   Fire and forget, no id; false when not connected.
 *
 * Protocol 1.1 (see PROTOCOL.md, "Version 1.1 additions"):
 * chat.features        Set of the features the server's welcome names
 *                      ('history', 'resume', 'accounts', 'direct',
 *                      'typing', 'presence_delta')
 * chat.session         the secret for resuming this connection's session
 *                      (from welcome or resumed); kept in memory only
 * chat.resume() -> Promise
 *   On a new connection, takes over the session of the connection before
 *   it: sends { type: 'resume', session } and resolves with the resumed
 *   reply ({ username, account, roles, session, rooms: [{ roomName,
 *   seq }] }); rejects (code 'resume_failed', or 'unsupported' when there
 *   is nothing to resume) and the connection goes on as a new guest.
 *   A connection closed by the server with code 4001 (the session was
 *   resumed elsewhere) is not reconnected: state becomes 'closed', code
 *   4001.
 * chat.historySince(roomName, after, { limit, pages }) -> Promise of
 *   { messages, gap }: every message with seq > after, oldest first,
 *   fetched page by page with history's 'after'; gap is true when the
 *   oldest one returned is not after + 1 (the server no longer has some).
 * The 1.1 messages, sent with request() or send():
 *   register/login { username, password } -> registered/logged_in
 *   logout -> username_set
 *   direct_message { username, message }: both ends get direct_message
 *     { from, to, message, ts }; unknown user: error user_not_found
 *   typing { roomName } (send, no reply): the others get typing
 *     { roomName, username }; the server passes one per 3 s
 *   set_topic { roomName, topic } -> topic_changed { roomName, topic,
 *     username }
 *   delete_message { roomName, seq } -> message_deleted { roomName, seq,
 *     username }
 *   delete_room { roomName } -> kicked, then room_deleted { roomName }
 *   /op, /deop <user> (commands) -> role_changed { roomName, username,
 *     role }; /ban, /unban, /mute, /unmute <user> [minutes]
 *   The broadcasts carry no id: request(..., { sync: true }) resolves
 *   with null once the server has dealt with the request, or rejects
 *   with its error.
 *
 * chat.on(type, fn) -> function that removes the listener
 * chat.off(type, fn)
 *   type is a server message type ('welcome', 'new_message', 'error',
 *   ...; fn gets the message, replies included), 'message' (every server
 *   message), or 'state' (fn gets { state, attempt, delay, code } when
 *   chat.state changes; delay is the wait before the next attempt).
 */

const FAIL = (code, message) => ({ type: 'error', code, message });

export class Parley {
	#ws = null;
	#listeners = new Map();
	#pending = new Map(); /* id -> function(reply or null) */
	#nextId = 0;
	#attempt = 0;
	#timer = null; /* reconnection or welcome deadline */
	#beat = null;
	#held = null; /* the session of the connection before this one */

	constructor(url, options = {}) {
		const u = new URL(url, globalThis.location?.href);
		if (u.protocol === 'http:') u.protocol = 'ws:';
		if (u.protocol === 'https:') u.protocol = 'wss:';
		this.url = u.href;
		this.timeout = options.timeout ?? 10000;
		this.minDelay = options.minDelay ?? 500;
		this.maxDelay = options.maxDelay ?? 15000;
		this.heartbeat = options.heartbeat ?? 25000;
		this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
		this.state = 'idle';
		this.welcome = null;
		this.features = new Set();
		this.session = null;
	}

	resume() {
		const session = this.#held;
		this.#held = null;
		if (!session || !this.features.has('resume'))
			return Promise.reject(FAIL('unsupported', 'nothing to resume'));
		return this.request('resume', { session }).catch((e) => {
			/* Lost on the way: the next connection tries it again. */
			if (e.code === 'disconnected') this.session = session;
			throw e;
		});
	}

	async historySince(roomName, after, { limit = 100, pages = 100 } = {}) {
		const messages = [];
		let gap = false;
		let since = after;
		for (let page = 0; page < pages; page++) {
			const reply = await this.request('history',
			    { roomName, after: since, limit });
			const got = (Array.isArray(reply?.messages) ? reply.messages : [])
			    .filter((m) => typeof m.seq === 'number' && m.seq > since)
			    .sort((a, b) => a.seq - b.seq);
			if (got.length === 0) break;
			if (messages.length === 0 && got[0].seq > after + 1) gap = true;
			messages.push(...got);
			since = got[got.length - 1].seq;
			if (got.length < limit) break;
		}
		return { messages, gap };
	}

	on(type, fn) {
		if (!this.#listeners.has(type)) this.#listeners.set(type, new Set());
		this.#listeners.get(type).add(fn);
		return () => this.off(type, fn);
	}

	off(type, fn) {
		this.#listeners.get(type)?.delete(fn);
	}

	#emit(type, arg) {
		for (const fn of [...(this.#listeners.get(type) ?? [])]) {
			try {
				fn(arg);
			} catch (e) {
				/* One broken listener must not starve the others. */
				setTimeout(() => { throw e; });
			}
		}
	}

	#setState(state, extra = {}) {
		this.state = state;
		this.#emit('state', { state, attempt: this.#attempt, ...extra });
	}

	connect() {
		if (this.#ws || this.state === 'connecting') return;
		clearTimeout(this.#timer);
		this.#setState('connecting');
		let ws;
		try {
			ws = new this.WebSocket(this.url);
		} catch (e) {
			this.#lost(1006);
			return;
		}
		this.#ws = ws;
		ws.onmessage = (ev) => this.#receive(ev.data);
		ws.onclose = (ev) => this.#lost(ev.code);
		ws.onerror = () => {}; /* onclose follows and does the work */
		/* A server that accepts but never says welcome counts as down. */
		this.#timer = setTimeout(() => this.#drop(4000), this.timeout);
	}

	close() {
		clearTimeout(this.#timer);
		const ws = this.#ws;
		this.#detach();
		ws?.close(1000);
		this.#failAll('disconnected', 'connection closed');
		this.#setState('closed');
	}

	reconnectNow() {
		if (this.state !== 'waiting') return;
		this.#attempt = 0;
		this.connect();
	}

	send(type, fields = {}) {
		if (this.#ws?.readyState !== 1) return false;
		this.#ws.send(JSON.stringify({ ...fields, type }));
		return true;
	}

	request(type, fields = {}, options = {}) {
		const timeout = options.timeout ?? this.timeout;
		const sync = options.sync ?? type === 'send_message';
		return new Promise((resolve, reject) => {
			const id = fields.id ?? ++this.#nextId;
			const syncId = `sync-${id}`;
			const settle = (reply) => {
				clearTimeout(timer);
				this.#pending.delete(id);
				this.#pending.delete(syncId);
				if (reply?.type === 'error') reject(reply);
				else resolve(reply);
			};
			const timer = setTimeout(() => settle(FAIL('timeout',
			    `no reply to ${type} in ${timeout} ms`)), timeout);
			this.#pending.set(id, settle);
			if (!this.send(type, { ...fields, id })) {
				settle(FAIL('disconnected', 'not connected'));
				return;
			}
			if (sync) {
				this.#pending.set(syncId, () => settle(null));
				this.send('ping', { id: syncId });
			}
		});
	}

	#receive(data) {
		let msg;
		try {
			msg = JSON.parse(data);
		} catch {
			return;
		}
		if (msg === null || typeof msg !== 'object' || typeof msg.type !== 'string')
			return;
		if (msg.type === 'welcome') {
			clearTimeout(this.#timer);
			this.welcome = msg;
			this.features = new Set(Array.isArray(msg.features) ?
			    msg.features : []);
			this.#held = this.session;
			this.session = typeof msg.session === 'string' ? msg.session : null;
			this.#attempt = 0;
			this.#startBeat();
			this.#setState('open');
		}
		if (msg.type === 'resumed' && typeof msg.session === 'string')
			this.session = msg.session;
		this.#emit('message', msg);
		this.#emit(msg.type, msg);
		if (msg.id !== undefined && this.#pending.has(msg.id))
			this.#pending.get(msg.id)(msg);
	}

	#startBeat() {
		clearInterval(this.#beat);
		if (this.heartbeat <= 0) return;
		this.#beat = setInterval(() => {
			this.request('ping', {}, { timeout: this.timeout })
			    .catch((e) => { if (e.code === 'timeout') this.#drop(4001); });
		}, this.heartbeat);
	}

	#detach() {
		clearInterval(this.#beat);
		if (this.#ws) {
			this.#ws.onmessage = this.#ws.onclose = null;
			this.#ws = null;
		}
	}

	/* Gives up on a socket that is open but not answering. */
	#drop(code) {
		const ws = this.#ws;
		this.#detach();
		try {
			ws?.close(code);
		} catch {
			/* already closing */
		}
		this.#lost(1006);
	}

	#failAll(code, message) {
		for (const settle of [...this.#pending.values()])
			settle(FAIL(code, message));
	}

	#lost(code) {
		this.#detach();
		clearTimeout(this.#timer);
		this.#failAll('disconnected', 'connection lost');
		if (this.state === 'closed') return;
		if (code === 4001) {
			/* Taken over by a resume elsewhere: coming back would take
			 * it back, and the two would pass it to and fro. */
			this.session = null;
			this.#setState('closed', { code });
			return;
		}
		const delay = Math.min(this.maxDelay, this.minDelay * 2 ** this.#attempt) *
		    (0.5 + Math.random() / 2);
		this.#attempt++;
		this.#timer = setTimeout(() => this.connect(), delay);
		this.#setState('waiting', { delay, code });
	}
}
