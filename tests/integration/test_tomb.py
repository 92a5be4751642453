#!/usr/bin/python3
#
# test_tomb.py: a deleted message leaves every history store (protocol
# 1.1, "Rooms that last", delete_message). After delete_message the text
# is gone, not only hidden: from the in-memory ring's history answer,
# from history-sqlite's database file and its WAL (the bytes are read and
# searched for a marker no other text holds), from the queue of
# history-sqlite when it was not written yet, and from the cluster's
# history in Redis; the seq stays, deleted: true, on every server.

import asyncio
import json
import os
import random
import shutil
import socket
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Suite, TestFailure, check, check_eq, scaled,  # noqa
    uniq)

suite = Suite("tomb")
case = suite.case


def marker(what):
	"""A text found nowhere else: what the files are searched for."""
	return "%s-%08x%08x" % (what, random.getrandbits(32),
	    random.getrandbits(32))


async def history(c, room):
	r = await c.expect({"type": "history", "roomName": room}, "history")
	return r["messages"]


async def delete(c, room, seq):
	await c.send({"type": "delete_message", "roomName": room, "seq": seq})
	r = await c.recv("message_deleted", pred=lambda m:
	    m.get("roomName") == room and m.get("seq") == seq)
	return r


def check_tombstone(msgs, seq, gone, what):
	"""msgs holds seq as a tombstone, and gone appears nowhere."""
	mine = [m for m in msgs if m.get("seq") == seq]
	check(len(mine) == 1 and mine[0].get("deleted") is True and
	    "message" not in mine[0], "%s: tombstone of %d: %r" % (what, seq,
	    mine))
	check(gone not in json.dumps(msgs), "%s: the deleted text shows: %r" %
	    (what, msgs))


def file_bytes(path):
	try:
		with open(path, "rb") as f:
			return f.read()
	except FileNotFoundError:
		return b""


def on_disk(db, text):
	"""Where text is in the database and its WAL (a list of files)."""
	t = text.encode()
	return [p for p in (db, db + "-wal") if t in file_bytes(p)]


async def wait_gone(db, text, timeout=5):
	deadline = time.monotonic() + scaled(timeout)
	while True:
		where = on_disk(db, text)
		if not where or time.monotonic() > deadline:
			return where
		await asyncio.sleep(0.1)


@case(config={})
async def test_ring(t):
	"""The built-in ring drops the text; the seq stays, for everyone."""
	room = uniq("ring")
	a = await t.client(label="a")
	b = await t.client(label="b")
	await a.create(room)
	await b.join(room)
	keep, gone = marker("kept"), marker("gone")
	await a.say(room, keep)
	m = await a.say(room, gone)
	await a.say(room, "after")
	d = await delete(a, room, m["seq"])
	check_eq(d.get("username"), a.username, "message_deleted.username")
	await b.recv("message_deleted", pred=lambda x: x["seq"] == m["seq"])
	for c in (a, b):
		h = await history(c, room)
		check_tombstone(h, m["seq"], gone, c.label)
		check_eq([x.get("message") for x in h], [keep, None, "after"],
		    "%s: the others stay" % c.label)
	# twice is fine, an unknown seq is not
	await delete(a, room, m["seq"])
	await a.expect_error({"type": "delete_message", "roomName": room,
	    "seq": m["seq"] + 100}, "message_not_found")


def sqlite_config(state, **opts):
	o = {"path": os.path.join(state, "history.db")}
	o.update(opts)
	return {"state_dir": state, "plugins": ["history-sqlite"],
	    "plugin_options": {"history-sqlite": o}}


@case(timeout=60)
async def test_sqlite_written(t):
	"""A message on disk: its row loses the text, and neither the
	database file nor its WAL holds it any more (secure_delete zeroes
	the old record, the WAL is checkpointed and truncated), while the
	server runs and after a kill -9 and a restart."""
	state = tempfile.mkdtemp(prefix="parley-tomb-")
	db = os.path.join(state, "history.db")
	try:
		cfg = sqlite_config(state, flush_interval_ms=20)
		s = t.start_server(cfg)
		room = uniq("disk")
		a = await t.client(s, label="a")
		await a.create(room)
		keep, gone = marker("kept"), marker("gone")
		await a.say(room, keep)
		# long: the shorter record that replaces it in the page does
		# not happen to cover where the marker was
		m = await a.say(room, gone + " and more" * 40)
		await a.say(room, "after")
		# written: the test can find it where it is
		deadline = time.monotonic() + scaled(5)
		while not on_disk(db, gone) and time.monotonic() < deadline:
			await asyncio.sleep(0.05)
		check(on_disk(db, gone), "the message reached the disk")
		await delete(a, room, m["seq"])
		where = await wait_gone(db, gone)
		check(not where, "the deleted text is still in %r" % where)
		check(on_disk(db, keep), "the other messages stay on disk")
		check_tombstone(await history(a, room), m["seq"], gone, "a")
		con = sqlite3.connect(db)
		row = con.execute("SELECT text, action FROM messages WHERE seq "
		    "= ? AND room LIKE ?", (m["seq"], room + "%")).fetchone()
		con.close()
		check_eq(row, ("", 2), "the row: no text, the deleted flag")
		s.kill()
		s = t.start_server(cfg)
		c = await t.client(s, label="c")
		await c.join(room)
		h = await history(c, room)
		check_tombstone(h, m["seq"], gone, "after a restart")
		check_eq([x.get("message") for x in h], [keep, None, "after"],
		    "history after a restart")
		check(not on_disk(db, gone), "after a restart: %r" %
		    on_disk(db, gone))
		# one in the database file itself (checkpointed from the
		# outside) before it is deleted
		old = marker("old")
		m = await c.say(room, old + " and more" * 40)
		deadline = time.monotonic() + scaled(5)
		while old.encode() not in file_bytes(db) and \
		    time.monotonic() < deadline:
			await asyncio.sleep(0.05)
			con = sqlite3.connect(db)
			con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
			con.close()
		check(old.encode() in file_bytes(db), "in the database file")
		await delete(c, room, m["seq"])
		where = await wait_gone(db, old)
		check(not where, "the older text is still in %r" % where)
		await s.astop()
		check(not on_disk(db, gone) and not on_disk(db, old),
		    "after a stop: %r" % on_disk(db, gone))
	finally:
		shutil.rmtree(state, ignore_errors=True)


@case(timeout=60)
async def test_sqlite_queued(t):
	"""A message deleted while it waits in the write queue is written
	as a tombstone: its text never reaches the disk."""
	state = tempfile.mkdtemp(prefix="parley-tomb-")
	db = os.path.join(state, "history.db")
	try:
		cfg = sqlite_config(state, flush_interval_ms=60000)
		s = t.start_server(cfg)
		room = uniq("queue")
		a = await t.client(s, label="a")
		await a.create(room)
		keep = marker("kept")
		# the room's first message has its seqs reserved (a write);
		# what follows waits for the flush interval
		await a.say(room, "first")
		await asyncio.sleep(0.3)
		gone = marker("gone")
		m = await a.say(room, gone)
		await a.say(room, keep)
		await delete(a, room, m["seq"])
		h = await history(a, room)
		check_tombstone(h, m["seq"], gone, "queued")
		check_eq([x.get("message") for x in h], ["first", None, keep],
		    "history from the queue")
		await s.astop()  # writes the queue
		check(keep.encode() in file_bytes(db), "the queue was written")
		check(not on_disk(db, gone), "the deleted text is in %r" %
		    on_disk(db, gone))
		s = t.start_server(cfg)
		c = await t.client(s, label="c")
		await c.join(room)
		h = await history(c, room)
		check_tombstone(h, m["seq"], gone, "after a restart")
		await s.astop()
	finally:
		shutil.rmtree(state, ignore_errors=True)


@case(timeout=60)
async def test_sqlite_crash(t):
	"""kill -9 after the delete reached the state store but before
	history-sqlite overwrote the row: the restarted server makes the
	tombstone again, and the text leaves the disk."""
	state = tempfile.mkdtemp(prefix="parley-tomb-")
	db = os.path.join(state, "history.db")
	try:
		cfg = sqlite_config(state, flush_interval_ms=3000)
		s = t.start_server(cfg)
		room = uniq("crash")
		a = await t.client(s, label="a")
		await a.create(room)
		gone = marker("gone")
		# the room's first message is written at once (with its
		# seqs' reservation)
		m = await a.say(room, gone + " and more" * 40)
		deadline = time.monotonic() + scaled(5)
		while not on_disk(db, gone) and time.monotonic() < deadline:
			await asyncio.sleep(0.05)
		check(on_disk(db, gone), "the message reached the disk")
		await delete(a, room, m["seq"])
		await asyncio.sleep(0.3)  # the state store's flush, not ours
		s.kill()
		check(on_disk(db, gone), "the crash came before the overwrite")
		s = t.start_server(cfg)
		where = await wait_gone(db, gone, timeout=8)
		check(not where, "the deleted text is still in %r" % where)
		c = await t.client(s, label="c")
		await c.join(room)
		check_tombstone(await history(c, room), m["seq"], gone,
		    "after the crash")
		await s.astop()
	finally:
		shutil.rmtree(state, ignore_errors=True)


def resp(port, *args):
	"""One command in Redis's protocol; the reply, parsed."""
	out = b"*%d\r\n" % len(args)
	for a in args:
		a = a.encode() if isinstance(a, str) else a
		out += b"$%d\r\n%s\r\n" % (len(a), a)
	with socket.create_connection(("127.0.0.1", port), 2) as s:
		s.sendall(out)
		f = s.makefile("rb")

		def read():
			line = f.readline().rstrip(b"\r\n")
			kind, rest = line[:1], line[1:]
			if kind in (b"+", b"-"):
				return rest
			if kind == b":":
				return int(rest)
			if kind == b"$":
				n = int(rest)
				if n < 0:
					return None
				data = f.read(n + 2)[:n]
				return data
			if kind == b"*":
				return [read() for _ in range(int(rest))]
			raise TestFailure("redis: %r" % line)
		return read()


@case(timeout=60)
async def test_redis(t):
	"""With the redis plugin: the entry in the cluster's history is
	replaced by its tombstone, and both servers answer deleted: true."""
	from test_redis import Redis, cluster_config, wait_up
	redis = Redis().start()
	try:
		prefix = "t%d:" % random.randrange(1 << 30)
		a = t.start_server(cluster_config(redis, prefix))
		b = t.start_server(cluster_config(redis, prefix))
		await wait_up(a)
		await wait_up(b)
		room = uniq("cluster")
		ca = await t.client(a, label="ca")
		cb = await t.client(b, label="cb")
		await ca.create(room)
		await cb.recv("room_created", pred=lambda m:
		    m["roomName"] == room, timeout=5)
		await cb.join(room)
		keep, gone = marker("kept"), marker("gone")
		await cb.say(room, keep)
		m = await cb.say(room, gone)
		await ca.recv("new_message", pred=lambda x:
		    x.get("message") == gone, timeout=5)
		key = prefix + "history:" + room
		entries = resp(redis.port, "ZRANGE", key, "0", "-1")
		check(any(gone.encode() in e for e in entries),
		    "the message is in Redis: %r" % entries)
		await delete(ca, room, m["seq"])
		deadline = time.monotonic() + scaled(5)
		while True:
			entries = resp(redis.port, "ZRANGE", key, "0", "-1")
			if not any(gone.encode() in e for e in entries) or \
			    time.monotonic() > deadline:
				break
			await asyncio.sleep(0.05)
		check(not any(gone.encode() in e for e in entries),
		    "the deleted text is still in Redis: %r" % entries)
		check(any(keep.encode() in e for e in entries), "the other "
		    "message stays")
		tomb = resp(redis.port, "ZRANGEBYSCORE", key, str(m["seq"]),
		    str(m["seq"]))
		check(len(tomb) == 1 and b'"d":true' in tomb[0],
		    "a tombstone in its place: %r" % tomb)
		for c in (ca, cb):
			h = await history(c, room)
			check_tombstone(h, m["seq"], gone, c.label)
			check(keep in [x.get("message") for x in h],
			    "%s: the other message" % c.label)
	finally:
		redis.cleanup()


@case(timeout=60)
async def test_redis_sqlite(t):
	"""Each server keeps history in its own SQLite database, the
	cluster shares the tombstones: a message deleted on one server
	leaves the other's database too."""
	from test_redis import Redis, cluster_config, plugin_path, wait_up
	redis = Redis().start()
	try:
		prefix = "t%d:" % random.randrange(1 << 30)
		servers = []
		for _ in range(2):
			cfg = cluster_config(redis, prefix)
			cfg["plugins"] = ["history-sqlite", plugin_path()]
			cfg["plugin_options"]["redis"]["history_store"] = False
			cfg["plugin_options"]["history-sqlite"] = {
			    "flush_interval_ms": 20}
			servers.append(t.start_server(cfg))
		a, b = servers
		for s in servers:
			await wait_up(s)
		dbs = [os.path.join(s.config["state_dir"], "history.db")
		    for s in servers]
		room = uniq("both")
		ca = await t.client(a, label="ca")
		cb = await t.client(b, label="cb")
		await ca.create(room)
		await cb.recv("room_created", pred=lambda m:
		    m["roomName"] == room, timeout=5)
		await cb.join(room)
		gone = marker("gone")
		m = await cb.say(room, gone + " and more" * 40)
		await ca.recv("new_message", pred=lambda x:
		    x.get("message", "").startswith(gone), timeout=5)
		deadline = time.monotonic() + scaled(5)
		while not all(on_disk(db, gone) for db in dbs) and \
		    time.monotonic() < deadline:
			await asyncio.sleep(0.05)
		check(all(on_disk(db, gone) for db in dbs), "on both disks")
		await delete(ca, room, m["seq"])
		for db in dbs:
			where = await wait_gone(db, gone)
			check(not where, "the deleted text is still in %r" % where)
		for c in (ca, cb):
			check_tombstone(await history(c, room), m["seq"], gone,
			    c.label)
	finally:
		redis.cleanup()


if __name__ == "__main__":
	suite.main()
