#!/usr/bin/python3
#
# test_accounts.py: accounts kept by the server (protocol 1.1, "Who a
# client is") against the built parleyd and a real SQLite file: register,
# login and logout; the same refusal for a wrong password and an unknown
# account, and a failed login taking as long either way; the lockout after
# ten failures per account and per address; registered names reserved;
# login renaming the client and displacing whoever held the name; accounts
# surviving a restart; operators from the configuration next to /oper;
# room ownership and mutes that follow the account across connections;
# accounts turned off; passwords out of bounds.

import asyncio
import hashlib
import os
import re
import sqlite3
import stat
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Suite, Skip, TestFailure, check, check_eq,  # noqa
    parleyd_path, uniq)

suite = Suite("accounts")
case = suite.case

OPER_PASSWORD = "sesame-oper"
# Clients name their address in X-Forwarded-For (the server trusts
# loopback as a proxy), so that each case has addresses of its own for
# the per-address lockout.
CONFIG = {
	"trusted_proxies": ["127.0.0.1"],
	"operators": ["opal"],
	"oper_password": "sha256:" +
	    hashlib.sha256(OPER_PASSWORD.encode()).hexdigest(),
	"password_memory_kib": 8192,
}
PASSWORD = "correct horse battery"

_addr = [0]


def fresh_addr():
	_addr[0] += 1
	return "198.51.%d.%d" % (100 + _addr[0] // 250, 1 + _addr[0] % 250)


async def client(t, server=None, addr=None, label="client"):
	c = await t.client(server, label=label, extra_headers={
	    "X-Forwarded-For": addr or fresh_addr()})
	if "accounts" not in c.welcome.get("features", []):
		raise Skip("this parleyd keeps no accounts (built without "
		    "SQLite or libargon2)")
	return c


async def register(c, name, password=PASSWORD):
	r = await c.expect({"type": "register", "username": name,
	    "password": password}, "registered", timeout=15)
	check_eq(r.get("username"), name, "registered.username")
	c.username = name
	return r


async def login(c, name, password=PASSWORD):
	r = await c.expect({"type": "login", "username": name,
	    "password": password}, "logged_in", timeout=15)
	c.username = r.get("username")
	return r


async def fail_login(c, name, password, code="unauthorized"):
	return await c.expect_error({"type": "login", "username": name,
	    "password": password}, code, timeout=15)


async def command(c, room, text):
	"""Runs a slash command; returns its answer (an error fails)."""
	r = await c.request({"type": "send_message", "roomName": room,
	    "message": text})
	check(r.get("type") != "error", "%s: %s got %r" % (c.label, text, r))
	return r


@case(config=CONFIG)
async def test_welcome(t):
	c = await client(t)
	check_eq(c.welcome.get("account", "missing"), None, "welcome.account")
	check_eq(c.welcome.get("roles"), [], "welcome.roles")


@case(config=CONFIG)
async def test_register_login_logout(t):
	name = uniq("ann")
	a = await client(t, label="a")
	r = await register(a, name)
	check_eq(r.get("roles"), [], "registered.roles")
	# the name is the account's: nobody else may take it, in any case
	b = await client(t, label="b")
	for n in (name, name.upper()):
		await b.expect_error({"type": "set_username", "username": n},
		    "name_taken")
		await b.expect_error({"type": "join_room", "roomName": "general",
		    "username": n}, "name_taken")
		await b.expect_error({"type": "register", "username": n,
		    "password": PASSWORD}, "name_taken")
	# logout: a guest under a new guest name; the name stays reserved
	r = await a.expect({"type": "logout"}, "username_set")
	check(r["username"].startswith("guest-"), "a guest name: %r" % r)
	await b.expect_error({"type": "set_username", "username": name},
	    "name_taken")
	r = await login(b, name.upper())
	check_eq(r.get("username"), name, "logged_in.username (as registered)")
	check_eq(r.get("roles"), [], "logged_in.roles")
	# the account may take its own name, the guest may not
	await b.set_name(name)
	await a.expect_error({"type": "set_username", "username": name},
	    "name_taken")
	# a guest name cannot be registered
	await a.expect_error({"type": "register", "username": "guest-99999",
	    "password": PASSWORD}, "invalid_name")
	# invalid names, missing fields
	await a.expect_error({"type": "register", "username": " x",
	    "password": PASSWORD}, "invalid_name")
	await a.expect_error({"type": "login", "username": name},
	    "bad_request")
	await a.expect_error({"type": "register", "password": PASSWORD},
	    "bad_request")
	await a.expect_error({"type": "login", "username": name,
	    "password": 12345678}, "bad_request")


@case(config=CONFIG)
async def test_same_refusal(t):
	name = uniq("bea")
	a = await client(t)
	await register(a, name)
	b = await client(t)
	wrong = await fail_login(b, name, "not the password")
	missing = await fail_login(b, uniq("nobody"), "not the password")
	check_eq(wrong.get("message"), missing.get("message"),
	    "the same words for a wrong password and an unknown account")
	# nothing changed: still the guest it was
	await b.set_name(uniq("still"))


@case(config=CONFIG)
async def test_lockout_per_account(t):
	name = uniq("cy")
	a = await client(t)
	await register(a, name)
	# ten failures from ten addresses: the account is locked
	for i in range(10):
		b = await client(t)
		await fail_login(b, name, "wrong password %d" % i)
	b = await client(t)
	r = await fail_login(b, name, PASSWORD, "rate_limited")
	check("try again" in r.get("message", ""), "says to wait: %r" % r)
	# another account from the same address is not locked
	other = uniq("cy2")
	await register(await client(t), other)
	await login(b, other)


@case(config=CONFIG)
async def test_lockout_per_address(t):
	addr = fresh_addr()
	name = uniq("dee")
	await register(await client(t), name)
	b = await client(t, addr=addr)
	for i in range(10):
		await fail_login(b, uniq("nobody"), "wrong password")
	# the right password of an account, from that address: refused
	c = await client(t, addr=addr)
	await fail_login(c, name, PASSWORD, "rate_limited")
	# from another address it works
	await login(await client(t), name)


@case(config=CONFIG)
async def test_login_renames_in_rooms(t):
	name = uniq("eve")
	await register(await client(t), name)
	room = uniq("hall")
	a = await client(t, label="a")
	await a.create(room)
	watcher = await client(t, label="watcher")
	await watcher.join(room)
	old = a.welcome["username"]
	await login(a, name)
	m = await watcher.recv("user_renamed", pred=lambda m:
	    m.get("roomName") == room)
	check_eq((m["oldUsername"], m["username"]), (old, name),
	    "user_renamed at login")
	# logout renames again, and answers username_set
	r = await a.expect({"type": "logout"}, "username_set")
	m = await watcher.recv("user_renamed", pred=lambda m:
	    m.get("roomName") == room)
	check_eq((m["oldUsername"], m["username"]), (name, r["username"]),
	    "user_renamed at logout")


@case(config=CONFIG)
async def test_login_displaces(t):
	# The account's older connection gives the name up.
	name = uniq("fay")
	a = await client(t, label="a")
	await register(a, name)
	b = await client(t, label="b")
	await login(b, name)
	m = await a.recv("username_set")
	check(m["username"].startswith("guest-"), "a becomes a guest: %r" % m)
	n = await a.recv("notice")
	check(m["username"] in n["message"], "the notice names the new name")
	# A guest holding a name an account is made for (by other means
	# than register, here straight into the database) gives it up too.
	g = await client(t, label="guest")
	held = uniq("gus")
	await g.set_name(held)
	path = os.path.join(t.server.config["state_dir"], "accounts.db")
	db = sqlite3.connect(path, timeout=10)
	try:
		row = db.execute("SELECT hash FROM accounts WHERE name = ?",
		    (name,)).fetchone()
		db.execute("INSERT INTO accounts (name, hash, created) "
		    "VALUES (?, ?, 0)", (held, row[0]))
		db.commit()
	finally:
		db.close()
	c = await client(t, label="c")
	r = await login(c, held)
	check_eq(r["username"], held, "logged in under the held name")
	m = await g.recv("username_set")
	check(m["username"].startswith("guest-"), "the guest is renamed")
	n = await g.recv("notice")
	check("belongs to an account" in n["message"], "told why: %r" % n)
	# and the name is now reserved
	await g.expect_error({"type": "set_username", "username": held},
	    "name_taken")


@case()
async def test_restart_keeps_accounts(t):
	state = tempfile.mkdtemp(prefix="parley-accounts-")
	cfg = dict(CONFIG, state_dir=state)
	s = t.start_server(cfg)
	a = await client(t, s)
	await register(a, "hana")
	path = os.path.join(state, "accounts.db")
	check_eq(stat.S_IMODE(os.stat(path).st_mode), 0o600,
	    "accounts.db mode")
	await a.close()
	await s.astop()
	check(PASSWORD not in s.stderr(400), "a password in the log")
	s = t.start_server(cfg)
	b = await client(t, s)
	await b.expect_error({"type": "set_username", "username": "HANA"},
	    "name_taken")
	await fail_login(b, "hana", "wrong password")
	await login(b, "hana")
	await b.close()
	await s.astop()
	check(PASSWORD not in s.stderr(400), "a password in the log")


class ReadOnlyDir:
	"""A state directory that can be made read-only: a tmpfs remounted
	read-only as root (root ignores file modes), file modes otherwise."""

	def __enter__(self):
		self.path = tempfile.mkdtemp(prefix="parley-accounts-ro-")
		self.mounted = False
		if os.geteuid() == 0:
			r = subprocess.run(["mount", "-t", "tmpfs", "-o",
			    "size=4m,mode=0755", "tmpfs", self.path],
			    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
			if r.returncode != 0:
				os.rmdir(self.path)
				raise Skip("root cannot mount a tmpfs here")
			self.mounted = True
		return self

	def set(self, ro):
		if self.mounted:
			subprocess.run(["mount", "-o", "remount," +
			    ("ro" if ro else "rw"), self.path], check=True)
			return
		os.chmod(self.path, 0o555 if ro else 0o755)

	def __exit__(self, *exc):
		if self.mounted:
			subprocess.run(["umount", self.path])
		else:
			self.set(False)
		shutil.rmtree(self.path, ignore_errors=True)


@case(timeout=60)
async def test_read_only_state(t):
	"""A state directory that cannot be written at start: the server
	starts and says so loudly; registered names stay reserved and logins
	work; registering fails with a reason."""
	with ReadOnlyDir() as d:
		cfg = dict(CONFIG, state_dir=d.path)
		s = t.start_server(cfg)
		await register(await client(t, s), "rita")
		await s.astop()
		d.set(True)
		s = t.start_server(cfg)
		check("CANNOT WRITE ACCOUNTS" in s.stderr(400),
		    "the log says so:\n" + s.stderr())
		b = await client(t, s)
		await b.expect_error({"type": "set_username", "username": "Rita"},
		    "name_taken")
		await fail_login(b, "rita", "wrong password")
		await login(b, "rita")
		r = await b.expect_error({"type": "register",
		    "username": uniq("new"), "password": PASSWORD}, "internal")
		check("cannot store" in r["message"], "says why: %r" % r)
		await b.close()
		await s.astop()
	# nothing to read and nowhere to write: the server starts all the same
	with ReadOnlyDir() as d:
		d.set(True)
		s = t.start_server(dict(CONFIG, state_dir=d.path))
		c = await client(t, s)
		await fail_login(c, "rita", PASSWORD)
		await c.close()
		await s.astop()


@case(config=CONFIG)
async def test_operators(t):
	a = await client(t, label="opal")
	r = await register(a, "opal")
	check_eq(r.get("roles"), ["operator"], "an operator's roles")
	room = uniq("ops")
	owner = await client(t, label="owner")
	await owner.create(room)
	victim = await client(t, label="victim")
	await victim.join(room)
	await a.join(room)
	await command(a, room, "/kick %s" % victim.welcome["username"])
	await victim.recv("kicked")
	# a new connection of the operator's account gets the role back,
	# and loses it at logout
	b = await client(t, label="opal2")
	r = await login(b, "opal")
	check_eq(r.get("roles"), ["operator"], "roles at the next login")
	await b.expect({"type": "logout"}, "username_set")
	await b.join(room)
	m = await b.request({"type": "send_message", "roomName": room,
	    "message": "/kick %s" % owner.welcome["username"]})
	check_eq((m.get("type"), m.get("code")), ("error", "forbidden"),
	    "no operator after logout")
	# /oper with the shared password still works
	c = await client(t, label="oper")
	await c.join(room)
	r = await c.request({"type": "send_message", "roomName": room,
	    "message": "/oper " + OPER_PASSWORD})
	check_eq(r.get("type"), "notice", "/oper answers: %r" % r)


@case(config=CONFIG)
async def test_owner_after_reconnect(t):
	name = uniq("ida")
	room = uniq("den")
	a = await client(t, label="a")
	await register(a, name)
	await a.create(room)
	await a.close()
	other = await client(t, label="other")
	await other.join(room)
	b = await client(t, label="b")
	await b.join(room)
	# as a guest, not the owner
	r = await b.request({"type": "send_message", "roomName": room,
	    "message": "/topic guests may not"})
	check_eq(r.get("code"), "forbidden", "a guest sets the topic")
	await login(b, name)
	await b.send({"type": "send_message", "roomName": room,
	    "message": "/topic owners may"})
	await other.recv("notice", pred=lambda m: "owners may" in
	    m.get("message", ""))
	await command(b, room, "/kick %s" % other.welcome["username"])
	await other.recv("kicked")


@case(config=CONFIG)
async def test_mute_survives_reconnect(t):
	name = uniq("jo")
	room = uniq("quiet")
	op = await client(t, label="op")
	await op.create(room)
	await command(op, room, "/oper " + OPER_PASSWORD)
	a = await client(t, label="a")
	await register(a, name)
	await a.join(room)
	await command(op, room, "/mute %s" % name)
	r = await a.request({"type": "send_message", "roomName": room,
	    "message": "hello"})
	check_eq(r.get("code"), "forbidden", "muted")
	await a.close()
	b = await client(t, label="b")
	await login(b, name)
	await b.join(room)
	r = await b.request({"type": "send_message", "roomName": room,
	    "message": "hello again"})
	check_eq(r.get("code"), "forbidden", "still muted after a reconnect")
	await command(op, room, "/unmute %s" % name)
	m = await b.say(room, "free")
	check_eq(m.get("message"), "free", "unmuted")


HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("PARLEY_SRCDIR") or os.path.join(HERE, "..", "..")
BUILD = os.path.dirname(os.path.dirname(parleyd_path()))


@case()
async def test_scripts_and_plugins_see_it(t):
	"""user.account, user.authenticated, user.key, room.owner_account and
	room.owner_id in Lua; client_account, room_owner_account and
	room_owner for a plugin."""
	plugin = os.path.abspath(os.path.join(BUILD, "tests", "plugins",
	    ".libs", "events.so"))
	if not os.path.exists(plugin):
		raise Skip("test plugin events not built (run make check)")
	s = t.start_server(dict(CONFIG, plugins=[plugin],
	    script_dirs=[os.path.join(SRC, "tests", "scripts"),
	    os.path.join(SRC, "scripts")], scripts=["commands", "whoami"]))
	a = await client(t, s, label="a")
	room = uniq("mine")
	await a.create(room)
	r = await command(a, room, "/whoami")
	m = re.fullmatch(r"account=nil authenticated=false key=(\d+) "
	    r"owner_account=nil owner=(\d+)", r["message"])
	check(m is not None, "Lua sees a guest: %r" % r["message"])
	guest_id = m.group(2)
	check_eq(m.group(1), guest_id, "a guest's key is its id")
	r = await command(a, room, "/ev account")
	check_eq(r["message"], "- -", "plugin: a guest's room")
	name = uniq("nia")
	await register(a, name)
	room2 = uniq("ours")
	await a.create(room2)
	await a.close()
	b = await client(t, s, label="b")
	await login(b, name)
	await b.join(room2)
	r = await command(b, room2, "/whoami")
	check(r["message"].startswith("account=%s authenticated=true "
	    "key=account:%s owner_account=%s owner=" % (name, name, name)),
	    "Lua sees the account: %r" % r["message"])
	owner = r["message"].split("owner=")[-1]
	check(owner != "0" and owner != guest_id, "owner is b: %r" % owner)
	r = await command(b, room2, "/ev owner")
	check_eq(r["message"], owner, "plugin room_owner is b")
	r = await command(b, room2, "/ev account")
	check_eq(r["message"], "%s %s" % (name, name), "plugin: the account")
	# the guest's room stays the guest connection's
	await b.join(room)
	r = await command(b, room, "/ev owner")
	check_eq(r["message"], "0", "the guest creator is gone")
	await b.close()
	await s.astop()


@case()
async def test_accounts_off(t):
	s = t.start_server(dict(CONFIG, accounts=False))
	c = await t.client(s)
	check("accounts" not in c.welcome.get("features", []),
	    "no accounts feature")
	for typ in ("register", "login"):
		await c.expect_error({"type": typ, "username": "kay",
		    "password": PASSWORD}, "unsupported")
	await c.expect_error({"type": "logout"}, "unsupported")
	check(not os.path.exists(os.path.join(s.config["state_dir"],
	    "accounts.db")), "no database")
	await c.close()
	await s.astop()


@case(config=CONFIG)
async def test_password_bounds(t):
	c = await client(t)
	for pw in ("1234567", "x" * 1025, ""):
		for typ in ("register", "login"):
			await c.expect_error({"type": typ,
			    "username": uniq("lee"), "password": pw},
			    "bad_request")
	await register(c, uniq("lee"), "12345678")
	d = await client(t)
	name = uniq("max")
	await register(d, name, "\u00e9" * 512)
	await d.expect({"type": "logout"}, "username_set")
	await login(d, name, "\u00e9" * 512)


@case(timeout=120)
async def test_timing(t):
	"""A failed login takes as long for an unknown account as for a
	wrong password: the medians of many attempts, interleaved, are
	within a generous factor of each other (without the dummy hash an
	unknown account answers some hundred times faster)."""
	s = t.start_server(dict(CONFIG, password_memory_kib=19456))
	names = [uniq("tim") for _ in range(4)]
	for n in names:
		await register(await client(t, s), n)
	exist, missing = [], []
	for round_ in range(4):
		c = await client(t, s)
		for i in range(8):
			for kind in ("exist", "missing"):
				who = names[(round_ + i) % 4] if kind == "exist" \
				    else uniq("ghost")
				t0 = time.monotonic()
				await fail_login(c, who, "wrong password")
				(exist if kind == "exist" else missing).append(
				    time.monotonic() - t0)
			if i % 2 == 1:
				await c.close()
				c = await client(t, s)
	me, mm = statistics.median(exist), statistics.median(missing)
	ratio = max(me, mm) / max(min(me, mm), 1e-6)
	check(ratio < 2.5, "failed logins: median %.1f ms for an account, "
	    "%.1f ms for none (ratio %.2f)" % (me * 1000, mm * 1000, ratio))
	print("  median failed login: account %.1f ms, none %.1f ms" %
	    (me * 1000, mm * 1000))


if __name__ == "__main__":
	suite.main()
