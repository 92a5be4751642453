/*
 * limit.c: the server's defences against one party taking more than its
 * share: token buckets (per client for messages, rooms, names and
 * requests; per address for new connections), per-address connection
 * counts, temporary bans for addresses that keep misbehaving, and the
 * back-off on operator password guesses (per address, IPv6 by /64, and
 * server-wide). Address state lives in a map that is swept a few slots
 * per tick, so no step scans everything. Loopback and trusted proxies
 * are never limited per address: one of them is many people
 * (http_address_exempt).
 */
#include "config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley.h"

struct limit_addr {
	unsigned conns;           /* open WebSocket clients */
	unsigned refs;            /* clients holding text */
	struct bucket connects;   /* new upgrades */
	unsigned strikes;         /* violations in the current window */
	uint64_t strike_start;    /* loop_now() when the window began */
	uint64_t banned_until;    /* loop_now() ms; 0 when not banned */
	struct limit_backoff oper; /* wrong operator passwords */
	char text[];              /* the address */
};

static struct map limit_addrs;
static struct limit_backoff limit_oper_all; /* from every address */
static size_t limit_sweep_pos;
static struct loop_timer limit_timer;
static uint64_t limit_epoch; /* loop_now() at start: bucket times are
				 32-bit offsets from it */

void
bucket_init(struct bucket *b, unsigned burst)
{
	b->tokens = (float)burst;
	b->last = (uint32_t)(loop_now() - limit_epoch);
}

static void
bucket_refill(struct bucket *b, unsigned per_minute, unsigned burst)
{
	uint32_t now = (uint32_t)(loop_now() - limit_epoch);
	uint32_t elapsed = now - b->last;

	b->last = now;
	b->tokens += (float)elapsed * (float)per_minute / 60000.0f;
	if (b->tokens > (float)burst)
		b->tokens = (float)burst;
}

bool
bucket_take(struct bucket *b, unsigned per_minute, unsigned burst)
{
	if (per_minute == 0)
		return true; /* 0 turns the limit off */
	bucket_refill(b, per_minute, burst);
	if (b->tokens < 1.0f)
		return false;
	b->tokens -= 1.0f;
	return true;
}

static struct limit_addr *
limit_addr_get(const char *addr, bool create)
{
	struct limit_addr *a = map_find(&limit_addrs, addr, strlen(addr));

	if (a == NULL && create) {
		size_t len = strlen(addr);
		a = xcalloc(1, sizeof *a + len + 1);
		memcpy(a->text, addr, len);
		bucket_init(&a->connects, cfg->connect_burst_per_ip);
		map_add(&limit_addrs, addr, strlen(addr), a);
	}
	return a;
}

enum limit_admit
limit_admit(const char *addr, unsigned *retry_after)
{
	struct limit_addr *a;

	*retry_after = 0;
	/* A held session keeps its place, so that dropping and coming
	 * back in a loop cannot grow the server. */
	if (conn_count() + session_held() >= cfg->max_connections)
		return LIMIT_FULL;
	if (http_address_exempt(addr))
		return LIMIT_OK;
	a = limit_addr_get(addr, true);
	if (a->banned_until > loop_now()) {
		*retry_after = (unsigned)((a->banned_until - loop_now()) /
		    1000 + 1);
		return LIMIT_BANNED;
	}
	if (a->conns >= cfg->max_connections_per_ip) {
		limit_strike(addr);
		return LIMIT_ADDR_FULL;
	}
	if (!bucket_take(&a->connects, cfg->connects_per_minute_per_ip,
	    cfg->connect_burst_per_ip)) {
		*retry_after = 1;
		limit_strike(addr);
		return LIMIT_RATE;
	}
	return LIMIT_OK;
}

/* Clients keep their address as a pointer to the one copy here: an
 * address already has its record while any of its clients is open. */
const char *
limit_addr_ref(const char *addr)
{
	struct limit_addr *a = limit_addr_get(addr, true);

	a->refs++;
	return a->text;
}

void
limit_addr_unref(const char *text)
{
	struct limit_addr *a = limit_addr_get(text, false);

	if (a != NULL && a->refs > 0)
		a->refs--;
}

void
limit_conn_open(const char *addr)
{
	limit_addr_get(addr, true)->conns++;
}

void
limit_conn_close(const char *addr)
{
	struct limit_addr *a = limit_addr_get(addr, false);

	if (a != NULL && a->conns > 0)
		a->conns--;
}

bool
limit_strike(const char *addr)
{
	struct limit_addr *a;
	uint64_t now = loop_now();

	if (cfg->ban_after == 0 || http_address_exempt(addr))
		return false;
	a = limit_addr_get(addr, true);
	if (now - a->strike_start > (uint64_t)cfg->ban_window * 1000) {
		a->strike_start = now;
		a->strikes = 0;
	}
	if (++a->strikes < cfg->ban_after)
		return false;
	a->strikes = 0;
	a->banned_until = now + (uint64_t)cfg->ban_seconds * 1000;
	log_warn("core", "address %s banned for %us after %u violations "
	    "within %us", addr, cfg->ban_seconds, cfg->ban_after,
	    cfg->ban_window);
	return true;
}

/*
 * Operator password guesses. Each address may get LIMIT_OPER_FREE wrong
 * in a row at once (people mistype); after that each wrong guess doubles
 * the wait before the next one is even checked, from a minute up to
 * oper_backoff_max. The server as a whole gets oper_failures_global
 * wrong guesses before the same back-off applies to every address, so
 * an attacker with many addresses gets no more; the price is that the
 * real operator waits too during such an attack, which the log says.
 * Counts are forgotten after oper_backoff_max seconds without a wrong
 * guess, or, for one address, on a right one.
 */
#define LIMIT_OPER_FREE 3
#define LIMIT_OPER_FIRST_WAIT 60000 /* ms */

/* IPv6 hands out a /64 to one customer, so a /64 counts as one address. */
static void
limit_oper_key(const char *addr, char *out, size_t size)
{
	struct in6_addr a6;
	char text[INET6_ADDRSTRLEN];

	if (inet_pton(AF_INET6, addr, &a6) == 1 &&
	    !IN6_IS_ADDR_V4MAPPED(&a6)) {
		memset(a6.s6_addr + 8, 0, 8);
		if (inet_ntop(AF_INET6, &a6, text, sizeof text) != NULL) {
			snprintf(out, size, "%s/64", text);
			return;
		}
	}
	snprintf(out, size, "%s", addr);
}

static bool
limit_backoff_idle(const struct limit_backoff *b, uint64_t now)
{
	return b->fails == 0 || (now >= b->until &&
	    now - b->last > (uint64_t)cfg->oper_backoff_max * 1000);
}

/* Milliseconds before b lets a guess through; 0: now. */
static uint64_t
limit_backoff_wait(struct limit_backoff *b, uint64_t now)
{
	if (b->fails != 0 && limit_backoff_idle(b, now))
		b->fails = 0;
	return b->until > now ? b->until - now : 0;
}

/* Counts a wrong guess; returns the new wait in ms (0: none yet). */
static uint64_t
limit_backoff_fail(struct limit_backoff *b, unsigned free_fails,
    uint64_t now)
{
	uint64_t wait, max = (uint64_t)cfg->oper_backoff_max * 1000;
	unsigned over;

	if (limit_backoff_idle(b, now))
		b->fails = 0;
	b->fails++;
	b->last = now;
	if (b->fails < free_fails)
		return 0;
	over = b->fails - free_fails;
	wait = over >= 20 ? max : (uint64_t)LIMIT_OPER_FIRST_WAIT << over;
	if (wait > max)
		wait = max;
	b->until = now + wait;
	return wait;
}

unsigned
limit_oper_wait(const char *addr)
{
	uint64_t now = loop_now(), wait = limit_backoff_wait(&limit_oper_all,
	    now);

	if (addr != NULL) {
		char key[INET6_ADDRSTRLEN + 8];
		struct limit_addr *a;
		uint64_t w;

		limit_oper_key(addr, key, sizeof key);
		a = limit_addr_get(key, false);
		if (a != NULL && (w = limit_backoff_wait(&a->oper, now)) > wait)
			wait = w;
	}
	if (wait == 0)
		return 0;
	metrics_add(METRIC_OPER_REFUSED, 1);
	return (unsigned)((wait + 999) / 1000);
}

void
limit_oper_result(const char *addr, bool ok)
{
	uint64_t now = loop_now(), w;
	char key[INET6_ADDRSTRLEN + 8];
	struct limit_addr *a = NULL;

	if (addr != NULL) {
		limit_oper_key(addr, key, sizeof key);
		a = limit_addr_get(key, !ok);
	}
	if (ok) {
		if (a != NULL)
			memset(&a->oper, 0, sizeof a->oper);
		return;
	}
	metrics_add(METRIC_OPER_FAILURES, 1);
	if (a != NULL && (w = limit_backoff_fail(&a->oper, LIMIT_OPER_FREE,
	    now)) != 0)
		log_warn("core", "operator password: %u wrong from %s; the "
		    "next guess from there is checked in %llus", a->oper.fails,
		    key, (unsigned long long)(w / 1000));
	w = limit_backoff_fail(&limit_oper_all, cfg->oper_failures_global,
	    now);
	if (w != 0)
		log_warn("core", "operator password: %u wrong server-wide; no "
		    "guess from any address is checked for %llus",
		    limit_oper_all.fails, (unsigned long long)(w / 1000));
}

/* A broken or hostile client is closed; whether that also counts against
 * everyone behind its address (a NAT, a campus) is the admin's choice. */
bool
limit_violation(const char *addr)
{
	return cfg->ban_on_violations && limit_strike(addr);
}

/* Forgets addresses with nothing to remember, a few slots per call. */
void
limit_sweep(void)
{
	uint64_t now = loop_now();

	for (int i = 0; i < 64; i++) {
		const char *key;
		void *v;
		struct limit_addr *a;

		if (!map_next(&limit_addrs, &limit_sweep_pos, &key, &v)) {
			limit_sweep_pos = 0;
			return;
		}
		a = v;
		bucket_refill(&a->connects, cfg->connects_per_minute_per_ip,
		    cfg->connect_burst_per_ip);
		if (a->conns == 0 && a->refs == 0 && a->banned_until <= now &&
		    now - a->strike_start > (uint64_t)cfg->ban_window * 1000 &&
		    a->connects.tokens >= (float)cfg->connect_burst_per_ip &&
		    limit_backoff_idle(&a->oper, now)) {
			map_remove(&limit_addrs, key, strlen(key));
			free(a);
		}
	}
}

static void
limit_on_timer(struct loop_timer *t)
{
	limit_sweep();
	loop_timer_set(t, 1000, limit_on_timer);
}

void
limit_init(void)
{
	limit_epoch = loop_now();
	memset(&limit_oper_all, 0, sizeof limit_oper_all);
	map_init(&limit_addrs);
	loop_timer_set(&limit_timer, 1000, limit_on_timer);
}

void
limit_free(void)
{
	size_t pos = 0;
	void *v;

	loop_timer_cancel(&limit_timer);
	while (map_next(&limit_addrs, &pos, NULL, &v))
		free(v);
	map_free(&limit_addrs);
}
