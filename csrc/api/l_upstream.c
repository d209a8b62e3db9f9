/* SPDX-License-Identifier: MIT */
/* l_upstream.c - test binding of the upstream client (http/upstream.c), TCP and TLS
 *
 * Theory of Operation
 *
 * Specs drive the real upstream client and its pool against loopback
 * servers without a VM or the HTTP mediation:
 *
 *   core.upstream_client{ allow_internal = {"host:port", ...},
 *                         resolve = { name = "addr", ... },
 *                         upstream_ca = { pem, ... } } -> client
 *     a private policy (only range exceptions, resolve map and extra CAs)
 *     and one upstream pool
 *   client:fetch{ host =, port =, tls = bool, request = "bytes",
 *                 expect = n, on_done = function(data, err, info) }
 *     -> true | nil, msg, code (when nothing could start)
 *     opens (or reuses) a connection, writes the request (honouring
 *     upstream_writable() and the drain callback), collects what comes
 *     back until EOF, or until @expect bytes arrived: then the connection
 *     goes back to the pool. on_done runs once: data (nil on failure),
 *     the error text (connect/verify failures: the reason upstream.c
 *     reported), and { reused, resumed, tls, address, code }.
 *   client:stats() -> { handshakes, resumed, offered, failures, idle }
 *   client:close() -> true; closes fetches in flight (no callbacks)
 *
 * The client userdata holds its pool inline; each fetch in flight holds a
 * registry reference to it (so it cannot be collected while connections
 * point at its pool) and one to on_done; finish() is the single unref site
 * of both. Collected bytes are bounded by LUP_DATA_MAX.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "http/upstream.h"
#include "policy/policy.h"

#define UPCLIENT_MT	"gondolin.upstream_client"
#define LUP_DATA_MAX	(64 * 1024 * 1024)	/* bytes collected per fetch */
#define LUP_RBUF	(64 * 1024)
#define LUP_WHY_MAX	256

struct lup_fetch;

/**
 * struct lup_client - the userdata of core.upstream_client
 * @policy:	private policy (one reference), NULL once closed
 * @pool:	upstream pool
 * @L:		main thread (callbacks)
 * @fetches:	fetches in flight
 */
struct lup_client {
	struct policy *policy;
	struct upstream_pool pool;
	lua_State *L;
	struct lup_fetch *fetches;
};

/**
 * struct lup_fetch - one request in flight
 * @cl:		client
 * @u:		connection, NULL once released
 * @next, @pprev: client's list
 * @cb_ref:	registry ref of on_done
 * @cl_ref:	registry ref of the client userdata
 * @req:	request bytes (copy), @req_len of them, @req_off written
 * @data:	collected response, @len of @cap
 * @expect:	complete after this many bytes (0: at EOF)
 * @rbuf:	read buffer
 */
struct lup_fetch {
	struct lup_client *cl;
	struct upstream *u;
	struct lup_fetch *next, **pprev;
	int cb_ref, cl_ref;
	char *req;
	size_t req_len, req_off;
	char *data;
	size_t len, cap, expect;
	char rbuf[LUP_RBUF];
};

static const struct upstream_ops lup_ops;

/**
 * fetch_free() - unlink, drop the refs and free a fetch
 * @f:		fetch (its connection already released)
 * @L:		Lua state
 */
static void fetch_free(struct lup_fetch *f, lua_State *L)
{
	*f->pprev = f->next;
	if (f->next)
		f->next->pprev = f->pprev;
	luaL_unref(L, LUA_REGISTRYINDEX, f->cb_ref);
	luaL_unref(L, LUA_REGISTRYINDEX, f->cl_ref);
	free(f->req);
	free(f->data);
	free(f);
}

/**
 * finish() - end a fetch: release its connection, then call on_done
 * @f:		fetch
 * @ok:		pass the collected bytes (else nil)
 * @why:	error text, or NULL
 * @code:	error code (-errno or libuv), 0 on success
 * @reuse:	the connection may go back to the pool
 */
static void finish(struct lup_fetch *f, bool ok, const char *why, int code, bool reuse)
{
	lua_State *L = f->cl->L;
	bool reused = false, resumed = false, tls = false;
	char addr[IPADDR_STRLEN] = "";
	int base = lua_gettop(L);

	if (f->u) {
		reused = upstream_reused(f->u);
		resumed = upstream_tls_resumed(f->u);
		tls = upstream_is_tls(f->u);
		snprintf(addr, sizeof(addr), "%s", upstream_address(f->u));
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, f->cb_ref);
	if (ok)
		lua_pushlstring(L, f->data ? f->data : "", f->len);
	else
		lua_pushnil(L);
	if (why)
		lua_pushstring(L, why);	/* copied before the connection closes */
	else
		lua_pushnil(L);
	lua_createtable(L, 0, 5);
	lua_pushboolean(L, reused);
	lua_setfield(L, -2, "reused");
	lua_pushboolean(L, resumed);
	lua_setfield(L, -2, "resumed");
	lua_pushboolean(L, tls);
	lua_setfield(L, -2, "tls");
	lua_pushstring(L, addr);
	lua_setfield(L, -2, "address");
	api_set_int(L, "code", code);
	if (f->u)
		upstream_release(f->u, reuse);
	f->u = NULL;
	fetch_free(f, L);
	if (lua_pcall(L, 3, 0, 0) != LUA_OK)
		fprintf(stderr, "gondolin: upstream_fetch on_done: %s\n", lua_tostring(L, -1));
	lua_settop(L, base);
}

/**
 * write_more() - send what the connection takes of the request
 * @f:		fetch (connected)
 */
static void write_more(struct lup_fetch *f)
{
	size_t room, k;
	uv_buf_t b;
	int rc;

	while (f->req_off < f->req_len) {
		room = upstream_writable(f->u);
		if (room == 0)
			return;			/* the drain callback comes back */
		k = f->req_len - f->req_off;
		if (k > room)
			k = room;
		b = uv_buf_init(f->req + f->req_off, (unsigned)k);
		rc = upstream_write(f->u, &b, 1);
		if (rc < 0) {
			finish(f, false, uv_strerror(rc), rc, false);
			return;
		}
		f->req_off += k;
	}
}

/* ops.connected */
static void lup_connected(struct upstream *u, void *ud, int err, const char *why)
{
	struct lup_fetch *f = ud;

	(void)u;
	if (err < 0) {
		finish(f, false, why ? why : "connect failed", err, false);
		return;
	}
	upstream_read(f->u, true);
	write_more(f);
}

/* ops.alloc */
static uv_buf_t lup_alloc(struct upstream *u, void *ud)
{
	struct lup_fetch *f = ud;

	(void)u;
	return uv_buf_init(f->rbuf, sizeof(f->rbuf));
}

/**
 * append() - keep bytes that arrived
 * @f:		fetch
 * @n:		bytes at the start of @rbuf
 *
 * Return: 0, or -1 (over LUP_DATA_MAX or out of memory).
 */
static int append(struct lup_fetch *f, size_t n)
{
	size_t cap = f->cap ? f->cap : LUP_RBUF;
	char *p;

	if (f->len + n > LUP_DATA_MAX)
		return -1;
	while (cap < f->len + n)
		cap *= 2;
	if (cap != f->cap) {
		p = realloc(f->data, cap);
		if (!p)
			return -1;
		f->data = p;
		f->cap = cap;
	}
	memcpy(f->data + f->len, f->rbuf, n);
	f->len += n;
	return 0;
}

/* ops.read */
static void lup_read(struct upstream *u, void *ud, ssize_t n)
{
	struct lup_fetch *f = ud;

	(void)u;
	if (n == UV_EOF) {
		finish(f, true, NULL, 0, false);
		return;
	}
	if (n < 0) {
		finish(f, false, uv_strerror((int)n), (int)n, false);
		return;
	}
	if (append(f, (size_t)n) < 0) {
		finish(f, false, "response too large", -EFBIG, false);
		return;
	}
	if (f->expect && f->len >= f->expect)
		finish(f, true, NULL, 0, f->len == f->expect);
}

/* ops.drain */
static void lup_drain(struct upstream *u, void *ud)
{
	(void)u;
	write_more(ud);
}

static const struct upstream_ops lup_ops = {
	.connected = lup_connected,
	.alloc = lup_alloc,
	.read = lup_read,
	.drain = lup_drain,
};

/**
 * check_client() - the open client at @idx
 * @L:		Lua state
 * @idx:	stack index
 *
 * Return: it (raises when closed).
 */
static struct lup_client *check_client(lua_State *L, int idx)
{
	struct lup_client *cl = luaL_checkudata(L, idx, UPCLIENT_MT);

	luaL_argcheck(L, cl->policy != NULL, idx, "upstream client is closed");
	return cl;
}

/**
 * client_close() - close fetches in flight (no callbacks), the pool, the policy
 * @L:		Lua state
 * @cl:		client
 */
static void client_close(lua_State *L, struct lup_client *cl)
{
	struct lup_fetch *f;

	if (!cl->policy)
		return;
	while ((f = cl->fetches)) {
		if (f->u)
			upstream_close(f->u);
		f->u = NULL;
		fetch_free(f, L);
	}
	upstream_pool_close(&cl->pool);
	policy_unref(cl->policy);
	cl->policy = NULL;
}

/* client:close() -> true */
static int lup_close(lua_State *L)
{
	client_close(L, luaL_checkudata(L, 1, UPCLIENT_MT));
	lua_pushboolean(L, 1);
	return 1;
}

/* client:__gc() */
static int lup_gc(lua_State *L)
{
	client_close(L, luaL_checkudata(L, 1, UPCLIENT_MT));
	return 0;
}

/* client:stats() -> { handshakes, resumed, offered, failures, idle } */
static int lup_stats(lua_State *L)
{
	struct lup_client *cl = check_client(L, 1);
	struct tls_client_stats none = { 0 };
	const struct tls_client_stats *st = cl->pool.tls ?
		tls_client_conf_stats(cl->pool.tls) : &none;

	lua_createtable(L, 0, 5);
	api_set_int(L, "handshakes", (lua_Integer)st->handshakes);
	api_set_int(L, "resumed", (lua_Integer)st->resumed);
	api_set_int(L, "offered", (lua_Integer)st->offered);
	api_set_int(L, "failures", (lua_Integer)st->failures);
	api_set_int(L, "idle", (lua_Integer)cl->pool.nidle);
	return 1;
}

/**
 * opt_field() - push field @k of the table at @t, checking its type
 * @L:		Lua state
 * @t:		absolute index
 * @k:		field
 * @type:	expected Lua type
 *
 * Return: true when present (pushed), false when nil (nothing pushed).
 */
static bool opt_field(lua_State *L, int t, const char *k, int type)
{
	int got = lua_getfield(L, t, k);

	if (got == LUA_TNIL) {
		lua_pop(L, 1);
		return false;
	}
	if (got != type)
		luaL_error(L, "upstream: %s must be a %s", k, lua_typename(L, type));
	return true;
}

/**
 * build_policy() - the client's private policy from its options
 * @L:		Lua state
 * @t:		absolute index of the options
 * @cl:		client (its @policy is set first, so __gc frees it on error)
 */
static void build_policy(lua_State *L, int t, struct lup_client *cl)
{
	size_t i, n, nint = 0, nres = 0, len, alen;
	const char *s, *a, *err = "invalid";

	if (opt_field(L, t, "allow_internal", LUA_TTABLE)) {
		nint = (size_t)lua_rawlen(L, -1);
		lua_pop(L, 1);
	}
	if (opt_field(L, t, "resolve", LUA_TTABLE)) {
		for (lua_pushnil(L); lua_next(L, -2); lua_pop(L, 1))
			nres++;
		lua_pop(L, 1);
	}
	cl->policy = policy_new(0, nint, nres, 0, &err);
	if (!cl->policy)
		luaL_error(L, "upstream: %s", err);
	if (opt_field(L, t, "allow_internal", LUA_TTABLE)) {
		for (i = 1; i <= nint; i++) {
			lua_rawgeti(L, -1, (lua_Integer)i);
			s = luaL_checklstring(L, -1, &len);
			if (policy_add_internal(cl->policy, s, len, &err) < 0)
				luaL_error(L, "upstream: allow_internal '%s': %s", s, err);
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
	}
	if (opt_field(L, t, "resolve", LUA_TTABLE)) {
		for (lua_pushnil(L); lua_next(L, -2); lua_pop(L, 1)) {
			s = luaL_checklstring(L, -2, &len);
			a = luaL_checklstring(L, -1, &alen);
			if (policy_add_resolve(cl->policy, s, len, a, alen, &err) < 0)
				luaL_error(L, "upstream: resolve '%s': %s", s, err);
		}
		lua_pop(L, 1);
	}
	if (opt_field(L, t, "upstream_ca", LUA_TTABLE)) {
		n = (size_t)lua_rawlen(L, -1);
		for (i = 1; i <= n; i++) {
			lua_rawgeti(L, -1, (lua_Integer)i);
			s = luaL_checklstring(L, -1, &len);
			if (policy_add_upstream_ca(cl->policy, s, len, &err) < 0)
				luaL_error(L, "upstream: upstream_ca: %s", err);
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
	}
}

/* core.upstream_client(opts) -> client */
static int lup_new(lua_State *L)
{
	struct lup_client *cl;

	luaL_checktype(L, 1, LUA_TTABLE);
	cl = lua_newuserdatauv(L, sizeof(*cl), 0);
	memset(cl, 0, sizeof(*cl));
	luaL_setmetatable(L, UPCLIENT_MT);
	lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
	cl->L = lua_tothread(L, -1);
	lua_pop(L, 1);
	build_policy(L, 1, cl);
	upstream_pool_init(&cl->pool, api_loop(L), cl->policy);
	return 1;
}

/**
 * new_fetch() - a fetch from the options at 2 (client at 1)
 * @L:		Lua state
 * @cl:		client
 *
 * Return: the fetch, linked, refs taken.
 */
static struct lup_fetch *new_fetch(lua_State *L, struct lup_client *cl)
{
	struct lup_fetch *f;
	const char *req;
	lua_Integer expect;
	size_t len;

	lua_getfield(L, 2, "request");
	req = luaL_checklstring(L, -1, &len);
	lua_getfield(L, 2, "expect");
	expect = luaL_optinteger(L, -1, 0);
	luaL_argcheck(L, expect >= 0 && expect <= LUP_DATA_MAX, 2, "expect out of range");
	lua_getfield(L, 2, "on_done");
	luaL_checktype(L, -1, LUA_TFUNCTION);
	f = calloc(1, sizeof(*f));
	if (f)
		f->req = malloc(len ? len : 1);
	if (!f || !f->req) {
		free(f);
		luaL_error(L, "upstream: out of memory");
		return NULL;
	}
	memcpy(f->req, req, len);
	f->req_len = len;
	f->expect = (size_t)expect;
	f->cl = cl;
	f->cb_ref = luaL_ref(L, LUA_REGISTRYINDEX);	/* on_done */
	lua_pushvalue(L, 1);
	f->cl_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_pop(L, 2);
	f->next = cl->fetches;
	f->pprev = &cl->fetches;
	if (cl->fetches)
		cl->fetches->pprev = &f->next;
	cl->fetches = f;
	return f;
}

/* client:fetch{ host=, port=, tls=, request=, expect=, on_done= } -> true | fail */
static int lup_fetch(lua_State *L)
{
	struct lup_client *cl = check_client(L, 1);
	const char *host, *why = NULL, *perr = NULL;
	struct hostpat_host h;
	struct lup_fetch *f;
	lua_Integer port;
	int err = 0;
	size_t hlen;
	bool tls;

	luaL_checktype(L, 2, LUA_TTABLE);
	lua_getfield(L, 2, "host");
	host = luaL_checklstring(L, -1, &hlen);
	if (hostpat_host_parse(host, hlen, &h, &perr) < 0)
		return luaL_error(L, "upstream: host '%s': %s", host, perr);
	lua_getfield(L, 2, "port");
	port = luaL_checkinteger(L, -1);
	luaL_argcheck(L, port >= 1 && port <= 65535, 2, "port out of range");
	lua_getfield(L, 2, "tls");
	tls = lua_toboolean(L, -1);
	lua_pop(L, 3);
	f = new_fetch(L, cl);
	f->u = upstream_open(&cl->pool, &h, (unsigned)port, tls, &lup_ops, f, &err, &why);
	if (!f->u) {
		lua_pushstring(L, why ? why : "cannot connect");
		fetch_free(f, L);
		luaL_pushfail(L);
		lua_insert(L, -2);
		lua_pushstring(L, err == -EACCES ? "denied" : "failed");
		return 3;
	}
	if (upstream_connected(f->u)) {		/* pooled: go on at once */
		upstream_read(f->u, true);
		write_more(f);
	}
	lua_pushboolean(L, 1);
	return 1;
}

static const luaL_Reg client_methods[] = {
	{ "fetch",	lup_fetch },
	{ "stats",	lup_stats },
	{ "close",	lup_close },
	{ NULL, NULL }
};

static const luaL_Reg client_meta[] = {
	{ "__gc",	lup_gc },
	{ "__close",	lup_gc },
	{ NULL, NULL }
};

/**
 * api_open_upstream() - register core.upstream_client
 * @L:		Lua state, the core table on top
 */
void api_open_upstream(lua_State *L)
{
	api_new_class(L, UPCLIENT_MT, client_meta, client_methods);
	lua_pushcfunction(L, lup_new);
	lua_setfield(L, -2, "upstream_client");
}
