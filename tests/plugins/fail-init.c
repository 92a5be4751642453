/*
 * fail-init.c: a test plugin whose init fails after registering a hook,
 * a command and a timer; the server must refuse to start, say why, and
 * leave nothing of it behind.
 */
#include <parley/plugin.h>

static int
fi_hook(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	return PARLEY_PASS;
}

static int
fi_command(parley_ctx *ctx, const struct parley_command *cmd, void *arg)
{
	return PARLEY_OK;
}

static void
fi_timer(parley_ctx *ctx, uint64_t id, void *arg)
{
}

static int
fi_init(parley_ctx *ctx, const struct parley_host *host)
{
	host->hook_add(ctx, PARLEY_EV_MESSAGE, 0, fi_hook, NULL);
	host->command_register(ctx, "fail-init", NULL, NULL, fi_command, NULL);
	host->timer_add(ctx, 10, 10, fi_timer, NULL);
	host->log_printf(ctx, PARLEY_LOG_ERROR, "deliberate failure for %s",
	    "the tests");
	return 7;
}

PARLEY_PLUGIN_DEFINE("fail-init", "1.0", "test plugin: init fails",
    fi_init, NULL);
