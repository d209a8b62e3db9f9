/* SPDX-License-Identifier: MIT */
/* frame_fuzz.c - libFuzzer target: frame reassembly against a reference model */

/*
 * The input is one byte of parameters followed by a byte stream. The stream
 * is given to a frame_reader in chunks whose sizes come from the stream's
 * own bytes, alternately through feed() and through space()+commit(). A
 * trivially correct model parses the whole stream in one pass; the frames
 * (and oversized reports) the reader produces must match it exactly. Every
 * payload is also walked as CBOR.
 */

#include <stdlib.h>
#include <string.h>

#include "proto/cbor.h"
#include "proto/frame.h"

#define MAX_EVENTS	4096

struct event {
	int kind;		/* 1 frame, -1 oversized */
	uint8_t type;
	uint32_t id;
	size_t off, len;	/* payload position in the stream */
};

struct model {
	struct event ev[MAX_EVENTS];
	size_t n;
};

/**
 * be32() - read a big-endian u32
 * @p: four bytes
 *
 * Return: the value.
 */
static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/**
 * model_parse() - the reference: walk the stream in one pass
 * @m: events out
 * @s: stream
 * @n: stream length
 * @max: max_payload
 */
static void model_parse(struct model *m, const uint8_t *s, size_t n, size_t max)
{
	size_t pos = 0;
	uint32_t len;

	m->n = 0;
	while (n - pos >= FRAME_HDR_LEN && m->n < MAX_EVENTS) {
		len = be32(s + pos);
		if (len > max) {
			m->ev[m->n++] = (struct event){ .kind = -1 };
			if (n - pos - FRAME_HDR_LEN < len)
				return;
			pos += FRAME_HDR_LEN + len;
			continue;
		}
		if (n - pos - FRAME_HDR_LEN < len)
			return;
		m->ev[m->n++] = (struct event){ 1, s[pos + 4], be32(s + pos + 5),
						pos + FRAME_HDR_LEN, len };
		pos += FRAME_HDR_LEN + len;
	}
}

/**
 * walk_cbor() - decode a payload every way the agent might
 * @p: payload
 * @n: length
 */
static void walk_cbor(const uint8_t *p, size_t n)
{
	struct cbor_reader r, v;
	const uint8_t *s;
	uint64_t u;
	size_t sl;

	cbor_reader_init(&r, p, n);
	while (r.p < r.end && cbor_skip(&r) == 0)
		;
	cbor_map_find(p, n, "argv", &v);
	cbor_map_uint(p, n, "window", &u);
	cbor_map_text(p, n, "cwd", &s, &sl);
}

/**
 * check_frame() - compare one reader result with the model
 * @m: model
 * @k: index of the next expected event (advanced)
 * @rc: frame_reader_next() result
 * @f: frame (when rc == 1)
 * @s: the stream
 */
static void check_frame(const struct model *m, size_t *k, int rc,
			const struct frame *f, const uint8_t *s)
{
	const struct event *e;

	if (*k >= m->n) {
		if (*k < MAX_EVENTS)
			abort();	/* reader produced more than the model */
		return;
	}
	e = &m->ev[(*k)++];
	if (e->kind != rc)
		abort();
	if (rc == 1) {
		if (f->type != e->type || f->id != e->id || f->len != e->len ||
		    memcmp(f->payload, s + e->off, e->len) != 0)
			abort();
		walk_cbor(f->payload, f->len);
	}
}

/**
 * drain() - take every complete frame from the reader
 * @r: reader
 * @m: model
 * @k: next expected event
 * @s: stream
 */
static void drain(struct frame_reader *r, const struct model *m, size_t *k,
		  const uint8_t *s)
{
	struct frame f;
	int rc;

	while ((rc = frame_reader_next(r, &f)) != 0)
		check_frame(m, k, rc, &f, s);
}

/**
 * push() - give @n bytes to the reader through feed() or space()+commit()
 * @r: reader
 * @p: bytes
 * @n: count
 * @direct: use space()+commit()
 * @m: model
 * @k: next expected event
 * @s: stream
 */
static void push(struct frame_reader *r, const uint8_t *p, size_t n,
		 int direct, const struct model *m, size_t *k, const uint8_t *s)
{
	size_t avail, c;
	uint8_t *dst;

	while (n > 0) {
		if (direct) {
			dst = frame_reader_space(r, &avail);
			c = n < avail ? n : avail;
			memcpy(dst, p, c);
			frame_reader_commit(r, c);
		} else {
			c = frame_reader_feed(r, p, n);
		}
		p += c;
		n -= c;
		drain(r, m, k, s);
		if (c == 0 && n > 0 && frame_reader_space(r, &avail) && !avail)
			abort();	/* no progress although drained */
	}
}

static struct model model;

/**
 * LLVMFuzzerTestOneInput() - libFuzzer entry
 * @data: input
 * @size: input length
 *
 * Return: 0.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct frame_reader r;
	const uint8_t *s;
	size_t n, pos = 0, c, k = 0, max;

	if (size < 1)
		return 0;
	max = 1 + (size_t)(data[0] & 0x3f) * 4;
	s = data + 1;
	n = size - 1;
	if (frame_reader_init(&r, max) != 0)
		abort();
	model_parse(&model, s, n, max);
	while (pos < n) {
		c = 1 + (s[pos] % (data[0] & 0x40 ? 3 : 97));
		if (c > n - pos)
			c = n - pos;
		push(&r, s + pos, c, (int)((pos + data[0]) & 1), &model, &k, s);
		pos += c;
	}
	if (k != model.n && k < MAX_EVENTS)
		abort();		/* reader missed frames the model saw */
	frame_reader_free(&r);
	frame_reader_free(&r);
	return 0;
}
