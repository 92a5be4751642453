/*
 * plugin.c: native plugins. Finds each configured plugin (a name in the
 * plugin directory, or a path), opens it with dlopen(RTLD_NOW |
 * RTLD_LOCAL), checks its descriptor against the ABI of
 * include/parley/plugin.h and runs its init with the host table. Anything
 * wrong refuses the plugin with a line saying why, and the server does
 * not start. When a plugin goes, everything it registered goes with it;
 * it also answers `parleyd --plugin-info`. The host table is filled here
 * for the plugin itself (options, logs, memory, clocks, counters, health)
 * and by the file of each other concern: plugin-hook.c (hooks, commands),
 * plugin-timer.c (timers, descriptors), plugin-chat.c (clients, rooms),
 * history-plugin.c (the history store).
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
#define PLUGIN_COUNTER_MAX 64

static struct plugin *plugin_list; /* load order */

/* Options a plugin was given before a reload: it may still hold their
 * strings, which stay valid until fini returns. */
struct plugin_retired {
	struct plugin_retired *next;
	json_t *options;
	char *text;
};

/* The descriptor of ABI 1.0 up to its reserved fields. */
#define PLUGIN_DESC_MIN offsetof(struct parley_plugin, reserved)

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
	[PARLEY_ERR_UNAUTHORIZED] = PROTO_ERR_UNAUTHORIZED,
};
#define PLUGIN_NERRORS (sizeof plugin_errors / sizeof plugin_errors[0])

bool
plugin_error_known(int code)
{
	return code >= 0 && (size_t)code < PLUGIN_NERRORS;
}

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

struct client *
plugin_client(struct plugin *p, parley_client *c, const char *what)
{
	if (handle_valid(c, HANDLE_CLIENT))
		return (struct client *)c;
	log_warn(p->owner, "%s: not the handle of a connected client", what);
	return NULL;
}

struct room *
plugin_room(struct plugin *p, parley_room *r, const char *what)
{
	if (handle_valid(r, HANDLE_ROOM))
		return (struct room *)r;
	log_warn(p->owner, "%s: not the handle of a room", what);
	return NULL;
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

static int
plugin_counter_change(struct plugin *p, const char *name, int64_t v, bool add)
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

static void plugin_metrics_remove(struct plugin *p);

static void
plugin_counters_remove(struct plugin *p)
{
	size_t pos = 0;
	const char *key;
	void *v;

	plugin_metrics_remove(p);
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
plugin_counter_each(
    void (*fn)(const char *plugin, const char *name, int64_t value, void *arg),
    void *arg)
{
	size_t pos = 0;
	void *v;

	while (map_next(&plugin_counters, &pos, NULL, &v)) {
		struct plugin_counter *pc = v;
		fn(pc->plugin, pc->name, pc->value, arg);
	}
}

static void
plugin_metrics_line(
    const char *plugin, const char *name, int64_t value, void *arg)
{
	/* Names are checked: [a-z0-9_] and [A-Za-z0-9_.-], nothing to
	 * escape in a label. */
	metrics_printf(arg,
	    "parley_plugin_value{plugin=\"%s\",name=\"%s\"} "
	    "%lld\n",
	    plugin, name, (long long)value);
}

/*
 * Typed metrics (since 1.3): one family per declared name, shared by the
 * plugins that declare it with the same type; each series is one plugin's
 * with one set of labels, rendered once in a canonical (sorted) order, so
 * no two lines of /metrics name the same series.
 */
#define PLUGIN_METRIC_LABELS 8
#define PLUGIN_METRIC_VALUE_MAX 256
#define PLUGIN_METRIC_SERIES_MAX 1000
#define PLUGIN_METRIC_HELP_MAX 1024

struct plugin_series {
	struct plugin_series *next;
	char *plugin;
	char *labels; /* ,key="value"... escaped and sorted; "" for none */
	double value;
};

struct plugin_family {
	char *name;
	int type;
	char *help;
	struct plugin_series *series;
	unsigned declarers; /* plugins that declared it */
	struct plugin_family *next;
};

static struct plugin_family *plugin_families; /* declaration order */

static struct plugin_family *
plugin_family_find(const char *name)
{
	struct plugin_family *f = plugin_families;

	while (f != NULL && strcmp(f->name, name) != 0)
		f = f->next;
	return f;
}

/* A metric or label name: [a-z_][a-z0-9_]*, 1 to 64 bytes. */
static bool
plugin_metric_name_ok(const char *name)
{
	return plugin_counter_name_ok(name) &&
	    !(name[0] >= '0' && name[0] <= '9');
}

/* Whether p declared f: a declaration is remembered as a series-less
 * marker, so that a plugin's removal can undo it. */
static bool
plugin_family_declared_by(const struct plugin_family *f, const char *plugin)
{
	for (const struct plugin_series *se = f->series; se != NULL;
	     se = se->next) {
		if (se->labels == NULL && strcmp(se->plugin, plugin) == 0)
			return true;
	}
	return false;
}

static struct plugin_series *
plugin_series_new(struct plugin_family *f, const char *plugin, char *labels)
{
	struct plugin_series *se = xcalloc(1, sizeof *se);

	se->plugin = xstrdup(plugin);
	se->labels = labels;
	se->next = f->series;
	f->series = se;
	return se;
}

static int
plugin_metric_declare(
    struct plugin *p, const char *name, int type, const char *help)
{
	struct plugin_family *f, **tail;

	if (name == NULL || !plugin_metric_name_ok(name) ||
	    strcmp(name, "value") == 0) {
		log_error(p->owner, "metric_declare: invalid name");
		return -1;
	}
	if (type != PARLEY_METRIC_COUNTER && type != PARLEY_METRIC_GAUGE) {
		log_error(
		    p->owner, "metric_declare %s: invalid type %d", name, type);
		return -1;
	}
	if (help != NULL &&
	    (strlen(help) > PLUGIN_METRIC_HELP_MAX ||
		!utf8_valid(help, strlen(help)) ||
		utf8_has_control(help, strlen(help)))) {
		log_error(p->owner,
		    "metric_declare %s: help must be one line "
		    "of UTF-8, at most %d bytes",
		    name, PLUGIN_METRIC_HELP_MAX);
		return -1;
	}
	f = plugin_family_find(name);
	if (f != NULL && f->type != type) {
		log_error(p->owner,
		    "metric_declare %s: already declared with "
		    "another type",
		    name);
		return -1;
	}
	if (f == NULL) {
		f = xcalloc(1, sizeof *f);
		f->name = xstrdup(name);
		f->type = type;
		f->help = xstrdup(help != NULL && *help != '\0'
			? help
			: "a metric of a plugin");
		for (tail = &plugin_families; *tail != NULL;
		     tail = &(*tail)->next)
			;
		*tail = f;
	}
	if (!plugin_family_declared_by(f, p->name)) {
		plugin_series_new(f, p->name, NULL);
		f->declarers++;
	}
	return 0;
}

/* Appends value to *out as a label value: backslash, quote and newline
 * escaped. */
static void
plugin_label_escape(char **out, const char *key, const char *value)
{
	size_t n = strlen(*out), vlen = strlen(value);
	char *o = xmalloc(n + strlen(key) + 2 * vlen + 5), *w;

	memcpy(o, *out, n);
	w = o + n;
	w += sprintf(w, ",%s=\"", key);
	for (const char *r = value; *r != '\0'; r++) {
		if (*r == '\\' || *r == '"') {
			*w++ = '\\';
			*w++ = *r;
		} else if (*r == '\n') {
			*w++ = '\\';
			*w++ = 'n';
		} else
			*w++ = *r;
	}
	*w++ = '"';
	*w = '\0';
	free(*out);
	*out = o;
}

/* Renders labels (key, value, ..., NULL) in key order; NULL with a
 * reason in *why when they are not acceptable. */
static char *
plugin_labels_render(const char *const *labels, const char **why)
{
	const char *k[PLUGIN_METRIC_LABELS], *v[PLUGIN_METRIC_LABELS];
	size_t n = 0;
	char *out = xstrdup("");

	for (size_t i = 0; labels != NULL && labels[i] != NULL; i += 2) {
		if (n == PLUGIN_METRIC_LABELS) {
			*why = "more than 8 labels";
			goto bad;
		}
		if (labels[i + 1] == NULL) {
			*why = "a label without a value";
			goto bad;
		}
		if (!plugin_metric_name_ok(labels[i]) ||
		    strcmp(labels[i], "plugin") == 0 ||
		    strncmp(labels[i], "__", 2) == 0) {
			*why = "an invalid label name";
			goto bad;
		}
		if (strlen(labels[i + 1]) > PLUGIN_METRIC_VALUE_MAX ||
		    !utf8_valid(labels[i + 1], strlen(labels[i + 1]))) {
			*why = "a label value that is not UTF-8 of at most "
			       "256 bytes";
			goto bad;
		}
		/* Insertion sort by key; a key given twice is refused. */
		size_t j = n;
		while (j > 0 && strcmp(k[j - 1], labels[i]) > 0) {
			k[j] = k[j - 1];
			v[j] = v[j - 1];
			j--;
		}
		if (j > 0 && strcmp(k[j - 1], labels[i]) == 0) {
			*why = "a label given twice";
			goto bad;
		}
		k[j] = labels[i];
		v[j] = labels[i + 1];
		n++;
	}
	for (size_t i = 0; i < n; i++)
		plugin_label_escape(&out, k[i], v[i]);
	return out;
bad:
	free(out);
	return NULL;
}

static size_t
plugin_series_count(const char *plugin)
{
	size_t n = 0;

	for (struct plugin_family *f = plugin_families; f != NULL; f = f->next)
		for (struct plugin_series *se = f->series; se != NULL;
		     se = se->next)
			n += se->labels != NULL &&
			    strcmp(se->plugin, plugin) == 0;
	return n;
}

static int
plugin_metric_change(struct plugin *p, const char *name,
    const char *const *labels, double v, bool add)
{
	struct plugin_family *f = name ? plugin_family_find(name) : NULL;
	struct plugin_series *se;
	const char *why = NULL;
	char *text;

	if (f == NULL || !plugin_family_declared_by(f, p->name)) {
		log_error(p->owner,
		    "metric: %s was not declared by this plugin",
		    name ? name : "(null)");
		return -1;
	}
	/* v - v is 0 for every finite v, NaN for infinities and NaN. */
	if (!(v - v == 0)) {
		log_error(p->owner, "metric %s: not a finite number", name);
		return -1;
	}
	if ((text = plugin_labels_render(labels, &why)) == NULL) {
		log_error(p->owner, "metric %s: %s", name, why);
		return -1;
	}
	for (se = f->series; se != NULL; se = se->next) {
		if (se->labels != NULL && strcmp(se->labels, text) == 0 &&
		    strcmp(se->plugin, p->name) == 0)
			break;
	}
	if (f->type == PARLEY_METRIC_COUNTER &&
	    (add ? v < 0 : v < (se != NULL ? se->value : 0))) {
		log_error(
		    p->owner, "metric %s: a counter does not go down", name);
		free(text);
		return -1;
	}
	if (se == NULL) {
		if (plugin_series_count(p->name) >= PLUGIN_METRIC_SERIES_MAX) {
			log_error(p->owner, "metric %s: more than %d series",
			    name, PLUGIN_METRIC_SERIES_MAX);
			free(text);
			return -1;
		}
		se = plugin_series_new(f, p->name, text);
	} else
		free(text);
	se->value = add ? se->value + v : v;
	return 0;
}

/* Drops p's series and declarations; a family nobody declares goes. */
static void
plugin_metrics_remove(struct plugin *p)
{
	struct plugin_family **fp = &plugin_families;

	while (*fp != NULL) {
		struct plugin_family *f = *fp;
		struct plugin_series **sp = &f->series;
		while (*sp != NULL) {
			struct plugin_series *se = *sp;
			if (strcmp(se->plugin, p->name) != 0) {
				sp = &se->next;
				continue;
			}
			if (se->labels == NULL)
				f->declarers--;
			*sp = se->next;
			free(se->plugin);
			free(se->labels);
			free(se);
		}
		if (f->declarers > 0) {
			fp = &f->next;
			continue;
		}
		*fp = f->next;
		free(f->name);
		free(f->help);
		free(f);
	}
}

static void
plugin_metrics_families(struct metrics_buf *mb)
{
	for (struct plugin_family *f = plugin_families; f != NULL;
	     f = f->next) {
		metrics_printf(mb, "# HELP parley_plugin_%s ", f->name);
		for (const char *r = f->help; *r != '\0'; r++) {
			if (*r == '\\')
				metrics_printf(mb, "\\\\");
			else
				metrics_printf(mb, "%c", *r);
		}
		metrics_printf(mb, "\n# TYPE parley_plugin_%s %s\n", f->name,
		    f->type == PARLEY_METRIC_COUNTER ? "counter" : "gauge");
		for (struct plugin_series *se = f->series; se != NULL;
		     se = se->next) {
			if (se->labels != NULL)
				metrics_printf(mb,
				    "parley_plugin_%s{plugin=\"%s\"%s} "
				    "%.17g\n",
				    f->name, se->plugin, se->labels, se->value);
		}
	}
}

static void
plugin_metrics(struct metrics_buf *mb)
{
	plugin_metrics_families(mb);
	if (plugin_counters.count == 0)
		return;
	/* Not "parley_plugin_counter": these have no type, and a name that
	 * claims one fails the exposition format's lint. */
	metrics_printf(mb,
	    "# HELP parley_plugin_value values plugins keep "
	    "with counter_add and counter_set\n"
	    "# TYPE parley_plugin_value untyped\n");
	plugin_counter_each(plugin_metrics_line, mb);
}

/* ---------------------------------------------------------------------
 * Health (since 1.2)
 */

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
	p->health_detail = detail != NULL &&
		plugin_text_ok(p, "health detail", detail)
	    ? plugin_cut(detail, PLUGIN_REASON_MAX)
	    : NULL;
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
			json_object_set_new(
			    h, "detail", json_string(p->health_detail));
		json_object_set_new(o, p->name, h);
		if (!p->health_ok)
			*all_ok = false;
	}
	return o;
}

/* ---------------------------------------------------------------------
 * The host table: the plugin itself here, each other concern from its
 * own file
 */

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
host_metric_declare(
    parley_ctx *ctx, const char *name, int type, const char *help)
{
	return plugin_metric_declare(plugin_of(ctx), name, type, help);
}

static int
host_metric_add(
    parley_ctx *ctx, const char *name, const char *const *labels, double delta)
{
	return plugin_metric_change(plugin_of(ctx), name, labels, delta, true);
}

static int
host_metric_set(
    parley_ctx *ctx, const char *name, const char *const *labels, double value)
{
	return plugin_metric_change(plugin_of(ctx), name, labels, value, false);
}

static void
host_health_report(parley_ctx *ctx, bool ok, const char *detail)
{
	plugin_health_report(plugin_of(ctx), ok, detail);
}

static struct parley_host plugin_host, plugin_host_info;

/* Fills both tables once; they differ only in their flags. */
static void
plugin_host_build(void)
{
	struct parley_host *h = &plugin_host;

	if (h->size != 0)
		return;
	h->size = sizeof *h;
	h->abi_major = PARLEY_PLUGIN_ABI_MAJOR;
	h->abi_minor = PARLEY_PLUGIN_ABI_MINOR;
	h->server_version = PACKAGE_VERSION;
	h->plugin_name = host_plugin_name;
	h->log_printf = host_log_printf;
	h->options_json = host_options_json;
	h->option_string = host_option_string;
	h->option_int = host_option_int;
	h->option_bool = host_option_bool;
	h->option_double = host_option_double;
	h->mem_alloc = host_mem_alloc;
	h->mem_realloc = host_mem_realloc;
	h->mem_free = host_mem_free;
	h->wall_ms = host_wall_ms;
	h->mono_ms = host_mono_ms;
	h->counter_add = host_counter_add;
	h->counter_set = host_counter_set;
	h->health_report = host_health_report;
	h->metric_declare = host_metric_declare;
	h->metric_add = host_metric_add;
	h->metric_set = host_metric_set;
	plugin_hook_host(h);
	plugin_timer_host(h);
	plugin_chat_host(h);
	plugin_history_host(h);
	plugin_state_host(h);
	plugin_host_info = plugin_host;
	plugin_host_info.flags = PARLEY_HOST_INFO_ONLY;
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
			log_warn(p->owner,
			    "plugin_options for it is not a "
			    "table of named options; ignored");
		o = NULL;
	}
	/* Every plugin learns the state directory unless told otherwise. */
	p->options = o ? json_deep_copy(o) : json_object();
	if (json_object_get(p->options, "state_dir") == NULL)
		json_object_set_new(
		    p->options, "state_dir", json_string(cfg->state_dir));
	p->options_text = json_dumps(p->options, JSON_COMPACT | JSON_SORT_KEYS);
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
	plugin_hooks_forget(p);
	plugin_relays_forget(p);
	plugin_store_forget(p);
	plugin_state_forget(p);
	if (p->name != NULL)
		plugin_counters_remove(p);
}

static void
plugin_free(struct plugin *p)
{
	if (p->dl != NULL)
		dlclose(p->dl);
	while (p->retired != NULL) {
		struct plugin_retired *r = p->retired;
		p->retired = r->next;
		json_decref(r->options);
		free(r->text);
		free(r);
	}
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
		xasprintf(cause,
		    "%s exports no symbol " PARLEY_PLUGIN_SYMBOL
		    ": not a parley plugin",
		    p->path);
		goto fail;
	}
	if (d->abi_major != PARLEY_PLUGIN_ABI_MAJOR) {
		xasprintf(cause,
		    "%s was built for plugin ABI %u.%u; this "
		    "server has ABI %d.%d (rebuild it against this server's "
		    "parley/plugin.h)",
		    p->path, d->abi_major, d->abi_minor,
		    PARLEY_PLUGIN_ABI_MAJOR, PARLEY_PLUGIN_ABI_MINOR);
		goto fail;
	}
	if (d->size < PLUGIN_DESC_MIN) {
		xasprintf(cause,
		    "%s: its descriptor is %u bytes, less than "
		    "the %zu of ABI %d.0",
		    p->path, d->size, PLUGIN_DESC_MIN, PARLEY_PLUGIN_ABI_MAJOR);
		goto fail;
	}
	if (d->name == NULL || !plugin_name_ok(d->name)) {
		xasprintf(cause,
		    "%s: its name is missing or not 1 to %d "
		    "letters, digits, '_', '-' or '.'",
		    p->path, PLUGIN_NAME_MAX);
		goto fail;
	}
	if (d->init == NULL) {
		xasprintf(
		    cause, "%s: its descriptor has no init function", p->path);
		goto fail;
	}
	if (!info_only && plugin_find(d->name) != NULL) {
		xasprintf(cause,
		    "a plugin named %s is loaded already (from "
		    "%s)",
		    d->name, plugin_find(d->name)->path);
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
	int rc;

	plugin_host_build();
	rc = p->desc->init(
	    plugin_ctx(p), p->info_only ? &plugin_host_info : &plugin_host);

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
			log_error(
			    "plugin", "refusing plugin %s: %s", entry, why);
			xasprintf(cause, "plugin %s refused: %s", entry, why);
			free(why);
			plugin_unload_all();
			return -1;
		}
		tail = &p->next;
		log_info("plugin", "loaded %s %s (ABI %u.%u) from %s", p->name,
		    p->desc->version ? p->desc->version : "",
		    p->desc->abi_major, p->desc->abi_minor, p->path);
	}
	if (plugin_list != NULL)
		metrics_register(plugin_metrics);
	if (cfg->plugin_options != NULL && !json_is_object(cfg->plugin_options))
		log_warn("plugin",
		    "plugin_options is a list; it must name "
		    "plugins: { [\"name\"] = { ... } }");
	if (json_is_object(cfg->plugin_options)) {
		const char *key;
		json_t *v;
		json_object_foreach(cfg->plugin_options, key, v)
		{
			bool used = false;
			for (struct plugin *p = plugin_list; p != NULL;
			     p = p->next)
				used |= strcmp(key, p->name) == 0 ||
				    strcmp(key, p->entry) == 0;
			if (!used)
				log_warn("plugin",
				    "plugin_options names %s, "
				    "which is not loaded",
				    key);
		}
	}
	return 0;
}

void
plugin_reload(void)
{
	for (struct plugin *p = plugin_list; p != NULL; p = p->next) {
		struct plugin_retired *r = xcalloc(1, sizeof *r);
		r->options = p->options;
		r->text = p->options_text;
		plugin_set_options(p);
		if (json_equal(r->options, p->options)) {
			/* Unchanged: keep the old ones, and no copies. */
			json_decref(p->options);
			free(p->options_text);
			p->options = r->options;
			p->options_text = r->text;
			free(r);
			continue;
		}
		r->next = p->retired;
		p->retired = r;
	}
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
			xasprintf(
			    cause, "plugin %s: %s", cfg->plugins.v[i], why);
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
		fprintf(
		    stderr, "parleyd: plugin %s refused: %s\n", file, cause);
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
		fprintf(
		    stderr, "parleyd: plugin %s refused: %s\n", file, cause);
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
	for (struct plugin_command *pc = p->commands; pc != NULL; pc = pc->next)
		printf("command: /%s%s%s%s\n", pc->name,
		    pc->usage ? " (usage: " : "", pc->usage ? pc->usage : "",
		    pc->usage ? ")" : "");
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
