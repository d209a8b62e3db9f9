/* SPDX-License-Identifier: MIT */
/* l_channel.c - a framed host<->guest port on luv's loop
 *
 * Theory of Operation
 *
 * One channel wraps the host end of a socketpair whose other end QEMU turned
 * into a virtio-serial port. Reads land directly in the frame reader's fixed
 * buffer (alloc_cb hands out its free tail), so guest bytes are never copied
 * into anything that can grow. Each complete frame is passed to the Lua
 * on_frame(type, id, payload) callback; an oversized frame is skipped by the
 * reader and reported once through on_error("oversized").
 *
 * Writes try uv_try_write() first and queue the rest with uv_write(). The
 * queue has a hard ceiling (CHANNEL_MAX_QUEUE): send() past it fails with
 * "busy". Callers (exec sessions) stay far below it through credits.
 *
 * User values: 1 on_frame, 2 on_error, 3 on_close.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "proto/frame.h"

#define CHANNEL_MT		"gondolin.channel"
#define CHANNEL_MAX_QUEUE	(64u * 1024 * 1024)

enum { UV_ON_FRAME = 1, UV_ON_ERROR, UV_ON_CLOSE, UV_COUNT = UV_ON_CLOSE };

struct channel {
	struct api_handle h;	/* must be first */
	uv_pipe_t pipe;
	struct frame_reader rd;
	size_t queued;
	int closed;		/* uv_close() called */
	struct channel **slot;	/* the userdata's pointer, NULL once collected */
};

struct channel_write {
	uv_write_t req;
	struct channel *ch;
	size_t len;
	uint8_t data[];
};

static struct channel *check_channel(lua_State *L, int idx)
{
	struct channel **p = luaL_checkudata(L, idx, CHANNEL_MT);

	luaL_argcheck(L, *p && !(*p)->closed, idx, "channel is closed");
	return *p;
}

static void on_uv_close(uv_handle_t *handle)
{
	struct channel *ch = handle->data;

	if (ch->slot)
		*ch->slot = NULL;	/* the peer closed us: the userdata lives on */
	frame_reader_free(&ch->rd);
	free(ch);
}

/**
 * channel_shut() - close the pipe once; tell Lua why (nil for a plain close)
 * @ch:		channel
 * @why:	reason, or NULL when Lua closed it
 */
static void channel_shut(struct channel *ch, const char *why)
{
	lua_State *L = ch->h.L;

	if (ch->closed)
		return;
	ch->closed = 1;
	uv_close((uv_handle_t *)&ch->pipe, on_uv_close);
	if (why) {
		lua_pushstring(L, why);
		api_call_uservalue(L, ch, UV_ON_CLOSE, 1);
	}
}

static void on_alloc(uv_handle_t *handle, size_t hint, uv_buf_t *buf)
{
	struct channel *ch = handle->data;
	size_t avail;
	uint8_t *p = frame_reader_space(&ch->rd, &avail);

	(void)hint;
	*buf = uv_buf_init((char *)p, (unsigned)avail);
}

/**
 * dispatch() - hand every complete frame to Lua
 * @ch:		channel
 */
static void dispatch(struct channel *ch)
{
	lua_State *L = ch->h.L;
	struct frame f;
	int rc;

	while (!ch->closed && (rc = frame_reader_next(&ch->rd, &f)) != 0) {
		if (rc < 0) {
			lua_pushliteral(L, "oversized");
			api_call_uservalue(L, ch, UV_ON_ERROR, 1);
			continue;
		}
		lua_pushinteger(L, f.type);
		lua_pushinteger(L, f.id);
		lua_pushlstring(L, (const char *)f.payload, f.len);
		api_call_uservalue(L, ch, UV_ON_FRAME, 3);
	}
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct channel *ch = s->data;

	(void)buf;
	if (n > 0) {
		frame_reader_commit(&ch->rd, (size_t)n);
		dispatch(ch);
	} else if (n < 0) {
		channel_shut(ch, n == UV_EOF ? "eof" : uv_strerror((int)n));
	}
}

static void on_written(uv_write_t *req, int status)
{
	struct channel_write *w = (struct channel_write *)req;
	struct channel *ch = w->ch;

	ch->queued -= w->len;
	free(w);
	if (status < 0 && status != UV_ECANCELED)
		channel_shut(ch, uv_strerror(status));
}

/**
 * channel_queue() - queue the unsent tail of a frame
 * @ch:		channel
 * @parts:	header and payload
 * @skip:	bytes of @parts already written
 *
 * Return: 0 or a libuv error
 */
static int channel_queue(struct channel *ch, const uv_buf_t parts[2], size_t skip)
{
	size_t total = parts[0].len + parts[1].len, len = total - skip, off = 0;
	struct channel_write *w = malloc(sizeof(*w) + len);
	uv_buf_t b;
	int i;

	if (!w)
		return UV_ENOMEM;
	for (i = 0; i < 2; i++) {
		size_t n = parts[i].len, s = skip > n ? n : skip;

		memcpy(w->data + off, parts[i].base + s, n - s);
		off += n - s;
		skip -= s;
	}
	w->ch = ch;
	w->len = len;
	b = uv_buf_init((char *)w->data, (unsigned)len);
	i = uv_write(&w->req, (uv_stream_t *)&ch->pipe, &b, 1, on_written);
	if (i < 0) {
		free(w);
		return i;
	}
	ch->queued += len;
	return 0;
}

/* ch:send(type, id, payload) -> true | nil, msg, code */
static int lchannel_send(lua_State *L)
{
	struct channel *ch = check_channel(L, 1);
	lua_Integer type = luaL_checkinteger(L, 2), id = luaL_checkinteger(L, 3);
	size_t len, written = 0;
	const char *payload = luaL_optlstring(L, 4, "", &len);
	uint8_t hdr[FRAME_HDR_LEN];
	uv_buf_t parts[2];
	int rc;

	luaL_argcheck(L, type >= 0 && type <= 255, 2, "frame type out of range");
	luaL_argcheck(L, id >= 0 && id <= 0xffffffffLL, 3, "frame id out of range");
	luaL_argcheck(L, len <= FRAME_MAX_PAYLOAD, 4, "payload larger than FRAME_MAX_PAYLOAD");
	if (ch->queued + len + FRAME_HDR_LEN > CHANNEL_MAX_QUEUE)
		return api_fail(L, "channel write queue full", "busy");
	frame_header(hdr, (uint8_t)type, (uint32_t)id, (uint32_t)len);
	parts[0] = uv_buf_init((char *)hdr, sizeof(hdr));
	parts[1] = uv_buf_init((char *)payload, (unsigned)len);
	if (ch->queued == 0) {
		rc = uv_try_write((uv_stream_t *)&ch->pipe, parts, 2);
		if (rc < 0 && rc != UV_EAGAIN)
			return api_fail(L, uv_strerror(rc), uv_err_name(rc));
		written = rc > 0 ? (size_t)rc : 0;
	}
	if (written < sizeof(hdr) + len) {
		rc = channel_queue(ch, parts, written);
		if (rc < 0)
			return api_fail(L, uv_strerror(rc), uv_err_name(rc));
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* ch:queued() -> bytes accepted by send() but not yet written */
static int lchannel_queued(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)check_channel(L, 1)->queued);
	return 1;
}

/* ch:close(); a second close does nothing */
static int lchannel_close(lua_State *L)
{
	struct channel **p = luaL_checkudata(L, 1, CHANNEL_MT);

	if (*p) {
		(*p)->slot = NULL;
		channel_shut(*p, NULL);
	}
	*p = NULL;
	return 0;
}

static int lchannel_tostring(lua_State *L)
{
	struct channel **p = luaL_checkudata(L, 1, CHANNEL_MT);

	lua_pushfstring(L, "gondolin.channel (%s)", *p ? "open" : "closed");
	return 1;
}

/**
 * lchannel_new() - core.channel(fd, {on_frame=, on_error=, on_close=,
 * max_payload=})
 * @L:		Lua state
 *
 * Return: the channel userdata; it owns @fd from now on
 */
static int lchannel_new(lua_State *L)
{
	int fd = (int)luaL_checkinteger(L, 1), rc;
	lua_Integer max = FRAME_MAX_PAYLOAD;
	struct channel **p, *ch;

	luaL_checktype(L, 2, LUA_TTABLE);
	if (lua_getfield(L, 2, "max_payload") != LUA_TNIL)
		max = luaL_checkinteger(L, -1);
	luaL_argcheck(L, max > 0 && max <= FRAME_MAX_PAYLOAD, 2,
		      "max_payload must be 1..FRAME_MAX_PAYLOAD");
	p = lua_newuserdatauv(L, sizeof(*p), UV_COUNT);
	*p = NULL;
	luaL_setmetatable(L, CHANNEL_MT);
	ch = calloc(1, sizeof(*ch));
	if (!ch || frame_reader_init(&ch->rd, (size_t)max) < 0) {
		free(ch);
		return luaL_error(L, "out of memory");
	}
	uv_pipe_init(api_loop(L), &ch->pipe, 0);
	ch->pipe.data = ch;
	rc = uv_pipe_open(&ch->pipe, fd);
	if (rc == 0)
		rc = uv_read_start((uv_stream_t *)&ch->pipe, on_alloc, on_read);
	if (rc < 0) {
		ch->closed = 1;
		uv_close((uv_handle_t *)&ch->pipe, on_uv_close);
		return api_fail(L, uv_strerror(rc), uv_err_name(rc));
	}
	*p = ch;
	ch->slot = p;
	api_handle_register(L, -1, ch);
	lua_getfield(L, 2, "on_frame");
	lua_setiuservalue(L, -2, UV_ON_FRAME);
	lua_getfield(L, 2, "on_error");
	lua_setiuservalue(L, -2, UV_ON_ERROR);
	lua_getfield(L, 2, "on_close");
	lua_setiuservalue(L, -2, UV_ON_CLOSE);
	return 1;
}

static const luaL_Reg channel_methods[] = {
	{ "send",	lchannel_send },
	{ "queued",	lchannel_queued },
	{ "close",	lchannel_close },
	{ NULL, NULL }
};

static const luaL_Reg channel_meta[] = {
	{ "__gc",	lchannel_close },
	{ "__close",	lchannel_close },
	{ "__tostring",	lchannel_tostring },
	{ NULL, NULL }
};

void api_open_channel(lua_State *L)
{
	api_new_class(L, CHANNEL_MT, channel_meta, channel_methods);
	lua_pushcfunction(L, lchannel_new);
	lua_setfield(L, -2, "channel");
}
