/* SPDX-License-Identifier: MIT */
/* fs_reply_fuzz.c - libFuzzer target: the agent's FS client (guest/agent/fuse*.c) */

/*
 * The guest side of the FS RPC: kernel requests in, FS requests out,
 * host replies in, kernel replies out. The host is untrusted, so its
 * replies are the interesting input; kernel requests are synthesized to
 * put requests in flight for them to answer.
 *
 * Input: byte 0 = setup (bit 0: a second mount, on "/"; bit 1: PID 1;
 * bits 2, 3: a deep chain of nodes, a grown node table; see populate()),
 * then records [cmd u8][len u16 BE][body], cmd & 7:
 *
 *   0, 6	kernel request, body [opsel][nodesel][fixed struct][names]:
 *		opcode = opsel & 63, mount = opsel >> 7; nodesel's low
 *		nibble picks the header nodeid, its high nibble RENAME's
 *		newdir or LINK's oldnodeid (see pick_node(); 15 for
 *		those: as given). Names are NUL-terminated, WRITE's size
 *		matches its data, a READ/READDIR size 0 becomes 4096.
 *   1		the same without those fixups
 *   2		host frame [idsel][type][payload]: raw bytes
 *   3, 7	host frame [idsel][shape][params]: a reply built for the
 *		request's op (success, "err", or corrupted one byte or
 *		truncated), its values drawn from the params
 *   4		the port goes away (every request in flight fails)
 *   5		the port comes back
 *
 * idsel < 0xf0 names the (idsel % inflight)-th request in flight, 0xf0..
 * 0xfe an id not in flight, 0xff id 0.
 *
 * Checked after every record: each FS request queued for the host is one
 * CBOR map for a request in flight of that op, with valid paths under its
 * mount (WRITE: followed by exactly its data); each kernel reply answers
 * an outstanding request once, with an errno or a body of the size its
 * opcode has (READ, READDIR: at most the size asked). At the end the port
 * goes away, after which every request that is owed a reply has one.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "fuse.h"
#include "fuse_abi.h"
#include "proto/cbor.h"
#include "proto/frame.h"
#include "proto/fs.h"

#define UNIQ_MAX	4096		/* kernel requests tracked per input */
#define KPIPE_SIZE	(1 << 20)	/* holds any kernel reply (READDIR: 128 KiB) */

#define require(x_)							\
	do {								\
		if (!(x_)) {						\
			fprintf(stderr, "fs_reply_fuzz: %s:%d: %s\n",	\
				__FILE__, __LINE__, #x_);		\
			abort();					\
		}							\
	} while (0)

/* ---- stubs for what the fuse files take from main.c and fuse_mount.c ---- */

void agent_log(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);	/* format it: a bad argument shows under ASan */
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
}

uint64_t agent_now_ms(void)
{
	static uint64_t now;

	return now += 50;
}

int fuse_mount_spawn(char *const *paths, const int *fds, unsigned int n,
		     pid_t *pid)
{
	(void)paths, (void)fds, (void)n, (void)pid;
	return -ENOSYS;
}

/* ---- harness state --------------------------------------------------- */

/**
 * struct klog - what the harness sent the kernel side as request @unique
 * @opcode:	FUSE opcode
 * @size:	READ / READDIR bytes asked, WRITE bytes sent
 * @mnt:	mount
 * @owed:	the kernel waits for a reply
 * @answered:	replies seen
 */
struct klog {
	uint32_t opcode, size;
	uint8_t mnt;
	bool owed;
	uint8_t answered;
};

static struct {
	struct fsc *c;
	struct agent a;			/* for fs_poll_handle (port gone) */
	int kpipe[2][2];		/* per mount: kernel replies */
	bool kcheck;			/* the pipes hold a whole reply */
	uint64_t uniq;			/* last unique handed out */
	struct klog k[UNIQ_MAX + 1];
	uint8_t rbuf[KPIPE_SIZE];
	uint8_t pay[FRAME_MAX_PAYLOAD];
} S;

static char root_w[] = "/w", root_slash[] = "/";

/* a cursor over a record's bytes; reads past the end give zeros */
struct bytes {
	const uint8_t *p;
	size_t n;
};

static uint8_t take8(struct bytes *b)
{
	if (!b->n)
		return 0;
	b->n--;
	return *b->p++;
}

static uint64_t take_n(struct bytes *b, unsigned int n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | take8(b);
	return v;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* ---- setup and teardown ---------------------------------------------- */

/*
 * The kernel-reply pipes live for the whole run (drained after every
 * record); without room for a whole reply they fall back to /dev/null
 * and the kernel-side checks are off.
 */
static void pipes_init(void)
{
	static bool done;
	unsigned int i;

	if (done)
		return;
	done = true;
	S.kcheck = true;
	for (i = 0; i < 2; i++) {
		if (pipe2(S.kpipe[i], O_NONBLOCK | O_CLOEXEC) < 0 ||
		    fcntl(S.kpipe[i][1], F_SETPIPE_SZ, KPIPE_SIZE) < KPIPE_SIZE) {
			S.kcheck = false;
			S.kpipe[i][0] = -1;
			S.kpipe[i][1] = open("/dev/null", O_WRONLY | O_CLOEXEC);
			require(S.kpipe[i][1] >= 0);
		}
	}
}

/*
 * Nodes no short input could make: bit 2, a chain of 15 directories of
 * 255-byte names (a name under the last one is past FS_PATH_MAX); bit 3,
 * more nodes than the table's first allocation (it grows).
 */
static void populate(struct fnodes *t, uint8_t setup)
{
	char name[FS_NAME_MAX];
	uint64_t id = FUSE_ROOT_ID;
	unsigned int i;
	int n;

	for (i = 0; (setup & 8) && i < FNODE_GROW + 100; i++) {
		n = snprintf(name, sizeof(name), "n%u", i);
		require(fnode_ref(t, FUSE_ROOT_ID, name, (size_t)n, &id) == 0);
	}
	memset(name, 'd', sizeof(name));
	for (i = 0, id = FUSE_ROOT_ID; (setup & 4) && i < 15; i++)
		require(fnode_ref(t, id, name, sizeof(name), &id) == 0);
}

/*
 * One client for the whole run, allocated once as the agent does at
 * startup (its port buffers alone are 1.8 MiB: a fresh one per input
 * would spend most of the time in mmap and page faults); everything
 * before its scratch buffers is reset per input, the node tables are
 * made anew.
 */
static struct fsc *client_new(uint8_t setup)
{
	static struct fsc *c;
	struct port port;
	unsigned int i;
	int fd;

	if (!c) {
		c = calloc(1, sizeof(*c));
		/* read: EOF (the port is gone); write: swallowed (port_flush) */
		fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		require(c && fd >= 0 && port_open(&c->port, fd) == 0);
	}
	port = c->port;
	port.rd.start = port.rd.end = port.rd.skip = 0;
	port.q.head = port.q.len = 0;
	port.retry_at = 0;
	memset(c, 0, offsetof(struct fsc, in));
	c->port = port;
	c->helper_fd = -1;
	c->nmounts = setup & 1 ? 2 : 1;
	for (i = 0; i < c->nmounts; i++) {
		c->m[i].fd = S.kpipe[i][1];
		c->m[i].path = i ? root_slash : root_w;
		require(fnodes_init(&c->m[i].nodes, c->m[i].path) == 0);
	}
	S.a.pid1 = setup & 2;
	populate(&c->m[0].nodes, setup);
	return c;
}

/* the node tables; the client and its port stay for the next input */
static void client_done(struct fsc *c)
{
	unsigned int i;

	for (i = 0; i < c->nmounts; i++)
		fnodes_free(&c->m[i].nodes);
}

/* ---- checks ---------------------------------------------------------- */

/* @path (@n bytes) is a valid path at or below mount @m's root */
static void check_path(const struct fmount *m, const uint8_t *path, size_t n)
{
	size_t rl = strlen(m->path);

	require(fs_path_ok((const char *)path, n));
	if (rl > 1)
		require(n >= rl && !memcmp(path, m->path, rl) &&
			(n == rl || path[rl] == '/'));
}

/* one queued FS request: a map (WRITE: then its data) with sane paths */
static void check_request(struct fsc *c, const struct freq *r,
			  const uint8_t *p, size_t n)
{
	static const char *const keys[] = { "path", "from", "to" };
	struct cbor_reader rd;
	struct cbor_item it;
	const uint8_t *s;
	size_t mlen, slen, i;

	cbor_reader_init(&rd, p, n);
	require(cbor_read(&rd, &it) == 0 && it.type == CBOR_MAP);
	cbor_reader_init(&rd, p, n);
	require(cbor_skip(&rd) == 0);
	mlen = (size_t)(rd.p - p);
	require(n - mlen == (r->op == FS_WRITE ? r->size : 0));
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (cbor_map_text(p, mlen, keys[i], &s, &slen) == 1)
			check_path(&c->m[r->mnt], s, slen);
}

/* every frame queued for the host, then flush them (to /dev/null) */
static void check_outbound(struct fsc *c)
{
	const uint8_t *q = c->port.q.buf;
	size_t pos = 0, len = c->port.q.len, plen;
	const struct freq *r;

	require(c->port.q.head == 0);	/* drained to empty every record */
	while (pos < len) {
		require(len - pos >= FRAME_HDR_LEN);
		plen = be32(q + pos);
		require(plen <= len - pos - FRAME_HDR_LEN);
		r = freq_find(c, be32(q + pos + 5));
		require(r && r->op == q[pos + 4] && r->op >= 1 && r->op <= FS_OP_MAX);
		check_request(c, r, q + pos + FRAME_HDR_LEN, plen);
		pos += FRAME_HDR_LEN + plen;
	}
	require(port_flush(&c->port) == 0 && c->port.q.len == 0);
}

/* the body size a successful reply to @l must have; -1: any up to @max */
static long reply_size(const struct klog *l, size_t *max)
{
	switch (l->opcode) {
	case FUSE_LOOKUP: case FUSE_MKDIR: case FUSE_SYMLINK: case FUSE_LINK:
	case FUSE_MKNOD:
		return sizeof(struct fuse_entry_out);
	case FUSE_CREATE:
		return sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out);
	case FUSE_GETATTR: case FUSE_SETATTR:
		return sizeof(struct fuse_attr_out);
	case FUSE_OPEN: case FUSE_OPENDIR:
		return sizeof(struct fuse_open_out);
	case FUSE_WRITE:
		return sizeof(struct fuse_write_out);
	case FUSE_STATFS:
		return sizeof(struct fuse_statfs_out);
	case FUSE_READ: case FUSE_READDIR: case FUSE_READDIRPLUS:
		*max = l->size;
		return -1;
	case FUSE_READLINK:
		*max = FS_PATH_MAX;
		return -1;
	case FUSE_INIT:
		*max = sizeof(struct fuse_init_out);
		return -1;
	default:
		return 0;
	}
}

/* a READDIR(PLUS) body: whole records, names, increasing offsets */
static void check_dirents(const struct fnodes *t, const uint8_t *p, size_t n,
			  bool plus)
{
	size_t head = plus ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET;
	struct fuse_direntplus dp;
	struct fuse_dirent de;
	uint64_t off = 0;
	size_t rec;

	while (n) {
		require(n >= head);
		if (plus) {
			memcpy(&dp, p, sizeof(dp));
			de = dp.dirent;
			require(!dp.entry_out.nodeid || fnode_valid(t, dp.entry_out.nodeid));
		} else {
			memcpy(&de, p, sizeof(de));
		}
		rec = FUSE_REC_ALIGN(head + de.namelen);
		require(de.namelen > 0 && de.namelen <= FS_NAME_MAX && rec <= n);
		require(de.ino != 0 && (off == 0 || de.off == off + 1));
		off = de.off;
		p += rec;
		n -= rec;
	}
}

/* one kernel reply on mount @mi; the bytes are all there */
static void check_kreply(struct fsc *c, unsigned int mi,
			 const struct fuse_out_header *h, const uint8_t *body)
{
	size_t blen = h->len - sizeof(*h), max = 0;
	struct fuse_entry_out e;
	struct klog *l;
	long want;

	require(h->unique >= 1 && h->unique <= S.uniq && h->unique <= UNIQ_MAX);
	l = &S.k[h->unique];
	require(l->owed && l->mnt == mi && l->answered++ == 0);
	if (h->error) {
		require(h->error < 0 && h->error > -4096 && blen == 0);
		return;
	}
	want = reply_size(l, &max);
	require(want < 0 ? blen <= max : blen == (size_t)want);
	if (l->opcode == FUSE_READDIR || l->opcode == FUSE_READDIRPLUS)
		check_dirents(&c->m[mi].nodes, body, blen,
			      l->opcode == FUSE_READDIRPLUS);
	if (want == (long)sizeof(e) || l->opcode == FUSE_CREATE) {
		memcpy(&e, body, sizeof(e));
		require(fnode_valid(&c->m[mi].nodes, e.nodeid) && e.attr.ino);
	}
}

/* read and check what the kernel side got since the last record */
static void check_kernel(struct fsc *c)
{
	struct fuse_out_header h;
	unsigned int mi;
	size_t len, pos;
	ssize_t n;

	if (!S.kcheck)
		return;
	for (mi = 0; mi < c->nmounts; mi++) {
		len = 0;
		while ((n = read(S.kpipe[mi][0], S.rbuf + len, sizeof(S.rbuf) - len)) > 0)
			len += (size_t)n;
		require(len < sizeof(S.rbuf));
		for (pos = 0; pos < len; pos += h.len) {
			require(len - pos >= sizeof(h));
			memcpy(&h, S.rbuf + pos, sizeof(h));
			require(h.len >= sizeof(h) && h.len <= len - pos);
			check_kreply(c, mi, &h, S.rbuf + pos + sizeof(h));
		}
	}
}

/* requests in flight are distinct, outstanding kernel requests */
static void check_slots(const struct fsc *c)
{
	unsigned int i, used = 0;
	uint64_t u;

	for (i = 0; i < FS_INFLIGHT_MAX; i++) {
		if (!c->req[i].id)
			continue;
		used++;
		u = c->req[i].unique;
		if (u == FUSE_REPLY_ONLY || !S.kcheck)
			continue;
		require(u <= S.uniq && S.k[u].owed && !S.k[u].answered);
	}
	require(used == c->inflight);
}

/* ---- kernel requests ------------------------------------------------- */

/* fixed body bytes and names of the opcodes the client knows */
static const struct {
	uint8_t fixed, names;
} kops[64] = {
	[FUSE_LOOKUP] = { 0, 1 },
	[FUSE_FORGET] = { sizeof(struct fuse_forget_in), 0 },
	[FUSE_GETATTR] = { sizeof(struct fuse_getattr_in), 0 },
	[FUSE_SETATTR] = { sizeof(struct fuse_setattr_in), 0 },
	[FUSE_SYMLINK] = { 0, 2 },
	[FUSE_MKNOD] = { sizeof(struct fuse_mknod_in), 1 },
	[FUSE_MKDIR] = { sizeof(struct fuse_mkdir_in), 1 },
	[FUSE_UNLINK] = { 0, 1 },
	[FUSE_RMDIR] = { 0, 1 },
	[FUSE_RENAME] = { sizeof(struct fuse_rename_in), 2 },
	[FUSE_RENAME2] = { sizeof(struct fuse_rename2_in), 2 },
	[FUSE_LINK] = { sizeof(struct fuse_link_in), 1 },
	[FUSE_OPEN] = { sizeof(struct fuse_open_in), 0 },
	[FUSE_OPENDIR] = { sizeof(struct fuse_open_in), 0 },
	[FUSE_READ] = { sizeof(struct fuse_read_in), 0 },
	[FUSE_READDIR] = { sizeof(struct fuse_read_in), 0 },
	[FUSE_READDIRPLUS] = { sizeof(struct fuse_read_in), 0 },
	[FUSE_WRITE] = { sizeof(struct fuse_write_in), 0 },
	[FUSE_RELEASE] = { sizeof(struct fuse_release_in), 0 },
	[FUSE_RELEASEDIR] = { sizeof(struct fuse_release_in), 0 },
	[FUSE_FSYNC] = { sizeof(struct fuse_fsync_in), 0 },
	[FUSE_FSYNCDIR] = { sizeof(struct fuse_fsync_in), 0 },
	[FUSE_INIT] = { sizeof(struct fuse_init_in), 0 },
	[FUSE_ACCESS] = { sizeof(struct fuse_access_in), 0 },
	[FUSE_CREATE] = { sizeof(struct fuse_create_in), 1 },
	[FUSE_INTERRUPT] = { 8, 0 },
	[FUSE_BATCH_FORGET] = { sizeof(struct fuse_batch_forget_in), 0 },
};

/*
 * A nodeid by selector: 0 the root, 15 a stale one, 1..7 the k-th live
 * node from the first slot, 8..14 from the last (the newest: slots are
 * handed out in order); nodeid = generation << 32 | slot, as fuse_node.c
 * makes them.
 */
static uint64_t pick_node(const struct fnodes *t, unsigned int v)
{
	uint32_t s, k, i;

	if (v == 15)
		return (uint64_t)0x7777 << 32 | 2;
	if (v == 0 || t->live <= 1)
		return FUSE_ROOT_ID;
	k = (v < 8 ? v - 1 : v - 8) % (t->live - 1);
	for (i = FUSE_ROOT_SLOT + 1; i < t->cap; i++) {
		s = v < 8 ? i : t->cap + FUSE_ROOT_SLOT - i;
		if (t->v[s].used && k-- == 0)
			return (uint64_t)t->v[s].gen << 32 | s;
	}
	return FUSE_ROOT_ID;
}

/* NUL-terminate the names at @p (@n bytes used, room for 2 * @need more) */
static size_t fix_names(uint8_t *p, size_t n, unsigned int need)
{
	unsigned int have = 0;
	size_t i;

	if (n && p[n - 1])
		p[n++] = 0;
	for (i = 0; i < n; i++)
		have += !p[i];
	for (; have < need; have++) {
		p[n++] = 'a';
		p[n++] = 0;
	}
	return n;
}

/* make the fixed part consistent with the rest, as the kernel would */
static void fix_body(const struct fnodes *t, uint32_t op, uint8_t *body,
		     size_t blen, unsigned int hi)
{
	struct fuse_read_in *rd = (void *)body;
	struct fuse_write_in *wr = (void *)body;

	switch (op) {
	case FUSE_WRITE:
		wr->size = (uint32_t)(blen - sizeof(*wr));
		break;
	case FUSE_READ: case FUSE_READDIR: case FUSE_READDIRPLUS:
		if (!rd->size)
			rd->size = 4096;
		break;
	case FUSE_RENAME: case FUSE_RENAME2:
		if (hi != 15)
			((struct fuse_rename_in *)(void *)body)->newdir = pick_node(t, hi);
		break;
	case FUSE_LINK:
		if (hi != 15)
			((struct fuse_link_in *)(void *)body)->oldnodeid = pick_node(t, hi);
		break;
	}
}

/* the size the kernel asked for, for the reply checks */
static uint32_t asked_size(uint32_t op, const uint8_t *body)
{
	const struct fuse_read_in *rd = (const void *)body;

	if (op == FUSE_READ || op == FUSE_READDIR || op == FUSE_READDIRPLUS)
		return rd->size < FS_IO_MAX ? rd->size : FS_IO_MAX;
	return 0;
}

/* one synthesized kernel request into c->in, handed to the client */
static void kernel_request(struct fsc *c, struct bytes *b, bool fixups)
{
	struct fuse_in_header *h = (void *)c->in;
	uint8_t *body = c->in + sizeof(*h);
	uint8_t opsel = take8(b), nodesel = take8(b);
	unsigned int mi = (opsel >> 7) % c->nmounts;
	uint32_t op = opsel & 63;
	size_t blen = kops[op].fixed, rest = b->n;
	struct klog *l;

	/* as fuse_io(): no read while the slots or the port are full */
	if (c->inflight >= FS_INFLIGHT_MAX || port_congested(&c->port) ||
	    S.uniq >= UNIQ_MAX)
		return;
	memset(c->in, 0, sizeof(*h) + blen);
	memcpy(body, b->p, rest);
	if (!fixups)
		blen = rest;	/* short bodies too */
	else if (rest > blen)
		blen = rest;
	if (fixups && kops[op].names)
		blen = kops[op].fixed + fix_names(body + kops[op].fixed,
						  blen - kops[op].fixed,
						  kops[op].names);
	if (fixups)
		fix_body(&c->m[mi].nodes, op, body, blen, nodesel >> 4);
	h->len = (uint32_t)(sizeof(*h) + blen);
	h->opcode = op;
	h->unique = ++S.uniq;
	h->nodeid = pick_node(&c->m[mi].nodes, nodesel & 15);
	l = &S.k[S.uniq];
	l->opcode = op;
	l->mnt = (uint8_t)mi;
	l->size = asked_size(op, body);
	l->owed = op != FUSE_FORGET && op != FUSE_BATCH_FORGET &&
		  op != FUSE_INTERRUPT;
	fuse_kernel_request(c, mi, h->len);
}

/* ---- host replies ---------------------------------------------------- */

/* the frame id @sel names (see the top of the file) */
static uint32_t pick_id(const struct fsc *c, uint8_t sel)
{
	unsigned int i, k;

	if (sel == 0xff)
		return 0;
	if (sel >= 0xf0 || !c->inflight)
		return c->next_id + (sel & 15) + 1;
	k = sel % c->inflight;
	for (i = 0; i < FS_INFLIGHT_MAX; i++)
		if (c->req[i].id && k-- == 0)
			return c->req[i].id;
	return 0;
}

/* an attr map: mode from a table or raw, the other keys as @b says */
static void put_attr(struct cbor_writer *w, struct bytes *b)
{
	static const uint32_t modes[] = {
		S_IFREG | 0644, S_IFDIR | 0755, S_IFLNK | 0777, S_IFREG | 04755,
		0644, S_IFMT | 07777, S_IFDIR | 010000,
	};
	uint8_t f = take8(b);
	unsigned int pairs = 1 + !!(f & 1) + !!(f & 2) + !!(f & 4) +
			     2 * !!(f & 8) + 3 * !!(f & 16) + !!(f & 32) + !!(f & 64);

	cbor_put_map(w, pairs);
	cbor_put_cstr(w, "mode");
	cbor_put_uint(w, f & 128 ? take_n(b, 4) : modes[take8(b) % 7]);
	if (f & 1)
		cbor_put_cstr(w, "size"), cbor_put_uint(w, take_n(b, 8));
	if (f & 2)
		cbor_put_cstr(w, "ino"), cbor_put_uint(w, take_n(b, 2));
	if (f & 4)
		cbor_put_cstr(w, "nlink"), cbor_put_uint(w, take_n(b, 5));
	if (f & 8) {
		cbor_put_cstr(w, "uid"), cbor_put_uint(w, take_n(b, 4));
		cbor_put_cstr(w, "gid"), cbor_put_uint(w, take_n(b, 4));
	}
	if (f & 16) {
		cbor_put_cstr(w, "atime"), cbor_put_int(w, (int64_t)take_n(b, 8));
		cbor_put_cstr(w, "mtime"), cbor_put_int(w, (int64_t)take_n(b, 8));
		cbor_put_cstr(w, "ctime"), cbor_put_int(w, -(int64_t)take_n(b, 6));
	}
	if (f & 32)
		cbor_put_cstr(w, "ttl_ms"), cbor_put_uint(w, take_n(b, 1 + take8(b) % 8));
	if (f & 64)
		cbor_put_cstr(w, "blocks"), cbor_put_uint(w, take_n(b, 3));
}

/* text of up to @max bytes from @b (any bytes: the client must check) */
static void put_raw_text(struct cbor_writer *w, struct bytes *b, size_t max)
{
	size_t n = take8(b) % (max + 1);

	if (n > b->n)
		n = b->n;
	cbor_put_text(w, (const char *)b->p, n);
	b->p += n;
	b->n -= n;
}

/* READDIR: {entries: [[name, attr]...], eof} */
static void put_entries(struct cbor_writer *w, struct bytes *b)
{
	unsigned int n = take8(b) % 9, i;

	cbor_put_map(w, 2);
	cbor_put_cstr(w, "entries");
	cbor_put_array(w, n);
	for (i = 0; i < n; i++) {
		cbor_put_array(w, 2);
		put_raw_text(w, b, 12);
		put_attr(w, b);
	}
	cbor_put_cstr(w, "eof");
	cbor_put_bool(w, take8(b) & 1);
}

/* STATFS: every key the client needs */
static void put_statfs(struct cbor_writer *w, struct bytes *b)
{
	static const char *const keys[] = {
		"bsize", "blocks", "bfree", "bavail", "files", "ffree", "namelen",
	};
	size_t i;

	cbor_put_map(w, 7);
	for (i = 0; i < 7; i++) {
		cbor_put_cstr(w, keys[i]);
		cbor_put_uint(w, take_n(b, i == 0 || i == 6 ? 4 : 8));
	}
}

/* a success reply shaped for @r's op; returns the bytes after the map */
static size_t put_success(struct cbor_writer *w, const struct freq *r,
			  struct bytes *b)
{
	switch (r->op) {
	case FS_LOOKUP: case FS_MKDIR: case FS_SYMLINK: case FS_LINK:
	case FS_GETATTR: case FS_SETATTR:
		cbor_put_map(w, 1);
		cbor_put_cstr(w, "attr");
		put_attr(w, b);
		return 0;
	case FS_CREATE:
		cbor_put_map(w, 2);
		cbor_put_cstr(w, "fh"), cbor_put_uint(w, take_n(b, 8));
		cbor_put_cstr(w, "attr");
		put_attr(w, b);
		return 0;
	case FS_OPEN:
		cbor_put_map(w, 1);
		cbor_put_cstr(w, "fh"), cbor_put_uint(w, take_n(b, 8));
		return 0;
	case FS_READ:
		cbor_put_map(w, 0);
		return take_n(b, 3) % (r->size + 2);	/* one more than asked too */
	case FS_WRITE:
		cbor_put_map(w, 1);
		cbor_put_cstr(w, "size"), cbor_put_uint(w, take_n(b, 4) % (r->size + 2));
		return 0;
	case FS_READLINK:
		cbor_put_map(w, 1);
		cbor_put_cstr(w, "target");
		put_raw_text(w, b, 40);
		return 0;
	case FS_STATFS:
		put_statfs(w, b);
		return 0;
	case FS_READDIR:
		put_entries(w, b);
		return 0;
	default:
		cbor_put_map(w, 0);
		return 0;
	}
}

/* {"err": name}: known, unknown, raw or of the wrong type */
static void put_err(struct cbor_writer *w, struct bytes *b)
{
	static const char *const names[] = {
		"ENOENT", "EEXIST", "EACCES", "ENOTDIR", "ENOSPC", "ESTALE",
	};
	uint8_t sel = take8(b) % 8;

	cbor_put_map(w, 1);
	cbor_put_cstr(w, "err");
	if (sel < 6)
		cbor_put_cstr(w, names[sel]);
	else if (sel == 6)
		put_raw_text(w, b, 12);
	else
		cbor_put_uint(w, take8(b));
}

/* one host frame: raw, or built for the request in flight it answers */
static void host_frame(struct fsc *c, struct bytes *b, bool build)
{
	struct frame f = { .type = FS_REPLY, .id = pick_id(c, take8(b)) };
	const struct freq *r = freq_find(c, f.id);
	struct cbor_writer w;
	uint8_t shape;
	size_t extra = 0, pos;

	if (!build || !r) {
		f.type = take8(b);
		f.payload = b->p;
		f.len = b->n;
		fuse_host_frame(c, &f);
		return;
	}
	shape = take8(b);
	cbor_writer_init(&w, S.pay, sizeof(S.pay));
	if ((shape & 3) == 2)
		put_err(&w, b);
	else
		extra = put_success(&w, r, b);
	require(!w.err && w.len + extra <= sizeof(S.pay));
	memset(S.pay + w.len, 'd', extra);
	f.payload = S.pay;
	f.len = w.len + extra;
	if ((shape & 3) == 3) {		/* one byte changed, or cut short */
		pos = take_n(b, 2) % f.len;
		if (shape & 4)
			f.len = pos;
		else
			S.pay[pos] = take8(b);
	}
	fuse_host_frame(c, &f);
}

/* the port reads EOF: through the poll loop's own path (fail_all) */
static void port_gone(struct fsc *c)
{
	struct pollfd *p = S.a.pfd + AGENT_POLL_FS;

	S.a.fs = c;
	c->down = false;	/* polled, as after a retry */
	fs_poll_fill(&S.a);
	p[0].revents = POLLHUP;
	fs_poll_handle(&S.a);
	require(c->down && c->inflight == 0);
	S.a.fs = NULL;
}

/* after port_gone(): every kernel request owed a reply got exactly one */
static void check_all_answered(void)
{
	uint64_t u;

	if (!S.kcheck)
		return;
	for (u = 1; u <= S.uniq; u++)
		require(S.k[u].answered == S.k[u].owed);
}

/* ---- the target ------------------------------------------------------ */

static void step(struct fsc *c, uint8_t cmd, struct bytes *b)
{
	switch (cmd & 7) {
	case 0: case 6:	kernel_request(c, b, true); break;
	case 1:		kernel_request(c, b, false); break;
	case 2:		host_frame(c, b, false); break;
	case 3: case 7:	host_frame(c, b, true); break;
	case 4:		port_gone(c); break;
	case 5:		c->down = false, c->port.retry_at = 0; break;
	}
	check_outbound(c);
	check_kernel(c);
	check_slots(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bytes b;
	struct fsc *c;
	size_t pos = 1, len;
	uint8_t cmd;

	if (size < 1)
		return 0;
	pipes_init();
	c = client_new(data[0]);
	while (size - pos >= 3) {
		cmd = data[pos];
		len = (size_t)data[pos + 1] << 8 | data[pos + 2];
		pos += 3;
		if (len > size - pos)
			len = size - pos;
		b = (struct bytes){ data + pos, len };
		step(c, cmd, &b);
		pos += len;
	}
	port_gone(c);
	check_outbound(c);
	check_kernel(c);
	check_all_answered();
	client_done(c);
	memset(S.k, 0, (S.uniq + 1) * sizeof(S.k[0]));
	S.uniq = 0;
	return 0;
}
