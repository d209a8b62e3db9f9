/* SPDX-License-Identifier: MIT */
/* fuse_node.c - FUSE nodeids <-> guest paths for the path-based FS RPC */

/*
 * Theory of Operation
 *
 * The kernel names files by nodeid; the host wants full guest paths. Each
 * mount keeps a table of nodes, each one a (parent nodeid, name) pair, so a
 * path is built by walking parents up to the root (nodeid 1, the mount
 * point). A nodeid is (generation << 32) | slot: a slot reused after the
 * kernel forgot its node gets a new generation, so a stale nodeid is
 * recognised instead of silently naming another file.
 *
 * Lifetime: a node lives while the kernel holds lookups on it (@nlookup,
 * raised by every entry reply, lowered by FORGET) or while another node
 * names it as parent (@nchild: the child still needs the parent for its
 * path). The last of those to go frees the slot, and may free the parent.
 *
 * (parent, name) -> node is a chained hash, so LOOKUP of a known name
 * returns its existing nodeid. UNLINK/RMDIR and a rename that replaces a
 * file take the old node out of the hash ("detached") but keep its name
 * and parent: an open file's handle-less requests still build its last
 * path, and the host then answers ENOENT, as a local filesystem would
 * for a path that is gone.
 *
 * Bounds: FNODE_MAX live nodes (then fnode_ref fails with -ENFILE), names
 * at most FS_NAME_MAX bytes, paths at most FS_PATH_MAX bytes.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuse.h"
#include "proto/fs.h"

#define FNODE_SLOT(id_)	((uint32_t)((id_) & 0xffffffffu))
#define FNODE_GEN(id_)	((uint32_t)((id_) >> 32))
#define FNODE_ID(t_, s_) (((uint64_t)(t_)->v[s_].gen << 32) | (s_))

/**
 * hash() - bucket of (@parent, @name)
 * @parent:	parent nodeid
 * @name:	component
 * @len:	its length
 *
 * Return: bucket index.
 */
static uint32_t hash(uint64_t parent, const char *name, size_t len)
{
	uint64_t h = 1469598103934665603ull ^ parent;	/* FNV-1a */
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ (uint8_t)name[i]) * 1099511628211ull;
	return (uint32_t)(h ^ (h >> 32)) % FNODE_BUCKETS;
}

/**
 * fnodes_init() - empty table whose root is @root
 * @t:		table
 * @root:	mount point path (kept, not copied)
 *
 * Return: 0 or -ENOMEM.
 */
int fnodes_init(struct fnodes *t, const char *root)
{
	uint32_t i;

	memset(t, 0, sizeof(*t));
	t->bucket = calloc(FNODE_BUCKETS, sizeof(*t->bucket));
	t->v = calloc(FNODE_GROW, sizeof(*t->v));
	if (!t->bucket || !t->v) {
		fnodes_free(t);
		return -ENOMEM;
	}
	t->cap = FNODE_GROW;
	for (i = FNODE_GROW - 1; i > FUSE_ROOT_SLOT; i--) {
		t->v[i].hnext = t->free_head;
		t->free_head = i;
	}
	t->v[FUSE_ROOT_SLOT].used = true;
	t->v[FUSE_ROOT_SLOT].nlookup = 1;	/* the kernel never forgets it */
	t->live = 1;
	t->root = root;
	t->root_len = strlen(root);
	return 0;
}

/**
 * fnodes_free() - release every node and the table
 * @t:		table
 */
void fnodes_free(struct fnodes *t)
{
	uint32_t i;

	for (i = 0; t->v && i < t->cap; i++)
		free(t->v[i].name);
	free(t->v);
	free(t->bucket);
	t->v = NULL;
	t->bucket = NULL;
	t->cap = t->live = 0;
}

/**
 * slot_of() - the slot of a current nodeid
 * @t:		table
 * @nodeid:	from the kernel
 *
 * Return: the slot, or 0 when @nodeid is unknown or stale.
 */
static uint32_t slot_of(const struct fnodes *t, uint64_t nodeid)
{
	uint32_t s = FNODE_SLOT(nodeid);

	if (s == 0 || s >= t->cap || !t->v[s].used || t->v[s].gen != FNODE_GEN(nodeid))
		return 0;
	return s;
}

/**
 * fnode_valid() - whether @nodeid names a live node
 * @t:		table
 * @nodeid:	from the kernel
 *
 * Return: true if so.
 */
bool fnode_valid(const struct fnodes *t, uint64_t nodeid)
{
	return slot_of(t, nodeid) != 0;
}

/**
 * find() - the hashed node (@parent, @name)
 * @t:		table
 * @parent:	parent nodeid
 * @name:	component
 * @len:	its length
 *
 * Return: its slot, or 0.
 */
static uint32_t find(const struct fnodes *t, uint64_t parent, const char *name,
		     size_t len)
{
	uint32_t s;

	for (s = t->bucket[hash(parent, name, len)]; s; s = t->v[s].hnext) {
		const struct fnode *n = &t->v[s];

		if (n->parent == parent && strlen(n->name) == len &&
		    memcmp(n->name, name, len) == 0)
			return s;
	}
	return 0;
}

/**
 * unhash() - take slot @s out of its chain
 * @t:		table
 * @s:		hashed slot
 */
static void unhash(struct fnodes *t, uint32_t s)
{
	struct fnode *n = &t->v[s];
	uint32_t *pp = &t->bucket[hash(n->parent, n->name, strlen(n->name))];

	while (*pp && *pp != s)
		pp = &t->v[*pp].hnext;
	if (*pp)
		*pp = n->hnext;
	n->hnext = 0;
	n->hashed = false;
}

/**
 * rehash() - put slot @s into the chain of its current (parent, name)
 * @t:		table
 * @s:		unhashed slot
 */
static void rehash(struct fnodes *t, uint32_t s)
{
	struct fnode *n = &t->v[s];
	uint32_t b = hash(n->parent, n->name, strlen(n->name));

	n->hnext = t->bucket[b];
	t->bucket[b] = s;
	n->hashed = true;
}

/**
 * grow() - add FNODE_GROW free slots
 * @t:		table with no free slot
 *
 * Return: 0, -ENFILE at the bound, -ENOMEM.
 */
static int grow(struct fnodes *t)
{
	uint32_t add = FNODE_GROW, i;
	struct fnode *v;

	if (t->cap >= FNODE_MAX + 2)
		return -ENFILE;
	if (t->cap + add > FNODE_MAX + 2)
		add = FNODE_MAX + 2 - t->cap;
	v = realloc(t->v, (size_t)(t->cap + add) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	memset(v + t->cap, 0, (size_t)add * sizeof(*v));
	for (i = t->cap + add - 1; i >= t->cap; i--) {
		v[i].hnext = t->free_head;
		t->free_head = i;
	}
	t->v = v;
	t->cap += add;
	return 0;
}

/**
 * alloc_slot() - a free slot (generation already advanced)
 * @t:		table
 *
 * Return: the slot, or -ENFILE / -ENOMEM.
 */
static int64_t alloc_slot(struct fnodes *t)
{
	uint32_t s;
	int rc;

	if (t->live >= FNODE_MAX)
		return -ENFILE;
	if (!t->free_head) {
		rc = grow(t);
		if (rc < 0)
			return rc;
	}
	s = t->free_head;
	t->free_head = t->v[s].hnext;
	t->v[s].hnext = 0;
	return s;
}

/**
 * release() - free slot @s if nothing holds it, then maybe its parent
 * @t:		table
 * @s:		slot
 */
static void release(struct fnodes *t, uint32_t s)
{
	while (s && s != FUSE_ROOT_SLOT) {
		struct fnode *n = &t->v[s];
		uint32_t parent;

		if (!n->used || n->nlookup || n->nchild)
			return;
		if (n->hashed)
			unhash(t, s);
		parent = slot_of(t, n->parent);
		free(n->name);
		n->name = NULL;
		n->used = false;
		n->gen++;
		n->hnext = t->free_head;
		t->free_head = s;
		t->live--;
		if (parent)
			t->v[parent].nchild--;
		s = parent;
	}
}

/**
 * fnode_ref() - the node (@parent, @name), created if new; one more lookup
 * @t:		table
 * @parent:	parent nodeid (must be live)
 * @name:	component, at most FS_NAME_MAX bytes
 * @len:	its length
 * @nodeid:	set to the node's id
 *
 * Return: 0, -ESTALE (unknown parent), -ENFILE (table full), -ENOMEM.
 */
int fnode_ref(struct fnodes *t, uint64_t parent, const char *name,
	      size_t len, uint64_t *nodeid)
{
	uint32_t ps = slot_of(t, parent), s;
	int64_t got;

	if (!ps)
		return -ESTALE;
	s = find(t, parent, name, len);
	if (!s) {
		got = alloc_slot(t);
		if (got < 0)
			return (int)got;
		s = (uint32_t)got;
		t->v[s].name = malloc(len + 1);
		if (!t->v[s].name) {
			t->v[s].hnext = t->free_head;
			t->free_head = s;
			return -ENOMEM;
		}
		memcpy(t->v[s].name, name, len);
		t->v[s].name[len] = '\0';
		t->v[s].parent = parent;
		t->v[s].used = true;
		t->v[s].nlookup = 0;
		t->v[s].nchild = 0;
		t->v[s].has_fh = false;
		t->v[ps].nchild++;
		t->live++;
		rehash(t, s);
	}
	t->v[s].nlookup++;
	*nodeid = FNODE_ID(t, s);
	return 0;
}

/**
 * fnode_forget() - the kernel dropped @n lookups of @nodeid
 * @t:		table
 * @nodeid:	node
 * @n:		lookups
 */
void fnode_forget(struct fnodes *t, uint64_t nodeid, uint64_t n)
{
	uint32_t s = slot_of(t, nodeid);

	if (!s || s == FUSE_ROOT_SLOT)
		return;
	t->v[s].nlookup = n >= t->v[s].nlookup ? 0 : t->v[s].nlookup - n;
	release(t, s);
}

/**
 * fnode_detach() - (@parent, @name) is gone (unlinked, removed, replaced)
 * @t:		table
 * @parent:	parent nodeid
 * @name:	component
 * @len:	its length
 */
void fnode_detach(struct fnodes *t, uint64_t parent, const char *name,
		  size_t len)
{
	uint32_t s = find(t, parent, name, len);

	if (s)
		unhash(t, s);
}

/**
 * reparent() - move slot @s to (@np, @name)
 * @t:		table
 * @s:		hashed slot
 * @np:		new parent nodeid (live)
 * @name:	new component (copied)
 * @len:	its length
 */
static void reparent(struct fnodes *t, uint32_t s, uint64_t np,
		     const char *name, size_t len)
{
	struct fnode *n = &t->v[s];
	uint32_t ops = slot_of(t, n->parent), nps = slot_of(t, np);
	char *copy = malloc(len + 1);

	unhash(t, s);
	if (copy) {
		memcpy(copy, name, len);
		copy[len] = '\0';
		free(n->name);
		n->name = copy;
	}
	if (ops)
		t->v[ops].nchild--;
	if (nps)
		t->v[nps].nchild++;
	n->parent = np;
	if (copy)
		rehash(t, s);	/* without memory it stays detached: safe */
	if (ops)
		release(t, ops);
}

/**
 * fnode_rename() - a rename succeeded on the host; follow it
 * @t:		table
 * @op:		old parent nodeid
 * @on:		old name
 * @olen:	its length
 * @np:		new parent nodeid
 * @nn:		new name
 * @nlen:	its length
 * @exchange:	the two names swapped (RENAME_EXCHANGE)
 *
 * Without @exchange a node already at the new name was replaced: it is
 * detached.
 */
void fnode_rename(struct fnodes *t, uint64_t op, const char *on, size_t olen,
		  uint64_t np, const char *nn, size_t nlen, bool exchange)
{
	uint32_t src = find(t, op, on, olen), dst = find(t, np, nn, nlen);

	if (src && src == dst)
		return;
	if (dst && !exchange)
		unhash(t, dst);
	if (!slot_of(t, np) || !slot_of(t, op)) {
		if (src)
			unhash(t, src);
		return;
	}
	if (dst && exchange)
		reparent(t, dst, op, on, olen);
	if (src)
		reparent(t, src, np, nn, nlen);
}

/**
 * fnode_set_fh() - note a handle opened (or released) on @nodeid
 * @t:		table
 * @nodeid:	node
 * @fh:		host handle
 * @open:	true: opened; false: released (forgotten if it was the one)
 *
 * One handle per node is remembered: enough for a file that is unlinked
 * while open (fstat then has no path to go by).
 */
void fnode_set_fh(struct fnodes *t, uint64_t nodeid, uint64_t fh, bool open)
{
	uint32_t s = slot_of(t, nodeid);

	if (!s)
		return;
	if (open) {
		t->v[s].fh = fh;
		t->v[s].has_fh = true;
	} else if (t->v[s].has_fh && t->v[s].fh == fh) {
		t->v[s].has_fh = false;
	}
}

/**
 * fnode_detached_fh() - a handle to use for a node whose name is gone
 * @t:		table
 * @nodeid:	node
 * @fh:		set to the handle
 *
 * Return: true when @nodeid is detached and has an open handle.
 */
bool fnode_detached_fh(const struct fnodes *t, uint64_t nodeid, uint64_t *fh)
{
	uint32_t s = slot_of(t, nodeid);

	if (!s || s == FUSE_ROOT_SLOT || t->v[s].hashed || !t->v[s].has_fh)
		return false;
	*fh = t->v[s].fh;
	return true;
}

/**
 * fnode_path() - the guest path of @nodeid, plus "/@name" if given
 * @t:		table
 * @nodeid:	node
 * @name:	extra component or NULL
 * @nlen:	its length
 * @out:	buffer
 * @cap:	its size (at least FS_PATH_MAX + 1)
 *
 * Built right to left into the end of @out, then moved to the front.
 *
 * Return: the path's length (NUL-terminated in @out), -ESTALE for an
 * unknown node, -ENAMETOOLONG beyond FS_PATH_MAX.
 */
int fnode_path(const struct fnodes *t, uint64_t nodeid, const char *name,
	       size_t nlen, char *out, size_t cap)
{
	uint32_t s = slot_of(t, nodeid);
	const char *part = name;
	size_t pos, depth = 0, len;

	if (!s)
		return -ESTALE;
	if (cap > FS_PATH_MAX + 1)
		cap = FS_PATH_MAX + 1;
	pos = cap - 1;
	out[pos] = '\0';
	len = part ? nlen : 0;
	for (;;) {
		if (part) {
			if (len + 1 > pos)
				return -ENAMETOOLONG;
			pos -= len;
			memcpy(out + pos, part, len);
			out[--pos] = '/';
		}
		if (s == FUSE_ROOT_SLOT)
			break;
		if (!s || ++depth > FS_PATH_MAX / 2)
			return -ESTALE;
		part = t->v[s].name;
		len = strlen(part);
		s = slot_of(t, t->v[s].parent);
	}
	len = t->root_len == 1 ? 0 : t->root_len;	/* mount on "/" */
	if (pos == cap - 1 && len == 0) {
		out[--pos] = '/';
	} else {
		if (len > pos)
			return -ENAMETOOLONG;
		pos -= len;
		memcpy(out + pos, t->root, len);
	}
	len = cap - 1 - pos;
	memmove(out, out + pos, len + 1);
	return (int)len;
}
