/*
 * messages.c: chat messages ordered through Redis, and room history kept
 * there. Every message about to be posted on this server (a client's, a
 * /me, a script's or a plugin's) is taken over in the post hook and
 * handed to a Lua script in Redis that gives it the room's next
 * cluster-wide seq, keeps it in the room's bounded history and publishes
 * it on the room's channel, in one step. Each server subscribes to the
 * channels of the rooms it has members in, the origin included, and
 * posts what comes back: publish order is seq order, and a message
 * crosses Redis once per server, not once per member. While Redis is away
 * messages stay local (seq continues from what this server saw).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis.h"

/* A message on its way through Redis: posted locally if Redis fails. */
struct rd_pending {
	char *room;
	char *sender;
	char *text;
	size_t len;
	bool action;
	bool subscribed; /* the room's channel was ours when it was sent */
	uint64_t ts;
};

static json_t *rd_subs;   /* object: room -> 1 pending, 2 subscribed */
static json_t *rd_seqs;   /* object: room -> last seq known here */
/* room -> {seq: true}: posted here from the script's answer because the
 * room's channel was not ours yet; skipped if the channel brings it. */
static json_t *rd_early;
static bool rd_posting;   /* posting locally: our post hook passes */

static const char rd_msg_script[] =
    "local cur = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "local l = tonumber(ARGV[3])\n"
    "if l > cur then cur = l end\n"
    "cur = cur + 1\n"
    "redis.call('SET', KEYS[1], cur)\n"
    "local m = cur .. ' ' .. ARGV[1]\n"
    "redis.call('PUBLISH', KEYS[2], m)\n"
    "local h = tonumber(ARGV[2])\n"
    "if h > 0 then\n"
    "  redis.call('ZADD', KEYS[3], cur, m)\n"
    "  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(h + 1))\n"
    "end\n"
    "return cur\n";

/* ---- Subscriptions: one channel per room with local members */

static int
rd_want_member(parley_ctx *ctx, parley_client *c, void *arg)
{
	return rd_host->client_is_remote(ctx, c) ? 0 : 1;
}

static int
rd_want_room(parley_ctx *ctx, parley_room *r, void *arg)
{
	json_t *want = arg;
	size_t len;
	const char *name = rd_host->room_name(ctx, r, &len);

	if (rd_host->room_members(ctx, r, rd_want_member, NULL) != 0) {
		char *n = strndup(name, len);
		json_object_set_new(want, n, json_true());
		free(n);
	}
	return 0;
}

static void
rd_subscribe(const char *verb, const char *room, size_t len)
{
	char *ch = rd_key("m:", room, len);
	const char *argv[2] = { verb, ch };
	size_t lens[2] = { strlen(verb), strlen(ch) };

	rd_command(&rd_sub, rd_on_sub, NULL, 2, argv, lens);
	free(ch);
}

void
rd_messages_want(const char *room, size_t len)
{
	char *name;

	if (!rd_up || rd_sub.ac == NULL)
		return;
	name = strndup(room, len);
	if (name == NULL)
		abort();
	if (json_object_get(rd_subs, name) == NULL) {
		json_object_set_new(rd_subs, name, json_integer(1));
		rd_subscribe("SUBSCRIBE", room, len);
		/* On the wire before anything announces the join: whatever
		 * follows from it is published after we listen. */
		redisAsyncHandleWrite(rd_sub.ac);
	}
	free(name);
}

void
rd_messages_unwant(const char *room, size_t len)
{
	char *name = strndup(room, len);

	if (name == NULL)
		abort();
	if (json_object_get(rd_subs, name) != NULL) {
		json_object_del(rd_subs, name);
		if (rd_up)
			rd_subscribe("UNSUBSCRIBE", room, len);
	}
	free(name);
}

void
rd_messages_subscriptions(void)
{
	json_t *want = json_object();
	const char *key;
	json_t *v;
	void *tmp;

	rd_host->room_each(rd_ctx, rd_want_room, want);
	json_object_foreach(want, key, v) {
		if (json_object_get(rd_subs, key) == NULL) {
			json_object_set_new(rd_subs, key, json_integer(1));
			rd_subscribe("SUBSCRIBE", key, strlen(key));
		}
	}
	json_object_foreach_safe(rd_subs, tmp, key, v) {
		if (json_object_get(want, key) == NULL) {
			rd_subscribe("UNSUBSCRIBE", key, strlen(key));
			json_object_del(rd_subs, key);
		}
	}
	json_decref(want);
}


/* ---- Messages */

/* The cluster's seq of room reached seq: a local message (Redis away)
 * continues from there. */
static void
rd_seq_seen(const char *room, uint64_t seq)
{
	if ((json_int_t)seq > json_integer_value(json_object_get(rd_seqs,
	    room)))
		json_object_set_new(rd_seqs, room, json_integer((json_int_t)seq));
}

static void
rd_deliver(const char *room, size_t room_len, const char *data, size_t len)
{
	char *end;
	unsigned long long seq = strtoull(data, &end, 10);
	json_t *m, *t;
	parley_room *r;
	const char *sender;

	char *name, key[24];
	json_t *early;

	if (end == data || *end != ' ' || seq == 0)
		return;
	end++;
	if ((name = strndup(room, room_len)) == NULL)
		abort();
	early = json_object_get(rd_early, name);
	snprintf(key, sizeof key, "%llu", seq);
	if (json_object_get(early, key) != NULL) {
		json_object_del(early, key);
		if (json_object_size(early) == 0)
			json_object_del(rd_early, name);
		free(name);
		return; /* posted already, from the script's answer */
	}
	m = json_loadb(end, len - (size_t)(end - data), 0, NULL);
	t = json_object_get(m, "t");
	sender = json_string_value(json_object_get(m, "n"));
	r = rd_host->room_find(rd_ctx, room, room_len);
	if (r != NULL)
		rd_seq_seen(name, seq);
	free(name);
	if (r != NULL && json_is_string(t) && sender != NULL)
		rd_host->room_post_seq(rd_ctx, r, sender, json_string_value(t),
		    json_string_length(t),
		    json_is_true(json_object_get(m, "a")), seq,
		    (uint64_t)json_integer_value(json_object_get(m, "ts")));
	rd_host->counter_add(rd_ctx, "messages_received", 1);
	json_decref(m);
}

void
rd_messages_channel(const char *kind, const char *room, size_t len,
    const char *data, size_t dlen)
{
	if (strcmp(kind, "message") == 0)
		rd_deliver(room, len, data, dlen);
	else if (strcmp(kind, "subscribe") == 0) {
		char *name = strndup(room, len);
		if (json_object_get(rd_subs, name) != NULL)
			json_object_set_new(rd_subs, name, json_integer(2));
		free(name);
	}
}

/* ---- Room history, kept in Redis (a sorted set per room, by seq) */

static void
rd_on_history(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r;
	parley_history_sink *sink = priv;

	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
		if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
			rd_host->log_printf(rd_ctx, PARLEY_LOG_WARN, "history: %s",
			    reply->str);
		rd_host->history_done(rd_ctx, sink, -1);
		return;
	}
	/* Newest first from Redis; the client gets them oldest first. */
	for (size_t i = reply->elements; i-- > 0;) {
		redisReply *e = reply->element[i];
		struct parley_history_msg m;
		char *end;
		unsigned long long seq;
		json_t *o, *t, *n;

		if (e->type != REDIS_REPLY_STRING)
			continue;
		seq = strtoull(e->str, &end, 10);
		if (end == e->str || *end != ' ' || seq == 0)
			continue;
		end++;
		o = json_loadb(end, e->len - (size_t)(end - e->str), 0, NULL);
		t = json_object_get(o, "t");
		n = json_object_get(o, "n");
		if (json_is_string(t) && json_is_string(n)) {
			memset(&m, 0, sizeof m);
			m.size = sizeof m;
			m.flags = json_is_true(json_object_get(o, "a")) ?
			    PARLEY_MSG_ACTION : 0;
			m.seq = seq;
			m.ts = (uint64_t)json_integer_value(json_object_get(o,
			    "ts"));
			m.sender = json_string_value(n);
			m.sender_len = json_string_length(n);
			m.text = json_string_value(t);
			m.text_len = json_string_length(t);
			rd_host->history_emit(rd_ctx, sink, &m);
		}
		json_decref(o);
	}
	rd_host->history_done(rd_ctx, sink, 0);
}

static int
rd_history_read(parley_ctx *ctx, const char *room, size_t room_len,
    uint64_t before, uint32_t limit, parley_history_sink *sink, void *arg)
{
	char max[32], count[16], *key;
	parley_history_sink *later;
	int rc;

	if (limit == 0)
		return 0;
	/* The server keys a room's history by name and room id; the
	 * cluster's history is the name's (its rooms share no id yet). */
	if (memchr(room, '\x1f', room_len) != NULL)
		room_len = (size_t)((const char *)memchr(room, '\x1f',
		    room_len) - room);
	if (!rd_up) {
		rd_host->log_printf(ctx, PARLEY_LOG_DEBUG, "history asked while "
		    "Redis is away");
		return -1;
	}
	if (before == PARLEY_HISTORY_NO_BEFORE)
		snprintf(max, sizeof max, "+inf");
	else
		snprintf(max, sizeof max, "(%llu", (unsigned long long)before);
	snprintf(count, sizeof count, "%u", limit);
	if ((later = rd_host->history_defer(ctx, sink)) == NULL)
		return -1;
	key = rd_key("history:", room, room_len);
	{
		const char *argv[] = { "ZREVRANGEBYSCORE", key, max, "-inf",
			"LIMIT", "0", count };
		size_t lens[] = { 16, strlen(key), strlen(max), 4, 5, 1,
			strlen(count) };
		rc = rd_command(&rd_cmd, rd_on_history, later, 7, argv, lens);
	}
	free(key);
	if (rc != REDIS_OK)
		rd_host->history_done(ctx, later, -1);
	return PARLEY_HISTORY_LATER;
}

/* Messages reach Redis's history in the script that orders them. */
static int
rd_history_append(parley_ctx *ctx, const struct parley_history_msg *m,
    void *arg)
{
	return 0;
}

/* A local message (Redis away) continues from what this server saw. */
static uint64_t
rd_history_last_seq(parley_ctx *ctx, const char *room, size_t room_len,
    void *arg)
{
	char *name = strndup(room, memchr(room, '\x1f', room_len) != NULL ?
	    (size_t)((const char *)memchr(room, '\x1f', room_len) - room) :
	    room_len);
	json_int_t last = rd_seqs != NULL ?
	    json_integer_value(json_object_get(rd_seqs, name)) : 0;

	free(name);
	return (uint64_t)last;
}

static void
rd_pending_free(struct rd_pending *p)
{
	free(p->room);
	free(p->sender);
	free(p->text);
	free(p);
}

static void
rd_on_published(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r;
	struct rd_pending *p = priv;

	if (reply != NULL && reply->type == REDIS_REPLY_INTEGER &&
	    !p->subscribed && !rd_stopping) {
		/* Sent before the room's channel was surely ours: it may never
		 * come back that way, so post it now with its seq. */
		parley_room *room = rd_host->room_find(rd_ctx, p->room,
		    strlen(p->room));
		char key[24];
		json_t *e = json_object_get(rd_early, p->room);
		if (e == NULL) {
			e = json_object();
			json_object_set_new(rd_early, p->room, e);
		}
		snprintf(key, sizeof key, "%lld", (long long)reply->integer);
		json_object_set_new(e, key, json_true());
		if (room != NULL && reply->integer > 0) {
			rd_seq_seen(p->room, (uint64_t)reply->integer);
			rd_host->room_post_seq(rd_ctx, room, p->sender, p->text,
			    p->len, p->action, (uint64_t)reply->integer, p->ts);
		}
	} else if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
		/* It never reached Redis: the local members get it still. */
		parley_room *room = rd_host->room_find(rd_ctx, p->room,
		    strlen(p->room));
		if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
			rd_host->log_printf(rd_ctx, PARLEY_LOG_WARN,
			    "publish: %s", reply->str);
		if (room != NULL && !rd_stopping) {
			rd_posting = true;
			rd_host->room_post(rd_ctx, room, p->sender, p->text,
			    p->len, p->action);
			rd_posting = false;
		}
		rd_host->counter_add(rd_ctx, "messages_local_fallback", 1);
	}
	rd_pending_free(p);
}

/* Every message about to be posted here (a client's, a /me, a script's
 * or a plugin's) is taken over and ordered through Redis. */
int
rd_on_post(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	size_t rlen;
	const char *room = rd_host->room_name(ctx, ev->room, &rlen);
	char *rname = strndup(room, rlen);
	json_t *m;
	int state = (int)json_integer_value(json_object_get(rd_subs, rname));
	json_int_t last = json_integer_value(json_object_get(rd_seqs, rname));
	char *payload, *k1, *k2, *k3, hist[24], lseq[24];
	struct rd_pending *p;

	if (!rd_up || rd_posting) {
		/* Alone: local delivery with the next local seq; remember it
		 * so the cluster's seq never falls back below it. */
		json_object_set_new(rd_seqs, rname, json_integer(last + 1));
		free(rname);
		return PARLEY_PASS;
	}
	free(rname);
	m = json_pack("{s:s, s:s%, s:s%, s:I}", "o", rd_sid, "n",
	    ev->sender, ev->sender_len, "t", ev->text, ev->text_len, "ts",
	    (json_int_t)ev->wall_ms);
	if (m != NULL && (ev->flags & PARLEY_MSG_ACTION))
		json_object_set_new(m, "a", json_true());
	if (m == NULL)
		return PARLEY_PASS; /* not UTF-8: let the core refuse it */
	payload = json_dumps(m, JSON_COMPACT);
	json_decref(m);
	k1 = rd_key("seq:", room, rlen);
	k2 = rd_key("m:", room, rlen);
	k3 = rd_key("history:", room, rlen);
	snprintf(hist, sizeof hist, "%lld", (long long)rd_opt.history);
	/* Never below what this server already gave (after an outage). */
	snprintf(lseq, sizeof lseq, "%lld", (long long)last);
	p = calloc(1, sizeof *p);
	if (p == NULL)
		abort();
	p->room = strndup(room, rlen);
	p->sender = strndup(ev->sender, ev->sender_len);
	p->action = (ev->flags & PARLEY_MSG_ACTION) != 0;
	p->subscribed = state == 2;
	p->ts = ev->wall_ms;
	if (state == 0) {
		/* A room with no local member yet (a bot's post): its channel
		 * now, dropped again by the next check of subscriptions. */
		json_object_set_new(rd_subs, p->room, json_integer(1));
		rd_subscribe("SUBSCRIBE", room, rlen);
	}
	p->text = malloc(ev->text_len + 1);
	if (p->room == NULL || p->sender == NULL || p->text == NULL)
		abort();
	memcpy(p->text, ev->text, ev->text_len);
	p->len = ev->text_len;
	{
		const char *argv[] = { "EVAL", rd_msg_script, "3", k1, k2, k3,
			payload, hist, lseq };
		size_t lens[] = { 4, strlen(rd_msg_script), 1, strlen(k1),
			strlen(k2), strlen(k3), strlen(payload), strlen(hist),
			strlen(lseq) };
		if (rd_command(&rd_cmd, rd_on_published, p, 9, argv, lens) !=
		    REDIS_OK) {
			rd_pending_free(p);
			free(payload);
			free(k1);
			free(k2);
			free(k3);
			return PARLEY_PASS;
		}
	}
	rd_host->counter_add(ctx, "messages_published", 1);
	free(payload);
	free(k1);
	free(k2);
	free(k3);
	return PARLEY_DROP;
}

void
rd_history_register(void)
{
	struct parley_history_store st = {
		.size = sizeof st,
		.append = rd_history_append,
		.read = rd_history_read,
		.last_seq = rd_history_last_seq,
	};

	if (rd_opt.history == 0 || !rd_opt.history_store)
		return;
	if (rd_host->history_store_register(rd_ctx, &st) != 0)
		rd_host->log_printf(rd_ctx, PARLEY_LOG_WARN, "room history "
		    "stays with the store loaded before this plugin; each "
		    "server then keeps only what its members saw (list redis "
		    "alone, or set history_store = false)");
}

void
rd_messages_reset(void)
{
	json_object_clear(rd_subs);
	json_object_clear(rd_early);
}

void
rd_messages_init(void)
{
	rd_subs = json_object();
	rd_seqs = json_object();
	rd_early = json_object();
}

void
rd_messages_fini(void)
{
	json_decref(rd_subs);
	json_decref(rd_seqs);
	json_decref(rd_early);
	rd_subs = rd_seqs = rd_early = NULL;
}
