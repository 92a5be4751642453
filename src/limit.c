/*
 * limit.c: the server's defences against one party taking more than its
 * share: token buckets (per client for messages, rooms, names and
 * requests; per address for new connections), per-address connection
 * counts, and temporary bans for addresses that keep misbehaving. Address
 * state lives in a map that is swept a few slots per tick, so no step
 * scans everything.
 */
#include "config.h"

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
	char text[];              /* the address */
};

static struct map limit_addrs;
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
	if (conn_count() >= cfg->max_connections)
		return LIMIT_FULL;
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
	struct limit_addr *a = limit_addr_get(addr, true);
	uint64_t now = loop_now();

	if (cfg->ban_after == 0)
		return false;
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
		    a->connects.tokens >= (float)cfg->connect_burst_per_ip) {
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
