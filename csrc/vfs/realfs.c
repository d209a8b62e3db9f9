/* SPDX-License-Identifier: MIT */
/* realfs.c - the realfs provider: a host directory served to the guest */

/*
 * DOC: Theory of Operation
 *
 * The guest is hostile, and files in the host tree may change under us
 * while we work (the user's own programs, or a guest racing its renames
 * against our lookups). Whatever happens, nothing outside the root may be
 * read, written, created or have its attributes changed.
 *
 * Confinement rests on one rule: every path is resolved by openat2() from
 * the root's O_PATH descriptor with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS
 * | RESOLVE_NO_SYMLINKS. Where the kernel has no openat2 (before 5.6, or
 * under valgrind, which does not know it) the same resolution is a walk:
 * one openat(O_PATH | O_DIRECTORY | O_NOFOLLOW) per component from the
 * root's descriptor, each relative to the directory the previous one
 * opened; the path has no "." or ".." components (the server checked). The host never follows a symlink, not even one
 * inside the root: the guest's kernel resolves symlinks itself (lookup and
 * readlink per component), so a symlink met during our resolution can only
 * come from a race, and gives ELOOP. We never realpath() and never hand a
 * multi-component path to a plain *at() call.
 *
 * Requests name "/" (the root) or a normalised "/a/b". An operation on the
 * file itself opens it with openat2() ("." for the root). An operation on
 * a name (create, remove, rename, stat without following) opens the
 * PARENT "a" with openat2(), or uses the root's descriptor for a top-level
 * name, and then calls the *at() function on (parent, "b") with no-follow
 * semantics: one component, looked up in a directory we hold.
 *
 * The root has no parent: the *at() calls use (rootfd, ".") for it.
 * fchmod() refuses O_PATH descriptors, so chmod of a path goes through
 * /proc/self/fd/N of our own O_PATH descriptor: a magic link, but ours,
 * to exactly the object openat2() found (a symlink is refused before).
 *
 * Opening never blocks: O_NONBLOCK keeps a FIFO (or a device node that
 * appeared in the tree) from stalling the host's loop, O_NOCTTY keeps a
 * terminal from becoming ours. Only regular files and directories become
 * handles; O_NONBLOCK is cleared again on regular files.
 *
 * Owners: the host user's files are shown to the guest as root's, so the
 * guest's root can use them (git's "dubious ownership" check, tools that
 * want to own their files). Attributes report the host euid/egid as 0;
 * chown maps 0 back to them. When the host runs as root this is identity.
 *
 * Every function returns 0 or a negative host errno. The only descriptors
 * that outlive a call are the handles given to the server in rp->fd.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "vfs/vfs.h"

#define RF_RESOLVE	(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS)
#define RF_NS		1000000000LL

/* Retry @call_ into @ret_ while it fails with EINTR. */
#define RF_RETRY(ret_, call_)						\
	do {								\
		(ret_) = (call_);					\
	} while ((ret_) < 0 && errno == EINTR)

/**
 * struct realfs - one provider instance
 * @rootfd:	O_PATH descriptor of the root directory
 * @uid:	host euid, shown to the guest as 0
 * @gid:	host egid, shown to the guest as 0
 * @walk:	resolve by component walk (no openat2)
 */
struct realfs {
	int rootfd;
	uid_t uid;
	gid_t gid;
	bool walk;
};

/**
 * struct rf_at - a name in its parent, for the *at() calls
 * @dirfd:	the parent directory (the root's descriptor, or @own)
 * @own:	true when @dirfd was opened for this and must be closed
 * @name:	the last component ("." for the root itself)
 * @buf:	the parent's path, relative to the root
 */
struct rf_at {
	int dirfd;
	bool own;
	const char *name;
	char buf[FS_PATH_MAX + 1];
};

/**
 * rf_walk_dir() - open directory @name in @dir, refusing a symlink
 * @dir:	directory descriptor
 * @name:	one component
 *
 * Return: an O_PATH descriptor, or a negative errno (ELOOP for a symlink,
 * as openat2's RESOLVE_NO_SYMLINKS says)
 */
static int rf_walk_dir(int dir, const char *name)
{
	struct stat st;
	int fd, err;

	RF_RETRY(fd, openat(dir, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
	if (fd >= 0)
		return fd;
	err = errno;
	if (err == ENOTDIR && fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode))
		err = ELOOP;
	return -err;
}

/**
 * rf_walk() - rf_open() without openat2: one component at a time
 * @rf:		provider
 * @rel:	"." or a normalised "a/b"
 * @flags:	open flags (O_NOFOLLOW is added)
 * @mode:	creation mode
 *
 * Return: a descriptor, or a negative errno
 */
static int rf_walk(const struct realfs *rf, const char *rel, int flags, mode_t mode)
{
	char comp[FS_NAME_MAX + 1];
	const char *p = rel, *slash;
	int dir = rf->rootfd, fd, err;
	size_t n;

	while ((slash = strchr(p, '/')) != NULL) {
		n = (size_t)(slash - p);
		if (n == 0 || n > FS_NAME_MAX)
			fd = -EINVAL;
		else {
			memcpy(comp, p, n);
			comp[n] = '\0';
			fd = rf_walk_dir(dir, comp);
		}
		if (dir != rf->rootfd)
			close(dir);
		if (fd < 0)
			return fd;
		dir = fd;
		p = slash + 1;
	}
	if ((flags & (O_PATH | O_DIRECTORY)) == (O_PATH | O_DIRECTORY)) {
		fd = rf_walk_dir(dir, p);
		err = -fd;
	} else {
		RF_RETRY(fd, openat(dir, p, flags | O_NOFOLLOW, mode));
		err = errno;
	}
	if (dir != rf->rootfd)
		close(dir);
	return fd < 0 ? -err : fd;
}

/**
 * rf_open() - resolve @rel beneath the root, following nothing
 * @rf:		provider
 * @rel:	path relative to the root ("." or "a/b")
 * @flags:	open flags
 * @mode:	creation mode (only with O_CREAT, else 0)
 *
 * Return: a descriptor, or a negative errno (ELOOP on any symlink)
 */
static int rf_open(const struct realfs *rf, const char *rel, uint64_t flags,
		   uint64_t mode)
{
	struct open_how how = { .flags = flags, .mode = mode, .resolve = RF_RESOLVE };
	long fd;

	if (rf->walk)
		return rf_walk(rf, rel, (int)flags, (mode_t)mode);
	RF_RETRY(fd, syscall(SYS_openat2, rf->rootfd, rel, &how, sizeof(how)));
	return fd < 0 ? -errno : (int)fd;
}

/**
 * rf_path_ok() - defensive check of a request path
 * @path:	the request's path (may be NULL)
 *
 * Return: true if it is "/" or a normalised "/a/b"
 */
static bool rf_path_ok(const char *path)
{
	return path && fs_path_ok(path, strnlen(path, FS_PATH_MAX + 1));
}

/* is @path the provider's root? */
static bool rf_is_root(const char *path)
{
	return path[0] == '/' && path[1] == '\0';
}

/* @path ("/" or "/a/b") relative to the root: "." or "a/b" */
static const char *rf_rel(const char *path)
{
	return rf_is_root(path) ? "." : path + 1;
}

/**
 * rf_at_open() - open the parent of @path for the *at() calls
 * @rf:		provider
 * @path:	checked request path
 * @at:		filled in; release with rf_at_close()
 *
 * The root is (rootfd, "."); a top-level name is (rootfd, name): no need
 * to open "." again.
 *
 * Return: 0 or a negative errno
 */
static int rf_at_open(const struct realfs *rf, const char *path, struct rf_at *at)
{
	const char *slash = strrchr(path, '/');
	size_t len;
	int fd;

	at->dirfd = rf->rootfd;
	at->own = false;
	if (rf_is_root(path)) {
		at->name = ".";
		return 0;
	}
	at->name = slash + 1;
	if (slash == path)
		return 0;
	len = (size_t)(slash - path) - 1;
	memcpy(at->buf, path + 1, len);
	at->buf[len] = '\0';
	fd = rf_open(rf, at->buf, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0)
		return fd;
	at->dirfd = fd;
	at->own = true;
	return 0;
}

/* release what rf_at_open() opened */
static void rf_at_close(struct rf_at *at)
{
	if (at->own)
		close(at->dirfd);
	at->own = false;
}

/**
 * rf_ns() - a timespec as nanoseconds since the epoch, clamped
 * @ts:		time
 *
 * Return: nanoseconds (saturated at the int64_t range: no overflow)
 */
static int64_t rf_ns(const struct timespec *ts)
{
	if (ts->tv_sec > INT64_MAX / RF_NS - 1)
		return INT64_MAX;
	if (ts->tv_sec < INT64_MIN / RF_NS + 1)
		return INT64_MIN;
	return (int64_t)ts->tv_sec * RF_NS + ts->tv_nsec;
}

/**
 * rf_attr() - struct stat to the attributes the guest sees
 * @rf:		provider (for the owner mapping)
 * @st:		host attributes
 * @a:		filled in
 */
static void rf_attr(const struct realfs *rf, const struct stat *st,
		    struct vfs_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->mode = st->st_mode;
	a->size = (uint64_t)st->st_size;
	a->nlink = st->st_nlink;
	a->uid = st->st_uid == rf->uid ? 0 : st->st_uid;	/* see the top */
	a->gid = st->st_gid == rf->gid ? 0 : st->st_gid;
	a->ino = st->st_ino;
	a->blocks = (uint64_t)st->st_blocks;			/* 512-byte units */
	a->atime = rf_ns(&st->st_atim);
	a->mtime = rf_ns(&st->st_mtim);
	a->ctime = rf_ns(&st->st_ctim);
	a->ttl_ms = VFS_TTL_DEFAULT;
}

/**
 * rf_stat_name() - attributes of a name in a directory, not followed
 * @rf:		provider
 * @dirfd:	directory
 * @name:	one component
 * @a:		filled in
 *
 * Return: 0 or a negative errno
 */
static int rf_stat_name(const struct realfs *rf, int dirfd, const char *name,
			struct vfs_attr *a)
{
	struct stat st;
	int ret;

	RF_RETRY(ret, fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW));
	if (ret < 0)
		return -errno;
	rf_attr(rf, &st, a);
	return 0;
}

/**
 * rf_stat_fd() - attributes of an open descriptor
 * @rf:		provider
 * @fd:		descriptor (O_PATH is fine)
 * @a:		filled in
 *
 * Return: 0 or a negative errno
 */
static int rf_stat_fd(const struct realfs *rf, int fd, struct vfs_attr *a)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	rf_attr(rf, &st, a);
	return 0;
}

/**
 * rf_getattr() - LOOKUP, GETATTR: the handle's, the root's, or the name's
 * @rf:		provider
 * @rq:		request
 * @a:		filled in
 *
 * Return: 0 or a negative errno
 */
static int rf_getattr(const struct realfs *rf, const struct vfs_req *rq,
		      struct vfs_attr *a)
{
	struct rf_at at;
	int ret;

	if (rq->fd >= 0)
		return rf_stat_fd(rf, rq->fd, a);
	if (rf_is_root(rq->path))
		return rf_stat_fd(rf, rf->rootfd, a);
	ret = rf_at_open(rf, rq->path, &at);
	if (ret < 0)
		return ret;
	ret = rf_stat_name(rf, at.dirfd, at.name, a);
	rf_at_close(&at);
	return ret;
}

/**
 * rf_chmod_path() - chmod the object at @path itself, never a symlink's target
 * @rf:		provider
 * @path:	checked request path
 * @mode:	permission bits
 *
 * fchmod() refuses O_PATH descriptors, and fchmodat() has no
 * AT_SYMLINK_NOFOLLOW on older kernels; /proc/self/fd/N of our own O_PATH
 * descriptor names exactly what openat2() found, and that is known not to
 * be a symlink.
 *
 * Return: 0 or a negative errno (EOPNOTSUPP for a symlink, like Linux)
 */
static int rf_chmod_path(const struct realfs *rf, const char *path, mode_t mode)
{
	char proc[32];
	struct stat st;
	int fd, ret;

	fd = rf_open(rf, rf_rel(path), O_PATH | O_NOFOLLOW | O_CLOEXEC, 0);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
	} else if (S_ISLNK(st.st_mode)) {
		ret = -EOPNOTSUPP;
	} else {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		RF_RETRY(ret, fchmodat(AT_FDCWD, proc, mode, 0));
		ret = ret < 0 ? -errno : 0;
	}
	close(fd);
	return ret;
}

/**
 * rf_chown_path() - chown the object at @path itself (a symlink too)
 * @rf:		provider
 * @path:	checked request path
 * @uid:	host uid, or -1
 * @gid:	host gid, or -1
 *
 * Return: 0 or a negative errno
 */
static int rf_chown_path(const struct realfs *rf, const char *path,
			 uid_t uid, gid_t gid)
{
	int fd, ret;

	fd = rf_open(rf, rf_rel(path), O_PATH | O_NOFOLLOW | O_CLOEXEC, 0);
	if (fd < 0)
		return fd;
	RF_RETRY(ret, fchownat(fd, "", uid, gid, AT_EMPTY_PATH));
	ret = ret < 0 ? -errno : 0;
	close(fd);
	return ret;
}

/**
 * rf_set_mode_owner() - the mode and owner parts of SETATTR
 * @rf:		provider
 * @rq:		request
 *
 * Guest uid/gid 0 are the host user's (see the top).
 *
 * Return: 0 or a negative errno
 */
static int rf_set_mode_owner(const struct realfs *rf, const struct vfs_req *rq)
{
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	int ret = 0;

	if (rq->set & VFS_SET_MODE) {
		if (rq->fd >= 0) {
			RF_RETRY(ret, fchmod(rq->fd, rq->mode & 07777));
			ret = ret < 0 ? -errno : 0;
		} else {
			ret = rf_chmod_path(rf, rq->path, rq->mode & 07777);
		}
		if (ret < 0)
			return ret;
	}
	if (!(rq->set & (VFS_SET_UID | VFS_SET_GID)))
		return 0;
	if (rq->set & VFS_SET_UID)
		uid = rq->uid == 0 ? rf->uid : rq->uid;
	if (rq->set & VFS_SET_GID)
		gid = rq->gid == 0 ? rf->gid : rq->gid;
	if (rq->fd < 0)
		return rf_chown_path(rf, rq->path, uid, gid);
	RF_RETRY(ret, fchown(rq->fd, uid, gid));
	return ret < 0 ? -errno : 0;
}

/**
 * rf_truncate_path() - truncate the regular file at @path
 * @rf:		provider
 * @path:	checked request path
 * @size:	new size
 *
 * Return: 0 or a negative errno (EISDIR, EINVAL for non-regular files)
 */
static int rf_truncate_path(const struct realfs *rf, const char *path, off_t size)
{
	struct stat st;
	int fd, ret;

	fd = rf_open(rf, rf_rel(path), O_WRONLY | O_NOFOLLOW | O_NONBLOCK |
		     O_NOCTTY | O_CLOEXEC, 0);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
	} else if (!S_ISREG(st.st_mode)) {
		ret = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	} else {
		RF_RETRY(ret, ftruncate(fd, size));
		ret = ret < 0 ? -errno : 0;
	}
	close(fd);
	return ret;
}

/**
 * rf_set_size() - the truncate part of SETATTR
 * @rf:		provider
 * @rq:		request
 *
 * The handle may be read-only (EBADF) or a directory (EINVAL); then the
 * path decides, as truncate(2) would.
 *
 * Return: 0 or a negative errno
 */
static int rf_set_size(const struct realfs *rf, const struct vfs_req *rq)
{
	int ret;

	if (rq->size > INT64_MAX)
		return -EFBIG;
	if (rq->fd >= 0) {
		RF_RETRY(ret, ftruncate(rq->fd, (off_t)rq->size));
		if (ret == 0)
			return 0;
		if (errno != EBADF && errno != EINVAL)
			return -errno;
	}
	return rf_truncate_path(rf, rq->path, (off_t)rq->size);
}

/**
 * rf_timespec() - one time of a SETATTR request as utimensat() wants it
 * @ts:		filled in
 * @set:	the request's set bits
 * @now:	the bit that means "now"
 * @given:	the bit that means "@ns"
 * @ns:		nanoseconds since the epoch
 */
static void rf_timespec(struct timespec *ts, unsigned int set, unsigned int now,
			unsigned int given, int64_t ns)
{
	ts->tv_sec = 0;
	if (set & now) {
		ts->tv_nsec = UTIME_NOW;
	} else if (set & given) {
		ts->tv_sec = ns / RF_NS;
		ts->tv_nsec = ns % RF_NS;
		if (ts->tv_nsec < 0) {			/* floor, for times before 1970 */
			ts->tv_nsec += RF_NS;
			ts->tv_sec--;
		}
	} else {
		ts->tv_nsec = UTIME_OMIT;
	}
}

/**
 * rf_set_times() - the atime/mtime part of SETATTR
 * @rf:		provider
 * @rq:		request
 *
 * Return: 0 or a negative errno
 */
static int rf_set_times(const struct realfs *rf, const struct vfs_req *rq)
{
	struct timespec ts[2];
	struct rf_at at;
	int ret;

	rf_timespec(&ts[0], rq->set, VFS_SET_ATIME_NOW, VFS_SET_ATIME, rq->atime);
	rf_timespec(&ts[1], rq->set, VFS_SET_MTIME_NOW, VFS_SET_MTIME, rq->mtime);
	if (rq->fd >= 0) {
		RF_RETRY(ret, futimens(rq->fd, ts));
		return ret < 0 ? -errno : 0;
	}
	ret = rf_at_open(rf, rq->path, &at);
	if (ret < 0)
		return ret;
	RF_RETRY(ret, utimensat(at.dirfd, at.name, ts, AT_SYMLINK_NOFOLLOW));
	ret = ret < 0 ? -errno : 0;
	rf_at_close(&at);
	return ret;
}

/**
 * rf_setattr() - SETATTR: mode, owner, size, times, in that order
 * @rf:		provider
 * @rq:		request
 * @rp:		reply: the new attributes
 *
 * Return: 0 or a negative errno (what was applied before it stays)
 */
static int rf_setattr(const struct realfs *rf, const struct vfs_req *rq,
		      struct vfs_reply *rp)
{
	const unsigned int times = VFS_SET_ATIME | VFS_SET_MTIME |
				   VFS_SET_ATIME_NOW | VFS_SET_MTIME_NOW;
	int ret;

	ret = rf_set_mode_owner(rf, rq);
	if (ret == 0 && (rq->set & VFS_SET_SIZE))
		ret = rf_set_size(rf, rq);
	if (ret == 0 && (rq->set & times))
		ret = rf_set_times(rf, rq);
	if (ret == 0)
		ret = rf_getattr(rf, rq, &rp->attr);
	return ret;
}

/**
 * rf_readlink() - READLINK: the link's text, verbatim
 * @rf:		provider
 * @rq:		request
 * @rp:		reply: @buf, @len
 *
 * Return: 0 or a negative errno (EINVAL: not a symlink; ENAMETOOLONG:
 * the text does not fit)
 */
static int rf_readlink(const struct realfs *rf, const struct vfs_req *rq,
		       struct vfs_reply *rp)
{
	struct rf_at at;
	ssize_t n;
	int ret;

	if (rf_is_root(rq->path))
		return -EINVAL;
	ret = rf_at_open(rf, rq->path, &at);
	if (ret < 0)
		return ret;
	RF_RETRY(n, readlinkat(at.dirfd, at.name, (char *)rp->buf, rp->cap));
	ret = n < 0 ? -errno : 0;
	rf_at_close(&at);
	if (ret < 0)
		return ret;
	if ((size_t)n >= rp->cap)			/* maybe cut short */
		return -ENAMETOOLONG;
	rp->len = (size_t)n;
	return 0;
}

/**
 * rf_make() - SYMLINK, MKDIR: make the name, reply with its attributes
 * @rf:		provider
 * @rq:		request
 * @rp:		reply: @attr
 *
 * The symlink's target is stored as given; it is never resolved here.
 *
 * Return: 0 or a negative errno (EEXIST for the root)
 */
static int rf_make(const struct realfs *rf, const struct vfs_req *rq,
		   struct vfs_reply *rp)
{
	struct rf_at at;
	int ret;

	if (rq->op == FS_SYMLINK && !rq->target)
		return -EINVAL;
	if (rf_is_root(rq->path))
		return -EEXIST;
	ret = rf_at_open(rf, rq->path, &at);
	if (ret < 0)
		return ret;
	if (rq->op == FS_SYMLINK)
		RF_RETRY(ret, symlinkat(rq->target, at.dirfd, at.name));
	else
		RF_RETRY(ret, mkdirat(at.dirfd, at.name, rq->mode & 07777));
	ret = ret < 0 ? -errno : rf_stat_name(rf, at.dirfd, at.name, &rp->attr);
	rf_at_close(&at);
	return ret;
}

/**
 * rf_remove() - UNLINK, RMDIR
 * @rf:		provider
 * @rq:		request
 *
 * Return: 0 or a negative errno (for the root what Linux says: unlink
 * EISDIR, rmdir EBUSY)
 */
static int rf_remove(const struct realfs *rf, const struct vfs_req *rq)
{
	int flags = rq->op == FS_RMDIR ? AT_REMOVEDIR : 0;
	struct rf_at at;
	int ret;

	if (rf_is_root(rq->path))
		return rq->op == FS_RMDIR ? -EBUSY : -EISDIR;
	ret = rf_at_open(rf, rq->path, &at);
	if (ret < 0)
		return ret;
	RF_RETRY(ret, unlinkat(at.dirfd, at.name, flags));
	ret = ret < 0 ? -errno : 0;
	rf_at_close(&at);
	return ret;
}

/**
 * rf_rename_flags() - wire rename flags to renameat2()'s
 * @flags:	FS_RENAME_* bits
 *
 * Return: RENAME_* bits, or -EINVAL for an unknown bit
 */
static int rf_rename_flags(uint32_t flags)
{
	int out = 0;

	if (flags & ~(uint32_t)(FS_RENAME_NOREPLACE | FS_RENAME_EXCHANGE))
		return -EINVAL;
	if (flags & FS_RENAME_NOREPLACE)
		out |= RENAME_NOREPLACE;
	if (flags & FS_RENAME_EXCHANGE)
		out |= RENAME_EXCHANGE;
	return out;
}

/**
 * rf_two() - RENAME, LINK: @path and @path2, each in its parent
 * @rf:		provider
 * @rq:		request
 * @rp:		reply: @attr of the new name for LINK
 *
 * Neither call follows a symlink: rename moves names, linkat() without
 * AT_SYMLINK_FOLLOW links a symlink itself.
 *
 * Return: 0 or a negative errno (EBUSY for renames of or onto the root;
 * EPERM to link the root, a directory; EEXIST to link onto it)
 */
static int rf_two(const struct realfs *rf, const struct vfs_req *rq,
		  struct vfs_reply *rp)
{
	struct rf_at from, to;
	int flags = 0, ret;

	if (rq->op == FS_RENAME) {
		flags = rf_rename_flags(rq->flags);
		if (flags < 0)
			return flags;
		if (rf_is_root(rq->path) || rf_is_root(rq->path2))
			return -EBUSY;
	} else if (rf_is_root(rq->path)) {
		return -EPERM;
	} else if (rf_is_root(rq->path2)) {
		return -EEXIST;
	}
	ret = rf_at_open(rf, rq->path, &from);
	if (ret < 0)
		return ret;
	ret = rf_at_open(rf, rq->path2, &to);
	if (ret < 0) {
		rf_at_close(&from);
		return ret;
	}
	if (rq->op == FS_RENAME)
		RF_RETRY(ret, renameat2(from.dirfd, from.name, to.dirfd, to.name, flags));
	else
		RF_RETRY(ret, linkat(from.dirfd, from.name, to.dirfd, to.name, 0));
	ret = ret < 0 ? -errno : 0;
	if (ret == 0 && rq->op == FS_LINK)
		ret = rf_stat_name(rf, to.dirfd, to.name, &rp->attr);
	rf_at_close(&to);
	rf_at_close(&from);
	return ret;
}

/* open flags for a vfs_access */
static int rf_access_flags(enum vfs_access access)
{
	switch (access) {
	case VFS_WRITE:	return O_WRONLY;
	case VFS_RDWR:	return O_RDWR;
	default:	return O_RDONLY;
	}
}

/**
 * rf_handle() - open @rel as a handle for the guest
 * @rf:		provider
 * @rel:	path relative to the root
 * @flags:	open flags (O_NONBLOCK, O_NOCTTY, O_NOFOLLOW added here)
 * @mode:	creation mode with O_CREAT, else 0
 * @rp:		reply: @fd and @attr
 *
 * Only regular files and directories become handles: a FIFO, socket or
 * device node in the host tree is EACCES. O_NONBLOCK made the open itself
 * safe; it is cleared on regular files so I/O on them behaves normally.
 *
 * Return: 0 or a negative errno
 */
static int rf_handle(const struct realfs *rf, const char *rel, int flags,
		     mode_t mode, struct vfs_reply *rp)
{
	struct stat st;
	int fd, fl, ret = 0;

	fd = rf_open(rf, rel, (unsigned int)(flags | O_NONBLOCK | O_NOCTTY |
					     O_NOFOLLOW | O_CLOEXEC), mode);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0)
		ret = -errno;
	else if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
		ret = -EACCES;
	else if (S_ISREG(st.st_mode) &&
		 ((fl = fcntl(fd, F_GETFL)) < 0 ||
		  fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0))
		ret = -errno;
	if (ret < 0) {
		close(fd);
		return ret;
	}
	rf_attr(rf, &st, &rp->attr);
	rp->fd = fd;
	return 0;
}

/**
 * rf_openfile() - OPEN, CREATE
 * @rf:		provider
 * @rq:		request
 * @rp:		reply: @fd, @attr
 *
 * CREATE without excl may meet a name the host made meanwhile; it is then
 * opened like OPEN would (and refused if it is not a regular file).
 *
 * Return: 0 or a negative errno
 */
static int rf_openfile(const struct realfs *rf, const struct vfs_req *rq,
		       struct vfs_reply *rp)
{
	int flags = rf_access_flags(rq->access);

	if (rq->append)
		flags |= O_APPEND;
	if (rq->trunc)
		flags |= O_TRUNC;
	if (rq->op == FS_OPEN)
		return rf_handle(rf, rf_rel(rq->path), flags, 0, rp);
	if (rf_is_root(rq->path))
		return -EEXIST;
	if (rq->excl)
		flags |= O_EXCL;
	return rf_handle(rf, rf_rel(rq->path), flags | O_CREAT, rq->mode & 07777, rp);
}

/**
 * rf_offset() - a request offset as off_t
 * @off:	offset
 * @o:		out
 *
 * Return: 0, or -EINVAL when it does not fit
 */
static int rf_offset(uint64_t off, off_t *o)
{
	if (off > INT64_MAX)
		return -EINVAL;
	*o = (off_t)off;
	return 0;
}

/**
 * rf_read() - READ: fill the buffer until the size, end of file or an error
 * @rq:		request
 * @rp:		reply: @buf, @len
 *
 * Return: 0 or a negative errno (an error after some bytes ends the read
 * short, with those bytes)
 */
static int rf_read(const struct vfs_req *rq, struct vfs_reply *rp)
{
	size_t want = rq->size < rp->cap ? (size_t)rq->size : rp->cap;
	size_t done = 0;
	ssize_t n;
	off_t off;
	int ret;

	ret = rf_offset(rq->offset, &off);
	if (ret < 0)
		return ret;
	while (done < want) {
		RF_RETRY(n, pread(rq->fd, rp->buf + done, want - done,
				  off + (off_t)done));
		if (n < 0 && done == 0)
			return -errno;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	rp->len = done;
	return 0;
}

/**
 * rf_write() - WRITE: all of the data, unless the filesystem stops short
 * @rq:		request
 * @rp:		reply: @written
 *
 * Return: 0 or a negative errno (only when nothing was written)
 */
static int rf_write(const struct vfs_req *rq, struct vfs_reply *rp)
{
	size_t done = 0;
	ssize_t n;
	off_t off;
	int ret;

	ret = rf_offset(rq->offset, &off);
	if (ret < 0)
		return ret;
	while (done < rq->len) {
		RF_RETRY(n, pwrite(rq->fd, rq->data + done, rq->len - done,
				   off + (off_t)done));
		if (n < 0 && done == 0)
			return -errno;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	rp->written = done;
	return 0;
}

/**
 * rf_dir_entry() - the attributes of one directory entry
 * @rf:		provider
 * @d:		the directory being read
 * @de:		the entry
 * @plus:	full attributes wanted
 * @a:		filled in
 *
 * Without @plus the type from d_type is enough (the guest asks later);
 * filesystems that do not give one get an fstatat().
 *
 * Return: 0, or a negative errno (ENOENT: the entry vanished meanwhile)
 */
static int rf_dir_entry(const struct realfs *rf, DIR *d, const struct dirent *de,
			bool plus, struct vfs_attr *a)
{
	if (plus || de->d_type == DT_UNKNOWN)
		return rf_stat_name(rf, dirfd(d), de->d_name, a);
	memset(a, 0, sizeof(*a));
	a->mode = DTTOIF(de->d_type);
	a->ino = de->d_ino;
	a->ttl_ms = VFS_TTL_DEFAULT;
	return 0;
}

/**
 * rf_dir_fill() - add a directory's entries from @skip on to the reply
 * @rf:		provider
 * @d:		the opened directory
 * @skip:	entries to skip ("." and ".." not counted, nor sent)
 * @plus:	full attributes
 * @rp:		reply: @dir, @eof
 *
 * The guest's next offset is the number of entries it got so far, so an
 * entry that vanished before we could stat it is left out and not counted.
 *
 * Return: 0 or a negative errno
 */
static int rf_dir_fill(const struct realfs *rf, DIR *d, uint64_t skip,
		       bool plus, struct vfs_reply *rp)
{
	struct vfs_attr a;
	struct dirent *de;
	size_t len;
	int ret;

	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de)
			break;
		len = strlen(de->d_name);
		if ((len == 1 && de->d_name[0] == '.') ||
		    (len == 2 && de->d_name[0] == '.' && de->d_name[1] == '.') ||
		    len > FS_NAME_MAX)
			continue;
		if (skip > 0) {
			skip--;
			continue;
		}
		ret = rf_dir_entry(rf, d, de, plus, &a);
		if (ret == -ENOENT)
			continue;
		if (ret < 0)
			return ret;
		if (vfs_dir_add(rp->dir, de->d_name, len, &a) < 0) {
			rp->eof = false;
			return 0;
		}
	}
	if (errno != 0)
		return -errno;
	rp->eof = true;
	return 0;
}

/**
 * rf_readdir() - READDIR
 * @rf:		provider
 * @rq:		request: @path, @offset entries to skip, @plus
 * @rp:		reply: @dir, @eof
 *
 * Return: 0 or a negative errno
 */
static int rf_readdir(const struct realfs *rf, const struct vfs_req *rq,
		      struct vfs_reply *rp)
{
	DIR *d;
	int fd, ret;

	fd = rf_open(rf, rf_rel(rq->path), O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		     O_CLOEXEC, 0);
	if (fd < 0)
		return fd;
	d = fdopendir(fd);
	if (!d) {
		ret = -errno;
		close(fd);
		return ret;
	}
	ret = rf_dir_fill(rf, d, rq->offset, rq->plus, rp);
	closedir(d);
	return ret;
}

/**
 * rf_statfs() - STATFS: the root's filesystem
 * @rf:		provider
 * @st:		filled in
 *
 * Return: 0 or a negative errno
 */
static int rf_statfs(const struct realfs *rf, struct vfs_statfs *st)
{
	struct statvfs sv;
	int ret;

	RF_RETRY(ret, fstatvfs(rf->rootfd, &sv));
	if (ret < 0)
		return -errno;
	st->bsize = sv.f_frsize ? sv.f_frsize : sv.f_bsize;
	st->blocks = sv.f_blocks;
	st->bfree = sv.f_bfree;
	st->bavail = sv.f_bavail;
	st->files = sv.f_files;
	st->ffree = sv.f_ffree;
	st->namelen = sv.f_namemax;
	return 0;
}

/**
 * rf_access() - ACCESS with the host's effective ids, the name not followed
 * @rf:		provider
 * @rq:		request: @path, @mask
 *
 * Return: 0 or a negative errno
 */
static int rf_access(const struct realfs *rf, const struct vfs_req *rq)
{
	struct rf_at at;
	int ret;

	ret = rf_at_open(rf, rq->path, &at);
	if (ret < 0)
		return ret;
	RF_RETRY(ret, faccessat(at.dirfd, at.name, (int)rq->mask,
				AT_EACCESS | AT_SYMLINK_NOFOLLOW));
	ret = ret < 0 ? -errno : 0;
	rf_at_close(&at);
	return ret;
}

/**
 * rf_fd_op() - the requests on a handle: READ, WRITE, FSYNC, RELEASE
 * @rq:		request (@fd is the handle)
 * @rp:		reply
 *
 * Return: 0 or a negative errno
 */
static int rf_fd_op(const struct vfs_req *rq, struct vfs_reply *rp)
{
	int ret;

	if (rq->fd < 0)
		return -EBADF;
	switch (rq->op) {
	case FS_READ:
		return rf_read(rq, rp);
	case FS_WRITE:
		return rf_write(rq, rp);
	case FS_FSYNC:
		RF_RETRY(ret, rq->datasync ? fdatasync(rq->fd) : fsync(rq->fd));
		return ret < 0 ? -errno : 0;
	default:
		/* the descriptor is gone even when close() reports EINTR */
		ret = close(rq->fd);
		return ret < 0 && errno != EINTR ? -errno : 0;
	}
}

/* does @op name a path (and, for RENAME and LINK, a second one)? */
static bool rf_paths_ok(const struct vfs_req *rq)
{
	switch (rq->op) {
	case FS_READ: case FS_WRITE: case FS_FSYNC: case FS_RELEASE:
		return true;
	case FS_RENAME: case FS_LINK:
		return rf_path_ok(rq->path) && rf_path_ok(rq->path2);
	default:
		return rf_path_ok(rq->path);
	}
}

/**
 * realfs_call() - answer one request
 * @self:	provider
 * @rq:		request
 * @rp:		reply
 *
 * Return: 0 or a negative host errno (ENOSYS for an unknown op)
 */
static int realfs_call(void *self, const struct vfs_req *rq, struct vfs_reply *rp)
{
	const struct realfs *rf = self;

	if (!rf_paths_ok(rq))
		return -EINVAL;
	switch (rq->op) {
	case FS_LOOKUP:
	case FS_GETATTR:	return rf_getattr(rf, rq, &rp->attr);
	case FS_SETATTR:	return rf_setattr(rf, rq, rp);
	case FS_READLINK:	return rf_readlink(rf, rq, rp);
	case FS_SYMLINK:
	case FS_MKDIR:		return rf_make(rf, rq, rp);
	case FS_UNLINK:
	case FS_RMDIR:		return rf_remove(rf, rq);
	case FS_RENAME:
	case FS_LINK:		return rf_two(rf, rq, rp);
	case FS_OPEN:
	case FS_CREATE:		return rf_openfile(rf, rq, rp);
	case FS_READ:
	case FS_WRITE:
	case FS_FSYNC:
	case FS_RELEASE:	return rf_fd_op(rq, rp);
	case FS_READDIR:	return rf_readdir(rf, rq, rp);
	case FS_STATFS:		return rf_statfs(rf, &rp->st);
	case FS_ACCESS:		return rf_access(rf, rq);
	default:		return -ENOSYS;
	}
}

/**
 * realfs_new() - a provider serving the directory @root
 * @root:	host path; symlinks in it are followed (the user chose it)
 * @walk:	resolve by component walk even where openat2 works (tests)
 *
 * Return: the provider, or NULL with errno set
 */
void *realfs_new(const char *root, bool walk)
{
	struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RF_RESOLVE };
	struct realfs *rf;
	int fd, probe, err;

	RF_RETRY(fd, open(root, O_PATH | O_DIRECTORY | O_CLOEXEC));
	if (fd < 0)
		return NULL;
	RF_RETRY(probe, (int)syscall(SYS_openat2, fd, ".", &how, sizeof(how)));
	if (probe < 0 && errno == ENOSYS) {
		walk = true;
		RF_RETRY(probe, openat(fd, ".", O_PATH | O_CLOEXEC));
	}
	if (probe < 0 || !(rf = malloc(sizeof(*rf)))) {
		err = probe < 0 ? errno : ENOMEM;
		if (probe >= 0)
			close(probe);
		close(fd);
		errno = err;
		return NULL;
	}
	close(probe);
	rf->rootfd = fd;
	rf->uid = geteuid();
	rf->gid = getegid();
	rf->walk = walk;
	return rf;
}

/**
 * realfs_destroy() - close the root and free the provider
 * @self:	provider (the server has released every handle)
 */
static void realfs_destroy(void *self)
{
	struct realfs *rf = self;

	close(rf->rootfd);
	free(rf);
}

const struct vfs_provider_ops realfs_ops = { "realfs", realfs_call, realfs_destroy };
