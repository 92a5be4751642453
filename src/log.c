/*
 * log.c: log lines on stderr, each tagged with its level and source
 * ("core", "ws", "http", ...). Callers check the level before formatting
 * through the log_* macros, so a disabled debug line costs one compare.
 * Message bodies are never passed here.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "parley.h"

int log_level = LOG_LVL_INFO;

static const char *const log_names[] = { "error", "warn", "info", "debug" };

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

static void
log_vwrite(int level, const char *source, const char *fmt, va_list ap)
{
	char stamp[32];
	struct timespec ts;
	struct tm tm;
	char line[2048];
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line, sizeof line, "%s.%03ldZ %s %s: ", stamp,
	    ts.tv_nsec / 1000000, log_level_name(level), source);
	if (n < 0 || (size_t)n >= sizeof line)
		n = 0;
	vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
	/* One write per line so that lines never interleave. */
	fprintf(stderr, "%s\n", line);
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
