#!/usr/bin/python3
#
# resume-storm.py: N clients drop at once (a TCP reset, no close frame) and
# all come back with resume. Starts its own parleyd, puts the clients in
# rooms with one observer each, then drops every client, measures the
# server's RSS while the sessions are held, reconnects them all at once
# and resumes them. Reports how many resumed as themselves, how many
# user_left / joined_room the observers saw (want 0 of each), and the RSS
# before the drop, while held and after the resumes.
#
#   bench/resume-storm.py --server src/parleyd [--clients 10000]
#
# Needs an open-file limit of about clients + 1,000 for itself and for the
# server (it raises its soft limit, and the server's, to the hard one):
# `ulimit -n 20000` is enough for 10,000 clients.

import argparse
import asyncio
import base64
import json
import os
import resource
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"


def rss_kib(pid):
	with open("/proc/%d/status" % pid) as f:
		for line in f:
			if line.startswith("VmRSS:"):
				return int(line.split()[1])
	return 0


def open_fds(pid):
	return len(os.listdir("/proc/%d/fd" % pid))


def frame(obj):
	"""A masked client text frame."""
	data = json.dumps(obj).encode()
	n = len(data)
	if n < 126:
		hdr = struct.pack("!BB", 0x81, 0x80 | n)
	else:
		hdr = struct.pack("!BBH", 0x81, 0x80 | 126, n)
	key = os.urandom(4)
	masked = bytes(b ^ key[i & 3] for i, b in enumerate(data))
	return hdr + key + masked


class Conn:
	"""A bare WebSocket client: JSON text frames over asyncio streams."""

	def __init__(self, reader, writer):
		self.r, self.w = reader, writer
		self.welcome = None

	@classmethod
	async def open(cls, port):
		r, w = await asyncio.open_connection(HOST, port, limit=1 << 20)
		key = base64.b64encode(os.urandom(16)).decode()
		w.write(("GET /ws HTTP/1.1\r\nHost: %s:%d\r\n"
		    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
		    "\r\n" % (HOST, port, key)).encode())
		head = await r.readuntil(b"\r\n\r\n")
		if b" 101 " not in head.split(b"\r\n", 1)[0]:
			raise RuntimeError("upgrade refused: %r" % head[:80])
		c = cls(r, w)
		c.welcome = await c.recv("welcome")
		return c

	async def recv(self, want=None):
		"""The next JSON frame (of type want); pings are answered."""
		while True:
			b0, b1 = await self.r.readexactly(2)
			n = b1 & 0x7F
			if n == 126:
				n = struct.unpack("!H", await self.r.readexactly(2))[0]
			elif n == 127:
				n = struct.unpack("!Q", await self.r.readexactly(8))[0]
			payload = await self.r.readexactly(n)
			op = b0 & 0x0F
			if op == 0x9:
				key = os.urandom(4)
				self.w.write(struct.pack("!BB", 0x8A, 0x80 | n) + key +
				    bytes(b ^ key[i & 3] for i, b in enumerate(payload)))
				continue
			if op == 0x8:
				raise ConnectionError("closed by the server")
			if op != 0x1:
				continue
			m = json.loads(payload)
			if want is None or m.get("type") == want:
				return m

	async def request(self, obj, want):
		self.w.write(frame(obj))
		while True:
			m = await self.recv()
			if m.get("type") in (want, "error") and \
			    m.get("id") == obj.get("id"):
				return m

	def reset(self):
		"""Ends the TCP connection with a reset: no close frame."""
		sock = self.w.get_extra_info("socket")
		sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
		    struct.pack("ii", 1, 0))
		self.w.transport.abort()


async def observe(obs, counts):
	"""Counts presence changes an observer sees until cancelled."""
	try:
		while True:
			m = await obs.recv()
			t = m.get("type")
			if t in ("user_left", "joined_room"):
				counts[t] = counts.get(t, 0) + 1
	except (asyncio.CancelledError, ConnectionError,
	    asyncio.IncompleteReadError):
		pass


def start_server(path, tmp, clients, extra):
	conf = os.path.join(tmp, "parley.conf")
	with open(conf, "w") as f:
		f.write("""listen = "127.0.0.1"
rooms = { "general" }
plugins = {}
log_level = "warn"
resume_grace = 120
history_size = 100
max_connections = %d
max_connections_per_ip = %d
connects_per_minute_per_ip = 0
requests_per_minute = 0
names_per_minute = 0
rooms_per_minute = 0
messages_per_minute = 0
flood_close_after = 0
ban_after = 0
max_rooms = 100000
state_dir = "%s"
""" % (2 * clients + 400, 2 * clients + 400, os.path.join(tmp, "state")))
		for line in extra:
			f.write(line + "\n")
	out = open(os.path.join(tmp, "stdout"), "wb")
	err = open(os.path.join(tmp, "stderr"), "wb")
	soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

	def limits():
		resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
	proc = subprocess.Popen([path, "--config", conf, "--port", "0"],
	    stdout=out, stderr=err, stdin=subprocess.DEVNULL,
	    preexec_fn=limits)
	deadline = time.monotonic() + 10
	while time.monotonic() < deadline:
		with open(os.path.join(tmp, "stdout")) as f:
			text = f.read()
		if "listening on" in text:
			port = int(text.rsplit(":", 1)[1].split("/")[0])
			return proc, port
		if proc.poll() is not None:
			break
		time.sleep(0.05)
	sys.exit("parleyd did not start: " +
	    open(os.path.join(tmp, "stderr")).read()[-2000:])


async def gather_limited(n, fn, inflight):
	sem = asyncio.Semaphore(inflight)

	async def one(i):
		async with sem:
			return await fn(i)
	return await asyncio.gather(*(one(i) for i in range(n)))


async def settle(pid, seconds=2.0):
	"""Waits for the server's RSS to stop moving; returns it."""
	last = rss_kib(pid)
	while True:
		await asyncio.sleep(seconds / 4)
		now = rss_kib(pid)
		if abs(now - last) < 64:
			return now
		last = now


async def run(a, proc, port):
	pid = proc.pid
	rooms = ["storm-%d" % i for i in range(a.rooms)]
	rss_start = rss_kib(pid)
	# one observer per room, that stays
	observers = []
	for r in rooms:
		o = await Conn.open(port)
		m = await o.request({"type": "create_room", "roomName": r,
		    "id": 1}, "created_room")
		if m["type"] != "created_room":
			sys.exit("create_room: %r" % m)
		observers.append(o)

	async def join(i):
		c = await Conn.open(port)
		m = await c.request({"type": "join_room",
		    "roomName": rooms[i % a.rooms], "username": "u%d" % i,
		    "id": 1}, "room_joined")
		if m["type"] != "room_joined":
			raise RuntimeError("join: %r" % m)
		return c
	t0 = time.monotonic()
	clients = await gather_limited(a.clients, join, a.inflight)
	t_join = time.monotonic() - t0
	sessions = [c.welcome["session"] for c in clients]
	counts = {}
	# the observers drain what the joins sent them, then count
	await asyncio.sleep(1)
	for o in observers:
		while True:
			try:
				await asyncio.wait_for(o.recv(), 0.01)
			except asyncio.TimeoutError:
				break
	tasks = [asyncio.ensure_future(observe(o, counts)) for o in observers]
	rss_before = await settle(pid)
	fds_before = open_fds(pid)

	async def resume(i):
		c = await Conn.open(port)
		m = await c.request({"type": "resume", "session": sessions[i],
		    "id": 1}, "resumed")
		ok = m["type"] == "resumed" and m["username"] == "u%d" % i and \
		    m["rooms"][0]["roomName"] == rooms[i % a.rooms]
		if ok:
			sessions[i] = m["session"]
		return c, ok
	rounds = []
	for rnd in range(a.rounds):
		for c in clients:
			c.reset()
		clients = None
		await asyncio.sleep(1)
		rss_held = await settle(pid)
		fds_held = open_fds(pid)
		t0 = time.monotonic()
		got = await gather_limited(a.clients, resume, a.inflight)
		t_resume = time.monotonic() - t0
		resumed = sum(1 for _, ok in got if ok)
		clients = [c for c, _ in got]
		await asyncio.sleep(1)
		rss_after = await settle(pid)
		rounds.append((resumed, t_resume, rss_held, fds_held,
		    rss_after))
	for t in tasks:
		t.cancel()
	await asyncio.gather(*tasks)
	left, joined = counts.get("user_left", 0), counts.get("joined_room", 0)
	diff = 100.0 * (rss_after - rss_before) / rss_before
	print("resume-storm: %d clients in %d rooms (+%d observers)" %
	    (a.clients, a.rooms, a.rooms))
	print("  joined in %.1f s; rss_kib start=%d before_drop=%d; "
	    "open fds %d" % (t_join, rss_start, rss_before, fds_before))
	for i, (n, ts, held, fds, after) in enumerate(rounds):
		print("  round %d: dropped all with a reset; held: rss_kib=%d "
		    "open_fds=%d; resumed=%d/%d in %.1f s; rss_kib=%d "
		    "(%+.2f%% vs before the first drop)" % (i + 1, held, fds,
		    n, a.clients, ts, after,
		    100.0 * (after - rss_before) / rss_before))
	print("  observers saw user_left=%d joined_room=%d" % (left, joined))
	ok = all(n == a.clients for n, *_ in rounds) and left == 0 and \
	    joined == 0 and abs(diff) <= 5.0
	print("  pass=%d" % ok)
	for c in clients:
		c.w.close()
	for o in observers:
		o.w.close()
	return 0 if ok else 1


def main():
	p = argparse.ArgumentParser(description=__doc__)
	p.add_argument("--server", required=True, help="parleyd to start")
	p.add_argument("--clients", type=int, default=10000)
	p.add_argument("--rooms", type=int, default=100)
	p.add_argument("--set", action="append", default=[],
	    metavar="'KEY = VALUE'", help="a line for the configuration")
	p.add_argument("--rounds", type=int, default=1,
	    help="drops and resumes, one after the other")
	p.add_argument("--inflight", type=int, default=500,
	    help="handshakes under way at once")
	a = p.parse_args()
	soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
	resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
	if hard < a.clients + a.rooms + a.inflight + 100:
		sys.exit("open-file limit %d is too small for %d clients "
		    "(ulimit -n)" % (hard, a.clients))
	tmp = tempfile.mkdtemp(prefix="parley-storm-")
	proc, port = start_server(a.server, tmp, a.clients, a.set)
	try:
		rc = asyncio.run(run(a, proc, port))
	finally:
		proc.terminate()
		try:
			proc.wait(10)
		except subprocess.TimeoutExpired:
			proc.kill()
		shutil.rmtree(tmp, ignore_errors=True)
	sys.exit(rc)


if __name__ == "__main__":
	main()
