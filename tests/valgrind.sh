#!/bin/sh
# Runs the integration tests (two at a time, or VALGRIND_JOBS) with every
# parleyd they start under valgrind
# memcheck: tests/valgrind.sh [TEST.py ...] (default: all of
# tests/integration/test_*.py). The harness (PARLEY_VALGRIND=1) runs the
# daemon as valgrind -q --error-exitcode=99 --leak-check=full and stretches
# its deadlines; a daemon that ends with a memory error or a definite leak
# exits 99 and its test fails. On top of that, every valgrind report goes
# to a file of its own, so that nothing is missed when a test kills a
# daemon or does not check its status: any invalid read or write, use of
# uninitialised memory, bad free, or definitely or indirectly lost block
# fails the run, and the report is printed. Exits 0 when all is clean, 1
# otherwise, 77 when valgrind or python3-websockets is missing.
set -u

srcdir=$(cd "$(dirname "$0")/.." && pwd)
python=${TEST_PYTHON:-/usr/bin/python3}
command -v "$python" >/dev/null 2>&1 || python=python3
PARLEYD=${PARLEYD:-$(pwd)/src/parleyd}
[ -x "$PARLEYD" ] || PARLEYD=$srcdir/src/parleyd
export PARLEYD

if ! command -v valgrind >/dev/null 2>&1; then
	echo "SKIP valgrind: valgrind is not installed"
	exit 77
fi
if ! "$python" -c 'import websockets' >/dev/null 2>&1; then
	echo "SKIP valgrind: $python has no websockets module"
	exit 77
fi
if [ ! -x "$PARLEYD" ]; then
	echo "FAIL valgrind: no executable parleyd (build it, or set PARLEYD)"
	exit 1
fi

logs=$(mktemp -d "${TMPDIR:-/tmp}/parley-valgrind.XXXXXX") || exit 1
# Options the harness does not give: one report file per process, and
# indirect leaks shown (the harness's exit code covers definite ones).
VALGRIND_OPTS="${VALGRIND_OPTS:-} --log-file=$logs/vg.%p.log"
VALGRIND_OPTS="$VALGRIND_OPTS --show-leak-kinds=definite,indirect"
VALGRIND_OPTS="$VALGRIND_OPTS --num-callers=30"
export VALGRIND_OPTS
PARLEY_VALGRIND=1
export PARLEY_VALGRIND

if [ $# -eq 0 ]; then
	set -- "$srcdir"/tests/integration/test_*.py
fi

# Two (or VALGRIND_JOBS) tests at a time: each waits mostly on its
# daemon, and every wait of the harness is stretched under valgrind.
jobs=${VALGRIND_JOBS:-$(nproc 2>/dev/null || echo 1)}
[ "$jobs" -ge 1 ] 2>/dev/null || jobs=1
outs=$(mktemp -d "${TMPDIR:-/tmp}/parley-valgrind-out.XXXXXX") || exit 1
printf '%s\n' "$@" | xargs -P "$jobs" -I{} sh -c '
	name=$(basename "$1")
	start=$(date +%s)
	"$3" "$1" >"$2/$name.out" 2>&1
	rc=$?
	echo "$rc $(( $(date +%s) - start ))" >"$2/$name.rc"' _ {} "$outs" "$python"

status=0
ran=0
for t in "$@"; do
	name=$(basename "$t")
	echo "=== $name under valgrind"
	cat "$outs/$name.out" 2>/dev/null
	read -r rc took <"$outs/$name.rc" 2>/dev/null || { rc=1; took=0; }
	case $rc in
	0) echo "PASS $name (${took}s)"; ran=$((ran + 1)) ;;
	77) echo "SKIP $name" ;;
	*) echo "FAIL $name (exit $rc, ${took}s)"; status=1
	   ran=$((ran + 1)) ;;
	esac
done
rm -rf "$outs"

# With -q a report file holds only errors: any non-empty one is a finding.
found=0
for f in "$logs"/vg.*.log; do
	[ -s "$f" ] || continue
	if grep -qE 'Invalid (read|write|free)|uninitialised|Mismatched free|are (definitely|indirectly) lost|Syscall param|overlap|fishy|Jump to the invalid' "$f"; then
		found=$((found + 1))
		echo "--- valgrind report $(basename "$f"):"
		head -60 "$f"
	fi
done
if [ "$found" -gt 0 ]; then
	echo "FAIL valgrind: $found daemon(s) with memory errors or leaks" \
	    "(reports kept in $logs)"
	status=1
else
	rm -rf "$logs"
fi
[ "$ran" -gt 0 ] || exit 77
[ "$status" -eq 0 ] && echo "PASS valgrind: no memory errors, no leaks"
exit $status
