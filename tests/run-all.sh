#!/bin/sh
# Runs every test of parley from a clean checkout: installs what is
# missing (Debian), builds, runs `make check` (unit, integration and
# browser tests), runs it again on an AddressSanitizer + UBSan build and
# with the daemon under valgrind, runs each fuzz target for a minute,
# checks an installation, builds the release tarball as a distribution
# does (and a .deb, checked by lintian), and runs `make distcheck`. Ends
# with one line "N passed, N failed".
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc 2>/dev/null || echo 2)
passed=0
failed=0
skipped=0

step() { echo; echo "=== $*"; }

# Adds up the automake test harness's counts from a test-suite.log.
tally() {
	log=$1
	if [ ! -f "$log" ]; then
		failed=$((failed + 1))
		return
	fi
	p=$(sed -n 's/^# PASS: *//p' "$log" | head -1)
	f=$(sed -n 's/^# FAIL: *//p' "$log" | head -1)
	x=$(sed -n 's/^# XPASS: *//p' "$log" | head -1)
	e=$(sed -n 's/^# ERROR: *//p' "$log" | head -1)
	s=$(sed -n 's/^# SKIP: *//p' "$log" | head -1)
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0} + ${x:-0} + ${e:-0}))
	skipped=$((skipped + ${s:-0}))
}

step "dependencies"
contrib/install-deps.sh --test || { echo "cannot install dependencies"; exit 1; }
if [ -f tests/browser/package.json ] && command -v npm >/dev/null 2>&1; then
	(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error) ||
		echo "npm ci failed: the browser test will be skipped"
fi

step "build"
[ -x configure ] || autoreconf -fi || exit 1
./configure --enable-werror >/dev/null || { cat config.log | tail -30; exit 1; }
make -j"$jobs" >/dev/null || exit 1

step "make check"
make -j"$jobs" check
tally test-suite.log

step "make check on an ASan + UBSan build"
# From a copy of the sources: this tree may be configured in place.
rm -rf build-asan
make distdir distdir=build-asan >/dev/null &&
(cd build-asan && ./configure --enable-sanitizers >/dev/null &&
	make -j"$jobs" >/dev/null &&
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	make -j"$jobs" check)
tally build-asan/test-suite.log

# Counts a whole step as one test.
step_result() {
	if [ "$1" -eq 0 ]; then
		passed=$((passed + 1))
	elif [ "$1" -eq 77 ]; then
		skipped=$((skipped + 1))
	else
		failed=$((failed + 1))
		echo "FAILED: $2"
	fi
}

step "integration tests with the daemon under valgrind"
PARLEYD="$top/src/parleyd" TEST_PYTHON=${TEST_PYTHON:-/usr/bin/python3} \
	top_srcdir="$top" sh tests/valgrind.sh
step_result $? "valgrind run"

step "layout (.clang-format)"
if command -v clang-format >/dev/null 2>&1; then
	make format-check >/dev/null
	step_result $? "format check"
else
	step_result 77 "format check"
fi

step "fuzzing (${FUZZ_SECONDS:-60} s per target)"
top_builddir="$top" sh tests/fuzz/run.sh "${FUZZ_SECONDS:-60}"
step_result $? "fuzzing"

step "installation check"
sh tests/install/check.sh "$top"
step_result $? "installation check"

step "packaging: the tarball as a distribution builds it"
sh tests/packaging/run.sh "$top"
step_result $? "packaging check"

step "make distcheck"
if make -j"$jobs" distcheck >distcheck.log 2>&1; then
	passed=$((passed + 1))
	tail -4 distcheck.log
else
	failed=$((failed + 1))
	tail -40 distcheck.log
fi

echo
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
