/*
 * parley-bench.c: the load generator's command line and its coordinator.
 * The parent process starts (or finds) the server, or the servers of a
 * cluster, forks the workers that hold the connections, walks them
 * through set-up and the measured stages of a workload over pipes,
 * samples the servers' CPU and memory from /proc at the edges of each
 * measured window, merges the workers' reports and prints them, for
 * people and for scripts.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define BENCH_MAX_PROCS 64

static const char *const bench_names[] = { "W1", "W2", "W3", "W4",
	"W5", "custom" };

static struct bench_opts opts;
static struct proc_server server;
static pid_t server_pids[BENCH_MAX_SERVERS]; /* sampled */
static unsigned nserver_pids;     /* 0 when none is known */
static unsigned nworkers;
static pid_t worker_pids[BENCH_MAX_PROCS];
static int worker_cmd[BENCH_MAX_PROCS], worker_rep[BENCH_MAX_PROCS];
static volatile sig_atomic_t bench_stop;

/* What a measured stage came to, all workers together. */
struct bench_stage {
	double rate;
	double duration;
	struct worker_report r;   /* sums, merged histograms */
	int64_t server_cpu_ns;    /* -1 when not known */
	int64_t server_wait_ns;   /* runnable, not running; -1: unknown */
	long server_rss_kb;
	/* The same for each sampled server; the above are their sums. */
	int64_t cpu_ns[BENCH_MAX_SERVERS];
	int64_t wait_ns[BENCH_MAX_SERVERS];
	long rss_kb[BENCH_MAX_SERVERS];
};

/* A result line under construction: the same keys go out as RESULT
 * key=value or as one JSON object. */
struct bench_kv {
	char key[32];
	char val[48];
	bool str;
};
static struct bench_kv kvs[64];
static unsigned nkvs;

uint64_t
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * BENCH_NS_PER_S + (uint64_t)ts.tv_nsec;
}

int
bench_read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	ssize_t n;

	while (len > 0) {
		n = read(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
bench_write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void
bench_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Progress on stderr, unless --quiet or --json. */
static void
bench_note(const char *fmt, ...)
{
	va_list ap;

	if (opts.quiet || opts.json)
		return;
	va_start(ap, fmt);
	fputs("parley-bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* Stops what we started, each by its own pid. */
static void
bench_cleanup(void)
{
	int status;

	for (unsigned i = 0; i < nworkers; i++) {
		if (worker_pids[i] > 0) {
			kill(worker_pids[i], SIGTERM);
			waitpid(worker_pids[i], &status, 0);
			worker_pids[i] = 0;
		}
	}
	proc_stop(&server);
}

static void
bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2),
    noreturn));

static void
bench_die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("parley-bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	bench_cleanup();
	exit(1);
}

static void
bench_on_signal(int sig)
{
	(void)sig;
	bench_stop = 1;
}

/* Sleeps until a CLOCK_MONOTONIC time; gives up on a signal. */
static void
bench_sleep_until(uint64_t t)
{
	struct timespec ts = { (time_t)(t / BENCH_NS_PER_S),
		(long)(t % BENCH_NS_PER_S) };

	while (!bench_stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME,
	    &ts, NULL) == EINTR)
		;
	if (bench_stop)
		bench_die("interrupted");
}

static void
bench_command(const struct worker_cmd *cmd)
{
	for (unsigned i = 0; i < nworkers; i++) {
		if (bench_write_full(worker_cmd[i], cmd, sizeof *cmd) == -1)
			bench_die("worker %u is gone", i);
	}
}

/* Reads one report from every worker by the deadline and adds them up
 * into sum. */
static void
bench_collect(uint64_t deadline, struct worker_report *sum)
{
	static struct worker_report r;
	struct pollfd pfd[BENCH_MAX_PROCS];
	bool got[BENCH_MAX_PROCS] = { false };
	unsigned left = nworkers;
	uint64_t now;
	int n;

	memset(sum, 0, sizeof *sum);
	hist_init(&sum->lat);
	hist_init(&sum->ping);
	sum->ok = 1;
	while (left > 0) {
		now = bench_now();
		if (now >= deadline)
			bench_die("timed out waiting for the workers (%u of %u "
			    "still busy)", left, nworkers);
		for (unsigned i = 0; i < nworkers; i++) {
			pfd[i].fd = got[i] ? -1 : worker_rep[i];
			pfd[i].events = POLLIN;
		}
		n = poll(pfd, nworkers, (int)((deadline - now) /
		    BENCH_NS_PER_MS) + 1);
		if (bench_stop)
			bench_die("interrupted");
		if (n <= 0)
			continue;
		for (unsigned i = 0; i < nworkers; i++) {
			if (got[i] || pfd[i].revents == 0)
				continue;
			if (bench_read_full(worker_rep[i], &r, sizeof r) == -1)
				bench_die("worker %u died", i);
			got[i] = true;
			left--;
			if (!r.ok && sum->ok) {
				sum->ok = 0;
				memcpy(sum->cause, r.cause, sizeof sum->cause);
			}
			sum->open += r.open;
			sum->closed += r.closed;
			sum->sent += r.sent;
			sum->unsent += r.unsent;
			sum->expected += r.expected;
			sum->delivered += r.delivered;
			sum->delivered_measured += r.delivered_measured;
			sum->missing += r.missing;
			sum->duplicates += r.duplicates;
			sum->reordered += r.reordered;
			sum->errors += r.errors;
			sum->send_lag += r.send_lag;
			sum->pings += r.pings;
			sum->pongs += r.pongs;
			sum->cpu_ns += r.cpu_ns;
			sum->wait_ns += r.wait_ns;
			if (r.setup_ns > sum->setup_ns)
				sum->setup_ns = r.setup_ns;
			hist_merge(&sum->lat, &r.lat);
			hist_merge(&sum->ping, &r.ping);
		}
	}
}

/* Runs one set-up command everywhere; returns its duration in ns. */
static uint64_t
bench_setup(uint32_t op, const char *what)
{
	struct worker_cmd cmd = { .op = op };
	static struct worker_report sum;
	/* Generous: the server may take a while to accept thousands. */
	uint64_t deadline = bench_now() + (60 + opts.conns / 100) *
	    BENCH_NS_PER_S;

	bench_note("%s", what);
	bench_command(&cmd);
	bench_collect(deadline, &sum);
	if (!sum.ok)
		bench_die("%s failed: %s (%u connections open)", what,
		    sum.cause, sum.open);
	return sum.setup_ns;
}

/* Resident memory of all the sampled servers, or -1 when one is not
 * known. */
static long
bench_rss_kb(void)
{
	long sum = 0, v;

	if (nserver_pids == 0)
		return -1;
	for (unsigned i = 0; i < nserver_pids; i++) {
		if ((v = proc_rss_kb(server_pids[i])) < 0)
			return -1;
		sum += v;
	}
	return sum;
}

/* Adds up per-server figures; -1 when any of them is unknown. */
static int64_t
bench_sum(const int64_t *v, unsigned n)
{
	int64_t sum = 0;

	if (n == 0)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		if (v[i] < 0)
			return -1;
		sum += v[i];
	}
	return sum;
}

/* One measured stage at the given rate per sender. */
static void
bench_stage(double rate, struct bench_stage *st)
{
	struct worker_cmd cmd = { .op = WORKER_STAGE };
	int64_t cpu0[BENCH_MAX_SERVERS], wait0[BENCH_MAX_SERVERS], cpu1, wait1;
	long rss;
	unsigned i;

	memset(st, 0, sizeof *st);
	st->rate = rate;
	st->duration = opts.duration;
	cmd.rate = opts.senders ? rate : 0;
	cmd.ping_rate = opts.ping_rate / nworkers;
	cmd.t_start = bench_now() + 200 * BENCH_NS_PER_MS;
	cmd.t_measure = cmd.t_start + (uint64_t)(opts.warmup * BENCH_NS_PER_S);
	cmd.t_end = cmd.t_measure + (uint64_t)(opts.duration * BENCH_NS_PER_S);
	cmd.drain_ns = (uint64_t)(opts.drain * BENCH_NS_PER_S);
	bench_note("stage: %g msg/s per sender, %g s warm-up, %g s measured",
	    rate, opts.warmup, opts.duration);
	bench_command(&cmd);

	bench_sleep_until(cmd.t_measure);
	for (i = 0; i < nserver_pids; i++) {
		cpu0[i] = proc_cpu_ns(server_pids[i]);
		wait0[i] = proc_wait_ns(server_pids[i]);
	}
	bench_sleep_until(cmd.t_end);
	st->server_rss_kb = nserver_pids > 0 ? 0 : -1;
	for (i = 0; i < nserver_pids; i++) {
		cpu1 = proc_cpu_ns(server_pids[i]);
		wait1 = proc_wait_ns(server_pids[i]);
		rss = proc_rss_kb(server_pids[i]);
		st->cpu_ns[i] = cpu0[i] >= 0 && cpu1 >= cpu0[i] ?
		    cpu1 - cpu0[i] : -1;
		st->wait_ns[i] = wait0[i] >= 0 && wait1 >= wait0[i] ?
		    wait1 - wait0[i] : -1;
		st->rss_kb[i] = rss;
		if (rss < 0 || st->server_rss_kb < 0)
			st->server_rss_kb = -1;
		else
			st->server_rss_kb += rss;
	}
	st->server_cpu_ns = bench_sum(st->cpu_ns, nserver_pids);
	st->server_wait_ns = bench_sum(st->wait_ns, nserver_pids);

	bench_collect(cmd.t_end + cmd.drain_ns + 30 * BENCH_NS_PER_S, &st->r);
	if (!st->r.ok)
		bench_die("stage failed: %s", st->r.cause);
}

/* Deliveries per second the senders offer: each message goes to every
 * member of its room, the sender included. */
static double
bench_offered(double rate)
{
	double total = 0;
	unsigned per, extra;

	if (opts.rooms == 0)
		return 0;
	per = opts.conns / opts.rooms;
	extra = opts.conns % opts.rooms;
	for (unsigned j = 0; j < opts.senders; j++)
		total += per + (j % opts.rooms < extra);
	return total * rate;
}

static void
kv_reset(void)
{
	nkvs = 0;
}

static void
kv_add(const char *key, bool str, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
kv_add(const char *key, bool str, const char *fmt, ...)
{
	va_list ap;

	if (nkvs == sizeof kvs / sizeof kvs[0])
		return;
	snprintf(kvs[nkvs].key, sizeof kvs[nkvs].key, "%s", key);
	va_start(ap, fmt);
	vsnprintf(kvs[nkvs].val, sizeof kvs[nkvs].val, fmt, ap);
	va_end(ap);
	kvs[nkvs].str = str;
	nkvs++;
}

static void
kv_u(const char *key, uint64_t v)
{
	kv_add(key, false, "%" PRIu64, v);
}

static void
kv_d(const char *key, double v, int decimals)
{
	if (v < 0)
		kv_add(key, false, "-1");
	else
		kv_add(key, false, "%.*f", decimals, v);
}

/* Prints the line: RESULT k=v ... or, with --json, one JSON object. */
static void
kv_print(const char *tag)
{
	if (opts.json) {
		printf("{");
		for (unsigned i = 0; i < nkvs; i++)
			printf("%s\"%s\":%s%s%s", i ? "," : "", kvs[i].key,
			    kvs[i].str ? "\"" : "", kvs[i].val,
			    kvs[i].str ? "\"" : "");
		printf("}\n");
	} else {
		printf("%s", tag);
		for (unsigned i = 0; i < nkvs; i++)
			printf(" %s=%s", kvs[i].key, kvs[i].val);
		printf("\n");
	}
	fflush(stdout);
}

static double
us(uint64_t ns)
{
	return (double)ns / BENCH_NS_PER_US;
}

/* A latency for people: microseconds below 10 ms, else milliseconds. */
static const char *
fmt_lat(char *buf, size_t size, uint64_t ns)
{
	if (ns < 10 * BENCH_NS_PER_MS)
		snprintf(buf, size, "%.0f us", us(ns));
	else
		snprintf(buf, size, "%.1f ms", (double)ns / BENCH_NS_PER_MS);
	return buf;
}

static double
stage_dps(const struct bench_stage *st)
{
	return (double)st->r.delivered_measured / st->duration;
}

static double
stage_server_cpu(const struct bench_stage *st)
{
	if (st->server_cpu_ns < 0)
		return -1;
	return 100.0 * (double)st->server_cpu_ns /
	    (st->duration * BENCH_NS_PER_S);
}

/* CPU time per delivery inside the window: a cost that stays
 * meaningful when other work shares the machine. */
static double
stage_per_delivery(const struct bench_stage *st, int64_t cpu_ns)
{
	if (cpu_ns < 0 || st->r.delivered_measured == 0)
		return -1;
	return (double)cpu_ns / (double)st->r.delivered_measured;
}

static double
stage_server_wait(const struct bench_stage *st)
{
	if (st->server_wait_ns < 0)
		return -1;
	return 100.0 * (double)st->server_wait_ns /
	    (st->duration * BENCH_NS_PER_S);
}

static double
stage_bench_wait(const struct bench_stage *st)
{
	return 100.0 * (double)st->r.wait_ns / (st->duration * BENCH_NS_PER_S);
}

static double
stage_bench_cpu(const struct bench_stage *st)
{
	return 100.0 * (double)st->r.cpu_ns / (st->duration * BENCH_NS_PER_S);
}

/* The keys every workload reports about a stage. */
static void
kv_stage(const struct bench_stage *st, double setup_s)
{
	const struct worker_report *r = &st->r;

	kv_add("workload", true, "%s", bench_names[opts.workload]);
	kv_u("servers", opts.nurls);
	kv_u("conns", opts.conns);
	kv_u("rooms", opts.rooms);
	kv_u("senders", opts.senders);
	kv_d("rate", st->rate, 2);
	kv_u("size", opts.size);
	kv_d("duration", st->duration, 1);
	kv_u("sent", r->sent);
	kv_u("unsent", r->unsent);
	kv_u("expected", r->expected);
	kv_u("delivered", r->delivered);
	kv_d("delivered_per_s", stage_dps(st), 0);
	kv_u("missing", r->missing);
	kv_u("duplicates", r->duplicates);
	kv_u("reordered", r->reordered);
	kv_u("closed", r->closed);
	kv_u("errors", r->errors);
	kv_u("send_lag", r->send_lag);
	kv_d("p50_us", us(hist_quantile(&r->lat, 0.50)), 0);
	kv_d("p99_us", us(hist_quantile(&r->lat, 0.99)), 0);
	kv_d("p999_us", us(hist_quantile(&r->lat, 0.999)), 0);
	kv_d("max_us", us(r->lat.count ? r->lat.max : 0), 0);
	kv_u("ping_n", r->ping.count);
	kv_d("ping_p50_us", us(hist_quantile(&r->ping, 0.50)), 0);
	kv_d("ping_p99_us", us(hist_quantile(&r->ping, 0.99)), 0);
	kv_d("ping_max_us", us(r->ping.count ? r->ping.max : 0), 0);
	kv_d("server_cpu_pct", stage_server_cpu(st), 1);
	kv_add("server_rss_kb", false, "%ld", st->server_rss_kb);
	kv_d("bench_cpu_pct", stage_bench_cpu(st), 1);
	kv_d("server_ns_per_delivery", stage_per_delivery(st,
	    st->server_cpu_ns), 0);
	kv_d("bench_ns_per_delivery", stage_per_delivery(st,
	    (int64_t)st->r.cpu_ns), 0);
	kv_d("server_wait_pct", stage_server_wait(st), 1);
	kv_d("bench_wait_pct", stage_bench_wait(st), 1);
	kv_d("setup_s", setup_s, 2);
}

/* " (N ns per delivery)", or nothing when there were none. */
static const char *
fmt_per(char *buf, size_t size, const struct bench_stage *st, int64_t cpu_ns)
{
	double v = stage_per_delivery(st, cpu_ns);

	if (v < 0)
		buf[0] = '\0';
	else
		snprintf(buf, size, " (%.0f ns per delivery)", v);
	return buf;
}

/* The table for people. */
static void
print_stage(const struct bench_stage *st)
{
	const struct worker_report *r = &st->r;
	char a[32], b[32], c[32], d[32];

	if (opts.json)
		return;
	printf("  sent        %" PRIu64 " messages (warm-up included)",
	    r->sent);
	if (r->unsent > 0)
		printf("; %" PRIu64 " more never left the bench", r->unsent);
	printf("\n");
	printf("  delivered   %" PRIu64 " of %" PRIu64 " expected; %.0f/s "
	    "in the measured window\n", r->delivered, r->expected,
	    stage_dps(st));
	printf("  checks      missing %" PRIu64 ", duplicates %" PRIu64
	    ", reordered %" PRIu64 ", closed %" PRIu32 ", errors %" PRIu64
	    ", late sends %" PRIu64 "\n", r->missing, r->duplicates,
	    r->reordered, r->closed, r->errors, r->send_lag);
	if (r->lat.count > 0)
		printf("  latency     p50 %s, p99 %s, p99.9 %s, max %s "
		    "(%" PRIu64 " deliveries)\n",
		    fmt_lat(a, sizeof a, hist_quantile(&r->lat, 0.5)),
		    fmt_lat(b, sizeof b, hist_quantile(&r->lat, 0.99)),
		    fmt_lat(c, sizeof c, hist_quantile(&r->lat, 0.999)),
		    fmt_lat(d, sizeof d, r->lat.max), r->lat.count);
	if (r->ping.count > 0)
		printf("  ping rtt    p50 %s, p99 %s, max %s (%" PRIu64
		    " of %" PRIu64 " answered)\n",
		    fmt_lat(a, sizeof a, hist_quantile(&r->ping, 0.5)),
		    fmt_lat(b, sizeof b, hist_quantile(&r->ping, 0.99)),
		    fmt_lat(c, sizeof c, r->ping.max), r->pongs, r->pings);
	if (st->server_cpu_ns >= 0)
		printf("  server%s     cpu %.1f%% of one core%s, rss %ld kB; "
		    "waited for a cpu %.1f%% of the time\n",
		    nserver_pids > 1 ? "s" : " ", stage_server_cpu(st),
		    fmt_per(a, sizeof a, st, st->server_cpu_ns),
		    st->server_rss_kb, stage_server_wait(st));
	else
		printf("  server      cpu and rss unknown (no pid)\n");
	for (unsigned i = 0; nserver_pids > 1 && i < nserver_pids; i++) {
		if (st->cpu_ns[i] < 0) {
			printf("    pid %-7d gone\n", (int)server_pids[i]);
			continue;
		}
		printf("    pid %-7d cpu %.1f%%, rss %ld kB; waited %.1f%%\n",
		    (int)server_pids[i], 100.0 * (double)st->cpu_ns[i] /
		    (st->duration * BENCH_NS_PER_S), st->rss_kb[i],
		    st->wait_ns[i] < 0 ? -1.0 : 100.0 *
		    (double)st->wait_ns[i] / (st->duration * BENCH_NS_PER_S));
	}
	printf("  bench       cpu %.1f%% of one core%s, %u process%s; "
	    "waited for a cpu %.1f%%\n", stage_bench_cpu(st), fmt_per(a,
	    sizeof a, st, (int64_t)st->r.cpu_ns), nworkers,
	    nworkers == 1 ? "" : "es", stage_bench_wait(st));
}

static void
print_head(const char *title, double setup_s)
{
	if (opts.json)
		return;
	printf("parley-bench %s: %s\n", bench_names[opts.workload], title);
	if (opts.nurls == 1 && nserver_pids <= 1) {
		printf("  server      ws://%s:%u%s", opts.url[0].host,
		    opts.url[0].port, opts.url[0].path);
		if (nserver_pids == 1)
			printf(" (pid %d)", (int)server_pids[0]);
		printf("\n");
	} else {
		for (unsigned i = 0; i < opts.nurls; i++)
			printf("  %-11s ws://%s:%u%s\n", i == 0 ? "servers" :
			    "", opts.url[i].host, opts.url[i].port,
			    opts.url[i].path);
		printf("  pids       ");
		for (unsigned i = 0; i < nserver_pids; i++)
			printf(" %d", (int)server_pids[i]);
		printf("%s\n", nserver_pids == 0 ? " none given" : "");
		if (opts.nurls > 1)
			printf("  spread      member p of room r on server "
			    "(p + r) mod %u\n", opts.nurls);
	}
	printf("  shape       %u connections, %u rooms, %u senders x %g "
	    "msg/s, %u-byte messages\n", opts.conns, opts.rooms, opts.senders,
	    opts.rate, opts.size);
	printf("  set-up      %.2f s to connect and join\n", setup_s);
	printf("  window      %g s warm-up, %g s measured\n", opts.warmup,
	    opts.duration);
}

/* Connects everyone: rooms are created before the other clients
 * connect, so the room_created broadcasts reach only the creators. */
static double
bench_connect_all(void)
{
	uint64_t t;

	t = bench_setup(WORKER_CREATE, "creating rooms");
	t += bench_setup(WORKER_FILL, "connecting and joining");
	return (double)t / BENCH_NS_PER_S;
}

/* What the sampled servers have written so far (-1: unknown). */
static int64_t
bench_server_written(void)
{
	int64_t sum = 0;

	if (nserver_pids == 0)
		return -1;
	for (unsigned i = 0; i < nserver_pids; i++) {
		int64_t w = proc_written(server_pids[i]);
		if (w < 0)
			return -1;
		sum += w;
	}
	return sum;
}

static int
run_simple(void)
{
	static const char *const titles[] = { [BENCH_W1] = "fan-out",
		[BENCH_W5] = "one large room", [BENCH_CUSTOM] = "custom" };
	struct bench_stage st;
	double setup_s;
	int64_t w0 = bench_server_written(), w1;

	setup_s = bench_connect_all();
	/* What filling the room cost the server in bytes sent: with the
	 * whole member list on every join it grows with the square of the
	 * room's size. */
	w1 = bench_server_written();
	bench_stage(opts.rate, &st);
	print_head(titles[opts.workload], setup_s);
	if (w0 >= 0 && w1 >= 0 && !opts.json)
		printf("  join bytes  %.1f MB written by the server to set up "
		    "(%.0f per connection)\n", (double)(w1 - w0) / 1e6,
		    (double)(w1 - w0) / opts.conns);
	print_stage(&st);
	kv_reset();
	kv_stage(&st, setup_s);
	if (w0 >= 0 && w1 >= 0)
		kv_add("setup_bytes", false, "%lld", (long long)(w1 - w0));
	kv_print("RESULT");
	return st.r.missing == 0 && st.r.closed == 0 && st.r.errors == 0 ?
	    0 : 1;
}

/* W2: W1's shape with the rate stepped up until p99 passes the limit,
 * messages go missing, or deliveries stop rising. */
static int
run_saturation(void)
{
	struct bench_stage st, best;
	double setup_s, rate = opts.rate, prev = 0, dps, p99_ms;
	const char *stop = "steps";
	bool have_best = false, sustained, bench_behind;
	unsigned step;

	setup_s = bench_connect_all();
	if (!opts.json) {
		print_head("saturation", setup_s);
		printf("  %-4s %8s %10s %12s %8s %8s %8s %8s %6s %8s %8s\n",
		    "step", "rate", "offered/s", "delivered/s", "p50_ms",
		    "p99_ms", "max_ms", "missing", "late%", "srv_cpu",
		    "bench");
	}
	memset(&best, 0, sizeof best);
	for (step = 0; step < opts.max_steps; step++) {
		bench_stage(rate, &st);
		dps = stage_dps(&st);
		p99_ms = (double)hist_quantile(&st.r.lat, 0.99) /
		    BENCH_NS_PER_MS;
		if (!opts.json) {
			printf("  %-4u %8.1f %10.0f %12.0f %8.2f %8.2f %8.2f "
			    "%8" PRIu64 " %6.1f %7.1f%% %7.1f%%\n", step + 1,
			    rate, bench_offered(rate), dps,
			    (double)hist_quantile(&st.r.lat, 0.5) /
			    BENCH_NS_PER_MS, p99_ms,
			    (double)st.r.lat.max / BENCH_NS_PER_MS,
			    st.r.missing, st.r.sent ? 100.0 *
			    (double)st.r.send_lag / (double)st.r.sent : 0,
			    stage_server_cpu(&st), stage_bench_cpu(&st));
			fflush(stdout);
		}
		kv_reset();
		kv_add("step", false, "%u", step + 1);
		kv_stage(&st, setup_s);
		kv_d("offered_per_s", bench_offered(rate), 0);
		if (!opts.json)
			kv_print("STEP");
		/* The bench itself fell behind its schedule (more than 5%
		 * of sends late, or some never written): the offered load
		 * was not what the step says, so it cannot count. */
		bench_behind = st.r.send_lag * 20 > st.r.sent ||
		    st.r.unsent > 0;
		/* Sustained: the server kept up with what was offered,
		 * within the latency bound and without loss. */
		sustained = dps >= 0.95 * bench_offered(rate) &&
		    p99_ms <= opts.p99_limit_ms && st.r.missing == 0 &&
		    st.r.closed == 0 && !bench_behind;
		if (sustained && (!have_best || dps > stage_dps(&best))) {
			best = st;
			have_best = true;
		}
		if (p99_ms > opts.p99_limit_ms) {
			stop = "p99";
			break;
		}
		if (st.r.missing > 0 || st.r.closed > 0) {
			stop = "loss";
			break;
		}
		if (step > 0 && dps < prev * 1.05) {
			stop = "plateau";
			break;
		}
		prev = dps;
		rate *= opts.step_factor;
	}
	if (!have_best)
		best = st;
	if (!opts.json) {
		printf("  stopped     %s; highest sustained %.0f deliveries/s at "
		    "%g msg/s per sender\n", stop, stage_dps(&best), best.rate);
		print_stage(&best);
	}
	kv_reset();
	kv_stage(&best, setup_s);
	kv_u("steps", step < opts.max_steps ? step + 1 : step);
	kv_add("stop", true, "%s", stop);
	kv_d("max_sustained_per_s", have_best ? stage_dps(&best) : 0, 0);
	kv_print("RESULT");
	return 0;
}

/* W3 and W4: memory per connection, and for W4 whether the loop still
 * answers quickly while holding them. */
static int
run_many(void)
{
	struct bench_stage st;
	long rss0 = -1, rss1 = -1;
	double setup_s, per_conn = -1;
	uint64_t p99;
	int rc = 0;

	rss0 = bench_rss_kb();
	setup_s = bench_connect_all();
	/* Let the server finish its set-up work (and free what it
	 * allocated only for it) before reading its memory. */
	bench_sleep_until(bench_now() + 2 * BENCH_NS_PER_S);
	rss1 = bench_rss_kb();
	if (rss0 >= 0 && rss1 >= 0)
		per_conn = (double)(rss1 - rss0) * 1024 / opts.conns;
	bench_stage(opts.rate, &st);
	print_head(opts.workload == BENCH_W3 ? "idle memory" :
	    "many connections", setup_s);
	if (!opts.json) {
		printf("  memory      rss %ld kB before, %ld kB with %u "
		    "connections: %.0f bytes each\n", rss0, rss1, opts.conns,
		    per_conn);
		printf("  holding     %u connections open at the end\n",
		    st.r.open);
	}
	print_stage(&st);
	p99 = hist_quantile(&st.r.ping, 0.99);
	kv_reset();
	kv_stage(&st, setup_s);
	kv_u("open", st.r.open);
	kv_add("rss_before_kb", false, "%ld", rss0);
	kv_add("rss_after_kb", false, "%ld", rss1);
	kv_d("rss_per_conn_b", per_conn, 0);
	if (opts.workload == BENCH_W4) {
		kv_u("ping_p99_ok", st.r.ping.count > 0 &&
		    p99 < 10 * BENCH_NS_PER_MS);
		if (st.r.ping.count == 0 || p99 >= 10 * BENCH_NS_PER_MS)
			rc = 1;
	}
	kv_print("RESULT");
	if (st.r.open < opts.conns || st.r.missing > 0)
		rc = 1;
	return rc;
}

static void
usage(FILE *f)
{
	static const char *const lines[] = {
		"usage: parley-bench [options]",
		"  --workload W1|W2|W3|W4|W5|custom  what to run (W1)",
		"  --url ws://ADDR:PORT/ws        a running server (IPv4); give",
		"                                 several (repeat, or a,b) for",
		"                                 a cluster: each room's members",
		"                                 are spread over all of them",
		"  --server PATH                  start this parleyd, port 0",
		"  --server-config FILE           its configuration file",
		"  --server-set 'KEY = VALUE'     add to the temporary one",
		"  --server-pid PID               sample this server (repeat",
		"                                 for a cluster: figures summed)",
		"  --mock                         serve with a minimal stand-in",
		"  --conns N --rooms N --senders N --rate MSG_PER_S",
		"  --size BYTES --duration S --warmup S --drain S",
		"  --procs N                      worker processes",
		"  --src-addrs N                  bind to 127.0.0.2 .. N+1",
		"  --ping-rate N                  JSON pings per second",
		"  --inflight N                   handshakes at once (256)",
		"  --cpu N --server-cpu N         pin the bench, the server",
		"  --p99-limit MS --step-factor F --steps N   W2 (100 1.5 12)",
		"  --json                         one JSON object per result",
		"  --quiet                        no progress messages",
	};

	for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
		fprintf(f, "%s\n", lines[i]);
}

static double
arg_num(const char *name, const char *s, double lo, double hi)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "parley-bench: --%s: want a number from %g to "
		    "%g, not '%s'\n", name, lo, hi, s);
		exit(2);
	}
	return v;
}

/* Parses one ws://ADDR:PORT/PATH (len bytes at url) into u. */
static void
parse_url(const char *url, size_t urllen, struct bench_url *u)
{
	char buf[256], *p, *colon, *slash, *end;
	struct in_addr in;
	unsigned long port;
	size_t len;

	if (urllen >= sizeof buf)
		goto bad;
	memcpy(buf, url, urllen);
	buf[urllen] = '\0';
	if (strncmp(buf, "ws://", 5) != 0)
		goto bad;
	p = buf + 5;
	slash = strchr(p, '/');
	colon = memchr(p, ':', slash ? (size_t)(slash - p) : strlen(p));
	if (colon == NULL)
		goto bad;
	len = (size_t)(colon - p);
	if (len == 0 || len >= sizeof u->host)
		goto bad;
	memcpy(u->host, p, len);
	u->host[len] = '\0';
	if (strcmp(u->host, "localhost") == 0)
		strcpy(u->host, "127.0.0.1");
	if (inet_pton(AF_INET, u->host, &in) != 1)
		goto bad;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno != 0 || port == 0 || port > 65535 || end == colon + 1 ||
	    (*end != '\0' && *end != '/'))
		goto bad;
	u->port = (unsigned)port;
	snprintf(u->path, sizeof u->path, "%s", slash ? slash : "/ws");
	return;
bad:
	fprintf(stderr, "parley-bench: want ws://ADDR:PORT/PATH with a "
	    "numeric IPv4 address, not '%.*s'\n", (int)urllen, url);
	exit(2);
}

/* --url: one URL, or several separated by commas; each adds a server. */
static void
add_urls(const char *arg)
{
	const char *p = arg, *comma;
	size_t len;

	for (;;) {
		comma = strchr(p, ',');
		len = comma ? (size_t)(comma - p) : strlen(p);
		if (opts.nurls == BENCH_MAX_SERVERS) {
			fprintf(stderr, "parley-bench: at most %d servers\n",
			    BENCH_MAX_SERVERS);
			exit(2);
		}
		parse_url(p, len, &opts.url[opts.nurls++]);
		if (comma == NULL)
			break;
		p = comma + 1;
	}
}

static void
pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set) == -1)
		bench_die("sched_setaffinity %d: %s", cpu, strerror(errno));
}

/* Fills what the command line left open from the workload's shape. */
static void
apply_defaults(bool set[])
{
	enum { CONNS, ROOMS, SENDERS, RATE, DURATION, WARMUP, PING, PROCS,
		SRC };
	struct {
		unsigned conns, rooms, senders;
		double rate, duration, warmup, ping;
	} d[] = {
		[BENCH_W1] = { 1000, 10, 50, 20, 10, 3, 20 },
		[BENCH_W2] = { 1000, 10, 50, 20, 5, 1, 20 },
		[BENCH_W3] = { 10000, 100, 0, 0, 5, 1, 0 },
		[BENCH_W4] = { 19000, 190, 10, 20, 10, 2, 1000 },
		[BENCH_W5] = { 5000, 1, 50, 10, 10, 3, 20 },
		[BENCH_CUSTOM] = { 1000, 10, 50, 20, 10, 3, 20 },
	}, *w = &d[opts.workload];

	if (!set[CONNS])
		opts.conns = w->conns;
	if (!set[ROOMS])
		opts.rooms = w->rooms;
	if (!set[SENDERS])
		opts.senders = w->senders;
	if (!set[RATE])
		opts.rate = w->rate;
	if (!set[DURATION])
		opts.duration = w->duration;
	if (!set[WARMUP])
		opts.warmup = w->warmup;
	if (!set[PING])
		opts.ping_rate = w->ping;
	if (!set[PROCS])
		opts.procs = (opts.conns + 9999) / 10000;
	if (opts.procs < 1)
		opts.procs = 1;
	/* Over loopback, 500 clients per source address keeps every
	 * address far from port exhaustion and under the server's default
	 * per-address limit. */
	if (!set[SRC])
		opts.src_addrs = strncmp(opts.url[0].host, "127.", 4) == 0 ?
		    (opts.conns + 499) / 500 : 0;
	if (opts.src_addrs > 250)
		opts.src_addrs = 250;
}

static void
check_opts(void)
{
	const char *why = NULL;

	if (opts.conns == 0)
		why = "--conns must be at least 1";
	else if (opts.rooms > opts.conns)
		why = "more rooms than connections";
	else if (opts.senders > opts.conns)
		why = "more senders than connections";
	else if (opts.senders > 0 && opts.rooms == 0)
		why = "senders need rooms";
	else if (opts.senders > 0 && opts.rate <= 0)
		why = "senders need a --rate";
	else if (opts.procs > BENCH_MAX_PROCS)
		why = "too many --procs";
	else if ((opts.server != NULL) + opts.mock + (opts.nurls > 0) != 1)
		why = "give one of --url, --server and --mock";
	else if (opts.nurls > 1 && opts.rooms > 0 &&
	    opts.conns / opts.rooms < opts.nurls)
		why = "rooms too small to have members on every server";
	if (why != NULL) {
		fprintf(stderr, "parley-bench: %s\n", why);
		exit(2);
	}
}

/* Descriptors: one per connection plus a few; take the hard limit. */
static void
raise_nofile(void)
{
	struct rlimit rl;
	unsigned per = opts.conns / opts.procs + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    per > rl.rlim_cur) {
		fprintf(stderr, "parley-bench: %u connections per process "
		    "exceed the open-file limit %lu; use more --procs\n", per,
		    (unsigned long)rl.rlim_cur);
		exit(2);
	}
}

/* --mock: the stand-in server in a child of its own, pinned like the
 * real one would be; proc_stop ends it like any server. */
static void
start_mock(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof sin;
	int fd, one = 1;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof sin) == -1 ||
	    listen(fd, 4096) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) == -1)
		bench_die("mock listener: %s", strerror(errno));
	fflush(NULL);
	if ((server.pid = fork()) == -1)
		bench_die("fork: %s", strerror(errno));
	if (server.pid == 0) {
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		if (opts.server_cpu >= 0)
			pin(opts.server_cpu);
		mock_main(fd);
	}
	close(fd);
	strcpy(opts.url[0].host, "127.0.0.1");
	opts.url[0].port = ntohs(sin.sin_port);
	strcpy(opts.url[0].path, "/ws");
	opts.nurls = 1;
	server_pids[0] = server.pid;
	nserver_pids = 1;
	bench_note("started the mock server, pid %d, on port %u",
	    (int)server.pid, opts.url[0].port);
}

static void
start_workers(void)
{
	int cmdp[2], repp[2];
	pid_t pid;

	for (unsigned i = 0; i < opts.procs; i++) {
		if (pipe2(cmdp, O_CLOEXEC) == -1 ||
		    pipe2(repp, O_CLOEXEC) == -1)
			bench_die("pipe: %s", strerror(errno));
		fflush(NULL);
		if ((pid = fork()) == -1)
			bench_die("fork: %s", strerror(errno));
		if (pid == 0) {
			/* Only our own ends, so a dead parent or sibling
			 * shows as end of file. */
			for (unsigned j = 0; j < i; j++) {
				close(worker_cmd[j]);
				close(worker_rep[j]);
			}
			close(cmdp[1]);
			close(repp[0]);
			signal(SIGINT, SIG_DFL);
			signal(SIGTERM, SIG_DFL);
			worker_main(&opts, i, cmdp[0], repp[1]);
		}
		close(cmdp[0]);
		close(repp[1]);
		worker_pids[i] = pid;
		worker_cmd[i] = cmdp[1];
		worker_rep[i] = repp[0];
		nworkers++;
	}
}

/* Asks each worker to quit (closing its connections) and reaps it. */
static void
stop_workers(void)
{
	struct worker_cmd quit = { .op = WORKER_QUIT };
	int status;

	for (unsigned i = 0; i < nworkers; i++) {
		bench_write_full(worker_cmd[i], &quit, sizeof quit);
		waitpid(worker_pids[i], &status, 0);
		worker_pids[i] = 0;
	}
}

int
main(int argc, char **argv)
{
	enum { O_WORKLOAD = 256, O_URL, O_SERVER, O_SERVER_CONFIG,
		O_SERVER_PID, O_CONNS, O_ROOMS, O_SENDERS, O_RATE,
		O_DURATION, O_WARMUP, O_DRAIN, O_SIZE, O_PROCS, O_SRC, O_PING,
		O_INFLIGHT, O_CPU, O_SERVER_CPU, O_JSON, O_QUIET, O_P99,
		O_FACTOR, O_STEPS, O_MOCK, O_SERVER_SET };
	static const struct option longopts[] = {
		{ "workload", required_argument, NULL, O_WORKLOAD },
		{ "url", required_argument, NULL, O_URL },
		{ "server", required_argument, NULL, O_SERVER },
		{ "server-config", required_argument, NULL, O_SERVER_CONFIG },
		{ "server-set", required_argument, NULL, O_SERVER_SET },
		{ "server-pid", required_argument, NULL, O_SERVER_PID },
		{ "mock", no_argument, NULL, O_MOCK },
		{ "conns", required_argument, NULL, O_CONNS },
		{ "rooms", required_argument, NULL, O_ROOMS },
		{ "senders", required_argument, NULL, O_SENDERS },
		{ "rate", required_argument, NULL, O_RATE },
		{ "duration", required_argument, NULL, O_DURATION },
		{ "warmup", required_argument, NULL, O_WARMUP },
		{ "drain", required_argument, NULL, O_DRAIN },
		{ "size", required_argument, NULL, O_SIZE },
		{ "procs", required_argument, NULL, O_PROCS },
		{ "src-addrs", required_argument, NULL, O_SRC },
		{ "ping-rate", required_argument, NULL, O_PING },
		{ "inflight", required_argument, NULL, O_INFLIGHT },
		{ "cpu", required_argument, NULL, O_CPU },
		{ "server-cpu", required_argument, NULL, O_SERVER_CPU },
		{ "json", no_argument, NULL, O_JSON },
		{ "quiet", no_argument, NULL, O_QUIET },
		{ "p99-limit", required_argument, NULL, O_P99 },
		{ "step-factor", required_argument, NULL, O_FACTOR },
		{ "steps", required_argument, NULL, O_STEPS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	/* Which shape options were given, in apply_defaults' order. */
	bool set[9] = { false };
	struct sigaction sa;
	char cause[256];
	int ch, rc = 1;
	unsigned i;

	opts.workload = BENCH_W1;
	opts.size = 64;
	opts.drain = 5;
	opts.inflight = 256;
	opts.cpu = opts.server_cpu = -1;
	opts.p99_limit_ms = 100;
	opts.step_factor = 1.5;
	opts.max_steps = 12;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case O_WORKLOAD:
			for (i = 0; i <= BENCH_CUSTOM; i++) {
				if (strcasecmp(optarg, bench_names[i]) == 0)
					break;
			}
			if (i > BENCH_CUSTOM) {
				fprintf(stderr, "parley-bench: unknown "
				    "workload: %s\n", optarg);
				return 2;
			}
			opts.workload = (enum bench_workload)i;
			break;
		case O_URL:
			add_urls(optarg);
			break;
		case O_SERVER:
			opts.server = optarg;
			break;
		case O_SERVER_SET:
			if (opts.nserver_set == sizeof opts.server_set /
			    sizeof opts.server_set[0]) {
				fprintf(stderr, "parley-bench: too many "
				    "--server-set\n");
				return 2;
			}
			opts.server_set[opts.nserver_set++] = optarg;
			break;
		case O_MOCK:
			opts.mock = true;
			break;
		case O_SERVER_CONFIG:
			opts.server_config = optarg;
			break;
		case O_SERVER_PID:
			if (opts.nserver_pids == BENCH_MAX_SERVERS) {
				fprintf(stderr, "parley-bench: at most %d "
				    "--server-pid\n", BENCH_MAX_SERVERS);
				return 2;
			}
			opts.server_pid[opts.nserver_pids++] = (pid_t)arg_num(
			    "server-pid", optarg, 1, 1 << 22);
			break;
		case O_CONNS:
			opts.conns = (unsigned)arg_num("conns", optarg, 1, 1e6);
			set[0] = true;
			break;
		case O_ROOMS:
			opts.rooms = (unsigned)arg_num("rooms", optarg, 0, 1e5);
			set[1] = true;
			break;
		case O_SENDERS:
			opts.senders = (unsigned)arg_num("senders", optarg, 0,
			    1e6);
			set[2] = true;
			break;
		case O_RATE:
			opts.rate = arg_num("rate", optarg, 0, 1e6);
			set[3] = true;
			break;
		case O_DURATION:
			opts.duration = arg_num("duration", optarg, 0.1, 86400);
			set[4] = true;
			break;
		case O_WARMUP:
			opts.warmup = arg_num("warmup", optarg, 0, 86400);
			set[5] = true;
			break;
		case O_DRAIN:
			opts.drain = arg_num("drain", optarg, 0, 3600);
			break;
		case O_SIZE:
			opts.size = (unsigned)arg_num("size", optarg,
			    BENCH_TEXT_MIN, 60000);
			break;
		case O_PROCS:
			opts.procs = (unsigned)arg_num("procs", optarg, 1,
			    BENCH_MAX_PROCS);
			set[7] = true;
			break;
		case O_SRC:
			opts.src_addrs = (unsigned)arg_num("src-addrs", optarg,
			    0, 250);
			set[8] = true;
			break;
		case O_PING:
			opts.ping_rate = arg_num("ping-rate", optarg, 0, 1e6);
			set[6] = true;
			break;
		case O_INFLIGHT:
			opts.inflight = (unsigned)arg_num("inflight", optarg, 1,
			    100000);
			break;
		case O_CPU:
			opts.cpu = (int)arg_num("cpu", optarg, 0, 4095);
			break;
		case O_SERVER_CPU:
			opts.server_cpu = (int)arg_num("server-cpu", optarg, 0,
			    4095);
			break;
		case O_JSON:
			opts.json = true;
			break;
		case O_QUIET:
			opts.quiet = true;
			break;
		case O_P99:
			opts.p99_limit_ms = arg_num("p99-limit", optarg, 0.001,
			    1e6);
			break;
		case O_FACTOR:
			opts.step_factor = arg_num("step-factor", optarg, 1.01,
			    100);
			break;
		case O_STEPS:
			opts.max_steps = (unsigned)arg_num("steps", optarg, 1,
			    1000);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (opts.nurls == 0 && opts.server == NULL && !opts.mock) {
		fprintf(stderr, "parley-bench: give --url, --server or "
		    "--mock\n");
		return 2;
	}
	if (opts.server != NULL || opts.mock) {
		/* The server's port is only known once it runs: check the
		 * shape first, with a placeholder address. */
		strcpy(opts.url[0].host, "127.0.0.1");
	}
	apply_defaults(set);
	check_opts();
	raise_nofile();
	snprintf(opts.tag, sizeof opts.tag, "pb%x-%" PRIx64, (unsigned)getpid(),
	    bench_now() % 0xffffff);

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = bench_on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (opts.server != NULL) {
		if (proc_start(&server, opts.server, opts.server_config,
		    opts.server_set, opts.nserver_set, opts.conns,
		    opts.server_cpu, cause, sizeof cause) == -1)
			bench_die("%s: %s", opts.server, cause);
		snprintf(opts.url[0].host, sizeof opts.url[0].host, "%s",
		    server.addr);
		opts.url[0].port = server.port;
		strcpy(opts.url[0].path, "/ws");
		opts.nurls = 1;
		server_pids[0] = server.pid;
		nserver_pids = 1;
		bench_note("started %s, pid %d, on %s:%u", opts.server,
		    (int)server.pid, server.addr, server.port);
	}
	if (opts.mock)
		start_mock();
	if (opts.nserver_pids > 0) {
		memcpy(server_pids, opts.server_pid, sizeof server_pids);
		nserver_pids = opts.nserver_pids;
	}
	if (opts.cpu >= 0)
		pin(opts.cpu);
	start_workers();

	switch (opts.workload) {
	case BENCH_W1:
	case BENCH_W5:
	case BENCH_CUSTOM:
		rc = run_simple();
		break;
	case BENCH_W2:
		rc = run_saturation();
		break;
	case BENCH_W3:
	case BENCH_W4:
		rc = run_many();
		break;
	}

	stop_workers();
	bench_cleanup();
	return rc;
}
