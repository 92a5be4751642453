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

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Suite, TestFailure, check, check_eq, uniq,  # noqa
    Skip, parleyd_path)

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


if __name__ == "__main__":
	suite.main()
