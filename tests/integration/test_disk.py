#!/usr/bin/python3
#
# test_disk.py: history-sqlite on a disk that cannot be written. On a
# small tmpfs filled up while clients chat, and on a state directory that
# is full or read-only when the server starts: chat goes on, /healthz says
# degraded with the reason, /metrics counts it, the log says it once per
# interval (not once per message), history replies still hold every
# message, and once the disk can be written again everything reaches the
# database. Mounting needs root (as in CI); without it the full-disk case
# is skipped and the read-only one uses file modes.

import asyncio
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Suite, Skip, check, check_eq,  # noqa: E402
    http_get, scaled, uniq)
from test_plugins import (StateDir, history, say_many,  # noqa: E402
    seqs, sqlite_plugin, start)
from test_crash import all_history  # noqa: E402

suite = Suite("disk")
case = suite.case


class Tmpfs:
	"""A small tmpfs of its own, or Skip when mounting is not allowed."""

	def __init__(self, size="2m"):
		self.size = size

	def __enter__(self):
		self.path = tempfile.mkdtemp(prefix="parley-disk-")
		if os.geteuid() != 0:
			os.rmdir(self.path)
			raise Skip("mounting a tmpfs needs root")
		p = subprocess.run(["mount", "-t", "tmpfs", "-o",
		    "size=%s,mode=0755" % self.size, "tmpfs", self.path],
		    capture_output=True, text=True)
		if p.returncode != 0:
			os.rmdir(self.path)
			raise Skip("cannot mount a tmpfs: %s" % p.stderr.strip())
		return self

	def remount(self, mode):
		p = subprocess.run(["mount", "-o", "remount,%s" % mode,
		    self.path], capture_output=True, text=True)
		check_eq(p.returncode, 0, "remount %s: %s" % (mode, p.stderr))

	def __exit__(self, *exc):
		subprocess.run(["umount", "-l", self.path], capture_output=True)
		shutil.rmtree(self.path, ignore_errors=True)

	def db(self):
		return os.path.join(self.path, "history.db")


def fill(path):
	"""Writes a file until the file system is full."""
	fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
	try:
		for size in (65536, 512):
			try:
				while os.write(fd, b"\0" * size) > 0:
					pass
			except OSError:
				pass
	finally:
		os.close(fd)


def admin_of(s):
	m = re.search(r"admin listening on http://127\.0\.0\.1:(\d+)/",
	    s.stdout())
	check(m is not None, "admin listener line")

	class Admin:
		port = int(m.group(1))
	return Admin


async def health(s):
	r = await http_get(s, "/healthz")
	check_eq(r.status, 200, "/healthz status")
	return json.loads(r.body.decode())


async def counter(admin, name):
	r = await http_get(admin, "/metrics")
	m = re.search(r'parley_plugin_value\{plugin="history-sqlite",'
	    r'name="%s"\} (\d+)' % name, r.body.decode())
	return int(m.group(1)) if m else None


async def until_counter(admin, name, want, timeout=5):
	"""The counter once it is want (counters are set once a second)."""
	deadline = time.monotonic() + scaled(timeout)
	while True:
		v = await counter(admin, name)
		if v == want or time.monotonic() > deadline:
			return v
		await asyncio.sleep(0.2)


async def until_health(s, want, timeout=15):
	deadline = time.monotonic() + scaled(timeout)
	while True:
		h = await health(s)
		if h["status"] == want or time.monotonic() > deadline:
			return h
		await asyncio.sleep(0.2)


def rows(path):
	con = sqlite3.connect(path)
	try:
		return con.execute("SELECT seq, text FROM messages WHERE room = "
		    "'general' ORDER BY seq").fetchall()
	finally:
		con.close()


@case(timeout=120)
async def test_full_disk(t):
	db_plugin = sqlite_plugin()
	with Tmpfs("2m") as fs:
		opts = {"history-sqlite": {"path": fs.db(),
		    "flush_interval_ms": 50}}
		s = start(t, [db_plugin], opts,
		    extra={"admin_listen": "127.0.0.1:0"})
		admin = admin_of(s)
		a = await t.named("filler", s)
		await a.join("general")
		sent = ["before full %d" % i for i in range(20)]
		await say_many(a, "general", sent)
		await asyncio.sleep(0.5)
		fill(os.path.join(fs.path, "filler"))

		# Chat on until the disk refuses a write; what memory can
		# hold is all kept.
		pad = "x" * 900
		h = None
		t0 = time.monotonic()
		for chunk in range(12):
			texts = ["full %d %d %s" % (chunk, i, pad)
			    for i in range(100)]
			await say_many(a, "general", texts)
			sent += texts
			h = await until_health(s, "degraded", timeout=1.5)
			if h["status"] == "degraded":
				break
		check_eq(h["status"], "degraded", "/healthz on a full disk: %r"
		    % h)
		detail = h["plugins"]["history-sqlite"].get("detail", "")
		check("full" in detail and "held in memory" in detail,
		    "the reason: %r" % detail)
		more = ["while full %d" % i for i in range(200)]
		await say_many(a, "general", more)
		sent += more
		check_eq(await until_counter(admin, "write_failing", 1), 1,
		    "write_failing metric")
		await asyncio.sleep(1.2)  # a timer turn after the last message
		check((await counter(admin, "messages_pending")) >= 200,
		    "messages held in memory are counted")
		got = await all_history(a, "general")
		check_eq([m["message"] for m in got], sent,
		    "history while the disk is full has every message")
		check_eq(seqs(got), list(range(1, len(sent) + 1)), "seqs")
		n = sum(1 for x in s.stderr(tail=100000).splitlines()
		    if "cannot write" in x)
		# One line when health changes, one every 10 s.
		most = 2 + int((time.monotonic() - t0) / 10)
		check(1 <= n <= most, "the failure logged per interval, not "
		    "per message: %d lines, at most %d" % (n, most))

		# Room again: everything reaches the disk.
		os.unlink(os.path.join(fs.path, "filler"))
		h = await until_health(s, "ok")
		check_eq(h["status"], "ok", "/healthz once there is room: %r" % h)
		check_eq([x[1] for x in rows(fs.db())], sent,
		    "the database has every message once there is room")
		await s.astop()

		s = start(t, [db_plugin], opts)
		b = await t.named("later", s)
		await b.join("general")
		got = await all_history(b, "general")
		check_eq([m["message"] for m in got], sent, "after a restart")
		m = await b.say("general", "after")
		check_eq(m["seq"], len(sent) + 1, "seq goes on")
		await s.astop()


@case(timeout=90)
async def test_full_at_start(t):
	db_plugin = sqlite_plugin()
	with Tmpfs("2m") as fs:
		opts = {"history-sqlite": {"flush_interval_ms": 50}}
		extra = {"state_dir": fs.path, "admin_listen": "127.0.0.1:0"}
		s = start(t, [db_plugin], opts, extra=extra)
		a = await t.named("first", s)
		await a.join("general")
		old = ["old %d" % i for i in range(30)]
		await say_many(a, "general", old)
		await s.astop()

		fill(os.path.join(fs.path, "filler"))
		s = start(t, [db_plugin], opts, extra=extra)
		b = await t.named("second", s)
		await b.join("general")
		new = ["new %d" % i for i in range(50)]
		await say_many(b, "general", new)
		h = await until_health(s, "degraded", timeout=5)
		check_eq(h["status"], "degraded", "/healthz: %r" % h)
		check("CANNOT WRITE HISTORY" in s.stderr(),
		    "the log says so loudly:\n" + s.stderr())
		got = await history(b, "general", limit=500)
		check_eq([m["message"] for m in got], old + new,
		    "history: the old from disk, the new from memory")
		check_eq(seqs(got), list(range(1, 81)), "seqs go on")

		os.unlink(os.path.join(fs.path, "filler"))
		h = await until_health(s, "ok")
		check_eq(h["status"], "ok", "/healthz once there is room: %r" % h)
		check_eq([x[1] for x in rows(fs.db())], old + new,
		    "the database has every message once there is room")
		await s.astop()


@case(timeout=90)
async def test_stalled_database(t):
	"""A database another process holds locked stands for a disk that
	stalls: a room's first message waits for its seq reservation at most
	about a second, once, and the rest of the chat does not wait."""
	db_plugin = sqlite_plugin()
	with StateDir() as d:
		opts = {"history-sqlite": {"path": d.db(),
		    "flush_interval_ms": 50}}
		s = start(t, [db_plugin], opts)
		a = await t.named("stall", s)
		await a.join("general")
		await a.say("general", "before")
		con = sqlite3.connect(d.db(), isolation_level=None)
		con.execute("BEGIN IMMEDIATE")
		try:
			room = uniq("stalled")
			await a.create(room)
			texts = ["stalled %d" % i for i in range(20)]
			t0 = time.monotonic()
			await say_many(a, room, texts)
			took = time.monotonic() - t0
			check(took < scaled(1.0) + 1.0, "20 messages took %.2f s "
			    "while the database was locked" % took)
			h = await until_health(s, "degraded", timeout=10)
			check_eq(h["status"], "degraded", "/healthz: %r" % h)
			got = await history(a, room)
			check_eq([m["message"] for m in got], texts,
			    "history while locked")
		finally:
			con.execute("ROLLBACK")
			con.close()
		h = await until_health(s, "ok")
		check_eq(h["status"], "ok", "/healthz after: %r" % h)
		got = await history(a, room)
		check_eq([m["message"] for m in got], texts, "history after")
		await s.astop()


class ReadOnly:
	"""A directory with a database in it, made read-only: a read-only
	tmpfs as root (root ignores file modes), file modes otherwise."""

	def __enter__(self):
		self.fs = None
		if os.geteuid() == 0:
			self.fs = Tmpfs("4m").__enter__()
			self.path = self.fs.path
		else:
			self.path = tempfile.mkdtemp(prefix="parley-ro-")
		return self

	def db(self):
		return os.path.join(self.path, "history.db")

	def set(self, ro):
		if self.fs is not None:
			self.fs.remount("ro" if ro else "rw")
			return
		os.chmod(self.path, 0o555 if ro else 0o755)
		os.chmod(self.db(), 0o444 if ro else 0o644)

	def __exit__(self, *exc):
		if self.fs is not None:
			self.fs.__exit__(*exc)
		else:
			self.set(False)
			shutil.rmtree(self.path, ignore_errors=True)


@case(timeout=90)
async def test_read_only_start(t):
	db_plugin = sqlite_plugin()
	with ReadOnly() as d:
		# The state directory itself, where the database goes by
		# default.
		opts = {"history-sqlite": {"flush_interval_ms": 50}}
		s = start(t, [db_plugin], opts, extra={"state_dir": d.path})
		a = await t.named("early", s)
		await a.join("general")
		old = ["old %d" % i for i in range(30)]
		await say_many(a, "general", old)
		await s.astop()

		d.set(True)
		s = start(t, [db_plugin], opts, extra={"state_dir": d.path,
		    "admin_listen": "127.0.0.1:0"})
		check("CANNOT WRITE HISTORY" in s.stderr(),
		    "the log says so loudly:\n" + s.stderr())
		b = await t.named("late", s)
		await b.join("general")
		got = await history(b, "general", limit=500)
		check_eq([m["message"] for m in got], old,
		    "old history read from the read-only database")
		new = ["new %d" % i for i in range(40)]
		await say_many(b, "general", new)
		got = await history(b, "general", limit=500)
		check_eq([m["message"] for m in got], old + new,
		    "history has the messages kept in memory")
		check_eq(seqs(got), list(range(1, 71)), "seqs go on")
		h = await until_health(s, "degraded", timeout=3)
		check_eq(h["status"], "degraded", "/healthz: %r" % h)
		check("read-only" in h["plugins"]["history-sqlite"].get(
		    "detail", "") or "readonly" in h["plugins"][
		    "history-sqlite"].get("detail", ""), "reason: %r" % h)
		admin = admin_of(s)
		check_eq(await until_counter(admin, "write_failing", 1), 1,
		    "write_failing metric")
		check_eq(await until_counter(admin, "seq_unreserved", 40), 40,
		    "seqs that could not be reserved are counted")

		d.set(False)
		h = await until_health(s, "ok")
		check_eq(h["status"], "ok", "/healthz once writable: %r" % h)
		check_eq([x[1] for x in rows(d.db())], old + new,
		    "the database has every message once writable")
		m = await b.say("general", "after")
		check_eq(m["seq"], 71, "seq")
		got = await history(b, "general", limit=500)
		check_eq(seqs(got), list(range(1, 72)), "history after")
		await s.astop()


if __name__ == "__main__":
	suite.main()
