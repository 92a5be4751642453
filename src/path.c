/*
 * path.c: where the daemon finds its bundled files when it runs from a
 * build tree instead of an installation, so that `./src/parleyd` works
 * right after `make` with no configuration. A build tree is recognised by
 * the libtool library that sits beside the daemon only there. In a build
 * made outside the source tree, the bundled files stay in the source
 * tree, which the build names in src/parley-srcdir (nothing of the build
 * machine is compiled into the daemon).
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "parley.h"

const char *
path_build_tree(void)
{
	static bool done;
	static char *top;
	char exe[PATH_MAX], *slash, *probe;
	size_t len;
	ssize_t n;
	struct stat st;

	if (done)
		return top;
	done = true;
	n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	if ((slash = strrchr(exe, '/')) == NULL)
		return NULL;
	*slash = '\0';
	/* src/parleyd, or libtool's src/.libs/lt-parleyd */
	len = strlen(exe);
	if (len >= 6 && strcmp(exe + len - 6, "/.libs") == 0)
		exe[len - 6] = '\0';
	xasprintf(&probe, "%s/libparley.la", exe);
	if (stat(probe, &st) == 0 && (slash = strrchr(exe, '/')) != NULL) {
		*slash = '\0';
		top = realpath(exe, NULL);
	}
	free(probe);
	return top;
}

/* The source tree of a build made elsewhere, or NULL. */
static const char *
path_source_tree(const char *top)
{
	static bool done;
	static char *src;
	char *file, line[PATH_MAX];
	FILE *f;

	if (done)
		return src;
	done = true;
	xasprintf(&file, "%s/src/parley-srcdir", top);
	if ((f = fopen(file, "r")) != NULL) {
		if (fgets(line, sizeof line, f) != NULL) {
			line[strcspn(line, "\n")] = '\0';
			if (line[0] == '/')
				src = xstrdup(line);
		}
		fclose(f);
	}
	free(file);
	return src;
}

char *
path_bundled(const char *rel, const char *installed)
{
	const char *top = path_build_tree(), *src;
	struct stat st;
	char *p;

	if (top == NULL)
		return xstrdup(installed);
	xasprintf(&p, "%s/%s", top, rel);
	if (stat(p, &st) == 0)
		return p;
	free(p);
	if ((src = path_source_tree(top)) != NULL) {
		xasprintf(&p, "%s/%s", src, rel);
		if (stat(p, &st) == 0)
			return p;
		free(p);
	}
	return xstrdup(installed);
}

int
path_mkdirs(const char *dir, char **cause)
{
	char *p = xstrdup(dir);
	struct stat st;

	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char saved = *s;
		*s = '\0';
		if (stat(p, &st) == -1 && mkdir(p, 0750) == -1 &&
		    errno != EEXIST) {
			xasprintf(cause, "cannot create %s: %s", p,
			    strerror(errno));
			free(p);
			return -1;
		}
		if ((*s = saved) == '\0')
			break;
	}
	free(p);
	return 0;
}
