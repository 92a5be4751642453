/*
 * fuzz_jwt.c: libFuzzer target for the JWT verifier of the auth-jwt
 * plugin (plugins/auth-jwt/jwt.c). The first byte chooses a mode and the
 * rules; the rest is either
 * - a token verified as it is with an HS256, RS256 or ES256 key (modes
 *   0-2): nobody here knows those keys' secret halves, so a success is a
 *   forgery and aborts; or
 * - a header and claims, JSON text separated by the first newline (mode
 *   3), which are encoded and signed with the HS256 key, so that the
 *   claims checks are reached too; a success must match what jansson
 *   reads in the same text on its own.
 * Every answer must obey the contract of jwt.h (a known status, claims
 * exactly on success, a cause exactly on failure).
 *
 * fuzz-sources: plugins/auth-jwt/jwt.c
 * fuzz-pkgs: gnutls
 *
 *   clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *       -Iplugins/auth-jwt tests/fuzz/fuzz_jwt.c plugins/auth-jwt/jwt.c \
 *       $(pkg-config --cflags --libs gnutls nettle jansson) -o fuzz_jwt
 *   ./fuzz_jwt tests/fuzz/corpus/jwt
 */

#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <nettle/base64.h>
#include <nettle/hmac.h>

#include "jwt.h"

#define NOW 1800000000u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char hs_secret[] = "fuzzing-secret-of-thirty-two-bytes-or-more";

/* Public halves only: the private ones were thrown away. */
static const char rs_pem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAlvL6zaaPq34kqxs/ag2b\n"
    "WccyGkDJFHfY8eRR5ABKvPekCDGl8H65J/PFWwSKcPBv3I5aUXFRHGhqBSpLLOWk\n"
    "diQlWsrI3VChjdBcZMmz9ChHKMS8ictOqk3KkM2Kp/bfe5Mx6XZ6g5tVL8CKoTT2\n"
    "bGDRgkzZlrJE63Hc+bXEpJcAm8pi/GwmZObmZ0gp+xPOtkHhSZVSmUy4zgXg5N6W\n"
    "3vTV4lgcdIN45ojKS4ZTFfR/+bcL7Du2uCeQaAzOIA54WlBCWhXrvyjwEBe/WmD+\n"
    "mSbylk4gn3skq5h/LP70YJZlGuMCXa13iYiAbmkTTW2japk+lhCI8S/uXemv6/zI\n"
    "xQIDAQAB\n"
    "-----END PUBLIC KEY-----\n";
static const char es_pem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAECmNAj0+8oKaJrhsB6RCtPUDCn8ik\n"
    "arEKxn3vFLsLWf4U4FqK6ZgyHKJFWj2RSGtWelp3uFS+NXxbI3nsDRYOqg==\n"
    "-----END PUBLIC KEY-----\n";

static struct jwt_key *keys[3];

static void
keys_load(void)
{
	if (keys[0] != NULL)
		return;
	if (jwt_key_load(JWT_HS256, hs_secret, sizeof hs_secret - 1, &keys[0],
		NULL) != 0 ||
	    jwt_key_load(
		JWT_RS256, rs_pem, sizeof rs_pem - 1, &keys[1], NULL) != 0 ||
	    jwt_key_load(
		JWT_ES256, es_pem, sizeof es_pem - 1, &keys[2], NULL) != 0)
		abort();
}

/* Appends base64url of d[n], without padding, at *p. */
static void
b64url_put(char **p, const uint8_t *d, size_t n)
{
	struct base64_encode_ctx ctx;
	size_t done;

	base64url_encode_init(&ctx);
	done = base64_encode_update(&ctx, *p, n, d);
	done += base64_encode_final(&ctx, *p + done);
	while (done > 0 && (*p)[done - 1] == '=')
		done--;
	*p += done;
}

/* header.claims.signature made from the two JSON texts (caller frees). */
static char *
token_forge(const uint8_t *header, size_t hn, const uint8_t *claims, size_t cn,
    size_t *len)
{
	struct hmac_sha256_ctx ctx;
	uint8_t mac[SHA256_DIGEST_SIZE];
	char *t, *p;

	t = malloc(BASE64_ENCODE_LENGTH(hn) + BASE64_ENCODE_LENGTH(cn) +
	    BASE64_ENCODE_LENGTH(sizeof mac) + 16);
	if (t == NULL)
		abort();
	p = t;
	b64url_put(&p, header, hn);
	*p++ = '.';
	b64url_put(&p, claims, cn);
	hmac_sha256_set_key(
	    &ctx, sizeof hs_secret - 1, (const uint8_t *)hs_secret);
	hmac_sha256_update(&ctx, (size_t)(p - t), (const uint8_t *)t);
	hmac_sha256_digest(&ctx, sizeof mac, mac);
	*p++ = '.';
	b64url_put(&p, mac, sizeof mac);
	*len = (size_t)(p - t);
	return t;
}

/* What the contract of jwt_verify() promises whatever the input. */
static void
check_contract(int rv, const json_t *claims, const char *cause)
{
	if (rv > 0 || rv < JWT_ERR_AUDIENCE)
		abort();
	if (strcmp(jwt_status_name(rv), "unknown") == 0)
		abort();
	if (rv == JWT_OK && (!json_is_object(claims) || cause != NULL))
		abort();
	if (rv != JWT_OK && (claims != NULL || cause == NULL || *cause == 0))
		abort();
}

/* A success in mode 3 must agree with jansson reading the texts alone. */
static void
check_forged(const struct jwt_rules *rules, const uint8_t *header, size_t hn,
    const uint8_t *text, size_t cn, const json_t *claims)
{
	json_t *h, *c;
	const char *alg;

	h = json_loadb((const char *)header, hn, JSON_REJECT_DUPLICATES, NULL);
	c = json_loadb((const char *)text, cn, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(h) || !json_is_object(c) || !json_equal(c, claims))
		abort();
	alg = json_string_value(json_object_get(h, "alg"));
	if (alg == NULL || strcmp(alg, "HS256") != 0 ||
	    json_object_get(h, "crit") != NULL)
		abort();
	if (!rules->exp_optional && !json_is_number(json_object_get(c, "exp")))
		abort();
	if (rules->audience == NULL && json_object_get(c, "aud") != NULL)
		abort();
	if (rules->issuer != NULL &&
	    (json_string_value(json_object_get(c, "iss")) == NULL ||
		strcmp(json_string_value(json_object_get(c, "iss")),
		    rules->issuer) != 0))
		abort();
	json_decref(h);
	json_decref(c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jwt_rules rules;
	const uint8_t *nl;
	json_t *claims = NULL;
	char *cause = NULL, *token;
	size_t len;
	int mode, rv;

	if (size == 0)
		return 0;
	keys_load();
	mode = data[0] & 3;
	memset(&rules, 0, sizeof rules);
	rules.issuer = data[0] & 4 ? "https://issuer.example" : NULL;
	rules.audience = data[0] & 8 ? "parley" : NULL;
	rules.exp_optional = (data[0] & 16) != 0;
	rules.leeway_s = data[0] & 32 ? 60 : 0;
	rules.max_len = data[0] & 64 ? 512 : 0;
	data++;
	size--;

	if (mode < 3) {
		rv = jwt_verify(keys[mode], (const char *)data, size, &rules,
		    NOW, &claims, &cause);
		check_contract(rv, claims, cause);
		if (rv == JWT_OK)
			abort(); /* a token signed without the key */
		free(cause);
		return 0;
	}

	nl = memchr(data, '\n', size);
	if (nl == NULL)
		return 0;
	token = token_forge(data, (size_t)(nl - data), nl + 1,
	    size - (size_t)(nl + 1 - data), &len);
	rv = jwt_verify(keys[0], token, len, &rules, NOW, &claims, &cause);
	check_contract(rv, claims, cause);
	if (rv == JWT_OK)
		check_forged(&rules, data, (size_t)(nl - data), nl + 1,
		    size - (size_t)(nl + 1 - data), claims);
	json_decref(claims);
	free(cause);
	free(token);
	return 0;
}
