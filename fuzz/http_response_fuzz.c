/* SPDX-License-Identifier: MIT */
/* http_response_fuzz.c - libFuzzer target: response heads and chunked bodies */

/*
 * The input is one byte of parameters (which also picks the request method
 * the response answers) followed by the bytes an upstream server sent.
 * The head is parsed at once and again fed in pieces (resuming with
 * last_len); both must agree. A parsed head must lie inside the input,
 * every slice inside the head, and writing it back with
 * http1_write_response_head() must give a head that parses to the same
 * response. A chunked body after the head (or, when no head parsed, the
 * whole input) is decoded at once and in pieces; output, consumed bytes
 * and verdict must agree (also with a reference decoder), and re-encoding
 * the output must decode back.
 */

#include <stdlib.h>
#include <string.h>

#include "http/chunked.h"
#include "http/http1.h"

#define MAX_INPUT	(256 * 1024)

#include "http_fuzz_common.h"

/**
 * check_slices() - every slice of a parsed response lies in its head
 * @q:		response
 * @buf:	input
 * @n:		input length
 */
static void check_slices(const struct http1_response *q, const char *buf, size_t n)
{
	size_t i, j;

	if (q->head_len > n || q->head_len < 4 || q->head_len > HTTP1_MAX_HEAD ||
	    memcmp(buf + q->head_len - 4, "\r\n\r\n", 4) != 0 ||
	    q->nheaders > HTTP1_MAX_HEADERS || !in_range(q->reason, buf, q->head_len))
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
 * check_semantics() - framing results follow RFC 9112 6.3
 * @q:		response
 * @method:	request method
 */
static void check_semantics(const struct http1_response *q, enum http1_method method)
{
	int bodyless = q->status < 200 || q->status == 204 || q->status == 304 ||
		       method == HTTP1_METHOD_HEAD;

	if ((q->minor != 0 && q->minor != 1) || q->status < 100 || q->status > 599)
		abort();
	if (bodyless && (q->body != HTTP1_BODY_NONE || q->content_length))
		abort();
	if (q->body == HTTP1_BODY_CHUNKED && (q->minor != 1 || q->content_length))
		abort();
	if (q->body == HTTP1_BODY_LENGTH && (q->content_length == 0 ||
					     q->content_length > HTTP1_MAX_CONTENT_LENGTH))
		abort();
	if (q->body == HTTP1_BODY_NONE && q->content_length)
		abort();
	if (q->body == HTTP1_BODY_CLOSE && q->keep_alive)
		abort();
}

static struct http1_response res_a, res_b, res_c;

/**
 * same_response() - two parses describe the same response
 * @a:	first
 * @b:	second
 *
 * Return: true when equal in everything but head_len.
 */
static int same_response(const struct http1_response *a, const struct http1_response *b)
{
	size_t i;

	if (a->nheaders != b->nheaders || a->status != b->status || a->minor != b->minor ||
	    a->body != b->body || a->upgrade != b->upgrade ||
	    a->content_length != b->content_length || a->keep_alive != b->keep_alive ||
	    a->reason.len != b->reason.len || memcmp(a->reason.p, b->reason.p, a->reason.len))
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
 * @q:		parsed response
 * @method:	request method
 */
static void check_rewrite(const struct http1_response *q, enum http1_method method)
{
	size_t need = http1_write_response_head(NULL, 0, q->minor, q->status, q->reason,
						q->headers, q->nheaders);
	char *out;

	if (need == 0)
		abort();	/* a parsed head must be writable */
	if (need > HTTP1_MAX_HEAD)
		return;		/* "a:b" -> "a: b" may outgrow the limit */
	out = malloc(need);
	if (!out || http1_write_response_head(out, need, q->minor, q->status, q->reason,
					      q->headers, q->nheaders) != need)
		abort();
	if (http1_parse_response(out, need, 0, method, &res_c) != 1 ||
	    res_c.head_len != need || !same_response(q, &res_c))
		abort();
	free(out);
}

static const enum http1_method methods[4] = {
	HTTP1_METHOD_GET, HTTP1_METHOD_HEAD, HTTP1_METHOD_POST, HTTP1_METHOD_OTHER,
};

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
	enum http1_method method;
	size_t n, pos = 0, last = 0;
	struct rng r;
	int rc, rc2 = 0;

	if (size < 1 || size > MAX_INPUT)
		return 0;
	n = size - 1;
	method = methods[(data[0] >> 1) & 3];
	r.s = (uint64_t)data[0] * 0x9e3779b97f4a7c15u + size;
	r.s |= 1;
	rc = http1_parse_response(buf, n, 0, method, &res_a);
	while (rc2 == 0 && pos < n) {
		pos += piece(&r, n - pos, data[0] & 1);
		rc2 = http1_parse_response(buf, pos, last, method, &res_b);
		last = pos;
	}
	if (rc2 != rc || (rc < 0 && (res_b.error_status != HTTP1_RESPONSE_ERROR ||
				     res_a.err != res_b.err)))
		abort();
	if (rc < 0 && (res_a.err == NULL || res_a.error_status != HTTP1_RESPONSE_ERROR))
		abort();
	if (rc == 1) {
		if (res_a.head_len != res_b.head_len || !same_response(&res_a, &res_b))
			abort();
		check_slices(&res_a, buf, n);
		check_semantics(&res_a, method);
		check_rewrite(&res_a, method);
		if (res_a.body == HTTP1_BODY_CHUNKED)
			check_chunked(buf + res_a.head_len, n - res_a.head_len,
				      1 + (data[0] >> 3) * 37, r.s);
		return 0;
	}
	check_chunked(buf, n, data[0] & 0x80 ? UINT64_MAX : (uint64_t)data[0] * 11, r.s);
	return 0;
}
