/*
 * auth-jwt.c: admits connections that carry a JSON Web Token signed by
 * the site parley is embedded in, as the account the token names. The
 * token is read, before the upgrade, from one place: a query parameter
 * (token_from = "query:NAME"), the Authorization header ("header", as
 * "Bearer TOKEN") or a cookie ("cookie:NAME"). It is verified with the
 * one configured key and algorithm (jwt.c); its subject (or another
 * claim) becomes the account, its "name" the name shown, a configured
 * claim the roles. A connection whose token expires is told a minute
 * before and closed (4003) unless the client presents a fresh token
 * (refresh_token). A request without a token is a guest unless
 * required = true; one with a bad token is refused with HTTP 401. The
 * key is read again on SIGHUP, and the old one kept if the new one does
 * not load.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <parley/plugin.h>

#include "jwt.h"

#define AJ_KEY_FILE_MAX (64 * 1024)
#define AJ_ROLES_MAX 8
#define AJ_ROLE_MAX 32
#define AJ_NAME_MAX 32

static const struct parley_host *host;

/* The options in force. Strings point into the host's options, which
 * stay valid until fini. */
static struct aj_options {
	struct jwt_key *key;
	struct jwt_rules rules;
	char where; /* 'q' query, 'h' header, 'c' cookie */
	const char *where_name; /* the parameter or cookie */
	const char *account_claim;
	const char *name_claim;
	const char *roles_claim; /* NULL: none */
	bool required;
} aj;

/* Reads key_file, at most AJ_KEY_FILE_MAX bytes; NULL (logged) on error. */
static char *
aj_read_file(parley_ctx *ctx, const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;

	if (f == NULL) {
		host->log_printf(ctx, PARLEY_LOG_ERROR, "key_file %s: %s", path,
		    strerror(errno));
		return NULL;
	}
	buf = malloc(AJ_KEY_FILE_MAX + 1);
	n = buf ? fread(buf, 1, AJ_KEY_FILE_MAX + 1, f) : 0;
	fclose(f);
	if (buf == NULL || n == 0 || n > AJ_KEY_FILE_MAX) {
		host->log_printf(ctx, PARLEY_LOG_ERROR,
		    "key_file %s: empty or "
		    "larger than %d bytes",
		    path, AJ_KEY_FILE_MAX);
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

/* Reads the options into o; 0, or -1 (logged) when they do not make a
 * working configuration. */
static int
aj_load(parley_ctx *ctx, struct aj_options *o)
{
	const char *alg_name = NULL, *key = NULL, *key_file = NULL;
	const char *from = "query:token";
	char *text = NULL, *cause = NULL;
	enum jwt_alg alg;
	int64_t leeway = 30;
	size_t len = 0;
	int rc;

	memset(o, 0, sizeof *o);
	o->account_claim = "sub";
	o->name_claim = "name";
	if (host->option_string(ctx, "algorithm", &alg_name) == -1 ||
	    host->option_string(ctx, "key", &key) == -1 ||
	    host->option_string(ctx, "key_file", &key_file) == -1 ||
	    host->option_string(ctx, "token_from", &from) == -1 ||
	    host->option_string(ctx, "issuer", &o->rules.issuer) == -1 ||
	    host->option_string(ctx, "audience", &o->rules.audience) == -1 ||
	    host->option_string(ctx, "account_claim", &o->account_claim) ==
		-1 ||
	    host->option_string(ctx, "name_claim", &o->name_claim) == -1 ||
	    host->option_string(ctx, "roles_claim", &o->roles_claim) == -1 ||
	    host->option_int(ctx, "leeway", &leeway) == -1 ||
	    host->option_bool(ctx, "required", &o->required) == -1)
		return -1;
	if (alg_name == NULL || jwt_alg_from_name(alg_name, &alg) == -1) {
		host->log_printf(ctx, PARLEY_LOG_ERROR,
		    "option algorithm must "
		    "be \"HS256\", \"RS256\" or \"ES256\"");
		return -1;
	}
	if ((key == NULL) == (key_file == NULL)) {
		host->log_printf(ctx, PARLEY_LOG_ERROR,
		    "give exactly one of "
		    "the options key and key_file");
		return -1;
	}
	if (leeway < 0 || leeway > 600) {
		host->log_printf(ctx, PARLEY_LOG_ERROR,
		    "option leeway is 0 to "
		    "600 seconds");
		return -1;
	}
	o->rules.leeway_s = (uint32_t)leeway;
	if (strncmp(from, "query:", 6) == 0 && from[6] != '\0') {
		o->where = 'q';
		o->where_name = from + 6;
	} else if (strncmp(from, "cookie:", 7) == 0 && from[7] != '\0') {
		o->where = 'c';
		o->where_name = from + 7;
	} else if (strcmp(from, "header") == 0)
		o->where = 'h';
	else {
		host->log_printf(ctx, PARLEY_LOG_ERROR,
		    "option token_from is "
		    "\"query:NAME\", \"header\" or \"cookie:NAME\"");
		return -1;
	}
	if (key_file != NULL &&
	    (text = aj_read_file(ctx, key_file, &len)) == NULL)
		return -1;
	rc = jwt_key_load(
	    alg, text ? text : key, text ? len : strlen(key), &o->key, &cause);
	if (text != NULL) {
		memset(text, 0, len); /* a shared secret, maybe */
		free(text);
	}
	if (rc == -1) {
		host->log_printf(ctx, PARLEY_LOG_ERROR,
		    "the key does not load: "
		    "%s",
		    cause ? cause : "?");
		free(cause);
		return -1;
	}
	return 0;
}

/* The token of a request, without "Bearer " and spaces; NULL when the
 * request carries none. */
static const char *
aj_token(parley_ctx *ctx, const parley_request *req, size_t *len)
{
	const char *t;

	if (aj.where == 'q')
		t = host->request_param(ctx, req, aj.where_name);
	else if (aj.where == 'c')
		t = host->request_cookie(ctx, req, aj.where_name);
	else {
		t = host->request_header(ctx, req, "Authorization");
		if (t != NULL && strncmp(t, "Bearer ", 7) != 0)
			t = NULL;
		else if (t != NULL)
			t += 7;
	}
	if (t == NULL)
		return NULL;
	while (*t == ' ')
		t++;
	*len = strlen(t);
	while (*len > 0 && t[*len - 1] == ' ')
		(*len)--;
	return *len > 0 ? t : NULL;
}

/* The roles a token's claims give, at most AJ_ROLES_MAX, in out (the
 * strings are the claims'). */
static void
aj_roles(const json_t *claims, const char **out)
{
	const json_t *v = aj.roles_claim
	    ? json_object_get(claims, aj.roles_claim)
	    : NULL;
	size_t n = 0, i;
	json_t *r;

	if (json_is_string(v) && json_string_length(v) <= AJ_ROLE_MAX &&
	    json_string_length(v) > 0)
		out[n++] = json_string_value(v);
	else if (json_is_array(v)) {
		json_array_foreach(v, i, r)
		{
			if (n < AJ_ROLES_MAX && json_is_string(r) &&
			    json_string_length(r) > 0 &&
			    json_string_length(r) <= AJ_ROLE_MAX)
				out[n++] = json_string_value(r);
		}
	}
	out[n] = NULL;
}

/* Verifies a token; the claims (a new reference) or NULL with the reason
 * in deny (static text). */
static json_t *
aj_verify(parley_ctx *ctx, const char *token, size_t len, const char **deny)
{
	json_t *claims = NULL;
	char *cause = NULL;
	int rc = jwt_verify(aj.key, token, len, &aj.rules,
	    host->wall_ms(ctx) / 1000, &claims, &cause);

	if (rc != JWT_OK) {
		/* The cause never quotes the token or the key. */
		host->log_printf(ctx, PARLEY_LOG_INFO, "token refused: %s (%s)",
		    jwt_status_name(rc), cause ? cause : "");
		free(cause);
		*deny = jwt_status_name(rc);
		return NULL;
	}
	return claims;
}

static int
aj_deny(struct parley_event *ev, const char *why)
{
	static char reason[96];

	snprintf(reason, sizeof reason, "the token is not valid: %s", why);
	ev->deny_code = PARLEY_ERR_UNAUTHORIZED;
	ev->deny_reason = reason;
	return PARLEY_DENY;
}

static int
aj_on_connect(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	const char *token, *deny = NULL, *account, *name,
			   *roles[AJ_ROLES_MAX + 1];
	uint64_t exp;
	json_t *claims, *a, *n;
	size_t len = 0;
	int v = PARLEY_PASS;

	(void)arg;
	if (ev->request == NULL)
		return PARLEY_PASS;
	if ((token = aj_token(ctx, ev->request, &len)) == NULL) {
		if (!aj.required)
			return PARLEY_PASS; /* a guest */
		ev->deny_code = PARLEY_ERR_UNAUTHORIZED;
		ev->deny_reason = "a token is required";
		return PARLEY_DENY;
	}
	if ((claims = aj_verify(ctx, token, len, &deny)) == NULL)
		return aj_deny(ev, deny);
	a = json_object_get(claims, aj.account_claim);
	n = json_object_get(claims, aj.name_claim);
	account = json_is_string(a) ? json_string_value(a) : NULL;
	name = json_is_string(n) && json_string_length(n) <= AJ_NAME_MAX
	    ? json_string_value(n)
	    : NULL;
	aj_roles(claims, roles);
	if (account == NULL ||
	    host->client_admit(ctx, ev, account, name, roles) != PARLEY_OK)
		v = aj_deny(ev, "its account is not a valid username");
	else if (jwt_claim_time(claims, "exp", &exp) == 0)
		host->client_expires(ctx, ev->client, exp + aj.rules.leeway_s);
	json_decref(claims);
	return v;
}

/* refresh_token: a fresh token for the same account moves the expiry. */
static int
aj_on_token(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	const char *deny = NULL, *mine = host->client_account(ctx, ev->client);
	json_t *claims, *a;
	uint64_t exp;
	int v;

	(void)arg;
	if ((claims = aj_verify(ctx, ev->text, ev->text_len, &deny)) == NULL)
		return aj_deny(ev, deny);
	a = json_object_get(claims, aj.account_claim);
	if (mine == NULL || !json_is_string(a) ||
	    strcmp(json_string_value(a), mine) != 0)
		v = aj_deny(ev, "it is for another account");
	else {
		if (jwt_claim_time(claims, "exp", &exp) == -1)
			exp = 0;
		host->client_expires(
		    ctx, ev->client, exp ? exp + aj.rules.leeway_s : 0);
		v = PARLEY_STOP;
	}
	json_decref(claims);
	return v;
}

/* SIGHUP: the options and key anew; the old ones stay if they fail. */
static int
aj_on_reload(parley_ctx *ctx, struct parley_event *ev, void *arg)
{
	struct aj_options next;

	(void)ev;
	(void)arg;
	if (aj_load(ctx, &next) == -1) {
		host->log_printf(ctx, PARLEY_LOG_ERROR,
		    "reload: keeping the "
		    "key and options in force");
		return PARLEY_PASS;
	}
	jwt_key_free(aj.key);
	aj = next;
	host->log_printf(ctx, PARLEY_LOG_INFO, "key and options reloaded");
	return PARLEY_PASS;
}

static int
aj_init(parley_ctx *ctx, const struct parley_host *h)
{
	host = h;
	if (h->abi_minor < 3 || !PARLEY_HOST_HAS(h, client_expires)) {
		h->log_printf(ctx, PARLEY_LOG_ERROR,
		    "needs a server with "
		    "plugin ABI 1.3 or later");
		return -1;
	}
	if (h->flags & PARLEY_HOST_INFO_ONLY)
		memset(&aj, 0, sizeof aj);
	else if (aj_load(ctx, &aj) == -1)
		return -1;
	/* Early in the chain: other hooks then see the identity. */
	if (h->hook_add(ctx, PARLEY_EV_CONNECT, 1000, aj_on_connect, NULL) ==
		0 ||
	    h->hook_add(ctx, PARLEY_EV_TOKEN, 1000, aj_on_token, NULL) == 0 ||
	    h->hook_add(ctx, PARLEY_EV_RELOAD, 0, aj_on_reload, NULL) == 0)
		return -1;
	return 0;
}

static void
aj_fini(parley_ctx *ctx)
{
	(void)ctx;
	jwt_key_free(aj.key);
	memset(&aj, 0, sizeof aj);
}

const struct parley_plugin parley_plugin = {
	.abi_major = PARLEY_PLUGIN_ABI_MAJOR,
	.abi_minor = PARLEY_PLUGIN_ABI_MINOR,
	.size = sizeof(struct parley_plugin),
	.name = "auth-jwt",
	.version = PACKAGE_VERSION,
	.description = "admits connections with a signed token (JWT)",
	.init = aj_init,
	.fini = aj_fini,
};
