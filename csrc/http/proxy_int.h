/* SPDX-License-Identifier: MIT */
/* proxy_int.h - what the proxy*.c files share: flow and exchange state, internal calls */
#ifndef GONDOLIN_HTTP_PROXY_INT_H
#define GONDOLIN_HTTP_PROXY_INT_H

/*
 * Only csrc/http/proxy*.c include this; the embedder's interface is
 * proxy.h. proxy.c's Theory of Operation says how the parts fit.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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
 * @violation:	index of the secret refused toward this host, -1 for none
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
	int violation;
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

/**
 * now_ms() - the loop's clock
 * @px:		flow
 *
 * Return: milliseconds.
 */
static inline uint64_t now_ms(const struct proxy *px)
{
	return uv_now(px->ctx->loop);
}

/**
 * sl() - a slice of a C string
 * @s:		string
 *
 * Return: the slice.
 */
static inline struct http1_slice sl(const char *s)
{
	struct http1_slice r = { s, strlen(s) };

	return r;
}

/**
 * rebase() - move a slice from one copy of a buffer to another
 * @s:		slice
 * @from:	start of the old buffer
 * @to:		start of the new one
 */
static inline void rebase(struct http1_slice *s, const char *from, char *to)
{
	if (s->p)
		s->p = to + (s->p - from);
}

/* proxy.c */
void px_run(struct proxy *px);
__attribute__((format(printf, 2, 3)))
void px_set_reason(struct proxy *px, const char *fmt, ...);
int px_gb_reserve(struct growbuf *b, size_t n, size_t max);
void px_gb_free(struct growbuf *b);
int px_buffers_get(struct proxy *px);
void px_audit(struct proxy *px);
void px_exch_clear(struct proxy *px);
void px_up_drop(struct proxy *px, bool reuse);
void px_abort(struct proxy *px);
void px_error(struct proxy *px, int status, const char *why);
void px_connect(struct proxy *px);

/* proxy_request.c */
void px_begin(struct proxy *px);
void px_collect_fwd(struct proxy *px, const struct http1_header *in, size_t n);
bool px_check_host(struct proxy *px);
void px_up_ready(struct proxy *px);
void px_forward(struct proxy *px);
int px_mask_set(struct proxy *px);
int px_body_piece(struct proxy *px, size_t max, size_t *used,
		  const char **data, size_t *dlen);
void px_body_taken(struct proxy *px, size_t used, size_t dlen);
bool px_request_body(struct proxy *px);

/* proxy_response.c */
const char *px_status_text(int status);
size_t px_out_room(struct proxy *px);
void px_out_put(struct proxy *px, const void *p, size_t n);
bool px_flush(struct proxy *px);
void px_rbuf_consume(struct proxy *px, size_t n);
int px_emit_head(struct proxy *px, int status, struct http1_slice reason,
		 const struct http1_header *hd, size_t n, int src, uint64_t blen,
		 const struct http1_slice *passthrough_cl);
size_t px_response_fields(const struct http1_header *in, size_t nin,
			  struct http1_header *out, const struct http1_slice **cl);
int px_src_of(const struct http1_response *rs);
bool px_response_head(struct proxy *px);
bool px_stage_a(struct proxy *px);
bool px_response_body(struct proxy *px);
bool px_tunnel(struct proxy *px);

/* proxy_hook.c */
void px_defer(struct proxy *px);
void px_start_request_hook(struct proxy *px);
void px_start_response_hook(struct proxy *px);
bool px_buffer_request_body(struct proxy *px);
bool px_buffer_response_body(struct proxy *px);
void px_apply_request_hook(struct proxy *px);
void px_apply_response_hook(struct proxy *px);

#endif /* GONDOLIN_HTTP_PROXY_INT_H */
