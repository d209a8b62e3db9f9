/* SPDX-License-Identifier: MIT */
/* fuse_reply.c - the host's FS replies, checked, as kernel replies */

/*
 * A reply is matched to its slot by id, then checked before anything is
 * believed: one CBOR map with the keys and types its request expects, no
 * more data than asked for. Anything wrong fails that one request with
 * EIO; nothing the host sends ends a mount.
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

#define FUSE_TTL_MAX_MS	((uint64_t)1 << 32)

/**
 * ttl_split() - a ttl in ms as seconds and nanoseconds
 * @ms:		ttl
 * @sec:	seconds
 * @nsec:	nanoseconds
 */
static void ttl_split(uint64_t ms, uint64_t *sec, uint32_t *nsec)
{
	*sec = ms / 1000;
	*nsec = (uint32_t)(ms % 1000) * 1000000u;
}

/* ---- decoding the host's replies ------------------------------------- */

/**
 * map_end() - length of the CBOR map at the start of @p
 * @p:		payload
 * @len:	its size
 *
 * Return: bytes of the map (it is well formed throughout), or 0 when the
 * payload does not start with one.
 */
static size_t map_end(const uint8_t *p, size_t len)
{
	struct cbor_reader r;
	struct cbor_item it;

	cbor_reader_init(&r, p, len);
	if (cbor_read(&r, &it) < 0 || it.type != CBOR_MAP)
		return 0;
	cbor_reader_init(&r, p, len);
	if (cbor_skip(&r) < 0)
		return 0;
	return (size_t)(r.p - p);
}

/**
 * map_sub() - the map value of @key inside the map @p
 * @p:		valid map
 * @len:	its size
 * @key:	key
 * @sub:	set to the value's start
 * @slen:	set to its size
 *
 * Return: 1 found, 0 absent, -1 not a map.
 */
static int map_sub(const uint8_t *p, size_t len, const char *key,
		   const uint8_t **sub, size_t *slen)
{
	struct cbor_reader v, w;
	struct cbor_item it;
	int rc;

	rc = cbor_map_find(p, len, key, &v);
	if (rc <= 0)
		return rc;
	w = v;
	if (cbor_read(&w, &it) < 0 || it.type != CBOR_MAP)
		return -1;
	w = v;
	if (cbor_skip(&w) < 0)
		return -1;
	*sub = v.p;
	*slen = (size_t)(w.p - v.p);
	return 1;
}

/**
 * map_int() - a signed integer value (ns times)
 * @p:		map
 * @len:	its size
 * @key:	key
 * @out:	value, untouched when absent
 *
 * Return: 1, 0 absent, -1 wrong type or out of range.
 */
static int map_int(const uint8_t *p, size_t len, const char *key, int64_t *out)
{
	struct cbor_reader v;
	struct cbor_item it;
	int rc;

	rc = cbor_map_find(p, len, key, &v);
	if (rc <= 0)
		return rc;
	if (cbor_read(&v, &it) < 0 || it.u > (uint64_t)INT64_MAX)
		return -1;
	if (it.type == CBOR_UINT)
		*out = (int64_t)it.u;
	else if (it.type == CBOR_NINT)
		*out = -1 - (int64_t)it.u;
	else
		return -1;
	return 1;
}

/**
 * map_u32() - an unsigned value that must fit 32 bits
 * @p:		map
 * @len:	its size
 * @key:	key
 * @out:	value, untouched when absent
 *
 * Return: 1, 0 absent, -1 wrong type or too large.
 */
static int map_u32(const uint8_t *p, size_t len, const char *key, uint32_t *out)
{
	uint64_t v;
	int rc = cbor_map_uint(p, len, key, &v);

	if (rc == 1) {
		if (v > UINT32_MAX)
			return -1;
		*out = (uint32_t)v;
	}
	return rc;
}

/**
 * ns_split() - ns since the epoch as seconds and nanoseconds (floor)
 * @ns:		time
 * @sec:	seconds (two's complement in the kernel's u64)
 * @nsec:	nanoseconds, 0..999999999
 */
static void ns_split(int64_t ns, uint64_t *sec, uint32_t *nsec)
{
	int64_t s = ns / 1000000000, r = ns % 1000000000;

	if (r < 0) {
		r += 1000000000;
		s--;
	}
	*sec = (uint64_t)s;
	*nsec = (uint32_t)r;
}

/**
 * attr_times() - atime, mtime, ctime of an attr map
 * @p:		attr map
 * @len:	its size
 * @a:		filled in
 *
 * Return: 0 or -1 (wrong type).
 */
static int attr_times(const uint8_t *p, size_t len, struct fuse_attr *a)
{
	int64_t at = 0, mt = 0, ct = 0;

	if (map_int(p, len, "atime", &at) < 0 || map_int(p, len, "mtime", &mt) < 0 ||
	    map_int(p, len, "ctime", &ct) < 0)
		return -1;
	ns_split(at, &a->atime, &a->atimensec);
	ns_split(mt, &a->mtime, &a->mtimensec);
	ns_split(ct, &a->ctime, &a->ctimensec);
	return 0;
}

/**
 * attr_decode() - an attr map into a fuse_attr
 * @p:		attr map
 * @len:	its size
 * @a:		filled in
 * @ttl_ms:	the map's ttl_ms, FS_TTL_MS when absent
 *
 * mode is required (it must name a file type); the other keys default
 * to 0 (nlink to 1, ino to none: the caller fills in the nodeid).
 *
 * Return: 0 or -1 when malformed.
 */
static int attr_decode(const uint8_t *p, size_t len, struct fuse_attr *a,
		       uint64_t *ttl_ms)
{
	memset(a, 0, sizeof(*a));
	a->nlink = 1;
	*ttl_ms = FS_TTL_MS;
	if (map_u32(p, len, "mode", &a->mode) != 1 || !(a->mode & S_IFMT) ||
	    (a->mode & ~(uint32_t)(S_IFMT | 07777)))
		return -1;
	if (cbor_map_uint(p, len, "size", &a->size) < 0 ||
	    cbor_map_uint(p, len, "blocks", &a->blocks) < 0 ||
	    cbor_map_uint(p, len, "ino", &a->ino) < 0 ||
	    map_u32(p, len, "nlink", &a->nlink) < 0 ||
	    map_u32(p, len, "uid", &a->uid) < 0 ||
	    map_u32(p, len, "gid", &a->gid) < 0 ||
	    cbor_map_uint(p, len, "ttl_ms", ttl_ms) < 0 ||
	    attr_times(p, len, a) < 0)
		return -1;
	if (*ttl_ms > FUSE_TTL_MAX_MS)
		*ttl_ms = FUSE_TTL_MAX_MS;
	return 0;
}

/**
 * reply_attr() - the reply's "attr"
 * @p:		reply map
 * @len:	its size
 * @a:		filled in
 * @ttl_ms:	its ttl
 *
 * Return: 0 or -EIO (absent or malformed).
 */
static int reply_attr(const uint8_t *p, size_t len, struct fuse_attr *a,
		      uint64_t *ttl_ms)
{
	const uint8_t *sub;
	size_t slen;

	if (map_sub(p, len, "attr", &sub, &slen) != 1 ||
	    attr_decode(sub, slen, a, ttl_ms) < 0)
		return -EIO;
	return 0;
}

/* ---- host replies ---------------------------------------------------- */

/**
 * struct hreply - one reply frame being decoded
 * @c:		client
 * @r:		its request
 * @m:		the request's mount
 * @map:	the reply map
 * @mlen:	its size
 * @data:	bytes after the map (FS_READ only)
 * @dlen:	their count
 */
struct hreply {
	struct fsc *c;
	struct freq *r;
	struct fmount *m;
	const uint8_t *map;
	size_t mlen;
	const uint8_t *data;
	size_t dlen;
};

/**
 * entry_out() - a new name's entry: take a lookup on its node
 * @x:		reply
 * @e:		filled in
 *
 * Return: 0, -EIO (bad attr), -ENFILE (node table full), -ENOMEM.
 */
static int entry_out(struct hreply *x, struct fuse_entry_out *e)
{
	uint64_t ttl;
	int rc;

	memset(e, 0, sizeof(*e));
	rc = reply_attr(x->map, x->mlen, &e->attr, &ttl);
	if (rc < 0)
		return rc;
	rc = fnode_ref(&x->m->nodes, x->r->node, x->r->name, x->r->nlen, &e->nodeid);
	if (rc < 0)
		return rc;
	if (!e->attr.ino)
		e->attr.ino = e->nodeid;
	ttl_split(ttl, &e->entry_valid, &e->entry_valid_nsec);
	ttl_split(ttl, &e->attr_valid, &e->attr_valid_nsec);
	return 0;
}

/**
 * r_entry() - LOOKUP, MKDIR, SYMLINK, LINK replies
 * @x:		reply
 *
 * Return: 0 or -errno.
 */
static int r_entry(struct hreply *x)
{
	struct fuse_entry_out e;
	int rc = entry_out(x, &e);

	if (rc == 0)
		kreply(x->m, x->r->unique, 0, &e, sizeof(e));
	return rc;
}

/**
 * r_attr() - GETATTR, SETATTR replies
 * @x:		reply
 *
 * Return: 0 or -errno.
 */
static int r_attr(struct hreply *x)
{
	struct fuse_attr_out o = { 0 };
	uint64_t ttl;
	int rc;

	rc = reply_attr(x->map, x->mlen, &o.attr, &ttl);
	if (rc < 0)
		return rc;
	if (!o.attr.ino)
		o.attr.ino = x->r->node;
	ttl_split(ttl, &o.attr_valid, &o.attr_valid_nsec);
	kreply(x->m, x->r->unique, 0, &o, sizeof(o));
	return 0;
}

/**
 * r_readlink() - READLINK reply: at most FS_PATH_MAX bytes, no NUL
 * @x:		reply
 *
 * Return: 0 or -EIO.
 */
static int r_readlink(struct hreply *x)
{
	const uint8_t *t;
	size_t n;

	if (cbor_map_text(x->map, x->mlen, "target", &t, &n) != 1 || n == 0 ||
	    n > FS_PATH_MAX || memchr(t, 0, n))
		return -EIO;
	kreply(x->m, x->r->unique, 0, t, n);
	return 0;
}

/**
 * release_fh() - reuse the slot to release a handle the kernel won't get
 * @x:		reply whose request is done with the kernel
 * @fh:		host handle
 */
static void release_fh(struct hreply *x, uint64_t fh)
{
	struct fsc *c = x->c;
	struct freq *r = x->r;
	struct cbor_writer w;

	freq_done(c, r);
	r->unique = FUSE_REPLY_ONLY;
	r->op = FS_RELEASE;
	r->opcode = FUSE_RELEASE;
	enc_start(c, &w, 1);
	cbor_put_cstr(&w, "fh");
	cbor_put_uint(&w, fh);
	if (freq_send(c, r, &w, NULL, 0))
		agent_log("fuse %s: handle %llu not released", x->m->path,
			  (unsigned long long)fh);
}

/**
 * r_create() - CREATE and MKNOD replies: fh and attr
 * @x:		reply
 *
 * A handle the kernel will never release (MKNOD, or a node that could not
 * be recorded) is released here, so the host does not leak it.
 *
 * Return: 0, 1 (the slot was reused for the release), or -errno.
 */
static int r_create(struct hreply *x)
{
	struct {
		struct fuse_entry_out e;
		struct fuse_open_out o;
	} out;
	uint64_t fh;
	int rc;

	if (cbor_map_uint(x->map, x->mlen, "fh", &fh) != 1)
		return -EIO;
	memset(&out, 0, sizeof(out));
	rc = entry_out(x, &out.e);
	if (rc < 0) {
		kreply(x->m, x->r->unique, -rc, NULL, 0);
		release_fh(x, fh);
		return 1;
	}
	out.o.fh = fh;
	if (x->r->opcode == FUSE_CREATE) {
		fnode_set_fh(&x->m->nodes, out.e.nodeid, fh, true);
		kreply(x->m, x->r->unique, 0, &out, sizeof(out));
		return 0;
	}
	kreply(x->m, x->r->unique, 0, &out.e, sizeof(out.e));
	release_fh(x, fh);
	return 1;
}

/**
 * r_open() - OPEN reply
 * @x:		reply
 *
 * Return: 0 or -EIO.
 */
static int r_open(struct hreply *x)
{
	struct fuse_open_out o = { 0 };

	if (cbor_map_uint(x->map, x->mlen, "fh", &o.fh) != 1)
		return -EIO;
	fnode_set_fh(&x->m->nodes, x->r->node, o.fh, true);
	kreply(x->m, x->r->unique, 0, &o, sizeof(o));
	return 0;
}

/**
 * r_read() - READ reply: the data after the map, never more than asked
 * @x:		reply
 *
 * Return: 0 or -EIO.
 */
static int r_read(struct hreply *x)
{
	if (x->dlen > x->r->size)
		return -EIO;
	kreply(x->m, x->r->unique, 0, x->data, x->dlen);
	return 0;
}

/**
 * r_write() - WRITE reply: bytes written, at most those sent
 * @x:		reply
 *
 * Return: 0 or -EIO.
 */
static int r_write(struct hreply *x)
{
	struct fuse_write_out o = { 0 };
	uint64_t n;

	if (cbor_map_uint(x->map, x->mlen, "size", &n) != 1 || n > x->r->size)
		return -EIO;
	o.size = (uint32_t)n;
	kreply(x->m, x->r->unique, 0, &o, sizeof(o));
	return 0;
}

/**
 * r_statfs() - STATFS reply: every key required
 * @x:		reply
 *
 * Return: 0 or -EIO.
 */
static int r_statfs(struct hreply *x)
{
	struct fuse_statfs_out o = { 0 };
	struct fuse_kstatfs *s = &o.st;

	if (map_u32(x->map, x->mlen, "bsize", &s->bsize) != 1 ||
	    cbor_map_uint(x->map, x->mlen, "blocks", &s->blocks) != 1 ||
	    cbor_map_uint(x->map, x->mlen, "bfree", &s->bfree) != 1 ||
	    cbor_map_uint(x->map, x->mlen, "bavail", &s->bavail) != 1 ||
	    cbor_map_uint(x->map, x->mlen, "files", &s->files) != 1 ||
	    cbor_map_uint(x->map, x->mlen, "ffree", &s->ffree) != 1 ||
	    map_u32(x->map, x->mlen, "namelen", &s->namelen) != 1)
		return -EIO;
	s->frsize = s->bsize;
	kreply(x->m, x->r->unique, 0, &o, sizeof(o));
	return 0;
}

/**
 * r_done() - replies without keys: UNLINK, RMDIR, RENAME and the rest
 * @x:		reply
 *
 * Return: 0.
 */
static int r_done(struct hreply *x)
{
	struct freq *r = x->r;

	if (r->op == FS_UNLINK || r->op == FS_RMDIR)
		fnode_detach(&x->m->nodes, r->node, r->name, r->nlen);
	else if (r->op == FS_RENAME)
		fnode_rename(&x->m->nodes, r->node, r->name, r->nlen, r->node2,
			     r->name2, r->nlen2, r->flags & FS_RENAME_EXCHANGE);
	kreply(x->m, r->unique, 0, NULL, 0);
	return 0;
}

/**
 * dirent_name() - check one READDIR entry [name, attr]
 * @rd:		cursor at the entry
 * @name:	set to the name
 * @nlen:	its length
 * @attr:	set to the attr map
 * @alen:	its size
 *
 * Return: 0 or -1 when malformed.
 */
static int dirent_get(struct cbor_reader *rd, const uint8_t **name, size_t *nlen,
		      const uint8_t **attr, size_t *alen)
{
	struct cbor_reader at;
	struct cbor_item it;

	if (cbor_read(rd, &it) < 0 || it.type != CBOR_ARRAY || it.u != 2)
		return -1;
	if (cbor_read(rd, &it) < 0 || it.type != CBOR_TEXT || it.len == 0 ||
	    it.len > FS_NAME_MAX || memchr(it.str, '/', it.len) ||
	    memchr(it.str, 0, it.len) ||
	    (it.str[0] == '.' && (it.len == 1 || (it.len == 2 && it.str[1] == '.'))))
		return -1;
	*name = it.str;
	*nlen = it.len;
	at = *rd;
	if (cbor_read(&at, &it) < 0 || it.type != CBOR_MAP)
		return -1;
	at = *rd;
	if (cbor_skip(&at) < 0)
		return -1;
	*attr = rd->p;
	*alen = (size_t)(at.p - rd->p);
	rd->p = at.p;
	return 0;
}

/**
 * struct dirbuf - the kernel's READDIR buffer being filled
 * @buf:	c->out
 * @cap:	bytes the kernel asked for
 * @len:	bytes used
 * @off:	offset of the next record (entries returned so far)
 * @plus:	READDIRPLUS records
 */
struct dirbuf {
	uint8_t *buf;
	size_t cap, len;
	uint64_t off;
	bool plus;
};

/**
 * dir_add() - one record, if it fits
 * @d:		buffer
 * @name:	entry name
 * @nlen:	its length
 * @e:		entry for READDIRPLUS (nodeid 0: not cached), else only
 *		attr.ino and attr.mode are used
 *
 * Return: true when added.
 */
static bool dir_add(struct dirbuf *d, const void *name, size_t nlen,
		    const struct fuse_entry_out *e)
{
	size_t head = d->plus ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET;
	size_t rec = FUSE_REC_ALIGN(head + nlen);
	struct fuse_dirent *de;

	if (rec > d->cap - d->len)
		return false;
	memset(d->buf + d->len, 0, rec);
	if (d->plus)
		memcpy(d->buf + d->len, e, sizeof(*e));
	de = (void *)(d->buf + d->len + head - FUSE_NAME_OFFSET);
	de->ino = e->attr.ino ? e->attr.ino : 1;	/* 0 would be skipped */
	de->off = ++d->off;
	de->namelen = (uint32_t)nlen;
	de->type = (e->attr.mode & S_IFMT) >> 12;
	memcpy(de->name, name, nlen);
	d->len += rec;
	return true;
}

/**
 * dir_entry() - one host entry into the buffer
 * @x:		reply
 * @d:		buffer
 * @name:	name
 * @nlen:	its length
 * @attr:	attr map
 * @alen:	its size
 *
 * Return: 1 added, 0 full, -1 malformed attr.
 */
static int dir_entry(struct hreply *x, struct dirbuf *d, const uint8_t *name,
		     size_t nlen, const uint8_t *attr, size_t alen)
{
	size_t head = d->plus ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET;
	struct fuse_entry_out e = { 0 };
	uint64_t ttl;

	if (attr_decode(attr, alen, &e.attr, &ttl) < 0)
		return -1;
	if (FUSE_REC_ALIGN(head + nlen) > d->cap - d->len)
		return 0;
	if (d->plus && fnode_ref(&x->m->nodes, x->r->node, (const char *)name,
				 nlen, &e.nodeid) == 0) {
		if (!e.attr.ino)
			e.attr.ino = e.nodeid;
		ttl_split(ttl, &e.entry_valid, &e.entry_valid_nsec);
		ttl_split(ttl, &e.attr_valid, &e.attr_valid_nsec);
	}
	dir_add(d, name, nlen, &e);	/* fits: checked above */
	return 1;
}

/**
 * dir_check() - validate every entry before any node is referenced
 * @p:		entries array
 * @end:	end of the map
 * @n:		number of entries
 *
 * Return: 0 or -1.
 */
static int dir_check(const uint8_t *p, const uint8_t *end, uint64_t n)
{
	struct cbor_reader rd = { p, end };
	const uint8_t *name, *attr;
	struct fuse_attr a;
	size_t nlen, alen;
	uint64_t ttl;

	for (; n > 0; n--)
		if (dirent_get(&rd, &name, &nlen, &attr, &alen) < 0 ||
		    attr_decode(attr, alen, &a, &ttl) < 0)
			return -1;
	return 0;
}

/**
 * r_readdir() - READDIR reply: "." and ".." first, then the host's entries
 * @x:		reply
 *
 * Return: 0 or -EIO.
 */
static int r_readdir(struct hreply *x)
{
	struct dirbuf d = { x->c->out, x->r->size, 0, x->r->off, x->r->flags };
	struct fuse_entry_out dot = { 0 };
	const uint8_t *name, *attr;
	struct cbor_reader rd;
	struct cbor_item it;
	size_t nlen, alen;
	bool eof = false;
	uint64_t n;

	if (cbor_map_find(x->map, x->mlen, "entries", &rd) != 1 ||
	    cbor_read(&rd, &it) < 0 || it.type != CBOR_ARRAY ||
	    cbor_map_bool(x->map, x->mlen, "eof", &eof) != 1 ||
	    dir_check(rd.p, x->map + x->mlen, it.u) < 0)
		return -EIO;
	dot.attr.mode = S_IFDIR;
	if (d.off == 0)
		dir_add(&d, ".", 1, &dot);
	if (d.off == 1)
		dir_add(&d, "..", 2, &dot);
	if (d.off < 2)		/* buffer too small for even those */
		return -EINVAL;
	for (n = it.u; n > 0; n--) {
		dirent_get(&rd, &name, &nlen, &attr, &alen);
		if (dir_entry(x, &d, name, nlen, attr, alen) <= 0)
			break;
	}
	kreply(x->m, x->r->unique, 0, d.buf, d.len);
	return 0;
}

/**
 * reply_dispatch() - turn a successful reply into the kernel's reply
 * @x:		reply
 *
 * Return: 0 done, 1 the slot was reused, -errno to fail the request.
 */
static int reply_dispatch(struct hreply *x)
{
	switch (x->r->op) {
	case FS_LOOKUP:
	case FS_MKDIR:
	case FS_SYMLINK:
	case FS_LINK:		return r_entry(x);
	case FS_GETATTR:
	case FS_SETATTR:	return r_attr(x);
	case FS_READLINK:	return r_readlink(x);
	case FS_CREATE:		return r_create(x);
	case FS_OPEN:		return r_open(x);
	case FS_READ:		return r_read(x);
	case FS_WRITE:		return r_write(x);
	case FS_STATFS:		return r_statfs(x);
	case FS_READDIR:	return r_readdir(x);
	default:		return r_done(x);
	}
}

/**
 * reply_decode() - check a reply frame's shape and answer the kernel
 * @c:		client
 * @r:		its request
 * @f:		the frame
 *
 * Return: 0, 1 when the slot was reused, or -errno for the kernel.
 */
static int reply_decode(struct fsc *c, struct freq *r, const struct frame *f)
{
	struct hreply x = { c, r, &c->m[r->mnt], f->payload, 0, NULL, 0 };
	const uint8_t *e;
	size_t elen;
	int rc;

	if (f->type != FS_REPLY)
		return -EIO;
	x.mlen = map_end(f->payload, f->len);
	if (!x.mlen || (r->op != FS_READ && x.mlen != f->len))
		return -EIO;
	x.data = f->payload + x.mlen;
	x.dlen = f->len - x.mlen;
	rc = cbor_map_text(x.map, x.mlen, "err", &e, &elen);
	if (rc < 0)
		return -EIO;
	if (rc == 1)
		return -fs_errno_value((const char *)e, elen);
	return reply_dispatch(&x);
}

/**
 * fuse_host_frame() - one frame from the port
 * @c:		client
 * @f:		frame
 */
void fuse_host_frame(struct fsc *c, const struct frame *f)
{
	struct freq *r = freq_find(c, f->id);
	int rc;

	if (!r) {
		agent_log("fs: reply for id %u not in flight, dropped", f->id);
		return;
	}
	rc = reply_decode(c, r, f);
	if (rc == 1)
		return;
	if (rc < 0) {
		if (rc == -EIO && f->type == FS_REPLY)
			agent_log("fs: bad %s reply (id %u)", fs_op_name(r->op) ?
				  fs_op_name(r->op) : "?", f->id);
		kreply(&c->m[r->mnt], r->unique, -rc, NULL, 0);
	}
	freq_done(c, r);
}
