/*
 * mock.c: a stand-in server for measuring the bench itself (--mock). It
 * speaks just enough of the parley protocol for parley-bench's own
 * traffic (the upgrade, welcome, create_room, join_room, send_message
 * and ping) and does the fan-out as cheaply as it can: a new_message is
 * framed once, appended to every member's buffer, and each buffer goes
 * out in one write per loop iteration. Whatever rate the pair reaches is
 * then a floor for what the bench can take in, with its CPU share beside
 * it. It trusts its only client: no limits, no UTF-8 or JSON checks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

struct mroom;

struct mconn {
	int fd;
	bool upgraded;
	bool dirty;
	bool pollout;   /* EPOLLOUT registered */
	uint32_t id;
	struct mroom *room;   /* the one room it is in, or NULL */
	uint8_t *in;
	size_t in_len, in_cap;
	uint8_t *out;
	size_t out_len, out_cap, out_off;
	struct mconn *next_dirty;
};

struct mroom {
	char name[72];
	size_t name_len;
	uint64_t seq;
	struct mconn **members;
	size_t n, cap;
};

static struct {
	int ep;
	struct mroom **rooms;
	size_t nrooms, rooms_cap;
	struct mconn *dirty;
	uint32_t next_id;
	uint8_t *scratch;     /* one frame being built */
	size_t scratch_cap;

	/* Faults on every 1000th delivery, to show that the bench's
	 * checks catch them (PARLEY_BENCH_MOCK_FAULT). */
	int fault;            /* 0, 'd'rop, d'u'plicate, 'l'ate */
	uint64_t deliveries;
	struct mconn *held_conn;
	uint64_t held_seq;
	uint8_t held[512];
	size_t held_len;
} mk;

/* Applies the fault to the frame in scratch for c; returns true when
 * the frame must not be queued now. */
static bool mock_fault(struct mconn *, size_t);

static void
mock_reserve(uint8_t **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return;
	while (*cap < need)
		*cap = *cap ? *cap * 2 : 4096;
	if ((*buf = realloc(*buf, *cap)) == NULL)
		abort();
}

static void
mock_queue(struct mconn *c, const void *data, size_t len)
{
	if (c->fd == -1)
		return;
	mock_reserve(&c->out, &c->out_cap, c->out_len + len);
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
	if (!c->dirty) {
		c->dirty = true;
		c->next_dirty = mk.dirty;
		mk.dirty = c;
	}
}

/* Frames text (server frames are unmasked) into the scratch buffer;
 * returns the frame's length. */
static size_t
mock_frame(int opcode, const char *text, size_t len)
{
	size_t h = 2;

	mock_reserve(&mk.scratch, &mk.scratch_cap, len + 10);
	mk.scratch[0] = 0x80 | (uint8_t)opcode;
	if (len < 126)
		mk.scratch[1] = (uint8_t)len;
	else if (len <= 0xffff) {
		mk.scratch[1] = 126;
		mk.scratch[2] = (uint8_t)(len >> 8);
		mk.scratch[3] = (uint8_t)len;
		h = 4;
	} else {
		mk.scratch[1] = 127;
		for (int i = 0; i < 8; i++)
			mk.scratch[2 + i] = (uint8_t)((uint64_t)len >>
			    (56 - 8 * i));
		h = 10;
	}
	memcpy(mk.scratch + h, text, len);
	return h + len;
}

static void
mock_send(struct mconn *c, const char *text, size_t len)
{
	size_t n = mock_frame(0x1, text, len);

	mock_queue(c, mk.scratch, n);
}

static void
mock_close(struct mconn *c)
{
	struct mroom *r = c->room;

	if (c->fd == -1)
		return;
	epoll_ctl(mk.ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	if (r != NULL) {
		for (size_t i = 0; i < r->n; i++) {
			if (r->members[i] == c) {
				r->members[i] = r->members[--r->n];
				break;
			}
		}
	}
	/* Freed only if not on the dirty list; a leak at worst, in a
	 * process that lives for one run. */
	if (!c->dirty) {
		free(c->in);
		free(c->out);
		free(c);
	}
}

static bool
mock_fault(struct mconn *c, size_t len)
{
	switch (mk.fault) {
	case 'd':
		return true;
	case 'u':
		mock_queue(c, mk.scratch, len);
		return false;
	case 'l':
		if (mk.held_conn != NULL || len > sizeof mk.held)
			return false;
		memcpy(mk.held, mk.scratch, len);
		mk.held_len = len;
		mk.held_conn = c;
		mk.held_seq = c->room->seq;
		return true;
	}
	return false;
}

/* The string value of key in a JSON text without escapes. */
static const char *
mock_field(const char *p, size_t n, const char *key, size_t *len)
{
	char pat[32];
	const char *v, *e;

	snprintf(pat, sizeof pat, "\"%s\":\"", key);
	if ((v = memmem(p, n, pat, strlen(pat))) == NULL)
		return NULL;
	v += strlen(pat);
	if ((e = memchr(v, '"', (size_t)(p + n - v))) == NULL)
		return NULL;
	*len = (size_t)(e - v);
	return v;
}

static struct mroom *
mock_room_find(const char *name, size_t len)
{
	for (size_t i = 0; i < mk.nrooms; i++) {
		if (mk.rooms[i]->name_len == len &&
		    memcmp(mk.rooms[i]->name, name, len) == 0)
			return mk.rooms[i];
	}
	return NULL;
}

static void
mock_join(struct mconn *c, struct mroom *r, bool created)
{
	char buf[256];
	int n;

	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 16;
		if ((r->members = realloc(r->members, r->cap *
		    sizeof *r->members)) == NULL)
			abort();
	}
	r->members[r->n++] = c;
	c->room = r;
	n = snprintf(buf, sizeof buf, "{\"type\":\"%s\",\"roomName\":\"%s\"}",
	    created ? "created_room" : "room_joined", r->name);
	mock_send(c, buf, (size_t)n);
	if (created)
		return;
	/* As parley: every member, the joiner too, hears of the join. */
	n = snprintf(buf, sizeof buf, "{\"type\":\"joined_room\",\"roomName\":"
	    "\"%s\",\"username\":\"guest-%u\"}", r->name, c->id);
	for (size_t i = 0; i < r->n; i++)
		mock_send(r->members[i], buf, (size_t)n);
}

static void
mock_text(struct mconn *c, const char *p, size_t n)
{
	const char *type, *name, *msg, *id;
	size_t tlen, nlen, mlen, flen;
	static char json[70000];
	struct mroom *r;
	char buf[512];
	int len;

	if ((type = mock_field(p, n, "type", &tlen)) == NULL)
		return;
	name = mock_field(p, n, "roomName", &nlen);
	if (tlen == 12 && memcmp(type, "send_message", 12) == 0) {
		r = c->room;
		msg = mock_field(p, n, "message", &mlen);
		if (r == NULL || name == NULL || msg == NULL ||
		    nlen != r->name_len || memcmp(name, r->name, nlen) != 0)
			return;
		/* Framed once, copied to every member. */
		flen = (size_t)snprintf(json, sizeof json,
		    "{\"type\":\"new_message\",\"roomName\":\"%s\","
		    "\"message\":\"%.*s\",\"sender\":\"guest-%u\",\"ts\":0,"
		    "\"seq\":%" PRIu64 "}", r->name, (int)mlen, msg, c->id,
		    ++r->seq);
		if (flen >= sizeof json)
			return;
		flen = mock_frame(0x1, json, flen);
		for (size_t i = 0; i < r->n; i++) {
			if (mk.fault != 0 && ++mk.deliveries % 1000 == 0 &&
			    mock_fault(r->members[i], flen))
				continue;
			mock_queue(r->members[i], mk.scratch, flen);
		}
		/* A held frame goes out after a later one of its room. */
		if (mk.held_conn != NULL && mk.held_conn->room == r &&
		    mk.held_seq < r->seq) {
			mock_queue(mk.held_conn, mk.held, mk.held_len);
			mk.held_conn = NULL;
		}
		return;
	}
	if (tlen == 4 && memcmp(type, "ping", 4) == 0) {
		id = memmem(p, n, "\"id\":", 5);
		len = snprintf(buf, sizeof buf, "{\"type\":\"pong\"%s%.*s}",
		    id ? ",\"id\":" : "", id ? (int)strspn(id + 5,
		    "0123456789") : 0, id ? id + 5 : "");
		mock_send(c, buf, (size_t)len);
		return;
	}
	if (name == NULL || nlen >= sizeof r->name)
		return;
	if (tlen == 11 && memcmp(type, "create_room", 11) == 0) {
		if (mock_room_find(name, nlen) != NULL)
			return;
		if ((r = calloc(1, sizeof *r)) == NULL)
			abort();
		memcpy(r->name, name, nlen);
		r->name_len = nlen;
		if (mk.nrooms == mk.rooms_cap) {
			mk.rooms_cap = mk.rooms_cap ? mk.rooms_cap * 2 : 64;
			if ((mk.rooms = realloc(mk.rooms, mk.rooms_cap *
			    sizeof *mk.rooms)) == NULL)
				abort();
		}
		mk.rooms[mk.nrooms++] = r;
		mock_join(c, r, true);
	} else if (tlen == 9 && memcmp(type, "join_room", 9) == 0) {
		if ((r = mock_room_find(name, nlen)) != NULL && c->room == NULL)
			mock_join(c, r, false);
	}
}

/* Unmasks and handles the whole client frames in c->in. */
static void
mock_frames(struct mconn *c)
{
	size_t off = 0, h, len;
	uint8_t *f, *mask;
	uint8_t op;

	for (;;) {
		f = c->in + off;
		if (c->in_len - off < 6)
			break;
		len = f[1] & 0x7f;
		h = 2;
		if (len == 126) {
			if (c->in_len - off < 8)
				break;
			len = (size_t)f[2] << 8 | f[3];
			h = 4;
		} else if (len == 127) {
			if (c->in_len - off < 14)
				break;
			len = 0;
			for (int i = 0; i < 8; i++)
				len = len << 8 | f[2 + i];
			h = 10;
		}
		if (c->in_len - off < h + 4 + len)
			break;
		mask = f + h;
		op = f[0] & 0x0f;
		for (size_t i = 0; i < len; i++)
			mask[4 + i] ^= mask[i & 3];
		if (op == 0x1)
			mock_text(c, (const char *)mask + 4, len);
		else if (op == 0x9)
			mock_queue(c, mk.scratch, mock_frame(0xA,
			    (const char *)mask + 4, len));
		else if (op == 0x8) {
			mock_close(c);
			return;
		}
		off += h + 4 + len;
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
}

static void
mock_upgrade(struct mconn *c)
{
	static const char reply[] = "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    /* The bench always offers RFC 6455's sample key. */
	    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
	uint8_t *end;
	char buf[128];
	size_t used;
	int n;

	end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
	if (end == NULL)
		return;
	used = (size_t)(end - c->in) + 4;
	memmove(c->in, c->in + used, c->in_len - used);
	c->in_len -= used;
	c->upgraded = true;
	mock_queue(c, reply, sizeof reply - 1);
	n = snprintf(buf, sizeof buf, "{\"type\":\"welcome\",\"server\":"
	    "\"parley-bench mock\",\"protocol\":1,\"username\":\"guest-%u\","
	    "\"rooms\":[]}", c->id);
	mock_send(c, buf, (size_t)n);
}

static void
mock_read(struct mconn *c)
{
	ssize_t n;

	mock_reserve(&c->in, &c->in_cap, c->in_len + 65536);
	n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		mock_close(c);
		return;
	}
	c->in_len += (size_t)n;
	if (!c->upgraded)
		mock_upgrade(c);
	if (c->upgraded)
		mock_frames(c);
}

static void
mock_flush(void)
{
	struct mconn *c;
	struct epoll_event ev;
	ssize_t n;

	while ((c = mk.dirty) != NULL) {
		mk.dirty = c->next_dirty;
		c->dirty = false;
		if (c->fd == -1) {
			free(c->in);
			free(c->out);
			free(c);
			continue;
		}
		while (c->out_off < c->out_len) {
			n = send(c->fd, c->out + c->out_off,
			    c->out_len - c->out_off, MSG_NOSIGNAL);
			if (n <= 0)
				break;
			c->out_off += (size_t)n;
		}
		if (c->out_off == c->out_len)
			c->out_off = c->out_len = 0;
		if (c->pollout != (c->out_len != 0)) {
			c->pollout = c->out_len != 0;
			ev.events = EPOLLIN | (c->pollout ? EPOLLOUT : 0);
			ev.data.ptr = c;
			epoll_ctl(mk.ep, EPOLL_CTL_MOD, c->fd, &ev);
		}
	}
}

void
mock_main(int listen_fd)
{
	struct epoll_event ev, evs[512];
	struct mconn *c;
	const char *fault;
	int n, fd, one = 1;

	signal(SIGPIPE, SIG_IGN);
	if ((fault = getenv("PARLEY_BENCH_MOCK_FAULT")) != NULL)
		mk.fault = strcmp(fault, "drop") == 0 ? 'd' :
		    strcmp(fault, "duplicate") == 0 ? 'u' :
		    strcmp(fault, "late") == 0 ? 'l' : 0;
	if ((mk.ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		_exit(1);
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	epoll_ctl(mk.ep, EPOLL_CTL_ADD, listen_fd, &ev);
	for (;;) {
		n = epoll_wait(mk.ep, evs, 512, -1);
		for (int i = 0; i < n; i++) {
			if ((c = evs[i].data.ptr) != NULL) {
				if (evs[i].events & EPOLLOUT)
					mock_queue(c, "", 0); /* resume */
				if (evs[i].events & (EPOLLIN | EPOLLHUP |
				    EPOLLERR))
					mock_read(c);
				continue;
			}
			while ((fd = accept4(listen_fd, NULL, NULL,
			    SOCK_NONBLOCK | SOCK_CLOEXEC)) != -1) {
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
				    sizeof one);
				if ((c = calloc(1, sizeof *c)) == NULL)
					abort();
				c->fd = fd;
				c->id = ++mk.next_id;
				ev.events = EPOLLIN;
				ev.data.ptr = c;
				epoll_ctl(mk.ep, EPOLL_CTL_ADD, fd, &ev);
			}
		}
		mock_flush();
	}
}
