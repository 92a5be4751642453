/*
 * events.c: a test plugin for tests/integration/test_actions.py: records
 * the events of ABI 1.3 and answers what it saw through /ev:
 *   /ev last       the last event recorded, as "type detail"
 *   /ev owner      room_owner of the room the command is typed in
 *   /ev account    client_account of the caller and room_owner_account
 *                  of the room ("-" for none)
 *   /ev option     the option "greeting" as read now
 *   /ev remove R   removes room R (room_remove)
 * Events recorded: renamed (old and new name), room_created (room and
 * creator id), room_removed (room), reload (the greeting re-read), and
 * each message's request_id; since 1.4 resume (the client's name and
 * id).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <parley/plugin.h>

static const struct parley_host *host;
static char last[512];
static char greeting[128];

static void
read_greeting(parley_ctx *ctx)
{
	const char *g = "unset";

	host->option_string(ctx, "greeting", &g);
	snprintf(greeting, sizeof greeting, "%s", g);
}

static int
on_event(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	size_t len = 0;
	const char *room = ev->room ? host->room_name(ctx, ev->room, &len) :
	    "";

	switch (ev->type) {
	case PARLEY_EV_RENAMED:
		snprintf(last, sizeof last, "renamed %.*s>%s",
		    (int)ev->text_len, ev->text,
		    host->client_name(ctx, ev->client));
		break;
	case PARLEY_EV_ROOM_CREATED:
		snprintf(last, sizeof last, "room_created %.*s %" PRIu64,
		    (int)len, room, ev->client_id);
		break;
	case PARLEY_EV_ROOM_REMOVED:
		snprintf(last, sizeof last, "room_removed %.*s", (int)len,
		    room);
		break;
	case PARLEY_EV_RELOAD:
		read_greeting(ctx);
		snprintf(last, sizeof last, "reload %s", greeting);
		break;
	case PARLEY_EV_RESUME:
		snprintf(last, sizeof last, "resume %s %" PRIu64,
		    host->client_name(ctx, ev->client), ev->client_id);
		break;
	case PARLEY_EV_MESSAGE:
		if (ev->request_id != NULL)
			snprintf(last, sizeof last, "message id=%.*s",
			    (int)ev->request_id_len, ev->request_id);
		else
			snprintf(last, sizeof last, "message no id");
		break;
	}
	return PARLEY_PASS;
}

static int
ev_command(parley_ctx *ctx, const struct parley_command *cmd, void *arg)
{
	char out[600];

	if (strcmp(cmd->args, "last") == 0)
		snprintf(out, sizeof out, "%s", last);
	else if (strcmp(cmd->args, "owner") == 0)
		snprintf(out, sizeof out, "%" PRIu64,
		    host->room_owner(ctx, cmd->room));
	else if (strcmp(cmd->args, "account") == 0 &&
	    PARLEY_HOST_HAS(host, room_owner_account)) {
		const char *a = host->client_account(ctx, cmd->client);
		const char *o = host->room_owner_account(ctx, cmd->room);
		snprintf(out, sizeof out, "%s %s", a ? a : "-", o ? o : "-");
	} else if (strcmp(cmd->args, "option") == 0)
		snprintf(out, sizeof out, "%s", greeting);
	else if (strncmp(cmd->args, "remove ", 7) == 0) {
		parley_room *r = host->room_find(ctx, cmd->args + 7,
		    strlen(cmd->args + 7));
		if (r == NULL)
			return PARLEY_ERR_ROOM_NOT_FOUND;
		host->room_remove(ctx, r, NULL);
		snprintf(out, sizeof out, "removed");
	} else
		return PARLEY_ERR_BAD_REQUEST;
	host->command_reply(ctx, cmd, out);
	return PARLEY_OK;
}

static int
events_init(parley_ctx *ctx, const struct parley_host *h)
{
	static const int events[] = { PARLEY_EV_RENAMED,
		PARLEY_EV_ROOM_CREATED, PARLEY_EV_ROOM_REMOVED,
		PARLEY_EV_RELOAD, PARLEY_EV_MESSAGE };

	host = h;
	if (h->abi_minor < 3 || !PARLEY_HOST_HAS(h, room_remove))
		return -1;
	for (size_t i = 0; i < sizeof events / sizeof *events; i++) {
		if (h->hook_add(ctx, events[i], 0, on_event, NULL) == 0)
			return -1;
	}
	if (h->abi_minor >= 4 &&
	    h->hook_add(ctx, PARLEY_EV_RESUME, 0, on_event, NULL) == 0)
		return -1;
	read_greeting(ctx);
	return h->command_register(ctx, "ev", "/ev last|owner|account|option|remove R",
	    "ABI 1.3 events", ev_command, NULL);
}

const struct parley_plugin parley_plugin = {
	.abi_major = PARLEY_PLUGIN_ABI_MAJOR,
	.abi_minor = PARLEY_PLUGIN_ABI_MINOR,
	.size = sizeof(struct parley_plugin),
	.name = "events",
	.version = "1",
	.description = "records the events of ABI 1.3",
	.init = events_init,
};
