#!/usr/bin/python3
#
# harness.py: the shared library of the integration tests. It starts the
# built parleyd on 127.0.0.1 port 0 with its own temporary directory and
# configuration, reads the port back, stops it and checks its exit status;
# it offers a JSON client over python3-websockets, a raw WebSocket client
# for hand-made frames, a raw HTTP client, and a small runner that prints
# one PASS/FAIL line per case and exits 0, 1 or 77 as automake expects.
# Every wait has a deadline. Environment: PARLEYD (the daemon; default
# ../../src/parleyd from here), PARLEY_VALGRIND=1 (run it under valgrind,
# deadlines times ten), PARLEY_TIME_SCALE (a deadline factor of one's
# own), PARLEY_KEEP=1 (keep the temporary directories). Arguments to a
# test file select the cases whose names contain one of them.

import asyncio
import atexit
import base64
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

EXIT_SKIP = 77

try:
	import websockets
	import websockets.client
	import websockets.exceptions
except ImportError:
	print("SKIP: the python3 websockets module is not installed")
	sys.exit(EXIT_SKIP)

HERE = os.path.dirname(os.path.abspath(__file__))
HOST = "127.0.0.1"
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

VALGRIND = os.environ.get("PARLEY_VALGRIND", "") not in ("", "0")
if VALGRIND and shutil.which("valgrind") is None:
	print("SKIP: PARLEY_VALGRIND is set but valgrind is not installed")
	sys.exit(EXIT_SKIP)

# Deadlines are multiplied by this; valgrind is slow.
try:
	SCALE = float(os.environ.get("PARLEY_TIME_SCALE", ""))
except ValueError:
	SCALE = 10.0 if VALGRIND else 1.0

KEEP = os.environ.get("PARLEY_KEEP", "") not in ("", "0")


def scaled(seconds):
	return seconds * SCALE


class TestFailure(AssertionError):
	pass


class Skip(Exception):
	"""Raised by a case that cannot run here (a missing optional tool)."""


def check(cond, msg="check failed"):
	if not cond:
		raise TestFailure(msg)


def check_eq(got, want, what="value"):
	if got != want:
		raise TestFailure("%s: got %r, want %r" % (what, got, want))


def parleyd_path():
	p = os.environ.get("PARLEYD")
	if not p:
		p = os.path.join(HERE, "..", "..", "src", "parleyd")
	return os.path.abspath(p)


def daemon_command(args):
	"""The argv that runs parleyd with args, under valgrind if asked."""
	cmd = [parleyd_path()] + list(args)
	if VALGRIND:
		cmd = ["valgrind", "-q", "--error-exitcode=99",
		    "--leak-check=full", "--errors-for-leak-kinds=definite",
		    "--track-fds=no"] + cmd
	return cmd


def run_daemon(args, timeout=10):
	"""Runs parleyd to completion (--version, --check-config ...)."""
	return subprocess.run(daemon_command(args), stdin=subprocess.DEVNULL,
	    capture_output=True, timeout=scaled(timeout), text=True,
	    errors="replace")


# ---------------------------------------------------------------------------
# Configuration files

def lua_string(s):
	out = ['"']
	for ch in s:
		o = ord(ch)
		if ch in '\\"':
			out.append("\\" + ch)
		elif o < 32 or o == 127:
			out.append("\\%03d" % o)
		else:
			out.append(ch)
	out.append('"')
	return "".join(out)


def lua_value(v):
	if isinstance(v, bool):
		return "true" if v else "false"
	if isinstance(v, (int, float)):
		return repr(v)
	if isinstance(v, str):
		return lua_string(v)
	if isinstance(v, (list, tuple)):
		return "{ " + ", ".join(lua_value(x) for x in v) + " }"
	if isinstance(v, dict):
		return "{ " + ", ".join("%s = %s" % (lua_key(k), lua_value(x))
		    for k, x in v.items()) + " }"
	raise TypeError("no Lua form for %r" % (v,))


def lua_key(k):
	"""A table key: bare when it is a name, else ["..."] ("auth-jwt")."""
	if re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k):
		return k
	return "[%s]" % lua_string(k)


def lua_config(options):
	"""Lua text for a dict of options; a value of None omits the key."""
	lines = ["-- written by the parley integration tests"]
	for k, v in options.items():
		if v is not None:
			lines.append("%s = %s" % (k, lua_value(v)))
	return "\n".join(lines) + "\n"


DEFAULT_INDEX = ("<!DOCTYPE html>\n<html><head><title>parley test</title>"
    "<link rel=\"stylesheet\" href=\"style.css\"></head>\n"
    "<body><p>parley test page</p><script src=\"app.js\"></script>"
    "</body></html>\n")
DEFAULT_CSS = "body { color: black; }\n"
DEFAULT_JS = "console.log(\"parley test\");\n"


def make_web_root(path):
	os.makedirs(path, exist_ok=True)
	for name, text in (("index.html", DEFAULT_INDEX),
	    ("style.css", DEFAULT_CSS), ("app.js", DEFAULT_JS)):
		with open(os.path.join(path, name), "w") as f:
			f.write(text)
	return path


# ---------------------------------------------------------------------------
# The daemon

_live_servers = []


def _cleanup_at_exit():
	for s in list(_live_servers):
		s.kill()


atexit.register(_cleanup_at_exit)


class Server:
	"""One parleyd on 127.0.0.1, port 0, in its own temporary directory.

	config: options over the defaults below (None removes one).
	web_root: a directory to serve; by default a fresh one with an
	index.html, a style.css and an app.js.
	"""

	DEFAULTS = {
		"listen": HOST,
		"rooms": ["general"],
		"history_size": 100,
		"max_message_bytes": 4096,
		"max_frame_bytes": 65536,
		"ping_interval": 30,
		"ping_timeout": 20,
		"http_timeout": 10,
		"log_level": "debug",
		# The tests send far faster than people do: rate limits and
		# bans are off unless a case turns them on.
		"connects_per_minute_per_ip": 0,
		"requests_per_minute": 0,
		"messages_per_minute": 0,
		"rooms_per_minute": 0,
		"names_per_minute": 0,
		"flood_close_after": 0,
		"ban_after": 0,
		# The built-in default loads history-sqlite; these tests want the
		# in-memory ring unless a case asks for plugins.
		"plugins": [],
	}

	def __init__(self, config=None, web_root=None, args=(),
	    raw_config=None, nofile=None):
		"""nofile: the daemon's open-file limit (soft and hard)."""
		self.nofile = nofile
		self.config = dict(self.DEFAULTS)
		self.config.update(config or {})
		self.raw_config = raw_config
		self.web_root_arg = web_root
		self.args = list(args)
		self.proc = None
		self.dir = None
		self.port = None
		self.returncode = None

	def start(self, timeout=10):
		self.dir = tempfile.mkdtemp(prefix="parley-test-")
		if self.web_root_arg is None:
			self.web_root = make_web_root(
			    os.path.join(self.dir, "www"))
		else:
			self.web_root = self.web_root_arg
		if "web_root" not in self.config:
			self.config["web_root"] = self.web_root
		if "state_dir" not in self.config:
			self.config["state_dir"] = os.path.join(self.dir, "state")
		self.config_path = os.path.join(self.dir, "parley.conf")
		with open(self.config_path, "w") as f:
			if self.raw_config is not None:
				f.write(self.raw_config)
			else:
				f.write(lua_config(self.config))
		self.stdout_path = os.path.join(self.dir, "stdout")
		self.stderr_path = os.path.join(self.dir, "stderr")
		argv = ["--config", self.config_path]
		if "--port" not in self.args:
			argv += ["--port", "0"]
		argv += self.args
		try:
			with open(self.stdout_path, "wb") as out, \
			    open(self.stderr_path, "wb") as err:
				self.proc = subprocess.Popen(
				    daemon_command(argv),
				    stdin=subprocess.DEVNULL, stdout=out,
				    stderr=err, preexec_fn=self._limits)
		except OSError as e:
			shutil.rmtree(self.dir, ignore_errors=True)
			raise TestFailure("cannot run parleyd: %s" % e)
		_live_servers.append(self)
		deadline = time.monotonic() + scaled(timeout)
		pat = re.compile(
		    rb"^parleyd: listening on http://([^/\s]+):(\d+)/$", re.M)
		while True:
			with open(self.stdout_path, "rb") as f:
				m = pat.search(f.read())
			if m:
				self.listen_host = m.group(1).decode()
				self.port = int(m.group(2))
				break
			if self.proc.poll() is not None:
				rc = self.proc.returncode
				self._forget()
				raise TestFailure("parleyd exited with %d before "
				    "listening; stderr:\n%s" % (rc, self.stderr()))
			if time.monotonic() > deadline:
				self.kill()
				raise TestFailure("parleyd printed no listening "
				    "line in time; stdout: %r; stderr:\n%s" %
				    (self.stdout(), self.stderr()))
			time.sleep(0.01)
		check(self.port > 0, "port 0 in the listening line")
		return self

	def _limits(self):
		"""Runs in the child before exec (a shell's ulimit -n)."""
		if self.nofile is not None:
			resource.setrlimit(resource.RLIMIT_NOFILE,
			    (self.nofile, self.nofile))

	def open_fds(self):
		"""How many descriptors the daemon has open now."""
		return len(os.listdir("/proc/%d/fd" % self.proc.pid))

	def cpu_seconds(self):
		"""The daemon's user + system CPU time so far."""
		with open("/proc/%d/stat" % self.proc.pid) as f:
			fields = f.read().rsplit(")", 1)[1].split()
		return (int(fields[11]) + int(fields[12])) / \
		    os.sysconf("SC_CLK_TCK")

	@property
	def url(self):
		return "ws://%s:%d/ws" % (HOST, self.port)

	@property
	def http_url(self):
		return "http://%s:%d" % (HOST, self.port)

	def alive(self):
		return self.proc is not None and self.proc.poll() is None

	def _read(self, path):
		try:
			with open(path, "rb") as f:
				return f.read().decode("utf-8", "replace")
		except OSError:
			return ""

	def stderr(self, tail=60):
		lines = self._read(self.stderr_path).splitlines()
		return "\n".join(lines[-tail:])

	def stdout(self):
		return self._read(self.stdout_path)

	def send_signal(self, sig):
		self.proc.send_signal(sig)

	def wait(self, timeout=10):
		"""Waits for exit; returns the status or None on timeout."""
		try:
			self.returncode = self.proc.wait(scaled(timeout))
		except subprocess.TimeoutExpired:
			return None
		return self.returncode

	def stop(self, expect=0, sig=signal.SIGTERM, timeout=10):
		"""Signals parleyd, waits and checks the exit status."""
		if self.proc is None:
			return None
		if self.proc.poll() is None:
			self.proc.send_signal(sig)
		rc = self.wait(timeout)
		if rc is None:
			err = self.stderr()
			self.kill()
			raise TestFailure("parleyd did not exit within %gs of "
			    "signal %d; stderr:\n%s" % (scaled(timeout), sig,
			    err))
		err = self.stderr()
		self._forget()
		if expect is not None and rc != expect:
			raise TestFailure("parleyd exited with %d, want %d; "
			    "stderr:\n%s" % (rc, expect, err))
		return rc

	async def astop(self, expect=0, sig=signal.SIGTERM, timeout=10):
		"""stop() for async code: the event loop keeps running, so
		clients can answer the server's close frames meanwhile."""
		if self.proc is not None and self.proc.poll() is None:
			self.proc.send_signal(sig)
			deadline = time.monotonic() + scaled(timeout)
			while self.proc.poll() is None and \
			    time.monotonic() < deadline:
				await asyncio.sleep(0.01)
		return self.stop(expect, sig, timeout)

	async def await_exit(self, timeout=10):
		"""Waits for exit without blocking the loop; the status or
		None."""
		deadline = time.monotonic() + scaled(timeout)
		while self.proc.poll() is None:
			if time.monotonic() > deadline:
				return None
			await asyncio.sleep(0.01)
		self.returncode = self.proc.returncode
		return self.returncode

	def kill(self):
		if self.proc is not None and self.proc.poll() is None:
			self.proc.kill()
			try:
				self.proc.wait(5)
			except subprocess.TimeoutExpired:
				pass
		self._forget()

	def _forget(self):
		if self in _live_servers:
			_live_servers.remove(self)
		if self.dir and not KEEP:
			shutil.rmtree(self.dir, ignore_errors=True)
			self.dir_removed = True


# ---------------------------------------------------------------------------
# JSON client over python3-websockets

class Client:
	"""A chat client: frames are JSON objects.

	Frames received but not yet asked for wait in self.pending, so a test
	can look for the one it wants and later check what else arrived.
	"""

	def __init__(self, ws, name="client"):
		self.ws = ws
		self.label = name
		self.pending = []
		self.welcome = None
		self.username = None
		self._next_id = 1

	@classmethod
	async def connect(cls, server, origin=None, welcome=True,
	    label="client", **kw):
		url = server if isinstance(server, str) else server.url
		kw.setdefault("compression", "deflate")
		kw.setdefault("ping_interval", None)
		kw.setdefault("max_size", 1 << 24)
		kw.setdefault("open_timeout", scaled(10))
		kw.setdefault("close_timeout", scaled(2))
		if origin is not None:
			kw["origin"] = origin
		ws = await websockets.client.connect(url, **kw)
		c = cls(ws, label)
		if welcome:
			c.welcome = await c.recv("welcome")
			c.username = c.welcome.get("username")
		return c

	def next_id(self):
		i = self._next_id
		self._next_id += 1
		return i

	async def send(self, obj):
		"""Sends a dict as JSON, or a str/bytes as it is."""
		if isinstance(obj, (dict, list)):
			obj = json.dumps(obj, ensure_ascii=False)
		await self.ws.send(obj)

	async def _receive(self, deadline):
		left = deadline - time.monotonic()
		if left <= 0:
			raise asyncio.TimeoutError()
		data = await asyncio.wait_for(self.ws.recv(), left)
		if isinstance(data, bytes):
			raise TestFailure("%s: server sent a binary frame: %r" %
			    (self.label, data[:80]))
		try:
			msg = json.loads(data)
		except ValueError:
			raise TestFailure("%s: server sent non-JSON text: %r" %
			    (self.label, data[:200]))
		if not isinstance(msg, dict) or not isinstance(
		    msg.get("type"), str):
			raise TestFailure("%s: server frame is not an object "
			    "with a string type: %r" % (self.label, data[:200]))
		return msg

	async def recv(self, type=None, timeout=5, pred=None):
		"""The first frame (pending first) of that type and matching
		pred; other frames are kept in pending."""
		def match(m):
			return (type is None or m.get("type") == type) and \
			    (pred is None or pred(m))
		for i, m in enumerate(self.pending):
			if match(m):
				return self.pending.pop(i)
		deadline = time.monotonic() + scaled(timeout)
		while True:
			try:
				m = await self._receive(deadline)
			except asyncio.TimeoutError:
				raise TestFailure("%s: no %s frame within %gs; "
				    "pending: %s" % (self.label, type or "any",
				    scaled(timeout), self._pending_text()))
			except websockets.exceptions.ConnectionClosed as e:
				raise TestFailure("%s: connection closed (%s) "
				    "while waiting for %s; pending: %s" %
				    (self.label, e, type or "a frame",
				    self._pending_text()))
			if match(m):
				return m
			self.pending.append(m)

	def _pending_text(self):
		return json.dumps(self.pending, ensure_ascii=False)[:2000]

	async def request(self, obj, timeout=5):
		"""Sends obj with a fresh integer id (unless it has one) and
		returns the frame that carries the same id."""
		obj = dict(obj)
		if "id" not in obj:
			obj["id"] = self.next_id()
		rid = obj["id"]
		await self.send(obj)
		return await self.recv(None, timeout,
		    pred=lambda m: "id" in m and m["id"] == rid and
		    type(m["id"]) == type(rid))

	async def expect(self, obj, type, timeout=5):
		"""Sends obj with an id and returns the reply of that type;
		an error reply fails. Other replies with the id (a join_room
		with a username may also answer username_set) stay pending."""
		obj = dict(obj)
		if "id" not in obj:
			obj["id"] = self.next_id()
		rid = obj["id"]
		await self.send(obj)
		r = await self.recv(None, timeout, pred=lambda m: "id" in m and
		    m["id"] == rid and m.get("type") in (type, "error"))
		if r.get("type") != type:
			raise TestFailure("%s: %s got %s, want %s" % (self.label,
			    json.dumps(obj, ensure_ascii=False)[:200],
			    json.dumps(r, ensure_ascii=False)[:300], type))
		return r

	async def expect_error(self, obj, code, timeout=5):
		"""request() and check it fails with that error code."""
		r = await self.request(obj, timeout)
		if r.get("type") != "error" or r.get("code") != code:
			raise TestFailure("%s: %s got %s, want error %s" %
			    (self.label, json.dumps(obj, ensure_ascii=False)[:200],
			    json.dumps(r, ensure_ascii=False)[:300], code))
		check(isinstance(r.get("message"), str),
		    "error without a string message: %r" % (r,))
		return r

	async def sync(self, timeout=5):
		"""A ping round trip: every frame the server queued for us
		before it is in pending afterwards."""
		r = await self.request({"type": "ping"}, timeout)
		check_eq(r.get("type"), "pong", "%s: reply to ping" % self.label)
		return r

	def take(self, type=None, pred=None):
		"""Removes and returns the pending frames that match."""
		got, keep = [], []
		for m in self.pending:
			if (type is None or m.get("type") == type) and \
			    (pred is None or pred(m)):
				got.append(m)
			else:
				keep.append(m)
		self.pending = keep
		return got

	def assert_none(self, type=None, pred=None, what=None):
		got = [m for m in self.pending if (type is None or
		    m.get("type") == type) and (pred is None or pred(m))]
		if got:
			raise TestFailure("%s: unexpected %s: %s" % (self.label,
			    what or type or "frames",
			    json.dumps(got, ensure_ascii=False)[:1000]))

	async def set_name(self, name):
		r = await self.expect({"type": "set_username", "username": name},
		    "username_set")
		check_eq(r.get("username"), name, "username_set.username")
		self.username = name
		return r

	async def create(self, room):
		r = await self.expect({"type": "create_room", "roomName": room},
		    "created_room")
		return r

	async def join(self, room, username=None):
		obj = {"type": "join_room", "roomName": room}
		if username is not None:
			obj["username"] = username
		r = await self.expect(obj, "room_joined")
		if username is not None:
			self.username = username
		return r

	async def say(self, room, text):
		"""Sends a message and returns our own copy of it."""
		await self.send({"type": "send_message", "roomName": room,
		    "message": text})
		return await self.recv("new_message", pred=lambda m:
		    m.get("roomName") == room and m.get("message") == text and
		    m.get("sender") == self.username)

	@property
	def closed(self):
		return self.ws.closed

	async def wait_closed(self, timeout=5):
		"""Waits for the connection to end; returns the close code the
		server sent (None when there was no close frame)."""
		try:
			await asyncio.wait_for(self.ws.wait_closed(),
			    scaled(timeout))
		except asyncio.TimeoutError:
			raise TestFailure("%s: connection still open after %gs" %
			    (self.label, scaled(timeout)))
		rcvd = getattr(self.ws, "close_rcvd", None)
		return rcvd.code if rcvd is not None else None

	async def close(self):
		try:
			await asyncio.wait_for(self.ws.close(), scaled(3))
		except Exception:
			self.ws.transport.abort()


# ---------------------------------------------------------------------------
# Raw WebSocket: hand-made frames over asyncio streams

class Frame:
	def __init__(self, fin, rsv, opcode, payload, masked):
		self.fin, self.rsv, self.opcode = fin, rsv, opcode
		self.payload, self.masked = payload, masked

	@property
	def close_code(self):
		if len(self.payload) >= 2:
			return struct.unpack("!H", self.payload[:2])[0]
		return None

	def json(self):
		return json.loads(self.payload.decode("utf-8"))

	def __repr__(self):
		return "Frame(fin=%d rsv=%d op=%#x len=%d %r)" % (self.fin,
		    self.rsv, self.opcode, len(self.payload), self.payload[:60])


OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA


def make_frame(opcode, payload=b"", fin=True, rsv=0, mask=True,
    length=None, key=None):
	"""Encodes a client frame. length overrides the length field (the
	payload sent is still payload); mask=False sends it unmasked."""
	if isinstance(payload, str):
		payload = payload.encode("utf-8")
	n = len(payload) if length is None else length
	b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
	mbit = 0x80 if mask else 0
	if n < 126:
		hdr = struct.pack("!BB", b0, mbit | n)
	elif n < 1 << 16:
		hdr = struct.pack("!BBH", b0, mbit | 126, n)
	else:
		hdr = struct.pack("!BBQ", b0, mbit | 127, n)
	if not mask:
		return hdr + payload
	if key is None:
		key = os.urandom(4)
	return hdr + key + mask_bytes(payload, key)


def mask_bytes(data, key):
	if not data:
		return b""
	k = (key * (len(data) // 4 + 1))[:len(data)]
	return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")) \
	    .to_bytes(len(data), "big")


def close_payload(code, reason=b""):
	return struct.pack("!H", code) + reason


class ConnectionEnded(Exception):
	"""The server closed (or reset) the TCP connection."""


class RawWS:
	"""A WebSocket client whose every byte is under the test's control."""

	def __init__(self, reader, writer, label="raw"):
		self.reader, self.writer = reader, writer
		self.label = label
		self.response = None
		self.buf = bytearray()

	@classmethod
	async def connect(cls, server, welcome=True, label="raw",
	    headers=None, rcvbuf=None):
		"""rcvbuf: a small SO_RCVBUF makes a client that does not read
		back up quickly."""
		sock = None
		if rcvbuf is not None:
			sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
			sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
			    rcvbuf)
			sock.setblocking(False)
			await asyncio.wait_for(asyncio.get_running_loop()
			    .sock_connect(sock, (HOST, server.port)), scaled(5))
			conn = asyncio.open_connection(sock=sock)
		else:
			conn = asyncio.open_connection(HOST, server.port)
		reader, writer = await asyncio.wait_for(conn, scaled(5))
		ws = cls(reader, writer, label)
		key = base64.b64encode(os.urandom(16)).decode()
		hdrs = {"Host": "%s:%d" % (HOST, server.port),
		    "Upgrade": "websocket", "Connection": "Upgrade",
		    "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}
		hdrs.update(headers or {})
		req = "GET /ws HTTP/1.1\r\n" + "".join("%s: %s\r\n" % kv
		    for kv in hdrs.items()) + "\r\n"
		writer.write(req.encode())
		resp = await read_http_head(reader, scaled(5))
		ws.response = resp
		check_eq(resp.status, 101, "%s: upgrade status" % label)
		want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode())
		    .digest()).decode()
		check_eq(resp.header("sec-websocket-accept"), want,
		    "%s: Sec-WebSocket-Accept" % label)
		if welcome:
			f = await ws.read_frame()
			check_eq(f.opcode, OP_TEXT, "%s: first frame opcode" %
			    label)
			ws.welcome = f.json()
			check_eq(ws.welcome.get("type"), "welcome",
			    "%s: first frame type" % label)
		return ws

	async def send_raw(self, data):
		self.writer.write(data)
		try:
			await asyncio.wait_for(self.writer.drain(), scaled(5))
		except (ConnectionError, BrokenPipeError):
			pass

	async def send_frame(self, opcode, payload=b"", **kw):
		await self.send_raw(make_frame(opcode, payload, **kw))

	async def send_json(self, obj):
		await self.send_frame(OP_TEXT, json.dumps(obj).encode())

	def _parse(self):
		"""A whole frame from the front of self.buf, or None."""
		b = self.buf
		if len(b) < 2:
			return None
		fin, rsv, op = b[0] >> 7, (b[0] >> 4) & 7, b[0] & 0xF
		masked, n = b[1] >> 7, b[1] & 0x7F
		pos = 2
		if n == 126:
			if len(b) < 4:
				return None
			n = struct.unpack("!H", b[2:4])[0]
			pos = 4
		elif n == 127:
			if len(b) < 10:
				return None
			n = struct.unpack("!Q", b[2:10])[0]
			pos = 10
		key = None
		if masked:
			if len(b) < pos + 4:
				return None
			key = bytes(b[pos:pos + 4])
			pos += 4
		if len(b) < pos + n:
			return None
		payload = bytes(b[pos:pos + n])
		del b[:pos + n]
		if key:
			payload = mask_bytes(payload, key)
		return Frame(fin, rsv, op, payload, masked)

	async def read_frame(self, timeout=5):
		"""The next server frame; raises TestFailure on timeout and
		ConnectionEnded on EOF. A timeout consumes nothing."""
		deadline = time.monotonic() + scaled(timeout)
		while True:
			f = self._parse()
			if f is not None:
				break
			left = deadline - time.monotonic()
			if left <= 0:
				raise TestFailure("%s: no frame from the server "
				    "within %gs" % (self.label, scaled(timeout)))
			try:
				data = await asyncio.wait_for(
				    self.reader.read(65536), left)
			except asyncio.TimeoutError:
				continue
			except ConnectionError as e:
				raise ConnectionEnded("%s after %d buffered "
				    "bytes" % (e, len(self.buf)))
			if not data:
				raise ConnectionEnded("EOF after %d buffered "
				    "bytes" % len(self.buf))
			self.buf += data
		check(not f.masked, "%s: server frame is masked" % self.label)
		check(f.rsv == 0, "%s: server frame has RSV bits" % self.label)
		return f

	async def read_json(self, type=None, timeout=5):
		"""The next text frame of that type, answering pings and
		skipping other frames."""
		deadline = time.monotonic() + scaled(timeout)
		while True:
			left = max(deadline - time.monotonic(), 0.001) / SCALE
			f = await self.read_frame(left)
			if f.opcode == OP_PING:
				await self.send_frame(OP_PONG, f.payload)
				continue
			if f.opcode == OP_CLOSE:
				raise TestFailure("%s: close %r while waiting "
				    "for %s" % (self.label, f.close_code, type))
			if f.opcode != OP_TEXT:
				continue
			m = f.json()
			if type is None or m.get("type") == type:
				return m

	async def expect_close(self, code, timeout=5, reply=True):
		"""Reads until the server's close frame, checks its code,
		answers it and waits for the TCP connection to end."""
		deadline = time.monotonic() + scaled(timeout)
		seen = []
		while True:
			left = max(deadline - time.monotonic(), 0.001) / SCALE
			try:
				f = await self.read_frame(left)
			except ConnectionEnded as e:
				raise TestFailure("%s: connection ended (%s) "
				    "without a close frame, want close %d; "
				    "frames before: %r" % (self.label, e, code,
				    seen))
			if f.opcode == OP_CLOSE:
				break
			seen.append(f)
		check(f.fin, "%s: close frame without FIN" % self.label)
		check_eq(f.close_code, code, "%s: close code" % self.label)
		if len(f.payload) > 2:
			f.payload[2:].decode("utf-8")  # reason must be UTF-8
		if reply:
			await self.send_frame(OP_CLOSE, close_payload(code),
			    key=b"\0\0\0\0")
		await self.expect_eof(timeout)
		return f

	async def expect_eof(self, timeout=5):
		"""Checks the server closes TCP within timeout, ignoring any
		bytes still in flight."""
		deadline = time.monotonic() + scaled(timeout)
		while True:
			left = deadline - time.monotonic()
			if left <= 0:
				raise TestFailure("%s: server did not close the "
				    "TCP connection within %gs" % (self.label,
				    scaled(timeout)))
			try:
				data = await asyncio.wait_for(
				    self.reader.read(65536), left)
			except asyncio.TimeoutError:
				continue
			except ConnectionError:
				return
			if not data:
				return

	def close(self):
		try:
			self.writer.close()
		except Exception:
			pass


# ---------------------------------------------------------------------------
# Raw HTTP

class Response:
	def __init__(self, status, reason, headers, head):
		self.status, self.reason = status, reason
		self.headers = headers  # list of (lower name, value)
		self.head = head
		self.body = b""
		self.extra = b""

	def header(self, name, default=None):
		name = name.lower()
		vals = [v for k, v in self.headers if k == name]
		return ", ".join(vals) if vals else default

	def __repr__(self):
		return "Response(%d %s, %r, body=%r)" % (self.status, self.reason,
		    self.headers, self.body[:100])


async def read_http_head(reader, timeout):
	try:
		head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"),
		    timeout)
	except asyncio.TimeoutError:
		raise TestFailure("no HTTP response head within %gs" % timeout)
	except asyncio.IncompleteReadError as e:
		raise TestFailure("connection ended before the HTTP response "
		    "head; got %r" % e.partial[:200])
	lines = head.decode("latin-1").split("\r\n")
	m = re.match(r"^HTTP/1\.[01] (\d{3})(?: (.*))?$", lines[0])
	check(m is not None, "bad HTTP status line %r" % lines[0])
	headers = []
	for line in lines[1:]:
		if not line:
			continue
		k, sep, v = line.partition(":")
		check(sep == ":", "bad HTTP header line %r" % line)
		headers.append((k.strip().lower(), v.strip()))
	return Response(int(m.group(1)), m.group(2) or "", headers, head)


async def http_raw(server, data, timeout=5, head_only=False,
    read_to_eof=True):
	"""Sends raw request bytes and parses the response. With read_to_eof
	every byte after the body lands in .extra (use Connection: close)."""
	if isinstance(data, str):
		data = data.encode("latin-1")
	reader, writer = await asyncio.wait_for(
	    asyncio.open_connection(HOST, server.port), scaled(5))
	try:
		writer.write(data)
		await writer.drain()
		resp = await read_http_head(reader, scaled(timeout))
		if head_only or resp.status in (101, 204, 304) or \
		    resp.status < 200:
			n = 0
		else:
			n = resp.header("content-length")
			n = int(n) if n is not None else None
		if n is None and "chunked" in (resp.header("transfer-encoding")
		    or "").lower():
			body = b""
			while True:
				line = await asyncio.wait_for(
				    reader.readuntil(b"\r\n"), scaled(timeout))
				size = int(line.split(b";")[0].strip(), 16)
				chunk = await asyncio.wait_for(
				    reader.readexactly(size + 2),
				    scaled(timeout))
				if size == 0:
					break
				body += chunk[:-2]
			resp.body = body
		elif n is None:
			resp.body = await asyncio.wait_for(reader.read(),
			    scaled(timeout))
		elif n:
			resp.body = await asyncio.wait_for(
			    reader.readexactly(n), scaled(timeout))
		if read_to_eof:
			try:
				resp.extra = await asyncio.wait_for(
				    reader.read(), scaled(timeout))
			except asyncio.TimeoutError:
				raise TestFailure("server kept the connection "
				    "open after Connection: close")
			except ConnectionError:
				pass
		return resp
	finally:
		writer.close()


async def http_get(server, path, method="GET", headers=None, timeout=5,
    head_only=None):
	hdrs = {"Host": "%s:%d" % (HOST, server.port), "Connection": "close"}
	hdrs.update(headers or {})
	req = "%s %s HTTP/1.1\r\n" % (method, path) + "".join("%s: %s\r\n" %
	    kv for kv in hdrs.items() if kv[1] is not None) + "\r\n"
	if head_only is None:
		head_only = method == "HEAD"
	return await http_raw(server, req, timeout, head_only=head_only)


# ---------------------------------------------------------------------------
# The runner

_uniq = [0]


def uniq(prefix):
	"""A name no other case of this run uses (short: names have limits)."""
	_uniq[0] += 1
	return "%s-%d-%d" % (prefix, os.getpid() % 10000, _uniq[0])


class Context:
	"""What a case gets: shared or own servers, tracked clients."""

	def __init__(self, suite):
		self.suite = suite
		self.clients = []
		self.own = []
		self.server = None

	def shared(self, config=None, **kw):
		return self.suite.shared_server(config, **kw)

	def start_server(self, config=None, **kw):
		"""A server of the case's own, stopped (exit 0 checked) at
		the end of the case unless the case stopped it."""
		s = Server(config, **kw)
		self.own.append(s)
		return s.start()

	async def client(self, server=None, **kw):
		c = await Client.connect(server or self.server, **kw)
		self.clients.append(c)
		return c

	async def clients_n(self, n, server=None, **kw):
		return [await self.client(server, label="c%d" % i, **kw)
		    for i in range(n)]

	async def raw(self, server=None, **kw):
		r = await RawWS.connect(server or self.server, **kw)
		self.clients.append(r)
		return r

	async def named(self, prefix, server=None):
		"""A connected client with a fresh unique username."""
		c = await self.client(server, label=prefix)
		await c.set_name(uniq(prefix))
		return c

	async def finish(self):
		for c in self.clients:
			if isinstance(c, RawWS):
				c.close()
			else:
				await c.close()
		self.clients = []


class Case:
	def __init__(self, fn, config, timeout):
		self.fn, self.config, self.timeout = fn, config, timeout
		self.name = fn.__name__
		if self.name.startswith("test_"):
			self.name = self.name[5:]


class Suite:
	def __init__(self, name):
		self.name = name
		self.cases = []
		self.servers = {}

	def case(self, fn=None, config=None, timeout=20):
		"""Decorator for async def case(t); config selects the shared
		server the case gets as t.server (None: no server)."""
		def add(f):
			self.cases.append(Case(f, config, timeout))
			return f
		if fn is not None:
			return add(fn)
		return add

	def shared_server(self, config=None, **kw):
		key = json.dumps([config, kw], sort_keys=True)
		s = self.servers.get(key)
		if s is not None and not s.alive():
			s.kill()  # already reported by the case it died in
			s = None
		if s is None:
			s = Server(config, **kw).start()
			self.servers[key] = s
		return s

	def _run_case(self, case):
		t = Context(self)

		async def body():
			try:
				await asyncio.wait_for(case.fn(t),
				    scaled(case.timeout))
			finally:
				await asyncio.wait_for(t.finish(), scaled(10))
		try:
			if case.config is not None:
				cfg = case.config if isinstance(case.config,
				    dict) else {}
				t.server = self.shared_server(cfg)
			asyncio.run(body())
			for s in t.own:
				if s.proc is not None and s.alive():
					s.stop()
			if t.server is not None and not t.server.alive():
				raise TestFailure("parleyd died during the "
				    "case (status %s); stderr:\n%s" %
				    (t.server.proc.returncode,
				    t.server.stderr()))
			return None
		except BaseException as e:
			if isinstance(e, (KeyboardInterrupt, SystemExit)):
				raise
			if isinstance(e, Skip):
				for s in t.own:
					s.kill()
				return e
			if isinstance(e, asyncio.TimeoutError):
				msg = "case timed out after %gs\n%s" % (
				    scaled(case.timeout), traceback.format_exc())
			elif isinstance(e, TestFailure):
				tb = traceback.extract_tb(e.__traceback__)
				where = ""
				for fr in tb:
					if os.path.basename(fr.filename) != \
					    "harness.py":
						where = "%s:%d: " % (
						    os.path.basename(fr.filename),
						    fr.lineno)
				msg = where + str(e)
			else:
				msg = traceback.format_exc()
			for s in t.own + ([t.server] if t.server else []):
				if s.proc is not None and s.dir and \
				    s in _live_servers:
					rc = s.proc.poll()
					if rc is not None:
						msg += "\n--- parleyd DIED: exit " \
						    "status %d%s" % (rc,
						    " (signal %d)" % -rc if rc < 0
						    else "")
					msg += "\n--- parleyd stderr (tail):\n" + \
					    s.stderr(25)
			for s in t.own:
				s.kill()
			return msg

	def run(self, argv=None):
		argv = sys.argv[1:] if argv is None else argv
		if not os.access(parleyd_path(), os.X_OK):
			print("FAIL %s: no executable parleyd at %s (set "
			    "PARLEYD)" % (self.name, parleyd_path()))
			return 1
		failed = ran = 0
		for case in self.cases:
			if argv and not any(a in case.name for a in argv):
				continue
			t0 = time.monotonic()
			err = self._run_case(case)
			dt = time.monotonic() - t0
			if isinstance(err, Skip):
				print("SKIP %s: %s" % (case.name, err), flush=True)
				continue
			ran += 1
			if err is None:
				print("PASS %s (%.2fs)" % (case.name, dt),
				    flush=True)
			else:
				failed += 1
				print("FAIL %s (%.2fs)" % (case.name, dt))
				for line in err.rstrip().splitlines():
					print("    " + line)
				sys.stdout.flush()
		for key, s in list(self.servers.items()):
			try:
				if s.alive():
					s.stop()
				elif s.proc is not None and s.dir:
					raise TestFailure("parleyd had exited "
					    "with %s; stderr:\n%s" % (
					    s.proc.returncode, s.stderr()))
			except TestFailure as e:
				failed += 1
				print("FAIL shutdown of shared server %s" % key)
				for line in str(e).splitlines():
					print("    " + line)
		if failed:
			return 1
		return 0 if ran else EXIT_SKIP

	def main(self):
		# a test driver's timeout still cleans up daemons and files
		signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
		try:
			rc = self.run()
		finally:
			_cleanup_at_exit()
		sys.exit(rc)
