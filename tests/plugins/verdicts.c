/*
 * verdicts.c: a test plugin that returns every verdict on demand and
 * drives most of the host table, for tests/integration/test_plugins.py.
 *
 * Messages choose the verdict by their prefix:
 *   "deny:X"     DENY, code rejected, reason "denied X"
 *   "forbid:X"   DENY, code forbidden, no reason
 *   "modify:X"   MODIFY to "modified X"
 *   "drop:X"     DROP
 *   "stop:X"     STOP (so the late hook below does not run)
 *   "badmod:X"   MODIFY with text that is not UTF-8 (the core refuses it)
 *   anything else PASS; then a late hook (priority -100) appends
 *   " [late]" to messages starting with "late:" or "stop:".
 * Usernames: "deny-*" denied (invalid_name), "alias-X" renamed to
 * "aliased-X". Rooms: "deny-*" denied, "drop-*" dropped. Joining
 * "locked" is forbidden. While /vt-gate is closed, connections are
 * refused.
 * Commands /vt-* exercise the host table (see vt_commands below).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <parley/plugin.h>

static const struct parley_host *host;
static int gate_closed;
static unsigned long long ticks, starts, stops, leaves, disconnects;
static char buf[8192];

static int
prefix(const struct parley_event *ev, const char *p)
{
	size_t n = strlen(p);

	return ev->text_len >= n && memcmp(ev->text, p, n) == 0;
}

static int
on_message(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	if (prefix(ev, "deny:")) {
		snprintf(buf, sizeof buf, "denied %.*s",
		    (int)(ev->text_len - 5), ev->text + 5);
		ev->deny_code = PARLEY_ERR_REJECTED;
		ev->deny_reason = buf;
		return PARLEY_DENY;
	}
	if (prefix(ev, "forbid:")) {
		ev->deny_code = PARLEY_ERR_FORBIDDEN;
		return PARLEY_DENY;
	}
	if (prefix(ev, "modify:")) {
		int n = snprintf(buf, sizeof buf, "modified %.*s",
		    (int)(ev->text_len - 7), ev->text + 7);
		ev->new_text = buf;
		ev->new_text_len = (size_t)n;
		return PARLEY_MODIFY;
	}
	if (prefix(ev, "badmod:")) {
		ev->new_text = "bad \xff\xfe text";
		ev->new_text_len = 12;
		return PARLEY_MODIFY;
	}
	if (prefix(ev, "drop:"))
		return PARLEY_DROP;
	if (prefix(ev, "stop:"))
		return PARLEY_STOP;
	if (prefix(ev, "weird:"))
		return 42; /* unknown: taken as PASS, logged */
	return PARLEY_PASS;
}

static int
on_message_late(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	if (prefix(ev, "late:") || prefix(ev, "stop:")) {
		int n = snprintf(buf, sizeof buf, "%.*s [late]",
		    (int)ev->text_len, ev->text);
		ev->new_text = buf;
		ev->new_text_len = (size_t)n;
		return PARLEY_MODIFY;
	}
	return PARLEY_PASS;
}

static int
on_username(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	if (prefix(ev, "deny-")) {
		ev->deny_code = PARLEY_ERR_INVALID_NAME;
		ev->deny_reason = "names starting deny- are not allowed here";
		return PARLEY_DENY;
	}
	if (prefix(ev, "alias-")) {
		int n = snprintf(buf, sizeof buf, "aliased-%.*s",
		    (int)(ev->text_len - 6), ev->text + 6);
		ev->new_text = buf;
		ev->new_text_len = (size_t)n;
		return PARLEY_MODIFY;
	}
	return PARLEY_PASS;
}

static int
on_create_room(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	if (prefix(ev, "deny-")) {
		ev->deny_reason = "no rooms called deny-";
		return PARLEY_DENY; /* code left 0: rejected */
	}
	if (prefix(ev, "drop-"))
		return PARLEY_DROP;
	return PARLEY_PASS;
}

static int
on_join(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	size_t len;
	const char *name = host->room_name(ctx, ev->room, &len);

	if (len == 6 && memcmp(name, "locked", 6) == 0) {
		ev->deny_code = PARLEY_ERR_FORBIDDEN;
		ev->deny_reason = "the room is locked";
		return PARLEY_DENY;
	}
	return PARLEY_PASS;
}

static int
on_connect(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	if (!gate_closed)
		return PARLEY_PASS;
	ev->deny_reason = "gate closed";
	return PARLEY_DENY;
}

static int
on_leave(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	char text[256];

	leaves++;
	/* The client is out of the room already: tell those left. */
	snprintf(text, sizeof text, "vt: %s left (%s)",
	    host->client_name(ctx, ev->client), ev->reason);
	host->room_notice(ctx, ev->room, text);
	return PARLEY_PASS;
}

static int
on_counter(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	switch (ev->type) {
	case PARLEY_EV_TICK:
		ticks++;
		break;
	case PARLEY_EV_SERVER_START:
		starts++;
		break;
	case PARLEY_EV_SERVER_STOP:
		stops++;
		break;
	case PARLEY_EV_DISCONNECT:
		disconnects++;
		host->counter_add(ctx, "disconnects", 1);
		break;
	}
	return PARLEY_PASS;
}

/* ---- Commands */

static int
cmd_stats(parley_ctx *ctx, const struct parley_command *cmd, void *arg)
{
	char text[256];

	snprintf(text, sizeof text, "ticks=%llu starts=%llu stops=%llu "
	    "leaves=%llu disconnects=%llu", ticks, starts, stops, leaves,
	    disconnects);
	host->command_reply(ctx, cmd, text);
	return PARLEY_OK;
}

static int
cmd_gate(parley_ctx *ctx, const struct parley_command *cmd, void *arg)
{
	gate_closed = strcmp(cmd->args, "close") == 0;
	host->command_reply(ctx, cmd, gate_closed ? "gate closed" :
	    "gate open");
	return PARLEY_OK;
}

static int
cmd_kick(parley_ctx *ctx, const struct parley_command *cmd, void *arg)
{
	parley_client *c = host->client_find_by_name(ctx, cmd->args,
	    cmd->args_len);

	if (c == NULL)
		return PARLEY_ERR_BAD_REQUEST;
	return host->client_kick(ctx, c, cmd->room, "kicked by vt");
}

static int
cmd_rename(parley_ctx *ctx, const struct parley_command *cmd, void *arg)
{
	return host->client_rename(ctx, cmd->client, cmd->args,
	    cmd->args_len);
}

static int
cmd_mkroom(parley_ctx *ctx, const struct parley_command *cmd, void *arg)
{
	parley_room *r = NULL;
	int rc = host->room_create(ctx, cmd->args, cmd->args_len, &r);

	if (rc == PARLEY_OK && r != NULL)
		host->command_reply(ctx, cmd, "room made");
	return rc;
}

static int
cmd_post(parley_ctx *ctx, const struct parley_command *cmd, void *arg)
{
	return host->room_post(ctx, cmd->room, "vt-bot", cmd->args,
	    cmd->args_len, false);
}

static int
cmd_json(parley_ctx *ctx, const struct parley_command *cmd, void *arg)
{
	static const char frame[] = "{\"type\":\"vt_custom\",\"n\":7}";

	if (strcmp(cmd->args, "room") == 0)
		return host->room_send_json(ctx, cmd->room, frame,
		    sizeof frame - 1);
	if (strcmp(cmd->args, "bad") == 0)
		return host->client_send_json(ctx, cmd->client, "[1,2]", 5);
	return host->client_send_json(ctx, cmd->client, frame,
	    sizeof frame - 1);
}

static int
add_member(parley_ctx *ctx, parley_client *c, void *arg)
{
	char *text = arg;
	size_t n = strlen(text);

	snprintf(text + n, 1024 - n, "%s%s", n > 8 ? "," : "",
	    host->client_name(ctx, c));
	return 0;
}

static int
cmd_members(parley_ctx *ctx, const struct parley_command *cmd, void *arg)
{
	char text[1024] = "members:";

	host->room_members(ctx, cmd->room, add_member, text);
	host->command_reply(ctx, cmd, text);
	return PARLEY_OK;
}

static int
cmd_disconnect(parley_ctx *ctx, const struct parley_command *cmd, void *arg)
{
	host->client_disconnect(ctx, cmd->client, "bye from vt");
	return PARLEY_OK;
}

/* A later notice to a client found again by its id. */
static void
on_timer(parley_ctx *ctx, uint64_t id, void *arg)
{
	uint64_t client_id = (uint64_t)(uintptr_t)arg;
	parley_client *c = host->client_find(ctx, client_id);

	if (c != NULL)
		host->client_notice(ctx, c, NULL, "vt: timer fired");
}

static int
cmd_timer(parley_ctx *ctx, const struct parley_command *cmd, void *arg)
{
	uint64_t id = host->client_id(ctx, cmd->client);

	host->timer_add(ctx, 50, 0, on_timer, (void *)(uintptr_t)id);
	return PARLEY_OK;
}

static int
cmd_options(parley_ctx *ctx, const struct parley_command *cmd, void *arg)
{
	host->command_reply(ctx, cmd, host->options_json(ctx, NULL));
	return PARLEY_OK;
}

static int
cmd_error(parley_ctx *ctx, const struct parley_command *cmd, void *arg)
{
	return PARLEY_ERR_RATE_LIMITED;
}

static const struct {
	const char *name;
	parley_command_fn fn;
} vt_commands[] = {
	{ "vt-stats", cmd_stats },
	{ "vt-gate", cmd_gate },
	{ "vt-kick", cmd_kick },
	{ "vt-rename", cmd_rename },
	{ "vt-mkroom", cmd_mkroom },
	{ "vt-post", cmd_post },
	{ "vt-json", cmd_json },
	{ "vt-members", cmd_members },
	{ "vt-disconnect", cmd_disconnect },
	{ "vt-timer", cmd_timer },
	{ "vt-options", cmd_options },
	{ "vt-error", cmd_error },
};

static int
vt_init(parley_ctx *ctx, const struct parley_host *h)
{
	static const int counted[] = { PARLEY_EV_TICK, PARLEY_EV_SERVER_START,
		PARLEY_EV_SERVER_STOP, PARLEY_EV_DISCONNECT };

	host = h;
	if (!PARLEY_HOST_HAS(h, history_emit))
		return -1;
	h->hook_add(ctx, PARLEY_EV_MESSAGE, 0, on_message, NULL);
	h->hook_add(ctx, PARLEY_EV_MESSAGE, -100, on_message_late, NULL);
	h->hook_add(ctx, PARLEY_EV_USERNAME, 0, on_username, NULL);
	h->hook_add(ctx, PARLEY_EV_CREATE_ROOM, 0, on_create_room, NULL);
	h->hook_add(ctx, PARLEY_EV_JOIN, 0, on_join, NULL);
	h->hook_add(ctx, PARLEY_EV_CONNECT, 0, on_connect, NULL);
	h->hook_add(ctx, PARLEY_EV_LEAVE, 0, on_leave, NULL);
	for (size_t i = 0; i < sizeof counted / sizeof counted[0]; i++)
		h->hook_add(ctx, counted[i], 0, on_counter, NULL);
	for (size_t i = 0; i < sizeof vt_commands / sizeof vt_commands[0]; i++)
		h->command_register(ctx, vt_commands[i].name, NULL,
		    "verdicts test command", vt_commands[i].fn, NULL);
	/* Wrong registrations are refused, not fatal. */
	if (h->hook_add(ctx, 999, 0, on_message, NULL) != 0 ||
	    h->command_register(ctx, "Bad Name", NULL, NULL, cmd_stats,
	    NULL) != -1)
		return -1;
	return 0;
}

PARLEY_PLUGIN_DEFINE("verdicts", "1.0", "test plugin: every verdict",
    vt_init, NULL);
