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

/* A slot holds the address with the kind in its low bits: every object
 * registered is aligned to 8 bytes, and a live connection should cost a
 * few bytes here, not sixteen. */
#define HANDLE_KIND_BITS 3u
#define HANDLE_KIND_MASK ((uintptr_t)((1u << HANDLE_KIND_BITS) - 1))
#define HANDLE_TOMB ((uintptr_t)1) /* removed (no address is 1) */

static uintptr_t *handle_slots; /* 0: empty; HANDLE_TOMB: removed */
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

/* The slot holding p (any kind), or NULL. */
static uintptr_t *
handle_slot(uintptr_t p)
{
	size_t mask = handle_cap - 1, i;

	if (handle_cap == 0)
		return NULL;
	for (i = handle_hash(p) & mask;; i = (i + 1) & mask) {
		if (handle_slots[i] > HANDLE_TOMB &&
		    (handle_slots[i] & ~HANDLE_KIND_MASK) == p)
			return &handle_slots[i];
		if (handle_slots[i] == 0)
			return NULL;
	}
}

static void
handle_insert(uintptr_t entry)
{
	size_t mask = handle_cap - 1, i;

	for (i = handle_hash(entry & ~HANDLE_KIND_MASK) & mask;
	     handle_slots[i] > HANDLE_TOMB; i = (i + 1) & mask)
		;
	if (handle_slots[i] == 0)
		handle_used++;
	handle_slots[i] = entry;
	handle_live++;
}

/* Rehashes into a table at most three quarters full after the next add,
 * and at least a third full (or 64 slots). */
static void
handle_resize(void)
{
	uintptr_t *old = handle_slots;
	size_t old_cap = handle_cap;

	handle_cap = 64;
	while ((handle_live + 1) * 4 > handle_cap * 3 / 2)
		handle_cap *= 2;
	handle_slots = xcalloc(handle_cap, sizeof *handle_slots);
	handle_used = handle_live = 0;
	for (size_t i = 0; i < old_cap; i++) {
		if (old[i] > HANDLE_TOMB)
			handle_insert(old[i]);
	}
	free(old);
}

void
handle_add(const void *p, enum handle_kind kind)
{
	uintptr_t key = (uintptr_t)p;

	PARLEY_ASSERT(key != 0 && (key & HANDLE_KIND_MASK) == 0 &&
	    (unsigned)kind <= HANDLE_KIND_MASK && handle_slot(key) == NULL);
	if ((handle_used + 1) * 4 > handle_cap * 3)
		handle_resize();
	handle_insert(key | (uintptr_t)kind);
}

void
handle_remove(const void *p)
{
	uintptr_t *s = handle_slot((uintptr_t)p);

	if (s != NULL) {
		*s = HANDLE_TOMB;
		handle_live--;
	}
}

bool
handle_valid(const void *p, enum handle_kind kind)
{
	const uintptr_t *s;

	if (p == NULL || ((uintptr_t)p & HANDLE_KIND_MASK) != 0)
		return false;
	s = handle_slot((uintptr_t)p);
	return s != NULL && (*s & HANDLE_KIND_MASK) == (uintptr_t)kind;
}

void
handle_free_all(void)
{
	free(handle_slots);
	handle_slots = NULL;
	handle_cap = handle_used = handle_live = 0;
}
