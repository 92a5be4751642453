/*
 * history-sqlite.c: durable room history in SQLite, as a parleyd plugin.
 * It registers itself as the server's history store: every message
 * posted in a room is kept (room, seq, ts, sender, text, action), the
 * history request and the web client's scroll-back are answered from the
 * database, and a room's seq goes on from the database, so a restarted
 * server never gives a seq twice, after a crash too.
 *
 * The event loop never waits for the disk to write a message. Appends go
 * to an in-memory queue; a worker thread takes the whole queue every
 * flush interval (100 ms by default), writes it in one transaction and
 * commits. Reads run on the loop thread on a second connection (WAL mode
 * lets it read while the worker writes) and merge the messages still
 * queued or being written, so a read sees every message, flushed or not.
 * Retention by count per room and by age runs on the worker. fini
 * flushes everything.
 *
 * A deleted message (tombstone, since ABI 1.4) loses its text for good:
 * one still queued is overwritten in the queue; one being written or on
 * disk is overwritten in its row (text '', flag PARLEY_MSG_DELETED) by
 * the worker, after the batch that holds it. The writer runs with
 * secure_delete, so the page space the old text held is zeroed rather
 * than left as free space in the page, and after a tombstone the WAL is
 * checkpointed and truncated, so no old frame keeps the text either.
 *
 * Seqs are reserved ahead, as PostgreSQL logs sequence values ahead of
 * use: rooms.last_seq is not the last seq written but one no seq given
 * ever exceeds. The worker raises it by seq_reserve at a time, before a
 * room has used half of what it has, and append (called before the
 * message goes to anyone) waits for the raise in the rare case it has
 * not landed yet. last_seq answers the reservation, so after a crash the
 * room goes on past anything that may have been delivered: a gap, never
 * a repeat. A clean stop lowers the reservation back to the last seq
 * given, so a restart leaves no gap.
 *
 * A disk that cannot be written (full, read-only, failing) never loses
 * what the queue holds: the batch stays in memory (up to max_pending
 * messages and max_pending_bytes), reads still see it, and the worker
 * retries every second, reopening the database, until a write goes
 * through. Meanwhile the plugin reports degraded health with the reason,
 * counts it, and logs it every HS_LOG_MS. A database that cannot be
 * opened for writing at start-up (full or read-only state directory) is
 * read as far as it can be and the server starts all the same, keeping
 * history in memory until the database can be written. Seqs given past
 * a room's reservation while nothing can be written are counted
 * (seq_unreserved): a crash before the disk recovers may give them again.
 *
 * Options (plugin_options["history-sqlite"] in parley.conf):
 *   path               database file (default $(localstatedir)/lib/parley/
 *                      history.db; the directory must exist)
 *   retention_count    messages kept per room; 0 (default): all
 *   retention_days     days a message is kept; 0 (default): forever
 *   flush_interval_ms  longest a message waits in memory: 100
 *   max_pending        messages held in memory, waiting for the disk,
 *                      before new ones are left out of history (and
 *                      counted): 100000
 *   max_pending_bytes  the same bound in bytes: 67108864 (64 MiB)
 *   seq_reserve        seqs reserved ahead per room, the largest gap a
 *                      crash leaves: 1000
 *   synchronous        "normal" (default: a power cut may lose the last
 *                      commits, a crash of parleyd loses nothing flushed;
 *                      seq reservations are synced either way) or "full"
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
#define HS_RETRY_MS 1000       /* a database that failed is tried this often */
#define HS_LOG_MS 10000        /* and the failure logged this often */
#define HS_RESERVE_WAIT_MS 1000 /* longest append waits for a reservation */
#define HS_DAY_MS (86400ull * 1000)

/* One queued message; room, sender and text follow it, NUL-terminated. */
struct hs_entry {
	struct hs_entry *next;
	uint64_t seq;
	uint64_t ts;
	size_t size;           /* of the whole allocation */
	size_t room_len;
	size_t sender_len;
	size_t text_len;
	bool action;
	bool deleted;          /* tombstoned while queued: the text is gone */
	bool scrub;            /* tombstoned while being written (lock) */
	char data[];
};

/* A message to tombstone in the database; its room follows. */
struct hs_tomb {
	struct hs_tomb *next;
	uint64_t seq;
	size_t room_len;
	char room[];
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

/*
 * A room's seq reservation. Created on the loop thread and never freed
 * before fini, so the worker may keep a pointer to one; name and len
 * never change.
 */
struct hs_seq {
	struct hs_seq *next;   /* hash chain (loop thread) */
	struct hs_seq *todo;   /* in hs.todo (under lock) */
	uint64_t durable;      /* rooms.last_seq known committed (lock) */
	uint64_t want;         /* the reservation asked for (lock) */
	uint64_t given;        /* highest seq the server may have given (loop) */
	bool queued;           /* in hs.todo (lock) */
	size_t len;
	char name[];
};

/* A reservation the worker writes: the room, and how far. */
struct hs_want {
	struct hs_seq *s;
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
	int64_t max_pending_bytes;
	int64_t seq_reserve;
	bool sync_full;
	/* the loop thread's connection and statements (NULL: none could be
	 * opened, history comes from memory only) */
	sqlite3 *rdb;
	sqlite3_stmt *q_read;
	sqlite3_stmt *q_read_after; /* paging forward (since ABI 1.4) */
	sqlite3_stmt *q_max_seq;
	sqlite3_stmt *q_room_seq;
	/* the worker's connection: NULL while the database cannot be opened
	 * for writing (the worker retries); used by one thread at a time */
	sqlite3 *wdb;
	bool wal_missing;
	pthread_t worker;
	bool worker_started;
	uint64_t timer;
	/* seq reservations, by room (loop thread) */
	struct hs_seq **seq_tab;
	size_t seq_cap;
	size_t seq_n;
	/* shared with the worker, under lock */
	pthread_mutex_t lock;
	pthread_cond_t wake;      /* the worker has something to do */
	pthread_cond_t reserved;  /* the worker has tried a write */
	struct hs_queue pending;  /* appended, not taken yet */
	struct hs_queue inflight; /* being written, or kept after a failure */
	size_t queued_bytes;      /* of pending and inflight */
	struct hs_seq *todo;      /* reservations to write */
	struct hs_tomb *tombs;    /* tombstones to write */
	struct hs_tomb *tombs_taken; /* the worker's, being written */
	bool stopping;
	bool stalled;             /* append gave up waiting for the worker */
	bool failing;             /* the last write (or open) failed */
	char *fail_reason;
	uint64_t fail_since;      /* wall ms */
	uint64_t ready_gen;       /* bumped when the worker opens the db */
	uint64_t written;
	uint64_t batches;
	uint64_t failed;
	uint64_t dropped;
	uint64_t deleted;
	uint64_t tombstoned;      /* rows whose text was overwritten */
	uint64_t write_errors;
	uint64_t seq_waits;
	uint64_t seq_wait_us;     /* the loop's time waiting for them */
	uint64_t seq_unreserved;
	/* loop thread only */
	uint64_t dropped_logged;
	uint64_t ready_seen;
	uint64_t fail_logged_at;
	bool fail_reported;       /* health says degraded */
	bool fail_told;           /* start-up has said it loudly already */
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

/* Moves src to the end of dst: dst's messages are the older ones. */
static void
hs_queue_concat(struct hs_queue *dst, struct hs_queue *src)
{
	if (src->head == NULL)
		return;
	if (dst->tail != NULL)
		dst->tail->next = src->head;
	else
		dst->head = src->head;
	dst->tail = src->tail;
	dst->n += src->n;
	memset(src, 0, sizeof *src);
}

/* Frees the queue's messages; returns the bytes they held. */
static size_t
hs_queue_free(struct hs_queue *q)
{
	size_t bytes = 0;

	while (q->head != NULL) {
		struct hs_entry *e = q->head;
		q->head = e->next;
		bytes += e->size;
		/* A deleted text does not linger in freed memory. */
		if (e->scrub)
			explicit_bzero(e->data, e->size - sizeof *e);
		free(e);
	}
	q->tail = NULL;
	q->n = 0;
	return bytes;
}

static void
hs_tombs_free(struct hs_tomb *t)
{
	while (t != NULL) {
		struct hs_tomb *n = t->next;
		free(t);
		t = n;
	}
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

/* The CLOCK_MONOTONIC time ms from now, for pthread_cond_timedwait. */
static void
hs_deadline(struct timespec *until, int64_t ms)
{
	uint64_t ns;

	clock_gettime(CLOCK_MONOTONIC, until);
	ns = (uint64_t)until->tv_nsec + (uint64_t)ms * 1000000;
	until->tv_sec += (time_t)(ns / 1000000000);
	until->tv_nsec = (long)(ns % 1000000000);
}

/* sqlite integers are signed: UINT64_MAX (no bound) becomes INT64_MAX. */
static sqlite3_int64
hs_int(uint64_t v)
{
	return v > INT64_MAX ? INT64_MAX : (sqlite3_int64)v;
}

/* Replaces *why (may be NULL) with "what: SQLite's message". */
static void
hs_why(char **why, const char *what, sqlite3 *db)
{
	char buf[512];

	if (why == NULL)
		return;
	snprintf(buf, sizeof buf, "%s: %s", what, db != NULL ?
	    sqlite3_errmsg(db) : "out of memory");
	free(*why);
	*why = strdup(buf);
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

static bool
hs_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **s)
{
	return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, s,
	    NULL) == SQLITE_OK;
}

/* ---------------------------------------------------------------------
 * The worker thread: never calls the host.
 */

static int hs_open_writer(char **why, bool *fatal);

struct hs_writer {
	sqlite3_stmt *insert;
	sqlite3_stmt *tomb;
	bool checkpoint;       /* a tombstone's old frames are in the WAL */
	sqlite3_stmt *room_seq;
	sqlite3_stmt *trim;
	sqlite3_stmt *expire;
	struct hs_room_max *rooms;
	size_t nrooms;
	size_t cap;
	struct hs_want *wants;
	size_t nwants;
	size_t wcap;
};

static int
hs_writer_prepare(struct hs_writer *w, char **why)
{
	if (!hs_prepare(hs.wdb, "INSERT INTO messages (room, seq, ts, "
	    "sender, text, action) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	    &w->insert) ||
	    !hs_prepare(hs.wdb, "INSERT INTO rooms (room, last_seq) VALUES "
	    "(?1, ?2) ON CONFLICT (room) DO UPDATE SET last_seq = "
	    "max(last_seq, excluded.last_seq)", &w->room_seq) ||
	    !hs_prepare(hs.wdb, "DELETE FROM messages WHERE room = ?1 AND "
	    "seq <= ?2", &w->trim) ||
	    !hs_prepare(hs.wdb, "DELETE FROM messages WHERE ts < ?1",
	    &w->expire) ||
	    !hs_prepare(hs.wdb, "UPDATE messages SET text = '', action = 2 "
	    "WHERE room = ?1 AND seq = ?2 AND (action & 2) = 0", &w->tomb)) {
		hs_why(why, "prepare", hs.wdb);
		return -1;
	}
	return 0;
}

static void
hs_writer_finalize(struct hs_writer *w)
{
	sqlite3_finalize(w->insert);
	sqlite3_finalize(w->room_seq);
	sqlite3_finalize(w->trim);
	sqlite3_finalize(w->expire);
	sqlite3_finalize(w->tomb);
	w->insert = w->room_seq = w->trim = w->expire = w->tomb = NULL;
}

/* Closes the writer's connection, to open it afresh: after the disk
 * failed, a new connection is the surest way back. */
static void
hs_writer_close(struct hs_writer *w)
{
	hs_writer_finalize(w);
	sqlite3_close(hs.wdb);
	hs.wdb = NULL;
}

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

/* Raises rooms.last_seq of room to at least seq. */
static int
hs_raise_room(struct hs_writer *w, const char *room, size_t len,
    uint64_t seq)
{
	sqlite3_stmt *s = w->room_seq;
	int rc;

	sqlite3_bind_text(s, 1, room, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, hs_int(seq));
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/*
 * Writes the reservations in w->wants in a transaction of their own:
 * append may be waiting for one, and should not wait for a large batch
 * as well. It is synced to disk whatever the synchronous option says:
 * a power cut may cost the last messages, never a reservation (one
 * fsync per room per half a block). Returns 0 when committed, -1 with
 * *why set.
 */
static int
hs_write_wants(struct hs_writer *w, char **why)
{
	int rc = -1;

	if (w->nwants == 0)
		return 0;
	if (!hs.sync_full &&
	    hs_exec(hs.wdb, "PRAGMA synchronous = FULL", why) == -1)
		return -1;
	if (hs_exec(hs.wdb, "BEGIN IMMEDIATE", why) == -1)
		goto done;
	for (size_t i = 0; i < w->nwants; i++) {
		if (hs_raise_room(w, w->wants[i].s->name, w->wants[i].s->len,
		    w->wants[i].seq) == -1) {
			hs_why(why, "reserve seqs", hs.wdb);
			hs_exec(hs.wdb, "ROLLBACK", NULL);
			goto done;
		}
	}
	if (hs_exec(hs.wdb, "COMMIT", why) == 0)
		rc = 0;
	else
		hs_exec(hs.wdb, "ROLLBACK", NULL);
done:
	if (!hs.sync_full &&
	    hs_exec(hs.wdb, "PRAGMA synchronous = NORMAL", why) == -1)
		rc = -1;
	return rc;
}

/*
 * Writes the queue q in one transaction. Returns 0 when it is committed;
 * -1 with *why set when nothing is (the caller keeps q to try again). A
 * row the database refuses as a duplicate is counted and skipped: trying
 * it again would not help.
 */
static int
hs_write_batch(struct hs_writer *w, const struct hs_queue *q, char **why)
{
	uint64_t ok = 0, bad = 0, trimmed = 0;

	w->nrooms = 0;
	if (q->n == 0)
		return 0;
	if (hs_exec(hs.wdb, "BEGIN IMMEDIATE", why) == -1)
		return -1;
	for (const struct hs_entry *e = q->head; e != NULL; e = e->next) {
		sqlite3_stmt *s = w->insert;
		int rc;
		sqlite3_bind_text(s, 1, hs_room(e), (int)e->room_len,
		    SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, hs_int(e->seq));
		sqlite3_bind_int64(s, 3, hs_int(e->ts));
		sqlite3_bind_text(s, 4, hs_sender(e), (int)e->sender_len,
		    SQLITE_STATIC);
		sqlite3_bind_text(s, 5, hs_text(e), (int)e->text_len,
		    SQLITE_STATIC);
		sqlite3_bind_int(s, 6, e->deleted ? PARLEY_MSG_DELETED :
		    e->action ? PARLEY_MSG_ACTION : 0);
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		if (rc == SQLITE_DONE)
			ok++;
		else if (rc == SQLITE_CONSTRAINT)
			bad++;
		else {
			hs_why(why, "insert", hs.wdb);
			goto abort;
		}
		hs_note_room(w, e);
	}
	for (size_t i = 0; i < w->nrooms; i++) {
		if (hs_raise_room(w, w->rooms[i].room, w->rooms[i].len,
		    w->rooms[i].seq) == -1) {
			hs_why(why, "room seq", hs.wdb);
			goto abort;
		}
		/* Count retention: keep the newest retention_count seqs. */
		if (hs.retention_count > 0 &&
		    w->rooms[i].seq > (uint64_t)hs.retention_count) {
			sqlite3_stmt *s = w->trim;
			int rc;
			sqlite3_bind_text(s, 1, w->rooms[i].room,
			    (int)w->rooms[i].len, SQLITE_STATIC);
			sqlite3_bind_int64(s, 2, hs_int(w->rooms[i].seq -
			    (uint64_t)hs.retention_count));
			rc = sqlite3_step(s);
			sqlite3_reset(s);
			if (rc != SQLITE_DONE) {
				hs_why(why, "retention", hs.wdb);
				goto abort;
			}
			trimmed += (uint64_t)sqlite3_changes(hs.wdb);
		}
	}
	if (hs_exec(hs.wdb, "COMMIT", why) == -1)
		goto abort;
	pthread_mutex_lock(&hs.lock);
	hs.deleted += trimmed;
	hs.written += ok;
	hs.failed += bad;
	hs.batches++;
	pthread_mutex_unlock(&hs.lock);
	return 0;
abort:
	hs_exec(hs.wdb, "ROLLBACK", NULL);
	return -1;
}

/*
 * Overwrites the rows of the tombstones taken (after the batch that may
 * hold them is committed), in one transaction. Returns 0 when committed,
 * -1 with *why set (the caller keeps them to try again).
 */
static int
hs_write_tombs(struct hs_writer *w, char **why)
{
	uint64_t n = 0;

	if (hs.tombs_taken == NULL)
		return 0;
	if (hs_exec(hs.wdb, "BEGIN IMMEDIATE", why) == -1)
		return -1;
	for (const struct hs_tomb *t = hs.tombs_taken; t != NULL;
	    t = t->next) {
		int rc;
		sqlite3_bind_text(w->tomb, 1, t->room, (int)t->room_len,
		    SQLITE_STATIC);
		sqlite3_bind_int64(w->tomb, 2, hs_int(t->seq));
		rc = sqlite3_step(w->tomb);
		sqlite3_reset(w->tomb);
		if (rc != SQLITE_DONE) {
			hs_why(why, "tombstone", hs.wdb);
			hs_exec(hs.wdb, "ROLLBACK", NULL);
			return -1;
		}
		n += (uint64_t)sqlite3_changes(hs.wdb);
	}
	if (hs_exec(hs.wdb, "COMMIT", why) == -1) {
		hs_exec(hs.wdb, "ROLLBACK", NULL);
		return -1;
	}
	pthread_mutex_lock(&hs.lock);
	hs.tombstoned += n;
	pthread_mutex_unlock(&hs.lock);
	/* Nothing overwritten (made again at start): nothing to purge. */
	if (n > 0)
		w->checkpoint = true;
	return 0;
}

/*
 * The WAL still holds the frames written before a tombstone (the text
 * as inserted): copy everything into the database and truncate the WAL
 * to nothing. A reader in the middle of a read makes it wait (busy
 * timeout), or fail: then it is tried again next turn.
 */
static void
hs_checkpoint(struct hs_writer *w)
{
	sqlite3_stmt *s;

	if (!w->checkpoint || hs.wal_missing)
		return;
	if (sqlite3_prepare_v2(hs.wdb, "PRAGMA wal_checkpoint(TRUNCATE)", -1,
	    &s, NULL) != SQLITE_OK)
		return;
	/* One row: busy, frames in the log, frames checkpointed. */
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int(s, 0) == 0)
		w->checkpoint = false;
	sqlite3_finalize(s);
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
	n = sqlite3_step(w->expire) == SQLITE_DONE ?
	    sqlite3_changes(hs.wdb) : 0;
	sqlite3_reset(w->expire);
	pthread_mutex_lock(&hs.lock);
	hs.deleted += (uint64_t)n;
	pthread_mutex_unlock(&hs.lock);
}

/* Takes the reservations asked for into w->wants. Under the lock. */
static void
hs_take_wants(struct hs_writer *w)
{
	w->nwants = 0;
	while (hs.todo != NULL) {
		struct hs_seq *s = hs.todo;
		if (w->nwants == w->wcap) {
			size_t cap = w->wcap ? w->wcap * 2 : 16;
			struct hs_want *v = realloc(w->wants, cap * sizeof *v);
			if (v == NULL)
				return; /* the rest wait for the next turn */
			w->wants = v;
			w->wcap = cap;
		}
		hs.todo = s->todo;
		s->todo = NULL;
		s->queued = false;
		w->wants[w->nwants].s = s;
		w->wants[w->nwants].seq = s->want;
		w->nwants++;
	}
}

/* Puts a room back on the list of reservations to write. Under the
 * lock. */
static void
hs_queue_want(struct hs_seq *s)
{
	if (s->queued)
		return;
	s->queued = true;
	s->todo = hs.todo;
	hs.todo = s;
}

static void *
hs_worker_main(void *arg)
{
	struct hs_writer w = { 0 };
	uint64_t next_expire = 0;
	char *why = NULL;
	bool ok;

	(void)arg;
	ok = hs.wdb != NULL && hs_writer_prepare(&w, &why) == 0;
	pthread_mutex_lock(&hs.lock);
	if (!ok && hs.wdb != NULL) {
		hs_writer_close(&w);
		hs.failing = true;
		hs.fail_since = hs_now_ms();
		free(hs.fail_reason);
		hs.fail_reason = why;
		why = NULL;
	}
	for (;;) {
		struct timespec until;
		struct hs_queue done;
		size_t freed;
		bool stopping, opened = false;

		/* Wait out the flush interval (a batch) unless the queue
		 * grows large, a seq reservation is wanted or we are told
		 * to stop; after a failure, wait out the retry interval. */
		hs_deadline(&until, ok ? hs.flush_ms : HS_RETRY_MS);
		while (!hs.stopping && (!ok || (hs.pending.n < HS_WAKE_AT &&
		    hs.todo == NULL))) {
			if (pthread_cond_timedwait(&hs.wake, &hs.lock,
			    &until) == ETIMEDOUT)
				break;
		}
		/* A batch kept from a failed write stays first. */
		hs_queue_concat(&hs.inflight, &hs.pending);
		hs_take_wants(&w);
		/* Tombstones go after any kept from a failed write (order
		 * does not matter: each overwrites its own row). */
		if (hs.tombs != NULL) {
			struct hs_tomb **end = &hs.tombs_taken;
			while (*end != NULL)
				end = &(*end)->next;
			*end = hs.tombs;
			hs.tombs = NULL;
		}
		stopping = hs.stopping;
		pthread_mutex_unlock(&hs.lock);

		if (hs.wdb == NULL) {
			bool fatal;
			if (hs_open_writer(&why, &fatal) == 0 &&
			    hs_writer_prepare(&w, &why) == -1)
				hs_writer_close(&w);
			opened = hs.wdb != NULL;
		}
		ok = hs.wdb != NULL && hs_write_wants(&w, &why) == 0;
		pthread_mutex_lock(&hs.lock);
		for (size_t i = 0; i < w.nwants; i++) {
			struct hs_seq *s = w.wants[i].s;
			if (ok && w.wants[i].seq > s->durable)
				s->durable = w.wants[i].seq;
			else if (!ok)
				hs_queue_want(s);
		}
		hs.stalled = false;
		pthread_cond_broadcast(&hs.reserved);
		pthread_mutex_unlock(&hs.lock);
		ok = ok && hs_write_batch(&w, &hs.inflight, &why) == 0;
		if (ok && hs_write_tombs(&w, &why) == 0) {
			hs_tombs_free(hs.tombs_taken);
			hs.tombs_taken = NULL;
			hs_checkpoint(&w);
		} else
			ok = false;
		if (!ok && hs.wdb != NULL)
			hs_writer_close(&w);
		if (ok && hs.retention_days > 0 &&
		    hs_now_ms() >= next_expire) {
			hs_expire(&w);
			next_expire = hs_now_ms() + HS_RETENTION_MS;
		}

		/* Readers stop seeing the batch under the lock; the memory
		 * is freed after, without holding up an append. */
		pthread_mutex_lock(&hs.lock);
		memset(&done, 0, sizeof done);
		/* The loop reopens its reader when the database is back. */
		if (opened && ok)
			hs.ready_gen++;
		if (ok) {
			done = hs.inflight;
			memset(&hs.inflight, 0, sizeof hs.inflight);
			hs.failing = false;
			hs.fail_since = 0;
		} else {
			if (!hs.failing)
				hs.fail_since = hs_now_ms();
			hs.failing = true;
			free(hs.fail_reason);
			hs.fail_reason = why != NULL ? why :
			    strdup("unknown error");
			why = NULL;
			hs.write_errors++;
		}
		pthread_cond_broadcast(&hs.reserved);
		if (done.n > 0) {
			pthread_mutex_unlock(&hs.lock);
			freed = hs_queue_free(&done);
			pthread_mutex_lock(&hs.lock);
			hs.queued_bytes -= freed;
		}
		/* Stop when all is written, or when the last try after
		 * being told to stop failed (fini reports what is lost). */
		if (hs.stopping && ((!ok && stopping) || (hs.pending.n == 0 &&
		    hs.inflight.n == 0 && hs.todo == NULL &&
		    hs.tombs == NULL && hs.tombs_taken == NULL)))
			break;
	}
	pthread_mutex_unlock(&hs.lock);
	/* fini may still use the connection (to give back the seqs
	 * reserved); the statements go. */
	hs_writer_finalize(&w);
	free(w.rooms);
	free(w.wants);
	free(why);
	return NULL;
}

/* ---------------------------------------------------------------------
 * Seq reservations, on the loop thread
 */

static size_t
hs_hash(const char *s, size_t len)
{
	uint64_t h = 14695981039346656037ull; /* FNV-1a */

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return (size_t)h;
}

static struct hs_seq *
hs_seq_find(const char *room, size_t len)
{
	struct hs_seq *s;

	if (hs.seq_cap == 0)
		return NULL;
	for (s = hs.seq_tab[hs_hash(room, len) & (hs.seq_cap - 1)];
	    s != NULL; s = s->next) {
		if (s->len == len && memcmp(s->name, room, len) == 0)
			return s;
	}
	return NULL;
}

static uint64_t hs_stored_seq(const char *room, size_t len);

/* The room's reservation, made at what the database holds when new. */
static struct hs_seq *
hs_seq_get(const char *room, size_t len)
{
	struct hs_seq *s = hs_seq_find(room, len);
	size_t b;

	if (s != NULL)
		return s;
	if (hs.seq_n >= hs.seq_cap / 2) {
		size_t cap = hs.seq_cap ? hs.seq_cap * 2 : 64;
		struct hs_seq **tab = hs.host->mem_alloc(hs.ctx,
		    cap * sizeof *tab);
		memset(tab, 0, cap * sizeof *tab);
		for (size_t i = 0; i < hs.seq_cap; i++) {
			while ((s = hs.seq_tab[i]) != NULL) {
				hs.seq_tab[i] = s->next;
				b = hs_hash(s->name, s->len) & (cap - 1);
				s->next = tab[b];
				tab[b] = s;
			}
		}
		hs.host->mem_free(hs.ctx, hs.seq_tab);
		hs.seq_tab = tab;
		hs.seq_cap = cap;
	}
	s = hs.host->mem_alloc(hs.ctx, sizeof *s + len + 1);
	memset(s, 0, sizeof *s);
	memcpy(s->name, room, len);
	s->name[len] = '\0';
	s->len = len;
	/* Only what is committed counts as reserved. */
	s->durable = s->want = hs_stored_seq(room, len);
	b = hs_hash(room, len) & (hs.seq_cap - 1);
	s->next = hs.seq_tab[b];
	hs.seq_tab[b] = s;
	hs.seq_n++;
	return s;
}

/*
 * Makes sure seq of room is reserved on disk before the message goes to
 * anyone: asks the worker for the next block when half of this one is
 * used, and waits for it only when seq is past what is committed (the
 * worker is woken at once, so that is the first message of a room, or a
 * burst faster than the disk), and at most HS_RESERVE_WAIT_MS, once
 * per stall of the disk. While the database cannot be written nothing
 * is waited for: chat goes on and the seq is counted as not reserved.
 */
static void
hs_reserve(struct hs_seq *s, uint64_t seq)
{
	uint64_t block = (uint64_t)hs.seq_reserve;
	struct timespec until;

	pthread_mutex_lock(&hs.lock);
	if (seq + block / 2 >= s->want) {
		s->want = seq + block;
		hs_queue_want(s);
		pthread_cond_signal(&hs.wake);
	}
	if (seq > s->durable && hs.worker_started && !hs.failing &&
	    !hs.stalled) {
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		hs.seq_waits++;
		hs_deadline(&until, HS_RESERVE_WAIT_MS);
		while (seq > s->durable && !hs.failing) {
			/* A disk this slow is not waited for again until
			 * the worker is through with it. */
			if (pthread_cond_timedwait(&hs.reserved, &hs.lock,
			    &until) == ETIMEDOUT) {
				hs.stalled = true;
				break;
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		hs.seq_wait_us += (uint64_t)((t1.tv_sec - t0.tv_sec) *
		    1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000);
	}
	if (seq > s->durable)
		hs.seq_unreserved++;
	pthread_mutex_unlock(&hs.lock);
}

/* ---------------------------------------------------------------------
 * The history store, on the loop thread
 */

static int
hs_append(parley_ctx *ctx, const struct parley_history_msg *m, void *arg)
{
	size_t size = sizeof(struct hs_entry) + m->room_len + 1 +
	    m->sender_len + 1 + m->text_len + 1;
	struct hs_seq *st = hs_seq_get(m->room, m->room_len);
	struct hs_entry *e;
	char *p;

	(void)ctx;
	(void)arg;
	if (m->seq > st->given)
		st->given = m->seq;
	hs_reserve(st, m->seq);

	pthread_mutex_lock(&hs.lock);
	if (hs.pending.n + hs.inflight.n >= (size_t)hs.max_pending ||
	    hs.queued_bytes + size > (size_t)hs.max_pending_bytes) {
		/* The disk cannot keep up, or cannot be written at all:
		 * leave the message out of history rather than grow. */
		hs.dropped++;
		pthread_mutex_unlock(&hs.lock);
		return -1;
	}
	pthread_mutex_unlock(&hs.lock);

	if ((e = malloc(size)) == NULL)
		return -1;
	e->seq = m->seq;
	e->ts = m->ts;
	e->size = size;
	e->room_len = m->room_len;
	e->sender_len = m->sender_len;
	e->text_len = m->text_len;
	e->action = (m->flags & PARLEY_MSG_ACTION) != 0;
	e->deleted = e->scrub = false;
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
	hs.queued_bytes += size;
	if (hs.pending.n == HS_WAKE_AT)
		pthread_cond_signal(&hs.wake);
	pthread_mutex_unlock(&hs.lock);
	return 0;
}

/*
 * A deleted message. Still queued: its text is overwritten here and the
 * row is written without it. Being written (the worker reads it without
 * the lock) or written: the worker overwrites the row after the batch,
 * and the entry is marked so that reads show a tombstone and its memory
 * is zeroed when freed.
 */
static int
hs_tombstone(parley_ctx *ctx, const char *room, size_t room_len,
    uint64_t seq, void *arg)
{
	struct hs_tomb *t;
	bool queued = false;

	(void)ctx;
	(void)arg;
	pthread_mutex_lock(&hs.lock);
	for (struct hs_entry *e = hs.pending.head; e != NULL; e = e->next) {
		if (e->seq == seq && hs_same_room(e, room, room_len)) {
			explicit_bzero((char *)hs_text(e), e->text_len);
			e->text_len = 0;
			e->deleted = true;
			e->action = false;
			queued = true;
		}
	}
	for (struct hs_entry *e = hs.inflight.head; e != NULL; e = e->next) {
		if (e->seq == seq && hs_same_room(e, room, room_len))
			e->scrub = true;
	}
	pthread_mutex_unlock(&hs.lock);
	if (queued)
		return 0;
	if ((t = malloc(sizeof *t + room_len)) == NULL)
		return -1;
	t->seq = seq;
	t->room_len = room_len;
	memcpy(t->room, room, room_len);
	pthread_mutex_lock(&hs.lock);
	t->next = hs.tombs;
	hs.tombs = t;
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
	if (e->deleted || e->scrub)
		m.flags = PARLEY_MSG_DELETED;
	m.room = hs_room(e);
	m.room_len = e->room_len;
	m.seq = e->seq;
	m.ts = e->ts;
	m.sender = hs_sender(e);
	m.sender_len = e->sender_len;
	m.text = m.flags & PARLEY_MSG_DELETED ? "" : hs_text(e);
	m.text_len = m.flags & PARLEY_MSG_DELETED ? 0 : e->text_len;
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

static void hs_reader_refresh(parley_ctx *ctx);

/* The action column holds PARLEY_MSG_* bits (1 before tombstones). */
static uint32_t
hs_flags(int v)
{
	if (v & PARLEY_MSG_DELETED)
		return PARLEY_MSG_DELETED;
	return v & PARLEY_MSG_ACTION;
}

static int
hs_read(parley_ctx *ctx, const char *room, size_t room_len, uint64_t before,
    uint32_t limit, parley_history_sink *sink, void *arg)
{
	struct hs_scan scan = { .ctx = ctx, .sink = sink };
	sqlite3_stmt *s;
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
	hs_reader_refresh(ctx);
	s = hs.q_read;
	hs_queued_each(room, room_len, before, hs_scan_count, &scan);
	take = scan.count < limit ? scan.count : limit;
	if (scan.count > 0)
		bound = scan.lowest;
	/* Without a readable database, history is what memory holds. */
	if (take < limit && s != NULL) {
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
			m.flags = hs_flags(sqlite3_column_int(s, 4));
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

/* Paging forward: the queued messages of room with after < seq <
 * before, oldest first, counted (lowest) then emitted (up to limit). */
struct hs_forward {
	uint64_t after, before;
	size_t count, limit;
	uint64_t lowest;
	parley_ctx *ctx;
	parley_history_sink *sink;
};

static void
hs_forward_scan(const struct hs_entry *e, void *arg)
{
	struct hs_forward *f = arg;

	if (e->seq <= f->after)
		return;
	if (f->sink == NULL) {
		if (f->count++ == 0 || e->seq < f->lowest)
			f->lowest = e->seq;
	} else if (f->count < f->limit) {
		f->count++;
		hs_emit_entry(f->ctx, f->sink, e);
	}
}

static int
hs_read_after(parley_ctx *ctx, const char *room, size_t room_len,
    uint64_t after, uint64_t before, uint32_t limit,
    parley_history_sink *sink, void *arg)
{
	struct hs_forward f = { .after = after, .before = before };
	sqlite3_stmt *s;
	uint64_t bound = before;
	size_t emitted = 0;
	int rc = 0, step;

	(void)arg;
	if (limit == 0 || after >= before)
		return 0;
	/* As in hs_read: under the lock, and the database only below the
	 * oldest queued message, which may be in both while it is being
	 * committed. Queued messages are newer than the database's. */
	pthread_mutex_lock(&hs.lock);
	hs_reader_refresh(ctx);
	s = hs.q_read_after;
	hs_queued_each(room, room_len, before, hs_forward_scan, &f);
	if (f.count > 0)
		bound = f.lowest;
	if (s != NULL && bound > after + 1) {
		sqlite3_bind_text(s, 1, room, (int)room_len, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, hs_int(after));
		sqlite3_bind_int64(s, 3, hs_int(bound));
		sqlite3_bind_int64(s, 4, (sqlite3_int64)limit);
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
			m.flags = hs_flags(sqlite3_column_int(s, 4));
			if (m.sender != NULL && m.text != NULL) {
				hs.host->history_emit(ctx, sink, &m);
				emitted++;
			}
		}
		if (step != SQLITE_DONE) {
			hs.host->log_printf(ctx, PARLEY_LOG_ERROR,
			    "history read: %s", sqlite3_errmsg(hs.rdb));
			rc = -1;
		}
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
	}
	if (rc == 0 && emitted < limit && f.count > 0) {
		f.count = 0;
		f.limit = limit - emitted;
		f.ctx = ctx;
		f.sink = sink;
		hs_queued_each(room, room_len, before, hs_forward_scan, &f);
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

	if (s == NULL)
		return 0;
	sqlite3_bind_text(s, 1, room, (int)len, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW &&
	    sqlite3_column_type(s, 0) != SQLITE_NULL)
		v = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return v;
}

/* The highest seq the database says the room may have given. */
static uint64_t
hs_stored_seq(const char *room, size_t len)
{
	uint64_t max, v;

	/* messages keeps the seqs, rooms the reservation (past retention
	 * too). */
	max = hs_query_seq(hs.q_max_seq, room, len);
	if ((v = hs_query_seq(hs.q_room_seq, room, len)) > max)
		max = v;
	return max;
}

/*
 * The seq the room goes on from: past anything a server may have given
 * in it, the reservation included, so after a crash a seq is skipped
 * rather than given twice. The next block is asked for at once, so the
 * room's first message rarely waits for it.
 */
static uint64_t
hs_last_seq(parley_ctx *ctx, const char *room, size_t len, void *arg)
{
	struct hs_seq *st;
	uint64_t max = 0, v;

	(void)ctx;
	(void)arg;
	pthread_mutex_lock(&hs.lock);
	hs_queued_each(room, len, PARLEY_HISTORY_NO_BEFORE, hs_scan_max, &max);
	pthread_mutex_unlock(&hs.lock);
	if ((v = hs_stored_seq(room, len)) > max)
		max = v;
	st = hs_seq_get(room, len);
	if (st->given > max)
		max = st->given;
	st->given = max;
	if (hs.worker_started) {
		pthread_mutex_lock(&hs.lock);
		if (st->want < max + (uint64_t)hs.seq_reserve) {
			st->want = max + (uint64_t)hs.seq_reserve;
			hs_queue_want(st);
			pthread_cond_signal(&hs.wake);
		}
		pthread_mutex_unlock(&hs.lock);
	}
	return max;
}

/* ---------------------------------------------------------------------
 * The reading connection
 */

static void
hs_close_reader(void)
{
	sqlite3_finalize(hs.q_read);
	sqlite3_finalize(hs.q_read_after);
	hs.q_read_after = NULL;
	sqlite3_finalize(hs.q_max_seq);
	sqlite3_finalize(hs.q_room_seq);
	sqlite3_close(hs.rdb);
	hs.q_read = hs.q_max_seq = hs.q_room_seq = NULL;
	hs.rdb = NULL;
}

static int
hs_try_reader(const char *name, int flags)
{
	if (sqlite3_open_v2(name, &hs.rdb, SQLITE_OPEN_READONLY |
	    SQLITE_OPEN_NOMUTEX | flags, NULL) != SQLITE_OK ||
	    (sqlite3_busy_timeout(hs.rdb, HS_READ_BUSY_MS),
	    !hs_prepare(hs.rdb, "SELECT seq, ts, sender, text, action FROM "
	    "(SELECT seq, ts, sender, text, action FROM messages WHERE "
	    "room = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3) ORDER BY seq",
	    &hs.q_read)) ||
	    !hs_prepare(hs.rdb, "SELECT seq, ts, sender, text, action FROM "
	    "messages WHERE room = ?1 AND seq > ?2 AND seq < ?3 ORDER BY seq "
	    "LIMIT ?4", &hs.q_read_after) ||
	    !hs_prepare(hs.rdb, "SELECT max(seq) FROM messages WHERE room = ?1",
	    &hs.q_max_seq) ||
	    !hs_prepare(hs.rdb, "SELECT last_seq FROM rooms WHERE room = ?1",
	    &hs.q_room_seq))
		return -1;
	return 0;
}

/*
 * Opens the loop's connection. When the database cannot be written
 * (writable false) its history may still be read: plainly, or, on a
 * read-only file system where WAL's shared memory cannot be made, as an
 * immutable file. Returns 0 (hs.rdb set), or -1 with hs.rdb NULL and
 * *why set.
 */
static int
hs_open_reader(bool writable, char **why)
{
	char *uri;
	size_t n = 0;

	hs_close_reader();
	if (hs_try_reader(hs.path, 0) == 0)
		return 0;
	hs_why(why, "read", hs.rdb);
	hs_close_reader();
	if (writable)
		return -1;
	/* file:PATH?immutable=1, PATH percent-encoded. */
	if ((uri = malloc(strlen(hs.path) * 3 + 32)) == NULL)
		return -1;
	n += (size_t)sprintf(uri, "file:");
	for (const char *p = hs.path; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr("/._-", c) != NULL)
			uri[n++] = (char)c;
		else
			n += (size_t)sprintf(uri + n, "%%%02X", c);
	}
	strcpy(uri + n, "?immutable=1");
	if (hs_try_reader(uri, SQLITE_OPEN_URI) == 0) {
		free(uri);
		return 0;
	}
	free(uri);
	hs_close_reader();
	return -1;
}

/*
 * Once the worker has opened the database for writing, the loop reads it
 * plainly again (not as an immutable file, which would not see the
 * worker's writes). Called with the lock held, before the queues are
 * looked at: the worker bumps ready_gen in the same hold of the lock in
 * which it lets go of the messages it wrote, so a read never misses them.
 */
static void
hs_reader_refresh(parley_ctx *ctx)
{
	char *why = NULL;

	if (hs.ready_gen == hs.ready_seen)
		return;
	hs.ready_seen = hs.ready_gen;
	if (hs_open_reader(true, &why) == -1)
		hs.host->log_printf(ctx, PARLEY_LOG_ERROR, "%s: %s", hs.path,
		    why ? why : "cannot read");
	free(why);
}

/* ---------------------------------------------------------------------
 * Health and counters
 */

/* Once a second on the loop: what the worker cannot say itself. */
static void
hs_on_timer(parley_ctx *ctx, uint64_t id, void *arg)
{
	uint64_t written, batches, failed, dropped, deleted, errors, waits;
	uint64_t unreserved, wait_us, since, tombstoned, now = hs_now_ms();
	size_t pending, bytes;
	char *reason = NULL, detail[768];
	bool failing;

	(void)id;
	(void)arg;
	pthread_mutex_lock(&hs.lock);
	written = hs.written;
	batches = hs.batches;
	failed = hs.failed;
	dropped = hs.dropped;
	deleted = hs.deleted;
	tombstoned = hs.tombstoned;
	errors = hs.write_errors;
	waits = hs.seq_waits;
	wait_us = hs.seq_wait_us;
	unreserved = hs.seq_unreserved;
	pending = hs.pending.n + hs.inflight.n;
	bytes = hs.queued_bytes;
	failing = hs.failing;
	since = hs.fail_since;
	hs_reader_refresh(ctx);
	if (failing && hs.fail_reason != NULL)
		reason = strdup(hs.fail_reason);
	pthread_mutex_unlock(&hs.lock);

	if (failing) {
		/* No path: /healthz may be public. */
		snprintf(detail, sizeof detail, "cannot write the history "
		    "database for %llu s (%s); %zu messages held in memory, "
		    "%llu left out of history", (unsigned long long)(now > since ?
		    (now - since) / 1000 : 0), reason ? reason : "?", pending,
		    (unsigned long long)dropped);
		if (PARLEY_HOST_HAS(hs.host, health_report))
			hs.host->health_report(ctx, false, detail);
		if (!hs.fail_reported && !hs.fail_told) {
			/* Once per failure, as loud as at start-up. */
			hs.host->log_printf(ctx, PARLEY_LOG_ERROR, "CANNOT WRITE "
			    "HISTORY: %s: %s. Chat is served all the same; "
			    "history is kept in memory (up to %lld messages) "
			    "and written once the database can be.", hs.path,
			    detail, (long long)hs.max_pending);
			hs.fail_logged_at = now;
		} else if (!hs.fail_reported ||
		    now - hs.fail_logged_at >= HS_LOG_MS) {
			hs.host->log_printf(ctx, PARLEY_LOG_ERROR, "%s: %s",
			    hs.path, detail);
			hs.fail_logged_at = now;
		}
		hs.fail_told = false;
		hs.fail_reported = true;
	} else if (hs.fail_reported) {
		hs.host->log_printf(ctx, PARLEY_LOG_WARN, "%s is written "
		    "again; what memory held is on disk", hs.path);
		if (PARLEY_HOST_HAS(hs.host, health_report))
			hs.host->health_report(ctx, true, NULL);
		hs.fail_reported = false;
	}
	free(reason);
	if (dropped > hs.dropped_logged) {
		hs.host->log_printf(ctx, PARLEY_LOG_WARN, "%llu messages "
		    "left out of history: over %lld messages or %lld bytes "
		    "waiting for the disk",
		    (unsigned long long)(dropped - hs.dropped_logged),
		    (long long)hs.max_pending, (long long)hs.max_pending_bytes);
		hs.dropped_logged = dropped;
	}
	hs.host->counter_set(ctx, "messages_written", (int64_t)written);
	hs.host->counter_set(ctx, "batches", (int64_t)batches);
	hs.host->counter_set(ctx, "messages_failed", (int64_t)failed);
	hs.host->counter_set(ctx, "messages_dropped", (int64_t)dropped);
	hs.host->counter_set(ctx, "messages_expired", (int64_t)deleted);
	hs.host->counter_set(ctx, "messages_tombstoned", (int64_t)tombstoned);
	hs.host->counter_set(ctx, "messages_pending", (int64_t)pending);
	hs.host->counter_set(ctx, "pending_bytes", (int64_t)bytes);
	hs.host->counter_set(ctx, "write_failing", failing ? 1 : 0);
	hs.host->counter_set(ctx, "write_errors", (int64_t)errors);
	hs.host->counter_set(ctx, "seq_waits", (int64_t)waits);
	hs.host->counter_set(ctx, "seq_wait_us", (int64_t)wait_us);
	hs.host->counter_set(ctx, "seq_unreserved", (int64_t)unreserved);
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
    /* PARLEY_MSG_* bits: 1 a /me, 2 deleted (text '') */
    " action INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (room, seq));"
    "CREATE INDEX IF NOT EXISTS messages_ts ON messages (ts);"
    /* last_seq: no seq ever given in the room is above it (reserved
     * ahead, so it outlives retention and crashes). */
    "CREATE TABLE IF NOT EXISTS rooms ("
    " room TEXT PRIMARY KEY NOT NULL,"
    " last_seq INTEGER NOT NULL);";

/* True when the directory the database goes in is missing: a mistake in
 * the configuration, not a condition of the disk. */
static bool
hs_dir_missing(const char *path)
{
	char *dir = strdup(path), *slash;
	struct stat st;
	bool missing;

	if (dir == NULL)
		return false;
	if ((slash = strrchr(dir, '/')) == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	missing = stat(dir, &st) == -1 && (errno == ENOENT ||
	    errno == ENOTDIR);
	free(dir);
	return missing;
}

/*
 * Opens hs.wdb for writing and brings the schema up to date, writing
 * nothing when it is already (a full disk can still be opened). Returns
 * 0; or -1 with *why set, and *fatal true when the file is one this
 * plugin must not run on (its directory missing, not a database, a newer
 * schema) rather than a disk that cannot be written now. Runs on the
 * loop thread at start, on the worker afterwards; never calls the host.
 */
static int
hs_open_writer(char **why, bool *fatal)
{
	int version = -1, rc;
	sqlite3_stmt *s;

	*fatal = false;
	if (hs_dir_missing(hs.path)) {
		*fatal = true;
		free(*why);
		*why = strdup("its directory does not exist");
		return -1;
	}
	rc = sqlite3_open_v2(hs.path, &hs.wdb, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		hs_why(why, "open", hs.wdb);
		goto fail;
	}
	sqlite3_busy_timeout(hs.wdb, HS_BUSY_MS);
	/* On a read-only file system SQLite falls back to reading. */
	if (sqlite3_db_readonly(hs.wdb, "main") == 1) {
		free(*why);
		*why = strdup("open: the database is read-only");
		goto fail;
	}
	if ((rc = sqlite3_prepare_v2(hs.wdb, "PRAGMA user_version", -1, &s,
	    NULL)) == SQLITE_OK) {
		if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			version = sqlite3_column_int(s, 0);
			rc = SQLITE_OK;
		}
		sqlite3_finalize(s);
	}
	if (version < 0) {
		hs_why(why, "read", hs.wdb);
		*fatal = rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT;
		goto fail;
	}
	if (version > HS_SCHEMA_VERSION) {
		char buf[128];
		snprintf(buf, sizeof buf, "schema version %d, newer than "
		    "this plugin's %d", version, HS_SCHEMA_VERSION);
		free(*why);
		*why = strdup(buf);
		*fatal = true;
		goto fail;
	}
	hs.wal_missing = false;
	if (sqlite3_prepare_v2(hs.wdb, "PRAGMA journal_mode = WAL", -1, &s,
	    NULL) == SQLITE_OK) {
		/* Some file systems cannot do WAL: it works, but writes
		 * then block readers. */
		if (sqlite3_step(s) != SQLITE_ROW || sqlite3_column_text(s, 0) ==
		    NULL || strcmp((const char *)sqlite3_column_text(s, 0),
		    "wal") != 0)
			hs.wal_missing = true;
		sqlite3_finalize(s);
	}
	/*
	 * secure_delete: SQLite leaves the bytes of a deleted or shrunk
	 * record in the page as free space, and freed pages as they were;
	 * a tombstone (or retention) must make the text unreadable in the
	 * file, not only unreachable. With it SQLite zeroes what it frees,
	 * at the cost of writing those bytes.
	 */
	if (hs_exec(hs.wdb, "PRAGMA secure_delete = ON", why) == -1 ||
	    hs_exec(hs.wdb, hs.sync_full ? "PRAGMA synchronous = FULL" :
	    "PRAGMA synchronous = NORMAL", why) == -1 ||
	    hs_exec(hs.wdb, hs_schema, why) == -1 ||
	    (version < HS_SCHEMA_VERSION &&
	    hs_exec(hs.wdb, "PRAGMA user_version = 1", why) == -1))
		goto fail;
	return 0;
fail:
	sqlite3_close(hs.wdb);
	hs.wdb = NULL;
	return -1;
}

static int
hs_options(parley_ctx *ctx)
{
	const struct parley_host *h = hs.host;
	const char *path = NULL, *sync = "normal", *state = PARLEY_STATEDIR;
	static char fallback[4096];

	hs.flush_ms = 100;
	hs.max_pending = 100000;
	hs.max_pending_bytes = 64 << 20;
	hs.seq_reserve = 1000;
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
	    h->option_int(ctx, "max_pending_bytes",
	    &hs.max_pending_bytes) == -1 ||
	    h->option_int(ctx, "seq_reserve", &hs.seq_reserve) == -1 ||
	    h->option_string(ctx, "synchronous", &sync) == -1)
		return -1;
	if (*path == '\0' || hs.retention_count < 0 || hs.retention_days < 0 ||
	    hs.retention_days > 100000 || hs.flush_ms < 1 ||
	    hs.flush_ms > 60000 || hs.max_pending < 1 ||
	    hs.max_pending_bytes < 1024 || hs.seq_reserve < 1 ||
	    hs.seq_reserve > 1000000000) {
		h->log_printf(ctx, PARLEY_LOG_ERROR, "bad options: path must "
		    "not be empty, retention_count and retention_days at "
		    "least 0, flush_interval_ms 1 to 60000, max_pending at "
		    "least 1, max_pending_bytes at least 1024, seq_reserve 1 "
		    "to 1000000000");
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

/*
 * Opens the database. A disk that cannot be written (full, read-only)
 * is no reason to refuse to start: chat goes on, history is kept in
 * memory and written when the disk allows, and the worker keeps trying.
 * Only a database this plugin must not use stops the server.
 */
static int
hs_open(parley_ctx *ctx)
{
	const struct parley_host *h = hs.host;
	char *why = NULL, *rwhy = NULL;
	struct stat st;
	bool fatal;

	if (sqlite3_threadsafe() == 0) {
		h->log_printf(ctx, PARLEY_LOG_ERROR, "this SQLite is built "
		    "without thread support");
		return -1;
	}
	if (hs_open_writer(&why, &fatal) == -1) {
		if (fatal) {
			h->log_printf(ctx, PARLEY_LOG_ERROR, "cannot open %s: "
			    "%s", hs.path, why ? why : "?");
			free(why);
			return -1;
		}
		hs.failing = true;
		hs.fail_since = hs_now_ms();
		hs.fail_reason = why != NULL ? why : strdup("cannot open");
		hs.fail_told = true;
		why = NULL;
		h->log_printf(ctx, PARLEY_LOG_ERROR, "CANNOT WRITE HISTORY: "
		    "%s: %s. Chat is served all the same; this run's "
		    "history is kept in memory only (up to %lld messages) "
		    "and written once the database can be; until then a "
		    "crash loses it. /healthz says degraded.", hs.path,
		    hs.fail_reason ? hs.fail_reason : "?",
		    (long long)hs.max_pending);
	} else if (hs.wal_missing)
		h->log_printf(ctx, PARLEY_LOG_WARN, "%s: WAL mode not "
		    "available; reads may wait for writes", hs.path);
	if (hs_open_reader(hs.wdb != NULL, &rwhy) == -1) {
		if (hs.wdb != NULL) {
			h->log_printf(ctx, PARLEY_LOG_ERROR, "%s: %s", hs.path,
			    rwhy ? rwhy : "cannot read");
			free(rwhy);
			return -1;
		}
		/* Seqs would start again at 1 over a history that may
		 * hold them: only when there is no history at all. */
		if (stat(hs.path, &st) == 0 && st.st_size > 0) {
			h->log_printf(ctx, PARLEY_LOG_ERROR, "%s exists but "
			    "can be neither written nor read (%s): refusing "
			    "to start, seqs could be given twice", hs.path,
			    rwhy ? rwhy : "?");
			free(rwhy);
			return -1;
		}
		h->log_printf(ctx, PARLEY_LOG_ERROR, "%s cannot be read "
		    "either (%s): rooms start with no history and seq 1",
		    hs.path, rwhy ? rwhy : "?");
	}
	free(rwhy);
	return 0;
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

/*
 * After a clean stop with everything written, gives back the seqs
 * reserved and not used, so a restart goes on without a gap: no seq
 * above a room's given was handed out, and every one up to it is on
 * disk.
 */
static void
hs_release_seqs(parley_ctx *ctx)
{
	sqlite3_stmt *s = NULL;
	char *why = NULL;

	if (hs.wdb == NULL || hs.failing || hs.seq_n == 0)
		return;
	if (!hs_prepare(hs.wdb, "UPDATE rooms SET last_seq = ?2 WHERE "
	    "room = ?1 AND last_seq > ?2", &s) ||
	    hs_exec(hs.wdb, "BEGIN IMMEDIATE", &why) == -1) {
		hs_why(&why, "release seqs", hs.wdb);
		goto done;
	}
	for (size_t i = 0; i < hs.seq_cap; i++) {
		for (struct hs_seq *st = hs.seq_tab[i]; st != NULL;
		    st = st->next) {
			sqlite3_bind_text(s, 1, st->name, (int)st->len,
			    SQLITE_STATIC);
			sqlite3_bind_int64(s, 2, hs_int(st->given));
			if (sqlite3_step(s) != SQLITE_DONE) {
				hs_why(&why, "release seqs", hs.wdb);
				sqlite3_reset(s);
				hs_exec(hs.wdb, "ROLLBACK", NULL);
				goto done;
			}
			sqlite3_reset(s);
		}
	}
	if (hs_exec(hs.wdb, "COMMIT", &why) == -1)
		hs_exec(hs.wdb, "ROLLBACK", NULL);
done:
	/* Harmless: the next start skips the seqs still reserved. */
	if (why != NULL)
		hs.host->log_printf(ctx, PARLEY_LOG_WARN, "%s", why);
	free(why);
	sqlite3_finalize(s);
}

static void
hs_fini(parley_ctx *ctx)
{
	uint64_t written, failed;
	size_t lost;

	hs_stop_worker(); /* writes whatever is still queued */
	written = hs.written;
	failed = hs.failed;
	lost = hs.pending.n + hs.inflight.n;
	if (lost > 0)
		hs.host->log_printf(ctx, PARLEY_LOG_ERROR, "%zu messages never "
		    "reached %s and are lost from history (%s)", lost, hs.path,
		    hs.fail_reason ? hs.fail_reason : "?");
	else
		hs_release_seqs(ctx);
	if (hs.wdb != NULL)
		hs.host->log_printf(ctx, PARLEY_LOG_INFO, "closed %s: %llu "
		    "messages written, %llu failed", hs.path,
		    (unsigned long long)written, (unsigned long long)failed);
	hs_close_reader();
	/* The last connection to close checkpoints the WAL. */
	sqlite3_close(hs.wdb);
	hs_queue_free(&hs.pending);
	hs_queue_free(&hs.inflight);
	hs_tombs_free(hs.tombs);
	hs_tombs_free(hs.tombs_taken);
	for (size_t i = 0; i < hs.seq_cap; i++) {
		struct hs_seq *s;
		while ((s = hs.seq_tab[i]) != NULL) {
			hs.seq_tab[i] = s->next;
			hs.host->mem_free(ctx, s);
		}
	}
	if (hs.seq_tab != NULL)
		hs.host->mem_free(ctx, hs.seq_tab);
	free(hs.fail_reason);
	free(hs.path);
	pthread_cond_destroy(&hs.wake);
	pthread_cond_destroy(&hs.reserved);
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
	pthread_cond_init(&hs.reserved, &ca);
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
	store.read_after = hs_read_after;
	store.last_seq = hs_last_seq;
	store.tombstone = hs_tombstone;
	if (host->history_store_register(ctx, &store) != 0)
		goto fail;
	hs.timer = host->timer_add(ctx, 1000, 1000, hs_on_timer, NULL);
	if (!(host->flags & PARLEY_HOST_INFO_ONLY))
		host->log_printf(ctx, PARLEY_LOG_INFO, "history in %s (WAL, "
		    "flush every %lld ms, keep %lld per room, %lld days, "
		    "seqs reserved %lld ahead)", hs.path,
		    (long long)hs.flush_ms, (long long)hs.retention_count,
		    (long long)hs.retention_days, (long long)hs.seq_reserve);
	return 0;
fail:
	hs_fini(ctx);
	return -1;
}

PARLEY_PLUGIN_DEFINE("history-sqlite", PACKAGE_VERSION,
    "durable room history in SQLite (WAL, batched writes off the loop)",
    hs_init, hs_fini);
