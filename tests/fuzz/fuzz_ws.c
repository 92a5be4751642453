/*
 * fuzz_ws.c: libFuzzer target for the WebSocket frame parser. The first
 * input byte chooses where the rest is split in two; the rest is fed
 * that way, whole, and byte by byte, and all three must deliver the same
 * messages and end the same way. Every delivered message must obey the
 * codec's promises (text is valid UTF-8, close codes are valid, nothing
 * is over the limit), and the buffer rules must hold after every feed.
 *
 *   clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined \
 *       -I. -Isrc $(pkg-config --cflags jansson) tests/fuzz/fuzz_ws.c \
 *       src/ws.c src/utf8.c src/xmalloc.c src/log.c -lnettle -o fuzz_ws
 *   ./fuzz_ws tests/fuzz/corpus/ws
 */

#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parley.h"
#include "../unit/ws_held.h"

#define FUZZ_MAX_MESSAGE 300 /* small, so the size limit is reached */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What one way of feeding did: a running hash over every message. */
struct outcome {
	uint64_t hash;
	unsigned events;
	int result;
};

static void
outcome_mix(struct outcome *o, uint64_t v)
{
	o->hash = (o->hash ^ v) * 0x100000001b3ULL;
}

static int
fuzz_cb(void *arg, int op, const uint8_t *d, size_t n, int code)
{
	struct outcome *o = arg;
	size_t i;

	if (d == NULL)
		abort();
	switch (op) {
	case WS_OP_TEXT:
		if (n > FUZZ_MAX_MESSAGE || code != 0 ||
		    !utf8_valid((const char *)d, n))
			abort();
		break;
	case WS_OP_CLOSE:
		if (n > 123 || !utf8_valid((const char *)d, n))
			abort();
		if (code != WS_CLOSE_NO_STATUS && !ws_close_code_valid(code))
			abort();
		if (code == WS_CLOSE_NO_STATUS && n != 0)
			abort();
		break;
	case WS_OP_PING:
	case WS_OP_PONG:
		if (n > 125 || code != 0)
			abort();
		break;
	default:
		abort(); /* binary and the rest are never delivered */
	}
	outcome_mix(o, (uint64_t)op << 32 | (uint32_t)code);
	outcome_mix(o, n);
	for (i = 0; i < n; i++)
		outcome_mix(o, d[i]);
	o->events++;
	/* Stop on the 40th message, to cover the stop path too. */
	return o->events == 40;
}

static void
fuzz_check(const struct ws_parser *p, int rv)
{
	if (held_cap(p) > p->max_message || held_len(p) > held_cap(p))
		abort();
	if ((held_msg(p) == NULL) != (held_cap(p) == 0))
		abort();
	if (rv != 0 && (held_msg(p) != NULL || ws_parser_busy(p)))
		abort();
	if (!ws_parser_busy(p) && p->f != NULL)
		abort();
	if (rv != 0 && rv != -1 && rv != WS_CLOSE_PROTOCOL &&
	    rv != WS_CLOSE_UNSUPPORTED && rv != WS_CLOSE_INVALID_DATA &&
	    rv != WS_CLOSE_TOO_BIG)
		abort();
}

static void
fuzz_feed(struct ws_parser *p, const uint8_t *data, size_t n,
    struct outcome *o)
{
	int rv = ws_parser_feed(p, data, n, fuzz_cb, o);

	fuzz_check(p, rv);
	if (o->result == 0)
		o->result = rv;
	else if (rv != o->result)
		abort(); /* a dead parser must stay dead */
}

/* Feeds data in two pieces split at cut, or byte by byte when cut is
 * SIZE_MAX. */
static void
fuzz_run(const uint8_t *data, size_t size, size_t cut, struct outcome *o)
{
	struct ws_parser p;
	size_t i;

	memset(o, 0, sizeof *o);
	o->hash = 0xcbf29ce484222325ULL;
	ws_parser_init(&p, FUZZ_MAX_MESSAGE);
	if (cut == SIZE_MAX) {
		for (i = 0; i < size; i++)
			fuzz_feed(&p, data + i, 1, o);
	} else {
		fuzz_feed(&p, data, cut, o);
		fuzz_feed(&p, data + cut, size - cut, o);
	}
	ws_parser_free(&p);
	if (held_msg(&p) != NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome split, whole, bytes;
	size_t cut;

	if (size == 0)
		return 0;
	cut = (size_t)data[0] * (size - 1) / 255;
	data++;
	size--;

	fuzz_run(data, size, cut, &split);
	fuzz_run(data, size, size, &whole);
	fuzz_run(data, size, SIZE_MAX, &bytes);
	if (split.hash != whole.hash || split.result != whole.result ||
	    split.events != whole.events)
		abort();
	if (bytes.hash != whole.hash || bytes.result != whole.result ||
	    bytes.events != whole.events)
		abort();
	return 0;
}
