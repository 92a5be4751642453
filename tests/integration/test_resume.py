#!/usr/bin/python3
#
# test_resume.py: resume (protocol 1.1, "Resume"). A connection that
# drops without a close frame is held for resume_grace seconds: its rooms
# hear nothing, its name stays taken, and `resume` with its session
# secret takes it back (`resumed`, a fresh secret, each room's seq);
# the grace's end is `user_left` with reason timeout. Also `history`
# with `after`, and what scripts see.

import asyncio
import os
import signal
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Suite, ConnectionEnded, OP_CLOSE,  # noqa: E402
    check, check_eq, http_get, lua_config, uniq)

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("PARLEY_SRCDIR") or os.path.join(HERE, "..", "..")
SCRIPTS = os.path.abspath(os.path.join(SRC, "scripts"))
TEST_SCRIPTS = os.path.abspath(os.path.join(SRC, "tests", "scripts"))

suite = Suite("resume")
case = suite.case

GRACE = {"resume_grace": 30, "script_dirs": [SCRIPTS, TEST_SCRIPTS],
    "scripts": ["commands", "resume"]}
SHORT = {"resume_grace": 1}
OFF = {"resume_grace": 0}


def drop(c):
	"""Ends c's TCP connection with a reset and no close frame, as a
	phone that lost its network looks to the server once it notices."""
	sock = c.ws.transport.get_extra_info("socket")
	sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
	    struct.pack("ii", 1, 0))
	c.ws.transport.abort()


async def quiet(c, seconds=0.3):
	"""Lets the server act on a drop, then collects what c was sent."""
	await asyncio.sleep(seconds)
	await c.sync()


async def resume(t, session, server=None):
	"""A new connection resuming session; returns (client, resumed)."""
	c = await t.client(server)
	r = await c.expect({"type": "resume", "session": session}, "resumed")
	c.username = r["username"]
	return c, r


async def pair(t):
	"""Two named members of a fresh room: (room, a, b)."""
	room = uniq("r")
	a = await t.named("a")
	b = await t.named("b")
	await a.create(room)
	await b.join(room)
	await a.recv("joined_room", pred=lambda e: e["username"] == b.username)
	return room, a, b


@case(config=GRACE)
async def test_welcome_offers_resume(t):
	c = await t.client()
	w = c.welcome
	check("resume" in w["features"], "resume in features: %r" % w)
	check_eq(w.get("resume_grace"), 30, "resume_grace")
	s = w.get("session")
	check(isinstance(s, str) and len(s) >= 22,
	    "a session secret of at least 128 bits: %r" % s)
	c2 = await t.client()
	check(c2.welcome["session"] != s, "each connection its own secret")


@case(config=OFF)
async def test_grace_zero_is_version_one(t):
	room = uniq("r")
	a = await t.named("a")
	b = await t.named("b")
	check("resume" not in a.welcome["features"], "no resume feature")
	check("session" not in a.welcome, "no session without resume")
	await a.create(room)
	await b.join(room)
	drop(b)
	ev = await a.recv("user_left", pred=lambda e:
	    e["username"] == b.username)
	check_eq(ev["reason"], "disconnected", "reason")
	c = await t.client()
	await c.expect_error({"type": "resume", "session": "x" * 32},
	    "resume_failed")


@case(config=GRACE)
async def test_drop_and_resume(t):
	room, a, b = await pair(t)
	secret = b.welcome["session"]
	drop(b)
	await quiet(a)
	# Meanwhile: a speaks, and b's name stays taken.
	for i in range(5):
		await a.say(room, "missed %d" % i)
	other = await t.client()
	await other.expect_error({"type": "set_username",
	    "username": b.username}, "name_taken")
	b2, r = await resume(t, secret)
	check_eq(r["username"], b.username, "the same name")
	check_eq(r["account"], None, "a guest's account")
	check_eq(r["roles"], [], "roles")
	check(isinstance(r["session"], str) and r["session"] != secret,
	    "a fresh secret")
	check_eq(r["rooms"], [{"roomName": room, "seq": 5}], "rooms and seq")
	h = await b2.expect({"type": "history", "roomName": room, "after": 0},
	    "history")
	check_eq([m["message"] for m in h["messages"]],
	    ["missed %d" % i for i in range(5)], "caught up with after")
	# Nobody heard of the drop or the resume.
	await a.sync()
	a.assert_none("user_left")
	a.assert_none("joined_room")
	# b2 is b: a member that speaks as b.
	m = await b2.say(room, "back")
	check_eq(m["seq"], 6, "seq")
	got = await a.recv("new_message", pred=lambda e: e["message"] == "back")
	check_eq(got["sender"], b.username, "sender")
	# The old secret is spent; the new one works.
	c = await t.client()
	await c.expect_error({"type": "resume", "session": secret},
	    "resume_failed")
	drop(b2)
	await quiet(a)
	b3, r3 = await resume(t, r["session"])
	check_eq(r3["username"], b.username, "resumed twice")
	a.assert_none("user_left")
	# secrets are never logged (the shared server logs at debug level)
	log = t.server._read(t.server.stderr_path)
	for x in (secret, r["session"], r3["session"]):
		check(x not in log, "a session secret in the log")


@case(config=GRACE)
async def test_open_connection_is_replaced(t):
	room, a, b = await pair(t)
	b2, r = await resume(t, b.welcome["session"])
	code = await b.wait_closed()
	check_eq(code, 4001, "the earlier connection's close code")
	check_eq(r["rooms"][0]["roomName"], room, "rooms")
	await quiet(a)
	a.assert_none("user_left")
	a.assert_none("joined_room")
	await b2.say(room, "still me")


@case(config=GRACE)
async def test_wrong_secret_changes_nothing(t):
	c = await t.client()
	name = c.username
	await c.expect_error({"type": "resume", "session": "nope"},
	    "resume_failed")
	c2 = await t.client()
	await c2.expect_error({"type": "resume", "session": ""},
	    "resume_failed")
	await c2.expect_error({"type": "resume", "session": "x" * 5000},
	    "bad_request")  # only the first request may be a resume
	# still the guest its welcome named, and resume is now too late
	r = await c.expect({"type": "set_username", "username": uniq("g")},
	    "username_set")
	check(r["username"] != name, "renamed")
	await c.expect_error({"type": "resume",
	    "session": c.welcome["session"]}, "bad_request")


@case(config=GRACE)
async def test_resume_must_come_first(t):
	a = await t.client()
	b = await t.client()
	await b.sync()
	await b.expect_error({"type": "resume",
	    "session": a.welcome["session"]}, "bad_request")
	await a.sync()  # a is untouched
	await b.expect_error({"type": "resume"}, "bad_request")


@case(config=GRACE)
async def test_closed_connection_is_not_held(t):
	room, a, b = await pair(t)
	secret = b.welcome["session"]
	await b.close()
	ev = await a.recv("user_left", pred=lambda e:
	    e["username"] == b.username)
	check_eq(ev["reason"], "disconnected", "reason")
	c = await t.client()
	await c.expect_error({"type": "resume", "session": secret},
	    "resume_failed")


@case(config=SHORT)
async def test_grace_runs_out(t):
	room, a, b = await pair(t)
	secret = b.welcome["session"]
	drop(b)
	await quiet(a, 0.3)
	a.assert_none("user_left")
	ev = await a.recv("user_left", pred=lambda e:
	    e["username"] == b.username, timeout=5)
	check_eq(ev["reason"], "timeout", "reason")
	c = await t.client()
	await c.expect_error({"type": "resume", "session": secret},
	    "resume_failed")
	# the name is free again
	await c.set_name(b.username)


async def metric(server, name):
	r = await http_get(server, "/metrics")
	body = r.body.decode() if isinstance(r.body, bytes) else r.body
	for line in body.splitlines():
		if line.startswith(name + " "):
			return int(line.split()[1])
	raise AssertionError("no %s in /metrics" % name)


async def refused(t, server, src):
	"""The HTTP status a WebSocket upgrade from src gets (None: in)."""
	try:
		await t.client(server, local_addr=(src, 0))
	except Exception as e:
		status = getattr(e, "status_code", None)
		check(status is not None, "refused without a status: %r" % e)
		return status
	return None


@case(config=None)
async def test_reload_turns_resume_off(t):
	s = t.start_server({"resume_grace": 30})
	room = uniq("r")
	a = await t.named("a", s)
	b = await t.named("b", s)
	await a.create(room)
	await b.join(room)
	drop(b)
	await asyncio.sleep(0.3)
	with open(s.config_path, "w") as f:
		f.write(lua_config(dict(s.config, resume_grace=0)))
	s.send_signal(signal.SIGHUP)
	for _ in range(50):
		c = await t.client(s)
		if "resume" not in c.welcome["features"]:
			break
		await asyncio.sleep(0.1)
	check("session" not in c.welcome, "no session once resume is off")
	await c.expect_error({"type": "resume",
	    "session": b.welcome["session"]}, "resume_failed")
	a.assert_none("user_left")


@case(config=None)
async def test_held_sessions_count_as_connections(t):
	s = t.start_server({"resume_grace": 30, "max_connections": 2,
	    "max_connections_per_ip": 1})
	a = await t.client(s, local_addr=("127.0.0.2", 0))
	b = await t.client(s, local_addr=("127.0.0.3", 0))
	await b.sync()
	drop(b)
	await asyncio.sleep(0.3)
	check_eq(await refused(t, s, "127.0.0.4"), 503,
	    "full while the dropped one is held")
	check_eq(await metric(s, "parley_sessions_held"), 1, "held gauge")
	await a.close()
	await asyncio.sleep(0.3)
	check_eq(await refused(t, s, "127.0.0.3"), 429,
	    "its address's place is held too")
	b2 = await t.client(s, local_addr=("127.0.0.4", 0))
	r = await b2.expect({"type": "resume", "session": b.welcome["session"]},
	    "resumed")
	check_eq(r["username"], b.welcome["username"], "resumed")
	# the place follows the connection: 127.0.0.3 is free again
	c = await t.client(s, local_addr=("127.0.0.3", 0))
	await c.sync()
	check_eq(await metric(s, "parley_sessions_held"), 0, "held gauge")
	check_eq(await metric(s, "parley_resumes_total"), 1, "resumes")


@case(config=GRACE)
async def test_owner_resumes_ownership(t):
	room, a, b = await pair(t)
	drop(a)
	await quiet(b)
	a2, r = await resume(t, a.welcome["session"])
	await a2.send({"type": "send_message", "roomName": room,
	    "message": "/kick %s bye" % b.username})
	k = await b.recv("kicked")
	check_eq(k["roomName"], room, "the owner kicked after a resume")


@case(config=GRACE)
async def test_scripts_see_resume(t):
	room, a, b = await pair(t)
	drop(b)
	await quiet(a)
	b2, r = await resume(t, b.welcome["session"])
	await a.send({"type": "send_message", "roomName": room,
	    "message": "/events"})
	n = await a.recv("notice")
	lines = n["message"].splitlines()
	mine = [x for x in lines if b.username in x.split()]
	check_eq(mine, ["join %s %s" % (b.username, room),
	    "resume %s" % b.username],
	    "a resume and no leave or join: %r" % lines)


@case(config=None)
async def test_plugins_see_resume(t):
	from test_plugins import test_plugin
	s = t.start_server({"resume_grace": 30,
	    "plugins": [test_plugin("events")]})
	a = await t.named("a", s)
	room = uniq("r")
	await a.create(room)
	drop(a)
	await asyncio.sleep(0.3)
	a2, r = await resume(t, a.welcome["session"], s)
	m = await a2.expect({"type": "send_message", "roomName": room,
	    "message": "/ev last"}, "notice")
	check(m["message"].startswith("resume %s " % a.username),
	    "PARLEY_EV_RESUME seen: %r" % m["message"])


@case(config=GRACE)
async def test_script_ends_a_held_session(t):
	room, a, b = await pair(t)
	drop(b)
	await quiet(a)
	await a.send({"type": "send_message", "roomName": room,
	    "message": "/end %s" % b.username})
	ev = await a.recv("user_left", pred=lambda e:
	    e["username"] == b.username)
	check_eq(ev["reason"], "disconnected", "a held session ended by a "
	    "script")
	c = await t.client()
	await c.expect_error({"type": "resume", "session":
	    b.welcome["session"]}, "resume_failed")


@case(config=None, timeout=30)
async def test_unanswered_ping_is_held(t):
	s = t.start_server({"resume_grace": 30, "ping_interval": 1,
	    "ping_timeout": 1})
	room = uniq("p")
	a = await t.named("a", s)
	await a.create(room)
	mute = await t.raw(s, label="mute")
	name = uniq("mute")
	await mute.send_json({"type": "join_room", "roomName": room,
	    "username": name, "id": 1})
	await mute.read_json("room_joined")
	await a.recv("joined_room", pred=lambda e: e["username"] == name)
	# no pong: the server gives up on it after about two seconds, and
	# holds it
	closed = False
	while not closed:
		try:
			f = await mute.read_frame(6)
			closed = f.opcode == OP_CLOSE
		except ConnectionEnded:
			closed = True
	await asyncio.sleep(0.5)
	await a.sync()
	a.assert_none("user_left")
	mute.close()
	b, r = await resume(t, mute.welcome["session"], s)
	check_eq(r["username"], name, "resumed after a ping timeout")
	await b.say(room, "back")


# ---- history with after (the ring)

HIST = {"history_size": 1000}


async def filled(t, n):
	room = uniq("h")
	a = await t.named("h")
	await a.create(room)
	for i in range(1, n + 1):
		await a.send({"type": "send_message", "roomName": room,
		    "message": "m%d" % i})
	await a.recv("new_message", pred=lambda e: e["message"] == "m%d" % n)
	return room, a


async def seqs(c, **q):
	r = await c.expect(dict(q, type="history"), "history")
	return [m["seq"] for m in r["messages"]]


@case(config=HIST)
async def test_history_after(t):
	room, a = await filled(t, 120)
	check_eq(await seqs(a, roomName=room, after=10, limit=5),
	    [11, 12, 13, 14, 15], "after alone: the oldest after it")
	check_eq(await seqs(a, roomName=room, after=0),
	    list(range(1, 51)), "default limit 50")
	check_eq(await seqs(a, roomName=room, after=115),
	    [116, 117, 118, 119, 120], "to the newest")
	check_eq(await seqs(a, roomName=room, after=120), [], "nothing newer")
	check_eq(await seqs(a, roomName=room, after=500), [], "past the end")
	check_eq(await seqs(a, roomName=room, after=10, before=14, limit=50),
	    [11, 12, 13], "after and before")
	check_eq(await seqs(a, roomName=room, after=10, before=100, limit=3),
	    [11, 12, 13], "after decides which end is kept")
	check_eq(await seqs(a, roomName=room, after=20, before=20), [],
	    "after >= before is empty")
	check_eq(await seqs(a, roomName=room, after=30, before=10), [],
	    "after > before is empty")
	check_eq(await seqs(a, roomName=room, before=10, limit=3),
	    [7, 8, 9], "before alone as in version 1")
	check_eq(len(await seqs(a, roomName=room, after=0, limit=100000)),
	    120, "limits are capped (500) and the room has 120")
	await a.expect_error({"type": "history", "roomName": room,
	    "after": -1}, "bad_request")
	await a.expect_error({"type": "history", "roomName": room,
	    "after": "3"}, "bad_request")
	# paging forward to the end
	got, after = [], 0
	while True:
		page = await seqs(a, roomName=room, after=after, limit=50)
		if not page:
			break
		got += page
		after = page[-1]
	check_eq(got, list(range(1, 121)), "paging forward")


@case(config={"history_size": 10})
async def test_history_after_beyond_the_ring(t):
	room, a = await filled(t, 30)
	check_eq(await seqs(a, roomName=room, after=0, limit=5),
	    [21, 22, 23, 24, 25], "the oldest kept (a gap the client sees)")


@case(config=None, timeout=30)
async def test_history_after_in_sqlite(t):
	"""history-sqlite pages forward over what is on disk and what still
	waits in memory to be written."""
	from test_plugins import sqlite_plugin
	s = t.start_server({"plugins": [sqlite_plugin()], "plugin_options":
	    {"history-sqlite": {"flush_interval_ms": 50}}})
	a = await t.named("q", s)
	room = uniq("hq")
	await a.create(room)
	for i in range(1, 61):
		await a.send({"type": "send_message", "roomName": room,
		    "message": "m%d" % i})
	await a.recv("new_message", pred=lambda e: e["message"] == "m60")
	await asyncio.sleep(0.5)  # on disk
	for i in range(61, 71):  # some of these still in memory
		await a.send({"type": "send_message", "roomName": room,
		    "message": "m%d" % i})
	await a.recv("new_message", pred=lambda e: e["message"] == "m70")
	check_eq(await seqs(a, roomName=room, after=55, limit=10),
	    list(range(56, 66)), "across disk and memory")
	check_eq(await seqs(a, roomName=room, after=0, limit=3), [1, 2, 3],
	    "after alone")
	check_eq(await seqs(a, roomName=room, after=3, before=7), [4, 5, 6],
	    "after and before")
	check_eq(await seqs(a, roomName=room, after=58, before=68, limit=4),
	    [59, 60, 61, 62], "after decides which end is kept")
	check_eq(await seqs(a, roomName=room, after=9, before=9), [],
	    "after >= before")
	check_eq(await seqs(a, roomName=room, before=4), [1, 2, 3],
	    "before alone")
	got, after = [], 0
	while True:
		page = await seqs(a, roomName=room, after=after, limit=16)
		if not page:
			break
		got += page
		after = page[-1]
	check_eq(got, list(range(1, 71)), "paging forward")
	await asyncio.sleep(0.3)  # all on disk now
	check_eq(await seqs(a, roomName=room, after=64), list(range(65, 71)),
	    "from disk")


if __name__ == "__main__":
	sys.exit(suite.main())
