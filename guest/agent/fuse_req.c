/* SPDX-License-Identifier: MIT */
/* fuse_req.c - kernel requests from /dev/fuse, as FS requests to the host */

/*
 * Each request is checked against what the kernel said it sent (lengths,
 * NUL-terminated single-component names), its nodeids turned into guest
 * paths, and either answered here (INIT, FLUSH, OPENDIR, ...) or encoded
 * as one FS request whose slot keeps what the reply will need.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "agent.h"
#include "fuse.h"
#include "fuse_abi.h"
#include "proto/cbor.h"
#include "proto/fs.h"

#define FUSE_BG_MAX	48		/* kernel's background requests */
#define FUSE_WANT	(FUSE_ASYNC_READ | FUSE_ATOMIC_O_TRUNC | FUSE_BIG_WRITES | \
			 FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO | \
			 FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES)

/**
 * struct kreq - one decoded kernel request
 * @c:		client
 * @m:		its mount
 * @mi:		mount index
 * @h:		header
 * @body:	bytes after the header
 * @len:	their count
 */
struct kreq {
	struct fsc *c;
	struct fmount *m;
	unsigned int mi;
	const struct fuse_in_header *h;
	const uint8_t *body;
	size_t len;
};

/**
 * kname() - the NUL-terminated name at @off in the body
 * @k:		request
 * @off:	offset in the body
 * @len:	set to the name's length
 *
 * Return: the name, or NULL when absent, empty, too long or not a
 * single component.
 */
static const char *kname(const struct kreq *k, size_t off, size_t *len)
{
	const char *s = (const char *)k->body + off;
	const char *nul;

	if (off >= k->len)
		return NULL;
	nul = memchr(s, 0, k->len - off);
	if (!nul)
		return NULL;
	*len = (size_t)(nul - s);
	if (*len == 0 || *len > FS_NAME_MAX || memchr(s, '/', *len) ||
	    (s[0] == '.' && (*len == 1 || (*len == 2 && s[1] == '.'))))
		return NULL;
	return s;
}

/**
 * keep_name() - record @name as the request's new name
 * @r:		slot
 * @name:	component (<= FS_NAME_MAX)
 * @len:	its length
 */
static void keep_name(struct freq *r, const char *name, size_t len)
{
	memcpy(r->name, name, len);
	r->name[len] = '\0';
	r->nlen = (uint16_t)len;
}

/**
 * path_req() - start a request about the request's node (plus "/@name"):
 * a slot, then the map with "path"; @name is kept for the reply
 * @k:		request
 * @op:		FS request type
 * @w:		writer, initialised here
 * @pairs:	key/value pairs the map will have, "path" included
 * @name:	component or NULL
 * @nlen:	its length
 * @r:		set to the slot
 *
 * Return: 0 or a positive errno.
 */
static int path_req(struct kreq *k, uint8_t op, struct cbor_writer *w,
		    unsigned int pairs, const char *name, size_t nlen,
		    struct freq **r)
{
	int err;

	*r = freq_new(k->c, k->mi, k->h, op);
	enc_start(k->c, w, pairs);
	err = put_path(k->m, w, "path", k->h->nodeid, name, nlen, k->c->path);
	if (!err && name)
		keep_name(*r, name, nlen);
	return err;
}

/**
 * k_init() - negotiate the protocol; answered here
 * @k:		request
 */
static void k_init(struct kreq *k)
{
	const struct fuse_init_in *in = (const void *)k->body;
	struct fuse_init_out out = { 0 };
	long page = sysconf(_SC_PAGESIZE);
	size_t len = sizeof(out);

	if (k->len < offsetof(struct fuse_init_in, flags2)) {
		kreply(k->m, k->h->unique, EIO, NULL, 0);
		return;
	}
	out.major = FUSE_KERNEL_VERSION;
	out.minor = FUSE_KERNEL_MINOR_VERSION;
	if (in->major != FUSE_KERNEL_VERSION) {	/* the kernel retries with 7 */
		kreply(k->m, k->h->unique, in->major < 7 ? EPROTO : 0, &out, 8);
		return;
	}
	if (in->minor < 23)
		len = 24;		/* FUSE_COMPAT_22_INIT_OUT_SIZE */
	out.max_readahead = in->max_readahead < FS_IO_MAX ? in->max_readahead : FS_IO_MAX;
	out.flags = in->flags & FUSE_WANT;
	out.max_background = FUSE_BG_MAX;
	out.congestion_threshold = FUSE_BG_MAX * 3 / 4;
	out.max_write = FS_IO_MAX;
	out.time_gran = 1;
	out.max_pages = (uint16_t)(FS_IO_MAX / (page > 0 ? page : 4096));
	kreply(k->m, k->h->unique, 0, &out, len);
}

/**
 * k_forget() - FORGET and BATCH_FORGET; no reply
 * @k:		request
 */
static void k_forget(struct kreq *k)
{
	const struct fuse_batch_forget_in *b = (const void *)k->body;
	const struct fuse_forget_one *one;
	uint32_t i;

	if (k->h->opcode == FUSE_FORGET) {
		if (k->len >= sizeof(struct fuse_forget_in))
			fnode_forget(&k->m->nodes, k->h->nodeid,
				     ((const struct fuse_forget_in *)(const void *)k->body)->nlookup);
		return;
	}
	if (k->len < sizeof(*b))
		return;
	one = (const void *)(k->body + sizeof(*b));
	for (i = 0; i < b->count && sizeof(*b) + (i + 1) * sizeof(*one) <= k->len; i++)
		fnode_forget(&k->m->nodes, one[i].nodeid, one[i].nlookup);
}

/**
 * k_path_only() - requests whose map is just "path" (name optional)
 * @k:		request
 * @op:		FS type
 * @name:	component or NULL
 * @nlen:	its length
 *
 * Return: 0 or a positive errno.
 */
static int k_path_only(struct kreq *k, uint8_t op, const char *name, size_t nlen)
{
	struct cbor_writer w;
	struct freq *r;
	int err;

	err = path_req(k, op, &w, 1, name, nlen, &r);
	return err ? err : freq_send(k->c, r, &w, NULL, 0);
}

/**
 * k_named() - LOOKUP, UNLINK, RMDIR: a name in the body
 * @k:		request
 * @op:		FS type
 *
 * Return: 0 or a positive errno.
 */
static int k_named(struct kreq *k, uint8_t op)
{
	const char *name;
	size_t nlen;

	name = kname(k, 0, &nlen);
	if (!name)
		return k->len > FS_NAME_MAX ? ENAMETOOLONG : EINVAL;
	return k_path_only(k, op, name, nlen);
}

/**
 * k_getattr() - GETATTR, with the handle when the kernel gave one
 * @k:		request
 *
 * Return: 0 or a positive errno.
 */
static int k_getattr(struct kreq *k)
{
	const struct fuse_getattr_in *in = (const void *)k->body;
	bool fh = k->len >= sizeof(*in) && (in->getattr_flags & FUSE_GETATTR_FH);
	uint64_t h = fh ? in->fh : 0;
	struct cbor_writer w;
	struct freq *r;
	int err;

	if (!fh)	/* fstat of an unlinked file: its handle, not its path */
		fh = fnode_detached_fh(&k->m->nodes, k->h->nodeid, &h);
	err = path_req(k, FS_GETATTR, &w, fh ? 2 : 1, NULL, 0, &r);
	if (err)
		return err;
	if (fh) {
		cbor_put_cstr(&w, "fh");
		cbor_put_uint(&w, h);
	}
	return freq_send(k->c, r, &w, NULL, 0);
}

/**
 * put_time() - "@key": ns since the epoch, or "now"
 * @w:		writer
 * @key:	atime or mtime
 * @now:	the *_NOW bit was set
 * @sec:	seconds (signed in a u64)
 * @nsec:	nanoseconds
 */
static void put_time(struct cbor_writer *w, const char *key, bool now,
		     uint64_t sec, uint32_t nsec)
{
	int64_t s = (int64_t)sec;

	cbor_put_cstr(w, key);
	if (now) {
		cbor_put_cstr(w, "now");
		return;
	}
	if (s > INT64_MAX / 1000000000 - 1)
		s = INT64_MAX / 1000000000 - 1;
	if (s < INT64_MIN / 1000000000 + 1)
		s = INT64_MIN / 1000000000 + 1;
	cbor_put_int(w, s * 1000000000 + (nsec % 1000000000));
}

/**
 * k_setattr() - SETATTR: only the fields the kernel marked valid
 * @k:		request
 *
 * Return: 0 or a positive errno.
 */
static int k_setattr(struct kreq *k)
{
	const struct fuse_setattr_in *in = (const void *)k->body;
	struct freq *r;
	struct cbor_writer w;
	unsigned int pairs = 1;
	uint64_t fh = 0;
	uint32_t v;
	int err;

	if (k->len < sizeof(*in))
		return EINVAL;
	v = in->valid;
	if (!(v & FATTR_FH) && fnode_detached_fh(&k->m->nodes, k->h->nodeid, &fh))
		v |= FATTR_FH;
	pairs += !!(v & FATTR_FH) + !!(v & FATTR_MODE) + !!(v & FATTR_UID) +
		 !!(v & FATTR_GID) + !!(v & FATTR_SIZE) +
		 !!(v & (FATTR_ATIME | FATTR_ATIME_NOW)) +
		 !!(v & (FATTR_MTIME | FATTR_MTIME_NOW));
	err = path_req(k, FS_SETATTR, &w, pairs, NULL, 0, &r);
	if (err)
		return err;
	if (v & FATTR_FH)
		cbor_put_cstr(&w, "fh"), cbor_put_uint(&w, in->valid & FATTR_FH ? in->fh : fh);
	if (v & FATTR_MODE)
		cbor_put_cstr(&w, "mode"), cbor_put_uint(&w, in->mode & 07777);
	if (v & FATTR_UID)
		cbor_put_cstr(&w, "uid"), cbor_put_uint(&w, in->uid);
	if (v & FATTR_GID)
		cbor_put_cstr(&w, "gid"), cbor_put_uint(&w, in->gid);
	if (v & FATTR_SIZE)
		cbor_put_cstr(&w, "size"), cbor_put_uint(&w, in->size);
	if (v & (FATTR_ATIME | FATTR_ATIME_NOW))
		put_time(&w, "atime", v & FATTR_ATIME_NOW, in->atime, in->atimensec);
	if (v & (FATTR_MTIME | FATTR_MTIME_NOW))
		put_time(&w, "mtime", v & FATTR_MTIME_NOW, in->mtime, in->mtimensec);
	return freq_send(k->c, r, &w, NULL, 0);
}

/**
 * k_symlink() - SYMLINK: name, then the target
 * @k:		request
 *
 * Return: 0 or a positive errno.
 */
static int k_symlink(struct kreq *k)
{
	const char *name, *target, *nul;
	struct cbor_writer w;
	struct freq *r;
	size_t nlen, tlen;
	int err;

	name = kname(k, 0, &nlen);
	if (!name)
		return EINVAL;
	target = name + nlen + 1;
	nul = memchr(target, 0, k->len - nlen - 1);
	if (!nul)
		return EINVAL;
	tlen = (size_t)(nul - target);
	if (tlen == 0 || tlen > FS_PATH_MAX)
		return tlen ? ENAMETOOLONG : ENOENT;
	err = path_req(k, FS_SYMLINK, &w, 2, name, nlen, &r);
	if (err)
		return err;
	cbor_put_cstr(&w, "target");
	cbor_put_text(&w, target, tlen);
	return freq_send(k->c, r, &w, NULL, 0);
}

/**
 * k_mkdir() - MKDIR (the kernel already applied the umask)
 * @k:		request
 *
 * Return: 0 or a positive errno.
 */
static int k_mkdir(struct kreq *k)
{
	const struct fuse_mkdir_in *in = (const void *)k->body;
	struct cbor_writer w;
	const char *name;
	struct freq *r;
	size_t nlen;
	int err;

	name = kname(k, sizeof(*in), &nlen);
	if (k->len < sizeof(*in) || !name)
		return EINVAL;
	err = path_req(k, FS_MKDIR, &w, 2, name, nlen, &r);
	if (err)
		return err;
	cbor_put_cstr(&w, "mode");
	cbor_put_uint(&w, in->mode & 07777);
	return freq_send(k->c, r, &w, NULL, 0);
}

/**
 * access_mode() - open(2) flags as the protocol's access value
 * @flags:	open flags
 *
 * Return: 0 read, 1 write, 2 both.
 */
static unsigned int access_mode(uint32_t flags)
{
	switch (flags & O_ACCMODE) {
	case O_RDONLY:
		return 0;
	case O_WRONLY:
		return 1;
	default:
		return 2;
	}
}

/**
 * create_req() - FS_CREATE for CREATE and MKNOD
 * @k:		request
 * @name:	new name
 * @nlen:	its length
 * @mode:	file mode from the kernel
 * @flags:	open flags
 *
 * Return: 0 or a positive errno.
 */
static int create_req(struct kreq *k, const char *name, size_t nlen,
		      uint32_t mode, uint32_t flags)
{
	struct cbor_writer w;
	struct freq *r;
	int err;

	err = path_req(k, FS_CREATE, &w, 6, name, nlen, &r);
	if (err)
		return err;
	cbor_put_cstr(&w, "mode");
	cbor_put_uint(&w, mode & 07777);
	cbor_put_cstr(&w, "access");
	cbor_put_uint(&w, access_mode(flags));
	cbor_put_cstr(&w, "append");
	cbor_put_bool(&w, flags & O_APPEND);
	cbor_put_cstr(&w, "excl");
	cbor_put_bool(&w, flags & O_EXCL);
	cbor_put_cstr(&w, "trunc");	/* the name may exist on the host by now */
	cbor_put_bool(&w, flags & O_TRUNC);
	return freq_send(k->c, r, &w, NULL, 0);
}

/**
 * k_create() - CREATE
 * @k:		request
 *
 * Return: 0 or a positive errno.
 */
static int k_create(struct kreq *k)
{
	const struct fuse_create_in *in = (const void *)k->body;
	const char *name;
	size_t nlen;

	name = kname(k, sizeof(*in), &nlen);
	if (k->len < sizeof(*in) || !name)
		return EINVAL;
	return create_req(k, name, nlen, in->mode, in->flags);
}

/**
 * k_mknod() - MKNOD: regular files only (create, then release)
 * @k:		request
 *
 * Return: 0 or a positive errno.
 */
static int k_mknod(struct kreq *k)
{
	const struct fuse_mknod_in *in = (const void *)k->body;
	const char *name;
	size_t nlen;

	name = kname(k, sizeof(*in), &nlen);
	if (k->len < sizeof(*in) || !name)
		return EINVAL;
	if (!S_ISREG(in->mode))
		return EPERM;
	return create_req(k, name, nlen, in->mode, O_WRONLY | O_EXCL);
}

/**
 * k_rename() - RENAME and RENAME2
 * @k:		request
 *
 * Return: 0 or a positive errno.
 */
static int k_rename(struct kreq *k)
{
	size_t hdr = k->h->opcode == FUSE_RENAME2 ? sizeof(struct fuse_rename2_in)
						  : sizeof(struct fuse_rename_in);
	const struct fuse_rename2_in *in = (const void *)k->body;
	uint32_t flags = k->h->opcode == FUSE_RENAME2 ? in->flags : 0;
	const char *on, *nn;
	struct cbor_writer w;
	size_t olen, nlen;
	struct freq *r;
	int err;

	if (k->len < hdr)
		return EINVAL;
	if (flags & ~(uint32_t)(FS_RENAME_NOREPLACE | FS_RENAME_EXCHANGE) ||
	    flags == (FS_RENAME_NOREPLACE | FS_RENAME_EXCHANGE))
		return EINVAL;
	on = kname(k, hdr, &olen);
	nn = on ? kname(k, hdr + olen + 1, &nlen) : NULL;
	if (!nn)
		return EINVAL;
	r = freq_new(k->c, k->mi, k->h, FS_RENAME);
	enc_start(k->c, &w, 3);
	err = put_path(k->m, &w, "from", k->h->nodeid, on, olen, k->c->path);
	if (!err)
		err = put_path(k->m, &w, "to", in->newdir, nn, nlen, k->c->path2);
	if (err)
		return err;
	cbor_put_cstr(&w, "flags");
	cbor_put_uint(&w, flags);
	keep_name(r, on, olen);
	memcpy(r->name2, nn, nlen);
	r->name2[nlen] = '\0';
	r->nlen2 = (uint16_t)nlen;
	r->node2 = in->newdir;
	r->flags = flags;
	return freq_send(k->c, r, &w, NULL, 0);
}

/**
 * k_link() - LINK: the existing node, the new name under this directory
 * @k:		request
 *
 * Return: 0 or a positive errno.
 */
static int k_link(struct kreq *k)
{
	const struct fuse_link_in *in = (const void *)k->body;
	struct cbor_writer w;
	const char *name;
	struct freq *r;
	size_t nlen;
	int err;

	name = kname(k, sizeof(*in), &nlen);
	if (k->len < sizeof(*in) || !name)
		return EINVAL;
	r = freq_new(k->c, k->mi, k->h, FS_LINK);
	enc_start(k->c, &w, 2);
	err = put_path(k->m, &w, "from", in->oldnodeid, NULL, 0, k->c->path);
	if (!err)
		err = put_path(k->m, &w, "to", k->h->nodeid, name, nlen, k->c->path2);
	if (err)
		return err;
	keep_name(r, name, nlen);
	return freq_send(k->c, r, &w, NULL, 0);
}

/**
 * k_open() - OPEN
 * @k:		request
 *
 * Return: 0 or a positive errno.
 */
static int k_open(struct kreq *k)
{
	const struct fuse_open_in *in = (const void *)k->body;
	struct cbor_writer w;
	struct freq *r;
	int err;

	if (k->len < sizeof(*in))
		return EINVAL;
	err = path_req(k, FS_OPEN, &w, 4, NULL, 0, &r);
	if (err)
		return err;
	cbor_put_cstr(&w, "access");
	cbor_put_uint(&w, access_mode(in->flags));
	cbor_put_cstr(&w, "append");
	cbor_put_bool(&w, in->flags & O_APPEND);
	cbor_put_cstr(&w, "trunc");
	cbor_put_bool(&w, in->flags & O_TRUNC);
	return freq_send(k->c, r, &w, NULL, 0);
}

/**
 * fh_req() - start a request about an open handle: the map, then "fh"
 * @k:		request
 * @op:		FS type
 * @w:		writer, initialised here over c->enc
 * @fh:		host handle
 * @pairs:	pairs the map will have, "fh" included
 *
 * Return: the slot.
 */
static struct freq *fh_req(struct kreq *k, uint8_t op, struct cbor_writer *w,
			   uint64_t fh, unsigned int pairs)
{
	struct freq *r = freq_new(k->c, k->mi, k->h, op);

	enc_start(k->c, w, pairs);
	cbor_put_cstr(w, "fh");
	cbor_put_uint(w, fh);
	return r;
}

/**
 * k_read() - READ
 * @k:		request
 *
 * Return: 0 or a positive errno.
 */
static int k_read(struct kreq *k)
{
	const struct fuse_read_in *in = (const void *)k->body;
	struct cbor_writer w;
	struct freq *r;

	if (k->len < sizeof(*in))
		return EINVAL;
	r = fh_req(k, FS_READ, &w, in->fh, 3);
	r->size = in->size < FS_IO_MAX ? in->size : FS_IO_MAX;
	cbor_put_cstr(&w, "offset");
	cbor_put_uint(&w, in->offset);
	cbor_put_cstr(&w, "size");
	cbor_put_uint(&w, r->size);
	return freq_send(k->c, r, &w, NULL, 0);
}

/**
 * k_write() - WRITE: the map, then the data
 * @k:		request
 *
 * Return: 0 or a positive errno.
 */
static int k_write(struct kreq *k)
{
	const struct fuse_write_in *in = (const void *)k->body;
	struct cbor_writer w;
	struct freq *r;

	if (k->len < sizeof(*in) || k->len - sizeof(*in) != in->size)
		return EINVAL;
	if (in->size > FS_IO_MAX)
		return EFBIG;
	r = fh_req(k, FS_WRITE, &w, in->fh, 2);
	r->size = in->size;
	cbor_put_cstr(&w, "offset");
	cbor_put_uint(&w, in->offset);
	return freq_send(k->c, r, &w, k->body + sizeof(*in), in->size);
}

/**
 * k_fsync() - FSYNC
 * @k:		request
 *
 * Return: 0 or a positive errno.
 */
static int k_fsync(struct kreq *k)
{
	const struct fuse_fsync_in *in = (const void *)k->body;
	struct cbor_writer w;
	struct freq *r;

	if (k->len < sizeof(*in))
		return EINVAL;
	r = fh_req(k, FS_FSYNC, &w, in->fh, 2);
	cbor_put_cstr(&w, "datasync");
	cbor_put_bool(&w, in->fsync_flags & FUSE_FSYNC_FDATASYNC);
	return freq_send(k->c, r, &w, NULL, 0);
}

/**
 * k_release() - RELEASE
 * @k:		request
 *
 * Return: 0 or a positive errno.
 */
static int k_release(struct kreq *k)
{
	const struct fuse_release_in *in = (const void *)k->body;
	struct cbor_writer w;
	struct freq *r;

	if (k->len < sizeof(*in))
		return EINVAL;
	fnode_set_fh(&k->m->nodes, k->h->nodeid, in->fh, false);
	r = fh_req(k, FS_RELEASE, &w, in->fh, 1);
	return freq_send(k->c, r, &w, NULL, 0);
}

/**
 * k_readdir() - READDIR / READDIRPLUS from the kernel's offset
 * @k:		request
 *
 * Return: 0 or a positive errno.
 */
static int k_readdir(struct kreq *k)
{
	const struct fuse_read_in *in = (const void *)k->body;
	bool plus = k->h->opcode == FUSE_READDIRPLUS;
	struct cbor_writer w;
	struct freq *r;
	int err;

	if (k->len < sizeof(*in))
		return EINVAL;
	err = path_req(k, FS_READDIR, &w, 3, NULL, 0, &r);
	if (err)
		return err;
	r->off = in->offset;
	r->size = in->size < FS_IO_MAX ? in->size : FS_IO_MAX;
	r->flags = plus;
	cbor_put_cstr(&w, "offset");
	cbor_put_uint(&w, in->offset > 2 ? in->offset - 2 : 0);
	cbor_put_cstr(&w, "plus");
	cbor_put_bool(&w, plus);
	return freq_send(k->c, r, &w, NULL, 0);
}

/**
 * k_access() - ACCESS
 * @k:		request
 *
 * Return: 0 or a positive errno.
 */
static int k_access(struct kreq *k)
{
	const struct fuse_access_in *in = (const void *)k->body;
	struct cbor_writer w;
	struct freq *r;
	int err;

	if (k->len < sizeof(*in))
		return EINVAL;
	err = path_req(k, FS_ACCESS, &w, 2, NULL, 0, &r);
	if (err)
		return err;
	cbor_put_cstr(&w, "mask");
	cbor_put_uint(&w, in->mask & 7);
	return freq_send(k->c, r, &w, NULL, 0);
}

/**
 * k_local() - requests answered without the host
 * @k:		request
 *
 * Return: true when @k was one of them (and is answered).
 */
static bool k_local(struct kreq *k)
{
	struct fuse_open_out oo = { 0 };

	switch (k->h->opcode) {
	case FUSE_INIT:
		k_init(k);
		return true;
	case FUSE_FORGET:
	case FUSE_BATCH_FORGET:
		k_forget(k);
		return true;
	case FUSE_INTERRUPT:		/* the host has no cancel; let it finish */
		return true;
	case FUSE_OPENDIR:		/* stateless: see Theory of Operation */
		kreply(k->m, k->h->unique, 0, &oo, sizeof(oo));
		return true;
	case FUSE_FLUSH:		/* writes are not buffered here */
	case FUSE_RELEASEDIR:
	case FUSE_FSYNCDIR:
	case FUSE_DESTROY:
		kreply(k->m, k->h->unique, 0, NULL, 0);
		return true;
	default:
		return false;
	}
}

/**
 * k_forward() - requests that go to the host
 * @k:		request
 *
 * Return: 0 when sent, or a positive errno to answer with.
 */
static int k_forward(struct kreq *k)
{
	switch (k->h->opcode) {
	case FUSE_LOOKUP:	return k_named(k, FS_LOOKUP);
	case FUSE_UNLINK:	return k_named(k, FS_UNLINK);
	case FUSE_RMDIR:	return k_named(k, FS_RMDIR);
	case FUSE_GETATTR:	return k_getattr(k);
	case FUSE_SETATTR:	return k_setattr(k);
	case FUSE_READLINK:	return k_path_only(k, FS_READLINK, NULL, 0);
	case FUSE_STATFS:	return k_path_only(k, FS_STATFS, NULL, 0);
	case FUSE_SYMLINK:	return k_symlink(k);
	case FUSE_MKNOD:	return k_mknod(k);
	case FUSE_MKDIR:	return k_mkdir(k);
	case FUSE_RENAME:
	case FUSE_RENAME2:	return k_rename(k);
	case FUSE_LINK:		return k_link(k);
	case FUSE_OPEN:		return k_open(k);
	case FUSE_CREATE:	return k_create(k);
	case FUSE_READ:		return k_read(k);
	case FUSE_WRITE:	return k_write(k);
	case FUSE_FSYNC:	return k_fsync(k);
	case FUSE_RELEASE:	return k_release(k);
	case FUSE_READDIR:
	case FUSE_READDIRPLUS:	return k_readdir(k);
	case FUSE_ACCESS:	return k_access(k);
	default:		return ENOSYS;	/* xattrs, locks, ioctl, ... */
	}
}

/**
 * fuse_kernel_request() - one request read from mount @mi's /dev/fuse
 * @c:		client
 * @mi:		mount index
 * @n:		bytes read into c->in
 */
void fuse_kernel_request(struct fsc *c, unsigned int mi, size_t n)
{
	const struct fuse_in_header *h = (const void *)c->in;
	struct kreq k = { c, &c->m[mi], mi, h, c->in + sizeof(*h), 0 };
	int err;

	if (n < sizeof(*h) || h->len != n) {
		agent_log("fuse %s: short request (%zu bytes)", k.m->path, n);
		return;
	}
	k.len = n - sizeof(*h);
	if (k_local(&k))
		return;
	if (h->opcode != FUSE_STATFS && !fnode_valid(&k.m->nodes, h->nodeid))
		err = ESTALE;
	else
		err = k_forward(&k);
	if (err)
		kreply(k.m, h->unique, err, NULL, 0);
}
