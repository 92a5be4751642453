/*
 * map.c: a string-keyed hash map with open addressing and linear probing,
 * used for rooms by name, clients by folded name and clients by id. Keys
 * are copied; values are borrowed. Lookups are O(1), so nothing on join,
 * leave or send scans every client.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "parley.h"

static char map_tombstone;
#define MAP_TOMBSTONE (&map_tombstone)

/* FNV-1a, 64-bit: keys are short names, and the table only needs spread. */
uint64_t
map_hash(const char *key, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= (uint8_t)key[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

void
map_init(struct map *m)
{
	memset(m, 0, sizeof *m);
}

void
map_free(struct map *m)
{
	for (size_t i = 0; i < m->cap; i++) {
		if (m->slots[i].key != NULL && m->slots[i].key != MAP_TOMBSTONE)
			free(m->slots[i].key);
	}
	free(m->slots);
	map_init(m);
}

static struct map_slot *
map_lookup(const struct map *m, const char *key, size_t len, uint64_t h)
{
	size_t mask = m->cap - 1;

	if (m->cap == 0)
		return NULL;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct map_slot *s = &m->slots[i];
		if (s->key == NULL)
			return NULL;
		if (s->key != MAP_TOMBSTONE && s->hash == h &&
		    s->keylen == len && memcmp(s->key, key, len) == 0)
			return s;
	}
}

void *
map_find(const struct map *m, const char *key, size_t len)
{
	struct map_slot *s = map_lookup(m, key, len, map_hash(key, len));
	return s ? s->value : NULL;
}

static void
map_insert_slot(struct map *m, char *key, size_t len, uint64_t h,
    void *value)
{
	size_t mask = m->cap - 1;

	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct map_slot *s = &m->slots[i];
		if (s->key == NULL || s->key == MAP_TOMBSTONE) {
			if (s->key == NULL)
				m->used++;
			s->key = key;
			s->keylen = len;
			s->hash = h;
			s->value = value;
			m->count++;
			return;
		}
	}
}

static void
map_resize(struct map *m, size_t cap)
{
	struct map_slot *old = m->slots;
	size_t oldcap = m->cap;

	m->slots = xcalloc(cap, sizeof *m->slots);
	m->cap = cap;
	m->count = 0;
	m->used = 0;
	for (size_t i = 0; i < oldcap; i++) {
		if (old[i].key != NULL && old[i].key != MAP_TOMBSTONE)
			map_insert_slot(m, old[i].key, old[i].keylen,
			    old[i].hash, old[i].value);
	}
	free(old);
}

int
map_add(struct map *m, const char *key, size_t len, void *value)
{
	uint64_t h = map_hash(key, len);

	if (map_lookup(m, key, len, h) != NULL)
		return -1;
	/* Keep the load (tombstones included) under 3/4. */
	if ((m->used + 1) * 4 > m->cap * 3) {
		size_t cap = m->cap ? m->cap : 8;
		while ((m->count + 1) * 2 > cap)
			cap *= 2;
		map_resize(m, cap);
	}
	map_insert_slot(m, xstrndup(key, len), len, h, value);
	return 0;
}

void *
map_remove(struct map *m, const char *key, size_t len)
{
	struct map_slot *s = map_lookup(m, key, len, map_hash(key, len));
	void *value;

	if (s == NULL)
		return NULL;
	value = s->value;
	free(s->key);
	s->key = MAP_TOMBSTONE;
	s->value = NULL;
	m->count--;
	return value;
}

bool
map_next(const struct map *m, size_t *pos, const char **key, void **value)
{
	while (*pos < m->cap) {
		struct map_slot *s = &m->slots[(*pos)++];
		if (s->key != NULL && s->key != MAP_TOMBSTONE) {
			if (key != NULL)
				*key = s->key;
			if (value != NULL)
				*value = s->value;
			return true;
		}
	}
	return false;
}
