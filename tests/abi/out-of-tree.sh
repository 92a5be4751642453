#!/bin/sh
# out-of-tree.sh: a plugin built outside the tree, from nothing but what
# `make install` puts in place (parley/plugin.h and parley.pc), loads and
# works. Installs this build into a temporary DESTDIR, compiles
# plugins/example/example.c and tests/plugins/verdicts.c there with
# `pkg-config --cflags parley` (and no other include path), checks the
# installed parleyd's --plugin-info on them, then runs the built parleyd
# with the example plugin and uses its command over a WebSocket.
# Skips (77) when this build cannot be installed or pkg-config is absent.
set -u
srcdir=${top_srcdir:-${PARLEY_SRCDIR:-.}}
srcdir=$(cd "$srcdir" && pwd)
. ./tests/abi/compilers.sh || exit 99
python=${TEST_PYTHON:-/usr/bin/python3}

if [ ! -f Makefile ]; then
	echo "SKIP: not run from a configured build tree"
	exit 77
fi
if ! $PKG_CONFIG --version >/dev/null 2>&1; then
	echo "SKIP: no pkg-config"
	exit 77
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/parley-oot.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest

# The parent make's jobserver is not ours to use.
if ! env -u MAKEFLAGS -u MFLAGS make install DESTDIR="$dest" \
    >"$tmp/install.log" 2>&1; then
	tail -20 "$tmp/install.log"
	echo "SKIP: make install DESTDIR=... failed here"
	exit 77
fi
pc=$(find "$dest" -name parley.pc | head -1)
if [ -z "$pc" ]; then
	echo "FAIL: make install put no parley.pc in $dest"
	exit 1
fi
PKG_CONFIG_PATH=$(dirname "$pc")
PKG_CONFIG_SYSROOT_DIR=$dest
PKG_CONFIG_LIBDIR=$PKG_CONFIG_PATH
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_LIBDIR
cflags=$($PKG_CONFIG --cflags parley) || {
	echo "FAIL: pkg-config --cflags parley failed"; exit 1; }
plugindir=$($PKG_CONFIG --variable=plugindir parley)
abi=$($PKG_CONFIG --variable=abi_major parley)
echo "pkg-config: cflags '$cflags', plugindir '$plugindir', abi_major $abi"
case $cflags in
*"$dest"*) ;;
*)	echo "FAIL: --cflags does not point into the installed tree"
	exit 1 ;;
esac
fail=0
hdr=$(find "$dest" -path '*/include/parley/plugin.h' | head -1)
[ -n "$hdr" ] || { echo "FAIL: parley/plugin.h not installed"; fail=1; }
[ "$abi" = 1 ] || { echo "FAIL: abi_major is '$abi'"; fail=1; }
# pkgconf puts the sysroot in front of variables too; pkg-config does not.
case $plugindir in
"$dest"/*) ;;
*)	plugindir=$dest$plugindir ;;
esac
if [ ! -f "$plugindir/example.so" ]; then
	echo "FAIL: example.so not installed in the plugindir ($plugindir)"
	fail=1
fi
sbin=$(find "$dest" -type f -name parleyd | head -1)
[ -n "$sbin" ] || { echo "FAIL: no installed parleyd"; exit 1; }

# Only the installed header may be found: no -I into the sources.
for src in plugins/example/example.c tests/plugins/verdicts.c; do
	name=$(basename "$src" .c)
	cmd="$CC -std=c99 -Wall -Wextra -Wno-unused-parameter -Werror -shared -fPIC $cflags -o $tmp/$name.so $srcdir/$src"
	echo "$cmd"
	if ! (cd "$tmp" && $cmd); then
		echo "FAIL: $src does not build against the installed header"
		exit 1
	fi
	out=$("$sbin" --plugin-info "$tmp/$name.so" 2>&1)
	echo "$out" | sed 's/^/    /'
	if ! echo "$out" | grep -q "^name: $name\$" ||
	    ! echo "$out" | grep -q "^init: ok\$"; then
		echo "FAIL: the installed parleyd does not load $name.so"
		fail=1
	fi
done
[ $fail = 0 ] || exit 1

# The built plugin working in a running server.
if ! "$python" -c 'import websockets' >/dev/null 2>&1; then
	echo "SKIP: the plugins build and load; no Python with websockets to run one"
	exit 77
fi
PARLEY_OOT_PLUGIN=$tmp/example.so PARLEY_OOT_SRCDIR=$srcdir "$python" - <<'EOF'
import asyncio, os, re, sys
sys.path.insert(0, os.path.join(os.environ["PARLEY_OOT_SRCDIR"], "tests",
    "integration"))
from harness import Suite, Server, check, lua_string

suite = Suite("out-of-tree")

@suite.case()
async def test_example_out_of_tree(t):
	plugin = os.environ["PARLEY_OOT_PLUGIN"]
	s = t.start_server({"plugins": [plugin]})
	c = await t.client(s)
	await c.set_name("oot")
	await c.join("general")
	await c.send({"type": "send_message", "roomName": "general",
	    "message": "/roll 2d6"})
	n = await c.recv("notice")
	check(re.match(r"^oot rolls 2d6: \d+ \d+ = \d+$", n["message"]),
	    "roll notice: %r" % n)
	await c.send({"type": "send_message", "roomName": "general",
	    "message": "fine :shrug:"})
	m = await c.recv("new_message")
	check(m["message"].endswith(")_/\u00af"), "hook: %r" % m)

suite.main()
EOF
