/*
 * plugin-state.c: the host functions of the state store (ABI 1.4): a
 * plugin that shares the community's state (rooms, roles, bans, mutes,
 * tombstones, the audit trail) is given every change and tells of
 * changes made elsewhere; any plugin may add audit records and read a
 * room's topic.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "parley.h"
#include "plugin-host.h"

#define PLUGIN_ACTOR(p) CHAT_BY(CHAT_ACTOR_PLUGIN, (p)->owner)

/* The plugin that is the state store, and its functions. */
static struct plugin *plugin_state_owner;
static struct parley_state_store plugin_state;

static int
plugin_state_put(
    void *arg, const char *kind, const char *key, const char *value)
{
	struct plugin *p = arg;

	if (plugin_state.put == NULL)
		return 0;
	return plugin_state.put(plugin_ctx(p), kind, key, value,
	    value ? strlen(value) : 0, plugin_state.arg);
}

void
plugin_state_forget(struct plugin *p)
{
	if (plugin_state_owner != p)
		return;
	state_set_store(NULL);
	plugin_state_owner = NULL;
	memset(&plugin_state, 0, sizeof plugin_state);
}

static int
host_state_store_register(
    parley_ctx *ctx, const struct parley_state_store *store)
{
	struct plugin *p = plugin_of(ctx);
	struct state_store ss;
	size_t n;

	if (store == NULL ||
	    store->size < offsetof(struct parley_state_store, reserved) ||
	    store->put == NULL) {
		log_error(p->owner, "state_store_register: malformed store");
		return PARLEY_ERR_BAD_REQUEST;
	}
	if (p->info_only)
		return PARLEY_OK;
	if (plugin_state_owner != NULL) {
		log_error(p->owner,
		    "state_store_register: %s is the state store already",
		    plugin_state_owner->owner);
		return PARLEY_ERR_BAD_REQUEST;
	}
	memset(&plugin_state, 0, sizeof plugin_state);
	n = store->size < sizeof plugin_state ? store->size
					      : sizeof plugin_state;
	memcpy(&plugin_state, store, n);
	ss.owner = p->name;
	ss.put = plugin_state_put;
	ss.arg = p;
	if (state_set_store(&ss) == -1) {
		log_error(p->owner,
		    "state_store_register: another state store is registered");
		return PARLEY_ERR_BAD_REQUEST;
	}
	plugin_state_owner = p;
	log_info(p->owner, "sharing the state (rooms, roles, bans, mutes)");
	return PARLEY_OK;
}

static int
host_state_changed(parley_ctx *ctx, const char *kind, const char *key,
    const char *value, size_t value_len)
{
	struct plugin *p = plugin_of(ctx);
	json_t *v = NULL;

	if (kind == NULL || key == NULL || *kind == '\0' || *key == '\0') {
		log_warn(p->owner, "state_changed: no kind or key");
		return PARLEY_ERR_BAD_REQUEST;
	}
	if (value != NULL &&
	    (v = json_loadb(value, value_len, JSON_DECODE_ANY, NULL)) == NULL) {
		log_warn(p->owner, "state_changed: %s %s: not JSON", kind, key);
		return PARLEY_ERR_BAD_REQUEST;
	}
	chat_state_changed(kind, key, v);
	return PARLEY_OK;
}

static int
host_audit_add(parley_ctx *ctx, const char *action, const char *target,
    parley_room *pr, const char *reason, uint64_t expires_s)
{
	struct plugin *p = plugin_of(ctx);
	struct room *r = NULL;

	if (action == NULL || *action == '\0' || strlen(action) > 64 ||
	    !plugin_text_ok(p, "audit_add action", action) ||
	    (target != NULL &&
		!plugin_text_ok(p, "audit_add target", target)) ||
	    (reason != NULL &&
		!plugin_text_ok(p, "audit_add reason", reason))) {
		log_warn(p->owner, "audit_add: a bad action, target or reason");
		return PARLEY_ERR_BAD_REQUEST;
	}
	if (pr != NULL && (r = plugin_room(p, pr, "audit_add")) == NULL)
		return PARLEY_ERR_BAD_REQUEST;
	state_audit(PLUGIN_ACTOR(p), action, target, r, reason, expires_s);
	return PARLEY_OK;
}

static const char *
host_room_topic(parley_ctx *ctx, parley_room *pr)
{
	struct room *r = plugin_room(plugin_of(ctx), pr, "room_topic");

	if (r == NULL)
		return NULL;
	return r->topic != NULL ? r->topic : "";
}

void
plugin_state_host(struct parley_host *h)
{
	h->audit_add = host_audit_add;
	h->state_store_register = host_state_store_register;
	h->state_changed = host_state_changed;
	h->room_topic = host_room_topic;
}
