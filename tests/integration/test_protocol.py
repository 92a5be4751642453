#!/usr/bin/python3
#
# test_protocol.py: every client message of PROTOCOL.md and every error
# code that can be reached without scripts, against the built parleyd:
# replies, broadcasts, id echo, envelope checks and name rules.

import asyncio
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Suite, TestFailure, check, check_eq,  # noqa
    uniq, scaled)

suite = Suite("protocol")
case = suite.case
DEFAULT = {}  # the shared server with the harness defaults
# Version 1's disconnects: with resume (1.1) a dropped connection is
# held, not gone (test_resume.py).
NO_RESUME = {"resume_grace": 0}


def names(msg):
	return msg.get("participants")


async def current_name(c):
	"""The name the server has for c, from a fresh room's participants."""
	r = await c.create(uniq("whoami"))
	check_eq(len(r["participants"]), 1, "participants of a new room")
	return r["participants"][0]


@case(config=DEFAULT)
async def test_welcome_fields(t):
	c = await t.client()
	w = c.welcome
	check(isinstance(w.get("server"), str) and w["server"],
	    "welcome.server is a non-empty string: %r" % (w,))
	check(isinstance(w.get("version"), str) and w["version"],
	    "welcome.version is a non-empty string: %r" % (w,))
	check(w.get("protocol") == 1 and type(w.get("protocol")) is int,
	    "welcome.protocol is 1: %r" % (w,))
	check(re.match(r"^guest-\d+$", w.get("username", "")) is not None,
	    "welcome.username is a guest name: %r" % (w,))
	check(isinstance(w.get("rooms"), list) and
	    all(isinstance(x, str) for x in w["rooms"]),
	    "welcome.rooms is a list of names: %r" % (w,))
	check("general" in w["rooms"], "general in welcome.rooms")
	check("id" not in w, "welcome carries no id")
	c2 = await t.client()
	check(c2.welcome["username"] != w["username"],
	    "two clients get distinct guest names")
	# a room created later shows up in the next welcome
	room = uniq("wroom")
	await c.create(room)
	c3 = await t.client()
	check(room in c3.welcome["rooms"], "new room in a later welcome")


@case()
async def test_default_room_general(t):
	# no rooms key at all: the built-in default has one room, general
	s = t.start_server({"rooms": None})
	c = await t.client(s)
	check_eq(c.welcome.get("rooms"), ["general"], "welcome.rooms")
	r = await c.expect({"type": "list_rooms"}, "rooms")
	check_eq([x["roomName"] for x in r["rooms"]], ["general"],
	    "list_rooms")
	await c.join("general")


@case()
async def test_configured_rooms(t):
	s = t.start_server({"rooms": ["lobby", "Lobby", "dev ops"]})
	c = await t.client(s)
	check_eq(sorted(c.welcome.get("rooms")), sorted(["lobby", "Lobby",
	    "dev ops"]), "welcome.rooms")
	await c.join("Lobby")
	await c.expect_error({"type": "join_room", "roomName": "LOBBY"},
	    "room_not_found")


@case(config=DEFAULT)
async def test_set_username(t):
	c = await t.client()
	name = uniq("alice")
	r = await c.expect({"type": "set_username", "username": name},
	    "username_set")
	check_eq(r.get("username"), name, "username_set.username")
	check("id" in r, "username_set answers with the id")
	c.username = name
	check_eq(await current_name(c), name, "name after set_username")
	# not in any room: no user_renamed at all
	await c.sync()
	c.assert_none("user_renamed")


@case(config=DEFAULT)
async def test_user_renamed(t):
	bob, alice, carol = await t.named("bob"), await t.named("alice"), \
	    await t.named("carol")
	r1, r2, r3 = uniq("r1"), uniq("r2"), uniq("r3")
	await alice.create(r1)
	await bob.join(r1)
	await carol.create(r2)
	await bob.join(r2)
	await carol.create(r3)  # bob is not in r3
	old = bob.username
	new = uniq("robert")
	r = await bob.expect({"type": "set_username", "username": new},
	    "username_set")
	check_eq(r["username"], new, "username_set.username")
	bob.username = new
	want1 = {"roomName": r1, "oldUsername": old, "username": new,
	    "participants": [alice.username, new]}
	want2 = {"roomName": r2, "oldUsername": old, "username": new,
	    "participants": [carol.username, new]}
	for c, wants in ((bob, [want1, want2]), (alice, [want1]),
	    (carol, [want2])):
		for want in wants:
			m = await c.recv("user_renamed",
			    pred=lambda m: m.get("roomName") == want["roomName"])
			for k, v in want.items():
				check_eq(m.get(k), v, "%s: user_renamed.%s" %
				    (c.label, k))
			check("id" not in m, "user_renamed carries no id")
	for c in (bob, alice, carol):
		await c.sync()
		c.assert_none("user_renamed")
	# the new name is the one in participants from now on
	p = await alice.expect({"type": "get_participants", "roomName": r1},
	    "participants")
	check_eq(p["participants"], [alice.username, new], "participants")


INVALID_NAMES = [
	("empty", ""),
	("33 bytes", "a" * 33),
	("33 bytes multibyte", "\u00e9" * 16 + "a"),
	("33 bytes 3-byte chars", "\u20ac" * 11),
	("leading space", " bob"),
	("trailing space", "bob "),
	("only space", " "),
	("tab", "bo\tb"),
	("newline", "bob\n"),
	("escape", "\x1bbob"),
	("DEL", "bo\x7fb"),
	("C1 NEL U+0085", "bo\u0085b"),
	("C1 U+009F", "\u009fbob"),
	("NUL", "bo\u0000b"),
]

VALID_NAMES = [
	("32 bytes", "n" * 32),
	("32 bytes multibyte", "\u00e9" * 16),
	("32 bytes mixed", "\u20ac" * 10 + "ab"),
	("one byte", "x"),
	("inner space", "a b"),
	("emoji", "\U0001F600smile"),
]


@case(config=DEFAULT)
async def test_set_username_invalid(t):
	c = await t.named("keep")
	for what, name in INVALID_NAMES:
		r = await c.request({"type": "set_username", "username": name})
		if r.get("type") != "error" or r.get("code") != "invalid_name":
			raise TestFailure("set_username %s (%r): got %r, want "
			    "error invalid_name" % (what, name, r))
		check("id" in r, "invalid_name error carries the id")
	check_eq(await current_name(c), c.username,
	    "name after failed set_username")


@case(config=DEFAULT)
async def test_set_username_valid_edges(t):
	# valid names are unique per server: each is used once, then released
	# by disconnecting
	for what, name in VALID_NAMES:
		c = await t.client()
		r = await c.request({"type": "set_username", "username": name})
		if r.get("type") != "username_set" or \
		    r.get("username") != name:
			raise TestFailure("set_username %s (%r): got %r" %
			    (what, name, r))
		await c.close()
	# a non-breaking space is no control character, but it draws as a
	# space: a name with it could pass for the name without it
	c = await t.client()
	name = "\u00a0" + uniq("nbsp")
	r = await c.request({"type": "set_username", "username": name})
	check_eq(r.get("code"), "invalid_name",
	    "leading U+00A0 is refused (%r)" % (r,))


@case(config=DEFAULT)
async def test_name_taken(t):
	a = await t.named("Alice")
	b = await t.named("bob")
	await b.expect_error({"type": "set_username", "username": a.username},
	    "name_taken")
	await b.expect_error({"type": "set_username",
	    "username": a.username.lower()}, "name_taken")
	await b.expect_error({"type": "set_username",
	    "username": a.username.upper()}, "name_taken")
	check_eq(await current_name(b), b.username, "name after name_taken")
	# guest names count, case-folded too
	g = await t.client(label="guest")
	guest = g.username
	await b.expect_error({"type": "set_username", "username": guest},
	    "name_taken")
	await b.expect_error({"type": "set_username",
	    "username": guest.upper()}, "name_taken")
	# my own name with another case is fine
	r = await a.expect({"type": "set_username",
	    "username": a.username.upper()}, "username_set")
	check_eq(r["username"], a.username.upper(), "case change of own name")
	a.username = r["username"]
	check_eq(await current_name(a), a.username, "name after case change")
	# beyond ASCII too: \u00c9 and \u00e9 are one name (case folding),
	# and so are look-alikes
	base = uniq("mile")
	await a.set_name("\u00c9" + base)
	for same in ("\u00e9" + base, "e\u0301" + base, "E" + base,
	    "\u0415" + base, "\uff25" + base):
		await b.expect_error({"type": "set_username", "username": same},
		    "name_taken")


@case(config=DEFAULT)
async def test_name_released(t):
	a = await t.named("rel")
	b = await t.client()
	old = a.username
	await a.set_name(uniq("rel2"))
	# the old name is free once a has another
	await b.set_name(old)
	# a guest name is free once its client took another name
	g = await t.client()
	guest = g.username
	await g.set_name(uniq("ex-guest"))
	await a.set_name(guest.upper())
	# and a name is free once its client disconnected
	name = b.username
	await b.close()
	c = await t.client()
	deadline = time.monotonic() + scaled(5)
	while True:
		r = await c.request({"type": "set_username", "username": name})
		if r.get("type") == "username_set":
			break
		check_eq(r.get("code"), "name_taken", "error code")
		check(time.monotonic() < deadline,
		    "name still taken 5s after its client left")
		await asyncio.sleep(0.05)


@case(config=DEFAULT)
async def test_create_room(t):
	a, b = await t.named("creator"), await t.named("other")
	g = await t.client(label="guest")
	room = uniq("room")
	r = await a.expect({"type": "create_room", "roomName": room},
	    "created_room")
	check_eq(r.get("roomName"), room, "created_room.roomName")
	check_eq(r.get("participants"), [a.username],
	    "created_room.participants")
	for c in (a, b, g):
		m = await c.recv("room_created",
		    pred=lambda m: m.get("roomName") == room)
		check("id" not in m, "room_created carries no id: %r" % (m,))
	# the creator is a member: it can talk and is listed
	await a.say(room, "hello")
	p = await b.expect({"type": "get_participants", "roomName": room},
	    "participants")
	check_eq(p["participants"], [a.username], "participants")
	# creating it again fails for anyone, and nothing is broadcast
	await b.expect_error({"type": "create_room", "roomName": room},
	    "room_exists")
	await a.expect_error({"type": "create_room", "roomName": room},
	    "room_exists")
	await b.expect_error({"type": "create_room", "roomName": "general"},
	    "room_exists")
	for c in (a, b, g):
		await c.sync()
		c.assert_none("room_created", what="room_created after "
		    "room_exists")
	p = await b.expect({"type": "get_participants", "roomName": room},
	    "participants")
	check_eq(p["participants"], [a.username], "room_exists changed "
	    "nothing")
	# room names are case-sensitive
	r = await b.expect({"type": "create_room", "roomName": room.upper()},
	    "created_room")
	check_eq(r["participants"], [b.username], "participants")


INVALID_ROOMS = [
	("empty", ""),
	("65 bytes", "r" * 65),
	("65 bytes multibyte", "\u00e9" * 32 + "r"),
	("leading space", " room"),
	("trailing space", "room "),
	("tab", "ro\tom"),
	("DEL", "ro\x7fom"),
	("C1 U+0085", "ro\u0085om"),
	("NUL", "ro\u0000om"),
]


@case(config=DEFAULT)
async def test_create_room_names(t):
	a = await t.named("namer")
	for what, name in INVALID_ROOMS:
		r = await a.request({"type": "create_room", "roomName": name})
		if r.get("type") != "error" or r.get("code") != "invalid_name":
			raise TestFailure("create_room %s (%r): got %r, want "
			    "error invalid_name" % (what, name, r))
	await a.sync()
	a.assert_none("room_created", what="room_created for a bad name")
	tag = uniq("x")
	multi = tag + "\u00e9" * ((64 - len(tag)) // 2)
	multi += "r" * (64 - len(multi.encode()))
	for name in (tag.ljust(64, "r"), multi, "a b " + tag,
	    "\U0001F600" + tag, tag.upper()):
		check(len(name.encode()) <= 64, "test name too long")
		r = await a.expect({"type": "create_room", "roomName": name},
		    "created_room")
		check_eq(r["roomName"], name, "created_room.roomName")
	check_eq(len(multi.encode()), 64, "64-byte multibyte test name")
	await a.expect_error({"type": "create_room",
	    "roomName": tag.ljust(64, "r") + "r"}, "invalid_name")
	await a.expect_error({"type": "create_room",
	    "roomName": multi + "\u00e9"}, "invalid_name")
	# room names compare exactly, but may not hide characters either
	for ch in ("\u200b", "\u202e", "\u2066", "\u00a0", "\u3000",
	    "\u2800", "\ufeff", "\u00ad"):
		await a.expect_error({"type": "create_room",
		    "roomName": tag + ch + "z"}, "invalid_name")
	await a.expect({"type": "create_room",
	    "roomName": "\u0430" + tag[1:]}, "created_room")


@case(config=DEFAULT)
async def test_join_room(t):
	a, b, c = await t.named("a"), await t.named("b"), await t.named("c")
	room = uniq("join")
	await a.create(room)
	r = await b.expect({"type": "join_room", "roomName": room},
	    "room_joined")
	check_eq(r.get("roomName"), room, "room_joined.roomName")
	check_eq(r.get("username"), b.username, "room_joined.username")
	for x in (a, b):
		m = await x.recv("joined_room", pred=lambda m:
		    m.get("roomName") == room and m.get("username") == b.username)
		check_eq(m.get("participants"), [a.username, b.username],
		    "%s: joined_room.participants" % x.label)
		check("id" not in m, "joined_room carries no id: %r" % (m,))
	await c.join(room)
	for x in (a, b, c):
		m = await x.recv("joined_room", pred=lambda m:
		    m.get("roomName") == room and m.get("username") == c.username)
		check_eq(m.get("participants"), [a.username, b.username,
		    c.username], "%s: joined_room.participants" % x.label)
	# a non-member hears nothing
	d = await t.named("d")
	for x in (a, b, c, d):
		await x.sync()
	d.assert_none("joined_room")
	# join order, not name order, and a leaver's slot goes away
	await b.expect({"type": "leave_room", "roomName": room}, "room_left")
	await b.join(room)
	p = await d.expect({"type": "get_participants", "roomName": room},
	    "participants")
	check_eq(p["participants"], [a.username, c.username, b.username],
	    "participants in join order")


@case(config=DEFAULT)
async def test_join_room_with_username(t):
	a = await t.named("host")
	b = await t.client(label="joiner")
	room = uniq("jn")
	await a.create(room)
	name = uniq("bob")
	r = await b.expect({"type": "join_room", "roomName": room,
	    "username": name}, "room_joined")
	check_eq(r.get("username"), name, "room_joined.username")
	b.username = name
	# "set first, as set_username": a username_set reply may come too
	for m in b.take("username_set"):
		check_eq(m.get("username"), name, "username_set.username")
		check_eq(m.get("id"), r["id"], "username_set.id")
	m = await a.recv("joined_room", pred=lambda m: m.get("username") ==
	    name)
	check_eq(m["participants"], [a.username, name], "participants")
	check_eq(await current_name(b), name, "name set by join_room")


@case(config=DEFAULT)
async def test_join_missing_room_changes_nothing(t):
	b = await t.named("stay")
	name = uniq("nope")
	await b.expect_error({"type": "join_room", "roomName": uniq("missing"),
	    "username": name}, "room_not_found")
	check_eq(await current_name(b), b.username, "name after room_not_found")
	# and the name was not taken either
	other = await t.client()
	await other.set_name(name)


@case(config=DEFAULT)
async def test_join_bad_name_fails(t):
	a, b = await t.named("owner"), await t.named("late")
	room = uniq("jt")
	await a.create(room)
	await b.expect_error({"type": "join_room", "roomName": room,
	    "username": a.username.upper()}, "name_taken")
	await b.expect_error({"type": "join_room", "roomName": room,
	    "username": " spaced"}, "invalid_name")
	await b.expect_error({"type": "join_room", "roomName": room,
	    "username": ""}, "invalid_name")
	for x in (a, b):
		await x.sync()
		x.assert_none("joined_room")
		x.assert_none("room_joined")
	p = await a.expect({"type": "get_participants", "roomName": room},
	    "participants")
	check_eq(p["participants"], [a.username], "failed join did not join")
	await b.expect_error({"type": "send_message", "roomName": room,
	    "message": "hi"}, "not_in_room")
	check_eq(await current_name(b), b.username, "name after failed join")


@case(config=DEFAULT)
async def test_rejoin(t):
	a, b = await t.named("a"), await t.named("b")
	room = uniq("rj")
	await a.create(room)
	await b.join(room)
	await a.recv("joined_room", pred=lambda m: m["username"] == b.username)
	await b.recv("joined_room")
	r = await b.expect({"type": "join_room", "roomName": room},
	    "room_joined")
	check_eq(r.get("roomName"), room, "room_joined.roomName")
	r = await a.expect({"type": "join_room", "roomName": room},
	    "room_joined")
	for x in (a, b):
		await x.sync()
		x.assert_none("joined_room", what="joined_room on a rejoin")
	p = await a.expect({"type": "get_participants", "roomName": room},
	    "participants")
	check_eq(p["participants"], [a.username, b.username],
	    "rejoin keeps the order")


@case(config=DEFAULT)
async def test_leave_room(t):
	a, b, c = await t.named("a"), await t.named("b"), await t.named("c")
	room = uniq("lv")
	await a.create(room)
	await b.join(room)
	await c.join(room)
	for x in (a, b, c):
		await x.sync()
		x.pending.clear()
	r = await b.expect({"type": "leave_room", "roomName": room},
	    "room_left")
	check_eq(r.get("roomName"), room, "room_left.roomName")
	for x in (a, c):
		m = await x.recv("user_left")
		check_eq(m.get("roomName"), room, "user_left.roomName")
		check_eq(m.get("username"), b.username, "user_left.username")
		check_eq(m.get("participants"), [a.username, c.username],
		    "user_left.participants")
		check_eq(m.get("reason"), "left", "user_left.reason")
		check("id" not in m, "user_left carries no id")
	await b.sync()
	b.assert_none("user_left", what="user_left to the leaver")
	await b.expect_error({"type": "leave_room", "roomName": room},
	    "not_in_room")
	await b.expect_error({"type": "leave_room",
	    "roomName": uniq("nowhere")}, "room_not_found")
	await b.expect_error({"type": "send_message", "roomName": room,
	    "message": "still here?"}, "not_in_room")
	# the room lives on with its other members
	await a.say(room, "after")
	await c.recv("new_message", pred=lambda m: m["message"] == "after")
	await b.sync()
	b.assert_none("new_message", what="message to a leaver")


@case(config=DEFAULT)
async def test_send_message(t):
	a, b, out = await t.named("a"), await t.named("b"), \
	    await t.named("out")
	room, other = uniq("msg"), uniq("msg2")
	await a.create(room)
	await b.join(room)
	await a.create(other)
	before = time.time() * 1000
	seqs, stamps = [], []
	for i in range(5):
		text = "message %d" % i
		await a.send({"type": "send_message", "roomName": room,
		    "message": text, "id": 100 + i})
		for x in (a, b):
			m = await x.recv("new_message", pred=lambda m:
			    m.get("message") == text)
			check_eq(m.get("roomName"), room, "roomName")
			check_eq(m.get("sender"), a.username, "sender")
			check("id" not in m, "new_message carries no id: %r" %
			    (m,))
			check(type(m.get("ts")) is int, "ts is an integer")
			check(before - 60000 < m["ts"] < time.time() * 1000 +
			    60000, "ts is ms since the epoch: %r" % m["ts"])
			check(type(m.get("seq")) is int, "seq is an integer")
			if x is a:
				seqs.append(m["seq"])
				stamps.append(m["ts"])
		# another room's traffic does not move this room's seq
		await a.say(other, "noise %d" % i)
	check_eq(seqs, list(range(seqs[0], seqs[0] + 5)),
	    "seq rises by one per message")
	await b.say(room, "from b")
	m = await a.recv("new_message", pred=lambda m: m["message"] ==
	    "from b")
	check_eq(m["seq"], seqs[-1] + 1, "seq after another sender")
	check_eq(m["sender"], b.username, "sender")
	check_eq(stamps, sorted(stamps), "ts does not go backwards")
	await out.sync()
	out.assert_none("new_message", what="message to a non-member")


@case(config=DEFAULT)
async def test_send_message_errors(t):
	a, b = await t.named("a"), await t.named("b")
	room = uniq("me")
	await a.create(room)
	await b.expect_error({"type": "send_message", "roomName": room,
	    "message": "hi"}, "not_in_room")
	await a.expect_error({"type": "send_message",
	    "roomName": uniq("gone"), "message": "hi"}, "room_not_found")
	await a.expect_error({"type": "send_message", "roomName": room,
	    "message": ""}, "bad_request")
	await a.sync()
	a.assert_none("new_message", what="new_message after an error")


@case(config=DEFAULT)
async def test_message_length(t):
	a, b = await t.named("a"), await t.named("b")
	room = uniq("len")
	await a.create(room)
	await b.join(room)
	ok = ["x" * 4096, "\u00e9" * 2048, "\u20ac" * 1365 + "a",
	    "\U0001F600" * 1024, "y"]
	bad = ["x" * 4097, "\u00e9" * 2048 + "a", "\u20ac" * 1366,
	    "\U0001F600" * 1024 + "z", "x" * 10000]
	for text in ok:
		check(len(text.encode()) <= 4096, "test text length")
		m = await a.say(room, text)
		check_eq(m["message"], text, "message text")
		await b.recv("new_message", pred=lambda m: m["message"] == text)
	for text in bad:
		r = await a.request({"type": "send_message", "roomName": room,
		    "message": text})
		if r.get("type") != "error" or \
		    r.get("code") != "message_too_long":
			raise TestFailure("message of %d bytes (%d chars): got "
			    "%r, want message_too_long" % (len(text.encode()),
			    len(text), json.dumps(r)[:200]))
		# The refusal says the limit, for the person who must cut.
		check("at most 4096 bytes" in r.get("message", ""),
		    "refusal names the limit: %r" % r.get("message"))
	await b.sync()
	b.assert_none("new_message", what="a too long message")


VERBATIM = [
	"  leading spaces",
	"trailing spaces  ",
	" ",
	"tab\there and\nnewline\r\n",
	"unicode: h\u00e9llo w\u00f6rld \u4f60\u597d \U0001F30D",
	"combining e\u0301 vs \u00e9 (no normalisation)",
	"quotes \" and backslash \\ and </script>",
	"zero width\u200bjoiner\u200d and rtl \u202e",
	"not/a command",
	" /not a command either",
	"\u00a0",
]


@case(config=DEFAULT)
async def test_message_verbatim(t):
	a, b = await t.named("a"), await t.named("b")
	room = uniq("vb")
	await a.create(room)
	await b.join(room)
	for text in VERBATIM:
		await a.send({"type": "send_message", "roomName": room,
		    "message": text})
		for x in (a, b):
			m = await x.recv("new_message")
			check_eq(m["message"], text, "message delivered verbatim")


@case(config=DEFAULT)
async def test_unknown_command(t):
	a, b, out = await t.named("a"), await t.named("b"), await t.named("o")
	room = uniq("cmd")
	await a.create(room)
	await b.join(room)
	for text in ("/anything", "/anything at all", "/", "/x" * 10):
		await a.expect_error({"type": "send_message",
		    "roomName": room, "message": text}, "unknown_command")
	# membership is checked first
	await out.expect_error({"type": "send_message", "roomName": room,
	    "message": "/anything"}, "not_in_room")
	await out.expect_error({"type": "send_message",
	    "roomName": uniq("none"), "message": "/anything"},
	    "room_not_found")
	for x in (a, b, out):
		await x.sync()
		x.assert_none("new_message", what="a command broadcast")


@case(config=DEFAULT)
async def test_get_participants(t):
	a, b = await t.named("a"), await t.named("b")
	room = uniq("gp")
	await a.create(room)
	await b.join(room)
	r = await b.expect({"type": "get_participants", "roomName": room},
	    "participants")
	check_eq(r.get("roomName"), room, "participants.roomName")
	check_eq(r.get("participants"), [a.username, b.username],
	    "participants")
	await a.expect_error({"type": "get_participants",
	    "roomName": uniq("void")}, "room_not_found")
	await a.expect_error({"type": "get_participants",
	    "roomName": room.upper()}, "room_not_found")


@case(config=DEFAULT)
async def test_list_rooms(t):
	a, b, c = await t.named("a"), await t.named("b"), await t.named("c")
	r1, r2 = uniq("lr"), uniq("lr")
	await a.create(r1)
	await b.join(r1)
	await c.join(r1)
	await a.create(r2)
	r = await c.expect({"type": "list_rooms"}, "rooms")
	rooms = r.get("rooms")
	check(isinstance(rooms, list), "rooms.rooms is a list")
	for x in rooms:
		check(isinstance(x.get("roomName"), str) and
		    type(x.get("count")) is int, "room entry %r" % (x,))
	counts = {x["roomName"]: x["count"] for x in rooms}
	check_eq(len(counts), len(rooms), "room names are unique")
	check("general" in counts, "general listed")
	check_eq(counts.get(r1), 3, "count of %s" % r1)
	check_eq(counts.get(r2), 1, "count of %s" % r2)
	await b.expect({"type": "leave_room", "roomName": r1}, "room_left")
	r = await c.expect({"type": "list_rooms"}, "rooms")
	counts = {x["roomName"]: x["count"] for x in r["rooms"]}
	check_eq(counts.get(r1), 2, "count after a leave")


async def fill(a, room, n, prefix="h"):
	"""Sends n messages (pipelined) and returns their seqs."""
	for i in range(n):
		await a.send({"type": "send_message", "roomName": room,
		    "message": "%s%d" % (prefix, i)})
	seqs = []
	for i in range(n):
		m = await a.recv("new_message", pred=lambda m:
		    m.get("roomName") == room)
		check_eq(m["message"], "%s%d" % (prefix, i), "message order")
		seqs.append(m["seq"])
	return seqs


@case(config=DEFAULT)
async def test_history(t):
	a, b = await t.named("a"), await t.named("b")
	room = uniq("hist")
	await a.create(room)
	r = await a.expect({"type": "history", "roomName": room}, "history")
	check_eq(r.get("roomName"), room, "history.roomName")
	check_eq(r.get("messages"), [], "empty history")
	seqs = await fill(a, room, 60)
	await b.join(room)
	r = await b.expect({"type": "history", "roomName": room}, "history")
	msgs = r["messages"]
	check_eq(len(msgs), 50, "default limit")
	check_eq([m["seq"] for m in msgs], seqs[10:], "newest 50, oldest first")
	for i, m in enumerate(msgs):
		check_eq(m.get("message"), "h%d" % (i + 10), "history message")
		check_eq(m.get("sender"), a.username, "history sender")
		check(type(m.get("ts")) is int, "history ts")
	r = await b.expect({"type": "history", "roomName": room, "limit": 5},
	    "history")
	check_eq([m["seq"] for m in r["messages"]], seqs[55:], "limit 5")
	r = await b.expect({"type": "history", "roomName": room,
	    "before": seqs[20], "limit": 3}, "history")
	check_eq([m["seq"] for m in r["messages"]], seqs[17:20],
	    "before + limit")
	check_eq([m["message"] for m in r["messages"]], ["h17", "h18", "h19"],
	    "before + limit messages")
	r = await b.expect({"type": "history", "roomName": room,
	    "before": seqs[3]}, "history")
	check_eq([m["seq"] for m in r["messages"]], seqs[:3], "before only")
	r = await b.expect({"type": "history", "roomName": room,
	    "before": seqs[0]}, "history")
	check_eq(r["messages"], [], "nothing before the first message")
	r = await b.expect({"type": "history", "roomName": room,
	    "limit": 500}, "history")
	check_eq([m["seq"] for m in r["messages"]], seqs, "all 60")
	# a message sent after is at the end; commands are not history
	await b.say(room, "late")
	await b.expect_error({"type": "send_message", "roomName": room,
	    "message": "/nosuch"}, "unknown_command")
	r = await b.expect({"type": "history", "roomName": room, "limit": 2},
	    "history")
	check_eq([m["message"] for m in r["messages"]], ["h59", "late"],
	    "latest two")
	check_eq(r["messages"][1]["sender"], b.username, "sender")
	await a.expect_error({"type": "history", "roomName": uniq("nohist")},
	    "room_not_found")


@case(config=DEFAULT)
async def test_history_ring(t):
	# the shared server keeps history_size = 100 messages per room
	a = await t.named("ring")
	room = uniq("ring")
	await a.create(room)
	seqs = await fill(a, room, 130, "m")
	r = await a.expect({"type": "history", "roomName": room,
	    "limit": 500}, "history")
	check_eq([m["seq"] for m in r["messages"]], seqs[30:],
	    "the newest history_size messages")
	check_eq(r["messages"][0]["message"], "m30", "oldest kept")


@case()
async def test_history_limit_cap(t):
	s = t.start_server({"history_size": 1000})
	a = await t.named("cap", s)
	room = uniq("cap")
	await a.create(room)
	seqs = await fill(a, room, 520, "c")
	for limit in (500, 501, 1000, 1 << 40):
		r = await a.expect({"type": "history", "roomName": room,
		    "limit": limit}, "history", timeout=10)
		check_eq([m["seq"] for m in r["messages"]], seqs[20:],
		    "limit %d is capped at 500" % limit)


@case()
async def test_history_unsupported(t):
	s = t.start_server({"history_size": 0})
	a = await t.named("nohist", s)
	room = uniq("nh")
	await a.create(room)
	await a.say(room, "hello")
	await a.expect_error({"type": "history", "roomName": room},
	    "unsupported")
	await a.expect_error({"type": "history", "roomName": "general"},
	    "unsupported")


@case(config=DEFAULT)
async def test_ping(t):
	c = await t.client()
	r = await c.expect({"type": "ping"}, "pong")
	check_eq(r.get("id"), c._next_id - 1, "pong.id")
	await c.send({"type": "ping"})
	r = await c.recv("pong")
	check("id" not in r, "a pong for a ping without id has no id")


@case(config=DEFAULT)
async def test_id_echo(t):
	a, b = await t.named("a"), await t.named("b")
	room = uniq("id")
	ids = [0, 7, -3, 2 ** 40, "", "abc", "x" * 64, "\u00e9" * 32,
	    "{\"nested\": json}"]
	for i in ids:
		r = await a.request({"type": "ping", "id": i})
		check_eq(r.get("type"), "pong", "reply to ping id %r" % (i,))
		check(r.get("id") == i and type(r.get("id")) == type(i),
		    "id %r echoed: %r" % (i, r.get("id")))
		r = await a.request({"type": "leave_room", "roomName": "general",
		    "id": i})
		check_eq(r.get("code"), "not_in_room", "error code")
		check(r.get("id") == i and type(r.get("id")) == type(i),
		    "id %r echoed on an error" % (i,))
	# replies carry it, broadcasts caused by the request do not
	r = await a.request({"type": "create_room", "roomName": room,
	    "id": "make"})
	check_eq(r.get("type"), "created_room", "created_room")
	m = await b.recv("room_created", pred=lambda m: m.get("roomName") ==
	    room)
	check("id" not in m, "room_created has no id")
	m = await a.recv("room_created", pred=lambda m: m.get("roomName") ==
	    room)
	check("id" not in m, "room_created has no id")
	r = await b.request({"type": "join_room", "roomName": room,
	    "id": "j"})
	check_eq(r.get("type"), "room_joined", "room_joined")
	for x in (a, b):
		m = await x.recv("joined_room")
		check("id" not in m, "joined_room has no id")
	await a.send({"type": "send_message", "roomName": room,
	    "message": "m", "id": 42})
	for x in (a, b):
		m = await x.recv("new_message")
		check("id" not in m, "new_message has no id")
	r = await b.request({"type": "set_username",
	    "username": uniq("bb"), "id": 43})
	check_eq(r.get("type"), "username_set", "username_set")
	for x in (a, b):
		m = await x.recv("user_renamed")
		check("id" not in m, "user_renamed has no id")
	r = await b.request({"type": "leave_room", "roomName": room,
	    "id": 44})
	check_eq(r.get("type"), "room_left", "room_left")
	m = await a.recv("user_left")
	check("id" not in m, "user_left has no id")


@case(config=DEFAULT)
async def test_invalid_id(t):
	c = await t.client()
	for bad in ("y" * 65, "\u00e9" * 33, 1.5, 1.0, {"n": 1}, [1], True,
	    False):
		await c.send({"type": "ping", "id": bad})
		r = await c.recv()
		if r.get("type") != "error" or r.get("code") != "bad_request":
			raise TestFailure("ping with id %r: got %r, want "
			    "bad_request" % (bad, r))
		check("id" not in r, "an invalid id is not echoed: %r" % (r,))
		await c.sync()
		c.assert_none("pong", what="pong for a ping with a bad id")
	# an invalid id on an otherwise bad request is still bad_request
	await c.send({"type": "nosuch", "id": 2.5})
	r = await c.recv("error")
	check_eq(r.get("code"), "bad_request", "code")
	check("id" not in r, "an invalid id is not echoed")
	await c.sync()


BAD_JSON = [
	"42", "\"ping\"", "null", "true", "[]", "[{\"type\": \"ping\"}]",
	"{\"type\": \"ping\"} {\"type\": \"ping\"}", "{\"type\": \"ping\"} x",
	"{\"type\": \"ping\"}]", "{type: ping}", "{\"type\": \"ping\"",
	"{\"type\": \"ping\",}", "{'type': 'ping'}", "", "   ", "\u00e9",
	"{\"type\": \"ping\", \"x\": NaN}",
]


@case(config=DEFAULT)
async def test_bad_json(t):
	c = await t.client()
	for text in BAD_JSON:
		await c.send(text)
		r = await c.recv()
		if r.get("type") != "error" or r.get("code") != "bad_json":
			raise TestFailure("frame %r: got %r, want bad_json" %
			    (text, r))
		check(isinstance(r.get("message"), str), "error.message")
		await c.sync()
		c.assert_none("pong", what="a pong for bad JSON")
	# still connected and fine
	await c.set_name(uniq("survivor"))


def nested(depth):
	"""A ping whose deepest nesting (the object itself counting 1) is
	depth."""
	inner = "[" * (depth - 1) + "]" * (depth - 1)
	return "{\"type\": \"ping\", \"id\": 1, \"x\": %s}" % (inner or "0")


@case(config=DEFAULT)
async def test_json_depth(t):
	c = await t.client()
	await c.send("{\"type\": \"ping\", \"x\": %s}" % ("[" * 100 + "]" * 100))
	r = await c.recv()
	check_eq((r.get("type"), r.get("code")), ("error", "bad_json"),
	    "100 nested arrays")
	deep = "{\"a\":" * 40 + "1" + "}" * 40
	await c.send("{\"type\": \"ping\", \"x\": %s}" % deep)
	r = await c.recv()
	check_eq((r.get("type"), r.get("code")), ("error", "bad_json"),
	    "40 nested objects")
	await c.send("[" * 30000 + "]" * 30000)
	r = await c.recv(timeout=10)
	check_eq((r.get("type"), r.get("code")), ("error", "bad_json"),
	    "30000 nested arrays")
	# the limit (32 by default) itself is fine, one more is not
	await c.send(nested(32))
	r = await c.recv()
	check_eq(r.get("type"), "pong", "depth 32 is within the limit (%r)" %
	    (r,))
	await c.send(nested(33))
	r = await c.recv()
	check_eq((r.get("type"), r.get("code")), ("error", "bad_json"),
	    "depth 33")
	await c.sync()


BAD_REQUEST = [
	{},
	{"id": 1},
	{"type": 5},
	{"type": None},
	{"type": ["ping"]},
	{"type": {"t": "ping"}},
	{"type": True},
	{"type": "set_username"},
	{"type": "set_username", "username": 5},
	{"type": "set_username", "username": None},
	{"type": "set_username", "username": ["x"]},
	{"type": "create_room"},
	{"type": "create_room", "roomName": 1},
	{"type": "join_room"},
	{"type": "join_room", "roomName": False},
	{"type": "join_room", "roomName": "general", "username": 7},
	{"type": "leave_room"},
	{"type": "leave_room", "roomName": None},
	{"type": "send_message", "roomName": "general"},
	{"type": "send_message", "message": "hi"},
	{"type": "send_message", "roomName": "general", "message": 5},
	{"type": "send_message", "roomName": 5, "message": "hi"},
	{"type": "get_participants"},
	{"type": "get_participants", "roomName": ["general"]},
	{"type": "history"},
	{"type": "history", "roomName": "general", "limit": "5"},
	{"type": "history", "roomName": "general", "before": "5"},
	{"type": "history", "roomName": "general", "limit": 1.5},
	{"type": "history", "roomName": 3},
]


@case(config=DEFAULT)
async def test_bad_request(t):
	c = await t.client()
	await c.join("general")
	for obj in BAD_REQUEST:
		obj = dict(obj)
		with_id = "id" not in obj
		if with_id:
			obj["id"] = c.next_id()
		await c.send(obj)
		r = await c.recv(pred=lambda m: m.get("type") not in (
		    "joined_room", "user_left", "room_created", "user_renamed"))
		if r.get("type") != "error" or r.get("code") != "bad_request":
			raise TestFailure("%s: got %r, want bad_request" %
			    (json.dumps(obj), r))
		if with_id:
			check_eq(r.get("id"), obj["id"], "%s: error id" %
			    json.dumps(obj))
	await c.sync()
	c.assert_none("new_message")
	c.assert_none("username_set")
	c.assert_none("room_joined")
	c.assert_none("history")
	c.assert_none("participants")


@case(config=DEFAULT)
async def test_unknown_type(t):
	c = await t.client()
	for typ in ("nosuch", "PING", "Ping", "", "pong", "welcome",
	    "new_message", "error"):
		r = await c.expect_error({"type": typ}, "unknown_type")
	r = await c.expect_error({"type": "nosuch", "id": "s"},
	    "unknown_type")
	check_eq(r.get("id"), "s", "error id")
	await c.sync()


@case(config=DEFAULT)
async def test_unknown_fields_ignored(t):
	c = await t.client()
	await c.expect({"type": "ping", "extra": {"a": [1, 2]},
	    "roomName": 5}, "pong")
	room = uniq("uf")
	await c.expect({"type": "create_room", "roomName": room,
	    "username": 5, "what": None}, "created_room")
	await c.expect({"type": "list_rooms", "roomName": None}, "rooms")


@case(config=NO_RESUME)
async def test_disconnect_user_left(t):
	a, b, c = await t.named("a"), await t.named("b"), await t.named("c")
	r1, r2 = uniq("dc"), uniq("dc")
	await a.create(r1)
	await b.join(r1)
	await c.join(r1)
	await c.create(r2)
	await b.join(r2)
	for x in (a, c):
		await x.sync()
		x.pending.clear()
	await b.close()
	m = await a.recv("user_left")
	check_eq((m.get("roomName"), m.get("username"), m.get("reason"),
	    m.get("participants")), (r1, b.username, "disconnected",
	    [a.username, c.username]), "user_left to a")
	got = {}
	for i in range(2):
		m = await c.recv("user_left")
		got[m["roomName"]] = m
	check_eq(sorted(got), sorted([r1, r2]), "user_left rooms for c")
	check_eq(got[r1]["participants"], [a.username, c.username],
	    "participants of r1")
	check_eq(got[r2]["participants"], [c.username], "participants of r2")
	for m in got.values():
		check_eq(m.get("reason"), "disconnected", "reason")
		check_eq(m.get("username"), b.username, "username")
	# an abrupt TCP close counts too
	d = await t.named("d")
	await d.join(r2)
	await c.recv("joined_room", pred=lambda m: m["username"] == d.username)
	d.ws.transport.abort()
	m = await c.recv("user_left")
	check_eq((m["username"], m["reason"], m["participants"]),
	    (d.username, "disconnected", [c.username]), "user_left after abort")


@case(config=DEFAULT)
async def test_errors_keep_connection(t):
	# after a mix of every kind of bad input the client still works
	c = await t.client()
	for text in ("[", "{\"type\": 1}", "{\"type\": \"x\"}", "0",
	    "{\"type\": \"ping\", \"id\": 1.5}"):
		await c.send(text)
		await c.recv("error")
	await c.sync()
	check(not c.closed, "connection still open")
	await c.set_name(uniq("ok"))


@case()
async def test_rate_limited(t):
	# limits are off on the shared server; here they are small
	s = t.start_server({"messages_per_minute": 1, "message_burst": 3,
	    "names_per_minute": 1, "name_burst": 2, "rooms_per_minute": 1,
	    "room_burst": 2})
	a, b = await t.client(s, label="a"), await t.client(s, label="b")
	await b.set_name(uniq("b"))
	room = uniq("rl")
	await a.create(room)
	await b.join(room)
	for i in range(3):
		await a.say(room, "burst %d" % i)
	r = await a.expect_error({"type": "send_message", "roomName": room,
	    "message": "one too many"}, "rate_limited")
	check("id" in r, "rate_limited carries the id")
	for i in range(3):
		await b.recv("new_message", pred=lambda m: m["message"] ==
		    "burst %d" % i)
	await b.sync()
	b.assert_none("new_message", what="a rate-limited message")
	await a.sync()  # other requests still work
	# name changes: b used one, one more is fine, then limited
	await b.set_name(uniq("b2"))
	await b.expect_error({"type": "set_username", "username": uniq("b3")},
	    "rate_limited")
	# room creation: a used one, one more is fine, then limited
	await a.create(uniq("rl2"))
	late = uniq("rl3")
	await a.expect_error({"type": "create_room", "roomName": late},
	    "rate_limited")
	r = await b.expect({"type": "list_rooms"}, "rooms")
	check(late not in [x["roomName"] for x in r["rooms"]],
	    "a rate-limited create_room created nothing")
	check(not a.closed and not b.closed, "still connected")


@case()
async def test_configured_limits(t):
	s = t.start_server({"server_name": "test parley \u00e9",
	    "max_message_bytes": 10, "max_json_depth": 5})
	a = await t.client(s)
	check_eq(a.welcome.get("server"), "test parley \u00e9",
	    "welcome.server from server_name")
	room = uniq("cl")
	await a.create(room)
	await a.say(room, "0123456789")
	await a.say(room, "\u00e9" * 5)
	await a.expect_error({"type": "send_message", "roomName": room,
	    "message": "0123456789a"}, "message_too_long")
	await a.expect_error({"type": "send_message", "roomName": room,
	    "message": "\u00e9" * 5 + "a"}, "message_too_long")
	await a.send(nested(5))
	await a.recv("pong")
	await a.send(nested(6))
	r = await a.recv("error")
	check_eq((r.get("type"), r.get("code")), ("error", "bad_json"),
	    "depth 6 of 5")
	await a.sync()


if __name__ == "__main__":
	suite.main()
