#!/usr/bin/python3
#
# test_lua.py: Lua scripting against the built parleyd, over real
# WebSocket connections: every hook's pass, reject, rewrite, drop and stop
# paths (tests/scripts/hooks.lua, card.lua), the parley.* API, commands
# and /help, the default scripts' rules (scripts/), and the limits: a
# script that does not compile, one that raises, loops, allocates without
# bound or keeps a handle to a user who left; the server keeps serving
# everyone else in every case. A reload (SIGHUP) swaps scripts under open
# connections, and keeps the old ones when the new ones do not load.

import asyncio
import atexit
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Suite, Server, TestFailure, check, check_eq,  # noqa
    uniq, scaled, run_daemon, lua_config, Skip, Client, http_get)

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("PARLEY_SRCDIR") or os.path.join(HERE, "..", "..")
SCRIPTS = os.path.abspath(os.path.join(SRC, "scripts"))
TEST_SCRIPTS = os.path.abspath(os.path.join(SRC, "tests", "scripts"))
PASSWORD = "open sesame"
PASSWORD_HASH = "sha256:" + hashlib.sha256(PASSWORD.encode()).hexdigest()

suite = Suite("lua")
case = suite.case

# The default scripts, tuned so that the tests run quickly.
DEFAULTS = {
	"script_dirs": [SCRIPTS],
	"scripts": ["usernames", "moderation", "commands"],
	"oper_password": PASSWORD_HASH,
	"script_settings": {
		"moderation": {"words": ["darn", "heck"], "flood_messages": 5,
		    "flood_seconds": 10, "mute_seconds": 2, "repeat_limit": 3},
		"usernames": {"also_reserved": ["acme"]},
	},
}

HOOKS = {
	"script_dirs": [TEST_SCRIPTS],
	"scripts": ["hooks", "card", "failing", "strict"],
	"rooms": ["general", "locked", "cardlocked"],
	"script_settings": {
		"hooks": {"greeting": "hello", "on_error": "pass"},
		"failing": {"on_error": "pass"},
		"strict": {"failure_policy": "deny"},
	},
}

LIMITS = {
	"script_dirs": [TEST_SCRIPTS],
	"scripts": ["runaway", "greedy", "stale"],
	"script_instruction_limit": 2000000,
	"script_memory_limit": 16 << 20,
	"script_failure_policy": "pass",
}


def temp_dir():
	"""A temporary directory removed when the run ends."""
	d = tempfile.mkdtemp(prefix="parley-lua-")
	atexit.register(shutil.rmtree, d, True)
	return d


async def in_room(t, prefix, room=None, server=None):
	"""A named client in room (created, so it is the owner, when None)."""
	c = await t.named(prefix, server)
	if room is None:
		room = uniq("r")
		await c.create(room)
	else:
		await c.join(room)
	return c, room


async def cmd(c, room, text, timeout=5):
	"""Sends a message (a command) with an id; the reply with that id."""
	return await c.request({"type": "send_message", "roomName": room,
	    "message": text}, timeout)


async def notice(c, room, text, timeout=5):
	"""Runs a command that must answer with a notice; its text."""
	r = await cmd(c, room, text, timeout)
	if r.get("type") != "notice":
		raise TestFailure("%s: %r answered %r, want a notice" % (c.label,
		    text, r))
	check("id" in r, "the notice answers the request (id)")
	return r["message"]


async def error(c, room, text, code, timeout=5):
	r = await cmd(c, room, text, timeout)
	if r.get("type") != "error" or r.get("code") != code:
		raise TestFailure("%s: %r answered %r, want error %s" % (c.label,
		    text, r, code))
	return r


async def delivered(c, room, text, timeout=5):
	"""The next new_message in room (its text)."""
	m = await c.recv("new_message", timeout, pred=lambda m:
	    m.get("roomName") == room)
	return m


async def nothing_new(c, room):
	await c.sync()
	c.assert_none("new_message", pred=lambda m: m.get("roomName") == room)


async def ws_request(server):
	"""An upgrade request by hand, for a refusal's status and body."""
	return await http_get(server, "/ws", headers={"Upgrade": "websocket",
	    "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
	    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})


def log_has(server, pattern, tail=400):
	return re.search(pattern, server.stderr(tail)) is not None


async def wait_log(server, pattern, timeout=5):
	deadline = time.monotonic() + scaled(timeout)
	while not log_has(server, pattern):
		if time.monotonic() > deadline:
			raise TestFailure("no log line matching %r; stderr:\n%s" %
			    (pattern, server.stderr(30)))
		await asyncio.sleep(0.05)


# ---------------------------------------------------------------------------
# Hooks: every path

@case(config=HOOKS)
async def test_connect_refused(t):
	a, room = await in_room(t, "con")
	check_eq(await notice(a, room, "/refuse-next"), "ok", "/refuse-next")
	# refused before the upgrade (protocol 1.1): 403 and the reason
	r = await ws_request(t.server)
	check_eq(r.status, 403, "a refused connection never upgrades")
	refusal = json.loads(r.body.decode())
	check_eq((refusal["error"], refusal["message"]), ("rejected",
	    "closed for testing"), "the JSON body")
	# the next one is welcome again
	c = await t.client()
	check(c.welcome is not None, "welcome after the refusal")


@case(config=HOOKS)
async def test_username_hooks(t):
	c = await t.client()
	base = uniq("u")
	r = await c.expect_error({"type": "set_username",
	    "username": "reject-" + base}, "rejected")
	check_eq(r["message"], "no rejects here", "reason")
	await c.expect_error({"type": "set_username", "username": "code-" +
	    base}, "invalid_name")
	r = await c.expect({"type": "set_username", "username": "rewrite-" +
	    base}, "username_set")
	check_eq(r["username"], "rewritten-" + base, "rewritten name")
	# STOP: the lower hook that refuses "forbidden" does not run
	r = await c.expect({"type": "set_username",
	    "username": "stop-forbidden-" + base}, "username_set")
	check_eq(r["username"], "stop-forbidden-" + base, "stopped chain")
	r = await c.expect_error({"type": "set_username",
	    "username": "forbidden-" + base}, "rejected")
	check_eq(r["message"], "second hook says no", "second hook")
	# a rewrite is checked like what clients send
	await c.expect_error({"type": "set_username",
	    "username": "badrewrite-" + base}, "invalid_name")
	# join_room with a username runs the same hooks
	r = await c.expect({"type": "join_room", "roomName": "general",
	    "username": "rewrite-j" + base}, "room_joined")
	check_eq(r["username"], "rewritten-j" + base, "join rewrote the name")
	await c.expect_error({"type": "join_room", "roomName": "general",
	    "username": "reject-j" + base}, "rejected")


@case(config=HOOKS)
async def test_create_room_hooks(t):
	c = await t.named("cr")
	r = await c.expect_error({"type": "create_room",
	    "roomName": uniq("nope")}, "rejected")
	check_eq(r["message"], "no such rooms", "reason")
	dropped = uniq("drop")
	await c.send({"type": "create_room", "roomName": dropped, "id": 99})
	await c.sync()
	c.assert_none(pred=lambda m: m.get("id") == 99, what="reply to a "
	    "dropped create_room")
	r = await c.expect({"type": "list_rooms"}, "rooms")
	check(dropped not in [x["roomName"] for x in r["rooms"]],
	    "a dropped room is not created")
	await c.create(uniq("fine"))


@case(config=HOOKS)
async def test_join_hooks(t):
	c = await t.named("jn")
	r = await c.expect_error({"type": "join_room", "roomName": "locked"},
	    "rejected")
	check_eq(r["message"], "the room is locked", "reason")
	p = await c.expect({"type": "get_participants", "roomName": "locked"},
	    "participants")
	check(c.username not in p["participants"], "not a member")
	r = await c.expect_error({"type": "join_room",
	    "roomName": "cardlocked"}, "rejected")
	check_eq(r["message"], "card says no", "the on_join global")


@case(config=HOOKS)
async def test_message_hooks(t):
	a, room = await in_room(t, "ma")
	b, _ = await in_room(t, "mb", room)

	r = await error(a, room, "reject", "rejected")
	check_eq(r["message"], "no rejects", "reason")
	check_eq(r.get("roomName"), room, "error names the room")
	await error(a, room, "ratelimit", "rate_limited")

	await a.send({"type": "send_message", "roomName": room,
	    "message": "upper:shout"})
	m = await delivered(b, room, "SHOUT")
	check_eq((m["message"], m["sender"]), ("SHOUT", a.username),
	    "rewritten message")

	await a.sync()
	a.take("new_message")
	await a.send({"type": "send_message", "roomName": room,
	    "message": "drop"})
	await nothing_new(b, room)
	await nothing_new(a, room)

	await a.send({"type": "send_message", "roomName": room,
	    "message": "stop here"})
	check_eq((await delivered(b, room, ""))["message"], "stop here",
	    "STOP skips the lower hook")
	await a.send({"type": "send_message", "roomName": room,
	    "message": "chain"})
	check_eq((await delivered(b, room, ""))["message"], "chain [low]",
	    "the lower hook runs otherwise")

	# a rewrite gets the checks a client's text gets
	await a.send({"type": "send_message", "roomName": room,
	    "message": "empty"})
	await nothing_new(b, room)
	await error(a, room, "toolong", "message_too_long")
	await error(a, room, "badutf8", "internal")

	# the design card's global on_message
	await a.send({"type": "send_message", "roomName": room,
	    "message": "card"})
	check_eq((await delivered(b, room, ""))["message"], "card hook saw it",
	    "on_message global")

	# malformed returns are script failures; the policy (pass) lets the
	# message through unchanged
	for text in ("badtype", "badcode"):
		await a.send({"type": "send_message", "roomName": room,
		    "message": text})
		check_eq((await delivered(b, room, ""))["message"], text,
		    "%s passes after the failure" % text)
	await wait_log(t.server, r"lua:hooks: message hook failed: .*"
	    r"returned a number")
	await wait_log(t.server, r"unknown error code returned: no_such_code")
	# plain text passes every hook untouched
	await a.send({"type": "send_message", "roomName": room,
	    "message": "plain \u263a"})
	check_eq((await delivered(b, room, ""))["message"], "plain \u263a",
	    "plain message")


@case(config=HOOKS)
async def test_failure_policies(t):
	a, room = await in_room(t, "fp")
	b, _ = await in_room(t, "fq", room)
	# pass: the failing hook is logged, the message goes on
	await a.send({"type": "send_message", "roomName": room,
	    "message": "fail"})
	check_eq((await delivered(b, room, ""))["message"], "fail",
	    "policy pass")
	await wait_log(t.server, r"lua:failing: message hook failed: "
	    r"failing\.lua:6: attempt to index a nil value")
	await wait_log(t.server, r"lua:failing: traceback:.*failing\.lua:6")
	# deny (strict's script_settings): the request is refused
	r = await error(a, room, "strict", "internal")
	check("script failed" in r["message"], "deny reason: %r" % r)
	await nothing_new(b, room)
	# a failing command answers internal
	await error(a, room, "/fail", "internal")
	check_eq(await notice(a, room, "/ok"), "still here", "other commands")


@case(config=HOOKS)
async def test_leave_and_disconnect_hooks(t):
	a, room = await in_room(t, "lv")
	b, _ = await in_room(t, "lw", room)
	await b.expect({"type": "leave_room", "roomName": room}, "room_left")
	check_eq(await notice(a, room, "/get left:%s:%s" % (b.username, room)),
	    "left", "leave hook reason")
	check_eq(await notice(a, room, "/get card_left:%s" % b.username),
	    "left", "on_leave global")
	# a leave hook returning false refuses nothing
	p = await a.expect({"type": "get_participants", "roomName": room},
	    "participants")
	check_eq(p["participants"], [a.username], "b is gone")

	c, _ = await in_room(t, "lx", room)
	await notice(c, room, "/count")
	await notice(c, room, "/count")
	await c.send({"type": "send_message", "roomName": room,
	    "message": "/kickme bye"})
	k = await c.recv("kicked")
	check_eq((k["roomName"], k["reason"]), (room, "bye"), "kicked frame")
	check_eq(await notice(a, room, "/get left:%s:%s" % (c.username, room)),
	    "kicked", "kick reason in the leave hook")
	name = c.username
	await c.close()
	deadline = time.monotonic() + scaled(5)
	while await notice(a, room, "/get gone:%s" % name) == "nil":
		check(time.monotonic() < deadline, "disconnect hook ran")
		await asyncio.sleep(0.05)
	check_eq(await notice(a, room, "/get gone:%s" % name), "disconnected",
	    "disconnect reason")
	check_eq(await notice(a, room, "/get gone_data:%s" % name), "2",
	    "user.data still there in the disconnect hook")


@case(config=HOOKS)
async def test_start_and_tick(t):
	a, room = await in_room(t, "tk")
	check_eq(await notice(a, room, "/get started"), "1", "start hook")
	def ticks(text):
		return 0 if text == "nil" else int(text)
	first = ticks(await notice(a, room, "/get ticks"))
	await asyncio.sleep(scaled(2.2))
	second = ticks(await notice(a, room, "/get ticks"))
	check(second > first, "tick hook runs every second (%d, %d)" %
	    (first, second))


# ---------------------------------------------------------------------------
# The API

@case(config=HOOKS)
async def test_commands_and_replies(t):
	a, room = await in_room(t, "api")
	r = await a.request({"type": "send_message", "roomName": room,
	    "message": "/echo hi there", "id": 7})
	check_eq((r["type"], r["message"], r["id"], r.get("roomName")),
	    ("notice", "hi there", 7, room), "a returned string answers")
	check_eq(await notice(a, room, "/echo"), "", "no arguments")
	r = await a.request({"type": "send_message", "roomName": room,
	    "message": "/ctx", "id": "abc"})
	check_eq(r["message"], "ctx string abc", "request.id (string)")
	r = await a.request({"type": "send_message", "roomName": room,
	    "message": "/ctx", "id": 12})
	check_eq(r["message"], "ctx number 12", "request.id (integer)")
	r = await error(a, room, "/err", "forbidden")
	check_eq((r["message"], r.get("roomName")), ("bad thing", room),
	    "false, reason, code")
	await error(a, room, "/no-such-command", "unknown_command")
	await error(a, room, "/ECHO x", "unknown_command")
	# not in the room: membership is checked first
	await a.expect_error({"type": "send_message", "roomName": "general",
	    "message": "/echo x"}, "not_in_room")


@case(config=HOOKS)
async def test_name_key(t):
	a, room = await in_room(t, "nk")
	tail = uniq("")
	await a.set_name("Mallory" + tail)
	key = "rnallory" + tail.replace("1", "l").replace("0", "o")
	check_eq(await notice(a, room, "/namekey m\u0430llory" + tail),
	    "%s|nil|true|nil|Mallory%s" % (key, tail),
	    "the key of a look-alike finds the user")
	check_eq(await notice(a, room, "/namekey \uff2d\uff41llory" + tail),
	    "%s|nil|true|nil|Mallory%s" % (key, tail), "fullwidth")
	r = await notice(a, room, "/namekey x\u200by")
	check_eq(r, "xy|nil|false|names may not contain invisible "
	    "characters|none", "a refused character")
	r = await notice(a, room, "/namekey x\u00a0y")
	check(r.startswith("x y|nil|false|names may contain no space"),
	    "NBSP: %r" % r)
	r = await notice(a, room, "/namekey " + "a" * 1100)
	check_eq(r, "nil|name too long|false|name too long|none", "too long")


@case(config=HOOKS)
async def test_handles(t):
	a, room = await in_room(t, "hd")
	b, _ = await in_room(t, "he", room)
	check_eq(await notice(a, room, "/count"), "1", "user.data")
	check_eq(await notice(a, room, "/count"), "2", "user.data kept")
	check_eq(await notice(b, room, "/count"), "1", "user.data per user")
	w = await notice(a, room, "/whoami")
	m = re.match(r"^(\S+) (\d+) 127\.0\.0\.1 true roles= rooms=(\S*) "
	    r"same=true$", w)
	check(m is not None, "whoami: %r" % w)
	check_eq(m.group(1), a.username, "user.name")
	check_eq(m.group(3), room, "user.rooms")
	check_eq(await notice(a, room, "/room"), "%s count=2 owner=%s "
	    "members=%s,%s has=true" % (room, a.username, a.username,
	    b.username), "room handle")
	rooms = (await notice(a, room, "/rooms")).split(",")
	check("general" in rooms and room in rooms, "parley.rooms: %r" % rooms)
	check_eq(await notice(a, room, "/role add vip"), "true", "add_role")
	check("roles=vip " in await notice(a, room, "/whoami"), "user.roles")
	check_eq(await notice(a, room, "/role remove vip"), "false",
	    "remove_role")


@case(config=HOOKS)
async def test_actions(t):
	a, room = await in_room(t, "ac")
	b, _ = await in_room(t, "ad", room)
	made = uniq("made")
	check_eq(await notice(a, room, "/mkroom " + made), "made " + made,
	    "parley.create_room")
	await b.recv("room_created", pred=lambda m: m["roomName"] == made)
	r = await error(a, room, "/mkroom general", "room_exists")
	await error(a, room, "/mkroom  bad", "invalid_name")

	await a.send({"type": "send_message", "roomName": room,
	    "message": "/serversay hello all"})
	m = await delivered(b, room, "")
	check_eq((m["sender"], m["message"]), ("server", "hello all"),
	    "room:say posts as server")
	check_eq(await notice(a, room, "/get post:hello all"),
	    "nil|server|false", "the post hook saw room:say")
	# post hooks see clients' messages too, and may drop any of them
	await a.say(room, "seen by post")
	await delivered(b, room, "")
	check_eq(await notice(a, room, "/get post:seen by post"),
	    "%s|%s|false" % (a.username, a.username), "post of a client")
	await a.sync()
	a.take("new_message")
	for text in ("/serversay postdrop 1", "postdrop 2", "postrefuse 3"):
		await a.send({"type": "send_message", "roomName": room,
		    "message": text})
	await nothing_new(b, room)
	await nothing_new(a, room)
	await a.send({"type": "send_message", "roomName": room,
	    "message": "/roomnotice heads up"})
	n = await b.recv("notice")
	check_eq((n["message"], n.get("roomName")), ("heads up", room),
	    "room:notice")

	# user:rename without hooks: the script's own rules do not apply
	new = "reject-" + uniq("rn")
	check_eq(await notice(a, room, "/rename " + new), "renamed",
	    "rename result")
	r = await a.recv("username_set")
	check_eq(r["username"], new, "username_set")
	m = await b.recv("user_renamed")
	check_eq(m["username"], new, "user_renamed")
	a.username = new
	await error(a, room, "/rename " + b.username, "name_taken")


@case(config=HOOKS)
async def test_config_settings_store(t):
	a, room = await in_room(t, "cf")
	check_eq(await notice(a, room, "/cfg server_name"), "parley",
	    "parley.config.server_name")
	check_eq(await notice(a, room, "/cfg rooms"),
	    "general,locked,cardlocked", "parley.config.rooms")
	check_eq(await notice(a, room, "/cfg max_message_bytes"), "4096",
	    "a number")
	check_eq(await notice(a, room, "/cfg oper_password"), "nil",
	    "no password hash for scripts")
	check_eq(await notice(a, room, "/cfg script_settings"), "nil",
	    "no other scripts' settings")
	await error(a, room, "/setcfg", "internal")
	await wait_log(t.server, r"parley\.config is read-only")
	check_eq(await notice(a, room, "/settings"), "hello",
	    "parley.settings")
	key = uniq("k")
	check_eq(await notice(a, room, "/set %s 42" % key), "ok", "store set")
	check_eq(await notice(a, room, "/get " + key), "42", "store get")
	check(key in (await notice(a, room, "/storeall")).split(","),
	    "pairs(parley.store)")


@case(config=HOOKS)
async def test_timers(t):
	a, room = await in_room(t, "ti")
	check_eq(await notice(a, room, "/after 0.1"), "armed", "after")
	n = await a.recv("notice", pred=lambda m: m["message"] ==
	    "timer fired")
	check_eq(n.get("roomName"), room, "timer notice")
	await notice(a, room, "/every")
	await a.recv("notice", pred=lambda m: m["message"] ==
	    "every fired 3 times, pending=false")
	check_eq(await notice(a, room, "/cancel"), "cancelled", "cancel")
	await asyncio.sleep(scaled(0.4))
	await a.sync()
	a.assert_none("notice", pred=lambda m: m["message"] ==
	    "cancelled timer fired")


@case(config=HOOKS)
async def test_sandbox(t):
	a, room = await in_room(t, "sb")
	check_eq(await notice(a, room, "/sandbox"), "sandbox ok", "sandbox")


@case(config=HOOKS)
async def test_late_registration(t):
	a, room = await in_room(t, "lt")
	check_eq(await notice(a, room, "/late"), "hooked", "parley.on later")
	await a.send({"type": "send_message", "roomName": room,
	    "message": "late"})
	check_eq((await delivered(a, room, ""))["message"], "late hook saw it",
	    "a hook added while active")


# ---------------------------------------------------------------------------
# Limits: the server keeps serving

async def still_serving(t, server=None):
	"""Another client can still chat."""
	c, room = await in_room(t, "ok", server=server)
	await c.say(room, "still fine")


@case(config=LIMITS)
async def test_infinite_loops(t):
	a, room = await in_room(t, "spin")
	for text in ("spin", "spin-pcall", "spin-coroutine"):
		t0 = time.monotonic()
		await a.send({"type": "send_message", "roomName": room,
		    "message": text})
		m = await delivered(a, room, "", timeout=10)
		check_eq(m["message"], text, "delivered after the limit (pass)")
		check(time.monotonic() - t0 < scaled(5), "%s stopped in time" %
		    text)
		await still_serving(t)
	await error(a, room, "/spin", "internal", timeout=10)
	await wait_log(t.server, r"lua:runaway: command /spin failed: "
	    r"runaway\.lua:\d+: instruction limit of 2000000 exceeded")
	# the budget is per call: the next one starts afresh
	check_eq(await notice(a, room, "/count-to 100000"), "100000",
	    "a normal call after a runaway one")


@case(config=LIMITS)
async def test_memory_cap(t):
	a, room = await in_room(t, "hog")
	await error(a, room, "/hog", "internal", timeout=20)
	await wait_log(t.server, r"command /hog failed: out of memory")
	check_eq(await notice(a, room, "/small"), "small ok 1000",
	    "memory is back after the failed call")
	r = await notice(a, room, "/hog-pcall")
	check("not enough memory" in r, "a pcall sees the memory error: %r" %
	    r)
	await still_serving(t)


@case(config=LIMITS)
async def test_stale_handles(t):
	a, room = await in_room(t, "st")
	b, _ = await in_room(t, "su", room)
	check_eq(await notice(b, room, "/keep"), "kept " + b.username, "keep")
	check_eq(await notice(a, room, "/poke"), "name " + b.username,
	    "handle while b is here")
	await b.close()
	await a.recv("user_left")
	await error(a, room, "/poke", "internal")
	await wait_log(t.server, r"command /poke failed: .*user \d+ has left")
	r = await notice(a, room, "/poke-connected")
	check(r.startswith("connected false id "), "user.connected: %r" % r)
	await error(a, room, "/poke-notice", "internal")
	check_eq(await notice(a, room, "/poke-later"), "later", "timer armed")
	await wait_log(t.server, r"lua:stale: timer failed: .*has left")
	await still_serving(t)


# ---------------------------------------------------------------------------
# The default scripts

@case(config=DEFAULTS)
async def test_default_help(t):
	a, room = await in_room(t, "hp")
	text = await notice(a, room, "/help")
	for name in ("help", "me", "nick", "who", "oper", "kick", "topic",
	    "mute", "unmute"):
		check(re.search(r"^/%s\b" % name, text, re.M) is not None,
		    "/help lists /%s: %r" % (name, text))
	one = await notice(a, room, "/help kick")
	check_eq(one, "/kick <user> [reason] - removes someone from this room "
	    "(operators and the owner)", "/help kick")
	await error(a, room, "/help nosuch", "unknown_command")
	await error(a, room, "/nosuch", "unknown_command")


@case(config=DEFAULTS)
async def test_default_me_nick_who(t):
	a, room = await in_room(t, "me")
	b, _ = await in_room(t, "mf", room)
	await a.send({"type": "send_message", "roomName": room,
	    "message": "/me waves"})
	for c in (a, b):
		m = await delivered(c, room, "")
		check_eq((m["message"], m["sender"], m.get("action")),
		    ("waves", a.username, True), "%s: /me" % c.label)
	# /me goes through the message hooks: the word filter applies
	await a.send({"type": "send_message", "roomName": room,
	    "message": "/me says darn"})
	check_eq((await delivered(b, room, ""))["message"], "says ****",
	    "/me is filtered")
	await error(a, room, "/me", "bad_request")

	new = uniq("nick")
	r = await a.request({"type": "send_message", "roomName": room,
	    "message": "/nick " + new, "id": 41})
	check_eq((r["type"], r["username"], r["id"]), ("username_set", new, 41),
	    "/nick answers username_set with the id")
	m = await b.recv("user_renamed")
	check_eq((m["oldUsername"], m["username"]), (a.username, new),
	    "user_renamed")
	a.username = new
	r = await error(a, room, "/nick Adm1n", "rejected")
	check("reserved" in r["message"], "/nick applies the username rules")
	await error(a, room, "/nick " + b.username, "name_taken")

	who = await notice(a, room, "/who")
	check_eq(who, "2 in %s: %s (owner), %s" % (room, a.username,
	    b.username), "/who")


@case(config=DEFAULTS)
async def test_default_oper_kick(t):
	owner, room = await in_room(t, "own")
	b, _ = await in_room(t, "bee", room)
	c, _ = await in_room(t, "cee", room)
	r = await error(b, room, "/kick " + c.username, "forbidden")
	check("owner" in r["message"], "reason: %r" % r)
	await error(b, room, "/oper wrong", "forbidden")
	check_eq(await notice(b, room, "/oper " + PASSWORD),
	    "you are now a server operator", "/oper")
	check("(operator)" in await notice(owner, room, "/who"),
	    "/who marks operators")
	# an operator may kick in any room
	check_eq(await notice(b, room, '/kick %s spamming' % c.username),
	    "kicked " + c.username, "/kick by an operator")
	k = await c.recv("kicked")
	check_eq((k["roomName"], k["reason"]), (room, "spamming"), "kicked")
	for x in (owner, b):
		m = await x.recv("user_left", pred=lambda m: m["username"] ==
		    c.username)
		check_eq(m["reason"], "kicked", "user_left reason")
	p = await owner.expect({"type": "get_participants", "roomName": room},
	    "participants")
	check(c.username not in p["participants"], "c is gone")
	# the owner may kick too, but not an operator
	await c.join(room)
	check_eq(await notice(owner, room, "/kick " + c.username),
	    "kicked " + c.username, "/kick by the owner")
	k = await c.recv("kicked")
	check_eq(k["reason"], "kicked by " + owner.username, "default reason")
	await error(owner, room, "/kick " + b.username, "forbidden")
	await error(owner, room, "/kick nobody-here", "not_in_room")


# Guessing puts the address in back-off, so these cases have servers of
# their own (the other cases become operators from the same address).
GUESSING = dict(DEFAULTS, oper_backoff_max=3600)
GUESSING_AGAIN = dict(DEFAULTS, oper_backoff_max=3599)
GUESSING_PROXIED = dict(DEFAULTS, trusted_proxies=["127.0.0.1"],
    oper_failures_global=8)


@case(config=GUESSING)
async def test_default_oper_guessing(t):
	a, room = await in_room(t, "gs")
	for _ in range(3):
		await error(a, room, "/oper guess", "forbidden")
	await error(a, room, "/oper " + PASSWORD, "rate_limited")
	await wait_log(t.server, r"lua:commands: wrong /oper password from")


async def oper_metric(server, name):
	r = await http_get(server, "/metrics")
	m = re.search(r"^parley_%s (\d+)$" % name, r.body.decode(), re.M)
	check(m is not None, "no %s in /metrics" % name)
	return int(m.group(1))


async def guess(t, room, password, addr=None, label="guess"):
	"""One /oper guess on a connection of its own (closed after): the
	error code, or "ok"."""
	kw = {"extra_headers": {"X-Forwarded-For": addr}} if addr else {}
	c = await Client.connect(t.server, label=label, **kw)
	try:
		await c.join(room)
		r = await cmd(c, room, "/oper " + password)
	finally:
		await c.close()
	if r.get("type") == "notice":
		return "ok"
	check_eq(r.get("type"), "error", "/oper answer %r" % r)
	return r["code"]


@case(config=GUESSING_AGAIN, timeout=60)
async def test_default_oper_guessing_reconnect(t):
	"""Reconnecting between guesses starts nothing afresh: from one
	address, three guesses are checked, then none for a minute."""
	owner, room = await in_room(t, "gr")
	failures0 = await oper_metric(t.server, "oper_password_failures_total")
	checked = refused = 0
	# the back-off runs on real time: stay under its first minute
	deadline = time.monotonic() + min(scaled(10), 50)
	while time.monotonic() < deadline:
		code = await guess(t, room, "guess %d" % checked)
		check(code in ("forbidden", "rate_limited"), "code %r" % code)
		if code == "forbidden":
			checked += 1
		else:
			refused += 1
		await asyncio.sleep(0.02)
	check_eq(checked, 3, "guesses checked in 10 s from one address")
	check(refused >= 10, "guesses refused: %d" % refused)
	# the right password waits too: it is not even looked at
	check_eq(await guess(t, room, PASSWORD), "rate_limited",
	    "the password during back-off")
	check_eq(await oper_metric(t.server, "oper_password_failures_total") -
	    failures0, 3, "failures counted")
	check(await oper_metric(t.server, "oper_password_refused_total") >= refused,
	    "refusals counted")
	check(log_has(t.server, r"operator password: 3 wrong from "
	    r"127\.0\.0\.1; the next guess from there is checked in 60s",
	    tail=100000), "the back-off is logged")


@case(config=GUESSING_PROXIED, timeout=60)
async def test_default_oper_guessing_spread(t):
	"""Many addresses get no more: an IPv6 /64 counts as one address,
	and after oper_failures_global wrong guesses nobody is checked."""
	owner, room = await in_room(t, "gp")
	for host in ("1", "2", "3"):
		check_eq(await guess(t, room, "x", "2001:db8:1:2::" + host),
		    "forbidden", "a guess from the /64")
	check_eq(await guess(t, room, "x", "2001:db8:1:2:ffff::9"),
	    "rate_limited", "the fourth from the same /64")
	check_eq(await guess(t, room, "x", "2001:db8:1:3::1"), "forbidden",
	    "another /64")
	for host in range(1, 5):
		check_eq(await guess(t, room, "x", "203.0.113.%d" % host),
		    "forbidden", "a guess from 203.0.113.%d" % host)
	# eight wrong in all: every address waits now
	check_eq(await guess(t, room, "x", "198.51.100.7"), "rate_limited",
	    "a new address after the global limit")
	check_eq(await guess(t, room, PASSWORD, "198.51.100.8"),
	    "rate_limited", "the password after the global limit")
	check_eq(await oper_metric(t.server, "oper_password_failures_total"), 8,
	    "failures counted")
	await wait_log(t.server, r"operator password: 8 wrong server-wide")


@case(config=DEFAULTS)
async def test_default_topic(t):
	owner, room = await in_room(t, "tp")
	b, _ = await in_room(t, "tq", room)
	check_eq(await notice(b, room, "/topic"), "No topic is set", "no topic")
	await error(b, room, "/topic mine now", "forbidden")
	await owner.send({"type": "send_message", "roomName": room,
	    "message": "/topic Tea at five"})
	n = await b.recv("notice")
	check_eq(n["message"], "%s set the topic: Tea at five" % owner.username,
	    "the room is told")
	check_eq(await notice(b, room, "/topic"), "Topic: Tea at five",
	    "/topic shows it")
	c, _ = await in_room(t, "tr", room)
	n = await c.recv("notice", pred=lambda m: m.get("roomName") == room)
	check_eq(n["message"], "Topic: Tea at five", "a joiner is told")


@case(config=DEFAULTS)
async def test_default_mute(t):
	op, room = await in_room(t, "mo")
	b, _ = await in_room(t, "mu", room)
	await error(b, room, "/mute " + op.username, "forbidden")
	await notice(op, room, "/oper " + PASSWORD)
	check_eq(await notice(op, room, "/mute " + b.username),
	    "muted " + b.username, "/mute")
	n = await b.recv("notice")
	check_eq(n["message"], op.username + " muted you", "the muted is told")
	r = await error(b, room, "hello?", "forbidden")
	check_eq(r["message"], "you are muted", "muted")
	await error(b, room, "/me tries", "forbidden")
	check_eq(await notice(op, room, "/unmute " + b.username),
	    "unmuted " + b.username, "/unmute")
	await b.say(room, "thanks")
	await notice(op, room, '/mute "%s" 5' % b.username)
	r = await error(b, room, "again", "forbidden")
	check(re.match(r"you are muted for \d+ more seconds", r["message"]),
	    "timed mute: %r" % r)
	await notice(op, room, "/unmute " + b.username)


@case(config=DEFAULTS)
async def test_default_usernames(t):
	c = await t.client()
	for name in ("admin", "Adm1n", "ADMIN", "s3rver", "ad-min", "root2",
	    "r00t", "Sys_Op", "acme", "@cme"):
		r = await c.expect_error({"type": "set_username",
		    "username": name}, "rejected")
		check("reserved" in r["message"], "%s: %r" % (name, r))
	for name in ("bob\u200b", "\u202eevil", "zero\ufeffwidth"):
		await c.expect_error({"type": "set_username", "username": name},
		    "invalid_name")
	victim = await t.client()
	base = uniq("mallory")
	await victim.set_name(base)
	# look-alikes of a connected user's name are the same name to the
	# server (the name's key), so taken
	for fake in ("rn" + base[1:], base.replace("l", "1"),
	    base.replace("o", "0"), base.replace("l", "I")):
		await c.expect_error({"type": "set_username", "username": fake},
		    "name_taken")
	# guests count: their names come from the server
	g = await t.client()
	fake = g.username.replace("1", "l").replace("0", "o")
	if fake != g.username:
		await c.expect_error({"type": "set_username", "username": fake},
		    "name_taken")
	# ordinary names, Unicode included, pass
	for name in (uniq("alice"), "Zo\u00eb " + uniq("z"),
	    "\u263a" + uniq("s"), "x"):
		await c.set_name(name)
	# and a name whose owner left is free again
	await victim.close()
	deadline = time.monotonic() + scaled(5)
	while True:
		r = await c.request({"type": "set_username",
		    "username": "rn" + base[1:]})
		if r["type"] == "username_set":
			break
		check(time.monotonic() < deadline, "look-alike freed: %r" % r)
		await asyncio.sleep(0.05)


# The look-alikes of "alice" an attacker got past the server, written
# so that the original stays obvious: each must meet alice's name.
ALICE_LOOKALIKES = [
	("Cyrillic", "\u0430l\u0456\u0441\u0435"),
	("Greek", "\u03b1l\u03b9ce"),
	("fullwidth", "\uff41\uff4c\uff49\uff43\uff45"),
	("fullwidth capitals", "\uff21\uff2c\uff29\uff23\uff25"),
	("math bold", "\U0001d41a\U0001d425\U0001d422\U0001d41c\U0001d41e"),
	("math script", "\U0001d4b6\U0001d4c1\U0001d4be\U0001d4b8\U0001d452"),
	("math double-struck", "\U0001d552\U0001d55d\U0001d55a\U0001d554"
	    "\U0001d556"),
	("dotless i", "al\u0131ce"),
	("small capitals", "\u1d00\u029f\u026a\u1d04\u1d07"),
	("combining dot on dotless i", "al\u0131\u0307ce"),
	("combining acute", "a\u0301lice"),
	("combining overlay", "alic\u0338e"),
	("capitals", "ALICE"),
	("capital I for l", "aIice"),
]

# Characters that draw as space or as nothing, each after a connected
# "alice"'s name.
SPACE_LIKE = ["\u00a0", "\u202f", "\u3000", "\u2000", "\u200a", "\u205f",
    "\u2800", "\u2028", "\u2029", "\u200b", "\u2060", "\u180e", "\u3164",
    "\ufe0f", "\U000e0041", "\u2066", "\u200e", "\u00ad"]


@case(config=DEFAULTS)
async def test_default_usernames_lookalikes(t):
	alice = await t.client()
	tail = uniq("")
	await alice.set_name("alice" + tail)
	c = await t.client()
	for what, fake in ALICE_LOOKALIKES:
		r = await c.request({"type": "set_username", "username":
		    fake + tail})
		if r.get("code") != "name_taken":
			raise TestFailure("%s look-alike %r: got %r, want "
			    "name_taken" % (what, fake + tail, r))
	for ch in SPACE_LIKE:
		for name in ("alice" + tail + ch, "alice" + ch + tail):
			r = await c.request({"type": "set_username",
			    "username": name})
			if r.get("code") != "invalid_name":
				raise TestFailure("U+%04X in %r: got %r, want "
				    "invalid_name" % (ord(ch), name, r))
	# the reserved names, in look-alikes
	for name in ("\u0430dmin", "r\u043e\u043et", "\uff41\uff44\uff4d\uff49\uff4e",
	    "adm\u0131n", "\u0455ystem", "\u1d00\u1d05\u1d0d\u026a\u0274",
	    "\U0001d42b\U0001d428\U0001d428\U0001d42d"):
		r = await c.expect_error({"type": "set_username",
		    "username": name}, "rejected")
		check("reserved" in r["message"], "%r: %r" % (name, r))
	# the same letters, differently arranged, stay free
	await c.set_name("ecila" + tail)
	# and alice's own name in another case is hers to take again
	await alice.set_name("Alice" + tail)


@case(config=DEFAULTS)
async def test_default_moderation(t):
	a, room = await in_room(t, "md")
	b, _ = await in_room(t, "me", room)
	await a.send({"type": "send_message", "roomName": room,
	    "message": "oh darn it, HECK"})
	check_eq((await delivered(b, room, ""))["message"], "oh **** it, ****",
	    "words masked")
	await a.send({"type": "send_message", "roomName": room,
	    "message": "darning socks"})
	check_eq((await delivered(b, room, ""))["message"], "darning socks",
	    "whole words only")
	# repeats
	await a.say(room, "same")
	await a.say(room, "same")
	r = await error(a, room, "same", "rejected")
	check("repeat" in r["message"], "repeat: %r" % r)

	# flood: more than 5 in 10 s warns, then mutes (2 s)
	c, _ = await in_room(t, "fl", room)
	for i in range(5):
		await c.say(room, "msg %d" % i)
	await c.say(room, "msg 5")
	n = await c.recv("notice", pred=lambda m: "slow down" in m["message"])
	check_eq(n.get("roomName"), room, "warning in the room")
	r = await error(c, room, "msg 6", "rejected")
	check("muted" in r["message"], "muted: %r" % r)
	n = await b.recv("notice", pred=lambda m: "muted" in m["message"])
	check_eq(n["message"], "%s is muted for 2 seconds for flooding" %
	    c.username, "the room is told")
	r = await error(c, room, "msg 7", "forbidden")
	check("more seconds" in r["message"], "still muted: %r" % r)
	await asyncio.sleep(scaled(2.2))
	await c.say(room, "back again")


# ---------------------------------------------------------------------------
# Loading, reloading, defaults

@case()
async def test_broken_script_refuses_start(t):
	cfg = {"script_dirs": [TEST_SCRIPTS], "scripts": ["broken-syntax"],
	    "listen": "127.0.0.1", "port": 0}
	d = temp_dir()
	path = os.path.join(d, "parley.conf")
	with open(path, "w") as f:
		f.write(lua_config(cfg))
	try:
		r = run_daemon(["--config", path])
	except Exception as e:
		raise TestFailure("parleyd did not refuse to start: %s" % e)
	check_eq(r.returncode, 1, "exit status")
	check(re.search(r"script broken-syntax \(.*broken-syntax\.lua\): "
	    r"broken-syntax\.lua:5: ", r.stderr) is not None,
	    "clear message: %r" % r.stderr)
	check("listening" not in r.stdout, "it did not listen")
	# --check-config loads the scripts too
	r = run_daemon(["--config", path, "--check-config"])
	check_eq(r.returncode, 1, "--check-config status")
	check("broken-syntax.lua:5:" in r.stderr, "--check-config: %r" %
	    r.stderr)
	cfg["scripts"] = ["no-such-script"]
	with open(path, "w") as f:
		f.write(lua_config(cfg))
	r = run_daemon(["--config", path, "--check-config"])
	check_eq(r.returncode, 1, "--check-config status (missing)")
	check("no no-such-script.lua in script_dirs" in r.stderr,
	    "missing script: %r" % r.stderr)
	cfg["scripts"] = ["hooks"]
	cfg["oper_password"] = "plain text"
	with open(path, "w") as f:
		f.write(lua_config(cfg))
	r = run_daemon(["--config", path, "--check-config"])
	check_eq(r.returncode, 1, "--check-config status (password)")
	check("oper_password" in r.stderr and "sha256" in r.stderr,
	    "a plain password is refused: %r" % r.stderr)


@case()
async def test_never_disabled_by_failures(t):
	# No number of failures a client can cause switches a script off: its
	# message hook keeps refusing (fail closed) and its commands stay.
	s = t.start_server({"script_dirs": [TEST_SCRIPTS],
	    "scripts": ["failing"]})
	a, room = await in_room(t, "dis", server=s)
	b, _ = await in_room(t, "dis2", room, server=s)
	check_eq(await notice(a, room, "/ok"), "still here", "before")
	for _ in range(30):
		await error(a, room, "/fail", "internal")
		await error(a, room, "fail", "internal")
	check(not log_has(s, r"disabled", 4000), "a script was disabled")
	check_eq(await notice(a, room, "/ok"), "still here", "after 60 failures")
	await error(a, room, "fail", "internal")
	await nothing_new(b, room)
	await still_serving(t, s)


CLOSED = {"script_dirs": [TEST_SCRIPTS], "scripts": ["closed"]}


async def passes_through(a, b, room, text, what):
	"""a's text reaches b untouched."""
	await a.send({"type": "send_message", "roomName": room,
	    "message": text})
	check_eq((await delivered(b, room, ""))["message"], text,
	    "%s: %r delivered untouched" % (what, text))


async def metrics_text(server):
	r = await http_get(server, "/metrics")
	check_eq(r.status, 200, "/metrics status")
	return r.body.decode()


def metric(text, series):
	m = re.search(r"^" + re.escape(series) + r" (\S+)$", text, re.M)
	return float(m.group(1)) if m else None


@case(config=CLOSED)
async def test_fail_closed_at_defaults(t):
	# a hook of an event that decides and raises is a refusal with
	# internal, logged with its traceback and counted
	a, room = await in_room(t, "fc")
	b, _ = await in_room(t, "fd", room)
	await error(a, room, "boom", "internal")
	await nothing_new(b, room)
	await wait_log(t.server, r"lua:closed: message hook failed: "
	    r"closed\.lua:\d+: attempt to index a nil value")
	await wait_log(t.server, r"lua:closed: traceback:.*closed\.lua:")
	r = await a.request({"type": "set_username", "username": "boomer"})
	check_eq((r.get("type"), r.get("code")), ("error", "internal"),
	    "a failing username hook: %r" % r)
	r = await a.request({"type": "create_room", "roomName": "boomroom"})
	check_eq((r.get("type"), r.get("code")), ("error", "internal"),
	    "a failing create_room hook: %r" % r)
	c = await t.named("fe")
	await c.create("jboom")
	d = await t.named("ff")
	r = await d.request({"type": "join_room", "roomName": "jboom"})
	check_eq((r.get("type"), r.get("code")), ("error", "internal"),
	    "a failing join hook: %r" % r)
	# (the post hooks run after the request is accepted: no id)
	await a.send({"type": "send_message", "roomName": room,
	    "message": "postboom"})
	r = await a.recv("error")
	check_eq((r.get("code"), r.get("roomName")), ("internal", room),
	    "a failing post hook: %r" % r)
	await nothing_new(b, room)
	# a failing connect hook refuses before the upgrade: 500, internal
	# (the server's fault, not the client's)
	check_eq(await notice(a, room, "/fail-next-connect"), "ok",
	    "/fail-next-connect")
	r = await ws_request(t.server)
	check_eq(r.status, 500, "a failing connect hook refuses")
	refusal = json.loads(r.body.decode())
	check_eq(refusal["error"], "internal", "the JSON body")
	check("script failed" in refusal["message"], "says why: %r" % refusal)
	# the failures are counted per script and event
	text = await metrics_text(t.server)
	for ev in ("message", "username", "create_room", "join", "post",
	    "connect"):
		n = metric(text, 'parley_script_hook_errors_total{script="closed",'
		    'event="%s"}' % ev)
		check(n is not None and n >= 1, "hook errors of %s: %r" % (ev, n))
	n = metric(text, 'parley_hook_verdicts_total{owner="lua:closed",'
	    'event="message",verdict="deny"}')
	check(n is not None and n >= 1, "deny verdicts of message: %r" % n)
	# the others are served, and the script's command still works
	check_eq(await notice(a, room, "/ok"), "still here", "command")
	await a.say(room, "fine")
	await delivered(b, room, "fine")


@case(config=dict(CLOSED, script_settings={"closed": {"on_error": "pass"}}))
async def test_on_error_pass(t):
	a, room = await in_room(t, "op")
	b, _ = await in_room(t, "oq", room)
	await passes_through(a, b, room, "boom", "on_error = pass")
	await wait_log(t.server, r"lua:closed: message hook failed")
	r = await a.request({"type": "set_username", "username": "boomer"})
	check_eq(r.get("type"), "username_set", "on_error = pass: %r" % r)


SHADOW = {"script_dirs": [TEST_SCRIPTS], "scripts": ["watch"],
    "script_settings": {"watch": {"shadow": True}}}


@case(config=SHADOW)
async def test_shadow_mode(t):
	# the hooks run and their verdicts are logged and counted, but the
	# messages go through as sent
	a, room = await in_room(t, "sh")
	b, _ = await in_room(t, "si", room)
	for text in ("buy spam now", "darn it", "drop me", "oops", "hello"):
		await passes_through(a, b, room, text, "shadow mode")
	await wait_log(t.server, r"lua:watch: shadow: message hook would deny "
	    r"\(rejected\) \(user [^,]+, room [^)]+\): no spam here")
	await wait_log(t.server, r"lua:watch: shadow: message hook would "
	    r"modify .*: d\*\*n it")
	await wait_log(t.server, r"lua:watch: shadow: message hook would drop")
	await wait_log(t.server, r"lua:watch: message hook failed: .*the new "
	    r"rule has a bug")
	await wait_log(t.server, r"lua:watch: shadow: the message hook "
	    r"failed; not enforced")
	r = await a.request({"type": "set_username", "username": "spammer1"})
	check_eq(r.get("type"), "username_set", "shadow: name %r" % r)
	text = await metrics_text(t.server)
	want = {"deny": 1, "modify": 1, "drop": 1}
	for v, n in want.items():
		got = metric(text, 'parley_script_shadow_verdicts_total{script='
		    '"watch",event="message",verdict="%s"}' % v)
		check_eq(got, n, "shadow verdicts %s" % v)
	check_eq(metric(text, 'parley_script_shadow_verdicts_total{script='
	    '"watch",event="username",verdict="deny"}'), 1,
	    "shadow username denies")
	check_eq(metric(text, 'parley_script_hook_errors_total{script="watch",'
	    'event="message"}'), 1, "shadow hook errors")
	# without shadow the same script enforces
	s2 = t.start_server(dict(SHADOW, script_settings={}))
	c, room2 = await in_room(t, "en", server=s2)
	await error(c, room2, "buy spam now", "rejected")


RELOAD_V1 = """
parley.command("version", function() return "v1" end)
parley.command("bump", function()
	parley.store.n = (parley.store.n or 0) + 1
	return tostring(parley.store.n)
end)
parley.on("stop", function() parley.store.stopped_v1 = true end)
"""

RELOAD_V2 = """
parley.command("version", function() return "v2" end)
parley.command("bump", function()
	parley.store.n = (parley.store.n or 0) + 1
	return tostring(parley.store.n)
end)
parley.command("stopped", function()
	return tostring(parley.store.stopped_v1)
end)
function on_message(user, room, text) return "v2: " .. text end
"""

RELOAD_SECOND = """
parley.command("second", function() return "second here" end)
"""


@case()
async def test_reload(t):
	d = temp_dir()
	script = os.path.join(d, "reloadme.lua")
	with open(script, "w") as f:
		f.write(RELOAD_V1)
	s = t.start_server({"script_dirs": [d], "scripts": ["reloadme"]})
	a, room = await in_room(t, "rl", server=s)
	b, _ = await in_room(t, "rm", room, server=s)
	check_eq(await notice(a, room, "/version"), "v1", "v1")
	check_eq(await notice(a, room, "/bump"), "1", "store")

	async def reload_and_wait(pattern):
		before = len(s.stderr(100000).splitlines())
		s.send_signal(signal.SIGHUP)
		deadline = time.monotonic() + scaled(5)
		while True:
			lines = s.stderr(100000).splitlines()[before:]
			if any(re.search(pattern, x) for x in lines):
				return
			check(time.monotonic() < deadline, "no %r after SIGHUP; "
			    "stderr:\n%s" % (pattern, "\n".join(lines[-20:])))
			await asyncio.sleep(0.05)

	with open(script, "w") as f:
		f.write(RELOAD_V2)
	await reload_and_wait(r"scripts reloaded: reloadme")
	check_eq(await notice(a, room, "/version"), "v2", "v2 on the same "
	    "connection")
	check_eq(await notice(a, room, "/bump"), "2", "the store survived")
	check_eq(await notice(a, room, "/stopped"), "true", "v1's stop hook ran")
	await a.send({"type": "send_message", "roomName": room,
	    "message": "hi"})
	check_eq((await delivered(b, room, ""))["message"], "v2: hi",
	    "the room survived, with v2's hook")

	# a broken version: the old scripts stay
	with open(script, "w") as f:
		f.write("parley.command(\"version\", function() return 'v3' end\n")
	await reload_and_wait(r"reload: script reloadme .*; keeping the "
	    r"running configuration")
	check_eq(await notice(a, room, "/version"), "v2", "v2 kept")
	check_eq(await notice(a, room, "/bump"), "3", "store still there")

	# a configuration that enables one more script
	with open(os.path.join(d, "second.lua"), "w") as f:
		f.write(RELOAD_SECOND)
	with open(script, "w") as f:
		f.write(RELOAD_V2)
	s.config["scripts"] = ["reloadme", "second"]
	with open(s.config_path, "w") as f:
		f.write(lua_config(s.config))
	await reload_and_wait(r"scripts reloaded: reloadme, second")
	check_eq(await notice(b, room, "/second"), "second here", "new script")
	# and one that disables them all
	s.config["scripts"] = []
	with open(s.config_path, "w") as f:
		f.write(lua_config(s.config))
	await reload_and_wait(r"scripts reloaded: none")
	await error(a, room, "/version", "unknown_command")
	await a.say(room, "plain again")


@case()
async def test_builtin_default_scripts(t):
	# no script keys: usernames and commands, from the build tree
	s = t.start_server()
	a, room = await in_room(t, "bd", server=s)
	r = await cmd(a, room, "/help")
	if r.get("type") == "error" and log_has(s, r"is not installed"):
		raise Skip("the default scripts are not next to this parleyd")
	check_eq(r.get("type"), "notice", "/help with the built-in defaults")
	check("/me" in r["message"], "/help lists /me")
	await a.expect_error({"type": "set_username", "username": "Adm1n"},
	    "rejected")
	# moderation is not on by default
	await a.say(room, "same")
	await a.say(room, "same")
	await a.say(room, "same")


@case()
async def test_no_scripts(t):
	s = t.start_server({"scripts": []})
	a, room = await in_room(t, "ns", server=s)
	await error(a, room, "/help", "unknown_command")
	await a.expect({"type": "set_username", "username": "Adm1n-" +
	    uniq("x")}, "username_set")


if __name__ == "__main__":
	suite.main()
