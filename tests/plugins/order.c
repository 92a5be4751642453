/*
 * order.c: a test plugin for the order of one hook chain shared with
 * Lua scripts: its message hook appends " [plugin]" to messages starting
 * with "order:", at the priority given by its option `priority`.
 */
#include <stdio.h>
#include <string.h>

#include <parley/plugin.h>

static char buf[8192];

static int
or_message(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	int n;

	if (ev->text_len < 6 || memcmp(ev->text, "order:", 6) != 0)
		return PARLEY_PASS;
	n = snprintf(buf, sizeof buf, "%.*s [plugin]", (int)ev->text_len,
	    ev->text);
	ev->new_text = buf;
	ev->new_text_len = (size_t)n;
	return PARLEY_MODIFY;
}

static int
or_init(parley_ctx *ctx, const struct parley_host *host)
{
	int64_t priority = 0;

	if (host->option_int(ctx, "priority", &priority) == -1)
		return -1;
	return host->hook_add(ctx, PARLEY_EV_MESSAGE, (int)priority,
	    or_message, NULL) == 0 ? -1 : 0;
}

PARLEY_PLUGIN_DEFINE("order", "1.0", "test plugin: hook order", or_init,
    NULL);
