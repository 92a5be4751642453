/*
 * http.c: the libmicrohttpd daemon, run inside our event loop: MHD uses
 * its own epoll set, whose fd sits in ours; MHD_run is called when it is
 * readable and when MHD's next timeout comes. Routes requests to /ws (the
 * WebSocket upgrade, handed to conn.c), /healthz and the static files.
 * MHD never accepts: listen.c does, within the open-file budget, and
 * hands each socket over (http_add); http.c keeps the HTTP-phase
 * connections in idle order so that one can be closed to make room.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "parley.h"

/* HTTP connections from one address beyond max_connections_per_ip, so
 * that the refusals can still be answered with a status. */
#define HTTP_SPARE_PER_IP 8
/* An HTTP connection idle this long may be closed to make room for a
 * new one when descriptors run short (MHD's timeouts are in seconds). */
#define HTTP_EVICT_IDLE_MS 1000

/* An HTTP-phase connection (MHD's socket context): accepted, between
 * requests, or being answered. Idle ones are listed oldest first. */
struct http_conn {
	struct MHD_Connection *mhd;
	struct http_conn *prev, *next; /* on http_idle while idle */
	uint64_t idle_since;
	struct loop_timer deadline; /* of the request being sent */
	MHD_socket fd;
	bool idle;
	bool upgraded; /* handed to conn.c: MHD is letting go of it */
	bool counted; /* in http_peer_counts */
	uint64_t client; /* admitted, waiting for its 101; 0: none */
	char addr[INET6_ADDRSTRLEN + 8]; /* the peer, for its HTTP slots */
};
static struct {
	struct http_conn *head, *tail;
} http_idle;
static unsigned http_open; /* HTTP-phase connections, both daemons */

/* The main listener, and the optional admin listener for /metrics. */
struct http_daemon {
	struct MHD_Daemon *mhd;
	struct loop_fd lfd;
	struct loop_timer timer;
	bool admin;
};
static struct http_daemon http_daemons[2] = {
	{ .lfd = { .fd = -1 } },
	{ .lfd = { .fd = -1 }, .admin = true },
};
static bool http_kicked;

static void http_request_received(struct MHD_Connection *conn);

/* Trusted proxies, parsed from cfg->trusted_proxies. */
struct http_cidr {
	int family;
	uint8_t addr[16];
	unsigned bits;
};
static struct http_cidr *http_proxies;
static size_t http_nproxies;

/* Open HTTP connections per peer address (only the limited ones). */
static struct map http_peer_counts;

static void
http_idle_remove(struct http_conn *hc)
{
	if (!hc->idle)
		return;
	if (hc->prev != NULL)
		hc->prev->next = hc->next;
	else
		http_idle.head = hc->next;
	if (hc->next != NULL)
		hc->next->prev = hc->prev;
	else
		http_idle.tail = hc->prev;
	hc->prev = hc->next = NULL;
	hc->idle = false;
}

static void
http_idle_append(struct http_conn *hc)
{
	http_idle_remove(hc);
	hc->idle = true;
	hc->idle_since = loop_now();
	hc->prev = http_idle.tail;
	if (http_idle.tail != NULL)
		http_idle.tail->next = hc;
	else
		http_idle.head = hc;
	http_idle.tail = hc;
}

static struct http_conn *
http_conn_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *info = MHD_get_connection_info(
	    conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return info != NULL ? info->socket_context : NULL;
}

unsigned
http_count(void)
{
	return http_open;
}

/* Closes the HTTP connection idle the longest, if it has been idle long
 * enough: it goes on MHD's next run. Returns false when there is none. */
bool
http_evict_idle(void)
{
	struct http_conn *hc = http_idle.head;

	if (hc == NULL || loop_now() - hc->idle_since < HTTP_EVICT_IDLE_MS)
		return false;
	http_idle_remove(hc);
	/* Public API for "close once idle for 1 s": it has been. */
	MHD_set_connection_option(
	    hc->mhd, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned int)1);
	metrics_add(METRIC_HTTP_EVICTED, 1);
	http_kick();
	return true;
}

static void
http_run(struct http_daemon *d)
{
	if (d->mhd != NULL && MHD_run(d->mhd) != MHD_YES)
		log_warn("http", "MHD_run failed");
}

static void
http_on_event(struct loop_fd *lfd, uint32_t events)
{
	http_run(container_of(lfd, struct http_daemon, lfd));
}

static void
http_on_timer(struct loop_timer *t)
{
	http_run(container_of(t, struct http_daemon, timer));
}

void
http_kick(void)
{
	http_kicked = true;
}

/* Keeps MHD's next timeout (HTTP-phase deadlines) in our timer heap. */
static void
http_before_sleep(void)
{
	MHD_UNSIGNED_LONG_LONG ms;
	bool kicked = http_kicked;

	http_kicked = false;
	for (size_t i = 0; i < 2; i++) {
		struct http_daemon *d = &http_daemons[i];
		if (d->mhd == NULL)
			continue;
		/* MHD cleans up sockets given back to it, and reads new
		 * ones, only in MHD_run. */
		if (kicked)
			http_run(d);
		if (MHD_get_timeout(d->mhd, &ms) == MHD_YES)
			loop_timer_set(&d->timer, ms, http_on_timer);
		else
			loop_timer_cancel(&d->timer);
	}
	/* A run here may have upgraded a connection, whose welcome (and
	 * answers to bytes sent with the request) must leave before the
	 * loop sleeps: the flushing step ran before this one. */
	if (kicked)
		conn_flush_pending();
}

static int
http_cidr_parse(const char *text, struct http_cidr *out)
{
	char buf[64], *slash;
	long bits;

	snprintf(buf, sizeof buf, "%s", text);
	slash = strchr(buf, '/');
	if (slash != NULL)
		*slash++ = '\0';
	memset(out, 0, sizeof *out);
	if (inet_pton(AF_INET, buf, out->addr) == 1) {
		out->family = AF_INET;
		bits = 32;
	} else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
		out->family = AF_INET6;
		bits = 128;
	} else
		return -1;
	if (slash != NULL) {
		char *end;
		long b = strtol(slash, &end, 10);
		if (*slash == '\0' || *end != '\0' || b < 0 || b > bits)
			return -1;
		bits = b;
	}
	out->bits = (unsigned)bits;
	return 0;
}

bool
http_cidr_valid(const char *text)
{
	struct http_cidr c;

	return http_cidr_parse(text, &c) == 0;
}

/* Parses trusted_proxies; returns -1 with *cause on a bad entry. */
int
http_set_proxies(const struct strlist *list, char **cause)
{
	struct http_cidr *v = xcalloc(list->n + 1, sizeof *v);

	for (size_t i = 0; i < list->n; i++) {
		if (http_cidr_parse(list->v[i], &v[i]) == -1) {
			xasprintf(cause,
			    "trusted_proxies: not an address or "
			    "CIDR block: %s",
			    list->v[i]);
			free(v);
			return -1;
		}
	}
	free(http_proxies);
	http_proxies = v;
	http_nproxies = list->n;
	return 0;
}

static bool
http_cidr_match(const struct http_cidr *c, int family, const uint8_t *a)
{
	unsigned full = c->bits / 8, rest = c->bits % 8;

	if (c->family != family)
		return false;
	if (memcmp(c->addr, a, full) != 0)
		return false;
	return rest == 0 ||
	    ((c->addr[full] ^ a[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

/* True when text is an address inside a trusted proxy block. */
static bool
http_trusted(const char *text)
{
	uint8_t a[16];
	int family;

	if (inet_pton(AF_INET, text, a) == 1)
		family = AF_INET;
	else if (inet_pton(AF_INET6, text, a) == 1)
		family = AF_INET6;
	else
		return false;
	for (size_t i = 0; i < http_nproxies; i++) {
		if (http_cidr_match(&http_proxies[i], family, a))
			return true;
	}
	return false;
}

/* True for the addresses per-address limits (bans, connection caps and
 * rates) never apply to: the loopback addresses and the trusted proxies'
 * own. Each carries many people's connections (a local proxy, a proxy in
 * front), and refusing one would refuse them all. */
bool
http_address_exempt(const char *addr)
{
	return strcmp(addr, "127.0.0.1") == 0 || strcmp(addr, "::1") == 0 ||
	    strcmp(addr, "::ffff:127.0.0.1") == 0 || http_trusted(addr);
}

static bool
http_loopback(const char *text)
{
	return strncmp(text, "127.", 4) == 0 || strcmp(text, "::1") == 0 ||
	    strncmp(text, "::ffff:127.", 11) == 0;
}

static enum MHD_Result
http_respond_text(
    struct MHD_Connection *conn, unsigned status, const char *text)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
	    strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;

	MHD_add_response_header(
	    resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	static_add_security_headers(resp, false);
	if (status == MHD_HTTP_UPGRADE_REQUIRED)
		MHD_add_response_header(resp, "Sec-WebSocket-Version", "13");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result
http_refuse(struct MHD_Connection *conn, unsigned status, unsigned retry,
    const char *text)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
	    strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
	char value[16];
	enum MHD_Result ret;

	MHD_add_response_header(
	    resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	snprintf(value, sizeof value, "%u", retry ? retry : 1);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, value);
	static_add_security_headers(resp, false);
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void
http_peer_address(struct MHD_Connection *conn, char *out, size_t size)
{
	const union MHD_ConnectionInfo *info = MHD_get_connection_info(
	    conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = info ? info->client_addr : NULL;
	socklen_t len;

	snprintf(out, size, "unknown");
	if (sa == NULL)
		return;
	len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
					: sizeof(struct sockaddr_in);
	getnameinfo(sa, len, out, (socklen_t)size, NULL, 0, NI_NUMERICHOST);
}

struct http_joined {
	char text[1024];
	size_t len;
	bool overflow;
};

static enum MHD_Result
http_join_xff(
    void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct http_joined *j = cls;
	size_t n;

	if (strcasecmp(key, "X-Forwarded-For") != 0 || value == NULL)
		return MHD_YES;
	n = strlen(value);
	if (j->len + n + 3 > sizeof j->text) {
		/* Too long to trust any part of it: keep only the right
		 * end, which the nearest proxies wrote. */
		j->overflow = true;
		j->len = 0;
	}
	if (n + 1 > sizeof j->text)
		return MHD_YES;
	if (j->len > 0) {
		memcpy(j->text + j->len, ", ", 2);
		j->len += 2;
	}
	memcpy(j->text + j->len, value, n);
	j->len += n;
	j->text[j->len] = '\0';
	return MHD_YES;
}

/* The client's address: the peer's, or, when the peer is a trusted
 * proxy, the nearest untrusted hop of X-Forwarded-For (else X-Real-IP). */
static void
http_client_address(struct MHD_Connection *conn, char *out, size_t size)
{
	const char *xff, *real;
	char hop[INET6_ADDRSTRLEN + 8];
	struct http_joined joined = { .len = 0 };

	http_peer_address(conn, out, size);
	if (http_nproxies == 0 || !http_trusted(out))
		return;
	/* Repeated header lines form one list (RFC 9110 5.3): a proxy may
	 * add its own line after the client's. */
	MHD_get_connection_values(
	    conn, MHD_HEADER_KIND, http_join_xff, &joined);
	xff = joined.len > 0 ? joined.text : NULL;
	if (xff != NULL) {
		/* Walk from the right: each trusted hop vouches for the one
		 * before it. */
		const char *end = xff + strlen(xff);
		while (end > xff) {
			const char *start = end;
			size_t n;
			while (start > xff && start[-1] != ',')
				start--;
			while (start < end && (*start == ' ' || *start == '\t'))
				start++;
			n = (size_t)(end - start);
			while (n > 0 &&
			    (start[n - 1] == ' ' || start[n - 1] == '\t'))
				n--;
			if (n == 0 || n >= sizeof hop) {
				/* Malformed: the client is unknown, and must
				 * not pass for the proxy itself. */
				snprintf(out, size, "unknown");
				return;
			}
			memcpy(hop, start, n);
			hop[n] = '\0';
			if (!http_trusted(hop)) {
				uint8_t a[16];
				if (inet_pton(AF_INET, hop, a) == 1 ||
				    inet_pton(AF_INET6, hop, a) == 1)
					snprintf(out, size, "%s", hop);
				else
					snprintf(out, size, "unknown");
				return;
			}
			snprintf(out, size, "%s", hop);
			end = start;
			while (end > xff && end[-1] != ',')
				end--;
			if (end > xff)
				end--; /* the comma */
		}
		return;
	}
	real = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Real-IP");
	if (real != NULL) {
		uint8_t a[16];
		size_t n;
		real = ws_header_trim(real, &n);
		if (n >= sizeof hop)
			return;
		memcpy(hop, real, n);
		hop[n] = '\0';
		if (inet_pton(AF_INET, hop, a) == 1 ||
		    inet_pton(AF_INET6, hop, a) == 1)
			snprintf(out, size, "%s", hop);
	}
}

/*
 * The upgraded socket becomes parley's here, and libmicrohttpd lets go of
 * the connection at once. MHD keeps its connection, its memory pool
 * (max_header_bytes, fully touched) and the upgrade handle until
 * MHD_UPGRADE_ACTION_CLOSE, about 9 KB per connection for as long as the
 * WebSocket lives. So the socket is duplicated, the bytes MHD already
 * read past the request (extra_in, which lives in that pool) go to the
 * codec first, and the upgrade is released before returning: MHD frees
 * everything and closes its own descriptor on its next run (http_kick).
 * It does not shut a non-TLS socket down, so the duplicate stays a live
 * connection. This relies on libmicrohttpd's behaviour (0.9.75 to
 * 1.0.x), not on its documentation; tests/integration/test_release.py
 * guards it.
 */
static void
http_on_upgrade(void *cls, struct MHD_Connection *conn, void *req_cls,
    const char *extra_in, size_t extra_in_size, MHD_socket sock,
    struct MHD_UpgradeResponseHandle *urh)
{
	struct http_conn *hc = http_conn_of(conn);
	struct client *c = client_find_by_id((uint64_t)(uintptr_t)cls);
	int fd = fcntl(sock, F_DUPFD_CLOEXEC, 3);

	if (hc != NULL) {
		http_idle_remove(hc);
		hc->upgraded = true;
		hc->client = 0;
		/* The HTTP phase is over: no request deadline for conn.c's
		 * socket. */
		loop_timer_cancel(&hc->deadline);
	}
	if (c == NULL || c->dead) {
		if (fd != -1)
			close(fd);
	} else if (fd == -1) {
		log_warn("http", "cannot take over the socket of %s: %s",
		    c->addr, strerror(errno));
		client_unlink(c);
	} else
		conn_accept(c, fd, extra_in, extra_in_size);
	MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
	http_kick();
}

/* ---- The request as the connect hooks see it (struct chat_request) */

static const char *
http_req_value(
    const struct chat_request *r, enum MHD_ValueKind kind, const char *name)
{
	return MHD_lookup_connection_value(r->arg, kind, name);
}

static const char *
http_req_header(const struct chat_request *r, const char *name)
{
	return http_req_value(r, MHD_HEADER_KIND, name);
}

static const char *
http_req_cookie(const struct chat_request *r, const char *name)
{
	return http_req_value(r, MHD_COOKIE_KIND, name);
}

static const char *
http_req_param(const struct chat_request *r, const char *name)
{
	return http_req_value(r, MHD_GET_ARGUMENT_KIND, name);
}

struct http_req_each {
	void (*fn)(const char *name, const char *value, void *arg);
	void *arg;
};

static enum MHD_Result
http_req_each_one(
    void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct http_req_each *e = cls;

	if (key != NULL && value != NULL)
		e->fn(key, value, e->arg);
	return MHD_YES;
}

static void
http_req_each(const struct chat_request *r, char kind,
    void (*fn)(const char *name, const char *value, void *arg), void *arg)
{
	struct http_req_each e = { fn, arg };

	MHD_get_connection_values(r->arg,
	    kind == 'c'	      ? MHD_COOKIE_KIND
		: kind == 'p' ? MHD_GET_ARGUMENT_KIND
			      : MHD_HEADER_KIND,
	    http_req_each_one, &e);
}

/* MHD parses the query string into arguments and keeps no raw copy: the
 * hooks get them joined again, decoded, "k=v&k2=v2" (params has them one
 * by one). */
static void
http_req_query_add(const char *name, const char *value, void *arg)
{
	char **q = arg, *n;

	xasprintf(&n, "%s%s%s=%s", *q, **q ? "&" : "", name, value);
	free(*q);
	*q = n;
}

/* A refusal before the upgrade: status and {"error", "message"}. */
static enum MHD_Result
http_refuse_json(struct MHD_Connection *conn, unsigned status, enum proto_err e,
    const char *message)
{
	json_t *o = json_pack(
	    "{s:s, s:s}", "error", proto_err_code(e), "message", message);
	char *text = json_dumps(o, JSON_COMPACT);
	struct MHD_Response *resp;
	enum MHD_Result ret;

	json_decref(o);
	if (text == NULL)
		return MHD_NO;
	resp = MHD_create_response_from_buffer(
	    strlen(text), text, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(
	    resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(
	    resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(
		    resp, "WWW-Authenticate", "Bearer realm=\"parley\"");
	/* The connection asked to be upgraded; it is not: done with it. */
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	static_add_security_headers(resp, false);
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* The connect hooks decide, while the request is still open, whether it
 * becomes a WebSocket, and as whom. A refused one costs nothing more. */
static struct client *
http_admit(struct MHD_Connection *conn, const char *addr, enum MHD_Result *ret)
{
	struct chat_request req = { .path = "/ws",
		.header = http_req_header,
		.cookie = http_req_cookie,
		.param = http_req_param,
		.each = http_req_each,
		.arg = conn };
	struct client *c;
	struct http_conn *hc = http_conn_of(conn);
	char *why = NULL, *query = xstrdup("");
	enum proto_err e;
	unsigned status;

	http_req_each(&req, 'p', http_req_query_add, &query);
	req.query = query;
	c = client_create(addr);
	/* Nothing is sent before the welcome: the socket is not ours yet. */
	c->closing = true;
	e = chat_connect(c, &req, &why);
	free(query);
	if (e == PROTO_OK) {
		free(why);
		if (hc != NULL)
			hc->client = c->id;
		return c;
	}
	status = e == PROTO_ERR_UNAUTHORIZED ? MHD_HTTP_UNAUTHORIZED
	    : e == PROTO_ERR_INTERNAL	     ? MHD_HTTP_INTERNAL_SERVER_ERROR
					     : MHD_HTTP_FORBIDDEN;
	log_info("http", "refused %s: %s (%u)", addr,
	    why ? why : proto_err_code(e), status);
	*ret = http_refuse_json(conn, status, e,
	    why ? why
		: e == PROTO_ERR_UNAUTHORIZED
		? "who are you? the server does not "
		  "know"
		: e == PROTO_ERR_INTERNAL ? "the server could not decide"
					  : "refused by the server");
	free(why);
	client_unlink(c);
	return NULL;
}

static bool
http_origin_allowed(const char *origin)
{
	size_t n;

	if (origin == NULL || cfg->allowed_origins.n == 0)
		return true;
	origin = ws_header_trim(origin, &n);
	for (size_t i = 0; i < cfg->allowed_origins.n; i++) {
		if (strlen(cfg->allowed_origins.v[i]) == n &&
		    memcmp(origin, cfg->allowed_origins.v[i], n) == 0)
			return true;
	}
	return false;
}

static enum MHD_Result
http_upgrade(struct MHD_Connection *conn, const char *method)
{
	char accept[WS_ACCEPT_LEN + 1];
	char addr[INET6_ADDRSTRLEN + 8];
	unsigned retry;
	enum limit_admit admit;
	const char *cause = NULL;
	const char *origin = MHD_lookup_connection_value(
	    conn, MHD_HEADER_KIND, "Origin");
	struct MHD_Response *resp;
	enum MHD_Result ret;
	struct client *c;
	int status;

	status = ws_handshake_check(method,
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Upgrade"),
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Connection"),
	    MHD_lookup_connection_value(
		conn, MHD_HEADER_KIND, "Sec-WebSocket-Key"),
	    MHD_lookup_connection_value(
		conn, MHD_HEADER_KIND, "Sec-WebSocket-Version"),
	    accept, &cause);
	if (status != 0) {
		log_debug("http", "refused upgrade: %s", cause);
		return http_respond_text(conn, (unsigned)status, cause);
	}
	if (!http_origin_allowed(origin)) {
		log_info("http", "refused upgrade from origin %s", origin);
		return http_respond_text(
		    conn, MHD_HTTP_FORBIDDEN, "origin not allowed\n");
	}
	http_client_address(conn, addr, sizeof addr);
	admit = limit_admit(addr, &retry);
	if (admit != LIMIT_OK)
		metrics_add(METRIC_HTTP_REFUSED, 1);
	switch (admit) {
	case LIMIT_OK:
		break;
	case LIMIT_FULL:
		log_warn("http", "refused %s: the server is at %u connections",
		    addr, cfg->max_connections);
		return http_refuse(conn, MHD_HTTP_SERVICE_UNAVAILABLE, 5,
		    "the server is full; try again later\n");
	case LIMIT_ADDR_FULL:
		log_info("http", "refused %s: %u connections from it", addr,
		    cfg->max_connections_per_ip);
		return http_refuse(conn, MHD_HTTP_TOO_MANY_REQUESTS, 10,
		    "too many connections from your address\n");
	case LIMIT_RATE:
		log_info("http", "refused %s: connecting too fast", addr);
		return http_refuse(conn, MHD_HTTP_TOO_MANY_REQUESTS, retry,
		    "connecting too fast; try again later\n");
	case LIMIT_BANNED:
		log_debug("http", "refused %s: banned", addr);
		return http_refuse(conn, MHD_HTTP_TOO_MANY_REQUESTS, retry,
		    "too many violations; try again later\n");
	}
	if ((c = http_admit(conn, addr, &ret)) == NULL)
		return ret;
	resp = MHD_create_response_for_upgrade(
	    http_on_upgrade, (void *)(uintptr_t)c->id);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, "websocket");
	/* MHD adds "Connection: Upgrade" itself. */
	MHD_add_response_header(resp, "Sec-WebSocket-Accept", accept);
	ret = MHD_queue_response(conn, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* A generated body (taken), never cached. */
static enum MHD_Result
http_respond_generated(
    struct MHD_Connection *conn, char *text, size_t len, const char *type)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
	    len, text, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result ret;

	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(
	    resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	static_add_security_headers(resp, false);
	ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result
http_healthz(struct MHD_Connection *conn)
{
	bool ok;
	json_t *plugins = plugin_health(&ok), *j;
	char *text;

	/* Degraded is still 200: the server serves its own clients (e.g. a
	 * cluster member cut off from Redis), and a balancer that dropped
	 * every such server would serve nobody. */
	j = json_pack("{s:s, s:I, s:I}", "status", ok ? "ok" : "degraded",
	    "connections", (json_int_t)conn_count(), "rooms",
	    (json_int_t)room_count());
	if (json_object_size(plugins) > 0)
		json_object_set(j, "plugins", plugins);
	json_decref(plugins);
	text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return http_respond_generated(
	    conn, text, strlen(text), "application/json");
}

static enum MHD_Result
http_metrics(struct MHD_Connection *conn)
{
	size_t len;
	char *text = metrics_render(&len);

	return http_respond_generated(
	    conn, text, len, "text/plain; version=0.0.4; charset=utf-8");
}

/* The request state of every request but the admin API's. */
static int http_seen;

static enum MHD_Result
http_on_request(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **req_cls)
{
	struct http_daemon *d = cls;
	bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;

	/* The admin API reads bodies, and lives on the admin listener
	 * only: elsewhere it does not exist. */
	if (admin_path(url)) {
		struct http_conn *hc = http_conn_of(conn);
		if (!d->admin) {
			if (*req_cls == NULL) {
				*req_cls = &http_seen;
				return MHD_YES;
			}
			if (*upload_data_size != 0) {
				*upload_data_size = 0;
				return MHD_YES;
			}
			return http_respond_text(
			    conn, MHD_HTTP_NOT_FOUND, "not found\n");
		}
		if (*req_cls == NULL && hc != NULL)
			http_idle_remove(hc);
		else if (*upload_data_size == 0)
			http_request_received(conn);
		return (enum MHD_Result)admin_request(conn,
		    hc != NULL ? hc->addr : "unknown", url, method, upload_data,
		    upload_data_size, req_cls);
	}

	/* MHD 0.9.75 closes the connection after a response queued on the
	 * first call: answer on the second so keep-alive works. */
	if (*req_cls == NULL) {
		struct http_conn *hc = http_conn_of(conn);
		if (hc != NULL)
			http_idle_remove(hc); /* busy: not to be evicted */
		*req_cls = &http_seen;
		return MHD_YES;
	}
	/* Nothing here reads a body: refuse one rather than buffer it. */
	if (*upload_data_size != 0) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	http_request_received(conn);
	if (get && strcmp(url, "/healthz") == 0)
		return http_healthz(conn);
	if (get && strcmp(url, "/metrics") == 0) {
		char peer[INET6_ADDRSTRLEN + 8];
		/* Without an admin listener, only this machine may look
		 * (through a trusted proxy: the client behind it). */
		http_client_address(conn, peer, sizeof peer);
		if (d->admin ||
		    (cfg->admin_listen == NULL && http_loopback(peer)))
			return http_metrics(conn);
		return http_respond_text(conn, MHD_HTTP_FORBIDDEN,
		    "metrics are served to loopback or the admin listener\n");
	}
	if (d->admin)
		return http_respond_text(
		    conn, MHD_HTTP_NOT_FOUND, "not found\n");
	if (strcmp(url, "/ws") == 0) {
		/* RFC 6455 needs HTTP/1.1; MHD would just drop the socket. */
		if (strcmp(version, MHD_HTTP_VERSION_1_1) != 0)
			return http_respond_text(conn, MHD_HTTP_BAD_REQUEST,
			    "WebSocket upgrades need HTTP/1.1\n");
		return http_upgrade(conn, method);
	}
	return (enum MHD_Result)static_serve(conn, cfg->web_root, method, url);
}

static int
http_hex(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Decodes %HH in place like MHD's default, except that %00 stays as it
 * is: a NUL would silently cut the path short, so "/a.html%00.css"
 * must not become "/a.html". */
static size_t
http_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
	char *w = s;

	for (const char *r = s; *r != '\0'; r++) {
		int hi, lo;
		if (*r == '%' && (hi = http_hex(r[1])) != -1 &&
		    (lo = http_hex(r[2])) != -1 && (hi | lo) != 0) {
			*w++ = (char)(hi << 4 | lo);
			r += 2;
		} else
			*w++ = *r;
	}
	*w = '\0';
	return (size_t)(w - s);
}

static void
http_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	if (log_level < LOG_LVL_DEBUG)
		return;
	vsnprintf(line, sizeof line, fmt, ap);
	n = strlen(line);
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	log_write(LOG_LVL_DEBUG, "http", "%s", line);
}

/* The request deadline passed: shutting the socket down makes MHD see
 * the end of it and close the connection itself, in its own time. */
static void
http_on_deadline(struct loop_timer *t)
{
	struct http_conn *p = container_of(t, struct http_conn, deadline);

	log_info("http", "%s: request not received within %us, closing",
	    p->addr, cfg->http_request_timeout);
	metrics_add(METRIC_HTTP_TIMEOUTS, 1);
	shutdown(p->fd, SHUT_RDWR);
}

static void
http_deadline_start(struct http_conn *p)
{
	if (!p->upgraded)
		loop_timer_set(&p->deadline,
		    (uint64_t)cfg->http_request_timeout * 1000,
		    http_on_deadline);
}

/* A whole request is in: what remains (the answer) has only the idle
 * timeout. */
static void
http_request_received(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *info = MHD_get_connection_info(
	    conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	if (info != NULL && info->socket_context != NULL)
		loop_timer_cancel(
		    &((struct http_conn *)info->socket_context)->deadline);
}

/* The answer is out: a kept-alive connection waits for its next request
 * (idle, so it may make room when descriptors run short) and has
 * http_request_timeout again to send it. */
static void
http_on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct http_conn *hc = http_conn_of(conn);

	if (*req_cls != NULL && *req_cls != &http_seen)
		admin_request_done(*req_cls);
	*req_cls = NULL;
	if (hc == NULL || hc->upgraded)
		return;
	if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
		http_idle_append(hc);
	http_deadline_start(hc);
}

static size_t
http_peer_count(const char *addr)
{
	return (size_t)(uintptr_t)map_find(
	    &http_peer_counts, addr, strlen(addr));
}

static void
http_peer_count_set(const char *addr, size_t n)
{
	size_t len = strlen(addr);

	map_remove(&http_peer_counts, addr, len);
	if (n > 0)
		map_add(&http_peer_counts, addr, len, (void *)(uintptr_t)n);
}

/* A peer address as text; "unknown" when there is none. */
static void
http_sockaddr_text(
    const struct sockaddr *sa, socklen_t len, char *out, size_t size)
{
	snprintf(out, size, "unknown");
	if (sa != NULL)
		getnameinfo(
		    sa, len, out, (socklen_t)size, NULL, 0, NI_NUMERICHOST);
}

/* One address must not hold every HTTP slot (slowloris). The cap is above
 * max_connections_per_ip, so our own 429 still answers first at the
 * upgrade; exempt addresses (loopback, trusted proxies) carry many
 * people's connections and are not capped. MHD's own per-IP limit could
 * not spare them. */
static bool
http_peer_admitted(const struct sockaddr *sa, socklen_t len)
{
	char addr[INET6_ADDRSTRLEN + 8];

	http_sockaddr_text(sa, len, addr, sizeof addr);
	if (http_address_exempt(addr) ||
	    http_peer_count(addr) <
		(size_t)cfg->max_connections_per_ip + HTTP_SPARE_PER_IP)
		return true;
	log_debug("http",
	    "refused %s: every HTTP slot of the address is "
	    "taken",
	    addr);
	return false;
}

/* MHD's word that a socket was taken on or is gone. */
static void
http_on_connection(void *cls, struct MHD_Connection *conn,
    void **socket_context, enum MHD_ConnectionNotificationCode toe)
{
	struct http_conn *hc = *socket_context;
	const union MHD_ConnectionInfo *info;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		hc = xcalloc(1, sizeof *hc);
		hc->mhd = conn;
		info = MHD_get_connection_info(
		    conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		http_sockaddr_text(info ? info->client_addr : NULL,
		    info && info->client_addr &&
			    info->client_addr->sa_family == AF_INET6
			? sizeof(struct sockaddr_in6)
			: sizeof(struct sockaddr_in),
		    hc->addr, sizeof hc->addr);
		info = MHD_get_connection_info(
		    conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		hc->fd = info != NULL ? info->connect_fd : MHD_INVALID_SOCKET;
		if (!http_address_exempt(hc->addr)) {
			hc->counted = true;
			http_peer_count_set(
			    hc->addr, http_peer_count(hc->addr) + 1);
		}
		if (hc->fd != MHD_INVALID_SOCKET)
			http_deadline_start(hc);
		*socket_context = hc;
		http_open++;
		http_idle_append(hc);
		return;
	}
	if (hc == NULL)
		return;
	if (hc->client != 0) {
		/* Admitted, but gone before its upgrade. */
		struct client *c = client_find_by_id(hc->client);
		if (c != NULL && !c->dead)
			client_unlink(c);
	}
	http_idle_remove(hc);
	loop_timer_cancel(&hc->deadline);
	if (hc->counted) {
		size_t n = http_peer_count(hc->addr);
		http_peer_count_set(hc->addr, n > 0 ? n - 1 : 0);
	}
	free(hc);
	*socket_context = NULL;
	http_open--;
}

static int
http_start_daemon(struct http_daemon *d, int listen_fd, char **cause)
{
	const union MHD_DaemonInfo *info;

	/* No listening socket for MHD: listen.c accepts (see there). */
	/* The admin API waits for the accounts' worker suspended. */
	d->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_UPGRADE |
		MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET |
		(d->admin ? MHD_ALLOW_SUSPEND_RESUME : 0),
	    0, NULL, NULL, http_on_request, d, MHD_OPTION_EXTERNAL_LOGGER,
	    http_log, NULL, MHD_OPTION_UNESCAPE_CALLBACK, http_unescape, NULL,
	    MHD_OPTION_NOTIFY_CONNECTION, http_on_connection, NULL,
	    MHD_OPTION_NOTIFY_COMPLETED, http_on_completed, NULL,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->http_timeout,
	    /* After the upgrade MHD keeps nothing of a WebSocket, so its
	     * limit covers the HTTP phase only; the open-file budget
	     * (listen.c) caps sockets, and our own limits answer 503/429
	     * at the upgrade. This is only a backstop. */
	    MHD_OPTION_CONNECTION_LIMIT, listen_capacity(),
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)cfg->max_header_bytes,
	    MHD_OPTION_END);
	if (d->mhd == NULL) {
		xasprintf(cause, "cannot start the HTTP daemon");
		return -1;
	}
	info = MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (info == NULL ||
	    loop_fd_add(&d->lfd, info->epoll_fd, EPOLLIN, http_on_event) ==
		-1) {
		xasprintf(cause, "cannot watch the HTTP daemon's epoll fd");
		MHD_stop_daemon(d->mhd);
		d->mhd = NULL;
		return -1;
	}
	return listen_start(listen_fd, d->admin, cause);
}

/* Hands an accepted socket to MHD; on failure MHD closed it. */
void
http_add(bool admin, int fd, const struct sockaddr *sa, socklen_t len)
{
	struct http_daemon *d = &http_daemons[admin ? 1 : 0];

	if (!http_peer_admitted(sa, len)) {
		close(fd);
		return;
	}
	if (d->mhd == NULL ||
	    MHD_add_connection(d->mhd, fd, sa, len) != MHD_YES) {
		if (d->mhd == NULL)
			close(fd);
		log_debug("http", "connection not taken: %s", strerror(errno));
		return;
	}
	/* MHD reads what already arrived on its next run. */
	http_kick();
}

int
http_start(int listen_fd, int admin_fd, char **cause)
{
	if (http_set_proxies(&cfg->trusted_proxies, cause) == -1)
		return -1;
	map_init(&http_peer_counts);
	if (http_start_daemon(&http_daemons[0], listen_fd, cause) == -1)
		return -1;
	if (admin_fd != -1 &&
	    http_start_daemon(&http_daemons[1], admin_fd, cause) == -1)
		return -1;
	loop_before_sleep(http_before_sleep);
	admin_start();
	return 0;
}

/* Stops accepting new connections; open ones go on. */
void
http_quiesce(void)
{
	listen_stop();
}

void
http_stop(void)
{
	admin_stop();
	if (http_daemons[1].mhd != NULL)
		MHD_run(http_daemons[1].mhd);
	for (size_t i = 0; i < 2; i++) {
		struct http_daemon *d = &http_daemons[i];
		if (d->mhd == NULL)
			continue;
		loop_fd_remove(&d->lfd);
		loop_timer_cancel(&d->timer);
		MHD_stop_daemon(d->mhd);
		d->mhd = NULL;
	}
	listen_stop();
	free(http_proxies);
	http_proxies = NULL;
	http_nproxies = 0;
	map_free(&http_peer_counts);
	admin_free();
}
