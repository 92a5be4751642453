/*
 * plugin-host.h: what the plugin files share: the record of one loaded
 * plugin and the registrations it made, the handle checks, and the
 * function each concern's file offers to fill its part of the host
 * table. Nothing else needs it: the rest of the daemon sees plugins only
 * through parley.h.
 */
#ifndef PLUGIN_HOST_H
#define PLUGIN_HOST_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "parley/plugin.h"

struct hook;
struct plugin_sink;
struct plugin_retired;

/* One hook a plugin added (in info mode only recorded: h is NULL). */
struct plugin_hook {
	struct plugin_hook *next;
	struct plugin *p;
	uint64_t id;
	int event; /* enum parley_event_type */
	int priority;
	struct hook *h;
	parley_hook_fn fn;
	void *arg;
};

struct plugin_command {
	struct plugin_command *next;
	struct plugin *p;
	char *name;
	char *usage;
	parley_command_fn fn;
	void *arg;
};

struct plugin_timer {
	struct loop_timer lt; /* first: the loop hands this back */
	struct plugin_timer *next;
	struct plugin *p;
	uint64_t id;
	uint64_t delay;
	uint64_t interval; /* 0: once */
	parley_timer_fn fn;
	void *arg;
	bool firing;    /* its callback is running */
	bool cancelled; /* cancelled from its own callback */
};

/* A watched descriptor (since ABI 1.1). Kept until the plugin goes, even
 * once unwatched: the loop may still hold its address in the batch of
 * events it is dispatching. */
struct plugin_watch {
	struct loop_fd lfd; /* first: the loop hands this back */
	struct plugin_watch *next;
	struct plugin *p;
	uint64_t id;   /* 0 while unused */
	int fd;
	unsigned events; /* PARLEY_FD_* */
	bool added;    /* in the epoll set */
	parley_fd_fn fn;
	void *arg;
};

/* One loaded plugin; parley_ctx handles point at it. */
struct plugin {
	struct plugin *next;
	char *entry; /* as configured: a name or a path */
	char *path;  /* the file opened */
	void *dl;
	const struct parley_plugin *desc;
	char *name;
	char *owner; /* "plugin:NAME": hooks, commands, logs */
	bool info_only;  /* --plugin-info: registrations are only recorded */
	bool has_store;
	json_t *options; /* an object (own reference) */
	char *options_text;
	struct plugin_retired *retired; /* options before reloads */
	struct parley_history_store store;
	struct plugin_hook *hooks;
	struct plugin_command *commands;
	struct plugin_timer *timers;
	struct plugin_watch *watches;
	struct plugin_sink *deferred; /* history reads answered later */
	bool health_set;  /* health_report called (since 1.2) */
	bool health_ok;
	char *health_detail;
	uint64_t next_id; /* hook and timer ids */
	unsigned bad_verdicts; /* unknown verdicts logged so far */
};

static inline struct plugin *
plugin_of(parley_ctx *ctx)
{
	return (struct plugin *)ctx;
}

static inline parley_ctx *
plugin_ctx(struct plugin *p)
{
	return (parley_ctx *)p;
}

/* plugin.c: shared helpers. */
/* enum parley_error (fixed numbers) to and from enum proto_err. */
bool plugin_error_known(int code);
enum proto_err plugin_error_to_proto(int code);
int plugin_error_from_proto(enum proto_err e);
void plugin_health_report(struct plugin *p, bool ok, const char *detail);
/* The live object behind a handle the plugin handed back, or NULL
 * (logged, naming what) when it is not a live client or room. */
struct client *plugin_client(struct plugin *p, parley_client *c,
    const char *what);
struct room *plugin_room(struct plugin *p, parley_room *r, const char *what);
#define PLUGIN_REASON_MAX 1024     /* a deny or kick reason */
#define PLUGIN_CLOSE_REASON_MAX 123 /* a close frame's payload less the code */
/* A copy of text cut to at most max bytes at a character boundary. */
char *plugin_cut(const char *text, size_t max);
/* True when text is a NUL-terminated UTF-8 string fit for a frame; logs
 * a warning naming what otherwise. */
bool plugin_text_ok(struct plugin *p, const char *what, const char *text);

/* plugin-hook.c: hooks and commands. */
const char *plugin_event_name(int event);
void plugin_hooks_forget(struct plugin *p);
void plugin_hook_host(struct parley_host *h);

/* plugin-timer.c: timers and watched descriptors. */
void plugin_timers_stop(struct plugin *p);
void plugin_watches_free(struct plugin *p);
void plugin_timer_host(struct parley_host *h);

/* plugin-chat.c: clients, rooms and remote members. */
void plugin_chat_host(struct parley_host *h);
/* Drops p's relay (relay_set). */
void plugin_relays_forget(struct plugin *p);

/* history-plugin.c: the history store. Forgetting answers the reads
 * left open with "internal" and gives history back to the ring. */
void plugin_store_forget(struct plugin *p);
void plugin_history_host(struct parley_host *h);

/* plugin-state.c: the state store role and the audit trail. Forgetting
 * gives the state back to the embedded store alone. */
void plugin_state_forget(struct plugin *p);
void plugin_state_host(struct parley_host *h);

#endif
