/*
 * redis.c: several parleyd servers share their rooms through Redis. This
 * file holds the plugin's options, its two connections to Redis (one for
 * commands, one subscribed to the event channel and the rooms' channels)
 * and hiredis' asynchronous API attached to parleyd's own loop
 * (fd_watch): nothing here ever blocks. Every command has a deadline
 * (the timeout_ms option): when Redis has not answered one in time
 * (paused, overloaded, cut off) or the connection is gone, each server
 * serves its own clients alone, says so in /healthz, and when Redis
 * answers again (or a reconnection with backoff succeeds) it publishes
 * its whole state again and reads the others'. members.c keeps who is
 * where; messages.c orders the messages; direct.c carries direct
 * messages and typing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "redis.h"

#define RD_HEARTBEAT_MS 2000
#define RD_BACKOFF_MIN_MS 250
#define RD_BACKOFF_MAX_MS 5000
#define RD_WATCHDOG_MS 100

parley_ctx *rd_ctx;
const struct parley_host *rd_host;
struct rd_options rd_opt;
char rd_sid[17];
struct rd_conn rd_cmd = { .what = "commands" };
struct rd_conn rd_sub = { .what = "subscriber" };
bool rd_up;
bool rd_stopping;
static bool rd_ever_up;
static uint64_t rd_backoff = RD_BACKOFF_MIN_MS;
static uint64_t rd_retry_timer;
static uint64_t rd_backoff_max = RD_BACKOFF_MAX_MS;
static uint64_t rd_beat_ms = RD_HEARTBEAT_MS;
bool rd_slow;
uint64_t rd_live_since;
int64_t rd_slot = -1;
int64_t rd_clock_offset;
bool rd_clock_known;
static uint64_t rd_slow_since;

/* A command on the commands connection, waiting for its reply: the
 * oldest one tells whether Redis is late (replies come in order). */
struct rd_call {
	redisCallbackFn *fn;
	void *priv;
	uint64_t sent; /* mono_ms */
	struct rd_call *prev, *next;
};
static struct rd_call *rd_calls, *rd_calls_last;

/* Takes a slot for this server's local seqs (keeps its own when it can)
 * and, after an outage, raises the fence: every room's next seq then
 * jumps past the block local messages may have used. KEYS: the slot hash,
 * the fence. ARGV: server id, slot wanted (-1: any), raise (1/0). */
static const char rd_hello_script[] =
    "local me, want = ARGV[1], tonumber(ARGV[2])\n"
    "if ARGV[3] == '1' then redis.call('INCR', KEYS[2]) end\n"
    "if want > 0 then\n"
    "  local h = redis.call('HGET', KEYS[1], want)\n"
    "  if not h or h == me then\n"
    "    redis.call('HSET', KEYS[1], want, me)\n"
    "    return want\n"
    "  end\n"
    "end\n"
    "for s = 1, 1023 do\n"
    "  local h = redis.call('HGET', KEYS[1], s)\n"
    "  if not h or h == me then\n"
    "    redis.call('HSET', KEYS[1], s, me)\n"
    "    return s\n"
    "  end\n"
    "end\n"
    "return -1\n";

static void rd_connect(void);
static void rd_down(const char *why);
static void rd_recover(void);

/* ---- Small helpers */

char *
rd_key(const char *what, const char *name, size_t len)
{
	size_t plen = strlen(rd_opt.prefix), wlen = strlen(what);
	char *k = malloc(plen + wlen + len + 1);

	if (k == NULL)
		abort();
	memcpy(k, rd_opt.prefix, plen);
	memcpy(k + plen, what, wlen);
	if (len > 0)
		memcpy(k + plen + wlen, name, len);
	k[plen + wlen + len] = '\0';
	return k;
}

void
rd_gauges(void)
{
	rd_host->counter_set(rd_ctx, "cluster_up", rd_ok() ? 1 : 0);
	rd_host->counter_set(rd_ctx, "remote_members",
	    (int64_t)rd_members_remote_count());
}

bool
rd_ok(void)
{
	return rd_up && !rd_slow;
}

uint64_t
rd_expiry(void)
{
	if (!rd_clock_known)
		return 0;
	/* A quarter of the deadline left for the reply to travel back. */
	return (uint64_t)((int64_t)rd_host->wall_ms(rd_ctx) + rd_clock_offset +
	    rd_opt.timeout_ms * 3 / 4);
}

static void
rd_call_unlink(struct rd_call *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		rd_calls = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	else
		rd_calls_last = c->prev;
}

static void
rd_on_call(redisAsyncContext *ac, void *r, void *priv)
{
	struct rd_call *c = priv;

	rd_call_unlink(c);
	if (c->fn != NULL)
		c->fn(ac, r, c->priv);
	free(c);
	/* Everything Redis owed us has come: it is back in time. */
	if (r != NULL && rd_slow && rd_up && rd_calls == NULL && !rd_stopping)
		rd_recover();
}

/* Sends one command (argv, binary safe) on a connection. */
int
rd_command(struct rd_conn *rc, redisCallbackFn *fn, void *priv, int argc,
    const char **argv, const size_t *lens)
{
	struct rd_call *c;

	if (rc->ac == NULL)
		return -1;
	if (rc != &rd_cmd)
		return redisAsyncCommandArgv(rc->ac, fn, priv, argc, argv,
		    lens);
	if ((c = calloc(1, sizeof *c)) == NULL)
		abort();
	c->fn = fn;
	c->priv = priv;
	c->sent = rd_host->mono_ms(rd_ctx);
	c->prev = rd_calls_last;
	if (rd_calls_last != NULL)
		rd_calls_last->next = c;
	else
		rd_calls = c;
	rd_calls_last = c;
	if (redisAsyncCommandArgv(rc->ac, rd_on_call, c, argc, argv, lens) !=
	    REDIS_OK) {
		rd_call_unlink(c);
		free(c);
		return REDIS_ERR;
	}
	return REDIS_OK;
}

void
rd_on_reply_ignore(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r;

	if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
		rd_host->log_printf(rd_ctx, PARLEY_LOG_WARN, "redis: %s",
		    reply->str);
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
		rc->watch = rd_host->fd_watch(rd_ctx, rc->ac->c.fd, rc->events,
		    rd_fd_ready, rc);
	else
		rd_host->fd_update(rd_ctx, rc->watch, rc->events);
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
		rd_host->fd_unwatch(rd_ctx, rc->watch);
	rc->watch = 0;
	rc->events = 0;
	rc->ac = NULL;
	rc->ready = false;
}

/* ---- The subscriber: events and room messages */

void
rd_on_sub(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r, *kind, *ch, *data;
	size_t plen = strlen(rd_opt.prefix);
	const char *name;
	size_t nlen;

	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
	    reply->elements < 3)
		return;
	kind = reply->element[0];
	ch = reply->element[1];
	data = reply->element[2];
	if (kind->type != REDIS_REPLY_STRING || ch->type != REDIS_REPLY_STRING
	    || ch->len < plen + 2)
		return;
	name = ch->str + plen;
	nlen = ch->len - plen;
	if (nlen == 2 && memcmp(name, "ev", 2) == 0) {
		if (strcmp(kind->str, "message") == 0 &&
		    data->type == REDIS_REPLY_STRING)
			rd_members_event(data->str, data->len);
		else if (strcmp(kind->str, "subscribe") == 0 && rd_up)
			rd_members_up();
	} else if (nlen == 2 && memcmp(name, "st", 2) == 0) {
		if (strcmp(kind->str, "message") == 0 &&
		    data->type == REDIS_REPLY_STRING)
			rd_state_event(data->str, data->len);
		else if (strcmp(kind->str, "subscribe") == 0 && rd_up)
			rd_state_up();
	} else if (nlen == 2 && memcmp(name, "dt", 2) == 0)
		rd_direct_channel(kind->str,
		    data->type == REDIS_REPLY_STRING ? data->str : "",
		    data->type == REDIS_REPLY_STRING ? data->len : 0);
	else if (memcmp(name, "m:", 2) == 0)
		rd_messages_channel(kind->str, name + 2, nlen - 2,
		    data->type == REDIS_REPLY_STRING ? data->str : "",
		    data->type == REDIS_REPLY_STRING ? data->len : 0);
}

/* ---- Connections */

/* The slot and, after an outage, the fence (see rd_hello_script). */
static void
rd_on_slot(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r;

	if (reply != NULL && reply->type == REDIS_REPLY_INTEGER &&
	    reply->integer > 0 && reply->integer < RD_SEQ_SLOTS)
		rd_slot = reply->integer;
	else
		rd_on_reply_ignore(ac, r, priv);
}

static void
rd_claim(bool raise)
{
	char *k1 = rd_key("slots", "", 0), *k2 = rd_key("fence", "", 0);
	char want[24];
	const char *argv[] = { "EVAL", rd_hello_script, "2", k1, k2, rd_sid,
		want, raise ? "1" : "0" };
	size_t lens[8];

	snprintf(want, sizeof want, "%lld", (long long)rd_slot);
	lens[0] = 4;
	lens[1] = strlen(rd_hello_script);
	lens[2] = 1;
	lens[3] = strlen(k1);
	lens[4] = strlen(k2);
	lens[5] = strlen(rd_sid);
	lens[6] = strlen(want);
	lens[7] = 1;
	rd_command(&rd_cmd, rd_on_slot, NULL, 8, argv, lens);
	free(k1);
	free(k2);
}

/* Redis's clock, so that a command can carry the time after which it
 * must not run (it was served locally meanwhile). */
static bool
rd_clock_read(redisReply *reply)
{
	uint64_t ms;

	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
	    reply->elements != 2 || reply->element[0]->type !=
	    REDIS_REPLY_STRING || reply->element[1]->type !=
	    REDIS_REPLY_STRING)
		return false;
	ms = strtoull(reply->element[0]->str, NULL, 10) * 1000 +
	    strtoull(reply->element[1]->str, NULL, 10) / 1000;
	rd_clock_offset = (int64_t)ms - (int64_t)rd_host->wall_ms(rd_ctx);
	rd_clock_known = true;
	return true;
}

static void
rd_on_time(redisAsyncContext *ac, void *r, void *priv)
{
	rd_clock_read(r);
}

static void
rd_time(redisCallbackFn *fn)
{
	const char *argv[] = { "TIME" };
	size_t lens[] = { 4 };

	rd_command(&rd_cmd, fn, NULL, 1, argv, lens);
}

/* Both connections are open and Redis answered in time: the cluster is
 * up (a paused Redis accepts connections and answers nothing). */
static void
rd_on_hello(redisAsyncContext *ac, void *r, void *priv)
{
	char *ch;

	if (!rd_clock_read(r) || rd_stopping || !rd_cmd.ready ||
	    !rd_sub.ready) {
		rd_on_reply_ignore(ac, r, priv);
		return;
	}
	rd_up = true;
	rd_slow = false;
	rd_backoff = RD_BACKOFF_MIN_MS;
	rd_live_since = rd_host->mono_ms(rd_ctx);
	if (rd_opt.unix_path != NULL)
		rd_host->log_printf(rd_ctx, PARLEY_LOG_INFO, "%s Redis at %s "
		    "(server id %s)", rd_ever_up ? "back on" : "connected to",
		    rd_opt.unix_path, rd_sid);
	else
		rd_host->log_printf(rd_ctx, PARLEY_LOG_INFO, "%s Redis at %s:%lld "
		    "(server id %s)", rd_ever_up ? "back on" : "connected to",
		    rd_opt.host, (long long)rd_opt.port, rd_sid);
	/* Back after an outage: local messages may have used seqs ahead of
	 * the cluster's counters; the fence makes them jump past. */
	rd_claim(rd_ever_up);
	rd_ever_up = true;
	rd_host->health_report(rd_ctx, true, NULL);
	rd_messages_reset();
	ch = rd_key("ev", "", 0);
	{
		const char *argv[] = { "SUBSCRIBE", ch };
		size_t lens[] = { 9, strlen(ch) };
		rd_command(&rd_sub, rd_on_sub, NULL, 2, argv, lens);
	}
	free(ch);
	ch = rd_key("st", "", 0);
	{
		const char *argv[] = { "SUBSCRIBE", ch };
		size_t lens[] = { 9, strlen(ch) };
		rd_command(&rd_sub, rd_on_sub, NULL, 2, argv, lens);
	}
	free(ch);
	rd_direct_up();
	/* The state goes out and is read once the subscription holds, so
	 * that no change announced meanwhile is missed. */
	rd_gauges();
}

static void
rd_on_connected(const redisAsyncContext *ac, int status)
{
	struct rd_conn *rc = ac->ev.data;

	if (status != REDIS_OK) {
		rc->ac = NULL; /* hiredis frees it */
		rd_down(ac->errstr);
		return;
	}
	rc->ready = true;
	if (rd_cmd.ready && rd_sub.ready)
		rd_time(rd_on_hello);
}

/* A reply is overdue: serve locally until Redis answers again. */
static void
rd_go_slow(uint64_t late)
{
	char detail[256];

	rd_slow = true;
	rd_slow_since = rd_host->mono_ms(rd_ctx);
	snprintf(detail, sizeof detail, "Redis has not answered for %llu ms: "
	    "serving this server's clients only",
	    (unsigned long long)late);
	rd_host->health_report(rd_ctx, false, detail);
	rd_host->log_printf(rd_ctx, PARLEY_LOG_WARN, "Redis has not answered "
	    "for %llu ms: serving local clients only until it does",
	    (unsigned long long)late);
	rd_host->counter_add(rd_ctx, "outages", 1);
	rd_messages_fallback();
	rd_gauges();
}

/* Redis answered everything it owed: publish our state again (what
 * changed meanwhile), read the others', and go on through Redis. */
static void
rd_recover(void)
{
	rd_slow = false;
	rd_live_since = rd_host->mono_ms(rd_ctx);
	rd_host->log_printf(rd_ctx, PARLEY_LOG_INFO, "Redis answers again "
	    "(after %llu ms)", (unsigned long long)(rd_live_since -
	    rd_slow_since));
	rd_host->health_report(rd_ctx, true, NULL);
	rd_time(rd_on_time);
	rd_claim(true);
	rd_members_up();
	rd_gauges();
}

static void
rd_watchdog(parley_ctx *ctx, uint64_t id, void *arg)
{
	uint64_t now = rd_host->mono_ms(ctx);

	if (!rd_up || rd_slow || rd_calls == NULL || now - rd_calls->sent <=
	    (uint64_t)rd_opt.timeout_ms)
		return;
	/* The reply may be waiting in the socket, not yet read this turn. */
	if (rd_cmd.ac != NULL)
		redisAsyncHandleRead(rd_cmd.ac);
	if (!rd_up || rd_slow || rd_calls == NULL || now - rd_calls->sent <=
	    (uint64_t)rd_opt.timeout_ms)
		return;
	rd_go_slow(now - rd_calls->sent);
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
	bool was_up = rd_up && !rd_slow; /* a slow Redis was told already */

	rd_up = false;
	rd_slow = false;
	rd_messages_reset();
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
		rd_host->health_report(rd_ctx, false, detail);
	}
	if (was_up) {
		rd_host->log_printf(rd_ctx, PARLEY_LOG_WARN, "lost Redis (%s): "
		    "serving local clients only, retrying", why ? why : "?");
		rd_host->counter_add(rd_ctx, "outages", 1);
	} else if (rd_backoff == RD_BACKOFF_MIN_MS || rd_backoff >=
	    rd_backoff_max)
		rd_host->log_printf(rd_ctx, rd_ever_up ? PARLEY_LOG_DEBUG :
		    PARLEY_LOG_WARN, "cannot reach Redis (%s), retrying",
		    why ? why : "?");
	if (rd_retry_timer == 0) {
		rd_retry_timer = rd_host->timer_add(rd_ctx, rd_backoff, 0,
		    rd_retry, NULL);
		rd_backoff = rd_backoff * 2 > rd_backoff_max ?
		    rd_backoff_max : rd_backoff * 2;
	}
	rd_gauges();
}

static int
rd_attach(struct rd_conn *rc)
{
	redisAsyncContext *ac;

	ac = rd_opt.unix_path != NULL ? redisAsyncConnectUnix(rd_opt.unix_path) :
	    redisAsyncConnect(rd_opt.host, (int)rd_opt.port);
	if (ac == NULL)
		return -1;
	if (ac->err) {
		rd_host->log_printf(rd_ctx, PARLEY_LOG_DEBUG, "%s: %s", rc->what,
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
	if (rd_opt.password != NULL) {
		const char *argv[] = { "AUTH", rd_opt.password };
		size_t lens[] = { 4, strlen(rd_opt.password) };
		rd_command(rc, rd_on_reply_ignore, NULL, 2, argv, lens);
	}
	if (rd_opt.db != 0) {
		char db[24];
		snprintf(db, sizeof db, "%lld", (long long)rd_opt.db);
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

/* While Redis is away the others' members stay as they were last seen:
 * whether they left cannot be known, and dropping them would report
 * every member of a live server as leaving and rejoining. Once Redis
 * answers, the state is read again and servers that stopped meanwhile
 * go (members.c). */
static void
rd_heartbeat(parley_ctx *ctx, uint64_t id, void *arg)
{
	if (rd_ok()) {
		rd_members_heartbeat();
		return;
	}
	if (rd_cmd.ac == NULL && rd_sub.ac == NULL && rd_retry_timer == 0)
		rd_connect();
}

/* ---- Plugin entry points */

static int
rd_on_stop(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	rd_members_stop(); /* an empty state: the others drop ours now */
	rd_stopping = true;
	return PARLEY_PASS;
}

static int
rd_options(void)
{
	int64_t ttl_s = 10;

	rd_opt.timeout_ms = 1000;
	rd_opt.host = "127.0.0.1";
	rd_opt.port = 6379;
	rd_opt.prefix = "parley:";
	rd_opt.history = 1000;
	rd_opt.history_store = true;
	if (rd_host->option_string(rd_ctx, "host", &rd_opt.host) == -1 ||
	    rd_host->option_int(rd_ctx, "port", &rd_opt.port) == -1 ||
	    rd_host->option_string(rd_ctx, "unix_socket", &rd_opt.unix_path) == -1 ||
	    rd_host->option_string(rd_ctx, "password", &rd_opt.password) == -1 ||
	    rd_host->option_string(rd_ctx, "prefix", &rd_opt.prefix) == -1 ||
	    rd_host->option_int(rd_ctx, "db", &rd_opt.db) == -1 ||
	    rd_host->option_int(rd_ctx, "heartbeat_ttl", &ttl_s) == -1 ||
	    rd_host->option_int(rd_ctx, "history", &rd_opt.history) == -1 ||
	    rd_host->option_bool(rd_ctx, "history_store", &rd_opt.history_store) ==
	    -1 ||
	    rd_host->option_int(rd_ctx, "timeout_ms", &rd_opt.timeout_ms) == -1)
		return -1;
	if (rd_opt.port < 1 || rd_opt.port > 65535 || ttl_s < 3 || ttl_s > 3600 ||
	    rd_opt.history < 0 || rd_opt.history > 1000000 || rd_opt.db < 0 ||
	    rd_opt.timeout_ms < 100 || rd_opt.timeout_ms > 60000) {
		rd_host->log_printf(rd_ctx, PARLEY_LOG_ERROR, "bad options: port "
		    "1-65535, heartbeat_ttl 3-3600 s, history 0-1000000, "
		    "db >= 0, timeout_ms 100-60000");
		return -1;
	}
	rd_opt.ttl_ms = ttl_s * 1000;
	/* A live server beats at least three times per ttl, and comes back
	 * after an outage well within one: the others then never take it
	 * for dead because Redis was away. */
	rd_beat_ms = (uint64_t)rd_opt.ttl_ms / 3 < RD_HEARTBEAT_MS ?
	    (uint64_t)rd_opt.ttl_ms / 3 : RD_HEARTBEAT_MS;
	rd_backoff_max = (uint64_t)rd_opt.ttl_ms / 4 < RD_BACKOFF_MAX_MS ?
	    (uint64_t)rd_opt.ttl_ms / 4 : RD_BACKOFF_MAX_MS;
	return 0;
}

static void
rd_make_sid(void)
{
	unsigned char b[8] = { 0 };
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

	if (fd == -1 || read(fd, b, sizeof b) != (ssize_t)sizeof b) {
		uint64_t x = rd_host->wall_ms(rd_ctx) ^ ((uint64_t)getpid() << 32);
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
	rd_host = h;
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
	rd_history_register();
	h->timer_add(ctx, rd_beat_ms, rd_beat_ms, rd_heartbeat, NULL);
	h->timer_add(ctx, RD_WATCHDOG_MS, RD_WATCHDOG_MS, rd_watchdog, NULL);
	if (h->flags & PARLEY_HOST_INFO_ONLY)
		return 0;
	rd_members_init();
	rd_messages_init();
	rd_direct_init();
	rd_state_init();
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
	rd_members_fini();
	rd_messages_fini();
	rd_sessions_fini();
}

PARLEY_PLUGIN_DEFINE("redis", "0.1.0",
    "several servers share rooms, members and messages through Redis",
    rd_init, rd_fini);
