#!/usr/bin/python3
#
# test_transport.py: RFC 6455 over real sockets with hand-made frames:
# fragmentation, control frames, every close code the protocol names,
# message size limits, the closing handshake and the server's own pings.
# After each violation a normal client on the same server must still work.

import asyncio
import base64
import json
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Suite, RawWS, ConnectionEnded, TestFailure,  # noqa
    check, check_eq, make_frame, close_payload, read_http_head, scaled,
    uniq, HOST, OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING,
    OP_PONG)

suite = Suite("transport")
case = suite.case
DEFAULT = {}
# Version 1's disconnects: with resume (1.1) a dropped connection is
# held, not gone (test_resume.py).
NO_RESUME = {"resume_grace": 0}


def ping_json(i, **extra):
	d = {"type": "ping", "id": i}
	d.update(extra)
	return json.dumps(d).encode()


async def violation(t, data, code, label=None):
	"""Sends data on a fresh raw connection and checks that it is closed
	with code while a normal client stays fine."""
	comp = await t.client(label="companion")
	raw = await t.raw(label=label or "raw")
	await raw.send_raw(data)
	try:
		await raw.expect_close(code)
	except TestFailure as e:
		raise TestFailure("%s: %s" % (label, e))
	await comp.sync()
	check(not comp.closed, "companion still connected")


@case(config=DEFAULT)
async def test_fragmented_with_ping(t):
	raw = await t.raw()
	msg = ping_json(7)
	parts = [msg[:5], msg[5:12], msg[12:]]
	await raw.send_frame(OP_TEXT, parts[0], fin=False)
	await raw.send_frame(OP_PING, b"abc")
	await raw.send_frame(OP_CONT, parts[1], fin=False)
	await raw.send_frame(OP_PING, b"")
	await raw.send_frame(OP_CONT, parts[2], fin=True)
	f = await raw.read_frame()
	check_eq((f.opcode, f.payload), (OP_PONG, b"abc"), "first pong")
	f = await raw.read_frame()
	check_eq((f.opcode, f.payload), (OP_PONG, b""), "second pong")
	f = await raw.read_frame()
	check_eq(f.opcode, OP_TEXT, "reply opcode")
	check_eq(f.json(), {"type": "pong", "id": 7}, "reply to the "
	    "reassembled message")
	# a multibyte character split between fragments is fine
	name = uniq("fr\u00e9d\u20ac")
	msg = json.dumps({"type": "set_username", "username": name, "id": 8},
	    ensure_ascii=False).encode()
	cut = msg.index("\u20ac".encode()) + 1
	await raw.send_frame(OP_TEXT, msg[:cut], fin=False)
	await raw.send_frame(OP_CONT, msg[cut:cut + 1], fin=False)
	await raw.send_frame(OP_CONT, b"", fin=False)
	await raw.send_frame(OP_CONT, msg[cut + 1:], fin=True)
	m = await raw.read_json()
	check_eq((m.get("type"), m.get("username"), m.get("id")),
	    ("username_set", name, 8), "reply to a split character")


@case(config=DEFAULT)
async def test_ping_pong_payloads(t):
	raw = await t.raw()
	for payload in (b"", b"x", os.urandom(125), b"\xff\x00binary"):
		await raw.send_frame(OP_PING, payload)
		f = await raw.read_frame()
		check_eq(f.opcode, OP_PONG, "pong opcode")
		check_eq(f.payload, payload, "pong payload")
	# an unsolicited pong is fine
	await raw.send_frame(OP_PONG, b"hello")
	await raw.send_frame(OP_TEXT, ping_json(1))
	m = await raw.read_json()
	check_eq(m, {"type": "pong", "id": 1}, "reply after a pong")


@case(config=DEFAULT)
async def test_pipelined_and_split(t):
	raw = await t.raw()
	data = b"".join(make_frame(OP_TEXT, ping_json(i)) for i in range(50))
	await raw.send_raw(data)
	for i in range(50):
		m = await raw.read_json()
		check_eq(m, {"type": "pong", "id": i}, "pipelined reply")
	# one frame, one byte per write
	frame = make_frame(OP_TEXT, ping_json(99))
	for i in range(len(frame)):
		await raw.send_raw(frame[i:i + 1])
		await asyncio.sleep(0.002)
	m = await raw.read_json()
	check_eq(m, {"type": "pong", "id": 99}, "reply to a trickled frame")
	# 16-bit and 64-bit length forms from the client
	pad = "p" * 300
	await raw.send_frame(OP_TEXT, ping_json(100, pad=pad))
	m = await raw.read_json()
	check_eq(m.get("id"), 100, "16-bit length")
	big = "q" * 70000
	s = t.shared({"max_frame_bytes": 100000})
	raw2 = await t.raw(s)
	await raw2.send_frame(OP_TEXT, ping_json(101, pad=big))
	m = await raw2.read_json()
	check_eq(m.get("id"), 101, "64-bit length")


@case(config=DEFAULT)
async def test_frame_in_handshake_packet(t):
	# bytes sent right behind the upgrade request, before the 101 came
	# back, are the first WebSocket frames
	reader, writer = await asyncio.open_connection(HOST, t.server.port)
	key = base64.b64encode(os.urandom(16)).decode()
	req = ("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
	    "Sec-WebSocket-Version: 13\r\n\r\n" % key).encode()
	writer.write(req + make_frame(OP_TEXT, ping_json(5)) +
	    make_frame(OP_PING, b"early"))
	await writer.drain()
	raw = RawWS(reader, writer, "early")
	t.clients.append(raw)
	resp = await read_http_head(reader, scaled(5))
	check_eq(resp.status, 101, "status")
	f = await raw.read_frame()
	check_eq(json.loads(f.payload).get("type"), "welcome", "first frame")
	got = [await raw.read_frame(), await raw.read_frame()]
	texts = [json.loads(f.payload) for f in got if f.opcode == OP_TEXT]
	pongs = [f.payload for f in got if f.opcode == OP_PONG]
	check_eq(texts, [{"type": "pong", "id": 5}], "reply to the early "
	    "message")
	check_eq(pongs, [b"early"], "pong for the early ping")


@case(config=DEFAULT)
async def test_no_extension_or_subprotocol(t):
	raw = await t.raw(headers={
	    "Sec-WebSocket-Extensions": "permessage-deflate; "
	    "client_max_window_bits",
	    "Sec-WebSocket-Protocol": "chat, superchat"})
	check_eq(raw.response.header("sec-websocket-extensions"), None,
	    "no extension negotiated")
	check_eq(raw.response.header("sec-websocket-protocol"), None,
	    "no subprotocol selected")
	await raw.send_frame(OP_TEXT, ping_json(1))
	check_eq(await raw.read_json(), {"type": "pong", "id": 1}, "reply")


@case(config=DEFAULT)
async def test_binary_refused(t):
	await violation(t, make_frame(OP_BINARY, b"\x00\x01\x02"), 1003,
	    "binary")
	await violation(t, make_frame(OP_BINARY, b"\x00", fin=False) +
	    make_frame(OP_CONT, b"\x01"), 1003, "fragmented binary")
	await violation(t, make_frame(OP_BINARY, ping_json(1)), 1003,
	    "binary JSON")


@case(config=DEFAULT)
async def test_reserved_bits(t):
	for rsv in (1, 2, 4, 7):
		await violation(t, make_frame(OP_BINARY, b"x", rsv=rsv), 1002,
		    "binary rsv %d" % rsv)
		await violation(t, make_frame(OP_TEXT, ping_json(1), rsv=rsv),
		    1002, "text rsv %d" % rsv)
	await violation(t, make_frame(OP_PING, b"", rsv=4), 1002, "ping rsv")
	await violation(t, make_frame(OP_TEXT, b"{", fin=False) +
	    make_frame(OP_CONT, b"}", rsv=1), 1002, "continuation rsv")


@case(config=DEFAULT)
async def test_unmasked(t):
	await violation(t, make_frame(OP_TEXT, ping_json(1), mask=False),
	    1002, "unmasked text")
	await violation(t, make_frame(OP_PING, b"p", mask=False), 1002,
	    "unmasked ping")
	await violation(t, make_frame(OP_TEXT, b"{", fin=False) +
	    make_frame(OP_CONT, b"}", mask=False), 1002,
	    "unmasked continuation")


@case(config=DEFAULT)
async def test_bad_opcode(t):
	for op in (0x3, 0x5, 0x7, 0xB, 0xD, 0xF):
		await violation(t, make_frame(op, b"x"), 1002,
		    "opcode %#x" % op)


@case(config=DEFAULT)
async def test_bad_fragmentation(t):
	await violation(t, make_frame(OP_CONT, b"{}"), 1002,
	    "continuation without a start")
	await violation(t, make_frame(OP_TEXT, b"{", fin=False) +
	    make_frame(OP_TEXT, b"}"), 1002, "new message inside a "
	    "fragmented one")
	await violation(t, make_frame(OP_TEXT, b"{", fin=False) +
	    make_frame(OP_BINARY, b"}"), 1002, "binary inside a "
	    "fragmented text")


@case(config=DEFAULT)
async def test_control_frames(t):
	await violation(t, make_frame(OP_PING, b"a", fin=False), 1002,
	    "fragmented ping")
	await violation(t, make_frame(OP_PONG, b"a", fin=False), 1002,
	    "fragmented pong")
	await violation(t, make_frame(OP_CLOSE, close_payload(1000),
	    fin=False), 1002, "fragmented close")
	await violation(t, make_frame(OP_PING, b"x" * 126), 1002,
	    "ping of 126 bytes")
	await violation(t, make_frame(OP_PONG, b"x" * 200), 1002,
	    "pong of 200 bytes")
	await violation(t, make_frame(OP_CLOSE, close_payload(1000,
	    b"r" * 124)), 1002, "close of 126 bytes")
	# a 125-byte ping is the largest that is fine
	raw = await t.raw()
	await raw.send_frame(OP_PING, b"y" * 125)
	f = await raw.read_frame()
	check_eq((f.opcode, len(f.payload)), (OP_PONG, 125), "125-byte pong")


@case(config=DEFAULT)
async def test_bad_close_code(t):
	for code in (0, 999, 1004, 1005, 1006, 1015, 2000, 2999, 5000,
	    65535):
		await violation(t, make_frame(OP_CLOSE, close_payload(code)),
		    1002, "close code %d" % code)
	await violation(t, make_frame(OP_CLOSE, b"\x03"), 1002,
	    "one-byte close payload")


@case(config=DEFAULT)
async def test_invalid_utf8(t):
	bad = [b"\xff", b"{\"type\": \"ping\", \"x\": \"\xc0\xaf\"}",
	    b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"abc\x80",
	    b"{\"type\": \"ping\", \"x\": \"\xe2\x82\"}"]
	for data in bad:
		await violation(t, make_frame(OP_TEXT, data), 1007,
		    "invalid UTF-8 %r" % data)
	# split across fragments: each part could start a valid text
	head = b"{\"type\": \"ping\", \"x\": \"\xe2\x82"
	await violation(t, make_frame(OP_TEXT, head, fin=False) +
	    make_frame(OP_CONT, b"(\"}"), 1007, "bad continuation byte in "
	    "the next fragment")
	await violation(t, make_frame(OP_TEXT, b"{\"type\": \"x\xf0",
	    fin=False) + make_frame(OP_CONT, b"\x9f") +
	    make_frame(OP_CONT, b"\x98\x80\"}"), 1007, "message ends inside "
	    "a character")
	await violation(t, make_frame(OP_TEXT, b"{\"a\": \"\xe2", fin=False) +
	    make_frame(OP_CONT, b"\x82\xac\"", fin=False) +
	    make_frame(OP_CONT, b"\xff}"), 1007, "valid split, then invalid")


def ping_of_size(n, i=1):
	"""A valid ping frame payload of exactly n bytes."""
	base = json.dumps({"type": "ping", "id": i, "pad": ""}).encode()
	pad = n - len(base)
	check(pad >= 0, "size too small")
	return json.dumps({"type": "ping", "id": i, "pad": "p" * pad}).encode()


@case(config=DEFAULT)
async def test_message_size_limit(t):
	raw = await t.raw()
	msg = ping_of_size(65536, 3)
	check_eq(len(msg), 65536, "test message size")
	await raw.send_frame(OP_TEXT, msg)
	check_eq(await raw.read_json(timeout=10), {"type": "pong", "id": 3},
	    "reply to a message of exactly max_frame_bytes")
	# the same split into fragments
	await raw.send_frame(OP_TEXT, msg[:40000], fin=False)
	await raw.send_frame(OP_CONT, msg[40000:], fin=True)
	check_eq(await raw.read_json(timeout=10), {"type": "pong", "id": 3},
	    "reply to a fragmented message of exactly max_frame_bytes")
	# one more byte: only the header is sent, the length decides
	await violation(t, make_frame(OP_TEXT, b"", length=65537), 1009,
	    "one byte over, in one frame")
	await violation(t, make_frame(OP_TEXT, b"x" * 40000, fin=False) +
	    make_frame(OP_CONT, b"", length=25537), 1009,
	    "one byte over, in fragments")
	await violation(t, make_frame(OP_TEXT, b"", length=1 << 62), 1009,
	    "2^62 bytes")
	await violation(t, make_frame(OP_TEXT, b"", length=1 << 63), 1002,
	    "2^63 bytes (top bit set)")
	await violation(t, make_frame(OP_BINARY, b"", length=(1 << 64) - 1),
	    1002, "2^64-1 bytes")


@case(config=DEFAULT)
async def test_non_minimal_length(t):
	# RFC 6455 asks for the minimal length encoding; a server may
	# refuse a longer one with 1002 or accept it, but must not hang or
	# misparse. Either answer is checked for consistency.
	raw = await t.raw()
	payload = ping_json(11)
	frame = bytes([0x81, 0x80 | 126]) + struct.pack("!H", len(payload))
	key = os.urandom(4)
	frame += key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
	await raw.send_raw(frame)
	f = await raw.read_frame()
	if f.opcode == OP_CLOSE:
		check_eq(f.close_code, 1002, "close code for a non-minimal "
		    "length")
	else:
		check_eq(json.loads(f.payload), {"type": "pong", "id": 11},
		    "reply to a non-minimal length")


@case(config=DEFAULT)
async def test_client_close_handshake(t):
	comp = await t.client(label="companion")
	room = uniq("cl")
	await comp.create(room)
	for code, reason in ((1000, b""), (1001, b"bye"), (4000, b"app"),
	    (3001, "\u00e9t\u00e9".encode())):
		raw = await t.raw()
		await raw.send_json({"type": "join_room", "roomName": room,
		    "username": uniq("leaver")})
		await raw.read_json("room_joined")
		t0 = time.monotonic()
		await raw.send_frame(OP_CLOSE, close_payload(code, reason))
		while True:
			f = await raw.read_frame(1)
			if f.opcode == OP_CLOSE:
				break
		check(f.close_code in (code, 1000), "echoed close code %r "
		    "for %d" % (f.close_code, code))
		await raw.expect_eof(1)
		dt = time.monotonic() - t0
		check(dt < scaled(1), "TCP closed %.2fs after the close "
		    "frame" % dt)
		m = await comp.recv("user_left")
		check_eq(m["reason"], "disconnected", "reason after a close")
	# a close without a code is fine too, and is answered
	raw = await t.raw()
	await raw.send_frame(OP_CLOSE, b"")
	f = await raw.read_frame(1)
	check_eq(f.opcode, OP_CLOSE, "answer to an empty close")
	check(f.close_code in (None, 1000), "close code %r" % f.close_code)
	await raw.expect_eof(1)
	# frames after a close are ignored, not answered
	raw = await t.raw()
	await raw.send_raw(make_frame(OP_CLOSE, close_payload(1000)) +
	    make_frame(OP_TEXT, ping_json(1)) + make_frame(OP_PING, b"late"))
	f = await raw.read_frame(1)
	check_eq(f.opcode, OP_CLOSE, "first frame after our close")
	try:
		f = await raw.read_frame(1)
		raise TestFailure("frame after the server's close: %r" % f)
	except ConnectionEnded:
		pass
	await comp.sync()


@case(config=NO_RESUME)
async def test_abrupt_disconnects(t):
	comp = await t.client(label="companion")
	room = uniq("ab")
	await comp.create(room)
	cuts = [make_frame(OP_TEXT, ping_json(1))[:3],
	    make_frame(OP_TEXT, b"{", fin=False),
	    make_frame(OP_TEXT, b"", length=1000) + b"x" * 10,
	    b""]
	for data in cuts:
		raw = await t.raw()
		await raw.send_json({"type": "join_room", "roomName": room,
		    "username": uniq("cut")})
		await raw.read_json("room_joined")
		await raw.send_raw(data)
		raw.writer.transport.abort()
		m = await comp.recv("user_left")
		check_eq(m["reason"], "disconnected", "reason")
	await comp.sync()


@case(timeout=30)
async def test_server_ping_and_timeout(t):
	s = t.start_server({"ping_interval": 1, "ping_timeout": 1,
	    "resume_grace": 0})
	comp = await t.client(s, label="companion")
	room = uniq("pt")
	await comp.create(room)
	mute = await t.raw(s, label="mute")
	polite = await t.raw(s, label="polite")
	mname = uniq("mute")
	for raw, name in ((mute, mname), (polite, uniq("polite"))):
		await raw.send_json({"type": "join_room", "roomName": room,
		    "username": name, "id": 1})
		await raw.read_json("room_joined")
	await comp.sync()
	comp.pending.clear()

	async def answer_pings(raw, until):
		pings = 0
		while time.monotonic() < until:
			try:
				f = await raw.read_frame(0.2)
			except TestFailure:
				continue
			if f.opcode == OP_PING:
				pings += 1
				await raw.send_frame(OP_PONG, f.payload)
			elif f.opcode == OP_CLOSE:
				raise TestFailure("polite client closed: %r" % f)
		return pings

	t0 = time.monotonic()
	# real seconds: the server's timers do not slow down under valgrind
	polite_task = asyncio.ensure_future(answer_pings(polite, t0 + 4.5))
	try:
		# the mute client gets a ping and then, unanswered, is dropped
		while True:
			f = await mute.read_frame(3)
			if f.opcode != OP_TEXT:
				break
		check_eq(f.opcode, OP_PING, "server pings an idle client")
		t_ping = time.monotonic()
		check(t_ping - t0 < scaled(2.5), "first ping after %.1fs" %
		    (t_ping - t0))
		try:
			while True:
				f = await mute.read_frame(4)
				if f.opcode == OP_CLOSE:
					check(f.close_code in (1001, None),
					    "close code %r for a timeout" %
					    f.close_code)
					await mute.expect_eof(2)
					break
				check(f.opcode in (OP_PING, OP_TEXT),
				    "frame %r" % f)
		except ConnectionEnded:
			pass
		dt = time.monotonic() - t_ping
		check(dt < scaled(3.5), "dropped %.1fs after the ping" % dt)
		m = await comp.recv("user_left", timeout=3)
		check_eq((m["roomName"], m["username"], m["reason"]),
		    (room, mname, "timeout"), "user_left for a timeout")
		pings = await polite_task
	finally:
		polite_task.cancel()
	check(pings >= 2, "polite client got %d pings in 4.5s" % pings)
	# the polite client survived and still talks
	await polite.send_json({"type": "ping", "id": 2})
	check_eq(await polite.read_json("pong"), {"type": "pong", "id": 2},
	    "polite client after the timeouts")
	await comp.sync()
	p = await comp.expect({"type": "get_participants", "roomName": room},
	    "participants")
	check(mname not in p["participants"], "mute client gone")
	check_eq(len(p["participants"]), 2, "participants left")


@case(config=DEFAULT)
async def test_many_violations_then_fine(t):
	# a burst of bad connections at once, then the server still serves
	comp = await t.client(label="companion")
	bad = [make_frame(OP_BINARY, b"x"), make_frame(OP_TEXT, b"\xff"),
	    make_frame(0x3, b""), make_frame(OP_TEXT, b"", length=1 << 62)] * 5
	raws = [await t.raw() for _ in bad]
	for raw, data in zip(raws, bad):
		await raw.send_raw(data)
	want = {0: 1003, 1: 1007, 2: 1002, 3: 1009}
	for i, raw in enumerate(raws):
		await raw.expect_close(want[i % 4])
	await comp.sync()
	raw = await t.raw()
	await raw.send_json({"type": "ping", "id": 1})
	check_eq(await raw.read_json(), {"type": "pong", "id": 1}, "reply")


@case()
async def test_configured_frame_limit(t):
	s = t.start_server({"max_frame_bytes": 2048, "max_message_bytes": 1024})
	raw = await t.raw(s)
	await raw.send_frame(OP_TEXT, ping_of_size(2048, 4))
	check_eq(await raw.read_json(), {"type": "pong", "id": 4},
	    "a message of exactly max_frame_bytes")
	await raw.send_frame(OP_TEXT, b"", length=2049)
	await raw.expect_close(1009)
	raw = await t.raw(s)
	await raw.send_frame(OP_TEXT, b"{" * 1000, fin=False)
	await raw.send_frame(OP_CONT, b"}" * 1000, fin=False)
	await raw.send_frame(OP_CONT, b"", length=49)
	await raw.expect_close(1009)


@case(timeout=60)
async def test_slow_consumer(t):
	# a client that never reads is dropped once its queue passes
	# max_output_bytes; the sender and others carry on
	s = t.start_server({"max_output_bytes": 262144})
	sender = await t.client(s, label="sender", max_queue=None)
	room = uniq("slow")
	await sender.create(room)
	other = await t.client(s, label="other", max_queue=None)
	await other.join(room)
	slow = await t.raw(s, label="slow", rcvbuf=4096)
	sname = uniq("slow")
	await slow.send_json({"type": "join_room", "roomName": room,
	    "username": sname, "id": 1})
	await slow.read_json("room_joined")
	await sender.sync()
	sender.pending.clear()
	text = "z" * 4000
	dropped = False
	# small batches: one loop turn of the server must not be what
	# overflows a queue, only a reader that never reads
	for batch in range(1000):
		for i in range(10):
			await sender.send({"type": "send_message",
			    "roomName": room, "message": text})
		got = 0
		while got < 10:
			m = await sender.recv()
			if m["type"] == "new_message":
				got += 1
			elif m["type"] == "user_left" and \
			    m.get("username") == sname:
				check(m.get("reason") in ("disconnected",
				    "timeout"), "user_left.reason for a slow "
				    "consumer: %r" % m.get("reason"))
				dropped = True
		other.pending.clear()
		if dropped:
			break
	check(dropped, "a client that never reads was not dropped after "
	    "%d messages" % ((batch + 1) * 10))
	# the others are fine and everything reached them
	await other.sync()
	await sender.sync()
	p = await other.expect({"type": "get_participants", "roomName": room},
	    "participants")
	check_eq(p["participants"], [sender.username, other.username],
	    "participants")


if __name__ == "__main__":
	suite.main()
