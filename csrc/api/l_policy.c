/* SPDX-License-Identifier: MIT */
/* l_policy.c - Lua bindings for host patterns, IP literals and secrets
 *
 * Test and tooling surface for csrc/policy/ (the compiled policy itself is
 * bound elsewhere):
 *   core.hostpat_compile(list [, "exceptions"]) -> hostpat (raises on a bad
 *     pattern, naming it); hp:match(host [, port]) -> index, pattern | nil
 *     (nil, msg, "invalid" for an invalid host); hp:blocked(host, port
 *     [, addr]) -> range | nil; hp:patterns() -> list; #hp.
 *   core.host_parse(s) -> "name"|"ipv4"|"ipv6", normalised | nil, msg, "invalid"
 *   core.ip_parse(s) -> 4|6, canonical | nil, msg, "invalid"
 *   core.ip_blocked(s) -> range name | nil (raises when s is no IP literal)
 *   core.secret_placeholder(name, random24) -> placeholder
 *   core.secret_substitute(value, host, secrets [, port]) -> value, count
 *   core.basic_auth_substitute(value, host, secrets [, port]) -> value, count
 *   core.secret_target_substitute(target, host, secrets [, port]) -> target, count
 *     all three: nil, "blocked", secret_name when a secret may not go to host
 *   core.secret_mask(s, secrets) -> masked, count
 *   core.secret_masker(secrets) -> m; m:feed(chunk) -> out; m:finish() -> out;
 *     m:count() -> values masked
 *   core.secret_filler(secrets, host [, port]) -> m, resizes; the same
 *     methods, placeholders to values; feed/finish return nil, "blocked",
 *     secret_name once a placeholder that may not go to host was met
 * A secrets list is { { name=, value=, placeholder=, hosts={...}, query=,
 * body= }, ... }.
 * Ports default to 0, which only patterns without a port match.
 */

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "api/api.h"
#include "policy/hostpat.h"
#include "policy/ipaddr.h"
#include "policy/secrets.h"

#define HOSTPAT_MT	"gondolin.hostpat"
#define SECRETS_MT	"gondolin.secrets"
#define STREAM_MT	"gondolin.secret_stream"
#define SUBST_OUT_MAX	(64 * 1024)	/* a header value after substitution */
#define MASK_CHUNK	(16 * 1024)

/**
 * struct lsecrets - secrets built from a Lua list, freed by __gc
 * @n:		entries initialised (each needs secret_free())
 * @sec:	entries
 */
struct lsecrets {
	size_t n;
	struct secret sec[];
};

/**
 * check_port() - optional port argument, 0..65535
 * @L: Lua state
 * @idx: argument index
 *
 * Return: the port (0 when absent).
 */
static unsigned check_port(lua_State *L, int idx)
{
	lua_Integer port = luaL_optinteger(L, idx, 0);

	luaL_argcheck(L, port >= 0 && port <= 65535, idx, "port out of range");
	return (unsigned)port;
}

/**
 * check_host() - a host argument, normalised; raises when invalid
 * @L: Lua state
 * @idx: argument index
 * @h: host out
 */
static void check_host(lua_State *L, int idx, struct hostpat_host *h)
{
	const char *err = NULL;
	size_t len;
	const char *s = luaL_checklstring(L, idx, &len);

	if (hostpat_host_parse(s, len, h, &err) < 0)
		luaL_argerror(L, idx, lua_pushfstring(L, "invalid host: %s", err));
}

/* hp:__gc() */
static int lhostpat_gc(lua_State *L)
{
	hostpat_set_free(luaL_checkudata(L, 1, HOSTPAT_MT));
	return 0;
}

/* #hp -> number of patterns */
static int lhostpat_len(lua_State *L)
{
	struct hostpat_set *s = luaL_checkudata(L, 1, HOSTPAT_MT);

	lua_pushinteger(L, (lua_Integer)s->n);
	return 1;
}

/**
 * push_pattern() - push the normalised text of pattern @i of @s
 * @L: Lua state
 * @s: set
 * @i: index
 */
static void push_pattern(lua_State *L, const struct hostpat_set *s, size_t i)
{
	char buf[HOSTPAT_TEXT_MAX + 1];
	int len = hostpat_format(&s->pat[i], buf, sizeof(buf));

	lua_pushlstring(L, buf, len < 0 ? 0 : (size_t)len);
}

/* hp:patterns() -> { normalised pattern, ... } */
static int lhostpat_patterns(lua_State *L)
{
	struct hostpat_set *s = luaL_checkudata(L, 1, HOSTPAT_MT);
	size_t i;

	lua_createtable(L, (int)s->n, 0);
	for (i = 0; i < s->n; i++) {
		push_pattern(L, s, i);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	return 1;
}

/* hp:match(host [, port]) -> index, pattern | nil | nil, msg, "invalid" */
static int lhostpat_match(lua_State *L)
{
	struct hostpat_set *s = luaL_checkudata(L, 1, HOSTPAT_MT);
	size_t len;
	const char *host = luaL_checklstring(L, 2, &len), *err = NULL;
	unsigned port = check_port(L, 3);
	struct hostpat_host h;
	int i;

	if (hostpat_host_parse(host, len, &h, &err) < 0)
		return api_fail(L, err, "invalid");
	i = hostpat_set_match(s, &h, port);
	if (i < 0) {
		lua_pushnil(L);
		return 1;
	}
	lua_pushinteger(L, i + 1);
	push_pattern(L, s, (size_t)i);
	return 2;
}

/*
 * hp:blocked(host, port [, addr]) -> range | nil
 * hp is an "exceptions" set; addr defaults to host when host is a literal.
 */
static int lhostpat_blocked(lua_State *L)
{
	struct hostpat_set *s = luaL_checkudata(L, 1, HOSTPAT_MT);
	struct hostpat_host h;
	struct ipaddr a;
	unsigned port;
	const char *r, *as;
	size_t alen;

	check_host(L, 2, &h);
	port = check_port(L, 3);
	as = luaL_optlstring(L, 4, NULL, &alen);
	if (as && ipaddr_parse(as, alen, &a) < 0)
		return luaL_argerror(L, 4, "not an IP literal");
	if (!as && h.kind == HOSTPAT_NAME)
		return luaL_argerror(L, 4, "host is a name: pass the address it resolved to");
	r = hostpat_blocked(s, &h, port, as ? &a : &h.ip);
	if (r)
		lua_pushstring(L, r);
	else
		lua_pushnil(L);
	return 1;
}

/* core.hostpat_compile(list [, "exceptions"]) -> hp; raises on a bad pattern */
static int lpolicy_hostpat_compile(lua_State *L)
{
	static const char *const modes[] = { "allow", "exceptions", NULL };
	struct hostpat_set *s;
	const char *p, *err = "";
	lua_Integer i, n;
	int mode;
	size_t len;

	luaL_checktype(L, 1, LUA_TTABLE);
	mode = luaL_checkoption(L, 2, "allow", modes);
	n = luaL_len(L, 1);
	luaL_argcheck(L, n >= 0 && n <= HOSTPAT_MAX_PATTERNS, 1, "too many patterns");
	s = lua_newuserdatauv(L, sizeof(*s), 0);
	memset(s, 0, sizeof(*s));
	luaL_setmetatable(L, HOSTPAT_MT);
	if (hostpat_set_init(s, (size_t)n, mode ? HOSTPAT_F_EXCEPTIONS : 0) < 0)
		return luaL_error(L, "hostpat: out of memory");
	for (i = 1; i <= n; i++) {
		if (lua_rawgeti(L, 1, i) != LUA_TSTRING)
			return luaL_error(L, "hostpat: pattern %d is not a string", (int)i);
		p = lua_tolstring(L, -1, &len);
		if (hostpat_set_add(s, p, len, &err) < 0)
			return luaL_error(L, "hostpat: pattern %d (\"%s\"): %s", (int)i, p, err);
		lua_pop(L, 1);
	}
	return 1;
}

/* core.host_parse(s) -> kind, normalised | nil, msg, "invalid" */
static int lpolicy_host_parse(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len), *err = NULL;
	struct hostpat_host h;
	int kind = hostpat_host_parse(s, len, &h, &err);

	if (kind < 0)
		return api_fail(L, err, "invalid");
	lua_pushstring(L, kind == HOSTPAT_NAME ? "name" : kind == HOSTPAT_IPV4 ? "ipv4" : "ipv6");
	lua_pushlstring(L, h.name, h.len);
	return 2;
}

/* core.ip_parse(s) -> 4|6, canonical | nil, msg, "invalid" */
static int lpolicy_ip_parse(lua_State *L)
{
	char buf[IPADDR_STRLEN];
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	struct ipaddr a;
	int fam = ipaddr_parse(s, len, &a);

	if (fam < 0)
		return api_fail(L, "not an IP literal", "invalid");
	lua_pushinteger(L, fam);
	lua_pushstring(L, ipaddr_format(&a, buf, sizeof(buf)) < 0 ? "" : buf);
	return 2;
}

/* core.ip_blocked(s) -> range name | nil; raises when s is no IP literal */
static int lpolicy_ip_blocked(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len), *r;
	struct ipaddr a;

	if (ipaddr_parse(s, len, &a) < 0)
		return luaL_argerror(L, 1, "not an IP literal");
	r = ipaddr_blocked(&a);
	if (r)
		lua_pushstring(L, r);
	else
		lua_pushnil(L);
	return 1;
}

/* core.secret_placeholder(name, random) -> placeholder */
static int lpolicy_secret_placeholder(lua_State *L)
{
	char buf[SECRET_PLACEHOLDER_MAX + 1];
	size_t nlen, rlen;
	const char *name = luaL_checklstring(L, 1, &nlen);
	const char *rnd = luaL_checklstring(L, 2, &rlen);
	int len;

	luaL_argcheck(L, secret_name_valid(name, nlen), 1, "1..64 of [A-Za-z0-9_]");
	luaL_argcheck(L, rlen == SECRET_RANDOM_LEN, 2, "24 random bytes expected");
	len = secret_placeholder(name, nlen, (const uint8_t *)rnd, rlen, buf, sizeof(buf));
	if (len < 0)
		return luaL_error(L, "secret_placeholder: failed");
	lua_pushlstring(L, buf, (size_t)len);
	return 1;
}

/* secrets:__gc() */
static int lsecrets_gc(lua_State *L)
{
	struct lsecrets *ls = luaL_checkudata(L, 1, SECRETS_MT);

	while (ls->n > 0)
		secret_free(&ls->sec[--ls->n]);
	return 0;
}

/**
 * field_string() - a required string field of the table at @t
 * @L: Lua state
 * @t: absolute index of the table
 * @k: field name
 * @i: entry number (for messages)
 * @len: length out
 *
 * Return: the string (kept alive by the table).
 */
static const char *field_string(lua_State *L, int t, const char *k, int i,
				size_t *len)
{
	const char *s;

	if (lua_getfield(L, t, k) != LUA_TSTRING)
		luaL_error(L, "secret %d: %s must be a string", i, k);
	s = lua_tolstring(L, -1, len);
	lua_pop(L, 1);
	return s;
}

/**
 * secret_hosts() - compile the hosts list of the secret table at @t
 * @L: Lua state
 * @t: absolute index of the table
 * @i: entry number (for messages)
 * @s: secret, already initialised
 */
static void secret_hosts(lua_State *L, int t, int i, struct secret *s)
{
	const char *p, *err = "";
	lua_Integer k, n;
	size_t len;

	if (lua_getfield(L, t, "hosts") != LUA_TTABLE)
		luaL_error(L, "secret %d: hosts must be a list", i);
	n = luaL_len(L, -1);
	if (n < 0 || n > HOSTPAT_MAX_PATTERNS ||
	    hostpat_set_init(&s->hosts, (size_t)n, 0) < 0)
		luaL_error(L, "secret %d: too many hosts", i);
	for (k = 1; k <= n; k++) {
		if (lua_rawgeti(L, -1, k) != LUA_TSTRING)
			luaL_error(L, "secret %d: host %d is not a string", i, (int)k);
		p = lua_tolstring(L, -1, &len);
		if (hostpat_set_add(&s->hosts, p, len, &err) < 0)
			luaL_error(L, "secret %d: host \"%s\": %s", i, p, err);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

/**
 * api_secret_flags() - the query= and body= flags of the secret table at @t
 * @L: Lua state
 * @t: absolute index of the table
 * @query: in_query out
 * @body: in_body out
 */
void api_secret_flags(lua_State *L, int t, bool *query, bool *body)
{
	lua_getfield(L, t, "query");
	*query = lua_toboolean(L, -1);
	lua_getfield(L, t, "body");
	*body = lua_toboolean(L, -1);
	lua_pop(L, 2);
}

/**
 * check_secrets() - build secrets from the list at @idx
 * @L: Lua state
 * @idx: argument index
 *
 * Pushes a userdata that owns them (freed by __gc, also after an error).
 *
 * Return: the secrets.
 */
static struct lsecrets *check_secrets(lua_State *L, int idx)
{
	const char *name, *value, *ph, *err = "";
	size_t nlen, vlen, plen;
	struct lsecrets *ls;
	lua_Integer i, n;
	int t;

	luaL_checktype(L, idx, LUA_TTABLE);
	n = luaL_len(L, idx);
	luaL_argcheck(L, n >= 0 && n <= SECRET_MAX, idx, "at most 256 secrets");
	ls = lua_newuserdatauv(L, offsetof(struct lsecrets, sec) +
				  (size_t)n * sizeof(struct secret), 0);
	ls->n = 0;
	luaL_setmetatable(L, SECRETS_MT);
	for (i = 1; i <= n; i++) {
		if (lua_rawgeti(L, idx, i) != LUA_TTABLE)
			luaL_error(L, "secret %d must be a table", (int)i);
		t = lua_gettop(L);
		name = field_string(L, t, "name", (int)i, &nlen);
		value = field_string(L, t, "value", (int)i, &vlen);
		ph = field_string(L, t, "placeholder", (int)i, &plen);
		if (secret_init(&ls->sec[ls->n], name, nlen, value, vlen, ph, plen, &err) < 0)
			luaL_error(L, "secret %d: %s", (int)i, err);
		ls->n++;
		secret_hosts(L, t, (int)i, &ls->sec[ls->n - 1]);
		api_secret_flags(L, t, &ls->sec[ls->n - 1].in_query, &ls->sec[ls->n - 1].in_body);
		lua_pop(L, 1);
	}
	return ls;
}

/**
 * push_subst() - push the result of a substitution
 * @L: Lua state
 * @ls: secrets
 * @rc: substitution result
 * @which: the blocking secret's index when @rc is -EACCES
 * @out: output
 * @len: its length
 *
 * Return: values pushed.
 */
static int push_subst(lua_State *L, const struct lsecrets *ls, int rc, int which,
		      const char *out, size_t len)
{
	if (rc == -EACCES) {
		luaL_pushfail(L);
		lua_pushliteral(L, "blocked");
		lua_pushstring(L, ls->sec[which].name);
		return 3;
	}
	if (rc < 0)
		return api_fail(L, "result too large", "truncated");
	lua_pushlstring(L, out, len);
	lua_pushinteger(L, rc);
	return 2;
}

/* What subst() calls. */
enum { SUBST_HEADER, SUBST_BASIC, SUBST_TARGET };

/**
 * subst() - shared body of the three substitution bindings
 * @L: Lua state: value, host, secrets [, port]
 * @kind: SUBST_HEADER, SUBST_BASIC or SUBST_TARGET
 *
 * Return: values pushed.
 */
static int subst(lua_State *L, int kind)
{
	size_t len, outlen = 0;
	const char *in = luaL_checklstring(L, 1, &len);
	struct hostpat_host h;
	struct lsecrets *ls;
	unsigned port;
	int rc, which = -1;
	char *out;

	check_host(L, 2, &h);
	port = check_port(L, 4);
	ls = check_secrets(L, 3);
	out = lua_newuserdatauv(L, SUBST_OUT_MAX, 0);
	if (kind == SUBST_BASIC)
		rc = secret_basic_substitute(ls->sec, ls->n, &h, port, in, len,
					     out, SUBST_OUT_MAX, &outlen, &which);
	else if (kind == SUBST_TARGET)
		rc = secret_target_substitute(ls->sec, ls->n, &h, port, in, len,
					      out, SUBST_OUT_MAX, &outlen, &which);
	else
		rc = secret_substitute(ls->sec, ls->n, &h, port, in, len,
				       out, SUBST_OUT_MAX, &outlen, &which);
	return push_subst(L, ls, rc, which, out, outlen);
}

/* core.secret_substitute(value, host, secrets [, port]) */
static int lpolicy_secret_substitute(lua_State *L)
{
	return subst(L, SUBST_HEADER);
}

/* core.basic_auth_substitute(value, host, secrets [, port]) */
static int lpolicy_basic_auth_substitute(lua_State *L)
{
	return subst(L, SUBST_BASIC);
}

/* core.secret_target_substitute(target, host, secrets [, port]) */
static int lpolicy_secret_target_substitute(lua_State *L)
{
	return subst(L, SUBST_TARGET);
}

/* core.secret_mask(s, secrets) -> masked, count */
static int lpolicy_secret_mask(lua_State *L)
{
	size_t len, outlen = 0, cap, minv = SECRET_VALUE_MAX, k;
	const char *in = luaL_checklstring(L, 1, &len);
	struct lsecrets *ls = check_secrets(L, 2);
	void *out;
	int rc;

	luaL_argcheck(L, len <= 1024 * 1024, 1, "at most 1 MiB");
	for (k = 0; k < ls->n; k++)
		if (ls->sec[k].value_len < minv)
			minv = ls->sec[k].value_len;
	/* each masked value of >= minv bytes becomes a placeholder */
	cap = len + len / minv * SECRET_PLACEHOLDER_MAX + 1;
	out = lua_newuserdatauv(L, cap, 0);
	rc = secret_mask(ls->sec, ls->n, in, len, out, cap, &outlen);
	if (rc < 0)
		return api_fail(L, "result too large", "truncated");
	lua_pushlstring(L, out, outlen);
	lua_pushinteger(L, rc);
	return 2;
}

/* core.secret_masker(secrets) -> masker (keeps the secrets in a user value) */
static int lpolicy_secret_masker(lua_State *L)
{
	struct lsecrets *ls = check_secrets(L, 1);
	struct secret_stream *m;

	m = lua_newuserdatauv(L, sizeof(*m), 1);
	secret_masker_init(m, ls->sec, ls->n);
	luaL_setmetatable(L, STREAM_MT);
	lua_pushvalue(L, -2);
	lua_setiuservalue(L, -2, 1);
	return 1;
}

/* core.secret_filler(secrets, host [, port]) -> filler, resizes */
static int lpolicy_secret_filler(lua_State *L)
{
	unsigned port = check_port(L, 3);
	struct secret_stream *m;
	struct hostpat_host h;
	struct lsecrets *ls;
	bool resizes;

	check_host(L, 2, &h);
	ls = check_secrets(L, 1);
	m = lua_newuserdatauv(L, sizeof(*m), 1);
	resizes = secret_filler_init(m, ls->sec, ls->n, &h, port);
	luaL_setmetatable(L, STREAM_MT);
	lua_pushvalue(L, -2);
	lua_setiuservalue(L, -2, 1);
	lua_pushboolean(L, resizes);
	return 2;
}

/**
 * push_stream() - push a stream's output, or its denial
 * @L: Lua state (stream at 1, its buffer result on top)
 * @m: stream
 *
 * Return: values pushed.
 */
static int push_stream(lua_State *L, const struct secret_stream *m)
{
	if (m->denied < 0)
		return 1;
	luaL_pushfail(L);
	lua_pushliteral(L, "blocked");
	lua_pushstring(L, m->sec[m->denied].name);
	return 3;
}

/* m:feed(chunk) -> output so far */
static int lstream_feed(lua_State *L)
{
	struct secret_stream *m = luaL_checkudata(L, 1, STREAM_MT);
	size_t len, took, produced;
	const char *in = luaL_checklstring(L, 2, &len);
	luaL_Buffer b;
	char *p;

	luaL_buffinit(L, &b);
	while (len > 0) {
		p = luaL_prepbuffsize(&b, MASK_CHUNK);
		took = secret_stream_feed(m, in, len, p, MASK_CHUNK, &produced);
		luaL_addsize(&b, produced);
		if (m->denied >= 0)
			break;
		if (took == 0 && produced == 0)
			return luaL_error(L, "masker: no progress");
		in += took;
		len -= took;
	}
	luaL_pushresult(&b);
	return push_stream(L, m);
}

/* m:finish() -> the rest of the masked output */
static int lstream_finish(lua_State *L)
{
	struct secret_stream *m = luaL_checkudata(L, 1, STREAM_MT);
	size_t produced;
	luaL_Buffer b;
	char *p;
	int more;

	luaL_buffinit(L, &b);
	do {
		p = luaL_prepbuffsize(&b, MASK_CHUNK);
		more = secret_stream_finish(m, p, MASK_CHUNK, &produced);
		luaL_addsize(&b, produced);
	} while (more > 0);
	luaL_pushresult(&b);
	return push_stream(L, m);
}

/* m:count() -> values masked so far */
static int lstream_count(lua_State *L)
{
	struct secret_stream *m = luaL_checkudata(L, 1, STREAM_MT);

	lua_pushinteger(L, (lua_Integer)m->count);
	return 1;
}

static const luaL_Reg hostpat_methods[] = {
	{ "match",	lhostpat_match },
	{ "blocked",	lhostpat_blocked },
	{ "patterns",	lhostpat_patterns },
	{ NULL, NULL }
};

static const luaL_Reg hostpat_meta[] = {
	{ "__gc",	lhostpat_gc },
	{ "__len",	lhostpat_len },
	{ NULL, NULL }
};

static const luaL_Reg stream_methods[] = {
	{ "feed",	lstream_feed },
	{ "finish",	lstream_finish },
	{ "count",	lstream_count },
	{ NULL, NULL }
};

static const luaL_Reg policy_funcs[] = {
	{ "hostpat_compile",		lpolicy_hostpat_compile },
	{ "host_parse",			lpolicy_host_parse },
	{ "ip_parse",			lpolicy_ip_parse },
	{ "ip_blocked",			lpolicy_ip_blocked },
	{ "secret_placeholder",		lpolicy_secret_placeholder },
	{ "secret_substitute",		lpolicy_secret_substitute },
	{ "basic_auth_substitute",	lpolicy_basic_auth_substitute },
	{ "secret_target_substitute",	lpolicy_secret_target_substitute },
	{ "secret_filler",		lpolicy_secret_filler },
	{ "secret_mask",		lpolicy_secret_mask },
	{ "secret_masker",		lpolicy_secret_masker },
	{ NULL, NULL }
};

/**
 * api_open_policy() - add the policy functions to the core table on top
 * @L: Lua state
 */
void api_open_policy(lua_State *L)
{
	static const luaL_Reg secrets_meta[] = {
		{ "__gc", lsecrets_gc }, { NULL, NULL }
	};

	api_new_class(L, HOSTPAT_MT, hostpat_meta, hostpat_methods);
	api_new_class(L, SECRETS_MT, secrets_meta, NULL);
	api_new_class(L, STREAM_MT, NULL, stream_methods);
	luaL_setfuncs(L, policy_funcs, 0);
}
