/*
 * app.js: the parley chat page. Keeps the view of rooms, direct
 * conversations, members and messages in step with the server through
 * parley.js. Remembers the chosen name and what was last read
 * (localStorage), the rooms joined and the drafts of this tab
 * (sessionStorage); the session secret for resuming stays in memory.
 * Everything that came from the network reaches the page through
 * textContent and DOM nodes only, never as markup.
 */
import { Parley } from './parley.js';

const $ = (id) => document.getElementById(id);
const HISTORY_PAGE = 50;
const GROUP_MS = 5 * 60 * 1000;
const TYPING_MS = 3000;       /* the server passes one typing per 3 s */
const TYPING_SHOWN_MS = 6000; /* how long "X is typing" lasts unrenewed */
const NAME_MAX = 32;
const ROOM_MAX = 64;
const NARROW = matchMedia('(max-width: 759px)');
const WIDE = matchMedia('(min-width: 1100px)');
const enc = new TextEncoder();
const bytes = (s) => enc.encode(s).length;

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
	altName: null,                 /* this tab's own name, another tab has ours */
	myNames: new Set(),
	rooms: new Map(),              /* key -> room or direct conversation */
	current: null,                 /* key of the one shown */
	historyOff: false,
	autoJoin: null,                /* first visit: room to join once named */
	firstWelcome: true,
	claims: 0,                     /* the newest claimName wins */
	cmdRoom: new Map(),            /* request id -> room it was typed in */
	nextId: 0,
	account: null,
	siteAccount: false,            /* the account came with the connection */
	roles: [],
	seen: store.get('localStorage', 'seen') ?? {},
	notify: store.get('localStorage', 'notify') === true,
	drafts: store.get('sessionStorage', 'drafts') ?? {},
	sendError: null,
};

const chat = new Parley(new URL('/ws', location.href));
const tabs = globalThis.BroadcastChannel ? new BroadcastChannel('parley') : null;

function h(tag, cls, text) {
	const e = document.createElement(tag);
	if (cls) e.className = cls;
	if (text !== undefined) e.textContent = text;
	return e;
}

function fold(s) {
	return s.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/* Direct conversations share the map with rooms under a key no room
 * name can have (names hold no control characters). */
const dmKey = (peer) => `\n${fold(peer)}`;

function room(name) {
	let r = S.rooms.get(name);
	if (!r) {
		r = { name, dm: null, count: null, joined: false, participants: [],
		    unread: 0, mentions: 0, view: null, topic: '', roles: {},
		    typing: new Map(), typingSent: 0, marker: null,
		    draft: S.drafts[name] ?? '' };
		S.rooms.set(name, r);
	}
	return r;
}

function conversation(peer) {
	const r = room(dmKey(peer));
	r.dm = peer;
	r.joined = true;
	r.participants = [peer];
	return r;
}

const label = (r) => r.dm ?? `#${r.name}`;

function isMe(name) {
	return name === S.me || S.myNames.has(fold(name));
}

function canModerate(r) {
	return Boolean(r && !r.dm && (S.roles.includes('operator') ||
	    ['owner', 'moderator'].includes(r.roles[S.me])));
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

function avatar(name, cls = '') {
	const av = h('span', `avatar ${cls} ${hue(name)}`, initial(name));
	av.setAttribute('aria-hidden', 'true');
	return av;
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
	user_not_found: 'That person is not connected.',
	message_not_found: 'That message no longer exists.',
	unauthorized: 'Wrong name or password.',
	message_too_long: 'The message is too long.',
};
const PREFER_SERVER = new Set(['invalid_name', 'rejected', 'forbidden',
    'unknown_command', 'message_too_long', 'rate_limited', 'bad_request',
    'unauthorized']);

function describe(e) {
	const text = PREFER_SERVER.has(e.code) && e.message ? e.message :
	    FRIENDLY[e.code] ?? e.message ?? e.code ?? String(e);
	return text.charAt(0).toUpperCase() + text.slice(1);
}

/* Checks a name against the protocol's limits before asking. */
function nameProblem(name, max, what) {
	if (!name) return `Type ${what} first.`;
	if (bytes(name) > max) return `${what[0].toUpperCase()}${what.slice(2)} is at most ${max} bytes (this one is ${bytes(name)}).`;
	if (/[\p{Cc}]/u.test(name)) return `${what[0].toUpperCase()}${what.slice(2)} cannot hold control characters.`;
	return null;
}

function fieldError(id, text, info = false) {
	const p = $(id);
	p.textContent = text ?? '';
	p.hidden = !text;
	p.classList.toggle('info', info);
}

function sendError(e) {
	S.sendError = e?.code ?? null;
	fieldError('send-error', e ? describe(e) : null);
}

function toast(text, kind = 'notice') {
	const t = h('p', `toast ${kind}`, text);
	$('toasts').append(t);
	setTimeout(() => t.remove(), 8000);
}

/* ---- text: links and mentions, as DOM nodes ---- */

const URL_RE = /\bhttps?:\/\/[^\s<>"]+/gi;

function mentionRe() {
	if (!S.me) return null;
	const name = S.me.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
	return new RegExp(`(^|[^\\p{L}\\p{N}_])(@?${name})(?![\\p{L}\\p{N}_])`, 'iu');
}

function mentionsMe(text) {
	return mentionRe()?.test(text) ?? false;
}

function addMentions(parent, text) {
	const re = mentionRe();
	let rest = text;
	let m;
	while (re && rest && (m = re.exec(rest))) {
		const at = m.index + m[1].length;
		parent.append(rest.slice(0, at), h('mark', 'mention', m[2]));
		rest = rest.slice(at + m[2].length);
	}
	if (rest) parent.append(rest);
}

/* http(s) addresses become links; anything else (javascript:, data:,
 * ...) stays text. */
function richText(parent, text) {
	let last = 0;
	for (const m of text.matchAll(URL_RE)) {
		let raw = m[0].replace(/[.,;:!?'*]+$/, '');
		if (raw.endsWith(')') && !raw.includes('(')) raw = raw.slice(0, -1);
		let url;
		try {
			url = new URL(raw);
		} catch {
			continue;
		}
		if (url.protocol !== 'http:' && url.protocol !== 'https:') continue;
		addMentions(parent, text.slice(last, m.index));
		const a = h('a', 'link', raw);
		a.href = url.href;
		a.target = '_blank';
		a.rel = 'noopener noreferrer';
		parent.append(a);
		last = m.index + raw.length;
	}
	addMentions(parent, text.slice(last));
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
	    newest: -Infinity, done: Boolean(r.dm), loading: false, scroll: null,
	    stick: true, gaps: new Set() };
	renderLogTop(r);
	return r.view;
}

function renderLogTop(r) {
	const v = r.view;
	v.more.hidden = v.done || S.historyOff || v.loading || v.seqs.size === 0;
	v.start.textContent = v.loading ? 'Loading earlier messages…' :
	    r.dm ? `Direct messages with ${r.dm} are not kept by the server: you see those sent while this page is open.` :
	    v.done ? `This is the start of #${r.name}.` : '';
	v.start.hidden = !v.start.textContent;
}

const dayFmt = new Intl.DateTimeFormat(undefined,
    { month: 'short', day: 'numeric' });
const longDayFmt = new Intl.DateTimeFormat(undefined,
    { weekday: 'long', month: 'long', day: 'numeric', year: 'numeric' });
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

function dayName(ts) {
	const d = new Date(ts);
	const today = new Date();
	if (d.toDateString() === today.toDateString()) return 'Today';
	today.setDate(today.getDate() - 1);
	if (d.toDateString() === today.toDateString()) return 'Yesterday';
	return longDayFmt.format(d);
}

function separator(cls, text) {
	const li = h('li', `sep ${cls}`);
	li.append(h('span', 'sep-text', text));
	return li;
}

function fillText(li, m) {
	const text = li.querySelector('.text');
	text.replaceChildren();
	if (m.deleted || typeof m.message !== 'string') {
		li.classList.add('deleted');
		text.textContent = 'This message was deleted.';
		li.querySelector('.msg-del')?.remove();
		return;
	}
	if (m.action) {
		const who = String(m.sender ?? '?');
		const s = h('span', `sender ${hue(who)}`, who);
		s.dir = 'auto';
		text.append(s, ' ');
	}
	richText(text, m.message);
	li.classList.toggle('mention', !isMe(String(m.sender)) && mentionsMe(m.message));
}

function messageEl(r, m) {
	const sender = String(m.sender ?? '?');
	const li = h('li', 'msg');
	li.dataset.sender = sender;
	li.dataset.ts = m.ts;
	if (typeof m.seq === 'number') li.dataset.seq = m.seq;
	if (isMe(sender)) li.classList.add('mine');
	const text = h('div', 'text');
	text.dir = 'auto';
	if (m.action) {
		li.classList.add('action');
		li.append(h('span', 'avatar action-mark', '*'), text, timeEl(m.ts));
	} else {
		const meta = h('div', 'meta');
		const s = h('span', `sender ${hue(sender)}`, sender);
		s.dir = 'auto';
		meta.append(s);
		if (isMe(sender)) meta.append(h('span', 'you-tag', 'you'));
		meta.append(timeEl(m.ts));
		const body = h('div', 'body');
		body.append(meta, text);
		li.append(avatar(sender), body);
	}
	fillText(li, m);
	deletable(r, li);
	return li;
}

/* A Delete button on what this user may delete: own messages, and
 * everyone's for the room's moderators. */
function deletable(r, li) {
	const may = !r.dm && li.dataset.seq !== undefined &&
	    !li.classList.contains('deleted') && (isMe(li.dataset.sender) || canModerate(r));
	const had = li.querySelector('.msg-del');
	if (!may) had?.remove();
	if (!may || had) return;
	const del = h('button', 'msg-del link-btn', 'Delete');
	del.type = 'button';
	del.setAttribute('aria-label', `Delete message from ${li.dataset.sender}`);
	del.addEventListener('click', () => deleteMessage(r, Number(li.dataset.seq), del));
	li.append(del);
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

/* Day separators, the "new since you were here" line and the marks of
 * gaps are laid again whenever the list changes: cheap for the few
 * hundred entries a view holds, and always right, wherever history was
 * put in. */
function relayout(r) {
	const v = view(r);
	const list = v.list;
	for (const e of list.querySelectorAll(':scope > .sep')) e.remove();
	let day = null;
	for (const li of [...list.children]) {
		const ts = Number(li.dataset.ts);
		const seq = li.dataset.seq !== undefined ? Number(li.dataset.seq) : null;
		if (seq !== null && v.gaps.has(seq))
			list.insertBefore(separator('gap', 'Some messages are not available.'), li);
		if (ts > 0 && new Date(ts).toDateString() !== day) {
			day = new Date(ts).toDateString();
			list.insertBefore(separator('day', dayName(ts)), li);
		}
		if (r.marker !== null && (li === r.marker || seq === r.marker))
			list.insertBefore(separator('new-line', 'New since you were here'), li);
		regroup(li);
	}
}

/* Adds m in seq order; the element, or null when that seq is shown. */
function addMessage(r, m) {
	const v = view(r);
	const li = messageEl(r, m);
	if (typeof m.seq === 'number') {
		if (v.seqs.has(m.seq)) return null;
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
	return li;
}

/* System lines: notices, errors. */
function addLine(r, text, kind) {
	const v = view(r);
	const li = h('li', `line ${kind}`);
	li.dataset.ts = Date.now();
	const t = h('span', 'line-text', text);
	t.dir = 'auto';
	li.append(t, timeEl(Date.now()));
	v.list.append(li);
	relayout(r);
	if (r.name === S.current) afterAppend(v, false);
	return li;
}

/* Joins, leaves and renames in a row make one line. */
function addEvent(r, verb, who) {
	const v = view(r);
	let li = v.list.lastElementChild;
	if (!li?.classList.contains('presence')) {
		li = addLine(r, '', 'event presence');
		li.events = [];
	}
	li.events.push([verb, who]);
	const groups = new Map();
	for (const [vb, name] of li.events) {
		if (!groups.has(vb)) groups.set(vb, []);
		groups.get(vb).push(name);
	}
	const names = (list) => list.length <= 3 ? list.join(', ') :
	    `${list.slice(0, 2).join(', ')} and ${list.length - 2} others`;
	const parts = [...groups].map(([vb, list]) => vb === 'renamed' ?
	    list.join(', ') : `${names(list)} ${vb}`);
	const text = li.querySelector('.line-text');
	text.textContent = parts.join(' · ');
	text.title = li.events.length > 1 ?
	    li.events.map(([vb, n]) => vb === 'renamed' ? n : `${n} ${vb}`).join('\n') : '';
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

/* Remembers the newest message read in each room, for the "new since
 * you were here" line of a later visit. */
function markSeen(r) {
	if (r.dm || !r.view || !Number.isFinite(r.view.newest)) return;
	if ((S.seen[r.name] ?? -1) >= r.view.newest) return;
	S.seen[r.name] = r.view.newest;
	store.set('localStorage', 'seen', S.seen);
}

const visible = (r) => r.name === S.current && !document.hidden;

/* A message from the server, live or fetched after a gap: counts,
 * mentions, the "new" line and notifications. */
function arrived(r, li, m, live) {
	const seen = visible(r);
	if (!isMe(String(m.sender))) {
		const mention = li.classList.contains('mention');
		if (!seen) {
			r.unread++;
			if (mention) r.mentions++;
		}
		if (r.marker === null && (!seen || !live))
			r.marker = typeof m.seq === 'number' ? m.seq : li;
		if (document.hidden && live && (r.dm || mention)) notify(r, m);
	}
	if (seen) markSeen(r);
}

function notify(r, m) {
	if (!S.notify || globalThis.Notification?.permission !== 'granted') return;
	try {
		const n = new Notification(r.dm ? `${m.sender} (direct)` :
		    `${m.sender} in #${r.name}`, { body: String(m.message).slice(0, 200),
		    tag: `parley-${r.name}` });
		n.onclick = () => {
			window.focus();
			showRoom(r.name);
			n.close();
		};
	} catch {
		/* some browsers allow notifications from service workers only */
	}
}

async function loadHistory(r, latest) {
	const v = view(r);
	if (r.dm || S.historyOff || v.loading || (!latest && v.done)) return;
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
	const seen = S.seen[r.name];
	for (const m of msgs) {
		const li = addMessage(r, { ...m, roomName: r.name });
		/* First look at a room since an earlier visit: mark what is new. */
		if (li && latest && !hadAny && typeof seen === 'number' &&
		    m.seq > seen && !isMe(String(m.sender))) {
			if (r.marker === null) r.marker = m.seq;
			if (!visible(r)) r.unread++;
		}
	}
	relayout(r);
	if (msgs.length < HISTORY_PAGE && (!latest || !hadAny)) v.done = true;
	v.loading = false;
	renderLogTop(r);
	if (visible(r)) markSeen(r);
	renderRooms();
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

/* After a reconnection: every message after the newest one shown, page
 * by page, or a visible mark where the server no longer has some. */
async function catchUp(r, target) {
	const v = view(r);
	if (S.historyOff || r.dm) return;
	if (!Number.isFinite(v.newest)) {
		await loadHistory(r, true);
		return;
	}
	if (typeof target === 'number' && target <= v.newest) return;
	let got;
	try {
		got = await chat.historySince(r.name, v.newest, { limit: 100 });
	} catch (e) {
		if (e.code === 'unsupported') S.historyOff = true;
		return;
	}
	if (got.gap && got.messages.length) v.gaps.add(got.messages[0].seq);
	for (const m of got.messages) {
		const li = addMessage(r, { ...m, roomName: r.name });
		if (li) arrived(r, li, m, false);
	}
	relayout(r);
	render();
	if (r.name === S.current && v.stick) $('log').scrollTop = $('log').scrollHeight;
}

/* ---- rooms ---- */

function saveRooms() {
	const joined = [...S.rooms.values()].filter((r) => r.joined && !r.dm)
	    .map((r) => r.name);
	store.set('sessionStorage', 'rooms', joined);
	store.set('sessionStorage', 'current', S.rooms.get(S.current)?.dm ? null : S.current);
}

/* A room's members: the whole list when the server sends it (rooms up
 * to its presence_limit), else kept from the changes, with the count the
 * server gives; loadParticipants pages the whole list in. */
function setParticipants(r, list, count) {
	if (Array.isArray(list)) r.participants = list.map(String);
	r.count = Number.isInteger(count) ? count : r.participants.length;
}

function setRoles(r, roles) {
	if (roles && typeof roles === 'object' && !Array.isArray(roles))
		r.roles = { ...roles };
}

function memberJoined(r, m) {
	const name = String(m.username);
	if (!Array.isArray(m.participants) && !r.participants.includes(name))
		r.participants.push(name);
	setParticipants(r, m.participants, m.count);
	setRoles(r, m.roles);
}

function memberLeft(r, m) {
	const name = String(m.username);
	if (!Array.isArray(m.participants))
		r.participants = r.participants.filter((n) => n !== name);
	setParticipants(r, m.participants, m.count);
	delete r.roles[name];
	r.typing.delete(name);
}

function memberRenamed(r, m) {
	const old = String(m.oldUsername);
	if (!Array.isArray(m.participants)) {
		r.participants = r.participants.map((n) =>
		    n === old ? String(m.username) : n);
	}
	setParticipants(r, m.participants, m.count);
	if (r.roles[old]) {
		r.roles[m.username] = r.roles[old];
		delete r.roles[old];
	}
	r.typing.delete(old);
}

const PAGE = 1000; /* the server's largest page of get_participants */
const MAX_PAGES = 50;

/* Fetches the member list page by page (all of it, or the first page
 * only); changes that arrive meanwhile are applied to the result. */
async function loadParticipants(r, firstOnly = false) {
	if (r.loading || !r.joined || r.dm) return;
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
			setRoles(r, reply?.roles);
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
	if (r?.joined && !r.dm && !r.loading && r.count > r.participants.length)
		loadParticipants(r);
}

function roomButton(r) {
	const li = h('li');
	const b = h('button', 'room');
	b.type = 'button';
	b.dataset.key = r.name;
	if (r.name === S.current) {
		b.classList.add('current');
		b.setAttribute('aria-current', 'true');
	}
	if (r.dm) {
		b.append(avatar(r.dm, 'small'));
		const n = h('span', 'room-name', r.dm);
		n.dir = 'auto';
		b.append(n);
	} else {
		const n = h('span', 'room-name', r.name);
		n.dir = 'auto';
		b.append(h('span', 'hash', '#'), n);
	}
	if (r.mentions > 0 && !r.dm) {
		b.append(h('span', 'badge mention-badge', `@${r.mentions > 9 ? '9+' : r.mentions}`));
		b.append(h('span', 'sr-only', ` (${r.mentions} ${r.mentions === 1 ? 'mention' : 'mentions'})`));
	}
	if (r.unread > 0) {
		b.append(h('span', 'badge unread', r.unread > 99 ? '99+' : String(r.unread)));
		b.append(h('span', 'sr-only', ` (${r.unread} unread)`));
	}
	if (r.count !== null && !r.dm) {
		const c = h('span', 'count', String(r.count));
		c.title = `${r.count} ${r.count === 1 ? 'person' : 'people'}`;
		b.append(c, h('span', 'sr-only', ` ${c.title}`));
	}
	b.addEventListener('click', () => openRoom(r.name, true));
	li.append(b);
	return li;
}

/* The order of the sidebar: joined rooms, then conversations. */
function sidebarOrder() {
	const byName = (a, b) => label(a).localeCompare(label(b));
	const all = [...S.rooms.values()].sort(byName);
	const joined = all.filter((r) => !r.dm &&
	    (r.joined || (r.view && r.name === S.current)));
	const dms = all.filter((r) => r.dm);
	const other = all.filter((r) => !r.dm && !joined.includes(r));
	return { all, joined, dms, other };
}

function renderRooms() {
	const { all, joined, dms, other } = sidebarOrder();
	/* Redrawing the lists must not drop the keyboard focus. */
	const focused = document.activeElement?.closest?.('.room')?.dataset.key;
	$('joined-list').replaceChildren(...joined.map(roomButton));
	$('dm-list').replaceChildren(...dms.map(roomButton));
	$('other-list').replaceChildren(...other.map(roomButton));
	if (focused !== undefined) {
		const again = [...document.querySelectorAll('#sidebar .room')]
		    .find((b) => b.dataset.key === focused);
		again?.focus({ preventScroll: true });
	}
	$('joined-empty').hidden = joined.length > 0;
	$('dm-section').hidden = dms.length === 0;
	$('other-section').hidden = other.length === 0;
	const total = all.reduce((n, r) => n + r.unread, 0);
	$('total-unread').textContent = total > 99 ? '99+' : String(total);
	$('total-unread').hidden = total === 0;
	const cur = S.rooms.get(S.current);
	document.title = (total ? `(${total}) ` : '') +
	    (cur ? `${label(cur)} · parley` : 'parley');
}

function personMenuButton(r, name) {
	const li = h('li', 'person');
	const b = h('button', 'person-btn');
	b.type = 'button';
	b.dataset.name = name;
	b.setAttribute('aria-haspopup', 'menu');
	const n = h('span', 'person-name', name);
	n.dir = 'auto';
	b.append(avatar(name, 'small'), n);
	const role = r.roles[name];
	if (role) b.append(h('span', `role-tag ${role}`, role === 'moderator' ? 'mod' : role));
	if (isMe(name)) b.append(h('span', 'you-tag', 'you'));
	b.addEventListener('click', () => openPersonMenu(r, name, b));
	li.append(b);
	return li;
}

function renderPeople() {
	const r = S.current ? S.rooms.get(S.current) : null;
	const list = r?.joined && !r.dm ? r.participants : [];
	if (WIDE.matches || document.body.classList.contains('show-people'))
		completeParticipants(r);
	$('people-list').replaceChildren(...list.map((name) => personMenuButton(r, name)));
	$('people-hint').hidden = Boolean(r?.joined && !r.dm);
	const n = r?.joined ? Math.max(r.count ?? 0, list.length) : 0;
	$('people-n').textContent = r?.joined && !r.dm ? String(n) : '';
	$('people-count').textContent = String(n);
}

function renderTopic(r) {
	const editing = !$('topic-form').hidden;
	$('room-topic').textContent = r?.topic ?? '';
	$('room-topic').hidden = !r?.topic || editing;
	const may = canModerate(r) && r.joined;
	$('topic-btn').hidden = !may || editing;
	$('topic-btn').title = r?.topic ? 'Change the topic' : 'Set a topic';
	if (!may && editing) $('topic-form').hidden = true;
}

function renderTyping() {
	const r = S.current ? S.rooms.get(S.current) : null;
	const now = Date.now();
	const who = r ? [...r.typing].filter(([, until]) => until > now)
	    .map(([n]) => n) : [];
	const el = $('typing');
	el.textContent = who.length === 0 ? '' : who.length === 1 ?
	    `${who[0]} is typing…` : who.length === 2 ?
	    `${who[0]} and ${who[1]} are typing…` : 'Several people are typing…';
}

function renderRoom() {
	const r = S.current ? S.rooms.get(S.current) : null;
	const open = chat.state === 'open';
	$('empty').hidden = Boolean(r);
	$('log').hidden = !r;
	$('composer').hidden = !r;
	$('leave-btn').hidden = !r?.joined;
	$('leave-btn').textContent = r?.dm ? 'Close' : 'Leave';
	$('people-toggle').hidden = !r?.joined || r.dm || WIDE.matches;
	$('room-title').textContent = r ? label(r) : 'parley';
	const n = r ? Math.max(r.count ?? 0, r.participants.length) : 0;
	$('room-meta').textContent = !r ? '' : r.dm ? 'direct messages' :
	    !r.joined ? 'not joined' : `${n} ${n === 1 ? 'person' : 'people'}`;
	renderTopic(r);
	renderTyping();
	if (!r) {
		$('empty-text').textContent = (S.me && !S.wanted && !S.account ?
		    `You are ${S.me} for now. ` : '') + (S.autoJoin ?
		    `Choose a name at the top to join #${S.autoJoin}.` : S.wanted ?
		    'Join a room from the list, or create your own.' :
		    'Pick a name at the top, then join a room or create your own.');
		$('jump').hidden = true;
		renderPeople();
		return;
	}
	$('not-member').hidden = r.joined;
	$('composer').querySelector('.row').hidden = !r.joined;
	$('composer-hint').hidden = !r.joined;
	$('composer-input').placeholder = `Message ${label(r)}`;
	$('send-btn').disabled = !open;
	renderPeople();
}

function renderMe() {
	const tag = S.account ? (S.siteAccount ? `account ${S.account}, signed in by the site` :
	    fold(S.account) === fold(S.me ?? '') ? 'account' : `account ${S.account}`) :
	    S.me && !S.wanted ? 'guest' : '';
	$('me-name').textContent = S.me ?? '';
	$('me-tag').textContent = tag;
	$('me-tag').hidden = !tag;
	$('me').hidden = !tag;
	$('me').title = S.account ? `Signed in as ${S.account}` : S.me ? `You are ${S.me}` : '';
	const accounts = chat.features.has('accounts');
	$('login-btn').hidden = !accounts || Boolean(S.account);
	$('logout-btn').hidden = !S.account || S.siteAccount;
}

function render() {
	renderRooms();
	renderRoom();
	renderMe();
}

function leaveView(old) {
	if (!old) return;
	const log = $('log');
	if (old.view) {
		old.view.stick = nearBottom();
		old.view.scroll = log.scrollTop;
	}
	old.draft = $('composer-input').value;
	saveDraft(old);
	/* Read now: the "new" line goes. */
	if (old.marker !== null) {
		old.marker = null;
		if (old.view) relayout(old);
	}
}

function showRoom(name, byUser = false) {
	const log = $('log');
	const old = S.current ? S.rooms.get(S.current) : null;
	if (old && S.current !== name) leaveView(old);
	const r = S.rooms.get(name) ?? room(name);
	const v = view(r);
	const switched = S.current !== name;
	S.current = name;
	r.unread = 0;
	r.mentions = 0;
	closePersonMenu(false);
	$('topic-form').hidden = true;
	render();
	log.replaceChildren(v.wrap);
	log.scrollTop = v.stick || v.scroll === null ? log.scrollHeight : v.scroll;
	if (r.marker !== null) {
		/* Bring the first new message into sight. */
		const line = v.list.querySelector('.new-line');
		if (line && line.offsetTop < log.scrollTop) log.scrollTop = line.offsetTop - 40;
	}
	$('jump').hidden = true;
	if (switched) {
		$('composer-input').value = r.draft;
		fitComposer();
		sendError(null);
	}
	const hash = r.dm ? '' : `#${encodeURIComponent(name)}`;
	if (location.hash !== hash) history.replaceState(null, '', hash || location.pathname + location.search);
	if (!document.hidden) markSeen(r);
	saveRooms();
	closeDrawers();
	if (byUser && !NARROW.matches) $('composer-input').focus();
}

function showNothing() {
	const old = S.current ? S.rooms.get(S.current) : null;
	leaveView(old);
	S.current = null;
	$('log').replaceChildren();
	history.replaceState(null, '', location.pathname + location.search);
	saveRooms();
	render();
}

function showAnother() {
	const next = sidebarOrder().joined.find((r) => r.joined && r.name !== S.current);
	if (next) showRoom(next.name);
	else showNothing();
}

/* A room that no longer exists (deleted, or gone with a restart of the
 * server) leaves the list with a notice instead of lingering. */
function roomGone(name, text) {
	const r = S.rooms.get(name);
	if (!r) return;
	if (S.current === name) showAnother();
	S.rooms.delete(name);
	toast(text);
	saveRooms();
	render();
}

async function join(name, { show = false, byUser = false, rejoin = false } = {}) {
	let reply;
	try {
		reply = await chat.request('join_room', { roomName: name });
	} catch (e) {
		const r = S.rooms.get(name);
		if (e.code === 'room_not_found' && r && (rejoin || r.joined)) {
			roomGone(name, `#${name} no longer exists; it was removed from your list.`);
			return false;
		}
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
			history.replaceState(null, '', S.current && !S.rooms.get(S.current)?.dm ?
			    `#${encodeURIComponent(S.current)}` :
			    location.pathname + location.search);
		}
		renderRooms();
		return false;
	}
	const r = room(reply.roomName ?? name);
	r.joined = true;
	setParticipants(r, reply.participants, reply.count);
	setRoles(r, reply.roles);
	if (typeof reply.topic === 'string') r.topic = reply.topic;
	const had = Number.isFinite(view(r).newest);
	saveRooms();
	if (show) showRoom(r.name, byUser);
	else render();
	if (show && S.focusAfterJoin) {
		S.focusAfterJoin = false;
		if ([$('name-input'), document.body].includes(document.activeElement))
			$('composer-input').focus();
	}
	if (!Array.isArray(reply.participants) || !reply.roles) loadParticipants(r, true);
	if (had) catchUp(r);
	else loadHistory(r, true);
	return true;
}

function openRoom(name, byUser) {
	const r = room(name);
	S.autoJoin = null;
	if (r.joined || r.view) showRoom(name, byUser);
	if (!r.joined && !r.dm) join(name, { show: true, byUser });
}

async function leave() {
	const r = S.current ? S.rooms.get(S.current) : null;
	if (!r) return;
	if (r.dm) {
		showAnother();
		S.rooms.delete(r.name);
		render();
		return;
	}
	try {
		await chat.request('leave_room', { roomName: r.name });
	} catch (e) {
		toast(describe(e), 'error');
	}
}

function leftRoom(name, text) {
	const r = room(name);
	r.joined = false;
	r.participants = [];
	r.typing.clear();
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
	renderMe();
}

function gotName(name) {
	S.me = name;
	S.myNames.add(fold(name));
	renderName();
}

/* Is another tab of this browser using name? (It answers at once.) */
function otherTabHas(name) {
	if (!tabs) return Promise.resolve(false);
	return new Promise((resolve) => {
		const done = (v) => {
			tabs.removeEventListener('message', on);
			clearTimeout(timer);
			resolve(v);
		};
		const on = (ev) => {
			if (ev.data?.has === fold(name)) done(true);
		};
		const timer = setTimeout(() => done(false), 300);
		tabs.addEventListener('message', on);
		tabs.postMessage({ who: fold(name) });
	});
}
tabs?.addEventListener('message', (ev) => {
	if (typeof ev.data?.who === 'string' && S.me && fold(S.me) === ev.data.who &&
	    chat.state === 'open')
		tabs.postMessage({ has: ev.data.who });
});

/* A name of this tab's own when another tab has ours: name-2, name-3... */
async function takeTabName(name) {
	for (let i = 2; i < 10; i++) {
		let base = name;
		while (bytes(`${base}-${i}`) > NAME_MAX) base = [...base].slice(0, -1).join('');
		const alt = `${base}-${i}`;
		try {
			S.altName = alt;
			await chat.request('set_username', { username: alt });
			fieldError('name-error', `“${name}” is open in another tab, so this tab is “${alt}”.`, true);
			setTimeout(() => {
				if ($('name-error').classList.contains('info')) fieldError('name-error', null);
			}, 10000);
			return true;
		} catch (e) {
			if (e.code !== 'name_taken') break;
		}
	}
	S.altName = null;
	return false;
}

/* Asks for name; true once it is ours. After a dropped connection the
 * server may hold the old one, and the name, until it notices that it is
 * gone: so with auto, name_taken is retried for about a minute, unless
 * another tab of this browser has it (then this tab takes its own name
 * at once). */
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
			if (auto && e.code === 'name_taken' && tries === 0 &&
			    await otherTabHas(name))
				return takeTabName(name);
			if (!auto || e.code !== 'name_taken' || tries >= 6) {
				if (e.code !== 'disconnected') fieldError('name-error', describe(e));
				return false;
			}
			fieldError('name-error', `“${name}” is still in use, maybe by your earlier connection. Retrying…`, true);
			await new Promise((r) => setTimeout(r, Math.min(1000 * 2 ** tries, 16000)));
			if (gen !== S.claims || chat.state !== 'open') return false;
		}
	}
}

/* ---- connection ---- */

let countdown = null;
function renderConn({ state, delay, code }) {
	clearInterval(countdown);
	const conn = $('conn');
	conn.dataset.state = state;
	$('retry').hidden = state !== 'waiting' && !(state === 'closed' && code === 4001);
	const text = $('conn-text');
	if (state === 'waiting') {
		const until = Date.now() + delay;
		const tick = () => {
			const s = Math.max(0, Math.ceil((until - Date.now()) / 1000));
			text.textContent = `Offline, retrying in ${s} s`;
		};
		tick();
		countdown = setInterval(tick, 1000);
	} else if (state === 'closed' && code === 4001) {
		text.textContent = 'Continued in another window';
	} else {
		text.textContent = { connecting: 'Connecting…', open: 'Connected',
		    closed: 'Disconnected' }[state] ?? state;
	}
	$('send-btn').disabled = state !== 'open';
	if (state === 'open') {
		/* What failed for want of a connection is not a problem now. */
		if (S.sendError === 'disconnected') sendError(null);
		if (/not connected/i.test($('name-error').textContent)) fieldError('name-error', null);
	}
}

/* The session came back: same name, same rooms, and what was missed. */
function resumed(m) {
	gotName(String(m.username));
	S.account = typeof m.account === 'string' ? m.account : S.account;
	if (Array.isArray(m.roles)) S.roles = m.roles.map(String);
	const have = new Map((Array.isArray(m.rooms) ? m.rooms : [])
	    .map((x) => [String(x.roomName), x.seq]));
	const lost = [...S.rooms.values()].filter((r) => !r.dm && r.joined && !have.has(r.name));
	for (const r of lost) {
		r.joined = false;
		r.participants = [];
		addLine(r, `You are no longer in #${r.name}.`, 'warn');
	}
	/* Those deleted meanwhile go, as room_deleted would have done. */
	if (lost.length) chat.request('list_rooms').then((x) => {
		const live = new Set((x?.rooms ?? []).map((y) => String(y.roomName)));
		for (const r of lost)
			if (!live.has(r.name)) roomGone(r.name, `#${r.name} no longer exists; it was removed from your list.`);
	}).catch(() => {});
	for (const [name, seq] of have) {
		const r = room(name);
		r.joined = true;
		loadParticipants(r);
		catchUp(r, seq);
	}
	const cur = S.rooms.get(S.current);
	if (cur && !cur.joined && !cur.dm) showAnother();
	toast(`Reconnected and resumed as ${S.me}.`);
	saveRooms();
	refreshRooms();
	render();
}

async function welcomed(m) {
	S.account = typeof m.account === 'string' ? m.account : null;
	S.siteAccount = S.account !== null;
	S.roles = Array.isArray(m.roles) ? m.roles.map(String) : [];
	if (!S.firstWelcome && chat.features.has('resume')) {
		try {
			resumed(await chat.resume());
			return;
		} catch (e) {
			if (e.code === 'disconnected') return;
			/* too late (or the server restarted): join afresh below */
			if (e.code === 'resume_failed')
				toast('The earlier session had expired: rejoining your rooms.');
		}
	}
	gotName(String(m.username));
	const known = new Set((m.rooms ?? []).map(String));
	for (const name of known) room(name);
	if (!S.firstWelcome) {
		/* Rooms the server no longer has go (joined ones after the
		 * rejoin below fails). */
		for (const r of [...S.rooms.values()])
			if (!r.dm && !r.joined && !known.has(r.name)) S.rooms.delete(r.name);
	}
	refreshRooms();
	render();
	/* Rejoin under our own name if it comes back soon; else as a guest,
	 * and the rename follows. */
	if (S.account) S.wanted = S.account;
	else await Promise.race([claimName(S.wanted, { auto: true }),
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
		targets = [...S.rooms.values()].filter((r) => r.joined && !r.dm)
		    .map((r) => r.name);
		show = null;
	}
	await Promise.all(targets.map((name) =>
	    join(name, { show: name === show, rejoin: !S.firstWelcome })));
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
	if (m.username !== S.altName && !S.account) {
		S.wanted = S.me;
		store.set('localStorage', 'name', S.me);
		if (!$('name-error').classList.contains('info')) fieldError('name-error', null);
	}
	render();
	if (S.autoJoin) {
		join(S.autoJoin, { show: true });
		S.autoJoin = null;
	}
});

function signedIn(m) {
	S.account = String(m.username);
	S.siteAccount = false;
	if (Array.isArray(m.roles)) S.roles = m.roles.map(String);
	gotName(S.account);
	S.wanted = S.account;
	store.set('localStorage', 'name', S.account);
	render();
}
chat.on('logged_in', signedIn);
chat.on('registered', signedIn);

chat.on('rooms', (m) => {
	const seen = new Set();
	for (const x of Array.isArray(m.rooms) ? m.rooms : []) {
		const r = room(String(x.roomName));
		if (!r.joined && typeof x.count === 'number') r.count = x.count;
		if (typeof x.topic === 'string') r.topic = x.topic;
		seen.add(r.name);
	}
	for (const r of S.rooms.values())
		if (!r.dm && !seen.has(r.name) && !r.joined && !r.view) S.rooms.delete(r.name);
	renderRooms();
	renderTopic(S.rooms.get(S.current));
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
	setRoles(r, m.roles);
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
		addEvent(r, 'joined', String(m.username));
	}
	render();
});

const LEFT = { left: 'left', disconnected: 'disconnected',
    timeout: 'timed out', kicked: 'was removed' };
chat.on('user_left', (m) => {
	const r = room(String(m.roomName));
	memberLeft(r, m);
	if (r.joined) addEvent(r, LEFT[m.reason] ?? 'left', String(m.username));
	render();
});

chat.on('user_renamed', (m) => {
	const r = room(String(m.roomName));
	memberRenamed(r, m);
	if (r.joined)
		addEvent(r, 'renamed', `${m.oldUsername} is now ${m.username}`);
	/* A conversation follows its peer's new name. */
	const d = S.rooms.get(dmKey(String(m.oldUsername)));
	if (d && !isMe(String(m.username)) && !S.rooms.has(dmKey(String(m.username)))) {
		S.rooms.delete(d.name);
		const was = d.name;
		d.name = dmKey(String(m.username));
		d.dm = String(m.username);
		d.participants = [d.dm];
		S.rooms.set(d.name, d);
		if (S.current === was) S.current = d.name;
		addLine(d, `${m.oldUsername} is now known as ${m.username}`, 'event');
	}
	render();
});

chat.on('room_left', (m) => {
	const name = String(m.roomName);
	leftRoom(name, null);
	if (S.current === name) showAnother();
});

/* A deleted room leaves the list (its members were kicked just before). */
chat.on('room_deleted', (m) => roomGone(String(m.roomName), `#${m.roomName} was deleted.`));

chat.on('kicked', (m) => {
	const why = m.reason ? `: ${m.reason}` : '';
	leftRoom(String(m.roomName), `You were removed from #${m.roomName}${why}`);
});

chat.on('new_message', (m) => {
	const r = room(String(m.roomName));
	const li = addMessage(r, m);
	if (!li) return;
	r.typing.delete(String(m.sender));
	arrived(r, li, m, true);
	relayout(r);
	renderRooms();
	if (r.name === S.current) {
		renderTyping();
		afterAppend(r.view, isMe(String(m.sender)));
	}
});

chat.on('direct_message', (m) => {
	const from = String(m.from);
	const peer = isMe(from) ? String(m.to) : from;
	const r = conversation(peer);
	const li = addMessage(r, { sender: from, message: m.message, ts: m.ts });
	arrived(r, li, { ...m, sender: from }, true);
	relayout(r);
	renderRooms();
	if (r.name === S.current) afterAppend(r.view, isMe(from));
});

chat.on('typing', (m) => {
	const r = S.rooms.get(String(m.roomName));
	if (!r || isMe(String(m.username))) return;
	r.typing.set(String(m.username), Date.now() + TYPING_SHOWN_MS);
	if (r.name === S.current) renderTyping();
});
setInterval(renderTyping, 1000);

chat.on('topic_changed', (m) => {
	const r = room(String(m.roomName));
	r.topic = String(m.topic ?? '');
	if (r.joined) {
		addLine(r, r.topic ? `${m.username} set the topic: ${r.topic}` :
		    `${m.username} cleared the topic`, 'event');
	}
	renderTopic(S.rooms.get(S.current));
});

chat.on('message_deleted', (m) => {
	const r = S.rooms.get(String(m.roomName));
	const li = r?.view?.seqs.get(m.seq);
	if (!li) return;
	fillText(li, { deleted: true });
	li.title = `Deleted by ${m.username}`;
});

chat.on('role_changed', (m) => {
	const r = room(String(m.roomName));
	const name = String(m.username);
	if (m.role) r.roles[name] = String(m.role);
	else delete r.roles[name];
	if (r.joined) {
		addLine(r, m.role ? `${name} is now ${m.role === 'moderator' ? 'a moderator' : m.role}` :
		    `${name} is no longer a moderator`, 'event');
	}
	/* Who may delete what changed. */
	for (const li of r.view?.seqs.values() ?? []) deletable(r, li);
	render();
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

/* ---- actions ---- */

async function deleteMessage(r, seq, button) {
	button.disabled = true;
	try {
		await chat.request('delete_message', { roomName: r.name, seq }, { sync: true });
	} catch (e) {
		button.disabled = false;
		addLine(r, `Could not delete the message: ${describe(e)}`, 'error');
	}
}

async function command(r, text) {
	const id = `c${++S.nextId}`;
	S.cmdRoom.set(id, r.name);
	try {
		await chat.request('send_message', { id, roomName: r.name, message: text });
	} catch (e) {
		addLine(r, describe(e), 'error');
	} finally {
		setTimeout(() => S.cmdRoom.delete(id), 30000);
	}
}

function startConversation(peer) {
	const r = conversation(peer);
	view(r);
	showRoom(r.name, true);
	$('composer-input').focus();
}

/* The menu of a participant: a message, and for those allowed,
 * moderation. */
let menuFor = null;
function openPersonMenu(r, name, button) {
	const menu = $('person-menu');
	if (menuFor === button) {
		closePersonMenu(true);
		return;
	}
	const items = [];
	const me = isMe(name);
	if (!me && chat.features.has('direct')) items.push(['Message', () => startConversation(name)]);
	if (!me && canModerate(r)) {
		items.push(['Kick', () => command(r, `/kick ${name}`)]);
		items.push(['Ban', () => command(r, `/ban ${name}`)]);
		items.push(['Mute', () => command(r, `/mute ${name}`)]);
		if (r.roles[name] === 'moderator')
			items.push(['Remove moderator', () => command(r, `/deop ${name}`)]);
		else if (r.roles[name] !== 'owner')
			items.push(['Make moderator', () => command(r, `/op ${name}`)]);
	}
	if (items.length === 0) items.push([me ? 'This is you' : 'No actions', null]);
	menu.replaceChildren(...items.map(([text, fn]) => {
		const b = h('button', 'menu-item', text);
		b.type = 'button';
		b.setAttribute('role', 'menuitem');
		b.tabIndex = -1;
		if (!fn) b.disabled = true;
		else b.addEventListener('click', () => {
			closePersonMenu(false);
			fn();
		});
		return b;
	}));
	menu.setAttribute('aria-label', `Actions for ${name}`);
	menuFor = button;
	button.setAttribute('aria-expanded', 'true');
	button.closest('li').append(menu);
	menu.hidden = false;
	menu.querySelector('.menu-item')?.focus();
}

function closePersonMenu(refocus) {
	const menu = $('person-menu');
	if (menu.hidden) return false;
	menu.hidden = true;
	const b = menuFor;
	menuFor = null;
	b?.setAttribute('aria-expanded', 'false');
	document.body.append(menu);
	if (refocus && b?.isConnected) b.focus();
	return true;
}

$('person-menu').addEventListener('keydown', (ev) => {
	const items = [...$('person-menu').querySelectorAll('.menu-item')];
	const i = items.indexOf(document.activeElement);
	if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
		ev.preventDefault();
		const step = ev.key === 'ArrowDown' ? 1 : -1;
		items[(i + step + items.length) % items.length]?.focus();
	} else if (ev.key === 'Escape' || ev.key === 'Tab') {
		ev.preventDefault();
		ev.stopPropagation();
		closePersonMenu(true);
	}
});
document.addEventListener('click', (ev) => {
	if (!$('person-menu').hidden && !ev.target.closest('#person-menu, .person-btn'))
		closePersonMenu(false);
});

/* ---- controls ---- */

$('name-form').addEventListener('submit', async (ev) => {
	ev.preventDefault();
	const name = $('name-input').value.trim();
	fieldError('name-error', null);
	const bad = nameProblem(name, NAME_MAX, 'a name');
	if (bad) {
		fieldError('name-error', bad);
		return;
	}
	const toComposer = () => {
		if (S.rooms.get(S.current)?.joined) $('composer-input').focus();
	};
	if (name === S.me) {
		S.wanted = name;
		store.set('localStorage', 'name', name);
		toComposer();
		return;
	}
	if (chat.state !== 'open') {
		fieldError('name-error', 'Not connected; try again in a moment.');
		return;
	}
	S.altName = null;
	if (await claimName(name, { auto: false })) {
		/* Named: on to writing, now or once the room is joined. */
		if (S.rooms.get(S.current)?.joined) toComposer();
		else S.focusAfterJoin = true;
	} else {
		$('name-input').focus();
	}
});
$('name-input').addEventListener('input', () => fieldError('name-error', null));

$('create-form').addEventListener('submit', async (ev) => {
	ev.preventDefault();
	const input = $('create-input');
	const name = input.value.trim().replace(/^#/, '');
	fieldError('create-error', null);
	const bad = nameProblem(name, ROOM_MAX, 'a room name');
	if (bad) {
		fieldError('create-error', bad);
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

const lastSent = new Map(); /* key -> the last text sent there */

async function sendMessage() {
	const input = $('composer-input');
	const text = input.value;
	const r = S.current ? S.rooms.get(S.current) : null;
	if (!text.trim() || !r) return;
	sendError(null);
	const id = `m${++S.nextId}`;
	S.cmdRoom.set(id, r.name);
	input.value = '';
	r.draft = '';
	saveDraft(r);
	lastSent.set(r.name, text);
	fitComposer();
	try {
		if (r.dm) {
			await chat.request('direct_message', { id, username: r.dm, message: text },
			    { sync: true });
		} else {
			await chat.request('send_message', { id, roomName: r.name, message: text });
		}
	} catch (e) {
		sendError(e);
		if (!input.value && S.current === r.name) {
			input.value = text;
			fitComposer();
		}
	} finally {
		setTimeout(() => S.cmdRoom.delete(id), 30000);
	}
}

let draftTimer = null;
function saveDraft(r) {
	if (r.draft) S.drafts[r.name] = r.draft;
	else delete S.drafts[r.name];
	clearTimeout(draftTimer);
	draftTimer = setTimeout(() => store.set('sessionStorage', 'drafts', S.drafts), 300);
}

/* Tab completes the name being typed (and goes through the others that
 * fit on each press); with nothing to complete it moves on, as usual. */
let completion = null;
function complete(ta, back) {
	const r = S.rooms.get(S.current);
	if (!r) return false;
	const pos = ta.selectionStart;
	if (pos !== ta.selectionEnd) return false;
	if (completion && completion.pos === pos && completion.value === ta.value) {
		const c = completion;
		c.index = (c.index + (back ? -1 : 1) + c.options.length) % c.options.length;
		return fillCompletion(ta, c);
	}
	const m = /(^|\s)(@?)([^\s@]+)$/u.exec(ta.value.slice(0, pos));
	if (!m || back) return false; /* Shift+Tab goes back, unless cycling */
	const prefix = fold(m[3]);
	const names = r.dm ? [r.dm] : r.participants;
	const options = names.filter((n) => !isMe(n) && fold(n).startsWith(prefix))
	    .sort((a, b) => a.localeCompare(b));
	if (options.length === 0) return false;
	completion = { start: pos - m[3].length, end: pos, index: 0, options,
	    first: m.index === 0 && m[1] === '' && m[2] === '' };
	return fillCompletion(ta, completion);
}

function fillCompletion(ta, c) {
	const name = c.options[c.index];
	const add = c.first ? `${name}: ` : `${name} `;
	ta.value = ta.value.slice(0, c.start) + add + ta.value.slice(c.end);
	c.end = c.start + add.length;
	ta.setSelectionRange(c.end, c.end);
	c.pos = c.end;
	c.value = ta.value;
	return true;
}

$('composer').addEventListener('submit', (ev) => {
	ev.preventDefault();
	sendMessage();
});
$('composer-input').addEventListener('keydown', (ev) => {
	const ta = ev.target;
	if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
		ev.preventDefault();
		sendMessage();
	} else if (ev.key === 'Tab' && !ev.altKey && !ev.ctrlKey && !ev.metaKey) {
		if (complete(ta, ev.shiftKey)) ev.preventDefault();
	} else if (ev.key === 'ArrowUp' && !ev.altKey && !ev.shiftKey && ta.value === '') {
		const last = lastSent.get(S.current);
		if (last) {
			ev.preventDefault();
			ta.value = last;
			ta.setSelectionRange(last.length, last.length);
			fitComposer();
		}
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
	sendError(null);
	const r = S.rooms.get(S.current);
	if (!r) return;
	r.draft = $('composer-input').value;
	saveDraft(r);
	const now = Date.now();
	if (!r.dm && r.joined && chat.features.has('typing') && r.draft.trim() &&
	    !r.draft.startsWith('/') && now - r.typingSent >= TYPING_MS) {
		r.typingSent = now;
		chat.send('typing', { roomName: r.name });
	}
});

$('leave-btn').addEventListener('click', leave);
$('rejoin-btn').addEventListener('click', () => {
	if (S.current) join(S.current, { show: true, byUser: true });
});
$('retry').addEventListener('click', () => {
	if (chat.state === 'closed') chat.connect();
	else chat.reconnectNow();
});

/* The topic, in the header, for those allowed to change it. */
$('topic-btn').addEventListener('click', () => {
	const r = S.rooms.get(S.current);
	$('topic-input').value = r?.topic ?? '';
	$('topic-form').hidden = false;
	fieldError('topic-error', null);
	renderTopic(r);
	$('topic-input').focus();
});
function endTopicEdit() {
	$('topic-form').hidden = true;
	renderTopic(S.rooms.get(S.current));
	$('topic-btn').focus();
}
$('topic-form').addEventListener('submit', async (ev) => {
	ev.preventDefault();
	const r = S.rooms.get(S.current);
	const topic = $('topic-input').value.trim();
	if (!r) return;
	if (bytes(topic) > 256) {
		fieldError('topic-error', `A topic is at most 256 bytes (this one is ${bytes(topic)}).`);
		return;
	}
	try {
		await chat.request('set_topic', { roomName: r.name, topic }, { sync: true });
		endTopicEdit();
	} catch (e) {
		fieldError('topic-error', describe(e));
	}
});
$('topic-cancel').addEventListener('click', endTopicEdit);
$('topic-input').addEventListener('keydown', (ev) => {
	if (ev.key === 'Escape') {
		ev.preventDefault();
		ev.stopPropagation();
		endTopicEdit();
	}
});

/* Accounts: sign in or create one, when the server keeps them. */
$('login-btn').addEventListener('click', () => {
	fieldError('account-error', null);
	$('account-name').value = S.wanted ?? '';
	$('account-dialog').showModal();
	($('account-name').value ? $('account-password') : $('account-name')).focus();
});
$('account-cancel').addEventListener('click', () => $('account-dialog').close());
$('account-form').addEventListener('submit', async (ev) => {
	ev.preventDefault();
	const type = ev.submitter?.value === 'register' ? 'register' : 'login';
	const username = $('account-name').value.trim();
	const password = $('account-password').value;
	const bad = nameProblem(username, NAME_MAX, 'a name');
	if (bad) {
		fieldError('account-error', bad);
		return;
	}
	if (bytes(password) < 8 || bytes(password) > 1024) {
		fieldError('account-error', 'A password is 8 to 1024 bytes.');
		return;
	}
	try {
		await chat.request(type, { username, password });
		$('account-password').value = '';
		$('account-dialog').close();
		toast(type === 'register' ? `Account ${S.account} created; you are signed in.` :
		    `Signed in as ${S.account}.`);
	} catch (e) {
		fieldError('account-error', describe(e));
	}
});
$('logout-btn').addEventListener('click', async () => {
	try {
		await chat.request('logout');
		S.account = null;
		S.wanted = null;
		render();
	} catch (e) {
		toast(describe(e), 'error');
	}
});

/* Desktop notifications of mentions and direct messages, when asked. */
function renderNotify() {
	const b = $('notify-btn');
	b.hidden = !globalThis.Notification;
	const on = S.notify && globalThis.Notification?.permission === 'granted';
	b.setAttribute('aria-pressed', String(on));
	b.textContent = on ? 'Notifications on' : 'Notify me of mentions';
}
$('notify-btn').addEventListener('click', async () => {
	if (S.notify && Notification.permission === 'granted') {
		S.notify = false;
	} else {
		S.notify = (await Notification.requestPermission()) === 'granted';
		if (!S.notify) toast('The browser does not allow notifications for this page.');
	}
	store.set('localStorage', 'notify', S.notify);
	renderNotify();
});

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
	if (ev.key === 'Escape' && (closePersonMenu(true) || closeDrawers())) {
		ev.preventDefault();
		return;
	}
	/* Alt+Up/Down: the room above or below in the list. */
	if (ev.altKey && !ev.ctrlKey && !ev.metaKey &&
	    (ev.key === 'ArrowUp' || ev.key === 'ArrowDown')) {
		const { joined, dms } = sidebarOrder();
		const list = [...joined.filter((r) => r.joined || r.name === S.current), ...dms];
		if (list.length === 0) return;
		ev.preventDefault();
		const i = list.findIndex((r) => r.name === S.current);
		const step = ev.key === 'ArrowDown' ? 1 : -1;
		const next = list[(i + step + list.length) % list.length];
		const inComposer = document.activeElement === $('composer-input');
		showRoom(next.name, inComposer);
	}
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
	if (r?.unread || r?.mentions) {
		r.unread = 0;
		r.mentions = 0;
		renderRooms();
	}
	if (r) markSeen(r);
	chat.reconnectNow();
	refreshRooms();
}
document.addEventListener('visibilitychange', wake);
window.addEventListener('focus', wake);
window.addEventListener('online', () => chat.reconnectNow());
setInterval(() => refreshRooms(), 30000);

/* Scripts and tests may drive the page through this. */
globalThis.parley = { chat, state: S };

if (S.wanted) $('name-input').value = S.wanted;
else $('name-input').focus();
renderNotify();
render();
chat.connect();
