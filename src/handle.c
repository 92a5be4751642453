/*
 * handle.c: the registry of live objects whose addresses plugins hold as
 * opaque handles (clients, rooms, history sinks, running commands). A
 * handle that comes back from a plugin is looked up here before it is
 * used, so a stale or made-up pointer is refused instead of read: nothing
 * is learnt by reading memory the pointer may no longer own. An open
 * addressing set keyed by address; the hot path (a lookup per host call)
 * is one hash and usually one probe.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "parley.h"

struct handle_slot {
	uintptr_t p; /* 0: empty; HANDLE_TOMB: removed */
	enum handle_kind kind;
};

#define HANDLE_TOMB ((uintptr_t)1)

static struct handle_slot *handle_slots;
static size_t handle_cap; /* power of two, or 0 */
static size_t handle_used; /* live plus tombstones */
static size_t handle_live;

static size_t
handle_hash(uintptr_t p)
{
	uint64_t x = (uint64_t)p;

	/* Addresses are aligned and clustered: mix the bits (splitmix64). */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return (size_t)x;
}

static struct handle_slot *
handle_slot(uintptr_t p)
{
	size_t mask = handle_cap - 1, i;

	if (handle_cap == 0)
		return NULL;
	for (i = handle_hash(p) & mask;; i = (i + 1) & mask) {
		if (handle_slots[i].p == p)
			return &handle_slots[i];
		if (handle_slots[i].p == 0)
			return NULL;
	}
}

static void
handle_insert(uintptr_t p, enum handle_kind kind)
{
	size_t mask = handle_cap - 1, i;

	for (i = handle_hash(p) & mask; handle_slots[i].p > HANDLE_TOMB;
	     i = (i + 1) & mask)
		;
	if (handle_slots[i].p == 0)
		handle_used++;
	handle_slots[i].p = p;
	handle_slots[i].kind = kind;
	handle_live++;
}

static void
handle_grow(void)
{
	struct handle_slot *old = handle_slots;
	size_t old_cap = handle_cap;

	/* Double when live entries fill half; else only rehash away the
	 * tombstones. */
	handle_cap = handle_cap ? handle_cap : 64;
	if (handle_live * 2 >= handle_cap)
		handle_cap *= 2;
	handle_slots = xcalloc(handle_cap, sizeof *handle_slots);
	handle_used = handle_live = 0;
	for (size_t i = 0; i < old_cap; i++) {
		if (old[i].p > HANDLE_TOMB)
			handle_insert(old[i].p, old[i].kind);
	}
	free(old);
}

void
handle_add(const void *p, enum handle_kind kind)
{
	uintptr_t key = (uintptr_t)p;

	PARLEY_ASSERT(key > HANDLE_TOMB && handle_slot(key) == NULL);
	if ((handle_used + 1) * 4 > handle_cap * 3)
		handle_grow();
	handle_insert(key, kind);
}

void
handle_remove(const void *p)
{
	struct handle_slot *s = handle_slot((uintptr_t)p);

	if (s != NULL) {
		s->p = HANDLE_TOMB;
		handle_live--;
	}
}

bool
handle_valid(const void *p, enum handle_kind kind)
{
	const struct handle_slot *s;

	if ((uintptr_t)p <= HANDLE_TOMB)
		return false;
	s = handle_slot((uintptr_t)p);
	return s != NULL && s->kind == kind;
}

void
handle_free_all(void)
{
	free(handle_slots);
	handle_slots = NULL;
	handle_cap = handle_used = handle_live = 0;
}
