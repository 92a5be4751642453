/*
 * parleyctl: the command-line face of parleyd's admin API. It finds the
 * admin listener (PARLEY_ADMIN, -a, or admin_listen of the configuration
 * file, read with parleyd's own reader) and a token (PARLEY_ADMIN_TOKEN,
 * or the first line of the token file: -t, admin_token_file of the
 * configuration, or the default beside it), speaks HTTP/1.1 over TCP or
 * the unix socket itself, and prints the answer as a table for people or
 * as the server's JSON (--json) for scripts. The exit status says what
 * happened (parleyctl(8)).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <nettle/sha2.h>

#include "parley.h"

#define CTL_OK 0
#define CTL_FAILED 1 /* the server refused the request */
#define CTL_USAGE 2 /* wrong arguments or configuration */
#define CTL_NOT_FOUND 3 /* no such room, user or account */
#define CTL_DENIED 4 /* 401 or 429: the token */
#define CTL_UNREACHABLE 5 /* no server, or no HTTP from it */

#define CTL_TIMEOUT_MS 30000
#define CTL_REPLY_MAX (64u * 1024 * 1024)

static bool ctl_json;
static const char *ctl_prog = "parleyctl";

static void
ctl_usage(FILE *f)
{
	fprintf(f,
	    "usage: parleyctl [-c FILE] [-a ADDRESS] [-t TOKEN_FILE] [--json] "
	    "COMMAND [ARGS]\n"
	    "\n"
	    "  status                       the server: version, uptime, "
	    "load, health\n"
	    "  rooms                        every room\n"
	    "  room NAME                    one room and its members\n"
	    "  users                        every connected user\n"
	    "  create ROOM                  create a room\n"
	    "  delete ROOM [REASON]         delete a room (members are "
	    "kicked)\n"
	    "  kick ROOM USER [REASON]      remove a user from a room\n"
	    "  announce [-r ROOM] TEXT...   a notice to a room or to "
	    "everyone\n"
	    "  say ROOM TEXT...             post in a room as the server\n"
	    "  reload                       reload the configuration "
	    "(SIGHUP)\n"
	    "  ban [-t SECONDS] ROOM USER [REASON]   ban (for good without "
	    "-t)\n"
	    "  mute [-t SECONDS] ROOM USER [REASON]  mute\n"
	    "  unban ROOM USER | unmute ROOM USER\n"
	    "  bans [ROOM]                  the bans and mutes in force\n"
	    "  role ROOM USER moderator|none\n"
	    "  topic ROOM [TEXT...]         set (or clear) a room's topic\n"
	    "  delete-message ROOM SEQ      delete a message\n"
	    "  audit [-n COUNT]             the newest audit records\n"
	    "  account add NAME             create an account (password "
	    "asked, or stdin)\n"
	    "  account password NAME        give an account a new password\n"
	    "  account delete NAME          delete an account\n"
	    "  account roles NAME [ROLE...] set an account's server roles "
	    "(operator;\n"
	    "                               none given: takes them away)\n"
	    "  token NAME                   make a new token and its "
	    "admin_tokens entry\n"
	    "\n"
	    "Exit status: 0 done, 1 refused by the server, 2 usage, "
	    "3 not found,\n"
	    "4 token refused, 5 server unreachable.\n");
}

static void __attribute__((format(printf, 1, 2))) ctl_warn(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", ctl_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- Where and who */

struct ctl_target {
	char *unix_path; /* or */
	char *host;
	char *port;
	char *token;
};

/* ADDRESS: "/path", "unix:/path", "HOST:PORT", "[V6]:PORT", with an
 * optional "http://" and trailing "/". */
static int
ctl_parse_address(const char *text, struct ctl_target *t)
{
	char *s = xstrdup(text), *p = s, *colon;
	size_t n;

	if (strncmp(p, "http://", 7) == 0)
		p += 7;
	else if (strncmp(p, "unix:", 5) == 0)
		p += 5;
	n = strlen(p);
	if (p[0] != '/' && n > 0 && p[n - 1] == '/')
		p[--n] = '\0';
	if (p[0] == '/') {
		t->unix_path = xstrdup(p);
		free(s);
		return 0;
	}
	colon = strrchr(p, ':');
	if (colon == NULL || colon == p || colon[1] == '\0') {
		free(s);
		return -1;
	}
	*colon = '\0';
	if (p[0] == '[' && colon[-1] == ']') {
		p++;
		colon[-1] = '\0';
	}
	t->host = xstrdup(p);
	t->port = xstrdup(colon + 1);
	free(s);
	return 0;
}

/* The first line of path, without its end of line; NULL with errno. */
static char *
ctl_read_line(const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	if (f == NULL)
		return NULL;
	n = getline(&line, &cap, f);
	fclose(f);
	if (n <= 0) {
		free(line);
		errno = ENODATA;
		return NULL;
	}
	while (n > 0 &&
	    (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
		line[--n] = '\0';
	return line;
}

static int
ctl_target(const char *config_path, bool config_given, const char *address,
    const char *token_file, struct ctl_target *t)
{
	struct config c;
	char *cause = NULL, *file = NULL;
	const char *env;
	bool loaded = false;

	memset(t, 0, sizeof *t);
	config_defaults(&c);
	if (access(config_path, F_OK) == 0 || config_given) {
		if (config_load(&c, config_path, &cause) == -1) {
			ctl_warn("%s", cause);
			free(cause);
			config_free(&c);
			return -1;
		}
		loaded = true;
	}
	if (address == NULL)
		address = getenv("PARLEY_ADMIN");
	if (address == NULL)
		address = c.admin_listen;
	if (address == NULL) {
		ctl_warn("no admin address: set admin_listen in %s, "
			 "PARLEY_ADMIN or -a",
		    config_path);
		config_free(&c);
		return -1;
	}
	if (ctl_parse_address(address, t) == -1) {
		ctl_warn("not an admin address: %s", address);
		config_free(&c);
		return -1;
	}
	if ((env = getenv("PARLEY_ADMIN_TOKEN")) != NULL && *env != '\0' &&
	    token_file == NULL) {
		t->token = xstrdup(env);
		config_free(&c);
		return 0;
	}
	if (token_file == NULL)
		token_file = getenv("PARLEY_ADMIN_TOKEN_FILE");
	if (token_file == NULL && loaded && c.admin_token_file != NULL)
		token_file = c.admin_token_file;
	if (token_file == NULL) {
		const char *slash = strrchr(config_path, '/');
		xasprintf(&file, "%.*s/admin.token",
		    slash != NULL ? (int)(slash - config_path) : 1,
		    slash != NULL ? config_path : ".");
		token_file = file;
	}
	t->token = ctl_read_line(token_file);
	if (t->token == NULL) {
		ctl_warn("no token: %s: %s (or set PARLEY_ADMIN_TOKEN)",
		    token_file, strerror(errno));
		free(file);
		config_free(&c);
		return -1;
	}
	free(file);
	config_free(&c);
	return 0;
}

/* ---- HTTP/1.1, one request per connection */

static int
ctl_connect(const struct ctl_target *t)
{
	int fd = -1;

	if (t->unix_path != NULL) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		if (strlen(t->unix_path) >= sizeof sun.sun_path) {
			errno = ENAMETOOLONG;
			return -1;
		}
		strcpy(sun.sun_path, t->unix_path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd != -1 &&
		    connect(fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		return fd;
	} else {
		struct addrinfo hints = { .ai_family = AF_UNSPEC,
			.ai_socktype = SOCK_STREAM,
			.ai_flags = AI_NUMERICSERV };
		struct addrinfo *res, *ai;
		int e = ECONNREFUSED;

		if (getaddrinfo(t->host, t->port, &hints, &res) != 0) {
			errno = EHOSTUNREACH;
			return -1;
		}
		for (ai = res; ai != NULL; ai = ai->ai_next) {
			fd = socket(ai->ai_family,
			    ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
			if (fd == -1)
				continue;
			if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
				break;
			e = errno;
			close(fd);
			fd = -1;
		}
		freeaddrinfo(res);
		if (fd == -1)
			errno = e;
		return fd;
	}
}

/* Waits for fd to be ready for events within the deadline. */
static int
ctl_wait(int fd, short events, uint64_t deadline)
{
	struct timespec ts;
	struct pollfd p = { .fd = fd, .events = events };
	uint64_t now;
	int rc;

	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		now = (uint64_t)ts.tv_sec * 1000 +
		    (uint64_t)ts.tv_nsec / 1000000;
		if (now >= deadline) {
			errno = ETIMEDOUT;
			return -1;
		}
		rc = poll(&p, 1, (int)(deadline - now));
		if (rc > 0)
			return 0;
		if (rc == -1 && errno != EINTR)
			return -1;
	}
}

struct ctl_reply {
	int status;
	json_t *json; /* the body, NULL when it is not JSON */
};

/* Sends METHOD path with body (may be NULL) and reads the answer; -1
 * (with a message said) when the server cannot be reached or does not
 * answer HTTP. */
static int
ctl_http(const struct ctl_target *t, const char *method, const char *path,
    const json_t *body, struct ctl_reply *r)
{
	char *req, *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	char *in = NULL, *head_end, *p;
	size_t len = 0, cap = 0, off = 0, want;
	struct timespec ts;
	uint64_t deadline;
	int fd, n;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	deadline = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 +
	    CTL_TIMEOUT_MS;
	r->status = 0;
	r->json = NULL;
	if ((fd = ctl_connect(t)) == -1) {
		ctl_warn("cannot connect to %s%s%s: %s",
		    t->unix_path ? t->unix_path : t->host,
		    t->unix_path ? "" : ":", t->unix_path ? "" : t->port,
		    strerror(errno));
		free(text);
		return -1;
	}
	if (text != NULL)
		n = xasprintf(&req,
		    "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
		    "User-Agent: parleyctl/%s\r\nAccept: application/json\r\n"
		    "Connection: close\r\nContent-Type: application/json\r\n"
		    "Content-Length: %zu\r\n\r\n%s",
		    method, path, t->host != NULL ? t->host : "localhost",
		    t->token, PACKAGE_VERSION, strlen(text), text);
	else
		n = xasprintf(&req,
		    "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
		    "User-Agent: parleyctl/%s\r\nAccept: application/json\r\n"
		    "Connection: close\r\n\r\n",
		    method, path, t->host != NULL ? t->host : "localhost",
		    t->token, PACKAGE_VERSION);
	free(text);
	while (off < (size_t)n) {
		ssize_t w;
		if (ctl_wait(fd, POLLOUT, deadline) == -1)
			goto io;
		w = send(fd, req + off, (size_t)n - off, MSG_NOSIGNAL);
		if (w == -1 && errno != EINTR)
			goto io;
		if (w > 0)
			off += (size_t)w;
	}
	explicit_bzero(req, (size_t)n);
	free(req);
	req = NULL;
	for (;;) {
		ssize_t got;
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			in = xrealloc(in, cap + 1);
		}
		if (ctl_wait(fd, POLLIN, deadline) == -1)
			goto io;
		got = recv(fd, in + len, cap - len, 0);
		if (got == -1 && errno == EINTR)
			continue;
		if (got == -1)
			goto io;
		if (got == 0)
			break;
		len += (size_t)got;
		if (len > CTL_REPLY_MAX) {
			errno = EMSGSIZE;
			goto io;
		}
	}
	close(fd);
	if (in == NULL)
		goto bad;
	in[len] = '\0';
	if (sscanf(in, "HTTP/1.%*1[01] %3d", &r->status) != 1 ||
	    (head_end = strstr(in, "\r\n\r\n")) == NULL)
		goto bad;
	p = head_end + 4;
	want = len - (size_t)(p - in);
	{
		/* Content-Length bounds the body when it is there. */
		char *cl = strcasestr(in, "\r\nContent-Length:");
		if (cl != NULL && cl < head_end) {
			size_t v = strtoul(cl + 17, NULL, 10);
			if (v < want)
				want = v;
		}
	}
	r->json = json_loadb(p, want, 0, NULL);
	free(in);
	return 0;
io:
	ctl_warn("talking to the server: %s", strerror(errno));
	if (req != NULL)
		free(req);
	free(in);
	close(fd);
	return -1;
bad:
	ctl_warn("the server's answer is not HTTP");
	free(in);
	return -1;
}

/* ---- Output */

static const char *
ctl_str(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : "-";
}

static long long
ctl_int(const json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

static void
ctl_print_status(const json_t *j)
{
	const json_t *lag = json_object_get(j, "loop_lag_ms");
	const json_t *hist = json_object_get(j, "history");
	const json_t *plugins = json_object_get(j, "plugins");
	const char *k;
	json_t *v;

	printf("status:       %s\n", ctl_str(j, "status"));
	printf("version:      %s (protocol %lld.%lld)\n", ctl_str(j, "version"),
	    ctl_int(j, "protocol"), ctl_int(j, "minor"));
	printf("uptime:       %llds\n", ctl_int(j, "uptime"));
	printf("connections:  %lld\n", ctl_int(j, "connections"));
	printf("rooms:        %lld\n", ctl_int(j, "rooms"));
	printf("loop lag:     %lld ms (max %lld ms)\n", ctl_int(lag, "last"),
	    ctl_int(lag, "max"));
	printf("history:      %s%s\n", ctl_str(hist, "store"),
	    json_is_true(json_object_get(hist, "enabled")) ? "" : " (off)");
	printf("accounts:     %s\n", ctl_str(j, "accounts"));
	json_object_foreach((json_t *)plugins, k, v)
	{
		printf("plugin %s: %s%s%s\n", k,
		    json_is_true(json_object_get(v, "ok")) ? "ok" : "degraded",
		    json_is_string(json_object_get(v, "detail")) ? ": " : "",
		    json_is_string(json_object_get(v, "detail"))
			? ctl_str(v, "detail")
			: "");
	}
}

static void
ctl_print_rooms(const json_t *j)
{
	size_t i;
	json_t *r;

	printf("%-32s %8s %10s  %s\n", "ROOM", "MEMBERS", "SEQ", "OWNER");
	json_array_foreach(json_object_get(j, "rooms"), i, r)
	{
		printf("%-32s %8lld %10lld  %s\n", ctl_str(r, "name"),
		    ctl_int(r, "members"), ctl_int(r, "seq"),
		    ctl_str(r, "owner"));
	}
}

static void
ctl_print_room(const json_t *j)
{
	size_t i;
	json_t *m;

	printf("room:    %s\nmembers: %lld\nseq:     %lld\nowner:   %s\n",
	    ctl_str(j, "name"), ctl_int(j, "members"), ctl_int(j, "seq"),
	    ctl_str(j, "owner"));
	if (json_array_size(json_object_get(j, "member_list")) == 0)
		return;
	printf("\n%-32s  %s\n", "USER", "ACCOUNT");
	json_array_foreach(json_object_get(j, "member_list"), i, m)
	{
		printf("%-32s  %s\n", ctl_str(m, "username"),
		    ctl_str(m, "account"));
	}
}

static void
ctl_print_users(const json_t *j)
{
	size_t i, k;
	json_t *u, *r;

	printf("%-24s %-16s %-24s %-20s %s\n", "USER", "ACCOUNT", "ADDRESS",
	    "CONNECTED", "ROOMS");
	json_array_foreach(json_object_get(j, "users"), i, u)
	{
		time_t since = (time_t)(ctl_int(u, "connected_since") / 1000);
		char when[32];
		struct tm tm;

		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ",
		    gmtime_r(&since, &tm));
		printf("%-24s %-16s %-24s %-20s ", ctl_str(u, "username"),
		    ctl_str(u, "account"), ctl_str(u, "address"), when);
		json_array_foreach(json_object_get(u, "rooms"), k, r)
		{
			printf("%s%s", k ? "," : "", json_string_value(r));
		}
		putchar('\n');
	}
}

static void
ctl_print_restrictions(const json_t *list, const char *what)
{
	size_t i;
	json_t *b;

	json_array_foreach(list, i, b)
	{
		long long until = ctl_int(b, "until");
		char when[32] = "for good";
		time_t t = (time_t)until;
		struct tm tm;

		if (until != 0)
			strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ",
			    gmtime_r(&t, &tm));
		printf("%-5s %-24s %-24s %-20s %-16s %s\n", what,
		    ctl_str(b, "room"), ctl_str(b, "name"), when,
		    ctl_str(b, "by"), ctl_str(b, "reason"));
	}
}

/* An account's server roles: "NAME: operator" or "NAME: none". */
static void
ctl_print_roles(const json_t *j)
{
	const json_t *roles = json_object_get(j, "roles"), *v;
	size_t i;

	printf("%s:", ctl_str(j, "name"));
	json_array_foreach(roles, i, v) printf(" %s", json_string_value(v));
	printf("%s\n", json_array_size(roles) == 0 ? " none" : "");
}

static void
ctl_print_bans(const json_t *j)
{
	printf("%-5s %-24s %-24s %-20s %-16s %s\n", "KIND", "ROOM", "USER",
	    "UNTIL", "BY", "REASON");
	ctl_print_restrictions(json_object_get(j, "bans"), "ban");
	ctl_print_restrictions(json_object_get(j, "mutes"), "mute");
}

static void
ctl_print_audit(const json_t *j)
{
	size_t i;
	json_t *r;

	printf("%-20s %-20s %-16s %-20s %-16s %s\n", "TIME", "ACTOR", "ACTION",
	    "TARGET", "ROOM", "REASON");
	json_array_foreach(json_object_get(j, "audit"), i, r)
	{
		time_t t = (time_t)ctl_int(r, "time");
		char when[32];
		struct tm tm;

		strftime(
		    when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
		printf("%-20s %-20s %-16s %-20s %-16s %s\n", when,
		    ctl_str(r, "actor"), ctl_str(r, "action"),
		    ctl_str(r, "target"), ctl_str(r, "room"),
		    ctl_str(r, "reason"));
	}
}

/* The exit status for an HTTP status and prints what went wrong. */
static int
ctl_outcome(const struct ctl_reply *r)
{
	const char *code = ctl_str(r->json, "error");
	const char *msg = json_string_value(
	    json_object_get(r->json, "message"));

	if (r->status >= 200 && r->status < 300)
		return CTL_OK;
	if (ctl_json && r->json != NULL) {
		char *t = json_dumps(r->json, JSON_COMPACT);
		puts(t);
		free(t);
	}
	if (r->status == 401)
		ctl_warn("the server refused the token");
	else if (r->status == 429)
		ctl_warn("too many wrong tokens from here; wait a while");
	else
		ctl_warn("%s%s%s", code, msg ? ": " : "", msg ? msg : "");
	switch (r->status) {
	case 401:
	case 429:
		return CTL_DENIED;
	case 404:
		return CTL_NOT_FOUND;
	default:
		return CTL_FAILED;
	}
}

/* ---- Commands */

/* "/admin/v1/rooms/NAME" with NAME percent-encoded. */
static char *
ctl_path(const char *prefix, const char *name, const char *suffix)
{
	size_t n = strlen(name);
	char *enc = xmalloc(3 * n + 1), *out, *w = enc;
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || strchr("-._~", ch) != NULL)
			*w++ = (char)ch;
		else {
			*w++ = '%';
			*w++ = hex[ch >> 4];
			*w++ = hex[ch & 15];
		}
	}
	*w = '\0';
	xasprintf(&out, "%s%s%s", prefix, enc, suffix ? suffix : "");
	free(enc);
	return out;
}

/* A password: asked twice on the terminal without echo, or the first
 * line of standard input when that is not a terminal. NULL (said) when
 * there is none or the two differ. */
static char *
ctl_password(void)
{
	char *pw = NULL, *again = NULL;
	size_t cap = 0, cap2 = 0;
	ssize_t n;
	FILE *tty;
	struct termios old, quiet;

	if (!isatty(STDIN_FILENO)) {
		n = getline(&pw, &cap, stdin);
		while (n > 0 && (pw[n - 1] == '\n' || pw[n - 1] == '\r'))
			pw[--n] = '\0';
		if (n <= 0) {
			ctl_warn("no password on standard input");
			free(pw);
			return NULL;
		}
		return pw;
	}
	if ((tty = fopen("/dev/tty", "r+")) == NULL ||
	    tcgetattr(fileno(tty), &old) == -1) {
		ctl_warn("cannot ask for a password: %s", strerror(errno));
		if (tty != NULL)
			fclose(tty);
		return NULL;
	}
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	quiet.c_lflag |= ICANON;
	tcsetattr(fileno(tty), TCSAFLUSH, &quiet);
	fputs("Password: ", tty);
	fflush(tty);
	n = getline(&pw, &cap, tty);
	fputs("\nAgain: ", tty);
	fflush(tty);
	if (n > 0)
		n = getline(&again, &cap2, tty);
	fputc('\n', tty);
	tcsetattr(fileno(tty), TCSAFLUSH, &old);
	fclose(tty);
	if (n > 0) {
		pw[strcspn(pw, "\r\n")] = '\0';
		again[strcspn(again, "\r\n")] = '\0';
	}
	if (n <= 0 || strcmp(pw, again) != 0) {
		ctl_warn(n <= 0 ? "no password" : "the passwords differ");
		if (pw != NULL)
			explicit_bzero(pw, strlen(pw));
		free(pw);
		pw = NULL;
	}
	if (again != NULL)
		explicit_bzero(again, strlen(again));
	free(again);
	return pw;
}

/* The words joined with spaces. */
static char *
ctl_join(int argc, char **argv)
{
	size_t len = 1;
	char *s;

	for (int i = 0; i < argc; i++)
		len += strlen(argv[i]) + 1;
	s = xcalloc(1, len);
	for (int i = 0; i < argc; i++) {
		if (i > 0)
			strcat(s, " ");
		strcat(s, argv[i]);
	}
	return s;
}

static int
ctl_token(const char *name)
{
	uint8_t raw[32], digest[SHA256_DIGEST_SIZE];
	char token[2 * sizeof raw + 1], hex[2 * sizeof digest + 1];
	struct sha256_ctx ctx;

	if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
		ctl_warn("getrandom: %s", strerror(errno));
		return CTL_FAILED;
	}
	for (size_t i = 0; i < sizeof raw; i++)
		sprintf(token + 2 * i, "%02x", raw[i]);
	sha256_init(&ctx);
	sha256_update(&ctx, strlen(token), (const uint8_t *)token);
	sha256_digest(&ctx, sizeof digest, digest);
	for (size_t i = 0; i < sizeof digest; i++)
		sprintf(hex + 2 * i, "%02x", digest[i]);
	if (ctl_json)
		printf(
		    "{\"name\":\"%s\",\"token\":\"%s\",\"entry\":\"%s:sha256:"
		    "%s\"}\n",
		    name, token, name, hex);
	else
		printf("token: %s\nadmin_tokens entry: \"%s:sha256:%s\"\n",
		    token, name, hex);
	explicit_bzero(token, sizeof token);
	return CTL_OK;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "admin", required_argument, NULL, 'a' },
		{ "token-file", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_path = getenv("PARLEY_CONFIG");
	const char *address = NULL, *token_file = NULL, *cmd;
	const char *method = "GET";
	bool config_given = config_path != NULL;
	struct ctl_target t;
	struct ctl_reply r;
	void (*print)(const json_t *) = NULL;
	const char *done = NULL;
	char *path = NULL, *text = NULL;
	json_t *body = NULL;
	int ch, rc;

	if (config_path == NULL)
		config_path = PARLEY_SYSCONFDIR "/parley.conf";
	log_level = LOG_LVL_ERROR;
	while ((ch = getopt_long(argc, argv, "+c:a:t:jhV", longopts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'c':
			config_path = optarg;
			config_given = true;
			break;
		case 'a':
			address = optarg;
			break;
		case 't':
			token_file = optarg;
			break;
		case 'j':
			ctl_json = true;
			break;
		case 'h':
			ctl_usage(stdout);
			return CTL_OK;
		case 'V':
			printf("parleyctl %s\n", PACKAGE_VERSION);
			return CTL_OK;
		default:
			ctl_usage(stderr);
			return CTL_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		ctl_usage(stderr);
		return CTL_USAGE;
	}
	cmd = argv[0];
	argc--;
	argv++;
#define ARGS(lo, hi)                                                   \
	do {                                                           \
		if (argc < (lo) || argc > (hi)) {                      \
			ctl_warn("%s: wrong number of arguments (see " \
				 "parleyctl --help)",                  \
			    cmd);                                      \
			return CTL_USAGE;                              \
		}                                                      \
	} while (0)
	if (strcmp(cmd, "token") == 0) {
		ARGS(1, 1);
		if (strlen(argv[0]) > 32 ||
		    strspn(argv[0],
			"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			"0123456789_-.") != strlen(argv[0])) {
			ctl_warn("token: a name of letters, digits, _, - and ."
				 " (up to 32)");
			return CTL_USAGE;
		}
		return ctl_token(argv[0]);
	} else if (strcmp(cmd, "status") == 0) {
		ARGS(0, 0);
		path = xstrdup(ADMIN_PREFIX "status");
		print = ctl_print_status;
	} else if (strcmp(cmd, "rooms") == 0) {
		ARGS(0, 0);
		path = xstrdup(ADMIN_PREFIX "rooms");
		print = ctl_print_rooms;
	} else if (strcmp(cmd, "room") == 0) {
		ARGS(1, 1);
		path = ctl_path(ADMIN_PREFIX "rooms/", argv[0], NULL);
		print = ctl_print_room;
	} else if (strcmp(cmd, "users") == 0) {
		ARGS(0, 0);
		path = xstrdup(ADMIN_PREFIX "users");
		print = ctl_print_users;
	} else if (strcmp(cmd, "create") == 0) {
		ARGS(1, 1);
		method = "POST";
		path = xstrdup(ADMIN_PREFIX "rooms");
		body = json_pack("{s:s}", "name", argv[0]);
		done = "room created";
	} else if (strcmp(cmd, "delete") == 0) {
		ARGS(1, 2);
		method = "DELETE";
		path = ctl_path(ADMIN_PREFIX "rooms/", argv[0], NULL);
		if (argc == 2)
			body = json_pack("{s:s}", "reason", argv[1]);
		done = "room deleted";
	} else if (strcmp(cmd, "kick") == 0) {
		ARGS(2, 3);
		method = "POST";
		path = ctl_path(ADMIN_PREFIX "rooms/", argv[0], "/kick");
		body = json_pack("{s:s}", "user", argv[1]);
		if (argc == 3)
			json_object_set_new(
			    body, "reason", json_string(argv[2]));
		done = "kicked";
	} else if (strcmp(cmd, "announce") == 0) {
		const char *room = NULL;
		if (argc >= 2 &&
		    (strcmp(argv[0], "-r") == 0 ||
			strcmp(argv[0], "--room") == 0)) {
			room = argv[1];
			argc -= 2;
			argv += 2;
		}
		ARGS(1, 1000);
		method = "POST";
		path = room != NULL
		    ? ctl_path(ADMIN_PREFIX "rooms/", room, "/announce")
		    : xstrdup(ADMIN_PREFIX "announce");
		text = ctl_join(argc, argv);
		body = json_pack("{s:s}", "message", text);
		done = "announced";
	} else if (strcmp(cmd, "say") == 0) {
		ARGS(2, 1000);
		method = "POST";
		path = ctl_path(ADMIN_PREFIX "rooms/", argv[0], "/messages");
		text = ctl_join(argc - 1, argv + 1);
		body = json_pack("{s:s}", "message", text);
		done = "posted";
	} else if (strcmp(cmd, "ban") == 0 || strcmp(cmd, "mute") == 0) {
		long long secs = -1;
		if (argc >= 2 && strcmp(argv[0], "-t") == 0) {
			char *end;
			secs = strtoll(argv[1], &end, 10);
			if (*argv[1] == '\0' || *end != '\0' || secs < 0) {
				ctl_warn("%s: -t takes seconds", cmd);
				return CTL_USAGE;
			}
			argc -= 2;
			argv += 2;
		}
		ARGS(2, 3);
		method = "POST";
		path = ctl_path(ADMIN_PREFIX "rooms/", argv[0],
		    cmd[0] == 'b' ? "/ban" : "/mute");
		body = json_pack("{s:s}", "user", argv[1]);
		if (secs >= 0)
			json_object_set_new(
			    body, "seconds", json_integer(secs));
		if (argc == 3)
			json_object_set_new(
			    body, "reason", json_string(argv[2]));
		done = cmd[0] == 'b' ? "banned" : "muted";
	} else if (strcmp(cmd, "unban") == 0 || strcmp(cmd, "unmute") == 0) {
		ARGS(2, 2);
		method = "POST";
		path = ctl_path(ADMIN_PREFIX "rooms/", argv[0],
		    strcmp(cmd, "unban") == 0 ? "/unban" : "/unmute");
		body = json_pack("{s:s}", "user", argv[1]);
		done = strcmp(cmd, "unban") == 0 ? "unbanned" : "unmuted";
	} else if (strcmp(cmd, "bans") == 0) {
		ARGS(0, 1);
		path = argc == 1
		    ? ctl_path(ADMIN_PREFIX "bans?room=", argv[0], NULL)
		    : xstrdup(ADMIN_PREFIX "bans");
		print = ctl_print_bans;
	} else if (strcmp(cmd, "audit") == 0) {
		const char *n = "100";
		if (argc >= 2 && strcmp(argv[0], "-n") == 0) {
			n = argv[1];
			argc -= 2;
			argv += 2;
		}
		ARGS(0, 0);
		if (strspn(n, "0123456789") != strlen(n) || *n == '\0') {
			ctl_warn("audit: -n takes a count");
			return CTL_USAGE;
		}
		xasprintf(&path, ADMIN_PREFIX "audit?limit=%s", n);
		print = ctl_print_audit;
	} else if (strcmp(cmd, "role") == 0) {
		ARGS(3, 3);
		if (strcmp(argv[2], "moderator") != 0 &&
		    strcmp(argv[2], "none") != 0) {
			ctl_warn("role: moderator or none");
			return CTL_USAGE;
		}
		method = "POST";
		path = ctl_path(ADMIN_PREFIX "rooms/", argv[0], "/role");
		body = json_pack("{s:s, s:o}", "user", argv[1], "role",
		    strcmp(argv[2], "none") == 0 ? json_null()
						 : json_string("moderator"));
		done = "role set";
	} else if (strcmp(cmd, "topic") == 0) {
		ARGS(1, 1000);
		method = "POST";
		path = ctl_path(ADMIN_PREFIX "rooms/", argv[0], "/topic");
		text = ctl_join(argc - 1, argv + 1);
		body = json_pack("{s:s}", "topic", text);
		done = "topic set";
	} else if (strcmp(cmd, "delete-message") == 0) {
		char *end;
		long long seq;
		ARGS(2, 2);
		seq = strtoll(argv[1], &end, 10);
		if (*argv[1] == '\0' || *end != '\0' || seq <= 0) {
			ctl_warn("delete-message: SEQ is a message's number");
			return CTL_USAGE;
		}
		method = "POST";
		path = ctl_path(
		    ADMIN_PREFIX "rooms/", argv[0], "/delete_message");
		body = json_pack("{s:I}", "seq", (json_int_t)seq);
		done = "message deleted";
	} else if (strcmp(cmd, "account") == 0 && argc >= 2 &&
	    strcmp(argv[0], "roles") == 0) {
		json_t *roles = json_array();
		ARGS(2, 10);
		for (int i = 2; i < argc; i++)
			json_array_append_new(roles, json_string(argv[i]));
		method = "PUT";
		path = ctl_path(ADMIN_PREFIX "accounts/", argv[1], "/roles");
		body = json_pack("{s:o}", "roles", roles);
		print = ctl_print_roles;
	} else if (strcmp(cmd, "account") == 0) {
		ARGS(2, 2);
		if (strcmp(argv[0], "delete") == 0) {
			method = "DELETE";
			path = ctl_path(
			    ADMIN_PREFIX "accounts/", argv[1], NULL);
			done = "account deleted";
		} else if (strcmp(argv[0], "add") == 0 ||
		    strcmp(argv[0], "password") == 0) {
			bool add = strcmp(argv[0], "add") == 0;
			char *pw = ctl_password();
			if (pw == NULL)
				return CTL_USAGE;
			method = "POST";
			path = add ? xstrdup(ADMIN_PREFIX "accounts")
				   : ctl_path(ADMIN_PREFIX "accounts/", argv[1],
					 "/password");
			body = add ? json_pack("{s:s, s:s}", "name", argv[1],
					 "password", pw)
				   : json_pack("{s:s}", "password", pw);
			explicit_bzero(pw, strlen(pw));
			free(pw);
			if (body == NULL) {
				ctl_warn("the password is not UTF-8");
				free(path);
				return CTL_USAGE;
			}
			done = add ? "account created" : "password set";
		} else {
			ctl_warn("account: add, password, delete or roles");
			return CTL_USAGE;
		}
	} else if (strcmp(cmd, "reload") == 0) {
		ARGS(0, 0);
		method = "POST";
		path = xstrdup(ADMIN_PREFIX "reload");
		done = "reloaded";
	} else {
		ctl_warn("unknown command: %s (see parleyctl --help)", cmd);
		return CTL_USAGE;
	}
	free(text);
	if (body == NULL && strcmp(method, "GET") != 0 &&
	    strcmp(method, "DELETE") != 0)
		body = json_object();
	if (ctl_target(config_path, config_given, address, token_file, &t) ==
	    -1) {
		free(path);
		json_decref(body);
		return CTL_USAGE;
	}
	rc = ctl_http(&t, method, path, body, &r) == -1 ? CTL_UNREACHABLE
							: ctl_outcome(&r);
	if (rc == CTL_OK) {
		if (ctl_json) {
			char *s = r.json != NULL
			    ? json_dumps(r.json, JSON_COMPACT)
			    : xstrdup("{}");
			puts(s);
			free(s);
		} else if (print != NULL)
			print(r.json);
		else if (done != NULL)
			printf("%s\n", done);
	}
	json_decref(r.json);
	json_decref(body);
	free(path);
	if (t.token != NULL) {
		explicit_bzero(t.token, strlen(t.token));
		free(t.token);
	}
	free(t.unix_path);
	free(t.host);
	free(t.port);
	return rc;
}
