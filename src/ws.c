/*
 * ws.c: the RFC 6455 codec, on buffers only: no sockets, no JSON. It owns
 * the upgrade request checks and Sec-WebSocket-Accept, the incremental
 * parser for client frames (which accepts input split at any byte,
 * enforces every framing rule of PROTOCOL.md before allocating anything,
 * reassembles fragmented text and validates its UTF-8 as it arrives), the
 * server frame header and the close-code rules.
 */

#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <nettle/base64.h>
#include <nettle/sha1.h>

#include "parley.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_KEY_LEN 24	    /* base64 of 16 bytes, with padding */
#define WS_MSG_MIN_ALLOC 256 /* first buffer for a message of unknown size */

/* Parser states. A dead parser keeps its close code in the state, so
 * every later feed answers the same. */
enum {
	WS_STATE_HEADER,
	WS_STATE_PAYLOAD,
	WS_STATE_STOPPED, /* the callback asked to stop */
	WS_STATE_DEAD_PROTOCOL,
	WS_STATE_DEAD_UNSUPPORTED,
	WS_STATE_DEAD_INVALID_DATA,
	WS_STATE_DEAD_TOO_BIG,
};

/* Case-insensitive ASCII comparison of s[0..n) with the lower-case
 * token t, which is n bytes long. */
static bool
ws_token_equal(const char *s, const char *t, size_t n)
{
	size_t i;
	char c;

	for (i = 0; i < n; i++) {
		c = s[i];
		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		if (c != t[i])
			return false;
	}
	return true;
}

/* True when a comma-separated header value holds token (lower case),
 * ignoring case and the optional white space around each element. */
static bool
ws_token_list_has(const char *list, const char *token)
{
	size_t tlen = strlen(token);
	const char *s = list, *start, *end;

	while (*s != '\0') {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		start = s;
		while (*s != '\0' && *s != ',')
			s++;
		end = s;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if ((size_t)(end - start) == tlen &&
		    ws_token_equal(start, token, tlen))
			return true;
	}
	return false;
}

/* Skips the optional white space (SP, HTAB) around a header value; see
 * parley.h. */
const char *
ws_header_trim(const char *value, size_t *len)
{
	size_t n;

	while (*value == ' ' || *value == '\t')
		value++;
	n = strlen(value);
	while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t'))
		n--;
	*len = n;
	return value;
}

/* True when the trimmed header value is exactly word. */
static bool
ws_header_is(const char *value, const char *word)
{
	size_t n;
	const char *v = ws_header_trim(value, &n);

	return n == strlen(word) && memcmp(v, word, n) == 0;
}

/* A key must be the base64 of exactly 16 bytes (key is already trimmed
 * and WS_KEY_LEN long). Nettle's decoder skips white space, so anything
 * outside the alphabet is refused first. */
static bool
ws_key_valid(const char *key)
{
	struct base64_decode_ctx ctx;
	uint8_t out[BASE64_DECODE_LENGTH(WS_KEY_LEN)];
	size_t i, outlen = sizeof out;
	char c;

	for (i = 0; i < WS_KEY_LEN; i++) {
		c = key[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			(c >= '0' && c <= '9') || c == '+' || c == '/' ||
			c == '='))
			return false;
	}
	base64_decode_init(&ctx);
	if (!base64_decode_update(&ctx, &outlen, out, WS_KEY_LEN, key))
		return false;
	if (!base64_decode_final(&ctx))
		return false;
	return outlen == 16;
}

/* Checks an upgrade request; see parley.h. The checks run in the order
 * of RFC 6455 section 4.2.1, except that the version comes before the
 * key: a client of another version gets 426 (and so learns which version
 * to use) whatever its key looks like. */
int
ws_handshake_check(const char *method, const char *upgrade,
    const char *connection, const char *key, const char *version,
    char *accept, const char **cause)
{
	char trimmed[WS_KEY_LEN + 1];
	size_t keylen = 0;

	if (method == NULL || strcmp(method, "GET") != 0) {
		*cause = "method not allowed";
		return 405;
	}
	if (upgrade == NULL || !ws_token_list_has(upgrade, "websocket")) {
		*cause = "Upgrade is not websocket";
		return 400;
	}
	if (connection == NULL || !ws_token_list_has(connection, "upgrade")) {
		*cause = "Connection does not include upgrade";
		return 400;
	}
	if (version == NULL || !ws_header_is(version, "13")) {
		*cause = "unsupported WebSocket version";
		return 426;
	}
	/* Header values are compared without their optional white space
	 * (RFC 9110 section 5.5), whatever the HTTP layer left of it. */
	if (key != NULL)
		key = ws_header_trim(key, &keylen);
	if (key == NULL || keylen != WS_KEY_LEN) {
		*cause = "invalid Sec-WebSocket-Key";
		return 400;
	}
	memcpy(trimmed, key, WS_KEY_LEN);
	trimmed[WS_KEY_LEN] = '\0';
	if (!ws_key_valid(trimmed)) {
		*cause = "invalid Sec-WebSocket-Key";
		return 400;
	}
	ws_accept_key(trimmed, accept);
	*cause = NULL;
	return 0;
}

/* Computes Sec-WebSocket-Accept: base64(SHA-1(key GUID)). */
void
ws_accept_key(const char *key, char *accept)
{
	struct sha1_ctx ctx;
	uint8_t digest[SHA1_DIGEST_SIZE];

	sha1_init(&ctx);
	sha1_update(&ctx, strlen(key), (const uint8_t *)key);
	sha1_update(&ctx, sizeof WS_GUID - 1, (const uint8_t *)WS_GUID);
	sha1_digest(&ctx, sizeof digest, digest);
	base64_encode_raw(accept, sizeof digest, digest);
	accept[WS_ACCEPT_LEN] = '\0';
}

/* True for the codes an endpoint may put in a close frame: the defined
 * ones (not 1004, 1005, 1006, 1015, which are reserved or must never be
 * sent), and those for libraries and applications. */
bool
ws_close_code_valid(int code)
{
	if (code >= 1000 && code <= 1003)
		return true;
	if (code >= 1007 && code <= 1014)
		return true;
	return code >= 3000 && code <= 4999;
}

/* Writes a server frame header; see parley.h. */
size_t
ws_frame_header(uint8_t *out, int opcode, size_t len)
{
	uint64_t l = len;
	int i;

	out[0] = 0x80 | (opcode & 0x0f);
	if (len < 126) {
		out[1] = len;
		return 2;
	}
	if (len <= 0xffff) {
		out[1] = 126;
		out[2] = len >> 8;
		out[3] = len & 0xff;
		return 4;
	}
	out[1] = 127;
	for (i = 9; i >= 2; i--) {
		out[i] = l & 0xff;
		l >>= 8;
	}
	return 10;
}

void
ws_parser_init(struct ws_parser *p, size_t max_message)
{
	memset(p, 0, sizeof *p);
	PARLEY_ASSERT(max_message <= UINT32_MAX);
	p->max_message = (uint32_t)max_message;
	p->state = WS_STATE_HEADER;
}

/* The in-flight state, allocated when a frame begins: an idle parser
 * holds none (most connections are idle most of the time). */
static struct ws_frame *
ws_frame_begin(struct ws_parser *p)
{
	struct ws_frame *f = xmalloc(sizeof *f);

	f->msg = NULL;
	f->msg_len = f->msg_cap = 0;
	f->utf8 = UTF8_ACCEPT;
	f->hdr_len = 0;
	f->msg_opcode = 0;
	p->f = f;
	return f;
}

static void
ws_parser_drop_message(struct ws_parser *p)
{
	if (p->f == NULL)
		return;
	free(p->f->msg);
	p->f->msg = NULL;
	p->f->msg_len = 0;
	p->f->msg_cap = 0;
}

static void
ws_frame_end(struct ws_parser *p)
{
	ws_parser_drop_message(p);
	free(p->f);
	p->f = NULL;
}

static bool
ws_parser_dead(const struct ws_parser *p)
{
	return p->state >= WS_STATE_STOPPED;
}

/* Releases what the parser holds and stops it (safe from inside a
 * callback: the feed then stops); it may be initialised again. */
void
ws_parser_free(struct ws_parser *p)
{
	ws_frame_end(p);
	if (!ws_parser_dead(p))
		p->state = WS_STATE_STOPPED;
}

/* The value every feed of a dead parser returns. */
static int
ws_parser_dead_code(const struct ws_parser *p)
{
	switch (p->state) {
	case WS_STATE_DEAD_PROTOCOL:
		return WS_CLOSE_PROTOCOL;
	case WS_STATE_DEAD_UNSUPPORTED:
		return WS_CLOSE_UNSUPPORTED;
	case WS_STATE_DEAD_INVALID_DATA:
		return WS_CLOSE_INVALID_DATA;
	case WS_STATE_DEAD_TOO_BIG:
		return WS_CLOSE_TOO_BIG;
	default:
		return -1;
	}
}

/* Kills the parser with code (a close code, or -1 for a stop asked by
 * the callback) and returns it; nothing is kept for a dead connection. */
static int
ws_parser_die(struct ws_parser *p, int code)
{
	ws_frame_end(p);
	switch (code) {
	case WS_CLOSE_PROTOCOL:
		p->state = WS_STATE_DEAD_PROTOCOL;
		break;
	case WS_CLOSE_UNSUPPORTED:
		p->state = WS_STATE_DEAD_UNSUPPORTED;
		break;
	case WS_CLOSE_INVALID_DATA:
		p->state = WS_STATE_DEAD_INVALID_DATA;
		break;
	case WS_CLOSE_TOO_BIG:
		p->state = WS_STATE_DEAD_TOO_BIG;
		break;
	default:
		p->state = WS_STATE_STOPPED;
		code = -1;
		break;
	}
	return code;
}

bool
ws_parser_busy(const struct ws_parser *p)
{
	const struct ws_frame *f = p->f;

	if (ws_parser_dead(p) || f == NULL)
		return false;
	return f->hdr_len != 0 || p->state == WS_STATE_PAYLOAD ||
	    f->msg_opcode != 0;
}

/* Bytes of extended payload length announced by the second header
 * byte. */
static size_t
ws_ext_len(uint8_t b1)
{
	switch (b1 & 0x7f) {
	case 126:
		return 2;
	case 127:
		return 8;
	default:
		return 0;
	}
}

/* Checks the first two header bytes: everything but the length. Returns
 * 0 or a close code. */
static int
ws_check_start(struct ws_frame *f)
{
	uint8_t b0 = f->hdr[0], b1 = f->hdr[1];
	uint8_t op = b0 & 0x0f, len7 = b1 & 0x7f;

	if (b0 & 0x70)
		return WS_CLOSE_PROTOCOL; /* RSV1-3: no extension agreed */
	switch (op) {
	case WS_OP_CONT:
	case WS_OP_TEXT:
	case WS_OP_BINARY:
	case WS_OP_CLOSE:
	case WS_OP_PING:
	case WS_OP_PONG:
		break;
	default:
		return WS_CLOSE_PROTOCOL;
	}
	if (!(b1 & 0x80))
		return WS_CLOSE_PROTOCOL; /* clients must mask */
	if (op & 0x8) {
		/* A 16- or 64-bit length form is over 125 by itself. */
		if (!(b0 & 0x80) || len7 > 125)
			return WS_CLOSE_PROTOCOL;
		if (op == WS_OP_CLOSE && len7 == 1)
			return WS_CLOSE_PROTOCOL; /* half a close code */
	} else if (op == WS_OP_CONT) {
		if (f->msg_opcode == 0)
			return WS_CLOSE_PROTOCOL;
	} else if (f->msg_opcode != 0)
		return WS_CLOSE_PROTOCOL;
	f->opcode = op;
	f->fin = (b0 & 0x80) != 0;
	return 0;
}

/* Checks the payload length once all its bytes are in, then the message
 * type: framing errors win over 1009, and 1009 over 1003. */
static int
ws_check_length(const struct ws_parser *p, struct ws_frame *f)
{
	size_t ext = ws_ext_len(f->hdr[1]), i;
	uint64_t len;

	if (ext == 0)
		len = f->hdr[1] & 0x7f;
	else {
		len = 0;
		for (i = 0; i < ext; i++)
			len = len << 8 | f->hdr[2 + i];
		if (len >> 63)
			return WS_CLOSE_PROTOCOL;
	}
	f->frame_len = len;
	if (f->opcode & 0x8)
		return 0;
	/* msg_len never exceeds max_message, so this cannot wrap. */
	if (len > p->max_message - f->msg_len)
		return WS_CLOSE_TOO_BIG;
	if (f->opcode == WS_OP_BINARY)
		return WS_CLOSE_UNSUPPORTED;
	return 0;
}

/* The header is complete: takes the mask and sets up for the payload. */
static void
ws_begin_payload(struct ws_parser *p, struct ws_frame *f, size_t hdr_size)
{
	memcpy(f->mask, f->hdr + hdr_size - 4, 4);
	f->mask_pos = 0;
	f->frame_done = 0;
	f->hdr_len = 0;
	p->state = WS_STATE_PAYLOAD;
	if (f->opcode & 0x8)
		f->ctl_len = 0;
	else if (f->opcode != WS_OP_CONT) {
		f->msg_opcode = f->opcode;
		f->msg_len = 0;
		f->utf8 = UTF8_ACCEPT;
	}
}

/* Makes room for n more message bytes. The header check guarantees
 * msg_len + n <= max_message. Memory follows the bytes that actually
 * arrived, doubling, so a peer announcing a large frame and sending it
 * slowly costs little; it never passes max_message, nor the message's
 * size when the final frame tells it. */
static void
ws_reserve(const struct ws_parser *p, struct ws_frame *f, size_t n)
{
	size_t need = f->msg_len + n, cap, limit;

	if (need <= f->msg_cap)
		return;
	limit = p->max_message;
	if (f->fin)
		limit = f->msg_len + (size_t)(f->frame_len - f->frame_done);
	cap = f->msg_cap > WS_MSG_MIN_ALLOC / 2 ? f->msg_cap * 2 :
						 WS_MSG_MIN_ALLOC;
	if (cap > limit)
		cap = limit;
	if (cap < need)
		cap = need;
	f->msg = xrealloc(f->msg, cap);
	f->msg_cap = cap;
}

/* Copies n payload bytes to dst, unmasking them eight bytes at a time
 * with the mask rotated to the current position. */
static void
ws_unmask(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t *mask,
    unsigned pos)
{
	uint8_t m8[8];
	uint64_t m, w;
	size_t i;

	for (i = 0; i < 8; i++)
		m8[i] = mask[(pos + i) & 3];
	memcpy(&m, m8, sizeof m);
	for (i = 0; i + 32 <= n; i += 32) {
		memcpy(&w, src + i, 8);
		w ^= m;
		memcpy(dst + i, &w, 8);
		memcpy(&w, src + i + 8, 8);
		w ^= m;
		memcpy(dst + i + 8, &w, 8);
		memcpy(&w, src + i + 16, 8);
		w ^= m;
		memcpy(dst + i + 16, &w, 8);
		memcpy(&w, src + i + 24, 8);
		w ^= m;
		memcpy(dst + i + 24, &w, 8);
	}
	for (; i + 8 <= n; i += 8) {
		memcpy(&w, src + i, 8);
		w ^= m;
		memcpy(dst + i, &w, 8);
	}
	for (; i < n; i++)
		dst[i] = src[i] ^ m8[i & 7];
}

/* A complete control frame: checks a close frame and hands it on. */
static int
ws_end_control(struct ws_parser *p, struct ws_frame *f, ws_message_cb cb,
    void *arg)
{
	int code;

	p->state = WS_STATE_HEADER;
	if (f->opcode != WS_OP_CLOSE)
		return cb(arg, f->opcode, f->ctl, f->ctl_len, 0) ? -1 : 0;
	if (f->ctl_len == 0)
		return cb(arg, WS_OP_CLOSE, f->ctl, 0, WS_CLOSE_NO_STATUS) ? -1 :
									      0;
	code = f->ctl[0] << 8 | f->ctl[1];
	if (!ws_close_code_valid(code))
		return WS_CLOSE_PROTOCOL;
	if (!utf8_valid((const char *)f->ctl + 2, f->ctl_len - 2))
		return WS_CLOSE_INVALID_DATA;
	return cb(arg, WS_OP_CLOSE, f->ctl + 2, f->ctl_len - 2, code) ? -1 :
									   0;
}

/* A complete data frame: delivers the message after its final frame and
 * frees the buffer, so an idle connection holds none. The callback may
 * free the parser (p->f is then NULL). */
static int
ws_end_data(struct ws_parser *p, struct ws_frame *f, ws_message_cb cb,
    void *arg)
{
	static const uint8_t empty[1];
	const uint8_t *data;
	int op = f->msg_opcode, r;

	p->state = WS_STATE_HEADER;
	if (!f->fin)
		return 0;
	if (op == WS_OP_TEXT && f->utf8 != UTF8_ACCEPT)
		return WS_CLOSE_INVALID_DATA; /* truncated last character */
	data = f->msg != NULL ? f->msg : empty;
	r = cb(arg, op, data, f->msg_len, 0);
	if (p->f != NULL) {
		ws_parser_drop_message(p);
		f->msg_opcode = 0;
		f->utf8 = UTF8_ACCEPT;
	}
	return r ? -1 : 0;
}

static int
ws_end_frame(struct ws_parser *p, struct ws_frame *f, ws_message_cb cb,
    void *arg)
{
	if (f->opcode & 0x8)
		return ws_end_control(p, f, cb, arg);
	return ws_end_data(p, f, cb, arg);
}

/* Takes header bytes up to the next point where something can be
 * checked; returns the bytes used, and a close code, -1 or 0 in *r. */
static size_t
ws_feed_header(struct ws_parser *p, struct ws_frame *f, const uint8_t *data,
    size_t len, ws_message_cb cb, void *arg, int *r)
{
	size_t ext = 0, target, n;

	if (f->hdr_len < 2)
		target = 2;
	else {
		ext = ws_ext_len(f->hdr[1]);
		target = f->hdr_len < 2 + ext ? 2 + ext : 6 + ext;
	}
	n = target - f->hdr_len;
	if (n > len)
		n = len;
	memcpy(f->hdr + f->hdr_len, data, n);
	f->hdr_len += n;
	*r = 0;
	if (f->hdr_len != target)
		return n;

	if (target == 2) {
		if ((*r = ws_check_start(f)) != 0)
			return n;
		if (ws_ext_len(f->hdr[1]) == 0)
			*r = ws_check_length(p, f);
	} else if (target == 2 + ext)
		*r = ws_check_length(p, f);
	else {
		ws_begin_payload(p, f, target);
		if (f->frame_len == 0)
			*r = ws_end_frame(p, f, cb, arg);
	}
	return n;
}

/* Takes payload bytes of the current frame. */
static size_t
ws_feed_payload(struct ws_parser *p, struct ws_frame *f, const uint8_t *data,
    size_t len, ws_message_cb cb, void *arg, int *r)
{
	uint64_t left = f->frame_len - f->frame_done;
	size_t n = len;
	uint8_t *dst;

	if (n > left)
		n = left;
	*r = 0;
	if (f->opcode & 0x8) {
		dst = f->ctl + f->ctl_len;
		f->ctl_len += n;
	} else {
		ws_reserve(p, f, n);
		dst = f->msg + f->msg_len;
		f->msg_len += n;
	}
	ws_unmask(dst, data, n, f->mask, f->mask_pos);
	f->mask_pos = (f->mask_pos + n) & 3;
	f->frame_done += n;
	if (!(f->opcode & 0x8) && f->msg_opcode == WS_OP_TEXT) {
		/* Fail fast, without waiting for the end of the message. */
		f->utf8 = utf8_feed(f->utf8, dst, n);
		if (f->utf8 == UTF8_REJECT) {
			*r = WS_CLOSE_INVALID_DATA;
			return n;
		}
	}
	if (f->frame_done == f->frame_len)
		*r = ws_end_frame(p, f, cb, arg);
	return n;
}

/* Feeds received bytes; see parley.h. The in-flight state is taken when
 * bytes arrive and given back when they leave the parser idle. */
int
ws_parser_feed(struct ws_parser *p, const uint8_t *data, size_t len,
    ws_message_cb cb, void *arg)
{
	size_t n;
	int r;

	if (ws_parser_dead(p))
		return ws_parser_dead_code(p);
	while (len > 0) {
		struct ws_frame *f = p->f ? p->f : ws_frame_begin(p);
		if (p->state == WS_STATE_HEADER)
			n = ws_feed_header(p, f, data, len, cb, arg, &r);
		else
			n = ws_feed_payload(p, f, data, len, cb, arg, &r);
		if (r != 0)
			return ws_parser_die(p, r);
		if (ws_parser_dead(p))
			return ws_parser_dead_code(p); /* freed by cb */
		data += n;
		len -= n;
	}
	if (p->f != NULL && !ws_parser_busy(p))
		ws_frame_end(p);
	return 0;
}
