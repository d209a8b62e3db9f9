/* SPDX-License-Identifier: MIT */
/* chunked.c - incremental decoder and encoder for the chunked transfer coding */

/*
 * Theory of Operation
 *
 * The decoder is a byte-at-a-time state machine over RFC 9112 section 7.1,
 * except for chunk data, which it hands back as slices of the caller's
 * input without copying. Input may be split anywhere: the state carries
 * everything needed to resume, and no input is buffered, so the decoder's
 * size is fixed whatever the peer sends.
 *
 *   SIZE_START -hex-> SIZE -CR-> SIZE_LF -LF-> DATA (size > 0)
 *                      |                   \-> TRAILER_START (size 0)
 *                      +-SP/HTAB-> SIZE_BWS -;-> EXT -CR-> SIZE_LF
 *                      +-;-> EXT
 *   DATA -size bytes-> DATA_CR -CR-> DATA_LF -LF-> SIZE_START
 *   TRAILER_START -tchar-> TRAILER_NAME -:-> TRAILER_VALUE -CR-> TRAILER_LF
 *   TRAILER_LF -LF-> TRAILER_START -CR-> END_LF -LF-> DONE
 *
 * Limits, all failing the body (a request answers 400, a response 502):
 * at most CHUNKED_MAX_DIGITS hex digits (leading zeros count, so the size
 * cannot overflow u64), a size above the caller's max_chunk, a size line
 * (digits plus extensions) over CHUNKED_MAX_LINE bytes, and trailers over
 * CHUNKED_MAX_TRAILER bytes in all. Line ends are CRLF only. Extensions
 * may hold any field-value byte and are ignored. Trailer fields follow
 * the head rules (token name, no whitespace before the colon, no obs-fold,
 * no CTL but HTAB in the value) and are discarded. DONE and the error
 * state are sticky.
 */

#include <string.h>

#include "http/chunked.h"
#include "http/http1.h"
#include "util/ascii.h"

enum chunked_state {
	ST_SIZE_START = 0,
	ST_SIZE,
	ST_SIZE_BWS,
	ST_EXT,
	ST_SIZE_LF,
	ST_DATA,
	ST_DATA_CR,
	ST_DATA_LF,
	ST_TRAILER_START,
	ST_TRAILER_NAME,
	ST_TRAILER_VALUE,
	ST_TRAILER_LF,
	ST_END_LF,
	ST_DONE,
	ST_ERROR,
};

/**
 * bad() - enter the sticky error state
 * @d:		decoder
 * @msg:	static message
 *
 * Return: -1.
 */
static int bad(struct chunked_decoder *d, const char *msg)
{
	d->state = ST_ERROR;
	d->err = msg;
	return -1;
}

/**
 * chunked_decoder_init() - prepare a decoder for one body
 * @d:		decoder
 * @max_chunk:	largest chunk size accepted
 */
void chunked_decoder_init(struct chunked_decoder *d, uint64_t max_chunk)
{
	memset(d, 0, sizeof(*d));
	d->max_chunk = max_chunk;
	d->state = ST_SIZE_START;
}

/**
 * size_digit() - one more hex digit of the chunk size
 * @d:	decoder
 * @v:	digit value
 *
 * Return: 0 or -1.
 */
static int size_digit(struct chunked_decoder *d, int v)
{
	if (++d->digits > CHUNKED_MAX_DIGITS)
		return bad(d, "chunk size has too many digits");
	d->size = d->size << 4 | (uint64_t)v;	/* <= 16 digits: no wrap */
	if (d->size > d->max_chunk)
		return bad(d, "chunk size too large");
	d->state = ST_SIZE;
	return 0;
}

/**
 * size_line_end() - the LF after a chunk-size line
 * @d:	decoder
 */
static void size_line_end(struct chunked_decoder *d)
{
	d->remaining = d->size;
	d->state = d->size ? ST_DATA : ST_TRAILER_START;
}

/**
 * step_size_line() - one byte of a chunk-size line
 * @d:	decoder
 * @c:	byte
 *
 * Return: 0 or -1.
 */
static int step_size_line(struct chunked_decoder *d, unsigned char c)
{
	if (d->state != ST_SIZE_LF && ++d->line > CHUNKED_MAX_LINE + 1)	/* + CR */
		return bad(d, "chunk-size line too long");
	switch (d->state) {
	case ST_SIZE_START:
	case ST_SIZE:
		if (ascii_hex(c) >= 0)
			return size_digit(d, ascii_hex(c));
		if (d->state == ST_SIZE_START)
			return bad(d, "invalid chunk size");
		if (c == ' ' || c == '\t')
			d->state = ST_SIZE_BWS;
		else if (c == ';')
			d->state = ST_EXT;
		else if (c == '\r')
			d->state = ST_SIZE_LF;
		else
			return bad(d, "invalid chunk size");
		return 0;
	case ST_SIZE_BWS:
		if (c == ';')
			d->state = ST_EXT;
		else if (c != ' ' && c != '\t')
			return bad(d, "invalid chunk extension");
		return 0;
	case ST_EXT:
		if (c == '\r')
			d->state = ST_SIZE_LF;
		else if (!http1_is_value_char(c))
			return bad(d, "invalid chunk extension");
		return 0;
	default:	/* ST_SIZE_LF */
		if (c != '\n')
			return bad(d, "bare CR in chunk-size line");
		size_line_end(d);
		return 0;
	}
}

/**
 * step_data_end() - the CRLF after chunk data
 * @d:	decoder
 * @c:	byte
 *
 * Return: 0 or -1.
 */
static int step_data_end(struct chunked_decoder *d, unsigned char c)
{
	if (d->state == ST_DATA_CR) {
		if (c != '\r')
			return bad(d, "chunk data not followed by CRLF");
		d->state = ST_DATA_LF;
		return 0;
	}
	if (c != '\n')
		return bad(d, "chunk data not followed by CRLF");
	d->state = ST_SIZE_START;
	d->size = 0;
	d->digits = 0;
	d->line = 0;
	return 0;
}

/**
 * step_trailer() - one byte of the trailer section
 * @d:	decoder
 * @c:	byte
 *
 * Return: 0 or -1.
 */
static int step_trailer(struct chunked_decoder *d, unsigned char c)
{
	if (++d->trailer > CHUNKED_MAX_TRAILER)
		return bad(d, "trailers too large");
	switch (d->state) {
	case ST_TRAILER_START:
		if (c == '\r')
			d->state = ST_END_LF;
		else if (c == '\n')
			return bad(d, "bare LF in trailers");
		else if (c == ' ' || c == '\t')
			return bad(d, "obsolete line folding in trailers");
		else if (http1_is_tchar(c))
			d->state = ST_TRAILER_NAME;
		else
			return bad(d, "invalid trailer field");
		return 0;
	case ST_TRAILER_NAME:
		if (c == ':')
			d->state = ST_TRAILER_VALUE;
		else if (!http1_is_tchar(c))
			return bad(d, "invalid trailer field");
		return 0;
	case ST_TRAILER_VALUE:
		if (c == '\r')
			d->state = ST_TRAILER_LF;
		else if (!http1_is_value_char(c))
			return bad(d, "invalid trailer field");
		return 0;
	case ST_TRAILER_LF:
		if (c != '\n')
			return bad(d, "bare CR in trailers");
		d->state = ST_TRAILER_START;
		return 0;
	default:	/* ST_END_LF */
		if (c != '\n')
			return bad(d, "missing CRLF after last chunk");
		d->state = ST_DONE;
		return 0;
	}
}

/**
 * step() - one framing byte
 * @d:	decoder (not in DATA, DONE or ERROR)
 * @c:	byte
 *
 * Return: 0 or -1.
 */
static int step(struct chunked_decoder *d, unsigned char c)
{
	if (d->state <= ST_SIZE_LF)
		return step_size_line(d, c);
	if (d->state == ST_DATA_CR || d->state == ST_DATA_LF)
		return step_data_end(d, c);
	return step_trailer(d, c);
}

/**
 * chunked_decode() - decode part of a chunked body
 * @d:		decoder
 * @in:		input
 * @len:	bytes at @in
 * @used:	bytes consumed out
 * @data:	data slice out (inside the consumed bytes)
 * @dlen:	length of the data slice out, 0 for none
 *
 * Return: 1 body complete, 0 more input needed or a data slice returned
 * (call again with the rest), -1 malformed (d->err).
 */
int chunked_decode(struct chunked_decoder *d, const char *in, size_t len,
		   size_t *used, const char **data, size_t *dlen)
{
	size_t i = 0, take;

	*data = NULL;
	*dlen = 0;
	while (i < len && d->state != ST_DONE && d->state != ST_ERROR) {
		if (d->state == ST_DATA) {
			take = d->remaining < len - i ? (size_t)d->remaining : len - i;
			*data = in + i;
			*dlen = take;
			i += take;
			d->remaining -= take;
			if (d->remaining == 0)
				d->state = ST_DATA_CR;
			break;
		}
		if (step(d, (unsigned char)in[i++]) < 0)
			break;
	}
	*used = i;
	if (d->state == ST_ERROR)
		return -1;
	return d->state == ST_DONE;
}

/**
 * chunked_head() - write a chunk-size line
 * @out:	room for CHUNKED_HEAD_MAX bytes
 * @size:	chunk size (0 makes the last-chunk line, without trailers)
 *
 * Return: bytes written: lower-case hex without leading zeros, then CRLF.
 */
size_t chunked_head(char out[CHUNKED_HEAD_MAX], uint64_t size)
{
	static const char digits[] = "0123456789abcdef";
	size_t n = 1, i;
	uint64_t v;

	for (v = size >> 4; v; v >>= 4)
		n++;
	for (i = n, v = size; i > 0; i--, v >>= 4)
		out[i - 1] = digits[v & 15];
	out[n] = '\r';
	out[n + 1] = '\n';
	return n + 2;
}

/**
 * chunked_encode() - frame @n bytes as one chunk, or the end of the body
 * @out:	destination (may be NULL when @cap is 0)
 * @cap:	room at @out
 * @data:	chunk data
 * @n:		bytes of data; 0 writes CHUNKED_LAST
 *
 * Return: bytes needed (written only if <= @cap), 0 when @n is too large
 * to frame.
 */
size_t chunked_encode(char *out, size_t cap, const char *data, size_t n)
{
	char head[CHUNKED_HEAD_MAX];
	size_t h, need;

	if (n == 0) {
		need = sizeof(CHUNKED_LAST) - 1;
		if (need <= cap)
			memcpy(out, CHUNKED_LAST, need);
		return need;
	}
	if (n > SIZE_MAX - CHUNKED_HEAD_MAX - 2)
		return 0;
	h = chunked_head(head, n);
	need = h + n + 2;
	if (need > cap)
		return need;
	memcpy(out, head, h);
	memcpy(out + h, data, n);
	memcpy(out + h + n, "\r\n", 2);
	return need;
}
