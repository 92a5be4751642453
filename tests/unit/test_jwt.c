/*
 * test_jwt.c: the JWT verifier (plugins/auth-jwt/jwt.c) against the keys
 * and tokens that tests/unit/test_jwt.py made with python3-jwt, listed
 * with their expected outcomes in DIR/cases.txt; plus the RFC 7515 A.1
 * example and the small functions on their own.
 *
 *   tests/unit/test_jwt DIR
 */

#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jwt.h"
#include "unit.h"

#define MAX_KEYS 32

static struct {
	char name[64];
	struct jwt_key *key;
} keys[MAX_KEYS];
static size_t nkeys;

/* The bytes of DIR/name, exactly: no NUL after them, so that reading
 * past the length is caught by ASan and valgrind. */
static char *
read_file(const char *dir, const char *name, size_t *len)
{
	char path[4096];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		exit(1);
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc(n > 0 ? (size_t)n : 1);
	if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n)
		abort();
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static const struct jwt_key *
key_find(const char *name)
{
	size_t i;

	for (i = 0; i < nkeys; i++) {
		if (strcmp(keys[i].name, name) == 0)
			return keys[i].key;
	}
	return NULL;
}

/* key NAME ALG FILE ok|error */
static void
case_key(const char *dir, char *line)
{
	char name[64], alg_name[16], file[256], expect[16], piece[11];
	char *text, *cause;
	struct jwt_key *key;
	enum jwt_alg alg;
	size_t len;
	int rv;

	if (sscanf(line, "key %63s %15s %255s %15s", name, alg_name, file,
		expect) != 4)
		abort();
	CHECK_INT(jwt_alg_from_name(alg_name, &alg), 0);
	text = read_file(dir, file, &len);
	cause = NULL;
	rv = jwt_key_load(alg, text, len, &key, &cause);
	if (strcmp(expect, "ok") == 0) {
		CHECKF(rv == 0 && key != NULL, "key %s: %s", name,
		    cause ? cause : "?");
		CHECK(cause == NULL);
		if (rv == 0) {
			CHECK_INT(jwt_key_alg(key), alg);
			if (nkeys == MAX_KEYS)
				abort();
			snprintf(keys[nkeys].name, sizeof keys[nkeys].name,
			    "%s", name);
			keys[nkeys++].key = key;
		}
	} else {
		CHECKF(rv == -1 && key == NULL, "key %s was accepted", name);
		CHECKF(
		    cause != NULL && *cause != '\0', "key %s: no cause", name);
		if (cause != NULL)
			printf("  key %-12s refused: %s\n", name, cause);
		/* Never the key material in the cause. */
		if (cause != NULL && len >= 40) {
			memcpy(piece, text + len / 2, 10);
			piece[10] = '\0';
			CHECKF(strstr(cause, piece) == NULL,
			    "key %s: the cause quotes the key", name);
		}
		if (rv == 0)
			jwt_key_free(key);
	}
	free(cause);
	free(text);
}

/* Whether cause quotes a part of token longer than 8 bytes. */
static int
quotes_token(const char *cause, const char *token, size_t len)
{
	char piece[9];
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(piece, token + i, 8);
		piece[8] = '\0';
		if (strlen(piece) == 8 && strstr(cause, piece) != NULL)
			return 1;
	}
	return 0;
}

/* token NAME KEY EXPECT NOW LEEWAY ISS AUD EXP_OPTIONAL SUB; the token
 * is in DIR/tokens/NAME. */
static void
case_token(const char *dir, char *line)
{
	char name[128], key_name[64], expect[32], iss[256], aud[256], sub[128],
	    path[160], *token;
	unsigned long long now;
	unsigned leeway, exp_optional;
	struct jwt_rules rules;
	const struct jwt_key *key;
	json_t *claims;
	size_t len;
	char *cause;
	int rv, rv2;

	if (sscanf(line, "token %127s %63s %31s %llu %u %255s %255s %u %127s",
		name, key_name, expect, &now, &leeway, iss, aud, &exp_optional,
		sub) != 9)
		abort();
	key = key_find(key_name);
	if (key == NULL) {
		CHECKF(0, "%s: no key %s", name, key_name);
		return;
	}
	snprintf(path, sizeof path, "tokens/%s", name);
	token = read_file(dir, path, &len);
	memset(&rules, 0, sizeof rules);
	rules.issuer = strcmp(iss, "-") == 0 ? NULL : iss;
	rules.audience = strcmp(aud, "-") == 0 ? NULL : aud;
	rules.leeway_s = leeway;
	rules.exp_optional = exp_optional != 0;

	claims = NULL;
	cause = NULL;
	rv = jwt_verify(key, token, len, &rules, now, &claims, &cause);
	CHECKF(strcmp(jwt_status_name(rv), expect) == 0,
	    "%s: %s (%s), expected %s", name, jwt_status_name(rv),
	    cause ? cause : "no cause", expect);
	if (rv == JWT_OK) {
		CHECKF(json_is_object(claims), "%s: no claims", name);
		CHECK(cause == NULL);
		if (strcmp(sub, "-") != 0)
			CHECK_STR(
			    json_string_value(json_object_get(claims, "sub")),
			    sub);
	} else {
		CHECKF(claims == NULL, "%s: claims on failure", name);
		CHECKF(cause != NULL && *cause != '\0', "%s: no cause", name);
		if (cause != NULL)
			CHECKF(!quotes_token(cause, token, len),
			    "%s: the cause quotes the token: %s", name, cause);
	}
	/* Without the out parameters: the same answer, nothing leaks. */
	rv2 = jwt_verify(key, token, len, &rules, now, NULL, NULL);
	CHECKF(
	    rv2 == rv, "%s: %d without out parameters, %d with", name, rv2, rv);
	json_decref(claims);
	free(cause);
	free(token);
}

static void
cases_run(const char *dir)
{
	char path[4096], *line = NULL;
	size_t cap = 0, ntokens = 0;
	FILE *f;

	snprintf(path, sizeof path, "%s/cases.txt", dir);
	f = fopen(path, "r");
	if (f == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		exit(1);
	}
	while (getline(&line, &cap, f) != -1) {
		if (strncmp(line, "key ", 4) == 0)
			case_key(dir, line);
		else if (strncmp(line, "token ", 6) == 0) {
			case_token(dir, line);
			ntokens++;
		}
	}
	free(line);
	fclose(f);
	printf("%zu keys loaded, %zu tokens checked\n", nkeys, ntokens);
	CHECK(nkeys >= 6);
	CHECK(ntokens >= 100);
	while (nkeys > 0)
		jwt_key_free(keys[--nkeys].key);
}

/* RFC 7515 A.1: HS256 with a JWK "oct" key; the header has CR LF. */
static void
test_rfc7515_a1(void)
{
	static const char secret[] =
	    "\x03\x23\x35\x4b\x2b\x0f\xa5\xbc\x83\x7e\x06\x65\x77\x7b\xa6\x8f"
	    "\x5a\xb3\x28\xe6\xf0\x54\xc9\x28\xa9\x0f\x84\xb2\xd2\x50\x2e\xbf"
	    "\xd3\xfb\x5a\x92\xd2\x06\x47\xef\x96\x8a\xb4\xc3\x77\x62\x3d\x22"
	    "\x3d\x2e\x21\x72\x05\x2e\x4f\x08\xc0\xcd\x9a\xf5\x67\xd0\x80\xa3";
	static const char token[] =
	    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
	    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"
	    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
	    "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
	struct jwt_rules rules = { .issuer = "joe" };
	struct jwt_key *key;
	json_t *claims;
	uint64_t t;
	char *cause = NULL;

	CHECK_INT(
	    jwt_key_load(JWT_HS256, secret, sizeof secret - 1, &key, &cause),
	    0);
	if (key == NULL)
		return;
	CHECK_INT(jwt_verify(key, token, strlen(token), &rules, 1300819379,
		      &claims, &cause),
	    JWT_OK);
	CHECK(json_is_true(
	    json_object_get(claims, "http://example.com/is_root")));
	CHECK_INT(jwt_claim_time(claims, "exp", &t), 0);
	CHECK_INT(t, 1300819380);
	CHECK_INT(jwt_claim_time(claims, "nbf", &t), -1);
	json_decref(claims);
	CHECK_INT(jwt_verify(key, token, strlen(token), &rules, 1300819380,
		      NULL, NULL),
	    JWT_ERR_EXPIRED);
	rules.leeway_s = 1;
	CHECK_INT(jwt_verify(key, token, strlen(token), &rules, 1300819380,
		      NULL, NULL),
	    JWT_OK);
	rules.issuer = "jo";
	CHECK_INT(jwt_verify(key, token, strlen(token), &rules, 1300819379,
		      NULL, NULL),
	    JWT_ERR_ISSUER);
	/* NULL rules: no issuer check, no leeway. */
	CHECK_INT(
	    jwt_verify(key, token, strlen(token), NULL, 1300819379, NULL, NULL),
	    JWT_OK);
	/* Not NUL-terminated: the length is what counts. */
	CHECK_INT(jwt_verify(key, token, strlen(token) - 1, NULL, 1300819379,
		      NULL, NULL),
	    JWT_ERR_MALFORMED);
	/* A smaller limit of the rules. */
	rules.max_len = 100;
	rules.issuer = NULL;
	CHECK_INT(jwt_verify(key, token, strlen(token), &rules, 1300819379,
		      NULL, &cause),
	    JWT_ERR_TOO_LARGE);
	CHECK(cause != NULL && strstr(cause, "100") != NULL);
	free(cause);
	jwt_key_free(key);
}

static void
test_small(void)
{
	static const char *const statuses[] = { "ok", "too_large", "malformed",
		"algorithm", "unsupported", "signature", "claims", "expired",
		"not_yet_valid", "issuer", "audience" };
	enum jwt_alg alg;
	struct jwt_key *key = (struct jwt_key *)(uintptr_t)1;
	json_t *c;
	uint64_t t;
	char *cause = NULL;
	int i;

	CHECK_INT(jwt_alg_from_name("HS256", &alg), 0);
	CHECK_INT(alg, JWT_HS256);
	CHECK_INT(jwt_alg_from_name("RS256", &alg), 0);
	CHECK_INT(alg, JWT_RS256);
	CHECK_INT(jwt_alg_from_name("ES256", &alg), 0);
	CHECK_INT(alg, JWT_ES256);
	CHECK_INT(jwt_alg_from_name("none", &alg), -1);
	CHECK_INT(jwt_alg_from_name("hs256", &alg), -1);
	CHECK_INT(jwt_alg_from_name("RS512", &alg), -1);
	CHECK_INT(jwt_alg_from_name("", &alg), -1);
	CHECK_INT(jwt_alg_from_name(NULL, &alg), -1);
	CHECK_STR(jwt_alg_name(JWT_ES256), "ES256");
	CHECK_STR(jwt_alg_name((enum jwt_alg)0), "?");
	CHECK_STR(jwt_alg_name((enum jwt_alg)9), "?");
	for (i = 0; i <= 10; i++)
		CHECK_STR(jwt_status_name(-i), statuses[i]);
	CHECK_STR(jwt_status_name(-11), "unknown");
	CHECK_STR(jwt_status_name(1), "unknown");

	CHECK_INT(jwt_key_load((enum jwt_alg)7, "x", 1, &key, &cause), -1);
	CHECK(key == NULL && cause != NULL);
	free(cause);
	CHECK_INT(jwt_key_load(JWT_HS256, "", 0, &key, NULL), -1);
	CHECK_INT(jwt_key_load(JWT_ES256, NULL, 0, &key, NULL), -1);
	jwt_key_free(NULL);

	c = json_pack("{s:I, s:f, s:f, s:I, s:s, s:f}", "exp",
	    (json_int_t)1800000000, "nbf", 1800000000.9, "iat", -5.0, "neg",
	    (json_int_t)-3, "str", "1", "huge", 1e30);
	CHECK_INT(jwt_claim_time(c, "exp", &t), 0);
	CHECK_INT(t, 1800000000);
	CHECK_INT(jwt_claim_time(c, "nbf", &t), 0);
	CHECK_INT(t, 1800000000);
	CHECK_INT(jwt_claim_time(c, "iat", &t), 0);
	CHECK_INT(t, 0);
	CHECK_INT(jwt_claim_time(c, "neg", &t), 0);
	CHECK_INT(t, 0);
	CHECK_INT(jwt_claim_time(c, "huge", &t), 0);
	CHECK(t == UINT64_MAX);
	CHECK_INT(jwt_claim_time(c, "str", &t), -1);
	CHECK_INT(jwt_claim_time(c, "absent", &t), -1);
	CHECK_INT(jwt_claim_time(NULL, "exp", &t), -1);
	json_decref(c);
}

int
main(int argc, char **argv)
{
	test_small();
	test_rfc7515_a1();
	if (argc == 2)
		cases_run(argv[1]);
	else
		printf(
		    "no directory of cases given: only the built-in checks\n");
	return unit_done();
}
