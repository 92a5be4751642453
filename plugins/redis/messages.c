/*
 * messages.c: chat messages ordered through Redis, and room history kept
 * there. Every message about to be posted on this server (a client's, a
 * /me, a script's or a plugin's) is taken over in the post hook and
 * handed to a Lua script in Redis that gives it the room's next
 * cluster-wide seq, keeps it in the room's bounded history and publishes
 * it on the room's channel, in one step. Each server subscribes to the
 * channels of the rooms it has members in, the origin included, and
 * posts what comes back: publish order is seq order, and a message
 * crosses Redis once per server, not once per member.
 *
 * While Redis is away or late (no answer within timeout_ms) a message is
 * posted here at once, to this server's members only, with a seq no other
 * server can give: in the block above the highest seq this server knows,
 * the range of its slot (redis.h). A message sent to Redis carries the
 * time after which it must not run, so one posted here meanwhile is never
 * published a second time. When Redis is back the room's counter jumps
 * past that block (the fence, or the seq this server reports), so no seq
 * ever carries two messages. A cluster message arriving after this
 * server's local ones (sent just before the outage) is dropped, counted.
 *
 * A deleted message's entry in the room's history is replaced, in one
 * script, by a tombstone without its text (since ABI 1.4), so that every
 * server's history answer, read from the same set, has it deleted.
 *
 * A SUBSCRIBE takes effect in Redis some time after a member's join is
 * answered; what is published meanwhile never comes on the channel. So
 * the room's seq is read when the channel is asked for (the baseline),
 * and once the subscription holds, the history's messages above it or
 * posted after the join are posted first, the channel's held back until
 * then (the catch-up, below).
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
	bool fallen;     /* posted here already: Redis was late */
	bool delivered;  /* posted here from the room's channel */
	bool caught;     /* sent during the room's catch-up, which posts it */
	uint64_t id;     /* "i" of the message, unique on this server */
	uint64_t ts;
	struct rd_pending *prev, *next; /* waiting for Redis */
};

static json_t *rd_subs;   /* object: room -> 1 pending, 2 subscribed */
static json_t *rd_seqs;   /* object: room -> last seq known here */
/* room -> {seq: true}: posted here from the script's answer because the
 * room's channel was not ours yet; skipped if the channel brings it. */
static json_t *rd_early;
static json_t *rd_mine;   /* room -> last local seq given this outage */
/* room -> {"g": generation, "b": baseline seq once read, "t": Redis's
 * clock right after it (microseconds), "s": true once subscribed, "q":
 * [channel messages held back]}: rooms catching up (see Catch-up). */
static json_t *rd_catch;
static json_int_t rd_catch_gen;
static struct rd_pending *rd_waiting, *rd_waiting_last;
static uint64_t rd_msg_id;

/* KEYS: the room's seq, its channel, its history, the fence, the room's
 * fence. ARGV: the message, history length, the highest seq this server
 * knows in the room, the expiry (Redis's clock, ms; 0: none), the block.
 * Returns the seq, or -1 when too late (the sender served it locally).
 * The message gains "rt", when Redis ran it (microseconds; a catch-up's
 * measure). Seqs are formatted by hand: Lua 5.1 prints numbers with 14
 * digits. */
static const char rd_msg_script[] =
    "local exp = tonumber(ARGV[4])\n"
    "if exp > 0 then\n"
    "  local t = redis.call('TIME')\n"
    "  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > exp"
    " then\n"
    "    return -1\n"
    "  end\n"
    "end\n"
    "local b = tonumber(ARGV[5])\n"
    "local cur = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "local l = tonumber(ARGV[3])\n"
    "if l > cur then cur = (math.floor(l / b) + 1) * b end\n"
    "local fence = tonumber(redis.call('GET', KEYS[4]) or '0')\n"
    "if tonumber(redis.call('GET', KEYS[5]) or '0') < fence then\n"
    "  cur = (math.floor(cur / b) + 2) * b\n"
    "  redis.call('SET', KEYS[5], fence)\n"
    "end\n"
    "cur = cur + 1\n"
    "local s = string.format('%.0f', cur)\n"
    "local rt = redis.call('TIME')\n"
    "redis.call('SET', KEYS[1], s)\n"
    "local m = s .. ' {\"rt\":' .. rt[1] .. string.format('%06d',"
    " tonumber(rt[2])) .. ',' .. string.sub(ARGV[1], 2)\n"
    "redis.call('PUBLISH', KEYS[2], m)\n"
    "local h = tonumber(ARGV[2])\n"
    "if h > 0 then\n"
    "  redis.call('ZADD', KEYS[3], s, m)\n"
    "  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(h + 1))\n"
    "end\n"
    "return cur\n";

static void rd_seq_seen(const char *room, uint64_t seq);
static void rd_deliver(const char *room, size_t room_len, const char *data,
    size_t len);
static void rd_catch_start(const char *room);
static void rd_catch_base(const char *room, redisReply *reply);
static bool rd_catch_holds(const char *room, size_t len, const char *data,
    size_t dlen);
static void rd_catch_subscribed(const char *room);
static bool rd_catching(const char *room);
static void rd_catch_clock(const char *room);

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

/* The room's seq in Redis: a server that just got members there knows
 * where the room is before it may have to serve it alone. */
static void
rd_on_seq(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r;
	char *name = priv;

	if (reply != NULL && reply->type == REDIS_REPLY_STRING &&
	    rd_host->room_find(rd_ctx, name, strlen(name)) != NULL &&
	    !rd_catching(name)) /* the catch-up's, once it is done */
		rd_seq_seen(name, strtoull(reply->str, NULL, 10));
	rd_catch_base(name, reply);
	free(name);
}

void
rd_messages_want(const char *room, size_t len)
{
	char *name;

	if (!rd_ok() || rd_sub.ac == NULL)
		return;
	name = strndup(room, len);
	if (name == NULL)
		abort();
	if (json_object_get(rd_subs, name) == NULL) {
		char *key = rd_key("seq:", room, len);
		const char *argv[] = { "GET", key };
		size_t lens[] = { 3, strlen(key) };

		json_object_set_new(rd_subs, name, json_integer(1));
		rd_catch_start(name);
		rd_subscribe("SUBSCRIBE", room, len);
		/* On the wire before anything announces the join: whatever
		 * follows from it is published after we listen. */
		redisAsyncHandleWrite(rd_sub.ac);
		if (rd_command(&rd_cmd, rd_on_seq, name, 2, argv, lens) ==
		    REDIS_OK) {
			/* The catch-up's baseline and clock, sent before
			 * the join is answered, as the SUBSCRIBE is. */
			rd_catch_clock(name);
			redisAsyncHandleWrite(rd_cmd.ac);
			name = NULL;
		} else
			json_object_del(rd_catch, name);
		free(key);
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
		json_object_del(rd_catch, name);
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


/* ---- Catch-up: what was published before a new subscription held
 *
 * Redis runs the commands of different connections in no promised order:
 * another server's message sent after the join was answered may run just
 * before this server's SUBSCRIBE and even its GET of the room's seq (in
 * the same turn of Redis's loop), although both were sent first. So a
 * message of the history is also this member's when Redis ran it (its
 * "rt", Redis's clock in microseconds, set by the script) less than
 * RD_CATCH_TURN_US before the TIME sent right after the GET; a message
 * posted before the join ran earlier by at least the round trip that
 * announced the join. From the first such message on, every later one
 * is the member's, so that it sees a run with no hole. */

#define RD_CATCH_TAIL 256    /* history read back at most */
#define RD_CATCH_TURN_US 250 /* one turn of Redis's loop, at most */

struct rd_catch_req {
	json_int_t gen;
	char room[];
};

/* Only a room's history in Redis tells what the channel did not bring. */
static void
rd_catch_start(const char *room)
{
	if (rd_opt.history <= 0)
		return;
	json_object_set_new(rd_catch, room, json_pack("{s:I, s:[]}", "g",
	    ++rd_catch_gen, "q"));
}

/* Caught up, an entry keeps "d": the highest seq the history brought,
 * whose copies may still come on the channel. */
static bool
rd_catching(const char *room)
{
	json_t *c = json_object_get(rd_catch, room);

	return c != NULL && json_object_get(c, "d") == NULL;
}

static uint64_t
rd_catch_seq(const char *data)
{
	return strtoull(data, NULL, 10);
}

/* When Redis ran a message of the history (microseconds); 0: not said
 * (a server of an older version sent it). */
static uint64_t
rd_catch_rt(const char *data, size_t len)
{
	const char *sp = memchr(data, ' ', len);
	json_t *m;
	uint64_t rt;

	if (sp == NULL)
		return 0;
	m = json_loadb(sp + 1, len - (size_t)(sp + 1 - data), 0, NULL);
	rt = (uint64_t)json_integer_value(json_object_get(m, "rt"));
	json_decref(m);
	return rt;
}

/* Everything once, in seq order: the history's messages that are this
 * member's (see above), with the channel's held back merged in. */
static void
rd_catch_end(const char *room, redisReply *reply)
{
	json_t *c = json_incref(json_object_get(rd_catch, room));
	json_t *q = json_object_get(c, "q"), *v;
	uint64_t base = (uint64_t)json_integer_value(json_object_get(c, "b"));
	uint64_t t = (uint64_t)json_integer_value(json_object_get(c, "t"));
	uint64_t cut = t > RD_CATCH_TURN_US ? t - RD_CATCH_TURN_US : 0;
	uint64_t seen = (uint64_t)json_integer_value(json_object_get(rd_seqs,
	    room));
	uint64_t top = 0, first = UINT64_MAX, seq;
	size_t i, n = 0, from = 0, caught = 0;

	json_object_del(rd_catch, room);
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY)
		reply = NULL;
	/* Newest first from Redis: the member's run starts at the oldest
	 * that is its own. */
	for (i = reply != NULL ? reply->elements : 0; i-- > 0;) {
		redisReply *e = reply->element[i];

		if (e->type != REDIS_REPLY_STRING)
			continue;
		seq = rd_catch_seq(e->str);
		if (seq > base || (cut > 0 && rd_catch_rt(e->str, e->len) >=
		    cut)) {
			first = seq;
			from = i + 1;
			break;
		}
	}
	/* Held back, older than the run: the channel's, as it came. */
	json_array_foreach(q, i, v) {
		if ((seq = rd_catch_seq(json_string_value(v))) < first) {
			rd_deliver(room, strlen(room), json_string_value(v),
			    json_string_length(v));
			top = seq;
		}
	}
	for (i = from; i-- > 0;) {
		redisReply *e = reply->element[i];

		if (e->type != REDIS_REPLY_STRING ||
		    (seq = rd_catch_seq(e->str)) <= top || seq <= seen)
			continue;
		rd_deliver(room, strlen(room), e->str, e->len);
		top = seq;
		n++;
		caught++;
	}
	if (caught > 0)
		rd_host->counter_add(rd_ctx, "messages_caught_up",
		    (int64_t)caught);
	json_array_foreach(q, i, v) {
		if ((seq = rd_catch_seq(json_string_value(v))) > top) {
			rd_deliver(room, strlen(room), json_string_value(v),
			    json_string_length(v));
			top = seq;
			n = 0;
		}
	}
	if (rd_host->room_find(rd_ctx, room, strlen(room)) != NULL)
		rd_seq_seen(room, base);
	if (n > 0) {
		/* The last ones came from the history only so far. */
		json_object_set_new(rd_catch, room, json_pack("{s:I}", "d",
		    (json_int_t)top));
	}
	json_decref(c);
}

static void
rd_on_catch(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r;
	struct rd_catch_req *req = priv;
	json_t *c = json_object_get(rd_catch, req->room);

	if (c == NULL || !rd_catching(req->room) || json_integer_value(
	    json_object_get(c, "g")) != req->gen) {
		free(req); /* gone meanwhile, or asked again */
		return;
	}
	if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
		rd_host->log_printf(rd_ctx, PARLEY_LOG_WARN, "catch-up: %s",
		    reply->str);
	rd_catch_end(req->room, reply);
	free(req);
}

/* Subscribed, the baseline and clock known: the history's tail, before
 * anything the channel brings. */
static void
rd_catch_read(const char *room)
{
	json_t *c = json_object_get(rd_catch, room);
	char count[16], *key = rd_key("history:", room, strlen(room));
	const char *argv[] = { "ZREVRANGEBYSCORE", key, "+inf", "-inf",
		"LIMIT", "0", count };
	size_t lens[] = { 16, strlen(key), 4, 4, 5, 1, 0 };
	struct rd_catch_req *req = malloc(sizeof *req + strlen(room) + 1);

	if (req == NULL)
		abort();
	req->gen = json_integer_value(json_object_get(c, "g"));
	strcpy(req->room, room);
	snprintf(count, sizeof count, "%d", RD_CATCH_TAIL);
	lens[6] = strlen(count);
	if (rd_command(&rd_cmd, rd_on_catch, req, 7, argv, lens) != REDIS_OK) {
		free(req);
		rd_catch_end(room, NULL);
	}
	free(key);
}

/* The room's seq when its channel was asked for (nil: no message yet). */
static void
rd_catch_base(const char *room, redisReply *reply)
{
	json_t *c = json_object_get(rd_catch, room);

	if (!rd_catching(room) || json_object_get(c, "b") != NULL)
		return;
	if (reply == NULL || (reply->type != REDIS_REPLY_STRING &&
	    reply->type != REDIS_REPLY_NIL)) {
		rd_catch_end(room, NULL); /* no baseline: nothing to catch */
		return;
	}
	json_object_set_new(c, "b", json_integer(reply->type ==
	    REDIS_REPLY_STRING ? (json_int_t)strtoull(reply->str, NULL, 10) :
	    0));
}

/* Redis's clock right after the GET: the read waits for it and for the
 * subscription. */
static void
rd_on_catch_clock(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r;
	struct rd_catch_req *req = priv;
	json_t *c = json_object_get(rd_catch, req->room);

	if (c == NULL || !rd_catching(req->room) || json_integer_value(
	    json_object_get(c, "g")) != req->gen || json_object_get(c, "b") ==
	    NULL)
		;
	else if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
	    reply->elements != 2 ||
	    reply->element[0]->type != REDIS_REPLY_STRING ||
	    reply->element[1]->type != REDIS_REPLY_STRING)
		rd_catch_end(req->room, NULL);
	else {
		json_object_set_new(c, "t", json_integer((json_int_t)(
		    strtoull(reply->element[0]->str, NULL, 10) * 1000000 +
		    strtoull(reply->element[1]->str, NULL, 10))));
		if (json_is_true(json_object_get(c, "s")))
			rd_catch_read(req->room);
	}
	free(req);
}

static void
rd_catch_clock(const char *room)
{
	json_t *c = json_object_get(rd_catch, room);
	const char *argv[] = { "TIME" };
	size_t lens[] = { 4 };
	struct rd_catch_req *req;

	if (c == NULL)
		return;
	if ((req = malloc(sizeof *req + strlen(room) + 1)) == NULL)
		abort();
	req->gen = json_integer_value(json_object_get(c, "g"));
	strcpy(req->room, room);
	if (rd_command(&rd_cmd, rd_on_catch_clock, req, 1, argv, lens) !=
	    REDIS_OK) {
		free(req);
		json_object_del(rd_catch, room);
	}
}

static void
rd_catch_subscribed(const char *room)
{
	json_t *c = json_object_get(rd_catch, room);

	if (!rd_catching(room) || json_object_get(c, "s") != NULL)
		return;
	json_object_set_new(c, "s", json_true());
	if (json_object_get(c, "t") != NULL)
		rd_catch_read(room);
}

/* A channel message of a room still catching up waits for the history's
 * answer; one the catch-up posted already is dropped. Channel order is
 * seq order: past the catch-up's last, the room is done with it. */
static bool
rd_catch_holds(const char *room, size_t len, const char *data, size_t dlen)
{
	char *name;
	json_t *c, *d;
	bool held = true;

	if (json_object_size(rd_catch) == 0)
		return false; /* the usual case: no copy of the name then */
	if ((name = strndup(room, len)) == NULL)
		abort();
	if ((c = json_object_get(rd_catch, name)) == NULL)
		held = false;
	else if ((d = json_object_get(c, "d")) == NULL)
		json_array_append_new(json_object_get(c, "q"),
		    json_stringn_nocheck(data, dlen));
	else if (rd_catch_seq(data) > (uint64_t)json_integer_value(d)) {
		json_object_del(rd_catch, name);
		held = false;
	}
	free(name);
	return held;
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
	if ((json_int_t)seq <= json_integer_value(json_object_get(rd_seqs,
	    name))) {
		/* Sent before an outage, come after this server's local
		 * messages: its seq is behind them. */
		rd_host->counter_add(rd_ctx, "messages_late", 1);
		free(name);
		return;
	}
	m = json_loadb(end, len - (size_t)(end - data), 0, NULL);
	if (json_is_string(json_object_get(m, "o")) && strcmp(
	    json_string_value(json_object_get(m, "o")), rd_sid) == 0) {
		/* Ours, here before Redis's answer: Redis being late now
		 * must not post it a second time. */
		uint64_t id = (uint64_t)json_integer_value(json_object_get(m,
		    "i"));
		for (struct rd_pending *p = rd_waiting; p != NULL; p = p->next)
			if (p->id == id)
				p->delivered = true;
	}
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
	if (strcmp(kind, "message") == 0) {
		if (!rd_catch_holds(room, len, data, dlen))
			rd_deliver(room, len, data, dlen);
	} else if (strcmp(kind, "subscribe") == 0) {
		char *name = strndup(room, len);
		if (json_object_get(rd_subs, name) != NULL) {
			json_object_set_new(rd_subs, name, json_integer(2));
			rd_catch_subscribed(name);
		}
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
		if (json_is_true(json_object_get(o, "d")) &&
		    json_is_string(n)) {
			/* A tombstone (rd_tomb_script). */
			memset(&m, 0, sizeof m);
			m.size = sizeof m;
			m.flags = PARLEY_MSG_DELETED;
			m.seq = seq;
			m.ts = (uint64_t)json_integer_value(json_object_get(o,
			    "ts"));
			m.sender = json_string_value(n);
			m.sender_len = json_string_length(n);
			m.text = "";
			rd_host->history_emit(rd_ctx, sink, &m);
		} else if (json_is_string(t) && json_is_string(n)) {
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
	if (!rd_ok()) {
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

/* Paging forward: Redis answers oldest first, rd_on_history reads the
 * newest first. */
static void
rd_on_history_forward(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r;

	if (reply != NULL && reply->type == REDIS_REPLY_ARRAY) {
		for (size_t i = 0, j = reply->elements; i + 1 < j; i++, j--) {
			redisReply *e = reply->element[i];
			reply->element[i] = reply->element[j - 1];
			reply->element[j - 1] = e;
		}
	}
	rd_on_history(ac, r, priv);
}

/* The oldest limit messages with after < seq < before (since 1.4). */
static int
rd_history_read_after(parley_ctx *ctx, const char *room, size_t room_len,
    uint64_t after, uint64_t before, uint32_t limit,
    parley_history_sink *sink, void *arg)
{
	char min[32], max[32], count[16], *key;
	parley_history_sink *later;
	int rc;

	if (limit == 0 || after >= before)
		return 0;
	/* As in rd_history_read: the cluster's history is the name's. */
	if (memchr(room, '\x1f', room_len) != NULL)
		room_len = (size_t)((const char *)memchr(room, '\x1f',
		    room_len) - room);
	if (!rd_ok()) {
		rd_host->log_printf(ctx, PARLEY_LOG_DEBUG, "history asked while "
		    "Redis is away");
		return -1;
	}
	snprintf(min, sizeof min, "(%llu", (unsigned long long)after);
	if (before == PARLEY_HISTORY_NO_BEFORE)
		snprintf(max, sizeof max, "+inf");
	else
		snprintf(max, sizeof max, "(%llu", (unsigned long long)before);
	snprintf(count, sizeof count, "%u", limit);
	if ((later = rd_host->history_defer(ctx, sink)) == NULL)
		return -1;
	key = rd_key("history:", room, room_len);
	{
		const char *argv[] = { "ZRANGEBYSCORE", key, min, max, "LIMIT",
			"0", count };
		size_t lens[] = { 13, strlen(key), strlen(min), strlen(max), 5,
			1, strlen(count) };
		rc = rd_command(&rd_cmd, rd_on_history_forward, later, 7, argv,
		    lens);
	}
	free(key);
	if (rc != REDIS_OK)
		rd_host->history_done(ctx, later, -1);
	return PARLEY_HISTORY_LATER;
}

/* KEYS: the room's history. ARGV: the seq. The entry of that seq is
 * replaced by its tombstone (sender and time, "d": no text) in one step,
 * so no server ever reads the set without either; one already a
 * tombstone is left alone (every server of the cluster asks). Returns 1
 * when an entry was replaced. */
static const char rd_tomb_script[] =
    "local es = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])\n"
    "if #es == 0 then return 0 end\n"
    "local e = es[1]\n"
    "local sp = string.find(e, ' ', 1, true)\n"
    "if not sp then return 0 end\n"
    "local ok, o = pcall(cjson.decode, string.sub(e, sp + 1))\n"
    "if not ok or type(o) ~= 'table' or o.d then return 0 end\n"
    "local n = type(o.n) == 'string' and o.n or ''\n"
    "local ts = tonumber(o.ts) or 0\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])\n"
    "redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1] .. ' {\"d\":true,\"n\":' ..\n"
    "  cjson.encode(n) .. ',\"ts\":' .. string.format('%.0f', ts) .. '}')\n"
    "return 1\n";

static void
rd_on_tombstone(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r;

	if (reply != NULL && reply->type == REDIS_REPLY_INTEGER &&
	    reply->integer > 0)
		rd_host->counter_add(rd_ctx, "messages_tombstoned", 1);
	else if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
		rd_host->log_printf(rd_ctx, PARLEY_LOG_WARN, "tombstone: %s",
		    reply->str);
}

/* A deleted message: its entry in the cluster's history loses its text
 * (other servers' history answers come from the same set). */
static int
rd_history_tombstone(parley_ctx *ctx, const char *room, size_t room_len,
    uint64_t seq, void *arg)
{
	char sq[24], *key;
	int rc;

	if (memchr(room, '\x1f', room_len) != NULL)
		room_len = (size_t)((const char *)memchr(room, '\x1f',
		    room_len) - room);
	if (!rd_ok()) {
		/* Also at start, when the server makes every tombstone
		 * again before Redis is connected. */
		rd_host->log_printf(ctx, PARLEY_LOG_DEBUG, "tombstone of seq "
		    "%llu: Redis is away; the cluster's history keeps the "
		    "text", (unsigned long long)seq);
		return -1;
	}
	snprintf(sq, sizeof sq, "%llu", (unsigned long long)seq);
	key = rd_key("history:", room, room_len);
	{
		const char *argv[] = { "EVAL", rd_tomb_script, "1", key, sq };
		size_t lens[] = { 4, strlen(rd_tomb_script), 1, strlen(key),
			strlen(sq) };
		rc = rd_command(&rd_cmd, rd_on_tombstone, NULL, 5, argv, lens);
	}
	free(key);
	return rc == REDIS_OK ? 0 : -1;
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

/* The next seq of a message served here alone (see the top). */
static uint64_t
rd_local_seq(const char *room)
{
	uint64_t c = (uint64_t)json_integer_value(json_object_get(rd_seqs,
	    room));
	uint64_t mine = (uint64_t)json_integer_value(json_object_get(rd_mine,
	    room));
	uint64_t slot = rd_slot > 0 ? (uint64_t)rd_slot :
	    1 + strtoull(rd_sid + 12, NULL, 16) % (RD_SEQ_SLOTS - 1);

	if (mine != 0 && c == mine && (mine + 1) % RD_SEQ_STRIDE != 0)
		return mine + 1;
	return (c / RD_SEQ_BLOCK + 1) * RD_SEQ_BLOCK + slot * RD_SEQ_STRIDE +
	    1;
}

/* Posts a message to this server's members only (Redis away or late).
 * Returns 0, -1 when the room is gone or the message refused. */
static int
rd_local_post(const char *name, const char *sender, const char *text,
    size_t len, bool action, uint64_t ts)
{
	parley_room *room = rd_host->room_find(rd_ctx, name, strlen(name));
	uint64_t seq;

	if (room == NULL || rd_stopping)
		return -1;
	seq = rd_local_seq(name);
	if (rd_host->room_post_seq(rd_ctx, room, sender, text, len, action,
	    seq, ts) != PARLEY_OK)
		return -1;
	json_object_set_new(rd_seqs, name, json_integer((json_int_t)seq));
	json_object_set_new(rd_mine, name, json_integer((json_int_t)seq));
	rd_host->counter_add(rd_ctx, "messages_local", 1);
	return 0;
}

static void
rd_waiting_unlink(struct rd_pending *p)
{
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		rd_waiting = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	else
		rd_waiting_last = p->prev;
	p->prev = p->next = NULL;
}

void
rd_messages_fallback(void)
{
	for (struct rd_pending *p = rd_waiting; p != NULL; p = p->next) {
		if (p->fallen || p->delivered)
			continue;
		p->fallen = true;
		rd_local_post(p->room, p->sender, p->text, p->len, p->action,
		    p->ts);
	}
}

static void
rd_on_published(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r;
	struct rd_pending *p = priv;

	rd_waiting_unlink(p);
	if (p->delivered)
		; /* it came on the channel first */
	else if (p->caught && reply != NULL &&
	    reply->type == REDIS_REPLY_INTEGER && reply->integer > 0 &&
	    rd_catching(p->room))
		; /* in the history the room's catch-up reads */
	else if (p->fallen) {
		/* Served here already; if Redis still ran it (its answer was
		 * on its way), the others got it and its copy here is
		 * dropped as late. */
		if (reply != NULL && reply->type == REDIS_REPLY_INTEGER &&
		    reply->integer > 0)
			rd_host->counter_add(rd_ctx, "messages_late_answer",
			    1);
	} else if (reply != NULL && reply->type == REDIS_REPLY_INTEGER &&
	    reply->integer > 0 && !p->subscribed && !rd_stopping) {
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
		if (room != NULL && reply->integer <= json_integer_value(
		    json_object_get(rd_seqs, p->room)))
			rd_host->counter_add(rd_ctx, "messages_late", 1);
		else if (room != NULL) {
			rd_seq_seen(p->room, (uint64_t)reply->integer);
			rd_host->room_post_seq(rd_ctx, room, p->sender, p->text,
			    p->len, p->action, (uint64_t)reply->integer, p->ts);
		}
	} else if (reply == NULL || reply->type != REDIS_REPLY_INTEGER ||
	    reply->integer <= 0) {
		/* It never ran in Redis (gone, or too late): the local
		 * members get it still. */
		if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
			rd_host->log_printf(rd_ctx, PARLEY_LOG_WARN,
			    "publish: %s", reply->str);
		rd_local_post(p->room, p->sender, p->text, p->len, p->action,
		    p->ts);
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
	char *payload, *k1, *k2, *k3, *k4, *k5, hist[24], lseq[24], exp[24],
	    block[24];
	struct rd_pending *p;

	if (rname == NULL)
		abort();
	if (!rd_ok()) {
		/* Alone: this server's members get it now, with a seq of
		 * this server's own (see the top). */
		char *sender = strndup(ev->sender, ev->sender_len);
		int rc;

		if (sender == NULL)
			abort();
		rc = rd_local_post(rname, sender, ev->text, ev->text_len,
		    (ev->flags & PARLEY_MSG_ACTION) != 0, ev->wall_ms);
		free(sender);
		free(rname);
		/* Refused (not UTF-8, too long): the core says why. */
		return rc == 0 ? PARLEY_DROP : PARLEY_PASS;
	}
	free(rname);
	m = json_pack("{s:s, s:s%, s:s%, s:I, s:I}", "o", rd_sid, "n",
	    ev->sender, ev->sender_len, "t", ev->text, ev->text_len, "ts",
	    (json_int_t)ev->wall_ms, "i", (json_int_t)++rd_msg_id);
	if (m != NULL && (ev->flags & PARLEY_MSG_ACTION))
		json_object_set_new(m, "a", json_true());
	if (m == NULL)
		return PARLEY_PASS; /* not UTF-8: let the core refuse it */
	payload = json_dumps(m, JSON_COMPACT);
	json_decref(m);
	k1 = rd_key("seq:", room, rlen);
	k2 = rd_key("m:", room, rlen);
	k3 = rd_key("history:", room, rlen);
	k4 = rd_key("fence", "", 0);
	k5 = rd_key("seqf:", room, rlen);
	snprintf(hist, sizeof hist, "%lld", (long long)rd_opt.history);
	snprintf(exp, sizeof exp, "%llu", (unsigned long long)rd_expiry());
	snprintf(block, sizeof block, "%llu", (unsigned long long)
	    RD_SEQ_BLOCK);
	/* Never below what this server already gave (after an outage). */
	snprintf(lseq, sizeof lseq, "%lld", (long long)last);
	p = calloc(1, sizeof *p);
	if (p == NULL)
		abort();
	p->room = strndup(room, rlen);
	p->sender = strndup(ev->sender, ev->sender_len);
	p->action = (ev->flags & PARLEY_MSG_ACTION) != 0;
	p->subscribed = state == 2;
	p->caught = state == 1 && rd_catching(p->room);
	p->ts = ev->wall_ms;
	p->id = rd_msg_id;
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
		const char *argv[] = { "EVAL", rd_msg_script, "5", k1, k2, k3,
			k4, k5, payload, hist, lseq, exp, block };
		size_t lens[] = { 4, strlen(rd_msg_script), 1, strlen(k1),
			strlen(k2), strlen(k3), strlen(k4), strlen(k5),
			strlen(payload), strlen(hist), strlen(lseq),
			strlen(exp), strlen(block) };
		if (rd_command(&rd_cmd, rd_on_published, p, 13, argv, lens) !=
		    REDIS_OK) {
			rd_local_post(p->room, p->sender, p->text, p->len,
			    p->action, p->ts);
			rd_pending_free(p);
		} else {
			p->prev = rd_waiting_last;
			if (rd_waiting_last != NULL)
				rd_waiting_last->next = p;
			else
				rd_waiting = p;
			rd_waiting_last = p;
			rd_host->counter_add(ctx, "messages_published", 1);
		}
	}
	free(payload);
	free(k1);
	free(k2);
	free(k3);
	free(k4);
	free(k5);
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
		.read_after = rd_history_read_after,
		.tombstone = rd_history_tombstone,
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
rd_messages_up(void)
{
	/* A later outage starts a block of its own. */
	json_object_clear(rd_mine);
}

void
rd_messages_reset(void)
{
	json_object_clear(rd_subs);
	json_object_clear(rd_early);
	json_object_clear(rd_catch);
}

void
rd_messages_init(void)
{
	rd_subs = json_object();
	rd_seqs = json_object();
	rd_early = json_object();
	rd_mine = json_object();
	rd_catch = json_object();
}

void
rd_messages_fini(void)
{
	json_decref(rd_subs);
	json_decref(rd_seqs);
	json_decref(rd_early);
	json_decref(rd_mine);
	json_decref(rd_catch);
	rd_subs = rd_seqs = rd_early = rd_mine = rd_catch = NULL;
}
