/*
 * history.c: the one place that knows where room history lives. A plugin
 * may register itself as the history store (durable, seq continuing
 * across restarts); without one, each room keeps its newest messages in
 * the in-memory ring of room.c, and history_size = 0 turns history off.
 * A store may answer later (its data is across the network): the request
 * then waits here, keyed by client id, as the client may leave meanwhile.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "parley.h"

static struct history_store history_store;
static bool history_has_store;

int
history_set_store(const struct history_store *s)
{
	if (s == NULL) {
		history_has_store = false;
		memset(&history_store, 0, sizeof history_store);
		return 0;
	}
	if (history_has_store)
		return -1;
	history_store = *s;
	history_has_store = true;
	return 0;
}

bool
history_enabled(void)
{
	return history_has_store || cfg->history_size > 0;
}

void
history_append(struct room *r, uint64_t seq, uint64_t ts, const char *sender,
    const char *text, size_t len, bool action)
{
	if (history_has_store) {
		history_store.append(history_store.arg, r->name, r->name_len,
		    seq, ts, sender, text, len, action);
		return;
	}
	room_history_add(r, seq, ts, sender, text, len, action);
}

/* A request the store answers later; the client may be gone by then. */
struct history_waiter {
	uint64_t client_id;
	json_t *id;
	char *room;
};

static void
history_send(struct client *c, const json_t *id, const char *room,
    json_t *msgs)
{
	if (msgs == NULL) {
		proto_send_error(c, PROTO_ERR_INTERNAL, id, room, NULL);
		return;
	}
	proto_reply_new(c, id, json_pack("{s:s, s:s, s:o}", "type", "history",
	    "roomName", room, "messages", msgs));
}

enum proto_err
history_request(struct client *c, const json_t *id, const struct room *r,
    uint64_t before, size_t limit)
{
	struct history_waiter *w;
	json_t *msgs;
	bool later = false;

	if (!history_has_store) {
		history_send(c, id, r->name, room_history(r, before, limit));
		return PROTO_OK;
	}
	w = xcalloc(1, sizeof *w);
	w->client_id = c->id;
	w->id = id != NULL ? json_deep_copy(id) : NULL;
	w->room = xstrdup(r->name);
	msgs = history_store.read(history_store.arg, r->name, r->name_len,
	    before, limit, w, &later);
	if (later)
		return PROTO_OK; /* the store owns w now */
	json_decref(w->id);
	free(w->room);
	free(w);
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
	json_decref(w->id);
	free(w->room);
	free(w);
}

uint64_t
history_last_seq(const char *room, size_t len)
{
	if (history_has_store && history_store.last_seq != NULL)
		return history_store.last_seq(history_store.arg, room, len);
	return 0;
}
