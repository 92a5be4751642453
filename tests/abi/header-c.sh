#!/bin/sh
# header-c.sh: include/parley/plugin.h compiles alone as strict C99 with
# every warning an error, and its ABI layout is the pinned one
# (layout.inc). Uses the C compiler configure found.
set -u
srcdir=${top_srcdir:-${PARLEY_SRCDIR:-.}}
. ./tests/abi/compilers.sh || exit 99
out=$(mktemp -d "${TMPDIR:-/tmp}/parley-abi.XXXXXX") || exit 99
trap 'rm -rf "$out"' EXIT
cmd="$CC -std=c99 -pedantic -Wall -Wextra -Werror -I$srcdir/include -c $srcdir/tests/abi/header-c.c -o $out/header-c.o"
echo "$cmd"
if $cmd; then
	echo "PASS: parley/plugin.h is C99 clean and its layout is pinned"
	exit 0
fi
echo "FAIL: parley/plugin.h does not compile as strict C99 (or its layout moved)"
exit 1
