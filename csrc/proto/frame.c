/* SPDX-License-Identifier: MIT */
/* frame.c - reassembly and headers of length-prefixed port frames */

/*
 * Theory of Operation
 *
 * A frame_reader owns one buffer of FRAME_HDR_LEN + max_payload bytes,
 * allocated at init and never grown: the largest acceptable frame fits
 * exactly. Bytes live in [start, end); everything before start has been
 * handed out as frames, everything after end is free.
 *
 * Bytes arrive either by frame_reader_space() + read(2) + commit(), or by
 * frame_reader_feed() from a caller's buffer. Space is made by compacting
 * (moving [start, end) to the front), only when the pending frame would
 * not fit in the tail; a partial frame is moved, never reallocated.
 *
 * frame_reader_next() returns complete frames in order. A header whose
 * len exceeds max_payload is reported once (-1); the reader then enters
 * discard mode with skip = len and drops exactly that many bytes as they
 * arrive, from the buffer or straight from feed() input, so the next
 * header is found where the sender put it. Oversized payloads are never
 * buffered.
 *
 * Invariants: start <= end <= cap; skip > 0 only while no bytes are
 * buffered after next() returned, or before next() has discarded them.
 * Lengths are u32 on the wire and compared as size_t/uint64_t against
 * sizes already known to fit, so no sum can wrap.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frame.h"

/**
 * get_be32() - read a big-endian u32
 * @p: four bytes
 *
 * Return: the value.
 */
static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/**
 * put_be32() - write a big-endian u32
 * @p: four bytes of output
 * @v: value
 */
static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/**
 * discard_buffered() - drop buffered bytes that belong to an oversized frame
 * @r: reader in discard mode
 */
static void discard_buffered(struct frame_reader *r)
{
	size_t have = r->end - r->start;
	size_t d = r->skip < have ? (size_t)r->skip : have;

	r->start += d;
	r->skip -= d;
	if (r->start == r->end)
		r->start = r->end = 0;
}

/**
 * pending_need() - bytes the frame at @start needs in total, as far as known
 * @r: reader
 *
 * Return: FRAME_HDR_LEN while the header is incomplete or the frame is
 * oversized (it will be discarded, not stored), else header plus payload.
 */
static size_t pending_need(const struct frame_reader *r)
{
	size_t len;

	if (r->end - r->start < FRAME_HDR_LEN)
		return FRAME_HDR_LEN;
	len = get_be32(r->buf + r->start);
	if (len > r->max_payload)
		return FRAME_HDR_LEN;
	return FRAME_HDR_LEN + len;
}

/**
 * frame_reader_init() - allocate a reader's buffer
 * @r: reader to set up
 * @max_payload: largest payload accepted; clamped to FRAME_MAX_PAYLOAD
 *
 * Return: 0, -EINVAL for a zero limit, -ENOMEM.
 */
int frame_reader_init(struct frame_reader *r, size_t max_payload)
{
	memset(r, 0, sizeof(*r));
	if (max_payload == 0)
		return -EINVAL;
	if (max_payload > FRAME_MAX_PAYLOAD)
		max_payload = FRAME_MAX_PAYLOAD;
	r->buf = malloc(FRAME_HDR_LEN + max_payload);
	if (!r->buf)
		return -ENOMEM;
	r->cap = FRAME_HDR_LEN + max_payload;
	r->max_payload = max_payload;
	return 0;
}

/**
 * frame_reader_free() - release a reader's buffer; safe to call twice
 * @r: reader
 */
void frame_reader_free(struct frame_reader *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

/**
 * frame_reader_space() - free tail of the buffer, for a direct read(2)
 * @r: reader
 * @avail: set to the number of bytes that may be written at the result
 *
 * Compacts when the pending frame would not fit in the tail. *avail is 0
 * only when a complete frame is buffered and next() must run first.
 *
 * Return: where to write, valid until the next frame_reader_* call.
 */
uint8_t *frame_reader_space(struct frame_reader *r, size_t *avail)
{
	if (r->skip)
		discard_buffered(r);
	if (r->start == r->end) {
		r->start = r->end = 0;
	} else if (r->start > 0 &&
		   (r->end == r->cap || pending_need(r) > r->cap - r->start)) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}
	*avail = r->cap - r->end;
	return r->buf + r->end;
}

/**
 * frame_reader_commit() - account for bytes written at frame_reader_space()
 * @r: reader
 * @n: bytes written; clamped to the space that was available
 */
void frame_reader_commit(struct frame_reader *r, size_t n)
{
	if (n > r->cap - r->end)
		n = r->cap - r->end;
	r->end += n;
}

/**
 * frame_reader_feed() - copy bytes in from a caller's buffer
 * @r: reader
 * @p: bytes
 * @n: number of bytes at @p
 *
 * Bytes of an oversized frame being discarded are consumed without being
 * copied. The caller alternates feed() and next() until all is consumed.
 *
 * Return: bytes consumed from @p (0 when a complete frame must be taken
 * with next() first).
 */
size_t frame_reader_feed(struct frame_reader *r, const uint8_t *p, size_t n)
{
	size_t used = 0, avail, c;
	uint8_t *dst;

	if (r->skip)
		discard_buffered(r);
	if (r->skip && r->start == r->end) {
		used = r->skip < n ? (size_t)r->skip : n;
		r->skip -= used;
		if (r->skip)
			return used;
	}
	dst = frame_reader_space(r, &avail);
	c = n - used < avail ? n - used : avail;
	if (c)
		memcpy(dst, p + used, c);
	r->end += c;
	return used + c;
}

/**
 * frame_reader_next() - take the next complete frame
 * @r: reader
 * @f: filled on success; f->payload points into the buffer and stays
 *     valid until the next frame_reader_* call
 *
 * Return: 1 with a frame, 0 when more bytes are needed, -1 once per frame
 * whose len exceeds max_payload (its bytes are then discarded silently).
 */
int frame_reader_next(struct frame_reader *r, struct frame *f)
{
	const uint8_t *h;
	size_t have;
	uint32_t len;

	if (r->skip) {
		discard_buffered(r);
		if (r->skip)
			return 0;
	}
	have = r->end - r->start;
	if (have < FRAME_HDR_LEN)
		return 0;
	h = r->buf + r->start;
	len = get_be32(h);
	if (len > r->max_payload) {
		r->start += FRAME_HDR_LEN;
		r->skip = len;
		discard_buffered(r);
		return -1;
	}
	if (have - FRAME_HDR_LEN < len)
		return 0;
	f->type = h[4];
	f->id = get_be32(h + 5);
	f->payload = h + FRAME_HDR_LEN;
	f->len = len;
	r->start += FRAME_HDR_LEN + len;
	return 1;
}

/**
 * frame_header() - encode a frame header
 * @out: FRAME_HDR_LEN bytes of output
 * @type: message type
 * @id: session id, 0 for connection-level messages
 * @payload_len: bytes of payload that will follow
 */
void frame_header(uint8_t out[FRAME_HDR_LEN], uint8_t type, uint32_t id,
		  uint32_t payload_len)
{
	put_be32(out, payload_len);
	out[4] = type;
	put_be32(out + 5, id);
}
