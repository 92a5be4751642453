#!/usr/bin/python3
#
# test_auth.py: who a client is, decided before the upgrade (protocol 1.1,
# "Who a client is"). A connect hook sees the HTTP request (headers,
# cookies, query) and admits it, admits it with an identity, or refuses it
# with HTTP 401 or 403 and a JSON body; a failing hook refuses (500).
# The auth-jwt plugin admits requests carrying a token made by an
# independent implementation (Debian's python3-jwt), refuses expired,
# not-yet-valid, wrong-audience, wrong-key, alg-none and algorithm-
# confusion tokens, closes a connection whose token expires (4003) and
# accepts a fresh token (refresh_token).

import asyncio
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Suite, Skip, Client, check, check_eq, http_get,  # noqa
    parleyd_path, uniq, scaled)

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("PARLEY_SRCDIR") or os.path.join(HERE, "..", "..")
BUILD = os.path.dirname(os.path.dirname(parleyd_path()))
TEST_SCRIPTS = os.path.abspath(os.path.join(SRC, "tests", "scripts"))

suite = Suite("auth")
case = suite.case

SECRET = "a shared secret of the site, 32 bytes or more long!"
WS_HEADERS = {"Upgrade": "websocket", "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13"}


def jwt_module():
	try:
		import jwt  # Debian's python3-jwt
		return jwt
	except ImportError:
		raise Skip("python3-jwt is not installed")


def jwt_plugin():
	p = os.path.join(BUILD, "plugins", ".libs", "auth-jwt.so")
	if not os.path.exists(p):
		raise Skip("the auth-jwt plugin is not built (no GnuTLS?)")
	return p


def token(claims=None, key=SECRET, alg="HS256", **kw):
	jwt = jwt_module()
	now = int(time.time())
	c = {"sub": "alice", "name": "Alice", "iat": now, "exp": now + 600,
	    "aud": "parley"}
	c.update(claims or {})
	for k in [k for k, v in c.items() if v is None]:
		del c[k]
	t = jwt.encode(c, key, algorithm=alg, **kw)
	return t if isinstance(t, str) else t.decode()


async def upgrade(server, path="/ws", headers=None):
	"""An upgrade request by hand: the response (status, JSON body)."""
	h = dict(WS_HEADERS)
	h.update(headers or {})
	return await http_get(server, path, headers=h)


def body(resp):
	try:
		return json.loads(resp.body.decode())
	except ValueError:
		raise AssertionError("not a JSON body: %r" % resp.body)


# ---------------------------------------------------------------------------
# A connect script that admits a site's session cookie

GATE = {"script_dirs": [TEST_SCRIPTS], "scripts": ["gate"]}


@case(config=GATE)
async def test_script_admits_with_identity(t):
	c = await Client.connect(t.server.url, label="site",
	    extra_headers={"Cookie": "theme=dark; session=good-carol"})
	t.clients.append(c)
	w = c.welcome
	check_eq((w.get("account"), w.get("username")), ("carol", "Carol"),
	    "the identity the hook gave")
	check("operator" in w.get("roles", []), "roles from the hook: %r" % w)
	r = await c.request({"type": "list_rooms"})
	check_eq(r["type"], "rooms", "the connection works")


@case(config=GATE)
async def test_script_admits_a_guest(t):
	c = await Client.connect(t.server.url + "?guest=1", label="guest")
	t.clients.append(c)
	check_eq(c.welcome.get("account"), None, "a guest has no account")
	check(c.welcome["username"].startswith("guest-"), "a guest name")


@case(config=GATE)
async def test_script_refuses_401_403(t):
	r = await upgrade(t.server)
	check_eq(r.status, 401, "no session: 401")
	b = body(r)
	check_eq(b["error"], "unauthorized", "error code")
	check("session" in b["message"], "says why: %r" % b)
	r = await upgrade(t.server, headers={"Cookie": "session=banned-x"})
	check_eq(r.status, 403, "a banned session: 403")
	check_eq(body(r)["error"], "forbidden", "error code")


@case(config=GATE)
async def test_script_error_refuses(t):
	r = await upgrade(t.server, headers={"Cookie": "session=boom"})
	check_eq(r.status, 500, "a failing hook refuses (fail closed)")
	check_eq(body(r)["error"], "internal", "error code")
	# and the server goes on
	c = await Client.connect(t.server.url + "?guest=1", label="after")
	t.clients.append(c)
	check(c.welcome is not None, "welcome after the failure")


@case(config=GATE)
async def test_refused_costs_nothing(t):
	before = await http_get(t.server, "/healthz")
	n0 = json.loads(before.body.decode())["connections"]
	for i in range(200):
		r = await upgrade(t.server)
		check_eq(r.status, 401, "refused")
	after = await http_get(t.server, "/healthz")
	check_eq(json.loads(after.body.decode())["connections"], n0,
	    "refused requests never became connections")


@case(config=GATE)
async def test_hostile_request_parts(t):
	big = "x" * 7000
	r = await upgrade(t.server, path="/ws?" + "a=1&" * 500,
	    headers={"Cookie": "session=good-" + "z" * 40})
	# (the gate script fails on a 40-letter account: refused, 500)
	check(r.status in (401, 403, 400, 414, 431, 500),
	    "an odd request is refused cleanly: %d" % r.status)
	r = await upgrade(t.server, headers={"Cookie": big})
	check(r.status in (401, 431), "a huge cookie: %d" % r.status)
	c = await Client.connect(t.server.url + "?guest=1", label="still")
	t.clients.append(c)


# ---------------------------------------------------------------------------
# auth-jwt

def jwt_config(**opts):
	o = {"algorithm": "HS256", "key": SECRET, "audience": "parley",
	    "roles_claim": "roles", "leeway": 0}
	o.update(opts)
	return {"plugins": [jwt_plugin()], "plugin_options": {"auth-jwt": o},
	    "operators": []}


@case()
async def test_jwt_admits_and_refuses(t):
	s = t.start_server(jwt_config())
	c = await Client.connect(s.url + "?token=" + token({"roles":
	    ["operator"]}), label="alice")
	t.clients.append(c)
	check_eq((c.welcome["account"], c.welcome["username"]),
	    ("alice", "Alice"), "the token's account and name")
	check("operator" in c.welcome["roles"], "roles from the token")
	# no token: a guest (required = false)
	g = await Client.connect(s.url, label="guest")
	t.clients.append(g)
	check_eq(g.welcome.get("account"), None, "no token: a guest")
	now = int(time.time())
	bad = {
		"expired": token({"exp": now - 10}),
		"not yet valid": token({"nbf": now + 300}),
		"wrong audience": token({"aud": "elsewhere"}),
		"wrong key": token(key="another secret of 32 bytes or more!!"),
		"alg none": token(key=None, alg="none"),
		"garbage": "abc.def.ghi",
	}
	for what, tok in bad.items():
		r = await upgrade(s, path="/ws?token=" + tok)
		check_eq(r.status, 401, "%s: 401" % what)
		check_eq(body(r)["error"], "unauthorized", "%s: code" % what)
	# a token that is too large is refused without being decoded
	r = await upgrade(s, path="/ws?token=" + "a" * 9000)
	check(r.status in (401, 414, 431), "huge token: %d" % r.status)


@case()
async def test_jwt_algorithm_confusion(t):
	try:
		from cryptography.hazmat.primitives.asymmetric import rsa
		from cryptography.hazmat.primitives import serialization
	except ImportError:
		raise Skip("python3-cryptography is not installed")
	priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
	pub = priv.public_key().public_bytes(
	    serialization.Encoding.PEM,
	    serialization.PublicFormat.SubjectPublicKeyInfo).decode()
	pem = priv.private_bytes(serialization.Encoding.PEM,
	    serialization.PrivateFormat.PKCS8,
	    serialization.NoEncryption()).decode()
	s = t.start_server(jwt_config(algorithm="RS256", key=pub))
	c = await Client.connect(s.url + "?token=" + token(key=pem,
	    alg="RS256"), label="rs")
	t.clients.append(c)
	check_eq(c.welcome["account"], "alice", "RS256 admits")
	# HS256 signed with the public key's text: refused
	jwt = jwt_module()
	now = int(time.time())
	import base64
	import hashlib
	import hmac
	def b64(b):
		return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
	head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
	claims = b64(json.dumps({"sub": "mallory", "exp": now + 600,
	    "aud": "parley"}).encode())
	sig = b64(hmac.new(pub.encode(), ("%s.%s" % (head, claims)).encode(),
	    hashlib.sha256).digest())
	r = await upgrade(s, path="/ws?token=%s.%s.%s" % (head, claims, sig))
	check_eq(r.status, 401, "algorithm confusion is refused")
	check(jwt is not None, "python3-jwt present")


@case()
async def test_jwt_header_and_cookie(t):
	s = t.start_server(jwt_config(token_from="header"))
	c = await Client.connect(s.url, label="hdr", extra_headers={
	    "Authorization": "Bearer " + token({"sub": "dave", "name": None})})
	t.clients.append(c)
	check_eq((c.welcome["account"], c.welcome["username"]),
	    ("dave", "dave"), "from the Authorization header")
	s2 = t.start_server(jwt_config(token_from="cookie:site_jwt",
	    required=True))
	c = await Client.connect(s2.url, label="ck", extra_headers={
	    "Cookie": "a=b; site_jwt=" + token({"sub": "erin"})})
	t.clients.append(c)
	check_eq(c.welcome["account"], "erin", "from a cookie")
	r = await upgrade(s2)
	check_eq(r.status, 401, "required: no token is refused")


@case(timeout=40)
async def test_jwt_expiry_and_refresh(t):
	s = t.start_server(jwt_config())
	now = int(time.time())
	c = await Client.connect(s.url + "?token=" + token({"exp": now + 4}),
	    label="short")
	t.clients.append(c)
	n = await c.recv("notice", timeout=scaled(5))
	check("expires" in n["message"], "told before it expires: %r" % n)
	# a fresh token for another account is refused and changes nothing
	r = await c.request({"type": "refresh_token", "token": token({"sub":
	    "mallory"})})
	check_eq(r.get("code"), "unauthorized", "another account's token")
	fresh = int(time.time()) + 600
	r = await c.request({"type": "refresh_token", "token": token({"exp":
	    fresh})})
	check_eq((r["type"], r["expires"]), ("token_refreshed", fresh),
	    "refreshed")
	await asyncio.sleep(scaled(5))
	r = await c.request({"type": "list_rooms"})
	check_eq(r["type"], "rooms", "still connected after the old expiry")
	# one that is not refreshed is closed with 4003
	d = await Client.connect(s.url + "?token=" + token({"sub": "bob",
	    "exp": int(time.time()) + 2}), label="lapse")
	t.clients.append(d)
	code = await d.wait_closed(timeout=scaled(6))
	check_eq(code, 4003, "closed when the token expired")


@case(timeout=30)
async def test_jwt_key_reloaded_on_sighup(t):
	import signal
	import tempfile
	d = tempfile.mkdtemp(prefix="parley-auth-")
	path = os.path.join(d, "secret")
	new = "the site rotated its secret: 32 bytes or more!!"
	with open(path, "w") as f:
		f.write(SECRET)
	cfg = jwt_config()
	del cfg["plugin_options"]["auth-jwt"]["key"]
	cfg["plugin_options"]["auth-jwt"]["key_file"] = path
	s = t.start_server(cfg)
	c = await Client.connect(s.url + "?token=" + token(), label="old")
	t.clients.append(c)
	check_eq(c.welcome["account"], "alice", "the first key admits")

	async def reload(pattern):
		deadline = time.monotonic() + scaled(5)
		s.send_signal(signal.SIGHUP)
		while pattern not in s.stderr(200):
			check(time.monotonic() < deadline, "no %r after SIGHUP" %
			    pattern)
			await asyncio.sleep(0.05)

	with open(path, "w") as f:
		f.write(new)
	await reload("key and options reloaded")
	r = await upgrade(s, path="/ws?token=" + token())
	check_eq(r.status, 401, "the old key no longer admits")
	c = await Client.connect(s.url + "?token=" + token(key=new),
	    label="new")
	t.clients.append(c)
	check_eq(c.welcome["account"], "alice", "the new key admits")
	# a key that does not load keeps the one in force
	with open(path, "w") as f:
		f.write("short")
	await reload("keeping the key and options in force")
	c = await Client.connect(s.url + "?token=" + token(key=new),
	    label="kept")
	t.clients.append(c)
	check_eq(c.welcome["account"], "alice", "the working key was kept")


if __name__ == "__main__":
	suite.main()
