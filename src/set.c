/*
 * set.c: a hash set of pointers with open addressing and linear probing,
 * for objects that carry their own key (clients by id and by folded
 * name). A slot is one pointer: the key is never copied, the set's hash
 * function reads it from the object, and a lookup's match function
 * compares it. At 10,000 clients an index costs about 13 bytes each,
 * where a string-keyed map (map.c) costs about 85 with its key copies.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "parley.h"

static char set_tombstone;
#define SET_TOMBSTONE ((void *)&set_tombstone)

/* A 64-bit mix (splitmix64's finaliser): ids are sequential, and linear
 * probing needs them spread. */
uint64_t
set_hash_u64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

void
set_free(struct set *s)
{
	free(s->slots);
	s->slots = NULL;
	s->cap = s->count = s->used = 0;
}

static void
set_insert(struct set *s, void *value)
{
	size_t mask = s->cap - 1;

	for (size_t i = s->hash(value) & mask;; i = (i + 1) & mask) {
		if (s->slots[i] == NULL || s->slots[i] == SET_TOMBSTONE) {
			if (s->slots[i] == NULL)
				s->used++;
			s->slots[i] = value;
			s->count++;
			return;
		}
	}
}

static void
set_resize(struct set *s, size_t cap)
{
	void **old = s->slots;
	size_t oldcap = s->cap;

	s->slots = xcalloc(cap, sizeof *s->slots);
	s->cap = cap;
	s->count = s->used = 0;
	for (size_t i = 0; i < oldcap; i++) {
		if (old[i] != NULL && old[i] != SET_TOMBSTONE)
			set_insert(s, old[i]);
	}
	free(old);
}

void
set_add(struct set *s, void *value)
{
	/* Keep the load (tombstones included) under 3/4. */
	if ((s->used + 1) * 4 > s->cap * 3) {
		size_t cap = s->cap ? s->cap : 16;
		while ((s->count + 1) * 2 > cap)
			cap *= 2;
		set_resize(s, cap);
	}
	set_insert(s, value);
}

void *
set_find(const struct set *s, uint64_t hash,
    bool (*match)(const void *value, const void *key), const void *key)
{
	size_t mask = s->cap - 1;

	if (s->cap == 0)
		return NULL;
	for (size_t i = hash & mask;; i = (i + 1) & mask) {
		void *v = s->slots[i];
		if (v == NULL)
			return NULL;
		if (v != SET_TOMBSTONE && match(v, key))
			return v;
	}
}

bool
set_remove(struct set *s, const void *value)
{
	size_t mask = s->cap - 1;

	if (s->cap == 0)
		return false;
	for (size_t i = s->hash(value) & mask;; i = (i + 1) & mask) {
		if (s->slots[i] == NULL)
			return false;
		if (s->slots[i] == value) {
			s->slots[i] = SET_TOMBSTONE;
			s->count--;
			/* A set emptied by many leaves gives memory back
			 * (still at most half full after). */
			if (s->count == 0)
				set_free(s);
			else if (s->cap > 64 && s->count * 8 < s->cap)
				set_resize(s, s->cap / 4);
			return true;
		}
	}
}
