/*
 * app.js: the parley chat page. Keeps the view of rooms, members and
 * messages in step with the server through parley.js, and remembers the
 * chosen name (localStorage) and the rooms joined in this tab
 * (sessionStorage) so that a reload or a reconnection picks up where it
 * was. Everything that came from the network reaches the page through
 * textContent only.
 */
import { Parley } from './parley.js';

const $ = (id) => document.getElementById(id);
const HISTORY_PAGE = 50;
const GROUP_MS = 5 * 60 * 1000;
const NARROW = matchMedia('(max-width: 759px)');
const WIDE = matchMedia('(min-width: 1100px)');

/* Storage can throw (disabled, private mode); the page works without it. */
const store = {
	get(area, key) {
		try {
			return JSON.parse(globalThis[area].getItem(`parley.${key}`));
		} catch {
			return null;
		}
	},
	set(area, key, value) {
		try {
			globalThis[area].setItem(`parley.${key}`, JSON.stringify(value));
		} catch {
			/* not remembered, nothing else lost */
		}
	},
};

const S = {
	me: null,                      /* the name the server knows us by */
	wanted: store.get('localStorage', 'name'),
	myNames: new Set(),
	rooms: new Map(),              /* name -> room */
	current: null,
	historyOff: false,
	autoJoin: null,                /* first visit: room to join once named */
	firstWelcome: true,
	claims: 0,                     /* the newest claimName wins */
	cmdRoom: new Map(),            /* request id -> room it was typed in */
	nextId: 0,
};

const chat = new Parley(new URL('/ws', location.href));

function h(tag, cls, text) {
	const e = document.createElement(tag);
	if (cls) e.className = cls;
	if (text !== undefined) e.textContent = text;
	return e;
}

function room(name) {
	let r = S.rooms.get(name);
	if (!r) {
		r = { name, count: null, joined: false, participants: [], unread: 0,
		    view: null };
		S.rooms.set(name, r);
	}
	return r;
}

function fold(s) {
	return s.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

function isMe(name) {
	return name === S.me || S.myNames.has(fold(name));
}

/* Eight sender colours, chosen by a hash of the name, tuned in CSS. */
function hue(name) {
	let x = 0;
	for (const c of fold(name)) x = (x * 31 + c.codePointAt(0)) >>> 0;
	return `c${x % 8}`;
}

function initial(name) {
	return ([...name.trim()][0] ?? '?').toUpperCase();
}

/* ---- errors ---- */

const FRIENDLY = {
	name_taken: 'That name is already in use.',
	room_not_found: 'There is no such room.',
	not_in_room: 'You are not in this room.',
	rate_limited: 'You are sending too fast; wait a moment.',
	timeout: 'The server did not answer in time.',
	disconnected: 'Not connected: your message was not sent.',
	unsupported: 'The server does not support that.',
};
const PREFER_SERVER = new Set(['invalid_name', 'rejected', 'forbidden',
    'unknown_command', 'message_too_long', 'rate_limited']);

function describe(e) {
	if (PREFER_SERVER.has(e.code) && e.message) return e.message;
	return FRIENDLY[e.code] ?? e.message ?? e.code ?? String(e);
}

function fieldError(id, text) {
	const p = $(id);
	p.textContent = text ?? '';
	p.hidden = !text;
	p.classList.remove('info');
}

function toast(text, kind = 'notice') {
	const t = h('p', `toast ${kind}`, text);
	$('toasts').append(t);
	setTimeout(() => t.remove(), 8000);
}

/* ---- message views ---- */

function view(r) {
	if (r.view) return r.view;
	const wrap = h('div', 'room-log');
	const top = h('div', 'log-top');
	const more = h('button', 'link-btn', 'Load earlier messages');
	more.type = 'button';
	more.addEventListener('click', () => loadHistory(r, false));
	const start = h('p', 'log-start');
	top.append(more, start);
	const list = h('ol', 'messages');
	wrap.append(top, list);
	r.view = { wrap, list, more, start, seqs: new Map(), oldest: Infinity,
	    newest: -Infinity, done: false, loading: false, scroll: null,
	    stick: true };
	renderLogTop(r);
	return r.view;
}

function renderLogTop(r) {
	const v = r.view;
	v.more.hidden = v.done || S.historyOff || v.loading || v.seqs.size === 0;
	v.start.textContent = v.loading ? 'Loading earlier messages…' :
	    v.done ? `This is the start of #${r.name}.` : '';
	v.start.hidden = !v.start.textContent;
}

const dayFmt = new Intl.DateTimeFormat(undefined,
    { month: 'short', day: 'numeric' });
const timeFmt = new Intl.DateTimeFormat(undefined,
    { hour: 'numeric', minute: '2-digit' });
const fullFmt = new Intl.DateTimeFormat(undefined,
    { dateStyle: 'full', timeStyle: 'medium' });

function timeEl(ts) {
	const d = new Date(ts);
	const t = h('time', 'ts');
	if (Number.isNaN(d.getTime())) return t;
	t.dateTime = d.toISOString();
	t.title = fullFmt.format(d);
	const sameDay = d.toDateString() === new Date().toDateString();
	t.textContent = sameDay ? timeFmt.format(d) :
	    `${dayFmt.format(d)}, ${timeFmt.format(d)}`;
	return t;
}

function messageEl(m) {
	const sender = String(m.sender ?? '?');
	const li = h('li', 'msg');
	li.dataset.sender = sender;
	li.dataset.ts = m.ts;
	if (typeof m.seq === 'number') li.dataset.seq = m.seq;
	if (isMe(sender)) li.classList.add('mine');
	const text = h('div', 'text');
	if (m.action) {
		li.classList.add('action');
		text.append(h('span', `sender ${hue(sender)}`, sender), ' ',
		    String(m.message));
		li.append(h('span', 'avatar action-mark', '*'), text, timeEl(m.ts));
		return li;
	}
	const av = h('span', `avatar ${hue(sender)}`, initial(sender));
	av.setAttribute('aria-hidden', 'true');
	const meta = h('div', 'meta');
	meta.append(h('span', `sender ${hue(sender)}`, sender));
	if (isMe(sender)) meta.append(h('span', 'you-tag', 'you'));
	meta.append(timeEl(m.ts));
	text.textContent = String(m.message);
	const body = h('div', 'body');
	body.append(meta, text);
	li.append(av, body);
	return li;
}

/* A message continues the one above when the same person wrote it soon
 * after; the sender line is then left out. */
function regroup(li) {
	if (!li || !li.classList.contains('msg')) return;
	const p = li.previousElementSibling;
	const cont = !li.classList.contains('action') && p &&
	    p.classList.contains('msg') && !p.classList.contains('action') &&
	    p.dataset.sender === li.dataset.sender &&
	    Math.abs(li.dataset.ts - p.dataset.ts) < GROUP_MS;
	li.classList.toggle('cont', Boolean(cont));
}

/* Adds m in seq order; false when that seq is already shown. */
function addMessage(r, m) {
	const v = view(r);
	const li = messageEl(m);
	if (typeof m.seq === 'number') {
		if (v.seqs.has(m.seq)) return false;
		v.seqs.set(m.seq, li);
		let next = null;
		if (m.seq < v.newest) {
			for (const c of v.list.children) {
				if (c.dataset.seq !== undefined && Number(c.dataset.seq) > m.seq) {
					next = c;
					break;
				}
			}
		}
		v.list.insertBefore(li, next);
		v.oldest = Math.min(v.oldest, m.seq);
		v.newest = Math.max(v.newest, m.seq);
	} else {
		v.list.append(li);
	}
	regroup(li);
	regroup(li.nextElementSibling);
	return true;
}

/* System lines: joins, leaves, notices, errors. */
function addLine(r, text, kind) {
	const v = view(r);
	const li = h('li', `line ${kind}`);
	li.append(h('span', 'line-text', text), timeEl(Date.now()));
	v.list.append(li);
	if (r.name === S.current) afterAppend(v, false);
}

function afterAppend(v, mine) {
	const log = $('log');
	if (v.stick || mine) {
		log.scrollTop = log.scrollHeight;
	} else {
		$('jump').hidden = false;
	}
}

function nearBottom() {
	const log = $('log');
	return log.scrollHeight - log.scrollTop - log.clientHeight < 48;
}

async function loadHistory(r, latest) {
	const v = view(r);
	if (S.historyOff || v.loading || (!latest && v.done)) return;
	const fields = { roomName: r.name, limit: HISTORY_PAGE };
	if (!latest && Number.isFinite(v.oldest)) fields.before = v.oldest;
	const hadAny = v.seqs.size > 0;
	v.loading = true;
	renderLogTop(r);
	let reply;
	try {
		reply = await chat.request('history', fields);
	} catch (e) {
		if (e.code === 'unsupported') S.historyOff = true;
		v.loading = false;
		renderLogTop(r);
		return;
	}
	const log = $('log');
	const shown = r.name === S.current;
	const height = log.scrollHeight;
	const msgs = Array.isArray(reply.messages) ? reply.messages : [];
	for (const m of msgs) addMessage(r, { ...m, roomName: r.name });
	if (msgs.length < HISTORY_PAGE && (!latest || !hadAny)) v.done = true;
	v.loading = false;
	renderLogTop(r);
	if (!shown) return;
	if (latest && v.stick) {
		log.scrollTop = log.scrollHeight;
	} else if (!latest) {
		/* Keep the messages being read where they were. */
		log.scrollTop += log.scrollHeight - height;
	}
	/* Not enough to scroll yet: fetch more so scrolling up can work. */
	if (!v.done && log.scrollHeight <= log.clientHeight)
		loadHistory(r, false);
}

/* ---- rooms ---- */

function saveRooms() {
	const joined = [...S.rooms.values()].filter((r) => r.joined)
	    .map((r) => r.name);
	store.set('sessionStorage', 'rooms', joined);
	store.set('sessionStorage', 'current', S.current);
}

/* A room's members: the whole list when the server sends it (rooms up
 * to its presence_limit), else kept from the changes, with the count the
 * server gives; loadParticipants pages the whole list in. */
function setParticipants(r, list, count) {
	if (Array.isArray(list)) r.participants = list.map(String);
	r.count = Number.isInteger(count) ? count : r.participants.length;
}

function memberJoined(r, m) {
	const name = String(m.username);
	if (!Array.isArray(m.participants) && !r.participants.includes(name))
		r.participants.push(name);
	setParticipants(r, m.participants, m.count);
}

function memberLeft(r, m) {
	const name = String(m.username);
	if (!Array.isArray(m.participants))
		r.participants = r.participants.filter((n) => n !== name);
	setParticipants(r, m.participants, m.count);
}

function memberRenamed(r, m) {
	if (!Array.isArray(m.participants)) {
		const old = String(m.oldUsername);
		r.participants = r.participants.map((n) =>
		    n === old ? String(m.username) : n);
	}
	setParticipants(r, m.participants, m.count);
}

const PAGE = 1000; /* the server's largest page of get_participants */
const MAX_PAGES = 50;

/* Fetches the member list page by page (all of it, or the first page
 * only); changes that arrive meanwhile are applied to the result. */
async function loadParticipants(r, firstOnly = false) {
	if (r.loading || !r.joined) return;
	r.loading = true;
	const names = [];
	let count = 0;
	try {
		for (let page = 0; page < (firstOnly ? 1 : MAX_PAGES); page++) {
			const reply = await chat.request('get_participants',
			    { roomName: r.name, offset: names.length, limit: PAGE });
			const got = Array.isArray(reply?.participants) ?
			    reply.participants.map(String) : [];
			names.push(...got);
			count = Number.isInteger(reply?.count) ? reply.count : names.length;
			if (got.length === 0 || names.length >= count) break;
		}
		const seen = new Set(names);
		/* Members who joined while the pages came keep their place. */
		r.participants = names.concat(r.participants.filter((n) => !seen.has(n)));
		r.count = Math.max(count, r.participants.length);
	} catch {
		/* the next join, leave or opening of the list tries again */
	} finally {
		r.loading = false;
	}
	render();
}

/* A member list shorter than the count is completed when shown. */
function completeParticipants(r) {
	if (r?.joined && !r.loading && r.count > r.participants.length)
		loadParticipants(r);
}

function roomButton(r) {
	const li = h('li');
	const b = h('button', 'room');
	b.type = 'button';
	if (r.name === S.current) {
		b.classList.add('current');
		b.setAttribute('aria-current', 'true');
	}
	b.append(h('span', 'hash', '#'), h('span', 'room-name', r.name));
	if (r.unread > 0) {
		b.append(h('span', 'badge', r.unread > 99 ? '99+' : String(r.unread)));
		b.append(h('span', 'sr-only', ` (${r.unread} unread)`));
	}
	if (r.count !== null) {
		const c = h('span', 'count', String(r.count));
		c.title = `${r.count} ${r.count === 1 ? 'person' : 'people'}`;
		b.append(c, h('span', 'sr-only', ` ${c.title}`));
	}
	b.addEventListener('click', () => openRoom(r.name, true));
	li.append(b);
	return li;
}

function renderRooms() {
	const byName = (a, b) => a.name.localeCompare(b.name);
	const all = [...S.rooms.values()].sort(byName);
	const joined = all.filter((r) => r.joined || (r.view && r.name === S.current));
	const other = all.filter((r) => !joined.includes(r));
	$('joined-list').replaceChildren(...joined.map(roomButton));
	$('other-list').replaceChildren(...other.map(roomButton));
	$('joined-empty').hidden = joined.length > 0;
	$('other-section').hidden = other.length === 0;
	const total = all.reduce((n, r) => n + r.unread, 0);
	$('total-unread').textContent = total > 99 ? '99+' : String(total);
	$('total-unread').hidden = total === 0;
	document.title = (total ? `(${total}) ` : '') +
	    (S.current ? `#${S.current} · parley` : 'parley');
}

function renderPeople() {
	const r = S.current ? S.rooms.get(S.current) : null;
	const list = r?.joined ? r.participants : [];
	if (WIDE.matches || document.body.classList.contains('show-people'))
		completeParticipants(r);
	$('people-list').replaceChildren(...list.map((name) => {
		const li = h('li', 'person');
		const av = h('span', `avatar small ${hue(name)}`, initial(name));
		av.setAttribute('aria-hidden', 'true');
		li.append(av, h('span', 'person-name', name));
		if (isMe(name)) li.append(h('span', 'you-tag', 'you'));
		return li;
	}));
	$('people-hint').hidden = Boolean(r?.joined);
	const n = r?.joined ? Math.max(r.count ?? 0, list.length) : 0;
	$('people-n').textContent = r?.joined ? String(n) : '';
	$('people-count').textContent = String(n);
}

function renderRoom() {
	const r = S.current ? S.rooms.get(S.current) : null;
	const open = chat.state === 'open';
	$('empty').hidden = Boolean(r);
	$('log').hidden = !r;
	$('composer').hidden = !r;
	$('leave-btn').hidden = !r?.joined;
	$('people-toggle').hidden = !r?.joined || WIDE.matches;
	$('room-title').textContent = r ? `#${r.name}` : 'parley';
	const n = r ? Math.max(r.count ?? 0, r.participants.length) : 0;
	$('room-meta').textContent = !r ? '' : !r.joined ? 'not joined' :
	    `${n} ${n === 1 ? 'person' : 'people'}`;
	if (!r) {
		$('empty-text').textContent = S.autoJoin ?
		    `Choose a name at the top to join #${S.autoJoin}.` : S.wanted ?
		    'Join a room from the list, or create your own.' :
		    'Pick a name at the top, then join a room or create your own.';
		$('jump').hidden = true;
		renderPeople();
		return;
	}
	$('not-member').hidden = r.joined;
	$('composer').querySelector('.row').hidden = !r.joined;
	$('composer-hint').hidden = !r.joined;
	$('composer-input').placeholder = `Message #${r.name}`;
	$('send-btn').disabled = !open;
	renderPeople();
}

function render() {
	renderRooms();
	renderRoom();
}

function showRoom(name, byUser = false) {
	const log = $('log');
	const old = S.current ? S.rooms.get(S.current)?.view : null;
	if (old && S.current !== name) {
		old.stick = nearBottom();
		old.scroll = log.scrollTop;
	}
	const r = room(name);
	const v = view(r);
	S.current = name;
	r.unread = 0;
	render();
	log.replaceChildren(v.wrap);
	log.scrollTop = v.stick || v.scroll === null ? log.scrollHeight : v.scroll;
	$('jump').hidden = true;
	fieldError('send-error', null);
	const hash = `#${encodeURIComponent(name)}`;
	if (location.hash !== hash) history.replaceState(null, '', hash);
	saveRooms();
	closeDrawers();
	if (byUser && !NARROW.matches) $('composer-input').focus();
}

async function join(name, { show = false, byUser = false } = {}) {
	let reply;
	try {
		reply = await chat.request('join_room', { roomName: name });
	} catch (e) {
		const r = S.rooms.get(name);
		if (r?.joined) {
			r.joined = false;
			addLine(r, `Could not rejoin #${name}: ${describe(e)}`, 'error');
			saveRooms();
			render();
		}
		if (e.code === 'room_not_found' && r && !r.joined && !r.view)
			S.rooms.delete(name);
		if (show || byUser) {
			const text = e.code === 'room_not_found' ?
			    `There is no room named “${name}”. Create it?` : describe(e);
			fieldError('create-error', text);
			/* On a phone the room list, and the error in it, may be shut. */
			if (NARROW.matches && !document.body.classList.contains('show-sidebar'))
				toast(text, 'error');
			if (e.code === 'room_not_found') $('create-input').value = name;
			/* The address names the room shown, not the one that failed. */
			history.replaceState(null, '', S.current ?
			    `#${encodeURIComponent(S.current)}` :
			    location.pathname + location.search);
		}
		renderRooms();
		return false;
	}
	const r = room(reply.roomName ?? name);
	r.joined = true;
	setParticipants(r, reply.participants, reply.count);
	view(r);
	saveRooms();
	if (show) showRoom(r.name, byUser);
	else render();
	if (!Array.isArray(reply.participants)) loadParticipants(r, true);
	loadHistory(r, true);
	return true;
}

function openRoom(name, byUser) {
	const r = room(name);
	S.autoJoin = null;
	if (r.joined || r.view) showRoom(name, byUser);
	if (!r.joined) join(name, { show: true, byUser });
}

async function leave() {
	const name = S.current;
	if (!name) return;
	try {
		await chat.request('leave_room', { roomName: name });
	} catch (e) {
		toast(describe(e), 'error');
	}
}

function leftRoom(name, text) {
	const r = room(name);
	r.joined = false;
	r.participants = [];
	if (r.count) r.count--;
	refreshRooms(500);
	if (text) addLine(r, text, 'warn');
	saveRooms();
	render();
}

let listTimer = null;
function refreshRooms(delay = 0) {
	clearTimeout(listTimer);
	listTimer = setTimeout(() => {
		if (chat.state === 'open') chat.request('list_rooms').catch(() => {});
	}, delay);
}

/* ---- name ---- */

function renderName() {
	const input = $('name-input');
	if (document.activeElement !== input) input.value = S.me ?? '';
}

function gotName(name) {
	S.me = name;
	S.myNames.add(fold(name));
	renderName();
}

/* Asks for name; true once it is ours. After a dropped connection the
 * server may hold the old one, and the name, until it notices that it is
 * gone: so with auto, name_taken is retried for about a minute. */
async function claimName(name, { auto }) {
	const gen = ++S.claims;
	for (let tries = 0; ; tries++) {
		if (!name || name === S.me) return Boolean(name);
		try {
			await chat.request('set_username', { username: name });
			fieldError('name-error', null);
			return true;
		} catch (e) {
			if (gen !== S.claims) return false;
			if (!auto || e.code !== 'name_taken' || tries >= 6) {
				if (e.code !== 'disconnected') fieldError('name-error', describe(e));
				return false;
			}
			fieldError('name-error', `“${name}” is still in use, maybe by your earlier connection. Retrying…`);
			$('name-error').classList.add('info');
			await new Promise((r) => setTimeout(r, Math.min(1000 * 2 ** tries, 16000)));
			if (gen !== S.claims || chat.state !== 'open') return false;
		}
	}
}

/* ---- connection ---- */

let countdown = null;
function renderConn({ state, delay }) {
	clearInterval(countdown);
	const conn = $('conn');
	conn.dataset.state = state;
	$('retry').hidden = state !== 'waiting';
	const text = $('conn-text');
	if (state === 'waiting') {
		const until = Date.now() + delay;
		const tick = () => {
			const s = Math.max(0, Math.ceil((until - Date.now()) / 1000));
			text.textContent = `Offline, retrying in ${s} s`;
		};
		tick();
		countdown = setInterval(tick, 1000);
	} else {
		text.textContent = { connecting: 'Connecting…', open: 'Connected',
		    closed: 'Disconnected' }[state] ?? state;
	}
	$('send-btn').disabled = state !== 'open';
}

async function welcomed(m) {
	gotName(String(m.username));
	for (const name of m.rooms ?? []) room(String(name));
	refreshRooms();
	/* Rejoin under our own name if it comes back soon; else as a guest,
	 * and the rename follows. */
	await Promise.race([claimName(S.wanted, { auto: true }),
	    new Promise((r) => setTimeout(r, 8000))]);

	let targets;
	let show = S.current;
	if (S.firstWelcome) {
		S.firstWelcome = false;
		const saved = store.get('sessionStorage', 'rooms');
		targets = Array.isArray(saved) ? saved.map(String) : [];
		show = store.get('sessionStorage', 'current');
		/* A link to a room, or on a first visit the first room: join it
		 * now, or once a name is chosen. */
		let first = hashRoom();
		if (first) show = first;
		else if (!Array.isArray(saved) && m.rooms?.length) first = String(m.rooms[0]);
		if (first && !targets.includes(first)) {
			if (S.wanted) targets.push(first);
			else S.autoJoin = first;
		}
		if (!targets.includes(show)) show = targets[0] ?? null;
	} else {
		targets = [...S.rooms.values()].filter((r) => r.joined)
		    .map((r) => r.name);
		show = null;
	}
	await Promise.all(targets.map((name) =>
	    join(name, { show: name === show })));
	render();
	if (document.activeElement === document.body && S.wanted &&
	    !NARROW.matches && S.rooms.get(S.current)?.joined)
		$('composer-input').focus();
}

function hashRoom() {
	const raw = location.hash.slice(1);
	if (!raw) return null;
	try {
		return decodeURIComponent(raw);
	} catch {
		return raw;
	}
}

/* ---- server events ---- */

chat.on('state', (s) => {
	renderConn(s);
	renderRoom();
});
chat.on('welcome', welcomed);

chat.on('username_set', (m) => {
	gotName(String(m.username));
	S.wanted = S.me;
	store.set('localStorage', 'name', S.me);
	fieldError('name-error', null);
	render();
	if (S.autoJoin) {
		join(S.autoJoin, { show: true });
		S.autoJoin = null;
	}
});

chat.on('rooms', (m) => {
	const seen = new Set();
	for (const x of Array.isArray(m.rooms) ? m.rooms : []) {
		const r = room(String(x.roomName));
		if (!r.joined && typeof x.count === 'number') r.count = x.count;
		seen.add(r.name);
	}
	for (const r of S.rooms.values())
		if (!seen.has(r.name) && !r.joined && !r.view) S.rooms.delete(r.name);
	renderRooms();
});

chat.on('room_created', (m) => {
	const r = room(String(m.roomName));
	if (r.count === null) r.count = 1;
	renderRooms();
	refreshRooms(1000);
});

chat.on('created_room', (m) => {
	const r = room(String(m.roomName));
	r.joined = true;
	setParticipants(r, m.participants, m.count);
	view(r).done = true;
	renderLogTop(r);
	showRoom(r.name, true);
});

chat.on('joined_room', (m) => {
	const r = room(String(m.roomName));
	memberJoined(r, m);
	if (m.username === S.me) {
		r.joined = true;
		saveRooms();
	} else if (r.joined) {
		addLine(r, `${m.username} joined`, 'event');
	}
	render();
});

const LEFT = { left: 'left', disconnected: 'disconnected',
    timeout: 'timed out', kicked: 'was removed' };
chat.on('user_left', (m) => {
	const r = room(String(m.roomName));
	memberLeft(r, m);
	if (r.joined)
		addLine(r, `${m.username} ${LEFT[m.reason] ?? 'left'}`, 'event');
	render();
});

chat.on('user_renamed', (m) => {
	const r = room(String(m.roomName));
	memberRenamed(r, m);
	if (r.joined)
		addLine(r, `${m.oldUsername} is now known as ${m.username}`, 'event');
	render();
});

chat.on('room_left', (m) => {
	const name = String(m.roomName);
	leftRoom(name, null);
	if (S.current === name) {
		const next = [...S.rooms.values()].find((r) => r.joined);
		if (next) {
			showRoom(next.name);
		} else {
			S.current = null;
			$('log').replaceChildren();
			history.replaceState(null, '', location.pathname + location.search);
			saveRooms();
			render();
		}
	}
});

/* A deleted room leaves the list (its members were kicked just before). */
chat.on('room_deleted', (m) => {
	const name = String(m.roomName);
	const r = S.rooms.get(name);
	if (!r) return;
	S.rooms.delete(name);
	if (S.current === name) {
		const next = [...S.rooms.values()].find((x) => x.joined);
		S.current = null;
		if (next) showRoom(next.name);
		else {
			$('log').replaceChildren();
			history.replaceState(null, '', location.pathname + location.search);
		}
	}
	toast(`#${name} was deleted`);
	saveRooms();
	render();
});

chat.on('kicked', (m) => {
	const why = m.reason ? `: ${m.reason}` : '';
	leftRoom(String(m.roomName), `You were removed from #${m.roomName}${why}`);
});

chat.on('new_message', (m) => {
	const r = room(String(m.roomName));
	if (!addMessage(r, m)) return;
	const mine = isMe(String(m.sender));
	if (!mine && (r.name !== S.current || document.hidden)) {
		r.unread++;
		renderRooms();
	}
	if (r.name === S.current) afterAppend(r.view, mine);
});

chat.on('notice', (m) => {
	const name = m.roomName ?? S.cmdRoom.get(m.id) ?? S.current;
	const r = name ? S.rooms.get(name) : null;
	if (r) addLine(r, String(m.message), 'notice');
	else toast(String(m.message));
});

chat.on('error', (m) => {
	if (m.id !== undefined) return; /* the request that caused it shows it */
	const r = m.roomName ? S.rooms.get(String(m.roomName)) : null;
	if (r?.view) addLine(r, describe(m), 'error');
	else toast(describe(m), 'error');
});

/* ---- controls ---- */

$('name-form').addEventListener('submit', async (ev) => {
	ev.preventDefault();
	const name = $('name-input').value.trim();
	fieldError('name-error', null);
	if (!name) {
		fieldError('name-error', 'Type a name first.');
		return;
	}
	if (name === S.me) {
		S.wanted = name;
		store.set('localStorage', 'name', name);
		return;
	}
	if (chat.state !== 'open') {
		fieldError('name-error', 'Not connected; try again in a moment.');
		return;
	}
	$('name-input').blur();
	if (!(await claimName(name, { auto: false }))) $('name-input').focus();
});
$('name-input').addEventListener('input', () => fieldError('name-error', null));

$('create-form').addEventListener('submit', async (ev) => {
	ev.preventDefault();
	const input = $('create-input');
	const name = input.value.trim().replace(/^#/, '');
	fieldError('create-error', null);
	if (!name) {
		fieldError('create-error', 'Type a name for the room.');
		return;
	}
	try {
		await chat.request('create_room', { roomName: name });
		input.value = '';
	} catch (e) {
		if (e.code === 'room_exists') {
			input.value = '';
			openRoom(name, true);
		} else {
			fieldError('create-error', describe(e));
		}
	}
});
$('create-input').addEventListener('input', () => fieldError('create-error', null));

async function sendMessage() {
	const input = $('composer-input');
	const text = input.value;
	const name = S.current;
	if (!text.trim() || !name) return;
	fieldError('send-error', null);
	const id = `m${++S.nextId}`;
	S.cmdRoom.set(id, name);
	input.value = '';
	fitComposer();
	try {
		await chat.request('send_message', { id, roomName: name, message: text });
	} catch (e) {
		fieldError('send-error', describe(e));
		if (!input.value) {
			input.value = text;
			fitComposer();
		}
	} finally {
		setTimeout(() => S.cmdRoom.delete(id), 30000);
	}
}

$('composer').addEventListener('submit', (ev) => {
	ev.preventDefault();
	sendMessage();
});
$('composer-input').addEventListener('keydown', (ev) => {
	if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
		ev.preventDefault();
		sendMessage();
	}
});

/* Browsers without field-sizing grow the box from script. */
const autoSize = CSS.supports?.('field-sizing', 'content');
function fitComposer() {
	if (autoSize) return;
	const t = $('composer-input');
	t.style.height = 'auto';
	t.style.height = `${Math.min(t.scrollHeight + 2, 200)}px`;
}
$('composer-input').addEventListener('input', () => {
	fitComposer();
	fieldError('send-error', null);
});

$('leave-btn').addEventListener('click', leave);
$('rejoin-btn').addEventListener('click', () => {
	if (S.current) join(S.current, { show: true, byUser: true });
});
$('retry').addEventListener('click', () => chat.reconnectNow());

$('log').addEventListener('scroll', () => {
	const r = S.current ? S.rooms.get(S.current) : null;
	if (!r?.view) return;
	r.view.stick = nearBottom();
	if (r.view.stick) $('jump').hidden = true;
	if ($('log').scrollTop < 120) loadHistory(r, false);
}, { passive: true });
/* The log shrinks when the message box grows or an error shows up under
 * it: keep the newest messages in sight. */
new ResizeObserver(() => {
	const v = S.current ? S.rooms.get(S.current)?.view : null;
	if (v?.stick) $('log').scrollTop = $('log').scrollHeight;
}).observe($('log'));
$('jump').addEventListener('click', () => {
	const log = $('log');
	log.scrollTop = log.scrollHeight;
	$('jump').hidden = true;
});

/* Drawers: the room list and the people list on narrow screens. */
function setDrawer(id, open) {
	document.body.classList.toggle(`show-${id}`, open);
	for (const b of document.querySelectorAll(`[aria-controls="${id}"]`))
		b.setAttribute('aria-expanded', String(open));
	$('scrim').hidden = !document.body.matches('.show-sidebar, .show-people');
	if (open) $(id).querySelector('button, input')?.focus();
}
function closeDrawers() {
	const had = document.body.matches('.show-sidebar, .show-people');
	setDrawer('sidebar', false);
	setDrawer('people', false);
	return had;
}
for (const b of document.querySelectorAll('.toggle-rooms')) {
	b.addEventListener('click', () => setDrawer('sidebar',
	    !document.body.classList.contains('show-sidebar')));
}
$('people-toggle').addEventListener('click', () => setDrawer('people',
    !document.body.classList.contains('show-people')));
$('scrim').addEventListener('click', closeDrawers);
document.addEventListener('keydown', (ev) => {
	if (ev.key === 'Escape' && closeDrawers()) ev.preventDefault();
});
WIDE.addEventListener('change', () => {
	closeDrawers();
	renderRoom();
});
NARROW.addEventListener('change', closeDrawers);

window.addEventListener('hashchange', () => {
	const name = hashRoom();
	if (name && name !== S.current && chat.state === 'open')
		openRoom(name, true);
});

/* Coming back to the page: refresh counts, clear unread, reconnect. */
function wake() {
	if (document.hidden) return;
	const r = S.current ? S.rooms.get(S.current) : null;
	if (r?.unread) {
		r.unread = 0;
		renderRooms();
	}
	chat.reconnectNow();
	refreshRooms();
}
document.addEventListener('visibilitychange', wake);
window.addEventListener('focus', wake);
window.addEventListener('online', () => chat.reconnectNow());
setInterval(() => refreshRooms(), 30000);

if (S.wanted) $('name-input').value = S.wanted;
else $('name-input').focus();
render();
chat.connect();
