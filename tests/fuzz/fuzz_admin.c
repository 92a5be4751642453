/*
 * fuzz_admin.c: libFuzzer target for the admin API's request parsing
 * (src/admin.c): the route of a method and path (room names hold any
 * byte, slashes included), the bearer token of an Authorization value,
 * and the JSON body. The input is three lines (method, path after
 * /admin/v1/, Authorization value) and the body. Whatever comes in, the
 * route is one of the table's or none, a room name lies inside the path,
 * a token inside its header and within its bound, and a body is an
 * object or refused with a reason; no leaks, no undefined behaviour.
 * Run by tests/fuzz/run.sh (make fuzz FUZZ_TARGETS=admin).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parley.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct config fuzz_cfg;

/* The next line of [*p, end) as a NUL-terminated copy. */
static char *
fuzz_line(const char **p, const char *end)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	const char *stop = nl != NULL ? nl : end;
	char *s = xstrndup(*p, (size_t)(stop - *p));

	*p = nl != NULL ? nl + 1 : end;
	return s;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	char *method, *path, *auth;
	const char *name, *token, *why;
	size_t route, name_len, tlen, plen;
	json_t *body;
	int m;

	if (cfg == NULL) {
		config_defaults(&fuzz_cfg);
		cfg = &fuzz_cfg;
	}
	method = fuzz_line(&p, end);
	path = fuzz_line(&p, end);
	auth = fuzz_line(&p, end);
	plen = strlen(path);

	m = admin_route_match(method, path, plen, &route, &name, &name_len);
	PARLEY_ASSERT(m == 0 || m == -1 || m == -2);
	if (m == 0 && name != NULL) {
		PARLEY_ASSERT(name >= path && name + name_len <= path + plen);
		PARLEY_ASSERT(name_len > 0);
	}
	token = admin_bearer(auth, &tlen);
	if (token != NULL) {
		PARLEY_ASSERT(
		    token > auth && token + tlen <= auth + strlen(auth));
		PARLEY_ASSERT(tlen > 0 && tlen <= ADMIN_TOKEN_MAX);
	}
	if (admin_path(path))
		PARLEY_ASSERT(strncmp(path, "/admin/v1", 9) == 0);
	if ((size_t)(end - p) <= ADMIN_BODY_MAX) {
		body = admin_body_parse(p, (size_t)(end - p), &why);
		PARLEY_ASSERT(
		    body != NULL ? json_is_object(body) : why != NULL);
		json_decref(body);
	}
	free(method);
	free(path);
	free(auth);
	return 0;
}
