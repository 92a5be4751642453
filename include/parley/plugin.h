/*
 * parley/plugin.h: the native plugin ABI of parleyd, and its manual.
 *
 * A plugin is a shared object that parleyd loads with dlopen() at start-up.
 * It exports exactly one symbol, the descriptor `parley_plugin` (see
 * PARLEY_PLUGIN_DEFINE), which names the plugin and gives its init and
 * fini functions. init receives a table of host functions (struct
 * parley_host) through which the plugin registers event hooks, commands,
 * timers and, optionally, itself as the server's history store, and
 * through which it acts on clients and rooms.
 *
 * This header is self-contained (only <stddef.h>, <stdint.h> and
 * <stdbool.h>), compiles as C99 and as C++, and is all a plugin needs:
 *
 *     cc -shared -fPIC $(pkg-config --cflags parley) -o hello.so hello.c
 *
 * Rules of the ABI:
 *
 * - Threads. parleyd runs every callback on its one event-loop thread.
 *   Host functions may only be called from that thread, from inside a
 *   callback (init, fini, a hook, a command, a timer or a history store
 *   function). A plugin may run threads of its own but must not call the
 *   host from them.
 * - Handles. parley_client and parley_room are opaque handles, valid only
 *   until the callback that received (or looked up) them returns. To refer
 *   to a client later keep its id (client_id, a number never reused while
 *   the server runs); to refer to a room keep its name. The host checks
 *   every handle it is given against the objects alive at that moment: a
 *   handle that is not one (a client that has left, a pointer of
 *   another kind) is logged and refused, the function then doing nothing
 *   and returning its failure value (PARLEY_ERR_BAD_REQUEST, 0, false,
 *   NULL, or "" for a name). A client's handle is dead from the moment
 *   its disconnect event has run.
 * - Strings. Strings passed to the host are borrowed: the host copies what
 *   it keeps. Strings the host returns are borrowed too and valid until
 *   the callback returns, unless said otherwise. All text is UTF-8.
 *   Functions that take a length take text that need not be NUL-terminated.
 * - JSON crosses as `const char *` plus a length, never as library types.
 * - Versioning. The ABI has a major and a minor number. Additions (a new
 *   host function appended to struct parley_host, a new event, a new
 *   field taken from a reserved one) bump the minor number; any other
 *   change to a layout bumps the major number. The host refuses a plugin
 *   built for another major number. A plugin built against a newer minor
 *   number than the host's must test for the functions it needs with
 *   PARLEY_HOST_HAS() before calling them.
 * - Every struct that crosses the ABI starts with its size in bytes (as
 *   the side that filled it was compiled) and keeps reserved fields, which
 *   must be zero when the plugin fills the struct.
 * - Names. Everything public is prefixed parley_ or PARLEY_.
 *
 * ABI version 1.0 is the first one; "since 1.0" marks items present in it.
 * ABI 1.1 appended file-descriptor watches, remote members and posting
 * with a given seq ("since 1.1"). ABI 1.2 added the post event (and the
 * event's sender and flags, taken from its reserved fields), history
 * reads answered later, and health reports ("since 1.2"). ABI 1.3 added
 * metrics with a type, help text and labels ("since 1.3").
 */
#ifndef PARLEY_PLUGIN_H
#define PARLEY_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------
 * Versions and the entry symbol
 */

/* The ABI this header describes. since 1.0 */
#define PARLEY_PLUGIN_ABI_MAJOR 1
#define PARLEY_PLUGIN_ABI_MINOR 4

/* The name of the one symbol a plugin exports. since 1.0 */
#define PARLEY_PLUGIN_SYMBOL "parley_plugin"

/* Marks the entry symbol for export from the shared object. since 1.0 */
#if defined(__GNUC__) || defined(__clang__)
#define PARLEY_EXPORT __attribute__((visibility("default")))
#else
#define PARLEY_EXPORT
#endif

#if defined(__GNUC__) || defined(__clang__)
#define PARLEY_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define PARLEY_PRINTF(f, a)
#endif

/* ---------------------------------------------------------------------
 * Opaque handles
 */

/* The host's context for one loaded plugin. Passed to init and to every
 * callback; give it back as the first argument of each host function.
 * Valid from init until fini returns. since 1.0 */
typedef struct parley_ctx parley_ctx;

/* A connected client; valid until the current callback returns. Keep
 * parley_host.client_id() to find it again later. since 1.0 */
typedef struct parley_client parley_client;

/* A room; valid until the current callback returns. Keep its name to find
 * it again later. since 1.0 */
typedef struct parley_room parley_room;

/* The HTTP request of a connection asking to be admitted, given to
 * PARLEY_EV_CONNECT hooks (event field request); valid until the hook
 * returns. Read it with request_header, request_cookie and
 * request_param. since 1.3 */
typedef struct parley_request parley_request;

/* Where a history store's read function delivers messages (see
 * parley_host.history_emit). Valid during that read call only. since 1.0 */
typedef struct parley_history_sink parley_history_sink;

/* ---------------------------------------------------------------------
 * Codes
 */

/* Error codes: a denied request fails with the protocol error of the
 * same name (PROTOCOL.md), e.g. PARLEY_ERR_REJECTED -> "rejected". Host
 * functions that can fail return one of these too. Values are fixed.
 * since 1.0 */
enum parley_error {
	PARLEY_OK = 0,
	PARLEY_ERR_REJECTED = 1,      /* refused by a plugin (the default) */
	PARLEY_ERR_FORBIDDEN = 2,     /* the client may not do that */
	PARLEY_ERR_INVALID_NAME = 3,  /* a name breaks the rules */
	PARLEY_ERR_NAME_TAKEN = 4,    /* another client has that name */
	PARLEY_ERR_RATE_LIMITED = 5,  /* too much, too fast */
	PARLEY_ERR_MESSAGE_TOO_LONG = 6,
	PARLEY_ERR_BAD_REQUEST = 7,   /* malformed arguments */
	PARLEY_ERR_ROOM_EXISTS = 8,
	PARLEY_ERR_ROOM_NOT_FOUND = 9,
	PARLEY_ERR_NOT_IN_ROOM = 10,
	PARLEY_ERR_UNKNOWN_COMMAND = 11,
	PARLEY_ERR_UNSUPPORTED = 12,
	PARLEY_ERR_INTERNAL = 13,
	/* since 1.3: a connect hook refusing a request without a valid
	 * identity (HTTP 401) */
	PARLEY_ERR_UNAUTHORIZED = 14
};

/* What an event callback decides. Values are fixed. since 1.0 */
enum parley_verdict {
	/* Go on down the chain: the next hook (plugin or script) runs. */
	PARLEY_PASS = 0,
	/* Refuse the request: set ev->deny_code (PARLEY_ERR_REJECTED when
	 * left 0) and optionally ev->deny_reason, shown to the client as the
	 * error's message. The chain ends. Meaningful for connect (the
	 * connection is closed with code 1008 and the reason), username,
	 * create_room, join and message. */
	PARLEY_DENY = 1,
	/* Replace the text: set ev->new_text and ev->new_text_len; the hooks
	 * after this one see the new text, and the core checks it again as
	 * it checks a client's (length, UTF-8, name rules). Meaningful for
	 * username and message; elsewhere it acts as PARLEY_PASS. */
	PARLEY_MODIFY = 2,
	/* Accept the request but do nothing, silently: the message is not
	 * posted, the room not created. The chain ends. Meaningful for
	 * create_room and message; elsewhere it acts as PARLEY_STOP. */
	PARLEY_DROP = 3,
	/* Accept the request as it is now and skip the rest of the chain. */
	PARLEY_STOP = 4
};

/* Log levels for parley_host.log_printf; messages above the configured
 * log_level are discarded before formatting. since 1.0 */
enum parley_log_level {
	PARLEY_LOG_ERROR = 0,
	PARLEY_LOG_WARN = 1,
	PARLEY_LOG_INFO = 2,
	PARLEY_LOG_DEBUG = 3
};

/* ---------------------------------------------------------------------
 * Events
 */

/* Event ids for parley_host.hook_add. Values are fixed. since 1.0 */
enum parley_event_type {
	/* A WebSocket client connected, before its welcome. client set.
	 * Verdicts: DENY closes the connection. */
	PARLEY_EV_CONNECT = 1,
	/* A client asks for a name (set_username, join_room with a username,
	 * a /nick command). client set; text = the requested name. Verdicts:
	 * DENY, MODIFY (the name to set instead). */
	PARLEY_EV_USERNAME = 2,
	/* A client creates a room. client set; text = the room name.
	 * Verdicts: DENY, DROP. */
	PARLEY_EV_CREATE_ROOM = 3,
	/* A client joins a room it is not in. client and room set.
	 * Verdicts: DENY. */
	PARLEY_EV_JOIN = 4,
	/* A chat message (not a command) from a member of a room. client,
	 * room and text set. Verdicts: DENY, MODIFY, DROP. */
	PARLEY_EV_MESSAGE = 5,
	/* A client has left a room (already out of it). client, room and
	 * reason ("left", "disconnected", "timeout" or "kicked") set. The
	 * verdict is ignored. */
	PARLEY_EV_LEAVE = 6,
	/* A client has gone (after its leave events). client and reason set;
	 * nothing can be sent to it any more. The verdict is ignored. */
	PARLEY_EV_DISCONNECT = 7,
	/* The server is about to accept connections. No client. */
	PARLEY_EV_SERVER_START = 8,
	/* The server is stopping (SIGTERM or SIGINT); clients are still
	 * connected and get what is sent now before they are closed. */
	PARLEY_EV_SERVER_STOP = 9,
	/* Once a second while the server runs. No client. */
	PARLEY_EV_TICK = 10,
	/* A chat message is about to be posted (since 1.2): a client's after
	 * its message hooks, a /me action, a script's or a plugin's
	 * room_post. It has no seq yet. room, text, sender and flags
	 * (PARLEY_MSG_ACTION) set; client set when a client sent it, else
	 * NULL. Verdicts: DROP (or DENY) and the core does not post it: the
	 * hook has taken it over, e.g. to order it across a cluster and post
	 * it later with room_post_seq (which runs no hooks). */
	PARLEY_EV_POST = 11,
	/* A client's name changed (since 1.3), after the rename: client
	 * set (its new name), text = the old name. The verdict is
	 * ignored. */
	PARLEY_EV_RENAMED = 12,
	/* A room was created (since 1.3): room set; client set when a
	 * client created it, else NULL. The verdict is ignored. */
	PARLEY_EV_ROOM_CREATED = 13,
	/* A room is being removed (since 1.3), its members already out:
	 * free what the plugin keeps for it. room set; its handle dies when
	 * the hook returns. The verdict is ignored. */
	PARLEY_EV_ROOM_REMOVED = 14,
	/* The configuration was reloaded (SIGHUP) (since 1.3): the
	 * option_* functions and options_json now answer from the new
	 * plugin_options; re-read them. No client. The verdict is
	 * ignored. */
	PARLEY_EV_RELOAD = 15,
	/* A client presents a fresh token (refresh_token, since 1.3):
	 * client set, text = the token. A hook that accepts it calls
	 * client_expires with the token's expiry and returns PARLEY_STOP;
	 * one that refuses returns PARLEY_DENY (deny_code
	 * PARLEY_ERR_UNAUTHORIZED). Nobody accepting it is a refusal. */
	PARLEY_EV_TOKEN = 16,
	/* A new connection took over the client's session (since 1.4): a
	 * resume after its connection dropped, or from a second device.
	 * The client kept its id, name, rooms and handle; none of its rooms
	 * was told anything (no leave, no join). client set. The verdict is
	 * ignored. */
	PARLEY_EV_RESUME = 18,
	/* Authority over a room (since 1.4): a client asks to set its topic
	 * (text = the topic), delete a message (text = its seq in decimal),
	 * delete the room, give or take a role (text = the target's name,
	 * reason = "moderator" or "" to take it) or ban, mute, unban or
	 * unmute someone (text = the target's name, reason = "ban",
	 * "mute", "unban" or "unmute"). client and room set. Verdicts: DENY
	 * refuses; STOP allows what the default rule (the room's owner,
	 * moderators and the server's operators) would refuse. */
	PARLEY_EV_TOPIC = 19,
	PARLEY_EV_DELETE_MESSAGE = 20,
	PARLEY_EV_DELETE_ROOM = 21,
	PARLEY_EV_ROLE = 22,
	PARLEY_EV_MODERATION = 23,
	/* A direct message (protocol 1.1, since 1.4): client (the sender)
	 * and target (the recipient, a local client or a remote member) and
	 * text set; request_id as for a message. Verdicts: DENY, MODIFY (the
	 * text to deliver instead), DROP. Muted senders are refused after
	 * the chain (unless target is an operator). A plugin that carries
	 * direct messages to other servers uses relay_set, not this. */
	PARLEY_EV_DIRECT = 24
};
/* One more than the highest event id of this header. A plugin built
 * against a newer header checks the host's abi_minor before adding a
 * hook of a newer event (hook_add refuses an event the host does not
 * know). since 1.0 */
#define PARLEY_EV_LIMIT 25

/*
 * One event, given to a hook. The host fills a fresh one for each hook it
 * calls; every pointer in it is valid until the hook returns. The results
 * are read only for the verdicts that use them; they are borrowed until
 * the hook returns (the host copies them). since 1.0
 */
struct parley_event {
	uint32_t size;       /* sizeof(struct parley_event) in the host */
	uint32_t type;       /* enum parley_event_type */
	parley_client *client; /* NULL for start, stop and tick */
	parley_room *room;   /* join, message, leave; else NULL */
	const char *text;    /* username, create_room, message; else NULL */
	size_t text_len;     /* bytes of text (not necessarily NUL-ended) */
	const char *reason;  /* leave, disconnect; else NULL */
	uint64_t client_id;  /* 0 without a client */
	uint64_t wall_ms;    /* milliseconds since the Unix epoch */
	/* Results. */
	int32_t deny_code;   /* enum parley_error, for PARLEY_DENY */
	uint32_t reserved0;
	const char *deny_reason; /* for PARLEY_DENY; may stay NULL */
	const char *new_text;    /* for PARLEY_MODIFY */
	size_t new_text_len;
	/* since 1.2 (in what was reserved: the struct's size is that of
	 * 1.0; read them only when the host's abi_minor >= 2) */
	const char *sender;  /* post: who it is from; else NULL */
	size_t sender_len;
	uint32_t flags;      /* post: PARLEY_MSG_* */
	/* since 1.4 (in what was reserved1): who acted, PARLEY_ACTOR_*;
	 * see actor below */
	uint32_t actor_kind;
	/* since 1.3 (read them only when the host's abi_minor >= 3) */
	const char *request_id; /* message: the request's id as JSON text
				   (42 or "abc"), or NULL without one */
	size_t request_id_len;
	const parley_request *request; /* connect: the HTTP request */
	/* since 1.4 (read it only when the host's abi_minor >= 4) */
	parley_client *target; /* direct: the recipient; else NULL */
	/* since 1.4 (in what was reserved): with actor_kind
	 * PARLEY_ACTOR_ADMIN, the name of the admin token that acted
	 * (NUL-terminated); else NULL. Set for create_room, leave (a kick,
	 * a ban, a room's removal), room_created, room_removed and the
	 * authority events. client is then NULL (room_created, leave: the
	 * one who went), and a DENY refuses the admin's act: the admin API
	 * answers 403 rejected with deny_reason; STOP and PASS let it go
	 * on. */
	const char *actor;
};
/* Who acted (parley_event actor_kind, since 1.4): the event's client
 * (or nobody named), or the admin API (actor: the token's name). */
#define PARLEY_ACTOR_CLIENT 0u
#define PARLEY_ACTOR_ADMIN 1u

/*
 * A hook. Returns a verdict (enum parley_verdict). ev may be written
 * (results only). arg is what was given to hook_add. A hook must not
 * block or take long: it runs on the event loop. since 1.0
 */
typedef int (*parley_hook_fn)(parley_ctx *ctx, struct parley_event *ev,
    void *arg);

/* ---------------------------------------------------------------------
 * Commands
 */

/*
 * One run of a slash command: a member of room sent "/name args". Valid
 * until the command function returns. since 1.0
 */
struct parley_command {
	uint32_t size;       /* sizeof(struct parley_command) in the host */
	uint32_t reserved0;
	parley_client *client; /* who typed it */
	parley_room *room;   /* where (the client is a member) */
	const char *name;    /* the command, without the '/' */
	const char *args;    /* after the name and one space; may be "" */
	size_t args_len;     /* args is also NUL-terminated */
	void *reserved[8];
};

/*
 * A command. Returns PARLEY_OK, or an enum parley_error that the client
 * gets as an error answering its request. Reply with
 * parley_host.command_reply (a notice carrying the request's id).
 * since 1.0
 */
typedef int (*parley_command_fn)(parley_ctx *ctx,
    const struct parley_command *cmd, void *arg);

/* ---------------------------------------------------------------------
 * Timers
 */

/* A timer fired. id is what timer_add returned. since 1.0 */
typedef void (*parley_timer_fn)(parley_ctx *ctx, uint64_t id, void *arg);

/* ---------------------------------------------------------------------
 * File-descriptor watches
 */

/* Events of parley_host.fd_watch. since 1.1 */
#define PARLEY_FD_READ 0x1u  /* readable, or an error or hang-up */
#define PARLEY_FD_WRITE 0x2u /* writable, or an error or hang-up */

/* A watched descriptor is ready. events: the PARLEY_FD_* bits that are
 * ready among those asked for. id is what fd_watch returned. since 1.1 */
typedef void (*parley_fd_fn)(parley_ctx *ctx, uint64_t id, int fd,
    unsigned events, void *arg);

/* ---------------------------------------------------------------------
 * History store
 */

/* A message of a room's history. flags: PARLEY_MSG_* bits. since 1.0 */
#define PARLEY_MSG_ACTION 0x1u /* a /me action */
/* A deleted message (a tombstone): text is empty; a store emits it so
 * the history answer keeps its seq with deleted: true. since 1.4 */
#define PARLEY_MSG_DELETED 0x2u

/* Strings are UTF-8 of the given lengths, not necessarily NUL-terminated
 * (a message may even contain U+0000); all are borrowed. */
struct parley_history_msg {
	uint32_t size;      /* sizeof(struct parley_history_msg), filler's */
	uint32_t flags;     /* PARLEY_MSG_* */
	const char *room;   /* the room's history key (since 1.4: its name,
			       US (0x1f), its durable id in hex; the name
			       alone for a configured room older than
			       ids); history_emit ignores it */
	size_t room_len;
	uint64_t seq;       /* per room, rising by one per message */
	uint64_t ts;        /* milliseconds since the Unix epoch */
	const char *sender; /* username (or a plugin's bot name) */
	size_t sender_len;
	const char *text;   /* the message */
	size_t text_len;
	void *reserved[4];
};

/* A history store's read answers later (since 1.2): it called
 * parley_host.history_defer and will call history_done. */
#define PARLEY_HISTORY_LATER 1

/* The types of a metric (parley_host.metric_declare). A counter only
 * goes up (its name should end in _total); a gauge goes up and down.
 * since 1.3 */
#define PARLEY_METRIC_COUNTER 1
#define PARLEY_METRIC_GAUGE 2

/* "No upper bound" for a history read's before. since 1.0 */
#define PARLEY_HISTORY_NO_BEFORE UINT64_MAX

/*
 * A history store: when a plugin registers one, every room's messages go
 * to it instead of the in-memory ring, and the history request (and so
 * the web client's scroll-back) is answered from it. At most one store
 * per server. All three functions run on the event loop: they must answer
 * quickly (keep writes off the loop: buffer them, or hand them to a
 * thread of your own). since 1.0
 */
struct parley_history_store {
	uint32_t size;      /* sizeof(struct parley_history_store) */
	uint32_t reserved0;
	void *arg;          /* passed back to the functions below */
	/* Records one message (every pointer borrowed for the call).
	 * Returns 0, or -1 after logging why. It is called before the
	 * message goes to anyone, so a store may make m->seq durable here
	 * first (see last_seq). */
	int (*append)(parley_ctx *ctx, const struct parley_history_msg *m,
	    void *arg);
	/* Delivers the newest limit messages of room with seq < before
	 * (PARLEY_HISTORY_NO_BEFORE: no bound), OLDEST FIRST, one
	 * parley_host.history_emit(ctx, sink, msg) call each. Returns 0, or
	 * -1 (the client then gets an "internal" error). */
	int (*read)(parley_ctx *ctx, const char *room, size_t room_len,
	    uint64_t before, uint32_t limit, parley_history_sink *sink,
	    void *arg);
	/* At least the highest seq ever given in room (0 when none), so
	 * that the server never gives a seq twice, across restarts and
	 * crashes too: the room goes on from the answer + 1. A store that
	 * writes behind may answer a reservation it keeps ahead of what it
	 * has written (a crash then leaves a gap, which clients detect,
	 * never a repeat). Called when a room is created and when the store
	 * is registered. May be NULL (then seqs restart at 1 with the
	 * server). */
	uint64_t (*last_seq)(parley_ctx *ctx, const char *room,
	    size_t room_len, void *arg);
	/* Paging forward (since 1.4, in what was reserved): delivers the
	 * OLDEST limit messages of room with after < seq < before
	 * (PARLEY_HISTORY_NO_BEFORE: no upper bound), oldest first, as read
	 * does; a client catching up after a resume asks for these. Returns
	 * as read does. May be NULL (a store of 1.3 leaves it so): history
	 * requests with after then get "unsupported". */
	int (*read_after)(parley_ctx *ctx, const char *room, size_t room_len,
	    uint64_t after, uint64_t before, uint32_t limit,
	    parley_history_sink *sink, void *arg);
	/* Deleting a message (since 1.4, in what was reserved): the text
	 * of seq in room must be forgotten, not only hidden: a moderator
	 * removes abuse, a leaked secret, personal data. The store keeps
	 * the seq (with its sender and time) as a tombstone, emitted with
	 * PARLEY_MSG_DELETED and an empty text, and overwrites the text
	 * wherever it keeps it (its memory, its queue, its disk, the
	 * cluster's copy). Called on the event loop after the delete is
	 * decided: hand slow work to a thread. The server hides the text
	 * of a deleted seq in every answer meanwhile (and for a store that
	 * leaves this NULL, as a 1.3 store does, for good). Called again
	 * for every deleted message when the store registers (a delete
	 * just before a crash): a tombstone already is left alone. Returns
	 * 0, or -1 after logging why. */
	int (*tombstone)(parley_ctx *ctx, const char *room, size_t room_len,
	    uint64_t seq, void *arg);
	void *reserved[2];
};

/*
 * The state store (since 1.4): the community's durable state (rooms with
 * their owner, topic and roles; bans; mutes; message tombstones; the
 * audit trail; scripts' parley.store) as records of a kind ("room",
 * "ban", "mute", "tomb", "audit", "store", "meta") under a key, each a
 * JSON text. The server keeps every record in memory and writes it to
 * its embedded store (SQLite in state_dir, unless state_store =
 * "memory"); a plugin that registers a parley_state_store is given every
 * change as well, to share it (across a cluster, say), and tells the
 * server of changes made elsewhere with parley_host.state_changed. put
 * runs on the event loop: it must not block. since 1.4
 */
struct parley_state_store {
	uint32_t size;      /* sizeof(struct parley_state_store) */
	uint32_t reserved0;
	void *arg;          /* passed back to put */
	/* kind/key is now value (a JSON text of value_len bytes), or was
	 * deleted (value NULL). Every pointer is borrowed for the call.
	 * Returns 0, or -1 after logging why. */
	int (*put)(parley_ctx *ctx, const char *kind, const char *key,
	    const char *value, size_t value_len, void *arg);
	void *reserved[4];
};

/* ---------------------------------------------------------------------
 * Iteration callbacks
 */

/* Called per member of a room (join order) or per room (creation order);
 * return 0 to go on, anything else to stop. The list walked is a snapshot
 * taken before the first call, so the callback may kick, post or create
 * rooms. since 1.0 */
typedef int (*parley_client_each_fn)(parley_ctx *ctx, parley_client *c,
    void *arg);
typedef int (*parley_room_each_fn)(parley_ctx *ctx, parley_room *r,
    void *arg);

/* ---------------------------------------------------------------------
 * Relays (since 1.4)
 */

/* What a relay is told. since 1.4 */
enum parley_relay_kind {
	/* A local client's direct message to a remote member passed every
	 * check and hook and reached the sender: carry it to the
	 * recipient's server, which sends it with client_send_json. client,
	 * target, text and wall_ms (its ts) set. */
	PARLEY_RELAY_DIRECT = 1,
	/* A local client's typing in room was passed on to the local
	 * members (at most once per 3 seconds per client and room): carry
	 * it to the other servers, which send it with room_send_json.
	 * client and room set. */
	PARLEY_RELAY_TYPING = 2,
	/* Sessions across servers (protocol 1.1 "Resume"): a local
	 * client's session was issued (welcome, resumed) and is open; its
	 * connection dropped and it is held until wall_ms; or it ended
	 * (gone, replaced by a new one, or resumed elsewhere). client set;
	 * text: a JSON object {"hash": the first 16 bytes of the SHA-256
	 * of the secret in lowercase hex (32 digits), "account": string or null, "roles": [names],
	 * "key": the session's lasting key (by which a guest owns rooms
	 * and is banned; not a secret)} (the secret itself never leaves
	 * the core); GONE has the hash only. */
	PARLEY_RELAY_SESSION_OPEN = 3,
	PARLEY_RELAY_SESSION_HELD = 4,
	PARLEY_RELAY_SESSION_GONE = 5,
	/* A resume named no session of this server: client (the new
	 * connection) and text ({"hash": ...}, as above) set. A relay that
	 * can find the session elsewhere calls session_wait(client) before
	 * it returns, and answers later with session_adopt or
	 * session_refuse; when none does, the client gets resume_failed at
	 * once. */
	PARLEY_RELAY_RESUME = 6
};

/*
 * One thing to carry to the other servers of a cluster. Every pointer is
 * valid until the relay function returns. since 1.4
 */
struct parley_relay {
	uint32_t size;        /* sizeof(struct parley_relay) in the host */
	uint32_t kind;        /* enum parley_relay_kind */
	parley_client *client; /* who sent it: a local client */
	parley_client *target; /* direct: the recipient; else NULL */
	parley_room *room;    /* typing: the room; else NULL */
	const char *text;     /* direct: the message as delivered; else NULL */
	size_t text_len;
	uint64_t wall_ms;     /* direct: its ts; else the time now */
	void *reserved[4];
};

/* Told of each relay (see relay_set). It cannot refuse or change it.
 * since 1.4 */
typedef void (*parley_relay_fn)(parley_ctx *ctx,
    const struct parley_relay *relay, void *arg);

/* ---------------------------------------------------------------------
 * The host table
 */

/* parley_host.flags: init runs for `parleyd --plugin-info`. Registrations
 * are only recorded, nothing runs and no client ever comes; do not open
 * files, databases or threads. since 1.0 */
#define PARLEY_HOST_INFO_ONLY 0x1u

/*
 * The host's functions, given to init. The table is owned by the host and
 * valid until fini returns. New functions are only ever appended: before
 * calling one added after the ABI version you require, check it with
 * PARLEY_HOST_HAS(host, name).
 *
 * Unless said otherwise a function taking a client or room handle requires
 * a valid one (never NULL), and every function is since 1.0.
 */
struct parley_host {
	uint32_t size;       /* sizeof(struct parley_host) in the host */
	uint16_t abi_major;  /* the host's PARLEY_PLUGIN_ABI_MAJOR */
	uint16_t abi_minor;  /* the host's PARLEY_PLUGIN_ABI_MINOR */
	uint32_t flags;      /* PARLEY_HOST_* */
	uint32_t reserved0;
	const char *server_version; /* parleyd's version, e.g. "0.1.0" */

	/* ---- The plugin itself */

	/* The plugin's name (from its descriptor). */
	const char *(*plugin_name)(parley_ctx *ctx);
	/* Logs a line tagged "plugin:NAME" at level (enum parley_log_level),
	 * printf-style. */
	void (*log_printf)(parley_ctx *ctx, int level, const char *fmt,
	    ...)
	    PARLEY_PRINTF(3, 4);
	/* The plugin's options, as JSON text (an object; "{}" when the
	 * configuration gives none): plugin_options["NAME"] of parley.conf.
	 * Sets *len (when len is not NULL). Valid until fini returns. */
	const char *(*options_json)(parley_ctx *ctx, size_t *len);
	/* One top-level option, typed. Return 0 and set *out when key is
	 * present with that type, 1 when key is absent (*out untouched), -1
	 * when it has another type (logged). option_string's string is valid
	 * until fini returns. An integer option also reads as a double. */
	int (*option_string)(parley_ctx *ctx, const char *key,
	    const char **out);
	int (*option_int)(parley_ctx *ctx, const char *key, int64_t *out);
	int (*option_bool)(parley_ctx *ctx, const char *key, bool *out);
	int (*option_double)(parley_ctx *ctx, const char *key, double *out);

	/* ---- Memory: the host's allocator. alloc and realloc never return
	 * NULL (running out of memory ends the server); free(NULL) is
	 * allowed. Use mem_free for anything the host says to free. */
	void *(*mem_alloc)(parley_ctx *ctx, size_t size);
	void *(*mem_realloc)(parley_ctx *ctx, void *ptr, size_t size);
	void (*mem_free)(parley_ctx *ctx, void *ptr);

	/* ---- Clocks */

	/* Milliseconds since the Unix epoch. */
	uint64_t (*wall_ms)(parley_ctx *ctx);
	/* Monotonic milliseconds (for intervals), cached per loop turn. */
	uint64_t (*mono_ms)(parley_ctx *ctx);

	/* ---- Hooks */

	/* Adds fn to the chain of event (enum parley_event_type), shared
	 * with Lua scripts: higher priorities run first, equal ones in the
	 * order they were added. Returns a hook id (> 0), or 0 for an
	 * unknown event or a NULL fn (logged). */
	uint64_t (*hook_add)(parley_ctx *ctx, int event, int priority,
	    parley_hook_fn fn, void *arg);
	/* Removes one of this plugin's hooks. Returns 0, -1 if unknown. */
	int (*hook_remove)(parley_ctx *ctx, uint64_t id);

	/* ---- Commands */

	/* Registers /name (1 to 32 bytes of a-z, 0-9, '_' and '-'),
	 * replacing any other of that name; /help lists it with usage (e.g.
	 * "/roll [NdM]") and help (one line). usage and help may be NULL.
	 * Returns 0, -1 for an invalid name (logged). */
	int (*command_register)(parley_ctx *ctx, const char *name,
	    const char *usage, const char *help, parley_command_fn fn,
	    void *arg);
	/* Answers a command: a notice to its client carrying the request's
	 * id (and the room). Only during the command function. */
	void (*command_reply)(parley_ctx *ctx,
	    const struct parley_command *cmd, const char *text);

	/* ---- Timers */

	/* Calls fn after delay_ms, then every interval_ms (0: once).
	 * Returns a timer id (> 0). A one-shot timer is forgotten after it
	 * fires. All of a plugin's timers stop before its fini. */
	uint64_t (*timer_add)(parley_ctx *ctx, uint64_t delay_ms,
	    uint64_t interval_ms, parley_timer_fn fn, void *arg);
	/* Stops a timer (also from its own callback). Returns 0, -1 if it
	 * is not one of this plugin's pending timers. */
	int (*timer_cancel)(parley_ctx *ctx, uint64_t id);

	/* ---- Clients */

	/* The client's id: never reused while the server runs. */
	uint64_t (*client_id)(parley_ctx *ctx, parley_client *c);
	/* The client's current username (NUL-terminated). */
	const char *(*client_name)(parley_ctx *ctx, parley_client *c);
	/* The client's IP address as text. */
	const char *(*client_addr)(parley_ctx *ctx, parley_client *c);
	/* The client with that id, or NULL when it is gone. */
	parley_client *(*client_find)(parley_ctx *ctx, uint64_t id);
	/* The client with that username (ASCII case-folded), or NULL. */
	parley_client *(*client_find_by_name)(parley_ctx *ctx,
	    const char *name, size_t len);
	/* Sends a notice (room may be NULL). */
	void (*client_notice)(parley_ctx *ctx, parley_client *c,
	    parley_room *room, const char *text);
	/* Sends one JSON object (with a string "type") to the client only.
	 * Returns PARLEY_OK, or PARLEY_ERR_BAD_REQUEST when json is not such
	 * an object (logged). */
	int (*client_send_json)(parley_ctx *ctx, parley_client *c,
	    const char *json, size_t len);
	/* Removes the client from room: it gets kicked {roomName, reason},
	 * the other members user_left with reason "kicked". Returns
	 * PARLEY_OK or PARLEY_ERR_NOT_IN_ROOM. */
	int (*client_kick)(parley_ctx *ctx, parley_client *c,
	    parley_room *room, const char *reason);
	/* Closes the client's connection (WebSocket close 1008 with reason;
	 * reason may be NULL). It leaves its rooms as "disconnected". */
	void (*client_disconnect)(parley_ctx *ctx, parley_client *c,
	    const char *reason);
	/* Renames the client after the core checks (not the username
	 * hooks), telling it and its rooms as set_username does. Returns
	 * PARLEY_OK, PARLEY_ERR_INVALID_NAME or PARLEY_ERR_NAME_TAKEN. */
	int (*client_rename)(parley_ctx *ctx, parley_client *c,
	    const char *name, size_t len);
	/* Roles: small names ("oper", ...) a client holds, shared with the
	 * scripts. has_role returns true or false; add_role returns 0, -1
	 * when the server already knows 32 role names. */
	bool (*client_has_role)(parley_ctx *ctx, parley_client *c,
	    const char *role);
	int (*client_add_role)(parley_ctx *ctx, parley_client *c,
	    const char *role);
	void (*client_remove_role)(parley_ctx *ctx, parley_client *c,
	    const char *role);

	/* ---- Rooms */

	/* The room of that name, or NULL. */
	parley_room *(*room_find)(parley_ctx *ctx, const char *name,
	    size_t len);
	/* The room's name (NUL-terminated); sets *len when len is not NULL. */
	const char *(*room_name)(parley_ctx *ctx, parley_room *r,
	    size_t *len);
	/* Creates a room owned by the server and tells every client
	 * (room_created). Sets *out (when out is not NULL) to the room.
	 * Returns PARLEY_OK, PARLEY_ERR_INVALID_NAME or
	 * PARLEY_ERR_ROOM_EXISTS. */
	int (*room_create)(parley_ctx *ctx, const char *name, size_t len,
	    parley_room **out);
	/* Number of members. */
	size_t (*room_member_count)(parley_ctx *ctx, parley_room *r);
	/* Calls fn per member in join order; returns fn's first non-zero
	 * result, or 0. */
	int (*room_members)(parley_ctx *ctx, parley_room *r,
	    parley_client_each_fn fn, void *arg);
	/* True when c is a member of r. */
	bool (*room_has_member)(parley_ctx *ctx, parley_room *r,
	    parley_client *c);
	/* Calls fn per room in creation order; returns fn's first non-zero
	 * result, or 0. */
	int (*room_each)(parley_ctx *ctx, parley_room_each_fn fn, void *arg);
	/* Posts a chat message from sender (any text, e.g. a bot's name):
	 * it gets the next seq, goes to the history and to every member as
	 * new_message (with "action": true when action). No hooks run.
	 * Returns PARLEY_OK, PARLEY_ERR_BAD_REQUEST (empty or invalid
	 * UTF-8) or PARLEY_ERR_MESSAGE_TOO_LONG. */
	int (*room_post)(parley_ctx *ctx, parley_room *r, const char *sender,
	    const char *text, size_t len, bool action);
	/* Sends a notice to every member. */
	void (*room_notice)(parley_ctx *ctx, parley_room *r,
	    const char *text);
	/* Sends one JSON object (with a string "type") to every member.
	 * Returns PARLEY_OK or PARLEY_ERR_BAD_REQUEST (logged). */
	int (*room_send_json)(parley_ctx *ctx, parley_room *r,
	    const char *json, size_t len);

	/* ---- Metrics: named values, per plugin, shown by /metrics without
	 * a type as parley_plugin_value{plugin="PLUGIN",name="NAME"} (see
	 * metric_declare for typed metrics with help and labels). Names are
	 * 1 to 64 bytes of a-z, 0-9 and '_'. Return 0, -1 for an invalid name
	 * (logged). */
	int (*counter_add)(parley_ctx *ctx, const char *name, int64_t delta);
	int (*counter_set)(parley_ctx *ctx, const char *name, int64_t value);

	/* ---- History store */

	/* Makes the plugin the server's history store (the struct is
	 * copied). Existing rooms continue from store->last_seq. Returns 0,
	 * -1 when another store is registered or store is malformed
	 * (logged). The store is dropped after the plugin's fini. */
	int (*history_store_register)(parley_ctx *ctx,
	    const struct parley_history_store *store);
	/* Delivers one message from a store's read; m->room is ignored.
	 * Returns 0, -1 when m is malformed (sender or text not UTF-8;
	 * logged and skipped). */
	int (*history_emit)(parley_ctx *ctx, parley_history_sink *sink,
	    const struct parley_history_msg *m);

	/* ---- File descriptors (since 1.1): a plugin's own sockets or pipes
	 * on the event loop, e.g. a database client's connection. */

	/* Watches fd (non-blocking, owned by the plugin) for events
	 * (PARLEY_FD_* bits; 0 watches nothing for now) and calls fn on the
	 * loop when it is ready (level-triggered). Returns a watch id (> 0),
	 * or 0 when fd cannot be watched (logged). since 1.1 */
	uint64_t (*fd_watch)(parley_ctx *ctx, int fd, unsigned events,
	    parley_fd_fn fn, void *arg);
	/* Changes the events of a watch. Returns 0, -1 if id is unknown.
	 * since 1.1 */
	int (*fd_update)(parley_ctx *ctx, uint64_t id, unsigned events);
	/* Stops a watch (also from its own callback); the plugin closes fd
	 * afterwards. Watches left are stopped after fini. Returns 0, -1 if
	 * id is unknown. since 1.1 */
	int (*fd_unwatch)(parley_ctx *ctx, uint64_t id);

	/* ---- Remote members (since 1.1): clients of another server of a
	 * cluster, shown here as members without a connection. They hold
	 * their name (so no local client can take it), appear in
	 * participants and cause joined_room, user_left and user_renamed as
	 * local members do; nothing is ever sent to them and they are not
	 * counted as connections. Hooks see them (leave, disconnect): test
	 * client_is_remote. Rename one with client_rename. */

	/* Creates a remote member named name. Sets *out (may be NULL).
	 * Returns PARLEY_OK, PARLEY_ERR_INVALID_NAME or
	 * PARLEY_ERR_NAME_TAKEN. since 1.1 */
	int (*remote_create)(parley_ctx *ctx, const char *name, size_t len,
	    parley_client **out);
	/* Adds a remote member to room: the members get joined_room. Returns
	 * PARLEY_OK (also when already a member) or PARLEY_ERR_BAD_REQUEST
	 * when c is not remote. since 1.1 */
	int (*remote_join)(parley_ctx *ctx, parley_client *c, parley_room *r);
	/* Removes a remote member from room: the others get user_left with
	 * reason ("left", "disconnected", "timeout" or "kicked"). Returns
	 * PARLEY_OK, PARLEY_ERR_NOT_IN_ROOM or PARLEY_ERR_BAD_REQUEST. since
	 * 1.1 */
	int (*remote_leave)(parley_ctx *ctx, parley_client *c, parley_room *r,
	    const char *reason);
	/* Removes a remote member from every room (user_left with reason)
	 * and frees its name; its handle is dead afterwards. Returns
	 * PARLEY_OK or PARLEY_ERR_BAD_REQUEST when c is not remote. since
	 * 1.1 */
	int (*remote_remove)(parley_ctx *ctx, parley_client *c,
	    const char *reason);
	/* True when c is a remote member. since 1.1 */
	bool (*client_is_remote)(parley_ctx *ctx, parley_client *c);
	/* Posts a message as room_post does, but with the given seq (> 0)
	 * and ts (0: now): the room's seq becomes seq, so the next local
	 * message gets seq + 1. For a cluster that orders a room's messages
	 * elsewhere. No hooks run. Returns as room_post. since 1.1 */
	int (*room_post_seq)(parley_ctx *ctx, parley_room *r,
	    const char *sender, const char *text, size_t len, bool action,
	    uint64_t seq, uint64_t ts);

	/* ---- Answers that come later (since 1.2): a store whose data is
	 * across the network must not block the loop. */

	/* During a history store's read: keeps the request open past the
	 * read, which then returns PARLEY_HISTORY_LATER. Returns the sink to
	 * use from now on (history_emit as during a read), valid until
	 * history_done; NULL outside a read (logged). since 1.2 */
	parley_history_sink *(*history_defer)(parley_ctx *ctx,
	    parley_history_sink *sink);
	/* Ends a deferred read: status 0 sends the messages emitted (oldest
	 * first, as for read), -1 an "internal" error. The client may have
	 * gone meanwhile; the sink is dead afterwards. Reads still open when
	 * the plugin is unloaded fail. since 1.2 */
	void (*history_done)(parley_ctx *ctx, parley_history_sink *sink,
	    int status);

	/* ---- Health (since 1.2) */

	/* Says whether what the plugin depends on works (ok) and why not
	 * (detail, may be NULL; UTF-8). GET /healthz shows it under
	 * "plugins" and says "degraded" while a plugin is not ok; a change
	 * is logged. since 1.2 */
	void (*health_report)(parley_ctx *ctx, bool ok, const char *detail);

	/* ---- Metrics with a type, help text and labels (since 1.3) */

	/* Declares metric name of type PARLEY_METRIC_COUNTER or
	 * PARLEY_METRIC_GAUGE, with help (one line of UTF-8; may be NULL; the
	 * server escapes it). /metrics shows it as the family
	 * parley_plugin_<name>, each series labelled plugin="<this plugin>"
	 * plus the labels given when it changes. name: 1 to 64 bytes of a-z,
	 * 0-9 and '_', not starting with a digit, not "value". Several
	 * plugins may declare one name with the same type (the first help
	 * text is shown). Declaring again is harmless. Returns 0, or -1
	 * (logged) for a bad name, type or help, or a name declared with
	 * another type. The plugin's series are removed after its fini.
	 * since 1.3 */
	int (*metric_declare)(parley_ctx *ctx, const char *name, int type,
	    const char *help);
	/* Adds delta to the series of declared metric name with labels
	 * (created at 0 when new). labels: NULL, or key and value strings
	 * in turn, ended by NULL: (const char *[]){ "room", "general",
	 * NULL }. Keys: 1 to 64 bytes of a-z, 0-9 and '_', not starting with
	 * a digit or "__", not "plugin", each once; at most 8 labels. Values:
	 * UTF-8, at most 256 bytes (escaped by the server). The order of the
	 * labels does not matter. A plugin may have at most 1000 series in
	 * all. A counter's delta must not be negative. Returns 0, or -1
	 * (logged) for an undeclared name, a bad label, a negative delta on
	 * a counter or too many series. since 1.3 */
	int (*metric_add)(parley_ctx *ctx, const char *name,
	    const char *const *labels, double delta);
	/* Sets the series of declared metric name with labels (as for
	 * metric_add) to value; a counter must not go down. Returns as
	 * metric_add. since 1.3 */
	int (*metric_set)(parley_ctx *ctx, const char *name,
	    const char *const *labels, double value);

	/* ---- Rooms (since 1.3) */

	/* The id of the client that owns room r (its creator, or for a
	 * room an account created, a client logged in as that account), or
	 * 0 when the server owns it (configured rooms, rooms scripts and
	 * plugins create) or its owner is not connected. since 1.3 */
	uint64_t (*room_owner)(parley_ctx *ctx, parley_room *r);
	/* Removes room r: every member gets kicked with reason (may be
	 * NULL: "room deleted"), every client room_deleted, the
	 * PARLEY_EV_ROOM_REMOVED hooks run, and its history in the built-in
	 * store goes. The handle is dead afterwards. Returns PARLEY_OK, or
	 * PARLEY_ERR_BAD_REQUEST for a handle that is not a room.
	 * since 1.3 */
	int (*room_remove)(parley_ctx *ctx, parley_room *r,
	    const char *reason);

	/* ---- Identity (since 1.3) */

	/* The account client c is logged in as (accounts the server keeps,
	 * or an identity given when it connected), or NULL for a guest or
	 * a handle that is not a client. The string is the host's: valid
	 * until the client logs in or out, or goes; copy it to keep it.
	 * since 1.3 */
	const char *(*client_account)(parley_ctx *ctx, parley_client *c);
	/* The account that owns room r (created by a client logged in as
	 * it), or NULL when a guest's connection, the server or nobody owns
	 * it. Valid while the room exists. An account's room is owned by
	 * whichever connection is logged in as it: room_owner gives that
	 * client's id. since 1.3 */
	const char *(*room_owner_account)(parley_ctx *ctx, parley_room *r);

	/* ---- Admission before the upgrade (since 1.3) */

	/* A header (by name, in any case), a cookie or a query parameter
	 * (percent-decoded) of the request a PARLEY_EV_CONNECT hook is
	 * given, or NULL when it has none. Valid until the hook returns.
	 * since 1.3 */
	const char *(*request_header)(parley_ctx *ctx,
	    const parley_request *req, const char *name);
	const char *(*request_cookie)(parley_ctx *ctx,
	    const parley_request *req, const char *name);
	const char *(*request_param)(parley_ctx *ctx,
	    const parley_request *req, const char *name);
	/* From a PARLEY_EV_CONNECT hook (ev is its event): admits the
	 * connection as account (a valid username), shown as name (NULL:
	 * the account's; it falls back to the account's when taken), with
	 * roles (NULL-terminated, at most 8, may be NULL) besides those the
	 * configuration gives the account. The hook then returns
	 * PARLEY_PASS (later hooks may still refuse) or PARLEY_STOP.
	 * Returns PARLEY_OK, or PARLEY_ERR_BAD_REQUEST (logged) outside a
	 * connect hook or for a bad name or role. since 1.3 */
	int (*client_admit)(parley_ctx *ctx, struct parley_event *ev,
	    const char *account, const char *name, const char *const *roles);
	/* The connection of client c is closed with code 4003 at
	 * expires_s (seconds since the Unix epoch), after a notice shortly
	 * before, unless a fresh token moves it (0: never). For a
	 * connection admitted with a token that expires. since 1.3 */
	void (*client_expires)(parley_ctx *ctx, parley_client *c,
	    uint64_t expires_s);

	/* ---- Direct messages and typing across servers (since 1.4) */

	/* Makes fn (with arg) this plugin's relay: it is told of what the
	 * core cannot deliver itself (enum parley_relay_kind) once every
	 * check and hook has passed. Typing never reaches hooks; this is
	 * how a cluster carries it. NULL stops it. Returns PARLEY_OK.
	 * since 1.4 */
	int (*relay_set)(parley_ctx *ctx, parley_relay_fn fn, void *arg);

	/* ---- Rooms that last (since 1.4) */

	/* Adds a record to the audit trail {time, actor (this plugin),
	 * actor_kind "plugin", action, target, room, reason, expires} and
	 * a line to the log. action is required (at most 64 bytes); target,
	 * r and reason may be NULL; expires_s is Unix seconds, 0 for none.
	 * Returns PARLEY_OK, or PARLEY_ERR_BAD_REQUEST (logged). since 1.4 */
	int (*audit_add)(parley_ctx *ctx, const char *action,
	    const char *target, parley_room *r, const char *reason,
	    uint64_t expires_s);
	/* Makes the plugin a state store (see struct parley_state_store;
	 * copied). At most one. Returns PARLEY_OK, or
	 * PARLEY_ERR_BAD_REQUEST (logged) for a malformed store or when
	 * another plugin is the state store. since 1.4 */
	int (*state_store_register)(parley_ctx *ctx,
	    const struct parley_state_store *store);
	/* A record was changed elsewhere (another server): the server takes
	 * value (a JSON text; NULL: deleted) into memory and its embedded
	 * store, without calling put back. A room record changes the live
	 * room's topic and roles (members get topic_changed); bans, mutes
	 * and tombstones apply from then on. Returns PARLEY_OK, or
	 * PARLEY_ERR_BAD_REQUEST (logged) for a value that is not JSON.
	 * since 1.4 */
	int (*state_changed)(parley_ctx *ctx, const char *kind,
	    const char *key, const char *value, size_t value_len);
	/* The topic of room r ("" when none; valid until it changes), or
	 * NULL for a handle that is not a room. since 1.4 */
	const char *(*room_topic)(parley_ctx *ctx, parley_room *r);
	/* ---- Sessions across servers (since 1.4) */

	/* The local client (open or held) whose session secret has this
	 * SHA-256 (hash: 32 bytes, of which the first 16 are compared, as
	 * the relays name a session), or NULL. since 1.4 */
	parley_client *(*session_find)(parley_ctx *ctx, const uint8_t *hash);
	/* Local client c's session was resumed on another server, whose
	 * client it now is: c becomes a remote member (as remote_create
	 * makes), keeping its id, name and rooms without any room being
	 * told; its session ends, and an open connection is closed with
	 * code 4001. No hook runs. since 1.4 */
	int (*session_moved)(parley_ctx *ctx, parley_client *c);
	/* From a PARLEY_RELAY_RESUME relay: this plugin will answer c's
	 * resume (later, with session_adopt or session_refuse); until then
	 * c's other requests are refused. since 1.4 */
	int (*session_wait)(parley_ctx *ctx, parley_client *c);
	/* Answers c's resume with remote member r (another server's
	 * client, whose session it was): r takes over c's connection and
	 * becomes a local client, keeping its name and rooms without any
	 * room being told (no leave, no join); state: a JSON object
	 * {"account", "roles", "key"} (as in PARLEY_RELAY_SESSION_*) says
	 * who it is. r gets a new secret in resumed; c goes. PARLEY_ERR_BAD_REQUEST
	 * when c waits for no answer or r is no remote member (c then gets
	 * resume_failed). since 1.4 */
	int (*session_adopt)(parley_ctx *ctx, parley_client *c,
	    parley_client *r, const char *state, size_t len);
	/* Answers c's resume with resume_failed. since 1.4 */
	int (*session_refuse)(parley_ctx *ctx, parley_client *c);
};

/* True when the host table has function fn (it may be older than this
 * header). since 1.0 */
#define PARLEY_HOST_HAS(host, fn)                                            \
	((host)->size >= offsetof(struct parley_host, fn) +                  \
	    sizeof((host)->fn) && (host)->fn != NULL)

/* ---------------------------------------------------------------------
 * The descriptor
 */

/*
 * The one symbol a plugin exports, named parley_plugin. since 1.0
 *
 * init: called once after loading, on the event-loop thread, with the
 * host table (valid until fini returns). Register hooks, commands, timers
 * and stores here. Return 0, or non-zero to refuse to load (log why first):
 * the server then refuses to start. Whatever init registered is removed
 * when it fails; fini is not called then.
 *
 * fini: called once at shutdown, after every client has gone and before
 * the library is unloaded. Timers are already stopped; hooks and commands
 * are removed right after. Flush and free everything here and join any
 * thread you started. May be NULL.
 */
struct parley_plugin {
	uint32_t abi_major;  /* PARLEY_PLUGIN_ABI_MAJOR */
	uint32_t abi_minor;  /* PARLEY_PLUGIN_ABI_MINOR */
	uint32_t size;       /* sizeof(struct parley_plugin) */
	uint32_t reserved0;
	const char *name;    /* 1 to 64 bytes of A-Z a-z 0-9 '_' '-' '.' */
	const char *version; /* the plugin's own version, free form */
	const char *description; /* one line, may be NULL */
	int (*init)(parley_ctx *ctx, const struct parley_host *host);
	void (*fini)(parley_ctx *ctx);
	void *reserved[4];
};

/* Declared here, exported by this declaration's visibility, defined by
 * PARLEY_PLUGIN_DEFINE. since 1.0 */
PARLEY_EXPORT extern const struct parley_plugin parley_plugin;

/*
 * Defines the descriptor; use it once, at file scope:
 *
 *     PARLEY_PLUGIN_DEFINE("hello", "1.0", "says hello", hello_init,
 *         hello_fini);
 *
 * since 1.0
 */
#define PARLEY_PLUGIN_DEFINE(name, version, description, init, fini)         \
	const struct parley_plugin parley_plugin = {                          \
		PARLEY_PLUGIN_ABI_MAJOR, PARLEY_PLUGIN_ABI_MINOR,             \
		(uint32_t)sizeof(struct parley_plugin), 0, (name), (version), \
		(description), (init), (fini), { NULL, NULL, NULL, NULL }     \
	}

#ifdef __cplusplus
}
#endif

#endif
