/* SPDX-License-Identifier: MIT */
/* cbor_fuzz.c - libFuzzer target: CBOR decoder bounds and writer round trip */

/*
 * Each input is walked item by item with cbor_skip(), probed with the map
 * lookups, and its first item is decoded head by head (explicit stack, as
 * in cbor_skip) and re-encoded with the writer. The re-encoding must decode
 * to the same heads; when it has the same length as the input it must be
 * byte-identical, since only non-shortest heads can make the input longer.
 * The writer is also run into too-small buffers to exercise err.
 */

#include <stdlib.h>
#include <string.h>

#include "proto/cbor.h"

#define MAX_HEADS	4096

static struct cbor_item heads[MAX_HEADS];
static uint8_t out[8192 + 64];

/**
 * decode_one() - decode one complete item into @heads
 * @r: cursor
 * @n: number of heads decoded (out)
 *
 * Return: 0, -1 malformed, -2 too many heads for this harness.
 */
static int decode_one(struct cbor_reader *r, size_t *n)
{
	uint64_t todo[CBOR_MAX_DEPTH + 1];
	unsigned int depth = 0;
	struct cbor_item *it;

	*n = 0;
	todo[0] = 1;
	for (;;) {
		if (todo[depth] == 0) {
			if (depth == 0)
				return 0;
			depth--;
			continue;
		}
		todo[depth]--;
		if (*n == MAX_HEADS)
			return -2;
		it = &heads[(*n)++];
		if (cbor_read(r, it) < 0)
			return -1;
		if ((it->type != CBOR_ARRAY && it->type != CBOR_MAP) || !it->u)
			continue;
		if (depth == CBOR_MAX_DEPTH)
			return -1;
		todo[++depth] = it->type == CBOR_MAP ? it->u * 2 : it->u;
	}
}

/**
 * encode() - write the decoded heads back out
 * @w: writer
 * @n: number of heads
 *
 * Return: false when an item cannot be expressed with the writer API.
 */
static bool encode(struct cbor_writer *w, size_t n)
{
	const struct cbor_item *it;
	size_t i;

	for (i = 0; i < n; i++) {
		it = &heads[i];
		switch (it->type) {
		case CBOR_UINT: cbor_put_uint(w, it->u); break;
		case CBOR_NINT:
			if (it->u > INT64_MAX)
				return false;
			cbor_put_int(w, -1 - (int64_t)it->u);
			break;
		case CBOR_BYTES: cbor_put_bytes(w, it->str, it->len); break;
		case CBOR_TEXT: cbor_put_text(w, (const char *)it->str, it->len); break;
		case CBOR_ARRAY: cbor_put_array(w, it->u); break;
		case CBOR_MAP: cbor_put_map(w, it->u); break;
		case CBOR_BOOL: cbor_put_bool(w, it->u != 0); break;
		case CBOR_NULL: cbor_put_null(w); break;
		}
	}
	return true;
}

/**
 * same_heads() - compare a re-decoded item with @heads
 * @p: re-encoded bytes
 * @len: their length
 * @n: number of heads expected
 */
static void same_heads(const uint8_t *p, size_t len, size_t n)
{
	struct cbor_reader r;
	struct cbor_item it;
	size_t i;

	cbor_reader_init(&r, p, len);
	for (i = 0; i < n; i++) {
		if (cbor_read(&r, &it) < 0 || it.type != heads[i].type ||
		    it.u != heads[i].u || it.len != heads[i].len ||
		    (it.len && memcmp(it.str, heads[i].str, it.len) != 0))
			abort();
	}
	if (r.p != r.end)
		abort();
}

/**
 * round_trip() - decode the first item, re-encode, compare
 * @data: input
 * @size: input length
 */
static void round_trip(const uint8_t *data, size_t size)
{
	struct cbor_reader r, s;
	struct cbor_writer w;
	size_t n, used, cut;

	cbor_reader_init(&r, data, size);
	s = r;
	if (decode_one(&r, &n) != 0 || cbor_skip(&s) != 0 || s.p != r.p)
		return;
	used = (size_t)(r.p - data);
	cbor_writer_init(&w, out, sizeof(out));
	if (!encode(&w, n) || w.err)
		return;
	if (w.len > used)
		abort();		/* shortest form can only be shorter */
	same_heads(out, w.len, n);
	if (w.len == used && memcmp(out, data, used) != 0)
		abort();
	cut = w.len / 2;		/* the same into a short buffer */
	cbor_writer_init(&w, out, cut);
	encode(&w, n);
	if (!w.err || w.len > cut)
		abort();
}

/**
 * LLVMFuzzerTestOneInput() - libFuzzer entry
 * @data: input
 * @size: input length
 *
 * Return: 0.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *keys[] = { "argv", "env", "", "a", "timeout_ms" };
	struct cbor_reader r, v;
	struct cbor_item it;
	const uint8_t *str;
	size_t i, slen;
	uint64_t u;
	bool b;

	cbor_reader_init(&r, data, size);
	while (r.p < r.end && cbor_skip(&r) == 0)
		if (r.p > r.end)
			abort();
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (cbor_map_find(data, size, keys[i], &v) == 1) {
			if (v.p > v.end || v.end != data + size)
				abort();
			if (cbor_read(&v, &it) == 0 && it.len && !it.str)
				abort();
		}
		cbor_map_uint(data, size, keys[i], &u);
		cbor_map_bool(data, size, keys[i], &b);
		cbor_map_text(data, size, keys[i], &str, &slen);
	}
	round_trip(data, size);
	return 0;
}
