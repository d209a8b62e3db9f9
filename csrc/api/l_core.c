/* SPDX-License-Identifier: MIT */
/* l_core.c - luaopen_gondolin_core and the helpers every binding shares */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <luv.h>

#include "api/api.h"

static const char handles_key;	/* registry: weak table C pointer -> userdata */

/**
 * api_loop() - the libuv loop shared with luv
 * @L:		any thread of the state
 *
 * Return: luv's loop; luv must have been required first (init.lua does)
 */
uv_loop_t *api_loop(lua_State *L)
{
	return luv_loop(L);
}

/**
 * api_new_class() - register metatable @name: metamethods, methods under __index
 * @L:		Lua state
 * @name:	metatable name ("gondolin.<type>")
 * @meta:	metamethods, or NULL
 * @methods:	methods, or NULL
 */
void api_new_class(lua_State *L, const char *name, const luaL_Reg *meta,
		   const luaL_Reg *methods)
{
	luaL_newmetatable(L, name);
	if (meta)
		luaL_setfuncs(L, meta, 0);
	if (methods) {
		lua_newtable(L);
		luaL_setfuncs(L, methods, 0);
		lua_setfield(L, -2, "__index");
	}
	lua_pop(L, 1);
}

/**
 * api_handle_register() - make the userdata at @idx reachable from @c
 * @L:		Lua state
 * @idx:	stack index of the userdata
 * @c:		C object it wraps
 */
void api_handle_register(lua_State *L, int idx, void *c)
{
	struct api_handle *h = c;

	idx = lua_absindex(L, idx);
	lua_rawgetp(L, LUA_REGISTRYINDEX, &handles_key);
	lua_pushvalue(L, idx);
	lua_rawsetp(L, -2, c);
	lua_pop(L, 1);
	lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
	h->L = lua_tothread(L, -1);
	lua_pop(L, 1);
	h->closing = 0;
}

/**
 * api_handle_push() - push the userdata wrapping @c
 * @L:		Lua state
 * @c:		C object
 *
 * Return: 1 if pushed, 0 (nothing pushed) once it was collected
 */
int api_handle_push(lua_State *L, void *c)
{
	lua_rawgetp(L, LUA_REGISTRYINDEX, &handles_key);
	lua_rawgetp(L, -1, c);
	lua_remove(L, -2);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return 0;
	}
	return 1;
}

static int traceback(lua_State *L)
{
	luaL_traceback(L, L, lua_tostring(L, 1), 1);
	return 1;
}

/**
 * api_call_uservalue() - call the function in user value @slot of @c's
 * userdata with the @nargs values on top of the stack; errors are reported
 * on stderr, never raised into libuv
 * @L:		main thread
 * @c:		C object
 * @slot:	user value index holding the callback
 * @nargs:	arguments already pushed
 */
void api_call_uservalue(lua_State *L, void *c, int slot, int nargs)
{
	int base = lua_gettop(L) - nargs;

	if (!api_handle_push(L, c) ||
	    lua_getiuservalue(L, -1, slot) != LUA_TFUNCTION) {
		lua_settop(L, base);
		return;
	}
	lua_remove(L, -2);
	lua_insert(L, base + 1);
	lua_pushcfunction(L, traceback);
	lua_insert(L, base + 1);
	if (lua_pcall(L, nargs, 0, base + 1) != LUA_OK)
		fprintf(stderr, "gondolin: error in callback: %s\n",
			lua_tostring(L, -1));
	lua_settop(L, base);
}

/**
 * api_fail() - push the fail pair for runtime failures
 * @L:		Lua state
 * @msg:	message
 * @code:	short stable code
 *
 * Return: 3 (nil, message, code)
 */
int api_fail(lua_State *L, const char *msg, const char *code)
{
	luaL_pushfail(L);
	lua_pushstring(L, msg);
	lua_pushstring(L, code);
	return 3;
}

/**
 * api_fail_errno() - api_fail() for a negative errno
 * @L:		Lua state
 * @err:	-errno
 * @what:	what was being done
 *
 * Return: 3
 */
int api_fail_errno(lua_State *L, int err, const char *what)
{
	lua_pushfstring(L, "%s: %s", what, strerror(-err));
	return api_fail(L, lua_tostring(L, -1), uv_err_name(uv_translate_sys_error(-err)));
}

/* core.socketpair() -> host_fd, guest_fd (host end CLOEXEC, both blocking) */
static int lcore_socketpair(lua_State *L)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return api_fail_errno(L, -errno, "socketpair");
	lua_pushinteger(L, sv[0]);
	lua_pushinteger(L, sv[1]);
	return 2;
}

/* core.close_fd(fd) */
static int lcore_close_fd(lua_State *L)
{
	int fd = (int)luaL_checkinteger(L, 1);

	luaL_argcheck(L, fd > 2, 1, "refusing to close a standard descriptor");
	close(fd);
	return 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * core.tsc_khz() -> kHz | nil
 *
 * Under TCG the guest's TSC ticks at the host's rate, but a microvm has no
 * PIT/HPET for the guest kernel to calibrate it against, and a kernel that
 * cannot calibrate may hang. We measure the host rate once (20 ms) and pass
 * it as tsc_early_khz=.
 */
static int lcore_tsc_khz(lua_State *L)
{
#if defined(__x86_64__)
	uint64_t t0, t1, c0, c1;

	t0 = now_ns();
	c0 = __builtin_ia32_rdtsc();
	do
		t1 = now_ns();
	while (t1 - t0 < 20000000u);
	c1 = __builtin_ia32_rdtsc();
	lua_pushinteger(L, (lua_Integer)((c1 - c0) * 1000000u / (t1 - t0)));
#else
	lua_pushnil(L);
#endif
	return 1;
}

static const luaL_Reg core_funcs[] = {
	{ "tsc_khz",		lcore_tsc_khz },
	{ "socketpair",		lcore_socketpair },
	{ "close_fd",		lcore_close_fd },
	{ "cbor_encode",	api_cbor_encode },
	{ "cbor_decode",	api_cbor_decode },
	{ NULL, NULL }
};

int luaopen_gondolin_core(lua_State *L)
{
	/* luv owns the loop we run on: make sure it is initialised */
	lua_getglobal(L, "require");
	lua_pushliteral(L, "luv");
	lua_call(L, 1, 0);
	/* a guest or QEMU hanging up must be an error return, not our death */
	signal(SIGPIPE, SIG_IGN);

	lua_newtable(L);
	lua_createtable(L, 0, 1);
	lua_pushliteral(L, "v");
	lua_setfield(L, -2, "__mode");
	lua_setmetatable(L, -2);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &handles_key);

	luaL_newlib(L, core_funcs);
	api_open_channel(L);
	api_open_proc(L);
	api_open_policy(L);
	api_open_http(L);
	api_open_net(L);
	api_open_netif(L);
	api_open_hook(L);
	api_open_upstream(L);
	api_open_tls(L);
	api_open_vfs(L);
	return 1;
}
