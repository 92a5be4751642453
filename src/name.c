/*
 * name.c: the canonical form of names people choose, so that one name
 * cannot pass for another. Two names are the same name when their keys
 * are equal: the key is built with ICU from NFKC case folding (UAX #15,
 * Unicode's NFKC_Casefold) and the confusable skeleton of UTS #39, so
 * "Alice", "ALICE", "аlісе" (Cyrillic), "ａｌｉｃｅ" (fullwidth) and
 * "𝐚𝐥𝐢𝐜𝐞" (mathematical bold) share one key. name_check refuses the
 * characters that draw nothing or draw only space: with those, two
 * names that look the same would still differ.
 *
 * The key is for comparing, never for showing: it is a string of
 * prototypes ("m" becomes "rn"), not something a person chose.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/uspoof.h>
#include <unicode/ustring.h>
#include <unicode/utf8.h>

#include "parley.h"

/* Longer input is refused before anything is allocated for it. */
#define NAME_KEY_MAX_INPUT 1024

static USpoofChecker *name_spoof;
static const UNormalizer2 *name_nfkc_cf;

/* Opens the ICU services on first use; -1 when ICU's data is missing. */
static int
name_open(char **cause)
{
	UErrorCode e = U_ZERO_ERROR;

	if (name_spoof != NULL)
		return 0;
	name_nfkc_cf = unorm2_getNFKCCasefoldInstance(&e);
	if (U_SUCCESS(e))
		name_spoof = uspoof_open(&e);
	if (U_SUCCESS(e))
		uspoof_setChecks(name_spoof, USPOOF_INVISIBLE, &e);
	if (U_FAILURE(e)) {
		if (name_spoof != NULL)
			uspoof_close(name_spoof);
		name_spoof = NULL;
		if (cause != NULL)
			xasprintf(cause, "Unicode data unavailable: %s",
			    u_errorName(e));
		return -1;
	}
	return 0;
}

void
name_free(void)
{
	if (name_spoof != NULL)
		uspoof_close(name_spoof);
	name_spoof = NULL;
}

/* Whether one code point is refused in a name, and why. */
static const char *
name_char_refused(UChar32 c)
{
	int8_t gc = u_charType(c);

	if (c == ' ')
		return NULL;
	if (u_hasBinaryProperty(c, UCHAR_BIDI_CONTROL))
		return "names may not contain direction controls";
	if (u_hasBinaryProperty(c, UCHAR_DEFAULT_IGNORABLE_CODE_POINT) ||
	    gc == U_FORMAT_CHAR)
		return "names may not contain invisible characters";
	/* U+2800 BRAILLE PATTERN BLANK is a symbol that draws as a space;
	 * no property says so, hence its own test. */
	if (u_isUWhiteSpace(c) || gc == U_SPACE_SEPARATOR ||
	    gc == U_LINE_SEPARATOR || gc == U_PARAGRAPH_SEPARATOR ||
	    c == 0x2800)
		return "names may contain no space but U+0020";
	if (gc == U_CONTROL_CHAR || gc == U_SURROGATE ||
	    gc == U_PRIVATE_USE_CHAR || gc == U_UNASSIGNED ||
	    u_hasBinaryProperty(c, UCHAR_NONCHARACTER_CODE_POINT))
		return "names may contain only assigned, printable characters";
	return NULL;
}

int
name_check(const char *s, size_t len, char **cause)
{
	const char *why = NULL;
	UErrorCode e = U_ZERO_ERROR;
	int32_t i = 0, n = (int32_t)len;

	if (len > NAME_KEY_MAX_INPUT)
		why = "name too long";
	while (why == NULL && i < n) {
		UChar32 c;
		int32_t at = i;

		U8_NEXT(s, i, n, c);
		if (c < 0)
			why = "names must be UTF-8";
		else if (at == 0 && (U_GET_GC_MASK(c) & U_GC_M_MASK))
			why = "names may not begin with a combining mark";
		else
			why = name_char_refused(c);
	}
	/* ICU's invisible check also catches a nonspacing mark repeated on
	 * one letter, which draws the same as a single one. */
	if (why == NULL && name_open(cause) == -1)
		return -1;
	if (why == NULL &&
	    (uspoof_checkUTF8(name_spoof, s, n, NULL, &e) & USPOOF_INVISIBLE))
		why = "names may not repeat a combining mark";
	if (why == NULL && U_FAILURE(e))
		why = "name not understood";
	if (why == NULL)
		return 0;
	if (cause != NULL)
		*cause = xstrdup(why);
	return -1;
}

/* A growable UTF-16 string. */
struct name_buf {
	UChar *p;
	int32_t len, cap;
};

static void
name_buf_reserve(struct name_buf *b, int32_t cap)
{
	if (cap > b->cap) {
		b->p = xrealloc(b->p, (size_t)cap * sizeof *b->p);
		b->cap = cap;
	}
}

enum name_op { NAME_FOLD, NAME_SKELETON };

static int32_t
name_op_run(enum name_op op, const struct name_buf *in, struct name_buf *out,
    UErrorCode *e)
{
	if (op == NAME_FOLD)
		return unorm2_normalize(
		    name_nfkc_cf, in->p, in->len, out->p, out->cap, e);
	return uspoof_getSkeleton(
	    name_spoof, 0, in->p, in->len, out->p, out->cap, e);
}

/* Writes NFKC_Casefold or the UTS #39 skeleton of in to out, growing out
 * when ICU says it is too small. */
static void
name_apply(enum name_op op, const struct name_buf *in, struct name_buf *out,
    UErrorCode *e)
{
	int32_t n;

	if (U_FAILURE(*e))
		return;
	n = name_op_run(op, in, out, e);
	if (*e == U_BUFFER_OVERFLOW_ERROR) {
		*e = U_ZERO_ERROR;
		name_buf_reserve(out, n + 1);
		n = name_op_run(op, in, out, e);
	}
	out->len = n;
}

/*
 * The letter a small capital draws, from its Unicode name ("LATIN LETTER
 * SMALL CAPITAL A"): the confusables data leave most of them out, and
 * "ᴀʟɪᴄᴇ" reads as "alice". Returns c itself for anything else.
 */
static UChar32
name_small_capital(UChar32 c)
{
	static const char prefix[] = "LATIN LETTER SMALL CAPITAL ";
	char nm[64];
	UErrorCode e = U_ZERO_ERROR;
	int32_t n;

	if (c < 0x250 || !u_isalpha(c))
		return c;
	n = u_charName(c, U_UNICODE_CHAR_NAME, nm, sizeof nm, &e);
	if (U_FAILURE(e) || n != (int32_t)sizeof prefix ||
	    memcmp(nm, prefix, sizeof prefix - 1) != 0 || nm[n - 1] < 'A' ||
	    nm[n - 1] > 'Z')
		return c;
	return nm[n - 1] - 'A' + 'a';
}

/* Rewrites b in place with each small capital as its letter (one code
 * unit for one or two, so the string never grows). */
static void
name_lower_small_capitals(struct name_buf *b)
{
	int32_t i = 0, o = 0;

	while (i < b->len) {
		UChar32 c;

		U16_NEXT(b->p, i, b->len, c);
		c = name_small_capital(c);
		U16_APPEND_UNSAFE(b->p, o, c);
	}
	b->len = o;
}

/* Whether c is one of the generic combining diacritics (accents, strokes,
 * overlays), which a key ignores: "alíce" and "ali̇ce" pass for "alice".
 * Marks of scripts' own blocks (Indic vowel signs, Hebrew points) change
 * the letter and are kept. */
static bool
name_diacritic(UChar32 c)
{
	switch (ublock_getCode(c)) {
	case UBLOCK_COMBINING_DIACRITICAL_MARKS:
	case UBLOCK_COMBINING_DIACRITICAL_MARKS_EXTENDED:
	case UBLOCK_COMBINING_DIACRITICAL_MARKS_SUPPLEMENT:
	case UBLOCK_COMBINING_MARKS_FOR_SYMBOLS:
	case UBLOCK_COMBINING_HALF_MARKS:
		return true;
	default:
		return false;
	}
}

/*
 * The last pass, in place: drops generic diacritics, folds "i" to "l"
 * and squeezes runs of spaces. Case folding makes "I" equal "i" and the
 * skeleton makes "I" equal "l"; for "aIice" to meet "alice" as well as
 * "ALICE", "i" has to equal "l" too.
 */
static void
name_finish(struct name_buf *b)
{
	int32_t i = 0, o = 0;
	UChar32 prev = 0;

	while (i < b->len) {
		UChar32 c;

		U16_NEXT(b->p, i, b->len, c);
		if (name_diacritic(c) || (c == ' ' && prev == ' '))
			continue;
		if (c == 'i')
			c = 'l';
		U16_APPEND_UNSAFE(b->p, o, c);
		prev = c;
	}
	b->len = o;
}

int
name_key(const char *s, size_t len, char **out, char **cause)
{
	struct name_buf a = { 0 }, b = { 0 };
	UErrorCode e = U_ZERO_ERROR;
	int32_t n;

	*out = NULL;
	if (len > NAME_KEY_MAX_INPUT) {
		if (cause != NULL)
			*cause = xstrdup("name too long");
		return -1;
	}
	if (name_open(cause) == -1)
		return -1;
	name_buf_reserve(&a, (int32_t)len + 1);
	name_buf_reserve(&b, 4 * (int32_t)len + 16);
	u_strFromUTF8(a.p, a.cap, &a.len, s, (int32_t)len, &e);
	/*
	 * Twice round: the skeleton's prototypes may be capitals ("0" gives
	 * "O"), or small capitals, which the second fold and skeleton bring
	 * to the same place as the letters they stand for.
	 */
	for (int round = 0; round < 2 && U_SUCCESS(e); round++) {
		name_lower_small_capitals(&a);
		name_apply(NAME_FOLD, &a, &b, &e);
		name_apply(NAME_SKELETON, &b, &a, &e);
	}
	if (U_SUCCESS(e)) {
		name_finish(&a);
		u_strToUTF8(NULL, 0, &n, a.p, a.len, &e);
		if (e == U_BUFFER_OVERFLOW_ERROR)
			e = U_ZERO_ERROR;
	}
	if (U_SUCCESS(e)) {
		*out = xmalloc((size_t)n + 1);
		u_strToUTF8(*out, n + 1, NULL, a.p, a.len, &e);
	}
	free(a.p);
	free(b.p);
	if (U_FAILURE(e)) {
		free(*out);
		*out = NULL;
		if (cause != NULL)
			xasprintf(
			    cause, "name not understood: %s", u_errorName(e));
		return -1;
	}
	return 0;
}
