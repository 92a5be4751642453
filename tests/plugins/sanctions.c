/*
 * sanctions.c: a test plugin for tests/integration/test_actions.py. Its
 * message and post hooks punish the sender in the middle of the sender's
 * own message: texts starting "plug-msg-kick", "plug-msg-mute" or
 * "plug-msg-bye" (message hook), "plug-post-..." (post hook) kick the
 * sender from the room, give it the role "muted", or close its
 * connection. The message must then reach nobody.
 */
#include <string.h>

#include <parley/plugin.h>

static const struct parley_host *host;

static int
starts(const struct parley_event *ev, const char *p)
{
	size_t n = strlen(p);

	return ev->text_len >= n && memcmp(ev->text, p, n) == 0;
}

static void
punish(parley_ctx *ctx, struct parley_event *ev, const char *how)
{
	if (ev->client == NULL)
		return;
	if (strcmp(how, "kick") == 0)
		host->client_kick(ctx, ev->client, ev->room, "punished");
	else if (strcmp(how, "mute") == 0)
		host->client_add_role(ctx, ev->client, "muted");
	else if (strcmp(how, "bye") == 0)
		host->client_disconnect(ctx, ev->client, "punished");
}

static int
on_event(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	const char *prefix = arg;
	static const char *const hows[] = { "kick", "mute", "bye" };
	char want[64];

	for (size_t i = 0; i < sizeof hows / sizeof *hows; i++) {
		strcpy(want, prefix);
		strcat(want, hows[i]);
		if (starts(ev, want))
			punish(ctx, ev, hows[i]);
	}
	return PARLEY_PASS;
}

static int
sanctions_init(parley_ctx *ctx, const struct parley_host *h)
{
	host = h;
	if (host->hook_add(ctx, PARLEY_EV_MESSAGE, 0, on_event,
		(void *)"plug-msg-") == 0 ||
	    host->hook_add(
		ctx, PARLEY_EV_POST, 0, on_event, (void *)"plug-post-") == 0)
		return -1;
	return 0;
}

const struct parley_plugin parley_plugin = {
	.abi_major = PARLEY_PLUGIN_ABI_MAJOR,
	.abi_minor = PARLEY_PLUGIN_ABI_MINOR,
	.size = sizeof(struct parley_plugin),
	.name = "sanctions",
	.version = "1",
	.description = "punishes senders from inside their own message",
	.init = sanctions_init,
};
