/*
 * history.c: the one place that knows where room history lives. One
 * store serves every room: the built-in in-memory ring (the newest
 * history_size messages of each room; 0 turns history off) unless a plugin
 * registered a durable store, which history-plugin.c adapts to the same
 * interface. A store may answer later (its data is across the network):
 * the request then waits here, keyed by client id, as the client may
 * leave meanwhile.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley.h"

/* ---- The built-in ring */

struct history_entry {
	uint64_t seq;
	uint64_t ts;
	char *sender;
	char *text;
	size_t text_len;
	bool action;
	bool deleted; /* a tombstone: the text is gone */
};

/* One room's newest messages, oldest at start. */
struct history_ring {
	struct history_entry *v;
	size_t cap, start, len;
};

static struct map history_rings; /* room name -> struct history_ring */

/* Overwrites a text before it goes back to the allocator: a deleted
 * message must not linger in freed memory (a core file, a later
 * allocation's leftovers). */
static void
history_text_forget(struct history_entry *e)
{
	explicit_bzero(e->text, e->text_len);
	free(e->text);
	e->text = NULL;
	e->text_len = 0;
}

static void
history_entry_clear(struct history_entry *e)
{
	free(e->sender);
	free(e->text);
	memset(e, 0, sizeof *e);
}

static struct history_entry *
history_ring_at(const struct history_ring *h, size_t i)
{
	return &h->v[(h->start + i) % h->cap];
}

/* First use, or the configured size changed: keep the newest entries
 * that still fit. */
static void
history_ring_resize(struct history_ring *h, size_t cap)
{
	struct history_entry *n = xcalloc(cap, sizeof *n);
	size_t keep = h->len < cap ? h->len : cap;
	size_t drop = h->len - keep;

	for (size_t i = 0; i < h->len; i++) {
		struct history_entry *o = history_ring_at(h, i);
		if (i < drop)
			history_entry_clear(o);
		else
			n[i - drop] = *o;
	}
	free(h->v);
	h->v = n;
	h->cap = cap;
	h->start = 0;
	h->len = keep;
}

static int
history_ring_append(void *arg, const char *room, size_t room_len, uint64_t seq,
    uint64_t ts, const char *sender, const char *text, size_t len, bool action)
{
	struct history_ring *h = map_find(&history_rings, room, room_len);
	struct history_entry *e;
	size_t cap = cfg->history_size;

	(void)arg;
	if (cap == 0)
		return 0;
	if (h == NULL) {
		h = xcalloc(1, sizeof *h);
		map_add(&history_rings, room, room_len, h);
	}
	if (h->cap != cap)
		history_ring_resize(h, cap);
	if (h->len == h->cap) {
		e = history_ring_at(h, 0);
		history_entry_clear(e);
		h->start = (h->start + 1) % h->cap;
	} else {
		e = history_ring_at(h, h->len);
		h->len++;
	}
	e->seq = seq;
	e->ts = ts;
	e->sender = xstrdup(sender);
	e->text = xstrndup(text, len);
	e->text_len = len;
	e->action = action;
	return 0;
}

/* The index of the first entry of h with seq >= seq. */
static size_t
history_ring_lower(const struct history_ring *h, uint64_t seq)
{
	size_t lo = 0, hi = h->len;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (history_ring_at(h, mid)->seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static json_t *
history_ring_read(void *arg, const char *room, size_t room_len, uint64_t after,
    uint64_t before, size_t limit, struct history_waiter *w, bool *later)
{
	const struct history_ring *h = map_find(&history_rings, room, room_len);
	json_t *a = json_array();
	size_t end, start;

	(void)arg;
	(void)w;
	*later = false;
	if (h == NULL)
		return a;
	/* Entries are in seq order: find the first one at or past before. */
	end = before != HISTORY_NO_BEFORE ? history_ring_lower(h, before)
					  : h->len;
	if (after != HISTORY_NO_AFTER) {
		/* Paging forward: after decides which end is kept. */
		start = history_ring_lower(h, after + 1);
		if (start > end)
			start = end;
		if (end - start > limit)
			end = start + limit;
	} else
		start = end > limit ? end - limit : 0;
	for (size_t i = start; i < end; i++) {
		const struct history_entry *e = history_ring_at(h, i);
		json_t *m;
		if (e->deleted) {
			json_array_append_new(a,
			    json_pack("{s:s, s:I, s:I, s:b}", "sender",
				e->sender, "ts", (json_int_t)e->ts, "seq",
				(json_int_t)e->seq, "deleted", 1));
			continue;
		}
		m = json_pack("{s:s%, s:s, s:I, s:I}", "message", e->text,
		    e->text_len, "sender", e->sender, "ts", (json_int_t)e->ts,
		    "seq", (json_int_t)e->seq);
		if (e->action)
			json_object_set_new(m, "action", json_true());
		json_array_append_new(a, m);
	}
	return a;
}

static uint64_t
history_ring_last_seq(void *arg, const char *room, size_t room_len)
{
	const struct history_ring *h = map_find(&history_rings, room, room_len);

	(void)arg;
	return h != NULL && h->len > 0 ? history_ring_at(h, h->len - 1)->seq
				       : 0;
}

/* The ring drops the text itself; -1 when it does not hold seq. */
static int
history_ring_tombstone(
    void *arg, const char *room, size_t room_len, uint64_t seq)
{
	struct history_ring *h = map_find(&history_rings, room, room_len);
	struct history_entry *e;
	size_t i;

	(void)arg;
	if (h == NULL || (i = history_ring_lower(h, seq)) == h->len ||
	    (e = history_ring_at(h, i))->seq != seq)
		return -1;
	if (!e->deleted) {
		history_text_forget(e);
		e->deleted = true;
		e->action = false;
	}
	return 0;
}

static bool
history_ring_pages_forward(void *arg)
{
	(void)arg;
	return true;
}

static const struct history_store history_ring = {
	.owner = "ring",
	.append = history_ring_append,
	.read = history_ring_read,
	.last_seq = history_ring_last_seq,
	.pages_forward = history_ring_pages_forward,
	.tombstone = history_ring_tombstone,
};

static void
history_ring_free(struct history_ring *h)
{
	for (size_t i = 0; i < h->len; i++)
		history_entry_clear(history_ring_at(h, i));
	free(h->v);
	free(h);
}

void
history_forget(const char *room, size_t len)
{
	struct history_ring *h = map_remove(&history_rings, room, len);

	if (h != NULL)
		history_ring_free(h);
}

void
history_free_all(void)
{
	size_t pos = 0;
	void *v;

	while (map_next(&history_rings, &pos, NULL, &v))
		history_ring_free(v);
	map_free(&history_rings);
}

/* ---- The store in service */

static struct history_store history_durable_store; /* a plugin's */
static const struct history_store *history_store = &history_ring;
static bool history_durable; /* a plugin's store is registered */

int
history_set_store(const struct history_store *s)
{
	if (s == NULL) {
		history_durable = false;
		history_store = &history_ring;
		return 0;
	}
	if (history_durable)
		return -1;
	history_durable_store = *s;
	history_store = &history_durable_store;
	history_durable = true;
	return 0;
}

const char *
history_store_name(void)
{
	return history_store->owner;
}

bool
history_enabled(void)
{
	return history_durable || cfg->history_size > 0;
}

void
history_append(struct room *r, uint64_t seq, uint64_t ts, const char *sender,
    const char *text, size_t len, bool action)
{
	history_store->append(history_store->arg, r->hkey, r->hkey_len, seq, ts,
	    sender, text, len, action);
}

/* A request the store answers later; the client may be gone by then. */
struct history_waiter {
	uint64_t client_id;
	json_t *id;
	char *room;
};

/* Deleted messages are tombstones whatever the store: the state store
 * keeps which seqs of a room's history are deleted, and every answer is
 * filtered through it, so a store that cannot rewrite its past (a log, a
 * cluster's) still never shows a deleted text. */
static void
history_tombstones(const char *room, json_t *msgs)
{
	struct room *r = room_find(room, strlen(room));
	json_t *tomb, *m;
	size_t i;

	if (r == NULL || (tomb = state_get("tomb", r->hkey)) == NULL)
		return;
	json_array_foreach(msgs, i, m)
	{
		char key[24];
		json_t *seq = json_object_get(m, "seq");
		if (!json_is_integer(seq))
			continue;
		snprintf(key, sizeof key, "%lld",
		    (long long)json_integer_value(seq));
		if (json_object_get(tomb, key) != NULL) {
			json_object_del(m, "message");
			json_object_del(m, "action");
			json_object_set_new(m, "deleted", json_true());
		}
	}
}

bool
history_delete(struct room *r, uint64_t seq)
{
	json_t *tomb;
	char key[24];

	if (seq == 0 || seq > r->seq)
		return false;
	if (history_store == &history_ring) {
		/* The ring knows what it holds, and forgets the text. */
		if (history_ring_tombstone(NULL, r->hkey, r->hkey_len, seq) ==
		    -1)
			return false;
	} else if (history_store->tombstone != NULL)
		/* A durable store is not asked whether it has seq (it may
		 * answer later): the tombstone holds either way. */
		history_store->tombstone(
		    history_store->arg, r->hkey, r->hkey_len, seq);
	snprintf(key, sizeof key, "%llu", (unsigned long long)seq);
	tomb = json_deep_copy(state_get("tomb", r->hkey));
	if (tomb == NULL)
		tomb = json_object();
	if (json_object_get(tomb, key) != NULL) {
		json_decref(tomb);
		return true;
	}
	json_object_set_new(tomb, key, json_true());
	state_put_new("tomb", r->hkey, tomb);
	return true;
}

void
history_tombs_changed(const char *hkey, const json_t *tomb)
{
	const json_t *old = state_get("tomb", hkey);
	const char *key;
	json_t *v;

	if (history_store->tombstone == NULL || !json_is_object(tomb))
		return;
	json_object_foreach((json_t *)tomb, key, v)
	{
		char *end;
		unsigned long long seq = strtoull(key, &end, 10);
		if (*end != '\0' || seq == 0 ||
		    json_object_get(old, key) != NULL)
			continue;
		history_store->tombstone(
		    history_store->arg, hkey, strlen(hkey), (uint64_t)seq);
	}
}

static void
history_send(struct client *c, const json_t *id, const char *room, json_t *msgs)
{
	if (msgs != NULL)
		history_tombstones(room, msgs);
	if (msgs == NULL) {
		proto_send_error(c, PROTO_ERR_INTERNAL, id, room, NULL);
		return;
	}
	proto_reply_new(c, id,
	    json_pack("{s:s, s:s, s:o}", "type", "history", "roomName", room,
		"messages", msgs));
}

static void
history_waiter_free(struct history_waiter *w)
{
	json_decref(w->id);
	free(w->room);
	free(w);
}

enum proto_err
history_request(struct client *c, const json_t *id, const struct room *r,
    uint64_t after, uint64_t before, size_t limit)
{
	struct history_waiter *w;
	json_t *msgs;
	bool later = false;

	if (after != HISTORY_NO_AFTER &&
	    (history_store->pages_forward == NULL ||
		!history_store->pages_forward(history_store->arg)))
		return PROTO_ERR_UNSUPPORTED;
	if (after != HISTORY_NO_AFTER && before != HISTORY_NO_BEFORE &&
	    after >= before) {
		history_send(c, id, r->name, json_array());
		return PROTO_OK;
	}

	w = xcalloc(1, sizeof *w);
	w->client_id = c->id;
	w->id = id != NULL ? json_deep_copy(id) : NULL;
	w->room = xstrdup(r->name);
	msgs = history_store->read(history_store->arg, r->hkey, r->hkey_len,
	    after, before, limit, w, &later);
	if (later)
		return PROTO_OK; /* the store owns w now */
	history_waiter_free(w);
	if (msgs == NULL)
		return PROTO_ERR_INTERNAL;
	history_send(c, id, r->name, msgs);
	return PROTO_OK;
}

void
history_answer(struct history_waiter *w, json_t *msgs)
{
	struct client *c = client_find_by_id(w->client_id);

	if (c != NULL && !c->dead && !c->closing)
		history_send(c, w->id, w->room, msgs);
	else
		json_decref(msgs);
	history_waiter_free(w);
}

uint64_t
history_last_seq(const struct room *r)
{
	if (history_store->last_seq == NULL)
		return 0;
	return history_store->last_seq(
	    history_store->arg, r->hkey, r->hkey_len);
}
