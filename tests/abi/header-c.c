/*
 * header-c.c: include/parley/plugin.h on its own in strict C99
 * (header-c.sh compiles this with -std=c99 -pedantic -Wall -Wextra
 * -Werror), a plugin defined with its macros, and the ABI layout pinned.
 */
#include <parley/plugin.h>

#define PIN(cond, name) typedef char pin_##name[(cond) ? 1 : -1]
#include "layout.inc"

static int
hc_hook(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	(void)ctx;
	(void)arg;
	return ev->text_len > 0 ? PARLEY_PASS : PARLEY_DROP;
}

static int
hc_init(parley_ctx *ctx, const struct parley_host *host)
{
	if (!PARLEY_HOST_HAS(host, history_emit))
		return -1;
	host->log_printf(ctx, PARLEY_LOG_INFO, "%s %d", "header", 1);
	return host->hook_add(ctx, PARLEY_EV_MESSAGE, 0, hc_hook, NULL) ? 0 :
	    -1;
}

static void
hc_fini(parley_ctx *ctx)
{
	(void)ctx;
}

PARLEY_PLUGIN_DEFINE("header-c", "1.0", NULL, hc_init, hc_fini);
