/* SPDX-License-Identifier: MIT */
/* cbor.c - bounded decoder and fixed-buffer encoder for the CBOR subset */

/*
 * Theory of Operation
 *
 * Decoding works on a cursor [p, end) over bytes the caller owns; nothing
 * is allocated and no pointer ever leaves the range. cbor_read() decodes
 * one item head: for strings it also covers the contents (after checking
 * the length against the bytes left), for arrays and maps it only returns
 * the count, leaving the cursor on the first element. A count larger than
 * the bytes left is malformed at once, since every element needs at least
 * one byte; so is anything outside the subset listed in cbor.h.
 *
 * cbor_skip() walks one whole item with an explicit stack of "elements
 * still to read" counters, one per open container, bounded by
 * CBOR_MAX_DEPTH; there is no recursion. Each step either consumes at
 * least one byte or closes a container, so it terminates.
 *
 * The writer appends to a fixed buffer. The first item that does not fit
 * sets err, which then sticks: later items are not written, so the
 * caller checks err once at the end.
 */

#include <string.h>

#include "proto/cbor.h"

enum cbor_major {
	MAJOR_UINT = 0, MAJOR_NINT = 1, MAJOR_BYTES = 2, MAJOR_TEXT = 3,
	MAJOR_ARRAY = 4, MAJOR_MAP = 5, MAJOR_TAG = 6, MAJOR_SIMPLE = 7,
};

#define AI_FALSE	20
#define AI_TRUE		21
#define AI_NULL		22
#define AI_U8		24
#define AI_U64		27
#define CBOR_HEAD_MAX	9	/* initial byte + 8-byte argument */

/**
 * read_arg() - decode the argument that follows an initial byte
 * @r: cursor, just past the initial byte
 * @ai: additional info (low 5 bits of the initial byte)
 * @out: decoded argument
 *
 * Return: 0, or -1 for a reserved/indefinite ai or a truncated argument.
 */
static int read_arg(struct cbor_reader *r, unsigned int ai, uint64_t *out)
{
	size_t n, i;
	uint64_t v = 0;

	if (ai < AI_U8) {
		*out = ai;
		return 0;
	}
	if (ai > AI_U64)
		return -1;
	n = (size_t)1 << (ai - AI_U8);
	if ((size_t)(r->end - r->p) < n)
		return -1;
	for (i = 0; i < n; i++)
		v = v << 8 | r->p[i];
	r->p += n;
	*out = v;
	return 0;
}

/**
 * read_simple() - decode major type 7 (only false, true, null are allowed)
 * @ai: additional info
 * @it: item to fill
 *
 * Return: 0, or -1 for floats, undefined, other simple values, break.
 */
static int read_simple(unsigned int ai, struct cbor_item *it)
{
	switch (ai) {
	case AI_FALSE:
	case AI_TRUE:
		it->type = CBOR_BOOL;
		it->u = ai == AI_TRUE;
		return 0;
	case AI_NULL:
		it->type = CBOR_NULL;
		return 0;
	default:
		return -1;
	}
}

/**
 * cbor_reader_init() - start a cursor over a buffer
 * @r: cursor
 * @buf: bytes (may be NULL when @len is 0)
 * @len: number of bytes
 */
void cbor_reader_init(struct cbor_reader *r, const void *buf, size_t len)
{
	r->p = buf;
	r->end = r->p ? r->p + len : r->p;
}

/**
 * cbor_read() - decode one item head
 * @r: cursor; advanced past the head (and past string contents)
 * @it: decoded item; strings point into the input
 *
 * Arrays and maps leave the cursor on their first element; the caller
 * reads @it->u elements (2 * @it->u items for a map) or cbor_skip()s them.
 *
 * Return: 0, or -1 when malformed or truncated (cursor then undefined).
 */
int cbor_read(struct cbor_reader *r, struct cbor_item *it)
{
	unsigned int major, ai;
	size_t left;
	uint64_t v;

	if (r->p >= r->end)
		return -1;
	major = *r->p >> 5;
	ai = *r->p & 0x1f;
	r->p++;
	memset(it, 0, sizeof(*it));
	if (major == MAJOR_SIMPLE)
		return read_simple(ai, it);
	if (major == MAJOR_TAG || read_arg(r, ai, &v) < 0)
		return -1;
	left = (size_t)(r->end - r->p);
	it->u = v;
	switch (major) {
	case MAJOR_UINT:
		it->type = CBOR_UINT;
		return 0;
	case MAJOR_NINT:
		it->type = CBOR_NINT;
		return 0;
	case MAJOR_BYTES:
	case MAJOR_TEXT:
		if (v > left)
			return -1;
		it->type = major == MAJOR_BYTES ? CBOR_BYTES : CBOR_TEXT;
		it->str = r->p;
		it->len = (size_t)v;
		r->p += it->len;
		return 0;
	case MAJOR_ARRAY:
		it->type = CBOR_ARRAY;
		return v > left ? -1 : 0;
	default:
		it->type = CBOR_MAP;
		return v > left / 2 ? -1 : 0;
	}
}

/**
 * cbor_skip_depth() - skip one complete item, allowing @max_depth levels
 * @r: cursor
 * @max_depth: containers that may be open at once (<= CBOR_MAX_DEPTH)
 *
 * Return: 0, or -1 when malformed, truncated or nested too deeply.
 */
int cbor_skip_depth(struct cbor_reader *r, unsigned int max_depth)
{
	uint64_t todo[CBOR_MAX_DEPTH + 1];
	struct cbor_item it;
	unsigned int depth = 0;

	if (max_depth > CBOR_MAX_DEPTH)
		max_depth = CBOR_MAX_DEPTH;
	todo[0] = 1;
	for (;;) {
		if (todo[depth] == 0) {
			if (depth == 0)
				return 0;
			depth--;
			continue;
		}
		todo[depth]--;
		if (cbor_read(r, &it) < 0)
			return -1;
		if ((it.type != CBOR_ARRAY && it.type != CBOR_MAP) || it.u == 0)
			continue;
		if (depth == max_depth)
			return -1;
		todo[++depth] = it.type == CBOR_MAP ? it.u * 2 : it.u;
	}
}

/**
 * cbor_skip() - skip one complete item (nesting up to CBOR_MAX_DEPTH)
 * @r: cursor
 *
 * Return: 0, or -1 when malformed, truncated or nested too deeply.
 */
int cbor_skip(struct cbor_reader *r)
{
	return cbor_skip_depth(r, CBOR_MAX_DEPTH);
}

/**
 * cbor_map_find() - find a text key in the map that starts @buf
 * @buf: encoded map
 * @len: bytes at @buf
 * @key: NUL-terminated key to look for
 * @val: on success, a cursor positioned at the key's value (running to
 *       the end of @buf)
 *
 * Only the pairs up to the first match are validated.
 *
 * Return: 1 found, 0 not found, -1 malformed (not a map, or bad input).
 */
int cbor_map_find(const void *buf, size_t len, const char *key,
		  struct cbor_reader *val)
{
	size_t klen = strlen(key);
	struct cbor_reader r, at;
	struct cbor_item it;
	uint64_t n;

	cbor_reader_init(&r, buf, len);
	if (cbor_read(&r, &it) < 0 || it.type != CBOR_MAP)
		return -1;
	for (n = it.u; n > 0; n--) {
		at = r;
		if (cbor_read(&r, &it) < 0)
			return -1;
		if (it.type == CBOR_TEXT && it.len == klen &&
		    memcmp(it.str, key, klen) == 0) {
			*val = r;
			return 1;
		}
		r = at;
		if (cbor_skip_depth(&r, CBOR_MAX_DEPTH - 1) < 0 ||
		    cbor_skip_depth(&r, CBOR_MAX_DEPTH - 1) < 0)
			return -1;
	}
	return 0;
}

/**
 * map_get() - find @key and decode its value head, checking its type
 * @buf: encoded map
 * @len: bytes at @buf
 * @key: key
 * @type: required type of the value
 * @it: the value's head
 *
 * Return: 1 found with the right type, 0 absent, -1 malformed or wrong type.
 */
static int map_get(const void *buf, size_t len, const char *key,
		   enum cbor_type type, struct cbor_item *it)
{
	struct cbor_reader v;
	int rc;

	rc = cbor_map_find(buf, len, key, &v);
	if (rc <= 0)
		return rc;
	if (cbor_read(&v, it) < 0 || it->type != type)
		return -1;
	return 1;
}

/**
 * cbor_map_uint() - look up an unsigned integer value in a map
 * @buf: encoded map
 * @len: bytes at @buf
 * @key: key
 * @out: the value, untouched when absent
 *
 * Return: 1 found, 0 absent, -1 malformed or not an unsigned integer.
 */
int cbor_map_uint(const void *buf, size_t len, const char *key, uint64_t *out)
{
	struct cbor_item it;
	int rc = map_get(buf, len, key, CBOR_UINT, &it);

	if (rc == 1)
		*out = it.u;
	return rc;
}

/**
 * cbor_map_bool() - look up a boolean value in a map
 * @buf: encoded map
 * @len: bytes at @buf
 * @key: key
 * @out: the value, untouched when absent
 *
 * Return: 1 found, 0 absent, -1 malformed or not a boolean.
 */
int cbor_map_bool(const void *buf, size_t len, const char *key, bool *out)
{
	struct cbor_item it;
	int rc = map_get(buf, len, key, CBOR_BOOL, &it);

	if (rc == 1)
		*out = it.u != 0;
	return rc;
}

/**
 * cbor_map_text() - look up a text value in a map
 * @buf: encoded map
 * @len: bytes at @buf
 * @key: key
 * @str: set to the text (not NUL-terminated, points into @buf)
 * @slen: set to its length
 *
 * Return: 1 found, 0 absent, -1 malformed or not text.
 */
int cbor_map_text(const void *buf, size_t len, const char *key,
		  const uint8_t **str, size_t *slen)
{
	struct cbor_item it;
	int rc = map_get(buf, len, key, CBOR_TEXT, &it);

	if (rc == 1) {
		*str = it.str;
		*slen = it.len;
	}
	return rc;
}

/**
 * cbor_writer_init() - start writing into a fixed buffer
 * @w: writer
 * @buf: output storage
 * @cap: bytes at @buf
 */
void cbor_writer_init(struct cbor_writer *w, void *buf, size_t cap)
{
	w->buf = buf;
	w->cap = buf ? cap : 0;
	w->len = 0;
	w->err = false;
}

/**
 * put_head() - append an initial byte and its shortest argument
 * @w: writer
 * @major: major type
 * @v: argument
 * @extra: bytes that must also fit after the head (string contents)
 *
 * Return: true when head and @extra fit (head written), false (err set).
 */
static bool put_head(struct cbor_writer *w, unsigned int major, uint64_t v,
		     size_t extra)
{
	uint8_t head[CBOR_HEAD_MAX];
	unsigned int ai, i;
	size_t n;

	if (v < AI_U8) {
		ai = (unsigned int)v;
		n = 0;
	} else if (v <= 0xff) {
		ai = AI_U8, n = 1;
	} else if (v <= 0xffff) {
		ai = AI_U8 + 1, n = 2;
	} else if (v <= 0xffffffff) {
		ai = AI_U8 + 2, n = 4;
	} else {
		ai = AI_U64, n = 8;
	}
	head[0] = (uint8_t)(major << 5 | ai);
	for (i = 0; i < n; i++)
		head[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	if (w->err || w->cap - w->len < 1 + n ||
	    w->cap - w->len - 1 - n < extra) {
		w->err = true;
		return false;
	}
	memcpy(w->buf + w->len, head, 1 + n);
	w->len += 1 + n;
	return true;
}

/**
 * put_string() - append a byte or text string
 * @w: writer
 * @major: MAJOR_BYTES or MAJOR_TEXT
 * @p: contents (may be NULL when @n is 0)
 * @n: length
 */
static void put_string(struct cbor_writer *w, unsigned int major,
		       const void *p, size_t n)
{
	if (!put_head(w, major, n, n))
		return;
	if (n)
		memcpy(w->buf + w->len, p, n);
	w->len += n;
}

/**
 * cbor_put_uint() - append an unsigned integer
 * @w: writer
 * @v: value
 */
void cbor_put_uint(struct cbor_writer *w, uint64_t v)
{
	put_head(w, MAJOR_UINT, v, 0);
}

/**
 * cbor_put_int() - append a signed integer (major 0 or 1)
 * @w: writer
 * @v: value
 */
void cbor_put_int(struct cbor_writer *w, int64_t v)
{
	if (v >= 0)
		put_head(w, MAJOR_UINT, (uint64_t)v, 0);
	else
		put_head(w, MAJOR_NINT, (uint64_t)(-1 - v), 0);
}

/**
 * cbor_put_bytes() - append a byte string
 * @w: writer
 * @p: contents
 * @n: length
 */
void cbor_put_bytes(struct cbor_writer *w, const void *p, size_t n)
{
	put_string(w, MAJOR_BYTES, p, n);
}

/**
 * cbor_put_text() - append a text string
 * @w: writer
 * @s: contents (UTF-8, not checked)
 * @n: length
 */
void cbor_put_text(struct cbor_writer *w, const char *s, size_t n)
{
	put_string(w, MAJOR_TEXT, s, n);
}

/**
 * cbor_put_cstr() - append a NUL-terminated string as text
 * @w: writer
 * @s: string
 */
void cbor_put_cstr(struct cbor_writer *w, const char *s)
{
	put_string(w, MAJOR_TEXT, s, strlen(s));
}

/**
 * cbor_put_array() - append an array head; @n items must follow
 * @w: writer
 * @n: element count
 */
void cbor_put_array(struct cbor_writer *w, uint64_t n)
{
	put_head(w, MAJOR_ARRAY, n, 0);
}

/**
 * cbor_put_map() - append a map head; @n key/value pairs must follow
 * @w: writer
 * @n: pair count
 */
void cbor_put_map(struct cbor_writer *w, uint64_t n)
{
	put_head(w, MAJOR_MAP, n, 0);
}

/**
 * cbor_put_bool() - append false or true
 * @w: writer
 * @b: value
 */
void cbor_put_bool(struct cbor_writer *w, bool b)
{
	put_head(w, MAJOR_SIMPLE, b ? AI_TRUE : AI_FALSE, 0);
}

/**
 * cbor_put_null() - append null
 * @w: writer
 */
void cbor_put_null(struct cbor_writer *w)
{
	put_head(w, MAJOR_SIMPLE, AI_NULL, 0);
}
