/* SPDX-License-Identifier: MIT */
/* proxy_response.c - HTTP mediation: the response toward the guest, and the tunnel */

/*
 * Bytes for the guest are staged in out (px_out_room(), px_out_put())
 * and handed to the stream by px_flush(). A response head, upstream's or
 * a hook's, is written by px_emit_head(); its body then runs through
 * stage A (px_stage_a(): upstream framing decoded into pbuf) and stage B
 * (stage_b(): secrets masked, framed toward the guest into out). A 101
 * to a websocket handshake turns the flow into a tunnel (px_tunnel()),
 * which relays raw bytes through the same buffers.
 *
 * Response framing toward the guest: the upstream Content-Length is kept
 * when nothing can change the body's size; with secrets (masking) or an
 * unframed upstream body it is chunked for HTTP/1.1 clients and delimited
 * by close for HTTP/1.0 ones. Upstream chunked bodies are always decoded
 * and re-encoded, so framing the guest sees is ours, never a pass-through.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/proxy_int.h"

/* ---- output toward the guest ---- */

/**
 * px_status_text() - reason phrase of a status
 * @status:	code
 *
 * Return: the phrase ("" for codes not listed).
 */
const char *px_status_text(int status)
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
 * px_out_room() - bytes stage B may still put in out
 * @px:		flow
 *
 * Return: room below PROXY_OUT_MAX (compacts first).
 */
size_t px_out_room(struct proxy *px)
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
 * px_out_put() - append bytes to out (the caller checked the room)
 * @px:		flow
 * @p:		bytes
 * @n:		count
 */
void px_out_put(struct proxy *px, const void *p, size_t n)
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
bool px_flush(struct proxy *px)
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

/* ---- response head ---- */

/**
 * px_rbuf_consume() - drop @n bytes from the front of rbuf
 * @px:		flow
 * @n:		bytes
 */
void px_rbuf_consume(struct proxy *px, size_t n)
{
	px->roff += n;
	if (px->roff == px->rlen)
		px->roff = px->rlen = 0;
}

/**
 * px_emit_head() - write the response head toward the guest
 * @px:		flow
 * @status:	status
 * @reason:	reason phrase
 * @hd:		end-to-end fields (px_response_fields())
 * @n:		their number
 * @src:	enum src_kind of the body that follows
 * @blen:	body length when known (SRC_LENGTH, SRC_MEM)
 * @passthrough_cl: a Content-Length to keep for a bodiless response
 *		(HEAD, 304), or NULL
 *
 * Return: 0, or -1 (the head could not be written: x.reason set).
 */
int px_emit_head(struct proxy *px, int status, struct http1_slice reason,
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


	if (masking && px_mask_set(px) < 0) {
		px_set_reason(px, "out of memory");
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
		px_set_reason(px, "out of memory");
		return -1;
	}
	for (i = 0; i < n && k < PX_HEADERS_OUT - 3; i++) {
		h[k] = hd[i];
		if (masking && h[k].value.len) {
			rc = secret_mask(x->mask, x->nmask, h[k].value.p, h[k].value.len,
					 arena + used, PROXY_UHEAD_MAX - used, &ol);
			if (rc < 0) {
				free(arena);
				px_set_reason(px, "response field too long after masking");
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
	px_out_room(px);
	need = http1_write_response_head(px->out + px->olen, PROXY_OUT_MAX - px->olen,
					 x->req.minor, status, reason, h, k);
	free(arena);
	if (need == 0 || need > PROXY_OUT_MAX - px->olen) {
		px_set_reason(px, need ? "response head too large" : "invalid response head");
		return -1;
	}
	px->olen += need;
	x->bytes_out += need;
	x->head_sent = true;
	x->status = status;
	if (masking && src != SRC_NONE) {
		x->masker = malloc(sizeof(*x->masker));
		if (!x->masker) {
			px_set_reason(px, "out of memory");
			return -1;
		}
		secret_masker_init(x->masker, x->mask, x->nmask);
	}
	x->rs = src == SRC_NONE ? RS_DONE : RS_BODY;
	x->src_end = src == SRC_NONE;
	return 0;
}

/**
 * px_response_fields() - the end-to-end fields of a response (upstream's or a
 * hook's): what px_emit_head() forwards
 * @in:		fields
 * @nin:	their number (at most HTTP1_MAX_HEADERS)
 * @out:	fields out (HTTP1_MAX_HEADERS)
 * @cl:		the Content-Length value, when there is one (may be NULL)
 *
 * Return: their number.
 */
size_t px_response_fields(const struct http1_header *in, size_t nin,
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
 * px_src_of() - stage A source for a parsed upstream response
 * @rs:		response
 *
 * Return: enum src_kind.
 */
int px_src_of(const struct http1_response *rs)
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

/* ---- tunnel ---- */

/**
 * start_tunnel() - 101 from upstream: relay its head, then raw bytes
 * @px:		flow
 */
static void start_tunnel(struct proxy *px)
{
	struct exch *x = &px->x;
	struct http1_header f[HTTP1_MAX_HEADERS];
	size_t n = px_response_fields(x->res.headers, x->res.nheaders, f, NULL);

	if (px_emit_head(px, 101, x->res.reason, f, n, SRC_NONE, 0, NULL) < 0) {
		px_error(px, 502, NULL);
		return;
	}
	px_rbuf_consume(px, x->res.head_len);
	px->state = PX_TUNNEL;
	x->rs = RS_BODY;
}

/**
 * px_tunnel() - relay raw bytes both ways
 * @px:		flow (TUNNEL)
 *
 * Return: true when bytes moved.
 */
bool px_tunnel(struct proxy *px)
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
	room = px_out_room(px);
	n = px->rlen - px->roff < room ? px->rlen - px->roff : room;
	if (n) {
		px_out_put(px, px->rbuf + px->roff, n);
		px_rbuf_consume(px, n);
		moved = true;
	}
	if ((x->up_eof || x->up_err) && px->rlen == px->roff) {
		px_audit(px);
		px_up_drop(px, false);
		px_exch_clear(px);
		px->state = PX_CLOSING;
		moved = true;
	}
	if (moved)
		px->last_ms = now_ms(px);
	return moved;
}

/* ---- response head from upstream ---- */

/**
 * px_response_head() - parse the upstream response head and act on it
 * @px:		flow (EXCHANGE, RS_HEAD)
 *
 * Return: true when something changed.
 */
bool px_response_head(struct proxy *px)
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
		px_set_reason(px, "malformed response from the server: %s", rs->err);
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
		px_rbuf_consume(px, rs->head_len);
		return true;
	}
	free(x->uhead);
	x->uhead = NULL;
	if (px->ctx->hook_response) {
		px_start_response_hook(px);
		return true;
	}
	n = px_response_fields(rs->headers, rs->nheaders, f, &cl);
	x->src_left = rs->content_length;
	chunked_decoder_init(&x->sdec, UINT64_MAX >> 8);
	if (px_emit_head(px, rs->status, rs->reason, f, n, px_src_of(rs), rs->content_length, cl) < 0) {
		px_error(px, 502, NULL);
		return true;
	}
	px_rbuf_consume(px, rs->head_len);
	return true;
}

/* ---- response body ---- */

/**
 * px_stage_a() - decode upstream (or hook) body bytes into pbuf
 * @px:		flow
 *
 * Return: true when something moved.
 */
bool px_stage_a(struct proxy *px)
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
		px_rbuf_consume(px, n);
		x->src_left -= n;
		x->src_end = x->src_left == 0;
		return n > 0 || x->src_end;
	case SRC_CLOSE:
		n = avail < PROXY_PIECE ? avail : PROXY_PIECE;
		if (n)
			memcpy(px->pbuf, px->rbuf + px->roff, n);
		px->plen = n;
		px_rbuf_consume(px, n);
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
				px_set_reason(px, "malformed chunked response: %s", x->sdec.err);
				px_abort(px);
				return true;
			}
			if (dlen)
				memcpy(px->pbuf, data, dlen);
			px->plen = dlen;
			px_rbuf_consume(px, used);
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
		px_out_put(px, ch, chunked_head(ch, n));
		px_out_put(px, p, n);
		px_out_put(px, "\r\n", 2);
	} else {
		px_out_put(px, p, n);
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
	size_t room = px_out_room(px), take, produced = 0, cap;
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
		room = px_out_room(px);
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
	size_t produced, room = px_out_room(px);
	int rc;

	while (x->masker) {
		if (room < PROXY_PIECE / 4 + 2 * CHUNKED_HEAD_MAX)
			return false;
		rc = secret_stream_finish(x->masker, px->tmp, PROXY_PIECE, &produced);
		emit_body(px, px->tmp, produced);
		room = px_out_room(px);
		if (rc == 0)
			break;
	}
	if (x->masker && room < sizeof(CHUNKED_LAST))
		return false;
	if (x->g_chunked) {
		if (room < sizeof(CHUNKED_LAST))
			return false;
		px_out_put(px, CHUNKED_LAST, sizeof(CHUNKED_LAST) - 1);
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
bool px_response_body(struct proxy *px)
{
	struct exch *x = &px->x;
	bool moved = false, m;

	do {
		m = stage_b(px);
		if (px->state == PX_DONE)
			return true;
		m = px_stage_a(px) || m;
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
