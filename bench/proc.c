/*
 * proc.c: the server as a process: starting parleyd with a temporary
 * configuration and stopping it, and reading its CPU time and resident
 * memory from /proc. Only the kernel's own accounting is used, so the
 * figures mean the same whatever the server thinks of itself.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

/* Reads at most size - 1 bytes of a small file; returns the length or -1. */
static ssize_t
proc_slurp(const char *path, char *buf, size_t size)
{
	ssize_t n, got = 0;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	while ((size_t)got < size - 1) {
		n = read(fd, buf + got, size - 1 - (size_t)got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += n;
	}
	close(fd);
	buf[got] = '\0';
	return got;
}

int64_t
proc_cpu_ns(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long utime, stime;
	long tick = sysconf(_SC_CLK_TCK);

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (proc_slurp(path, buf, sizeof buf) <= 0)
		return -1;
	/* The command name may hold spaces and parentheses: the fields
	 * start after the last ')'. utime and stime are fields 14 and 15,
	 * the 12th and 13th after it. */
	if ((p = strrchr(buf, ')')) == NULL)
		return -1;
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
	    "%llu %llu", &utime, &stime) != 2 || tick <= 0)
		return -1;
	return (int64_t)((utime + stime) * (BENCH_NS_PER_S / (uint64_t)tick));
}

int64_t
proc_wait_ns(pid_t pid)
{
	char path[64], buf[128];
	unsigned long long run, wait;
	struct dirent *de;
	int64_t total = 0;
	DIR *d;

	/* Per thread: the second field of schedstat is the time spent
	 * runnable but waiting for a CPU. */
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/proc/%d/task/%.16s/schedstat",
		    (int)pid, de->d_name);
		if (proc_slurp(path, buf, sizeof buf) > 0 &&
		    sscanf(buf, "%llu %llu", &run, &wait) == 2)
			total += (int64_t)wait;
	}
	closedir(d);
	return total;
}

long
proc_rss_kb(pid_t pid)
{
	char path[64], buf[4096], *p;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	if (proc_slurp(path, buf, sizeof buf) <= 0)
		return -1;
	if ((p = strstr(buf, "\nVmRSS:")) == NULL)
		return -1;
	return strtol(p + 7, NULL, 10);
}

int64_t
proc_written(pid_t pid)
{
	char path[64], buf[1024], *p;

	snprintf(path, sizeof path, "/proc/%d/io", (int)pid);
	if (proc_slurp(path, buf, sizeof buf) <= 0)
		return -1;
	if ((p = strstr(buf, "wchar:")) == NULL)
		return -1;
	return strtoll(p + 6, NULL, 10);
}

static int
proc_remove(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* Removes the temporary directory and whatever the server left in it. */
static void
proc_clean(struct proc_server *s)
{
	if (s->dir[0] == '\0')
		return;
	nftw(s->dir, proc_remove, 16, FTW_DEPTH | FTW_PHYS);
	s->dir[0] = '\0';
}

/* Copies the first line of the server's stderr into cause, if any. */
static void
proc_why(struct proc_server *s, const char *what, char *cause,
    size_t causelen)
{
	char path[128], buf[512], *nl;

	snprintf(path, sizeof path, "%s/stderr", s->dir);
	if (proc_slurp(path, buf, sizeof buf) > 0) {
		if ((nl = strchr(buf, '\n')) != NULL)
			*nl = '\0';
		snprintf(cause, causelen, "%s: %s", what, buf);
	} else
		snprintf(cause, causelen, "%s", what);
}

int
proc_start(struct proc_server *s, const char *binary, const char *config,
    const char *const *extra, size_t nextra, unsigned conns, int cpu,
    char *cause, size_t causelen)
{
	char conf[128], out[128], err[128], buf[512], *p, *colon;
	const char *tmp = getenv("TMPDIR");
	unsigned limit = conns + 200;
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	FILE *f;
	int status;

	memset(s, 0, sizeof *s);
	if (access(binary, X_OK) == -1) {
		snprintf(cause, causelen, "%s", strerror(errno));
		return -1;
	}
	snprintf(s->dir, sizeof s->dir, "%s/parley-bench.XXXXXX",
	    tmp != NULL && strlen(tmp) < 40 ? tmp : "/tmp");
	if (mkdtemp(s->dir) == NULL) {
		snprintf(cause, causelen, "mkdtemp: %s", strerror(errno));
		s->dir[0] = '\0';
		return -1;
	}
	snprintf(conf, sizeof conf, "%s/parley.conf", s->dir);
	snprintf(out, sizeof out, "%s/stdout", s->dir);
	snprintf(err, sizeof err, "%s/stderr", s->dir);
	if (config == NULL) {
		/* Limits large enough for the run; the server lowers
		 * max_connections itself to what its descriptors allow. */
		if (limit < 1000)
			limit = 1000;
		if ((f = fopen(conf, "w")) == NULL) {
			snprintf(cause, causelen, "%s: %s", conf,
			    strerror(errno));
			proc_clean(s);
			return -1;
		}
		/* The abuse limits are for people; a load generator is
		 * every one of them at once, from few addresses. No plugins
		 * (the core is what is measured) and any state stays in
		 * the temporary directory. */
		fprintf(f, "-- written by parley-bench\n"
		    "listen = \"127.0.0.1\"\n"
		    "log_level = \"warn\"\n"
		    "rooms = { \"general\" }\n"
		    "max_connections = %u\n"
		    "max_connections_per_ip = %u\n"
		    "connects_per_minute_per_ip = 0\n"
		    "requests_per_minute = 0\n"
		    "messages_per_minute = 0\n"
		    "rooms_per_minute = 0\n"
		    "ban_after = 0\n"
		    "plugins = { }\n"
		    "state_dir = \"%s\"\n", limit, limit, s->dir);
		/* --server-set lines come last, so they win. */
		for (size_t i = 0; i < nextra; i++)
			fprintf(f, "%s\n", extra[i]);
		fclose(f);
		config = conf;
	}

	switch (s->pid = fork()) {
	case -1:
		snprintf(cause, causelen, "fork: %s", strerror(errno));
		proc_clean(s);
		return -1;
	case 0:
		if (freopen(out, "w", stdout) == NULL ||
		    freopen(err, "w", stderr) == NULL)
			_exit(127);
		if (cpu >= 0) {
			cpu_set_t set;

			CPU_ZERO(&set);
			CPU_SET(cpu, &set);
			if (sched_setaffinity(0, sizeof set, &set) == -1) {
				fprintf(stderr, "sched_setaffinity %d: %s\n",
				    cpu, strerror(errno));
				fflush(stderr);
				_exit(127);
			}
		}
		execl(binary, binary, "--config", config, "--port", "0",
		    (char *)NULL);
		fprintf(stderr, "%s: %s\n", binary, strerror(errno));
		fflush(stderr);
		_exit(127);
	}

	/* Wait up to ten seconds for the line naming the port. */
	for (int i = 0; i < 1000; i++) {
		if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
			proc_why(s, "the server exited", cause, causelen);
			s->pid = 0;
			proc_clean(s);
			return -1;
		}
		if (proc_slurp(out, buf, sizeof buf) > 0 &&
		    (p = strstr(buf, "listening on http://")) != NULL &&
		    strchr(p, '\n') != NULL) {
			p += strlen("listening on http://");
			*strchr(p, '\n') = '\0';
			if ((colon = strrchr(p, ':')) == NULL)
				break;
			*colon = '\0';
			snprintf(s->addr, sizeof s->addr, "%s", p);
			s->port = (unsigned)strtoul(colon + 1, NULL, 10);
			if (s->port == 0)
				break;
			return 0;
		}
		nanosleep(&ts, NULL);
	}
	proc_why(s, "the server did not say where it listens", cause,
	    causelen);
	proc_stop(s);
	return -1;
}

void
proc_stop(struct proc_server *s)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	int status;

	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		for (int i = 0; i < 500; i++) {
			if (waitpid(s->pid, &status, WNOHANG) != 0)
				break;
			nanosleep(&ts, NULL);
			if (i == 499) {
				kill(s->pid, SIGKILL);
				waitpid(s->pid, &status, 0);
			}
		}
		s->pid = 0;
	}
	proc_clean(s);
}
