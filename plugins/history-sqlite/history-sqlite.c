/*
 * history-sqlite.c: durable room history in SQLite, as a parleyd plugin.
 * It registers itself as the server's history store: every message
 * posted in a room is kept (room, seq, ts, sender, text, action), the
 * history request and the web client's scroll-back are answered from the
 * database, and a room's seq goes on from the last one stored, so a
 * restarted server never gives a seq twice.
 *
 * The event loop never waits for the disk. Appends go to an in-memory
 * queue; a worker thread takes the whole queue every flush interval (100
 * ms by default), writes it in one transaction and commits. Reads run on
 * the loop thread on a second connection (WAL mode lets it read while the
 * worker writes) and merge the messages still queued or being written,
 * so a read sees every message, flushed or not. Retention by count per
 * room and by age runs on the worker. fini flushes everything.
 *
 * Options (plugin_options["history-sqlite"] in parley.conf):
 *   path               database file (default $(localstatedir)/lib/parley/
 *                      history.db; the directory must exist)
 *   retention_count    messages kept per room; 0 (default): all
 *   retention_days     days a message is kept; 0 (default): forever
 *   flush_interval_ms  longest a message waits in memory: 100
 *   max_pending        messages queued before new ones are dropped (and
 *                      counted) rather than grow memory: 100000
 *   synchronous        "normal" (default: a power cut may lose the last
 *                      commits, a crash of parleyd loses nothing flushed)
 *                      or "full"
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "parley/plugin.h"

#ifndef PARLEY_STATEDIR
#define PARLEY_STATEDIR "/var/lib/parley"
#endif

#define HS_SCHEMA_VERSION 1
#define HS_WAKE_AT 1024        /* queued messages that wake the worker early */
#define HS_RETENTION_MS 60000  /* age retention pass interval */
#define HS_BUSY_MS 5000        /* the writer may wait; it has a thread */
#define HS_READ_BUSY_MS 100    /* the loop may not (WAL readers rarely wait) */
#define HS_DAY_MS (86400ull * 1000)

/* One queued message; room, sender and text follow it, NUL-terminated. */
struct hs_entry {
	struct hs_entry *next;
	uint64_t seq;
	uint64_t ts;
	size_t room_len;
	size_t sender_len;
	size_t text_len;
	bool action;
	char data[];
};

struct hs_queue {
	struct hs_entry *head;
	struct hs_entry *tail;
	size_t n;
};

/* Highest seq per room in one batch (for the rooms table). */
struct hs_room_max {
	const char *room;
	size_t len;
	uint64_t seq;
};

static struct {
	const struct parley_host *host;
	parley_ctx *ctx;
	/* options */
	char *path;
	int64_t retention_count;
	int64_t retention_days;
	int64_t flush_ms;
	int64_t max_pending;
	bool sync_full;
	/* the loop thread's connection and statements */
	sqlite3 *rdb;
	sqlite3_stmt *q_read;
	sqlite3_stmt *q_max_seq;
	sqlite3_stmt *q_room_seq;
	/* the worker's connection */
	sqlite3 *wdb;
	pthread_t worker;
	bool worker_started;
	uint64_t timer;
	/* shared with the worker, under lock */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct hs_queue pending;  /* appended, not taken yet */
	struct hs_queue inflight; /* being written by the worker */
	bool stopping;
	uint64_t written;
	uint64_t batches;
	uint64_t failed;
	uint64_t dropped;
	uint64_t deleted;
	char *error; /* the worker's last error, for the loop to log */
	/* loop thread only */
	uint64_t dropped_logged;
} hs;

/* ---------------------------------------------------------------------
 * Both threads
 */

static void
hs_queue_push(struct hs_queue *q, struct hs_entry *e)
{
	e->next = NULL;
	if (q->tail != NULL)
		q->tail->next = e;
	else
		q->head = e;
	q->tail = e;
	q->n++;
}

static void
hs_queue_free(struct hs_queue *q)
{
	while (q->head != NULL) {
		struct hs_entry *e = q->head;
		q->head = e->next;
		free(e);
	}
	q->tail = NULL;
	q->n = 0;
}

static const char *
hs_room(const struct hs_entry *e)
{
	return e->data;
}

static const char *
hs_sender(const struct hs_entry *e)
{
	return e->data + e->room_len + 1;
}

static const char *
hs_text(const struct hs_entry *e)
{
	return e->data + e->room_len + 1 + e->sender_len + 1;
}

static bool
hs_same_room(const struct hs_entry *e, const char *room, size_t len)
{
	return e->room_len == len && memcmp(hs_room(e), room, len) == 0;
}

static uint64_t
hs_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* sqlite integers are signed: UINT64_MAX (no bound) becomes INT64_MAX. */
static sqlite3_int64
hs_int(uint64_t v)
{
	return v > INT64_MAX ? INT64_MAX : (sqlite3_int64)v;
}

static int
hs_exec(sqlite3 *db, const char *sql, char **why)
{
	char *err = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &err) == SQLITE_OK)
		return 0;
	if (why != NULL) {
		free(*why);
		*why = strdup(err ? err : sqlite3_errmsg(db));
	}
	sqlite3_free(err);
	return -1;
}

/* ---------------------------------------------------------------------
 * The worker thread: never calls the host.
 */

/* Keeps the worker's last error for the loop thread to log. */
static void
hs_worker_error(const char *what, sqlite3 *db)
{
	char buf[512];

	snprintf(buf, sizeof buf, "%s: %s", what, sqlite3_errmsg(db));
	pthread_mutex_lock(&hs.lock);
	free(hs.error);
	hs.error = strdup(buf);
	pthread_mutex_unlock(&hs.lock);
}

struct hs_writer {
	sqlite3_stmt *insert;
	sqlite3_stmt *room_seq;
	sqlite3_stmt *trim;
	sqlite3_stmt *expire;
	struct hs_room_max *rooms;
	size_t nrooms;
	size_t cap;
};

static void
hs_note_room(struct hs_writer *w, const struct hs_entry *e)
{
	for (size_t i = 0; i < w->nrooms; i++) {
		if (w->rooms[i].len == e->room_len &&
		    memcmp(w->rooms[i].room, hs_room(e), e->room_len) == 0) {
			if (e->seq > w->rooms[i].seq)
				w->rooms[i].seq = e->seq;
			return;
		}
	}
	if (w->nrooms == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 16;
		struct hs_room_max *v = realloc(w->rooms, cap * sizeof *v);
		if (v == NULL)
			return; /* the seq is in messages too */
		w->rooms = v;
		w->cap = cap;
	}
	w->rooms[w->nrooms].room = hs_room(e);
	w->rooms[w->nrooms].len = e->room_len;
	w->rooms[w->nrooms].seq = e->seq;
	w->nrooms++;
}

/* Writes the inflight queue in one transaction. The queue is not
 * touched by anyone else while the worker holds it. */
static void
hs_write_batch(struct hs_writer *w, const struct hs_queue *q)
{
	uint64_t ok = 0, bad = 0, trimmed = 0;

	w->nrooms = 0;
	if (hs_exec(hs.wdb, "BEGIN IMMEDIATE", NULL) == -1) {
		hs_worker_error("begin", hs.wdb);
		pthread_mutex_lock(&hs.lock);
		hs.failed += q->n;
		pthread_mutex_unlock(&hs.lock);
		return;
	}
	for (const struct hs_entry *e = q->head; e != NULL; e = e->next) {
		sqlite3_stmt *s = w->insert;
		sqlite3_bind_text(s, 1, hs_room(e), (int)e->room_len,
		    SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, hs_int(e->seq));
		sqlite3_bind_int64(s, 3, hs_int(e->ts));
		sqlite3_bind_text(s, 4, hs_sender(e), (int)e->sender_len,
		    SQLITE_STATIC);
		sqlite3_bind_text(s, 5, hs_text(e), (int)e->text_len,
		    SQLITE_STATIC);
		sqlite3_bind_int(s, 6, e->action ? 1 : 0);
		if (sqlite3_step(s) == SQLITE_DONE)
			ok++;
		else {
			bad++;
			hs_worker_error("insert", hs.wdb);
		}
		sqlite3_reset(s);
		hs_note_room(w, e);
	}
	for (size_t i = 0; i < w->nrooms; i++) {
		sqlite3_stmt *s = w->room_seq;
		sqlite3_bind_text(s, 1, w->rooms[i].room, (int)w->rooms[i].len,
		    SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, hs_int(w->rooms[i].seq));
		if (sqlite3_step(s) != SQLITE_DONE)
			hs_worker_error("room seq", hs.wdb);
		sqlite3_reset(s);
		/* Count retention: keep the newest retention_count seqs. */
		if (hs.retention_count > 0 &&
		    w->rooms[i].seq > (uint64_t)hs.retention_count) {
			s = w->trim;
			sqlite3_bind_text(s, 1, w->rooms[i].room,
			    (int)w->rooms[i].len, SQLITE_STATIC);
			sqlite3_bind_int64(s, 2, hs_int(w->rooms[i].seq -
			    (uint64_t)hs.retention_count));
			if (sqlite3_step(s) != SQLITE_DONE)
				hs_worker_error("retention", hs.wdb);
			else
				trimmed += (uint64_t)sqlite3_changes(hs.wdb);
			sqlite3_reset(s);
		}
	}
	if (hs_exec(hs.wdb, "COMMIT", NULL) == -1) {
		hs_worker_error("commit", hs.wdb);
		hs_exec(hs.wdb, "ROLLBACK", NULL);
		bad += ok;
		ok = trimmed = 0;
	}
	pthread_mutex_lock(&hs.lock);
	hs.deleted += trimmed;
	hs.written += ok;
	hs.failed += bad;
	hs.batches++;
	pthread_mutex_unlock(&hs.lock);
}

static void
hs_expire(struct hs_writer *w)
{
	uint64_t cutoff, now = hs_now_ms();
	int n;

	if (hs.retention_days <= 0 ||
	    (uint64_t)hs.retention_days * HS_DAY_MS >= now)
		return;
	cutoff = now - (uint64_t)hs.retention_days * HS_DAY_MS;
	sqlite3_bind_int64(w->expire, 1, hs_int(cutoff));
	if (sqlite3_step(w->expire) != SQLITE_DONE)
		hs_worker_error("age retention", hs.wdb);
	sqlite3_reset(w->expire);
	n = sqlite3_changes(hs.wdb);
	pthread_mutex_lock(&hs.lock);
	hs.deleted += (uint64_t)n;
	pthread_mutex_unlock(&hs.lock);
}

static bool
hs_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **s)
{
	return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, s,
	    NULL) == SQLITE_OK;
}

static void *
hs_worker_main(void *arg)
{
	struct hs_writer w = { 0 };
	struct hs_queue done;
	uint64_t next_expire = 0;

	if (!hs_prepare(hs.wdb, "INSERT INTO messages (room, seq, ts, "
	    "sender, text, action) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	    &w.insert) ||
	    !hs_prepare(hs.wdb, "INSERT INTO rooms (room, last_seq) VALUES "
	    "(?1, ?2) ON CONFLICT (room) DO UPDATE SET last_seq = "
	    "max(last_seq, excluded.last_seq)", &w.room_seq) ||
	    !hs_prepare(hs.wdb, "DELETE FROM messages WHERE room = ?1 AND "
	    "seq <= ?2", &w.trim) ||
	    !hs_prepare(hs.wdb, "DELETE FROM messages WHERE ts < ?1",
	    &w.expire))
		hs_worker_error("prepare", hs.wdb);

	pthread_mutex_lock(&hs.lock);
	for (;;) {
		struct timespec until;
		uint64_t ns;

		/* Wait out the flush interval (a batch), unless the queue
		 * grows large or we are told to stop. */
		clock_gettime(CLOCK_MONOTONIC, &until);
		ns = (uint64_t)until.tv_nsec + (uint64_t)hs.flush_ms * 1000000;
		until.tv_sec += (time_t)(ns / 1000000000);
		until.tv_nsec = (long)(ns % 1000000000);
		while (!hs.stopping && hs.pending.n < HS_WAKE_AT) {
			if (pthread_cond_timedwait(&hs.wake, &hs.lock,
			    &until) == ETIMEDOUT)
				break;
		}
		hs.inflight = hs.pending;
		memset(&hs.pending, 0, sizeof hs.pending);
		pthread_mutex_unlock(&hs.lock);

		if (hs.inflight.n > 0 && w.insert != NULL)
			hs_write_batch(&w, &hs.inflight);
		else if (hs.inflight.n > 0) {
			pthread_mutex_lock(&hs.lock);
			hs.failed += hs.inflight.n;
			pthread_mutex_unlock(&hs.lock);
		}
		if (hs.retention_days > 0 && w.expire != NULL &&
		    hs_now_ms() >= next_expire) {
			hs_expire(&w);
			next_expire = hs_now_ms() + HS_RETENTION_MS;
		}

		/* Readers stop seeing the batch under the lock; the memory
		 * is freed after, without holding up an append. */
		pthread_mutex_lock(&hs.lock);
		done = hs.inflight;
		memset(&hs.inflight, 0, sizeof hs.inflight);
		pthread_mutex_unlock(&hs.lock);
		hs_queue_free(&done);
		pthread_mutex_lock(&hs.lock);
		if (hs.stopping && hs.pending.n == 0)
			break;
	}
	pthread_mutex_unlock(&hs.lock);
	sqlite3_finalize(w.insert);
	sqlite3_finalize(w.room_seq);
	sqlite3_finalize(w.trim);
	sqlite3_finalize(w.expire);
	free(w.rooms);
	return NULL;
}

/* ---------------------------------------------------------------------
 * The history store, on the loop thread
 */

static int
hs_append(parley_ctx *ctx, const struct parley_history_msg *m, void *arg)
{
	size_t size = sizeof(struct hs_entry) + m->room_len + 1 +
	    m->sender_len + 1 + m->text_len + 1;
	struct hs_entry *e;
	char *p;

	pthread_mutex_lock(&hs.lock);
	if (hs.pending.n >= (size_t)hs.max_pending) {
		/* The disk cannot keep up: drop rather than grow. */
		hs.dropped++;
		pthread_mutex_unlock(&hs.lock);
		return -1;
	}
	pthread_mutex_unlock(&hs.lock);

	if ((e = malloc(size)) == NULL)
		return -1;
	e->seq = m->seq;
	e->ts = m->ts;
	e->room_len = m->room_len;
	e->sender_len = m->sender_len;
	e->text_len = m->text_len;
	e->action = (m->flags & PARLEY_MSG_ACTION) != 0;
	p = e->data;
	memcpy(p, m->room, m->room_len);
	p[m->room_len] = '\0';
	p += m->room_len + 1;
	memcpy(p, m->sender, m->sender_len);
	p[m->sender_len] = '\0';
	p += m->sender_len + 1;
	memcpy(p, m->text, m->text_len);
	p[m->text_len] = '\0';

	pthread_mutex_lock(&hs.lock);
	hs_queue_push(&hs.pending, e);
	if (hs.pending.n == HS_WAKE_AT)
		pthread_cond_signal(&hs.wake);
	pthread_mutex_unlock(&hs.lock);
	return 0;
}

static void
hs_emit_entry(parley_ctx *ctx, parley_history_sink *sink,
    const struct hs_entry *e)
{
	struct parley_history_msg m;

	memset(&m, 0, sizeof m);
	m.size = sizeof m;
	m.flags = e->action ? PARLEY_MSG_ACTION : 0;
	m.room = hs_room(e);
	m.room_len = e->room_len;
	m.seq = e->seq;
	m.ts = e->ts;
	m.sender = hs_sender(e);
	m.sender_len = e->sender_len;
	m.text = hs_text(e);
	m.text_len = e->text_len;
	hs.host->history_emit(ctx, sink, &m);
}

/*
 * Calls fn for the queued messages of room with seq < before (written or
 * not yet: all newer than anything else in the database), oldest first.
 * Called with the lock held.
 */
static void
hs_queued_each(const char *room, size_t len, uint64_t before,
    void (*fn)(const struct hs_entry *e, void *arg), void *arg)
{
	const struct hs_queue *qs[2] = { &hs.inflight, &hs.pending };

	for (int i = 0; i < 2; i++) {
		for (const struct hs_entry *e = qs[i]->head; e != NULL;
		    e = e->next) {
			if (e->seq < before && hs_same_room(e, room, len))
				fn(e, arg);
		}
	}
}

struct hs_scan {
	size_t count;
	uint64_t lowest;
	size_t skip;
	parley_ctx *ctx;
	parley_history_sink *sink;
};

static void
hs_scan_count(const struct hs_entry *e, void *arg)
{
	struct hs_scan *s = arg;

	if (s->count++ == 0)
		s->lowest = e->seq;
}

static void
hs_scan_emit(const struct hs_entry *e, void *arg)
{
	struct hs_scan *s = arg;

	if (s->skip > 0) {
		s->skip--;
		return;
	}
	hs_emit_entry(s->ctx, s->sink, e);
}

static int
hs_read(parley_ctx *ctx, const char *room, size_t room_len, uint64_t before,
    uint32_t limit, parley_history_sink *sink, void *arg)
{
	struct hs_scan scan = { .ctx = ctx, .sink = sink };
	sqlite3_stmt *s = hs.q_read;
	size_t take;
	uint64_t bound = before;
	int rc = 0, step;

	if (limit == 0)
		return 0;
	/*
	 * Under the lock throughout: the worker may commit its batch at any
	 * moment, but frees it only under the lock, so every message is
	 * either counted here (and excluded from the query by its seq) or
	 * only in the database.
	 */
	pthread_mutex_lock(&hs.lock);
	hs_queued_each(room, room_len, before, hs_scan_count, &scan);
	take = scan.count < limit ? scan.count : limit;
	if (scan.count > 0)
		bound = scan.lowest;
	if (take < limit) {
		sqlite3_bind_text(s, 1, room, (int)room_len, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, hs_int(bound));
		sqlite3_bind_int64(s, 3, (sqlite3_int64)(limit - take));
		while ((step = sqlite3_step(s)) == SQLITE_ROW) {
			struct parley_history_msg m;
			memset(&m, 0, sizeof m);
			m.size = sizeof m;
			m.seq = (uint64_t)sqlite3_column_int64(s, 0);
			m.ts = (uint64_t)sqlite3_column_int64(s, 1);
			m.sender = (const char *)sqlite3_column_text(s, 2);
			m.sender_len = (size_t)sqlite3_column_bytes(s, 2);
			m.text = (const char *)sqlite3_column_text(s, 3);
			m.text_len = (size_t)sqlite3_column_bytes(s, 3);
			m.flags = sqlite3_column_int(s, 4) ? PARLEY_MSG_ACTION :
			    0;
			if (m.sender != NULL && m.text != NULL)
				hs.host->history_emit(ctx, sink, &m);
		}
		if (step != SQLITE_DONE) {
			hs.host->log_printf(ctx, PARLEY_LOG_ERROR,
			    "history read: %s", sqlite3_errmsg(hs.rdb));
			rc = -1;
		}
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
	}
	if (rc == 0 && take > 0) {
		scan.skip = scan.count - take;
		hs_queued_each(room, room_len, before, hs_scan_emit, &scan);
	}
	pthread_mutex_unlock(&hs.lock);
	return rc;
}

static void
hs_scan_max(const struct hs_entry *e, void *arg)
{
	uint64_t *max = arg;

	if (e->seq > *max)
		*max = e->seq;
}

static uint64_t
hs_query_seq(sqlite3_stmt *s, const char *room, size_t len)
{
	uint64_t v = 0;

	sqlite3_bind_text(s, 1, room, (int)len, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW &&
	    sqlite3_column_type(s, 0) != SQLITE_NULL)
		v = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return v;
}

static uint64_t
hs_last_seq(parley_ctx *ctx, const char *room, size_t len, void *arg)
{
	uint64_t max = 0, v;

	pthread_mutex_lock(&hs.lock);
	hs_queued_each(room, len, PARLEY_HISTORY_NO_BEFORE, hs_scan_max, &max);
	pthread_mutex_unlock(&hs.lock);
	/* messages keeps the seqs, rooms remembers them past retention. */
	if ((v = hs_query_seq(hs.q_max_seq, room, len)) > max)
		max = v;
	if ((v = hs_query_seq(hs.q_room_seq, room, len)) > max)
		max = v;
	return max;
}

/* Once a second on the loop: what the worker cannot say itself. */
static void
hs_on_timer(parley_ctx *ctx, uint64_t id, void *arg)
{
	uint64_t written, batches, failed, dropped, deleted;
	size_t pending;
	char *error;

	pthread_mutex_lock(&hs.lock);
	written = hs.written;
	batches = hs.batches;
	failed = hs.failed;
	dropped = hs.dropped;
	deleted = hs.deleted;
	pending = hs.pending.n + hs.inflight.n;
	error = hs.error;
	hs.error = NULL;
	pthread_mutex_unlock(&hs.lock);

	if (error != NULL) {
		hs.host->log_printf(ctx, PARLEY_LOG_ERROR, "%s (%llu messages "
		    "not stored so far)", error, (unsigned long long)failed);
		free(error);
	}
	if (dropped > hs.dropped_logged) {
		hs.host->log_printf(ctx, PARLEY_LOG_WARN, "%llu messages "
		    "dropped from history: over %lld waiting for the disk",
		    (unsigned long long)(dropped - hs.dropped_logged),
		    (long long)hs.max_pending);
		hs.dropped_logged = dropped;
	}
	hs.host->counter_set(ctx, "messages_written", (int64_t)written);
	hs.host->counter_set(ctx, "batches", (int64_t)batches);
	hs.host->counter_set(ctx, "messages_failed", (int64_t)failed);
	hs.host->counter_set(ctx, "messages_dropped", (int64_t)dropped);
	hs.host->counter_set(ctx, "messages_expired", (int64_t)deleted);
	hs.host->counter_set(ctx, "messages_pending", (int64_t)pending);
}

/* ---------------------------------------------------------------------
 * Start and stop
 */

static const char hs_schema[] =
    "CREATE TABLE IF NOT EXISTS messages ("
    " room TEXT NOT NULL,"
    " seq INTEGER NOT NULL,"
    " ts INTEGER NOT NULL,"
    " sender TEXT NOT NULL,"
    " text TEXT NOT NULL,"
    " action INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (room, seq));"
    "CREATE INDEX IF NOT EXISTS messages_ts ON messages (ts);"
    "CREATE TABLE IF NOT EXISTS rooms ("
    " room TEXT PRIMARY KEY NOT NULL,"
    " last_seq INTEGER NOT NULL);";

static int
hs_options(parley_ctx *ctx)
{
	const struct parley_host *h = hs.host;
	const char *path = NULL, *sync = "normal", *state = PARLEY_STATEDIR;
	static char fallback[4096];

	hs.flush_ms = 100;
	hs.max_pending = 100000;
	/* Default: history.db in the server's state directory. */
	if (h->option_string(ctx, "state_dir", &state) == -1)
		return -1;
	if (h->option_string(ctx, "path", &path) == -1)
		return -1;
	if (path == NULL) {
		snprintf(fallback, sizeof fallback, "%s/history.db", state);
		path = fallback;
	}
	if (
	    h->option_int(ctx, "retention_count", &hs.retention_count) == -1 ||
	    h->option_int(ctx, "retention_days", &hs.retention_days) == -1 ||
	    h->option_int(ctx, "flush_interval_ms", &hs.flush_ms) == -1 ||
	    h->option_int(ctx, "max_pending", &hs.max_pending) == -1 ||
	    h->option_string(ctx, "synchronous", &sync) == -1)
		return -1;
	if (*path == '\0' || hs.retention_count < 0 || hs.retention_days < 0 ||
	    hs.retention_days > 100000 || hs.flush_ms < 1 ||
	    hs.flush_ms > 60000 || hs.max_pending < 1) {
		h->log_printf(ctx, PARLEY_LOG_ERROR, "bad options: path must "
		    "not be empty, retention_count and retention_days at "
		    "least 0, flush_interval_ms 1 to 60000, max_pending at "
		    "least 1");
		return -1;
	}
	if (strcmp(sync, "normal") != 0 && strcmp(sync, "full") != 0) {
		h->log_printf(ctx, PARLEY_LOG_ERROR, "option synchronous must "
		    "be \"normal\" or \"full\"");
		return -1;
	}
	hs.sync_full = strcmp(sync, "full") == 0;
	if ((hs.path = strdup(path)) == NULL)
		return -1;
	return 0;
}

static int
hs_open(parley_ctx *ctx)
{
	const struct parley_host *h = hs.host;
	char *why = NULL;
	int version = -1;
	sqlite3_stmt *s;

	if (sqlite3_threadsafe() == 0) {
		h->log_printf(ctx, PARLEY_LOG_ERROR, "this SQLite is built "
		    "without thread support");
		return -1;
	}
	if (sqlite3_open_v2(hs.path, &hs.wdb, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		h->log_printf(ctx, PARLEY_LOG_ERROR, "cannot open %s: %s "
		    "(does its directory exist and may parleyd write it?)",
		    hs.path, hs.wdb ? sqlite3_errmsg(hs.wdb) : "no memory");
		return -1;
	}
	sqlite3_busy_timeout(hs.wdb, HS_BUSY_MS);
	if (sqlite3_prepare_v2(hs.wdb, "PRAGMA user_version", -1, &s,
	    NULL) == SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW)
			version = sqlite3_column_int(s, 0);
		sqlite3_finalize(s);
	}
	if (version < 0) {
		h->log_printf(ctx, PARLEY_LOG_ERROR, "%s: %s", hs.path,
		    sqlite3_errmsg(hs.wdb));
		return -1;
	}
	if (version > HS_SCHEMA_VERSION) {
		h->log_printf(ctx, PARLEY_LOG_ERROR, "%s has schema version "
		    "%d, newer than this plugin's %d", hs.path, version,
		    HS_SCHEMA_VERSION);
		return -1;
	}
	if (sqlite3_prepare_v2(hs.wdb, "PRAGMA journal_mode = WAL", -1, &s,
	    NULL) == SQLITE_OK) {
		/* Some file systems cannot do WAL: it works, but writes
		 * then block readers. */
		if (sqlite3_step(s) != SQLITE_ROW || sqlite3_column_text(s, 0) ==
		    NULL || strcmp((const char *)sqlite3_column_text(s, 0),
		    "wal") != 0)
			h->log_printf(ctx, PARLEY_LOG_WARN, "%s: WAL mode not "
			    "available; reads may wait for writes", hs.path);
		sqlite3_finalize(s);
	}
	if (hs_exec(hs.wdb, hs.sync_full ? "PRAGMA synchronous = FULL" :
	    "PRAGMA synchronous = NORMAL", &why) == -1 ||
	    hs_exec(hs.wdb, hs_schema, &why) == -1 ||
	    hs_exec(hs.wdb, "PRAGMA user_version = 1", &why) == -1) {
		h->log_printf(ctx, PARLEY_LOG_ERROR, "%s: %s", hs.path, why);
		free(why);
		return -1;
	}

	if (sqlite3_open_v2(hs.path, &hs.rdb, SQLITE_OPEN_READONLY |
	    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
	    (sqlite3_busy_timeout(hs.rdb, HS_READ_BUSY_MS),
	    !hs_prepare(hs.rdb, "SELECT seq, ts, sender, text, action FROM "
	    "(SELECT seq, ts, sender, text, action FROM messages WHERE "
	    "room = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3) ORDER BY seq",
	    &hs.q_read)) ||
	    !hs_prepare(hs.rdb, "SELECT max(seq) FROM messages WHERE room = ?1",
	    &hs.q_max_seq) ||
	    !hs_prepare(hs.rdb, "SELECT last_seq FROM rooms WHERE room = ?1",
	    &hs.q_room_seq)) {
		h->log_printf(ctx, PARLEY_LOG_ERROR, "%s: %s", hs.path,
		    hs.rdb ? sqlite3_errmsg(hs.rdb) : "no memory");
		return -1;
	}
	return 0;
}

static void
hs_close(void)
{
	sqlite3_finalize(hs.q_read);
	sqlite3_finalize(hs.q_max_seq);
	sqlite3_finalize(hs.q_room_seq);
	sqlite3_close(hs.rdb);
	/* The last connection to close checkpoints the WAL. */
	sqlite3_close(hs.wdb);
	hs.q_read = hs.q_max_seq = hs.q_room_seq = NULL;
	hs.rdb = hs.wdb = NULL;
}

static void
hs_stop_worker(void)
{
	if (!hs.worker_started)
		return;
	pthread_mutex_lock(&hs.lock);
	hs.stopping = true;
	pthread_cond_signal(&hs.wake);
	pthread_mutex_unlock(&hs.lock);
	pthread_join(hs.worker, NULL);
	hs.worker_started = false;
}

static void
hs_fini(parley_ctx *ctx)
{
	uint64_t written, failed;

	hs_stop_worker(); /* writes whatever is still queued */
	written = hs.written;
	failed = hs.failed;
	if (hs.error != NULL)
		hs.host->log_printf(ctx, PARLEY_LOG_ERROR, "%s", hs.error);
	if (hs.wdb != NULL)
		hs.host->log_printf(ctx, PARLEY_LOG_INFO, "closed %s: %llu "
		    "messages written, %llu failed", hs.path,
		    (unsigned long long)written, (unsigned long long)failed);
	hs_close();
	hs_queue_free(&hs.pending);
	free(hs.error);
	free(hs.path);
	pthread_cond_destroy(&hs.wake);
	pthread_mutex_destroy(&hs.lock);
	memset(&hs, 0, sizeof hs);
}

static int
hs_init(parley_ctx *ctx, const struct parley_host *host)
{
	struct parley_history_store store;
	pthread_condattr_t ca;

	memset(&hs, 0, sizeof hs);
	hs.host = host;
	hs.ctx = ctx;
	pthread_mutex_init(&hs.lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&hs.wake, &ca);
	pthread_condattr_destroy(&ca);
	if (hs_options(ctx) == -1)
		goto fail;
	/* --plugin-info: say what we register, touch no file. */
	if (!(host->flags & PARLEY_HOST_INFO_ONLY)) {
		if (hs_open(ctx) == -1)
			goto fail;
		if (pthread_create(&hs.worker, NULL, hs_worker_main, NULL) !=
		    0) {
			host->log_printf(ctx, PARLEY_LOG_ERROR, "cannot start "
			    "the writer thread");
			goto fail;
		}
		hs.worker_started = true;
	}

	memset(&store, 0, sizeof store);
	store.size = sizeof store;
	store.append = hs_append;
	store.read = hs_read;
	store.last_seq = hs_last_seq;
	if (host->history_store_register(ctx, &store) != 0)
		goto fail;
	hs.timer = host->timer_add(ctx, 1000, 1000, hs_on_timer, NULL);
	if (!(host->flags & PARLEY_HOST_INFO_ONLY))
		host->log_printf(ctx, PARLEY_LOG_INFO, "history in %s (WAL, "
		    "flush every %lld ms, keep %lld per room, %lld days)",
		    hs.path, (long long)hs.flush_ms,
		    (long long)hs.retention_count,
		    (long long)hs.retention_days);
	return 0;
fail:
	hs_fini(ctx);
	return -1;
}

PARLEY_PLUGIN_DEFINE("history-sqlite", PACKAGE_VERSION,
    "durable room history in SQLite (WAL, batched writes off the loop)",
    hs_init, hs_fini);
