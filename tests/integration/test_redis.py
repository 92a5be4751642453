#!/usr/bin/python3
#
# test_redis.py: the redis plugin joins several built parleyd into one
# chat. A real redis-server runs on a free port in the test's directory;
# two or three parleyd load the plugin with their own key prefix. Checked:
# participants and joined_room across servers, every message once and in
# one seq order on every server, renames and disconnects, Redis going away
# and coming back (the servers keep serving, then resynchronise), and a
# SIGKILLed server's members leaving the others' view within the bounded
# time. Skips when redis-server or the plugin is missing.

import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Suite, Skip, TestFailure, check,  # noqa: E402
    check_eq, http_get, parleyd_path, scaled, uniq)

suite = Suite("redis")
case = suite.case

BUILD = os.path.dirname(os.path.dirname(parleyd_path()))
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("PARLEY_SRCDIR") or os.path.join(HERE, "..", "..")
# /me comes from the default commands script, found in the source tree
# (a VPATH build has no copy of its own).
SCRIPTS = os.path.abspath(os.path.join(SRC, "scripts"))
TTL = 3  # heartbeat_ttl for the tests, in seconds


def plugin_path():
	p = os.path.join(BUILD, "plugins", ".libs", "redis.so")
	if not os.path.exists(p):
		raise Skip("the redis plugin was not built (no hiredis)")
	return p


def free_port():
	s = socket.socket()
	s.bind(("127.0.0.1", 0))
	port = s.getsockname()[1]
	s.close()
	return port


class Redis:
	"""A throw-away redis-server: no persistence, its own directory."""

	def __init__(self):
		exe = shutil.which("redis-server") or "/usr/bin/redis-server"
		if not os.access(exe, os.X_OK):
			raise Skip("redis-server not installed")
		self.exe = exe
		self.dir = tempfile.mkdtemp(prefix="parley-redis-")
		self.port = free_port()
		self.proc = None

	def start(self, timeout=10):
		self.proc = subprocess.Popen([self.exe, "--port",
		    str(self.port), "--bind", "127.0.0.1", "--save", "",
		    "--appendonly", "no", "--dir", self.dir],
		    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
		deadline = time.monotonic() + scaled(timeout)
		while time.monotonic() < deadline:
			try:
				with socket.create_connection(("127.0.0.1",
				    self.port), 0.2) as s:
					s.sendall(b"PING\r\n")
					if s.recv(16).startswith(b"+PONG"):
						return self
			except OSError:
				pass
			if self.proc.poll() is not None:
				raise TestFailure("redis-server exited with %d" %
				    self.proc.returncode)
			time.sleep(0.05)
		raise TestFailure("redis-server not answering in time")

	def command(self, line):
		"""Sends one inline command and returns the first reply line."""
		with socket.create_connection(("127.0.0.1", self.port), 2) as s:
			s.sendall(line + b"\r\n")
			return s.recv(256)

	def kill(self):
		if self.proc is not None and self.proc.poll() is None:
			self.proc.kill()
			self.proc.wait(5)
		self.proc = None

	def cleanup(self):
		self.kill()
		shutil.rmtree(self.dir, ignore_errors=True)


def cluster_config(redis, prefix):
	return {
		"plugins": [plugin_path()],
		"plugin_options": {"redis": {"host": "127.0.0.1",
		    "port": redis.port, "prefix": prefix,
		    "heartbeat_ttl": TTL,
		    # not about a late Redis (test_redis_faults is): a loaded
		    # machine must not make it look late
		    "timeout_ms": 3000}},
		"log_level": "info",
		"script_dirs": [SCRIPTS],
		"scripts": ["commands"],
	}


def start_cluster(t, n):
	plugin_path()
	redis = Redis().start()
	prefix = "t%d:" % random.randrange(1 << 30)
	servers = [t.start_server(cluster_config(redis, prefix))
	    for _ in range(n)]
	return redis, servers


async def wait_participants(c, room, want, timeout=8):
	"""Polls get_participants until it is want (a set)."""
	deadline = time.monotonic() + scaled(timeout)
	got = None
	while time.monotonic() < deadline:
		r = await c.expect({"type": "get_participants",
		    "roomName": room}, "participants")
		got = set(r["participants"])
		if got == set(want):
			return r["participants"]
		await asyncio.sleep(0.1)
	raise TestFailure("%s: participants of %s are %s, want %s" % (
	    c.label, room, sorted(got or ()), sorted(want)))


async def wait_up(server, timeout=8):
	"""Waits until the plugin says the cluster is up (metrics)."""
	deadline = time.monotonic() + scaled(timeout)
	while time.monotonic() < deadline:
		if cluster_up(await metrics(server)):
			return
		await asyncio.sleep(0.1)
	raise TestFailure("cluster_up never became 1")


async def metrics(server):
	r = await http_get(server, "/metrics")
	return r.body.decode() if isinstance(r.body, bytes) else r.body


def cluster_up(text):
	for line in text.splitlines():
		if "cluster_up" in line and not line.startswith("#"):
			return line.split()[-1] == "1"
	return False


@case(timeout=40)
async def test_two_servers_share_a_room(t):
	redis, (a, b) = start_cluster(t, 2)
	try:
		await wait_up(a)
		await wait_up(b)
		ca = await t.named("alice", a)
		cb = await t.named("bob", b)
		room = uniq("r")
		await ca.create(room)
		# The room reaches the other server (room_created).
		await cb.recv("room_created", pred=lambda m:
		    m["roomName"] == room, timeout=5)
		await cb.join(room)
		await wait_participants(ca, room, {ca.username, cb.username})
		await wait_participants(cb, room, {ca.username, cb.username})
		j = await ca.recv("joined_room", pred=lambda m:
		    m["username"] == cb.username, timeout=5)
		check_eq(set(j["participants"]), {ca.username, cb.username},
		    "joined_room participants on the other server")
		# Names are unique across the cluster.
		cx = await t.client(b)
		await cx.expect_error({"type": "set_username",
		    "username": ca.username.upper()}, "name_taken")
		# Interleaved messages from both: each once, one seq order.
		n = 30
		for i in range(n):
			await ca.send({"type": "send_message", "roomName": room,
			    "message": "a%d" % i})
			await cb.send({"type": "send_message", "roomName": room,
			    "message": "b%d" % i})
		seen = {}
		for c in (ca, cb):
			got = []
			while len(got) < 2 * n:
				m = await c.recv("new_message", timeout=5)
				got.append((m["seq"], m["message"], m["sender"]))
			await asyncio.sleep(0.3)
			await c.sync()
			check_eq(c.take("new_message"), [],
			    "%s: extra copies" % c.label)
			seqs = [g[0] for g in got]
			check_eq(seqs, sorted(seqs), "%s: seq order" % c.label)
			check_eq(len(set(seqs)), 2 * n, "%s: distinct seqs" %
			    c.label)
			check_eq(seqs[-1] - seqs[0], 2 * n - 1,
			    "%s: seqs rise by one" % c.label)
			seen[c.label] = got
		check_eq(seen[ca.label], seen[cb.label],
		    "both servers saw the same messages in the same order")
		msgs = [g[1] for g in seen[ca.label]]
		check_eq(sorted(msgs), sorted(["a%d" % i for i in range(n)] +
		    ["b%d" % i for i in range(n)]), "every message once")
		# list_rooms counts both members on both servers.
		for c in (ca, cb):
			r = await c.expect({"type": "list_rooms"}, "rooms")
			cnt = [x["count"] for x in r["rooms"] if
			    x["roomName"] == room]
			check_eq(cnt, [2], "%s: list_rooms count" % c.label)
	finally:
		redis.cleanup()


@case(timeout=40)
async def test_rename_and_disconnect_propagate(t):
	redis, (a, b) = start_cluster(t, 2)
	try:
		await wait_up(a)
		await wait_up(b)
		ca = await t.named("carol", a)
		cb = await t.named("dave", b)
		await ca.join("general")
		await cb.join("general")
		await wait_participants(ca, "general",
		    {ca.username, cb.username})
		old, new = cb.username, uniq("david")
		await cb.set_name(new)
		m = await ca.recv("user_renamed", pred=lambda m:
		    m["username"] == new, timeout=5)
		check_eq(m["oldUsername"], old, "user_renamed.oldUsername")
		check_eq(m["roomName"], "general", "user_renamed.roomName")
		await cb.close()
		m = await ca.recv("user_left", pred=lambda m:
		    m["username"] == new, timeout=5)
		check_eq(m["reason"], "disconnected", "user_left.reason")
		check_eq(m["participants"], [ca.username],
		    "participants after the disconnect")
		# A leave (not a disconnect) propagates as "left".
		cc = await t.named("erin", b)
		await cc.join("general")
		await ca.recv("joined_room", pred=lambda m:
		    m["username"] == cc.username, timeout=5)
		await cc.expect({"type": "leave_room", "roomName": "general"},
		    "room_left")
		m = await ca.recv("user_left", pred=lambda m:
		    m["username"] == cc.username, timeout=5)
		check_eq(m["reason"], "left", "user_left.reason for a leave")
	finally:
		redis.cleanup()


@case(timeout=60)
async def test_redis_restart(t):
	redis, (a, b) = start_cluster(t, 2)
	try:
		await wait_up(a)
		await wait_up(b)
		ca = await t.named("fay", a)
		cb = await t.named("gus", b)
		await ca.join("general")
		await cb.join("general")
		await wait_participants(ca, "general",
		    {ca.username, cb.username})
		redis.kill()
		deadline = time.monotonic() + scaled(5)
		while cluster_up(await metrics(a)):
			check(time.monotonic() < deadline, "outage not noticed")
			await asyncio.sleep(0.1)
		# Each server serves its own clients alone meanwhile.
		m = await ca.say("general", "alone")
		check(isinstance(m["seq"], int), "local seq during the outage")
		cb2 = await t.named("hal", b)
		await cb2.join("general")
		redis.start()
		await wait_up(a, timeout=15)
		await wait_up(b, timeout=15)
		await wait_participants(ca, "general",
		    {ca.username, cb.username, cb2.username}, timeout=10)
		await wait_participants(cb, "general",
		    {ca.username, cb.username, cb2.username}, timeout=10)
		# Messages cross again, and seq does not go back.
		await asyncio.sleep(0.5)
		await ca.send({"type": "send_message", "roomName": "general",
		    "message": "back"})
		mb = await cb.recv("new_message", pred=lambda m:
		    m["message"] == "back", timeout=5)
		ma = await ca.recv("new_message", pred=lambda m:
		    m["message"] == "back", timeout=5)
		check_eq(ma["seq"], mb["seq"], "same seq on both servers")
		check(ma["seq"] > m["seq"], "seq went back after the outage")
	finally:
		redis.cleanup()


@case(timeout=60)
async def test_killed_server_members_expire(t):
	redis, (a, b, c) = start_cluster(t, 3)
	try:
		for s in (a, b, c):
			await wait_up(s)
		ca = await t.named("ida", a)
		cb = await t.named("jon", b)
		cc = await t.named("kim", c)
		for x in (ca, cb, cc):
			await x.join("general")
		names = {ca.username, cb.username, cc.username}
		await wait_participants(ca, "general", names)
		await wait_participants(cb, "general", names)
		t0 = time.monotonic()
		c.kill()
		m = await ca.recv("user_left", pred=lambda m:
		    m["username"] == cc.username, timeout=TTL + 8)
		dt = time.monotonic() - t0
		check(dt < scaled(TTL + 4), "removed after %.1fs" % dt)
		check_eq(set(m["participants"]), {ca.username, cb.username},
		    "participants after the crash")
		await wait_participants(cb, "general",
		    {ca.username, cb.username})
		# The survivors still talk, once each.
		await ca.send({"type": "send_message", "roomName": "general",
		    "message": "still here"})
		await cb.recv("new_message", pred=lambda m:
		    m["message"] == "still here", timeout=5)
	finally:
		redis.cleanup()


async def healthz(server):
	r = await http_get(server, "/healthz")
	check_eq(r.status, 200, "/healthz status (degraded is still 200)")
	return json.loads(r.body)


@case(timeout=60)
async def test_history_and_actions_cross_servers(t):
	redis, (a, b) = start_cluster(t, 2)
	try:
		await wait_up(a)
		await wait_up(b)
		ca = await t.named("lea", a)
		cb = await t.named("max", b)
		room = uniq("h")
		await ca.create(room)
		await ca.join(room)
		sent = []
		for i in range(5):
			m = await ca.say(room, "m%d" % i)
			sent.append((m["seq"], m["message"], m["sender"]))
		# b never had a member in the room: its history comes from
		# Redis, the same messages with the same seqs.
		await cb.recv("room_created", pred=lambda m:
		    m["roomName"] == room, timeout=5)
		h = await cb.expect({"type": "history", "roomName": room},
		    "history")
		got = [(m["seq"], m["message"], m["sender"])
		    for m in h["messages"]]
		check_eq(got, sent, "history read on the other server")
		h = await cb.expect({"type": "history", "roomName": room,
		    "before": sent[3][0], "limit": 2}, "history")
		check_eq([m["message"] for m in h["messages"]], ["m1", "m2"],
		    "history before/limit")
		# A /me (a script's action, not a client message) crosses too,
		# once, with the cluster's next seq.
		await cb.join(room)
		await ca.send({"type": "send_message", "roomName": room,
		    "message": "/me waves"})
		mb = await cb.recv("new_message", pred=lambda m:
		    m.get("action") is True, timeout=5)
		ma = await ca.recv("new_message", pred=lambda m:
		    m.get("action") is True, timeout=5)
		check_eq(mb["seq"], sent[-1][0] + 1, "the action's seq")
		check_eq(ma["seq"], mb["seq"], "same seq on both servers")
		check_eq(mb["sender"], ca.username, "the action's sender")
		await asyncio.sleep(0.3)
		await cb.sync()
		check_eq(cb.take("new_message"), [], "the action came once")
		h = await cb.expect({"type": "history", "roomName": room,
		    "limit": 1}, "history")
		check_eq(h["messages"][0].get("action"), True,
		    "the action in Redis's history")
	finally:
		redis.cleanup()


@case(timeout=90)
async def test_first_joiner_misses_nothing(t):
	# A server subscribes to a room's channel when its first member
	# joins; the join is answered before Redis has the subscription.
	# Rounds of: max joins on b while lea posts on a, and lea posts
	# again the moment max's room_joined is seen (no wait). Everything
	# posted after room_joined reaches max, once, in seq order, and what
	# max gets is an unbroken run of lea's seqs.
	redis, (a, b) = start_cluster(t, 2)
	try:
		await wait_up(a)
		await wait_up(b)
		ca = await t.named("lea", a)
		cb = await t.named("max", b)
		for r in range(20):
			room = uniq("w")
			await ca.create(room)
			await ca.join(room)
			await cb.recv("room_created", pred=lambda m:
			    m["roomName"] == room, timeout=5)
			await cb.send({"type": "join_room", "roomName": room})
			before = ["r%d-b%d" % (r, i) for i in range(4)]
			for text in before:
				await ca.send({"type": "send_message",
				    "roomName": room, "message": text})
			await cb.recv("room_joined", pred=lambda m:
			    m["roomName"] == room, timeout=5)
			after = ["r%d-a%d" % (r, i) for i in range(4)]
			for text in after:
				await ca.send({"type": "send_message",
				    "roomName": room, "message": text})
			mine = []
			while len(mine) < len(before) + len(after):
				m = await ca.recv("new_message", pred=lambda m:
				    m["roomName"] == room, timeout=5)
				mine.append((m["seq"], m["message"]))
			check_eq([x[1] for x in mine], before + after,
			    "round %d: lea's own order" % r)
			last = await cb.recv("new_message", pred=lambda m:
			    m["roomName"] == room and
			    m["message"] == after[-1], timeout=5)
			got = [(m["seq"], m["message"]) for m in
			    cb.take("new_message", pred=lambda m:
			    m["roomName"] == room)]
			got.append((last["seq"], last["message"]))
			check_eq(got, mine[len(mine) - len(got):],
			    "round %d: max got a run of lea's messages" % r)
			check(len(got) >= len(after),
			    "round %d: max missed some of %s: %s" % (r, after,
			    got))
			await cb.send({"type": "leave_room", "roomName": room})
		await asyncio.sleep(0.2)
		await cb.sync()
		check_eq(cb.take("new_message"), [], "nothing came twice")
		for line in (await metrics(b)).splitlines():
			if 'name="messages_caught_up"' in line:
				print("    b: %s" % line)
	finally:
		redis.cleanup()


@case(timeout=60)
async def test_healthz_reports_redis(t):
	redis, (a,) = start_cluster(t, 1)
	try:
		await wait_up(a)
		h = await healthz(a)
		check_eq(h["status"], "ok", "status with Redis up")
		check_eq(h["plugins"]["redis"]["ok"], True, "plugins.redis.ok")
		c = await t.named("ned", a)
		await c.join("general")
		redis.kill()
		deadline = time.monotonic() + scaled(5)
		while (await healthz(a))["status"] != "degraded":
			check(time.monotonic() < deadline,
			    "/healthz never said degraded")
			await asyncio.sleep(0.1)
		h = await healthz(a)
		check_eq(h["plugins"]["redis"]["ok"], False,
		    "plugins.redis.ok during the outage")
		check("Redis" in h["plugins"]["redis"]["detail"],
		    "the detail says why: %r" % h["plugins"]["redis"])
		# Chat goes on; history, kept in Redis, says it cannot.
		await c.say("general", "still serving")
		await c.expect_error({"type": "history",
		    "roomName": "general"}, "internal")
		redis.start()
		deadline = time.monotonic() + scaled(15)
		while (await healthz(a))["status"] != "ok":
			check(time.monotonic() < deadline,
			    "/healthz never came back to ok")
			await asyncio.sleep(0.2)
	finally:
		redis.cleanup()


@case(timeout=60)
async def test_name_claimed_once_across_servers(t):
	redis, (a, b) = start_cluster(t, 2)
	try:
		await wait_up(a)
		await wait_up(b)
		ca = await t.client(a, label="ca")
		cb = await t.client(b, label="cb")
		# Redis holds every command for a moment: both servers say yes
		# to the same name on their own, then the cluster keeps one.
		redis.command(b"CLIENT PAUSE 400 ALL")
		name = uniq("zed")
		await asyncio.gather(ca.set_name(name),
		    cb.set_name(name.upper()))
		room = uniq("n")
		await ca.create(room)
		await ca.join(room)
		await cb.recv("room_created", pred=lambda m:
		    m["roomName"] == room, timeout=5)
		await cb.join(room)
		deadline = time.monotonic() + scaled(8)
		while True:
			pa = (await ca.expect({"type": "get_participants",
			    "roomName": room}, "participants"))["participants"]
			pb = (await cb.expect({"type": "get_participants",
			    "roomName": room}, "participants"))["participants"]
			if (len(pa) == 2 and sorted(pa) == sorted(pb) and
			    len({p.lower() for p in pa}) == 2):
				break
			check(time.monotonic() < deadline, "servers disagree: "
			    "%s vs %s" % (pa, pb))
			await asyncio.sleep(0.1)
		holders = [p for p in pa if p.lower() == name.lower()]
		check_eq(len(holders), 1, "holders of %s in %s" % (name, pa))
		loser = ca if holders[0] != name else cb
		await loser.recv("notice", pred=lambda m:
		    "another server" in m.get("message", ""), timeout=5)
		# Once settled, the other server refuses the name at once.
		other = a if loser is cb else b
		cx = await t.client(other)
		await cx.expect_error({"type": "set_username",
		    "username": name}, "name_taken")
	finally:
		redis.cleanup()


@case(timeout=60)
async def test_history_after_in_redis(t):
	"""history with after (protocol 1.1) from Redis's store, on a
	server that never had a member in the room."""
	redis, (a, b) = start_cluster(t, 2)
	try:
		await wait_up(a)
		await wait_up(b)
		ca = await t.named("pia", a)
		cb = await t.client(b)
		room = uniq("ha")
		await ca.create(room)
		for i in range(1, 31):
			await ca.send({"type": "send_message", "roomName": room,
			    "message": "m%d" % i})
		await ca.recv("new_message", pred=lambda m:
		    m["message"] == "m30", timeout=5)
		await cb.recv("room_created", pred=lambda m:
		    m["roomName"] == room, timeout=5)

		async def seqs(**q):
			h = await cb.expect(dict(q, type="history",
			    roomName=room), "history")
			return [m["seq"] for m in h["messages"]]
		check_eq(await seqs(after=10, limit=3), [11, 12, 13],
		    "after alone: the oldest after it")
		check_eq(await seqs(after=25), [26, 27, 28, 29, 30],
		    "after to the newest")
		check_eq(await seqs(after=10, before=13), [11, 12],
		    "after and before")
		check_eq(await seqs(after=5, before=30, limit=2), [6, 7],
		    "after decides which end is kept")
		check_eq(await seqs(after=13, before=13), [],
		    "after >= before")
		check_eq(await seqs(after=30), [], "nothing newer")
		got, after = [], 0
		while True:
			page = await seqs(after=after, limit=7)
			if not page:
				break
			got += page
			after = page[-1]
		check_eq(got, list(range(1, 31)), "paging forward")
	finally:
		redis.cleanup()


def drop(c):
	"""A reset without a close frame (a lost network)."""
	import struct
	sock = c.ws.transport.get_extra_info("socket")
	sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
	    struct.pack("ii", 1, 0))
	c.ws.transport.abort()


@case(timeout=60)
async def test_resume_in_a_cluster(t):
	"""A session dropped and resumed on its server: the other server's
	members hear nothing, and the resumed client catches up from the
	cluster's history."""
	redis, (a, b) = start_cluster(t, 2)
	try:
		await wait_up(a)
		await wait_up(b)
		ca = await t.named("ria", a)
		cb = await t.named("rob", b)
		room = uniq("rs")
		await ca.create(room)
		await cb.recv("room_created", pred=lambda m:
		    m["roomName"] == room, timeout=5)
		await cb.join(room)
		await wait_participants(cb, room, {ca.username, cb.username})
		await cb.sync()
		cb.pending.clear()
		drop(ca)
		await asyncio.sleep(0.5)
		for i in range(5):
			await cb.say(room, "while away %d" % i)
		ca2 = await t.client(a)
		r = await ca2.expect({"type": "resume",
		    "session": ca.welcome["session"]}, "resumed")
		check_eq(r["username"], ca.username, "resumed")
		seq = r["rooms"][0]["seq"]
		h = await ca2.expect({"type": "history", "roomName": room,
		    "after": seq - 5}, "history")
		check_eq([m["message"] for m in h["messages"]],
		    ["while away %d" % i for i in range(5)], "caught up")
		await wait_participants(cb, room, {ca.username, cb.username})
		await asyncio.sleep(0.5)
		await cb.sync()
		check_eq(cb.take("user_left"), [], "no user_left on the other "
		    "server")
		check_eq(cb.take("joined_room"), [], "no joined_room")
	finally:
		redis.cleanup()


if __name__ == "__main__":
	suite.main()
