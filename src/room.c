/*
 * room.c: rooms by name, their members in join order, the per-room seq and
 * the in-memory history ring. Membership is a node linked both into the
 * room's list and the client's array, so join and leave cost O(1) apart
 * from the participants list the protocol sends with them.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "parley.h"

static struct map room_map;
static struct room **room_order; /* creation order, for list_rooms */
static size_t room_n, room_cap;

struct room *
room_find(const char *name, size_t len)
{
	return map_find(&room_map, name, len);
}

struct room *
room_create(const char *name, size_t len, uint64_t owner)
{
	struct room *r;

	if (room_find(name, len) != NULL)
		return NULL;
	r = xcalloc(1, sizeof *r);
	r->name = xstrndup(name, len);
	r->name_len = len;
	r->owner = owner;
	/* A durable store remembers the room's messages: go on from there
	 * so a seq is never reused. */
	r->seq = history_last_seq(name, len);
	map_add(&room_map, name, len, r);
	if (room_n == room_cap) {
		room_cap = room_cap ? room_cap * 2 : 16;
		room_order = xreallocarray(room_order, room_cap,
		    sizeof *room_order);
	}
	room_order[room_n++] = r;
	return r;
}

struct membership *
room_membership(const struct room *r, const struct client *c)
{
	/* A client is in few rooms: scan its own list, not the room's. */
	for (size_t i = 0; i < c->nrooms; i++) {
		if (c->rooms[i]->room == r)
			return c->rooms[i];
	}
	return NULL;
}

void
room_join(struct room *r, struct client *c)
{
	struct membership *m = xcalloc(1, sizeof *m);

	m->room = r;
	m->client = c;
	m->prev = r->tail;
	if (r->tail != NULL)
		r->tail->next = m;
	else
		r->head = m;
	r->tail = m;
	r->count++;
	metrics_add(METRIC_ROOM_MEMBERS, 1);

	c->rooms = xreallocarray(c->rooms, c->nrooms + 1, sizeof *c->rooms);
	m->index = c->nrooms;
	c->rooms[c->nrooms++] = m;
}

int
room_leave(struct room *r, struct client *c)
{
	struct membership *m = room_membership(r, c);
	struct membership *last;

	if (m == NULL)
		return -1;
	if (m->prev != NULL)
		m->prev->next = m->next;
	else
		r->head = m->next;
	if (m->next != NULL)
		m->next->prev = m->prev;
	else
		r->tail = m->prev;
	r->count--;
	metrics[METRIC_ROOM_MEMBERS]--;

	last = c->rooms[--c->nrooms];
	if (last != m) {
		c->rooms[m->index] = last;
		last->index = m->index;
	}
	if (c->nrooms == 0) {
		free(c->rooms);
		c->rooms = NULL;
	}
	free(m);
	return 0;
}

json_t *
room_participants(const struct room *r)
{
	json_t *a = json_array();

	for (struct membership *m = r->head; m != NULL; m = m->next)
		json_array_append_new(a, json_string(m->client->name));
	return a;
}

void
room_broadcast(struct room *r, struct buf *b)
{
	for (struct membership *m = r->head; m != NULL; m = m->next) {
		if (!m->client->closing)
			conn_send(m->client, b);
	}
}

void
room_broadcast_new(struct room *r, json_t *json)
{
	struct buf *b = buf_json(json);

	json_decref(json);
	room_broadcast(r, b);
	buf_unref(b);
}

static void
room_history_clear(struct history_entry *e)
{
	free(e->sender);
	free(e->text);
	memset(e, 0, sizeof *e);
}

void
room_history_add(struct room *r, uint64_t seq, uint64_t ts,
    const char *sender, const char *text, size_t len, bool action)
{
	struct history_entry *e;
	size_t cap = cfg->history_size;

	if (cap == 0)
		return;
	if (r->hist_cap != cap) {
		/* First use, or the configured size changed: keep the
		 * newest entries that still fit. */
		struct history_entry *n = xcalloc(cap, sizeof *n);
		size_t keep = r->hist_len < cap ? r->hist_len : cap;
		size_t drop = r->hist_len - keep;
		for (size_t i = 0; i < r->hist_len; i++) {
			struct history_entry *o =
			    &r->hist[(r->hist_start + i) % r->hist_cap];
			if (i < drop)
				room_history_clear(o);
			else
				n[i - drop] = *o;
		}
		free(r->hist);
		r->hist = n;
		r->hist_cap = cap;
		r->hist_start = 0;
		r->hist_len = keep;
	}
	if (r->hist_len == r->hist_cap) {
		e = &r->hist[r->hist_start];
		room_history_clear(e);
		r->hist_start = (r->hist_start + 1) % r->hist_cap;
	} else {
		e = &r->hist[(r->hist_start + r->hist_len) % r->hist_cap];
		r->hist_len++;
	}
	e->seq = seq;
	e->ts = ts;
	e->sender = xstrdup(sender);
	e->text = xstrndup(text, len);
	e->text_len = len;
	e->action = action;
}

json_t *
room_history(const struct room *r, uint64_t before, size_t limit)
{
	json_t *a = json_array();
	size_t end = r->hist_len, start;

	/* Entries are in seq order: find the first one at or past before. */
	if (before != ROOM_NO_BEFORE) {
		size_t lo = 0, hi = r->hist_len;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			const struct history_entry *e =
			    &r->hist[(r->hist_start + mid) % r->hist_cap];
			if (e->seq < before)
				lo = mid + 1;
			else
				hi = mid;
		}
		end = lo;
	}
	start = end > limit ? end - limit : 0;
	for (size_t i = start; i < end; i++) {
		const struct history_entry *e =
		    &r->hist[(r->hist_start + i) % r->hist_cap];
		json_t *m = json_pack("{s:s%, s:s, s:I, s:I}", "message",
		    e->text, e->text_len, "sender", e->sender, "ts",
		    (json_int_t)e->ts, "seq", (json_int_t)e->seq);
		if (e->action)
			json_object_set_new(m, "action", json_true());
		json_array_append_new(a, m);
	}
	return a;
}

void
room_post(struct room *r, struct client *from, const char *sender,
    const char *text, size_t len, bool action)
{
	if (hook_any(HOOK_POST)) {
		struct hook_args a = { .event = HOOK_POST, .client = from,
			.room = r, .text = text, .text_len = len,
			.sender = sender, .action = action };
		enum hook_verdict v = hook_run(&a);
		/* A hook that failed refused it: the sender must learn that
		 * the message went nowhere. */
		if (v == HOOK_DENY && from != NULL &&
		    a.deny_code == PROTO_ERR_INTERNAL)
			proto_send_error(from, a.deny_code, NULL, r->name,
			    a.deny_reason);
		hook_args_free(&a);
		/* Taken over (e.g. ordered by a cluster), or refused. */
		if (v == HOOK_DROP || v == HOOK_DENY)
			return;
	}
	room_post_seq(r, sender, text, len, action, r->seq + 1,
	    loop_wall_ms());
}

void
room_post_seq(struct room *r, const char *sender, const char *text,
    size_t len, bool action, uint64_t seq, uint64_t ts)
{
	json_t *ev = json_pack("{s:s, s:s%, s:s%, s:s, s:I, s:I}", "type",
	    "new_message", "roomName", r->name, r->name_len, "message", text,
	    len, "sender", sender, "ts", (json_int_t)ts, "seq",
	    (json_int_t)seq);

	r->seq = seq;
	if (action)
		json_object_set_new(ev, "action", json_true());
	history_append(r, seq, ts, sender, text, len, action);
	metrics_add(METRIC_MESSAGES_IN, 1);
	metrics_add(METRIC_MESSAGES_DELIVERED, r->count);
	room_broadcast_new(r, ev);
}

json_t *
room_names(void)
{
	json_t *a = json_array();

	for (size_t i = 0; i < room_n; i++)
		json_array_append_new(a,
		    json_stringn(room_order[i]->name, room_order[i]->name_len));
	return a;
}

json_t *
room_list(void)
{
	json_t *a = json_array();

	for (size_t i = 0; i < room_n; i++) {
		struct room *r = room_order[i];
		json_array_append_new(a,
		    json_pack("{s:s%, s:I}", "roomName", r->name, r->name_len,
			"count", (json_int_t)r->count));
	}
	return a;
}

unsigned
room_count(void)
{
	return (unsigned)room_n;
}

void
room_free_all(void)
{
	for (size_t i = 0; i < room_n; i++) {
		struct room *r = room_order[i];
		while (r->head != NULL)
			room_leave(r, r->head->client);
		for (size_t j = 0; j < r->hist_len; j++)
			room_history_clear(
			    &r->hist[(r->hist_start + j) % r->hist_cap]);
		free(r->hist);
		free(r->name);
		free(r);
	}
	free(room_order);
	room_order = NULL;
	room_n = room_cap = 0;
	map_free(&room_map);
}
