#!/usr/bin/python3
#
# test_admin.py: the admin API (doc/ADMIN-API.md) and parleyctl(8)
# against the built daemon. The API lives only on admin_listen (TCP or a
# unix socket) and wants a bearer token of admin_tokens: none or a wrong
# one is 401 without detail, an address that keeps guessing waits (429),
# and the public port does not know the paths (404). Each action is
# checked as WebSocket clients see it; bodies and parameters are bounded;
# parleyctl's output and exit codes are what scripts may rely on.

import asyncio
import hashlib
import json
import os
import re
import socket
import stat
import subprocess
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Suite, TestFailure, check, check_eq, uniq,  # noqa
    Skip, parleyd_path, scaled, http_raw, HOST)

BUILD = os.path.dirname(os.path.dirname(parleyd_path()))
PARLEYCTL = os.environ.get("PARLEYCTL") or os.path.join(BUILD, "tools",
    "parleyctl")
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("PARLEY_SRCDIR") or os.path.join(HERE, "..", "..")
TEST_SCRIPTS = os.path.abspath(os.path.join(SRC, "tests", "scripts"))


def test_plugin(name):
	p = os.path.abspath(os.path.join(BUILD, "tests", "plugins", ".libs",
	    name + ".so"))
	if not os.path.exists(p):
		raise Skip("test plugin %s not built (run make check)" % name)
	return p

TOKEN = "t0ken-for-the-tests-" + "x" * 20
OTHER = "another-token-of-the-tests"


def entry(name, token):
	return "%s:sha256:%s" % (name, hashlib.sha256(token.encode()).hexdigest())


def admin_config(**extra):
	c = {"admin_listen": "127.0.0.1:0",
	    "admin_tokens": [entry("ops", TOKEN), entry("deploy", OTHER)]}
	c.update(extra)
	return c


suite = Suite("admin")
case = suite.case


def admin_of(server):
	m = re.search(r"^parleyd: admin listening on http://127\.0\.0\.1:"
	    r"(\d+)/$", server.stdout(), re.M)
	check(m is not None, "no admin listening line: %r" % server.stdout())
	return types.SimpleNamespace(port=int(m.group(1)))


async def api(port, method, path, body=None, token=TOKEN, raw_body=None,
    headers=None):
	"""One request to the admin API on port (an object with .port);
	returns (status, parsed JSON body or None, response)."""
	data = raw_body if raw_body is not None else (
	    json.dumps(body).encode() if body is not None else b"")
	h = {"Host": "localhost", "Connection": "close"}
	if token is not None:
		h["Authorization"] = "Bearer " + token
	if data or method in ("POST", "PUT"):
		h["Content-Type"] = "application/json"
		h["Content-Length"] = str(len(data))
	h.update(headers or {})
	req = ("%s /admin/v1/%s HTTP/1.1\r\n" % (method, path) +
	    "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n").encode()
	r = await http_raw(port, req + data)
	try:
		j = json.loads(r.body) if r.body else None
	except ValueError:
		j = None
	return r.status, j, r


def ctl(args, env=None, stdin=None):
	if not os.path.exists(PARLEYCTL):
		raise Skip("parleyctl is not built")
	e = dict(os.environ)
	for k in ("PARLEY_ADMIN", "PARLEY_ADMIN_TOKEN",
	    "PARLEY_ADMIN_TOKEN_FILE", "PARLEY_CONFIG"):
		e.pop(k, None)
	e.update(env or {})
	p = subprocess.run([PARLEYCTL] + args, env=e, input=stdin,
	    stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=scaled(20))
	return p.returncode, p.stdout.decode(), p.stderr.decode()


async def actl(args, env=None):
	"""parleyctl without blocking the loop the server's clients use."""
	return await asyncio.get_running_loop().run_in_executor(None,
	    lambda: ctl(args, env))


# ---------------------------------------------------------------------------
# Who may use it, and where


@case()
async def test_no_token(t):
	s = t.start_server(admin_config())
	a = admin_of(s)
	st, j, r = await api(a, "GET", "status", token=None)
	check_eq(st, 401, "status without a token")
	check_eq(j, {"error": "unauthorized"}, "body without detail")
	check("bearer" in (r.header("www-authenticate") or "").lower(),
	    "WWW-Authenticate: Bearer")
	for bad in ("Basic " + TOKEN, "Bearer", "Bearer ", TOKEN):
		st, j, _ = await api(a, "GET", "status", token=None,
		    headers={"Authorization": bad})
		check_eq(st, 401, "status with Authorization %r" % bad)
		check_eq(j, {"error": "unauthorized"}, "body")


@case()
async def test_wrong_token_rate_limited(t):
	s = t.start_server(admin_config())
	a = admin_of(s)
	st, _, _ = await api(a, "GET", "status", token=TOKEN)
	check_eq(st, 200, "the right token")
	for i in range(4):
		st, j, _ = await api(a, "GET", "status", token="wrong%d" % i)
		check_eq(st, 401, "wrong token %d" % i)
		check_eq(j, {"error": "unauthorized"}, "body")
	# The fifth wrong guess is refused and locks the address out.
	st, _, _ = await api(a, "GET", "status", token=TOKEN[:-1])
	check_eq(st, 401, "a token one byte short")
	st, j, r = await api(a, "GET", "status", token=TOKEN)
	check_eq(st, 429, "even the right token waits now")
	check_eq(j, {"error": "rate_limited"}, "429 body")
	check(int(r.header("retry-after", "0")) > 0, "Retry-After")
	check("a wrong token" in s.stderr(), "wrong tokens are logged")
	check(TOKEN not in s.stderr(), "no token in the log")


@case()
async def test_public_port_404(t):
	s = t.start_server(admin_config())
	for method, path in (("GET", "status"), ("POST", "reload"),
	    ("GET", "rooms"), ("DELETE", "rooms/general")):
		st, _, _ = await api(s, method, path)
		check_eq(st, 404, "%s %s on the public port" % (method, path))
	st, j, _ = await api(admin_of(s), "GET", "rooms")
	check_eq(st, 200, "the admin port")
	check("general" in [r["name"] for r in j["rooms"]], "general")


@case()
async def test_no_listener_no_api(t):
	"""Without admin_listen the API exists nowhere."""
	s = t.start_server({"admin_tokens": [entry("ops", TOKEN)]})
	st, _, _ = await api(s, "GET", "status")
	check_eq(st, 404, "no admin listener: 404 on the public port")


@case()
async def test_unix_socket(t):
	s0 = t.start_server()  # only for a directory of our own
	path = os.path.join(s0.dir, "admin.sock")
	s = t.start_server(admin_config(admin_listen=path,
	    admin_socket_mode="0600"))
	check("admin listening on unix:%s" % path in s.stdout(),
	    "the unix listening line")
	check(stat.S_ISSOCK(os.stat(path).st_mode), "a socket")
	check_eq(oct(os.stat(path).st_mode & 0o777), oct(0o600), "its mode")
	loop = asyncio.get_running_loop()

	def get(token):
		c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
		c.settimeout(scaled(5))
		c.connect(path)
		c.sendall(("GET /admin/v1/status HTTP/1.1\r\nHost: x\r\n"
		    "Authorization: Bearer %s\r\nConnection: close\r\n\r\n" %
		    token).encode())
		data = b""
		while True:
			b = c.recv(65536)
			if not b:
				break
			data += b
		c.close()
		return data
	data = await loop.run_in_executor(None, get, TOKEN)
	check(data.startswith(b"HTTP/1.1 200"), "200 over the socket: %r" %
	    data[:40])
	body = json.loads(data.split(b"\r\n\r\n", 1)[1])
	check_eq(body["status"], "ok", "status")
	data = await loop.run_in_executor(None, get, "nope")
	check(data.startswith(b"HTTP/1.1 401"), "401 over the socket")
	rc, out, err = await actl(["-a", path, "status"],
	    {"PARLEY_ADMIN_TOKEN": TOKEN})
	check_eq(rc, 0, "parleyctl over the socket: %s" % err)
	check("status:" in out and "ok" in out, "status table: %r" % out)
	await s.astop()
	check(not os.path.exists(path), "the socket is removed at exit")


# ---------------------------------------------------------------------------
# Reading


@case()
async def test_status(t):
	s = t.start_server(admin_config())
	a = admin_of(s)
	c = await t.client(s)
	await c.set_name(uniq("st"))
	st, j, r = await api(a, "GET", "status")
	check_eq(st, 200, "status")
	check_eq(r.header("content-type"), "application/json", "type")
	check_eq(r.header("cache-control"), "no-store", "no-store")
	for k in ("version", "uptime", "connections", "rooms", "loop_lag_ms",
	    "history", "accounts", "plugins", "status"):
		check(k in j, "status has %s: %r" % (k, j))
	check_eq(j["connections"], 1, "connections")
	check_eq(j["rooms"], 1, "rooms")
	check_eq(j["status"], "ok", "health")
	check_eq(j["history"]["store"], "ring", "history store")
	check(isinstance(j["loop_lag_ms"]["max"], int), "lag")


@case()
async def test_rooms_room_users(t):
	s = t.start_server(admin_config())
	a = admin_of(s)
	alice, bob = await t.client(s), await t.client(s)
	an, bn = uniq("alice"), uniq("bob")
	await alice.join("general", an)
	await bob.join("general", bn)
	await alice.create("side")
	await alice.say("general", "hello")
	st, j, _ = await api(a, "GET", "rooms")
	check_eq(st, 200, "rooms")
	rooms = {r["name"]: r for r in j["rooms"]}
	check_eq(sorted(rooms), ["general", "side"], "room names")
	check_eq(rooms["general"]["members"], 2, "members")
	check_eq(rooms["general"]["seq"], 1, "seq")
	st, j, _ = await api(a, "GET", "rooms/general")
	check_eq(st, 200, "one room")
	check_eq([m["username"] for m in j["member_list"]], [an, bn],
	    "members in join order")
	st, j, _ = await api(a, "GET", "rooms/general?limit=1&offset=1")
	check_eq([m["username"] for m in j["member_list"]], [bn], "paged")
	st, j, _ = await api(a, "GET", "rooms/general?limit=x")
	check_eq((st, j["error"]), (400, "bad_request"), "bad limit")
	st, j, _ = await api(a, "GET", "rooms/nowhere")
	check_eq((st, j["error"]), (404, "room_not_found"), "no such room")
	st, j, _ = await api(a, "GET", "users")
	check_eq(st, 200, "users")
	users = {u["username"]: u for u in j["users"]}
	check_eq(sorted(users), sorted([an, bn]), "user names")
	check_eq(sorted(users[an]["rooms"]), ["general", "side"], "rooms")
	check_eq(users[an]["address"], "127.0.0.1", "address")
	check_eq(users[an]["account"], None, "a guest")
	check(users[an]["connected_since"] > 1.6e12, "connected_since (ms)")


# ---------------------------------------------------------------------------
# Acting, as clients see it


@case()
async def test_announce(t):
	s = t.start_server(admin_config())
	a = admin_of(s)
	inside, outside = await t.client(s), await t.client(s)
	await inside.join("general", uniq("in"))
	await outside.set_name(uniq("out"))
	st, j, _ = await api(a, "POST", "rooms/general/announce",
	    {"message": "maintenance at ten"})
	check_eq(st, 200, "announce in a room")
	check_eq(j, {"recipients": 1}, "reply")
	n = await inside.recv("notice")
	check_eq((n["message"], n.get("roomName")),
	    ("maintenance at ten", "general"), "the room's notice")
	st, j, _ = await api(a, "POST", "announce", {"message": "to all"})
	check_eq((st, j["recipients"]), (200, 2), "announce to everyone")
	for c in (inside, outside):
		n = await c.recv("notice", pred=lambda m: m["message"] == "to all")
		check("roomName" not in n, "a server-wide notice")
	st, j, _ = await api(a, "POST", "announce", {"message": ""})
	check_eq((st, j["error"]), (400, "bad_request"), "empty message")
	st, j, _ = await api(a, "POST", "announce", {"message": 5})
	check_eq((st, j["error"]), (400, "bad_request"), "not a string")
	st, j, _ = await api(a, "POST", "announce", {"message": "x" * 5000})
	check_eq((st, j["error"]), (400, "bad_request"), "over max bytes")


@case()
async def test_post_as_server(t):
	s = t.start_server(admin_config())
	a = admin_of(s)
	c = await t.client(s)
	await c.join("general", uniq("reader"))
	st, j, _ = await api(a, "POST", "rooms/general/messages",
	    {"message": "from the server"})
	check_eq((st, j), (200, {"seq": 1}), "post")
	m = await c.recv("new_message")
	check_eq((m["sender"], m["message"], m["seq"]),
	    ("server", "from the server", 1), "as clients see it")
	st, j, _ = await api(a, "POST", "rooms/general/messages",
	    {"message": "waves", "action": True})
	m = await c.recv("new_message")
	check_eq(m.get("action"), True, "an action")
	st, j, _ = await api(a, "POST", "rooms/general/messages",
	    {"message": "x", "action": "yes"})
	check_eq((st, j["error"]), (400, "bad_request"), "action: a boolean")
	st, j, _ = await api(a, "POST", "rooms/nope/messages",
	    {"message": "x"})
	check_eq((st, j["error"]), (404, "room_not_found"), "no such room")


@case()
async def test_kick(t):
	s = t.start_server(admin_config())
	a = admin_of(s)
	victim, witness = await t.client(s), await t.client(s)
	vn = uniq("victim")
	await victim.join("general", vn)
	await witness.join("general", uniq("witness"))
	st, j, _ = await api(a, "POST", "rooms/general/kick",
	    {"user": vn, "reason": "spam"})
	check_eq((st, j), (200, {"ok": True}), "kick")
	k = await victim.recv("kicked")
	check_eq((k["roomName"], k["reason"]), ("general", "spam"), "kicked")
	left = await witness.recv("user_left")
	check_eq((left["username"], left["reason"]), (vn, "kicked"),
	    "the others see user_left")
	st, j, _ = await api(a, "POST", "rooms/general/kick", {"user": vn})
	check_eq((st, j["error"]), (404, "not_in_room"), "not in the room")
	st, j, _ = await api(a, "POST", "rooms/general/kick",
	    {"user": "nobody-here"})
	check_eq((st, j["error"]), (404, "user_not_found"), "no such user")
	st, j, _ = await api(a, "POST", "rooms/general/kick", {})
	check_eq((st, j["error"]), (400, "bad_request"), "no user")
	check(re.search(r"admin:ops.*kicks %s from general" % re.escape(vn),
	    s.stderr()) is not None, "the log names the token: %s" %
	    s.stderr(20))


@case()
async def test_create_delete_room(t):
	s = t.start_server(admin_config())
	a = admin_of(s)
	member, watcher = await t.client(s), await t.client(s)
	await member.set_name(uniq("m"))
	await watcher.set_name(uniq("w"))
	name = "ops/room one"
	st, j, _ = await api(a, "POST", "rooms", {"name": name})
	check_eq(st, 201, "created")
	check_eq(j["name"], name, "its name")
	ev = await watcher.recv("room_created")
	check_eq(ev["roomName"], name, "everyone is told")
	st, j, _ = await api(a, "POST", "rooms", {"name": name})
	check_eq((st, j["error"]), (409, "room_exists"), "twice")
	st, j, _ = await api(a, "POST", "rooms", {"name": " bad"})
	check_eq((st, j["error"]), (400, "invalid_name"), "a bad name")
	await member.join(name)
	path = "rooms/" + name.replace(" ", "%20").replace("/", "%2F")
	st, j, _ = await api(a, "GET", path)
	check_eq((st, j["members"]), (200, 1), "percent-encoded name")
	st, j, _ = await api(a, "DELETE", path, {"reason": "closing time"})
	check_eq((st, j), (200, {"ok": True}), "deleted")
	k = await member.recv("kicked")
	check_eq((k["roomName"], k["reason"]), (name, "closing time"),
	    "the member is kicked with the reason")
	ev = await watcher.recv("room_deleted")
	check_eq(ev["roomName"], name, "everyone is told")
	st, j, _ = await api(a, "DELETE", path)
	check_eq((st, j["error"]), (404, "room_not_found"), "gone")


@case()
async def test_reload(t):
	s = t.start_server(admin_config())
	a = admin_of(s)
	watcher = await t.client(s)
	with open(s.config_path, "a") as f:
		f.write('\nrooms = { "general", "added" }\n')
	st, j, _ = await api(a, "POST", "reload")
	check_eq((st, j), (200, {"reloaded": True}), "reload")
	ev = await watcher.recv("room_created")
	check_eq(ev["roomName"], "added", "the new configuration's room")
	with open(s.config_path, "a") as f:
		f.write('\nmax_rooms = "many"\n')
	st, j, _ = await api(a, "POST", "reload")
	check_eq((st, j["error"]), (422, "reload_failed"), "a bad file")
	check("max_rooms" in j["message"], "says why: %r" % j)
	st, j, _ = await api(a, "GET", "status")
	check_eq(st, 200, "still serving with the token of the old file")


@case()
async def test_reload_changes_tokens(t):
	s = t.start_server(admin_config())
	a = admin_of(s)
	with open(s.config_path, "a") as f:
		f.write('\nadmin_tokens = { "%s" }\n' % entry("new", OTHER))
	st, j, _ = await api(a, "POST", "reload")
	check_eq(st, 200, "reload")
	st, _, _ = await api(a, "GET", "status")
	check_eq(st, 401, "the old token is gone")
	st, _, _ = await api(a, "GET", "status", token=OTHER)
	check_eq(st, 200, "the new one works")


# ---------------------------------------------------------------------------
# Moderation and the audit trail


@case()
async def test_ban_mute_role_topic(t):
	s = t.start_server(admin_config())
	a = admin_of(s)
	bad, mod, watcher = (await t.client(s), await t.client(s),
	    await t.client(s))
	bn, mn = uniq("bad"), uniq("mod")
	await bad.join("general", bn)
	await mod.join("general", mn)
	await watcher.join("general", uniq("watch"))
	# mute: the user's messages are refused
	st, j, _ = await api(a, "POST", "rooms/general/mute",
	    {"user": bn, "seconds": 600, "reason": "calm down"})
	check_eq((st, j), (200, {"ok": True}), "mute")
	await bad.expect_error({"type": "send_message", "roomName": "general",
	    "message": "hey"}, "forbidden")
	st, j, _ = await api(a, "GET", "bans?room=general")
	check_eq(st, 200, "bans")
	check_eq([m["name"] for m in j["mutes"]], [bn], "the mute is listed")
	check_eq(j["mutes"][0]["reason"], "calm down", "with its reason")
	st, j, _ = await api(a, "POST", "rooms/general/unmute", {"user": bn})
	check_eq((st, j), (200, {"ok": True}), "unmute")
	await bad.say("general", "sorry")
	st, j, _ = await api(a, "POST", "rooms/general/unmute", {"user": bn})
	check_eq((st, j["error"]), (404, "user_not_found"), "not muted")
	# ban: kicked, cannot come back
	st, j, _ = await api(a, "POST", "rooms/general/ban",
	    {"user": bn, "reason": "spam"})
	check_eq((st, j), (200, {"ok": True}), "ban")
	k = await bad.recv("kicked")
	check("spam" in k["reason"], "kicked with the reason: %r" % k)
	await bad.expect_error({"type": "join_room", "roomName": "general"},
	    "forbidden")
	st, j, _ = await api(a, "GET", "bans")
	check_eq([b["name"] for b in j["bans"]], [bn], "the ban is listed")
	st, j, _ = await api(a, "POST", "rooms/general/unban", {"user": bn})
	check_eq(st, 200, "unban")
	await bad.join("general")
	st, j, _ = await api(a, "POST", "rooms/general/ban",
	    {"user": bn, "seconds": -1})
	check_eq((st, j["error"]), (400, "bad_request"), "bad seconds")
	st, j, _ = await api(a, "GET", "bans?room=nowhere")
	check_eq((st, j["error"]), (404, "room_not_found"), "bans of nothing")
	# role
	st, j, _ = await api(a, "POST", "rooms/general/role",
	    {"user": mn, "role": "moderator"})
	check_eq((st, j), (200, {"ok": True}), "role")
	ev = await watcher.recv("role_changed")
	check_eq((ev["username"], ev["role"]), (mn, "moderator"), "told")
	st, j, _ = await api(a, "GET", "rooms/general")
	check_eq(list(j["roles"].values()), ["moderator"], "roles shown")
	st, j, _ = await api(a, "POST", "rooms/general/role",
	    {"user": mn, "role": "king"})
	check_eq((st, j["error"]), (400, "bad_request"), "no such role")
	# topic
	st, j, _ = await api(a, "POST", "rooms/general/topic",
	    {"topic": "Welcome"})
	check_eq((st, j), (200, {"ok": True}), "topic")
	ev = await watcher.recv("topic_changed")
	check_eq(ev["topic"], "Welcome", "members see the topic")
	st, j, _ = await api(a, "GET", "rooms")
	check_eq(j["rooms"][0]["topic"], "Welcome", "rooms show it")
	st, j, _ = await api(a, "POST", "rooms/general/topic",
	    {"topic": "x" * 300})
	check_eq((st, j["error"]), (400, "bad_request"), "a long topic")


@case()
async def test_delete_message_and_audit(t):
	s = t.start_server(admin_config())
	a = admin_of(s)
	c = await t.client(s)
	cn = uniq("author")
	await c.join("general", cn)
	await c.say("general", "oops")
	st, j, _ = await api(a, "POST", "rooms/general/delete_message",
	    {"seq": 1})
	check_eq((st, j), (200, {"ok": True}), "delete a message")
	ev = await c.recv("message_deleted")
	check_eq(ev["seq"], 1, "members are told")
	st, j, _ = await api(a, "POST", "rooms/general/delete_message",
	    {"seq": 99})
	check_eq((st, j["error"]), (404, "message_not_found"), "no such seq")
	await api(a, "POST", "rooms/general/kick", {"user": cn, "reason": "r"})
	await api(a, "POST", "rooms", {"name": "audited"}, token=OTHER)
	st, j, _ = await api(a, "GET", "audit")
	check_eq(st, 200, "audit")
	acts = [(r["actor"], r["actor_kind"], r["action"]) for r in j["audit"]]
	check_eq(acts[-3:], [("admin:ops", "admin", "delete_message"),
	    ("admin:ops", "admin", "kick"),
	    ("admin:deploy", "admin", "create_room")],
	    "the trail names each token, oldest first")
	st, j, _ = await api(a, "GET", "audit?limit=1&offset=1")
	check_eq([r["action"] for r in j["audit"]], ["kick"], "paged")
	st, j, _ = await api(a, "GET", "audit?limit=5000")
	check_eq((st, j["error"]), (400, "bad_request"), "limit bounded")


# ---------------------------------------------------------------------------
# Accounts (on the worker: the request waits for its answer)

PW = "a good password"


def accounts_config():
	return admin_config(accounts=True, password_memory_kib=1024,
	    password_iterations=1)


async def login(c, name, password):
	await c.send({"type": "login", "username": name, "password": password})
	return await c.recv(pred=lambda m: m["type"] in ("logged_in", "error"))


@case()
async def test_accounts(t):
	s = t.start_server(accounts_config())
	a = admin_of(s)
	name = uniq("acct")
	st, j, _ = await api(a, "POST", "accounts",
	    {"name": name, "password": PW})
	check_eq((st, j), (201, {"name": name}), "create")
	st, j, _ = await api(a, "POST", "accounts",
	    {"name": name.upper(), "password": PW})
	check_eq((st, j["error"]), (409, "name_taken"), "create twice")
	st, j, _ = await api(a, "POST", "accounts",
	    {"name": uniq("short"), "password": "seven.."})
	check_eq((st, j["error"]), (400, "bad_request"), "a short password")
	st, j, _ = await api(a, "POST", "accounts",
	    {"name": "guest-12", "password": PW})
	check_eq((st, j["error"]), (400, "invalid_name"), "a guest name")
	c = await t.client(s)
	r = await login(c, name, PW)
	check_eq((r["type"], r["username"]), ("logged_in", name),
	    "a client logs in to the account made")
	st, j, _ = await api(a, "POST", "accounts/%s/password" % name,
	    {"password": "another password"})
	check_eq((st, j), (200, {"ok": True}), "a new password")
	d = await t.client(s)
	r = await login(d, name, PW)
	check_eq((r["type"], r.get("code")), ("error", "unauthorized"),
	    "the old password is refused")
	r = await login(d, name, "another password")
	check_eq(r["type"], "logged_in", "the new one works")
	st, j, _ = await api(a, "DELETE", "accounts/" + name)
	check_eq((st, j), (200, {"ok": True}), "delete")
	# (c was displaced by d's login to the same account.)
	n = await d.recv("notice", pred=lambda m: "deleted" in m["message"])
	check(re.search(r"you are guest-\d+ now", n["message"]),
	    "a guest again, told so: %r" % n)
	st, j, _ = await api(a, "DELETE", "accounts/" + name)
	check_eq((st, j["error"]), (404, "account_not_found"), "gone")
	st, j, _ = await api(a, "POST", "accounts/nobody-x/password",
	    {"password": PW})
	check_eq((st, j["error"]), (404, "account_not_found"), "no account")
	r = await login(await t.client(s), name, "another password")
	check_eq(r.get("code"), "unauthorized", "no login to a deleted one")
	check(PW not in s.stderr() and "another password" not in s.stderr(),
	    "no password in the log")
	check(re.search(r"admin:ops: creates account %s" % re.escape(name),
	    s.stderr()), "the log names the token")


@case()
async def test_accounts_off(t):
	s = t.start_server(admin_config(accounts=False))
	st, j, _ = await api(admin_of(s), "POST", "accounts",
	    {"name": "x", "password": PW})
	check_eq((st, j["error"]), (501, "unsupported"), "no accounts kept")


@case()
async def test_parleyctl_account(t):
	s = t.start_server(accounts_config())
	a = admin_of(s)
	env = {"PARLEY_ADMIN_TOKEN": TOKEN}
	addr = "127.0.0.1:%d" % a.port
	name = uniq("ctl")
	rc, out, err = await asyncio.get_running_loop().run_in_executor(None,
	    lambda: ctl(["-a", addr, "account", "add", name], env,
		stdin=(PW + "\n").encode()))
	check_eq((rc, out), (0, "account created\n"), "account add: %s" % err)
	r = await login(await t.client(s), name, PW)
	check_eq(r["type"], "logged_in", "the password came from stdin")
	rc, out, err = await asyncio.get_running_loop().run_in_executor(None,
	    lambda: ctl(["-a", addr, "account", "add", name], env,
		stdin=(PW + "\n").encode()))
	check_eq(rc, 1, "account add twice")
	rc, out, err = await actl(["-a", addr, "account", "delete", name], env)
	check_eq((rc, out), (0, "account deleted\n"), "account delete")
	rc, out, err = await actl(["-a", addr, "account", "delete", name], env)
	check_eq(rc, 3, "no such account")


# ---------------------------------------------------------------------------
# Hostile input


@case()
async def test_bounds(t):
	s = t.start_server(admin_config())
	a = admin_of(s)
	st, j, _ = await api(a, "GET", "nothing-here")
	check_eq((st, j["error"]), (404, "not_found"), "unknown endpoint")
	st, j, _ = await api(a, "PUT", "status", {})
	check_eq((st, j["error"]), (405, "method_not_allowed"), "method")
	st, j, _ = await api(a, "POST", "rooms", raw_body=b"{nope")
	check_eq((st, j["error"]), (400, "bad_json"), "not JSON")
	st, j, _ = await api(a, "POST", "rooms", raw_body=b"[1]")
	check_eq((st, j["error"]), (400, "bad_json"), "not an object")
	st, j, _ = await api(a, "POST", "rooms",
	    raw_body=b'{"name":"a","name":"b"}')
	check_eq((st, j["error"]), (400, "bad_json"), "duplicate keys")
	st, j, _ = await api(a, "POST", "rooms",
	    raw_body=b'{"a":' * 100 + b"1" + b"}" * 100)
	check_eq((st, j["error"]), (400, "bad_json"), "too deep")
	st, j, _ = await api(a, "POST", "rooms",
	    raw_body=b'{"name":"' + b"x" * (70 * 1024) + b'"}')
	check_eq((st, j["error"]), (413, "too_large"), "over 64 KiB")
	st, j, _ = await api(a, "POST", "rooms",
	    raw_body=b'{"name":"a\\u0000b"}')
	check_eq((st, j["error"]), (400, "bad_json"), "a NUL")
	st, j, _ = await api(a, "POST", "rooms/general/kick",
	    {"user": "a\u0007b"})
	check_eq((st, j["error"]), (400, "bad_request"), "control characters")
	st, j, _ = await api(a, "GET", "status", token="x" * 600)
	check_eq(st, 401, "an overlong token")
	# The server is still well.
	st, j, _ = await api(a, "GET", "status", token=OTHER)
	check_eq(st, 200, "still serving")


# ---------------------------------------------------------------------------
# parleyctl


@case()
async def test_parleyctl(t):
	s = t.start_server(admin_config())
	a = admin_of(s)
	env = {"PARLEY_ADMIN_TOKEN": TOKEN}
	c = await t.client(s)
	cn = uniq("carol")
	await c.join("general", cn)
	# The address from the configuration file, with parleyd's reader;
	# the token from the environment.
	cfg = os.path.join(s.dir, "ctl.conf")
	with open(cfg, "w") as f:
		f.write('admin_listen = "127.0.0.1:%d"\n' % a.port)
	rc, out, err = await actl(["-c", cfg, "status"], env)
	check_eq(rc, 0, "status: %s" % err)
	check(re.search(r"^connections: +1$", out, re.M), "table: %r" % out)
	rc, out, err = await actl(["-c", cfg, "--json", "status"], env)
	check_eq((rc, json.loads(out)["connections"]), (0, 1), "--json")
	# The token from the file the configuration names.
	tf = os.path.join(s.dir, "tok")
	with open(tf, "w") as f:
		f.write(TOKEN + "\n")
	with open(cfg, "a") as f:
		f.write('admin_token_file = "%s"\n' % tf)
	rc, out, err = await actl(["-c", cfg, "rooms"])
	check_eq(rc, 0, "rooms with the token file: %s" % err)
	check(re.search(r"^general +1 +0 +-$", out, re.M), "rooms: %r" % out)
	rc, out, err = await actl(["-c", cfg, "room", "general"])
	check(cn in out, "room: %r" % out)
	rc, out, _ = await actl(["-c", cfg, "users"])
	check(re.search(r"^%s +- +127\.0\.0\.1 " % re.escape(cn), out, re.M),
	    "users: %r" % out)
	rc, out, _ = await actl(["-c", cfg, "announce", "-r", "general",
	    "hello", "all"])
	check_eq(rc, 0, "announce")
	n = await c.recv("notice")
	check_eq(n["message"], "hello all", "announced words joined")
	rc, out, _ = await actl(["-c", cfg, "say", "general", "hi"])
	check_eq(rc, 0, "say")
	m = await c.recv("new_message")
	check_eq((m["sender"], m["message"]), ("server", "hi"), "posted")
	rc, out, _ = await actl(["-c", cfg, "create", "made by ctl"])
	check_eq((rc, out), (0, "room created\n"), "create")
	rc, out, err = await actl(["-c", cfg, "create", "made by ctl"])
	check_eq(rc, 1, "create twice: refused")
	check_eq(err, "parleyctl: room_exists: the room already exists\n",
	    "a shell-friendly error")
	rc, out, _ = await actl(["-c", cfg, "delete", "made by ctl"])
	check_eq(rc, 0, "delete")
	rc, out, err = await actl(["-c", cfg, "kick", "general", "nobody"])
	check_eq(rc, 3, "kick nobody: not found")
	rc, out, err = await actl(["-c", cfg, "--json", "room", "nowhere"])
	check_eq(rc, 3, "no such room")
	check_eq(json.loads(out)["error"], "room_not_found", "--json error")
	rc, out, _ = await actl(["-c", cfg, "kick", "general", cn, "bye"])
	check_eq(rc, 0, "kick")
	k = await c.recv("kicked")
	check_eq(k["reason"], "bye", "the kick's reason")
	rc, out, _ = await actl(["-c", cfg, "reload"])
	check_eq((rc, out), (0, "reloaded\n"), "reload")
	rc, out, err = await actl(["-c", cfg, "status"],
	    {"PARLEY_ADMIN_TOKEN": "wrong"})
	check_eq(rc, 4, "a wrong token")
	check("refused the token" in err, "says so: %r" % err)
	rc, out, err = await actl(["-c", cfg, "bogus"])
	check_eq(rc, 2, "an unknown command")
	rc, out, err = await actl(["-c", cfg, "kick", "general"])
	check_eq(rc, 2, "too few arguments")
	rc, out, err = await actl(["-a", "127.0.0.1:1", "status"], env)
	check_eq(rc, 5, "nobody listening")
	rc, out, err = await actl(["-a", "127.0.0.1:%d" % a.port, "status"],
	    {"PARLEY_ADMIN_TOKEN": OTHER})
	check_eq(rc, 0, "-a and another token")


@case()
async def test_parleyctl_moderation(t):
	s = t.start_server(admin_config())
	a = admin_of(s)
	env = {"PARLEY_ADMIN_TOKEN": TOKEN}
	addr = ["-a", "127.0.0.1:%d" % a.port]
	c, w = await t.client(s), await t.client(s)
	cn = uniq("dave")
	await c.join("general", cn)
	await w.join("general", uniq("w"))
	rc, out, err = await actl(addr + ["mute", "-t", "60", "general", cn,
	    "shh"], env)
	check_eq((rc, out), (0, "muted\n"), "mute: %s" % err)
	rc, out, _ = await actl(addr + ["bans"], env)
	check(re.search(r"^mute +general +%s +\S+Z +admin:ops +shh$" %
	    re.escape(cn), out, re.M), "bans table: %r" % out)
	rc, out, _ = await actl(addr + ["unmute", "general", cn], env)
	check_eq(rc, 0, "unmute")
	rc, out, _ = await actl(addr + ["unmute", "general", cn], env)
	check_eq(rc, 3, "unmute again: not found")
	rc, out, _ = await actl(addr + ["ban", "general", cn, "spam"], env)
	check_eq((rc, out), (0, "banned\n"), "ban")
	await c.recv("kicked")
	rc, out, _ = await actl(addr + ["--json", "bans", "general"], env)
	check_eq([b["name"] for b in json.loads(out)["bans"]], [cn], "--json")
	rc, out, _ = await actl(addr + ["unban", "general", cn], env)
	check_eq(rc, 0, "unban")
	rc, out, _ = await actl(addr + ["topic", "general", "Be", "kind"], env)
	check_eq(rc, 0, "topic")
	ev = await w.recv("topic_changed")
	check_eq(ev["topic"], "Be kind", "the topic's words joined")
	rc, out, _ = await actl(addr + ["role", "general", cn, "king"], env)
	check_eq(rc, 2, "no such role: usage")
	rc, out, _ = await actl(addr + ["delete-message", "general", "7"], env)
	check_eq(rc, 3, "no such message")
	rc, out, _ = await actl(addr + ["audit", "-n", "3"], env)
	check_eq(rc, 0, "audit")
	lines = out.splitlines()
	check_eq(len(lines), 4, "a header and three records: %r" % out)
	check(re.search(r"admin:ops +ban +%s +general +spam" % re.escape(cn),
	    out), "the ban is in the trail: %r" % out)


@case()
async def test_parleyctl_token(t):
	rc, out, err = await actl(["--json", "token", "ci"])
	check_eq(rc, 0, "token: %s" % err)
	j = json.loads(out)
	check_eq(j["entry"], entry("ci", j["token"]), "the entry hashes it")
	check(len(j["token"]) >= 32, "a long token")
	s = t.start_server({"admin_listen": "127.0.0.1:0",
	    "admin_tokens": [j["entry"]]})
	st, _, _ = await api(admin_of(s), "GET", "status", token=j["token"])
	check_eq(st, 200, "the new token works")
	rc, out, err = await actl(["token", "bad name"])
	check_eq(rc, 2, "a bad name")


# ---------------------------------------------------------------------------
# The hooks see the admin's acts, and may refuse them


async def audit_of(a, prefix):
	st, j, _ = await api(a, "GET", "audit?limit=1000")
	check_eq(st, 200, "audit")
	return [(r["action"], r.get("target"), r.get("reason"))
	    for r in j["audit"] if r["action"].startswith(prefix)]


@case()
async def test_hooks_see_admin(t):
	s = t.start_server(admin_config(script_dirs=[TEST_SCRIPTS],
	    scripts=["actor"], plugins=[test_plugin("actor")]))
	a = admin_of(s)
	bad, keep, pkeep = (await t.client(s), await t.client(s),
	    await t.client(s))
	bn, kn, pn = uniq("bad"), uniq("luakeep"), uniq("plugkeep")
	await bad.join("general", bn)
	await keep.join("general", kn)
	await pkeep.join("general", pn)
	# A kick: the moderation chain ("kick") and the leave hook see who.
	st, j, _ = await api(a, "POST", "rooms/general/kick",
	    {"user": bn, "reason": "out"})
	check_eq((st, j), (200, {"ok": True}), "kick")
	await bad.recv("kicked")
	await bad.join("general")
	# A ban, by the other token.
	st, j, _ = await api(a, "POST", "rooms/general/ban", {"user": bn},
	    token=OTHER)
	check_eq((st, j), (200, {"ok": True}), "ban")
	await bad.recv("kicked")
	lua = await audit_of(a, "lua-saw-")
	check_eq(lua, [
	    ("lua-saw-kick", bn, "admin:ops no user"),
	    ("lua-saw-leave", bn, "admin:ops"),
	    ("lua-saw-ban", bn, "admin:deploy no user"),
	    ("lua-saw-leave", bn, "admin:deploy"),
	], "the script saw the admin acts and who took them")
	plug = await audit_of(a, "plugin-saw-")
	check_eq(plug, [
	    ("plugin-saw-kick", bn, "admin:ops no client"),
	    ("plugin-saw-ban", bn, "admin:deploy no client"),
	], "the plugin saw them with actor_kind and actor")
	# A refusal: 403 rejected with the hook's reason, nothing done.
	st, j, _ = await api(a, "POST", "rooms/general/ban", {"user": kn})
	check_eq((st, j), (403, {"error": "rejected",
	    "message": "the script keeps " + kn}), "the script refuses")
	st, j, _ = await api(a, "POST", "rooms/general/kick", {"user": pn})
	check_eq((st, j), (403, {"error": "rejected",
	    "message": "the actor plugin keeps them"}), "the plugin refuses")
	st, j, _ = await api(a, "POST", "rooms/general/topic",
	    {"topic": "luarefuses this"})
	check_eq((st, j), (403, {"error": "rejected",
	    "message": "no such topic from ops"}), "a topic refused")
	st, j, _ = await api(a, "GET", "bans?room=general")
	check_eq([b["name"] for b in j["bans"]], [bn], "only the first ban")
	st, j, _ = await api(a, "GET", "rooms/general")
	check_eq(j["members"], 2, "both kept members are in")
	check(j["topic"] is None, "no topic set: %r" % j)
	await keep.say("general", "still here")
	await pkeep.say("general", "me too")
	# A client's own moderation is seen as before, without an admin.
	st, j, _ = await api(a, "POST", "rooms/general/unban", {"user": bn})
	check_eq(st, 200, "unban")
	lua = await audit_of(a, "lua-saw-unban")
	check_eq(lua, [("lua-saw-unban", bn, "admin:ops no user")],
	    "an unban too")
	# Roles, rooms made and deleted.
	st, j, _ = await api(a, "POST", "rooms/general/role",
	    {"user": kn, "role": "moderator"})
	check_eq(st, 200, "role")
	check_eq(await audit_of(a, "lua-saw-role"),
	    [("lua-saw-role", kn, "moderator by admin:ops")], "a role")
	for room in ("luakeep-room", "other-room"):
		st, j, _ = await api(a, "POST", "rooms", {"name": room})
		check_eq(st, 201, "create " + room)
	check_eq(await audit_of(a, "lua-saw-room_created"),
	    [("lua-saw-room_created", "luakeep-room", "admin:ops"),
	     ("lua-saw-room_created", "other-room", "admin:ops")],
	    "rooms made by the admin")
	st, j, _ = await api(a, "DELETE", "rooms/luakeep-room")
	check_eq((st, j), (403, {"error": "rejected",
	    "message": "the script keeps the room"}), "a deletion refused")
	st, j, _ = await api(a, "DELETE", "rooms/other-room")
	check_eq((st, j), (200, {"ok": True}), "another deleted")
	st, j, _ = await api(a, "GET", "rooms/luakeep-room")
	check_eq(st, 200, "the kept room is still there")


# ---------------------------------------------------------------------------
# Server roles of accounts


@case()
async def test_account_roles(t):
	s = t.start_server(accounts_config())
	a = admin_of(s)
	name = uniq("acct")
	st, j, _ = await api(a, "POST", "accounts",
	    {"name": name, "password": PW})
	check_eq(st, 201, "create")
	c = await t.client(s)
	r = await login(c, name, PW)
	check_eq((r["type"], r["roles"]), ("logged_in", []), "no roles yet")
	await c.join("general")
	await c.expect_error({"type": "set_topic", "roomName": "general",
	    "topic": "mine"}, "forbidden")
	for bad, why in (({"roles": ["king"]}, "an unknown role"),
	    ({"roles": "operator"}, "not a list"), ({}, "no roles"),
	    ({"roles": [1]}, "not a name")):
		st, j, _ = await api(a, "PUT", "accounts/%s/roles" % name, bad)
		check_eq((st, j["error"]), (400, "bad_request"), why)
	st, j, _ = await api(a, "PUT", "accounts/%s/roles" % name,
	    {"roles": ["king"]})
	check("operator" in j["message"], "says which roles exist: %r" % j)
	st, j, _ = await api(a, "PUT", "accounts/nobody-y/roles",
	    {"roles": ["operator"]})
	check_eq((st, j["error"]), (404, "account_not_found"), "no account")
	# Given: at once, and told.
	st, j, _ = await api(a, "PUT", "accounts/%s/roles" % name.upper(),
	    {"roles": ["operator", "operator"]})
	check_eq((st, j), (200, {"name": name, "roles": ["operator"]}),
	    "set (the name in any case, a role once)")
	n = await c.recv("notice")
	check_eq(n["message"], 'your server roles are now ["operator"]',
	    "the connected client is told")
	await c.send({"type": "set_topic", "roomName": "general",
	    "topic": "an operator's"})
	ev = await c.recv("topic_changed")
	check_eq(ev["topic"], "an operator's", "an operator sets the topic")
	st, j, _ = await api(a, "GET", "users")
	check_eq([u["roles"] for u in j["users"] if u["username"] == name],
	    [["operator"]], "users shows it")
	d = await t.client(s)
	r = await login(d, name, PW)
	check_eq(r["roles"], ["operator"], "a later login has it")
	st, j, _ = await api(a, "GET", "audit")
	check_eq([(x["action"], x["target"], x.get("reason"))
	    for x in j["audit"] if x["action"] == "set_roles"],
	    [("set_roles", name, "operator")], "audited")
	# Taken away: at once, and told.
	st, j, _ = await api(a, "PUT", "accounts/%s/roles" % name,
	    {"roles": []})
	check_eq((st, j), (200, {"name": name, "roles": []}), "taken")
	n = await d.recv("notice", pred=lambda m: "roles" in m["message"])
	check_eq(n["message"], "your server roles are now none", "told")
	await d.join("general")
	await d.expect_error({"type": "set_topic", "roomName": "general",
	    "topic": "not any more"}, "forbidden")


@case()
async def test_account_roles_with_operators(t):
	"""The configuration's operators and the stored roles add up."""
	name = uniq("boss")
	s = t.start_server(accounts_config() | {"operators": [name]})
	a = admin_of(s)
	st, _, _ = await api(a, "POST", "accounts",
	    {"name": name, "password": PW})
	check_eq(st, 201, "create")
	c = await t.client(s)
	r = await login(c, name, PW)
	check_eq(r["roles"], ["operator"], "an operator by the configuration")
	st, j, _ = await api(a, "PUT", "accounts/%s/roles" % name,
	    {"roles": []})
	check_eq(st, 200, "no stored roles")
	await c.join("general")
	await c.send({"type": "set_topic", "roomName": "general",
	    "topic": "still an operator"})
	ev = await c.recv("topic_changed")
	check_eq(ev["topic"], "still an operator", "an operator sets the topic")
	c.assert_none("notice", what="no notice: its roles did not change")


@case()
async def test_account_roles_migration(t):
	"""An accounts.db of an older server (no roles column) gains one on
	the worker at start; the roles set last across a restart."""
	import sqlite3
	import tempfile
	state = tempfile.mkdtemp(prefix="parley-admin-")
	cfg = accounts_config() | {"state_dir": state}
	s = t.start_server(cfg)
	name = uniq("old")
	st, _, _ = await api(admin_of(s), "POST", "accounts",
	    {"name": name, "password": PW})
	check_eq(st, 201, "create")
	await s.astop()
	db = sqlite3.connect(os.path.join(state, "accounts.db"))
	db.executescript("""
	    CREATE TABLE old (name TEXT PRIMARY KEY NOT NULL,
		hash TEXT NOT NULL, created INTEGER NOT NULL);
	    INSERT INTO old SELECT name, hash, created FROM accounts;
	    DROP TABLE accounts;
	    ALTER TABLE old RENAME TO accounts;""")
	db.close()
	s = t.start_server(cfg)
	check("added the roles column" in s.stderr(), "migrated")
	a = admin_of(s)
	r = await login(await t.client(s), name, PW)
	check_eq((r["type"], r["roles"]), ("logged_in", []), "an old account")
	st, j, _ = await api(a, "PUT", "accounts/%s/roles" % name,
	    {"roles": ["operator"]})
	check_eq(st, 200, "set: %r" % j)
	await s.astop()
	s = t.start_server(cfg)
	check("added the roles column" not in s.stderr(), "once only")
	r = await login(await t.client(s), name, PW)
	check_eq(r["roles"], ["operator"], "kept across a restart")


@case()
async def test_parleyctl_account_roles(t):
	s = t.start_server(accounts_config())
	a = admin_of(s)
	name = uniq("ctl")
	st, _, _ = await api(a, "POST", "accounts",
	    {"name": name, "password": PW})
	check_eq(st, 201, "create")
	addr = ["-a", "127.0.0.1:%d" % a.port]
	env = {"PARLEY_ADMIN_TOKEN": TOKEN}
	rc, out, err = await actl(addr + ["account", "roles", name,
	    "operator"], env)
	check_eq((rc, out), (0, "%s: operator\n" % name), "set: %s" % err)
	rc, out, err = await actl(addr + ["--json", "account", "roles", name],
	    env)
	check_eq((rc, json.loads(out)), (0, {"name": name, "roles": []}),
	    "cleared: %s" % err)
	rc, out, err = await actl(addr + ["account", "roles", name, "king"],
	    env)
	check_eq(rc, 1, "an unknown role: %s" % err)
	check("operator" in err, "says which: %r" % err)


if __name__ == "__main__":
	suite.main()
