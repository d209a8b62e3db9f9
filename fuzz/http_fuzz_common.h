/* SPDX-License-Identifier: MIT */
/* http_fuzz_common.h - helpers shared by the HTTP fuzz targets: split sizes,
 * slice bounds, and chunked decode/re-encode checks */
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

#endif /* GONDOLIN_FUZZ_HTTP_COMMON_H */
