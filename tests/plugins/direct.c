/*
 * direct.c: a test plugin for direct messages and relays (ABI 1.4), for
 * tests/integration/test_direct.py.
 *
 * Its direct hook chooses by the text: "deny:X" refuses (rejected,
 * naming the recipient), "modify:X" rewrites to "to NAME: X", "drop:X"
 * drops. Its relay writes down what it is told; the commands:
 *   /dg-ghost NAME  makes NAME a remote member (another server's client)
 *   /dg-relays      answers with what the relay was told, then forgets it
 */
#include <stdio.h>
#include <string.h>

#include <parley/plugin.h>

static const struct parley_host *host;
static char buf[4096];
static char seen[4096];

static int
prefix(const struct parley_event *ev, const char *p)
{
	size_t n = strlen(p);

	return ev->text_len >= n && memcmp(ev->text, p, n) == 0;
}

static int
on_direct(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	const char *to = host->client_name(ctx, ev->target);

	if (prefix(ev, "deny:")) {
		snprintf(buf, sizeof buf, "not to %s", to);
		ev->deny_code = PARLEY_ERR_REJECTED;
		ev->deny_reason = buf;
		return PARLEY_DENY;
	}
	if (prefix(ev, "modify:")) {
		int n = snprintf(buf, sizeof buf, "to %s: %.*s", to,
		    (int)(ev->text_len - 7), ev->text + 7);
		ev->new_text = buf;
		ev->new_text_len = (size_t)n;
		return PARLEY_MODIFY;
	}
	if (prefix(ev, "drop:"))
		return PARLEY_DROP;
	return PARLEY_PASS;
}

static void
on_relay(parley_ctx *ctx, const struct parley_relay *rl, void *arg)
{
	size_t len = strlen(seen), rlen;
	const char *room;

	if (rl->kind == PARLEY_RELAY_DIRECT)
		snprintf(seen + len, sizeof seen - len, "direct %s>%s %.*s;",
		    host->client_name(ctx, rl->client),
		    host->client_name(ctx, rl->target), (int)rl->text_len,
		    rl->text);
	else if (rl->kind == PARLEY_RELAY_TYPING) {
		room = host->room_name(ctx, rl->room, &rlen);
		snprintf(seen + len, sizeof seen - len, "typing %s@%.*s;",
		    host->client_name(ctx, rl->client), (int)rlen, room);
	}
}

static int
cmd_ghost(parley_ctx *ctx, const struct parley_command *cmd, void *arg)
{
	parley_client *c;
	int rc = host->remote_create(ctx, cmd->args, cmd->args_len, &c);

	if (rc != PARLEY_OK)
		return rc;
	host->command_reply(ctx, cmd, "ghost made");
	return PARLEY_OK;
}

static int
cmd_relays(parley_ctx *ctx, const struct parley_command *cmd, void *arg)
{
	host->command_reply(ctx, cmd, seen[0] != '\0' ? seen : "none");
	seen[0] = '\0';
	return PARLEY_OK;
}

static int
dg_init(parley_ctx *ctx, const struct parley_host *h)
{
	host = h;
	if (!PARLEY_HOST_HAS(h, relay_set)) {
		h->log_printf(ctx, PARLEY_LOG_ERROR, "needs ABI 1.4");
		return -1;
	}
	h->hook_add(ctx, PARLEY_EV_DIRECT, 0, on_direct, NULL);
	h->relay_set(ctx, on_relay, NULL);
	h->command_register(ctx, "dg-ghost", "/dg-ghost <name>",
	    "makes a remote member", cmd_ghost, NULL);
	h->command_register(ctx, "dg-relays", "/dg-relays",
	    "what the relay was told", cmd_relays, NULL);
	return 0;
}

PARLEY_PLUGIN_DEFINE("direct-test", "1.0",
    "direct message hooks and relays, for the tests", dg_init, NULL);
