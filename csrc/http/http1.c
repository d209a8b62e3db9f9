/* SPDX-License-Identifier: MIT */
/* http1.c - strict HTTP/1.x head parsing, framing decisions and head writing */

/*
 * Theory of Operation
 *
 * Both peers are hostile: requests come from the guest, responses from
 * upstream servers the guest chose. The parser therefore accepts only what
 * RFC 9110/9112 allow a sender to generate, and rejects the lenient
 * readings other parsers disagree on (that disagreement is what request
 * smuggling exploits). Nothing here allocates: heads are parsed in the
 * caller's buffer and reported as slices into it, into a fixed array of
 * HTTP1_MAX_HEADERS fields.
 *
 * A parse runs in two passes. scan_head() walks the bytes that arrived
 * since the previous call (last_len) and stops at the first CRLFCRLF. On
 * the way it rejects what can never become a valid head: NUL, bare CR,
 * bare LF, a start line over HTTP1_MAX_START_LINE and a head over
 * HTTP1_MAX_HEAD, all in byte order, so a head fed in pieces fails exactly
 * like the same head fed at once, and a guest trickling bytes costs O(n).
 * Once the terminator is there, the second pass parses the start line and
 * the fields, checking every byte again (it must be safe even if the
 * caller lied about last_len), and records the fields that decide framing
 * in a struct head_ctx. finish_request()/finish_response() then make the
 * RFC 9112 section 6 framing decision.
 *
 * Strictness decisions (all fail with 400 for requests, 502 for
 * responses, unless noted): any duplicate Content-Length, even with equal
 * values; Content-Length that is not 1*DIGIT or is above 2^53;
 * Content-Length together with Transfer-Encoding; Transfer-Encoding in
 * HTTP/1.0; a coding list whose last element is not chunked, or with
 * chunked twice (a request with another coding before chunked gets 501, a
 * response with any coding but chunked is refused); obs-fold; whitespace
 * between a field name and the colon; a leading empty line; missing,
 * duplicate or malformed Host in HTTP/1.1, and a Host that differs from
 * an absolute-form authority (case-insensitive, ports must be spelled the
 * same); authority with userinfo, an empty port or port 0; request-target
 * bytes outside 0x21..0x7e, "#", or "%" not followed by two hex digits;
 * a Connection header naming Host or Content-Length; CONNECT (501);
 * authority-form; "*" for anything but OPTIONS; versions other than
 * HTTP/1.0 and HTTP/1.1 (505 if well-formed); an Expect other than
 * 100-continue (417). Field values may carry obs-text (0x80-0xff) but no
 * CTL except HTAB. Empty list elements are skipped, as RFC 9110 5.6.1
 * requires.
 */

#include <assert.h>
#include <string.h>

#include "http/http1.h"
#include "util/ascii.h"

#define HTTP1_VERSION_LEN	8	/* "HTTP/1.1" */

static const char *const method_names[] = {
	[HTTP1_METHOD_OTHER]	= "",
	[HTTP1_METHOD_GET]	= "GET",
	[HTTP1_METHOD_HEAD]	= "HEAD",
	[HTTP1_METHOD_POST]	= "POST",
	[HTTP1_METHOD_PUT]	= "PUT",
	[HTTP1_METHOD_DELETE]	= "DELETE",
	[HTTP1_METHOD_PATCH]	= "PATCH",
	[HTTP1_METHOD_OPTIONS]	= "OPTIONS",
	[HTTP1_METHOD_TRACE]	= "TRACE",
	[HTTP1_METHOD_CONNECT]	= "CONNECT",
};
static_assert(sizeof(method_names) / sizeof(method_names[0]) ==
	      HTTP1_METHOD_COUNT, "method_names must match enum http1_method");

/* RFC 9110 7.6.1 and 9112 7.1, plus the legacy names proxies strip. */
static const char *const hop_by_hop_names[] = {
	"connection", "keep-alive", "proxy-connection", "te", "trailer",
	"transfer-encoding", "upgrade", "proxy-authorization",
	"proxy-authenticate",
};

/**
 * struct head_ctx - what the field pass learns, for the framing decision
 * @headers:	field array being filled
 * @n:		fields stored
 * @host:	Host value
 * @cl:		Content-Length value
 * @err:	static message of the first failure
 * @status:	HTTP status of the first failure
 * @cl_n:	Content-Length fields seen
 * @te_n:	Transfer-Encoding fields seen
 * @te_chunked: times chunked appeared in the coding list
 * @host_n:	Host fields seen
 * @upgrade_n:	protocols listed in Upgrade fields
 * @request:	parsing a request (Host and Expect matter)
 * @te_last_chunked: the last coding seen is chunked
 * @te_other:	a coding other than chunked was listed
 * @conn_close:	Connection lists close
 * @conn_keep_alive: Connection lists keep-alive
 * @conn_upgrade: Connection lists upgrade
 * @upgrade_ws:	Upgrade lists websocket
 * @expect_continue: Expect: 100-continue
 * @expect_other: an Expect we do not implement
 */
struct head_ctx {
	struct http1_header *headers;
	size_t n;
	struct http1_slice host;
	uint64_t cl;
	const char *err;
	int status;
	unsigned cl_n, te_n, te_chunked, host_n, upgrade_n;
	bool request;
	bool te_last_chunked, te_other;
	bool conn_close, conn_keep_alive, conn_upgrade;
	bool upgrade_ws;
	bool expect_continue, expect_other;
};

/**
 * fail() - record the first failure
 * @x:		parse context
 * @status:	HTTP status for a request (responses always map to 502)
 * @msg:	static message
 *
 * Return: -1, for tail calls from parsers.
 */
static int fail(struct head_ctx *x, int status, const char *msg)
{
	if (!x->err) {
		x->err = msg;
		x->status = status;
	}
	return -1;
}

/**
 * eq_ci() - compare two slices ignoring ASCII case
 * @a:	first
 * @b:	second
 *
 * Return: true when equal.
 */
static bool eq_ci(struct http1_slice a, struct http1_slice b)
{
	size_t i;

	if (a.len != b.len)
		return false;
	for (i = 0; i < a.len; i++)
		if (ascii_lower((unsigned char)a.p[i]) != ascii_lower((unsigned char)b.p[i]))
			return false;
	return true;
}

/**
 * http1_name_is() - does a field name equal a lower-case name
 * @name:	name from the wire
 * @lname:	NUL-terminated lower-case name
 *
 * Return: true on a case-insensitive match.
 */
bool http1_name_is(struct http1_slice name, const char *lname)
{
	struct http1_slice l = { lname, strlen(lname) };

	return eq_ci(name, l);
}

/**
 * http1_is_tchar() - token character (RFC 9110 5.6.2)
 * @c:	byte
 *
 * Return: true for ALPHA, DIGIT and !#$%&'*+-.^_`|~.
 */
bool http1_is_tchar(unsigned char c)
{
	return ascii_alnum(c) || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/**
 * http1_is_value_char() - byte allowed in a field value or reason phrase
 * @c:	byte
 *
 * Return: true for HTAB, SP, VCHAR and obs-text; false for other CTLs.
 */
bool http1_is_value_char(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/**
 * http1_is_token() - non-empty run of token characters
 * @s:	slice
 *
 * Return: true when @s is a token.
 */
bool http1_is_token(struct http1_slice s)
{
	size_t i;

	for (i = 0; i < s.len; i++)
		if (!http1_is_tchar((unsigned char)s.p[i]))
			return false;
	return s.len > 0;
}

/**
 * trim_ows() - strip SP and HTAB from both ends
 * @s:	slice
 *
 * Return: the trimmed slice.
 */
static struct http1_slice trim_ows(struct http1_slice s)
{
	while (s.len && (s.p[0] == ' ' || s.p[0] == '\t')) {
		s.p++;
		s.len--;
	}
	while (s.len && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t'))
		s.len--;
	return s;
}

/**
 * list_next() - next non-empty element of a comma-separated field value
 * @rest:	unread part of the value (advanced)
 * @elem:	element out, OWS trimmed
 *
 * Return: true with an element, false at the end of the list.
 */
static bool list_next(struct http1_slice *rest, struct http1_slice *elem)
{
	const char *comma;
	size_t n;

	while (rest->len) {
		comma = memchr(rest->p, ',', rest->len);
		n = comma ? (size_t)(comma - rest->p) : rest->len;
		*elem = trim_ows((struct http1_slice){ rest->p, n });
		n += comma != NULL;
		rest->p += n;
		rest->len -= n;
		if (elem->len)
			return true;
	}
	return false;
}

/**
 * http1_method_lookup() - classify a method token (case-sensitive)
 * @p:		method bytes
 * @len:	length
 *
 * Return: the known method, or HTTP1_METHOD_OTHER.
 */
enum http1_method http1_method_lookup(const char *p, size_t len)
{
	int m;

	for (m = HTTP1_METHOD_GET; m < HTTP1_METHOD_COUNT; m++)
		if (strlen(method_names[m]) == len &&
		    memcmp(method_names[m], p, len) == 0)
			return (enum http1_method)m;
	return HTTP1_METHOD_OTHER;
}

/**
 * connection_lists() - does any Connection field list @name
 * @name:	field name
 * @headers:	fields
 * @n:		number of fields
 *
 * Return: true when @name is nominated as hop-by-hop.
 */
static bool connection_lists(struct http1_slice name,
			     const struct http1_header *headers, size_t n)
{
	struct http1_slice rest, elem;
	size_t i;

	for (i = 0; i < n; i++) {
		if (!http1_name_is(headers[i].name, "connection"))
			continue;
		rest = headers[i].value;
		while (list_next(&rest, &elem))
			if (eq_ci(elem, name))
				return true;
	}
	return false;
}

/**
 * http1_is_hop_by_hop() - must a proxy drop this field when forwarding
 * @name:	field name
 * @headers:	all fields of the message (for Connection nominations)
 * @n:		number of fields
 *
 * Return: true for the fixed hop-by-hop names and names listed in
 * Connection.
 */
bool http1_is_hop_by_hop(struct http1_slice name,
			 const struct http1_header *headers, size_t n)
{
	size_t i;

	for (i = 0; i < sizeof(hop_by_hop_names) / sizeof(hop_by_hop_names[0]); i++)
		if (http1_name_is(name, hop_by_hop_names[i]))
			return true;
	return connection_lists(name, headers, n);
}

/*
 * Pass 1: find the end of the head.
 */

/**
 * scan_head() - look for CRLFCRLF in the new bytes, rejecting early
 * @x:		context (error out)
 * @buf:	buffer
 * @len:	bytes in @buf
 * @last_len:	bytes already scanned by a previous call
 * @head_len:	head length out
 *
 * Return: 1 with *@head_len set, 0 when the head is incomplete, -1 on
 * malformed bytes.
 */
static int scan_head(struct head_ctx *x, const char *buf, size_t len,
		     size_t last_len, size_t *head_len)
{
	size_t i = last_len > 3 && last_len <= len ? last_len - 3 : 0;
	unsigned char c;

	for (; i < len; i++) {
		if (i == HTTP1_MAX_START_LINE + 2 && !memchr(buf, '\n', i))
			return fail(x, 414, "start line too long");
		if (i >= HTTP1_MAX_HEAD)
			return fail(x, 431, "head too large");
		c = (unsigned char)buf[i];
		if (c == 0)
			return fail(x, 400, "NUL byte in head");
		if (c == '\r' && i + 1 < len && buf[i + 1] != '\n')
			return fail(x, 400, "bare CR in head");
		if (c != '\n')
			continue;
		if (i == 0 || buf[i - 1] != '\r')
			return fail(x, 400, "bare LF in head");
		if (i >= 3 && buf[i - 2] == '\n' && buf[i - 3] == '\r') {
			*head_len = i + 1;
			return 1;
		}
	}
	return 0;
}

/*
 * Pass 2: lines, start lines and fields.
 */

/**
 * next_line() - the next CRLF-terminated line of the head
 * @x:		context
 * @buf:	head
 * @end:	head length
 * @pos:	offset of the line (advanced past its CRLF)
 * @line:	line out, without CRLF
 *
 * Return: 0, or -1 for a line not ended by CRLF.
 */
static int next_line(struct head_ctx *x, const char *buf, size_t end,
		     size_t *pos, struct http1_slice *line)
{
	const char *lf = memchr(buf + *pos, '\n', end - *pos);
	size_t n;

	if (!lf || lf == buf + *pos || lf[-1] != '\r')
		return fail(x, 400, "bare LF in head");
	n = (size_t)(lf - (buf + *pos));
	*line = (struct http1_slice){ buf + *pos, n - 1 };
	*pos += n + 1;
	return 0;
}

/**
 * parse_version() - "HTTP/1.0" or "HTTP/1.1"
 * @x:		context
 * @v:		version bytes
 * @minor:	minor version out
 *
 * Return: 0, or -1 (505 for a well-formed other version, else 400).
 */
static int parse_version(struct head_ctx *x, struct http1_slice v, int *minor)
{
	if (v.len != HTTP1_VERSION_LEN || memcmp(v.p, "HTTP/", 5) != 0 ||
	    v.p[5] < '0' || v.p[5] > '9' || v.p[6] != '.' ||
	    v.p[7] < '0' || v.p[7] > '9')
		return fail(x, 400, "malformed HTTP version");
	if (v.p[5] != '1' || (v.p[7] != '0' && v.p[7] != '1'))
		return fail(x, 505, "unsupported HTTP version");
	*minor = v.p[7] - '0';
	return 0;
}

/**
 * port_value() - ":" already consumed; 1*5DIGIT in 1..65535
 * @p:	port slice
 *
 * Return: the port, or 0 when invalid.
 */
static unsigned port_value(struct http1_slice p)
{
	unsigned long v = 0;
	size_t i;

	if (p.len == 0 || p.len > 5)
		return 0;
	for (i = 0; i < p.len; i++) {
		if (p.p[i] < '0' || p.p[i] > '9')
			return 0;
		v = v * 10 + (unsigned long)(p.p[i] - '0');
	}
	return v <= 65535 ? (unsigned)v : 0;
}

/**
 * host_len() - length of the host part of an authority
 * @a:	authority
 *
 * Return: bytes of the host (IP-literal brackets included), or 0 when the
 * host is malformed. Registered names allow ALPHA DIGIT - . _ only.
 */
static size_t host_len(struct http1_slice a)
{
	size_t i;
	unsigned char c;

	if (a.len && a.p[0] == '[') {
		for (i = 1; i < a.len && a.p[i] != ']'; i++)
			if (ascii_hex((unsigned char)a.p[i]) < 0 && a.p[i] != ':' &&
			    a.p[i] != '.')
				return 0;
		return i < a.len && i > 1 ? i + 1 : 0;
	}
	for (i = 0; i < a.len && a.p[i] != ':'; i++) {
		c = (unsigned char)a.p[i];
		if (!ascii_name_char(c) && c != '.')
			return 0;
	}
	return i;
}

/**
 * http1_split_authority() - host and port of host [":" port], no userinfo
 * @a:		authority
 * @host:	host out (IP-literal brackets included)
 * @port:	port out, 0 when none is given
 *
 * Return: 0, or -1 when @a is not a valid authority.
 */
int http1_split_authority(struct http1_slice a, struct http1_slice *host,
			  unsigned *port)
{
	size_t h;

	*port = 0;
	if (a.len == 0 || a.len > HTTP1_MAX_HOST || (h = host_len(a)) == 0)
		return -1;
	*host = (struct http1_slice){ a.p, h };
	if (h == a.len)
		return 0;
	if (a.p[h] != ':' ||
	    (*port = port_value((struct http1_slice){ a.p + h + 1, a.len - h - 1 })) == 0)
		return -1;
	return 0;
}

/**
 * check_authority() - host [":" port], no userinfo
 * @x:		context
 * @a:		authority
 * @what:	message on failure
 *
 * Return: 0, or -1 (400).
 */
static int check_authority(struct head_ctx *x, struct http1_slice a,
			   const char *what)
{
	struct http1_slice h;
	unsigned port;

	return http1_split_authority(a, &h, &port) < 0 ? fail(x, 400, what) : 0;
}

/**
 * check_path() - path and query of a request-target
 * @x:	context
 * @p:	path (may be empty after an absolute-form authority)
 *
 * Return: 0, or -1 (400) for bytes outside 0x21..0x7e, a fragment, or a
 * malformed percent-encoding.
 */
static int check_path(struct head_ctx *x, struct http1_slice p)
{
	size_t i;
	unsigned char c;

	for (i = 0; i < p.len; i++) {
		c = (unsigned char)p.p[i];
		if (c <= 0x20 || c >= 0x7f || c == '#')
			return fail(x, 400, "invalid byte in request-target");
		if (c == '%' && (p.len - i < 3 ||
				 ascii_hex((unsigned char)p.p[i + 1]) < 0 ||
				 ascii_hex((unsigned char)p.p[i + 2]) < 0))
			return fail(x, 400, "bad percent-encoding in request-target");
	}
	return 0;
}

/**
 * scheme_len() - length of a case-insensitive "http://" or "https://"
 * @t:		target
 * @https:	set when the scheme is https
 *
 * Return: 7, 8, or 0 when @t starts with neither.
 */
static size_t scheme_len(struct http1_slice t, bool *https)
{
	struct http1_slice h = { t.p, t.len < 7 ? t.len : 7 };
	struct http1_slice s = { t.p, t.len < 8 ? t.len : 8 };

	*https = false;
	if (http1_name_is(h, "http://"))
		return 7;
	if (http1_name_is(s, "https://")) {
		*https = true;
		return 8;
	}
	return 0;
}

/**
 * parse_absolute() - split an absolute-form target
 * @x:		context
 * @req:	request (target set; authority, path, scheme_https out)
 *
 * Return: 0 or -1.
 */
static int parse_absolute(struct head_ctx *x, struct http1_request *req)
{
	struct http1_slice t = req->target;
	size_t s = scheme_len(t, &req->scheme_https), e;

	if (s == 0)
		return fail(x, 400, "unsupported request-target form");
	for (e = s; e < t.len && t.p[e] != '/' && t.p[e] != '?'; e++)
		;
	req->form = HTTP1_TARGET_ABSOLUTE;
	req->authority = (struct http1_slice){ t.p + s, e - s };
	req->path = (struct http1_slice){ t.p + e, t.len - e };
	if (check_authority(x, req->authority, "invalid authority in request-target") < 0)
		return -1;
	return check_path(x, req->path);
}

/**
 * parse_target() - classify and check the request-target
 * @x:		context
 * @req:	request (method and target set)
 *
 * Return: 0 or -1.
 */
static int parse_target(struct head_ctx *x, struct http1_request *req)
{
	struct http1_slice t = req->target;

	if (t.len == 1 && t.p[0] == '*') {
		if (req->meth != HTTP1_METHOD_OPTIONS)
			return fail(x, 400, "asterisk-form needs OPTIONS");
		req->form = HTTP1_TARGET_ASTERISK;
		req->path = t;
		return 0;
	}
	if (t.p[0] == '/') {
		req->form = HTTP1_TARGET_ORIGIN;
		req->path = t;
		return check_path(x, t);
	}
	return parse_absolute(x, req);
}

/**
 * parse_request_line() - method SP request-target SP HTTP-version
 * @x:		context
 * @line:	the line without CRLF
 * @req:	request out
 *
 * Return: 0 or -1.
 */
static int parse_request_line(struct head_ctx *x, struct http1_slice line,
			      struct http1_request *req)
{
	const char *end = line.p + line.len, *sp1, *sp2;

	if (line.len > HTTP1_MAX_START_LINE)
		return fail(x, 414, "start line too long");
	sp1 = memchr(line.p, ' ', line.len);
	sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1)) : NULL;
	if (!sp2)
		return fail(x, 400, "malformed request line");
	req->method = (struct http1_slice){ line.p, (size_t)(sp1 - line.p) };
	req->target = (struct http1_slice){ sp1 + 1, (size_t)(sp2 - sp1 - 1) };
	if (!http1_is_token(req->method))
		return fail(x, 400, "invalid method");
	if (parse_version(x, (struct http1_slice){ sp2 + 1, (size_t)(end - sp2 - 1) },
			  &req->minor) < 0)
		return -1;
	req->meth = http1_method_lookup(req->method.p, req->method.len);
	if (req->meth == HTTP1_METHOD_CONNECT)
		return fail(x, 501, "CONNECT is not supported");
	if (req->target.len == 0)
		return fail(x, 400, "malformed request line");
	return parse_target(x, req);
}

/**
 * parse_status_line() - HTTP-version SP 3DIGIT [SP reason-phrase]
 * @x:		context
 * @line:	the line without CRLF
 * @res:	response out
 *
 * A missing SP before an empty reason is tolerated: the reason is ignored.
 *
 * Return: 0 or -1.
 */
static int parse_status_line(struct head_ctx *x, struct http1_slice line,
			     struct http1_response *res)
{
	const char *p = line.p;
	size_t i;

	if (line.len < HTTP1_VERSION_LEN + 4 || p[HTTP1_VERSION_LEN] != ' ')
		return fail(x, 502, "malformed status line");
	if (parse_version(x, (struct http1_slice){ p, HTTP1_VERSION_LEN }, &res->minor) < 0)
		return -1;
	p += HTTP1_VERSION_LEN + 1;
	if (p[0] < '1' || p[0] > '5' || p[1] < '0' || p[1] > '9' ||
	    p[2] < '0' || p[2] > '9')
		return fail(x, 502, "invalid status code");
	res->status = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	res->reason = (struct http1_slice){ p + 3, line.len - HTTP1_VERSION_LEN - 4 };
	if (res->reason.len == 0)
		return 0;
	if (res->reason.p[0] != ' ')
		return fail(x, 502, "malformed status line");
	res->reason.p++;
	res->reason.len--;
	for (i = 0; i < res->reason.len; i++)
		if (!http1_is_value_char((unsigned char)res->reason.p[i]))
			return fail(x, 502, "invalid byte in reason phrase");
	return 0;
}

/**
 * parse_field_line() - field-name ":" OWS field-value OWS
 * @x:		context
 * @line:	the line without CRLF (not empty)
 * @h:		field out
 *
 * Return: 0 or -1.
 */
static int parse_field_line(struct head_ctx *x, struct http1_slice line,
			    struct http1_header *h)
{
	size_t i;
	unsigned char c;

	if (line.p[0] == ' ' || line.p[0] == '\t')
		return fail(x, 400, "obsolete line folding");
	for (i = 0; i < line.len && line.p[i] != ':'; i++) {
		c = (unsigned char)line.p[i];
		if (c == ' ' || c == '\t')
			return fail(x, 400, "whitespace before colon");
		if (!http1_is_tchar(c))
			return fail(x, 400, "invalid field name");
	}
	if (i == line.len)
		return fail(x, 400, "field line without colon");
	if (i == 0)
		return fail(x, 400, "empty field name");
	h->name = (struct http1_slice){ line.p, i };
	h->value = trim_ows((struct http1_slice){ line.p + i + 1, line.len - i - 1 });
	for (i = 0; i < h->value.len; i++)
		if (!http1_is_value_char((unsigned char)h->value.p[i]))
			return fail(x, 400, "invalid byte in field value");
	return 0;
}

/*
 * Fields that decide framing and connection handling.
 */

/**
 * on_content_length() - 1*DIGIT, at most once, at most 2^53
 * @x:	context
 * @v:	value
 *
 * Return: 0 or -1.
 */
static int on_content_length(struct head_ctx *x, struct http1_slice v)
{
	uint64_t n = 0;
	size_t i;

	if (x->cl_n++)
		return fail(x, 400, "duplicate Content-Length");
	if (v.len == 0)
		return fail(x, 400, "invalid Content-Length");
	for (i = 0; i < v.len; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return fail(x, 400, "invalid Content-Length");
		n = n * 10 + (uint64_t)(v.p[i] - '0');	/* n <= 2^53 here: no wrap */
		if (n > HTTP1_MAX_CONTENT_LENGTH)
			return fail(x, 400, "Content-Length too large");
	}
	x->cl = n;
	return 0;
}

/**
 * on_transfer_encoding() - record the transfer-coding list
 * @x:	context
 * @v:	value
 *
 * Return: 0 or -1 for an element that is not a bare token.
 */
static int on_transfer_encoding(struct head_ctx *x, struct http1_slice v)
{
	struct http1_slice elem;

	x->te_n++;
	while (list_next(&v, &elem)) {
		if (!http1_is_token(elem))
			return fail(x, 400, "invalid Transfer-Encoding");
		x->te_last_chunked = http1_name_is(elem, "chunked");
		if (x->te_last_chunked)
			x->te_chunked++;
		else
			x->te_other = true;
	}
	return 0;
}

/**
 * on_connection() - connection options
 * @x:	context
 * @v:	value
 *
 * Return: 0 or -1 for a non-token option or one that names a field the
 * message framing or routing depends on.
 */
static int on_connection(struct head_ctx *x, struct http1_slice v)
{
	struct http1_slice e;

	while (list_next(&v, &e)) {
		if (!http1_is_token(e))
			return fail(x, 400, "invalid Connection");
		if (http1_name_is(e, "content-length") || http1_name_is(e, "host"))
			return fail(x, 400, "Connection names an end-to-end field");
		x->conn_close |= http1_name_is(e, "close");
		x->conn_keep_alive |= http1_name_is(e, "keep-alive");
		x->conn_upgrade |= http1_name_is(e, "upgrade");
	}
	return 0;
}

/**
 * on_upgrade() - protocol list: token ["/" token]
 * @x:	context
 * @v:	value
 *
 * Return: 0 or -1.
 */
static int on_upgrade(struct head_ctx *x, struct http1_slice v)
{
	struct http1_slice e, name, ver;
	const char *slash;

	while (list_next(&v, &e)) {
		slash = memchr(e.p, '/', e.len);
		name = (struct http1_slice){ e.p, slash ? (size_t)(slash - e.p) : e.len };
		ver = slash ? (struct http1_slice){ slash + 1, e.len - name.len - 1 }
			    : (struct http1_slice){ "x", 1 };
		if (!http1_is_token(name) || !http1_is_token(ver))
			return fail(x, 400, "invalid Upgrade");
		x->upgrade_n++;
		x->upgrade_ws |= !slash && http1_name_is(name, "websocket");
	}
	return 0;
}

/**
 * on_field() - dispatch the fields that matter to framing
 * @x:	context
 * @h:	field
 *
 * Return: 0 or -1.
 */
static int on_field(struct head_ctx *x, const struct http1_header *h)
{
	if (http1_name_is(h->name, "content-length"))
		return on_content_length(x, h->value);
	if (http1_name_is(h->name, "transfer-encoding"))
		return on_transfer_encoding(x, h->value);
	if (http1_name_is(h->name, "connection"))
		return on_connection(x, h->value);
	if (http1_name_is(h->name, "upgrade"))
		return on_upgrade(x, h->value);
	if (!x->request)
		return 0;
	if (http1_name_is(h->name, "host")) {
		if (x->host_n++)
			return fail(x, 400, "duplicate Host");
		x->host = h->value;
		return check_authority(x, h->value, "invalid Host");
	}
	if (http1_name_is(h->name, "expect")) {
		if (http1_name_is(h->value, "100-continue"))
			x->expect_continue = true;
		else
			x->expect_other = true;
	}
	return 0;
}

/**
 * parse_fields() - field lines up to the empty line
 * @x:		context
 * @buf:	head
 * @end:	head length
 * @pos:	offset after the start line
 *
 * Return: 0 or -1.
 */
static int parse_fields(struct head_ctx *x, const char *buf, size_t end,
			size_t pos)
{
	struct http1_slice line;

	for (;;) {
		if (next_line(x, buf, end, &pos, &line) < 0)
			return -1;
		if (line.len == 0)
			return 0;
		if (x->n == HTTP1_MAX_HEADERS)
			return fail(x, 431, "too many header fields");
		if (parse_field_line(x, line, &x->headers[x->n]) < 0 ||
		    on_field(x, &x->headers[x->n]) < 0)
			return -1;
		x->n++;
	}
}

/**
 * check_te() - Transfer-Encoding rules shared by both directions
 * @x:		context (te_n > 0)
 * @minor:	HTTP minor version
 *
 * Return: 0 when chunked is the one and final coding (others may precede
 * it), -1 otherwise.
 */
static int check_te(struct head_ctx *x, int minor)
{
	if (minor == 0)
		return fail(x, 400, "Transfer-Encoding in HTTP/1.0");
	if (x->cl_n)
		return fail(x, 400, "both Content-Length and Transfer-Encoding");
	if (!x->te_last_chunked)
		return fail(x, 400, "chunked is not the final transfer coding");
	if (x->te_chunked != 1)
		return fail(x, 400, "chunked applied more than once");
	return 0;
}

/**
 * keep_alive() - persistence per version and Connection options
 * @x:		context
 * @minor:	HTTP minor version
 *
 * Return: true when the connection may carry another message.
 */
static bool keep_alive(const struct head_ctx *x, int minor)
{
	if (x->conn_close)
		return false;
	return minor == 1 || x->conn_keep_alive;
}

/**
 * upgrade_kind() - the protocol switch a message asks for
 * @x:	context
 *
 * Return: NONE unless Connection lists upgrade and Upgrade lists something;
 * WEBSOCKET only for exactly one protocol, "websocket".
 */
static enum http1_upgrade upgrade_kind(const struct head_ctx *x)
{
	if (!x->conn_upgrade || x->upgrade_n == 0)
		return HTTP1_UPGRADE_NONE;
	if (x->upgrade_n == 1 && x->upgrade_ws)
		return HTTP1_UPGRADE_WEBSOCKET;
	return HTTP1_UPGRADE_OTHER;
}

/**
 * finish_request() - Host rules and the framing decision
 * @x:		context
 * @req:	request
 *
 * Return: 0 or -1.
 */
static int finish_request(struct head_ctx *x, struct http1_request *req)
{
	req->has_host = x->host_n > 0;
	if (req->minor == 1 && !req->has_host)
		return fail(x, 400, "missing Host");
	if (req->form == HTTP1_TARGET_ABSOLUTE) {
		if (req->has_host && !eq_ci(req->authority, x->host))
			return fail(x, 400, "Host does not match the request-target");
	} else if (req->has_host) {
		req->authority = x->host;
	}
	if (x->te_n) {
		if (check_te(x, req->minor) < 0)
			return -1;
		if (x->te_other)
			return fail(x, 501, "unsupported transfer coding");
		req->body = HTTP1_BODY_CHUNKED;
	} else if (x->cl) {
		req->body = HTTP1_BODY_LENGTH;
		req->content_length = x->cl;
	}
	if (x->expect_other)
		return fail(x, 417, "unsupported expectation");
	req->expect_continue = x->expect_continue && req->minor == 1;
	req->keep_alive = keep_alive(x, req->minor);
	req->upgrade = upgrade_kind(x);
	return 0;
}

/**
 * finish_response() - the RFC 9112 6.3 framing decision
 * @x:		context
 * @res:	response
 * @req_method:	method of the request this answers
 *
 * Return: 0 or -1.
 */
static int finish_response(struct head_ctx *x, struct http1_response *res,
			   enum http1_method req_method)
{
	if (x->te_n) {
		if (check_te(x, res->minor) < 0)
			return -1;
		if (x->te_other)
			return fail(x, 502, "unsupported transfer coding");
	}
	res->keep_alive = keep_alive(x, res->minor);
	res->upgrade = upgrade_kind(x);
	if (res->status < 200 || res->status == 204 || res->status == 304 ||
	    req_method == HTTP1_METHOD_HEAD)
		return 0;
	if (x->te_n) {
		res->body = HTTP1_BODY_CHUNKED;
	} else if (x->cl_n) {
		res->body = x->cl ? HTTP1_BODY_LENGTH : HTTP1_BODY_NONE;
		res->content_length = x->cl;
	} else {
		res->body = HTTP1_BODY_CLOSE;
		res->keep_alive = false;
	}
	return 0;
}

/**
 * ctx_init() - start a parse
 * @x:		context
 * @headers:	field array to fill
 * @request:	parsing a request
 */
static void ctx_init(struct head_ctx *x, struct http1_header *headers,
		     bool request)
{
	memset(x, 0, sizeof(*x));
	x->headers = headers;
	x->request = request;
}

/**
 * request_reset() - clear every result field of @req
 * @req:	request
 */
static void request_reset(struct http1_request *req)
{
	const struct http1_slice none = { "", 0 };

	req->nheaders = req->head_len = 0;
	req->method = req->target = req->authority = req->path = none;
	req->content_length = 0;
	req->err = NULL;
	req->error_status = 0;
	req->meth = HTTP1_METHOD_OTHER;
	req->form = HTTP1_TARGET_ORIGIN;
	req->minor = 1;
	req->body = HTTP1_BODY_NONE;
	req->upgrade = HTTP1_UPGRADE_NONE;
	req->scheme_https = req->keep_alive = false;
	req->expect_continue = req->has_host = false;
}

/**
 * http1_parse_request() - parse a request head from the guest
 * @buf:	bytes received so far
 * @len:	length of @buf
 * @last_len:	@len at the previous call that returned 0, else 0
 * @req:	result
 *
 * Return: 1 done (req->head_len bytes), 0 need more, -1 malformed
 * (req->err, req->error_status).
 */
int http1_parse_request(const char *buf, size_t len, size_t last_len,
			struct http1_request *req)
{
	struct http1_slice line;
	struct head_ctx x;
	size_t head_len = 0, pos = 0;
	int rc;

	request_reset(req);
	ctx_init(&x, req->headers, true);
	rc = scan_head(&x, buf, len, last_len, &head_len);
	if (rc == 1 && (next_line(&x, buf, head_len, &pos, &line) < 0 ||
			parse_request_line(&x, line, req) < 0 ||
			parse_fields(&x, buf, head_len, pos) < 0 ||
			finish_request(&x, req) < 0))
		rc = -1;
	req->nheaders = x.n;
	if (rc < 0) {
		req->err = x.err;
		req->error_status = x.status;
		return -1;
	}
	req->head_len = head_len;
	return rc;
}

/**
 * response_reset() - clear every result field of @res
 * @res:	response
 */
static void response_reset(struct http1_response *res)
{
	res->nheaders = res->head_len = 0;
	res->reason = (struct http1_slice){ "", 0 };
	res->content_length = 0;
	res->err = NULL;
	res->error_status = 0;
	res->status = 0;
	res->minor = 1;
	res->body = HTTP1_BODY_NONE;
	res->upgrade = HTTP1_UPGRADE_NONE;
	res->keep_alive = false;
}

/**
 * http1_parse_response() - parse a response head from an upstream server
 * @buf:	bytes received so far
 * @len:	length of @buf
 * @last_len:	@len at the previous call that returned 0, else 0
 * @req_method:	method of the request being answered (HEAD has no body)
 * @res:	result
 *
 * Return: 1 done, 0 need more, -1 malformed (res->error_status is 502).
 */
int http1_parse_response(const char *buf, size_t len, size_t last_len,
			 enum http1_method req_method,
			 struct http1_response *res)
{
	struct http1_slice line;
	struct head_ctx x;
	size_t head_len = 0, pos = 0;
	int rc;

	response_reset(res);
	ctx_init(&x, res->headers, false);
	rc = scan_head(&x, buf, len, last_len, &head_len);
	if (rc == 1 && (next_line(&x, buf, head_len, &pos, &line) < 0 ||
			parse_status_line(&x, line, res) < 0 ||
			parse_fields(&x, buf, head_len, pos) < 0 ||
			finish_response(&x, res, req_method) < 0))
		rc = -1;
	res->nheaders = x.n;
	if (rc < 0) {
		res->err = x.err;
		res->error_status = HTTP1_RESPONSE_ERROR;
		return -1;
	}
	res->head_len = head_len;
	return rc;
}

/*
 * Head writers.
 */

/**
 * struct out - bounded writer; only used once the total is known to fit
 * @p:	next byte
 */
struct out {
	char *p;
};

/**
 * put() - append bytes
 * @o:	writer
 * @s:	bytes
 * @n:	count
 */
static void put(struct out *o, const char *s, size_t n)
{
	memcpy(o->p, s, n);
	o->p += n;
}

/**
 * add() - overflow-checked size sum, with 0 standing for "invalid"
 * @a:	running total (0 = already invalid)
 * @b:	addend
 *
 * Return: a + b, or 0 on overflow or when @a was 0.
 */
static size_t add(size_t a, size_t b)
{
	return a == 0 || b > SIZE_MAX - a ? 0 : a + b;
}

/**
 * fields_size() - add the bytes of "name: value\r\n" lines to @need
 * @need:	size so far (0 = invalid)
 * @h:		fields
 * @n:		count
 *
 * Return: the new total including the final CRLF, or 0 if a field is
 * invalid.
 */
static size_t fields_size(size_t need, const struct http1_header *h, size_t n)
{
	size_t i, j;

	for (i = 0; i < n && need; i++) {
		if (!http1_is_token(h[i].name))
			return 0;
		for (j = 0; j < h[i].value.len; j++)
			if (!http1_is_value_char((unsigned char)h[i].value.p[j]))
				return 0;
		need = add(add(add(need, h[i].name.len), h[i].value.len), 4);
	}
	return add(need, 2);
}

/**
 * put_fields() - write the field lines and the final CRLF
 * @o:	writer
 * @h:	fields (validated by fields_size())
 * @n:	count
 */
static void put_fields(struct out *o, const struct http1_header *h, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		put(o, h[i].name.p, h[i].name.len);
		put(o, ": ", 2);
		put(o, h[i].value.p, h[i].value.len);
		put(o, "\r\n", 2);
	}
	put(o, "\r\n", 2);
}

/**
 * http1_write_request_head() - serialize a request head
 * @out:	destination (may be NULL when @cap is 0)
 * @cap:	room at @out
 * @method:	method token
 * @target:	request-target, bytes 0x21..0x7e
 * @minor:	0 or 1
 * @headers:	fields, written in order as "name: value"
 * @n:		number of fields
 *
 * Return: bytes needed (written only if <= @cap), 0 for invalid input.
 */
size_t http1_write_request_head(char *out, size_t cap,
				struct http1_slice method,
				struct http1_slice target, int minor,
				const struct http1_header *headers, size_t n)
{
	struct out o = { out };
	size_t i, need;

	if (!http1_is_token(method) || target.len == 0 || (minor != 0 && minor != 1))
		return 0;
	for (i = 0; i < target.len; i++)
		if ((unsigned char)target.p[i] <= 0x20 || (unsigned char)target.p[i] >= 0x7f)
			return 0;
	need = add(add(method.len, target.len), 2 + HTTP1_VERSION_LEN + 2);
	need = fields_size(need, headers, n);
	if (need == 0 || need > cap)
		return need;
	put(&o, method.p, method.len);
	put(&o, " ", 1);
	put(&o, target.p, target.len);
	put(&o, minor ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n", HTTP1_VERSION_LEN + 3);
	put_fields(&o, headers, n);
	return need;
}

/**
 * http1_write_response_head() - serialize a response head
 * @out:	destination (may be NULL when @cap is 0)
 * @cap:	room at @out
 * @minor:	0 or 1
 * @status:	100..599
 * @reason:	reason phrase, value characters only (may be empty)
 * @headers:	fields
 * @n:		number of fields
 *
 * Return: bytes needed (written only if <= @cap), 0 for invalid input.
 */
size_t http1_write_response_head(char *out, size_t cap, int minor,
				 int status, struct http1_slice reason,
				 const struct http1_header *headers, size_t n)
{
	char code[4] = { (char)('0' + status / 100 % 10),
			 (char)('0' + status / 10 % 10),
			 (char)('0' + status % 10), ' ' };
	struct out o = { out };
	size_t i, need;

	if (status < 100 || status > 599 || (minor != 0 && minor != 1))
		return 0;
	for (i = 0; i < reason.len; i++)
		if (!http1_is_value_char((unsigned char)reason.p[i]))
			return 0;
	need = add(HTTP1_VERSION_LEN + 1 + 4 + 2, reason.len);
	need = fields_size(need, headers, n);
	if (need == 0 || need > cap)
		return need;
	put(&o, minor ? "HTTP/1.1 " : "HTTP/1.0 ", HTTP1_VERSION_LEN + 1);
	put(&o, code, 4);
	put(&o, reason.p, reason.len);
	put(&o, "\r\n", 2);
	put_fields(&o, headers, n);
	return need;
}
