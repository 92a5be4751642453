/*
 * ws_held.h: what a WebSocket parser holds right now, for the tests'
 * memory checks. The in-flight state exists only while a frame or a
 * fragmented message is pending; an idle or dead parser holds nothing.
 */
#ifndef WS_HELD_H
#define WS_HELD_H

#include "parley.h"

static inline const uint8_t *
held_msg(const struct ws_parser *p)
{
	return p->f != NULL ? p->f->msg : NULL;
}

static inline size_t
held_len(const struct ws_parser *p)
{
	return p->f != NULL ? p->f->msg_len : 0;
}

static inline size_t
held_cap(const struct ws_parser *p)
{
	return p->f != NULL ? p->f->msg_cap : 0;
}

#endif
