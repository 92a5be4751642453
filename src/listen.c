/*
 * listen.c: accepting connections within the open-file budget. parley
 * accepts on its listening sockets itself and hands each socket to
 * libmicrohttpd (http_add), which never calls accept(): libmicrohttpd
 * 0.9.75 retries an accept() that fails with EMFILE in a busy loop, and
 * its listener can stay deaf after descriptors are free again.
 *
 * The budget: the soft RLIMIT_NOFILE, less the descriptors open when
 * serving began (log, plugins, epoll, listeners), less a reserve for
 * what opens later (static files being sent, a plugin's reconnect, a log
 * reopen, the duplicate made at an upgrade). Every WebSocket and every
 * HTTP-phase connection counts. Near the limit, the HTTP connection idle
 * the longest is closed to make room, or else the new connection gets a
 * 503 at once and is closed; at the limit itself (or when accept fails
 * for want of descriptors or memory anyway) accepting pauses for a
 * moment. Either way nothing spins, and the listener comes back by
 * itself. Refusals are logged once per interval and counted.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "parley.h"

#define LISTEN_ACCEPTS_PER_EVENT 64
#define LISTEN_PAUSE_MS 100
#define LISTEN_LOG_INTERVAL_MS 10000
#define LISTEN_RESERVE_MIN 32
#define LISTEN_RESERVE_SHARE 64 /* and 1/64 of the limit */

/* The main listener and the admin one (/metrics). */
struct listener {
	struct loop_fd lfd;
	struct loop_timer resume; /* the end of a pause */
	bool open;
};
static struct listener listeners[2];
#define LISTEN_ADMIN (&listeners[1])
static unsigned listen_limit; /* descriptors the process may open */
static unsigned listen_base; /* open when serving began */
static unsigned listen_reserve;
static uint64_t listen_logged; /* loop_now() of the last refusal logged */
static unsigned listen_unlogged; /* refusals since */

static const char listen_busy_response[] =
    "HTTP/1.1 503 Service Unavailable\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 36\r\n"
    "Retry-After: 1\r\n"
    "Cache-Control: no-store\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Connection: close\r\n"
    "\r\n"
    "the server is busy; try again later\n";

/* Descriptors open now, counted once (nothing else is open yet). */
static unsigned
listen_count_open(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned n = 0;
	struct dirent *e;

	if (d == NULL) {
		/* No /proc: probe the low descriptors. */
		for (int fd = 0; fd < 1024; fd++)
			n += fcntl(fd, F_GETFD) != -1;
		return n;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] != '.')
			n++;
	}
	closedir(d);
	return n - 1; /* the directory's own */
}

static void
listen_measure(void)
{
	struct rlimit rl;

	if (listen_limit != 0)
		return;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < UINT32_MAX)
		listen_limit = (unsigned)rl.rlim_cur;
	else
		listen_limit = UINT32_MAX / 2;
	listen_reserve = LISTEN_RESERVE_MIN +
	    listen_limit / LISTEN_RESERVE_SHARE;
	listen_base = listen_count_open();
}

/* Connections (WebSockets and HTTP) the budget has room for. */
unsigned
listen_capacity(void)
{
	listen_measure();
	if (listen_limit < listen_base + listen_reserve + 1)
		return 1;
	return listen_limit - listen_base - listen_reserve;
}

/* Descriptors in use: WebSockets (a duplicate still counted by MHD until
 * its next run counts twice, which errs on the safe side) and HTTP. */
static unsigned
listen_used(void)
{
	return conn_count() + http_count();
}

/* Counts a refusal (m) and logs at most once per interval. */
static void
listen_note(enum metric m, const char *why)
{
	metrics_add(m, 1);
	listen_unlogged++;
	if (listen_logged != 0 &&
	    loop_now() - listen_logged < LISTEN_LOG_INTERVAL_MS)
		return;
	log_warn("http",
	    "new connections refused or held back: %s "
	    "(%u times since the last report; %u connections open, room "
	    "for %u)",
	    why, listen_unlogged, listen_used(), listen_capacity());
	listen_logged = loop_now();
	listen_unlogged = 0;
}

/* Answers 503 on a socket just accepted and closes it. What the client
 * already sent is read first, so that the close sends FIN, not RST. */
static void
listen_refuse(int fd)
{
	char scratch[2048];

	for (int i = 0;
	     i < 4 && recv(fd, scratch, sizeof scratch, MSG_DONTWAIT) > 0; i++)
		;
	(void)send(fd, listen_busy_response, sizeof listen_busy_response - 1,
	    MSG_DONTWAIT | MSG_NOSIGNAL);
	close(fd);
}

static void listen_on_event(struct loop_fd *lfd, uint32_t events);

static void
listen_on_resume(struct loop_timer *t)
{
	struct listener *l = container_of(t, struct listener, resume);

	if (l->open)
		loop_fd_mod(&l->lfd, EPOLLIN);
}

/* Stops watching l for a moment: the backlog waits in the kernel. */
static void
listen_pause(struct listener *l)
{
	loop_fd_mod(&l->lfd, 0);
	loop_timer_set(&l->resume, LISTEN_PAUSE_MS, listen_on_resume);
}

static void
listen_on_event(struct loop_fd *lfd, uint32_t events)
{
	struct listener *l = container_of(lfd, struct listener, lfd);
	unsigned capacity = listen_capacity();

	for (int i = 0; i < LISTEN_ACCEPTS_PER_EVENT; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof ss;
		int fd;

		/* Half the reserve is for refusing with a status. */
		if (listen_used() >= capacity + listen_reserve / 2) {
			listen_note(
			    METRIC_ACCEPT_PAUSED, "at the open-file limit");
			listen_pause(l);
			return;
		}
		fd = accept4(lfd->fd, (struct sockaddr *)&ss, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			switch (errno) {
			case EINTR:
			case ECONNABORTED:
				continue;
			case EAGAIN:
#if EWOULDBLOCK != EAGAIN
			case EWOULDBLOCK:
#endif
				return;
			case EMFILE:
			case ENFILE:
			case ENOBUFS:
			case ENOMEM:
				listen_note(
				    METRIC_ACCEPT_PAUSED, strerror(errno));
				listen_pause(l);
				return;
			default:
				/* EPROTO, EPERM (a firewall) and the like
				 * concern one connection; whatever it is, a
				 * pause keeps a lasting one from spinning. */
				log_debug(
				    "http", "accept: %s", strerror(errno));
				listen_pause(l);
				return;
			}
		}
		if (listen_used() >= capacity && !http_evict_idle()) {
			listen_note(
			    METRIC_ACCEPT_REFUSED, "near the open-file limit");
			listen_refuse(fd);
			continue;
		}
		http_add(l == LISTEN_ADMIN, fd, (struct sockaddr *)&ss, len);
	}
}

int
listen_start(int fd, bool admin, char **cause)
{
	struct listener *l = admin ? LISTEN_ADMIN : &listeners[0];

	listen_measure();
	if (loop_fd_add(&l->lfd, fd, EPOLLIN, listen_on_event) == -1) {
		xasprintf(cause, "cannot watch the listening socket: %s",
		    strerror(errno));
		return -1;
	}
	l->open = true;
	return 0;
}

void
listen_stop(void)
{
	for (size_t i = 0; i < 2; i++) {
		struct listener *l = &listeners[i];
		int fd = l->lfd.fd;
		if (!l->open)
			continue;
		l->open = false;
		loop_timer_cancel(&l->resume);
		loop_fd_remove(&l->lfd);
		close(fd);
	}
}
