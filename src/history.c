/*
 * history.c: the one place that knows where room history lives. A plugin
 * may register itself as the history store (durable, seq continuing
 * across restarts); without one, each room keeps its newest messages in
 * the in-memory ring of room.c, and history_size = 0 turns history off.
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

json_t *
history_read(const struct room *r, uint64_t before, size_t limit)
{
	if (history_has_store)
		return history_store.read(history_store.arg, r->name,
		    r->name_len, before, limit);
	return room_history(r, before, limit);
}

uint64_t
history_last_seq(const char *room, size_t len)
{
	if (history_has_store && history_store.last_seq != NULL)
		return history_store.last_seq(history_store.arg, room, len);
	return 0;
}
