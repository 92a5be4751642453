/*
 * example.c: a small parleyd plugin to copy when you start your own.
 *
 * It adds a command, /roll, that rolls dice and tells the room, and a
 * message hook that turns ":shrug:" into a shrug and refuses messages
 * that are all capitals. Everything a plugin needs is in one header,
 * <parley/plugin.h>; build it out of the tree with
 *
 *     cc -shared -fPIC -O2 $(pkg-config --cflags parley) \
 *         -o example.so example.c
 *
 * and load it by naming it in parley.conf:
 *
 *     plugins = { "/path/to/example.so" }    -- or "example" when it is
 *                                            -- in the plugin directory
 *     plugin_options = { example = { max_dice = 20 } }
 *
 * `parleyd --plugin-info example.so` shows what it registers without
 * starting the server. See parley-plugin(3).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <parley/plugin.h>

/*
 * The host table. init gets it; it stays valid until fini returns, so a
 * plugin keeps a pointer. Every host function takes the plugin's context
 * (ctx) first: that is how parleyd knows which plugin is calling (its
 * log lines say "plugin:example", its commands belong to it).
 */
static const struct parley_host *host;

/* Options, read once in init. */
static long max_dice = 10;

/* A small generator of our own: rand() is shared with the whole server. */
static unsigned long long roll_state = 88172645463325252ull;

static unsigned
roll_die(unsigned sides)
{
	roll_state ^= roll_state << 13;
	roll_state ^= roll_state >> 7;
	roll_state ^= roll_state << 17;
	return (unsigned)(roll_state % sides) + 1;
}

/*
 * /roll [NdM]: rolls N dice of M sides (default 1d6) and tells the whole
 * room as a notice. A command function gets the client, the room and the
 * arguments (cmd->args, after the command name) and returns PARLEY_OK or
 * an error code the client gets as an error answering its request.
 */
static int
cmd_roll(parley_ctx *ctx, const struct parley_command *cmd, void *arg)
{
	unsigned n = 1, sides = 6, total = 0;
	char text[512];
	int len;

	(void)arg;
	if (cmd->args_len > 0 &&
	    (sscanf(cmd->args, "%ud%u", &n, &sides) != 2 || n < 1 ||
	    n > (unsigned)max_dice || sides < 2 || sides > 1000)) {
		/* command_reply answers the sender only, carrying the id of
		 * its request, as a notice. */
		snprintf(text, sizeof text, "usage: /roll [NdM], N from 1 to "
		    "%ld, M from 2 to 1000", max_dice);
		host->command_reply(ctx, cmd, text);
		return PARLEY_OK;
	}
	/* Handles are only good during this call: use them, never keep
	 * them. client_name's string is borrowed too. */
	len = snprintf(text, sizeof text, "%s rolls %ud%u:",
	    host->client_name(ctx, cmd->client), n, sides);
	for (unsigned i = 0; i < n && len > 0 && (size_t)len < sizeof text;
	    i++) {
		unsigned r = roll_die(sides);
		total += r;
		len += snprintf(text + len, sizeof text - (size_t)len, " %u", r);
	}
	if (len > 0 && (size_t)len < sizeof text)
		snprintf(text + len, sizeof text - (size_t)len, " = %u", total);
	/* room_notice: every member of the room gets it. */
	host->room_notice(ctx, cmd->room, text);
	host->counter_add(ctx, "rolls", 1);
	return PARLEY_OK;
}

/* True when text has letters and none of them is lower case. */
static int
all_capitals(const char *text, size_t len)
{
	size_t upper = 0;

	for (size_t i = 0; i < len; i++) {
		if (text[i] >= 'a' && text[i] <= 'z')
			return 0;
		if (text[i] >= 'A' && text[i] <= 'Z')
			upper++;
	}
	return upper >= 8;
}

/*
 * The message hook: runs for every chat message, in one chain with the
 * other plugins' and the Lua scripts' hooks, by priority. It returns a
 * verdict:
 *   PARLEY_PASS    let it through unchanged (the next hook runs);
 *   PARLEY_DENY    refuse it: the sender gets an error (deny_code, default
 *                  "rejected") with deny_reason as its message;
 *   PARLEY_MODIFY  replace the text with new_text (the core checks it
 *                  again: length, UTF-8);
 *   PARLEY_DROP    swallow it silently;
 *   PARLEY_STOP    accept it as it is and skip the hooks after this one.
 * Strings put in ev are borrowed: the host copies them when we return,
 * so a static or stack buffer is fine.
 */
static int
on_message(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	static char buf[8192];
	static const char shrug[] = "\xc2\xaf\\_(\xe3\x83\x84)_/\xc2\xaf";
	const char *at;
	size_t before;

	(void)arg;
	host->counter_add(ctx, "messages_seen", 1);
	if (all_capitals(ev->text, ev->text_len)) {
		ev->deny_code = PARLEY_ERR_REJECTED;
		ev->deny_reason = "please do not shout";
		return PARLEY_DENY;
	}
	/* ev->text is not NUL-terminated: search within text_len only. */
	at = NULL;
	for (size_t i = 0; i + 7 <= ev->text_len; i++) {
		if (memcmp(ev->text + i, ":shrug:", 7) == 0) {
			at = ev->text + i;
			break;
		}
	}
	if (at == NULL || ev->text_len + sizeof shrug > sizeof buf)
		return PARLEY_PASS;
	before = (size_t)(at - ev->text);
	memcpy(buf, ev->text, before);
	memcpy(buf + before, shrug, sizeof shrug - 1);
	memcpy(buf + before + sizeof shrug - 1, at + 7,
	    ev->text_len - before - 7);
	ev->new_text = buf;
	ev->new_text_len = ev->text_len - 7 + sizeof shrug - 1;
	return PARLEY_MODIFY;
}

/*
 * init: called once when parleyd loads the plugin, before any client
 * connects. Read options, register commands and hooks. Return 0, or
 * non-zero to refuse to load (log why first): the server then refuses to
 * start, so a broken plugin is seen at once rather than half working.
 */
static int
example_init(parley_ctx *ctx, const struct parley_host *h)
{
	int64_t v;

	host = h;
	/* Options come from plugin_options.example in parley.conf. An
	 * option absent leaves the default (return 1); one of the wrong
	 * type returns -1 (the host logs it). */
	switch (host->option_int(ctx, "max_dice", &v)) {
	case 0:
		if (v < 1 || v > 100) {
			host->log_printf(ctx, PARLEY_LOG_ERROR,
			    "max_dice must be 1 to 100, not %lld", (long long)v);
			return -1;
		}
		max_dice = (long)v;
		break;
	case -1:
		return -1;
	}
	roll_state ^= host->wall_ms(ctx);

	if (host->command_register(ctx, "roll", "/roll [NdM]",
	    "roll N dice of M sides (default 1d6)", cmd_roll, NULL) != 0)
		return -1;
	/* Priority 0 is the default; higher runs earlier in the chain. */
	if (host->hook_add(ctx, PARLEY_EV_MESSAGE, 0, on_message, NULL) == 0)
		return -1;
	host->log_printf(ctx, PARLEY_LOG_INFO, "ready: /roll up to %ld dice",
	    max_dice);
	return 0;
}

/*
 * fini: called once at shutdown, after every client has gone. Hooks,
 * commands and timers are removed by the host; free what you allocated.
 */
static void
example_fini(parley_ctx *ctx)
{
	(void)ctx;
	host = NULL;
}

/* The one exported symbol: ABI version, name, version, init and fini. */
PARLEY_PLUGIN_DEFINE("example", "1.0", "dice rolls and a message hook",
    example_init, example_fini);
