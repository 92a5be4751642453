/*
 * redis.h: what the parts of the redis plugin share: the two connections
 * to Redis, the options, this server's id, and one section per file.
 * redis.c: options, connections, the hiredis adapter on parleyd's loop;
 * members.c: which clients of which server are in which room, and names;
 * messages.c: chat messages ordered through Redis, and room history;
 * state.c: rooms, roles, bans and tombstones shared;
 * direct.c: direct messages and typing to the other servers;
 * sessions.c: sessions resumed on another server.
 */
#ifndef PARLEY_REDIS_H
#define PARLEY_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include <parley/plugin.h>

/* One of the two connections: commands, and the subscriber. */
struct rd_conn {
	redisAsyncContext *ac;
	uint64_t watch;  /* fd_watch id, 0 when none */
	unsigned events; /* PARLEY_FD_* wanted by hiredis */
	bool ready;      /* connected */
	const char *what;
};

struct rd_options {
	const char *host;
	int64_t port;
	const char *unix_path;
	const char *password;
	const char *prefix;
	int64_t db;
	int64_t ttl_ms;
	int64_t history;
	bool history_store;
	int64_t timeout_ms; /* a reply later than this: serve locally */
};

/* redis.c */
extern parley_ctx *rd_ctx;
extern const struct parley_host *rd_host;
extern struct rd_options rd_opt;
extern char rd_sid[17];         /* this server's id in the cluster */
extern struct rd_conn rd_cmd;   /* commands */
extern struct rd_conn rd_sub;   /* SUBSCRIBE */
extern bool rd_up;              /* both connections ready, state sent */
extern bool rd_stopping;
/* prefix + what + name[len] (caller frees). */
char *rd_key(const char *what, const char *name, size_t len);
/* Sends one command (argv, binary safe); REDIS_OK or REDIS_ERR. */
int rd_command(struct rd_conn *rc, redisCallbackFn *fn, void *priv,
    int argc, const char **argv, const size_t *lens);
/* A reply nobody waits for: errors are logged. */
void rd_on_reply_ignore(redisAsyncContext *ac, void *r, void *priv);
/* The gauges of /metrics. */
void rd_gauges(void);
/* Every reply of the subscriber connection. */
void rd_on_sub(redisAsyncContext *ac, void *r, void *priv);

/* ---- Faults: Redis slow, paused or away (redis.c) */

/* A message's seq within the cluster: one block of RD_SEQ_BLOCK seqs per
 * outage and room; in it, slot s of the server that lost Redis owns
 * [s * RD_SEQ_STRIDE, (s + 1) * RD_SEQ_STRIDE) for its local messages,
 * and the cluster's counter jumps past the block when Redis is back. */
#define RD_SEQ_STRIDE (UINT64_C(1) << 20)
#define RD_SEQ_SLOTS 1024
#define RD_SEQ_BLOCK (RD_SEQ_STRIDE * RD_SEQ_SLOTS)
extern bool rd_slow;            /* a reply is overdue: serve locally */
extern uint64_t rd_live_since;  /* mono_ms since Redis answers in time */
extern int64_t rd_slot;         /* 1..RD_SEQ_SLOTS-1, this server's */
extern int64_t rd_clock_offset; /* Redis's clock minus ours, in ms */
extern bool rd_clock_known;
/* Redis connected and answering within the deadline. */
bool rd_ok(void);
/* Redis's clock (ms) when a command sent now is too late to run. */
uint64_t rd_expiry(void);
/* members.c */
void rd_members_init(void);
void rd_members_fini(void);
/* Connected (again): publish the whole state of this server, read the
 * others'. */
void rd_members_up(void);
/* Every heartbeat: keep this server alive in Redis, notice the dead. */
void rd_members_heartbeat(void);
/* The server stops: its members leave the cluster now. */
void rd_members_stop(void);
/* A change another server announced on the event channel. */
void rd_members_event(const char *data, size_t len);
size_t rd_members_remote_count(void);
/* name folded as names compare (allocated). */
char *rd_fold(const char *name);
/* The ghost (remote member) of another server's client, "server:id". */
parley_client *rd_members_ghost(const char *key);
/* That ghost became c, our client (NULL: forget it only). */
void rd_members_adopted(const char *key, parley_client *c);
/* The ghost key of g was taken over for a connection that went before
 * it could be adopted: it leaves everywhere with reason timeout. */
void rd_members_lost(const char *key, parley_client *g);
/* A third server's client moved: its ghost is known by key to now. */
void rd_members_rekey(const char *from, const char *to);
/* Our client c became the ghost of server sid's client rid. */
void rd_members_moved(parley_client *c, const char *sid, const char *rid);
int rd_on_connect(parley_ctx *ctx, struct parley_event *ev, void *arg);
int rd_on_change(parley_ctx *ctx, struct parley_event *ev, void *arg);

/* messages.c */
void rd_messages_init(void);
void rd_messages_fini(void);
/* A local client joins room: listen to its channel now. */
void rd_messages_want(const char *room, size_t len);
/* Its last local member left room: stop listening. */
void rd_messages_unwant(const char *room, size_t len);
/* Subscriptions checked against every room (a slow safety net). */
void rd_messages_subscriptions(void);
/* Forgets the subscriptions (the connection went). */
void rd_messages_reset(void);
/* A message or subscription reply on a room channel. */
void rd_messages_channel(const char *kind, const char *room, size_t len,
    const char *data, size_t dlen);
int rd_on_post(parley_ctx *ctx, struct parley_event *ev, void *arg);
/* Makes Redis the history store, unless another one is. */
void rd_history_register(void);
/* Redis is late: the messages waiting for it are posted here now. */
void rd_messages_fallback(void);
/* Redis answers in time again. */
void rd_messages_up(void);

/* state.c: rooms, roles, bans, mutes and tombstones shared (ABI 1.4) */
/* Becomes the server's state store when the server offers it. */
void rd_state_init(void);
/* Connected (again): read the cluster's records. */
void rd_state_up(void);
/* A change another server announced on the state channel. */
void rd_state_event(const char *data, size_t len);
/* direct.c */
/* Makes our relay the host's (ABI 1.4): direct messages and typing. */
void rd_direct_init(void);
/* Connected: listen to the channel of direct messages and typing. */
void rd_direct_up(void);
/* A reply on that channel. */
void rd_direct_channel(const char *kind, const char *data, size_t len);

/* sessions.c */
/* The core's session relays (ABI 1.4): keeps our sessions' hashes in
 * Redis, asks it for another server's. */
void rd_sessions_relay(parley_ctx *ctx, const struct parley_relay *rl);
/* Another server took over a session of ours ("x" on the channel). */
void rd_sessions_moved(json_t *o);
/* Connected (again): our sessions are written again. */
void rd_sessions_up(void);
void rd_sessions_fini(void);

#endif
