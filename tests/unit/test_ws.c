/*
 * test_ws.c: the WebSocket codec against every transport rule of
 * PROTOCOL.md. Every frame parser input is fed whole, split in two at
 * every byte boundary and byte by byte, and each way must give the same
 * messages and the same result; the parser's memory rules are checked
 * after every feed. The handshake checks, the accept key, the server
 * frame header and the close-code rules are tested on their own.
 */

#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "parley.h"
#include "unit.h"
#include "ws_held.h"

#define FIN 0x80
#define RSV1 0x40
#define RSV2 0x20
#define RSV3 0x10

#define DEFAULT_MAX 65536 /* the configured default, 64 KiB */

/* A growable byte string. */
struct bytes {
	uint8_t *p;
	size_t n, cap;
};

static void
b_put(struct bytes *b, const void *d, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		if (b->p == NULL)
			abort();
	}
	if (n != 0)
		memcpy(b->p + b->n, d, n);
	b->n += n;
}

static void
b_str(struct bytes *b, const char *s)
{
	b_put(b, s, strlen(s));
}

static void
b_byte(struct bytes *b, uint8_t c)
{
	b_put(b, &c, 1);
}

static void
b_reset(struct bytes *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

/* NUL-terminated view of a byte string used as text. */
static const char *
b_cstr(struct bytes *b)
{
	b_byte(b, 0);
	b->n--;
	return (const char *)b->p;
}

/*
 * Frame building. Every frame gets a different masking key, so the
 * unmasking is exercised at every phase.
 */
static unsigned key_counter;

static void
next_key(uint8_t key[4])
{
	unsigned i;

	key_counter++;
	for (i = 0; i < 4; i++)
		key[i] = (uint8_t)(0x5a + 37 * key_counter + 101 * i);
}

/* Appends a frame header. form is 0 for the shortest length encoding,
 * or 7, 16 or 64 to force one (a 7-bit form takes len as is, so lengths
 * 126 and 127 can be written to mean the other forms). */
static void
put_header(struct bytes *b, uint8_t b0, bool masked, int form, uint64_t len,
    const uint8_t key[4])
{
	uint8_t m = masked ? 0x80 : 0;
	int i;

	if (form == 0)
		form = len < 126 ? 7 : len <= 0xffff ? 16 : 64;
	b_byte(b, b0);
	if (form == 7)
		b_byte(b, m | (uint8_t)len);
	else if (form == 16) {
		b_byte(b, m | 126);
		b_byte(b, len >> 8);
		b_byte(b, len & 0xff);
	} else {
		b_byte(b, m | 127);
		for (i = 7; i >= 0; i--)
			b_byte(b, (uint8_t)(len >> (8 * i)));
	}
	if (masked)
		b_put(b, key, 4);
}

static void
put_frame_form(struct bytes *b, uint8_t b0, int form, const void *payload,
    size_t len)
{
	const uint8_t *s = payload;
	uint8_t key[4];
	size_t i;

	next_key(key);
	put_header(b, b0, true, form, len, key);
	for (i = 0; i < len; i++)
		b_byte(b, s[i] ^ key[i & 3]);
}

/* Appends a masked frame with the shortest length form. */
static void
put_frame(struct bytes *b, uint8_t b0, const void *payload, size_t len)
{
	put_frame_form(b, b0, 0, payload, len);
}

static void
put_str(struct bytes *b, uint8_t b0, const char *s)
{
	put_frame(b, b0, s, strlen(s));
}

static void
put_unmasked(struct bytes *b, uint8_t b0, const char *s)
{
	size_t len = strlen(s);

	put_header(b, b0, false, 0, len, NULL);
	b_put(b, s, len);
}

/* A close frame with a code and a reason. */
static void
put_close(struct bytes *b, int code, const char *reason, size_t rlen)
{
	uint8_t pl[125];

	pl[0] = code >> 8;
	pl[1] = code & 0xff;
	memcpy(pl + 2, reason, rlen);
	put_frame(b, FIN | WS_OP_CLOSE, pl, rlen + 2);
}

/*
 * What the parser did: a log of the callbacks, written so an expected
 * one can be spelled out in the test.
 */
struct rec {
	struct bytes log;
	unsigned events;
	unsigned stop_after; /* ask to stop after this many; 0: never */
};

static uint32_t
fnv1a(const uint8_t *d, size_t n)
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ d[i]) * 16777619u;
	return h;
}

/* Appends one event as "op[ code]:payload;". Short payloads are shown
 * with escapes, long ones as their length and a hash. */
static void
log_event(struct bytes *log, int op, const uint8_t *d, size_t n, int code)
{
	char tmp[64];
	size_t i;

	switch (op) {
	case WS_OP_TEXT:
		b_str(log, "text");
		break;
	case WS_OP_BINARY:
		b_str(log, "binary");
		break;
	case WS_OP_PING:
		b_str(log, "ping");
		break;
	case WS_OP_PONG:
		b_str(log, "pong");
		break;
	case WS_OP_CLOSE:
		snprintf(tmp, sizeof tmp, "close %d", code);
		b_str(log, tmp);
		break;
	default:
		snprintf(tmp, sizeof tmp, "op%d", op);
		b_str(log, tmp);
		break;
	}
	b_byte(log, ':');
	if (n > 40) {
		snprintf(tmp, sizeof tmp, "<%zu bytes %08x>", n, fnv1a(d, n));
		b_str(log, tmp);
	} else {
		for (i = 0; i < n; i++) {
			if (d[i] >= 0x20 && d[i] < 0x7f && d[i] != '\\' &&
			    d[i] != ';')
				b_byte(log, d[i]);
			else {
				snprintf(tmp, sizeof tmp, "\\x%02x", d[i]);
				b_str(log, tmp);
			}
		}
	}
	b_byte(log, ';');
}

static int
rec_cb(void *arg, int op, const uint8_t *d, size_t n, int code)
{
	struct rec *r = arg;

	CHECK(d != NULL);
	if (op == WS_OP_TEXT) {
		CHECK(utf8_valid((const char *)d, n));
		CHECK(code == 0);
	}
	if (op == WS_OP_CLOSE) {
		CHECK(ws_close_code_valid(code) || code == WS_CLOSE_NO_STATUS);
		CHECK(utf8_valid((const char *)d, n));
	}
	if (op == WS_OP_PING || op == WS_OP_PONG)
		CHECK(n <= 125);
	log_event(&r->log, op, d, n, code);
	r->events++;
	return r->stop_after != 0 && r->events >= r->stop_after;
}

/* The parser's memory rules, after any feed. */
static void
check_invariants(const struct ws_parser *p, int rv)
{
	bool ok = true;

	if (held_cap(p) > p->max_message || held_len(p) > held_cap(p))
		ok = false;
	if ((held_msg(p) == NULL) != (held_cap(p) == 0))
		ok = false;
	if (rv != 0 && held_msg(p) != NULL)
		ok = false; /* a dead parser holds nothing */
	if (!ws_parser_busy(p) && p->f != NULL)
		ok = false; /* nor does an idle one */
	if (!ok) {
		unit_checks++;
		unit_failures++;
		fprintf(stderr, "%s:%d: invariant broken: rv %d msg %p "
		    "len %zu cap %zu max %zu busy %d\n", __FILE__, __LINE__,
		    rv, (void *)held_msg(p), held_len(p), held_cap(p),
		    (size_t)p->max_message, ws_parser_busy(p));
	}
}

/* Feeds in[0..n) in pieces ending at the offsets in cuts (the last is
 * n); returns the first non-zero result and checks that a dead parser
 * keeps answering it. */
static int
run_cuts(const uint8_t *in, size_t max, const size_t *cuts,
    size_t ncuts, struct rec *r)
{
	static const uint8_t ping[] = { FIN | WS_OP_PING, 0x80, 1, 2, 3, 4 };
	struct ws_parser p;
	size_t i, start = 0;
	unsigned events;
	int result = 0, rv;

	ws_parser_init(&p, max);
	for (i = 0; i < ncuts; i++) {
		rv = ws_parser_feed(&p, in + start, cuts[i] - start, rec_cb,
		    r);
		check_invariants(&p, rv);
		if (result == 0)
			result = rv;
		else if (rv != result) {
			unit_failures++;
			fprintf(stderr, "%s:%d: dead parser returned %d, "
			    "then %d\n", __FILE__, __LINE__, result, rv);
		}
		start = cuts[i];
	}
	if (result != 0) {
		/* Dead: a valid frame changes nothing. */
		events = r->events;
		rv = ws_parser_feed(&p, ping, sizeof ping, rec_cb, r);
		if (rv != result || r->events != events) {
			unit_failures++;
			fprintf(stderr, "%s:%d: dead parser came back: %d\n",
			    __FILE__, __LINE__, rv);
		}
		if (ws_parser_busy(&p)) {
			unit_failures++;
			fprintf(stderr, "%s:%d: dead parser is busy\n",
			    __FILE__, __LINE__);
		}
	}
	ws_parser_free(&p);
	CHECK(p.f == NULL);
	return result;
}

/* Compares one way of feeding with the expectation. */
static void
check_run(const char *name, const char *how, size_t at, int got,
    struct rec *r, int want, const char *want_log)
{
	const char *log = b_cstr(&r->log);

	unit_checks++;
	if (got != want || strcmp(log, want_log) != 0) {
		unit_failures++;
		if (unit_failures < 30)
			fprintf(stderr, "%s: %s %zu: got %d \"%s\", want %d "
			    "\"%s\"\n", name, how, at, got, log, want,
			    want_log);
	}
}

/* Feeds in whole, split in two at every boundary, and byte by byte;
 * each must end with result want and the callback log want_log. Inputs
 * over 20000 bytes (the 64 KiB messages) are split at every boundary in
 * their first and last 4096 bytes and at every 97th in between, which
 * keeps the test quick; PARLEY_TEST_EXHAUSTIVE=1 splits them everywhere
 * too. */
static void
expect_stop(const char *name, const struct bytes *in, size_t max, int want,
    const char *want_log, unsigned stop_after)
{
	struct rec r;
	size_t cuts[2], k, n = in->n, *bytes, stride = 1;
	int got;

	memset(&r, 0, sizeof r);
	r.stop_after = stop_after;
	cuts[0] = n;
	got = run_cuts(in->p, max, cuts, 1, &r);
	check_run(name, "whole", n, got, &r, want, want_log);
	b_reset(&r.log);

	if (n > 20000 && getenv("PARLEY_TEST_EXHAUSTIVE") == NULL)
		stride = 97;
	for (k = 0; k <= n; k++) {
		if (stride > 1 && k > 4096 && k + 4096 < n && k % stride != 0)
			continue;
		memset(&r, 0, sizeof r);
		r.stop_after = stop_after;
		cuts[0] = k;
		cuts[1] = n;
		got = run_cuts(in->p, max, cuts, 2, &r);
		check_run(name, "split at", k, got, &r, want, want_log);
		b_reset(&r.log);
	}

	bytes = malloc((n + 1) * sizeof *bytes);
	if (bytes == NULL)
		abort();
	for (k = 0; k < n; k++)
		bytes[k] = k + 1;
	memset(&r, 0, sizeof r);
	r.stop_after = stop_after;
	got = run_cuts(in->p, max, bytes, n, &r);
	check_run(name, "byte by byte", n, got, &r, want, want_log);
	b_reset(&r.log);
	free(bytes);
}

static void
expect(const char *name, const struct bytes *in, size_t max, int want,
    const char *want_log)
{
	expect_stop(name, in, max, want, want_log, 0);
}

/* The log line for one event, for expectations on long payloads. */
static const char *
event(struct bytes *log, int op, const void *d, size_t n, int code)
{
	log_event(log, op, d, n, code);
	return b_cstr(log);
}

/* --- data frames ------------------------------------------------------ */

static void
test_text_simple(void)
{
	struct bytes in = { 0 };

	put_str(&in, FIN | WS_OP_TEXT, "hello");
	expect("text", &in, DEFAULT_MAX, 0, "text:hello;");
	b_reset(&in);

	put_str(&in, FIN | WS_OP_TEXT, "");
	expect("empty text", &in, DEFAULT_MAX, 0, "text:;");
	b_reset(&in);

	put_str(&in, FIN | WS_OP_TEXT, "{\"type\":\"ping\"}");
	put_str(&in, FIN | WS_OP_TEXT, "caf\xc3\xa9");
	put_str(&in, FIN | WS_OP_TEXT, "\xf0\x9f\x98\x80!");
	expect("three texts", &in, DEFAULT_MAX, 0,
	    "text:{\"type\":\"ping\"};text:caf\\xc3\\xa9;"
	    "text:\\xf0\\x9f\\x98\\x80!;");
	b_reset(&in);

	/* A zero masking key leaves the payload as it is. */
	b_str(&in, "\x81\x82");
	b_put(&in, "\0\0\0\0", 4);
	b_str(&in, "ok");
	expect("zero key", &in, DEFAULT_MAX, 0, "text:ok;");
	b_reset(&in);

	/* RFC 6455 5.7: a masked "Hello". */
	b_put(&in, "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);
	expect("rfc sample", &in, DEFAULT_MAX, 0, "text:Hello;");
	b_reset(&in);
}

/* Payloads of every length up to 70 and every masking phase. */
static void
test_text_lengths(void)
{
	struct bytes in = { 0 }, log = { 0 };
	char s[80];
	size_t len, i;

	for (len = 0; len <= 70; len++) {
		for (i = 0; i < len; i++)
			s[i] = 'a' + (len + i) % 26;
		put_frame(&in, FIN | WS_OP_TEXT, s, len);
		event(&log, WS_OP_TEXT, s, len, 0);
	}
	expect("lengths 0-70", &in, DEFAULT_MAX, 0, b_cstr(&log));
	b_reset(&in);
	b_reset(&log);
}

/* The three length forms, each at its edges. */
static void
test_length_forms(void)
{
	static const size_t lens[] = { 125, 126, 127, 1000, 65535, 65536 };
	struct bytes in = { 0 }, log = { 0 };
	char name[64];
	uint8_t *s;
	size_t i, j;

	for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		s = malloc(lens[i]);
		for (j = 0; j < lens[i]; j++)
			s[j] = 0x20 + (j * 7 + i) % 90;
		put_frame(&in, FIN | WS_OP_TEXT, s, lens[i]);
		snprintf(name, sizeof name, "text of %zu", lens[i]);
		expect(name, &in, DEFAULT_MAX, 0,
		    event(&log, WS_OP_TEXT, s, lens[i], 0));
		CHECK(in.p[1] == (lens[i] < 126 ? 0xfd :
					   lens[i] <= 0xffff ? 0xfe : 0xff));
		b_reset(&in);
		b_reset(&log);
		free(s);
	}

	/* Longer forms than needed are accepted. */
	put_frame_form(&in, FIN | WS_OP_TEXT, 16, "short", 5);
	expect("16-bit form for 5", &in, DEFAULT_MAX, 0, "text:short;");
	b_reset(&in);
	put_frame_form(&in, FIN | WS_OP_TEXT, 64, "short", 5);
	expect("64-bit form for 5", &in, DEFAULT_MAX, 0, "text:short;");
	b_reset(&in);
	put_frame_form(&in, FIN | WS_OP_TEXT, 64, "", 0);
	expect("64-bit form for 0", &in, DEFAULT_MAX, 0, "text:;");
	b_reset(&in);
}

static void
test_fragments(void)
{
	struct bytes in = { 0 };

	put_str(&in, WS_OP_TEXT, "Hel");
	put_str(&in, WS_OP_CONT, "lo ");
	put_str(&in, FIN | WS_OP_CONT, "world");
	expect("three fragments", &in, DEFAULT_MAX, 0, "text:Hello world;");
	b_reset(&in);

	put_str(&in, WS_OP_TEXT, "Hel");
	put_str(&in, FIN | WS_OP_PING, "p1");
	put_str(&in, WS_OP_CONT, "lo ");
	put_str(&in, FIN | WS_OP_PONG, "p2");
	put_str(&in, FIN | WS_OP_PING, "");
	put_str(&in, FIN | WS_OP_CONT, "world");
	put_str(&in, FIN | WS_OP_TEXT, "next");
	expect("control frames between fragments", &in, DEFAULT_MAX, 0,
	    "ping:p1;pong:p2;ping:;text:Hello world;text:next;");
	b_reset(&in);

	/* Empty fragments, at the start, middle and end. */
	put_str(&in, WS_OP_TEXT, "");
	put_str(&in, WS_OP_CONT, "a");
	put_str(&in, WS_OP_CONT, "");
	put_str(&in, WS_OP_CONT, "b");
	put_str(&in, FIN | WS_OP_CONT, "");
	expect("empty fragments", &in, DEFAULT_MAX, 0, "text:ab;");
	b_reset(&in);

	put_str(&in, WS_OP_TEXT, "");
	put_str(&in, FIN | WS_OP_CONT, "");
	expect("all fragments empty", &in, DEFAULT_MAX, 0, "text:;");
	b_reset(&in);

	/* Many one-byte fragments, each with its own key. */
	put_str(&in, WS_OP_TEXT, "0");
	put_str(&in, WS_OP_CONT, "1");
	put_str(&in, WS_OP_CONT, "2");
	put_str(&in, WS_OP_CONT, "3");
	put_str(&in, WS_OP_CONT, "4");
	put_str(&in, WS_OP_CONT, "5");
	put_str(&in, WS_OP_CONT, "6");
	put_str(&in, WS_OP_CONT, "7");
	put_str(&in, FIN | WS_OP_CONT, "89abcdefghij");
	expect("one-byte fragments", &in, DEFAULT_MAX, 0,
	    "text:0123456789abcdefghij;");
	b_reset(&in);

	/* A close in the middle of a message is delivered at once; the
	 * caller decides what comes next. */
	put_str(&in, WS_OP_TEXT, "a");
	put_close(&in, 1000, "", 0);
	put_str(&in, FIN | WS_OP_CONT, "b");
	expect("close between fragments", &in, DEFAULT_MAX, 0,
	    "close 1000:;text:ab;");
	b_reset(&in);
}

/* --- framing violations: 1002 ----------------------------------------- */

static void
test_reserved_bits(void)
{
	static const uint8_t rsv[] = { RSV1, RSV2, RSV3, RSV1 | RSV2 | RSV3 };
	static const uint8_t ops[] = { WS_OP_TEXT, WS_OP_BINARY, WS_OP_PING,
		WS_OP_PONG, WS_OP_CLOSE };
	struct bytes in = { 0 };
	char name[64];
	size_t i, j;

	for (i = 0; i < sizeof rsv; i++) {
		for (j = 0; j < sizeof ops; j++) {
			put_str(&in, FIN | rsv[i] | ops[j], "");
			snprintf(name, sizeof name, "rsv %02x op %d", rsv[i],
			    ops[j]);
			expect(name, &in, DEFAULT_MAX, WS_CLOSE_PROTOCOL, "");
			b_reset(&in);
		}
		put_str(&in, WS_OP_TEXT, "a");
		put_str(&in, FIN | rsv[i] | WS_OP_CONT, "b");
		snprintf(name, sizeof name, "rsv %02x on continuation",
		    rsv[i]);
		expect(name, &in, DEFAULT_MAX, WS_CLOSE_PROTOCOL, "");
		b_reset(&in);
	}

	/* Checked before the message type, and after earlier messages. */
	put_str(&in, FIN | WS_OP_TEXT, "fine");
	put_str(&in, FIN | RSV1 | WS_OP_BINARY, "x");
	expect("binary with rsv1", &in, DEFAULT_MAX, WS_CLOSE_PROTOCOL,
	    "text:fine;");
	b_reset(&in);
}

static void
test_bad_opcodes(void)
{
	static const uint8_t ops[] = { 3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe,
		0xf };
	struct bytes in = { 0 };
	char name[64];
	size_t i;

	for (i = 0; i < sizeof ops; i++) {
		put_str(&in, FIN | ops[i], "");
		snprintf(name, sizeof name, "opcode %x", ops[i]);
		expect(name, &in, DEFAULT_MAX, WS_CLOSE_PROTOCOL, "");
		b_reset(&in);

		put_str(&in, ops[i], "abc");
		snprintf(name, sizeof name, "opcode %x without fin", ops[i]);
		expect(name, &in, DEFAULT_MAX, WS_CLOSE_PROTOCOL, "");
		b_reset(&in);

		put_str(&in, WS_OP_TEXT, "a");
		put_str(&in, FIN | ops[i], "abc");
		snprintf(name, sizeof name, "opcode %x in a message", ops[i]);
		expect(name, &in, DEFAULT_MAX, WS_CLOSE_PROTOCOL, "");
		b_reset(&in);
	}
}

static void
test_unmasked(void)
{
	static const uint8_t ops[] = { FIN | WS_OP_TEXT, WS_OP_TEXT,
		FIN | WS_OP_BINARY, FIN | WS_OP_PING, FIN | WS_OP_PONG,
		FIN | WS_OP_CLOSE };
	struct bytes in = { 0 };
	char name[64];
	size_t i;

	for (i = 0; i < sizeof ops; i++) {
		put_unmasked(&in, ops[i], "");
		snprintf(name, sizeof name, "unmasked %02x", ops[i]);
		expect(name, &in, DEFAULT_MAX, WS_CLOSE_PROTOCOL, "");
		b_reset(&in);
	}
	put_str(&in, FIN | WS_OP_TEXT, "masked");
	put_unmasked(&in, FIN | WS_OP_TEXT, "not");
	expect("unmasked after masked", &in, DEFAULT_MAX, WS_CLOSE_PROTOCOL,
	    "text:masked;");
	b_reset(&in);

	put_str(&in, WS_OP_TEXT, "a");
	put_unmasked(&in, FIN | WS_OP_CONT, "b");
	expect("unmasked continuation", &in, DEFAULT_MAX, WS_CLOSE_PROTOCOL,
	    "");
	b_reset(&in);
}

static void
test_control_rules(void)
{
	static const uint8_t ops[] = { WS_OP_PING, WS_OP_PONG, WS_OP_CLOSE };
	struct bytes in = { 0 }, log = { 0 };
	char name[64], s[130];
	size_t i;

	memset(s, 'p', sizeof s);
	for (i = 0; i < sizeof ops; i++) {
		put_str(&in, ops[i], "");
		snprintf(name, sizeof name, "op %d without fin", ops[i]);
		expect(name, &in, DEFAULT_MAX, WS_CLOSE_PROTOCOL, "");
		b_reset(&in);

		put_frame(&in, FIN | ops[i], s, 126);
		snprintf(name, sizeof name, "op %d of 126", ops[i]);
		expect(name, &in, DEFAULT_MAX, WS_CLOSE_PROTOCOL, "");
		b_reset(&in);

		/* A longer length form is over 125 by itself. */
		put_frame_form(&in, FIN | ops[i], 16, "\x03\xe8", 2);
		snprintf(name, sizeof name, "op %d in 16-bit form", ops[i]);
		expect(name, &in, DEFAULT_MAX, WS_CLOSE_PROTOCOL, "");
		b_reset(&in);

		put_frame_form(&in, FIN | ops[i], 64, "\x03\xe8", 2);
		snprintf(name, sizeof name, "op %d in 64-bit form", ops[i]);
		expect(name, &in, DEFAULT_MAX, WS_CLOSE_PROTOCOL, "");
		b_reset(&in);

		/* Fragmented control frame inside a message. */
		put_str(&in, WS_OP_TEXT, "a");
		put_str(&in, ops[i], "");
		snprintf(name, sizeof name, "op %d without fin in a message",
		    ops[i]);
		expect(name, &in, DEFAULT_MAX, WS_CLOSE_PROTOCOL, "");
		b_reset(&in);
	}

	/* 125 bytes is fine, for a ping, a pong and a close reason. */
	put_frame(&in, FIN | WS_OP_PING, s, 125);
	put_frame(&in, FIN | WS_OP_PONG, s, 125);
	put_close(&in, 1000, s, 123);
	event(&log, WS_OP_PING, s, 125, 0);
	event(&log, WS_OP_PONG, s, 125, 0);
	event(&log, WS_OP_CLOSE, s, 123, 1000);
	expect("control frames of 125", &in, DEFAULT_MAX, 0, b_cstr(&log));
	b_reset(&in);
	b_reset(&log);

	/* Ping payloads are delivered as they are, not checked as text. */
	put_frame(&in, FIN | WS_OP_PING, "\xff\x00\xc0\x80", 4);
	put_frame(&in, FIN | WS_OP_PONG, "\xed\xa0\x80", 3);
	expect("binary ping payload", &in, DEFAULT_MAX, 0,
	    "ping:\\xff\\x00\\xc0\\x80;pong:\\xed\\xa0\\x80;");
	b_reset(&in);
}

static void
test_continuation_rules(void)
{
	struct bytes in = { 0 };

	put_str(&in, FIN | WS_OP_CONT, "x");
	expect("continuation first", &in, DEFAULT_MAX, WS_CLOSE_PROTOCOL, "");
	b_reset(&in);

	put_str(&in, WS_OP_CONT, "x");
	expect("continuation first without fin", &in, DEFAULT_MAX,
	    WS_CLOSE_PROTOCOL, "");
	b_reset(&in);

	put_str(&in, FIN | WS_OP_TEXT, "done");
	put_str(&in, FIN | WS_OP_CONT, "x");
	expect("continuation after a message", &in, DEFAULT_MAX,
	    WS_CLOSE_PROTOCOL, "text:done;");
	b_reset(&in);

	put_str(&in, FIN | WS_OP_PING, "");
	put_str(&in, FIN | WS_OP_CONT, "x");
	expect("continuation after a ping", &in, DEFAULT_MAX,
	    WS_CLOSE_PROTOCOL, "ping:;");
	b_reset(&in);

	put_str(&in, WS_OP_TEXT, "a");
	put_str(&in, FIN | WS_OP_TEXT, "b");
	expect("text inside a message", &in, DEFAULT_MAX, WS_CLOSE_PROTOCOL,
	    "");
	b_reset(&in);

	put_str(&in, WS_OP_TEXT, "a");
	put_str(&in, WS_OP_TEXT, "b");
	expect("text without fin inside a message", &in, DEFAULT_MAX,
	    WS_CLOSE_PROTOCOL, "");
	b_reset(&in);

	/* The framing error wins over the message type. */
	put_str(&in, WS_OP_TEXT, "a");
	put_str(&in, FIN | WS_OP_BINARY, "b");
	expect("binary inside a text message", &in, DEFAULT_MAX,
	    WS_CLOSE_PROTOCOL, "");
	b_reset(&in);

	put_str(&in, WS_OP_TEXT, "a");
	put_str(&in, FIN | WS_OP_PING, "p");
	put_str(&in, FIN | WS_OP_TEXT, "b");
	expect("text after a ping inside a message", &in, DEFAULT_MAX,
	    WS_CLOSE_PROTOCOL, "ping:p;");
	b_reset(&in);
}

static void
test_huge_lengths(void)
{
	static const uint8_t key[4] = { 1, 2, 3, 4 };
	struct bytes in = { 0 };
	struct ws_parser p;

	/* 2^63: the top bit of a 64-bit length must be clear. */
	put_header(&in, FIN | WS_OP_TEXT, true, 64, 1ULL << 63, key);
	expect("length 2^63", &in, DEFAULT_MAX, WS_CLOSE_PROTOCOL, "");
	b_reset(&in);

	put_header(&in, FIN | WS_OP_TEXT, true, 64, UINT64_MAX, key);
	expect("length 2^64-1", &in, DEFAULT_MAX, WS_CLOSE_PROTOCOL, "");
	b_reset(&in);

	put_header(&in, FIN | WS_OP_BINARY, true, 64, 1ULL << 63, key);
	expect("binary of 2^63", &in, DEFAULT_MAX, WS_CLOSE_PROTOCOL, "");
	b_reset(&in);

	/* The largest legal length is merely too big. */
	put_header(&in, FIN | WS_OP_TEXT, true, 64, (1ULL << 63) - 1, key);
	expect("length 2^63-1", &in, DEFAULT_MAX, WS_CLOSE_TOO_BIG, "");
	b_reset(&in);

	put_header(&in, FIN | WS_OP_TEXT, true, 64, 1ULL << 32, key);
	expect("length 2^32", &in, DEFAULT_MAX, WS_CLOSE_TOO_BIG, "");
	b_reset(&in);

	/* Rejected once the length bytes are in: before the mask key,
	 * without a buffer. */
	ws_parser_init(&p, DEFAULT_MAX);
	CHECK_INT(ws_parser_feed(&p, (const uint8_t *)"\x81\xff\x80\0\0\0\0\0"
	    "\0", 9, rec_cb, NULL), 0);
	CHECK(held_msg(&p) == NULL);
	CHECK_INT(ws_parser_feed(&p, (const uint8_t *)"\0", 1, rec_cb, NULL),
	    WS_CLOSE_PROTOCOL);
	CHECK(held_msg(&p) == NULL);
	ws_parser_free(&p);
}

/* --- message size: 1009 ----------------------------------------------- */

static void
test_limits(void)
{
	static const uint8_t key[4] = { 9, 8, 7, 6 };
	struct bytes in = { 0 }, log = { 0 };
	struct ws_parser p;
	uint8_t s[DEFAULT_MAX + 2];
	size_t i;

	for (i = 0; i < sizeof s; i++)
		s[i] = 'A' + i % 26;

	/* One frame, small limit: at the limit and one over. */
	put_frame(&in, FIN | WS_OP_TEXT, s, 100);
	expect("100 of 100", &in, 100, 0, event(&log, WS_OP_TEXT, s, 100, 0));
	b_reset(&in);
	b_reset(&log);

	put_frame(&in, FIN | WS_OP_TEXT, s, 101);
	expect("101 of 100", &in, 100, WS_CLOSE_TOO_BIG, "");
	b_reset(&in);

	/* The same with the default limit: 65536 takes the 64-bit form. */
	put_frame(&in, FIN | WS_OP_TEXT, s, DEFAULT_MAX);
	expect("65536 of 65536", &in, DEFAULT_MAX, 0,
	    event(&log, WS_OP_TEXT, s, DEFAULT_MAX, 0));
	b_reset(&in);
	b_reset(&log);

	put_frame(&in, FIN | WS_OP_TEXT, s, DEFAULT_MAX + 1);
	expect("65537 of 65536", &in, DEFAULT_MAX, WS_CLOSE_TOO_BIG, "");
	b_reset(&in);

	/* Across fragments, with a ping in between. */
	put_frame(&in, WS_OP_TEXT, s, 60);
	put_str(&in, FIN | WS_OP_PING, "");
	put_frame(&in, WS_OP_CONT, s + 60, 30);
	put_frame(&in, FIN | WS_OP_CONT, s + 90, 10);
	event(&log, WS_OP_PING, "", 0, 0);
	expect("60+30+10 of 100", &in, 100, 0,
	    event(&log, WS_OP_TEXT, s, 100, 0));
	b_reset(&in);
	b_reset(&log);

	put_frame(&in, WS_OP_TEXT, s, 60);
	put_str(&in, FIN | WS_OP_PING, "");
	put_frame(&in, WS_OP_CONT, s + 60, 30);
	put_frame(&in, FIN | WS_OP_CONT, s + 90, 11);
	expect("60+30+11 of 100", &in, 100, WS_CLOSE_TOO_BIG, "ping:;");
	b_reset(&in);

	put_frame(&in, WS_OP_TEXT, s, 100);
	put_frame(&in, FIN | WS_OP_CONT, s, 0);
	expect("100+0 of 100", &in, 100, 0,
	    event(&log, WS_OP_TEXT, s, 100, 0));
	b_reset(&in);
	b_reset(&log);

	put_frame(&in, WS_OP_TEXT, s, 100);
	put_frame(&in, FIN | WS_OP_CONT, s, 1);
	expect("100+1 of 100", &in, 100, WS_CLOSE_TOO_BIG, "");
	b_reset(&in);

	/* Each message starts from zero. */
	put_frame(&in, FIN | WS_OP_TEXT, s, 100);
	put_frame(&in, WS_OP_TEXT, s, 50);
	put_frame(&in, FIN | WS_OP_CONT, s + 50, 50);
	event(&log, WS_OP_TEXT, s, 100, 0);
	expect("100 then 50+50 of 100", &in, 100, 0,
	    event(&log, WS_OP_TEXT, s, 100, 0));
	b_reset(&in);
	b_reset(&log);

	/* A limit of zero still lets an empty message through. */
	put_str(&in, FIN | WS_OP_TEXT, "");
	expect("0 of 0", &in, 0, 0, "text:;");
	put_str(&in, FIN | WS_OP_TEXT, "x");
	expect("1 of 0", &in, 0, WS_CLOSE_TOO_BIG, "text:;");
	b_reset(&in);

	/* Rejected from the header alone: nothing allocated. */
	ws_parser_init(&p, 100);
	put_header(&in, FIN | WS_OP_TEXT, true, 0, 101, key);
	CHECK_INT(ws_parser_feed(&p, in.p, 1, rec_cb, NULL), 0);
	CHECK(held_msg(&p) == NULL);
	CHECK_INT(ws_parser_feed(&p, in.p + 1, 1, rec_cb, NULL),
	    WS_CLOSE_TOO_BIG);
	CHECK(held_msg(&p) == NULL && held_cap(&p) == 0);
	ws_parser_free(&p);
	b_reset(&in);

	ws_parser_init(&p, DEFAULT_MAX);
	put_header(&in, FIN | WS_OP_TEXT, true, 64, 1ULL << 40, key);
	CHECK_INT(ws_parser_feed(&p, in.p, 10, rec_cb, NULL),
	    WS_CLOSE_TOO_BIG);
	CHECK(held_msg(&p) == NULL && held_cap(&p) == 0);
	ws_parser_free(&p);
	b_reset(&in);

	/* The second fragment's header: the first one's buffer goes. */
	ws_parser_init(&p, 100);
	put_frame(&in, WS_OP_TEXT, s, 60);
	put_header(&in, FIN | WS_OP_CONT, true, 0, 41, key);
	CHECK_INT(ws_parser_feed(&p, in.p, 66, rec_cb, NULL), 0);
	CHECK(held_msg(&p) != NULL && held_len(&p) == 60 && held_cap(&p) <= 100);
	CHECK_INT(ws_parser_feed(&p, in.p + 66, 2, rec_cb, NULL),
	    WS_CLOSE_TOO_BIG);
	CHECK(held_msg(&p) == NULL);
	ws_parser_free(&p);
	b_reset(&in);
}

/* Memory follows the bytes received, never past the limit, and is gone
 * when no message is pending. */
static void
test_buffer(void)
{
	static const uint8_t key[4] = { 0, 0, 0, 0 };
	struct bytes in = { 0 };
	struct rec r = { 0 };
	struct ws_parser p;
	uint8_t s[5000];
	size_t i;

	memset(s, 'z', sizeof s);

	/* A header announcing 60000 bytes, then a trickle. */
	ws_parser_init(&p, DEFAULT_MAX);
	put_header(&in, FIN | WS_OP_TEXT, true, 0, 60000, key);
	CHECK_INT(ws_parser_feed(&p, in.p, in.n, rec_cb, &r), 0);
	CHECK(held_msg(&p) == NULL);
	CHECK(ws_parser_busy(&p));
	CHECK_INT(ws_parser_feed(&p, s, 10, rec_cb, &r), 0);
	CHECK(held_msg(&p) != NULL && held_cap(&p) < 1000);
	for (i = 10; i < 60000; i += 1000)
		CHECK_INT(ws_parser_feed(&p, s, i + 1000 <= 60000 ? 1000 :
		    60000 - i, rec_cb, &r), 0);
	CHECK(held_msg(&p) == NULL && held_cap(&p) == 0 && held_len(&p) == 0);
	CHECK(!ws_parser_busy(&p));
	CHECK_INT(r.events, 1);
	b_reset(&in);
	b_reset(&r.log);

	/* A final frame's size bounds the buffer exactly. */
	put_header(&in, FIN | WS_OP_TEXT, true, 0, 3000, key);
	CHECK_INT(ws_parser_feed(&p, in.p, in.n, rec_cb, &r), 0);
	CHECK_INT(ws_parser_feed(&p, s, 1, rec_cb, &r), 0);
	CHECK(held_cap(&p) <= 3000);
	for (i = 1; i < 2999; i++) {
		ws_parser_feed(&p, s, 1, rec_cb, &r);
		if (held_cap(&p) > 3000 || held_cap(&p) < held_len(&p))
			break;
	}
	CHECK(held_cap(&p) <= 3000 && held_len(&p) == 2999);
	CHECK_INT(ws_parser_feed(&p, s, 1, rec_cb, &r), 0);
	CHECK(held_msg(&p) == NULL);
	CHECK_INT(r.events, 2);
	b_reset(&in);
	b_reset(&r.log);

	/* Between fragments the buffer stays; with a partial message
	 * ws_parser_free releases it (a leak checker sees the rest). */
	put_frame(&in, WS_OP_TEXT, s, 500);
	CHECK_INT(ws_parser_feed(&p, in.p, in.n, rec_cb, &r), 0);
	CHECK(held_msg(&p) != NULL && ws_parser_busy(&p));
	CHECK(held_cap(&p) >= 500 && held_cap(&p) <= DEFAULT_MAX);
	ws_parser_free(&p);
	CHECK(held_msg(&p) == NULL && held_cap(&p) == 0 && held_len(&p) == 0);
	b_reset(&in);

	/* A limit that is not a power of two is never passed either. */
	ws_parser_init(&p, 1000);
	for (i = 0; i < 9; i++)
		put_frame(&in, i == 0 ? WS_OP_TEXT : WS_OP_CONT, s, 111);
	put_frame(&in, FIN | WS_OP_CONT, s, 1);
	for (i = 0; i < in.n; i++) {
		CHECK_INT(ws_parser_feed(&p, in.p + i, 1, rec_cb, &r), 0);
		if (held_cap(&p) > 1000)
			break;
	}
	CHECK(held_cap(&p) <= 1000);
	CHECK(held_msg(&p) == NULL);
	CHECK_INT(r.events, 3);
	ws_parser_free(&p);
	b_reset(&in);
	b_reset(&r.log);
}

/* --- message type: 1003 ---------------------------------------------- */

static void
test_binary(void)
{
	static const uint8_t key[4] = { 1, 1, 1, 1 };
	struct bytes in = { 0 };
	struct ws_parser p;

	put_frame(&in, FIN | WS_OP_BINARY, "\x00\x01\x02", 3);
	expect("binary", &in, DEFAULT_MAX, WS_CLOSE_UNSUPPORTED, "");
	b_reset(&in);

	put_frame(&in, WS_OP_BINARY, "\x00\x01\x02", 3);
	put_frame(&in, FIN | WS_OP_CONT, "\x03", 1);
	expect("fragmented binary", &in, DEFAULT_MAX, WS_CLOSE_UNSUPPORTED,
	    "");
	b_reset(&in);

	put_str(&in, FIN | WS_OP_TEXT, "first");
	put_str(&in, FIN | WS_OP_PING, "p");
	put_frame(&in, FIN | WS_OP_BINARY, "", 0);
	expect("empty binary after text", &in, DEFAULT_MAX,
	    WS_CLOSE_UNSUPPORTED, "text:first;ping:p;");
	b_reset(&in);

	/* Framing errors first: reserved bits, no mask, huge length. */
	put_frame(&in, FIN | RSV1 | WS_OP_BINARY, "x", 1);
	expect("binary + rsv1", &in, DEFAULT_MAX, WS_CLOSE_PROTOCOL, "");
	b_reset(&in);
	put_frame(&in, FIN | RSV3 | WS_OP_BINARY, "x", 1);
	expect("binary + rsv3", &in, DEFAULT_MAX, WS_CLOSE_PROTOCOL, "");
	b_reset(&in);
	put_header(&in, FIN | WS_OP_BINARY, false, 0, 1, NULL);
	b_byte(&in, 'x');
	expect("unmasked binary", &in, DEFAULT_MAX, WS_CLOSE_PROTOCOL, "");
	b_reset(&in);

	/* Then the size, then the type. */
	put_header(&in, FIN | WS_OP_BINARY, true, 0, 101, key);
	expect("binary over the limit", &in, 100, WS_CLOSE_TOO_BIG, "");
	b_reset(&in);

	/* Decided from the header, with nothing allocated; the 16-bit
	 * form waits for its length bytes. */
	ws_parser_init(&p, DEFAULT_MAX);
	put_header(&in, FIN | WS_OP_BINARY, true, 0, 1000, key);
	CHECK_INT(ws_parser_feed(&p, in.p, 2, rec_cb, NULL), 0);
	CHECK_INT(ws_parser_feed(&p, in.p + 2, 2, rec_cb, NULL),
	    WS_CLOSE_UNSUPPORTED);
	CHECK(held_msg(&p) == NULL);
	ws_parser_free(&p);
	b_reset(&in);

	ws_parser_init(&p, DEFAULT_MAX);
	put_header(&in, FIN | WS_OP_BINARY, true, 0, 5, key);
	CHECK_INT(ws_parser_feed(&p, in.p, 2, rec_cb, NULL),
	    WS_CLOSE_UNSUPPORTED);
	CHECK(held_msg(&p) == NULL);
	ws_parser_free(&p);
	b_reset(&in);
}

/* --- text content: 1007 ---------------------------------------------- */

static void
test_text_utf8(void)
{
	static const char *bad[] = { "\xc0\x80", "\xe0\x80\x80",
		"\xf0\x80\x80\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80",
		"\xf8\x88\x80\x80\x80", "\xfc\x84\x80\x80\x80\x80", "\x80",
		"ok\xbf", "\xff", "\xfe", "caf\xc3(", ("\xe2\x82" "a") };
	static const uint8_t key[4] = { 0x11, 0x22, 0x33, 0x44 };
	struct bytes in = { 0 };
	struct ws_parser p;
	char name[64];
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		put_str(&in, FIN | WS_OP_TEXT, bad[i]);
		snprintf(name, sizeof name, "bad text %zu", i);
		expect(name, &in, DEFAULT_MAX, WS_CLOSE_INVALID_DATA, "");
		b_reset(&in);

		/* Also when only the non-final fragment is bad. */
		put_str(&in, WS_OP_TEXT, bad[i]);
		put_str(&in, FIN | WS_OP_CONT, "tail");
		snprintf(name, sizeof name, "bad first fragment %zu", i);
		expect(name, &in, DEFAULT_MAX, WS_CLOSE_INVALID_DATA, "");
		b_reset(&in);
	}

	/* Characters split across fragments, with control frames between. */
	put_str(&in, WS_OP_TEXT, "caf\xc3");
	put_str(&in, FIN | WS_OP_CONT, "\xa9");
	expect("2-byte across fragments", &in, DEFAULT_MAX, 0,
	    "text:caf\\xc3\\xa9;");
	b_reset(&in);

	put_str(&in, WS_OP_TEXT, "\xf0");
	put_str(&in, WS_OP_CONT, "\x9f");
	put_str(&in, FIN | WS_OP_PING, "\xf0");
	put_str(&in, WS_OP_CONT, "\x98");
	put_str(&in, FIN | WS_OP_CONT, "\x80");
	expect("4-byte over three fragments and a ping", &in, DEFAULT_MAX, 0,
	    "ping:\\xf0;text:\\xf0\\x9f\\x98\\x80;");
	b_reset(&in);

	put_str(&in, WS_OP_TEXT, "\xe2\x82");
	put_str(&in, WS_OP_CONT, "");
	put_str(&in, FIN | WS_OP_CONT, "\xac");
	expect("3-byte around an empty fragment", &in, DEFAULT_MAX, 0,
	    "text:\\xe2\\x82\\xac;");
	b_reset(&in);

	/* Incomplete at the end of the message. */
	put_str(&in, FIN | WS_OP_TEXT, "abc\xe2\x82");
	expect("truncated at the end", &in, DEFAULT_MAX,
	    WS_CLOSE_INVALID_DATA, "");
	b_reset(&in);

	put_str(&in, WS_OP_TEXT, "abc");
	put_str(&in, FIN | WS_OP_CONT, "\xf0\x9f\x98");
	expect("truncated in the last fragment", &in, DEFAULT_MAX,
	    WS_CLOSE_INVALID_DATA, "");
	b_reset(&in);

	put_str(&in, WS_OP_TEXT, "\xe2");
	put_str(&in, FIN | WS_OP_CONT, "A");
	expect("lead byte, then ASCII in the next fragment", &in,
	    DEFAULT_MAX, WS_CLOSE_INVALID_DATA, "");
	b_reset(&in);

	/* Fail fast: a bad byte is refused before the rest arrives. */
	ws_parser_init(&p, DEFAULT_MAX);
	put_header(&in, FIN | WS_OP_TEXT, true, 0, 5000, key);
	b_byte(&in, 'a' ^ key[0]);
	b_byte(&in, 0xff ^ key[1]);
	CHECK_INT(ws_parser_feed(&p, in.p, in.n - 1, rec_cb, NULL), 0);
	CHECK_INT(ws_parser_feed(&p, in.p + in.n - 1, 1, rec_cb, NULL),
	    WS_CLOSE_INVALID_DATA);
	CHECK(held_msg(&p) == NULL);
	ws_parser_free(&p);
	b_reset(&in);

	ws_parser_init(&p, DEFAULT_MAX);
	put_str(&in, WS_OP_TEXT, "ok\xc0");
	CHECK_INT(ws_parser_feed(&p, in.p, in.n, rec_cb, NULL),
	    WS_CLOSE_INVALID_DATA);
	ws_parser_free(&p);
	b_reset(&in);
}

/* --- close frames ----------------------------------------------------- */

static void
test_close(void)
{
	static const int good[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009,
		1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999 };
	static const int bad[] = { 0, 1, 999, 1004, 1005, 1006, 1015, 1016,
		1100, 2000, 2999, 5000, 9999, 65535 };
	struct bytes in = { 0 };
	char name[64], want[64];
	size_t i;

	put_str(&in, FIN | WS_OP_CLOSE, "");
	expect("close without code", &in, DEFAULT_MAX, 0, "close 1005:;");
	b_reset(&in);

	put_close(&in, 1000, "", 0);
	expect("close 1000", &in, DEFAULT_MAX, 0, "close 1000:;");
	b_reset(&in);

	put_close(&in, 1000, "bye", 3);
	expect("close 1000 bye", &in, DEFAULT_MAX, 0, "close 1000:bye;");
	b_reset(&in);

	put_close(&in, 1001, "au revoir \xc3\xa9", 12);
	expect("close with UTF-8 reason", &in, DEFAULT_MAX, 0,
	    "close 1001:au revoir \\xc3\\xa9;");
	b_reset(&in);

	put_frame(&in, FIN | WS_OP_CLOSE, "\x03", 1);
	expect("close of one byte", &in, DEFAULT_MAX, WS_CLOSE_PROTOCOL, "");
	b_reset(&in);

	for (i = 0; i < sizeof good / sizeof good[0]; i++) {
		CHECKF(ws_close_code_valid(good[i]), "%d", good[i]);
		put_close(&in, good[i], "r", 1);
		snprintf(name, sizeof name, "close code %d", good[i]);
		snprintf(want, sizeof want, "close %d:r;", good[i]);
		expect(name, &in, DEFAULT_MAX, 0, want);
		b_reset(&in);
	}
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECKF(!ws_close_code_valid(bad[i]), "%d", bad[i]);
		put_close(&in, bad[i], "", 0);
		snprintf(name, sizeof name, "close code %d", bad[i]);
		expect(name, &in, DEFAULT_MAX, WS_CLOSE_PROTOCOL, "");
		b_reset(&in);
	}

	put_close(&in, 1000, "\xff", 1);
	expect("close reason not UTF-8", &in, DEFAULT_MAX,
	    WS_CLOSE_INVALID_DATA, "");
	b_reset(&in);

	put_close(&in, 1000, "bye\xe2\x82", 5);
	expect("close reason truncated", &in, DEFAULT_MAX,
	    WS_CLOSE_INVALID_DATA, "");
	b_reset(&in);

	put_close(&in, 1000, "\xed\xa0\x80", 3);
	expect("close reason with a surrogate", &in, DEFAULT_MAX,
	    WS_CLOSE_INVALID_DATA, "");
	b_reset(&in);

	/* A bad code is reported before a bad reason. */
	put_close(&in, 1005, "\xff", 1);
	expect("bad code and bad reason", &in, DEFAULT_MAX, WS_CLOSE_PROTOCOL,
	    "");
	b_reset(&in);

	/* Between fragments of a message. */
	put_str(&in, WS_OP_TEXT, "a");
	put_close(&in, 1004, "", 0);
	expect("bad close between fragments", &in, DEFAULT_MAX,
	    WS_CLOSE_PROTOCOL, "");
	b_reset(&in);
}

/* Every code from 0 to 70000 against the list in PROTOCOL.md. */
static void
test_close_code_table(void)
{
	unsigned long before = unit_failures;
	bool want;
	int c;

	for (c = -5; c < 70000; c++) {
		want = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) ||
		    (c >= 3000 && c <= 4999);
		if (ws_close_code_valid(c) != want) {
			unit_failures++;
			fprintf(stderr, "%s:%d: close code %d\n", __FILE__,
			    __LINE__, c);
		}
	}
	CHECK(unit_failures == before);
}

/* --- the callback and the parser's life ------------------------------- */

static void
test_stop(void)
{
	struct bytes in = { 0 };

	put_str(&in, FIN | WS_OP_TEXT, "one");
	put_str(&in, FIN | WS_OP_TEXT, "two");
	expect_stop("stop after the first", &in, DEFAULT_MAX, -1, "text:one;",
	    1);
	expect_stop("stop after the second", &in, DEFAULT_MAX, -1,
	    "text:one;text:two;", 2);
	b_reset(&in);

	put_str(&in, WS_OP_TEXT, "a");
	put_str(&in, FIN | WS_OP_PING, "p");
	put_str(&in, FIN | WS_OP_CONT, "b");
	expect_stop("stop on a ping in a message", &in, DEFAULT_MAX, -1,
	    "ping:p;", 1);
	b_reset(&in);

	put_close(&in, 1000, "x", 1);
	put_str(&in, FIN | WS_OP_TEXT, "after");
	expect_stop("stop on close", &in, DEFAULT_MAX, -1, "close 1000:x;",
	    1);
	b_reset(&in);

	put_str(&in, FIN | WS_OP_PONG, "");
	put_frame(&in, FIN | WS_OP_BINARY, "", 0);
	expect_stop("violation after a stop is not seen", &in, DEFAULT_MAX,
	    -1, "pong:;", 1);
	b_reset(&in);
}

static void
test_busy(void)
{
	struct bytes in = { 0 };
	struct ws_parser p;
	size_t i, n1;

	ws_parser_init(&p, DEFAULT_MAX);
	CHECK(!ws_parser_busy(&p));
	CHECK_INT(ws_parser_feed(&p, NULL, 0, rec_cb, NULL), 0);
	CHECK(!ws_parser_busy(&p));

	put_str(&in, WS_OP_TEXT, "ab");
	n1 = in.n;
	put_str(&in, FIN | WS_OP_PING, "");
	put_str(&in, FIN | WS_OP_CONT, "");
	/* Busy from the first header byte to the end of the message. */
	for (i = 0; i < in.n; i++) {
		struct rec r = { 0 };

		CHECK_INT(ws_parser_feed(&p, in.p + i, 1, rec_cb, &r), 0);
		CHECKF(ws_parser_busy(&p) == (i + 1 < in.n), "byte %zu", i);
		if (i + 1 == n1)
			CHECK(held_msg(&p) != NULL);
		b_reset(&r.log);
	}
	CHECK(held_msg(&p) == NULL);
	b_reset(&in);

	/* A partial ping alone is busy too. */
	put_str(&in, FIN | WS_OP_PING, "x");
	CHECK_INT(ws_parser_feed(&p, in.p, 1, rec_cb, NULL), 0);
	CHECK(ws_parser_busy(&p));
	CHECK(held_msg(&p) == NULL);
	ws_parser_free(&p);
	b_reset(&in);

	/* Dead is not busy, and stays dead. */
	ws_parser_init(&p, DEFAULT_MAX);
	put_str(&in, WS_OP_TEXT, "ab");
	put_str(&in, FIN | WS_OP_BINARY, "");
	CHECK_INT(ws_parser_feed(&p, in.p, in.n, rec_cb, NULL),
	    WS_CLOSE_PROTOCOL);
	CHECK(!ws_parser_busy(&p));
	CHECK(held_msg(&p) == NULL);
	CHECK_INT(ws_parser_feed(&p, NULL, 0, rec_cb, NULL),
	    WS_CLOSE_PROTOCOL);
	ws_parser_free(&p);
	b_reset(&in);
}

/* --- server frames ---------------------------------------------------- */

static void
test_frame_header(void)
{
	static const size_t lens[] = { 0, 1, 125, 126, 127, 65535, 65536,
		70000, 1ULL << 32 };
	uint8_t h[WS_MAX_HEADER], *buf;
	struct bytes log = { 0 };
	struct rec r = { 0 };
	struct ws_parser p;
	size_t n, i, len, hl;

	n = ws_frame_header(h, WS_OP_TEXT, 5);
	CHECK_INT(n, 2);
	CHECK(h[0] == 0x81 && h[1] == 5);

	n = ws_frame_header(h, WS_OP_CLOSE, 0);
	CHECK_INT(n, 2);
	CHECK(h[0] == 0x88 && h[1] == 0);

	n = ws_frame_header(h, WS_OP_PING, 125);
	CHECK_INT(n, 2);
	CHECK(h[0] == 0x89 && h[1] == 125);

	n = ws_frame_header(h, WS_OP_PONG, 126);
	CHECK_INT(n, 4);
	CHECK(h[0] == 0x8a && h[1] == 126 && h[2] == 0 && h[3] == 126);

	n = ws_frame_header(h, WS_OP_TEXT, 65535);
	CHECK_INT(n, 4);
	CHECK(h[1] == 126 && h[2] == 0xff && h[3] == 0xff);

	n = ws_frame_header(h, WS_OP_TEXT, 65536);
	CHECK_INT(n, 10);
	CHECK(h[1] == 127 && memcmp(h + 2, "\0\0\0\0\0\x01\0\0", 8) == 0);

	n = ws_frame_header(h, WS_OP_BINARY, (size_t)0x0102030405060708ULL);
	CHECK_INT(n, 10);
	CHECK(h[0] == 0x82 && h[1] == 127 &&
	    memcmp(h + 2, "\x01\x02\x03\x04\x05\x06\x07\x08", 8) == 0);

	/* What the server writes, masked with a zero key as a client
	 * would send it, reads back. */
	for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		len = lens[i];
		hl = ws_frame_header(h, WS_OP_TEXT, len);
		CHECK(h[1] != 126 || len >= 126);
		if (len > 70000) {
			CHECK(hl == 10);
			continue;
		}
		buf = calloc(1, hl + 4 + len);
		memcpy(buf, h, 2);
		buf[1] |= 0x80;
		memcpy(buf + 2, h + 2, hl - 2);
		memset(buf + hl + 4, 'q', len);
		ws_parser_init(&p, DEFAULT_MAX * 2);
		CHECK_INT(ws_parser_feed(&p, buf, hl + 4 + len, rec_cb, &r),
		    0);
		event(&log, WS_OP_TEXT, buf + hl + 4, len, 0);
		CHECK_STR(b_cstr(&r.log), b_cstr(&log));
		ws_parser_free(&p);
		free(buf);
	}
	b_reset(&r.log);
	b_reset(&log);
}

/* --- the handshake ---------------------------------------------------- */

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static int
hs(const char *method, const char *upgrade, const char *connection,
    const char *key, const char *version)
{
	char accept[WS_ACCEPT_LEN + 1];
	const char *cause = NULL;
	int rc;

	memset(accept, 'X', sizeof accept);
	rc = ws_handshake_check(method, upgrade, connection, key, version,
	    accept, &cause);
	if (rc == 0)
		CHECK(strlen(accept) == WS_ACCEPT_LEN);
	else
		CHECK(cause != NULL && *cause != '\0');
	return rc;
}

static void
test_handshake(void)
{
	char accept[WS_ACCEPT_LEN + 1];
	const char *cause = NULL;

	/* RFC 6455 section 1.3. */
	ws_accept_key(KEY, accept);
	CHECK_STR(accept, ACCEPT);
	ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", accept);
	CHECK_STR(accept, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");

	memset(accept, 0, sizeof accept);
	CHECK_INT(ws_handshake_check("GET", "websocket", "Upgrade", KEY, "13",
	    accept, &cause), 0);
	CHECK_STR(accept, ACCEPT);

	/* Method. */
	CHECK_INT(hs("POST", "websocket", "Upgrade", KEY, "13"), 405);
	CHECK_INT(hs("HEAD", "websocket", "Upgrade", KEY, "13"), 405);
	CHECK_INT(hs("get", "websocket", "Upgrade", KEY, "13"), 405);
	CHECK_INT(hs(NULL, "websocket", "Upgrade", KEY, "13"), 405);
	cause = NULL;
	CHECK_INT(ws_handshake_check("PUT", "websocket", "Upgrade", KEY, "13",
	    accept, &cause), 405);
	CHECK(cause != NULL);

	/* Upgrade: a token in a list, any case. */
	CHECK_INT(hs("GET", "WebSocket", "Upgrade", KEY, "13"), 0);
	CHECK_INT(hs("GET", "WEBSOCKET", "Upgrade", KEY, "13"), 0);
	CHECK_INT(hs("GET", "h2c, websocket", "Upgrade", KEY, "13"), 0);
	CHECK_INT(hs("GET", " websocket ,foo", "Upgrade", KEY, "13"), 0);
	CHECK_INT(hs("GET", NULL, "Upgrade", KEY, "13"), 400);
	CHECK_INT(hs("GET", "", "Upgrade", KEY, "13"), 400);
	CHECK_INT(hs("GET", "h2c", "Upgrade", KEY, "13"), 400);
	CHECK_INT(hs("GET", "websockets", "Upgrade", KEY, "13"), 400);
	CHECK_INT(hs("GET", "web socket", "Upgrade", KEY, "13"), 400);
	CHECK_INT(hs("GET", "websocket/13", "Upgrade", KEY, "13"), 400);

	/* Connection: likewise. */
	CHECK_INT(hs("GET", "websocket", "upgrade", KEY, "13"), 0);
	CHECK_INT(hs("GET", "websocket", "keep-alive, Upgrade", KEY, "13"),
	    0);
	CHECK_INT(hs("GET", "websocket", "Upgrade, keep-alive", KEY, "13"),
	    0);
	CHECK_INT(hs("GET", "websocket", "keep-alive,\tUPGRADE\t", KEY, "13"),
	    0);
	CHECK_INT(hs("GET", "websocket", ",,upgrade,,", KEY, "13"), 0);
	CHECK_INT(hs("GET", "websocket", NULL, KEY, "13"), 400);
	CHECK_INT(hs("GET", "websocket", "", KEY, "13"), 400);
	CHECK_INT(hs("GET", "websocket", "keep-alive", KEY, "13"), 400);
	CHECK_INT(hs("GET", "websocket", "close", KEY, "13"), 400);
	CHECK_INT(hs("GET", "websocket", "upgrade-insecure", KEY, "13"), 400);
	CHECK_INT(hs("GET", "websocket", "keep-alive upgrade", KEY, "13"),
	    400);

	/* Version: 13 only; missing is 426 too. */
	CHECK_INT(hs("GET", "websocket", "Upgrade", KEY, "8"), 426);
	CHECK_INT(hs("GET", "websocket", "Upgrade", KEY, "12"), 426);
	CHECK_INT(hs("GET", "websocket", "Upgrade", KEY, "14"), 426);
	CHECK_INT(hs("GET", "websocket", "Upgrade", KEY, "130"), 426);
	CHECK_INT(hs("GET", "websocket", "Upgrade", KEY, ""), 426);
	CHECK_INT(hs("GET", "websocket", "Upgrade", KEY, NULL), 426);

	/* Key: base64 of exactly 16 bytes. */
	CHECK_INT(hs("GET", "websocket", "Upgrade", NULL, "13"), 400);
	CHECK_INT(hs("GET", "websocket", "Upgrade", "", "13"), 400);
	CHECK_INT(hs("GET", "websocket", "Upgrade", "not base64!", "13"), 400);
	CHECK_INT(hs("GET", "websocket", "Upgrade", "AAAAAAAAAAAAAAAAAAAAAA==",
	    "13"), 0);
	CHECK_INT(hs("GET", "websocket", "Upgrade", "/+/+/+/+/+/+/+/+/+/+/w==",
	    "13"), 0);
	/* 15 and 17 bytes, and 18 (no padding at all). */
	CHECK_INT(hs("GET", "websocket", "Upgrade", "AAAAAAAAAAAAAAAAAAAA",
	    "13"), 400);
	CHECK_INT(hs("GET", "websocket", "Upgrade", "AAAAAAAAAAAAAAAAAAAAAAA=",
	    "13"), 400);
	CHECK_INT(hs("GET", "websocket", "Upgrade", "AAAAAAAAAAAAAAAAAAAAAAAA",
	    "13"), 400);
	/* 32 bytes. */
	CHECK_INT(hs("GET", "websocket", "Upgrade",
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "13"), 400);
	/* Right length, wrong characters or padding in the wrong place. */
	CHECK_INT(hs("GET", "websocket", "Upgrade", "dGhlIHNhbXBsZSBub25jZQ=!",
	    "13"), 400);
	CHECK_INT(hs("GET", "websocket", "Upgrade", "dGhlIHNhbXBs ZSBub25jZQ=",
	    "13"), 400);
	CHECK_INT(hs("GET", "websocket", "Upgrade", " dGhlIHNhbXBsZSBub25jZQ=",
	    "13"), 400);
	CHECK_INT(hs("GET", "websocket", "Upgrade", "dGhlIHNhbXBsZSBub25jZQ-_",
	    "13"), 400);
	CHECK_INT(hs("GET", "websocket", "Upgrade", "==dGhlIHNhbXBsZSBub25jZQ",
	    "13"), 400);
	CHECK_INT(hs("GET", "websocket", "Upgrade", "dGhlIHNh=XBsZSBub25jZQ==",
	    "13"), 400);
	CHECK_INT(hs("GET", "websocket", "Upgrade", "dGhlIHNhbXBsZSBub25j====",
	    "13"), 400);

	/* Optional white space around a value is not part of it (RFC 9110
	 * section 5.5): the accept is computed from the trimmed key. */
	memset(accept, 0, sizeof accept);
	CHECK_INT(ws_handshake_check("GET", "websocket", "Upgrade",
	    "  " KEY " \t", "13", accept, &cause), 0);
	CHECK_STR(accept, ACCEPT);
	memset(accept, 0, sizeof accept);
	CHECK_INT(ws_handshake_check("GET", "websocket", "Upgrade",
	    "\t" KEY, "13", accept, &cause), 0);
	CHECK_STR(accept, ACCEPT);
	memset(accept, 0, sizeof accept);
	CHECK_INT(ws_handshake_check("GET", "websocket", "Upgrade", KEY " ",
	    "13", accept, &cause), 0);
	CHECK_STR(accept, ACCEPT);
	CHECK_INT(hs("GET", " websocket ", " Upgrade\t", " " KEY " ", " 13 "),
	    0);
	CHECK_INT(hs("GET", "websocket", "Upgrade", KEY, "\t13\t"), 0);
	CHECK_INT(hs("GET", "websocket", "Upgrade", KEY, " 1 3 "), 426);
	CHECK_INT(hs("GET", "websocket", "Upgrade", KEY, "   "), 426);
	CHECK_INT(hs("GET", "websocket", "Upgrade", "   ", "13"), 400);
	/* Only SP and HTAB are optional white space. */
	CHECK_INT(hs("GET", "websocket", "Upgrade", "\v" KEY, "13"), 400);
	CHECK_INT(hs("GET", "websocket", "Upgrade", KEY "\r", "13"), 400);
	CHECK_INT(hs("GET", "websocket", "Upgrade", KEY, "13\n"), 426);
	/* Inner white space stays significant. */
	CHECK_INT(hs("GET", "websocket", "Upgrade",
	    " dGhlIHNhbXBs ZSBub25jZQ== ", "13"), 400);

	/* The order the checks run in. */
	CHECK_INT(hs("POST", NULL, NULL, NULL, NULL), 405);
	CHECK_INT(hs("GET", NULL, NULL, NULL, NULL), 400);
	CHECK_INT(hs("GET", "websocket", "Upgrade", NULL, "8"), 426);
	CHECK_INT(hs("GET", "websocket", "Upgrade", "bad", NULL), 426);
}

int
main(void)
{
	test_handshake();
	test_frame_header();
	test_close_code_table();
	test_text_simple();
	test_text_lengths();
	test_length_forms();
	test_fragments();
	test_reserved_bits();
	test_bad_opcodes();
	test_unmasked();
	test_control_rules();
	test_continuation_rules();
	test_huge_lengths();
	test_limits();
	test_buffer();
	test_binary();
	test_text_utf8();
	test_close();
	test_stop();
	test_busy();
	return unit_done();
}
