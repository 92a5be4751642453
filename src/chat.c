/*
 * chat.c: every chat action, whoever takes it. A client's request comes
 * through proto.c, a script's through script-api.c, a plugin's through
 * plugin-chat.c, and each reaches the same function here, which checks,
 * runs the hook chain, changes the state and tells the clients, in that
 * order: a request that fails changes nothing. The one place a chat
 * rule is written, so the paths cannot drift apart.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "parley.h"

/* The role that silences a client; scripts grant it (/mute). */
#define CHAT_ROLE_MUTED "muted"

const struct chat_actor chat_by_server = { .kind = CHAT_ACTOR_SERVER };
/* The actor of the leaves being run now (a kick, a ban or a room's
 * removal by the admin API), for the leave hooks; NULL otherwise. */
static const struct chat_actor *chat_leave_by;

static void chat_room_occupancy(struct room *r);
static enum proto_err chat_admin_decide(
    struct hook_args *a, const struct chat_actor *by, char **reason);
static void chat_room_forget(struct room *r);
static char *chat_member_key(const struct client *c, bool make);
static void chat_until_text(uint64_t until, char *buf, size_t size);
static void chat_mute_reason(const json_t *mute, char **reason);
static const json_t *chat_mute_anywhere(const struct client *c);
static void chat_room_from_record(
    struct room *r, const json_t *v, uint64_t now);

/* Who acted, for the log: "client 12 (alice)", "lua:commands", ... */
static const char *
chat_actor_name(const struct chat_actor *by, char *buf, size_t size)
{
	switch (by->kind) {
	case CHAT_ACTOR_CLIENT:
		snprintf(buf, size, "client %llu (%s)",
		    (unsigned long long)by->client->id, by->client->name);
		return buf;
	case CHAT_ACTOR_SERVER:
		return "server";
	default:
		return by->name != NULL ? by->name : "?";
	}
}

static void
chat_set_reason(char **reason, const char *text)
{
	if (reason != NULL) {
		free(*reason);
		*reason = xstrdup(text);
	}
}

/* Runs a chain that may refuse; returns PROTO_OK or the refusal. A DROP
 * is reported as PROTO_OK with *dropped set. */
static enum proto_err
chat_run_hooks(struct hook_args *a, bool *dropped, char **reason)
{
	enum hook_verdict v;

	if (dropped != NULL)
		*dropped = false;
	if (!hook_any(a->event))
		return PROTO_OK;
	v = hook_run(a);
	if (v == HOOK_DENY) {
		if (reason != NULL && a->deny_reason != NULL) {
			free(*reason);
			*reason = a->deny_reason;
			a->deny_reason = NULL;
		}
		return a->deny_code;
	}
	if (v == HOOK_DROP && dropped != NULL)
		*dropped = true;
	return PROTO_OK;
}

/* Runs a chain whose verdict does not matter (leave, disconnect). */
static void
chat_tell_hooks(struct hook_args *a)
{
	if (hook_any(a->event)) {
		hook_run(a);
		hook_args_free(a);
	}
}

/* Adds the room's size to a presence event, and its member list while
 * the room is within presence_limit: above it the list would make each
 * change cost the square of the room's size (protocol 1.1, "Large
 * rooms"). Returns ev. */
static json_t *
chat_presence(json_t *ev, const struct room *r)
{
	json_object_set_new(ev, "count", json_integer((json_int_t)r->count));
	if (r->count <= cfg->presence_limit) {
		json_object_set_new(
		    ev, "participants", room_participants(r, 0, r->count));
		json_object_set_new(ev, "roles", chat_roles(r));
	}
	return ev;
}

/* ---- Connections */

enum proto_err
chat_connect(struct client *c, const struct chat_request *req, char **reason)
{
	struct hook_args a = {
		.event = HOOK_CONNECT, .client = c, .request = req
	};
	enum proto_err e;

	if (req != NULL)
		handle_add(req, HANDLE_REQUEST);
	e = chat_run_hooks(&a, NULL, reason);
	if (req != NULL)
		handle_remove(req);

	if (e == PROTO_OK && a.admit_account != NULL) {
		log_info("core", "client %llu (%s) admitted as %s",
		    (unsigned long long)c->id, c->addr, a.admit_account);
		chat_admit_as(c, a.admit_account, a.admit_name,
		    (const char *const *)a.admit_roles);
	}
	hook_args_free(&a);
	return e;
}

/* Removes c from r and tells c (kicked or room_left) and the others. */
static void
chat_member_remove(struct client *c, struct room *r, const char *reason,
    const char *why, const json_t *id)
{
	struct hook_args a = { .event = HOOK_LEAVE,
		.client = c,
		.room = r,
		.reason = reason,
		.by = chat_leave_by };

	if (room_leave(r, c) == -1)
		return;
	if (r->count == 0)
		chat_room_occupancy(r);
	if (strcmp(reason, "kicked") == 0)
		proto_reply_new(c, id,
		    json_pack("{s:s, s:s%, s:s}", "type", "kicked", "roomName",
			r->name, r->name_len, "reason", why ? why : ""));
	else if (strcmp(reason, "left") == 0)
		proto_reply_new(c, id,
		    json_pack("{s:s, s:s%}", "type", "room_left", "roomName",
			r->name, r->name_len));
	if (r->count > 0)
		room_broadcast_new(r,
		    chat_presence(
			json_pack("{s:s, s:s%, s:s, s:s}", "type", "user_left",
			    "roomName", r->name, r->name_len, "username",
			    c->name, "reason", reason),
			r));
	chat_tell_hooks(&a);
}

void
chat_disconnect(struct client *c, const char *reason)
{
	struct hook_args a = {
		.event = HOOK_DISCONNECT, .client = c, .reason = reason
	};

	if (c->dead)
		return;
	c->dead = true;
	chat_expires(c, 0);
	/* Leave from the last joined so each removal is O(1) in c->rooms. */
	while (c->nrooms > 0)
		chat_member_remove(
		    c, client_room(c, c->nrooms - 1)->room, reason, NULL, NULL);
	chat_tell_hooks(&a);
	client_unlink(c);
}

void
chat_close(const struct chat_actor *by, struct client *c, const char *reason)
{
	char buf[64];

	log_info(chat_actor_name(by, buf, sizeof buf),
	    "disconnects client %llu (%s)", (unsigned long long)c->id, c->name);
	conn_close(c, WS_CLOSE_POLICY, reason);
}

/* ---- Names */

enum proto_err
chat_username_check(const struct client *c, const char *name, size_t len)
{
	struct client *other;
	const char *held;

	if (!proto_name_valid(name, len, PROTO_USERNAME_MAX))
		return PROTO_ERR_INVALID_NAME;
	other = client_find_by_name(name, len);
	if (other != NULL && other != c)
		return PROTO_ERR_NAME_TAKEN;
	/* A registered name is its account's alone. */
	held = account_holder(name, len);
	if (held != NULL &&
	    (c->account == NULL || strcmp(c->account, held) != 0))
		return PROTO_ERR_NAME_TAKEN;
	return PROTO_OK;
}

/* The whole decision on a requested name, changing nothing: the rate
 * limit, core rules, then the hooks (which may rewrite it), then the core
 * rules again. The name to set is a->text when a->new_text is set. */
static enum proto_err
chat_decide_username(struct client *c, const char *name, size_t len,
    struct hook_args *a, unsigned flags, char **reason)
{
	enum proto_err e;

	if ((flags & CHAT_LIMITS) &&
	    !bucket_take(&c->rl_names, cfg->names_per_minute, cfg->name_burst))
		return PROTO_ERR_RATE_LIMITED;
	if ((e = chat_username_check(c, name, len)) != PROTO_OK)
		return e;
	if (!(flags & CHAT_HOOKS))
		return PROTO_OK;
	a->event = HOOK_USERNAME;
	a->client = c;
	a->text = name;
	a->text_len = len;
	if ((e = chat_run_hooks(a, NULL, reason)) != PROTO_OK)
		return e;
	if (a->new_text != NULL)
		return chat_username_check(c, a->text, a->text_len);
	return PROTO_OK;
}

/* Renames c and tells its rooms; c gets username_set when reply. */
static void
chat_apply_rename(struct client *c, const char *name, size_t len,
    const json_t *id, bool reply)
{
	char *old = xstrdup(c->name);
	bool same = strlen(old) == len && memcmp(old, name, len) == 0;

	if (!same)
		PARLEY_ASSERT(client_set_name(c, name, len) == 0);
	if (reply)
		proto_reply_new(c, id,
		    json_pack("{s:s, s:s}", "type", "username_set", "username",
			c->name));
	for (size_t i = 0; !same && i < c->nrooms; i++) {
		struct room *r = client_room(c, i)->room;
		room_broadcast_new(r,
		    chat_presence(
			json_pack("{s:s, s:s%, s:s, s:s}", "type",
			    "user_renamed", "roomName", r->name, r->name_len,
			    "oldUsername", old, "username", c->name),
			r));
	}
	if (!same) {
		struct hook_args a = { .event = HOOK_RENAMED,
			.client = c,
			.text = old,
			.text_len = strlen(old) };
		chat_tell_hooks(&a);
	}
	free(old);
}

enum proto_err
chat_rename(const struct chat_actor *by, struct client *c, const char *name,
    size_t len, const json_t *id, unsigned flags, char **reason)
{
	struct hook_args a = { 0 };
	enum proto_err e;

	(void)by;
	e = chat_decide_username(c, name, len, &a, flags, reason);
	if (e == PROTO_OK)
		chat_apply_rename(c, a.new_text ? a.text : name,
		    a.new_text ? a.text_len : len, id, true);
	hook_args_free(&a);
	return e;
}

/* ---- Accounts */

/* Whether the roles as stored (public names separated by spaces) hold
 * role. */
static bool
chat_roles_hold(const char *stored, const char *role)
{
	size_t n = strlen(role);

	for (const char *p = stored; p != NULL && *p != '\0';) {
		size_t len = strcspn(p, " ");
		if (len == n && memcmp(p, role, n) == 0)
			return true;
		p += len;
		p += strspn(p, " ");
	}
	return false;
}

/* The server roles an account has: those of the configuration
 * (operators) and those stored with it (the admin API's). */
static const char *const *
chat_account_roles(const char *account)
{
	static const char *const oper[] = { CLIENT_ROLE_OPERATOR, NULL };
	char *want = client_key(account, strlen(account));
	bool found = chat_roles_hold(account_roles(account), "operator");

	for (size_t i = 0; !found && i < cfg->operators.n; i++) {
		char *f = client_key(
		    cfg->operators.v[i], strlen(cfg->operators.v[i]));
		found = strcmp(f, want) == 0;
		free(f);
	}
	free(want);
	return found ? oper : NULL;
}

/* c is a guest again, under a fresh guest name (username_set, with id
 * when c asked). */
static void
chat_become_guest(struct client *c, const json_t *id)
{
	char *guest = client_guest_name(c);

	client_set_identity(c, NULL, NULL);
	chat_apply_rename(c, guest, strlen(guest), id, true);
	free(guest);
}

void
chat_login_as(struct client *c, const char *account, const json_t *id,
    const char *reply_type)
{
	size_t len = strlen(account);
	struct client *holder = client_find_by_name(account, len);

	/* The name is the account's: whoever holds it gives it up (a
	 * guest who had it before the account was made, or the account's
	 * own older connection). */
	if (holder != NULL && holder != c) {
		char *text;
		bool same = holder->account != NULL &&
		    strcmp(holder->account, account) == 0;
		chat_become_guest(holder, NULL);
		xasprintf(&text,
		    same ? "%s logged in on another connection; you are %s now"
			 : "the name %s belongs to an account; you are %s now",
		    account, holder->name);
		chat_notice(holder, NULL, text, NULL);
		free(text);
	}
	client_set_identity(c, account, chat_account_roles(account));
	chat_apply_rename(c, account, len, NULL, false);
	log_info("accounts", "client %llu (%s) is logged in as %s",
	    (unsigned long long)c->id, c->addr, account);
	if (reply_type != NULL)
		proto_reply_new(c, id,
		    json_pack("{s:s, s:s, s:o}", "type", reply_type, "username",
			c->name, "roles", client_roles_public(c)));
}

void
chat_admit_as(struct client *c, const char *account, const char *name,
    const char *const *roles)
{
	const char *const *config = chat_account_roles(account);
	const char *all[CHAT_IDENTITY_ROLES_MAX + 2];
	size_t n = 0;

	chat_login_as(c, account, NULL, NULL);
	for (size_t i = 0; config != NULL && config[i] != NULL; i++)
		all[n++] = config[i];
	for (size_t i = 0; roles != NULL && roles[i] != NULL &&
	     n < CHAT_IDENTITY_ROLES_MAX + 1;
	     i++)
		all[n++] = roles[i];
	all[n] = NULL;
	client_set_identity(c, account, all);
	/* The name to show, when it is free and fit; else the account's. */
	if (name != NULL && strcmp(name, c->name) != 0 &&
	    chat_username_check(c, name, strlen(name)) == PROTO_OK)
		chat_apply_rename(c, name, strlen(name), NULL, false);
}

/* ---- Identities that expire (a signed token's exp) */

#define CHAT_EXPIRY_NOTICE_S 60 /* how long before, the notice */
#define CHAT_EXPIRY_RETRY_MS 100 /* waiting for the upgrade to tell it */

/* One client's expiry: a notice a little before, then the close. */
struct chat_expiry {
	struct loop_timer t; /* first: the loop hands this back */
	uint64_t client_id;
	uint64_t expires_s;
	bool warned;
};

static struct map chat_expiries; /* decimal client id -> chat_expiry */

static size_t
chat_expiry_key(uint64_t id, char *out, size_t size)
{
	return (size_t)snprintf(out, size, "%llu", (unsigned long long)id);
}

static void chat_expiry_arm(struct chat_expiry *x);

static void
chat_expiry_fire(struct loop_timer *t)
{
	struct chat_expiry *x = (struct chat_expiry *)t;
	struct client *c = client_find_by_id(x->client_id);
	char key[24];

	if (c == NULL || c->dead)
		return;
	if (!x->warned && loop_wall_ms() / 1000 < x->expires_s) {
		if (c->closing && c->lfd.fd == -1) {
			/* Admitted, not upgraded yet: tell it once it can be
			 * told. */
			loop_timer_set(
			    &x->t, CHAT_EXPIRY_RETRY_MS, chat_expiry_fire);
			return;
		}
		x->warned = true;
		chat_notice(c, NULL,
		    "your session expires soon: present a "
		    "fresh token (refresh_token) to stay connected",
		    NULL);
		chat_expiry_arm(x);
		return;
	}
	log_info("core", "client %llu (%s): its token expired, closing",
	    (unsigned long long)c->id, c->name);
	map_remove(
	    &chat_expiries, key, chat_expiry_key(c->id, key, sizeof key));
	free(x);
	conn_close(c, CHAT_CLOSE_TOKEN_EXPIRED, "token expired");
}

/* The next step: the notice a minute before (at once when less is
 * left), then the close. */
static void
chat_expiry_arm(struct chat_expiry *x)
{
	uint64_t now = loop_wall_ms(), at = x->expires_s * 1000;

	if (!x->warned)
		at = at > now + CHAT_EXPIRY_NOTICE_S * 1000
		    ? at - CHAT_EXPIRY_NOTICE_S * 1000
		    : now;
	loop_timer_set(&x->t, at > now ? at - now : 0, chat_expiry_fire);
}

/* The client whose refresh_token is being decided, and whether a token
 * hook accepted it (by giving an expiry). */
static uint64_t chat_refreshing;
static bool chat_refreshed;

void
chat_expires(struct client *c, uint64_t expires_s)
{
	char key[24];
	size_t n;
	struct chat_expiry *x;

	if (c->id == chat_refreshing)
		chat_refreshed = true;
	if (chat_expiries.count == 0 && expires_s == 0)
		return;
	n = chat_expiry_key(c->id, key, sizeof key);
	x = map_find(&chat_expiries, key, n);
	if (expires_s == 0) {
		if (x != NULL) {
			loop_timer_cancel(&x->t);
			map_remove(&chat_expiries, key, n);
			free(x);
		}
		return;
	}
	if (x == NULL) {
		x = xcalloc(1, sizeof *x);
		x->client_id = c->id;
		map_add(&chat_expiries, key, n, x);
	}
	x->expires_s = expires_s;
	x->warned = false;
	chat_expiry_arm(x);
}

enum proto_err
chat_refresh_token(struct client *c, const char *token, size_t len,
    const json_t *id, char **reason)
{
	struct hook_args a = {
		.event = HOOK_TOKEN, .client = c, .text = token, .text_len = len
	};
	enum hook_verdict v;
	char key[24];
	struct chat_expiry *x;

	if (!hook_any(HOOK_TOKEN))
		return PROTO_ERR_UNSUPPORTED;
	chat_refreshing = c->id;
	chat_refreshed = false;
	v = hook_run(&a);
	chat_refreshing = 0;
	if (v == HOOK_DENY || !chat_refreshed) {
		if (v == HOOK_DENY && reason != NULL && a.deny_reason != NULL) {
			free(*reason);
			*reason = a.deny_reason;
			a.deny_reason = NULL;
		}
		hook_args_free(&a);
		return v == HOOK_DENY && a.deny_code != PROTO_ERR_REJECTED
		    ? a.deny_code
		    : PROTO_ERR_UNAUTHORIZED;
	}
	hook_args_free(&a);
	x = map_find(
	    &chat_expiries, key, chat_expiry_key(c->id, key, sizeof key));
	proto_reply_new(c, id,
	    json_pack("{s:s, s:I}", "type", "token_refreshed", "expires",
		(json_int_t)(x ? x->expires_s : 0)));
	return PROTO_OK;
}

/* A password within the protocol's bounds. */
static enum proto_err
chat_password_check(size_t pwlen, char **reason)
{
	if (pwlen < ACCOUNT_PASSWORD_MIN || pwlen > ACCOUNT_PASSWORD_MAX) {
		chat_set_reason(reason, "a password is 8 to 1024 bytes");
		return PROTO_ERR_BAD_REQUEST;
	}
	return PROTO_OK;
}

/* What register and login first ask of a client. */
static enum proto_err
chat_account_ready(struct client *c, char **reason)
{
	if (!account_enabled()) {
		chat_set_reason(reason, "this server keeps no accounts");
		return PROTO_ERR_UNSUPPORTED;
	}
	/* One at a time: each costs a slow hash. */
	if (c->account_busy) {
		chat_set_reason(reason,
		    "wait for the answer to your last register or login");
		return PROTO_ERR_RATE_LIMITED;
	}
	return PROTO_OK;
}

enum proto_err
chat_register(const struct chat_actor *by, struct client *c, const char *name,
    size_t len, const char *password, size_t pwlen, const json_t *id,
    char **reason)
{
	struct hook_args a = { 0 };
	enum proto_err e;

	(void)by;
	if ((e = chat_account_ready(c, reason)) != PROTO_OK ||
	    (e = chat_password_check(pwlen, reason)) != PROTO_OK)
		return e;
	/* The name rules, the names held, the rate of name changes and the
	 * scripts' and plugins' say, as for a rename; the name is taken as
	 * asked (an account is not renamed by a hook). */
	e = chat_decide_username(c, name, len, &a, CHAT_AS_CLIENT, reason);
	hook_args_free(&a);
	if (e != PROTO_OK)
		return e;
	if (len >= 6 && strncasecmp(name, "guest-", 6) == 0) {
		chat_set_reason(reason, "guest names cannot be registered");
		return PROTO_ERR_INVALID_NAME;
	}
	if (account_read_only()) {
		chat_set_reason(reason,
		    "the server cannot store new accounts now; try later");
		return PROTO_ERR_INTERNAL;
	}
	if (account_register(c, name, len, password, pwlen, id) == -1) {
		chat_set_reason(reason, "the server is busy; try again");
		return PROTO_ERR_RATE_LIMITED;
	}
	c->account_busy = true;
	return PROTO_OK;
}

enum proto_err
chat_login(const struct chat_actor *by, struct client *c, const char *name,
    size_t len, const char *password, size_t pwlen, const json_t *id,
    char **reason)
{
	enum proto_err e;

	(void)by;
	if ((e = chat_account_ready(c, reason)) != PROTO_OK ||
	    (e = chat_password_check(pwlen, reason)) != PROTO_OK)
		return e;
	if (!proto_name_valid(name, len, PROTO_USERNAME_MAX))
		return PROTO_ERR_INVALID_NAME;
	if (!account_login_allowed(name, len, c->addr)) {
		chat_set_reason(reason,
		    "too many failed logins; try again in a few minutes");
		return PROTO_ERR_RATE_LIMITED;
	}
	if (account_login(c, name, len, password, pwlen, id) == -1) {
		chat_set_reason(reason, "the server is busy; try again");
		return PROTO_ERR_RATE_LIMITED;
	}
	c->account_busy = true;
	return PROTO_OK;
}

void
chat_account_done(uint64_t client, const json_t *id, bool registering,
    enum account_status st, const char *account)
{
	struct client *c = client_find_by_id(client);

	if (c == NULL || c->dead || c->closing)
		return;
	c->account_busy = false;
	switch (st) {
	case ACCOUNT_OK:
		if (registering)
			log_info("accounts", "client %llu (%s) registered %s",
			    (unsigned long long)c->id, c->addr, account);
		chat_login_as(
		    c, account, id, registering ? "registered" : "logged_in");
		break;
	case ACCOUNT_DENIED:
		/* The same words whether the name or the password was
		 * wrong. */
		log_info("accounts", "client %llu (%s): failed login",
		    (unsigned long long)c->id, c->addr);
		proto_send_error(c, PROTO_ERR_UNAUTHORIZED, id, NULL, NULL);
		break;
	case ACCOUNT_EXISTS:
		proto_send_error(c, PROTO_ERR_NAME_TAKEN, id, NULL, NULL);
		break;
	default:
		proto_send_error(c, PROTO_ERR_INTERNAL, id, NULL, NULL);
		break;
	}
}

enum proto_err
chat_logout(const struct chat_actor *by, struct client *c, const json_t *id)
{
	(void)by;
	if (c->account != NULL)
		log_info("accounts", "client %llu (%s) logged out of %s",
		    (unsigned long long)c->id, c->addr, c->account);
	chat_become_guest(c, id);
	return PROTO_OK;
}

/* ---- Rooms */

/* Rooms are bounded per owner as well as in all: the guests of one
 * address, whatever their connections, own at most
 * max_rooms_per_address; an account at most max_rooms_per_account. */
static enum proto_err
chat_room_quota(const struct client *c, char **reason)
{
	json_t *names = room_names(), *name;
	unsigned n = 0;
	size_t i;

	json_array_foreach(names, i, name)
	{
		const struct room *r = room_find(
		    json_string_value(name), json_string_length(name));
		if (r == NULL)
			continue;
		if (c->account != NULL)
			n += r->owner_account != NULL &&
			    strcmp(r->owner_account, c->account) == 0;
		else
			n += r->owner_account == NULL &&
			    r->owner_addr != NULL && c->addr != NULL &&
			    strcmp(r->owner_addr, c->addr) == 0;
	}
	json_decref(names);
	if (c->account != NULL && n >= cfg->max_rooms_per_account) {
		chat_set_reason(
		    reason, "your account owns as many rooms as one may");
		return PROTO_ERR_FORBIDDEN;
	}
	/* The addresses the per-address limits spare (loopback, trusted
	 * proxies) are spared here too. */
	if (c->account == NULL && n >= cfg->max_rooms_per_address &&
	    (c->addr == NULL || !http_address_exempt(c->addr))) {
		chat_set_reason(reason,
		    "your address owns as many rooms as one may; log in, or "
		    "wait for empty ones to expire");
		return PROTO_ERR_FORBIDDEN;
	}
	return PROTO_OK;
}

enum proto_err
chat_room_create(const struct chat_actor *by, const char *name, size_t len,
    const json_t *id, struct room **out, char **reason)
{
	struct client *c = by->kind == CHAT_ACTOR_CLIENT ? by->client : NULL;
	struct hook_args a = { .event = HOOK_CREATE_ROOM,
		.client = c,
		.text = name,
		.text_len = len };
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
	if (c != NULL) {
		if (room_count() >= cfg->max_rooms) {
			chat_set_reason(reason,
			    "the server has reached its number of rooms");
			return PROTO_ERR_FORBIDDEN;
		}
		if (c->nrooms >= cfg->max_rooms_per_client) {
			chat_set_reason(
			    reason, "you are in as many rooms as one may be");
			return PROTO_ERR_FORBIDDEN;
		}
		if ((e = chat_room_quota(c, reason)) != PROTO_OK)
			return e;
		if (!bucket_take(
			&c->rl_rooms, cfg->rooms_per_minute, cfg->room_burst))
			return PROTO_ERR_RATE_LIMITED;
		e = chat_run_hooks(&a, &dropped, reason);
		hook_args_free(&a);
		if (e != PROTO_OK)
			return e;
		if (dropped)
			return PROTO_OK;
	} else if (chat_by_admin(by)) {
		a.by = by;
		if ((e = chat_admin_decide(&a, by, reason)) != PROTO_OK)
			return e;
	}
	r = room_create(name, len, c ? c->id : 0);
	/* An account's room stays its own across connections; a guest's
	 * is its session's. */
	if (c != NULL && c->account != NULL)
		r->owner_account = xstrdup(c->account);
	else if (c != NULL) {
		r->owner_session = xstrdup(client_session_key(c));
		r->owner_addr = xstrdup(c->addr ? c->addr : "");
	}
	/* A durable store remembers the room's messages: go on from there
	 * so a seq is never reused. */
	r->seq = history_last_seq(r);
	r->empty_since = c != NULL ? 0 : loop_wall_ms();
	chat_room_save(r);
	if (c != NULL) {
		room_join(r, c);
		proto_reply_new(c, id,
		    chat_presence(
			json_pack("{s:s, s:s%}", "type", "created_room",
			    "roomName", r->name, r->name_len),
			r));
	}
	ev = json_pack("{s:s, s:s%}", "type", "room_created", "roomName",
	    r->name, r->name_len);
	b = buf_json(ev);
	json_decref(ev);
	client_broadcast_all(b);
	buf_unref(b);
	a = (struct hook_args){ .event = HOOK_ROOM_CREATED,
		.client = c,
		.room = r,
		.by = chat_by_admin(by) ? by : NULL };
	chat_tell_hooks(&a);
	if (out != NULL)
		*out = r;
	return PROTO_OK;
}

enum proto_err
chat_room_remove(const struct chat_actor *by, struct room *r, const char *why)
{
	struct hook_args a = { .event = HOOK_ROOM_REMOVED,
		.room = r,
		.by = chat_by_admin(by) ? by : NULL };
	char buf[64];
	json_t *ev;
	struct buf *b;

	if (r->removed)
		return PROTO_ERR_ROOM_NOT_FOUND;
	log_info(
	    chat_actor_name(by, buf, sizeof buf), "removes room %s", r->name);
	chat_leave_by = a.by;
	while (r->head != NULL)
		chat_member_remove(r->head->client, r, "kicked", why, NULL);
	chat_leave_by = NULL;
	ev = json_pack("{s:s, s:s%}", "type", "room_deleted", "roomName",
	    r->name, r->name_len);
	b = buf_json(ev);
	json_decref(ev);
	client_broadcast_all(b);
	buf_unref(b);
	chat_tell_hooks(&a);
	/* Its past goes with it: a later room of that name has another id,
	 * so it starts with an empty history and no owner, roles or bans. */
	history_forget(r->hkey, r->hkey_len);
	chat_room_forget(r);
	room_remove(r);
	return PROTO_OK;
}

enum proto_err
chat_join(const struct chat_actor *by, struct client *c, struct room *r,
    const char *username, size_t ulen, const json_t *id, unsigned flags,
    char **reason)
{
	struct hook_args ua = { 0 };
	struct hook_args ja = { .event = HOOK_JOIN, .client = c, .room = r };
	bool member = room_membership(r, c) != NULL;
	enum proto_err e = PROTO_OK;

	(void)by;
	/* Decide everything before changing anything. */
	if (username != NULL)
		e = chat_decide_username(c, username, ulen, &ua, flags, reason);
	if (e == PROTO_OK && !member && (flags & CHAT_LIMITS)) {
		if (r->count >= cfg->max_members_per_room) {
			chat_set_reason(reason, "the room is full");
			e = PROTO_ERR_FORBIDDEN;
		} else if (c->nrooms >= cfg->max_rooms_per_client) {
			chat_set_reason(
			    reason, "you are in as many rooms as one may be");
			e = PROTO_ERR_FORBIDDEN;
		}
	}
	if (e == PROTO_OK && !member && (flags & CHAT_LIMITS)) {
		json_t *ban = chat_restriction("ban", r, c);
		if (ban != NULL) {
			char until[64], *text;
			chat_until_text((uint64_t)json_integer_value(
					    json_object_get(ban, "until")),
			    until, sizeof until);
			xasprintf(
			    &text, "you are banned from %s %s", r->name, until);
			if (reason != NULL) {
				free(*reason);
				*reason = text;
			} else
				free(text);
			e = PROTO_ERR_FORBIDDEN;
		}
	}
	if (e == PROTO_OK && !member && (flags & CHAT_HOOKS))
		e = chat_run_hooks(&ja, NULL, reason);
	if (e != PROTO_OK)
		goto out;
	if (username != NULL)
		chat_apply_rename(c, ua.new_text ? ua.text : username,
		    ua.new_text ? ua.text_len : ulen, id, true);
	if (!member) {
		room_join(r, c);
		if (r->count == 1)
			chat_room_occupancy(r);
	}
	if (!c->remote)
		proto_reply_new(c, id,
		    chat_presence(json_pack("{s:s, s:s%, s:s, s:s}", "type",
				      "room_joined", "roomName", r->name,
				      r->name_len, "username", c->name, "topic",
				      r->topic ? r->topic : ""),
			r));
	if (!member)
		room_broadcast_new(r,
		    chat_presence(json_pack("{s:s, s:s%, s:s}", "type",
				      "joined_room", "roomName", r->name,
				      r->name_len, "username", c->name),
			r));
out:
	hook_args_free(&ua);
	hook_args_free(&ja);
	return e;
}

enum proto_err
chat_leave(const struct chat_actor *by, struct client *c, struct room *r,
    const char *reason, const json_t *id)
{
	(void)by;
	if (room_membership(r, c) == NULL)
		return PROTO_ERR_NOT_IN_ROOM;
	chat_member_remove(c, r, reason, NULL, id);
	return PROTO_OK;
}

enum proto_err
chat_kick(const struct chat_actor *by, struct client *c, struct room *r,
    const char *why, const json_t *id)
{
	char buf[64];

	if (room_membership(r, c) == NULL)
		return PROTO_ERR_NOT_IN_ROOM;
	log_info(chat_actor_name(by, buf, sizeof buf), "kicks %s from %s",
	    c->name, r->name);
	chat_member_remove(c, r, "kicked", why, id);
	return PROTO_OK;
}

enum proto_err
chat_kick_checked(const struct chat_actor *by, struct client *c, struct room *r,
    const char *why, char **reason)
{
	enum proto_err e;

	if (room_membership(r, c) == NULL)
		return PROTO_ERR_NOT_IN_ROOM;
	if (chat_by_admin(by)) {
		struct hook_args a = { .event = HOOK_MODERATION,
			.room = r,
			.text = c->name,
			.text_len = strlen(c->name),
			.reason = "kick" };
		if ((e = chat_admin_decide(&a, by, reason)) != PROTO_OK)
			return e;
	}
	chat_leave_by = chat_by_admin(by) ? by : NULL;
	e = chat_kick(by, c, r, why, NULL);
	chat_leave_by = NULL;
	return e;
}

/* ---- Messages */

/* Whether c may still speak in r after the hooks had their say: a hook
 * may have kicked, muted or disconnected it. */
static enum proto_err
chat_may_speak(const struct client *c, const struct room *r, char **reason)
{
	if (c->dead || c->closing)
		return PROTO_ERR_NOT_IN_ROOM;
	if (room_membership(r, c) == NULL)
		return PROTO_ERR_NOT_IN_ROOM;
	if (client_has_role(c, CHAT_ROLE_MUTED)) {
		chat_set_reason(reason, "you are muted");
		return PROTO_ERR_FORBIDDEN;
	}
	if (!c->remote) {
		json_t *mute = chat_restriction("mute", r, c);
		if (mute != NULL) {
			chat_mute_reason(mute, reason);
			return PROTO_ERR_FORBIDDEN;
		}
	}
	return PROTO_OK;
}

/* A refusal that says the limit, so that a person knows how much to cut. */
static enum proto_err
chat_too_long(size_t len, char **reason)
{
	char *text;

	if (reason != NULL) {
		xasprintf(&text, "the message is %zu bytes; at most %zu bytes",
		    len, cfg->max_message_bytes);
		free(*reason);
		*reason = text;
	}
	return PROTO_ERR_MESSAGE_TOO_LONG;
}

enum proto_err
chat_say(const struct chat_actor *by, struct client *c, struct room *r,
    const char *text, size_t len, bool action, const json_t *id, unsigned flags,
    char **reason)
{
	struct hook_args a = { .event = HOOK_MESSAGE,
		.client = c,
		.room = r,
		.text = text,
		.text_len = len,
		.id = id };
	enum proto_err e;
	bool dropped = false;

	(void)by;
	if (room_membership(r, c) == NULL)
		return PROTO_ERR_NOT_IN_ROOM;
	if (len == 0) {
		chat_set_reason(reason, "empty message");
		return PROTO_ERR_BAD_REQUEST;
	}
	if (len > cfg->max_message_bytes)
		return chat_too_long(len, reason);
	if ((flags & CHAT_LIMITS) &&
	    !bucket_take(
		&c->rl_messages, cfg->messages_per_minute, cfg->message_burst))
		return PROTO_ERR_RATE_LIMITED;
	if ((flags & CHAT_COMMANDS) && text[0] == '/')
		return command_run(c, r, id, text, len);
	if (flags & CHAT_HOOKS)
		e = chat_run_hooks(&a, &dropped, reason);
	else
		e = PROTO_OK;
	if (e == PROTO_OK && !dropped && a.new_text != NULL) {
		/* A hook's text gets the checks the client's got. */
		if (a.text_len == 0)
			dropped = true;
		else if (a.text_len > cfg->max_message_bytes)
			e = chat_too_long(a.text_len, reason);
		else if (!utf8_valid(a.text, a.text_len))
			e = PROTO_ERR_INTERNAL;
	}
	if (e == PROTO_OK && !dropped)
		e = chat_may_speak(c, r, reason);
	if (e == PROTO_OK && !dropped)
		e = chat_post(
		    r, c, c->name, a.text, a.text_len, action, reason);
	hook_args_free(&a);
	return e;
}

enum proto_err
chat_post(struct room *r, struct client *from, const char *sender,
    const char *text, size_t len, bool action, char **reason)
{
	enum proto_err e;

	if (hook_any(HOOK_POST)) {
		struct hook_args a = { .event = HOOK_POST,
			.client = from,
			.room = r,
			.text = text,
			.text_len = len,
			.sender = sender,
			.action = action };
		enum hook_verdict v = hook_run(&a);
		/* A hook that failed refused it: the sender must learn that
		 * the message went nowhere. */
		if (v == HOOK_DENY && from != NULL &&
		    a.deny_code == PROTO_ERR_INTERNAL) {
			if (reason != NULL && a.deny_reason != NULL) {
				free(*reason);
				*reason = a.deny_reason;
				a.deny_reason = NULL;
			}
			hook_args_free(&a);
			return PROTO_ERR_INTERNAL;
		}
		hook_args_free(&a);
		/* Taken over (e.g. ordered by a cluster), or refused. */
		if (v == HOOK_DROP || v == HOOK_DENY)
			return PROTO_OK;
		if (from != NULL &&
		    (e = chat_may_speak(from, r, reason)) != PROTO_OK)
			return e;
	}
	chat_post_at(r, sender, text, len, action, r->seq + 1, loop_wall_ms());
	if (from != NULL) {
		/* Its author may delete it. */
		room_author_add(r, r->seq, chat_member_key(from, true));
	}
	return PROTO_OK;
}

void
chat_post_at(struct room *r, const char *sender, const char *text, size_t len,
    bool action, uint64_t seq, uint64_t ts)
{
	json_t *ev = json_pack("{s:s, s:s%, s:s%, s:s, s:I, s:I}", "type",
	    "new_message", "roomName", r->name, r->name_len, "message", text,
	    len, "sender", sender, "ts", (json_int_t)ts, "seq",
	    (json_int_t)seq);

	r->seq = seq;
	if (action)
		json_object_set_new(ev, "action", json_true());
	history_append(r, seq, ts, sender, text, len, action);
	metrics_add(METRIC_MESSAGES_IN, 1);
	metrics_add(METRIC_MESSAGES_DELIVERED, r->count);
	room_broadcast_new(r, ev);
}

void
chat_notice(
    struct client *c, const struct room *r, const char *text, const json_t *id)
{
	json_t *n = json_pack("{s:s, s:s}", "type", "notice", "message", text);

	if (r != NULL)
		json_object_set_new(
		    n, "roomName", json_stringn(r->name, r->name_len));
	proto_reply_new(c, id, n);
}

void
chat_notice_room(struct room *r, const char *text)
{
	room_broadcast_new(r,
	    json_pack("{s:s, s:s, s:s%}", "type", "notice", "message", text,
		"roomName", r->name, r->name_len));
}

/* ---- The admin API's own actions */

size_t
chat_announce(
    const struct chat_actor *by, struct room *r, const char *text, size_t len)
{
	char buf[64];
	json_t *n = json_pack(
	    "{s:s, s:s%}", "type", "notice", "message", text, len);
	struct buf *b;
	size_t count;

	log_info(chat_actor_name(by, buf, sizeof buf), "announces in %s",
	    r != NULL ? r->name : "every room");
	if (r != NULL) {
		json_object_set_new(
		    n, "roomName", json_stringn(r->name, r->name_len));
		count = r->count;
		room_broadcast_new(r, n);
		return count;
	}
	b = buf_json(n);
	json_decref(n);
	client_broadcast_all(b);
	buf_unref(b);
	return conn_count();
}

enum proto_err
chat_server_post(const struct chat_actor *by, struct room *r, const char *text,
    size_t len, bool action, char **reason)
{
	char buf[64];

	if (len == 0) {
		chat_set_reason(reason, "empty message");
		return PROTO_ERR_BAD_REQUEST;
	}
	if (len > cfg->max_message_bytes)
		return PROTO_ERR_MESSAGE_TOO_LONG;
	log_info(chat_actor_name(by, buf, sizeof buf), "posts in %s", r->name);
	return chat_post(r, NULL, "server", text, len, action, reason);
}

/* by (the admin API) creates, deletes or sets the password of an
 * account; the result goes to done (ticket) once the worker is through
 * (PROTO_OK means it is under way). */
enum proto_err
chat_account_admin(const struct chat_actor *by, enum account_op op,
    const char *name, size_t len, const char *password, size_t pwlen,
    account_admin_fn done, uint64_t ticket, char **reason)
{
	static const char *const what[] = { "creates", "deletes",
		"sets the password of", "sets the server roles of" };
	const char *held = account_holder(name, len);
	char buf[64];
	enum proto_err e;

	if (!account_enabled()) {
		chat_set_reason(reason, "this server keeps no accounts");
		return PROTO_ERR_UNSUPPORTED;
	}
	if ((op == ACCOUNT_OP_CREATE || op == ACCOUNT_OP_PASSWORD) &&
	    (e = chat_password_check(pwlen, reason)) != PROTO_OK)
		return e;
	if (op == ACCOUNT_OP_CREATE) {
		char *why = NULL;
		if (!proto_name_valid(name, len, PROTO_USERNAME_MAX) ||
		    name_check(name, len, &why) == -1 ||
		    (len >= 6 && strncasecmp(name, "guest-", 6) == 0)) {
			chat_set_reason(reason,
			    why != NULL ? why
					: "not a name an account may have");
			free(why);
			return PROTO_ERR_INVALID_NAME;
		}
		if (held != NULL)
			return PROTO_ERR_NAME_TAKEN;
	} else if (held == NULL) {
		chat_set_reason(reason, "there is no such account");
		return PROTO_ERR_BAD_REQUEST;
	} else {
		name = held; /* as registered */
		len = strlen(held);
	}
	if (op != ACCOUNT_OP_PASSWORD && account_read_only()) {
		chat_set_reason(
		    reason, "the server cannot change accounts now; try later");
		return PROTO_ERR_INTERNAL;
	}
	if (account_admin(op, name, len, password, pwlen, done, ticket) == -1) {
		chat_set_reason(reason, "the server is busy; try again");
		return PROTO_ERR_RATE_LIMITED;
	}
	log_info(chat_actor_name(by, buf, sizeof buf), "%s account %.*s",
	    what[op], (int)len, name);
	return PROTO_OK;
}

enum proto_err
chat_account_set_roles(const struct chat_actor *by, const char *name,
    size_t len, const char *const *roles, size_t n, account_admin_fn done,
    uint64_t ticket, char **reason)
{
	char text[CHAT_SERVER_ROLES_MAX * 16] = "";
	size_t used = 0;

	if (n > CHAT_SERVER_ROLES_MAX) {
		chat_set_reason(reason, "too many roles");
		return PROTO_ERR_BAD_REQUEST;
	}
	for (size_t i = 0; i < n; i++) {
		/* Each known role once, in the order of CHAT_SERVER_ROLES. */
		if (!chat_roles_hold(CHAT_SERVER_ROLES, roles[i])) {
			chat_set_reason(
			    reason, "the server roles are: " CHAT_SERVER_ROLES);
			return PROTO_ERR_BAD_REQUEST;
		}
		if (chat_roles_hold(text, roles[i]))
			continue;
		used += (size_t)snprintf(text + used, sizeof text - used,
		    "%s%s", used > 0 ? " " : "", roles[i]);
	}
	return chat_account_admin(by, ACCOUNT_OP_ROLES, name, len, text,
	    strlen(text), done, ticket, reason);
}

void
chat_account_roles_changed(const char *account)
{
	bool oper = chat_account_roles(account) != NULL;
	char *want = client_key(account, strlen(account));

	for (struct client *c = clients; c != NULL; c = c->next) {
		json_t *before, *after;
		char *list, *text, *have;
		bool same;
		if (c->dead || c->account == NULL)
			continue;
		/* Compared as names are (an identity a connect hook gave may
		 * differ in case from the account as registered). */
		have = client_key(c->account, strlen(c->account));
		same = strcmp(have, want) == 0;
		free(have);
		if (!same)
			continue;
		before = client_roles_public(c);
		client_identity_role(c, CLIENT_ROLE_OPERATOR, oper);
		after = client_roles_public(c);
		if (!json_equal(before, after)) {
			list = json_dumps(after, JSON_COMPACT);
			xasprintf(&text, "your server roles are now %s",
			    json_array_size(after) > 0 ? list : "none");
			chat_notice(c, NULL, text, NULL);
			free(text);
			free(list);
		}
		json_decref(before);
		json_decref(after);
	}
	free(want);
}

/* The account is gone: whoever is logged in as it is a guest now. */
void
chat_account_gone(const char *account)
{
	for (struct client *c = clients; c != NULL; c = c->next) {
		char *text;
		if (c->dead || c->account == NULL ||
		    strcmp(c->account, account) != 0)
			continue;
		chat_become_guest(c, NULL);
		xasprintf(&text, "the account %s was deleted; you are %s now",
		    account, c->name);
		chat_notice(c, NULL, text, NULL);
		free(text);
	}
}

/* ---- Rooms that last: owners, roles, topics, deletion, bans, mutes */

#define CHAT_TOPIC_MAX 256
#define CHAT_ROLE_MODERATOR "moderator"
#define CHAT_SWEEP_MS 1000

static struct loop_timer chat_sweep_timer;

/* What a client's room roles, bans and mutes bind to: its account, else
 * its session (allocated). A guest's session key is made when something
 * is bound to it (make); before that nothing names it (NULL). */
static char *
chat_member_key(const struct client *c, bool make)
{
	const char *ses;
	char *k;

	if (c->account != NULL)
		xasprintf(&k, "a:%s", c->account);
	else if ((ses = make ? client_session_key(c)
			     : client_session_key_find(c)) != NULL)
		xasprintf(&k, "s:%s", ses);
	else
		k = NULL;
	return k;
}

static bool
chat_is_oper(const struct client *c)
{
	return client_has_role(c, CLIENT_ROLE_OPERATOR);
}

bool
chat_is_owner(const struct client *c, const struct room *r)
{
	if (r->owner_account != NULL)
		return c->account != NULL &&
		    strcmp(c->account, r->owner_account) == 0;
	if (r->owner_session != NULL)
		return client_session_key_find(c) != NULL &&
		    strcmp(client_session_key_find(c), r->owner_session) == 0;
	return r->owner != 0 && r->owner == c->id;
}

const char *
chat_room_role(const struct room *r, const struct client *c)
{
	char *k;
	json_t *v;

	if (chat_is_owner(c, r))
		return "owner";
	if (r->roles == NULL)
		return NULL;
	if ((k = chat_member_key(c, false)) == NULL)
		return NULL;
	v = json_object_get(r->roles, k);
	free(k);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Owner, moderator or operator: may moderate r. */
static bool
chat_may_moderate(const struct client *c, const struct room *r)
{
	return chat_is_oper(c) || chat_room_role(r, c) != NULL;
}

json_t *
chat_roles(const struct room *r)
{
	json_t *o = json_object();

	for (struct membership *m = r->head; m != NULL; m = m->next) {
		const char *role = chat_room_role(r, m->client);
		if (role != NULL)
			json_object_set_new(
			    o, m->client->name, json_string(role));
	}
	return o;
}

void
chat_room_save(struct room *r)
{
	char hex[17];
	json_t *rec;

	if (r->removed)
		return;
	snprintf(hex, sizeof hex, "%016llx", (unsigned long long)r->rid);
	rec = json_pack("{s:s, s:s?, s:s?, s:s?, s:s, s:I, s:I, s:b, s:O?}",
	    "id", hex, "owner_account", r->owner_account, "owner_session",
	    r->owner_session, "owner_addr", r->owner_addr, "topic",
	    r->topic ? r->topic : "", "created", (json_int_t)r->created,
	    "empty_since", (json_int_t)r->empty_since, "configured",
	    r->configured, "roles", r->roles);
	state_put_new("room", r->name, rec);
}

/* A guest's room: it goes once it has been empty for empty_room_ttl. */
static bool
chat_room_expires(const struct room *r)
{
	return !r->configured && r->owner_account == NULL &&
	    r->owner_session != NULL;
}

static void
chat_room_sweep(struct loop_timer *t)
{
	uint64_t now = loop_wall_ms(), ttl = cfg->empty_room_ttl * 1000ull;
	size_t n = 0;
	struct room **v = NULL;
	json_t *names = room_names(), *name;
	size_t i;

	/* By name: removing changes the room list. */
	json_array_foreach(names, i, name)
	{
		struct room *r = room_find(
		    json_string_value(name), json_string_length(name));
		if (r != NULL && r->count == 0 && chat_room_expires(r) &&
		    r->empty_since != 0 && now - r->empty_since >= ttl) {
			v = xreallocarray(v, n + 1, sizeof *v);
			v[n++] = r;
		}
	}
	json_decref(names);
	for (i = 0; i < n; i++) {
		log_info("core", "room %s was empty for %u s: removed",
		    v[i]->name, cfg->empty_room_ttl);
		chat_room_remove(&chat_by_server, v[i], "room expired");
	}
	free(v);
	loop_timer_set(t, CHAT_SWEEP_MS, chat_room_sweep);
}

/* r's last member left, or its first came. */
static void
chat_room_occupancy(struct room *r)
{
	uint64_t since = r->count == 0 ? loop_wall_ms() : 0;

	if ((since == 0) != (r->empty_since == 0) && chat_room_expires(r)) {
		r->empty_since = since;
		chat_room_save(r);
	} else
		r->empty_since = since;
}

static uint64_t
chat_hex_id(const char *s)
{
	return s != NULL ? strtoull(s, NULL, 16) : 0;
}

int
chat_rooms_restore(char **cause)
{
	json_t *all = json_deep_copy(state_all("room")), *v;
	const char *name;
	uint64_t now = loop_wall_ms();
	size_t restored = 0;

	(void)cause;
	json_object_foreach(all, name, v)
	{
		struct room *r = room_create(name, strlen(name), 0);
		if (r == NULL)
			continue;
		chat_room_from_record(r, v, now);
		restored++;
	}
	json_decref(all);
	if (restored > 0)
		log_info("state", "%zu rooms restored", restored);
	chat_rooms_configured();
	loop_timer_set(&chat_sweep_timer, CHAT_SWEEP_MS, chat_room_sweep);
	return 0;
}

/* Fills r from its record. */
static void
chat_room_from_record(struct room *r, const json_t *v, uint64_t now)
{
	json_t *roles = json_object_get(v, "roles");
	const char *s;
	room_set_id(
	    r, chat_hex_id(json_string_value(json_object_get(v, "id"))));
	if ((s = json_string_value(json_object_get(v, "owner_account"))))
		r->owner_account = xstrdup(s);
	if ((s = json_string_value(json_object_get(v, "owner_session"))))
		r->owner_session = xstrdup(s);
	if ((s = json_string_value(json_object_get(v, "owner_addr"))))
		r->owner_addr = xstrdup(s);
	free(r->topic);
	r->topic = NULL;
	if ((s = json_string_value(json_object_get(v, "topic"))) && *s != '\0')
		r->topic = xstrdup(s);
	r->created = (uint64_t)json_integer_value(
	    json_object_get(v, "created"));
	r->empty_since = (uint64_t)json_integer_value(
	    json_object_get(v, "empty_since"));
	if (r->empty_since == 0)
		r->empty_since = now;
	r->configured = json_is_true(json_object_get(v, "configured"));
	json_decref(r->roles);
	r->roles = NULL;
	if (json_is_object(roles) && json_object_size(roles) > 0)
		r->roles = json_deep_copy(roles);
}

void
chat_state_changed(const char *kind, const char *key, json_t *value)
{
	struct room *r;
	const char *topic;

	if (strcmp(kind, "room") != 0) {
		/* A message deleted on another server: this server's
		 * history store forgets its text as well. */
		if (strcmp(kind, "tomb") == 0 && value != NULL)
			history_tombs_changed(key, value);
		state_remote(kind, key, value);
		return;
	}
	r = room_find(key, strlen(key));
	if (value == NULL) {
		state_remote(kind, key, NULL);
		if (r != NULL)
			chat_room_remove(&chat_by_server, r, CHAT_ROOM_DELETED);
		return;
	}
	if (r != NULL &&
	    r->rid !=
		chat_hex_id(json_string_value(json_object_get(value, "id")))) {
		/* Two servers made a room of that name at once. Every server
		 * settles it the same way: a record with an owner beats one
		 * without, then the smaller id wins. The winner is announced
		 * again, so that the cluster's copy is the winner too. */
		uint64_t in = chat_hex_id(
		    json_string_value(json_object_get(value, "id")));
		bool in_owned = json_object_get(value, "owner_account") !=
			NULL ||
		    json_object_get(value, "owner_session") != NULL;
		bool owned = r->owner_account != NULL ||
		    r->owner_session != NULL;
		if (owned != in_owned ? owned : r->rid < in) {
			json_decref(value);
			chat_room_save(r);
			return;
		}
		log_info("state", "room %s: another server's record wins", key);
		free(r->owner_account);
		free(r->owner_session);
		free(r->owner_addr);
		r->owner_account = r->owner_session = r->owner_addr = NULL;
		chat_room_from_record(r, value, loop_wall_ms());
		if (r->count > 0)
			r->empty_since = 0;
		state_put_new(kind, key, value);
		return;
	}
	if (r == NULL) {
		json_t *ev;
		struct buf *b;
		r = room_create(key, strlen(key), 0);
		if (r == NULL) {
			json_decref(value);
			return;
		}
		chat_room_from_record(r, value, loop_wall_ms());
		r->seq = history_last_seq(r);
		ev = json_pack("{s:s, s:s%}", "type", "room_created",
		    "roomName", r->name, r->name_len);
		b = buf_json(ev);
		json_decref(ev);
		client_broadcast_all(b);
		buf_unref(b);
		state_remote(kind, key, value);
		return;
	}
	topic = json_string_value(json_object_get(value, "topic"));
	if (topic == NULL)
		topic = "";
	if (strcmp(topic, r->topic ? r->topic : "") != 0) {
		free(r->topic);
		r->topic = *topic != '\0' ? xstrdup(topic) : NULL;
		room_broadcast_new(r,
		    json_pack("{s:s, s:s%, s:s, s:s}", "type", "topic_changed",
			"roomName", r->name, r->name_len, "topic", topic,
			"username", "server"));
	}
	json_decref(r->roles);
	r->roles = NULL;
	if (json_is_object(json_object_get(value, "roles")) &&
	    json_object_size(json_object_get(value, "roles")) > 0)
		r->roles = json_deep_copy(json_object_get(value, "roles"));
	state_remote(kind, key, value);
}

void
chat_rooms_configured(void)
{
	/* The first start with a state store: the configured rooms are
	 * those of before, and keep the history kept under their names. */
	bool legacy = state_get("meta", "ids") == NULL;

	if (legacy)
		state_put_new("meta", "ids", json_integer(1));
	for (size_t i = 0; i < cfg->rooms.n; i++) {
		size_t len = strlen(cfg->rooms.v[i]);
		struct room *r = room_find(cfg->rooms.v[i], len);
		bool made = r == NULL;
		if (r == NULL &&
		    chat_room_create(&chat_by_server, cfg->rooms.v[i], len,
			NULL, &r, NULL) != PROTO_OK)
			continue;
		if (r != NULL && made && legacy) {
			room_set_id(r, 0);
			r->seq = history_last_seq(r);
		}
		if (r != NULL && (!r->configured || (made && legacy))) {
			r->configured = true;
			chat_room_save(r);
		}
	}
}

/* Runs an authority chain (topic, delete_*, role, moderation) for a
 * client's request: a hook may refuse (DENY) or allow what the default
 * rule refuses (STOP); otherwise the default decides. */
static enum proto_err
chat_decide(struct hook_args *a, bool allowed, char **reason)
{
	enum hook_verdict v = HOOK_PASS;

	if (hook_any(a->event))
		v = hook_run(a);
	if (v == HOOK_DENY) {
		if (reason != NULL && a->deny_reason != NULL) {
			free(*reason);
			*reason = a->deny_reason;
			a->deny_reason = NULL;
		}
		hook_args_free(a);
		return a->deny_code;
	}
	hook_args_free(a);
	if (a->stopped || allowed)
		return PROTO_OK;
	return PROTO_ERR_FORBIDDEN;
}

/* ---- The admin API's acts, as the hooks see them */

bool
chat_by_admin(const struct chat_actor *by)
{
	return by != NULL && by->kind == CHAT_ACTOR_ADMIN;
}

/* Runs the chain of a->event for an act of the admin API (a->by): a
 * hook may refuse it (rejected), as it may a client's request; the
 * admin's authority decides the rest (STOP and PASS alike let it go
 * on). */
static enum proto_err
chat_admin_decide(
    struct hook_args *a, const struct chat_actor *by, char **reason)
{
	enum hook_verdict v = HOOK_PASS;

	a->by = by;
	if (hook_any(a->event))
		v = hook_run(a);
	if (v == HOOK_DENY) {
		free(reason != NULL ? *reason : NULL);
		if (reason != NULL)
			*reason = a->deny_reason != NULL
			    ? a->deny_reason
			    : xstrdup("refused by a hook");
		else
			free(a->deny_reason);
		a->deny_reason = NULL;
		hook_args_free(a);
		/* A hook that failed (its policy denies) is the server's
		 * failure, not a refusal. */
		return a->deny_code == PROTO_ERR_INTERNAL ? PROTO_ERR_INTERNAL
							  : PROTO_ERR_REJECTED;
	}
	hook_args_free(a);
	return PROTO_OK;
}

/* Whether a client acting may moderate r (false for other actors,
 * whom chat_authorize does not ask). */
static bool
chat_may_moderate_by(const struct chat_actor *by, const struct room *r)
{
	return by->kind == CHAT_ACTOR_CLIENT &&
	    chat_may_moderate(by->client, r);
}

/* Who may take a moderation act: a client's request runs the hooks,
 * which may widen or narrow allowed (forbidden says why when they give
 * no reason); the admin API's runs them too, with itself as the actor;
 * a script's or a plugin's is its own authority. */
static enum proto_err
chat_authorize(const struct chat_actor *by, struct hook_args *a, bool allowed,
    const char *forbidden, char **reason)
{
	enum proto_err e;

	if (chat_by_admin(by))
		return chat_admin_decide(a, by, reason);
	if (by->kind != CHAT_ACTOR_CLIENT)
		return PROTO_OK;
	a->client = by->client;
	e = chat_decide(a, allowed, reason);
	if (e == PROTO_ERR_FORBIDDEN && reason && !*reason)
		chat_set_reason(reason, forbidden);
	return e;
}

/* The name to show for who acted. */
static const char *
chat_actor_username(const struct chat_actor *by)
{
	if (by->kind == CHAT_ACTOR_CLIENT)
		return by->client->name;
	return by->name != NULL ? by->name : "server";
}

/* A broadcast to every member and to the requester when it is not one
 * (an operator acting from outside). */
static void
chat_room_tell(struct room *r, const struct chat_actor *by, json_t *ev)
{
	struct buf *b = buf_json(ev);

	json_decref(ev);
	room_broadcast(r, b);
	if (by->kind == CHAT_ACTOR_CLIENT &&
	    room_membership(r, by->client) == NULL && !by->client->closing)
		conn_send(by->client, b);
	buf_unref(b);
}

enum proto_err
chat_set_topic(const struct chat_actor *by, struct room *r, const char *topic,
    size_t len, const json_t *id, char **reason)
{
	enum proto_err e;

	(void)id;
	if (len > CHAT_TOPIC_MAX) {
		chat_set_reason(reason, "a topic is at most 256 bytes");
		return PROTO_ERR_BAD_REQUEST;
	}
	if (memchr(topic, '\0', len) != NULL || !utf8_valid(topic, len)) {
		chat_set_reason(reason, "a topic is text");
		return PROTO_ERR_BAD_REQUEST;
	}
	{
		struct hook_args a = { .event = HOOK_TOPIC,
			.room = r,
			.text = topic,
			.text_len = len };
		e = chat_authorize(by, &a, chat_may_moderate_by(by, r),
		    "only the room's owner, its moderators and operators may "
		    "set the topic",
		    reason);
		if (e != PROTO_OK)
			return e;
	}
	free(r->topic);
	r->topic = len > 0 ? xstrndup(topic, len) : NULL;
	chat_room_save(r);
	chat_room_tell(r, by,
	    json_pack("{s:s, s:s%, s:s%, s:s}", "type", "topic_changed",
		"roomName", r->name, r->name_len, "topic", topic, len,
		"username", chat_actor_username(by)));
	return PROTO_OK;
}

enum proto_err
chat_delete_room(const struct chat_actor *by, struct room *r, const json_t *id,
    char **reason)
{
	(void)id;
	return chat_delete_room_why(by, r, NULL, reason);
}

enum proto_err
chat_delete_room_why(
    const struct chat_actor *by, struct room *r, const char *why, char **reason)
{
	enum proto_err e;

	{
		struct hook_args a = { .event = HOOK_DELETE_ROOM, .room = r };
		bool allowed = by->kind == CHAT_ACTOR_CLIENT &&
		    (chat_is_oper(by->client) || chat_is_owner(by->client, r));

		e = chat_authorize(by, &a, allowed,
		    "only the room's owner and operators may delete it",
		    reason);
		if (e != PROTO_OK)
			return e;
	}
	state_audit(by, "delete_room", r->name, r, why, 0);
	return chat_room_remove(by, r, why != NULL ? why : CHAT_ROOM_DELETED);
}

enum proto_err
chat_delete_message(const struct chat_actor *by, struct room *r, uint64_t seq,
    const json_t *id, char **reason)
{
	enum proto_err e;
	char text[24];

	(void)id;
	if (seq == 0 || seq > r->seq)
		return PROTO_ERR_MESSAGE_NOT_FOUND;
	{
		struct hook_args a = { .event = HOOK_DELETE_MESSAGE,
			.room = r,
			.text = text,
			.text_len = (size_t)snprintf(text, sizeof text, "%llu",
			    (unsigned long long)seq) };
		bool allowed = false;

		if (by->kind == CHAT_ACTOR_CLIENT) {
			const char *author = room_author(r, seq);
			char *mine = chat_member_key(by->client, false);

			allowed = chat_may_moderate(by->client, r) ||
			    (author != NULL && mine != NULL &&
				strcmp(author, mine) == 0);
			free(mine);
		}
		e = chat_authorize(by, &a, allowed,
		    "only its author, the room's moderators, its owner and "
		    "operators may delete a message",
		    reason);
		if (e != PROTO_OK)
			return e;
	}
	if (!history_delete(r, seq))
		return PROTO_ERR_MESSAGE_NOT_FOUND;
	snprintf(text, sizeof text, "%llu", (unsigned long long)seq);
	if (by->kind != CHAT_ACTOR_CLIENT || chat_may_moderate(by->client, r))
		state_audit(by, "delete_message", text, r, NULL, 0);
	chat_room_tell(r, by,
	    json_pack("{s:s, s:s%, s:I, s:s}", "type", "message_deleted",
		"roomName", r->name, r->name_len, "seq", (json_int_t)seq,
		"username", chat_actor_username(by)));
	return PROTO_OK;
}

enum proto_err
chat_set_role(const struct chat_actor *by, struct room *r,
    struct client *target, const char *role, char **reason)
{
	enum proto_err e;
	char *key;

	if (role != NULL && strcmp(role, CHAT_ROLE_MODERATOR) != 0) {
		chat_set_reason(reason, "the room role is \"moderator\"");
		return PROTO_ERR_BAD_REQUEST;
	}
	if (chat_is_owner(target, r)) {
		chat_set_reason(reason, "the owner's role is its own");
		return PROTO_ERR_FORBIDDEN;
	}
	{
		struct hook_args a = { .event = HOOK_ROLE,
			.room = r,
			.text = target->name,
			.text_len = strlen(target->name),
			.reason = role ? role : "" };
		e = chat_authorize(by, &a, chat_may_moderate_by(by, r),
		    "only the room's owner, its moderators and operators may "
		    "give or take roles",
		    reason);
		if (e != PROTO_OK)
			return e;
	}
	key = chat_member_key(target, true);
	if (role != NULL) {
		if (r->roles == NULL)
			r->roles = json_object();
		json_object_set_new(r->roles, key, json_string(role));
	} else if (r->roles != NULL)
		json_object_del(r->roles, key);
	free(key);
	chat_room_save(r);
	state_audit(by, role ? "op" : "deop", target->name, r, NULL, 0);
	chat_room_tell(r, by,
	    json_pack("{s:s, s:s%, s:s, s:s?}", "type", "role_changed",
		"roomName", r->name, r->name_len, "username", target->name,
		"role", role));
	return PROTO_OK;
}

/* ---- Bans and mutes */

/* The record key of a restriction on target in r. */
static char *
chat_restriction_key(const struct room *r, const char *member_key)
{
	char *k;

	xasprintf(&k, "%016llx/%s", (unsigned long long)r->rid, member_key);
	return k;
}

/* Whether the restriction record v names c: its account, or for a
 * guest its session or its address. */
static bool
chat_restriction_holds(const json_t *v, const struct client *c)
{
	const char *acc = json_string_value(json_object_get(v, "account"));
	const char *ses = json_string_value(json_object_get(v, "session"));
	const char *addr = json_string_value(json_object_get(v, "addr"));

	return (acc != NULL && c->account != NULL &&
		   strcmp(acc, c->account) == 0) ||
	    (ses != NULL && client_session_key_find(c) != NULL &&
		strcmp(ses, client_session_key_find(c)) == 0) ||
	    (addr != NULL && c->account == NULL && c->addr != NULL &&
		strcmp(addr, c->addr) == 0);
}

/* "you are muted" or "you are muted for N more seconds". */
static void
chat_mute_reason(const json_t *mute, char **reason)
{
	uint64_t until = (uint64_t)json_integer_value(
	    json_object_get(mute, "until"));
	uint64_t now = loop_wall_ms() / 1000;
	char *text;

	if (until == 0)
		text = xstrdup("you are muted");
	else
		xasprintf(&text, "you are muted for %llu more seconds",
		    (unsigned long long)(until > now ? until - now : 1));
	if (reason != NULL) {
		free(*reason);
		*reason = text;
	} else
		free(text);
}

/* A mute of some room that holds c now, or NULL. */
static const json_t *
chat_mute_anywhere(const struct client *c)
{
	json_t *v;
	const char *key;
	uint64_t now = loop_wall_ms() / 1000;

	json_object_foreach(state_all("mute"), key, v)
	{
		uint64_t until = (uint64_t)json_integer_value(
		    json_object_get(v, "until"));
		if ((until == 0 || until > now) && chat_restriction_holds(v, c))
			return v;
	}
	return NULL;
}

bool
chat_muted_anywhere(const struct client *c)
{
	return chat_mute_anywhere(c) != NULL;
}

/* The restriction (a "ban" or "mute" record) that holds c in r now, or
 * NULL; expired ones are lifted on the way. */
json_t *
chat_restriction(const char *kind, const struct room *r, const struct client *c)
{
	char prefix[20];
	json_t *all = state_all(kind), *v, *found = NULL;
	const char *key;
	uint64_t now = loop_wall_ms() / 1000;
	char **expired = NULL;
	size_t nexpired = 0;

	if (chat_is_oper(c) || chat_is_owner(c, r))
		return NULL;
	snprintf(prefix, sizeof prefix, "%016llx/", (unsigned long long)r->rid);
	json_object_foreach(all, key, v)
	{
		uint64_t until;
		if (strncmp(key, prefix, 17) != 0)
			continue;
		until = (uint64_t)json_integer_value(
		    json_object_get(v, "until"));
		if (until != 0 && until <= now) {
			expired = xreallocarray(
			    expired, nexpired + 1, sizeof *expired);
			expired[nexpired++] = xstrdup(key);
			continue;
		}
		if (chat_restriction_holds(v, c)) {
			found = v;
			break;
		}
	}
	for (size_t i = 0; i < nexpired; i++) {
		state_put_new(kind, expired[i], NULL);
		free(expired[i]);
	}
	free(expired);
	return found;
}

/* "until 2026-12-02 09:00 UTC" or "for good". */
static void
chat_until_text(uint64_t until, char *buf, size_t size)
{
	time_t t = (time_t)until;
	struct tm tm;

	if (until == 0) {
		snprintf(buf, size, "for good");
		return;
	}
	gmtime_r(&t, &tm);
	strftime(buf, size, "until %Y-%m-%d %H:%M:%S UTC", &tm);
}

static enum proto_err
chat_restrict(const char *kind, const struct chat_actor *by, struct room *r,
    struct client *target, uint64_t seconds, const char *why, char **reason)
{
	enum proto_err e;
	char *mkey, *key;
	uint64_t until = seconds ? loop_wall_ms() / 1000 + seconds : 0;
	json_t *rec;

	if (chat_is_oper(target) || chat_is_owner(target, r)) {
		chat_set_reason(reason,
		    "the room's owner and operators cannot be banned or "
		    "muted");
		return PROTO_ERR_FORBIDDEN;
	}
	{
		struct hook_args a = { .event = HOOK_MODERATION,
			.room = r,
			.text = target->name,
			.text_len = strlen(target->name),
			.reason = kind };
		if ((e = chat_authorize(by, &a, chat_may_moderate_by(by, r),
			 "only the room's owner, its moderators and "
			 "operators may do that",
			 reason)) != PROTO_OK)
			return e;
	}
	mkey = chat_member_key(target, true);
	key = chat_restriction_key(r, mkey);
	rec = json_pack("{s:s, s:s, s:I, s:s?, s:s, s:I}", "room", r->name,
	    "name", target->name, "until", (json_int_t)until, "reason", why,
	    "by", chat_actor_username(by), "set",
	    (json_int_t)(loop_wall_ms() / 1000));
	if (target->account != NULL)
		json_object_set_new(
		    rec, "account", json_string(target->account));
	else {
		json_object_set_new(
		    rec, "session", json_string(client_session_key(target)));
		/* Not an address many share and the per-address limits
		 * spare (loopback, a trusted proxy): it would hold them
		 * all. */
		if (target->addr != NULL && !http_address_exempt(target->addr))
			json_object_set_new(
			    rec, "addr", json_string(target->addr));
	}
	state_put_new(kind, key, rec);
	free(key);
	free(mkey);
	state_audit(by, kind, target->name, r, why, until);
	return PROTO_OK;
}

enum proto_err
chat_ban(const struct chat_actor *by, struct room *r, struct client *target,
    uint64_t seconds, const char *why, char **reason)
{
	enum proto_err e;
	char until[64], *text;

	e = chat_restrict("ban", by, r, target, seconds, why, reason);
	if (e != PROTO_OK)
		return e;
	chat_until_text(
	    seconds ? loop_wall_ms() / 1000 + seconds : 0, until, sizeof until);
	xasprintf(
	    &text, "banned %s%s%s", until, why ? ": " : "", why ? why : "");
	chat_leave_by = chat_by_admin(by) ? by : NULL;
	if (room_membership(r, target) != NULL)
		chat_member_remove(target, r, "kicked", text, NULL);
	chat_leave_by = NULL;
	free(text);
	return PROTO_OK;
}

enum proto_err
chat_mute(const struct chat_actor *by, struct room *r, struct client *target,
    uint64_t seconds, const char *why, char **reason)
{
	return chat_restrict("mute", by, r, target, seconds, why, reason);
}

/* Lifts kind's restrictions on name (as it was banned or muted, compared
 * as usernames are) in r; not_found... user_not_found when none. */
static enum proto_err
chat_lift(const char *kind, const struct chat_actor *by, struct room *r,
    const char *name, char **reason)
{
	char prefix[20];
	json_t *all = state_all(kind), *v;
	const char *key;
	char *want = client_key(name, strlen(name));
	struct client *c = client_find_by_name(name, strlen(name));
	char **drop = NULL;
	size_t n = 0;
	enum proto_err e;

	{
		struct hook_args a = { .event = HOOK_MODERATION,
			.room = r,
			.text = name,
			.text_len = strlen(name),
			.reason = strcmp(kind, "ban") == 0 ? "unban"
							   : "unmute" };
		e = chat_authorize(by, &a, chat_may_moderate_by(by, r),
		    "only the room's owner, its moderators and operators may "
		    "do that",
		    reason);
		if (e != PROTO_OK) {
			free(want);
			return e;
		}
	}
	snprintf(prefix, sizeof prefix, "%016llx/", (unsigned long long)r->rid);
	json_object_foreach(all, key, v)
	{
		const char *rname = json_string_value(
		    json_object_get(v, "name"));
		const char *acc = json_string_value(
		    json_object_get(v, "account"));
		const char *ses = json_string_value(
		    json_object_get(v, "session"));
		char *have;
		bool match;
		if (strncmp(key, prefix, 17) != 0)
			continue;
		have = rname ? client_key(rname, strlen(rname)) : NULL;
		match = (have != NULL && strcmp(have, want) == 0) ||
		    (c != NULL && acc != NULL && c->account != NULL &&
			strcmp(acc, c->account) == 0) ||
		    (c != NULL && ses != NULL &&
			client_session_key_find(c) != NULL &&
			strcmp(ses, client_session_key_find(c)) == 0);
		free(have);
		if (match) {
			drop = xreallocarray(drop, n + 1, sizeof *drop);
			drop[n++] = xstrdup(key);
		}
	}
	free(want);
	for (size_t i = 0; i < n; i++) {
		state_put_new(kind, drop[i], NULL);
		free(drop[i]);
	}
	free(drop);
	if (n == 0) {
		chat_set_reason(reason,
		    strcmp(kind, "ban") == 0
			? "nobody of that name is banned here"
			: "nobody of that name is muted here");
		return PROTO_ERR_USER_NOT_FOUND;
	}
	state_audit(by, strcmp(kind, "ban") == 0 ? "unban" : "unmute", name, r,
	    NULL, 0);
	return PROTO_OK;
}

enum proto_err
chat_unban(const struct chat_actor *by, struct room *r, const char *name,
    char **reason)
{
	return chat_lift("ban", by, r, name, reason);
}

enum proto_err
chat_unmute(const struct chat_actor *by, struct room *r, const char *name,
    char **reason)
{
	return chat_lift("mute", by, r, name, reason);
}

json_t *
chat_restrictions(const char *kind, const struct room *r)
{
	json_t *out = json_array(), *v;
	const char *key;
	char prefix[20];
	uint64_t now = loop_wall_ms() / 1000;

	snprintf(prefix, sizeof prefix, "%016llx/", (unsigned long long)r->rid);
	json_object_foreach(state_all(kind), key, v)
	{
		uint64_t until = (uint64_t)json_integer_value(
		    json_object_get(v, "until"));
		if (strncmp(key, prefix, 17) == 0 &&
		    (until == 0 || until > now))
			json_array_append(out, v);
	}
	return out;
}

/* A room is gone: its record, bans, mutes and tombstones go too. */
static void
chat_room_forget(struct room *r)
{
	static const char *const kinds[] = { "ban", "mute" };
	char prefix[20];

	snprintf(prefix, sizeof prefix, "%016llx/", (unsigned long long)r->rid);
	for (size_t k = 0; k < 2; k++) {
		json_t *all = state_all(kinds[k]), *v;
		const char *key;
		char **drop = NULL;
		size_t n = 0;
		json_object_foreach(all, key, v)
		{
			if (strncmp(key, prefix, 17) == 0) {
				drop = xreallocarray(drop, n + 1, sizeof *drop);
				drop[n++] = xstrdup(key);
			}
		}
		for (size_t i = 0; i < n; i++) {
			state_put_new(kinds[k], drop[i], NULL);
			free(drop[i]);
		}
		free(drop);
	}
	state_put_new("tomb", r->hkey, NULL);
	state_put_new("room", r->name, NULL);
}
/* ---- Direct messages and typing (protocol 1.1) */

/* Whether c may not send a direct message to target: muted (the role
 * "muted", server-wide: the mute scripts give; or in any room: a
 * direct message is no way around a room's mute), unless target is an
 * operator, whom a muted user may still reach. */
static bool
chat_direct_muted(const struct client *c, const struct client *target)
{
	if (!client_has_role(c, CHAT_ROLE_MUTED) && !chat_muted_anywhere(c))
		return false;
	return !client_has_role(target, CLIENT_ROLE_OPERATOR);
}

/* The recipient a direct message names: a connected client, here or on
 * another server (a remote member); NULL when there is none. */
static struct client *
chat_direct_target(const char *name, size_t len)
{
	struct client *t = client_find_by_name(name, len);

	if (t == NULL || t->dead || (t->closing && !t->remote))
		return NULL;
	return t;
}

/* Sends the direct message to both; a recipient on another server gets
 * it through the plugins that relay (plugin_relay_direct). */
static void
chat_direct_deliver(struct client *from, struct client *to, const char *text,
    size_t len, uint64_t ts)
{
	json_t *ev = json_pack("{s:s, s:s, s:s, s:s%, s:I}", "type",
	    "direct_message", "from", from->name, "to", to->name, "message",
	    text, len, "ts", (json_int_t)ts);
	struct buf *b = buf_json(ev);

	json_decref(ev);
	/* Not kept and not logged: only the two of them see it. */
	conn_send(from, b);
	if (to != from)
		conn_send(to, b);
	buf_unref(b);
	if (to->remote)
		plugin_relay_direct(from, to, text, len, ts);
}

enum proto_err
chat_direct(const struct chat_actor *by, struct client *c, const char *to,
    size_t to_len, const char *text, size_t len, const json_t *id,
    unsigned flags, char **reason)
{
	struct hook_args a = { .event = HOOK_DIRECT,
		.client = c,
		.text = text,
		.text_len = len,
		.id = id };
	enum proto_err e = PROTO_OK;
	bool dropped = false;
	struct client *t;

	(void)by;
	if ((t = chat_direct_target(to, to_len)) == NULL)
		return PROTO_ERR_USER_NOT_FOUND;
	if (len == 0) {
		chat_set_reason(reason, "empty message");
		return PROTO_ERR_BAD_REQUEST;
	}
	if (len > cfg->max_message_bytes)
		return chat_too_long(len, reason);
	if ((flags & CHAT_LIMITS) &&
	    !bucket_take(
		&c->rl_messages, cfg->messages_per_minute, cfg->message_burst))
		return PROTO_ERR_RATE_LIMITED;
	a.target = t;
	if (flags & CHAT_HOOKS)
		e = chat_run_hooks(&a, &dropped, reason);
	if (e == PROTO_OK && !dropped && a.new_text != NULL) {
		/* A hook's text gets the checks the client's got. */
		if (a.text_len == 0)
			dropped = true;
		else if (a.text_len > cfg->max_message_bytes)
			e = chat_too_long(a.text_len, reason);
		else if (!utf8_valid(a.text, a.text_len))
			e = PROTO_ERR_INTERNAL;
	}
	/* A hook may have muted or disconnected either of them. */
	if (e == PROTO_OK && !dropped && (c->dead || c->closing))
		dropped = true;
	if (e == PROTO_OK && !dropped && chat_direct_target(to, to_len) != t)
		e = PROTO_ERR_USER_NOT_FOUND;
	if (e == PROTO_OK && !dropped && chat_direct_muted(c, t)) {
		const json_t *mute = chat_mute_anywhere(c);
		if (mute != NULL && !client_has_role(c, CHAT_ROLE_MUTED))
			chat_mute_reason(mute, reason);
		else
			chat_set_reason(reason, "you are muted");
		e = PROTO_ERR_FORBIDDEN;
	}
	if (e == PROTO_OK && !dropped)
		chat_direct_deliver(c, t, a.text, a.text_len, loop_wall_ms());
	hook_args_free(&a);
	return e;
}

/* Passes a typing on to r's other members, at most once per member and
 * room every CHAT_TYPING_MS (counted from the last one passed on). The
 * time is kept in the membership, so it costs no memory per client and
 * goes with the membership. */
#define CHAT_TYPING_MS 3000u

enum proto_err
chat_typing(struct client *c, struct room *r)
{
	struct membership *m = room_membership(r, c);
	uint32_t now = (uint32_t)loop_now();
	json_t *ev;
	struct buf *b;

	if (m == NULL)
		return PROTO_ERR_NOT_IN_ROOM;
	/* Someone who may not speak is not shown as about to. */
	if (client_has_role(c, CHAT_ROLE_MUTED) ||
	    chat_restriction("mute", r, c) != NULL)
		return PROTO_OK;
	if (m->typed != 0 && now - m->typed < CHAT_TYPING_MS)
		return PROTO_OK; /* dropped without a word, as specified */
	m->typed = now != 0 ? now : 1;
	ev = json_pack("{s:s, s:s%, s:s}", "type", "typing", "roomName",
	    r->name, r->name_len, "username", c->name);
	b = buf_json(ev);
	json_decref(ev);
	for (struct membership *o = r->head; o != NULL; o = o->next) {
		if (o != m && !o->client->closing)
			conn_send(o->client, b);
	}
	buf_unref(b);
	if (!c->remote)
		plugin_relay_typing(c, r);
	return PROTO_OK;
}

/* ---- Resume (protocol 1.1): sessions that outlive a dropped
 * connection. A client whose connection ends without a close frame is
 * held (session.c) and stays in its rooms, silently, until a resume or
 * the grace's end; a resume moves the new connection onto the held client
 * object itself, so everything that names the client (its id, so the
 * rooms it owns, its memberships, its name, what scripts and plugins
 * hold) stays as it was. */

bool
chat_dropped(struct client *c)
{
	if (!session_hold(c))
		return false;
	log_info("core", "client %llu (%s): held %us for a resume",
	    (unsigned long long)c->id, c->name, cfg->resume_grace);
	return true;
}

/* resumed {username, account, roles, session, rooms: [{roomName, seq}]} */
static void
chat_send_resumed(struct client *c, const char *session, const json_t *id)
{
	json_t *rooms = json_array();

	for (uint32_t i = 0; i < c->nrooms; i++) {
		const struct room *r = client_room(c, i)->room;
		json_array_append_new(rooms,
		    json_pack("{s:s%, s:I}", "roomName", r->name, r->name_len,
			"seq", (json_int_t)r->seq));
	}
	proto_reply_new(c, id,
	    json_pack("{s:s, s:s, s:o, s:o, s:s, s:o}", "type", "resumed",
		"username", c->name, "account",
		c->account ? json_string(c->account) : json_null(), "roles",
		client_roles_public(c), "session", session, "rooms", rooms));
}

enum proto_err
chat_resume(struct client *c, const char *secret, size_t len, const json_t *id,
    char **reason)
{
	struct client *s = session_find(secret, len);
	struct hook_args a = { .event = HOOK_RESUME };
	char *fresh;

	/* One answer for every refusal: nothing to learn from it. A session
	 * whose connection the server is closing (a violation, a policy)
	 * is not held, so not resumable either. Resume turned off by a
	 * reload: the sessions still held run out. */
	uint8_t hash[32];

	if (s == NULL && cfg->resume_grace != 0 && c->lfd.fd != -1 &&
	    session_digest_of(secret, len, hash) &&
	    plugin_relay_resume(c, hash)) {
		/* Another server's, perhaps: a plugin answers (chat_adopt). */
		client_set_resume_id_new(
		    c, id != NULL ? json_deep_copy(id) : NULL);
		explicit_bzero(hash, sizeof hash);
		return PROTO_OK;
	}
	if (cfg->resume_grace == 0 || s == NULL || s == c || s->dead ||
	    (s->closing && !s->held) || c->lfd.fd == -1) {
		chat_set_reason(reason, "no such session");
		return PROTO_ERR_RESUME_FAILED;
	}
	session_resumed(s);
	conn_move(c, s, CHAT_CLOSE_RESUMED, "resumed elsewhere");
	s->spoke = true;
	fresh = session_issue(s);
	chat_send_resumed(s, fresh, id);
	explicit_bzero(fresh, strlen(fresh));
	free(fresh);
	log_info("core", "client %llu (%s) resumed in %u rooms",
	    (unsigned long long)s->id, s->name, s->nrooms);
	/* The connection's own client never was anyone: it goes quietly. */
	chat_disconnect(c, "resumed");
	a.client = s;
	chat_tell_hooks(&a);
	return PROTO_OK;
}

/* ---- Resume across servers: the session was another server's, whose
 * client is a remote member here (a plugin's); a plugin found it and
 * that server let it go (chat_vanish there). The remote member takes
 * over the connection and becomes local: same object, so the same name
 * and memberships, and no room is told anything. */

static void
chat_resume_done(struct client *c)
{
	c->resuming = false;
	json_decref(client_take_resume_id(c));
}

void
chat_resume_refuse(struct client *c)
{
	json_t *id;

	if (!c->resuming)
		return;
	id = client_take_resume_id(c);
	chat_resume_done(c);
	if (!c->dead && !c->closing)
		proto_send_error(
		    c, PROTO_ERR_RESUME_FAILED, id, NULL, "no such session");
	json_decref(id);
}

int
chat_adopt(struct client *c, struct client *r, const char *account,
    const char *const *roles, const char *session_key)
{
	struct hook_args a = { .event = HOOK_RESUME };
	json_t *id;
	char *fresh;

	if (!c->resuming || c->dead || c->closing || c->lfd.fd == -1 ||
	    r->dead || !r->remote || cfg->resume_grace == 0) {
		chat_resume_refuse(c);
		return -1;
	}
	id = client_take_resume_id(c);
	chat_resume_done(c);
	r->remote = false;
	/* A remote member held no place in the limits; the connection's
	 * place moves to it (conn_move gives up the one it held). */
	limit_conn_open(r->addr);
	conn_move_now(c, r);
	client_set_identity(r, account, roles);
	if (session_key != NULL)
		client_set_session_key(r, session_key);
	r->spoke = true;
	session_resumed(r);
	fresh = session_issue(r);
	if (fresh != NULL) {
		chat_send_resumed(r, fresh, id);
		explicit_bzero(fresh, strlen(fresh));
		free(fresh);
	}
	json_decref(id);
	log_info("core",
	    "client %llu (%s) resumed from another server in %u "
	    "rooms",
	    (unsigned long long)r->id, r->name, r->nrooms);
	chat_disconnect(c, "resumed");
	a.client = r;
	chat_tell_hooks(&a);
	return 0;
}

void
chat_moved(struct client *c)
{
	if (c->dead || c->remote)
		return;
	log_info("core", "client %llu (%s): resumed on another server",
	    (unsigned long long)c->id, c->name);
	if (c->held) {
		session_unhold(c);
		limit_conn_close(c->addr);
	} else
		conn_end(c, CHAT_CLOSE_RESUMED, "resumed elsewhere");
	chat_resume_done(c);
	session_forget(c);
	chat_expires(c, 0);
	client_set_identity(c, NULL, NULL);
	/* Its rooms are not told: the member goes on, on the other server;
	 * here it is that server's client now, as a remote member. */
	c->closing = true;
	c->remote = true;
}
