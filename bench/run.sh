#!/bin/sh
#
# run.sh: the benchmark behind `make bench`. Runs parley-bench's
# workloads (W1, W2 and W3 unless BENCH_WORKLOADS says otherwise) against
# the built parleyd, each against a fresh daemon started by the bench
# with a temporary configuration, and writes the output with a short
# description of the machine to OUTDIR/latest.txt (OUTDIR defaults to
# bench/results).
#
# Environment: PARLEYD, PARLEY_BENCH (the binaries), BENCH_WORKLOADS
# ("W1 W2 W3"; W4 needs an open-file limit of 20,000), BENCH_ARGS (more
# parley-bench options), BENCH_SERVER_CONFIG (a configuration file for
# the daemon instead of the generated one).

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
PARLEYD=${PARLEYD:-$top/src/parleyd}
PARLEY_BENCH=${PARLEY_BENCH:-$here/parley-bench}
BENCH_WORKLOADS=${BENCH_WORKLOADS:-W1 W2 W3}
outdir=${1:-$here/results}

for f in "$PARLEYD" "$PARLEY_BENCH"; do
	if [ ! -x "$f" ]; then
		echo "run.sh: $f is missing; build it first" >&2
		exit 1
	fi
done
mkdir -p "$outdir" || exit 1
out=$outdir/latest.txt

# The server on the first CPU, the load generator on the second, when
# there are two; otherwise they share and the figures say less.
pin=
if [ "$(nproc)" -ge 2 ]; then
	pin="--server-cpu 0 --cpu 1"
fi
config=
if [ -n "$BENCH_SERVER_CONFIG" ]; then
	config="--server-config $BENCH_SERVER_CONFIG"
fi

run() {
	status=0
	echo "# parley benchmark"
	echo "# date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "# server:  $("$PARLEYD" --version 2>&1 | head -n 1)"
	echo "# kernel:  $(uname -sr)"
	echo "# cpus:    $(nproc) x $(sed -n 's/^model name[[:space:]]*: //p' \
	    /proc/cpuinfo | head -n 1)"
	echo "# memory:  $(sed -n 's/^MemTotal:[[:space:]]*//p' /proc/meminfo)"
	echo "# load:    $(cut -d ' ' -f 1-3 /proc/loadavg) (1, 5, 15 min)"
	echo "# pinning: ${pin:-none}"
	echo
	for w in $BENCH_WORKLOADS; do
		# shellcheck disable=SC2086
		"$PARLEY_BENCH" --server "$PARLEYD" $config --workload "$w" \
		    $pin --quiet $BENCH_ARGS || status=1
		echo
	done
	return $status
}

# A pipeline's status is tee's: carry run's out through a file.
{ run; echo $? >"$outdir/.status"; } 2>&1 | tee "$out"
status=$(cat "$outdir/.status" 2>/dev/null || echo 1)
rm -f "$outdir/.status"
echo "run.sh: results in $out"
exit "$status"
