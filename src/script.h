/*
 * script.h: what script.c (the Lua state, its sandbox and limits, loading,
 * reloading and every call into Lua) and script-api.c (the parley.*
 * functions and the handles scripts are given) share. Nothing else
 * includes it: the rest of the daemon sees the script.c section of
 * parley.h.
 */
#ifndef SCRIPT_H
#define SCRIPT_H

#include <stdbool.h>
#include <stdint.h>

#include <lua.h>

#include "parley.h"

#define SCRIPT_MAX_HOOKS 256     /* parley.on() calls per script */
#define SCRIPT_MAX_COMMANDS 256  /* parley.command() calls per script */
#define SCRIPT_MAX_TIMERS 10000  /* timers pending per script */
#define SCRIPT_MAX_DEPTH 8       /* calls into Lua nested through C */
#define SCRIPT_TEXT_MAX 65536    /* a notice, reason or help text */

/* Metatable names in the registry. */
#define SCRIPT_USER_MT "parley.user"
#define SCRIPT_ROOM_MT "parley.room"
#define SCRIPT_TIMER_MT "parley.timer"

struct script;
struct script_state;

/* One parley.on() registration. */
struct script_hook {
	struct script_hook *next;
	struct script *script;
	enum hook_event event;
	int priority;
	int fn;            /* registry reference of the function */
	struct hook *hook; /* in the chain, or NULL while not */
};

/* One parley.command() registration. */
struct script_command {
	struct script_command *next;
	struct script *script;
	char *name;
	char *usage;
	char *help;
	int fn;
	bool registered; /* in command.c's registry */
};

/*
 * A timer lives inside its Lua userdata (the handle parley.after returns);
 * the userdata's user value is the function. While it is pending it is
 * anchored by a registry reference and linked into its script's list, so
 * neither the collector nor a reload can free it under the loop.
 */
struct script_timer {
	struct loop_timer lt; /* first: the loop hands this back */
	struct script *script;
	struct script_timer *prev, *next;
	uint64_t delay_ms;
	uint64_t interval_ms; /* 0: fires once */
	int ref;              /* registry reference while pending */
	bool pending;
};

/* One loaded script: its environment and what it registered. */
struct script {
	struct script *next;
	struct script_state *state;
	char *name;
	char *path;
	char *owner; /* "lua:<name>", for logs and the registries */
	int env;     /* registry reference of its _ENV */
	bool deny_on_failure; /* on_error: a failed deciding hook refuses */
	bool shadow;          /* verdicts logged and counted, not enforced */
	uint64_t hook_errors[HOOK_COUNT]; /* failed hook calls, per event */
	uint64_t shadow_verdicts[HOOK_COUNT][HOOK_STOP + 1]; /* shadow mode */
	struct script_hook *hooks;
	size_t nhooks;
	struct script_command *commands;
	size_t ncommands;
	struct script_timer *timers;
	size_t ntimers;
};

/* One Lua state with every enabled script in it. */
struct script_state {
	lua_State *L;
	size_t mem_used;
	size_t mem_limit;
	uint64_t instr_limit;
	int hook_every;   /* instructions between two budget checks */
	int64_t budget;   /* instructions left in the current call */
	bool exhausted;   /* the budget ran out: raise until unwound */
	unsigned depth;   /* calls into Lua in progress */
	struct script *running; /* whose call is in progress, or NULL */
	bool active;      /* hooks and commands are in the registries */
	int templates;    /* registry reference: the sandbox's libraries */
	char *oper_hash;  /* lower-case hex SHA-256, or NULL */
	struct script *scripts; /* in load (name) order */
	struct hook *forget_hook;
	int users;        /* registry reference: id -> user handle */
	int rooms;        /* registry reference: room pointer -> handle */
	int data;         /* registry reference: id -> user.data table */
	uint64_t failures;
};

/* script.c */
extern char script_drop_tag; /* parley.DROP is a light userdata to it */
extern char script_stop_tag; /* parley.STOP */
struct script_state *script_state_of(lua_State *L);
/* The owner ("lua:NAME") of the script whose call is running, for the
 * log and the audit of what it does. */
const char *script_running_owner(lua_State *L);
/* Adds a hook of s for ev calling the function at idx. */
void script_hook_new(lua_State *L, struct script *s, enum hook_event ev,
    int idx, int priority);
/* Removes s's hook of ev whose function is the value at idx (the first
 * one added, when several); false when there is none. */
bool script_hook_remove(lua_State *L, struct script *s, enum hook_event ev,
    int idx);
/* Logs msg from s, control characters made harmless. */
void script_log_message(int level, const struct script *s, const char *msg);
/* Puts a hook, command or timer into service when the state is active. */
void script_hook_attach(struct script_hook *h);
void script_command_attach(struct script_command *cmd);
void script_timer_start(struct script_timer *t);
/* Takes a pending timer out of service (it may then be collected). */
void script_timer_stop(lua_State *L, struct script_timer *t);
/* The protocol error named code ("rejected", ...); -1 when unknown. */
int script_err_parse(const char *code);
/* Pushes a JSON value as Lua (null as nil). */
void script_push_json(lua_State *L, const json_t *j);
/* Checks the argument at idx is a string a client may be sent: valid
 * UTF-8 without NUL, at most max bytes; raises otherwise. */
const char *script_check_text(lua_State *L, int idx, size_t max,
    size_t *len);
/* Pushes a userdata that json_decref()s j when collected, so a Lua error
 * between taking j and using it up cannot leak it. */
void script_json_guard(lua_State *L, json_t *j);

/* script-api.c */
/* State-wide set-up: handle metatables and caches. */
void script_api_init(lua_State *L, struct script_state *st);
/* Pushes the parley table of script s. */
void script_api_open(lua_State *L, struct script *s);
/* Pushes the (cached) handle of c or r. */
void script_push_user(lua_State *L, struct client *c);
void script_push_room(lua_State *L, struct room *r);
/* Drops the handle and user.data of a client that is gone. */
void script_api_forget(lua_State *L, uint64_t id);
/* The key-value store that outlives states. */
void script_store_free(void);

#endif
