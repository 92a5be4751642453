/*
 * direct.c: direct messages and typing across the cluster. The core
 * delivers both to this server's clients itself and hands the rest to
 * our relay once every check and hook has passed: a direct message to a
 * remote member (a ghost of another server's client), and each typing
 * it passed on. Both go out on one cluster-wide channel; every server
 * delivers what concerns its own clients: the direct message to its
 * local client of that name (names are unique in the cluster), the
 * typing to its members of that room. Nothing is kept in Redis. Typing
 * reaches the channel at most once per client and room every 3 seconds
 * (the core's limit), so a server reads at most that much of it.
 */
#include <stdlib.h>
#include <string.h>

#include "redis.h"

/* Publishes o (stolen) on the channel, when Redis is there. */
static void
rd_direct_publish(json_t *o)
{
	char *ch, *data;
	const char *argv[3];
	size_t lens[3];

	json_object_set_new(o, "s", json_string(rd_sid));
	data = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (data == NULL)
		abort();
	if (!rd_up) {
		free(data);
		return;
	}
	ch = rd_key("dt", "", 0);
	argv[0] = "PUBLISH";
	argv[1] = ch;
	argv[2] = data;
	lens[0] = 7;
	lens[1] = strlen(ch);
	lens[2] = strlen(data);
	rd_command(&rd_cmd, rd_on_reply_ignore, NULL, 3, argv, lens);
	free(ch);
	free(data);
}

static void
rd_relay(parley_ctx *ctx, const struct parley_relay *rl, void *arg)
{
	size_t len;
	const char *room;

	(void)arg;
	switch (rl->kind) {
	case PARLEY_RELAY_DIRECT:
		if (rl->target == NULL || rl->text == NULL)
			return;
		rd_direct_publish(json_pack("{s:s, s:s, s:s, s:s%, s:I}", "k",
		    "d", "f", rd_host->client_name(ctx, rl->client), "to",
		    rd_host->client_name(ctx, rl->target), "m", rl->text,
		    rl->text_len, "ts", (json_int_t)rl->wall_ms));
		rd_host->counter_add(ctx, "direct_out", 1);
		break;
	case PARLEY_RELAY_TYPING:
		if (rl->room == NULL)
			return;
		room = rd_host->room_name(ctx, rl->room, &len);
		rd_direct_publish(json_pack("{s:s, s:s%, s:s}", "k", "t", "r",
		    room, len, "u", rd_host->client_name(ctx, rl->client)));
		break;
	default:
		break;
	}
}

/* A direct message another server relayed: to our client of that name. */
static void
rd_direct_in(json_t *o)
{
	const char *from = json_string_value(json_object_get(o, "f"));
	json_t *to = json_object_get(o, "to"), *m = json_object_get(o, "m");
	json_t *ts = json_object_get(o, "ts"), *out;
	parley_client *c;
	char *frame;

	if (from == NULL || !json_is_string(to) || !json_is_string(m) ||
	    !json_is_integer(ts))
		return;
	c = rd_host->client_find_by_name(rd_ctx, json_string_value(to),
	    json_string_length(to));
	if (c == NULL || rd_host->client_is_remote(rd_ctx, c))
		return;
	out = json_pack("{s:s, s:s, s:s, s:O, s:O}", "type", "direct_message",
	    "from", from, "to", rd_host->client_name(rd_ctx, c), "message", m,
	    "ts", ts);
	frame = json_dumps(out, JSON_COMPACT);
	json_decref(out);
	if (frame == NULL)
		abort();
	rd_host->client_send_json(rd_ctx, c, frame, strlen(frame));
	rd_host->counter_add(rd_ctx, "direct_in", 1);
	free(frame);
}

/* A typing another server passed on: to our members of that room. */
static void
rd_typing_in(json_t *o)
{
	json_t *r = json_object_get(o, "r"), *out;
	const char *user = json_string_value(json_object_get(o, "u"));
	parley_room *room;
	char *frame;

	if (!json_is_string(r) || user == NULL)
		return;
	room = rd_host->room_find(rd_ctx, json_string_value(r),
	    json_string_length(r));
	if (room == NULL)
		return;
	out = json_pack("{s:s, s:O, s:s}", "type", "typing", "roomName", r,
	    "username", user);
	frame = json_dumps(out, JSON_COMPACT);
	json_decref(out);
	if (frame == NULL)
		abort();
	/* The typer's ghost is a member too; a ghost gets nothing. */
	rd_host->room_send_json(rd_ctx, room, frame, strlen(frame));
	free(frame);
}

void
rd_direct_channel(const char *kind, const char *data, size_t len)
{
	json_t *o;
	const char *k, *s;

	if (strcmp(kind, "message") != 0)
		return;
	o = json_loadb(data, len, 0, NULL);
	k = json_string_value(json_object_get(o, "k"));
	s = json_string_value(json_object_get(o, "s"));
	/* Our own comes back too: the core already delivered it here. */
	if (k != NULL && s != NULL && strcmp(s, rd_sid) != 0) {
		if (strcmp(k, "d") == 0)
			rd_direct_in(o);
		else if (strcmp(k, "t") == 0)
			rd_typing_in(o);
	}
	json_decref(o);
}

void
rd_direct_up(void)
{
	char *ch = rd_key("dt", "", 0);
	const char *argv[] = { "SUBSCRIBE", ch };
	size_t lens[] = { 9, strlen(ch) };

	rd_command(&rd_sub, rd_on_sub, NULL, 2, argv, lens);
	free(ch);
}

void
rd_direct_init(void)
{
	/* A host without relays (ABI < 1.4) keeps both on one server. */
	if (PARLEY_HOST_HAS(rd_host, relay_set))
		rd_host->relay_set(rd_ctx, rd_relay, NULL);
}
