/* SPDX-License-Identifier: MIT */
/* fuse.h - internals shared by the FUSE client (fuse.c) and its node table */
#ifndef GONDOLIN_AGENT_FUSE_H
#define GONDOLIN_AGENT_FUSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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

struct agent;

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
