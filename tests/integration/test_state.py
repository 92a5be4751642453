#!/usr/bin/python3
#
# test_state.py: rooms that last (protocol 1.1, "Rooms that last")
# against the built parleyd and its state store (SQLite in state_dir):
# a room's identity (a re-created room does not inherit the history,
# owner, roles or bans of an ended one of the same name); rooms, topics
# and roles surviving a restart and a kill -9; guest rooms expiring when
# empty; room quotas per address and per account; set_topic,
# delete_room and delete_message with tombstones; bans and mutes that
# hold across reconnects, restarts and expire; the audit trail.

import asyncio
import hashlib
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Suite, Skip, check, check_eq, uniq)  # noqa

suite = Suite("state")
case = suite.case

OPER_PASSWORD = "sesame-oper"
PASSWORD = "correct horse battery"
CONFIG = {
	"trusted_proxies": ["127.0.0.1"],
	"oper_password": "sha256:" +
	    hashlib.sha256(OPER_PASSWORD.encode()).hexdigest(),
	"password_memory_kib": 8192,
}

_addr = [0]


def fresh_addr():
	_addr[0] += 1
	return "203.0.%d.%d" % (113 + _addr[0] // 250, 1 + _addr[0] % 250)


async def client(t, server=None, addr=None, label="client"):
	"""A client from an address of its own (X-Forwarded-For; the
	server trusts loopback as a proxy)."""
	return await t.client(server, label=label, extra_headers={
	    "X-Forwarded-For": addr or fresh_addr()})


async def accounts_or_skip(c):
	if "accounts" not in c.welcome.get("features", []):
		raise Skip("this parleyd keeps no accounts")


async def register(c, name):
	await accounts_or_skip(c)
	r = await c.expect({"type": "register", "username": name,
	    "password": PASSWORD}, "registered", timeout=15)
	c.username = name
	return r


async def login(c, name):
	r = await c.expect({"type": "login", "username": name,
	    "password": PASSWORD}, "logged_in", timeout=15)
	c.username = name
	return r


async def command(c, room, text):
	r = await c.request({"type": "send_message", "roomName": room,
	    "message": text})
	check(r.get("type") != "error", "%s: %s got %r" % (c.label, text, r))
	return r


async def refused(c, room, text, code="forbidden"):
	r = await c.request({"type": "send_message", "roomName": room,
	    "message": text})
	check_eq(r.get("code"), code, "%s: %s" % (c.label, text))
	return r


async def told(c, obj, type):
	"""Sends obj, whose answer is a broadcast without the id (set_topic,
	/op), and returns that broadcast."""
	await c.send(obj)
	r = await c.recv(None, pred=lambda m: m.get("type") in (type, "error")
	    and m.get("roomName", obj.get("roomName")) == obj.get("roomName"))
	check(r.get("type") == type, "%s: %r got %r" % (c.label, obj, r))
	return r


async def history(c, room):
	r = await c.expect({"type": "history", "roomName": room}, "history")
	return r["messages"]


def state_dir():
	return tempfile.mkdtemp(prefix="parley-state-")


@case(config=CONFIG)
async def test_identity_after_delete(t):
	"""22.7: a deleted room's past does not go to a later room of its
	name."""
	room = uniq("den")
	a = await client(t, label="a")
	await a.create(room)
	await a.say(room, "the old room's secret")
	await told(a, {"type": "set_topic", "roomName": room,
	    "topic": "old"}, "topic_changed")
	watcher = await client(t, label="watcher")
	await a.send({"type": "delete_room", "roomName": room})
	k = await a.recv("kicked")
	check_eq(k["reason"], "room deleted", "the deleter is kicked")
	await a.recv("room_deleted")
	d = await watcher.recv("room_deleted")
	check_eq(d["roomName"], room, "everyone is told")
	b = await client(t, label="b")
	await b.create(room)
	check_eq(await history(b, room), [], "the new room's history")
	r = await b.expect({"type": "list_rooms"}, "rooms")
	mine = [x for x in r["rooms"] if x["roomName"] == room]
	check_eq(mine[0]["topic"], "", "no old topic")
	await a.join(room)
	check_eq(await history(a, room), [], "history, for the old owner")
	await a.expect_error({"type": "set_topic", "roomName": room,
	    "topic": "mine again"}, "forbidden")
	await refused(a, room, "/kick " + b.welcome["username"])
	await a.expect_error({"type": "delete_room", "roomName": room},
	    "forbidden")


@case(timeout=60)
async def test_identity_durable_history(t):
	"""22.7 with history-sqlite and a restart between: the database
	still holds the ended room's messages, under its id; the new room
	of the name neither shows them nor reuses their seqs' texts."""
	state = state_dir()
	cfg = dict(CONFIG, state_dir=state, plugins=["history-sqlite"])
	s = t.start_server(cfg)
	room = uniq("durable")
	a = await client(t, s, label="a")
	await a.create(room)
	for i in range(3):
		await a.say(room, "old %d" % i)
	await a.send({"type": "delete_room", "roomName": room})
	await a.recv("room_deleted")
	await s.astop()
	s = t.start_server(cfg)
	b = await client(t, s, label="b")
	await b.create(room)
	check_eq(await history(b, room), [], "the new room's history")
	m = await b.say(room, "new")
	check_eq([x["message"] for x in await history(b, room)], ["new"],
	    "only the new room's messages")
	check(m["seq"] >= 1, "seq %r" % m["seq"])
	await s.astop()
	shutil.rmtree(state, ignore_errors=True)


@case(timeout=30)
async def test_identity_after_expiry(t):
	"""22.7 with empty_room_ttl: a guest's empty room goes, and so does
	its past."""
	s = t.start_server(dict(CONFIG, empty_room_ttl=1))
	room = uniq("brief")
	a = await client(t, s, label="a")
	watcher = await client(t, s, label="watcher")
	await a.create(room)
	await a.say(room, "gone soon")
	await a.expect({"type": "leave_room", "roomName": room}, "room_left")
	started = time.monotonic()
	d = await watcher.recv("room_deleted", timeout=10,
	    pred=lambda m: m.get("roomName") == room)
	took = time.monotonic() - started
	check(0.5 <= took <= 4, "expired after %.1f s" % took)
	b = await client(t, s, label="b")
	await b.create(room)
	check_eq(await history(b, room), [], "the new room's history")
	await a.join(room)
	await refused(a, room, "/kick " + b.welcome["username"])
	# configured rooms never expire
	r = await a.expect({"type": "list_rooms"}, "rooms")
	check("general" in [x["roomName"] for x in r["rooms"]], "general")


@case(timeout=60)
async def test_restart_keeps_rooms(t):
	state = state_dir()
	cfg = dict(CONFIG, state_dir=state, plugins=["history-sqlite"])
	s = t.start_server(cfg)
	a = await client(t, s, label="a")
	await register(a, uniq("olga"))
	owner = a.username
	room = uniq("keep")
	await a.create(room)
	await a.say(room, "before the restart")
	gone = await a.say(room, "deleted before the restart")
	await a.send({"type": "delete_message", "roomName": room,
	    "seq": gone["seq"]})
	await a.recv("message_deleted")
	await told(a, {"type": "set_topic", "roomName": room,
	    "topic": "Tea at five"}, "topic_changed")
	g = await client(t, s, label="g")
	guest_room = uniq("guestroom")
	await g.create(guest_room)
	m = await client(t, s, label="m")
	await register(m, uniq("mod"))
	await m.join(room)
	rc = await told(a, {"type": "send_message", "roomName": room,
	    "message": "/op " + m.username}, "role_changed")
	check_eq(rc.get("type"), "role_changed", "/op answers role_changed")
	check_eq(rc.get("role"), "moderator", "role")
	await asyncio.sleep(0.3)
	s.kill()  # kill -9: what was flushed survives
	s = t.start_server(cfg)
	c = await client(t, s, label="c")
	r = await c.expect({"type": "list_rooms"}, "rooms")
	rooms = {x["roomName"]: x for x in r["rooms"]}
	check(room in rooms and guest_room in rooms, "rooms back: %r" % rooms)
	check_eq(rooms[room]["topic"], "Tea at five", "topic back")
	j = await c.expect({"type": "join_room", "roomName": room},
	    "room_joined")
	check_eq(j["topic"], "Tea at five", "room_joined.topic")
	await c.expect_error({"type": "set_topic", "roomName": room,
	    "topic": "a guest's"}, "forbidden")
	a2 = await client(t, s, label="a2")
	await login(a2, owner)
	await a2.join(room)
	p = await a2.expect({"type": "get_participants", "roomName": room},
	    "participants")
	check_eq(p["roles"].get(owner), "owner", "the owner's role")
	m2 = await client(t, s, label="m2")
	await login(m2, m.username)
	j = await m2.expect({"type": "join_room", "roomName": room},
	    "room_joined")
	check_eq(j["roles"].get(m.username), "moderator", "the moderator's")
	await told(m2, {"type": "set_topic", "roomName": room,
	    "topic": "by the moderator"}, "topic_changed")
	msgs = await history(a2, room)
	check_eq([(x.get("message"), x.get("deleted")) for x in msgs],
	    [("before the restart", None), (None, True)],
	    "history, with its tombstone")
	await s.astop()
	db = sqlite3.connect(os.path.join(state, "state.db"))
	check_eq(db.execute("PRAGMA integrity_check").fetchone()[0], "ok",
	    "integrity")
	db.close()
	shutil.rmtree(state, ignore_errors=True)


@case(timeout=90)
async def test_kill_during_burst(t):
	"""kill -9 in the middle of a burst of changes: what was acknowledged
	more than a flush interval (50 ms) before is there after the
	restart, and the database is never corrupt."""
	state = state_dir()
	cfg = dict(CONFIG, state_dir=state)
	room = uniq("burst")
	for round in range(3):
		s = t.start_server(cfg)
		a = await client(t, s, label="a%d" % round)
		if round == 0:
			await a.create(room)
		else:
			r = await a.expect({"type": "list_rooms"}, "rooms")
			got = [x["topic"] for x in r["rooms"]
			    if x["roomName"] == room]
			check_eq(len(got), 1, "the room is back")
			n = int(got[0].split()[-1])
			print("  round %d: topic %d came back (kill after 250 "
			    "sent, 99 acknowledged before the pause)" % (round, n))
			check(n >= want, "round %d: topic %d, want >= %d" % (
			    round, n, want))
			await a.join(room)
			await command(a, room, "/oper " + OPER_PASSWORD)
		# every topic acknowledged, then a pause longer than the flush
		# interval, then a burst the kill cuts short
		for i in range(100):
			await told(a, {"type": "set_topic", "roomName": room,
			    "topic": "topic %d" % i}, "topic_changed")
		want = 99
		await asyncio.sleep(0.3)
		for i in range(100, 400):
			await a.send({"type": "set_topic", "roomName": room,
			    "topic": "topic %d" % i})
			if i == 250:
				s.proc.send_signal(signal.SIGKILL)
				break
		s.wait(10)
		db = sqlite3.connect(os.path.join(state, "state.db"))
		check_eq(db.execute("PRAGMA integrity_check").fetchone()[0],
		    "ok", "integrity after kill -9")
		db.close()
	shutil.rmtree(state, ignore_errors=True)


@case(timeout=30)
async def test_quota_per_address(t):
	"""One address, with all the connections it may have, cannot fill
	max_rooms."""
	s = t.start_server(dict(CONFIG, max_rooms=20, max_rooms_per_address=3,
	    max_connections_per_ip=8))
	addr = fresh_addr()
	cs = [await client(t, s, addr=addr, label="c%d" % i)
	    for i in range(8)]
	made = refusals = 0
	for i, c in enumerate(cs):
		for j in range(3):
			r = await c.request({"type": "create_room",
			    "roomName": uniq("q%d-%d" % (i, j))})
			if r["type"] == "created_room":
				made += 1
			else:
				check_eq(r.get("code"), "forbidden", "refusal")
				refusals += 1
	check_eq(made, 3, "rooms made from one address")
	check_eq(refusals, 21, "refused")
	other = await client(t, s, label="other")
	await other.create(uniq("still"))
	# an empty guest room expires, which gives the address room again
	r = await cs[0].expect({"type": "list_rooms"}, "rooms")
	check(len(r["rooms"]) <= 5, "rooms: %d" % len(r["rooms"]))


@case(config=CONFIG)
async def test_topic_and_deletion(t):
	room = uniq("td")
	owner = await client(t, label="owner")
	await owner.create(room)
	b = await client(t, label="b")
	await b.join(room)
	c = await client(t, label="c")
	await c.join(room)
	await b.expect_error({"type": "set_topic", "roomName": room,
	    "topic": "x"}, "forbidden")
	await b.expect_error({"type": "set_topic", "roomName": room,
	    "topic": "x" * 257}, "bad_request")
	await owner.send({"type": "set_topic", "roomName": room,
	    "topic": "rules: be kind"})
	tc = await b.recv("topic_changed")
	check_eq((tc["topic"], tc["username"]),
	    ("rules: be kind", owner.welcome["username"]), "topic_changed")
	m1 = await b.say(room, "mine to delete")
	m2 = await c.say(room, "c's")
	await c.recv("new_message", pred=lambda m: m["seq"] == m1["seq"])
	await b.expect_error({"type": "delete_message", "roomName": room,
	    "seq": m2["seq"]}, "forbidden")
	await b.send({"type": "delete_message", "roomName": room,
	    "seq": m1["seq"]})
	md = await c.recv("message_deleted")
	check_eq((md["seq"], md["username"]), (m1["seq"], b.username),
	    "message_deleted")
	await owner.send({"type": "delete_message", "roomName": room,
	    "seq": m2["seq"]})
	await c.recv("message_deleted")
	await owner.expect_error({"type": "delete_message", "roomName": room,
	    "seq": 999}, "message_not_found")
	msgs = await history(owner, room)
	check_eq([(x["seq"], x.get("deleted"), "message" in x) for x in msgs],
	    [(m1["seq"], True, False), (m2["seq"], True, False)],
	    "tombstones")
	await b.expect_error({"type": "delete_room", "roomName": room},
	    "forbidden")
	# an operator acts from outside the room, and hears the answer
	op = await client(t, label="op")
	await op.create(uniq("oproom"))
	await command(op, op.rooms_made[-1] if hasattr(op, "rooms_made")
	    else (await op.expect({"type": "list_rooms"}, "rooms"))
	    ["rooms"][-1]["roomName"], "/oper " + OPER_PASSWORD)
	await op.send({"type": "set_topic", "roomName": room,
	    "topic": "from outside"})
	await op.recv("topic_changed")
	await op.send({"type": "delete_room", "roomName": room})
	await b.recv("kicked")
	await op.recv("room_deleted", pred=lambda m: m["roomName"] == room)


@case(timeout=60)
async def test_bans_hold(t):
	state = state_dir()
	cfg = dict(CONFIG, state_dir=state)
	s = t.start_server(cfg)
	room = uniq("bans")
	owner = await client(t, s, label="owner")
	await register(owner, uniq("own"))
	await owner.create(room)
	v = await client(t, s, label="victim")
	victim = uniq("vic")
	await register(v, victim)
	await v.join(room)
	await command(owner, room, "/ban %s spamming links" % victim)
	k = await v.recv("kicked")
	check("spamming links" in k["reason"], "reason: %r" % k)
	r = await v.expect_error({"type": "join_room", "roomName": room},
	    "forbidden")
	check("banned" in r["message"], "says banned: %r" % r)
	# a new connection, same account
	v2 = await client(t, s, label="victim2")
	await login(v2, victim)
	await v2.expect_error({"type": "join_room", "roomName": room},
	    "forbidden")
	# a guest banned: its new connection from the same address is too
	gaddr = fresh_addr()
	g = await client(t, s, addr=gaddr, label="guest")
	await g.join(room)
	await command(owner, room, "/ban %s 1" % g.welcome["username"])
	await g.recv("kicked")
	g2 = await client(t, s, addr=gaddr, label="guest2")
	await g2.expect_error({"type": "join_room", "roomName": room},
	    "forbidden")
	# mutes: a muted guest who reconnects is still muted
	maddr = fresh_addr()
	mg = await client(t, s, addr=maddr, label="muted")
	await mg.join(room)
	await command(owner, room, "/mute " + mg.welcome["username"])
	await refused(mg, room, "hello?")
	await mg.close()
	mg2 = await client(t, s, addr=maddr, label="muted2")
	await mg2.join(room)
	r = await refused(mg2, room, "hello again")
	check_eq(r["message"], "you are muted", "still muted")
	await mg2.request({"type": "send_message", "roomName": room,
	    "message": "/help"})  # commands still run
	log = s.stderr(400)
	check(" audit: user %s: ban %s in %s: spamming links" % (owner.username,
	    victim, room) in log, "audit lines in the log:\n" + log[-2000:])
	await s.astop()
	s = t.start_server(cfg)
	owner2 = await client(t, s, label="owner-again")
	await login(owner2, owner.username)
	await owner2.join(room)
	owner = owner2
	# only the owner, moderators and operators
	x = await client(t, s, label="x")
	mg2 = await client(t, s, label="someone")
	await mg2.join(room)
	await x.join(room)
	await refused(x, room, "/ban " + mg2.welcome["username"])
	await refused(x, room, "/mute " + owner.username)
	await refused(owner, room, "/ban " + owner.username)
	await s.astop()
	# after a restart
	s = t.start_server(cfg)
	v3 = await client(t, s, label="victim3")
	await login(v3, victim)
	r = await v3.expect_error({"type": "join_room", "roomName": room},
	    "forbidden")
	o = await client(t, s, label="owner2")
	await login(o, owner.username)
	await o.join(room)
	await command(o, room, "/unban " + victim)
	await v3.join(room)
	await o.sync()
	await command(o, room, "/oper " + OPER_PASSWORD)
	log = (await command(o, room, "/modlog 20"))["message"]
	for what in ("(ban): %s" % victim, "(mute)", "(unban): %s" % victim,
	    "spamming links"):
		check(what in log, "modlog has %r:\n%s" % (what, log))
	await s.astop()
	shutil.rmtree(state, ignore_errors=True)


@case(timeout=30)
async def test_expiry(t):
	s = t.start_server(dict(CONFIG))
	room = uniq("exp")
	owner = await client(t, s, label="owner")
	await owner.create(room)
	v = await client(t, s, label="v")
	await v.join(room)
	# 0.05 minutes: 3 seconds
	await command(owner, room, "/mute %s 0.05" % v.welcome["username"])
	r = await refused(v, room, "too soon")
	check("more seconds" in r["message"], "timed: %r" % r)
	await command(owner, room, "/ban %s 0.05" % v.welcome["username"])
	await v.recv("kicked")
	await v.expect_error({"type": "join_room", "roomName": room},
	    "forbidden")
	await asyncio.sleep(3.5)
	await v.join(room)
	await v.say(room, "back and free")


@case(config=CONFIG)
async def test_hooks_widen_and_narrow(t):
	"""A script may widen (parley.STOP) or narrow (false) who sets a
	topic; here through the default scripts' rule only: a moderator
	may, a member may not until made one."""
	room = uniq("roles")
	owner = await client(t, label="owner")
	await owner.create(room)
	b = await client(t, label="b")
	await b.join(room)
	await b.expect_error({"type": "set_topic", "roomName": room,
	    "topic": "no"}, "forbidden")
	await owner.send({"type": "send_message", "roomName": room,
	    "message": "/op " + b.welcome["username"]})
	rc = await b.recv("role_changed")
	check_eq((rc["username"], rc["role"]),
	    (b.welcome["username"], "moderator"), "role_changed")
	await told(b, {"type": "set_topic", "roomName": room,
	    "topic": "yes"}, "topic_changed")
	await owner.send({"type": "send_message", "roomName": room,
	    "message": "/deop " + b.welcome["username"]})
	rc = await b.recv("role_changed")
	check_eq(rc["role"], None, "taken")
	await b.expect_error({"type": "set_topic", "roomName": room,
	    "topic": "no"}, "forbidden")


HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("PARLEY_SRCDIR") or os.path.join(HERE, "..", "..")


@case(config=dict(CONFIG, script_dirs=[
    os.path.abspath(os.path.join(SRC, "tests", "scripts")),
    os.path.abspath(os.path.join(SRC, "scripts"))],
    scripts=["usernames", "commands", "topicrule"]))
async def test_script_hooks(t):
	"""A script widens (parley.STOP) and narrows (false) the topic rule,
	sees moderation and adds its own audit records."""
	room = uniq("lua")
	owner = await client(t, label="owner")
	await owner.create(room)
	b = await client(t, label="b")
	await b.join(room)
	await told(b, {"type": "set_topic", "roomName": room,
	    "topic": "lua-allows a member"}, "topic_changed")
	r = await owner.expect_error({"type": "set_topic", "roomName": room,
	    "topic": "lua-refuses the owner"}, "forbidden")
	check_eq(r["message"], "the script says no", "reason")
	await command(owner, room, "/mute %s 1" % b.welcome["username"])
	await command(owner, room, "/oper " + OPER_PASSWORD)
	check_eq((await command(owner, room, "/bans"))["message"], "none",
	    "no bans")
	await command(owner, room, "/ban %s 1" % b.welcome["username"])
	check_eq((await command(owner, room, "/bans"))["message"],
	    b.welcome["username"], "room:restrictions")
	log = (await command(owner, room, "/modlog 5"))["message"]
	check("script lua:topicrule (seen-mute): %s" % b.welcome["username"]
	    in log, "the script's record:\n" + log)
	check("(mute): %s in %s" % (b.welcome["username"], room) in log,
	    "the mute's record:\n" + log)


@case(timeout=30)
async def test_store_survives_restart(t):
	"""parley.store is kept by the state store across a restart."""
	state = state_dir()
	cfg = dict(CONFIG, state_dir=state, script_dirs=[
	    os.path.abspath(os.path.join(SRC, "tests", "scripts")),
	    os.path.abspath(os.path.join(SRC, "scripts"))],
	    scripts=["usernames", "commands", "topicrule"])
	s = t.start_server(cfg)
	a = await client(t, s, label="a")
	await a.join("general")
	r = await command(a, "general", "/remember tea at five")
	check_eq(r["message"], "remembered", "/remember")
	await s.astop()
	s = t.start_server(cfg)
	b = await client(t, s, label="b")
	await b.join("general")
	r = await command(b, "general", "/recall")
	check_eq(r["message"], "tea at five", "parley.store after a restart")
	await s.astop()
	shutil.rmtree(state, ignore_errors=True)


def test_plugin(name):
	build = os.path.dirname(os.path.dirname(os.path.abspath(
	    os.environ.get("PARLEYD") or os.path.join(os.path.dirname(
	    os.path.abspath(__file__)), "..", "..", "src", "parleyd"))))
	p = os.path.join(build, "tests", "plugins", ".libs", name + ".so")
	if not os.path.exists(p):
		raise Skip("test plugin %s not built (run make check)" % name)
	return p


@case(timeout=30)
async def test_plugin_store_and_audit(t):
	"""ABI 1.4: a plugin narrows and widens the topic rule, adds audit
	records, is given every change of the state and tells of changes
	made elsewhere."""
	s = t.start_server(dict(CONFIG, plugins=[test_plugin("moderator")]))
	room = uniq("plug")
	owner = await client(t, s, label="owner")
	await owner.create(room)
	b = await client(t, s, label="b")
	await b.join(room)
	await b.expect_error({"type": "set_topic", "roomName": room,
	    "topic": "a member's"}, "forbidden")
	await told(b, {"type": "set_topic", "roomName": room,
	    "topic": "plugin-allows this"}, "topic_changed")
	r = await owner.expect_error({"type": "set_topic", "roomName": room,
	    "topic": "plugin-refuses even the owner"}, "forbidden")
	check_eq(r["message"], "the moderator plugin says no", "reason")
	await b.send({"type": "send_message", "roomName": room,
	    "message": "/note looked at the logs"})
	await owner.send({"type": "send_message", "roomName": room,
	    "message": "/remote-topic set elsewhere"})
	tc = await b.recv("topic_changed")
	check_eq((tc["topic"], tc["username"]), ("set elsewhere", "server"),
	    "a topic from elsewhere")
	r = await b.expect({"type": "list_rooms"}, "rooms")
	check_eq([x["topic"] for x in r["rooms"] if x["roomName"] == room],
	    ["set elsewhere"], "kept")
	await owner.sync()
	log = s.stderr(200)
	check("state put room %s" % room in log, "puts:\n" + log[-3000:])
	check(" audit: plugin plugin:moderator: note %s in %s: looked at "
	    "the logs" % (b.welcome["username"], room) in log,
	    "the plugin's audit record:\n" + log[-3000:])
	# the owner is still the owner
	await told(owner, {"type": "set_topic", "roomName": room,
	    "topic": "mine"}, "topic_changed")


@case(timeout=60)
async def test_across_servers(t):
	"""With the redis plugin: a topic set on one server shows on the
	other, a ban on one holds on the other, a message deleted on one is
	a tombstone on the other, a room deleted on one is gone on both."""
	from test_redis import start_cluster, wait_up
	redis, (a, b) = start_cluster(t, 2)
	try:
		await wait_up(a)
		await wait_up(b)
		room = uniq("shared")
		cb = await client(t, b, label="member-b")
		ca = await client(t, a, label="owner-a")
		await ca.create(room)
		await cb.recv("room_created", pred=lambda m:
		    m["roomName"] == room, timeout=5)
		await cb.join(room)
		await ca.send({"type": "set_topic", "roomName": room,
		    "topic": "one topic for all"})
		tc = await cb.recv("topic_changed", timeout=5)
		check_eq(tc["topic"], "one topic for all", "topic on b")
		r = await cb.expect({"type": "list_rooms"}, "rooms")
		check_eq([x["topic"] for x in r["rooms"]
		    if x["roomName"] == room], ["one topic for all"], "list_rooms")
		# the owner's rights hold on the other server's record too
		await cb.expect_error({"type": "set_topic", "roomName": room,
		    "topic": "b's"}, "forbidden")
		# a ban set on a holds on b
		vaddr = fresh_addr()
		v = await client(t, a, addr=vaddr, label="victim-a")
		await v.join(room)
		await command(ca, room, "/ban %s trolling" %
		    v.welcome["username"])
		await v.recv("kicked", timeout=5)
		v2 = await client(t, b, addr=vaddr, label="victim-b")
		deadline = time.monotonic() + 5
		while True:
			r = await v2.request({"type": "join_room",
			    "roomName": room})
			if r.get("code") == "forbidden" or \
			    time.monotonic() > deadline:
				break
			await v2.request({"type": "leave_room",
			    "roomName": room})
			await asyncio.sleep(0.1)
		check_eq(r.get("code"), "forbidden", "banned on b: %r" % r)
		check("banned" in r.get("message", ""), "says so: %r" % r)
		# a message deleted on a is a tombstone on b
		m = await cb.say(room, "regrettable")
		await ca.recv("new_message", pred=lambda x:
		    x["message"] == "regrettable", timeout=5)
		await ca.send({"type": "delete_message", "roomName": room,
		    "seq": m["seq"]})
		await ca.recv("message_deleted", timeout=5)
		deadline = time.monotonic() + 5
		while True:
			h = await history(cb, room)
			mine = [x for x in h if x["seq"] == m["seq"]]
			if (mine and mine[0].get("deleted")) or \
			    time.monotonic() > deadline:
				break
			await asyncio.sleep(0.1)
		check(mine and mine[0].get("deleted") and
		    "message" not in mine[0], "tombstone on b: %r" % mine)
		# deleted on a: gone on both
		await ca.send({"type": "delete_room", "roomName": room})
		await cb.recv("room_deleted", pred=lambda x:
		    x["roomName"] == room, timeout=5)
		r = await cb.expect({"type": "list_rooms"}, "rooms")
		check(room not in [x["roomName"] for x in r["rooms"]],
		    "gone on b")
		# made again, on b by another: no past, no owner from before
		await cb.create(room)
		check_eq(await history(cb, room), [], "the new room's history")
		await ca.recv("room_created", pred=lambda x:
		    x["roomName"] == room, timeout=5)
		await ca.join(room)
		await ca.expect_error({"type": "set_topic", "roomName": room,
		    "topic": "old owner"}, "forbidden")
	finally:
		redis.cleanup()


if __name__ == "__main__":
	suite.main()
