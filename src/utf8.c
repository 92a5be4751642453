/*
 * utf8.c: UTF-8 validation (RFC 3629) as a small deterministic automaton
 * that can be fed in pieces, so a text message split across WebSocket
 * fragments is checked as it arrives, plus the control-character test the
 * name rules use. Overlong forms, surrogates (U+D800-U+DFFF), code points
 * above U+10FFFF, the old 5- and 6-byte forms and truncated sequences are
 * all rejected.
 */

#include "config.h"

#include <string.h>

#include "parley.h"

/*
 * Byte classes. A lead byte's class says which range the next byte must
 * fall in; continuation bytes are split into the three ranges those rules
 * need (80-8F, 90-9F, A0-BF).
 */
enum {
	UTF8_C_ASCII,	 /* 00-7F */
	UTF8_C_CONT_LO,	 /* 80-8F */
	UTF8_C_CONT_MID, /* 90-9F */
	UTF8_C_CONT_HI,	 /* A0-BF */
	UTF8_C_BAD,	 /* C0 C1 F5-FF: never valid */
	UTF8_C_LEAD2,	 /* C2-DF */
	UTF8_C_E0,	 /* E0: next A0-BF (no overlongs) */
	UTF8_C_LEAD3,	 /* E1-EC EE EF */
	UTF8_C_ED,	 /* ED: next 80-9F (no surrogates) */
	UTF8_C_F0,	 /* F0: next 90-BF (no overlongs) */
	UTF8_C_LEAD4,	 /* F1-F3 */
	UTF8_C_F4,	 /* F4: next 80-8F (nothing above U+10FFFF) */
};

static const uint8_t utf8_class[256] = {
	[0x00 ... 0x7f] = UTF8_C_ASCII,
	[0x80 ... 0x8f] = UTF8_C_CONT_LO,
	[0x90 ... 0x9f] = UTF8_C_CONT_MID,
	[0xa0 ... 0xbf] = UTF8_C_CONT_HI,
	[0xc0 ... 0xc1] = UTF8_C_BAD,
	[0xc2 ... 0xdf] = UTF8_C_LEAD2,
	[0xe0] = UTF8_C_E0,
	[0xe1 ... 0xec] = UTF8_C_LEAD3,
	[0xed] = UTF8_C_ED,
	[0xee ... 0xef] = UTF8_C_LEAD3,
	[0xf0] = UTF8_C_F0,
	[0xf1 ... 0xf3] = UTF8_C_LEAD4,
	[0xf4] = UTF8_C_F4,
	[0xf5 ... 0xff] = UTF8_C_BAD,
};

/*
 * States. UTF8_ACCEPT (0) and UTF8_REJECT (1) are fixed by parley.h; the
 * others name what is still expected.
 */
enum {
	UTF8_S_NEED1 = 2, /* one continuation byte */
	UTF8_S_NEED2,	  /* two continuation bytes */
	UTF8_S_E0,	  /* after E0: A0-BF, then one more */
	UTF8_S_ED,	  /* after ED: 80-9F, then one more */
	UTF8_S_NEED3,	  /* three continuation bytes */
	UTF8_S_F0,	  /* after F0: 90-BF, then two more */
	UTF8_S_F4,	  /* after F4: 80-8F, then two more */
	UTF8_S_COUNT
};

/* The transition table, one row of 16 per state (indexed by a shift);
 * the four spare columns of each row are never used. */
#define R UTF8_REJECT
#define A UTF8_ACCEPT
#define N1 UTF8_S_NEED1
#define N2 UTF8_S_NEED2
#define N3 UTF8_S_NEED3
static const uint8_t utf8_next[UTF8_S_COUNT * 16] = {
	/*          ASC CLO CMI CHI BAD L2  E0  L3  ED  F0  L4  F4 */
	/* ACCEPT */ A, R, R, R, R, N1, UTF8_S_E0, N2, UTF8_S_ED, UTF8_S_F0,
	N3, UTF8_S_F4, R, R, R, R,
	/* REJECT */ R, R, R, R, R, R, R, R, R, R, R, R, R, R, R, R,
	/* NEED1 */ R, A, A, A, R, R, R, R, R, R, R, R, R, R, R, R,
	/* NEED2 */ R, N1, N1, N1, R, R, R, R, R, R, R, R, R, R, R, R,
	/* E0 */ R, R, R, N1, R, R, R, R, R, R, R, R, R, R, R, R,
	/* ED */ R, N1, N1, R, R, R, R, R, R, R, R, R, R, R, R, R,
	/* NEED3 */ R, N2, N2, N2, R, R, R, R, R, R, R, R, R, R, R, R,
	/* F0 */ R, R, N2, N2, R, R, R, R, R, R, R, R, R, R, R, R,
	/* F4 */ R, N2, R, R, R, R, R, R, R, R, R, R, R, R, R, R,
};
#undef R
#undef A
#undef N1
#undef N2
#undef N3

#define UTF8_HIGH_BITS 0x8080808080808080ULL

/* Feeds n bytes; see parley.h. ASCII runs are skipped eight bytes at a
 * time, since chat text is mostly ASCII. */
uint32_t
utf8_feed(uint32_t state, const uint8_t *p, size_t n)
{
	const uint8_t *end;
	uint64_t w;

	if (state >= UTF8_S_COUNT)
		return UTF8_REJECT;
	if (n == 0)
		return state; /* p may be NULL */
	end = p + n;
	while (p != end) {
		if (state == UTF8_ACCEPT) {
			while (end - p >= 8) {
				memcpy(&w, p, sizeof w);
				if (w & UTF8_HIGH_BITS)
					break;
				p += 8;
			}
			while (p != end && *p < 0x80)
				p++;
			if (p == end)
				break;
		}
		state = utf8_next[state << 4 | utf8_class[*p++]];
		if (state == UTF8_REJECT)
			break;
	}
	return state;
}

/* True when s[0..n) is complete, valid UTF-8. */
bool
utf8_valid(const char *s, size_t n)
{
	return utf8_feed(UTF8_ACCEPT, (const uint8_t *)s, n) == UTF8_ACCEPT;
}

/* C0 and DEL are single bytes; C1 (U+0080-U+009F) is C2 followed by
 * 80-9F. In valid UTF-8 a C2 byte is always a lead byte with a byte after
 * it, so looking one byte ahead is safe; the bound check keeps invalid
 * input from reading past the end all the same. */
bool
utf8_has_control(const char *s, size_t n)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i] < 0x20 || p[i] == 0x7f)
			return true;
		if (p[i] == 0xc2 && i + 1 < n && p[i + 1] >= 0x80 &&
		    p[i + 1] <= 0x9f)
			return true;
	}
	return false;
}
