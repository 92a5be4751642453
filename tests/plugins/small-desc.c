/*
 * small-desc.c: a test plugin whose descriptor claims to be smaller than
 * the one of ABI 1.0; it must be refused before its init runs.
 */
#include <parley/plugin.h>

static int
sd_init(parley_ctx *ctx, const struct parley_host *host)
{
	return 0;
}

PARLEY_EXPORT const struct parley_plugin parley_plugin = {
	PARLEY_PLUGIN_ABI_MAJOR, 0, 16, 0, "small-desc", "1.0", NULL,
	sd_init, NULL, { NULL, NULL, NULL, NULL }
};
