/*
 * bad-abi.c: a test plugin that claims a plugin ABI major version the
 * server does not have; it must be refused before its init runs.
 */
#include <parley/plugin.h>

static int
ba_init(parley_ctx *ctx, const struct parley_host *host)
{
	host->log_printf(ctx, PARLEY_LOG_ERROR, "bad-abi init ran");
	return 0;
}

PARLEY_EXPORT const struct parley_plugin parley_plugin = {
	PARLEY_PLUGIN_ABI_MAJOR + 98, 0, sizeof(struct parley_plugin), 0,
	"bad-abi", "1.0", "test plugin: wrong ABI major", ba_init, NULL,
	{ NULL, NULL, NULL, NULL }
};
