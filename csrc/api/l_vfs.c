/* SPDX-License-Identifier: MIT */
/* l_vfs.c - the FS RPC server (vfs/server.c) and C providers, for Lua
 *
 * Theory of Operation
 *
 * core.vfs() makes one server per VM. Lua adds routes (srv:mount) with a C
 * provider (core.realfs(root)) or none (a Lua provider, served by
 * lua/gondolin/vfs.lua). Each FS request frame goes through srv:frame():
 * requests for C providers are answered at once, in C, and the reply
 * payload comes back as a string; the others come back as a call table
 * (the routed request) that Lua serves on a coroutine and answers with
 * srv:reply(call, result) or srv:fail(call, "ENAME").
 *
 * Call tables carry the request's fields by the protocol's names, with the
 * route's index (mount, 1-based) and the path inside the route. Results
 * use the same names: attr (a map like the wire's, times in ns), data,
 * target, size (written), entries {{name, attr}}, eof, fh, and the statfs
 * fields. Values are checked here again; a wrong one is EIO.
 *
 * User values of the server: 1 = table of provider userdata (kept alive
 * as long as the server).
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "vfs/vfs.h"

#define VFS_MT		"gondolin.vfs"
#define REALFS_MT	"gondolin.realfs"

struct cprov {
	const struct vfs_provider_ops *ops;
	void *self;
};

static struct vfs_server *check_srv(lua_State *L, int idx)
{
	struct vfs_server **p = luaL_checkudata(L, idx, VFS_MT);

	luaL_argcheck(L, *p != NULL, idx, "vfs server is closed");
	return *p;
}

/* -------------------------------------------------------------------------
 * C providers
 */

/* core.realfs(root [, walk]) -> provider | nil, msg, code; walk: resolve
 * paths by component walk instead of openat2 (specs cover both) */
static int lrealfs_new(lua_State *L)
{
	const char *root = luaL_checkstring(L, 1);
	bool walk = lua_toboolean(L, 2);
	struct cprov *p = lua_newuserdatauv(L, sizeof(*p), 0);

	p->ops = NULL;
	luaL_setmetatable(L, REALFS_MT);
	p->self = realfs_new(root, walk);
	if (!p->self)
		return api_fail_errno(L, errno, root);
	p->ops = &realfs_ops;
	return 1;
}

static int lrealfs_gc(lua_State *L)
{
	struct cprov *p = luaL_checkudata(L, 1, REALFS_MT);

	if (p->ops)
		p->ops->destroy(p->self);
	p->ops = NULL;
	return 0;
}

/* -------------------------------------------------------------------------
 * Call tables <-> struct vfs_call
 */

static const char *const access_names[] = { "read", "write", "rdwr", NULL };

static void set_str(lua_State *L, const char *k, const char *v)
{
	if (!v)
		return;
	lua_pushstring(L, v);
	lua_setfield(L, -2, k);
}

static void set_bool(lua_State *L, const char *k, bool v)
{
	lua_pushboolean(L, v);
	lua_setfield(L, -2, k);
}

static void set_time(lua_State *L, const char *k, unsigned int set,
		     unsigned int bit, unsigned int now, int64_t t)
{
	if (set & now)
		lua_pushliteral(L, "now");
	else if (set & bit)
		lua_pushinteger(L, t);
	else
		return;
	lua_setfield(L, -2, k);
}

/* the SETATTR fields that are set */
static void push_setattr(lua_State *L, const struct vfs_req *rq)
{
	if (rq->set & VFS_SET_MODE)
		api_set_int(L, "mode", rq->mode);
	if (rq->set & VFS_SET_UID)
		api_set_int(L, "uid", rq->uid);
	if (rq->set & VFS_SET_GID)
		api_set_int(L, "gid", rq->gid);
	if (rq->set & VFS_SET_SIZE)
		api_set_int(L, "size", (lua_Integer)rq->size);
	set_time(L, "atime", rq->set, VFS_SET_ATIME, VFS_SET_ATIME_NOW, rq->atime);
	set_time(L, "mtime", rq->set, VFS_SET_MTIME, VFS_SET_MTIME_NOW, rq->mtime);
}

/**
 * push_call() - the call table for routed call @c
 * @L:		Lua state
 * @s:		server
 * @c:		call
 * @deferred:	it came from a frame and counts in s->pending
 */
static void push_call(lua_State *L, const struct vfs_server *s,
		      const struct vfs_call *c, bool deferred)
{
	const struct vfs_req *rq = &c->rq;

	lua_createtable(L, 0, 16);
	set_str(L, "op", fs_op_name(rq->op));
	api_set_int(L, "mount", c->mount + 1);
	lua_pushstring(L, s->m[c->mount].path);
	lua_setfield(L, -2, "mount_path");
	set_str(L, "path", rq->path);
	set_str(L, "to", rq->path2);
	set_str(L, "target", rq->target);
	if (rq->has_fh)
		api_set_int(L, "fh", (lua_Integer)rq->fh);
	if (rq->op == FS_SETATTR) {
		push_setattr(L, rq);
	} else if (rq->op == FS_MKDIR || rq->op == FS_CREATE) {
		api_set_int(L, "mode", rq->mode);
	}
	if (rq->op == FS_OPEN || rq->op == FS_CREATE) {
		set_str(L, "access", access_names[rq->access]);
		set_bool(L, "append", rq->append);
		set_bool(L, "trunc", rq->trunc);
		set_bool(L, "excl", rq->excl);
	}
	if (rq->op == FS_READ || rq->op == FS_WRITE || rq->op == FS_READDIR)
		api_set_int(L, "offset", (lua_Integer)rq->offset);
	if (rq->op == FS_READ)
		api_set_int(L, "size", (lua_Integer)rq->size);
	if (rq->op == FS_WRITE) {
		set_bool(L, "append", c->handle >= 0 && s->h[c->handle].append);
		lua_pushlstring(L, (const char *)rq->data, rq->len);
		lua_setfield(L, -2, "data");
	}
	if (rq->op == FS_READDIR) {
		set_bool(L, "plus", rq->plus);
		api_set_int(L, "dir_skip", (lua_Integer)c->dir_skip);
	}
	if (rq->op == FS_RENAME)
		api_set_int(L, "flags", rq->flags);
	if (rq->op == FS_ACCESS)
		api_set_int(L, "mask", rq->mask);
	if (rq->op == FS_FSYNC)
		set_bool(L, "datasync", rq->datasync);
	if (deferred)
		set_bool(L, "deferred", true);
}

static lua_Integer opt_int(lua_State *L, int t, const char *k, lua_Integer def,
			   unsigned int *set, unsigned int bit)
{
	lua_Integer v = def;

	if (lua_getfield(L, t, k) != LUA_TNIL) {
		if (!lua_isinteger(L, -1))
			luaL_error(L, "vfs call: %s must be an integer", k);
		v = lua_tointeger(L, -1);
		if (set)
			*set |= bit;
	}
	lua_pop(L, 1);
	return v;
}

static bool opt_bool(lua_State *L, int t, const char *k)
{
	bool v;

	lua_getfield(L, t, k);
	v = lua_toboolean(L, -1);
	lua_pop(L, 1);
	return v;
}

/* a string field, left on the stack (it must outlive the call) */
static const char *opt_str(lua_State *L, int t, const char *k, size_t *len)
{
	lua_getfield(L, t, k);
	if (lua_isnil(L, -1))
		return NULL;
	if (lua_type(L, -1) != LUA_TSTRING)
		luaL_error(L, "vfs call: %s must be a string", k);
	return lua_tolstring(L, -1, len);
}

static void opt_time(lua_State *L, int t, const char *k, struct vfs_req *rq,
		     bool mtime)
{
	unsigned int bit = mtime ? VFS_SET_MTIME : VFS_SET_ATIME;

	lua_getfield(L, t, k);
	if (lua_isinteger(L, -1)) {
		*(mtime ? &rq->mtime : &rq->atime) = lua_tointeger(L, -1);
		rq->set |= bit;
	} else if (lua_type(L, -1) == LUA_TSTRING && !strcmp(lua_tostring(L, -1), "now")) {
		rq->set |= mtime ? VFS_SET_MTIME_NOW : VFS_SET_ATIME_NOW;
	} else if (!lua_isnil(L, -1)) {
		luaL_error(L, "vfs call: %s must be an integer or \"now\"", k);
	}
	lua_pop(L, 1);
}

static int op_of(const char *name)
{
	unsigned int i;

	for (i = 1; i <= FS_OP_MAX; i++)
		if (fs_op_name(i) && !strcmp(fs_op_name(i), name))
			return (int)i;
	return -1;
}

/**
 * to_req() - fill @rq from the call table at @t (paths as they are)
 * @L:		Lua state; the table's strings are left on the stack
 * @t:		table index
 * @rq:		request
 */
static void to_req(lua_State *L, int t, struct vfs_req *rq)
{
	const char *op = (lua_getfield(L, t, "op"), lua_tostring(L, -1));
	int o = op ? op_of(op) : -1;
	size_t len = 0;

	memset(rq, 0, sizeof(*rq));
	rq->fd = -1;
	if (o < 0)
		luaL_error(L, "vfs call: unknown op %s", op ? op : "(none)");
	rq->op = (enum fs_op)o;
	rq->path = opt_str(L, t, "path", NULL);
	rq->path2 = opt_str(L, t, "to", NULL);
	rq->target = opt_str(L, t, "target", NULL);
	rq->data = (const uint8_t *)opt_str(L, t, "data", &len);
	rq->len = len;
	rq->fh = (uint64_t)opt_int(L, t, "fh", 0, NULL, 0);
	rq->has_fh = rq->fh != 0;
	if (rq->op == FS_SETATTR) {
		rq->mode = (uint32_t)opt_int(L, t, "mode", 0, &rq->set, VFS_SET_MODE) & 07777;
		rq->uid = (uint32_t)opt_int(L, t, "uid", 0, &rq->set, VFS_SET_UID);
		rq->gid = (uint32_t)opt_int(L, t, "gid", 0, &rq->set, VFS_SET_GID);
		rq->size = (uint64_t)opt_int(L, t, "size", 0, &rq->set, VFS_SET_SIZE);
		opt_time(L, t, "atime", rq, false);
		opt_time(L, t, "mtime", rq, true);
	} else {
		rq->mode = (uint32_t)opt_int(L, t, "mode", 0644, NULL, 0) & 07777;
		rq->size = (uint64_t)opt_int(L, t, "size", 0, NULL, 0);
	}
	lua_getfield(L, t, "access");
	rq->access = (enum vfs_access)luaL_checkoption(L, -1, "read", access_names);
	lua_pop(L, 1);
	rq->append = opt_bool(L, t, "append");
	rq->trunc = opt_bool(L, t, "trunc");
	rq->excl = opt_bool(L, t, "excl");
	rq->plus = opt_bool(L, t, "plus");
	rq->datasync = opt_bool(L, t, "datasync");
	rq->offset = (uint64_t)opt_int(L, t, "offset", 0, NULL, 0);
	rq->flags = (uint32_t)opt_int(L, t, "flags", 0, NULL, 0);
	rq->mask = (uint32_t)opt_int(L, t, "mask", 0, NULL, 0);
	if (rq->op == FS_READ && rq->size > FS_IO_MAX)
		rq->size = FS_IO_MAX;
}

/**
 * to_call() - a routed call table back into @c, re-checking its handle
 * @L:		Lua state
 * @s:		server
 * @t:		table index
 * @c:		call
 *
 * Return: 0 or -EBADF (its handle was released meanwhile)
 */
static int to_call(lua_State *L, struct vfs_server *s, int t, struct vfs_call *c)
{
	lua_Integer mi = opt_int(L, t, "mount", 0, NULL, 0);

	to_req(L, t, &c->rq);
	luaL_argcheck(L, mi >= 1 && mi <= (lua_Integer)s->nm && c->rq.path, t,
		      "not a routed vfs call");
	c->mount = (unsigned int)(mi - 1);
	c->dir_skip = (uint64_t)opt_int(L, t, "dir_skip", 0, NULL, 0);
	c->handle = -1;
	if (c->rq.has_fh) {
		c->handle = vfs_server_handle(s, c->rq.fh);
		if (c->handle < 0 || s->h[c->handle].mount != c->mount)
			return -EBADF;
		c->rq.fd = s->h[c->handle].fd;
	}
	return 0;
}

/* -------------------------------------------------------------------------
 * Results
 */

static void push_attr(lua_State *L, const struct vfs_attr *a)
{
	lua_createtable(L, 0, 11);
	api_set_int(L, "mode", a->mode);
	api_set_int(L, "size", (lua_Integer)a->size);
	api_set_int(L, "nlink", (lua_Integer)a->nlink);
	api_set_int(L, "uid", (lua_Integer)a->uid);
	api_set_int(L, "gid", (lua_Integer)a->gid);
	api_set_int(L, "ino", (lua_Integer)a->ino);
	api_set_int(L, "blocks", (lua_Integer)a->blocks);
	api_set_int(L, "atime", a->atime);
	api_set_int(L, "mtime", a->mtime);
	api_set_int(L, "ctime", a->ctime);
	if (a->ttl_ms >= 0)
		api_set_int(L, "ttl_ms", a->ttl_ms);
}

/* entries of a READDIR reply, decoded back from the dir buffer */
static void push_entries(lua_State *L, const struct vfs_dir *d)
{
	struct cbor_reader r;
	struct cbor_item it, k, v;
	unsigned int i, j, n;

	lua_createtable(L, (int)d->n, 0);
	cbor_reader_init(&r, d->w.buf, d->w.len);
	for (i = 1; i <= d->n; i++) {
		lua_createtable(L, 2, 0);
		cbor_read(&r, &it);		/* [name, attr] */
		cbor_read(&r, &it);
		lua_pushlstring(L, (const char *)it.str, it.len);
		lua_rawseti(L, -2, 1);
		cbor_read(&r, &it);
		n = (unsigned int)it.u;
		lua_createtable(L, 0, (int)n);
		for (j = 0; j < n; j++) {
			cbor_read(&r, &k);
			cbor_read(&r, &v);
			lua_pushinteger(L, v.type == CBOR_NINT ? -1 - (lua_Integer)v.u :
					   (lua_Integer)v.u);
			lua_pushlstring(L, (const char *)k.str, k.len);
			lua_insert(L, -2);
			lua_rawset(L, -3);
		}
		lua_rawseti(L, -2, 2);
		lua_rawseti(L, -2, (lua_Integer)i);
	}
}

static void push_statfs(lua_State *L, const struct vfs_statfs *st)
{
	api_set_int(L, "bsize", (lua_Integer)st->bsize);
	api_set_int(L, "blocks", (lua_Integer)st->blocks);
	api_set_int(L, "bfree", (lua_Integer)st->bfree);
	api_set_int(L, "bavail", (lua_Integer)st->bavail);
	api_set_int(L, "files", (lua_Integer)st->files);
	api_set_int(L, "ffree", (lua_Integer)st->ffree);
	api_set_int(L, "namelen", (lua_Integer)st->namelen);
}

/* the result table of a C provider's answer */
static void push_result(lua_State *L, const struct vfs_server *s,
			const struct vfs_call *c, const struct vfs_reply *rp,
			uint64_t fh, const struct vfs_dir *d)
{
	lua_newtable(L);
	switch (c->rq.op) {
	case FS_LOOKUP: case FS_GETATTR: case FS_SETATTR: case FS_SYMLINK:
	case FS_MKDIR: case FS_LINK: case FS_CREATE:
		push_attr(L, &rp->attr);
		lua_setfield(L, -2, "attr");
		break;
	case FS_READLINK:
		lua_pushlstring(L, s->target, rp->len);
		lua_setfield(L, -2, "target");
		break;
	case FS_READ:
		lua_pushlstring(L, (const char *)s->out + 1, rp->len);
		lua_setfield(L, -2, "data");
		break;
	case FS_WRITE:
		api_set_int(L, "size", (lua_Integer)rp->written);
		break;
	case FS_READDIR:
		push_entries(L, d);
		lua_setfield(L, -2, "entries");
		set_bool(L, "eof", rp->eof);
		break;
	case FS_STATFS:
		push_statfs(L, &rp->st);
		break;
	default:
		break;
	}
	if (c->rq.op == FS_OPEN || c->rq.op == FS_CREATE)
		api_set_int(L, "fh", (lua_Integer)fh);
}

static int fail_name(lua_State *L, int err)
{
	lua_pushnil(L);
	lua_pushstring(L, fs_errno_name(err));
	return 2;
}

/* -------------------------------------------------------------------------
 * Methods
 */

/* srv:mount(path, provider|nil, readonly) -> index | nil, msg */
static int lvfs_mount(lua_State *L)
{
	struct vfs_server *s = check_srv(L, 1);
	const char *path = luaL_checkstring(L, 2);
	struct cprov *p = lua_isnoneornil(L, 3) ? NULL : luaL_checkudata(L, 3, REALFS_MT);
	int mi;

	luaL_argcheck(L, !p || p->ops, 3, "provider is closed");
	mi = vfs_server_mount(s, path, p ? p->ops : NULL, p ? p->self : NULL,
			      lua_toboolean(L, 4));
	if (mi < 0)
		return api_fail_errno(L, -mi, path);
	if (p) {
		lua_getiuservalue(L, 1, 1);
		lua_pushvalue(L, 3);
		lua_rawseti(L, -2, mi + 1);
		lua_pop(L, 1);
	}
	lua_pushinteger(L, mi + 1);
	return 1;
}

/* srv:rule(index, "hide"|"deny_write", path) -> true | nil, msg */
static int lvfs_rule(lua_State *L)
{
	static const char *const kinds[] = { "hide", "deny_write", NULL };
	struct vfs_server *s = check_srv(L, 1);
	lua_Integer mi = luaL_checkinteger(L, 2);
	int kind = luaL_checkoption(L, 3, NULL, kinds), ret;
	const char *path = luaL_checkstring(L, 4);

	luaL_argcheck(L, mi >= 1 && mi <= (lua_Integer)s->nm, 2, "no such mount");
	ret = vfs_server_rule(s, (unsigned int)(mi - 1), kind == 0, path);
	if (ret < 0)
		return api_fail_errno(L, -ret, path);
	lua_pushboolean(L, 1);
	return 1;
}

/* srv:defer_all(bool): hooks are set, every request goes to Lua */
static int lvfs_defer_all(lua_State *L)
{
	check_srv(L, 1)->defer_all = lua_toboolean(L, 2);
	return 0;
}

/* srv:frame(type, payload) -> reply[, nil, limit] | false, call; limit names the
 * per-VM bound ("fs_pending", "fs_handles") that refused the request */
static int lvfs_frame(lua_State *L)
{
	struct vfs_server *s = check_srv(L, 1);
	lua_Integer type = luaL_checkinteger(L, 2);
	size_t len;
	const char *p = luaL_checklstring(L, 3, &len);
	struct vfs_call c;

	luaL_argcheck(L, type >= 0 && type <= 255, 2, "frame type out of range");
	if (vfs_server_request(s, (unsigned int)type, (const uint8_t *)p, len, &c) ==
	    VFS_REPLIED) {
		lua_pushlstring(L, (const char *)s->out, s->out_len);
		if (!s->limit)
			return 1;
		lua_pushnil(L);
		lua_pushstring(L, s->limit);	/* a per-VM bound refused it */
		return 3;
	}
	lua_pushboolean(L, 0);
	push_call(L, s, &c, true);
	return 2;
}

/* srv:route(call) -> routed call | nil, "ENAME"; call has guest paths */
static int lvfs_route(lua_State *L)
{
	struct vfs_server *s = check_srv(L, 1);
	struct vfs_call c;
	int ret;

	luaL_checktype(L, 2, LUA_TTABLE);
	to_req(L, 2, &c.rq);
	if (c.rq.path && !fs_path_ok(c.rq.path, strlen(c.rq.path)))
		return fail_name(L, EINVAL);
	if (c.rq.path2 && !fs_path_ok(c.rq.path2, strlen(c.rq.path2)))
		return fail_name(L, EINVAL);
	if (!c.rq.path && !c.rq.has_fh)
		return luaL_error(L, "vfs call: path or fh required");
	ret = vfs_server_route(s, &c);
	if (ret < 0)
		return fail_name(L, -ret);
	push_call(L, s, &c, false);
	return 1;
}

/* srv:call(call) -> result | nil, "ENAME": the route's C provider */
static int lvfs_call(lua_State *L)
{
	struct vfs_server *s = check_srv(L, 1);
	struct vfs_reply rp;
	struct vfs_call c;
	struct vfs_dir d;
	uint64_t fh = 0;
	int ret;

	luaL_checktype(L, 2, LUA_TTABLE);
	ret = to_call(L, s, 2, &c);
	luaL_argcheck(L, s->m[c.mount].ops, 2, "the route has no C provider");
	if (ret == 0 && c.rq.op == FS_RELEASE) {
		vfs_server_release(s, c.handle);
		lua_newtable(L);
		return 1;
	}
	if (ret == 0)
		ret = vfs_server_call(s, &c, &rp, &d);
	if (ret == 0 && (c.rq.op == FS_OPEN || c.rq.op == FS_CREATE)) {
		ret = vfs_server_open(s, &c, rp.fd, &fh);
		if (ret < 0 && rp.fd >= 0)
			close(rp.fd);
	}
	if (ret < 0)
		return fail_name(L, -ret);
	push_result(L, s, &c, &rp, fh, &d);
	return 1;
}

/* srv:open(call) -> fh | nil, "ENAME": a handle for a Lua provider's file */
static int lvfs_open(lua_State *L)
{
	struct vfs_server *s = check_srv(L, 1);
	struct vfs_call c;
	uint64_t fh;
	int ret;

	luaL_checktype(L, 2, LUA_TTABLE);
	to_call(L, s, 2, &c);
	ret = vfs_server_open(s, &c, -1, &fh);
	if (ret < 0)
		return fail_name(L, -ret);
	lua_pushinteger(L, (lua_Integer)fh);
	return 1;
}

/* srv:release(fh) */
static int lvfs_release(lua_State *L)
{
	struct vfs_server *s = check_srv(L, 1);
	int h = vfs_server_handle(s, (uint64_t)luaL_checkinteger(L, 2));

	if (h >= 0)
		vfs_server_release(s, h);
	return 0;
}

/* one attr map of a result into @a; false if it is not one */
static bool to_attr(lua_State *L, int t, struct vfs_attr *a)
{
	static const char *const k[] = { "size", "nlink", "uid", "gid", "ino",
		"blocks" };
	uint64_t *v[] = { &a->size, &a->nlink, &a->uid, &a->gid, &a->ino, &a->blocks };
	int64_t *tm[] = { &a->atime, &a->mtime, &a->ctime };
	static const char *const tk[] = { "atime", "mtime", "ctime" };
	lua_Integer x;
	size_t i;

	if (!lua_istable(L, t))
		return false;
	memset(a, 0, sizeof(*a));
	a->ttl_ms = VFS_TTL_DEFAULT;
	lua_getfield(L, t, "mode");
	x = lua_tointeger(L, -1);
	lua_pop(L, 1);
	if (x <= 0 || x > 0177777)
		return false;
	a->mode = (uint32_t)x;
	for (i = 0; i < 6; i++) {
		lua_getfield(L, t, k[i]);
		x = lua_tointeger(L, -1);
		lua_pop(L, 1);
		if (x < 0)
			return false;
		*v[i] = (uint64_t)x;
	}
	for (i = 0; i < 3; i++) {
		lua_getfield(L, t, tk[i]);
		*tm[i] = lua_tointeger(L, -1);
		lua_pop(L, 1);
	}
	lua_getfield(L, t, "ttl_ms");
	if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 0 &&
	    lua_tointeger(L, -1) <= INT32_MAX)
		a->ttl_ms = (int32_t)lua_tointeger(L, -1);
	lua_pop(L, 1);
	return true;
}

/* READDIR entries of a result table into @d */
static bool to_entries(lua_State *L, int t, struct vfs_dir *d, bool *eof)
{
	struct vfs_attr a;
	lua_Integer i, n;
	const char *name;
	size_t len;

	if (lua_getfield(L, t, "entries") != LUA_TTABLE)
		return false;
	n = (lua_Integer)lua_rawlen(L, -1);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, -1, i);
		if (!lua_istable(L, -1) || lua_rawgeti(L, -1, 1) != LUA_TSTRING ||
		    lua_rawgeti(L, -2, 2) != LUA_TTABLE)
			return false;
		name = lua_tolstring(L, -2, &len);
		if (!to_attr(L, lua_gettop(L), &a))
			return false;
		if (vfs_dir_add(d, name, len, &a) < 0) {
			*eof = false;
			lua_pop(L, 3);
			break;
		}
		lua_pop(L, 3);
	}
	lua_pop(L, 1);
	return true;
}

/**
 * from_result() - a Lua provider's result table into @rp (and @d)
 * @L:		Lua state
 * @s:		server (buffers)
 * @c:		call
 * @t:		result table index
 * @rp, @d, @fh: filled in
 *
 * Return: true, or false when the result has the wrong shape
 */
static bool from_result(lua_State *L, struct vfs_server *s, const struct vfs_call *c,
			int t, struct vfs_reply *rp, struct vfs_dir *d, uint64_t *fh)
{
	enum fs_op op = c->rq.op;
	const char *str;
	size_t len = 0;
	bool ok = true;

	memset(rp, 0, sizeof(*rp));
	if (op == FS_LOOKUP || op == FS_GETATTR || op == FS_SETATTR ||
	    op == FS_SYMLINK || op == FS_MKDIR || op == FS_LINK || op == FS_CREATE) {
		lua_getfield(L, t, "attr");
		ok = to_attr(L, lua_gettop(L), &rp->attr);
		lua_pop(L, 1);
	}
	if (op == FS_OPEN || op == FS_CREATE) {
		lua_getfield(L, t, "fh");
		*fh = (uint64_t)lua_tointeger(L, -1);
		ok = ok && vfs_server_handle(s, *fh) >= 0;
		lua_pop(L, 1);
	}
	if (op == FS_READ || op == FS_READLINK) {
		str = (lua_getfield(L, t, op == FS_READ ? "data" : "target"),
		       lua_tolstring(L, -1, &len));
		ok = str && (op == FS_READ ? len <= c->rq.size :
			     len > 0 && len <= FS_PATH_MAX && !memchr(str, 0, len));
		if (ok) {
			rp->buf = op == FS_READ ? s->out + 1 : (uint8_t *)s->target;
			memcpy(rp->buf, str, len);
			rp->len = len;
		}
		lua_pop(L, 1);
	}
	if (op == FS_WRITE) {
		lua_getfield(L, t, "size");
		ok = lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 0 &&
		     (size_t)lua_tointeger(L, -1) <= c->rq.len;
		rp->written = (uint64_t)lua_tointeger(L, -1);
		lua_pop(L, 1);
	}
	if (op == FS_READDIR) {
		rp->eof = opt_bool(L, t, "eof");
		vfs_dir_init(s, c, d);
		ok = to_entries(L, t, d, &rp->eof);
	}
	if (op == FS_STATFS) {
		rp->st.bsize = (uint64_t)opt_int(L, t, "bsize", 4096, NULL, 0);
		rp->st.blocks = (uint64_t)opt_int(L, t, "blocks", 0, NULL, 0);
		rp->st.bfree = (uint64_t)opt_int(L, t, "bfree", 0, NULL, 0);
		rp->st.bavail = (uint64_t)opt_int(L, t, "bavail", 0, NULL, 0);
		rp->st.files = (uint64_t)opt_int(L, t, "files", 0, NULL, 0);
		rp->st.ffree = (uint64_t)opt_int(L, t, "ffree", 0, NULL, 0);
		rp->st.namelen = (uint64_t)opt_int(L, t, "namelen", FS_NAME_MAX, NULL, 0);
	}
	return ok;
}

static void done_pending(lua_State *L, struct vfs_server *s, int t)
{
	if (opt_bool(L, t, "deferred") && s->pending > 0)
		s->pending--;
}

/* srv:reply(call, result) -> reply payload (EIO for a wrong shape), ok */
static int lvfs_reply(lua_State *L)
{
	struct vfs_server *s = check_srv(L, 1);
	struct vfs_reply rp;
	struct vfs_call c;
	struct vfs_dir d;
	uint64_t fh = 0;
	bool ok;

	luaL_checktype(L, 2, LUA_TTABLE);
	luaL_checktype(L, 3, LUA_TTABLE);
	done_pending(L, s, 2);
	to_call(L, s, 2, &c);	/* a handle released meanwhile is the provider's business */
	ok = from_result(L, s, &c, 3, &rp, &d, &fh);
	if (ok)
		vfs_server_reply(s, &c, &rp, fh, &d);
	else
		vfs_server_error(s, EIO);
	lua_pushlstring(L, (const char *)s->out, s->out_len);
	lua_pushboolean(L, ok);
	return 2;
}

/* srv:fail(call, "ENAME") -> reply payload */
static int lvfs_fail(lua_State *L)
{
	struct vfs_server *s = check_srv(L, 1);
	size_t len;
	const char *name = luaL_checklstring(L, 3, &len);

	luaL_checktype(L, 2, LUA_TTABLE);
	done_pending(L, s, 2);
	vfs_server_error(s, fs_errno_value(name, len));
	lua_pushlstring(L, (const char *)s->out, s->out_len);
	return 1;
}

/* srv:stats() -> {handles=, pending=, mounts=} */
static int lvfs_stats(lua_State *L)
{
	struct vfs_server *s = check_srv(L, 1);

	lua_createtable(L, 0, 3);
	api_set_int(L, "handles", s->nh);
	api_set_int(L, "pending", s->pending);
	api_set_int(L, "mounts", s->nm);
	return 1;
}

static int lvfs_close(lua_State *L)
{
	struct vfs_server **p = luaL_checkudata(L, 1, VFS_MT);

	if (*p) {
		vfs_server_free(*p);
		free(*p);
		*p = NULL;
	}
	return 0;
}

/* core.vfs() -> server */
static int lvfs_new(lua_State *L)
{
	struct vfs_server **p = lua_newuserdatauv(L, sizeof(*p), 1);

	*p = NULL;
	luaL_setmetatable(L, VFS_MT);
	lua_newtable(L);
	lua_setiuservalue(L, -2, 1);
	*p = malloc(sizeof(**p));
	if (!*p)
		return luaL_error(L, "out of memory");
	vfs_server_init(*p);
	return 1;
}

static const luaL_Reg vfs_methods[] = {
	{ "mount",	lvfs_mount },
	{ "rule",	lvfs_rule },
	{ "defer_all",	lvfs_defer_all },
	{ "frame",	lvfs_frame },
	{ "route",	lvfs_route },
	{ "call",	lvfs_call },
	{ "open",	lvfs_open },
	{ "release",	lvfs_release },
	{ "reply",	lvfs_reply },
	{ "fail",	lvfs_fail },
	{ "stats",	lvfs_stats },
	{ "close",	lvfs_close },
	{ NULL, NULL }
};

static const luaL_Reg vfs_meta[] = {
	{ "__gc",	lvfs_close },
	{ "__close",	lvfs_close },
	{ NULL, NULL }
};

static const luaL_Reg realfs_meta[] = {
	{ "__gc",	lrealfs_gc },
	{ NULL, NULL }
};

void api_open_vfs(lua_State *L)
{
	api_new_class(L, VFS_MT, vfs_meta, vfs_methods);
	api_new_class(L, REALFS_MT, realfs_meta, NULL);
	lua_pushcfunction(L, lvfs_new);
	lua_setfield(L, -2, "vfs");
	lua_pushcfunction(L, lrealfs_new);
	lua_setfield(L, -2, "realfs");
}
