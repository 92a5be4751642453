/*
 * test_name.c: name keys and refused characters (name.c). Every look-alike
 * of a name that an attacker has been seen to use must share its key:
 * Cyrillic, Greek, fullwidth, mathematical, dotless i, small capitals,
 * combining marks, digits for letters; names that look different must
 * not. Every space-like, invisible and direction-changing character is
 * refused, wherever it stands.
 */

#include "config.h"

#include <stdlib.h>

#include "parley.h"
#include "unit.h"

/* The key of s (a static copy of the last one), or "(error)". */
static const char *
key(const char *s)
{
	static char last[256];
	char *k = NULL, *cause = NULL;

	if (name_key(s, strlen(s), &k, &cause) == -1) {
		free(cause);
		return "(error)";
	}
	snprintf(last, sizeof last, "%s", k);
	free(k);
	return last;
}

static bool
same(const char *a, const char *b)
{
	char ka[256];

	snprintf(ka, sizeof ka, "%s", key(a));
	return strcmp(ka, key(b)) == 0 && strcmp(ka, "(error)") != 0;
}

static bool
allowed(const char *s)
{
	char *cause = NULL;
	int r = name_check(s, strlen(s), &cause);

	CHECK((r == 0) == (cause == NULL));
	if (r == -1)
		CHECKF(cause != NULL && *cause != '\0', "%s", s);
	free(cause);
	return r == 0;
}

static void
test_lookalikes(void)
{
	static const char *const alice[] = {
		"alice", "Alice", "ALICE", "aLiCe",
		"\xd0\xb0l\xd1\x96\xd1\x81\xd0\xb5",     /* Cyrillic а і с е */
		"\xce\xb1l\xce\xb9\x63\x65",             /* Greek α ι */
		"\xef\xbd\x81\xef\xbd\x8c\xef\xbd\x89\xef\xbd\x83\xef\xbd\x85",
		"\xef\xbc\xa1\xef\xbc\xac\xef\xbc\xa9\xef\xbc\xa3\xef\xbc\xa5",
		"\xf0\x9d\x90\x9a\xf0\x9d\x90\xa5\xf0\x9d\x90\xa2"
		"\xf0\x9d\x90\x9c\xf0\x9d\x90\x9e",      /* bold 𝐚𝐥𝐢𝐜𝐞 */
		"\xf0\x9d\x96\x86\xf0\x9d\x96\x91\xf0\x9d\x96\x8e"
		"\xf0\x9d\x96\x88\xf0\x9d\x96\x8a",      /* fraktur */
		"al\xc4\xb1\x63\x65",                    /* dotless ı */
		"\xe1\xb4\x80\xca\x9f\xc9\xaa\xe1\xb4\x84\xe1\xb4\x87",
		                                          /* small caps ᴀʟɪᴄᴇ */
		"al\xc4\xb1\xcc\x87\x63\x65",            /* ı + U+0307 */
		"ali\xcc\x87\x63\x65",                   /* i + U+0307 */
		"a\xcc\x81lice",                         /* á decomposed */
		"\xc3\xa1lice",                          /* á composed */
		"alic\xcc\xb8\x65",                      /* U+0338 overlay */
		"aIice", "a1ice", "a|ice",               /* I, 1, | for l */
		"\xc9\x91lice",                          /* Latin alpha ɑ */
	};
	static const char *const differ[] = {
		"alicia", "alce", "allce2", "bob", "al ice", "malice",
	};

	for (size_t i = 0; i < sizeof alice / sizeof alice[0]; i++)
		CHECKF(same("alice", alice[i]), "%s -> %s", alice[i],
		    key(alice[i]));
	for (size_t i = 0; i < sizeof differ / sizeof differ[0]; i++)
		CHECKF(!same("alice", differ[i]), "%s", differ[i]);

	/* the reserved names of the issue, each against the plain name */
	CHECK(same("admin", "\xd0\xb0""dmin"));               /* а */
	CHECK(same("root", "r\xd0\xbe\xd0\xbet"));            /* о о */
	CHECK(same("admin",
	    "\xef\xbd\x81\xef\xbd\x84\xef\xbd\x8d\xef\xbd\x89\xef\xbd\x8e"));
	CHECK(same("admin", "adm\xc4\xb1n"));                 /* ı */
	CHECK(same("system", "\xd1\x95ystem"));               /* ѕ */
	CHECK(same("mallory", "rnallory"));
	CHECK(same("bob", "b0b"));
	CHECK(same("BOB", "b0b"));
	CHECK(same("a b", "a  b"));
	CHECK(!same("a b", "ab"));
	/* scripts' own marks change the letter and stay */
	CHECK(!same("\xe0\xa4\x95", "\xe0\xa4\x95\xe0\xa4\xbf")); /* क कि */
	CHECK(same("guest-1234", "GUEST-l234"));
	CHECK(same("\xe2\x98\xba", "\xe2\x98\xba"));
}

static void
test_refused(void)
{
	static const char *const spaces[] = {
		"\xc2\xa0",         /* NBSP */
		"\xe2\x80\xaf",     /* U+202F */
		"\xe3\x80\x80",     /* U+3000 */
		"\xe2\x80\x80",     /* U+2000 */
		"\xe2\x80\x8a",     /* U+200A */
		"\xe2\x81\x9f",     /* U+205F */
		"\xe2\xa0\x80",     /* U+2800 braille blank */
		"\xe2\x80\xa8",     /* U+2028 */
		"\xe2\x80\xa9",     /* U+2029 */
		"\xe1\x9a\x80",     /* U+1680 */
		"\xe2\x80\x8b",     /* ZWSP */
		"\xe2\x80\x8c",     /* ZWNJ */
		"\xe2\x80\x8d",     /* ZWJ */
		"\xe2\x80\x8e",     /* LRM */
		"\xe2\x80\xae",     /* RLO */
		"\xe2\x81\xa6",     /* LRI */
		"\xe2\x81\xa0",     /* word joiner */
		"\xe2\x81\xa2",     /* invisible times */
		"\xef\xbb\xbf",     /* BOM */
		"\xc2\xad",         /* soft hyphen */
		"\xcd\x8f",         /* CGJ */
		"\xd8\x9c",         /* Arabic letter mark */
		"\xe3\x85\xa4",     /* Hangul filler */
		"\xe1\x85\x9f",     /* Hangul choseong filler */
		"\xef\xbe\xa0",     /* halfwidth Hangul filler */
		"\xef\xb8\x8f",     /* VS16 */
		"\xf3\xa0\x80\x81", /* tag */
		"\xf3\xa0\x84\x80", /* VS17 */
		"\xe1\xa0\x8e",     /* Mongolian vowel separator */
		"\xee\x80\x80",     /* private use */
		"\xef\xbf\xbe",     /* noncharacter */
		"\xf1\x80\x80\x80", /* unassigned (plane 4) */
		"\t",
	};
	char s[64];

	CHECK(allowed("alice"));
	CHECK(allowed("Zo\xc3\xab z"));
	CHECK(allowed("\xe2\x98\xba smile"));
	CHECK(allowed("\xd0\xb0""dmin")); /* refused by a script, not here */
	CHECK(allowed("a\xcc\x81"));
	CHECK(allowed("\xc3\xa9\xc3\xa9\xc3\xa9"));        /* ééé */
	CHECK(allowed("e\xcc\x81""e\xcc\x81""e\xcc\x81")); /* decomposed */
	CHECK(allowed("\xf0\x9f\x98\x80smile"));
	CHECK(!allowed("\xcc\x81""a")); /* leading combining mark */
	CHECK(!allowed("a\xcc\x81\xcc\x81")); /* the same mark twice */
	CHECK(!allowed("a\xff"));
	for (size_t i = 0; i < sizeof spaces / sizeof spaces[0]; i++) {
		snprintf(s, sizeof s, "alice%s", spaces[i]);
		CHECKF(!allowed(s), "alice + %s", spaces[i]);
		snprintf(s, sizeof s, "al%sice", spaces[i]);
		CHECKF(!allowed(s), "al + %s + ice", spaces[i]);
	}
}

static void
test_edges(void)
{
	char *k = NULL, *cause = NULL;
	char big[1100];

	CHECK(name_key("a\xff", 2, &k, &cause) == -1);
	CHECK(k == NULL && cause != NULL);
	free(cause);
	cause = NULL;
	memset(big, 'a', sizeof big);
	CHECK(name_key(big, sizeof big, &k, &cause) == -1);
	free(cause);
	cause = NULL;
	/* a character whose compatibility form is 18 characters long grows
	 * the buffers */
	{
		char s[3 * 32 + 1] = "";
		for (int i = 0; i < 32; i++)
			strcat(s, "\xef\xb7\xba"); /* U+FDFA */
		CHECK(name_key(s, strlen(s), &k, &cause) == 0);
		CHECK(k != NULL && strlen(k) > 32 * 18);
		free(k);
	}
	CHECK(name_key("", 0, &k, &cause) == 0);
	CHECK_STR(k, "");
	free(k);
	/* keys are stable: the key of a key is itself */
	CHECK_STR(key(key("Mallory")), key("Mallory"));
}

int
main(void)
{
	test_lookalikes();
	test_refused();
	test_edges();
	name_free();
	return unit_done();
}
