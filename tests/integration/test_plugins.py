#!/usr/bin/python3
#
# test_plugins.py: native plugins in the built parleyd, over real
# WebSocket connections: durable history in SQLite (it survives a restart,
# seq goes on, paging with before, flushed and unflushed messages alike,
# retention), the example plugin's command and hook, every verdict and
# most of the host table through tests/plugins/verdicts.c, plugin
# counters in /metrics, the order of a plugin's and a Lua script's hooks
# on one event, --plugin-info, and plugins the server must refuse (it then
# exits non-zero and says why).

import asyncio
import json
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Suite, Server, Skip, TestFailure, check,  # noqa: E402
    check_eq, http_get, lua_string, parleyd_path, run_daemon, scaled, uniq,
    VALGRIND)

suite = Suite("plugins")
case = suite.case

BUILD = os.path.dirname(os.path.dirname(parleyd_path()))
SRC = os.environ.get("PARLEY_SRCDIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..")


def built(path, what):
	"""The path of a built module, or Skip when it was not built."""
	p = os.path.join(BUILD, path)
	if not os.path.exists(p):
		raise Skip("%s not built (%s missing)" % (what, p))
	return p


def sqlite_plugin():
	return built("plugins/.libs/history-sqlite.so",
	    "history-sqlite (configure found no sqlite3?)")


def example_plugin():
	return built("plugins/.libs/example.so", "the example plugin")


def test_plugin(name):
	return built("tests/plugins/.libs/%s.so" % name,
	    "test plugin %s (run make check)" % name)


def lua(v):
	"""Lua text for a value; dict keys are always bracketed."""
	if isinstance(v, bool):
		return "true" if v else "false"
	if isinstance(v, (int, float)):
		return repr(v)
	if isinstance(v, str):
		return lua_string(v)
	if isinstance(v, (list, tuple)):
		return "{ " + ", ".join(lua(x) for x in v) + " }"
	if isinstance(v, dict):
		return "{ " + ", ".join("[%s] = %s" % (lua_string(k), lua(x))
		    for k, x in v.items()) + " }"
	raise TypeError(v)


# No rate limits: some cases send hundreds of messages.
UNLIMITED = {"messages_per_minute": 0, "requests_per_minute": 0,
    "rooms_per_minute": 0, "names_per_minute": 0}


def plugin_config(plugins, options=None, extra=None):
	"""The whole configuration file for a server with plugins."""
	conf = dict(Server.DEFAULTS)
	conf.update(UNLIMITED)
	# Rooms last only as long as the server unless a case keeps them.
	conf["state_store"] = "memory"
	conf.update(extra or {})
	conf["plugins"] = list(plugins)
	if options:
		conf["plugin_options"] = options
	lines = ["-- written by test_plugins.py"]
	for k, v in conf.items():
		if v is not None:
			lines.append("%s = %s" % (k, lua(v)))
	return "\n".join(lines) + "\n"


def start(t, plugins, options=None, extra=None):
	return t.start_server(raw_config=plugin_config(plugins, options, extra))


class StateDir:
	"""A directory that outlives the servers of one case."""

	def __enter__(self):
		self.path = tempfile.mkdtemp(prefix="parley-plugins-")
		return self

	def __exit__(self, *exc):
		shutil.rmtree(self.path, ignore_errors=True)

	def db(self):
		return os.path.join(self.path, "history.db")


async def history(c, room, before=None, limit=None):
	req = {"type": "history", "roomName": room}
	if before is not None:
		req["before"] = before
	if limit is not None:
		req["limit"] = limit
	r = await c.expect(req, "history")
	return r["messages"]


def seqs(messages):
	return [m["seq"] for m in messages]


async def say_many(c, room, texts):
	"""Sends every text, then waits for our own copy of the last one."""
	for text in texts:
		await c.send({"type": "send_message", "roomName": room,
		    "message": text})
	await c.recv("new_message", timeout=20, pred=lambda m:
	    m.get("message") == texts[-1])
	c.take("new_message")


# ---------------------------------------------------------------------------
# history-sqlite

@case(timeout=60)
async def test_history_survives_restart(t):
	db_plugin = sqlite_plugin()
	with StateDir() as d:
		opts = {"history-sqlite": {"path": d.db()}}
		keep = {"state_store": "sqlite", "state_dir": d.path}
		s = start(t, [db_plugin], opts, keep)
		a = await t.named("hist", s)
		await a.join("general")
		texts = ["before restart %d \u263a" % i for i in range(40)]
		await say_many(a, "general", texts)
		room = uniq("made")
		await a.create(room)
		await say_many(a, room, ["in %s %d" % (room, i)
		    for i in range(5)])
		# Stop at once: what is still queued is written by fini.
		await a.close()
		await s.astop()

		s = start(t, [db_plugin], opts, keep)
		b = await t.named("again", s)
		await b.join("general")
		got = await history(b, "general", limit=500)
		check_eq([m["message"] for m in got], texts,
		    "history after a restart")
		check_eq(seqs(got), list(range(1, 41)), "seqs after a restart")
		check(all(m["sender"] == a.username and isinstance(m["ts"], int)
		    for m in got), "senders and ts kept: %r" % got[:2])
		m = await b.say("general", "after restart")
		check_eq(m["seq"], 41, "seq goes on after a restart")
		# A room made by a client lasts, with its history.
		await b.join(room)
		m = await b.say(room, "room made again")
		check_eq(m["seq"], 6, "seq of a room that lasted")
		got = await history(b, room)
		check_eq(seqs(got), list(range(1, 7)), "history of that room")
		await s.astop()
		con = sqlite3.connect(d.db())
		try:
			mode = con.execute("PRAGMA journal_mode").fetchone()[0]
			n = con.execute("SELECT count(*) FROM messages").fetchone()[0]
		finally:
			con.close()
		check_eq(mode, "wal", "journal mode")
		check_eq(n, 47, "rows in the database")


def db_value(path, sql):
	"""The first column of the first row sql gives on the database."""
	con = sqlite3.connect(path)
	try:
		return con.execute(sql).fetchone()[0]
	finally:
		con.close()


def rows_on_disk(path):
	return db_value(path, "SELECT count(*) FROM messages")


@case(timeout=60)
async def test_history_paging(t):
	db_plugin = sqlite_plugin()
	with StateDir() as d:
		s = start(t, [db_plugin], {"history-sqlite": {"path": d.db()}})
		a = await t.named("pager", s)
		await a.join("general")
		await say_many(a, "general", ["m%d" % i for i in range(1, 201)])
		await a.close()
		await s.astop()
		check_eq(rows_on_disk(d.db()), 200, "rows after a stop")
		# A flush interval longer than the case: what is sent now stays
		# in memory, so reads must merge it with the database.
		s = start(t, [db_plugin], {"history-sqlite": {"path": d.db(),
		    "flush_interval_ms": 60000}})
		a = await t.named("pager", s)
		await a.join("general")
		await say_many(a, "general", ["m%d" % i for i in range(201, 261)])
		check_eq(rows_on_disk(d.db()), 200, "rows while 60 wait")

		got = await history(a, "general")
		check_eq(seqs(got), list(range(211, 261)), "default limit 50")
		got = await history(a, "general", limit=100)
		check_eq(seqs(got), list(range(161, 261)), "disk and memory")
		check_eq([m["message"] for m in got],
		    ["m%d" % i for i in range(161, 261)], "texts")
		pages, before = [], None
		while True:
			page = await history(a, "general", before=before, limit=70)
			if not page:
				break
			check(len(page) <= 70, "page too long")
			pages = page + pages
			before = page[0]["seq"]
		check_eq(seqs(pages), list(range(1, 261)), "paging with before")
		got = await history(a, "general", before=230, limit=40)
		check_eq(seqs(got), list(range(190, 230)), "before in memory")
		got = await history(a, "general", before=201, limit=10)
		check_eq(seqs(got), list(range(191, 201)), "before at the edge")
		got = await history(a, "general", before=5, limit=500)
		check_eq(seqs(got), [1, 2, 3, 4], "before 5")
		check_eq(await history(a, "general", before=1), [], "before 1")
		got = await history(a, "general", limit=1000)
		check_eq(len(got), 260, "limit capped at 500, 260 there")
		check_eq(await history(a, "general", limit=0), [], "limit 0")
		await a.close()
		await s.astop()
		check_eq(rows_on_disk(d.db()), 260, "stop flushed the rest")


@case(timeout=60)
async def test_history_retention(t):
	db_plugin = sqlite_plugin()
	with StateDir() as d:
		# An old database: general's messages are 400 days old, and
		# "quiet" has only old ones; the rooms table keeps their seqs.
		con = sqlite3.connect(d.db())
		con.executescript("""
		    CREATE TABLE messages (room TEXT NOT NULL,
		      seq INTEGER NOT NULL, ts INTEGER NOT NULL,
		      sender TEXT NOT NULL, text TEXT NOT NULL,
		      action INTEGER NOT NULL DEFAULT 0,
		      PRIMARY KEY (room, seq));
		    CREATE TABLE rooms (room TEXT PRIMARY KEY NOT NULL,
		      last_seq INTEGER NOT NULL);
		    PRAGMA user_version = 1;""")
		old = int(time.time() * 1000) - 400 * 86400 * 1000
		new = int(time.time() * 1000) - 3600 * 1000
		rows = [("general", i, old, "ancient", "old %d" % i, 0)
		    for i in range(1, 11)]
		rows += [("general", i, new, "recent", "new %d" % i, 0)
		    for i in range(11, 16)]
		rows += [("quiet", i, old, "ancient", "q %d" % i, 1)
		    for i in range(1, 4)]
		con.executemany("INSERT INTO messages VALUES (?,?,?,?,?,?)", rows)
		con.executemany("INSERT INTO rooms VALUES (?,?)",
		    [("general", 15), ("quiet", 3)])
		con.commit()
		con.close()

		s = start(t, [db_plugin], {"history-sqlite": {"path": d.db(),
		    "retention_days": 30, "retention_count": 8}},
		    {"rooms": ["general", "quiet"]})
		a = await t.named("keeper", s)
		await a.join("general")
		deadline = time.monotonic() + scaled(5)
		while True:
			got = await history(a, "general")
			if seqs(got) == list(range(11, 16)) or \
			    time.monotonic() > deadline:
				break
			await asyncio.sleep(0.1)
		check_eq(seqs(got), list(range(11, 16)), "older than 30 days "
		    "gone")
		check_eq(await history(a, "quiet"), [], "quiet expired")
		await a.join("quiet")
		m = await a.say("quiet", "still counting")
		check_eq(m["seq"], 4, "seq of an expired room goes on")
		# Count retention: 8 per room.
		await say_many(a, "general", ["n%d" % i for i in range(16, 31)])
		deadline = time.monotonic() + scaled(5)
		while True:
			con = sqlite3.connect(d.db())
			try:
				kept = [r[0] for r in con.execute("SELECT seq FROM "
				    "messages WHERE room = 'general' ORDER BY seq")]
			finally:
				con.close()
			if kept == list(range(23, 31)) or \
			    time.monotonic() > deadline:
				break
			await asyncio.sleep(0.1)
		check_eq(kept, list(range(23, 31)), "newest 8 kept on disk")
		got = await history(a, "general", limit=100)
		check_eq(seqs(got), list(range(23, 31)), "history keeps 8")


@case(timeout=30)
async def test_history_bad_path(t):
	db_plugin = sqlite_plugin()
	with StateDir() as d:
		path = os.path.join(d.path, "no", "such", "dir", "history.db")
		conf = os.path.join(d.path, "parley.conf")
		with open(conf, "w") as f:
			f.write(plugin_config([db_plugin],
			    {"history-sqlite": {"path": path}}))
		p = run_daemon(["--config", conf, "--port", "0"])
		check(p.returncode not in (0, None), "server started with an "
		    "unusable database path")
		check("cannot open %s" % path in p.stderr and
		    "init failed" in p.stderr, "stderr says why:\n" + p.stderr)


# ---------------------------------------------------------------------------
# The example plugin

@case(timeout=30)
async def test_example_plugin(t):
	s = start(t, [example_plugin()], {"example": {"max_dice": 5}})
	a = await t.named("roller", s)
	b = await t.named("watcher", s)
	await a.join("general")
	await b.join("general")
	await b.recv("joined_room", pred=lambda m: m["username"] == a.username
	    or len(m["participants"]) == 2)
	await a.send({"type": "send_message", "roomName": "general",
	    "message": "/roll 3d6"})
	for c in (a, b):
		n = await c.recv("notice", pred=lambda m: "rolls" in
		    m["message"])
		m = re.match(r"^(.*) rolls 3d6: (\d+) (\d+) (\d+) = (\d+)$",
		    n["message"])
		check(m is not None, "roll notice: %r" % n)
		check_eq(m.group(1), a.username, "who rolled")
		dice = [int(m.group(i)) for i in (2, 3, 4)]
		check(all(1 <= x <= 6 for x in dice), "dice %r" % dice)
		check_eq(int(m.group(5)), sum(dice), "total")
		check_eq(n.get("roomName"), "general", "notice room")
	r = await a.request({"type": "send_message", "roomName": "general",
	    "message": "/roll 9d6"})
	check_eq(r["type"], "notice", "usage reply carries the id")
	check("usage: /roll" in r["message"] and "1 to 5" in r["message"],
	    "usage names the max_dice option: %r" % r)
	await a.send({"type": "send_message", "roomName": "general",
	    "message": "well :shrug: then"})
	m = await b.recv("new_message")
	check_eq(m["message"], "well \u00af\\_(\u30c4)_/\u00af then",
	    "hook rewrote the message")
	r = await a.expect_error({"type": "send_message", "roomName":
	    "general", "message": "STOP SHOUTING AT ME"}, "rejected")
	check_eq(r["message"], "please do not shout", "deny reason")
	await a.expect_error({"type": "send_message", "roomName": "general",
	    "message": "/nosuchcommand"}, "unknown_command")


# ---------------------------------------------------------------------------
# Every verdict and the host table

async def msg_verdict(c, text):
	return await c.request({"type": "send_message", "roomName": "general",
	    "message": text})


@case(timeout=40)
async def test_verdicts(t):
	s = start(t, [test_plugin("verdicts")])
	a = await t.named("va", s)
	b = await t.named("vb", s)
	await a.join("general")
	await b.join("general")

	r = await a.expect_error({"type": "send_message", "roomName":
	    "general", "message": "deny:spam"}, "rejected")
	check_eq(r["message"], "denied spam", "deny reason")
	await a.expect_error({"type": "send_message", "roomName": "general",
	    "message": "forbid:x"}, "forbidden")
	await a.expect_error({"type": "send_message", "roomName": "general",
	    "message": "badmod:x"}, "internal")

	async def delivered(text, want):
		await a.send({"type": "send_message", "roomName": "general",
		    "message": text})
		m = await b.recv("new_message")
		check_eq(m["message"], want, "what %r became" % text)

	await delivered("modify:abc", "modified abc")
	await delivered("stop:abc", "stop:abc")  # the late hook skipped
	await delivered("late:abc", "late:abc [late]")
	await delivered("weird:abc", "weird:abc")  # unknown verdict: PASS
	await delivered("plain", "plain")
	# DROP: accepted, nothing posted, no error.
	await a.send({"type": "send_message", "roomName": "general",
	    "message": "drop:abc", "id": 99})
	await a.sync()
	await b.sync()
	check_eq([m for m in a.pending + b.pending if m.get("id") == 99 or
	    m.get("message") == "drop:abc"], [], "a dropped message")
	await delivered("after drop", "after drop")

	# username: DENY with a code, MODIFY.
	r = await a.expect_error({"type": "set_username",
	    "username": "deny-me"}, "invalid_name")
	check("deny-" in r["message"], "username deny reason: %r" % r)
	r = await a.expect({"type": "set_username", "username": "alias-x1"},
	    "username_set")
	check_eq(r["username"], "aliased-x1", "username modified")
	a.username = "aliased-x1"
	# create_room: DENY (default code), DROP.
	r = await a.expect_error({"type": "create_room",
	    "roomName": "deny-room"}, "rejected")
	check_eq(r["message"], "no rooms called deny-", "create deny reason")
	await a.send({"type": "create_room", "roomName": "drop-room",
	    "id": 7})
	await a.sync()
	check_eq(a.take(pred=lambda m: m.get("id") == 7), [],
	    "no reply to a dropped create_room")
	r = await a.expect({"type": "list_rooms"}, "rooms")
	check("drop-room" not in [x["roomName"] for x in r["rooms"]],
	    "dropped room not created")
	# join: DENY with forbidden.
	await a.create("locked")
	r = await b.expect_error({"type": "join_room", "roomName": "locked"},
	    "forbidden")
	check_eq(r["message"], "the room is locked", "join deny reason")
	# leave: the hook sees the client after it left.
	await a.expect({"type": "leave_room", "roomName": "locked"},
	    "room_left")
	await b.expect({"type": "leave_room", "roomName": "general"},
	    "room_left")
	n = await a.recv("notice", pred=lambda m: m["message"].startswith(
	    "vt: "))
	check_eq(n["message"], "vt: %s left (left)" % b.username, "leave hook")
	await b.join("general")

	# connect: DENY refuses before the upgrade (403, protocol 1.1).
	r = await a.request({"type": "send_message", "roomName": "general",
	    "message": "/vt-gate close"})
	check_eq(r["message"], "gate closed", "gate reply")
	r = await http_get(s, "/ws", headers={"Upgrade": "websocket",
	    "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
	    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
	check_eq(r.status, 403, "a refused connection never upgrades")
	await msg_verdict(a, "/vt-gate open")
	again = await t.client(s, label="welcome again")
	await again.close()  # a disconnect for the hook below

	# start, tick, disconnect.
	await asyncio.sleep(scaled(1.2))
	r = await msg_verdict(a, "/vt-stats")
	m = re.match(r"ticks=(\d+) starts=(\d+) stops=(\d+) leaves=(\d+) "
	    r"disconnects=(\d+)", r["message"])
	check(m is not None, "stats: %r" % r)
	check(int(m.group(1)) >= 1, "tick hook ran: %r" % r["message"])
	check_eq(int(m.group(2)), 1, "start hook ran once")
	check_eq(int(m.group(3)), 0, "stop hook not yet")
	check(int(m.group(5)) >= 1, "disconnect hook ran: %r" % r["message"])


@case(timeout=40)
async def test_host_table(t):
	s = start(t, [test_plugin("verdicts")],
	    {"verdicts": {"answer": 42, "list": [1, "two"]}})
	a = await t.named("ha", s)
	b = await t.named("hb", s)
	await a.join("general")
	await b.join("general")

	r = await msg_verdict(a, "/vt-options")
	opts = json.loads(r["message"])
	# The host adds the state directory to every plugin's options.
	check(isinstance(opts.pop("state_dir", None), str), "state_dir given")
	check_eq(opts, {"answer": 42, "list": [1, "two"]}, "options")
	r = await msg_verdict(a, "/vt-members")
	check_eq(r["message"], "members:%s,%s" % (a.username, b.username),
	    "room_members in join order")
	await a.send({"type": "send_message", "roomName": "general",
	    "message": "/vt-post hello from the bot"})
	for c in (a, b):
		m = await c.recv("new_message")
		check_eq((m["sender"], m["message"]), ("vt-bot",
		    "hello from the bot"), "room_post")
	await a.send({"type": "send_message", "roomName": "general",
	    "message": "/vt-json"})
	m = await a.recv("vt_custom")
	check_eq(m["n"], 7, "client_send_json")
	await a.expect_error({"type": "send_message", "roomName": "general",
	    "message": "/vt-json bad"}, "bad_request")
	await a.send({"type": "send_message", "roomName": "general",
	    "message": "/vt-json room"})
	for c in (a, b):
		await c.recv("vt_custom")
	await a.expect_error({"type": "send_message", "roomName": "general",
	    "message": "/vt-error"}, "rate_limited")
	r = await msg_verdict(a, "/vt-mkroom plugin-room")
	check_eq(r["message"], "room made", "room_create")
	await b.recv("room_created", pred=lambda m: m["roomName"] ==
	    "plugin-room")
	await a.expect_error({"type": "send_message", "roomName": "general",
	    "message": "/vt-mkroom plugin-room"}, "room_exists")
	name = uniq("renamed")
	await a.send({"type": "send_message", "roomName": "general",
	    "message": "/vt-rename " + name})
	m = await b.recv("user_renamed")
	check_eq((m["oldUsername"], m["username"]), (a.username, name),
	    "client_rename")
	await a.recv("username_set")
	a.username = name
	await a.expect_error({"type": "send_message", "roomName": "general",
	    "message": "/vt-rename " + b.username}, "name_taken")
	await a.send({"type": "send_message", "roomName": "general",
	    "message": "/vt-timer"})
	n = await a.recv("notice", pred=lambda m: m["message"] ==
	    "vt: timer fired")
	check("roomName" not in n, "client_notice without a room")
	await a.send({"type": "send_message", "roomName": "general",
	    "message": "/vt-kick " + b.username})
	k = await b.recv("kicked")
	check_eq((k["roomName"], k["reason"]), ("general", "kicked by vt"),
	    "client_kick")
	m = await a.recv("user_left", pred=lambda m: m["username"] ==
	    b.username)
	check_eq(m["reason"], "kicked", "user_left reason")
	await a.send({"type": "send_message", "roomName": "general",
	    "message": "/vt-disconnect"})
	code = await a.wait_closed()
	check_eq(code, 1008, "client_disconnect closes with 1008")


@case(timeout=30)
async def test_metrics_counters(t):
	s = start(t, [test_plugin("verdicts"), example_plugin()],
	    extra={"admin_listen": "127.0.0.1:0"})
	m = re.search(r"admin listening on http://127\.0\.0\.1:(\d+)/",
	    s.stdout())
	if m is None:
		raise Skip("no admin listener line (admin_listen unsupported?)")
	a = await t.named("counted", s)
	await a.join("general")
	await a.say("general", "one")
	await a.say("general", "two")
	c = await t.client(s, label="gone")
	await c.close()

	class Admin:
		port = int(m.group(1))
	deadline = time.monotonic() + scaled(5)
	while True:
		r = await http_get(Admin, "/metrics")
		body = r.body.decode()
		if 'plugin="verdicts",name="disconnects"' in body or \
		    time.monotonic() > deadline:
			break
		await asyncio.sleep(0.1)
	check_eq(r.status, 200, "/metrics status")
	check('parley_plugin_value{plugin="example",'
	    'name="messages_seen"} 2' in body, "example's counter:\n" +
	    "\n".join(x for x in body.splitlines() if "plugin" in x))
	check('parley_plugin_value{plugin="verdicts",name="disconnects"} 1'
	    in body, "verdicts' counter")


@case(timeout=30)
async def test_typed_metrics(t):
	# ABI 1.3: a counter and a gauge with help text and labels; labels in
	# either order are one series; values are escaped
	s = start(t, [test_plugin("metrics"), test_plugin("verdicts")])
	a = await t.named("typed", s)
	await a.join("general")
	for text in ("hello there", "hello again", "hi", "hello", "hi you"):
		await a.say("general", text)
	r = await http_get(s, "/metrics")
	check_eq(r.status, 200, "/metrics status")
	body = r.body.decode()
	lines = [x for x in body.splitlines() if "parley_plugin_" in x]
	shown = "\n".join(lines)
	for want in (
	    "# HELP parley_plugin_messages_total chat messages by first word "
	    "\\\\ kind",
	    "# TYPE parley_plugin_messages_total counter",
	    'parley_plugin_messages_total{plugin="metrics",kind="chat",'
	    'word="hello"} 3',
	    'parley_plugin_messages_total{plugin="metrics",kind="chat",'
	    'word="hi"} 2',
	    'parley_plugin_messages_total{plugin="metrics",kind="odd",'
	    'word="say \\"hi\\"\\\\\\n"} 2',
	    "# HELP parley_plugin_last_length bytes of the last message",
	    "# TYPE parley_plugin_last_length gauge",
	    'parley_plugin_last_length{plugin="metrics"} 6',
	    'parley_plugin_value{plugin="metrics",name="refusals_wrong"} 0'):
		check(want in lines, "want %r in:\n%s" % (want, shown))
	# (test_metrics.py runs promtool over this)


# ---------------------------------------------------------------------------
# A plugin and a Lua script on one event

ORDER_SCRIPT = """
-- Appends " [script]" to messages starting with "order:".
parley.on("message", function(user, room, text)
  if text:sub(1, 6) == "order:" then
    return text .. " [script]"
  end
end, %d)
"""


def scripts_supported(d):
	conf = os.path.join(d, "probe.conf")
	with open(conf, "w") as f:
		f.write('scripts = {}\nscript_dirs = {}\n')
	p = run_daemon(["--config", conf, "--check-config"])
	return p.returncode == 0


@case(timeout=40)
async def test_order_with_script(t):
	order = test_plugin("order")
	with StateDir() as d:
		if not scripts_supported(d.path):
			raise Skip("this parleyd has no `scripts` option yet")
		results = []
		for plugin_prio, script_prio in ((10, 5), (5, 10)):
			name = "order%d" % plugin_prio
			with open(os.path.join(d.path, name + ".lua"), "w") as f:
				f.write(ORDER_SCRIPT % script_prio)
			s = start(t, [order], {"order": {"priority": plugin_prio}},
			    {"scripts": [name], "script_dirs": [d.path]})
			a = await t.named("order", s)
			await a.join("general")
			await a.send({"type": "send_message", "roomName": "general",
			    "message": "order: x"})
			m = await a.recv("new_message")
			results.append(m["message"])
			await a.close()
			await s.astop()
		check_eq(results, ["order: x [plugin] [script]",
		    "order: x [script] [plugin]"], "hook order by priority")


# ---------------------------------------------------------------------------
# Loading: what is refused, --plugin-info

def daemon_with(plugins, d, options=None):
	conf = os.path.join(d, "parley.conf")
	with open(conf, "w") as f:
		f.write(plugin_config(plugins, options))
	return run_daemon(["--config", conf, "--port", "0"])


@case(timeout=60)
async def test_refused_plugins(t):
	verdicts = test_plugin("verdicts")
	cases = [
		(["/nonexistent/dir/x.so"], "cannot load it:"),
		(["no-such-plugin"], "no file no-such-plugin.so in"),
		([test_plugin("no-symbol")], "exports no symbol parley_plugin: "
		    "not a parley plugin"),
		([test_plugin("bad-abi")], "was built for plugin ABI 99.0; "
		    "this server has ABI 1."),
		([test_plugin("small-desc")], "its descriptor is 16 bytes, "
		    "less than the"),
		([test_plugin("fail-init")], "init failed (returned 7)"),
		([verdicts, test_plugin("fail-init")], "init failed"),
	]
	with StateDir() as d:
		# The same plugin under another file name.
		twin = os.path.join(d.path, "twin.so")
		shutil.copy(verdicts, twin)
		cases.append(([verdicts, twin], "a plugin named verdicts is "
		    "loaded already"))
		for plugins, why in cases:
			p = daemon_with(plugins, d.path)
			what = "plugins %r" % [os.path.basename(x) for x in plugins]
			check(p.returncode not in (0, None) and p.returncode != 99,
			    "%s: exit %s, want a failure" % (what, p.returncode))
			check(why in p.stderr and "refusing plugin" in p.stderr,
			    "%s: stderr lacks %r:\n%s" % (what, why, p.stderr))
			check("listening on" not in p.stdout, "%s: it listened" %
			    what)
		p = daemon_with([test_plugin("fail-init")], d.path)
		check("deliberate failure for the tests" in p.stderr and
		    "plugin:fail-init" in p.stderr, "the plugin's own log line:\n"
		    + p.stderr)
		check("bad-abi init ran" not in daemon_with(
		    [test_plugin("bad-abi")], d.path).stderr,
		    "init of a wrong-ABI plugin ran")


@case(timeout=30)
async def test_plugin_config(t):
	cases = [
		('plugin_options = 5', "option 'plugin_options' must be a table"),
		('plugin_options = { x = { f = function() end } }',
		    "holds a value that is not a string, number, boolean or "
		    "table"),
		('plugin_options = { x = { 1, a = 2 } }',
		    "mixes list items and named fields"),
		('plugin_options = { x = { [2] = 1 } }', "has a list with holes"),
		('plugin_options = { x = { y = 0/0 } }',
		    "holds a number that is not finite"),
		('plugin_options = { x = { y = "\\xff" } }',
		    "holds a string that is not UTF-8"),
		('plugins = { 7 }', "option 'plugins' must be a list of strings"),
		('plugin_dir = {}', "option 'plugin_dir' must be a string"),
		('plugins = { "a", "a" }', "lists 'a' twice"),
	]
	with StateDir() as d:
		conf = os.path.join(d.path, "parley.conf")
		for text, why in cases:
			with open(conf, "w") as f:
				f.write("-- plugin options\n" + text + "\n")
			p = run_daemon(["--config", conf, "--check-config"])
			check(p.returncode == 1 and "parley.conf:2: " in p.stderr
			    and why in p.stderr, "%s: %d, want %r:\n%s" % (text,
			    p.returncode, why, p.stderr))
		with open(conf, "w") as f:
			f.write('plugins = { "example" }\nplugin_options = { '
			    '["history-sqlite"] = { path = "/x", retention_days = '
			    '1.5, list = { "a", 2, true, { deep = {} } } }, '
			    'example = {} }\n')
		p = run_daemon(["--config", conf, "--check-config"])
		check_eq(p.returncode, 0, "good options: " + p.stderr)


@case(timeout=30)
async def test_plugin_info(t):
	p = run_daemon(["--plugin-info", test_plugin("verdicts")])
	check_eq(p.returncode, 0, "exit status; stderr:\n" + p.stderr)
	out = p.stdout
	# The plugin was built against this tree's header: its ABI is the
	# server's, whatever minor number that is now.
	with open(os.path.join(SRC, "include", "parley", "plugin.h")) as f:
		minor = re.search(r"#define PARLEY_PLUGIN_ABI_MINOR (\d+)",
		    f.read()).group(1)
	abi = "abi: 1.%s (this server: 1.%s)" % (minor, minor)
	for want in (abi, "name: verdicts",
	    "version: 1.0", "init: ok", "hook: message priority 0",
	    "hook: message priority -100", "hook: connect priority 0",
	    "hook: tick priority 0", "command: /vt-stats",
	    "history store: no"):
		check(want in out, "--plugin-info lacks %r:\n%s" % (want, out))
	check("hook: message priority 0\nhook: message priority -100" in out,
	    "hooks in registration order:\n" + out)
	p = run_daemon(["--plugin-info", example_plugin()])
	check_eq(p.returncode, 0, "example: exit status")
	check("command: /roll (usage: /roll [NdM])" in p.stdout,
	    "example's command:\n" + p.stdout)
	# By name, from the build tree's plugins.
	p = run_daemon(["--plugin-info", "example"])
	check_eq(p.returncode, 0, "by name: exit status; " + p.stderr)
	check("name: example" in p.stdout, "by name:\n" + p.stdout)
	try:
		db = sqlite_plugin()
	except Skip:
		db = None
	if db is not None:
		with StateDir() as d:
			p = run_daemon(["--plugin-info", db])
			check_eq(p.returncode, 0, "history-sqlite: " + p.stderr)
			check("history store: yes" in p.stdout and
			    "timer: every 1000 ms" in p.stdout,
			    "history-sqlite info:\n" + p.stdout)
	for bad, why in ((test_plugin("bad-abi"), "ABI 99.0"),
	    (test_plugin("fail-init"), "init failed")):
		p = run_daemon(["--plugin-info", bad])
		check(p.returncode == 1 and why in p.stderr,
		    "--plugin-info %s: %d\n%s" % (bad, p.returncode, p.stderr))


if __name__ == "__main__":
	suite.main()
