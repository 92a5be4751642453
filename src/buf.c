/*
 * buf.c: immutable WebSocket frames with a reference count. A broadcast
 * encodes its JSON and frame header once into one buf; every recipient's
 * output queue holds a reference, so fan-out costs a pointer per member.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "parley.h"

struct buf *
buf_frame(int opcode, const void *payload, size_t len)
{
	uint8_t hdr[WS_MAX_HEADER];
	size_t hlen = ws_frame_header(hdr, opcode, len);
	struct buf *b;

	PARLEY_ASSERT(len <= UINT32_MAX - WS_MAX_HEADER);
	b = xmalloc(sizeof *b + hlen + len);
	b->refs = 1;
	b->len = (uint32_t)(hlen + len);
	memcpy(b->data, hdr, hlen);
	if (len != 0)
		memcpy(b->data + hlen, payload, len);
	return b;
}

struct buf *
buf_json(const json_t *json)
{
	size_t flags = JSON_COMPACT;
	size_t len = json_dumpb(json, NULL, 0, flags);
	uint8_t hdr[WS_MAX_HEADER];
	size_t hlen;
	struct buf *b;

	PARLEY_ASSERT(len != 0);
	hlen = ws_frame_header(hdr, WS_OP_TEXT, len);
	b = xmalloc(sizeof *b + hlen + len);
	b->refs = 1;
	b->len = (uint32_t)(hlen + len);
	memcpy(b->data, hdr, hlen);
	PARLEY_ASSERT(json_dumpb(json, (char *)b->data + hlen, len, flags) ==
	    len);
	return b;
}

void
buf_unref(struct buf *b)
{
	PARLEY_ASSERT(b->refs > 0);
	if (--b->refs == 0)
		free(b);
}
