/* SPDX-License-Identifier: MIT */
/* chunked.h - incremental decoder and encoder for the chunked transfer coding */
#ifndef GONDOLIN_HTTP_CHUNKED_H
#define GONDOLIN_HTTP_CHUNKED_H

#include <stddef.h>
#include <stdint.h>

#define CHUNKED_MAX_LINE	1024		/* chunk-size line excl. CRLF */
#define CHUNKED_MAX_DIGITS	16		/* hex digits, leading zeros count */
#define CHUNKED_MAX_TRAILER	(8 * 1024)	/* all trailer lines together */
#define CHUNKED_HEAD_MAX	(CHUNKED_MAX_DIGITS + 2)
#define CHUNKED_LAST		"0\r\n\r\n"	/* last chunk, no trailers */

/**
 * struct chunked_decoder - state between chunked_decode() calls; no buffer,
 * so it holds nothing the peer can grow
 * @remaining:	chunk data bytes still to come in the current chunk
 * @size:	chunk size being parsed
 * @max_chunk:	largest chunk size accepted
 * @line:	bytes of the current size or trailer line so far
 * @trailer:	trailer bytes so far
 * @err:	static message after a failure
 * @state:	internal state
 * @digits:	hex digits of @size so far
 */
struct chunked_decoder {
	uint64_t remaining;
	uint64_t size;
	uint64_t max_chunk;
	size_t line;
	size_t trailer;
	const char *err;
	int state;
	int digits;
};

void chunked_decoder_init(struct chunked_decoder *d, uint64_t max_chunk);

/*
 * chunked_decode() consumes bytes from @in and sets *used to how many.
 * When it meets chunk data it stops after one slice: *data and *dlen name the
 * data bytes (inside the consumed part of @in), else *dlen is 0. Call
 * again with the rest while it returns 0 and *used < @len.
 * Return: 1 once the last chunk and trailers are complete (bytes after
 * *used belong to the next message), 0 when more input is needed or a data
 * slice was produced, -1 on malformed framing (d->err says why; sticky).
 */
int chunked_decode(struct chunked_decoder *d, const char *in, size_t len,
		   size_t *used, const char **data, size_t *dlen);

size_t chunked_head(char out[CHUNKED_HEAD_MAX], uint64_t size);
size_t chunked_encode(char *out, size_t cap, const char *data, size_t n);

#endif /* GONDOLIN_HTTP_CHUNKED_H */
