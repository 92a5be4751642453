#!/bin/sh
# check.sh: the packaging check. Configures a fresh build into a
# temporary prefix, installs it twice (for real, and into a DESTDIR),
# compares the installed file list with expected-files.txt, then starts
# the installed parleyd with no arguments and checks that it serves the
# installed web client, a WebSocket chat with the default scripts, and
# keeps history in the installed state directory.
# Usage: tests/install/check.sh [BUILDDIR] from a configured tree (it
# takes a fresh copy of the sources with `make distdir`); exits 0, 1, or
# 77 (skip).
set -u
builddir=$(cd "${1:-.}" && pwd)
python=${TEST_PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/parley-install.XXXXXX") || exit 99
trap 'kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
pid=
prefix=$tmp/prefix
fail() { echo "FAIL: $*"; exit 1; }

[ -f "$builddir/Makefile" ] || { echo "SKIP: not a configured tree"; exit 77; }
"$python" -c 'import websockets' >/dev/null 2>&1 ||
	{ echo "SKIP: no Python with websockets (set TEST_PYTHON)"; exit 77; }
env -u MAKEFLAGS -u MFLAGS make -C "$builddir" distdir distdir="$tmp/src" \
    >"$tmp/distdir.log" 2>&1 || fail "make distdir"
srcdir=$tmp/src
mkdir "$tmp/build"
cd "$tmp/build" || exit 99
"$srcdir/configure" --prefix="$prefix" \
    --with-systemdsystemunitdir='${prefix}/lib/systemd/system' \
    --with-sysusersdir='${prefix}/lib/sysusers.d' >"$tmp/configure.log" 2>&1 ||
	fail "configure (see $tmp/configure.log)"
make -j"$(nproc 2>/dev/null || echo 2)" >"$tmp/make.log" 2>&1 ||
	{ tail -20 "$tmp/make.log"; fail "make"; }
make install >"$tmp/install.log" 2>&1 || { tail -20 "$tmp/install.log"; fail "make install"; }
make install DESTDIR="$tmp/dest" >"$tmp/install2.log" 2>&1 ||
	fail "make install DESTDIR"

# The file list, with the prefix written as PREFIX. libtool's .la files
# are left out: whether they are installed is the packager's business.
(cd "$prefix" && find . \( -type f -o -type l -o -type d -empty \) |
    sed 's|^\.|PREFIX|' | grep -v '\.la$' | sort) >"$tmp/real.txt"
(cd "$tmp/dest$prefix" && find . \( -type f -o -type l -o -type d -empty \) |
    sed 's|^\.|PREFIX|' | grep -v '\.la$' | sort) >"$tmp/dest.txt"
[ -z "$(cd "$tmp/dest" && find . -type f | grep -v "^\.$prefix/")" ] ||
	fail "make install DESTDIR wrote outside DESTDIR$prefix"
if [ -n "${PARLEY_WRITE_FIXTURE:-}" ]; then
	cp "$tmp/real.txt" "$PARLEY_WRITE_FIXTURE"
fi
if ! diff -u "$srcdir/tests/install/expected-files.txt" "$tmp/real.txt"; then
	fail "installed files differ from tests/install/expected-files.txt"
fi
diff -u "$tmp/real.txt" "$tmp/dest.txt" || fail "DESTDIR install differs"
echo "PASS install_file_list ($(wc -l <"$tmp/real.txt") files)"

# The installed daemon, run with no arguments but a port.
[ -f "$prefix/etc/parley/parley.conf" ] && fail "an admin's parley.conf was installed"
"$prefix/sbin/parleyd" --port 0 --listen 127.0.0.1 >"$tmp/out" 2>"$tmp/err" &
pid=$!
port=
for i in $(seq 50); do
	port=$(sed -n 's|^parleyd: listening on http://[^ ]*:\([0-9]*\)/$|\1|p' "$tmp/out")
	[ -n "$port" ] && break
	kill -0 $pid 2>/dev/null || { cat "$tmp/err"; fail "installed parleyd exited"; }
	sleep 0.1
done
[ -n "$port" ] || { cat "$tmp/err"; fail "no port printed"; }

"$python" - "$port" "$prefix" <<'PY' || { tail -20 "$tmp/err"; fail "installed server"; }
import asyncio, json, os, sys, urllib.request
import websockets
port, prefix = int(sys.argv[1]), sys.argv[2]
base = "http://127.0.0.1:%d" % port
page = urllib.request.urlopen(base + "/", timeout=5).read()
installed = open(os.path.join(prefix, "share/parley/www/index.html"), "rb").read()
assert page == installed, "/ is not the installed index.html"
print("PASS installed_web_client")

async def recv(ws, type_):
	while True:
		m = json.loads(await asyncio.wait_for(ws.recv(), 5))
		if m["type"] == type_:
			return m

async def chat():
	url = "ws://127.0.0.1:%d/ws" % port
	async with websockets.connect(url) as a, websockets.connect(url) as b:
		await a.send(json.dumps({"type": "join_room", "roomName": "general", "username": "ann"}))
		await recv(a, "room_joined")
		await b.send(json.dumps({"type": "join_room", "roomName": "general", "username": "ben"}))
		await recv(b, "room_joined")
		await a.send(json.dumps({"type": "send_message", "roomName": "general", "message": "hello from an install"}))
		m = await recv(b, "new_message")
		assert m["message"] == "hello from an install" and m["sender"] == "ann", m
		await b.send(json.dumps({"type": "send_message", "roomName": "general", "message": "/help", "id": 1}))
		n = await recv(b, "notice")
		assert "/me" in n["message"], "default scripts answer /help"
		await b.send(json.dumps({"type": "history", "roomName": "general", "id": 2}))
		h = await recv(b, "history")
		assert h["messages"][-1]["message"] == "hello from an install", h
asyncio.run(chat())
print("PASS installed_chat")
PY
kill -TERM $pid
wait $pid || fail "installed parleyd did not exit 0 on SIGTERM"
pid=
[ -s "$prefix/var/lib/parley/history.db" ] ||
	fail "no history in the installed state directory"
echo "PASS installed_history_in_state_dir"
echo "4 passed, 0 failed"
