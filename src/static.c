/*
 * static.c: files under the web root, for GET and HEAD. A request path
 * never leaves the root: ".." segments are refused outright, and the
 * resolved target (symlinks followed) must still lie inside the resolved
 * root, so a link pointing out is as absent as a missing file. Only
 * regular files are served, zero-copy from their descriptor, with a
 * weak ETag and Last-Modified for revalidation (Cache-Control: no-cache:
 * the client is small and should never be stale). Every response made
 * here carries the security headers.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "parley.h"

/* Longest part of a request path quoted in a log line. */
#define STATIC_LOG_PATH 128

struct static_type {
	const char *ext;
	const char *type;
	bool active; /* a document that can run script: gets the CSP */
};

static const struct static_type static_types[] = {
	{ "html", "text/html; charset=utf-8", true },
	{ "htm", "text/html; charset=utf-8", true },
	{ "css", "text/css; charset=utf-8", false },
	{ "js", "text/javascript; charset=utf-8", false },
	{ "mjs", "text/javascript; charset=utf-8", false },
	{ "json", "application/json", false },
	{ "map", "application/json", false },
	{ "txt", "text/plain; charset=utf-8", false },
	{ "svg", "image/svg+xml", true },
	{ "png", "image/png", false },
	{ "jpg", "image/jpeg", false },
	{ "jpeg", "image/jpeg", false },
	{ "gif", "image/gif", false },
	{ "ico", "image/x-icon", false },
	{ "webp", "image/webp", false },
	{ "woff2", "font/woff2", false },
	{ "wasm", "application/wasm", false },
};

static const struct static_type static_default_type = {
	"", "application/octet-stream", false
};

static const char *const static_days[] = { "Sun", "Mon", "Tue", "Wed",
	"Thu", "Fri", "Sat" };
static const char *const static_months[] = { "Jan", "Feb", "Mar", "Apr",
	"May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

void
static_add_security_headers(struct MHD_Response *resp, bool html)
{
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	if (html) {
		MHD_add_response_header(resp, "Content-Security-Policy",
		    "default-src 'self'");
		MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	}
}

/* Copies a request path for a log line: cut, and without control bytes
 * that could forge lines. */
static void
static_log_path(char *out, size_t size, const char *url)
{
	size_t n = 0;

	for (; *url != '\0' && n + 1 < size; url++) {
		unsigned char ch = (unsigned char)*url;
		out[n++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
	}
	out[n] = '\0';
}

static enum MHD_Result
static_respond_text(struct MHD_Connection *conn, unsigned status,
    const char *text)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(strlen(text), (void *)text,
	    MHD_RESPMEM_PERSISTENT);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    "text/plain; charset=utf-8");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
		    "GET, HEAD");
	static_add_security_headers(resp, false);
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result
static_not_found(struct MHD_Connection *conn)
{
	return static_respond_text(conn, MHD_HTTP_NOT_FOUND,
	    "404 Not Found\n");
}

static const struct static_type *
static_type_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *dot = strrchr(path, '.');

	if (dot == NULL || (slash != NULL && dot < slash))
		return &static_default_type;
	for (size_t i = 0; i < sizeof static_types / sizeof static_types[0];
	    i++) {
		if (strcasecmp(dot + 1, static_types[i].ext) == 0)
			return &static_types[i];
	}
	return &static_default_type;
}

/* True when no segment of url is "..". MHD has already decoded it, so
 * "%2e%2e" arrives here as "..". */
static bool
static_path_safe(const char *url)
{
	const char *p = url, *end;

	if (*url != '/')
		return false;
	while (*p != '\0') {
		while (*p == '/')
			p++;
		end = strchrnul(p, '/');
		if (end - p == 2 && p[0] == '.' && p[1] == '.')
			return false;
		p = end;
	}
	return true;
}

static bool
static_inside(const char *root, const char *path)
{
	size_t n = strlen(root);

	if (strcmp(root, "/") == 0)
		return true;
	return strncmp(path, root, n) == 0 &&
	    (path[n] == '\0' || path[n] == '/');
}

/*
 * Opens the regular file path names, following a directory to its
 * index.html, as long as what it resolves to lies inside root (already
 * resolved). Returns the descriptor and fills *st and *real (caller
 * frees), or -1.
 */
static int
static_open(const char *root, const char *path, struct stat *st,
    char **real)
{
	char *index;
	int fd;

	int error;

	if ((*real = realpath(path, NULL)) == NULL)
		return -1;
	if (!static_inside(root, *real)) {
		error = EXDEV;
		goto fail;
	}
	if (stat(*real, st) == -1) {
		error = errno;
		goto fail;
	}
	if (S_ISDIR(st->st_mode)) {
		xasprintf(&index, "%s/index.html", *real);
		free(*real);
		*real = realpath(index, NULL);
		free(index);
		if (*real == NULL)
			return -1;
		if (!static_inside(root, *real)) {
			error = EXDEV;
			goto fail;
		}
		if (stat(*real, st) == -1) {
			error = errno;
			goto fail;
		}
	}
	/* Checked before open(): opening a FIFO would block the loop. */
	if (!S_ISREG(st->st_mode)) {
		error = ENOENT;
		goto fail;
	}
	fd = open(*real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd == -1) {
		error = errno;
		goto fail;
	}
	if (fstat(fd, st) == -1 || !S_ISREG(st->st_mode)) {
		close(fd);
		error = ENOENT;
		goto fail;
	}
	return fd;

fail:
	free(*real);
	*real = NULL;
	errno = error;
	return -1;
}

static void
static_http_date(char *out, size_t size, time_t t)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, size, "%s, %02d %s %04d %02d:%02d:%02d GMT",
	    static_days[tm.tm_wday], tm.tm_mday, static_months[tm.tm_mon],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Parses an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"); the obsolete
 * forms are ignored, as an invalid date must be. */
static int
static_parse_date(const char *s, time_t *out)
{
	char day[4], mon[4];
	struct tm tm = { 0 };
	int n = -1, m;

	if (sscanf(s, "%3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d GMT%n", day,
	    &tm.tm_mday, mon, &tm.tm_year, &tm.tm_hour, &tm.tm_min,
	    &tm.tm_sec, &n) != 7 || n < 0 || s[n] != '\0')
		return -1;
	for (m = 0; m < 12; m++) {
		if (strcmp(mon, static_months[m]) == 0)
			break;
	}
	if (m == 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
	    tm.tm_year < 1970 || tm.tm_hour > 23 || tm.tm_min > 59 ||
	    tm.tm_sec > 60)
		return -1;
	tm.tm_mon = m;
	tm.tm_year -= 1900;
	*out = timegm(&tm);
	return *out == (time_t)-1 ? -1 : 0;
}

/* Weak comparison of etag against an If-None-Match list ("*" matches
 * any). A malformed list matches nothing. */
static bool
static_etag_match(const char *list, const char *etag)
{
	const char *ours = etag, *p = list, *q;
	size_t len;

	if (strncmp(ours, "W/", 2) == 0)
		ours += 2;
	len = strlen(ours);
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			return false;
		if (*p == '*')
			return true;
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		if (*p != '"' || (q = strchr(p + 1, '"')) == NULL)
			return false;
		if ((size_t)(q + 1 - p) == len && memcmp(p, ours, len) == 0)
			return true;
		p = q + 1;
	}
}

/* True when the client's copy is current (the answer is then 304). */
static bool
static_not_modified(struct MHD_Connection *conn, const struct stat *st,
    const char *etag)
{
	const char *inm, *ims;
	time_t since;

	inm = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_IF_NONE_MATCH);
	if (inm != NULL)
		return static_etag_match(inm, etag);
	ims = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_IF_MODIFIED_SINCE);
	if (ims != NULL && static_parse_date(ims, &since) == 0)
		return st->st_mtime <= since;
	return false;
}

int
static_serve(struct MHD_Connection *conn, const char *root,
    const char *method, const char *url)
{
	static bool warned;
	const struct static_type *type;
	struct MHD_Response *resp;
	struct stat st;
	char *rroot, *path, *real = NULL;
	char etag[64], date[64], shown[STATIC_LOG_PATH + 1];
	unsigned status = MHD_HTTP_OK;
	enum MHD_Result ret;
	int fd;

	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
	    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return static_respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
		    "405 Method Not Allowed\n");
	if (!static_path_safe(url)) {
		static_log_path(shown, sizeof shown, url);
		log_debug("http", "refused path %s", shown);
		return static_not_found(conn);
	}
	if (root == NULL || (rroot = realpath(root, NULL)) == NULL) {
		if (!warned) {
			log_warn("http", "web root %s: %s",
			    root ? root : "(none)", strerror(errno));
			warned = true;
		}
		return static_not_found(conn);
	}
	xasprintf(&path, "%s%s", rroot, url);
	fd = static_open(rroot, path, &st, &real);
	if (fd == -1) {
		if (errno != ENOENT && errno != ENOTDIR) {
			static_log_path(shown, sizeof shown, url);
			log_debug("http", "%s: %s", shown, errno == EXDEV ?
			    "outside the web root" : strerror(errno));
		}
		free(path);
		free(rroot);
		return static_not_found(conn);
	}
	type = static_type_of(real);
	free(real);
	free(path);
	free(rroot);

	snprintf(etag, sizeof etag, "W/\"%llx-%llx\"",
	    (unsigned long long)st.st_size,
	    (unsigned long long)st.st_mtim.tv_sec * 1000000000ULL +
	    (unsigned long long)st.st_mtim.tv_nsec);
	static_http_date(date, sizeof date, st.st_mtime);

	if (static_not_modified(conn, &st, etag)) {
		close(fd);
		status = MHD_HTTP_NOT_MODIFIED;
		resp = MHD_create_response_from_buffer(0, NULL,
		    MHD_RESPMEM_PERSISTENT);
	} else {
		/* A response closes fd when destroyed; without one, fd is
		 * still ours. */
		resp = MHD_create_response_from_fd64((uint64_t)st.st_size, fd);
		if (resp == NULL)
			close(fd);
		else
			MHD_add_response_header(resp,
			    MHD_HTTP_HEADER_CONTENT_TYPE, type->type);
	}
	if (resp == NULL) {
		log_warn("http", "cannot create a response");
		return static_respond_text(conn,
		    MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "500 Internal Server Error\n");
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_LAST_MODIFIED, date);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
	    "no-cache");
	static_add_security_headers(resp, type->active);
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}
