/* SPDX-License-Identifier: MIT */
/* http1.h - strict HTTP/1.x head parsing, framing decisions and head writing */
#ifndef GONDOLIN_HTTP_HTTP1_H
#define GONDOLIN_HTTP_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP1_MAX_HEAD		(64 * 1024)	/* head incl. CRLFCRLF, else 431 */
#define HTTP1_MAX_START_LINE	(8 * 1024)	/* request line excl. CRLF, else 414 */
#define HTTP1_MAX_HEADERS	100		/* header fields, else 431 */
#define HTTP1_MAX_HOST		255		/* authority (host[:port]) bytes */
#define HTTP1_MAX_CONTENT_LENGTH (UINT64_C(1) << 53)
#define HTTP1_RESPONSE_ERROR	502		/* status a bad upstream head maps to */

/* A byte range inside the caller's buffer; valid while that buffer is. */
struct http1_slice {
	const char *p;
	size_t len;
};

/* One header field: name as sent, value with OWS trimmed on both sides. */
struct http1_header {
	struct http1_slice name;
	struct http1_slice value;
};

enum http1_method {
	HTTP1_METHOD_OTHER = 0,	/* any other token: the caller decides */
	HTTP1_METHOD_GET,
	HTTP1_METHOD_HEAD,
	HTTP1_METHOD_POST,
	HTTP1_METHOD_PUT,
	HTTP1_METHOD_DELETE,
	HTTP1_METHOD_PATCH,
	HTTP1_METHOD_OPTIONS,
	HTTP1_METHOD_TRACE,
	HTTP1_METHOD_CONNECT,	/* never accepted by http1_parse_request() */
	HTTP1_METHOD_COUNT
};

enum http1_target_form {
	HTTP1_TARGET_ORIGIN = 0,	/* "/path?query" */
	HTTP1_TARGET_ABSOLUTE,		/* "http[s]://authority/path?query" */
	HTTP1_TARGET_ASTERISK,		/* "*", OPTIONS only */
};

enum http1_body {
	HTTP1_BODY_NONE = 0,
	HTTP1_BODY_LENGTH,	/* exactly content_length bytes */
	HTTP1_BODY_CHUNKED,	/* chunked transfer coding, see chunked.h */
	HTTP1_BODY_CLOSE,	/* responses only: until the server closes */
};

enum http1_upgrade {
	HTTP1_UPGRADE_NONE = 0,
	HTTP1_UPGRADE_WEBSOCKET,	/* Connection: upgrade + Upgrade: websocket */
	HTTP1_UPGRADE_OTHER,		/* Connection: upgrade + any other protocol */
};

/**
 * struct http1_request - a parsed request head; every slice points into the
 * buffer given to http1_parse_request()
 * @headers:	fields in wire order (duplicates kept, never merged)
 * @nheaders:	used entries of @headers
 * @head_len:	bytes of the head including the final CRLFCRLF; the body or
 *		the next pipelined request starts there
 * @method:	method token
 * @target:	request-target as sent
 * @authority:	absolute-form: host[:port] from the target; else the Host value
 * @path:	origin part: @target for origin-form, the part after the
 *		authority for absolute-form (may be empty), "*" for asterisk-form
 * @scheme_https: absolute-form target used https://
 * @content_length: body bytes when @body is HTTP1_BODY_LENGTH, else 0
 * @err:	static message when the parse failed
 * @error_status: HTTP status to answer a failed parse with
 * @meth:	@method classified
 * @form:	request-target form
 * @minor:	HTTP/1.@minor (0 or 1)
 * @body:	framing decision (never HTTP1_BODY_CLOSE for requests)
 * @upgrade:	requested protocol switch
 * @keep_alive:	connection may be reused after this exchange
 * @expect_continue: HTTP/1.1 request with Expect: 100-continue
 * @has_host:	a Host field was present
 */
struct http1_request {
	struct http1_header headers[HTTP1_MAX_HEADERS];
	size_t nheaders;
	size_t head_len;
	struct http1_slice method, target, authority, path;
	uint64_t content_length;
	const char *err;
	int error_status;
	enum http1_method meth;
	enum http1_target_form form;
	int minor;
	enum http1_body body;
	enum http1_upgrade upgrade;
	bool scheme_https;
	bool keep_alive;
	bool expect_continue;
	bool has_host;
};

/**
 * struct http1_response - a parsed response head; slices point into the
 * buffer given to http1_parse_response()
 * @headers:	fields in wire order
 * @nheaders:	used entries of @headers
 * @head_len:	bytes of the head including the final CRLFCRLF
 * @reason:	reason phrase (may be empty)
 * @content_length: body bytes when @body is HTTP1_BODY_LENGTH, else 0
 * @err:	static message when the parse failed
 * @error_status: HTTP1_RESPONSE_ERROR when the parse failed
 * @status:	status code, 100..599
 * @minor:	HTTP/1.@minor (0 or 1)
 * @body:	framing decision per RFC 9112 section 6.3
 * @upgrade:	protocol the server switched to (meaningful for 101)
 * @keep_alive:	connection may be reused after this response
 */
struct http1_response {
	struct http1_header headers[HTTP1_MAX_HEADERS];
	size_t nheaders;
	size_t head_len;
	struct http1_slice reason;
	uint64_t content_length;
	const char *err;
	int error_status;
	int status;
	int minor;
	enum http1_body body;
	enum http1_upgrade upgrade;
	bool keep_alive;
};

/*
 * Parsers return 1 with a complete head, 0 while the terminating CRLFCRLF
 * is not in @buf yet, -1 for malformed input (err and error_status set).
 *
 * @last_len is the length @buf had at the previous call that returned 0
 * for the same message (0 on the first call): scanning resumes there, so
 * feeding a head one byte at a time costs O(n), not O(n^2). The bytes
 * before @last_len must be unchanged. Early rejection (NUL, bare CR or LF,
 * over-long lines or heads) happens on partial heads too.
 */
int http1_parse_request(const char *buf, size_t len, size_t last_len,
			struct http1_request *req);
int http1_parse_response(const char *buf, size_t len, size_t last_len,
			 enum http1_method req_method,
			 struct http1_response *res);

enum http1_method http1_method_lookup(const char *p, size_t len);

bool http1_is_tchar(unsigned char c);
bool http1_is_token(struct http1_slice s);
int http1_split_authority(struct http1_slice a, struct http1_slice *host,
			  unsigned *port);
bool http1_is_value_char(unsigned char c);
bool http1_name_is(struct http1_slice name, const char *lower);
bool http1_is_hop_by_hop(struct http1_slice name,
			 const struct http1_header *headers, size_t n);

/*
 * Head writers return the bytes the head needs (CRLFCRLF included) and
 * write it only when that fits in @cap; 0 means the input would not make a
 * valid head (a non-token name or method, CR/LF/NUL in a value, ...), so
 * nothing from a hostile peer can inject lines.
 */
size_t http1_write_request_head(char *out, size_t cap,
				struct http1_slice method,
				struct http1_slice target, int minor,
				const struct http1_header *headers, size_t n);
size_t http1_write_response_head(char *out, size_t cap, int minor,
				 int status, struct http1_slice reason,
				 const struct http1_header *headers, size_t n);

#endif /* GONDOLIN_HTTP_HTTP1_H */
