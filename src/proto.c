/*
 * proto.c: the wire protocol (PROTOCOL.md) and nothing else: the envelope
 * checks, a dispatch table over message types and one handler per type
 * that checks the fields, finds what they name and calls the chat action
 * of chat.c. Handlers return an enum proto_err; only the dispatcher writes
 * error frames and echoes the id.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "parley.h"

#define PROTO_ID_MAX 64
#define PROTO_HISTORY_DEFAULT 50
#define PROTO_HISTORY_MAX 500
#define PROTO_PARTICIPANTS_MAX 1000 /* one page of get_participants */
#define PROTO_TOKEN_MAX 8192 /* a signed token, as auth-jwt takes */

/* One request being handled; handlers may say more about an error. */
struct proto_req {
	struct client *client;
	json_t *msg;
	const json_t *id;
	const char *err_room; /* roomName for the error frame */
	const char *err_text; /* message for the error frame */
	char *err_owned; /* an err_text to free */
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
	[PROTO_ERR_NOT_IN_ROOM] = { "not_in_room", "you are not in that room" },
	[PROTO_ERR_INVALID_NAME] = { "invalid_name",
	    "names are 1 to 32 bytes (rooms 64) of text without control "
	    "characters or leading or trailing spaces" },
	[PROTO_ERR_NAME_TAKEN] = { "name_taken", "someone else has that name" },
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
	[PROTO_ERR_UNAUTHORIZED] = { "unauthorized", "wrong name or password" },
	[PROTO_ERR_MESSAGE_NOT_FOUND] = { "message_not_found",
	    "there is no such message in that room" },
	[PROTO_ERR_USER_NOT_FOUND] = { "user_not_found",
	    "nobody of that name is connected" },
	[PROTO_ERR_RESUME_FAILED] = { "resume_failed",
	    "no such session: it expired or was resumed already" },
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
	return utf8_valid(s, len) && !utf8_has_control(s, len) &&
	    name_check(s, len, NULL) == 0;
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
proto_string(const json_t *msg, const char *key, const char **s, size_t *len,
    bool optional)
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

static enum proto_err
proto_set_username(struct proto_req *req)
{
	const char *name;
	size_t len;

	if (proto_string(req->msg, "username", &name, &len, false) == -1)
		return PROTO_ERR_BAD_REQUEST;
	return chat_rename(CHAT_BY_CLIENT(req->client), req->client, name, len,
	    req->id, CHAT_AS_CLIENT, &req->err_owned);
}

/* register and login: a name and a password. The password's bytes in
 * the parsed message are wiped once the chat action has its copy. */
static enum proto_err
proto_credentials(struct proto_req *req,
    enum proto_err (*action)(const struct chat_actor *, struct client *,
	const char *, size_t, const char *, size_t, const json_t *, char **))
{
	const char *name, *pw;
	size_t len, pwlen;
	enum proto_err e;

	if (proto_string(req->msg, "username", &name, &len, false) == -1 ||
	    proto_string(req->msg, "password", &pw, &pwlen, false) == -1)
		return PROTO_ERR_BAD_REQUEST;
	e = action(CHAT_BY_CLIENT(req->client), req->client, name, len, pw,
	    pwlen, req->id, &req->err_owned);
	explicit_bzero((char *)pw, pwlen);
	return e;
}

static enum proto_err
proto_register(struct proto_req *req)
{
	return proto_credentials(req, chat_register);
}

static enum proto_err
proto_login(struct proto_req *req)
{
	return proto_credentials(req, chat_login);
}

static enum proto_err
proto_refresh_token(struct proto_req *req)
{
	const char *token;
	size_t len;

	if (proto_string(req->msg, "token", &token, &len, false) == -1 ||
	    len == 0 || len > PROTO_TOKEN_MAX)
		return PROTO_ERR_BAD_REQUEST;
	return chat_refresh_token(
	    req->client, token, len, req->id, &req->err_owned);
}

static enum proto_err
proto_logout(struct proto_req *req)
{
	if (!account_enabled() && req->client->account == NULL) {
		req->err_text = "this server keeps no accounts";
		return PROTO_ERR_UNSUPPORTED;
	}
	return chat_logout(CHAT_BY_CLIENT(req->client), req->client, req->id);
}

static enum proto_err
proto_create_room(struct proto_req *req)
{
	const char *name;
	size_t len;

	if (proto_string(req->msg, "roomName", &name, &len, false) == -1)
		return PROTO_ERR_BAD_REQUEST;
	return chat_room_create(CHAT_BY_CLIENT(req->client), name, len, req->id,
	    NULL, &req->err_owned);
}

/* Finds the room a request names; room_not_found when there is none. */
static enum proto_err
proto_room(struct proto_req *req, struct room **out)
{
	const char *name;
	size_t len;

	if (proto_string(req->msg, "roomName", &name, &len, false) == -1)
		return PROTO_ERR_BAD_REQUEST;
	if ((*out = room_find(name, len)) == NULL)
		return PROTO_ERR_ROOM_NOT_FOUND;
	req->err_room = (*out)->name;
	return PROTO_OK;
}

static enum proto_err
proto_join_room(struct proto_req *req)
{
	const char *user;
	size_t ulen;
	struct room *r;
	enum proto_err e;

	if (!json_is_string(json_object_get(req->msg, "roomName")) ||
	    proto_string(req->msg, "username", &user, &ulen, true) == -1)
		return PROTO_ERR_BAD_REQUEST;
	if ((e = proto_room(req, &r)) != PROTO_OK)
		return e;
	return chat_join(CHAT_BY_CLIENT(req->client), req->client, r, user,
	    ulen, req->id, CHAT_AS_CLIENT, &req->err_owned);
}

static enum proto_err
proto_leave_room(struct proto_req *req)
{
	struct room *r;
	enum proto_err e;

	if ((e = proto_room(req, &r)) != PROTO_OK)
		return e;
	return chat_leave(
	    CHAT_BY_CLIENT(req->client), req->client, r, "left", req->id);
}

static enum proto_err
proto_send_message(struct proto_req *req)
{
	const char *text;
	size_t len;
	struct room *r;
	enum proto_err e;

	if (proto_string(req->msg, "message", &text, &len, false) == -1 ||
	    !json_is_string(json_object_get(req->msg, "roomName")))
		return PROTO_ERR_BAD_REQUEST;
	if ((e = proto_room(req, &r)) != PROTO_OK)
		return e;
	return chat_say(CHAT_BY_CLIENT(req->client), req->client, r, text, len,
	    false, req->id, CHAT_AS_CLIENT | CHAT_COMMANDS, &req->err_owned);
}

/* An optional non-negative integer field; -1 when it is anything else. */
static int
proto_count(const json_t *msg, const char *key, json_int_t def, json_int_t *out)
{
	json_t *v = json_object_get(msg, key);

	if (v == NULL) {
		*out = def;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*out = json_integer_value(v);
	return 0;
}

static enum proto_err
proto_get_participants(struct proto_req *req)
{
	struct room *r;
	json_int_t offset, limit;
	enum proto_err e;

	if (proto_count(req->msg, "offset", 0, &offset) == -1 ||
	    proto_count(req->msg, "limit", PROTO_PARTICIPANTS_MAX, &limit) ==
		-1)
		return PROTO_ERR_BAD_REQUEST;
	if ((e = proto_room(req, &r)) != PROTO_OK)
		return e;
	if (limit > PROTO_PARTICIPANTS_MAX)
		limit = PROTO_PARTICIPANTS_MAX;
	proto_reply_new(req->client, req->id,
	    json_pack("{s:s, s:s%, s:o, s:I, s:I, s:o}", "type", "participants",
		"roomName", r->name, r->name_len, "participants",
		room_participants(r, (size_t)offset, (size_t)limit), "count",
		(json_int_t)r->count, "offset", offset, "roles",
		chat_roles(r)));
	return PROTO_OK;
}

static enum proto_err
proto_list_rooms(struct proto_req *req)
{
	proto_reply_new(req->client, req->id,
	    json_pack("{s:s, s:o}", "type", "rooms", "rooms", room_list()));
	return PROTO_OK;
}

static enum proto_err
proto_history(struct proto_req *req)
{
	json_int_t before, after, n;
	struct room *r;
	enum proto_err e;

	if (!json_is_string(json_object_get(req->msg, "roomName")) ||
	    proto_count(req->msg, "before", -1, &before) == -1 ||
	    proto_count(req->msg, "after", -1, &after) == -1 ||
	    proto_count(req->msg, "limit", PROTO_HISTORY_DEFAULT, &n) == -1)
		return PROTO_ERR_BAD_REQUEST;
	if ((e = proto_room(req, &r)) != PROTO_OK)
		return e;
	if (!history_enabled())
		return PROTO_ERR_UNSUPPORTED;
	if (n > PROTO_HISTORY_MAX)
		n = PROTO_HISTORY_MAX;
	return history_request(req->client, req->id, r,
	    after < 0 ? HISTORY_NO_AFTER : (uint64_t)after,
	    before < 0 ? HISTORY_NO_BEFORE : (uint64_t)before, (size_t)n);
}

/* resume: only as the first request of a connection. */
static enum proto_err
proto_resume(struct proto_req *req)
{
	const char *secret;
	size_t len;

	if (req->client->spoke) {
		req->err_text = "resume must be the first request";
		return PROTO_ERR_BAD_REQUEST;
	}
	if (proto_string(req->msg, "session", &secret, &len, false) == -1)
		return PROTO_ERR_BAD_REQUEST;
	return chat_resume(req->client, secret, len, req->id, &req->err_owned);
}

static enum proto_err
proto_set_topic(struct proto_req *req)
{
	const char *topic;
	size_t len;
	struct room *r;
	enum proto_err e;

	if (proto_string(req->msg, "topic", &topic, &len, false) == -1 ||
	    !json_is_string(json_object_get(req->msg, "roomName")))
		return PROTO_ERR_BAD_REQUEST;
	if ((e = proto_room(req, &r)) != PROTO_OK)
		return e;
	return chat_set_topic(CHAT_BY_CLIENT(req->client), r, topic, len,
	    req->id, &req->err_owned);
}

static enum proto_err
proto_delete_room(struct proto_req *req)
{
	struct room *r;
	enum proto_err e;

	if ((e = proto_room(req, &r)) != PROTO_OK)
		return e;
	return chat_delete_room(
	    CHAT_BY_CLIENT(req->client), r, req->id, &req->err_owned);
}

static enum proto_err
proto_delete_message(struct proto_req *req)
{
	json_t *seq = json_object_get(req->msg, "seq");
	struct room *r;
	enum proto_err e;

	if (!json_is_integer(seq) || json_integer_value(seq) < 0 ||
	    !json_is_string(json_object_get(req->msg, "roomName")))
		return PROTO_ERR_BAD_REQUEST;
	if ((e = proto_room(req, &r)) != PROTO_OK)
		return e;
	return chat_delete_message(CHAT_BY_CLIENT(req->client), r,
	    (uint64_t)json_integer_value(seq), req->id, &req->err_owned);
}

static enum proto_err
proto_ping(struct proto_req *req)
{
	proto_reply_new(
	    req->client, req->id, json_pack("{s:s}", "type", "pong"));
	return PROTO_OK;
}

/* ---- Direct messages and typing (1.1) */

static enum proto_err
proto_direct_message(struct proto_req *req)
{
	const char *to, *text;
	size_t to_len, len;

	if (proto_string(req->msg, "username", &to, &to_len, false) == -1 ||
	    proto_string(req->msg, "message", &text, &len, false) == -1)
		return PROTO_ERR_BAD_REQUEST;
	return chat_direct(CHAT_BY_CLIENT(req->client), req->client, to, to_len,
	    text, len, req->id, CHAT_AS_CLIENT, &req->err_owned);
}

static enum proto_err
proto_typing(struct proto_req *req)
{
	struct room *r;
	enum proto_err e;

	if ((e = proto_room(req, &r)) != PROTO_OK)
		return e;
	return chat_typing(req->client, r);
}

static const struct {
	const char *type;
	proto_handler fn;
} proto_table[] = {
	{ "create_room", proto_create_room },
	{ "delete_message", proto_delete_message },
	{ "delete_room", proto_delete_room },
	{ "direct_message", proto_direct_message },
	{ "get_participants", proto_get_participants },
	{ "history", proto_history },
	{ "join_room", proto_join_room },
	{ "leave_room", proto_leave_room },
	{ "list_rooms", proto_list_rooms },
	{ "login", proto_login },
	{ "logout", proto_logout },
	{ "ping", proto_ping },
	{ "refresh_token", proto_refresh_token },
	{ "register", proto_register },
	{ "resume", proto_resume },
	{ "send_message", proto_send_message },
	{ "set_topic", proto_set_topic },
	{ "set_username", proto_set_username },
	{ "typing", proto_typing },
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
	limited = !bucket_take(
	    &c->rl_requests, cfg->requests_per_minute, cfg->request_burst);
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
			proto_send_error(
			    c, PROTO_ERR_BAD_JSON, NULL, NULL, NULL);
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
	else if (c->resuming) {
		/* Its resume is asked of another server: who it is comes
		 * with the answer. */
		req.err_text = "a resume is under way";
		e = PROTO_ERR_BAD_REQUEST;
	} else {
		e = fn(&req);
		c->spoke = true;
	}
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
	json_t *features = json_array(), *w;
	char *session = session_issue(c);

	/* What this server runs now (protocol 1.1). */
	if (history_enabled())
		json_array_append_new(features, json_string("history"));
	json_array_append_new(features, json_string("presence_delta"));
	if (account_enabled())
		json_array_append_new(features, json_string("accounts"));
	json_array_append_new(features, json_string("direct"));
	json_array_append_new(features, json_string("typing"));
	if (session != NULL)
		json_array_append_new(features, json_string("resume"));
	w = json_pack("{s:s, s:s, s:s, s:i, s:i, s:o, s:s, s:o, s:o, s:o}",
	    "type", "welcome", "server", cfg->server_name, "version",
	    PACKAGE_VERSION, "protocol", PARLEY_PROTOCOL_VERSION, "minor",
	    PARLEY_PROTOCOL_MINOR, "features", features, "username", c->name,
	    "rooms", room_names(), "account",
	    c->account ? json_string(c->account) : json_null(), "roles",
	    client_roles_public(c));
	if (session != NULL) {
		json_object_set_new(w, "session", json_string(session));
		json_object_set_new(w, "resume_grace",
		    json_integer((json_int_t)cfg->resume_grace));
		explicit_bzero(session, strlen(session));
		free(session);
	}
	conn_send_new(c, w);
}
