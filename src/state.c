/*
 * state.c: the community's durable state (rooms, bans and mutes, the
 * audit trail, scripts' parley.store) as records of a kind under a key,
 * each a JSON text. The loop keeps every record in memory and never
 * waits for the disk: a change updates the copy in memory at once and
 * joins a queue that the store writes behind. The embedded store is one
 * SQLite database in state_dir (state.db, WAL), written by a thread of
 * its own, one transaction per flush interval, so a crash loses at most
 * the changes of the last interval and never leaves a torn one. A plugin
 * may fill the same role (struct state_store) instead; without SQLite,
 * or with state_store = "memory", the state lasts as long as the
 * process.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "parley.h"

#ifdef HAVE_SQLITE
#include <pthread.h>
#include <sqlite3.h>
#define STATE_SQLITE 1
#endif

#define STATE_FLUSH_MS 50 /* longest a change waits in memory */
#define STATE_AUDIT_KEEP 10000 /* audit records kept in memory */

/* kind -> (key -> JSON value), the records as the loop knows them. */
static json_t *state_mirror;
static struct state_store state_plugin; /* a plugin's, when registered */
static bool state_plugin_set;

static json_t *
state_kind(const char *kind, bool create)
{
	json_t *k;

	if (state_mirror == NULL)
		state_mirror = json_object();
	k = json_object_get(state_mirror, kind);
	if (k == NULL && create) {
		k = json_object();
		json_object_set_new(state_mirror, kind, k);
	}
	return k;
}

#ifdef STATE_SQLITE
/* One change waiting for the thread. */
struct state_op {
	char *kind;
	char *key;
	char *value; /* JSON text; NULL deletes */
	struct state_op *next;
};

static struct {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool running, stop;
	struct state_op *ops, **tail;
	size_t nops;
	sqlite3 *db;
	char *path;
	bool failing; /* the last write failed (logged once) */
} sq = { .tail = &sq.ops };

static void
state_op_free(struct state_op *op)
{
	free(op->kind);
	free(op->key);
	free(op->value);
	free(op);
}

/* On the thread: writes a batch in one transaction. A batch that fails
 * is kept and tried again (the disk may come back). */
static int
state_sq_write(struct state_op *ops)
{
	sqlite3_stmt *put = NULL, *del = NULL;
	int rc = -1;

	if (sqlite3_exec(sq.db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	    SQLITE_OK)
		return -1;
	if (sqlite3_prepare_v2(sq.db,
		"INSERT INTO state (kind, key, value) VALUES (?, ?, ?) "
		"ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value",
		-1, &put, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(sq.db,
		"DELETE FROM state WHERE kind = ? AND key = ?", -1, &del,
		NULL) != SQLITE_OK)
		goto out;
	for (struct state_op *op = ops; op != NULL; op = op->next) {
		sqlite3_stmt *s = op->value != NULL ? put : del;
		sqlite3_reset(s);
		sqlite3_bind_text(s, 1, op->kind, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, op->key, -1, SQLITE_STATIC);
		if (op->value != NULL)
			sqlite3_bind_text(s, 3, op->value, -1, SQLITE_STATIC);
		if (sqlite3_step(s) != SQLITE_DONE)
			goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(put);
	sqlite3_finalize(del);
	if (sqlite3_exec(sq.db, rc == 0 ? "COMMIT" : "ROLLBACK", NULL, NULL,
		NULL) != SQLITE_OK)
		rc = -1;
	return rc;
}

static void *
state_sq_thread(void *arg)
{
	struct state_op *batch;
	struct timespec ts;

	(void)arg;
	pthread_mutex_lock(&sq.lock);
	for (;;) {
		while (sq.ops == NULL && !sq.stop)
			pthread_cond_wait(&sq.wake, &sq.lock);
		if (sq.ops == NULL && sq.stop)
			break;
		/* Gather what comes within the interval: one commit. */
		if (!sq.stop) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += STATE_FLUSH_MS * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&sq.wake, &sq.lock, &ts);
		}
		batch = sq.ops;
		sq.ops = NULL;
		sq.tail = &sq.ops;
		sq.nops = 0;
		pthread_mutex_unlock(&sq.lock);
		if (state_sq_write(batch) == -1) {
			if (!sq.failing)
				log_error("state", "%s: cannot write: %s",
				    sq.path, sqlite3_errmsg(sq.db));
			sq.failing = true;
			/* Keep it, ahead of what came meanwhile. */
			pthread_mutex_lock(&sq.lock);
			if (!sq.stop) {
				struct state_op *last = batch;
				while (last->next != NULL)
					last = last->next;
				last->next = sq.ops;
				if (sq.ops == NULL)
					sq.tail = &last->next;
				sq.ops = batch;
				pthread_mutex_unlock(&sq.lock);
				sleep(1);
				pthread_mutex_lock(&sq.lock);
				continue;
			}
			pthread_mutex_unlock(&sq.lock);
		} else if (sq.failing) {
			log_info("state", "%s: writing again", sq.path);
			sq.failing = false;
		}
		while (batch != NULL) {
			struct state_op *op = batch;
			batch = op->next;
			state_op_free(op);
		}
		pthread_mutex_lock(&sq.lock);
	}
	pthread_mutex_unlock(&sq.lock);
	return NULL;
}

static int
state_sq_put(void *arg, const char *kind, const char *key, const char *value)
{
	struct state_op *op = xcalloc(1, sizeof *op);

	(void)arg;
	op->kind = xstrdup(kind);
	op->key = xstrdup(key);
	op->value = value != NULL ? xstrdup(value) : NULL;
	pthread_mutex_lock(&sq.lock);
	*sq.tail = op;
	sq.tail = &op->next;
	sq.nops++;
	pthread_cond_signal(&sq.wake);
	pthread_mutex_unlock(&sq.lock);
	return 0;
}

/* Reads every record of a database opened for reading only (a full or
 * read-only state directory at start): the state is served from memory
 * and changes are not kept. */
static int
state_sq_load_ro(void)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s;
	char *uri;
	int rc;

	if (access(sq.path, F_OK) == -1)
		return 0; /* nothing kept yet */
	xasprintf(&uri, "file:%s?immutable=1", sq.path);
	rc = sqlite3_open_v2(uri, &db,
	    SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, NULL);
	free(uri);
	if (rc != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT kind, key, value FROM state", -1, &s,
		NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return -1;
	}
	while (sqlite3_step(s) == SQLITE_ROW) {
		json_t *v = json_loads(
		    (const char *)sqlite3_column_text(s, 2), 0, NULL);
		if (v != NULL)
			json_object_set_new(
			    state_kind(
				(const char *)sqlite3_column_text(s, 0), true),
			    (const char *)sqlite3_column_text(s, 1), v);
	}
	sqlite3_finalize(s);
	sqlite3_close(db);
	return 0;
}

/* At start-up, before the thread runs: reads every record. */
static int
state_sq_load(char **cause)
{
	sqlite3_stmt *s;
	int fd, rc;

	fd = open(sq.path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1) {
		xasprintf(cause, "%s", strerror(errno));
		return -1;
	}
	close(fd);
	if (sqlite3_open_v2(sq.path, &sq.db,
		SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
		NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(sq.db, 5000) != SQLITE_OK ||
	    sqlite3_exec(sq.db,
		"PRAGMA journal_mode = WAL;"
		"PRAGMA synchronous = NORMAL;"
		"CREATE TABLE IF NOT EXISTS state ("
		" kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
		" PRIMARY KEY (kind, key)) WITHOUT ROWID",
		NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(sq.db,
		"SELECT kind, key, value FROM state ORDER BY kind, key", -1, &s,
		NULL) != SQLITE_OK) {
		xasprintf(
		    cause, "%s", sq.db ? sqlite3_errmsg(sq.db) : "cannot open");
		sqlite3_close(sq.db);
		sq.db = NULL;
		return -1;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *kind = (const char *)sqlite3_column_text(s, 0);
		const char *key = (const char *)sqlite3_column_text(s, 1);
		const char *text = (const char *)sqlite3_column_text(s, 2);
		json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
		if (v == NULL) {
			log_warn("state", "%s: %s %s: not JSON, skipped",
			    sq.path, kind, key);
			continue;
		}
		json_object_set_new(state_kind(kind, true), key, v);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		xasprintf(
		    cause, "state: %s: %s", sq.path, sqlite3_errmsg(sq.db));
		return -1;
	}
	return 0;
}
#endif /* STATE_SQLITE */

static const char *state_backend = "memory";

int
state_set_store(const struct state_store *s)
{
	if (s == NULL) {
		state_plugin_set = false;
		return 0;
	}
	if (state_plugin_set)
		return -1;
	state_plugin = *s;
	state_plugin_set = true;
	state_backend = s->owner;
	return 0;
}

bool
state_durable(void)
{
	return strcmp(state_backend, "memory") != 0;
}

int
state_init(char **cause)
{
	if (state_mirror == NULL)
		state_mirror = json_object();
	if (strcmp(cfg->state_store, "memory") == 0)
		return 0;
#ifdef STATE_SQLITE
	char *why = NULL;

	xasprintf(&sq.path, "%s/state.db", cfg->state_dir);
	if (state_sq_load(&why) == -1) {
		/* A state directory that cannot be written does not stop
		 * chat: what it holds is read, and the state lives in
		 * memory until the server restarts on one it can write. */
		json_decref(state_mirror);
		state_mirror = json_object();
		if (state_sq_load_ro() == -1) {
			xasprintf(cause, "state: %s: %s", sq.path, why);
			free(why);
			return -1;
		}
		log_error("state",
		    "CANNOT WRITE STATE: %s: %s; rooms, bans and the audit "
		    "trail are kept in memory only until the server restarts "
		    "with a state_dir it can write",
		    sq.path, why);
		free(why);
		state_backend = "memory (degraded)";
		return 0;
	}
	pthread_mutex_init(&sq.lock, NULL);
	pthread_cond_init(&sq.wake, NULL);
	if (pthread_create(&sq.thread, NULL, state_sq_thread, NULL) != 0) {
		xasprintf(cause, "state: cannot start a thread");
		return -1;
	}
	sq.running = true;
	state_backend = "sqlite";
	log_info("state", "rooms, bans and the audit trail in %s", sq.path);
	return 0;
#else
	xasprintf(cause,
	    "state_store \"sqlite\": this server is built "
	    "without SQLite (state_store = \"memory\")");
	return -1;
#endif
}

void
state_free(void)
{
#ifdef STATE_SQLITE
	if (sq.running) {
		pthread_mutex_lock(&sq.lock);
		sq.stop = true;
		pthread_cond_signal(&sq.wake);
		pthread_mutex_unlock(&sq.lock);
		pthread_join(sq.thread, NULL);
		sq.running = false;
		while (sq.ops != NULL) { /* a write that kept failing */
			struct state_op *op = sq.ops;
			sq.ops = op->next;
			state_op_free(op);
		}
	}
	if (sq.db != NULL) {
		sqlite3_close(sq.db);
		sq.db = NULL;
	}
	free(sq.path);
	sq.path = NULL;
#endif
	json_decref(state_mirror);
	state_mirror = NULL;
}

/* Writes kind/key (text: JSON, NULL: deleted) to the embedded store,
 * and to a plugin's unless the change came from it. */
static void
state_write(const char *kind, const char *key, const char *text, bool to_plugin)
{
	if (to_plugin && state_plugin_set && state_plugin.put != NULL)
		state_plugin.put(state_plugin.arg, kind, key, text);
#ifdef STATE_SQLITE
	if (sq.running)
		state_sq_put(NULL, kind, key, text);
#else
	(void)kind;
	(void)key;
	(void)text;
#endif
}

void
state_put_new(const char *kind, const char *key, json_t *value)
{
	char *text = NULL;
	json_t *k = state_kind(kind, value != NULL);

	if (value == NULL) {
		if (k == NULL || json_object_get(k, key) == NULL)
			return;
		json_object_del(k, key);
	} else {
		text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
		json_object_set_new(k, key, value);
	}
	state_write(kind, key, text, true);
	free(text);
}

json_t *
state_get(const char *kind, const char *key)
{
	json_t *k = state_kind(kind, false);

	return k != NULL ? json_object_get(k, key) : NULL;
}

json_t *
state_all(const char *kind)
{
	return state_kind(kind, true);
}

void
state_remote(const char *kind, const char *key, json_t *value)
{
	json_t *k = state_kind(kind, true);
	char *text = NULL;

	if (value == NULL)
		json_object_del(k, key);
	else {
		text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
		json_object_set_new(k, key, value);
	}
	state_write(kind, key, text, false);
	free(text);
}

/* ---- The audit trail */

static uint64_t state_audit_n;

void
state_audit(const struct chat_actor *by, const char *action, const char *target,
    const struct room *r, const char *reason, uint64_t expires_s)
{
	char key[48], who[96];
	uint64_t now = loop_wall_ms();
	const char *kind;
	json_t *rec, *all;

	switch (by->kind) {
	case CHAT_ACTOR_CLIENT:
		kind = "user";
		snprintf(who, sizeof who, "%s",
		    by->client->account != NULL ? by->client->account
						: by->client->name);
		break;
	case CHAT_ACTOR_SCRIPT:
		kind = "script";
		snprintf(who, sizeof who, "%s", by->name ? by->name : "?");
		break;
	case CHAT_ACTOR_PLUGIN:
		kind = "plugin";
		snprintf(who, sizeof who, "%s", by->name ? by->name : "?");
		break;
	case CHAT_ACTOR_ADMIN:
		kind = "admin";
		snprintf(who, sizeof who, "%s", by->name ? by->name : "?");
		break;
	default:
		kind = "server";
		snprintf(who, sizeof who, "server");
		break;
	}
	rec = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s?, s:s?, s:I}", "time",
	    (json_int_t)(now / 1000), "actor", who, "actor_kind", kind,
	    "action", action, "target", target ? target : "", "room",
	    r ? r->name : NULL, "reason", reason, "expires",
	    (json_int_t)expires_s);
	log_info("audit", "%s %s: %s %s%s%s%s%s", kind, who, action,
	    target ? target : "", r ? " in " : "", r ? r->name : "",
	    reason ? ": " : "", reason ? reason : "");
	/* Keys sort in time order; the counter keeps a millisecond's
	 * records apart and in order. */
	snprintf(key, sizeof key, "%013llu-%010llu", (unsigned long long)now,
	    (unsigned long long)++state_audit_n);
	state_put_new("audit", key, rec);
	all = state_all("audit");
	if (json_object_size(all) > STATE_AUDIT_KEEP) {
		/* The oldest goes from memory and from the store. */
		const char *oldest = NULL, *k;
		json_t *v;
		json_object_foreach(all, k, v)
		{
			if (oldest == NULL || strcmp(k, oldest) < 0)
				oldest = k;
		}
		if (oldest != NULL) {
			char *o = xstrdup(oldest);
			state_put_new("audit", o, NULL);
			free(o);
		}
	}
}

static int
state_key_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *
state_audit_read(size_t n)
{
	json_t *all = state_all("audit"), *v, *out = json_array();
	const char **keys;
	const char *k;
	size_t count = 0, total = json_object_size(all), i = 0;

	keys = xcalloc(total + 1, sizeof *keys);
	json_object_foreach(all, k, v) keys[count++] = k;
	qsort(keys, count, sizeof *keys, state_key_cmp);
	i = count > n ? count - n : 0;
	for (; i < count; i++)
		json_array_append(out, json_object_get(all, keys[i]));
	free(keys);
	return out;
}
