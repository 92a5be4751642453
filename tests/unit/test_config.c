/*
 * test_config.c: the configuration reader: defaults, every option, the
 * messages for unknown keys, wrong types, bad ranges and syntax errors
 * (each with its line), the sandbox (no libraries, an instruction budget,
 * a memory cap), and that the shipped parley.conf.sample loads.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "parley.h"
#include "unit.h"

/* Loads text as "t.conf" over the defaults; returns the cause of a
 * failure (caller frees) or NULL, and leaves the result in c. */
static char *
load(struct config *c, const char *text)
{
	char *cause = NULL;

	config_defaults(c);
	if (config_load_string(c, "t.conf", text, strlen(text), &cause) == 0)
		return NULL;
	return cause;
}

/* Checks that text fails with exactly want. */
static void
check_fails(const char *text, const char *want)
{
	struct config c;
	char *cause = load(&c, text);

	CHECKF(cause != NULL && strcmp(cause, want) == 0,
	    "text <%s>: got <%s>, want <%s>", text, cause ? cause : "(ok)",
	    want);
	free(cause);
	config_free(&c);
}

/* Checks that text fails with a cause starting with prefix and holding
 * part (which may be NULL). */
static void
check_fails_like(const char *text, const char *prefix, const char *part)
{
	struct config c;
	char *cause = load(&c, text);

	CHECKF(cause != NULL && strncmp(cause, prefix, strlen(prefix)) == 0 &&
	    (part == NULL || strstr(cause, part) != NULL),
	    "text <%s>: got <%s>, want <%s...%s>", text,
	    cause ? cause : "(ok)", prefix, part ? part : "");
	free(cause);
	config_free(&c);
}

static void
check_loads(const char *text)
{
	struct config c;
	char *cause = load(&c, text);

	CHECKF(cause == NULL, "text <%s>: %s", text, cause);
	free(cause);
	config_free(&c);
}

static void
test_defaults(void)
{
	struct config c;

	config_defaults(&c);
	CHECK_STR(c.listen, "0.0.0.0");
	CHECK_INT(c.port, 8080);
	CHECK(c.web_root == NULL);
	CHECK_INT(c.allowed_origins.n, 0);
	CHECK_INT(c.rooms.n, 1);
	CHECK_STR(c.rooms.v[0], "general");
	CHECK_STR(c.server_name, "parley");
	CHECK_INT(c.max_message_bytes, 4096);
	CHECK_INT(c.max_frame_bytes, 65536);
	CHECK_INT(c.max_connections, 10000);
	CHECK_INT(c.max_connections_per_ip, 1000);
	CHECK_INT(c.max_output_bytes, 1048576);
	CHECK_INT(c.max_json_depth, 32);
	CHECK_INT(c.ping_interval, 30);
	CHECK_INT(c.ping_timeout, 20);
	CHECK_INT(c.http_timeout, 10);
	CHECK_INT(c.history_size, 100);
	CHECK_INT(c.log_level, LOG_LVL_INFO);
	config_free(&c);
	CHECK(c.listen == NULL && c.rooms.v == NULL && c.rooms.n == 0);
	config_free(&c); /* twice is harmless */

	/* An empty file, or only comments, means the defaults. */
	CHECK(load(&c, "") == NULL);
	CHECK_INT(c.port, 8080);
	config_free(&c);
	CHECK(load(&c, "-- nothing\n--[[ at all ]]\n") == NULL);
	CHECK_INT(c.rooms.n, 1);
	config_free(&c);
}

static void
test_every_key(void)
{
	struct config c;
	char *cause;

	cause = load(&c,
	    "listen = \"127.0.0.1\"\n"
	    "port = 0\n"
	    "web_root = \"/srv/www\"\n"
	    "allowed_origins = { \"https://a.example\", \"http://b:8080\" }\n"
	    "rooms = { \"lobby\", \"caf\xc3\xa9\", \"r and d\" }\n"
	    "server_name = \"test server\"\n"
	    "max_message_bytes = 100\n"
	    "max_frame_bytes = 2048\n"
	    "max_connections = 5\n"
	    "max_connections_per_ip = 2\n"
	    "max_output_bytes = 4096\n"
	    "max_json_depth = 4\n"
	    "ping_interval = 1\n"
	    "ping_timeout = 2\n"
	    "http_timeout = 3\n"
	    "history_size = 0\n"
	    "log_level = \"debug\"\n");
	CHECKF(cause == NULL, "%s", cause);
	free(cause);
	CHECK_STR(c.listen, "127.0.0.1");
	CHECK_INT(c.port, 0);
	CHECK_STR(c.web_root, "/srv/www");
	CHECK_INT(c.allowed_origins.n, 2);
	CHECK_STR(c.allowed_origins.v[0], "https://a.example");
	CHECK_STR(c.allowed_origins.v[1], "http://b:8080");
	CHECK_INT(c.rooms.n, 3);
	CHECK_STR(c.rooms.v[0], "lobby");
	CHECK_STR(c.rooms.v[1], "caf\xc3\xa9");
	CHECK_STR(c.rooms.v[2], "r and d");
	CHECK_STR(c.server_name, "test server");
	CHECK_INT(c.max_message_bytes, 100);
	CHECK_INT(c.max_frame_bytes, 2048);
	CHECK_INT(c.max_connections, 5);
	CHECK_INT(c.max_connections_per_ip, 2);
	CHECK_INT(c.max_output_bytes, 4096);
	CHECK_INT(c.max_json_depth, 4);
	CHECK_INT(c.ping_interval, 1);
	CHECK_INT(c.ping_timeout, 2);
	CHECK_INT(c.http_timeout, 3);
	CHECK_INT(c.history_size, 0);
	CHECK_INT(c.log_level, LOG_LVL_DEBUG);
	config_free(&c);

	/* Lua itself: expressions, locals, reading back what was set, the
	 * last assignment winning, nil meaning the default. */
	cause = load(&c,
	    "local k = 1024\n"
	    "max_frame_bytes = 128 * k\n"
	    "max_message_bytes = max_frame_bytes // 4\n"
	    "rooms = {}\n"
	    "rooms[#rooms + 1] = \"a\" .. \"b\"\n"
	    "port = 1; port = 2\n"
	    "history_size = 5 history_size = nil\n"
	    "ping_interval = 30.0\n"
	    "log_level = 'warning'\n");
	CHECKF(cause == NULL, "%s", cause);
	free(cause);
	CHECK_INT(c.max_frame_bytes, 131072);
	CHECK_INT(c.max_message_bytes, 32768);
	CHECK_INT(c.rooms.n, 1);
	CHECK_STR(c.rooms.v[0], "ab");
	CHECK_INT(c.port, 2);
	CHECK_INT(c.history_size, 100);
	CHECK_INT(c.ping_interval, 30);
	CHECK_INT(c.log_level, LOG_LVL_WARN);
	config_free(&c);

	/* An empty list is a list. */
	CHECK(load(&c, "rooms = {}\nallowed_origins = {}") == NULL);
	CHECK_INT(c.rooms.n, 0);
	CHECK_INT(c.allowed_origins.n, 0);
	config_free(&c);

	/* A byte-order mark is skipped. */
	CHECK(load(&c, "\xef\xbb\xbfport = 1") == NULL);
	CHECK_INT(c.port, 1);
	config_free(&c);

	/* Edges of the ranges. */
	check_loads("port = 65535");
	check_loads("max_frame_bytes = 16 * 1024 * 1024");
	check_loads("max_frame_bytes = 1024 max_message_bytes = 1023");
	check_loads("history_size = 100000");
	check_loads("max_output_bytes = 1 << 30");
}

static void
test_errors(void)
{
	/* Unknown keys, with the line and a suggestion when one is close. */
	check_fails("port = 1\n\nprot = 2\n",
	    "t.conf:3: unknown option 'prot' (did you mean 'port'?)");
	check_fails("max_conections = 1",
	    "t.conf:1: unknown option 'max_conections' "
	    "(did you mean 'max_connections'?)");
	check_fails("\n\nfrobnicate = true",
	    "t.conf:3: unknown option 'frobnicate'");
	check_fails("function f() end",
	    "t.conf:1: unknown option 'f'");
	check_fails("local function g() hidden = 1 end\n\ng()",
	    "t.conf:1: unknown option 'hidden'");
	check_fails("_ENV['bad\\nkey'] = 1",
	    "t.conf:1: unknown option 'bad\\x0akey'");
	check_fails("_ENV[1] = 1", "t.conf:1: option names must be strings");

	/* The first complaint in the file wins. */
	check_fails("zz = 1\nport = 'x'\n",
	    "t.conf:1: unknown option 'zz'");
	check_fails("port = 'x'\nzz = 1\n",
	    "t.conf:1: option 'port' must be an integer");

	/* Wrong types. */
	check_fails("\nport = \"80\"",
	    "t.conf:2: option 'port' must be an integer");
	check_fails("port = 80.5", "t.conf:1: option 'port' must be an integer");
	check_fails("port = 0/0", "t.conf:1: option 'port' must be an integer");
	check_fails("port = 1e300", "t.conf:1: option 'port' must be an integer");
	check_fails("listen = 127", "t.conf:1: option 'listen' must be a string");
	check_fails("rooms = 'general'",
	    "t.conf:1: option 'rooms' must be a list of strings");
	check_fails("rooms = { 'a', 2 }",
	    "t.conf:1: option 'rooms' must be a list of strings");
	check_fails("rooms = { 'a', x = 'b' }",
	    "t.conf:1: option 'rooms' must be a list of strings");
	check_fails("rooms = { 'a', nil, 'c' }",
	    "t.conf:1: option 'rooms' must be a list of strings");
	check_fails("rooms = { { 'a' } }",
	    "t.conf:1: option 'rooms' must be a list of strings");
	check_fails("log_level = 3",
	    "t.conf:1: option 'log_level' must be a string");
	check_fails("log_level = 'loud'",
	    "t.conf:1: option 'log_level' must be one of error, warn, info, "
	    "debug");

	/* Ranges. */
	check_fails("port = 65536",
	    "t.conf:1: option 'port' must be between 0 and 65535");
	check_fails("port = -1",
	    "t.conf:1: option 'port' must be between 0 and 65535");
	check_fails("max_frame_bytes = 1023",
	    "t.conf:1: option 'max_frame_bytes' must be between 1024 and "
	    "16777216");
	check_fails("max_message_bytes = 0",
	    "t.conf:1: option 'max_message_bytes' must be between 1 and "
	    "16777216");
	check_fails("ping_timeout = 0",
	    "t.conf:1: option 'ping_timeout' must be between 1 and 86400");
	check_fails("max_connections = 1 << 40",
	    "t.conf:1: option 'max_connections' must be between 1 and "
	    "1000000");
	check_fails("\nmax_message_bytes = 65536",
	    "t.conf:2: option 'max_message_bytes' must be less than "
	    "max_frame_bytes (65536)");
	check_fails("\n\nmax_frame_bytes = 2048",
	    "t.conf:3: option 'max_frame_bytes' must be greater than "
	    "max_message_bytes (4096)");

	/* Strings and list items. */
	check_fails("listen = ''",
	    "t.conf:1: option 'listen' must be 1 to 255 bytes long");
	check_fails("server_name = 'a\\0b'",
	    "t.conf:1: option 'server_name' must not contain NUL bytes");
	check_fails("server_name = 'a\\x01b'",
	    "t.conf:1: option 'server_name' must be valid UTF-8 without "
	    "control characters");
	check_fails("rooms = { 'ok', '' }",
	    "t.conf:1: option 'rooms' item 2 must be 1 to 64 bytes long");
	check_fails_like("rooms = { ('x'):rep(65) }", "t.conf:1: ",
	    "attempt to index a string value");
	check_fails("rooms = { '12345678901234567890123456789012345678901234"
		    "567890123456789012345' }",
	    "t.conf:1: option 'rooms' item 1 must be 1 to 64 bytes long");
	check_fails("rooms = { '\\xff' }",
	    "t.conf:1: option 'rooms' item 1 must be valid UTF-8 without "
	    "control characters");
	check_fails("rooms = { ' lead' }",
	    "t.conf:1: option 'rooms' item 1 must not begin or end with a "
	    "space");
	check_fails("rooms = { 'a', 'b', 'a' }",
	    "t.conf:1: option 'rooms' lists 'a' twice");
	check_fails("allowed_origins = { 'https://a.example/' }",
	    "t.conf:1: option 'allowed_origins' item 1 must not end with '/' "
	    "(an origin is scheme://host[:port])");
	check_fails("allowed_origins = { 'https://a example' }",
	    "t.conf:1: option 'allowed_origins' item 1 must be printable "
	    "ASCII without spaces");

	/* Syntax and run-time errors carry Lua's line. */
	check_fails_like("port = 80\nrooms = {\n", "t.conf:3: ", "expected");
	check_fails_like("port = = 80", "t.conf:1: ", "unexpected symbol");
	check_fails_like("\n\nport = nil + 1", "t.conf:3: ",
	    "attempt to perform arithmetic");
	check_fails_like("port = 1 // 0", "t.conf:1: ", NULL);
	check_fails_like("x = \"unfinished", "t.conf:1: ", "unfinished string");

	/* A precompiled chunk is refused. */
	check_fails_like("\x1bLua\x54", "t.conf: ", "binary");
}

static void
test_sandbox(void)
{
	/* Libraries are not there at all. */
	check_fails_like("os.exit()", "t.conf:1: ", "global 'os'");
	check_fails_like("require('os')", "t.conf:1: ", "global 'require'");
	check_fails_like("io.open('/etc/passwd')", "t.conf:1: ", "global 'io'");
	check_fails_like("print('hi')", "t.conf:1: ", "global 'print'");
	check_fails_like("load('x = 1')()", "t.conf:1: ", "global 'load'");
	check_fails_like("dofile('/etc/passwd')", "t.conf:1: ", "'dofile'");
	check_fails_like("setmetatable(_ENV, nil)", "t.conf:1: ",
	    "'setmetatable'");
	check_fails_like("x = ('a'):upper()", "t.conf:1: ",
	    "attempt to index a string value");
	check_fails_like("x = #_G", "t.conf:1: ", "global '_G'");
	check_fails_like("debug.sethook()", "t.conf:1: ", "global 'debug'");
	check_fails_like("rawset(_ENV, 'port', 1)", "t.conf:1: ",
	    "global 'rawset'");
	check_fails_like("collectgarbage()", "t.conf:1: ", NULL);

	/* Runaway loops are stopped at their line. */
	check_fails_like("port = 1\nwhile true do end", "t.conf:2: ",
	    "runs too long");
	check_fails_like("local function f() return f() end\nf()", "t.conf:1: ",
	    "runs too long");
	check_fails_like("local function f() return 1 + f() end\nf()",
	    "t.conf", NULL);
	check_fails_like("t = {} for i = 1, 1e12 do t[i] = i end", "t.conf:",
	    NULL);

	/* Memory bombs are stopped by the cap. */
	check_fails("local s = 'x' for i = 1, 40 do s = s .. s end",
	    "t.conf: the file uses more than 16 MiB of memory");
	check_fails("local s = 'xxxxxxxxxxxxxxxx' s = s .. s .. s .. s\n"
		    "s = s .. s .. s .. s\n"
		    "local t = {} for i = 1, 1e6 do t[i] = s .. i end",
	    "t.conf: the file uses more than 16 MiB of memory");
}

/* A failed load changes nothing; a good one replaces lists whole. */
static void
test_atomic(void)
{
	struct config c;
	char *cause = NULL;
	const char *bad = "port = 1\nrooms = { 'x' }\nnope = 1\n";
	const char *good = "rooms = { 'y', 'z' }\n";

	config_defaults(&c);
	CHECK(config_load_string(&c, "t.conf", bad, strlen(bad), &cause) ==
	    -1);
	free(cause);
	CHECK_INT(c.port, 8080);
	CHECK_INT(c.rooms.n, 1);
	CHECK_STR(c.rooms.v[0], "general");
	CHECK(config_load_string(&c, "t.conf", good, strlen(good), &cause) ==
	    0);
	CHECK(config_load_string(&c, "t.conf", good, strlen(good), &cause) ==
	    0);
	CHECK_INT(c.rooms.n, 2);
	CHECK_STR(c.rooms.v[1], "z");
	config_free(&c);

	/* The text need not be NUL-terminated. */
	config_defaults(&c);
	CHECK(config_load_string(&c, "t.conf", "port = 12345", 9, &cause) ==
	    0);
	CHECK_INT(c.port, 12);
	config_free(&c);
}

static void
test_files(void)
{
	struct config c;
	char *cause = NULL, path[] = "/tmp/parley-test-config-XXXXXX";
	const char *sample = getenv("PARLEY_SAMPLE");
	FILE *f;
	int fd;

	/* The sample as the build makes it (from parley.conf.sample.in, in
	 * the build tree) loads and leaves the defaults. */
	if (sample == NULL || *sample == '\0')
		sample = "parley.conf.sample";
	config_defaults(&c);
	CHECKF(config_load(&c, sample, &cause) == 0, "%s", cause);
	free(cause);
	cause = NULL;
	CHECK_INT(c.port, 8080);
	CHECK_INT(c.rooms.n, 1);
	CHECK_STR(c.rooms.v[0], "general");
	CHECK_INT(c.max_frame_bytes, 65536);
	config_free(&c);

	/* A real file: its path is in the messages. */
	fd = mkstemp(path);
	CHECK(fd != -1);
	f = fdopen(fd, "w");
	fputs("port = 9000\n-- two\nlisten = 7\n", f);
	fclose(f);
	config_defaults(&c);
	CHECK(config_load(&c, path, &cause) == -1);
	CHECK(cause != NULL && strncmp(cause, path, strlen(path)) == 0 &&
	    strcmp(cause + strlen(path),
	    ":3: option 'listen' must be a string") == 0);
	free(cause);
	cause = NULL;
	CHECK_INT(c.port, 8080);
	unlink(path);

	CHECK(config_load(&c, path, &cause) == -1);
	CHECK(cause != NULL && strstr(cause, "No such file") != NULL);
	free(cause);
	cause = NULL;
	CHECK(config_load(&c, "/", &cause) == -1);
	CHECK(cause != NULL && strncmp(cause, "/: ", 3) == 0);
	free(cause);
	config_free(&c);
}

int
main(void)
{
	test_defaults();
	test_every_key();
	test_errors();
	test_sandbox();
	test_atomic();
	test_files();
	return unit_done();
}
