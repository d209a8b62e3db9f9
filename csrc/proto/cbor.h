/* SPDX-License-Identifier: MIT */
/* cbor.h - the CBOR subset used for structured frame payloads */
#ifndef GONDOLIN_PROTO_CBOR_H
#define GONDOLIN_PROTO_CBOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CBOR_MAX_DEPTH	16	/* nesting accepted by the decoder */

/*
 * Subset: unsigned and negative integers (64-bit), byte strings, text
 * strings, arrays and maps of definite length, false, true, null.
 * Rejected as malformed: tags, floats, undefined, other simple values,
 * indefinite lengths, reserved additional info (28..30), lengths that
 * run past the input, nesting deeper than CBOR_MAX_DEPTH.
 */
enum cbor_type {
	CBOR_UINT, CBOR_NINT, CBOR_BYTES, CBOR_TEXT,
	CBOR_ARRAY, CBOR_MAP, CBOR_BOOL, CBOR_NULL,
};

/**
 * struct cbor_item - one decoded item head
 * @type:	what it is
 * @u:		CBOR_UINT value; CBOR_NINT stores -1 - value here (so the
 *		value is -1 - u); element count for CBOR_ARRAY, pair count
 *		for CBOR_MAP; 0/1 for CBOR_BOOL
 * @str:	CBOR_BYTES / CBOR_TEXT contents (points into the input)
 * @len:	length of @str
 */
struct cbor_item {
	enum cbor_type type;
	uint64_t u;
	const uint8_t *str;
	size_t len;
};

/* Reading cursor over one buffer; never reads outside [p, end). */
struct cbor_reader {
	const uint8_t *p, *end;
};

/*
 * cbor_read/cbor_skip return 0, or -1 when malformed or truncated.
 * cbor_map_find and the cbor_map_<type> lookups return 1 found, 0 absent,
 * -1 malformed (for the lookups also: present with the wrong type).
 * Lookups only validate the map up to the key they find; a caller that
 * must reject any malformed payload cbor_skip()s it whole first.
 */
void cbor_reader_init(struct cbor_reader *r, const void *buf, size_t len);
int cbor_read(struct cbor_reader *r, struct cbor_item *it);
int cbor_skip(struct cbor_reader *r);
int cbor_skip_depth(struct cbor_reader *r, unsigned int max_depth);
int cbor_map_find(const void *buf, size_t len, const char *key,
		  struct cbor_reader *val);
int cbor_map_uint(const void *buf, size_t len, const char *key, uint64_t *out);
int cbor_map_bool(const void *buf, size_t len, const char *key, bool *out);
int cbor_map_text(const void *buf, size_t len, const char *key,
		  const uint8_t **str, size_t *slen);

/* Writer into a fixed buffer; @err sticks once the buffer is too small. */
struct cbor_writer {
	uint8_t *buf;
	size_t cap, len;
	bool err;
};

void cbor_writer_init(struct cbor_writer *w, void *buf, size_t cap);
void cbor_put_uint(struct cbor_writer *w, uint64_t v);
void cbor_put_int(struct cbor_writer *w, int64_t v);
void cbor_put_bytes(struct cbor_writer *w, const void *p, size_t n);
void cbor_put_text(struct cbor_writer *w, const char *s, size_t n);
void cbor_put_cstr(struct cbor_writer *w, const char *s);
void cbor_put_array(struct cbor_writer *w, uint64_t n);
void cbor_put_map(struct cbor_writer *w, uint64_t n);
void cbor_put_bool(struct cbor_writer *w, bool b);
void cbor_put_null(struct cbor_writer *w);

#endif /* GONDOLIN_PROTO_CBOR_H */
