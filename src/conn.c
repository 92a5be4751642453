/*
 * conn.c: upgraded WebSocket sockets on the event loop: reading into the
 * codec, the bounded output queue of shared frames flushed with writev
 * once per loop iteration, pings to idle peers, and the close handshake.
 * The socket is conn.c's own from the upgrade on (http.c duplicates it
 * and releases libmicrohttpd's connection at once), and closed here.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "parley.h"

enum {
	CONN_OPEN,
	CONN_CLOSE_SENT, /* our close frame is queued; waiting for theirs */
	CONN_CLOSE_DONE, /* handshake over: release once flushed */
};

#define CONN_READ_CHUNK 65536
#define CONN_READS_PER_EVENT 4
#define CONN_IOV_MAX 64
#define CONN_CLOSE_WAIT_MS 2000

static struct client *conn_pending; /* clients with output to flush */
/* A resume moved the connection being read from conn_moved_from to
 * conn_moved_to: the rest of the read goes to the latter (conn_move). */
static struct client *conn_moved_from, *conn_moved_to;
static unsigned conn_open;
static bool conn_shutting_down;
static struct loop_timer conn_shutdown_timer;

static void conn_on_event(struct loop_fd *lfd, uint32_t events);
static void conn_on_timer(struct loop_timer *t);
static void conn_deadline(struct client *c, uint64_t when);
static void conn_write_some(struct client *c);
static ssize_t conn_writev(struct client *c, struct iovec *iov);
static void conn_advance(struct client *c, size_t n);
static void conn_release(struct client *c, const char *reason);
static void conn_write(struct client *c);
static struct client *conn_move_finish(struct client *c);

unsigned
conn_count(void)
{
	return conn_open;
}

static void
conn_mark_pending(struct client *c)
{
	if (c->pending)
		return;
	c->pending = true;
	c->next_pending = conn_pending;
	conn_pending = c;
}

/* Bytes waiting in c's queue. */
static size_t
conn_queued(const struct client *c)
{
	return c->out != NULL ? c->out->bytes : 0;
}

static void
conn_queue_push(struct client *c, struct buf *b)
{
	struct conn_queue *q = c->out;

	if (q == NULL || q->len == q->cap) {
		uint32_t cap = q != NULL ? q->cap * 2 : 4;
		struct conn_queue *n = xmalloc(
		    sizeof *n + cap * sizeof *n->ring);
		if (q != NULL) {
			*n = *q;
			for (uint32_t i = 0; i < q->len; i++)
				n->ring[i] = q->ring[(q->head + i) % q->cap];
			free(q);
		} else {
			memset(n, 0, sizeof *n);
			n->stalled = loop_now();
			if (c->lfd.fd != -1)
				conn_deadline(c,
				    n->stalled +
					(uint64_t)cfg->write_timeout * 1000);
		}
		n->head = 0;
		n->cap = cap;
		c->out = q = n;
	}
	q->ring[(q->head + q->len) % q->cap] = b;
	q->len++;
	q->bytes += b->len;
}

/* Drops everything queued; the queue's memory goes too. */
static void
conn_queue_clear(struct client *c)
{
	struct conn_queue *q = c->out;

	if (q == NULL)
		return;
	for (uint32_t i = 0; i < q->len; i++)
		buf_unref(q->ring[(q->head + i) % q->cap]);
	free(q);
	c->out = NULL;
}

void
conn_forget(struct client *c)
{
	conn_queue_clear(c);
	ws_parser_free(&c->parser);
}

/* Writes what the socket takes now without ever releasing c (the caller
 * may be walking a member list): a write error only marks c for closing
 * on the next timer turn. */
static void
conn_write_some(struct client *c)
{
	while (c->out != NULL) {
		struct iovec iov[CONN_IOV_MAX];
		ssize_t n = conn_writev(c, iov);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n == -1) {
			c->closing = true;
			c->close_state = CONN_CLOSE_DONE;
			loop_timer_set(&c->timer, 0, conn_on_timer);
			return;
		}
		conn_advance(c, (size_t)n);
	}
}

/* Queues without the closing check: control frames during the close. */
static void
conn_send_raw(struct client *c, struct buf *b)
{
	if (c->dead)
		return;
	/* Before calling it slow, see whether the socket takes the queue
	 * now: a burst in one loop turn is not a slow consumer. */
	if (conn_queued(c) + b->len > cfg->max_output_bytes &&
	    c->close_state == CONN_OPEN && c->lfd.fd != -1)
		conn_write_some(c);
	if (conn_queued(c) + b->len > cfg->max_output_bytes) {
		/* A slow consumer: dropped, but not here, since the caller
		 * may be walking a room's member list. */
		if (!c->closing) {
			c->closing = true;
			c->close_code = WS_CLOSE_POLICY;
			c->close_state = CONN_CLOSE_DONE;
			metrics_add(METRIC_SLOW_CONSUMERS, 1);
			/* The timer runs after this turn's events. */
			loop_timer_set(&c->timer, 0, conn_on_timer);
			log_info("ws",
			    "client %llu (%s): output queue over %zu "
			    "bytes, dropping slow consumer",
			    (unsigned long long)c->id, c->addr,
			    cfg->max_output_bytes);
		}
		return;
	}
	conn_queue_push(c, buf_ref(b));
	conn_mark_pending(c);
}

void
conn_send(struct client *c, struct buf *b)
{
	if (c->closing)
		return;
	conn_send_raw(c, b);
}

void
conn_send_new(struct client *c, json_t *json)
{
	struct buf *b = buf_json(json);

	json_decref(json);
	conn_send(c, b);
	buf_unref(b);
}

static void
conn_send_close(struct client *c, int code, const char *reason)
{
	uint8_t payload[125];
	size_t len = 0, rlen;
	struct buf *b;

	if (code != WS_CLOSE_NO_STATUS) {
		payload[0] = (uint8_t)(code >> 8);
		payload[1] = (uint8_t)code;
		len = 2;
		rlen = reason ? strlen(reason) : 0;
		if (rlen > sizeof payload - 2)
			rlen = sizeof payload - 2;
		if (rlen > 0)
			memcpy(payload + 2, reason, rlen);
		len += rlen;
	}
	b = buf_frame(WS_OP_CLOSE, payload, len);
	conn_send_raw(c, b);
	buf_unref(b);
}

void
conn_close(struct client *c, int code, const char *reason)
{
	if (c->held) {
		/* No connection to close: the session ends instead. */
		session_end(c);
		return;
	}
	if (c->closing || c->dead)
		return;
	log_debug("ws", "client %llu: closing with %d (%s)",
	    (unsigned long long)c->id, code, reason ? reason : "");
	c->closing = true;
	c->close_code = (uint16_t)code;
	conn_send_close(c, code, reason);
	c->close_state = CONN_CLOSE_SENT;
	loop_timer_set(&c->timer, CONN_CLOSE_WAIT_MS, conn_on_timer);
}

static int
conn_on_message(
    void *arg, int opcode, const uint8_t *data, size_t len, int code)
{
	struct client *c = arg;
	struct buf *b;

	if (c == conn_moved_from)
		c = conn_moved_to;
	c->ping_sent = 0;
	switch (opcode) {
	case WS_OP_TEXT:
		if (!c->closing)
			proto_handle(c, (const char *)data, len);
		if (c == conn_moved_from) /* a resume: c is gone, not its
					     connection */
			c = conn_moved_to;
		return c->dead ? 1 : 0;
	case WS_OP_PING:
		b = buf_frame(WS_OP_PONG, data, len);
		if (c->close_state == CONN_OPEN)
			conn_send_raw(c, b);
		buf_unref(b);
		return 0;
	case WS_OP_PONG:
		return 0;
	case WS_OP_CLOSE:
		if (c->close_state == CONN_OPEN) {
			/* Echo their code, as RFC 6455 5.5.1 asks. */
			c->closing = true;
			c->close_code = (uint16_t)code;
			conn_send_close(c, code, NULL);
		}
		c->close_state = CONN_CLOSE_DONE;
		return 1;
	}
	return 0;
}

static void
conn_read(struct client *c)
{
	static uint8_t rbuf[CONN_READ_CHUNK];

	for (int i = 0; i < CONN_READS_PER_EVENT; i++) {
		ssize_t n = read(c->lfd.fd, rbuf, sizeof rbuf);
		int rc;

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			conn_release(c, "disconnected");
			return;
		}
		c->bytes_in += (size_t)n;
		metrics_add(METRIC_BYTES_IN, (uint64_t)n);
		c->last_rx = loop_now();
		if (c->close_state == CONN_CLOSE_DONE)
			continue; /* discard anything after their close */
		rc = ws_parser_feed(
		    &c->parser, rbuf, (size_t)n, conn_on_message, c);
		c = conn_move_finish(c);
		if (c->dead)
			return;
		if (rc > 0) {
			/* Once per connection: after the first violation the
			 * parser is dead and keeps saying so. */
			if (c->close_state == CONN_OPEN) {
				log_info("ws",
				    "client %llu (%s): protocol "
				    "violation, close %d",
				    (unsigned long long)c->id, c->addr, rc);
				limit_violation(c->addr);
				conn_close(c, rc, NULL);
			} else
				c->close_state = CONN_CLOSE_DONE;
		}
		if (c->close_state == CONN_CLOSE_DONE) {
			conn_mark_pending(c);
			return;
		}
		if (!ws_parser_busy(&c->parser))
			c->msg_started = 0;
		else if (c->msg_started == 0) {
			c->msg_started = c->last_rx;
			conn_deadline(c,
			    c->msg_started +
				(uint64_t)cfg->message_timeout * 1000);
		}
		if ((size_t)n < sizeof rbuf)
			return;
	}
}

/* One writev of as much of the queue as fits in iov. */
static ssize_t
conn_writev(struct client *c, struct iovec *iov)
{
	const struct conn_queue *q = c->out;
	int niov = 0;

	for (uint32_t i = 0; i < q->len && niov < CONN_IOV_MAX; i++) {
		struct buf *b = q->ring[(q->head + i) % q->cap];
		size_t off = i == 0 ? q->off : 0;
		iov[niov].iov_base = b->data + off;
		iov[niov].iov_len = b->len - off;
		niov++;
	}
	return writev(c->lfd.fd, iov, niov);
}

/* Drops n written bytes from the head of the queue; a drained queue is
 * freed, so an idle connection keeps no queue memory. */
static void
conn_advance(struct client *c, size_t n)
{
	struct conn_queue *q = c->out;

	c->bytes_out += n;
	metrics_add(METRIC_BYTES_OUT, n);
	q->stalled = loop_now();
	while (n > 0) {
		struct buf *b = q->ring[q->head];
		size_t rest = b->len - q->off;
		if (n < rest) {
			q->off += (uint32_t)n;
			break;
		}
		n -= rest;
		q->off = 0;
		q->bytes -= b->len;
		buf_unref(b);
		q->head = (q->head + 1) % q->cap;
		q->len--;
	}
	if (q->len == 0) {
		free(q);
		c->out = NULL;
	}
}

static void
conn_write(struct client *c)
{
	while (c->out != NULL) {
		struct iovec iov[CONN_IOV_MAX];
		ssize_t n = conn_writev(c, iov);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				loop_fd_mod(&c->lfd, EPOLLIN | EPOLLOUT);
				return;
			}
			conn_release(c, "disconnected");
			return;
		}
		conn_advance(c, (size_t)n);
	}
	loop_fd_mod(&c->lfd, EPOLLIN);
	if (c->close_state == CONN_CLOSE_DONE)
		conn_release(c, "disconnected");
}

void
conn_flush_pending(void)
{
	while (conn_pending != NULL) {
		struct client *c = conn_pending;
		conn_pending = c->next_pending;
		c->next_pending = NULL;
		c->pending = false;
		if (!c->dead && c->lfd.fd != -1)
			conn_write(c);
	}
	if (conn_shutting_down && conn_open == 0)
		loop_stop();
}

static void
conn_on_event(struct loop_fd *lfd, uint32_t events)
{
	struct client *c = container_of(lfd, struct client, lfd);

	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		conn_read(c);
	/* Released by the read, c may be held: no socket any more. */
	if (!c->dead && c->lfd.fd != -1 && (events & EPOLLOUT))
		conn_write(c);
}

/* Brings the timer forward when a new deadline comes before it. */
static void
conn_deadline(struct client *c, uint64_t when)
{
	if (!loop_timer_pending(&c->timer) || c->timer.when > when)
		loop_timer_set(&c->timer,
		    when > loop_now() ? when - loop_now() : 0, conn_on_timer);
}

static void
conn_on_timer(struct loop_timer *t)
{
	struct client *c = container_of(t, struct client, timer);
	uint64_t now = loop_now();
	uint64_t interval = (uint64_t)cfg->ping_interval * 1000;
	uint64_t write_ms = (uint64_t)cfg->write_timeout * 1000;
	uint64_t msg_ms = (uint64_t)cfg->message_timeout * 1000;
	uint64_t next;
	uint8_t payload[8];
	struct buf *b;

	if (c->close_state != CONN_OPEN) {
		conn_release(c, "disconnected");
		return;
	}
	if (c->out != NULL && now - c->out->stalled >= write_ms) {
		log_info("ws",
		    "client %llu (%s): no write progress for %us, "
		    "dropping",
		    (unsigned long long)c->id, c->addr, cfg->write_timeout);
		conn_release(c, "timeout");
		return;
	}
	if (c->msg_started != 0 && now - c->msg_started >= msg_ms) {
		log_info("ws",
		    "client %llu (%s): message not completed in "
		    "%us",
		    (unsigned long long)c->id, c->addr, cfg->message_timeout);
		limit_violation(c->addr);
		conn_close(c, WS_CLOSE_POLICY, "message timeout");
		return;
	}
	if (c->ping_sent != 0 &&
	    now - c->ping_sent >= (uint64_t)cfg->ping_timeout * 1000) {
		log_info("ws", "client %llu (%s): no pong within %us, dropping",
		    (unsigned long long)c->id, c->addr, cfg->ping_timeout);
		c->closing = true;
		conn_send_close(c, WS_CLOSE_GOING_AWAY, "ping timeout");
		conn_write(c);
		if (!c->dead)
			conn_release(c, "timeout");
		return;
	}
	if (c->ping_sent == 0 && now - c->last_rx >= interval) {
		for (int i = 0; i < 8; i++)
			payload[i] = (uint8_t)(now >> (8 * i));
		b = buf_frame(WS_OP_PING, payload, sizeof payload);
		conn_send_raw(c, b);
		buf_unref(b);
		if (c->dead || c->closing)
			return;
		c->ping_sent = now;
	}
	next = c->ping_sent != 0
	    ? c->ping_sent + (uint64_t)cfg->ping_timeout * 1000
	    : c->last_rx + interval;
	if (c->out != NULL && c->out->stalled + write_ms < next)
		next = c->out->stalled + write_ms;
	if (c->msg_started != 0 && c->msg_started + msg_ms < next)
		next = c->msg_started + msg_ms;
	loop_timer_set(t, next > now ? next - now : 0, conn_on_timer);
}

static void
conn_release(struct client *c, const char *reason)
{
	/* Neither side closed: the network did (a reset, a timeout, an
	 * unanswered ping). */
	bool dropped = c->close_code == 0 && !conn_shutting_down;
	int fd;

	if (c->dead || c->held)
		return;
	log_info("ws",
	    "close client=%llu addr=%s name=%s code=%u "
	    "duration_ms=%llu bytes_in=%llu bytes_out=%llu reason=%s",
	    (unsigned long long)c->id, c->addr, c->name,
	    c->close_code ? c->close_code : 1006,
	    (unsigned long long)(loop_now() - c->opened),
	    (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out,
	    reason);
	loop_timer_cancel(&c->timer);
	fd = c->lfd.fd;
	loop_fd_remove(&c->lfd);
	if (fd != -1)
		close(fd);
	conn_queue_clear(c);
	ws_parser_free(&c->parser);
	conn_open--;
	metrics_close(c->close_code ? c->close_code : 1006);
	c->closing = true;
	/* A held session keeps its address's place until it ends. */
	if (dropped && chat_dropped(c))
		return;
	limit_conn_close(c->addr);
	chat_disconnect(c, reason);
}

/* Ends c's connection at once: a close frame if one can go out whole
 * now, then the socket is closed; c stays. */
static void
conn_end_now(struct client *c, int code, const char *reason)
{
	struct buf *b;
	uint8_t payload[2] = { (uint8_t)(code >> 8), (uint8_t)code };
	int fd = c->lfd.fd;

	log_info("ws",
	    "close client=%llu addr=%s name=%s code=%d "
	    "duration_ms=%llu bytes_in=%llu bytes_out=%llu reason=%s",
	    (unsigned long long)c->id, c->addr, c->name, code,
	    (unsigned long long)(loop_now() - c->opened),
	    (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out,
	    reason);
	if (c->close_state == CONN_OPEN &&
	    (c->out == NULL || c->out->off == 0)) {
		b = buf_frame(WS_OP_CLOSE, payload, sizeof payload);
		if (write(fd, b->data, b->len) == -1)
			log_debug("ws", "close frame: %s", strerror(errno));
		buf_unref(b);
	}
	loop_timer_cancel(&c->timer);
	loop_fd_remove(&c->lfd);
	close(fd);
	conn_queue_clear(c);
	ws_parser_free(&c->parser);
	conn_open--;
	metrics_close(code);
	limit_conn_close(c->addr);
}

void
conn_move(struct client *from, struct client *to, int code, const char *reason)
{
	uint32_t events = from->lfd.events;
	int fd = from->lfd.fd;
	const char *addr;

	PARLEY_ASSERT(fd != -1 && conn_moved_from == NULL);
	if (to->lfd.fd != -1)
		conn_end_now(to, code, reason);
	else
		limit_conn_close(to->addr); /* the place it held */
	/* The connection's address goes with it (limits, bans, logs). */
	addr = to->addr;
	to->addr = from->addr;
	from->addr = addr;
	loop_timer_cancel(&from->timer);
	loop_timer_cancel(&to->timer);
	loop_fd_remove(&from->lfd);
	if (loop_fd_add(&to->lfd, fd, events, conn_on_event) == -1)
		log_error("ws", "epoll_ctl: %s", strerror(errno));
	conn_queue_clear(to);
	to->out = from->out;
	from->out = NULL;
	if (to->out != NULL)
		conn_mark_pending(to);
	to->close_state = CONN_OPEN;
	to->close_code = 0;
	to->closing = false;
	to->flood = 0;
	to->opened = from->opened;
	to->last_rx = from->last_rx;
	to->ping_sent = from->ping_sent;
	to->msg_started = from->msg_started;
	to->bytes_in = from->bytes_in;
	to->bytes_out = from->bytes_out;
	from->closing = true;
	/* The parser is in the middle of its feed: conn_move_finish. */
	conn_moved_from = from;
	conn_moved_to = to;
	loop_timer_set(&to->timer, 0, conn_on_timer);
	log_info("ws", "client %llu (%s) resumed by the connection of %llu",
	    (unsigned long long)to->id, to->addr, (unsigned long long)from->id);
}

/* After a feed of c's parser: when c's connection moved meanwhile, the
 * parser's state follows it and the client it moved to is returned. */
static struct client *
conn_move_finish(struct client *c)
{
	struct client *to = conn_moved_to;

	if (c != conn_moved_from)
		return c;
	ws_parser_free(&to->parser);
	to->parser = c->parser;
	memset(&c->parser, 0, sizeof c->parser);
	ws_parser_init(&c->parser, 0);
	ws_parser_free(&c->parser);
	conn_moved_from = conn_moved_to = NULL;
	return to;
}

void
conn_move_now(struct client *from, struct client *to)
{
	conn_move(from, to, CHAT_CLOSE_RESUMED, "resumed elsewhere");
	(void)conn_move_finish(from);
}

void
conn_end(struct client *c, int code, const char *reason)
{
	if (c->lfd.fd != -1)
		conn_end_now(c, code, reason);
}

/*
 * Caps what the kernel holds for a client that does not read. Left alone,
 * Linux grows a socket's send buffer to several MiB (tcp_wmem), all of it
 * taken before max_output_bytes is even looked at. Linux doubles the value
 * asked for, so the kernel holds about half of max_output_bytes and a
 * client that never reads is dropped once about 1.5 times the limit is
 * pending in all. Setting it also turns off the kernel's autotuning.
 */
static void
conn_cap_sndbuf(int fd)
{
	size_t want = cfg->max_output_bytes / 4;
	int size;

	if (want < 4096)
		want = 4096;
	if (want > INT_MAX)
		want = INT_MAX;
	size = (int)want;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size) == -1)
		log_debug("ws", "SO_SNDBUF: %s", strerror(errno));
}

void
conn_accept(struct client *c, int fd, const char *extra_in, size_t extra_len)
{
	const char *addr = c->addr;
	int flags = fcntl(fd, F_GETFL), one = 1;

	if (flags != -1 && !(flags & O_NONBLOCK))
		fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	/* libmicrohttpd turns Nagle back on after the 101; chat frames are
	 * small and must leave at once (writes are already batched). */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	conn_cap_sndbuf(fd);
	c->closing = false; /* admitted before the upgrade (http.c) */
	c->opened = loop_now();
	c->last_rx = c->opened;
	ws_parser_init(&c->parser, cfg->max_frame_bytes);
	conn_open++;
	metrics_add(METRIC_CONNECTIONS_TOTAL, 1);
	limit_conn_open(addr);
	if (loop_fd_add(&c->lfd, fd, EPOLLIN, conn_on_event) == -1) {
		log_error("ws", "epoll_ctl: %s", strerror(errno));
		conn_release(c, "disconnected");
		return;
	}
	log_info("ws", "open client=%llu addr=%s name=%s",
	    (unsigned long long)c->id, addr, c->name);
	loop_timer_set(
	    &c->timer, (uint64_t)cfg->ping_interval * 1000, conn_on_timer);
	proto_welcome(c);
	if (extra_len > 0) {
		int rc;
		c->bytes_in += extra_len;
		rc = ws_parser_feed(&c->parser, (const uint8_t *)extra_in,
		    extra_len, conn_on_message, c);
		c = conn_move_finish(c);
		if (!c->dead && rc > 0) {
			limit_violation(c->addr);
			conn_close(c, rc, NULL);
		}
		if (!c->dead && c->close_state == CONN_CLOSE_DONE)
			conn_mark_pending(c);
	}
}

static void
conn_on_shutdown_timer(struct loop_timer *t)
{
	log_warn(
	    "core", "%u clients did not finish closing in time", conn_open);
	loop_stop();
}

void
conn_shutdown_all(unsigned ms)
{
	conn_shutting_down = true;
	session_drop_all();
	for (struct client *c = clients; c != NULL; c = c->next)
		conn_close(c, WS_CLOSE_GOING_AWAY, "server shutting down");
	loop_timer_set(&conn_shutdown_timer, ms, conn_on_shutdown_timer);
}
