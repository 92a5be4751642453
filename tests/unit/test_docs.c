/*
 * test_docs.c: every configuration option the daemon reads is
 * documented: it has a line in parley.conf.sample ("key = ..." or
 * "--key = ...") and an entry in parley.conf(5) (".B key" or ".BR key").
 * The option table (config-table.c) is the list, so a new option without
 * its documentation fails here.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley.h"
#include "config-table.h"
#include "unit.h"

/* The file rel under the build tree, else the source tree (the sample
 * and the man page may be generated), read whole; NULL when neither. */
static char *
docs_read(const char *rel)
{
	const char *dirs[] = { getenv("PARLEY_BUILDDIR"),
		getenv("PARLEY_SRCDIR"), "." };

	for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
		char path[4096];
		FILE *f;
		char *text;
		long n;

		if (dirs[i] == NULL)
			continue;
		snprintf(path, sizeof path, "%s/%s", dirs[i], rel);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		fseek(f, 0, SEEK_END);
		n = ftell(f);
		rewind(f);
		text = xmalloc((size_t)n + 1);
		text[fread(text, 1, (size_t)n, f)] = '\0';
		fclose(f);
		return text;
	}
	return NULL;
}

/* True when a line of text starts with one of the prefixes (spaces after
 * it allowed), then key as a whole word. */
static bool
docs_has(const char *text, const char *const *prefixes, const char *key,
    const char *after)
{
	size_t klen = strlen(key);

	for (const char *line = text; line != NULL && *line != '\0';) {
		for (const char *const *p = prefixes; *p != NULL; p++) {
			const char *s = line;
			size_t plen = strlen(*p);
			if (strncmp(s, *p, plen) != 0)
				continue;
			s += plen;
			while (*s == ' ')
				s++;
			if (strncmp(s, key, klen) == 0 &&
			    strchr(after, s[klen]) != NULL)
				return true;
		}
		line = strchr(line, '\n');
		if (line != NULL)
			line++;
	}
	return false;
}

int
main(void)
{
	static const char *const sample_prefixes[] = { "--", "", NULL };
	static const char *const man_prefixes[] = { ".B ", ".BR ", ".TP\n.B ",
		NULL };
	char *sample = docs_read("parley.conf.sample");
	char *man = docs_read("man/parley.conf.5");

	if (man == NULL)
		man = docs_read("man/parley.conf.5.in");
	CHECKF(sample != NULL, "parley.conf.sample not found");
	CHECKF(man != NULL, "man/parley.conf.5 not found");
	if (sample == NULL || man == NULL)
		return unit_done();
	CHECK(config_noptions > 40);
	for (size_t i = 0; i < config_noptions; i++) {
		const char *key = config_options[i].name;
		CHECKF(docs_has(sample, sample_prefixes, key, " ="),
		    "%s has no line in parley.conf.sample", key);
		CHECKF(docs_has(man, man_prefixes, key, " \n"),
		    "%s has no entry in parley.conf(5)", key);
	}
	free(sample);
	free(man);
	return unit_done();
}
