/* SPDX-License-Identifier: MIT */
/* vfs.h - the host side of the FS RPC: requests, replies, providers
 *
 * A request (struct vfs_req) is one decoded FS RPC frame, or one call of the
 * host's own file API (vm.fs). The server (server.c) routes it to a mount by
 * longest prefix, applies the mount's rules (readonly, hidden paths, paths
 * that deny writes) and hands it to the mount's provider with the path made
 * relative to the mount: "/" is the provider's root.
 *
 * A C provider (realfs.c) answers at once through struct vfs_provider_ops;
 * a Lua provider is called through the binding layer (api/l_vfs.c) and may
 * answer later.
 */
#ifndef GONDOLIN_VFS_H
#define GONDOLIN_VFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/cbor.h"
#include "proto/fs.h"

#define VFS_TTL_DEFAULT	(-1)	/* attr.ttl_ms: the protocol's default */

/**
 * struct vfs_attr - what FS_REPLY's attr map carries
 * @mode:	type and permission bits (POSIX values)
 * @ttl_ms:	cache time the guest may use, VFS_TTL_DEFAULT to leave it out
 * Times are nanoseconds since the epoch.
 */
struct vfs_attr {
	uint32_t mode;
	uint64_t size, nlink, uid, gid, ino, blocks;
	int64_t atime, mtime, ctime;
	int32_t ttl_ms;
};

struct vfs_statfs {
	uint64_t bsize, blocks, bfree, bavail, files, ffree, namelen;
};

/* Which fields of an FS_SETATTR request are set. */
enum vfs_set {
	VFS_SET_MODE	= 1 << 0,
	VFS_SET_UID	= 1 << 1,
	VFS_SET_GID	= 1 << 2,
	VFS_SET_SIZE	= 1 << 3,
	VFS_SET_ATIME	= 1 << 4,
	VFS_SET_MTIME	= 1 << 5,
	VFS_SET_ATIME_NOW = 1 << 6,
	VFS_SET_MTIME_NOW = 1 << 7,
};

/* FS_OPEN / FS_CREATE access */
enum vfs_access { VFS_READ = 0, VFS_WRITE = 1, VFS_RDWR = 2 };

/**
 * struct vfs_req - one request, decoded and validated
 * @op:		FS_LOOKUP ... FS_ACCESS
 * @path:	NUL-terminated, normalised; inside the provider once routed
 * @path2:	FS_RENAME / FS_LINK "to" (routed like @path), else NULL
 * @target:	FS_SYMLINK target text (NUL-terminated, not a path of ours)
 * @fd:		the handle's descriptor for requests naming an fh that a C
 *		provider opened; -1 otherwise
 * @set:	enum vfs_set bits for FS_SETATTR
 * @offset:	FS_READ/FS_WRITE byte offset; FS_READDIR entries to skip
 * @size:	FS_READ length; FS_SETATTR new size
 * @data, @len:	FS_WRITE bytes
 */
struct vfs_req {
	enum fs_op op;
	const char *path, *path2, *target;
	int fd;
	uint64_t fh;
	bool has_fh;
	unsigned int set;
	uint32_t mode, uid, gid, flags, mask;
	enum vfs_access access;
	bool append, trunc, excl, datasync, plus;
	int64_t atime, mtime;
	uint64_t offset, size;
	const uint8_t *data;
	size_t len;
};

struct vfs_dir;

/**
 * struct vfs_reply - what a provider fills in; the server encodes it
 * @attr:	LOOKUP, GETATTR, SETATTR, SYMLINK, MKDIR, LINK, CREATE
 * @fd:		OPEN, CREATE: the new handle's descriptor (the server keeps
 *		it and passes it back in vfs_req.fd until RELEASE)
 * @written:	WRITE
 * @buf, @cap:	READ, READLINK: the server's buffer (@cap is at least the
 *		request's size for READ, FS_PATH_MAX for READLINK)
 * @len:	bytes the provider put in @buf
 * @st:		STATFS
 * @dir:	READDIR: add entries with vfs_dir_add(); set @eof when the
 *		directory has no more
 */
struct vfs_reply {
	struct vfs_attr attr;
	int fd;
	uint64_t written;
	uint8_t *buf;
	size_t cap, len;
	struct vfs_statfs st;
	struct vfs_dir *dir;
	bool eof;
};

/**
 * vfs_dir_add() - append one directory entry to a READDIR reply
 * @d:		the reply's dir
 * @name:	the entry's name (one component), @len bytes
 * @a:		its attributes
 *
 * Return: 0, or -1 when the reply is full: the provider stops there and
 * leaves eof false; the guest asks again from the next offset.
 */
int vfs_dir_add(struct vfs_dir *d, const char *name, size_t len,
		const struct vfs_attr *a);

/**
 * struct vfs_provider_ops - a C provider
 * @name:	for error messages ("realfs")
 * @call:	answer @rq into @rp; returns 0 or a negative errno (host
 *		values; the server names them on the wire). Must not block
 *		on anything but the local filesystem.
 * @destroy:	free the provider (the server has released every handle)
 */
struct vfs_provider_ops {
	const char *name;
	int (*call)(void *self, const struct vfs_req *rq, struct vfs_reply *rp);
	void (*destroy)(void *self);
};

/* realfs.c: a host directory, confined to it (openat2, or a component walk
 * where the kernel lacks it or @walk asks). Returns NULL and sets errno
 * when @root cannot be opened as a directory. */
void *realfs_new(const char *root, bool walk);
extern const struct vfs_provider_ops realfs_ops;


/*
 * server.c: routing, mount rules, handles, request decoding and reply
 * encoding. Pure code (no loop, no Lua): api/l_vfs.c drives it.
 */
#define VFS_MOUNTS_MAX	64	/* routes (guest mounts and shadow tmpfs parts) */
#define VFS_RULES_MAX	256	/* hide + deny_write paths per route */
#define VFS_HANDLES_MAX	1024	/* open handles (EMFILE beyond) */
#define VFS_DIR_MAX	512	/* entries in one READDIR reply */
#define VFS_DIR_BYTES	(64 * 1024)	/* encoded entries in one READDIR reply */
#define VFS_REPLY_MAX	(FS_IO_MAX + 1024)	/* one encoded reply */

/**
 * struct vfs_mount - one route: a guest path prefix and its provider
 * @path:	guest path ("/workspace"), normalised
 * @ops, @self:	the C provider; @ops NULL for a Lua provider (deferred)
 * @readonly:	every mutation is EROFS
 * @hide:	paths inside the route that do not exist for the guest
 * @deny:	paths inside the route (and below) that refuse mutations (EACCES)
 */
struct vfs_mount {
	char *path;
	size_t len;
	const struct vfs_provider_ops *ops;
	void *self;
	bool readonly;
	char *hide[VFS_RULES_MAX], *deny[VFS_RULES_MAX];
	unsigned int nhide, ndeny;
};

/**
 * struct vfs_handle - an open file or directory
 * @fd:		a C provider's descriptor, -1 for Lua providers
 * @path:	the path inside the route when opened (Lua providers read by
 *		path; hooks see it)
 * @gen:	bumped on reuse, part of the fh the guest holds
 */
struct vfs_handle {
	int fd;
	unsigned int mount;
	uint32_t gen;
	bool used, writable, append;
	char *path;
};

/**
 * struct vfs_server - the host end of the FS RPC, for one VM
 * @defer_all:	hooks are set: every request goes to Lua
 * @pending:	deferred requests not yet answered (bounded by
 *		VFS_PENDING_MAX; the guest's own bound is FS_INFLIGHT_MAX)
 * @limit:	the per-VM bound that refused the last request, or NULL
 * @out:	the reply being built
 */
struct vfs_server {
	struct vfs_mount m[VFS_MOUNTS_MAX];
	unsigned int nm;
	struct vfs_handle h[VFS_HANDLES_MAX];
	unsigned int nh;
	bool defer_all;
	unsigned int pending;
	const char *limit;
	char path[FS_PATH_MAX + 1], path2[FS_PATH_MAX + 1];
	char target[FS_PATH_MAX + 1];
	uint8_t out[VFS_REPLY_MAX];
	size_t out_len;
	uint8_t dir[VFS_DIR_BYTES];
};

#define VFS_PENDING_MAX	(2 * FS_INFLIGHT_MAX)

/**
 * struct vfs_call - a routed request: the request, its route and handle
 * @mount:	index of the route
 * @handle:	index of the handle named by rq.fh, -1 for none
 * @dir_skip:	READDIR: visible entries to drop before the first one sent
 *		(a directory with hidden names is listed from its start)
 */
struct vfs_call {
	struct vfs_req rq;
	unsigned int mount;
	int handle;
	uint64_t dir_skip;
};

enum vfs_outcome { VFS_REPLIED, VFS_DEFER };

int vfs_server_init(struct vfs_server *s);
void vfs_server_free(struct vfs_server *s);
int vfs_server_mount(struct vfs_server *s, const char *path,
		     const struct vfs_provider_ops *ops, void *self, bool readonly);
int vfs_server_rule(struct vfs_server *s, unsigned int mi, bool hide,
		    const char *path);
enum vfs_outcome vfs_server_request(struct vfs_server *s, unsigned int type,
				    const uint8_t *p, size_t len,
				    struct vfs_call *c);
int vfs_server_route(struct vfs_server *s, struct vfs_call *c);
int vfs_server_call(struct vfs_server *s, struct vfs_call *c,
		    struct vfs_reply *rp, struct vfs_dir *d);
int vfs_server_open(struct vfs_server *s, const struct vfs_call *c, int fd,
		    uint64_t *fh);
void vfs_server_release(struct vfs_server *s, int handle);
int vfs_server_handle(const struct vfs_server *s, uint64_t fh);
void vfs_server_error(struct vfs_server *s, int err);
void vfs_server_reply(struct vfs_server *s, const struct vfs_call *c,
		      const struct vfs_reply *rp, uint64_t fh,
		      const struct vfs_dir *d);

/**
 * struct vfs_dir - a READDIR reply being filled
 * @w:		entries, encoded into the server's dir buffer
 * @n:		entries in @w
 * @skip:	visible entries still to drop (vfs_call.dir_skip)
 */
struct vfs_dir {
	struct cbor_writer w;
	unsigned int n;
	uint64_t skip;
	const struct vfs_mount *m;
	const char *dir;
};

void vfs_dir_init(struct vfs_server *s, const struct vfs_call *c,
		  struct vfs_dir *d);
bool vfs_hidden(const struct vfs_mount *m, const char *path);

#endif /* GONDOLIN_VFS_H */
