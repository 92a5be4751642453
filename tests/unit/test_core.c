/*
 * test_core.c: protocol handling without sockets. Clients are created as
 * the daemon creates them; frames that proto_handle queues are read back
 * from their output queues and decoded, so every reply, error and
 * broadcast of PROTOCOL.md can be checked exactly, including who gets it.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "parley.h"
#include "unit.h"

static struct config test_config;

/* Takes the oldest queued frame of c and decodes it; NULL when none. */
static json_t *
take(struct client *c)
{
	struct conn_queue *q = c->out;
	struct buf *b;
	size_t hlen = 2, len;
	json_t *j;

	if (q == NULL)
		return NULL;
	b = q->ring[q->head];
	q->head = (q->head + 1) % q->cap;
	q->bytes -= b->len;
	if (--q->len == 0) {
		free(q); /* as conn.c does once a queue is drained */
		c->out = NULL;
	}
	CHECK_INT(b->data[0], 0x81); /* FIN + text */
	len = b->data[1] & 0x7f;
	if (len == 126) {
		len = (size_t)b->data[2] << 8 | b->data[3];
		hlen = 4;
	} else if (len == 127) {
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | b->data[2 + i];
		hlen = 10;
	}
	CHECK_INT(hlen + len, b->len);
	j = json_loadb((const char *)b->data + hlen, len, JSON_ALLOW_NUL, NULL);
	CHECK(j != NULL);
	buf_unref(b);
	return j;
}

static void
drain(struct client *c)
{
	json_t *j;

	while ((j = take(c)) != NULL)
		json_decref(j);
}

static void
send_json(struct client *c, const char *text)
{
	proto_handle(c, text, strlen(text));
}

static const char *
str(const json_t *j, const char *key)
{
	const char *s = json_string_value(json_object_get(j, key));
	return s ? s : "(none)";
}

/* Expects the next frame of c to be of type; returns it (caller frees). */
static json_t *
expect(struct client *c, const char *type)
{
	json_t *j = take(c);

	CHECKF(j != NULL && strcmp(str(j, "type"), type) == 0,
	    "expected %s, got %s", type, j ? str(j, "type") : "nothing");
	return j;
}

static void
expect_error(struct client *c, const char *code)
{
	json_t *j = expect(c, "error");

	CHECKF(j && strcmp(str(j, "code"), code) == 0, "expected %s, got %s",
	    code, j ? str(j, "code") : "nothing");
	json_decref(j);
}

static void
test_welcome(void)
{
	struct client *a = client_create("192.0.2.1");
	json_t *j;

	proto_welcome(a);
	j = expect(a, "welcome");
	CHECK_STR(str(j, "username"), a->name);
	CHECK(strncmp(a->name, "guest-", 6) == 0);
	CHECK_INT(json_integer_value(json_object_get(j, "protocol")), 1);
	CHECK_INT(json_array_size(json_object_get(j, "rooms")), 1);
	json_decref(j);
	client_remove(a, "disconnected");
}

static void
test_chat(void)
{
	struct client *a = client_create("192.0.2.1");
	struct client *b = client_create("192.0.2.2");
	json_t *j;

	send_json(a, "{\"type\":\"set_username\",\"username\":\"alice\","
	    "\"id\":1}");
	j = expect(a, "username_set");
	CHECK_STR(str(j, "username"), "alice");
	CHECK_INT(json_integer_value(json_object_get(j, "id")), 1);
	json_decref(j);

	send_json(a, "{\"type\":\"create_room\",\"roomName\":\"lobby\","
	    "\"id\":\"c1\"}");
	j = expect(a, "created_room");
	CHECK_STR(str(j, "id"), "c1");
	CHECK_INT(json_array_size(json_object_get(j, "participants")), 1);
	json_decref(j);
	json_decref(expect(a, "room_created"));
	j = expect(b, "room_created");
	CHECK(json_object_get(j, "id") == NULL);
	json_decref(j);

	send_json(a, "{\"type\":\"create_room\",\"roomName\":\"lobby\"}");
	expect_error(a, "room_exists");
	send_json(b, "{\"type\":\"join_room\",\"roomName\":\"nope\","
	    "\"username\":\"bob\"}");
	expect_error(b, "room_not_found");
	CHECK(strcmp(b->name, "bob") != 0); /* a failed join changes nothing */
	send_json(b, "{\"type\":\"join_room\",\"roomName\":\"lobby\","
	    "\"username\":\"ALICE\"}");
	expect_error(b, "name_taken");
	CHECK_INT(b->nrooms, 0);

	send_json(b, "{\"type\":\"join_room\",\"roomName\":\"lobby\","
	    "\"username\":\"bob\",\"id\":7}");
	json_decref(expect(b, "username_set"));
	j = expect(b, "room_joined");
	CHECK_INT(json_integer_value(json_object_get(j, "id")), 7);
	json_decref(j);
	j = expect(b, "joined_room");
	CHECK(json_object_get(j, "id") == NULL);
	CHECK_STR(json_string_value(json_array_get(json_object_get(j,
	    "participants"), 0)), "alice");
	CHECK_STR(json_string_value(json_array_get(json_object_get(j,
	    "participants"), 1)), "bob");
	json_decref(j);
	json_decref(expect(a, "joined_room"));

	send_json(a, "{\"type\":\"send_message\",\"roomName\":\"lobby\","
	    "\"message\":\" hi \\u00e9\"}");
	j = expect(b, "new_message");
	CHECK_STR(str(j, "message"), " hi \xc3\xa9");
	CHECK_STR(str(j, "sender"), "alice");
	CHECK_INT(json_integer_value(json_object_get(j, "seq")), 1);
	json_decref(j);
	json_decref(expect(a, "new_message"));

	send_json(b, "{\"type\":\"send_message\",\"roomName\":\"lobby\","
	    "\"message\":\"/nothing here\",\"id\":3}");
	expect_error(b, "unknown_command");
	CHECK(take(a) == NULL);

	send_json(b, "{\"type\":\"send_message\",\"roomName\":\"lobby\","
	    "\"message\":\"\"}");
	expect_error(b, "bad_request");
	send_json(b, "{\"type\":\"send_message\",\"roomName\":\"general\","
	    "\"message\":\"x\"}");
	expect_error(b, "not_in_room");

	client_remove(b, "disconnected");
	j = expect(a, "user_left");
	CHECK_STR(str(j, "reason"), "disconnected");
	CHECK_INT(json_array_size(json_object_get(j, "participants")), 1);
	json_decref(j);
	client_remove(a, "disconnected");
	client_reap();
}

static void
test_envelope(void)
{
	struct client *a = client_create("192.0.2.1");
	char deep[256];
	size_t n = 0;
	json_t *j;

	send_json(a, "42");
	expect_error(a, "bad_json");
	send_json(a, "[1]");
	expect_error(a, "bad_json");
	send_json(a, "{\"type\":\"ping\"} {}");
	expect_error(a, "bad_json");
	send_json(a, "{\"id\":5}");
	j = expect(a, "error");
	CHECK_STR(str(j, "code"), "bad_request");
	CHECK_INT(json_integer_value(json_object_get(j, "id")), 5);
	json_decref(j);
	send_json(a, "{\"type\":\"ping\",\"id\":1.5}");
	j = expect(a, "error");
	CHECK(json_object_get(j, "id") == NULL);
	json_decref(j);
	send_json(a, "{\"type\":\"nope\"}");
	expect_error(a, "unknown_type");
	send_json(a, "{\"type\":\"ping\\u0000\"}");
	expect_error(a, "bad_request");

	n += (size_t)snprintf(deep, sizeof deep, "{\"type\":\"ping\",\"x\":");
	for (int i = 0; i < 40; i++)
		deep[n++] = '[';
	for (int i = 0; i < 40; i++)
		deep[n++] = ']';
	deep[n++] = '}';
	deep[n] = '\0';
	send_json(a, deep);
	expect_error(a, "bad_json");
	CHECK_INT(proto_json_depth("{\"a\":\"[[[[\"}", 11, 32), 1);

	send_json(a, "{\"type\":\"ping\",\"id\":\"x\"}");
	j = expect(a, "pong");
	CHECK_STR(str(j, "id"), "x");
	json_decref(j);
	client_remove(a, "disconnected");
	client_reap();
}

static void
test_history(void)
{
	struct client *a = client_create("192.0.2.1");
	json_t *j, *msgs;
	char text[128];

	send_json(a, "{\"type\":\"join_room\",\"roomName\":\"general\"}");
	drain(a);
	cfg->messages_per_minute = 0;
	cfg->requests_per_minute = 0;
	for (int i = 1; i <= 150; i++) {
		snprintf(text, sizeof text, "{\"type\":\"send_message\","
		    "\"roomName\":\"general\",\"message\":\"m%d\"}", i);
		send_json(a, text);
	}
	drain(a);
	send_json(a, "{\"type\":\"history\",\"roomName\":\"general\"}");
	j = expect(a, "history");
	msgs = json_object_get(j, "messages");
	CHECK_INT(json_array_size(msgs), 50);
	CHECK_INT(json_integer_value(json_object_get(json_array_get(msgs, 0),
	    "seq")), 101);
	json_decref(j);
	send_json(a, "{\"type\":\"history\",\"roomName\":\"general\","
	    "\"before\":60,\"limit\":1000}");
	j = expect(a, "history");
	msgs = json_object_get(j, "messages");
	/* The ring keeps the newest 100: seq 51..150. */
	CHECK_INT(json_array_size(msgs), 9);
	CHECK_STR(str(json_array_get(msgs, 8), "message"), "m59");
	json_decref(j);
	client_remove(a, "disconnected");
	client_reap();
}

static void
test_rate_limits(void)
{
	struct client *a = client_create("192.0.2.9");
	json_t *j;
	int limited = 0, delivered = 0;

	cfg->messages_per_minute = 60;
	cfg->message_burst = 3;
	cfg->requests_per_minute = 0;
	send_json(a, "{\"type\":\"join_room\",\"roomName\":\"general\"}");
	drain(a);
	for (int i = 0; i < 5; i++)
		send_json(a, "{\"type\":\"send_message\",\"roomName\":"
		    "\"general\",\"message\":\"x\",\"id\":9}");
	while ((j = take(a)) != NULL) {
		if (strcmp(str(j, "type"), "new_message") == 0)
			delivered++;
		else if (strcmp(str(j, "code"), "rate_limited") == 0 &&
		    json_integer_value(json_object_get(j, "id")) == 9)
			limited++;
		json_decref(j);
	}
	CHECK_INT(delivered, 3);
	CHECK_INT(limited, 2);

	cfg->rooms_per_minute = 10;
	cfg->room_burst = 1;
	send_json(a, "{\"type\":\"create_room\",\"roomName\":\"q1\"}");
	json_decref(expect(a, "created_room"));
	drain(a);
	send_json(a, "{\"type\":\"create_room\",\"roomName\":\"q2\"}");
	expect_error(a, "rate_limited");
	CHECK(room_find("q2", 2) == NULL);

	cfg->max_rooms = room_count();
	cfg->rooms_per_minute = 0;
	send_json(a, "{\"type\":\"create_room\",\"roomName\":\"q3\"}");
	expect_error(a, "forbidden");
	cfg->max_rooms = 10000;
	client_remove(a, "disconnected");
	client_reap();
}

int
main(void)
{
	char *cause = NULL;

	config_defaults(&test_config);
	cfg = &test_config;
	log_level = LOG_LVL_ERROR;
	CHECK(loop_init(&cause) == 0);
	room_create("general", 7, 0);

	CHECK(proto_name_valid("alice", 5, 32));
	CHECK(!proto_name_valid(" alice", 6, 32));
	CHECK(!proto_name_valid("a\x7f", 2, 32));
	CHECK(!proto_name_valid("a\xc2\x85", 3, 32));
	CHECK(!proto_name_valid("", 0, 32));

	test_welcome();
	test_chat();
	test_envelope();
	test_history();
	test_rate_limits();

	room_free_all();
	loop_free();
	config_free(&test_config);
	return unit_done();
}
