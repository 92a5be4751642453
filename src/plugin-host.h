/*
 * plugin-host.h: what the plugin loader (plugin.c) and the host function
 * table (plugin-host.c) share: the record of one loaded plugin and the
 * registrations it made. Nothing else needs it: the rest of the daemon
 * sees plugins only through parley.h.
 */
#ifndef PLUGIN_HOST_H
#define PLUGIN_HOST_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "parley/plugin.h"

struct hook;
struct plugin_sink;

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

/* The tables handed to init: normal and --plugin-info (recording). */
extern const struct parley_host plugin_host;
extern const struct parley_host plugin_host_info;

/* plugin.c: registrations, shared with the host table. */
enum proto_err plugin_error_to_proto(int code);
int plugin_error_from_proto(enum proto_err e);
uint64_t plugin_hook_add(struct plugin *p, int event, int priority,
    parley_hook_fn fn, void *arg);
int plugin_hook_remove(struct plugin *p, uint64_t id);
int plugin_command_add(struct plugin *p, const char *name,
    const char *usage, const char *help, parley_command_fn fn, void *arg);
void plugin_command_reply(struct plugin *p, const struct parley_command *cmd,
    const char *text);
uint64_t plugin_timer_add(struct plugin *p, uint64_t delay,
    uint64_t interval, parley_timer_fn fn, void *arg);
int plugin_timer_cancel(struct plugin *p, uint64_t id);
int plugin_counter_change(struct plugin *p, const char *name, int64_t v,
    bool add);
int plugin_metric_declare(struct plugin *p, const char *name, int type,
    const char *help);
int plugin_metric_change(struct plugin *p, const char *name,
    const char *const *labels, double v, bool add);
int plugin_store_register(struct plugin *p,
    const struct parley_history_store *store);
int plugin_store_emit(struct plugin *p, parley_history_sink *sink,
    const struct parley_history_msg *m);
parley_history_sink *plugin_store_defer(struct plugin *p,
    parley_history_sink *sink);
void plugin_store_done(struct plugin *p, parley_history_sink *sink,
    int status);
void plugin_health_report(struct plugin *p, bool ok, const char *detail);
/* plugin-host.c: stops and frees the plugin's descriptor watches. */
void plugin_watches_free(struct plugin *p);
#define PLUGIN_REASON_MAX 1024     /* a deny or kick reason */
#define PLUGIN_CLOSE_REASON_MAX 123 /* a close frame's payload less the code */
/* A copy of text cut to at most max bytes at a character boundary. */
char *plugin_cut(const char *text, size_t max);
/* True when text is a NUL-terminated UTF-8 string fit for a frame; logs
 * a warning naming what otherwise. */
bool plugin_text_ok(struct plugin *p, const char *what, const char *text);

#endif
