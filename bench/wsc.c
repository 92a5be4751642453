/*
 * wsc.c: the client side of RFC 6455 on buffers, with no I/O and no JSON:
 * the upgrade request and the check of its answer, decoding the server's
 * (unmasked) frames and encoding our (masked) ones. Written for speed on
 * the receive path, which runs once per delivery: a frame is decoded in
 * place, never copied.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "bench.h"

/*
 * Every connection offers the key of RFC 6455's own example, so the
 * expected Sec-WebSocket-Accept is a constant and the bench needs no
 * SHA-1. The RFC asks for a fresh random key per connection to defeat
 * caching intermediaries; there are none between a bench and its server,
 * and the server cannot tell.
 */
#define WSC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WSC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

size_t
wsc_request(char *out, size_t size, const char *host, unsigned port,
    const char *path)
{
	int n;

	n = snprintf(out, size,
	    "GET %s HTTP/1.1\r\n"
	    "Host: %s:%u\r\n"
	    "Upgrade: websocket\r\n"
	    "Connection: Upgrade\r\n"
	    "Sec-WebSocket-Key: " WSC_KEY "\r\n"
	    "Sec-WebSocket-Version: 13\r\n"
	    "\r\n", path, host, port);
	if (n < 0 || (size_t)n >= size)
		return 0;
	return (size_t)n;
}

/* Finds header name (with its colon, lower case) in the head; returns its
 * value with leading blanks skipped and sets *vlen, or NULL. */
static const char *
wsc_header(const char *head, size_t len, const char *name, size_t *vlen)
{
	size_t nlen = strlen(name);
	const char *p = head, *end = head + len, *eol, *v;

	while (p < end) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			eol = end;
		if ((size_t)(eol - p) > nlen && strncasecmp(p, name, nlen) == 0) {
			v = p + nlen;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			*vlen = (size_t)(eol - v);
			while (*vlen > 0 && (v[*vlen - 1] == '\r' ||
			    v[*vlen - 1] == ' ' || v[*vlen - 1] == '\t'))
				(*vlen)--;
			return v;
		}
		p = eol + 1;
	}
	return NULL;
}

ssize_t
wsc_response(const char *buf, size_t len, const char **cause)
{
	const char *end, *v;
	size_t hlen, vlen;

	end = memmem(buf, len, "\r\n\r\n", 4);
	if (end == NULL) {
		if (len > 8192) {
			*cause = "upgrade response too long";
			return -1;
		}
		return 0;
	}
	hlen = (size_t)(end - buf) + 4;
	if (hlen < 12 || memcmp(buf, "HTTP/1.1 ", 9) != 0) {
		*cause = "not an HTTP/1.1 response";
		return -1;
	}
	if (memcmp(buf + 9, "101", 3) != 0) {
		static char why[80];
		const char *eol = memchr(buf, '\r', hlen);

		/* Name the status line: a 503 is the connection limit. */
		snprintf(why, sizeof why, "upgrade refused: %.*s",
		    (int)(eol - buf), buf);
		*cause = why;
		return -1;
	}
	v = wsc_header(buf, hlen, "sec-websocket-accept:", &vlen);
	if (v == NULL || vlen != strlen(WSC_ACCEPT) ||
	    memcmp(v, WSC_ACCEPT, vlen) != 0) {
		*cause = "missing or wrong Sec-WebSocket-Accept";
		return -1;
	}
	return (ssize_t)hlen;
}

ssize_t
wsc_parse(const uint8_t *buf, size_t len, struct wsc_frame *f, size_t *need)
{
	uint64_t plen;
	size_t hlen = 2;

	*need = 0;
	if (len < 2)
		return 0;
	/* A server must not mask, and no extension was negotiated. */
	if ((buf[1] & 0x80) || (buf[0] & 0x70))
		return -1;
	plen = buf[1] & 0x7f;
	if (plen == 126) {
		hlen = 4;
		if (len < hlen)
			return 0;
		plen = (uint64_t)buf[2] << 8 | buf[3];
	} else if (plen == 127) {
		hlen = 10;
		if (len < hlen)
			return 0;
		plen = 0;
		for (int i = 2; i < 10; i++)
			plen = plen << 8 | buf[i];
		if (plen > (1u << 30))
			return -1;
	}
	if (len - hlen < plen) {
		*need = hlen + (size_t)plen;
		return 0;
	}
	f->opcode = buf[0] & 0x0f;
	f->fin = (buf[0] & 0x80) != 0;
	f->payload = buf + hlen;
	f->len = (size_t)plen;
	return (ssize_t)(hlen + plen);
}

size_t
wsc_frame(uint8_t *out, int opcode, const void *payload, size_t len,
    uint32_t mask)
{
	const uint8_t *src = payload;
	uint8_t *dst;
	uint64_t m8, w;
	size_t hlen, i;
	uint8_t m[4];

	out[0] = 0x80 | (uint8_t)opcode;
	if (len < 126) {
		out[1] = 0x80 | (uint8_t)len;
		hlen = 2;
	} else if (len <= 0xffff) {
		out[1] = 0x80 | 126;
		out[2] = (uint8_t)(len >> 8);
		out[3] = (uint8_t)len;
		hlen = 4;
	} else {
		out[1] = 0x80 | 127;
		for (i = 0; i < 8; i++)
			out[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
		hlen = 10;
	}
	memcpy(out + hlen, &mask, 4);
	memcpy(m, &mask, 4);
	hlen += 4;
	dst = out + hlen;

	/* Mask eight bytes at a time: the key repeats every four bytes, so
	 * two copies of it make a word that lines up with any offset that is
	 * a multiple of eight. memcpy keeps the loads legal when unaligned. */
	memcpy(&m8, m, 4);
	memcpy((uint8_t *)&m8 + 4, m, 4);
	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&w, src + i, 8);
		w ^= m8;
		memcpy(dst + i, &w, 8);
	}
	for (; i < len; i++)
		dst[i] = src[i] ^ m[i & 3];
	return hlen + len;
}
