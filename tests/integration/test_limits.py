#!/usr/bin/python3
#
# test_limits.py: the server's limits over real sockets, each with small
# values so a case runs in seconds: admission at the /ws upgrade (the
# global cap answers 503, the per-address cap, the connect rate and bans
# answer 429 with Retry-After), the per-client token buckets (rate_limited
# with the request's id and no side effect), flooding (close 1008), the
# quotas on rooms and members (forbidden), and the deadlines: a message
# left half sent, an HTTP request trickled too slowly, a peer that stops
# reading. In every case a normal client is served meanwhile and the
# server is alive afterwards. Addresses other than 127.0.0.1 are other
# hosts on the loopback network (Linux routes all of 127.0.0.0/8 there).

import asyncio
import base64
import json
import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Suite, RawWS, TestFailure, check, check_eq,  # noqa
    make_frame, close_payload, read_http_head, http_get, scaled, uniq, HOST,
    OP_TEXT, OP_CLOSE)

suite = Suite("limits")
case = suite.case


# ---------------------------------------------------------------------------
# Helpers: connections from a chosen source address

async def open_tcp(server, src=None, rcvbuf=None):
	"""A TCP connection to server from address src (127.x.y.z), with the
	receive buffer shrunk before connecting when rcvbuf is given."""
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


def upgrade_request(server, key):
	return ("GET /ws HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
	    "Sec-WebSocket-Version: 13\r\n\r\n" % (HOST, server.port,
	    key)).encode()


async def try_upgrade(server, src=None, label="raw"):
	"""Asks for a WebSocket from src. Returns (response, RawWS or None):
	the RawWS (welcome read) when the server said 101."""
	reader, writer = await open_tcp(server, src)
	key = base64.b64encode(os.urandom(16)).decode()
	writer.write(upgrade_request(server, key))
	try:
		resp = await read_http_head(reader, scaled(5))
	except BaseException:
		writer.close()
		raise
	if resp.status != 101:
		writer.close()
		return resp, None
	ws = RawWS(reader, writer, label)
	ws.response = resp
	ws.welcome = await ws.read_json("welcome")
	return resp, ws


async def upgraded(t, server, src, label, rcvbuf=None):
	"""A RawWS from src after a 101, welcome not read (tracked for
	cleanup), with its reader and writer."""
	reader, writer = await open_tcp(server, src, rcvbuf)
	ws = RawWS(reader, writer, label)
	t.clients.append(ws)
	key = base64.b64encode(os.urandom(16)).decode()
	writer.write(upgrade_request(server, key))
	check_eq((await read_http_head(reader, scaled(5))).status, 101,
	    "%s upgrade" % label)
	return ws, reader, writer


async def raw_from(t, server, src, label="raw"):
	"""A RawWS from src that must be admitted (tracked for cleanup)."""
	resp, ws = await try_upgrade(server, src, label)
	check_eq(resp.status, 101, "%s from %s: upgrade status" % (label, src))
	t.clients.append(ws)
	return ws


async def client_from(t, server, src, label="client", **kw):
	"""A JSON client connecting from src."""
	return await t.client(server, label=label, local_addr=(src, 0), **kw)


def check_refusal(resp, status, what):
	check_eq(resp.status, status, "%s: status" % what)
	ra = resp.header("retry-after")
	check(ra is not None and ra.isdigit() and int(ra) >= 1,
	    "%s: Retry-After %r, want a positive integer" % (what, ra))
	return int(ra)


async def healthz(server):
	r = await http_get(server, "/healthz")
	check_eq(r.status, 200, "/healthz status")
	return json.loads(r.body)


async def wait_connections(server, want, timeout=5):
	"""Waits until /healthz counts want WebSocket connections."""
	deadline = time.monotonic() + scaled(timeout)
	while True:
		n = (await healthz(server))["connections"]
		if n == want:
			return
		if time.monotonic() > deadline:
			raise TestFailure("/healthz counts %d connections after "
			    "%gs, want %d" % (n, scaled(timeout), want))
		await asyncio.sleep(0.05)


async def served(t, server, src="127.0.0.99", label="bystander"):
	"""A normal client from an uninvolved address gets in and is
	answered."""
	c = await client_from(t, server, src, label=label)
	await c.sync()
	return c


def ping(i):
	return {"type": "ping", "id": i}


# ---------------------------------------------------------------------------
# Admission at the upgrade

@case()
async def test_global_cap_503(t):
	s = t.start_server({"max_connections": 3})
	a = await client_from(t, s, "127.0.0.1", "a")
	b = await client_from(t, s, "127.0.0.2", "b")
	c = await client_from(t, s, "127.0.0.3", "c")
	for src in ("127.0.0.4", "127.0.0.1"):
		resp, ws = await try_upgrade(s, src)
		check(ws is None, "a fourth WebSocket was admitted")
		check_refusal(resp, 503, "over max_connections from %s" % src)
	# the ones inside are still served, and so is plain HTTP
	for x in (a, b, c):
		await x.sync()
	check_eq((await healthz(s))["connections"], 3, "connections")
	await c.close()
	await wait_connections(s, 2)
	d = await client_from(t, s, "127.0.0.4", "d")
	await d.sync()
	await a.sync()


@case()
async def test_per_ip_cap_429(t):
	s = t.start_server({"max_connections_per_ip": 2})
	a1 = await client_from(t, s, "127.0.0.2", "a1")
	a2 = await client_from(t, s, "127.0.0.2", "a2")
	resp, ws = await try_upgrade(s, "127.0.0.2")
	check(ws is None, "a third WebSocket from one address was admitted")
	check_refusal(resp, 429, "over max_connections_per_ip")
	# another address is not affected, nor are the two inside
	await served(t, s, "127.0.0.3")
	await a1.sync()
	await a2.sync()
	# a slot freed is a slot usable again
	await a2.close()
	await wait_connections(s, 2)
	a3 = await client_from(t, s, "127.0.0.2", "a3")
	await a3.sync()


@case()
async def test_connect_rate_429(t):
	# 30 a minute is one token every 2 s; the burst is 3
	s = t.start_server({"connects_per_minute_per_ip": 30,
	    "connect_burst_per_ip": 3})
	results = await asyncio.gather(*[try_upgrade(s, "127.0.0.4")
	    for _ in range(8)])
	ok = [ws for resp, ws in results if ws is not None]
	refused = [resp for resp, ws in results if ws is None]
	for ws in ok:
		t.clients.append(ws)
	check(3 <= len(ok) <= 4, "%d of 8 quick connects admitted, want the "
	    "burst of 3 (4 at most, if a token came back meanwhile)" %
	    len(ok))
	for resp in refused:
		check_refusal(resp, 429, "connecting too fast")
	await served(t, s, "127.0.0.5")
	for ws in ok:
		await ws.send_json(ping(1))
		check_eq(await ws.read_json(), {"type": "pong", "id": 1},
		    "an admitted client")
	# tokens come back at the configured rate
	t0 = time.monotonic()
	deadline = t0 + scaled(2) + 3
	while True:
		resp, ws = await try_upgrade(s, "127.0.0.4")
		if ws is not None:
			t.clients.append(ws)
			break
		check_refusal(resp, 429, "still too fast")
		check(time.monotonic() < deadline, "no connect admitted %gs "
		    "after the burst" % (deadline - t0))
		await asyncio.sleep(0.2)
	print("    connect admitted again after %.2fs" %
	    (time.monotonic() - t0))


async def violate(server, src):
	"""One protocol violation from src: an unmasked frame (close 1002)."""
	resp, ws = await try_upgrade(server, src, "violator")
	check_eq(resp.status, 101, "violator admitted")
	try:
		await ws.send_raw(make_frame(OP_TEXT, b"{}", mask=False))
		await ws.expect_close(1002)
	finally:
		ws.close()


@case(timeout=30)
async def test_ban_and_expiry(t):
	s = t.start_server({"ban_after": 3, "ban_window": 30,
	    "ban_seconds": 2, "ban_on_violations": True})
	comp = await client_from(t, s, "127.0.0.7", "companion")
	for _ in range(2):
		await violate(s, "127.0.0.6")
	# two strikes: not banned yet
	resp, ws = await try_upgrade(s, "127.0.0.6")
	check_eq(resp.status, 101, "admitted before the ban_after-th strike")
	ws.close()
	await violate(s, "127.0.0.6")
	t_ban = time.monotonic()
	resp, ws = await try_upgrade(s, "127.0.0.6")
	check(ws is None, "a banned address was admitted")
	ra = check_refusal(resp, 429, "banned")
	check(ra <= 3, "Retry-After %d for a 2 s ban" % ra)
	await comp.sync()
	await served(t, s, "127.0.0.8")
	# refusals while banned do not extend the ban; it ends on time
	while True:
		resp, ws = await try_upgrade(s, "127.0.0.6")
		dt = time.monotonic() - t_ban
		if ws is not None:
			t.clients.append(ws)
			break
		check_refusal(resp, 429, "banned")
		check(dt < scaled(2) + 3, "still banned %.1fs into a 2 s ban" %
		    dt)
		await asyncio.sleep(0.2)
	check(dt >= 1.5, "the 2 s ban ended after %.2fs" % dt)
	print("    ban lifted after %.2fs" % dt)
	await ws.send_json(ping(5))
	check_eq(await ws.read_json(), {"type": "pong", "id": 5},
	    "served after the ban")


@case()
async def test_ban_counts_pipelined_violations(t):
	# a violation in the bytes that come with the upgrade request (MHD
	# hands them over as extra_in) counts like any other
	s = t.start_server({"ban_after": 2, "ban_window": 30,
	    "ban_seconds": 30, "ban_on_violations": True})
	comp = await client_from(t, s, "127.0.0.31", "companion")
	for i in range(2):
		reader, writer = await open_tcp(s, "127.0.0.30")
		key = base64.b64encode(os.urandom(16)).decode()
		writer.write(upgrade_request(s, key) + make_frame(OP_TEXT, b"{}",
		    mask=False))
		raw = RawWS(reader, writer, "pipelined %d" % i)
		t.clients.append(raw)
		resp = await read_http_head(reader, scaled(5))
		check_eq(resp.status, 101, "upgrade %d" % i)
		while True:
			f = await raw.read_frame()
			if f.opcode == OP_CLOSE:
				break
		check_eq(f.close_code, 1002, "close code")
		# no closing reply: only the violation itself may count
		raw.close()
	resp, ws = await try_upgrade(s, "127.0.0.30")
	if ws is not None:
		ws.close()
	check(ws is None, "two violations sent with the upgrade request did "
	    "not earn a ban (ban_after 2)")
	check_refusal(resp, 429, "banned")
	await comp.sync()
	await served(t, s)


# ---------------------------------------------------------------------------
# Per-client token buckets: rate_limited with the id, nothing else

async def no_more(c, type, what):
	await c.sync()
	c.assert_none(type, what=what)


@case()
async def test_rate_limited_messages(t):
	s = t.start_server({"messages_per_minute": 1, "message_burst": 3})
	a = await t.named("a", s)
	o = await t.named("obs", s)
	room = uniq("rl")
	await a.create(room)
	await o.join(room)
	for i in range(3):
		m = await a.say(room, "m%d" % i)
		check_eq(m["seq"], i + 1, "seq")
	for rid in (41, "str-id"):
		r = await a.expect_error({"type": "send_message", "roomName": room,
		    "message": "limited", "id": rid}, "rate_limited")
		check_eq(r["id"], rid, "rate_limited id")
	# a command counts as a message too, and does nothing when limited
	await a.expect_error({"type": "send_message", "roomName": room,
	    "message": "/me waves"}, "rate_limited")
	seen = [(await o.recv("new_message"))["message"] for _ in range(3)]
	check_eq(seen, ["m0", "m1", "m2"], "messages before the limit")
	await no_more(o, "new_message", "a rate-limited message")
	await a.sync()
	a.assert_none("new_message", what="a rate-limited message")
	# the limited messages used no seq; the next one is 4
	m = await o.say(room, "after")
	check_eq(m["seq"], 4, "seq after rate-limited messages")
	# other requests are not limited by the message bucket
	await a.expect({"type": "list_rooms"}, "rooms")


@case()
async def test_rate_limited_rooms(t):
	s = t.start_server({"rooms_per_minute": 1, "room_burst": 2})
	a = await t.named("a", s)
	o = await t.named("obs", s)
	r1, r2, r3 = uniq("r"), uniq("r"), uniq("r")
	await a.create(r1)
	await a.create(r2)
	await o.recv("room_created", pred=lambda m: m["roomName"] == r2)
	r = await a.expect_error({"type": "create_room", "roomName": r3,
	    "id": 77}, "rate_limited")
	check_eq(r["id"], 77, "rate_limited id")
	await o.sync()
	o.assert_none("room_created", pred=lambda m: m["roomName"] == r3,
	    what="room_created for a limited create")
	await o.expect_error({"type": "join_room", "roomName": r3},
	    "room_not_found")
	rooms = await o.expect({"type": "list_rooms"}, "rooms")
	check(r3 not in [x["roomName"] for x in rooms["rooms"]],
	    "a rate-limited room exists")
	# the bucket is per client
	await o.create(r3)


@case()
async def test_rate_limited_names(t):
	s = t.start_server({"names_per_minute": 1, "name_burst": 2})
	a = await t.client(s, label="a")
	o = await t.named("obs", s)
	room = uniq("rn")
	await o.create(room)
	await a.join(room)
	await a.set_name(uniq("n"))
	await o.recv("user_renamed")
	await a.set_name(uniq("n"))
	await o.recv("user_renamed")
	name = a.username
	want = uniq("n")
	r = await a.expect_error({"type": "set_username", "username": want,
	    "id": "nm"}, "rate_limited")
	check_eq(r["id"], "nm", "rate_limited id")
	# join_room with a username takes from the same bucket, and a limited
	# join joins nothing
	room2 = uniq("rn")
	await o.create(room2)
	await a.expect_error({"type": "join_room", "roomName": room2,
	    "username": want}, "rate_limited")
	await no_more(o, "user_renamed", "user_renamed for a limited rename")
	o.assert_none("joined_room", pred=lambda m: m["roomName"] == room2,
	    what="a limited join")
	p = await o.expect({"type": "get_participants", "roomName": room},
	    "participants")
	check_eq(p["participants"], [o.username, name], "participants")
	p = await o.expect({"type": "get_participants", "roomName": room2},
	    "participants")
	check_eq(p["participants"], [o.username], "after a limited join")
	# the refused name is free for someone else
	await o.set_name(want)


@case()
async def test_rate_limited_requests(t):
	s = t.start_server({"requests_per_minute": 1, "request_burst": 4,
	    "flood_close_after": 0})
	a = await t.named("a", s)  # one request
	o = await t.named("obs", s)
	room = uniq("rq")
	await o.create(room)
	await a.join(room)        # two
	await a.say(room, "ok")   # three
	await a.sync()            # four
	r = await a.expect_error(ping(9), "rate_limited")
	check_eq(r["id"], 9, "rate_limited id")
	for _ in range(5):
		await a.expect_error({"type": "send_message", "roomName": room,
		    "message": "limited"}, "rate_limited")
	await a.expect_error({"type": "leave_room", "roomName": room},
	    "rate_limited")
	await o.recv("new_message", pred=lambda m: m["message"] == "ok")
	await no_more(o, "new_message", "a message past the request limit")
	o.assert_none("user_left", what="a leave past the request limit")
	p = await o.expect({"type": "get_participants", "roomName": room},
	    "participants")
	check_eq(p["participants"], [o.username, a.username], "participants")
	check(not a.closed, "flood_close_after 0 never closes")


@case()
async def test_flood_close(t):
	s = t.start_server({"requests_per_minute": 1, "request_burst": 2,
	    "flood_close_after": 5})
	comp = await client_from(t, s, "127.0.0.9", "companion")
	raw = await raw_from(t, s, "127.0.0.1")
	await raw.send_raw(b"".join(make_frame(OP_TEXT,
	    json.dumps(ping(i)).encode()) for i in range(30)))
	pongs, limited = [], []
	while True:
		f = await raw.read_frame()
		if f.opcode == OP_CLOSE:
			break
		m = f.json()
		if m["type"] == "pong":
			pongs.append(m["id"])
		else:
			check_eq(m.get("code"), "rate_limited", "error code")
			limited.append(m.get("id"))
	check_eq(f.close_code, 1008, "close code for flooding")
	check_eq(pongs, [0, 1], "pongs within the burst")
	check_eq(limited, [2, 3, 4, 5], "rate_limited before the close")
	await raw.send_frame(OP_CLOSE, close_payload(1008))
	await raw.expect_eof()
	await comp.sync()


@case()
async def test_flood_needs_a_row(t):
	# rate-limited requests interleaved with accepted ones are not a flood
	s = t.start_server({"messages_per_minute": 1, "message_burst": 1,
	    "flood_close_after": 3})
	a = await t.named("a", s)
	room = uniq("fl")
	await a.create(room)
	await a.say(room, "one")
	for i in range(10):
		await a.expect_error({"type": "send_message", "roomName": room,
		    "message": "x"}, "rate_limited")
		await a.expect_error({"type": "send_message", "roomName": room,
		    "message": "x"}, "rate_limited")
		await a.sync()
	check(not a.closed, "closed although no 3 limited requests in a row")
	# three in a row close it
	for i in range(3):
		await a.send({"type": "send_message", "roomName": room,
		    "message": "x"})
	code = await a.wait_closed()
	check_eq(code, 1008, "close code after 3 limited in a row")
	await served(t, s)


# ---------------------------------------------------------------------------
# Quotas: forbidden, each with its own message

@case()
async def test_quotas_forbidden(t):
	s = t.start_server({"max_rooms": 4, "max_rooms_per_client": 2,
	    "max_members_per_room": 2})
	a = await t.named("a", s)
	b = await t.named("b", s)
	c = await t.named("c", s)
	r1, r2, r3, r4, r5 = [uniq("q") for _ in range(5)]
	await a.create(r1)
	await a.create(r2)
	# a is in 2 rooms: a third is refused, whether created or joined
	e_client = await a.expect_error({"type": "create_room",
	    "roomName": r5}, "forbidden")
	e_join = await a.expect_error({"type": "join_room",
	    "roomName": "general"}, "forbidden")
	check_eq(e_join["message"], e_client["message"],
	    "max_rooms_per_client message for create and join")
	await b.create(r3)  # general, r1, r2, r3: the server is full
	e_server = await c.expect_error({"type": "create_room",
	    "roomName": r4}, "forbidden")
	await b.join(r1)    # r1: a and b, full
	e_room = await c.expect_error({"type": "join_room", "roomName": r1,
	    "id": "j"}, "forbidden")
	check_eq(e_room["id"], "j", "forbidden carries the id")
	msgs = [e_client["message"], e_server["message"], e_room["message"]]
	check(len(set(msgs)) == 3 and all(msgs),
	    "each quota has its own message: %r" % msgs)
	print("    messages: %s" % json.dumps(msgs))
	# refusals changed nothing and told nobody
	for x in (a, b):
		await x.sync()
		x.assert_none("room_created", pred=lambda m: m["roomName"] in
		    (r4, r5), what="room_created for a refused room")
	a.assert_none("joined_room", pred=lambda m: m["username"] ==
	    c.username, what="joined_room for a refused join")
	rooms = await c.expect({"type": "list_rooms"}, "rooms")
	check_eq(sorted(x["roomName"] for x in rooms["rooms"]),
	    sorted(["general", r1, r2, r3]), "rooms")
	p = await c.expect({"type": "get_participants", "roomName": r1},
	    "participants")
	check_eq(p["participants"], [a.username, b.username], "members of r1")
	# joining a room one is in is not a new membership
	await a.join(r1)
	# a place freed is a place taken
	await b.expect({"type": "leave_room", "roomName": r1}, "room_left")
	await c.join(r1)
	await a.expect({"type": "leave_room", "roomName": r2}, "room_left")
	await a.join("general")


# ---------------------------------------------------------------------------
# Deadlines

@case(timeout=30)
async def test_message_timeout(t):
	s = t.start_server({"message_timeout": 1, "ping_interval": 60})
	comp = await t.client(s, label="companion")
	# a frame header announcing 200 bytes, then half of them
	raw = await raw_from(t, s, "127.0.0.1", "half")
	frame = make_frame(OP_TEXT, json.dumps({"type": "ping",
	    "pad": "p" * 170}).encode())
	check(len(frame) > 200, "frame size")
	await raw.send_raw(frame[:2 + 2 + 4 + 100])
	t0 = time.monotonic()
	await comp.sync()
	await raw.expect_close(1008, timeout=scaled(1) + 3)
	dt = time.monotonic() - t0
	check(dt >= 0.8, "closed %.2fs into a 1 s message_timeout" % dt)
	print("    half a frame: close 1008 after %.2fs (expect_close "
	    "includes the closing handshake)" % dt)
	# the first fragment of a message, then nothing
	raw = await raw_from(t, s, "127.0.0.1", "fragment")
	await raw.send_frame(OP_TEXT, b"{\"type\":", fin=False)
	t0 = time.monotonic()
	await raw.expect_close(1008, timeout=scaled(1) + 3)
	check(time.monotonic() - t0 >= 0.8, "fragment closed too early")
	# a message finished within the deadline, slowly, is fine
	raw = await raw_from(t, s, "127.0.0.1", "slow-but-done")
	frame = make_frame(OP_TEXT, json.dumps(ping(3)).encode())
	for i in range(0, len(frame), 4):
		await raw.send_raw(frame[i:i + 4])
		await asyncio.sleep(0.05)
	check_eq(await raw.read_json(), {"type": "pong", "id": 3},
	    "a message sent in pieces within message_timeout")
	await comp.sync()


async def read_until_eof(reader, timeout):
	"""Reads until EOF or reset; returns the time it came, or None."""
	deadline = time.monotonic() + timeout
	while True:
		left = deadline - time.monotonic()
		if left <= 0:
			return None
		try:
			data = await asyncio.wait_for(reader.read(4096), left)
		except asyncio.TimeoutError:
			return None
		except ConnectionError:
			return time.monotonic()
		if not data:
			return time.monotonic()


@case(timeout=30)
async def test_http_timeout_slowloris(t):
	# slowloris: a request trickled in more slowly than http_timeout
	# (an idle deadline: each byte restarts it) is dropped at the first
	# long gap
	s = t.start_server({"http_timeout": 1})
	comp = await t.client(s, label="companion")
	req = upgrade_request(s, base64.b64encode(os.urandom(16)).decode())
	conns = [await open_tcp(s, "127.0.0.%d" % (10 + i)) for i in range(10)]

	async def loris(reader, writer):
		n = 0
		for byte in req:
			writer.write(bytes([byte]))
			n += 1
			sent = time.monotonic()
			got = await read_until_eof(reader, 1.5)
			if got is not None:
				return n, got - sent
		return n, None

	results = await asyncio.gather(*[loris(r, w) for r, w in conns])
	for r, w in conns:
		w.close()
	# meanwhile the others were served
	await comp.sync()
	await served(t, s)
	for n, dt in results:
		check(dt is not None, "a request trickled a byte every 1.5 s "
		    "was not dropped (http_timeout 1)")
		check(dt >= 0.5, "dropped %.2fs after a byte, http_timeout 1" %
		    dt)
	print("    slowloris: bytes sent before the hang-up: %s; seconds "
	    "from the last byte: %s" % (sorted(n for n, dt in results),
	    " ".join("%.2f" % dt for n, dt in results)))


@case(timeout=30)
async def test_slowloris_one_address_cannot_lock_out(t):
	# one address opens more HTTP connections than the server will hold
	# (max_connections plus a few spare) and keeps each alive with a byte
	# now and then, faster than http_timeout; another address must still
	# be served
	s = t.start_server({"max_connections": 20, "max_connections_per_ip": 5,
	    "http_timeout": 3})
	conns = []

	async def keep_alive():
		while True:
			for r, w in conns:
				if not w.is_closing():
					w.write(b"X")
			await asyncio.sleep(1)

	for i in range(100):
		try:
			conns.append(await open_tcp(s, "127.0.0.40"))
		except (OSError, asyncio.TimeoutError):
			break
	for r, w in conns:
		w.write(b"GET /ws HTTP/1.1\r\nX-Slow: ")
	task = asyncio.ensure_future(keep_alive())
	try:
		await asyncio.sleep(1.5)
		t0 = time.monotonic()
		try:
			c = await client_from(t, s, "127.0.0.41", "other",
			    open_timeout=scaled(4))
			await c.sync()
		except (OSError, asyncio.TimeoutError, TestFailure) as e:
			raise TestFailure("100 slow HTTP connections from one "
			    "address locked another address out (%s: %s)" %
			    (type(e).__name__, e))
		print("    another address served in %.2fs" %
		    (time.monotonic() - t0))
	finally:
		task.cancel()
		for r, w in conns:
			w.close()


@case(timeout=40)
async def test_write_timeout(t):
	# a peer that stops reading: its queue stays under max_output_bytes
	# but nothing can be written for write_timeout seconds
	# (resume off: a stalled connection would be held, test_resume.py)
	s = t.start_server({"write_timeout": 1, "ping_interval": 60,
	    "max_output_bytes": 256 << 20, "resume_grace": 0})
	sender = await t.named("sender", s)
	obs = await t.named("obs", s)
	room = uniq("wt")
	await sender.create(room)
	await obs.join(room)
	# the stalled peer: a tiny receive buffer, and no reads after the join
	stalled, reader, writer = await upgraded(t, s, "127.0.0.20",
	    "stalled", rcvbuf=4096)
	sname = uniq("stall")
	await stalled.send_json({"type": "join_room", "roomName": room,
	    "username": sname, "id": 1})
	await stalled.read_json("room_joined")
	# asyncio's reader would keep reading into its own buffer: stop it
	writer.transport.pause_reading()
	await obs.recv("joined_room", pred=lambda m: m["username"] == sname)

	text = "w" * 4000
	dropped_at = None
	sent = 0
	t0 = time.monotonic()
	deadline = t0 + scaled(20)
	while dropped_at is None and time.monotonic() < deadline:
		for _ in range(20):
			await sender.send({"type": "send_message", "roomName": room,
			    "message": text})
		sent += 20
		for _ in range(20):
			await sender.recv("new_message")
		while True:
			m = await obs.recv(timeout=10)
			if m["type"] == "user_left" and m["username"] == sname:
				dropped_at = time.monotonic()
				left = m
				break
			if m["type"] == "new_message" and m["seq"] == sent:
				break
		await asyncio.sleep(0.05)
	check(dropped_at is not None, "a peer that reads nothing was not "
	    "dropped after %d messages in %.1fs" % (sent, time.monotonic() -
	    t0))
	check_eq(left["reason"], "timeout", "user_left reason")
	print("    stalled peer dropped after %d messages of 4000 bytes, "
	    "%.2fs" % (sent, dropped_at - t0))
	# the others carry on
	await sender.say(room, "still here")
	await obs.recv("new_message", pred=lambda m: m["message"] ==
	    "still here")
	p = await obs.expect({"type": "get_participants", "roomName": room},
	    "participants")
	check_eq(p["participants"], [sender.username, obs.username],
	    "participants")
	await served(t, s)



# ---------------------------------------------------------------------------
# No lockout at the defaults; bounded slow consumers and HTTP requests

# The built-in defaults for what the harness turns off.
AT_DEFAULTS = {"connects_per_minute_per_ip": None, "requests_per_minute": None,
    "messages_per_minute": None, "rooms_per_minute": None,
    "names_per_minute": None, "flood_close_after": None, "ban_after": None}


def xff_request(server, xff=None):
	"""An upgrade request, with X-Forwarded-For: xff when given."""
	req = upgrade_request(server, base64.b64encode(os.urandom(16)).decode())
	if xff is None:
		return req
	return req[:-2] + b"X-Forwarded-For: " + xff.encode() + b"\r\n\r\n"


async def violate_as(server, src, xff=None, label="violator"):
	"""One protocol violation (an unmasked frame, close 1002) from src, or,
	with xff, from that address as forwarded by src. Returns the upgrade
	status; nothing is sent after a refusal."""
	reader, writer = await open_tcp(server, src)
	try:
		writer.write(xff_request(server, xff))
		resp = await read_http_head(reader, scaled(5))
		if resp.status != 101:
			return resp
		ws = RawWS(reader, writer, label)
		await ws.send_raw(make_frame(OP_TEXT, b"{}", mask=False))
		while True:
			f = await ws.read_frame()
			if f.opcode == OP_CLOSE:
				break
		check_eq(f.close_code, 1002, "%s: close code" % label)
		return resp
	finally:
		writer.close()


@case(timeout=60)
async def test_violations_do_not_ban_at_defaults(t):
	# A conformance suite's run: hundreds of connections from one address,
	# each with one protocol violation. At the defaults each is closed,
	# none counts towards a ban, and later connections are admitted.
	s = t.start_server(dict(AT_DEFAULTS))
	for i in range(300):
		resp = await violate_as(s, "127.0.0.1", label="loopback %d" % i)
		check_eq(resp.status, 101, "violation %d from loopback" % i)
	# the same through the trusted local proxy (the default
	# trusted_proxies), from one forwarded public address: within the
	# connect burst, but three times ban_after
	for i in range(150):
		resp = await violate_as(s, "127.0.0.1", xff="198.51.100.9",
		    label="forwarded %d" % i)
		check_eq(resp.status, 101, "violation %d from a forwarded "
		    "address" % i)
	for src, xff in (("127.0.0.1", None), ("127.0.0.1", "198.51.100.9")):
		reader, writer = await open_tcp(s, src)
		writer.write(xff_request(s, xff))
		resp = await read_http_head(reader, scaled(5))
		writer.close()
		check_eq(resp.status, 101, "a connection after the violations "
		    "(%s, forwarded %s)" % (src, xff))
	c = await t.client(s, label="after")
	await c.sync()
	check(not re.search(r"banned", server_log(s)), "an address was banned")
	# the admin may ask for bans on violations: the forwarded address
	# is then banned after ban_after (50) of them, loopback never is
	s2 = t.start_server(dict(AT_DEFAULTS, ban_on_violations=True))
	status = None
	for i in range(60):
		resp = await violate_as(s2, "127.0.0.1", xff="198.51.100.10",
		    label="banned-to-be %d" % i)
		if resp.status != 101:
			status = resp
			break
	check(status is not None, "no ban after 60 violations with "
	    "ban_on_violations")
	check_refusal(status, 429, "banned after violations")
	for i in range(60):
		resp = await violate_as(s2, "127.0.0.1", label="loopback %d" % i)
		check_eq(resp.status, 101, "loopback violation %d with "
		    "ban_on_violations" % i)


@case()
async def test_loopback_not_capped_per_address(t):
	# the per-address cap and rate spare 127.0.0.1: a local proxy that is
	# not (yet) trusted carries everyone's connections
	s = t.start_server({"max_connections_per_ip": 2,
	    "connects_per_minute_per_ip": 30, "connect_burst_per_ip": 3,
	    "trusted_proxies": []})
	for i in range(8):
		await raw_from(t, s, "127.0.0.1", "local %d" % i)
	# another loopback-network address is an address like any other
	await raw_from(t, s, "127.0.0.2", "a1")
	await raw_from(t, s, "127.0.0.2", "a2")
	resp, ws = await try_upgrade(s, "127.0.0.2")
	check(ws is None, "a third WebSocket from 127.0.0.2 was admitted")
	check_refusal(resp, 429, "over max_connections_per_ip")
	await served(t, s, "127.0.0.1", "local bystander")


def rss_kib(server):
	"""The daemon's resident set (VmRSS), in KiB."""
	with open("/proc/%d/status" % server.proc.pid) as f:
		for line in f:
			if line.startswith("VmRSS:"):
				return int(line.split()[1])
	raise TestFailure("no VmRSS for the daemon")


def server_log(server):
	with open(server.stderr_path, errors="replace") as f:
		return f.read()


def send_queue(server_port, peer):
	"""Bytes in the kernel's send queue of the daemon's socket to peer
	(host, port), from /proc/net/tcp; None when there is no such socket."""
	want_local = "0100007F:%04X" % server_port
	h = peer[0].split(".")
	want_rem = "%02X%02X%02X%02X:%04X" % (int(h[3]), int(h[2]), int(h[1]),
	    int(h[0]), peer[1])
	with open("/proc/net/tcp") as f:
		next(f)
		for line in f:
			x = line.split()
			if x[1] == want_local and x[2] == want_rem:
				return int(x[4].split(":")[0], 16)
	return None


def kernel_sndbuf(server_port, peer):
	"""The send buffer size (ss's skmem tb) of the daemon's socket to peer;
	None when ss cannot tell."""
	try:
		out = subprocess.run(["ss", "-tmnH", "state", "established",
		    "src", "127.0.0.1:%d" % server_port, "dst", "%s:%d" % peer],
		    capture_output=True, text=True, timeout=5).stdout
	except (OSError, subprocess.SubprocessError):
		return None
	m = re.search(r"\btb(\d+)", out)
	return int(m.group(1)) if m else None


@case(timeout=60)
async def test_never_reading_peer_bounded(t):
	# A peer that stops reading holds, in the kernel's send buffer and our
	# queue together, only about max_output_bytes before it is dropped:
	# the send buffer is capped (SO_SNDBUF) from max_output_bytes. Left to
	# itself the kernel's buffer grows past the limit (tcp_wmem).
	limit = 16 << 10
	s = t.start_server({"max_output_bytes": limit, "write_timeout": 60,
	    "ping_interval": 60, "max_message_bytes": 16000,
	    "max_frame_bytes": 65536})
	sender = await t.named("sender", s)
	room = uniq("nr")
	await sender.create(room)
	stalled, reader, writer = await upgraded(t, s, "127.0.0.21", "stalled")
	peer = writer.get_extra_info("sockname")
	await stalled.read_json("welcome")
	await stalled.send_json({"type": "join_room", "roomName": room,
	    "id": 1})
	await stalled.read_json("room_joined")
	text = "n" * 4000
	# the cap itself: half the limit (the kernel doubles what is asked,
	# and would otherwise start at tcp_wmem's 16 KiB and grow)
	sndbuf = kernel_sndbuf(s.port, peer)
	print("    the daemon's send buffer for the peer: %s bytes" % sndbuf)
	check(sndbuf is not None and sndbuf <= limit // 2, "the send buffer "
	    "of a client socket is %r bytes, want at most half of "
	    "max_output_bytes (%d)" % (sndbuf, limit))

	async def burst(n):
		for _ in range(n):
			await sender.send({"type": "send_message",
			    "roomName": room, "message": text})
		for _ in range(n):
			await sender.recv("new_message")

	writer.transport.pause_reading()
	rss0 = rss_kib(s)
	rss_max = rss0
	queued_max = 0
	sent = 0
	deadline = time.monotonic() + scaled(30)
	pat = re.compile(r"close client=\d+ addr=127\.0\.0\.21 ")
	while not pat.search(server_log(s)):
		check(time.monotonic() < deadline, "a peer that never reads was "
		    "not dropped after %d messages of %d bytes" % (sent,
		    len(text)))
		await burst(2)
		sent += 2
		q = send_queue(s.port, peer)
		if q is not None:
			queued_max = max(queued_max, q)
		rss_max = max(rss_max, rss_kib(s))
	check("slow consumer" in server_log(s), "the peer was not dropped as "
	    "a slow consumer")
	print("    a peer that stopped reading was dropped after %d more "
	    "messages of %d bytes; the kernel held at most %d bytes for it "
	    "(max_output_bytes %d); RSS %d -> %d KiB" % (sent, len(text),
	    queued_max, limit, rss0, rss_max))
	# (a loopback segment may be 64 KiB, and one may always go over)
	check(queued_max <= limit + 65536, "the kernel held %d bytes for a "
	    "peer that does not read, max_output_bytes %d" % (queued_max,
	    limit))
	check(rss_max - rss0 < 16 * 1024, "RSS grew by %d KiB" %
	    (rss_max - rss0))
	await sender.say(room, "still here")
	await served(t, s)


@case(timeout=60)
async def test_http_request_deadline(t):
	# A request trickled in faster than the idle timeout but never
	# finished is closed at http_request_timeout, also on a kept-alive
	# connection; many of them cost no memory worth speaking of.
	s = t.start_server({"http_timeout": 3, "http_request_timeout": 2,
	    "max_connections_per_ip": 100})
	rss0 = rss_kib(s)
	conns = []
	for i in range(40):
		r, w = await open_tcp(s, "127.0.0.%d" % (50 + i % 20))
		w.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
		conns.append((r, w))
	# one kept alive: a whole request answered, then a trickled one
	r, w = await open_tcp(s, "127.0.0.49")
	w.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp = await read_http_head(r, scaled(5))
	check_eq(resp.status, 200, "the first request of a kept-alive "
	    "connection")
	await r.readexactly(int(resp.header("content-length")))
	w.write(b"GET / HTTP/1.1\r\n")
	conns.append((r, w))
	t0 = time.monotonic()
	rss_max = rss0
	open_ones = list(conns)
	while open_ones:
		dt = time.monotonic() - t0
		check(dt < scaled(2) + 3, "%d trickling connections still open "
		    "%.1fs into a 2 s request deadline" % (len(open_ones), dt))
		for r, w in open_ones:
			w.write(b"X")  # a byte of a header, well within http_timeout
		rss_max = max(rss_max, rss_kib(s))
		await asyncio.sleep(0.25)
		still = []
		for r, w in open_ones:
			try:
				data = await asyncio.wait_for(r.read(4096), 0.01)
			except asyncio.TimeoutError:
				still.append((r, w))
				continue
			except ConnectionError:
				data = b""
			if data:
				still.append((r, w))
		open_ones = [(r, w) for r, w in still if not r.at_eof()]
	dt = time.monotonic() - t0
	check(dt >= 1.5, "closed %.2fs in, before the 2 s deadline" % dt)
	for r, w in conns:
		w.close()
	met = (await http_get(s, "/metrics")).body.decode()
	mm = re.search(r"^parley_http_request_timeouts_total (\d+)$", met, re.M)
	check(mm is not None and int(mm.group(1)) >= 41,
	    "parley_http_request_timeouts_total: %r" % (mm and mm.group(0)))
	print("    41 trickled requests closed after %.2fs; RSS %d -> %d KiB" %
	    (dt, rss0, rss_max))
	check(rss_max - rss0 < 8 * 1024, "RSS grew by %d KiB" % (rss_max - rss0))
	await served(t, s)


if __name__ == "__main__":
	suite.main()
