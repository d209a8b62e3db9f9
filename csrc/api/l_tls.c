/* SPDX-License-Identifier: MIT */
/* l_tls.c - Lua binding: the interception CA, and TLS endpoints for tests */

/*
 * core.tls_ca(dir [, {leaf_max =, leaf_ttl_ms =}]) -> ca | nil, err
 *   ca:pem(), ca:dir(), ca:leaf(name) -> pem | nil, err (through the cache),
 *   ca:issue(name [, days]) -> chain_pem, key_pem (fresh, not cached),
 *   ca:stats() -> {hits, misses, evicted, size, mint_us}, ca:close()
 * core.tls_ca_rotate(dir) -> true | nil, err
 * core.tls_endpoint{role =, ca =, sni =, cert =, key =, alpn =} -> ep
 *   a TLS endpoint over memory: ep:feed(bytes), ep:output() -> bytes,
 *   ep:handshake() -> true | false (more bytes needed) | nil, err,
 *   ep:write(s) -> n, ep:read() -> s ("" none yet) | nil, "closed" | nil, err,
 *   ep:close_notify(), ep:info(), ep:close()
 *
 * A netif holds a CA userdata in a user value, and api_tls_cache() gives
 * it the leaf cache inside: the cache lives as long as the netif does.
 */

#include <stdlib.h>
#include <string.h>

#include <stdio.h>

#include <mbedtls/error.h>
#include <mbedtls/pem.h>
#include <mbedtls/ssl.h>

#include "api/api.h"
#include "tls/ca.h"
#include "tls/leaf.h"

#define CA_MT		"gondolin.tls_ca"
#define EP_MT		"gondolin.tls_endpoint"
#define EP_IN_MAX	(1024 * 1024)	/* ciphertext fed and not yet taken */
#define EP_OUT_MAX	(4 * 1024 * 1024)
#define EP_ALPN_MAX	4

/* ---- the CA ---- */

struct lca {
	struct tls_ca ca;
	struct tls_leaf_cache cache;
	bool open;
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
 * @idx:	index of a core.tls_ca value (raises otherwise)
 *
 * The caller keeps the userdata reachable for as long as it uses the cache.
 */
struct tls_leaf_cache *api_tls_cache(lua_State *L, int idx)
{
	return &check_ca(L, idx)->cache;
}

static int lca_new(lua_State *L)
{
	const char *dir = luaL_checkstring(L, 1);
	lua_Integer max = 0, ttl = 0;
	struct lca *c;
	char err[512];

	if (lua_istable(L, 2)) {
		lua_getfield(L, 2, "leaf_max");
		max = luaL_optinteger(L, -1, 0);
		lua_getfield(L, 2, "leaf_ttl_ms");
		ttl = luaL_optinteger(L, -1, 0);
		lua_pop(L, 2);
		luaL_argcheck(L, max >= 0 && max <= 65536 && ttl >= 0, 2, "bad leaf_max or leaf_ttl_ms");
	}
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
	c->open = true;
	return 1;
}

static int lca_close(lua_State *L)
{
	struct lca *c = luaL_checkudata(L, 1, CA_MT);

	if (c->open) {
		c->open = false;
		tls_leaf_cache_free(&c->cache);
		tls_ca_close(&c->ca);
	}
	return 0;
}

static int lca_pem(lua_State *L)
{
	struct lca *c = check_ca(L, 1);

	lua_pushlstring(L, c->ca.pem, c->ca.pem_len);
	return 1;
}

static int lca_dir(lua_State *L)
{
	lua_pushstring(L, check_ca(L, 1)->ca.dir);
	return 1;
}

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

static int lca_issue(lua_State *L)
{
	struct lca *c = check_ca(L, 1);
	const char *name = luaL_checkstring(L, 2);
	lua_Integer days = luaL_optinteger(L, 3, TLS_LEAF_DAYS);
	char cert[2 * TLS_PEM_MAX], key[TLS_PEM_MAX], err[256];

	luaL_argcheck(L, days > 0 && days <= 3650, 3, "days out of range");
	if (tls_ca_issue_pem(&c->ca, name, (unsigned)days, cert, sizeof(cert), key, sizeof(key),
			     err, sizeof(err)) < 0)
		return api_fail(L, err, "name");
	lua_pushstring(L, cert);
	lua_pushstring(L, key);
	return 2;
}

static int lca_stats(lua_State *L)
{
	struct lca *c = check_ca(L, 1);

	lua_createtable(L, 0, 5);
	api_set_int(L, "hits", (lua_Integer)c->cache.hits);
	api_set_int(L, "misses", (lua_Integer)c->cache.misses);
	api_set_int(L, "evicted", (lua_Integer)c->cache.evicted);
	api_set_int(L, "size", (lua_Integer)c->cache.n);
	api_set_int(L, "mint_us", (lua_Integer)c->cache.mint_us);
	return 1;
}

static int lca_rotate(lua_State *L)
{
	char err[512];

	if (tls_ca_rotate(luaL_checkstring(L, 1), err, sizeof(err)) < 0)
		return api_fail(L, err, "ca");
	lua_pushboolean(L, 1);
	return 1;
}

/* ---- endpoints over memory (tests, test servers) ---- */

struct lep {
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_ssl_config conf;
	mbedtls_ssl_context ssl;
	mbedtls_x509_crt trust, own;
	mbedtls_pk_context key;
	const char *alpn[EP_ALPN_MAX + 1];
	char alpn_buf[EP_ALPN_MAX][32];
	char *in, *out;
	size_t in_off, in_len, out_len;
	bool open, done;
};

static int ep_recv(void *arg, unsigned char *buf, size_t len)
{
	struct lep *e = arg;
	size_t n = e->in_len - e->in_off;

	if (!n)
		return MBEDTLS_ERR_SSL_WANT_READ;
	if (n > len)
		n = len;
	memcpy(buf, e->in + e->in_off, n);
	e->in_off += n;
	return (int)n;
}

static int ep_send(void *arg, const unsigned char *buf, size_t len)
{
	struct lep *e = arg;

	if (e->out_len + len > EP_OUT_MAX)
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
}

static int ep_fail(lua_State *L, const char *what, int ret)
{
	char buf[160];

	mbedtls_strerror(ret, buf, sizeof(buf));
	lua_pushnil(L);
	lua_pushfstring(L, "%s: %s", what, buf);
	return 2;
}

/* a PEM field of the options, parsed into @crt or @pk */
static int opt_pem(lua_State *L, const char *field, mbedtls_x509_crt *crt, mbedtls_pk_context *pk)
{
	size_t len;
	const char *s;
	int ret;

	lua_getfield(L, 1, field);
	s = lua_tolstring(L, -1, &len);
	if (!s) {
		lua_pop(L, 1);
		return 1;	/* absent */
	}
	ret = crt ? mbedtls_x509_crt_parse(crt, (const unsigned char *)s, len + 1)
		  : mbedtls_pk_parse_key(pk, (const unsigned char *)s, len + 1, NULL, 0);
	lua_pop(L, 1);
	return ret;
}

static int ep_setup(lua_State *L, struct lep *e, bool server)
{
	static const char pers[] = "gondolin test endpoint";
	int ret, r, i;

	ret = mbedtls_ctr_drbg_seed(&e->drbg, mbedtls_entropy_func, &e->entropy,
				    (const unsigned char *)pers, sizeof(pers) - 1);
	if (!ret)
		ret = mbedtls_ssl_config_defaults(&e->conf, server ? MBEDTLS_SSL_IS_SERVER :
						  MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
						  MBEDTLS_SSL_PRESET_DEFAULT);
	if (ret)
		return ret;
	mbedtls_ssl_conf_rng(&e->conf, mbedtls_ctr_drbg_random, &e->drbg);
	mbedtls_ssl_conf_min_version(&e->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_renegotiation(&e->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
	r = opt_pem(L, "ca", &e->trust, NULL);
	if (r < 0)
		return r;
	if (r == 0) {
		mbedtls_ssl_conf_ca_chain(&e->conf, &e->trust, NULL);
		mbedtls_ssl_conf_authmode(&e->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
	} else {
		mbedtls_ssl_conf_authmode(&e->conf, MBEDTLS_SSL_VERIFY_NONE);
	}
	if ((r = opt_pem(L, "cert", &e->own, NULL)) < 0 || (r == 0 &&
	    ((r = opt_pem(L, "key", NULL, &e->key)) != 0 ||
	     (r = mbedtls_ssl_conf_own_cert(&e->conf, &e->own, &e->key)) != 0)))
		return r < 0 ? r : MBEDTLS_ERR_PK_KEY_INVALID_FORMAT;
	if (lua_getfield(L, 1, "alpn") == LUA_TTABLE) {
		for (i = 0; i < EP_ALPN_MAX; i++) {
			const char *p;

			lua_rawgeti(L, -1, i + 1);
			p = lua_tostring(L, -1);
			if (p) {
				snprintf(e->alpn_buf[i], sizeof(e->alpn_buf[i]), "%s", p);
				e->alpn[i] = e->alpn_buf[i];
			}
			lua_pop(L, 1);
			if (!p)
				break;
		}
		if (e->alpn[0] && (ret = mbedtls_ssl_conf_alpn_protocols(&e->conf, e->alpn)))
			return ret;
	}
	lua_pop(L, 1);
	ret = mbedtls_ssl_setup(&e->ssl, &e->conf);
	if (ret)
		return ret;
	if (!server && lua_getfield(L, 1, "sni") == LUA_TSTRING)
		ret = mbedtls_ssl_set_hostname(&e->ssl, lua_tostring(L, -1));
	lua_pop(L, !server);
	mbedtls_ssl_set_bio(&e->ssl, e, ep_send, ep_recv, NULL);
	return ret;
}

static int lep_new(lua_State *L)
{
	struct lep *e;
	const char *role;
	int ret;

	luaL_checktype(L, 1, LUA_TTABLE);
	lua_getfield(L, 1, "role");
	role = luaL_checkstring(L, -1);
	luaL_argcheck(L, !strcmp(role, "client") || !strcmp(role, "server"), 1,
		      "role must be \"client\" or \"server\"");
	lua_pop(L, 1);
	e = lua_newuserdatauv(L, sizeof(*e), 0);
	memset(e, 0, sizeof(*e));
	luaL_setmetatable(L, EP_MT);
	mbedtls_entropy_init(&e->entropy);
	mbedtls_ctr_drbg_init(&e->drbg);
	mbedtls_ssl_config_init(&e->conf);
	mbedtls_ssl_init(&e->ssl);
	mbedtls_x509_crt_init(&e->trust);
	mbedtls_x509_crt_init(&e->own);
	mbedtls_pk_init(&e->key);
	e->open = true;
	e->in = malloc(EP_IN_MAX);
	e->out = malloc(EP_OUT_MAX);
	if (!e->in || !e->out)
		return luaL_error(L, "out of memory");
	ret = ep_setup(L, e, role[0] == 's');
	if (ret) {
		ep_free(e);
		return ep_fail(L, "tls_endpoint", ret);
	}
	return 1;
}

static struct lep *check_ep(lua_State *L)
{
	struct lep *e = luaL_checkudata(L, 1, EP_MT);

	luaL_argcheck(L, e->open, 1, "endpoint is closed");
	return e;
}

static int lep_feed(lua_State *L)
{
	struct lep *e = check_ep(L);
	size_t len;
	const char *s = luaL_checklstring(L, 2, &len);

	if (e->in_off == e->in_len)
		e->in_off = e->in_len = 0;
	if (e->in_off) {
		memmove(e->in, e->in + e->in_off, e->in_len - e->in_off);
		e->in_len -= e->in_off;
		e->in_off = 0;
	}
	if (len > EP_IN_MAX - e->in_len)
		return api_fail(L, "tls_endpoint: too many bytes fed and not taken", "full");
	memcpy(e->in + e->in_len, s, len);
	e->in_len += len;
	lua_pushboolean(L, 1);
	return 1;
}

static int lep_output(lua_State *L)
{
	struct lep *e = check_ep(L);

	lua_pushlstring(L, e->out, e->out_len);
	e->out_len = 0;
	return 1;
}

static int lep_handshake(lua_State *L)
{
	struct lep *e = check_ep(L);
	char why[256];
	uint32_t flags;
	int ret;

	if (e->done) {
		lua_pushboolean(L, 1);
		return 1;
	}
	ret = mbedtls_ssl_handshake(&e->ssl);
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
	if (ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED && flags && flags != (uint32_t)-1) {
		mbedtls_x509_crt_verify_info(why, sizeof(why), "", flags);
		why[strcspn(why, "\n")] = '\0';
		lua_pushnil(L);
		lua_pushfstring(L, "certificate verify failed: %s", why);
		return 2;
	}
	return ep_fail(L, "handshake", ret);
}

static int lep_write(lua_State *L)
{
	struct lep *e = check_ep(L);
	size_t len;
	const char *s = luaL_checklstring(L, 2, &len);
	int ret;

	if (!len) {
		lua_pushinteger(L, 0);
		return 1;
	}
	ret = mbedtls_ssl_write(&e->ssl, (const unsigned char *)s, len);
	if (ret == MBEDTLS_ERR_SSL_WANT_WRITE || ret == MBEDTLS_ERR_SSL_WANT_READ)
		ret = 0;
	if (ret < 0)
		return ep_fail(L, "write", ret);
	lua_pushinteger(L, ret);
	return 1;
}

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
	if (ret == 0 || ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
		lua_pushnil(L);
		lua_pushliteral(L, "closed");
		return 2;
	}
	return ep_fail(L, "read", ret);
}

static int lep_close_notify(lua_State *L)
{
	mbedtls_ssl_close_notify(&check_ep(L)->ssl);
	return 0;
}

static int lep_info(lua_State *L)
{
	struct lep *e = check_ep(L);
	const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&e->ssl);
	const char *alpn = mbedtls_ssl_get_alpn_protocol(&e->ssl);
	char buf[512];

	lua_createtable(L, 0, 4);
	lua_pushstring(L, mbedtls_ssl_get_version(&e->ssl));
	lua_setfield(L, -2, "version");
	lua_pushstring(L, mbedtls_ssl_get_ciphersuite(&e->ssl));
	lua_setfield(L, -2, "cipher");
	if (alpn) {
		lua_pushstring(L, alpn);
		lua_setfield(L, -2, "alpn");
	}
	if (peer && mbedtls_x509_dn_gets(buf, sizeof(buf), &peer->subject) > 0) {
		lua_pushstring(L, buf);
		lua_setfield(L, -2, "peer_subject");
	}
	if (peer && mbedtls_x509_crt_info(buf, sizeof(buf), "", peer) > 0) {
		lua_pushstring(L, buf);
		lua_setfield(L, -2, "peer_info");
	}
	return 1;
}

static int lep_close(lua_State *L)
{
	ep_free(luaL_checkudata(L, 1, EP_MT));
	return 0;
}

static const luaL_Reg ca_methods[] = {
	{ "pem", lca_pem }, { "dir", lca_dir }, { "leaf", lca_leaf }, { "issue", lca_issue },
	{ "stats", lca_stats }, { "close", lca_close }, { NULL, NULL }
};
static const luaL_Reg ca_meta[] = {
	{ "__gc", lca_close }, { "__close", lca_close }, { NULL, NULL }
};
static const luaL_Reg ep_methods[] = {
	{ "feed", lep_feed }, { "output", lep_output }, { "handshake", lep_handshake },
	{ "write", lep_write }, { "read", lep_read }, { "close_notify", lep_close_notify },
	{ "info", lep_info }, { "close", lep_close }, { NULL, NULL }
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
