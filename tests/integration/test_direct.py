#!/usr/bin/python3
#
# test_direct.py: direct messages and typing (protocol 1.1) against the
# built parleyd over real WebSocket connections. Direct messages: both
# ways, to a name in any case, to nobody (user_not_found), the message
# rules of send_message, a refusal, a rewrite and a drop by a script, the
# message rate limit, mutes (an operator may still be written to), and
# that they are neither kept nor logged. Typing: to the other members
# only, at most one per client and room every 3 seconds (extras dropped
# without a word), only from members, never logged. Across two servers
# with the redis plugin (skipped without redis-server or the plugin):
# direct messages both ways and typing, each delivered once.

import asyncio
import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Skip, Suite, check, check_eq, parleyd_path,  # noqa
    uniq)

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("PARLEY_SRCDIR") or os.path.join(HERE, "..", "..")
SCRIPTS = os.path.abspath(os.path.join(SRC, "scripts"))
TEST_SCRIPTS = os.path.abspath(os.path.join(SRC, "tests", "scripts"))
PASSWORD = "open sesame"
PASSWORD_HASH = "sha256:" + hashlib.sha256(PASSWORD.encode()).hexdigest()

suite = Suite("direct")
case = suite.case

PLAIN = {"max_message_bytes": 64}
HOOKED = {"script_dirs": [TEST_SCRIPTS], "scripts": ["direct"]}
DEFAULTS = {
	"script_dirs": [SCRIPTS],
	"scripts": ["usernames", "commands"],
	"oper_password": PASSWORD_HASH,
}
LIMITED = {"messages_per_minute": 6, "message_burst": 3}


def dm(to, text, **kw):
	m = {"type": "direct_message", "username": to, "message": text}
	m.update(kw)
	return m


async def got_dm(c, sender, to, text):
	"""The direct_message c gets; checks its fields."""
	m = await c.recv("direct_message", pred=lambda m:
	    m.get("from") == sender and m.get("message") == text)
	check_eq(m.get("to"), to, "direct_message.to")
	check(isinstance(m.get("ts"), int) and m["ts"] > 1600000000000,
	    "ts in milliseconds: %r" % (m,))
	check("id" not in m, "the broadcast carries no id: %r" % (m,))
	return m


async def command(c, room, text):
	return await c.request({"type": "send_message", "roomName": room,
	    "message": text})


@case(config=PLAIN)
async def test_features(t):
	c = await t.client()
	f = c.welcome.get("features")
	check("direct" in f and "typing" in f, "features: %r" % (f,))


@case(config=PLAIN)
async def test_direct_both_ways(t):
	a = await t.named("da")
	b = await t.named("db")
	other = await t.named("dx")
	await a.send(dm(b.username, "hello b", id=7))
	m = await got_dm(a, a.username, b.username, "hello b")
	n = await got_dm(b, a.username, b.username, "hello b")
	check_eq(n["ts"], m["ts"], "one ts for both")
	# Names compare case-folded; "to" is the recipient's own spelling.
	await b.send(dm(a.username.upper(), "hi a \u00e9\U0001f600"))
	await got_dm(b, b.username, a.username, "hi a \u00e9\U0001f600")
	await got_dm(a, b.username, a.username, "hi a \u00e9\U0001f600")
	# Verbatim, no trimming; and to oneself it comes once.
	await a.send(dm(a.username, "  me  "))
	await got_dm(a, a.username, a.username, "  me  ")
	await a.sync()
	await b.sync()
	await other.sync()
	a.assert_none("direct_message")
	b.assert_none("direct_message")
	other.assert_none("direct_message", what="someone else's message")
	a.assert_none("error")


@case(config=PLAIN)
async def test_direct_refusals(t):
	a = await t.named("ra")
	b = await t.named("rb")
	r = await a.expect_error(dm(uniq("nobody"), "hello"), "user_not_found")
	check("id" in r, "the error answers the request")
	await a.expect_error(dm(b.username, ""), "bad_request")
	await a.expect_error(dm(b.username, "x" * 65), "message_too_long")
	await a.expect_error({"type": "direct_message", "username":
	    b.username}, "bad_request")
	await a.expect_error({"type": "direct_message", "message": "x"},
	    "bad_request")
	await a.expect_error({"type": "direct_message", "username": 5,
	    "message": "x"}, "bad_request")
	# The limit is inclusive.
	await a.send(dm(b.username, "y" * 64))
	await got_dm(b, a.username, b.username, "y" * 64)
	# A user who left is not found any more.
	name = b.username
	await b.close()
	await a.expect_error(dm(name, "still there?"), "user_not_found")


@case(config=PLAIN)
async def test_direct_not_kept_not_logged(t):
	a = await t.named("ka")
	b = await t.named("kb")
	secret = "pr1vate-" + uniq("w")
	await a.join("general")
	await a.send(dm(b.username, secret))
	await got_dm(b, a.username, b.username, secret)
	h = await a.expect({"type": "history", "roomName": "general"},
	    "history")
	check(all(secret not in m.get("message", "") for m in h["messages"]),
	    "a direct message is not in a room's history")
	await a.sync()
	check(secret not in t.server.stderr(tail=100000),
	    "the message is not logged")


@case(config=HOOKED)
async def test_direct_hooks(t):
	a = await t.named("ha")
	b = await t.named("hb")
	r = await a.expect_error(dm(b.username, "my secret"), "rejected")
	check_eq(r["message"], "no secrets for " + b.username,
	    "the script's reason (it sees the recipient)")
	await a.send(dm(b.username, "shout quiet please"))
	await got_dm(a, a.username, b.username, "QUIET PLEASE")
	await got_dm(b, a.username, b.username, "QUIET PLEASE")
	await a.send(dm(b.username, "drop", id="d1"))
	await a.send(dm(b.username, "after the drop"))
	await got_dm(b, a.username, b.username, "after the drop")
	await a.sync()
	await b.sync()
	check(not a.take("direct_message", pred=lambda m:
	    m["message"] == "drop"), "a dropped message reaches nobody")
	check(not b.take("direct_message", pred=lambda m:
	    m["message"] == "drop"), "a dropped message reaches nobody")
	a.assert_none("error")
	# A script sends one as the user (user:direct), through the hooks.
	room = uniq("hr")
	await a.create(room)
	await a.send({"type": "send_message", "roomName": room,
	    "message": "/whisper %s shout psst" % b.username})
	await got_dm(b, a.username, b.username, "PSST")
	r = await command(a, room, "/whisper %s my secret" % b.username)
	check_eq((r.get("code"), r.get("message")), ("rejected",
	    "no secrets for " + b.username), "user:direct refused")
	r = await command(a, room, "/whisper %s hi" % uniq("nobody"))
	check_eq(r.get("code"), "user_not_found", "user:direct to nobody")


@case(config=LIMITED)
async def test_direct_rate_limit(t):
	a = await t.named("la")
	b = await t.named("lb")
	await a.join("general")
	# One bucket for room and direct messages: a burst of 3.
	await a.say("general", "one")
	for i in range(2):
		await a.send(dm(b.username, "dm %d" % i))
		await got_dm(b, a.username, b.username, "dm %d" % i)
	await a.expect_error(dm(b.username, "too fast"), "rate_limited")
	await a.sync()
	b.assert_none("direct_message", pred=lambda m:
	    m["message"] == "too fast")


@case(config=DEFAULTS)
async def test_direct_mute(t):
	op = await t.named("mo")
	b = await t.named("mb")
	c = await t.named("mc")
	room = uniq("mroom")
	await op.create(room)
	await b.join(room)
	await c.join(room)
	r = await command(op, room, "/oper " + PASSWORD)
	check_eq(r.get("type"), "notice", "/oper: %r" % (r,))
	r = await command(op, room, "/mute " + b.username)
	check_eq(r.get("message"), "muted " + b.username, "/mute")
	r = await b.expect_error(dm(c.username, "psst"), "forbidden")
	check_eq(r["message"], "you are muted", "why")
	# A muted user may still write to an operator.
	await b.send(dm(op.username, "why am I muted?"))
	await got_dm(op, b.username, op.username, "why am I muted?")
	await got_dm(b, b.username, op.username, "why am I muted?")
	# Nor is a muted user shown as typing (dropped without a word).
	await b.send({"type": "typing", "roomName": room, "id": "t1"})
	await b.sync()
	await c.sync()
	c.assert_none("typing", what="a muted user's typing")
	b.assert_none(pred=lambda m: m.get("id") == "t1", what="a reply")
	# A timed mute says for how long.
	r = await command(op, room, '/mute "%s" 5' % b.username)
	r = await b.expect_error(dm(c.username, "psst"), "forbidden")
	check("more seconds" in r["message"], "timed mute: %r" % (r,))
	r = await command(op, room, "/unmute " + b.username)
	check_eq(r.get("message"), "unmuted " + b.username, "/unmute")
	await b.send(dm(c.username, "free again"))
	await got_dm(c, b.username, c.username, "free again")
	await b.send({"type": "typing", "roomName": room})
	m = await c.recv("typing")
	check_eq(m["username"], b.username, "typing once unmuted")


@case(config=PLAIN)
async def test_typing(t):
	room, other = uniq("ty"), uniq("ty2")
	a = await t.named("ta")
	b = await t.named("tb")
	c = await t.named("tc")
	await a.create(room)
	await a.create(other)
	await b.join(room)
	await c.join(room)
	await b.join(other)
	await a.send({"type": "typing", "roomName": room, "id": 9})
	for x in (b, c):
		m = await x.recv("typing")
		check_eq(m, {"type": "typing", "roomName": room,
		    "username": a.username}, "typing")
	# Within 3 s, more are dropped without a word; another room is
	# counted on its own, and so is another member.
	for _ in range(3):
		await a.send({"type": "typing", "roomName": room, "id": 10})
	await a.send({"type": "typing", "roomName": other})
	await b.send({"type": "typing", "roomName": room})
	m = await b.recv("typing", pred=lambda m: m["roomName"] == other)
	check_eq(m["username"], a.username, "typing in the other room")
	m = await a.recv("typing")
	check_eq(m["username"], b.username, "b's typing reaches a")
	await c.recv("typing", pred=lambda m: m["username"] == b.username)
	for x in (a, b, c):
		await x.sync()
	a.assert_none(pred=lambda m: m.get("id") in (9, 10),
	    what="a reply to typing")
	a.assert_none("typing", pred=lambda m: m["username"] == a.username,
	    what="one's own typing")
	b.assert_none("typing", what="a typing within 3 s")
	c.assert_none("typing", what="a typing within 3 s")
	await a.expect_error({"type": "typing", "roomName": uniq("no")},
	    "room_not_found")
	await c.expect_error({"type": "typing", "roomName": other},
	    "not_in_room")
	await a.expect_error({"type": "typing"}, "bad_request")
	await asyncio.sleep(3.1)
	await a.send({"type": "typing", "roomName": room})
	m = await b.recv("typing")
	check_eq(m["username"], a.username, "typing again after 3 s")
	await c.recv("typing")
	for ln in t.server.stderr(tail=100000).splitlines():
		check(not ("typing" in ln and a.username in ln),
		    "typing is not logged: %r" % ln)
	h = await a.expect({"type": "history", "roomName": room}, "history")
	check_eq(h["messages"], [], "typing is not kept")


def direct_plugin():
	p = os.path.join(os.path.dirname(os.path.dirname(parleyd_path())),
	    "tests", "plugins", ".libs", "direct.so")
	if not os.path.exists(p):
		raise Skip("test plugin direct not built (run make check)")
	return p


@case()
async def test_plugin_hooks_and_relay(t):
	s = t.start_server({"plugins": [direct_plugin()]})
	a = await t.named("pa", s)
	b = await t.named("pb", s)
	room = uniq("pr")
	await a.create(room)
	await b.join(room)
	r = await a.expect_error(dm(b.username, "deny:x"), "rejected")
	check_eq(r["message"], "not to " + b.username, "the plugin's reason")
	await a.send(dm(b.username, "modify:hi"))
	await got_dm(b, a.username, b.username, "to %s: hi" % b.username)
	await a.send(dm(b.username, "drop:x"))
	await a.sync()
	await b.sync()
	a.assert_none("direct_message", pred=lambda m: m["message"] == "drop:x")
	b.assert_none("direct_message", pred=lambda m: m["message"] == "drop:x")
	# Local deliveries are the core's: the relay hears of none.
	r = await command(a, room, "/dg-relays")
	check_eq(r.get("message"), "none", "nothing to relay yet")
	# To a remote member (another server's client, made by the plugin),
	# the core hands the message to the relay after every hook.
	ghost = uniq("gh")
	r = await command(a, room, "/dg-ghost " + ghost)
	check_eq(r.get("message"), "ghost made", "/dg-ghost")
	await a.send(dm(ghost, "modify:far"))
	await got_dm(a, a.username, ghost, "to %s: far" % ghost)
	await a.send({"type": "typing", "roomName": room})
	await b.recv("typing")
	r = await command(a, room, "/dg-relays")
	check_eq(r.get("message"), "direct %s>%s to %s: far;typing %s@%s;" %
	    (a.username, ghost, ghost, a.username, room), "relayed")


@case(timeout=40)
async def test_cluster(t):
	from test_redis import start_cluster, wait_participants, wait_up
	redis, (sa, sb) = start_cluster(t, 2)
	try:
		await wait_up(sa)
		await wait_up(sb)
		a = await t.named("ca", sa)
		b = await t.named("cb", sb)
		c = await t.named("cc", sb)
		room = uniq("cr")
		await a.create(room)
		await b.recv("room_created", pred=lambda m:
		    m["roomName"] == room, timeout=5)
		await b.join(room)
		await c.join(room)
		everyone = {a.username, b.username, c.username}
		await wait_participants(a, room, everyone)
		await wait_participants(b, room, everyone)
		await a.send(dm(b.username, "over the wire"))
		m = await got_dm(a, a.username, b.username, "over the wire")
		n = await got_dm(b, a.username, b.username, "over the wire")
		check_eq(n["ts"], m["ts"], "one ts on both servers")
		await b.send(dm(a.username.upper(), "and back"))
		await got_dm(b, b.username, a.username, "and back")
		await got_dm(a, b.username, a.username, "and back")
		await a.expect_error(dm(uniq("nobody"), "x"), "user_not_found")
		await a.send({"type": "typing", "roomName": room})
		for x in (b, c):
			m = await x.recv("typing")
			check_eq(m, {"type": "typing", "roomName": room,
			    "username": a.username}, "typing from the other "
			    "server")
		await b.send({"type": "typing", "roomName": room})
		for x in (a, c):
			m = await x.recv("typing")
			check_eq(m["username"], b.username, "b's typing")
		await asyncio.sleep(0.3)
		for x in (a, b, c):
			await x.sync()
		for x in (a, b, c):
			x.assert_none("typing", what="a second copy")
			x.assert_none("direct_message", what="a second copy")
		c.assert_none("direct_message", what="someone else's message")
	finally:
		redis.cleanup()


if __name__ == "__main__":
	suite.main()
