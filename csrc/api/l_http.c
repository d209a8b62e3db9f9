/* SPDX-License-Identifier: MIT */
/* l_http.c - Lua test binding for the HTTP/1.x parser, writers and chunked codec
 *
 * These functions expose csrc/http/ to the specs; the mediation layer calls
 * the parser from C. Parse failures return nil, message, status (requests:
 * the status to answer with; responses: 502); an incomplete head returns
 * nil, "need more".
 */

#include "api/api.h"
#include "http/chunked.h"
#include "http/http1.h"

#define HTTP_DEFAULT_MAX_CHUNK	(16 * 1024 * 1024)

static const char *const body_names[] = { "none", "length", "chunked", "close" };
static const char *const form_names[] = { "origin", "absolute", "asterisk" };

/**
 * push_slice() - push a slice as a Lua string
 * @L:	Lua state
 * @s:	slice
 */
static void push_slice(lua_State *L, struct http1_slice s)
{
	lua_pushlstring(L, s.len ? s.p : "", s.len);
}

/**
 * set_slice() - t[key] = slice, for the table on top
 * @L:		Lua state
 * @key:	field name
 * @s:		slice
 */
static void set_slice(lua_State *L, const char *key, struct http1_slice s)
{
	push_slice(L, s);
	lua_setfield(L, -2, key);
}

/**
 * api_push_headers() - push fields as a list { {name, value}, ... }
 * @L:		Lua state
 * @h:		fields
 * @n:		their number
 */
void api_push_headers(lua_State *L, const struct http1_header *h, size_t n)
{
	size_t i;

	lua_createtable(L, (int)n, 0);
	for (i = 0; i < n; i++) {
		lua_createtable(L, 2, 0);
		push_slice(L, h[i].name);
		lua_rawseti(L, -2, 1);
		push_slice(L, h[i].value);
		lua_rawseti(L, -2, 2);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
}

/**
 * set_common() - fields shared by requests and responses
 * @L:		Lua state, result table on top
 * @h:		fields
 * @n:		count
 * @minor:	HTTP minor version
 * @head_len:	head bytes
 * @up:		upgrade kind
 * @keep_alive:	persistence
 */
static void set_common(lua_State *L, const struct http1_header *h, size_t n,
		       int minor, size_t head_len, enum http1_upgrade up,
		       bool keep_alive)
{
	api_push_headers(L, h, n);
	lua_setfield(L, -2, "headers");
	lua_pushstring(L, minor ? "HTTP/1.1" : "HTTP/1.0");
	lua_setfield(L, -2, "version");
	lua_pushinteger(L, (lua_Integer)head_len);
	lua_setfield(L, -2, "head_len");
	if (up == HTTP1_UPGRADE_NONE)
		lua_pushboolean(L, 0);
	else
		lua_pushstring(L, up == HTTP1_UPGRADE_WEBSOCKET ? "websocket" : "other");
	lua_setfield(L, -2, "upgrade");
	lua_pushboolean(L, keep_alive);
	lua_setfield(L, -2, "keep_alive");
}

/**
 * set_body() - body, chunked, content_length fields
 * @L:		Lua state, result table on top
 * @body:	framing decision
 * @cl:		content length
 */
static void set_body(lua_State *L, enum http1_body body, uint64_t cl)
{
	lua_pushstring(L, body_names[body]);
	lua_setfield(L, -2, "body");
	lua_pushboolean(L, body == HTTP1_BODY_CHUNKED);
	lua_setfield(L, -2, "chunked");
	lua_pushboolean(L, body != HTTP1_BODY_NONE);
	lua_setfield(L, -2, "has_body");
	if (body == HTTP1_BODY_NONE || body == HTTP1_BODY_LENGTH) {
		lua_pushinteger(L, (lua_Integer)cl);
		lua_setfield(L, -2, "content_length");
	}
}

/**
 * check_last_len() - optional last_len argument
 * @L:		Lua state
 * @arg:	argument index
 * @len:	buffer length
 *
 * Return: the value, 0 when absent.
 */
static size_t check_last_len(lua_State *L, int arg, size_t len)
{
	lua_Integer v = luaL_optinteger(L, arg, 0);

	luaL_argcheck(L, v >= 0 && (lua_Unsigned)v <= len, arg, "out of range");
	return (size_t)v;
}

/**
 * lhttp_fail() - the two failure shapes of the parsers
 * @L:		Lua state
 * @rc:		parser result (0 or -1)
 * @err:	message
 * @status:	HTTP status
 *
 * Return: number of results.
 */
static int lhttp_fail(lua_State *L, int rc, const char *err, int status)
{
	luaL_pushfail(L);
	if (rc == 0) {
		lua_pushliteral(L, "need more");
		return 2;
	}
	lua_pushstring(L, err);
	lua_pushinteger(L, status);
	return 3;
}

/* core.http_parse_request(s [, last_len]) -> table | nil, "need more" | nil, msg, status */
static int lhttp_parse_request(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	size_t last = check_last_len(L, 2, len);
	struct http1_request req;
	int rc = http1_parse_request(s, len, last, &req);

	if (rc <= 0)
		return lhttp_fail(L, rc, req.err, req.error_status);
	lua_createtable(L, 0, 20);
	set_common(L, req.headers, req.nheaders, req.minor, req.head_len,
		   req.upgrade, req.keep_alive);
	set_body(L, req.body, req.content_length);
	set_slice(L, "method", req.method);
	set_slice(L, "target", req.target);
	set_slice(L, "authority", req.authority);
	set_slice(L, "path", req.path);
	lua_pushstring(L, form_names[req.form]);
	lua_setfield(L, -2, "form");
	lua_pushboolean(L, req.scheme_https);
	lua_setfield(L, -2, "https");
	lua_pushboolean(L, req.expect_continue);
	lua_setfield(L, -2, "expect_continue");
	return 1;
}

/* core.http_parse_response(s, request_method [, last_len]) -> table | nil, ... */
static int lhttp_parse_response(lua_State *L)
{
	size_t len, mlen;
	const char *s = luaL_checklstring(L, 1, &len);
	const char *m = luaL_checklstring(L, 2, &mlen);
	size_t last = check_last_len(L, 3, len);
	struct http1_response res;
	int rc = http1_parse_response(s, len, last, http1_method_lookup(m, mlen), &res);

	if (rc <= 0)
		return lhttp_fail(L, rc, res.err, res.error_status);
	lua_createtable(L, 0, 12);
	set_common(L, res.headers, res.nheaders, res.minor, res.head_len,
		   res.upgrade, res.keep_alive);
	set_body(L, res.body, res.content_length);
	lua_pushinteger(L, res.status);
	lua_setfield(L, -2, "status");
	set_slice(L, "reason", res.reason);
	return 1;
}

/**
 * decode_piece() - run the decoder over one piece of input
 * @d:		decoder
 * @b:		output buffer
 * @p:		piece
 * @n:		length
 * @used:	bytes consumed out
 *
 * Return: chunked_decode()'s last result.
 */
static int decode_piece(struct chunked_decoder *d, luaL_Buffer *b,
			const char *p, size_t n, size_t *used)
{
	const char *data;
	size_t u, dlen;
	int rc = 0;

	*used = 0;
	while (*used < n && rc == 0) {
		rc = chunked_decode(d, p + *used, n - *used, &u, &data, &dlen);
		luaL_addlstring(b, data ? data : "", dlen);
		*used += u;
	}
	return rc;
}

/*
 * core.http_chunked_decode(s [, max_chunk [, cuts]]) -> data, consumed, done
 * | nil, msg, "malformed". cuts is a list of increasing offsets at which s is
 * split into the pieces fed to one decoder (default: one piece).
 */
static int lhttp_chunked_decode(lua_State *L)
{
	size_t len, pos = 0, end, used;
	const char *s = luaL_checklstring(L, 1, &len);
	lua_Integer max = luaL_optinteger(L, 2, HTTP_DEFAULT_MAX_CHUNK);
	struct chunked_decoder d;
	lua_Integer i = 1, cut;
	luaL_Buffer b;
	int rc = 0;

	luaL_argcheck(L, max >= 0, 2, "negative");
	if (!lua_isnoneornil(L, 3))
		luaL_checktype(L, 3, LUA_TTABLE);
	chunked_decoder_init(&d, (uint64_t)max);
	luaL_buffinit(L, &b);
	while (rc == 0 && pos < len) {
		end = len;
		if (lua_istable(L, 3) && lua_rawgeti(L, 3, i++) == LUA_TNUMBER) {
			cut = lua_tointeger(L, -1);
			end = cut > (lua_Integer)pos && (lua_Unsigned)cut < len ? (size_t)cut : len;
		}
		if (lua_istable(L, 3))
			lua_pop(L, 1);
		rc = decode_piece(&d, &b, s + pos, end - pos, &used);
		pos += used;
	}
	if (rc < 0)
		return api_fail(L, d.err, "malformed");
	luaL_pushresult(&b);
	lua_pushinteger(L, (lua_Integer)pos);
	lua_pushboolean(L, rc == 1);
	return 3;
}

/* core.http_chunked_encode(s) -> one chunk, or the last chunk for "" */
static int lhttp_chunked_encode(lua_State *L)
{
	size_t len, need;
	const char *s = luaL_checklstring(L, 1, &len);
	luaL_Buffer b;
	char *out;

	need = chunked_encode(NULL, 0, s, len);
	luaL_argcheck(L, need > 0, 1, "too large");
	out = luaL_buffinitsize(L, &b, need);
	chunked_encode(out, need, s, len);
	luaL_pushresultsize(&b, need);
	return 1;
}

/**
 * check_headers() - a Lua list of {name, value} pairs
 * @L:		Lua state
 * @arg:	argument index
 * @h:		HTTP1_MAX_HEADERS entries out
 *
 * Return: number of fields; the strings stay anchored by the argument.
 */
static size_t check_headers(lua_State *L, int arg, struct http1_header *h)
{
	size_t n = 0;

	luaL_checktype(L, arg, LUA_TTABLE);
	luaL_argcheck(L, lua_rawlen(L, arg) <= HTTP1_MAX_HEADERS, arg, "too many fields");
	for (n = 0; n < lua_rawlen(L, arg); n++) {
		luaL_argcheck(L, lua_rawgeti(L, arg, (lua_Integer)n + 1) == LUA_TTABLE,
			      arg, "fields are {name, value} pairs");
		lua_rawgeti(L, -1, 1);
		lua_rawgeti(L, -2, 2);
		luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING &&
			      lua_type(L, -2) == LUA_TSTRING, arg,
			      "fields are {name, value} pairs");
		h[n].name.p = lua_tolstring(L, -2, &h[n].name.len);
		h[n].value.p = lua_tolstring(L, -1, &h[n].value.len);
		lua_pop(L, 3);
	}
	return n;
}

/**
 * head_space() - room for a head whose size a writer reported
 * @L:		Lua state
 * @b:		buffer to initialise
 * @need:	size from the writer's sizing run (0: invalid input)
 *
 * Return: @need bytes of buffer space, or NULL when @need is 0.
 */
static char *head_space(lua_State *L, luaL_Buffer *b, size_t need)
{
	return need ? luaL_buffinitsize(L, b, need) : NULL;
}

/* core.http_write_request(method, target, headers [, minor]) -> head | nil, msg, "invalid" */
static int lhttp_write_request(lua_State *L)
{
	struct http1_header h[HTTP1_MAX_HEADERS];
	struct http1_slice m, t;
	size_t n, need;
	luaL_Buffer b;
	char *out;
	int minor;

	m.p = luaL_checklstring(L, 1, &m.len);
	t.p = luaL_checklstring(L, 2, &t.len);
	n = check_headers(L, 3, h);
	minor = (int)luaL_optinteger(L, 4, 1);
	need = http1_write_request_head(NULL, 0, m, t, minor, h, n);
	out = head_space(L, &b, need);
	if (!out)
		return api_fail(L, "invalid head", "invalid");
	http1_write_request_head(out, need, m, t, minor, h, n);
	luaL_pushresultsize(&b, need);
	return 1;
}

/* core.http_write_response(status, reason, headers [, minor]) -> head | nil, msg, "invalid" */
static int lhttp_write_response(lua_State *L)
{
	struct http1_header h[HTTP1_MAX_HEADERS];
	int status = (int)luaL_checkinteger(L, 1);
	struct http1_slice r;
	size_t n, need;
	luaL_Buffer b;
	char *out;
	int minor;

	r.p = luaL_checklstring(L, 2, &r.len);
	n = check_headers(L, 3, h);
	minor = (int)luaL_optinteger(L, 4, 1);
	need = http1_write_response_head(NULL, 0, minor, status, r, h, n);
	out = head_space(L, &b, need);
	if (!out)
		return api_fail(L, "invalid head", "invalid");
	http1_write_response_head(out, need, minor, status, r, h, n);
	luaL_pushresultsize(&b, need);
	return 1;
}

/* core.http_is_hop_by_hop(name, headers) -> bool */
static int lhttp_is_hop_by_hop(lua_State *L)
{
	struct http1_header h[HTTP1_MAX_HEADERS];
	struct http1_slice name;
	size_t n;

	name.p = luaL_checklstring(L, 1, &name.len);
	n = check_headers(L, 2, h);
	lua_pushboolean(L, http1_is_hop_by_hop(name, h, n));
	return 1;
}

static const luaL_Reg http_funcs[] = {
	{ "http_parse_request",		lhttp_parse_request },
	{ "http_parse_response",	lhttp_parse_response },
	{ "http_chunked_decode",	lhttp_chunked_decode },
	{ "http_chunked_encode",	lhttp_chunked_encode },
	{ "http_write_request",		lhttp_write_request },
	{ "http_write_response",	lhttp_write_response },
	{ "http_is_hop_by_hop",		lhttp_is_hop_by_hop },
	{ NULL, NULL }
};

/**
 * api_open_http() - add the http_* functions to the core table on top
 * @L:	Lua state
 */
void api_open_http(lua_State *L)
{
	luaL_setfuncs(L, http_funcs, 0);
}
