/*
 * client.c: client objects: id, name, rooms joined, and lifetime. Names
 * are unique server-wide by their key (name.c: case and look-alikes
 * folded, so "Alice", "ALICE" and "аlice" are one name), found through a
 * set that reads the key from the client; ids never repeat, so scripts and
 * plugins can hold an id instead of a pointer. A removed client is only marked
 * dead and freed in the loop's before-sleep step, never in the middle of a
 * broadcast walk.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/random.h>

#include "parley.h"

struct client *clients;
unsigned client_count;

static uint64_t client_next_id = 1;
static struct client *client_dead; /* dead, waiting for the reap */

/* The key a name is held by (name.c); a name ICU cannot read (never
 * one that passed the name rules) is held by its bytes. */
char *
client_key(const char *name, size_t len)
{
	char *k;

	if (name_key(name, len, &k, NULL) == -1)
		k = xstrndup(name, len);
	return k;
}

/* FNV-1a of a name's key. */
static uint64_t
client_key_hash(const char *key)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *key != '\0'; key++) {
		h ^= (uint8_t)*key;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t
client_name_hash(const void *v)
{
	return ((const struct client *)v)->name_hash;
}

static uint64_t
client_id_hash(const void *v)
{
	return set_hash_u64(((const struct client *)v)->id);
}

/* Clients by name key and by id: the sets read the keys from the
 * clients themselves (no copies, 8 bytes a slot). A client keeps only
 * its key's hash: an idle connection should cost little, and the key is
 * made again (name.c) on the rare probe whose hash matches. */
static struct set client_by_name = { .hash = client_name_hash };
static struct set client_by_id = { .hash = client_id_hash };

static bool
client_name_match(const void *v, const void *k)
{
	const struct client *c = v;
	char *mine = client_key(c->name, strlen(c->name));
	bool same = strcmp(mine, k) == 0;

	free(mine);
	return same;
}

static bool
client_id_match(const void *v, const void *k)
{
	return ((const struct client *)v)->id == *(const uint64_t *)k;
}

/* The client holding key (a name's key), or NULL. */
static struct client *
client_find_by_key(const char *key)
{
	return set_find(
	    &client_by_name, client_key_hash(key), client_name_match, key);
}

struct client *
client_find_by_name(const char *name, size_t len)
{
	char *k;
	struct client *c;

	if (name_key(name, len, &k, NULL) == -1)
		return NULL;
	c = client_find_by_key(k);
	free(k);
	return c;
}

struct client *
client_find_by_id(uint64_t id)
{
	return set_find(&client_by_id, set_hash_u64(id), client_id_match, &id);
}

int
client_set_name(struct client *c, const char *name, size_t len)
{
	char *k = client_key(name, len);
	struct client *other = client_find_by_key(k);

	if (other != NULL && other != c) {
		free(k);
		return -1;
	}
	if (c->name != NULL) {
		set_remove(&client_by_name, c);
		free(c->name);
	}
	c->name_hash = client_key_hash(k);
	free(k);
	c->name = xstrndup(name, len);
	set_add(&client_by_name, c);
	return 0;
}

char *
client_guest_name(const struct client *c)
{
	char name[32];

	/* Guest names look like people's numbers, not like a counter. */
	for (int tries = 0;; tries++) {
		unsigned digits = tries < 8 ? 4 : 6;
		unsigned r = (unsigned)random() % (digits == 4 ? 9000 : 900000);
		int len;

		if (tries >= 16)
			len = snprintf(name, sizeof name, "guest-%llu-%u",
			    (unsigned long long)c->id, r);
		else
			len = snprintf(name, sizeof name, "guest-%u",
			    r + (digits == 4 ? 1000 : 100000));
		if (client_find_by_name(name, (size_t)len) == NULL &&
		    account_holder(name, (size_t)len) == NULL)
			return xstrndup(name, (size_t)len);
	}
}

/* A key for a guest's session: 128 random bits in hex. Not a secret (it
 * names an owner, a ban's target), only unique. */
static char *
client_new_session_key(void)
{
	uint8_t b[16];
	char *hex = xmalloc(2 * sizeof b + 1);

	if (getrandom(b, sizeof b, 0) != sizeof b)
		fatal("getrandom: cannot make a session key");
	for (size_t i = 0; i < sizeof b; i++)
		snprintf(hex + 2 * i, 3, "%02x", b[i]);
	return hex;
}

struct client *
client_create(const char *addr)
{
	struct client *c = xcalloc(1, sizeof *c);
	char *name;

	c->id = client_next_id++;
	c->refs = 1;
	c->lfd.fd = -1;
	c->addr = limit_addr_ref(addr);
	c->session_key = client_new_session_key();
	bucket_init(&c->rl_requests, cfg->request_burst);
	bucket_init(&c->rl_messages, cfg->message_burst);
	bucket_init(&c->rl_rooms, cfg->room_burst);
	bucket_init(&c->rl_names, cfg->name_burst);
	set_add(&client_by_id, c);
	handle_add(c, HANDLE_CLIENT);
	name = client_guest_name(c);
	PARLEY_ASSERT(client_set_name(c, name, strlen(name)) == 0);
	free(name);

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
	free(c->account);
	free(c->session_key);
	json_decref(c->resume_id);
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
	chat_disconnect(c, reason);
}

void
client_unlink(struct client *c)
{
	PARLEY_ASSERT(c->nrooms == 0);
	c->dead = true;
	session_forget(c);
	handle_remove(c);
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
	/* One role under both names: see CLIENT_ROLE_OPERATOR. */
	if (strcmp(role, "operator") == 0)
		role = CLIENT_ROLE_OPERATOR;
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

void
client_identity_role(struct client *c, const char *role, bool on)
{
	int bit = client_role_bit(role, on);
	uint32_t b;

	if (bit == -1)
		return;
	b = 1u << bit;
	if (on && !(c->roles & b)) {
		c->roles |= b;
		c->identity_roles |= b;
	} else if (!on && (c->identity_roles & b)) {
		c->roles &= ~b;
		c->identity_roles &= ~b;
	}
}

json_t *
client_roles(const struct client *c)
{
	json_t *a = json_array();

	for (int i = 0; i < 32 && client_role_names[i] != NULL; i++) {
		if (c->roles & (1u << i))
			json_array_append_new(
			    a, json_string(client_role_names[i]));
	}
	return a;
}

json_t *
client_roles_public(const struct client *c)
{
	json_t *a = json_array();

	for (int i = 0; i < 32 && client_role_names[i] != NULL; i++) {
		const char *name = client_role_names[i];
		if (!(c->roles & (1u << i)))
			continue;
		if (strcmp(name, CLIENT_ROLE_OPERATOR) == 0)
			name = "operator";
		json_array_append_new(a, json_string(name));
	}
	return a;
}

void
client_set_identity(
    struct client *c, const char *account, const char *const *roles)
{
	/* The roles of the identity that goes go with it; those a script
	 * or /oper gave the connection stay. */
	c->roles &= ~c->identity_roles;
	c->identity_roles = 0;
	for (size_t i = 0; roles != NULL && roles[i] != NULL; i++) {
		int bit = client_role_bit(roles[i], true);
		if (bit != -1 && !(c->roles & (1u << bit))) {
			c->roles |= 1u << bit;
			c->identity_roles |= 1u << bit;
		}
	}
	free(c->account);
	c->account = account != NULL ? xstrdup(account) : NULL;
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
