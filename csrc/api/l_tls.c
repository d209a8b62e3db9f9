/* SPDX-License-Identifier: MIT */
/* l_tls.c - Lua binding: the interception CA, and TLS endpoints for tests */

/*
 * core.tls_ca(dir [, {leaf_max =, leaf_ttl_ms =}]) -> ca | nil, err, "ca"
 *   ca:pem(), ca:dir(), ca:leaf(name) -> pem | nil, err (through the cache),
 *   ca:issue(name [, days [, now_s]]) -> chain_pem, key_pem (fresh, not
 *   cached), ca:stats() -> {hits, misses, minted, evicted, size, mint_us},
 *   ca:close()
 * core.tls_ca_rotate(dir) -> true | nil, err, "ca"
 * core.tls_endpoint{role =, ca =, sni =, cert =, key =, alpn =,
 *                   min_version =, max_version =, session =}
 *   -> ep | nil, err, "tls"
 *   a TLS endpoint over memory, the caller moving the bytes:
 *   ep:feed(bytes) (ep:feed() for EOF), ep:output() -> bytes,
 *   ep:handshake() -> true | false (more bytes needed) | nil, err,
 *   ep:write(s) -> n, ep:read() -> s ("" none yet) | nil, "closed" | nil, err,
 *   ep:close_notify(), ep:info(), ep:session() -> bytes (a client's, to
 *   resume with option session) | nil, err, "tls", ep:close()
 *
 * Lifetime of a CA. C code that keeps a CA's leaf cache (a netif) gets it
 * from api_tls_cache() and must keep the userdata reachable, in a user
 * value of its own userdata, for as long as it uses the cache. Once lent
 * that way, ca:close() only closes the Lua side (methods raise, it cannot
 * be lent again); the CA and its cache are freed by __gc, which runs only
 * when no holder is left. A CA never lent is freed by close() at once.
 *
 * Endpoints own every buffer: at most EP_IN_MAX bytes fed and not yet
 * consumed, EP_OUT_MAX bytes of output not yet taken.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <mbedtls/error.h>
#include <mbedtls/pem.h>
#include <mbedtls/ssl.h>

#include "api/api.h"
#include "tls/ca.h"
#include "tls/leaf.h"

#define CA_MT		"gondolin.tls_ca"
#define EP_MT		"gondolin.tls_endpoint"
#define CA_LEAF_CEIL	65536		/* leaf_max allowed */
#define CA_DAYS_CEIL	3650		/* ca:issue() days allowed */
#define EP_IN_MAX	(1024 * 1024)	/* ciphertext fed and not yet taken */
#define EP_OUT_MAX	(4 * 1024 * 1024)
#define EP_ALPN_MAX	4		/* protocols offered */
#define EP_ALPN_LEN	32		/* bytes per protocol name, NUL included */
#define EP_SAN_MAX	32		/* peer_san entries reported */
#define EP_SESSION_MAX	8192		/* a saved session: peer cert + ticket */

/* the server role's suites: ECDHE, AEAD only, by the key's type */
static const int suites_ecdsa[] = {
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	0
};
static const int suites_rsa[] = {
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	0
};

/* ---- the CA ---- */

/**
 * struct lca - a CA userdata
 * @ca, @cache:	the CA and its leaves (valid while @live)
 * @open:	usable from Lua
 * @live:	@ca and @cache not yet freed
 * @lent:	api_tls_cache() gave @cache to C: only __gc frees it
 */
struct lca {
	struct tls_ca ca;
	struct tls_leaf_cache cache;
	bool open, live, lent;
};

static struct lca *check_ca(lua_State *L, int idx)
{
	struct lca *c = luaL_checkudata(L, idx, CA_MT);

	luaL_argcheck(L, c->open, idx, "CA is closed");
	return c;
}

/**
 * api_tls_cache() - the leaf cache of the CA userdata at @idx
 * @L:		Lua state
 * @idx:	index of an open core.tls_ca value (raises otherwise)
 *
 * The caller must keep the userdata reachable (a user value of its own
 * userdata) for as long as it uses the cache; from now on only __gc
 * frees it, so ca:close() cannot pull the cache from under the caller.
 *
 * Return: the cache, valid while the userdata is alive.
 */
struct tls_leaf_cache *api_tls_cache(lua_State *L, int idx)
{
	struct lca *c = check_ca(L, idx);

	c->lent = true;
	return &c->cache;
}

/* free the CA and its cache, once */
static void lca_release(struct lca *c)
{
	if (!c->live)
		return;
	c->live = false;
	tls_leaf_cache_free(&c->cache);
	tls_ca_close(&c->ca);
}

/* the options table of core.tls_ca, at index 2 */
static void lca_opts(lua_State *L, lua_Integer *max, lua_Integer *ttl)
{
	if (lua_isnoneornil(L, 2))
		return;
	luaL_checktype(L, 2, LUA_TTABLE);
	lua_getfield(L, 2, "leaf_max");
	*max = luaL_optinteger(L, -1, 0);
	lua_getfield(L, 2, "leaf_ttl_ms");
	*ttl = luaL_optinteger(L, -1, 0);
	lua_pop(L, 2);
	if (*max < 0 || *max > CA_LEAF_CEIL)
		luaL_error(L, "leaf_max must be 1 to %d (0: %d)", CA_LEAF_CEIL, TLS_LEAF_MAX);
	if (*ttl < 0)
		luaL_error(L, "leaf_ttl_ms must be positive (0: %d)", TLS_LEAF_TTL_MS);
}

/**
 * lca_new() - core.tls_ca(dir [, opts]): open (or make) the CA of @dir
 * @L:		Lua state
 *
 * Return: the CA userdata, or nil, err, "ca".
 */
static int lca_new(lua_State *L)
{
	const char *dir = luaL_checkstring(L, 1);
	lua_Integer max = 0, ttl = 0;
	struct lca *c;
	char err[1536];

	lca_opts(L, &max, &ttl);
	c = lua_newuserdatauv(L, sizeof(*c), 0);
	memset(c, 0, sizeof(*c));
	luaL_setmetatable(L, CA_MT);
	if (tls_ca_open(&c->ca, dir, err, sizeof(err)) < 0) {
		tls_ca_close(&c->ca);
		return api_fail(L, err, "ca");
	}
	if (tls_leaf_cache_init(&c->cache, &c->ca, (size_t)max, (uint64_t)ttl) < 0) {
		tls_ca_close(&c->ca);
		return luaL_error(L, "out of memory");
	}
	c->open = c->live = true;
	return 1;
}

/* ca:close(), __close: true; a CA lent to C is freed later, by __gc */
static int lca_close(lua_State *L)
{
	struct lca *c = luaL_checkudata(L, 1, CA_MT);

	c->open = false;
	if (!c->lent)
		lca_release(c);
	lua_pushboolean(L, 1);
	return 1;
}

static int lca_gc(lua_State *L)
{
	struct lca *c = luaL_checkudata(L, 1, CA_MT);

	c->open = false;
	lca_release(c);
	return 0;
}

static int lca_tostring(lua_State *L)
{
	struct lca *c = luaL_checkudata(L, 1, CA_MT);

	lua_pushfstring(L, CA_MT " (%s)", c->open ? c->ca.dir : "closed");
	return 1;
}

/* ca:pem() -> the CA certificate as PEM */
static int lca_pem(lua_State *L)
{
	struct lca *c = check_ca(L, 1);

	lua_pushlstring(L, c->ca.pem, c->ca.pem_len);
	return 1;
}

/* ca:dir() -> its directory */
static int lca_dir(lua_State *L)
{
	lua_pushstring(L, check_ca(L, 1)->ca.dir);
	return 1;
}

/* push @crt (one certificate) as PEM, or nil */
static void push_cert_pem(lua_State *L, const mbedtls_x509_crt *crt)
{
	unsigned char buf[TLS_PEM_MAX];
	size_t olen;

	if (mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n",
				     crt->raw.p, crt->raw.len, buf, sizeof(buf), &olen))
		lua_pushnil(L);
	else
		lua_pushstring(L, (const char *)buf);
}

/* ca:leaf(name) -> the cached leaf's certificate PEM | nil, err, "name" */
static int lca_leaf(lua_State *L)
{
	struct lca *c = check_ca(L, 1);
	const char *name = luaL_checkstring(L, 2);
	struct tls_leaf *l;
	char err[256];

	l = tls_leaf_get(&c->cache, name, uv_now(api_loop(L)), err, sizeof(err));
	if (!l)
		return api_fail(L, err, "name");
	push_cert_pem(L, &l->chain);
	tls_leaf_unref(l);
	return 1;
}

/* ca:issue(name [, days [, now_s]]) -> chain_pem, key_pem | nil, err, "name" */
static int lca_issue(lua_State *L)
{
	struct lca *c = check_ca(L, 1);
	const char *name = luaL_checkstring(L, 2);
	lua_Integer days = luaL_optinteger(L, 3, TLS_LEAF_DAYS);
	lua_Integer now = luaL_optinteger(L, 4, (lua_Integer)time(NULL));
	char cert[2 * TLS_PEM_MAX], key[TLS_PEM_MAX], err[256];

	luaL_argcheck(L, days > 0 && days <= CA_DAYS_CEIL, 3, "days must be 1 to 3650");
	luaL_argcheck(L, now > 0, 4, "now_s must be Unix seconds");
	if (tls_ca_issue_pem(&c->ca, name, (uint64_t)now, (unsigned)days, cert, sizeof(cert),
			     key, sizeof(key), err, sizeof(err)) < 0)
		return api_fail(L, err, "name");
	lua_pushstring(L, cert);
	lua_pushstring(L, key);
	return 2;
}

/* ca:stats() -> {hits, misses, minted, evicted, size, mint_us} */
static int lca_stats(lua_State *L)
{
	struct lca *c = check_ca(L, 1);

	lua_createtable(L, 0, 6);
	api_set_int(L, "hits", (lua_Integer)c->cache.hits);
	api_set_int(L, "misses", (lua_Integer)c->cache.misses);
	api_set_int(L, "minted", (lua_Integer)c->cache.minted);
	api_set_int(L, "evicted", (lua_Integer)c->cache.evicted);
	api_set_int(L, "size", (lua_Integer)c->cache.n);
	api_set_int(L, "mint_us", (lua_Integer)c->cache.mint_us);
	return 1;
}

/* core.tls_ca_rotate(dir) -> true | nil, err, "ca" */
static int lca_rotate(lua_State *L)
{
	char err[1536];

	if (tls_ca_rotate(luaL_checkstring(L, 1), err, sizeof(err)) < 0)
		return api_fail(L, err, "ca");
	lua_pushboolean(L, 1);
	return 1;
}

/* ---- endpoints over memory (tests, test servers) ---- */

/**
 * struct lep - a TLS endpoint whose transport is two buffers
 * @entropy, @drbg: its own random numbers
 * @conf, @ssl:	mbedTLS state
 * @trust:	CAs a client verifies against (option ca)
 * @own, @key:	the certificate chain and key presented (options cert, key)
 * @alpn:	NULL-terminated protocol list pointing into @alpn_buf
 * @in:		fed ciphertext, @in_off consumed of @in_len (EP_IN_MAX)
 * @out:	ciphertext to send, @out_len bytes (EP_OUT_MAX)
 * @open:	not yet closed; @done: handshake complete; @eof: peer gone
 */
struct lep {
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_ssl_config conf;
	mbedtls_ssl_context ssl;
	mbedtls_x509_crt trust, own;
	mbedtls_pk_context key;
	const char *alpn[EP_ALPN_MAX + 1];
	char alpn_buf[EP_ALPN_MAX][EP_ALPN_LEN];
	char *in, *out;
	size_t in_off, in_len, out_len;
	bool open, done, eof;
};

/* mbedTLS's read side: what was fed; WANT_READ when empty, 0 (EOF) after feed() */
static int ep_recv(void *arg, unsigned char *buf, size_t len)
{
	struct lep *e = arg;
	size_t n = e->in_len - e->in_off;

	if (!n)
		return e->eof ? 0 : MBEDTLS_ERR_SSL_WANT_READ;
	if (n > len)
		n = len;
	memcpy(buf, e->in + e->in_off, n);
	e->in_off += n;
	return (int)n;
}

/* mbedTLS's write side: append to the output; WANT_WRITE when full */
static int ep_send(void *arg, const unsigned char *buf, size_t len)
{
	struct lep *e = arg;

	if (len > EP_OUT_MAX - e->out_len)
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	memcpy(e->out + e->out_len, buf, len);
	e->out_len += len;
	return (int)len;
}

static void ep_free(struct lep *e)
{
	if (!e->open)
		return;
	e->open = false;
	mbedtls_ssl_free(&e->ssl);
	mbedtls_ssl_config_free(&e->conf);
	mbedtls_x509_crt_free(&e->trust);
	mbedtls_x509_crt_free(&e->own);
	mbedtls_pk_free(&e->key);
	mbedtls_ctr_drbg_free(&e->drbg);
	mbedtls_entropy_free(&e->entropy);
	free(e->in);
	free(e->out);
	e->in = e->out = NULL;
}

/* nil, "@what: <mbedTLS's text>", "tls" */
static int ep_fail(lua_State *L, const char *what, int ret)
{
	char buf[160];

	mbedtls_strerror(ret, buf, sizeof(buf));
	lua_pushfstring(L, "%s: %s", what, buf);
	return api_fail(L, lua_tostring(L, -1), "tls");
}

/**
 * opt_pem() - the PEM option @field, parsed into @crt or @pk
 * @L:		Lua state, options at index 1
 * @field:	option name
 * @crt, @pk:	one of them: where it goes
 *
 * Return: 1 absent, 0 parsed, or a negative mbedTLS error (a bundle with
 * any certificate that does not parse is an error, not a partial trust).
 */
static int opt_pem(lua_State *L, const char *field, mbedtls_x509_crt *crt, mbedtls_pk_context *pk)
{
	size_t len;
	const char *s;
	int ret;

	lua_getfield(L, 1, field);
	s = lua_tolstring(L, -1, &len);
	if (!s) {
		lua_pop(L, 1);
		return 1;
	}
	ret = crt ? mbedtls_x509_crt_parse(crt, (const unsigned char *)s, len + 1)
		  : mbedtls_pk_parse_key(pk, (const unsigned char *)s, len + 1, NULL, 0);
	lua_pop(L, 1);
	return ret > 0 ? MBEDTLS_ERR_X509_CERT_UNKNOWN_FORMAT : ret;
}

/* a version option: "1.0" .. "1.2" as mbedTLS's minor number; @def if absent */
static int opt_version(lua_State *L, const char *field, int def)
{
	static const char *const names[] = { "1.0", "1.1", "1.2" };
	const char *v;
	int i;

	lua_getfield(L, 1, field);
	v = lua_tostring(L, -1);
	lua_pop(L, 1);
	if (!v)
		return def;
	for (i = 0; i < 3; i++)
		if (!strcmp(v, names[i]))
			return MBEDTLS_SSL_MINOR_VERSION_1 + i;
	if (!strcmp(v, "1.3"))
		return luaL_error(L, "%s: TLS 1.3 is not in this mbedTLS (2.28)", field);
	return luaL_error(L, "%s must be \"1.0\", \"1.1\" or \"1.2\"", field);
}

/* option alpn = {"http/1.1", ...}: at most EP_ALPN_MAX names */
static int opt_alpn(lua_State *L, struct lep *e)
{
	const char *p;
	size_t len;
	int i;

	if (lua_getfield(L, 1, "alpn") != LUA_TTABLE) {
		lua_pop(L, 1);
		return 0;
	}
	luaL_argcheck(L, lua_rawlen(L, -1) <= EP_ALPN_MAX, 1, "alpn: at most 4 protocols");
	for (i = 0; i < EP_ALPN_MAX; i++) {
		lua_rawgeti(L, -1, i + 1);
		p = lua_tolstring(L, -1, &len);
		if (p) {
			luaL_argcheck(L, len > 0 && len < EP_ALPN_LEN, 1, "alpn: names are 1 to 31 bytes");
			memcpy(e->alpn_buf[i], p, len + 1);
			e->alpn[i] = e->alpn_buf[i];
		}
		lua_pop(L, 1);
		if (!p)
			break;
	}
	lua_pop(L, 1);
	return e->alpn[0] ? mbedtls_ssl_conf_alpn_protocols(&e->conf, e->alpn) : 0;
}

/**
 * ep_trust() - options ca (client: verification required), cert and key
 * @L:		Lua state, options at index 1
 * @e:		endpoint
 * @server:	its role
 * @what:	which option failed
 *
 * Return: 0 or a negative mbedTLS error.
 */
static int ep_trust(lua_State *L, struct lep *e, bool server, const char **what)
{
	int r;

	*what = "ca";
	r = opt_pem(L, "ca", &e->trust, NULL);
	if (r < 0)
		return r;
	mbedtls_ssl_conf_ca_chain(&e->conf, &e->trust, NULL);
	mbedtls_ssl_conf_authmode(&e->conf, r == 0 ? MBEDTLS_SSL_VERIFY_REQUIRED :
				  MBEDTLS_SSL_VERIFY_NONE);
	*what = "cert";
	r = opt_pem(L, "cert", &e->own, NULL);
	if (r == 1 && server)
		return luaL_error(L, "a server endpoint needs cert and key");
	if (r == 1)
		return 0;
	if (r < 0)
		return r;
	*what = "key";
	r = opt_pem(L, "key", NULL, &e->key);
	if (r)
		return r < 0 ? r : MBEDTLS_ERR_PK_KEY_INVALID_FORMAT;
	if (server)
		mbedtls_ssl_conf_ciphersuites(&e->conf, mbedtls_pk_get_type(&e->key) == MBEDTLS_PK_RSA ?
					      suites_rsa : suites_ecdsa);
	return mbedtls_ssl_conf_own_cert(&e->conf, &e->own, &e->key);
}

/* option session = ep:session() of an earlier client: offer to resume it */
static int opt_session(lua_State *L, struct lep *e)
{
	mbedtls_ssl_session sess;
	const char *p;
	size_t len;
	int ret;

	lua_getfield(L, 1, "session");
	p = lua_tolstring(L, -1, &len);
	if (!p && !lua_isnil(L, -1))
		return luaL_error(L, "session must be a string (from ep:session())");
	lua_pop(L, 1);
	if (!p)
		return 0;
	mbedtls_ssl_session_init(&sess);
	ret = mbedtls_ssl_session_load(&sess, (const unsigned char *)p, len);
	if (!ret)
		ret = mbedtls_ssl_set_session(&e->ssl, &sess);
	mbedtls_ssl_session_free(&sess);
	return ret;
}

/**
 * ep_setup() - configure @e from the options at index 1
 * @L:		Lua state
 * @e:		endpoint (contexts initialised)
 * @server:	its role
 * @what:	which step failed
 *
 * Return: 0 or a negative mbedTLS error.
 */
static int ep_setup(lua_State *L, struct lep *e, bool server, const char **what)
{
	static const char pers[] = "gondolin test endpoint";
	int ret, lo, hi;

	lo = opt_version(L, "min_version", MBEDTLS_SSL_MINOR_VERSION_3);
	hi = opt_version(L, "max_version", MBEDTLS_SSL_MINOR_VERSION_3);
	luaL_argcheck(L, lo <= hi, 1, "min_version above max_version");
	*what = "tls_endpoint";
	ret = mbedtls_ctr_drbg_seed(&e->drbg, mbedtls_entropy_func, &e->entropy,
				    (const unsigned char *)pers, sizeof(pers) - 1);
	if (!ret)
		ret = mbedtls_ssl_config_defaults(&e->conf, server ? MBEDTLS_SSL_IS_SERVER :
						  MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
						  MBEDTLS_SSL_PRESET_DEFAULT);
	if (ret)
		return ret;
	mbedtls_ssl_conf_rng(&e->conf, mbedtls_ctr_drbg_random, &e->drbg);
	mbedtls_ssl_conf_min_version(&e->conf, MBEDTLS_SSL_MAJOR_VERSION_3, lo);
	mbedtls_ssl_conf_max_version(&e->conf, MBEDTLS_SSL_MAJOR_VERSION_3, hi);
	mbedtls_ssl_conf_renegotiation(&e->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
	ret = ep_trust(L, e, server, what);
	if (!ret) {
		*what = "alpn";
		ret = opt_alpn(L, e);
	}
	if (!ret) {
		*what = "tls_endpoint";
		ret = mbedtls_ssl_setup(&e->ssl, &e->conf);
	}
	lua_getfield(L, 1, "sni");
	if (!ret && !server && !lua_isnil(L, -1)) {
		*what = "sni";
		if (lua_type(L, -1) != LUA_TSTRING)
			return luaL_error(L, "sni must be a string");
		ret = mbedtls_ssl_set_hostname(&e->ssl, lua_tostring(L, -1));
	}
	lua_pop(L, 1);
	if (!ret && !server) {
		*what = "session";
		ret = opt_session(L, e);
	}
	mbedtls_ssl_set_bio(&e->ssl, e, ep_send, ep_recv, NULL);
	return ret;
}

/**
 * lep_new() - core.tls_endpoint{...}
 * @L:		Lua state
 *
 * Return: the endpoint, or nil, err, "tls" (a PEM that does not parse).
 */
static int lep_new(lua_State *L)
{
	const char *what, *role;
	struct lep *e;
	bool server;
	int ret;

	luaL_checktype(L, 1, LUA_TTABLE);
	lua_getfield(L, 1, "role");
	role = lua_tostring(L, -1);
	luaL_argcheck(L, role && (!strcmp(role, "client") || !strcmp(role, "server")), 1,
		      "role must be \"client\" or \"server\"");
	server = role[0] == 's';
	lua_pop(L, 1);
	e = lua_newuserdatauv(L, sizeof(*e), 0);
	memset(e, 0, sizeof(*e));
	mbedtls_entropy_init(&e->entropy);
	mbedtls_ctr_drbg_init(&e->drbg);
	mbedtls_ssl_config_init(&e->conf);
	mbedtls_ssl_init(&e->ssl);
	mbedtls_x509_crt_init(&e->trust);
	mbedtls_x509_crt_init(&e->own);
	mbedtls_pk_init(&e->key);
	e->open = true;
	luaL_setmetatable(L, EP_MT);	/* from here __gc frees it, also if we raise */
	e->in = malloc(EP_IN_MAX);
	e->out = malloc(EP_OUT_MAX);
	if (!e->in || !e->out)
		return luaL_error(L, "out of memory");
	ret = ep_setup(L, e, server, &what);
	if (ret) {
		ep_free(e);
		return ep_fail(L, what, ret);
	}
	return 1;
}

static struct lep *check_ep(lua_State *L)
{
	struct lep *e = luaL_checkudata(L, 1, EP_MT);

	luaL_argcheck(L, e->open, 1, "endpoint is closed");
	return e;
}

/* ep:feed(bytes) -> true | nil, err, "full"; ep:feed() marks the peer's EOF */
static int lep_feed(lua_State *L)
{
	struct lep *e = check_ep(L);
	const char *s;
	size_t len;

	if (lua_isnoneornil(L, 2)) {
		e->eof = true;
		lua_pushboolean(L, 1);
		return 1;
	}
	s = luaL_checklstring(L, 2, &len);
	if (e->in_off) {		/* compact: consumed bytes go */
		memmove(e->in, e->in + e->in_off, e->in_len - e->in_off);
		e->in_len -= e->in_off;
		e->in_off = 0;
	}
	if (len > EP_IN_MAX - e->in_len)
		return api_fail(L, "tls_endpoint: over 1 MiB fed and not consumed", "full");
	memcpy(e->in + e->in_len, s, len);
	e->in_len += len;
	lua_pushboolean(L, 1);
	return 1;
}

/* ep:output() -> the ciphertext to send ("" if none) */
static int lep_output(lua_State *L)
{
	struct lep *e = check_ep(L);

	lua_pushlstring(L, e->out, e->out_len);
	e->out_len = 0;
	return 1;
}

/* nil, "certificate verify failed: <each flag's text>", "verify" */
static int ep_verify_fail(lua_State *L, uint32_t flags)
{
	char info[512], *p, *save = NULL;
	const char *sep = "";
	luaL_Buffer b;

	info[0] = '\0';
	mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags);
	luaL_buffinit(L, &b);
	luaL_addstring(&b, "certificate verify failed: ");
	for (p = strtok_r(info, "\n", &save); p; p = strtok_r(NULL, "\n", &save)) {
		luaL_addstring(&b, sep);
		luaL_addstring(&b, p);
		sep = "; ";
	}
	luaL_pushresult(&b);
	return api_fail(L, lua_tostring(L, -1), "verify");
}

/* ep:handshake() -> true (done) | false (needs bytes) | nil, err, code */
static int lep_handshake(lua_State *L)
{
	struct lep *e = check_ep(L);
	uint32_t flags;
	int ret;

	ret = e->done ? 0 : mbedtls_ssl_handshake(&e->ssl);
	if (ret == 0) {
		e->done = true;
		lua_pushboolean(L, 1);
		return 1;
	}
	if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
		lua_pushboolean(L, 0);
		return 1;
	}
	flags = mbedtls_ssl_get_verify_result(&e->ssl);
	if (ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED && flags && flags != (uint32_t)-1)
		return ep_verify_fail(L, flags);
	return ep_fail(L, "handshake", ret);
}

/* ep:write(s) -> bytes accepted (0: output full or handshake pending) */
static int lep_write(lua_State *L)
{
	struct lep *e = check_ep(L);
	size_t len;
	const char *s = luaL_checklstring(L, 2, &len);
	int ret = 0;

	if (len)
		ret = mbedtls_ssl_write(&e->ssl, (const unsigned char *)s, len);
	if (ret == MBEDTLS_ERR_SSL_WANT_WRITE || ret == MBEDTLS_ERR_SSL_WANT_READ)
		ret = 0;
	if (ret < 0)
		return ep_fail(L, "write", ret);
	lua_pushinteger(L, ret);
	return 1;
}

/* ep:read() -> plaintext ("" none yet) | nil, "closed", "closed" | nil, err */
static int lep_read(lua_State *L)
{
	struct lep *e = check_ep(L);
	char buf[16384];
	int ret = mbedtls_ssl_read(&e->ssl, (unsigned char *)buf, sizeof(buf));

	if (ret > 0) {
		lua_pushlstring(L, buf, (size_t)ret);
		return 1;
	}
	if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
		lua_pushliteral(L, "");
		return 1;
	}
	if (ret == 0 || ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || ret == MBEDTLS_ERR_SSL_CONN_EOF)
		return api_fail(L, "closed", "closed");
	return ep_fail(L, "read", ret);
}

/* ep:close_notify() -> true | nil, err: queue the alert in the output */
static int lep_close_notify(lua_State *L)
{
	int ret = mbedtls_ssl_close_notify(&check_ep(L)->ssl);

	if (ret && ret != MBEDTLS_ERR_SSL_WANT_WRITE)
		return ep_fail(L, "close_notify", ret);
	lua_pushboolean(L, 1);
	return 1;
}

/* t.peer_san = {"DNS:name" | "IP:addr", ...} for the table on top */
static void push_san(lua_State *L, const mbedtls_x509_crt *peer)
{
	const mbedtls_x509_sequence *s;
	char ip[INET6_ADDRSTRLEN];
	lua_Integer n = 0;

	lua_newtable(L);
	for (s = &peer->subject_alt_names; s && s->buf.p && n < EP_SAN_MAX; s = s->next) {
		if (s->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_DNS_NAME))
			lua_pushfstring(L, "DNS:%s", lua_pushlstring(L, (const char *)s->buf.p, s->buf.len));
		else if (s->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7) &&
			 (s->buf.len == 4 || s->buf.len == 16) &&
			 inet_ntop(s->buf.len == 4 ? AF_INET : AF_INET6, s->buf.p, ip, sizeof(ip)))
			lua_pushfstring(L, "IP:%s", lua_pushstring(L, ip));
		else
			continue;
		lua_remove(L, -2);
		lua_rawseti(L, -2, ++n);
	}
	lua_setfield(L, -2, "peer_san");
}

/* ep:info() -> {version, cipher, alpn, peer_subject, peer_san} */
static int lep_info(lua_State *L)
{
	struct lep *e = check_ep(L);
	const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&e->ssl);
	const char *alpn = mbedtls_ssl_get_alpn_protocol(&e->ssl);
	char buf[512];

	lua_createtable(L, 0, 5);
	lua_pushstring(L, mbedtls_ssl_get_version(&e->ssl));
	lua_setfield(L, -2, "version");
	lua_pushstring(L, mbedtls_ssl_get_ciphersuite(&e->ssl));
	lua_setfield(L, -2, "cipher");
	if (alpn) {
		lua_pushstring(L, alpn);
		lua_setfield(L, -2, "alpn");
	}
	if (!peer)
		return 1;
	if (mbedtls_x509_dn_gets(buf, sizeof(buf), &peer->subject) > 0) {
		lua_pushstring(L, buf);
		lua_setfield(L, -2, "peer_subject");
	}
	push_san(L, peer);
	return 1;
}

/* ep:session() -> the client's session, serialised | nil, err, "tls" */
static int lep_session(lua_State *L)
{
	struct lep *e = check_ep(L);
	unsigned char buf[EP_SESSION_MAX];
	mbedtls_ssl_session sess;
	size_t len = 0;
	int ret;

	luaL_argcheck(L, e->done && e->conf.endpoint == MBEDTLS_SSL_IS_CLIENT, 1,
		      "a session is a client's, after its handshake");
	mbedtls_ssl_session_init(&sess);
	ret = mbedtls_ssl_get_session(&e->ssl, &sess);
	if (!ret)
		ret = mbedtls_ssl_session_save(&sess, buf, sizeof(buf), &len);
	mbedtls_ssl_session_free(&sess);	/* before Lua may raise */
	if (ret)
		return ep_fail(L, "session", ret);
	lua_pushlstring(L, (const char *)buf, len);
	return 1;
}

/* ep:close(), __close, __gc: true; a second call does nothing */
static int lep_close(lua_State *L)
{
	ep_free(luaL_checkudata(L, 1, EP_MT));
	lua_pushboolean(L, 1);
	return 1;
}

static const luaL_Reg ca_methods[] = {
	{ "pem", lca_pem }, { "dir", lca_dir }, { "leaf", lca_leaf }, { "issue", lca_issue },
	{ "stats", lca_stats }, { "close", lca_close }, { NULL, NULL }
};
static const luaL_Reg ca_meta[] = {
	{ "__gc", lca_gc }, { "__close", lca_close }, { "__tostring", lca_tostring },
	{ NULL, NULL }
};
static const luaL_Reg ep_methods[] = {
	{ "feed", lep_feed }, { "output", lep_output }, { "handshake", lep_handshake },
	{ "write", lep_write }, { "read", lep_read }, { "close_notify", lep_close_notify },
	{ "info", lep_info }, { "session", lep_session }, { "close", lep_close },
	{ NULL, NULL }
};
static const luaL_Reg ep_meta[] = {
	{ "__gc", lep_close }, { "__close", lep_close }, { NULL, NULL }
};

/**
 * api_open_tls() - register core.tls_ca, core.tls_ca_rotate, core.tls_endpoint
 * @L:		Lua state, the core table on top
 */
void api_open_tls(lua_State *L)
{
	api_new_class(L, CA_MT, ca_meta, ca_methods);
	api_new_class(L, EP_MT, ep_meta, ep_methods);
	lua_pushcfunction(L, lca_new);
	lua_setfield(L, -2, "tls_ca");
	lua_pushcfunction(L, lca_rotate);
	lua_setfield(L, -2, "tls_ca_rotate");
	lua_pushcfunction(L, lep_new);
	lua_setfield(L, -2, "tls_endpoint");
}
