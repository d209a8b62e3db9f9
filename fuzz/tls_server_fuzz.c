/* SPDX-License-Identifier: MIT */
/* tls_server_fuzz.c - guest bytes into the TLS server (ClientHello onward) */

/*
 * The guest's ciphertext arrives in pieces on a fake TCP stream; the server
 * must consume or refuse it, never crash, hang or write past its buffers.
 * What it decrypts would go to the HTTP parser (http_request_fuzz).
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tls/leaf.h"
#include "tls/server.h"

struct fake {
	struct stream s;
	const uint8_t *p;
	size_t n, off, avail;
	bool closed;
};

static size_t f_readable(const struct stream *s)
{
	const struct fake *f = (const struct fake *)s;

	return f->avail - f->off;
}

static size_t f_read(struct stream *s, uint8_t *buf, size_t len)
{
	struct fake *f = (struct fake *)s;
	size_t k = f->avail - f->off;

	if (k > len)
		k = len;
	memcpy(buf, f->p + f->off, k);
	f->off += k;
	return k;
}

static size_t f_write(struct stream *s, const uint8_t *p, size_t len)
{
	(void)s;
	(void)p;
	return len / 2 + 1 > len ? len : len / 2 + 1;	/* short writes too */
}

static void f_shutdown(struct stream *s)
{
	(void)s;
}

static void f_abort(struct stream *s)
{
	struct fake *f = (struct fake *)s;

	if (f->closed)
		return;
	f->closed = true;
	stream_emit(s, STREAM_CLOSED);
}

static const struct stream_ops fake_ops = {
	f_readable, f_read, f_write, f_shutdown, f_abort,
};

static void on_upper(void *ud, enum stream_event ev)
{
	struct tls_server *t = ud;
	uint8_t buf[4096];

	if (ev == STREAM_READABLE)
		while (stream_read(&t->s, buf, sizeof(buf)))
			;
}

static struct tls_ca ca;
static struct tls_leaf_cache cache;
static struct tls_server_ctx sctx;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[] = "/tmp/gondolin-fuzz-ca-XXXXXX", err[256];

	(void)argc;
	(void)argv;
	if (!mkdtemp(dir) || tls_ca_open(&ca, dir, err, sizeof(err)) < 0 ||
	    tls_leaf_cache_init(&cache, &ca, 4, 0) < 0 || tls_server_ctx_init(&sctx, false) < 0)
		abort();
	/* the CA lives in memory from here on: leave nothing behind */
	snprintf(err, sizeof(err), "%s/ca.key", dir);
	unlink(err);
	snprintf(err, sizeof(err), "%s/ca.crt", dir);
	unlink(err);
	rmdir(dir);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fake f = { .s = { .ops = &fake_ops }, .p = data, .n = size };
	struct tls_leaf *leaf;
	struct tls_server *t;
	char err[128];
	size_t first = size < 512 ? size : 512, step;

	leaf = tls_leaf_get(&cache, "fuzz.test", 0, err, sizeof(err));
	if (!leaf)
		abort();
	f.off = f.avail = first;
	t = tls_server_new(&sctx, &f.s, leaf, "fuzz.test", data, first);
	if (!t)
		return 0;
	t->s.event = on_upper;
	t->s.ud = t;
	tls_server_start(t);
	/* the rest in pieces of varying size, as TCP would deliver it */
	for (step = 1; !f.closed && f.avail < size; step = step * 3 % 1400 + 1) {
		f.avail = f.avail + step > size ? size : f.avail + step;
		stream_emit(&f.s, STREAM_READABLE);
	}
	if (!f.closed)
		stream_emit(&f.s, STREAM_FIN);
	tls_server_free(t);
	return 0;
}
