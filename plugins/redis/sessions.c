/*
 * sessions.c: a session resumed on another server of the cluster
 * (clients behind a load balancer without sticky sessions). Each server
 * keeps in Redis, per session of its clients, a key named after the
 * SHA-256 of the secret (never the secret: the core hands out only the
 * hash) saying which server and client it is, with the account and roles:
 * while its connection is open for a day at most, once held only for
 * the rest of the grace, and gone with the session (written again when
 * Redis comes back, which may have lost them). A resume that names
 * no session of this server looks the hash up; if it is another live
 * server's, one script takes it over (the key goes, that server's record
 * of the client goes, the name is claimed for us) and tells that server
 * on the cluster channel. Here, the other server's client was a remote
 * member (a ghost): it takes over the new connection and becomes ours,
 * its name and rooms unchanged; there, our client becomes a ghost in the
 * same way, and a third server's ghost of it changes keys. Nobody is
 * told anything; the client catches up with history
 * and after. Without Redis (rd_ok false) a resume of another server's
 * session fails at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis.h"

/* An open session's key lives this long at most (a day): a connection
 * open longer is resumed on its own server only. */
#define RD_SESS_OPEN_MS 86400000LL

/* The lookup. KEYS: the session key. ARGV: prefix. Returns { the
 * session's record, its client's record in its server's hash }, or nil
 * when there is none or its server no longer has it. */
static const char rd_sess_find_script[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v then return false end\n"
    "local o = cjson.decode(v)\n"
    "local rec = redis.call('HGET', ARGV[1] .. 'srv:' .. o.s, o.i)\n"
    "if not rec then return false end\n"
    "return { v, rec }\n";

/* The takeover. KEYS: the session key, the names hash, the cluster
 * channel. ARGV: prefix, the record looked up, our id, our client's id,
 * its name (folded), the hash. 1 when it was still that record. */
static const char rd_sess_take_script[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end\n"
    "local o = cjson.decode(ARGV[2])\n"
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('HDEL', ARGV[1] .. 'srv:' .. o.s, o.i)\n"
    "redis.call('HSET', KEYS[2], ARGV[5], ARGV[3] .. ':' .. ARGV[4])\n"
    "redis.call('PUBLISH', KEYS[3], cjson.encode({ k = 'x', s = ARGV[3],\n"
    "    to = o.s, i = o.i, n = ARGV[4], h = ARGV[6] }))\n"
    "return 1\n";

/* A resume on its way: the new connection, the hash, and once found the
 * record and the ghost's key. */
struct rd_resume {
	uint64_t client;
	char hash[33];
	char *rec;
	char ghost[64];
	uint64_t timer; /* the deadline, 0 once passed */
	bool answered; /* the client was told resume_failed already */
};

static void
rd_resume_free(struct rd_resume *q)
{
	if (q->timer != 0)
		rd_host->timer_cancel(rd_ctx, q->timer);
	free(q->rec);
	explicit_bzero(q, sizeof *q);
	free(q);
}

/* Tells the client resume_failed, once. */
static void
rd_resume_answer(struct rd_resume *q)
{
	parley_client *c = rd_host->client_find(rd_ctx, q->client);

	if (q->answered)
		return;
	q->answered = true;
	if (c != NULL)
		rd_host->session_refuse(rd_ctx, c);
	rd_host->counter_add(rd_ctx, "resume_remote_failed", 1);
}

static void
rd_resume_refuse(struct rd_resume *q)
{
	rd_resume_answer(q);
	rd_resume_free(q);
}

/* Redis is late: the client is not kept waiting (it may join afresh);
 * the late answer is only cleaned up after. */
static void
rd_resume_late(parley_ctx *ctx, uint64_t id, void *arg)
{
	struct rd_resume *q = arg;

	(void)ctx;
	(void)id;
	q->timer = 0;
	rd_resume_answer(q);
}

static bool
rd_hex(const char *s)
{
	/* The core names a session by the first 16 bytes of its hash. */
	if (s == NULL || strlen(s) != 32)
		return false;
	for (; *s != '\0'; s++) {
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	}
	return true;
}

/* A new reference to o's field, or to null ([] when array). */
static json_t *
rd_field(json_t *o, const char *name, bool array)
{
	json_t *v = json_object_get(o, name);

	if (v != NULL)
		return json_incref(v);
	return array ? json_array() : json_null();
}

/* ---- This server's sessions in Redis */

/* Our sessions as Redis should have them, written again when Redis is
 * back (it may have lost them): client id -> {"st": the relay's state,
 * "u": when a held one runs out (wall ms), 0 while open}. */
static json_t *rd_sess_kept;

static void
rd_session_write(const char *id, json_t *st, int64_t px)
{
	const char *hash = json_string_value(json_object_get(st, "hash"));
	char *key, *val, ms[24];
	json_t *o;

	if (!rd_hex(hash) || !rd_ok())
		return;
	o = json_pack("{s:s, s:s, s:o, s:o, s:o}", "s", rd_sid, "i", id, "a",
	    rd_field(st, "account", false), "g", rd_field(st, "roles", true),
	    "k", rd_field(st, "key", false));
	val = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (val == NULL)
		abort();
	key = rd_key("sess:", hash, strlen(hash));
	snprintf(ms, sizeof ms, "%lld", (long long)(px > 0 ? px : 1));
	{
		const char *argv[] = { "SET", key, val, "PX", ms };
		size_t lens[] = { 3, strlen(key), strlen(val), 2, strlen(ms) };
		rd_command(&rd_cmd, rd_on_reply_ignore, NULL, 5, argv, lens);
	}
	free(key);
	free(val);
}

static void
rd_session_put(parley_client *c, json_t *st, int64_t px, uint64_t until)
{
	char id[24];

	snprintf(id, sizeof id, "%llu",
	    (unsigned long long)rd_host->client_id(rd_ctx, c));
	if (rd_sess_kept == NULL)
		rd_sess_kept = json_object();
	json_object_set_new(rd_sess_kept, id,
	    json_pack("{s:O, s:I}", "st", st, "u", (json_int_t)until));
	rd_session_write(id, st, px);
}

void
rd_sessions_up(void)
{
	uint64_t now = rd_host->wall_ms(rd_ctx);
	const char *id;
	json_t *k;

	json_object_foreach(rd_sess_kept, id, k)
	{
		uint64_t u = (uint64_t)json_integer_value(
		    json_object_get(k, "u"));
		if (u == 0)
			rd_session_write(
			    id, json_object_get(k, "st"), RD_SESS_OPEN_MS);
		else if (u > now)
			rd_session_write(
			    id, json_object_get(k, "st"), (int64_t)(u - now));
	}
}

void
rd_sessions_fini(void)
{
	json_decref(rd_sess_kept);
	rd_sess_kept = NULL;
}

static void
rd_session_del(json_t *st)
{
	const char *hash = json_string_value(json_object_get(st, "hash"));
	char *key;

	if (!rd_hex(hash) || !rd_ok())
		return;
	key = rd_key("sess:", hash, strlen(hash));
	{
		const char *argv[] = { "DEL", key };
		size_t lens[] = { 3, strlen(key) };
		rd_command(&rd_cmd, rd_on_reply_ignore, NULL, 2, argv, lens);
	}
	free(key);
}

/* ---- A resume of another server's session */

static void
rd_on_take(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r;
	struct rd_resume *q = priv;
	parley_client *c, *g;
	json_t *o, *st;
	char *state;

	if (reply == NULL || reply->type != REDIS_REPLY_INTEGER ||
	    reply->integer != 1) {
		rd_resume_refuse(q);
		return;
	}
	c = q->answered ? NULL : rd_host->client_find(rd_ctx, q->client);
	g = rd_members_ghost(q->ghost);
	if (c == NULL || g == NULL) {
		/* Taken, but the connection went (or was answered)
		 * meanwhile: the member leaves as a connection that was
		 * never resumed would. */
		if (g != NULL)
			rd_members_lost(q->ghost, g);
		rd_resume_refuse(q);
		return;
	}
	o = json_loads(q->rec, 0, NULL);
	st = json_pack("{s:o, s:o, s:o}", "account", rd_field(o, "a", false),
	    "roles", rd_field(o, "g", true), "key", rd_field(o, "k", false));
	state = json_dumps(st, JSON_COMPACT);
	json_decref(st);
	json_decref(o);
	if (state == NULL)
		abort();
	if (rd_host->session_adopt(rd_ctx, c, g, state, strlen(state)) ==
	    PARLEY_OK) {
		rd_members_adopted(q->ghost, g);
		rd_host->counter_add(rd_ctx, "resume_remote", 1);
	} else {
		/* The core told the client resume_failed. */
		rd_members_lost(q->ghost, g);
		rd_host->counter_add(rd_ctx, "resume_remote_failed", 1);
	}
	free(state);
	rd_resume_free(q);
}

static void
rd_on_find(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r;
	struct rd_resume *q = priv;
	json_t *o = NULL, *rec = NULL;
	const char *sid, *cid, *name;
	char *k1, *k2, *k3, *f, gid[24];
	parley_client *g;

	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
	    reply->elements != 2 || !rd_ok() || q->answered ||
	    rd_host->client_find(rd_ctx, q->client) == NULL) {
		rd_resume_refuse(q);
		return;
	}
	o = json_loadb(reply->element[0]->str, reply->element[0]->len, 0, NULL);
	rec = json_loadb(
	    reply->element[1]->str, reply->element[1]->len, 0, NULL);
	sid = json_string_value(json_object_get(o, "s"));
	cid = json_string_value(json_object_get(o, "i"));
	name = json_string_value(json_object_get(rec, "n"));
	if (sid == NULL || cid == NULL || name == NULL ||
	    strcmp(sid, rd_sid) == 0 ||
	    snprintf(q->ghost, sizeof q->ghost, "%s:%s", sid, cid) >=
		(int)sizeof q->ghost ||
	    (g = rd_members_ghost(q->ghost)) == NULL) {
		/* Not a member we know of (yet): no takeover. */
		json_decref(o);
		json_decref(rec);
		rd_resume_refuse(q);
		return;
	}
	q->rec = strndup(reply->element[0]->str, reply->element[0]->len);
	if (q->rec == NULL)
		abort();
	f = rd_fold(name);
	snprintf(gid, sizeof gid, "%llu",
	    (unsigned long long)rd_host->client_id(rd_ctx, g));
	k1 = rd_key("sess:", q->hash, strlen(q->hash));
	k2 = rd_key("names", "", 0);
	k3 = rd_key("dt", "", 0);
	{
		const char *argv[] = { "EVAL", rd_sess_take_script, "3", k1, k2,
			k3, rd_opt.prefix, q->rec, rd_sid, gid, f, q->hash };
		size_t lens[] = { 4, strlen(rd_sess_take_script), 1, strlen(k1),
			strlen(k2), strlen(k3), strlen(rd_opt.prefix),
			strlen(q->rec), strlen(rd_sid), strlen(gid), strlen(f),
			strlen(q->hash) };
		if (rd_command(&rd_cmd, rd_on_take, q, 12, argv, lens) !=
		    REDIS_OK)
			rd_resume_refuse(q);
	}
	free(k1);
	free(k2);
	free(k3);
	free(f);
	json_decref(o);
	json_decref(rec);
}

static void
rd_resume_ask(parley_client *c, json_t *st)
{
	const char *hash = json_string_value(json_object_get(st, "hash"));
	struct rd_resume *q;
	char *key;

	/* Redis away or late: who holds the session cannot be known. */
	if (!rd_hex(hash) || !rd_ok() ||
	    rd_host->session_wait(rd_ctx, c) != PARLEY_OK)
		return;
	if ((q = calloc(1, sizeof *q)) == NULL)
		abort();
	q->client = rd_host->client_id(rd_ctx, c);
	memcpy(q->hash, hash, sizeof q->hash);
	/* Two round trips, each within the deadline of a command. */
	q->timer = rd_host->timer_add(
	    rd_ctx, (uint64_t)rd_opt.timeout_ms * 2, 0, rd_resume_late, q);
	key = rd_key("sess:", hash, strlen(hash));
	{
		const char *argv[] = { "EVAL", rd_sess_find_script, "1", key,
			rd_opt.prefix };
		size_t lens[] = { 4, strlen(rd_sess_find_script), 1,
			strlen(key), strlen(rd_opt.prefix) };
		if (rd_command(&rd_cmd, rd_on_find, q, 5, argv, lens) !=
		    REDIS_OK)
			rd_resume_refuse(q);
	}
	free(key);
}

void
rd_sessions_relay(parley_ctx *ctx, const struct parley_relay *rl)
{
	json_t *st;
	int64_t left;
	char id[24];

	if (rl->client == NULL || rl->text == NULL ||
	    !PARLEY_HOST_HAS(rd_host, session_refuse))
		return;
	st = json_loadb(rl->text, rl->text_len, 0, NULL);
	switch (rl->kind) {
	case PARLEY_RELAY_SESSION_OPEN:
		rd_session_put(rl->client, st, RD_SESS_OPEN_MS, 0);
		break;
	case PARLEY_RELAY_SESSION_HELD:
		left = (int64_t)(rl->wall_ms - rd_host->wall_ms(ctx));
		rd_session_put(rl->client, st, left, rl->wall_ms);
		break;
	case PARLEY_RELAY_SESSION_GONE:
		snprintf(id, sizeof id, "%llu",
		    (unsigned long long)rd_host->client_id(ctx, rl->client));
		json_object_del(rd_sess_kept, id);
		rd_session_del(st);
		break;
	case PARLEY_RELAY_RESUME:
		rd_resume_ask(rl->client, st);
		break;
	default:
		break;
	}
	json_decref(st);
}

/* ---- Our client's session, taken over by another server */

void
rd_sessions_moved(json_t *o)
{
	const char *to = json_string_value(json_object_get(o, "to"));
	const char *s = json_string_value(json_object_get(o, "s"));
	const char *i = json_string_value(json_object_get(o, "i"));
	const char *n = json_string_value(json_object_get(o, "n"));
	const char *h = json_string_value(json_object_get(o, "h"));
	char from[64], key[64];
	uint8_t hash[32] = { 0 };
	parley_client *c;

	if (to == NULL || s == NULL || i == NULL || n == NULL || !rd_hex(h) ||
	    !PARLEY_HOST_HAS(rd_host, session_moved))
		return;
	if (strcmp(to, rd_sid) != 0) {
		/* Between two other servers: the ghost we show of it is now
		 * the new server's client, with the same name and rooms (its
		 * old server's "gone" and the new one's record then change
		 * nothing). */
		snprintf(from, sizeof from, "%s:%s", to, i);
		snprintf(key, sizeof key, "%s:%s", s, n);
		rd_members_rekey(from, key);
		return;
	}
	for (size_t k = 0; k < 16; k++) {
		unsigned v;
		sscanf(h + 2 * k, "%2x", &v);
		hash[k] = (uint8_t)v;
	}
	c = rd_host->session_find(rd_ctx, hash);
	explicit_bzero(hash, sizeof hash);
	if (c == NULL || rd_host->client_id(rd_ctx, c) != strtoull(i, NULL, 10))
		return;
	if (rd_host->session_moved(rd_ctx, c) == PARLEY_OK)
		rd_members_moved(c, s, n);
}
