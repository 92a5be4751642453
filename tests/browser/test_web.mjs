/*
 * test_web.mjs: drives the web client in headless Chromium against the
 * built parleyd. Starts the daemon on 127.0.0.1 port 0 with its own
 * configuration, opens two and then three browser contexts, and checks
 * naming, rooms, participants, messages both ways, that network text is
 * shown as text, leaving, reloading, reconnecting, deep links and that
 * the page raises no CSP violation or console error. Saves screenshots.
 *
 * Environment: PARLEYD (the daemon; default ../../src/parleyd from here),
 * top_srcdir (default ../..), PARLEY_TEST_OUTDIR (default ./out),
 * PARLEY_DOC_SCREENSHOT (also write the desktop screenshot there),
 * CHROMIUM (default /usr/bin/chromium).
 * Exit status: 0 pass, 1 fail, 77 skip.
 */
import { spawn } from 'node:child_process';
import { createServer, connect } from 'node:net';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync,
    readdirSync, statSync,
    createWriteStream, copyFileSync, accessSync, constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { createHmac } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const PARLEYD = resolve(process.env.PARLEYD || join(here, '../../src/parleyd'));
const TOP = resolve(process.env.top_srcdir || join(here, '../..'));
const WEB_ROOT = join(TOP, 'public');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const STEP_MS = 30000;
const WAIT_MS = 10000;
const TOTAL_MS = 480000;

let chromium;
try {
	({ chromium } = await import('playwright-core'));
} catch (e) {
	console.log(`SKIP: playwright-core not installed (${e.code ?? e.message}); run npm ci in tests/browser`);
	process.exit(77);
}
if (!existsSync(CHROMIUM)) {
	console.log(`SKIP: no browser at ${CHROMIUM}`);
	process.exit(77);
}

function outDir() {
	const want = resolve(process.env.PARLEY_TEST_OUTDIR || join(here, 'out'));
	try {
		mkdirSync(want, { recursive: true });
		accessSync(want, constants.W_OK);
		return want;
	} catch {
		/* A read-only source tree (make distcheck): write elsewhere. */
		return mkdtempSync(join(tmpdir(), 'parley-browser-out-'));
	}
}
const OUT = outDir();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function deadline(promise, ms, what) {
	let timer;
	return Promise.race([
		promise,
		new Promise((_, reject) => {
			timer = setTimeout(() => reject(new Error(`${what}: no result in ${ms} ms`)), ms);
		}),
	]).finally(() => clearTimeout(timer));
}

function luaString(s) {
	return `"${s.replace(/[\\"]/g, '\\$&')
	    .replace(/[\x00-\x1f\x7f]/g, (c) => `\\${c.charCodeAt(0)}`)}"`;
}

/* ---- the daemon ---- */

let server = null;
let tmp = null;
const servers = []; /* every daemon started, to stop at the end */

/* Starts a daemon; extra: more configuration lines; dir: the directory
 * of an earlier one, to start it again with its state. */
async function startServer(extra = [], dir = null) {
	if (!existsSync(PARLEYD))
		throw new Error(`${PARLEYD} does not exist (build it, or set PARLEYD)`);
	const first = tmp === null;
	const own = dir ?? mkdtempSync(join(tmpdir(), 'parley-web-'));
	if (first) tmp = own;
	const conf = join(own, 'parley.conf');
	writeFileSync(conf, [
		'-- written by tests/browser/test_web.mjs',
		'listen = "127.0.0.1"',
		'port = 0',
		`web_root = ${luaString(WEB_ROOT)}`,
		// Durable history (the default plugin) lives in this run's own
		// directory, so runs do not see each other's messages.
		`state_dir = ${luaString(join(own, 'state'))}`,
		'ping_interval = 2',
		'ping_timeout = 2',
		/* small, so that a room of a few is a large room (protocol 1.1) */
		'presence_limit = 3',
		/* a client sends eighty messages in a row in the resume test */
		'message_burst = 200',
		/* the tree's scripts (/help, /me, ...), not the installed ones */
		existsSync(join(TOP, 'scripts', 'commands.lua')) ?
		    `script_dirs = { ${luaString(join(TOP, 'scripts'))} }` : '',
		...extra,
		'',
	].join('\n'));
	const proc = spawn(PARLEYD, ['--config', conf], {
		stdio: ['ignore', 'pipe', 'pipe'],
	});
	if (first) server = proc;
	servers.push({ proc, dir: own });
	const log = createWriteStream(join(OUT, `parleyd-${servers.length}.log`));
	proc.stderr.pipe(log);
	return deadline(new Promise((res, rej) => {
		let seen = '';
		proc.once('error', rej);
		proc.once('exit', (code, sig) =>
		    rej(new Error(`parleyd exited early (${code ?? sig}); see ${OUT}/parleyd-${servers.length}.log`)));
		proc.stdout.on('data', (d) => {
			log.write(d);
			seen += d;
			const m = /parleyd: listening on (http:\/\/\S+?\/)/.exec(seen);
			if (m) {
				proc.removeAllListeners('exit');
				res(m[1]);
			}
		});
	}), WAIT_MS, 'parleyd start');
}

async function stopOne(proc, signal = 'SIGTERM') {
	if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
	const gone = new Promise((r) => proc.once('exit', r));
	proc.kill(signal);
	if (await Promise.race([gone.then(() => true), sleep(3000)]) !== true) {
		proc.kill('SIGKILL');
		await Promise.race([gone, sleep(2000)]);
	}
}

async function stopServer() {
	for (const { proc } of servers) await stopOne(proc);
	for (const { dir } of servers.slice(1))
		if (dir !== tmp) rmSync(dir, { recursive: true, force: true });
}

/* A TCP relay in front of the daemon, so that a test can cut a browser's
 * connections the way a network failure does: the browser sees them
 * reset while the daemon's side stays open until its ping times out. */
async function startRelay(base) {
	let target = new URL(base);
	const pairs = new Set();
	let down = false;
	const srv = createServer((c) => {
		if (down) {
			c.resetAndDestroy();
			return;
		}
		const s = connect(Number(target.port), target.hostname);
		const pair = { c, s };
		pairs.add(pair);
		c.pipe(s);
		s.pipe(c);
		const done = () => pairs.delete(pair);
		c.on('error', done).on('close', done);
		s.on('error', () => c.destroy()).on('close', () => c.destroy());
	});
	await new Promise((res) => srv.listen(0, '127.0.0.1', res));
	return {
		url: `http://127.0.0.1:${srv.address().port}/`,
		retarget(url) {
			target = new URL(url);
		},
		/* Refuses new connections too, as a network that is down. */
		down(on) {
			down = on;
		},
		cut() {
			for (const { c, s } of pairs) {
				s.unpipe(c);
				c.unpipe(s);
				s.removeAllListeners('close');
				c.resetAndDestroy();
				/* s is left open and silent */
			}
			pairs.clear();
		},
		close() {
			srv.close();
			for (const { c, s } of pairs) {
				c.destroy();
				s.destroy();
			}
		},
	};
}

/* ---- the browser ---- */

const problems = [];   /* console errors, page errors, CSP violations */
const dialogs = [];
const pages = [];
let allowWsErrors = false;

async function newUser(browser, label, viewport = { width: 1280, height: 800 }) {
	const context = await browser.newContext({ viewport, colorScheme: 'light' });
	context.setDefaultTimeout(WAIT_MS);
	const page = await context.newPage();
	await page.addInitScript(() => {
		document.addEventListener('securitypolicyviolation', (e) => {
			console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
		});
	});
	page.on('console', (m) => {
		if (m.type() !== 'error') return;
		const text = m.text();
		if (allowWsErrors && /WebSocket|ERR_INTERNET_DISCONNECTED/.test(text)) return;
		problems.push(`${label}: console: ${text}`);
	});
	page.on('pageerror', (e) => problems.push(`${label}: page error: ${e.message}`));
	page.on('dialog', (d) => {
		dialogs.push(`${label}: ${d.type()}: ${d.message()}`);
		d.dismiss().catch(() => {});
	});
	pages.push({ label, page });
	return { context, page, label };
}

/* ---- steps ---- */

let passed = 0;
let failed = 0;
let skipped = 0;

class Skip extends Error {}

/* Commands come from the tree's scripts: without them the server may
 * refuse them (a skip); with them a refusal is a failure. */
const HAVE_SCRIPTS = existsSync(join(TOP, 'scripts', 'commands.lua'));
function refusal(text) {
	return HAVE_SCRIPTS ? new Error(text) : new Skip(text);
}

async function step(name, fn) {
	try {
		await deadline(fn(), STEP_MS, name);
		console.log(`PASS: ${name}`);
		passed++;
	} catch (e) {
		if (e instanceof Skip) {
			console.log(`SKIP: ${name}: ${e.message}`);
			skipped++;
			return;
		}
		console.log(`FAIL: ${name}: ${e.message.split('\n')[0]}`);
		failed++;
		for (const { label, page } of pages) {
			if (!page.isClosed())
				await page.screenshot({ path: join(OUT, `fail-${label}.png`) }).catch(() => {});
		}
		throw e;
	}
}

function check(cond, what) {
	if (!cond) throw new Error(what);
}

const connected = (page) => page.locator('#conn[data-state="open"]').waitFor();
const roomTitle = (page, name) => page.locator('#room-title', { hasText: `#${name}` }).waitFor();

async function setName(page, name) {
	await page.fill('#name-input', name);
	await page.press('#name-input', 'Enter');
	await page.waitForFunction((n) => localStorage.getItem('parley.name') === JSON.stringify(n), name);
	check(await page.inputValue('#name-input') === name, `name field shows ${name}`);
	check(await page.locator('#name-error').isHidden(), 'no name error');
}

async function say(page, text) {
	await page.fill('#composer-input', text);
	await page.press('#composer-input', 'Enter');
}

/* The text of the messages whose text is exactly text, and their rows. */
function exactly(text) {
	return new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
}
function message(page, text) {
	return page.locator('#log li.msg .text').filter({ hasText: exactly(text) });
}
function row(page, text) {
	return page.locator('#log li.msg').filter({
		has: page.locator('.text').filter({ hasText: exactly(text) }),
	});
}

async function peopleOf(page) {
	return page.locator('#people-list .person-name').allTextContents();
}

async function waitPeople(page, want) {
	const sorted = [...want].sort().join(',');
	await page.waitForFunction((w) => [...document.querySelectorAll('#people-list .person-name')]
	    .map((e) => e.textContent).sort().join(',') === w, sorted).catch(async () => {
		throw new Error(`people are ${(await peopleOf(page)).join(',')}, want ${sorted}`);
	});
}

async function main() {
	let base;
	await step('parleyd starts', async () => {
		base = await startServer();
	});
	const browser = await deadline(chromium.launch({
		executablePath: CHROMIUM,
		args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
		    '--no-first-run', '--disable-background-networking',
		    '--disable-component-update', '--disable-sync'],
	}), WAIT_MS, 'browser launch');
	try {
		await run(browser, base);
	} finally {
		await deadline(browser.close(), 5000, 'browser close').catch(() => {});
	}
}

async function run(browser, base) {
	const alice = await newUser(browser, 'alice');
	const bob = await newUser(browser, 'bob');
	const A = alice.page;
	const B = bob.page;
	const relay = await startRelay(base);
	try {
		await steps(browser, base, relay, alice, bob);
	} finally {
		relay.close();
	}
	await comforts(browser, base);
	await conversations(browser, base);
	await resume(browser, base);
	await siteAccount(browser);
	await accessibility(browser, base);
	check(problems.length === 0, problems.join('\n'));
}

async function steps(browser, base, relay, alice, bob) {
	const A = alice.page;
	const B = bob.page;

	await step('the client is small: under 100 KiB, no build step', async () => {
		const files = readdirSync(WEB_ROOT);
		const size = files.reduce((n, f) => n + statSync(join(WEB_ROOT, f)).size, 0);
		check(size < 100 * 1024, `public/ holds ${size} bytes`);
		check(files.every((f) => /^[\w-]+\.(html|js|css|svg)$/.test(f)), `files: ${files}`);
		console.log(`  public/: ${files.length} files, ${size} bytes`);
	});

	await step('page loads with a Content-Security-Policy and connects', async () => {
		/* alice goes through the relay, to be cut off later */
		const resp = await A.goto(relay.url);
		check(resp.ok(), `GET / gave ${resp.status()}`);
		const csp = resp.headers()['content-security-policy'] ?? '';
		check(/default-src 'self'/.test(csp), `CSP header is "${csp}"`);
		await connected(A);
		await B.goto(base);
		await connected(B);
	});

	await step('both pick names (remembered) and land in #general', async () => {
		await setName(A, 'alice');
		await setName(B, 'bob');
		await roomTitle(A, 'general');
		await roomTitle(B, 'general');
		await waitPeople(A, ['alice', 'bob']);
	});

	await step('a taken name is refused next to the name field', async () => {
		await B.fill('#name-input', 'Alice');
		await B.press('#name-input', 'Enter');
		await B.locator('#name-error').waitFor({ state: 'visible' });
		const text = await B.textContent('#name-error');
		check(/use|taken/i.test(text), `name error says "${text}"`);
		await B.fill('#name-input', 'bob');
		await B.press('#name-input', 'Enter');
		await B.locator('#name-error').waitFor({ state: 'hidden' });
		check(await B.evaluate(() => localStorage.getItem('parley.name')) === '"bob"', 'bob kept');
	});

	await step('rooms are created and seen live in the other client', async () => {
		await B.fill('#create-input', 'random');
		await B.press('#create-input', 'Enter');
		await roomTitle(B, 'random');
		await A.locator('#other-list .room', { hasText: 'random' }).waitFor();
		await A.fill('#create-input', 'design-review');
		await A.click('#create-form button[type="submit"]');
		await roomTitle(A, 'design-review');
		check(A.url().endsWith('#design-review'), `hash follows the room: ${A.url()}`);
		await waitPeople(A, ['alice']);
		await B.locator('#other-list .room', { hasText: 'design-review' }).waitFor();
	});

	await step('bad room names are refused next to the create-room field', async () => {
		await A.fill('#create-input', '   ');
		await A.press('#create-input', 'Enter');
		await A.locator('#create-error').waitFor({ state: 'visible' });
		await A.fill('#create-input', 'x'.repeat(65));
		await A.press('#create-input', 'Enter');
		await A.locator('#create-error').waitFor({ state: 'visible' });
		await A.fill('#create-input', '');
	});

	await step('bob joins from the list; both see each other in participants', async () => {
		await B.click('#other-list .room:has-text("design-review")');
		await roomTitle(B, 'design-review');
		await waitPeople(B, ['alice', 'bob']);
		await waitPeople(A, ['alice', 'bob']);
		const count = await A.locator('#joined-list .room', { hasText: 'design-review' })
		    .locator('.count').textContent();
		check(count === '2', `member count in alice's list is ${count}`);
	});

	await step('a link to a missing room is explained next to the create-room field', async () => {
		await B.evaluate(() => { location.hash = '#no-such-room'; });
		await B.locator('#create-error', { hasText: 'no-such-room' }).waitFor();
		await roomTitle(B, 'design-review');
		check(B.url().endsWith('#design-review'), `address back on the room shown: ${B.url()}`);
		await B.fill('#create-input', '');
		await B.locator('#create-error').waitFor({ state: 'hidden' });
	});

	const lines = [
		[A, 'Morning! I pushed the new onboarding mockups. Can you take a look before standup?'],
		[B, 'Looking now. The empty state is so much clearer.'],
		[B, 'One thing: the "Skip" link on step 2 is hard to see on a phone.'],
		[A, 'Good catch. I will bump the contrast and make it a real button.'],
		[B, 'Also, should invite links expire? Right now they live forever.'],
		[A, 'Seven days, and the owner can revoke them. I will add it to the spec.'],
	];
	await step('messages cross both ways, with sender, time and own marked', async () => {
		for (const [page, text] of lines) {
			await say(page, text);
			const other = page === A ? B : A;
			await message(other, text).waitFor();
			await message(page, text).waitFor();
		}
		const mine = row(A, lines[0][1]);
		check(await mine.evaluate((e) => e.classList.contains('mine')), 'own message marked');
		const theirs = row(B, lines[0][1]);
		check(await theirs.evaluate((e) => !e.classList.contains('mine') &&
		    e.dataset.sender === 'alice' && e.querySelector('time')?.dateTime),
		    'other message has sender and time');
		check(await A.inputValue('#composer-input') === '', 'composer cleared');
	});

	await step('unread counts for rooms not shown', async () => {
		await B.click('#joined-list .room:has-text("general")');
		await roomTitle(B, 'general');
		await say(B, 'Anyone up for lunch at 12:30?');
		await A.locator('#joined-list .room:has-text("general") .badge', { hasText: '1' }).waitFor();
		await B.click('#joined-list .room:has-text("design-review")');
		await roomTitle(B, 'design-review');
	});

	const carol = await newUser(browser, 'carol');
	const C = carol.page;
	await step('a deep link /#room joins that room', async () => {
		await C.goto(`${base}#design-review`);
		await connected(C);
		await C.locator('#empty', { hasText: '#design-review' }).waitFor();
		await setName(C, 'carol');
		await roomTitle(C, 'design-review');
		await waitPeople(A, ['alice', 'bob', 'carol']);
		await message(C, lines[0][1]).waitFor(); /* history on join */
		await say(C, 'Hi both! Just read the thread. I can take the copy for step 3.');
		await message(A, 'Hi both! Just read the thread. I can take the copy for step 3.').waitFor();
	});

	await step('a room over presence_limit keeps its member list from the changes', async () => {
		/* Three more members, plain WebSockets from carol's page: the
		 * room grows past the server's presence_limit (3), so the
		 * events now carry only the change and the count. */
		await C.evaluate(async (url) => {
			window.extra = [];
			for (const name of ['dave', 'erin', 'frank']) {
				const ws = new WebSocket(url);
				await new Promise((res, rej) => {
					ws.onmessage = (ev) => {
						const m = JSON.parse(ev.data);
						if (m.type === 'welcome')
							ws.send(JSON.stringify({ type: 'join_room',
							    roomName: 'design-review', username: name }));
						if (m.type === 'room_joined') res();
						if (m.type === 'error') rej(new Error(m.message));
					};
				});
				window.extra.push(ws);
			}
		}, new URL('/ws', base).href.replace(/^http/, 'ws'));
		const six = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'];
		await waitPeople(A, six);
		await A.locator('#room-meta', { hasText: '6 people' }).waitFor();
		/* a newcomer gets no list with its join: it pages it in */
		const dan = await newUser(browser, 'dan');
		await dan.page.goto(`${base}#design-review`);
		await connected(dan.page);
		await setName(dan.page, 'dan');
		await roomTitle(dan.page, 'design-review');
		await waitPeople(dan.page, [...six, 'dan']);
		await waitPeople(A, [...six, 'dan']);
		/* a rename and a leave, as changes only */
		await C.evaluate(() => {
			window.extra[0].send(JSON.stringify({ type: 'set_username', username: 'dave2' }));
			window.extra[1].send(JSON.stringify({ type: 'leave_room', roomName: 'design-review' }));
		});
		const after = ['alice', 'bob', 'carol', 'dave2', 'frank', 'dan'];
		await waitPeople(A, after);
		await waitPeople(dan.page, after);
		await A.locator('#room-meta', { hasText: '6 people' }).waitFor();
		await dan.context.close();
		pages.splice(pages.findIndex((p) => p.label === 'dan'), 1);
		await C.evaluate(() => { for (const ws of window.extra) ws.close(1000); });
		await waitPeople(A, ['alice', 'bob', 'carol']);
		await A.locator('#room-meta', { hasText: '3 people' }).waitFor();
	});

	await step('/me is shown as an action', async () => {
		await say(C, '/me grabs a coffee ☕');
		const act = A.locator('#log li.msg.action', { hasText: 'grabs a coffee' });
		const err = C.locator('#send-error');
		await Promise.race([act.waitFor(), err.waitFor({ state: 'visible' })]);
		if (await err.isVisible()) {
			const why = await err.textContent();
			await C.fill('#composer-input', '');
			throw refusal(`server refused /me: ${why}`);
		}
		check(/carol/.test(await act.textContent()), 'action names carol');
	});

	await step('screenshots at desktop and phone widths', async () => {
		await say(A, 'Perfect, thanks Carol. Let us sync at 10:30.');
		await message(B, 'Perfect, thanks Carol. Let us sync at 10:30.').waitFor();
		await A.locator('#composer-input').blur();
		await A.mouse.move(0, 0);
		await A.screenshot({ path: join(OUT, 'desktop.png') });
		if (process.env.PARLEY_DOC_SCREENSHOT)
			copyFileSync(join(OUT, 'desktop.png'), process.env.PARLEY_DOC_SCREENSHOT);
		await A.emulateMedia({ colorScheme: 'dark' });
		await A.screenshot({ path: join(OUT, 'desktop-dark.png') });
		await A.emulateMedia({ colorScheme: 'light' });
		await A.setViewportSize({ width: 360, height: 740 });
		await A.locator('#sidebar').waitFor({ state: 'hidden' });
		check(await A.evaluate(() => document.documentElement.scrollWidth <= innerWidth),
		    'no sideways scrolling at 360 px');
		await A.setViewportSize({ width: 390, height: 844 });
		await A.locator('#rooms-toggle').waitFor({ state: 'visible' });
		await A.locator('#sidebar').waitFor({ state: 'hidden' }); /* collapsed */
		await A.locator('#people').waitFor({ state: 'hidden' });
		check(await A.evaluate(() => document.documentElement.scrollWidth <= innerWidth),
		    'no sideways scrolling at 390 px');
		await A.screenshot({ path: join(OUT, 'phone.png') });
		await A.click('#rooms-toggle');
		await A.locator('#sidebar .room', { hasText: 'general' }).waitFor({ state: 'visible' });
		await sleep(300); /* the drawer slides in */
		await A.screenshot({ path: join(OUT, 'phone-rooms.png') });
		await A.keyboard.press('Escape');
		await A.locator('#sidebar .room').first().waitFor({ state: 'hidden' });
		await A.click('#people-toggle');
		await A.locator('#people .person-name', { hasText: 'carol' }).waitFor({ state: 'visible' });
		await sleep(300);
		await A.screenshot({ path: join(OUT, 'phone-people.png') });
		await A.keyboard.press('Escape');
		await A.setViewportSize({ width: 1280, height: 800 });
	});

	await step('an unknown command gets an error under the message box', async () => {
		const err = A.locator('#send-error');
		await say(A, '/no-such-command');
		await err.waitFor({ state: 'visible' });
		check(await A.inputValue('#composer-input') === '/no-such-command', 'text kept for editing');
		await A.fill('#composer-input', '');
		await err.waitFor({ state: 'hidden' });
	});

	await step('/help is answered with a notice in the room', async () => {
		await say(A, '/help');
		const notice = A.locator('#log li.line.notice');
		const err = A.locator('#send-error');
		await Promise.race([notice.first().waitFor(), err.waitFor({ state: 'visible' })]);
		if (await err.isVisible()) {
			const why = await err.textContent();
			await A.fill('#composer-input', '');
			throw refusal(`server refused /help: ${why}`);
		}
	});

	await step('a kick shows in the room and takes it out of the joined ones', async () => {
		/* alice created the room on this connection: she owns it */
		await say(A, '/kick carol off-topic');
		const kicked = C.locator('#log li.line.warn');
		const err = A.locator('#send-error');
		await Promise.race([kicked.waitFor(), err.waitFor({ state: 'visible' })]);
		if (await err.isVisible()) {
			const why = await err.textContent();
			await A.fill('#composer-input', '');
			throw refusal(`server refused /kick: ${why}`);
		}
		check(/off-topic/.test(await kicked.textContent()), 'reason shown');
		await C.locator('#not-member').waitFor();
		await waitPeople(A, ['alice', 'bob']);
		await C.click('#rejoin-btn');
		await C.locator('#composer-input').waitFor();
		await waitPeople(A, ['alice', 'bob', 'carol']);
	});

	const xss = '<img src=x onerror=alert(1)>';
	await step('markup from the network is shown as text', async () => {
		await say(B, xss);
		await message(A, xss).waitFor();
		const text = await message(A, xss).last().textContent();
		check(text === xss, `shown as "${text}"`);
		check(await A.locator('#log img').count() === 0, 'no img element made');
		await sleep(300);
		check(dialogs.length === 0, `dialog fired: ${dialogs.join('; ')}`);
	});

	await step('keyboard: Tab reaches the controls, Shift+Enter adds a line', async () => {
		await A.focus('#composer-input');
		await A.keyboard.type('first line');
		await A.keyboard.press('Shift+Enter');
		await A.keyboard.type('second line');
		check(await A.inputValue('#composer-input') === 'first line\nsecond line', 'newline typed');
		await A.keyboard.press('Enter');
		await A.locator('#log li.msg .text', { hasText: 'second line' }).waitFor();
		await A.evaluate(() => document.activeElement.blur());
		const seen = new Set();
		for (let i = 0; i < 40; i++) {
			await A.keyboard.press('Tab');
			seen.add(await A.evaluate(() => document.activeElement?.id ||
			    document.activeElement?.className || ''));
		}
		for (const id of ['name-input', 'create-input', 'composer-input', 'leave-btn'])
			check(seen.has(id), `Tab never reached #${id}`);
	});

	await step('a reload reconnects and rejoins with the same name and room', async () => {
		await A.reload();
		await connected(A);
		await roomTitle(A, 'design-review');
		await A.waitForFunction(() => document.getElementById('name-input').value === 'alice');
		await waitPeople(A, ['alice', 'bob', 'carol']);
		await waitPeople(B, ['alice', 'bob', 'carol']);
		await message(A, lines[1][1]).waitFor();
		check(await message(A, lines[1][1]).count() === 1, 'history shown once');
		check(await A.locator('#joined-list .room', { hasText: 'general' }).count() === 1,
		    'still in #general');
	});

	await step('a dropped connection reconnects, reclaims the name and dedupes history', async () => {
		allowWsErrors = true;
		relay.cut();
		await A.locator('#conn:not([data-state="open"])').waitFor();
		await say(B, 'Did alice drop off?');
		/* The daemon drops the silent old connection after its ping
		 * timeout; until then the name is taken and the client retries. */
		await A.locator('#conn[data-state="open"]').waitFor({ timeout: 20000 });
		await A.waitForFunction(() => document.getElementById('name-input').value === 'alice',
		    null, { timeout: 25000 });
		await waitPeople(A, ['alice', 'bob', 'carol']);
		await message(A, 'Did alice drop off?').waitFor({ timeout: 15000 });
		check(await message(A, lines[2][1]).count() === 1, 'no duplicate after rejoin');
		check(await message(A, 'Did alice drop off?').count() === 1, 'missed message shown once');
		await A.locator('#name-error').waitFor({ state: 'hidden' });
		allowWsErrors = false;
	});

	await step('one closes and the other sees it leave', async () => {
		await bob.context.close();
		await waitPeople(A, ['alice', 'carol']);
		await A.locator('#log li.line', { hasText: /bob (left|disconnected)/ }).waitFor();
	});

	await step('leaving a room', async () => {
		await C.click('#leave-btn');
		await C.locator('#joined-list .room', { hasText: 'design-review' }).waitFor({ state: 'detached' });
		await waitPeople(A, ['alice']);
	});

	await step('no CSP violations, console errors or dialogs', async () => {
		check(problems.length === 0, problems.join('\n'));
		check(dialogs.length === 0, dialogs.join('\n'));
	});
	for (const u of [alice, carol]) await closeUser(u);
}

async function closeUser(u) {
	await u.context.close();
	const i = pages.findIndex((p) => p.label === u.label);
	if (i >= 0) pages.splice(i, 1);
}

/* A plain WebSocket client inside a page, for a third person the
 * browser users can watch. */
async function wsUser(page, base, name, rooms) {
	await page.evaluate(async ([url, name, rooms]) => {
		window.socks ??= {};
		const ws = new WebSocket(url);
		await new Promise((res, rej) => {
			ws.onmessage = (ev) => {
				const m = JSON.parse(ev.data);
				if (m.type === 'welcome')
					ws.send(JSON.stringify({ type: 'set_username', username: name }));
				if (m.type === 'username_set') {
					for (const r of rooms)
						ws.send(JSON.stringify({ type: 'join_room', roomName: r }));
					res();
				}
				if (m.type === 'error') rej(new Error(m.message));
			};
		});
		window.socks[name] = ws;
	}, [new URL('/ws', base).href.replace(/^http/, 'ws'), name, rooms]);
}

function wsSend(page, name, msg) {
	return page.evaluate(([n, m]) => window.socks[n].send(JSON.stringify(m)), [name, msg]);
}

/* Issue 17, points 3 and 4: the comforts people expect and the bugs
 * found, with two users in two browser contexts. */
async function comforts(browser, base) {
	const relay = await startRelay(base);
	const xena = await newUser(browser, 'xena');
	const yuri = await newUser(browser, 'yuri');
	const X = xena.page;
	const Y = yuri.page;
	/* Desktop notifications, seen from inside the page; and a tab that
	 * can be made to look hidden. */
	await xena.context.grantPermissions(['notifications']);
	await X.addInitScript(() => {
		window.notes = [];
		const N = window.Notification;
		window.Notification = class extends N {
			constructor(title, options) {
				super(title, options);
				window.notes.push(`${title}|${options?.body ?? ''}`);
			}
		};
		Object.defineProperty(document, 'hidden',
		    { configurable: true, get: () => window.fakeHidden === true });
	});
	try {
		await step('a guest sees its own name; Enter on a name moves to the message box', async () => {
			await X.goto(relay.url);
			await connected(X);
			await X.locator('#me:not([hidden])').waitFor();
			const guest = await X.textContent('#me-name');
			check(/^guest-/.test(guest), `guest name shown: "${guest}"`);
			check((await X.textContent('#me')).includes('guest'), 'marked as a guest');
			await X.locator('#empty-text', { hasText: guest }).waitFor();
			await Y.goto(base);
			await connected(Y);
			await setName(Y, 'yuri');
			await roomTitle(Y, 'general');
			await X.fill('#name-input', 'xena');
			await X.press('#name-input', 'Enter');
			await roomTitle(X, 'general');
			await X.waitForFunction(() => document.activeElement?.id === 'composer-input');
			await X.locator('#me').waitFor({ state: 'hidden' });
		});

		await step('limits are named in the errors', async () => {
			await X.fill('#name-input', 'n'.repeat(33));
			await X.press('#name-input', 'Enter');
			await X.locator('#name-error', { hasText: 'at most 32 bytes' }).waitFor();
			await X.fill('#name-input', 'xena');
			await X.press('#name-input', 'Enter');
			await X.locator('#name-error').waitFor({ state: 'hidden' });
			await X.fill('#create-input', 'r'.repeat(65));
			await X.press('#create-input', 'Enter');
			await X.locator('#create-error', { hasText: 'at most 64 bytes' }).waitFor();
			await X.fill('#create-input', '');
			await say(X, 'x'.repeat(5000));
			await X.locator('#send-error', { hasText: 'at most 4096 bytes' }).waitFor();
			await X.fill('#composer-input', '');
		});

		await step('http(s) links are links, other schemes stay text', async () => {
			const text = 'see https://example.com/a?b=1&c=<2>, (http://example.org/x) and ' +
			    'javascript:alert(1) or data:text/html,hi or JAVASCRIPT://x.';
			await say(Y, text);
			const msg = row(X, text).or(X.locator('#log li.msg').filter({ hasText: 'JAVASCRIPT://x' }));
			await msg.first().waitFor();
			const links = await msg.first().locator('a').evaluateAll((as) =>
			    as.map((a) => [a.getAttribute('href'), a.rel, a.target, a.textContent]));
			check(links.length === 2, `two links, got ${JSON.stringify(links)}`);
			check(links[0][0] === 'https://example.com/a?b=1&c=' && links[0][3] === 'https://example.com/a?b=1&c=',
			    `first link ${JSON.stringify(links[0])}`);
			check(links[1][0] === 'http://example.org/x', `second link ${JSON.stringify(links[1])}`);
			for (const l of links)
				check(l[1] === 'noopener noreferrer' && l[2] === '_blank', `rel/target ${l}`);
			check(await msg.first().locator('.text').textContent() === text, 'all the text shown');
			check(await msg.first().locator('.text[dir="auto"]').count() === 1, 'dir=auto on the text');
			await sleep(200);
			check(dialogs.length === 0, 'no dialog');
		});

		await step('mentions: highlighted, counted apart, notified when hidden', async () => {
			await X.fill('#create-input', 'lounge');
			await X.press('#create-input', 'Enter');
			await roomTitle(X, 'lounge');
			await Y.click('#other-list .room:has-text("lounge")');
			await roomTitle(Y, 'lounge');
			await X.click('#joined-list .room:has-text("general")');
			await roomTitle(X, 'general');
			await say(Y, 'hello there');
			await say(Y, 'hey @xena, lunch?');
			const b = X.locator('#joined-list .room:has-text("lounge")');
			await b.locator('.badge.unread', { hasText: '2' }).waitFor();
			await b.locator('.mention-badge', { hasText: '@1' }).waitFor();
			/* hidden tab, opted in: a desktop notification */
			await X.evaluate(() => { window.fakeHidden = true; });
			await X.click('#notify-btn');
			await X.locator('#notify-btn[aria-pressed="true"]').waitFor();
			await say(Y, 'XENA are you there?');
			await X.waitForFunction(() => window.notes.some((n) => n.includes('XENA are you there?')));
			await say(Y, 'no mention here');
			await sleep(300);
			check(await X.evaluate(() => window.notes.length) === 1, 'only mentions notify');
			await X.evaluate(() => { window.fakeHidden = false; });
			/* the "new since you were here" line sits above the first unread */
			await X.click('#joined-list .room:has-text("lounge")');
			await roomTitle(X, 'lounge');
			const first = await X.evaluate(() => {
				const sep = document.querySelector('#log .sep.new-line');
				return sep?.nextElementSibling?.querySelector('.text')?.textContent;
			});
			check(first === 'hello there', `new line above "${first}"`);
			const marks = await row(X, 'hey @xena, lunch?').locator('mark.mention').allTextContents();
			check(marks.join() === '@xena', `mention marked: ${marks}`);
			check(await row(X, 'hey @xena, lunch?').evaluate((e) => e.classList.contains('mention')), 'row marked');
			check(await row(X, 'hello there').evaluate((e) => !e.classList.contains('mention')), 'plain row not marked');
			await b.locator('.badge').waitFor({ state: 'detached' });
			/* a day separator opens the day */
			await X.locator('#log .sep.day', { hasText: 'Today' }).first().waitFor();
			/* read now: switching away and back drops the line */
			await X.click('#joined-list .room:has-text("general")');
			await X.click('#joined-list .room:has-text("lounge")');
			check(await X.locator('#log .sep.new-line').count() === 0, 'line gone once read');
		});

		await step('a draft per room; Up recalls; Tab completes; Alt+Up/Down switch rooms', async () => {
			await X.fill('#composer-input', 'half a thought');
			await X.click('#joined-list .room:has-text("general")');
			await roomTitle(X, 'general');
			check(await X.inputValue('#composer-input') === '', 'other room has its own draft');
			await X.click('#joined-list .room:has-text("lounge")');
			check(await X.inputValue('#composer-input') === 'half a thought', 'draft kept');
			await X.fill('#composer-input', '');
			await say(X, 'recall me');
			await message(Y, 'recall me').waitFor();
			await X.press('#composer-input', 'ArrowUp');
			check(await X.inputValue('#composer-input') === 'recall me', 'Up recalls');
			await X.fill('#composer-input', 'yu');
			await X.press('#composer-input', 'Tab');
			check(await X.inputValue('#composer-input') === 'yuri: ', `Tab completes: "${await X.inputValue('#composer-input')}"`);
			await X.fill('#composer-input', 'ask @YU');
			await X.press('#composer-input', 'Tab');
			check(await X.inputValue('#composer-input') === 'ask @yuri ', 'Tab completes after @');
			/* nothing to complete: Tab moves on, the keyboard is not trapped */
			await X.fill('#composer-input', 'zz');
			await X.press('#composer-input', 'Tab');
			check(await X.evaluate(() => document.activeElement.id) !== 'composer-input', 'Tab moves on');
			await X.fill('#composer-input', '');
			await X.focus('#composer-input');
			await X.keyboard.press('Alt+ArrowUp');
			await roomTitle(X, 'general');
			await X.keyboard.press('Alt+ArrowDown');
			await roomTitle(X, 'lounge');
			check(await X.evaluate(() => document.activeElement.id) === 'composer-input', 'focus stays in the box');
		});

		await step('focus stays on the room list when it redraws', async () => {
			await X.focus('#joined-list .room:has-text("general")');
			await say(Y, 'redraw your list');
			await X.locator('#joined-list .room:has-text("lounge") .count').waitFor();
			await message(X, 'redraw your list').waitFor();
			await Y.click('#joined-list .room:has-text("general")');
			await say(Y, 'and again');
			await X.locator('#joined-list .room:has-text("general") .badge', { hasText: '1' }).waitFor();
			const focus = await X.evaluate(() => document.activeElement?.dataset?.key);
			check(focus === 'general', `focus on ${focus}`);
			await X.click('#joined-list .room:has-text("lounge")');
			await Y.click('#joined-list .room:has-text("lounge")');
		});

		await step('joins and leaves in a row make one line', async () => {
			for (const n of ['p1', 'p2', 'p3', 'p4']) await wsUser(Y, base, n, ['lounge']);
			await wsSend(Y, 'p2', { type: 'leave_room', roomName: 'lounge' });
			const line = X.locator('#log li.presence').last();
			await line.filter({ hasText: 'p2 left' }).waitFor();
			const text = await line.textContent();
			check(/p1, p2 and 2 others joined · p2 left/.test(text), `one line: "${text}"`);
			check(await X.locator('#log li.presence').filter({ hasText: 'p1' }).count() === 1, 'once');
			await Y.evaluate(() => { for (const ws of Object.values(window.socks)) ws.close(1000); });
		});

		await step('a long name does not squash the avatar', async () => {
			const long = 'W'.repeat(32);
			await wsUser(Y, base, long, ['lounge']);
			await wsSend(Y, long, { type: 'send_message', roomName: 'lounge', message: 'wide' });
			await message(X, 'wide').waitFor();
			for (const sel of ['#log li.msg:has-text("wide") .avatar',
			    `#people-list .person:has-text("${long}") .avatar`]) {
				const box = await X.locator(sel).first().boundingBox();
				check(box && Math.abs(box.width - box.height) < 1 && box.width >= 20,
				    `${sel} is ${box?.width}x${box?.height}`);
			}
			await X.setViewportSize({ width: 360, height: 740 });
			const box = await X.locator('#log li.msg:has-text("wide") .avatar').boundingBox();
			check(Math.abs(box.width - box.height) < 1, `phone avatar ${box.width}x${box.height}`);
			await X.setViewportSize({ width: 1280, height: 800 });
			await Y.evaluate(() => { for (const ws of Object.values(window.socks)) ws.close(1000); });
		});

		await step('"not connected" clears on reconnection', async () => {
			allowWsErrors = true;
			relay.cut();
			await X.locator('#conn:not([data-state="open"])').waitFor();
			await X.evaluate(() => {
				const b = document.getElementById('send-btn');
				b.disabled = false;
			});
			await say(X, 'into the void');
			await X.locator('#send-error', { hasText: /not connected/i }).waitFor();
			await X.locator('#conn[data-state="open"]').waitFor({ timeout: 20000 });
			await X.locator('#send-error').waitFor({ state: 'hidden' });
			await X.waitForFunction(() => document.getElementById('name-input').value === 'xena',
			    null, { timeout: 25000 });
			allowWsErrors = false;
		});

		await step('a second tab gets its own name at once and says so', async () => {
			const X2 = await xena.context.newPage();
			pages.push({ label: 'xena-tab2', page: X2 });
			const t0 = Date.now();
			await X2.goto(relay.url);
			await connected(X2);
			await X2.locator('#name-error.info', { hasText: 'another tab' }).waitFor();
			const said = await X2.textContent('#name-error');
			check(/this tab is “xena-2”/.test(said), `says which: "${said}"`);
			await X2.waitForFunction(() => document.getElementById('name-input').value === 'xena-2');
			check(Date.now() - t0 < 8000, `took ${Date.now() - t0} ms`);
			check(await X2.evaluate(() => localStorage.getItem('parley.name')) === '"xena"',
			    'the remembered name stays');
			await X2.close();
			pages.splice(pages.findIndex((p) => p.label === 'xena-tab2'), 1);
		});

		await step('sign in and create an account when the server keeps them', async () => {
			const feats = await Y.evaluate(() => [...window.parley.chat.features]);
			if (!feats.includes('accounts')) throw new Skip('server without accounts');
			await Y.click('#login-btn');
			await Y.locator('#account-dialog[open]').waitFor();
			await Y.fill('#account-name', 'yuri');
			await Y.fill('#account-password', 'short');
			await Y.click('#account-form button[value="register"]');
			await Y.locator('#account-error', { hasText: '8 to 1024 bytes' }).waitFor();
			await Y.fill('#account-password', 'correct horse battery');
			await Y.click('#account-form button[value="register"]');
			await Y.locator('#account-dialog').waitFor({ state: 'hidden' });
			await Y.locator('#me-tag', { hasText: 'account' }).waitFor();
			await Y.locator('#logout-btn').waitFor();
			await Y.click('#logout-btn');
			await Y.locator('#login-btn').waitFor();
			await Y.click('#login-btn');
			await Y.fill('#account-name', 'yuri');
			await Y.fill('#account-password', 'wrong password!');
			await Y.press('#account-password', 'Enter');
			await Y.locator('#account-error', { hasText: /wrong/i }).waitFor();
			await Y.fill('#account-password', 'correct horse battery');
			await Y.press('#account-password', 'Enter');
			await Y.locator('#account-dialog').waitFor({ state: 'hidden' });
			await Y.waitForFunction(() => document.getElementById('me-name').textContent === 'yuri');
		});
	} finally {
		await closeUser(xena);
		await closeUser(yuri);
		relay.close();
	}
}

/* Issue 17, point 2: direct conversations, the participant menu,
 * typing, the topic and deleting messages, with two users. */
async function conversations(browser, base) {
	const olga = await newUser(browser, 'olga');
	const pete = await newUser(browser, 'pete');
	const O = olga.page;
	const P = pete.page;
	const feats = async () => O.evaluate(() => [...window.parley.chat.features]);
	await step('two users in a room of one of them', async () => {
		await O.goto(base);
		await connected(O);
		await setName(O, 'olga');
		await P.goto(base);
		await connected(P);
		await setName(P, 'pete');
		await O.fill('#create-input', 'ops');
		await O.press('#create-input', 'Enter');
		await roomTitle(O, 'ops');
		await P.click('#sidebar .room:has-text("ops")');
		await roomTitle(P, 'ops');
		await waitPeople(O, ['olga', 'pete']);
	});

	await step('direct messages: from the participant menu, in the sidebar with unread counts', async () => {
		if (!(await feats()).includes('direct')) throw new Skip('server without direct messages');
		await O.click('#people-list .person-btn:has-text("pete")');
		await O.locator('#person-menu .menu-item', { hasText: 'Message' }).click();
		await O.locator('#room-title', { hasText: 'pete' }).waitFor();
		check(await O.evaluate(() => document.activeElement.id) === 'composer-input', 'focus in the box');
		await say(O, 'psst, a word?');
		await message(O, 'psst, a word?').waitFor();
		const dm = P.locator('#dm-list .room', { hasText: 'olga' });
		await dm.locator('.badge', { hasText: '1' }).waitFor();
		await say(O, 'second one');
		await dm.locator('.badge', { hasText: '2' }).waitFor();
		await dm.click();
		await message(P, 'psst, a word?').waitFor();
		await message(P, 'second one').waitFor();
		await dm.locator('.badge').waitFor({ state: 'detached' });
		await say(P, 'y'.repeat(4097));
		await P.locator('#send-error', { hasText: 'at most 4096 bytes' }).waitFor();
		await P.fill('#composer-input', '');
		await say(P, 'sure, go ahead');
		await message(O, 'sure, go ahead').waitFor();
		check(await row(O, 'sure, go ahead').getAttribute('data-sender') === 'pete', 'sender');
		await P.click('#joined-list .room:has-text("ops")');
		await roomTitle(P, 'ops');
	});

	await step('"X is typing" under the composer', async () => {
		if (!(await feats()).includes('typing')) throw new Skip('server without typing');
		await O.click('#joined-list .room:has-text("ops")');
		await roomTitle(O, 'ops');
		await P.locator('#composer-input').pressSequentially('I am wri');
		await O.locator('#typing', { hasText: 'pete is typing…' }).waitFor();
		await P.press('#composer-input', 'Enter');
		await message(O, 'I am wri').waitFor();
		await O.locator('#typing', { hasText: /^$/ }).waitFor();
	});

	await step('the topic, in the header, editable by those allowed', async () => {
		await O.locator('#topic-btn').waitFor({ timeout: 3000 }).catch(() => {
			throw new Skip('server without room roles and topics');
		});
		check(await P.locator('#topic-btn').isHidden(), 'not for a plain member');
		await O.click('#topic-btn');
		await O.fill('#topic-input', 'Release day: see https://example.com/plan');
		await O.press('#topic-input', 'Enter');
		await O.locator('#room-topic', { hasText: 'Release day' }).waitFor();
		await P.locator('#room-topic', { hasText: 'Release day' }).waitFor();
		await P.locator('#log li.line', { hasText: 'olga set the topic' }).waitFor();
		await O.click('#topic-btn');
		await O.fill('#topic-input', 't'.repeat(257));
		await O.press('#topic-input', 'Enter');
		await O.locator('#topic-error', { hasText: 'at most 256 bytes' }).waitFor();
		await O.press('#topic-input', 'Escape');
		await O.locator('#topic-form').waitFor({ state: 'hidden' });
	});

	await step('deleting one\'s own message, and others\' as the owner', async () => {
		await say(P, 'oops, wrong room');
		await message(O, 'oops, wrong room').waitFor();
		const mine = row(P, 'oops, wrong room');
		check(await row(P, 'I am wri').locator('.msg-del').count() === 1, 'own message can be deleted');
		await mine.hover();
		await mine.locator('.msg-del').click();
		await P.locator('#log li.msg.deleted').first().waitFor();
		await O.locator('#log li.msg.deleted', { hasText: 'This message was deleted.' }).waitFor();
		await say(O, 'owner speaking');
		await message(P, 'owner speaking').waitFor();
		check(await row(P, 'owner speaking').locator('.msg-del').count() === 0,
		    'no delete button on others\' messages for a member');
		const theirs = row(O, 'I am wri');
		await theirs.hover();
		await theirs.locator('.msg-del').click();
		await P.locator('#log li.msg.deleted').nth(1).waitFor();
		/* and history says so too, after a reload */
		await P.reload();
		await connected(P);
		await roomTitle(P, 'ops');
		await P.locator('#log li.msg.deleted').nth(1).waitFor();
		check(await message(P, 'oops, wrong room').count() === 0, 'text gone from history');
	});

	await step('the participant menu: moderation for those allowed', async () => {
		await P.click('#people-list .person-btn:has-text("olga")');
		const pItems = await P.locator('#person-menu .menu-item').allTextContents();
		check(pItems.join() === 'Message', `a member sees ${pItems}`);
		await P.keyboard.press('Escape');
		await P.locator('#person-menu').waitFor({ state: 'hidden' });
		check(await P.evaluate(() => document.activeElement?.classList.contains('person-btn')),
		    'Escape gives the focus back');
		await O.click('#people-list .person-btn:has-text("pete")');
		const oItems = await O.locator('#person-menu .menu-item').allTextContents();
		check(oItems.join() === 'Message,Kick,Ban,Mute,Make moderator', `the owner sees ${oItems}`);
		await O.keyboard.press('ArrowDown');
		check(await O.evaluate(() => document.activeElement.textContent) === 'Kick', 'arrow keys move');
		await O.locator('#person-menu .menu-item', { hasText: 'Make moderator' }).click();
		await P.locator('#people-list .person-btn:has-text("pete") .role-tag', { hasText: 'mod' }).waitFor();
		await P.locator('#topic-btn').waitFor();
		await O.click('#people-list .person-btn:has-text("pete")');
		await O.locator('#person-menu .menu-item', { hasText: 'Remove moderator' }).click();
		await P.locator('#topic-btn').waitFor({ state: 'hidden' });
		await O.click('#people-list .person-btn:has-text("pete")');
		await O.locator('#person-menu .menu-item', { hasText: 'Mute' }).click();
		await O.locator('#log li.line', { hasText: /mute/i }).first().waitFor();
		await say(P, 'can I still talk?');
		await P.locator('#send-error', { hasText: /mute/i }).waitFor();
		await P.fill('#composer-input', '');
		await O.click('#people-list .person-btn:has-text("pete")');
		await O.locator('#person-menu .menu-item', { hasText: 'Kick' }).click();
		await P.locator('#not-member').waitFor();
		await waitPeople(O, ['olga']);
	});
	await closeUser(olga);
	await closeUser(pete);
}

/* Issue 16, point 5: the web client resumes, catches up on every missed
 * message in order, marks a gap it cannot fill, and after a restart of
 * the server joins afresh without ghosts. */
async function resume(browser, base) {
	const relay = await startRelay(base);
	const rita = await newUser(browser, 'rita');
	const sam = await newUser(browser, 'sam');
	const R = rita.page;
	const S = sam.page;
	const drop = async () => {
		allowWsErrors = true;
		relay.down(true);
		relay.cut();
		await R.locator('#conn:not([data-state="open"])').waitFor();
	};
	const back = async () => {
		relay.down(false);
		await R.evaluate(() => window.parley.chat.reconnectNow());
		await R.locator('#conn[data-state="open"]').waitFor({ timeout: 20000 });
	};
	const burst = (room, n, tag) => S.evaluate(async ([room, n, tag]) => {
		for (let i = 1; i <= n; i++)
			window.parley.chat.send('send_message', { roomName: room, message: `${tag} ${i}` });
		await window.parley.chat.request('ping');
	}, [room, n, tag]);
	const shown = (tag) => R.evaluate((tag) => [...document.querySelectorAll('#log li.msg .text')]
	    .map((e) => e.textContent).filter((t) => t.startsWith(`${tag} `)), tag);
	try {
		await step('resume: a client that missed 80 messages shows all of them, in order', async () => {
			await R.goto(relay.url);
			await connected(R);
			if (!(await R.evaluate(() => window.parley.chat.features.has('resume'))))
				throw new Skip('server without resume');
			await setName(R, 'rita');
			await S.goto(base);
			await connected(S);
			await setName(S, 'sam');
			await S.fill('#create-input', 'night-shift');
			await S.press('#create-input', 'Enter');
			await R.click('#sidebar .room:has-text("night-shift")');
			await roomTitle(R, 'night-shift');
			await S.fill('#create-input', 'scratch');
			await S.press('#create-input', 'Enter');
			await roomTitle(S, 'scratch');
			await R.click('#sidebar .room:has-text("scratch")');
			await roomTitle(R, 'scratch');
			await R.click('#sidebar .room:has-text("night-shift")');
			await roomTitle(R, 'night-shift');
			await S.click('#sidebar .room:has-text("night-shift")');
			await roomTitle(S, 'night-shift');
			await say(S, 'before the drop');
			await message(R, 'before the drop').waitFor();
			await drop();
			await burst('night-shift', 80, 'missed');
			/* a room deleted meanwhile */
			const deleted = await S.evaluate(() => window.parley.chat.request('delete_room',
			    { roomName: 'scratch' }, { sync: true }).then(() => true, () => false));
			await back();
			if (!deleted) console.log('  (this server deletes no rooms: not checked)');
			if (deleted) {
				await R.locator('.toast', { hasText: '#scratch no longer exists' }).waitFor();
				await R.locator('#sidebar .room', { hasText: 'scratch' }).waitFor({ state: 'detached' });
			}
			await R.locator('.toast', { hasText: 'resumed as rita' }).waitFor();
			await R.waitForFunction(() => document.querySelectorAll('#log li.msg').length >= 81);
			const got = await shown('missed');
			const want = Array.from({ length: 80 }, (_, i) => `missed ${i + 1}`);
			check(got.join('|') === want.join('|'), `shown ${got.length}: ${got.slice(0, 3)}…${got.slice(-2)}`);
			const seqs = await R.evaluate(() => [...document.querySelectorAll('#log li.msg')]
			    .map((e) => Number(e.dataset.seq)));
			check(seqs.every((x, i) => i === 0 || x === seqs[i - 1] + 1), 'seqs consecutive');
			check(await R.locator('#log .sep.gap').count() === 0, 'no gap mark');
			check(await R.inputValue('#name-input') === 'rita', 'same name');
			check(await R.evaluate(() => {
				const secret = window.parley.chat.session;
				const kept = JSON.stringify({ ...localStorage, ...sessionStorage }) + document.cookie;
				return typeof secret === 'string' && secret.length >= 16 && !kept.includes(secret);
			}), 'the session secret is in memory only');
			/* sam saw no leave or join */
			check(await S.locator('#log li.presence', { hasText: 'rita' }).count() === 1,
			    `sam's view: ${await S.locator('#log li.presence').allTextContents()}`);
			await message(R, 'before the drop').waitFor();
			check(await message(R, 'before the drop').count() === 1, 'no duplicate');
			allowWsErrors = false;
		});
	} finally {
		/* The page moves on to another server: the old way is not a fault. */
		allowWsErrors = true;
		await R.goto('about:blank');
		relay.close();
		allowWsErrors = false;
	}

	/* A server whose history is shorter than the gap, then restarted. */
	const extra = ['plugins = {}', 'history_size = 20', 'message_burst = 200'];
	const gbase = await startServer(extra);
	const gdir = servers[servers.length - 1].dir;
	const grelay = await startRelay(gbase);
	try {
		await step('resume: a gap the server cannot fill is marked', async () => {
			await R.goto(grelay.url);
			await connected(R);
			if (!(await R.evaluate(() => window.parley.chat.features.has('resume'))))
				throw new Skip('server without resume');
			await setName(R, 'rita');
			await S.goto(gbase);
			await connected(S);
			await setName(S, 'sam');
			await S.fill('#create-input', 'short-memory');
			await S.press('#create-input', 'Enter');
			await R.click('#sidebar .room:has-text("short-memory")');
			await roomTitle(R, 'short-memory');
			await say(S, 'still here');
			await message(R, 'still here').waitFor();
			allowWsErrors = true;
			grelay.down(true);
			grelay.cut();
			await R.locator('#conn:not([data-state="open"])').waitFor();
			await burst('short-memory', 40, 'lost');
			grelay.down(false);
			await R.evaluate(() => window.parley.chat.reconnectNow());
			await R.locator('#conn[data-state="open"]').waitFor({ timeout: 20000 });
			await R.locator('#log .sep.gap', { hasText: 'Some messages are not available' }).waitFor();
			const got = await shown('lost');
			const want = Array.from({ length: 20 }, (_, i) => `lost ${i + 21}`);
			check(got.join('|') === want.join('|'), `shown ${got}`);
			const before = await R.evaluate(() => {
				let e = document.querySelector('#log .sep.gap');
				while (e && !e.classList.contains('msg')) e = e.nextElementSibling;
				return e?.querySelector('.text')?.textContent;
			});
			check(before === 'lost 21', `the mark stands before ${before}`);
			allowWsErrors = false;
		});

		await step('a restart of the server: a fresh join, without ghost rooms', async () => {
			const proc = servers.find((x) => x.dir === gdir).proc;
			allowWsErrors = true;
			grelay.down(true);
			await stopOne(proc, 'SIGKILL');
			grelay.cut();
			await R.locator('#conn:not([data-state="open"])').waitFor();
			/* A new server with nothing from before: no sessions, no
			 * rooms but the configured one. */
			const nbase = await startServer(extra);
			grelay.retarget(nbase);
			grelay.down(false);
			await R.evaluate(() => window.parley.chat.reconnectNow());
			await R.locator('#conn[data-state="open"]').waitFor({ timeout: 20000 });
			await R.locator('.toast', { hasText: 'session had expired' }).waitFor();
			await R.locator('.toast', { hasText: '#short-memory no longer exists' }).waitFor();
			await R.locator('#sidebar .room', { hasText: 'short-memory' }).waitFor({ state: 'detached' });
			await R.waitForFunction(() => document.getElementById('name-input').value === 'rita');
			await roomTitle(R, 'general');
			await waitPeople(R, ['rita']);
			const rooms = await R.locator('#sidebar .room .room-name').allTextContents();
			check(rooms.join() === 'general', `rooms listed: ${rooms}`);
			allowWsErrors = false;
		});
	} finally {
		await closeUser(rita);
		await closeUser(sam);
		grelay.close();
	}
}

/* Issue 17, point 2: the account shown when it came from the site (a
 * token checked before the upgrade). */
async function siteAccount(browser) {
	const plugin = [dirname(dirname(PARLEYD)), TOP, process.cwd()]
	    .map((d) => join(d, 'plugins', '.libs', 'auth-jwt.so')).find((f) => existsSync(f)) ?? '';
	const secret = 'a shared secret of the site, 32 bytes or more long!';
	await step('an account that came from the site is shown', async () => {
		if (!existsSync(plugin)) throw new Skip('the auth-jwt plugin is not built');
		const jbase = await startServer([
			`plugins = { ${luaString(plugin)} }`,
			`plugin_options = { ["auth-jwt"] = { algorithm = "HS256", key = ${luaString(secret)}, audience = "parley", token_from = "cookie:site_jwt" } }`,
		]);
		const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
		const now = Math.floor(Date.now() / 1000);
		const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: 'vera', name: 'Vera', iat: now, exp: now + 600, aud: 'parley' })}`;
		const sig = createHmac('sha256', secret).update(body).digest('base64url');
		const vera = await newUser(browser, 'vera');
		const u = new URL(jbase);
		await vera.context.addCookies([{ name: 'site_jwt', value: `${body}.${sig}`,
		    domain: u.hostname, path: '/' }]);
		await vera.page.goto(jbase);
		await connected(vera.page);
		await vera.page.locator('#me-tag', { hasText: 'signed in by the site' }).waitFor();
		const shown = await vera.page.textContent('#me');
		check(/\bvera\b/i.test(shown), `the account name: "${shown}"`);
		check(await vera.page.locator('#login-btn').isHidden(), 'no sign-in offered');
		check(await vera.page.locator('#logout-btn').isHidden(), 'no sign-out of the site\'s account');
		await closeUser(vera);
	});
}

/* axe-core from tests/browser/node_modules, evaluated in the page (not a
 * script tag, which the page's CSP rightly refuses). */
let axeSource = null;
async function axe(page, what) {
	if (axeSource === null) {
		try {
			axeSource = readFileSync(join(here, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
		} catch {
			throw new Skip('axe-core is missing; run npm ci in tests/browser');
		}
	}
	if (!(await page.evaluate(() => Boolean(window.axe)))) await page.evaluate(axeSource);
	const result = await page.evaluate(() => window.axe.run(document, {
		resultTypes: ['violations'],
	}));
	const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
	check(bad.length === 0, `${what}: ${bad.map((v) => `${v.id} (${v.impact}): ${
	    v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('; ')}`).join(' | ')}`);
	return result.violations.length;
}

/* Issue 17, point 5: axe-core on the desktop and phone layouts in light
 * and dark mode, and the screenshots of those four. */
async function accessibility(browser, base) {
	const ana = await newUser(browser, 'ana');
	const ben = await newUser(browser, 'ben');
	const P = ana.page;
	const Q = ben.page;
	const docDir = process.env.PARLEY_DOC_SCREENSHOTS;
	await step('a conversation to look at', async () => {
		await Q.goto(`${base}#product`);
		await connected(Q);
		await setName(Q, 'ben');
		await Q.fill('#create-input', 'product');
		await Q.press('#create-input', 'Enter');
		await roomTitle(Q, 'product');
		await P.goto(`${base}#product`);
		await connected(P);
		await setName(P, 'ana');
		await roomTitle(P, 'product');
		const talk = [
			[Q, 'Morning! The release notes draft is up: https://example.com/notes/0.3'],
			[P, 'Reading it now. The resume section reads well.'],
			[Q, '@ana can you check the screenshots on a phone?'],
			[P, 'Will do after standup.'],
			[Q, 'Thanks! I will tag the release at 15:00.'],
		];
		for (const [page, text] of talk) {
			await say(page, text);
			await message(page === P ? Q : P, text).waitFor();
		}
		await Q.evaluate(() => window.parley.chat.request('set_topic', { roomName: 'product',
		    topic: 'Release 0.3: notes, screenshots, the tag at 15:00' }, { sync: true }))
		    .catch(() => {});
		await Q.evaluate(() => window.parley.chat.request('direct_message',
		    { username: 'ana', message: 'Got a minute after standup?' }, { sync: true }))
		    .catch(() => {});
		await P.click('#sidebar .room:has-text("general")');
		await roomTitle(P, 'general');
		await say(Q, 'Ana, one more: the dark mode colours look off on my laptop.');
		await P.locator('#joined-list .room:has-text("product") .badge').first().waitFor();
		await P.click('#joined-list .room:has-text("product")');
		await P.fill('#composer-input', 'Looking at it');
		await P.locator('#composer-input').blur();
		await P.mouse.move(0, 0);
	});
	const layouts = [['desktop', { width: 1280, height: 800 }], ['phone', { width: 390, height: 844 }]];
	for (const [layout, size] of layouts) {
		for (const scheme of ['light', 'dark']) {
			await step(`axe-core: no serious or critical violation, ${layout}, ${scheme}`, async () => {
				await P.setViewportSize(size);
				await P.emulateMedia({ colorScheme: scheme });
				await sleep(350);
				const n = await axe(P, `${layout} ${scheme}`);
				console.log(`  axe-core ${layout} ${scheme}: ${n} minor or moderate findings`);
				const file = `${layout}-${scheme}.png`;
				await P.screenshot({ path: join(OUT, file) });
				if (docDir) copyFileSync(join(OUT, file), join(docDir, `screenshot-${file}`));
			});
		}
	}
	await step('axe-core: the sign-in dialog and the participant menu', async () => {
		await P.setViewportSize({ width: 1280, height: 800 });
		for (const scheme of ['light', 'dark']) {
			await P.emulateMedia({ colorScheme: scheme });
			if (await P.locator('#login-btn').isVisible()) {
				await P.click('#login-btn');
				await axe(P, `sign-in dialog, ${scheme}`);
				await P.screenshot({ path: join(OUT, `sign-in-${scheme}.png`) });
				await P.keyboard.press('Escape');
			}
			await P.click('#people-list .person-btn:has-text("ben")');
			await P.locator('#person-menu').waitFor();
			await axe(P, `participant menu, ${scheme}`);
			await P.screenshot({ path: join(OUT, `menu-${scheme}.png`) });
			await P.keyboard.press('Escape');
			await P.locator('#person-menu').waitFor({ state: 'hidden' });
		}
		await P.emulateMedia({ colorScheme: 'light' });
	});
	await closeUser(ana);
	await closeUser(ben);
}

const watchdog = setTimeout(async () => {
	console.log(`FAIL: the whole test took longer than ${TOTAL_MS} ms`);
	for (const { proc } of servers) proc.kill('SIGKILL');
	process.exit(1);
}, TOTAL_MS);

let status = 0;
try {
	await main();
} catch (e) {
	status = 1;
	if (failed === 0) {
		console.log(`FAIL: ${e.message}`);
		failed++;
	}
	if (problems.length) console.log(`console:\n  ${problems.join('\n  ')}`);
} finally {
	await stopServer();
	if (tmp) rmSync(tmp, { recursive: true, force: true });
	clearTimeout(watchdog);
}
console.log(`screenshots and logs in ${OUT}`);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(status);
