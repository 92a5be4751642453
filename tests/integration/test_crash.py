#!/usr/bin/python3
#
# test_crash.py: history-sqlite across crashes. parleyd is killed with
# SIGKILL in the middle of a burst of messages, ten times, and restarted
# each time on the same database. What a watching client received is
# compared with what history says afterwards and across restarts: a seq
# is never delivered with two texts, seqs never go back, the database
# passes PRAGMA integrity_check, and a message received but missing from
# history after the restart was posted within the flush interval before
# the kill.

import asyncio
import os
import random
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Suite, TestFailure, check, check_eq,  # noqa: E402
    scaled)
from test_plugins import (StateDir, db_value, history,  # noqa: E402
    sqlite_plugin, start)

suite = Suite("crash")
case = suite.case

KILLS = 10
FLUSH_MS = 100
RESERVE = 64  # small, so that every burst crosses several blocks


async def all_history(c, room):
	"""Every message history has for room, oldest first (paged)."""
	got, before = [], None
	while True:
		page = await history(c, room, before=before, limit=500)
		got = page + got
		if len(page) < 500 or page[0]["seq"] <= 1:
			return got
		before = page[0]["seq"]


async def watch(c, seen):
	"""Records every new_message until the connection ends."""
	try:
		while True:
			m = await c._receive(time.monotonic() + 3600)
			if m.get("type") == "new_message":
				seen.append(m)
	except Exception:
		return


async def burst(c, room, tag):
	"""Sends numbered messages until cancelled or cut off."""
	i = 0
	try:
		while True:
			for _ in range(20):
				await c.send({"type": "send_message",
				    "roomName": room, "message": "%s %d" %
				    (tag, i)})
				i += 1
			await asyncio.sleep(0.002)
	except Exception:
		return


@case(timeout=240)
async def test_kill_mid_burst(t):
	db_plugin = sqlite_plugin()
	text_of = {}     # seq -> the one text it was ever delivered with
	top = 0          # highest seq delivered or in history so far
	delivered = 0
	lost = []
	oldest_lost = 0  # ms between the oldest lost message and its kill
	gaps = []        # seqs skipped at each restart
	with StateDir() as d:
		opts = {"history-sqlite": {"path": d.db(),
		    "flush_interval_ms": FLUSH_MS, "seq_reserve": RESERVE}}
		for run in range(KILLS + 1):
			s = start(t, [db_plugin], opts)
			a = await t.named("talker", s)
			w = await t.named("watcher", s)
			await a.join("general")
			await w.join("general")
			# What survived the last kill, compared with what was
			# received before it.
			past = await all_history(w, "general")
			for m in past:
				old = text_of.setdefault(m["seq"], m["message"])
				check_eq(m["message"], old, "text of seq %d after "
				    "restart %d" % (m["seq"], run))
			hist_seqs = [m["seq"] for m in past]
			check(hist_seqs == sorted(set(hist_seqs)),
			    "history seqs rise: %r" % hist_seqs[-20:])
			have = set(hist_seqs)
			if run > 0:
				for m in last_seen:
					if m["seq"] not in have:
						lost.append(m)
						oldest_lost = max(oldest_lost,
						    kill_ms - m["ts"])
						check(m["ts"] >= kill_ms - FLUSH_MS -
						    scaled(0.4) * 1000,
						    "seq %d (ts %d) lost, posted %d ms "
						    "before the kill (flush interval %d "
						    "ms)" % (m["seq"], m["ts"], kill_ms -
						    m["ts"], FLUSH_MS))
			if run == KILLS:
				await s.astop()
				break

			seen = []
			watcher = asyncio.ensure_future(watch(w, seen))
			sender = asyncio.ensure_future(burst(a, "general",
			    "run %d" % run))
			await asyncio.sleep(random.uniform(0.3, 0.8))
			check(len(seen) > 0, "run %d: messages flow" % run)
			kill_ms = int(time.time() * 1000)
			s.proc.send_signal(signal.SIGKILL)
			check_eq(await s.await_exit(), -signal.SIGKILL,
			    "killed")
			await asyncio.wait([watcher, sender], timeout=scaled(10))
			s.kill()  # forget it
			# Their server is gone: no closing handshake to wait for.
			for c in (a, w):
				c.ws.transport.abort()
				t.clients.remove(c)

			seqs = [m["seq"] for m in seen]
			check(seqs == list(range(seqs[0], seqs[0] + len(seqs))),
			    "run %d: seqs delivered one by one" % run)
			check(seqs[0] > top, "run %d: first seq %d is past %d, "
			    "the highest before" % (run, seqs[0], top))
			if run > 0:
				gaps.append(seqs[0] - top - 1)
			for m in seen:
				old = text_of.setdefault(m["seq"], m["message"])
				check_eq(m["message"], old, "text of seq %d in run "
				    "%d" % (m["seq"], run))
			top = max(top, seqs[-1], max(hist_seqs, default=0))
			delivered += len(seen)
			last_seen = seen
			check_eq(db_value(d.db(), "PRAGMA integrity_check"), "ok",
			    "integrity_check after kill %d" % (run + 1))
	print("%d kills: %d messages delivered, %d lost from history (the "
	    "oldest %d ms before its kill; flush interval %d ms); seqs "
	    "skipped at restarts: %r" % (KILLS, delivered, len(lost),
	    oldest_lost, FLUSH_MS, gaps))


if __name__ == "__main__":
	suite.main()
