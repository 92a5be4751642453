/*
 * room.c: rooms by name, their members in join order and the per-room
 * seq: the data structure and the fan-out, no rules (chat.c). Membership
 * is a node linked both into the room's list and the client's array, so
 * join and leave cost O(1) apart from the participants list the protocol
 * sends with them. A removed room leaves the map at once and is freed
 * before the loop sleeps, since a walk may still hold it.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "parley.h"

static struct map room_map;
static struct room **room_order; /* creation order, for list_rooms */
static size_t room_n, room_cap;
static struct room **room_dead; /* removed, freed before sleep */
static size_t room_ndead;

struct room *
room_find(const char *name, size_t len)
{
	return map_find(&room_map, name, len);
}

/* How many recent messages' authors a room remembers, for a message's
 * author deleting it (moderators may delete any). */
#define ROOM_AUTHORS 1024

struct room_authors {
	uint64_t seq[ROOM_AUTHORS];
	char *key[ROOM_AUTHORS];
};

void
room_set_id(struct room *r, uint64_t rid)
{
	char hex[17];

	r->rid = rid;
	free(r->hkey);
	if (rid == 0) {
		/* A room from before rooms had ids: its history is its
		 * name's. */
		r->hkey = xstrdup(r->name);
		r->hkey_len = r->name_len;
		return;
	}
	snprintf(hex, sizeof hex, "%016llx", (unsigned long long)rid);
	/* Names hold no control characters: US cannot be part of one. */
	r->hkey_len = (size_t)xasprintf(&r->hkey, "%s\x1f%s", r->name, hex);
}

/* A durable id no other room of any server has had: 64 random bits. */
static uint64_t
room_new_id(void)
{
	uint64_t rid = 0;

	while (rid == 0) {
		if (getrandom(&rid, sizeof rid, 0) != sizeof rid)
			fatal("getrandom: cannot make a room id");
	}
	return rid;
}

void
room_author_add(struct room *r, uint64_t seq, char *key)
{
	size_t i;

	if (r->authors == NULL)
		r->authors = xcalloc(1, sizeof *r->authors);
	i = seq % ROOM_AUTHORS;
	free(r->authors->key[i]);
	r->authors->seq[i] = seq;
	r->authors->key[i] = key; /* taken, not copied: once per message */
}

const char *
room_author(const struct room *r, uint64_t seq)
{
	size_t i = seq % ROOM_AUTHORS;

	if (r->authors == NULL || r->authors->seq[i] != seq)
		return NULL;
	return r->authors->key[i];
}

struct room *
room_create(const char *name, size_t len, uint64_t owner)
{
	struct room *r;

	if (room_find(name, len) != NULL)
		return NULL;
	r = xcalloc(1, sizeof *r);
	r->name = xstrndup(name, len);
	r->name_len = len;
	r->owner = owner;
	r->created = loop_wall_ms();
	room_set_id(r, room_new_id());
	map_add(&room_map, name, len, r);
	if (room_n == room_cap) {
		room_cap = room_cap ? room_cap * 2 : 16;
		room_order = xreallocarray(
		    room_order, room_cap, sizeof *room_order);
	}
	room_order[room_n++] = r;
	handle_add(r, HANDLE_ROOM);
	return r;
}

uint64_t
room_owner_id(const struct room *r)
{
	if (r->owner_account == NULL && r->owner_session != NULL) {
		/* A guest's room follows its session (a resume). */
		for (struct client *c = clients; c != NULL; c = c->next) {
			if (!c->dead && c->account == NULL &&
			    client_session_key_find(c) != NULL &&
			    strcmp(client_session_key_find(c),
				r->owner_session) == 0)
				return c->id;
		}
		return 0;
	}
	if (r->owner_account == NULL)
		return r->owner;
	/* Owner checks are rare (a /kick, a /topic): a walk will do. The
	 * newest connection of the account first. */
	for (struct client *c = clients; c != NULL; c = c->next) {
		if (c->account != NULL && !c->dead &&
		    strcmp(c->account, r->owner_account) == 0)
			return c->id;
	}
	return 0;
}

struct membership *
room_membership(const struct room *r, const struct client *c)
{
	/* A client is in few rooms: scan its own list, not the room's. */
	for (size_t i = 0; i < c->nrooms; i++) {
		if (client_room(c, i)->room == r)
			return client_room(c, i);
	}
	return NULL;
}

void
room_join(struct room *r, struct client *c)
{
	struct membership *m = xcalloc(1, sizeof *m);

	m->room = r;
	m->client = c;
	m->prev = r->tail;
	if (r->tail != NULL)
		r->tail->next = m;
	else
		r->head = m;
	r->tail = m;
	r->count++;
	metrics_add(METRIC_ROOM_MEMBERS, 1);

	m->index = c->nrooms;
	if (c->nrooms == 0)
		c->rooms.one = m;
	else {
		struct membership **v = c->nrooms == 1
		    ? xreallocarray(NULL, 2, sizeof *v)
		    : xreallocarray(c->rooms.many, c->nrooms + 1, sizeof *v);
		if (c->nrooms == 1)
			v[0] = c->rooms.one;
		v[c->nrooms] = m;
		c->rooms.many = v;
	}
	c->nrooms++;
}

int
room_leave(struct room *r, struct client *c)
{
	struct membership *m = room_membership(r, c);
	struct membership *last;

	if (m == NULL)
		return -1;
	if (m->prev != NULL)
		m->prev->next = m->next;
	else
		r->head = m->next;
	if (m->next != NULL)
		m->next->prev = m->prev;
	else
		r->tail = m->prev;
	r->count--;
	metrics[METRIC_ROOM_MEMBERS]--;

	if (c->nrooms == 1)
		c->rooms.one = NULL;
	else {
		struct membership **v = c->rooms.many;
		last = v[c->nrooms - 1];
		if (last != m) {
			v[m->index] = last;
			last->index = m->index;
		}
		if (c->nrooms == 2) {
			/* One left: kept in place of the list. */
			c->rooms.one = v[0];
			free(v);
		}
	}
	c->nrooms--;
	free(m);
	return 0;
}

json_t *
room_participants(const struct room *r, size_t offset, size_t limit)
{
	json_t *a = json_array();
	struct membership *m = r->head;

	for (size_t i = 0; m != NULL && i < offset; i++)
		m = m->next;
	for (size_t n = 0; m != NULL && n < limit; m = m->next, n++)
		json_array_append_new(a, json_string(m->client->name));
	return a;
}

void
room_broadcast(struct room *r, struct buf *b)
{
	for (struct membership *m = r->head; m != NULL; m = m->next) {
		if (!m->client->closing)
			conn_send(m->client, b);
	}
}

void
room_broadcast_new(struct room *r, json_t *json)
{
	struct buf *b = buf_json(json);

	json_decref(json);
	room_broadcast(r, b);
	buf_unref(b);
}

static void
room_free(struct room *r)
{
	while (r->head != NULL)
		room_leave(r, r->head->client);
	handle_remove(r);
	free(r->name);
	free(r->owner_account);
	free(r->hkey);
	free(r->owner_session);
	free(r->owner_addr);
	free(r->topic);
	json_decref(r->roles);
	if (r->authors != NULL) {
		for (size_t i = 0; i < ROOM_AUTHORS; i++)
			free(r->authors->key[i]);
		free(r->authors);
	}
	free(r);
}

void
room_remove(struct room *r)
{
	size_t i;

	PARLEY_ASSERT(!r->removed && r->head == NULL);
	r->removed = true;
	map_remove(&room_map, r->name, r->name_len);
	for (i = 0; i < room_n && room_order[i] != r; i++)
		;
	PARLEY_ASSERT(i < room_n);
	memmove(&room_order[i], &room_order[i + 1],
	    (room_n - i - 1) * sizeof *room_order);
	room_n--;
	/* A plugin may no longer use its handle. */
	handle_remove(r);
	room_dead = xreallocarray(room_dead, room_ndead + 1, sizeof *room_dead);
	room_dead[room_ndead++] = r;
}

void
room_reap(void)
{
	for (size_t i = 0; i < room_ndead; i++) {
		room_dead[i]->removed = false;
		room_free(room_dead[i]);
	}
	free(room_dead);
	room_dead = NULL;
	room_ndead = 0;
}

int
room_each(int (*fn)(struct room *r, void *arg), void *arg)
{
	/* Over a copy: fn may create or remove rooms. Removed ones stay
	 * allocated until the loop sleeps. */
	struct room **v = xreallocarray(NULL, room_n + 1, sizeof *v);
	size_t n = room_n;
	int rc = 0;

	memcpy(v, room_order, n * sizeof *v);
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (!v[i]->removed)
			rc = fn(v[i], arg);
	}
	free(v);
	return rc;
}

json_t *
room_names(void)
{
	json_t *a = json_array();

	for (size_t i = 0; i < room_n; i++)
		json_array_append_new(a,
		    json_stringn(room_order[i]->name, room_order[i]->name_len));
	return a;
}

json_t *
room_list(void)
{
	json_t *a = json_array();

	for (size_t i = 0; i < room_n; i++) {
		struct room *r = room_order[i];
		json_array_append_new(a,
		    json_pack("{s:s%, s:I, s:s}", "roomName", r->name,
			r->name_len, "count", (json_int_t)r->count, "topic",
			r->topic ? r->topic : ""));
	}
	return a;
}

unsigned
room_count(void)
{
	return (unsigned)room_n;
}

void
room_free_all(void)
{
	room_reap();
	for (size_t i = 0; i < room_n; i++)
		room_free(room_order[i]);
	free(room_order);
	room_order = NULL;
	room_n = room_cap = 0;
	map_free(&room_map);
}
