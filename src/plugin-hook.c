/*
 * plugin-hook.c: plugins in the hook chains and the command registry.
 * A plugin's hook is one entry of hook.c's chain, shared with scripts;
 * this file turns the chain's arguments into the ABI's event struct and
 * the plugin's verdict back, and does the same for slash commands. Also
 * the host functions of this concern.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "parley.h"
#include "plugin-host.h"

#define PLUGIN_BAD_VERDICTS_LOGGED 10

static const enum hook_event plugin_events[PARLEY_EV_LIMIT] = {
	[PARLEY_EV_CONNECT] = HOOK_CONNECT,
	[PARLEY_EV_USERNAME] = HOOK_USERNAME,
	[PARLEY_EV_CREATE_ROOM] = HOOK_CREATE_ROOM,
	[PARLEY_EV_JOIN] = HOOK_JOIN,
	[PARLEY_EV_MESSAGE] = HOOK_MESSAGE,
	[PARLEY_EV_LEAVE] = HOOK_LEAVE,
	[PARLEY_EV_DISCONNECT] = HOOK_DISCONNECT,
	[PARLEY_EV_SERVER_START] = HOOK_SERVER_START,
	[PARLEY_EV_SERVER_STOP] = HOOK_SERVER_STOP,
	[PARLEY_EV_TICK] = HOOK_TICK,
	[PARLEY_EV_POST] = HOOK_POST,
	[PARLEY_EV_RENAMED] = HOOK_RENAMED,
	[PARLEY_EV_ROOM_CREATED] = HOOK_ROOM_CREATED,
	[PARLEY_EV_ROOM_REMOVED] = HOOK_ROOM_REMOVED,
	[PARLEY_EV_RELOAD] = HOOK_RELOAD,
	[PARLEY_EV_TOKEN] = HOOK_TOKEN,
	[PARLEY_EV_RESUME] = HOOK_RESUME,
	[PARLEY_EV_TOPIC] = HOOK_TOPIC,
	[PARLEY_EV_DELETE_MESSAGE] = HOOK_DELETE_MESSAGE,
	[PARLEY_EV_DELETE_ROOM] = HOOK_DELETE_ROOM,
	[PARLEY_EV_ROLE] = HOOK_ROLE,
	[PARLEY_EV_MODERATION] = HOOK_MODERATION,
	[PARLEY_EV_DIRECT] = HOOK_DIRECT,
};

/* Whether event is one this host knows: ids are not contiguous (some
 * are kept for events that come later), and a gap maps to 0. */
static bool
plugin_event_known(int event)
{
	return event > 0 && event < PARLEY_EV_LIMIT &&
	    (event == PARLEY_EV_CONNECT ||
		plugin_events[event] != HOOK_CONNECT);
}

const char *
plugin_event_name(int event)
{
	if (!plugin_event_known(event))
		return "?";
	return hook_event_name(plugin_events[event]);
}

/* One running hook: ev is what the plugin sees; client_admit finds the
 * chain's arguments from it. */
struct plugin_event_call {
	struct parley_event ev;
	struct hook_args *a;
};

static enum hook_verdict
plugin_hook_call(struct hook_args *a, void *arg)
{
	struct plugin_hook *ph = arg;
	struct plugin *p = ph->p;
	struct plugin_event_call call;
	char *id_text = NULL;
	int v;

	memset(&call, 0, sizeof call);
	call.a = a;
	call.ev.size = sizeof call.ev;
	call.ev.type = (uint32_t)ph->event;
	call.ev.client = (parley_client *)a->client;
	call.ev.room = (parley_room *)a->room;
	call.ev.text = a->text;
	call.ev.text_len = a->text ? a->text_len : 0;
	call.ev.reason = a->reason;
	call.ev.client_id = a->client ? a->client->id : 0;
	call.ev.wall_ms = loop_wall_ms();
	if (a->event == HOOK_POST) {
		call.ev.sender = a->sender;
		call.ev.sender_len = strlen(a->sender);
		call.ev.flags = a->action ? PARLEY_MSG_ACTION : 0;
	}
	if (a->id != NULL &&
	    (id_text = json_dumps(a->id, JSON_ENCODE_ANY)) != NULL) {
		call.ev.request_id = id_text;
		call.ev.request_id_len = strlen(id_text);
	}
	call.ev.request = (const parley_request *)a->request;
	call.ev.target = (parley_client *)a->target;
	if (a->by != NULL && a->by->kind == CHAT_ACTOR_ADMIN) {
		call.ev.actor_kind = PARLEY_ACTOR_ADMIN;
		call.ev.actor = a->by->name != NULL ? a->by->name : "";
		if (strncmp(call.ev.actor, "admin:", 6) == 0)
			call.ev.actor += 6;
	}
	handle_add(&call.ev, HANDLE_EVENT);
	v = ph->fn(plugin_ctx(p), &call.ev, ph->arg);
	handle_remove(&call.ev);
	free(id_text);
	switch (v) {
	case PARLEY_PASS:
		return HOOK_PASS;
	case PARLEY_DENY: {
		char *reason = NULL;
		if (call.ev.deny_reason != NULL &&
		    plugin_text_ok(p, "deny reason", call.ev.deny_reason))
			/* A refused connection's reason goes in a close
			 * frame. */
			reason = plugin_cut(call.ev.deny_reason,
			    a->event == HOOK_CONNECT ? PLUGIN_CLOSE_REASON_MAX
						     : PLUGIN_REASON_MAX);
		hook_deny(a,
		    call.ev.deny_code == PARLEY_OK
			? PROTO_ERR_REJECTED
			: plugin_error_to_proto(call.ev.deny_code),
		    reason);
		free(reason);
		return HOOK_DENY;
	}
	case PARLEY_MODIFY:
		if (a->event != HOOK_USERNAME && a->event != HOOK_MESSAGE &&
		    a->event != HOOK_DIRECT)
			return HOOK_PASS;
		if (call.ev.new_text == NULL) {
			log_warn(p->owner,
			    "%s hook returned MODIFY without "
			    "new_text",
			    plugin_event_name(ph->event));
			return HOOK_PASS;
		}
		/* The core checks the new text as it checks a client's. */
		hook_modify(a, call.ev.new_text, call.ev.new_text_len);
		return HOOK_MODIFY;
	case PARLEY_DROP:
		return HOOK_DROP;
	case PARLEY_STOP:
		return HOOK_STOP;
	default:
		if (p->bad_verdicts++ < PLUGIN_BAD_VERDICTS_LOGGED)
			log_warn(p->owner,
			    "%s hook returned unknown verdict "
			    "%d, taken as PASS",
			    plugin_event_name(ph->event), v);
		return HOOK_PASS;
	}
}

static uint64_t
plugin_hook_add(
    struct plugin *p, int event, int priority, parley_hook_fn fn, void *arg)
{
	struct plugin_hook *ph;

	if (!plugin_event_known(event) || fn == NULL) {
		log_error(p->owner, "hook_add: %s",
		    fn == NULL ? "no function" : "unknown event");
		return 0;
	}
	ph = xcalloc(1, sizeof *ph);
	ph->p = p;
	ph->id = ++p->next_id;
	ph->event = event;
	ph->priority = priority;
	ph->fn = fn;
	ph->arg = arg;
	if (!p->info_only)
		ph->h = hook_add(plugin_events[event], priority, p->owner,
		    plugin_hook_call, ph);
	ph->next = p->hooks;
	p->hooks = ph;
	return ph->id;
}

static int
plugin_hook_remove(struct plugin *p, uint64_t id)
{
	for (struct plugin_hook **pp = &p->hooks; *pp != NULL;
	     pp = &(*pp)->next) {
		struct plugin_hook *ph = *pp;
		if (ph->id != id)
			continue;
		*pp = ph->next;
		if (ph->h != NULL)
			hook_remove(ph->h);
		free(ph);
		return 0;
	}
	return -1;
}

/* ---------------------------------------------------------------------
 * Commands
 */

/* One running command: cmd is what the plugin sees; command_reply finds
 * the rest from it. */
struct plugin_cmd_call {
	struct parley_command cmd;
	const struct command_ctx *cc;
};

static enum proto_err
plugin_command_call(const struct command_ctx *cc, void *arg)
{
	struct plugin_command *pc = arg;
	struct plugin_cmd_call call;
	int rc;

	memset(&call, 0, sizeof call);
	call.cmd.size = sizeof call.cmd;
	call.cmd.client = (parley_client *)cc->client;
	call.cmd.room = (parley_room *)cc->room;
	call.cmd.name = pc->name;
	call.cmd.args = cc->args;
	call.cmd.args_len = strlen(cc->args);
	call.cc = cc;
	handle_add(&call.cmd, HANDLE_COMMAND);
	rc = pc->fn(plugin_ctx(pc->p), &call.cmd, pc->arg);
	handle_remove(&call.cmd);
	if (!plugin_error_known(rc)) {
		log_warn(
		    pc->p->owner, "/%s returned unknown code %d", pc->name, rc);
		return PROTO_ERR_INTERNAL;
	}
	return plugin_error_to_proto(rc);
}

static int
plugin_command_add(struct plugin *p, const char *name, const char *usage,
    const char *help, parley_command_fn fn, void *arg)
{
	struct plugin_command *pc;

	if (!(name != NULL && command_name_ok(name, strlen(name))) ||
	    fn == NULL) {
		log_error(p->owner, "command_register: %s",
		    fn == NULL ? "no function" : "invalid command name");
		return -1;
	}
	if ((usage != NULL && !plugin_text_ok(p, "command usage", usage)) ||
	    (help != NULL && !plugin_text_ok(p, "command help", help)))
		return -1;
	pc = xcalloc(1, sizeof *pc);
	pc->p = p;
	pc->name = xstrdup(name);
	pc->usage = usage ? xstrdup(usage) : NULL;
	pc->fn = fn;
	pc->arg = arg;
	if (!p->info_only)
		command_register(
		    name, p->owner, usage, help, plugin_command_call, pc);
	pc->next = p->commands;
	p->commands = pc;
	return 0;
}

static void
plugin_command_reply(
    struct plugin *p, const struct parley_command *cmd, const char *text)
{
	const struct plugin_cmd_call *call;

	if (!handle_valid(cmd, HANDLE_COMMAND)) {
		log_warn(p->owner, "command_reply outside a command");
		return;
	}
	call = container_of(cmd, struct plugin_cmd_call, cmd);
	if (!plugin_text_ok(p, "command_reply", text))
		return;
	chat_notice(call->cc->client, call->cc->room, text, call->cc->id);
}

/* Removes every hook and command of p. They go by owner, so what a
 * failing init half-registered goes too. */
void
plugin_hooks_forget(struct plugin *p)
{
	if (!p->info_only) {
		hook_remove_owner(p->owner);
		command_unregister_owner(p->owner);
	}
	while (p->hooks != NULL) {
		struct plugin_hook *ph = p->hooks;
		p->hooks = ph->next;
		free(ph);
	}
	while (p->commands != NULL) {
		struct plugin_command *pc = p->commands;
		p->commands = pc->next;
		free(pc->name);
		free(pc->usage);
		free(pc);
	}
}

static uint64_t
host_hook_add(
    parley_ctx *ctx, int event, int priority, parley_hook_fn fn, void *arg)
{
	return plugin_hook_add(plugin_of(ctx), event, priority, fn, arg);
}

static int
host_hook_remove(parley_ctx *ctx, uint64_t id)
{
	return plugin_hook_remove(plugin_of(ctx), id);
}

static int
host_command_register(parley_ctx *ctx, const char *name, const char *usage,
    const char *help, parley_command_fn fn, void *arg)
{
	return plugin_command_add(plugin_of(ctx), name, usage, help, fn, arg);
}

static void
host_command_reply(
    parley_ctx *ctx, const struct parley_command *cmd, const char *text)
{
	plugin_command_reply(plugin_of(ctx), cmd, text);
}

static const struct chat_request *
host_request(struct plugin *p, const parley_request *req, const char *what)
{
	if (handle_valid(req, HANDLE_REQUEST))
		return (const struct chat_request *)req;
	log_warn(
	    p->owner, "%s: not the request of a running connect hook", what);
	return NULL;
}

static const char *
host_request_header(parley_ctx *ctx, const parley_request *pr, const char *name)
{
	const struct chat_request *r = host_request(
	    plugin_of(ctx), pr, "request_header");

	return r != NULL && name != NULL ? r->header(r, name) : NULL;
}

static const char *
host_request_cookie(parley_ctx *ctx, const parley_request *pr, const char *name)
{
	const struct chat_request *r = host_request(
	    plugin_of(ctx), pr, "request_cookie");

	return r != NULL && name != NULL ? r->cookie(r, name) : NULL;
}

static const char *
host_request_param(parley_ctx *ctx, const parley_request *pr, const char *name)
{
	const struct chat_request *r = host_request(
	    plugin_of(ctx), pr, "request_param");

	return r != NULL && name != NULL ? r->param(r, name) : NULL;
}

static int
host_client_admit(parley_ctx *ctx, struct parley_event *ev, const char *account,
    const char *name, const char *const *roles)
{
	struct plugin *p = plugin_of(ctx);
	struct plugin_event_call *call;
	size_t n = 0;

	if (!handle_valid(ev, HANDLE_EVENT) ||
	    (call = (struct plugin_event_call *)ev)->a->event != HOOK_CONNECT) {
		log_warn(p->owner, "client_admit outside a connect hook");
		return PARLEY_ERR_BAD_REQUEST;
	}
	if (account == NULL ||
	    !proto_name_valid(account, strlen(account), PROTO_USERNAME_MAX) ||
	    (name != NULL &&
		!proto_name_valid(name, strlen(name), PROTO_USERNAME_MAX))) {
		log_warn(p->owner,
		    "client_admit: the account and name must "
		    "be valid usernames");
		return PARLEY_ERR_BAD_REQUEST;
	}
	for (; roles != NULL && roles[n] != NULL; n++) {
		if (n >= CHAT_IDENTITY_ROLES_MAX || *roles[n] == '\0' ||
		    strlen(roles[n]) > 32 ||
		    !plugin_text_ok(p, "client_admit role", roles[n]))
			return PARLEY_ERR_BAD_REQUEST;
	}
	hook_admit(call->a, account, name, roles);
	return PARLEY_OK;
}

static void
host_client_expires(parley_ctx *ctx, parley_client *pc, uint64_t expires_s)
{
	struct client *c = plugin_client(plugin_of(ctx), pc, "client_expires");

	if (c != NULL && !c->remote)
		chat_expires(c, expires_s);
}

void
plugin_hook_host(struct parley_host *h)
{
	h->request_header = host_request_header;
	h->request_cookie = host_request_cookie;
	h->request_param = host_request_param;
	h->client_admit = host_client_admit;
	h->client_expires = host_client_expires;
	h->hook_add = host_hook_add;
	h->hook_remove = host_hook_remove;
	h->command_register = host_command_register;
	h->command_reply = host_command_reply;
}
