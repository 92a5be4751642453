#!/bin/bash
#
# cluster.sh: what the redis plugin costs. Runs parley-bench against three
# set-ups, each started fresh for every run and stopped after it: two
# parleyd joined through a throw-away redis-server (every room has
# members on both servers, so every message crosses Redis), one parleyd
# with the redis plugin, and one parleyd without it. For each it runs a
# fixed-rate run in W1's shape and a W2 saturation run, keeps the bench's
# whole output, and ends with a table: deliveries per second, p99, lost
# deliveries, and the CPU of the parleyd processes and of Redis.
#
#   bench/cluster.sh [options] [BUILD_DIR]
#
# BUILD_DIR is the build tree (default: the directory above this script);
# it needs src/parleyd, bench/parley-bench and plugins/.libs/redis.so.
# Everything runs on 127.0.0.1; the temporary directory and every process
# started here are removed on exit.

set -u

here=$(cd "$(dirname "$0")" && pwd)
top=
duration=10
warmup=3
rate=20
conns=1000
rooms=10
senders=50
w2_duration=5
w2_rate=
steps=12
factor=1.5
setups="cluster redis single"
workloads="W1 W2"
pin=0
keep=0
out=

usage() {
	cat <<EOF
usage: cluster.sh [options] [BUILD_DIR]
  --duration S       measured seconds of the fixed-rate run ($duration)
  --warmup S         its warm-up ($warmup)
  --rate N           messages a second per sender in it ($rate)
  --conns N --rooms N --senders N   the shape ($conns, $rooms, $senders)
  --w2-duration S    measured seconds per W2 step ($w2_duration)
  --w2-rate N        W2's first rate per sender (W2's own: 20)
  --steps N --step-factor F         W2's stepping ($steps, $factor)
  --setups LIST      of cluster, redis, single ("$setups")
  --workloads LIST   of W1, W2 ("$workloads")
  --pin              servers on CPUs 0, 1, ... in turn; Redis and the
                     bench on the last CPU
  --keep             keep the temporary directory (logs, outputs)
  --out FILE         also write everything to FILE
Set-ups: cluster = two parleyd + Redis, redis = one parleyd with the
plugin + Redis, single = one parleyd, no plugin.
Environment: REDIS_SERVER (redis-server), PARLEYD, PARLEY_BENCH.
EOF
}

while [ $# -gt 0 ]; do
	case $1 in
	--duration) duration=$2; shift 2 ;;
	--warmup) warmup=$2; shift 2 ;;
	--rate) rate=$2; shift 2 ;;
	--conns) conns=$2; shift 2 ;;
	--rooms) rooms=$2; shift 2 ;;
	--senders) senders=$2; shift 2 ;;
	--w2-duration) w2_duration=$2; shift 2 ;;
	--w2-rate) w2_rate=$2; shift 2 ;;
	--steps) steps=$2; shift 2 ;;
	--step-factor) factor=$2; shift 2 ;;
	--setups) setups=$2; shift 2 ;;
	--workloads) workloads=$2; shift 2 ;;
	--pin) pin=1; shift ;;
	--keep) keep=1; shift ;;
	--out) out=$2; shift 2 ;;
	-h|--help) usage; exit 0 ;;
	-*) echo "cluster.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
	*) top=$1; shift ;;
	esac
done
top=$(cd "${top:-$here/..}" && pwd) || exit 2

PARLEYD=${PARLEYD:-$top/src/parleyd}
PARLEY_BENCH=${PARLEY_BENCH:-$top/bench/parley-bench}
PLUGIN=$top/plugins/.libs/redis.so
REDIS_SERVER=${REDIS_SERVER:-$(command -v redis-server || echo /usr/bin/redis-server)}
for f in "$PARLEYD" "$PARLEY_BENCH" "$REDIS_SERVER"; do
	if [ ! -x "$f" ]; then
		echo "cluster.sh: $f is missing" >&2
		exit 1
	fi
done
if [ ! -f "$PLUGIN" ]; then
	echo "cluster.sh: $PLUGIN is missing (built without hiredis?)" >&2
	exit 1
fi
if [ -n "$out" ]; then
	exec > >(tee "$out") 2>&1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/parley-cluster.XXXXXX") || exit 1
pids=()        # every process started here, stopped on exit
bench_pid=
ncpu=$(nproc)

# Stops what was started here, each by its own pid: TERM, then KILL after
# five seconds.
stop_pids() {
	local p
	for p in "$@"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "$@"; do
		for _ in $(seq 50); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
}

# shellcheck disable=SC2317 # called by the trap
cleanup() {
	trap - EXIT INT TERM
	if [ -n "$bench_pid" ]; then
		stop_pids "$bench_pid"
	fi
	if [ ${#pids[@]} -gt 0 ]; then
		stop_pids "${pids[@]}"
	fi
	if [ "$keep" = 1 ]; then
		echo "cluster.sh: kept $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'echo "cluster.sh: interrupted" >&2; exit 130' INT TERM

# taskset prefix for the CPU chosen by --pin, or nothing.
on_cpu() {
	if [ "$pin" = 1 ]; then
		echo "taskset -c $1"
	fi
}

redis_ping() {
	local reply=
	exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
	printf 'PING\r\n' >&3
	read -r -t 1 reply <&3
	exec 3<&-
	[ "${reply%$'\r'}" = "+PONG" ]
}

# Starts redis-server on a free port; sets redis_pid and redis_port.
start_redis() {
	local dir=$1
	mkdir -p "$dir"
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		redis_port=$((20000 + RANDOM % 40000))
		if (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null; then
			continue # taken
		fi
		# shellcheck disable=SC2046
		$(on_cpu $((ncpu - 1))) "$REDIS_SERVER" --port "$redis_port" \
		    --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
		    --logfile "$dir/redis.log" &
		redis_pid=$!
		pids+=("$redis_pid")
		for _ in $(seq 100); do
			if redis_ping "$redis_port" 2>/dev/null; then
				return 0
			fi
			kill -0 "$redis_pid" 2>/dev/null || break
			sleep 0.05
		done
		stop_pids "$redis_pid"
	done
	echo "cluster.sh: could not start redis-server (see $dir)" >&2
	exit 1
}

# Starts parleyd NAME with or without the plugin on CPU; sets srv_pid and
# srv_port. The abuse limits are off (a load generator is every client at
# once, from a few addresses); any state stays in the temporary directory.
start_parleyd() {
	local name=$1 plugin=$2 cpu=$3 dir=$tmp/$1 limit plugins
	mkdir -p "$dir/state"
	limit=$((conns + 200))
	[ $limit -lt 1000 ] && limit=1000
	plugins="plugins = { }"
	if [ "$plugin" = 1 ]; then
		plugins="plugins = { \"$PLUGIN\" }
plugin_options = { redis = { host = \"127.0.0.1\", port = $redis_port, prefix = \"bench:\" } }"
	fi
	cat >"$dir/parley.conf" <<CONF
-- written by cluster.sh
listen = "127.0.0.1"
log_level = "warn"
rooms = { "general" }
max_connections = $limit
max_connections_per_ip = $limit
connects_per_minute_per_ip = 0
requests_per_minute = 0
messages_per_minute = 0
rooms_per_minute = 0
names_per_minute = 0
flood_close_after = 0
ban_after = 0
state_dir = "$dir/state"
$plugins
CONF
	: >"$dir/stdout"
	# shellcheck disable=SC2046
	$(on_cpu "$cpu") "$PARLEYD" --config "$dir/parley.conf" --port 0 \
	    >"$dir/stdout" 2>"$dir/stderr" &
	srv_pid=$!
	pids+=("$srv_pid")
	srv_port=
	for _ in $(seq 100); do
		srv_port=$(sed -n 's|^parleyd: listening on http://127\.0\.0\.1:\([0-9]*\)/$|\1|p' \
		    "$dir/stdout")
		[ -n "$srv_port" ] && return 0
		if ! kill -0 "$srv_pid" 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	echo "cluster.sh: parleyd $name did not start:" >&2
	cat "$dir/stderr" >&2
	exit 1
}

# Waits until the server on PORT says cluster_up 1 and (where the plugin
# counts them) sees N servers.
wait_cluster() {
	local port=$1 n=$2 m up servers
	for _ in $(seq 100); do
		m=$(curl -s --max-time 1 "http://127.0.0.1:$port/metrics")
		up=$(echo "$m" | awk '!/^#/ && /cluster_up/ { print $NF }')
		servers=$(echo "$m" |
		    awk '!/^#/ && /cluster_servers/ { print $NF }')
		if [ "$up" = 1 ] && [ "${servers:-$n}" -ge "$n" ]; then
			return 0
		fi
		sleep 0.1
	done
	echo "cluster.sh: the server on port $port never reported" \
	    "cluster_up 1 with $n servers" >&2
	exit 1
}

# The value of KEY in the RESULT line of FILE.
value() {
	grep '^RESULT ' "$2" | tail -n 1 | tr ' ' '\n' | sed -n "s/^$1=//p"
}

# The CPU figure of PID in the bench's per-server lines of FILE.
pid_cpu() {
	sed -n "s/^    pid $1 *cpu \([0-9.]*\)%.*/\1/p" "$2" | tail -n 1
}

results=()     # one row per run, for the table

# run SETUP WORKLOAD: starts the set-up, runs the bench, stops it all.
run() {
	local setup=$1 w=$2 file=$tmp/$1-$2.out args urls=() spids=()
	local cpu_srv cpu_redis p rc
	pids=()
	redis_pid=
	case $setup in
	cluster)
		start_redis "$tmp/redis"
		start_parleyd a 1 0
		urls+=("ws://127.0.0.1:$srv_port/ws"); spids+=("$srv_pid")
		local port_a=$srv_port
		start_parleyd b 1 $((1 % ncpu))
		urls+=("ws://127.0.0.1:$srv_port/ws"); spids+=("$srv_pid")
		wait_cluster "$port_a" 2
		wait_cluster "$srv_port" 2
		;;
	redis)
		start_redis "$tmp/redis"
		start_parleyd a 1 0
		urls+=("ws://127.0.0.1:$srv_port/ws"); spids+=("$srv_pid")
		wait_cluster "$srv_port" 1
		;;
	single)
		start_parleyd a 0 0
		urls+=("ws://127.0.0.1:$srv_port/ws"); spids+=("$srv_pid")
		;;
	*)
		echo "cluster.sh: unknown set-up $setup" >&2
		exit 2
		;;
	esac
	args=(--workload "$w" --conns "$conns" --rooms "$rooms"
	    --senders "$senders")
	if [ "$w" = W1 ]; then
		args+=(--rate "$rate" --duration "$duration" --warmup "$warmup")
	else
		args+=(--duration "$w2_duration" --steps "$steps"
		    --step-factor "$factor")
		[ -n "$w2_rate" ] && args+=(--rate "$w2_rate")
	fi
	for p in "${urls[@]}"; do
		args+=(--url "$p")
	done
	# Redis is sampled with the servers: the bench adds it into
	# server_cpu_pct and lists it on its own line.
	for p in "${spids[@]}" $redis_pid; do
		args+=(--server-pid "$p")
	done
	[ "$pin" = 1 ] && args+=(--cpu $((ncpu - 1)))
	echo "== $setup $w: parley-bench ${args[*]}"
	echo "   (parleyd pids ${spids[*]}${redis_pid:+, redis-server pid $redis_pid})"
	"$PARLEY_BENCH" "${args[@]}" --quiet >"$file" 2>&1 &
	bench_pid=$!
	wait "$bench_pid"
	rc=$?
	bench_pid=
	cat "$file"
	echo "   exit status $rc"
	echo
	for p in a b; do
		if [ -s "$tmp/$p/stderr" ]; then
			echo "   parleyd $p said:"
			sed 's/^/     /' "$tmp/$p/stderr" | head -n 20
		fi
	done
	stop_pids "${pids[@]}"
	pids=()
	rm -rf "$tmp/a" "$tmp/b" "$tmp/redis"

	# parleyd CPU: the sum over its processes; Redis on its own.
	cpu_srv=0
	if [ ${#spids[@]} -eq 1 ] && [ -z "$redis_pid" ]; then
		cpu_srv=$(value server_cpu_pct "$file")
	else
		for p in "${spids[@]}"; do
			cpu_srv=$(awk -v a="$cpu_srv" -v b="$(pid_cpu "$p" "$file")" \
			    'BEGIN { printf "%.1f", a + b }')
		done
	fi
	cpu_redis=-
	[ -n "$redis_pid" ] && cpu_redis=$(pid_cpu "$redis_pid" "$file")
	results+=("$setup|$w|$rc|$cpu_srv|$cpu_redis|$file")
}

echo "# parley cluster benchmark (redis plugin)"
echo "# date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "# server:  $("$PARLEYD" --version 2>&1 | head -n 1)"
echo "# redis:   $("$REDIS_SERVER" --version | head -n 1)"
echo "# kernel:  $(uname -sr)"
echo "# cpus:    $ncpu x $(sed -n 's/^model name[[:space:]]*: //p' \
    /proc/cpuinfo | head -n 1)"
echo "# load:    $(cut -d ' ' -f 1-3 /proc/loadavg) (1, 5, 15 min)"
if [ "$pin" = 1 ]; then
	echo "# pinning: parleyd a on CPU 0, b on CPU $((1 % ncpu));" \
	    "redis-server and the bench on CPU $((ncpu - 1))"
else
	echo "# pinning: none; servers, Redis and the bench share $ncpu CPUs"
fi
echo

status=0
for s in $setups; do
	for w in $workloads; do
		run "$s" "$w"
	done
done

echo "set-up: cluster = 2 parleyd + redis-server, redis = 1 parleyd with the"
echo "plugin + redis-server, single = 1 parleyd without plugins. W1: fixed"
echo "rate; W2: the highest sustained step. cpu in % of one core, inside the"
echo "measured window; wait = time the servers (and Redis) were runnable"
echo "but had no CPU, summed; lost = deliveries missing after the drain;"
echo "bad = duplicates + reordered + closed + errors."
printf '%-8s %-3s %8s %10s %11s %7s %7s %5s %4s %8s %6s %6s %6s %s\n' \
    setup run rate offered/s delivered/s p50_ms p99_ms lost bad \
    parleyd% redis% bench% wait% note
for row in "${results[@]}"; do
	IFS='|' read -r s w rc cpu_srv cpu_redis file <<<"$row"
	if ! grep -q '^RESULT ' "$file"; then
		printf '%-8s %-3s  failed (exit %s): %s\n' "$s" "$w" "$rc" \
		    "$(tail -n 1 "$file")"
		status=1
		continue
	fi
	r=$(value rate "$file")
	m=$((conns / rooms))
	offered=$(awk -v s="$senders" -v r="$r" -v m="$m" \
	    'BEGIN { printf "%.0f", s * r * m }')
	if [ "$w" = W2 ]; then
		dps=$(value max_sustained_per_s "$file")
		note="stop=$(value stop "$file")"
		if [ "$dps" = 0 ]; then
			# Not even the first step held: show what it did.
			dps=$(value delivered_per_s "$file")
			note="$note none_sustained"
		fi
	else
		dps=$(value delivered_per_s "$file")
		note=
	fi
	bad=$(( $(value duplicates "$file") + $(value reordered "$file") +
	    $(value closed "$file") + $(value errors "$file") ))
	[ "$(value send_lag "$file")" != 0 ] &&
	    note="$note late_sends=$(value send_lag "$file")"
	[ "$(value unsent "$file")" != 0 ] &&
	    note="$note unsent=$(value unsent "$file")"
	note=${note# }
	printf '%-8s %-3s %8s %10s %11s %7s %7s %5s %4s %8s %6s %6s %6s %s\n' \
	    "$s" "$w" "$r" "$offered" "$dps" \
	    "$(awk -v v="$(value p50_us "$file")" 'BEGIN { printf "%.2f", v / 1000 }')" \
	    "$(awk -v v="$(value p99_us "$file")" 'BEGIN { printf "%.2f", v / 1000 }')" \
	    "$(value missing "$file")" "$bad" "$cpu_srv" "$cpu_redis" \
	    "$(value bench_cpu_pct "$file")" \
	    "$(value server_wait_pct "$file")" "$note"
	[ "$rc" != 0 ] && [ "$w" = W1 ] && status=1
done
exit $status
