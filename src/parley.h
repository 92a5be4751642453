/*
 * parley.h: the daemon's internal header, one section per source file.
 *
 * Everything here belongs to the single event-loop thread; nothing is
 * locked. The public plugin ABI lives in include/parley/plugin.h and never
 * exposes these types.
 */
#ifndef PARLEY_H
#define PARLEY_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <jansson.h>

#define PARLEY_PROTOCOL_VERSION 1
#define PARLEY_PROTOCOL_MINOR 1 /* the 1.1 additions this server has */
#define PROTO_ROOM_NAME_MAX 64
#define PROTO_USERNAME_MAX 32

/* An assert that stays on in release builds. */
#define PARLEY_ASSERT(e)                                                     \
	do {                                                                 \
		if (!(e))                                                    \
			fatal_assert(#e, __FILE__, __LINE__);                \
	} while (0)
void fatal_assert(const char *expr, const char *file, int line)
    __attribute__((noreturn));

#define container_of(p, type, member)                                        \
	((type *)((char *)(p)-offsetof(type, member)))

/* xmalloc.c: allocation that never returns NULL (out of memory is fatal) */
void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
int xasprintf(char **out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int xvasprintf(char **out, const char *fmt, va_list ap);

/* path.c: bundled files when running from a build tree */
/* The top of the build tree the daemon runs from, or NULL when it runs
 * installed. */
const char *path_build_tree(void);
/* The build tree's rel when it exists there (or the source tree's, for a
 * build made outside it), else installed (copied). */
char *path_bundled(const char *rel, const char *installed);
/* Creates dir and missing parents (mode 0750); 0 when it exists. */
int path_mkdirs(const char *dir, char **cause);

/* log.c: levelled log lines tagged with their source */
enum log_level {
	LOG_LVL_ERROR,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};
extern int log_level;
int log_level_parse(const char *name);
const char *log_level_name(int level);
void log_write(int level, const char *source, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define log_at(lvl, src, ...)                                                \
	do {                                                                 \
		if (log_level >= (lvl))                                      \
			log_write((lvl), (src), __VA_ARGS__);                \
	} while (0)
#define log_error(src, ...) log_at(LOG_LVL_ERROR, src, __VA_ARGS__)
#define log_warn(src, ...) log_at(LOG_LVL_WARN, src, __VA_ARGS__)
#define log_info(src, ...) log_at(LOG_LVL_INFO, src, __VA_ARGS__)
#define log_debug(src, ...) log_at(LOG_LVL_DEBUG, src, __VA_ARGS__)
/* Sends lines to path (NULL: stderr) or syslog, as text or JSON. */
int log_open(const char *path, bool use_syslog, bool json, char **cause);
/* Reopens the log file (SIGUSR1, after logrotate moved it). */
void log_reopen(void);
void log_close(void);
void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/* utf8.c: UTF-8 validation, whole or incremental (RFC 3629) */
#define UTF8_ACCEPT 0u
#define UTF8_REJECT 1u
/* Feeds bytes to an incremental validator whose state starts at
 * UTF8_ACCEPT. Returns the new state: UTF8_REJECT once the input can no
 * longer be valid (sticky), UTF8_ACCEPT at a character boundary, another
 * value in the middle of a character. */
uint32_t utf8_feed(uint32_t state, const uint8_t *p, size_t n);
bool utf8_valid(const char *s, size_t n);
/* True when s holds a Unicode Cc character (C0, DEL or C1); s must be
 * valid UTF-8. */
bool utf8_has_control(const char *s, size_t n);

/* name.c: the canonical form of names (NFKC case folding and the UTS #39
 * confusable skeleton, by ICU) */
/* Sets *out to the key of the name s (allocated; the caller frees it):
 * names with equal keys look alike and count as one. -1 with *cause when
 * s is not UTF-8 or is over 1024 bytes. */
int name_key(const char *s, size_t len, char **out, char **cause);
/* 0 when s has none of the characters refused in names (spaces but
 * U+0020, invisible, default-ignorable, bidi controls, unassigned,
 * private use, a leading combining mark); else -1 with *cause. */
int name_check(const char *s, size_t len, char **cause);
void name_free(void);

/* map.c: string-keyed hash map (open addressing); values are borrowed */
struct map {
	struct map_slot *slots;
	size_t cap; /* power of two, or 0 */
	size_t count;
	size_t used; /* live plus tombstones */
};
struct map_slot {
	char *key; /* owned copy; MAP_TOMBSTONE when deleted */
	size_t keylen;
	uint64_t hash;
	void *value;
};
void map_init(struct map *m);
void map_free(struct map *m);
void *map_find(const struct map *m, const char *key, size_t len);
/* Adds key (copied); returns -1 if it is already present. */
int map_add(struct map *m, const char *key, size_t len, void *value);
/* Removes key; returns its value or NULL. */
void *map_remove(struct map *m, const char *key, size_t len);
/* Iteration: *pos starts at 0; returns false at the end. */
bool map_next(const struct map *m, size_t *pos, const char **key,
    void **value);
uint64_t map_hash(const char *key, size_t len);

/* set.c: hash set of pointers to objects that hold their own key */
struct set {
	void **slots;
	size_t cap; /* power of two, or 0 */
	size_t count;
	size_t used; /* live plus tombstones */
	/* The hash of a member's key; it must not change while the member
	 * is in the set. */
	uint64_t (*hash)(const void *value);
};
/* Adds value (not already a member). */
void set_add(struct set *s, void *value);
/* The member whose key matches key (match(member, key)), found from the
 * key's hash; NULL if none. */
void *set_find(const struct set *s, uint64_t hash,
    bool (*match)(const void *value, const void *key), const void *key);
/* Removes value itself; false if it was not a member. */
bool set_remove(struct set *s, const void *value);
void set_free(struct set *s);
uint64_t set_hash_u64(uint64_t x);

/* ws.c: RFC 6455 codec on buffers: no I/O, no JSON */
#define WS_OP_CONT 0x0
#define WS_OP_TEXT 0x1
#define WS_OP_BINARY 0x2
#define WS_OP_CLOSE 0x8
#define WS_OP_PING 0x9
#define WS_OP_PONG 0xA

#define WS_CLOSE_NORMAL 1000
#define WS_CLOSE_GOING_AWAY 1001
#define WS_CLOSE_PROTOCOL 1002
#define WS_CLOSE_UNSUPPORTED 1003
#define WS_CLOSE_NO_STATUS 1005 /* never sent: "no code in the frame" */
#define WS_CLOSE_INVALID_DATA 1007
#define WS_CLOSE_POLICY 1008
#define WS_CLOSE_TOO_BIG 1009
#define WS_CLOSE_INTERNAL 1011

#define WS_ACCEPT_LEN 28 /* base64 of a SHA-1 digest, without NUL */
#define WS_MAX_HEADER 10 /* server frames: unmasked, up to 64-bit length */

/* Checks an upgrade request's headers (any may be NULL when absent).
 * Returns 0 and fills accept (WS_ACCEPT_LEN + 1 bytes, NUL-terminated)
 * when the request is a valid version-13 upgrade, else the HTTP status to
 * answer with (400, 405 or 426) and sets *cause to a static reason. */
int ws_handshake_check(const char *method, const char *upgrade,
    const char *connection, const char *key, const char *version,
    char *accept, const char **cause);
/* The value without the optional white space (SP, HTAB) around it (RFC
 * 9110 section 5.5): a pointer into value, its length in *len. */
const char *ws_header_trim(const char *value, size_t *len);
/* Computes Sec-WebSocket-Accept for a key (nettle SHA-1 and base64). */
void ws_accept_key(const char *key, char *accept);

/* Receives one complete message or control frame. For WS_OP_TEXT the
 * payload is whole (fragments joined) and valid UTF-8. For WS_OP_CLOSE,
 * code is the received close code (WS_CLOSE_NO_STATUS when the frame had
 * none) and data/len the reason. Returns 0 to go on, non-zero to stop
 * parsing at once (ws_parser_feed then returns -1). */
typedef int (*ws_message_cb)(void *arg, int opcode, const uint8_t *data,
    size_t len, int code);

/* What a parser holds only while a frame or a fragmented message is in
 * flight; an idle connection has none of it. */
struct ws_frame {
	uint64_t frame_len;  /* payload length of the current frame */
	uint64_t frame_done; /* payload bytes of it already consumed */
	uint8_t *msg;        /* message buffer, NULL while none pending */
	size_t msg_len;
	size_t msg_cap;
	uint32_t utf8;       /* validator state across fragments */
	uint8_t hdr[14];
	uint8_t hdr_len;
	uint8_t opcode;     /* opcode of the frame being read */
	uint8_t msg_opcode; /* opcode of the fragmented message, or 0 */
	bool fin;
	uint8_t mask[4];
	uint8_t mask_pos;
	uint8_t ctl_len;
	uint8_t ctl[125]; /* control frame payload */
};
struct ws_parser {
	struct ws_frame *f;   /* NULL while idle */
	uint32_t max_message; /* inclusive limit for a whole message */
	uint8_t state;
};
/* max_message is at most UINT32_MAX. */
void ws_parser_init(struct ws_parser *p, size_t max_message);
/* Frees what the parser holds and stops it; safe to call twice, and from
 * the message callback. */
void ws_parser_free(struct ws_parser *p);
/* Feeds received bytes, calling cb for each complete message. Returns 0
 * when all bytes were consumed, -1 when cb asked to stop, or a close code
 * (1002, 1003, 1007, 1009) on a violation; the parser is then dead.
 * The message buffer is allocated only once a frame header's length has
 * been checked; the in-flight state (struct ws_frame) only while bytes of
 * an unfinished frame or message are held, so an idle parser holds no
 * memory. */
int ws_parser_feed(struct ws_parser *p, const uint8_t *data, size_t len,
    ws_message_cb cb, void *arg);
/* True while a fragmented or partly received message is pending. */
bool ws_parser_busy(const struct ws_parser *p);
/* Writes a server frame header (FIN set, unmasked) for a payload of len
 * bytes; returns its size (2, 4 or 10). */
size_t ws_frame_header(uint8_t *out, int opcode, size_t len);
/* True when a close code may appear in a close frame on the wire. */
bool ws_close_code_valid(int code);

/* buf.c: refcounted, immutable frames shared between output queues */
struct buf {
	uint32_t refs;
	uint32_t len;
	uint8_t data[];
};
/* Allocates a frame holding a WebSocket header plus payload; refs = 1. */
struct buf *buf_frame(int opcode, const void *payload, size_t len);
/* Encodes json as one text frame (encoded once, shared by all). */
struct buf *buf_json(const json_t *json);
static inline struct buf *
buf_ref(struct buf *b)
{
	b->refs++;
	return b;
}
void buf_unref(struct buf *b);

/* metrics.c: counters for /metrics (Prometheus text format) */
enum metric {
	METRIC_CONNECTIONS_TOTAL,
	METRIC_MESSAGES_IN,        /* chat messages accepted */
	METRIC_MESSAGES_DELIVERED, /* new_message frames queued */
	METRIC_BYTES_IN,
	METRIC_BYTES_OUT,
	METRIC_RATE_LIMITED,
	METRIC_SLOW_CONSUMERS,
	METRIC_HTTP_REFUSED,       /* upgrades refused by admission */
	METRIC_HTTP_TIMEOUTS,      /* requests over http_request_timeout */
	METRIC_ACCEPT_REFUSED,     /* 503 at accept: near the fd limit */
	METRIC_ACCEPT_PAUSED,      /* accepting paused: at the fd limit */
	METRIC_HTTP_EVICTED,       /* idle HTTP connections closed for room */
	METRIC_ROOM_MEMBERS,       /* gauge: memberships in all rooms */
	METRIC_OPER_FAILURES,      /* wrong operator passwords */
	METRIC_OPER_REFUSED,       /* guesses refused unchecked (back-off) */
	METRIC_COUNT
};
extern uint64_t metrics[METRIC_COUNT];
static inline void
metrics_add(enum metric m, uint64_t n)
{
	metrics[m] += n;
}
/* Counts a closed connection by its close code (1006: no handshake). */
void metrics_close(int code);
void metrics_error(int e); /* an enum proto_err */
/* Loop lag: how late the 1 s metrics timer fired, in ms. */
void metrics_init(void);
/* The lag of the last run of that timer and the largest seen, in ms. */
void metrics_loop_lag(uint64_t *last_ms, uint64_t *max_ms);
void metrics_free(void);
/* Returns the exposition text (caller frees). */
char *metrics_render(size_t *len);
/* Extra sections from scripts and plugins: fn appends to a string
 * buffer through metrics_printf. */
struct metrics_buf;
void metrics_printf(struct metrics_buf *mb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void metrics_register(void (*fn)(struct metrics_buf *mb));

/* notify.c: systemd's NOTIFY_SOCKET protocol, spoken directly */
/* Sends a state string ("READY=1", "STOPPING=1", ...); no-op without
 * NOTIFY_SOCKET. */
void notify_send(const char *state);
void notify_reloading(void);

/* limit.c: token buckets, per-address admission and temporary bans */
struct bucket {
	float tokens;
	uint32_t last; /* ms since start, wrapping */
};
enum limit_admit {
	LIMIT_OK,
	LIMIT_FULL,      /* the server is at max_connections: 503 */
	LIMIT_ADDR_FULL, /* the address is at its cap: 429 */
	LIMIT_RATE,      /* the address connects too fast: 429 */
	LIMIT_BANNED,    /* the address is banned for a while: 429 */
};
/* Exponential back-off after failures (operator passwords). */
struct limit_backoff {
	unsigned fails;  /* wrong in a row */
	uint64_t last;   /* loop_now() of the last failure */
	uint64_t until;  /* loop_now() before which nothing is checked */
};
void bucket_init(struct bucket *b, unsigned burst);
/* Takes a token; false when the bucket is empty. per_minute 0: no limit. */
bool bucket_take(struct bucket *b, unsigned per_minute, unsigned burst);
void limit_init(void);
void limit_free(void);
/* Decides whether addr may open another WebSocket now. */
enum limit_admit limit_admit(const char *addr, unsigned *retry_after);
/* The text of addr, shared by every client of that address and kept
 * while one holds it; addr_unref takes the text ref returned. */
const char *limit_addr_ref(const char *addr);
void limit_addr_unref(const char *text);
void limit_conn_open(const char *addr);
void limit_conn_close(const char *addr);
/* Counts abuse of admission (connecting too fast, over the per-address
 * cap) by addr; returns true when that earned a ban. */
bool limit_strike(const char *addr);
/* Counts a protocol violation by addr, when ban_on_violations is on;
 * returns true when that earned a ban. */
bool limit_violation(const char *addr);
void limit_sweep(void);
/* Seconds before an operator password guess from addr (NULL: unknown)
 * may be checked, 0 for now; a guess refused this way is counted. */
unsigned limit_oper_wait(const char *addr);
/* Records a checked guess from addr (may be NULL), right or wrong;
 * wrong ones are counted and start or lengthen the back-off. */
void limit_oper_result(const char *addr, bool ok);

/* loop.c: epoll file descriptors, timers and the before-sleep step */
struct loop_fd;
typedef void (*loop_fd_cb)(struct loop_fd *lfd, uint32_t events);
struct loop_fd {
	int fd;
	uint32_t events;
	loop_fd_cb cb;
};
struct loop_timer;
typedef void (*loop_timer_cb)(struct loop_timer *t);
struct loop_timer {
	uint64_t when; /* loop_now() milliseconds */
	size_t slot;   /* heap index + 1, 0 when not scheduled */
	loop_timer_cb cb;
};
int loop_init(char **cause);
void loop_free(void);
/* Monotonic milliseconds, cached per iteration. */
uint64_t loop_now(void);
/* Wall-clock milliseconds since the epoch. */
uint64_t loop_wall_ms(void);
int loop_fd_add(struct loop_fd *lfd, int fd, uint32_t events, loop_fd_cb cb);
int loop_fd_mod(struct loop_fd *lfd, uint32_t events);
void loop_fd_remove(struct loop_fd *lfd);
/* Schedules (or reschedules) t to fire after ms milliseconds. */
void loop_timer_set(struct loop_timer *t, uint64_t ms, loop_timer_cb cb);
void loop_timer_cancel(struct loop_timer *t);
static inline bool
loop_timer_pending(const struct loop_timer *t)
{
	return t->slot != 0;
}
/* Functions run before every sleep, in registration order. */
void loop_before_sleep(void (*fn)(void));
/* Runs until loop_stop(); returns 0. */
int loop_run(void);
void loop_stop(void);
bool loop_stopping(void);

/* config.c: the configuration file (Lua syntax) and its option table */
struct strlist {
	char **v;
	size_t n;
};
struct config {
	char *listen;             /* address to bind, "0.0.0.0" */
	int port;                 /* 8080; 0 picks a free port */
	char *web_root;           /* NULL: built-in default */
	struct strlist allowed_origins; /* empty: any origin */
	struct strlist rooms;     /* rooms at start-up: general */
	char *server_name;        /* "parley", sent in welcome */
	size_t max_message_bytes; /* chat message text: 4096 */
	size_t max_frame_bytes;   /* one WebSocket message: 65536 */
	unsigned max_connections; /* 10000 */
	unsigned max_connections_per_ip; /* 1000 */
	size_t max_output_bytes;  /* per-client queue cap: 1 MiB */
	unsigned max_json_depth;  /* 32 */
	unsigned ping_interval;   /* seconds: 30 */
	unsigned ping_timeout;    /* seconds: 20 */
	unsigned http_timeout;    /* seconds idle in the HTTP phase: 10 */
	unsigned http_request_timeout; /* seconds to send a request: 30 */
	unsigned history_size;    /* per room: 100; 0 = none */
	unsigned resume_grace;    /* seconds a dropped session is held: 30 */
	/* limits and rate limits (limit.c); per_minute 0 = no limit */
	size_t max_header_bytes;  /* HTTP request memory: 64 KiB */
	unsigned max_rooms;       /* rooms on the server: 10000 */
	unsigned max_rooms_per_client; /* rooms one client is in: 100 */
	unsigned max_rooms_per_address; /* guest rooms one address owns: 50 */
	unsigned max_rooms_per_account; /* rooms one account owns: 100 */
	unsigned empty_room_ttl;  /* seconds a guest's room lives empty: 3600 */
	char *state_store;        /* "sqlite" (state_dir/state.db) or "memory" */
	unsigned max_members_per_room; /* 100000 */
	unsigned presence_limit;  /* full member lists up to 200 members */
	unsigned message_timeout; /* seconds to finish a message: 30 */
	unsigned write_timeout;   /* seconds without write progress: 60 */
	unsigned connects_per_minute_per_ip; /* 600 */
	unsigned connect_burst_per_ip;       /* 200 */
	unsigned requests_per_minute;  /* any request: 1200 */
	unsigned request_burst;        /* 200 */
	unsigned messages_per_minute;  /* send_message: 600 */
	unsigned message_burst;        /* 60 */
	unsigned rooms_per_minute;     /* create_room: 10 */
	unsigned room_burst;           /* 5 */
	unsigned names_per_minute;     /* username changes: 10 */
	unsigned name_burst;           /* 5 */
	unsigned flood_close_after; /* rate-limited requests in a row: 100 */
	unsigned ban_after;   /* violations within ban_window: 50; 0 = never */
	unsigned ban_window;  /* seconds: 60 */
	unsigned ban_seconds; /* seconds: 300 */
	unsigned oper_backoff_max;     /* seconds: 3600 */
	unsigned oper_failures_global; /* before server-wide back-off: 20 */
	bool ban_on_violations; /* protocol violations count: false */
	int log_level;            /* LOG_LVL_INFO */
	char *log_file;           /* NULL: stderr */
	bool log_syslog;          /* false */
	char *log_format;         /* "text" or "json" */
	struct strlist trusted_proxies; /* CIDR blocks: loopback */
	char *admin_listen;       /* "ADDR:PORT" or a unix socket path for
				     the admin API and /metrics; NULL: off */
	char *admin_socket_mode;  /* "0660" */
	char *admin_socket_owner; /* "USER[:GROUP]"; NULL: parleyd's */
	struct strlist admin_tokens; /* "NAME:sha256:<hex>" */
	char *admin_token_file;   /* parleyctl's token; NULL: the default */
	/* native plugins (plugin.c) */
	struct strlist plugins;   /* names or paths, loaded in order:
				     {"history-sqlite"} when it is built */
	char *state_dir;          /* NULL: PARLEY_STATEDIR (or build tree) */
	char *plugin_dir;         /* NULL: PARLEY_PLUGINDIR (or build tree) */
	json_t *plugin_options;   /* object: name -> options; NULL: none */
	/* Lua scripts (script.c) */
	struct strlist script_dirs; /* searched in order */
	struct strlist scripts;   /* enabled, by name: usernames, commands */
	size_t script_memory_limit; /* bytes, whole state: 64 MiB */
	unsigned script_instruction_limit; /* per call: 10 million */
	char *script_failure_policy; /* "pass" or "deny" */
	json_t *script_settings;  /* object: script -> settings; NULL: none */
	char *oper_password;      /* "sha256:<hex>"; NULL: no /oper */
	/* accounts kept by the server (account.c) */
	bool accounts;            /* true: on when built with SQLite */
	struct strlist operators; /* accounts given the operator role */
	unsigned password_memory_kib;  /* argon2id memory: 19456 */
	unsigned password_iterations;  /* argon2id passes: 2 */
	unsigned password_parallelism; /* argon2id lanes: 1 */
};
/* Fills c with the built-in defaults. */
void config_defaults(struct config *c);
/* Reads path over the defaults already in c. On error returns -1 and
 * sets *cause to "FILE:LINE: reason" (caller frees). */
int config_load(struct config *c, const char *path, char **cause);
/* Same, from a string (name is used in messages); for tests and fuzzing. */
int config_load_string(struct config *c, const char *name, const char *text,
    size_t len, char **cause);
void config_free(struct config *c);
extern struct config *cfg; /* the configuration in force */

/* static.c: files under the web root */
struct MHD_Connection;
/* Answers a GET or HEAD for url (already percent-decoded by MHD) from
 * root; returns an MHD_Result. */
int static_serve(struct MHD_Connection *conn, const char *root,
    const char *method, const char *url);
/* Adds the security headers every response carries. */
struct MHD_Response;
void static_add_security_headers(struct MHD_Response *resp, bool html);

/* http.c: the MHD daemon inside our loop, routing, the /ws upgrade */
/* Starts the main daemon on listen_fd and, when admin_fd is not -1, the
 * admin listener (/metrics and /healthz only). */
int http_start(int listen_fd, int admin_fd, char **cause);
/* True when text is an address or CIDR block, IPv4 or IPv6. */
bool http_cidr_valid(const char *text);
/* True for addresses no per-address limit applies to: 127.0.0.1, ::1 and
 * the trusted proxies. */
bool http_address_exempt(const char *addr);
/* Sets the trusted proxies (CIDR list); -1 with *cause when one is bad. */
int http_set_proxies(const struct strlist *list, char **cause);
void http_stop(void);
/* Stops accepting new connections; open ones go on. */
void http_quiesce(void);
/* Asks for an MHD_run before the next sleep (after an upgrade close). */
void http_kick(void);
/* Hands a socket just accepted to the main or the admin daemon (which
 * owns it from then on, even when it refuses it). */
void http_add(bool admin, int fd, const struct sockaddr *sa, socklen_t len);
/* HTTP-phase connections open (both daemons). */
unsigned http_count(void);
/* Closes the HTTP connection idle the longest (at least a second) to
 * make room; false when there is none. */
bool http_evict_idle(void);

/* admin.c: the admin API under /admin/v1/ on the admin listener */
#define ADMIN_PREFIX "/admin/v1/"
#define ADMIN_BODY_MAX (64 * 1024)
#define ADMIN_TOKEN_MAX 512      /* bytes of a bearer token */
#define ADMIN_TOKEN_NAME_MAX 32
/* True for the URLs of the admin API (the public port answers 404). */
bool admin_path(const char *url);
/* The MHD access handler for those URLs on the admin listener; addr is
 * the peer's. *req_cls is admin.c's (admin_request_done frees it). */
int admin_request(struct MHD_Connection *conn, const char *addr,
    const char *url, const char *method, const char *upload_data,
    size_t *upload_data_size, void **req_cls);
void admin_request_done(void *req_cls);
void admin_start(void);
/* Answers the requests waiting for the worker (before MHD stops). */
void admin_stop(void);
void admin_free(void);
/* The reload the API's reload runs (main.c's, as SIGHUP does): 0, or -1
 * with *result (allocated, may stay NULL) saying why the configuration
 * was kept. */
void admin_set_reload(int (*fn)(char **result));
/* Request parsing, apart for the fuzzer: the route of METHOD path (plen
 * bytes, after the prefix): 0 with its index and the room name in it
 * (a pointer into path), -1 for no such path, -2 for another method. */
int admin_route_match(const char *method, const char *path, size_t plen,
    size_t *route, const char **name, size_t *name_len);
/* The token of an "Authorization: Bearer" value, or NULL. */
const char *admin_bearer(const char *header, size_t *len);
/* A body as a JSON object (an empty body: {}); NULL with *why. */
json_t *admin_body_parse(const char *body, size_t len, const char **why);

/* listen.c: accepting connections within the open-file budget */
/* Watches a listening socket (non-blocking) for the main or the admin
 * daemon. */
int listen_start(int fd, bool admin, char **cause);
/* Stops accepting and closes the listening sockets. */
void listen_stop(void);
/* Connections (WebSockets and HTTP) the open-file budget has room for. */
unsigned listen_capacity(void);

/* conn.c: upgraded sockets: read, codec, output queue, ping, close */
struct client;
/* A client's output waiting for its socket: a ring of shared frames,
 * allocated when the first frame waits and freed once all are written. */
struct conn_queue {
	uint64_t stalled; /* loop_now() since output has waited */
	size_t bytes;     /* bytes queued, for the cap */
	uint32_t head, len, cap;
	uint32_t off;     /* bytes of ring[head] already written */
	struct buf *ring[];
};
/* Takes over the upgraded socket of c, admitted by http.c (fd is conn.c's from now on, closed when
 * the client goes); extra_in is fed to the codec first. */
void conn_accept(struct client *c, int fd, const char *extra_in,
    size_t extra_len);
/* Queues a frame for c (takes a new reference); a queue over its cap
 * closes the client as a slow consumer. */
void conn_send(struct client *c, struct buf *b);
/* Encodes and queues one JSON object for c only; steals json. */
void conn_send_new(struct client *c, json_t *json);
/* Starts the close handshake with code and reason. */
void conn_close(struct client *c, int code, const char *reason);
/* Flushes queued output of every client that has some (before sleep). */
void conn_flush_pending(void);
/* Sends close 1001 to everyone, flushes, waits up to ms. */
void conn_shutdown_all(unsigned ms);
unsigned conn_count(void);
/* Drops c's queued output and codec state (when the client is freed). */
void conn_forget(struct client *c);
/* Moves the connection of from (the client whose message is being
 * handled) to to, which is held or has a connection of its own, closed
 * first with code (4001): to's address, socket, output and codec state
 * become from's, and what from still receives goes to to. from is left
 * without a connection (the caller removes it). */
void conn_move(struct client *from, struct client *to, int code,
    const char *reason);
/* conn_move outside of from's read (an answer that came later). */
void conn_move_now(struct client *from, struct client *to);
/* Closes c's connection at once with code, c staying (chat_vanish). */
void conn_end(struct client *c, int code, const char *reason);

/* The bytes of a secret's SHA-256 a client keeps (struct client). */
#define SESSION_DIGEST_BYTES 16
/* session.c: sessions that outlive their connection (protocol 1.1,
 * "Resume"): each client's resume secret, of which only a hash is kept,
 * and the clients held after their connection dropped. A held client is
 * the client it was, without its socket and buffers. */
/* A new secret for c (allocated; the caller sends it and frees it),
 * replacing c's previous one; NULL when resume is off. */
char *session_issue(struct client *c);
/* The client whose secret is secret (open or held), or NULL. */
struct client *session_find(const char *secret, size_t len);
/* c no longer has a session (it is gone). */
void session_forget(struct client *c);
/* c's connection dropped: holds c for resume_grace seconds, then
 * chat_disconnect(c, "timeout"). False (nothing done) when resume is off
 * or c has no session. */
bool session_hold(struct client *c);
/* c, held, is closed for a policy reason (a script, a plugin, an expired
 * token): it ends as soon as the loop turns, its rooms told
 * "disconnected". */
void session_end(struct client *c);
/* c, held, is taken over by a new connection: its timer stops. */
void session_unhold(struct client *c);
/* s (held or open) is taken over by a resume: held no more, counted. */
void session_resumed(struct client *s);
/* Sessions held now (they count as connections for the limits). */
unsigned session_held(void);
/* The server stops: held sessions go (disconnect hooks, no grace). */
void session_drop_all(void);
/* Sessions across servers: the SHA-256 of a presented secret; false when
 * no session could have it. */
bool session_digest_of(const char *secret, size_t len, uint8_t *out);
/* The client whose secret has SHA-256 hash (open or held), or NULL; only
 * the first SESSION_DIGEST_BYTES of hash are compared. */
struct client *session_find_hash(const uint8_t *hash);
/* {"hash", "account", "roles"} of c's session, for the plugins' relays
 * (allocated); the hash alone when brief. */
char *session_state(const struct client *c, bool brief);

/* client.c: clients: id, name, rooms joined, lifetime */
struct membership;
/*
 * An idle connection costs about this struct, its name and its room
 * memberships: W3 (doc/PERFORMANCE.md) holds 10,000 of them within
 * 0.6 KiB each, so the struct stays within malloc's 256-byte chunk
 * (asserted in client.c). Fields are ordered by size to leave no holes;
 * what few clients need is kept beside them (client.c, "client_extra").
 */
struct client {
	uint64_t id;
	char *name;
	uint64_t name_hash; /* of name_key(name), what the name is held by */
	char *account;  /* the account logged in, NULL for a guest */
	const char *addr; /* the address as text, shared (limit_addr_ref) */
	/* Rooms joined, in join order: most clients are in one, kept in
	 * place of the list (client_room). */
	union {
		struct membership *one;   /* while nrooms <= 1 */
		struct membership **many; /* while nrooms > 1 */
	} rooms;
	uint32_t roles; /* bit i: role_names[i] (client_role_*) */
	uint32_t nrooms;
	uint16_t refs; /* nothing takes a second reference yet */
	uint16_t flood; /* rate-limited requests in a row */
	bool closing : 1; /* no more input is handled */
	bool dead : 1;    /* released; freed before sleep */
	bool pending : 1; /* on the pending-write list */
	bool remote : 1;  /* another server's client (a plugin's), no socket */
	bool account_busy : 1; /* a register or login is being worked on */
	bool spoke : 1;   /* a request was handled (resume must come first) */
	bool held : 1;    /* its connection dropped: held for a resume */
	bool has_session : 1; /* session holds a secret's hash (session.c) */
	bool resuming : 1; /* its resume waits for a plugin (another server) */
	/* connection state, owned by conn.c: what only a busy connection
	 * needs (output waiting, a message half received) is allocated
	 * while it is needed, so an idle one costs little */
	uint8_t close_state : 2;
	uint16_t close_code;
	/* The first 16 bytes of the SHA-256 of its resume secret: 128 bits
	 * are ample to find, among this server's sessions, the one of a
	 * 192-bit random secret (session.c). */
	uint8_t session[SESSION_DIGEST_BYTES];
	struct loop_fd lfd;
	struct loop_timer timer;
	struct ws_parser parser;
	struct conn_queue *out; /* output waiting; NULL when there is none */
	struct client *next_pending;
	struct client *prev, *next; /* all clients */
	uint64_t opened;
	uint64_t last_rx; /* loop_now() of the last received frame */
	uint64_t ping_sent; /* 0 while no ping is outstanding */
	uint64_t msg_started; /* loop_now() when a partial message began */
	uint64_t bytes_in, bytes_out;
	/* rate limits (limit.c) */
	struct bucket rl_requests, rl_messages, rl_rooms, rl_names;
};
/* The i-th room c joined (i < c->nrooms), its membership. */
#define client_room(c, i)                                                    \
	((c)->nrooms <= 1 ? (c)->rooms.one : (c)->rooms.many[(i)])
/* What a guest's ownership, roles, bans and mutes bind to: an opaque key
 * (never a secret) of its session, made on first need (most guests never
 * need one) and kept by a resume. */
const char *client_session_key(const struct client *c);
/* c's session key, or NULL while none was made: then it names nothing. */
const char *client_session_key_find(const struct client *c);
void client_set_session_key(struct client *c, const char *key);
/* Those of c's roles that came with its account. */
uint32_t client_identity_roles(const struct client *c);
/* The request id of c's resume that waits for another server: set
 * (stolen; NULL for none) and taken back (the caller owns it). */
void client_set_resume_id_new(struct client *c, json_t *id);
json_t *client_take_resume_id(struct client *c);
/* Creates a client with a fresh guest name; refs = 1. */
struct client *client_create(const char *addr);
void client_unref(struct client *c);
/* c is gone: the same as chat_disconnect(c, reason). */
void client_remove(struct client *c, const char *reason);
/* Marks c dead and forgets its id and name; it is freed before the next
 * sleep. Only chat_disconnect calls it, after c has left its rooms. */
void client_unlink(struct client *c);
struct client *client_find_by_id(uint64_t id);
struct client *client_find_by_name(const char *name, size_t len);
/* Sets c's name; returns -1 if another client holds its key (name.c). */
int client_set_name(struct client *c, const char *name, size_t len);
/* Sends b to every connected client. */
void client_broadcast_all(struct buf *b);
extern struct client *clients; /* list head */
extern unsigned client_count;
/* Usernames as they are compared: the key of the name map (allocated;
 * its length is strlen's). Account names compare the same way. */
char *client_key(const char *name, size_t len);
/* A free guest name for c (allocated): "guest-4711". */
char *client_guest_name(const struct client *c);
/* Sets who c is: account (NULL: a guest) and the server roles that come
 * with it (NULL-terminated, may be NULL), in place of the previous
 * identity's roles. Changes no name and tells nobody: chat_login_as does
 * that. */
void client_set_identity(struct client *c, const char *account,
    const char *const *roles);
/* The server's operator role, as scripts know it; the protocol calls it
 * "operator", and either name may be given to the role functions. */
#define CLIENT_ROLE_OPERATOR "oper"
/* Roles are small names ("oper", ...) kept as bits; up to 32 names. */
bool client_has_role(const struct client *c, const char *role);
/* Returns -1 when the server already knows 32 role names. */
int client_add_role(struct client *c, const char *role);
void client_remove_role(struct client *c, const char *role);
/* Gives c role as its identity's (on), or takes it when the identity
 * gave it (a role a script or /oper gave stays). */
void client_identity_role(struct client *c, const char *role, bool on);
/* Returns a new JSON array of c's role names. */
json_t *client_roles(const struct client *c);
/* The same as the protocol shows them ("operator" for "oper"). */
json_t *client_roles_public(const struct client *c);
/* Frees dead clients (before-sleep step). */
void client_reap(void);

/* room.c: rooms: the data structure (find, members, seq, fan-out) */
struct room {
	char *name;
	size_t name_len;
	uint64_t owner; /* id of the creating client, 0 for configured */
	char *owner_account; /* the creator's account, NULL for a guest's */
	/* Rooms that last (state.c keeps them): */
	uint64_t rid;        /* durable id, 64 random bits: never reused */
	char *hkey;          /* its history's key: name, US, rid in hex */
	size_t hkey_len;
	char *owner_session; /* a guest owner's session key, or NULL */
	char *owner_addr;    /* the creating guest's address (quotas) */
	char *topic;         /* NULL when none */
	uint64_t created;    /* Unix ms */
	uint64_t empty_since; /* Unix ms it became empty; 0: it is not */
	json_t *roles;       /* object: member key -> "moderator" */
	bool configured;     /* named in the configuration */
	struct room_authors *authors; /* who wrote the recent messages */
	uint64_t seq;   /* last seq given */
	struct membership *head, *tail; /* members in join order */
	size_t count;
	bool removed; /* out of the map; freed before the next sleep */
};
struct membership {
	struct room *room;
	struct client *client;
	struct membership *prev, *next;
	uint32_t index; /* position in client->rooms */
	/* loop_now() (ms, wrapping) of the last typing passed on, 0 for
	 * none: the one word typing needs, per member and room (chat.c) */
	uint32_t typed;
};
/* The id of the client owning r now: the one logged in as its owner
 * account (0 while none is), else its creator's. */
uint64_t room_owner_id(const struct room *r);
/* Creates a room (seq 0) with a fresh durable id; NULL when the name is
 * taken. */
struct room *room_create(const char *name, size_t len, uint64_t owner);
/* Gives r the durable id rid (a room restored from the state store). */
void room_set_id(struct room *r, uint64_t rid);
/* Remembers that seq was written by key (an account or session key) and
 * finds it again: a bounded memory of the newest messages' authors. key
 * (allocated, or NULL) is handed over. */
void room_author_add(struct room *r, uint64_t seq, char *key);
const char *room_author(const struct room *r, uint64_t seq);
struct room *room_find(const char *name, size_t len);
struct membership *room_membership(const struct room *r,
    const struct client *c);
/* Adds c at the end of r's members. */
void room_join(struct room *r, struct client *c);
/* Removes c; returns -1 if c was not a member. */
int room_leave(struct room *r, struct client *c);
/* Returns a new JSON array of the names of limit members from offset, in
 * join order. */
json_t *room_participants(const struct room *r, size_t offset, size_t limit);
/* Sends b to every member of r. */
void room_broadcast(struct room *r, struct buf *b);
/* Steals json, encodes it once and sends it to every member. */
void room_broadcast_new(struct room *r, json_t *json);
/* Takes r (without members) out of the map and the lists; it is freed
 * before the next sleep, as a walk may still hold it. */
void room_remove(struct room *r);
/* Frees removed rooms (before-sleep step). */
void room_reap(void);
/* Calls fn for every room in creation order until it returns non-zero,
 * which is returned; fn may create rooms (they are visited too). */
int room_each(int (*fn)(struct room *r, void *arg), void *arg);
json_t *room_names(void);
json_t *room_list(void); /* [{roomName, count}] */
unsigned room_count(void);
void room_free_all(void);

/* history.c: the history stores: one store serves every room, the
 * built-in in-memory ring unless a plugin registered a durable one
 * (history-plugin.c adapts a plugin's store to this interface) */
#define HISTORY_NO_BEFORE UINT64_MAX
#define HISTORY_NO_AFTER UINT64_MAX /* no lower bound: the newest */
/* Who asked for a room's history, kept while a store answers later. */
struct history_waiter;
struct history_store {
	const char *owner; /* "ring" or the plugin's name, for logs */
	/* Records one message; returns 0 or -1 (logged by the store). */
	int (*append)(void *arg, const char *room, size_t room_len,
	    uint64_t seq, uint64_t ts, const char *sender, const char *text,
	    size_t len, bool action);
	/* Returns a new JSON array of the newest limit messages with seq <
	 * before (HISTORY_NO_BEFORE: no bound), oldest first, or NULL:
	 * *later false on error, true when the store keeps w and answers
	 * through history_answer (a store across the network). With after
	 * (not HISTORY_NO_AFTER), the oldest limit messages with after <
	 * seq < before instead. */
	json_t *(*read)(void *arg, const char *room, size_t room_len,
	    uint64_t after, uint64_t before, size_t limit,
	    struct history_waiter *w, bool *later);
	/* True when read takes after (pages forward). */
	bool (*pages_forward)(void *arg);
	/* The highest seq stored for room, 0 when none. */
	uint64_t (*last_seq)(void *arg, const char *room, size_t room_len);
	/* Forgets the text of message seq (a deleted message), keeping
	 * the seq as a tombstone; 0 or -1 (logged by the store). May be
	 * NULL: answers are still filtered (history_delete). */
	int (*tombstone)(void *arg, const char *room, size_t room_len,
	    uint64_t seq);
	void *arg;
};
/* Registers a durable store (copied) in place of the ring; NULL goes
 * back to the ring. Returns -1 if another store is already registered. */
int history_set_store(const struct history_store *s);
bool history_enabled(void);
/* "ring" or the name of the plugin whose store is in service. */
const char *history_store_name(void);
void history_append(struct room *r, uint64_t seq, uint64_t ts,
    const char *sender, const char *text, size_t len, bool action);
/* Answers c's history request (id) now, or later when the store is slow;
 * PROTO_OK, or the error to answer at once. */
enum proto_err history_request(struct client *c, const json_t *id,
    const struct room *r, uint64_t after, uint64_t before, size_t limit);
/* A late answer: msgs (taken; NULL = the store failed) goes to the
 * client if it is still there; w is freed. */
void history_answer(struct history_waiter *w, json_t *msgs);
uint64_t history_last_seq(const struct room *r);
/* A room is gone: the ring drops its messages (a durable store keeps
 * them for now). */
void history_forget(const char *room, size_t len);
/* Makes r's message seq a tombstone (deleted: no text) in the state
 * store and in the history store, which forgets the text; false when the
 * store does not have it. */
bool history_delete(struct room *r, uint64_t seq);
/* The tombstones of the room whose history key is hkey are now tomb (a
 * record from another server): the history store forgets the texts of
 * the seqs that were not tombstones yet. */
void history_tombs_changed(const char *hkey, const json_t *tomb);
/* Frees the ring's messages (at exit). */
void history_free_all(void);

/* state.c: the community's durable state (rooms, roles, bans, mutes,
 * the audit trail, scripts' store) as JSON records of a kind under a
 * key, all kept in memory and written behind by the store in service:
 * the embedded SQLite database (state_dir/state.db, WAL, a thread of its
 * own), or a plugin's. Kinds: "room" (by name), "ban" and "mute" (by
 * room id and target), "audit" (by time), "store" (by script). */
struct state_store {
	const char *owner; /* the plugin's name, for logs */
	/* Writes (value: a JSON text) or deletes (value NULL) a record;
	 * must not block the loop. */
	int (*put)(void *arg, const char *kind, const char *key,
	    const char *value);
	void *arg;
};
struct chat_actor;
/* Registers a plugin's store in place of the embedded one; NULL goes
 * back. -1 when one is registered already. */
int state_set_store(const struct state_store *s);
/* Opens the store of cfg->state_store and reads every record; -1 with
 * *cause (caller frees). */
int state_init(char **cause);
/* Writes what waits and closes the store. */
void state_free(void);
/* True when the state outlives the process. */
bool state_durable(void);
/* Sets kind/key to value (taken), or deletes it (value NULL). */
void state_put_new(const char *kind, const char *key, json_t *value);
/* The record (borrowed), or NULL. */
json_t *state_get(const char *kind, const char *key);
/* Every record of kind: an object key -> value (borrowed; do not change
 * it while walking, copy the keys). */
json_t *state_all(const char *kind);
/* A change made elsewhere (a plugin's, from another server): value
 * (taken; NULL: deleted) goes to memory and the embedded store, not back
 * to the plugin. */
void state_remote(const char *kind, const char *key, json_t *value);
/* Writes one audit record {time, actor, actor_kind, action, target,
 * room, reason, expires} and one log line. */
void state_audit(const struct chat_actor *by, const char *action,
    const char *target, const struct room *r, const char *reason,
    uint64_t expires_s);
/* The newest n audit records, oldest first (a new array). */
json_t *state_audit_read(size_t n);

/* handle.c: the registry of live objects handed to plugins, so that a
 * handle coming back from a plugin is checked before it is used */
enum handle_kind {
	HANDLE_CLIENT = 1,
	HANDLE_ROOM,
	HANDLE_HISTORY_SINK,
	HANDLE_COMMAND,
	HANDLE_EVENT,   /* a hook's event while the hook runs */
	HANDLE_REQUEST, /* an HTTP request during its connect hooks */
};
void handle_add(const void *p, enum handle_kind kind);
void handle_remove(const void *p);
/* True when p is live and of that kind. */
bool handle_valid(const void *p, enum handle_kind kind);
void handle_free_all(void);

/* proto.c: envelope checks and a dispatch table over message types */
enum proto_err {
	PROTO_OK = 0,
	PROTO_ERR_BAD_JSON,
	PROTO_ERR_BAD_REQUEST,
	PROTO_ERR_UNKNOWN_TYPE,
	PROTO_ERR_ROOM_EXISTS,
	PROTO_ERR_ROOM_NOT_FOUND,
	PROTO_ERR_NOT_IN_ROOM,
	PROTO_ERR_INVALID_NAME,
	PROTO_ERR_NAME_TAKEN,
	PROTO_ERR_MESSAGE_TOO_LONG,
	PROTO_ERR_RATE_LIMITED,
	PROTO_ERR_UNKNOWN_COMMAND,
	PROTO_ERR_FORBIDDEN,
	PROTO_ERR_REJECTED,
	PROTO_ERR_UNSUPPORTED,
	PROTO_ERR_INTERNAL,
	PROTO_ERR_UNAUTHORIZED,
	PROTO_ERR_USER_NOT_FOUND, /* 1.1: direct_message to nobody */
	PROTO_ERR_RESUME_FAILED,
	PROTO_ERR_MESSAGE_NOT_FOUND,
	PROTO_ERR_COUNT
};
const char *proto_err_code(enum proto_err e);
/* Handles one text message from c (valid UTF-8, not NUL-terminated). */
void proto_handle(struct client *c, const char *data, size_t len);
/* Sends the welcome frame to a new client. */
void proto_welcome(struct client *c);
/* Sends error e to c with the given id (borrowed, may be NULL) and
 * optional room name and message. */
/* Sends reply (taken) to c, with the request's id when not NULL. */
void proto_reply_new(struct client *c, const json_t *id, json_t *reply);
void proto_send_error(struct client *c, enum proto_err e, const json_t *id,
    const char *room, const char *message);
/* Core name rules: 1..max bytes, no Cc, no leading/trailing space, none
 * of the characters name_check refuses. */
bool proto_name_valid(const char *s, size_t len, size_t max);
/* Depth of the deepest nesting in a JSON text, stopping past limit. */
unsigned proto_json_depth(const char *s, size_t len, unsigned limit);

/* chat.c: every chat action, whoever takes it (a client through the
 * protocol, a script, a plugin, the server; later the admin API): check,
 * run the hooks, change the state, tell the clients. Each returns PROTO_OK
 * or the error the requester gets, with *reason (allocated, may be NULL)
 * saying more. */
enum chat_actor_kind {
	CHAT_ACTOR_CLIENT, /* the client itself, through the protocol */
	CHAT_ACTOR_SCRIPT,
	CHAT_ACTOR_PLUGIN,
	CHAT_ACTOR_ADMIN,
	CHAT_ACTOR_SERVER, /* the configuration, start-up, a reload */
};
struct chat_actor {
	enum chat_actor_kind kind;
	struct client *client; /* CHAT_ACTOR_CLIENT: who acts */
	const char *name;      /* script or plugin owner ("lua:x", ...) */
};
#define CHAT_BY_CLIENT(c)                                                    \
	(&(const struct chat_actor){ .kind = CHAT_ACTOR_CLIENT, .client = (c) })
#define CHAT_BY(k, owner)                                                    \
	(&(const struct chat_actor){ .kind = (k), .name = (owner) })
extern const struct chat_actor chat_by_server;
/* How an action is taken: as the client's own request (hooks, quotas and
 * rate limits), or by someone with authority over it. */
#define CHAT_HOOKS 0x1u    /* run the hook chains */
#define CHAT_LIMITS 0x2u   /* apply the client's quotas and rate limits */
#define CHAT_COMMANDS 0x4u /* a text starting with '/' is a command */
#define CHAT_AS_CLIENT (CHAT_HOOKS | CHAT_LIMITS)
/* The HTTP request of a connection not yet upgraded, as the connect
 * hooks see it; valid during chat_connect only. */
struct chat_request {
	const char *path;  /* "/ws" */
	const char *query; /* the query string, without '?'; "" when none */
	/* A header (by name, any case), a cookie or a query parameter of
	 * the request; NULL when absent. */
	const char *(*header)(const struct chat_request *r, const char *name);
	const char *(*cookie)(const struct chat_request *r, const char *name);
	const char *(*param)(const struct chat_request *r, const char *name);
	/* Calls fn for each header, cookie (kind 'c') or parameter ('p'),
	 * headers being kind 'h'. */
	void (*each)(const struct chat_request *r, char kind,
	    void (*fn)(const char *name, const char *value, void *arg),
	    void *arg);
	void *arg; /* the HTTP layer's own */
};
/* A connection asks to be admitted, before the upgrade: the connect
 * hooks may refuse it (unauthorized is HTTP 401, internal 500, any other
 * code 403) or give it an identity. */
enum proto_err chat_connect(struct client *c, const struct chat_request *req,
    char **reason);
#define CHAT_IDENTITY_ROLES_MAX 8
#define CHAT_CLOSE_TOKEN_EXPIRED 4003
/* c's identity ends at expires_s (Unix seconds; 0: never): a notice a
 * minute before, then its connection is closed with 4003. */
void chat_expires(struct client *c, uint64_t expires_s);
/* c presents a fresh token (refresh_token): the token hooks decide; one
 * that accepts it calls chat_expires. Replies token_refreshed. */
enum proto_err chat_refresh_token(struct client *c, const char *token,
    size_t len, const json_t *id, char **reason);
/* c is proven to be account (by a connect hook: a signed token, a
 * site's session), with name to show (NULL: the account's) and roles
 * (NULL-terminated, may be NULL) besides the configured ones. */
void chat_admit_as(struct client *c, const char *account, const char *name,
    const char *const *roles);
/* c is gone (reason for user_left): leaves every room, runs the
 * disconnect hooks and removes c. */
void chat_disconnect(struct client *c, const char *reason);
/* Closes c's connection for a policy reason (a script or plugin). */
void chat_close(const struct chat_actor *by, struct client *c,
    const char *reason);
/* Renames c (hooks when CHAT_HOOKS, name rate limit when CHAT_LIMITS);
 * replies username_set (with id) and tells c's rooms. */
enum proto_err chat_rename(const struct chat_actor *by, struct client *c,
    const char *name, size_t len, const json_t *id, unsigned flags,
    char **reason);
/* Creates a room; a client creating it (by->client) owns it and joins
 * it, with its quotas and the create_room hooks. Tells every client. */
enum proto_err chat_room_create(const struct chat_actor *by, const char *name,
    size_t len, const json_t *id, struct room **out, char **reason);
#define CHAT_ROOM_DELETED "room deleted" /* the kick reason */
/* Removes r: every member is kicked (why), every client gets
 * room_deleted, the room_removed hooks run, its history goes and r is
 * freed before the next sleep. */
enum proto_err chat_room_remove(const struct chat_actor *by, struct room *r,
    const char *why);
/* c joins r, first taking username (may be NULL) as chat_rename does. */
enum proto_err chat_join(const struct chat_actor *by, struct client *c,
    struct room *r, const char *username, size_t ulen, const json_t *id,
    unsigned flags, char **reason);
/* c leaves r (reason: left, disconnected or timeout for user_left; c
 * gets room_left for "left"). */
enum proto_err chat_leave(const struct chat_actor *by, struct client *c,
    struct room *r, const char *reason, const json_t *id);
/* Removes c from r: c gets kicked {why}, the others user_left. */
enum proto_err chat_kick(const struct chat_actor *by, struct client *c,
    struct room *r, const char *why, const json_t *id);
/* chat_kick for an actor the hooks may refuse (the admin API's: the
 * moderation chain with "kick", rejected when a hook refuses). */
enum proto_err chat_kick_checked(const struct chat_actor *by,
    struct client *c, struct room *r, const char *why, char **reason);
/* c says text in r: membership and size checks, commands (CHAT_COMMANDS),
 * rate limit (CHAT_LIMITS), message hooks (CHAT_HOOKS), then posts it
 * unless the hooks removed, muted or disconnected c meanwhile. */
enum proto_err chat_say(const struct chat_actor *by, struct client *c,
    struct room *r, const char *text, size_t len, bool action,
    const json_t *id, unsigned flags, char **reason);
/* Posts a message as sender (from: the client speaking, NULL for a
 * script's or plugin's post): the post hooks may take it over; else it
 * gets the next seq, goes to the history and to every member. Fails only
 * when a post hook removed, muted or disconnected from meanwhile. */
enum proto_err chat_post(struct room *r, struct client *from,
    const char *sender, const char *text, size_t len, bool action,
    char **reason);
/* Posts with a seq and ts given (a cluster's order), no hooks: the room's
 * seq becomes seq, even backwards. */
void chat_post_at(struct room *r, const char *sender, const char *text,
    size_t len, bool action, uint64_t seq, uint64_t ts);
/* c sends a direct message to the connected user named to (protocol
 * 1.1): the message rules of chat_say, its rate limit (CHAT_LIMITS) and
 * the direct hooks (CHAT_HOOKS); a muted c may only write to operators.
 * Both get direct_message; nothing is kept or logged. */
enum proto_err chat_direct(const struct chat_actor *by, struct client *c,
    const char *to, size_t to_len, const char *text, size_t len,
    const json_t *id, unsigned flags, char **reason);
/* c is typing in r: r's other members get typing, at most once every 3
 * seconds per member and room; extra ones, and a muted c's, are dropped
 * silently. No hooks, no history, no log. */
enum proto_err chat_typing(struct client *c, struct room *r);
/* Sends a notice to c (room may be NULL; id may be NULL). */
void chat_notice(struct client *c, const struct room *r, const char *text,
    const json_t *id);
/* Sends a notice to every member of r. */
void chat_notice_room(struct room *r, const char *text);
/* by (the admin API) announces text: a notice to every member of r, or
 * to every connected client when r is NULL. Returns the recipients. */
size_t chat_announce(const struct chat_actor *by, struct room *r,
    const char *text, size_t len);
/* by posts text in r as the server ("server" as the sender): the post
 * hooks run, as for a script's post. */
enum proto_err chat_server_post(const struct chat_actor *by, struct room *r,
    const char *text, size_t len, bool action, char **reason);
/* Core checks of a username for c: the name rules, uniqueness and the
 * names accounts hold. */
enum proto_err chat_username_check(const struct client *c, const char *name,
    size_t len);
/* Accounts (protocol 1.1, "Who a client is"). register and login answer
 * later, when the password is hashed or checked off the loop: they return
 * PROTO_OK once the work is under way. */
enum proto_err chat_register(const struct chat_actor *by, struct client *c,
    const char *name, size_t len, const char *password, size_t pwlen,
    const json_t *id, char **reason);
enum proto_err chat_login(const struct chat_actor *by, struct client *c,
    const char *name, size_t len, const char *password, size_t pwlen,
    const json_t *id, char **reason);
/* c becomes a guest under a new guest name (username_set, with id). */
enum proto_err chat_logout(
    const struct chat_actor *by, struct client *c, const json_t *id);
/* Makes c the account's (proven by whoever calls): its roles from the
 * configuration, its name (a client holding it becomes a guest, told by
 * a notice), the rooms told of the rename; replies reply_type {username,
 * roles} with id when reply_type is not NULL. */
void chat_login_as(struct client *c, const char *account,
    const json_t *id, const char *reply_type);

/* Resume (protocol 1.1): c's connection dropped without a close frame;
 * true when c is held for a resume (session.c) instead of leaving. */
bool chat_dropped(struct client *c);
/* c (whose first request this is) presents a session secret: the
 * session's client takes over c's connection (closing its own, if open,
 * with CHAT_CLOSE_RESUMED), gets a new secret and is told resumed (with
 * id); c goes. resume_failed when no session has that secret. */
#define CHAT_CLOSE_RESUMED 4001
enum proto_err chat_resume(struct client *c, const char *secret, size_t len,
    const json_t *id, char **reason);
/* Rooms that last (protocol 1.1): owners, roles, topics, deletion, bans
 * and mutes, each an action taken by someone (a client's request runs
 * the hooks and the default rule: owner, moderators, operators; a
 * script, plugin, the admin API or the server has authority). Moderation
 * writes an audit record (state_audit). */
/* Restores the rooms of the state store and creates the configured ones
 * (marked as such); starts the sweep of expired guest rooms. */
int chat_rooms_restore(char **cause);
/* Creates the configured rooms that do not exist (start, reload). */
void chat_rooms_configured(void);
/* A record changed elsewhere (value taken, NULL: deleted): kept, and a
 * room's applied to the live room (created, its topic and roles, or
 * removed). */
void chat_state_changed(const char *kind, const char *key, json_t *value);
/* Writes r's record (owner, topic, roles, ...) to the state store. */
void chat_room_save(struct room *r);
/* True when c owns r (its account, or its session for a guest's). */
bool chat_is_owner(const struct client *c, const struct room *r);
/* "owner", "moderator" or NULL: c's role in r. */
const char *chat_room_role(const struct room *r, const struct client *c);
/* A new object: member name -> role, for the members who hold one. */
json_t *chat_roles(const struct room *r);
/* Sets r's topic (0 to 256 bytes; empty clears it): topic_changed to
 * every member (and to a requester from outside). */
enum proto_err chat_set_topic(const struct chat_actor *by, struct room *r,
    const char *topic, size_t len, const json_t *id, char **reason);
/* Deletes r as chat_room_remove does, with the reason "room deleted". */
enum proto_err chat_delete_room(const struct chat_actor *by, struct room *r,
    const json_t *id, char **reason);
/* The same, with why (may be NULL) told to the members instead. */
enum proto_err chat_delete_room_why(const struct chat_actor *by,
    struct room *r, const char *why, char **reason);
/* Whether the hooks see by's actions as its own (the admin API's): they
 * may refuse them (rejected, with the hook's reason). */
bool chat_by_admin(const struct chat_actor *by);
/* Makes message seq of r a tombstone in every history store:
 * message_deleted to the members; message_not_found when unknown. */
enum proto_err chat_delete_message(const struct chat_actor *by,
    struct room *r, uint64_t seq, const json_t *id, char **reason);
/* Gives target the room role ("moderator") or takes it (role NULL):
 * role_changed to the members. Bound to target's account, or its
 * session for a guest. */
enum proto_err chat_set_role(const struct chat_actor *by, struct room *r,
    struct client *target, const char *role, char **reason);
/* Bans target from r for seconds (0: until lifted) with why (may be
 * NULL): a member is kicked; joins get forbidden. Bound to the account,
 * or to the session and the address of a guest (either matches). */
enum proto_err chat_ban(const struct chat_actor *by, struct room *r,
    struct client *target, uint64_t seconds, const char *why,
    char **reason);
/* Lifts the bans of r on the user called name (connected or not);
 * user_not_found when there is none. */
enum proto_err chat_unban(const struct chat_actor *by, struct room *r,
    const char *name, char **reason);
/* Mutes target in r, as chat_ban binds: its chat messages there get
 * forbidden (commands still run). */
enum proto_err chat_mute(const struct chat_actor *by, struct room *r,
    struct client *target, uint64_t seconds, const char *why,
    char **reason);
enum proto_err chat_unmute(const struct chat_actor *by, struct room *r,
    const char *name, char **reason);
/* The "ban" or "mute" record that holds c in r now (borrowed), or NULL;
 * never for r's owner or operators. */
json_t *chat_restriction(const char *kind, const struct room *r,
    const struct client *c);
/* The "ban" or "mute" records of r in force (a new array of {room, name,
 * account or session and addr, until (Unix s, 0: none), reason, by,
 * set}), for the admin API. */
json_t *chat_restrictions(const char *kind, const struct room *r);
/* True when a mute of some room holds c now (a direct message is no way
 * around it). */
bool chat_muted_anywhere(const struct client *c);
/* Resume across servers: a plugin answers c's waiting resume (c->resuming)
 * with r, a remote member whose session it is (account, roles and the
 * session's key, by which a guest owns rooms and is banned: who r is): r takes over c's connection silently and becomes local; -1 (c
 * told resume_failed) when it cannot. */
int chat_adopt(struct client *c, struct client *r, const char *account,
    const char *const *roles, const char *session_key);
/* c's waiting resume failed. */
void chat_resume_refuse(struct client *c);
/* c's session was resumed on another server: c becomes a remote member
 * (a plugin's) without its rooms being told; an open connection is closed
 * with CHAT_CLOSE_RESUMED. */
void chat_moved(struct client *c);

/* account.c: accounts kept by the server: a SQLite database in the
 * state directory and argon2id hashes, both worked on by a thread of
 * their own whose results come back to the loop; the account names, kept
 * in memory, so that a name is known to be held without asking it; and
 * the count of failed logins by name and by address */
#define ACCOUNT_PASSWORD_MIN 8
#define ACCOUNT_PASSWORD_MAX 1024
#define ACCOUNT_FAILURES_MAX 10        /* failed logins within ... */
#define ACCOUNT_FAILURES_WINDOW 60     /* ... these seconds lock for ... */
#define ACCOUNT_LOCK_SECONDS 300       /* ... these seconds */
enum account_status {
	ACCOUNT_OK,
	ACCOUNT_DENIED, /* no such account, or the wrong password */
	ACCOUNT_EXISTS, /* register: the name is taken */
	ACCOUNT_FAILED, /* the store failed (logged) */
};
/* Opens the database and loads the names when cfg->accounts (and the
 * server is built with them); -1 with *cause (caller frees). */
int account_init(char **cause);
/* Waits for the work in hand, stops the thread, closes the database. */
void account_free(void);
bool account_enabled(void);
/* True when the database could only be opened for reading (a full or
 * read-only state directory at start): logins work, registering not. */
bool account_read_only(void);
/* The account holding name (compared as usernames are), or NULL. */
const char *account_holder(const char *name, size_t len);
/* The server roles stored for account (public names separated by
 * spaces, as "operator"), or NULL for none. */
const char *account_roles(const char *account);
/* False while logins as name or from addr are locked out. */
bool account_login_allowed(const char *name, size_t len, const char *addr);
/* Starts hashing and storing a new account for c, or checking a
 * password; the result goes to chat_account_done. -1 when too much work
 * is waiting already. register holds the name from now on (given
 * back if the store fails). */
int account_register(struct client *c, const char *name, size_t len,
    const char *password, size_t pwlen, const json_t *id);
int account_login(struct client *c, const char *name, size_t len,
    const char *password, size_t pwlen, const json_t *id);
/* The admin API's work on accounts: create (name and password), delete,
 * or a new password. The result goes to done with ticket, in the loop:
 * ACCOUNT_DENIED when there is no such account. -1 when too much work is
 * waiting, the name is held already (create), or there are no accounts. */
enum account_op {
	ACCOUNT_OP_CREATE,
	ACCOUNT_OP_DELETE,
	ACCOUNT_OP_PASSWORD,
	ACCOUNT_OP_ROLES, /* password: the roles to store, as account_roles */
};
typedef void (*account_admin_fn)(uint64_t ticket, enum account_status st);
int account_admin(enum account_op op, const char *name, size_t len,
    const char *password, size_t pwlen, account_admin_fn done,
    uint64_t ticket);
/* chat.c: by (the admin API) creates (name, password), deletes or sets
 * the password of an account on the worker; the result goes to done with
 * ticket. PROTO_OK: under way; a refusal names why. */
enum proto_err chat_account_admin(const struct chat_actor *by,
    enum account_op op, const char *name, size_t len, const char *password,
    size_t pwlen, account_admin_fn done, uint64_t ticket, char **reason);
/* The server roles an account may be given (CHAT_SERVER_ROLES, public
 * names), and the most at once. */
#define CHAT_SERVER_ROLES "operator"
#define CHAT_SERVER_ROLES_MAX 8
/* chat.c: by (the admin API) sets the server roles of an account (n
 * public names; none takes them all) on the worker, as
 * chat_account_admin; bad_request names the roles it knows. */
enum proto_err chat_account_set_roles(const struct chat_actor *by,
    const char *name, size_t len, const char *const *roles, size_t n,
    account_admin_fn done, uint64_t ticket, char **reason);
/* chat.c: the stored roles of account changed: its connections get the
 * roles at once (with the configuration's operators) and a notice. */
void chat_account_roles_changed(const char *account);
/* chat.c: the account was deleted: its connections become guests. */
void chat_account_gone(const char *account);
/* chat.c: a register or login of client (an id: it may have gone)
 * ended; id is the request's; account its name as stored. */
void chat_account_done(uint64_t client, const json_t *id, bool registering,
    enum account_status st, const char *account);

/* hook.c: one priority-ordered chain per event, shared by scripts and
 * plugins */
enum hook_event {
	HOOK_CONNECT,     /* client: may deny */
	HOOK_USERNAME,    /* client, text = requested name: deny or modify */
	HOOK_CREATE_ROOM, /* client, text = room name: may deny */
	HOOK_JOIN,        /* client, room: may deny */
	HOOK_MESSAGE,     /* client, room, text: deny, modify or drop */
	HOOK_LEAVE,       /* client, room, reason: verdict ignored */
	HOOK_DISCONNECT,  /* client, reason: verdict ignored */
	HOOK_SERVER_START, /* no client: server started */
	HOOK_SERVER_STOP, /* no client: server stopping */
	HOOK_TICK,        /* no client: once a second */
	HOOK_POST,        /* room, text, sender, action; client or NULL: may
			     drop (a cluster posts it itself) */
	HOOK_RENAMED,     /* client, text = the old name: after a rename */
	HOOK_ROOM_CREATED, /* room; client = its creator or NULL */
	HOOK_ROOM_REMOVED, /* room: about to go (members already out) */
	HOOK_RELOAD,      /* no client: the configuration was reloaded */
	HOOK_TOKEN,       /* client, text = a fresh token: stop accepts it */
	/* Authority over a room (client = who asks, room): DENY refuses,
	 * STOP allows what the default rule refuses. */
	HOOK_TOPIC,       /* text = the new topic */
	HOOK_DELETE_MESSAGE, /* text = the seq (decimal) */
	HOOK_DELETE_ROOM,
	HOOK_ROLE,        /* text = the target's name, reason = role or "" */
	HOOK_MODERATION,  /* text = the target's name, reason = "ban",
			     "mute", "unban" or "unmute" */
	HOOK_DIRECT,      /* client, target, text: deny, modify or drop */
	HOOK_RESUME,      /* client: a new connection took over its session */
	HOOK_COUNT
};
enum hook_verdict {
	HOOK_PASS,   /* go on down the chain */
	HOOK_DENY,   /* refuse: the request fails with deny_code */
	HOOK_MODIFY, /* replace text (new_text) and go on */
	HOOK_DROP,   /* accept the request but do nothing, silently */
	HOOK_STOP,   /* accept as it is now; skip the rest of the chain */
};
struct hook_args {
	enum hook_event event;
	struct client *client; /* NULL for start, stop, tick */
	struct room *room;     /* NULL unless the event has one */
	const char *text;      /* name or message, as modified so far */
	size_t text_len;
	const char *reason;    /* leave and disconnect */
	const struct chat_request *request; /* connect: the HTTP request */
	const char *sender;    /* post */
	bool action;           /* post: a /me action */
	const json_t *id;      /* message: the request's id, or NULL */
	struct client *target; /* direct: the recipient */
	/* Who acted when it is not client itself (the admin API); NULL
	 * otherwise. Set for the authority events, create_room, leave (a
	 * kick), room_created and room_removed. */
	const struct chat_actor *by;
	/* Results, filled by the chain. */
	char *admit_account;   /* connect: the identity to admit with */
	char *admit_name;      /* its name to show, or NULL */
	char **admit_roles;    /* NULL-terminated, or NULL */
	char *new_text;        /* owned by args; hook_args_free frees it */
	enum proto_err deny_code;
	char *deny_reason;     /* owned by args; may be NULL */
	bool stopped;          /* a hook said STOP (hook_run says PASS) */
};
struct hook;
typedef enum hook_verdict (*hook_fn)(struct hook_args *a, void *arg);
/* Adds fn to the chain for ev. Higher priorities run first; equal ones in
 * the order they were added. owner names the script or plugin (for logs
 * and hook_remove_owner). */
struct hook *hook_add(enum hook_event ev, int priority, const char *owner,
    hook_fn fn, void *arg);
void hook_remove(struct hook *h);
/* Removes every hook of owner (a script being reloaded). */
void hook_remove_owner(const char *owner);
/* Runs the chain for a->event. A MODIFY replaces a->text for the hooks
 * after it. Returns PASS (possibly modified: a->new_text != NULL), DENY,
 * or DROP. */
enum hook_verdict hook_run(struct hook_args *a);
/* Sets the deny result (code and a copy of reason) on a. */
void hook_deny(struct hook_args *a, enum proto_err code, const char *reason);
/* Sets the identity (copied) a connect hook admits with. */
void hook_admit(struct hook_args *a, const char *account, const char *name,
    const char *const *roles);
/* Sets the modified text (copied) on a. */
void hook_modify(struct hook_args *a, const char *text, size_t len);
void hook_args_free(struct hook_args *a);
bool hook_any(enum hook_event ev);
const char *hook_event_name(enum hook_event ev);
/* "pass", "deny", "modify", "drop" or "stop". */
const char *hook_verdict_name(enum hook_verdict v);
/* Calls fn with each hook's owner, event and statistics (for metrics):
 * calls, verdict counts indexed by enum hook_verdict, time spent. */
void hook_stats_each(void (*fn)(const char *owner, enum hook_event ev,
    uint64_t calls, const uint64_t *verdicts, uint64_t ns, void *arg),
    void *arg);
void hook_free_all(void);

/* plugin.c: native plugins: dlopen, ABI checks, the host function table
 * (plugin-hook.c, plugin-timer.c, plugin-chat.c, history-plugin.c) */
/* Loads the plugins of cfg->plugins in order. The first one refused (a
 * missing file or symbol, a wrong ABI major, a too-small descriptor, a
 * failing init) is logged with why, the plugins loaded before it are
 * unloaded, and -1 returns with *cause set (caller frees). */
int plugin_load_all(char **cause);
/* After a reload: each plugin's options come from the new
 * plugin_options (the reload event tells it). */
void plugin_reload(void);
/* --check-config: -1 with *cause set when a plugin of cfg->plugins is
 * not found (none is loaded). */
int plugin_check_all(char **cause);
/* Stops each plugin's timers, calls its fini and unloads it, in reverse
 * load order (after the clients are gone: a history store flushes). */
void plugin_unload_all(void);
/* parleyd --plugin-info: loads file (a path, or a name looked up as for
 * `plugins`), checks it, runs its init against a table that only records
 * registrations, prints what it is and registers, runs its fini. Returns
 * the exit status. */
int plugin_info(const char *file);
/* What plugins said of their health ({name: {ok, detail}}, only those
 * that said anything); *all_ok false when one is degraded. */
json_t *plugin_health(bool *all_ok);
/* Tells the plugins' relays (plugin-chat.c) of a direct message from a
 * local client to a remote member, which the core cannot deliver, and
 * of a typing passed on, for the other servers of a cluster. */
void plugin_relay_direct(struct client *from, struct client *to,
    const char *text, size_t len, uint64_t ts);
void plugin_relay_typing(struct client *c, struct room *r);
/* Tells them of a change of c's session (PARLEY_RELAY_SESSION_*), and
 * asks them for a session of another server (PARLEY_RELAY_RESUME; true
 * when one will answer, c->resuming then set). */
void plugin_relay_session(struct client *c, unsigned kind, uint64_t until);
bool plugin_relay_resume(struct client *c, const uint8_t *hash);
/* Calls fn for each counter plugins keep (for the metrics). */
void plugin_counter_each(void (*fn)(const char *plugin, const char *name,
    int64_t value, void *arg), void *arg);

/* script.c: Lua scripts in one sandboxed state (script-api.c: what they
 * may call) */
#ifndef PARLEY_SCRIPTDIR /* set by the build: $(pkgdatadir)/scripts */
#define PARLEY_SCRIPTDIR "/usr/local/share/parley/scripts"
#endif
/* Loads cfg's scripts and puts their hooks, commands and timers into
 * service; -1 with *cause (caller frees) when one does not load. */
int script_init(char **cause);
/* A reload in two steps: load the scripts of c into a new state (the
 * running one untouched), then swap it in, or drop it. */
int script_reload_prepare(const struct config *c, char **cause);
void script_reload_commit(void);
void script_reload_abort(void);
/* Loads cfg's scripts and throws them away (--check-config). */
int script_check(char **cause);
void script_free(void);

/* command.c: the slash-command registry */
struct command_ctx {
	struct client *client;
	struct room *room;
	const json_t *id;
	const char *args; /* after the name and one space; NUL-terminated */
};
typedef enum proto_err (*command_fn)(const struct command_ctx *ctx,
    void *arg);
/* Registers /name (replacing one of the same name); owner names the
 * script or plugin. usage and help may be NULL. */
void command_register(const char *name, const char *owner, const char *usage,
    const char *help, command_fn fn, void *arg);
#define COMMAND_NAME_MAX 32
/* True for 1 to COMMAND_NAME_MAX bytes of a-z, 0-9, '_' and '-'. */
bool command_name_ok(const char *name, size_t len);
void command_unregister_owner(const char *owner);
/* Calls fn for each command in name order (for /help). */
void command_each(void (*fn)(const char *name, const char *usage,
    const char *help, void *arg), void *arg);
/* Runs the command in text (starting with '/'); unknown_command when
 * nobody registered it. */
enum proto_err command_run(struct client *c, struct room *r,
    const json_t *id, const char *text, size_t len);
void command_free_all(void);

#endif
