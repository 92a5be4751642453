#!/bin/sh
# version.sh: the plugin ABI version is the same everywhere it is shown:
# parley/plugin.h (as the compiler reads it) defines it, and the built
# parley.pc (abi_major, abi_minor), `parleyd --version` and
# parley-plugin(3) must say the same. Run from the build tree.
set -u
srcdir=${top_srcdir:-${PARLEY_SRCDIR:-.}}
. ./tests/abi/compilers.sh || exit 99
parleyd=${PARLEYD:-./src/parleyd}
fail=0

header=$(printf '#include <parley/plugin.h>\nabi_major PARLEY_PLUGIN_ABI_MAJOR\nabi_minor PARLEY_PLUGIN_ABI_MINOR\n' |
    $CC -E -P -I"$srcdir/include" - 2>&1) || {
	echo "FAIL: parley/plugin.h does not preprocess:"; echo "$header"; exit 1; }
major=$(echo "$header" | sed -n 's/^abi_major *\([0-9][0-9]*\)[uU]* *$/\1/p')
minor=$(echo "$header" | sed -n 's/^abi_minor *\([0-9][0-9]*\)[uU]* *$/\1/p')
if [ -z "$major" ] || [ -z "$minor" ]; then
	echo "FAIL: no numeric PARLEY_PLUGIN_ABI_MAJOR/MINOR in parley/plugin.h"
	exit 1
fi
abi=$major.$minor
echo "parley/plugin.h: ABI $abi"

# same WHAT VERSION: WHAT shows the header's version.
same() {
	echo "$1: ABI $2"
	if [ "$2" != "$abi" ]; then
		echo "FAIL: $1 says '$2', parley/plugin.h $abi"
		fail=1
	fi
}

# parley.pc, through pkg-config when there is one (it must parse it).
if [ ! -f parley.pc ]; then
	echo "FAIL: no parley.pc in the build tree"
	fail=1
elif $PKG_CONFIG --version >/dev/null 2>&1; then
	same parley.pc "$(PKG_CONFIG_LIBDIR=. PKG_CONFIG_PATH= $PKG_CONFIG --variable=abi_major parley).$(PKG_CONFIG_LIBDIR=. PKG_CONFIG_PATH= $PKG_CONFIG --variable=abi_minor parley)"
else
	same parley.pc "$(sed -n 's/^abi_major=//p' parley.pc).$(sed -n 's/^abi_minor=//p' parley.pc)"
fi
if [ -x "$parleyd" ]; then
	same "parleyd --version" "$("$parleyd" --version |
	    sed -n 's/.*plugin ABI \([0-9][0-9.]*\).*/\1/p')"
else
	echo "FAIL: no parleyd at $parleyd"
	fail=1
fi
if [ -f man/parley-plugin.3 ]; then
	same "parley-plugin(3)" "$(sed -n 's/^\([0-9][0-9]*\.[0-9][0-9]*\) for this release.*/\1/p' man/parley-plugin.3)"
else
	echo "FAIL: man/parley-plugin.3 not built"
	fail=1
fi
[ $fail = 0 ] && echo "PASS: the plugin ABI is $abi everywhere"
exit $fail
