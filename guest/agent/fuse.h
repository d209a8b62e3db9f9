/* SPDX-License-Identifier: MIT */
/* fuse.h - internals shared by the FUSE client's files (fuse*.c) */
#ifndef GONDOLIN_AGENT_FUSE_H
#define GONDOLIN_AGENT_FUSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent.h"
#include "proto/cbor.h"
#include "proto/frame.h"
#include "proto/fs.h"

#define FNODE_MAX	65536		/* live nodes per mount */
#define FNODE_BUCKETS	16384		/* (parent, name) hash chains */
#define FNODE_GROW	1024		/* slots added when the table grows */
#define FUSE_ROOT_SLOT	1		/* nodeid 1 = slot 1, generation 0 */

/**
 * struct fnode - one FUSE node: a name under a parent, as the kernel sees it
 * @parent:	parent's nodeid (0 for the root)
 * @name:	component (malloc'd), NULL for the root and free slots
 * @nlookup:	lookups the kernel has not forgotten yet
 * @gen:	bumped each time the slot is reused, part of the nodeid
 * @hnext:	next slot in the hash chain (or the free list), 0 = none
 * @nchild:	nodes whose @parent this is (they need this one for their path)
 * @fh:		a host handle open on the node (@has_fh), for requests on a
 *		detached node whose path is gone
 * @used:	the slot holds a node
 * @hashed:	the node is findable by (parent, name); false once unlinked
 *		or replaced, when its path only serves requests on open files
 */
struct fnode {
	uint64_t parent;
	char *name;
	uint64_t nlookup;
	uint32_t gen, hnext, nchild;
	uint64_t fh;
	bool used, hashed, has_fh;
};

/**
 * struct fnodes - the node table of one mount
 * @v:		slots; slot 0 is never used, slot 1 is the root
 * @cap:	slots allocated (grows by FNODE_GROW up to FNODE_MAX + 2)
 * @live:	used slots
 * @free_head:	first free slot below @cap, 0 = none
 * @bucket:	FNODE_BUCKETS chain heads
 * @root:	the mount point's guest path
 * @root_len:	its length
 */
struct fnodes {
	struct fnode *v;
	uint32_t cap, live, free_head;
	uint32_t *bucket;
	const char *root;
	size_t root_len;
};

struct fuse_in_header;

#define FUSE_IN_MAX	(FS_IO_MAX + 8192)	/* one kernel request */
#define FS_ENC_MAX	(FS_IO_MAX + 2 * FS_PATH_MAX + 1024)
#define FUSE_REPLY_ONLY	0		/* freq.unique: no kernel reply owed */

/**
 * struct fmount - one FUSE mount
 * @fd:		/dev/fuse, -1 once the kernel ended the connection
 * @path:	mount point
 * @nodes:	nodeid <-> path table
 */
struct fmount {
	int fd;
	char *path;
	struct fnodes nodes;
};

/**
 * struct freq - one FS request awaiting the host's reply
 * @id:		frame id, 0 when the slot is free
 * @unique:	the kernel request to answer, FUSE_REPLY_ONLY for none
 * @opcode:	FUSE opcode
 * @op:		FS request type
 * @mnt:	index of the mount
 * @node:	subject nodeid (the parent for requests that create a name)
 * @node2:	RENAME's new parent
 * @off:	READDIR's kernel offset
 * @size:	READ / READDIR bytes asked, WRITE bytes sent
 * @flags:	RENAME flags; READDIR: 1 for plus
 * @nlen:	bytes in @name
 * @nlen2:	bytes in @name2
 * @name:	the new or looked-up name
 * @name2:	RENAME's new name
 */
struct freq {
	uint32_t id;
	uint64_t unique;
	uint32_t opcode;
	uint8_t op, mnt;
	uint64_t node, node2, off;
	uint32_t size, flags;
	uint16_t nlen, nlen2;
	char name[FS_NAME_MAX + 1], name2[FS_NAME_MAX + 1];
};

/**
 * struct fsc - the FS client
 * @port:	gondolin.fs
 * @down:	the port is gone (EOF or error): requests fail with EIO
 * @m:		mounts
 * @nmounts:	entries in @m
 * @req:	requests in flight
 * @inflight:	used slots of @req
 * @next_id:	last id handed out
 * @helper_fd:	read end of the mount helper's pipe, -1 when done
 * @mounted:	mounts made so far (the helper writes '+' for each); a
 *		/dev/fuse is not polled before (it reads EPERM until then)
 * @helper_msg:	what the helper reported (a failed mount), NUL-terminated
 * @helper_len:	bytes in @helper_msg
 * @in:		one kernel request
 * @enc:	one FS request payload
 * @out:	one kernel READDIR reply
 * @path:	scratch path
 * @path2:	second scratch path (RENAME, LINK)
 */
struct fsc {
	struct port port;
	bool down;
	struct fmount m[AGENT_MOUNTS_MAX];
	unsigned int nmounts;
	struct freq req[FS_INFLIGHT_MAX];
	unsigned int inflight;
	uint32_t next_id;
	int helper_fd;
	unsigned int mounted;
	char helper_msg[160];
	size_t helper_len;
	uint8_t in[FUSE_IN_MAX];
	uint8_t enc[FS_ENC_MAX];
	uint8_t out[FS_IO_MAX];
	char path[FS_PATH_MAX + 1], path2[FS_PATH_MAX + 1];
};

/* fuse.c: kernel replies, request slots, the port */
void kreply(struct fmount *m, uint64_t unique, int err, const void *data,
	    size_t len);
struct freq *freq_find(struct fsc *c, uint32_t id);
struct freq *freq_new(struct fsc *c, unsigned int mi,
		      const struct fuse_in_header *h, uint8_t op);
void freq_done(struct fsc *c, struct freq *r);
int freq_send(struct fsc *c, struct freq *r, struct cbor_writer *w,
	      const void *data, size_t dlen);
int put_path(struct fmount *m, struct cbor_writer *w, const char *key,
	     uint64_t node, const char *name, size_t nlen, char *buf);
void enc_start(struct fsc *c, struct cbor_writer *w, unsigned int pairs);

/* fuse_req.c, fuse_reply.c */
void fuse_kernel_request(struct fsc *c, unsigned int mi, size_t n);
void fuse_host_frame(struct fsc *c, const struct frame *f);


/* fuse_mount.c: the mount helper, run in a child while the loop serves */
int fuse_mount_spawn(char *const *paths, const int *fds, unsigned int n,
		     pid_t *pid);

int fnodes_init(struct fnodes *t, const char *root);
void fnodes_free(struct fnodes *t);
bool fnode_valid(const struct fnodes *t, uint64_t nodeid);
int fnode_ref(struct fnodes *t, uint64_t parent, const char *name,
	      size_t len, uint64_t *nodeid);
void fnode_forget(struct fnodes *t, uint64_t nodeid, uint64_t n);
void fnode_detach(struct fnodes *t, uint64_t parent, const char *name,
		  size_t len);
void fnode_rename(struct fnodes *t, uint64_t op, const char *on, size_t olen,
		  uint64_t np, const char *nn, size_t nlen, bool exchange);
void fnode_set_fh(struct fnodes *t, uint64_t nodeid, uint64_t fh, bool open);
bool fnode_detached_fh(const struct fnodes *t, uint64_t nodeid, uint64_t *fh);
int fnode_path(const struct fnodes *t, uint64_t nodeid, const char *name,
	       size_t nlen, char *out, size_t cap);

#endif /* GONDOLIN_AGENT_FUSE_H */
