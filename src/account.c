/*
 * account.c: accounts kept by the server. The accounts live in a SQLite
 * database in the state directory (accounts.db, WAL, mode 0600), each as
 * a name and the argon2id encoding of its password. Hashing is slow on
 * purpose and SQLite may wait on the disk, so both happen on a thread of
 * their own: the loop queues a job, the thread does it and queues the
 * result, and an eventfd wakes the loop to hand it to chat.c. The names
 * are also kept here in memory, so that a rename learns at once whether
 * an account holds the name, and so are each account's server roles
 * (a column that a database of an older server gains when it is opened),
 * so that a login or an admission knows them at once. Failed logins are counted
 * per name and per address; too many within a minute lock further attempts out.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "parley.h"

#if defined(HAVE_SQLITE) && defined(HAVE_ARGON2)
#define ACCOUNT_BUILT 1
#include <argon2.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/random.h>
#endif

/* Jobs waiting for the thread; more get rate_limited (each costs a hash:
 * a queue without end would be a way to make the server work). */
#define ACCOUNT_QUEUE_MAX 64
#define ACCOUNT_SALT_LEN 16
#define ACCOUNT_HASH_LEN 32
#define ACCOUNT_SWEEP_MS 60000

/* Names held by accounts: folded name -> the name as registered. */
static struct map account_names;
/* Server roles of accounts that have some: folded name -> the roles as
 * stored (public names separated by spaces, as "operator"). */
static struct map account_role_map;
static bool account_on;
static bool account_ro; /* the database cannot be written */

/* Failed logins of one name or one address. */
struct account_fails {
	uint64_t since; /* loop_now() of the first failure counted */
	uint64_t until; /* locked out until then; 0: not locked */
	unsigned fails; /* failures since `since` */
	unsigned busy; /* attempts being checked now */
};
static struct map account_fails; /* "n:" folded name or "a:" address */

bool
account_enabled(void)
{
	return account_on;
}

bool
account_read_only(void)
{
	return account_ro;
}

const char *
account_holder(const char *name, size_t len)
{
	char *f;
	const char *held;

	if (account_names.count == 0)
		return NULL;
	f = client_key(name, len);
	held = map_find(&account_names, f, strlen(f));
	free(f);
	return held;
}

const char *
account_roles(const char *name)
{
	char *f;
	const char *roles;

	if (account_role_map.count == 0)
		return NULL;
	f = client_key(name, strlen(name));
	roles = map_find(&account_role_map, f, strlen(f));
	free(f);
	return roles;
}

#ifdef ACCOUNT_BUILT
/* Remembers the stored roles of name (a copy; NULL or "" for none). */
static void
account_roles_keep(const char *name, const char *roles)
{
	char *f = client_key(name, strlen(name));

	free(map_remove(&account_role_map, f, strlen(f)));
	if (roles != NULL && *roles != '\0')
		map_add(&account_role_map, f, strlen(f), xstrdup(roles));
	free(f);
}
#endif

/* ---- Failed logins */

static char *
account_fails_key(char kind, const char *s, size_t len)
{
	char *f = kind == 'n' ? client_key(s, len) : xstrndup(s, len);
	char *key;

	xasprintf(&key, "%c:%s", kind, f);
	free(f);
	return key;
}

/* The record of key; created when create. */
static struct account_fails *
account_fails_get(const char *key, bool create)
{
	struct account_fails *r = map_find(&account_fails, key, strlen(key));

	if (r == NULL && create) {
		r = xcalloc(1, sizeof *r);
		map_add(&account_fails, key, strlen(key), r);
	}
	return r;
}

/* Whether one more attempt may be made under r: the attempts being
 * checked count, so that many at once cannot pass the limit. */
static bool
account_fails_allow(struct account_fails *r, uint64_t now)
{
	if (r == NULL)
		return true;
	if (r->until != 0 && now < r->until)
		return false;
	if (now - r->since >= ACCOUNT_FAILURES_WINDOW * 1000ull)
		return r->busy < ACCOUNT_FAILURES_MAX;
	return r->fails + r->busy < ACCOUNT_FAILURES_MAX;
}

bool
account_login_allowed(const char *name, size_t len, const char *addr)
{
	uint64_t now = loop_now();
	char *nk = account_fails_key('n', name, len);
	char *ak = account_fails_key('a', addr, strlen(addr));
	bool ok = account_fails_allow(account_fails_get(nk, false), now) &&
	    account_fails_allow(account_fails_get(ak, false), now);

	free(nk);
	free(ak);
	return ok;
}

#ifdef ACCOUNT_BUILT

static struct loop_timer account_sweep_timer;

/* Holds name for account (a copy); false when it is held already. */
static bool
account_hold(const char *name, size_t len)
{
	char *f = client_key(name, len);
	char *copy = xstrndup(name, len);
	bool ok = map_add(&account_names, f, strlen(f), copy) == 0;

	if (!ok)
		free(copy);
	free(f);
	return ok;
}

static void
account_release(const char *name, size_t len)
{
	char *f = client_key(name, len);

	free(map_remove(&account_names, f, strlen(f)));
	free(f);
}

static void
account_fails_start(const char *key)
{
	account_fails_get(key, true)->busy++;
}

static void
account_fails_end(const char *key, bool failed)
{
	struct account_fails *r = account_fails_get(key, false);
	uint64_t now = loop_now();

	if (r == NULL)
		return;
	if (r->busy > 0)
		r->busy--;
	if (!failed)
		return;
	if (r->fails == 0 ||
	    now - r->since >= ACCOUNT_FAILURES_WINDOW * 1000ull) {
		r->since = now;
		r->fails = 0;
	}
	if (++r->fails >= ACCOUNT_FAILURES_MAX) {
		r->until = now + ACCOUNT_LOCK_SECONDS * 1000ull;
		r->fails = 0;
	}
}

/* Forgets records with nothing left to say (a timer, once a minute). */
static void
account_sweep(struct loop_timer *t)
{
	uint64_t now = loop_now();
	const char *key;
	void *v;
	size_t pos = 0;

	while (map_next(&account_fails, &pos, &key, &v)) {
		struct account_fails *r = v;
		if (r->busy == 0 && now >= r->until &&
		    (r->fails == 0 ||
			now - r->since >= ACCOUNT_FAILURES_WINDOW * 1000ull)) {
			char *k = xstrdup(key);
			map_remove(&account_fails, k, strlen(k));
			free(k);
			free(r);
		}
	}
	loop_timer_set(t, ACCOUNT_SWEEP_MS, account_sweep);
}

/* ---- The thread: jobs in, results out */

enum account_kind {
	ACCOUNT_JOB_REGISTER,
	ACCOUNT_JOB_LOGIN,
	/* the admin API's (no client; the result goes to done) */
	ACCOUNT_JOB_CREATE,
	ACCOUNT_JOB_DELETE,
	ACCOUNT_JOB_PASSWORD,
	ACCOUNT_JOB_ROLES, /* password holds the roles to store */
};

struct account_job {
	enum account_kind kind;
	uint64_t client;
	json_t *id; /* the request's id (a reference), or NULL */
	char *name; /* as asked */
	char *password; /* NUL-terminated; wiped and freed once used */
	size_t pwlen; /* without the NUL */
	char *name_key; /* failure records to settle (login) */
	char *addr_key;
	uint32_t m_cost, t_cost, lanes;
	account_admin_fn done; /* the admin API's jobs */
	uint64_t ticket;
	/* results */
	enum account_status status;
	char *account; /* the name as stored; roles: the roles stored */
	char *roles; /* login: the account's stored roles, or NULL */
	struct account_job *next;
};

static struct {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool running, stop, ready;
	char *error; /* why the thread could not start */
	char *degraded; /* why accounts cannot be written (read only) */
	struct account_job *jobs, **jobs_tail;
	unsigned njobs;
	struct account_job *done;
	sqlite3 *db;
	char *path;
	char **loaded; /* names read at start, for the loop */
	char **loaded_roles; /* and their roles (NULL for none) */
	size_t nloaded;
	bool has_roles; /* the table has the roles column */
	/* what a login for no account is checked against, so that it costs
	 * what one for an account does */
	char *dummy;
	uint32_t dummy_m, dummy_t, dummy_p;
	int efd;
	struct loop_fd lfd;
} astore = { .efd = -1 };

static void
account_wipe_free(char *s, size_t len)
{
	if (s != NULL) {
		explicit_bzero(s, len);
		free(s);
	}
}

static void
account_job_free(struct account_job *j)
{
	if (j->id != NULL)
		json_decref(j->id);
	free(j->name);
	account_wipe_free(j->password, j->pwlen + 1);
	free(j->name_key);
	free(j->addr_key);
	free(j->account);
	free(j->roles);
	free(j);
}

/* An argon2id encoding of password with the job's parameters (NULL on
 * failure: out of memory in argon2, logged). */
static char *
account_hash(
    const char *password, size_t pwlen, uint32_t m, uint32_t t, uint32_t p)
{
	uint8_t salt[ACCOUNT_SALT_LEN];
	size_t len = argon2_encodedlen(
	    t, m, p, ACCOUNT_SALT_LEN, ACCOUNT_HASH_LEN, Argon2_id);
	char *out = xmalloc(len);
	int rc;

	if (getrandom(salt, sizeof salt, 0) != (ssize_t)sizeof salt) {
		log_error("accounts", "getrandom: %s", strerror(errno));
		free(out);
		return NULL;
	}
	rc = argon2id_hash_encoded(t, m, p, password, pwlen, salt, sizeof salt,
	    ACCOUNT_HASH_LEN, out, len);
	if (rc != ARGON2_OK) {
		log_error("accounts", "argon2id: %s", argon2_error_message(rc));
		free(out);
		return NULL;
	}
	return out;
}

/* The dummy hash for the job's parameters (made again when they
 * changed). Thread only. */
static const char *
account_dummy(const struct account_job *j)
{
	uint8_t junk[32];

	if (astore.dummy != NULL && astore.dummy_m == j->m_cost &&
	    astore.dummy_t == j->t_cost && astore.dummy_p == j->lanes)
		return astore.dummy;
	free(astore.dummy);
	if (getrandom(junk, sizeof junk, 0) != (ssize_t)sizeof junk)
		memset(junk, 0x5a, sizeof junk);
	astore.dummy = account_hash(
	    (const char *)junk, sizeof junk, j->m_cost, j->t_cost, j->lanes);
	astore.dummy_m = j->m_cost;
	astore.dummy_t = j->t_cost;
	astore.dummy_p = j->lanes;
	return astore.dummy;
}

static void
account_db_error(const char *what)
{
	log_error("accounts", "%s: %s", what, sqlite3_errmsg(astore.db));
}

static void
account_do_register(struct account_job *j)
{
	sqlite3_stmt *s = NULL;
	char *hash = account_hash(
	    j->password, j->pwlen, j->m_cost, j->t_cost, j->lanes);
	int rc;

	j->status = ACCOUNT_FAILED;
	if (hash == NULL)
		return;
	if (astore.db == NULL) {
		free(hash);
		return;
	}
	if (sqlite3_prepare_v2(astore.db,
		"INSERT INTO accounts (name, hash, created) VALUES (?1, ?2, "
		"strftime('%s', 'now'))",
		-1, &s, NULL) != SQLITE_OK) {
		account_db_error("register");
		free(hash);
		return;
	}
	sqlite3_bind_text(s, 1, j->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, hash, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		j->status = ACCOUNT_OK;
		j->account = xstrdup(j->name);
	} else if (rc == SQLITE_CONSTRAINT)
		j->status = ACCOUNT_EXISTS;
	else
		account_db_error("register");
	sqlite3_finalize(s);
	free(hash);
}

static void
account_do_login(struct account_job *j)
{
	sqlite3_stmt *s = NULL;
	char *stored = NULL, *name = NULL;
	const char *against;
	int rc;

	j->status = ACCOUNT_FAILED;
	if (astore.db == NULL) /* no database, nor a way to make one */
		rc = SQLITE_DONE;
	else if (
	    sqlite3_prepare_v2(astore.db,
		astore.has_roles
		    ? "SELECT name, hash, roles FROM accounts WHERE name = ?1"
		    : "SELECT name, hash, '' FROM accounts WHERE name = ?1",
		-1, &s, NULL) != SQLITE_OK) {
		account_db_error("login");
		return;
	} else {
		sqlite3_bind_text(s, 1, j->name, -1, SQLITE_STATIC);
		rc = sqlite3_step(s);
	}
	if (rc == SQLITE_ROW) {
		name = xstrdup((const char *)sqlite3_column_text(s, 0));
		stored = xstrdup((const char *)sqlite3_column_text(s, 1));
		if (sqlite3_column_text(s, 2) != NULL)
			j->roles = xstrdup(
			    (const char *)sqlite3_column_text(s, 2));
	} else if (rc != SQLITE_DONE) {
		account_db_error("login");
		sqlite3_finalize(s);
		return;
	}
	sqlite3_finalize(s);
	/* No account: the same work against a hash nobody's password
	 * matches, so that the answer takes as long. */
	against = stored != NULL ? stored : account_dummy(j);
	if (against == NULL) {
		free(name);
		return;
	}
	/* argon2 compares the digests in constant time. */
	rc = argon2id_verify(against, j->password, j->pwlen);
	if (stored != NULL && rc == ARGON2_OK) {
		j->status = ACCOUNT_OK;
		j->account = name;
		name = NULL;
	} else if (rc == ARGON2_OK || rc == ARGON2_VERIFY_MISMATCH ||
	    stored == NULL)
		j->status = ACCOUNT_DENIED;
	else {
		/* A stored hash argon2 cannot read: say so, refuse. */
		log_error("accounts", "cannot check the password of %s: %s",
		    name, argon2_error_message(rc));
		j->status = ACCOUNT_DENIED;
	}
	free(name);
	free(stored);
}

/* Deletes an account, or gives it a new password (the admin API).
 * DENIED when there is no such account. Thread only. */
static void
account_do_admin(struct account_job *j)
{
	sqlite3_stmt *s = NULL;
	char *hash = NULL;
	bool del = j->kind == ACCOUNT_JOB_DELETE;
	bool roles = j->kind == ACCOUNT_JOB_ROLES;
	const char *what = del ? "delete" : roles ? "roles" : "password";

	j->status = ACCOUNT_FAILED;
	if (!del && !roles &&
	    (hash = account_hash(j->password, j->pwlen, j->m_cost, j->t_cost,
		 j->lanes)) == NULL)
		return;
	if (astore.db == NULL || (roles && !astore.has_roles) ||
	    sqlite3_prepare_v2(astore.db,
		del	    ? "DELETE FROM accounts WHERE name = ?1"
		    : roles ? "UPDATE accounts SET roles = ?2 WHERE name = ?1"
			    : "UPDATE accounts SET hash = ?2 WHERE name = ?1",
		-1, &s, NULL) != SQLITE_OK) {
		if (astore.db != NULL)
			account_db_error(what);
		free(hash);
		return;
	}
	sqlite3_bind_text(s, 1, j->name, -1, SQLITE_STATIC);
	if (!del)
		sqlite3_bind_text(
		    s, 2, roles ? j->password : hash, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_DONE)
		j->status = sqlite3_changes(astore.db) > 0 ? ACCOUNT_OK
							   : ACCOUNT_DENIED;
	else
		account_db_error(what);
	if (roles && j->status == ACCOUNT_OK)
		j->account = xstrdup(j->password);
	sqlite3_finalize(s);
	free(hash);
}

/* Reads every account's name into astore.loaded; -1 on a failure. */
static int
account_load_names(void)
{
	sqlite3_stmt *s;
	int rc;

	/* A database of an older server has no roles (a reader cannot
	 * add the column). */
	astore.has_roles = sqlite3_prepare_v2(astore.db,
			       "SELECT roles FROM accounts LIMIT 0", -1, &s,
			       NULL) == SQLITE_OK;
	sqlite3_finalize(s);
	if (sqlite3_prepare_v2(astore.db,
		astore.has_roles ? "SELECT name, roles FROM accounts"
				 : "SELECT name, NULL FROM accounts",
		-1, &s, NULL) != SQLITE_OK)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *roles = (const char *)sqlite3_column_text(s, 1);
		astore.loaded = xreallocarray(
		    astore.loaded, astore.nloaded + 1, sizeof *astore.loaded);
		astore.loaded_roles = xreallocarray(astore.loaded_roles,
		    astore.nloaded + 1, sizeof *astore.loaded_roles);
		astore.loaded_roles[astore.nloaded] = roles != NULL &&
			*roles != '\0'
		    ? xstrdup(roles)
		    : NULL;
		astore.loaded[astore.nloaded++] = xstrdup(
		    (const char *)sqlite3_column_text(s, 0));
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

static void
account_close_db(void)
{
	sqlite3_close(astore.db);
	astore.db = NULL;
	for (size_t i = 0; i < astore.nloaded; i++) {
		free(astore.loaded[i]);
		free(astore.loaded_roles[i]);
	}
	free(astore.loaded);
	free(astore.loaded_roles);
	astore.loaded = NULL;
	astore.loaded_roles = NULL;
	astore.nloaded = 0;
}

/* Brings the table of an older server up to date: the roles column
 * (server roles, since the admin API sets them). -1 with *err (SQLite's)
 * on a failure. */
static int
account_migrate(char **err)
{
	sqlite3_stmt *s = NULL;
	bool has = sqlite3_prepare_v2(astore.db,
		       "SELECT roles FROM accounts LIMIT 0", -1, &s,
		       NULL) == SQLITE_OK;

	sqlite3_finalize(s);
	if (has)
		return 0;
	if (sqlite3_exec(astore.db,
		"ALTER TABLE accounts ADD COLUMN roles TEXT NOT NULL "
		"DEFAULT ''",
		NULL, NULL, err) != SQLITE_OK)
		return -1;
	log_info("accounts", "%s: added the roles column", astore.path);
	return 0;
}

/* Opens the database for writing (created with mode 0600), in WAL mode,
 * and reads the names; -1 with *why (allocated) otherwise. */
static int
account_open_writer(char **why)
{
	char *err = NULL;
	int fd;

	fd = open(astore.path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1) {
		xasprintf(why, "%s", strerror(errno));
		return -1;
	}
	close(fd);
	if (sqlite3_open_v2(astore.path, &astore.db,
		SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(astore.db, 5000);
	if (sqlite3_exec(astore.db,
		"PRAGMA journal_mode = WAL;"
		"PRAGMA synchronous = FULL;"
		"CREATE TABLE IF NOT EXISTS accounts ("
		" name TEXT PRIMARY KEY NOT NULL,"
		" hash TEXT NOT NULL,"
		" created INTEGER NOT NULL,"
		" roles TEXT NOT NULL DEFAULT '')",
		NULL, NULL, &err) != SQLITE_OK ||
	    account_migrate(&err) == -1 || account_load_names() == -1)
		goto fail;
	return 0;
fail:
	xasprintf(why, "%s", err != NULL ? err : sqlite3_errmsg(astore.db));
	sqlite3_free(err);
	account_close_db();
	return -1;
}

/* Opens the database for reading only: plainly, or as an immutable file
 * (a read-only file system where WAL's shared memory cannot be made). */
static int
account_open_reader(void)
{
	int flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX;
	char *uri;
	size_t n;

	if (sqlite3_open_v2(astore.path, &astore.db, flags, NULL) ==
		SQLITE_OK &&
	    account_load_names() == 0)
		return 0;
	account_close_db();
	uri = xmalloc(strlen(astore.path) * 3 + 32);
	n = (size_t)sprintf(uri, "file:");
	for (const char *p = astore.path; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr("/._-", c) != NULL)
			uri[n++] = (char)c;
		else
			n += (size_t)sprintf(uri + n, "%%%02X", c);
	}
	strcpy(uri + n, "?immutable=1");
	if (sqlite3_open_v2(uri, &astore.db, flags | SQLITE_OPEN_URI, NULL) ==
		SQLITE_OK &&
	    account_load_names() == 0) {
		free(uri);
		return 0;
	}
	free(uri);
	account_close_db();
	return -1;
}

/*
 * Opens the database and reads the names. A state directory that cannot
 * be written (full, read-only) does not stop the server, as it does not
 * stop history: the accounts are read (names stay reserved, logins
 * work) and registering fails until the server restarts on a writable
 * one. Only a database that exists and cannot even be read stops it:
 * the names it holds could not be kept for their accounts.
 */
static int
account_open(void)
{
	char *why = NULL;

	if (account_open_writer(&why) == 0)
		return 0;
	if (account_open_reader() == 0 ||
	    (access(astore.path, F_OK) == -1 && errno == ENOENT)) {
		xasprintf(&astore.degraded, "%s: %s", astore.path, why);
		free(why);
		return 0;
	}
	xasprintf(&astore.error,
	    "accounts: %s: %s (accounts = false turns them off)", astore.path,
	    why);
	free(why);
	return -1;
}

static void *
account_thread(void *arg)
{
	struct account_job *j;
	uint64_t one = 1;
	int rc;

	(void)arg;
	rc = account_open();
	pthread_mutex_lock(&astore.lock);
	astore.ready = true;
	pthread_cond_broadcast(&astore.wake);
	if (rc == -1) {
		pthread_mutex_unlock(&astore.lock);
		return NULL;
	}
	for (;;) {
		while (astore.jobs == NULL && !astore.stop)
			pthread_cond_wait(&astore.wake, &astore.lock);
		if (astore.jobs == NULL)
			break;
		j = astore.jobs;
		astore.jobs = j->next;
		if (astore.jobs == NULL)
			astore.jobs_tail = &astore.jobs;
		pthread_mutex_unlock(&astore.lock);
		if (j->kind == ACCOUNT_JOB_REGISTER ||
		    j->kind == ACCOUNT_JOB_CREATE)
			account_do_register(j);
		else if (j->kind == ACCOUNT_JOB_LOGIN)
			account_do_login(j);
		else
			account_do_admin(j);
		account_wipe_free(j->password, j->pwlen + 1);
		j->password = NULL;
		pthread_mutex_lock(&astore.lock);
		astore.njobs--;
		j->next = astore.done;
		astore.done = j;
		if (write(astore.efd, &one, sizeof one) == -1 &&
		    errno != EAGAIN)
			log_error("accounts", "eventfd: %s", strerror(errno));
	}
	pthread_mutex_unlock(&astore.lock);
	return NULL;
}

/* Results, in the loop: settle the failure counts, hand them to chat. */
static void
account_on_done(struct loop_fd *lfd, uint32_t events)
{
	struct account_job *done, *rev = NULL, *j;
	uint64_t n;

	(void)lfd;
	(void)events;
	if (read(astore.efd, &n, sizeof n) == -1 && errno != EAGAIN)
		log_error("accounts", "eventfd: %s", strerror(errno));
	pthread_mutex_lock(&astore.lock);
	done = astore.done;
	astore.done = NULL;
	pthread_mutex_unlock(&astore.lock);
	while (done != NULL) { /* oldest first */
		j = done;
		done = j->next;
		j->next = rev;
		rev = j;
	}
	while ((j = rev) != NULL) {
		rev = j->next;
		if (j->kind == ACCOUNT_JOB_LOGIN) {
			bool failed = j->status == ACCOUNT_DENIED;
			account_fails_end(j->name_key, failed);
			account_fails_end(j->addr_key, failed);
			/* An account made by other means since the start. */
			if (j->status == ACCOUNT_OK &&
			    account_holder(j->account, strlen(j->account)) ==
				NULL)
				account_hold(j->account, strlen(j->account));
			/* Roles changed by other means since the start. */
			if (j->status == ACCOUNT_OK)
				account_roles_keep(j->account, j->roles);
		} else if (j->status != ACCOUNT_OK &&
		    (j->kind == ACCOUNT_JOB_REGISTER ||
			j->kind == ACCOUNT_JOB_CREATE))
			account_release(j->name, strlen(j->name));
		else if (j->status == ACCOUNT_OK &&
		    j->kind == ACCOUNT_JOB_DELETE) {
			account_release(j->name, strlen(j->name));
			account_roles_keep(j->name, NULL);
		} else if (j->status == ACCOUNT_OK &&
		    j->kind == ACCOUNT_JOB_ROLES)
			account_roles_keep(j->name, j->account);
		if (j->done != NULL)
			j->done(j->ticket, j->status);
		else
			chat_account_done(j->client, j->id,
			    j->kind == ACCOUNT_JOB_REGISTER, j->status,
			    j->account);
		account_job_free(j);
	}
}

static int
account_submit(enum account_kind kind, struct client *c, const char *name,
    size_t len, const char *password, size_t pwlen, const json_t *id,
    account_admin_fn done, uint64_t ticket)
{
	struct account_job *j;

	if (astore.njobs >= ACCOUNT_QUEUE_MAX)
		return -1;
	j = xcalloc(1, sizeof *j);
	j->kind = kind;
	j->client = c != NULL ? c->id : 0;
	j->done = done;
	j->ticket = ticket;
	j->id = id != NULL ? json_incref((json_t *)id) : NULL;
	j->name = xstrndup(name, len);
	j->password = xmalloc(pwlen + 1);
	memcpy(j->password, password, pwlen);
	j->password[pwlen] = '\0';
	j->pwlen = pwlen;
	j->m_cost = cfg->password_memory_kib;
	j->t_cost = cfg->password_iterations;
	j->lanes = cfg->password_parallelism;
	if (kind == ACCOUNT_JOB_LOGIN) {
		j->name_key = account_fails_key('n', name, len);
		j->addr_key = account_fails_key('a', c->addr, strlen(c->addr));
		account_fails_start(j->name_key);
		account_fails_start(j->addr_key);
	}
	pthread_mutex_lock(&astore.lock);
	*astore.jobs_tail = j;
	astore.jobs_tail = &j->next;
	astore.njobs++;
	pthread_cond_signal(&astore.wake);
	pthread_mutex_unlock(&astore.lock);
	return 0;
}

int
account_register(struct client *c, const char *name, size_t len,
    const char *password, size_t pwlen, const json_t *id)
{
	if (!account_hold(name, len))
		return -1;
	if (account_submit(ACCOUNT_JOB_REGISTER, c, name, len, password, pwlen,
		id, NULL, 0) == -1) {
		account_release(name, len);
		return -1;
	}
	return 0;
}

int
account_login(struct client *c, const char *name, size_t len,
    const char *password, size_t pwlen, const json_t *id)
{
	const char *held = account_holder(name, len);

	/* The name as registered finds the row whatever the letter case. */
	if (held != NULL) {
		name = held;
		len = strlen(held);
	}
	return account_submit(
	    ACCOUNT_JOB_LOGIN, c, name, len, password, pwlen, id, NULL, 0);
}

int
account_admin(enum account_op op, const char *name, size_t len,
    const char *password, size_t pwlen, account_admin_fn done, uint64_t ticket)
{
	static const enum account_kind kinds[] = {
		[ACCOUNT_OP_CREATE] = ACCOUNT_JOB_CREATE,
		[ACCOUNT_OP_DELETE] = ACCOUNT_JOB_DELETE,
		[ACCOUNT_OP_PASSWORD] = ACCOUNT_JOB_PASSWORD,
		[ACCOUNT_OP_ROLES] = ACCOUNT_JOB_ROLES,
	};

	if (op == ACCOUNT_OP_CREATE && !account_hold(name, len))
		return -1;
	if (account_submit(kinds[op], NULL, name, len,
		password != NULL ? password : "", password != NULL ? pwlen : 0,
		NULL, done, ticket) == -1) {
		if (op == ACCOUNT_OP_CREATE)
			account_release(name, len);
		return -1;
	}
	return 0;
}

int
account_init(char **cause)
{
	map_init(&account_names);
	map_init(&account_role_map);
	map_init(&account_fails);
	if (!cfg->accounts)
		return 0;
	astore.jobs_tail = &astore.jobs;
	xasprintf(&astore.path, "%s/accounts.db", cfg->state_dir);
	astore.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (astore.efd == -1) {
		xasprintf(cause, "eventfd: %s", strerror(errno));
		return -1;
	}
	pthread_mutex_init(&astore.lock, NULL);
	pthread_cond_init(&astore.wake, NULL);
	if (pthread_create(&astore.thread, NULL, account_thread, NULL) != 0) {
		xasprintf(cause, "accounts: cannot start a thread");
		return -1;
	}
	astore.running = true;
	/* The names must be known before the first client comes. */
	pthread_mutex_lock(&astore.lock);
	while (!astore.ready)
		pthread_cond_wait(&astore.wake, &astore.lock);
	pthread_mutex_unlock(&astore.lock);
	if (astore.error != NULL) {
		*cause = astore.error;
		astore.error = NULL;
		pthread_join(astore.thread, NULL);
		astore.running = false;
		return -1;
	}
	for (size_t i = 0; i < astore.nloaded; i++) {
		if (!account_hold(astore.loaded[i], strlen(astore.loaded[i])))
			log_warn("accounts",
			    "%s: accounts %s and another "
			    "compare equal; only one can log in",
			    astore.path, astore.loaded[i]);
		else
			account_roles_keep(
			    astore.loaded[i], astore.loaded_roles[i]);
		free(astore.loaded[i]);
		free(astore.loaded_roles[i]);
	}
	log_info("accounts", "%zu accounts in %s", astore.nloaded, astore.path);
	if (astore.degraded != NULL) {
		/* Loud, as history's is: people cannot register meanwhile. */
		log_error("accounts",
		    "CANNOT WRITE ACCOUNTS: %s; logins work, "
		    "registering fails until the server restarts with a "
		    "state_dir it can write",
		    astore.degraded);
		free(astore.degraded);
		astore.degraded = NULL;
		account_ro = true;
	}
	free(astore.loaded);
	free(astore.loaded_roles);
	astore.loaded = NULL;
	astore.loaded_roles = NULL;
	if (loop_fd_add(&astore.lfd, astore.efd, EPOLLIN, account_on_done) ==
	    -1) {
		xasprintf(cause, "accounts: cannot watch the eventfd");
		return -1;
	}
	loop_timer_set(&account_sweep_timer, ACCOUNT_SWEEP_MS, account_sweep);
	account_on = true;
	return 0;
}

void
account_free(void)
{
	const char *key;
	void *v;
	size_t pos = 0;

	if (astore.running) {
		struct account_job *waiting;

		/* Clients are gone: jobs not started are dropped (nobody
		 * waits for them), the one under way ends. */
		pthread_mutex_lock(&astore.lock);
		waiting = astore.jobs;
		astore.jobs = NULL;
		astore.jobs_tail = &astore.jobs;
		astore.stop = true;
		pthread_cond_signal(&astore.wake);
		pthread_mutex_unlock(&astore.lock);
		pthread_join(astore.thread, NULL);
		astore.running = false;
		while (waiting != NULL) {
			struct account_job *j = waiting;
			waiting = j->next;
			account_job_free(j);
		}
		while (astore.done != NULL) {
			struct account_job *j = astore.done;
			astore.done = j->next;
			account_job_free(j);
		}
	}
	if (astore.efd != -1) {
		if (account_on)
			loop_fd_remove(&astore.lfd);
		close(astore.efd);
		astore.efd = -1;
	}
	if (astore.db != NULL)
		sqlite3_close(astore.db);
	astore.db = NULL;
	free(astore.dummy);
	astore.dummy = NULL;
	account_ro = false;
	free(astore.path);
	astore.path = NULL;
	loop_timer_cancel(&account_sweep_timer);
	account_on = false;
	while (map_next(&account_names, &pos, &key, &v))
		free(v);
	map_free(&account_names);
	pos = 0;
	while (map_next(&account_role_map, &pos, &key, &v))
		free(v);
	map_free(&account_role_map);
	pos = 0;
	while (map_next(&account_fails, &pos, &key, &v))
		free(v);
	map_free(&account_fails);
}

#else /* built without SQLite or argon2: no accounts */

int
account_admin(enum account_op op, const char *name, size_t len,
    const char *password, size_t pwlen, account_admin_fn done, uint64_t ticket)
{
	return -1;
}

int
account_register(struct client *c, const char *name, size_t len,
    const char *password, size_t pwlen, const json_t *id)
{
	return -1;
}

int
account_login(struct client *c, const char *name, size_t len,
    const char *password, size_t pwlen, const json_t *id)
{
	return -1;
}

int
account_init(char **cause)
{
	map_init(&account_names);
	map_init(&account_role_map);
	map_init(&account_fails);
	if (cfg->accounts)
		log_info("accounts",
		    "this build has no accounts (it needs "
		    "SQLite and libargon2)");
	return 0;
}

void
account_free(void)
{
	map_free(&account_names);
	map_free(&account_role_map);
	map_free(&account_fails);
}

#endif
