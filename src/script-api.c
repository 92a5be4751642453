/*
 * script-api.c: what a script can call: the parley table (hooks,
 * commands, lookups, actions, timers, logging, configuration, the store)
 * and the handles it is given for users, rooms and timers. A user or room
 * handle carries only a client id or a room name and is looked up again
 * on every use, so a handle kept after its user left raises a Lua error
 * instead of reaching freed memory. Handles are cached per state, so the
 * same user is the same value and a hook call allocates none. The store
 * is C memory and outlives the states a reload replaces.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <nettle/sha2.h>

#include "parley.h"
#include "config-table.h"
#include "script.h"

#define SCRIPT_STORE_MAX (16u << 20) /* bytes in the store, keys included */
#define SCRIPT_STORE_KEY_MAX 256
#define SCRIPT_ROLE_MAX 32
#define SCRIPT_REASON_MAX 512 /* a refusal reason kept in C for a moment */
#define SCRIPT_CLOSE_REASON_MAX 123 /* a close frame's payload less the code */

/* A room handle: the name, looked up on use. */
struct script_room {
	size_t len;
	char name[];
};

/* The running script as the actor of a chat action. */
#define SCRIPT_ACTOR(L) CHAT_BY(CHAT_ACTOR_SCRIPT, script_running_owner(L))

static json_t *script_store;    /* key -> string, number or boolean */
static size_t script_store_bytes;

static struct script *
script_self(lua_State *L)
{
	return lua_touserdata(L, lua_upvalueindex(1));
}

/* Returns nil, reason, code: how every action reports a refusal. */
static int
script_refuse(lua_State *L, const char *reason, enum proto_err code)
{
	lua_pushnil(L);
	if (reason != NULL)
		lua_pushstring(L, reason);
	else
		lua_pushnil(L);
	lua_pushstring(L, proto_err_code(code));
	return 3;
}

/* Copies a C reason to the stack buffer and frees it, so that pushing it
 * afterwards (which may raise) leaks nothing. */
static const char *
script_take_reason(char *reason, char *buf, size_t size)
{
	if (reason == NULL)
		return NULL;
	snprintf(buf, size, "%s", reason);
	free(reason);
	return buf;
}

/* ------------------------------------------------------------------ */
/* Users */

void
script_push_user(lua_State *L, struct client *c)
{
	struct script_state *st = script_state_of(L);
	uint64_t *id;

	lua_rawgeti(L, LUA_REGISTRYINDEX, st->users);
	if (lua_rawgeti(L, -1, (lua_Integer)c->id) == LUA_TNIL) {
		lua_pop(L, 1);
		id = lua_newuserdatauv(L, sizeof *id, 0);
		*id = c->id;
		luaL_setmetatable(L, SCRIPT_USER_MT);
		lua_pushvalue(L, -1);
		lua_rawseti(L, -3, (lua_Integer)c->id);
	}
	lua_remove(L, -2);
}

/* The client of the handle at idx; raises when it has left (live: or
 * is leaving, during its disconnect hooks). */
static struct client *
script_check_user(lua_State *L, int idx, bool live)
{
	uint64_t id = *(uint64_t *)luaL_checkudata(L, idx, SCRIPT_USER_MT);
	struct client *c = client_find_by_id(id);

	if (c == NULL || (live && c->dead))
		luaL_error(L, "user %I has left", (lua_Integer)id);
	return c;
}

/* A room handle or a room name; raises when there is no such room. */
static struct room *
script_check_room(lua_State *L, int idx)
{
	struct script_room *h;
	struct room *r;
	const char *name;
	size_t len;

	if (lua_type(L, idx) == LUA_TSTRING) {
		name = lua_tolstring(L, idx, &len);
		if ((r = room_find(name, len)) == NULL)
			luaL_error(L, "there is no room named %s", name);
		return r;
	}
	h = luaL_testudata(L, idx, SCRIPT_ROOM_MT);
	if (h == NULL)
		luaL_typeerror(L, idx, "room or room name");
	if ((r = room_find(h->name, h->len)) == NULL)
		luaL_error(L, "room %s no longer exists", h->name);
	return r;
}

static int
script_user_notice(lua_State *L)
{
	struct client *c = script_check_user(L, 1, true);
	const char *text = script_check_text(L, 2, SCRIPT_TEXT_MAX, NULL);
	struct room *r = lua_isnoneornil(L, 3) ? NULL :
	    script_check_room(L, 3);

	chat_notice(c, r, text, NULL);
	return 0;
}

static int
script_user_kick(lua_State *L)
{
	struct client *c = script_check_user(L, 1, true);
	struct room *r = script_check_room(L, 2);
	const char *reason = lua_isnoneornil(L, 3) ? "" :
	    script_check_text(L, 3, SCRIPT_REASON_MAX, NULL);

	if (chat_kick(SCRIPT_ACTOR(L), c, r, reason, NULL) != PROTO_OK)
		return script_refuse(L, "not in that room",
		    PROTO_ERR_NOT_IN_ROOM);
	lua_pushboolean(L, 1);
	return 1;
}

/* user:disconnect([reason]): closes the user's connection (1008). */
static int
script_user_disconnect(lua_State *L)
{
	struct client *c = script_check_user(L, 1, true);
	const char *reason = lua_isnoneornil(L, 2) ? "" :
	    script_check_text(L, 2, SCRIPT_CLOSE_REASON_MAX, NULL);

	chat_close(SCRIPT_ACTOR(L), c, reason);
	return 0;
}

/* user:rename(name [, {hooks = bool, id = request id}]): with hooks, as
 * if the user had asked (set_username): hooks and rate limit. */
static int
script_user_rename(lua_State *L)
{
	struct client *c = script_check_user(L, 1, true);
	size_t len, idlen = 0;
	const char *name = luaL_checklstring(L, 2, &len), *idstr = NULL;
	bool hooks = false, has_id = false;
	lua_Integer idnum = 0;
	char *reason = NULL, buf[SCRIPT_REASON_MAX];
	json_t *id = NULL;
	enum proto_err e;

	if (!lua_isnoneornil(L, 3)) {
		luaL_checktype(L, 3, LUA_TTABLE);
		lua_getfield(L, 3, "hooks");
		hooks = lua_toboolean(L, -1);
		lua_getfield(L, 3, "id");
		if (lua_isinteger(L, -1)) {
			idnum = lua_tointeger(L, -1);
			has_id = true;
		} else if (lua_type(L, -1) == LUA_TSTRING)
			idstr = lua_tolstring(L, -1, &idlen);
	}
	/* From here to the pushes nothing may raise: id is C memory. */
	if (has_id)
		id = json_integer((json_int_t)idnum);
	else if (idstr != NULL)
		id = json_stringn(idstr, idlen);
	/* With hooks, as the user's own request: their rate limit too. */
	e = chat_rename(SCRIPT_ACTOR(L), c, name, len, id, hooks ?
	    CHAT_AS_CLIENT : 0, &reason);
	json_decref(id);
	if (e == PROTO_OK) {
		free(reason);
		lua_pushboolean(L, 1);
		return 1;
	}
	return script_refuse(L, script_take_reason(reason, buf, sizeof buf),
	    e);
}

/* user:say(room, text [, action]): as if the user had sent it, message
 * hooks included; refusals come back as nil, reason, code. */
static int
script_user_say(lua_State *L)
{
	struct client *c = script_check_user(L, 1, true);
	struct room *r = script_check_room(L, 2);
	size_t len;
	const char *text = script_check_text(L, 3, SIZE_MAX, &len);
	bool action = lua_toboolean(L, 4);
	char *reason = NULL, buf[SCRIPT_REASON_MAX];
	enum proto_err e;

	/* From here to the pushes nothing may raise: reason is C memory. */
	e = chat_say(SCRIPT_ACTOR(L), c, r, text, len, action, NULL,
	    CHAT_HOOKS, &reason);
	if (e != PROTO_OK)
		return script_refuse(L, script_take_reason(reason, buf,
		    sizeof buf), e);
	free(reason);
	lua_pushboolean(L, 1);
	return 1;
}

/* user:direct(to, text): a direct message from the user to to (a user
 * or a name), as if the user had sent it, direct hooks included;
 * refusals come back as nil, reason, code. */
static int
script_user_direct(lua_State *L)
{
	struct client *c = script_check_user(L, 1, true), *t;
	size_t tlen, len;
	const char *to, *text;
	char *reason = NULL, buf[SCRIPT_REASON_MAX];
	enum proto_err e;

	if (lua_type(L, 2) == LUA_TSTRING)
		to = lua_tolstring(L, 2, &tlen);
	else {
		t = script_check_user(L, 2, true);
		to = t->name;
		tlen = strlen(to);
	}
	text = script_check_text(L, 3, SIZE_MAX, &len);
	/* From here to the pushes nothing may raise: reason is C memory. */
	e = chat_direct(SCRIPT_ACTOR(L), c, to, tlen, text, len, NULL,
	    CHAT_HOOKS, &reason);
	if (e != PROTO_OK)
		return script_refuse(L, script_take_reason(reason, buf,
		    sizeof buf), e);
	free(reason);
	lua_pushboolean(L, 1);
	return 1;
}

static const char *
script_check_role(lua_State *L, int idx)
{
	size_t len;
	const char *role = luaL_checklstring(L, idx, &len);

	if (len == 0 || len > SCRIPT_ROLE_MAX || memchr(role, '\0', len) ||
	    !utf8_valid(role, len))
		luaL_argerror(L, idx, "a role is 1 to 32 bytes of text");
	return role;
}

static int
script_user_has_role(lua_State *L)
{
	struct client *c = script_check_user(L, 1, false);

	lua_pushboolean(L, client_has_role(c, script_check_role(L, 2)));
	return 1;
}

static int
script_user_add_role(lua_State *L)
{
	struct client *c = script_check_user(L, 1, true);

	if (client_add_role(c, script_check_role(L, 2)) == -1)
		return luaL_error(L, "the server knows 32 role names already");
	return 0;
}

static int
script_user_remove_role(lua_State *L)
{
	struct client *c = script_check_user(L, 1, false);

	client_remove_role(c, script_check_role(L, 2));
	return 0;
}

static int
script_user_in_room(lua_State *L)
{
	struct client *c = script_check_user(L, 1, false);

	lua_pushboolean(L, room_membership(script_check_room(L, 2), c) != NULL);
	return 1;
}

/* Pushes a JSON array of strings as a Lua list; j is guarded. */
static void
script_push_list(lua_State *L, json_t *j)
{
	size_t i;
	json_t *v;

	script_json_guard(L, j);
	lua_createtable(L, (int)json_array_size(j), 0);
	json_array_foreach(j, i, v) {
		lua_pushstring(L, json_string_value(v));
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	lua_remove(L, -2);
}

static int
script_user_index(lua_State *L)
{
	struct script_state *st;
	uint64_t id = *(uint64_t *)lua_touserdata(L, 1);
	const char *k;
	struct client *c;

	lua_pushvalue(L, 2);
	if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
		return 1; /* a method */
	if ((k = lua_tostring(L, 2)) == NULL)
		return 0;
	if (strcmp(k, "id") == 0) {
		lua_pushinteger(L, (lua_Integer)id);
		return 1;
	}
	c = client_find_by_id(id);
	if (strcmp(k, "connected") == 0) {
		lua_pushboolean(L, c != NULL && !c->dead);
		return 1;
	}
	if (c == NULL)
		return luaL_error(L, "user %I has left", (lua_Integer)id);
	if (strcmp(k, "name") == 0)
		lua_pushstring(L, c->name);
	else if (strcmp(k, "address") == 0)
		lua_pushstring(L, c->addr);
	else if (strcmp(k, "account") == 0) {
		if (c->account != NULL)
			lua_pushstring(L, c->account);
		else
			lua_pushnil(L);
	} else if (strcmp(k, "authenticated") == 0)
		lua_pushboolean(L, c->account != NULL);
	else if (strcmp(k, "key") == 0) {
		if (c->account != NULL)
			lua_pushfstring(L, "account:%s", c->account);
		else
			lua_pushfstring(L, "%I", (lua_Integer)id);
	}
	else if (strcmp(k, "roles") == 0)
		script_push_list(L, client_roles(c));
	else if (strcmp(k, "rooms") == 0) {
		lua_createtable(L, (int)c->nrooms, 0);
		for (size_t i = 0; i < c->nrooms; i++) {
			script_push_room(L, client_room(c, i)->room);
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
	} else if (strcmp(k, "data") == 0) {
		st = script_state_of(L);
		lua_rawgeti(L, LUA_REGISTRYINDEX, st->data);
		if (lua_rawgeti(L, -1, (lua_Integer)id) == LUA_TNIL) {
			lua_pop(L, 1);
			lua_newtable(L);
			lua_pushvalue(L, -1);
			lua_rawseti(L, -3, (lua_Integer)id);
		}
	} else
		lua_pushnil(L);
	return 1;
}

static int
script_user_newindex(lua_State *L)
{
	return luaL_error(L, "user handles are read-only; keep data in "
	    "user.data");
}

static int
script_user_tostring(lua_State *L)
{
	uint64_t id = *(uint64_t *)lua_touserdata(L, 1);
	struct client *c = client_find_by_id(id);

	lua_pushfstring(L, "user %I (%s)", (lua_Integer)id,
	    c ? c->name : "gone");
	return 1;
}

void
script_api_forget(lua_State *L, uint64_t id)
{
	struct script_state *st = script_state_of(L);
	int refs[] = { st->users, st->data };

	for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, refs[i]);
		if (lua_rawgeti(L, -1, (lua_Integer)id) != LUA_TNIL) {
			lua_pushnil(L);
			lua_rawseti(L, -3, (lua_Integer)id);
		}
		lua_pop(L, 2);
	}
}

/* ------------------------------------------------------------------ */
/* Rooms */

void
script_push_room(lua_State *L, struct room *r)
{
	struct script_state *st = script_state_of(L);
	struct script_room *h;

	lua_rawgeti(L, LUA_REGISTRYINDEX, st->rooms);
	if (lua_rawgetp(L, -1, r) == LUA_TUSERDATA) {
		h = lua_touserdata(L, -1);
		/* Keyed by address: make sure it is still that room. */
		if (h->len == r->name_len &&
		    memcmp(h->name, r->name, h->len) == 0) {
			lua_remove(L, -2);
			return;
		}
	}
	lua_pop(L, 1);
	h = lua_newuserdatauv(L, sizeof *h + r->name_len + 1, 0);
	h->len = r->name_len;
	memcpy(h->name, r->name, r->name_len + 1);
	luaL_setmetatable(L, SCRIPT_ROOM_MT);
	lua_pushvalue(L, -1);
	lua_rawsetp(L, -3, r);
	lua_remove(L, -2);
}

static int
script_room_notice(lua_State *L)
{
	struct room *r = script_check_room(L, 1);

	chat_notice_room(r, script_check_text(L, 2, SCRIPT_TEXT_MAX, NULL));
	return 0;
}

/* room:say(text [, action]): a message from "server", no hooks. */
static int
script_room_say(lua_State *L)
{
	struct room *r = script_check_room(L, 1);
	size_t len;
	const char *text = script_check_text(L, 2, cfg->max_message_bytes,
	    &len);

	if (len == 0)
		luaL_argerror(L, 2, "empty message");
	chat_post(r, NULL, "server", text, len, lua_toboolean(L, 3), NULL);
	return 0;
}

/* room:remove([reason]): members are kicked, the room goes. */
static int
script_room_remove(lua_State *L)
{
	struct room *r = script_check_room(L, 1);
	const char *why = lua_isnoneornil(L, 2) ? CHAT_ROOM_DELETED :
	    script_check_text(L, 2, SCRIPT_REASON_MAX, NULL);

	chat_room_remove(SCRIPT_ACTOR(L), r, why);
	return 0;
}

static int
script_room_has(lua_State *L)
{
	struct room *r = script_check_room(L, 1);
	uint64_t id = *(uint64_t *)luaL_checkudata(L, 2, SCRIPT_USER_MT);
	struct client *c = client_find_by_id(id);

	lua_pushboolean(L, c != NULL && room_membership(r, c) != NULL);
	return 1;
}

static int
script_room_index(lua_State *L)
{
	struct script_room *h = lua_touserdata(L, 1);
	struct membership *m;
	struct client *owner;
	const char *k;
	struct room *r;
	lua_Integer i = 1;

	lua_pushvalue(L, 2);
	if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
		return 1;
	if ((k = lua_tostring(L, 2)) == NULL)
		return 0;
	if (strcmp(k, "name") == 0) {
		lua_pushlstring(L, h->name, h->len);
		return 1;
	}
	r = room_find(h->name, h->len);
	if (strcmp(k, "exists") == 0) {
		lua_pushboolean(L, r != NULL);
		return 1;
	}
	if (r == NULL)
		return luaL_error(L, "room %s no longer exists", h->name);
	if (strcmp(k, "count") == 0)
		lua_pushinteger(L, (lua_Integer)r->count);
	else if (strcmp(k, "owner_id") == 0)
		lua_pushinteger(L, (lua_Integer)room_owner_id(r));
	else if (strcmp(k, "topic") == 0)
		lua_pushstring(L, r->topic ? r->topic : "");
	else if (strcmp(k, "id") == 0) {
		char hex[17];
		snprintf(hex, sizeof hex, "%016llx", (unsigned long long)r->rid);
		lua_pushstring(L, hex);
	} else if (strcmp(k, "owner_account") == 0) {
		if (r->owner_account != NULL)
			lua_pushstring(L, r->owner_account);
		else
			lua_pushnil(L);
	} else if (strcmp(k, "owner") == 0) {
		uint64_t oid = room_owner_id(r);
		owner = oid ? client_find_by_id(oid) : NULL;
		if (owner != NULL && !owner->dead)
			script_push_user(L, owner);
		else
			lua_pushnil(L);
	} else if (strcmp(k, "members") == 0) {
		lua_createtable(L, (int)r->count, 0);
		for (m = r->head; m != NULL; m = m->next) {
			script_push_user(L, m->client);
			lua_rawseti(L, -2, i++);
		}
	} else
		lua_pushnil(L);
	return 1;
}

static int
script_room_newindex(lua_State *L)
{
	return luaL_error(L, "room handles are read-only");
}

static int
script_room_tostring(lua_State *L)
{
	struct script_room *h = lua_touserdata(L, 1);

	lua_pushfstring(L, "room %s", h->name);
	return 1;
}

/* ------------------------------------------------------------------ */
/* Timers */

static struct script_timer *
script_check_timer(lua_State *L, int idx)
{
	return luaL_checkudata(L, idx, SCRIPT_TIMER_MT);
}

static int
script_timer_cancel(lua_State *L)
{
	script_timer_stop(L, script_check_timer(L, 1));
	return 0;
}

static int
script_timer_index(lua_State *L)
{
	struct script_timer *t = lua_touserdata(L, 1);
	const char *k = lua_tostring(L, 2);

	if (k != NULL && strcmp(k, "cancel") == 0)
		lua_pushcfunction(L, script_timer_cancel);
	else if (k != NULL && strcmp(k, "pending") == 0)
		lua_pushboolean(L, t->pending);
	else
		lua_pushnil(L);
	return 1;
}

static int
script_timer_new(lua_State *L, bool repeat)
{
	struct script *s = script_self(L);
	lua_Number sec = luaL_checknumber(L, 1);
	lua_Number min = repeat ? 0.01 : 0;
	struct script_timer *t;

	luaL_checktype(L, 2, LUA_TFUNCTION);
	if (!(sec >= min && sec <= 31536000))
		luaL_argerror(L, 1, repeat ? "seconds from 0.01 to a year" :
		    "seconds from 0 to a year");
	if (s->ntimers >= SCRIPT_MAX_TIMERS)
		return luaL_error(L, "too many timers (at most %d per script)",
		    SCRIPT_MAX_TIMERS);
	t = lua_newuserdatauv(L, sizeof *t, 1);
	memset(t, 0, sizeof *t);
	t->ref = LUA_NOREF;
	luaL_setmetatable(L, SCRIPT_TIMER_MT);
	lua_pushvalue(L, 2);
	lua_setiuservalue(L, -2, 1);
	lua_pushvalue(L, -1);
	t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
	t->script = s;
	t->delay_ms = (uint64_t)(sec * 1000 + 0.5);
	t->interval_ms = repeat ? (t->delay_ms ? t->delay_ms : 1) : 0;
	t->pending = true;
	t->next = s->timers;
	if (s->timers != NULL)
		s->timers->prev = t;
	s->timers = t;
	s->ntimers++;
	script_timer_start(t);
	return 1;
}

static int
script_after(lua_State *L)
{
	return script_timer_new(L, false);
}

static int
script_every(lua_State *L)
{
	return script_timer_new(L, true);
}

/* ------------------------------------------------------------------ */
/* The parley table */

/* The event named by the string at idx; raises when there is none. */
static enum hook_event
script_check_event(lua_State *L, int idx)
{
	const char *name = luaL_checkstring(L, idx);

	for (int ev = 0; ev < HOOK_COUNT; ev++) {
		if (strcmp(name, hook_event_name((enum hook_event)ev)) == 0)
			return (enum hook_event)ev;
	}
	return (enum hook_event)luaL_argerror(L, idx, "not an event (connect, "
	    "username, create_room, join, message, leave, disconnect, start, "
	    "stop, tick, post, renamed, room_created, room_removed, reload)");
}

static int
script_on(lua_State *L)
{
	struct script *s = script_self(L);
	enum hook_event ev = script_check_event(L, 1);
	lua_Integer prio = luaL_optinteger(L, 3, 0);

	luaL_checktype(L, 2, LUA_TFUNCTION);
	if (prio < -1000000 || prio > 1000000)
		return luaL_argerror(L, 3, "priority from -1000000 to 1000000");
	script_hook_new(L, s, ev, 2, (int)prio);
	return 0;
}

/* parley.off(event, fn): removes the hook parley.on added; true when
 * there was one. */
static int
script_off(lua_State *L)
{
	struct script *s = script_self(L);
	enum hook_event ev = script_check_event(L, 1);

	luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_pushboolean(L, script_hook_remove(L, s, ev, 2));
	return 1;
}

/* parley.command(name, [{help = ..., usage = ...},] fn) */
static int
script_command(lua_State *L)
{
	struct script *s = script_self(L);
	size_t len;
	const char *name = luaL_checklstring(L, 1, &len);
	const char *help = NULL, *usage = NULL;
	struct script_command *cmd, **tail;
	int fn = 3, ref;

	if (!command_name_ok(name, len))
		return luaL_argerror(L, 1, "command names are 1 to 32 of a-z, "
		    "0-9, _ and -");
	if (lua_type(L, 2) == LUA_TFUNCTION && lua_isnone(L, 3))
		fn = 2;
	else if (!lua_isnil(L, 2)) {
		luaL_checktype(L, 2, LUA_TTABLE);
		lua_getfield(L, 2, "help");
		if (!lua_isnil(L, -1))
			help = script_check_text(L, -1, 1024, NULL);
		lua_getfield(L, 2, "usage");
		if (!lua_isnil(L, -1))
			usage = script_check_text(L, -1, 256, NULL);
	}
	luaL_checktype(L, fn, LUA_TFUNCTION);
	if (s->ncommands >= SCRIPT_MAX_COMMANDS)
		return luaL_error(L, "too many commands (at most %d per script)",
		    SCRIPT_MAX_COMMANDS);
	lua_pushvalue(L, fn);
	ref = luaL_ref(L, LUA_REGISTRYINDEX); /* may raise: before xcalloc */
	cmd = xcalloc(1, sizeof *cmd);
	cmd->script = s;
	cmd->name = xstrndup(name, len);
	cmd->usage = usage ? xstrdup(usage) : NULL;
	cmd->help = help ? xstrdup(help) : NULL;
	cmd->fn = ref;
	for (tail = &s->commands; *tail != NULL; tail = &(*tail)->next)
		;
	*tail = cmd;
	s->ncommands++;
	script_command_attach(cmd);
	return 0;
}

struct script_cmd_list {
	const char **v; /* name, usage, help per command */
	size_t n;
};

static void
script_commands_count(const char *name, const char *usage, const char *help,
    void *arg)
{
	((struct script_cmd_list *)arg)->n++;
}

static void
script_commands_fill(const char *name, const char *usage, const char *help,
    void *arg)
{
	struct script_cmd_list *l = arg;

	l->v[l->n * 3] = name;
	l->v[l->n * 3 + 1] = usage;
	l->v[l->n * 3 + 2] = help;
	l->n++;
}

/* parley.commands(): every registered command, scripts' and plugins',
 * as {name, usage, help} in name order. */
static int
script_commands(lua_State *L)
{
	struct script_cmd_list l = { 0 };
	size_t n;

	command_each(script_commands_count, &l);
	n = l.n;
	/* Collected into Lua memory first: pushing may raise, and
	 * command_each must not be unwound through. */
	l.v = lua_newuserdatauv(L, (n ? n : 1) * 3 * sizeof *l.v, 0);
	l.n = 0;
	command_each(script_commands_fill, &l);
	lua_createtable(L, (int)n, 0);
	for (size_t i = 0; i < l.n && i < n; i++) {
		lua_createtable(L, 0, 3);
		lua_pushstring(L, l.v[i * 3]);
		lua_setfield(L, -2, "name");
		if (l.v[i * 3 + 1] != NULL) {
			lua_pushstring(L, l.v[i * 3 + 1]);
			lua_setfield(L, -2, "usage");
		}
		lua_pushstring(L, l.v[i * 3 + 2] ? l.v[i * 3 + 2] : "");
		lua_setfield(L, -2, "help");
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	return 1;
}

static int
script_user(lua_State *L)
{
	struct client *c = NULL;
	size_t len;
	const char *name;

	if (lua_isinteger(L, 1))
		c = client_find_by_id((uint64_t)lua_tointeger(L, 1));
	else {
		name = luaL_checklstring(L, 1, &len);
		c = client_find_by_name(name, len);
	}
	if (c == NULL || c->dead)
		return 0;
	script_push_user(L, c);
	return 1;
}

static int
script_users(lua_State *L)
{
	lua_Integer i = 1;

	lua_createtable(L, (int)client_count, 0);
	for (struct client *c = clients; c != NULL; c = c->next) {
		if (c->dead)
			continue;
		script_push_user(L, c);
		lua_rawseti(L, -2, i++);
	}
	return 1;
}

static int
script_room(lua_State *L)
{
	size_t len;
	const char *name = luaL_checklstring(L, 1, &len);
	struct room *r = room_find(name, len);

	if (r == NULL)
		return 0;
	script_push_room(L, r);
	return 1;
}

/* Appends r to the list on top of the stack (may raise: room_each
 * holds nothing that a jump out of it would leak). */
static int
script_rooms_add(struct room *r, void *arg)
{
	lua_State *L = arg;

	script_push_room(L, r);
	lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
	return 0;
}

static int
script_rooms(lua_State *L)
{
	lua_createtable(L, (int)room_count(), 0);
	room_each(script_rooms_add, L);
	return 1;
}

static int
script_create_room(lua_State *L)
{
	size_t len;
	const char *name = luaL_checklstring(L, 1, &len);
	char *reason = NULL, buf[SCRIPT_REASON_MAX];
	struct room *r;
	enum proto_err e;

	e = chat_room_create(SCRIPT_ACTOR(L), name, len, NULL, &r, &reason);
	if (e != PROTO_OK)
		return script_refuse(L, script_take_reason(reason, buf,
		    sizeof buf), e);
	free(reason);
	if (r == NULL)
		return script_refuse(L, NULL, PROTO_ERR_REJECTED);
	script_push_room(L, r);
	return 1;
}

static int
script_log_fn(lua_State *L)
{
	struct script *s = script_self(L);
	int level = log_level_parse(luaL_checkstring(L, 1));
	int n = lua_gettop(L);
	luaL_Buffer b;

	if (level < 0)
		return luaL_argerror(L, 1, "error, warn, info or debug");
	if (log_level < level)
		return 0;
	luaL_buffinit(L, &b);
	for (int i = 2; i <= n; i++) {
		if (i > 2)
			luaL_addchar(&b, ' ');
		luaL_tolstring(L, i, NULL);
		luaL_addvalue(&b);
	}
	luaL_pushresult(&b);
	script_log_message(level, s, lua_tostring(L, -1));
	return 0;
}

static int
script_now(lua_State *L)
{
	lua_pushnumber(L, (lua_Number)loop_now() / 1000);
	return 1;
}

static int
script_time(lua_State *L)
{
	lua_pushnumber(L, (lua_Number)loop_wall_ms() / 1000);
	return 1;
}

/* parley.check_oper_password(text [, user]): true or false; nil when no
 * password is configured. Wrong guesses are limited per address and
 * server-wide (limit.c): while a guess would not be checked, the answer
 * is false and the seconds to wait. The comparison takes the same time
 * wherever the first difference lies. */
static int
script_check_oper_password(lua_State *L)
{
	struct script_state *st = script_state_of(L);
	size_t len;
	const char *pw = luaL_checklstring(L, 1, &len);
	const struct client *c = lua_isnoneornil(L, 2) ? NULL :
	    script_check_user(L, 2, false);
	const char *addr = c != NULL ? c->addr : NULL;
	uint8_t digest[SHA256_DIGEST_SIZE];
	static const char hex[] = "0123456789abcdef";
	struct sha256_ctx ctx;
	unsigned diff = 0, wait;

	if (st->oper_hash == NULL || strlen(st->oper_hash) !=
	    2 * SHA256_DIGEST_SIZE)
		return 0;
	if ((wait = limit_oper_wait(addr)) != 0) {
		lua_pushboolean(L, 0);
		lua_pushinteger(L, wait);
		return 2;
	}
	sha256_init(&ctx);
	sha256_update(&ctx, len, (const uint8_t *)pw);
	sha256_digest(&ctx, sizeof digest, digest);
	for (size_t i = 0; i < SHA256_DIGEST_SIZE; i++) {
		diff |= (unsigned)(hex[digest[i] >> 4] ^ st->oper_hash[2 * i]);
		diff |= (unsigned)(hex[digest[i] & 15] ^
		    st->oper_hash[2 * i + 1]);
	}
	limit_oper_result(addr, diff == 0);
	lua_pushboolean(L, diff == 0);
	return 1;
}

/* parley.name_key(text): the key names are compared by (name.c): equal
 * keys, look-alike names. nil and the reason for text that is not UTF-8
 * or is over 1024 bytes. */
static int
script_name_key(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	char *k, *cause = NULL;

	if (name_key(s, len, &k, &cause) == -1) {
		lua_pushnil(L);
		lua_pushstring(L, cause);
		free(cause);
		return 2;
	}
	lua_pushstring(L, k);
	free(k);
	return 1;
}

/* parley.name_check(text): true, or false and why, by the characters the
 * server refuses in any name (spaces but U+0020, invisible ones, bidi
 * controls, ...). */
static int
script_name_check(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	char *cause = NULL;

	if (name_check(s, len, &cause) == -1) {
		lua_pushboolean(L, 0);
		lua_pushstring(L, cause);
		free(cause);
		return 2;
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* parley.config.KEY: the value in force, read-only. The operator
 * password and the scripts' settings are not here (parley.settings
 * holds a script's own). */
static int
script_config_index(lua_State *L)
{
	const char *key = lua_tostring(L, 2);
	const struct config_option *o = NULL;
	const struct strlist *l;
	void *p;

	for (size_t i = 0; key != NULL && i < config_noptions; i++) {
		if (strcmp(config_options[i].name, key) == 0) {
			o = &config_options[i];
			break;
		}
	}
	if (o == NULL || strcmp(o->name, "oper_password") == 0 ||
	    strcmp(o->name, "admin_tokens") == 0 ||
	    o->type == CONFIG_JSON)
		return 0;
	p = (char *)cfg + o->offset;
	switch (o->type) {
	case CONFIG_STRING:
		if (*(char **)p == NULL)
			return 0;
		lua_pushstring(L, *(char **)p);
		break;
	case CONFIG_INT:
		lua_pushinteger(L, *(int *)p);
		break;
	case CONFIG_UINT:
		lua_pushinteger(L, *(unsigned *)p);
		break;
	case CONFIG_SIZE:
		lua_pushinteger(L, (lua_Integer)*(size_t *)p);
		break;
	case CONFIG_BOOL:
		lua_pushboolean(L, *(bool *)p);
		break;
	case CONFIG_STRLIST:
		l = p;
		lua_createtable(L, (int)l->n, 0);
		for (size_t i = 0; i < l->n; i++) {
			lua_pushstring(L, l->v[i]);
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
		break;
	case CONFIG_LOG_LEVEL:
		lua_pushstring(L, log_level_name(*(int *)p));
		break;
	case CONFIG_JSON:
		return 0;
	}
	return 1;
}

static int
script_readonly(lua_State *L)
{
	return luaL_error(L, "parley.config is read-only");
}

/* ------------------------------------------------------------------ */
/* The store: strings, numbers and booleans by key, kept in C so that a
 * reload does not lose them. One namespace for every script. */

static size_t
script_store_cost(const char *key, const json_t *v)
{
	return strlen(key) + 32 + (json_is_string(v) ?
	    json_string_length(v) : 0);
}

/* The store outlives the server: it starts from what the state store
 * kept, and every change is written there too. */
static void
script_store_load(void)
{
	const char *key;
	json_t *v;

	if (script_store != NULL)
		return;
	script_store = json_deep_copy(state_all("store"));
	script_store_bytes = 0;
	json_object_foreach(script_store, key, v)
		script_store_bytes += script_store_cost(key, v);
}

static int
script_store_index(lua_State *L)
{
	const char *key = lua_tostring(L, 2);
	json_t *v;

	script_store_load();
	if (key == NULL || script_store == NULL ||
	    (v = json_object_get(script_store, key)) == NULL)
		return 0;
	script_push_json(L, v);
	return 1;
}

static int
script_store_newindex(lua_State *L)
{
	size_t klen, vlen;
	const char *key, *s;
	json_t *old, *v = NULL;
	size_t cost, freed = 0;
	lua_Number num;

	if (lua_type(L, 2) != LUA_TSTRING)
		return luaL_argerror(L, 2, "store keys are strings");
	key = lua_tolstring(L, 2, &klen);
	if (klen == 0 || klen > SCRIPT_STORE_KEY_MAX ||
	    memchr(key, '\0', klen) != NULL)
		return luaL_argerror(L, 2, "store keys are 1 to 256 bytes "
		    "without NUL");
	switch (lua_type(L, 3)) {
	case LUA_TNIL:
		break;
	case LUA_TBOOLEAN:
	case LUA_TNUMBER:
	case LUA_TSTRING:
		if (lua_type(L, 3) == LUA_TNUMBER && !lua_isinteger(L, 3)) {
			num = lua_tonumber(L, 3);
			if (num != num || num * 0 != 0)
				return luaL_argerror(L, 3, "not a finite number");
		}
		break;
	default:
		return luaL_argerror(L, 3, "the store keeps strings, numbers "
		    "and booleans");
	}
	/* Lua checks done: C memory from here on, nothing raises. */
	script_store_load();
	old = json_object_get(script_store, key);
	if (old != NULL)
		freed = script_store_cost(key, old);
	switch (lua_type(L, 3)) {
	case LUA_TBOOLEAN:
		v = json_boolean(lua_toboolean(L, 3));
		break;
	case LUA_TNUMBER:
		v = lua_isinteger(L, 3) ?
		    json_integer((json_int_t)lua_tointeger(L, 3)) :
		    json_real(lua_tonumber(L, 3));
		break;
	case LUA_TSTRING:
		s = lua_tolstring(L, 3, &vlen);
		v = json_stringn_nocheck(s, vlen);
		break;
	}
	if (v == NULL) {
		if (old != NULL) {
			json_object_del(script_store, key);
			script_store_bytes -= freed;
			state_put_new("store", key, NULL);
		}
		return 0;
	}
	cost = script_store_cost(key, v);
	if (script_store_bytes - freed + cost > SCRIPT_STORE_MAX) {
		json_decref(v);
		return luaL_error(L, "the store is full (%d bytes)",
		    (int)SCRIPT_STORE_MAX);
	}
	json_object_set_new(script_store, key, v);
	script_store_bytes = script_store_bytes - freed + cost;
	state_put_new("store", key, json_deep_copy(v));
	return 0;
}

static int
script_next(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 2);
	if (lua_next(L, 1) != 0)
		return 2;
	lua_pushnil(L);
	return 1;
}

/* pairs(parley.store): over a snapshot, so writes while iterating are
 * safe. */
static int
script_store_pairs(lua_State *L)
{
	const char *key;
	json_t *v;

	lua_pushcfunction(L, script_next);
	lua_newtable(L);
	script_store_load();
	if (script_store != NULL) {
		json_object_foreach(script_store, key, v) {
			script_push_json(L, v);
			lua_setfield(L, -2, key);
		}
	}
	lua_pushnil(L);
	return 3;
}

void
script_store_free(void)
{
	json_decref(script_store);
	script_store = NULL;
	script_store_bytes = 0;
}

/* ------------------------------------------------------------------ */
/* Rooms that last: topics, roles, deletion, bans, mutes, the audit
 * trail. Each action is taken by the script, or, with {by = user}, as
 * that user asked it (the default rule and the hooks decide). */

static const struct chat_actor *
script_opt_actor(lua_State *L, int idx, struct chat_actor *buf)
{
	struct client *c;

	if (!lua_istable(L, idx))
		return NULL;
	lua_getfield(L, idx, "by");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return NULL;
	}
	c = script_check_user(L, lua_gettop(L), true);
	lua_pop(L, 1);
	buf->kind = CHAT_ACTOR_CLIENT;
	buf->client = c;
	buf->name = NULL;
	return buf;
}

#define SCRIPT_OPT_ACTOR(L, idx, buf) \
	(script_opt_actor((L), (idx), (buf)) ?: SCRIPT_ACTOR(L))

static int
script_result(lua_State *L, enum proto_err e, char *reason)
{
	if (e == PROTO_OK) {
		free(reason);
		lua_pushboolean(L, 1);
		return 1;
	}
	lua_pushnil(L);
	if (reason != NULL)
		lua_pushstring(L, reason);
	else
		lua_pushnil(L);
	lua_pushstring(L, proto_err_code(e));
	free(reason);
	return 3;
}

/* Optional field of an options table: minutes (a positive number) as
 * seconds, 0 when absent. */
static uint64_t
script_opt_seconds(lua_State *L, int idx)
{
	lua_Number m;

	if (!lua_istable(L, idx))
		return 0;
	lua_getfield(L, idx, "minutes");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return 0;
	}
	m = luaL_checknumber(L, -1);
	lua_pop(L, 1);
	if (!(m > 0) || m > 1e8)
		luaL_error(L, "minutes must be a positive number");
	return (uint64_t)(m * 60 + 0.5) ? (uint64_t)(m * 60 + 0.5) : 1;
}

static const char *
script_opt_reason(lua_State *L, int idx)
{
	const char *s;

	if (!lua_istable(L, idx))
		return NULL;
	lua_getfield(L, idx, "reason");
	s = lua_isnil(L, -1)
	    ? NULL
	    : script_check_text(L, -1, SCRIPT_REASON_MAX, NULL);
	lua_pop(L, 1); /* the string stays in the options table */
	return s != NULL && *s != '\0' ? s : NULL;
}

/* room:set_topic(text [, {by = user}]) */
static int
script_room_set_topic(lua_State *L)
{
	struct room *r = script_check_room(L, 1);
	size_t len;
	const char *t = luaL_checklstring(L, 2, &len);
	struct chat_actor buf;
	char *reason = NULL;
	enum proto_err e;

	e = chat_set_topic(
		SCRIPT_OPT_ACTOR(L, 3, &buf), r, t, len, NULL, &reason);
	return script_result(L, e, reason);
}

/* room:delete([{by = user}]) */
static int
script_room_delete(lua_State *L)
{
	struct room *r = script_check_room(L, 1);
	struct chat_actor buf;
	char *reason = NULL;
	enum proto_err e;

	e = chat_delete_room(SCRIPT_OPT_ACTOR(L, 2, &buf), r, NULL, &reason);
	return script_result(L, e, reason);
}

/* room:delete_message(seq [, {by = user}]) */
static int
script_room_delete_message(lua_State *L)
{
	struct room *r = script_check_room(L, 1);
	lua_Integer seq = luaL_checkinteger(L, 2);
	struct chat_actor buf;
	char *reason = NULL;
	enum proto_err e;

	e = chat_delete_message(SCRIPT_OPT_ACTOR(L, 3, &buf), r,
		seq > 0 ? (uint64_t)seq : 0, NULL, &reason);
	return script_result(L, e, reason);
}

/* room:set_role(user, "moderator" | nil [, {by = user}]) */
static int
script_room_set_role(lua_State *L)
{
	struct room *r = script_check_room(L, 1);
	struct client *c = script_check_user(L, 2, true);
	const char *role = luaL_optstring(L, 3, NULL);
	struct chat_actor buf;
	char *reason = NULL;
	enum proto_err e;

	e = chat_set_role(SCRIPT_OPT_ACTOR(L, 4, &buf), r, c, role, &reason);
	return script_result(L, e, reason);
}

/* room:role(user): "owner", "moderator" or nil */
static int
script_room_role(lua_State *L)
{
	struct room *r = script_check_room(L, 1);
	struct client *c = script_check_user(L, 2, true);
	const char *role = chat_room_role(r, c);

	if (role != NULL)
		lua_pushstring(L, role);
	else
		lua_pushnil(L);
	return 1;
}

/* room:ban(user [, {by, minutes, reason}]), room:mute(...) */
static int
script_room_restrict(lua_State *L, bool ban)
{
	struct room *r = script_check_room(L, 1);
	struct client *c = script_check_user(L, 2, true);
	uint64_t seconds = script_opt_seconds(L, 3);
	const char *why = script_opt_reason(L, 3);
	struct chat_actor buf;
	const struct chat_actor *by = SCRIPT_OPT_ACTOR(L, 3, &buf);
	char *reason = NULL;
	enum proto_err e;

	e = ban ? chat_ban(by, r, c, seconds, why, &reason)
		: chat_mute(by, r, c, seconds, why, &reason);
	return script_result(L, e, reason);
}

static int
script_room_ban(lua_State *L)
{
	return script_room_restrict(L, true);
}

static int
script_room_mute(lua_State *L)
{
	return script_room_restrict(L, false);
}

/* room:unban(name [, {by = user}]), room:unmute(...) */
static int
script_room_lift(lua_State *L, bool ban)
{
	struct room *r = script_check_room(L, 1);
	const char *name = luaL_checkstring(L, 2);
	struct chat_actor buf;
	const struct chat_actor *by = SCRIPT_OPT_ACTOR(L, 3, &buf);
	char *reason = NULL;
	enum proto_err e;

	e = ban ? chat_unban(by, r, name, &reason)
		: chat_unmute(by, r, name, &reason);
	return script_result(L, e, reason);
}

static int
script_room_unban(lua_State *L)
{
	return script_room_lift(L, true);
}

static int
script_room_unmute(lua_State *L)
{
	return script_room_lift(L, false);
}

/* room:restriction("ban" | "mute", user): {until, reason, by} or nil */
static int
script_room_restriction(lua_State *L)
{
	struct room *r = script_check_room(L, 1);
	const char *kind = luaL_checkstring(L, 2);
	struct client *c = script_check_user(L, 3, true);
	json_t *rec;

	if (strcmp(kind, "ban") != 0 && strcmp(kind, "mute") != 0)
		return luaL_argerror(L, 2, "\"ban\" or \"mute\"");
	rec = chat_restriction(kind, r, c);
	if (rec == NULL)
		return 0;
	script_push_json(L, rec);
	return 1;
}

/* room:restrictions("ban" | "mute"): the records in force, a list */
static int
script_room_restrictions(lua_State *L)
{
	struct room *r = script_check_room(L, 1);
	const char *kind = luaL_checkstring(L, 2);
	json_t *a;

	if (strcmp(kind, "ban") != 0 && strcmp(kind, "mute") != 0)
		return luaL_argerror(L, 2, "\"ban\" or \"mute\"");
	a = chat_restrictions(kind, r);
	script_push_json(L, a);
	json_decref(a);
	return 1;
}

/* parley.audit{action =, target =, room =, reason =, expires =}: adds a
 * record to the audit trail, as this script. */
static int
script_audit(lua_State *L)
{
	const char *action, *target, *reason, *room;
	lua_Integer expires;
	struct room *r = NULL;

	luaL_checktype(L, 1, LUA_TTABLE);
	lua_getfield(L, 1, "action");
	action = script_check_text(L, -1, 64, NULL);
	lua_getfield(L, 1, "target");
	target = lua_isnil(L, -1) ? NULL : script_check_text(L, -1, 256, NULL);
	lua_getfield(L, 1, "reason");
	reason = lua_isnil(L, -1)
	    ? NULL
	    : script_check_text(L, -1, SCRIPT_REASON_MAX, NULL);
	lua_getfield(L, 1, "room");
	room = lua_isnil(L, -1) ? NULL : luaL_checkstring(L, -1);
	lua_getfield(L, 1, "expires");
	expires = lua_isnil(L, -1) ? 0 : luaL_checkinteger(L, -1);
	if (room != NULL && (r = room_find(room, strlen(room))) == NULL)
		return luaL_error(L, "no room %s", room);
	state_audit(SCRIPT_ACTOR(L), action, target, r, reason,
	    expires > 0 ? (uint64_t)expires : 0);
	return 0;
}

/* parley.modlog([n]): the newest n (default 20, at most 1000) audit
 * records, oldest first. */
static int
script_modlog(lua_State *L)
{
	lua_Integer n = luaL_optinteger(L, 1, 20);
	json_t *a;

	if (n < 1)
		n = 1;
	if (n > 1000)
		n = 1000;
	a = state_audit_read((size_t)n);
	script_push_json(L, a);
	json_decref(a);
	return 1;
}

/* ------------------------------------------------------------------ */
/* Set-up */

/* Pushes a read-only proxy table whose reads go to index and whose
 * writes to newindex. */
static void
script_push_proxy(lua_State *L, lua_CFunction index,
    lua_CFunction newindex, lua_CFunction pairs)
{
	lua_newtable(L);
	lua_createtable(L, 0, 4);
	lua_pushcfunction(L, index);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, newindex);
	lua_setfield(L, -2, "__newindex");
	if (pairs != NULL) {
		lua_pushcfunction(L, pairs);
		lua_setfield(L, -2, "__pairs");
	}
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
}

static void
script_new_metatable(lua_State *L, const char *name, const luaL_Reg *methods,
    lua_CFunction index, lua_CFunction newindex, lua_CFunction tostring)
{
	luaL_newmetatable(L, name);
	lua_newtable(L);
	luaL_setfuncs(L, methods, 0);
	lua_pushcclosure(L, index, 1);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, newindex);
	lua_setfield(L, -2, "__newindex");
	if (tostring != NULL) {
		lua_pushcfunction(L, tostring);
		lua_setfield(L, -2, "__tostring");
	}
	lua_pushstring(L, name);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
}

void
script_api_init(lua_State *L, struct script_state *st)
{
	static const luaL_Reg user_methods[] = {
		{ "notice", script_user_notice },
		{ "kick", script_user_kick },
		{ "disconnect", script_user_disconnect },
		{ "rename", script_user_rename },
		{ "say", script_user_say },
		{ "direct", script_user_direct },
		{ "has_role", script_user_has_role },
		{ "add_role", script_user_add_role },
		{ "remove_role", script_user_remove_role },
		{ "in_room", script_user_in_room },
		{ NULL, NULL },
	};
	static const luaL_Reg room_methods[] = {
		{ "notice", script_room_notice },
		{ "say", script_room_say },
		{ "has", script_room_has },
		{ "remove", script_room_remove },
		{ "set_topic", script_room_set_topic },
		{ "delete", script_room_delete },
		{ "delete_message", script_room_delete_message },
		{ "set_role", script_room_set_role },
		{ "role", script_room_role },
		{ "ban", script_room_ban },
		{ "unban", script_room_unban },
		{ "mute", script_room_mute },
		{ "unmute", script_room_unmute },
		{ "restriction", script_room_restriction },
		{ "restrictions", script_room_restrictions },
		{ NULL, NULL },
	};

	script_new_metatable(L, SCRIPT_USER_MT, user_methods,
	    script_user_index, script_user_newindex, script_user_tostring);
	script_new_metatable(L, SCRIPT_ROOM_MT, room_methods,
	    script_room_index, script_room_newindex, script_room_tostring);
	luaL_newmetatable(L, SCRIPT_TIMER_MT);
	lua_pushcfunction(L, script_timer_index);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, script_readonly);
	lua_setfield(L, -2, "__newindex");
	lua_pushstring(L, SCRIPT_TIMER_MT);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);

	/* User handles are cached so that a script sees one object per
	 * user, but weakly: a handle no script holds any more is collected
	 * (and made again on use), so idle users cost the state nothing. */
	lua_newtable(L);
	lua_createtable(L, 0, 1);
	lua_pushliteral(L, "v");
	lua_setfield(L, -2, "__mode");
	lua_setmetatable(L, -2);
	st->users = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_newtable(L);
	st->rooms = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_newtable(L);
	st->data = luaL_ref(L, LUA_REGISTRYINDEX);
}

void
script_api_open(lua_State *L, struct script *s)
{
	static const luaL_Reg fns[] = {
		{ "on", script_on },
		{ "off", script_off },
		{ "command", script_command },
		{ "commands", script_commands },
		{ "user", script_user },
		{ "users", script_users },
		{ "room", script_room },
		{ "rooms", script_rooms },
		{ "create_room", script_create_room },
		{ "after", script_after },
		{ "every", script_every },
		{ "log", script_log_fn },
		{ "now", script_now },
		{ "time", script_time },
		{ "check_oper_password", script_check_oper_password },
		{ "name_key", script_name_key },
		{ "name_check", script_name_check },
		{ "audit", script_audit },
		{ "modlog", script_modlog },
		{ NULL, NULL },
	};

	lua_newtable(L);
	lua_pushlightuserdata(L, s);
	luaL_setfuncs(L, fns, 1);
	lua_pushlightuserdata(L, &script_drop_tag);
	lua_setfield(L, -2, "DROP");
	lua_pushlightuserdata(L, &script_stop_tag);
	lua_setfield(L, -2, "STOP");
	lua_pushstring(L, s->name);
	lua_setfield(L, -2, "script");
	lua_pushstring(L, PACKAGE_VERSION);
	lua_setfield(L, -2, "version");
	script_push_proxy(L, script_config_index, script_readonly, NULL);
	lua_setfield(L, -2, "config");
	script_push_proxy(L, script_store_index, script_store_newindex,
	    script_store_pairs);
	lua_setfield(L, -2, "store");
}
