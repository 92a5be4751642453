#!/usr/bin/python3
#
# test_proxy.py: parleyd behind a real nginx, configured as in
# contrib/nginx-parley.conf (without TLS): chat and static files through
# the proxy, the client address taken from X-Forwarded-For when the peer
# is a trusted proxy and only then, per-address limits on the forwarded
# address, and /metrics refused to a forwarded public address. Skipped
# (77) without /usr/sbin/nginx.

import asyncio
import atexit
import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Suite, RawWS, TestFailure, Skip,  # noqa
    check, check_eq, http_get, lua_config, read_http_head, scaled, uniq, HOST,
    WS_GUID, OP_TEXT, DEFAULT_INDEX, EXIT_SKIP)

NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
if not os.access(NGINX, os.X_OK):
	print("SKIP: no nginx at %s" % NGINX)
	sys.exit(EXIT_SKIP)

suite = Suite("proxy")
case = suite.case

TRUSTED = {"trusted_proxies": ["127.0.0.1"], "log_level": "debug"}

NGINX_CONF = """\
# written by the parley integration tests
worker_processes 1;
%(user)s
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log info;

events {
	worker_connections 256;
}

http {
	access_log %(dir)s/access.log;
	client_body_temp_path %(dir)s/tmp/body;
	proxy_temp_path %(dir)s/tmp/proxy;
	fastcgi_temp_path %(dir)s/tmp/fastcgi;
	uwsgi_temp_path %(dir)s/tmp/uwsgi;
	scgi_temp_path %(dir)s/tmp/scgi;

	map $http_upgrade $connection_upgrade {
		default upgrade;
		''      close;
	}

	upstream parley {
		server 127.0.0.1:%(upstream)d;
		keepalive 16;
	}

	server {
		listen 127.0.0.1:%(port)d;
		server_name localhost;

		location /ws {
			proxy_pass http://parley;
			proxy_http_version 1.1;
			proxy_set_header Upgrade $http_upgrade;
			proxy_set_header Connection $connection_upgrade;
			proxy_set_header Host $host;
			proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
			proxy_set_header X-Real-IP $remote_addr;
			proxy_read_timeout 1h;
			proxy_send_timeout 1h;
		}

		location / {
			proxy_pass http://parley;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host $host;
			proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
		}
	}
}
"""

_live_nginx = []


def _kill_nginx():
	for n in list(_live_nginx):
		n.stop()


atexit.register(_kill_nginx)


def free_port():
	s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
	try:
		s.bind((HOST, 0))
		return s.getsockname()[1]
	finally:
		s.close()


class Nginx:
	"""nginx in the foreground in a temporary prefix, proxying to one
	parleyd."""

	def __init__(self, upstream_port):
		self.upstream = upstream_port
		self.dir = tempfile.mkdtemp(prefix="parley-nginx-")
		for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
			os.makedirs(os.path.join(self.dir, "tmp", sub))
		self.proc = None
		self.port = None

	def _error_log(self):
		try:
			with open(os.path.join(self.dir, "error.log"), "rb") as f:
				return f.read().decode("utf-8", "replace")
		except OSError:
			return ""

	def start(self, timeout=10):
		for attempt in range(5):
			self.port = free_port()
			conf = os.path.join(self.dir, "nginx.conf")
			user = ""
			if os.geteuid() == 0:
				# workers must read this prefix, which is ours
				user = "user root;"
			with open(conf, "w") as f:
				f.write(NGINX_CONF % {"dir": self.dir, "user": user,
				    "upstream": self.upstream, "port": self.port})
			with open(os.path.join(self.dir, "stderr"), "wb") as err:
				self.proc = subprocess.Popen([NGINX, "-p", self.dir,
				    "-c", conf, "-e", os.path.join(self.dir,
				    "error.log"), "-g", "daemon off;"],
				    stdin=subprocess.DEVNULL,
				    stdout=subprocess.DEVNULL, stderr=err)
			_live_nginx.append(self)
			deadline = time.monotonic() + scaled(timeout)
			while True:
				if self.proc.poll() is not None:
					break
				try:
					socket.create_connection((HOST, self.port),
					    0.5).close()
					return self
				except OSError:
					pass
				if time.monotonic() > deadline:
					self.stop()
					raise TestFailure("nginx does not listen on %d "
					    "after %gs; error log:\n%s" % (self.port,
					    scaled(timeout), self._error_log()))
				time.sleep(0.02)
			_live_nginx.remove(self)
			log = self._error_log()
			if "Address already in use" not in log:
				raise TestFailure("nginx exited with %d; error log:\n%s"
				    % (self.proc.returncode, log))
		raise TestFailure("nginx found no free port")

	def stop(self):
		if self.proc is not None and self.proc.poll() is None:
			self.proc.send_signal(signal.SIGTERM)
			try:
				self.proc.wait(5)
			except subprocess.TimeoutExpired:
				self.proc.kill()
				self.proc.wait(5)
		if self in _live_nginx:
			_live_nginx.remove(self)
		if os.environ.get("PARLEY_KEEP", "") in ("", "0"):
			shutil.rmtree(self.dir, ignore_errors=True)

	@property
	def url(self):
		return "ws://%s:%d/ws" % (HOST, self.port)

	@property
	def endpoint(self):
		return types.SimpleNamespace(port=self.port)


class Proxied:
	"""A parleyd of the case's own with nginx in front."""

	def __init__(self, t, config=None):
		self.t = t
		self.config = dict(TRUSTED)
		self.config.update(config or {})

	async def __aenter__(self):
		self.server = self.t.start_server(self.config)
		self.nginx = Nginx(self.server.port).start()
		return self

	async def __aexit__(self, *exc):
		self.nginx.stop()


def log_text(server):
	try:
		with open(server.stderr_path, "rb") as f:
			return f.read().decode("utf-8", "replace")
	except OSError:
		return ""


async def client_addr(server, guest, timeout=5):
	"""The addr= of the open line of the client welcomed as guest."""
	rx = re.compile(r"ws: open client=\d+ addr=(\S+) name=%s$" %
	    re.escape(guest), re.M)
	deadline = time.monotonic() + scaled(timeout)
	while True:
		m = rx.search(log_text(server))
		if m:
			return m.group(1)
		if time.monotonic() > deadline:
			raise TestFailure("no open line for %s; log (tail):\n%s" %
			    (guest, "\n".join(log_text(server).splitlines()[-20:])))
		await asyncio.sleep(0.02)


async def ws_open(port, headers=None, local=None, label="raw"):
	"""A WebSocket handshake to 127.0.0.1:port, from the address local
	when given. Returns (RawWS with the welcome read, None) on 101, or
	(None, response) otherwise."""
	reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST,
	    port, local_addr=(local, 0) if local else None), scaled(5))
	ws = RawWS(reader, writer, label)
	key = base64.b64encode(os.urandom(16)).decode()
	hdrs = {"Host": "%s:%d" % (HOST, port), "Upgrade": "websocket",
	    "Connection": "Upgrade", "Sec-WebSocket-Key": key,
	    "Sec-WebSocket-Version": "13"}
	hdrs.update(headers or {})
	writer.write(("GET /ws HTTP/1.1\r\n" + "".join("%s: %s\r\n" % kv
	    for kv in hdrs.items()) + "\r\n").encode())
	resp = await read_http_head(reader, scaled(5))
	ws.response = resp
	if resp.status != 101:
		n = int(resp.header("content-length") or 0)
		if n:
			resp.body = await asyncio.wait_for(reader.readexactly(n),
			    scaled(5))
		writer.close()
		return None, resp
	want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode())
	    .digest()).decode()
	check_eq(resp.header("sec-websocket-accept"), want,
	    "%s: Sec-WebSocket-Accept" % label)
	f = await ws.read_frame()
	check_eq(f.opcode, OP_TEXT, "%s: first frame" % label)
	ws.welcome = f.json()
	check_eq(ws.welcome.get("type"), "welcome", "%s: first frame" % label)
	return ws, None


async def must_open(t, port, headers=None, local=None, label="raw"):
	ws, resp = await ws_open(port, headers, local, label)
	check(ws is not None, "%s: upgrade refused: %r" % (label, resp))
	t.clients.append(ws)
	return ws


async def http_from(port, path, headers=None, local=None):
	"""A GET with Connection: close from the address local."""
	reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST,
	    port, local_addr=(local, 0) if local else None), scaled(5))
	try:
		hdrs = {"Host": "%s:%d" % (HOST, port), "Connection": "close"}
		hdrs.update(headers or {})
		writer.write(("GET %s HTTP/1.1\r\n" % path + "".join(
		    "%s: %s\r\n" % kv for kv in hdrs.items()) + "\r\n").encode())
		resp = await read_http_head(reader, scaled(5))
		resp.body = await asyncio.wait_for(reader.read(), scaled(5))
		return resp
	finally:
		writer.close()


def loopback_alias_works():
	s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
	try:
		s.bind(("127.0.0.2", 0))
		return True
	except OSError:
		return False
	finally:
		s.close()


# ---------------------------------------------------------------------------

@case()
async def test_chat_through_nginx(t):
	async with Proxied(t) as p:
		a = await t.client(p.nginx.url, label="a")
		b = await t.client(p.nginx.url, label="b")
		room = uniq("px")
		await a.create(room)
		await b.join(room)
		await a.say(room, "through the proxy")
		m = await b.recv("new_message", pred=lambda m: m.get("message") ==
		    "through the proxy")
		check_eq(m.get("sender"), a.username, "sender")
		await b.say(room, "and back")
		await a.recv("new_message", pred=lambda m: m.get("message") ==
		    "and back")
		big = "y" * 3000
		await a.say(room, big)
		await b.recv("new_message", pred=lambda m: m.get("message") == big)
		r = await http_get(p.nginx.endpoint, "/")
		check_eq(r.status, 200, "GET / through nginx")
		check_eq(r.body.decode(), DEFAULT_INDEX, "the page through nginx")
		r = await http_get(p.nginx.endpoint, "/healthz")
		check_eq(r.status, 200, "/healthz through nginx")
		await a.close()
		await b.close()
		# clean closes cross the proxy too
		await asyncio.sleep(0.2)
		check(re.search(r"ws: close client=\d+ addr=127\.0\.0\.1 name=%s "
		    r"code=1000 " % re.escape(a.username), log_text(p.server)),
		    "no clean close line for %s" % a.username)


@case()
async def test_forwarded_address(t):
	async with Proxied(t) as p:
		port = p.nginx.port
		# nginx appends its peer (127.0.0.1, trusted): the client's own
		# header names the client
		ws = await must_open(t, port, {"X-Forwarded-For": "203.0.113.7"})
		check_eq(await client_addr(p.server, ws.welcome["username"]),
		    "203.0.113.7", "the client address behind nginx")
		# without a header of the client's: nginx's peer, loopback
		ws = await must_open(t, port)
		check_eq(await client_addr(p.server, ws.welcome["username"]),
		    "127.0.0.1", "the address of a client without X-Forwarded-For")
		# read from the right: the first untrusted hop is the client,
		# whatever it wrote further left
		ws = await must_open(t, port, {"X-Forwarded-For":
		    "198.51.100.9, 203.0.113.8"})
		check_eq(await client_addr(p.server, ws.welcome["username"]),
		    "203.0.113.8", "the rightmost untrusted hop")
		# trusted hops the client adds are skipped as well
		ws = await must_open(t, port, {"X-Forwarded-For":
		    "203.0.113.9, 127.0.0.1"})
		check_eq(await client_addr(p.server, ws.welcome["username"]),
		    "203.0.113.9", "trusted hops skipped")
		# IPv6 in the header
		ws = await must_open(t, port, {"X-Forwarded-For": "2001:db8::7"})
		check_eq(await client_addr(p.server, ws.welcome["username"]),
		    "2001:db8::7", "an IPv6 client address")
		# a hop that is no address does not pass for the proxy
		ws = await must_open(t, port, {"X-Forwarded-For": "not-an-ip"})
		addr = await client_addr(p.server, ws.welcome["username"])
		check(addr != "127.0.0.1" and addr != "not-an-ip",
		    "a garbage X-Forwarded-For gives address %r" % addr)
		# the forwarded address is what the close line says too
		ws = await must_open(t, port, {"X-Forwarded-For": "203.0.113.10"})
		guest = ws.welcome["username"]
		ws.close()
		deadline = time.monotonic() + scaled(5)
		while not re.search(r"ws: close client=\d+ addr=203\.0\.113\.10 "
		    r"name=%s " % re.escape(guest), log_text(p.server)):
			check(time.monotonic() < deadline, "no close line with the "
			    "forwarded address")
			await asyncio.sleep(0.02)


@case()
async def test_forged_header_ignored(t):
	if not loopback_alias_works():
		raise Skip("cannot bind 127.0.0.2")
	async with Proxied(t) as p:
		port = p.server.port  # directly, not through nginx
		ws = await must_open(t, port, {"X-Forwarded-For": "203.0.113.7",
		    "X-Real-IP": "203.0.113.8"}, local="127.0.0.2")
		check_eq(await client_addr(p.server, ws.welcome["username"]),
		    "127.0.0.2", "the address of an untrusted peer that forges "
		    "X-Forwarded-For")
		ws = await must_open(t, port, {"X-Real-IP": "203.0.113.8"},
		    local="127.0.0.2")
		check_eq(await client_addr(p.server, ws.welcome["username"]),
		    "127.0.0.2", "the address of an untrusted peer that forges "
		    "X-Real-IP")
		# /metrics: the forged header does not make it remote either
		r = await http_from(port, "/metrics", {"X-Forwarded-For":
		    "203.0.113.7"}, local="127.0.0.2")
		check_eq(r.status, 200, "/metrics from 127.0.0.2 with a forged "
		    "public X-Forwarded-For")
		# the trusted peer's word is believed, X-Real-IP when there is
		# no X-Forwarded-For
		ws = await must_open(t, port, {"X-Real-IP": "203.0.113.11"})
		check_eq(await client_addr(p.server, ws.welcome["username"]),
		    "203.0.113.11", "X-Real-IP from a trusted peer")


@case()
async def test_forwarded_header_lines_combined(t):
	# Some proxies (HAProxy's "option forwardfor", for one) add their
	# own X-Forwarded-For line after the client's instead of appending
	# to it. Header lines of one name are one comma-separated list
	# (RFC 9110 5.3): the last hop is in the last line, and a forged
	# first line must not name the client.
	async with Proxied(t) as p:
		port = p.server.port  # the test plays the trusted proxy
		ws = await must_open(t, port, {"X-Forwarded-For": "203.0.113.66",
		    "x-forwarded-for": "198.51.100.77"})
		check_eq(await client_addr(p.server, ws.welcome["username"]),
		    "198.51.100.77", "the client address with two "
		    "X-Forwarded-For lines (forged 203.0.113.66, then the "
		    "proxy's 198.51.100.77)")
		# nginx joins them itself
		ws = await must_open(t, p.nginx.port, {"X-Forwarded-For":
		    "203.0.113.66", "x-forwarded-for": "198.51.100.78"})
		check_eq(await client_addr(p.server, ws.welcome["username"]),
		    "198.51.100.78", "two X-Forwarded-For lines through nginx")


@case()
async def test_reload_trusted_proxies(t):
	# trusted_proxies applies at once on a reload, both ways (the
	# default trusts loopback, so "untrusted" is an empty list)
	async with Proxied(t, {"trusted_proxies": []}) as p:
		hdr = {"X-Forwarded-For": "203.0.113.20"}
		ws = await must_open(t, p.nginx.port, hdr)
		check_eq(await client_addr(p.server, ws.welcome["username"]),
		    "127.0.0.1", "the address behind an untrusted proxy")
		r = await http_get(p.nginx.endpoint, "/metrics", headers=hdr)
		check_eq(r.status, 200, "/metrics through an untrusted proxy on "
		    "loopback")
		await reload_with(p.server, trusted_proxies=["127.0.0.0/8"])
		ws2 = await must_open(t, p.nginx.port, hdr)
		check_eq(await client_addr(p.server, ws2.welcome["username"]),
		    "203.0.113.20", "the address once the proxy is trusted")
		r = await http_get(p.nginx.endpoint, "/metrics", headers=hdr)
		check_eq(r.status, 403, "/metrics for a forwarded public address "
		    "once the proxy is trusted")
		await reload_with(p.server, trusted_proxies=[])
		ws3 = await must_open(t, p.nginx.port, hdr)
		check_eq(await client_addr(p.server, ws3.welcome["username"]),
		    "127.0.0.1", "the address once the proxy is no longer "
		    "trusted")
		ws.close()
		ws2.close()


async def reload_with(server, **changes):
	server.config.update(changes)
	with open(server.config_path, "w") as f:
		f.write(lua_config(server.config))
	n = len(re.findall(r"core: reloaded ", log_text(server)))
	server.send_signal(signal.SIGHUP)
	deadline = time.monotonic() + scaled(5)
	while len(re.findall(r"core: reloaded ", log_text(server))) <= n:
		check(time.monotonic() < deadline, "no reload; log:\n%s" %
		    "\n".join(log_text(server).splitlines()[-10:]))
		await asyncio.sleep(0.02)


@case()
async def test_per_address_limit(t):
	# resume off: a dropped connection would be held, keeping its place
	async with Proxied(t, {"max_connections_per_ip": 2,
	    "resume_grace": 0}) as p:
		port = p.nginx.port
		for i in range(3):
			await must_open(t, port, {"X-Forwarded-For":
			    "198.51.100.%d" % (i + 1)}, label="diff%d" % i)
		same = []
		for i in range(2):
			same.append(await must_open(t, port, {"X-Forwarded-For":
			    "198.51.100.50"}, label="same%d" % i))
		ws, resp = await ws_open(port, {"X-Forwarded-For":
		    "198.51.100.50"}, label="same2")
		if ws is not None:
			t.clients.append(ws)
			raise TestFailure("a third connection from one forwarded "
			    "address was accepted")
		check_eq(resp.status, 429, "the third connection from one "
		    "forwarded address")
		check(resp.header("retry-after") is not None, "429 without "
		    "Retry-After: %r" % resp)
		check(re.search(r"refused 198\.51\.100\.50: 2 connections",
		    log_text(p.server)), "the refusal logs the forwarded address")
		# when one goes, the address has room again
		same[0].close()
		deadline = time.monotonic() + scaled(5)
		while True:
			ws, resp = await ws_open(port, {"X-Forwarded-For":
			    "198.51.100.50"}, label="again")
			if ws is not None:
				t.clients.append(ws)
				break
			check(time.monotonic() < deadline, "still refused after a "
			    "connection from the address closed: %r" % resp)
			await asyncio.sleep(0.1)
		# nginx itself (127.0.0.1) is not limited as one address: 5
		# WebSockets run through it now
		r = await http_get(p.server, "/healthz")
		check_eq(r.status, 200, "/healthz")
		check_eq(json.loads(r.body).get("connections"), 5,
		    "connections through nginx")


@case()
async def test_metrics_through_nginx(t):
	async with Proxied(t) as p:
		ep = p.nginx.endpoint
		r = await http_get(ep, "/metrics", headers={"X-Forwarded-For":
		    "203.0.113.7"})
		check_eq(r.status, 403, "/metrics through nginx for a public "
		    "address")
		check(b"parley_" not in r.body, "metrics in the 403 body")
		r = await http_get(ep, "/metrics", headers={"X-Forwarded-For":
		    "2001:db8::1"})
		check_eq(r.status, 403, "/metrics through nginx for a public "
		    "IPv6 address")
		r = await http_get(ep, "/metrics", headers={"X-Forwarded-For":
		    "garbage"})
		check_eq(r.status, 403, "/metrics through nginx for an unknown "
		    "address")
		# a client on this machine, through nginx: loopback after all
		r = await http_get(ep, "/metrics")
		check_eq(r.status, 200, "/metrics through nginx from loopback")
		check(b"parley_connections" in r.body, "metrics in the body")
		# and directly, as before
		r = await http_get(p.server, "/metrics")
		check_eq(r.status, 200, "/metrics directly from loopback")


if __name__ == "__main__":
	suite.main()
