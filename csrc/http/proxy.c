/* SPDX-License-Identifier: MIT */
/* proxy.c - per-flow HTTP/1.1 mediation between a guest TCP flow and upstream */

/*
 * Theory of Operation
 *
 * One struct proxy serves one guest TCP connection that the classifier
 * found to start with an HTTP/1.x request line. The guest may send any
 * number of requests on it (keep-alive) and may pipeline them; we serve
 * them one at a time, in order, each over an upstream connection of its
 * own or one reused from the VM's pool (csrc/http/upstream.c).
 *
 * States (px->state):
 *
 *   IDLE      reading the next request head from the guest (parse in
 *             http1.c). A bad head is answered with its 4xx/5xx and the
 *             connection closed. A good one goes through the checks:
 *             Host must name what the guest dialled (the synthetic DNS
 *             name of the destination address, or that address itself,
 *             and the same port; else 421), the allowlist (else 403);
 *   HOOK_REQ  on_request runs in Lua; the flow is paused (no guest reads)
 *             unless the hook asked for the body, which is then buffered
 *             up to PROXY_HOOK_BODY_MAX;
 *   BODY      a body of at most PROXY_FILL_BODY_MAX that secrets may be
 *             filled into is buffered first (see Secrets in proxy_request.c);
 *   CONNECT   the request head for upstream is built (hop-by-hop fields
 *             dropped, secrets substituted toward their hosts only) and
 *             the upstream connection resolves and connects; every
 *             address is range-checked there;
 *   EXCHANGE  request head sent; the request body streams from the guest
 *             (or from the hook's buffer), the response streams back;
 *   HOOK_RES  on_response runs; upstream reads are paused unless the
 *             hook asked for the body;
 *   TUNNEL    a websocket handshake got 101: raw bytes both ways;
 *   CLOSING   a last response is queued; FIN once it is flushed;
 *   DONE      FIN sent or connection reset; waiting for TCP_EV_CLOSED.
 *
 * After an exchange the flow returns to IDLE when both sides allow it
 * (request keep-alive, response framed, request body fully read); the
 * upstream connection goes back to the pool when its response was framed
 * and it asked for nothing else.
 *
 * Buffers (all bounded, sizes in proxy.h):
 *   in    PROXY_IN_MAX guest bytes: the head being parsed, then body bytes
 *         and pipelined requests. Guest reads stop when it is full, which
 *         closes the TCP window: a slow upstream throttles the guest.
 *         Body bytes leave only as fast as upstream_writable() allows.
 *   rbuf  PROXY_RBUF_MAX upstream bytes: the response head, then body.
 *         Upstream reads stop while it is full.
 *   pbuf  PROXY_PIECE plain body bytes: stage A decodes the upstream
 *         framing (length, chunked, until-close, or a hook's buffer) into
 *         it; stage B masks secret values (secrets.c's streaming masker)
 *         and re-frames toward the guest into out.
 *   out   PROXY_OUT_MAX bytes staged toward the guest, handed to
 *         stream_write(); what the stream does not take waits for
 *         STREAM_WRITABLE. Stage B only runs while out has room, so a slow
 *         guest stops upstream reads, and the guest's window is honoured.
 *
 * The rest of the mediation lives beside this file, each part with its
 * notes at its top:
 *   proxy_request.c   the request head's checks (px_begin()), the head
 *                     for upstream, secrets filled in (Secrets), the
 *                     request body toward upstream;
 *   proxy_response.c  the response toward the guest: the head, stages A
 *                     and B, masking and framing; the websocket tunnel;
 *   proxy_hook.c      the hook bridge (Hooks) and deferred runs;
 *   proxy_int.h       struct proxy, struct exch and what the files share.
 * This file holds the flow's lifetime, guest input, the state machine
 * (px_step()), timers, the upstream callbacks and the public interface.
 *
 * Re-entrancy: stream_abort() reports STREAM_CLOSED synchronously, and
 * embedder callbacks may call back in, so every entry point runs the flow
 * through px_run(), which does not nest (a nested call only asks for one
 * more pass) and frees a dead flow only when the outermost call ends.
 *
 * Timers (one uv_timer per flow): PROXY_HEAD_MS for an incomplete head
 * (408), PROXY_KEEPALIVE_MS idle between requests, PROXY_HEADER_MS for
 * the response head once the request is sent (504), PROXY_IDLE_MS without
 * progress in an exchange, PROXY_TUNNEL_IDLE_MS in a tunnel. Hooks have
 * no deadline: a hook may wait for a human. Connect time is upstream.c's.
 *
 * Errors fail closed: before the response head went to the guest, a
 * failure becomes a short text/plain error response and the connection
 * closes; after it, the guest connection is reset.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/proxy_int.h"

static void on_stream_event(void *ud, enum stream_event ev);
static const struct upstream_ops px_upstream_ops;

/* ---- small helpers ---- */

/**
 * px_set_reason() - a formatted audit/denial reason
 * @px:		flow
 * @fmt:	printf format
 */
void px_set_reason(struct proxy *px, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(px->x.reason_buf, sizeof(px->x.reason_buf), fmt, ap);
	va_end(ap);
	px->x.reason = px->x.reason_buf;
}

/**
 * px_gb_reserve() - make room for @n more bytes in a growbuf
 * @b:		buffer
 * @n:		bytes
 * @max:	cap on the total
 *
 * Return: 0, -E2BIG past @max, or -ENOMEM.
 */
int px_gb_reserve(struct growbuf *b, size_t n, size_t max)
{
	size_t want;
	char *p;

	if (n > max - b->len)
		return -E2BIG;
	if (b->len + n <= b->cap)
		return 0;
	want = b->cap ? b->cap : 16 * 1024;
	while (want < b->len + n)
		want *= 2;
	if (want > max)
		want = max;
	p = realloc(b->p, want);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = want;
	return 0;
}

/**
 * px_gb_free() - release a growbuf
 * @b:		buffer
 */
void px_gb_free(struct growbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/**
 * px_buffers_get() - allocate the exchange buffers on first use
 * @px:		flow
 *
 * Return: 0, or -ENOMEM.
 */
int px_buffers_get(struct proxy *px)
{
	if (px->out)
		return 0;
	px->out = malloc(PROXY_OUT_MAX + PROXY_OUT_RESERVE);
	px->rbuf = malloc(PROXY_RBUF_MAX);
	px->pbuf = malloc(PROXY_PIECE);
	px->tmp = malloc(PROXY_PIECE);
	if (px->out && px->rbuf && px->pbuf && px->tmp)
		return 0;
	free(px->out);
	free(px->rbuf);
	free(px->pbuf);
	free(px->tmp);
	px->out = px->rbuf = px->pbuf = px->tmp = NULL;
	return -ENOMEM;
}

/**
 * buffers_free() - free the exchange buffers and what they held
 * @px:		flow
 */
static void buffers_free(struct proxy *px)
{
	free(px->out);
	free(px->rbuf);
	free(px->pbuf);
	free(px->tmp);
	px->out = px->rbuf = px->pbuf = px->tmp = NULL;
	px->ooff = px->olen = px->roff = px->rlen = px->poff = px->plen = 0;
}

/**
 * buffers_put() - free the exchange buffers when nothing is staged
 * @px:		flow (between exchanges)
 */
static void buffers_put(struct proxy *px)
{
	if (px->out && px->olen == px->ooff && px->rlen == px->roff)
		buffers_free(px);
}

/* ---- audit ---- */

/**
 * px_audit() - report the current exchange
 * @px:		flow
 */
void px_audit(struct proxy *px)
{
	struct exch *x = &px->x;
	char method[32], path[PROXY_TEXT_MAX + 1];
	struct proxy_event ev;
	size_t n;

	memset(&ev, 0, sizeof(ev));
	ev.flow = px->flow;
	if (px->s) {
		ev.guest_ip = px->s->guest_ip;
		ev.dst_ip = px->s->dst_ip;
		ev.guest_port = px->s->guest_port;
		ev.dst_port = px->s->dst_port;
	}
	ev.host = x->host.name;
	ev.port = x->port;
	n = x->view.method.len < sizeof(method) - 1 ? x->view.method.len : sizeof(method) - 1;
	memcpy(method, x->view.method.p ? x->view.method.p : "", n);
	method[n] = '\0';
	n = x->view.target.len < PROXY_TEXT_MAX ? x->view.target.len : PROXY_TEXT_MAX;
	memcpy(path, x->view.target.p ? x->view.target.p : "", n);
	path[n] = '\0';
	ev.method = method;
	ev.path = path;
	ev.status = x->status;
	ev.bytes_in = x->bytes_in;
	ev.bytes_out = x->bytes_out;
	ev.duration_ms = (double)(uv_hrtime() - x->start_ns) / 1e6;
	ev.decision = x->decision ? x->decision : "allow";
	ev.rule = x->rule >= 0 ? x->rule_text : NULL;
	ev.reason = x->reason;
	ev.upstream = x->upstream[0] ? x->upstream : NULL;
	ev.reused = x->reused;
	ev.secrets = x->secrets;
	ev.violation = x->violation >= 0 ? px->ctx->policy->secrets[x->violation].name : NULL;
	ev.masked = x->masker ? (unsigned)x->masker->count : 0;
	ev.websocket = x->websocket && px->state == PX_TUNNEL;
	ev.tls = px->tls;
	if (px->ctx->ops->event)
		px->ctx->ops->event(px->ctx->ud, &ev);
}

/* ---- exchange lifetime ---- */

/**
 * px_exch_clear() - free what an exchange holds and reset it
 * @px:		flow
 */
void px_exch_clear(struct proxy *px)
{
	struct exch *x = &px->x;

	if (x->hook_pending && px->ctx->ops->cancel)
		px->ctx->ops->cancel(px->ctx->ud, px);
	free(x->head);
	free(x->edit);
	free(x->done);
	free(x->redit);
	free(x->uhead);
	free(x->rhead);
	free(x->masker);
	free(x->filler);
	free(x->fbuf);
	px_gb_free(&x->mem);
	px_gb_free(&x->rmem);
	while (x->necho > 0) {
		struct secret *e = &x->echo[--x->necho];

		explicit_bzero(e->value, e->value_len);
		free(e->value);
	}
	if (x->mask_owned)
		free(x->mask);
	memset(x, 0, sizeof(*x));
	x->rule = -1;
	x->violation = -1;
	px->active = false;
}

/**
 * px_up_drop() - let go of the upstream connection
 * @px:		flow
 * @reuse:	it may serve another request
 */
void px_up_drop(struct proxy *px, bool reuse)
{
	if (!px->up)
		return;
	upstream_release(px->up, reuse);
	px->up = NULL;
}

/**
 * px_abort() - reset the guest connection and forget the exchange
 * @px:		flow
 */
void px_abort(struct proxy *px)
{
	struct stream *s = px->s;

	px_up_drop(px, false);
	if (px->active) {
		if (!px->x.decision)
			px->x.decision = "error";
		px_audit(px);
		px_exch_clear(px);
	}
	px->state = PX_DONE;
	if (s)
		stream_abort(s);	/* reports CLOSED: px->s cleared */
}

/**
 * px_error() - answer the current request with an error and close
 * @px:		flow
 * @status:	HTTP status
 * @why:	detail for the body and the audit record (NULL: keep x.reason)
 *
 * After a response head went out, the only honest signal is a reset.
 */
void px_error(struct proxy *px, int status, const char *why)
{
	struct exch *x = &px->x;
	char body[PX_REASON_MAX + 64], head[160], lenv[16];
	struct http1_header h[3] = {
		{ sl("Content-Type"), sl("text/plain") },
		{ sl("Content-Length"), { lenv, 0 } },
		{ sl("Connection"), sl("close") },
	};
	size_t hl;
	int bl;

	if (why && why != x->reason_buf)
		x->reason = why;
	if (!x->decision)
		x->decision = status == 403 || status == 421 ? "deny" : "error";
	if (x->head_sent || !px->s || px_buffers_get(px) < 0) {
		px_abort(px);
		return;
	}
	px_up_drop(px, false);
	x->status = status;
	bl = snprintf(body, sizeof(body), "%d %s: %s\n", status, px_status_text(status),
		      x->reason ? x->reason : "refused");
	if (bl < 0 || (size_t)bl >= sizeof(body))
		bl = (int)sizeof(body) - 1;
	h[1].value.len = (size_t)snprintf(lenv, sizeof(lenv), "%d", bl);
	hl = http1_write_response_head(head, sizeof(head), x->req.minor == 0 && px->active ? 0 : 1,
				       status, sl(px_status_text(status)), h, 3);
	px_out_room(px);
	if (hl > 0 && hl <= sizeof(head) &&
	    hl + (size_t)bl <= PROXY_OUT_MAX + PROXY_OUT_RESERVE - px->olen) {
		px_out_put(px, head, hl);
		px_out_put(px, body, (size_t)bl);
	}
	x->head_sent = true;
	if (!px->active)
		x->start_ns = uv_hrtime();
	px_audit(px);
	px_exch_clear(px);
	px->state = PX_CLOSING;
}

/* ---- guest input ---- */

/**
 * guest_wants_reads() - may the flow take guest bytes now
 * @px:		flow
 *
 * Return: true when reading would be consumed in this state.
 */
static bool guest_wants_reads(const struct proxy *px)
{
	switch (px->state) {
	case PX_IDLE:
	case PX_EXCHANGE:
	case PX_TUNNEL:
	case PX_CONNECT:
	case PX_BODY:
		return true;
	case PX_HOOK_REQ:
		return px->x.want_body;
	default:
		return false;
	}
}

/**
 * px_read_guest() - take what the guest sent, as far as in has room
 * @px:		flow
 *
 * Return: true when bytes were read.
 */
static bool px_read_guest(struct proxy *px)
{
	size_t n;

	if (!px->s || !guest_wants_reads(px))
		return false;
	if (px->in_off == px->in_len) {
		px->in_off = px->in_len = 0;
	} else if (px->in_off > 0 && px->in_len == PROXY_IN_MAX) {
		memmove(px->in, px->in + px->in_off, px->in_len - px->in_off);
		px->in_len -= px->in_off;
		px->in_off = 0;
	}
	if (px->in_len == PROXY_IN_MAX)
		return false;
	n = stream_read(px->s, (uint8_t *)px->in + px->in_len,
		     PROXY_IN_MAX - px->in_len);
	px->in_len += n;
	if (n)
		px->last_ms = now_ms(px);
	return n > 0;
}

/**
 * px_idle() - parse the next request head
 * @px:		flow (IDLE)
 *
 * Return: true when something changed.
 */
static bool px_idle(struct proxy *px)
{
	struct http1_request *rq = &px->x.req;
	size_t avail = px->in_len - px->in_off;
	int rc;

	if (avail == 0) {
		if (px->guest_fin && px->olen == px->ooff) {
			px->state = PX_CLOSING;
			return true;
		}
		buffers_put(px);
		return false;
	}
	if (!px->head_ms) {
		px->head_ms = now_ms(px);
		px->head_ns = uv_hrtime();
	}
	if (px->in_off > 0 && px->parse_last == 0) {	/* parse from the buffer start */
		memmove(px->in, px->in + px->in_off, avail);
		px->in_len = avail;
		px->in_off = 0;
	}
	rc = http1_parse_request(px->in + px->in_off, avail, px->parse_last, rq);
	if (rc == 0 && avail < PROXY_IN_MAX && !px->guest_fin) {
		px->parse_last = avail;
		return false;
	}
	px->parse_last = 0;
	if (rc <= 0) {
		px->active = true;
		px->x.start_ns = px->head_ns;
		px->x.bytes_in = avail;
		if (rc < 0)
			px_error(px, rq->error_status, rq->err);
		else if (avail >= PROXY_IN_MAX)
			px_error(px, 431, "request head larger than 64 KiB");
		else
			px_error(px, 400, "the connection ended inside a request head");
		return true;
	}
	px_begin(px);
	return true;
}

/* ---- connecting upstream ---- */

/**
 * px_connect() - open the upstream connection for the current request
 * @px:		flow (head built)
 */
void px_connect(struct proxy *px)
{
	const char *why = NULL;
	int err = 0;

	px->state = PX_CONNECT;
	px->up = upstream_open(&px->ctx->pool, &px->x.host, px->x.port, px->tls,
			       &px_upstream_ops, px, &err, &why);
	if (!px->up) {
		if (err == -EACCES) {
			px_set_reason(px, "%s resolves only to blocked addresses (%s)",
				      px->x.host.name, why);
			px_error(px, 403, NULL);
		} else {
			px_error(px, 502, why);
		}
		return;
	}
	if (upstream_connected(px->up))
		px_up_ready(px);
}

/**
 * connect_result() - act on how the upstream connection attempt ended
 * @px:		flow (CONNECT, x.conn_done)
 */
static void connect_result(struct proxy *px)
{
	struct exch *x = &px->x;

	x->conn_done = false;
	if (x->conn_err == 0) {
		px_up_ready(px);
		return;
	}
	upstream_close(px->up);
	px->up = NULL;
	if (x->conn_err == -EACCES) {
		px_set_reason(px, "%s resolves only to blocked addresses (%s)",
			      x->host.name, x->conn_why);
		px_error(px, 403, NULL);
	} else {
		px_set_reason(px, "%s:%u: %s", x->host.name, x->port, x->conn_why);
		px_error(px, 502, NULL);
	}
}

/**
 * retry_stale() - a reused connection closed before answering: try anew
 * @px:		flow (EXCHANGE, RS_HEAD, upstream ended)
 *
 * Only when the request can be sent again exactly: no body, or a body
 * held in memory (a hook's).
 *
 * Return: true when retried.
 */
static bool retry_stale(struct proxy *px)
{
	struct exch *x = &px->x;

	if (!x->reused || x->retried || !x->uhead || px->rlen != px->roff ||
	    x->rb != RB_DONE || (x->req.body != HTTP1_BODY_NONE && !x->body_done))
		return false;
	px_up_drop(px, false);
	x->retried = true;
	x->up_eof = false;
	x->up_err = 0;
	x->mem.off = 0;
	x->rb = x->mem.len ? RB_MEM : RB_NONE;
	px_connect(px);
	return true;
}

/* ---- the state machine ---- */

/**
 * on_timeout() - a deadline passed: act on it
 * @px:		flow
 */
static void on_timeout(struct proxy *px)
{
	px->timed_out = false;
	if (px->state == PX_IDLE && px->in_len > px->in_off)
		px_error(px, 408, "the request head did not arrive in time");
	else if (px->state == PX_IDLE)
		px->state = PX_CLOSING;		/* idle keep-alive: close quietly */
	else if (px->state == PX_EXCHANGE && px->x.rs == RS_HEAD && px->x.rb == RB_DONE)
		px_error(px, 504, "the server sent no response head in time");
	else if (px->state == PX_EXCHANGE)
		px_error(px, 504, "no progress in time");
	else if (px->state == PX_BODY)
		px_error(px, 408, "the request body did not arrive in time");
	else
		px_abort(px);
}

/**
 * body_step() - buffer a body for secrets, then forward the request
 * @px:		flow (BODY)
 *
 * Return: true when something moved.
 */
static bool body_step(struct proxy *px)
{
	struct exch *x = &px->x;
	bool moved = px_buffer_request_body(px);

	if (px->state != PX_BODY)
		return true;			/* it failed the request */
	if (x->body_done) {
		x->rb = x->mem.len ? RB_MEM : RB_NONE;
		px_forward(px);
		return true;
	}
	if (px->guest_fin && px->in_off == px->in_len && !stream_readable(px->s)) {
		px_error(px, 400, "the request body ended early");
		return true;
	}
	return moved;
}

/**
 * px_exchange_end() - the response is complete toward the guest
 * @px:		flow
 */
static void px_exchange_end(struct proxy *px)
{
	struct exch *x = &px->x;
	bool up_clean = x->rb == RB_DONE && x->res.keep_alive && !x->up_eof &&
			!x->up_err && x->src != SRC_CLOSE && px->rlen == px->roff &&
			x->rs == RS_DONE && !x->redit && !x->up_dirty;
	bool keep = !x->g_close && x->rb == RB_DONE && !x->websocket;

	px_up_drop(px, up_clean);
	px->rlen = px->roff = 0;
	px_audit(px);
	px_exch_clear(px);
	px->state = keep ? PX_IDLE : PX_CLOSING;
	px->last_ms = now_ms(px);
}

/**
 * exchange_step() - progress of an exchange
 * @px:		flow (EXCHANGE)
 *
 * Return: true when something moved.
 */
static bool exchange_step(struct proxy *px)
{
	struct exch *x = &px->x;
	bool moved = false;

	if (x->rb != RB_DONE && x->rb != RB_NONE)
		moved = px_request_body(px);
	if (px->state == PX_EXCHANGE && px->guest_fin && x->rb != RB_DONE &&
	    x->rb != RB_MEM && px->in_off == px->in_len && !stream_readable(px->s)) {
		px_error(px, 400, "the request body ended early");
		return true;
	}
	if (px->state == PX_EXCHANGE && x->rs == RS_HEAD)
		moved = px_response_head(px) || moved;
	if (px->state == PX_EXCHANGE && x->rs == RS_BODY)
		moved = px_response_body(px) || moved;
	if (px->state != PX_EXCHANGE)
		return true;
	if (x->rs == RS_DONE) {
		if (x->rb != RB_DONE) {		/* answered before the body was sent */
			x->up_dirty = true;
			x->g_close = true;
			x->rb = RB_DONE;
		}
		px_exchange_end(px);
		return true;
	}
	if (x->rs == RS_HEAD && (x->up_eof || x->up_err) && px->rlen == px->roff) {
		if (!retry_stale(px))
			px_error(px, 502, "the server closed without a response");
		return true;
	}
	if (x->rs == RS_BODY && !x->src_end && px->rlen == px->roff && px->plen == px->poff &&
	    (x->up_err || (x->up_eof && x->src != SRC_CLOSE && x->src != SRC_MEM))) {
		px_set_reason(px, "the server closed before the end of the body");
		px_abort(px);
		return true;
	}
	return moved;
}

/**
 * px_retire() - a flow that sent its FIN stops counting and holding memory
 * @px:		flow (DONE)
 *
 * The guest connection can take TCP_TIME_WAIT_MS more to close; until
 * then the flow is a small struct that only drains stray guest bytes, so
 * back-to-back connections do not run into PROXY_MAX_FLOWS.
 */
static void px_retire(struct proxy *px)
{
	if (px->retired)
		return;
	px->retired = true;
	px->ctx->nflows--;
	px_up_drop(px, false);
	buffers_free(px);
	free(px->in);
	px->in = NULL;
	px->in_off = px->in_len = 0;
}

/**
 * px_drain() - read and drop what the guest sends after our FIN
 * @px:		flow (DONE)
 *
 * Return: true when bytes were dropped. A reset instead could destroy
 * the response still unread in the guest's socket.
 */
static bool px_drain(struct proxy *px)
{
	uint8_t sink[1024];
	bool moved = false;

	while (px->s && stream_read(px->s, sink, sizeof(sink)))
		moved = true;
	return moved;
}

/**
 * px_step() - one pass of the state machine
 * @px:		flow
 *
 * Return: true when something moved (run another pass).
 */
static bool px_step(struct proxy *px)
{
	struct exch *x = &px->x;
	bool moved;

	if (px->retired)
		return px_drain(px);
	moved = px_flush(px);
	if (px->dead)
		return false;	/* a TLS stream may fail inside a call */
	if (px->timed_out) {
		on_timeout(px);
		return true;
	}
	moved = px_read_guest(px) || moved;
	if (px->dead)
		return false;
	switch (px->state) {
	case PX_IDLE:
		if (px->olen - px->ooff > PROXY_OUT_MAX / 2)
			break;		/* the guest is not reading responses */
		moved = px_idle(px) || moved;
		break;
	case PX_HOOK_REQ:
		if (x->done && px->olen == px->ooff)	/* it may emit a head */
			px_apply_request_hook(px), moved = true;
		else if (x->want_body)
			moved = px_buffer_request_body(px) || moved;
		break;
	case PX_BODY:
		moved = body_step(px) || moved;
		break;
	case PX_CONNECT:
		if (x->conn_done)
			connect_result(px), moved = true;
		break;
	case PX_HOOK_RES:
		if (x->done && px->olen == px->ooff)
			px_apply_response_hook(px), moved = true;
		else if (x->want_rbody)
			moved = px_buffer_response_body(px) || moved;
		break;
	case PX_EXCHANGE:
		moved = exchange_step(px) || moved;
		break;
	case PX_TUNNEL:
		moved = px_tunnel(px) || moved;
		break;
	case PX_CLOSING:
		if (px->olen == px->ooff && px->s) {
			px->state = PX_DONE;
			stream_shutdown(px->s);
			px_retire(px);
			moved = true;
		}
		break;
	default:
		break;
	}
	return moved;
}

/* ---- timers ---- */

/**
 * next_deadline() - when the flow must have made progress
 * @px:		flow
 *
 * Return: loop time in ms, or 0 for none.
 */
static uint64_t next_deadline(const struct proxy *px)
{
	const struct exch *x = &px->x;
	uint64_t d;

	switch (px->state) {
	case PX_IDLE:
		if (px->in_len > px->in_off && px->head_ms)
			return px->head_ms + PROXY_HEAD_MS;
		return px->last_ms + PROXY_KEEPALIVE_MS;
	case PX_EXCHANGE:
		d = px->last_ms + PROXY_IDLE_MS;
		if (x->rs == RS_HEAD && x->rb == RB_DONE && x->req_done_ms + PROXY_HEADER_MS < d)
			d = x->req_done_ms + PROXY_HEADER_MS;
		return d;
	case PX_TUNNEL:
		return px->last_ms + PROXY_TUNNEL_IDLE_MS;
	case PX_BODY:
		return px->last_ms + PROXY_IDLE_MS;
	case PX_CLOSING:
		return px->last_ms + PROXY_IDLE_MS;
	default:
		return 0;
	}
}

/**
 * on_px_timer() - the flow's timer fired
 * @t:		timer
 */
static void on_px_timer(uv_timer_t *t)
{
	struct proxy *px = t->data;
	uint64_t d = next_deadline(px);

	px->deadline = 0;
	if (d && d <= now_ms(px))
		px->timed_out = true;
	px_run(px);
}

/**
 * px_arm() - set the timer for the next deadline
 * @px:		flow
 */
static void px_arm(struct proxy *px)
{
	uint64_t d = next_deadline(px), now = now_ms(px);

	if (d == px->deadline)
		return;
	px->deadline = d;
	if (!d)
		uv_timer_stop(&px->timer);
	else
		uv_timer_start(&px->timer, on_px_timer, d > now ? d - now : 0, 0);
}

/* ---- lifetime and the run loop ---- */

/**
 * on_px_closed() - the flow's timer closed: free it
 * @h:		timer
 */
static void on_px_closed(uv_handle_t *h)
{
	struct proxy *px = h->data;

	free(px->in);
	free(px);
}

/**
 * px_free() - release a dead flow
 * @px:		flow (not running)
 */
static void px_free(struct proxy *px)
{
	struct proxy **pp;

	if (px->queued)
		for (pp = &px->ctx->ready; *pp; pp = &(*pp)->rnext)
			if (*pp == px) {
				*pp = px->rnext;
				break;
			}
	*px->pprev = px->next;
	if (px->next)
		px->next->pprev = px->pprev;
	if (!px->retired)
		px->ctx->nflows--;
	px_up_drop(px, false);
	if (px->active)
		px_exch_clear(px);
	buffers_free(px);
	uv_close((uv_handle_t *)&px->timer, on_px_closed);
}

/**
 * up_reads() - read upstream only while there is room for it
 * @px:		flow
 */
static void up_reads(struct proxy *px)
{
	const struct exch *x = &px->x;
	bool want;

	if (!px->up || !upstream_connected(px->up))
		return;
	want = px->rbuf && (px->rlen < PROXY_RBUF_MAX || px->roff > 0) &&
	       !x->up_eof && !x->up_err &&
	       ((px->state == PX_EXCHANGE && (x->rs == RS_HEAD || x->rs == RS_BODY)) ||
		px->state == PX_TUNNEL || (px->state == PX_HOOK_RES && x->want_rbody));
	upstream_read(px->up, want);
}

/**
 * px_run() - make every possible progress; the only driver of a flow
 * @px:		flow
 */
void px_run(struct proxy *px)
{
	int passes = 0;

	if (px->running) {
		px->rerun = true;
		return;
	}
	px->running = true;
	do {
		px->rerun = false;
		while (!px->dead && px_step(px) && ++passes < 1000)
			;
	} while (px->rerun && !px->dead && passes < 1000);
	if (passes >= 1000)
		px_defer(px);		/* yield to the loop; continue later */
	px->running = false;
	if (px->dead) {
		px_free(px);
		return;
	}
	up_reads(px);
	px_arm(px);
	if (px->ctx->ops->kick)
		px->ctx->ops->kick(px->ctx->ud);
}

/**
 * px_kill() - the guest connection is gone: end the flow
 * @px:		flow
 */
static void px_kill(struct proxy *px)
{
	px->s = NULL;
	if (px->active) {
		if (!px->x.decision)
			px->x.decision = "error";
		if (!px->x.reason)
			px->x.reason = "the guest closed the connection";
		px_audit(px);
		px_exch_clear(px);
	}
	px_up_drop(px, false);
	px->dead = true;
	if (!px->running)
		px_free(px);
}

/* ---- upstream callbacks ---- */

/**
 * up_connected() - the upstream connection is up or failed
 * @u:		connection
 * @ud:		flow
 * @err:	0 or -errno
 * @why:	failure text (static)
 */
static void up_connected(struct upstream *u, void *ud, int err, const char *why)
{
	struct proxy *px = ud;

	(void)u;
	px->x.conn_done = true;
	px->x.conn_err = err;
	px->x.conn_why = why;
	px_run(px);
}

/**
 * up_alloc() - room for the next upstream read
 * @u:		connection
 * @ud:		flow
 *
 * Return: the free end of rbuf.
 */
static uv_buf_t up_alloc(struct upstream *u, void *ud)
{
	struct proxy *px = ud;

	(void)u;
	if (!px->rbuf)
		return uv_buf_init(NULL, 0);
	if (px->roff > 0) {
		memmove(px->rbuf, px->rbuf + px->roff, px->rlen - px->roff);
		px->rlen -= px->roff;
		if (px->x.rparse_last > 0)
			px->x.rparse_last = 0;	/* scanning restarts: cheap, rare */
		px->roff = 0;
	}
	return uv_buf_init(px->rbuf + px->rlen, (unsigned)(PROXY_RBUF_MAX - px->rlen));
}

/**
 * up_read() - upstream bytes landed in rbuf, or it ended
 * @u:		connection
 * @ud:		flow
 * @n:		bytes, or UV_EOF / a libuv error
 */
static void up_read(struct upstream *u, void *ud, ssize_t n)
{
	struct proxy *px = ud;

	(void)u;
	if (n > 0) {
		px->rlen += (size_t)n;
		px->last_ms = now_ms(px);
	} else if (n == UV_EOF) {
		px->x.up_eof = true;
	} else {
		px->x.up_err = (int)n;
	}
	px_run(px);
}

/**
 * up_drain() - upstream took queued bytes: more request body may go
 * @u:		connection
 * @ud:		flow
 */
static void up_drain(struct upstream *u, void *ud)
{
	(void)u;
	px_run(ud);
}

static const struct upstream_ops px_upstream_ops = {
	.connected = up_connected,
	.alloc = up_alloc,
	.read = up_read,
	.drain = up_drain,
};

/* ---- interface ---- */

/**
 * proxy_ctx_init() - mediation state for one interface
 * @ctx:	context
 * @loop:	loop
 * @net:	the stack
 * @policy:	policy (a reference is taken)
 * @ops:	embedder callbacks
 * @ud:		their data
 */
void proxy_ctx_init(struct proxy_ctx *ctx, uv_loop_t *loop, struct net *net,
		    struct policy *policy, const struct proxy_ops *ops, void *ud)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->loop = loop;
	ctx->net = net;
	ctx->policy = policy;
	policy_ref(policy);
	ctx->ops = ops;
	ctx->ud = ud;
	upstream_pool_init(&ctx->pool, loop, policy);
	uv_idle_init(loop, &ctx->idle);	/* idle.data is the embedder's */
}

/**
 * proxy_ctx_close() - end every flow (no events), close the pool
 * @ctx:	context
 * @done:	close callback of the idle handle (the context's last);
 *		ctx->idle.data is left to the embedder for it
 *
 * The guest connections themselves are the stack's to free.
 */
void proxy_ctx_close(struct proxy_ctx *ctx, uv_close_cb done)
{
	struct proxy *px;

	ctx->closing = true;
	while ((px = ctx->all)) {
		ctx->all = px->next;
		px->next = NULL;
		px->pprev = &px->next;		/* unlinked: px_free's unlink is a no-op */
		px->s = NULL;
		px->queued = false;
		px->dead = true;
		if (!px->running)
			px_free(px);
	}
	ctx->ready = NULL;
	upstream_pool_close(&ctx->pool);
	policy_unref(ctx->policy);
	ctx->policy = NULL;
	uv_close((uv_handle_t *)&ctx->idle, done);
}

/**
 * head_wait() - how long a flow has waited for a request head
 * @px:		flow (IDLE)
 *
 * Return: the loop time it started waiting (a head under way: its first
 * byte; an idle keep-alive connection: its last activity)
 */
static uint64_t head_wait(const struct proxy *px)
{
	return px->in_len > px->in_off && px->head_ms ? px->head_ms : px->last_ms;
}

/**
 * proxy_room() - make sure a new flow fits under PROXY_MAX_FLOWS
 * @ctx:	mediation state
 *
 * At the bound the flow that has waited longest for a request head (an
 * idle keep-alive connection or a head trickling in: a slowloris) is
 * reset to make room; flows in an exchange are never evicted. So holding
 * many connections open cannot lock other requests out.
 *
 * Return: true when a flow may be added
 */
bool proxy_room(struct proxy_ctx *ctx)
{
	struct proxy *px, *old = NULL;

	if (ctx->closing)
		return false;
	if (ctx->nflows < PROXY_MAX_FLOWS)
		return true;
	/* ctx->all is newest first: "<=" lets the older of a tie win */
	for (px = ctx->all; px; px = px->next)
		if (!px->retired && !px->dead && !px->running && px->state == PX_IDLE &&
		    (!old || head_wait(px) <= head_wait(old)))
			old = px;
	if (ctx->ops->limit)
		ctx->ops->limit(ctx->ud, "http_flows");
	if (!old)
		return false;
	if (old->active)
		old->x.reason = "evicted: the VM is at its HTTP flow bound and this flow waited longest for a request head";
	px_abort(old);
	return ctx->nflows < PROXY_MAX_FLOWS;
}

/**
 * proxy_new() - mediate a guest connection classified as HTTP
 * @ctx:	context
 * @s:		the guest stream (its event callback becomes ours)
 * @flow:	flow id for audit records
 * @first:	bytes already read by the classifier
 * @n:		their number (<= PROXY_IN_MAX)
 *
 * Return: the flow, or NULL with errno EMFILE (PROXY_MAX_FLOWS reached
 * with nothing to evict) or ENOMEM: the caller resets.
 */
struct proxy *proxy_new(struct proxy_ctx *ctx, struct stream *s, uint64_t flow,
			const uint8_t *first, size_t n)
{
	struct proxy *px;

	if (!proxy_room(ctx)) {
		errno = EMFILE;
		return NULL;
	}
	px = calloc(1, sizeof(*px));
	if (!px || n > PROXY_IN_MAX || !(px->in = malloc(PROXY_IN_MAX))) {
		free(px);
		errno = ENOMEM;
		return NULL;
	}
	px->ctx = ctx;
	px->s = s;
	px->tls = s->sni != NULL;
	s->event = on_stream_event;
	s->ud = px;
	px->flow = flow;
	px->x.rule = -1;
	px->x.violation = -1;
	if (n)
		memcpy(px->in, first, n);	/* TLS flows start with none */
	px->in_len = n;
	uv_timer_init(ctx->loop, &px->timer);
	px->timer.data = px;
	px->next = ctx->all;
	px->pprev = &ctx->all;
	if (ctx->all)
		ctx->all->pprev = &px->next;
	ctx->all = px;
	ctx->nflows++;
	px->last_ms = now_ms(px);
	px_defer(px);
	return px;
}

/**
 * on_stream_event() - what the guest side reports
 * @ud:		flow
 * @ev:		event
 */
static void on_stream_event(void *ud, enum stream_event ev)
{
	struct proxy *px = ud;

	switch (ev) {
	case STREAM_FIN:
		px->guest_fin = true;
		break;
	case STREAM_RESET:
	case STREAM_CLOSED:
		px_kill(px);
		return;
	default:
		break;
	}
	px_run(px);
}

/**
 * proxy_set_user() - attach the embedder's pointer
 * @px:		flow
 * @user:	pointer (NULL to clear)
 */
void proxy_set_user(struct proxy *px, void *user)
{
	px->user = user;
}

/**
 * proxy_user() - the embedder's pointer
 * @px:		flow
 *
 * Return: what proxy_set_user() attached, or NULL.
 */
void *proxy_user(const struct proxy *px)
{
	return px->user;
}
