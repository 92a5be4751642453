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

/* W3 (doc/PERFORMANCE.md): 10,000 idle connections within 0.6 KiB each
 * need a client within malloc's 256-byte chunk (248 usable bytes). */
_Static_assert(sizeof(struct client) <= 248,
    "struct client outgrew its 256-byte malloc chunk (W3)");

/*
 * What few clients need is kept beside them, in a set keyed by client
 * id, so that struct client stays small (W3, doc/PERFORMANCE.md): the
 * session key (made when something first binds to it), the request id
 * of a resume that waits for another server, the roles that came with
 * an account.
 */
struct client_extra {
	uint64_t id;
	char *session_key;
	json_t *resume_id;
	uint32_t identity_roles;
};

static uint64_t
client_extra_hash(const void *v)
{
	return set_hash_u64(((const struct client_extra *)v)->id);
}

static bool
client_extra_match(const void *v, const void *key)
{
	return ((const struct client_extra *)v)->id == *(const uint64_t *)key;
}

static struct set client_extras = { .hash = client_extra_hash };

static struct client_extra *
client_extra_find(const struct client *c)
{
	if (client_extras.count == 0)
		return NULL;
	return set_find(
	    &client_extras, set_hash_u64(c->id), client_extra_match, &c->id);
}

static struct client_extra *
client_extra_get(const struct client *c)
{
	struct client_extra *x = client_extra_find(c);

	if (x == NULL) {
		x = xcalloc(1, sizeof *x);
		x->id = c->id;
		set_add(&client_extras, x);
	}
	return x;
}

static void
client_extra_free(const struct client *c)
{
	struct client_extra *x = client_extra_find(c);

	if (x == NULL)
		return;
	set_remove(&client_extras, x);
	free(x->session_key);
	json_decref(x->resume_id);
	free(x);
}

const char *
client_session_key(const struct client *c)
{
	struct client_extra *x = client_extra_get(c);

	if (x->session_key == NULL)
		x->session_key = client_new_session_key();
	return x->session_key;
}

const char *
client_session_key_find(const struct client *c)
{
	struct client_extra *x = client_extra_find(c);

	return x != NULL ? x->session_key : NULL;
}

void
client_set_session_key(struct client *c, const char *key)
{
	struct client_extra *x = client_extra_get(c);

	free(x->session_key);
	x->session_key = xstrdup(key);
}

uint32_t
client_identity_roles(const struct client *c)
{
	struct client_extra *x = client_extra_find(c);

	return x != NULL ? x->identity_roles : 0;
}

void
client_set_resume_id_new(struct client *c, json_t *id)
{
	struct client_extra *x = client_extra_get(c);

	json_decref(x->resume_id);
	x->resume_id = id;
}

json_t *
client_take_resume_id(struct client *c)
{
	struct client_extra *x = client_extra_find(c);
	json_t *id;

	if (x == NULL)
		return NULL;
	id = x->resume_id;
	x->resume_id = NULL;
	return id;
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
	if (c->nrooms > 1)
		free(c->rooms.many);
	free(c->name);
	free(c->account);
	client_extra_free(c);
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
		client_extra_get(c)->identity_roles |= b;
	} else if (!on && (client_identity_roles(c) & b)) {
		c->roles &= ~b;
		client_extra_get(c)->identity_roles &= ~b;
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
	uint32_t mine = 0;

	c->roles &= ~client_identity_roles(c);
	for (size_t i = 0; roles != NULL && roles[i] != NULL; i++) {
		int bit = client_role_bit(roles[i], true);
		if (bit != -1 && !(c->roles & (1u << bit))) {
			c->roles |= 1u << bit;
			mine |= 1u << bit;
		}
	}
	if (mine != 0 || client_extra_find(c) != NULL)
		client_extra_get(c)->identity_roles = mine;
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
