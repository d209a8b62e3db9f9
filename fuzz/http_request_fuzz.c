/* SPDX-License-Identifier: MIT */
/* http_request_fuzz.c - libFuzzer target: request heads and chunked bodies */

/*
 * The input is one byte of parameters followed by the bytes a guest sent.
 * The head is parsed at once and again fed in pieces (resuming with
 * last_len); both must agree. A parsed head must lie inside the input,
 * every slice inside the head, and writing it back with
 * http1_write_request_head() must give a head that parses to the same
 * request. A chunked body after the head (or, when no head parsed, the
 * whole input) is decoded at once and in pieces; output, consumed bytes
 * and verdict must agree, and re-encoding the output must decode back.
 */

#include <stdlib.h>
#include <string.h>

#include "http/chunked.h"
#include "http/http1.h"

#define MAX_INPUT	(256 * 1024)

#include "http_fuzz_common.h"

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

/**
 * check_slices() - every slice of a parsed request lies in its head
 * @q:		request
 * @buf:	input
 * @n:		input length
 */
static void check_slices(const struct http1_request *q, const char *buf, size_t n)
{
	size_t i, j;

	if (q->head_len > n || q->head_len < 4 || q->head_len > HTTP1_MAX_HEAD ||
	    memcmp(buf + q->head_len - 4, "\r\n\r\n", 4) != 0 ||
	    q->nheaders > HTTP1_MAX_HEADERS)
		abort();
	if (!in_range(q->method, buf, q->head_len) || !in_range(q->target, buf, q->head_len) ||
	    !in_range(q->authority, buf, q->head_len) || !in_range(q->path, buf, q->head_len) ||
	    q->method.len == 0 || q->target.len == 0)
		abort();
	for (i = 0; i < q->nheaders; i++) {
		if (!in_range(q->headers[i].name, buf, q->head_len) ||
		    !in_range(q->headers[i].value, buf, q->head_len) || q->headers[i].name.len == 0)
			abort();
		for (j = 0; j < q->headers[i].value.len; j++)
			if (!http1_is_value_char((unsigned char)q->headers[i].value.p[j]))
				abort();
		http1_is_hop_by_hop(q->headers[i].name, q->headers, q->nheaders);
	}
}

/**
 * check_semantics() - framing results are self-consistent
 * @q:	request
 */
static void check_semantics(const struct http1_request *q)
{
	if (q->minor != 0 && q->minor != 1)
		abort();
	if (q->body == HTTP1_BODY_CHUNKED && (q->minor != 1 || q->content_length))
		abort();
	if (q->body == HTTP1_BODY_LENGTH && (q->content_length == 0 ||
					     q->content_length > HTTP1_MAX_CONTENT_LENGTH))
		abort();
	if (q->body == HTTP1_BODY_NONE && q->content_length)
		abort();
	if (q->body == HTTP1_BODY_CLOSE || q->meth == HTTP1_METHOD_CONNECT)
		abort();
	if (q->minor == 1 && !q->has_host)
		abort();
	if (q->expect_continue && q->minor != 1)
		abort();
}

static struct http1_request req_a, req_b, req_c;

/**
 * same_request() - two parses describe the same request
 * @a:	first
 * @b:	second
 *
 * Return: true when equal in everything but head_len.
 */
static int same_request(const struct http1_request *a, const struct http1_request *b)
{
	size_t i;

	if (a->nheaders != b->nheaders || a->meth != b->meth || a->form != b->form ||
	    a->minor != b->minor || a->body != b->body || a->upgrade != b->upgrade ||
	    a->content_length != b->content_length || a->keep_alive != b->keep_alive ||
	    a->expect_continue != b->expect_continue || a->has_host != b->has_host ||
	    a->target.len != b->target.len || memcmp(a->target.p, b->target.p, a->target.len) ||
	    a->method.len != b->method.len || memcmp(a->method.p, b->method.p, a->method.len))
		return 0;
	for (i = 0; i < a->nheaders; i++) {
		const struct http1_header *x = &a->headers[i], *y = &b->headers[i];

		if (x->name.len != y->name.len || x->value.len != y->value.len ||
		    memcmp(x->name.p, y->name.p, x->name.len) ||
		    memcmp(x->value.p, y->value.p, x->value.len))
			return 0;
	}
	return 1;
}

/**
 * check_rewrite() - write the head back and parse it again
 * @q:	parsed request
 */
static void check_rewrite(const struct http1_request *q)
{
	size_t need = http1_write_request_head(NULL, 0, q->method, q->target, q->minor,
					       q->headers, q->nheaders);
	char *out;

	if (need == 0)
		abort();	/* a parsed head must be writable */
	if (need > HTTP1_MAX_HEAD)
		return;		/* "a:b" -> "a: b" may outgrow the limit */
	out = malloc(need);
	if (!out || http1_write_request_head(out, need, q->method, q->target, q->minor,
					     q->headers, q->nheaders) != need)
		abort();
	if (http1_parse_request(out, need, 0, &req_c) != 1 || req_c.head_len != need ||
	    !same_request(q, &req_c))
		abort();
	free(out);
}

/**
 * LLVMFuzzerTestOneInput() - libFuzzer entry
 * @data:	input
 * @size:	input length
 *
 * Return: 0.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data + 1;
	size_t n, pos = 0, last = 0;
	struct rng r;
	int rc, rc2 = 0;

	if (size < 1 || size > MAX_INPUT)
		return 0;
	n = size - 1;
	r.s = (uint64_t)data[0] * 0x9e3779b97f4a7c15u + size;
	r.s |= 1;
	rc = http1_parse_request(buf, n, 0, &req_a);
	while (rc2 == 0 && pos < n) {
		pos += piece(&r, n - pos, data[0] & 1);
		rc2 = http1_parse_request(buf, pos, last, &req_b);
		last = pos;
	}
	if (rc2 != rc || (rc < 0 && (req_a.error_status != req_b.error_status ||
				     req_a.err != req_b.err)))
		abort();
	if (rc < 0 && (req_a.err == NULL || req_a.error_status < 400))
		abort();
	if (rc == 1) {
		if (req_a.head_len != req_b.head_len || !same_request(&req_a, &req_b))
			abort();
		check_slices(&req_a, buf, n);
		check_semantics(&req_a);
		check_rewrite(&req_a);
		if (req_a.body == HTTP1_BODY_CHUNKED)
			check_chunked(buf + req_a.head_len, n - req_a.head_len,
				      1 + (data[0] >> 1) * 37, r.s);
		return 0;
	}
	check_chunked(buf, n, data[0] & 0x80 ? UINT64_MAX : (uint64_t)data[0] * 11, r.s);
	return 0;
}
