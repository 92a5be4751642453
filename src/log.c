/*
 * log.c: log lines, each tagged with its level and source ("core", "ws",
 * "http", "lua:<script>", "plugin:<name>"), as text or JSON, to stderr, a
 * file (reopened on SIGUSR1 for logrotate) or syslog. Callers check the
 * level before formatting through the log_* macros, so a disabled debug
 * line costs one compare. Message bodies are never passed here.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "parley.h"

int log_level = LOG_LVL_INFO;

static const char *const log_names[] = { "error", "warn", "info", "debug" };
static int log_fd = STDERR_FILENO;
static char *log_path;
static bool log_to_syslog;
static bool log_json;

int
log_level_parse(const char *name)
{
	for (size_t i = 0; i < sizeof log_names / sizeof log_names[0]; i++) {
		if (strcmp(name, log_names[i]) == 0)
			return (int)i;
	}
	if (strcmp(name, "warning") == 0)
		return LOG_LVL_WARN;
	return -1;
}

const char *
log_level_name(int level)
{
	if (level < 0 || level > LOG_LVL_DEBUG)
		return "?";
	return log_names[level];
}

int
log_open(const char *path, bool use_syslog, bool json, char **cause)
{
	int fd = STDERR_FILENO;

	if (path != NULL) {
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
		    0640);
		if (fd == -1) {
			xasprintf(cause, "cannot open log file %s: %s", path,
			    strerror(errno));
			return -1;
		}
	}
	if (log_fd != STDERR_FILENO)
		close(log_fd);
	log_fd = fd;
	free(log_path);
	log_path = path ? xstrdup(path) : NULL;
	if (use_syslog && !log_to_syslog)
		openlog("parleyd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	else if (!use_syslog && log_to_syslog)
		closelog();
	log_to_syslog = use_syslog;
	log_json = json;
	return 0;
}

void
log_reopen(void)
{
	char *cause = NULL;
	char *path = log_path ? xstrdup(log_path) : NULL;

	if (path == NULL)
		return;
	if (log_open(path, log_to_syslog, log_json, &cause) == -1) {
		/* Keep writing to the old file rather than lose lines. */
		log_write(LOG_LVL_ERROR, "core", "%s", cause);
		free(cause);
	}
	free(path);
}

void
log_close(void)
{
	if (log_fd != STDERR_FILENO)
		close(log_fd);
	log_fd = STDERR_FILENO;
	free(log_path);
	log_path = NULL;
	if (log_to_syslog)
		closelog();
	log_to_syslog = false;
}

/* Writes s into out as the inside of a JSON string. Text that is not
 * valid UTF-8 (a header a client sent, say) has its high bytes escaped
 * one by one, so that the line stays valid JSON. */
static size_t
log_json_escape(char *out, size_t size, const char *s)
{
	bool valid = utf8_valid(s, strlen(s));
	size_t n = 0;

	for (; *s != '\0' && n + 7 < size; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			out[n++] = '\\';
			out[n++] = (char)ch;
		} else if (ch < 0x20 || ch == 0x7f || (ch >= 0x80 && !valid)) {
			n += (size_t)snprintf(out + n, size - n, "\\u%04x", ch);
		} else
			out[n++] = (char)ch;
	}
	out[n] = '\0';
	return n;
}

static void
log_vwrite(int level, const char *source, const char *fmt, va_list ap)
{
	static const int syslog_levels[] = { LOG_ERR, LOG_WARNING, LOG_INFO,
		LOG_DEBUG };
	char stamp[32], text[2048], line[4608];
	struct timespec ts;
	struct tm tm;
	int n;

	vsnprintf(text, sizeof text, fmt, ap);
	if (log_to_syslog) {
		syslog(syslog_levels[level], "%s %s: %s", log_level_name(level),
		    source, text);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
	if (log_json) {
		char esc[4200];
		log_json_escape(esc, sizeof esc, text);
		n = snprintf(line, sizeof line, "{\"ts\":\"%s.%03ldZ\","
		    "\"level\":\"%s\",\"source\":\"%s\",\"msg\":\"%s\"}\n", stamp,
		    ts.tv_nsec / 1000000, log_level_name(level), source, esc);
	} else
		n = snprintf(line, sizeof line, "%s.%03ldZ %s %s: %s\n", stamp,
		    ts.tv_nsec / 1000000, log_level_name(level), source, text);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof line)
		n = sizeof line - 1;
	/* One write per line so that lines never interleave. */
	if (write(log_fd, line, (size_t)n) == -1 && log_fd != STDERR_FILENO)
		(void)!write(STDERR_FILENO, line, (size_t)n);
}

void
log_write(int level, const char *source, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(level, source, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LVL_ERROR, "core", fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatal_assert(const char *expr, const char *file, int line)
{
	log_write(LOG_LVL_ERROR, "core", "assertion failed: %s (%s:%d)", expr,
	    file, line);
	abort();
}
