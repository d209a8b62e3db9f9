/* SPDX-License-Identifier: MIT */
/* proxy_hook.c - HTTP mediation: the bridge to the embedder's request and response hooks */

/*
 * Hooks: the embedder's on_request/on_response start a Lua coroutine and
 * return; its result comes back through proxy_hook_*(), which only copy
 * the result into a heap blob and schedule the flow: the flow continues
 * from a libuv idle callback at the top of the loop, never inside the
 * Lua call. With no hooks configured no Lua runs for a request.
 *
 * The deferred run (px_defer()) is here because hook results are why a
 * flow must be able to continue from the top of the loop; proxy_new()
 * and px_run()'s yield use it as well.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "http/proxy_int.h"

/* ---- deferred runs ---- */

/**
 * on_idle() - run the flows that were deferred
 * @h:		the context's idle handle
 */
static void on_idle(uv_idle_t *h)
{
	struct proxy_ctx *ctx = (struct proxy_ctx *)(void *)((char *)h -
				 offsetof(struct proxy_ctx, idle));
	struct proxy *px;

	uv_idle_stop(h);
	while ((px = ctx->ready)) {
		ctx->ready = px->rnext;
		px->queued = false;
		px_run(px);
	}
}

/**
 * px_defer() - run the flow from the top of the loop
 * @px:		flow
 */
void px_defer(struct proxy *px)
{
	struct proxy_ctx *ctx = px->ctx;

	if (px->running)
		px->rerun = true;
	if (px->queued || px->dead)
		return;
	px->queued = true;
	px->rnext = ctx->ready;
	ctx->ready = px;
	if (!ctx->closing)
		uv_idle_start(&ctx->idle, on_idle);
}

/* ---- hooks: starting ---- */

/**
 * px_start_request_hook() - hand the request to on_request
 * @px:		flow
 */
void px_start_request_hook(struct proxy *px)
{
	px->state = PX_HOOK_REQ;
	px->x.hook_pending = true;
	if (px->ctx->ops->on_request(px->ctx->ud, px, &px->x.view) < 0) {
		px->x.hook_pending = false;
		px_error(px, 502, "the request hook could not start");
	}
}

/**
 * px_start_response_hook() - hand the response head to on_response
 * @px:		flow
 */
void px_start_response_hook(struct proxy *px)
{
	struct exch *x = &px->x;
	struct http1_response *rs = &x->res;
	const char *from = px->rbuf + px->roff;
	struct http1_header f[HTTP1_MAX_HEADERS];
	size_t i, n;

	size_t hoff = (rs->head_len + 15) & ~(size_t)15;	/* align the field array */

	x->rhead = malloc(hoff + HTTP1_MAX_HEADERS * sizeof(struct http1_header));
	if (!x->rhead) {
		px_error(px, 502, "out of memory");
		return;
	}
	memcpy(x->rhead, from, rs->head_len);
	rebase(&rs->reason, from, x->rhead);
	for (i = 0; i < rs->nheaders; i++) {
		rebase(&rs->headers[i].name, from, x->rhead);
		rebase(&rs->headers[i].value, from, x->rhead);
	}
	px_rbuf_consume(px, rs->head_len);
	n = px_response_fields(rs->headers, rs->nheaders, f, NULL);
	x->rview.headers = (struct http1_header *)(void *)(x->rhead + hoff);
	memcpy((void *)x->rview.headers, f, n * sizeof(*f));
	x->rview.nheaders = n;
	x->rview.status = rs->status;
	x->rview.reason = rs->reason;
	x->rview.has_body = px_src_of(rs) != SRC_NONE;
	x->src = px_src_of(rs);
	x->src_left = rs->content_length;
	chunked_decoder_init(&x->sdec, UINT64_MAX >> 8);
	x->status = rs->status;
	px->state = PX_HOOK_RES;
	x->hook_pending = true;
	if (px->ctx->ops->on_response(px->ctx->ud, px, &x->view, &x->rview) < 0) {
		x->hook_pending = false;
		px_error(px, 502, "the response hook could not start");
	}
}

/* ---- hooks: results ---- */

/**
 * blob_new() - copy a hook result out of the caller's memory
 * @kind:	enum hook_kind
 * @rq:		request fields (forward) or NULL
 * @reason:	reason phrase or failure text (may be empty)
 * @h:		fields
 * @n:		their number
 * @body:	body or NULL
 * @blen:	its length
 *
 * Return: the blob, or NULL when out of memory.
 */
static struct hook_blob *blob_new(int kind, const struct proxy_request *rq,
				  struct http1_slice reason, const struct http1_header *h,
				  size_t n, const char *body, size_t blen)
{
	size_t total = blen + reason.len, i;
	struct hook_blob *b;
	char *w;

	if (rq)
		total += rq->method.len + rq->target.len + rq->host.len;
	for (i = 0; i < n; i++)
		total += h[i].name.len + h[i].value.len;
	b = calloc(1, sizeof(*b) + n * sizeof(*h) + total + 1);
	if (!b)
		return NULL;
	b->kind = kind;
	b->headers = (struct http1_header *)b->data;
	b->n = n;
	w = b->data + n * sizeof(*h);
#define PUT(dst_, p_, len_) do { if (len_) memcpy(w, (p_), (len_)); (dst_).p = w; \
	(dst_).len = (len_); w += (len_); } while (0)
	for (i = 0; i < n; i++) {
		PUT(b->headers[i].name, h[i].name.p, h[i].name.len);
		PUT(b->headers[i].value, h[i].value.p, h[i].value.len);
	}
	if (rq) {
		b->rq = *rq;
		PUT(b->rq.method, rq->method.p, rq->method.len);
		PUT(b->rq.target, rq->target.p, rq->target.len);
		PUT(b->rq.host, rq->host.p, rq->host.len);
		b->rq.headers = b->headers;
		b->rq.nheaders = n;
	}
	if (reason.len)
		PUT(b->reason, reason.p, reason.len);
#undef PUT
	b->body = w;
	if (blen)
		memcpy(w, body, blen);
	b->blen = blen;
	return b;
}

/**
 * hook_done() - store a hook result for the next run
 * @px:		flow
 * @b:		result (NULL: out of memory)
 * @want:	the state the result belongs to
 *
 * Return: 0, -EINVAL when no such hook runs, or -ENOMEM.
 */
static int hook_done(struct proxy *px, struct hook_blob *b, int want)
{
	if (px->state != want || !px->x.hook_pending || px->x.done) {
		free(b);
		return -EINVAL;
	}
	if (!b) {
		b = blob_new(HOOK_FAIL, NULL, sl("out of memory"), NULL, 0, NULL, 0);
		if (!b)
			return -ENOMEM;
	}
	px->x.hook_pending = false;
	px->x.done = b;
	px_defer(px);
	return 0;
}

/**
 * proxy_hook_forward() - on_request let the request go (maybe changed)
 * @px:		flow in HOOK_REQ
 * @rq:		the request to send (method, target, host, port, fields)
 * @body:	replacement body when @body_set
 * @blen:	its length
 * @body_set:	replace the body
 *
 * Everything is copied; the flow continues from the loop.
 *
 * Return: 0, or -EINVAL when no request hook is pending.
 */
int proxy_hook_forward(struct proxy *px, const struct proxy_request *rq,
		       const char *body, size_t blen, bool body_set)
{
	struct http1_slice none = { NULL, 0 };
	struct hook_blob *b = blob_new(HOOK_FORWARD, rq, none, rq->headers, rq->nheaders,
				       body, blen);

	if (b)
		b->body_set = body_set;
	return hook_done(px, b, PX_HOOK_REQ);
}

/**
 * proxy_hook_respond() - on_request answers itself (or denies)
 * @px:		flow in HOOK_REQ
 * @deny:	a denial (audit decision "deny") rather than an answer
 * @status:	status, 200..599
 * @h:		fields
 * @n:		their number
 * @body:	body
 * @blen:	its length
 *
 * Return: 0, or -EINVAL.
 */
int proxy_hook_respond(struct proxy *px, bool deny, int status,
		       const struct http1_header *h, size_t n,
		       const char *body, size_t blen)
{
	struct http1_slice none = { NULL, 0 };
	struct hook_blob *b;

	if (status < 200 || status > 599 || status == 204 || status == 304)
		return -EINVAL;
	b = blob_new(deny ? HOOK_DENY : HOOK_RESPOND, NULL, none, h, n, body, blen);
	if (b)
		b->status = status;
	return hook_done(px, b, PX_HOOK_REQ);
}

/**
 * proxy_hook_response() - on_response finished (maybe changed the response)
 * @px:		flow in HOOK_RES
 * @rs:		status, reason and fields to send
 * @body:	replacement body when @body_set
 * @blen:	its length
 * @body_set:	replace the body
 *
 * Return: 0, or -EINVAL.
 */
int proxy_hook_response(struct proxy *px, const struct proxy_response *rs,
			const char *body, size_t blen, bool body_set)
{
	struct hook_blob *b;

	if (rs->status < 200 || rs->status > 599)
		return -EINVAL;
	b = blob_new(HOOK_RESPONSE, NULL, rs->reason, rs->headers, rs->nheaders, body, blen);
	if (b) {
		b->status = rs->status;
		b->body_set = body_set;
	}
	return hook_done(px, b, PX_HOOK_RES);
}

/**
 * proxy_hook_fail() - a hook raised: fail the request closed (502)
 * @px:		flow with a hook pending
 * @why:	message (copied)
 */
void proxy_hook_fail(struct proxy *px, const char *why)
{
	struct hook_blob *b = blob_new(HOOK_FAIL, NULL, sl(why), NULL, 0, NULL, 0);

	hook_done(px, b, px->state);
}

/**
 * proxy_hook_body() - a hook wants the body (request or response)
 * @px:		flow with a hook pending
 *
 * ops.body follows once the body is buffered (or cannot be).
 *
 * Return: 0, -EINVAL without a pending hook, -EBUSY when already asked.
 */
int proxy_hook_body(struct proxy *px)
{
	struct exch *x = &px->x;

	if (!x->hook_pending || x->done)
		return -EINVAL;
	if (px->state == PX_HOOK_REQ) {
		if (x->want_body)
			return -EBUSY;
		x->want_body = true;
	} else if (px->state == PX_HOOK_RES) {
		if (x->want_rbody)
			return -EBUSY;
		x->want_rbody = true;
	} else {
		return -EINVAL;
	}
	px_defer(px);
	return 0;
}

/* ---- hooks: bodies ---- */

/**
 * body_ready() - tell the hook about its body
 * @px:		flow
 * @b:		buffer
 * @err:	NULL, or why there is none
 */
static void body_ready(struct proxy *px, struct growbuf *b, const char *err)
{
	if (px->x.hook_pending && px->ctx->ops->body)
		px->ctx->ops->body(px->ctx->ud, px, err ? NULL : b->p, err ? 0 : b->len, err);
}

/**
 * px_buffer_request_body() - collect the request body for on_request
 * @px:		flow (HOOK_REQ, want_body)
 *
 * Return: true when something moved.
 */
bool px_buffer_request_body(struct proxy *px)
{
	struct exch *x = &px->x;
	size_t used, dlen;
	const char *data;
	bool moved = false;
	int rc;

	if (x->body_done)
		return false;
	if (x->expect && !x->continue_sent && x->rb != RB_NONE) {
		px_out_room(px);
		px_out_put(px, CONTINUE_100, sizeof(CONTINUE_100) - 1);
		x->continue_sent = true;
		moved = true;
	}
	while (px->in_off < px->in_len && (x->rb == RB_LENGTH || x->rb == RB_CHUNKED)) {
		rc = px_body_piece(px, PROXY_IN_MAX, &used, &data, &dlen);
		if (rc < 0) {
			px_set_reason(px, "malformed chunked request body: %s", x->rdec.err);
			body_ready(px, &x->mem, "malformed body");
			px_error(px, 400, NULL);
			return true;
		}
		if (dlen && px_gb_reserve(&x->mem, dlen, PROXY_HOOK_BODY_MAX) < 0) {
			body_ready(px, &x->mem, "body too large");
			px_error(px, 413, "the body is larger than a hook may buffer");
			return true;
		}
		if (dlen)
			memcpy(x->mem.p + x->mem.len, data, dlen);
		x->mem.len += dlen;
		px_body_taken(px, used, dlen);
		moved = true;
		if (rc == 1) {
			x->rb = RB_NONE;	/* nothing left on the wire */
			break;
		}
	}
	if (x->rb == RB_NONE) {
		x->body_done = true;
		body_ready(px, &x->mem, NULL);
		moved = true;
	}
	return moved;
}

/**
 * px_buffer_response_body() - collect the response body for on_response
 * @px:		flow (HOOK_RES, want_rbody)
 *
 * Return: true when something moved.
 */
bool px_buffer_response_body(struct proxy *px)
{
	struct exch *x = &px->x;
	bool moved = false;

	while (!x->rbody_done) {
		if (!px_stage_a(px))
			break;
		if (px->state == PX_DONE)
			return true;
		if (px->plen && px_gb_reserve(&x->rmem, px->plen, PROXY_HOOK_BODY_MAX) < 0) {
			body_ready(px, &x->rmem, "body too large");
			px_error(px, 502, "the response body is larger than a hook may buffer");
			return true;
		}
		if (px->plen)
			memcpy(x->rmem.p + x->rmem.len, px->pbuf, px->plen);
		x->rmem.len += px->plen;
		px->poff = px->plen = 0;
		moved = true;
		if (x->src_end) {
			x->rbody_done = true;
			body_ready(px, &x->rmem, NULL);
		}
	}
	if (!x->rbody_done && (x->up_eof || x->up_err) && x->src != SRC_CLOSE) {
		body_ready(px, &x->rmem, "the server closed early");
		px_error(px, 502, "the server closed before the end of the body");
		return true;
	}
	return moved;
}

/**
 * set_rmem() - make @body the response body stage A reads (copied)
 * @px:		flow
 * @body:	bytes
 * @len:	count
 *
 * Return: 0, or -ENOMEM / -E2BIG.
 */
static int set_rmem(struct proxy *px, const char *body, size_t len)
{
	struct exch *x = &px->x;
	int rc;

	px_gb_free(&x->rmem);
	if (len && (rc = px_gb_reserve(&x->rmem, len, PROXY_HOOK_BODY_MAX)) < 0)
		return rc;
	if (len)
		memcpy(x->rmem.p, body, len);
	x->rmem.len = len;
	return 0;
}

/* ---- hooks: applying results ---- */

/**
 * hook_answers() - on_request answered (respond or deny): send it
 * @px:		flow (HOOK_REQ)
 * @b:		the answer (owned by x.redit from here)
 */
static void hook_answers(struct proxy *px, struct hook_blob *b)
{
	struct exch *x = &px->x;
	struct http1_header f[HTTP1_MAX_HEADERS];
	int src = b->blen ? SRC_MEM : SRC_NONE;
	size_t n;

	x->redit = b;
	x->decision = b->kind == HOOK_DENY ? "deny" : "respond";
	if (b->kind == HOOK_DENY)
		px_set_reason(px, "denied by the request hook");
	if (x->rb == RB_LENGTH || x->rb == RB_CHUNKED)
		x->req.keep_alive = false;	/* body left unread: close after */
	x->rb = RB_DONE;
	px->state = PX_EXCHANGE;
	n = px_response_fields(b->headers, b->n, f, NULL);
	if (set_rmem(px, b->body, b->blen) < 0 ||
	    px_emit_head(px, b->status, sl(px_status_text(b->status)), f, n, src, b->blen, NULL) < 0)
		px_error(px, 502, NULL);
}

/**
 * px_apply_request_hook() - act on on_request's result
 * @px:		flow (HOOK_REQ, x.done set)
 */
void px_apply_request_hook(struct proxy *px)
{
	struct exch *x = &px->x;
	struct hook_blob *b = x->done;
	const char *err = NULL;

	x->done = NULL;
	if (b->kind == HOOK_FAIL) {
		px_set_reason(px, "request hook failed: %.*s", (int)b->reason.len, b->reason.p);
		free(b);
		px_error(px, 502, NULL);
		return;
	}
	if (b->kind == HOOK_RESPOND || b->kind == HOOK_DENY) {
		hook_answers(px, b);
		return;
	}
	x->edit = b;			/* forward: where it goes may have changed */
	x->view = b->rq;
	px_collect_fwd(px, b->rq.headers, b->rq.nheaders);
	if (hostpat_host_parse(b->rq.host.p, b->rq.host.len, &x->host, &err) < 0 ||
	    b->rq.port == 0 || b->rq.port > 65535) {
		px_set_reason(px, "the request hook set an invalid host or port");
		px_error(px, 502, NULL);
		return;
	}
	x->port = b->rq.port;
	x->view.host = sl(x->host.name);
	if (!px_check_host(px)) {
		px_error(px, 403, NULL);
		return;
	}
	if (b->body_set) {
		if (x->rb == RB_LENGTH || x->rb == RB_CHUNKED)
			x->req.keep_alive = false;	/* body left unread: close after */
		px_gb_free(&x->mem);
		if (b->blen && px_gb_reserve(&x->mem, b->blen, PROXY_HOOK_BODY_MAX) < 0) {
			px_error(px, 502, "the hook's body is too large");
			return;
		}
		if (b->blen)
			memcpy(x->mem.p, b->body, b->blen);
		x->mem.len = b->blen;
		x->body_done = true;
	}
	if (x->body_done)
		x->rb = x->mem.len ? RB_MEM : RB_NONE;
	if (x->websocket && x->rb != RB_NONE) {
		px_error(px, 502, "a websocket handshake cannot carry a body");
		return;
	}
	px_forward(px);
}

/**
 * px_apply_response_hook() - act on on_response's result
 * @px:		flow (HOOK_RES, x.done set)
 */
void px_apply_response_hook(struct proxy *px)
{
	struct exch *x = &px->x;
	struct hook_blob *b = x->done;
	bool own_body = b->body_set || x->rbody_done;
	struct http1_header f[HTTP1_MAX_HEADERS];
	uint64_t blen;
	size_t n;
	int src;

	x->done = NULL;
	if (b->kind == HOOK_FAIL) {
		px_set_reason(px, "response hook failed: %.*s", (int)b->reason.len, b->reason.p);
		free(b);
		px_error(px, 502, NULL);
		return;
	}
	x->redit = b;
	px->state = PX_EXCHANGE;
	if (b->body_set) {
		if (!x->rbody_done && x->src != SRC_NONE)
			x->up_dirty = true;	/* upstream body left unread */
		if (set_rmem(px, b->body, b->blen) < 0) {
			px_error(px, 502, "the hook's body is too large");
			return;
		}
	}
	if (own_body) {
		x->rmem.off = 0;
		src = x->rmem.len ? SRC_MEM : SRC_NONE;
		blen = x->rmem.len;
	} else {
		src = x->src;		/* stream the upstream body as it comes */
		blen = x->res.content_length;
	}
	n = px_response_fields(b->headers, b->n, f, NULL);
	if (px_emit_head(px, b->status, b->reason, f, n, src, blen, NULL) < 0)
		px_error(px, 502, NULL);
}
