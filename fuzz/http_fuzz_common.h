/* SPDX-License-Identifier: MIT */
/* http_fuzz_common.h - helpers shared by the HTTP fuzz targets: split sizes,
 * slice bounds, and chunked decode/re-encode checks against a reference
 * decoder */
#ifndef GONDOLIN_FUZZ_HTTP_COMMON_H
#define GONDOLIN_FUZZ_HTTP_COMMON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/chunked.h"
#include "http/http1.h"

/**
 * struct rng - xorshift state for split sizes
 * @s:	state, never 0
 */
struct rng {
	uint64_t s;
};

/**
 * rng_next() - next pseudo-random value
 * @r:	state
 *
 * Return: 64 bits.
 */
static uint64_t rng_next(struct rng *r)
{
	r->s ^= r->s << 13;
	r->s ^= r->s >> 7;
	r->s ^= r->s << 17;
	return r->s;
}

/**
 * piece() - length of the next piece
 * @r:		state
 * @left:	bytes left (> 0)
 * @mode:	0 tiny pieces, 1 mixed
 *
 * Return: 1..@left.
 */
static size_t piece(struct rng *r, size_t left, int mode)
{
	size_t n = 1 + (size_t)(rng_next(r) % (mode ? 300 : 3));

	return n < left ? n : left;
}

/**
 * in_range() - a slice lies inside [base, base + len)
 * @s:		slice
 * @base:	buffer
 * @len:	length
 *
 * Return: true when inside.
 */
static int in_range(struct http1_slice s, const char *base, size_t len)
{
	if (s.len == 0)
		return 1;
	return s.p >= base && s.len <= len && (size_t)(s.p - base) <= len - s.len;
}

/**
 * decode_all() - run a decoder over @n bytes in pieces, collecting output
 * @d:		decoder (initialised)
 * @p:		input
 * @n:		length
 * @out:	room for @n bytes of output
 * @olen:	output length out
 * @used:	bytes consumed out
 * @r:		piece sizes, NULL for one piece
 *
 * Return: the last chunked_decode() result.
 */
static int decode_all(struct chunked_decoder *d, const char *p, size_t n,
		      char *out, size_t *olen, size_t *used, struct rng *r)
{
	const char *data;
	size_t pos = 0, end, u, dlen;
	int rc = 0;

	*olen = 0;
	while (rc == 0 && pos < n) {
		end = r ? pos + piece(r, n - pos, 1) : n;
		while (rc == 0 && pos < end) {
			rc = chunked_decode(d, p + pos, end - pos, &u, &data, &dlen);
			if (u > end - pos || dlen > u || (dlen && (data < p + pos || data + dlen > p + pos + u)))
				abort();
			memcpy(out + *olen, data ? data : "", dlen);
			*olen += dlen;
			pos += u;
			if (rc == 0 && u == 0)
				abort();	/* no progress */
		}
	}
	*used = pos;
	return rc;
}

/**
 * check_reencode() - encoding decoded data must decode to the same bytes
 * @data:	decoded body
 * @n:		length
 */
static void check_reencode(const char *data, size_t n)
{
	size_t cap = n + 2 * CHUNKED_HEAD_MAX + 8, len, olen, used;
	char *enc = malloc(cap), *out = malloc(n + 1);
	struct chunked_decoder d;

	if (!enc || !out)
		abort();
	len = n ? chunked_encode(enc, cap, data, n) : 0;
	len += chunked_encode(enc + len, cap - len, "", 0);
	chunked_decoder_init(&d, n);
	if (decode_all(&d, enc, len, out, &olen, &used, NULL) != 1 ||
	    olen != n || used != len || memcmp(out, data, n) != 0)
		abort();
	free(enc);
	free(out);
}

/*
 * A reference chunked decoder written as a one-pass walk over the whole
 * input, independent of the state machine: same verdict, same output.
 */

/**
 * struct walk - cursor of the reference decoder
 * @p:		input
 * @n:		length
 * @i:		position
 * @mark:	start of the current size line or of the trailer section
 */
struct walk {
	const char *p;
	size_t n, i, mark;
};

/**
 * hexv() - hex digit value
 * @c:	byte
 *
 * Return: 0..15 or -1.
 */
static int hexv(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
		return (c | 0x20) - 'a' + 10;
	return -1;
}

/**
 * at() - the byte at the cursor, subject to a per-section byte limit
 * @w:		cursor
 * @limit:	bytes allowed since w->mark
 * @c:		byte out
 *
 * Return: 1 with a byte, 0 at the end of input, -1 past the limit.
 */
static int at(const struct walk *w, size_t limit, unsigned char *c)
{
	if (w->i >= w->n)
		return 0;
	if (w->i - w->mark + 1 > limit)
		return -1;
	*c = (unsigned char)w->p[w->i];
	return 1;
}

/**
 * model_size_line() - hex digits, optional BWS ";" extension, CRLF
 * @w:		cursor at the line
 * @max:	max_chunk
 * @size:	size out
 *
 * Return: 1 done (cursor after LF), 0 end of input, -1 malformed.
 */
static int model_size_line(struct walk *w, uint64_t max, uint64_t *size)
{
	int r, digits = 0, ws = 0, ext = 0;
	unsigned char c;

	*size = 0;
	w->mark = w->i;
	for (;; w->i++) {
		if ((r = at(w, CHUNKED_MAX_LINE + 1, &c)) <= 0)
			return r;
		if (hexv((char)c) < 0 || ws || ext)
			break;
		if (++digits > CHUNKED_MAX_DIGITS)
			return -1;
		*size = *size * 16 + (uint64_t)hexv((char)c);
		if (*size > max)
			return -1;
	}
	for (;; w->i++) {
		if ((r = at(w, CHUNKED_MAX_LINE + 1, &c)) <= 0)
			return r;
		if (digits == 0 || (c == '\r' && ws && !ext))
			return -1;
		if (c == '\r')
			break;
		if (ext && !http1_is_value_char(c))
			return -1;
		if (!ext && c != ';' && c != ' ' && c != '\t')
			return -1;
		ext |= c == ';';
		ws |= !ext;
	}
	w->i++;
	if (w->i >= w->n)
		return 0;
	return w->p[w->i++] == '\n' ? 1 : -1;
}

/**
 * model_trailers() - trailer fields then CRLF
 * @w:	cursor after the last-chunk line
 *
 * Return: 1 done (cursor after the final LF), 0 end of input, -1 malformed.
 */
static int model_trailers(struct walk *w)
{
	unsigned char c;
	int r, first;

	w->mark = w->i;
	for (;;) {
		if ((r = at(w, CHUNKED_MAX_TRAILER, &c)) <= 0)
			return r;
		if (c == '\r')
			break;
		for (first = 1;; w->i++, first = 0) {
			if ((r = at(w, CHUNKED_MAX_TRAILER, &c)) <= 0)
				return r;
			if (c == ':' && !first)
				break;
			if (!http1_is_tchar(c))
				return -1;
		}
		for (w->i++;; w->i++) {
			if ((r = at(w, CHUNKED_MAX_TRAILER, &c)) <= 0)
				return r;
			if (c == '\r')
				break;
			if (!http1_is_value_char(c))
				return -1;
		}
		w->i++;
		if ((r = at(w, CHUNKED_MAX_TRAILER, &c)) <= 0)
			return r;
		if (c != '\n')
			return -1;
		w->i++;
	}
	w->i++;
	if ((r = at(w, CHUNKED_MAX_TRAILER, &c)) <= 0)
		return r;
	w->i++;
	return c == '\n' ? 1 : -1;
}

/**
 * model_chunked() - the reference decoder
 * @p:		input
 * @n:		length
 * @max:	max_chunk
 * @out:	room for @n bytes
 * @olen:	output length out
 * @used:	bytes up to the end of the body, when complete
 *
 * Return: 1 complete, 0 incomplete, -1 malformed.
 */
static int model_chunked(const char *p, size_t n, uint64_t max, char *out,
			 size_t *olen, size_t *used)
{
	struct walk w = { p, n, 0, 0 };
	uint64_t size;
	size_t take;
	int r;

	*olen = 0;
	for (;;) {
		if ((r = model_size_line(&w, max, &size)) <= 0)
			return r;
		if (size == 0)
			break;
		take = n - w.i < size ? n - w.i : (size_t)size;
		memcpy(out + *olen, p + w.i, take);
		*olen += take;
		w.i += take;
		if (take < size || w.i + 1 >= n)
			return n - w.i >= 1 && p[w.i] != '\r' ? -1 : 0;
		if (p[w.i] != '\r' || p[w.i + 1] != '\n')
			return -1;
		w.i += 2;
	}
	r = model_trailers(&w);
	*used = w.i;
	return r;
}

/**
 * check_chunked() - whole and split decoding agree
 * @p:		body bytes
 * @n:		length
 * @max:	max_chunk
 * @seed:	split seed
 */
static void check_chunked(const char *p, size_t n, uint64_t max, uint64_t seed)
{
	struct chunked_decoder a, b;
	char *oa = malloc(n + 1), *ob = malloc(n + 1);
	size_t la, lb, ua, ub;
	struct rng r = { seed | 1 };
	int ra, rb;

	if (!oa || !ob)
		abort();
	chunked_decoder_init(&a, max);
	chunked_decoder_init(&b, max);
	ra = decode_all(&a, p, n, oa, &la, &ua, NULL);
	rb = decode_all(&b, p, n, ob, &lb, &ub, &r);
	if (ra != rb || ua != ub || (ra >= 0 && (la != lb || memcmp(oa, ob, la) != 0)))
		abort();
	if (ra < 0 && (a.err == NULL || a.err != b.err))
		abort();
	if (ra == 1 && (ua < 5 || p[ua - 1] != '\n' || la > ua))
		abort();
	if (model_chunked(p, n, max, ob, &lb, &ub) != ra || (ra >= 0 && (la != lb ||
	    memcmp(oa, ob, la) != 0)) || (ra == 1 && ua != ub))
		abort();
	if (ra == 1)
		check_reencode(oa, la);
	free(oa);
	free(ob);
}

#endif /* GONDOLIN_FUZZ_HTTP_COMMON_H */
