/*
 * history-plugin.c: a plugin's history store behind history.c's store
 * interface. Appends and reads are handed to the plugin as ABI structs;
 * what a read emits becomes the JSON history reply. A read may be
 * answered later (since ABI 1.2): the sink then moves to the heap and
 * waits for history_done. Sinks are checked against the registry of live
 * handles, so a plugin that answers twice or too late is told, not
 * obeyed. Also the host functions of this concern.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "parley.h"
#include "plugin-host.h"

/* A store of ABI 1.0 up to its reserved fields. */
#define PLUGIN_STORE_MIN offsetof(struct parley_history_store, reserved)

static struct plugin *plugin_store_owner;

struct plugin_sink {
	bool later; /* deferred: answered through history_done */
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
plugin_store_append(void *arg, const char *room, size_t room_len, uint64_t seq,
    uint64_t ts, const char *sender, const char *text, size_t len, bool action)
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

static int
plugin_store_tombstone(
    void *arg, const char *room, size_t room_len, uint64_t seq)
{
	struct plugin *p = arg;

	if (p->store.tombstone == NULL)
		return 0;
	return p->store.tombstone(
	    plugin_ctx(p), room, room_len, seq, p->store.arg);
}

static bool
plugin_store_pages_forward(void *arg)
{
	const struct plugin *p = arg;

	return p->store.read_after != NULL;
}

static json_t *
plugin_store_read(void *arg, const char *room, size_t room_len, uint64_t after,
    uint64_t before, size_t limit, struct history_waiter *w, bool *later)
{
	struct plugin *p = arg;
	struct plugin_sink sink = {
		.p = p, .messages = json_array(), .limit = limit, .waiter = w
	};
	int rc;

	*later = false;
	handle_add(&sink, HANDLE_HISTORY_SINK);
	if (after != HISTORY_NO_AFTER)
		rc = p->store.read_after(plugin_ctx(p), room, room_len, after,
		    before, limit > UINT32_MAX ? UINT32_MAX : (uint32_t)limit,
		    (parley_history_sink *)&sink, p->store.arg);
	else
		rc = p->store.read(plugin_ctx(p), room, room_len, before,
		    limit > UINT32_MAX ? UINT32_MAX : (uint32_t)limit,
		    (parley_history_sink *)&sink, p->store.arg);
	handle_remove(&sink);
	if (sink.deferred != NULL) {
		/* Whatever rc says, the plugin holds the deferred sink and
		 * answers through history_done. */
		if (rc != PARLEY_HISTORY_LATER)
			log_warn(p->owner,
			    "history read deferred its answer "
			    "but returned %d, not PARLEY_HISTORY_LATER",
			    rc);
		json_decref(sink.messages);
		*later = true;
		return NULL;
	}
	if (rc != 0) {
		if (rc == PARLEY_HISTORY_LATER)
			log_warn(p->owner,
			    "history read returned "
			    "PARLEY_HISTORY_LATER without history_defer");
		json_decref(sink.messages);
		return NULL;
	}
	return sink.messages;
}

static parley_history_sink *
plugin_store_defer(struct plugin *p, parley_history_sink *s)
{
	struct plugin_sink *sink = (struct plugin_sink *)s, *d;

	if (!handle_valid(sink, HANDLE_HISTORY_SINK) || sink->later ||
	    sink->p != p || sink->waiter == NULL || sink->deferred != NULL) {
		log_warn(p->owner,
		    "history_defer outside a history read, or "
		    "twice");
		return NULL;
	}
	d = xcalloc(1, sizeof *d);
	*d = *sink;
	d->later = true;
	handle_add(d, HANDLE_HISTORY_SINK);
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

static void
plugin_store_done(struct plugin *p, parley_history_sink *s, int status)
{
	struct plugin_sink *sink = (struct plugin_sink *)s;

	if (!handle_valid(sink, HANDLE_HISTORY_SINK) || !sink->later ||
	    sink->p != p) {
		log_warn(p->owner,
		    "history_done: not a deferred history read "
		    "of this plugin");
		return;
	}
	if (sink->prev != NULL)
		sink->prev->next = sink->next;
	else
		p->deferred = sink->next;
	if (sink->next != NULL)
		sink->next->prev = sink->prev;
	handle_remove(sink);
	history_answer(sink->waiter, status == 0 ? sink->messages : NULL);
	if (status != 0)
		json_decref(sink->messages);
	free(sink);
}

/* Reads the plugin never answered get an "internal" error. */
void
plugin_store_forget(struct plugin *p)
{
	while (p->deferred != NULL) {
		log_warn(p->owner, "a history read was never answered");
		plugin_store_done(p, (parley_history_sink *)p->deferred, -1);
	}
	if (p->has_store && plugin_store_owner == p) {
		history_set_store(NULL);
		plugin_store_owner = NULL;
	}
	p->has_store = false;
}

static uint64_t
plugin_store_last_seq(void *arg, const char *room, size_t room_len)
{
	struct plugin *p = arg;

	if (p->store.last_seq == NULL)
		return 0;
	return p->store.last_seq(plugin_ctx(p), room, room_len, p->store.arg);
}

static int
plugin_store_emit(struct plugin *p, parley_history_sink *s,
    const struct parley_history_msg *m)
{
	struct plugin_sink *sink = (struct plugin_sink *)s;
	json_t *o;

	if (!handle_valid(sink, HANDLE_HISTORY_SINK) || sink->p != p) {
		log_warn(p->owner, "history_emit outside a history read");
		return -1;
	}
	if (m == NULL ||
	    m->size < offsetof(struct parley_history_msg, reserved) ||
	    m->sender == NULL || m->text == NULL) {
		log_warn(p->owner, "history_emit: malformed message");
		return -1;
	}
	if (json_array_size(sink->messages) >= sink->limit) {
		if (!sink->overflow_logged)
			log_warn(p->owner,
			    "history read gave more than the "
			    "%zu messages asked for",
			    sink->limit);
		sink->overflow_logged = true;
		return -1;
	}
	if (m->flags & PARLEY_MSG_DELETED)
		/* A tombstone: whatever text came with it is not shown. */
		o = json_pack("{s:s%, s:I, s:I, s:b}", "sender", m->sender,
		    m->sender_len, "ts", (json_int_t)m->ts, "seq",
		    (json_int_t)m->seq, "deleted", 1);
	else
		o = json_pack("{s:s%, s:s%, s:I, s:I}", "message", m->text,
		    m->text_len, "sender", m->sender, m->sender_len, "ts",
		    (json_int_t)m->ts, "seq", (json_int_t)m->seq);
	if (o == NULL) {
		log_warn(p->owner, "history_emit: seq %llu is not valid UTF-8",
		    (unsigned long long)m->seq);
		return -1;
	}
	if ((m->flags & PARLEY_MSG_ACTION) && !(m->flags & PARLEY_MSG_DELETED))
		json_object_set_new(o, "action", json_true());
	json_array_append_new(sink->messages, o);
	return 0;
}

/* Rooms created before the store came continue from its seq. */
static int
plugin_store_catch_up(struct room *r, void *arg)
{
	uint64_t last = plugin_store_last_seq(arg, r->hkey, r->hkey_len);

	if (last > r->seq)
		r->seq = last;
	return 0;
}

/* The deleted messages, made tombstones in the store again: one deleted
 * just before a crash may be a tombstone in the state store and not yet
 * in the store's (they write behind, each on its own). A store leaves
 * alone what it has made a tombstone already. */
static void
plugin_store_tombs_again(struct plugin *p)
{
	const char *hkey, *key;
	json_t *seqs, *v;

	if (p->store.tombstone == NULL)
		return;
	json_object_foreach(state_all("tomb"), hkey, seqs)
	{
		json_object_foreach(seqs, key, v)
		{
			char *end;
			unsigned long long seq = strtoull(key, &end, 10);
			if (*end == '\0' && seq > 0)
				p->store.tombstone(plugin_ctx(p), hkey,
				    strlen(hkey), (uint64_t)seq, p->store.arg);
		}
	}
}

static int
plugin_store_register(
    struct plugin *p, const struct parley_history_store *store)
{
	struct history_store hs;
	size_t n;

	if (store == NULL || store->size < PLUGIN_STORE_MIN ||
	    store->append == NULL || store->read == NULL) {
		log_error(p->owner, "history_store_register: malformed store");
		return -1;
	}
	if (p->has_store || (plugin_store_owner != NULL && !p->info_only)) {
		log_error(p->owner,
		    "history_store_register: %s is the history "
		    "store already",
		    p->has_store ? "this plugin" : plugin_store_owner->owner);
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
	hs.pages_forward = plugin_store_pages_forward;
	hs.tombstone = plugin_store_tombstone;
	hs.arg = p;
	if (history_set_store(&hs) == -1) {
		p->has_store = false;
		log_error(p->owner,
		    "history_store_register: another history "
		    "store is registered");
		return -1;
	}
	plugin_store_owner = p;
	room_each(plugin_store_catch_up, p);
	plugin_store_tombs_again(p);
	log_info(p->owner, "serving room history");
	return 0;
}

static int
host_history_store_register(
    parley_ctx *ctx, const struct parley_history_store *store)
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

void
plugin_history_host(struct parley_host *h)
{
	h->history_store_register = host_history_store_register;
	h->history_emit = host_history_emit;
	h->history_defer = host_history_defer;
	h->history_done = host_history_done;
}
