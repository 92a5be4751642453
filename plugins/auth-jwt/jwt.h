/*
 * jwt.h: verifying a JSON Web Token (RFC 7519) in the JWS compact form
 * against one configured key, HS256, RS256 or ES256 (RFC 7518). Only
 * the key's own algorithm is ever accepted: never "none", never another
 * one named by the token (algorithm confusion), and keys, URLs or key ids
 * carried in a token's header ("jwk", "jku", "x5c", "kid"...) are ignored.
 *
 * The checks, in order; the first that fails gives the result:
 *   1. the length, before anything is decoded (JWT_ERR_TOO_LARGE);
 *   2. three parts separated by dots, each strict base64url: no padding,
 *      no whitespace, no byte outside [A-Za-z0-9_-], no stray bits
 *      (JWT_ERR_MALFORMED);
 *   3. the header: a JSON object, nested at most JWT_JSON_DEPTH deep,
 *      without duplicate keys, without NUL characters; its "alg" is the
 *      key's algorithm (JWT_ERR_ALGORITHM); it has no "crit" (no extension
 *      is understood, so RFC 7515 4.1.11 says refuse: JWT_ERR_UNSUPPORTED);
 *   4. the signature, of exactly the algorithm's length, compared in
 *      constant time for HMAC (JWT_ERR_SIGNATURE). The claims are not
 *      parsed before the signature has been verified;
 *   5. the claims: a JSON object with the same rules as the header;
 *      "exp", "nbf" and "iat" are numbers when present, and "exp" is
 *      required unless the rules say otherwise (JWT_ERR_CLAIMS);
 *   6. the time: now < exp + leeway (JWT_ERR_EXPIRED); nbf <= now +
 *      leeway and iat <= now + leeway (JWT_ERR_NOT_YET_VALID);
 *   7. "iss" equals the configured issuer, when one is (JWT_ERR_ISSUER);
 *   8. "aud", a string or an array of strings, holds the configured
 *      audience; a token with an "aud" is refused when no audience is
 *      configured, as RFC 7519 4.1.3 says (JWT_ERR_AUDIENCE).
 *
 * Nothing here keeps global state or logs: a loaded key is read only, and
 * any number of threads may verify with it at once. Causes never quote
 * the token, its claims or the key. Out of memory aborts.
 */
#ifndef PARLEY_JWT_H
#define PARLEY_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* The longest token accepted when the rules do not say (bytes). */
#define JWT_TOKEN_MAX 8192
/* How deep the header's and the claims' JSON may nest; the top-level
 * object counts as 1, so {"a":{"b":[1]}} is 3 deep. */
#define JWT_JSON_DEPTH 16
/* The shortest HS256 secret accepted: the hash's size (RFC 7518 3.2). */
#define JWT_HS256_SECRET_MIN 32
/* RSA moduli accepted for RS256, in bits (RFC 7518 3.3 asks >= 2048). */
#define JWT_RSA_BITS_MIN 2048
#define JWT_RSA_BITS_MAX 8192

enum jwt_alg {
	JWT_HS256 = 1, /* HMAC with SHA-256, a shared secret */
	JWT_RS256, /* RSASSA-PKCS1-v1_5 with SHA-256, an RSA public key */
	JWT_ES256 /* ECDSA on P-256 with SHA-256, an EC public key */
};

/* What jwt_verify() says: 0, or why the token is refused. */
enum jwt_status {
	JWT_OK = 0,
	JWT_ERR_TOO_LARGE = -1, /* longer than the limit */
	JWT_ERR_MALFORMED = -2, /* not a JWS of two JSON objects */
	JWT_ERR_ALGORITHM = -3, /* "alg" missing or not the key's */
	JWT_ERR_UNSUPPORTED = -4, /* the header has "crit" */
	JWT_ERR_SIGNATURE = -5, /* not signed by the key */
	JWT_ERR_CLAIMS = -6, /* no "exp", or a time claim not a number */
	JWT_ERR_EXPIRED = -7, /* past "exp" */
	JWT_ERR_NOT_YET_VALID = -8, /* before "nbf", or "iat" in the future */
	JWT_ERR_ISSUER = -9, /* "iss" missing or not the issuer */
	JWT_ERR_AUDIENCE = -10 /* "aud" missing, wrong, or unexpected */
};

/*
 * What a token must satisfy besides its signature. All zero (or a NULL
 * pointer to jwt_verify) is the strict default: "exp" required, no
 * leeway, "iss" not checked, a token with "aud" refused, JWT_TOKEN_MAX.
 * The strings are borrowed for the call.
 */
struct jwt_rules {
	const char *issuer; /* "iss" must equal it; NULL: not checked */
	const char *audience; /* "aud" must hold it; NULL: no "aud" allowed */
	uint32_t leeway_s; /* clock skew allowed on exp, nbf, iat */
	bool exp_optional; /* a token without "exp" never expires */
	size_t max_len; /* longest token in bytes; 0: JWT_TOKEN_MAX (at most
			 * 1 MiB is ever taken) */
};

/* A verification key and its algorithm; opaque, immutable once loaded. */
struct jwt_key;

/*
 * The algorithm named name ("HS256", "RS256" or "ES256", exactly):
 * stores it in *alg and returns 0, or returns -1 for any other name.
 */
int jwt_alg_from_name(const char *name, enum jwt_alg *alg);

/* The JOSE name of alg ("HS256"...); "?" for a value out of the enum. */
const char *jwt_alg_name(enum jwt_alg alg);

/*
 * Loads a key for alg from text[len] (not necessarily NUL-terminated):
 * - HS256: the secret's bytes as they are, at least JWT_HS256_SECRET_MIN
 *   of them; text that looks like a PEM block is refused, so that a
 *   public key is never used as an HMAC secret;
 * - RS256: a PEM "PUBLIC KEY" (SubjectPublicKeyInfo), "RSA PUBLIC KEY"
 *   (PKCS #1) or "CERTIFICATE" (its key is taken; the certificate itself
 *   is not checked) holding an RSA key of JWT_RSA_BITS_MIN to
 *   JWT_RSA_BITS_MAX bits;
 * - ES256: a PEM "PUBLIC KEY" or "CERTIFICATE" holding a P-256 key.
 * A private key is refused with a cause saying so.
 * Returns 0 and a new key in *key (free it with jwt_key_free), or -1 and
 * an allocated reason in *cause (the caller frees it; cause may be NULL).
 * The key material never appears in the cause. The secret is copied.
 */
int jwt_key_load(enum jwt_alg alg, const char *text, size_t len,
    struct jwt_key **key, char **cause);

/* Frees key (NULL is fine), wiping any secret first. */
void jwt_key_free(struct jwt_key *key);

/* The algorithm key was loaded for. */
enum jwt_alg jwt_key_alg(const struct jwt_key *key);

/*
 * Verifies token[len] (not necessarily NUL-terminated; exactly the token,
 * no "Bearer " and no whitespace) with key against rules (NULL: the
 * defaults above) at now_s (seconds since the epoch), in the order of the
 * checks above. Returns JWT_OK and, when claims_out is not NULL, a new
 * reference to the claims object in *claims_out (json_decref it). Else
 * returns a negative enum jwt_status, leaves *claims_out NULL and, when
 * cause is not NULL, puts an allocated reason for the log in *cause (the
 * caller frees it). The cost is bounded by the length limit: one pass
 * over the token, two bounded JSON parses, one signature check.
 */
int jwt_verify(const struct jwt_key *key, const char *token, size_t len,
    const struct jwt_rules *rules, uint64_t now_s, json_t **claims_out,
    char **cause);

/*
 * A short stable name of a jwt_verify() result, for replies and metrics:
 * "ok", "too_large", "malformed", "algorithm", "unsupported",
 * "signature", "claims", "expired", "not_yet_valid", "issuer",
 * "audience"; "unknown" for anything else. A static string.
 */
const char *jwt_status_name(int status);

/*
 * The time claim name ("exp", "nbf", "iat") of verified claims in whole
 * seconds since the epoch: a fraction is dropped, a negative time is 0.
 * Returns 0 and stores it in *out, or -1 when the claim is absent or not
 * a number. For the expiry of an open connection: it ends at exp +
 * leeway.
 */
int jwt_claim_time(const json_t *claims, const char *name, uint64_t *out);

#endif
