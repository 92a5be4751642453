#!/usr/bin/python3
#
# test_release.py: the WebSocket upgrade releases libmicrohttpd's
# connection at once. parleyd duplicates the upgraded socket, feeds the
# bytes libmicrohttpd read past the request to its codec, and calls
# MHD_upgrade_action(CLOSE) in the upgrade handler, so that
# libmicrohttpd frees its per-connection memory and closes its own
# descriptor. That relies on libmicrohttpd's behaviour (it does not shut
# a plain TCP socket down), not on its documentation: these cases check
# that a released connection holds one descriptor, still carries data
# both ways, and closes cleanly from either side.

import asyncio
import base64
import hashlib
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Suite, RawWS, TestFailure,  # noqa
    check, check_eq, make_frame, close_payload, read_http_head, http_get,
    scaled, uniq, HOST, WS_GUID, OP_CONT, OP_TEXT, OP_CLOSE, OP_PING,
    OP_PONG)

suite = Suite("release")
case = suite.case


async def fds_settle(server, want, what, timeout=5):
	"""Waits until the daemon holds want descriptors."""
	deadline = time.monotonic() + scaled(timeout)
	while True:
		n = server.open_fds()
		if n == want:
			return
		if time.monotonic() > deadline:
			raise TestFailure("%s: the daemon holds %d descriptors, "
			    "want %d" % (what, n, want))
		await asyncio.sleep(0.02)


async def read_json(raw, type, timeout=5):
	"""The next text frame of the given type (others skipped)."""
	return await raw.read_json(type, timeout=timeout)


@case(timeout=60)
async def test_released_sockets_carry_data(t):
	s = t.start_server()
	base = s.open_fds()
	n = 12
	raws = [await t.raw(s, label="r%d" % i) for i in range(n)]
	# One descriptor per WebSocket: libmicrohttpd closed its own, and
	# holds no connection of theirs (only the one asking).
	await fds_settle(s, base + n, "after %d upgrades" % n)
	r = await http_get(s, "/metrics")
	body = r.body.decode()
	check("\nparley_connections %d\n" % n in body, "WebSockets open")
	check("\nparley_http_connections 1\n" in body,
	    "HTTP connections open: %r" % re.findall(
	    r"parley_http_connections.*", body))

	# Server to client and back: a JSON ping, a WebSocket ping.
	for i, r in enumerate(raws):
		await r.send_json({"type": "ping", "id": i})
		pong = await read_json(r, "pong")
		check_eq(pong.get("id"), i, "%s: pong id" % r.label)
		await r.send_frame(OP_PING, b"ping-%d" % i)
		while True:
			f = await r.read_frame()
			if f.opcode == OP_PONG:
				break
		check_eq(bytes(f.payload), b"ping-%d" % i, "pong payload")

	# Fan-out over released sockets, and a fragmented message split
	# over several writes.
	room = uniq("rel")
	await raws[0].send_json({"type": "create_room", "roomName": room,
	    "id": "c"})
	await read_json(raws[0], "created_room")
	for r in raws[1:]:
		await r.send_json({"type": "join_room", "roomName": room,
		    "id": "j"})
		await read_json(r, "room_joined")
	text = "x" * 3000
	body = json.dumps({"type": "send_message", "roomName": room,
	    "message": text}).encode()
	parts = [body[:1000], body[1000:2000], body[2000:]]
	await raws[0].send_frame(OP_TEXT, parts[0], fin=False)
	await raws[0].send_frame(OP_CONT, parts[1], fin=False)
	await asyncio.sleep(0.05)
	await raws[0].send_frame(OP_CONT, parts[2])
	for r in raws:
		m = await read_json(r, "new_message")
		check_eq(m.get("message"), text, "%s: message" % r.label)

	# The client closes: its code comes back, then the server ends TCP.
	r = raws.pop()
	await r.send_frame(OP_CLOSE, close_payload(1000, b"bye"))
	while True:
		f = await r.read_frame()
		if f.opcode == OP_CLOSE:
			break
	check_eq(f.close_code, 1000, "echoed close code")
	await r.expect_eof()
	# The server closes (a protocol violation): close frame, then EOF.
	r = raws.pop()
	await r.send_raw(make_frame(0x3, b""))  # reserved opcode
	await r.expect_close(1002)
	await fds_settle(s, base + n - 2, "after two closes")
	for r in raws:
		r.close()
	await fds_settle(s, base, "after every client left")


@case(timeout=30)
async def test_bytes_after_the_request(t):
	"""A frame sent in the same write as the upgrade request is read
	by libmicrohttpd with the request: it must reach the codec."""
	s = t.start_server()
	reader, writer = await asyncio.open_connection(HOST, s.port)
	try:
		key = base64.b64encode(os.urandom(16)).decode()
		req = ("GET /ws HTTP/1.1\r\nHost: %s:%d\r\n"
		    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
		    "\r\n" % (HOST, s.port, key)).encode()
		frames = make_frame(OP_TEXT, json.dumps({"type": "ping",
		    "id": "early"}).encode()) + make_frame(OP_PING, b"early")
		writer.write(req + frames)
		await writer.drain()
		resp = await read_http_head(reader, scaled(5))
		check_eq(resp.status, 101, "upgrade status")
		want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode())
		    .digest()).decode()
		check_eq(resp.header("sec-websocket-accept"), want, "accept")
		raw = RawWS(reader, writer, "early")
		got = []
		deadline = time.monotonic() + scaled(5)
		while len(got) < 3 and time.monotonic() < deadline:
			f = await raw.read_frame()
			if f.opcode == OP_PONG:
				got.append(("pong", bytes(f.payload)))
			elif f.opcode == OP_TEXT:
				got.append((f.json().get("type"),
				    f.json().get("id")))
		check(("welcome", None) in got, "welcome: %r" % got)
		check(("pong", "early") in got, "JSON pong: %r" % got)
		check(("pong", b"early") in got, "WebSocket pong: %r" % got)
	finally:
		writer.close()


@case(timeout=60)
async def test_no_descriptor_leaks(t):
	"""Upgrades and closes of every kind leave nothing open."""
	s = t.start_server()
	base = s.open_fds()
	for i in range(40):
		r = await RawWS.connect(s, label="cycle%d" % i)
		if i % 3 == 0:
			await r.send_frame(OP_CLOSE, close_payload(1000))
			await r.expect_eof()
		elif i % 3 == 1:
			r.close()  # TCP gone without a close frame
		else:
			await r.send_raw(make_frame(OP_TEXT, b"\xff"))
			await r.expect_close(1007)
	await fds_settle(s, base, "after 40 upgrades and closes")
	r = await http_get(s, "/healthz")
	check_eq(r.status, 200, "healthz after the cycles")


@case(timeout=30)
async def test_large_request_headers(t):
	"""max_header_bytes costs nothing once upgraded, so the default
	leaves room for large cookies; a smaller setting answers 431."""
	cookie = "; ".join("c%d=%s" % (i, "v" * 200) for i in range(100))
	check(len(cookie) > 20000, "a 20 KB cookie header")
	s = t.start_server()
	r = await RawWS.connect(s, headers={"Cookie": cookie}, label="big")
	await r.send_json({"type": "ping", "id": 1})
	await r.read_json("pong")
	r.close()
	small = t.start_server({"max_header_bytes": 4096})
	resp = await http_get(small, "/ws", headers={"Cookie": cookie,
	    "Upgrade": "websocket", "Connection": "Upgrade",
	    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
	    "Sec-WebSocket-Version": "13"})
	check_eq(resp.status, 431, "status for headers over the limit")


if __name__ == "__main__":
	suite.main()
