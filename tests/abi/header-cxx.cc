/*
 * header-cxx.cc: include/parley/plugin.h compiled as C++11 (header-cxx.sh
 * uses -std=c++11 -pedantic -Wall -Wextra -Werror), a plugin written in
 * C++ with the same macros, and the ABI layout pinned with
 * static_assert.
 */
#include <parley/plugin.h>

#define PIN(cond, name) static_assert(cond, #name)
#include "layout.inc"

namespace {

int
hx_hook(parley_ctx *, struct parley_event *ev, void *)
{
	return ev->text_len > 0 ? PARLEY_PASS : PARLEY_DROP;
}

int
hx_init(parley_ctx *ctx, const struct parley_host *host)
{
	if (!PARLEY_HOST_HAS(host, history_emit))
		return -1;
	host->log_printf(ctx, PARLEY_LOG_INFO, "%s %d", "header", 1);
	return host->hook_add(ctx, PARLEY_EV_MESSAGE, 0, hx_hook, nullptr) ?
	    0 : -1;
}

} // namespace

PARLEY_PLUGIN_DEFINE("header-cxx", "1.0", nullptr, hx_init, nullptr);
