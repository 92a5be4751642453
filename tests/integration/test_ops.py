#!/usr/bin/python3
#
# test_ops.py: parleyd as operators run it: SIGHUP reloads (a live change,
# a broken file, restart-only settings), the log (JSON lines, a log file
# reopened on SIGUSR1, one line per connection opened and closed),
# /metrics from loopback and on the admin listener, systemd readiness
# over NOTIFY_SOCKET, --pidfile, --user, the graceful shutdown on SIGTERM
# and --version.

import asyncio
import json
import os
import pwd
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Suite, Server, TestFailure, Skip,  # noqa
    check, check_eq, run_daemon, http_get, http_raw, lua_config,
    make_web_root, scaled, uniq, HOST, OP_TEXT, OP_BINARY, OP_CLOSE,
    close_payload, make_frame)

suite = Suite("ops")
case = suite.case


# ---------------------------------------------------------------------------
# Helpers

class TempDir:
	"""A directory of the case's own (pid files, log files, sockets)."""

	def __enter__(self):
		self.path = tempfile.mkdtemp(prefix="parley-ops-")
		return self

	def __exit__(self, *exc):
		if os.environ.get("PARLEY_KEEP", "") in ("", "0"):
			shutil.rmtree(self.path, ignore_errors=True)

	def join(self, name):
		return os.path.join(self.path, name)


class _PortInFile(list):
	"""Server arguments that pretend to carry --port, so that the
	harness does not add --port 0 and the file's port applies."""

	def __contains__(self, x):
		return x == "--port" or list.__contains__(self, x)


def free_port():
	s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
	try:
		s.bind((HOST, 0))
		return s.getsockname()[1]
	finally:
		s.close()


def log_text(server):
	"""All of the server's standard error (the harness keeps a tail)."""
	try:
		with open(server.stderr_path, "rb") as f:
			return f.read().decode("utf-8", "replace")
	except OSError:
		return ""


def file_text(path):
	try:
		with open(path, "rb") as f:
			return f.read().decode("utf-8", "replace")
	except OSError:
		return ""


async def wait_text(read, pattern, count=1, timeout=5, what=None):
	"""Waits until read() holds count matches of pattern; returns
	them."""
	rx = re.compile(pattern, re.M)
	deadline = time.monotonic() + scaled(timeout)
	while True:
		text = read()
		found = rx.findall(text)
		if len(found) >= count:
			return found
		if time.monotonic() > deadline:
			raise TestFailure("no %s within %gs (%d of %d); text "
			    "(tail):\n%s" % (what or repr(pattern),
			    scaled(timeout), len(found), count,
			    "\n".join(text.splitlines()[-25:])))
		await asyncio.sleep(0.02)


async def wait_log(server, pattern, count=1, timeout=5):
	return await wait_text(lambda: log_text(server), pattern, count,
	    timeout)


# text or JSON log lines
RELOAD_DONE = r"(?:core: |\"source\":\"core\",\"msg\":\")(?:reloaded |" \
    r"reload: .*keeping the running configuration)"


def write_config(server, text=None, **changes):
	"""Rewrites the server's file: the options it started with plus
	changes (None drops one), or text as it is."""
	if text is None:
		server.config.update(changes)
		text = lua_config(server.config)
	tmp = server.config_path + ".new"
	with open(tmp, "w") as f:
		f.write(text)
	os.replace(tmp, server.config_path)


async def reload(server, timeout=5):
	"""SIGHUP, and waits for the reload's last log line; returns the
	log text written since the signal."""
	before = log_text(server)
	n = len(re.findall(RELOAD_DONE, before))
	server.send_signal(signal.SIGHUP)
	await wait_log(server, RELOAD_DONE, n + 1, timeout)
	return log_text(server)[len(before):]


def text_of_length(n, ch="x"):
	return ch * n


def admin_port_of(server):
	m = re.search(r"^parleyd: admin listening on http://127\.0\.0\.1:"
	    r"(\d+)/$", server.stdout(), re.M)
	check(m is not None, "no admin listening line on stdout: %r" %
	    server.stdout())
	return int(m.group(1))


def endpoint(port):
	"""What http_get needs to reach another port of the server."""
	return types.SimpleNamespace(port=port)


async def port_open(port):
	try:
		r, w = await asyncio.wait_for(asyncio.open_connection(HOST,
		    port), scaled(2))
	except (ConnectionError, OSError):
		return False
	w.close()
	return True


# ---------------------------------------------------------------------------
# Prometheus text format (0.0.4)

METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE_RX = re.compile(r"^(%s)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$" %
    METRIC_NAME)
LABEL_RX = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*'
    r'(,|$)')
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def parse_labels(text, line):
	labels = {}
	pos = 0
	while pos < len(text):
		m = LABEL_RX.match(text, pos)
		check(m is not None, "bad label set in %r" % line)
		check(m.group(1) not in labels, "label %s twice in %r" %
		    (m.group(1), line))
		check(re.fullmatch(r'(?:[^\\]|\\[\\"n])*', m.group(2))
		    is not None, "bad escape in a label of %r" % line)
		labels[m.group(1)] = m.group(2)
		pos = m.end()
		if m.group(3) == "":
			break
	return labels


def family_of(name, types_):
	if name in types_:
		return name
	for suffix in ("_bucket", "_sum", "_count"):
		if name.endswith(suffix) and types_.get(name[:-len(suffix)]) \
		    in ("histogram", "summary"):
			return name[:-len(suffix)]
	return name


class Metrics:
	"""Parsed /metrics: samples by (name, sorted labels), the declared
	types, and the problems that make it invalid Prometheus text."""

	def __init__(self, text):
		self.text = text
		self.samples = {}
		self.types = {}
		self.order = []  # (family, line) of each line, in order
		self.sampled = set()
		self.ungrouped = []
		self.ungrouped_at = []
		for line in text.split("\n"):
			if line == "":
				continue
			if line.startswith("#"):
				self._comment(line)
				continue
			m = SAMPLE_RX.match(line)
			check(m is not None, "not a sample line: %r" % line)
			name = m.group(1)
			labels = parse_labels(m.group(2) or "", line)
			try:
				value = float(m.group(3))
			except ValueError:
				raise TestFailure("bad value in %r" % line)
			fam = family_of(name, self.types)
			check(fam in self.types, "sample before (or without) a "
			    "# TYPE line for %s: %r" % (fam, line))
			key = (name, tuple(sorted(labels.items())))
			check(key not in self.samples, "series twice: %r" % line)
			self.samples[key] = value
			self.order.append((fam, line))
			self.sampled.add(fam)
		check(text.endswith("\n"), "the exposition does not end with a "
		    "line feed")
		# "All lines for a given metric must be provided as one
		# single group, with the optional HELP and TYPE lines first."
		seen, prev, prevline = set(), None, None
		for fam, line in self.order:
			if fam != prev and fam in seen and \
			    fam not in self.ungrouped:
				self.ungrouped.append(fam)
				self.ungrouped_at.append("%r after %r" % (line,
				    prevline))
			seen.add(fam)
			prev, prevline = fam, line

	def _comment(self, line):
		parts = line.split(None, 3)
		if len(parts) >= 2 and parts[1] == "TYPE":
			check(len(parts) == 4 and re.fullmatch(METRIC_NAME,
			    parts[2]) and parts[3] in TYPES,
			    "bad TYPE line %r" % line)
			check(parts[2] not in self.types, "second TYPE line for "
			    "%s" % parts[2])
			check(parts[2] not in self.sampled, "TYPE line for %s after "
			    "its samples" % parts[2])
			self.types[parts[2]] = parts[3]
			self.order.append((parts[2], line))
		elif len(parts) >= 2 and parts[1] == "HELP":
			check(len(parts) >= 3 and re.fullmatch(METRIC_NAME,
			    parts[2]), "bad HELP line %r" % line)
			self.order.append((parts[2], line))

	def get(self, name, **labels):
		key = (name, tuple(sorted(labels.items())))
		check(key in self.samples, "no sample %s%s in /metrics" % (name,
		    labels or ""))
		return self.samples[key]

	def series(self, name):
		return {k[1]: v for k, v in self.samples.items() if k[0] == name}

	def total(self, name):
		return sum(self.series(name).values())


async def metrics(server, port=None):
	r = await http_get(endpoint(port) if port else server, "/metrics")
	check_eq(r.status, 200, "/metrics status")
	ctype = r.header("content-type") or ""
	check(ctype.startswith("text/plain") and "version=0.0.4" in ctype,
	    "/metrics Content-Type %r" % ctype)
	return Metrics(r.body.decode("utf-8"))


async def wait_metric(server, name, want, timeout=5, **labels):
	deadline = time.monotonic() + scaled(timeout)
	while True:
		m = await metrics(server)
		v = m.get(name, **labels)
		if v == want:
			return m
		if time.monotonic() > deadline:
			raise TestFailure("%s%s is %r, want %r" % (name, labels or
			    "", v, want))
		await asyncio.sleep(0.05)


# ---------------------------------------------------------------------------
# SIGHUP

@case()
async def test_reload_live_change(t):
	old_room = uniq("old")
	s = t.start_server({"max_message_bytes": 100,
	    "rooms": ["general", old_room]})
	a = await t.client(s, label="a")
	b = await t.client(s, label="b")
	name = uniq("keep")
	await a.set_name(name)
	await a.join("general")
	await b.join("general")
	long_msg = text_of_length(150, "m")
	await a.expect_error({"type": "send_message", "roomName": "general",
	    "message": long_msg}, "message_too_long")
	await a.say("general", text_of_length(100, "k"))  # the limit itself

	rooms = [uniq("new1"), uniq("new2")]
	write_config(s, max_message_bytes=200, rooms=["general"] + rooms)
	done = await reload(s)
	check("core: reloaded " + s.config_path in done,
	    "no 'reloaded' line:\n%s" % done)

	for c in (a, b):
		for room in rooms:
			r = await c.recv("room_created", pred=lambda m, room=room:
			    m.get("roomName") == room)
			check("id" not in r, "a broadcast with an id: %r" % r)
	# the same sockets work, with the same name
	await a.sync()
	await b.sync()
	got = await a.say("general", long_msg)
	check_eq(got.get("sender"), name, "sender after the reload")
	m = await b.recv("new_message", pred=lambda m:
	    m.get("message") == long_msg)
	check_eq(m.get("sender"), name, "sender seen by b")
	await a.expect_error({"type": "send_message", "roomName": "general",
	    "message": text_of_length(201, "z")}, "message_too_long")
	r = await b.expect({"type": "list_rooms"}, "rooms")
	have = {x.get("roomName") for x in r.get("rooms", [])}
	# rooms no longer listed are not removed
	for room in ["general", old_room] + rooms:
		check(room in have, "room %s listed after the reload: %r" % (room,
		    r))
	# the name is still held
	await b.expect_error({"type": "set_username", "username": name},
	    "name_taken")
	# a new room is an ordinary one: joinable, and new clients see it
	c = await t.client(s, label="c")
	for room in rooms:
		check(room in c.welcome.get("rooms", []), "welcome.rooms after "
		    "the reload: %r" % c.welcome)
	await c.join(rooms[0])
	# a second reload with the same rooms creates nothing twice
	await reload(s)
	await a.sync()
	check_eq(a.take("room_created"), [], "room_created on a reload that "
	    "adds no room")


async def broken_reload(t, bad_text, bad_line, want):
	"""Starts with max_message_bytes 100, reloads a file whose line
	bad_line is broken, and checks nothing changed."""
	s = t.start_server({"max_message_bytes": 100})
	a = await t.client(s, label="a")
	name = uniq("stay")
	await a.set_name(name)
	await a.join("general")
	good = lua_config(s.config)
	lines = good.splitlines()
	# the change that must not apply comes before the broken line
	lines.insert(bad_line - 2, "max_message_bytes = 200")
	lines.insert(bad_line - 1, bad_text)
	write_config(s, text="\n".join(lines) + "\n")
	check_eq(open(s.config_path).read().splitlines()[bad_line - 1],
	    bad_text, "the broken line's number")
	room = uniq("notmade")
	done = await reload(s)
	check("keeping the running configuration" in done,
	    "reload of a broken file: %r" % done)
	m = re.search(r"^.* error core: .*$", done, re.M)
	check(m is not None, "no error line from core: %r" % done)
	check("%s:%d:" % (s.config_path, bad_line) in m.group(0),
	    "the error names %s:%d: %r" % (s.config_path, bad_line,
	    m.group(0)))
	check(re.search(want, m.group(0)) is not None,
	    "the error says %r: %r" % (want, m.group(0)))
	check("core: reloaded" not in done, "a broken file 'reloaded': %r" %
	    done)
	# the old limit holds, the connection and name survive
	await a.sync()
	await a.expect_error({"type": "send_message", "roomName": "general",
	    "message": text_of_length(150)}, "message_too_long")
	got = await a.say("general", text_of_length(100, "y"))
	check_eq(got.get("sender"), name, "name after a refused reload")
	check(s.alive(), "parleyd died on a broken reload")
	# and a fixed file applies afterwards
	write_config(s, max_message_bytes=200, rooms=["general", room])
	await reload(s)
	await a.recv("room_created", pred=lambda m: m.get("roomName") == room)
	await a.say("general", text_of_length(150, "w"))


@case()
async def test_reload_unknown_key(t):
	await broken_reload(t, "no_such_option = 1", 5,
	    r"unknown option.*no_such_option")


@case()
async def test_reload_syntax_error(t):
	await broken_reload(t, "rooms = = {", 7, r"near|expected|unexpected")


@case()
async def test_reload_bad_value(t):
	await broken_reload(t, "max_message_bytes = -5", 9,
	    r"max_message_bytes")


@case()
async def test_reload_restart_only_port(t):
	# --port on the command line would hold the port across reloads:
	# this server takes its port from the file.
	p1 = free_port()
	s = Server({"port": p1})
	s.args = _PortInFile(s.args)
	t.own.append(s)
	s.start()
	check_eq(s.port, p1, "the port from the file")
	a = await t.client(s, label="a")
	p2 = free_port()
	write_config(s, port=p2, max_message_bytes=300)
	done = await reload(s)
	check(re.search(r"warn core: reload: .*listen.*restart", done),
	    "no restart warning for a new port:\n%s" % done)
	check("core: reloaded" in done, "the rest of the file applies: %r" %
	    done)
	check(not await port_open(p2), "parleyd listens on the new port %d "
	    "after a reload" % p2)
	r = await http_get(s, "/healthz")
	check_eq(r.status, 200, "/healthz on the old port")
	await a.sync()
	await a.join("general")
	await a.say("general", text_of_length(300))  # the live change applied
	b = await t.client(s, label="b")
	await b.sync()
	r = await http_get(s, "/metrics")
	check_eq(r.status, 200, "/metrics from loopback after the reload")
	# the listen address is restart-only too
	write_config(s, listen="127.0.0.2")
	done = await reload(s)
	check(re.search(r"warn core: reload: .*listen.*restart", done),
	    "no restart warning for a new listen address:\n%s" % done)
	b2 = await t.client(s, label="b2")
	await b2.sync()


@case()
async def test_reload_restart_only_admin_added(t):
	s = t.start_server()
	a = await t.client(s, label="a")
	write_config(s, admin_listen="127.0.0.1:0")
	done = await reload(s)
	check(re.search(r"warn core: reload: admin_listen.*restart", done),
	    "no restart warning for admin_listen:\n%s" % done)
	check("admin listening" not in s.stdout(), "an admin listener after "
	    "a reload: %r" % s.stdout())
	# /metrics is still served to loopback on the main port
	r = await http_get(s, "/metrics")
	check_eq(r.status, 200, "/metrics on the main port after adding "
	    "admin_listen by a reload")
	await a.sync()


@case()
async def test_reload_restart_only_admin_removed(t):
	s = t.start_server({"admin_listen": "127.0.0.1:0"})
	admin = admin_port_of(s)
	a = await t.client(s, label="a")
	write_config(s, admin_listen=None)
	done = await reload(s)
	check(re.search(r"warn core: reload: admin_listen.*restart", done),
	    "no restart warning for admin_listen:\n%s" % done)
	r = await http_get(s, "/metrics")
	check_eq(r.status, 403, "/metrics on the main port after removing "
	    "admin_listen by a reload")
	r = await http_get(endpoint(admin), "/metrics")
	check_eq(r.status, 200, "/metrics on the admin listener")
	await a.sync()


# ---------------------------------------------------------------------------
# The log

ISO_TS = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"
LEVELS = ("error", "warn", "info", "debug")


def json_log_lines(raw):
	"""Parses a JSON log; every line must be one object."""
	out = []
	for i, line in enumerate(raw.split(b"\n")):
		if line == b"":
			continue
		try:
			text = line.decode("utf-8")
		except UnicodeDecodeError as e:
			raise TestFailure("log line %d is not UTF-8 (%s): %r" %
			    (i + 1, e, line[:300]))
		try:
			obj = json.loads(text)
		except ValueError as e:
			raise TestFailure("log line %d is not JSON (%s): %r" %
			    (i + 1, e, text[:300]))
		check(isinstance(obj, dict), "log line %d is not an object: %r" %
		    (i + 1, text[:300]))
		for k in ("ts", "level", "source", "msg"):
			check(isinstance(obj.get(k), str), "log line %d: no string "
			    "%s: %r" % (i + 1, k, text[:300]))
		check(re.match(ISO_TS, obj["ts"]), "log line %d: ts %r" %
		    (i + 1, obj["ts"]))
		check(obj["level"] in LEVELS, "log line %d: level %r" % (i + 1,
		    obj["level"]))
		out.append(obj)
	check(raw.endswith(b"\n"), "the log does not end with a line feed")
	return out


UPGRADE = ("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
    "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")


@case()
async def test_log_json(t):
	s = t.start_server({"log_format": "json",
	    "allowed_origins": ["http://ok.example"]})
	a = await t.client(s, label="a")
	await a.join("general")
	await a.say("general", "hello")
	# http: a refused origin (info) and a refused upgrade (debug); the
	# origin carries characters JSON must escape
	origin = 'http://q"uote\\back.example'
	r = await http_raw(s, UPGRADE + "Origin: %s\r\n\r\n" % origin,
	    read_to_eof=False)
	check_eq(r.status, 403, "upgrade from a refused origin")
	r = await http_get(s, "/ws")
	check_eq(r.status, 400, "GET /ws without an upgrade")
	await a.close()
	await reload(s)
	s.send_signal(signal.SIGTERM)
	check_eq(await s.await_exit(5), 0, "exit status")
	with open(s.stderr_path, "rb") as f:
		raw = f.read()
	s.stop()
	lines = json_log_lines(raw)
	sources = {x["source"] for x in lines}
	for src in ("core", "ws", "http"):
		check(src in sources, "no line from %s; sources %r" % (src,
		    sorted(sources)))
	check(any(origin in x["msg"] for x in lines if x["source"] ==
	    "http"), "the refused origin %r, unescaped, in no http line" %
	    origin)
	check(any(x["msg"].startswith("open client=") for x in lines),
	    "no open line")
	check(any(x["msg"].startswith("close client=") for x in lines),
	    "no close line")
	check(any(x["level"] == "debug" for x in lines), "no debug line at "
	    "log_level debug")
	check(not any("hello" in x["msg"] for x in lines), "a message body "
	    "in the log")


@case()
async def test_log_json_not_utf8(t):
	# A header is bytes, not text: what a client puts there must not
	# make the JSON log invalid.
	s = t.start_server({"log_format": "json",
	    "allowed_origins": ["http://ok.example"]})
	r = await http_raw(s, UPGRADE.encode() +
	    b"Origin: http://bad\xff\xfe.example\r\n\r\n", read_to_eof=False)
	check_eq(r.status, 403, "upgrade from a refused origin")
	await wait_log(s, "refused upgrade from origin")
	with open(s.stderr_path, "rb") as f:
		json_log_lines(f.read())


@case()
async def test_log_file_reopen(t):
	with TempDir() as d:
		path = d.join("parley.log")
		s = t.start_server({"log_file": path})
		read = lambda: file_text(path)  # noqa: E731
		await wait_text(read, r"core: parleyd .* serving")
		check(log_text(s).strip() == "", "log lines on stderr with "
		    "log_file set: %r" % log_text(s)[:500])
		a = await t.client(s, label="a")
		await wait_text(read, r"ws: open client=\d+ addr=127\.0\.0\.1 "
		    r"name=%s$" % re.escape(a.username))
		os.rename(path, path + ".1")
		b = await t.client(s, label="b")
		# until SIGUSR1 the renamed file gets the lines
		await wait_text(lambda: file_text(path + ".1"),
		    r"open client=\d+ .*name=%s$" % re.escape(b.username))
		check(not os.path.exists(path), "a new log file before SIGUSR1")
		s.send_signal(signal.SIGUSR1)
		await wait_text(read, r"core: log file reopened$")
		c = await t.client(s, label="c")
		await wait_text(read, r"open client=\d+ .*name=%s$" %
		    re.escape(c.username))
		check(c.username not in file_text(path + ".1"),
		    "a line after SIGUSR1 went to the old file")
		for line in read().splitlines():
			check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
			    r"(error|warn|info|debug) [a-z][a-z0-9:_.-]*: ", line),
			    "log line format: %r" % line)
		await s.astop()
		check("core: stopped" in read(), "no 'stopped' line in the "
		    "log file")


@case()
async def test_reload_log_settings(t):
	# the log settings apply at once on a reload; a room added by the
	# same reload tells when it is done (the log may not)
	with TempDir() as d:
		path = d.join("after.log")
		s = t.start_server({"log_level": "info"})
		a = await t.client(s, label="a")
		r1, r2 = uniq("lv1"), uniq("lv2")
		write_config(s, log_level="warn", rooms=["general", r1])
		s.send_signal(signal.SIGHUP)
		await a.recv("room_created", pred=lambda m: m["roomName"] == r1)
		b = await t.client(s, label="b")
		await b.sync()
		await asyncio.sleep(0.1)
		check(b.username not in log_text(s), "an info line at log_level "
		    "warn: %r" % log_text(s)[-400:])
		write_config(s, log_level="info", log_format="json",
		    log_file=path, rooms=["general", r1, r2])
		s.send_signal(signal.SIGHUP)
		await a.recv("room_created", pred=lambda m: m["roomName"] == r2)
		c = await t.client(s, label="c")
		await wait_text(lambda: file_text(path), r'"msg":"open client=\d+ '
		    r'addr=127\.0\.0\.1 name=%s"' % re.escape(c.username))
		check(c.username not in log_text(s), "a line on stderr after "
		    "log_file was set by a reload")
		with open(path, "rb") as f:
			json_log_lines(f.read())
		await a.sync()


@case()
async def test_sigusr1_without_log_file(t):
	s = t.start_server()
	a = await t.client(s)
	s.send_signal(signal.SIGUSR1)
	await asyncio.sleep(0.1)
	await a.sync()
	check(s.alive(), "parleyd died on SIGUSR1 without log_file")
	r = await http_get(s, "/healthz")
	check_eq(r.status, 200, "/healthz after SIGUSR1")


def frame_size(n):
	return 2 + (2 if 126 <= n < 65536 else 8 if n >= 65536 else 0) + n


CLOSE_RX = (r"ws: close client=(\d+) addr=(\S+) name=(.*?) code=(\d+) "
    r"duration_ms=(\d+) bytes_in=(\d+) bytes_out=(\d+) reason=(\S+)$")


@case()
async def test_access_lines(t):
	s = t.start_server()
	raw = await t.raw(s, welcome=False)
	got = [await raw.read_frame()]
	check_eq(got[0].json().get("type"), "welcome", "first frame")
	guest = got[0].json().get("username")
	sent = 0
	name = uniq("acc")
	for obj in ({"type": "set_username", "username": name, "id": 1},
	    {"type": "ping", "id": 2}):
		f = make_frame(OP_TEXT, json.dumps(obj))
		await raw.send_raw(f)
		sent += len(f)
		got.append(await raw.read_frame())
	t0 = time.monotonic()
	await asyncio.sleep(0.3)
	close = make_frame(OP_CLOSE, close_payload(1000))
	await raw.send_raw(close)
	sent += len(close)
	f = await raw.read_frame()
	check_eq(f.opcode, OP_CLOSE, "the server's answer to close")
	got.append(f)
	await raw.expect_eof()
	dt = time.monotonic() - t0
	out = sum(frame_size(len(x.payload)) for x in got)
	opened = await wait_log(s, r"ws: open client=(\d+) addr=(\S+) "
	    r"name=(\S+)$")
	mine = [x for x in opened if x[2] == guest]
	check_eq(len(mine), 1, "open lines for %s" % guest)
	cid, addr, _ = mine[0]
	check_eq(addr, "127.0.0.1", "open line addr")
	lines = await wait_log(s, CLOSE_RX)
	mine = [x for x in lines if x[0] == cid]
	check_eq(len(mine), 1, "close lines for client %s" % cid)
	_, addr, lname, code, ms, b_in, b_out, reason = mine[0]
	check_eq(addr, "127.0.0.1", "close line addr")
	check_eq(lname, name, "close line name (the name at the close)")
	check_eq(code, "1000", "close line code")
	check(300 <= int(ms) <= (dt + 0.5) * 1000,
	    "close line duration_ms %s (the connection lasted about %.0f ms)"
	    % (ms, dt * 1000))
	check_eq(int(b_in), sent, "close line bytes_in (the bytes sent "
	    "after the handshake)")
	check_eq(int(b_out), out, "close line bytes_out (the bytes received "
	    "after the handshake)")
	check(reason in ("disconnected", "left"), "close line reason %r" %
	    reason)

	# a close the server starts: a binary message gets 1003
	raw2 = await t.raw(s)
	await raw2.send_frame(OP_BINARY, b"\x00\x01")
	await raw2.expect_close(1003)
	cid2 = (await wait_log(s, r"ws: open client=(\d+) ", 2))[-1]
	lines = await wait_log(s, CLOSE_RX, 2)
	mine = [x for x in lines if x[0] == cid2]
	check_eq(len(mine), 1, "close lines for client %s" % cid2)
	check_eq(mine[0][3], "1003", "close line code for a binary message")

	# a client that vanishes without a close frame
	c = await t.client(s, label="gone")
	c.ws.transport.abort()
	lines = await wait_log(s, CLOSE_RX + "", 3)
	mine = [x for x in lines if x[2] == c.username]
	check_eq(len(mine), 1, "close lines for the vanished client")
	check(mine[0][3] in ("1006", "0"), "close code for a vanished client: "
	    "%s" % mine[0][3])


@case()
async def test_access_line_vanished_code(t):
	# /metrics counts a connection that ends without a close frame
	# under 1006 ("closed without a close handshake"); the access line
	# should say the same.
	s = t.start_server()
	c = await t.client(s, label="gone")
	c.ws.transport.abort()
	lines = await wait_log(s, CLOSE_RX)
	mine = [x for x in lines if x[2] == c.username]
	check_eq(len(mine), 1, "close lines for the vanished client")
	m = await wait_metric(s, "parley_connections", 0)
	check_eq(m.get("parley_connections_closed_total", code="1006"), 1.0,
	    "closed_total{code=1006}")
	check_eq(mine[0][3], "1006", "close line code of a connection that "
	    "ended without a close frame")


# ---------------------------------------------------------------------------
# Metrics

@case()
async def test_metrics_counters(t):
	# The source tree's default scripts, also in a VPATH build.
	src = os.environ.get("top_srcdir") or os.path.join(
	    os.path.dirname(os.path.abspath(__file__)), "..", "..")
	s = t.start_server({"script_dirs": [os.path.join(src, "scripts")]})
	m0 = await metrics(s)
	check_eq(m0.get("parley_connections"), 0.0, "parley_connections "
	    "at start")
	check_eq(m0.get("parley_rooms"), 1.0, "parley_rooms at start")
	for name, typ in (("parley_connections", "gauge"),
	    ("parley_connections_total", "counter"),
	    ("parley_connections_closed_total", "counter"),
	    ("parley_messages_in_total", "counter"),
	    ("parley_messages_delivered_total", "counter"),
	    ("parley_errors_total", "counter"),
	    ("parley_loop_lag_seconds", "gauge"),
	    ("parley_loop_lag_max_seconds", "gauge"),
	    ("parley_hook_calls_total", "counter"),
	    ("parley_bytes_in_total", "counter"),
	    ("parley_bytes_out_total", "counter")):
		check_eq(m0.types.get(name), typ, "# TYPE of %s" % name)
	a = await t.client(s, label="a")
	b = await t.client(s, label="b")
	await a.join("general")
	await b.join("general")
	m1 = await metrics(s)
	check_eq(m1.get("parley_connections"), 2.0, "parley_connections")
	check_eq(m1.get("parley_connections_total") -
	    m0.get("parley_connections_total"), 2.0, "connections_total rise")
	check_eq(m1.get("parley_room_members"), 2.0, "parley_room_members")
	await a.say("general", "counted")
	await b.recv("new_message", pred=lambda m: m.get("message") ==
	    "counted")
	m2 = await metrics(s)
	check_eq(m2.get("parley_messages_in_total") -
	    m1.get("parley_messages_in_total"), 1.0, "messages_in_total rise")
	check_eq(m2.get("parley_messages_delivered_total") -
	    m1.get("parley_messages_delivered_total"), 2.0,
	    "messages_delivered_total rise (two members)")
	check(m2.get("parley_bytes_in_total") > m1.get(
	    "parley_bytes_in_total"), "bytes_in_total did not rise")
	check(m2.get("parley_bytes_out_total") > m1.get(
	    "parley_bytes_out_total"), "bytes_out_total did not rise")
	# the default scripts hook messages
	calls = m2.series("parley_hook_calls_total")
	check(any(dict(k).get("owner", "").startswith("lua") and v > 0
	    for k, v in calls.items()), "no script hook calls counted: %r" %
	    calls)
	check(m2.total("parley_hook_calls_total") >
	    m0.total("parley_hook_calls_total"), "hook_calls_total did not "
	    "rise with a join and a message")
	for k in calls:
		check(set(dict(k)) == {"owner", "event"}, "hook_calls_total "
		    "labels %r" % (k,))
	# a bad frame
	await a.send("{not json")
	await a.recv("error", pred=lambda m: m.get("code") == "bad_json")
	await a.send({"type": "no_such_type", "id": 7})
	await a.recv("error", pred=lambda m: m.get("code") == "unknown_type")
	m3 = await metrics(s)
	check_eq(m3.get("parley_errors_total", code="bad_json") -
	    m2.get("parley_errors_total", code="bad_json"), 1.0,
	    "errors_total{code=bad_json} rise")
	check_eq(m3.get("parley_errors_total", code="unknown_type") -
	    m2.get("parley_errors_total", code="unknown_type"), 1.0,
	    "errors_total{code=unknown_type} rise")
	check_eq(m3.get("parley_messages_in_total"),
	    m2.get("parley_messages_in_total"), "messages_in_total after errors")
	# a clean close
	await b.close()
	m4 = await wait_metric(s, "parley_connections", 1.0)
	check_eq(m4.get("parley_connections_closed_total", code="1000") -
	    m3.get("parley_connections_closed_total", code="1000"), 1.0,
	    "connections_closed_total{code=1000} rise after a clean close")
	check_eq(m4.get("parley_room_members"), 1.0, "room_members after a "
	    "member left")
	# the loop's lag: sane numbers, refreshed each second
	lag = m4.get("parley_loop_lag_seconds")
	lag_max = m4.get("parley_loop_lag_max_seconds")
	check(0 <= lag <= lag_max < scaled(5), "loop lag %r, max %r" % (lag,
	    lag_max))
	# every error code of PROTOCOL.md has its series
	for code in ("bad_json", "bad_request", "unknown_type", "room_exists",
	    "room_not_found", "not_in_room", "invalid_name", "name_taken",
	    "message_too_long", "rate_limited", "unknown_command", "forbidden",
	    "rejected", "unsupported", "internal"):
		m4.get("parley_errors_total", code=code)


@case()
async def test_metrics_without_scripts(t):
	s = t.start_server({"scripts": []})
	a = await t.client(s)
	await a.join("general")
	await a.say("general", "plain")
	m = await metrics(s)
	check_eq(m.types.get("parley_hook_calls_total"), "counter",
	    "# TYPE of parley_hook_calls_total")
	owners = {dict(k).get("owner") for k in
	    m.series("parley_hook_calls_total")}
	check(not any(o and o.startswith("lua:") for o in owners),
	    "script hooks counted with scripts = {}: %r" % owners)
	check_eq(m.get("parley_messages_in_total"), 1.0, "messages_in_total")


@case()
async def test_metrics_format(t):
	# Prometheus text format 0.0.4: "All lines for a given metric must
	# be provided as one single group".
	s = t.start_server()
	a = await t.client(s)
	await a.join("general")
	await a.say("general", "for the hooks")
	m = await metrics(s)
	check(not m.ungrouped, "samples of %s are not one group each (they "
	    "interleave with other metrics):\n%s" % (", ".join(m.ungrouped),
	    "\n".join(m.ungrouped_at)))


@case()
async def test_metrics_methods(t):
	# (refusals to other addresses: test_proxy.py)
	s = t.start_server()
	r = await http_get(s, "/metrics", method="POST")
	check(r.status != 200 or b"parley_connections" not in r.body,
	    "POST /metrics served the metrics")
	r = await http_get(s, "/metrics", method="HEAD")
	check_eq(r.status, 200, "HEAD /metrics")


@case()
async def test_admin_listener(t):
	s = t.start_server({"admin_listen": "127.0.0.1:0"})
	out = s.stdout()
	admin = admin_port_of(s)
	check(admin != s.port, "the admin port is the main port")
	check(out.index("admin listening") < out.index("parleyd: listening"),
	    "the admin line comes before the listening line: %r" % out)
	a = await t.client(s)
	await a.join("general")
	m = await metrics(s, admin)
	check_eq(m.get("parley_connections"), 1.0, "parley_connections on "
	    "the admin listener")
	r = await http_get(s, "/metrics")
	check_eq(r.status, 403, "/metrics on the main port with admin_listen")
	check(b"parley_" not in r.body, "metrics in the 403 body")
	ep = endpoint(admin)
	r = await http_get(ep, "/healthz")
	check_eq(r.status, 200, "/healthz on the admin listener")
	check_eq(json.loads(r.body).get("connections"), 1, "/healthz "
	    "connections on the admin listener")
	for path in ("/", "/index.html", "/ws", "/app.js"):
		r = await http_get(ep, path)
		check_eq(r.status, 404, "GET %s on the admin listener" % path)
	r = await http_raw(ep, UPGRADE + "\r\n", read_to_eof=False)
	check_eq(r.status, 404, "a WebSocket upgrade on the admin listener")
	r = await http_get(s, "/")
	check_eq(r.status, 200, "/ on the main port")


@case()
async def test_admin_listener_ipv6(t):
	try:
		probe = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
		probe.bind(("::1", 0))
		probe.close()
	except OSError:
		raise Skip("no IPv6 loopback")
	s = t.start_server({"admin_listen": "[::1]:0"})
	m = re.search(r"^parleyd: admin listening on http://\[::1\]:(\d+)/$",
	    s.stdout(), re.M)
	check(m is not None, "admin listening line: %r" % s.stdout())
	reader, writer = await asyncio.wait_for(asyncio.open_connection("::1",
	    int(m.group(1))), scaled(5))
	try:
		writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
		    b"Connection: close\r\n\r\n")
		data = await asyncio.wait_for(reader.read(), scaled(5))
	finally:
		writer.close()
	check(data.startswith(b"HTTP/1.1 200") and b"parley_connections" in
	    data, "/metrics on [::1]: %r" % data[:200])


# ---------------------------------------------------------------------------
# systemd

class NotifySocket:
	def __init__(self, address):
		self.address = address
		self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
		self.sock.bind("\0" + address[1:] if address.startswith("@")
		    else address)
		self.sock.setblocking(False)
		self.got = []

	async def recv(self, key, timeout=5):
		"""The next message that sets key; earlier ones are kept."""
		for i, m in enumerate(self.got):
			if key in m:
				return self.got.pop(i)
		loop = asyncio.get_running_loop()
		deadline = time.monotonic() + scaled(timeout)
		while True:
			left = deadline - time.monotonic()
			if left <= 0:
				raise TestFailure("no %s on NOTIFY_SOCKET within %gs; "
				    "got %r" % (key, scaled(timeout), self.got))
			try:
				data = await asyncio.wait_for(loop.sock_recv(
				    self.sock, 4096), left)
			except asyncio.TimeoutError:
				continue
			m = {}
			for line in data.decode().split("\n"):
				if line:
					k, sep, v = line.partition("=")
					check(sep == "=", "notify line %r" % line)
					m[k] = v
			if key in m:
				return m
			self.got.append(m)

	def close(self):
		self.sock.close()


def start_notified(t, address, config=None):
	old = os.environ.get("NOTIFY_SOCKET")
	os.environ["NOTIFY_SOCKET"] = address
	try:
		return t.start_server(config)
	finally:
		if old is None:
			del os.environ["NOTIFY_SOCKET"]
		else:
			os.environ["NOTIFY_SOCKET"] = old


async def notify_cycle(t, address):
	ns = NotifySocket(address)
	try:
		s = start_notified(t, address)
		m = await ns.recv("READY")
		check_eq(m.get("READY"), "1", "READY after start")
		check_eq(m.get("STATUS"), "serving", "STATUS after start")
		r = await http_get(s, "/healthz")
		check_eq(r.status, 200, "/healthz once READY=1")
		a = await t.client(s)
		# a good reload
		t0 = int(time.monotonic() * 1e6)
		await reload(s)
		t1 = int(time.monotonic() * 1e6)
		m = await ns.recv("RELOADING")
		check_eq(m.get("RELOADING"), "1", "RELOADING on SIGHUP")
		check(re.fullmatch(r"\d+", m.get("MONOTONIC_USEC", "")),
		    "MONOTONIC_USEC with RELOADING=1: %r" % m)
		usec = int(m["MONOTONIC_USEC"])
		check(t0 - 1000 <= usec <= t1 + 1000, "MONOTONIC_USEC %d is not "
		    "CLOCK_MONOTONIC at the reload (%d..%d)" % (usec, t0, t1))
		m = await ns.recv("READY")
		check_eq(m.get("READY"), "1", "READY after the reload")
		check_eq(m.get("STATUS"), "serving", "STATUS after the reload")
		check_eq(ns.got, [], "other notifications")
		# a refused reload
		write_config(s, text="this is not lua\n")
		await reload(s)
		m = await ns.recv("RELOADING")
		m = await ns.recv("READY")
		check_eq(m.get("READY"), "1", "READY after a refused reload")
		check("reload failed" in m.get("STATUS", ""), "STATUS after a "
		    "refused reload: %r" % m)
		await a.sync()
		# stop
		s.send_signal(signal.SIGTERM)
		m = await ns.recv("STOPPING")
		check_eq(m.get("STOPPING"), "1", "STOPPING on SIGTERM")
		code = await a.wait_closed(5)
		check_eq(code, 1001, "close code on SIGTERM")
		await s.astop()
		check_eq(ns.got, [], "other notifications")
	finally:
		ns.close()


@case()
async def test_notify_path(t):
	with TempDir() as d:
		path = d.join("notify")
		try:
			await notify_cycle(t, path)
		finally:
			try:
				os.unlink(path)
			except OSError:
				pass


@case()
async def test_notify_abstract(t):
	await notify_cycle(t, "@parley-notify-%d-%s" % (os.getpid(),
	    os.urandom(4).hex()))


@case()
async def test_notify_unreachable(t):
	# a NOTIFY_SOCKET nobody listens on must not stop the server
	with TempDir() as d:
		s = start_notified(t, d.join("nobody-here"))
		a = await t.client(s)
		await reload(s)
		await a.sync()
		await s.astop()


# ---------------------------------------------------------------------------
# The process

@case()
async def test_pidfile(t):
	with TempDir() as d:
		path = d.join("parleyd.pid")
		s = t.start_server(args=["--pidfile", path])
		text = file_text(path)
		check_eq(text, "%d\n" % s.proc.pid, "the pid file")
		a = await t.client(s)
		await reload(s)
		check_eq(file_text(path), "%d\n" % s.proc.pid,
		    "the pid file after a reload")
		await a.sync()
		await s.astop()
		check(not os.path.exists(path), "the pid file is still there "
		    "after SIGTERM")
		# SIGINT removes it too
		s = t.start_server(args=["--pidfile", path])
		check_eq(file_text(path), "%d\n" % s.proc.pid, "the pid file")
		await s.astop(sig=signal.SIGINT)
		check(not os.path.exists(path), "the pid file is still there "
		    "after SIGINT")


@case()
async def test_pidfile_unwritable(t):
	with TempDir() as d:
		s = Server(args=["--pidfile", d.join("no/such/dir/x.pid")])
		try:
			s.start()
		except TestFailure as e:
			check("exited with 1" in str(e), "an unwritable pid file: %s"
			    % e)
			return
		t.own.append(s)
		raise TestFailure("parleyd started with a pid file it cannot "
		    "write")


def proc_ids(pid):
	ids = {}
	with open("/proc/%d/status" % pid) as f:
		for line in f:
			k, _, v = line.partition(":")
			if k in ("Uid", "Gid", "Groups"):
				ids[k] = [int(x) for x in v.split()]
	return ids


@case()
async def test_user(t):
	if os.geteuid() != 0:
		raise Skip("--user needs root")
	try:
		pw = pwd.getpwnam("nobody")
	except KeyError:
		raise Skip("no user nobody")
	with TempDir() as d:
		# a web root the user can read
		os.chmod(d.path, 0o755)
		www = make_web_root(d.join("www"))
		# a state directory (accounts) it can be given
		s = t.start_server({"state_dir": d.join("state")}, web_root=www,
		    args=["--user", "nobody"])
		ids = proc_ids(s.proc.pid)
		check_eq(ids.get("Uid"), [pw.pw_uid] * 4, "Uid (real, effective, "
		    "saved, fs) after --user nobody")
		check_eq(ids.get("Gid"), [pw.pw_gid] * 4, "Gid after --user "
		    "nobody")
		check(0 not in ids.get("Groups", []), "root's group kept: %r" %
		    ids.get("Groups"))
		a = await t.client(s, label="a")
		b = await t.client(s, label="b")
		await a.join("general")
		await b.join("general")
		await a.say("general", "as nobody")
		await b.recv("new_message", pred=lambda m: m.get("message") ==
		    "as nobody")
		r = await http_get(s, "/")
		check_eq(r.status, 200, "GET / as nobody")
		await reload(s)
		await a.sync()
		check(re.search(r"core: running as nobody", log_text(s)),
		    "no 'running as' line")
		await s.astop()


# ---------------------------------------------------------------------------
# Shutdown

@case()
async def test_shutdown_three_clients(t):
	s = t.start_server()
	cs = await t.clients_n(3, s)
	for c in cs:
		await c.join("general")
	await cs[0].sync()
	t0 = time.monotonic()
	s.send_signal(signal.SIGTERM)
	for c in cs:
		code = await c.wait_closed(5)
		check_eq(code, 1001, "%s: close code on SIGTERM" % c.label)
	rc = await s.await_exit(5)
	dt = time.monotonic() - t0
	check(rc is not None, "parleyd still running 5 s after SIGTERM")
	check_eq(rc, 0, "exit status")
	check(dt < scaled(5), "shutdown took %.1f s" % dt)
	s.stop()


@case(timeout=30)
async def test_shutdown_unresponsive_client(t):
	s = t.start_server()
	good = await t.client(s, label="good")
	mute = await t.raw(s, label="mute")
	await good.sync()
	t0 = time.monotonic()
	s.send_signal(signal.SIGTERM)
	check_eq(await good.wait_closed(5), 1001, "close code for the client "
	    "that answers")
	# the mute client reads the close frame but never answers it
	while True:
		f = await mute.read_frame(5)
		if f.opcode == OP_CLOSE:
			break
	check_eq(f.close_code, 1001, "close code for the mute client")
	rc = await s.await_exit(6)
	dt = time.monotonic() - t0
	check(rc is not None, "parleyd still running 6 s after SIGTERM with "
	    "a client that does not answer the close")
	check_eq(rc, 0, "exit status")
	check(dt < scaled(5), "shutdown with a mute client took %.1f s" % dt)
	# the connection is gone
	await mute.expect_eof(2)
	s.stop()


@case()
async def test_version(t):
	p = run_daemon(["--version"])
	check_eq(p.returncode, 0, "--version exit status")
	out = p.stdout
	check(re.search(r"^parleyd \d+\.\d+\.\d+", out, re.M), "version line: "
	    "%r" % out)
	check(re.search(r"\bprotocol 1\b", out), "protocol 1: %r" % out)
	check(re.search(r"plugin ABI \d+\.\d+", out), "plugin ABI: %r" % out)
	for lib in (r"libmicrohttpd \d+\.\d+\.\d+", r"jansson \d+\.\d+",
	    r"Lua 5\.\d", r"nettle \d+\.\d+"):
		check(re.search(lib, out), "%s in --version: %r" % (lib, out))
	check_eq(p.stderr, "", "--version stderr")
	p2 = run_daemon(["-V"])
	check_eq(p2.stdout, out, "-V and --version")


if __name__ == "__main__":
	suite.main()
