/*
 * plugin-host.c: the host function table that plugins get in init
 * (struct parley_host of include/parley/plugin.h). Each function turns
 * the opaque handles back into the core's objects, checks what a plugin
 * hands over (text must be UTF-8 before it goes into a frame) and calls
 * the same shared actions the protocol handlers and scripts use. The
 * --plugin-info table differs only in its flags: registrations are then
 * recorded by plugin.c and actions do nothing.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "parley.h"
#include "plugin-host.h"


static struct client *
host_client(parley_client *c)
{
	return (struct client *)c;
}

static struct room *
host_room(parley_room *r)
{
	return (struct room *)r;
}

/* ---- The plugin itself */

static const char *
host_plugin_name(parley_ctx *ctx)
{
	return plugin_of(ctx)->name;
}

static void
host_log_printf(parley_ctx *ctx, int level, const char *fmt, ...)
{
	struct plugin *p = plugin_of(ctx);
	char line[1024];
	va_list ap;

	if (level < LOG_LVL_ERROR)
		level = LOG_LVL_ERROR;
	if (level > LOG_LVL_DEBUG)
		level = LOG_LVL_DEBUG;
	if (log_level < level || fmt == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	log_write(level, p->owner, "%s", line);
}

static const char *
host_options_json(parley_ctx *ctx, size_t *len)
{
	struct plugin *p = plugin_of(ctx);

	if (len != NULL)
		*len = strlen(p->options_text);
	return p->options_text;
}

/* The option key when it exists; 1 when absent. */
static int
host_option(struct plugin *p, const char *key, json_t **v)
{
	if (key == NULL || (*v = json_object_get(p->options, key)) == NULL)
		return 1;
	return 0;
}

static int
host_option_type(struct plugin *p, const char *key, const char *want)
{
	log_warn(p->owner, "option %s must be %s", key, want);
	return -1;
}

static int
host_option_string(parley_ctx *ctx, const char *key, const char **out)
{
	struct plugin *p = plugin_of(ctx);
	json_t *v;

	if (host_option(p, key, &v) != 0)
		return 1;
	if (!json_is_string(v))
		return host_option_type(p, key, "a string");
	*out = json_string_value(v);
	return 0;
}

static int
host_option_int(parley_ctx *ctx, const char *key, int64_t *out)
{
	struct plugin *p = plugin_of(ctx);
	json_t *v;

	if (host_option(p, key, &v) != 0)
		return 1;
	if (!json_is_integer(v))
		return host_option_type(p, key, "an integer");
	*out = json_integer_value(v);
	return 0;
}

static int
host_option_bool(parley_ctx *ctx, const char *key, bool *out)
{
	struct plugin *p = plugin_of(ctx);
	json_t *v;

	if (host_option(p, key, &v) != 0)
		return 1;
	if (!json_is_boolean(v))
		return host_option_type(p, key, "true or false");
	*out = json_is_true(v);
	return 0;
}

static int
host_option_double(parley_ctx *ctx, const char *key, double *out)
{
	struct plugin *p = plugin_of(ctx);
	json_t *v;

	if (host_option(p, key, &v) != 0)
		return 1;
	if (!json_is_number(v))
		return host_option_type(p, key, "a number");
	*out = json_number_value(v);
	return 0;
}

/* ---- Memory and clocks */

static void *
host_mem_alloc(parley_ctx *ctx, size_t size)
{
	return xmalloc(size);
}

static void *
host_mem_realloc(parley_ctx *ctx, void *ptr, size_t size)
{
	return xrealloc(ptr, size);
}

static void
host_mem_free(parley_ctx *ctx, void *ptr)
{
	free(ptr);
}

static uint64_t
host_wall_ms(parley_ctx *ctx)
{
	return loop_wall_ms();
}

static uint64_t
host_mono_ms(parley_ctx *ctx)
{
	return loop_now();
}

/* ---- Hooks, commands, timers: kept by plugin.c */

static uint64_t
host_hook_add(parley_ctx *ctx, int event, int priority, parley_hook_fn fn,
    void *arg)
{
	return plugin_hook_add(plugin_of(ctx), event, priority, fn, arg);
}

static int
host_hook_remove(parley_ctx *ctx, uint64_t id)
{
	return plugin_hook_remove(plugin_of(ctx), id);
}

static int
host_command_register(parley_ctx *ctx, const char *name, const char *usage,
    const char *help, parley_command_fn fn, void *arg)
{
	return plugin_command_add(plugin_of(ctx), name, usage, help, fn, arg);
}

static void
host_command_reply(parley_ctx *ctx, const struct parley_command *cmd,
    const char *text)
{
	plugin_command_reply(plugin_of(ctx), cmd, text);
}

static uint64_t
host_timer_add(parley_ctx *ctx, uint64_t delay_ms, uint64_t interval_ms,
    parley_timer_fn fn, void *arg)
{
	return plugin_timer_add(plugin_of(ctx), delay_ms, interval_ms, fn, arg);
}

static int
host_timer_cancel(parley_ctx *ctx, uint64_t id)
{
	return plugin_timer_cancel(plugin_of(ctx), id);
}

/* ---- Clients */

static uint64_t
host_client_id(parley_ctx *ctx, parley_client *c)
{
	return host_client(c)->id;
}

static const char *
host_client_name(parley_ctx *ctx, parley_client *c)
{
	return host_client(c)->name;
}

static const char *
host_client_addr(parley_ctx *ctx, parley_client *c)
{
	return host_client(c)->addr;
}

static parley_client *
host_client_find(parley_ctx *ctx, uint64_t id)
{
	struct client *c = client_find_by_id(id);

	return c == NULL || c->dead ? NULL : (parley_client *)c;
}

static parley_client *
host_client_find_by_name(parley_ctx *ctx, const char *name, size_t len)
{
	struct client *c;

	if (name == NULL)
		return NULL;
	c = client_find_by_name(name, len);
	return c == NULL || c->dead ? NULL : (parley_client *)c;
}

static void
host_client_notice(parley_ctx *ctx, parley_client *c, parley_room *room,
    const char *text)
{
	if (!plugin_text_ok(plugin_of(ctx), "client_notice", text))
		return;
	proto_notice(host_client(c), host_room(room), text, NULL);
}

/* Parses JSON text that must be an object with a string "type"; NULL
 * (logged) otherwise. */
static json_t *
host_json_frame(struct plugin *p, const char *what, const char *json,
    size_t len)
{
	json_error_t err;
	json_t *o;

	if (json == NULL) {
		log_warn(p->owner, "%s: no JSON", what);
		return NULL;
	}
	o = json_loadb(json, len, 0, &err);
	if (o == NULL) {
		log_warn(p->owner, "%s: bad JSON: %s", what, err.text);
		return NULL;
	}
	if (!json_is_object(o) || !json_is_string(json_object_get(o,
	    "type"))) {
		log_warn(p->owner, "%s: not an object with a string \"type\"",
		    what);
		json_decref(o);
		return NULL;
	}
	return o;
}

static int
host_client_send_json(parley_ctx *ctx, parley_client *c, const char *json,
    size_t len)
{
	json_t *o = host_json_frame(plugin_of(ctx), "client_send_json", json,
	    len);

	if (o == NULL)
		return PARLEY_ERR_BAD_REQUEST;
	conn_send_new(host_client(c), o);
	return PARLEY_OK;
}

static int
host_client_kick(parley_ctx *ctx, parley_client *pc, parley_room *pr,
    const char *reason)
{
	struct plugin *p = plugin_of(ctx);
	struct client *c = host_client(pc);
	struct room *r = host_room(pr);
	char *why;

	if (room_membership(r, c) == NULL)
		return PARLEY_ERR_NOT_IN_ROOM;
	if (reason != NULL && !plugin_text_ok(p, "client_kick reason", reason))
		reason = NULL;
	why = plugin_cut(reason ? reason : "", PLUGIN_REASON_MAX);
	log_info(p->owner, "kicks %s from %s", c->name, r->name);
	proto_leave(c, r, "kicked", why, NULL);
	free(why);
	return PARLEY_OK;
}

static void
host_client_disconnect(parley_ctx *ctx, parley_client *pc, const char *reason)
{
	struct plugin *p = plugin_of(ctx);
	struct client *c = host_client(pc);
	char *why;

	if (reason != NULL && !plugin_text_ok(p, "client_disconnect reason",
	    reason))
		reason = NULL;
	why = plugin_cut(reason ? reason : "", PLUGIN_CLOSE_REASON_MAX);
	log_info(p->owner, "disconnects client %llu (%s)",
	    (unsigned long long)c->id, c->name);
	conn_close(c, WS_CLOSE_POLICY, why);
	free(why);
}

static int
host_client_rename(parley_ctx *ctx, parley_client *c, const char *name,
    size_t len)
{
	enum proto_err e;
	char *reason = NULL;

	if (name == NULL)
		return PARLEY_ERR_INVALID_NAME;
	e = proto_rename(host_client(c), name, len, NULL, false, &reason);
	free(reason);
	return plugin_error_from_proto(e);
}

static bool
host_client_has_role(parley_ctx *ctx, parley_client *c, const char *role)
{
	return role != NULL && client_has_role(host_client(c), role);
}

static int
host_client_add_role(parley_ctx *ctx, parley_client *c, const char *role)
{
	if (role == NULL || *role == '\0')
		return -1;
	return client_add_role(host_client(c), role);
}

static void
host_client_remove_role(parley_ctx *ctx, parley_client *c, const char *role)
{
	if (role != NULL)
		client_remove_role(host_client(c), role);
}

/* ---- Rooms */

static parley_room *
host_room_find(parley_ctx *ctx, const char *name, size_t len)
{
	if (name == NULL)
		return NULL;
	return (parley_room *)room_find(name, len);
}

static const char *
host_room_name(parley_ctx *ctx, parley_room *r)
{
	return host_room(r)->name;
}

static const char *
host_room_name_len(parley_ctx *ctx, parley_room *r, size_t *len)
{
	if (len != NULL)
		*len = host_room(r)->name_len;
	return host_room_name(ctx, r);
}

static int
host_room_create(parley_ctx *ctx, const char *name, size_t len,
    parley_room **out)
{
	struct plugin *p = plugin_of(ctx);
	struct room *r = NULL;
	enum proto_err e;
	char *reason = NULL;

	if (out != NULL)
		*out = NULL;
	if (p->info_only)
		return PARLEY_ERR_UNSUPPORTED;
	if (name == NULL)
		return PARLEY_ERR_INVALID_NAME;
	e = proto_room_create(NULL, name, len, NULL, &r, &reason);
	free(reason);
	if (e == PROTO_OK && out != NULL)
		*out = (parley_room *)r;
	return plugin_error_from_proto(e);
}

static size_t
host_room_member_count(parley_ctx *ctx, parley_room *r)
{
	return host_room(r)->count;
}

static int
host_room_members(parley_ctx *ctx, parley_room *pr, parley_client_each_fn fn,
    void *arg)
{
	struct room *r = host_room(pr);
	struct client **v;
	size_t n = 0;
	int rc = 0;

	/* A snapshot: fn may kick. Clients are freed only before sleep. */
	v = xreallocarray(NULL, r->count + 1, sizeof *v);
	for (struct membership *m = r->head; m != NULL; m = m->next)
		v[n++] = m->client;
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (!v[i]->dead)
			rc = fn(ctx, (parley_client *)v[i], arg);
	}
	free(v);
	return rc;
}

static bool
host_room_has_member(parley_ctx *ctx, parley_room *r, parley_client *c)
{
	return room_membership(host_room(r), host_client(c)) != NULL;
}

static int
host_room_each(parley_ctx *ctx, parley_room_each_fn fn, void *arg)
{
	json_t *names = room_names();
	size_t i;
	json_t *v;
	int rc = 0;

	json_array_foreach(names, i, v) {
		struct room *r = room_find(json_string_value(v),
		    json_string_length(v));
		if (r != NULL && (rc = fn(ctx, (parley_room *)r, arg)) != 0)
			break;
	}
	json_decref(names);
	return rc;
}

static int
host_room_post(parley_ctx *ctx, parley_room *r, const char *sender,
    const char *text, size_t len, bool action)
{
	struct plugin *p = plugin_of(ctx);

	if (text == NULL || len == 0 || !utf8_valid(text, len) ||
	    sender == NULL || *sender == '\0' ||
	    !plugin_text_ok(p, "room_post sender", sender))
		return PARLEY_ERR_BAD_REQUEST;
	if (len > cfg->max_message_bytes)
		return PARLEY_ERR_MESSAGE_TOO_LONG;
	room_post(host_room(r), NULL, sender, text, len, action);
	return PARLEY_OK;
}

static void
host_room_notice(parley_ctx *ctx, parley_room *r, const char *text)
{
	if (!plugin_text_ok(plugin_of(ctx), "room_notice", text))
		return;
	proto_notice_room(host_room(r), text);
}

static int
host_room_send_json(parley_ctx *ctx, parley_room *r, const char *json,
    size_t len)
{
	json_t *o = host_json_frame(plugin_of(ctx), "room_send_json", json,
	    len);

	if (o == NULL)
		return PARLEY_ERR_BAD_REQUEST;
	room_broadcast_new(host_room(r), o);
	return PARLEY_OK;
}

/* ---- Metrics and the history store */

static int
host_counter_add(parley_ctx *ctx, const char *name, int64_t delta)
{
	return plugin_counter_change(plugin_of(ctx), name, delta, true);
}

static int
host_counter_set(parley_ctx *ctx, const char *name, int64_t value)
{
	return plugin_counter_change(plugin_of(ctx), name, value, false);
}

static int
host_metric_declare(parley_ctx *ctx, const char *name, int type,
    const char *help)
{
	return plugin_metric_declare(plugin_of(ctx), name, type, help);
}

static int
host_metric_add(parley_ctx *ctx, const char *name,
    const char *const *labels, double delta)
{
	return plugin_metric_change(plugin_of(ctx), name, labels, delta, true);
}

static int
host_metric_set(parley_ctx *ctx, const char *name,
    const char *const *labels, double value)
{
	return plugin_metric_change(plugin_of(ctx), name, labels, value, false);
}

static int
host_history_store_register(parley_ctx *ctx,
    const struct parley_history_store *store)
{
	return plugin_store_register(plugin_of(ctx), store);
}

static int
host_history_emit(parley_ctx *ctx, parley_history_sink *sink,
    const struct parley_history_msg *m)
{
	return plugin_store_emit(plugin_of(ctx), sink, m);
}

static parley_history_sink *
host_history_defer(parley_ctx *ctx, parley_history_sink *sink)
{
	return plugin_store_defer(plugin_of(ctx), sink);
}

static void
host_history_done(parley_ctx *ctx, parley_history_sink *sink, int status)
{
	plugin_store_done(plugin_of(ctx), sink, status);
}

static void
host_health_report(parley_ctx *ctx, bool ok, const char *detail)
{
	plugin_health_report(plugin_of(ctx), ok, detail);
}

/* ---- File descriptors (since 1.1) */

static struct plugin_watch *
host_watch_find(struct plugin *p, uint64_t id)
{
	for (struct plugin_watch *w = p->watches; w != NULL; w = w->next) {
		if (w->id == id && id != 0)
			return w;
	}
	return NULL;
}

static void
host_watch_ready(struct loop_fd *lfd, uint32_t ev)
{
	struct plugin_watch *w = (struct plugin_watch *)lfd;
	unsigned ready = 0;

	/* An error or hang-up wakes whichever side is waiting, so that the
	 * plugin's read or write sees it. */
	if ((ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) &&
	    (w->events & PARLEY_FD_READ))
		ready |= PARLEY_FD_READ;
	if ((ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) &&
	    (w->events & PARLEY_FD_WRITE))
		ready |= PARLEY_FD_WRITE;
	if (ready != 0 && w->id != 0)
		w->fn(plugin_ctx(w->p), w->id, w->fd, ready, w->arg);
}

/* Puts w's events into the epoll set; an idle watch leaves the set, so
 * that an error on a descriptor nobody waits on cannot spin the loop. */
static int
host_watch_apply(struct plugin_watch *w)
{
	uint32_t ev = 0;

	if (w->events & PARLEY_FD_READ)
		ev |= EPOLLIN;
	if (w->events & PARLEY_FD_WRITE)
		ev |= EPOLLOUT;
	if (ev == 0) {
		if (w->added)
			loop_fd_remove(&w->lfd);
		w->added = false;
		return 0;
	}
	if (w->added)
		return loop_fd_mod(&w->lfd, ev);
	if (loop_fd_add(&w->lfd, w->fd, ev, host_watch_ready) == -1) {
		w->lfd.fd = -1;
		return -1;
	}
	w->added = true;
	return 0;
}

static uint64_t
host_fd_watch(parley_ctx *ctx, int fd, unsigned events, parley_fd_fn fn,
    void *arg)
{
	struct plugin *p = plugin_of(ctx);
	struct plugin_watch *w;

	if (p->info_only || fn == NULL || fd < 0) {
		if (!p->info_only)
			log_warn(p->owner, "fd_watch: bad descriptor or "
			    "callback");
		return 0;
	}
	for (w = p->watches; w != NULL && w->id != 0; w = w->next)
		;
	if (w == NULL) {
		w = xcalloc(1, sizeof *w);
		w->lfd.fd = -1;
		w->p = p;
		w->next = p->watches;
		p->watches = w;
	}
	w->id = ++p->next_id;
	w->fd = fd;
	w->events = events & (PARLEY_FD_READ | PARLEY_FD_WRITE);
	w->fn = fn;
	w->arg = arg;
	w->added = false;
	if (host_watch_apply(w) == -1) {
		log_warn(p->owner, "fd_watch: epoll_ctl on %d: %s", fd,
		    strerror(errno));
		w->id = 0;
		return 0;
	}
	return w->id;
}

static int
host_fd_update(parley_ctx *ctx, uint64_t id, unsigned events)
{
	struct plugin_watch *w = host_watch_find(plugin_of(ctx), id);

	if (w == NULL)
		return -1;
	w->events = events & (PARLEY_FD_READ | PARLEY_FD_WRITE);
	if (host_watch_apply(w) == -1) {
		log_warn(w->p->owner, "fd_update: epoll_ctl on %d: %s", w->fd,
		    strerror(errno));
		return -1;
	}
	return 0;
}

static int
host_fd_unwatch(parley_ctx *ctx, uint64_t id)
{
	struct plugin_watch *w = host_watch_find(plugin_of(ctx), id);

	if (w == NULL)
		return -1;
	w->events = 0;
	host_watch_apply(w);
	w->id = 0;
	w->fn = NULL;
	return 0;
}

void
plugin_watches_free(struct plugin *p)
{
	while (p->watches != NULL) {
		struct plugin_watch *w = p->watches;
		p->watches = w->next;
		if (w->added)
			loop_fd_remove(&w->lfd);
		free(w);
	}
}

/* ---- Remote members (since 1.1) */

#define HOST_REMOTE_ADDR "remote"

/* A remote member is a client that never had a connection: closing from
 * birth (so nothing is queued for it and no input is awaited) and never
 * opened. */
static bool
host_is_remote(const struct client *c)
{
	return c->remote;
}

static int
host_remote_create(parley_ctx *ctx, const char *name, size_t len,
    parley_client **out)
{
	struct client *c;

	if (out != NULL)
		*out = NULL;
	if (plugin_of(ctx)->info_only)
		return PARLEY_ERR_UNSUPPORTED;
	if (name == NULL || !utf8_valid(name, len) ||
	    !proto_name_valid(name, len, PROTO_USERNAME_MAX))
		return PARLEY_ERR_INVALID_NAME;
	if (client_find_by_name(name, len) != NULL)
		return PARLEY_ERR_NAME_TAKEN;
	c = client_create(HOST_REMOTE_ADDR);
	c->closing = true;
	c->remote = true;
	PARLEY_ASSERT(client_set_name(c, name, len) == 0);
	if (out != NULL)
		*out = (parley_client *)c;
	return PARLEY_OK;
}

static int
host_remote_join(parley_ctx *ctx, parley_client *pc, parley_room *pr)
{
	struct client *c = host_client(pc);
	struct room *r = host_room(pr);

	if (!host_is_remote(c) || c->dead)
		return PARLEY_ERR_BAD_REQUEST;
	if (room_membership(r, c) != NULL)
		return PARLEY_OK;
	room_join(r, c);
	room_broadcast_new(r, json_pack("{s:s, s:s%, s:s, s:o}", "type",
	    "joined_room", "roomName", r->name, r->name_len, "username",
	    c->name, "participants", room_participants(r)));
	return PARLEY_OK;
}

static const char *
host_leave_reason(const char *reason)
{
	static const char *const ok[] = { "left", "disconnected", "timeout",
		"kicked" };

	for (size_t i = 0; reason != NULL && i < sizeof ok / sizeof *ok; i++) {
		if (strcmp(reason, ok[i]) == 0)
			return ok[i];
	}
	return "disconnected";
}

static int
host_remote_leave(parley_ctx *ctx, parley_client *pc, parley_room *pr,
    const char *reason)
{
	struct client *c = host_client(pc);
	struct room *r = host_room(pr);

	if (!host_is_remote(c) || c->dead)
		return PARLEY_ERR_BAD_REQUEST;
	if (room_membership(r, c) == NULL)
		return PARLEY_ERR_NOT_IN_ROOM;
	proto_leave(c, r, host_leave_reason(reason), NULL, NULL);
	return PARLEY_OK;
}

static int
host_remote_remove(parley_ctx *ctx, parley_client *pc, const char *reason)
{
	struct client *c = host_client(pc);

	if (!host_is_remote(c))
		return PARLEY_ERR_BAD_REQUEST;
	client_remove(c, host_leave_reason(reason));
	return PARLEY_OK;
}

static bool
host_client_is_remote(parley_ctx *ctx, parley_client *c)
{
	return host_is_remote(host_client(c));
}

static int
host_room_post_seq(parley_ctx *ctx, parley_room *pr, const char *sender,
    const char *text, size_t len, bool action, uint64_t seq, uint64_t ts)
{
	struct plugin *p = plugin_of(ctx);
	struct room *r = host_room(pr);

	if (text == NULL || len == 0 || !utf8_valid(text, len) ||
	    sender == NULL || *sender == '\0' || seq == 0 ||
	    seq > (uint64_t)INT64_MAX ||
	    !plugin_text_ok(p, "room_post_seq sender", sender))
		return PARLEY_ERR_BAD_REQUEST;
	if (len > cfg->max_message_bytes)
		return PARLEY_ERR_MESSAGE_TOO_LONG;
	if (ts == 0 || ts > (uint64_t)INT64_MAX)
		ts = loop_wall_ms();
	/* The cluster orders the room: follow it, even backwards after a
	 * partition healed (seqs stay unique per room within the cluster). */
	room_post_seq(r, sender, text, len, action, seq, ts);
	return PARLEY_OK;
}

#define HOST_TABLE(flags_)                                                   \
	{                                                                    \
		.size = sizeof(struct parley_host),                          \
		.abi_major = PARLEY_PLUGIN_ABI_MAJOR,                        \
		.abi_minor = PARLEY_PLUGIN_ABI_MINOR,                        \
		.flags = (flags_),                                           \
		.server_version = PACKAGE_VERSION,                           \
		.plugin_name = host_plugin_name,                             \
		.log_printf = host_log_printf,                               \
		.options_json = host_options_json,                           \
		.option_string = host_option_string,                         \
		.option_int = host_option_int,                               \
		.option_bool = host_option_bool,                             \
		.option_double = host_option_double,                         \
		.mem_alloc = host_mem_alloc,                                 \
		.mem_realloc = host_mem_realloc,                             \
		.mem_free = host_mem_free,                                   \
		.wall_ms = host_wall_ms,                                     \
		.mono_ms = host_mono_ms,                                     \
		.hook_add = host_hook_add,                                   \
		.hook_remove = host_hook_remove,                             \
		.command_register = host_command_register,                   \
		.command_reply = host_command_reply,                         \
		.timer_add = host_timer_add,                                 \
		.timer_cancel = host_timer_cancel,                           \
		.client_id = host_client_id,                                 \
		.client_name = host_client_name,                             \
		.client_addr = host_client_addr,                             \
		.client_find = host_client_find,                             \
		.client_find_by_name = host_client_find_by_name,             \
		.client_notice = host_client_notice,                         \
		.client_send_json = host_client_send_json,                   \
		.client_kick = host_client_kick,                             \
		.client_disconnect = host_client_disconnect,                 \
		.client_rename = host_client_rename,                         \
		.client_has_role = host_client_has_role,                     \
		.client_add_role = host_client_add_role,                     \
		.client_remove_role = host_client_remove_role,               \
		.room_find = host_room_find,                                 \
		.room_name = host_room_name_len,                             \
		.room_create = host_room_create,                             \
		.room_member_count = host_room_member_count,                 \
		.room_members = host_room_members,                           \
		.room_has_member = host_room_has_member,                     \
		.room_each = host_room_each,                                 \
		.room_post = host_room_post,                                 \
		.room_notice = host_room_notice,                             \
		.room_send_json = host_room_send_json,                       \
		.counter_add = host_counter_add,                             \
		.counter_set = host_counter_set,                             \
		.history_store_register = host_history_store_register,       \
		.history_emit = host_history_emit,                           \
		.fd_watch = host_fd_watch,                                   \
		.fd_update = host_fd_update,                                 \
		.fd_unwatch = host_fd_unwatch,                               \
		.remote_create = host_remote_create,                         \
		.remote_join = host_remote_join,                             \
		.remote_leave = host_remote_leave,                           \
		.remote_remove = host_remote_remove,                         \
		.client_is_remote = host_client_is_remote,                   \
		.room_post_seq = host_room_post_seq,                         \
		.history_defer = host_history_defer,                         \
		.history_done = host_history_done,                           \
		.health_report = host_health_report,                         \
		.metric_declare = host_metric_declare,                       \
		.metric_add = host_metric_add,                               \
		.metric_set = host_metric_set,                               \
	}

const struct parley_host plugin_host = HOST_TABLE(0);
const struct parley_host plugin_host_info = HOST_TABLE(PARLEY_HOST_INFO_ONLY);
