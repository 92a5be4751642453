#!/bin/sh
# header-cxx.sh: include/parley/plugin.h compiles as C++11 with -pedantic
# and every warning an error, with the ABI layout pinned by static_assert.
# Skips (77) when there is no working C++ compiler.
set -u
srcdir=${top_srcdir:-${PARLEY_SRCDIR:-.}}
. ./tests/abi/compilers.sh || exit 99
out=$(mktemp -d "${TMPDIR:-/tmp}/parley-abi.XXXXXX") || exit 99
trap 'rm -rf "$out"' EXIT
printf 'int main() { return 0; }\n' > "$out/probe.cc"
if ! $CXX -std=c++11 -c "$out/probe.cc" -o "$out/probe.o" 2>/dev/null; then
	echo "SKIP: no working C++11 compiler ($CXX)"
	exit 77
fi
cmd="$CXX -std=c++11 -pedantic -Wall -Wextra -Werror -I$srcdir/include -c $srcdir/tests/abi/header-cxx.cc -o $out/header-cxx.o"
echo "$cmd"
if $cmd; then
	echo "PASS: parley/plugin.h is C++11 clean and its layout is pinned"
	exit 0
fi
echo "FAIL: parley/plugin.h does not compile as C++11 (or its layout moved)"
exit 1
