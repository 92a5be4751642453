/*
 * bench.c: how fast history-sqlite's schema answers, measured on a table
 * of a million messages. Not built by make; run it by hand:
 *
 *     cc -O2 -o hs-bench plugins/history-sqlite/bench.c -lsqlite3
 *     ./hs-bench [FILE [ROWS [ROOMS]]]
 *
 * It creates FILE (default hs-bench.db in the current directory; removed
 * first) with the plugin's tables, inserts ROWS messages (default
 * 1000000) spread over ROOMS rooms (default 20) in transactions of 1000
 * as the plugin's writer does, then times the plugin's own queries: the
 * history read of 500 messages before a random seq, the newest 500, and
 * last_seq, each 1000 times, and prints the median, the 99th percentile
 * and the worst. The file is left for an end-to-end run (it is a valid
 * history-sqlite database).
 */
#define _GNU_SOURCE /* asprintf */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#define RUNS 1000

static const char schema[] =
    "PRAGMA journal_mode = WAL;"
    "PRAGMA synchronous = NORMAL;"
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
    " last_seq INTEGER NOT NULL);"
    "PRAGMA user_version = 1;";

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
die(sqlite3 *db, const char *what)
{
	fprintf(stderr, "hs-bench: %s: %s\n", what, sqlite3_errmsg(db));
	exit(1);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void
report(const char *what, double *t, int n, long rows)
{
	qsort(t, (size_t)n, sizeof *t, cmp_double);
	printf("%-34s median %7.3f ms  p99 %7.3f ms  max %7.3f ms  (%ld rows "
	    "per run)\n", what, t[n / 2] * 1e3, t[n * 99 / 100] * 1e3,
	    t[n - 1] * 1e3, rows);
}

int
main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "hs-bench.db";
	long rows = argc > 2 ? atol(argv[2]) : 1000000;
	int rooms = argc > 3 ? atoi(argv[3]) : 20;
	sqlite3 *db, *rdb;
	sqlite3_stmt *ins, *up, *rd, *mx;
	uint64_t *seq;
	double t0, t[RUNS];
	char room[32], sender[32], text[256], *wal, *shm;
	long got = 0;

	if (rows < 1 || rooms < 1) {
		fprintf(stderr, "usage: hs-bench [FILE [ROWS [ROOMS]]]\n");
		return 2;
	}
	if (asprintf(&wal, "%s-wal", path) < 0 ||
	    asprintf(&shm, "%s-shm", path) < 0)
		return 1;
	unlink(path);
	unlink(wal);
	unlink(shm);
	if (sqlite3_open(path, &db) != SQLITE_OK)
		die(db, path);
	if (sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK)
		die(db, "schema");
	if (sqlite3_prepare_v2(db, "INSERT INTO messages (room, seq, ts, "
	    "sender, text, action) VALUES (?1, ?2, ?3, ?4, ?5, 0)", -1, &ins,
	    NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "INSERT INTO rooms (room, last_seq) VALUES "
	    "(?1, ?2) ON CONFLICT (room) DO UPDATE SET last_seq = "
	    "max(last_seq, excluded.last_seq)", -1, &up, NULL) != SQLITE_OK)
		die(db, "prepare");
	seq = calloc((size_t)rooms, sizeof *seq);
	srandom(1);

	/* Insert as the plugin's writer does: batches of 1000 in one
	 * transaction each, rooms interleaved. */
	t0 = now();
	for (long i = 0; i < rows; i++) {
		int r = (int)(random() % rooms);
		int len;

		if (i % 1000 == 0 && sqlite3_exec(db, "BEGIN IMMEDIATE", NULL,
		    NULL, NULL) != SQLITE_OK)
			die(db, "begin");
		snprintf(room, sizeof room, "room-%d", r);
		snprintf(sender, sizeof sender, "user-%ld", random() % 5000);
		len = snprintf(text, sizeof text, "message %ld in %s: ", i,
		    room);
		for (long k = random() % 150; k > 0 && len < 250; k--)
			text[len++] = (char)('a' + k % 26);
		sqlite3_bind_text(ins, 1, room, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 2, (sqlite3_int64)++seq[r]);
		sqlite3_bind_int64(ins, 3, 1700000000000 + i * 50);
		sqlite3_bind_text(ins, 4, sender, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 5, text, len, SQLITE_STATIC);
		if (sqlite3_step(ins) != SQLITE_DONE)
			die(db, "insert");
		sqlite3_reset(ins);
		if (i % 1000 == 999 || i == rows - 1) {
			for (int k = 0; k < rooms; k++) {
				snprintf(room, sizeof room, "room-%d", k);
				sqlite3_bind_text(up, 1, room, -1,
				    SQLITE_STATIC);
				sqlite3_bind_int64(up, 2,
				    (sqlite3_int64)seq[k]);
				sqlite3_step(up);
				sqlite3_reset(up);
			}
			if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) !=
			    SQLITE_OK)
				die(db, "commit");
		}
	}
	printf("inserted %ld messages in %d rooms: %.1f s, %.0f messages/s "
	    "(batches of 1000)\n", rows, rooms, now() - t0,
	    (double)rows / (now() - t0));

	/* Reads on a second connection, as the plugin's loop thread. */
	if (sqlite3_open_v2(path, &rdb, SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK)
		die(rdb, path);
	if (sqlite3_prepare_v2(rdb, "SELECT seq, ts, sender, text, action "
	    "FROM (SELECT seq, ts, sender, text, action FROM messages WHERE "
	    "room = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3) ORDER BY seq",
	    -1, &rd, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(rdb, "SELECT max(seq) FROM messages WHERE "
	    "room = ?1", -1, &mx, NULL) != SQLITE_OK)
		die(rdb, "prepare");
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < RUNS; i++) {
			int r = (int)(random() % rooms);
			sqlite3_int64 before = pass == 0 ?
			    (sqlite3_int64)(random() % (long)seq[r]) + 1 :
			    INT64_MAX;
			long n = 0;

			snprintf(room, sizeof room, "room-%d", r);
			t0 = now();
			sqlite3_bind_text(rd, 1, room, -1, SQLITE_STATIC);
			sqlite3_bind_int64(rd, 2, before);
			sqlite3_bind_int64(rd, 3, 500);
			while (sqlite3_step(rd) == SQLITE_ROW) {
				/* Touch what the plugin hands on. */
				n += sqlite3_column_bytes(rd, 2) +
				    sqlite3_column_bytes(rd, 3) > 0;
				(void)sqlite3_column_text(rd, 3);
			}
			sqlite3_reset(rd);
			t[i] = now() - t0;
			got = n;
		}
		report(pass == 0 ? "read 500 before a random seq:" :
		    "read the newest 500:", t, RUNS, got);
	}
	for (int i = 0; i < RUNS; i++) {
		snprintf(room, sizeof room, "room-%d", (int)(random() % rooms));
		t0 = now();
		sqlite3_bind_text(mx, 1, room, -1, SQLITE_STATIC);
		sqlite3_step(mx);
		sqlite3_reset(mx);
		t[i] = now() - t0;
	}
	report("last_seq (max(seq) of a room):", t, RUNS, 1);
	sqlite3_finalize(ins);
	sqlite3_finalize(up);
	sqlite3_finalize(rd);
	sqlite3_finalize(mx);
	sqlite3_close(rdb);
	sqlite3_close(db);
	free(seq);
	free(wal);
	free(shm);
	return 0;
}
