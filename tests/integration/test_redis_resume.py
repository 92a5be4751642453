#!/usr/bin/python3
#
# test_redis_resume.py: a session resumed on another server of a Redis
# cluster (protocol 1.1 "Resume", clients behind a load balancer without
# sticky sessions). Two or three parleyd and a real redis-server: a client
# on A drops (a reset, no close frame) and resumes on B with the same name,
# rooms and seqs; the members on A, B and C hear nothing; what was said
# meanwhile comes with history and after; the old secret fails
# afterwards, a wrong one fails and changes nothing, an open connection on
# A is closed with 4001, and a grace that runs out on A still tells
# everyone user_left with reason timeout. Skips without redis-server or
# the plugin.

import asyncio
import os
import random
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Suite, check, check_eq, uniq  # noqa: E402
from test_redis import (Redis, cluster_config, cluster_up,  # noqa: E402
    drop, metrics, wait_participants, wait_up)
from harness import TestFailure, scaled  # noqa: E402

suite = Suite("redis_resume")
case = suite.case


def start_pair(t, n=2, timeout_ms=None, **extra):
	redis = Redis().start()
	prefix = "t%d:" % random.randrange(1 << 30)
	cfg = dict(cluster_config(redis, prefix), **extra)
	if timeout_ms is not None:
		cfg["plugin_options"]["redis"]["timeout_ms"] = timeout_ms
	servers = [t.start_server(cfg) for _ in range(n)]
	return redis, servers


async def setup(t, a, b):
	"""ca on A in two rooms, with an observer on A (oa) and one on B (ob)
	in the first; everyone sees everyone."""
	await wait_up(a)
	await wait_up(b)
	ca = await t.named("rea", a)
	oa = await t.named("oba", a)
	ob = await t.named("obb", b)
	room, room2 = uniq("xr"), uniq("xs")
	await ca.create(room)
	await ca.create(room2)
	await ob.recv("room_created", pred=lambda m:
	    m["roomName"] == room, timeout=5)
	await oa.join(room)
	await ob.join(room)
	want = {ca.username, oa.username, ob.username}
	await wait_participants(oa, room, want)
	await wait_participants(ob, room, want)
	for c in (oa, ob):
		await c.sync()
		c.pending.clear()
	return ca, oa, ob, room, room2


async def resume(t, server, secret):
	c = await t.client(server)
	r = await c.expect({"type": "resume", "session": secret}, "resumed")
	c.username = r["username"]
	return c, r


async def quiet(*cs):
	await asyncio.sleep(0.7)
	for c in cs:
		await c.sync()
		check_eq(c.take("user_left"), [], "%s: user_left" % c.label)
		check_eq(c.take("joined_room"), [], "%s: joined_room" % c.label)


@case(timeout=60)
async def test_resume_on_another_server(t):
	redis, (a, b, c) = start_pair(t, 3)
	try:
		await wait_up(c)
		oc = await t.named("obc", c)
		ca, oa, ob, room, room2 = await setup(t, a, b)
		await oc.join(room)
		want = {ca.username, oa.username, ob.username, oc.username}
		await wait_participants(oa, room, want)
		await wait_participants(ob, room, want)
		for x in (oa, ob, oc):
			await x.sync()
			x.pending.clear()
		secret = ca.welcome["session"]
		drop(ca)
		await asyncio.sleep(0.3)
		for i in range(4):
			await ob.say(room, "while away %d" % i)
		await oa.recv("new_message", pred=lambda m:
		    m["message"] == "while away 3", timeout=5)
		c2, r = await resume(t, b, secret)
		check_eq(r["username"], ca.username, "same name")
		check(r["session"] != secret, "a fresh secret")
		rooms = {x["roomName"]: x["seq"] for x in r["rooms"]}
		check_eq(set(rooms), {room, room2}, "same rooms")
		h = await c2.expect({"type": "history", "roomName": room,
		    "after": rooms[room] - 4}, "history")
		check_eq([m["message"] for m in h["messages"]],
		    ["while away %d" % i for i in range(4)], "caught up")
		await quiet(oa, ob, oc)
		for x in (oa, ob, oc):
			await wait_participants(x, room, want)
		# still the owner of the rooms it created as a guest
		await c2.send({"type": "set_topic", "roomName": room,
		    "topic": "moved"})
		m = await c2.recv(None, pred=lambda m: m.get("type") in
		    ("topic_changed", "error"))
		check_eq(m["type"], "topic_changed", "set_topic as the owner")
		# it speaks from B, as itself, to both servers
		await c2.say(room, "back from B")
		for x in (oa, ob, oc):
			m = await x.recv("new_message", pred=lambda m:
			    m["message"] == "back from B", timeout=5)
			check_eq(m["sender"], ca.username, "sender")
		# the old secret is spent everywhere
		for s in (a, b, c):
			x = await t.client(s)
			await x.expect_error({"type": "resume", "session":
			    secret}, "resume_failed")
		# and it moves back to A with the new one, silently again
		drop(c2)
		await asyncio.sleep(0.3)
		c3, r3 = await resume(t, a, r["session"])
		check_eq(r3["username"], ca.username, "same name on A again")
		check_eq({x["roomName"] for x in r3["rooms"]}, {room, room2},
		    "same rooms on A again")
		await quiet(oa, ob, oc)
		for x in (oa, ob, oc):
			await wait_participants(x, room, want)
		await c3.say(room, "home")
		m = await ob.recv("new_message", pred=lambda m:
		    m["message"] == "home", timeout=5)
		check_eq(m["sender"], ca.username, "sender")
	finally:
		redis.cleanup()


@case(timeout=60)
async def test_wrong_secret_changes_nothing(t):
	redis, (a, b) = start_pair(t)
	try:
		ca, oa, ob, room, room2 = await setup(t, a, b)
		x = await t.client(b)
		await x.expect_error({"type": "resume", "session":
		    ca.welcome["session"][:-2] + "AA"}, "resume_failed")
		# x goes on as the guest it was
		await x.expect({"type": "list_rooms"}, "rooms")
		await ca.say(room, "still here")
		await ob.recv("new_message", pred=lambda m:
		    m["message"] == "still here", timeout=5)
		await quiet(oa, ob)
		# the right one, from an open connection: closed with 4001
		c2, r = await resume(t, b, ca.welcome["session"])
		check_eq(await ca.wait_closed(), 4001,
		    "the open connection's close code")
		check_eq(r["username"], ca.username, "same name")
		await quiet(oa, ob)
		await c2.say(room, "moved")
		await oa.recv("new_message", pred=lambda m:
		    m["message"] == "moved", timeout=5)
	finally:
		redis.cleanup()


@case(timeout=60)
async def test_grace_runs_out_on_the_first_server(t):
	redis, (a, b) = start_pair(t, resume_grace=2)
	try:
		ca, oa, ob, room, room2 = await setup(t, a, b)
		drop(ca)
		for c in (oa, ob):
			m = await c.recv("user_left", pred=lambda m:
			    m["username"] == ca.username, timeout=8)
			check_eq(m["reason"], "timeout", "%s: reason" % c.label)
		x = await t.client(b)
		await x.expect_error({"type": "resume", "session":
		    ca.welcome["session"]}, "resume_failed")
	finally:
		redis.cleanup()


async def wait_down(server, timeout=8):
	deadline = time.monotonic() + scaled(timeout)
	while time.monotonic() < deadline:
		if not cluster_up(await metrics(server)):
			return
		await asyncio.sleep(0.1)
	raise TestFailure("cluster_up never became 0")


@case(timeout=60)
async def test_without_redis_only_its_own_server(t):
	"""Redis away: who holds a session cannot be known, so a resume on
	another server fails at once; on its own server it works. Back, Redis
	gets the sessions again."""
	redis, (a, b) = start_pair(t, timeout_ms=1000)
	try:
		ca, oa, ob, room, room2 = await setup(t, a, b)
		secret = ca.welcome["session"]
		drop(ca)
		await asyncio.sleep(0.3)
		# paused: the resume is answered within the plugin's deadline
		# (twice timeout_ms)
		os.kill(redis.proc.pid, signal.SIGSTOP)
		try:
			x = await t.client(b)
			await x.expect_error({"type": "resume", "session":
			    secret}, "resume_failed", timeout=5)
		finally:
			os.kill(redis.proc.pid, signal.SIGCONT)
		await wait_up(b)
		redis.kill()
		await wait_down(b)
		x = await t.client(b)
		await x.expect_error({"type": "resume", "session": secret},
		    "resume_failed", timeout=2)
		c2, r = await resume(t, a, secret)
		check_eq(r["username"], ca.username, "resumed on its server")
		await quiet(oa)
		# Redis back, empty: the session issued meanwhile is written
		# again, and resumes on B
		redis.start()
		await wait_up(a)
		await wait_up(b)
		want = {ca.username, oa.username, ob.username}
		await wait_participants(ob, room, want)
		await ob.sync()
		ob.pending.clear()
		drop(c2)
		await asyncio.sleep(0.3)
		c3, r3 = await resume(t, b, r["session"])
		check_eq(r3["username"], ca.username, "resumed on B")
		check_eq({x["roomName"] for x in r3["rooms"]}, {room, room2},
		    "same rooms")
		await quiet(oa, ob)
	finally:
		redis.cleanup()


if __name__ == "__main__":
	suite.main()
