/* SPDX-License-Identifier: MIT */
/* fs_request_fuzz.c - libFuzzer target: the host's FS RPC dispatch (vfs/server.c) */

/*
 * The input is a sequence of requests, each [type u8][len u16 BE][payload],
 * served by one server that lives for the whole input: routes "/" (a
 * deferred, Lua-like route), "/c" (a stub C provider) and "/c/ro" (read-only
 * with hidden and denied paths), so handles, rules and routing state carry
 * from one request to the next. Every reply must be one well-formed CBOR
 * map (FS_READ: followed by at most the size asked) and fit the reply
 * buffer. Deferred calls are answered at once with a reply whose shape
 * depends on the input, as a Lua provider's result would be.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vfs/vfs.h"

struct stub {
	int dummy;
};

static void stub_attr(struct vfs_attr *a, uint32_t mode)
{
	memset(a, 0, sizeof(*a));
	a->mode = mode;
	a->nlink = 1;
	a->size = 4096;
	a->ttl_ms = VFS_TTL_DEFAULT;
}

/* a provider that answers every request plausibly, without touching disk */
static int stub_call(void *self, const struct vfs_req *rq, struct vfs_reply *rp)
{
	static const char *const names[] = { "a", "b", "secret", "x", ".", "..", "ok" };
	struct vfs_attr a;
	size_t i;

	(void)self;
	if (!rq->path || rq->path[0] != '/')
		abort();	/* the server must hand over a routed path */
	switch (rq->op) {
	case FS_OPEN: case FS_CREATE:
		stub_attr(&rp->attr, 0100644);
		rp->fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		return rp->fd < 0 ? -EMFILE : 0;
	case FS_READ:
		if (rq->fd < 0)
			abort();	/* a read always names an open handle */
		rp->len = rq->size > rp->cap ? rp->cap : rq->size;
		memset(rp->buf, 'z', rp->len);
		return 0;
	case FS_WRITE:
		rp->written = rq->len;
		return 0;
	case FS_READLINK:
		memcpy(rp->buf, "target", 6);
		rp->len = 6;
		return 0;
	case FS_READDIR:
		stub_attr(&a, 0100644);
		for (i = rq->offset; i < sizeof(names) / sizeof(names[0]); i++)
			if (vfs_dir_add(rp->dir, names[i], strlen(names[i]), &a) < 0)
				return 0;
		rp->eof = true;
		return 0;
	case FS_UNLINK:
		return -ENOENT;
	default:
		stub_attr(&rp->attr, strlen(rq->path) % 2 ? 040755 : 0100644);
		return 0;
	}
}

static void stub_destroy(void *self)
{
	(void)self;
}

static const struct vfs_provider_ops stub_ops = {
	.name = "stub", .call = stub_call, .destroy = stub_destroy,
};

/* the reply in s->out must be one CBOR map, plus READ data */
static void check_reply(const struct vfs_server *s, unsigned int type, size_t asked)
{
	struct cbor_reader r;
	struct cbor_item it;

	if (s->out_len == 0 || s->out_len > sizeof(s->out))
		abort();
	cbor_reader_init(&r, s->out, s->out_len);
	if (cbor_read(&r, &it) < 0 || it.type != CBOR_MAP)
		abort();
	cbor_reader_init(&r, s->out, s->out_len);
	if (cbor_skip(&r) < 0)
		abort();
	if (r.p != r.end && (type != FS_READ || (size_t)(r.end - r.p) > asked))
		abort();
}

/* answer a deferred call as a Lua provider might, shaped by @sel */
static void answer(struct vfs_server *s, struct vfs_call *c, uint8_t sel)
{
	struct vfs_reply rp;
	struct vfs_dir d;
	uint64_t fh = 0;

	memset(&rp, 0, sizeof(rp));
	rp.fd = -1;
	stub_attr(&rp.attr, sel & 1 ? 040755 : 0100644);
	s->pending--;
	if (sel & 0x80) {
		vfs_server_error(s, sel & 0x3f);
		return;
	}
	if (c->rq.op == FS_OPEN || c->rq.op == FS_CREATE) {
		if (vfs_server_open(s, c, -1, &fh) < 0) {
			vfs_server_error(s, EMFILE);
			return;
		}
	} else if (c->rq.op == FS_READ) {
		rp.len = c->rq.size < sel ? c->rq.size : sel;
		memset(s->out + 1, 'q', rp.len);
	} else if (c->rq.op == FS_READLINK) {
		rp.buf = (uint8_t *)"l";
		rp.len = 1;
	} else if (c->rq.op == FS_READDIR) {
		vfs_dir_init(s, c, &d);
		while (vfs_dir_add(&d, "entry", 5 - (sel & 3), &rp.attr) == 0 && d.n < sel)
			;
		rp.eof = sel & 2;
	}
	vfs_server_reply(s, c, &rp, fh, &d);
}

static struct vfs_server *server_new(void)
{
	struct vfs_server *s = malloc(sizeof(*s));
	int mi;

	if (!s)
		abort();
	vfs_server_init(s);
	if (vfs_server_mount(s, "/", NULL, NULL, false) < 0 ||
	    vfs_server_mount(s, "/c", &stub_ops, NULL, false) < 0)
		abort();
	mi = vfs_server_mount(s, "/c/ro", &stub_ops, NULL, true);
	if (mi < 0 || vfs_server_rule(s, (unsigned int)mi, true, "/secret") < 0 ||
	    vfs_server_rule(s, (unsigned int)mi, false, "/x") < 0 ||
	    vfs_server_rule(s, 1, true, "/a/secret") < 0 ||
	    vfs_server_rule(s, 1, false, "/b") < 0)
		abort();
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vfs_server *s = server_new();
	size_t pos = 0, len;
	struct vfs_call c;
	unsigned int type;
	uint64_t asked;

	while (size - pos >= 3) {
		type = data[pos];
		len = (size_t)data[pos + 1] << 8 | data[pos + 2];
		pos += 3;
		if (len > size - pos)
			len = size - pos;
		if (vfs_server_request(s, type, data + pos, len, &c) == VFS_DEFER) {
			asked = c.rq.op == FS_READ ? c.rq.size : 0;
			answer(s, &c, len ? data[pos + len - 1] : 0);
			check_reply(s, c.rq.op, asked);
		} else {
			check_reply(s, type, FS_IO_MAX);
		}
		pos += len;
	}
	if (s->pending != 0)
		abort();
	vfs_server_free(s);
	free(s);
	return 0;
}
