/*
 * members.c: who is where across the cluster. Each server keeps its own
 * clients in a Redis hash (client id -> name and rooms) that lives while
 * the server sends heartbeats, and announces each change as a small
 * delta on the event channel in the same script that writes the hash:
 * work per change is the size of that client, not of the server. The
 * others show those clients as remote members (ghost clients of the
 * host), so participants, joined_room, user_left and user_renamed work as
 * on one server. Names are claimed in a cluster-wide hash in that same
 * script: the first claim in Redis's order wins, a later one is renamed
 * to a guest name one round trip after it asked. A server reads the whole
 * state (every server's hash) only when it connects, after a gap in a
 * server's deltas, and every half minute as a safety net.
 *
 * A server is alive while its heartbeats reach Redis: each beat records
 * Redis's own time. One that has not beaten for heartbeat_ttl loses its
 * members everywhere, but only in the eyes of a server that has itself
 * been reaching Redis all that time: when Redis was paused, restarted or
 * unreachable for everybody, nobody missed a beat by its own fault, and
 * nobody is reported as leaving and rejoining.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis.h"

/* Every FULL_EVERY heartbeats this server republishes its whole state and
 * reads everybody's, repairing anything a lost event left wrong. */
#define RD_FULL_EVERY 15

/* Writes this server's changes, claims names, announces them. KEYS: our
 * hash, the names hash, the server set, the room set, the event channel.
 * ARGV: server id, ttl ms, key prefix, full (1: replace the whole hash),
 * room count, rooms..., then per client: id, old name, new name (folded),
 * record ("" when gone, "-timeout" when gone because its session's grace
 * ran out: "d id timeout"). Returns the ids and names that lost a claim. */
static const char rd_delta_script[] =
    "local me, pfx = ARGV[1], ARGV[3]\n"
    "local v = tonumber(redis.call('HGET', KEYS[1], '_v') or '0') + 1\n"
    "if ARGV[4] == '1' then redis.call('DEL', KEYS[1]) end\n"
    "redis.call('HSET', KEYS[1], '_v', v)\n"
    "local out = { (ARGV[4] == '1' and 'F ' or 'D ') .. me .. ' ' .. v }\n"
    "local lost = {}\n"
    "local nr = tonumber(ARGV[5])\n"
    "for i = 6, 5 + nr do\n"
    "  redis.call('SADD', KEYS[4], ARGV[i])\n"
    "  out[#out + 1] = 'r ' .. ARGV[i]\n"
    "end\n"
    "local i = 6 + nr\n"
    "while i + 3 <= #ARGV do\n"
    "  local id, of, nf, rec = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3]\n"
    "  local tag = me .. ':' .. id\n"
    "  if of ~= '' and of ~= nf and redis.call('HGET', KEYS[2], of) == tag"
    " then\n"
    "    redis.call('HDEL', KEYS[2], of)\n"
    "  end\n"
    "  if rec == '' or string.sub(rec, 1, 1) == '-' then\n"
    "    redis.call('HDEL', KEYS[1], id)\n"
    "    out[#out + 1] = 'd ' .. id .. (rec == '' and '' or\n"
    "        ' ' .. string.sub(rec, 2))\n"
    "  else\n"
    "    local h = redis.call('HGET', KEYS[2], nf)\n"
    "    local taken = false\n"
    "    if h and h ~= tag then\n"
    "      local s, hid = string.match(h, '^(%x+):(%d+)$')\n"
    "      taken = s ~= nil and\n"
    "          redis.call('HEXISTS', pfx .. 'srv:' .. s, hid) == 1\n"
    "    end\n"
    "    if taken then\n"
    "      lost[#lost + 1] = id\n"
    "      lost[#lost + 1] = nf\n"
    "    else\n"
    "      redis.call('HSET', KEYS[2], nf, tag)\n"
    "    end\n"
    "    redis.call('HSET', KEYS[1], id, rec)\n"
    "    out[#out + 1] = 'u ' .. id .. ' ' .. rec\n"
    "  end\n"
    "  i = i + 4\n"
    "end\n"
    "redis.call('SADD', KEYS[3], me)\n"
    "redis.call('PUBLISH', KEYS[5], table.concat(out, '\\n'))\n"
    "return lost\n";

/* The heartbeat. KEYS: the server set, the names hash, the beats (server
 * -> Redis's time of its last beat), the slots, the fence, the time each
 * server's beats have been regular since. ARGV: prefix, our id, ttl ms.
 * Servers silent for ttl are removed (hash, names, slot; the fence rises:
 * their local seqs are skipped), but only by a server whose own beats
 * have been regular for ttl: after a gap of ours (Redis paused,
 * restarted, or we were cut off) the others get a ttl to beat again.
 * Returns { our hash still there (1/0), { server, ms since its beat,
 * ... } }. */
static const char rd_alive_script[] =
    "local pfx, me, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local prev = tonumber(redis.call('ZSCORE', KEYS[3], me) or '-1')\n"
    "local since = tonumber(redis.call('HGET', KEYS[6], me) or '-1')\n"
    "if prev < 0 or now - prev > ttl or since < 0 then\n"
    "  since = now\n"
    "  redis.call('HSET', KEYS[6], me, string.format('%.0f', now))\n"
    "end\n"
    "redis.call('ZADD', KEYS[3], now, me)\n"
    "if now - since >= ttl then\n"
    "  local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf',\n"
    "      now - ttl - 1)\n"
    "  for _, s in ipairs(dead) do\n"
    "    redis.call('ZREM', KEYS[3], s)\n"
    "    redis.call('HDEL', KEYS[6], s)\n"
    "    redis.call('SREM', KEYS[1], s)\n"
    "    redis.call('DEL', pfx .. 'srv:' .. s)\n"
    "    local all = redis.call('HGETALL', KEYS[2])\n"
    "    for j = 1, #all, 2 do\n"
    "      if string.sub(all[j + 1], 1, #s + 1) == s .. ':' then\n"
    "        redis.call('HDEL', KEYS[2], all[j])\n"
    "      end\n"
    "    end\n"
    "    all = redis.call('HGETALL', KEYS[4])\n"
    "    for j = 1, #all, 2 do\n"
    "      if all[j + 1] == s then redis.call('HDEL', KEYS[4], all[j]) end\n"
    "    end\n"
    "    redis.call('INCR', KEYS[5])\n"
    "  end\n"
    "end\n"
    "local out = {}\n"
    "local all = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')\n"
    "for j = 1, #all, 2 do\n"
    "  out[#out + 1] = all[j]\n"
    "  out[#out + 1] = string.format('%.0f', now - tonumber(all[j + 1]))\n"
    "end\n"
    "return { redis.call('EXISTS', pfx .. 'srv:' .. me), out }\n";

/* Everything: { rooms, { server id, its hash as a flat array, ... } }.
 * KEYS: the server set, the room set. ARGV: prefix. */
static const char rd_sync_script[] =
    "local out = {}\n"
    "for _, s in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  local h = redis.call('HGETALL', ARGV[1] .. 'srv:' .. s)\n"
    "  if #h > 0 then out[#out + 1] = s; out[#out + 1] = h\n"
    "  else redis.call('SREM', KEYS[1], s) end\n"
    "end\n"
    "return { redis.call('SMEMBERS', KEYS[2]), out }\n";

/* Local clients: id -> {"f": name claimed (folded), "p": record
 * published, "k": [rooms] published, "r": {room: true} (rooms it may be
 * in, checked on flush)}. */
static json_t *rd_locals;
static json_t *rd_room_locals; /* room -> local members published */
static json_t *rd_dirty;     /* id -> true: to publish */
static json_t *rd_new_rooms; /* room -> true: created here, to announce */
static bool rd_full_pending; /* the next flush replaces the whole hash */
static uint64_t rd_flush_timer;
/* Remote members: "server:id" -> {"l": ghost id here, "r": {room: true}} */
static json_t *rd_ghosts;
static json_t *rd_vers;      /* server -> last version applied */
static bool rd_syncing;      /* a full read is on its way */
static json_t *rd_sync_buf;  /* events seen meanwhile: [[text], ...] */
static unsigned rd_beats;
/* A beat is on its way: never two, or the second, run right after the
 * first once a paused Redis resumes, would judge the others before they
 * could beat. */
static bool rd_beating;

static void rd_flush_soon(void);
static void rd_sync(void);

/* ---- Small helpers */

char *
rd_fold(const char *name)
{
	char *f = strdup(name);

	if (f == NULL)
		abort();
	for (char *p = f; *p != '\0'; p++) {
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	}
	return f;
}

static json_t *
rd_local(uint64_t id, bool create)
{
	char key[24];
	json_t *l;

	snprintf(key, sizeof key, "%llu", (unsigned long long)id);
	if ((l = json_object_get(rd_locals, key)) == NULL && create) {
		l = json_pack("{s:s, s:s, s:[], s:{}}", "f", "", "p", "", "k",
		    "r");
		json_object_set_new(rd_locals, key, l);
	}
	return l;
}

static void
rd_mark(uint64_t id)
{
	char key[24];

	snprintf(key, sizeof key, "%llu", (unsigned long long)id);
	json_object_set_new(rd_dirty, key, json_true());
	rd_flush_soon();
}

size_t
rd_members_remote_count(void)
{
	return rd_ghosts != NULL ? json_object_size(rd_ghosts) : 0;
}

/* ---- Publishing this server's clients */

/* Counts the local members of each room, from what is published, so that
 * a room's channel is left when its last local member goes. */
static void
rd_count_rooms(json_t *old, json_t *now)
{
	size_t i, j;
	json_t *v, *w;

	json_array_foreach(old, i, v) {
		const char *room = json_string_value(v);
		bool kept = false;
		json_int_t n;
		json_array_foreach(now, j, w) {
			if (json_equal(v, w))
				kept = true;
		}
		if (kept || room == NULL)
			continue;
		n = json_integer_value(json_object_get(rd_room_locals, room));
		if (n <= 1) {
			json_object_del(rd_room_locals, room);
			rd_messages_unwant(room, strlen(room));
		} else
			json_object_set_new(rd_room_locals, room,
			    json_integer(n - 1));
	}
	json_array_foreach(now, j, w) {
		const char *room = json_string_value(w);
		bool had = false;
		json_array_foreach(old, i, v) {
			if (json_equal(v, w))
				had = true;
		}
		if (had || room == NULL)
			continue;
		json_object_set_new(rd_room_locals, room, json_integer(
		    json_integer_value(json_object_get(rd_room_locals, room)) +
		    1));
		rd_messages_want(room, strlen(room));
	}
}

struct rd_argv {
	const char **v;
	size_t *len;
	char **owned;
	size_t n, cap, nowned;
};

static void
rd_argv_add(struct rd_argv *a, const char *s, size_t len, bool own)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 32;
		a->v = realloc(a->v, a->cap * sizeof *a->v);
		a->len = realloc(a->len, a->cap * sizeof *a->len);
		a->owned = realloc(a->owned, a->cap * sizeof *a->owned);
		if (a->v == NULL || a->len == NULL || a->owned == NULL)
			abort();
	}
	a->v[a->n] = s;
	a->len[a->n++] = len;
	if (own)
		a->owned[a->nowned++] = (char *)s;
}

static void
rd_argv_free(struct rd_argv *a)
{
	for (size_t i = 0; i < a->nowned; i++)
		free(a->owned[i]);
	free(a->v);
	free(a->len);
	free(a->owned);
}

/* The rooms c is in, from its candidates (those it is not in go). */
static json_t *
rd_local_rooms(parley_client *c, json_t *cand)
{
	json_t *rooms = json_array(), *v;
	const char *name;
	void *tmp;

	json_object_foreach_safe(cand, tmp, name, v) {
		parley_room *r = rd_host->room_find(rd_ctx, name,
		    strlen(name));
		if (r != NULL && rd_host->room_has_member(rd_ctx, r, c))
			json_array_append_new(rooms, json_string(name));
		else
			json_object_del(cand, name);
	}
	return rooms;
}

static void
rd_on_delta(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r;
	bool lost = false;

	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
		rd_on_reply_ignore(ac, r, priv);
		return;
	}
	for (size_t i = 0; i + 1 < reply->elements; i += 2) {
		parley_client *c = rd_host->client_find(rd_ctx,
		    strtoull(reply->element[i]->str, NULL, 10));
		char *f;
		if (c == NULL)
			continue;
		f = rd_fold(rd_host->client_name(rd_ctx, c));
		if (strcmp(f, reply->element[i + 1]->str) == 0) {
			/* Somebody on another server had it first. */
			char name[32];
			for (int k = 0; k < 16; k++) {
				snprintf(name, sizeof name, "guest-%u",
				    100000u + (unsigned)(random() % 900000));
				if (rd_host->client_rename(rd_ctx, c, name,
				    strlen(name)) == PARLEY_OK)
					break;
			}
			rd_host->client_notice(rd_ctx, c, NULL, "That name is "
			    "taken on another server of this cluster; you "
			    "are a guest again.");
			rd_host->counter_add(rd_ctx, "name_clashes", 1);
			rd_mark(rd_host->client_id(rd_ctx, c));
			lost = true;
		}
		free(f);
	}
	/* The winner's ghost could not be made while our client held the
	 * name: read the state again. */
	if (lost)
		rd_sync();
}

static void
rd_flush(void)
{
	struct rd_argv a = { 0 };
	char ttl[24], nrooms[24], *k[5];
	const char *key, *name;
	json_t *v;
	void *tmp;
	size_t nr = 0, base;

	if (!rd_ok() || rd_stopping)
		return;
	k[0] = rd_key("srv:", rd_sid, strlen(rd_sid));
	k[1] = rd_key("names", "", 0);
	k[2] = rd_key("servers", "", 0);
	k[3] = rd_key("rooms", "", 0);
	k[4] = rd_key("ev", "", 0);
	snprintf(ttl, sizeof ttl, "%lld", (long long)rd_opt.ttl_ms);
	rd_argv_add(&a, "EVAL", 4, false);
	rd_argv_add(&a, rd_delta_script, strlen(rd_delta_script), false);
	rd_argv_add(&a, "5", 1, false);
	for (int i = 0; i < 5; i++)
		rd_argv_add(&a, k[i], strlen(k[i]), true);
	rd_argv_add(&a, rd_sid, strlen(rd_sid), false);
	rd_argv_add(&a, ttl, strlen(ttl), false);
	rd_argv_add(&a, rd_opt.prefix, strlen(rd_opt.prefix), false);
	rd_argv_add(&a, rd_full_pending ? "1" : "0", 1, false);
	base = a.n;
	rd_argv_add(&a, "", 0, false); /* the room count, below */
	json_object_foreach(rd_new_rooms, name, v) {
		if (rd_host->room_find(rd_ctx, name, strlen(name)) == NULL)
			continue;
		rd_argv_add(&a, strdup(name), strlen(name), true);
		nr++;
	}
	snprintf(nrooms, sizeof nrooms, "%zu", nr);
	a.v[base] = nrooms;
	a.len[base] = strlen(nrooms);
	json_object_clear(rd_new_rooms);
	json_object_foreach_safe(rd_dirty, tmp, key, v) {
		uint64_t id = strtoull(key, NULL, 10);
		parley_client *c = rd_host->client_find(rd_ctx, id);
		json_t *l = json_object_get(rd_locals, key), *rec, *rooms;
		const char *oldf;
		char *f, *text;

		if (l == NULL)
			continue;
		oldf = json_string_value(json_object_get(l, "f"));
		if (c == NULL || rd_host->client_is_remote(rd_ctx, c)) {
			if (*json_string_value(json_object_get(l, "p")) !=
			    '\0' || rd_full_pending) {
				rd_argv_add(&a, strdup(key), strlen(key), true);
				rd_argv_add(&a, strdup(oldf), strlen(oldf),
				    true);
				rd_argv_add(&a, "", 0, false);
				if (json_is_true(json_object_get(l, "w")))
					rd_argv_add(&a, "-timeout", 8, false);
				else
					rd_argv_add(&a, "", 0, false);
			}
			rd_count_rooms(json_object_get(l, "k"), NULL);
			json_object_del(rd_locals, key);
			continue;
		}
		rooms = rd_local_rooms(c, json_object_get(l, "r"));
		rd_count_rooms(json_object_get(l, "k"), rooms);
		json_object_set(l, "k", rooms);
		rec = json_pack("{s:s, s:o}", "n", rd_host->client_name(rd_ctx,
		    c), "r", rooms);
		text = json_dumps(rec, JSON_COMPACT);
		json_decref(rec);
		if (!rd_full_pending && strcmp(text, json_string_value(
		    json_object_get(l, "p"))) == 0) {
			free(text);
			continue;
		}
		f = rd_fold(rd_host->client_name(rd_ctx, c));
		rd_argv_add(&a, strdup(key), strlen(key), true);
		rd_argv_add(&a, strdup(oldf), strlen(oldf), true);
		rd_argv_add(&a, f, strlen(f), true);
		rd_argv_add(&a, text, strlen(text), true);
		json_object_set_new(l, "f", json_string(f));
		json_object_set_new(l, "p", json_string(text));
	}
	json_object_clear(rd_dirty);
	if (a.n > base + 1 || rd_full_pending)
		rd_command(&rd_cmd, rd_on_delta, NULL, (int)a.n, a.v, a.len);
	rd_full_pending = false;
	rd_argv_free(&a);
}

static void
rd_flush_timer_fn(parley_ctx *ctx, uint64_t id, void *arg)
{
	rd_flush_timer = 0;
	rd_flush();
}

/* Changes go out once per loop turn, however many happened in it. */
static void
rd_flush_soon(void)
{
	if (rd_ok() && rd_flush_timer == 0 && !rd_stopping)
		rd_flush_timer = rd_host->timer_add(rd_ctx, 0, 0,
		    rd_flush_timer_fn, NULL);
}

static int
rd_full_member(parley_ctx *ctx, parley_client *c, void *arg)
{
	json_t *l;

	if (rd_host->client_is_remote(ctx, c))
		return 0;
	if ((l = rd_local(rd_host->client_id(ctx, c), true)) != NULL)
		json_object_set_new(json_object_get(l, "r"), arg, json_true());
	return 0;
}

static int
rd_full_room(parley_ctx *ctx, parley_room *r, void *arg)
{
	size_t len;
	const char *name = rd_host->room_name(ctx, r, &len);
	char *n = strndup(name, len);

	if (n == NULL)
		abort();
	json_object_set_new(rd_new_rooms, n, json_true());
	rd_host->room_members(ctx, r, rd_full_member, n);
	free(n);
	return 0;
}

/* The whole state of this server, replacing what Redis holds. */
static void
rd_publish_full(void)
{
	const char *key;
	json_t *l;

	json_object_foreach(rd_locals, key, l) {
		json_object_clear(json_object_get(l, "r"));
		json_object_set_new(rd_dirty, key, json_true());
	}
	rd_host->room_each(rd_ctx, rd_full_room, NULL);
	rd_full_pending = true;
	rd_flush();
}

/* ---- Local changes (hooks at the end of their chains) */

int
rd_on_connect(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	rd_local(ev->client_id, true);
	rd_mark(ev->client_id);
	return PARLEY_PASS;
}

int
rd_on_change(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	json_t *l;

	if (ev->client == NULL || rd_host->client_is_remote(ctx, ev->client))
		return PARLEY_PASS;
	l = rd_local(ev->client_id, true);
	if (ev->type == PARLEY_EV_JOIN || ev->type == PARLEY_EV_LEAVE) {
		size_t len;
		const char *name = rd_host->room_name(ctx, ev->room, &len);
		char *n = strndup(name, len);
		if (n == NULL)
			abort();
		if (ev->type == PARLEY_EV_JOIN) {
			json_object_set_new(json_object_get(l, "r"), n,
			    json_true());
			rd_messages_want(name, len);
		} else
			json_object_del(json_object_get(l, "r"), n);
		free(n);
	} else if (ev->type == PARLEY_EV_CREATE_ROOM) {
		/* The creator may be put in it without a join event. */
		char *n = strndup(ev->text, ev->text_len);
		if (n == NULL)
			abort();
		json_object_set_new(rd_new_rooms, n, json_true());
		json_object_set_new(json_object_get(l, "r"), n, json_true());
		rd_messages_want(ev->text, ev->text_len);
		free(n);
	} else if (ev->type == PARLEY_EV_DISCONNECT && ev->reason != NULL &&
	    strcmp(ev->reason, "timeout") == 0)
		/* A held session's grace ran out: its rooms everywhere are
		 * told so. */
		json_object_set_new(l, "w", json_true());
	rd_mark(ev->client_id);
	return PARLEY_PASS;
}

/* ---- Other servers' clients, as remote members here */

static void
rd_ghost_drop(const char *key, const char *reason)
{
	json_t *g = json_object_get(rd_ghosts, key);
	parley_client *c;

	if (g == NULL)
		return;
	c = rd_host->client_find(rd_ctx, (uint64_t)json_integer_value(
	    json_object_get(g, "l")));
	if (c != NULL)
		rd_host->remote_remove(rd_ctx, c, reason);
	json_object_del(rd_ghosts, key);
}

/* Drops every ghost of server sid (NULL: of every server). */
static void
rd_ghosts_drop_server(const char *sid, const char *reason)
{
	size_t slen = sid != NULL ? strlen(sid) : 0;
	const char *key;
	json_t *g;
	void *tmp;

	json_object_foreach_safe(rd_ghosts, tmp, key, g) {
		if (sid == NULL || (strncmp(key, sid, slen) == 0 &&
		    key[slen] == ':'))
			rd_ghost_drop(key, reason);
	}
}

/* User rid of server sid is now as rec says ({"n": name, "r": [rooms]}). */
static void
rd_ghost_update(const char *sid, const char *rid, const char *rec,
    size_t len)
{
	json_t *o = json_loadb(rec, len, 0, NULL), *rooms, *g, *had, *v;
	const char *name = json_string_value(json_object_get(o, "n"));
	parley_client *c = NULL;
	char key[64];
	const char *rn;
	void *tmp;
	size_t i;

	rooms = json_object_get(o, "r");
	if (name == NULL || !json_is_array(rooms)) {
		json_decref(o);
		return;
	}
	snprintf(key, sizeof key, "%s:%s", sid, rid);
	if ((g = json_object_get(rd_ghosts, key)) != NULL &&
	    (c = rd_host->client_find(rd_ctx, (uint64_t)json_integer_value(
	    json_object_get(g, "l")))) == NULL) {
		json_object_del(rd_ghosts, key);
		g = NULL;
	}
	if (c != NULL && strcmp(rd_host->client_name(rd_ctx, c), name) != 0 &&
	    rd_host->client_rename(rd_ctx, c, name, strlen(name)) !=
	    PARLEY_OK) {
		/* Its new name is held here: it comes back once the clash
		 * is settled (its server renames one of the two). */
		rd_ghost_drop(key, "left");
		g = NULL;
		c = NULL;
	}
	if (c == NULL) {
		if (rd_host->remote_create(rd_ctx, name, strlen(name), &c) !=
		    PARLEY_OK) {
			json_decref(o);
			return;
		}
		g = json_pack("{s:I, s:{}}", "l", (json_int_t)
		    rd_host->client_id(rd_ctx, c), "r");
		json_object_set_new(rd_ghosts, key, g);
	}
	had = json_object_get(g, "r");
	/* Leaves first, then joins, as the server that sent it did. */
	json_object_foreach_safe(had, tmp, rn, v) {
		bool keep = false;
		json_t *w;
		json_array_foreach(rooms, i, w) {
			if (json_is_string(w) &&
			    strcmp(json_string_value(w), rn) == 0)
				keep = true;
		}
		if (!keep) {
			parley_room *r = rd_host->room_find(rd_ctx, rn,
			    strlen(rn));
			if (r != NULL)
				rd_host->remote_leave(rd_ctx, c, r, "left");
			json_object_del(had, rn);
		}
	}
	json_array_foreach(rooms, i, v) {
		parley_room *r;
		if (!json_is_string(v))
			continue;
		r = rd_host->room_find(rd_ctx, json_string_value(v),
		    json_string_length(v));
		if (r == NULL)
			rd_host->room_create(rd_ctx, json_string_value(v),
			    json_string_length(v), &r);
		if (r != NULL && rd_host->remote_join(rd_ctx, c, r) ==
		    PARLEY_OK)
			json_object_set_new(had, json_string_value(v),
			    json_true());
	}
	json_decref(o);
}

static void
rd_room_seen(const char *name, size_t len)
{
	if (rd_host->room_find(rd_ctx, name, len) == NULL)
		rd_host->room_create(rd_ctx, name, len, NULL);
}

/* Applies one event: "F|D server version" then lines "r room", "u id
 * record", "d id [timeout]". F replaces everything known of that server. */
static void
rd_event_apply(const char *data, size_t len)
{
	char sid[24], *text = strndup(data, len), *line, *next;
	unsigned long long v;
	json_int_t last;
	json_t *seen = NULL;
	bool full;

	if (text == NULL)
		abort();
	if ((next = strchr(text, '\n')) != NULL)
		*next++ = '\0';
	if (sscanf(text, "%*c %23s %llu", sid, &v) != 2 ||
	    (text[0] != 'F' && text[0] != 'D') || strcmp(sid, rd_sid) == 0) {
		free(text);
		return;
	}
	full = text[0] == 'F';
	last = json_is_integer(json_object_get(rd_vers, sid)) ?
	    json_integer_value(json_object_get(rd_vers, sid)) : -1;
	if (!full && (json_int_t)v <= last) {
		free(text);
		return; /* already applied */
	}
	if (!full && last >= 0 && (json_int_t)v > last + 1)
		rd_sync(); /* missed some: read the whole state again */
	json_object_set_new(rd_vers, sid, json_integer((json_int_t)v));
	if (full)
		seen = json_object();
	for (line = next; line != NULL && *line != '\0'; line = next) {
		char *sp, *rid;
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if (line[0] == 'r' && line[1] == ' ')
			rd_room_seen(line + 2, strlen(line + 2));
		else if ((line[0] == 'u' || line[0] == 'd') && line[1] == ' ') {
			char key[64];
			rid = line + 2;
			sp = strchr(rid, ' ');
			if (sp != NULL)
				*sp = '\0';
			snprintf(key, sizeof key, "%s:%s", sid, rid);
			if (line[0] == 'd')
				rd_ghost_drop(key, sp != NULL &&
				    strcmp(sp + 1, "timeout") == 0 ? "timeout" :
				    "disconnected");
			else if (sp != NULL) {
				rd_ghost_update(sid, rid, sp + 1, strlen(sp +
				    1));
				if (seen != NULL)
					json_object_set_new(seen, key,
					    json_true());
			}
		}
	}
	if (full) {
		const char *key;
		json_t *g;
		void *tmp;
		size_t slen = strlen(sid);
		json_object_foreach_safe(rd_ghosts, tmp, key, g) {
			if (strncmp(key, sid, slen) == 0 && key[slen] == ':' &&
			    json_object_get(seen, key) == NULL)
				rd_ghost_drop(key, "disconnected");
		}
		json_decref(seen);
	}
	free(text);
	rd_gauges();
}

void
rd_members_event(const char *data, size_t len)
{
	if (rd_syncing)
		json_array_append_new(rd_sync_buf, json_stringn(data, len));
	rd_event_apply(data, len);
}

/* ---- Sessions resumed on another server (sessions.c) */

parley_client *
rd_members_ghost(const char *key)
{
	json_t *g = json_object_get(rd_ghosts, key);
	parley_client *c;

	if (g == NULL)
		return NULL;
	c = rd_host->client_find(rd_ctx, (uint64_t)json_integer_value(
	    json_object_get(g, "l")));
	return c != NULL && rd_host->client_is_remote(rd_ctx, c) ? c : NULL;
}

void
rd_members_adopted(const char *key, parley_client *c)
{
	json_t *g = json_object_get(rd_ghosts, key), *l;

	if (g == NULL)
		return;
	if (c != NULL) {
		/* Ours now, in the rooms its ghost was in: published as
		 * ours at the next flush. */
		l = rd_local(rd_host->client_id(rd_ctx, c), true);
		json_object_update(json_object_get(l, "r"),
		    json_object_get(g, "r"));
		rd_mark(rd_host->client_id(rd_ctx, c));
	}
	json_object_del(rd_ghosts, key);
}

void
rd_members_lost(const char *key, parley_client *g)
{
	uint64_t id = rd_host->client_id(rd_ctx, g);
	json_t *l;

	/* Announced as ours, gone with its grace: the server it came from
	 * made it our ghost, and drops it on that "gone". */
	json_object_del(rd_ghosts, key);
	l = rd_local(id, true);
	json_object_set_new(l, "p", json_string("-"));
	json_object_set_new(l, "w", json_true());
	rd_mark(id);
	rd_host->remote_remove(rd_ctx, g, "timeout");
}

void
rd_members_rekey(const char *from, const char *to)
{
	json_t *g = json_object_get(rd_ghosts, from);

	if (g == NULL || strcmp(from, to) == 0)
		return;
	json_object_set(rd_ghosts, to, g);
	json_object_del(rd_ghosts, from);
}

void
rd_members_moved(parley_client *c, const char *sid, const char *rid)
{
	uint64_t id = rd_host->client_id(rd_ctx, c);
	json_t *l = rd_local(id, false), *rooms, *had, *v, *cand;
	char key[64];
	size_t i;

	snprintf(key, sizeof key, "%s:%s", sid, rid);
	had = json_object();
	cand = l != NULL ? json_incref(json_object_get(l, "r")) :
	    json_object();
	rooms = rd_local_rooms(c, cand);
	json_decref(cand);
	json_array_foreach(rooms, i, v)
		json_object_set(had, json_string_value(v), json_true());
	json_decref(rooms);
	/* Another server's client now: a ghost, with the rooms it is in. */
	json_object_set_new(rd_ghosts, key, json_pack("{s:I, s:o}", "l",
	    (json_int_t)id, "r", had));
	rd_mark(id); /* gone from our hash */
	rd_gauges();
}

/* ---- Reading the whole state */

static void
rd_on_sync(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r, *rooms, *srv;
	json_t *buf = rd_sync_buf, *live = json_object(), *v;
	size_t i;

	rd_syncing = false;
	rd_sync_buf = json_array();
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
	    reply->elements != 2) {
		rd_on_reply_ignore(ac, r, priv);
		json_decref(buf);
		json_decref(live);
		return;
	}
	rooms = reply->element[0];
	srv = reply->element[1];
	for (i = 0; i < rooms->elements; i++) {
		if (rooms->element[i]->type == REDIS_REPLY_STRING)
			rd_room_seen(rooms->element[i]->str,
			    rooms->element[i]->len);
	}
	/* Each server's hash as a full event, then what came meanwhile (the
	 * versions skip what the hash already had). */
	for (i = 0; i + 1 < srv->elements; i += 2) {
		redisReply *s = srv->element[i], *h = srv->element[i + 1];
		const char *ver = "0";
		char *ev;
		size_t cap, n;

		if (s->type != REDIS_REPLY_STRING || h->type !=
		    REDIS_REPLY_ARRAY)
			continue;
		json_object_set_new(live, s->str, json_true());
		if (strcmp(s->str, rd_sid) == 0)
			continue;
		cap = 64 + s->len;
		for (size_t j = 0; j + 1 < h->elements; j += 2) {
			cap += h->element[j]->len + h->element[j + 1]->len + 4;
			if (strcmp(h->element[j]->str, "_v") == 0)
				ver = h->element[j + 1]->str;
		}
		if ((ev = malloc(cap)) == NULL)
			abort();
		n = (size_t)snprintf(ev, cap, "F %s %s", s->str, ver);
		for (size_t j = 0; j + 1 < h->elements; j += 2) {
			if (strcmp(h->element[j]->str, "_v") == 0)
				continue;
			n += (size_t)snprintf(ev + n, cap - n, "\nu %s %s",
			    h->element[j]->str, h->element[j + 1]->str);
		}
		rd_event_apply(ev, n);
		free(ev);
	}
	/* A server absent here is not taken for gone: after Redis lost its
	 * data it may not have come back yet. Its beats decide (below).
	 * Then what came meanwhile, which may bring a server that started
	 * since. */
	json_array_foreach(buf, i, v)
		rd_event_apply(json_string_value(v), json_string_length(v));
	json_decref(buf);
	rd_host->counter_set(rd_ctx, "cluster_servers",
	    (int64_t)json_object_size(live));
	json_decref(live);
	rd_gauges();
}

static void
rd_sync(void)
{
	char *k1, *k2;
	const char *pfx;

	if (!rd_ok() || rd_syncing)
		return;
	k1 = rd_key("servers", "", 0);
	k2 = rd_key("rooms", "", 0);
	pfx = rd_opt.prefix;
	{
		const char *argv[] = { "EVAL", rd_sync_script, "2", k1, k2,
			pfx };
		size_t lens[] = { 4, strlen(rd_sync_script), 1, strlen(k1),
			strlen(k2), strlen(pfx) };
		if (rd_command(&rd_cmd, rd_on_sync, NULL, 6, argv, lens) ==
		    REDIS_OK)
			rd_syncing = true;
	}
	free(k1);
	free(k2);
}

/* ---- Heartbeats */

static void
rd_on_alive(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r, *alive;
	json_t *live;
	const char *sid;
	json_t *v;
	void *tmp;
	bool judge;

	rd_beating = false;
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
	    reply->elements != 2 || reply->element[1]->type !=
	    REDIS_REPLY_ARRAY || rd_stopping) {
		rd_on_reply_ignore(ac, r, priv);
		return;
	}
	if (reply->element[0]->integer == 0) {
		/* Our hash is gone (Redis lost it, or we were cut off past
		 * its life): write it all again. */
		rd_host->log_printf(rd_ctx, PARLEY_LOG_INFO, "this server's "
		    "state was gone from Redis: publishing it again");
		rd_publish_full();
	}
	alive = reply->element[1];
	live = json_object();
	for (size_t i = 0; i + 1 < alive->elements; i += 2) {
		if (alive->element[i]->type == REDIS_REPLY_STRING &&
		    alive->element[i + 1]->type == REDIS_REPLY_STRING &&
		    strtoll(alive->element[i + 1]->str, NULL, 10) <=
		    rd_opt.ttl_ms)
			json_object_set_new(live, alive->element[i]->str,
			    json_true());
	}
	/* Only after a ttl of answers in time: before that, a server that
	 * came back with us (Redis restarted, paused) may not have beaten
	 * yet. */
	judge = rd_ok() && rd_host->mono_ms(rd_ctx) - rd_live_since >=
	    (uint64_t)rd_opt.ttl_ms;
	json_object_foreach_safe(rd_vers, tmp, sid, v) {
		if (judge && json_object_get(live, sid) == NULL) {
			rd_host->log_printf(rd_ctx, PARLEY_LOG_INFO, "server %s "
			    "stopped sending heartbeats: removing its members",
			    sid);
			rd_ghosts_drop_server(sid, "disconnected");
			json_object_del(rd_vers, sid);
		}
	}
	rd_host->counter_set(rd_ctx, "cluster_servers",
	    (int64_t)json_object_size(live));
	json_decref(live);
	rd_gauges();
}

void
rd_members_heartbeat(void)
{
	char *k1, *k2, *k3, *k4, *k5, *k6;
	char ttl[24];

	if (rd_beating)
		return;
	k1 = rd_key("servers", "", 0);
	k2 = rd_key("names", "", 0);
	k3 = rd_key("beats", "", 0);
	k4 = rd_key("slots", "", 0);
	k5 = rd_key("fence", "", 0);
	k6 = rd_key("since", "", 0);
	if (++rd_beats % RD_FULL_EVERY == 0) {
		rd_publish_full();
		rd_sync();
		rd_messages_subscriptions();
	}
	snprintf(ttl, sizeof ttl, "%lld", (long long)rd_opt.ttl_ms);
	{
		const char *argv[] = { "EVAL", rd_alive_script, "6", k1, k2,
			k3, k4, k5, k6, rd_opt.prefix, rd_sid, ttl };
		size_t lens[] = { 4, strlen(rd_alive_script), 1, strlen(k1),
			strlen(k2), strlen(k3), strlen(k4), strlen(k5),
			strlen(k6), strlen(rd_opt.prefix), strlen(rd_sid),
			strlen(ttl) };
		if (rd_command(&rd_cmd, rd_on_alive, NULL, 12, argv, lens) ==
		    REDIS_OK)
			rd_beating = true;
	}
	free(k1);
	free(k2);
	free(k3);
	free(k4);
	free(k5);
	free(k6);
}

void
rd_members_up(void)
{
	const char *room;
	json_t *v;

	rd_messages_up();
	json_object_foreach(rd_room_locals, room, v)
		rd_messages_want(room, strlen(room));
	rd_messages_subscriptions();
	rd_syncing = false;
	json_array_clear(rd_sync_buf);
	rd_publish_full();
	rd_sessions_up();
	rd_sync();
	/* Alive again in the others' eyes at once. */
	rd_members_heartbeat();
}

void
rd_members_stop(void)
{
	/* An empty hash: the others drop our members at once. */
	json_object_clear(rd_locals);
	json_object_clear(rd_dirty);
	json_object_clear(rd_new_rooms);
	rd_full_pending = true;
	rd_flush();
}

void
rd_members_init(void)
{
	rd_locals = json_object();
	rd_room_locals = json_object();
	rd_dirty = json_object();
	rd_new_rooms = json_object();
	rd_ghosts = json_object();
	rd_vers = json_object();
	rd_sync_buf = json_array();
}

void
rd_members_fini(void)
{
	json_decref(rd_locals);
	json_decref(rd_room_locals);
	json_decref(rd_dirty);
	json_decref(rd_new_rooms);
	json_decref(rd_ghosts);
	json_decref(rd_vers);
	json_decref(rd_sync_buf);
	rd_locals = rd_dirty = rd_new_rooms = rd_ghosts = rd_vers = NULL;
	rd_room_locals = NULL;
	rd_sync_buf = NULL;
}
