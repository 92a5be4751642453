/*
 * config-table.c: every configuration option with its type, range,
 * default and a line of help. config.c reads, checks, applies, defaults
 * and frees options only through this table, so a new option is one line
 * here plus its field in struct config (parley.h). Keep the order of the
 * documentation (parley.conf.sample, parley.conf(5)).
 */
#include "config.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "parley.h"
#include "config-table.h"

#define OFF(f) offsetof(struct config, f)

/* One option per line: field name (also the key in the file), range, then
 * default. */
#define STR(f, lo, hi, d, chk, h)                                            \
	{ .name = #f, .type = CONFIG_STRING, .offset = OFF(f), .min = (lo),  \
	    .max = (hi), .def_str = (d), .check = (chk), .help = (h) }
#define NUM(f, t, lo, hi, d, h)                                              \
	{ .name = #f, .type = (t), .offset = OFF(f), .min = (lo),            \
	    .max = (hi), .def_num = (d), .help = (h) }
#define LIST(f, lo, hi, d, chk, u, h)                                        \
	{ .name = #f, .type = CONFIG_STRLIST, .offset = OFF(f), .min = (lo), \
	    .max = (hi), .def_list = (d), .check = (chk), .unique = (u),      \
	    .help = (h) }
#define JSON(f, h)                                                           \
	{ .name = #f, .type = CONFIG_JSON, .offset = OFF(f), .help = (h) }
#define LEVEL(f, d, h)                                                       \
	{ .name = #f, .type = CONFIG_LOG_LEVEL, .offset = OFF(f),            \
	    .def_str = (d), .help = (h) }

#define KIB 1024LL
#define MIB (1024LL * 1024)
#define GIB (1024LL * 1024 * 1024)

/* True when s (len bytes) is one of the NULL-terminated words. */
static bool
config_one_of(const char *s, size_t len, const char *const *words)
{
	for (; *words != NULL; words++) {
		if (strlen(*words) == len && memcmp(s, *words, len) == 0)
			return true;
	}
	return false;
}

static const char *
config_check_log_format(const char *s, size_t len)
{
	static const char *const formats[] = { "text", "json", NULL };

	return config_one_of(s, len, formats) ? NULL :
	    "must be \"text\" or \"json\"";
}

/* An address or CIDR block, IPv4 or IPv6 (parsed as http.c will). */
static const char *
config_check_cidr(const char *s, size_t len)
{
	char buf[64];

	if (len >= sizeof buf)
		return "is not an address or CIDR block";
	memcpy(buf, s, len);
	buf[len] = '\0';
	return http_cidr_valid(buf) ? NULL :
	    "is not an address or CIDR block";
}

/* ADDR:PORT, with [ADDR]:PORT for IPv6. */
static const char *
config_check_hostport(const char *s, size_t len)
{
	const char *colon = memrchr(s, ':', len);
	char *end;
	long port;

	/* The admin listener may be a unix socket: an absolute path. */
	if (len > 1 && s[0] == '/')
		return len < 108 ? NULL : "is too long for a unix socket path";
	if (colon == NULL || colon == s || colon + 1 == s + len)
		return "must be ADDR:PORT";
	port = strtol(colon + 1, &end, 10);
	if (end != s + len || port < 0 || port > 65535)
		return "must end in a port number";
	return NULL;
}

#ifdef HAVE_SQLITE
/* Durable history is the embedded default wherever it is built. */
static const char *const config_plugins_default[] = { "history-sqlite",
	NULL };
#else
#define config_plugins_default NULL
#endif

static const char *const config_rooms_default[] = { "general", NULL };

/* A proxy on this machine is believed, as a local one is the usual set-up
 * and its peers are otherwise all one address. */
static const char *const config_proxies_default[] = { "127.0.0.1", "::1",
	NULL };

/* The embedded state store, or none that outlives the process. */
static const char *
config_check_state_store(const char *s, size_t len)
{
	if ((len == 6 && memcmp(s, "sqlite", 6) == 0) ||
	    (len == 6 && memcmp(s, "memory", 6) == 0))
		return NULL;
	return "must be \"sqlite\" or \"memory\"";
}

#ifdef HAVE_SQLITE
#define CONFIG_STATE_DEFAULT "sqlite"
#else
#define CONFIG_STATE_DEFAULT "memory"
#endif

/* Scripts: names are file names without .lua, so no paths. */
static const char *
config_check_script_name(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
			return "must be a script name (letters, digits, _ and -, "
			    "without .lua)";
	}
	return NULL;
}

static const char *
config_check_policy(const char *s, size_t len)
{
	static const char *const policies[] = { "pass", "deny", NULL };

	return config_one_of(s, len, policies) ? NULL :
	    "must be \"pass\" or \"deny\"";
}

/* The operator password is kept hashed: "sha256:" and 64 hex digits. */
static const char *
config_check_password_hash(const char *s, size_t len)
{
	if (len != 7 + 64 || memcmp(s, "sha256:", 7) != 0)
		return "must be \"sha256:\" followed by the 64 hex digits of the "
		    "password's SHA-256 (printf %s PASSWORD | sha256sum)";
	for (size_t i = 7; i < len; i++) {
		char ch = s[i];
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
		    (ch >= 'A' && ch <= 'F')))
			return "must be \"sha256:\" followed by 64 hex digits";
	}
	return NULL;
}

/* An admin token: "NAME:sha256:" and the 64 hex digits of its SHA-256;
 * the name is what the audit trail and the log say. */
static const char *
config_check_admin_token(const char *s, size_t len)
{
	const char *colon = memchr(s, ':', len);
	size_t n;

	if (colon == NULL || colon == s)
		return "must be \"NAME:sha256:\" followed by the 64 hex digits "
		    "of the token's SHA-256 (parleyctl token NAME makes one)";
	n = (size_t)(colon - s);
	if (n > 32)
		return "has a name over 32 bytes";
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' ||
		    ch == '.'))
			return "has a name that is not letters, digits, _, - "
			    "and .";
	}
	return config_check_password_hash(colon + 1, len - n - 1);
}

/* An octal file mode, "0660". */
static const char *
config_check_mode(const char *s, size_t len)
{
	if (len < 3 || len > 4)
		return "must be an octal mode such as \"0660\"";
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '7')
			return "must be an octal mode such as \"0660\"";
	}
	return NULL;
}

/* An account name follows the username rules. */
static const char *
config_check_account(const char *s, size_t len)
{
	return proto_name_valid(s, len, PROTO_USERNAME_MAX) ? NULL :
	    "is not a valid account name (the username rules)";
}

#ifndef PARLEY_SYSCONFDIR
#define PARLEY_SYSCONFDIR "/usr/local/etc/parley"
#endif
static const char *const config_script_dirs_default[] = {
	PARLEY_SYSCONFDIR "/scripts", PARLEY_SCRIPTDIR, NULL };
/* The scripts a server without configuration runs: the protocol's
 * commands and sane names. Moderation is a community's own policy. */
static const char *const config_scripts_default[] = { "usernames",
	"commands", NULL };

const struct config_option config_options[] = {
	STR(listen, 1, 255, "0.0.0.0", config_check_text,
	    "address to listen on"),
	NUM(port, CONFIG_INT, 0, 65535, 8080,
	    "TCP port; 0 picks a free one"),
	STR(web_root, 1, 4095, NULL, NULL,
	    "directory of the web client; unset: the one installed"),
	LIST(allowed_origins, 1, 255, NULL, config_check_origin, false,
	    "origins allowed to open /ws; empty: any"),
	LIST(rooms, 1, 64, config_rooms_default, config_check_room, true,
	    "rooms that exist at start-up"),
	STR(server_name, 1, 128, "parley", config_check_text,
	    "name sent to clients in welcome"),
	NUM(max_message_bytes, CONFIG_SIZE, 1, 16 * MIB, 4096,
	    "longest chat message, in bytes"),
	NUM(max_frame_bytes, CONFIG_SIZE, 1 * KIB, 16 * MIB, 65536,
	    "longest WebSocket message, in bytes"),
	NUM(max_connections, CONFIG_UINT, 1, 1000000, 10000,
	    "WebSocket clients at once"),
	NUM(max_connections_per_ip, CONFIG_UINT, 1, 1000000, 1000,
	    "WebSocket clients at once from one address"),
	NUM(max_output_bytes, CONFIG_SIZE, 1 * KIB, 1 * GIB, 1 * MIB,
	    "bytes queued for one client before it is dropped"),
	NUM(max_json_depth, CONFIG_UINT, 1, 1000, 32,
	    "deepest nesting accepted in a client's JSON"),
	NUM(ping_interval, CONFIG_UINT, 1, 86400, 30,
	    "seconds of silence before the server pings a client"),
	NUM(ping_timeout, CONFIG_UINT, 1, 86400, 20,
	    "seconds to wait for the pong"),
	NUM(http_timeout, CONFIG_UINT, 1, 3600, 10,
	    "seconds an idle HTTP connection is kept"),
	NUM(http_request_timeout, CONFIG_UINT, 1, 3600, 30,
	    "seconds a client has to send a whole HTTP request"),
	NUM(history_size, CONFIG_UINT, 0, 100000, 100,
	    "messages kept per room; 0: no history"),
	NUM(resume_grace, CONFIG_UINT, 0, 86400, 30,
	    "seconds a dropped connection's session is held; 0: no resume"),
	NUM(max_header_bytes, CONFIG_SIZE, 2 * KIB, 1 * MIB, 64 * KIB,
	    "memory for one HTTP request's headers"),
	NUM(max_rooms, CONFIG_UINT, 1, 10000000, 10000,
	    "rooms on the server"),
	NUM(max_rooms_per_client, CONFIG_UINT, 1, 100000, 100,
	    "rooms one client may be in at once"),
	NUM(max_rooms_per_address, CONFIG_UINT, 1, 10000000, 50,
	    "rooms the guests of one address may own at once"),
	NUM(max_rooms_per_account, CONFIG_UINT, 1, 10000000, 100,
	    "rooms one account may own at once"),
	NUM(empty_room_ttl, CONFIG_UINT, 0, 31536000, 3600,
	    "seconds a guest's room lasts empty; 0: removed once empty"),
	NUM(max_members_per_room, CONFIG_UINT, 1, 10000000, 100000,
	    "members of one room"),
	NUM(presence_limit, CONFIG_UINT, 0, 10000000, 200,
	    "members up to which a room's changes carry the member list"),
	NUM(message_timeout, CONFIG_UINT, 1, 3600, 30,
	    "seconds a client has to finish a WebSocket message"),
	NUM(write_timeout, CONFIG_UINT, 1, 3600, 60,
	    "seconds without write progress before a client is dropped"),
	NUM(connects_per_minute_per_ip, CONFIG_UINT, 0, 10000000, 600,
	    "new WebSocket connections per minute from one address; 0: any"),
	NUM(connect_burst_per_ip, CONFIG_UINT, 1, 10000000, 200,
	    "new connections one address may open at once"),
	NUM(requests_per_minute, CONFIG_UINT, 0, 10000000, 1200,
	    "requests per minute from one client; 0: any"),
	NUM(request_burst, CONFIG_UINT, 1, 10000000, 200,
	    "requests one client may send at once"),
	NUM(messages_per_minute, CONFIG_UINT, 0, 10000000, 600,
	    "chat messages per minute from one client; 0: any"),
	NUM(message_burst, CONFIG_UINT, 1, 10000000, 60,
	    "chat messages one client may send at once"),
	NUM(rooms_per_minute, CONFIG_UINT, 0, 10000000, 10,
	    "rooms one client may create per minute; 0: any"),
	NUM(room_burst, CONFIG_UINT, 1, 10000000, 5,
	    "rooms one client may create at once"),
	NUM(names_per_minute, CONFIG_UINT, 0, 10000000, 10,
	    "username changes per minute from one client; 0: any"),
	NUM(name_burst, CONFIG_UINT, 1, 10000000, 5,
	    "username changes one client may make at once"),
	NUM(flood_close_after, CONFIG_UINT, 0, 65535, 100,
	    "rate-limited requests in a row before close 1008; 0: never"),
	NUM(ban_after, CONFIG_UINT, 0, 1000000, 50,
	    "violations from one address that earn a ban; 0: no bans"),
	NUM(ban_window, CONFIG_UINT, 1, 86400, 60,
	    "seconds over which violations are counted"),
	NUM(ban_seconds, CONFIG_UINT, 1, 604800, 300,
	    "seconds a ban lasts"),
	NUM(oper_backoff_max, CONFIG_UINT, 60, 604800, 3600,
	    "longest wait, seconds, between operator password guesses"),
	NUM(oper_failures_global, CONFIG_UINT, 1, 1000000, 20,
	    "wrong operator passwords, all addresses, before all wait"),
	NUM(ban_on_violations, CONFIG_BOOL, 0, 1, 0,
	    "protocol violations count towards a ban, not only connect abuse"),
	LEVEL(log_level, "info", "error, warn, info or debug"),
	STR(log_file, 1, 4095, NULL, NULL,
	    "file to append log lines to; unset: standard error"),
	NUM(log_syslog, CONFIG_BOOL, 0, 1, 0,
	    "send log lines to syslog (daemon facility) instead"),
	STR(log_format, 4, 4, "text", config_check_log_format,
	    "text or json (one object per line)"),
	LIST(trusted_proxies, 1, 64, config_proxies_default, config_check_cidr,
	    true,
	    "proxies (address or CIDR) whose X-Forwarded-For is believed"),
	STR(admin_listen, 2, 255, NULL, config_check_hostport,
	    "ADDR:PORT or /unix/path of the admin API, /metrics, /healthz"),
	STR(admin_socket_mode, 3, 4, "0660", config_check_mode,
	    "mode of the admin unix socket (octal)"),
	STR(admin_socket_owner, 1, 255, NULL, config_check_text,
	    "USER or USER:GROUP owning the admin unix socket; unset: parleyd's"),
	STR(admin_token_file, 1, 4095, NULL, NULL,
	    "parleyctl's token file; unset: admin.token beside this file"),
	LIST(admin_tokens, 1, 1024, NULL, config_check_admin_token, true,
	    "admin API tokens: \"NAME:sha256:<hex>\"; none: the API refuses"),
	LIST(plugins, 1, 4095, config_plugins_default, config_check_text, true,
	    "native plugins to load: names in plugin_dir, or paths"),
	STR(plugin_dir, 1, 4095, NULL, NULL,
	    "directory of plugins named without a path; unset: the installed"),
	STR(state_dir, 1, 4095, NULL, NULL,
	    "directory for state (history); unset: the installed one"),
	STR(state_store, 6, 6, CONFIG_STATE_DEFAULT, config_check_state_store,
	    "rooms, roles, bans and the audit trail: \"sqlite\" "
	    "(state_dir/state.db) or \"memory\""),
	JSON(plugin_options,
	    "per-plugin options: { [\"name\"] = { key = value, ... } }"),
	LIST(script_dirs, 1, 4095, config_script_dirs_default, NULL, true,
	    "directories searched for NAME.lua, first match wins"),
	LIST(scripts, 1, 64, config_scripts_default, config_check_script_name,
	    true, "Lua scripts to enable, by name; loaded in name order"),
	NUM(script_memory_limit, CONFIG_SIZE, 1 * MIB, 16 * GIB, 64 * MIB,
	    "bytes the Lua state of all scripts may hold"),
	NUM(script_instruction_limit, CONFIG_UINT, 1000, 2000000000, 10000000,
	    "Lua instructions one call into a script may run"),
	STR(script_failure_policy, 4, 4, "deny", config_check_policy,
	    "when a hook fails: pass (go on) or deny (refuse the request)"),
	JSON(script_settings,
	    "per-script settings: { name = { key = value, ... } }"),
	STR(oper_password, 1, 255, NULL, config_check_password_hash,
	    "/oper password as \"sha256:<hex>\"; unset: no operators"),
	NUM(accounts, CONFIG_BOOL, 0, 1, 1,
	    "keep accounts (register, login) in state_dir/accounts.db"),
	LIST(operators, 1, 32, NULL, config_check_account, true,
	    "accounts that are server operators when logged in"),
	NUM(password_memory_kib, CONFIG_UINT, 1024, 4194304, 19456,
	    "argon2id memory per password hash, in KiB"),
	NUM(password_iterations, CONFIG_UINT, 1, 64, 2,
	    "argon2id passes over that memory"),
	NUM(password_parallelism, CONFIG_UINT, 1, 16, 1,
	    "argon2id lanes (threads) per hash"),
};

const size_t config_noptions =
    sizeof config_options / sizeof config_options[0];
