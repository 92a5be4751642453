/*
 * metrics.c: the server's counters and their exposition at /metrics in
 * the Prometheus text format. Counting is an array increment on the hot
 * path; everything else (names, labels, formatting) happens only when
 * /metrics is read. Scripts and plugins add sections through callbacks.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley.h"

uint64_t metrics[METRIC_COUNT];

#define METRICS_MAX_EXTRA 8

static const int metrics_codes[] = { 1000, 1001, 1002, 1003, 1006, 1007,
	1008, 1009, 1011 };
#define METRICS_NCODES (sizeof metrics_codes / sizeof metrics_codes[0])
static uint64_t metrics_closed[METRICS_NCODES + 1]; /* last: other */
static uint64_t metrics_errors[PROTO_ERR_COUNT];
static void (*metrics_extra[METRICS_MAX_EXTRA])(struct metrics_buf *);
static size_t metrics_nextra;
static struct loop_timer metrics_timer;
static uint64_t metrics_lag_last, metrics_lag_max; /* ms */

struct metrics_buf {
	char *p;
	size_t len, cap;
};

void
metrics_close(int code)
{
	for (size_t i = 0; i < METRICS_NCODES; i++) {
		if (metrics_codes[i] == code) {
			metrics_closed[i]++;
			return;
		}
	}
	metrics_closed[METRICS_NCODES]++;
}

void
metrics_error(int e)
{
	if (e > 0 && e < PROTO_ERR_COUNT)
		metrics_errors[e]++;
}

void
metrics_register(void (*fn)(struct metrics_buf *mb))
{
	PARLEY_ASSERT(metrics_nextra < METRICS_MAX_EXTRA);
	metrics_extra[metrics_nextra++] = fn;
}

void
metrics_printf(struct metrics_buf *mb, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(mb->p + mb->len, mb->cap - mb->len, fmt, ap);
		va_end(ap);
		PARLEY_ASSERT(n >= 0);
		if ((size_t)n < mb->cap - mb->len)
			break;
		mb->cap = (mb->cap + (size_t)n + 1) * 2;
		mb->p = xrealloc(mb->p, mb->cap);
	}
	mb->len += (size_t)n;
}

/* The loop's lag: a 1 s timer that notes how late it runs. */
static void
metrics_on_timer(struct loop_timer *t)
{
	uint64_t late = loop_now() - t->when;

	metrics_lag_last = late;
	if (late > metrics_lag_max)
		metrics_lag_max = late;
	loop_timer_set(t, 1000, metrics_on_timer);
}

void
metrics_loop_lag(uint64_t *last_ms, uint64_t *max_ms)
{
	*last_ms = metrics_lag_last;
	*max_ms = metrics_lag_max;
}

void
metrics_init(void)
{
	loop_timer_set(&metrics_timer, 1000, metrics_on_timer);
}

void
metrics_free(void)
{
	loop_timer_cancel(&metrics_timer);
	metrics_nextra = 0;
}

static void
metrics_counter(struct metrics_buf *mb, const char *name, const char *help,
    const char *type, uint64_t value)
{
	metrics_printf(mb, "# HELP parley_%s %s\n# TYPE parley_%s %s\n"
	    "parley_%s %llu\n", name, help, name, type, name,
	    (unsigned long long)value);
}

/* Hook statistics summed per owner and event: a script may register
 * several hooks of one event, and each series must appear once. */
struct metrics_hook_sum {
	const char *owner; /* borrowed from the chain for the render */
	enum hook_event ev;
	uint64_t calls;
	uint64_t verdicts[HOOK_STOP + 1];
	uint64_t ns;
};

struct metrics_hook_sums {
	struct metrics_hook_sum *v;
	size_t n;
};

static void
metrics_hook_add(const char *owner, enum hook_event ev, uint64_t calls,
    const uint64_t *verdicts, uint64_t ns, void *arg)
{
	struct metrics_hook_sums *sums = arg;
	struct metrics_hook_sum *h = NULL;

	for (size_t i = 0; i < sums->n && h == NULL; i++) {
		if (sums->v[i].ev == ev && strcmp(sums->v[i].owner, owner) == 0)
			h = &sums->v[i];
	}
	if (h == NULL) {
		sums->v = xreallocarray(sums->v, sums->n + 1, sizeof *sums->v);
		h = &sums->v[sums->n++];
		memset(h, 0, sizeof *h);
		h->owner = owner;
		h->ev = ev;
	}
	h->calls += calls;
	for (int i = 0; i <= HOOK_STOP; i++)
		h->verdicts[i] += verdicts[i];
	h->ns += ns;
}

/* Writes s as a label value: backslash, quote and newline escaped. */
static void
metrics_label(struct metrics_buf *mb, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			metrics_printf(mb, "\\%c", *s);
		else if (*s == '\n')
			metrics_printf(mb, "\\n");
		else
			metrics_printf(mb, "%c", *s);
	}
}

static void
metrics_hooks(struct metrics_buf *mb)
{
	struct metrics_hook_sums sums = { NULL, 0 };

	hook_stats_each(metrics_hook_add, &sums);
	/* One family at a time: the text format wants each family's
	 * samples together. */
	metrics_printf(mb, "# HELP parley_hook_calls_total hook calls, by "
	    "script or plugin and event\n"
	    "# TYPE parley_hook_calls_total counter\n");
	for (size_t i = 0; i < sums.n; i++) {
		metrics_printf(mb, "parley_hook_calls_total{owner=\"");
		metrics_label(mb, sums.v[i].owner);
		metrics_printf(mb, "\",event=\"%s\"} %llu\n",
		    hook_event_name(sums.v[i].ev),
		    (unsigned long long)sums.v[i].calls);
	}
	metrics_printf(mb, "# HELP parley_hook_verdicts_total hook verdicts, "
	    "by script or plugin, event and verdict\n"
	    "# TYPE parley_hook_verdicts_total counter\n");
	for (size_t i = 0; i < sums.n; i++) {
		for (int v = 0; v <= HOOK_STOP; v++) {
			metrics_printf(mb, "parley_hook_verdicts_total{owner=\"");
			metrics_label(mb, sums.v[i].owner);
			metrics_printf(mb, "\",event=\"%s\",verdict=\"%s\"} "
			    "%llu\n", hook_event_name(sums.v[i].ev),
			    hook_verdict_name((enum hook_verdict)v),
			    (unsigned long long)sums.v[i].verdicts[v]);
		}
	}
	metrics_printf(mb, "# HELP parley_hook_seconds_total time spent in "
	    "hooks\n# TYPE parley_hook_seconds_total counter\n");
	for (size_t i = 0; i < sums.n; i++) {
		metrics_printf(mb, "parley_hook_seconds_total{owner=\"");
		metrics_label(mb, sums.v[i].owner);
		metrics_printf(mb, "\",event=\"%s\"} %.6f\n",
		    hook_event_name(sums.v[i].ev), (double)sums.v[i].ns / 1e9);
	}
	free(sums.v);
}

char *
metrics_render(size_t *len)
{
	struct metrics_buf mb = { .cap = 8192 };

	mb.p = xmalloc(mb.cap);
	mb.p[0] = '\0';
	metrics_counter(&mb, "connections", "WebSocket clients connected now",
	    "gauge", conn_count());
	metrics_counter(&mb, "http_connections", "HTTP connections open "
	    "(a WebSocket leaves them at its upgrade)", "gauge", http_count());
	metrics_counter(&mb, "connections_total",
	    "WebSocket clients accepted since start", "counter",
	    metrics[METRIC_CONNECTIONS_TOTAL]);
	metrics_printf(&mb, "# HELP parley_connections_closed_total WebSocket "
	    "clients closed, by close code\n# TYPE "
	    "parley_connections_closed_total counter\n");
	for (size_t i = 0; i <= METRICS_NCODES; i++) {
		char code[16];
		if (i < METRICS_NCODES)
			snprintf(code, sizeof code, "%d", metrics_codes[i]);
		else
			snprintf(code, sizeof code, "other");
		metrics_printf(&mb, "parley_connections_closed_total{code=\"%s\"} "
		    "%llu\n", code, (unsigned long long)metrics_closed[i]);
	}
	metrics_counter(&mb, "rooms", "rooms on the server", "gauge",
	    room_count());
	metrics_counter(&mb, "room_members", "memberships in all rooms",
	    "gauge", metrics[METRIC_ROOM_MEMBERS]);
	metrics_counter(&mb, "oper_password_failures_total",
	    "wrong operator passwords", "counter",
	    metrics[METRIC_OPER_FAILURES]);
	metrics_counter(&mb, "oper_password_refused_total",
	    "operator password guesses refused unchecked (back-off)",
	    "counter", metrics[METRIC_OPER_REFUSED]);
	metrics_counter(&mb, "messages_in_total", "chat messages accepted",
	    "counter", metrics[METRIC_MESSAGES_IN]);
	metrics_counter(&mb, "messages_delivered_total",
	    "chat messages queued to members", "counter",
	    metrics[METRIC_MESSAGES_DELIVERED]);
	metrics_counter(&mb, "bytes_in_total", "bytes read from WebSockets",
	    "counter", metrics[METRIC_BYTES_IN]);
	metrics_counter(&mb, "bytes_out_total", "bytes written to WebSockets",
	    "counter", metrics[METRIC_BYTES_OUT]);
	metrics_counter(&mb, "rate_limited_total",
	    "requests refused with rate_limited", "counter",
	    metrics[METRIC_RATE_LIMITED]);
	metrics_counter(&mb, "slow_consumers_total",
	    "clients dropped for a full output queue", "counter",
	    metrics[METRIC_SLOW_CONSUMERS]);
	metrics_counter(&mb, "upgrades_refused_total",
	    "WebSocket upgrades refused by admission limits", "counter",
	    metrics[METRIC_HTTP_REFUSED]);
	metrics_counter(&mb, "http_request_timeouts_total",
	    "HTTP connections closed for a request not received within "
	    "http_request_timeout", "counter", metrics[METRIC_HTTP_TIMEOUTS]);
	metrics_counter(&mb, "accept_refused_total",
	    "connections answered 503 at once: near the open-file limit",
	    "counter", metrics[METRIC_ACCEPT_REFUSED]);
	metrics_counter(&mb, "accept_paused_total",
	    "times accepting paused: at the open-file limit, or accept "
	    "failed for want of descriptors or memory", "counter",
	    metrics[METRIC_ACCEPT_PAUSED]);
	metrics_counter(&mb, "http_evicted_total",
	    "idle HTTP connections closed to make room for new ones",
	    "counter", metrics[METRIC_HTTP_EVICTED]);
	metrics_printf(&mb, "# HELP parley_errors_total error frames sent, by "
	    "code\n# TYPE parley_errors_total counter\n");
	for (int e = 1; e < PROTO_ERR_COUNT; e++)
		metrics_printf(&mb, "parley_errors_total{code=\"%s\"} %llu\n",
		    proto_err_code((enum proto_err)e),
		    (unsigned long long)metrics_errors[e]);
	metrics_printf(&mb, "# HELP parley_loop_lag_seconds how late the "
	    "event loop ran a timer\n# TYPE parley_loop_lag_seconds gauge\n"
	    "parley_loop_lag_seconds %.3f\n"
	    "# HELP parley_loop_lag_max_seconds the largest lag seen\n"
	    "# TYPE parley_loop_lag_max_seconds gauge\n"
	    "parley_loop_lag_max_seconds %.3f\n",
	    (double)metrics_lag_last / 1000, (double)metrics_lag_max / 1000);
	metrics_hooks(&mb);
	for (size_t i = 0; i < metrics_nextra; i++)
		metrics_extra[i](&mb);
	*len = mb.len;
	return mb.p;
}
