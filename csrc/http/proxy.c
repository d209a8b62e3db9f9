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
 *             filled into is buffered first (see Secrets below);
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
 * Response framing toward the guest: the upstream Content-Length is kept
 * when nothing can change the body's size; with secrets (masking) or an
 * unframed upstream body it is chunked for HTTP/1.1 clients and delimited
 * by close for HTTP/1.0 ones. Upstream chunked bodies are always decoded
 * and re-encoded, so framing the guest sees is ours, never a pass-through.
 *
 * Secrets: placeholders become real values in header values (and inside
 * Basic credentials), in the query for secrets with in_query, and in the
 * body for secrets with in_body, only toward each secret's hosts; toward
 * any other host they refuse the request (403). A body streams through a
 * filler (secrets.c) only when some secret opted in to bodies. A body of
 * known length up to PROXY_FILL_BODY_MAX is buffered and filled before the
 * upstream connection opens (state BODY), so it keeps an exact
 * Content-Length and a refused placeholder sends nothing upstream; so is a
 * hook's buffered body. Longer or chunked bodies stream through the filler
 * and, where a value may be filled in, go upstream chunked. Responses are
 * masked back.
 *
 * Hooks: the embedder's on_request/on_response start a Lua coroutine and
 * return; its result comes back through proxy_hook_*(), which only copy
 * the result into a heap blob and schedule the flow: the flow continues
 * from a libuv idle callback at the top of the loop, never inside the
 * Lua call. With no hooks configured no Lua runs for a request.
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

#include "http/chunked.h"
#include "http/proxy.h"
#include "policy/secrets.h"

#define PX_HEADERS_OUT	(HTTP1_MAX_HEADERS + 4)	/* fields we may add */
#define PX_REASON_MAX	200			/* formatted denial text */
#define PX_ECHO_MAX	4			/* substituted Basic tokens masked back */
#define CONTINUE_100	"HTTP/1.1 100 Continue\r\n\r\n"

enum px_state {
	PX_IDLE,
	PX_HOOK_REQ,
	PX_BODY,
	PX_CONNECT,
	PX_EXCHANGE,
	PX_HOOK_RES,
	PX_TUNNEL,
	PX_CLOSING,
	PX_DONE,
};

/* where request body bytes for upstream come from */
enum rb_kind {
	RB_NONE,	/* no body */
	RB_LENGTH,	/* Content-Length bytes from the guest */
	RB_CHUNKED,	/* chunked from the guest, re-encoded */
	RB_MEM,		/* a buffer (hook), x.mem */
	RB_DONE,	/* all sent */
};

/* response phase */
enum rs_kind {
	RS_NONE,	/* no upstream response expected (hook answered) */
	RS_HEAD,	/* waiting for the head */
	RS_BODY,	/* streaming the body */
	RS_DONE,
};

/* stage A: where plain response body bytes come from */
enum src_kind {
	SRC_NONE,	/* no body */
	SRC_LENGTH,
	SRC_CHUNKED,
	SRC_CLOSE,	/* until upstream EOF */
	SRC_MEM,	/* x.rmem (hook) */
};

/* what a hook handed back */
enum hook_kind {
	HOOK_FORWARD = 1,
	HOOK_RESPOND,
	HOOK_DENY,
	HOOK_RESPONSE,
	HOOK_FAIL,
};

/**
 * struct hook_blob - a hook's result, copied out of Lua into one allocation
 * @kind:	enum hook_kind
 * @status:	status (respond, deny, response)
 * @rq:		request fields (forward); slices into @data
 * @reason:	reason phrase (response) or failure text (fail)
 * @headers:	fields; slices into @data
 * @n:		their number
 * @body:	body bytes, @blen of them
 * @blen:	body length
 * @body_set:	the hook replaced the body
 * @data:	the field array, then every string
 */
struct hook_blob {
	int kind;
	int status;
	struct proxy_request rq;
	struct http1_slice reason;
	struct http1_header *headers;
	size_t n;
	char *body;
	size_t blen;
	bool body_set;
	_Alignas(struct http1_header) char data[];
};

/**
 * struct growbuf - a heap buffer that grows up to a cap
 * @p:		bytes
 * @len:	used
 * @cap:	allocated
 * @off:	read position
 */
struct growbuf {
	char *p;
	size_t len, cap, off;
};

/**
 * struct exch - one request/response exchange
 * @start_ns:	first byte of the head, uv_hrtime() nanoseconds (duration)
 * @head:	copy of the request head; @req's slices point into it
 * @req:	the parsed request head
 * @host:	requested host, normalised
 * @port:	requested port
 * @rule:	allowlist rule index, -1 before the check
 * @rule_text:	its text
 * @fwd:	end-to-end request fields (slices into @head)
 * @nfwd:	their number
 * @view:	the request as forwarded (hooks, audit)
 * @edit:	on_request's result, when it changed the request
 * @done:	a hook result not yet applied
 * @hook_pending: a hook runs (ops.cancel owed if the flow dies)
 * @uhead:	request head for upstream, kept until the response head
 * @uhead_len:	its length
 * @rb:		enum rb_kind
 * @rb_left:	Content-Length bytes still to forward
 * @rdec:	chunked decoder for the request body
 * @mem:	request body buffered for (or replaced by) a hook
 * @want_body:	the request hook asked for the body
 * @body_done:	@mem holds the complete body
 * @expect:	the guest waits for 100 Continue
 * @continue_sent: 100 Continue went out
 * @req_done_ms: when the request was completely sent
 * @websocket:	the request is a websocket handshake
 * @rs:		enum rs_kind
 * @res:	parsed response head (slices into rbuf, then @rhead)
 * @rparse_last: response bytes already scanned
 * @up_eof:	upstream sent EOF
 * @up_err:	upstream failed (libuv error)
 * @rhead:	copy of the response head while on_response runs
 * @rview:	response as hooks see it
 * @redit:	on_response's result
 * @src:	enum src_kind
 * @src_left:	Content-Length bytes still to come
 * @sdec:	chunked decoder for the response body
 * @rmem:	response body buffered for (or replaced by) a hook
 * @want_rbody: the response hook asked for the body
 * @rbody_done:	@rmem holds the complete body
 * @src_end:	stage A has delivered the whole body
 * @filler:	request body secrets (in_body) exist: the body streams
 *		through this filler (placeholders to values, or denied)
 * @fbuf:	filler output (PROXY_PIECE), allocated with @filler
 * @up_chunked: the request body goes upstream chunked (also when the
 *		guest framed it by length but the filler may resize it)
 * @masker:	streaming masker (allocated when @masking)
 * @g_chunked:	guest framing is chunked
 * @g_close:	the guest connection closes after this response
 * @head_sent:	a response head went to the guest (errors now reset)
 * @retried:	a request on a reused connection was retried once
 * @up_dirty:	the upstream connection has unread or unsent bytes
 * @up_shut:	tunnel: FIN sent upstream
 * @conn_err:	connect result not yet acted on (0: none)
 * @conn_why:	its text
 * @status, @decision, @reason: audit
 * @reason_buf:	storage for a formatted @reason
 * @bytes_in, @bytes_out: audit byte counts
 * @secrets:	placeholders substituted
 * @echo:	Basic tokens we substituted (value: the real token sent
 *		upstream; placeholder: the guest's token), masked back in the
 *		response like secret values: a server echoing the header must
 *		not hand the guest the encoded real credentials
 * @necho:	entries of @echo in use
 * @mask:	the secrets the response is masked with (policy + @echo)
 * @nmask:	their number
 * @mask_owned: @mask was allocated for this exchange
 * @upstream:	address connected to
 * @reused:	connection came from the pool
 */
struct exch {
	uint64_t start_ns;
	char *head;
	struct http1_request req;
	struct hostpat_host host;
	unsigned port;
	int rule;
	char rule_text[HOSTPAT_TEXT_MAX + 1];
	struct http1_header fwd[HTTP1_MAX_HEADERS];
	size_t nfwd;
	struct proxy_request view;
	struct hook_blob *edit;
	struct hook_blob *done;
	bool hook_pending;
	char *uhead;
	size_t uhead_len;
	int rb;
	uint64_t rb_left;
	struct chunked_decoder rdec;
	struct growbuf mem;
	bool want_body, body_done;
	bool expect, continue_sent;
	uint64_t req_done_ms;
	bool websocket;
	int rs;
	struct http1_response res;
	size_t rparse_last;
	bool up_eof;
	int up_err;
	char *rhead;
	struct proxy_response rview;
	struct hook_blob *redit;
	int src;
	uint64_t src_left;
	struct chunked_decoder sdec;
	struct growbuf rmem;
	bool want_rbody, rbody_done;
	bool src_end;
	struct secret_stream *filler;
	uint8_t *fbuf;
	bool up_chunked;
	struct secret_stream *masker;
	bool g_chunked, g_close, head_sent, retried;
	bool up_dirty, up_shut;
	int conn_err;
	const char *conn_why;
	bool conn_done;
	int status;
	const char *decision, *reason;
	char reason_buf[PX_REASON_MAX];
	uint64_t bytes_in, bytes_out;
	unsigned secrets;
	struct secret echo[PX_ECHO_MAX];
	size_t necho;
	struct secret *mask;
	size_t nmask;
	bool mask_owned;
	char upstream[IPADDR_STRLEN];
	bool reused;
};

/**
 * struct proxy - one mediated guest connection
 * @ctx:	interface state
 * @s:		the guest stream (TCP, or TLS over it), NULL once it is gone
 * @tls:	the guest spoke TLS: requests are https, upstream is TLS
 * @timer:	deadlines
 * @flow:	flow id
 * @state:	enum px_state
 * @running:	px_run() is on the stack
 * @rerun:	another pass was asked for meanwhile
 * @dead:	to be freed when px_run() unwinds
 * @retired:	FIN sent: no longer counted, buffers freed (px_retire)
 * @queued:	on ctx->ready
 * @rnext:	ready list link
 * @next, @pprev: ctx->all links
 * @deadline:	armed timer deadline, 0 for none
 * @timed_out:	the timer fired; px_step() acts on it
 * @last_ms:	last progress
 * @guest_fin:	the guest sent FIN
 * @in:		guest input (PROXY_IN_MAX)
 * @in_off, @in_len: unconsumed bytes are in[in_off, in_len)
 * @parse_last: head bytes already scanned
 * @head_ms:	first byte of the head being parsed (0: none yet)
 * @head_ns:	the same in uv_hrtime() nanoseconds (durations)
 * @x:		the current exchange (valid while @active)
 * @active:	an exchange is under way
 * @up:		upstream connection, or NULL
 * @rbuf:	upstream input (PROXY_RBUF_MAX), allocated with @out
 * @roff, @rlen: unconsumed bytes are rbuf[roff, rlen)
 * @pbuf:	plain body bytes (PROXY_PIECE)
 * @poff, @plen: unconsumed bytes are pbuf[poff, plen)
 * @tmp:	masker output (PROXY_PIECE)
 * @out:	staged toward the guest (PROXY_OUT_MAX + PROXY_OUT_RESERVE)
 * @ooff, @olen: unsent bytes are out[ooff, olen)
 * @user:	the embedder's pointer (its hook call)
 */
struct proxy {
	struct proxy_ctx *ctx;
	struct stream *s;
	bool tls;
	uv_timer_t timer;
	uint64_t flow;
	int state;
	bool running, rerun, dead, queued, retired;
	struct proxy *rnext;
	struct proxy *next, **pprev;
	uint64_t deadline;
	bool timed_out;
	uint64_t last_ms;
	bool guest_fin;
	char *in;
	size_t in_off, in_len, parse_last;
	uint64_t head_ms, head_ns;
	struct exch x;
	bool active;
	struct upstream *up;
	char *rbuf;
	size_t roff, rlen;
	char *pbuf;
	size_t poff, plen;
	char *tmp;
	char *out;
	size_t ooff, olen;
	void *user;
};

static void px_run(struct proxy *px);
static void px_exchange_end(struct proxy *px);
static void on_idle(uv_idle_t *h);
static void on_stream_event(void *ud, enum stream_event ev);
static const struct upstream_ops px_upstream_ops;

/* ---- small helpers ---- */

/**
 * now_ms() - the loop's clock
 * @px:		flow
 *
 * Return: milliseconds.
 */
static uint64_t now_ms(const struct proxy *px)
{
	return uv_now(px->ctx->loop);
}

/**
 * sl() - a slice of a C string
 * @s:		string
 *
 * Return: the slice.
 */
static struct http1_slice sl(const char *s)
{
	struct http1_slice r = { s, strlen(s) };

	return r;
}

/**
 * status_text() - reason phrase of a status
 * @status:	code
 *
 * Return: the phrase ("" for codes not listed).
 */
static const char *status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 203: return "Non-Authoritative Information";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 418: return "I'm a teapot";
	case 429: return "Too Many Requests";
	case 451: return "Unavailable For Legal Reasons";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 417: return "Expectation Failed";
	case 421: return "Misdirected Request";
	case 431: return "Request Header Fields Too Large";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default:  return "";
	}
}

/**
 * gb_reserve() - make room for @n more bytes in a growbuf
 * @b:		buffer
 * @n:		bytes
 * @max:	cap on the total
 *
 * Return: 0, -E2BIG past @max, or -ENOMEM.
 */
static int gb_reserve(struct growbuf *b, size_t n, size_t max)
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
 * gb_free() - release a growbuf
 * @b:		buffer
 */
static void gb_free(struct growbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/**
 * rebase() - move a slice from one copy of a buffer to another
 * @s:		slice
 * @from:	start of the old buffer
 * @to:		start of the new one
 */
static void rebase(struct http1_slice *s, const char *from, char *to)
{
	if (s->p)
		s->p = to + (s->p - from);
}

/**
 * set_reason() - a formatted audit/denial reason
 * @px:		flow
 * @fmt:	printf format
 */
__attribute__((format(printf, 2, 3)))
static void set_reason(struct proxy *px, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(px->x.reason_buf, sizeof(px->x.reason_buf), fmt, ap);
	va_end(ap);
	px->x.reason = px->x.reason_buf;
}

/* ---- output toward the guest ---- */

/**
 * out_room() - bytes stage B may still put in out
 * @px:		flow
 *
 * Return: room below PROXY_OUT_MAX (compacts first).
 */
static size_t out_room(struct proxy *px)
{
	if (px->ooff == px->olen) {
		px->ooff = px->olen = 0;
	} else if (px->ooff > 0 && px->olen > PROXY_OUT_MAX / 2) {
		memmove(px->out, px->out + px->ooff, px->olen - px->ooff);
		px->olen -= px->ooff;
		px->ooff = 0;
	}
	return px->olen < PROXY_OUT_MAX ? PROXY_OUT_MAX - px->olen : 0;
}

/**
 * out_put() - append bytes to out (the caller checked the room)
 * @px:		flow
 * @p:		bytes
 * @n:		count
 */
static void out_put(struct proxy *px, const void *p, size_t n)
{
	memcpy(px->out + px->olen, p, n);
	px->olen += n;
	px->x.bytes_out += n;
}

/**
 * px_flush() - hand staged bytes to the guest stream
 * @px:		flow
 *
 * Return: true when bytes moved.
 */
static bool px_flush(struct proxy *px)
{
	size_t n;

	if (!px->s || px->olen == px->ooff || px->state == PX_DONE)
		return false;
	n = stream_write(px->s, (const uint8_t *)px->out + px->ooff,
		      px->olen - px->ooff);
	px->ooff += n;
	if (px->ooff == px->olen)
		px->ooff = px->olen = 0;
	if (n)
		px->last_ms = now_ms(px);
	return n > 0;
}

/**
 * buffers_get() - allocate the exchange buffers on first use
 * @px:		flow
 *
 * Return: 0, or -ENOMEM.
 */
static int buffers_get(struct proxy *px)
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
static void px_audit(struct proxy *px)
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
	ev.masked = x->masker ? (unsigned)x->masker->count : 0;
	ev.websocket = x->websocket && px->state == PX_TUNNEL;
	ev.tls = px->tls;
	if (px->ctx->ops->event)
		px->ctx->ops->event(px->ctx->ud, &ev);
}

/* ---- exchange lifetime ---- */

/**
 * exch_clear() - free what an exchange holds and reset it
 * @px:		flow
 */
static void exch_clear(struct proxy *px)
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
	gb_free(&x->mem);
	gb_free(&x->rmem);
	while (x->necho > 0) {
		struct secret *e = &x->echo[--x->necho];

		explicit_bzero(e->value, e->value_len);
		free(e->value);
	}
	if (x->mask_owned)
		free(x->mask);
	memset(x, 0, sizeof(*x));
	x->rule = -1;
	px->active = false;
}

/**
 * up_drop() - let go of the upstream connection
 * @px:		flow
 * @reuse:	it may serve another request
 */
static void up_drop(struct proxy *px, bool reuse)
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
static void px_abort(struct proxy *px)
{
	struct stream *s = px->s;

	up_drop(px, false);
	if (px->active) {
		if (!px->x.decision)
			px->x.decision = "error";
		px_audit(px);
		exch_clear(px);
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
static void px_error(struct proxy *px, int status, const char *why)
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
	if (x->head_sent || !px->s || buffers_get(px) < 0) {
		px_abort(px);
		return;
	}
	up_drop(px, false);
	x->status = status;
	bl = snprintf(body, sizeof(body), "%d %s: %s\n", status, status_text(status),
		      x->reason ? x->reason : "refused");
	if (bl < 0 || (size_t)bl >= sizeof(body))
		bl = (int)sizeof(body) - 1;
	h[1].value.len = (size_t)snprintf(lenv, sizeof(lenv), "%d", bl);
	hl = http1_write_response_head(head, sizeof(head), x->req.minor == 0 && px->active ? 0 : 1,
				       status, sl(status_text(status)), h, 3);
	out_room(px);
	if (hl > 0 && hl <= sizeof(head) &&
	    hl + (size_t)bl <= PROXY_OUT_MAX + PROXY_OUT_RESERVE - px->olen) {
		out_put(px, head, hl);
		out_put(px, body, (size_t)bl);
	}
	x->head_sent = true;
	if (!px->active)
		x->start_ns = uv_hrtime();
	px_audit(px);
	exch_clear(px);
	px->state = PX_CLOSING;
}

/* ---- request head: checks ---- */

/**
 * check_dialled() - does the Host name what the guest connected to
 * @px:		flow
 * @explicit_port: port written in Host (0: none)
 *
 * The guest reached us at a synthetic address that our DNS gave one name
 * (or at an address it named literally): the Host must be that name or
 * that address, and the same port, or a request could ride a connection
 * to one name while asking for another (domain fronting). Over TLS the
 * SNI must be that name too.
 *
 * Return: true when they agree (else x.reason says why).
 */
static bool check_dialled(struct proxy *px, unsigned explicit_port)
{
	const struct hostpat_host *h = &px->x.host;
	const char *name = dns_pool_name(px->ctx->net->dns, px->s->dst_ip);
	uint32_t ip;

	if (px->s->sni && px->s->sni[0] && strcmp(px->s->sni, h->name) != 0) {
		set_reason(px, "Host %s differs from the TLS server name (%s)", h->name, px->s->sni);
		return false;
	}
	if (explicit_port && explicit_port != px->s->dst_port) {
		set_reason(px, "Host port %u differs from the port dialled (%u)",
			   explicit_port, (unsigned)px->s->dst_port);
		return false;
	}
	if (h->kind == HOSTPAT_NAME) {
		if (name && strcmp(name, h->name) == 0)
			return true;
		if (name)
			set_reason(px, "Host %s differs from the name the guest resolved (%s)",
				   h->name, name);
		else
			set_reason(px, "Host %s was not resolved by the guest to the address dialled",
				   h->name);
		return false;
	}
	if (h->kind == HOSTPAT_IPV4) {
		ip = net_get_be32(h->ip.b);
		if (ip == px->s->dst_ip)
			return true;
	}
	set_reason(px, "Host %s is not the address the guest dialled", h->name);
	return false;
}

/**
 * collect_fwd() - the end-to-end fields of a request (the guest's or a
 * hook's) into x.fwd, and make them the request's view: what
 * build_uhead() forwards after the Host field it writes itself
 * @px:		flow
 * @in:		fields
 * @n:		their number (at most HTTP1_MAX_HEADERS)
 */
static void collect_fwd(struct proxy *px, const struct http1_header *in, size_t n)
{
	struct exch *x = &px->x;
	size_t i;

	x->nfwd = 0;
	for (i = 0; i < n; i++) {
		if (http1_is_hop_by_hop(in[i].name, in, n) ||
		    http1_name_is(in[i].name, "host") ||
		    http1_name_is(in[i].name, "content-length") ||
		    http1_name_is(in[i].name, "expect"))
			continue;
		x->fwd[x->nfwd++] = in[i];
	}
	x->view.headers = x->fwd;
	x->view.nheaders = x->nfwd;
}

/**
 * check_host() - allowlist check of x.host:x.port
 * @px:		flow
 *
 * Return: true when allowed (x.rule set).
 */
static bool check_host(struct proxy *px)
{
	struct exch *x = &px->x;

	x->rule = policy_allow(px->ctx->policy, &x->host, x->port);
	if (x->rule < 0) {
		set_reason(px, "%s:%u is not in the allowlist", x->host.name, x->port);
		return false;
	}
	if (policy_rule_text(px->ctx->policy, x->rule, x->rule_text, sizeof(x->rule_text)) < 0)
		x->rule_text[0] = '\0';
	return true;
}

static void px_forward(struct proxy *px);

/**
 * start_request_hook() - hand the request to on_request
 * @px:		flow
 */
static void start_request_hook(struct proxy *px)
{
	px->state = PX_HOOK_REQ;
	px->x.hook_pending = true;
	if (px->ctx->ops->on_request(px->ctx->ud, px, &px->x.view) < 0) {
		px->x.hook_pending = false;
		px_error(px, 502, "the request hook could not start");
	}
}

/**
 * px_begin() - a request head parsed: copy it, check it, start it
 * @px:		flow
 */
static void px_begin(struct proxy *px)
{
	struct exch *x = &px->x;
	struct http1_request *rq = &x->req;
	struct http1_slice hs;
	const char *from = px->in + px->in_off, *err = NULL;
	unsigned eport;
	size_t i;

	px->active = true;
	x->start_ns = px->head_ns ? px->head_ns : uv_hrtime();
	px->head_ms = 0;
	px->head_ns = 0;
	x->bytes_in = rq->head_len;
	x->head = malloc(rq->head_len);
	if (!x->head) {
		px_error(px, 502, "out of memory");
		return;
	}
	memcpy(x->head, from, rq->head_len);
	rebase(&rq->method, from, x->head);
	rebase(&rq->target, from, x->head);
	rebase(&rq->authority, from, x->head);
	rebase(&rq->path, from, x->head);
	for (i = 0; i < rq->nheaders; i++) {
		rebase(&rq->headers[i].name, from, x->head);
		rebase(&rq->headers[i].value, from, x->head);
	}
	px->in_off += rq->head_len;
	if (buffers_get(px) < 0) {
		px_error(px, 502, "out of memory");
		return;
	}
	x->view.method = rq->method;
	x->view.target = rq->path.len ? rq->path : sl("/");
	x->view.minor = rq->minor;
	x->rb = rq->body == HTTP1_BODY_LENGTH ? (rq->content_length ? RB_LENGTH : RB_NONE) :
		rq->body == HTTP1_BODY_CHUNKED ? RB_CHUNKED : RB_NONE;
	x->rb_left = rq->content_length;
	chunked_decoder_init(&x->rdec, UINT64_MAX >> 8);
	x->expect = rq->expect_continue;
	x->view.has_body = x->rb != RB_NONE;

	if (http1_split_authority(rq->authority, &hs, &eport) < 0 ||
	    hostpat_host_parse(hs.p, hs.len, &x->host, &err) < 0) {
		set_reason(px, "invalid host in the request: %s", err ? err : "malformed authority");
		px_error(px, 400, NULL);
		return;
	}
	x->port = eport ? eport : px->s->dst_port;
	x->view.host = sl(x->host.name);
	x->view.port = x->port;
	if (rq->form == HTTP1_TARGET_ASTERISK || rq->meth == HTTP1_METHOD_TRACE) {
		px_error(px, 501, "OPTIONS * and TRACE are not forwarded");
		return;
	}
	x->view.tls = px->tls;
	if (rq->scheme_https && !x->view.tls) {
		px_error(px, 400, "an https:// target on a plain HTTP connection");
		return;
	}
	if (rq->upgrade == HTTP1_UPGRADE_OTHER || (rq->upgrade == HTTP1_UPGRADE_WEBSOCKET &&
	    (rq->meth != HTTP1_METHOD_GET || rq->minor != 1 || x->rb != RB_NONE))) {
		px_error(px, 501, "only websocket upgrades of HTTP/1.1 GET requests are forwarded");
		return;
	}
	x->websocket = rq->upgrade == HTTP1_UPGRADE_WEBSOCKET;
	x->view.websocket = x->websocket;
	if (!check_dialled(px, eport)) {
		px_error(px, 421, NULL);
		return;
	}
	if (!check_host(px)) {
		px_error(px, 403, NULL);
		return;
	}
	collect_fwd(px, x->req.headers, x->req.nheaders);
	if (px->ctx->hook_request)
		start_request_hook(px);
	else
		px_forward(px);
}

/* ---- request toward upstream ---- */

/**
 * last_word() - the last whitespace-separated word of a field value
 * @p:		value
 * @n:		its length
 *
 * Return: the word.
 */
static struct http1_slice last_word(const char *p, size_t n)
{
	struct http1_slice w;
	size_t e = n, b;

	while (e > 0 && (p[e - 1] == ' ' || p[e - 1] == '\t'))
		e--;
	for (b = e; b > 0 && p[b - 1] != ' ' && p[b - 1] != '\t'; b--)
		;
	w.p = p + b;
	w.len = e - b;
	return w;
}

/**
 * remember_echo() - mask a substituted Basic token back in the response
 * @px:		flow
 * @orig:	the guest's Authorization value
 * @real:	the value sent upstream
 * @rlen:	its length
 *
 * Tokens too long for the masker are not remembered (the decoded
 * credentials are still masked byte for byte).
 */
static void remember_echo(struct proxy *px, struct http1_slice orig,
			  const char *real, size_t rlen)
{
	struct http1_slice g = last_word(orig.p, orig.len), r = last_word(real, rlen);
	struct secret *e;

	if (px->x.necho == PX_ECHO_MAX || g.len == 0 || g.len > SECRET_PLACEHOLDER_MAX ||
	    r.len == 0 || r.len > SECRET_VALUE_MAX)
		return;
	e = &px->x.echo[px->x.necho];
	memset(e, 0, sizeof(*e));
	e->value = malloc(r.len);
	if (!e->value)
		return;
	memcpy(e->value, r.p, r.len);
	e->value_len = r.len;
	memcpy(e->placeholder, g.p, g.len);
	e->placeholder_len = g.len;
	px->x.necho++;
}

/**
 * mask_set() - the secrets a response is masked with
 * @px:		flow
 *
 * Return: 0, or -ENOMEM (x.mask and x.nmask set on success).
 */
static int mask_set(struct proxy *px)
{
	const struct policy *pol = px->ctx->policy;
	struct exch *x = &px->x;

	if (x->mask)
		return 0;
	x->mask = pol->secrets;
	x->nmask = pol->nsecrets;
	if (x->necho == 0)
		return 0;
	x->mask = malloc((pol->nsecrets + x->necho) * sizeof(*x->mask));
	if (!x->mask)
		return -ENOMEM;
	if (pol->nsecrets)
		memcpy(x->mask, pol->secrets, pol->nsecrets * sizeof(*x->mask));
	memcpy(x->mask + pol->nsecrets, x->echo, x->necho * sizeof(*x->mask));
	x->nmask = pol->nsecrets + x->necho;
	x->mask_owned = true;
	return 0;
}

/**
 * substitute() - secrets in one request field value
 * @px:		flow
 * @name:	field name
 * @v:		value (replaced by a slice of @arena when substituted)
 * @arena:	storage for substituted values
 * @used:	bytes of @arena in use
 *
 * Return: 0, -EACCES (x.reason set) or -ENOSPC.
 */
static int substitute(struct proxy *px, struct http1_slice name,
		      struct http1_slice *v, char *arena, size_t *used)
{
	const struct policy *pol = px->ctx->policy;
	size_t cap = PROXY_UHEAD_MAX - *used, len1 = 0, len2 = 0;
	char *o1 = arena + *used;
	int rc, which = -1, total = 0;
	struct http1_slice cur = *v;

	if (http1_name_is(name, "authorization")) {
		rc = secret_basic_substitute(pol->secrets, pol->nsecrets, &px->x.host, px->x.port,
					     cur.p, cur.len, o1, cap, &len1, &which);
		if (rc < 0)
			goto fail;
		if (rc > 0) {
			remember_echo(px, cur, o1, len1);
			total += rc;
			cur.p = o1;
			cur.len = len1;
			*used += len1;
			cap -= len1;
		}
	}
	rc = secret_substitute(pol->secrets, pol->nsecrets, &px->x.host, px->x.port,
			       cur.p, cur.len, arena + *used, cap, &len2, &which);
	if (rc < 0)
		goto fail;
	if (rc > 0) {
		cur.p = arena + *used;
		cur.len = len2;
		*used += len2;
	}
	total += rc;
	px->x.secrets += (unsigned)total;
	*v = cur;
	return 0;
fail:
	if (rc == -EACCES)
		set_reason(px, "secret %s may not be sent to %s",
			   which >= 0 ? pol->secrets[which].name : "?", px->x.host.name);
	return rc;
}

/**
 * fill_denied() - a body placeholder may not go to this host
 * @px:		flow
 *
 * Return: 403, with x.reason set.
 */
static int fill_denied(struct proxy *px)
{
	const struct policy *pol = px->ctx->policy;

	set_reason(px, "secret %s may not be sent to %s",
		   pol->secrets[px->x.filler->denied].name, px->x.host.name);
	return 403;
}

/* Where fill_run() puts what the filler produces: 0, or < 0 to stop. */
typedef int (*fill_sink)(struct proxy *px, void *arg, const void *p, size_t n);

/**
 * fill_run() - body bytes through the filler, its output to @sink
 * @px:		flow (x.filler set)
 * @data:	bytes
 * @len:	their number
 * @last:	the body ends with them: flush the filler
 * @sink:	output
 * @arg:	for @sink
 *
 * Return: 0, -EACCES when a placeholder may not go to this host, or what
 * @sink returned.
 */
static int fill_run(struct proxy *px, const char *data, size_t len, bool last,
		    fill_sink sink, void *arg)
{
	struct exch *x = &px->x;
	size_t took, prod;
	int rc = 1, err;

	while (len > 0 || (last && rc != 0)) {
		took = 0;
		if (len > 0)
			took = secret_stream_feed(x->filler, data, len, x->fbuf, PROXY_PIECE, &prod);
		else
			rc = secret_stream_finish(x->filler, x->fbuf, PROXY_PIECE, &prod);
		if (x->filler->denied >= 0)
			return -EACCES;
		if (prod && (err = sink(px, arg, x->fbuf, prod)) < 0)
			return err;
		if (took) {		/* data may be NULL when len is 0 */
			data += took;
			len -= took;
		}
	}
	if (last)
		x->secrets += (unsigned)x->filler->count;
	return 0;
}

/**
 * mem_sink() - fill_sink appending to a growbuf, bounded
 * @px:		flow
 * @arg:	struct growbuf
 * @p:		bytes
 * @n:		their number
 *
 * Return: 0, or -E2BIG (x.reason set).
 */
static int mem_sink(struct proxy *px, void *arg, const void *p, size_t n)
{
	struct growbuf *b = arg;

	if (gb_reserve(b, n, PROXY_HOOK_BODY_MAX) < 0) {
		set_reason(px, "the body is too large after secret substitution");
		return -E2BIG;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

/**
 * fill_mem() - run a buffered request body through the filler
 * @px:		flow (x.filler set, RB_MEM)
 *
 * The length is then known again, so the body keeps a Content-Length.
 *
 * Return: 0, or an HTTP status (x.reason set).
 */
static int fill_mem(struct proxy *px)
{
	struct exch *x = &px->x;
	struct growbuf out = { 0 };
	int rc = fill_run(px, x->mem.p, x->mem.len, true, mem_sink, &out);

	if (rc < 0) {
		gb_free(&out);
		return rc == -EACCES ? fill_denied(px) : 413;
	}
	gb_free(&x->mem);
	x->mem = out;
	return 0;
}

/**
 * body_filler() - set up request body secrets for the current request
 * @px:		flow
 *
 * Only when some secret opted in to bodies: the body then streams through
 * a filler. Where one of those may go to this host the body's length can
 * change, and a body the guest framed by length goes upstream chunked.
 *
 * Return: 0, or an HTTP status (x.reason set).
 */
static int body_filler(struct proxy *px)
{
	const struct policy *pol = px->ctx->policy;
	struct exch *x = &px->x;
	bool resize;

	x->up_chunked = x->rb == RB_CHUNKED;
	if (!pol->body_secrets || x->websocket || x->rb == RB_NONE)
		return 0;
	x->filler = malloc(sizeof(*x->filler));
	x->fbuf = malloc(PROXY_PIECE);
	if (!x->filler || !x->fbuf) {
		set_reason(px, "out of memory");
		return 502;
	}
	resize = secret_filler_init(x->filler, pol->secrets, pol->nsecrets, &x->host, x->port);
	if (x->rb == RB_MEM)
		return fill_mem(px);
	x->up_chunked = x->up_chunked || resize;
	return 0;
}

/**
 * build_uhead() - the request head for upstream
 * @px:		flow
 *
 * Host from x.host/x.port, the end-to-end fields (secrets substituted),
 * then our own framing field.
 *
 * Return: 0, or an HTTP status to fail with (x.reason set).
 */
static int build_uhead(struct proxy *px)
{
	const struct policy *pol = px->ctx->policy;
	struct exch *x = &px->x;
	struct http1_header h[PX_HEADERS_OUT];
	struct http1_slice target = x->view.target;
	char hostv[HOSTPAT_TEXT_MAX + 8], lenv[24], *arena = NULL;
	size_t n = 0, used = 0, i, need;
	int rc, which = -1, hl;

	if (x->host.kind == HOSTPAT_IPV6)
		hl = snprintf(hostv, sizeof(hostv), "[%s]", x->host.name);
	else
		hl = snprintf(hostv, sizeof(hostv), "%s", x->host.name);
	if (x->port != 80)
		snprintf(hostv + hl, sizeof(hostv) - (size_t)hl, ":%u", x->port);
	if (pol->nsecrets && !(arena = malloc(PROXY_UHEAD_MAX))) {	/* substituted values */
		set_reason(px, "out of memory");
		return 502;
	}
	if (pol->nsecrets) {			/* placeholders in the target */
		rc = secret_target_substitute(pol->secrets, pol->nsecrets, &x->host, x->port,
					      target.p, target.len, arena, PROXY_UHEAD_MAX,
					      &used, &which);
		if (rc < 0) {
			free(arena);
			if (rc != -EACCES) {
				set_reason(px, "the target is too long after secret substitution");
				return 414;
			}
			set_reason(px, "secret %s may not be sent to %s",
				   which >= 0 ? pol->secrets[which].name : "?", x->host.name);
			return 403;
		}
		x->secrets += (unsigned)rc;
		target = (struct http1_slice){ arena, used };
	}
	h[n].name = sl("Host");
	h[n++].value = sl(hostv);
	for (i = 0; i < x->view.nheaders && n < PX_HEADERS_OUT - 3; i++) {
		h[n] = x->view.headers[i];
		if (pol->nsecrets && (rc = substitute(px, h[n].name, &h[n].value, arena, &used)) < 0) {
			free(arena);
			if (rc == -EACCES)
				return 403;
			set_reason(px, "a header is too long after secret substitution");
			return 431;
		}
		n++;
	}
	if ((rc = body_filler(px)) != 0) {
		free(arena);
		return rc;
	}
	if (x->websocket) {
		h[n].name = sl("Connection");
		h[n++].value = sl("Upgrade");
		h[n].name = sl("Upgrade");
		h[n++].value = sl("websocket");
	} else if (x->up_chunked) {
		h[n].name = sl("Transfer-Encoding");
		h[n++].value = sl("chunked");
	} else if (x->rb == RB_LENGTH || x->rb == RB_MEM) {
		snprintf(lenv, sizeof(lenv), "%llu", x->rb == RB_MEM ?
			 (unsigned long long)x->mem.len : (unsigned long long)x->rb_left);
		h[n].name = sl("Content-Length");
		h[n++].value = sl(lenv);
	}
	need = http1_write_request_head(NULL, 0, x->view.method, target, 1, h, n);
	if (need == 0 || need > PROXY_UHEAD_MAX) {
		free(arena);
		set_reason(px, need ? "the request head is too large" :
			   "the request cannot be written (invalid field)");
		return need ? 431 : 502;
	}
	x->uhead = malloc(need);
	if (x->uhead)
		http1_write_request_head(x->uhead, need, x->view.method, target, 1, h, n);
	free(arena);
	if (!x->uhead) {
		set_reason(px, "out of memory");
		return 502;
	}
	x->uhead_len = need;
	return 0;
}

/**
 * px_up_ready() - the upstream connection is up: send the head
 * @px:		flow (CONNECT)
 */
static void px_up_ready(struct proxy *px)
{
	struct exch *x = &px->x;
	uv_buf_t b = uv_buf_init(x->uhead, (unsigned)x->uhead_len);

	snprintf(x->upstream, sizeof(x->upstream), "%s", upstream_address(px->up));
	x->reused = upstream_reused(px->up);
	if (upstream_write(px->up, &b, 1) < 0) {
		px_error(px, 502, "cannot write to the server");
		return;
	}
	px->state = PX_EXCHANGE;
	x->rs = RS_HEAD;
	x->rparse_last = 0;
	if (x->rb == RB_NONE) {
		x->rb = RB_DONE;
		x->req_done_ms = now_ms(px);
	}
	if (x->expect && !x->continue_sent && (x->rb == RB_LENGTH || x->rb == RB_CHUNKED)) {
		out_room(px);
		out_put(px, CONTINUE_100, sizeof(CONTINUE_100) - 1);
		x->continue_sent = true;
	}
}

/**
 * px_connect() - open the upstream connection for the current request
 * @px:		flow (head built)
 */
static void px_connect(struct proxy *px)
{
	const char *why = NULL;
	int err = 0;

	px->state = PX_CONNECT;
	px->up = upstream_open(&px->ctx->pool, &px->x.host, px->x.port,
			       &px_upstream_ops, px, &err, &why);
	if (!px->up) {
		if (err == -EACCES) {
			set_reason(px, "%s resolves only to blocked addresses (%s)",
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
 * fill_buffers_body() - whether to buffer the body for secrets first
 * @px:		flow (request approved)
 *
 * Return: true for a body of known length up to PROXY_FILL_BODY_MAX when
 * some secret opted in to bodies.
 */
static bool fill_buffers_body(const struct proxy *px)
{
	const struct exch *x = &px->x;

	return px->ctx->policy->body_secrets && !x->body_done && x->rb == RB_LENGTH &&
	       x->rb_left <= PROXY_FILL_BODY_MAX;
}

/**
 * px_forward() - the request is approved: build its head and connect
 * @px:		flow
 */
static void px_forward(struct proxy *px)
{
	int status;

	if (buffers_get(px) < 0) {
		px_error(px, 502, "out of memory");
		return;
	}
	if (fill_buffers_body(px)) {
		px->state = PX_BODY;
		return;
	}
	status = build_uhead(px);
	if (status) {
		px_error(px, status, NULL);
		return;
	}
	px_connect(px);
}

/**
 * body_piece() - the next decoded request body bytes waiting in in
 * @px:		flow (RB_LENGTH or RB_CHUNKED)
 * @max:	most input bytes to look at
 * @used:	input bytes consumed (the caller advances in_off)
 * @data:	decoded bytes
 * @dlen:	their number
 *
 * Return: 1 when the body is complete with this piece, 0 when more is to
 * come, or -1 for a malformed chunked body (x.rdec.err says why).
 */
static int body_piece(struct proxy *px, size_t max, size_t *used,
		      const char **data, size_t *dlen)
{
	struct exch *x = &px->x;
	size_t avail = px->in_len - px->in_off;

	if (avail > max)
		avail = max;
	if (x->rb == RB_CHUNKED)
		return chunked_decode(&x->rdec, px->in + px->in_off, avail, used, data, dlen);
	*data = px->in + px->in_off;
	*dlen = avail < x->rb_left ? avail : (size_t)x->rb_left;
	*used = *dlen;
	return x->rb_left == *dlen;
}

/**
 * body_taken() - account for a piece body_piece() returned
 * @px:		flow
 * @used:	input bytes consumed
 * @dlen:	decoded bytes
 */
static void body_taken(struct proxy *px, size_t used, size_t dlen)
{
	struct exch *x = &px->x;

	px->in_off += used;
	x->bytes_in += used;
	if (x->rb == RB_LENGTH)
		x->rb_left -= dlen;
}

/**
 * up_body_write() - send request body bytes upstream in our framing
 * @px:		flow
 * @p:		bytes
 * @n:		their number (0 writes nothing)
 *
 * Return: 0, or -1 after failing the flow.
 */
static int up_body_write(struct proxy *px, const void *p, size_t n)
{
	char ch[CHUNKED_HEAD_MAX];
	uv_buf_t b[3];
	unsigned k = 0;

	if (n == 0)
		return 0;
	if (px->x.up_chunked)
		b[k++] = uv_buf_init(ch, (unsigned)chunked_head(ch, n));
	b[k++] = uv_buf_init((char *)p, (unsigned)n);
	if (px->x.up_chunked)
		b[k++] = uv_buf_init((char *)"\r\n", 2);
	if (upstream_write(px->up, b, k) < 0) {
		px->x.up_err = UV_EPIPE;
		px_error(px, 502, "cannot write to the server");
		return -1;
	}
	return 0;
}

/**
 * up_body_end() - the request body is complete: last chunk, RB_DONE
 * @px:		flow
 *
 * Return: 0, or -1 after failing the flow.
 */
static int up_body_end(struct proxy *px)
{
	uv_buf_t b = uv_buf_init((char *)CHUNKED_LAST, sizeof(CHUNKED_LAST) - 1);

	if (px->x.up_chunked && upstream_write(px->up, &b, 1) < 0) {
		px->x.up_err = UV_EPIPE;
		px_error(px, 502, "cannot write to the server");
		return -1;
	}
	px->x.rb = RB_DONE;
	return 0;
}

/* fill_sink toward upstream (up_body_write() fails the flow itself). */
static int up_sink(struct proxy *px, void *arg, const void *p, size_t n)
{
	(void)arg;
	return up_body_write(px, p, n);
}

/**
 * fill_out() - decoded body bytes through the filler, then upstream
 * @px:		flow (x.filler set)
 * @data:	bytes
 * @len:	their number
 * @last:	the body ends with them: flush the filler
 *
 * Return: 0, or -1 after failing the flow (a denied placeholder is 403
 * while no response head went to the guest).
 */
static int fill_out(struct proxy *px, const char *data, size_t len, bool last)
{
	int rc = fill_run(px, data, len, last, up_sink, NULL);

	if (rc == -EACCES)
		px_error(px, fill_denied(px), px->x.reason_buf);
	return rc < 0 ? -1 : 0;
}

/**
 * request_body_pieces() - move a decoded request body piece by piece
 * @px:		flow (EXCHANGE; RB_CHUNKED, or RB_LENGTH with a filler)
 *
 * Through the filler when there is one: a piece can then grow up to
 * SECRET_VALUE_MAX / SECRET_PREFIX_LEN times, so pieces stay small and go
 * only while upstream has room for the worst of it.
 *
 * Return: true when bytes moved.
 */
static bool request_body_pieces(struct proxy *px)
{
	struct exch *x = &px->x;
	size_t room, max, used, dlen;
	const char *data;
	bool moved = false;
	int rc;

	while (px->in_off < px->in_len) {
		room = upstream_writable(px->up);
		if (room < (x->filler ? PROXY_PIECE : 2 * CHUNKED_HEAD_MAX + 1))
			break;
		max = x->filler ? PROXY_PIECE / 4 : room - 2 * CHUNKED_HEAD_MAX;
		rc = body_piece(px, max, &used, &data, &dlen);
		if (rc < 0) {
			set_reason(px, "malformed chunked request body: %s", x->rdec.err);
			px_error(px, 400, NULL);
			return true;
		}
		body_taken(px, used, dlen);
		moved = moved || used > 0;
		if ((x->filler ? fill_out(px, data, dlen, rc == 1) : up_body_write(px, data, dlen)) < 0 ||
		    (rc == 1 && up_body_end(px) < 0))
			return true;
		if (rc == 1 || used == 0)
			break;
	}
	return moved;
}

/**
 * px_request_body() - move request body bytes toward upstream
 * @px:		flow (EXCHANGE)
 *
 * Return: true when bytes moved.
 */
static bool px_request_body(struct proxy *px)
{
	struct exch *x = &px->x;
	size_t room = px->up ? upstream_writable(px->up) : 0, n, used, dlen;
	const char *data;
	bool moved = false;
	int rc;

	if (!px->up)
		return false;
	if (x->rb == RB_CHUNKED || (x->rb == RB_LENGTH && x->filler)) {
		moved = request_body_pieces(px);
	} else if (x->rb == RB_LENGTH) {
		rc = body_piece(px, room, &used, &data, &dlen);
		if (dlen == 0)
			return false;
		if (up_body_write(px, data, dlen) < 0)
			return true;
		body_taken(px, used, dlen);
		moved = true;
		if (rc == 1)
			x->rb = RB_DONE;
	} else if (x->rb == RB_MEM) {
		n = x->mem.len - x->mem.off < room ? x->mem.len - x->mem.off : room;
		if (n == 0 && x->mem.off < x->mem.len)
			return false;
		if (up_body_write(px, x->mem.p + x->mem.off, n) < 0)
			return true;
		x->mem.off += n;
		moved = n > 0;
		if (x->mem.off == x->mem.len)
			x->rb = RB_DONE;
	}
	if (x->rb == RB_DONE)
		x->req_done_ms = now_ms(px);
	if (moved)
		px->last_ms = now_ms(px);
	return moved;
}

/* ---- response toward the guest ---- */

/**
 * rbuf_consume() - drop @n bytes from the front of rbuf
 * @px:		flow
 * @n:		bytes
 */
static void rbuf_consume(struct proxy *px, size_t n)
{
	px->roff += n;
	if (px->roff == px->rlen)
		px->roff = px->rlen = 0;
}

/**
 * emit_head() - write the response head toward the guest
 * @px:		flow
 * @status:	status
 * @reason:	reason phrase
 * @hd:		end-to-end fields (response_fields())
 * @n:		their number
 * @src:	enum src_kind of the body that follows
 * @blen:	body length when known (SRC_LENGTH, SRC_MEM)
 * @passthrough_cl: a Content-Length to keep for a bodiless response
 *		(HEAD, 304), or NULL
 *
 * Return: 0, or -1 (the head could not be written: x.reason set).
 */
static int emit_head(struct proxy *px, int status, struct http1_slice reason,
		     const struct http1_header *hd, size_t n, int src, uint64_t blen,
		     const struct http1_slice *passthrough_cl)
{
	const struct policy *pol = px->ctx->policy;
	struct exch *x = &px->x;
	struct http1_header h[PX_HEADERS_OUT];
	char lenv[24], *arena = NULL;
	size_t k = 0, i, used = 0, ol, need;
	bool keep, masking = pol->nsecrets > 0;
	int rc;


	if (masking && mask_set(px) < 0) {
		set_reason(px, "out of memory");
		return -1;
	}
	x->src = src;
	x->g_chunked = false;
	x->g_close = false;
	if (src == SRC_LENGTH || src == SRC_MEM) {
		if (masking && x->req.minor == 1)
			x->g_chunked = true;
		else if (masking)
			x->g_close = true;
	} else if (src == SRC_CHUNKED || src == SRC_CLOSE) {
		if (x->req.minor == 1)
			x->g_chunked = true;
		else
			x->g_close = true;
	}
	keep = x->req.keep_alive && !x->g_close && status != 101;
	if (!keep)
		x->g_close = true;
	if (masking && !(arena = malloc(PROXY_UHEAD_MAX))) {	/* masked values */
		set_reason(px, "out of memory");
		return -1;
	}
	for (i = 0; i < n && k < PX_HEADERS_OUT - 3; i++) {
		h[k] = hd[i];
		if (masking && h[k].value.len) {
			rc = secret_mask(x->mask, x->nmask, h[k].value.p, h[k].value.len,
					 arena + used, PROXY_UHEAD_MAX - used, &ol);
			if (rc < 0) {
				free(arena);
				set_reason(px, "response field too long after masking");
				return -1;
			}
			h[k].value.p = arena + used;
			h[k].value.len = ol;
			used += ol;
		}
		k++;
	}
	if (status == 101) {
		h[k].name = sl("Connection");
		h[k++].value = sl("Upgrade");
		h[k].name = sl("Upgrade");
		h[k++].value = sl("websocket");
	} else if (x->g_chunked) {
		h[k].name = sl("Transfer-Encoding");
		h[k++].value = sl("chunked");
	} else if ((src == SRC_LENGTH || src == SRC_MEM) && !masking) {
		snprintf(lenv, sizeof(lenv), "%llu", (unsigned long long)blen);
		h[k].name = sl("Content-Length");
		h[k++].value = sl(lenv);
	} else if (src == SRC_NONE && passthrough_cl && status != 204) {
		h[k].name = sl("Content-Length");
		h[k++].value = *passthrough_cl;
	} else if (src == SRC_NONE && status != 204 && status != 304 && status >= 200 &&
		   x->req.meth != HTTP1_METHOD_HEAD) {
		h[k].name = sl("Content-Length");
		h[k++].value = sl("0");
	}
	if (status != 101 && x->g_close) {
		h[k].name = sl("Connection");
		h[k++].value = sl("close");
	} else if (status != 101 && x->req.minor == 0) {
		h[k].name = sl("Connection");
		h[k++].value = sl("keep-alive");
	}
	out_room(px);
	need = http1_write_response_head(px->out + px->olen, PROXY_OUT_MAX - px->olen,
					 x->req.minor, status, reason, h, k);
	free(arena);
	if (need == 0 || need > PROXY_OUT_MAX - px->olen) {
		set_reason(px, need ? "response head too large" : "invalid response head");
		return -1;
	}
	px->olen += need;
	x->bytes_out += need;
	x->head_sent = true;
	x->status = status;
	if (masking && src != SRC_NONE) {
		x->masker = malloc(sizeof(*x->masker));
		if (!x->masker) {
			set_reason(px, "out of memory");
			return -1;
		}
		secret_masker_init(x->masker, x->mask, x->nmask);
	}
	x->rs = src == SRC_NONE ? RS_DONE : RS_BODY;
	x->src_end = src == SRC_NONE;
	return 0;
}

/**
 * response_fields() - the end-to-end fields of a response (upstream's or a
 * hook's): what emit_head() forwards
 * @in:		fields
 * @nin:	their number (at most HTTP1_MAX_HEADERS)
 * @out:	fields out (HTTP1_MAX_HEADERS)
 * @cl:		the Content-Length value, when there is one (may be NULL)
 *
 * Return: their number.
 */
static size_t response_fields(const struct http1_header *in, size_t nin,
			      struct http1_header *out, const struct http1_slice **cl)
{
	size_t i, n = 0;

	if (cl)
		*cl = NULL;
	for (i = 0; i < nin; i++) {
		if (http1_name_is(in[i].name, "content-length")) {
			if (cl)
				*cl = &in[i].value;
			continue;
		}
		if (http1_is_hop_by_hop(in[i].name, in, nin))
			continue;
		out[n++] = in[i];
	}
	return n;
}

/**
 * src_of() - stage A source for a parsed upstream response
 * @rs:		response
 *
 * Return: enum src_kind.
 */
static int src_of(const struct http1_response *rs)
{
	switch (rs->body) {
	case HTTP1_BODY_LENGTH:
		return rs->content_length ? SRC_LENGTH : SRC_NONE;
	case HTTP1_BODY_CHUNKED:
		return SRC_CHUNKED;
	case HTTP1_BODY_CLOSE:
		return SRC_CLOSE;
	default:
		return SRC_NONE;
	}
}

/**
 * start_tunnel() - 101 from upstream: relay its head, then raw bytes
 * @px:		flow
 */
static void start_tunnel(struct proxy *px)
{
	struct exch *x = &px->x;
	struct http1_header f[HTTP1_MAX_HEADERS];
	size_t n = response_fields(x->res.headers, x->res.nheaders, f, NULL);

	if (emit_head(px, 101, x->res.reason, f, n, SRC_NONE, 0, NULL) < 0) {
		px_error(px, 502, NULL);
		return;
	}
	rbuf_consume(px, x->res.head_len);
	px->state = PX_TUNNEL;
	x->rs = RS_BODY;
}

/**
 * start_response_hook() - hand the response head to on_response
 * @px:		flow
 */
static void start_response_hook(struct proxy *px)
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
	rbuf_consume(px, rs->head_len);
	n = response_fields(rs->headers, rs->nheaders, f, NULL);
	x->rview.headers = (struct http1_header *)(void *)(x->rhead + hoff);
	memcpy((void *)x->rview.headers, f, n * sizeof(*f));
	x->rview.nheaders = n;
	x->rview.status = rs->status;
	x->rview.reason = rs->reason;
	x->rview.has_body = src_of(rs) != SRC_NONE;
	x->src = src_of(rs);
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

/**
 * px_response_head() - parse the upstream response head and act on it
 * @px:		flow (EXCHANGE, RS_HEAD)
 *
 * Return: true when something changed.
 */
static bool px_response_head(struct proxy *px)
{
	struct exch *x = &px->x;
	struct http1_response *rs = &x->res;
	struct http1_header f[HTTP1_MAX_HEADERS];
	const struct http1_slice *cl;
	size_t n, avail = px->rlen - px->roff;
	int rc;

	if (avail == 0 || px->olen != px->ooff)
		return false;		/* a head goes out after what is staged */
	rc = http1_parse_response(px->rbuf + px->roff, avail, x->rparse_last,
				  x->req.meth, rs);
	if (rc == 0) {
		x->rparse_last = avail;
		return false;
	}
	x->rparse_last = 0;
	if (rc < 0) {
		set_reason(px, "malformed response from the server: %s", rs->err);
		px_error(px, 502, NULL);
		return true;
	}
	if (rs->status == 101) {
		if (!x->websocket || rs->upgrade != HTTP1_UPGRADE_WEBSOCKET) {
			px_error(px, 502, "the server switched protocols unasked");
			return true;
		}
		start_tunnel(px);
		return true;
	}
	if (rs->status < 200) {			/* 100 Continue, 103 ...: ours to drop */
		rbuf_consume(px, rs->head_len);
		return true;
	}
	free(x->uhead);
	x->uhead = NULL;
	if (px->ctx->hook_response) {
		start_response_hook(px);
		return true;
	}
	n = response_fields(rs->headers, rs->nheaders, f, &cl);
	x->src_left = rs->content_length;
	chunked_decoder_init(&x->sdec, UINT64_MAX >> 8);
	if (emit_head(px, rs->status, rs->reason, f, n, src_of(rs), rs->content_length, cl) < 0) {
		px_error(px, 502, NULL);
		return true;
	}
	rbuf_consume(px, rs->head_len);
	return true;
}

/**
 * stage_a() - decode upstream (or hook) body bytes into pbuf
 * @px:		flow
 *
 * Return: true when something moved.
 */
static bool stage_a(struct proxy *px)
{
	struct exch *x = &px->x;
	size_t avail = px->rlen - px->roff, n, used, dlen;
	const char *data;
	int rc;

	if (x->src_end || px->plen != px->poff)
		return false;
	px->poff = px->plen = 0;
	switch (x->src) {
	case SRC_LENGTH:
		n = avail < PROXY_PIECE ? avail : PROXY_PIECE;
		if (n > x->src_left)
			n = (size_t)x->src_left;
		if (n)
			memcpy(px->pbuf, px->rbuf + px->roff, n);
		px->plen = n;
		rbuf_consume(px, n);
		x->src_left -= n;
		x->src_end = x->src_left == 0;
		return n > 0 || x->src_end;
	case SRC_CLOSE:
		n = avail < PROXY_PIECE ? avail : PROXY_PIECE;
		if (n)
			memcpy(px->pbuf, px->rbuf + px->roff, n);
		px->plen = n;
		rbuf_consume(px, n);
		x->src_end = n == 0 && x->up_eof;
		return n > 0 || x->src_end;
	case SRC_MEM:
		n = x->rmem.len - x->rmem.off < PROXY_PIECE ? x->rmem.len - x->rmem.off : PROXY_PIECE;
		if (n)
			memcpy(px->pbuf, x->rmem.p + x->rmem.off, n);
		x->rmem.off += n;
		px->plen = n;
		x->src_end = x->rmem.off == x->rmem.len;
		return true;
	case SRC_CHUNKED:
		while (px->plen == 0 && !x->src_end && px->roff < px->rlen) {
			avail = px->rlen - px->roff;
			rc = chunked_decode(&x->sdec, px->rbuf + px->roff,
					    avail < PROXY_PIECE ? avail : PROXY_PIECE,
					    &used, &data, &dlen);
			if (rc < 0) {
				set_reason(px, "malformed chunked response: %s", x->sdec.err);
				px_abort(px);
				return true;
			}
			if (dlen)
				memcpy(px->pbuf, data, dlen);
			px->plen = dlen;
			rbuf_consume(px, used);
			x->src_end = rc == 1;
		}
		return px->plen > 0 || x->src_end;
	default:
		x->src_end = true;
		return true;
	}
}

/**
 * emit_body() - frame @n plain bytes toward the guest (room checked)
 * @px:		flow
 * @p:		bytes
 * @n:		count
 */
static void emit_body(struct proxy *px, const char *p, size_t n)
{
	char ch[CHUNKED_HEAD_MAX];

	if (n == 0)
		return;
	if (px->x.g_chunked) {
		out_put(px, ch, chunked_head(ch, n));
		out_put(px, p, n);
		out_put(px, "\r\n", 2);
	} else {
		out_put(px, p, n);
	}
}

/**
 * stage_b() - mask and frame pbuf into out
 * @px:		flow
 *
 * Return: true when something moved.
 */
static bool stage_b(struct proxy *px)
{
	struct exch *x = &px->x;
	size_t room = out_room(px), take, produced = 0, cap;
	bool moved = false;

	while (px->poff < px->plen && room > PROXY_PIECE / 4) {
		cap = room - 2 * CHUNKED_HEAD_MAX < PROXY_PIECE ? room - 2 * CHUNKED_HEAD_MAX : PROXY_PIECE;
		if (x->masker) {
			take = secret_stream_feed(x->masker, px->pbuf + px->poff,
						  px->plen - px->poff, px->tmp, cap, &produced);
			emit_body(px, px->tmp, produced);
		} else {
			take = px->plen - px->poff < cap ? px->plen - px->poff : cap;
			emit_body(px, px->pbuf + px->poff, take);
		}
		px->poff += take;
		moved = moved || take > 0 || produced > 0;
		if (take == 0 && produced == 0)
			break;
		room = out_room(px);
	}
	if (px->poff == px->plen)
		px->poff = px->plen = 0;
	return moved;
}

/**
 * body_finish() - the whole body is out of stage B: close the framing
 * @px:		flow
 *
 * Return: true when the body is complete toward the guest.
 */
static bool body_finish(struct proxy *px)
{
	struct exch *x = &px->x;
	size_t produced, room = out_room(px);
	int rc;

	while (x->masker) {
		if (room < PROXY_PIECE / 4 + 2 * CHUNKED_HEAD_MAX)
			return false;
		rc = secret_stream_finish(x->masker, px->tmp, PROXY_PIECE, &produced);
		emit_body(px, px->tmp, produced);
		room = out_room(px);
		if (rc == 0)
			break;
	}
	if (x->masker && room < sizeof(CHUNKED_LAST))
		return false;
	if (x->g_chunked) {
		if (room < sizeof(CHUNKED_LAST))
			return false;
		out_put(px, CHUNKED_LAST, sizeof(CHUNKED_LAST) - 1);
	}
	x->rs = RS_DONE;
	return true;
}

/**
 * px_response_body() - run stages A and B until nothing moves
 * @px:		flow
 *
 * Return: true when something moved.
 */
static bool px_response_body(struct proxy *px)
{
	struct exch *x = &px->x;
	bool moved = false, m;

	do {
		m = stage_b(px);
		if (px->state == PX_DONE)
			return true;
		m = stage_a(px) || m;
		if (px->state == PX_DONE)
			return true;
		moved = moved || m;
	} while (m && x->rs == RS_BODY && !(x->src_end && px->plen == px->poff));
	if (x->src_end && px->plen == px->poff && x->rs == RS_BODY)
		moved = body_finish(px) || moved;
	if (moved)
		px->last_ms = now_ms(px);
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

	up_drop(px, up_clean);
	px->rlen = px->roff = 0;
	px_audit(px);
	exch_clear(px);
	px->state = keep ? PX_IDLE : PX_CLOSING;
	px->last_ms = now_ms(px);
}

/* ---- tunnel ---- */

/**
 * px_tunnel() - relay raw bytes both ways
 * @px:		flow (TUNNEL)
 *
 * Return: true when bytes moved.
 */
static bool px_tunnel(struct proxy *px)
{
	struct exch *x = &px->x;
	size_t room, n;
	bool moved = false;
	uv_buf_t b;

	if (px->up && px->in_off < px->in_len && (room = upstream_writable(px->up))) {
		n = px->in_len - px->in_off < room ? px->in_len - px->in_off : room;
		b = uv_buf_init(px->in + px->in_off, (unsigned)n);
		if (upstream_write(px->up, &b, 1) < 0) {
			px_abort(px);
			return true;
		}
		px->in_off += n;
		x->bytes_in += n;
		moved = true;
	}
	if (px->guest_fin && px->in_off == px->in_len && px->up && !x->up_shut &&
	    !stream_readable(px->s)) {
		upstream_shutdown(px->up);	/* the guest is done sending */
		x->up_shut = true;
	}
	room = out_room(px);
	n = px->rlen - px->roff < room ? px->rlen - px->roff : room;
	if (n) {
		out_put(px, px->rbuf + px->roff, n);
		rbuf_consume(px, n);
		moved = true;
	}
	if ((x->up_eof || x->up_err) && px->rlen == px->roff) {
		px_audit(px);
		up_drop(px, false);
		exch_clear(px);
		px->state = PX_CLOSING;
		moved = true;
	}
	if (moved)
		px->last_ms = now_ms(px);
	return moved;
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
 * px_defer() - run the flow from the top of the loop
 * @px:		flow
 */
static void px_defer(struct proxy *px)
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
 * buffer_request_body() - collect the request body for on_request
 * @px:		flow (HOOK_REQ, want_body)
 *
 * Return: true when something moved.
 */
static bool buffer_request_body(struct proxy *px)
{
	struct exch *x = &px->x;
	size_t used, dlen;
	const char *data;
	bool moved = false;
	int rc;

	if (x->body_done)
		return false;
	if (x->expect && !x->continue_sent && x->rb != RB_NONE) {
		out_room(px);
		out_put(px, CONTINUE_100, sizeof(CONTINUE_100) - 1);
		x->continue_sent = true;
		moved = true;
	}
	while (px->in_off < px->in_len && (x->rb == RB_LENGTH || x->rb == RB_CHUNKED)) {
		rc = body_piece(px, PROXY_IN_MAX, &used, &data, &dlen);
		if (rc < 0) {
			set_reason(px, "malformed chunked request body: %s", x->rdec.err);
			body_ready(px, &x->mem, "malformed body");
			px_error(px, 400, NULL);
			return true;
		}
		if (dlen && gb_reserve(&x->mem, dlen, PROXY_HOOK_BODY_MAX) < 0) {
			body_ready(px, &x->mem, "body too large");
			px_error(px, 413, "the body is larger than a hook may buffer");
			return true;
		}
		if (dlen)
			memcpy(x->mem.p + x->mem.len, data, dlen);
		x->mem.len += dlen;
		body_taken(px, used, dlen);
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
 * buffer_response_body() - collect the response body for on_response
 * @px:		flow (HOOK_RES, want_rbody)
 *
 * Return: true when something moved.
 */
static bool buffer_response_body(struct proxy *px)
{
	struct exch *x = &px->x;
	bool moved = false;

	while (!x->rbody_done) {
		if (!stage_a(px))
			break;
		if (px->state == PX_DONE)
			return true;
		if (px->plen && gb_reserve(&x->rmem, px->plen, PROXY_HOOK_BODY_MAX) < 0) {
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

	gb_free(&x->rmem);
	if (len && (rc = gb_reserve(&x->rmem, len, PROXY_HOOK_BODY_MAX)) < 0)
		return rc;
	if (len)
		memcpy(x->rmem.p, body, len);
	x->rmem.len = len;
	return 0;
}

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
		set_reason(px, "denied by the request hook");
	if (x->rb == RB_LENGTH || x->rb == RB_CHUNKED)
		x->req.keep_alive = false;	/* body left unread: close after */
	x->rb = RB_DONE;
	px->state = PX_EXCHANGE;
	n = response_fields(b->headers, b->n, f, NULL);
	if (set_rmem(px, b->body, b->blen) < 0 ||
	    emit_head(px, b->status, sl(status_text(b->status)), f, n, src, b->blen, NULL) < 0)
		px_error(px, 502, NULL);
}

/**
 * apply_request_hook() - act on on_request's result
 * @px:		flow (HOOK_REQ, x.done set)
 */
static void apply_request_hook(struct proxy *px)
{
	struct exch *x = &px->x;
	struct hook_blob *b = x->done;
	const char *err = NULL;

	x->done = NULL;
	if (b->kind == HOOK_FAIL) {
		set_reason(px, "request hook failed: %.*s", (int)b->reason.len, b->reason.p);
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
	collect_fwd(px, b->rq.headers, b->rq.nheaders);
	if (hostpat_host_parse(b->rq.host.p, b->rq.host.len, &x->host, &err) < 0 ||
	    b->rq.port == 0 || b->rq.port > 65535) {
		set_reason(px, "the request hook set an invalid host or port");
		px_error(px, 502, NULL);
		return;
	}
	x->port = b->rq.port;
	x->view.host = sl(x->host.name);
	if (!check_host(px)) {
		px_error(px, 403, NULL);
		return;
	}
	if (b->body_set) {
		if (x->rb == RB_LENGTH || x->rb == RB_CHUNKED)
			x->req.keep_alive = false;	/* body left unread: close after */
		gb_free(&x->mem);
		if (b->blen && gb_reserve(&x->mem, b->blen, PROXY_HOOK_BODY_MAX) < 0) {
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
 * apply_response_hook() - act on on_response's result
 * @px:		flow (HOOK_RES, x.done set)
 */
static void apply_response_hook(struct proxy *px)
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
		set_reason(px, "response hook failed: %.*s", (int)b->reason.len, b->reason.p);
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
	n = response_fields(b->headers, b->n, f, NULL);
	if (emit_head(px, b->status, b->reason, f, n, src, blen, NULL) < 0)
		px_error(px, 502, NULL);
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
		set_reason(px, "%s resolves only to blocked addresses (%s)",
			   x->host.name, x->conn_why);
		px_error(px, 403, NULL);
	} else {
		set_reason(px, "%s:%u: %s", x->host.name, x->port, x->conn_why);
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
	up_drop(px, false);
	x->retried = true;
	x->up_eof = false;
	x->up_err = 0;
	x->mem.off = 0;
	x->rb = x->mem.len ? RB_MEM : RB_NONE;
	px_connect(px);
	return true;
}

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
	bool moved = buffer_request_body(px);

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
		set_reason(px, "the server closed before the end of the body");
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
	up_drop(px, false);
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
			apply_request_hook(px), moved = true;
		else if (x->want_body)
			moved = buffer_request_body(px) || moved;
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
			apply_response_hook(px), moved = true;
		else if (x->want_rbody)
			moved = buffer_response_body(px) || moved;
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
	up_drop(px, false);
	if (px->active)
		exch_clear(px);
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
static void px_run(struct proxy *px)
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
		exch_clear(px);
	}
	up_drop(px, false);
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
 * proxy_new() - mediate a guest connection classified as HTTP
 * @ctx:	context
 * @s:		the guest stream (its event callback becomes ours)
 * @flow:	flow id for audit records
 * @first:	bytes already read by the classifier
 * @n:		their number (<= PROXY_IN_MAX)
 *
 * Return: the flow, or NULL (PROXY_MAX_FLOWS reached or out of memory:
 * the caller resets).
 */
struct proxy *proxy_new(struct proxy_ctx *ctx, struct stream *s, uint64_t flow,
			const uint8_t *first, size_t n)
{
	struct proxy *px;

	if (ctx->nflows >= PROXY_MAX_FLOWS || ctx->closing)
		return NULL;
	px = calloc(1, sizeof(*px));
	if (!px || n > PROXY_IN_MAX || !(px->in = malloc(PROXY_IN_MAX))) {
		free(px);
		return NULL;
	}
	px->ctx = ctx;
	px->s = s;
	px->tls = s->sni != NULL;
	s->event = on_stream_event;
	s->ud = px;
	px->flow = flow;
	px->x.rule = -1;
	memcpy(px->in, first, n);
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
