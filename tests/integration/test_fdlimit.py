#!/usr/bin/python3
#
# test_fdlimit.py: a daemon with a low open-file limit (as under
# `ulimit -n 64`). parleyd accepts within its descriptor budget: near the
# limit a new connection gets 503 at once, nothing spins, the refusals
# are logged once per interval and counted in /metrics, and the listener
# takes clients again as soon as descriptors are free. Idle TCP
# connections that never send a request do not lock new clients out.

import asyncio
import base64
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Suite, RawWS, TestFailure,  # noqa
    check, check_eq, http_get, read_http_head, scaled, HOST, OP_TEXT,
    VALGRIND)

suite = Suite("fdlimit")
case = suite.case

NOFILE = 64


async def try_upgrade(server, timeout=3):
	"""One upgrade attempt: (101, RawWS) when it worked, else (status or
	"reset", None). Failing to answer at all is a test failure."""
	try:
		reader, writer = await asyncio.wait_for(
		    asyncio.open_connection(HOST, server.port), scaled(timeout))
	except (ConnectionError, OSError):
		return "reset", None
	key = base64.b64encode(os.urandom(16)).decode()
	writer.write(("GET /ws HTTP/1.1\r\nHost: %s:%d\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" %
	    (HOST, server.port, key)).encode())
	try:
		await writer.drain()
		resp = await read_http_head(reader, scaled(timeout))
	except (ConnectionError, OSError):
		writer.close()
		return "reset", None
	except TestFailure as e:
		writer.close()
		if "connection ended" in str(e):
			return "reset", None
		raise
	if resp.status != 101:
		writer.close()
		return resp.status, None
	raw = RawWS(reader, writer, "c")
	f = await raw.read_frame()
	check_eq(f.opcode, OP_TEXT, "first frame")
	return 101, raw


def metric(text, name):
	m = re.search(r"^parley_%s (\d+)$" % name, text, re.M)
	check(m is not None, "metric %s in %r" % (name, text[:300]))
	return int(m.group(1))


async def get_in(server, within, what):
	"""Retries an upgrade until it works; returns the RawWS and the time
	it took."""
	t0 = time.monotonic()
	seen = []
	while True:
		status, raw = await try_upgrade(server)
		if status == 101:
			return raw, time.monotonic() - t0
		seen.append(status)
		if time.monotonic() - t0 > scaled(within):
			raise TestFailure("%s: no upgrade within %gs; answers %r" %
			    (what, scaled(within), seen[-10:]))
		await asyncio.sleep(0.1)


@case(timeout=90)
async def test_refuses_near_the_limit_and_recovers(t):
	# Accounts off and the state in memory: their databases (and
	# journals) would take descriptors of the small budget this test
	# is about.
	s = t.start_server({"accounts": False, "state_store": "memory"},
	    nofile=NOFILE)
	# Fill up. An upgrade holds two descriptors until libmicrohttpd's
	# next run closes its own, so a refusal can come a moment early:
	# full means refused three times in a row, a little apart.
	clients = []
	refused = []
	while len(refused) < 3:
		check(len(clients) < NOFILE, "no refusal under the limit")
		status, raw = await try_upgrade(s)
		if status == 101:
			clients.append(raw)
			refused = []
		else:
			refused.append(status)
			await asyncio.sleep(0.1)
	check_eq(refused, [503] * 3, "answers once descriptors run short")
	check(len(clients) >= 4, "only %d clients fitted" % len(clients))
	check(s.open_fds() < NOFILE, "descriptors stay under the limit")

	# Ten seconds at the limit with a client knocking ten times a
	# second: each knock is answered at once, and nothing spins.
	cpu0, t0 = s.cpu_seconds(), time.monotonic()
	answers = []
	while time.monotonic() - t0 < 10:
		status, raw = await try_upgrade(s, timeout=2)
		check(raw is None, "an upgrade got through at the limit")
		answers.append(status)
		await asyncio.sleep(0.1)
	cpu = (s.cpu_seconds() - cpu0) / (time.monotonic() - t0)
	check(all(a in (503, "reset") for a in answers),
	    "answers at the limit: %r" % answers[:20])
	check(answers.count(503) >= len(answers) // 2,
	    "mostly 503: %r" % answers[:20])
	if not VALGRIND:
		check(cpu < 0.05, "CPU at the limit: %.1f%% of a core" %
		    (cpu * 100))

	# The clients already in are served as before.
	await clients[0].send_json({"type": "ping", "id": 7})
	pong = await clients[0].read_json("pong")
	check_eq(pong.get("id"), 7, "pong id")

	# Logged once per interval, not once per refusal.
	lines = [l for l in s.stderr(tail=100000).splitlines()
	    if "new connections refused" in l]
	check(1 <= len(lines) <= 3, "refusal log lines: %d for %d refusals" %
	    (len(lines), len(answers)))

	# Descriptors free again: the listener takes clients at once.
	for raw in clients[:4]:
		raw.close()
	raw, took = await get_in(s, 5, "after clients left")
	raw.close()
	for raw in clients[4:8]:
		raw.close()
	r = await http_get(s, "/metrics")
	check_eq(r.status, 200, "/metrics")
	check(metric(r.body.decode(), "accept_refused_total") >= len(answers),
	    "refusals counted")
	for raw in clients[8:]:
		raw.close()


@case(timeout=90)
async def test_idle_tcp_does_not_lock_out(t):
	"""64 TCP connections that never send a request: a new client still
	gets in within a couple of seconds, not after http_timeout."""
	s = t.start_server({"http_timeout": 60, "accounts": False}, nofile=NOFILE)
	idle = []
	for i in range(64):
		sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
		sock.settimeout(scaled(5))
		sock.connect((HOST, s.port))
		idle.append(sock)
	try:
		cpu0, t0 = s.cpu_seconds(), time.monotonic()
		raw, took = await get_in(s, 5, "with 64 idle connections")
		check(took < scaled(4), "locked out for %.1fs" % took)
		await raw.send_json({"type": "ping", "id": 1})
		await raw.read_json("pong")
		# A second and a third: each makes room the same way.
		more = [(await get_in(s, 5, "next client"))[0]
		    for i in range(2)]
		await asyncio.sleep(2)
		cpu = (s.cpu_seconds() - cpu0) / (time.monotonic() - t0)
		if not VALGRIND:
			check(cpu < 0.05, "CPU with idle connections: %.1f%%" %
			    (cpu * 100))
		r = await http_get(s, "/metrics")
		if r.status == 200:
			check(metric(r.body.decode(), "http_evicted_total") >= 1,
			    "evictions counted")
		for c in [raw] + more:
			c.close()
	finally:
		for sock in idle:
			sock.close()


if __name__ == "__main__":
	suite.main()
