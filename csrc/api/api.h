/* SPDX-License-Identifier: MIT */
/* api.h - shared pieces of the Lua binding layer */
#ifndef GONDOLIN_API_H
#define GONDOLIN_API_H

#include <stdbool.h>

#include <lua.h>
#include <lauxlib.h>
#include <uv.h>

/*
 * Handle lifetime (as in luv): a Lua userdata holds a pointer to a malloc'd
 * struct that embeds the libuv handle, because libuv needs the memory until
 * its close callback, which may run after Lua collected the userdata.
 *
 * Unlike luv, an open handle does not pin itself in the registry: C reaches
 * its userdata through a weak table keyed by the C pointer, and callbacks
 * live in the userdata's user values. An unreachable VM is therefore
 * collected, and its __gc closes the handles (the last-resort cleanup).
 */
struct api_handle {
	lua_State *L;		/* main thread: callbacks never run on a coroutine */
	int closing;
};

void api_handle_register(lua_State *L, int idx, void *c);
int api_handle_push(lua_State *L, void *c);
void api_call_uservalue(lua_State *L, void *c, int slot, int nargs);
int api_fail(lua_State *L, const char *msg, const char *code);
int api_fail_errno(lua_State *L, int err, const char *what);
uv_loop_t *api_loop(lua_State *L);
void api_new_class(lua_State *L, const char *name, const luaL_Reg *meta,
		   const luaL_Reg *methods);

void api_open_channel(lua_State *L);
void api_open_proc(lua_State *L);
void api_open_policy(lua_State *L);
void api_secret_flags(lua_State *L, int t, bool *query, bool *body);
void api_open_http(lua_State *L);
void api_open_net(lua_State *L);
void api_open_netif(lua_State *L);
void api_open_hook(lua_State *L);
void api_open_upstream(lua_State *L);
void api_open_tls(lua_State *L);
void api_open_vfs(lua_State *L);
struct tls_leaf_cache;
struct tls_leaf_cache *api_tls_cache(lua_State *L, int idx);

int api_cbor_encode(lua_State *L);
int api_cbor_decode(lua_State *L);

/* t[k] = v for the table on top of the stack */
static inline void api_set_int(lua_State *L, const char *k, lua_Integer v)
{
	lua_pushinteger(L, v);
	lua_setfield(L, -2, k);
}

struct http1_header;
void api_push_headers(lua_State *L, const struct http1_header *h, size_t n);
struct net_stats;
void api_push_net_stats(lua_State *L, const struct net_stats *s);

#endif /* GONDOLIN_API_H */
