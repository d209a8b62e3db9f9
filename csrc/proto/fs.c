/* SPDX-License-Identifier: MIT */
/* fs.c - FS RPC names and path rules, shared by the host and the agent */

/*
 * Errors cross the port as names ("ENOENT"), so neither side depends on the
 * other's errno numbering; each side maps them to its own values here.
 * Anything not in the table is EIO on the way in and on the way out.
 */

#include <errno.h>
#include <string.h>

#include "proto/fs.h"

static const struct {
	int value;
	const char *name;
} errnos[] = {
	{ EPERM, "EPERM" }, { ENOENT, "ENOENT" }, { EIO, "EIO" },
	{ EBADF, "EBADF" }, { EACCES, "EACCES" }, { EEXIST, "EEXIST" },
	{ EXDEV, "EXDEV" }, { ENOTDIR, "ENOTDIR" }, { EISDIR, "EISDIR" },
	{ EINVAL, "EINVAL" }, { EFBIG, "EFBIG" }, { ENOSPC, "ENOSPC" },
	{ EROFS, "EROFS" }, { EMLINK, "EMLINK" }, { ENAMETOOLONG, "ENAMETOOLONG" },
	{ ENOTEMPTY, "ENOTEMPTY" }, { ELOOP, "ELOOP" }, { ENOSYS, "ENOSYS" },
	{ ENOTSUP, "ENOTSUP" }, { ERANGE, "ERANGE" }, { ETXTBSY, "ETXTBSY" },
	{ EMFILE, "EMFILE" }, { ENFILE, "ENFILE" }, { EAGAIN, "EAGAIN" },
};

static const char *const op_names[FS_OP_MAX + 1] = {
	[FS_LOOKUP] = "lookup", [FS_GETATTR] = "getattr", [FS_SETATTR] = "setattr",
	[FS_READLINK] = "readlink", [FS_SYMLINK] = "symlink", [FS_MKDIR] = "mkdir",
	[FS_UNLINK] = "unlink", [FS_RMDIR] = "rmdir", [FS_RENAME] = "rename",
	[FS_LINK] = "link", [FS_OPEN] = "open", [FS_CREATE] = "create",
	[FS_READ] = "read", [FS_WRITE] = "write", [FS_FSYNC] = "fsync",
	[FS_RELEASE] = "release", [FS_READDIR] = "readdir", [FS_STATFS] = "statfs",
	[FS_ACCESS] = "access",
};

/* the name of request type @op, or NULL when there is none */
const char *fs_op_name(unsigned int op)
{
	return op <= FS_OP_MAX ? op_names[op] : NULL;
}

/* the wire name of errno @err ("EIO" for one not in the table) */
const char *fs_errno_name(int err)
{
	size_t i;

	for (i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++)
		if (errnos[i].value == err)
			return errnos[i].name;
	return "EIO";
}

/* this side's errno for the wire name @name (@len bytes); EIO if unknown */
int fs_errno_value(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++)
		if (strlen(errnos[i].name) == len && !memcmp(errnos[i].name, name, len))
			return errnos[i].value;
	return EIO;
}

/**
 * fs_path_ok() - is @path a normalised absolute path the protocol allows?
 * @path:	bytes (not NUL-terminated)
 * @len:	their number
 *
 * "/" or "/a/b": no empty, "." or ".." components, no trailing "/", no NUL,
 * at most FS_PATH_MAX bytes and FS_NAME_MAX per component.
 *
 * Return: 1 if so, 0 if not.
 */
int fs_path_ok(const char *path, size_t len)
{
	size_t i, start;

	if (len == 0 || len > FS_PATH_MAX || path[0] != '/')
		return 0;
	if (len == 1)
		return 1;
	for (start = 1, i = 1; i <= len; i++) {
		if (i < len && path[i] == '\0')
			return 0;
		if (i < len && path[i] != '/')
			continue;
		if (i == start || i - start > FS_NAME_MAX)
			return 0;
		if (path[start] == '.' && (i - start == 1 || (i - start == 2 && path[start + 1] == '.')))
			return 0;
		start = i + 1;
	}
	return 1;
}
