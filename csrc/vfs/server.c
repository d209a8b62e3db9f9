/* SPDX-License-Identifier: MIT */
/* server.c - the host end of the FS RPC: decode, route, rules, handles, reply */

/*
 * DOC: Theory of Operation
 *
 * One FS request frame from the guest becomes one reply, built here in a
 * fixed buffer (struct vfs_server.out). Nothing is allocated per request.
 *
 * Decoding is strict: the payload must be one CBOR map (FS_WRITE: followed
 * by the data) whose known keys have the right types; paths must be
 * normalised (fs_path_ok). A malformed payload is EIO, an unknown type
 * ENOSYS, a bad path EINVAL, as docs/protocol.md says.
 *
 * Routing picks the route with the longest prefix of the path. Routes are
 * the guest mounts plus the parts of a shadow mount served by another
 * provider (its tmpfs paths), so a route need not be a guest mount point.
 * The provider sees the path relative to its route ("/" is its root). A
 * rename or link whose two paths fall in different routes is EXDEV.
 *
 * Rules are applied here, for every provider alike, before it is called:
 * a readonly route refuses every mutation with EROFS; a hidden path (and
 * everything below it) does not exist (ENOENT; creating it is EACCES); a
 * deny_write path refuses mutations with EACCES. Renaming a directory
 * that holds a hidden or denied path is refused too, or the rule could be
 * walked around by moving its parent. A directory that holds hidden names
 * is listed from its start and the guest's offset counted over the names it
 * can see, so hiding never shifts the guest's READDIR offsets.
 *
 * Handles: FS_OPEN/FS_CREATE make a slot in a fixed table; the guest holds
 * (generation << 32 | slot + 1), so a stale or forged fh is EBADF. A C
 * provider's slot holds its descriptor; a Lua provider's its path. FS_RELEASE
 * is always answered here.
 *
 * C providers are called at once (vfs_server_request replies). Requests for
 * a Lua provider, and every request when vfs hooks are set, are handed back
 * as a routed struct vfs_call (VFS_DEFER) for api/l_vfs.c to serve on a
 * coroutine; it answers later through vfs_server_reply/vfs_server_error.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vfs/vfs.h"

enum key_kind { K_PATH, K_PATH2, K_TARGET, K_UINT, K_BOOL, K_TIME };

enum key_bit {
	B_PATH = 1 << 0, B_PATH2 = 1 << 1, B_TARGET = 1 << 2, B_FH = 1 << 3,
	B_MODE = 1 << 4, B_UID = 1 << 5, B_GID = 1 << 6, B_SIZE = 1 << 7,
	B_ATIME = 1 << 8, B_MTIME = 1 << 9, B_ACCESS = 1 << 10,
	B_OFFSET = 1 << 11, B_FLAGS = 1 << 12, B_MASK = 1 << 13,
	B_BOOL = 1 << 14,
};

static const struct {
	const char *name;
	enum key_kind kind;
	unsigned int bit;
} keys[] = {
	{ "path", K_PATH, B_PATH }, { "from", K_PATH, B_PATH },
	{ "to", K_PATH2, B_PATH2 }, { "target", K_TARGET, B_TARGET },
	{ "fh", K_UINT, B_FH }, { "mode", K_UINT, B_MODE },
	{ "uid", K_UINT, B_UID }, { "gid", K_UINT, B_GID },
	{ "size", K_UINT, B_SIZE }, { "atime", K_TIME, B_ATIME },
	{ "mtime", K_TIME, B_MTIME }, { "access", K_UINT, B_ACCESS },
	{ "offset", K_UINT, B_OFFSET }, { "flags", K_UINT, B_FLAGS },
	{ "mask", K_UINT, B_MASK }, { "append", K_BOOL, B_BOOL },
	{ "trunc", K_BOOL, B_BOOL }, { "excl", K_BOOL, B_BOOL },
	{ "datasync", K_BOOL, B_BOOL }, { "plus", K_BOOL, B_BOOL },
};

/* Keys each request needs; the others are optional. */
static const unsigned int required[FS_OP_MAX + 1] = {
	[FS_LOOKUP] = B_PATH, [FS_GETATTR] = B_PATH, [FS_SETATTR] = B_PATH,
	[FS_READLINK] = B_PATH, [FS_SYMLINK] = B_PATH | B_TARGET,
	[FS_MKDIR] = B_PATH | B_MODE, [FS_UNLINK] = B_PATH, [FS_RMDIR] = B_PATH,
	[FS_RENAME] = B_PATH | B_PATH2, [FS_LINK] = B_PATH | B_PATH2,
	[FS_OPEN] = B_PATH | B_ACCESS, [FS_CREATE] = B_PATH | B_MODE | B_ACCESS,
	[FS_READ] = B_FH | B_OFFSET | B_SIZE, [FS_WRITE] = B_FH | B_OFFSET,
	[FS_FSYNC] = B_FH, [FS_RELEASE] = B_FH, [FS_READDIR] = B_PATH,
	[FS_STATFS] = B_PATH, [FS_ACCESS] = B_PATH | B_MASK,
};

/* -------------------------------------------------------------------------
 * Routes and rules
 */

/**
 * vfs_server_init() - an empty server
 * @s:		server (zeroed here)
 *
 * Return: 0
 */
int vfs_server_init(struct vfs_server *s)
{
	unsigned int i;

	memset(s, 0, offsetof(struct vfs_server, out));
	for (i = 0; i < VFS_HANDLES_MAX; i++)
		s->h[i].fd = -1;
	return 0;
}

/**
 * vfs_server_mount() - add a route
 * @s:		server
 * @path:	guest path, normalised
 * @ops, @self:	C provider, or NULL for a Lua provider
 * @readonly:	refuse mutations
 *
 * Return: the route's index, or -EINVAL (bad or duplicate path), -ENOSPC
 * (too many routes), -ENOMEM
 */
int vfs_server_mount(struct vfs_server *s, const char *path,
		     const struct vfs_provider_ops *ops, void *self, bool readonly)
{
	size_t len = strlen(path);
	struct vfs_mount *m;
	unsigned int i;

	if (!fs_path_ok(path, len))
		return -EINVAL;
	for (i = 0; i < s->nm; i++)
		if (!strcmp(s->m[i].path, path))
			return -EINVAL;
	if (s->nm == VFS_MOUNTS_MAX)
		return -ENOSPC;
	m = &s->m[s->nm];
	memset(m, 0, sizeof(*m));
	m->path = strdup(path);
	if (!m->path)
		return -ENOMEM;
	m->len = len;
	m->ops = ops;
	m->self = self;
	m->readonly = readonly;
	return (int)s->nm++;
}

/**
 * vfs_server_rule() - hide a path of a route, or deny writes below it
 * @s:		server
 * @mi:		route
 * @hide:	true: hide, false: deny_write
 * @path:	path inside the route, normalised, not "/"
 *
 * Return: 0, -EINVAL, -ENOSPC or -ENOMEM
 */
int vfs_server_rule(struct vfs_server *s, unsigned int mi, bool hide,
		    const char *path)
{
	struct vfs_mount *m;
	unsigned int *n;
	char **v;

	if (mi >= s->nm || !fs_path_ok(path, strlen(path)) || !strcmp(path, "/"))
		return -EINVAL;
	m = &s->m[mi];
	v = hide ? m->hide : m->deny;
	n = hide ? &m->nhide : &m->ndeny;
	if (*n == VFS_RULES_MAX)
		return -ENOSPC;
	v[*n] = strdup(path);
	if (!v[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

/* true if @path is @rule or lies below it */
static bool under(const char *path, const char *rule)
{
	size_t n = strlen(rule);

	return !strncmp(path, rule, n) && (path[n] == '\0' || path[n] == '/');
}

/* true if some rule of @v lies strictly below directory @path */
static bool holds(char *const *v, unsigned int n, const char *path)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i], path) && (!strcmp(path, "/") || under(v[i], path)))
			return true;
	return false;
}

/* vfs_hidden() - is @path (inside route @m) hidden? */
bool vfs_hidden(const struct vfs_mount *m, const char *path)
{
	unsigned int i;

	for (i = 0; i < m->nhide; i++)
		if (under(path, m->hide[i]))
			return true;
	return false;
}

static bool denied(const struct vfs_mount *m, const char *path)
{
	unsigned int i;

	for (i = 0; i < m->ndeny; i++)
		if (under(path, m->deny[i]))
			return true;
	return false;
}

/* true if some hidden path is a direct entry of directory @dir */
static bool hides_in(const struct vfs_mount *m, const char *dir)
{
	size_t n = strlen(dir);
	unsigned int i;

	for (i = 0; i < m->nhide; i++) {
		const char *h = m->hide[i], *slash = strrchr(h, '/');

		if ((size_t)(slash - h) == (n == 1 ? 0 : n) && !strncmp(h, dir, slash - h))
			return true;
	}
	return false;
}

/**
 * route_of() - the route with the longest prefix of @path
 * @s:		server
 * @path:	guest path, normalised
 * @rel:	the path inside the route
 *
 * Return: the route's index, or -1 when no route holds @path
 */
static int route_of(const struct vfs_server *s, const char *path, const char **rel)
{
	size_t best = 0;
	unsigned int i;
	int mi = -1;

	for (i = 0; i < s->nm; i++) {
		const struct vfs_mount *m = &s->m[i];

		if (m->len == 1 || (!strncmp(path, m->path, m->len) &&
				    (path[m->len] == '\0' || path[m->len] == '/'))) {
			if (mi < 0 || m->len > best) {
				best = m->len;
				mi = (int)i;
			}
		}
	}
	if (mi >= 0)
		*rel = best == 1 ? path : (path[best] ? path + best : "/");
	return mi;
}

static bool mutates(const struct vfs_req *rq)
{
	switch (rq->op) {
	case FS_SETATTR: case FS_SYMLINK: case FS_MKDIR: case FS_UNLINK:
	case FS_RMDIR: case FS_RENAME: case FS_LINK: case FS_CREATE:
		return true;
	case FS_OPEN:
		return rq->access != VFS_READ || rq->trunc;
	case FS_ACCESS:
		return rq->mask & 2;
	default:
		return false;
	}
}

/* requests whose @path is a name they make (it need not exist) */
static bool creates(enum fs_op op)
{
	return op == FS_SYMLINK || op == FS_MKDIR || op == FS_CREATE;
}

/**
 * rules() - apply route @m's rules to a routed request
 * @m:		route
 * @rq:		request, paths inside the route
 *
 * Return: 0 or a negative errno
 */
static int rules(const struct vfs_mount *m, const struct vfs_req *rq)
{
	bool mut = mutates(rq);

	if (vfs_hidden(m, rq->path))
		return creates(rq->op) ? -EACCES : -ENOENT;
	if (rq->path2 && vfs_hidden(m, rq->path2))
		return -EACCES;
	if (!mut)
		return 0;
	if (m->readonly)
		return -EROFS;
	if (denied(m, rq->path) || (rq->path2 && denied(m, rq->path2)))
		return -EACCES;
	if (rq->op == FS_RENAME && (holds(m->hide, m->nhide, rq->path) ||
				    holds(m->deny, m->ndeny, rq->path) ||
				    holds(m->hide, m->nhide, rq->path2) ||
				    holds(m->deny, m->ndeny, rq->path2)))
		return -EACCES;
	return 0;
}

/* -------------------------------------------------------------------------
 * Handles
 */

int vfs_server_handle(const struct vfs_server *s, uint64_t fh)
{
	uint64_t slot = (fh & 0xffffffffu) - 1;

	if (slot >= VFS_HANDLES_MAX || !s->h[slot].used ||
	    s->h[slot].gen != (uint32_t)(fh >> 32))
		return -1;
	return (int)slot;
}

/**
 * vfs_server_open() - make a handle for an opened file
 * @s:		server
 * @c:		the FS_OPEN / FS_CREATE call (its route and path)
 * @fd:		the C provider's descriptor, or -1
 * @fh:		the handle's fh for the guest
 *
 * Return: 0, -EMFILE (table full: the caller releases @fd) or -ENOMEM
 */
int vfs_server_open(struct vfs_server *s, const struct vfs_call *c, int fd,
		    uint64_t *fh)
{
	struct vfs_handle *h;
	unsigned int i;

	for (i = 0; i < VFS_HANDLES_MAX && s->h[i].used; i++)
		;
	if (i == VFS_HANDLES_MAX) {
		s->limit = "fs_handles";
		return -EMFILE;
	}
	h = &s->h[i];
	h->path = strdup(c->rq.path);
	if (!h->path)
		return -ENOMEM;
	h->used = true;
	h->fd = fd;
	h->mount = c->mount;
	h->writable = c->rq.access != VFS_READ;
	h->append = c->rq.append;
	h->gen++;
	s->nh++;
	*fh = (uint64_t)h->gen << 32 | (i + 1);
	return 0;
}

/* Handles' descriptors are the server's (vfs.h): closing them needs no
 * provider, so routes can outlive their providers at teardown. */
static void release_fd(int fd)
{
	if (fd >= 0)
		close(fd);
}

/* vfs_server_release() - free handle @i (its descriptor too) */
void vfs_server_release(struct vfs_server *s, int i)
{
	struct vfs_handle *h = &s->h[i];

	if (i < 0 || !h->used)
		return;
	release_fd(h->fd);
	free(h->path);
	h->path = NULL;
	h->fd = -1;
	h->used = false;
	s->nh--;
}

/* vfs_server_free() - release every handle, rule and route (not providers) */
void vfs_server_free(struct vfs_server *s)
{
	unsigned int i, j;

	for (i = 0; i < VFS_HANDLES_MAX; i++)
		vfs_server_release(s, (int)i);
	for (i = 0; i < s->nm; i++) {
		for (j = 0; j < s->m[i].nhide; j++)
			free(s->m[i].hide[j]);
		for (j = 0; j < s->m[i].ndeny; j++)
			free(s->m[i].deny[j]);
		free(s->m[i].path);
	}
	s->nm = 0;
}

/* -------------------------------------------------------------------------
 * Decoding
 */

/* copy text @it into @buf as a normalised path */
static int dec_path(const struct cbor_item *it, char *buf)
{
	if (it->type != CBOR_TEXT || !fs_path_ok((const char *)it->str, it->len))
		return it->type == CBOR_TEXT ? -EINVAL : -EIO;
	memcpy(buf, it->str, it->len);
	buf[it->len] = '\0';
	return 0;
}

/* an int or "now" for atime/mtime */
static int dec_time(const struct cbor_item *it, struct vfs_req *rq, bool mtime)
{
	int64_t *t = mtime ? &rq->mtime : &rq->atime;

	if (it->type == CBOR_TEXT && it->len == 3 && !memcmp(it->str, "now", 3)) {
		rq->set |= mtime ? VFS_SET_MTIME_NOW : VFS_SET_ATIME_NOW;
		return 0;
	}
	if (it->type == CBOR_UINT && it->u <= INT64_MAX)
		*t = (int64_t)it->u;
	else if (it->type == CBOR_NINT && it->u <= INT64_MAX)
		*t = -1 - (int64_t)it->u;
	else
		return -EIO;
	rq->set |= mtime ? VFS_SET_MTIME : VFS_SET_ATIME;
	return 0;
}

static int dec_uint(const char *k, uint64_t v, struct vfs_req *rq)
{
	switch (k[0]) {
	case 'f':
		if (k[1] == 'h') {
			rq->fh = v;
			rq->has_fh = true;
		} else {
			rq->flags = (uint32_t)v;
		}
		return v > UINT32_MAX && k[1] != 'h' ? -EIO : 0;
	case 'm':
		if (k[1] == 'o') {
			rq->mode = (uint32_t)v & 07777;
			rq->set |= VFS_SET_MODE;
			return v > 0177777 ? -EIO : 0;
		}
		rq->mask = (uint32_t)v;
		return v > 7 ? -EIO : 0;
	case 'u': rq->uid = (uint32_t)v; rq->set |= VFS_SET_UID; break;
	case 'g': rq->gid = (uint32_t)v; rq->set |= VFS_SET_GID; break;
	case 's': rq->size = v; rq->set |= VFS_SET_SIZE; return 0;
	case 'o': rq->offset = v; return 0;
	case 'a':
		rq->access = (enum vfs_access)v;
		return v > VFS_RDWR ? -EIO : 0;
	}
	return v > UINT32_MAX ? -EIO : 0;
}

static void dec_bool(const char *k, bool v, struct vfs_req *rq)
{
	switch (k[0]) {
	case 'a': rq->append = v; break;
	case 't': rq->trunc = v; break;
	case 'e': rq->excl = v; break;
	case 'd': rq->datasync = v; break;
	case 'p': rq->plus = v; break;
	}
}

/**
 * dec_value() - decode the value of known key @k into @rq
 * @s:		server (path buffers)
 * @r:		cursor at the value
 * @k:		key index in keys[]
 * @rq:		request
 *
 * Return: 0, -EIO (malformed, wrong type) or -EINVAL (bad path)
 */
static int dec_value(struct vfs_server *s, struct cbor_reader *r, size_t k,
		     struct vfs_req *rq)
{
	struct cbor_item it;

	if (cbor_read(r, &it) < 0)
		return -EIO;
	switch (keys[k].kind) {
	case K_PATH:
		rq->path = s->path;
		return dec_path(&it, s->path);
	case K_PATH2:
		rq->path2 = s->path2;
		return dec_path(&it, s->path2);
	case K_TARGET:
		if (it.type != CBOR_TEXT)
			return -EIO;
		if (it.len == 0 || it.len > FS_PATH_MAX || memchr(it.str, 0, it.len))
			return -EINVAL;
		memcpy(s->target, it.str, it.len);
		s->target[it.len] = '\0';
		rq->target = s->target;
		return 0;
	case K_UINT:
		return it.type == CBOR_UINT ? dec_uint(keys[k].name, it.u, rq) : -EIO;
	case K_BOOL:
		if (it.type != CBOR_BOOL)
			return -EIO;
		dec_bool(keys[k].name, it.u, rq);
		return 0;
	case K_TIME:
		return dec_time(&it, rq, keys[k].name[0] == 'm');
	}
	return -EIO;
}

static int key_index(const struct cbor_item *it)
{
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strlen(keys[i].name) == it->len && !memcmp(keys[i].name, it->str, it->len))
			return (int)i;
	return -1;
}

/**
 * dec_request() - decode one request payload
 * @s:		server
 * @type:	frame type
 * @p, @len:	payload
 * @rq:		filled in
 *
 * Return: 0, -ENOSYS (unknown type), -EIO (malformed), -EINVAL (bad path
 * or a value out of range)
 */
static int dec_request(struct vfs_server *s, unsigned int type,
		       const uint8_t *p, size_t len, struct vfs_req *rq)
{
	unsigned int seen = 0, set = 0;
	struct cbor_reader r;
	struct cbor_item it;
	uint64_t n;
	int k, ret;

	memset(rq, 0, sizeof(*rq));
	rq->fd = -1;
	if (type == 0 || type > FS_OP_MAX)
		return -ENOSYS;
	rq->op = (enum fs_op)type;
	cbor_reader_init(&r, p, len);
	if (cbor_read(&r, &it) < 0 || it.type != CBOR_MAP)
		return -EIO;
	for (n = it.u; n > 0; n--) {
		if (cbor_read(&r, &it) < 0 || it.type != CBOR_TEXT)
			return -EIO;
		k = key_index(&it);
		if (k < 0) {
			if (cbor_skip(&r) < 0)
				return -EIO;
			continue;
		}
		if (seen & keys[k].bit & ~B_BOOL)
			return -EIO;	/* a key twice */
		seen |= keys[k].bit;
		ret = dec_value(s, &r, (size_t)k, rq);
		if (ret < 0)
			return ret;
	}
	if ((seen & required[type]) != required[type])
		return -EIO;
	if (type == FS_WRITE) {
		rq->data = r.p;
		rq->len = (size_t)(r.end - r.p);
		if (rq->len > FS_IO_MAX)
			return -EINVAL;
	} else if (r.p != r.end) {
		return -EIO;
	}
	if (type == FS_READ && rq->size > FS_IO_MAX)
		return -EINVAL;
	if (type != FS_SETATTR)
		rq->set = set;
	return 0;
}

/* -------------------------------------------------------------------------
 * Routing a decoded request
 */

/**
 * vfs_server_route() - route @c->rq: its route, paths inside it, handle
 * @s:		server
 * @c:		call; rq decoded, guest paths
 *
 * Return: 0 or a negative errno (EINVAL: under no route, EXDEV: two routes,
 * EBADF: unknown fh, and the rules' errors)
 */
int vfs_server_route(struct vfs_server *s, struct vfs_call *c)
{
	struct vfs_req *rq = &c->rq;
	const char *rel, *rel2;
	int mi, mi2;

	c->handle = -1;
	c->dir_skip = 0;
	if (rq->has_fh) {
		c->handle = vfs_server_handle(s, rq->fh);
		if (c->handle < 0)
			return -EBADF;
		if (rq->op == FS_WRITE && !s->h[c->handle].writable)
			return -EBADF;
		rq->fd = s->h[c->handle].fd;
		c->mount = s->h[c->handle].mount;
		if (!rq->path) {
			rq->path = s->h[c->handle].path;
			return 0;
		}
	}
	mi = route_of(s, rq->path, &rel);
	if (mi < 0)
		return -EINVAL;
	if (c->handle >= 0 && (unsigned int)mi != c->mount)
		return -EBADF;
	c->mount = (unsigned int)mi;
	rq->path = rel;
	if (rq->path2) {
		mi2 = route_of(s, rq->path2, &rel2);
		if (mi2 < 0)
			return -EINVAL;
		if (mi2 != mi)
			return -EXDEV;
		rq->path2 = rel2;
	}
	if (rq->op == FS_READDIR && hides_in(&s->m[mi], rel)) {
		c->dir_skip = rq->offset;
		rq->offset = 0;
	}
	return rules(&s->m[mi], rq);
}

/* -------------------------------------------------------------------------
 * Replies
 */

static void put_key(struct cbor_writer *w, const char *k)
{
	cbor_put_cstr(w, k);
}

static void put_attr(struct cbor_writer *w, const struct vfs_attr *a)
{
	cbor_put_map(w, a->ttl_ms >= 0 ? 11 : 10);
	put_key(w, "mode");	cbor_put_uint(w, a->mode);
	put_key(w, "size");	cbor_put_uint(w, a->size);
	put_key(w, "nlink");	cbor_put_uint(w, a->nlink);
	put_key(w, "uid");	cbor_put_uint(w, a->uid);
	put_key(w, "gid");	cbor_put_uint(w, a->gid);
	put_key(w, "ino");	cbor_put_uint(w, a->ino);
	put_key(w, "blocks");	cbor_put_uint(w, a->blocks);
	put_key(w, "atime");	cbor_put_int(w, a->atime);
	put_key(w, "mtime");	cbor_put_int(w, a->mtime);
	put_key(w, "ctime");	cbor_put_int(w, a->ctime);
	if (a->ttl_ms >= 0) {
		put_key(w, "ttl_ms");
		cbor_put_uint(w, (uint64_t)a->ttl_ms);
	}
}

/* vfs_server_error() - the reply is err = errno name of @err (> 0) */
void vfs_server_error(struct vfs_server *s, int err)
{
	struct cbor_writer w;

	cbor_writer_init(&w, s->out, sizeof(s->out));
	cbor_put_map(&w, 1);
	put_key(&w, "err");
	cbor_put_cstr(&w, fs_errno_name(err));
	s->out_len = w.len;
}

static void put_statfs(struct cbor_writer *w, const struct vfs_statfs *st)
{
	cbor_put_map(w, 7);
	put_key(w, "bsize");	cbor_put_uint(w, st->bsize);
	put_key(w, "blocks");	cbor_put_uint(w, st->blocks);
	put_key(w, "bfree");	cbor_put_uint(w, st->bfree);
	put_key(w, "bavail");	cbor_put_uint(w, st->bavail);
	put_key(w, "files");	cbor_put_uint(w, st->files);
	put_key(w, "ffree");	cbor_put_uint(w, st->ffree);
	put_key(w, "namelen");	cbor_put_uint(w, st->namelen);
}

/**
 * vfs_server_reply() - encode a successful reply
 * @s:		server
 * @c:		the call
 * @rp:		the provider's results (READ: data already in s->out + 1)
 * @fh:		FS_OPEN / FS_CREATE: the new handle
 * @d:		FS_READDIR: the entries
 */
void vfs_server_reply(struct vfs_server *s, const struct vfs_call *c,
		      const struct vfs_reply *rp, uint64_t fh,
		      const struct vfs_dir *d)
{
	struct cbor_writer w;

	cbor_writer_init(&w, s->out, sizeof(s->out));
	switch (c->rq.op) {
	case FS_LOOKUP: case FS_GETATTR: case FS_SETATTR: case FS_SYMLINK:
	case FS_MKDIR: case FS_LINK:
		cbor_put_map(&w, 1);
		put_key(&w, "attr");
		put_attr(&w, &rp->attr);
		break;
	case FS_READLINK:
		cbor_put_map(&w, 1);
		put_key(&w, "target");
		cbor_put_text(&w, (const char *)rp->buf, rp->len);
		break;
	case FS_OPEN:
	case FS_CREATE:
		cbor_put_map(&w, c->rq.op == FS_CREATE ? 2 : 1);
		put_key(&w, "fh");
		cbor_put_uint(&w, fh);
		if (c->rq.op == FS_CREATE) {
			put_key(&w, "attr");
			put_attr(&w, &rp->attr);
		}
		break;
	case FS_READ:
		s->out[0] = 0xa0;	/* empty map; the data follows */
		s->out_len = 1 + rp->len;
		return;
	case FS_WRITE:
		cbor_put_map(&w, 1);
		put_key(&w, "size");
		cbor_put_uint(&w, rp->written);
		break;
	case FS_READDIR:
		cbor_put_map(&w, 2);
		put_key(&w, "entries");
		cbor_put_array(&w, d->n);
		if (!w.err && w.cap - w.len >= d->w.len) {
			memcpy(w.buf + w.len, d->w.buf, d->w.len);
			w.len += d->w.len;
		} else {
			w.err = true;
		}
		put_key(&w, "eof");
		cbor_put_bool(&w, rp->eof);
		break;
	case FS_STATFS:
		put_statfs(&w, &rp->st);
		break;
	default:
		cbor_put_map(&w, 0);
	}
	if (w.err)
		vfs_server_error(s, EIO);
	else
		s->out_len = w.len;
}

/* -------------------------------------------------------------------------
 * Directory entries
 */

/* vfs_dir_init() - an empty READDIR reply for call @c */
void vfs_dir_init(struct vfs_server *s, const struct vfs_call *c,
		  struct vfs_dir *d)
{
	cbor_writer_init(&d->w, s->dir, sizeof(s->dir));
	d->n = 0;
	d->skip = c->dir_skip;
	d->m = &s->m[c->mount];
	d->dir = c->rq.path;
}

static bool name_ok(const char *name, size_t len)
{
	return len > 0 && len <= FS_NAME_MAX && !memchr(name, '/', len) &&
	       !memchr(name, 0, len) &&
	       !(name[0] == '.' && (len == 1 || (len == 2 && name[1] == '.')));
}

/* true if entry @name of the listed directory is hidden */
static bool entry_hidden(const struct vfs_dir *d, const char *name, size_t len)
{
	char p[FS_PATH_MAX + FS_NAME_MAX + 2];
	size_t n = strlen(d->dir);

	if (d->m->nhide == 0)
		return false;
	if (n == 1)
		n = 0;
	memcpy(p, d->dir, n);
	p[n] = '/';
	memcpy(p + n + 1, name, len);
	p[n + 1 + len] = '\0';
	return vfs_hidden(d->m, p);
}

int vfs_dir_add(struct vfs_dir *d, const char *name, size_t len,
		const struct vfs_attr *a)
{
	size_t mark = d->w.len;

	/* a provider's bad name is left out: the guest could not use it */
	if (!name_ok(name, len) || entry_hidden(d, name, len))
		return 0;
	if (d->skip > 0) {
		d->skip--;
		return 0;
	}
	if (d->n == VFS_DIR_MAX)
		return -1;
	cbor_put_array(&d->w, 2);
	cbor_put_text(&d->w, name, len);
	put_attr(&d->w, a);
	if (d->w.err) {
		d->w.len = mark;
		d->w.err = false;
		return -1;
	}
	d->n++;
	return 0;
}

/* -------------------------------------------------------------------------
 * Serving
 */

/**
 * vfs_server_call() - call the C provider of @c's route
 * @s:		server
 * @c:		routed call
 * @rp:		results (READ: into s->out + 1, READLINK: into s->target)
 * @d:		READDIR entries (initialised here)
 *
 * Return: 0 or a negative errno
 */
int vfs_server_call(struct vfs_server *s, struct vfs_call *c,
		    struct vfs_reply *rp, struct vfs_dir *d)
{
	const struct vfs_mount *m = &s->m[c->mount];
	int ret;

	memset(rp, 0, sizeof(*rp));
	rp->fd = -1;
	rp->attr.ttl_ms = VFS_TTL_DEFAULT;
	if (c->rq.op == FS_READ) {
		rp->buf = s->out + 1;
		rp->cap = c->rq.size;
	} else if (c->rq.op == FS_READLINK) {
		rp->buf = (uint8_t *)s->target;
		rp->cap = FS_PATH_MAX;
	} else if (c->rq.op == FS_READDIR) {
		vfs_dir_init(s, c, d);
		rp->dir = d;
	}
	if ((c->rq.op == FS_OPEN || c->rq.op == FS_CREATE) &&
	    s->nh == VFS_HANDLES_MAX) {
		s->limit = "fs_handles";
		return -EMFILE;
	}
	ret = m->ops->call(m->self, &c->rq, rp);
	if (ret == 0 && rp->len > rp->cap)
		ret = -EIO;
	if (ret == 0 && c->rq.op == FS_READLINK && rp->len == 0)
		ret = -EIO;
	return ret;
}

/* answer @c from the C provider of its route into s->out */
static void serve_c(struct vfs_server *s, struct vfs_call *c)
{
	struct vfs_reply rp;
	struct vfs_dir d;
	uint64_t fh = 0;
	int ret;

	ret = vfs_server_call(s, c, &rp, &d);
	if (ret == 0 && (c->rq.op == FS_OPEN || c->rq.op == FS_CREATE)) {
		ret = vfs_server_open(s, c, rp.fd, &fh);
		if (ret < 0)
			release_fd(rp.fd);
	}
	if (ret < 0)
		vfs_server_error(s, -ret);
	else
		vfs_server_reply(s, c, &rp, fh, &d);
}

/**
 * vfs_server_request() - serve one request frame
 * @s:		server
 * @type:	frame type
 * @p, @len:	payload
 * @c:		the routed call, for VFS_DEFER (pointers into @p and @s:
 *		valid until the next request)
 *
 * Return: VFS_REPLIED (the reply is s->out, s->out_len bytes) or VFS_DEFER
 * (the caller serves @c and then builds the reply; s->pending counts it)
 */
enum vfs_outcome vfs_server_request(struct vfs_server *s, unsigned int type,
				    const uint8_t *p, size_t len,
				    struct vfs_call *c)
{
	int ret;

	s->limit = NULL;
	ret = dec_request(s, type, p, len, &c->rq);
	if (ret == 0)
		ret = vfs_server_route(s, c);
	if (ret < 0) {
		vfs_server_error(s, -ret);
		return VFS_REPLIED;
	}
	if (c->rq.op == FS_RELEASE) {
		vfs_server_release(s, c->handle);
		vfs_server_reply(s, c, NULL, 0, NULL);
		return VFS_REPLIED;
	}
	if (s->m[c->mount].ops && !s->defer_all) {
		serve_c(s, c);
		return VFS_REPLIED;
	}
	if (s->pending >= VFS_PENDING_MAX) {
		s->limit = "fs_pending";
		vfs_server_error(s, EAGAIN);
		return VFS_REPLIED;
	}
	s->pending++;
	return VFS_DEFER;
}
