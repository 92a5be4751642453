/*
 * redis.c: several parleyd servers share their rooms through Redis. Each
 * server keeps a snapshot of its own clients (id, name, rooms) under a key
 * that expires unless refreshed, announces every change on an event
 * channel, and shows the other servers' clients as remote members (ghost
 * clients of the host), so participants, joined_room, user_left,
 * user_renamed and name uniqueness work as on one server. A chat message
 * is taken over from the core (DROP) and handed to a Lua script that gives
 * it the room's next cluster-wide seq and publishes it on the room's
 * channel in one step; every server with members in the room, the origin
 * included, posts it when it comes back, so publish order is seq order.
 * Redis is spoken through hiredis' asynchronous API attached to parleyd's
 * own loop (fd_watch): nothing here ever blocks. When Redis is away each
 * server serves its own clients alone, retries with backoff and sends its
 * whole state again when Redis is back.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include <parley/plugin.h>

#define RD_HEARTBEAT_MS 2000
#define RD_BACKOFF_MIN_MS 250
#define RD_BACKOFF_MAX_MS 5000

/* One of the two connections: commands, and the subscriber. */
struct rd_conn {
	redisAsyncContext *ac;
	uint64_t watch;  /* fd_watch id, 0 when none */
	unsigned events; /* PARLEY_FD_* wanted by hiredis */
	bool ready;      /* connected */
	const char *what;
};

/* A remote member: one client of another server. */
struct rd_ghost {
	struct rd_ghost *next;
	char *sid;     /* its server */
	char *rid;     /* its id there (decimal) */
	uint64_t lid;  /* the ghost client's id here */
	bool seen;     /* marked during a reconcile */
};

/* A message on its way through Redis: posted locally if Redis fails. */
struct rd_pending {
	char *room;
	char *sender;
	char *text;
	size_t len;
	bool action;
};

static parley_ctx *rd_ctx;
static const struct parley_host *host;

static struct {
	const char *host;
	int64_t port;
	const char *unix_path;
	const char *password;
	const char *prefix;
	int64_t db;
	int64_t ttl_ms;
	int64_t history;
	bool history_store;
} opt;

static char rd_sid[17];
static struct rd_conn rd_cmd = { .what = "commands" };
static struct rd_conn rd_sub = { .what = "subscriber" };
static bool rd_up;          /* both connections ready, state sent */
static bool rd_stopping;
static bool rd_ever_up;
static uint64_t rd_backoff = RD_BACKOFF_MIN_MS;
static uint64_t rd_retry_timer;
static uint64_t rd_flush_timer;
static uint64_t rd_last_ok;  /* mono_ms of the last good sync */
static struct rd_ghost *rd_ghosts;
static json_t *rd_locals;    /* object: local client id -> true */
static json_t *rd_subs;      /* object: room -> 1 pending, 2 subscribed */
static json_t *rd_seqs;      /* object: room -> last seq known here */
static bool rd_posting;      /* posting locally: our post hook passes */

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

static const char rd_sync_script[] =
    "local ids = redis.call('SMEMBERS', KEYS[1])\n"
    "local out = {}\n"
    "for _, id in ipairs(ids) do\n"
    "  local v = redis.call('GET', ARGV[1] .. id)\n"
    "  if v then out[#out + 1] = id; out[#out + 1] = v\n"
    "  else redis.call('SREM', KEYS[1], id) end\n"
    "end\n"
    "return { redis.call('SMEMBERS', KEYS[2]), out }\n";

static void rd_connect(void);
static void rd_down(const char *why);
static void rd_flush_soon(void);

/* ---- Small helpers */

static char *
rd_key(const char *what, const char *name, size_t len)
{
	size_t plen = strlen(opt.prefix), wlen = strlen(what);
	char *k = malloc(plen + wlen + len + 1);

	if (k == NULL)
		abort();
	memcpy(k, opt.prefix, plen);
	memcpy(k + plen, what, wlen);
	if (len > 0)
		memcpy(k + plen + wlen, name, len);
	k[plen + wlen + len] = '\0';
	return k;
}

static void
rd_gauges(void)
{
	size_t n = 0;

	for (struct rd_ghost *g = rd_ghosts; g != NULL; g = g->next)
		n++;
	host->counter_set(rd_ctx, "cluster_up", rd_up ? 1 : 0);
	host->counter_set(rd_ctx, "remote_members", (int64_t)n);
}

/* Sends one command (argv, binary safe) on a connection. */
static int
rd_command(struct rd_conn *rc, redisCallbackFn *fn, void *priv, int argc,
    const char **argv, const size_t *lens)
{
	if (rc->ac == NULL)
		return -1;
	return redisAsyncCommandArgv(rc->ac, fn, priv, argc, argv, lens);
}

/* ---- The hiredis adapter on parleyd's loop */

static void
rd_fd_ready(parley_ctx *ctx, uint64_t id, int fd, unsigned ev, void *arg)
{
	struct rd_conn *rc = arg;

	if ((ev & PARLEY_FD_READ) && rc->ac != NULL)
		redisAsyncHandleRead(rc->ac);
	if ((ev & PARLEY_FD_WRITE) && rc->ac != NULL)
		redisAsyncHandleWrite(rc->ac);
}

static void
rd_ev_apply(struct rd_conn *rc)
{
	if (rc->ac == NULL)
		return;
	if (rc->watch == 0)
		rc->watch = host->fd_watch(rd_ctx, rc->ac->c.fd, rc->events,
		    rd_fd_ready, rc);
	else
		host->fd_update(rd_ctx, rc->watch, rc->events);
}

static void
rd_add_read(void *p)
{
	struct rd_conn *rc = p;
	rc->events |= PARLEY_FD_READ;
	rd_ev_apply(rc);
}

static void
rd_del_read(void *p)
{
	struct rd_conn *rc = p;
	rc->events &= ~PARLEY_FD_READ;
	rd_ev_apply(rc);
}

static void
rd_add_write(void *p)
{
	struct rd_conn *rc = p;
	rc->events |= PARLEY_FD_WRITE;
	rd_ev_apply(rc);
}

static void
rd_del_write(void *p)
{
	struct rd_conn *rc = p;
	rc->events &= ~PARLEY_FD_WRITE;
	rd_ev_apply(rc);
}

/* hiredis frees the context right after: forget it. */
static void
rd_cleanup(void *p)
{
	struct rd_conn *rc = p;

	if (rc->watch != 0)
		host->fd_unwatch(rd_ctx, rc->watch);
	rc->watch = 0;
	rc->events = 0;
	rc->ac = NULL;
	rc->ready = false;
}

/* ---- Snapshots of this server's clients */

static int
rd_snap_member(parley_ctx *ctx, parley_client *c, void *arg)
{
	json_t **pair = arg; /* { users, room name } */
	char id[24];
	json_t *u;

	if (host->client_is_remote(ctx, c))
		return 0;
	snprintf(id, sizeof id, "%llu",
	    (unsigned long long)host->client_id(ctx, c));
	if ((u = json_object_get(pair[0], id)) != NULL)
		json_array_append(json_object_get(u, "r"), pair[1]);
	return 0;
}

static int
rd_snap_room(parley_ctx *ctx, parley_room *r, void *arg)
{
	json_t *pair[2] = { arg, NULL };
	size_t len;
	const char *name = host->room_name(ctx, r, &len);

	pair[1] = json_stringn(name, len);
	host->room_members(ctx, r, rd_snap_member, pair);
	json_decref(pair[1]);
	return 0;
}

/* {"u": {id: {"n": name, "r": [rooms]}}}, as text (caller frees). */
static char *
rd_snapshot(void)
{
	json_t *users = json_object(), *snap;
	const char *key;
	json_t *v;
	void *tmp;
	char *text;

	json_object_foreach_safe(rd_locals, tmp, key, v) {
		parley_client *c = host->client_find(rd_ctx,
		    strtoull(key, NULL, 10));
		if (c == NULL) {
			json_object_del(rd_locals, key);
			continue;
		}
		json_object_set_new(users, key, json_pack("{s:s, s:[]}", "n",
		    host->client_name(rd_ctx, c), "r"));
	}
	host->room_each(rd_ctx, rd_snap_room, users);
	snap = json_pack("{s:o}", "u", users);
	text = json_dumps(snap, JSON_COMPACT);
	json_decref(snap);
	return text;
}

/* ---- Subscriptions: one channel per room with local members */

static int
rd_want_member(parley_ctx *ctx, parley_client *c, void *arg)
{
	return host->client_is_remote(ctx, c) ? 0 : 1;
}

static int
rd_want_room(parley_ctx *ctx, parley_room *r, void *arg)
{
	json_t *want = arg;
	size_t len;
	const char *name = host->room_name(ctx, r, &len);

	if (host->room_members(ctx, r, rd_want_member, NULL) != 0) {
		char *n = strndup(name, len);
		json_object_set_new(want, n, json_true());
		free(n);
	}
	return 0;
}

static void rd_on_sub(redisAsyncContext *ac, void *r, void *priv);

static void
rd_subscribe(const char *verb, const char *room, size_t len)
{
	char *ch = rd_key("m:", room, len);
	const char *argv[2] = { verb, ch };
	size_t lens[2] = { strlen(verb), strlen(ch) };

	rd_command(&rd_sub, rd_on_sub, NULL, 2, argv, lens);
	free(ch);
}

static void
rd_subs_update(void)
{
	json_t *want = json_object();
	const char *key;
	json_t *v;
	void *tmp;

	host->room_each(rd_ctx, rd_want_room, want);
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

/* ---- Publishing this server's state */

static void
rd_on_reply_ignore(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r;

	if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
		host->log_printf(rd_ctx, PARLEY_LOG_WARN, "redis: %s",
		    reply->str);
}

static void
rd_flush(void)
{
	char *snap, *key, *ch, ttl[24], *msg;
	size_t slen;

	if (!rd_up)
		return;
	snap = rd_stopping ? strdup("{\"u\":{}}") : rd_snapshot();
	slen = strlen(snap);
	key = rd_key("srv:", rd_sid, strlen(rd_sid));
	snprintf(ttl, sizeof ttl, "%lld", (long long)opt.ttl_ms);
	if (rd_stopping) {
		const char *argv[] = { "DEL", key };
		size_t lens[] = { 3, strlen(key) };
		rd_command(&rd_cmd, rd_on_reply_ignore, NULL, 2, argv, lens);
	} else {
		const char *argv[] = { "SET", key, snap, "PX", ttl };
		size_t lens[] = { 3, strlen(key), slen, 2, strlen(ttl) };
		char *set = rd_key("servers", "", 0);
		const char *sargv[] = { "SADD", set, rd_sid };
		size_t slens[] = { 4, strlen(set), strlen(rd_sid) };
		rd_command(&rd_cmd, rd_on_reply_ignore, NULL, 5, argv, lens);
		rd_command(&rd_cmd, rd_on_reply_ignore, NULL, 3, sargv,
		    slens);
		free(set);
	}
	/* Announce it: the others apply it at once, without a round trip. */
	ch = rd_key("ev", "", 0);
	msg = malloc(strlen(rd_sid) + 1 + slen + 1);
	if (msg == NULL)
		abort();
	sprintf(msg, "%s\n%s", rd_sid, snap);
	{
		const char *argv[] = { "PUBLISH", ch, msg };
		size_t lens[] = { 7, strlen(ch), strlen(msg) };
		rd_command(&rd_cmd, rd_on_reply_ignore, NULL, 3, argv, lens);
	}
	free(msg);
	free(ch);
	free(key);
	free(snap);
	if (!rd_stopping)
		rd_subs_update();
}

static int
rd_room_name_add(parley_ctx *ctx, parley_room *r, void *arg)
{
	json_t *names = arg;
	size_t len;
	const char *name = host->room_name(ctx, r, &len);

	json_array_append_new(names, json_stringn(name, len));
	return 0;
}

/* Every local room goes into the cluster's room set. */
static void
rd_rooms_publish(void)
{
	json_t *names = json_array();
	size_t n, i;
	const char **argv;
	size_t *lens;
	char *set = rd_key("rooms", "", 0);
	json_t *v;

	host->room_each(rd_ctx, rd_room_name_add, names);
	n = json_array_size(names);
	argv = calloc(n + 2, sizeof *argv);
	lens = calloc(n + 2, sizeof *lens);
	if (argv == NULL || lens == NULL)
		abort();
	argv[0] = "SADD";
	lens[0] = 4;
	argv[1] = set;
	lens[1] = strlen(set);
	json_array_foreach(names, i, v) {
		argv[i + 2] = json_string_value(v);
		lens[i + 2] = json_string_length(v);
	}
	if (n > 0)
		rd_command(&rd_cmd, rd_on_reply_ignore, NULL, (int)n + 2, argv,
		    lens);
	free(argv);
	free(lens);
	free(set);
	json_decref(names);
}

static void
rd_flush_timer_fn(parley_ctx *ctx, uint64_t id, void *arg)
{
	rd_flush_timer = 0;
	rd_flush();
}

/* A change is sent once per loop turn, however many happened in it. */
static void
rd_flush_soon(void)
{
	if (rd_up && rd_flush_timer == 0 && !rd_stopping)
		rd_flush_timer = host->timer_add(rd_ctx, 0, 0,
		    rd_flush_timer_fn, NULL);
}

/* ---- Applying other servers' state */

static void
rd_ghost_free(struct rd_ghost *g)
{
	free(g->sid);
	free(g->rid);
	free(g);
}

static void
rd_ghost_drop(struct rd_ghost **gp, const char *reason)
{
	struct rd_ghost *g = *gp;
	parley_client *c = host->client_find(rd_ctx, g->lid);

	*gp = g->next;
	if (c != NULL)
		host->remote_remove(rd_ctx, c, reason);
	rd_ghost_free(g);
}

static void
rd_ghosts_clear(const char *reason)
{
	while (rd_ghosts != NULL)
		rd_ghost_drop(&rd_ghosts, reason);
	rd_gauges();
}

struct rd_leave_ctx {
	parley_client *c;
	json_t *rooms; /* the ghost's rooms by the snapshot */
};

static int
rd_leave_room(parley_ctx *ctx, parley_room *r, void *arg)
{
	struct rd_leave_ctx *lc = arg;
	size_t len, i;
	const char *name = host->room_name(ctx, r, &len);
	json_t *v;

	if (!host->room_has_member(ctx, r, lc->c))
		return 0;
	json_array_foreach(lc->rooms, i, v) {
		if (json_string_length(v) == len &&
		    memcmp(json_string_value(v), name, len) == 0)
			return 0;
	}
	host->remote_leave(ctx, lc->c, r, "left");
	return 0;
}

/* A fresh guest name for a local client that lost a name clash. */
static void
rd_rename_loser(parley_client *c)
{
	char name[32];

	for (int i = 0; i < 16; i++) {
		snprintf(name, sizeof name, "guest-%u",
		    100000u + (unsigned)(random() % 900000));
		if (host->client_rename(rd_ctx, c, name, strlen(name)) ==
		    PARLEY_OK) {
			host->client_notice(rd_ctx, c, NULL, "Your name is "
			    "used on another server of this cluster; you "
			    "are now a guest.");
			return;
		}
	}
}

/* Makes a ghost for user rid of server sid named name, or NULL when the
 * name is held here (the clash is settled by server id: the larger
 * yields its local client's name). */
static parley_client *
rd_ghost_make(const char *sid, const char *rid, const char *name)
{
	parley_client *c = NULL, *holder;
	struct rd_ghost *g;
	int rc = host->remote_create(rd_ctx, name, strlen(name), &c);

	if (rc == PARLEY_ERR_NAME_TAKEN) {
		holder = host->client_find_by_name(rd_ctx, name, strlen(name));
		if (holder == NULL || host->client_is_remote(rd_ctx, holder) ||
		    strcmp(rd_sid, sid) < 0)
			return NULL;
		rd_rename_loser(holder);
		rd_flush_soon();
		rc = host->remote_create(rd_ctx, name, strlen(name), &c);
	}
	if (rc != PARLEY_OK)
		return NULL;
	g = calloc(1, sizeof *g);
	if (g == NULL)
		abort();
	g->sid = strdup(sid);
	g->rid = strdup(rid);
	g->lid = host->client_id(rd_ctx, c);
	g->seen = true;
	g->next = rd_ghosts;
	rd_ghosts = g;
	return c;
}

/* Brings the ghosts of server sid in line with its snapshot text. */
static void
rd_apply(const char *sid, const char *text, size_t len)
{
	json_t *snap = json_loadb(text, len, 0, NULL), *users, *u;
	const char *rid;
	struct rd_ghost **gp;

	if (strcmp(sid, rd_sid) == 0) {
		json_decref(snap);
		return;
	}
	users = json_object_get(snap, "u");
	if (!json_is_object(users)) {
		host->log_printf(rd_ctx, PARLEY_LOG_WARN,
		    "bad snapshot from server %s", sid);
		json_decref(snap);
		return;
	}
	/* Gone users first, so their names are free for renames. */
	for (gp = &rd_ghosts; *gp != NULL;) {
		if (strcmp((*gp)->sid, sid) == 0 &&
		    json_object_get(users, (*gp)->rid) == NULL)
			rd_ghost_drop(gp, "disconnected");
		else
			gp = &(*gp)->next;
	}
	json_object_foreach(users, rid, u) {
		const char *name = json_string_value(json_object_get(u, "n"));
		json_t *rooms = json_object_get(u, "r"), *v;
		struct rd_ghost *g;
		parley_client *c = NULL;
		size_t i;

		if (name == NULL || !json_is_array(rooms))
			continue;
		for (g = rd_ghosts; g != NULL; g = g->next) {
			if (strcmp(g->sid, sid) == 0 && strcmp(g->rid, rid) == 0)
				break;
		}
		if (g != NULL && (c = host->client_find(rd_ctx, g->lid)) ==
		    NULL) {
			for (gp = &rd_ghosts; *gp != g; gp = &(*gp)->next)
				;
			*gp = g->next;
			rd_ghost_free(g);
			g = NULL;
		}
		if (g == NULL)
			c = rd_ghost_make(sid, rid, name);
		else if (strcmp(host->client_name(rd_ctx, c), name) != 0)
			host->client_rename(rd_ctx, c, name, strlen(name));
		if (c == NULL)
			continue;
		json_array_foreach(rooms, i, v) {
			parley_room *r = host->room_find(rd_ctx,
			    json_string_value(v), json_string_length(v));
			if (r == NULL)
				host->room_create(rd_ctx, json_string_value(v),
				    json_string_length(v), &r);
			if (r != NULL)
				host->remote_join(rd_ctx, c, r);
		}
		{
			struct rd_leave_ctx lc = { c, rooms };
			host->room_each(rd_ctx, rd_leave_room, &lc);
		}
	}
	json_decref(snap);
	rd_gauges();
}

static void
rd_on_sync(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r, *rooms, *srv;
	struct rd_ghost **gp;

	if (reply == NULL)
		return;
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
		rd_on_reply_ignore(ac, r, priv);
		return;
	}
	rd_last_ok = host->mono_ms(rd_ctx);
	rooms = reply->element[0];
	srv = reply->element[1];
	for (size_t i = 0; i < rooms->elements; i++) {
		redisReply *e = rooms->element[i];
		if (e->type == REDIS_REPLY_STRING &&
		    host->room_find(rd_ctx, e->str, e->len) == NULL)
			host->room_create(rd_ctx, e->str, e->len, NULL);
	}
	for (struct rd_ghost *g = rd_ghosts; g != NULL; g = g->next)
		g->seen = false;
	for (size_t i = 0; i + 1 < srv->elements; i += 2) {
		const char *sid = srv->element[i]->str;
		for (struct rd_ghost *g = rd_ghosts; g != NULL; g = g->next) {
			if (strcmp(g->sid, sid) == 0)
				g->seen = true;
		}
		rd_apply(sid, srv->element[i + 1]->str,
		    srv->element[i + 1]->len);
	}
	/* Servers whose key expired (crashed, or cut off): their members
	 * are gone. */
	for (gp = &rd_ghosts; *gp != NULL;) {
		if (!(*gp)->seen)
			rd_ghost_drop(gp, "disconnected");
		else
			gp = &(*gp)->next;
	}
	host->counter_set(rd_ctx, "cluster_servers",
	    (int64_t)(srv->elements / 2));
	rd_gauges();
}

static void
rd_sync(void)
{
	char *k1 = rd_key("servers", "", 0), *k2 = rd_key("rooms", "", 0);
	char *pfx = rd_key("srv:", "", 0);
	const char *argv[] = { "EVAL", rd_sync_script, "2", k1, k2, pfx };
	size_t lens[] = { 4, strlen(rd_sync_script), 1, strlen(k1),
		strlen(k2), strlen(pfx) };

	rd_command(&rd_cmd, rd_on_sync, NULL, 6, argv, lens);
	free(k1);
	free(k2);
	free(pfx);
}

/* ---- Messages */

static void
rd_deliver(const char *room, size_t room_len, const char *data, size_t len)
{
	char *end;
	unsigned long long seq = strtoull(data, &end, 10);
	json_t *m, *t;
	parley_room *r;
	const char *sender;

	if (end == data || *end != ' ' || seq == 0)
		return;
	end++;
	m = json_loadb(end, len - (size_t)(end - data), 0, NULL);
	t = json_object_get(m, "t");
	sender = json_string_value(json_object_get(m, "n"));
	r = host->room_find(rd_ctx, room, room_len);
	if (r != NULL) {
		char *name = strndup(room, room_len);
		json_int_t last = json_integer_value(json_object_get(rd_seqs,
		    name));
		if ((json_int_t)seq > last)
			json_object_set_new(rd_seqs, name,
			    json_integer((json_int_t)seq));
		free(name);
	}
	if (r != NULL && json_is_string(t) && sender != NULL)
		host->room_post_seq(rd_ctx, r, sender, json_string_value(t),
		    json_string_length(t),
		    json_is_true(json_object_get(m, "a")), seq,
		    (uint64_t)json_integer_value(json_object_get(m, "ts")));
	host->counter_add(rd_ctx, "messages_received", 1);
	json_decref(m);
}

static void
rd_on_sub(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r, *kind, *ch;
	size_t plen = strlen(opt.prefix);

	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
	    reply->elements < 3)
		return;
	kind = reply->element[0];
	ch = reply->element[1];
	if (kind->type != REDIS_REPLY_STRING || ch->type != REDIS_REPLY_STRING
	    || ch->len < plen + 2)
		return;
	if (strcmp(kind->str, "message") == 0) {
		redisReply *data = reply->element[2];
		const char *name = ch->str + plen;
		size_t nlen = ch->len - plen;
		if (nlen == 2 && memcmp(name, "ev", 2) == 0) {
			char *nl = memchr(data->str, '\n', data->len);
			if (nl != NULL) {
				*nl = '\0';
				rd_apply(data->str, nl + 1, data->len -
				    (size_t)(nl + 1 - data->str));
			}
		} else if (memcmp(name, "m:", 2) == 0)
			rd_deliver(name + 2, nlen - 2, data->str, data->len);
	} else if (strcmp(kind->str, "subscribe") == 0 &&
	    memcmp(ch->str + plen, "m:", 2) == 0) {
		char *room = strndup(ch->str + plen + 2, ch->len - plen - 2);
		if (json_object_get(rd_subs, room) != NULL)
			json_object_set_new(rd_subs, room, json_integer(2));
		free(room);
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
			host->log_printf(rd_ctx, PARLEY_LOG_WARN, "history: %s",
			    reply->str);
		host->history_done(rd_ctx, sink, -1);
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
			host->history_emit(rd_ctx, sink, &m);
		}
		json_decref(o);
	}
	host->history_done(rd_ctx, sink, 0);
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
	if (!rd_up) {
		host->log_printf(ctx, PARLEY_LOG_DEBUG, "history asked while "
		    "Redis is away");
		return -1;
	}
	if (before == PARLEY_HISTORY_NO_BEFORE)
		snprintf(max, sizeof max, "+inf");
	else
		snprintf(max, sizeof max, "(%llu", (unsigned long long)before);
	snprintf(count, sizeof count, "%u", limit);
	if ((later = host->history_defer(ctx, sink)) == NULL)
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
		host->history_done(ctx, later, -1);
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
	char *name = strndup(room, room_len);
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

	if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
		/* It never reached Redis: the local members get it still. */
		parley_room *room = host->room_find(rd_ctx, p->room,
		    strlen(p->room));
		if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
			host->log_printf(rd_ctx, PARLEY_LOG_WARN,
			    "publish: %s", reply->str);
		if (room != NULL) {
			rd_posting = true;
			host->room_post(rd_ctx, room, p->sender, p->text,
			    p->len, p->action);
			rd_posting = false;
		}
		host->counter_add(rd_ctx, "messages_local_fallback", 1);
	}
	rd_pending_free(p);
}

/* Every message about to be posted here (a client's, a /me, a script's
 * or a plugin's) is taken over and ordered through Redis. */
static int
rd_on_post(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	size_t rlen;
	const char *room = host->room_name(ctx, ev->room, &rlen);
	char *rname = strndup(room, rlen);
	json_t *m;
	int state = (int)json_integer_value(json_object_get(rd_subs, rname));
	json_int_t last = json_integer_value(json_object_get(rd_seqs, rname));
	char *payload, *k1, *k2, *k3, hist[24], lseq[24];
	struct rd_pending *p;

	if (!rd_up || state != 2 || rd_posting) {
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
	snprintf(hist, sizeof hist, "%lld", (long long)opt.history);
	/* Never below what this server already gave (after an outage). */
	snprintf(lseq, sizeof lseq, "%lld", (long long)last);
	p = calloc(1, sizeof *p);
	if (p == NULL)
		abort();
	p->room = strndup(room, rlen);
	p->sender = strndup(ev->sender, ev->sender_len);
	p->action = (ev->flags & PARLEY_MSG_ACTION) != 0;
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
	host->counter_add(ctx, "messages_published", 1);
	free(payload);
	free(k1);
	free(k2);
	free(k3);
	return PARLEY_DROP;
}

/* ---- Local changes */

static int
rd_on_connect(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	char id[24];

	snprintf(id, sizeof id, "%llu", (unsigned long long)ev->client_id);
	json_object_set_new(rd_locals, id, json_true());
	rd_flush_soon();
	return PARLEY_PASS;
}

static int
rd_on_change(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	if (ev->client != NULL && host->client_is_remote(ctx, ev->client))
		return PARLEY_PASS;
	if (ev->type == PARLEY_EV_DISCONNECT) {
		char id[24];
		snprintf(id, sizeof id, "%llu",
		    (unsigned long long)ev->client_id);
		json_object_del(rd_locals, id);
	}
	rd_flush_soon();
	return PARLEY_PASS;
}

static int
rd_on_stop(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	rd_stopping = true;
	rd_flush(); /* an empty snapshot and the key deleted */
	return PARLEY_PASS;
}

/* ---- Connections */

static void
rd_on_connected(const redisAsyncContext *ac, int status)
{
	struct rd_conn *rc = ac->ev.data;
	char *ch;

	if (status != REDIS_OK) {
		rc->ac = NULL; /* hiredis frees it */
		rd_down(ac->errstr);
		return;
	}
	rc->ready = true;
	if (!rd_cmd.ready || !rd_sub.ready)
		return;
	rd_up = true;
	rd_backoff = RD_BACKOFF_MIN_MS;
	rd_last_ok = host->mono_ms(rd_ctx);
	if (opt.unix_path != NULL)
		host->log_printf(rd_ctx, PARLEY_LOG_INFO, "%s Redis at %s "
		    "(server id %s)", rd_ever_up ? "back on" : "connected to",
		    opt.unix_path, rd_sid);
	else
		host->log_printf(rd_ctx, PARLEY_LOG_INFO, "%s Redis at %s:%lld "
		    "(server id %s)", rd_ever_up ? "back on" : "connected to",
		    opt.host, (long long)opt.port, rd_sid);
	rd_ever_up = true;
	host->health_report(rd_ctx, true, NULL);
	json_object_clear(rd_subs);
	ch = rd_key("ev", "", 0);
	{
		const char *argv[] = { "SUBSCRIBE", ch };
		size_t lens[] = { 9, strlen(ch) };
		rd_command(&rd_sub, rd_on_sub, NULL, 2, argv, lens);
	}
	free(ch);
	rd_rooms_publish();
	rd_flush();
	rd_sync();
	rd_gauges();
}

static void
rd_on_disconnected(const redisAsyncContext *ac, int status)
{
	struct rd_conn *rc = ac->ev.data;

	rc->ac = NULL;
	rc->ready = false;
	rd_down(status == REDIS_OK ? "closed" : ac->errstr);
}

static void
rd_retry(parley_ctx *ctx, uint64_t id, void *arg)
{
	rd_retry_timer = 0;
	rd_connect();
}

/* One connection failed or closed: close the other and retry later. */
static void
rd_down(const char *why)
{
	bool was_up = rd_up;

	rd_up = false;
	json_object_clear(rd_subs);
	if (rd_stopping)
		return; /* fini frees what is left */
	if (rd_cmd.ac != NULL)
		redisAsyncDisconnect(rd_cmd.ac);
	if (rd_sub.ac != NULL)
		redisAsyncDisconnect(rd_sub.ac);
	if (was_up || !rd_ever_up) {
		char detail[256];
		snprintf(detail, sizeof detail, "Redis unreachable (%s): "
		    "serving this server's clients only", why ? why : "?");
		host->health_report(rd_ctx, false, detail);
	}
	if (was_up) {
		host->log_printf(rd_ctx, PARLEY_LOG_WARN, "lost Redis (%s): "
		    "serving local clients only, retrying", why ? why : "?");
		host->counter_add(rd_ctx, "outages", 1);
	} else if (rd_backoff == RD_BACKOFF_MIN_MS || rd_backoff >=
	    RD_BACKOFF_MAX_MS)
		host->log_printf(rd_ctx, rd_ever_up ? PARLEY_LOG_DEBUG :
		    PARLEY_LOG_WARN, "cannot reach Redis (%s), retrying",
		    why ? why : "?");
	if (rd_retry_timer == 0) {
		rd_retry_timer = host->timer_add(rd_ctx, rd_backoff, 0,
		    rd_retry, NULL);
		rd_backoff = rd_backoff * 2 > RD_BACKOFF_MAX_MS ?
		    RD_BACKOFF_MAX_MS : rd_backoff * 2;
	}
	rd_gauges();
}

static int
rd_attach(struct rd_conn *rc)
{
	redisAsyncContext *ac;

	ac = opt.unix_path != NULL ? redisAsyncConnectUnix(opt.unix_path) :
	    redisAsyncConnect(opt.host, (int)opt.port);
	if (ac == NULL)
		return -1;
	if (ac->err) {
		host->log_printf(rd_ctx, PARLEY_LOG_DEBUG, "%s: %s", rc->what,
		    ac->errstr);
		redisAsyncFree(ac);
		return -1;
	}
	rc->ac = ac;
	rc->ready = false;
	ac->ev.data = rc;
	ac->ev.addRead = rd_add_read;
	ac->ev.delRead = rd_del_read;
	ac->ev.addWrite = rd_add_write;
	ac->ev.delWrite = rd_del_write;
	ac->ev.cleanup = rd_cleanup;
	redisAsyncSetConnectCallback(ac, rd_on_connected);
	redisAsyncSetDisconnectCallback(ac, rd_on_disconnected);
	/* Queued now, sent as soon as the connection is up. */
	if (opt.password != NULL) {
		const char *argv[] = { "AUTH", opt.password };
		size_t lens[] = { 4, strlen(opt.password) };
		rd_command(rc, rd_on_reply_ignore, NULL, 2, argv, lens);
	}
	if (opt.db != 0) {
		char db[24];
		snprintf(db, sizeof db, "%lld", (long long)opt.db);
		const char *argv[] = { "SELECT", db };
		size_t lens[] = { 6, strlen(db) };
		rd_command(rc, rd_on_reply_ignore, NULL, 2, argv, lens);
	}
	/* The watch starts with hiredis' first addWrite (the connect). */
	return 0;
}

static void
rd_connect(void)
{
	if (rd_stopping || rd_cmd.ac != NULL || rd_sub.ac != NULL)
		return;
	if (rd_attach(&rd_cmd) == -1 || rd_attach(&rd_sub) == -1) {
		rd_down("connect failed");
		return;
	}
}

static void
rd_heartbeat(parley_ctx *ctx, uint64_t id, void *arg)
{
	if (rd_up) {
		rd_rooms_publish();
		rd_flush();
		rd_sync();
		return;
	}
	/* Cut off longer than a heartbeat lives: the others' members may be
	 * gone, and we cannot tell; show none rather than stale ones. */
	if (rd_ghosts != NULL && host->mono_ms(ctx) - rd_last_ok >
	    (uint64_t)opt.ttl_ms) {
		host->log_printf(ctx, PARLEY_LOG_INFO, "Redis away for %lld "
		    "ms: removing remote members", (long long)opt.ttl_ms);
		rd_ghosts_clear("disconnected");
	}
	if (rd_cmd.ac == NULL && rd_sub.ac == NULL && rd_retry_timer == 0)
		rd_connect();
}

/* ---- Plugin entry points */

static int
rd_options(void)
{
	int64_t ttl_s = 10;

	opt.host = "127.0.0.1";
	opt.port = 6379;
	opt.prefix = "parley:";
	opt.history = 1000;
	opt.history_store = true;
	if (host->option_string(rd_ctx, "host", &opt.host) == -1 ||
	    host->option_int(rd_ctx, "port", &opt.port) == -1 ||
	    host->option_string(rd_ctx, "unix_socket", &opt.unix_path) == -1 ||
	    host->option_string(rd_ctx, "password", &opt.password) == -1 ||
	    host->option_string(rd_ctx, "prefix", &opt.prefix) == -1 ||
	    host->option_int(rd_ctx, "db", &opt.db) == -1 ||
	    host->option_int(rd_ctx, "heartbeat_ttl", &ttl_s) == -1 ||
	    host->option_int(rd_ctx, "history", &opt.history) == -1 ||
	    host->option_bool(rd_ctx, "history_store", &opt.history_store) ==
	    -1)
		return -1;
	if (opt.port < 1 || opt.port > 65535 || ttl_s < 3 || ttl_s > 3600 ||
	    opt.history < 0 || opt.history > 1000000 || opt.db < 0) {
		host->log_printf(rd_ctx, PARLEY_LOG_ERROR, "bad options: port "
		    "1-65535, heartbeat_ttl 3-3600 s, history 0-1000000, "
		    "db >= 0");
		return -1;
	}
	opt.ttl_ms = ttl_s * 1000;
	return 0;
}

static void
rd_make_sid(void)
{
	unsigned char b[8] = { 0 };
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

	if (fd == -1 || read(fd, b, sizeof b) != (ssize_t)sizeof b) {
		uint64_t x = host->wall_ms(rd_ctx) ^ ((uint64_t)getpid() << 32);
		memcpy(b, &x, sizeof b);
	}
	if (fd != -1)
		close(fd);
	for (size_t i = 0; i < sizeof b; i++)
		snprintf(rd_sid + 2 * i, 3, "%02x", b[i]);
}

static int
rd_init(parley_ctx *ctx, const struct parley_host *h)
{
	rd_ctx = ctx;
	host = h;
	if (!PARLEY_HOST_HAS(h, health_report)) {
		h->log_printf(ctx, PARLEY_LOG_ERROR, "needs parleyd with "
		    "plugin ABI 1.2 or later");
		return -1;
	}
	if (rd_options() == -1)
		return -1;
	h->hook_add(ctx, PARLEY_EV_CONNECT, -1000, rd_on_connect, NULL);
	h->hook_add(ctx, PARLEY_EV_USERNAME, -1000, rd_on_change, NULL);
	h->hook_add(ctx, PARLEY_EV_JOIN, -1000, rd_on_change, NULL);
	h->hook_add(ctx, PARLEY_EV_CREATE_ROOM, -1000, rd_on_change, NULL);
	h->hook_add(ctx, PARLEY_EV_LEAVE, -1000, rd_on_change, NULL);
	h->hook_add(ctx, PARLEY_EV_DISCONNECT, -1000, rd_on_change, NULL);
	h->hook_add(ctx, PARLEY_EV_SERVER_STOP, -1000, rd_on_stop, NULL);
	/* Last in the chain: the others judge and rewrite it first. */
	h->hook_add(ctx, PARLEY_EV_POST, -1000000, rd_on_post, NULL);
	if (opt.history > 0 && opt.history_store) {
		struct parley_history_store st = {
			.size = sizeof st,
			.append = rd_history_append,
			.read = rd_history_read,
			.last_seq = rd_history_last_seq,
		};
		if (h->history_store_register(ctx, &st) != 0)
			h->log_printf(ctx, PARLEY_LOG_WARN, "room history "
			    "stays with the store loaded before this plugin; "
			    "each server then keeps only what its members "
			    "saw (list redis alone, or set history_store = "
			    "false)");
	}
	h->timer_add(ctx, RD_HEARTBEAT_MS, RD_HEARTBEAT_MS, rd_heartbeat,
	    NULL);
	if (h->flags & PARLEY_HOST_INFO_ONLY)
		return 0;
	rd_locals = json_object();
	rd_subs = json_object();
	rd_seqs = json_object();
	rd_make_sid();
	h->counter_set(ctx, "cluster_up", 0);
	h->health_report(ctx, false, "connecting to Redis");
	rd_connect();
	return 0;
}

static void
rd_fini(parley_ctx *ctx)
{
	rd_stopping = true;
	/* Pending replies are answered with NULL here (local fallback). */
	if (rd_cmd.ac != NULL)
		redisAsyncFree(rd_cmd.ac);
	if (rd_sub.ac != NULL)
		redisAsyncFree(rd_sub.ac);
	while (rd_ghosts != NULL) {
		struct rd_ghost *g = rd_ghosts;
		rd_ghosts = g->next;
		rd_ghost_free(g);
	}
	json_decref(rd_locals);
	json_decref(rd_subs);
	json_decref(rd_seqs);
	rd_locals = rd_subs = rd_seqs = NULL;
}

PARLEY_PLUGIN_DEFINE("redis", "0.1.0",
    "several servers share rooms, members and messages through Redis",
    rd_init, rd_fini);
