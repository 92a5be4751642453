/*
 * plugin.c: native plugins. Finds each configured plugin (a name in the
 * plugin directory, or a path), opens it with dlopen(RTLD_NOW |
 * RTLD_LOCAL), checks its descriptor against the ABI of
 * include/parley/plugin.h and runs its init with the host table of
 * plugin-host.c. Anything wrong refuses the plugin with a line saying why,
 * and the server does not start. It also keeps what plugins register
 * (hooks in hook.c's chains, commands, timers, counters, the history
 * store) so that it can all be removed when the plugin goes, and answers
 * `parleyd --plugin-info`.
 */
#include "config.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "parley.h"
#include "plugin-host.h"

#ifndef PARLEY_PLUGINDIR
#define PARLEY_PLUGINDIR "/usr/local/lib/parley"
#endif

#define PLUGIN_NAME_MAX 64
#define PLUGIN_COMMAND_MAX 32
#define PLUGIN_COUNTER_MAX 64
#define PLUGIN_BAD_VERDICTS_LOGGED 10
#define PLUGIN_CMD_MAGIC 0x70636d64u  /* "pcmd" */
#define PLUGIN_SINK_MAGIC 0x7073696eu /* "psin": during a read */
#define PLUGIN_SINK_LATER_MAGIC 0x70736c74u /* "pslt": deferred */

static struct plugin *plugin_list; /* load order */
static struct plugin *plugin_store_owner;

/* The descriptor of ABI 1.0 up to its reserved fields. */
#define PLUGIN_DESC_MIN offsetof(struct parley_plugin, reserved)
/* A store of ABI 1.0 up to its reserved fields. */
#define PLUGIN_STORE_MIN offsetof(struct parley_history_store, reserved)

static const enum hook_event plugin_events[PARLEY_EV_LIMIT] = {
	[PARLEY_EV_CONNECT] = HOOK_CONNECT,
	[PARLEY_EV_USERNAME] = HOOK_USERNAME,
	[PARLEY_EV_CREATE_ROOM] = HOOK_CREATE_ROOM,
	[PARLEY_EV_JOIN] = HOOK_JOIN,
	[PARLEY_EV_MESSAGE] = HOOK_MESSAGE,
	[PARLEY_EV_LEAVE] = HOOK_LEAVE,
	[PARLEY_EV_DISCONNECT] = HOOK_DISCONNECT,
	[PARLEY_EV_SERVER_START] = HOOK_SERVER_START,
	[PARLEY_EV_SERVER_STOP] = HOOK_SERVER_STOP,
	[PARLEY_EV_TICK] = HOOK_TICK,
	[PARLEY_EV_POST] = HOOK_POST,
};

/* enum parley_error (fixed numbers) to and from enum proto_err. */
static const enum proto_err plugin_errors[] = {
	[PARLEY_OK] = PROTO_OK,
	[PARLEY_ERR_REJECTED] = PROTO_ERR_REJECTED,
	[PARLEY_ERR_FORBIDDEN] = PROTO_ERR_FORBIDDEN,
	[PARLEY_ERR_INVALID_NAME] = PROTO_ERR_INVALID_NAME,
	[PARLEY_ERR_NAME_TAKEN] = PROTO_ERR_NAME_TAKEN,
	[PARLEY_ERR_RATE_LIMITED] = PROTO_ERR_RATE_LIMITED,
	[PARLEY_ERR_MESSAGE_TOO_LONG] = PROTO_ERR_MESSAGE_TOO_LONG,
	[PARLEY_ERR_BAD_REQUEST] = PROTO_ERR_BAD_REQUEST,
	[PARLEY_ERR_ROOM_EXISTS] = PROTO_ERR_ROOM_EXISTS,
	[PARLEY_ERR_ROOM_NOT_FOUND] = PROTO_ERR_ROOM_NOT_FOUND,
	[PARLEY_ERR_NOT_IN_ROOM] = PROTO_ERR_NOT_IN_ROOM,
	[PARLEY_ERR_UNKNOWN_COMMAND] = PROTO_ERR_UNKNOWN_COMMAND,
	[PARLEY_ERR_UNSUPPORTED] = PROTO_ERR_UNSUPPORTED,
	[PARLEY_ERR_INTERNAL] = PROTO_ERR_INTERNAL,
};
#define PLUGIN_NERRORS (sizeof plugin_errors / sizeof plugin_errors[0])

enum proto_err
plugin_error_to_proto(int code)
{
	if (code < 0 || (size_t)code >= PLUGIN_NERRORS)
		return PROTO_ERR_INTERNAL;
	return plugin_errors[code];
}

int
plugin_error_from_proto(enum proto_err e)
{
	for (size_t i = 0; i < PLUGIN_NERRORS; i++) {
		if (plugin_errors[i] == e)
			return (int)i;
	}
	return PARLEY_ERR_INTERNAL;
}

static const char *
plugin_event_name(int event)
{
	if (event <= 0 || event >= PARLEY_EV_LIMIT)
		return "?";
	return hook_event_name(plugin_events[event]);
}

char *
plugin_cut(const char *text, size_t max)
{
	size_t n = strlen(text);

	if (n > max) {
		n = max;
		/* Back off continuation bytes to a character's start. */
		while (n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80)
			n--;
	}
	return xstrndup(text, n);
}

bool
plugin_text_ok(struct plugin *p, const char *what, const char *text)
{
	if (text != NULL && utf8_valid(text, strlen(text)))
		return true;
	log_warn(p->owner, "%s: %s ignored", what,
	    text == NULL ? "NULL text" : "text that is not UTF-8");
	return false;
}

/* ---------------------------------------------------------------------
 * Hooks
 */

static enum hook_verdict
plugin_hook_call(struct hook_args *a, void *arg)
{
	struct plugin_hook *ph = arg;
	struct plugin *p = ph->p;
	struct parley_event ev;
	int v;

	memset(&ev, 0, sizeof ev);
	ev.size = sizeof ev;
	ev.type = (uint32_t)ph->event;
	ev.client = (parley_client *)a->client;
	ev.room = (parley_room *)a->room;
	ev.text = a->text;
	ev.text_len = a->text ? a->text_len : 0;
	ev.reason = a->reason;
	ev.client_id = a->client ? a->client->id : 0;
	ev.wall_ms = loop_wall_ms();
	if (a->event == HOOK_POST) {
		ev.sender = a->sender;
		ev.sender_len = strlen(a->sender);
		ev.flags = a->action ? PARLEY_MSG_ACTION : 0;
	}
	v = ph->fn(plugin_ctx(p), &ev, ph->arg);
	switch (v) {
	case PARLEY_PASS:
		return HOOK_PASS;
	case PARLEY_DENY: {
		char *reason = NULL;
		if (ev.deny_reason != NULL &&
		    plugin_text_ok(p, "deny reason", ev.deny_reason))
			/* A refused connection's reason goes in a close
			 * frame. */
			reason = plugin_cut(ev.deny_reason, a->event ==
			    HOOK_CONNECT ? PLUGIN_CLOSE_REASON_MAX :
			    PLUGIN_REASON_MAX);
		hook_deny(a, ev.deny_code == PARLEY_OK ? PROTO_ERR_REJECTED :
		    plugin_error_to_proto(ev.deny_code), reason);
		free(reason);
		return HOOK_DENY;
	}
	case PARLEY_MODIFY:
		if (a->event != HOOK_USERNAME && a->event != HOOK_MESSAGE)
			return HOOK_PASS;
		if (ev.new_text == NULL) {
			log_warn(p->owner, "%s hook returned MODIFY without "
			    "new_text", plugin_event_name(ph->event));
			return HOOK_PASS;
		}
		/* The core checks the new text as it checks a client's. */
		hook_modify(a, ev.new_text, ev.new_text_len);
		return HOOK_MODIFY;
	case PARLEY_DROP:
		return HOOK_DROP;
	case PARLEY_STOP:
		return HOOK_STOP;
	default:
		if (p->bad_verdicts++ < PLUGIN_BAD_VERDICTS_LOGGED)
			log_warn(p->owner, "%s hook returned unknown verdict "
			    "%d, taken as PASS", plugin_event_name(ph->event),
			    v);
		return HOOK_PASS;
	}
}

uint64_t
plugin_hook_add(struct plugin *p, int event, int priority,
    parley_hook_fn fn, void *arg)
{
	struct plugin_hook *ph;

	if (event <= 0 || event >= PARLEY_EV_LIMIT || fn == NULL) {
		log_error(p->owner, "hook_add: %s", fn == NULL ?
		    "no function" : "unknown event");
		return 0;
	}
	ph = xcalloc(1, sizeof *ph);
	ph->p = p;
	ph->id = ++p->next_id;
	ph->event = event;
	ph->priority = priority;
	ph->fn = fn;
	ph->arg = arg;
	if (!p->info_only)
		ph->h = hook_add(plugin_events[event], priority, p->owner,
		    plugin_hook_call, ph);
	ph->next = p->hooks;
	p->hooks = ph;
	return ph->id;
}

int
plugin_hook_remove(struct plugin *p, uint64_t id)
{
	for (struct plugin_hook **pp = &p->hooks; *pp != NULL;
	    pp = &(*pp)->next) {
		struct plugin_hook *ph = *pp;
		if (ph->id != id)
			continue;
		*pp = ph->next;
		if (ph->h != NULL)
			hook_remove(ph->h);
		free(ph);
		return 0;
	}
	return -1;
}

/* ---------------------------------------------------------------------
 * Commands
 */

/* One running command: cmd is what the plugin sees; command_reply finds
 * the rest from it. */
struct plugin_cmd_call {
	struct parley_command cmd;
	uint32_t magic;
	const struct command_ctx *cc;
};

static enum proto_err
plugin_command_call(const struct command_ctx *cc, void *arg)
{
	struct plugin_command *pc = arg;
	struct plugin_cmd_call call;
	int rc;

	memset(&call, 0, sizeof call);
	call.cmd.size = sizeof call.cmd;
	call.cmd.client = (parley_client *)cc->client;
	call.cmd.room = (parley_room *)cc->room;
	call.cmd.name = pc->name;
	call.cmd.args = cc->args;
	call.cmd.args_len = strlen(cc->args);
	call.magic = PLUGIN_CMD_MAGIC;
	call.cc = cc;
	rc = pc->fn(plugin_ctx(pc->p), &call.cmd, pc->arg);
	call.magic = 0;
	if (rc < 0 || (size_t)rc >= PLUGIN_NERRORS) {
		log_warn(pc->p->owner, "/%s returned unknown code %d", pc->name,
		    rc);
		return PROTO_ERR_INTERNAL;
	}
	return plugin_error_to_proto(rc);
}

static bool
plugin_command_name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > PLUGIN_COMMAND_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		    ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

int
plugin_command_add(struct plugin *p, const char *name, const char *usage,
    const char *help, parley_command_fn fn, void *arg)
{
	struct plugin_command *pc;

	if (!plugin_command_name_ok(name) || fn == NULL) {
		log_error(p->owner, "command_register: %s", fn == NULL ?
		    "no function" : "invalid command name");
		return -1;
	}
	if ((usage != NULL && !plugin_text_ok(p, "command usage", usage)) ||
	    (help != NULL && !plugin_text_ok(p, "command help", help)))
		return -1;
	pc = xcalloc(1, sizeof *pc);
	pc->p = p;
	pc->name = xstrdup(name);
	pc->usage = usage ? xstrdup(usage) : NULL;
	pc->fn = fn;
	pc->arg = arg;
	if (!p->info_only)
		command_register(name, p->owner, usage, help,
		    plugin_command_call, pc);
	pc->next = p->commands;
	p->commands = pc;
	return 0;
}

void
plugin_command_reply(struct plugin *p, const struct parley_command *cmd,
    const char *text)
{
	const struct plugin_cmd_call *call;

	if (cmd == NULL)
		return;
	call = container_of(cmd, struct plugin_cmd_call, cmd);
	if (call->magic != PLUGIN_CMD_MAGIC) {
		log_warn(p->owner, "command_reply outside a command");
		return;
	}
	if (!plugin_text_ok(p, "command_reply", text))
		return;
	proto_notice(call->cc->client, call->cc->room, text, call->cc->id);
}

/* ---------------------------------------------------------------------
 * Timers
 */

static void
plugin_timer_unlink(struct plugin_timer *t)
{
	for (struct plugin_timer **pp = &t->p->timers; *pp != NULL;
	    pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			return;
		}
	}
}

static void
plugin_timer_fire(struct loop_timer *lt)
{
	struct plugin_timer *t = (struct plugin_timer *)lt;

	t->firing = true;
	t->fn(plugin_ctx(t->p), t->id, t->arg);
	t->firing = false;
	if (t->cancelled || t->interval == 0) {
		plugin_timer_unlink(t);
		free(t);
		return;
	}
	loop_timer_set(&t->lt, t->interval, plugin_timer_fire);
}

uint64_t
plugin_timer_add(struct plugin *p, uint64_t delay, uint64_t interval,
    parley_timer_fn fn, void *arg)
{
	struct plugin_timer *t;

	if (fn == NULL) {
		log_error(p->owner, "timer_add: no function");
		return 0;
	}
	t = xcalloc(1, sizeof *t);
	t->p = p;
	t->id = ++p->next_id;
	t->delay = delay;
	t->interval = interval;
	t->fn = fn;
	t->arg = arg;
	t->next = p->timers;
	p->timers = t;
	if (!p->info_only)
		loop_timer_set(&t->lt, delay, plugin_timer_fire);
	return t->id;
}

int
plugin_timer_cancel(struct plugin *p, uint64_t id)
{
	struct plugin_timer *t;

	for (t = p->timers; t != NULL; t = t->next) {
		if (t->id == id && !t->cancelled)
			break;
	}
	if (t == NULL)
		return -1;
	if (t->firing) {
		/* plugin_timer_fire frees it when the callback returns. */
		t->cancelled = true;
		return 0;
	}
	loop_timer_cancel(&t->lt);
	plugin_timer_unlink(t);
	free(t);
	return 0;
}

static void
plugin_timers_stop(struct plugin *p)
{
	while (p->timers != NULL) {
		struct plugin_timer *t = p->timers;
		p->timers = t->next;
		loop_timer_cancel(&t->lt);
		free(t);
	}
}

/* ---------------------------------------------------------------------
 * Counters: a small registry keyed "plugin/name", for the metrics
 */

struct plugin_counter {
	char *plugin;
	char *name;
	int64_t value;
};

static struct map plugin_counters;

static bool
plugin_counter_name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > PLUGIN_COUNTER_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		    ch == '_'))
			return false;
	}
	return true;
}

int
plugin_counter_change(struct plugin *p, const char *name, int64_t v,
    bool add)
{
	struct plugin_counter *pc;
	char *key;
	int n;

	if (!plugin_counter_name_ok(name)) {
		log_error(p->owner, "counter: invalid name");
		return -1;
	}
	n = xasprintf(&key, "%s/%s", p->name, name);
	pc = map_find(&plugin_counters, key, (size_t)n);
	if (pc == NULL) {
		pc = xcalloc(1, sizeof *pc);
		pc->plugin = xstrdup(p->name);
		pc->name = xstrdup(name);
		map_add(&plugin_counters, key, (size_t)n, pc);
	}
	free(key);
	/* Wraps like the unsigned counters it stands for. */
	pc->value = add ? (int64_t)((uint64_t)pc->value + (uint64_t)v) : v;
	return 0;
}

static void
plugin_counters_remove(struct plugin *p)
{
	size_t pos = 0;
	const char *key;
	void *v;

	while (map_next(&plugin_counters, &pos, &key, &v)) {
		struct plugin_counter *pc = v;
		if (strcmp(pc->plugin, p->name) != 0)
			continue;
		map_remove(&plugin_counters, key, strlen(key));
		free(pc->plugin);
		free(pc->name);
		free(pc);
	}
	if (plugin_counters.count == 0)
		map_free(&plugin_counters);
}

void
plugin_counter_each(void (*fn)(const char *plugin, const char *name,
    int64_t value, void *arg), void *arg)
{
	size_t pos = 0;
	void *v;

	while (map_next(&plugin_counters, &pos, NULL, &v)) {
		struct plugin_counter *pc = v;
		fn(pc->plugin, pc->name, pc->value, arg);
	}
}

static void
plugin_metrics_line(const char *plugin, const char *name, int64_t value,
    void *arg)
{
	/* Names are checked: [a-z0-9_] and [A-Za-z0-9_.-], nothing to
	 * escape in a label. */
	metrics_printf(arg, "parley_plugin_counter{plugin=\"%s\",name=\"%s\"} "
	    "%lld\n", plugin, name, (long long)value);
}

static void
plugin_metrics(struct metrics_buf *mb)
{
	if (plugin_counters.count == 0)
		return;
	metrics_printf(mb, "# HELP parley_plugin_counter counters kept by "
	    "plugins\n# TYPE parley_plugin_counter untyped\n");
	plugin_counter_each(plugin_metrics_line, mb);
}

/* ---------------------------------------------------------------------
 * The history store: history.c calls these, they call the plugin.
 */

struct plugin_sink {
	uint32_t magic;
	struct plugin *p;
	json_t *messages;
	size_t limit;
	bool overflow_logged;
	/* A read answered later (since 1.2): the heap sink that replaces
	 * this one, and the request it answers. */
	struct plugin_sink *deferred;
	struct history_waiter *waiter;
	struct plugin_sink *next, *prev; /* p->deferred */
};

static int
plugin_store_append(void *arg, const char *room, size_t room_len,
    uint64_t seq, uint64_t ts, const char *sender, const char *text,
    size_t len, bool action)
{
	struct plugin *p = arg;
	struct parley_history_msg m;

	memset(&m, 0, sizeof m);
	m.size = sizeof m;
	m.flags = action ? PARLEY_MSG_ACTION : 0;
	m.room = room;
	m.room_len = room_len;
	m.seq = seq;
	m.ts = ts;
	m.sender = sender;
	m.sender_len = strlen(sender);
	m.text = text;
	m.text_len = len;
	return p->store.append(plugin_ctx(p), &m, p->store.arg);
}

static json_t *
plugin_store_read(void *arg, const char *room, size_t room_len,
    uint64_t before, size_t limit, struct history_waiter *w, bool *later)
{
	struct plugin *p = arg;
	struct plugin_sink sink = { .magic = PLUGIN_SINK_MAGIC, .p = p,
		.messages = json_array(), .limit = limit, .waiter = w };
	int rc;

	*later = false;
	rc = p->store.read(plugin_ctx(p), room, room_len, before,
	    limit > UINT32_MAX ? UINT32_MAX : (uint32_t)limit,
	    (parley_history_sink *)&sink, p->store.arg);
	sink.magic = 0;
	if (sink.deferred != NULL) {
		/* Whatever rc says, the plugin holds the deferred sink and
		 * answers through history_done. */
		if (rc != PARLEY_HISTORY_LATER)
			log_warn(p->owner, "history read deferred its answer "
			    "but returned %d, not PARLEY_HISTORY_LATER", rc);
		json_decref(sink.messages);
		*later = true;
		return NULL;
	}
	if (rc != 0) {
		if (rc == PARLEY_HISTORY_LATER)
			log_warn(p->owner, "history read returned "
			    "PARLEY_HISTORY_LATER without history_defer");
		json_decref(sink.messages);
		return NULL;
	}
	return sink.messages;
}

parley_history_sink *
plugin_store_defer(struct plugin *p, parley_history_sink *s)
{
	struct plugin_sink *sink = (struct plugin_sink *)s, *d;

	if (sink == NULL || sink->magic != PLUGIN_SINK_MAGIC ||
	    sink->p != p || sink->waiter == NULL || sink->deferred != NULL) {
		log_warn(p->owner, "history_defer outside a history read, or "
		    "twice");
		return NULL;
	}
	d = xcalloc(1, sizeof *d);
	*d = *sink;
	d->magic = PLUGIN_SINK_LATER_MAGIC;
	d->messages = json_incref(sink->messages);
	d->prev = NULL;
	d->next = p->deferred;
	if (d->next != NULL)
		d->next->prev = d;
	p->deferred = d;
	sink->deferred = d;
	sink->waiter = NULL;
	return (parley_history_sink *)d;
}

void
plugin_store_done(struct plugin *p, parley_history_sink *s, int status)
{
	struct plugin_sink *sink = (struct plugin_sink *)s;

	if (sink == NULL || sink->magic != PLUGIN_SINK_LATER_MAGIC ||
	    sink->p != p) {
		log_warn(p->owner, "history_done: not a deferred history read "
		    "of this plugin");
		return;
	}
	if (sink->prev != NULL)
		sink->prev->next = sink->next;
	else
		p->deferred = sink->next;
	if (sink->next != NULL)
		sink->next->prev = sink->prev;
	sink->magic = 0;
	history_answer(sink->waiter, status == 0 ? sink->messages : NULL);
	if (status != 0)
		json_decref(sink->messages);
	free(sink);
}

void
plugin_health_report(struct plugin *p, bool ok, const char *detail)
{
	if (p->info_only)
		return;
	if (ok != p->health_ok || !p->health_set)
		log_info(p->owner, "health: %s%s%s", ok ? "ok" : "degraded",
		    detail ? ": " : "", detail ? detail : "");
	p->health_set = true;
	p->health_ok = ok;
	free(p->health_detail);
	p->health_detail = detail != NULL && plugin_text_ok(p,
	    "health detail", detail) ? plugin_cut(detail, PLUGIN_REASON_MAX) :
	    NULL;
}

json_t *
plugin_health(bool *all_ok)
{
	json_t *o = json_object();

	*all_ok = true;
	for (struct plugin *p = plugin_list; p != NULL; p = p->next) {
		json_t *h;
		if (!p->health_set)
			continue;
		h = json_pack("{s:b}", "ok", p->health_ok);
		if (p->health_detail != NULL)
			json_object_set_new(h, "detail",
			    json_string(p->health_detail));
		json_object_set_new(o, p->name, h);
		if (!p->health_ok)
			*all_ok = false;
	}
	return o;
}

/* Reads the plugin never answered get an "internal" error. */
static void
plugin_store_abandon(struct plugin *p)
{
	while (p->deferred != NULL) {
		log_warn(p->owner, "a history read was never answered");
		plugin_store_done(p, (parley_history_sink *)p->deferred, -1);
	}
}

static uint64_t
plugin_store_last_seq(void *arg, const char *room, size_t room_len)
{
	struct plugin *p = arg;

	if (p->store.last_seq == NULL)
		return 0;
	return p->store.last_seq(plugin_ctx(p), room, room_len, p->store.arg);
}

int
plugin_store_emit(struct plugin *p, parley_history_sink *s,
    const struct parley_history_msg *m)
{
	struct plugin_sink *sink = (struct plugin_sink *)s;
	json_t *o;

	if (sink == NULL || (sink->magic != PLUGIN_SINK_MAGIC &&
	    sink->magic != PLUGIN_SINK_LATER_MAGIC) || sink->p != p) {
		log_warn(p->owner, "history_emit outside a history read");
		return -1;
	}
	if (m == NULL || m->size < offsetof(struct parley_history_msg,
	    reserved) || m->sender == NULL || m->text == NULL) {
		log_warn(p->owner, "history_emit: malformed message");
		return -1;
	}
	if (json_array_size(sink->messages) >= sink->limit) {
		if (!sink->overflow_logged)
			log_warn(p->owner, "history read gave more than the "
			    "%zu messages asked for", sink->limit);
		sink->overflow_logged = true;
		return -1;
	}
	o = json_pack("{s:s%, s:s%, s:I, s:I}", "message", m->text,
	    m->text_len, "sender", m->sender, m->sender_len, "ts",
	    (json_int_t)m->ts, "seq", (json_int_t)m->seq);
	if (o == NULL) {
		log_warn(p->owner, "history_emit: seq %llu is not valid UTF-8",
		    (unsigned long long)m->seq);
		return -1;
	}
	if (m->flags & PARLEY_MSG_ACTION)
		json_object_set_new(o, "action", json_true());
	json_array_append_new(sink->messages, o);
	return 0;
}

/* Rooms created before the store came continue from its seq. */
static void
plugin_store_catch_up(struct plugin *p)
{
	json_t *names = room_names();
	size_t i;
	json_t *v;

	json_array_foreach(names, i, v) {
		struct room *r = room_find(json_string_value(v),
		    json_string_length(v));
		uint64_t last = plugin_store_last_seq(p, r->name, r->name_len);
		if (last > r->seq)
			r->seq = last;
	}
	json_decref(names);
}

int
plugin_store_register(struct plugin *p,
    const struct parley_history_store *store)
{
	struct history_store hs;
	size_t n;

	if (store == NULL || store->size < PLUGIN_STORE_MIN ||
	    store->append == NULL || store->read == NULL) {
		log_error(p->owner, "history_store_register: malformed store");
		return -1;
	}
	if (p->has_store || (plugin_store_owner != NULL && !p->info_only)) {
		log_error(p->owner, "history_store_register: %s is the history "
		    "store already", p->has_store ? "this plugin" :
		    plugin_store_owner->owner);
		return -1;
	}
	memset(&p->store, 0, sizeof p->store);
	n = store->size < sizeof p->store ? store->size : sizeof p->store;
	memcpy(&p->store, store, n);
	p->has_store = true;
	if (p->info_only)
		return 0;
	hs.owner = p->name;
	hs.append = plugin_store_append;
	hs.read = plugin_store_read;
	hs.last_seq = plugin_store_last_seq;
	hs.arg = p;
	if (history_set_store(&hs) == -1) {
		p->has_store = false;
		log_error(p->owner, "history_store_register: another history "
		    "store is registered");
		return -1;
	}
	plugin_store_owner = p;
	plugin_store_catch_up(p);
	log_info(p->owner, "serving room history");
	return 0;
}

/* ---------------------------------------------------------------------
 * Loading
 */

/* The build tree's plugins when parleyd runs from one (src/parleyd or
 * src/.libs/lt-parleyd), else NULL. */
static char *
plugin_build_dir(void)
{
	const char *top = path_build_tree();
	char *dir;

	if (top == NULL)
		return NULL;
	xasprintf(&dir, "%s/plugins/.libs", top);
	return dir;
}

/* Where entry is: a path as it is; a name (with or without ".so") in
 * plugin_dir, or by default in the build tree's plugins (when running
 * from one) and then the installed plugin directory. */
static char *
plugin_resolve(const char *entry, char **cause)
{
	const char *dirs[2];
	size_t ndirs = 0, len = strlen(entry);
	char *build = NULL, *file, *path = NULL, *tried = NULL;

	if (strchr(entry, '/') != NULL)
		return xstrdup(entry);
	if (len > 3 && strcmp(entry + len - 3, ".so") == 0)
		file = xstrdup(entry);
	else
		xasprintf(&file, "%s.so", entry);
	if (cfg->plugin_dir != NULL)
		dirs[ndirs++] = cfg->plugin_dir;
	else {
		if ((build = plugin_build_dir()) != NULL)
			dirs[ndirs++] = build;
		dirs[ndirs++] = PARLEY_PLUGINDIR;
	}
	for (size_t i = 0; i < ndirs; i++) {
		char *t;
		xasprintf(&path, "%s/%s", dirs[i], file);
		if (access(path, F_OK) == 0)
			break;
		free(path);
		path = NULL;
		xasprintf(&t, "%s%s%s", tried ? tried : "", tried ? " or " : "",
		    dirs[i]);
		free(tried);
		tried = t;
	}
	if (path == NULL)
		xasprintf(cause, "no file %s in %s", file, tried);
	free(tried);
	free(file);
	free(build);
	return path;
}

static bool
plugin_name_ok(const char *name)
{
	size_t n = strnlen(name, PLUGIN_NAME_MAX + 1);

	if (n == 0 || n > PLUGIN_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' ||
		    ch == '.'))
			return false;
	}
	return true;
}

static struct plugin *
plugin_find(const char *name)
{
	for (struct plugin *p = plugin_list; p != NULL; p = p->next) {
		if (strcmp(p->name, name) == 0)
			return p;
	}
	return NULL;
}

/* The options of a plugin: plugin_options[name], else
 * plugin_options[entry] (as it was written in `plugins`), else {}. */
static void
plugin_set_options(struct plugin *p)
{
	json_t *all = cfg->plugin_options, *o = NULL;

	if (json_is_object(all)) {
		o = json_object_get(all, p->name);
		if (o == NULL)
			o = json_object_get(all, p->entry);
	}
	if (!json_is_object(o)) {
		if (o != NULL)
			log_warn(p->owner, "plugin_options for it is not a "
			    "table of named options; ignored");
		o = NULL;
	}
	/* Every plugin learns the state directory unless told otherwise. */
	p->options = o ? json_deep_copy(o) : json_object();
	if (json_object_get(p->options, "state_dir") == NULL)
		json_object_set_new(p->options, "state_dir",
		    json_string(cfg->state_dir));
	p->options_text = json_dumps(p->options, JSON_COMPACT |
	    JSON_SORT_KEYS);
	if (p->options_text == NULL)
		p->options_text = xstrdup("{}");
}

/* Removes everything p registered. Hooks and commands go by owner, so
 * what a failing init half-registered goes too. */
static void
plugin_forget(struct plugin *p)
{
	plugin_timers_stop(p);
	plugin_watches_free(p);
	if (!p->info_only) {
		hook_remove_owner(p->owner);
		command_unregister_owner(p->owner);
	}
	while (p->hooks != NULL) {
		struct plugin_hook *ph = p->hooks;
		p->hooks = ph->next;
		free(ph);
	}
	while (p->commands != NULL) {
		struct plugin_command *pc = p->commands;
		p->commands = pc->next;
		free(pc->name);
		free(pc->usage);
		free(pc);
	}
	plugin_store_abandon(p);
	if (p->has_store && plugin_store_owner == p) {
		history_set_store(NULL);
		plugin_store_owner = NULL;
	}
	p->has_store = false;
	if (p->name != NULL)
		plugin_counters_remove(p);
}

static void
plugin_free(struct plugin *p)
{
	if (p->dl != NULL)
		dlclose(p->dl);
	json_decref(p->options);
	free(p->options_text);
	free(p->health_detail);
	free(p->entry);
	free(p->path);
	free(p->name);
	free(p->owner);
	free(p);
}

/* Opens entry and checks its descriptor; init is not called. Returns
 * NULL with *cause set when the plugin is refused. */
static struct plugin *
plugin_open(const char *entry, bool info_only, char **cause)
{
	struct plugin *p = xcalloc(1, sizeof *p);
	const struct parley_plugin *d;
	const char *err;

	p->entry = xstrdup(entry);
	p->info_only = info_only;
	if ((p->path = plugin_resolve(entry, cause)) == NULL)
		goto fail;
	dlerror();
	p->dl = dlopen(p->path, RTLD_NOW | RTLD_LOCAL);
	if (p->dl == NULL) {
		err = dlerror();
		xasprintf(cause, "cannot load it: %s", err ? err : "dlopen");
		goto fail;
	}
	dlerror();
	d = dlsym(p->dl, PARLEY_PLUGIN_SYMBOL);
	if (d == NULL) {
		xasprintf(cause, "%s exports no symbol " PARLEY_PLUGIN_SYMBOL
		    ": not a parley plugin", p->path);
		goto fail;
	}
	if (d->abi_major != PARLEY_PLUGIN_ABI_MAJOR) {
		xasprintf(cause, "%s was built for plugin ABI %u.%u; this "
		    "server has ABI %d.%d (rebuild it against this server's "
		    "parley/plugin.h)", p->path, d->abi_major, d->abi_minor,
		    PARLEY_PLUGIN_ABI_MAJOR, PARLEY_PLUGIN_ABI_MINOR);
		goto fail;
	}
	if (d->size < PLUGIN_DESC_MIN) {
		xasprintf(cause, "%s: its descriptor is %u bytes, less than "
		    "the %zu of ABI %d.0", p->path, d->size, PLUGIN_DESC_MIN,
		    PARLEY_PLUGIN_ABI_MAJOR);
		goto fail;
	}
	if (d->name == NULL || !plugin_name_ok(d->name)) {
		xasprintf(cause, "%s: its name is missing or not 1 to %d "
		    "letters, digits, '_', '-' or '.'", p->path,
		    PLUGIN_NAME_MAX);
		goto fail;
	}
	if (d->init == NULL) {
		xasprintf(cause, "%s: its descriptor has no init function",
		    p->path);
		goto fail;
	}
	if (!info_only && plugin_find(d->name) != NULL) {
		xasprintf(cause, "a plugin named %s is loaded already (from "
		    "%s)", d->name, plugin_find(d->name)->path);
		goto fail;
	}
	p->desc = d;
	p->name = xstrdup(d->name);
	xasprintf(&p->owner, "plugin:%s", d->name);
	plugin_set_options(p);
	return p;
fail:
	plugin_free(p);
	return NULL;
}

static int
plugin_init(struct plugin *p, char **cause)
{
	int rc = p->desc->init(plugin_ctx(p), p->info_only ?
	    &plugin_host_info : &plugin_host);

	if (rc == 0)
		return 0;
	xasprintf(cause, "%s: init failed (returned %d)", p->path, rc);
	plugin_forget(p);
	return -1;
}

static void
plugin_unload(struct plugin *p)
{
	/* Timers stop first: fini must not race a tick of its own. */
	plugin_timers_stop(p);
	if (p->desc->fini != NULL)
		p->desc->fini(plugin_ctx(p));
	plugin_forget(p);
	log_info("plugin", "unloaded %s", p->name);
	plugin_free(p);
}

int
plugin_load_all(char **cause)
{
	struct plugin **tail = &plugin_list;

	for (size_t i = 0; i < cfg->plugins.n; i++) {
		const char *entry = cfg->plugins.v[i];
		struct plugin *p;
		char *why = NULL;

		p = plugin_open(entry, false, &why);
		if (p != NULL) {
			/* Listed first, so that its init may look itself up
			 * and its hooks may be removed by name. */
			*tail = p;
			if (plugin_init(p, &why) == -1) {
				*tail = NULL;
				plugin_free(p);
				p = NULL;
			}
		}
		if (p == NULL) {
			log_error("plugin", "refusing plugin %s: %s", entry, why);
			xasprintf(cause, "plugin %s refused: %s", entry, why);
			free(why);
			plugin_unload_all();
			return -1;
		}
		tail = &p->next;
		log_info("plugin", "loaded %s %s (ABI %u.%u) from %s", p->name,
		    p->desc->version ? p->desc->version : "", p->desc->abi_major,
		    p->desc->abi_minor, p->path);
	}
	if (plugin_list != NULL)
		metrics_register(plugin_metrics);
	if (cfg->plugin_options != NULL && !json_is_object(cfg->plugin_options))
		log_warn("plugin", "plugin_options is a list; it must name "
		    "plugins: { [\"name\"] = { ... } }");
	if (json_is_object(cfg->plugin_options)) {
		const char *key;
		json_t *v;
		json_object_foreach(cfg->plugin_options, key, v) {
			bool used = false;
			for (struct plugin *p = plugin_list; p != NULL;
			    p = p->next)
				used |= strcmp(key, p->name) == 0 ||
				    strcmp(key, p->entry) == 0;
			if (!used)
				log_warn("plugin", "plugin_options names %s, "
				    "which is not loaded", key);
		}
	}
	return 0;
}

void
plugin_unload_all(void)
{
	/* Reverse load order: a plugin may rely on those before it. */
	while (plugin_list != NULL) {
		struct plugin **pp = &plugin_list;
		while ((*pp)->next != NULL)
			pp = &(*pp)->next;
		struct plugin *p = *pp;
		*pp = NULL;
		plugin_unload(p);
	}
}

/* --check-config: every plugin named in the configuration is found,
 * so that a configuration it passes does not stop the server at start
 * for a missing file. Nothing is loaded (use --plugin-info for that). */
int
plugin_check_all(char **cause)
{
	for (size_t i = 0; i < cfg->plugins.n; i++) {
		char *why = NULL, *path;

		/* A path is taken as it is by plugin_resolve. */
		if ((path = plugin_resolve(cfg->plugins.v[i], &why)) != NULL &&
		    access(path, F_OK) == -1)
			xasprintf(&why, "no file %s", path);
		free(path);
		if (why != NULL) {
			xasprintf(cause, "plugin %s: %s", cfg->plugins.v[i],
			    why);
			free(why);
			return -1;
		}
	}
	return 0;
}

/* ---------------------------------------------------------------------
 * parleyd --plugin-info
 */

int
plugin_info(const char *file)
{
	struct plugin *p;
	char *cause = NULL, *local = NULL;
	int rc;

	/* A file in the current directory is meant, not a name to look
	 * up. */
	if (strchr(file, '/') == NULL && access(file, F_OK) == 0)
		xasprintf(&local, "./%s", file);
	p = plugin_open(local ? local : file, true, &cause);
	free(local);
	if (p == NULL) {
		fprintf(stderr, "parleyd: plugin %s refused: %s\n", file,
		    cause);
		free(cause);
		return 1;
	}
	printf("file: %s\n", p->path);
	printf("abi: %u.%u (this server: %d.%d)\n", p->desc->abi_major,
	    p->desc->abi_minor, PARLEY_PLUGIN_ABI_MAJOR,
	    PARLEY_PLUGIN_ABI_MINOR);
	printf("name: %s\n", p->name);
	printf("version: %s\n", p->desc->version ? p->desc->version : "");
	if (p->desc->description != NULL)
		printf("description: %s\n", p->desc->description);
	fflush(stdout);
	if ((rc = plugin_init(p, &cause)) == -1) {
		printf("init: failed\n");
		fprintf(stderr, "parleyd: plugin %s refused: %s\n", file,
		    cause);
		free(cause);
		plugin_free(p);
		return 1;
	}
	printf("init: ok\n");
	/* Lists are newest first: print them in registration order. */
	{
		size_t n = 0, i;
		struct plugin_hook *ph, **v;
		for (ph = p->hooks; ph != NULL; ph = ph->next)
			n++;
		v = xcalloc(n + 1, sizeof *v);
		for (i = n, ph = p->hooks; ph != NULL; ph = ph->next)
			v[--i] = ph;
		for (i = 0; i < n; i++)
			printf("hook: %s priority %d\n",
			    plugin_event_name(v[i]->event), v[i]->priority);
		free(v);
	}
	for (struct plugin_command *pc = p->commands; pc != NULL;
	    pc = pc->next)
		printf("command: /%s%s%s%s\n", pc->name, pc->usage ? " (usage: " :
		    "", pc->usage ? pc->usage : "", pc->usage ? ")" : "");
	for (struct plugin_timer *t = p->timers; t != NULL; t = t->next) {
		if (t->interval != 0)
			printf("timer: every %llu ms\n",
			    (unsigned long long)t->interval);
		else
			printf("timer: once after %llu ms\n",
			    (unsigned long long)t->delay);
	}
	printf("history store: %s\n", p->has_store ? "yes" : "no");
	if (p->desc->fini != NULL)
		p->desc->fini(plugin_ctx(p));
	plugin_forget(p);
	plugin_free(p);
	return 0;
}
