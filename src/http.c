/*
 * http.c: the libmicrohttpd daemon, run inside our event loop: MHD uses
 * its own epoll set, whose fd sits in ours; MHD_run is called when it is
 * readable and when MHD's next timeout comes. Routes requests to /ws (the
 * WebSocket upgrade, handed to conn.c), /healthz and the static files.
 */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "parley.h"

/* HTTP connections beyond max_connections, so that the refusals can
 * still be answered with a status. */
#define HTTP_SPARE_CONNECTIONS 64

static struct MHD_Daemon *http_daemon;
static struct loop_fd http_lfd = { .fd = -1 };
static struct loop_timer http_timer;
static bool http_kicked;

static void
http_run(void)
{
	http_kicked = false;
	if (MHD_run(http_daemon) != MHD_YES)
		log_warn("http", "MHD_run failed");
}

static void
http_on_event(struct loop_fd *lfd, uint32_t events)
{
	http_run();
}

static void
http_on_timer(struct loop_timer *t)
{
	http_run();
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

	if (http_daemon == NULL)
		return;
	if (http_kicked)
		http_run();
	if (MHD_get_timeout(http_daemon, &ms) == MHD_YES)
		loop_timer_set(&http_timer, ms, http_on_timer);
	else
		loop_timer_cancel(&http_timer);
}

static enum MHD_Result
http_respond_text(struct MHD_Connection *conn, unsigned status,
    const char *text)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
	    strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;

	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    "text/plain; charset=utf-8");
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

	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    "text/plain; charset=utf-8");
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
	const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn,
	    MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = info ? info->client_addr : NULL;
	socklen_t len;

	snprintf(out, size, "unknown");
	if (sa == NULL)
		return;
	len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
	getnameinfo(sa, len, out, (socklen_t)size, NULL, 0, NI_NUMERICHOST);
}

static void
http_on_upgrade(void *cls, struct MHD_Connection *conn, void *req_cls,
    const char *extra_in, size_t extra_in_size, MHD_socket sock,
    struct MHD_UpgradeResponseHandle *urh)
{
	char addr[INET6_ADDRSTRLEN + 8];

	http_peer_address(conn, addr, sizeof addr);
	conn_accept(sock, urh, extra_in, extra_in_size, addr);
}

static bool
http_origin_allowed(const char *origin)
{
	if (origin == NULL || cfg->allowed_origins.n == 0)
		return true;
	for (size_t i = 0; i < cfg->allowed_origins.n; i++) {
		if (strcmp(origin, cfg->allowed_origins.v[i]) == 0)
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
	const char *cause = NULL;
	const char *origin = MHD_lookup_connection_value(conn,
	    MHD_HEADER_KIND, "Origin");
	struct MHD_Response *resp;
	enum MHD_Result ret;
	int status;

	status = ws_handshake_check(method,
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Upgrade"),
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Connection"),
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		"Sec-WebSocket-Key"),
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		"Sec-WebSocket-Version"),
	    accept, &cause);
	if (status != 0) {
		log_debug("http", "refused upgrade: %s", cause);
		return http_respond_text(conn, (unsigned)status, cause);
	}
	if (!http_origin_allowed(origin)) {
		log_info("http", "refused upgrade from origin %s", origin);
		return http_respond_text(conn, MHD_HTTP_FORBIDDEN,
		    "origin not allowed\n");
	}
	http_peer_address(conn, addr, sizeof addr);
	switch (limit_admit(addr, &retry)) {
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
	resp = MHD_create_response_for_upgrade(http_on_upgrade, NULL);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, "websocket");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "Upgrade");
	MHD_add_response_header(resp, "Sec-WebSocket-Accept", accept);
	ret = MHD_queue_response(conn, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result
http_healthz(struct MHD_Connection *conn)
{
	json_t *j = json_pack("{s:s, s:I, s:I}", "status", "ok",
	    "connections", (json_int_t)conn_count(), "rooms",
	    (json_int_t)room_count());
	char *text = json_dumps(j, JSON_COMPACT);
	struct MHD_Response *resp;
	enum MHD_Result ret;

	json_decref(j);
	resp = MHD_create_response_from_buffer(strlen(text), text,
	    MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
	    "no-store");
	static_add_security_headers(resp, false);
	ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result
http_on_request(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **req_cls)
{
	/* Nothing here reads a body: refuse one rather than buffer it. */
	if (*upload_data_size != 0) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (strcmp(url, "/ws") == 0)
		return http_upgrade(conn, method);
	if (strcmp(url, "/healthz") == 0 && (strcmp(method, "GET") == 0 ||
	    strcmp(method, "HEAD") == 0))
		return http_healthz(conn);
	return (enum MHD_Result)static_serve(conn, cfg->web_root, method, url);
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

int
http_start(int listen_fd, char **cause)
{
	const union MHD_DaemonInfo *info;

	http_daemon = MHD_start_daemon(
	    MHD_USE_EPOLL | MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG, 0, NULL,
	    NULL, http_on_request, NULL,
	    MHD_OPTION_LISTEN_SOCKET, listen_fd,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->http_timeout,
	    /* Our own limits answer 503/429 at the upgrade; MHD's hard
	     * cap only keeps sockets within the open-file limit. */
	    MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned int)(cfg->max_connections + HTTP_SPARE_CONNECTIONS),
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)cfg->max_header_bytes,
	    MHD_OPTION_EXTERNAL_LOGGER, http_log, NULL,
	    MHD_OPTION_END);
	if (http_daemon == NULL) {
		xasprintf(cause, "cannot start the HTTP daemon");
		return -1;
	}
	info = MHD_get_daemon_info(http_daemon, MHD_DAEMON_INFO_EPOLL_FD);
	if (info == NULL || loop_fd_add(&http_lfd, info->epoll_fd, EPOLLIN,
	    http_on_event) == -1) {
		xasprintf(cause, "cannot watch the HTTP daemon's epoll fd");
		MHD_stop_daemon(http_daemon);
		http_daemon = NULL;
		return -1;
	}
	loop_before_sleep(http_before_sleep);
	return 0;
}

/* Stops accepting new connections; open ones go on. */
void
http_quiesce(void)
{
	MHD_socket fd;

	if (http_daemon == NULL)
		return;
	fd = MHD_quiesce_daemon(http_daemon);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
}

void
http_stop(void)
{
	if (http_daemon == NULL)
		return;
	loop_fd_remove(&http_lfd);
	loop_timer_cancel(&http_timer);
	MHD_stop_daemon(http_daemon);
	http_daemon = NULL;
}
