/* SPDX-License-Identifier: MIT */
/* clienthello.c - find the SNI in a TLS ClientHello, without trusting it
 *
 * Only the first record is looked at, and it must hold the whole
 * ClientHello (every real client sends it in one record; a hello split
 * across records is refused rather than reassembled). Every length field is
 * checked against what encloses it before it is used, through a cursor that
 * fails once and stays failed.
 */

#include <string.h>

#include "tls/clienthello.h"
#include "util/ascii.h"

#define TLS_HANDSHAKE		22
#define HS_CLIENT_HELLO		1
#define EXT_SERVER_NAME		0
#define SNI_HOST_NAME		0
#define TLS_RECORD_MAX		(16384 + 2048)

struct cursor {
	const uint8_t *p;
	size_t left;
	int bad;
};

static uint32_t take(struct cursor *c, size_t n)
{
	uint32_t v = 0;

	if (c->bad || n > c->left) {
		c->bad = 1;
		return 0;
	}
	while (n--) {
		v = v << 8 | *c->p++;
		c->left--;
	}
	return v;
}

static void skip(struct cursor *c, size_t n)
{
	if (c->bad || n > c->left) {
		c->bad = 1;
		return;
	}
	c->p += n;
	c->left -= n;
}

/* A sub-cursor over the next n bytes, which the parent then skips. */
static struct cursor sub(struct cursor *c, size_t n)
{
	struct cursor s = { c->p, n, c->bad || n > c->left };

	skip(c, n);
	return s;
}

/**
 * sni_from_ext() - read a server_name extension body into @ch->sni
 * @c:		cursor over the extension data
 * @ch:		result
 *
 * Return: 0, or -1 when malformed
 */
static int sni_from_ext(struct cursor *c, struct clienthello *ch)
{
	struct cursor list = sub(c, take(c, 2));

	while (!list.bad && list.left) {
		uint32_t type = take(&list, 1);
		struct cursor name = sub(&list, take(&list, 2));
		size_t i;

		if (list.bad || name.bad)
			return -1;
		if (type != SNI_HOST_NAME)
			continue;
		if (name.left == 0 || name.left > CLIENTHELLO_MAX_NAME)
			return -1;
		for (i = 0; i < name.left; i++) {
			uint8_t b = name.p[i];

			if (b <= 0x20 || b >= 0x7f)	/* no controls, spaces, NULs */
				return -1;
			ch->sni[i] = (char)ascii_lower(b);
		}
		ch->sni[name.left] = '\0';
		return 0;
	}
	return list.bad ? -1 : 0;
}

/**
 * clienthello_parse() - classify and parse the start of a TLS stream
 * @p:		bytes received so far
 * @len:	their number
 * @ch:		result (sni is "" when the client sent none)
 *
 * Return: 1 parsed, 0 need more bytes, -1 not a (well-formed) ClientHello
 */
int clienthello_parse(const uint8_t *p, size_t len, struct clienthello *ch)
{
	struct cursor rec = { p, len, 0 }, hs, body, exts;
	uint32_t rlen;

	memset(ch, 0, sizeof(*ch));
	if (len >= 1 && p[0] != TLS_HANDSHAKE)
		return -1;
	if (len >= 2 && p[1] != 3)
		return -1;
	if (len < 5)
		return 0;
	skip(&rec, 3);
	rlen = take(&rec, 2);
	if (rlen < 4 || rlen > TLS_RECORD_MAX)
		return -1;
	if (rec.left < rlen)
		return 0;
	ch->record_len = 5 + rlen;
	hs = sub(&rec, rlen);
	if (take(&hs, 1) != HS_CLIENT_HELLO)
		return -1;
	body = sub(&hs, take(&hs, 3));
	skip(&body, 2 + 32);			/* client_version, random */
	skip(&body, take(&body, 1));		/* session_id */
	skip(&body, take(&body, 2));		/* cipher_suites */
	skip(&body, take(&body, 1));		/* compression_methods */
	if (body.bad || hs.bad)
		return -1;
	if (body.left == 0)
		return 1;			/* no extensions, no SNI */
	exts = sub(&body, take(&body, 2));
	while (!exts.bad && exts.left) {
		uint32_t type = take(&exts, 2);
		struct cursor ext = sub(&exts, take(&exts, 2));

		if (exts.bad)
			return -1;
		if (type == EXT_SERVER_NAME && sni_from_ext(&ext, ch) < 0)
			return -1;
	}
	return exts.bad || body.bad ? -1 : 1;
}
