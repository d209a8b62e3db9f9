/* SPDX-License-Identifier: MIT */
/* l_hook.c - compiled policies (core.policy_compile) and the calls that run hooks
 *
 * Theory of Operation
 *
 * core.policy_compile(spec) turns the table lua/gondolin/policy.lua has
 * validated into one struct policy (csrc/policy/policy.c), held by a
 * "gondolin.policy" userdata whose user value 1 is the hook runner, a Lua
 * function(kind, call, req, res) that starts the user's hook in a task
 * (gondolin.sched) and returns at once.
 *
 * A hook call: when a flow reaches a hook, l_netif.c asks lhook_start()
 * to run it. We make a "gondolin.hook_call" userdata naming the flow,
 * anchor it in the registry for as long as the flow waits on it (the
 * only luaL_ref here; its one unref is detach()), attach it to the flow
 * (proxy_set_user), and call the runner with plain tables describing the
 * request (and response). The hook's task finishes by calling exactly one
 * of call:forward / call:respond / call:response / call:fail, which copy
 * the result into the flow (proxy_hook_*) and detach; the flow goes on
 * from the top of the loop. The flow stays paused meanwhile, however long
 * the hook waits (it may yield: gondolin.sleep, waiting calls).
 *
 * call:body(cb) asks the flow to buffer the body (bounded by
 * PROXY_HOOK_BODY_MAX); cb (user value 1 of the call) runs once with the
 * body, or with nil and a reason. If the flow dies first (guest reset, VM
 * closed), lhook_cancel() detaches the call and runs a pending cb with
 * nil, "closed", so no hook waits forever; later completions return
 * nil, "closed".
 *
 * Every call into Lua here is protected; errors are reported on stderr
 * and the flow fails closed.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/l_hook.h"
#include "http/http1.h"
#include "policy/policy.h"
#include "tls/client.h"

#define POLICY_MT	"gondolin.policy"
#define CALL_MT		"gondolin.hook_call"

enum { PUV_RUNNER = 1, PUV_COUNT = PUV_RUNNER };
enum { CUV_BODY = 1, CUV_COUNT = CUV_BODY };

/**
 * struct lpolicy - the userdata of a compiled policy
 * @p:		the policy (one reference)
 * @on_request, @on_response: which hooks exist
 */
struct lpolicy {
	struct policy *p;
	bool on_request, on_response;
};

/**
 * struct hook_call - one hook waiting to finish
 * @px:		the flow, NULL once detached
 * @ref:	registry anchor of this userdata while attached
 * @response:	an on_response call
 */
struct hook_call {
	struct proxy *px;
	int ref;
	bool response;
};

/* ---- compiling ---- */

/**
 * list_len() - length of an optional list field of @t
 * @L:		Lua state
 * @t:		absolute index of the spec
 * @k:		field
 *
 * Return: its length (0 when absent).
 */
static size_t list_len(lua_State *L, int t, const char *k)
{
	size_t n = 0;

	if (lua_getfield(L, t, k) == LUA_TTABLE)
		n = (size_t)lua_rawlen(L, -1);
	lua_pop(L, 1);
	return n;
}

/**
 * add_patterns() - compile a list of patterns with @add
 * @L:		Lua state
 * @t:		absolute index of the spec
 * @k:		field
 * @p:		policy being built
 * @add:	policy_add_allow or policy_add_internal
 */
static void add_patterns(lua_State *L, int t, const char *k, struct policy *p,
			 int (*add)(struct policy *, const char *, size_t, const char **))
{
	const char *s, *err = "invalid";
	size_t i, n, len;

	if (lua_getfield(L, t, k) != LUA_TTABLE) {
		lua_pop(L, 1);
		return;
	}
	n = (size_t)lua_rawlen(L, -1);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, -1, (lua_Integer)i);
		s = luaL_checklstring(L, -1, &len);
		if (add(p, s, len, &err) < 0)
			luaL_error(L, "%s[%d] '%s': %s", k, (int)i, s, err);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

/**
 * add_resolve() - compile the resolve map: { {name, {addr, ...}}, ... }
 * @L:		Lua state
 * @t:		absolute index of the spec
 * @p:		policy being built
 */
static void add_resolve(lua_State *L, int t, struct policy *p)
{
	const char *name, *addr, *err = "invalid";
	size_t i, j, n, m, nl, al;

	if (lua_getfield(L, t, "resolve") != LUA_TTABLE) {
		lua_pop(L, 1);
		return;
	}
	n = (size_t)lua_rawlen(L, -1);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, -1, (lua_Integer)i);
		lua_rawgeti(L, -1, 1);
		name = luaL_checklstring(L, -1, &nl);
		lua_rawgeti(L, -2, 2);
		luaL_checktype(L, -1, LUA_TTABLE);
		m = (size_t)lua_rawlen(L, -1);
		for (j = 1; j <= m; j++) {
			lua_rawgeti(L, -1, (lua_Integer)j);
			addr = luaL_checklstring(L, -1, &al);
			if (policy_add_resolve(p, name, nl, addr, al, &err) < 0)
				luaL_error(L, "resolve['%s'] '%s': %s", name, addr, err);
			lua_pop(L, 1);
		}
		lua_pop(L, 3);
	}
	lua_pop(L, 1);
}

/**
 * add_secrets() - compile { {name=, value=, hosts={...}, query=, body=}, ... }
 * @L:		Lua state
 * @t:		absolute index of the spec
 * @p:		policy being built
 */
static void add_secrets(lua_State *L, int t, struct policy *p)
{
	const char *name, *value, *host, *err = "invalid";
	size_t i, j, n, m, nl, vl, hl;
	bool query, body;

	if (lua_getfield(L, t, "secrets") != LUA_TTABLE) {
		lua_pop(L, 1);
		return;
	}
	n = (size_t)lua_rawlen(L, -1);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, -1, (lua_Integer)i);
		lua_getfield(L, -1, "name");
		name = luaL_checklstring(L, -1, &nl);
		lua_getfield(L, -2, "value");
		value = luaL_checklstring(L, -1, &vl);
		lua_getfield(L, -3, "hosts");
		luaL_checktype(L, -1, LUA_TTABLE);
		m = (size_t)lua_rawlen(L, -1);
		if (policy_add_secret(p, name, nl, value, vl, m, &err) < 0)
			luaL_error(L, "secrets.%s: %s", name, err);
		api_secret_flags(L, lua_absindex(L, -4), &query, &body);
		policy_secret_opt_in(p, query, body);
		for (j = 1; j <= m; j++) {
			lua_rawgeti(L, -1, (lua_Integer)j);
			host = luaL_checklstring(L, -1, &hl);
			if (policy_add_secret_host(p, host, hl, &err) < 0)
				luaL_error(L, "secrets.%s.hosts[%d] '%s': %s", name, (int)j, host, err);
			lua_pop(L, 1);
		}
		lua_pop(L, 4);
	}
	lua_pop(L, 1);
}

/**
 * add_upstream_ca() - read, check and keep the upstream_ca files
 * @L:		Lua state
 * @t:		absolute index of the spec
 * @p:		policy being built
 *
 * Raises "upstream_ca: <path>: <why>" for a file that cannot be read or
 * holds no valid certificate.
 */
static void add_upstream_ca(lua_State *L, int t, struct policy *p)
{
	char why[TLS_CLIENT_ERR_MAX];
	const char *path, *err = "";
	size_t i, n, len;
	char *pem;
	int rc;

	if (lua_getfield(L, t, "upstream_ca") != LUA_TTABLE) {
		lua_pop(L, 1);
		return;
	}
	n = (size_t)lua_rawlen(L, -1);
	if (n > POLICY_UPSTREAM_CA_MAX)
		luaL_error(L, "upstream_ca: at most %d files", POLICY_UPSTREAM_CA_MAX);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, -1, (lua_Integer)i);
		path = luaL_checkstring(L, -1);
		if (tls_client_ca_load(path, &pem, &len, why, sizeof(why)) < 0)
			luaL_error(L, "upstream_ca: %s: %s", path, why);
		rc = policy_add_upstream_ca(p, pem, len, &err);
		free(pem);
		if (rc < 0)
			luaL_error(L, "upstream_ca: %s", err);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

/*
 * core.policy_compile(spec) -> policy
 * spec = { allow = {pat...}, allow_internal = {"host:port"...},
 *          resolve = { {name, {addr...}}, ... },
 *          secrets = { {name=, value=, hosts={pat...}}, ... },
 *          upstream_ca = { path, ... },
 *          on_request = bool, on_response = bool, runner = function }
 * Raises with "<field>[i] '<text>': <why>" on a bad entry.
 */
static int lpolicy_compile(lua_State *L)
{
	struct lpolicy *lp;
	const char *err = NULL;
	int t = 1;

	luaL_checktype(L, t, LUA_TTABLE);
	lp = lua_newuserdatauv(L, sizeof(*lp), PUV_COUNT);
	memset(lp, 0, sizeof(*lp));
	luaL_setmetatable(L, POLICY_MT);
	lp->p = policy_new(list_len(L, t, "allow"), list_len(L, t, "allow_internal"),
			   list_len(L, t, "resolve"), list_len(L, t, "secrets"), &err);
	if (!lp->p)
		return luaL_error(L, "%s", err);
	add_patterns(L, t, "allow", lp->p, policy_add_allow);
	add_patterns(L, t, "allow_internal", lp->p, policy_add_internal);
	add_resolve(L, t, lp->p);
	add_secrets(L, t, lp->p);
	add_upstream_ca(L, t, lp->p);
	lua_getfield(L, t, "on_request");
	lp->on_request = lua_toboolean(L, -1);
	lua_getfield(L, t, "on_response");
	lp->on_response = lua_toboolean(L, -1);
	lua_pop(L, 2);
	lua_getfield(L, t, "runner");
	if (!lua_isnil(L, -1))
		luaL_checktype(L, -1, LUA_TFUNCTION);
	lua_setiuservalue(L, -2, PUV_RUNNER);
	return 1;
}

/**
 * check_policy() - the policy userdata at @idx
 * @L:		Lua state
 * @idx:	stack index
 *
 * Return: it (raises when it is not one).
 */
static struct lpolicy *check_policy(lua_State *L, int idx)
{
	return luaL_checkudata(L, idx, POLICY_MT);
}

/* policy:placeholders() -> { NAME = placeholder, ... } */
static int lpolicy_placeholders(lua_State *L)
{
	struct lpolicy *lp = check_policy(L, 1);
	size_t i;

	lua_createtable(L, 0, (int)lp->p->nsecrets);
	for (i = 0; i < lp->p->nsecrets; i++) {
		lua_pushlstring(L, lp->p->secrets[i].placeholder, lp->p->secrets[i].placeholder_len);
		lua_setfield(L, -2, lp->p->secrets[i].name);
	}
	return 1;
}

/* policy:__gc() */
static int lpolicy_gc(lua_State *L)
{
	struct lpolicy *lp = check_policy(L, 1);

	policy_unref(lp->p);
	lp->p = NULL;
	return 0;
}

/**
 * lhook_policy() - the compiled policy a netif should use
 * @L:		Lua state
 * @idx:	stack index of a policy userdata
 * @on_request:	out: an on_request hook exists
 * @on_response: out: an on_response hook exists
 *
 * Return: the policy (raises when @idx is not a live policy).
 */
struct policy *lhook_policy(lua_State *L, int idx, bool *on_request,
			    bool *on_response)
{
	struct lpolicy *lp = check_policy(L, idx);

	luaL_argcheck(L, lp->p != NULL, idx, "policy is freed");
	*on_request = lp->on_request;
	*on_response = lp->on_response;
	return lp->p;
}

/* ---- hook calls ---- */

/**
 * push_request() - the request as a plain table
 * @L:		Lua state
 * @rq:		request
 */
static void push_request(lua_State *L, const struct proxy_request *rq)
{
	lua_createtable(L, 0, 8);
	lua_pushlstring(L, rq->method.p, rq->method.len);
	lua_setfield(L, -2, "method");
	lua_pushlstring(L, rq->target.p, rq->target.len);
	lua_setfield(L, -2, "target");
	lua_pushlstring(L, rq->host.p, rq->host.len);
	lua_setfield(L, -2, "host");
	lua_pushinteger(L, rq->port);
	lua_setfield(L, -2, "port");
	lua_pushstring(L, rq->minor ? "HTTP/1.1" : "HTTP/1.0");
	lua_setfield(L, -2, "version");
	lua_pushboolean(L, rq->has_body);
	lua_setfield(L, -2, "has_body");
	lua_pushboolean(L, rq->websocket);
	lua_setfield(L, -2, "websocket");
	lua_pushstring(L, rq->tls ? "https" : "http");
	lua_setfield(L, -2, "scheme");
	api_push_headers(L, rq->headers, rq->nheaders);
	lua_setfield(L, -2, "headers");
}

/**
 * push_response() - the response head as a plain table
 * @L:		Lua state
 * @rs:		response
 */
static void push_response(lua_State *L, const struct proxy_response *rs)
{
	lua_createtable(L, 0, 4);
	lua_pushinteger(L, rs->status);
	lua_setfield(L, -2, "status");
	lua_pushlstring(L, rs->reason.p, rs->reason.len);
	lua_setfield(L, -2, "reason");
	lua_pushboolean(L, rs->has_body);
	lua_setfield(L, -2, "has_body");
	api_push_headers(L, rs->headers, rs->nheaders);
	lua_setfield(L, -2, "headers");
}

/**
 * detach() - the call and its flow part; the registry anchor goes
 * @L:		Lua state
 * @call:	call
 */
static void detach(lua_State *L, struct hook_call *call)
{
	if (call->px)
		proxy_set_user(call->px, NULL);
	call->px = NULL;
	luaL_unref(L, LUA_REGISTRYINDEX, call->ref);	/* the one unref */
	call->ref = LUA_NOREF;
}

/**
 * lhook_start() - run the policy's hook for a flow
 * @L:		main thread
 * @pidx:	stack index of the policy userdata
 * @px:		the flow (paused until the hook finishes)
 * @rq:		the request
 * @rs:		the response head (on_response), or NULL (on_request)
 *
 * Return: 0 when the hook runs (or already finished), -1 when it could
 * not start (the flow fails closed).
 */
int lhook_start(lua_State *L, int pidx, struct proxy *px,
		const struct proxy_request *rq, const struct proxy_response *rs)
{
	int top = lua_gettop(L);
	struct hook_call *call;

	pidx = lua_absindex(L, pidx);
	if (lua_getiuservalue(L, pidx, PUV_RUNNER) != LUA_TFUNCTION) {
		lua_settop(L, top);
		return -1;
	}
	lua_pushstring(L, rs ? "response" : "request");
	call = lua_newuserdatauv(L, sizeof(*call), CUV_COUNT);
	call->px = px;
	call->response = rs != NULL;
	luaL_setmetatable(L, CALL_MT);
	lua_pushvalue(L, -1);
	call->ref = luaL_ref(L, LUA_REGISTRYINDEX);	/* detach() unrefs */
	proxy_set_user(px, call);
	push_request(L, rq);
	if (rs)
		push_response(L, rs);
	else
		lua_pushnil(L);
	if (lua_pcall(L, 4, 0, 0) != LUA_OK) {
		fprintf(stderr, "gondolin: hook runner failed: %s\n", lua_tostring(L, -1));
		if (proxy_user(px) == call)
			detach(L, call);
		lua_settop(L, top);
		return -1;
	}
	lua_settop(L, top);
	return 0;
}

/**
 * take_body_cb() - push the call's pending body callback and clear it
 * @L:		Lua state
 * @call:	attached call
 *
 * Return: true when a callback was pushed.
 */
static bool take_body_cb(lua_State *L, struct hook_call *call)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, call->ref);
	if (lua_getiuservalue(L, -1, CUV_BODY) != LUA_TFUNCTION) {
		lua_pop(L, 2);
		return false;
	}
	lua_pushnil(L);
	lua_setiuservalue(L, -3, CUV_BODY);
	lua_remove(L, -2);
	return true;
}

/**
 * run_body_cb() - call the callback on top of the stack with 2 arguments
 * @L:		Lua state
 */
static void run_body_cb(lua_State *L)
{
	if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
		fprintf(stderr, "gondolin: hook body callback failed: %s\n", lua_tostring(L, -1));
		lua_pop(L, 1);
	}
}

/**
 * lhook_body() - a body the hook asked for is ready (or is not coming)
 * @L:		main thread
 * @px:		flow
 * @p:		body
 * @n:		its length
 * @err:	NULL, or why there is no body
 */
void lhook_body(lua_State *L, struct proxy *px, const char *p, size_t n,
		const char *err)
{
	struct hook_call *call = proxy_user(px);
	int top = lua_gettop(L);

	if (!call || !take_body_cb(L, call))
		return;
	if (err) {
		lua_pushnil(L);
		lua_pushstring(L, err);
	} else {
		lua_pushlstring(L, p ? p : "", n);
		lua_pushnil(L);
	}
	run_body_cb(L);
	lua_settop(L, top);
}

/**
 * lhook_cancel() - the flow is gone: detach its call, wake a body wait
 * @L:		main thread
 * @px:		flow
 */
void lhook_cancel(lua_State *L, struct proxy *px)
{
	struct hook_call *call = proxy_user(px);
	int top = lua_gettop(L);
	bool cb;

	if (!call)
		return;
	cb = take_body_cb(L, call);
	detach(L, call);
	if (cb) {
		lua_pushnil(L);
		lua_pushliteral(L, "closed");
		run_body_cb(L);
	}
	lua_settop(L, top);
}

/**
 * check_call() - the call userdata at @idx
 * @L:		Lua state
 * @idx:	stack index
 *
 * Return: it.
 */
static struct hook_call *check_call(lua_State *L, int idx)
{
	return luaL_checkudata(L, idx, CALL_MT);
}

/**
 * check_token() - raise unless @s is an HTTP token
 * @L:		Lua state
 * @what:	field name for the message
 * @s:		text
 * @n:		its length
 */
static void check_token(lua_State *L, const char *what, const char *s, size_t n)
{
	if (n == 0)
		luaL_error(L, "%s: empty", what);
	if (!http1_is_token((struct http1_slice){ s, n }))
		luaL_error(L, "%s '%s': not an HTTP token", what, s);
}

/**
 * check_value() - raise unless @s may be a field value
 * @L:		Lua state
 * @name:	field name for the message
 * @s:		text
 * @n:		its length
 */
static void check_value(lua_State *L, const char *name, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!http1_is_value_char((unsigned char)s[i]))
			luaL_error(L, "header '%s': value has a forbidden byte (CR, LF, NUL or control)",
				   name);
}

/**
 * get_headers() - read a list { {name, value}, ... } into @h
 * @L:		Lua state
 * @t:		absolute index of the list
 * @h:		fields out (HTTP1_MAX_HEADERS); slices into strings of @t
 *
 * Return: their number (raises on a bad entry).
 */
static size_t get_headers(lua_State *L, int t, struct http1_header *h)
{
	size_t i, n = (size_t)lua_rawlen(L, t), nl, vl;
	const char *nm, *v;

	if (n > HTTP1_MAX_HEADERS)
		luaL_error(L, "too many header fields (at most %d)", HTTP1_MAX_HEADERS);
	for (i = 0; i < n; i++) {
		lua_rawgeti(L, t, (lua_Integer)i + 1);
		luaL_checktype(L, -1, LUA_TTABLE);
		lua_rawgeti(L, -1, 1);
		lua_rawgeti(L, -2, 2);
		nm = luaL_checklstring(L, -2, &nl);
		v = luaL_checklstring(L, -1, &vl);
		check_token(L, "header name", nm, nl);
		check_value(L, nm, v, vl);
		h[i].name.p = nm;		/* kept alive by the list */
		h[i].name.len = nl;
		h[i].value.p = v;
		h[i].value.len = vl;
		lua_pop(L, 3);
	}
	return n;
}

/**
 * field_str() - a string field of table @t (raises when missing)
 * @L:		Lua state
 * @t:		absolute index
 * @k:		key
 * @len:	length out
 *
 * Return: the string (kept alive by @t).
 */
static const char *field_str(lua_State *L, int t, const char *k, size_t *len)
{
	const char *s;

	lua_getfield(L, t, k);
	s = lua_tolstring(L, -1, len);
	if (!s)
		luaL_error(L, "field '%s' must be a string", k);
	lua_pop(L, 1);
	return s;
}

/**
 * opt_body() - the optional body field of @t
 * @L:		Lua state
 * @t:		absolute index
 * @len:	length out
 * @set:	out: a body was given
 *
 * Return: the body or NULL.
 */
static const char *opt_body(lua_State *L, int t, size_t *len, bool *set)
{
	const char *s = NULL;

	*len = 0;
	lua_getfield(L, t, "body_set");
	*set = lua_toboolean(L, -1);
	lua_getfield(L, t, "body");
	if (*set && !lua_isnil(L, -1) && !(s = lua_tolstring(L, -1, len)))
		luaL_error(L, "body must be a string");
	lua_pop(L, 2);
	return s;
}

/**
 * done_result() - push the result of a completion
 * @L:		Lua state
 * @rc:		proxy_hook_*() result
 *
 * Return: number of results.
 */
static int done_result(lua_State *L, int rc)
{
	if (rc < 0)
		return api_fail(L, "the flow is no longer waiting for this hook", "closed");
	lua_pushboolean(L, 1);
	return 1;
}

/* call:forward{method=, target=, host=, port=, headers=, body=, body_set=} */
static int lcall_forward(lua_State *L)
{
	struct hook_call *call = check_call(L, 1);
	struct http1_header h[HTTP1_MAX_HEADERS];
	struct proxy_request rq;
	const char *body;
	size_t blen, i;
	bool set;
	int rc;

	luaL_checktype(L, 2, LUA_TTABLE);
	memset(&rq, 0, sizeof(rq));
	rq.method.p = field_str(L, 2, "method", &rq.method.len);
	check_token(L, "method", rq.method.p, rq.method.len);
	rq.target.p = field_str(L, 2, "target", &rq.target.len);
	if (rq.target.len == 0 || rq.target.p[0] != '/')
		luaL_error(L, "path must start with '/'");
	for (i = 0; i < rq.target.len; i++)
		if ((unsigned char)rq.target.p[i] <= 0x20 || (unsigned char)rq.target.p[i] >= 0x7f)
			luaL_error(L, "path and query must be 0x21..0x7e (percent-encode the rest)");
	rq.host.p = field_str(L, 2, "host", &rq.host.len);
	lua_getfield(L, 2, "port");
	rq.port = (unsigned)luaL_checkinteger(L, -1);
	lua_getfield(L, 2, "headers");
	luaL_checktype(L, -1, LUA_TTABLE);
	rq.nheaders = get_headers(L, lua_absindex(L, -1), h);
	rq.headers = h;
	body = opt_body(L, 2, &blen, &set);
	if (!call->px || call->response)
		return done_result(L, -EINVAL);
	rc = proxy_hook_forward(call->px, &rq, body, blen, set);
	lua_pop(L, 2);
	detach(L, call);
	return done_result(L, rc);
}

/* call:respond(deny, status, headers, body) */
static int lcall_respond(lua_State *L)
{
	struct hook_call *call = check_call(L, 1);
	struct http1_header h[HTTP1_MAX_HEADERS];
	bool deny = lua_toboolean(L, 2);
	lua_Integer status = luaL_checkinteger(L, 3);
	size_t n, blen = 0;
	const char *body;
	int rc;

	luaL_checktype(L, 4, LUA_TTABLE);
	body = luaL_optlstring(L, 5, "", &blen);
	luaL_argcheck(L, status >= 200 && status <= 599 && status != 204 && status != 304, 3,
		      "status must be 200..599 (not 204 or 304)");
	n = get_headers(L, 4, h);
	if (!call->px || call->response)
		return done_result(L, -EINVAL);
	rc = proxy_hook_respond(call->px, deny, (int)status, h, n, body, blen);
	detach(L, call);
	return done_result(L, rc);
}

/* call:response{status=, reason=, headers=, body=, body_set=} */
static int lcall_response(lua_State *L)
{
	struct hook_call *call = check_call(L, 1);
	struct http1_header h[HTTP1_MAX_HEADERS];
	struct proxy_response rs;
	const char *body;
	size_t blen;
	bool set;
	int rc;

	luaL_checktype(L, 2, LUA_TTABLE);
	memset(&rs, 0, sizeof(rs));
	lua_getfield(L, 2, "status");
	rs.status = (int)luaL_checkinteger(L, -1);
	if (rs.status < 200 || rs.status > 599)
		luaL_error(L, "status must be 200..599");
	rs.reason.p = field_str(L, 2, "reason", &rs.reason.len);
	check_value(L, "reason", rs.reason.p, rs.reason.len);
	lua_getfield(L, 2, "headers");
	luaL_checktype(L, -1, LUA_TTABLE);
	rs.nheaders = get_headers(L, lua_absindex(L, -1), h);
	rs.headers = h;
	body = opt_body(L, 2, &blen, &set);
	if (!call->px || !call->response)
		return done_result(L, -EINVAL);
	rc = proxy_hook_response(call->px, &rs, body, blen, set);
	lua_pop(L, 2);
	detach(L, call);
	return done_result(L, rc);
}

/* call:fail(message) */
static int lcall_fail(lua_State *L)
{
	struct hook_call *call = check_call(L, 1);
	const char *msg = luaL_optstring(L, 2, "hook failed");

	if (!call->px)
		return done_result(L, -EINVAL);
	proxy_hook_fail(call->px, msg);
	detach(L, call);
	return done_result(L, 0);
}

/* call:body(cb) -> true | nil, err, code; cb(body) or cb(nil, why) later */
static int lcall_body(lua_State *L)
{
	struct hook_call *call = check_call(L, 1);
	int rc;

	luaL_checktype(L, 2, LUA_TFUNCTION);
	if (!call->px)
		return api_fail(L, "the flow is closed", "closed");
	rc = proxy_hook_body(call->px);
	if (rc == -EBUSY)
		return api_fail(L, "the body is already being read", "busy");
	if (rc < 0)
		return api_fail(L, "the flow is not waiting for this hook", "closed");
	lua_pushvalue(L, 2);
	lua_setiuservalue(L, 1, CUV_BODY);
	lua_pushboolean(L, 1);
	return 1;
}

/* call:active() -> whether the flow still waits for this call */
static int lcall_active(lua_State *L)
{
	lua_pushboolean(L, check_call(L, 1)->px != NULL);
	return 1;
}

static const luaL_Reg policy_methods[] = {
	{ "placeholders",	lpolicy_placeholders },
	{ NULL, NULL }
};

static const luaL_Reg policy_meta[] = {
	{ "__gc",	lpolicy_gc },
	{ NULL, NULL }
};

static const luaL_Reg call_methods[] = {
	{ "forward",	lcall_forward },
	{ "respond",	lcall_respond },
	{ "response",	lcall_response },
	{ "fail",	lcall_fail },
	{ "body",	lcall_body },
	{ "active",	lcall_active },
	{ NULL, NULL }
};

/**
 * api_open_hook() - register core.policy_compile and the metatables
 * @L:		Lua state, the core table on top
 */
void api_open_hook(lua_State *L)
{
	api_new_class(L, POLICY_MT, policy_meta, policy_methods);
	api_new_class(L, CALL_MT, NULL, call_methods);
	lua_pushcfunction(L, lpolicy_compile);
	lua_setfield(L, -2, "policy_compile");
}
