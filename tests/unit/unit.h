/*
 * unit.h: the few checking macros the C unit tests share. A failed check
 * prints its file and line and the test goes on; unit_done() prints the
 * tally and gives the exit status (1 if anything failed, else 0).
 */
#ifndef UNIT_H
#define UNIT_H

#include <stdio.h>
#include <string.h>

static unsigned long unit_checks;
static unsigned long unit_failures;

/* Checks that e holds. */
#define CHECK(e)                                                             \
	do {                                                                 \
		unit_checks++;                                               \
		if (!(e)) {                                                  \
			unit_failures++;                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n",         \
			    __FILE__, __LINE__, #e);                         \
		}                                                            \
	} while (0)

/* Checks that e holds; on failure also prints a printf-style context. */
#define CHECKF(e, ...)                                                       \
	do {                                                                 \
		unit_checks++;                                               \
		if (!(e)) {                                                  \
			unit_failures++;                                     \
			fprintf(stderr, "%s:%d: check failed: %s: ",         \
			    __FILE__, __LINE__, #e);                         \
			fprintf(stderr, __VA_ARGS__);                        \
			fputc('\n', stderr);                                 \
		}                                                            \
	} while (0)

/* Checks two integers for equality and prints both when they differ. */
#define CHECK_INT(a, b)                                                      \
	do {                                                                 \
		long long unit_a_ = (long long)(a), unit_b_ = (long long)(b); \
		unit_checks++;                                               \
		if (unit_a_ != unit_b_) {                                    \
			unit_failures++;                                     \
			fprintf(stderr, "%s:%d: check failed: %s == %s "     \
			    "(%lld != %lld)\n", __FILE__, __LINE__, #a, #b,  \
			    unit_a_, unit_b_);                               \
		}                                                            \
	} while (0)

/* Checks two NUL-terminated strings for equality. */
#define CHECK_STR(a, b)                                                      \
	do {                                                                 \
		const char *unit_a_ = (a), *unit_b_ = (b);                   \
		unit_checks++;                                               \
		if (unit_a_ == NULL || unit_b_ == NULL ||                    \
		    strcmp(unit_a_, unit_b_) != 0) {                         \
			unit_failures++;                                     \
			fprintf(stderr, "%s:%d: check failed: %s == %s "     \
			    "(\"%s\" != \"%s\")\n", __FILE__, __LINE__, #a,  \
			    #b, unit_a_ ? unit_a_ : "(null)",                \
			    unit_b_ ? unit_b_ : "(null)");                   \
		}                                                            \
	} while (0)

/* Prints the tally; returns the exit status for main. */
static inline int
unit_done(void)
{
	if (unit_failures != 0) {
		fprintf(stderr, "%lu of %lu checks failed\n", unit_failures,
		    unit_checks);
		return 1;
	}
	printf("%lu checks passed\n", unit_checks);
	return 0;
}

#endif
