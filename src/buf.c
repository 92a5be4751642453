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
	/* One encoding per broadcast: into a scratch buffer that only grows
	 * (a frame is at most max_frame_bytes plus some), then one copy. */
	static char *scratch;
	static size_t scratch_cap;
	size_t len;

	for (;;) {
		len = json_dumpb(json, scratch, scratch_cap, JSON_COMPACT);
		PARLEY_ASSERT(len != 0);
		if (len <= scratch_cap)
			break;
		scratch_cap = len > 2 * scratch_cap ? len : 2 * scratch_cap;
		scratch = xrealloc(scratch, scratch_cap);
	}
	return buf_frame(WS_OP_TEXT, scratch, len);
}

void
buf_unref(struct buf *b)
{
	PARLEY_ASSERT(b->refs > 0);
	if (--b->refs == 0)
		free(b);
}
