/*
 * moderator.c: a test plugin for tests/integration/test_state.py (ABI
 * 1.4). It narrows and widens who may set a topic (a topic starting
 * "plugin-allows" is allowed to anyone, one starting "plugin-refuses"
 * refused to everyone), adds an audit record for the command /note,
 * is the state store (every change it is given is logged as "state put
 * KIND KEY"), and with /remote-topic TEXT tells the server that another
 * server set the room's topic.
 */
#include <stdio.h>
#include <string.h>

#include <parley/plugin.h>

static const struct parley_host *host;
static char last_id[17]; /* the id of the last room record put */

static int
starts(const struct parley_event *ev, const char *p)
{
	size_t n = strlen(p);

	return ev->text_len >= n && memcmp(ev->text, p, n) == 0;
}

static int
on_topic(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	(void)ctx;
	(void)arg;
	if (starts(ev, "plugin-allows"))
		return PARLEY_STOP;
	if (starts(ev, "plugin-refuses")) {
		ev->deny_code = PARLEY_ERR_FORBIDDEN;
		ev->deny_reason = "the moderator plugin says no";
		return PARLEY_DENY;
	}
	return PARLEY_PASS;
}

static int
on_note(parley_ctx *ctx, const struct parley_command *cmd, void *arg)
{
	(void)arg;
	return host->audit_add(ctx, "note",
	    host->client_name(ctx, cmd->client), cmd->room, cmd->args, 0);
}

static int
on_remote_topic(parley_ctx *ctx, const struct parley_command *cmd, void *arg)
{
	char value[512];
	size_t len;
	const char *name = host->room_name(ctx, cmd->room, &len);
	const char *topic = host->room_topic(ctx, cmd->room);
	char key[128];
	int n;

	(void)arg;
	if (name == NULL || len >= sizeof key || topic == NULL)
		return PARLEY_ERR_BAD_REQUEST;
	memcpy(key, name, len);
	key[len] = '\0';
	/* The record as the server wrote it, with the new topic: enough
	 * for the test, which uses plain ASCII. */
	n = snprintf(value, sizeof value,
	    "{\"id\": \"%s\", \"topic\": \"%s\"}", last_id, cmd->args);
	if (n < 0 || (size_t)n >= sizeof value)
		return PARLEY_ERR_BAD_REQUEST;
	return host->state_changed(ctx, "room", key, value, (size_t)n);
}

static int
on_put(parley_ctx *ctx, const char *kind, const char *key,
    const char *value, size_t value_len, void *arg)
{
	const char *id;

	(void)value_len;
	(void)arg;
	if (value != NULL && strcmp(kind, "room") == 0 &&
	    (id = strstr(value, "\"id\":\"")) != NULL &&
	    strlen(id + 6) > 16) {
		memcpy(last_id, id + 6, 16);
		last_id[16] = '\0';
	}
	host->log_printf(ctx, PARLEY_LOG_INFO, "state put %s %s%s", kind,
	    key, value == NULL ? " (deleted)" : "");
	return 0;
}

static int
moderator_init(parley_ctx *ctx, const struct parley_host *h)
{
	static const struct parley_state_store store = {
		.size = sizeof store,
		.put = on_put,
	};

	host = h;
	if (!PARLEY_HOST_HAS(host, room_topic))
		return -1;
	if (host->hook_add(ctx, PARLEY_EV_TOPIC, 0, on_topic, NULL) == 0 ||
	    host->state_store_register(ctx, &store) != PARLEY_OK)
		return -1;
	host->command_register(ctx, "note", "/note <text>", "adds an audit record",
	    on_note, NULL);
	host->command_register(ctx, "remote-topic", "/remote-topic <text>",
	    "as if another server set the topic", on_remote_topic, NULL);
	return 0;
}

const struct parley_plugin parley_plugin = {
	.abi_major = PARLEY_PLUGIN_ABI_MAJOR,
	.abi_minor = PARLEY_PLUGIN_ABI_MINOR,
	.size = sizeof(struct parley_plugin),
	.name = "moderator",
	.version = "1",
	.description = "topic rules, audit notes and a logging state store",
	.init = moderator_init,
};
