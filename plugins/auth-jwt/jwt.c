/*
 * jwt.c: JSON Web Token verification with one configured key (see
 * jwt.h for the contract). nettle does base64url and HMAC-SHA256, GnuTLS
 * imports public keys and checks RSA and ECDSA signatures, jansson
 * parses. Nothing here depends on the rest of parley, so that it can be
 * tested and fuzzed on its own.
 */

#include "config.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <jansson.h>
#include <nettle/base64.h>
#include <nettle/hmac.h>
#include <nettle/memops.h>

#include "jwt.h"

/* Whatever the rules say, no token is longer (GnuTLS sizes are unsigned
 * int, and nobody sends a megabyte in a header). */
#define JWT_LEN_CEILING (1024 * 1024)
/* Key text longer than this is not a key. */
#define JWT_KEY_TEXT_MAX (64 * 1024)

struct jwt_key {
	enum jwt_alg alg;
	/* HS256: the state after the key, copied for each token so that the
	 * secret itself is not kept. */
	struct hmac_sha256_ctx hmac;
	gnutls_pubkey_t pub; /* RS256, ES256 */
	size_t sig_len; /* a signature's exact length in bytes */
};

static const char *const jwt_alg_names[] = {
	[JWT_HS256] = "HS256",
	[JWT_RS256] = "RS256",
	[JWT_ES256] = "ES256",
};

static const char *const jwt_status_names[] = { "ok", "too_large", "malformed",
	"algorithm", "unsupported", "signature", "claims", "expired",
	"not_yet_valid", "issuer", "audience" };

/* Puts a reason in *cause when the caller wants one; returns status. */
static int jwt_fail(char **cause, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
jwt_fail(char **cause, int status, const char *fmt, ...)
{
	va_list ap;

	if (cause == NULL)
		return status;
	va_start(ap, fmt);
	if (vasprintf(cause, fmt, ap) == -1)
		abort();
	va_end(ap);
	return status;
}

static void *
jwt_malloc(size_t n)
{
	void *p = malloc(n == 0 ? 1 : n);

	if (p == NULL)
		abort();
	return p;
}

int
jwt_alg_from_name(const char *name, enum jwt_alg *alg)
{
	int a;

	if (name == NULL)
		return -1;
	for (a = JWT_HS256; a <= JWT_ES256; a++) {
		if (strcmp(name, jwt_alg_names[a]) == 0) {
			*alg = (enum jwt_alg)a;
			return 0;
		}
	}
	return -1;
}

const char *
jwt_alg_name(enum jwt_alg alg)
{
	if (alg < JWT_HS256 || alg > JWT_ES256)
		return "?";
	return jwt_alg_names[alg];
}

const char *
jwt_status_name(int status)
{
	if (status > 0 || status < JWT_ERR_AUDIENCE)
		return "unknown";
	return jwt_status_names[-status];
}

/* --- Keys --------------------------------------------------------------- */

/* Appends a DER length (n < 2^24) at p; returns the bytes written. */
static size_t
der_put_len(uint8_t *p, size_t n)
{
	if (n < 0x80) {
		p[0] = (uint8_t)n;
		return 1;
	}
	if (n < 0x100) {
		p[0] = 0x81;
		p[1] = (uint8_t)n;
		return 2;
	}
	if (n < 0x10000) {
		p[0] = 0x82;
		p[1] = (uint8_t)(n >> 8);
		p[2] = (uint8_t)n;
		return 3;
	}
	p[0] = 0x83;
	p[1] = (uint8_t)(n >> 16);
	p[2] = (uint8_t)(n >> 8);
	p[3] = (uint8_t)n;
	return 4;
}

/*
 * GnuTLS imports only SubjectPublicKeyInfo, so a PKCS #1 RSAPublicKey
 * (PEM "RSA PUBLIC KEY") is wrapped in one: SEQUENCE { AlgorithmIdentifier
 * rsaEncryption NULL, BIT STRING { 0 unused bits, the RSAPublicKey } }.
 * GnuTLS then parses and checks everything inside.
 */
static int
key_import_pkcs1(gnutls_pubkey_t pub, const gnutls_datum_t *pem)
{
	static const uint8_t rsa_alg_id[] = { 0x30, 0x0d, 0x06, 0x09, 0x2a,
		0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00 };
	gnutls_datum_t der, spki;
	uint8_t lenbuf[4];
	size_t bits_len, inner, n = 0;
	int rv;

	rv = gnutls_pem_base64_decode2("RSA PUBLIC KEY", pem, &der);
	if (rv < 0)
		return rv;
	if (der.size > JWT_KEY_TEXT_MAX) {
		gnutls_free(der.data);
		return GNUTLS_E_BASE64_DECODING_ERROR;
	}
	bits_len = der.size + 1;
	inner = sizeof rsa_alg_id + 1 + der_put_len(lenbuf, bits_len) +
	    bits_len;
	spki.data = jwt_malloc(inner + 8);
	spki.data[n++] = 0x30;
	n += der_put_len(spki.data + n, inner);
	memcpy(spki.data + n, rsa_alg_id, sizeof rsa_alg_id);
	n += sizeof rsa_alg_id;
	spki.data[n++] = 0x03;
	n += der_put_len(spki.data + n, bits_len);
	spki.data[n++] = 0x00;
	memcpy(spki.data + n, der.data, der.size);
	n += der.size;
	spki.size = (unsigned)n;
	rv = gnutls_pubkey_import(pub, &spki, GNUTLS_X509_FMT_DER);
	free(spki.data);
	gnutls_free(der.data);
	return rv;
}

/* The public key of a PEM certificate; the certificate is not checked. */
static int
key_import_cert(gnutls_pubkey_t pub, const gnutls_datum_t *pem)
{
	gnutls_x509_crt_t crt;
	int rv;

	rv = gnutls_x509_crt_init(&crt);
	if (rv < 0)
		return rv;
	rv = gnutls_x509_crt_import(crt, pem, GNUTLS_X509_FMT_PEM);
	if (rv >= 0)
		rv = gnutls_pubkey_import_x509(pub, crt, 0);
	gnutls_x509_crt_deinit(crt);
	return rv;
}

/* The label of the first PEM block in text ("PUBLIC KEY"...), copied
 * into label[size]; -1 when there is none. */
static int
pem_label(const char *text, size_t len, char *label, size_t size)
{
	const char *p, *end;

	p = memmem(text, len, "-----BEGIN ", 11);
	if (p == NULL)
		return -1;
	p += 11;
	end = memmem(p, len - (size_t)(p - text), "-----", 5);
	if (end == NULL || (size_t)(end - p) >= size)
		return -1;
	memcpy(label, p, (size_t)(end - p));
	label[end - p] = '\0';
	return 0;
}

/* Checks that the imported key fits alg; sets key->sig_len. */
static int
key_check_public(struct jwt_key *key, char **cause)
{
	gnutls_ecc_curve_t curve;
	gnutls_datum_t x, y;
	unsigned bits = 0;
	int pk, rv;

	pk = gnutls_pubkey_get_pk_algorithm(key->pub, &bits);
	if (key->alg == JWT_RS256) {
		if (pk != GNUTLS_PK_RSA)
			return jwt_fail(cause, -1,
			    "RS256 needs an RSA key, not %s",
			    gnutls_pk_get_name((gnutls_pk_algorithm_t)pk));
		if (bits < JWT_RSA_BITS_MIN || bits > JWT_RSA_BITS_MAX)
			return jwt_fail(cause, -1,
			    "the RSA key has %u bits; RS256 needs %d to %d",
			    bits, JWT_RSA_BITS_MIN, JWT_RSA_BITS_MAX);
		key->sig_len = (bits + 7) / 8;
		return 0;
	}
	if (pk != GNUTLS_PK_ECDSA)
		return jwt_fail(cause, -1, "ES256 needs an EC key, not %s",
		    gnutls_pk_get_name((gnutls_pk_algorithm_t)pk));
	rv = gnutls_pubkey_export_ecc_raw(key->pub, &curve, &x, &y);
	if (rv < 0)
		return jwt_fail(cause, -1, "cannot read the EC key: %s",
		    gnutls_strerror(rv));
	gnutls_free(x.data);
	gnutls_free(y.data);
	if (curve != GNUTLS_ECC_CURVE_SECP256R1)
		return jwt_fail(cause, -1, "ES256 needs a P-256 key, not %s",
		    gnutls_ecc_curve_get_name(curve));
	key->sig_len = 64;
	return 0;
}

static int
key_load_public(struct jwt_key *key, const char *text, size_t len, char **cause)
{
	gnutls_datum_t pem;
	char label[32];
	int rv;

	if (pem_label(text, len, label, sizeof label) != 0)
		return jwt_fail(cause, -1,
		    "%s needs a PEM public key or certificate",
		    jwt_alg_name(key->alg));
	if (strstr(label, "PRIVATE") != NULL)
		return jwt_fail(cause, -1,
		    "this is a private key (%s); configure the public key",
		    label);
	rv = gnutls_pubkey_init(&key->pub);
	if (rv < 0)
		return jwt_fail(cause, -1, "%s", gnutls_strerror(rv));
	/* GnuTLS wants the PEM text NUL-terminated. */
	pem.data = jwt_malloc(len + 1);
	memcpy(pem.data, text, len);
	pem.data[len] = '\0';
	pem.size = (unsigned)len;
	if (strcmp(label, "PUBLIC KEY") == 0)
		rv = gnutls_pubkey_import(key->pub, &pem, GNUTLS_X509_FMT_PEM);
	else if (strcmp(label, "RSA PUBLIC KEY") == 0 && key->alg == JWT_RS256)
		rv = key_import_pkcs1(key->pub, &pem);
	else if (strcmp(label, "CERTIFICATE") == 0)
		rv = key_import_cert(key->pub, &pem);
	else {
		free(pem.data);
		return jwt_fail(cause, -1, "a PEM %s is no %s key", label,
		    jwt_alg_name(key->alg));
	}
	free(pem.data);
	if (rv < 0)
		return jwt_fail(cause, -1, "cannot read the PEM %s: %s", label,
		    gnutls_strerror(rv));
	return key_check_public(key, cause);
}

int
jwt_key_load(enum jwt_alg alg, const char *text, size_t len,
    struct jwt_key **keyp, char **cause)
{
	struct jwt_key *key;

	*keyp = NULL;
	if (alg < JWT_HS256 || alg > JWT_ES256)
		return jwt_fail(cause, -1, "unknown algorithm");
	if (text == NULL || len == 0)
		return jwt_fail(
		    cause, -1, "the %s key is empty", jwt_alg_name(alg));
	if (len > JWT_KEY_TEXT_MAX)
		return jwt_fail(cause, -1, "the %s key is longer than %d bytes",
		    jwt_alg_name(alg), JWT_KEY_TEXT_MAX);
	key = jwt_malloc(sizeof *key);
	memset(key, 0, sizeof *key);
	key->alg = alg;
	if (alg != JWT_HS256) {
		if (key_load_public(key, text, len, cause) != 0) {
			jwt_key_free(key);
			return -1;
		}
		*keyp = key;
		return 0;
	}
	/* A public key given as a secret is how algorithm confusion starts:
	 * whoever has it could sign tokens. */
	if (memmem(text, len, "-----BEGIN", 10) != NULL) {
		jwt_key_free(key);
		return jwt_fail(cause, -1,
		    "the HS256 secret is a PEM block; a public key is for RS256 or ES256");
	}
	if (len < JWT_HS256_SECRET_MIN) {
		jwt_key_free(key);
		return jwt_fail(cause, -1,
		    "the HS256 secret has %zu bytes; it needs at least %d", len,
		    JWT_HS256_SECRET_MIN);
	}
	hmac_sha256_set_key(&key->hmac, len, (const uint8_t *)text);
	key->sig_len = SHA256_DIGEST_SIZE;
	*keyp = key;
	return 0;
}

void
jwt_key_free(struct jwt_key *key)
{
	if (key == NULL)
		return;
	if (key->pub != NULL)
		gnutls_pubkey_deinit(key->pub);
	explicit_bzero(key, sizeof *key);
	free(key);
}

enum jwt_alg
jwt_key_alg(const struct jwt_key *key)
{
	return key->alg;
}

/* --- Decoding ----------------------------------------------------------- */

static int
b64url_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/*
 * Decodes s[n], base64url without padding, into a new buffer (the caller
 * frees it) of *outlen bytes, maybe 0; NULL if s is not exactly that. nettle's
 * decoder skips whitespace and wants padding, so the alphabet is checked
 * here first and the padding is fed after; with the padding, nettle
 * refuses stray bits in the last character, so every byte string has one
 * encoding only.
 */
static uint8_t *
b64url_decode(const char *s, size_t n, size_t *outlen)
{
	static const char pad[] = "==";
	struct base64_decode_ctx ctx;
	uint8_t *out, tail[BASE64_DECODE_LENGTH(2)];
	size_t i, done, more;

	if (n % 4 == 1)
		return NULL;
	for (i = 0; i < n; i++) {
		if (!b64url_char(s[i]))
			return NULL;
	}
	out = jwt_malloc(BASE64_DECODE_LENGTH(n));
	base64url_decode_init(&ctx);
	if (!base64_decode_update(&ctx, &done, out, n, s))
		goto fail;
	if (n % 4 != 0 &&
	    !base64_decode_update(&ctx, &more, tail, 4 - n % 4, pad))
		goto fail;
	if (!base64_decode_final(&ctx))
		goto fail;
	*outlen = done;
	return out;
fail:
	free(out);
	return NULL;
}

/*
 * Whether JSON text p[n] nests at most max deep. jansson's own limit is
 * far deeper; this one keeps a token cheap. Only brackets outside strings
 * count; text this misjudges is not JSON and jansson refuses it anyway.
 */
static int
json_depth_ok(const uint8_t *p, size_t n, int max)
{
	int depth = 0, in_string = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (in_string) {
			if (p[i] == '\\')
				i++;
			else if (p[i] == '"')
				in_string = 0;
			continue;
		}
		switch (p[i]) {
		case '"':
			in_string = 1;
			break;
		case '[':
		case '{':
			if (++depth > max)
				return 0;
			break;
		case ']':
		case '}':
			depth--;
			break;
		}
	}
	return 1;
}

/* Parses text[len], the decoded header or claims, into a JSON object in
 * *out. */
static int
part_parse(const uint8_t *text, size_t len, const char *what, json_t **out,
    char **cause)
{
	json_error_t error;
	json_t *v;

	*out = NULL;
	if (!json_depth_ok(text, len, JWT_JSON_DEPTH))
		return jwt_fail(cause, JWT_ERR_MALFORMED,
		    "the %s nests deeper than %d", what, JWT_JSON_DEPTH);
	/* Duplicate keys are refused: two readers of the same token must not
	 * see two different "alg" or "sub". */
	v = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, &error);
	/* jansson's message quotes the text: only its kind is told. */
	if (v == NULL && strncmp(error.text, "duplicate object key", 20) == 0)
		return jwt_fail(cause, JWT_ERR_MALFORMED,
		    "the %s has a duplicate key", what);
	if (v == NULL)
		return jwt_fail(cause, JWT_ERR_MALFORMED,
		    "the %s is not valid JSON (at byte %d)", what,
		    error.position);
	if (!json_is_object(v)) {
		json_decref(v);
		return jwt_fail(cause, JWT_ERR_MALFORMED,
		    "the %s is not a JSON object", what);
	}
	*out = v;
	return JWT_OK;
}

/* --- Verification ------------------------------------------------------- */

static int
header_check(const struct jwt_key *key, const json_t *header, char **cause)
{
	const char *alg, *want = jwt_alg_name(key->alg);
	enum jwt_alg named;

	alg = json_string_value(json_object_get(header, "alg"));
	if (alg == NULL)
		return jwt_fail(
		    cause, JWT_ERR_ALGORITHM, "the header has no alg");
	if (strcmp(alg, want) != 0) {
		/* Quote only names we know: the rest is the sender's text. */
		if (jwt_alg_from_name(alg, &named) == 0)
			return jwt_fail(cause, JWT_ERR_ALGORITHM,
			    "the token is %s; the key is %s", alg, want);
		if (strcasecmp(alg, "none") == 0)
			return jwt_fail(cause, JWT_ERR_ALGORITHM,
			    "an unsigned token (alg none)");
		return jwt_fail(cause, JWT_ERR_ALGORITHM,
		    "the token's alg is not %s", want);
	}
	if (json_object_get(header, "crit") != NULL)
		return jwt_fail(cause, JWT_ERR_UNSUPPORTED,
		    "the header has crit, and no extension is supported");
	return JWT_OK;
}

/* Whether sig[n] signs data[len] with key. */
static int
signature_ok(const struct jwt_key *key, const char *data, size_t len,
    const uint8_t *sig, size_t n)
{
	struct hmac_sha256_ctx ctx;
	uint8_t mac[SHA256_DIGEST_SIZE];
	gnutls_datum_t d, s, r, der;
	int ok, rv;

	if (n != key->sig_len)
		return 0;
	switch (key->alg) {
	case JWT_HS256:
		ctx = key->hmac;
		hmac_sha256_update(&ctx, len, (const uint8_t *)data);
		hmac_sha256_digest(&ctx, sizeof mac, mac);
		ok = memeql_sec(mac, sig, sizeof mac);
		explicit_bzero(&ctx, sizeof ctx);
		return ok;
	case JWT_RS256:
		d.data = (unsigned char *)data;
		d.size = (unsigned)len;
		s.data = (unsigned char *)sig;
		s.size = (unsigned)n;
		return gnutls_pubkey_verify_data2(
			   key->pub, GNUTLS_SIGN_RSA_SHA256, 0, &d, &s) >= 0;
	case JWT_ES256:
		/* JWS has r || s, 32 bytes each (RFC 7518 3.4); GnuTLS wants
		 * the DER of X9.62. */
		r.data = (unsigned char *)sig;
		r.size = 32;
		s.data = (unsigned char *)sig + 32;
		s.size = 32;
		if (gnutls_encode_rs_value(&der, &r, &s) < 0)
			return 0;
		d.data = (unsigned char *)data;
		d.size = (unsigned)len;
		rv = gnutls_pubkey_verify_data2(
		    key->pub, GNUTLS_SIGN_ECDSA_SHA256, 0, &d, &der);
		gnutls_free(der.data);
		return rv >= 0;
	}
	return 0;
}

/* Reads a time claim: 1 when it is a number (in *v), 0 when absent, -1
 * when it is something else. */
static int
claim_number(const json_t *claims, const char *name, double *v)
{
	const json_t *c = json_object_get(claims, name);

	if (c == NULL)
		return 0;
	if (!json_is_number(c))
		return -1;
	*v = json_number_value(c);
	return 1;
}

static int
claims_check_time(const json_t *claims, const struct jwt_rules *rules,
    uint64_t now_s, char **cause)
{
	double now = (double)now_s, leeway = rules->leeway_s;
	double exp = 0, nbf = 0, iat = 0;
	int has_exp, has_nbf, has_iat;

	has_exp = claim_number(claims, "exp", &exp);
	has_nbf = claim_number(claims, "nbf", &nbf);
	has_iat = claim_number(claims, "iat", &iat);
	if (has_exp < 0 || has_nbf < 0 || has_iat < 0)
		return jwt_fail(cause, JWT_ERR_CLAIMS, "%s is not a number",
		    has_exp < 0	      ? "exp"
			: has_nbf < 0 ? "nbf"
				      : "iat");
	if (has_exp == 0 && !rules->exp_optional)
		return jwt_fail(cause, JWT_ERR_CLAIMS, "the token has no exp");
	if (has_exp && now >= exp + leeway)
		return jwt_fail(cause, JWT_ERR_EXPIRED,
		    "the token expired %.0f s ago (leeway %u s)", now - exp,
		    rules->leeway_s);
	if (has_nbf && now + leeway < nbf)
		return jwt_fail(cause, JWT_ERR_NOT_YET_VALID,
		    "the token is valid in %.0f s (leeway %u s)", nbf - now,
		    rules->leeway_s);
	if (has_iat && now + leeway < iat)
		return jwt_fail(cause, JWT_ERR_NOT_YET_VALID,
		    "the token is issued %.0f s in the future (leeway %u s)",
		    iat - now, rules->leeway_s);
	return JWT_OK;
}

static int
claims_check_names(
    const json_t *claims, const struct jwt_rules *rules, char **cause)
{
	const json_t *aud, *v;
	const char *iss;
	size_t i;
	int found = 0;

	if (rules->issuer != NULL) {
		iss = json_string_value(json_object_get(claims, "iss"));
		if (iss == NULL)
			return jwt_fail(
			    cause, JWT_ERR_ISSUER, "the token has no iss");
		if (strcmp(iss, rules->issuer) != 0)
			return jwt_fail(cause, JWT_ERR_ISSUER,
			    "the token's iss is not the configured issuer");
	}
	aud = json_object_get(claims, "aud");
	if (rules->audience == NULL) {
		if (aud != NULL)
			return jwt_fail(cause, JWT_ERR_AUDIENCE,
			    "the token has an aud, and no audience is configured");
		return JWT_OK;
	}
	if (json_is_string(aud))
		found = strcmp(json_string_value(aud), rules->audience) == 0;
	else if (json_is_array(aud)) {
		json_array_foreach(aud, i, v)
		{
			if (!json_is_string(v))
				return jwt_fail(cause, JWT_ERR_AUDIENCE,
				    "the token's aud holds a non-string");
			if (strcmp(json_string_value(v), rules->audience) == 0)
				found = 1;
		}
	} else if (aud == NULL)
		return jwt_fail(
		    cause, JWT_ERR_AUDIENCE, "the token has no aud");
	else
		return jwt_fail(cause, JWT_ERR_AUDIENCE,
		    "the token's aud is neither a string nor an array");
	if (!found)
		return jwt_fail(cause, JWT_ERR_AUDIENCE,
		    "the token is not for the configured audience");
	return JWT_OK;
}

int
jwt_verify(const struct jwt_key *key, const char *token, size_t len,
    const struct jwt_rules *rules, uint64_t now_s, json_t **claims_out,
    char **cause)
{
	static const struct jwt_rules defaults;
	const char *dot1, *dot2, *sig_text;
	json_t *header = NULL, *claims = NULL;
	uint8_t *header_text, *claims_text, *sig;
	size_t max, header_len, claims_len, sig_len;
	int rv;

	if (claims_out != NULL)
		*claims_out = NULL;
	if (rules == NULL)
		rules = &defaults;
	max = rules->max_len != 0 ? rules->max_len : JWT_TOKEN_MAX;
	if (max > JWT_LEN_CEILING)
		max = JWT_LEN_CEILING;
	if (len > max)
		return jwt_fail(cause, JWT_ERR_TOO_LARGE,
		    "the token has %zu bytes; the limit is %zu", len, max);
	if (token == NULL || len == 0)
		return jwt_fail(cause, JWT_ERR_MALFORMED, "the token is empty");

	/* header.payload.signature: exactly two dots. An empty header or
	 * payload is not JSON; an empty signature has the wrong length. */
	dot1 = memchr(token, '.', len);
	dot2 = dot1 == NULL
	    ? NULL
	    : memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
	if (dot2 == NULL)
		return jwt_fail(cause, JWT_ERR_MALFORMED,
		    "the token is not three parts separated by dots");
	sig_text = dot2 + 1;
	sig_len = len - (size_t)(sig_text - token);
	if (memchr(sig_text, '.', sig_len) != NULL)
		return jwt_fail(cause, JWT_ERR_MALFORMED,
		    "the token has more than three parts");

	/* Every part is decoded before anything else is looked at, so that
	 * a token that is not base64url is malformed whatever its header. */
	header_text = b64url_decode(token, (size_t)(dot1 - token), &header_len);
	claims_text = b64url_decode(
	    dot1 + 1, (size_t)(dot2 - dot1 - 1), &claims_len);
	sig = b64url_decode(sig_text, sig_len, &sig_len);
	if (header_text == NULL || claims_text == NULL || sig == NULL) {
		rv = jwt_fail(cause, JWT_ERR_MALFORMED,
		    "the %s is not base64url",
		    header_text == NULL	      ? "header"
			: claims_text == NULL ? "claims set"
					      : "signature");
		goto out;
	}

	rv = part_parse(header_text, header_len, "header", &header, cause);
	if (rv != JWT_OK)
		goto out;
	rv = header_check(key, header, cause);
	if (rv != JWT_OK)
		goto out;
	if (!signature_ok(key, token, (size_t)(dot2 - token), sig, sig_len)) {
		rv = jwt_fail(cause, JWT_ERR_SIGNATURE,
		    "the signature does not verify with the %s key",
		    jwt_alg_name(key->alg));
		goto out;
	}

	/* Authentic: only now are the claims parsed. */
	rv = part_parse(claims_text, claims_len, "claims set", &claims, cause);
	if (rv != JWT_OK)
		goto out;
	rv = claims_check_time(claims, rules, now_s, cause);
	if (rv == JWT_OK)
		rv = claims_check_names(claims, rules, cause);
	if (rv == JWT_OK && claims_out != NULL) {
		*claims_out = claims;
		claims = NULL;
	}
out:
	json_decref(claims);
	json_decref(header);
	free(header_text);
	free(claims_text);
	free(sig);
	return rv;
}

int
jwt_claim_time(const json_t *claims, const char *name, uint64_t *out)
{
	const json_t *c = json_object_get(claims, name);
	json_int_t i;
	double d;

	if (json_is_integer(c)) {
		i = json_integer_value(c);
		*out = i < 0 ? 0 : (uint64_t)i;
		return 0;
	}
	if (json_is_real(c)) {
		d = json_real_value(c);
		if (d < 1)
			*out = 0;
		else if (d >= 18446744073709551615.0)
			*out = UINT64_MAX;
		else
			*out = (uint64_t)d;
		return 0;
	}
	return -1;
}
