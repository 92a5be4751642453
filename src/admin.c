/*
 * admin.c: the admin API, served under /admin/v1/ on the admin listener
 * only (admin_listen: an address or a unix socket; http.c runs its
 * libmicrohttpd daemon inside our loop and hands these requests here; the
 * public port answers 404 for them). Each request carries a bearer token
 * of admin_tokens, kept as SHA-256 hashes in the configuration and
 * compared in constant time; a missing or wrong one gets 401 and nothing
 * more, and an address that keeps guessing waits. Replies are JSON with
 * stable error codes (doc/ADMIN-API.md). Every action is a chat.c action
 * taken by CHAT_ACTOR_ADMIN under the token's name, so the hooks see who
 * acted. The router is a table: an endpoint is one line and a handler.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <microhttpd.h>
#include <nettle/sha2.h>

#include "parley.h"

/* A failed token from one address this many times within the window
 * locks it out for ADMIN_LOCK_MS; so many addresses are remembered. */
#define ADMIN_FAILS_MAX 5
#define ADMIN_FAILS_WINDOW_MS 60000
#define ADMIN_LOCK_MS 60000
#define ADMIN_PEERS_MAX 4096
#define ADMIN_MEMBERS_DEFAULT 1000
#define ADMIN_MEMBERS_MAX 100000

struct admin_peer {
	unsigned fails;
	uint64_t first; /* loop_now() of the first failure counted */
	uint64_t until; /* locked out before this loop_now() */
};
static struct map admin_peers;
static bool admin_peers_ready;
static uint64_t admin_started; /* loop_wall_ms() at start */
static int (*admin_reload_fn)(char **result);

/* Work on an account handed to the worker, and the request waiting for
 * it (NULL once that request is gone). */
struct admin_job {
	uint64_t ticket;
	enum account_op op;
	char *name;
	struct admin_req *rq;
	struct admin_job *next;
};
static struct admin_job *admin_jobs;
static uint64_t admin_last_ticket;

/* One request while it is read (and, suspended, while it waits). */
struct admin_req {
	struct MHD_Connection *conn;
	char *body;
	size_t len;
	bool too_big;
	bool authed;
	struct admin_job *job; /* waiting for it (suspended) */
	unsigned answer_status;
	json_t *answer; /* the answer once the job is done */
	char token[ADMIN_TOKEN_NAME_MAX + 1]; /* its name */
};

/* What a handler works with and answers. */
struct admin_ctx {
	struct MHD_Connection *conn; /* NULL when fuzzing */
	struct admin_req *rq;
	bool later; /* answered when the worker is through */
	const struct chat_actor *by;
	struct room *room; /* the route's room, found */
	const char *name; /* the route's room name as given */
	size_t name_len;
	json_t *body; /* the request's object, or an empty one */
	unsigned status;
	json_t *reply; /* set by the handler */
};

typedef void (*admin_fn)(struct admin_ctx *x);

/* A route: METHOD and a path under the prefix. With arg set the path
 * is path (ending in '/') and a NAME, followed by "/" and action when
 * action is not NULL; the name is all between, so it may hold slashes.
 * arg 'r': the name is a room's, found before the handler runs; 'n':
 * any name. */
struct admin_route {
	const char *method;
	const char *path;
	char arg;
	const char *action;
	admin_fn fn;
};

static void
admin_error(
    struct admin_ctx *x, unsigned status, const char *code, const char *message)
{
	json_decref(x->reply);
	x->status = status;
	x->reply = json_pack("{s:s}", "error", code);
	if (message != NULL)
		json_object_set_new(x->reply, "message", json_string(message));
}

/* The HTTP status for a chat action's refusal. */
static unsigned
admin_status_of(enum proto_err e)
{
	switch (e) {
	case PROTO_OK:
		return MHD_HTTP_OK;
	case PROTO_ERR_ROOM_NOT_FOUND:
	case PROTO_ERR_NOT_IN_ROOM:
	case PROTO_ERR_USER_NOT_FOUND:
	case PROTO_ERR_MESSAGE_NOT_FOUND:
		return MHD_HTTP_NOT_FOUND;
	case PROTO_ERR_ROOM_EXISTS:
	case PROTO_ERR_NAME_TAKEN:
		return MHD_HTTP_CONFLICT;
	case PROTO_ERR_FORBIDDEN:
	case PROTO_ERR_REJECTED:
		return MHD_HTTP_FORBIDDEN;
	case PROTO_ERR_RATE_LIMITED:
		return MHD_HTTP_TOO_MANY_REQUESTS;
	case PROTO_ERR_UNSUPPORTED:
		return MHD_HTTP_NOT_IMPLEMENTED;
	case PROTO_ERR_INTERNAL:
		return MHD_HTTP_INTERNAL_SERVER_ERROR;
	default:
		return MHD_HTTP_BAD_REQUEST;
	}
}

/* What an error means to an admin, when the action said nothing more. */
static const char *
admin_error_text(enum proto_err e)
{
	switch (e) {
	case PROTO_ERR_ROOM_EXISTS:
		return "the room already exists";
	case PROTO_ERR_ROOM_NOT_FOUND:
		return "there is no such room";
	case PROTO_ERR_NOT_IN_ROOM:
		return "the user is not in that room";
	case PROTO_ERR_USER_NOT_FOUND:
		return "no such user";
	case PROTO_ERR_MESSAGE_NOT_FOUND:
		return "no such message in that room";
	case PROTO_ERR_INVALID_NAME:
		return "names are 1 to 32 bytes (rooms 64) of text without "
		       "control characters or leading or trailing spaces";
	case PROTO_ERR_NAME_TAKEN:
		return "the name is taken";
	case PROTO_ERR_MESSAGE_TOO_LONG:
		return "the message is too long";
	case PROTO_ERR_FORBIDDEN:
	case PROTO_ERR_REJECTED:
		return "refused by the server";
	case PROTO_ERR_RATE_LIMITED:
		return "too much work waiting; try again";
	case PROTO_ERR_UNSUPPORTED:
		return "this server does not do that";
	default:
		return "the action failed";
	}
}

/* Answers a chat action's result: ok (reply as it is) or its error, with
 * the action's *reason (taken; reason may be NULL). A pointer, so that
 * it is read after the action that sets it ran. */
static void
admin_result(struct admin_ctx *x, enum proto_err e, char **reason)
{
	char *why = reason != NULL ? *reason : NULL;

	if (e != PROTO_OK)
		admin_error(x, admin_status_of(e), proto_err_code(e),
		    why != NULL ? why : admin_error_text(e));
	free(why);
	if (reason != NULL)
		*reason = NULL;
}

/* Records an action the chat action does not record itself. */
static void
admin_audit(struct admin_ctx *x, const char *action, const char *target,
    const char *reason)
{
	state_audit(x->by, action, target, x->room, reason, 0);
}

/* A string field of the body: NULL (and a 400 set) when it is absent and
 * needed, not a string, empty or over max bytes. */
static const char *
admin_field(
    struct admin_ctx *x, const char *key, bool needed, size_t max, size_t *len)
{
	json_t *v = json_object_get(x->body, key);
	char why[96];

	*len = 0;
	if (v == NULL && !needed)
		return NULL;
	if (v == NULL || !json_is_string(v) || json_string_length(v) == 0 ||
	    json_string_length(v) > max) {
		snprintf(why, sizeof why, "%s: a string of 1 to %zu bytes", key,
		    max);
		admin_error(x, MHD_HTTP_BAD_REQUEST, "bad_request", why);
		return NULL;
	}
	*len = json_string_length(v);
	if (utf8_has_control(json_string_value(v), *len) &&
	    strcmp(key, "message") != 0 && strcmp(key, "password") != 0) {
		snprintf(why, sizeof why, "%s: control characters", key);
		admin_error(x, MHD_HTTP_BAD_REQUEST, "bad_request", why);
		return NULL;
	}
	return json_string_value(v);
}

/* A query parameter as a bounded number; def when absent; -1 (and a 400
 * set) when it is not a number within 0..max. */
static long long
admin_param_num(
    struct admin_ctx *x, const char *name, long long def, long long max)
{
	const char *v = x->conn != NULL
	    ? MHD_lookup_connection_value(x->conn, MHD_GET_ARGUMENT_KIND, name)
	    : NULL;
	char *end, why[96];
	long long n;

	if (v == NULL)
		return def;
	n = strtoll(v, &end, 10);
	if (*v == '\0' || *end != '\0' || n < 0 || n > max) {
		snprintf(
		    why, sizeof why, "%s: a number from 0 to %lld", name, max);
		admin_error(x, MHD_HTTP_BAD_REQUEST, "bad_request", why);
		return -1;
	}
	return n;
}

/* ---- Reading */

static json_t *
admin_room_json(const struct room *r)
{
	json_t *o = json_pack("{s:s%, s:I, s:I}", "name", r->name, r->name_len,
	    "members", (json_int_t)r->count, "seq", (json_int_t)r->seq);

	json_object_set_new(o, "owner",
	    r->owner_account != NULL ? json_string(r->owner_account)
				     : json_null());
	json_object_set_new(
	    o, "topic", r->topic != NULL ? json_string(r->topic) : json_null());
	json_object_set_new(o, "roles", chat_roles(r));
	json_object_set_new(o, "configured", json_boolean(r->configured));
	json_object_set_new(o, "created", json_integer((json_int_t)r->created));
	return o;
}

static int
admin_rooms_add(struct room *r, void *arg)
{
	json_array_append_new(arg, admin_room_json(r));
	return 0;
}

static void
admin_rooms(struct admin_ctx *x)
{
	json_t *a = json_array();

	room_each(admin_rooms_add, a);
	x->reply = json_pack("{s:o}", "rooms", a);
}

/* When c connected, in wall-clock milliseconds. */
static json_int_t
admin_since(const struct client *c)
{
	return (json_int_t)(loop_wall_ms() - (loop_now() - c->opened));
}

static json_t *
admin_user_json(const struct client *c)
{
	json_t *rooms = json_array();
	json_t *o;

	for (uint32_t i = 0; i < c->nrooms; i++)
		json_array_append_new(rooms,
		    json_stringn(client_room(c, i)->room->name,
			client_room(c, i)->room->name_len));
	o = json_pack("{s:s, s:o, s:s, s:o, s:I, s:o}", "username", c->name,
	    "account", c->account ? json_string(c->account) : json_null(),
	    "address", c->addr ? c->addr : "unknown", "rooms", rooms,
	    "connected_since", admin_since(c), "roles", client_roles_public(c));
	if (c->remote)
		json_object_set_new(o, "remote", json_true());
	return o;
}

static void
admin_room(struct admin_ctx *x)
{
	long long offset = admin_param_num(x, "offset", 0, UINT32_MAX);
	long long limit = admin_param_num(
	    x, "limit", ADMIN_MEMBERS_DEFAULT, ADMIN_MEMBERS_MAX);
	json_t *o, *members;
	long long i = 0;

	if (offset < 0 || limit < 0)
		return;
	members = json_array();
	for (struct membership *m = x->room->head; m != NULL; m = m->next) {
		if (i++ < offset)
			continue;
		if ((long long)json_array_size(members) >= limit)
			break;
		json_array_append_new(members,
		    json_pack("{s:s, s:o}", "username", m->client->name,
			"account",
			m->client->account ? json_string(m->client->account)
					   : json_null()));
	}
	o = admin_room_json(x->room);
	json_object_set_new(o, "member_list", members);
	x->reply = o;
}

static void
admin_users(struct admin_ctx *x)
{
	json_t *a = json_array();

	for (struct client *c = clients; c != NULL; c = c->next) {
		/* Admitted but not yet upgraded ones are not anyone yet. */
		if (c->dead || (c->closing && c->lfd.fd == -1 && !c->remote))
			continue;
		json_array_append_new(a, admin_user_json(c));
	}
	x->reply = json_pack("{s:o}", "users", a);
}

static void
admin_status(struct admin_ctx *x)
{
	bool plugins_ok;
	json_t *plugins = plugin_health(&plugins_ok);
	uint64_t lag, lag_max;
	const char *accounts = !account_enabled() ? "off"
	    : account_read_only()		  ? "read-only"
						  : "ok";

	metrics_loop_lag(&lag, &lag_max);
	x->reply = json_pack(
	    "{s:s, s:s, s:i, s:i, s:I, s:I, s:I, s:I, s:{s:I, s:I},"
	    " s:{s:s, s:b}, s:s, s:o}",
	    "status", plugins_ok ? "ok" : "degraded", "version",
	    PACKAGE_VERSION, "protocol", PARLEY_PROTOCOL_VERSION, "minor",
	    PARLEY_PROTOCOL_MINOR, "uptime",
	    (json_int_t)((loop_wall_ms() - admin_started) / 1000),
	    "connections", (json_int_t)conn_count(), "http_connections",
	    (json_int_t)http_count(), "rooms", (json_int_t)room_count(),
	    "loop_lag_ms", "last", (json_int_t)lag, "max", (json_int_t)lag_max,
	    "history", "store", history_store_name(), "enabled",
	    history_enabled(), "accounts", accounts, "plugins", plugins);
	json_object_set_new(
	    x->reply, "state", json_pack("{s:b}", "durable", state_durable()));
}

/* ---- Acting */

static void
admin_room_create(struct admin_ctx *x)
{
	size_t len;
	const char *name = admin_field(
	    x, "name", true, PROTO_ROOM_NAME_MAX * 4, &len);
	char *reason = NULL;
	struct room *r = NULL;
	enum proto_err e;

	if (name == NULL)
		return;
	e = chat_room_create(x->by, name, len, NULL, &r, &reason);
	if (e == PROTO_OK && r != NULL) {
		x->status = MHD_HTTP_CREATED;
		x->reply = admin_room_json(r);
		x->room = r;
		admin_audit(x, "create_room", r->name, NULL);
	}
	admin_result(x, e, &reason);
}

static void
admin_room_delete(struct admin_ctx *x)
{
	size_t len;
	const char *why = admin_field(x, "reason", false, 256, &len);
	char *text, *reason = NULL;

	if (why == NULL && x->reply != NULL)
		return;
	/* With the admin's words for the members, when there are some. */
	text = why != NULL ? xstrndup(why, len) : NULL;
	admin_result(
	    x, chat_delete_room_why(x->by, x->room, text, &reason), &reason);
	free(text);
}

/* "message" of the body, within the chat's bounds. */
static const char *
admin_message(struct admin_ctx *x, size_t *len)
{
	return admin_field(x, "message", true, cfg->max_message_bytes, len);
}

static void
admin_announce(struct admin_ctx *x)
{
	size_t len;
	const char *text = admin_message(x, &len);

	if (text != NULL) {
		x->reply = json_pack("{s:I}", "recipients",
		    (json_int_t)chat_announce(x->by, x->room, text, len));
		admin_audit(x, "announce", NULL, NULL);
	}
}

static void
admin_post(struct admin_ctx *x)
{
	size_t len;
	const char *text = admin_message(x, &len);
	json_t *action = json_object_get(x->body, "action");
	char *reason = NULL;
	enum proto_err e;

	if (text == NULL)
		return;
	if (action != NULL && !json_is_boolean(action)) {
		admin_error(x, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "action: true or false");
		return;
	}
	e = chat_server_post(
	    x->by, x->room, text, len, json_is_true(action), &reason);
	if (e == PROTO_OK) {
		x->reply = json_pack("{s:I}", "seq", (json_int_t)x->room->seq);
		admin_audit(x, "post", NULL, NULL);
	}
	admin_result(x, e, &reason);
}

/* The connected client named by the body's "user"; NULL (404 set) when
 * none is. */
static struct client *
admin_user(struct admin_ctx *x)
{
	size_t len;
	const char *name = admin_field(x, "user", true, 256, &len);
	struct client *c;

	if (name == NULL)
		return NULL;
	c = client_find_by_name(name, len);
	if (c == NULL || c->dead)
		admin_error(x, MHD_HTTP_NOT_FOUND, "user_not_found",
		    "nobody of that name is connected");
	return c != NULL && !c->dead ? c : NULL;
}

static void
admin_kick(struct admin_ctx *x)
{
	struct client *c = admin_user(x);
	size_t len;
	const char *why;
	char *text, *reason = NULL;
	enum proto_err e;

	if (c == NULL)
		return;
	why = admin_field(x, "reason", false, 256, &len);
	if (why == NULL && x->reply != NULL)
		return;
	text = why != NULL ? xstrndup(why, len) : NULL;
	e = chat_kick_checked(x->by, c, x->room, text, &reason);
	if (e == PROTO_OK)
		admin_audit(x, "kick", c->name, text);
	admin_result(x, e, &reason);
	free(text);
}

static void
admin_reload(struct admin_ctx *x)
{
	char *cause = NULL;

	if (admin_reload_fn == NULL) {
		admin_error(x, MHD_HTTP_NOT_IMPLEMENTED, "unsupported",
		    "this server cannot reload");
		return;
	}
	if (admin_reload_fn(&cause) == -1) {
		admin_error(x, 422, "reload_failed",
		    cause != NULL ? cause : "the configuration was refused");
		free(cause);
		return;
	}
	x->reply = json_pack("{s:b}", "reloaded", 1);
	admin_audit(x, "reload", NULL, NULL);
}

/* ---- Moderation (the chat actions of rooms that last) */

/* "seconds" of the body: 0 (for good) when absent; -1 and a 400 when it
 * is not a whole number of seconds up to ten years. */
static long long
admin_seconds(struct admin_ctx *x)
{
	json_t *v = json_object_get(x->body, "seconds");

	if (v == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > 10LL * 366 * 86400) {
		admin_error(x, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "seconds: a whole number from 0 (for good) up to ten years");
		return -1;
	}
	return json_integer_value(v);
}

static void
admin_restrict(struct admin_ctx *x, bool ban)
{
	struct client *c = admin_user(x);
	long long seconds;
	size_t len;
	const char *why;
	char *text, *reason = NULL;
	enum proto_err e;

	if (c == NULL || (seconds = admin_seconds(x)) < 0)
		return;
	why = admin_field(x, "reason", false, 256, &len);
	if (why == NULL && x->reply != NULL)
		return;
	text = why != NULL ? xstrndup(why, len) : NULL;
	e = ban
	    ? chat_ban(x->by, x->room, c, (uint64_t)seconds, text, &reason)
	    : chat_mute(x->by, x->room, c, (uint64_t)seconds, text, &reason);
	admin_result(x, e, &reason);
	free(text);
}

static void
admin_ban(struct admin_ctx *x)
{
	admin_restrict(x, true);
}

static void
admin_mute(struct admin_ctx *x)
{
	admin_restrict(x, false);
}

static void
admin_lift(struct admin_ctx *x, bool ban)
{
	size_t len;
	const char *name = admin_field(x, "user", true, 256, &len);
	char *who, *reason = NULL;

	if (name == NULL)
		return;
	who = xstrndup(name, len);
	admin_result(x,
	    ban ? chat_unban(x->by, x->room, who, &reason)
		: chat_unmute(x->by, x->room, who, &reason),
	    &reason);
	free(who);
}

static void
admin_unban(struct admin_ctx *x)
{
	admin_lift(x, true);
}

static void
admin_unmute(struct admin_ctx *x)
{
	admin_lift(x, false);
}

static void
admin_role(struct admin_ctx *x)
{
	struct client *c = admin_user(x);
	json_t *role = json_object_get(x->body, "role");
	char *reason = NULL;

	if (c == NULL)
		return;
	if (!json_is_null(role) &&
	    !(json_is_string(role) &&
		strcmp(json_string_value(role), "moderator") == 0)) {
		admin_error(x, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "role: \"moderator\" or null");
		return;
	}
	admin_result(x,
	    chat_set_role(x->by, x->room, c,
		json_is_string(role) ? "moderator" : NULL, &reason),
	    &reason);
}

static void
admin_topic(struct admin_ctx *x)
{
	json_t *v = json_object_get(x->body, "topic");
	char *reason = NULL;

	if (!json_is_string(v)) {
		admin_error(x, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "topic: a string (empty clears it)");
		return;
	}
	admin_result(x,
	    chat_set_topic(x->by, x->room, json_string_value(v),
		json_string_length(v), NULL, &reason),
	    &reason);
}

static void
admin_delete_message(struct admin_ctx *x)
{
	json_t *v = json_object_get(x->body, "seq");
	char *reason = NULL;

	if (!json_is_integer(v) || json_integer_value(v) <= 0) {
		admin_error(x, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "seq: a message's seq");
		return;
	}
	admin_result(x,
	    chat_delete_message(
		x->by, x->room, (uint64_t)json_integer_value(v), NULL, &reason),
	    &reason);
}

/* GET bans[?room=NAME]: the bans and mutes in force. */
static void
admin_bans(struct admin_ctx *x)
{
	const char *room = x->conn != NULL
	    ? MHD_lookup_connection_value(
		  x->conn, MHD_GET_ARGUMENT_KIND, "room")
	    : NULL;
	uint64_t now = loop_wall_ms() / 1000;
	static const char *const kinds[] = { "ban", "mute" };
	json_t *out = json_object();

	if (room != NULL && room_find(room, strlen(room)) == NULL) {
		json_decref(out);
		admin_error(x, MHD_HTTP_NOT_FOUND, "room_not_found",
		    "there is no such room");
		return;
	}
	for (size_t k = 0; k < 2; k++) {
		json_t *all = state_all(kinds[k]), *v, *list = json_array();
		const char *key;
		json_object_foreach(all, key, v)
		{
			json_int_t until = json_integer_value(
			    json_object_get(v, "until"));
			const char *r = json_string_value(
			    json_object_get(v, "room"));
			if (until != 0 && (uint64_t)until <= now)
				continue;
			if (room != NULL && (r == NULL || strcmp(r, room) != 0))
				continue;
			json_array_append(list, v);
		}
		json_object_set_new(out, k == 0 ? "bans" : "mutes", list);
	}
	x->reply = out;
}

/* GET audit?limit=N&offset=M: the newest records but offset, oldest
 * first. */
static void
admin_audit_read(struct admin_ctx *x)
{
	long long limit = admin_param_num(x, "limit", 100, 1000);
	long long offset = admin_param_num(x, "offset", 0, 1000000);
	json_t *all, *page;
	size_t n, end, start;

	if (limit < 0 || offset < 0)
		return;
	all = state_audit_read((size_t)(limit + offset));
	n = json_array_size(all);
	end = n > (size_t)offset ? n - (size_t)offset : 0;
	start = end > (size_t)limit ? end - (size_t)limit : 0;
	page = json_array();
	for (size_t i = start; i < end; i++)
		json_array_append(page, json_array_get(all, i));
	json_decref(all);
	x->reply = json_pack("{s:o}", "audit", page);
}

/* ---- Accounts: the worker answers, the request waits suspended */

static struct admin_job *
admin_job_find(uint64_t ticket)
{
	for (struct admin_job *j = admin_jobs; j != NULL; j = j->next) {
		if (j->ticket == ticket)
			return j;
	}
	return NULL;
}

static void
admin_job_free(struct admin_job *job)
{
	struct admin_job **pp = &admin_jobs;

	while (*pp != NULL && *pp != job)
		pp = &(*pp)->next;
	if (*pp != NULL)
		*pp = job->next;
	if (job->rq != NULL)
		job->rq->job = NULL;
	free(job->name);
	free(job);
}

/* Wakes the suspended request of job with its answer (taken). */
static void
admin_job_answer(struct admin_job *job, unsigned status, json_t *answer)
{
	struct admin_req *rq = job->rq;

	if (rq == NULL) {
		json_decref(answer);
		return;
	}
	rq->answer_status = status;
	rq->answer = answer;
	rq->job = NULL;
	job->rq = NULL;
	MHD_resume_connection(rq->conn);
	http_kick();
}

/* Stored roles ("a b", or NULL) as a JSON array. */
static json_t *
admin_roles_json(const char *stored)
{
	json_t *a = json_array();

	for (const char *p = stored; p != NULL && *p != '\0';) {
		size_t len = strcspn(p, " ");
		if (len > 0)
			json_array_append_new(a, json_stringn(p, len));
		p += len;
		p += strspn(p, " ");
	}
	return a;
}

/* The worker is through with an account (in the loop). */
static void
admin_account_done(uint64_t ticket, enum account_status st)
{
	struct admin_job *job = admin_job_find(ticket);
	unsigned status = MHD_HTTP_OK;
	json_t *a;

	if (job == NULL)
		return;
	switch (st) {
	case ACCOUNT_OK:
		if (job->op == ACCOUNT_OP_DELETE)
			chat_account_gone(job->name);
		if (job->op == ACCOUNT_OP_CREATE) {
			status = MHD_HTTP_CREATED;
			a = json_pack("{s:s}", "name", job->name);
		} else if (job->op == ACCOUNT_OP_ROLES) {
			chat_account_roles_changed(job->name);
			a = json_pack("{s:s, s:o}", "name", job->name, "roles",
			    admin_roles_json(account_roles(job->name)));
		} else
			a = json_pack("{s:b}", "ok", 1);
		break;
	case ACCOUNT_DENIED:
		status = MHD_HTTP_NOT_FOUND;
		a = json_pack("{s:s, s:s}", "error", "account_not_found",
		    "message", "there is no such account");
		break;
	case ACCOUNT_EXISTS:
		status = MHD_HTTP_CONFLICT;
		a = json_pack("{s:s, s:s}", "error", "name_taken", "message",
		    "an account of that name exists");
		break;
	default:
		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		a = json_pack("{s:s, s:s}", "error", "internal", "message",
		    "the account store failed (see the server's log)");
		break;
	}
	admin_job_answer(job, status, a);
	admin_job_free(job);
}

static void
admin_account_submit(struct admin_ctx *x, enum account_op op, const char *name,
    size_t len, const char *password, size_t pwlen, const char *const *roles,
    size_t nroles)
{
	uint64_t ticket = ++admin_last_ticket;
	char *reason = NULL;
	struct admin_job *job;
	enum proto_err e;

	if (!account_enabled()) {
		admin_error(x, MHD_HTTP_NOT_IMPLEMENTED, "unsupported",
		    "this server keeps no accounts");
		return;
	}
	if (op != ACCOUNT_OP_CREATE && account_holder(name, len) == NULL) {
		admin_error(x, MHD_HTTP_NOT_FOUND, "account_not_found",
		    "there is no such account");
		return;
	}
	e = op == ACCOUNT_OP_ROLES
	    ? chat_account_set_roles(x->by, name, len, roles, nroles,
		  admin_account_done, ticket, &reason)
	    : chat_account_admin(x->by, op, name, len, password, pwlen,
		  admin_account_done, ticket, &reason);
	if (e != PROTO_OK) {
		admin_result(x, e, &reason);
		return;
	}
	free(reason);
	job = xcalloc(1, sizeof *job);
	job->ticket = ticket;
	job->op = op;
	job->name = op == ACCOUNT_OP_CREATE
	    ? xstrndup(name, len)
	    : xstrdup(account_holder(name, len));
	job->rq = x->rq;
	job->next = admin_jobs;
	admin_jobs = job;
	if (x->rq != NULL)
		x->rq->job = job;
	x->later = true;
	if (op == ACCOUNT_OP_ROLES) {
		char list[CHAT_SERVER_ROLES_MAX * 40] = "";
		size_t used = 0;
		for (size_t i = 0; i < nroles && used < sizeof list; i++)
			used += (size_t)snprintf(list + used,
			    sizeof list - used, "%s%s", i > 0 ? " " : "",
			    roles[i]);
		admin_audit(x, "set_roles", job->name, list);
		return;
	}
	admin_audit(x,
	    op == ACCOUNT_OP_CREATE	  ? "create_account"
		: op == ACCOUNT_OP_DELETE ? "delete_account"
					  : "set_password",
	    job->name, NULL);
}

static void
admin_account_create(struct admin_ctx *x)
{
	size_t len, pwlen;
	const char *name = admin_field(x, "name", true, 256, &len);
	const char *pw;

	if (name == NULL)
		return;
	if ((pw = admin_field(
		 x, "password", true, ACCOUNT_PASSWORD_MAX, &pwlen)) == NULL)
		return;
	admin_account_submit(
	    x, ACCOUNT_OP_CREATE, name, len, pw, pwlen, NULL, 0);
}

static void
admin_account_delete(struct admin_ctx *x)
{
	admin_account_submit(
	    x, ACCOUNT_OP_DELETE, x->name, x->name_len, NULL, 0, NULL, 0);
}

static void
admin_account_password(struct admin_ctx *x)
{
	size_t pwlen;
	const char *pw = admin_field(
	    x, "password", true, ACCOUNT_PASSWORD_MAX, &pwlen);

	if (pw != NULL)
		admin_account_submit(x, ACCOUNT_OP_PASSWORD, x->name,
		    x->name_len, pw, pwlen, NULL, 0);
}

/* PUT accounts/NAME/roles {"roles": ["operator"]}: the account's server
 * roles, all of them ([] takes them away). */
static void
admin_account_roles(struct admin_ctx *x)
{
	json_t *v = json_object_get(x->body, "roles"), *r;
	const char *roles[CHAT_SERVER_ROLES_MAX];
	size_t i, n;

	if (!json_is_array(v) || json_array_size(v) > CHAT_SERVER_ROLES_MAX) {
		admin_error(x, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "roles: a list of server roles (" CHAT_SERVER_ROLES ")");
		return;
	}
	n = 0;
	json_array_foreach(v, i, r)
	{
		if (!json_is_string(r) || json_string_length(r) == 0 ||
		    json_string_length(r) > 32 ||
		    strlen(json_string_value(r)) != json_string_length(r)) {
			admin_error(x, MHD_HTTP_BAD_REQUEST, "bad_request",
			    "roles: names of server roles (" CHAT_SERVER_ROLES
			    ")");
			return;
		}
		roles[n] = json_string_value(r);
		/* Each once. */
		for (size_t k = 0; k < n; k++) {
			if (roles[k] != NULL && strcmp(roles[k], roles[n]) == 0)
				roles[n] = NULL;
		}
		if (roles[n] != NULL)
			n++;
	}
	admin_account_submit(
	    x, ACCOUNT_OP_ROLES, x->name, x->name_len, NULL, 0, roles, n);
}

/* Kept in the order they are matched; a path of another method is 405. */
static const struct admin_route admin_routes[] = {
	{ "GET", "status", 0, NULL, admin_status },
	{ "GET", "rooms", 0, NULL, admin_rooms },
	{ "POST", "rooms", 0, NULL, admin_room_create },
	{ "GET", "users", 0, NULL, admin_users },
	{ "GET", "bans", 0, NULL, admin_bans },
	{ "GET", "audit", 0, NULL, admin_audit_read },
	{ "POST", "announce", 0, NULL, admin_announce },
	{ "POST", "reload", 0, NULL, admin_reload },
	{ "POST", "accounts", 0, NULL, admin_account_create },
	{ "POST", "rooms/", 'r', "announce", admin_announce },
	{ "POST", "rooms/", 'r', "messages", admin_post },
	{ "POST", "rooms/", 'r', "kick", admin_kick },
	{ "POST", "rooms/", 'r', "ban", admin_ban },
	{ "POST", "rooms/", 'r', "unban", admin_unban },
	{ "POST", "rooms/", 'r', "mute", admin_mute },
	{ "POST", "rooms/", 'r', "unmute", admin_unmute },
	{ "POST", "rooms/", 'r', "role", admin_role },
	{ "POST", "rooms/", 'r', "topic", admin_topic },
	{ "POST", "rooms/", 'r', "delete_message", admin_delete_message },
	{ "GET", "rooms/", 'r', NULL, admin_room },
	{ "DELETE", "rooms/", 'r', NULL, admin_room_delete },
	{ "POST", "accounts/", 'n', "password", admin_account_password },
	{ "PUT", "accounts/", 'n', "roles", admin_account_roles },
	{ "DELETE", "accounts/", 'n', NULL, admin_account_delete },
};

/* ---- Parsing, shared with the fuzzer */

int
admin_route_match(const char *method, const char *path, size_t plen,
    size_t *route, const char **name, size_t *name_len)
{
	bool other_method = false;

	*name = NULL;
	*name_len = 0;
	for (size_t i = 0; i < sizeof admin_routes / sizeof *admin_routes;
	     i++) {
		const struct admin_route *r = &admin_routes[i];
		size_t n = strlen(r->path), alen;
		const char *rest;
		size_t rlen;

		if (r->arg == 0) {
			if (plen != n || memcmp(path, r->path, n) != 0)
				continue;
		} else {
			if (plen <= n || memcmp(path, r->path, n) != 0)
				continue;
			rest = path + n;
			rlen = plen - n;
			if (r->action != NULL) {
				alen = strlen(r->action);
				if (rlen < alen + 2 ||
				    rest[rlen - alen - 1] != '/' ||
				    memcmp(rest + rlen - alen, r->action,
					alen) != 0)
					continue;
				rlen -= alen + 1;
			} else if (strcmp(method, "POST") == 0)
				continue; /* a POST names an action */
			if (strcmp(method, r->method) != 0) {
				other_method = true;
				continue;
			}
			*name = rest;
			*name_len = rlen;
			*route = i;
			return 0;
		}
		if (strcmp(method, r->method) != 0) {
			other_method = true;
			continue;
		}
		*route = i;
		return 0;
	}
	return other_method ? -2 : -1;
}

const char *
admin_bearer(const char *header, size_t *len)
{
	const char *t;

	*len = 0;
	if (header == NULL || strncasecmp(header, "Bearer ", 7) != 0)
		return NULL;
	t = header + 7;
	while (*t == ' ')
		t++;
	*len = strcspn(t, " \t");
	if (*len == 0 || *len > ADMIN_TOKEN_MAX || t[*len] != '\0')
		return NULL;
	for (size_t i = 0; i < *len; i++) {
		if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
			return NULL;
	}
	return t;
}

json_t *
admin_body_parse(const char *body, size_t len, const char **why)
{
	json_error_t err;
	json_t *j;

	*why = NULL;
	if (len == 0)
		return json_object();
	if (proto_json_depth(body, len, cfg->max_json_depth) >
	    cfg->max_json_depth) {
		*why = "the body nests too deeply";
		return NULL;
	}
	j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
	if (j == NULL) {
		*why = "the body is not JSON";
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		*why = "the body is not a JSON object";
		return NULL;
	}
	return j;
}

/* ---- Tokens */

static int
admin_hex(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return 0;
}

/* The name of the token (len bytes) among admin_tokens, copied to name;
 * false when none matches. Every configured hash is compared, each in
 * the same time wherever it differs. */
static bool
admin_token_check(const char *token, size_t len, char *name, size_t size)
{
	uint8_t digest[SHA256_DIGEST_SIZE];
	struct sha256_ctx ctx;
	bool found = false;

	sha256_init(&ctx);
	sha256_update(&ctx, len, (const uint8_t *)token);
	sha256_digest(&ctx, sizeof digest, digest);
	for (size_t i = 0; i < cfg->admin_tokens.n; i++) {
		const char *entry = cfg->admin_tokens.v[i];
		const char *colon = strchr(entry, ':');
		const char *hex;
		unsigned diff = 0;

		/* The configuration checked the form. */
		if (colon == NULL || strlen(colon) != 8 + 2 * sizeof digest)
			continue;
		hex = colon + 8;
		for (size_t k = 0; k < sizeof digest; k++)
			diff |= (unsigned)(digest[k] ^
			    (admin_hex(hex[2 * k]) << 4 |
				admin_hex(hex[2 * k + 1])));
		if (diff == 0 && !found) {
			found = true;
			snprintf(
			    name, size, "%.*s", (int)(colon - entry), entry);
		}
	}
	return found;
}

static struct admin_peer *
admin_peer_find(const char *addr)
{
	return map_find(&admin_peers, addr, strlen(addr));
}

/* Forgets addresses that are neither locked nor failing of late. */
static void
admin_peers_sweep(void)
{
	size_t pos = 0;
	const char *key;
	void *v;
	uint64_t now = loop_now();

	while (map_next(&admin_peers, &pos, &key, &v)) {
		struct admin_peer *p = v;
		if (p->until <= now &&
		    now - p->first >= ADMIN_FAILS_WINDOW_MS) {
			map_remove(&admin_peers, key, strlen(key));
			free(p);
		}
	}
}

/* Seconds addr must wait before its token is checked, 0 for none. */
static unsigned
admin_wait(const char *addr)
{
	struct admin_peer *p = admin_peer_find(addr);
	uint64_t now = loop_now();

	if (p == NULL || p->until <= now)
		return 0;
	return (unsigned)((p->until - now + 999) / 1000);
}

static void
admin_failed(const char *addr)
{
	struct admin_peer *p;
	uint64_t now = loop_now();

	if (!admin_peers_ready) {
		map_init(&admin_peers);
		admin_peers_ready = true;
	}
	if ((p = admin_peer_find(addr)) == NULL) {
		if (admin_peers.count >= ADMIN_PEERS_MAX)
			admin_peers_sweep();
		/* Too many addresses at once: they share one count. */
		if (admin_peers.count >= ADMIN_PEERS_MAX)
			addr = "*";
		if ((p = admin_peer_find(addr)) == NULL) {
			p = xcalloc(1, sizeof *p);
			map_add(&admin_peers, addr, strlen(addr), p);
		}
	}
	if (now - p->first >= ADMIN_FAILS_WINDOW_MS) {
		p->first = now;
		p->fails = 0;
	}
	if (++p->fails >= ADMIN_FAILS_MAX) {
		p->until = now + ADMIN_LOCK_MS;
		p->fails = 0;
		log_warn("admin", "%s: %u wrong tokens; refused for %us", addr,
		    ADMIN_FAILS_MAX, ADMIN_LOCK_MS / 1000);
	}
}

/* ---- HTTP */

static enum MHD_Result
admin_respond(
    struct MHD_Connection *conn, unsigned status, json_t *reply, unsigned retry)
{
	char *text = json_dumps(reply, JSON_COMPACT);
	size_t len;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char value[16];

	if (text == NULL)
		return MHD_NO;
	len = strlen(text);
	text = xrealloc(text, len + 2);
	text[len++] = '\n';
	text[len] = '\0';
	resp = MHD_create_response_from_buffer(
	    len, text, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(
	    resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(
	    resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(
		    resp, "WWW-Authenticate", "Bearer realm=\"parley-admin\"");
	if (retry != 0) {
		snprintf(value, sizeof value, "%u", retry);
		MHD_add_response_header(
		    resp, MHD_HTTP_HEADER_RETRY_AFTER, value);
	}
	static_add_security_headers(resp, false);
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result
admin_respond_error(struct MHD_Connection *conn, unsigned status,
    const char *code, const char *message, unsigned retry)
{
	json_t *j = json_pack("{s:s}", "error", code);
	enum MHD_Result ret;

	if (message != NULL)
		json_object_set_new(j, "message", json_string(message));
	ret = admin_respond(conn, status, j, retry);
	json_decref(j);
	return ret;
}

bool
admin_path(const char *url)
{
	return strncmp(url, ADMIN_PREFIX, strlen(ADMIN_PREFIX) - 1) == 0 &&
	    (url[strlen(ADMIN_PREFIX) - 1] == '\0' ||
		url[strlen(ADMIN_PREFIX) - 1] == '/');
}

/* Checks the token on the request's first call, before any body is
 * read: 0 when it is good, else the refusal is queued. */
static int
admin_authenticate(struct MHD_Connection *conn, const char *addr,
    struct admin_req *rq, enum MHD_Result *ret)
{
	size_t len;
	const char *token = admin_bearer(
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"),
	    &len);
	unsigned wait;

	if ((wait = admin_wait(addr)) != 0) {
		*ret = admin_respond_error(conn, MHD_HTTP_TOO_MANY_REQUESTS,
		    "rate_limited", NULL, wait);
		return -1;
	}
	if (token == NULL ||
	    !admin_token_check(token, len, rq->token, sizeof rq->token)) {
		log_info("admin", "%s: %s token", addr,
		    token == NULL ? "no" : "a wrong");
		admin_failed(addr);
		*ret = admin_respond_error(
		    conn, MHD_HTTP_UNAUTHORIZED, "unauthorized", NULL, 0);
		return -1;
	}
	rq->authed = true;
	return 0;
}

/* Runs the request, read whole and authenticated. */
static enum MHD_Result
admin_dispatch(struct MHD_Connection *conn, const char *method, const char *url,
    struct admin_req *rq)
{
	const char *path = url + strlen(ADMIN_PREFIX), *why, *name;
	size_t route, name_len;
	char actor[ADMIN_TOKEN_NAME_MAX + 8];
	struct admin_ctx x = { .conn = conn, .rq = rq, .status = MHD_HTTP_OK };
	enum MHD_Result ret;
	int m;

	if (rq->answer != NULL) {
		ret = admin_respond(conn, rq->answer_status, rq->answer, 0);
		json_decref(rq->answer);
		rq->answer = NULL;
		return ret;
	}
	if (rq->too_big)
		return admin_respond_error(
		    conn, 413, "too_large", "the body is over 64 KiB", 0);
	if (url[strlen(ADMIN_PREFIX) - 1] == '\0')
		path = "";
	m = admin_route_match(
	    method, path, strlen(path), &route, &name, &name_len);
	if (m == -1)
		return admin_respond_error(conn, MHD_HTTP_NOT_FOUND,
		    "not_found", "no such endpoint", 0);
	if (m == -2)
		return admin_respond_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
		    "method_not_allowed", "not with that method", 0);
	if ((x.body = admin_body_parse(rq->body, rq->len, &why)) == NULL)
		return admin_respond_error(
		    conn, MHD_HTTP_BAD_REQUEST, "bad_json", why, 0);
	snprintf(actor, sizeof actor, "admin:%s", rq->token);
	x.by = CHAT_BY(CHAT_ACTOR_ADMIN, actor);
	x.name = name;
	x.name_len = name_len;
	if (admin_routes[route].arg == 'r' &&
	    (x.room = room_find(name, name_len)) == NULL) {
		admin_error(&x, MHD_HTTP_NOT_FOUND, "room_not_found",
		    "there is no such room");
	} else {
		log_debug("admin", "%s %s by %s", method, url, actor);
		admin_routes[route].fn(&x);
	}
	if (x.later) {
		/* The worker's answer resumes it (admin_job_answer). */
		json_decref(x.reply);
		json_decref(x.body);
		MHD_suspend_connection(conn);
		return MHD_YES;
	}
	if (x.reply == NULL)
		x.reply = json_pack("{s:b}", "ok", 1);
	ret = admin_respond(conn, x.status, x.reply, 0);
	json_decref(x.reply);
	json_decref(x.body);
	return ret;
}

int
admin_request(struct MHD_Connection *conn, const char *addr, const char *url,
    const char *method, const char *upload_data, size_t *upload_data_size,
    void **req_cls)
{
	struct admin_req *rq = *req_cls;
	enum MHD_Result ret;
	const char *cl;

	if (rq == NULL) {
		rq = xcalloc(1, sizeof *rq);
		rq->conn = conn;
		*req_cls = rq;
		if (admin_authenticate(conn, addr, rq, &ret) == -1)
			return ret;
		cl = MHD_lookup_connection_value(
		    conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL && strtoull(cl, NULL, 10) > ADMIN_BODY_MAX)
			rq->too_big = true;
		return MHD_YES;
	}
	if (!rq->authed)
		return MHD_NO; /* refused already */
	if (rq->job != NULL)
		return MHD_YES; /* suspended, waiting for the worker */
	if (*upload_data_size != 0) {
		size_t n = *upload_data_size;
		if (!rq->too_big && rq->len + n > ADMIN_BODY_MAX) {
			rq->too_big = true;
			free(rq->body);
			rq->body = NULL;
			rq->len = 0;
		}
		if (!rq->too_big) {
			rq->body = xrealloc(rq->body, rq->len + n + 1);
			memcpy(rq->body + rq->len, upload_data, n);
			rq->len += n;
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	return admin_dispatch(conn, method, url, rq);
}

void
admin_request_done(void *req_cls)
{
	struct admin_req *rq = req_cls;

	if (rq != NULL) {
		if (rq->job != NULL)
			rq->job->rq = NULL;
		json_decref(rq->answer);
		free(rq->body);
		free(rq);
	}
}

void
admin_stop(void)
{
	/* MHD must not be stopped with a connection suspended. */
	for (struct admin_job *j = admin_jobs; j != NULL; j = j->next) {
		if (j->rq != NULL)
			admin_job_answer(j, MHD_HTTP_SERVICE_UNAVAILABLE,
			    json_pack("{s:s}", "error", "shutting_down"));
	}
}

void
admin_set_reload(int (*fn)(char **result))
{
	admin_reload_fn = fn;
}

void
admin_start(void)
{
	admin_started = loop_wall_ms();
	if (!admin_peers_ready) {
		map_init(&admin_peers);
		admin_peers_ready = true;
	}
}

void
admin_free(void)
{
	size_t pos = 0;
	const char *key;
	void *v;

	while (admin_jobs != NULL)
		admin_job_free(admin_jobs);
	if (!admin_peers_ready)
		return;
	while (map_next(&admin_peers, &pos, &key, &v))
		free(v);
	map_free(&admin_peers);
	admin_peers_ready = false;
}
