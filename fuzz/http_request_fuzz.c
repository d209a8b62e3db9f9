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
