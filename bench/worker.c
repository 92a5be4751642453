/*
 * worker.c: one load-generating process. It owns a share of the rooms and
 * every connection in them, drives them from one epoll loop (connect,
 * upgrade, join, send at a fixed rate, receive and check), and answers the
 * parent's commands with a report. A room never spans two workers, so the
 * sender and every receiver of a message live in the same process and the
 * per-room sequence check needs no sharing. With several servers (a
 * cluster) a room's members are spread over all of them, so every message
 * has to cross from one server to the others to reach its room.
 *
 * The receive path is the hot one: what it costs per delivery must stay
 * small beside what the kernel costs. Reads go into one large buffer shared
 * by all connections (a connection keeps only the tail of a partial
 * frame), frames are decoded in place, and a new_message is never parsed
 * as JSON: the timestamp sits at a known offset inside the message text
 * and seq is the last field, read backwards from the closing brace.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define WORKER_RBUF (256 * 1024) /* one read takes many frames */
#define WORKER_EVENTS 1024
#define WORKER_QUIET_NS (2 * BENCH_NS_PER_S)
#define WORKER_LAG_NS (10 * BENCH_NS_PER_MS)
/* A cluster learns of a new room a moment after its creator has it: a
 * join on another server that comes too early is tried again. */
#define WORKER_JOIN_RETRY_NS (100 * BENCH_NS_PER_MS)
#define WORKER_JOIN_TRIES 100

/* The fixed head of every new_message the server sends (jansson keeps
 * insertion order); anything else takes the slow path. */
#define NEWMSG_HEAD "{\"type\":\"new_message\",\"roomName\":\""
#define NEWMSG_TEXT "\",\"message\":\"T"
#define PONG_HEAD "{\"type\":\"pong\""

enum conn_state {
	CONN_NEW,        /* not started */
	CONN_CONNECTING, /* TCP handshake under way */
	CONN_UPGRADING,  /* request sent, waiting for 101 */
	CONN_WELCOME,    /* waiting for the welcome frame */
	CONN_JOINING,    /* create_room or join_room sent */
	CONN_READY,      /* in its room (or in none, by design) */
	CONN_CLOSED,
};

struct wroom;

struct conn {
	int fd;
	uint8_t state;
	bool creator;     /* creates its room rather than joining */
	bool dirty;       /* on the flush list */
	bool pollout;     /* EPOLLOUT is registered */
	uint8_t srv;      /* index of its server in opts->url */
	uint8_t join_tries; /* joins refused with room_not_found */
	uint32_t idx;     /* global connection number */
	uint32_t mask;    /* masking key for every frame we send */
	struct wroom *room;
	uint64_t next_seq; /* seq expected next in the room */
	uint64_t window;   /* bit i: seq next_seq - 1 - i was received */
	uint64_t ping_sent; /* ns of the outstanding ping, 0 if none */
	uint8_t *in;      /* tail of a partial frame, between reads */
	size_t in_len, in_cap, in_need;
	uint8_t *out;     /* bytes not yet written */
	size_t out_off, out_len, out_cap;
	uint64_t out_queued, out_written; /* totals since the start */
	struct sender *sender; /* when it sends messages */
	struct conn *next_dirty;
};

struct wroom {
	char name[64];
	size_t name_len;
	size_t text_off;   /* offset of 'T' in this room's new_message */
	struct conn **members; /* creator first */
	uint32_t n;
	bool created;
	uint64_t jr_expect, jr_seen; /* joined_room frames during set-up */
	uint64_t sent, rejected;     /* written to the socket; refused */
	uint64_t stage_sent, stage_rejected; /* values at stage start */
};

struct sender {
	struct conn *c;
	uint32_t id;      /* global sender number */
	uint32_t count;
	uint64_t next;    /* ns the next message is due */
	char *payload;    /* the send_message JSON, text patched per send */
	size_t len;
	size_t text_off;  /* offset of the text inside payload */
	/* Where each queued message ends in the connection's output
	 * (out_queued totals): a message counts as sent only once the
	 * kernel has all of it, so a server that stops reading does not
	 * make the bench expect messages it never got. */
	uint64_t *ends;
	size_t ends_head, ends_len, ends_cap;
};

static struct {
	const struct bench_opts *o;
	unsigned id;
	int ep, cmd_fd, rep_fd;

	struct conn *conns;
	uint32_t nconns;
	struct wroom *rooms;
	uint32_t nrooms;
	struct sender *senders;
	uint32_t nsenders;

	uint8_t *rbuf;
	size_t rcap;
	struct conn *dirty;
	char request[BENCH_MAX_SERVERS][512]; /* upgrade, per server */
	size_t request_len[BENCH_MAX_SERVERS];
	struct conn **rejoin; /* joins to try again at rejoin_at */
	uint32_t nrejoin;
	uint64_t rejoin_at;
	uint64_t rng;

	/* set-up */
	uint32_t op;       /* command being carried out, 0 when none */
	uint64_t op_start;
	uint32_t *queue;   /* connections still to start */
	uint32_t qhead, qlen;
	uint32_t inflight;
	uint32_t ready;
	uint64_t last_rx;
	bool failed;
	unsigned closes_told;

	/* stage */
	struct worker_cmd cmd;
	bool sending;
	bool measuring_started;
	uint64_t t_measure, t_end; /* UINT64_MAX outside a stage */
	uint64_t interval; /* ns between one sender's messages */
	uint64_t ping_iv, next_ping;
	uint32_t ping_rr;
	uint64_t ping_id;
	uint64_t cpu0;
	int64_t wait0;
	uint64_t last_check; /* of worker_caught_up, while draining */

	struct worker_report rep;
} wk;

static void conn_close(struct conn *, const char *);

static uint64_t
worker_rand(void)
{
	/* xorshift64: masking keys need no quality, only variety. */
	wk.rng ^= wk.rng << 13;
	wk.rng ^= wk.rng >> 7;
	wk.rng ^= wk.rng << 17;
	return wk.rng;
}

static uint64_t
worker_cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) *
	    BENCH_NS_PER_S + (uint64_t)(ru.ru_utime.tv_usec +
	    ru.ru_stime.tv_usec) * 1000;
}

/* Marks the current set-up command failed; the report goes out at once. */
static void
worker_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
worker_fail(const char *fmt, ...)
{
	va_list ap;

	if (wk.failed)
		return;
	wk.failed = true;
	va_start(ap, fmt);
	vsnprintf(wk.rep.cause, sizeof wk.rep.cause, fmt, ap);
	va_end(ap);
}

/* Makes room for len more bytes of output. */
static uint8_t *
conn_reserve(struct conn *c, size_t len)
{
	if (c->out_off > 0 && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + len > c->out_cap) {
		if (c->out_off > 0) {
			memmove(c->out, c->out + c->out_off,
			    c->out_len - c->out_off);
			c->out_len -= c->out_off;
			c->out_off = 0;
		}
		while (c->out_len + len > c->out_cap)
			c->out_cap = c->out_cap ? c->out_cap * 2 : 512;
		if ((c->out = realloc(c->out, c->out_cap)) == NULL)
			abort();
	}
	return c->out + c->out_len;
}

static void
conn_mark_dirty(struct conn *c)
{
	if (!c->dirty) {
		c->dirty = true;
		c->next_dirty = wk.dirty;
		wk.dirty = c;
	}
}

/* Queues one masked frame; written by the flush at the end of the loop
 * iteration, so everything a connection has to say goes out in one
 * write. */
static void
conn_send(struct conn *c, int opcode, const void *payload, size_t len)
{
	uint8_t *p;
	size_t n;

	if (c->state == CONN_CLOSED)
		return;
	p = conn_reserve(c, WSC_MAX_HEADER + len);
	n = wsc_frame(p, opcode, payload, len, c->mask);
	c->out_len += n;
	c->out_queued += n;
	conn_mark_dirty(c);
}

static void
conn_send_text(struct conn *c, const char *text)
{
	conn_send(c, WSC_OP_TEXT, text, strlen(text));
}

static void
conn_set_pollout(struct conn *c, bool on)
{
	struct epoll_event ev;

	if (c->pollout == on)
		return;
	ev.events = EPOLLIN | (on ? EPOLLOUT : 0);
	ev.data.ptr = c;
	if (epoll_ctl(wk.ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->pollout = on;
}

/* Counts the messages the kernel now has in full. */
static void
sender_written(struct sender *s)
{
	while (s->ends_len > 0 && s->ends[s->ends_head] <= s->c->out_written) {
		s->ends_head = (s->ends_head + 1) % s->ends_cap;
		s->ends_len--;
		s->c->room->sent++;
		wk.rep.sent++;
	}
}

static void
conn_flush(struct conn *c)
{
	ssize_t n;

	while (c->out_off < c->out_len) {
		n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
		    MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			conn_set_pollout(c, true);
			return;
		}
		if (n <= 0) {
			conn_close(c, "write failed");
			return;
		}
		c->out_off += (size_t)n;
		c->out_written += (size_t)n;
		if (c->sender != NULL)
			sender_written(c->sender);
	}
	c->out_off = c->out_len = 0;
	conn_set_pollout(c, false);
}

static void
worker_flush(void)
{
	struct conn *c;

	while ((c = wk.dirty) != NULL) {
		wk.dirty = c->next_dirty;
		c->dirty = false;
		if (c->state != CONN_CLOSED && c->state != CONN_CONNECTING)
			conn_flush(c);
	}
}

/* One connection less in set-up (it is in place, or it failed). */
static void
worker_setup_left(void)
{
	if (wk.inflight > 0)
		wk.inflight--;
}

static void
conn_close(struct conn *c, const char *why)
{
	bool setup = c->state != CONN_READY;

	if (c->state == CONN_CLOSED)
		return;
	if (setup)
		worker_setup_left();
	else if (wk.ready > 0)
		wk.ready--;
	epoll_ctl(wk.ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->state = CONN_CLOSED;
	free(c->in);
	free(c->out);
	c->in = c->out = NULL;
	if (c->sender != NULL) {
		/* Its queued messages die with it. */
		wk.rep.unsent += c->sender->ends_len;
		c->sender->ends_len = 0;
	}
	c->in_len = c->in_cap = c->out_len = c->out_cap = c->out_off = 0;
	wk.rep.closed++;
	if (wk.op == WORKER_CREATE || wk.op == WORKER_FILL)
		worker_fail("connection %u: %s", c->idx, why);
	else if (!wk.o->quiet && !wk.o->json && wk.closes_told++ < 5)
		fprintf(stderr, "parley-bench: connection %u closed: %s%s\n",
		    c->idx, why, wk.closes_told == 5 ? " (and so on)" : "");
}

/* Opens connection c without waiting for the TCP handshake. */
static void
conn_start(struct conn *c)
{
	const struct bench_url *u = &wk.o->url[c->srv];
	struct sockaddr_in sin;
	struct epoll_event ev;
	int one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (c->fd == -1) {
		worker_fail("socket: %s", strerror(errno));
		c->state = CONN_CLOSED;
		return;
	}
	/* We batch our own writes; Nagle would only add latency. */
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (wk.o->src_addrs > 0) {
		/* One source address only has ~28,000 ephemeral ports for
		 * a given server address; spread over 127.0.0.2 and up, and
		 * let connect() pick the port for the whole 4-tuple. */
		setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
		    sizeof one);
		memset(&sin, 0, sizeof sin);
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(0x7f000002u +
		    c->idx % wk.o->src_addrs);
		if (bind(c->fd, (struct sockaddr *)&sin, sizeof sin) == -1) {
			worker_fail("bind 127.0.0.%u: %s",
			    2 + c->idx % wk.o->src_addrs, strerror(errno));
			close(c->fd);
			c->state = CONN_CLOSED;
			return;
		}
	}
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)u->port);
	inet_pton(AF_INET, u->host, &sin.sin_addr);
	if (connect(c->fd, (struct sockaddr *)&sin, sizeof sin) == -1 &&
	    errno != EINPROGRESS) {
		worker_fail("connect %s:%u: %s", u->host, u->port,
		    strerror(errno));
		close(c->fd);
		c->state = CONN_CLOSED;
		return;
	}
	c->state = CONN_CONNECTING;
	c->pollout = true;
	ev.events = EPOLLIN | EPOLLOUT;
	ev.data.ptr = c;
	epoll_ctl(wk.ep, EPOLL_CTL_ADD, c->fd, &ev);
	wk.inflight++;
}

/* The TCP handshake finished: send the upgrade request. */
static void
conn_connected(struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof err;

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 ||
	    err != 0) {
		conn_close(c, err ? strerror(err) : "connect failed");
		return;
	}
	c->state = CONN_UPGRADING;
	memcpy(conn_reserve(c, wk.request_len[c->srv]), wk.request[c->srv],
	    wk.request_len[c->srv]);
	c->out_len += wk.request_len[c->srv];
	conn_flush(c);
}

/* Reads a decimal number at p (up to end); returns it, or UINT64_MAX. */
static uint64_t
worker_parse_dec(const uint8_t *p, const uint8_t *end)
{
	uint64_t v = 0;

	if (p >= end || *p < '0' || *p > '9')
		return UINT64_MAX;
	while (p < end && *p >= '0' && *p <= '9')
		v = v * 10 + (uint64_t)(*p++ - '0');
	return v;
}

/* seq of a new_message: the last field, so read it backwards from the
 * closing brace; fall back to a search if the layout ever changes. */
static uint64_t
worker_seq(const uint8_t *p, size_t n)
{
	const uint8_t *end = p + n - 1, *q;

	if (n > 8 && *end == '}') {
		q = end;
		while (q > p && q[-1] >= '0' && q[-1] <= '9')
			q--;
		if (q - p > 6 && memcmp(q - 6, "\"seq\":", 6) == 0)
			return worker_parse_dec(q, end);
	}
	q = memmem(p, n, "\"seq\":", 6);
	if (q == NULL)
		return UINT64_MAX;
	return worker_parse_dec(q + 6, p + n);
}

static const uint8_t worker_hexval[256] = {
	['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6,
	['6'] = 7, ['7'] = 8, ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12,
	['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
}; /* digit value plus one; 0 is not a digit */

/* The send time inside a message text at p ("T" and 16 hex digits);
 * 0 when it is not one of ours. */
static uint64_t
worker_text_ts(const uint8_t *p, const uint8_t *end)
{
	uint64_t v = 0;
	unsigned d;

	if (end - p < 17 || *p != 'T')
		return 0;
	for (int i = 1; i <= 16; i++) {
		if ((d = worker_hexval[p[i]]) == 0)
			return 0;
		v = v << 4 | (d - 1);
	}
	return v;
}

/* Counts one new_message: latency, window and the room's seq order. */
static void
conn_deliver(struct conn *c, const uint8_t *p, size_t n, uint64_t now)
{
	struct wroom *r = c->room;
	const uint8_t *t;
	uint64_t seq, ts, d;

	wk.rep.delivered++;
	if (now >= wk.t_measure && now < wk.t_end)
		wk.rep.delivered_measured++;

	if (r != NULL && n > r->text_off + 17 &&
	    memcmp(p + r->text_off - (sizeof NEWMSG_TEXT - 1) + 1,
	    NEWMSG_TEXT, sizeof NEWMSG_TEXT - 2) == 0)
		t = p + r->text_off;
	else if ((t = memmem(p, n, "\"message\":\"T", 12)) != NULL)
		t += 11;
	ts = t != NULL ? worker_text_ts(t, p + n) : 0;
	if (ts >= wk.t_measure && ts < wk.t_end && now >= ts)
		hist_add(&wk.rep.lat, now - ts);

	if (r == NULL || (seq = worker_seq(p, n)) == UINT64_MAX) {
		wk.rep.errors++;
		return;
	}
	if (seq >= c->next_seq) {
		/* In order, or past a gap whose messages count as missing
		 * until they turn up. */
		wk.rep.missing += seq - c->next_seq;
		d = seq + 1 - c->next_seq;
		c->window = (d >= 64 ? 0 : c->window << d) | 1;
		c->next_seq = seq + 1;
		return;
	}
	d = c->next_seq - 1 - seq;
	if (d < 64 && (c->window & (1ULL << d))) {
		wk.rep.duplicates++;
		return;
	}
	/* Late: it was counted missing when the gap opened. */
	wk.rep.reordered++;
	if (d < 64) {
		c->window |= 1ULL << d;
		if (wk.rep.missing > 0)
			wk.rep.missing--;
	}
}

static void
conn_pong(struct conn *c, uint64_t now)
{
	if (c->ping_sent == 0)
		return;
	if (c->ping_sent >= wk.t_measure && c->ping_sent < wk.t_end) {
		hist_add(&wk.rep.ping, now - c->ping_sent);
		wk.rep.pongs++;
	}
	c->ping_sent = 0;
}

/* Copies the string value of "key" in a JSON text into out (for
 * messages seen during set-up, where speed does not matter). */
static bool
worker_field(const uint8_t *p, size_t n, const char *key, char *out,
    size_t size)
{
	char pat[40];
	const uint8_t *v, *e;
	size_t len;

	snprintf(pat, sizeof pat, "\"%s\":\"", key);
	if ((v = memmem(p, n, pat, strlen(pat))) == NULL)
		return false;
	v += strlen(pat);
	if ((e = memchr(v, '"', (size_t)(p + n - v))) == NULL)
		return false;
	len = (size_t)(e - v);
	if (len >= size)
		len = size - 1;
	memcpy(out, v, len);
	out[len] = '\0';
	return true;
}

/* Anything that is not a new_message or a pong: set-up replies, errors
 * and broadcasts the bench does not care about. */
static void
conn_other(struct conn *c, const uint8_t *p, size_t n, uint64_t now)
{
	struct wroom *r = c->room;
	char type[32], buf[256];

	if (!worker_field(p, n, "type", type, sizeof type)) {
		wk.rep.errors++;
		return;
	}
	if (strcmp(type, "new_message") == 0) {
		conn_deliver(c, p, n, now);
		return;
	}
	if (strcmp(type, "pong") == 0) {
		conn_pong(c, now);
		return;
	}
	if (strcmp(type, "welcome") == 0 && c->state == CONN_WELCOME) {
		if (r == NULL) {
			c->state = CONN_READY;
			wk.ready++;
			worker_setup_left();
			return;
		}
		snprintf(buf, sizeof buf, "{\"type\":\"%s\",\"roomName\":\"%s\"}",
		    c->creator ? "create_room" : "join_room", r->name);
		conn_send_text(c, buf);
		c->state = CONN_JOINING;
		return;
	}
	if ((strcmp(type, "created_room") == 0 ||
	    strcmp(type, "room_joined") == 0) && c->state == CONN_JOINING) {
		c->state = CONN_READY;
		wk.ready++;
		if (c->creator)
			r->created = true;
		worker_setup_left();
		return;
	}
	if (strcmp(type, "joined_room") == 0) {
		if (r != NULL)
			r->jr_seen++;
		return;
	}
	if (strcmp(type, "error") == 0) {
		if (c->state == CONN_JOINING && !c->creator &&
		    wk.o->nurls > 1 && c->join_tries < WORKER_JOIN_TRIES &&
		    worker_field(p, n, "code", buf, sizeof buf) &&
		    strcmp(buf, "room_not_found") == 0) {
			/* Created on another server, not known here yet. */
			c->join_tries++;
			if (wk.nrejoin == 0)
				wk.rejoin_at = now + WORKER_JOIN_RETRY_NS;
			wk.rejoin[wk.nrejoin++] = c;
			return;
		}
		wk.rep.errors++;
		if (c->state != CONN_READY) {
			snprintf(buf, sizeof buf, "%.*s", (int)n, (const char *)p);
			worker_fail("connection %u: %s", c->idx, buf);
			return;
		}
		/* A refused send takes no seq: the others must not wait
		 * for it. */
		if (r != NULL)
			r->rejected++;
		return;
	}
	/* room_created, user_left, notice ...: not ours to check. */
}

static void
conn_text(struct conn *c, const uint8_t *p, size_t n, uint64_t now)
{
	if (n > sizeof NEWMSG_HEAD &&
	    memcmp(p, NEWMSG_HEAD, sizeof NEWMSG_HEAD - 1) == 0)
		conn_deliver(c, p, n, now);
	else if (n > sizeof PONG_HEAD &&
	    memcmp(p, PONG_HEAD, sizeof PONG_HEAD - 1) == 0)
		conn_pong(c, now);
	else
		conn_other(c, p, n, now);
}

/* Handles the frames in buf; returns the bytes used (a partial frame is
 * left over), or -1 after closing c. */
static ssize_t
conn_frames(struct conn *c, const uint8_t *buf, size_t len, uint64_t now)
{
	struct wsc_frame f;
	size_t off = 0;
	ssize_t n;
	uint8_t reply[125];

	while (off < len) {
		n = wsc_parse(buf + off, len - off, &f, &c->in_need);
		if (n == 0)
			break;
		if (n < 0) {
			conn_close(c, "bad frame from the server");
			return -1;
		}
		off += (size_t)n;
		switch (f.opcode) {
		case WSC_OP_TEXT:
			if (!f.fin) {
				/* parley sends every message whole. */
				conn_close(c, "fragmented message");
				return -1;
			}
			conn_text(c, f.payload, f.len, now);
			break;
		case WSC_OP_PING:
			/* The server pings idle clients; answer or be
			 * dropped. */
			if (f.len > sizeof reply) {
				conn_close(c, "oversized ping");
				return -1;
			}
			memcpy(reply, f.payload, f.len);
			conn_send(c, WSC_OP_PONG, reply, f.len);
			break;
		case WSC_OP_PONG:
			break;
		case WSC_OP_CLOSE:
			snprintf((char *)reply, sizeof reply,
			    "server closed the connection (%u)",
			    f.len >= 2 ? (unsigned)(f.payload[0] << 8 |
			    f.payload[1]) : 1005);
			conn_close(c, (char *)reply);
			return -1;
		default:
			conn_close(c, "unexpected opcode");
			return -1;
		}
		if (c->state == CONN_CLOSED)
			return -1;
	}
	return (ssize_t)off;
}

/* Reads what c has; the shared buffer receives the leftover tail of the
 * previous read first, so frames are always contiguous. */
static void
conn_read(struct conn *c)
{
	const char *cause;
	size_t have, used, space;
	ssize_t n, r;
	uint64_t now;

	for (int round = 0; round < 4; round++) {
		if (c->in_need > wk.rcap) {
			wk.rcap = c->in_need;
			if ((wk.rbuf = realloc(wk.rbuf, wk.rcap)) == NULL)
				abort();
		}
		have = c->in_len;
		if (have > 0)
			memcpy(wk.rbuf, c->in, have);
		n = recv(c->fd, wk.rbuf + have, wk.rcap - have, 0);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return; /* the tail is still in c->in */
		if (n <= 0) {
			conn_close(c, n == 0 ? "server closed the socket" :
			    strerror(errno));
			return;
		}
		c->in_len = 0;
		now = bench_now();
		wk.last_rx = now;
		space = wk.rcap - have;
		have += (size_t)n;
		used = 0;
		if (c->state == CONN_UPGRADING) {
			r = wsc_response((const char *)wk.rbuf, have, &cause);
			if (r < 0) {
				conn_close(c, cause);
				return;
			}
			if (r > 0)
				c->state = CONN_WELCOME;
			/* While incomplete, keep it all for the next read. */
			used = (size_t)r;
		}
		if (c->state != CONN_UPGRADING) {
			r = conn_frames(c, wk.rbuf + used, have - used, now);
			if (r < 0)
				return;
			used += (size_t)r;
		}
		if (used < have) {
			if (have - used > c->in_cap) {
				c->in_cap = have - used < 256 ? 256 :
				    have - used;
				free(c->in);
				if ((c->in = malloc(c->in_cap)) == NULL)
					abort();
			}
			memcpy(c->in, wk.rbuf + used, have - used);
			c->in_len = have - used;
		}
		/* A short read means the socket is drained: save the
		 * EAGAIN round trip. */
		if ((size_t)n < space)
			return;
	}
}

static void
conn_event(struct conn *c, uint32_t events)
{
	if (c->state == CONN_CONNECTING) {
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			conn_connected(c);
		return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		conn_read(c);
	if (c->state != CONN_CLOSED && (events & EPOLLOUT))
		conn_flush(c);
}

/* Builds the send_message payload once per sender; each send patches
 * the time and counter into it. */
static void
sender_init(struct sender *s)
{
	const char *room = s->c->room->name;
	size_t size = wk.o->size, head;

	head = strlen("{\"type\":\"send_message\",\"roomName\":\"") +
	    strlen(room) + strlen("\",\"message\":\"");
	s->len = head + size + 2;
	if ((s->payload = malloc(s->len + 1)) == NULL)
		abort();
	snprintf(s->payload, s->len + 1,
	    "{\"type\":\"send_message\",\"roomName\":\"%s\",\"message\":\"",
	    room);
	memset(s->payload + head, '.', size);
	memcpy(s->payload + head + size, "\"}", 2);
	s->text_off = head;
}

static void
worker_hex(char *out, uint64_t v, int digits)
{
	static const char hex[] = "0123456789abcdef";

	for (int i = digits - 1; i >= 0; i--) {
		out[i] = hex[v & 15];
		v >>= 4;
	}
}

static void
sender_send(struct sender *s, uint64_t now)
{
	char *t = s->payload + s->text_off;

	t[0] = 'T';
	worker_hex(t + 1, now, 16);
	t[17] = 'S';
	worker_hex(t + 18, s->id, 8);
	t[26] = 'N';
	worker_hex(t + 27, s->count++, 8);
	conn_send(s->c, WSC_OP_TEXT, s->payload, s->len);
	if (s->ends_len == s->ends_cap) {
		size_t cap = s->ends_cap ? s->ends_cap * 2 : 64;
		uint64_t *e = malloc(cap * sizeof *e);

		if (e == NULL)
			abort();
		for (size_t i = 0; i < s->ends_len; i++)
			e[i] = s->ends[(s->ends_head + i) % s->ends_cap];
		free(s->ends);
		s->ends = e;
		s->ends_cap = cap;
		s->ends_head = 0;
	}
	s->ends[(s->ends_head + s->ends_len++) % s->ends_cap] =
	    s->c->out_queued;
}

/* Sends what is due. The schedule is fixed in advance (open loop), so a
 * slow server does not slow the offered load down; a sender that falls
 * more than a second behind skips ahead rather than bursting. */
static void
worker_send_due(uint64_t now)
{
	struct sender *s;

	for (uint32_t i = 0; i < wk.nsenders; i++) {
		s = &wk.senders[i];
		if (s->c->state != CONN_READY)
			continue;
		if (now > s->next + BENCH_NS_PER_S) {
			wk.rep.send_lag += (now - s->next) / wk.interval;
			s->next = now;
		}
		while (s->next <= now) {
			if (now - s->next > WORKER_LAG_NS)
				wk.rep.send_lag++;
			sender_send(s, now);
			s->next += wk.interval;
		}
	}
}

/* Pings the next connection in turn that has none outstanding: the
 * probes cover all connections evenly, not a favoured few. */
static void
worker_ping_due(uint64_t now)
{
	struct conn *c;
	char buf[64];

	/* Far behind (a stalled loop): skip ahead rather than burst. */
	if (wk.next_ping + BENCH_NS_PER_S < now)
		wk.next_ping = now;
	while (wk.next_ping <= now) {
		wk.next_ping += wk.ping_iv;
		for (uint32_t tries = 0; tries < wk.nconns; tries++) {
			c = &wk.conns[wk.ping_rr++ % wk.nconns];
			if (c->state != CONN_READY || c->ping_sent != 0)
				continue;
			snprintf(buf, sizeof buf, "{\"type\":\"ping\",\"id\":%"
			    PRIu64 "}", ++wk.ping_id);
			conn_send_text(c, buf);
			c->ping_sent = now;
			if (now >= wk.t_measure)
				wk.rep.pings++;
			break;
		}
	}
}

static void
worker_report_send(void)
{
	wk.rep.op = wk.op;
	wk.rep.ok = !wk.failed;
	wk.rep.open = wk.ready;
	wk.rep.setup_ns = bench_now() - wk.op_start;
	if (bench_write_full(wk.rep_fd, &wk.rep, sizeof wk.rep) == -1)
		_exit(1);
	wk.op = 0;
}

static void
worker_queue(bool creators)
{
	wk.qhead = wk.qlen = 0;
	for (uint32_t i = 0; i < wk.nconns; i++) {
		if (wk.conns[i].state == CONN_NEW &&
		    wk.conns[i].creator == creators)
			wk.queue[wk.qlen++] = i;
	}
}

/* Sends the joins the cluster refused a moment ago once more. */
static void
worker_rejoin(uint64_t now)
{
	struct conn *c;
	char buf[160];

	if (wk.nrejoin == 0 || now < wk.rejoin_at)
		return;
	for (uint32_t i = 0; i < wk.nrejoin; i++) {
		c = wk.rejoin[i];
		if (c->state != CONN_JOINING)
			continue;
		snprintf(buf, sizeof buf, "{\"type\":\"join_room\","
		    "\"roomName\":\"%s\"}", c->room->name);
		conn_send_text(c, buf);
	}
	wk.nrejoin = 0;
}

/* Progress of CREATE and FILL: start connections up to the in-flight
 * cap, and report when everything is in place. */
static void
worker_setup_tick(uint64_t now)
{
	bool done = true;

	worker_rejoin(now);

	while (!wk.failed && wk.qhead < wk.qlen &&
	    wk.inflight < wk.o->inflight)
		conn_start(&wk.conns[wk.queue[wk.qhead++]]);
	if (wk.failed) {
		worker_report_send();
		return;
	}
	if (wk.qhead < wk.qlen || wk.inflight > 0)
		return;
	for (uint32_t i = 0; i < wk.nrooms; i++) {
		struct wroom *r = &wk.rooms[i];

		if (wk.op == WORKER_CREATE && !r->created)
			done = false;
		/* Every join is announced to every member: wait until the
		 * last of those is in, or for a quiet spell. */
		if (wk.op == WORKER_FILL && r->jr_seen < r->jr_expect &&
		    now - wk.last_rx < WORKER_QUIET_NS)
			done = false;
	}
	if (done)
		worker_report_send();
}

/* True when every message is out of our buffers and every open member
 * has seen its room's last accepted seq. */
static bool
worker_caught_up(void)
{
	for (uint32_t i = 0; i < wk.nsenders; i++) {
		if (wk.senders[i].ends_len > 0)
			return false;
	}
	for (uint32_t i = 0; i < wk.nrooms; i++) {
		struct wroom *r = &wk.rooms[i];
		uint64_t last = r->sent - r->rejected;

		for (uint32_t j = 0; j < r->n; j++) {
			struct conn *c = r->members[j];

			if (c->state == CONN_READY && c->next_seq <= last)
				return false;
		}
	}
	return true;
}

static void
worker_stage_end(void)
{
	uint64_t last, accepted;

	/* Still in our buffers: the server never had them. */
	for (uint32_t i = 0; i < wk.nsenders; i++)
		wk.rep.unsent += wk.senders[i].ends_len;

	for (uint32_t i = 0; i < wk.nrooms; i++) {
		struct wroom *r = &wk.rooms[i];

		last = r->sent - r->rejected;
		accepted = last - (r->stage_sent - r->stage_rejected);
		wk.rep.expected += accepted * r->n;
		for (uint32_t j = 0; j < r->n; j++) {
			struct conn *c = r->members[j];

			/* The tail never came: count it missing now and
			 * move on, so a straggler later counts as late. */
			if (c->next_seq <= last) {
				uint64_t d = last + 1 - c->next_seq;

				wk.rep.missing += d;
				c->window = d >= 64 ? 0 : c->window << d;
				c->next_seq = last + 1;
			}
		}
	}
	wk.t_measure = wk.t_end = UINT64_MAX;
	worker_report_send();
}

static void
worker_stage_tick(uint64_t now)
{
	if (wk.sending && now >= wk.cmd.t_start) {
		if (!wk.measuring_started && now >= wk.t_measure) {
			wk.measuring_started = true;
			wk.cpu0 = worker_cpu_ns();
			wk.wait0 = proc_wait_ns(getpid());
		}
		if (now >= wk.t_end) {
			wk.sending = false;
			wk.rep.cpu_ns = worker_cpu_ns() - wk.cpu0;
			wk.rep.wait_ns = (uint64_t)(proc_wait_ns(getpid()) -
			    wk.wait0);
			return;
		}
		if (wk.interval != 0)
			worker_send_due(now);
		if (wk.ping_iv != 0)
			worker_ping_due(now);
		return;
	}
	/* The check walks every member: at most once a millisecond, or it
	 * would slow the very draining it waits for. */
	if (wk.sending || now - wk.last_check < BENCH_NS_PER_MS)
		return;
	wk.last_check = now;
	if (worker_caught_up() || now >= wk.t_end + wk.cmd.drain_ns)
		worker_stage_end();
}

static void
worker_command(void)
{
	struct worker_cmd cmd;

	if (bench_read_full(wk.cmd_fd, &cmd, sizeof cmd) == -1 ||
	    cmd.op == WORKER_QUIT)
		_exit(0); /* the parent is gone, or done */
	if (wk.op != 0)
		return; /* busy: only QUIT may interrupt */
	memset(&wk.rep, 0, sizeof wk.rep);
	hist_init(&wk.rep.lat);
	hist_init(&wk.rep.ping);
	wk.op = cmd.op;
	wk.op_start = bench_now();
	wk.failed = false;
	switch (cmd.op) {
	case WORKER_CREATE:
	case WORKER_FILL:
		worker_queue(cmd.op == WORKER_CREATE);
		wk.last_rx = wk.op_start;
		break;
	case WORKER_STAGE:
		wk.cmd = cmd;
		wk.sending = true;
		wk.measuring_started = false;
		wk.t_measure = cmd.t_measure;
		wk.t_end = cmd.t_end;
		wk.interval = cmd.rate > 0 ?
		    (uint64_t)(BENCH_NS_PER_S / cmd.rate) : 0;
		if (wk.interval == 0 && cmd.rate > 0)
			wk.interval = 1;
		for (uint32_t i = 0; i < wk.nsenders; i++) {
			struct sender *s = &wk.senders[i];

			/* Spread the senders evenly over one interval. */
			s->next = cmd.t_start + (uint64_t)((double)wk.interval *
			    s->id / (wk.o->senders ? wk.o->senders : 1));
		}
		for (uint32_t i = 0; i < wk.nrooms; i++) {
			wk.rooms[i].stage_sent = wk.rooms[i].sent;
			wk.rooms[i].stage_rejected = wk.rooms[i].rejected;
		}
		/* A ping unanswered last stage must not block this one. */
		for (uint32_t i = 0; i < wk.nconns; i++)
			wk.conns[i].ping_sent = 0;
		wk.ping_iv = cmd.ping_rate > 0 ?
		    (uint64_t)(BENCH_NS_PER_S / cmd.ping_rate) : 0;
		/* Start each worker's pings at a different phase. */
		wk.next_ping = cmd.t_start + (wk.ping_iv * wk.id) /
		    (wk.o->procs ? wk.o->procs : 1);
		break;
	case WORKER_QUIT:
	default:
		_exit(0);
	}
}

/* How long epoll may sleep: until the next send, ping or deadline. */
static void
worker_timeout(struct timespec *ts, uint64_t now)
{
	uint64_t next = now + 100 * BENCH_NS_PER_MS, wait;

	if (wk.op == WORKER_STAGE && wk.sending) {
		if (now < wk.cmd.t_start && wk.cmd.t_start < next)
			next = wk.cmd.t_start;
		if (!wk.measuring_started && wk.t_measure < next)
			next = wk.t_measure;
		if (wk.t_end < next)
			next = wk.t_end;
		for (uint32_t i = 0; wk.interval && i < wk.nsenders; i++) {
			if (wk.senders[i].next < next)
				next = wk.senders[i].next;
		}
		if (wk.ping_iv != 0 && wk.next_ping < next)
			next = wk.next_ping;
	} else if (wk.op == WORKER_STAGE)
		next = now + 10 * BENCH_NS_PER_MS;
	wait = next > now ? next - now : 0;
	ts->tv_sec = (time_t)(wait / BENCH_NS_PER_S);
	ts->tv_nsec = (long)(wait % BENCH_NS_PER_S);
}

/* Lays out this worker's share: rooms r with r % procs == id, and the
 * connections in them (connection i is in room i % rooms, so room r's
 * creator is connection r and sender j is connection j). */
static void
worker_plan(void)
{
	const struct bench_opts *o = wk.o;
	uint32_t i, r, nr = 0, nc = 0, ns = 0, *map;
	struct conn *c;
	struct wroom *wr;

	map = calloc(o->rooms ? o->rooms : 1, sizeof *map);
	wk.rooms = calloc(o->rooms + 1, sizeof *wk.rooms);
	wk.conns = calloc(o->conns + 1, sizeof *wk.conns);
	wk.senders = calloc(o->senders + 1, sizeof *wk.senders);
	wk.queue = calloc(o->conns + 1, sizeof *wk.queue);
	wk.rejoin = calloc(o->conns + 1, sizeof *wk.rejoin);
	if (map == NULL || wk.rooms == NULL || wk.conns == NULL ||
	    wk.senders == NULL || wk.queue == NULL || wk.rejoin == NULL)
		abort();

	for (r = 0; r < o->rooms; r++) {
		if (r % o->procs != wk.id)
			continue;
		wr = &wk.rooms[nr];
		map[r] = nr++;
		wr->name_len = (size_t)snprintf(wr->name, sizeof wr->name,
		    "%s-r%u", o->tag, r);
		wr->text_off = sizeof NEWMSG_HEAD - 1 + wr->name_len +
		    sizeof NEWMSG_TEXT - 2;
		wr->n = o->conns / o->rooms + (r < o->conns % o->rooms);
		wr->members = calloc(wr->n, sizeof *wr->members);
		if (wr->members == NULL)
			abort();
		/* The creator gets a joined_room for every joiner; the
		 * joiner at position p (1..n-1) for itself and each later
		 * one. */
		wr->jr_expect = (uint64_t)(wr->n - 1) +
		    (uint64_t)wr->n * (wr->n - 1) / 2;
	}
	wk.nrooms = nr;

	for (i = 0; i < o->conns; i++) {
		r = o->rooms ? i % o->rooms : i;
		if (r % o->procs != wk.id)
			continue;
		c = &wk.conns[nc++];
		c->fd = -1;
		c->idx = i;
		c->srv = (uint8_t)bench_url_index(o, i);
		c->next_seq = 1;
		c->mask = (uint32_t)worker_rand();
		if (o->rooms) {
			wr = &wk.rooms[map[r]];
			c->room = wr;
			c->creator = i < o->rooms;
			wr->members[i / o->rooms] = c;
		}
		if (i < o->senders) {
			wk.senders[ns].c = c;
			wk.senders[ns].id = i;
			c->sender = &wk.senders[ns];
			ns++;
		}
	}
	wk.nconns = nc;
	wk.nsenders = ns;
	for (i = 0; i < ns; i++)
		sender_init(&wk.senders[i]);
	free(map);
}

void
worker_main(const struct bench_opts *o, unsigned id, int cmd_fd, int rep_fd)
{
	struct epoll_event ev, *evs;
	struct timespec ts;
	uint64_t now;
	int n;

	memset(&wk, 0, sizeof wk);
	wk.o = o;
	wk.id = id;
	wk.cmd_fd = cmd_fd;
	wk.rep_fd = rep_fd;
	wk.rng = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)getpid() << 20) ^
	    bench_now();
	wk.t_measure = wk.t_end = UINT64_MAX;
	wk.rcap = WORKER_RBUF;
	for (unsigned i = 0; i < o->nurls; i++)
		wk.request_len[i] = wsc_request(wk.request[i],
		    sizeof wk.request[i], o->url[i].host, o->url[i].port,
		    o->url[i].path);
	if ((wk.rbuf = malloc(wk.rcap)) == NULL ||
	    (evs = calloc(WORKER_EVENTS, sizeof *evs)) == NULL)
		abort();
	signal(SIGPIPE, SIG_IGN);
	worker_plan();

	if ((wk.ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		_exit(1);
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	epoll_ctl(wk.ep, EPOLL_CTL_ADD, cmd_fd, &ev);

	for (;;) {
		now = bench_now();
		worker_timeout(&ts, now);
		n = epoll_pwait2(wk.ep, evs, WORKER_EVENTS, &ts, NULL);
		if (n == -1 && errno != EINTR)
			_exit(1);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL) {
				worker_command();
				continue;
			}
			conn_event(evs[i].data.ptr, evs[i].events);
			/* Keep to the send schedule through a long batch of
			 * reads, or a busy receive side would slow the
			 * offered load down. */
			if ((i & 63) == 63 && wk.op == WORKER_STAGE &&
			    wk.sending) {
				worker_stage_tick(bench_now());
				worker_flush();
			}
		}
		now = bench_now();
		if (wk.op == WORKER_CREATE || wk.op == WORKER_FILL)
			worker_setup_tick(now);
		else if (wk.op == WORKER_STAGE)
			worker_stage_tick(now);
		worker_flush();
	}
}
