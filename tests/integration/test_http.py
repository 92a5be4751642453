#!/usr/bin/python3
#
# test_http.py: the HTTP side of the built parleyd: static files from a
# temporary web root (types, index, 404, traversal and symlinks, HEAD,
# validators, security headers), /healthz, WebSocket handshake failures,
# the Origin check and the HTTP-phase timeout.

import asyncio
import atexit
import base64
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Suite, Client, TestFailure, Skip,  # noqa
    check, check_eq, http_get, http_raw, scaled, uniq, HOST)

suite = Suite("http")
case = suite.case

SECRET = "TOP-SECRET-%d-%s" % (os.getpid(), base64.b16encode(
    os.urandom(6)).decode())
INDEX = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
    "<title>parley</title><link rel=\"stylesheet\" href=\"style.css\">"
    "</head><body><h1>parley \u00e9</h1><script src=\"app.js\"></script>"
    "</body></html>\n")
CSS = "h1 { color: #333; }\n" * 20
JS = "\"use strict\";\nconsole.log(\"parley\");\n"

# One temporary tree for the file: www/ is the web root, outside/ holds a
# file that must never be served.
TREE = tempfile.mkdtemp(prefix="parley-http-")
atexit.register(shutil.rmtree, TREE, True)
WWW = os.path.join(TREE, "www")
OUTSIDE = os.path.join(TREE, "outside")
os.makedirs(os.path.join(WWW, "sub"))
os.makedirs(OUTSIDE)
for path, text in (("index.html", INDEX), ("style.css", CSS),
    ("app.js", JS), ("sub/page.html", "<p>sub page</p>\n")):
	with open(os.path.join(WWW, path), "w") as f:
		f.write(text)
with open(os.path.join(OUTSIDE, "secret.txt"), "w") as f:
	f.write(SECRET + "\n")
with open(os.path.join(TREE, "secret.html"), "w") as f:
	f.write(SECRET + "\n")
os.symlink("../outside/secret.txt", os.path.join(WWW, "leak.txt"))
os.symlink("../outside", os.path.join(WWW, "leakdir"))
os.symlink(os.path.join(OUTSIDE, "secret.txt"), os.path.join(WWW,
    "abs.txt"))
os.symlink("../../secret.html", os.path.join(WWW, "sub", "up.html"))

ORIGINS = ["http://good.example", "https://also.example:8443"]
CONFIG = {"web_root": WWW, "allowed_origins": ORIGINS}


def content_type(resp):
	return (resp.header("content-type") or "").split(";")[0].strip().lower()


@case(config=CONFIG)
async def test_static_files(t):
	for path, body, types in (("/index.html", INDEX, ["text/html"]),
	    ("/style.css", CSS, ["text/css"]),
	    ("/app.js", JS, ["text/javascript", "application/javascript"]),
	    ("/sub/page.html", "<p>sub page</p>\n", ["text/html"]),
	    ("/style.css?v=3", CSS, ["text/css"])):
		r = await http_get(t.server, path)
		check_eq(r.status, 200, "status of %s" % path)
		check_eq(r.body, body.encode(), "body of %s" % path)
		check(content_type(r) in types, "Content-Type of %s: %r" %
		    (path, r.header("content-type")))
		if r.header("content-length") is not None:
			check_eq(int(r.header("content-length")),
			    len(body.encode()), "Content-Length of %s" % path)


@case(config=CONFIG)
async def test_root_is_index(t):
	r = await http_get(t.server, "/")
	check_eq(r.status, 200, "status of /")
	check_eq(r.body, INDEX.encode(), "body of /")
	check_eq(content_type(r), "text/html", "Content-Type of /")


@case(config=CONFIG)
async def test_not_found(t):
	for path in ("/nope.html", "/sub/nope", "/style.css/x", "/index.htm",
	    "/healthzz", "/ws2"):
		r = await http_get(t.server, path)
		check_eq(r.status, 404, "status of %s" % path)
		check(SECRET.encode() not in r.body, "no secret")


TRAVERSAL = [
	"/../outside/secret.txt",
	"/../../outside/secret.txt",
	"/sub/../../outside/secret.txt",
	"/%2e%2e/outside/secret.txt",
	"/%2E%2E/outside/secret.txt",
	"/..%2foutside/secret.txt",
	"/..%2Foutside%2Fsecret.txt",
	"/%2e%2e%2foutside%2fsecret.txt",
	"/sub/%2e%2e/%2e%2e/outside/secret.txt",
	"/..%5coutside%5csecret.txt",
	"/..\\outside\\secret.txt",
	"/%252e%252e/outside/secret.txt",
	"/....//outside/secret.txt",
	"/%c0%ae%c0%ae/outside/secret.txt",
	"/leak.txt",
	"/leakdir/secret.txt",
	"/leakdir/",
	"/abs.txt",
	"/sub/up.html",
	"//outside/secret.txt",
	"/./../outside/secret.txt",
	"/../secret.html",
	"/sub/../../secret.html",
	"/" + TREE.lstrip("/") + "/outside/secret.txt",
	"http://127.0.0.1/../outside/secret.txt",
	"../outside/secret.txt",
]


async def refused(t, paths):
	"""Requests every path; all must be refused and none may leak."""
	bad = []
	for path in paths:
		for method in ("GET", "HEAD"):
			r = await http_get(t.server, path, method=method)
			if SECRET.encode() in r.body + r.extra:
				bad.append("%s %s LEAKED the outside file" %
				    (method, path))
			elif r.status < 400:
				bad.append("%s %s: status %d (%s, %d bytes), want "
				    "a refusal" % (method, path, r.status,
				    r.header("content-type"), len(r.body)))
	if bad:
		raise TestFailure("\n".join(bad))
	r = await http_get(t.server, "/style.css")
	check_eq(r.status, 200, "status after the attempts")


@case(config=CONFIG)
async def test_traversal_refused(t):
	await refused(t, TRAVERSAL)


@case(config=CONFIG)
async def test_encoded_nul_refused(t):
	# a decoded NUL must not cut the path short ("/index.html%00.css"
	# is not "/index.html")
	await refused(t, ["/%00", "/%00/../outside/secret.txt",
	    "/index.html%00.css", "/style.css%00", "/leak.txt%00.html",
	    "/sub%00/page.html"])


@case(config=CONFIG)
async def test_head(t):
	for path in ("/", "/index.html", "/style.css", "/app.js"):
		g = await http_get(t.server, path)
		h = await http_get(t.server, path, method="HEAD")
		check_eq(h.status, 200, "HEAD %s status" % path)
		check_eq(h.extra, b"", "HEAD %s sent a body" % path)
		check_eq(h.header("content-type"), g.header("content-type"),
		    "HEAD %s Content-Type" % path)
		if h.header("content-length") is not None:
			check_eq(int(h.header("content-length")), len(g.body),
			    "HEAD %s Content-Length" % path)
		check_eq(h.header("etag"), g.header("etag"), "HEAD %s ETag" %
		    path)
		check_eq(h.header("last-modified"), g.header("last-modified"),
		    "HEAD %s Last-Modified" % path)
	h = await http_get(t.server, "/nope", method="HEAD")
	check_eq(h.status, 404, "HEAD of a missing file")


@case(config=CONFIG)
async def test_conditional(t):
	for path in ("/", "/style.css"):
		r = await http_get(t.server, path)
		etag = r.header("etag")
		check(etag, "%s has an ETag" % path)
		lm = r.header("last-modified")
		check(lm, "%s has Last-Modified" % path)
		for method in ("GET", "HEAD"):
			c = await http_get(t.server, path, method=method,
			    headers={"If-None-Match": etag})
			check_eq(c.status, 304, "%s %s If-None-Match" %
			    (method, path))
			check_eq(c.body + c.extra, b"", "304 has no body")
			check_eq(c.header("etag"), etag, "ETag on the 304")
		c = await http_get(t.server, path,
		    headers={"If-None-Match": "\"nope\", " + etag})
		check_eq(c.status, 304, "If-None-Match with a list")
		c = await http_get(t.server, path,
		    headers={"If-None-Match": "*"})
		check_eq(c.status, 304, "If-None-Match: *")
		c = await http_get(t.server, path,
		    headers={"If-None-Match": "\"other\""})
		check_eq(c.status, 200, "If-None-Match that does not match")
		check_eq(c.body, r.body, "body")
		c = await http_get(t.server, path,
		    headers={"If-Modified-Since": lm})
		check_eq(c.status, 304, "If-Modified-Since = Last-Modified")
		check_eq(c.body + c.extra, b"", "304 has no body")
		c = await http_get(t.server, path, headers={
		    "If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"})
		check_eq(c.status, 200, "If-Modified-Since in the past")
		check_eq(c.body, r.body, "body")
		# If-None-Match wins over If-Modified-Since
		c = await http_get(t.server, path, headers={
		    "If-None-Match": "\"other\"", "If-Modified-Since": lm})
		check_eq(c.status, 200, "If-None-Match decides")
	# a changed file gets a new ETag
	path = os.path.join(WWW, "changing.css")
	with open(path, "w") as f:
		f.write("a { }\n")
	r1 = await http_get(t.server, "/changing.css")
	with open(path, "w") as f:
		f.write("a { color: red; }\n")
	os.utime(path, (time.time() + 10, time.time() + 10))
	r2 = await http_get(t.server, "/changing.css")
	check_eq(r2.body, b"a { color: red; }\n", "new content")
	check(r1.header("etag") != r2.header("etag"), "ETag changes with the "
	    "file")
	c = await http_get(t.server, "/changing.css",
	    headers={"If-None-Match": r1.header("etag")})
	check_eq(c.status, 200, "stale ETag")


@case(config=CONFIG)
async def test_security_headers(t):
	for path in ("/", "/index.html", "/sub/page.html"):
		r = await http_get(t.server, path)
		check_eq(r.status, 200, "status")
		csp = r.header("content-security-policy") or ""
		check("default-src 'self'" in csp, "%s: CSP %r" % (path, csp))
		check_eq((r.header("x-content-type-options") or "").lower(),
		    "nosniff", "%s: X-Content-Type-Options" % path)


@case()
async def test_healthz(t):
	s = t.start_server({"rooms": ["general", "second"]})

	async def health():
		r = await http_get(s, "/healthz")
		check_eq(r.status, 200, "status of /healthz")
		check_eq(content_type(r), "application/json",
		    "Content-Type of /healthz")
		d = json.loads(r.body)
		check_eq(d.get("status"), "ok", "status")
		check(type(d.get("connections")) is int, "connections")
		check(type(d.get("rooms")) is int, "rooms")
		return d
	d = await health()
	check_eq((d["connections"], d["rooms"]), (0, 2), "idle server")
	a = await t.client(s)
	b = await t.client(s)
	await a.create(uniq("hz"))
	d = await health()
	check_eq((d["connections"], d["rooms"]), (2, 3), "two clients")
	h = await http_get(s, "/healthz", method="HEAD")
	check_eq(h.status, 200, "HEAD /healthz")
	check_eq(h.extra, b"", "HEAD /healthz has no body")
	await b.close()
	deadline = time.monotonic() + scaled(3)
	while True:
		d = await health()
		if d["connections"] == 1:
			break
		check(time.monotonic() < deadline, "connections after a close: "
		    "%r" % d)
		await asyncio.sleep(0.05)


def upgrade_request(method="GET", path="/ws", **over):
	hdrs = {"Host": "%s" % HOST, "Upgrade": "websocket",
	    "Connection": "Upgrade",
	    "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
	    "Sec-WebSocket-Version": "13"}
	for k, v in over.items():
		k = k.replace("_", "-")
		if v is None:
			hdrs.pop(k, None)
		else:
			hdrs[k] = v
	return ("%s %s HTTP/1.1\r\n" % (method, path) + "".join(
	    "%s: %s\r\n" % kv for kv in hdrs.items()) + "\r\n")


async def handshake_status(server, req):
	r = await http_raw(server, req, read_to_eof=False)
	return r


@case(config=CONFIG)
async def test_handshake_failures(t):
	comp = await t.client()
	cases = [
		("POST", upgrade_request("POST"), 405),
		("PUT", upgrade_request("PUT"), 405),
		("missing key", upgrade_request(**{"Sec-WebSocket-Key": None}),
		    400),
		("bad key", upgrade_request(**{"Sec-WebSocket-Key": "abc"}),
		    400),
		("short key", upgrade_request(**{"Sec-WebSocket-Key":
		    base64.b64encode(b"x" * 15).decode()}), 400),
		("long key", upgrade_request(**{"Sec-WebSocket-Key":
		    base64.b64encode(b"x" * 17).decode()}), 400),
		("no Upgrade", upgrade_request(Upgrade=None), 400),
		("wrong Upgrade", upgrade_request(Upgrade="h2c"), 400),
		("no Connection", upgrade_request(Connection=None), 400),
		("plain GET /ws", "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", 400),
		("HTTP/1.0", upgrade_request().replace("HTTP/1.1", "HTTP/1.0",
		    1), None),
	]
	for what, req, want in cases:
		if want is None:
			# refused with a 4xx or by closing: anything but 101
			try:
				r = await handshake_status(t.server, req)
			except TestFailure:
				continue
			check(r.status >= 400, "%s: status %d" % (what,
			    r.status))
			continue
		r = await handshake_status(t.server, req)
		check_eq(r.status, want, "%s status" % what)
	for version in ("8", "12", "14", "", "13, 8"):
		r = await handshake_status(t.server, upgrade_request(**{
		    "Sec-WebSocket-Version": version}))
		check_eq(r.status, 426, "version %r status" % version)
		check_eq(r.header("sec-websocket-version"), "13",
		    "version %r: Sec-WebSocket-Version" % version)
	r = await handshake_status(t.server, upgrade_request(**{
	    "Sec-WebSocket-Version": None}))
	check(r.status in (400, 426), "no version: status %d" % r.status)
	# header tokens are case-insensitive and may come in lists
	r = await handshake_status(t.server, upgrade_request(
	    Upgrade="WebSocket", Connection="keep-alive, upgrade"))
	check_eq(r.status, 101, "mixed-case tokens")
	await comp.sync()


@case(config=CONFIG)
async def test_handshake_header_whitespace(t):
	# Optional white space around a header value is not part of it (RFC
	# 9110 section 5.5): a key, version, Upgrade, Connection or Origin
	# with spaces or tabs around it is the same value without them, and
	# the accept is computed from the bare key.
	import hashlib
	key = base64.b64encode(os.urandom(16)).decode()
	want = base64.b64encode(hashlib.sha1((key +
	    "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
	for pad_l, pad_r in ((" ", " "), ("  ", "\t"), ("\t", ""), ("", "  ")):
		req = upgrade_request(**{"Sec-WebSocket-Key": pad_l + key + pad_r,
		    "Sec-WebSocket-Version": pad_l + "13" + pad_r,
		    "Upgrade": pad_l + "websocket" + pad_r,
		    "Connection": pad_l + "Upgrade" + pad_r,
		    "Origin": pad_l + ORIGINS[0] + pad_r})
		r = await handshake_status(t.server, req)
		check_eq(r.status, 101, "key %r status" % (pad_l + key + pad_r))
		check_eq(r.header("sec-websocket-accept"), want,
		    "accept for a key with white space around it")
	# the white space inside a value still counts
	r = await handshake_status(t.server, upgrade_request(**{
	    "Sec-WebSocket-Key": key[:10] + " " + key[10:]}))
	check_eq(r.status, 400, "a key with a space inside")
	r = await handshake_status(t.server, upgrade_request(
	    Origin=" http://evil.example "))
	check_eq(r.status, 403, "a foreign Origin with white space around")


@case(config=CONFIG)
async def test_origin(t):
	for origin in ("http://evil.example", "http://good.example.evil.com",
	    "http://good.example:80", "https://good.example", "null",
	    "http://good.example/", "https://also.example",
	    "HTTP://GOOD.EXAMPLE"):
		r = await handshake_status(t.server, upgrade_request(
		    Origin=origin))
		check_eq(r.status, 403, "Origin %r status" % origin)
		try:
			c = await Client.connect(t.server, origin=origin)
			await c.close()
			raise TestFailure("websockets connected with Origin %r"
			    % origin)
		except Exception as e:
			if isinstance(e, TestFailure):
				raise
	for origin in ORIGINS:
		c = await t.client(origin=origin)
		await c.sync()
	c = await t.client()
	await c.sync()
	r = await handshake_status(t.server, upgrade_request())
	check_eq(r.status, 101, "no Origin")
	# static files do not care about Origin
	r = await http_get(t.server, "/", headers={
	    "Origin": "http://evil.example"})
	check_eq(r.status, 200, "GET / with a foreign Origin")


@case(config={})
async def test_any_origin_without_list(t):
	for origin in ("http://evil.example", "null", "http://localhost"):
		c = await t.client(origin=origin)
		await c.sync()


@case(timeout=30)
async def test_http_timeout(t):
	s = t.start_server({"http_timeout": 1})
	half = await asyncio.open_connection(HOST, s.port)
	idle = await asyncio.open_connection(HOST, s.port)
	half[1].write(b"GET / HT")
	await half[1].drain()
	t0 = time.monotonic()
	# others are served meanwhile
	for i in range(5):
		r = await http_get(s, "/healthz", timeout=1)
		check_eq(r.status, 200, "healthz while a request hangs")
		await asyncio.sleep(0.1)
	c = await t.client(s)
	await c.sync()
	for what, (reader, writer) in (("half request", half),
	    ("idle connection", idle)):
		try:
			data = await asyncio.wait_for(reader.read(),
			    max(t0 + scaled(4) - time.monotonic(), 0.1))
		except asyncio.TimeoutError:
			raise TestFailure("%s still open after %gs" %
			    (what, scaled(4)))
		except ConnectionError:
			data = b""
		check(not data or data.startswith(b"HTTP/1.1 408") or
		    data.startswith(b"HTTP/1.0 408") or
		    data.startswith(b"HTTP/1.1 400"),
		    "%s got %r" % (what, data[:100]))
		writer.close()
	# a WebSocket is not subject to the HTTP timeout
	await asyncio.sleep(1.5)
	await c.sync()


@case()
async def test_bundled_public(t):
	top = os.environ.get("top_srcdir") or os.path.join(
	    os.path.dirname(os.path.abspath(__file__)), "..", "..")
	public = os.path.abspath(os.path.join(top, "public"))
	index = os.path.join(public, "index.html")
	if not os.path.exists(index):
		raise Skip("no public/index.html in %s" % public)
	s = t.start_server({"web_root": public})
	r = await http_get(s, "/")
	check_eq(r.status, 200, "status of /")
	with open(index, "rb") as f:
		check_eq(r.body, f.read(), "body of /")
	check_eq(content_type(r), "text/html", "Content-Type")
	check("default-src 'self'" in (r.header("content-security-policy")
	    or ""), "CSP on the bundled page")


if __name__ == "__main__":
	suite.main()
