/*
 * notify.c: readiness and status for service managers. Speaks systemd's
 * NOTIFY_SOCKET datagram protocol directly (no libsystemd needed): READY=1
 * once serving, RELOADING=1 around a reload, STOPPING=1 on shutdown. Does
 * nothing when NOTIFY_SOCKET is not set.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "parley.h"

void
notify_send(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t len;
	socklen_t salen;
	int fd;

	if (path == NULL || *path == '\0')
		return;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof sun.sun_path) {
		log_warn("core", "NOTIFY_SOCKET is not a socket path: %s", path);
		return;
	}
	memcpy(sun.sun_path, path, len);
	if (path[0] == '@')
		sun.sun_path[0] = '\0'; /* abstract namespace */
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL,
	    (struct sockaddr *)&sun, salen) == -1)
		log_warn("core", "cannot notify the service manager: %s",
		    strerror(errno));
	close(fd);
}

void
notify_reloading(void)
{
	struct timespec ts;
	char msg[64];

	/* Newer systemd wants the monotonic time with RELOADING=1. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000);
	notify_send(msg);
}
