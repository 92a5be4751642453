/*
 * session.c: sessions that outlive their connection (protocol 1.1,
 * "Resume"). Every client gets a secret with its welcome and a new one
 * each time it resumes; only the secret's SHA-256 is kept, in the client,
 * and clients are found by it through a set that reads the hash from the
 * client itself. A client whose connection dropped is held: the same
 * client object, still in its rooms and holding its name, but without a
 * socket, queue or codec state, until a resume takes it over or
 * resume_grace runs out. chat.c decides who is held; this file keeps the
 * secrets, the hold timers and the count of held clients.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <nettle/base64.h>
#include <nettle/memops.h>
#include <nettle/sha2.h>

#include <parley/plugin.h>

#include "parley.h"

#define SESSION_SECRET_BYTES 24 /* 192 bits from the kernel's CSPRNG */
#define SESSION_SECRET_MAX 256 /* longer presented secrets are wrong */

#define SESSION_TRIM_AFTER 1000 /* sessions held or ended, ... */
#define SESSION_TRIM_QUIET_MS 1000 /* ... then this long without any */

static unsigned session_held_count;
static uint64_t session_resumes, session_expiries; /* for /metrics */
static bool session_metrics_registered;
static unsigned session_churn; /* sessions held or ended since the trim */
static struct loop_timer session_trim_timer;

static void session_churned(void);

static uint64_t
session_set_hash(const void *v)
{
	const struct client *c = v;
	uint64_t h;

	memcpy(&h, c->session, sizeof h);
	return h;
}

static struct set session_set = { .hash = session_set_hash };

static bool
session_match(const void *v, const void *key)
{
	const struct client *c = v;

	/* The first 16 bytes of the hash: 128 bits are ample to tell
	 * apart the sessions of 192-bit random secrets. */
	return memeql_sec(c->session, key, sizeof c->session) != 0;
}

static void
session_digest(const char *secret, size_t len, uint8_t *out)
{
	struct sha256_ctx ctx;

	sha256_init(&ctx);
	sha256_update(&ctx, len, (const uint8_t *)secret);
	sha256_digest(&ctx, SHA256_DIGEST_SIZE, out);
}

static void
session_metrics(struct metrics_buf *mb)
{
	metrics_printf(mb,
	    "# HELP parley_sessions_held Sessions held for a resume after "
	    "their connection dropped\n# TYPE parley_sessions_held gauge\n"
	    "parley_sessions_held %u\n"
	    "# HELP parley_resumes_total Sessions taken over by a resume\n"
	    "# TYPE parley_resumes_total counter\nparley_resumes_total "
	    "%llu\n"
	    "# HELP parley_sessions_expired_total Held sessions whose grace "
	    "ran out\n# TYPE parley_sessions_expired_total counter\n"
	    "parley_sessions_expired_total %llu\n",
	    session_held_count, (unsigned long long)session_resumes,
	    (unsigned long long)session_expiries);
}

char *
session_issue(struct client *c)
{
	uint8_t raw[SESSION_SECRET_BYTES];
	uint8_t d[SHA256_DIGEST_SIZE];
	struct base64_encode_ctx b64;
	char *secret = xmalloc(BASE64_ENCODE_RAW_LENGTH(sizeof raw) + 1);
	size_t n;

	if (cfg->resume_grace == 0) {
		free(secret);
		return NULL;
	}
	if (!session_metrics_registered) {
		metrics_register(session_metrics);
		session_metrics_registered = true;
	}
	if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
		fatal("getrandom: %s", strerror(errno));
	base64url_encode_init(&b64);
	n = base64_encode_update(&b64, secret, sizeof raw, raw);
	n += base64_encode_final(&b64, secret + n);
	secret[n] = '\0';
	explicit_bzero(raw, sizeof raw);
	session_forget(c);
	session_digest(secret, n, d);
	memcpy(c->session, d, sizeof c->session);
	explicit_bzero(d, sizeof d);
	c->has_session = true;
	set_add(&session_set, c);
	plugin_relay_session(c, PARLEY_RELAY_SESSION_OPEN, 0);
	return secret;
}

struct client *
session_find(const char *secret, size_t len)
{
	uint8_t d[SHA256_DIGEST_SIZE];

	if (!session_digest_of(secret, len, d))
		return NULL;
	return session_find_hash(d);
}

/* ---- Sessions across servers: a plugin (the cluster's) keeps the
 * hashes of this server's sessions where the other servers find them,
 * and moves a session to the server its client resumed on. */

bool
session_digest_of(const char *secret, size_t len, uint8_t *out)
{
	if (len == 0 || len > SESSION_SECRET_MAX)
		return false;
	session_digest(secret, len, out);
	return true;
}

struct client *
session_find_hash(const uint8_t *hash)
{
	uint64_t h;
	struct client *c;

	memcpy(&h, hash, sizeof h);
	c = set_find(&session_set, h, session_match, hash);
	return c != NULL && !c->dead ? c : NULL;
}

char *
session_state(const struct client *c, bool brief)
{
	char hex[2 * SESSION_DIGEST_BYTES + 1];
	json_t *o;
	char *s;

	/* The hash the cluster knows a session by is what the client
	 * keeps of it: the first 16 bytes. */
	for (size_t i = 0; i < SESSION_DIGEST_BYTES; i++)
		snprintf(hex + 2 * i, 3, "%02x", c->session[i]);
	o = brief
	    ? json_pack("{s:s}", "hash", hex)
	    : json_pack("{s:s, s:o, s:o, s:o}", "hash", hex, "account",
		  c->account ? json_string(c->account) : json_null(), "roles",
		  client_roles(c), "key", json_string(client_session_key(c)));
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s == NULL)
		fatal("out of memory");
	explicit_bzero(hex, sizeof hex);
	return s;
}

void
session_forget(struct client *c)
{
	if (!c->has_session)
		return;
	plugin_relay_session(c, PARLEY_RELAY_SESSION_GONE, 0);
	set_remove(&session_set, c);
	c->has_session = false;
	explicit_bzero(c->session, sizeof c->session);
	if (c->held)
		session_unhold(c);
}

static void
session_expire(struct loop_timer *t)
{
	struct client *c = container_of(t, struct client, timer);

	log_info("core", "client %llu (%s): not resumed within %us",
	    (unsigned long long)c->id, c->addr, cfg->resume_grace);
	session_expiries++;
	session_unhold(c);
	limit_conn_close(c->addr);
	chat_disconnect(c, "timeout");
}

static void
session_end_now(struct loop_timer *t)
{
	struct client *c = container_of(t, struct client, timer);

	session_unhold(c);
	limit_conn_close(c->addr);
	chat_disconnect(c, "disconnected");
}

void
session_end(struct client *c)
{
	/* Not here: the caller may be walking a room's members. */
	if (c->held)
		loop_timer_set(&c->timer, 0, session_end_now);
}

bool
session_hold(struct client *c)
{
	if (cfg->resume_grace == 0 || !c->has_session || c->dead || c->held)
		return false;
	c->held = true;
	session_held_count++;
	session_churned();
	loop_timer_set(
	    &c->timer, (uint64_t)cfg->resume_grace * 1000, session_expire);
	plugin_relay_session(c, PARLEY_RELAY_SESSION_HELD,
	    loop_wall_ms() + (uint64_t)cfg->resume_grace * 1000);
	return true;
}

/*
 * A storm of drops and resumes (a network blip takes thousands of
 * phones at once) frees and allocates at once the small objects of
 * thousands of connections, interleaved with what stays: the allocator
 * then keeps many half-empty pages it no longer uses. Once the storm
 * has passed, giving those pages back keeps the server at the size it
 * had before (bench/resume-storm.py).
 */
static void
session_trim(struct loop_timer *t)
{
	(void)t;
	if (session_churn < SESSION_TRIM_AFTER)
		return;
	session_churn = 0;
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

/* One more session held or ended: a trim once they stop coming. */
static void
session_churned(void)
{
	session_churn++;
	loop_timer_set(
	    &session_trim_timer, SESSION_TRIM_QUIET_MS, session_trim);
}

void
session_unhold(struct client *c)
{
	if (!c->held)
		return;
	c->held = false;
	session_held_count--;
	loop_timer_cancel(&c->timer);
	session_churned();
}

void
session_resumed(struct client *s)
{
	session_unhold(s);
	session_resumes++;
}

unsigned
session_held(void)
{
	return session_held_count;
}

void
session_drop_all(void)
{
	struct client *c, *next;

	for (c = clients; c != NULL; c = next) {
		next = c->next;
		if (c->held) {
			session_unhold(c);
			limit_conn_close(c->addr);
			chat_disconnect(c, "disconnected");
		}
	}
	loop_timer_cancel(&session_trim_timer);
}
