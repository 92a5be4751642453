/*
 * client.c: client objects: id, name, rooms joined, and lifetime. Names
 * are unique server-wide with ASCII letters folded, found through a set;
 * ids never repeat, so scripts and plugins can hold an id instead of a
 * pointer. A removed client is only marked dead and freed in the loop's
 * before-sleep step, never in the middle of a broadcast walk.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley.h"

struct client *clients;
unsigned client_count;

static uint64_t client_next_id = 1;
static struct client *client_dead; /* dead, waiting for the reap */

/* ASCII letters folded: the byte names are compared on. */
static char
client_fold(char ch)
{
	return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/* FNV-1a of the folded name. */
static uint64_t
client_fold_hash(const char *name, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= (uint8_t)client_fold(name[i]);
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t
client_name_hash(const void *v)
{
	const struct client *c = v;

	return client_fold_hash(c->name, strlen(c->name));
}

static uint64_t
client_id_hash(const void *v)
{
	return set_hash_u64(((const struct client *)v)->id);
}

/* Clients by folded name and by id: the sets read the keys from the
 * clients themselves (no copies, 8 bytes a slot). */
static struct set client_by_name = { .hash = client_name_hash };
static struct set client_by_id = { .hash = client_id_hash };

struct client_name_key {
	const char *name;
	size_t len;
};

static bool
client_name_match(const void *v, const void *k)
{
	const struct client *c = v;
	const struct client_name_key *key = k;

	for (size_t i = 0; i < key->len; i++) {
		if (c->name[i] == '\0' ||
		    client_fold(c->name[i]) != client_fold(key->name[i]))
			return false;
	}
	return c->name[key->len] == '\0';
}

static bool
client_id_match(const void *v, const void *k)
{
	return ((const struct client *)v)->id == *(const uint64_t *)k;
}

struct client *
client_find_by_name(const char *name, size_t len)
{
	struct client_name_key key = { name, len };

	return set_find(&client_by_name, client_fold_hash(name, len),
	    client_name_match, &key);
}

struct client *
client_find_by_id(uint64_t id)
{
	return set_find(&client_by_id, set_hash_u64(id), client_id_match,
	    &id);
}

int
client_set_name(struct client *c, const char *name, size_t len)
{
	struct client *other = client_find_by_name(name, len);

	if (other != NULL && other != c)
		return -1;
	if (c->name != NULL) {
		set_remove(&client_by_name, c);
		free(c->name);
	}
	c->name = xstrndup(name, len);
	set_add(&client_by_name, c);
	return 0;
}

struct client *
client_create(const char *addr)
{
	struct client *c = xcalloc(1, sizeof *c);
	char name[32];

	c->id = client_next_id++;
	c->refs = 1;
	c->lfd.fd = -1;
	c->addr = limit_addr_ref(addr);
	bucket_init(&c->rl_requests, cfg->request_burst);
	bucket_init(&c->rl_messages, cfg->message_burst);
	bucket_init(&c->rl_rooms, cfg->room_burst);
	bucket_init(&c->rl_names, cfg->name_burst);
	set_add(&client_by_id, c);

	/* Guest names look like people's numbers, not like a counter. */
	for (int tries = 0;; tries++) {
		unsigned digits = tries < 8 ? 4 : 6;
		unsigned r = (unsigned)random() % (digits == 4 ? 9000 : 900000);
		int len;

		if (tries >= 16)
			len = snprintf(name, sizeof name, "guest-%llu",
			    (unsigned long long)c->id);
		else
			len = snprintf(name, sizeof name, "guest-%u",
			    r + (digits == 4 ? 1000 : 100000));
		if (client_set_name(c, name, (size_t)len) == 0)
			break;
	}

	c->next = clients;
	if (clients != NULL)
		clients->prev = c;
	clients = c;
	client_count++;
	return c;
}

static void
client_free(struct client *c)
{
	conn_forget(c);
	limit_addr_unref(c->addr);
	free(c->rooms);
	free(c->name);
	free(c);
}

void
client_unref(struct client *c)
{
	PARLEY_ASSERT(c->refs > 0);
	if (--c->refs == 0)
		client_free(c);
}

void
client_remove(struct client *c, const char *reason)
{
	if (c->dead)
		return;
	c->dead = true;
	/* Leave from the last joined so each removal is O(1) in c->rooms. */
	while (c->nrooms > 0)
		proto_leave(c, c->rooms[c->nrooms - 1]->room, reason, NULL,
		    NULL);
	if (hook_any(HOOK_DISCONNECT)) {
		struct hook_args a = { .event = HOOK_DISCONNECT, .client = c,
			.reason = reason };
		hook_run(&a);
		hook_args_free(&a);
	}

	set_remove(&client_by_id, c);
	if (c->name != NULL)
		set_remove(&client_by_name, c);

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	client_count--;

	c->next = client_dead;
	c->prev = NULL;
	client_dead = c;
}

void
client_broadcast_all(struct buf *b)
{
	for (struct client *c = clients; c != NULL; c = c->next) {
		if (!c->closing)
			conn_send(c, b);
	}
}

static char *client_role_names[32];

static int
client_role_bit(const char *role, bool add)
{
	for (int i = 0; i < 32; i++) {
		if (client_role_names[i] == NULL) {
			if (!add)
				return -1;
			client_role_names[i] = xstrdup(role);
			return i;
		}
		if (strcmp(client_role_names[i], role) == 0)
			return i;
	}
	return -1;
}

bool
client_has_role(const struct client *c, const char *role)
{
	int bit = client_role_bit(role, false);
	return bit != -1 && (c->roles & (1u << bit));
}

int
client_add_role(struct client *c, const char *role)
{
	int bit = client_role_bit(role, true);

	if (bit == -1)
		return -1;
	c->roles |= 1u << bit;
	return 0;
}

void
client_remove_role(struct client *c, const char *role)
{
	int bit = client_role_bit(role, false);

	if (bit != -1)
		c->roles &= ~(1u << bit);
}

json_t *
client_roles(const struct client *c)
{
	json_t *a = json_array();

	for (int i = 0; i < 32 && client_role_names[i] != NULL; i++) {
		if (c->roles & (1u << i))
			json_array_append_new(a,
			    json_string(client_role_names[i]));
	}
	return a;
}

void
client_reap(void)
{
	while (client_dead != NULL) {
		struct client *c = client_dead;
		client_dead = c->next;
		c->next = NULL;
		client_unref(c);
	}
}
