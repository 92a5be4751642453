/*
 * metrics.c: a test plugin for typed metrics (ABI 1.3): a counter of
 * messages by their first word and a gauge of the last message's length,
 * with labels given in either order and values that need escaping; the
 * calls the host must refuse are made in init, and their results kept
 * in the counter "refusals_wrong" (0 when every one was refused).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <parley/plugin.h>

static const struct parley_host *host;
static int flip;

static int
mt_message(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	char word[32];
	size_t n = 0;

	while (n < ev->text_len && n < sizeof word - 1 &&
	    ev->text[n] != ' ')
		n++;
	memcpy(word, ev->text, n);
	word[n] = '\0';
	/* the same series, whichever order the labels come in */
	flip = !flip;
	if (flip)
		host->metric_add(ctx, "messages_total",
		    (const char *[]){ "word", word, "kind", "chat", NULL }, 1);
	else
		host->metric_add(ctx, "messages_total",
		    (const char *[]){ "kind", "chat", "word", word, NULL }, 1);
	host->metric_set(ctx, "last_length", NULL, (double)ev->text_len);
	return PARLEY_PASS;
}

static int
mt_init(parley_ctx *ctx, const struct parley_host *h)
{
	int wrong = 0;

	host = h;
	if (!PARLEY_HOST_HAS(h, metric_declare))
		return -1;
	if (h->metric_declare(ctx, "messages_total", PARLEY_METRIC_COUNTER,
	    "chat messages by first word \\ kind") == -1 ||
	    h->metric_declare(ctx, "last_length", PARLEY_METRIC_GAUGE,
	    "bytes of the last message") == -1)
		return -1;
	/* declaring again is harmless */
	wrong += h->metric_declare(ctx, "last_length", PARLEY_METRIC_GAUGE,
	    NULL) != 0;
	/* each of these must be refused */
	wrong += h->metric_declare(ctx, "last_length", PARLEY_METRIC_COUNTER,
	    "x") != -1;
	wrong += h->metric_declare(ctx, "Bad-Name", PARLEY_METRIC_GAUGE,
	    "x") != -1;
	wrong += h->metric_declare(ctx, "value", PARLEY_METRIC_GAUGE,
	    "x") != -1;
	wrong += h->metric_declare(ctx, "x", 7, "x") != -1;
	wrong += h->metric_declare(ctx, "y", PARLEY_METRIC_GAUGE,
	    "two\nlines") != -1;
	wrong += h->metric_add(ctx, "undeclared", NULL, 1) != -1;
	wrong += h->metric_add(ctx, "messages_total", NULL, -1) != -1;
	wrong += h->metric_set(ctx, "last_length", NULL, NAN) != -1;
	wrong += h->metric_add(ctx, "last_length", NULL, INFINITY) != -1;
	wrong += h->metric_add(ctx, "messages_total",
	    (const char *[]){ "plugin", "x", NULL }, 1) != -1;
	wrong += h->metric_add(ctx, "messages_total",
	    (const char *[]){ "a", "1", "a", "2", NULL }, 1) != -1;
	wrong += h->metric_add(ctx, "messages_total",
	    (const char *[]){ "lonely", NULL }, 1) != -1;
	wrong += h->metric_add(ctx, "messages_total",
	    (const char *[]){ "__x", "1", NULL }, 1) != -1;
	/* a value with a quote, a backslash and a newline, escaped */
	wrong += h->metric_add(ctx, "messages_total",
	    (const char *[]){ "word", "say \"hi\"\\\n", "kind", "odd", NULL },
	    2) != 0;
	h->counter_set(ctx, "refusals_wrong", wrong);
	return h->hook_add(ctx, PARLEY_EV_MESSAGE, 0, mt_message, NULL) == 0 ?
	    -1 : 0;
}

PARLEY_PLUGIN_DEFINE("metrics", "1.0", "test plugin: typed metrics",
    mt_init, NULL);
