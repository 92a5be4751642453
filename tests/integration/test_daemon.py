#!/usr/bin/python3
#
# test_daemon.py: the built parleyd as a program: --version, --help,
# --check-config with good and bad files, --port 0 and --listen, start-up
# failures, shutdown on SIGTERM and SIGINT (close 1001 to every client,
# exit 0), and two servers side by side.

import asyncio
import os
import re
import signal
import sys
import tempfile
import shutil
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Suite, Server, TestFailure, check,  # noqa
    check_eq, run_daemon, http_get, lua_config, scaled, uniq, HOST,
    VALGRIND)

suite = Suite("daemon")
case = suite.case


class TempDir:
	def __enter__(self):
		self.path = tempfile.mkdtemp(prefix="parley-daemon-")
		return self

	def __exit__(self, *exc):
		shutil.rmtree(self.path, ignore_errors=True)

	def write(self, name, text):
		p = os.path.join(self.path, name)
		with open(p, "w") as f:
			f.write(text)
		return p


def check_status(proc, what, ok):
	if VALGRIND:
		check(proc.returncode != 99, "%s: valgrind found errors:\n%s" %
		    (what, proc.stderr))
	if ok:
		check(proc.returncode == 0, "%s: exit %d, stderr:\n%s" % (what,
		    proc.returncode, proc.stderr))
	else:
		check(proc.returncode not in (0, None) and proc.returncode > 0,
		    "%s: exit %d, want failure; stderr:\n%s" % (what,
		    proc.returncode, proc.stderr))


@case()
async def test_version(t):
	p = run_daemon(["--version"])
	check_status(p, "--version", True)
	first = p.stdout.splitlines()[0] if p.stdout else ""
	check(first.startswith("parleyd "), "--version prints %r" % first)
	check(re.search(r"\d+\.\d+", first), "a version number in %r" % first)


@case()
async def test_help(t):
	p = run_daemon(["--help"])
	check_status(p, "--help", True)
	out = p.stdout
	check("usage" in out.lower(), "--help mentions usage: %r" % out[:300])
	for opt in ("--config", "--port", "--listen", "--check-config",
	    "--version", "--help"):
		check(opt in out, "--help mentions %s" % opt)


@case()
async def test_bad_option(t):
	p = run_daemon(["--no-such-option"])
	check_status(p, "unknown option", False)
	check(p.stderr.strip(), "unknown option: a message on stderr")
	check("listening" not in p.stdout, "did not start")
	p = run_daemon(["--port"])
	check_status(p, "--port without a value", False)
	with TempDir() as d:
		conf = d.write("ok.conf", "listen = \"127.0.0.1\"\n")
		for port in ("-1", "65536", "http", "80x"):
			p = run_daemon(["--config", conf, "--port", port])
			check_status(p, "--port %s" % port, False)


GOOD = """-- a complete configuration
listen = "127.0.0.1"
web_root = "%s"
rooms = { "general", "random" }
history_size = 100
max_message_bytes = 4096
max_frame_bytes = 65536
allowed_origins = { "http://good.example" }
ping_interval = 30   -- seconds
ping_timeout = 20
http_timeout = 10
log_level = "debug"
"""


@case()
async def test_check_config_good(t):
	with TempDir() as d:
		for name, text in (("full.conf", GOOD % d.path),
		    ("empty.conf", ""),
		    ("comments.conf", "-- nothing but a comment\n\n"),
		    ("harness.conf", lua_config(dict(Server.DEFAULTS)))):
			conf = d.write(name, text)
			p = run_daemon(["--check-config", "--config", conf])
			check_status(p, "--check-config %s" % name, True)
			check("listening" not in p.stdout, "did not start")
		# option order does not matter
		p = run_daemon(["--config", conf, "--check-config"])
		check_status(p, "--config FILE --check-config", True)


BAD = [
	("unknown key", "listen = \"127.0.0.1\"\nhistory_size = 10\n"
	    "no_such_option = 1\n", 3),
	("unknown key, misspelt", "rooms = { \"general\" }\n\n\n\n"
	    "ping_intervall = 5\n", 5),
	("wrong type, string for number", "listen = \"127.0.0.1\"\n"
	    "history_size = \"many\"\n", 2),
	("wrong type, number for string", "-- comment\nlisten = 5\n", 2),
	("wrong type, string for list", "\n\n\nrooms = \"general\"\n", 4),
	("wrong type, numbers in list", "rooms = { \"a\", 2 }\n", 1),
	("syntax error", "listen = \"127.0.0.1\"\nrooms = { \"general\" }\n"
	    "history_size = = 5\n", 3),
	("unterminated string", "listen = \"127.0.0.1\nrooms = {}\n", 1),
]


@case()
async def test_check_config_bad(t):
	with TempDir() as d:
		for what, text, line in BAD:
			conf = d.write("bad.conf", text)
			p = run_daemon(["--check-config", "--config", conf])
			check_status(p, "--check-config with %s" % what, False)
			want = "%s:%d:" % (conf, line)
			check(want in p.stderr, "%s: stderr should name %r, got "
			    "%r" % (what, want, p.stderr[-500:]))
			check("listening" not in p.stdout, "did not start")
			# the daemon refuses to start with it as well
			p = run_daemon(["--config", conf, "--port", "0"])
			check_status(p, "start with %s" % what, False)
			check(want in p.stderr, "%s at start: stderr should name "
			    "%r, got %r" % (what, want, p.stderr[-500:]))
		missing = os.path.join(d.path, "missing.conf")
		p = run_daemon(["--check-config", "--config", missing])
		check_status(p, "--check-config with a missing file", False)
		check(missing in p.stderr, "stderr names the missing file: %r"
		    % p.stderr[-300:])



@case()
async def test_check_config_missing_plugin(t):
	# --check-config and start-up agree on a plugin that is not there,
	# by name or by path; a plugin that is there passes both.
	with TempDir() as d:
		for entry in ("no-such-plugin",
		    os.path.join(d.path, "nowhere.so")):
			conf = d.write("p.conf", "plugins = { \"%s\" }\n"
			    "state_dir = \"%s\"\n" % (entry, d.path))
			p = run_daemon(["--check-config", "--config", conf])
			check_status(p, "--check-config with plugin %s" % entry,
			    False)
			check("no-such-plugin" in p.stderr or
			    "nowhere.so" in p.stderr,
			    "stderr names the plugin: %r" % p.stderr[-300:])
			p = run_daemon(["--config", conf, "--port", "0"])
			check_status(p, "start with plugin %s" % entry, False)
		conf = d.write("p.conf", "plugins = { \"example\" }\n"
		    "state_dir = \"%s\"\n" % d.path)
		p = run_daemon(["--check-config", "--config", conf])
		check_status(p, "--check-config with the example plugin", True)


@case()
async def test_port_zero(t):
	s = Server()
	s.start()
	t.own.append(s)
	lines = s.stdout().splitlines()
	check_eq(lines, ["parleyd: listening on http://127.0.0.1:%d/" %
	    s.port], "stdout")
	r = await http_get(s, "/healthz")
	check_eq(r.status, 200, "healthz on the printed port")
	c = await t.client(s)
	await c.sync()


@case()
async def test_listen_option(t):
	# no listen in the file; --listen decides
	s = Server({"listen": None}, args=["--listen", HOST])
	s.start()
	t.own.append(s)
	check_eq(s.listen_host, HOST, "address in the listening line")
	r = await http_get(s, "/healthz")
	check_eq(r.status, 200, "healthz")
	# --listen overrides the file
	s2 = Server({"listen": "0.0.0.0"}, args=["--listen", HOST])
	s2.start()
	t.own.append(s2)
	check_eq(s2.listen_host, HOST, "--listen over the file")


@case()
async def test_port_in_use(t):
	s = t.start_server()
	with TempDir() as d:
		conf = d.write("p.conf", "listen = \"127.0.0.1\"\n")
		p = run_daemon(["--config", conf, "--port", str(s.port)])
		check_status(p, "a port in use", False)
		check(p.stderr.strip(), "a message on stderr")
	r = await http_get(s, "/healthz")
	check_eq(r.status, 200, "the first server is fine")


async def shutdown_by(t, sig):
	s = Server()
	s.start()
	t.own.append(s)
	room = uniq("bye")
	a = await t.client(s, label="a")
	await a.create(room)
	b = await t.client(s, label="b")
	await b.join(room)
	c = await t.client(s, label="c")
	raw = await t.raw(s)
	await raw.send_json({"type": "join_room", "roomName": room, "id": 1})
	await raw.read_json("room_joined")
	# a half-sent fragmented message and a half-sent HTTP request must
	# not hold the shutdown up
	raw2 = await t.raw(s)
	await raw2.send_raw(b"\x01\x85")
	half = await asyncio.open_connection(HOST, s.port)
	half[1].write(b"GET /index.html HTTP/1.1\r\nHost: x\r\n")
	await half[1].drain()
	await a.sync()
	t0 = time.monotonic()
	s.send_signal(sig)
	for x in (a, b, c):
		code = await x.wait_closed(5)
		check_eq(code, 1001, "%s: close code on %s" % (x.label,
		    signal.Signals(sig).name))
	await raw.expect_close(1001)
	await raw2.expect_close(1001)
	rc = await s.await_exit(5)
	check(rc is not None, "parleyd still running 5s after %s" %
	    signal.Signals(sig).name)
	check_eq(rc, 0, "exit status after %s; stderr:\n%s" %
	    (signal.Signals(sig).name, s.stderr()))
	dt = time.monotonic() - t0
	check(dt < scaled(3), "shutdown took %.1fs" % dt)
	half[1].close()
	s.stop()  # cleans up; the status was checked above
	# nothing listens any more
	try:
		r, w = await asyncio.wait_for(asyncio.open_connection(HOST,
		    s.port), 2)
		w.close()
		raise TestFailure("port %d still accepts connections" % s.port)
	except (ConnectionError, OSError):
		pass


@case()
async def test_sigterm(t):
	await shutdown_by(t, signal.SIGTERM)


@case()
async def test_sigint(t):
	await shutdown_by(t, signal.SIGINT)


@case()
async def test_sigterm_idle(t):
	s = Server()
	s.start()
	t.own.append(s)
	s.stop()  # exit status 0 checked


@case()
async def test_two_servers(t):
	s1, s2 = Server(), Server()
	s1.start()
	t.own.append(s1)
	s2.start()
	t.own.append(s2)
	check(s1.port != s2.port, "two servers on different ports")
	a = await t.client(s1)
	b = await t.client(s2)
	room = uniq("only1")
	await a.create(room)
	await b.expect_error({"type": "join_room", "roomName": room},
	    "room_not_found")
	await a.set_name("same-name")
	await b.set_name("same-name")
	await s1.astop()
	code = await a.wait_closed(5)
	check_eq(code, 1001, "close code from the stopped server")
	await b.sync()
	await s2.astop()


@case()
async def test_parallel_starts(t):
	servers = [Server() for _ in range(4)]
	for s in servers:
		t.own.append(s)
		s.proc = None
	loop = asyncio.get_running_loop()
	await asyncio.gather(*(loop.run_in_executor(None, s.start)
	    for s in servers))
	check_eq(len({s.port for s in servers}), 4, "distinct ports")
	for s in servers:
		r = await http_get(s, "/healthz")
		check_eq(r.status, 200, "healthz")
	for s in servers:
		await s.astop()


if __name__ == "__main__":
	suite.main()
