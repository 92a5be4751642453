#!/usr/bin/python3
#
# test_actions.py: a chat action is written once (src/chat.c), so every
# way of reaching it behaves the same. Here a hook punishes the sender in
# the middle of the sender's own message: a Lua message hook, a plugin
# message hook, a Lua post hook and a plugin post hook each kick the
# sender from the room, mute it (the role "muted") or close its
# connection (tests/scripts/sanctions.lua, tests/plugins/sanctions.c).
# Whether the message came through the protocol (send_message) or through
# a script (user:say), it must reach nobody, and the sender learns why.

import asyncio
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Suite, TestFailure, check, check_eq, uniq,  # noqa
    Skip, parleyd_path, lua_config, scaled)

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("PARLEY_SRCDIR") or os.path.join(HERE, "..", "..")
BUILD = os.path.dirname(os.path.dirname(parleyd_path()))
TEST_SCRIPTS = os.path.abspath(os.path.join(SRC, "tests", "scripts"))


def test_plugin(name):
	p = os.path.abspath(os.path.join(BUILD, "tests", "plugins", ".libs",
	    name + ".so"))
	if not os.path.exists(p):
		raise Skip("test plugin %s not built (run make check)" % name)
	return p


suite = Suite("actions")
case = suite.case


def config():
	return {
		"script_dirs": [TEST_SCRIPTS],
		"scripts": ["sanctions"],
		"plugins": [test_plugin("sanctions")],
	}


async def send(c, room, text, via):
	"""Sends text to room the way via says; the reply (with id) or None
	when the connection ended first."""
	if via == "script":
		text = "/sayas " + text
	try:
		return await c.request({"type": "send_message", "roomName": room,
		    "message": text})
	except Exception:
		if c.closed:
			return None
		raise


async def punished(t, hook, how, via):
	"""One combination: the sender is punished by hook while its
	message is under way; nobody gets the message."""
	a = await t.named("snd")
	b = await t.named("wit")
	room = uniq("r")
	await a.create(room)
	await b.join(room)
	await a.recv("joined_room", pred=lambda m: m["username"] ==
	    b.username)
	text = "%s-%s-%s" % (hook, how, uniq("m"))
	r = await send(a, room, text, via)
	what = "%s hook, %s, via %s" % (hook, how, via)
	if how == "kick":
		k = await a.recv("kicked", pred=lambda m: m["roomName"] == room)
		check_eq(k["reason"], "punished", "kick reason (%s)" % what)
		check(r is not None and r.get("type") == "error",
		    "the sender is told (%s): %r" % (what, r))
		if via == "protocol":
			check_eq(r["code"], "not_in_room", "error code (%s)" % what)
		m = await b.recv("user_left", pred=lambda m: m["roomName"] ==
		    room)
		check_eq(m["reason"], "kicked", "the room sees the kick")
	elif how == "mute":
		check(r is not None and r.get("type") == "error",
		    "the sender is told (%s): %r" % (what, r))
		if via == "protocol":
			check_eq(r["code"], "forbidden", "error code (%s)" % what)
			check("muted" in r["message"], "says muted: %r" % r)
		# still muted: the next message is refused as well
		r2 = await send(a, room, "plain after mute", "protocol")
		check_eq(r2.get("code"), "forbidden", "muted stays muted")
		await send(a, room, "/unmute", "protocol")
		await a.say(room, "plain after unmute")
		m = await b.recv("new_message")
		check_eq(m["message"], "plain after unmute",
		    "after unmute, messages flow")
	else:
		code = await a.wait_closed()
		check_eq(code, 1008, "closed with policy (%s)" % what)
		m = await b.recv("user_left", pred=lambda m: m["roomName"] ==
		    room)
		check_eq(m["username"], a.username, "the room sees the leave")
	await b.sync()
	got = [m for m in b.take("new_message") if m["message"].endswith(
	    text) or m["message"] == text]
	check_eq(got, [], "the punished message reached nobody (%s)" % what)
	if not a.closed:
		await a.sync()
		got = [m for m in a.take("new_message") if m["message"] == text]
		check_eq(got, [], "not even its sender (%s)" % what)


def make_case(hook, how, via):
	async def run(t):
		t.server = t.shared(config())
		await punished(t, hook, how, via)
	run.__name__ = "test_%s_%s_%s" % (hook.replace("-", "_"), how, via)
	return run


for hook in ("lua-msg", "plug-msg", "lua-post", "plug-post"):
	for how in ("kick", "mute", "bye"):
		for via in ("protocol", "script"):
			case(make_case(hook, how, via))


@case()
async def test_plain_messages_pass(t):
	"""The same set-up lets ordinary messages through both ways."""
	t.server = t.shared(config())
	a = await t.named("pa")
	b = await t.named("pb")
	room = uniq("r")
	await a.create(room)
	await b.join(room)
	await a.say(room, "hello")
	check_eq((await b.recv("new_message"))["message"], "hello", "plain")
	r = await send(a, room, "via script", "script")
	check_eq(r.get("type"), "notice", "user:say answers: %r" % r)
	m = await b.recv("new_message")
	check_eq((m["message"], m["sender"]), ("via script", a.username),
	    "user:say posts as the user")


# ---------------------------------------------------------------------------
# Events and functions of 0.2 (plugin ABI 1.3): renamed, room_created,
# room_removed, reload with plugin_options re-read, the message hook's
# request id, room_owner, removing a room, parley.off.

def events_config(greeting="hello"):
	return {
		"script_dirs": [TEST_SCRIPTS],
		"scripts": ["events"],
		"plugins": [test_plugin("events")],
		"plugin_options": {"events": {"greeting": greeting}},
		"rooms": ["general"],
	}


async def reply(c, room, text):
	r = await c.request({"type": "send_message", "roomName": room,
	    "message": text})
	check(r.get("type") == "notice", "%r answered %r" % (text, r))
	return r["message"]


@case()
async def test_events_renamed_created_removed(t):
	s = t.start_server(events_config())
	a = await t.client(s)
	old = a.username
	new = uniq("ev")
	await a.set_name(new)
	await a.join("general")
	# a message hook sees the message's request id
	await a.send({"type": "send_message", "roomName": "general",
	    "message": "with an id", "id": "abc-1"})
	await a.recv("new_message")
	check_eq(await reply(a, "general", "/last"), "message id=abc-1",
	    "Lua message hook sees the request id")
	await a.send({"type": "send_message", "roomName": "general",
	    "message": "with a number", "id": 77})
	await a.recv("new_message")
	check_eq(await reply(a, "general", "/ev last"), "message id=77",
	    "plugin message hook sees the request id (JSON text)")
	await a.send({"type": "send_message", "roomName": "general",
	    "message": "without an id"})
	await a.recv("new_message")
	check_eq(await reply(a, "general", "/ev last"), "message no id",
	    "no id, no request_id")

	# renamed, after the rename, with the old name
	newer = uniq("ev")
	await a.set_name(newer)
	check_eq(await reply(a, "general", "/ev last"),
	    "renamed %s>%s" % (new, newer), "plugin renamed event")
	check_eq(await reply(a, "general", "/last"),
	    "renamed %s>%s" % (new, newer), "Lua renamed event")
	check(old != new, "names differ")

	# room_created: by a client (plugin gets its id, Lua its user)
	room = uniq("room")
	await a.create(room)
	last = await reply(a, room, "/ev last")
	check(re.fullmatch(r"room_created %s [1-9][0-9]*" % re.escape(room),
	    last) is not None, "plugin room_created with the creator: %r" %
	    last)
	check_eq(await reply(a, room, "/last"),
	    "room_created %s %s" % (room, newer), "Lua room_created")
	# room_owner: the creator's id while it is connected
	owner = await reply(a, room, "/ev owner")
	check_eq(owner, last.split()[-1], "room_owner is the creator")
	check_eq(await reply(a, "general", "/ev owner"), "0",
	    "a configured room has no owner")

	# room_removed, by a plugin: members kicked, everyone told
	b = await t.client(s)
	await b.join(room)
	gone = await reply(a, "general", "/ev remove " + room)
	check_eq(gone, "removed", "room_remove")
	k = await b.recv("kicked", pred=lambda m: m["roomName"] == room)
	check_eq(k["reason"], "room deleted", "members are kicked")
	await b.recv("room_deleted", pred=lambda m: m["roomName"] == room)
	await a.recv("room_deleted", pred=lambda m: m["roomName"] == room)
	check_eq(await reply(a, "general", "/ev last"),
	    "room_removed " + room, "plugin room_removed")
	check_eq(await reply(a, "general", "/last"), "room_removed " + room,
	    "Lua room_removed")
	r = await b.request({"type": "join_room", "roomName": room})
	check_eq(r.get("code"), "room_not_found", "the room is gone")
	rooms = await b.request({"type": "list_rooms"})
	check(room not in [x["roomName"] for x in rooms["rooms"]],
	    "not listed")

	# a room of the same name starts without the old history (Lua
	# removes this time)
	await a.create(room)
	await a.say(room, "before removal")
	check_eq(await reply(a, "general", "/rmroom " + room), "removed",
	    "room:remove")
	await a.recv("room_deleted", pred=lambda m: m["roomName"] == room)
	await b.create(room)
	h = await b.request({"type": "history", "roomName": room})
	check_eq(h.get("messages"), [], "a new room of that name has no past")


@case()
async def test_events_off(t):
	s = t.start_server(events_config())
	a = await t.client(s)
	await a.join("general")
	await a.send({"type": "send_message", "roomName": "general",
	    "message": "shout one"})
	check_eq((await a.recv("new_message"))["message"], "shout one!",
	    "the hook runs")
	check_eq(await reply(a, "general", "/off"), "true false",
	    "parley.off removes it once")
	await a.send({"type": "send_message", "roomName": "general",
	    "message": "shout two"})
	check_eq((await a.recv("new_message"))["message"], "shout two",
	    "the hook is gone")


@case()
async def test_events_reload_options(t):
	s = t.start_server(events_config("hello"))
	a = await t.client(s)
	await a.join("general")
	check_eq(await reply(a, "general", "/ev option"), "hello",
	    "option at start")
	with open(s.config_path, "w") as f:
		f.write(lua_config(dict(s.config,
		    **events_config("bonjour"))))
	s.send_signal(signal.SIGHUP)
	deadline = time.monotonic() + scaled(5)
	while True:
		last = await reply(a, "general", "/ev last")
		if last == "reload bonjour":
			break
		check(time.monotonic() < deadline, "no reload event: %r" % last)
		await asyncio.sleep(0.05)
	check_eq(await reply(a, "general", "/ev option"), "bonjour",
	    "the plugin re-read its options")
	check_eq(await reply(a, "general", "/last"), "reload",
	    "Lua reload event")


if __name__ == "__main__":
	suite.main()
