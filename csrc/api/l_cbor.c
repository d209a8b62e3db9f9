/* SPDX-License-Identifier: MIT */
/* l_cbor.c - Lua values <-> the CBOR subset of csrc/proto/cbor.h
 *
 * Mapping: integers <-> CBOR integers; floats with an integral value encode
 * as integers, other floats are refused (not in the subset); strings encode
 * as text and both string kinds decode to Lua strings; booleans; nil and
 * core.null <-> null. A table whose keys are exactly 1..n (n > 0) is an
 * array, any other table a map (so {} is an empty map). Decoding is bounded
 * by the input length and CBOR_MAX_DEPTH; malformed input returns nil, msg.
 */

#include <stdlib.h>

#include "api/api.h"
#include "proto/cbor.h"
#include "proto/frame.h"

static int encode(lua_State *L, struct cbor_writer *w, int idx, int depth);

static int is_array(lua_State *L, int idx, lua_Integer *n)
{
	lua_Integer count = 0;

	*n = (lua_Integer)lua_rawlen(L, idx);
	if (*n == 0)
		return 0;
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		count++;
	}
	return count == *n;
}

static int encode_table(lua_State *L, struct cbor_writer *w, int idx, int depth)
{
	lua_Integer n, i, pairs = 0;

	if (is_array(L, idx, &n)) {
		cbor_put_array(w, (uint64_t)n);
		for (i = 1; i <= n; i++) {
			lua_rawgeti(L, idx, i);
			encode(L, w, lua_gettop(L), depth + 1);
			lua_pop(L, 1);
		}
		return 0;
	}
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		pairs++;
	}
	cbor_put_map(w, (uint64_t)pairs);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		int t = lua_gettop(L);

		if (lua_type(L, t - 1) != LUA_TSTRING && !lua_isinteger(L, t - 1))
			return luaL_error(L, "cbor: map keys must be strings or integers");
		encode(L, w, t - 1, depth + 1);
		encode(L, w, t, depth + 1);
		lua_pop(L, 1);
	}
	return 0;
}

static int encode(lua_State *L, struct cbor_writer *w, int idx, int depth)
{
	size_t len;
	const char *s;

	if (depth > CBOR_MAX_DEPTH)
		return luaL_error(L, "cbor: nesting deeper than %d", CBOR_MAX_DEPTH);
	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		cbor_put_null(w);
		break;
	case LUA_TBOOLEAN:
		cbor_put_bool(w, lua_toboolean(L, idx));
		break;
	case LUA_TNUMBER: {
		int isint;
		lua_Integer i = lua_tointegerx(L, idx, &isint);

		if (!isint)
			return luaL_error(L, "cbor: non-integer number %f", lua_tonumber(L, idx));
		cbor_put_int(w, (int64_t)i);
		break;
	}
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &len);
		cbor_put_text(w, s, len);
		break;
	case LUA_TTABLE:
		luaL_checkstack(L, 4, "cbor nesting");
		encode_table(L, w, idx, depth);
		break;
	case LUA_TLIGHTUSERDATA:
		if (lua_touserdata(L, idx) == NULL) {
			cbor_put_null(w);
			break;
		}
		/* fall through */
	default:
		return luaL_error(L, "cbor: cannot encode a %s", luaL_typename(L, idx));
	}
	return 0;
}

/* core.cbor_encode(value) -> string; raises on values outside the subset */
int api_cbor_encode(lua_State *L)
{
	struct cbor_writer *w;
	void *buf;

	luaL_checkany(L, 1);
	lua_settop(L, 1);
	w = lua_newuserdatauv(L, sizeof(*w) + FRAME_MAX_PAYLOAD, 0);
	buf = w + 1;	/* GC-owned scratch: a raised error leaks nothing */
	cbor_writer_init(w, buf, FRAME_MAX_PAYLOAD);
	encode(L, w, 1, 0);
	if (w->err)
		return luaL_error(L, "cbor: encoded value exceeds %d bytes", FRAME_MAX_PAYLOAD);
	lua_pushlstring(L, (const char *)buf, w->len);
	return 1;
}

static int decode(lua_State *L, struct cbor_reader *r, int depth)
{
	struct cbor_item it;
	uint64_t i;

	if (depth > CBOR_MAX_DEPTH || cbor_read(r, &it) < 0)
		return -1;
	luaL_checkstack(L, 3, "cbor nesting");
	switch (it.type) {
	case CBOR_UINT:
		if (it.u > (uint64_t)LUA_MAXINTEGER)
			return -1;
		lua_pushinteger(L, (lua_Integer)it.u);
		break;
	case CBOR_NINT:
		if (it.u > (uint64_t)LUA_MAXINTEGER)
			return -1;
		lua_pushinteger(L, -1 - (lua_Integer)it.u);
		break;
	case CBOR_BYTES:
	case CBOR_TEXT:
		lua_pushlstring(L, (const char *)it.str, it.len);
		break;
	case CBOR_BOOL:
		lua_pushboolean(L, (int)it.u);
		break;
	case CBOR_NULL:
		lua_pushnil(L);
		break;
	case CBOR_ARRAY:
		lua_createtable(L, it.u > 64 ? 64 : (int)it.u, 0);
		for (i = 0; i < it.u; i++) {
			if (decode(L, r, depth + 1) < 0)
				return -1;
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
		break;
	case CBOR_MAP:
		lua_createtable(L, 0, it.u > 64 ? 64 : (int)it.u);
		for (i = 0; i < it.u; i++) {
			if (decode(L, r, depth + 1) < 0 || decode(L, r, depth + 1) < 0)
				return -1;
			if (lua_isnil(L, -2)) {
				lua_pop(L, 2);	/* a null key cannot index a table */
				continue;
			}
			lua_rawset(L, -3);
		}
		break;
	}
	return 0;
}

/* core.cbor_decode(s) -> value | nil, "malformed cbor", "malformed" */
int api_cbor_decode(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	struct cbor_reader r;

	cbor_reader_init(&r, s, len);
	lua_settop(L, 1);
	if (decode(L, &r, 0) < 0 || r.p != r.end) {
		lua_settop(L, 1);
		return api_fail(L, "malformed cbor", "malformed");
	}
	return 1;
}
