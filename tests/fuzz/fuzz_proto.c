/*
 * fuzz_proto.c: libFuzzer target for the protocol dispatcher. An input is
 * a conversation: lines of text, each one WebSocket message handed to
 * proto_handle as the codec would (lines that are not valid UTF-8 are
 * skipped, since the codec never delivers them). A line may start with a
 * byte 0x01-0x03 to speak as client 1-3 instead of client 0, and a line
 * of 0x05 plus one byte disconnects that client and connects a new one.
 * Clients have no socket: their output queues are read back after every
 * line, and every frame must be a text frame holding one JSON object with
 * a string type; errors must carry a known code and a message; replies
 * with an id go only to the client that asked; each client sees the seqs
 * of a room it stays in rise by exactly one; and the quotas and name rules
 * must hold after every step. Each input starts from the same state (the
 * room general and four fresh clients) and frees everything at the end.
 * A hook on every event and a few commands stand in for scripts: words in
 * the text ("!deny", "!drop", "!long", ...) make the hook refuse, drop or
 * rewrite, and /fzkick, /fznick, /fznotice, /fzshout and /fzmkroom call
 * the actions scripts call. When PARLEY_FUZZ_SCRIPTS names a directory,
 * every script in it is loaded for each input too (its operator password
 * is "fuzz"), so the Lua API is fuzzed through the same conversations.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Isrc \
 *       $(pkg-config --cflags jansson lua5.4 libmicrohttpd) \
 *       tests/fuzz/fuzz_proto.c src/<every .c but main.c> -o fuzz_proto \
 *       $(pkg-config --libs libmicrohttpd jansson nettle lua5.4)
 *   ./fuzz_proto -dict=tests/fuzz/proto.dict tests/fuzz/corpus/proto
 */
#include "config.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley.h"

#define FUZZ_CLIENTS 4
#define FUZZ_MAX_LINES 64
#define FUZZ_MAX_SEEN 16 /* rooms whose seq is followed per client */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Follows the last seq a client saw in a room while it stays a member. */
struct fuzz_seen {
	char room[PROTO_ROOM_NAME_MAX + 1];
	uint64_t seq;
};

struct fuzz_client {
	struct client *c;
	struct fuzz_seen seen[FUZZ_MAX_SEEN];
	size_t nseen;
};

static struct config fuzz_cfg;
static struct fuzz_client fuzz_clients[FUZZ_CLIENTS];
static unsigned fuzz_addr;
static bool fuzz_dropped; /* a hook dropped the request: no answer */
static bool fuzz_scripts; /* scripts are loaded for each input */

/* sha256:hex of "fuzz" */
#define FUZZ_OPER_HASH "sha256:" \
	"93850b707585e404e4951a3ddc1f05a34b3d4f5fc081d616f46d8a2e8f1c8e68"

static const char *const fuzz_codes[] = {
	"bad_json", "bad_request", "unknown_type", "room_exists",
	"room_not_found", "not_in_room", "invalid_name", "name_taken",
	"message_too_long", "rate_limited", "unknown_command", "forbidden",
	"rejected", "unsupported", "internal",
	/* 1.1 */
	"unauthorized", "user_not_found", "message_not_found",
};

#define FUZZ_CHECK(e)                                                        \
	do {                                                                 \
		if (!(e)) {                                                  \
			fprintf(stderr, "fuzz_proto: %s:%d: %s\n", __FILE__, \
			    __LINE__, #e);                                   \
			abort();                                             \
		}                                                            \
	} while (0)

static bool
fuzz_has(const char *text, size_t len, const char *word)
{
	size_t n = strlen(word);

	for (size_t i = 0; text != NULL && i + n <= len; i++) {
		if (memcmp(text + i, word, n) == 0)
			return true;
	}
	return false;
}

/* Stands in for a script's hook: words in the text decide. */
static enum hook_verdict
fuzz_hook(struct hook_args *a, void *arg)
{
	const char *t = a->text;
	size_t n = a->text_len;
	char buf[300];

	(void)arg;
	if (a->event == HOOK_JOIN && a->room != NULL) {
		t = a->room->name;
		n = a->room->name_len;
	}
	if (fuzz_has(t, n, "!deny")) {
		hook_deny(a, fuzz_has(t, n, "!forbid") ? PROTO_ERR_FORBIDDEN :
		    PROTO_ERR_REJECTED, fuzz_has(t, n, "!quiet") ? NULL :
		    "refused by a hook");
		return HOOK_DENY;
	}
	if (fuzz_has(t, n, "!drop")) {
		fuzz_dropped = true;
		return HOOK_DROP;
	}
	if (fuzz_has(t, n, "!stop"))
		return HOOK_STOP;
	if (fuzz_has(t, n, "!empty")) {
		/* An emptied message is dropped, silently. */
		fuzz_dropped = fuzz_dropped || a->event == HOOK_MESSAGE;
		hook_modify(a, "", 0);
		return HOOK_MODIFY;
	}
	if (fuzz_has(t, n, "!long")) {
		memset(buf, 'L', sizeof buf);
		hook_modify(a, buf, sizeof buf);
		return HOOK_MODIFY;
	}
	if (fuzz_has(t, n, "!ctl")) {
		hook_modify(a, "a\x01b", 3);
		return HOOK_MODIFY;
	}
	if (fuzz_has(t, n, "!bad")) {
		hook_modify(a, "x\xff", 2);
		return HOOK_MODIFY;
	}
	if (fuzz_has(t, n, "!upper") && n <= sizeof buf) {
		for (size_t i = 0; i < n; i++)
			buf[i] = (t[i] >= 'a' && t[i] <= 'z') ?
			    (char)(t[i] - 32) : t[i];
		hook_modify(a, buf, n);
		return HOOK_MODIFY;
	}
	return HOOK_PASS;
}

/* Commands doing what scripts do through the chat actions (chat.c). */
static enum proto_err
fuzz_cmd_kick(const struct command_ctx *ctx, void *arg)
{
	struct client *t = client_find_by_name(ctx->args,
	    strlen(ctx->args));

	(void)arg;
	if (t == NULL || room_membership(ctx->room, t) == NULL)
		return PROTO_ERR_BAD_REQUEST;
	return chat_kick(CHAT_BY(CHAT_ACTOR_SCRIPT, "fuzz"), t, ctx->room,
	    "by the fuzzer", NULL);
}

static enum proto_err
fuzz_cmd_nick(const struct command_ctx *ctx, void *arg)
{
	char *reason = NULL;
	enum proto_err e;

	(void)arg;
	e = chat_rename(CHAT_BY_CLIENT(ctx->client), ctx->client, ctx->args,
	    strlen(ctx->args), ctx->id, CHAT_AS_CLIENT, &reason);
	free(reason);
	return e;
}

static enum proto_err
fuzz_cmd_notice(const struct command_ctx *ctx, void *arg)
{
	(void)arg;
	chat_notice(ctx->client, ctx->room, ctx->args, ctx->id);
	return PROTO_OK;
}

static enum proto_err
fuzz_cmd_shout(const struct command_ctx *ctx, void *arg)
{
	(void)arg;
	chat_notice_room(ctx->room, ctx->args);
	return PROTO_OK;
}

static enum proto_err
fuzz_cmd_mkroom(const struct command_ctx *ctx, void *arg)
{
	char *reason = NULL;
	enum proto_err e;

	(void)arg;
	e = chat_room_create(CHAT_BY_CLIENT(ctx->client), ctx->args,
	    strlen(ctx->args), ctx->id, NULL, &reason);
	free(reason);
	return e;
}

static int
fuzz_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Enables every script of dir (the scripts config lists names). */
static void
fuzz_setup_scripts(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (d == NULL) {
		fprintf(stderr, "fuzz_proto: cannot open %s\n", dir);
		abort();
	}
	for (size_t i = 0; i < cfg->script_dirs.n; i++)
		free(cfg->script_dirs.v[i]);
	free(cfg->script_dirs.v);
	cfg->script_dirs.v = xcalloc(1, sizeof *cfg->script_dirs.v);
	cfg->script_dirs.v[0] = xstrdup(dir);
	cfg->script_dirs.n = 1;
	for (size_t i = 0; i < cfg->scripts.n; i++)
		free(cfg->scripts.v[i]);
	free(cfg->scripts.v);
	cfg->scripts.v = NULL;
	cfg->scripts.n = 0;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len <= 4 || strcmp(de->d_name + len - 4, ".lua") != 0)
			continue;
		cfg->scripts.v = xreallocarray(cfg->scripts.v,
		    cfg->scripts.n + 1, sizeof *cfg->scripts.v);
		cfg->scripts.v[cfg->scripts.n++] = xstrndup(de->d_name,
		    len - 4);
	}
	closedir(d);
	qsort(cfg->scripts.v, cfg->scripts.n, sizeof *cfg->scripts.v,
	    fuzz_name_cmp);
	free(cfg->oper_password);
	cfg->oper_password = xstrdup(FUZZ_OPER_HASH);
	fuzz_scripts = cfg->scripts.n > 0;
}

static void
fuzz_setup(void)
{
	const char *dir = getenv("PARLEY_FUZZ_SCRIPTS");
	static const enum hook_event events[] = { HOOK_USERNAME,
	    HOOK_CREATE_ROOM, HOOK_JOIN, HOOK_MESSAGE, HOOK_LEAVE,
	    HOOK_DISCONNECT };
	char *cause = NULL;

	config_defaults(&fuzz_cfg);
	cfg = &fuzz_cfg;
	/* Small limits, so that inputs reach them. */
	cfg->max_message_bytes = 64;
	cfg->max_output_bytes = 8192;
	cfg->max_json_depth = 8;
	cfg->history_size = 8;
	cfg->max_rooms = 8;
	cfg->max_rooms_per_client = 4;
	cfg->max_members_per_room = 3;
	cfg->request_burst = 24;
	cfg->message_burst = 12;
	cfg->room_burst = 3;
	cfg->name_burst = 4;
	cfg->flood_close_after = 4;
	log_level = -1; /* silent: nothing is at or below -1 */
	if (loop_init(&cause) != 0) {
		fprintf(stderr, "fuzz_proto: %s\n", cause);
		abort();
	}
	limit_init();
	srandom(1);
	for (size_t i = 0; i < sizeof events / sizeof events[0]; i++)
		hook_add(events[i], 0, "fuzz", fuzz_hook, NULL);
	command_register("fzkick", "fuzz", "<user>", NULL, fuzz_cmd_kick,
	    NULL);
	command_register("fznick", "fuzz", "<name>", NULL, fuzz_cmd_nick,
	    NULL);
	command_register("fznotice", "fuzz", NULL, NULL, fuzz_cmd_notice,
	    NULL);
	command_register("fzshout", "fuzz", NULL, NULL, fuzz_cmd_shout, NULL);
	command_register("fzmkroom", "fuzz", NULL, NULL, fuzz_cmd_mkroom,
	    NULL);
	if (dir != NULL && *dir != '\0')
		fuzz_setup_scripts(dir);
}

static void
fuzz_connect(struct fuzz_client *fc)
{
	char addr[32];

	snprintf(addr, sizeof addr, "192.0.2.%u", fuzz_addr++ % 250 + 1);
	memset(fc, 0, sizeof *fc);
	fc->c = client_create(addr);
	proto_welcome(fc->c);
}

static void
fuzz_disconnect(struct fuzz_client *fc)
{
	/* The daemon's conn_release does this; flood and slow-consumer
	 * closes leave a timer behind. */
	loop_timer_cancel(&fc->c->timer);
	client_remove(fc->c, "disconnected");
	fc->c = NULL;
}

static struct fuzz_seen *
fuzz_seen_find(struct fuzz_client *fc, const char *room, bool add)
{
	for (size_t i = 0; i < fc->nseen; i++) {
		if (strcmp(fc->seen[i].room, room) == 0)
			return &fc->seen[i];
	}
	if (!add || fc->nseen == FUZZ_MAX_SEEN)
		return NULL;
	snprintf(fc->seen[fc->nseen].room, sizeof fc->seen[0].room, "%s",
	    room);
	fc->seen[fc->nseen].seq = 0;
	return &fc->seen[fc->nseen++];
}

static void
fuzz_seen_forget(struct fuzz_client *fc, const char *room)
{
	for (size_t i = 0; i < fc->nseen; i++) {
		if (strcmp(fc->seen[i].room, room) == 0) {
			fc->seen[i] = fc->seen[--fc->nseen];
			return;
		}
	}
}

static void
fuzz_check_participants(const json_t *p)
{
	size_t i;
	json_t *v;

	FUZZ_CHECK(json_is_array(p));
	FUZZ_CHECK(json_array_size(p) <= cfg->max_members_per_room);
	json_array_foreach(p, i, v)
		FUZZ_CHECK(json_is_string(v));
}

/* Checks one frame queued for fc; mine is true for the client whose
 * message is being handled. */
static void
fuzz_check_frame(struct fuzz_client *fc, const struct buf *b, bool mine)
{
	size_t hlen = 2, len;
	json_t *j, *v;
	const char *type, *room;
	bool known = false;

	FUZZ_CHECK(b->len >= 2);
	if (b->data[0] == 0x88) { /* a close: the client is closing */
		FUZZ_CHECK(fc->c->closing);
		return;
	}
	FUZZ_CHECK(b->data[0] == 0x81); /* FIN, text, unmasked */
	len = b->data[1] & 0x7f;
	FUZZ_CHECK((b->data[1] & 0x80) == 0);
	if (len == 126) {
		FUZZ_CHECK(b->len >= 4);
		len = (size_t)b->data[2] << 8 | b->data[3];
		hlen = 4;
	} else if (len == 127) {
		FUZZ_CHECK(b->len >= 10);
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | b->data[2 + i];
		hlen = 10;
	}
	FUZZ_CHECK(hlen + len == b->len);
	FUZZ_CHECK(utf8_valid((const char *)b->data + hlen, len));
	j = json_loadb((const char *)b->data + hlen, len, JSON_ALLOW_NUL,
	    NULL);
	FUZZ_CHECK(json_is_object(j));
	type = json_string_value(json_object_get(j, "type"));
	FUZZ_CHECK(type != NULL);
	/* Broadcasts carry no id: an id is only ever an answer. */
	if (json_object_get(j, "id") != NULL)
		FUZZ_CHECK(mine);
	if (strcmp(type, "error") == 0) {
		const char *code = json_string_value(json_object_get(j,
		    "code"));
		FUZZ_CHECK(code != NULL);
		FUZZ_CHECK(json_is_string(json_object_get(j, "message")));
		for (size_t i = 0; i < sizeof fuzz_codes / sizeof fuzz_codes[0];
		    i++)
			known = known || strcmp(code, fuzz_codes[i]) == 0;
		FUZZ_CHECK(known);
	}
	if ((v = json_object_get(j, "participants")) != NULL)
		fuzz_check_participants(v);
	room = json_string_value(json_object_get(j, "roomName"));
	if (strcmp(type, "new_message") == 0) {
		struct fuzz_seen *s;
		json_int_t seq = json_integer_value(json_object_get(j, "seq"));
		size_t mlen = json_string_length(json_object_get(j,
		    "message"));

		FUZZ_CHECK(room != NULL && seq > 0);
		FUZZ_CHECK(mlen >= 1 && mlen <= cfg->max_message_bytes);
		FUZZ_CHECK(json_is_string(json_object_get(j, "sender")));
		FUZZ_CHECK(json_is_integer(json_object_get(j, "ts")));
		s = fuzz_seen_find(fc, room, true);
		if (s != NULL) {
			/* Nothing lost, nothing twice, in order. */
			if (s->seq != 0)
				FUZZ_CHECK((uint64_t)seq == s->seq + 1);
			s->seq = (uint64_t)seq;
		}
	} else if (room != NULL && (strcmp(type, "room_left") == 0 ||
	    strcmp(type, "kicked") == 0))
		fuzz_seen_forget(fc, room);
	json_decref(j);
}

/* Reads back and checks everything queued for fc. Returns the number of
 * frames. */
static size_t
fuzz_drain(struct fuzz_client *fc, bool mine)
{
	struct client *c = fc->c;
	struct conn_queue *q = c->out;
	size_t n = 0;

	while (q != NULL && q->len > 0) {
		struct buf *b = q->ring[q->head];
		q->head = (q->head + 1) % q->cap;
		q->len--;
		q->bytes -= b->len;
		fuzz_check_frame(fc, b, mine);
		buf_unref(b);
		n++;
	}
	if (q != NULL) {
		/* Drained: conn.c frees a queue once it is empty. */
		FUZZ_CHECK(q->bytes == 0);
		free(q);
		c->out = NULL;
	}
	return n;
}

/* What must hold between two messages. */
static void
fuzz_check_state(void)
{
	unsigned nclients = 0;

	FUZZ_CHECK(room_count() <= cfg->max_rooms);
	for (struct client *c = clients; c != NULL; c = c->next) {
		size_t len = strlen(c->name);

		nclients++;
		FUZZ_CHECK(proto_name_valid(c->name, len,
		    PROTO_USERNAME_MAX));
		FUZZ_CHECK(client_find_by_name(c->name, len) == c);
		FUZZ_CHECK(c->nrooms <= cfg->max_rooms_per_client);
		for (size_t i = 0; i < c->nrooms; i++) {
			struct room *r = client_room(c, i)->room;
			FUZZ_CHECK(client_room(c, i)->index == i);
			FUZZ_CHECK(client_room(c, i)->client == c);
			FUZZ_CHECK(room_find(r->name, r->name_len) == r);
			FUZZ_CHECK(r->count >= 1 &&
			    r->count <= cfg->max_members_per_room);
			FUZZ_CHECK(room_membership(r, c) == client_room(c, i));
		}
	}
	FUZZ_CHECK(nclients == client_count);
	FUZZ_CHECK(client_count == FUZZ_CLIENTS);
}

static void
fuzz_line(const uint8_t *p, size_t len)
{
	unsigned who = 0;
	struct fuzz_client *fc;
	char *copy;
	size_t got;

	if (len >= 1 && p[0] >= 0x01 && p[0] <= 0x03) {
		who = p[0];
		p++;
		len--;
	} else if (len == 2 && p[0] == 0x05) {
		fc = &fuzz_clients[p[1] % FUZZ_CLIENTS];
		fuzz_disconnect(fc);
		client_reap();
		fuzz_connect(fc);
		for (unsigned i = 0; i < FUZZ_CLIENTS; i++)
			fuzz_drain(&fuzz_clients[i], false);
		fuzz_check_state();
		return;
	}
	fc = &fuzz_clients[who];
	/* The codec delivers only valid UTF-8, and nothing once closing. */
	if (!utf8_valid((const char *)p, len) || fc->c->closing)
		return;
	/* An exact-size copy, so that reading past the end is caught. */
	copy = xmalloc(len ? len : 1);
	memcpy(copy, p, len);
	fuzz_dropped = false;
	proto_handle(fc->c, copy, len);
	free(copy);
	FUZZ_CHECK(!fc->c->dead);
	got = fuzz_drain(fc, true);
	/* Every message is answered, unless the client is being closed
	 * (flooding, or a queue over its cap) or a hook dropped it (scripts
	 * may drop without saying so). */
	FUZZ_CHECK(got >= 1 || fc->c->closing || fuzz_dropped ||
	    fuzz_scripts);
	for (unsigned i = 0; i < FUZZ_CLIENTS; i++) {
		if (i != who)
			fuzz_drain(&fuzz_clients[i], false);
	}
	fuzz_check_state();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	const uint8_t *p = data, *end = data + size;
	unsigned lines = 0;

	if (!ready) {
		fuzz_setup();
		ready = true;
	}
	/* The same start every time: general, fresh scripts (their store
	 * too) and four fresh clients. */
	PARLEY_ASSERT(room_create("general", 7, 0) != NULL);
	if (fuzz_scripts) {
		char *cause = NULL;
		if (script_init(&cause) != 0) {
			fprintf(stderr, "fuzz_proto: scripts: %s\n", cause);
			abort();
		}
	}
	for (unsigned i = 0; i < FUZZ_CLIENTS; i++) {
		fuzz_connect(&fuzz_clients[i]);
		fuzz_drain(&fuzz_clients[i], false);
	}
	while (p < end && lines++ < FUZZ_MAX_LINES) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		const uint8_t *stop = nl ? nl : end;

		fuzz_line(p, (size_t)(stop - p));
		p = nl ? nl + 1 : end;
	}
	for (unsigned i = 0; i < FUZZ_CLIENTS; i++) {
		fuzz_disconnect(&fuzz_clients[i]);
		for (unsigned k = i + 1; k < FUZZ_CLIENTS; k++)
			fuzz_drain(&fuzz_clients[k], false);
	}
	client_reap();
	if (fuzz_scripts)
		script_free();
	room_free_all();
	FUZZ_CHECK(clients == NULL && client_count == 0);
	return 0;
}
