/*
 * config.c: the configuration file. It is a Lua chunk run in an empty
 * sandbox: no libraries, a fresh table as its environment, an
 * instruction budget and a memory cap, so a broken or hostile file can
 * neither reach the system nor hang or exhaust the daemon. Assignments to
 * globals are caught by a metatable that remembers the line of each, so
 * that every complaint about a key (unknown, wrong type, out of range)
 * names FILE:LINE. Nothing is applied unless the whole file is valid.
 * What the options are lives in config-table.c.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "parley.h"
#include "config-table.h"

struct config *cfg;

/* A configuration needs far less of either; these only stop abuse. */
#define CONFIG_MEMORY_LIMIT (16u << 20)
#define CONFIG_HOOK_EVERY 1000  /* instructions between hook calls */
#define CONFIG_HOOK_LIMIT 1000  /* hook calls: a million instructions */
#define CONFIG_FILE_LIMIT (1u << 20)

/*
 * Lua names the chunk in its own messages; a short fixed name avoids its
 * truncation of long paths, and config_cause() puts the real name back.
 */
#define CONFIG_CHUNK "=(config)"
#define CONFIG_SRC "(config)"

/* Longest key quoted in a message, and longest compared for "did you
 * mean". */
#define CONFIG_KEY_SHOWN 64

/* Deepest nesting of a table kept as JSON (plugin options). */
#define CONFIG_JSON_DEPTH 16

struct config_run {
	const char *text;
	size_t len;
	struct config *c;
	size_t mem_used;
	unsigned ticks;
	/* Stack slots of the tables built by config_protected(). */
	int proxy; /* key -> value as assigned */
	int lines; /* key -> line of the last assignment */
};

static struct config_run *
config_run_of(lua_State *L)
{
	void *ud;

	lua_getallocf(L, &ud);
	return ud;
}

/* Lua's allocator with a cap on the bytes in use. */
static void *
config_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct config_run *run = ud;
	void *p;

	if (ptr == NULL)
		osize = 0; /* osize then holds a type tag, not a size */
	if (nsize == 0) {
		free(ptr);
		run->mem_used -= osize;
		return NULL;
	}
	if (nsize > osize &&
	    nsize - osize > CONFIG_MEMORY_LIMIT - run->mem_used)
		return NULL;
	p = realloc(ptr, nsize);
	if (p == NULL)
		return NULL;
	run->mem_used = run->mem_used - osize + nsize;
	return p;
}

static int
config_line(lua_State *L, int level)
{
	lua_Debug ar;

	if (lua_getstack(L, level, &ar) == 0 || lua_getinfo(L, "l", &ar) == 0)
		return 0;
	return ar.currentline > 0 ? ar.currentline : 0;
}

/* The instruction budget: stops `while true do end`. */
static void
config_hook(lua_State *L, lua_Debug *ar)
{
	struct config_run *run = config_run_of(L);
	int line = 0;

	if (++run->ticks < CONFIG_HOOK_LIMIT)
		return;
	if (lua_getinfo(L, "l", ar) != 0 && ar->currentline > 0)
		line = ar->currentline;
	lua_pushfstring(L,
	    CONFIG_SRC ":%d: the file runs too long (a loop that never ends?)",
	    line);
	lua_error(L);
}

/* __newindex of the environment: record value and line of a global
 * assignment. Upvalues: the proxy and the lines tables. */
static int
config_newindex(lua_State *L)
{
	int line = config_line(L, 1);

	if (lua_type(L, 2) != LUA_TSTRING) {
		lua_pushfstring(L,
		    CONFIG_SRC ":%d: option names must be strings", line);
		return lua_error(L);
	}
	lua_settop(L, 3);
	lua_pushvalue(L, 2);
	lua_pushvalue(L, 3);
	lua_rawset(L, lua_upvalueindex(1));
	lua_pushvalue(L, 2);
	if (lua_isnil(L, 3))
		lua_pushnil(L);
	else
		lua_pushinteger(L, line);
	lua_rawset(L, lua_upvalueindex(2));
	return 0;
}

/* Optimal string alignment distance, for "did you mean". */
static size_t
config_distance(const char *a, size_t la, const char *b, size_t lb)
{
	size_t d[CONFIG_KEY_SHOWN + 1][CONFIG_KEY_SHOWN + 1];

	if (la > CONFIG_KEY_SHOWN || lb > CONFIG_KEY_SHOWN)
		return SIZE_MAX;
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] != b[j - 1];
			size_t v = d[i - 1][j - 1] + cost;
			if (d[i - 1][j] + 1 < v)
				v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	}
	return d[la][lb];
}

static const struct config_option *
config_find(const char *name, size_t len)
{
	for (size_t i = 0; i < config_noptions; i++) {
		const struct config_option *o = &config_options[i];
		if (strlen(o->name) == len && memcmp(o->name, name, len) == 0)
			return o;
	}
	return NULL;
}

static const struct config_option *
config_suggest(const char *name, size_t len)
{
	const struct config_option *best = NULL;
	size_t best_d = 3;

	for (size_t i = 0; i < config_noptions; i++) {
		const struct config_option *o = &config_options[i];
		size_t d = config_distance(name, len, o->name, strlen(o->name));
		if (d < best_d) {
			best = o;
			best_d = d;
		}
	}
	return best;
}

/* Pushes s quoted for a message: bytes that could upset a terminal are
 * escaped, and a long value is cut. */
static void
config_push_quoted(lua_State *L, const char *s, size_t len)
{
	char out[CONFIG_KEY_SHOWN * 4 + 8];
	size_t n = 0;

	out[n++] = '\'';
	for (size_t i = 0; i < len && i < CONFIG_KEY_SHOWN; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch >= 0x7f || ch == '\'' || ch == '\\')
			n += (size_t)snprintf(out + n, sizeof out - n, "\\x%02x",
			    ch);
		else
			out[n++] = (char)ch;
	}
	out[n++] = '\'';
	if (len > CONFIG_KEY_SHOWN) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	lua_pushlstring(L, out, n);
}

const char *
config_check_text(const char *s, size_t len)
{
	if (!utf8_valid(s, len) || utf8_has_control(s, len))
		return "must be valid UTF-8 without control characters";
	return NULL;
}

const char *
config_check_room(const char *s, size_t len)
{
	const char *why = config_check_text(s, len);

	if (why != NULL)
		return why;
	if (len > 0 && (s[0] == ' ' || s[len - 1] == ' '))
		return "must not begin or end with a space";
	return NULL;
}

const char *
config_check_origin(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] <= ' ' || s[i] >= 0x7f)
			return "must be printable ASCII without spaces";
	}
	/* Browsers never send a path, so such an entry would never match. */
	if (len > 0 && s[len - 1] == '/')
		return "must not end with '/' (an origin is "
		       "scheme://host[:port])";
	return NULL;
}

/* Checks the string at the top of the stack against o's length range
 * and rule. On failure pushes the reason (without the option name) and
 * returns -1. */
static int
config_check_string(lua_State *L, const struct config_option *o)
{
	size_t len;
	const char *s = lua_tolstring(L, -1, &len);
	const char *why;

	if (memchr(s, '\0', len) != NULL) {
		lua_pushliteral(L, "must not contain NUL bytes");
		return -1;
	}
	if ((long long)len < o->min || (long long)len > o->max) {
		if (o->min == o->max)
			lua_pushfstring(L, "must be %I bytes long",
			    (lua_Integer)o->min);
		else
			lua_pushfstring(L, "must be %I to %I bytes long",
			    (lua_Integer)o->min, (lua_Integer)o->max);
		return -1;
	}
	if (o->check != NULL && (why = o->check(s, len)) != NULL) {
		lua_pushstring(L, why);
		return -1;
	}
	return 0;
}

/* Checks a list at the top of the stack. On failure pushes the reason
 * and returns -1. */
static int
config_check_list(lua_State *L, const struct config_option *o)
{
	int list = lua_gettop(L);
	lua_Integer n = (lua_Integer)lua_rawlen(L, list), count = 0;

	/* A sequence: keys 1..n and nothing else. */
	lua_pushnil(L);
	while (lua_next(L, list) != 0) {
		int isnum;
		lua_Integer k = lua_tointegerx(L, -2, &isnum);
		if (lua_type(L, -2) != LUA_TNUMBER || !isnum || k < 1 ||
		    k > n || lua_type(L, -1) != LUA_TSTRING) {
			lua_pop(L, 2);
			lua_pushliteral(L, "must be a list of strings");
			return -1;
		}
		count++;
		lua_pop(L, 1);
	}
	if (count != n) {
		lua_pushliteral(L, "must be a list of strings");
		return -1;
	}

	/* Seen items, as keys of a scratch table. */
	lua_newtable(L);
	for (lua_Integer i = 1; i <= n; i++) {
		lua_rawgeti(L, list, i);
		if (config_check_string(L, o) != 0) {
			lua_pushfstring(L, "item %I %s", i, lua_tostring(L, -1));
			return -1;
		}
		if (o->unique) {
			lua_pushvalue(L, -1);
			if (lua_rawget(L, list + 1) != LUA_TNIL) {
				size_t len;
				const char *s = lua_tolstring(L, -2, &len);
				lua_pushliteral(L, "lists ");
				config_push_quoted(L, s, len);
				lua_pushliteral(L, " twice");
				lua_concat(L, 3);
				return -1;
			}
			lua_pop(L, 1);
			lua_pushboolean(L, 1);
			lua_rawset(L, list + 1);
		} else
			lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return 0;
}

/*
 * Converts the Lua value at idx to JSON: a table whose keys are 1..n is
 * an array, one with string keys an object ({} when empty); strings must
 * be UTF-8, numbers finite. Returns NULL with *why set when the value has
 * no JSON form. Raises no Lua error, so config_apply may use it.
 */
static json_t *
config_json(lua_State *L, int idx, unsigned depth, const char **why)
{
	lua_Integer n, seq = 0, named = 0;
	json_t *j;
	size_t len;
	const char *s;

	idx = lua_absindex(L, idx);
	switch (lua_type(L, idx)) {
	case LUA_TBOOLEAN:
		return json_boolean(lua_toboolean(L, idx));
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx))
			return json_integer(lua_tointeger(L, idx));
		if (!isfinite(lua_tonumber(L, idx))) {
			*why = "holds a number that is not finite";
			return NULL;
		}
		return json_real(lua_tonumber(L, idx));
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &len);
		if ((j = json_stringn(s, len)) == NULL)
			*why = "holds a string that is not UTF-8";
		return j;
	case LUA_TTABLE:
		break;
	default:
		*why = "holds a value that is not a string, number, boolean "
		    "or table";
		return NULL;
	}
	if (depth >= CONFIG_JSON_DEPTH || !lua_checkstack(L, 4)) {
		*why = "is nested too deeply";
		return NULL;
	}
	n = (lua_Integer)lua_rawlen(L, idx);
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		lua_pop(L, 1);
		if (lua_type(L, -1) == LUA_TSTRING)
			named++;
		else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1)
			seq++; /* beyond n: a hole, caught below */
		else {
			lua_pop(L, 1);
			*why = "has a key that is neither a name nor a list "
			    "index";
			return NULL;
		}
	}
	if (seq > 0 && (named > 0 || seq != n)) {
		*why = named > 0 ? "mixes list items and named fields" :
		    "has a list with holes";
		return NULL;
	}
	if (seq > 0) {
		j = json_array();
		for (lua_Integer i = 1; i <= n; i++) {
			json_t *v;
			lua_rawgeti(L, idx, i);
			v = config_json(L, -1, depth + 1, why);
			lua_pop(L, 1);
			if (v == NULL) {
				json_decref(j);
				return NULL;
			}
			json_array_append_new(j, v);
		}
		return j;
	}
	j = json_object();
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		json_t *v;
		s = lua_tolstring(L, -2, &len);
		if (memchr(s, '\0', len) != NULL) {
			*why = "has a name with a NUL byte";
			v = NULL;
		} else
			v = config_json(L, -1, depth + 1, why);
		lua_pop(L, 1);
		if (v != NULL && json_object_set_new(j, s, v) == -1) {
			*why = "has a name that is not UTF-8";
			v = NULL;
		}
		if (v == NULL) {
			lua_pop(L, 1);
			json_decref(j);
			return NULL;
		}
	}
	return j;
}

/* Stores a checked number into c. */
static void
config_set_number(struct config *c, const struct config_option *o,
    lua_Integer v)
{
	void *p = (char *)c + o->offset;

	switch (o->type) {
	case CONFIG_INT:
	case CONFIG_LOG_LEVEL:
		*(int *)p = (int)v;
		break;
	case CONFIG_UINT:
		*(unsigned *)p = (unsigned)v;
		break;
	case CONFIG_SIZE:
		*(size_t *)p = (size_t)v;
		break;
	case CONFIG_BOOL:
		*(bool *)p = v != 0;
		break;
	default:
		PARLEY_ASSERT(0);
	}
}

/*
 * Checks the value at the top of the stack for option o. Numbers that
 * pass are stored into staged (for the checks between options). On
 * failure pushes the reason, without file, line or option name, and
 * returns -1.
 */
static int
config_check_value(lua_State *L, const struct config_option *o,
    struct config *staged)
{
	int type = lua_type(L, -1), isint;
	lua_Integer v;

	switch (o->type) {
	case CONFIG_STRING:
		if (type != LUA_TSTRING) {
			lua_pushliteral(L, "must be a string");
			return -1;
		}
		return config_check_string(L, o);
	case CONFIG_INT:
	case CONFIG_UINT:
	case CONFIG_SIZE:
		v = lua_tointegerx(L, -1, &isint);
		if (type != LUA_TNUMBER || !isint) {
			lua_pushliteral(L, "must be an integer");
			return -1;
		}
		if (v < o->min || v > o->max) {
			lua_pushfstring(L, "must be between %I and %I",
			    (lua_Integer)o->min, (lua_Integer)o->max);
			return -1;
		}
		config_set_number(staged, o, v);
		return 0;
	case CONFIG_BOOL:
		if (type != LUA_TBOOLEAN) {
			lua_pushliteral(L, "must be a boolean");
			return -1;
		}
		config_set_number(staged, o, lua_toboolean(L, -1));
		return 0;
	case CONFIG_STRLIST:
		if (type != LUA_TTABLE) {
			lua_pushliteral(L, "must be a list of strings");
			return -1;
		}
		return config_check_list(L, o);
	case CONFIG_LOG_LEVEL: {
		size_t len;
		const char *s;
		int level;

		if (type != LUA_TSTRING) {
			lua_pushliteral(L, "must be a string");
			return -1;
		}
		s = lua_tolstring(L, -1, &len);
		if (memchr(s, '\0', len) != NULL ||
		    (level = log_level_parse(s)) < 0) {
			lua_pushliteral(L,
			    "must be one of error, warn, info, debug");
			return -1;
		}
		config_set_number(staged, o, level);
		return 0;
	}
	case CONFIG_JSON: {
		const char *why = NULL;
		json_t *j;

		if (type != LUA_TTABLE) {
			lua_pushliteral(L, "must be a table");
			return -1;
		}
		if ((j = config_json(L, -1, 0, &why)) == NULL) {
			lua_pushstring(L, why);
			return -1;
		}
		json_decref(j);
		return 0;
	}
	}
	PARLEY_ASSERT(0);
	return -1;
}

static int
config_key_line(lua_State *L, struct config_run *run, const char *name)
{
	int line;

	lua_getfield(L, run->lines, name);
	line = (int)lua_tointeger(L, -1);
	lua_pop(L, 1);
	return line;
}

/*
 * Checks between options, on the staged values. Returns the line to
 * blame with the reason pushed, or -1 when all is well. The line is that
 * of whichever option the file set.
 */
static int
config_check_limits(lua_State *L, struct config_run *run,
    const struct config *s)
{
	int line;

	if (s->max_message_bytes >= s->max_frame_bytes) {
		line = config_key_line(L, run, "max_message_bytes");
		if (line != 0) {
			lua_pushfstring(L,
			    "option 'max_message_bytes' must be less than "
			    "max_frame_bytes (%I)",
			    (lua_Integer)s->max_frame_bytes);
			return line;
		}
		line = config_key_line(L, run, "max_frame_bytes");
		lua_pushfstring(L,
		    "option 'max_frame_bytes' must be greater than "
		    "max_message_bytes (%I)",
		    (lua_Integer)s->max_message_bytes);
		return line;
	}
	return -1;
}

/*
 * Walks every assigned key, keeping the complaint with the lowest line
 * (the first a person would fix) at the top of the stack. Returns its
 * line, or -1 when there is none.
 */
static int
config_check_all(lua_State *L, struct config_run *run)
{
	struct config staged = *run->c;
	int best = -1, top = lua_gettop(L);
	const char *best_key = NULL;

	lua_pushnil(L); /* the complaint so far */
	lua_pushnil(L);
	while (lua_next(L, run->proxy) != 0) {
		size_t len;
		const char *key = lua_tolstring(L, -2, &len);
		const struct config_option *o = config_find(key, len);
		int line;

		lua_pushvalue(L, -2);
		lua_rawget(L, run->lines);
		line = (int)lua_tointeger(L, -1);
		lua_pop(L, 1);

		if (o == NULL) {
			const struct config_option *near;

			lua_pushfstring(L, "%d: unknown option ", line);
			config_push_quoted(L, key, len);
			near = config_suggest(key, len);
			if (near != NULL)
				lua_pushfstring(L, " (did you mean '%s'?)",
				    near->name);
			else
				lua_pushliteral(L, "");
			lua_concat(L, 3);
		} else if (config_check_value(L, o, &staged) != 0) {
			lua_pushfstring(L, "%d: option '%s' %s", line, o->name,
			    lua_tostring(L, -1));
		} else {
			lua_settop(L, top + 2); /* keep the key */
			continue;
		}
		/* Lowest line first; on one line, the lowest key. */
		if (best < 0 || line < best ||
		    (line == best && strcmp(key, best_key) < 0)) {
			best = line;
			best_key = key; /* anchored by the proxy table */
			lua_replace(L, top + 1);
		}
		lua_settop(L, top + 2);
	}
	if (best >= 0) {
		lua_pushfstring(L, CONFIG_SRC ":%s", lua_tostring(L, top + 1));
		return best;
	}
	lua_settop(L, top);

	best = config_check_limits(L, run, &staged);
	if (best > 0)
		lua_pushfstring(L, CONFIG_SRC ":%d: %s", best,
		    lua_tostring(L, -1));
	else if (best == 0)
		lua_pushfstring(L, CONFIG_SRC ": %s", lua_tostring(L, -1));
	return best;
}

static void
config_strlist_free(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* Stores the checked value at the top of the stack into c. Nothing here
 * may raise a Lua error: C memory is being handed over. */
static void
config_apply(lua_State *L, struct config *c, const struct config_option *o)
{
	void *p = (char *)c + o->offset;
	struct strlist *l = p;
	const char *s;
	size_t len;

	switch (o->type) {
	case CONFIG_STRING:
		s = lua_tolstring(L, -1, &len);
		free(*(char **)p);
		*(char **)p = xstrndup(s, len);
		break;
	case CONFIG_INT:
	case CONFIG_UINT:
	case CONFIG_SIZE:
		config_set_number(c, o, lua_tointeger(L, -1));
		break;
	case CONFIG_BOOL:
		config_set_number(c, o, lua_toboolean(L, -1));
		break;
	case CONFIG_STRLIST:
		config_strlist_free(l);
		l->n = lua_rawlen(L, -1);
		l->v = xcalloc(l->n ? l->n : 1, sizeof *l->v);
		for (size_t i = 0; i < l->n; i++) {
			lua_rawgeti(L, -1, (lua_Integer)i + 1);
			s = lua_tolstring(L, -1, &len);
			l->v[i] = xstrndup(s, len);
			lua_pop(L, 1);
		}
		break;
	case CONFIG_LOG_LEVEL:
		config_set_number(c, o, log_level_parse(lua_tostring(L, -1)));
		break;
	case CONFIG_JSON: {
		const char *why = NULL;
		json_t *j = config_json(L, -1, 0, &why);

		PARLEY_ASSERT(j != NULL); /* config_check_value passed it */
		json_decref(*(json_t **)p);
		*(json_t **)p = j;
		break;
	}
	}
}

/* Runs in protected mode: any Lua error, ours included, ends the load
 * with nothing applied. */
static int
config_protected(lua_State *L)
{
	struct config_run *run = lua_touserdata(L, 1);
	const char *text = run->text;
	size_t len = run->len;
	int chunk;

	luaL_checkstack(L, 16, NULL);
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
		text += 3;
		len -= 3;
	}
	/* Text only: a precompiled chunk could crash the interpreter. */
	if (luaL_loadbufferx(L, text, len, CONFIG_CHUNK, "t") != LUA_OK)
		return lua_error(L);
	chunk = lua_gettop(L);

	lua_newtable(L);
	run->proxy = lua_gettop(L);
	lua_newtable(L);
	run->lines = lua_gettop(L);

	/* The environment: an empty table whose metatable sends reads to
	 * the proxy and records writes. Nothing else is reachable. */
	lua_newtable(L);
	lua_createtable(L, 0, 2);
	lua_pushvalue(L, run->proxy);
	lua_setfield(L, -2, "__index");
	lua_pushvalue(L, run->proxy);
	lua_pushvalue(L, run->lines);
	lua_pushcclosure(L, config_newindex, 2);
	lua_setfield(L, -2, "__newindex");
	lua_setmetatable(L, -2);
	if (lua_setupvalue(L, chunk, 1) == NULL)
		lua_pop(L, 1); /* a chunk without _ENV reads no globals */

	lua_pushvalue(L, chunk);
	lua_sethook(L, config_hook, LUA_MASKCOUNT, CONFIG_HOOK_EVERY);
	lua_call(L, 0, 0);
	lua_sethook(L, NULL, 0, 0);

	if (config_check_all(L, run) >= 0)
		return lua_error(L);

	lua_pushnil(L);
	while (lua_next(L, run->proxy) != 0) {
		size_t klen;
		const char *key = lua_tolstring(L, -2, &klen);
		config_apply(L, run->c, config_find(key, klen));
		lua_pop(L, 1);
	}
	return 0;
}

/* Turns Lua's message into "NAME:LINE: reason". */
static char *
config_cause(const char *name, int status, const char *msg)
{
	const char *prefix = CONFIG_SRC ":";
	size_t plen = strlen(prefix);
	char *cause;

	if (status == LUA_ERRMEM)
		xasprintf(&cause, "%s: the file uses more than %u MiB of memory",
		    name, CONFIG_MEMORY_LIMIT >> 20);
	else if (msg == NULL)
		xasprintf(&cause, "%s: cannot be read", name);
	else if (strncmp(msg, prefix, plen) == 0)
		xasprintf(&cause, "%s:%s", name, msg + plen);
	else
		xasprintf(&cause, "%s: %s", name, msg);
	return cause;
}

void
config_defaults(struct config *c)
{
	memset(c, 0, sizeof *c);
	for (size_t i = 0; i < config_noptions; i++) {
		const struct config_option *o = &config_options[i];
		void *p = (char *)c + o->offset;
		struct strlist *l = p;

		switch (o->type) {
		case CONFIG_STRING:
			*(char **)p = o->def_str ? xstrdup(o->def_str) : NULL;
			break;
		case CONFIG_INT:
		case CONFIG_UINT:
		case CONFIG_SIZE:
		case CONFIG_BOOL:
			config_set_number(c, o, o->def_num);
			break;
		case CONFIG_STRLIST:
			l->n = 0;
			while (o->def_list != NULL && o->def_list[l->n] != NULL)
				l->n++;
			l->v = xcalloc(l->n ? l->n : 1, sizeof *l->v);
			for (size_t j = 0; j < l->n; j++)
				l->v[j] = xstrdup(o->def_list[j]);
			break;
		case CONFIG_LOG_LEVEL:
			PARLEY_ASSERT(log_level_parse(o->def_str) >= 0);
			config_set_number(c, o, log_level_parse(o->def_str));
			break;
		case CONFIG_JSON:
			*(json_t **)p = NULL;
			break;
		}
	}
}

int
config_load_string(struct config *c, const char *name, const char *text,
    size_t len, char **cause)
{
	struct config_run run = { .text = text, .len = len, .c = c };
	lua_State *L;
	int status;

	L = lua_newstate(config_alloc, &run);
	if (L == NULL) {
		xasprintf(cause, "%s: cannot create a Lua state", name);
		return -1;
	}
	lua_pushcfunction(L, config_protected);
	lua_pushlightuserdata(L, &run);
	status = lua_pcall(L, 1, 0, 0);
	if (status != LUA_OK) {
		*cause = config_cause(name, status, lua_tostring(L, -1));
		lua_close(L);
		return -1;
	}
	lua_close(L);
	return 0;
}

int
config_load(struct config *c, const char *path, char **cause)
{
	FILE *f;
	char *text;
	size_t len;
	int error, rc;

	if ((f = fopen(path, "r")) == NULL) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		return -1;
	}
	text = xmalloc(CONFIG_FILE_LIMIT + 1);
	len = fread(text, 1, CONFIG_FILE_LIMIT + 1, f);
	error = ferror(f) ? errno : 0;
	fclose(f);
	if (error != 0) {
		xasprintf(cause, "%s: %s", path, strerror(error));
		free(text);
		return -1;
	}
	if (len > CONFIG_FILE_LIMIT) {
		xasprintf(cause, "%s: larger than %u KiB", path,
		    CONFIG_FILE_LIMIT >> 10);
		free(text);
		return -1;
	}
	rc = config_load_string(c, path, text, len, cause);
	free(text);
	return rc;
}

void
config_free(struct config *c)
{
	for (size_t i = 0; i < config_noptions; i++) {
		const struct config_option *o = &config_options[i];
		void *p = (char *)c + o->offset;

		if (o->type == CONFIG_STRING) {
			free(*(char **)p);
			*(char **)p = NULL;
		} else if (o->type == CONFIG_STRLIST)
			config_strlist_free(p);
		else if (o->type == CONFIG_JSON) {
			json_decref(*(json_t **)p);
			*(json_t **)p = NULL;
		}
	}
}
