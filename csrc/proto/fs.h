/* SPDX-License-Identifier: MIT */
/* fs.h - FS RPC on the gondolin.fs port: operations, limits, errno names */
#ifndef GONDOLIN_PROTO_FS_H
#define GONDOLIN_PROTO_FS_H

#include <stddef.h>
#include <stdint.h>

/* Request types (guest -> host) on gondolin.fs; docs/protocol.md. */
enum fs_op {
	FS_LOOKUP	= 0x01,
	FS_GETATTR	= 0x02,
	FS_SETATTR	= 0x03,
	FS_READLINK	= 0x04,
	FS_SYMLINK	= 0x05,
	FS_MKDIR	= 0x06,
	FS_UNLINK	= 0x07,
	FS_RMDIR	= 0x08,
	FS_RENAME	= 0x09,
	FS_LINK		= 0x0a,
	FS_OPEN		= 0x0b,
	FS_CREATE	= 0x0c,
	FS_READ		= 0x0d,
	FS_WRITE	= 0x0e,
	FS_FSYNC	= 0x0f,
	FS_RELEASE	= 0x10,
	FS_READDIR	= 0x11,
	FS_STATFS	= 0x12,
	FS_ACCESS	= 0x13,
	FS_OP_MAX	= 0x13,

	FS_REPLY	= 0x80,	/* host -> guest, the request's id */
};

#define FS_IO_MAX	(128 * 1024)	/* bytes per FS_READ / FS_WRITE */
#define FS_PATH_MAX	4096		/* bytes in a path */
#define FS_NAME_MAX	255		/* bytes in one component */
#define FS_INFLIGHT_MAX	64		/* guest requests awaiting a reply */
#define FS_TTL_MS	1000		/* attribute / entry cache default */

#define FS_RENAME_NOREPLACE	1
#define FS_RENAME_EXCHANGE	2

const char *fs_op_name(unsigned int op);
const char *fs_errno_name(int err);
int fs_errno_value(const char *name, size_t len);
int fs_path_ok(const char *path, size_t len);

#endif /* GONDOLIN_PROTO_FS_H */
