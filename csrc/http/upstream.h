/* SPDX-License-Identifier: MIT */
/* upstream.h - libuv TCP/TLS client for mediated requests: checked resolution, pool */
#ifndef GONDOLIN_HTTP_UPSTREAM_H
#define GONDOLIN_HTTP_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "policy/policy.h"
#include "tls/client.h"

#define UPSTREAM_MAX_ADDRS	8		/* checked addresses tried per connect */
#define UPSTREAM_CONNECT_MS	10000		/* resolution + connect */
#define UPSTREAM_WQ_MAX		(256 * 1024)	/* bytes queued toward upstream */
#define UPSTREAM_WQ_LOW		(64 * 1024)	/* drain callback below this */
#define UPSTREAM_POOL_PER_ORIGIN 4		/* idle connections per host:port */
#define UPSTREAM_POOL_MAX	32		/* idle connections per pool */
#define UPSTREAM_POOL_IDLE_MS	30000		/* an idle connection is closed after */
#define UPSTREAM_WHY_MAX	TLS_CLIENT_WHY_MAX	/* a TLS failure's text */

struct upstream;

/**
 * struct upstream_ops - what the owner of a connection is told
 * @connected:	the connection is up (@err 0; with TLS, after a verified
 *		handshake), or failed: -EACCES when every address was in a
 *		blocked range (@why names it), -EPROTO when the TLS handshake
 *		or verification failed ("upstream certificate not trusted:
 *		...", "upstream certificate name mismatch: ...", "upstream TLS
 *		handshake failed: ..."), other -errno otherwise (@why says
 *		what failed); @why stays valid until the connection is closed
 *		and its close callbacks ran (static, or held in struct upstream)
 * @alloc:	where the next read may go (a zero-length buffer: none)
 * @read:	@n > 0 bytes landed in the last @alloc buffer; @n < 0 is
 *		UV_EOF or a libuv error (also write errors; UV_EPROTO for a
 *		TLS record error): no more reads. With TLS these are the
 *		decrypted bytes, and an end without close_notify is UV_EOF
 * @drain:	queued writes fell to UPSTREAM_WQ_LOW after having been above
 */
struct upstream_ops {
	void (*connected)(struct upstream *u, void *ud, int err, const char *why);
	uv_buf_t (*alloc)(struct upstream *u, void *ud);
	void (*read)(struct upstream *u, void *ud, ssize_t n);
	void (*drain)(struct upstream *u, void *ud);
};

/**
 * struct upstream_pool - idle keep-alive connections of one VM
 * @loop:	the loop everything runs on
 * @policy:	the VM's policy (resolution and range checks)
 * @idle:	idle connections, most recent first
 * @nidle:	their number, at most UPSTREAM_POOL_MAX
 * @closing:	the pool is being shut down: nothing enters it any more
 * @tls:	TLS client configuration, made from @policy (its upstream_ca
 *		and the host's CA bundle) on the first TLS connection; the
 *		pool holds one reference, each TLS connection another
 * @tls_err:	why @tls could not be made
 */
struct upstream_pool {
	uv_loop_t *loop;
	const struct policy *policy;
	struct upstream *idle;
	size_t nidle;
	bool closing;
	struct tls_client_conf *tls;
	char tls_err[TLS_CLIENT_ERR_MAX];
};

void upstream_pool_init(struct upstream_pool *pool, uv_loop_t *loop,
			const struct policy *policy);
void upstream_pool_close(struct upstream_pool *pool);

struct upstream *upstream_open(struct upstream_pool *pool,
			       const struct hostpat_host *host, unsigned port,
			       bool tls, const struct upstream_ops *ops, void *ud,
			       int *err, const char **why);
bool upstream_connected(const struct upstream *u);
bool upstream_reused(const struct upstream *u);
bool upstream_is_tls(const struct upstream *u);
bool upstream_tls_resumed(const struct upstream *u);
const char *upstream_address(const struct upstream *u);
size_t upstream_writable(const struct upstream *u);
int upstream_write(struct upstream *u, const uv_buf_t *bufs, unsigned n);
void upstream_read(struct upstream *u, bool on);
void upstream_shutdown(struct upstream *u);
void upstream_release(struct upstream *u, bool reuse);
void upstream_close(struct upstream *u);

#endif /* GONDOLIN_HTTP_UPSTREAM_H */
