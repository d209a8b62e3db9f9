/* SPDX-License-Identifier: MIT */
/* proxy_request.c - HTTP mediation: request checks, the head for upstream, secrets */

/*
 * A parsed request head is checked here (px_begin(): Host against what
 * the guest dialled, then the allowlist); an approved one becomes the head
 * upstream receives (px_forward(), build_uhead()). The request body's way
 * from the guest's input buffer to the upstream connection is here too,
 * since secrets may be filled into it on the way.
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
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/proxy_int.h"

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
		px_set_reason(px, "Host %s differs from the TLS server name (%s)", h->name, px->s->sni);
		return false;
	}
	if (explicit_port && explicit_port != px->s->dst_port) {
		px_set_reason(px, "Host port %u differs from the port dialled (%u)",
			      explicit_port, (unsigned)px->s->dst_port);
		return false;
	}
	if (h->kind == HOSTPAT_NAME) {
		if (name && strcmp(name, h->name) == 0)
			return true;
		if (name)
			px_set_reason(px, "Host %s differs from the name the guest resolved (%s)",
				      h->name, name);
		else
			px_set_reason(px, "Host %s was not resolved by the guest to the address dialled",
				      h->name);
		return false;
	}
	if (h->kind == HOSTPAT_IPV4) {
		ip = net_get_be32(h->ip.b);
		if (ip == px->s->dst_ip)
			return true;
	}
	px_set_reason(px, "Host %s is not the address the guest dialled", h->name);
	return false;
}

/**
 * px_collect_fwd() - the end-to-end fields of a request (the guest's or a
 * hook's) into x.fwd, and make them the request's view: what
 * build_uhead() forwards after the Host field it writes itself
 * @px:		flow
 * @in:		fields
 * @n:		their number (at most HTTP1_MAX_HEADERS)
 */
void px_collect_fwd(struct proxy *px, const struct http1_header *in, size_t n)
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
 * px_check_host() - allowlist check of x.host:x.port
 * @px:		flow
 *
 * Return: true when allowed (x.rule set).
 */
bool px_check_host(struct proxy *px)
{
	struct exch *x = &px->x;

	x->rule = policy_allow(px->ctx->policy, &x->host, x->port);
	if (x->rule < 0) {
		px_set_reason(px, "%s:%u is not in the allowlist", x->host.name, x->port);
		return false;
	}
	if (policy_rule_text(px->ctx->policy, x->rule, x->rule_text, sizeof(x->rule_text)) < 0)
		x->rule_text[0] = '\0';
	return true;
}

/**
 * px_begin() - a request head parsed: copy it, check it, start it
 * @px:		flow
 */
void px_begin(struct proxy *px)
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
	if (px_buffers_get(px) < 0) {
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
		px_set_reason(px, "invalid host in the request: %s", err ? err : "malformed authority");
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
	if (!px_check_host(px)) {
		px_error(px, 403, NULL);
		return;
	}
	px_collect_fwd(px, x->req.headers, x->req.nheaders);
	if (px->ctx->hook_request)
		px_start_request_hook(px);
	else
		px_forward(px);
}

/* ---- request head toward upstream ---- */

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
 * px_mask_set() - the secrets a response is masked with
 * @px:		flow
 *
 * Return: 0, or -ENOMEM (x.mask and x.nmask set on success).
 */
int px_mask_set(struct proxy *px)
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
 * secret_refused() - a placeholder may not go to this host: refuse, and
 * name the secret in the audit event (the policy's on_violation acts on it)
 * @px:		flow
 * @which:	index of the secret, -1 when unknown
 *
 * Return: 403, with x.reason and x.violation set.
 */
static int secret_refused(struct proxy *px, int which)
{
	const struct policy *pol = px->ctx->policy;

	px->x.violation = which;
	px_set_reason(px, "secret %s may not be sent to %s",
		      which >= 0 ? pol->secrets[which].name : "?", px->x.host.name);
	return 403;
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
		secret_refused(px, which);
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
	return secret_refused(px, px->x.filler->denied);
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

	if (px_gb_reserve(b, n, PROXY_HOOK_BODY_MAX) < 0) {
		px_set_reason(px, "the body is too large after secret substitution");
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
		px_gb_free(&out);
		return rc == -EACCES ? fill_denied(px) : 413;
	}
	px_gb_free(&x->mem);
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
		px_set_reason(px, "out of memory");
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
		px_set_reason(px, "out of memory");
		return 502;
	}
	if (pol->nsecrets) {			/* placeholders in the target */
		rc = secret_target_substitute(pol->secrets, pol->nsecrets, &x->host, x->port,
					      target.p, target.len, arena, PROXY_UHEAD_MAX,
					      &used, &which);
		if (rc < 0) {
			free(arena);
			if (rc != -EACCES) {
				px_set_reason(px, "the target is too long after secret substitution");
				return 414;
			}
			return secret_refused(px, which);
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
			px_set_reason(px, "a header is too long after secret substitution");
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
		px_set_reason(px, need ? "the request head is too large" :
			      "the request cannot be written (invalid field)");
		return need ? 431 : 502;
	}
	x->uhead = malloc(need);
	if (x->uhead)
		http1_write_request_head(x->uhead, need, x->view.method, target, 1, h, n);
	free(arena);
	if (!x->uhead) {
		px_set_reason(px, "out of memory");
		return 502;
	}
	x->uhead_len = need;
	return 0;
}

/**
 * px_up_ready() - the upstream connection is up: send the head
 * @px:		flow (CONNECT)
 */
void px_up_ready(struct proxy *px)
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
		px_out_room(px);
		px_out_put(px, CONTINUE_100, sizeof(CONTINUE_100) - 1);
		x->continue_sent = true;
	}
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
void px_forward(struct proxy *px)
{
	int status;

	if (px_buffers_get(px) < 0) {
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

/* ---- request body toward upstream ---- */

/**
 * px_body_piece() - the next decoded request body bytes waiting in in
 * @px:		flow (RB_LENGTH or RB_CHUNKED)
 * @max:	most input bytes to look at
 * @used:	input bytes consumed (the caller advances in_off)
 * @data:	decoded bytes
 * @dlen:	their number
 *
 * Return: 1 when the body is complete with this piece, 0 when more is to
 * come, or -1 for a malformed chunked body (x.rdec.err says why).
 */
int px_body_piece(struct proxy *px, size_t max, size_t *used,
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
 * px_body_taken() - account for a piece px_body_piece() returned
 * @px:		flow
 * @used:	input bytes consumed
 * @dlen:	decoded bytes
 */
void px_body_taken(struct proxy *px, size_t used, size_t dlen)
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
		rc = px_body_piece(px, max, &used, &data, &dlen);
		if (rc < 0) {
			px_set_reason(px, "malformed chunked request body: %s", x->rdec.err);
			px_error(px, 400, NULL);
			return true;
		}
		px_body_taken(px, used, dlen);
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
bool px_request_body(struct proxy *px)
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
		rc = px_body_piece(px, room, &used, &data, &dlen);
		if (dlen == 0)
			return false;
		if (up_body_write(px, data, dlen) < 0)
			return true;
		px_body_taken(px, used, dlen);
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
