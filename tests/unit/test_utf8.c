/*
 * test_utf8.c: the UTF-8 validator against named edge cases and against a
 * plain reference decoder written here (exhaustively for every sequence
 * of up to three bytes, on a grid of four-byte sequences and on random
 * strings), incremental feeding split at every boundary, and the control
 * character test.
 */

#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "parley.h"
#include "unit.h"

/* A straightforward decoder: true when s[0..n) is valid UTF-8. */
static bool
ref_valid(const uint8_t *s, size_t n)
{
	size_t i = 0, len, k;
	uint32_t cp, min;

	while (i < n) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((s[i] & 0xe0) == 0xc0) {
			len = 2;
			cp = s[i] & 0x1f;
			min = 0x80;
		} else if ((s[i] & 0xf0) == 0xe0) {
			len = 3;
			cp = s[i] & 0x0f;
			min = 0x800;
		} else if ((s[i] & 0xf8) == 0xf0) {
			len = 4;
			cp = s[i] & 0x07;
			min = 0x10000;
		} else
			return false;
		if (i + len > n)
			return false;
		for (k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

/* True when some bytes appended to s[0..n) can make it valid. The rules
 * only constrain a character's first two bytes, and 80, 90 or A0 meets
 * every rule for a second byte, so trying those then 80s decides it. */
static bool
ref_prefix_ok(const uint8_t *s, size_t n)
{
	static const uint8_t first[] = { 0x80, 0x90, 0xa0 };
	uint8_t buf[16];
	size_t i, j;

	if (ref_valid(s, n))
		return true;
	if (n > 12)
		return false; /* only used on short inputs */
	for (i = 1; i <= 3; i++) {
		for (j = 0; j < sizeof first; j++) {
			memcpy(buf, s, n);
			memset(buf + n, 0x80, i);
			buf[n] = first[j];
			if (ref_valid(buf, n + i))
				return true;
		}
	}
	return false;
}

/* Feeds s whole, split at every boundary and byte by byte; checks the
 * states agree and returns the whole-feed state. */
static uint32_t
feed_all_ways(const uint8_t *s, size_t n, const char *name)
{
	uint32_t whole, st;
	size_t k;

	whole = utf8_feed(UTF8_ACCEPT, s, n);
	for (k = 0; k <= n; k++) {
		st = utf8_feed(UTF8_ACCEPT, s, k);
		st = utf8_feed(st, s + k, n - k);
		CHECKF(st == whole, "%s split at %zu: %u != %u", name, k, st,
		    whole);
	}
	st = UTF8_ACCEPT;
	for (k = 0; k < n; k++)
		st = utf8_feed(st, s + k, 1);
	CHECKF(st == whole, "%s byte by byte: %u != %u", name, st, whole);
	return whole;
}

struct utf8_case {
	const char *name;
	const char *s;
	size_t n; /* 0: strlen(s) */
	bool valid;
	bool prefix_ok; /* a valid string starts with s */
};

#define V(name, s) { name, s, 0, true, true }
#define VN(name, s, n) { name, s, n, true, true }
#define X(name, s) { name, s, 0, false, false }
#define T(name, s) { name, s, 0, false, true } /* truncated */

static const struct utf8_case cases[] = {
	VN("empty", "", 0),
	V("ascii", "hello, world"),
	VN("nul", "a\0b", 3),
	V("del", "\x7f"),
	/* Boundaries of each length class. */
	V("U+0080", "\xc2\x80"),
	V("U+07FF", "\xdf\xbf"),
	V("U+0800", "\xe0\xa0\x80"),
	V("U+D7FF", "\xed\x9f\xbf"),
	V("U+E000", "\xee\x80\x80"),
	V("U+FFFD", "\xef\xbf\xbd"),
	V("U+FFFF", "\xef\xbf\xbf"),
	V("U+FEFF", "\xef\xbb\xbf"),
	V("U+10000", "\xf0\x90\x80\x80"),
	V("U+FFFFF", "\xf3\xbf\xbf\xbf"),
	V("U+100000", "\xf4\x80\x80\x80"),
	V("U+10FFFF", "\xf4\x8f\xbf\xbf"),
	V("mixed", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xce\xba"),
	/* Overlong forms. */
	X("overlong NUL 2", "\xc0\x80"),
	X("overlong / 2", "\xc0\xaf"),
	X("overlong 2 max", "\xc1\xbf"),
	X("overlong NUL 3", "\xe0\x80\x80"),
	X("overlong 3 max", "\xe0\x9f\xbf"),
	X("overlong NUL 4", "\xf0\x80\x80\x80"),
	X("overlong 4 max", "\xf0\x8f\xbf\xbf"),
	/* Surrogates, alone and paired. */
	X("U+D800", "\xed\xa0\x80"),
	X("U+DBFF", "\xed\xaf\xbf"),
	X("U+DC00", "\xed\xb0\x80"),
	X("U+DFFF", "\xed\xbf\xbf"),
	X("surrogate pair", "\xed\xa0\x80\xed\xb0\x80"),
	/* Above U+10FFFF. */
	X("U+110000", "\xf4\x90\x80\x80"),
	X("F4 BF", "\xf4\xbf\xbf\xbf"),
	X("F5", "\xf5\x80\x80\x80"),
	X("F7", "\xf7\xbf\xbf\xbf"),
	/* Old 5- and 6-byte forms, and bytes never used. */
	X("5-byte", "\xf8\x88\x80\x80\x80"),
	X("5-byte max", "\xfb\xbf\xbf\xbf\xbf"),
	X("6-byte", "\xfc\x84\x80\x80\x80\x80"),
	X("6-byte max", "\xfd\xbf\xbf\xbf\xbf\xbf"),
	X("FE", "\xfe"),
	X("FF", "\xff"),
	X("C0 alone", "\xc0"),
	X("C1 alone", "\xc1"),
	/* Lone continuation bytes. */
	X("lone 80", "\x80"),
	X("lone BF", "\xbf"),
	X("ascii then 80", "abc\x80"),
	X("extra continuation", "\xc3\xa9\xa9"),
	X("continuations", "\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89"),
	/* Truncated sequences, at the end and in the middle. */
	T("C2 at end", "\xc2"),
	T("E2 at end", "\xe2"),
	T("E2 82 at end", "\xe2\x82"),
	T("F0 9F at end", "\xf0\x9f"),
	T("F0 9F 98 at end", "\xf0\x9f\x98"),
	T("F4 8F BF at end", "\xf4\x8f\xbf"),
	T("text then E0 A0", "ok \xe0\xa0"),
	X("C2 then ascii", "\xc2" "a"),
	X("E2 82 then ascii", "\xe2\x82" "a"),
	X("F0 9F 98 then ascii", "\xf0\x9f\x98" "a"),
	X("E2 then C2 80", "\xe2\xc2\x80"),
	X("E0 then 80", "\xe0\x80"),
	X("ED then A0", "\xed\xa0"),
	X("F0 then 80", "\xf0\x80"),
	X("F4 then 90", "\xf4\x90"),
	X("after long ascii", "0123456789abcdefghij\xff"),
	V("long ascii then 2-byte", "0123456789abcdefghij\xc3\xa9"),
};

static void
test_cases(void)
{
	const struct utf8_case *c;
	size_t i, n;
	uint32_t st;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		c = &cases[i];
		n = c->n != 0 ? c->n : strlen(c->s);
		CHECKF(utf8_valid(c->s, n) == c->valid, "%s", c->name);
		CHECKF(ref_valid((const uint8_t *)c->s, n) == c->valid,
		    "reference: %s", c->name);
		st = feed_all_ways((const uint8_t *)c->s, n, c->name);
		CHECKF((st == UTF8_ACCEPT) == c->valid, "%s: state %u",
		    c->name, st);
		CHECKF((st != UTF8_REJECT) == c->prefix_ok, "%s: state %u",
		    c->name, st);
	}
}

/* Checks one short input against the reference. */
static void
check_against_ref(const uint8_t *s, size_t n)
{
	uint32_t st = utf8_feed(UTF8_ACCEPT, s, n);
	bool valid = ref_valid(s, n), prefix = ref_prefix_ok(s, n);

	unit_checks++;
	if ((st == UTF8_ACCEPT) != valid || (st != UTF8_REJECT) != prefix ||
	    utf8_valid((const char *)s, n) != valid) {
		if (unit_failures++ > 20)
			return;
		fprintf(stderr,
		    "%s:%d: mismatch on %zu bytes %02x %02x %02x %02x: "
		    "state %u, reference valid %d prefix %d\n",
		    __FILE__, __LINE__, n, n > 0 ? s[0] : 0, n > 1 ? s[1] : 0,
		    n > 2 ? s[2] : 0, n > 3 ? s[3] : 0, st, valid, prefix);
	}
}

/* Every sequence of one, two and three bytes. */
static void
test_exhaustive(void)
{
	unsigned long before = unit_failures;
	uint8_t s[3];
	unsigned a, b, c;

	for (a = 0; a < 256; a++) {
		s[0] = a;
		check_against_ref(s, 1);
		for (b = 0; b < 256; b++) {
			s[1] = b;
			check_against_ref(s, 2);
			for (c = 0; c < 256; c++) {
				s[2] = c;
				check_against_ref(s, 3);
			}
		}
	}
	CHECK(unit_failures == before);
}

/* Four-byte sequences over the bytes at every class boundary. */
static void
test_four_byte_grid(void)
{
	static const uint8_t edge[] = { 0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90,
		0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec,
		0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xf7, 0xf8,
		0xfc, 0xfe, 0xff };
	unsigned long before = unit_failures;
	size_t ne = sizeof edge, a, b, c, d;
	uint8_t s[4];

	for (a = 0; a < ne; a++)
		for (b = 0; b < ne; b++)
			for (c = 0; c < ne; c++)
				for (d = 0; d < ne; d++) {
					s[0] = edge[a];
					s[1] = edge[b];
					s[2] = edge[c];
					s[3] = edge[d];
					check_against_ref(s, 4);
				}
	CHECK(unit_failures == before);
}

static uint32_t rng_state = 12345;

static uint32_t
rng(void)
{
	rng_state = rng_state * 1103515245u + 12345u;
	return rng_state >> 8;
}

/* Appends the UTF-8 form of cp (any value up to 0x1FFFFF, so invalid
 * ones are produced too). */
static size_t
encode(uint8_t *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = 0xc0 | cp >> 6;
		out[1] = 0x80 | (cp & 0x3f);
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = 0xe0 | cp >> 12;
		out[1] = 0x80 | (cp >> 6 & 0x3f);
		out[2] = 0x80 | (cp & 0x3f);
		return 3;
	}
	out[0] = 0xf0 | cp >> 18;
	out[1] = 0x80 | (cp >> 12 & 0x3f);
	out[2] = 0x80 | (cp >> 6 & 0x3f);
	out[3] = 0x80 | (cp & 0x3f);
	return 4;
}

/* Random strings of mostly valid characters with some damage, fed whole
 * and split, compared with the reference. */
static void
test_random(void)
{
	uint8_t s[256];
	size_t n, k, i;
	uint32_t cp, st, whole;
	unsigned long before = unit_failures;
	bool valid;
	int round;

	for (round = 0; round < 20000; round++) {
		n = 0;
		while (n < sizeof s - 4) {
			switch (rng() % 8) {
			case 0:
			case 1:
			case 2:
				cp = 0x20 + rng() % 0x5f;
				break;
			case 3:
				cp = 0x80 + rng() % 0x780;
				break;
			case 4:
				cp = 0x800 + rng() % 0xf800;
				break;
			case 5:
				cp = 0x10000 + rng() % 0x100000;
				break;
			case 6:
				cp = rng() % 0x200000; /* may be invalid */
				break;
			default:
				cp = 0xd700 + rng() % 0x1000; /* near surrogates */
				break;
			}
			n += encode(s + n, cp);
			if (rng() % 16 == 0)
				break;
		}
		if (rng() % 4 == 0 && n > 0)
			s[rng() % n] = rng(); /* damage one byte */
		if (rng() % 4 == 0) {
			k = rng() % 3; /* cut the end, maybe mid-character */
			n -= k < n ? k : n;
		}
		valid = ref_valid(s, n);
		whole = utf8_feed(UTF8_ACCEPT, s, n);
		if ((whole == UTF8_ACCEPT) != valid) {
			unit_failures++;
			fprintf(stderr, "%s:%d: random round %d: state %u, "
			    "reference %d\n", __FILE__, __LINE__, round, whole,
			    valid);
		}
		k = n > 0 ? rng() % (n + 1) : 0;
		st = utf8_feed(utf8_feed(UTF8_ACCEPT, s, k), s + k, n - k);
		if (st != whole) {
			unit_failures++;
			fprintf(stderr, "%s:%d: random round %d split %zu\n",
			    __FILE__, __LINE__, round, k);
		}
		/* Three pieces, to cross the word-at-a-time fast path. */
		i = k + (n - k > 0 ? rng() % (n - k + 1) : 0);
		st = utf8_feed(UTF8_ACCEPT, s, k);
		st = utf8_feed(st, s + k, i - k);
		st = utf8_feed(st, s + i, n - i);
		if (st != whole) {
			unit_failures++;
			fprintf(stderr, "%s:%d: random round %d split %zu %zu\n",
			    __FILE__, __LINE__, round, k, i);
		}
		unit_checks += 3;
	}
	CHECK(unit_failures == before);
}

/* One bad or multi-byte character at every position of a long ASCII
 * run, at every alignment, so the eight-byte skip cannot miss it. */
static void
test_ascii_runs(void)
{
	uint8_t buf[80];
	size_t off, pos, len = 40;

	for (off = 0; off < 8; off++) {
		for (pos = 0; pos < len; pos++) {
			memset(buf, 'a', sizeof buf);
			buf[off + pos] = 0x80;
			CHECKF(!utf8_valid((char *)buf + off, len),
			    "80 at %zu+%zu", off, pos);
			buf[off + pos] = 0x7f;
			CHECKF(utf8_valid((char *)buf + off, len),
			    "7f at %zu+%zu", off, pos);
			if (pos + 1 < len) {
				buf[off + pos] = 0xc3;
				buf[off + pos + 1] = 0xa9;
				CHECKF(utf8_valid((char *)buf + off, len),
				    "c3 a9 at %zu+%zu", off, pos);
			} else {
				buf[off + pos] = 0xc3;
				CHECKF(utf8_feed(UTF8_ACCEPT, buf + off, len) !=
					UTF8_REJECT,
				    "c3 at end %zu", off);
			}
		}
	}
}

static void
test_states(void)
{
	const uint8_t *ok = (const uint8_t *)"plain text";
	uint32_t st;

	/* Reject is sticky, whatever follows. */
	CHECK(utf8_feed(UTF8_REJECT, ok, 10) == UTF8_REJECT);
	CHECK(utf8_feed(UTF8_REJECT, ok, 0) == UTF8_REJECT);
	st = utf8_feed(UTF8_ACCEPT, (const uint8_t *)"\xff", 1);
	CHECK(st == UTF8_REJECT);
	CHECK(utf8_feed(st, ok, 10) == UTF8_REJECT);
	/* Nothing fed: the state is unchanged. */
	CHECK(utf8_feed(UTF8_ACCEPT, ok, 0) == UTF8_ACCEPT);
	st = utf8_feed(UTF8_ACCEPT, (const uint8_t *)"\xe2", 1);
	CHECK(st != UTF8_ACCEPT && st != UTF8_REJECT);
	CHECK(utf8_feed(st, ok, 0) == st);
	CHECK(utf8_feed(st, (const uint8_t *)"\x82\xac", 2) == UTF8_ACCEPT);
	/* A state that was never produced is refused, not indexed. */
	CHECK(utf8_feed(1000, ok, 1) == UTF8_REJECT);
	CHECK(utf8_valid(NULL, 0));
}

static void
test_control(void)
{
	static const struct {
		const char *s;
		size_t n;
		bool control;
	} t[] = {
		{ "", 0, false },
		{ "alice", 5, false },
		{ "a b~", 4, false },
		{ "\x00", 1, true },
		{ "a\x01", 2, true },
		{ "tab\t", 4, true },
		{ "nl\n", 3, true },
		{ "\x1f", 1, true },
		{ " ", 1, false },
		{ "\x7f", 1, true },
		{ "x\x7fy", 3, true },
		{ "\xc2\x80", 2, true },  /* U+0080, first C1 */
		{ "\xc2\x85", 2, true },  /* NEL */
		{ "\xc2\x9f", 2, true },  /* U+009F, last C1 */
		{ "\xc2\xa0", 2, false }, /* NBSP is not Cc */
		{ "\xc2\xbf", 2, false },
		{ "\xc3\x80", 2, false }, /* A-grave: C3, not C2 */
		{ "\xc3\xa9t\xc3\xa9", 5, false },
		{ "\xe2\x82\xac", 3, false },	    /* 82 is a continuation */
		{ "\xe2\x80\x8e", 3, false },	    /* LRM is Cf, not Cc */
		{ "\xf0\x9f\x98\x80", 4, false },   /* 9F 98 80 inside */
		{ "\xe2\x82\xac\xc2\x9f", 5, true }, /* C1 after a 3-byte */
		{ "ok\xc2\x9f", 4, true },
	};
	size_t i;

	for (i = 0; i < sizeof t / sizeof t[0]; i++) {
		CHECKF(utf8_valid(t[i].s, t[i].n), "case %zu is valid", i);
		CHECKF(utf8_has_control(t[i].s, t[i].n) == t[i].control,
		    "case %zu", i);
	}
	/* Every single byte below 0x80. */
	for (i = 0; i < 0x80; i++) {
		char c = i;
		CHECKF(utf8_has_control(&c, 1) == (i < 0x20 || i == 0x7f),
		    "byte %02zx", i);
	}
	/* Every two-byte character. */
	for (i = 0x80; i < 0x800; i++) {
		uint8_t s[2];
		encode(s, i);
		CHECKF(utf8_has_control((char *)s, 2) == (i <= 0x9f),
		    "U+%04zX", i);
	}
}

int
main(void)
{
	test_cases();
	test_states();
	test_ascii_runs();
	test_control();
	test_random();
	test_four_byte_grid();
	test_exhaustive();
	return unit_done();
}
