#!/bin/sh
#
# smoke.sh: a short parley-bench run against the built parleyd. It starts
# the daemon on 127.0.0.1 port 0 with its own temporary configuration,
# drives a few rooms for about three seconds at a rate the default abuse
# limits allow, and checks only that every message reached every member
# exactly once and in order. Speed is not checked: machines differ.
#
# Environment: PARLEYD (default src/parleyd) and PARLEY_BENCH (default
# bench/parley-bench), both relative to the top of the tree. Exit 0 on
# success, 1 on failure, 77 when a binary is missing.

here=$(cd "$(dirname "$0")" && pwd)
PARLEYD=${PARLEYD:-$here/../../src/parleyd}
PARLEY_BENCH=${PARLEY_BENCH:-$here/../../bench/parley-bench}

if [ ! -x "$PARLEYD" ]; then
	echo "SKIP: no parleyd at $PARLEYD"
	exit 77
fi
if [ ! -x "$PARLEY_BENCH" ]; then
	echo "SKIP: no parley-bench at $PARLEY_BENCH"
	exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/parley-smoke.XXXXXX") || exit 1
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# The core only (no plugins), with any state kept in the temporary
# directory; the abuse limits stay at their defaults.
mkdir "$tmp/state" || exit 1
cat > "$tmp/parley.conf" <<CONF
listen = "127.0.0.1"
log_level = "warn"
plugins = { }
state_dir = "$tmp/state"
CONF

: >"$tmp/stdout"
"$PARLEYD" --config "$tmp/parley.conf" --port 0 >"$tmp/stdout" \
    2>"$tmp/stderr" &
pid=$!

# The daemon names its port on stdout; wait up to ten seconds.
port=
i=0
while [ $i -lt 100 ]; do
	port=$(sed -n 's|^parleyd: listening on http://127\.0\.0\.1:\([0-9]*\)/$|\1|p' \
	    "$tmp/stdout")
	[ -n "$port" ] && break
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "FAIL: parleyd exited:"
		cat "$tmp/stderr"
		pid=
		exit 1
	fi
	sleep 0.1
	i=$((i + 1))
done
if [ -z "$port" ]; then
	echo "FAIL: parleyd did not say where it listens"
	cat "$tmp/stderr"
	exit 1
fi

# 60 clients in 3 rooms, 6 senders at 5 messages a second each: under
# the default per-client and per-address limits, so the stock
# configuration is what gets tested.
if ! timeout 60 "$PARLEY_BENCH" --url "ws://127.0.0.1:$port/ws" \
    --server-pid "$pid" --workload custom --conns 60 --rooms 3 \
    --senders 6 --rate 5 --warmup 1 --duration 2 --drain 5 \
    --ping-rate 10 --quiet >"$tmp/result" 2>&1; then
	echo "FAIL: parley-bench failed:"
	cat "$tmp/result"
	exit 1
fi

line=$(grep '^RESULT ' "$tmp/result")
value() {
	echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"
}
sent=$(value sent)
expected=$(value expected)
delivered=$(value delivered)
status=0
for key in missing duplicates reordered closed errors; do
	if [ "$(value $key)" != 0 ]; then
		echo "FAIL: $key=$(value $key)"
		status=1
	fi
done
if [ -z "$sent" ] || [ "$sent" -eq 0 ]; then
	echo "FAIL: nothing was sent"
	status=1
elif [ "$expected" -ne $((sent * 20)) ] || [ "$delivered" != "$expected" ]; then
	echo "FAIL: sent $sent, expected $expected, delivered $delivered"
	status=1
fi
if [ $status -ne 0 ]; then
	cat "$tmp/result"
	exit 1
fi
echo "PASS: $delivered of $expected deliveries ($sent messages to 20 members each)"
exit 0
