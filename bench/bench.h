/*
 * bench.h: the load generator's shared header, one section per source
 * file. parley-bench is a client of its own: it shares no code with the
 * daemon, so a bug in the server's codec cannot hide behind the same bug
 * in the tool that measures it.
 */
#ifndef BENCH_H
#define BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BENCH_NS_PER_S 1000000000ULL
#define BENCH_NS_PER_MS 1000000ULL
#define BENCH_NS_PER_US 1000ULL

/* Message text layout: 'T', 16 hex digits of the send time
 * (CLOCK_MONOTONIC ns), 'S', 8 hex digits of the sender, 'N', 8 hex digits
 * of the sender's counter, then padding up to the configured size. */
#define BENCH_TEXT_MIN 35

enum bench_workload {
	BENCH_W1,
	BENCH_W2,
	BENCH_W3,
	BENCH_W4,
	BENCH_W5,
	BENCH_CUSTOM,
};

/* Servers of one cluster the bench spreads its connections over. */
#define BENCH_MAX_SERVERS 16

/* One server's WebSocket endpoint. */
struct bench_url {
	char host[64];        /* numeric IPv4 address */
	unsigned port;
	char path[128];       /* "/ws" */
};

/* Everything a run is told on the command line. */
struct bench_opts {
	enum bench_workload workload;
	struct bench_url url[BENCH_MAX_SERVERS]; /* --url, in order */
	unsigned nurls;       /* 1 unless a cluster */
	const char *server;   /* parleyd to start, or NULL */
	const char *server_config; /* config file for it, or NULL */
	bool mock;            /* serve with mock.c instead */
	const char *server_set[16]; /* lines added to its configuration */
	size_t nserver_set;
	pid_t server_pid[BENCH_MAX_SERVERS]; /* servers to sample */
	unsigned nserver_pids;
	unsigned conns;
	unsigned rooms;
	unsigned senders;
	double rate;          /* messages per second per sender */
	double duration;      /* measured seconds per stage */
	double warmup;        /* seconds before measuring */
	double drain;         /* seconds to wait for stragglers */
	unsigned size;        /* message text bytes */
	unsigned procs;       /* worker processes */
	unsigned src_addrs;   /* spread over 127.0.0.2..; 0: no bind */
	double ping_rate;     /* JSON pings per second, all workers */
	unsigned inflight;    /* handshakes at once per worker */
	int cpu;              /* -1: not pinned */
	int server_cpu;
	bool json;
	bool quiet;
	double p99_limit_ms;  /* W2 stops past this */
	double step_factor;   /* W2 rate multiplier per step */
	unsigned max_steps;
	char tag[24];         /* room name prefix, unique per run */
};

/* The server connection i talks to: member p of room r (connection i is
 * member i / rooms of room i % rooms) goes to url (p + r) % nurls, so every
 * room with at least nurls members has some on every server, and the
 * rooms' creators and senders are spread evenly over the servers. */
static inline unsigned
bench_url_index(const struct bench_opts *o, uint32_t i)
{
	if (o->nurls <= 1)
		return 0;
	if (o->rooms == 0)
		return i % o->nurls;
	return (i / o->rooms + i % o->rooms) % o->nurls;
}

/* hist.c: log-linear latency histogram, in nanoseconds. Values below
 * HIST_SUB are exact; above, each power of two is cut into HIST_SUB
 * linear buckets, so any reported quantile is within about 3%. */
#define HIST_SUB_BITS 5
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB)
struct hist {
	uint64_t count;
	uint64_t min;
	uint64_t max;
	uint64_t b[HIST_BUCKETS];
};
void hist_init(struct hist *h);
void hist_merge(struct hist *to, const struct hist *from);
/* The value at quantile q (0..1): the top of its bucket, never above
 * max; 0 when empty. */
uint64_t hist_quantile(const struct hist *h, double q);

static inline unsigned
hist_index(uint64_t v)
{
	unsigned e;

	if (v < HIST_SUB)
		return (unsigned)v;
	e = 63 - (unsigned)__builtin_clzll(v);
	return (e - HIST_SUB_BITS + 1) * HIST_SUB +
	    (unsigned)((v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1));
}

/* Inline: called once per delivery. */
static inline void
hist_add(struct hist *h, uint64_t v)
{
	h->b[hist_index(v)]++;
	h->count++;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

/* wsc.c: the client side of RFC 6455 on buffers; no I/O */
#define WSC_OP_CONT 0x0
#define WSC_OP_TEXT 0x1
#define WSC_OP_BINARY 0x2
#define WSC_OP_CLOSE 0x8
#define WSC_OP_PING 0x9
#define WSC_OP_PONG 0xA
#define WSC_MAX_HEADER 14 /* client frames: 64-bit length plus mask */

struct wsc_frame {
	int opcode;
	bool fin;
	const uint8_t *payload;
	size_t len;
};
/* Writes the upgrade request into out (size bytes); returns its length. */
size_t wsc_request(char *out, size_t size, const char *host, unsigned port,
    const char *path);
/* Checks the server's answer in buf. Returns the length of the response
 * head once it is complete and is a valid 101, 0 while more is needed, -1
 * when it is something else (*cause then says what). */
ssize_t wsc_response(const char *buf, size_t len, const char **cause);
/* Decodes one server frame at buf. Returns the whole frame's length and
 * fills f, 0 when more bytes are needed (*need is then the total wanted
 * when known, else 0), -1 on a framing error. */
ssize_t wsc_parse(const uint8_t *buf, size_t len, struct wsc_frame *f,
    size_t *need);
/* Writes a masked frame (FIN set) into out, which has room for
 * WSC_MAX_HEADER + len bytes; returns its length. */
size_t wsc_frame(uint8_t *out, int opcode, const void *payload, size_t len,
    uint32_t mask);

/* proc.c: the server process: start, stop, CPU and memory from /proc */
struct proc_server {
	pid_t pid;
	char dir[64];   /* temporary directory, "" when none */
	char addr[64];
	unsigned port;
};
/* Starts parleyd with a temporary (or the given) configuration on port 0
 * and reads back the port; the nextra lines of extra are appended to a
 * temporary configuration. Returns 0, or -1 with cause filled in. */
int proc_start(struct proc_server *s, const char *binary,
    const char *config, const char *const *extra, size_t nextra,
    unsigned conns, int cpu, char *cause, size_t causelen);
/* Stops the server started by proc_start and removes its directory. */
void proc_stop(struct proc_server *s);
/* CPU time (user plus system) of pid in nanoseconds, or -1. */
int64_t proc_cpu_ns(pid_t pid);
/* Time pid's threads spent runnable but not running (the kernel's
 * schedstat), in nanoseconds, or -1: a busy machine shows here. */
int64_t proc_wait_ns(pid_t pid);
/* Resident set size of pid in KiB, or -1. */
long proc_rss_kb(pid_t pid);
/* Bytes the process has written to files and sockets (wchar of
 * /proc/PID/io); -1 when unknown. */
int64_t proc_written(pid_t pid);

/* mock.c: a minimal stand-in server, to measure the bench itself */
/* Serves parley-bench's traffic on listen_fd forever. */
void mock_main(int listen_fd) __attribute__((noreturn));

/* worker.c: one load-generating process and its epoll loop */
enum worker_op {
	WORKER_CREATE = 1, /* connect the rooms' creators, create rooms */
	WORKER_FILL,       /* connect every other client, join rooms */
	WORKER_STAGE,      /* send and receive for one measured stage */
	WORKER_QUIT,
};
/* Parent to worker; small enough to be written atomically. */
struct worker_cmd {
	uint32_t op;
	double rate;          /* per sender */
	double ping_rate;     /* this worker's share */
	uint64_t t_start;     /* CLOCK_MONOTONIC ns: senders start */
	uint64_t t_measure;   /* warm-up over */
	uint64_t t_end;       /* senders stop */
	uint64_t drain_ns;    /* longest wait for stragglers */
};
/* Worker to parent, once per command. */
struct worker_report {
	uint32_t op;
	int32_t ok;           /* 0 on failure; cause says why */
	char cause[160];
	uint32_t open;        /* connections open at the end */
	uint32_t closed;      /* connections lost (stage) */
	uint64_t sent;        /* send_message frames the kernel took */
	uint64_t unsent;      /* queued but never written */
	uint64_t expected;    /* sent times members, less refused sends */
	uint64_t delivered;   /* new_message frames received */
	uint64_t delivered_measured; /* of those, inside the window */
	uint64_t missing;     /* gaps in seq and tails never received */
	uint64_t duplicates;
	uint64_t reordered;   /* seq lower than the next expected */
	uint64_t errors;      /* error replies */
	uint64_t send_lag;    /* sends more than 10 ms behind schedule */
	uint64_t pings;       /* pings sent inside the window */
	uint64_t pongs;
	uint64_t cpu_ns;      /* this process, inside the window */
	uint64_t wait_ns;     /* runnable but not running, likewise */
	uint64_t setup_ns;    /* time the command took */
	struct hist lat;      /* send to receive, for sends in the window */
	struct hist ping;     /* ping to pong */
};
/* Runs worker number id of opts->procs until WORKER_QUIT; reads commands
 * from cmd_fd, writes one report per command to rep_fd. Never returns. */
void worker_main(const struct bench_opts *opts, unsigned id, int cmd_fd,
    int rep_fd) __attribute__((noreturn));

/* parley-bench.c */
uint64_t bench_now(void);
/* Reads or writes exactly len bytes, retrying on EINTR; -1 on error or
 * end of file. */
int bench_read_full(int fd, void *buf, size_t len);
int bench_write_full(int fd, const void *buf, size_t len);

#endif
