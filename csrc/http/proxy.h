/* SPDX-License-Identifier: MIT */
/* proxy.h - per-flow HTTP/1.1 mediation between a guest TCP flow and upstream */
#ifndef GONDOLIN_HTTP_PROXY_H
#define GONDOLIN_HTTP_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "http/http1.h"
#include "http/upstream.h"
#include "net/net.h"
#include "net/stream.h"
#include "policy/policy.h"

#define PROXY_IN_MAX		HTTP1_MAX_HEAD		/* guest bytes held: one whole head */
#define PROXY_RBUF_MAX		HTTP1_MAX_HEAD		/* upstream bytes held: one response head */
#define PROXY_PIECE		(16 * 1024)		/* body bytes moved per step */
#define PROXY_OUT_MAX		(HTTP1_MAX_HEAD + 2 * PROXY_PIECE)	/* staged toward the guest */
#define PROXY_OUT_RESERVE	1024			/* kept free for an error response */
#define PROXY_UHEAD_MAX		(HTTP1_MAX_HEAD + 8 * 1024)	/* request head toward upstream */
#define PROXY_HOOK_BODY_MAX	(8 * 1024 * 1024)	/* a body buffered for a hook */
#define PROXY_FILL_BODY_MAX	(1024 * 1024)		/* a body buffered for secrets */
#define PROXY_HEAD_MS		30000		/* a request head must be complete within */
#define PROXY_KEEPALIVE_MS	60000		/* idle keep-alive connection from the guest */
#define PROXY_HEADER_MS		60000		/* response head after the request was sent */
#define PROXY_IDLE_MS		120000		/* no byte moved during an exchange */
#define PROXY_TUNNEL_IDLE_MS	(10 * 60 * 1000) /* no byte moved in a websocket tunnel */
#define PROXY_TEXT_MAX		256		/* path/reason text kept for audit */
#define PROXY_MAX_FLOWS		256		/* mediated flows per VM (~260 KiB each at most) */

struct proxy;

/**
 * struct proxy_event - one audit record: a request and what became of it
 * @flow:	flow id (per interface)
 * @guest_ip, @dst_ip, @guest_port, @dst_port: the guest's TCP 4-tuple
 * @host:	requested host, normalised ("" when the head did not parse)
 * @port:	requested port (0 when unknown)
 * @method:	request method ("" when unknown)
 * @path:	request target, cut at PROXY_TEXT_MAX bytes
 * @status:	status sent to the guest, 0 when none was
 * @bytes_in:	bytes of this exchange from the guest (head and body)
 * @bytes_out:	bytes of this exchange to the guest (head and body)
 * @duration_ms: from the first byte of the head to the end (fractional)
 * @decision:	"allow", "deny", "respond" (a hook answered), "error"
 * @rule:	the allowlist rule that matched, or NULL
 * @reason:	why it was denied or failed, or NULL
 * @upstream:	address connected to, or NULL
 * @reused:	the upstream connection came from the pool
 * @secrets:	placeholders substituted in the request
 * @masked:	secret values masked in the response
 * @violation:	name of the secret the request tried to send where it may
 *		not go (the request was refused), or NULL
 * @websocket:	the exchange became a websocket tunnel
 * @tls:	the guest connection is TLS (https)
 */
struct proxy_event {
	uint64_t flow;
	uint32_t guest_ip, dst_ip;
	uint16_t guest_port, dst_port;
	const char *host;
	unsigned port;
	const char *method;
	const char *path;
	int status;
	uint64_t bytes_in, bytes_out;
	double duration_ms;
	const char *decision;
	const char *rule;
	const char *reason;
	const char *upstream;
	bool reused;
	unsigned secrets, masked;
	const char *violation;
	bool websocket;
	bool tls;
};

/**
 * struct proxy_request - a request as hooks see it and hand it back
 * @method:	method token
 * @target:	origin-form target, "/path?query"
 * @host:	host (normalised name or IP literal text)
 * @port:	port
 * @minor:	HTTP/1.@minor the guest spoke
 * @headers:	end-to-end fields (no hop-by-hop, Host, framing or Expect)
 * @nheaders:	their number
 * @has_body:	the guest sends a body
 * @websocket:	a websocket handshake
 * @tls:	the guest spoke TLS (https); upstream is TLS too
 */
struct proxy_request {
	struct http1_slice method, target, host;
	unsigned port;
	int minor;
	const struct http1_header *headers;
	size_t nheaders;
	bool has_body;
	bool websocket;
	bool tls;
};

/**
 * struct proxy_response - a response head as hooks see it and hand it back
 * @status:	status code
 * @reason:	reason phrase
 * @headers:	end-to-end fields (no hop-by-hop or framing fields)
 * @nheaders:	their number
 * @has_body:	a body follows
 */
struct proxy_response {
	int status;
	struct http1_slice reason;
	const struct http1_header *headers;
	size_t nheaders;
	bool has_body;
};

/**
 * struct proxy_ops - what the embedder (csrc/api/) provides
 * @event:	an audit record (the pointers live for the call only)
 * @kick:	frames may have been queued toward the guest: flush them and
 *		re-arm the stack's timers
 * @on_request:	start the request hook for @px; completion comes through
 *		proxy_hook_*(). Return 0, or <0 when it could not start
 * @on_response: start the response hook; same contract
 * @body:	a body asked for with proxy_hook_body() is complete (@err
 *		NULL), or will never be (@err says why)
 * @cancel:	the flow is gone while a hook runs: drop every reference to
 *		@px (no proxy_hook_*() call may follow)
 * @limit:	optional: a per-VM bound refused or evicted something
 */
struct proxy_ops {
	void (*event)(void *ud, const struct proxy_event *ev);
	void (*kick)(void *ud);
	int (*on_request)(void *ud, struct proxy *px, const struct proxy_request *rq);
	int (*on_response)(void *ud, struct proxy *px, const struct proxy_request *rq,
			   const struct proxy_response *rs);
	void (*body)(void *ud, struct proxy *px, const char *p, size_t n,
		     const char *err);
	void (*cancel)(void *ud, struct proxy *px);
	void (*limit)(void *ud, const char *name);
};

/**
 * struct proxy_ctx - the mediation state of one VM's interface
 * @loop:	libuv loop
 * @net:	the stack the guest flows live in
 * @policy:	the compiled policy (a reference is held)
 * @pool:	idle upstream connections
 * @ops:	embedder callbacks
 * @ud:		their data
 * @hook_request, @hook_response: which hooks exist (no hook: no call)
 * @idle:	runs deferred flows from the top of the loop
 * @ready:	flows waiting for @idle
 * @all:	every live flow
 * @nflows:	their number, at most PROXY_MAX_FLOWS
 * @closing:	proxy_ctx_close() ran
 */
struct proxy_ctx {
	uv_loop_t *loop;
	struct net *net;
	struct policy *policy;
	struct upstream_pool pool;
	const struct proxy_ops *ops;
	void *ud;
	bool hook_request, hook_response;
	uv_idle_t idle;
	struct proxy *ready;
	struct proxy *all;
	size_t nflows;
	bool closing;
};

void proxy_ctx_init(struct proxy_ctx *ctx, uv_loop_t *loop, struct net *net,
		    struct policy *policy, const struct proxy_ops *ops, void *ud);
void proxy_ctx_close(struct proxy_ctx *ctx, uv_close_cb done);

bool proxy_room(struct proxy_ctx *ctx);
struct proxy *proxy_new(struct proxy_ctx *ctx, struct stream *s, uint64_t flow,
			const uint8_t *first, size_t n);

int proxy_hook_body(struct proxy *px);
int proxy_hook_forward(struct proxy *px, const struct proxy_request *rq,
		       const char *body, size_t blen, bool body_set);
int proxy_hook_respond(struct proxy *px, bool deny, int status,
		       const struct http1_header *h, size_t n,
		       const char *body, size_t blen);
int proxy_hook_response(struct proxy *px, const struct proxy_response *rs,
			const char *body, size_t blen, bool body_set);
void proxy_hook_fail(struct proxy *px, const char *why);
void proxy_set_user(struct proxy *px, void *user);
void *proxy_user(const struct proxy *px);

#endif /* GONDOLIN_HTTP_PROXY_H */
