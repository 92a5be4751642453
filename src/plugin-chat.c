/*
 * plugin-chat.c: what plugins do to clients and rooms, for the host table
 * of include/parley/plugin.h: look-ups, accessors and the chat actions,
 * each of which calls the same function of chat.c that the protocol and
 * scripts use, with the plugin as the actor. Every handle a plugin hands
 * back is checked against the registry of live objects (handle.c) first,
 * and every text it hands over must be UTF-8 before it goes in a frame.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley.h"
#include "plugin-host.h"

#define PLUGIN_REMOTE_ADDR "remote"

/* The plugin as the actor of a chat action. */
#define PLUGIN_ACTOR(p) CHAT_BY(CHAT_ACTOR_PLUGIN, (p)->owner)

/* ---- Clients */

static uint64_t
host_client_id(parley_ctx *ctx, parley_client *pc)
{
	struct client *c = plugin_client(plugin_of(ctx), pc, "client_id");

	return c != NULL ? c->id : 0;
}

static const char *
host_client_name(parley_ctx *ctx, parley_client *pc)
{
	struct client *c = plugin_client(plugin_of(ctx), pc, "client_name");

	return c != NULL ? c->name : "";
}

static const char *
host_client_addr(parley_ctx *ctx, parley_client *pc)
{
	struct client *c = plugin_client(plugin_of(ctx), pc, "client_addr");

	return c != NULL ? c->addr : "";
}

static parley_client *
host_client_find(parley_ctx *ctx, uint64_t id)
{
	struct client *c = client_find_by_id(id);

	return c == NULL || c->dead ? NULL : (parley_client *)c;
}

static parley_client *
host_client_find_by_name(parley_ctx *ctx, const char *name, size_t len)
{
	struct client *c;

	if (name == NULL)
		return NULL;
	c = client_find_by_name(name, len);
	return c == NULL || c->dead ? NULL : (parley_client *)c;
}

static void
host_client_notice(
    parley_ctx *ctx, parley_client *pc, parley_room *pr, const char *text)
{
	struct plugin *p = plugin_of(ctx);
	struct client *c = plugin_client(p, pc, "client_notice");
	struct room *r = pr ? plugin_room(p, pr, "client_notice") : NULL;

	if (c == NULL || (pr != NULL && r == NULL) ||
	    !plugin_text_ok(p, "client_notice", text))
		return;
	chat_notice(c, r, text, NULL);
}

/* Parses JSON text that must be an object with a string "type"; NULL
 * (logged) otherwise. */
static json_t *
host_json_frame(
    struct plugin *p, const char *what, const char *json, size_t len)
{
	json_error_t err;
	json_t *o;

	if (json == NULL) {
		log_warn(p->owner, "%s: no JSON", what);
		return NULL;
	}
	o = json_loadb(json, len, 0, &err);
	if (o == NULL) {
		log_warn(p->owner, "%s: bad JSON: %s", what, err.text);
		return NULL;
	}
	if (!json_is_object(o) || !json_is_string(json_object_get(o, "type"))) {
		log_warn(
		    p->owner, "%s: not an object with a string \"type\"", what);
		json_decref(o);
		return NULL;
	}
	return o;
}

static int
host_client_send_json(
    parley_ctx *ctx, parley_client *pc, const char *json, size_t len)
{
	struct plugin *p = plugin_of(ctx);
	struct client *c = plugin_client(p, pc, "client_send_json");
	json_t *o;

	if (c == NULL)
		return PARLEY_ERR_BAD_REQUEST;
	if ((o = host_json_frame(p, "client_send_json", json, len)) == NULL)
		return PARLEY_ERR_BAD_REQUEST;
	conn_send_new(c, o);
	return PARLEY_OK;
}

static int
host_client_kick(
    parley_ctx *ctx, parley_client *pc, parley_room *pr, const char *reason)
{
	struct plugin *p = plugin_of(ctx);
	struct client *c = plugin_client(p, pc, "client_kick");
	struct room *r = plugin_room(p, pr, "client_kick");
	enum proto_err e;
	char *why;

	if (c == NULL || r == NULL)
		return PARLEY_ERR_BAD_REQUEST;
	if (reason != NULL && !plugin_text_ok(p, "client_kick reason", reason))
		reason = NULL;
	why = plugin_cut(reason ? reason : "", PLUGIN_REASON_MAX);
	e = chat_kick(PLUGIN_ACTOR(p), c, r, why, NULL);
	free(why);
	return plugin_error_from_proto(e);
}

static void
host_client_disconnect(parley_ctx *ctx, parley_client *pc, const char *reason)
{
	struct plugin *p = plugin_of(ctx);
	struct client *c = plugin_client(p, pc, "client_disconnect");
	char *why;

	if (c == NULL)
		return;
	if (reason != NULL &&
	    !plugin_text_ok(p, "client_disconnect reason", reason))
		reason = NULL;
	why = plugin_cut(reason ? reason : "", PLUGIN_CLOSE_REASON_MAX);
	chat_close(PLUGIN_ACTOR(p), c, why);
	free(why);
}

static int
host_client_rename(
    parley_ctx *ctx, parley_client *pc, const char *name, size_t len)
{
	struct plugin *p = plugin_of(ctx);
	struct client *c = plugin_client(p, pc, "client_rename");
	enum proto_err e;
	char *reason = NULL;

	if (c == NULL)
		return PARLEY_ERR_BAD_REQUEST;
	if (name == NULL)
		return PARLEY_ERR_INVALID_NAME;
	e = chat_rename(PLUGIN_ACTOR(p), c, name, len, NULL, 0, &reason);
	free(reason);
	return plugin_error_from_proto(e);
}

static bool
host_client_has_role(parley_ctx *ctx, parley_client *pc, const char *role)
{
	struct client *c = plugin_client(plugin_of(ctx), pc, "client_has_role");

	return c != NULL && role != NULL && client_has_role(c, role);
}

static int
host_client_add_role(parley_ctx *ctx, parley_client *pc, const char *role)
{
	struct client *c = plugin_client(plugin_of(ctx), pc, "client_add_role");

	if (c == NULL || role == NULL || *role == '\0')
		return -1;
	return client_add_role(c, role);
}

static void
host_client_remove_role(parley_ctx *ctx, parley_client *pc, const char *role)
{
	struct client *c = plugin_client(
	    plugin_of(ctx), pc, "client_remove_role");

	if (c != NULL && role != NULL)
		client_remove_role(c, role);
}

/* ---- Rooms */

static parley_room *
host_room_find(parley_ctx *ctx, const char *name, size_t len)
{
	if (name == NULL)
		return NULL;
	return (parley_room *)room_find(name, len);
}

static const char *
host_room_name(parley_ctx *ctx, parley_room *pr, size_t *len)
{
	struct room *r = plugin_room(plugin_of(ctx), pr, "room_name");

	if (len != NULL)
		*len = r != NULL ? r->name_len : 0;
	return r != NULL ? r->name : "";
}

static int
host_room_create(
    parley_ctx *ctx, const char *name, size_t len, parley_room **out)
{
	struct plugin *p = plugin_of(ctx);
	struct room *r = NULL;
	enum proto_err e;
	char *reason = NULL;

	if (out != NULL)
		*out = NULL;
	if (p->info_only)
		return PARLEY_ERR_UNSUPPORTED;
	if (name == NULL)
		return PARLEY_ERR_INVALID_NAME;
	e = chat_room_create(PLUGIN_ACTOR(p), name, len, NULL, &r, &reason);
	free(reason);
	if (e == PROTO_OK && out != NULL)
		*out = (parley_room *)r;
	return plugin_error_from_proto(e);
}

static size_t
host_room_member_count(parley_ctx *ctx, parley_room *pr)
{
	struct room *r = plugin_room(plugin_of(ctx), pr, "room_member_count");

	return r != NULL ? r->count : 0;
}

static int
host_room_members(
    parley_ctx *ctx, parley_room *pr, parley_client_each_fn fn, void *arg)
{
	struct room *r = plugin_room(plugin_of(ctx), pr, "room_members");
	struct client **v;
	size_t n = 0;
	int rc = 0;

	if (r == NULL || fn == NULL)
		return 0;
	/* A snapshot: fn may kick. Clients are freed only before sleep. */
	v = xreallocarray(NULL, r->count + 1, sizeof *v);
	for (struct membership *m = r->head; m != NULL; m = m->next)
		v[n++] = m->client;
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (!v[i]->dead)
			rc = fn(ctx, (parley_client *)v[i], arg);
	}
	free(v);
	return rc;
}

static bool
host_room_has_member(parley_ctx *ctx, parley_room *pr, parley_client *pc)
{
	struct plugin *p = plugin_of(ctx);
	struct room *r = plugin_room(p, pr, "room_has_member");
	struct client *c = plugin_client(p, pc, "room_has_member");

	return r != NULL && c != NULL && room_membership(r, c) != NULL;
}

struct host_room_each {
	parley_ctx *ctx;
	parley_room_each_fn fn;
	void *arg;
};

static int
host_room_each_one(struct room *r, void *arg)
{
	struct host_room_each *e = arg;

	return e->fn(e->ctx, (parley_room *)r, e->arg);
}

static int
host_room_each(parley_ctx *ctx, parley_room_each_fn fn, void *arg)
{
	struct host_room_each e = { ctx, fn, arg };

	return fn != NULL ? room_each(host_room_each_one, &e) : 0;
}

/* Checks a message a plugin posts; PARLEY_OK or why not. */
static int
host_post_check(struct plugin *p, const char *what, const char *sender,
    const char *text, size_t len)
{
	if (text == NULL || len == 0 || !utf8_valid(text, len) ||
	    sender == NULL || *sender == '\0' ||
	    !plugin_text_ok(p, what, sender))
		return PARLEY_ERR_BAD_REQUEST;
	if (len > cfg->max_message_bytes)
		return PARLEY_ERR_MESSAGE_TOO_LONG;
	return PARLEY_OK;
}

static int
host_room_post(parley_ctx *ctx, parley_room *pr, const char *sender,
    const char *text, size_t len, bool action)
{
	struct plugin *p = plugin_of(ctx);
	struct room *r = plugin_room(p, pr, "room_post");
	int rc;

	if (r == NULL)
		return PARLEY_ERR_BAD_REQUEST;
	rc = host_post_check(p, "room_post sender", sender, text, len);
	if (rc == PARLEY_OK)
		chat_post(r, NULL, sender, text, len, action, NULL);
	return rc;
}

static void
host_room_notice(parley_ctx *ctx, parley_room *pr, const char *text)
{
	struct plugin *p = plugin_of(ctx);
	struct room *r = plugin_room(p, pr, "room_notice");

	if (r != NULL && plugin_text_ok(p, "room_notice", text))
		chat_notice_room(r, text);
}

static int
host_room_send_json(
    parley_ctx *ctx, parley_room *pr, const char *json, size_t len)
{
	struct plugin *p = plugin_of(ctx);
	struct room *r = plugin_room(p, pr, "room_send_json");
	json_t *o;

	if (r == NULL)
		return PARLEY_ERR_BAD_REQUEST;
	if ((o = host_json_frame(p, "room_send_json", json, len)) == NULL)
		return PARLEY_ERR_BAD_REQUEST;
	room_broadcast_new(r, o);
	return PARLEY_OK;
}

static uint64_t
host_room_owner(parley_ctx *ctx, parley_room *pr)
{
	struct room *r = plugin_room(plugin_of(ctx), pr, "room_owner");
	struct client *c;
	uint64_t id;

	if (r == NULL || (id = room_owner_id(r)) == 0)
		return 0;
	c = client_find_by_id(id);
	return c != NULL && !c->dead ? id : 0;
}

static const char *
host_room_owner_account(parley_ctx *ctx, parley_room *pr)
{
	struct room *r = plugin_room(plugin_of(ctx), pr, "room_owner_account");

	return r != NULL ? r->owner_account : NULL;
}

static const char *
host_client_account(parley_ctx *ctx, parley_client *pc)
{
	struct client *c = plugin_client(plugin_of(ctx), pc, "client_account");

	return c != NULL ? c->account : NULL;
}

static int
host_room_remove(parley_ctx *ctx, parley_room *pr, const char *reason)
{
	struct plugin *p = plugin_of(ctx);
	struct room *r = plugin_room(p, pr, "room_remove");
	char *why;

	if (r == NULL)
		return PARLEY_ERR_BAD_REQUEST;
	if (reason != NULL && !plugin_text_ok(p, "room_remove reason", reason))
		reason = NULL;
	why = plugin_cut(
	    reason ? reason : CHAT_ROOM_DELETED, PLUGIN_REASON_MAX);
	chat_room_remove(PLUGIN_ACTOR(p), r, why);
	free(why);
	return PARLEY_OK;
}

/* ---- Remote members (since 1.1): another server's clients, without a
 * connection: closing from birth (nothing is queued for them, no input
 * is awaited). Their own server ran the hooks and limits. */

/* The remote member behind a handle, or NULL. */
static struct client *
host_remote(struct plugin *p, parley_client *pc, const char *what)
{
	struct client *c = plugin_client(p, pc, what);

	return c != NULL && c->remote && !c->dead ? c : NULL;
}

static int
host_remote_create(
    parley_ctx *ctx, const char *name, size_t len, parley_client **out)
{
	struct client *c;
	enum proto_err e;

	if (out != NULL)
		*out = NULL;
	if (plugin_of(ctx)->info_only)
		return PARLEY_ERR_UNSUPPORTED;
	if (name == NULL)
		return PARLEY_ERR_INVALID_NAME;
	if ((e = chat_username_check(NULL, name, len)) != PROTO_OK)
		return plugin_error_from_proto(e);
	c = client_create(PLUGIN_REMOTE_ADDR);
	c->closing = true;
	c->remote = true;
	PARLEY_ASSERT(client_set_name(c, name, len) == 0);
	if (out != NULL)
		*out = (parley_client *)c;
	return PARLEY_OK;
}

static int
host_remote_join(parley_ctx *ctx, parley_client *pc, parley_room *pr)
{
	struct plugin *p = plugin_of(ctx);
	struct client *c = host_remote(p, pc, "remote_join");
	struct room *r = plugin_room(p, pr, "remote_join");

	if (c == NULL || r == NULL)
		return PARLEY_ERR_BAD_REQUEST;
	return plugin_error_from_proto(
	    chat_join(PLUGIN_ACTOR(p), c, r, NULL, 0, NULL, 0, NULL));
}

static const char *
host_leave_reason(const char *reason)
{
	static const char *const ok[] = { "left", "disconnected", "timeout",
		"kicked" };

	for (size_t i = 0; reason != NULL && i < sizeof ok / sizeof *ok; i++) {
		if (strcmp(reason, ok[i]) == 0)
			return ok[i];
	}
	return "disconnected";
}

static int
host_remote_leave(
    parley_ctx *ctx, parley_client *pc, parley_room *pr, const char *reason)
{
	struct plugin *p = plugin_of(ctx);
	struct client *c = host_remote(p, pc, "remote_leave");
	struct room *r = plugin_room(p, pr, "remote_leave");

	if (c == NULL || r == NULL)
		return PARLEY_ERR_BAD_REQUEST;
	return plugin_error_from_proto(
	    chat_leave(PLUGIN_ACTOR(p), c, r, host_leave_reason(reason), NULL));
}

static int
host_remote_remove(parley_ctx *ctx, parley_client *pc, const char *reason)
{
	struct client *c = host_remote(plugin_of(ctx), pc, "remote_remove");

	if (c == NULL)
		return PARLEY_ERR_BAD_REQUEST;
	chat_disconnect(c, host_leave_reason(reason));
	return PARLEY_OK;
}

static bool
host_client_is_remote(parley_ctx *ctx, parley_client *pc)
{
	struct client *c = plugin_client(
	    plugin_of(ctx), pc, "client_is_remote");

	return c != NULL && c->remote;
}

static int
host_room_post_seq(parley_ctx *ctx, parley_room *pr, const char *sender,
    const char *text, size_t len, bool action, uint64_t seq, uint64_t ts)
{
	struct plugin *p = plugin_of(ctx);
	struct room *r = plugin_room(p, pr, "room_post_seq");
	int rc;

	if (r == NULL || seq == 0 || seq > (uint64_t)INT64_MAX)
		return PARLEY_ERR_BAD_REQUEST;
	rc = host_post_check(p, "room_post_seq sender", sender, text, len);
	if (rc != PARLEY_OK)
		return rc;
	if (ts == 0 || ts > (uint64_t)INT64_MAX)
		ts = loop_wall_ms();
	/* The cluster orders the room: follow it, even backwards after a
	 * partition healed (seqs stay unique per room within the cluster). */
	chat_post_at(r, sender, text, len, action, seq, ts);
	return PARLEY_OK;
}

/* ---- Relays (since 1.4): what goes to the other servers of a cluster
 * once the core has done its part. One relay per plugin, in the order
 * they were set. */

struct plugin_relay {
	struct plugin_relay *next;
	struct plugin *p;
	parley_relay_fn fn;
	void *arg;
};
static struct plugin_relay *plugin_relays;

static int
host_relay_set(parley_ctx *ctx, parley_relay_fn fn, void *arg)
{
	struct plugin *p = plugin_of(ctx);
	struct plugin_relay **pp = &plugin_relays;

	while (*pp != NULL && (*pp)->p != p)
		pp = &(*pp)->next;
	if (fn == NULL) {
		plugin_relays_forget(p);
		return PARLEY_OK;
	}
	if (p->info_only)
		return PARLEY_OK;
	if (*pp == NULL) {
		*pp = xcalloc(1, sizeof **pp);
		(*pp)->p = p;
	}
	(*pp)->fn = fn;
	(*pp)->arg = arg;
	return PARLEY_OK;
}

void
plugin_relays_forget(struct plugin *p)
{
	for (struct plugin_relay **pp = &plugin_relays; *pp != NULL;
	     pp = &(*pp)->next) {
		if ((*pp)->p == p) {
			struct plugin_relay *dead = *pp;
			*pp = dead->next;
			free(dead);
			return;
		}
	}
}

static void
plugin_relay(struct parley_relay *rl)
{
	struct plugin_relay *next;

	rl->size = sizeof *rl;
	/* A relay may drop itself (relay_set NULL) while it runs. */
	for (struct plugin_relay *pr = plugin_relays; pr != NULL; pr = next) {
		next = pr->next;
		pr->fn(plugin_ctx(pr->p), rl, pr->arg);
	}
}

void
plugin_relay_direct(struct client *from, struct client *to, const char *text,
    size_t len, uint64_t ts)
{
	struct parley_relay rl = { .kind = PARLEY_RELAY_DIRECT,
		.client = (parley_client *)from,
		.target = (parley_client *)to,
		.text = text,
		.text_len = len,
		.wall_ms = ts };

	plugin_relay(&rl);
}

void
plugin_relay_typing(struct client *c, struct room *r)
{
	struct parley_relay rl = { .kind = PARLEY_RELAY_TYPING,
		.client = (parley_client *)c,
		.room = (parley_room *)r,
		.wall_ms = loop_wall_ms() };

	plugin_relay(&rl);
}

/* ---- Sessions across servers (since 1.4): the relays keep this
 * server's session hashes where the cluster finds them; a resume that
 * names no session here is asked of them, and one may answer later. */

static struct client *plugin_resume_asking; /* during plugin_relay_resume */

void
plugin_relay_session(struct client *c, unsigned kind, uint64_t until)
{
	struct parley_relay rl = { .kind = kind,
		.client = (parley_client *)c,
		.wall_ms = until ? until : loop_wall_ms() };
	char *state;

	if (plugin_relays == NULL || c->remote)
		return;
	state = session_state(c, kind == PARLEY_RELAY_SESSION_GONE);
	rl.text = state;
	rl.text_len = strlen(state);
	plugin_relay(&rl);
	explicit_bzero(state, rl.text_len);
	free(state);
}

bool
plugin_relay_resume(struct client *c, const uint8_t *hash)
{
	struct parley_relay rl = { .kind = PARLEY_RELAY_RESUME,
		.client = (parley_client *)c,
		.wall_ms = loop_wall_ms() };
	char text[2 * SESSION_DIGEST_BYTES + 16];
	int n;

	if (plugin_relays == NULL)
		return false;
	/* The session is known by what its client keeps of the hash. */
	n = snprintf(text, sizeof text, "{\"hash\":\"");
	for (size_t i = 0; i < SESSION_DIGEST_BYTES; i++)
		n += snprintf(
		    text + n, sizeof text - (size_t)n, "%02x", hash[i]);
	n += snprintf(text + n, sizeof text - (size_t)n, "\"}");
	rl.text = text;
	rl.text_len = (size_t)n;
	plugin_resume_asking = c;
	plugin_relay(&rl);
	plugin_resume_asking = NULL;
	explicit_bzero(text, sizeof text);
	return c->resuming && !c->dead;
}

static parley_client *
host_session_find(parley_ctx *ctx, const uint8_t *hash)
{
	(void)ctx;
	return hash != NULL ? (parley_client *)session_find_hash(hash) : NULL;
}

static int
host_session_moved(parley_ctx *ctx, parley_client *pc)
{
	struct client *c = plugin_client(plugin_of(ctx), pc, "session_moved");

	if (c == NULL || c->remote || c->dead)
		return PARLEY_ERR_BAD_REQUEST;
	chat_moved(c);
	return PARLEY_OK;
}

static int
host_session_wait(parley_ctx *ctx, parley_client *pc)
{
	struct client *c = plugin_client(plugin_of(ctx), pc, "session_wait");

	if (c == NULL || c != plugin_resume_asking || c->dead)
		return PARLEY_ERR_BAD_REQUEST;
	c->resuming = true;
	return PARLEY_OK;
}

static int
host_session_adopt(parley_ctx *ctx, parley_client *pc, parley_client *pr,
    const char *state, size_t len)
{
	struct plugin *p = plugin_of(ctx);
	struct client *c = plugin_client(p, pc, "session_adopt");
	struct client *r = host_remote(p, pr, "session_adopt");
	json_t *o, *roles, *v;
	const char *account, *key, **names;
	size_t i, n = 0;
	int rc;

	if (c == NULL || !c->resuming)
		return PARLEY_ERR_BAD_REQUEST;
	o = state != NULL ? json_loadb(state, len, 0, NULL) : NULL;
	roles = json_object_get(o, "roles");
	account = json_string_value(json_object_get(o, "account"));
	key = json_string_value(json_object_get(o, "key"));
	if (r == NULL || !json_is_object(o)) {
		json_decref(o);
		chat_resume_refuse(c);
		return PARLEY_ERR_BAD_REQUEST;
	}
	names = xcalloc(json_array_size(roles) + 1, sizeof *names);
	json_array_foreach(roles, i, v)
	{
		if (json_is_string(v))
			names[n++] = json_string_value(v);
	}
	rc = chat_adopt(c, r, account, names, key) == 0
	    ? PARLEY_OK
	    : PARLEY_ERR_BAD_REQUEST;
	free(names);
	json_decref(o);
	return rc;
}

static int
host_session_refuse(parley_ctx *ctx, parley_client *pc)
{
	struct client *c = plugin_client(plugin_of(ctx), pc, "session_refuse");

	if (c == NULL || !c->resuming)
		return PARLEY_ERR_BAD_REQUEST;
	chat_resume_refuse(c);
	return PARLEY_OK;
}

void
plugin_chat_host(struct parley_host *h)
{
	h->client_id = host_client_id;
	h->client_name = host_client_name;
	h->client_addr = host_client_addr;
	h->client_find = host_client_find;
	h->client_find_by_name = host_client_find_by_name;
	h->client_notice = host_client_notice;
	h->client_send_json = host_client_send_json;
	h->client_kick = host_client_kick;
	h->client_disconnect = host_client_disconnect;
	h->client_rename = host_client_rename;
	h->client_has_role = host_client_has_role;
	h->client_add_role = host_client_add_role;
	h->client_remove_role = host_client_remove_role;
	h->room_find = host_room_find;
	h->room_name = host_room_name;
	h->room_create = host_room_create;
	h->room_member_count = host_room_member_count;
	h->room_members = host_room_members;
	h->room_has_member = host_room_has_member;
	h->room_each = host_room_each;
	h->room_post = host_room_post;
	h->room_notice = host_room_notice;
	h->room_send_json = host_room_send_json;
	h->remote_create = host_remote_create;
	h->remote_join = host_remote_join;
	h->remote_leave = host_remote_leave;
	h->remote_remove = host_remote_remove;
	h->client_is_remote = host_client_is_remote;
	h->room_post_seq = host_room_post_seq;
	h->room_owner = host_room_owner;
	h->room_remove = host_room_remove;
	h->client_account = host_client_account;
	h->room_owner_account = host_room_owner_account;
	h->relay_set = host_relay_set;
	h->session_find = host_session_find;
	h->session_moved = host_session_moved;
	h->session_wait = host_session_wait;
	h->session_adopt = host_session_adopt;
	h->session_refuse = host_session_refuse;
}
