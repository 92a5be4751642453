/*
 * state.c: the community's state shared through Redis (plugin ABI 1.4):
 * rooms with their id, owner, topic and roles, bans, mutes and message
 * tombstones. The plugin is the server's state store: every change the
 * server makes is written to a hash per kind (HSET, HDEL) and announced
 * on the state channel; a change another server announces is handed to
 * the server (state_changed), which applies it to the live rooms. When
 * Redis comes (back), the cluster's records are read whole, and the
 * cluster's win. The audit trail and the scripts' store stay each
 * server's own. While Redis is away, changes are the server's alone
 * (kept in its own state store) and counted (state_unshared).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis.h"

static const char *const rd_state_kinds[] = { "room", "ban", "mute", "tomb",
	NULL };
static bool rd_state_on;

static bool
rd_state_shared(const char *kind)
{
	for (size_t i = 0; rd_state_kinds[i] != NULL; i++) {
		if (strcmp(kind, rd_state_kinds[i]) == 0)
			return true;
	}
	return false;
}

static int
rd_state_put(parley_ctx *ctx, const char *kind, const char *key,
    const char *value, size_t value_len, void *arg)
{
	char *hash, *ch, *msg;
	json_t *ev;

	(void)ctx;
	(void)arg;
	if (!rd_state_shared(kind))
		return 0;
	if (!rd_up) {
		rd_host->counter_add(rd_ctx, "state_unshared", 1);
		return 0;
	}
	hash = rd_key("st:", kind, strlen(kind));
	if (value != NULL) {
		const char *argv[] = { "HSET", hash, key, value };
		size_t lens[] = { 4, strlen(hash), strlen(key), value_len };
		rd_command(&rd_cmd, rd_on_reply_ignore, NULL, 4, argv, lens);
	} else {
		const char *argv[] = { "HDEL", hash, key };
		size_t lens[] = { 4, strlen(hash), strlen(key) };
		rd_command(&rd_cmd, rd_on_reply_ignore, NULL, 3, argv, lens);
	}
	free(hash);
	ev = json_pack("{s:s, s:s, s:s, s:s%}", "sid", rd_sid, "kind", kind,
	    "key", key, "value", value ? value : "", value ? value_len : 0);
	if (value == NULL)
		json_object_set_new(ev, "value", json_null());
	msg = json_dumps(ev, JSON_COMPACT);
	json_decref(ev);
	ch = rd_key("st", "", 0);
	if (msg != NULL) {
		const char *argv[] = { "PUBLISH", ch, msg };
		size_t lens[] = { 7, strlen(ch), strlen(msg) };
		rd_command(&rd_cmd, rd_on_reply_ignore, NULL, 3, argv, lens);
	}
	free(ch);
	free(msg);
	return 0;
}

void
rd_state_event(const char *data, size_t len)
{
	json_t *ev = json_loadb(data, len, 0, NULL), *v;
	const char *sid, *kind, *key;

	if (ev == NULL)
		return;
	sid = json_string_value(json_object_get(ev, "sid"));
	kind = json_string_value(json_object_get(ev, "kind"));
	key = json_string_value(json_object_get(ev, "key"));
	v = json_object_get(ev, "value");
	if (sid != NULL && kind != NULL && key != NULL &&
	    strcmp(sid, rd_sid) != 0 && rd_state_shared(kind))
		rd_host->state_changed(rd_ctx, kind, key,
		    json_is_string(v) ? json_string_value(v) : NULL,
		    json_is_string(v) ? json_string_length(v) : 0);
	json_decref(ev);
}

/* The cluster's records of one kind, read whole when Redis comes. */
static void
rd_on_state_all(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r;
	const char *kind = priv;

	(void)ac;
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY)
		return;
	for (size_t i = 0; i + 1 < reply->elements; i += 2) {
		redisReply *k = reply->element[i], *v = reply->element[i + 1];
		if (k->type == REDIS_REPLY_STRING &&
		    v->type == REDIS_REPLY_STRING)
			rd_host->state_changed(
			    rd_ctx, kind, k->str, v->str, v->len);
	}
}

void
rd_state_up(void)
{
	if (!rd_state_on)
		return;
	for (size_t i = 0; rd_state_kinds[i] != NULL; i++) {
		char *hash = rd_key("st:", rd_state_kinds[i],
		    strlen(rd_state_kinds[i]));
		const char *argv[] = { "HGETALL", hash };
		size_t lens[] = { 7, strlen(hash) };
		rd_command(&rd_cmd, rd_on_state_all, (void *)rd_state_kinds[i],
		    2, argv, lens);
		free(hash);
	}
}

/* A room ended (deleted, expired): its past goes with it, as its
 * history in the server's own stores is keyed by the room's id. The
 * cluster's history is kept by name, so it is dropped here; its seq
 * stays, so that a later room of the name never repeats one. */
static int
rd_state_room_removed(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	size_t len;
	const char *name;
	char *key;

	(void)arg;
	if (!rd_up || rd_stopping || ev->room == NULL ||
	    (name = rd_host->room_name(ctx, ev->room, &len)) == NULL)
		return PARLEY_PASS;
	key = rd_key("history:", name, len);
	{
		const char *argv[] = { "DEL", key };
		size_t lens[] = { 3, strlen(key) };
		rd_command(&rd_cmd, rd_on_reply_ignore, NULL, 2, argv, lens);
	}
	free(key);
	return PARLEY_PASS;
}

void
rd_state_init(void)
{
	static const struct parley_state_store store = {
		.size = sizeof store,
		.put = rd_state_put,
	};

	if (!PARLEY_HOST_HAS(rd_host, state_store_register)) {
		rd_host->log_printf(rd_ctx, PARLEY_LOG_INFO, "parleyd before "
		    "plugin ABI 1.4: rooms' state is not shared");
		return;
	}
	rd_state_on = rd_host->state_store_register(rd_ctx, &store) ==
	    PARLEY_OK;
	if (rd_state_on)
		rd_host->hook_add(rd_ctx, PARLEY_EV_ROOM_REMOVED, 0,
		    rd_state_room_removed, NULL);
}
