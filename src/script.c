/*
 * script.c: Lua scripts. Every enabled script runs in one Lua state on the
 * loop thread, each in an environment of its own holding only the safe
 * parts of the standard library and its parley table. Every call into
 * Lua (hooks, commands, timers, a script's main chunk) is a protected
 * call with a traceback handler, under an instruction budget that keeps
 * raising once spent until the call has unwound to C, and under a memory
 * cap the allocator enforces for the whole state. A failure is logged
 * with its script, line and traceback; the script's failure policy then
 * decides. No number of failures switches a script off: a client who can
 * make a moderation script fail must not thereby turn the moderation off.
 * A script in shadow mode has its verdicts logged and counted, not
 * enforced. A reload builds a
 * complete new state and swaps it in only when every script loaded. What
 * scripts may call lives in script-api.c.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "parley.h"
#include "config-table.h"
#include "script.h"

#define SCRIPT_FILE_MAX (4u << 20) /* a script's source */
#define SCRIPT_HOOK_EVERY 1000     /* instructions between budget checks */
#define SCRIPT_LOG_MAX 1800        /* bytes of one logged message */

/* parley.DROP and parley.STOP: light userdata nothing else can forge. */
char script_drop_tag;
char script_stop_tag;

static struct script_state *script_running; /* NULL: no scripts */
static uint64_t script_failures_total;
static bool script_metrics_registered;

enum script_call_kind {
	SCRIPT_CALL_HOOK,
	SCRIPT_CALL_COMMAND,
	SCRIPT_CALL_TIMER,
};

/* One call into Lua and what came back. */
struct script_call {
	enum script_call_kind kind;
	struct script *script;
	int fn;                         /* hooks and commands */
	struct hook_args *args;         /* hooks */
	enum hook_verdict verdict;
	const struct script_command *command; /* commands */
	const struct command_ctx *ctx;
	enum proto_err result;
	struct script_timer *timer;     /* timers */
};

static void script_timer_fire(struct loop_timer *lt);
static enum hook_verdict script_hook_cb(struct hook_args *a, void *arg);

struct script_state *
script_state_of(lua_State *L)
{
	void *ud;

	lua_getallocf(L, &ud);
	return ud;
}

/* ------------------------------------------------------------------ */
/* Limits: memory, instructions, panics */

/* Lua's allocator with a cap on the bytes the whole state holds. Only
 * growth can fail; Lua then collects garbage and tries once more before
 * it raises a memory error in the script. */
static void *
script_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct script_state *st = ud;
	void *p;

	if (ptr == NULL)
		osize = 0; /* osize is then a type tag, not a size */
	if (nsize == 0) {
		free(ptr);
		st->mem_used -= osize;
		return NULL;
	}
	if (nsize > osize && (st->mem_used > st->mem_limit ||
	    nsize - osize > st->mem_limit - st->mem_used))
		return NULL;
	p = realloc(ptr, nsize);
	if (p == NULL)
		return NULL;
	st->mem_used = st->mem_used - osize + nsize;
	return p;
}

static int
script_panic(lua_State *L)
{
	const char *msg = lua_tostring(L, -1);

	/* Only reached by a bug here: every call is protected. */
	log_write(LOG_LVL_ERROR, "lua", "unprotected error in the script "
	    "state: %s", msg ? msg : "?");
	abort();
}

/*
 * The count hook: charges the budget of the current call. Once it is
 * spent the hook fires on every instruction and raises each time, so a
 * pcall in the script cannot swallow the error: the next instruction
 * after it raises again, until the call has unwound to C.
 */
static void
script_count_hook(lua_State *L, lua_Debug *ar)
{
	struct script_state *st = script_state_of(L);
	int every = lua_gethookcount(L);

	if (!st->exhausted) {
		if (every != st->hook_every) /* left at 1 by an earlier call */
			lua_sethook(L, script_count_hook, LUA_MASKCOUNT,
			    st->hook_every);
		if (st->depth == 0)
			return;
		st->budget -= every;
		if (st->budget > 0)
			return;
		st->exhausted = true;
	}
	if (every != 1)
		lua_sethook(L, script_count_hook, LUA_MASKCOUNT, 1);
	/* luaL_error would name the caller: name the running function. */
	if (lua_getinfo(L, "Sl", ar) != 0 && ar->currentline > 0)
		lua_pushfstring(L, "%s:%d: ", ar->short_src, ar->currentline);
	else
		lua_pushliteral(L, "");
	lua_pushfstring(L, "instruction limit of %I exceeded (a loop that "
	    "never ends?)", (lua_Integer)st->instr_limit);
	lua_concat(L, 2);
	lua_error(L);
}

/* The message handler of every call: the error with a traceback. */
static int
script_msgh(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);

	if (msg == NULL) {
		if (luaL_callmeta(L, 1, "__tostring") &&
		    lua_type(L, -1) == LUA_TSTRING)
			msg = lua_tostring(L, -1);
		else
			msg = lua_pushfstring(L, "(an error object that is a %s)",
			    luaL_typename(L, 1));
	}
	luaL_traceback(L, L, msg, 1);
	return 1;
}

/*
 * Runs fn(ud) in protected mode on the state's main thread. On failure
 * returns the Lua status and, when err is not NULL, sets *err to the
 * message (with traceback when there is one; caller frees).
 */
static int
script_pcall(struct script_state *st, lua_CFunction fn, void *ud, char **err)
{
	lua_State *L = st->L;
	int base = lua_gettop(L), status;
	const char *msg;

	if (!lua_checkstack(L, 4)) {
		if (err != NULL)
			*err = xstrdup("the Lua stack is full");
		return LUA_ERRMEM;
	}
	lua_pushcfunction(L, script_msgh);
	lua_pushcfunction(L, fn);
	lua_pushlightuserdata(L, ud);
	status = lua_pcall(L, 1, 0, base + 1);
	if (status != LUA_OK && err != NULL) {
		msg = lua_tostring(L, -1);
		if (status == LUA_ERRMEM)
			xasprintf(err, "out of memory (the scripts hold %zu of "
			    "%zu bytes)", st->mem_used, st->mem_limit);
		else
			*err = xstrdup(msg ? msg : "(no message)");
	}
	lua_settop(L, base);
	return status;
}

/* Opens a call: the outermost one gets a fresh budget. */
static int
script_enter(struct script_state *st)
{
	if (st->depth >= SCRIPT_MAX_DEPTH)
		return -1;
	if (st->depth++ == 0) {
		st->budget = (int64_t)st->instr_limit;
		st->exhausted = false;
	}
	return 0;
}

static void
script_leave(struct script_state *st)
{
	if (--st->depth != 0)
		return;
	if (st->exhausted) {
		st->exhausted = false;
		lua_sethook(st->L, script_count_hook, LUA_MASKCOUNT,
		    st->hook_every);
	}
}

/* ------------------------------------------------------------------ */
/* Small helpers shared with script-api.c */

/* Copies msg for the log: control characters would forge log lines. */
static void
script_log(int level, const char *source, const char *prefix,
    const char *msg)
{
	char out[SCRIPT_LOG_MAX + 8];
	size_t n = 0;

	if (log_level < level)
		return;
	for (const char *p = msg; *p != '\0' && n < SCRIPT_LOG_MAX; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch == '\n') {
			/* One line: a traceback's frames become "a; b; c". */
			if (n > 0 && p[1] != '\0') {
				out[n++] = ';';
				out[n++] = ' ';
			}
		} else if (ch == '\t') {
			if (n > 0 && p[-1] != '\n')
				out[n++] = ' ';
		} else if (ch < 0x20 || ch == 0x7f) {
			out[n++] = '?';
		} else
			out[n++] = (char)ch;
	}
	out[n] = '\0';
	log_write(level, source, "%s%s", prefix, out);
}

void
script_log_message(int level, const struct script *s, const char *msg)
{
	script_log(level, s->owner, "", msg);
}

int
script_err_parse(const char *code)
{
	for (int e = 1; e < PROTO_ERR_COUNT; e++) {
		if (strcmp(proto_err_code((enum proto_err)e), code) == 0)
			return e;
	}
	return -1;
}

const char *
script_check_text(lua_State *L, int idx, size_t max, size_t *lenp)
{
	size_t len;
	const char *s;

	if (lua_type(L, idx) != LUA_TSTRING)
		luaL_typeerror(L, idx, "string");
	s = lua_tolstring(L, idx, &len);
	if (len > max)
		luaL_argerror(L, idx, lua_pushfstring(L, "longer than %I bytes",
		    (lua_Integer)max));
	if (memchr(s, '\0', len) != NULL || !utf8_valid(s, len))
		luaL_argerror(L, idx, "not valid UTF-8 text");
	if (lenp != NULL)
		*lenp = len;
	return s;
}

static int
script_json_guard_gc(lua_State *L)
{
	json_t **jp = lua_touserdata(L, 1);

	json_decref(*jp);
	*jp = NULL;
	return 0;
}

void
script_json_guard(lua_State *L, json_t *j)
{
	json_t **jp;

	/* If this allocation fails, j leaks: only under the memory cap. */
	jp = lua_newuserdatauv(L, sizeof *jp, 0);
	*jp = j;
	if (luaL_newmetatable(L, "parley.json")) {
		lua_pushcfunction(L, script_json_guard_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_setmetatable(L, -2);
}

void
script_push_json(lua_State *L, const json_t *j)
{
	const char *key;
	json_t *v;
	size_t i;

	luaL_checkstack(L, 4, "settings nested too deeply");
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		lua_createtable(L, 0, (int)json_object_size(j));
		json_object_foreach((json_t *)j, key, v) {
			script_push_json(L, v);
			lua_setfield(L, -2, key);
		}
		break;
	case JSON_ARRAY:
		lua_createtable(L, (int)json_array_size(j), 0);
		json_array_foreach(j, i, v) {
			script_push_json(L, v);
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
		break;
	case JSON_STRING:
		lua_pushlstring(L, json_string_value(j), json_string_length(j));
		break;
	case JSON_INTEGER:
		lua_pushinteger(L, (lua_Integer)json_integer_value(j));
		break;
	case JSON_REAL:
		lua_pushnumber(L, json_real_value(j));
		break;
	case JSON_TRUE:
		lua_pushboolean(L, 1);
		break;
	case JSON_FALSE:
		lua_pushboolean(L, 0);
		break;
	case JSON_NULL:
		lua_pushnil(L);
		break;
	}
}

/* ------------------------------------------------------------------ */
/* Calls into Lua */

static bool
script_event_decides(enum hook_event ev)
{
	return ev == HOOK_CONNECT || ev == HOOK_USERNAME ||
	    ev == HOOK_CREATE_ROOM || ev == HOOK_JOIN || ev == HOOK_MESSAGE ||
	    ev == HOOK_POST || ev == HOOK_TOKEN || ev == HOOK_TOPIC ||
	    ev == HOOK_DELETE_MESSAGE || ev == HOOK_DELETE_ROOM ||
	    ev == HOOK_ROLE || ev == HOOK_MODERATION || ev == HOOK_DIRECT;
}

static void script_push_id(lua_State *L, const json_t *id);
static void script_admit(lua_State *L, struct script_call *call, int idx);
static void script_shadow_log(const struct script_call *call,
    const char *verdict, const char *detail);

/* Adds name = value to the table on top (names lower-cased for
 * headers, which compare without case). May raise: called where a raise
 * leaks nothing. */
struct script_pairs {
	lua_State *L;
	bool lower;
};

static void
script_pair(const char *name, const char *value, void *arg)
{
	struct script_pairs *p = arg;
	char low[128];
	size_t i;

	if (p->lower) {
		for (i = 0; name[i] != '\0' && i < sizeof low - 1; i++)
			low[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ?
			    name[i] - 'A' + 'a' : name[i]);
		low[i] = '\0';
		name = low;
	}
	lua_pushstring(p->L, value);
	lua_setfield(p->L, -2, name);
}

/* The connect hook's request table: path, query, headers, cookies,
 * params. */
static void
script_push_request(lua_State *L, const struct chat_request *r)
{
	static const struct {
		char kind;
		const char *field;
	} parts[] = { { 'h', "headers" }, { 'c', "cookies" },
		{ 'p', "params" } };

	lua_createtable(L, 0, 5);
	lua_pushstring(L, r->path);
	lua_setfield(L, -2, "path");
	lua_pushstring(L, r->query);
	lua_setfield(L, -2, "query");
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
		struct script_pairs p = { L, parts[i].kind == 'h' };
		lua_newtable(L);
		r->each(r, parts[i].kind, script_pair, &p);
		lua_setfield(L, -2, parts[i].field);
	}
}

/* A user, or nil when the event has none (an admin's act). */
static void
script_push_user_or_nil(lua_State *L, struct client *c)
{
	if (c != NULL)
		script_push_user(L, c);
	else
		lua_pushnil(L);
}

/* Who acted, after an event's own arguments: {kind = "admin", name =
 * the token's name} for the admin API, {kind = "user", name = ...} for
 * the client of the event; nil when neither is known. */
static void
script_push_actor(lua_State *L, const struct hook_args *a)
{
	const char *name;

	if (a->by != NULL && a->by->kind == CHAT_ACTOR_ADMIN) {
		name = a->by->name != NULL ? a->by->name : "";
		if (strncmp(name, "admin:", 6) == 0)
			name += 6;
		lua_createtable(L, 0, 2);
		lua_pushliteral(L, "admin");
		lua_setfield(L, -2, "kind");
		lua_pushstring(L, name);
		lua_setfield(L, -2, "name");
	} else if (a->client != NULL && a->event != HOOK_LEAVE) {
		lua_createtable(L, 0, 2);
		lua_pushliteral(L, "user");
		lua_setfield(L, -2, "kind");
		lua_pushstring(L, a->client->name);
		lua_setfield(L, -2, "name");
	} else
		lua_pushnil(L);
}

static int script_push_event_args(lua_State *L, const struct hook_args *a);

/* An event's arguments, and who acted for the events that say so. */
static int
script_push_hook_args(lua_State *L, const struct hook_args *a)
{
	int n = script_push_event_args(L, a);

	switch (a->event) {
	case HOOK_CREATE_ROOM:
	case HOOK_LEAVE:
	case HOOK_ROOM_CREATED:
	case HOOK_ROOM_REMOVED:
	case HOOK_TOPIC:
	case HOOK_DELETE_MESSAGE:
	case HOOK_DELETE_ROOM:
	case HOOK_ROLE:
	case HOOK_MODERATION:
		script_push_actor(L, a);
		return n + 1;
	default:
		return n;
	}
}

static int
script_push_event_args(lua_State *L, const struct hook_args *a)
{
	switch (a->event) {
	case HOOK_CONNECT:
		script_push_user(L, a->client);
		if (a->request == NULL)
			return 1;
		script_push_request(L, a->request);
		return 2;
	case HOOK_USERNAME:
	case HOOK_CREATE_ROOM:
		script_push_user_or_nil(L, a->client);
		lua_pushlstring(L, a->text, a->text_len);
		return 2;
	case HOOK_JOIN:
		script_push_user(L, a->client);
		script_push_room(L, a->room);
		return 2;
	case HOOK_MESSAGE:
		script_push_user(L, a->client);
		script_push_room(L, a->room);
		lua_pushlstring(L, a->text, a->text_len);
		script_push_id(L, a->id);
		return 4;
	case HOOK_LEAVE:
		script_push_user(L, a->client);
		script_push_room(L, a->room);
		lua_pushstring(L, a->reason ? a->reason : "left");
		return 3;
	case HOOK_DISCONNECT:
		script_push_user(L, a->client);
		lua_pushstring(L, a->reason ? a->reason : "disconnected");
		return 2;
	case HOOK_POST:
		if (a->client != NULL)
			script_push_user(L, a->client);
		else
			lua_pushnil(L);
		script_push_room(L, a->room);
		lua_pushlstring(L, a->text, a->text_len);
		lua_pushstring(L, a->sender);
		lua_pushboolean(L, a->action);
		return 5;
	case HOOK_RENAMED:
		script_push_user(L, a->client);
		lua_pushlstring(L, a->text, a->text_len);
		return 2;
	case HOOK_ROOM_CREATED:
		script_push_room(L, a->room);
		if (a->client != NULL)
			script_push_user(L, a->client);
		else
			lua_pushnil(L);
		return 2;
	case HOOK_ROOM_REMOVED:
		script_push_room(L, a->room);
		return 1;
	case HOOK_TOKEN:
		script_push_user(L, a->client);
		lua_pushlstring(L, a->text, a->text_len);
		return 2;
	case HOOK_TOPIC:
		script_push_user_or_nil(L, a->client);
		script_push_room(L, a->room);
		lua_pushlstring(L, a->text, a->text_len);
		return 3;
	case HOOK_DELETE_MESSAGE:
		script_push_user_or_nil(L, a->client);
		script_push_room(L, a->room);
		lua_pushinteger(L, (lua_Integer)strtoll(a->text, NULL, 10));
		return 3;
	case HOOK_DELETE_ROOM:
		script_push_user_or_nil(L, a->client);
		script_push_room(L, a->room);
		return 2;
	case HOOK_ROLE:
	case HOOK_MODERATION:
		script_push_user_or_nil(L, a->client);
		script_push_room(L, a->room);
		lua_pushlstring(L, a->text, a->text_len);
		if (a->reason != NULL && *a->reason != '\0')
			lua_pushstring(L, a->reason);
		else
			lua_pushnil(L);
		return 4;
	case HOOK_DIRECT:
		script_push_user(L, a->client);
		script_push_user(L, a->target);
		lua_pushlstring(L, a->text, a->text_len);
		script_push_id(L, a->id);
		return 4;
	case HOOK_RESUME:
		script_push_user(L, a->client);
		return 1;
	default:
		return 0;
	}
}

/* A connect hook's {account = ..., name = ..., roles = {...}}: admit
 * with that identity. Raises when it is malformed. */
static void
script_admit(lua_State *L, struct script_call *call, int idx)
{
	const char *account, *name = NULL, *roles[CHAT_IDENTITY_ROLES_MAX + 1];
	size_t len, n = 0;

	lua_getfield(L, idx, "account");
	account = lua_tolstring(L, -1, &len);
	if (account == NULL || !proto_name_valid(account, len,
	    PROTO_USERNAME_MAX))
		luaL_error(L, "a connect hook's identity needs an account "
		    "that is a valid username");
	lua_getfield(L, idx, "name");
	if (!lua_isnil(L, -1)) {
		name = lua_tolstring(L, -1, &len);
		if (name == NULL || !proto_name_valid(name, len,
		    PROTO_USERNAME_MAX))
			luaL_error(L, "the identity's name must be a valid "
			    "username");
	}
	lua_getfield(L, idx, "roles");
	if (lua_istable(L, -1)) {
		for (lua_Integer i = 1; n < CHAT_IDENTITY_ROLES_MAX; i++) {
			const char *role;
			if (lua_rawgeti(L, -1, i) == LUA_TNIL) {
				lua_pop(L, 1);
				break;
			}
			role = lua_tolstring(L, -1, &len);
			if (role == NULL || len == 0 || len > 32)
				luaL_error(L, "a role is 1 to 32 bytes");
			roles[n++] = role; /* anchored in the roles table */
			lua_pop(L, 1);
		}
	} else if (!lua_isnil(L, -1))
		luaL_error(L, "the identity's roles must be a list");
	roles[n] = NULL;
	if (call->script->shadow)
		script_shadow_log(call, "admit", account);
	else
		hook_admit(call->args, account, name, roles);
	lua_pop(L, 3);
}

/* Reads `false [, reason [, code]]` at first; raises when malformed. */
static void
script_refusal(lua_State *L, int first, int n, const char **reason,
    enum proto_err *code)
{
	*reason = NULL;
	*code = PROTO_ERR_REJECTED;
	if (n >= 2 && !lua_isnil(L, first + 1))
		*reason = script_check_text(L, first + 1, SCRIPT_TEXT_MAX, NULL);
	if (n >= 3 && !lua_isnil(L, first + 2)) {
		int e = lua_type(L, first + 2) == LUA_TSTRING ?
		    script_err_parse(lua_tostring(L, first + 2)) : -1;
		if (e == -1)
			luaL_error(L, "unknown error code returned: %s",
			    luaL_tolstring(L, first + 2, NULL));
		*code = (enum proto_err)e;
	}
}

/* What a hook returned, as a verdict. */
/* What a hook in shadow mode would have done, for the admin watching. */
static void
script_shadow_log(const struct script_call *call, const char *verdict,
    const char *detail)
{
	const struct hook_args *a = call->args;
	char prefix[256];

	snprintf(prefix, sizeof prefix, "shadow: %s hook would %s (user "
	    "%s%s%s): ", hook_event_name(a->event), verdict,
	    a->client != NULL ? a->client->name : "-",
	    a->room != NULL ? ", room " : "", a->room != NULL ? a->room->name :
	    "");
	script_log(LOG_LVL_INFO, call->script->owner, prefix,
	    detail != NULL ? detail : "");
}

static void
script_hook_results(lua_State *L, struct script_call *call, int first,
    int n)
{
	struct hook_args *a = call->args;
	int type = n > 0 ? lua_type(L, first) : LUA_TNIL;
	const char *reason, *text;
	enum proto_err code;
	size_t len;
	void *p;

	call->verdict = HOOK_PASS;
	if (!script_event_decides(a->event))
		return; /* every hook of these events runs */
	switch (type) {
	case LUA_TNIL:
		return;
	case LUA_TBOOLEAN:
		if (lua_toboolean(L, first))
			return;
		script_refusal(L, first, n, &reason, &code);
		call->verdict = HOOK_DENY;
		if (call->script->shadow) {
			char v[64];
			snprintf(v, sizeof v, "deny (%s)", proto_err_code(code));
			script_shadow_log(call, v, reason);
		} else
			hook_deny(a, code, reason);
		return;
	case LUA_TSTRING:
		/* Replaces the text where there is text to replace; the core
		 * checks the result as it checks what clients send. */
		if (a->event == HOOK_USERNAME || a->event == HOOK_MESSAGE ||
		    a->event == HOOK_DIRECT) {
			text = lua_tolstring(L, first, &len);
			call->verdict = HOOK_MODIFY;
			if (call->script->shadow)
				script_shadow_log(call, "modify", text);
			else
				hook_modify(a, text, len);
		}
		return;
	case LUA_TTABLE:
		if (a->event == HOOK_CONNECT) {
			script_admit(L, call, first);
			return;
		}
		break;
	case LUA_TLIGHTUSERDATA:
		p = lua_touserdata(L, first);
		if (p == &script_drop_tag) {
			call->verdict = HOOK_DROP;
			if (call->script->shadow)
				script_shadow_log(call, "drop", NULL);
			return;
		}
		if (p == &script_stop_tag) {
			call->verdict = HOOK_STOP;
			if (call->script->shadow)
				script_shadow_log(call, "stop", NULL);
			return;
		}
		break;
	}
	luaL_error(L, "the %s hook returned a %s; a hook returns nothing, "
	    "true, false [, reason [, code]], a string, parley.DROP or "
	    "parley.STOP", hook_event_name(a->event), luaL_typename(L, first));
}

static void
script_push_id(lua_State *L, const json_t *id)
{
	if (json_is_integer(id))
		lua_pushinteger(L, (lua_Integer)json_integer_value(id));
	else if (json_is_string(id))
		lua_pushlstring(L, json_string_value(id), json_string_length(id));
	else
		lua_pushnil(L);
}

/* What a command returned: a reply, an error, or nothing. */
static void
script_command_results(lua_State *L, struct script_call *call, int first,
    int n)
{
	const struct command_ctx *ctx = call->ctx;
	int type = n > 0 ? lua_type(L, first) : LUA_TNIL;
	const char *text, *reason;
	enum proto_err code;

	call->result = PROTO_OK;
	switch (type) {
	case LUA_TNIL:
		return;
	case LUA_TBOOLEAN:
		if (lua_toboolean(L, first))
			return;
		script_refusal(L, first, n, &reason, &code);
		proto_send_error(ctx->client, code, ctx->id,
		    ctx->room ? ctx->room->name : NULL, reason);
		return;
	case LUA_TSTRING:
		text = script_check_text(L, first, SCRIPT_TEXT_MAX, NULL);
		chat_notice(ctx->client, ctx->room, text, ctx->id);
		return;
	}
	luaL_error(L, "command /%s returned a %s; a command returns nothing, "
	    "a reply string or false [, reason [, code]]", call->command->name,
	    luaL_typename(L, first));
}

static int
script_call_protected(lua_State *L)
{
	struct script_call *call = lua_touserdata(L, 1);
	const struct command_ctx *ctx;
	int base = lua_gettop(L), nargs = 0, n;

	switch (call->kind) {
	case SCRIPT_CALL_HOOK:
		lua_rawgeti(L, LUA_REGISTRYINDEX, call->fn);
		nargs = script_push_hook_args(L, call->args);
		break;
	case SCRIPT_CALL_COMMAND:
		ctx = call->ctx;
		lua_rawgeti(L, LUA_REGISTRYINDEX, call->fn);
		script_push_user(L, ctx->client);
		script_push_room(L, ctx->room);
		lua_pushstring(L, ctx->args);
		lua_createtable(L, 0, 2);
		script_push_id(L, ctx->id);
		lua_setfield(L, -2, "id");
		lua_pushstring(L, call->command->name);
		lua_setfield(L, -2, "command");
		nargs = 4;
		break;
	case SCRIPT_CALL_TIMER:
		/* The handle stays on the stack for the whole call, so it
		 * cannot be collected even if it is done with. */
		lua_rawgeti(L, LUA_REGISTRYINDEX, call->timer->ref);
		if (call->timer->interval_ms == 0)
			script_timer_stop(L, call->timer);
		lua_getiuservalue(L, -1, 1);
		lua_insert(L, -2);
		nargs = 1;
		break;
	}
	lua_call(L, nargs, LUA_MULTRET);
	n = lua_gettop(L) - base;
	if (call->kind == SCRIPT_CALL_HOOK)
		script_hook_results(L, call, base + 1, n);
	else if (call->kind == SCRIPT_CALL_COMMAND)
		script_command_results(L, call, base + 1, n);
	return 0;
}

static void
script_describe(const struct script_call *call, char *buf, size_t size)
{
	switch (call->kind) {
	case SCRIPT_CALL_HOOK:
		snprintf(buf, size, "%s hook",
		    hook_event_name(call->args->event));
		break;
	case SCRIPT_CALL_COMMAND:
		snprintf(buf, size, "command /%s", call->command->name);
		break;
	case SCRIPT_CALL_TIMER:
		snprintf(buf, size, "timer");
		break;
	}
}

/* Logs a failure with its traceback and counts it. */
static void
script_failed(struct script *s, const char *what, const char *err)
{
	const char *nl = strchr(err, '\n');
	char *first, prefix[96];

	script_failures_total++;
	s->state->failures++;
	first = nl ? xstrndup(err, (size_t)(nl - err)) : xstrdup(err);
	snprintf(prefix, sizeof prefix, "%s failed: ", what);
	script_log(LOG_LVL_ERROR, s->owner, prefix, first);
	free(first);
	if (nl != NULL) {
		/* "stack traceback:\n\t..." on one line */
		const char *tb = strchr(nl + 1, '\n');
		if (tb != NULL)
			script_log(LOG_LVL_ERROR, s->owner, "traceback: ", tb + 1);
	}
}

const char *
script_running_owner(lua_State *L)
{
	struct script *s = script_state_of(L)->running;

	return s != NULL ? s->owner : "lua";
}

/* Calls into Lua; returns 0, or -1 after logging the failure. */
static int
script_call(struct script_call *call)
{
	struct script *s = call->script;
	struct script_state *st = s->state;
	struct script *outer = st->running;
	char *err = NULL, what[64];
	int status;

	if (script_enter(st) == -1) {
		script_describe(call, what, sizeof what);
		script_failed(s, what, "calls into scripts nested too deeply "
		    "(a hook that triggers itself?)");
		return -1;
	}
	st->running = s;
	status = script_pcall(st, script_call_protected, call, &err);
	st->running = outer;
	if (status != LUA_OK) {
		script_describe(call, what, sizeof what);
		script_failed(s, what, err);
		free(err);
		if (status == LUA_ERRMEM)
			lua_gc(st->L, LUA_GCCOLLECT);
	}
	script_leave(st);
	return status == LUA_OK ? 0 : -1;
}

static enum hook_verdict
script_hook_cb(struct hook_args *a, void *arg)
{
	struct script_hook *h = arg;
	struct script *s = h->script;
	struct script_call call = { .kind = SCRIPT_CALL_HOOK, .script = s,
		.fn = h->fn, .args = a, .verdict = HOOK_PASS };

	if (script_call(&call) == 0) {
		if (!s->shadow)
			return call.verdict;
		s->shadow_verdicts[a->event][call.verdict]++;
		return HOOK_PASS;
	}
	s->hook_errors[a->event]++;
	if (s->shadow) {
		log_info(s->owner, "shadow: the %s hook failed; not enforced",
		    hook_event_name(a->event));
		return HOOK_PASS;
	}
	/* Fail closed: a rule that could not be checked is not passed. */
	if (s->deny_on_failure && script_event_decides(a->event)) {
		hook_deny(a, PROTO_ERR_INTERNAL,
		    "refused because a server script failed");
		return HOOK_DENY;
	}
	return HOOK_PASS;
}

static enum proto_err
script_command_cb(const struct command_ctx *ctx, void *arg)
{
	struct script_command *cmd = arg;
	struct script_call call = { .kind = SCRIPT_CALL_COMMAND,
		.script = cmd->script, .fn = cmd->fn, .command = cmd,
		.ctx = ctx, .result = PROTO_OK };

	if (script_call(&call) == -1)
		return PROTO_ERR_INTERNAL;
	return call.result;
}

static void
script_timer_fire(struct loop_timer *lt)
{
	struct script_timer *t = (struct script_timer *)lt;
	struct script_call call = { .kind = SCRIPT_CALL_TIMER,
		.script = t->script, .timer = t };

	/* Re-armed first: the call may cancel it. A one-shot timer is
	 * released inside the call; t is not touched after it. */
	if (t->interval_ms != 0)
		loop_timer_set(&t->lt, t->interval_ms, script_timer_fire);
	script_call(&call);
}

/* ------------------------------------------------------------------ */
/* Registrations: kept per script, put into service when active */

void
script_hook_attach(struct script_hook *h)
{
	struct script *s = h->script;

	if (s->state->active && h->hook == NULL)
		h->hook = hook_add(h->event, h->priority, s->owner,
		    script_hook_cb, h);
}

void
script_command_attach(struct script_command *cmd)
{
	struct script *s = cmd->script;

	if (s->state->active) {
		command_register(cmd->name, s->owner, cmd->usage, cmd->help,
		    script_command_cb, cmd);
		cmd->registered = true;
	}
}

void
script_timer_start(struct script_timer *t)
{
	struct script *s = t->script;

	if (s->state->active && t->pending)
		loop_timer_set(&t->lt, t->delay_ms, script_timer_fire);
}

void
script_timer_stop(lua_State *L, struct script_timer *t)
{
	struct script *s = t->script;

	if (!t->pending)
		return;
	loop_timer_cancel(&t->lt);
	if (t->prev != NULL)
		t->prev->next = t->next;
	else
		s->timers = t->next;
	if (t->next != NULL)
		t->next->prev = t->prev;
	t->prev = t->next = NULL;
	t->pending = false;
	s->ntimers--;
	/* Unanchored: the collector frees it once nothing refers to it. */
	luaL_unref(L, LUA_REGISTRYINDEX, t->ref);
	t->ref = LUA_NOREF;
}

/* Takes a script's hooks, commands and timers out of service. */
static void
script_detach(struct script *s, bool stop_timers)
{
	bool commands = false;

	for (struct script_hook *h = s->hooks; h != NULL; h = h->next) {
		if (h->hook != NULL) {
			hook_remove(h->hook);
			h->hook = NULL;
		}
	}
	for (struct script_command *c = s->commands; c != NULL; c = c->next) {
		commands |= c->registered;
		c->registered = false;
	}
	if (commands)
		command_unregister_owner(s->owner);
	for (struct script_timer *t = s->timers; t != NULL; t = t->next)
		loop_timer_cancel(&t->lt);
	while (stop_timers && s->timers != NULL)
		script_timer_stop(s->state->L, s->timers);
}

/* ------------------------------------------------------------------ */
/* The state: set-up, environments, loading */

static int
script_forget_protected(lua_State *L)
{
	uint64_t *id = lua_touserdata(L, 1);

	script_api_forget(L, *id);
	return 0;
}

/* The lowest hook on disconnect: drops the handle and user.data of a
 * client after every other hook has seen them. */
static enum hook_verdict
script_on_disconnect(struct hook_args *a, void *arg)
{
	struct script_state *st = arg;
	uint64_t id = a->client->id;

	script_pcall(st, script_forget_protected, &id, NULL);
	return HOOK_PASS;
}

static int
script_setup_protected(lua_State *L)
{
	static const char *const base[] = { "assert", "error",
		"getmetatable", "ipairs", "next", "pairs", "pcall", "rawequal",
		"rawget", "rawlen", "rawset", "select", "tonumber", "tostring",
		"type", "xpcall", "_VERSION", NULL };
	static const struct {
		const char *name;
		lua_CFunction open;
	} libs[] = {
		{ "string", luaopen_string },
		{ "table", luaopen_table },
		{ "math", luaopen_math },
		{ "utf8", luaopen_utf8 },
		{ "coroutine", luaopen_coroutine },
	};
	static const char *const os_keep[] = { "time", "clock", "date", NULL };
	struct script_state *st = lua_touserdata(L, 1);
	int tpl, g;

	lua_newtable(L);
	tpl = lua_gettop(L);

	/* The base library fills the real globals, which no script can
	 * reach; only the safe functions are copied out. */
	lua_pushcfunction(L, luaopen_base);
	lua_call(L, 0, 1);
	g = lua_gettop(L);
	lua_newtable(L);
	for (size_t i = 0; base[i] != NULL; i++) {
		lua_getfield(L, g, base[i]);
		lua_setfield(L, -2, base[i]);
	}
	lua_setfield(L, tpl, "base");
	lua_getfield(L, g, "setmetatable");
	lua_setfield(L, tpl, "setmetatable");
	lua_pop(L, 1);

	lua_newtable(L);
	for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++) {
		lua_pushcfunction(L, libs[i].open);
		lua_call(L, 0, 1);
		lua_setfield(L, -2, libs[i].name);
	}
	/* Bytecode could crash the interpreter; nothing loads it, and
	 * nothing makes it either. */
	lua_getfield(L, -1, "string");
	lua_pushnil(L);
	lua_setfield(L, -2, "dump");
	lua_pop(L, 1);
	/* The string metatable is shared by every script: hide it. */
	lua_pushliteral(L, "");
	lua_getmetatable(L, -1);
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 2);
	/* os: the clock only. */
	lua_pushcfunction(L, luaopen_os);
	lua_call(L, 0, 1);
	lua_newtable(L);
	for (size_t i = 0; os_keep[i] != NULL; i++) {
		lua_getfield(L, -2, os_keep[i]);
		lua_setfield(L, -2, os_keep[i]);
	}
	lua_setfield(L, -3, "os");
	lua_pop(L, 1);
	lua_setfield(L, tpl, "libs");

	lua_pushvalue(L, tpl);
	st->templates = luaL_ref(L, LUA_REGISTRYINDEX);
	script_api_init(L, st);
	return 0;
}

/* setmetatable without __gc: finalizers run outside the count hook,
 * where no budget could stop them. */
static int
script_setmetatable(lua_State *L)
{
	if (lua_type(L, 2) == LUA_TTABLE) {
		lua_pushliteral(L, "__gc");
		if (lua_rawget(L, 2) != LUA_TNIL)
			return luaL_error(L, "__gc metamethods are not allowed "
			    "in scripts");
		lua_pop(L, 1);
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 1);
	return 1;
}

/* load(text [, name [, mode [, env]]]): text only; the environment is
 * the calling script's unless one is given. */
static int
script_load_text(lua_State *L)
{
	size_t len;
	const char *text = luaL_checklstring(L, 1, &len);
	const char *name = luaL_optstring(L, 2, "=(load)");
	int env = lua_isnoneornil(L, 4) ? lua_upvalueindex(1) : 4;

	if (luaL_loadbufferx(L, text, len, name, "t") != LUA_OK) {
		lua_pushnil(L);
		lua_insert(L, -2);
		return 2;
	}
	lua_pushvalue(L, env);
	if (lua_setupvalue(L, -2, 1) == NULL)
		lua_pop(L, 1);
	return 1;
}

static int
script_print(lua_State *L)
{
	struct script *s = lua_touserdata(L, lua_upvalueindex(1));
	int n = lua_gettop(L);
	luaL_Buffer b;

	luaL_buffinit(L, &b);
	for (int i = 1; i <= n; i++) {
		if (i > 1)
			luaL_addchar(&b, '\t');
		luaL_tolstring(L, i, NULL);
		luaL_addvalue(&b);
	}
	luaL_pushresult(&b);
	script_log(LOG_LVL_INFO, s->owner, "", lua_tostring(L, -1));
	return 0;
}

/* Pushes a new environment for s, settings being its settings table. */
static void
script_env_new(lua_State *L, struct script *s, const json_t *settings)
{
	int env, tpl;

	lua_newtable(L);
	env = lua_gettop(L);
	lua_rawgeti(L, LUA_REGISTRYINDEX, s->state->templates);
	tpl = lua_gettop(L);

	lua_getfield(L, tpl, "base");
	lua_pushnil(L);
	while (lua_next(L, -2) != 0) {
		lua_pushvalue(L, -2);
		lua_insert(L, -2);
		lua_rawset(L, env);
	}
	lua_pop(L, 1);
	/* Each script gets its own copy of every library table, so one
	 * cannot change string.format under another. */
	lua_getfield(L, tpl, "libs");
	lua_pushnil(L);
	while (lua_next(L, -2) != 0) {
		lua_newtable(L);
		lua_pushnil(L);
		while (lua_next(L, -3) != 0) {
			lua_pushvalue(L, -2);
			lua_insert(L, -2);
			lua_rawset(L, -4);
		}
		lua_remove(L, -2);
		lua_pushvalue(L, -2);
		lua_insert(L, -2);
		lua_rawset(L, env);
	}
	lua_pop(L, 1);

	lua_getfield(L, tpl, "setmetatable");
	lua_pushcclosure(L, script_setmetatable, 1);
	lua_setfield(L, env, "setmetatable");
	lua_pushvalue(L, env);
	lua_pushcclosure(L, script_load_text, 1);
	lua_setfield(L, env, "load");
	lua_pushlightuserdata(L, s);
	lua_pushcclosure(L, script_print, 1);
	lua_setfield(L, env, "print");
	lua_pushvalue(L, env);
	lua_setfield(L, env, "_G");

	script_api_open(L, s);
	if (settings != NULL)
		script_push_json(L, settings);
	else
		lua_newtable(L);
	lua_setfield(L, -2, "settings");
	lua_setfield(L, env, "parley");
	lua_pop(L, 1);
}

struct script_load {
	struct script *s;
	const char *text;
	size_t len;
	const json_t *settings;
};

static int
script_load_protected(lua_State *L)
{
	struct script_load *ld = lua_touserdata(L, 1);
	struct script *s = ld->s;
	const char *text = ld->text;
	size_t len = ld->len;
	char name[PATH_MAX];
	int env;

	script_env_new(L, s, ld->settings);
	env = lua_gettop(L);
	lua_pushvalue(L, env);
	s->env = luaL_ref(L, LUA_REGISTRYINDEX);

	/* Messages name the file by its script name: short and clear. */
	snprintf(name, sizeof name, "@%s.lua", s->name);
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
		text += 3;
		len -= 3;
	}
	if (luaL_loadbufferx(L, text, len, name, "t") != LUA_OK)
		return lua_error(L);
	lua_pushvalue(L, env);
	if (lua_setupvalue(L, -2, 1) == NULL)
		lua_pop(L, 1);
	lua_call(L, 0, 0);

	/* The design card's names: a global on_<event> function is a hook
	 * of that event at priority 0. */
	for (int ev = 0; ev < HOOK_COUNT; ev++) {
		char global[32];
		snprintf(global, sizeof global, "on_%s",
		    hook_event_name((enum hook_event)ev));
		lua_pushstring(L, global);
		if (lua_rawget(L, env) == LUA_TFUNCTION)
			script_hook_new(L, s, (enum hook_event)ev, -1, 0);
		lua_pop(L, 1);
	}
	return 0;
}

void
script_hook_new(lua_State *L, struct script *s, enum hook_event ev, int idx,
    int priority)
{
	struct script_hook *h, **tail;
	int ref;

	if (s->nhooks >= SCRIPT_MAX_HOOKS)
		luaL_error(L, "too many hooks (at most %d per script)",
		    SCRIPT_MAX_HOOKS);
	lua_pushvalue(L, idx);
	ref = luaL_ref(L, LUA_REGISTRYINDEX); /* may raise: before xcalloc */
	h = xcalloc(1, sizeof *h);
	h->script = s;
	h->event = ev;
	h->priority = priority;
	h->fn = ref;
	for (tail = &s->hooks; *tail != NULL; tail = &(*tail)->next)
		;
	*tail = h;
	s->nhooks++;
	script_hook_attach(h);
}

bool
script_hook_remove(lua_State *L, struct script *s, enum hook_event ev,
    int idx)
{
	for (struct script_hook **pp = &s->hooks; *pp != NULL;
	    pp = &(*pp)->next) {
		struct script_hook *h = *pp;
		bool same;
		if (h->event != ev)
			continue;
		lua_rawgeti(L, LUA_REGISTRYINDEX, h->fn);
		same = lua_rawequal(L, -1, idx);
		lua_pop(L, 1);
		if (!same)
			continue;
		/* The chain keeps a dead entry while it is being walked;
		 * h itself is no longer reached from it. */
		if (h->hook != NULL)
			hook_remove(h->hook);
		luaL_unref(L, LUA_REGISTRYINDEX, h->fn);
		*pp = h->next;
		s->nhooks--;
		free(h);
		return true;
	}
	return false;
}

/* Reads a script's source; NULL with *cause on error. */
static char *
script_read(const char *path, size_t *len, char **cause)
{
	FILE *f = fopen(path, "r");
	char *text;
	int error;

	if (f == NULL) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		return NULL;
	}
	text = xmalloc(SCRIPT_FILE_MAX + 1);
	*len = fread(text, 1, SCRIPT_FILE_MAX + 1, f);
	error = ferror(f) ? errno : 0;
	fclose(f);
	if (error != 0 || *len > SCRIPT_FILE_MAX) {
		if (error != 0)
			xasprintf(cause, "%s: %s", path, strerror(error));
		else
			xasprintf(cause, "%s: larger than %u MiB", path,
			    SCRIPT_FILE_MAX >> 20);
		free(text);
		return NULL;
	}
	return text;
}

/* Finds NAME.lua in the directories, first match wins. */
static char *
script_find(const struct strlist *dirs, const char *name)
{
	char *path;
	struct stat sb;

	for (size_t i = 0; i < dirs->n; i++) {
		/* The default directory is the source's scripts/ when the
		 * daemon runs from a build tree, as the web root is. */
		char *dir = strcmp(dirs->v[i], PARLEY_SCRIPTDIR) == 0 ?
		    path_bundled("scripts", PARLEY_SCRIPTDIR) :
		    xstrdup(dirs->v[i]);
		xasprintf(&path, "%s/%s.lua", dir, name);
		free(dir);
		if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode))
			return path;
		free(path);
	}
	return NULL;
}

/* True when c->scripts is the built-in list: its scripts may be missing
 * (a binary run away from its installation) without that being fatal. */
static bool
script_list_is_default(const struct strlist *l)
{
	for (size_t i = 0; i < config_noptions; i++) {
		const struct config_option *o = &config_options[i];
		size_t n = 0;
		if (strcmp(o->name, "scripts") != 0)
			continue;
		while (o->def_list != NULL && o->def_list[n] != NULL) {
			if (n >= l->n || strcmp(o->def_list[n], l->v[n]) != 0)
				return false;
			n++;
		}
		return n == l->n;
	}
	return false;
}

static int
script_compare(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
script_state_free(struct script_state *st)
{
	struct script *s, *snext;

	if (st == NULL)
		return;
	PARLEY_ASSERT(st->depth == 0);
	for (s = st->scripts; s != NULL; s = s->next)
		script_detach(s, false);
	if (st->forget_hook != NULL)
		hook_remove(st->forget_hook);
	st->active = false;
	/* Timers live in userdata: lua_close frees them, now unscheduled. */
	if (st->L != NULL)
		lua_close(st->L);
	for (s = st->scripts; s != NULL; s = snext) {
		snext = s->next;
		while (s->hooks != NULL) {
			struct script_hook *h = s->hooks;
			s->hooks = h->next;
			free(h);
		}
		while (s->commands != NULL) {
			struct script_command *c = s->commands;
			s->commands = c->next;
			free(c->name);
			free(c->usage);
			free(c->help);
			free(c);
		}
		free(s->name);
		free(s->path);
		free(s->owner);
		free(s);
	}
	free(st->oper_hash);
	free(st);
}

/*
 * Loads c's scripts into a new, inactive state. Returns 0 with *out set
 * (NULL when no script is enabled or found), or -1 with *cause.
 */
static int
script_state_load(const struct config *c, struct script_state **out,
    char **cause)
{
	struct script_state *st;
	struct script **tail;
	char **names, *err = NULL;
	bool defaults = script_list_is_default(&c->scripts);
	int status;

	*out = NULL;
	if (c->scripts.n == 0)
		return 0;
	st = xcalloc(1, sizeof *st);
	st->mem_limit = c->script_memory_limit;
	st->instr_limit = c->script_instruction_limit;
	st->hook_every = st->instr_limit < SCRIPT_HOOK_EVERY ?
	    (int)st->instr_limit : SCRIPT_HOOK_EVERY;
	st->templates = st->users = st->rooms = st->data = LUA_NOREF;
	if (c->oper_password != NULL) {
		st->oper_hash = xstrdup(c->oper_password + strlen("sha256:"));
		for (char *p = st->oper_hash; *p != '\0'; p++) {
			if (*p >= 'A' && *p <= 'F')
				*p = (char)(*p - 'A' + 'a');
		}
	}
	st->L = lua_newstate(script_alloc, st);
	if (st->L == NULL) {
		xasprintf(cause, "scripts: cannot create a Lua state");
		free(st->oper_hash);
		free(st);
		return -1;
	}
	lua_atpanic(st->L, script_panic);
	lua_sethook(st->L, script_count_hook, LUA_MASKCOUNT, st->hook_every);
	if (script_pcall(st, script_setup_protected, st, &err) != LUA_OK) {
		xasprintf(cause, "scripts: cannot set up Lua: %s", err);
		free(err);
		script_state_free(st);
		return -1;
	}

	/* Name order, whatever the order of the list. */
	names = xreallocarray(NULL, c->scripts.n, sizeof *names);
	memcpy(names, c->scripts.v, c->scripts.n * sizeof *names);
	qsort(names, c->scripts.n, sizeof *names, script_compare);
	tail = &st->scripts;
	for (size_t i = 0; i < c->scripts.n; i++) {
		struct script_load ld = { 0 };
		const json_t *settings = NULL, *policy = NULL, *shadow;
		const char *policy_key;
		struct script *s;
		char *path, *text;
		size_t len;

		path = script_find(&c->script_dirs, names[i]);
		if (path == NULL && defaults) {
			log_warn("lua", "default script %s.lua is not installed; "
			    "going on without it", names[i]);
			continue;
		}
		if (path == NULL) {
			xasprintf(cause, "script %s: no %s.lua in script_dirs",
			    names[i], names[i]);
			goto fail;
		}
		if ((text = script_read(path, &len, &err)) == NULL) {
			xasprintf(cause, "script %s: %s", names[i], err);
			free(err);
			free(path);
			goto fail;
		}
		if (c->script_settings != NULL)
			settings = json_object_get(c->script_settings, names[i]);
		if (settings != NULL && !json_is_object(settings)) {
			xasprintf(cause, "script %s: script_settings.%s must be "
			    "a table", names[i], names[i]);
			free(text);
			free(path);
			goto fail;
		}
		/* on_error; failure_policy is its older name. */
		policy_key = "on_error";
		policy = json_object_get(settings, policy_key);
		if (policy == NULL) {
			policy_key = "failure_policy";
			policy = json_object_get(settings, policy_key);
		}
		if (policy != NULL && (!json_is_string(policy) ||
		    (strcmp(json_string_value(policy), "pass") != 0 &&
		    strcmp(json_string_value(policy), "deny") != 0))) {
			xasprintf(cause, "script %s: script_settings.%s.%s "
			    "must be \"pass\" or \"deny\"", names[i], names[i],
			    policy_key);
			free(text);
			free(path);
			goto fail;
		}
		shadow = json_object_get(settings, "shadow");
		if (shadow != NULL && !json_is_boolean(shadow)) {
			xasprintf(cause, "script %s: script_settings.%s.shadow "
			    "must be true or false", names[i], names[i]);
			free(text);
			free(path);
			goto fail;
		}

		s = xcalloc(1, sizeof *s);
		s->state = st;
		s->name = xstrdup(names[i]);
		s->path = path;
		xasprintf(&s->owner, "lua:%s", names[i]);
		s->env = LUA_NOREF;
		s->deny_on_failure = strcmp(policy != NULL ?
		    json_string_value(policy) : c->script_failure_policy,
		    "deny") == 0;
		s->shadow = json_is_true(shadow);
		if (s->shadow)
			log_info(s->owner, "shadow mode: verdicts are logged, "
			    "not enforced");
		*tail = s;
		tail = &s->next;

		ld.s = s;
		ld.text = text;
		ld.len = len;
		ld.settings = settings;
		script_enter(st);
		status = script_pcall(st, script_load_protected, &ld, &err);
		script_leave(st);
		free(text);
		if (status != LUA_OK) {
			char *nl = strchr(err, '\n');
			if (nl != NULL)
				*nl = '\0';
			xasprintf(cause, "script %s (%s): %s", s->name, s->path,
			    err);
			free(err);
			goto fail;
		}
		log_debug(s->owner, "loaded %s", s->path);
	}
	free(names);
	if (st->scripts == NULL) {
		script_state_free(st);
		return 0;
	}
	*out = st;
	return 0;

fail:
	free(names);
	script_state_free(st);
	return -1;
}

/* Puts every registration of st into service. */
static void
script_activate(struct script_state *st)
{
	st->active = true;
	for (struct script *s = st->scripts; s != NULL; s = s->next) {
		for (struct script_hook *h = s->hooks; h != NULL; h = h->next)
			script_hook_attach(h);
		for (struct script_command *c = s->commands; c != NULL;
		    c = c->next)
			script_command_attach(c);
		for (struct script_timer *t = s->timers; t != NULL;
		    t = t->next)
			script_timer_start(t);
	}
	st->forget_hook = hook_add(HOOK_DISCONNECT, INT_MIN, "lua",
	    script_on_disconnect, st);
}

/* Runs st's own hooks of a start or stop event, in chain order (a
 * reload must not run the plugins' ones again). */
static void
script_run_event(struct script_state *st, enum hook_event ev)
{
	struct script_hook **v = NULL;
	size_t n = 0;

	for (struct script *s = st->scripts; s != NULL; s = s->next) {
		for (struct script_hook *h = s->hooks; h != NULL; h = h->next) {
			size_t i;
			if (h->event != ev)
				continue;
			v = xreallocarray(v, n + 1, sizeof *v);
			for (i = n; i > 0 && v[i - 1]->priority < h->priority;
			    i--)
				v[i] = v[i - 1];
			v[i] = h;
			n++;
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct hook_args a = { .event = ev };
		script_hook_cb(&a, v[i]);
		hook_args_free(&a);
	}
	free(v);
}

/* The events s has hooks on, one bit each. */
static unsigned
script_events_hooked(const struct script *s)
{
	unsigned mask = 0;

	for (const struct script_hook *h = s->hooks; h != NULL; h = h->next)
		mask |= 1u << h->event;
	return mask;
}

static void
script_metrics(struct metrics_buf *mb)
{
	struct script_state *st = script_running;

	metrics_printf(mb, "# HELP parley_script_failures_total Calls into "
	    "Lua scripts that failed.\n# TYPE parley_script_failures_total "
	    "counter\nparley_script_failures_total %llu\n",
	    (unsigned long long)script_failures_total);
	if (st == NULL)
		return;
	metrics_printf(mb, "# HELP parley_script_memory_bytes Memory the Lua "
	    "scripts hold.\n# TYPE parley_script_memory_bytes gauge\n"
	    "parley_script_memory_bytes %zu\n", st->mem_used);
	/* One series per script and event it hooks, however many hooks of
	 * that event it registered. */
	metrics_printf(mb, "# HELP parley_script_hook_errors_total Hook calls "
	    "that failed, by script and event.\n"
	    "# TYPE parley_script_hook_errors_total counter\n");
	for (struct script *s = st->scripts; s != NULL; s = s->next) {
		unsigned hooked = script_events_hooked(s);
		for (int ev = 0; ev < HOOK_COUNT; ev++) {
			if (hooked & 1u << ev)
				metrics_printf(mb, "parley_script_hook_errors_total"
				    "{script=\"%s\",event=\"%s\"} %llu\n", s->name,
				    hook_event_name((enum hook_event)ev),
				    (unsigned long long)s->hook_errors[ev]);
		}
	}
	metrics_printf(mb, "# HELP parley_script_shadow_verdicts_total What "
	    "the hooks of scripts in shadow mode would have decided.\n"
	    "# TYPE parley_script_shadow_verdicts_total counter\n");
	for (struct script *s = st->scripts; s != NULL; s = s->next) {
		unsigned hooked = script_events_hooked(s);
		if (!s->shadow)
			continue;
		for (int ev = 0; ev < HOOK_COUNT; ev++) {
			if (!(hooked & 1u << ev))
				continue;
			for (int v = 0; v <= HOOK_STOP; v++)
				metrics_printf(mb,
				    "parley_script_shadow_verdicts_total{script="
				    "\"%s\",event=\"%s\",verdict=\"%s\"} %llu\n",
				    s->name, hook_event_name((enum hook_event)ev),
				    hook_verdict_name((enum hook_verdict)v),
				    (unsigned long long)s->shadow_verdicts[ev][v]);
		}
	}
}

static char *
script_names(const struct script_state *st)
{
	char *out = xstrdup(""), *next;

	for (const struct script *s = st ? st->scripts : NULL; s != NULL;
	    s = s->next) {
		xasprintf(&next, "%s%s%s", out, *out ? ", " : "", s->name);
		free(out);
		out = next;
	}
	return out;
}

/* ------------------------------------------------------------------ */
/* The daemon's side */

int
script_init(char **cause)
{
	struct script_state *st;
	char *names;

	if (script_state_load(cfg, &st, cause) == -1)
		return -1;
	if (!script_metrics_registered) {
		metrics_register(script_metrics);
		script_metrics_registered = true;
	}
	script_running = st;
	if (st == NULL)
		return 0;
	script_activate(st);
	names = script_names(st);
	log_info("lua", "scripts: %s", names);
	free(names);
	return 0;
}

/* Scripts loaded by script_reload_prepare, waiting for the commit. */
static struct script_state *script_pending;
static bool script_pending_set;

int
script_reload_prepare(const struct config *c, char **cause)
{
	script_reload_abort();
	if (script_state_load(c, &script_pending, cause) == -1)
		return -1;
	script_pending_set = true;
	return 0;
}

void
script_reload_abort(void)
{
	if (script_pending_set)
		script_state_free(script_pending);
	script_pending = NULL;
	script_pending_set = false;
}

void
script_reload_commit(void)
{
	struct script_state *next = script_pending, *old = script_running;
	char *names;

	if (!script_pending_set)
		return;
	script_pending = NULL;
	script_pending_set = false;
	if (old != NULL) {
		script_run_event(old, HOOK_SERVER_STOP);
		script_state_free(old);
	}
	script_running = next;
	if (next != NULL) {
		script_activate(next);
		script_run_event(next, HOOK_SERVER_START);
	}
	names = script_names(next);
	log_info("lua", "scripts reloaded: %s", *names ? names : "none");
	free(names);
}

int
script_check(char **cause)
{
	struct script_state *st;

	if (script_state_load(cfg, &st, cause) == -1)
		return -1;
	script_state_free(st);
	return 0;
}

void
script_free(void)
{
	script_reload_abort();
	script_state_free(script_running);
	script_running = NULL;
	script_store_free();
}
