/* SPDX-License-Identifier: MIT */
/* fuse.c - the FUSE client: /dev/fuse requests <-> FS RPC on gondolin.fs */

/*
 * Theory of Operation
 *
 * The agent speaks the raw /dev/fuse protocol (no libfuse) for each mount
 * the host listed, and forwards every request that needs the host as one
 * FS request frame on the gondolin.fs port (docs/protocol.md, "FS RPC").
 * Everything runs in the agent's one poll loop:
 *
 *   - a /dev/fuse fd is polled for POLLIN only while fewer than
 *     FS_INFLIGHT_MAX requests await the host and the port's outbound ring
 *     is below its high-water mark, so the kernel's queue, not the agent,
 *     holds the backlog;
 *   - each kernel request is decoded, its nodeids turned into guest paths
 *     (fuse_node.c), and either answered here (INIT, FLUSH, OPENDIR, ...)
 *     or sent to the host under a fresh id, recorded in a struct freq slot
 *     with what the reply needs (the kernel's unique, names for new nodes,
 *     the size asked for);
 *   - each reply frame is matched by id, checked (one CBOR map, the right
 *     keys and types, no more data than asked) and turned into the kernel
 *     reply. Anything wrong fails that one request with EIO; a reply whose
 *     id is not in flight is dropped. No input from the host ends a mount.
 *
 * Directory handles need no state: READDIR's kernel offset is the number
 * of entries already returned ("." and ".." first, made up here), so each
 * READDIR asks the host for entries from there, fills the kernel's buffer
 * with as many records as fit, and numbers them so the next READDIR
 * starts where this one stopped.
 *
 * Mounting (fuse_mount.c) happens in a child so that a mount point inside
 * another FUSE mount can be created while this loop serves that mount;
 * HELLO waits for it (main.c). If the port goes away, requests in flight
 * and new ones fail with EIO; as PID 1 the port is tried again later.
 *
 * The agent itself never touches paths under its mounts: it would wait
 * on itself.
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

#define FUSE_IN_MAX	(FS_IO_MAX + 8192)	/* one kernel request */
#define FS_ENC_MAX	(FS_IO_MAX + 2 * FS_PATH_MAX + 1024)
#define FUSE_TURN_MAX	16		/* kernel requests per fd per turn */
#define FUSE_TTL_MAX_MS	((uint64_t)1 << 32)
#define FUSE_BG_MAX	48		/* kernel's background requests */
#define FUSE_WANT	(FUSE_ASYNC_READ | FUSE_ATOMIC_O_TRUNC | FUSE_BIG_WRITES | \
			 FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO | \
			 FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES)
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

/* ---- kernel replies ------------------------------------------------- */

/**
 * kreply() - answer kernel request @unique on @m
 * @m:		mount
 * @unique:	request
 * @err:	0 or a positive errno
 * @data:	reply body (may be NULL)
 * @len:	its size
 */
static void kreply(struct fmount *m, uint64_t unique, int err,
		   const void *data, size_t len)
{
	struct fuse_out_header h = { 0 };
	struct iovec iov[2];
	ssize_t n;

	if (m->fd < 0 || unique == FUSE_REPLY_ONLY)
		return;
	if (err)
		len = 0;
	h.len = (uint32_t)(sizeof(h) + len);
	h.error = -err;
	h.unique = unique;
	iov[0] = (struct iovec){ &h, sizeof(h) };
	iov[1] = (struct iovec){ (void *)data, len };
	do {
		n = writev(m->fd, iov, len ? 2 : 1);
	} while (n < 0 && errno == EINTR);
	/* ENOENT: the request was interrupted and is gone; nothing to do */
	if (n < 0 && errno != ENOENT)
		agent_log("fuse %s: reply: %s", m->path, strerror(errno));
}

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

/* ---- request slots and the port -------------------------------------- */

/**
 * req_find() - the request in flight with frame id @id
 * @c:		client
 * @id:		frame id
 *
 * Return: the slot or NULL.
 */
static struct freq *req_find(struct fsc *c, uint32_t id)
{
	unsigned int i;

	if (!id)
		return NULL;
	for (i = 0; i < FS_INFLIGHT_MAX; i++)
		if (c->req[i].id == id)
			return &c->req[i];
	return NULL;
}

/**
 * req_new() - a free slot for kernel request @h on mount @mi
 * @c:		client (caller checked inflight < FS_INFLIGHT_MAX)
 * @mi:		mount index
 * @h:		kernel request header
 * @op:		FS request type
 *
 * Return: the slot, id not yet assigned.
 */
static struct freq *req_new(struct fsc *c, unsigned int mi,
			    const struct fuse_in_header *h, uint8_t op)
{
	unsigned int i;

	for (i = 0; i < FS_INFLIGHT_MAX; i++)
		if (!c->req[i].id)
			break;
	memset(&c->req[i], 0, offsetof(struct freq, name));
	c->req[i].name[0] = c->req[i].name2[0] = '\0';
	c->req[i].unique = h->unique;
	c->req[i].opcode = h->opcode;
	c->req[i].op = op;
	c->req[i].mnt = (uint8_t)mi;
	c->req[i].node = h->nodeid;
	return &c->req[i];
}

/**
 * req_done() - free a slot
 * @c:		client
 * @r:		slot in use
 */
static void req_done(struct fsc *c, struct freq *r)
{
	if (r->id) {
		r->id = 0;
		c->inflight--;
	}
}

/**
 * req_send() - give @r an id and queue its frame: the map in @w, then @data
 * @c:		client
 * @r:		slot
 * @w:		encoded map (in c->enc)
 * @data:	FS_WRITE bytes or NULL
 * @dlen:	their count
 *
 * Return: 0, or a positive errno for the kernel (the slot is then free).
 */
static int req_send(struct fsc *c, struct freq *r, struct cbor_writer *w,
		    const void *data, size_t dlen)
{
	if (w->err || w->len + dlen > sizeof(c->enc))
		return ENAMETOOLONG;
	if (c->down)
		return EIO;
	if (dlen)
		memcpy(c->enc + w->len, data, dlen);
	do {
		c->next_id++;
	} while (!c->next_id || req_find(c, c->next_id));
	if (port_send(&c->port, r->op, c->next_id, c->enc, w->len + dlen) < 0)
		return EIO;
	r->id = c->next_id;
	c->inflight++;
	return 0;
}

/**
 * put_path() - "@key": path of @node (plus "/@name")
 * @c:		client
 * @m:		mount
 * @w:		writer
 * @key:	map key
 * @node:	nodeid
 * @name:	component or NULL
 * @nlen:	its length
 * @buf:	c->path or c->path2
 *
 * Return: 0 or a positive errno.
 */
static int put_path(struct fmount *m, struct cbor_writer *w, const char *key,
		    uint64_t node, const char *name, size_t nlen, char *buf)
{
	int n = fnode_path(&m->nodes, node, name, nlen, buf, FS_PATH_MAX + 1);

	if (n < 0)
		return -n;
	cbor_put_cstr(w, key);
	cbor_put_text(w, buf, (size_t)n);
	return 0;
}

/**
 * begin() - start the map of a request about one path
 * @c:		client
 * @m:		mount
 * @w:		writer, initialised here over c->enc
 * @pairs:	key/value pairs the map will have, "path" included
 * @node:	nodeid
 * @name:	component or NULL
 * @nlen:	its length
 *
 * Return: 0 or a positive errno.
 */
static int begin(struct fsc *c, struct fmount *m, struct cbor_writer *w,
		 unsigned int pairs, uint64_t node, const char *name, size_t nlen)
{
	cbor_writer_init(w, c->enc, sizeof(c->enc) - FS_IO_MAX);
	cbor_put_map(w, pairs);
	return put_path(m, w, "path", node, name, nlen, c->path);
}

/* ---- kernel requests ------------------------------------------------- */

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
	struct freq *r = req_new(k->c, k->mi, k->h, op);
	struct cbor_writer w;
	int err;

	err = begin(k->c, k->m, &w, 1, k->h->nodeid, name, nlen);
	if (err)
		return err;
	if (name)
		keep_name(r, name, nlen);
	return req_send(k->c, r, &w, NULL, 0);
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
	struct freq *r = req_new(k->c, k->mi, k->h, FS_GETATTR);
	uint64_t h = fh ? in->fh : 0;
	struct cbor_writer w;
	int err;

	if (!fh)	/* fstat of an unlinked file: its handle, not its path */
		fh = fnode_detached_fh(&k->m->nodes, k->h->nodeid, &h);
	err = begin(k->c, k->m, &w, fh ? 2 : 1, k->h->nodeid, NULL, 0);
	if (err)
		return err;
	if (fh) {
		cbor_put_cstr(&w, "fh");
		cbor_put_uint(&w, h);
	}
	return req_send(k->c, r, &w, NULL, 0);
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
	r = req_new(k->c, k->mi, k->h, FS_SETATTR);
	err = begin(k->c, k->m, &w, pairs, k->h->nodeid, NULL, 0);
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
	return req_send(k->c, r, &w, NULL, 0);
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
	r = req_new(k->c, k->mi, k->h, FS_SYMLINK);
	err = begin(k->c, k->m, &w, 2, k->h->nodeid, name, nlen);
	if (err)
		return err;
	cbor_put_cstr(&w, "target");
	cbor_put_text(&w, target, tlen);
	keep_name(r, name, nlen);
	return req_send(k->c, r, &w, NULL, 0);
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
	r = req_new(k->c, k->mi, k->h, FS_MKDIR);
	err = begin(k->c, k->m, &w, 2, k->h->nodeid, name, nlen);
	if (err)
		return err;
	cbor_put_cstr(&w, "mode");
	cbor_put_uint(&w, in->mode & 07777);
	keep_name(r, name, nlen);
	return req_send(k->c, r, &w, NULL, 0);
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
	struct freq *r = req_new(k->c, k->mi, k->h, FS_CREATE);
	struct cbor_writer w;
	int err;

	err = begin(k->c, k->m, &w, 5, k->h->nodeid, name, nlen);
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
	keep_name(r, name, nlen);
	return req_send(k->c, r, &w, NULL, 0);
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
	r = req_new(k->c, k->mi, k->h, FS_RENAME);
	cbor_writer_init(&w, k->c->enc, sizeof(k->c->enc) - FS_IO_MAX);
	cbor_put_map(&w, 3);
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
	return req_send(k->c, r, &w, NULL, 0);
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
	r = req_new(k->c, k->mi, k->h, FS_LINK);
	cbor_writer_init(&w, k->c->enc, sizeof(k->c->enc) - FS_IO_MAX);
	cbor_put_map(&w, 2);
	err = put_path(k->m, &w, "from", in->oldnodeid, NULL, 0, k->c->path);
	if (!err)
		err = put_path(k->m, &w, "to", k->h->nodeid, name, nlen, k->c->path2);
	if (err)
		return err;
	keep_name(r, name, nlen);
	return req_send(k->c, r, &w, NULL, 0);
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
	r = req_new(k->c, k->mi, k->h, FS_OPEN);
	err = begin(k->c, k->m, &w, 4, k->h->nodeid, NULL, 0);
	if (err)
		return err;
	cbor_put_cstr(&w, "access");
	cbor_put_uint(&w, access_mode(in->flags));
	cbor_put_cstr(&w, "append");
	cbor_put_bool(&w, in->flags & O_APPEND);
	cbor_put_cstr(&w, "trunc");
	cbor_put_bool(&w, in->flags & O_TRUNC);
	return req_send(k->c, r, &w, NULL, 0);
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
	struct freq *r = req_new(k->c, k->mi, k->h, op);

	cbor_writer_init(w, k->c->enc, sizeof(k->c->enc) - FS_IO_MAX);
	cbor_put_map(w, pairs);
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
	return req_send(k->c, r, &w, NULL, 0);
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
	return req_send(k->c, r, &w, k->body + sizeof(*in), in->size);
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
	return req_send(k->c, r, &w, NULL, 0);
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
	return req_send(k->c, r, &w, NULL, 0);
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
	r = req_new(k->c, k->mi, k->h, FS_READDIR);
	r->off = in->offset;
	r->size = in->size < FS_IO_MAX ? in->size : FS_IO_MAX;
	r->flags = plus;
	err = begin(k->c, k->m, &w, 3, k->h->nodeid, NULL, 0);
	if (err)
		return err;
	cbor_put_cstr(&w, "offset");
	cbor_put_uint(&w, in->offset > 2 ? in->offset - 2 : 0);
	cbor_put_cstr(&w, "plus");
	cbor_put_bool(&w, plus);
	return req_send(k->c, r, &w, NULL, 0);
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
	r = req_new(k->c, k->mi, k->h, FS_ACCESS);
	err = begin(k->c, k->m, &w, 2, k->h->nodeid, NULL, 0);
	if (err)
		return err;
	cbor_put_cstr(&w, "mask");
	cbor_put_uint(&w, in->mask & 7);
	return req_send(k->c, r, &w, NULL, 0);
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
 * kernel_request() - one request read from mount @mi's /dev/fuse
 * @c:		client
 * @mi:		mount index
 * @n:		bytes read into c->in
 */
static void kernel_request(struct fsc *c, unsigned int mi, size_t n)
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

	req_done(c, r);
	r->unique = FUSE_REPLY_ONLY;
	r->op = FS_RELEASE;
	r->opcode = FUSE_RELEASE;
	cbor_writer_init(&w, c->enc, sizeof(c->enc));
	cbor_put_map(&w, 1);
	cbor_put_cstr(&w, "fh");
	cbor_put_uint(&w, fh);
	if (req_send(c, r, &w, NULL, 0))
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
 * host_frame() - one frame from the port
 * @c:		client
 * @f:		frame
 */
static void host_frame(struct fsc *c, const struct frame *f)
{
	struct freq *r = req_find(c, f->id);
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
	req_done(c, r);
}

/**
 * fail_all() - the port is gone: every request in flight fails with EIO
 * @c:		client
 */
static void fail_all(struct fsc *c)
{
	unsigned int i;

	for (i = 0; i < FS_INFLIGHT_MAX; i++) {
		if (!c->req[i].id)
			continue;
		kreply(&c->m[c->req[i].mnt], c->req[i].unique, EIO, NULL, 0);
		req_done(c, &c->req[i]);
	}
	c->port.q.len = c->port.q.head = 0;
}

/**
 * fs_port_gone() - EOF or an error on gondolin.fs
 * @a:		agent
 */
static void fs_port_gone(struct agent *a)
{
	struct fsc *c = a->fs;

	if (!c->down)
		agent_log("fs: port closed by the host");
	c->down = true;
	fail_all(c);
	if (a->pid1)
		c->port.retry_at = agent_now_ms() + AGENT_RETRY_MS;
}

/**
 * fs_port_io() - flush, read and dispatch the port
 * @a:		agent
 * @revents:	poll result
 */
static void fs_port_io(struct agent *a, short revents)
{
	struct fsc *c = a->fs;
	struct frame f;
	int rc;

	if ((revents & POLLOUT) && port_flush(&c->port) < 0)
		fs_port_gone(a);
	if (!(revents & (POLLIN | POLLHUP | POLLERR)))
		return;
	rc = port_read(&c->port);
	if (rc == 0 || (rc < 0 && rc != -EAGAIN)) {
		fs_port_gone(a);
		return;
	}
	if (rc > 0 && c->down) {
		agent_log("fs: port back");
		c->down = false;
		c->port.retry_at = 0;
	}
	while ((rc = frame_reader_next(&c->port.rd, &f)) != 0) {
		if (rc < 0)
			agent_log("fs: frame above 256 KiB dropped");
		else
			host_frame(c, &f);
	}
}

/**
 * fuse_io() - take the kernel's requests on mount @mi
 * @c:		client
 * @mi:		mount index
 */
static void fuse_io(struct fsc *c, unsigned int mi)
{
	struct fmount *m = &c->m[mi];
	unsigned int turn;
	ssize_t n;

	for (turn = 0; turn < FUSE_TURN_MAX && m->fd >= 0; turn++) {
		if (c->inflight >= FS_INFLIGHT_MAX || port_congested(&c->port))
			return;
		n = read(m->fd, c->in, sizeof(c->in));
		if (n < 0 && (errno == EINTR || errno == ENOENT))
			continue;	/* ENOENT: interrupted before we read it */
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {		/* ENODEV: unmounted or aborted */
			agent_log("fuse %s: connection ended (%s)", m->path,
				  n < 0 ? strerror(errno) : "EOF");
			close(m->fd);
			m->fd = -1;
			return;
		}
		kernel_request(c, mi, (size_t)n);
	}
}

/* ---- the agent's side ------------------------------------------------ */

/**
 * helper_io() - read the mount helper's report; EOF means it is done
 * @a:		agent
 */
static void helper_io(struct agent *a)
{
	struct fsc *c = a->fs;
	char buf[64];
	ssize_t n, i;

	n = read(c->helper_fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	for (i = 0; i < n; i++) {
		if (buf[i] == '+' && !c->helper_len && c->mounted < c->nmounts)
			c->mounted++;
		else if (c->helper_len < sizeof(c->helper_msg) - 1)
			c->helper_msg[c->helper_len++] = buf[i];
	}
	if (n > 0)
		return;
	c->helper_msg[c->helper_len] = '\0';	/* EOF: the helper is done */
	close(c->helper_fd);
	c->helper_fd = -1;
	if (!c->helper_len)
		return;
	agent_log("%s", c->helper_msg);
	if (!a->boot_error[0])
		snprintf(a->boot_error, sizeof(a->boot_error), "%s", c->helper_msg);
}

/**
 * fs_mounting() - whether the mount helper is still at work
 * @a:		agent
 *
 * Return: true until every mount is done (or failed).
 */
bool fs_mounting(const struct agent *a)
{
	return a->fs && a->fs->helper_fd >= 0;
}

/**
 * fs_poll_timeout() - lower @timeout to the port's retry time
 * @a:		agent
 * @now:	monotonic ms
 * @timeout:	poll timeout so far (-1: none)
 *
 * Return: the new timeout.
 */
int fs_poll_timeout(const struct agent *a, uint64_t now, int timeout)
{
	int wait;

	if (!a->fs || !a->fs->port.retry_at)
		return timeout;
	wait = a->fs->port.retry_at > now ? (int)(a->fs->port.retry_at - now) : 0;
	return (timeout < 0 || wait < timeout) ? wait : timeout;
}

/**
 * fs_poll_fill() - the port, the helper pipe and each /dev/fuse
 * @a:		agent
 */
void fs_poll_fill(struct agent *a)
{
	struct pollfd *p = a->pfd + AGENT_POLL_FS;
	struct fsc *c = a->fs;
	bool take;
	unsigned int i;

	for (i = 0; i < AGENT_POLL_FS_SLOTS; i++)
		p[i] = (struct pollfd){ .fd = -1 };
	if (!c)
		return;
	if (!c->down || (c->port.retry_at && c->port.retry_at <= agent_now_ms())) {
		p[0].fd = c->port.fd;
		p[0].events = POLLIN | (c->port.q.len ? POLLOUT : 0);
	}
	p[1].fd = c->helper_fd;
	p[1].events = POLLIN;
	take = c->inflight < FS_INFLIGHT_MAX && !port_congested(&c->port);
	for (i = 0; i < c->mounted; i++) {
		p[2 + i].fd = take ? c->m[i].fd : -1;
		p[2 + i].events = POLLIN;
	}
}

/**
 * fs_poll_handle() - act on the poll results; flush what was queued
 * @a:		agent
 */
void fs_poll_handle(struct agent *a)
{
	struct pollfd *p = a->pfd + AGENT_POLL_FS;
	struct fsc *c = a->fs;
	unsigned int i;

	if (!c)
		return;
	if (p[0].fd >= 0 && p[0].revents)
		fs_port_io(a, p[0].revents);
	if (p[1].fd >= 0 && p[1].revents)
		helper_io(a);
	for (i = 0; i < c->mounted; i++)
		if (p[2 + i].fd >= 0 && p[2 + i].revents)
			fuse_io(c, i);
	if (c->port.q.len && !c->down && port_flush(&c->port) < 0)
		fs_port_gone(a);
}

/**
 * open_fuse() - one /dev/fuse per mount, set up for the loop
 * @c:		client
 * @paths:	mount points
 * @n:		how many
 * @fds:	filled with the fds
 * @err:	message on failure
 * @elen:	its size
 *
 * Return: 0 or -1.
 */
static int open_fuse(struct fsc *c, char *const *paths, unsigned int n,
		     int *fds, char *err, size_t elen)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		struct fmount *m = &c->m[i];

		m->path = paths[i];
		m->fd = open("/dev/fuse", O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (m->fd < 0) {
			snprintf(err, elen, "mount %s: /dev/fuse: %s", paths[i],
				 strerror(errno));
			return -1;
		}
		c->nmounts++;
		fds[i] = m->fd;
		if (fnodes_init(&m->nodes, m->path) < 0) {
			snprintf(err, elen, "mount %s: out of memory", paths[i]);
			return -1;
		}
	}
	return 0;
}

/**
 * fs_start() - serve @n FUSE mounts over @port_fd and start mounting them
 * @a:		agent (boot_error set on failure)
 * @port_fd:	gondolin.fs (taken over)
 * @paths:	mount points, checked with fs_path_ok; must outlive the agent
 * @n:		how many (1..AGENT_MOUNTS_MAX)
 *
 * The mounts themselves are made by a child (fuse_mount.c) while the
 * loop serves them; fs_mounting() says when it is done.
 *
 * Return: 0 or -1.
 */
int fs_start(struct agent *a, int port_fd, char *const *paths, unsigned int n)
{
	char *err = a->boot_error;
	size_t elen = sizeof(a->boot_error);
	int fds[AGENT_MOUNTS_MAX], rc;
	struct fsc *c;
	pid_t pid;

	c = calloc(1, sizeof(*c));
	if (!c || n > AGENT_MOUNTS_MAX) {
		snprintf(err, elen, "mounts: %s", c ? "too many" : "out of memory");
		free(c);
		close(port_fd);
		return -1;
	}
	c->helper_fd = -1;
	a->fs = c;
	rc = port_open(&c->port, port_fd);
	if (rc < 0) {
		snprintf(err, elen, "mounts: port: %s", strerror(-rc));
		c->down = true;
		return -1;
	}
	if (open_fuse(c, paths, n, fds, err, elen) < 0)
		return -1;
	c->helper_fd = fuse_mount_spawn(paths, fds, n, &pid);
	if (c->helper_fd < 0) {
		snprintf(err, elen, "mounts: fork: %s", strerror(-c->helper_fd));
		c->helper_fd = -1;
		return -1;
	}
	return 0;
}

/**
 * fs_stop() - close every mount's connection (--fd mode, at exit)
 * @a:		agent
 */
void fs_stop(struct agent *a)
{
	struct fsc *c = a->fs;
	unsigned int i;

	if (!c)
		return;
	for (i = 0; i < c->nmounts; i++) {
		if (c->m[i].fd >= 0)
			close(c->m[i].fd);
		fnodes_free(&c->m[i].nodes);
	}
	if (c->helper_fd >= 0)
		close(c->helper_fd);
	frame_reader_free(&c->port.rd);
	free(c->port.q.buf);
	close(c->port.fd);
	free(c);
	a->fs = NULL;
}
