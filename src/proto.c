/*
 * proto.c: protocol version 1 (PROTOCOL.md): the envelope checks, a
 * dispatch table over message types and one handler per type. Handlers
 * check everything before they change anything and return an enum
 * proto_err; only the dispatcher writes error frames and echoes the id.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "parley.h"

#define PROTO_ID_MAX 64
#define PROTO_HISTORY_DEFAULT 50
#define PROTO_HISTORY_MAX 500

/* One request being handled; handlers may say more about an error. */
struct proto_req {
	struct client *client;
	json_t *msg;
	const json_t *id;
	const char *err_room; /* roomName for the error frame */
	const char *err_text; /* message for the error frame */
	char *err_owned;      /* an err_text to free */
};

typedef enum proto_err (*proto_handler)(struct proto_req *req);

static const struct {
	const char *code;
	const char *text;
} proto_errors[PROTO_ERR_COUNT] = {
	[PROTO_OK] = { "ok", "ok" },
	[PROTO_ERR_BAD_JSON] = { "bad_json",
	    "the frame is not exactly one JSON object" },
	[PROTO_ERR_BAD_REQUEST] = { "bad_request",
	    "missing or wrongly typed field" },
	[PROTO_ERR_UNKNOWN_TYPE] = { "unknown_type", "unknown message type" },
	[PROTO_ERR_ROOM_EXISTS] = { "room_exists", "the room already exists" },
	[PROTO_ERR_ROOM_NOT_FOUND] = { "room_not_found",
	    "there is no such room" },
	[PROTO_ERR_NOT_IN_ROOM] = { "not_in_room",
	    "you are not in that room" },
	[PROTO_ERR_INVALID_NAME] = { "invalid_name",
	    "names are 1 to 32 bytes (rooms 64) of text without control "
	    "characters or leading or trailing spaces" },
	[PROTO_ERR_NAME_TAKEN] = { "name_taken",
	    "someone else has that name" },
	[PROTO_ERR_MESSAGE_TOO_LONG] = { "message_too_long",
	    "the message is too long" },
	[PROTO_ERR_RATE_LIMITED] = { "rate_limited", "slow down" },
	[PROTO_ERR_UNKNOWN_COMMAND] = { "unknown_command",
	    "unknown command; /help lists the commands" },
	[PROTO_ERR_FORBIDDEN] = { "forbidden", "you may not do that" },
	[PROTO_ERR_REJECTED] = { "rejected", "refused by the server" },
	[PROTO_ERR_UNSUPPORTED] = { "unsupported",
	    "this server keeps no history" },
	[PROTO_ERR_INTERNAL] = { "internal", "internal error" },
};

const char *
proto_err_code(enum proto_err e)
{
	if (e < 0 || e >= PROTO_ERR_COUNT)
		return "internal";
	return proto_errors[e].code;
}

unsigned
proto_json_depth(const char *s, size_t len, unsigned limit)
{
	unsigned depth = 0, max = 0;
	bool in_string = false;

	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		if (in_string) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_string = false;
			continue;
		}
		if (ch == '"')
			in_string = true;
		else if (ch == '{' || ch == '[') {
			if (++depth > max) {
				max = depth;
				if (max > limit)
					return max;
			}
		} else if ((ch == '}' || ch == ']') && depth > 0)
			depth--;
	}
	return max;
}

bool
proto_name_valid(const char *s, size_t len, size_t max)
{
	if (len == 0 || len > max)
		return false;
	if (s[0] == ' ' || s[len - 1] == ' ')
		return false;
	return utf8_valid(s, len) && !utf8_has_control(s, len);
}

void
proto_reply_new(struct client *c, const json_t *id, json_t *reply)
{
	if (id != NULL)
		json_object_set(reply, "id", (json_t *)id);
	conn_send_new(c, reply);
}

void
proto_send_error(struct client *c, enum proto_err e, const json_t *id,
    const char *room, const char *message)
{
	json_t *err = json_pack("{s:s, s:s, s:s}", "type", "error", "code",
	    proto_err_code(e), "message",
	    message ? message : proto_errors[e].text);

	if (room != NULL)
		json_object_set_new(err, "roomName", json_string(room));
	metrics_error((int)e);
	proto_reply_new(c, id, err);
}

/* Field access: -1 when missing (unless optional) or of the wrong type. */
static int
proto_string(const json_t *msg, const char *key, const char **s,
    size_t *len, bool optional)
{
	json_t *v = json_object_get(msg, key);

	if (v == NULL) {
		*s = NULL;
		*len = 0;
		return optional ? 0 : -1;
	}
	if (!json_is_string(v))
		return -1;
	*s = json_string_value(v);
	*len = json_string_length(v);
	return 0;
}

static void
proto_set_reason(char **reason, const char *text)
{
	if (reason != NULL) {
		free(*reason);
		*reason = xstrdup(text);
	}
}

/* Runs a chain that may refuse; returns PROTO_OK or the refusal. A DROP
 * is reported as PROTO_OK with *dropped set. */
static enum proto_err
proto_run_hooks(struct hook_args *a, bool *dropped, char **reason)
{
	enum hook_verdict v;

	if (dropped != NULL)
		*dropped = false;
	if (!hook_any(a->event))
		return PROTO_OK;
	v = hook_run(a);
	if (v == HOOK_DENY) {
		if (reason != NULL && a->deny_reason != NULL) {
			*reason = a->deny_reason;
			a->deny_reason = NULL;
		}
		return a->deny_code;
	}
	if (v == HOOK_DROP && dropped != NULL)
		*dropped = true;
	return PROTO_OK;
}

/* Checks a username against the core rules and the other clients. */
static enum proto_err
proto_check_username(struct client *c, const char *name, size_t len)
{
	struct client *other;

	if (!proto_name_valid(name, len, PROTO_USERNAME_MAX))
		return PROTO_ERR_INVALID_NAME;
	other = client_find_by_name(name, len);
	if (other != NULL && other != c)
		return PROTO_ERR_NAME_TAKEN;
	return PROTO_OK;
}

/* The whole decision on a requested name, changing nothing: core rules,
 * then the hooks (which may rewrite it), then the core rules again. On
 * success *final is the name to set (a->new_text or name). */
static enum proto_err
proto_decide_username(struct client *c, const char *name, size_t len,
    struct hook_args *a, bool run_hooks, char **reason)
{
	enum proto_err e;

	if ((e = proto_check_username(c, name, len)) != PROTO_OK)
		return e;
	if (!run_hooks)
		return PROTO_OK;
	a->event = HOOK_USERNAME;
	a->client = c;
	a->text = name;
	a->text_len = len;
	if ((e = proto_run_hooks(a, NULL, reason)) != PROTO_OK)
		return e;
	if (a->new_text != NULL)
		return proto_check_username(c, a->text, a->text_len);
	return PROTO_OK;
}

static void
proto_apply_rename(struct client *c, const char *name, size_t len,
    const json_t *id)
{
	char *old = xstrdup(c->name);
	bool same = strlen(old) == len && memcmp(old, name, len) == 0;

	if (!same)
		PARLEY_ASSERT(client_set_name(c, name, len) == 0);
	proto_reply_new(c, id, json_pack("{s:s, s:s}", "type", "username_set",
	    "username", c->name));
	for (size_t i = 0; !same && i < c->nrooms; i++) {
		struct room *r = c->rooms[i]->room;
		room_broadcast_new(r, json_pack("{s:s, s:s%, s:s, s:s, s:o}",
		    "type", "user_renamed", "roomName", r->name, r->name_len,
		    "oldUsername", old, "username", c->name, "participants",
		    room_participants(r)));
	}
	free(old);
}

enum proto_err
proto_rename(struct client *c, const char *name, size_t len,
    const json_t *id, bool run_hooks, char **reason)
{
	struct hook_args a = { 0 };
	enum proto_err e;

	e = proto_decide_username(c, name, len, &a, run_hooks, reason);
	if (e == PROTO_OK)
		proto_apply_rename(c, a.text ? a.text : name,
		    a.text ? a.text_len : len, id);
	hook_args_free(&a);
	return e;
}

static enum proto_err
proto_set_username(struct proto_req *req)
{
	const char *name;
	size_t len;

	if (proto_string(req->msg, "username", &name, &len, false) == -1)
		return PROTO_ERR_BAD_REQUEST;
	if (!bucket_take(&req->client->rl_names, cfg->names_per_minute,
	    cfg->name_burst))
		return PROTO_ERR_RATE_LIMITED;
	return proto_rename(req->client, name, len, req->id, true,
	    &req->err_owned);
}

enum proto_err
proto_room_create(struct client *c, const char *name, size_t len,
    const json_t *id, struct room **out, char **reason)
{
	struct hook_args a = { .event = HOOK_CREATE_ROOM, .client = c,
		.text = name, .text_len = len };
	enum proto_err e;
	bool dropped;
	struct room *r;
	json_t *ev;
	struct buf *b;

	if (out != NULL)
		*out = NULL;
	if (!proto_name_valid(name, len, PROTO_ROOM_NAME_MAX))
		return PROTO_ERR_INVALID_NAME;
	if (room_find(name, len) != NULL)
		return PROTO_ERR_ROOM_EXISTS;
	if (c != NULL && room_count() >= cfg->max_rooms) {
		proto_set_reason(reason,
		    "the server has reached its number of rooms");
		return PROTO_ERR_FORBIDDEN;
	}
	if (c != NULL && c->nrooms >= cfg->max_rooms_per_client) {
		proto_set_reason(reason,
		    "you are in as many rooms as one may be");
		return PROTO_ERR_FORBIDDEN;
	}
	if (c != NULL && !bucket_take(&c->rl_rooms, cfg->rooms_per_minute,
	    cfg->room_burst))
		return PROTO_ERR_RATE_LIMITED;
	if (c != NULL) {
		e = proto_run_hooks(&a, &dropped, reason);
		hook_args_free(&a);
		if (e != PROTO_OK)
			return e;
		if (dropped)
			return PROTO_OK;
	}
	r = room_create(name, len, c ? c->id : 0);
	if (c != NULL) {
		room_join(r, c);
		proto_reply_new(c, id, json_pack("{s:s, s:s%, s:o}", "type",
		    "created_room", "roomName", r->name, r->name_len,
		    "participants", room_participants(r)));
	}
	ev = json_pack("{s:s, s:s%}", "type", "room_created", "roomName",
	    r->name, r->name_len);
	b = buf_json(ev);
	json_decref(ev);
	client_broadcast_all(b);
	buf_unref(b);
	if (out != NULL)
		*out = r;
	return PROTO_OK;
}

static enum proto_err
proto_create_room(struct proto_req *req)
{
	const char *name;
	size_t len;

	if (proto_string(req->msg, "roomName", &name, &len, false) == -1)
		return PROTO_ERR_BAD_REQUEST;
	return proto_room_create(req->client, name, len, req->id, NULL,
	    &req->err_owned);
}

static enum proto_err
proto_join_room(struct proto_req *req)
{
	struct client *c = req->client;
	const char *name, *user;
	size_t len, ulen;
	struct room *r;
	struct hook_args ua = { 0 };
	struct hook_args ja = { .event = HOOK_JOIN, .client = c };
	enum proto_err e = PROTO_OK;
	bool member;

	if (proto_string(req->msg, "roomName", &name, &len, false) == -1 ||
	    proto_string(req->msg, "username", &user, &ulen, true) == -1)
		return PROTO_ERR_BAD_REQUEST;
	if ((r = room_find(name, len)) == NULL)
		return PROTO_ERR_ROOM_NOT_FOUND;
	req->err_room = r->name;
	member = room_membership(r, c) != NULL;
	/* Decide everything before changing anything. */
	if (user != NULL && !bucket_take(&c->rl_names, cfg->names_per_minute,
	    cfg->name_burst))
		return PROTO_ERR_RATE_LIMITED;
	if (user != NULL)
		e = proto_decide_username(c, user, ulen, &ua, true,
		    &req->err_owned);
	if (e == PROTO_OK && !member && r->count >= cfg->max_members_per_room) {
		req->err_owned = xstrdup("the room is full");
		e = PROTO_ERR_FORBIDDEN;
	}
	if (e == PROTO_OK && !member &&
	    c->nrooms >= cfg->max_rooms_per_client) {
		req->err_owned = xstrdup("you are in as many rooms as one may be");
		e = PROTO_ERR_FORBIDDEN;
	}
	if (e == PROTO_OK && !member) {
		ja.room = r;
		e = proto_run_hooks(&ja, NULL, &req->err_owned);
	}
	if (e != PROTO_OK)
		goto out;
	if (user != NULL)
		proto_apply_rename(c, ua.text ? ua.text : user,
		    ua.text ? ua.text_len : ulen, req->id);
	if (!member)
		room_join(r, c);
	proto_reply_new(c, req->id, json_pack("{s:s, s:s%, s:s}", "type",
	    "room_joined", "roomName", r->name, r->name_len, "username",
	    c->name));
	if (!member)
		room_broadcast_new(r, json_pack("{s:s, s:s%, s:s, s:o}",
		    "type", "joined_room", "roomName", r->name, r->name_len,
		    "username", c->name, "participants",
		    room_participants(r)));
out:
	hook_args_free(&ua);
	hook_args_free(&ja);
	return e;
}

/* Finds a room the client must be a member of. */
static enum proto_err
proto_member_room(struct proto_req *req, struct room **out)
{
	const char *name;
	size_t len;

	if (proto_string(req->msg, "roomName", &name, &len, false) == -1)
		return PROTO_ERR_BAD_REQUEST;
	if ((*out = room_find(name, len)) == NULL)
		return PROTO_ERR_ROOM_NOT_FOUND;
	req->err_room = (*out)->name;
	if (room_membership(*out, req->client) == NULL)
		return PROTO_ERR_NOT_IN_ROOM;
	return PROTO_OK;
}

void
proto_leave(struct client *c, struct room *r, const char *reason,
    const char *kick_reason, const json_t *id)
{
	struct hook_args a = { .event = HOOK_LEAVE, .client = c, .room = r,
		.reason = reason };

	if (room_leave(r, c) == -1)
		return;
	if (strcmp(reason, "kicked") == 0)
		proto_reply_new(c, id, json_pack("{s:s, s:s%, s:s}", "type",
		    "kicked", "roomName", r->name, r->name_len, "reason",
		    kick_reason ? kick_reason : ""));
	else if (strcmp(reason, "left") == 0)
		proto_reply_new(c, id, json_pack("{s:s, s:s%}", "type",
		    "room_left", "roomName", r->name, r->name_len));
	if (r->count > 0)
		room_broadcast_new(r, json_pack("{s:s, s:s%, s:s, s:s, s:o}",
		    "type", "user_left", "roomName", r->name, r->name_len,
		    "username", c->name, "reason", reason, "participants",
		    room_participants(r)));
	if (hook_any(HOOK_LEAVE)) {
		hook_run(&a);
		hook_args_free(&a);
	}
}

static enum proto_err
proto_leave_room(struct proto_req *req)
{
	struct room *r;
	enum proto_err e;

	if ((e = proto_member_room(req, &r)) != PROTO_OK)
		return e;
	proto_leave(req->client, r, "left", NULL, req->id);
	return PROTO_OK;
}

static enum proto_err
proto_send_message(struct proto_req *req)
{
	struct client *c = req->client;
	struct hook_args a = { .event = HOOK_MESSAGE, .client = c };
	const char *text;
	size_t len;
	struct room *r;
	enum proto_err e;
	bool dropped;

	if (proto_string(req->msg, "message", &text, &len, false) == -1 ||
	    !json_is_string(json_object_get(req->msg, "roomName")))
		return PROTO_ERR_BAD_REQUEST;
	if ((e = proto_member_room(req, &r)) != PROTO_OK)
		return e;
	if (len == 0)
		return PROTO_ERR_BAD_REQUEST;
	if (len > cfg->max_message_bytes)
		return PROTO_ERR_MESSAGE_TOO_LONG;
	if (!bucket_take(&c->rl_messages, cfg->messages_per_minute,
	    cfg->message_burst))
		return PROTO_ERR_RATE_LIMITED;
	if (text[0] == '/')
		return command_run(c, r, req->id, text, len);
	a.room = r;
	a.text = text;
	a.text_len = len;
	e = proto_run_hooks(&a, &dropped, &req->err_owned);
	if (e == PROTO_OK && !dropped && a.new_text != NULL) {
		/* A script's text gets the checks the client's got. */
		if (a.text_len == 0)
			dropped = true;
		else if (a.text_len > cfg->max_message_bytes)
			e = PROTO_ERR_MESSAGE_TOO_LONG;
		else if (!utf8_valid(a.text, a.text_len))
			e = PROTO_ERR_INTERNAL;
	}
	if (e == PROTO_OK && !dropped)
		room_post(r, c, c->name, a.text, a.text_len, false);
	hook_args_free(&a);
	return e;
}

void
proto_notice(struct client *c, const struct room *r, const char *text,
    const json_t *id)
{
	json_t *n = json_pack("{s:s, s:s}", "type", "notice", "message",
	    text);

	if (r != NULL)
		json_object_set_new(n, "roomName",
		    json_stringn(r->name, r->name_len));
	proto_reply_new(c, id, n);
}

void
proto_notice_room(struct room *r, const char *text)
{
	room_broadcast_new(r, json_pack("{s:s, s:s, s:s%}", "type", "notice",
	    "message", text, "roomName", r->name, r->name_len));
}

static enum proto_err
proto_get_participants(struct proto_req *req)
{
	const char *name;
	size_t len;
	struct room *r;

	if (proto_string(req->msg, "roomName", &name, &len, false) == -1)
		return PROTO_ERR_BAD_REQUEST;
	if ((r = room_find(name, len)) == NULL)
		return PROTO_ERR_ROOM_NOT_FOUND;
	proto_reply_new(req->client, req->id, json_pack("{s:s, s:s%, s:o}",
	    "type", "participants", "roomName", r->name, r->name_len,
	    "participants", room_participants(r)));
	return PROTO_OK;
}

static enum proto_err
proto_list_rooms(struct proto_req *req)
{
	proto_reply_new(req->client, req->id, json_pack("{s:s, s:o}", "type",
	    "rooms", "rooms", room_list()));
	return PROTO_OK;
}

static enum proto_err
proto_history(struct proto_req *req)
{
	json_t *before = json_object_get(req->msg, "before");
	json_t *limit = json_object_get(req->msg, "limit");
	const char *name;
	size_t len;
	struct room *r;
	uint64_t bound = ROOM_NO_BEFORE;
	json_int_t n = PROTO_HISTORY_DEFAULT;

	if (proto_string(req->msg, "roomName", &name, &len, false) == -1)
		return PROTO_ERR_BAD_REQUEST;
	if ((before != NULL && (!json_is_integer(before) ||
	    json_integer_value(before) < 0)) ||
	    (limit != NULL && (!json_is_integer(limit) ||
	    json_integer_value(limit) < 0)))
		return PROTO_ERR_BAD_REQUEST;
	if ((r = room_find(name, len)) == NULL)
		return PROTO_ERR_ROOM_NOT_FOUND;
	req->err_room = r->name;
	if (!history_enabled())
		return PROTO_ERR_UNSUPPORTED;
	if (before != NULL)
		bound = (uint64_t)json_integer_value(before);
	if (limit != NULL)
		n = json_integer_value(limit);
	if (n > PROTO_HISTORY_MAX)
		n = PROTO_HISTORY_MAX;
	return history_request(req->client, req->id, r, bound, (size_t)n);
}

static enum proto_err
proto_ping(struct proto_req *req)
{
	proto_reply_new(req->client, req->id, json_pack("{s:s}", "type",
	    "pong"));
	return PROTO_OK;
}

static const struct {
	const char *type;
	proto_handler fn;
} proto_table[] = {
	{ "create_room", proto_create_room },
	{ "get_participants", proto_get_participants },
	{ "history", proto_history },
	{ "join_room", proto_join_room },
	{ "leave_room", proto_leave_room },
	{ "list_rooms", proto_list_rooms },
	{ "ping", proto_ping },
	{ "send_message", proto_send_message },
	{ "set_username", proto_set_username },
};

static proto_handler
proto_find(const char *type)
{
	size_t lo = 0, hi = sizeof proto_table / sizeof proto_table[0];

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int cmp = strcmp(type, proto_table[mid].type);
		if (cmp == 0)
			return proto_table[mid].fn;
		if (cmp < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* Answers rate_limited; a client that keeps flooding is closed. */
static void
proto_rate_limited(struct client *c, const json_t *id)
{
	if (c->flood < UINT16_MAX)
		c->flood++;
	if (cfg->flood_close_after != 0 && c->flood >= cfg->flood_close_after) {
		log_info("core", "client %llu (%s): flooding, closing",
		    (unsigned long long)c->id, c->addr);
		limit_violation(c->addr);
		conn_close(c, WS_CLOSE_POLICY, "flooding");
		return;
	}
	metrics_add(METRIC_RATE_LIMITED, 1);
	if (c->flood == 1)
		limit_violation(c->addr);
	proto_send_error(c, PROTO_ERR_RATE_LIMITED, id, NULL, NULL);
}

static bool
proto_id_valid(const json_t *id)
{
	if (json_is_integer(id))
		return true;
	return json_is_string(id) && json_string_length(id) <= PROTO_ID_MAX;
}

void
proto_handle(struct client *c, const char *data, size_t len)
{
	struct proto_req req = { .client = c };
	json_error_t jerr;
	json_t *type, *id;
	proto_handler fn;
	enum proto_err e;
	bool limited;

	/* Every frame costs a token, malformed ones too: they are the
	 * cheapest way to make the server work. Over the limit, the frame
	 * is still parsed (within its size limit) to echo its id. */
	limited = !bucket_take(&c->rl_requests, cfg->requests_per_minute,
	    cfg->request_burst);
	if (proto_json_depth(data, len, cfg->max_json_depth) >
	    cfg->max_json_depth) {
		if (limited)
			proto_rate_limited(c, NULL);
		else
			proto_send_error(c, PROTO_ERR_BAD_JSON, NULL, NULL,
			    "JSON nested too deeply");
		return;
	}
	req.msg = json_loadb(data, len, JSON_ALLOW_NUL, &jerr);
	if (req.msg == NULL || !json_is_object(req.msg)) {
		if (limited)
			proto_rate_limited(c, NULL);
		else
			proto_send_error(c, PROTO_ERR_BAD_JSON, NULL, NULL,
			    NULL);
		json_decref(req.msg);
		return;
	}
	id = json_object_get(req.msg, "id");
	if (id != NULL && !proto_id_valid(id))
		id = NULL;
	if (limited) {
		proto_rate_limited(c, id);
		json_decref(req.msg);
		return;
	}
	if (id == NULL && json_object_get(req.msg, "id") != NULL) {
		proto_send_error(c, PROTO_ERR_BAD_REQUEST, NULL, NULL,
		    "id must be an integer or a string of at most 64 bytes");
		json_decref(req.msg);
		return;
	}
	req.id = id;
	type = json_object_get(req.msg, "type");
	if (!json_is_string(type) ||
	    strlen(json_string_value(type)) != json_string_length(type))
		e = PROTO_ERR_BAD_REQUEST;
	else if ((fn = proto_find(json_string_value(type))) == NULL)
		e = PROTO_ERR_UNKNOWN_TYPE;
	else
		e = fn(&req);
	if (e == PROTO_ERR_RATE_LIMITED && req.err_owned == NULL)
		proto_rate_limited(c, req.id);
	else {
		c->flood = 0;
		if (e != PROTO_OK && !c->dead)
			proto_send_error(c, e, req.id, req.err_room,
			    req.err_owned ? req.err_owned : req.err_text);
	}
	free(req.err_owned);
	json_decref(req.msg);
}

void
proto_welcome(struct client *c)
{
	conn_send_new(c, json_pack("{s:s, s:s, s:s, s:i, s:s, s:o}", "type",
	    "welcome", "server", cfg->server_name, "version", PACKAGE_VERSION,
	    "protocol", PARLEY_PROTOCOL_VERSION, "username", c->name, "rooms",
	    room_names()));
}
