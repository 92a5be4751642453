#!/usr/bin/python3
#
# test_hostile.py: hostile peers over real sockets: garbage where an HTTP
# request belongs, requests trickled in, hundreds of connections that
# never finish a request, absurd frame lengths, unmasked frames, floods
# of malformed and deeply nested JSON, message, room and name floods,
# names that are not text, and a client that never reads. Throughout, a
# normal client must be served, and clients that keep up must receive
# every accepted message of their room exactly once, in seq order. The
# server's resident memory is sampled during the cases and must stay
# bounded; the figures are printed.

import asyncio
import base64
import json
import os
import random
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Suite, Skip, RawWS, ConnectionEnded,  # noqa
    TestFailure, check, check_eq, make_frame, close_payload,
    read_http_head, http_get, scaled, uniq, HOST, SCALE, VALGRIND,
    OP_TEXT, OP_BINARY, OP_CONT, OP_CLOSE, OP_PING, OP_PONG)

suite = Suite("hostile")
case = suite.case

# The shared server of the hostile cases. Limits are set so that the
# floods hit them while the honest clients of a case stay within them:
# message_burst covers N_EACH messages per honest sender; flooders go past
# it and are closed after flood_close_after refusals in a row.
# Under valgrind the server is some 20 times slower: fewer messages from
# the honest senders (the flooders and the slow consumer need as many).
N_EACH = 200 if VALGRIND else 2000
BURST = 2100
HOSTILE = {
	"http_timeout": 2,
	"message_timeout": 2,
	# room for a reader that the busy test process starves for a moment
	# (a sanitizer build, parallel tests); the stalled members are still
	# dropped, far sooner than the traffic they are sent
	"max_output_bytes": 262144,
	"messages_per_minute": 1,
	"message_burst": BURST,
	"rooms_per_minute": 1,
	"room_burst": 5,
	"names_per_minute": 1,
	"name_burst": 20,
	"flood_close_after": 50,
	"ping_interval": 60,
}

MIB = 1 << 20
RSS_CEILING = 200 * MIB   # never, whatever the case
RSS_RETURN = 64 * MIB     # afterwards, at most this above the start


# ---------------------------------------------------------------------------
# Resident memory of the server

def vmrss(pid):
	"""The process's VmRSS in bytes, or None when it is gone."""
	try:
		with open("/proc/%d/status" % pid) as f:
			for line in f:
				if line.startswith("VmRSS:"):
					return int(line.split()[1]) * 1024
	except OSError:
		return None
	return None


def fd_count(pid):
	try:
		return len(os.listdir("/proc/%d/fd" % pid))
	except OSError:
		return None


class RssWatch:
	"""Samples one process's RSS every few milliseconds in a thread."""

	def __init__(self, pid):
		self.pid = pid
		self.start = vmrss(pid)
		self.peak = self.start or 0
		self.peak_case = "start"
		self.current_case = "start"
		self.per_case = []
		self._stop = False
		self._thread = threading.Thread(target=self._run, daemon=True)
		self._thread.start()

	def _run(self):
		while not self._stop:
			v = vmrss(self.pid)
			if v is None:
				return
			if v > self.peak:
				self.peak = v
				self.peak_case = self.current_case
			time.sleep(0.005)

	def stop(self):
		self._stop = True
		self._thread.join(1)


_watch = {}


def mib(n):
	return "%.1f MiB" % (n / MIB) if n is not None else "?"


def hostile(t, name):
	"""The shared hostile server, with its RSS watched from its start."""
	s = t.shared(HOSTILE)
	w = _watch.get(s.proc.pid)
	if w is None:
		w = _watch[s.proc.pid] = RssWatch(s.proc.pid)
	w.current_case = name
	t.watch = w
	t.server = s  # so that the runner checks it is alive afterwards
	return s


def rss_note(t, s):
	"""Prints the RSS after a case and the case's peak."""
	w = t.watch
	now = vmrss(s.proc.pid)
	if now is not None and now > w.peak:
		w.peak, w.peak_case = now, w.current_case
	w.per_case.append((w.current_case, now, w.peak))
	print("    RSS: %s now, peak so far %s (start %s)" % (mib(now),
	    mib(w.peak), mib(w.start)))
	if not VALGRIND:
		check(w.peak < RSS_CEILING, "RSS peaked at %s" % mib(w.peak))


# ---------------------------------------------------------------------------
# Connections

async def open_tcp(server, src=None, rcvbuf=None):
	"""A TCP connection, from src when given, with the receive buffer
	shrunk before connecting when rcvbuf is given."""
	sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
	try:
		if rcvbuf is not None:
			sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
			    rcvbuf)
		if src is not None:
			sock.bind((src, 0))
		sock.setblocking(False)
		await asyncio.wait_for(asyncio.get_running_loop().sock_connect(
		    sock, (HOST, server.port)), scaled(5))
		return await asyncio.open_connection(sock=sock)
	except BaseException:
		sock.close()
		raise


def upgrade_request(server, key=None):
	key = key or base64.b64encode(os.urandom(16)).decode()
	return ("GET /ws HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
	    "Sec-WebSocket-Version: 13\r\n\r\n" % (HOST, server.port,
	    key)).encode()


async def raw_tuned(t, server, rcvbuf=None, label="raw"):
	"""A RawWS with a chosen receive buffer; the welcome is read."""
	reader, writer = await open_tcp(server, rcvbuf=rcvbuf)
	ws = RawWS(reader, writer, label)
	t.clients.append(ws)
	writer.write(upgrade_request(server))
	resp = await read_http_head(reader, scaled(5))
	check_eq(resp.status, 101, "%s: upgrade status" % label)
	ws.welcome = await ws.read_json("welcome")
	return ws


async def json_client(t, server, prefix, **kw):
	"""A named client whose receive queue is unbounded, so that a burst
	never makes the library stop reading."""
	c = await t.client(server, label=prefix, max_queue=None, **kw)
	await c.set_name(uniq(prefix))
	return c


async def read_until_eof(reader, timeout):
	"""Reads and discards until EOF or a reset; returns (seconds, bytes)
	or (None, bytes) on timeout."""
	t0 = time.monotonic()
	deadline = t0 + timeout
	got = bytearray()
	while True:
		left = deadline - time.monotonic()
		if left <= 0:
			return None, bytes(got)
		try:
			data = await asyncio.wait_for(reader.read(65536), left)
		except asyncio.TimeoutError:
			return None, bytes(got)
		except ConnectionError:
			return time.monotonic() - t0, bytes(got)
		if not data:
			return time.monotonic() - t0, bytes(got)
		got += data


async def served(t, server, label="bystander"):
	"""A normal client gets in and is answered; returns the seconds it
	took."""
	t0 = time.monotonic()
	c = await t.client(server, label=label)
	await c.sync()
	dt = time.monotonic() - t0
	await c.close()
	return dt


def frames(*payloads):
	return b"".join(make_frame(OP_TEXT, p if isinstance(p, bytes) else
	    json.dumps(p, ensure_ascii=False).encode()) for p in payloads)


# ---------------------------------------------------------------------------
# Before the upgrade

GARBAGE = [
	("random bytes", bytes(random.Random(1).getrandbits(8)
	    for _ in range(4096))),
	("TLS client hello", bytes.fromhex("16030100a5010000a10303") +
	    bytes(range(160))),
	("SSH banner", b"SSH-2.0-OpenSSH_9.2\r\n"),
	("blank lines", b"\r\n" * 2000),
	("NUL in the request line", b"GET /ws\x00 HTTP/1.1\r\nHost: x\r\n\r\n"),
	("unknown HTTP version", b"GET /ws HTTP/9.9\r\nHost: x\r\n\r\n"),
	("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
	("header without a colon", b"GET /ws HTTP/1.1\r\nHost x\r\n\r\n"),
	("request line of 100 KB", b"GET /" + b"a" * 100000 +
	    b" HTTP/1.1\r\nHost: x\r\n\r\n"),
	("2,000 headers", b"GET /ws HTTP/1.1\r\nHost: x\r\n" + b"".join(
	    b"X-H%d: %s\r\n" % (i, b"v" * 64) for i in range(2000)) + b"\r\n"),
	("a frame instead of a request", make_frame(OP_TEXT,
	    b'{"type":"ping"}')),
	("high bytes in a header", b"GET /ws HTTP/1.1\r\nHost: \xff\xfe\x80"
	    b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	    b"Sec-WebSocket-Key: \xc3\x28\xa0\xa1==\r\n"
	    b"Sec-WebSocket-Version: 13\r\n\r\n"),
	("bad key", b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
	    b"Connection: Upgrade\r\nSec-WebSocket-Key: x\r\n"
	    b"Sec-WebSocket-Version: 13\r\n\r\n"),
	("huge Content-Length", b"GET /ws HTTP/1.1\r\nHost: x\r\n"
	    b"Content-Length: 99999999999999999999\r\n\r\n"),
	("chunked garbage", b"POST /ws HTTP/1.1\r\nHost: x\r\n"
	    b"Transfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n"),
]


@case(config=None, timeout=40)
async def test_garbage_before_upgrade(t):
	s = hostile(t, "garbage before the upgrade")
	comp = await t.client(s, label="companion")
	# the same garbage in front of a valid upgrade request too
	cases = GARBAGE + [(name + ", then an upgrade", data +
	    upgrade_request(s)) for name, data in GARBAGE[:3]]

	async def one(name, data):
		reader, writer = await open_tcp(s)
		try:
			writer.write(data)
			try:
				await asyncio.wait_for(writer.drain(), scaled(5))
			except ConnectionError:
				pass
			dt, got = await read_until_eof(reader, scaled(2) + 5)
		finally:
			writer.close()
		return name, dt, got

	results = await asyncio.gather(*[one(n, d) for n, d in cases])
	for name, dt, got in results:
		check(dt is not None, "%s: connection still open after %gs" %
		    (name, scaled(2) + 5))
		if got:
			line = got.split(b"\r\n", 1)[0]
			check(line.startswith(b"HTTP/1."), "%s: answered %r" %
			    (name, got[:80]))
			status = int(line.split()[1])
			check(400 <= status < 600, "%s: status %d" % (name,
			    status))
	print("    answers: %s" % "; ".join("%s: %s in %.1fs" % (name,
	    got.split(b"\r\n", 1)[0].decode("latin-1")[9:] if got else
	    "closed", dt) for name, dt, got in results))
	await comp.sync()
	await served(t, s)
	rss_note(t, s)


@case(config=None, timeout=40)
async def test_trickled_headers_within_timeout(t):
	# a byte every 15 ms: the whole request takes longer than the
	# http_timeout of 2 s, but no gap does, so it must work
	s = hostile(t, "trickled headers")
	comp = await t.client(s, label="companion")
	reader, writer = await open_tcp(s)
	raw = RawWS(reader, writer, "trickle")
	t.clients.append(raw)
	req = upgrade_request(s)
	t0 = time.monotonic()
	for i in range(len(req)):
		writer.write(req[i:i + 1])
		await writer.drain()
		await asyncio.sleep(0.015)
	dt = time.monotonic() - t0
	check(dt > 2, "the trickle took %.1fs, want more than http_timeout" %
	    dt)
	resp = await read_http_head(reader, scaled(5))
	check_eq(resp.status, 101, "status after a trickled request")
	await raw.read_json("welcome")
	await raw.send_json({"type": "ping", "id": 1})
	check_eq(await raw.read_json(), {"type": "pong", "id": 1}, "reply")
	print("    %d bytes over %.1fs: upgraded" % (len(req), dt))
	await comp.sync()
	rss_note(t, s)


@case(config=None, timeout=60)
async def test_half_open_flood(t):
	# 300 connections that never finish a request: a third send nothing,
	# a third half a request line, a third all headers but the last
	# CRLF. A normal client is still served, and http_timeout reaps them.
	s = hostile(t, "300 half-open connections")
	pid = s.proc.pid
	fds_before = fd_count(pid)
	full = upgrade_request(s)
	partial = [b"", b"GET /ws HTTP/1.1\r\nHost: 127", full[:-2]]
	conns = []
	t0 = time.monotonic()
	for i in range(300):
		reader, writer = await open_tcp(s)
		if partial[i % 3]:
			writer.write(partial[i % 3])
		conns.append((reader, writer))
	dt_open = time.monotonic() - t0
	await asyncio.sleep(0.2)
	fds_during = fd_count(pid)
	dt_served = await served(t, s)
	r = await http_get(s, "/healthz")
	check_eq(r.status, 200, "/healthz during the flood")
	print("    300 opened in %.2fs; server fds %d before, %d during; a "
	    "client served in %.3fs" % (dt_open, fds_before, fds_during,
	    dt_served))
	check(fds_during >= fds_before + 250, "the server holds %d fds, "
	    "%d before: were the connections accepted?" % (fds_during,
	    fds_before))
	check(dt_served < scaled(2), "a client took %.2fs to be served" %
	    dt_served)
	results = await asyncio.gather(*[read_until_eof(r, scaled(2) + 6)
	    for r, w in conns])
	for r, w in conns:
		w.close()
	open_ones = sum(1 for dt, got in results if dt is None)
	check_eq(open_ones, 0, "connections still open after http_timeout")
	for dt, got in results:
		check(not got.startswith(b"HTTP/1.1 101"), "upgraded: %r" %
		    got[:60])
	latest = time.monotonic() - t0
	deadline = time.monotonic() + scaled(3)
	while fd_count(pid) > fds_before + 2 and time.monotonic() < deadline:
		await asyncio.sleep(0.05)
	fds_after = fd_count(pid)
	print("    all 300 closed by the server within %.1fs of opening; "
	    "fds after: %d" % (latest, fds_after))
	check(fds_after <= fds_before + 2, "server fds %d after, %d before" %
	    (fds_after, fds_before))
	await served(t, s)
	rss_note(t, s)


# ---------------------------------------------------------------------------
# Frames

@case(config=None, timeout=40)
async def test_huge_frame_lengths(t):
	# lengths are refused from the frame header, before any allocation
	s = hostile(t, "huge frame lengths")
	comp = await t.client(s, label="companion")
	pid = s.proc.pid
	before = vmrss(pid)
	for length, code in ((1 << 63, 1002), ((1 << 64) - 1, 1002),
	    (1 << 62, 1009), (1 << 32, 1009), (65537, 1009)):
		for op in (OP_TEXT, OP_BINARY, OP_CONT):
			raw = await raw_tuned(t, s, label="len %d" % length)
			await raw.send_frame(op, b"x" * 1000, length=length)
			want = code
			if op == OP_CONT and code == 1009:
				want = 1002  # a continuation with nothing to continue
			try:
				await raw.expect_close(want)
			except TestFailure as e:
				raise TestFailure("length %d, opcode %d: %s" %
				    (length, op, e))
	# a fragmented message whose pieces add up past the limit
	raw = await raw_tuned(t, s, label="fragments")
	await raw.send_frame(OP_TEXT, b"[" * 40000, fin=False)
	await raw.send_frame(OP_CONT, b"", length=1 << 62)
	await raw.expect_close(1009)
	after = vmrss(pid)
	print("    RSS %s before, %s after 17 absurd lengths" % (mib(before),
	    mib(after)))
	if not VALGRIND:
		check(after - before < 8 * MIB, "RSS grew by %s" %
		    mib(after - before))
	await comp.sync()
	rss_note(t, s)


@case(config=None)
async def test_unmasked_frames(t):
	s = hostile(t, "unmasked frames")
	comp = await t.client(s, label="companion")
	for op, payload in ((OP_TEXT, b'{"type":"ping"}'), (OP_BINARY, b"x"),
	    (OP_PING, b"p"), (OP_PONG, b""), (OP_CLOSE, close_payload(1000))):
		raw = await raw_tuned(t, s, label="unmasked %d" % op)
		await raw.send_frame(op, payload, mask=False)
		await raw.expect_close(1002)
	# unmasked in the middle of a good conversation
	raw = await raw_tuned(t, s, label="later")
	await raw.send_json({"type": "ping", "id": 1})
	check_eq(await raw.read_json(), {"type": "pong", "id": 1}, "reply")
	await raw.send_frame(OP_TEXT, b'{"type":"ping","id":2}', mask=False)
	await raw.expect_close(1002)
	await comp.sync()
	rss_note(t, s)


# Frames that are valid UTF-8 but not exactly one JSON object.
MALFORMED = [
	b"", b" ", b"{", b"}", b"[", b"]", b"[]", b"42", b"-", b"1e999999",
	b'"text"', b"null", b"true", b"NaN", b"\x00", b"\t\n\r ",
	b'{"type":"ping"', b'{"type":"ping"}}', b'{"type":"ping"} x',
	b'{"type":"ping"}{"type":"ping"}', b"{'type':'ping'}",
	b'{"type":ping}', b'{type:"ping"}', b'{"a":1,}', b'{"a" 1}',
	b'{"a":01}', b'{"a":"\\x"}', b'{"a":"\\ud800"}', b'{"a":"\\u12"}',
	b'{"a":"tab\there"}', b'{"a":"nl\nhere"}', b'{"a"\x00:1}',
	b'[{"type":"ping"}]', b'{"a":[1,2}', b'{"a":tru}', b'{"a":1e}',
	b'{"a":.5}', b'{"a":+1}', b'{"a":0x10}', b'\xef\xbb\xbf{}',
	'{"\u00e9":"\u20ac"'.encode(), b'/* c */ {}', b'{"a":1} // c',
]


@case(config=None, timeout=60)
async def test_malformed_json_flood(t):
	# 10,000 malformed frames on one connection: each answered with
	# bad_json (no id), and the connection kept
	s = hostile(t, "10,000 malformed JSON frames")
	comp = await t.client(s, label="companion")
	raw = await raw_tuned(t, s, label="malformed")
	rnd = random.Random(7)
	alphabet = b"{}[]:,\"\\ abcxyz0123456789.-+eE\ttrue\nnull"
	bad = []
	for i in range(10000):
		if i % 2 == 0:
			bad.append(MALFORMED[(i // 2) % len(MALFORMED)])
		else:
			n = rnd.randrange(1, 60)
			junk = bytes(rnd.choice(alphabet) for _ in range(n))
			bad.append(b"x" + junk)  # never an object, never valid
	counts = {}
	others = []

	async def reader():
		n = 0
		while n < len(bad):
			f = await raw.read_frame(timeout=20)
			check_eq(f.opcode, OP_TEXT, "reply opcode")
			m = f.json()
			n += 1
			key = (m.get("type"), m.get("code"))
			counts[key] = counts.get(key, 0) + 1
			if key != ("error", "bad_json") or "id" in m:
				others.append((bad[n - 1][:60], m))

	t0 = time.monotonic()
	task = asyncio.ensure_future(reader())
	try:
		# paced by the replies: what one loop turn of the server queues
		# for us stays under max_output_bytes
		for i in range(0, len(bad), 200):
			await raw.send_raw(frames(*bad[i:i + 200]))
			while sum(counts.values()) < i - 200 and not task.done():
				await asyncio.sleep(0.002)
				check(time.monotonic() - t0 < scaled(40),
				    "replies stuck at %d" % sum(counts.values()))
		await asyncio.wait_for(asyncio.shield(task), scaled(40))
	finally:
		task.cancel()
	dt = time.monotonic() - t0
	check(not others, "not bad_json: %r" % others[:10])
	check_eq(counts, {("error", "bad_json"): 10000}, "replies")
	await raw.send_json({"type": "ping", "id": 10001})
	check_eq(await raw.read_json(), {"type": "pong", "id": 10001},
	    "reply after 10,000 malformed frames")
	print("    10,000 malformed frames answered with bad_json in %.2fs" %
	    dt)
	await comp.sync()
	rss_note(t, s)


@case(config=None, timeout=30)
async def test_deep_nesting(t):
	# max_json_depth is 32 (the default): the nesting is checked before
	# the parser sees the text, and strings do not count
	s = hostile(t, "deeply nested JSON")
	comp = await t.client(s, label="companion")
	raw = await raw_tuned(t, s, label="deep")

	def ping_with(i, x):
		return ('{"type":"ping","id":%d,"x":%s}' % (i, x)).encode()

	ok = [
		ping_with(1, "[" * 31 + "]" * 31),     # depth 32
		ping_with(2, "{\"a\":" * 31 + "1" + "}" * 31),
		ping_with(3, '"' + "[" * 5000 + '"'),  # brackets in a string
		ping_with(4, '"\\"' + "{" * 100 + '"'),
		ping_with(5, '"\\\\"' + ",\"y\":" + "[" * 30 + "]" * 30),
	]
	bad = [
		ping_with(6, "[" * 32 + "]" * 32),     # depth 33
		ping_with(7, "{\"a\":" * 32 + "1" + "}" * 32),
		b"[" * 60000,
		b"{\"a\":" * 10000 + b"1" + b"}" * 10000,
		ping_with(8, '"\\\\"' + ",\"y\":" + "[" * 40 + "]" * 40),
		ping_with(9, "[" * 100000 + "]" * 100000)[:65536],
	]
	for i, f in enumerate(ok):
		await raw.send_frame(OP_TEXT, f)
		check_eq(await raw.read_json(), {"type": "pong", "id": i + 1},
		    "nesting within the limit (%d)" % (i + 1))
	for f in bad:
		await raw.send_frame(OP_TEXT, f)
		m = await raw.read_json()
		check_eq((m.get("type"), m.get("code")), ("error", "bad_json"),
		    "nesting past the limit: %r..." % f[:40])
		check("id" not in m, "bad_json carries no id")
	await raw.send_json({"type": "ping", "id": 99})
	check_eq(await raw.read_json(), {"type": "pong", "id": 99},
	    "connection kept")
	await comp.sync()
	rss_note(t, s)


# ---------------------------------------------------------------------------
# Floods

async def drain_until_close(raw, timeout=20):
	"""Reads a flooder's frames until the server's close; returns (the
	JSON frames, the close code)."""
	msgs = []
	deadline = time.monotonic() + scaled(timeout)
	while True:
		left = max(deadline - time.monotonic(), 0.001) / SCALE
		try:
			f = await raw.read_frame(left)
		except ConnectionEnded as e:
			raise TestFailure("%s: connection ended without a close "
			    "frame (%s) after %d frames" % (raw.label, e,
			    len(msgs)))
		if f.opcode == OP_CLOSE:
			await raw.send_frame(OP_CLOSE, close_payload(1000))
			return msgs, f.close_code
		if f.opcode == OP_TEXT:
			msgs.append(f.json())


def tally(msgs):
	out = {}
	for m in msgs:
		k = m["type"] if m["type"] != "error" else m["code"]
		out[k] = out.get(k, 0) + 1
	return out


@case(config=None, timeout=60)
async def test_message_flood(t):
	s = hostile(t, "message flood")
	room = uniq("mf")
	obs = await json_client(t, s, "obs")
	await obs.create(room)
	fl = await raw_tuned(t, s, label="flooder")
	await fl.send_json({"type": "join_room", "roomName": room, "id": 0})
	await fl.read_json("room_joined")
	n = BURST + 200
	reader = asyncio.ensure_future(drain_until_close(fl, 40))
	try:
		for i in range(0, n, 100):
			await fl.send_raw(frames(*[{"type": "send_message",
			    "roomName": room, "message": "f%d" % j, "id": j}
			    for j in range(i, min(n, i + 100))]))
			await asyncio.sleep(0.005)
		msgs, code = await asyncio.wait_for(asyncio.shield(reader),
		    scaled(40))
	finally:
		reader.cancel()
	counts = tally(msgs)
	check_eq(code, 1008, "close code for a flood")
	own = [m for m in msgs if m["type"] == "new_message"]
	limited = [m for m in msgs if m.get("code") == "rate_limited"]
	check_eq(len(own), BURST, "messages accepted (message_burst)")
	check_eq([m["message"] for m in own], ["f%d" % j for j in
	    range(BURST)], "accepted messages in order")
	check_eq([m["id"] for m in limited], list(range(BURST, BURST + 49)),
	    "rate_limited ids before the close")
	# the observer got exactly the accepted ones, in order, then the
	# flooder's departure
	seen = []
	while True:
		m = await obs.recv(timeout=10)
		if m["type"] == "new_message":
			seen.append((m["seq"], m["message"]))
		elif m["type"] == "user_left":
			break
	check_eq(seen, [(j + 1, "f%d" % j) for j in range(BURST)],
	    "what the observer saw")
	print("    flooder: %s, then close %d" % (counts, code))
	await served(t, s)
	rss_note(t, s)


@case(config=None, timeout=40)
async def test_room_and_name_flood(t):
	s = hostile(t, "room and name floods")
	obs = await json_client(t, s, "obs")
	fl = await raw_tuned(t, s, label="room flooder")
	prefix = uniq("rf")
	await fl.send_raw(frames(*[{"type": "create_room", "roomName":
	    "%s-%d" % (prefix, j), "id": j} for j in range(200)]))
	msgs, code = await drain_until_close(fl)
	check_eq(code, 1008, "close code for a room flood")
	created = [m["roomName"] for m in msgs if m["type"] == "created_room"]
	check_eq(created, ["%s-%d" % (prefix, j) for j in range(5)],
	    "rooms created (room_burst)")
	check_eq([m["id"] for m in msgs if m.get("code") == "rate_limited"],
	    list(range(5, 54)), "rate_limited ids")
	rooms = await obs.expect({"type": "list_rooms"}, "rooms")
	check_eq(sorted(r["roomName"] for r in rooms["rooms"] if
	    r["roomName"].startswith(prefix + "-")), sorted(created),
	    "rooms on the server")
	announced = [m["roomName"] for m in obs.take("room_created") if
	    m["roomName"].startswith(prefix + "-")]
	check_eq(announced, created, "room_created seen by others")
	print("    room flooder: %s, then close %d" % (tally(msgs), code))

	fl = await raw_tuned(t, s, label="name flooder")
	prefix = uniq("nf")
	await fl.send_raw(frames(*[{"type": "set_username", "username":
	    "%s-%d" % (prefix, j), "id": j} for j in range(200)]))
	msgs, code = await drain_until_close(fl)
	check_eq(code, 1008, "close code for a name flood")
	names = [m["username"] for m in msgs if m["type"] == "username_set"]
	check_eq(names, ["%s-%d" % (prefix, j) for j in range(20)],
	    "names set (name_burst)")
	print("    name flooder: %s, then close %d" % (tally(msgs), code))
	await obs.sync()
	await served(t, s)
	rss_note(t, s)


# ---------------------------------------------------------------------------
# Names that are not text

@case(config=None, timeout=40)
async def test_hostile_names(t):
	s = hostile(t, "hostile names")
	obs = await json_client(t, s, "obs")
	room = uniq("hn")
	await obs.create(room)
	# escapes that decode to what a name may not hold: invalid_name
	invalid = ["a\u0000b", "\u0000", "\u0001x", "x\u001f", "\u007f",
	    "a\u0085", "\u009f", "\t", "a\nb", "\u001b[31mred", " lead",
	    "trail ", "", "n" * 33, "\u20ac" * 11]
	c = await json_client(t, s, "victim")
	await c.join(room)
	for i, name in enumerate(invalid):
		if i % 10 == 9:  # names are rate limited: take a fresh client
			await c.close()
			c = await json_client(t, s, "victim")
			await c.join(room)
		await c.expect_error({"type": "set_username", "username": name},
		    "invalid_name")
	for name in invalid[:6] + ["r" * 65]:
		await c.expect_error({"type": "create_room", "roomName": name},
		    "invalid_name")
	# a lone surrogate escape is not text: jansson refuses the JSON
	for text in ('{"type":"set_username","username":"\\ud800x"}',
	    '{"type":"create_room","roomName":"\\udfff"}'):
		await c.send(text)
		m = await c.recv("error")
		check_eq(m["code"], "bad_json", "lone surrogate %s" % text)
	# invalid UTF-8 in the frame itself: close 1007, whatever the JSON
	raw_bad = [
		("0xff", b"\xff"), ("lone continuation", b"\x80"),
		("overlong /", b"\xc0\xaf"), ("overlong NUL", b"\xc0\x80"),
		("3-byte overlong /", b"\xe0\x80\xaf"),
		("4-byte overlong /", b"\xf0\x80\x80\xaf"),
		("surrogate", b"\xed\xa0\x80"), ("past U+10FFFF",
		b"\xf4\x90\x80\x80"), ("truncated", b"\xe2\x82"),
		("5-byte form", b"\xf8\x88\x80\x80\x80"),
	]
	for what, bad in raw_bad:
		raw = await raw_tuned(t, s, label=what)
		await raw.send_frame(OP_TEXT, b'{"type":"set_username",'
		    b'"username":"ab' + bad + b'cd","id":1}')
		try:
			await raw.expect_close(1007)
		except TestFailure as e:
			raise TestFailure("%s: %s" % (what, e))
	# split between two fragments
	raw = await raw_tuned(t, s, label="split")
	await raw.send_frame(OP_TEXT, b'{"type":"ping","x":"\xc0', fin=False)
	await raw.send_frame(OP_CONT, b'\xaf"}')
	await raw.expect_close(1007)
	# nobody was renamed, nothing was created
	await obs.sync()
	obs.assert_none("user_renamed", what="a rename by a hostile name")
	p = await obs.expect({"type": "get_participants", "roomName": room},
	    "participants")
	check_eq(len(p["participants"]), 2, "participants")
	check(all(isinstance(n, str) and n.isprintable() for n in
	    p["participants"]), "participants %r" % p["participants"])
	await served(t, s)
	rss_note(t, s)


# ---------------------------------------------------------------------------
# A client that never reads

async def collect(c, room, done, out, timeout=30):
	"""Appends (seq, sender, message) of room's new_message frames to out
	until done(frame) is true for one; the other frames go to
	c.events."""
	c.events = []
	while True:
		m = await c.recv(timeout=timeout)
		if m["type"] == "new_message" and m["roomName"] == room:
			out.append((m["seq"], m["sender"], m["message"]))
			if done(m):
				return
		else:
			c.events.append(m)


def left_events(c, name):
	return [m for m in getattr(c, "events", []) if m["type"] ==
	    "user_left" and m["username"] == name]


def check_stream(label, got, want):
	"""got must be want exactly: seq 1..N, each once, in order."""
	if got == want:
		return
	seqs = [g[0] for g in got]
	for i, g in enumerate(got):
		if i >= len(want) or g != want[i]:
			raise TestFailure("%s: %d messages, want %d; first "
			    "difference at %d: got %r, want %r (seqs around: "
			    "%r)" % (label, len(got), len(want), i, g,
			    want[i] if i < len(want) else None,
			    seqs[max(0, i - 3):i + 3]))
	raise TestFailure("%s: %d messages, want %d (missing from seq %d)" %
	    (label, len(got), len(want), len(got) + 1))


def parse_prefix(data):
	"""The text frames at the start of a byte stream (a partial last
	frame is ignored)."""
	out = []
	pos = 0
	while len(data) - pos >= 2:
		n = data[pos + 1] & 0x7F
		hl = 2
		if n == 126:
			if len(data) - pos < 4:
				break
			n = int.from_bytes(data[pos + 2:pos + 4], "big")
			hl = 4
		elif n == 127:
			if len(data) - pos < 10:
				break
			n = int.from_bytes(data[pos + 2:pos + 10], "big")
			hl = 10
		if len(data) - pos < hl + n:
			break
		if data[pos] & 0x0F == OP_TEXT:
			out.append(json.loads(data[pos + hl:pos + hl + n]))
		pos += hl + n
	return out


async def stalled_member(t, s, room, label="slow"):
	"""A member of room with a 4 KiB receive buffer that stops reading
	once it has joined. Returns (RawWS, its username)."""
	slow = await raw_tuned(t, s, rcvbuf=4096, label=label)
	name = uniq(label)
	await slow.send_json({"type": "join_room", "roomName": room,
	    "username": name, "id": 1})
	await slow.read_json("room_joined")
	# asyncio would go on reading into its own buffer: stop that
	slow.writer.transport.pause_reading()
	return slow, name


@case(config=None, timeout=90)
async def test_slow_consumer_dropped(t):
	s = hostile(t, "slow consumer")
	room = uniq("sc")
	sender = await json_client(t, s, "sender")
	await sender.create(room)
	readers = [await json_client(t, s, "reader%d" % i) for i in range(2)]
	for r in readers:
		await r.join(room)
	slow, sname = await stalled_member(t, s, room)
	await sender.sync()
	for c in [sender] + readers:
		c.pending.clear()
	text = "z" * 3900
	outs = {c.label: [] for c in [sender] + readers}
	end = "end " + uniq("x")
	tasks = [asyncio.ensure_future(collect(c, room, lambda m:
	    m["message"] == end, outs[c.label])) for c in [sender] + readers]
	sent = []
	dropped = None
	t0 = time.monotonic()
	try:
		i = 0
		while dropped is None and i < BURST - 50:
			# 10 messages of 4 KB: what one loop turn of the server
			# queues for a member stays under max_output_bytes
			for _ in range(10):
				msg = "%d %s" % (i, text)
				await sender.send({"type": "send_message",
				    "roomName": room, "message": msg})
				sent.append(msg)
				i += 1
			# pace the sender by the readers
			while min(len(x) for x in outs.values()) < len(sent):
				await asyncio.sleep(0.002)
				check(time.monotonic() - t0 < scaled(40),
				    "readers stuck at %s of %d" % ([len(x) for x
				    in outs.values()], len(sent)))
			for m in left_events(readers[1], sname):
				dropped = (i, m["reason"])
		for _ in range(20):
			msg = "after %d" % len(sent)
			await sender.send({"type": "send_message", "roomName": room,
			    "message": msg})
			sent.append(msg)
		await sender.send({"type": "send_message", "roomName": room,
		    "message": end})
		sent.append(end)
		await asyncio.wait_for(asyncio.gather(*tasks), scaled(30))
	finally:
		for x in tasks:
			x.cancel()
	check(dropped is not None, "a member that never reads was not "
	    "dropped after %d messages of 4 KB" % len(sent))
	want = [(k + 1, sender.username, m) for k, m in enumerate(sent)]
	for label, got in outs.items():
		check_stream(label, got, want)
	# what the dropped one got before the end is a prefix of the stream
	slow.writer.transport.resume_reading()
	dt, data = await read_until_eof(slow.reader, scaled(5))
	check(dt is not None, "the dropped client's connection is still open")
	got = [(m["seq"], m["sender"], m["message"]) for m in
	    parse_prefix(bytes(slow.buf) + data) if m.get("type") ==
	    "new_message"]
	check(got == want[:len(got)], "the dropped client's messages are "
	    "not a prefix of the stream")
	print("    slow consumer dropped (reason %s) after %d messages of "
	    "~3.9 KB, having received %d; %d messages reached all %d others "
	    "in order, in %.1fs" % (dropped[1], dropped[0], len(got),
	    len(sent), len(outs), time.monotonic() - t0))
	await served(t, s)
	rss_note(t, s)


@case(timeout=60)
async def test_bursts_within_limits_drop_nobody(t):
	# With the default limits (message_burst 60, max_message_bytes 4096,
	# max_output_bytes 1 MiB), eight members each send their permitted
	# burst at once. Nobody exceeds a limit, and a member that reads as
	# fast as it can must not be taken for a slow consumer: it must
	# receive all 480 messages.
	s = t.start_server({"messages_per_minute": 600, "message_burst": 60})
	room = uniq("bu")
	honest = await json_client(t, s, "honest")
	await honest.create(room)
	senders = []
	for i in range(8):
		r = await raw_tuned(t, s, label="burst%d" % i)
		await r.send_json({"type": "join_room", "roomName": room,
		    "id": 1})
		await r.read_json("room_joined")
		senders.append(r)
	await honest.sync()
	honest.pending.clear()
	text = "b" * 4000
	blobs = [frames(*[{"type": "send_message", "roomName": room,
	    "message": "%d %d %s" % (i, k, text)} for k in range(60)])
	    for i in range(len(senders))]

	async def drain(r):
		# the senders read too, so only the server's accounting matters
		try:
			while True:
				await r.read_frame(timeout=30)
		except (ConnectionEnded, TestFailure):
			pass

	drains = [asyncio.ensure_future(drain(r)) for r in senders]
	try:
		for r, b in zip(senders, blobs):
			r.writer.write(b)
		got = []
		while len(got) < 480:
			try:
				m = await honest.recv(timeout=10)
			except TestFailure as e:
				raise TestFailure("the honest member got %d of 480 "
				    "messages: %s" % (len(got), str(e)[:200]))
			if m["type"] == "new_message":
				got.append(m["seq"])
	finally:
		for d in drains:
			d.cancel()
	check_eq(got, list(range(1, 481)), "seqs")
	await honest.sync()


# ---------------------------------------------------------------------------
# Nothing lost

async def garbage_loop(s, stop, counts):
	"""A hostile neighbour: connects, sends malformed and then invalid
	frames, again and again until stop is set."""
	rnd = random.Random(3)
	while not stop.is_set():
		try:
			raw = await RawWS.connect(s, label="garbage")
		except (TestFailure, OSError):
			counts["refused"] = counts.get("refused", 0) + 1
			await asyncio.sleep(0.05)
			continue
		try:
			await raw.send_raw(frames(*[rnd.choice(MALFORMED) for _ in
			    range(50)]))
			for _ in range(50):
				await raw.read_json("error")
			kind = rnd.randrange(4)
			if kind == 0:
				await raw.send_frame(OP_TEXT, b'{"x":"\xc0\xaf"}')
				await raw.expect_close(1007)
			elif kind == 1:
				await raw.send_frame(OP_TEXT, b"{}", mask=False)
				await raw.expect_close(1002)
			elif kind == 2:
				await raw.send_frame(OP_TEXT, b"", length=1 << 62)
				await raw.expect_close(1009)
			else:
				await raw.send_frame(0x3, b"")
				await raw.expect_close(1002)
			counts["rounds"] = counts.get("rounds", 0) + 1
		finally:
			raw.close()


@case(config=None, timeout=120)
async def test_nothing_lost(t):
	# 3 readers and 2 senders (2,000 messages each) in one room, while a
	# flooder in the room is rate limited and closed, a member that never
	# reads is dropped, another client floods room creations and a
	# neighbour sends garbage. Every client that keeps up receives every
	# accepted message exactly once, in seq order.
	s = hostile(t, "nothing lost")
	room = uniq("nl")
	readers = [await json_client(t, s, "reader%d" % i) for i in range(3)]
	senders = [await json_client(t, s, "sender%d" % i) for i in range(2)]
	await readers[0].create(room)
	for c in readers[1:] + senders:
		await c.join(room)
	flooder = await raw_tuned(t, s, label="flooder")
	await flooder.send_json({"type": "join_room", "roomName": room,
	    "id": 0})
	await flooder.read_json("room_joined")
	slow, sname = await stalled_member(t, s, room)
	members = readers + senders
	for c in members:
		await c.sync()
		c.pending.clear()

	end = "end " + uniq("x")
	outs = {c.label: [] for c in members}
	collectors = [asyncio.ensure_future(collect(c, room, lambda m:
	    m["message"] == end, outs[c.label], timeout=60)) for c in members]
	stop = asyncio.Event()
	gcounts = {}
	garbage = asyncio.ensure_future(garbage_loop(s, stop, gcounts))
	n_each = N_EACH
	pad = "." * 100

	async def send_all(c, tag):
		for i in range(n_each):
			await c.send({"type": "send_message", "roomName": room,
			    "message": "%s %d %s" % (tag, i, pad)})
			if i % 50 == 49:
				# let the room's traffic flow while sending
				await asyncio.sleep(0.002)

	async def flood():
		reader = asyncio.ensure_future(drain_until_close(flooder, 60))
		try:
			for i in range(0, BURST + 200, 50):
				await flooder.send_raw(frames(*[{"type":
				    "send_message", "roomName": room, "message":
				    "flood %d" % j, "id": j} for j in
				    range(i, i + 50)]))
				await asyncio.sleep(0.005)
			return await asyncio.wait_for(asyncio.shield(reader),
			    scaled(60))
		finally:
			reader.cancel()

	async def make_slow_overflow():
		# the stalled member asks for history it never reads, until its
		# queue passes max_output_bytes and it is dropped
		deadline = time.monotonic() + scaled(60)
		while not any(left_events(c, sname) for c in readers) and \
		    time.monotonic() < deadline:
			await asyncio.sleep(0.2)
			try:
				await slow.send_raw(frames(*[{"type": "history",
				    "roomName": room, "limit": 100, "id": j}
				    for j in range(200)]))
			except (ConnectionError, OSError, asyncio.TimeoutError):
				break

	async def room_flood():
		raw = await RawWS.connect(s, label="room flooder")
		try:
			await raw.send_raw(frames(*[{"type": "create_room",
			    "roomName": uniq("nlr"), "id": j} for j in range(100)]))
			return await drain_until_close(raw)
		finally:
			raw.close()

	t0 = time.monotonic()
	try:
		results = await asyncio.wait_for(asyncio.gather(
		    send_all(senders[0], "s0"), send_all(senders[1], "s1"),
		    flood(), make_slow_overflow(), room_flood()), scaled(90))
		fl_msgs, fl_code = results[2]
		rf_msgs, rf_code = results[4]
		await senders[0].send({"type": "send_message", "roomName": room,
		    "message": end})
		await asyncio.wait_for(asyncio.gather(*collectors), scaled(60))
	finally:
		stop.set()
		for x in collectors:
			x.cancel()
		try:
			await asyncio.wait_for(garbage, scaled(10))
		except BaseException:
			garbage.cancel()
	dt = time.monotonic() - t0

	check_eq(fl_code, 1008, "the flooder's close code")
	check_eq(rf_code, 1008, "the room flooder's close code")
	accepted_flood = sorted(int(m["message"].split()[1]) for m in fl_msgs
	    if m["type"] == "new_message" and m["sender"] ==
	    flooder.welcome["username"])
	check_eq(len([m for m in fl_msgs if m.get("code") == "rate_limited"]),
	    49, "rate_limited answers to the flooder")

	# what the first reader saw is the reference; the others must equal it
	ref = outs[readers[0].label]
	check_eq([g[0] for g in ref], list(range(1, len(ref) + 1)),
	    "%s: seqs" % readers[0].label)
	for c in members[1:]:
		check_stream(c.label, outs[c.label], ref)
	# and it holds every accepted message, each sender's in its order
	for i, c in enumerate(senders):
		mine = [g[2] for g in ref if g[1] == c.username]
		check_eq(mine, ["s%d %d %s" % (i, k, pad) for k in
		    range(n_each)] + ([end] if i == 0 else []),
		    "%s's messages as the readers saw them" % c.label)
	fl_seen = [int(g[2].split()[1]) for g in ref if g[1] ==
	    flooder.welcome["username"]]
	check_eq(fl_seen, list(range(BURST)), "the flooder's accepted "
	    "messages")
	# the flooder may not have read its own last copies before the close
	check(accepted_flood == fl_seen[:len(accepted_flood)],
	    "the flooder's own copies")
	check_eq(len(ref), 2 * n_each + BURST + 1, "messages in the room")
	# the stalled member was dropped
	check(any(left_events(c, sname) for c in readers), "the member that "
	    "never reads was not dropped")
	print("    %d messages (2 x %d + %d from the flooder) reached %d "
	    "members in order in %.1fs; flooder closed %d; room flooder %s, "
	    "closed %d; garbage rounds %s" % (len(ref), n_each,
	    len(fl_seen), len(members), dt, fl_code, tally(rf_msgs), rf_code,
	    gcounts))
	await served(t, s)
	rss_note(t, s)


# ---------------------------------------------------------------------------
# Memory, afterwards

def sanitized(pid):
	"""True when the daemon runs with AddressSanitizer."""
	try:
		with open("/proc/%d/maps" % pid) as f:
			return "libasan" in f.read()
	except OSError:
		return False


@case(config=None, timeout=30)
async def test_rss_bounded(t):
	s = hostile(t, "after")
	w = t.watch
	if not w.per_case:
		raise Skip("no hostile case ran on this server")
	# the server has nothing left to do: let it settle
	await served(t, s)
	await asyncio.sleep(0.5)
	after = vmrss(s.proc.pid)
	print("    RSS of parleyd%s: start %s, peak %s (during \"%s\"), after "
	    "%s" % (" under valgrind" if VALGRIND else "", mib(w.start),
	    mib(w.peak), w.peak_case, mib(after)))
	for name, now, peak in w.per_case:
		print("      after %-32s %s (peak so far %s)" % (name + ":",
		    mib(now), mib(peak)))
	w.stop()
	if VALGRIND or sanitized(s.proc.pid):
		# valgrind's and ASan's own memory (ASan keeps freed blocks in
		# quarantine) make the figures meaningless
		return
	check(w.peak < RSS_CEILING, "RSS peaked at %s, ceiling %s" %
	    (mib(w.peak), mib(RSS_CEILING)))
	check(after < w.start + RSS_RETURN, "RSS %s after, %s at the start" %
	    (mib(after), mib(w.start)))


if __name__ == "__main__":
	suite.main()
