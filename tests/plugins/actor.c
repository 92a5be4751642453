/*
 * actor.c: a test plugin for tests/integration/test_admin.py (ABI 1.4).
 * Its moderation hook writes down who acted (actor_kind and actor) in
 * the audit trail as "plugin-saw-ACTION" with the reason "admin:NAME"
 * (or "client"), and refuses a ban or kick of anyone whose name starts
 * with "plugkeep".
 */
#include <stdio.h>
#include <string.h>

#include <parley/plugin.h>

static const struct parley_host *host;

static int
on_moderation(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	char action[64], target[128], by[160];

	(void)arg;
	snprintf(action, sizeof action, "plugin-saw-%s",
	    ev->reason != NULL ? ev->reason : "?");
	snprintf(target, sizeof target, "%.*s", (int)ev->text_len, ev->text);
	if (ev->actor_kind == PARLEY_ACTOR_ADMIN && ev->actor != NULL)
		snprintf(by, sizeof by, "admin:%s%s", ev->actor,
		    ev->client == NULL ? " no client" : " a client");
	else
		snprintf(by, sizeof by, "client");
	host->audit_add(ctx, action, target, ev->room, by, 0);
	if (strncmp(target, "plugkeep", 8) == 0) {
		ev->deny_code = PARLEY_ERR_FORBIDDEN;
		ev->deny_reason = "the actor plugin keeps them";
		return PARLEY_DENY;
	}
	return PARLEY_PASS;
}

static int
actor_init(parley_ctx *ctx, const struct parley_host *h)
{
	host = h;
	if (host->abi_minor < 4 ||
	    host->hook_add(ctx, PARLEY_EV_MODERATION, 0, on_moderation, NULL) ==
		0)
		return -1;
	return 0;
}

const struct parley_plugin parley_plugin = {
	.abi_major = PARLEY_PLUGIN_ABI_MAJOR,
	.abi_minor = PARLEY_PLUGIN_ABI_MINOR,
	.size = sizeof(struct parley_plugin),
	.name = "actor",
	.version = "1",
	.description = "sees who moderates, and keeps some people",
	.init = actor_init,
};
