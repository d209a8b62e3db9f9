/* SPDX-License-Identifier: MIT */
/* server.c - the TLS server the guest talks to: a stream over a stream */

/*
 * Theory of Operation
 *
 * A guest flow that starts with a ClientHello gets a struct tls_server
 * between its TCP stream (below) and the HTTP mediation (above). The
 * mediation sees struct stream and nothing else, so decrypted requests go
 * through the same checks, hooks and secrets as plain ones.
 *
 * The certificate is chosen before the handshake starts: a leaf minted
 * for the SNI the classifier found (or, without SNI, for the destination's
 * synthetic DNS name; the caller decides), so the configuration is per
 * flow and no SNI callback is needed. TLS 1.2 only (mbedTLS 2.28 has no
 * 1.3), ECDHE-ECDSA with AEAD suites, ALPN http/1.1, no renegotiation.
 * Our order of suites decides: AES-GCM first, or ChaCha20-Poly1305 first
 * for a guest without fast AES (an emulated CPU; docs/performance.md).
 * Session tickets, sealed with a key of the interface's that rotates
 * hourly, let a guest client resume without verifying a certificate again.
 *
 * Bytes in: mbedTLS pulls ciphertext through tls_recv(), first what the
 * classifier already read, then straight from the TCP stream. We follow
 * the record framing there, so a handshake record after the handshake
 * (a renegotiation attempt) fails the flow before mbedTLS sees it.
 * Decrypted bytes wait in @plain for the reader; when it is full we stop
 * reading and the guest's TCP window closes.
 *
 * Bytes out: tls_send() only ever appends to @cout, and a record is only
 * written while @cout has room for a whole one, so mbedTLS never sees a
 * partial send (its WANT_WRITE contract would pin our caller's buffer).
 * @cout drains into the TCP stream; a short write() upward is owed a
 * STREAM_WRITABLE once a record fits again.
 *
 * Errors fail closed: the reason goes to on_error() and the TCP stream is
 * reset, which reports STREAM_CLOSED up before tls_server returns. That
 * can happen inside read(), when freeing room lets a bad record in: the
 * reader must check that it still has a stream after each call.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/error.h>

#include "tls/conf.h"
#include "tls/leaf.h"
#include "tls/server.h"

#define REC_HANDSHAKE	22

#define TICKET_LIFETIME_S 3600

static const int suites_aes_first[] = {
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	0
};

static const int suites_chacha_first[] = {
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	0
};

/**
 * tls_server_ctx_init() - seed the shared random generator and ticket key
 * @ctx:	context to fill (tls_server_ctx_free() it once this succeeded)
 * @chacha_first: prefer ChaCha20-Poly1305 to AES-GCM
 *
 * Return: 0, or -1 when no entropy could be had (nothing to free).
 */
int tls_server_ctx_init(struct tls_server_ctx *ctx, bool chacha_first)
{
	static const char pers[] = "gondolin tls server";

	memset(ctx, 0, sizeof(*ctx));
	mbedtls_entropy_init(&ctx->entropy);
	mbedtls_ctr_drbg_init(&ctx->drbg);
	mbedtls_ssl_ticket_init(&ctx->ticket);
	ctx->alpn[0] = "http/1.1";
	ctx->suites = chacha_first ? suites_chacha_first : suites_aes_first;
	if (mbedtls_ctr_drbg_seed(&ctx->drbg, mbedtls_entropy_func, &ctx->entropy,
				  (const unsigned char *)pers, sizeof(pers) - 1) ||
	    mbedtls_ssl_ticket_setup(&ctx->ticket, mbedtls_ctr_drbg_random, &ctx->drbg,
				     MBEDTLS_CIPHER_AES_256_GCM, TICKET_LIFETIME_S)) {
		tls_server_ctx_free(ctx);
		return -1;
	}
	return 0;
}

void tls_server_ctx_free(struct tls_server_ctx *ctx)
{
	mbedtls_ssl_ticket_free(&ctx->ticket);
	mbedtls_ctr_drbg_free(&ctx->drbg);
	mbedtls_entropy_free(&ctx->entropy);
}

/* mbedTLS's ticket callbacks share one argument: ours, for the counter */
static int ticket_write(void *arg, const mbedtls_ssl_session *session, unsigned char *start,
			const unsigned char *end, size_t *len, uint32_t *lifetime)
{
	struct tls_server_ctx *ctx = arg;

	return mbedtls_ssl_ticket_write(&ctx->ticket, session, start, end, len, lifetime);
}

static int ticket_parse(void *arg, mbedtls_ssl_session *session, unsigned char *buf, size_t len)
{
	struct tls_server_ctx *ctx = arg;
	int ret = mbedtls_ssl_ticket_parse(&ctx->ticket, session, buf, len);

	if (ret == 0)
		ctx->resumed++;
	return ret;
}

static struct tls_server *tls_of(const struct stream *s)
{
	return (struct tls_server *)s;
}

/* ---- failure ---- */

/**
 * tls_fail() - report why and reset the guest connection
 * @t:		flow
 * @why:	static reason
 */
static void tls_fail(struct tls_server *t, const char *why)
{
	if (t->error || t->gone)
		return;
	t->error = why;
	t->ctx->failures++;
	if (t->on_error)
		t->on_error(t->ud, why);
	stream_abort(t->lower);		/* CLOSED comes up through on_lower() */
}

/**
 * ssl_reason() - a static reason for an mbedTLS error code
 * @ret:	negative mbedTLS code
 * @handshake:	it happened during the handshake
 */
static const char *ssl_reason(int ret, bool handshake)
{
	switch (ret) {
	case MBEDTLS_ERR_SSL_INVALID_RECORD:
		return "TLS: invalid record from the guest";
	case MBEDTLS_ERR_SSL_INVALID_MAC:
		return "TLS: bad record MAC from the guest";
	case MBEDTLS_ERR_SSL_BAD_HS_CLIENT_HELLO:
		return "TLS: malformed ClientHello";
	case MBEDTLS_ERR_SSL_NO_USABLE_CIPHERSUITE:
		return "TLS: no cipher suite in common (TLS 1.2 ECDHE-ECDSA AEAD offered)";
	case MBEDTLS_ERR_SSL_BAD_HS_PROTOCOL_VERSION:
		return "TLS: the guest does not offer TLS 1.2";
	case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE:
		return handshake ? "TLS: the guest aborted the handshake (alert; does it trust the gondolin CA?)"
				 : "TLS: fatal alert from the guest";
	case MBEDTLS_ERR_SSL_CONN_EOF:
		return handshake ? "TLS: the guest closed during the handshake"
				 : "TLS: the guest closed mid-record";
	case MBEDTLS_ERR_SSL_ALLOC_FAILED:
		return "TLS: out of memory";
	default:
		return handshake ? "TLS: handshake failed" : "TLS: record layer error";
	}
}

/* ---- ciphertext in ---- */

/**
 * track_records() - follow the guest's record framing over bytes taken
 * @t:		flow
 * @p:		bytes mbedTLS is about to receive
 * @n:		their number
 *
 * Return: 0, -1 on a record over TLS_RECORD_MAX, -2 on a handshake record
 * after the handshake (renegotiation).
 */
static int track_records(struct tls_server *t, const uint8_t *p, size_t n)
{
	while (n) {
		size_t k;

		if (t->rec_left) {
			k = n < t->rec_left ? n : t->rec_left;
			t->rec_left -= k;
			p += k;
			n -= k;
			continue;
		}
		t->rec_hdr[t->rec_have++] = *p++;
		n--;
		if (t->rec_have < 5)
			continue;
		t->rec_have = 0;
		t->rec_left = (size_t)t->rec_hdr[3] << 8 | t->rec_hdr[4];
		if (t->rec_left > TLS_RECORD_MAX)
			return -1;
		if (t->established && t->rec_hdr[0] == REC_HANDSHAKE)
			return -2;
	}
	return 0;
}

/* mbedTLS's BIO receive: the classifier's bytes, then the TCP stream */
static int tls_recv(void *arg, unsigned char *buf, size_t len)
{
	struct tls_server *t = arg;
	size_t n;

	if (t->gone)
		return MBEDTLS_ERR_SSL_CONN_EOF;
	if (t->first_off < t->first_len) {
		n = t->first_len - t->first_off;
		if (n > len)
			n = len;
		memcpy(buf, t->first + t->first_off, n);
		t->first_off += n;
	} else {
		n = stream_read(t->lower, buf, len);
	}
	if (!n)
		return t->lower_fin ? 0 : MBEDTLS_ERR_SSL_WANT_READ;
	switch (track_records(t, buf, n)) {
	case -1:
		t->bio_error = "TLS: oversized record";
		return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
	case -2:
		t->bio_error = "TLS: renegotiation refused";
		return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
	}
	return (int)n;
}

/* ---- ciphertext out ---- */

/* mbedTLS's BIO send: always into @cout (write_ok() made room) */
static int tls_send(void *arg, const unsigned char *buf, size_t len)
{
	struct tls_server *t = arg;

	if (t->coff && t->clen + len > sizeof(t->cout)) {
		memmove(t->cout, t->cout + t->coff, t->clen - t->coff);
		t->clen -= t->coff;
		t->coff = 0;
	}
	if (t->clen + len > sizeof(t->cout))
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	memcpy(t->cout + t->clen, buf, len);
	t->clen += len;
	return (int)len;
}

/* room for one more whole record in @cout */
static bool write_ok(const struct tls_server *t)
{
	return sizeof(t->cout) - (t->clen - t->coff) >= TLS_RECORD_MAX + 5 + 256;
}

/**
 * flush_out() - hand @cout to the TCP stream; FIN after it when shutting
 * @t:		flow
 */
static void flush_out(struct tls_server *t)
{
	if (t->gone)
		return;
	if (t->coff < t->clen) {
		t->coff += stream_write(t->lower, t->cout + t->coff, t->clen - t->coff);
		if (t->coff == t->clen)
			t->coff = t->clen = 0;
	}
	if (t->shutting && t->coff == t->clen) {
		t->shutting = false;
		stream_shutdown(t->lower);
	}
}

/* ---- handshake and records ---- */

/**
 * handshake() - advance the handshake with what the guest sent
 * @t:		flow
 *
 * Return: true once established.
 */
static bool handshake(struct tls_server *t)
{
	int ret = mbedtls_ssl_handshake(&t->ssl);

	flush_out(t);
	if (ret == 0) {
		t->established = true;
		t->ctx->handshakes++;
		return true;
	}
	if (ret != MBEDTLS_ERR_SSL_WANT_READ && ret != MBEDTLS_ERR_SSL_WANT_WRITE)
		tls_fail(t, t->bio_error ? t->bio_error : ssl_reason(ret, true));
	return false;
}

/**
 * pump_in() - decrypt into @plain while it has room
 * @t:		flow
 */
static void pump_in(struct tls_server *t)
{
	while (!t->gone && !t->error && !t->peer_closed) {
		int ret;

		if (t->poff == t->plen)
			t->poff = t->plen = 0;
		if (t->plen == sizeof(t->plain))
			return;
		ret = mbedtls_ssl_read(&t->ssl, t->plain + t->plen, sizeof(t->plain) - t->plen);
		flush_out(t);		/* alerts mbedTLS may have queued */
		if (ret > 0) {
			t->plen += (size_t)ret;
			continue;
		}
		if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
			return;
		}
		if (ret == 0 || ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY ||
		    (ret == MBEDTLS_ERR_SSL_CONN_EOF && !t->rec_have && !t->rec_left)) {
			t->peer_closed = true;	/* FIN between records: no truncation */
			return;
		}
		tls_fail(t, t->bio_error ? t->bio_error : ssl_reason(ret, false));
		return;
	}
}

/**
 * fin_up() - tell the reader the guest is done, once it read everything
 * @t:		flow
 */
static void fin_up(struct tls_server *t)
{
	if (!t->gone && !t->error && t->peer_closed && t->poff == t->plen &&
	    !t->fin_sent_up) {
		t->fin_sent_up = true;
		stream_emit(&t->s, STREAM_FIN);
	}
}

/**
 * lower_readable() - ciphertext arrived (or the guest's FIN did)
 * @t:		flow
 */
static void lower_readable(struct tls_server *t)
{
	if (!t->established && !handshake(t))
		return;
	pump_in(t);
	if (t->gone || t->error)
		return;
	if (t->plen > t->poff)
		stream_emit(&t->s, STREAM_READABLE);
	fin_up(t);
}

/**
 * tls_server_start() - take the ClientHello the classifier read
 * @t:		flow, its reader already set
 */
void tls_server_start(struct tls_server *t)
{
	lower_readable(t);
}

/* events of the TCP stream below */
static void on_lower(void *ud, enum stream_event ev)
{
	struct tls_server *t = ud;

	switch (ev) {
	case STREAM_READABLE:
		lower_readable(t);
		break;
	case STREAM_FIN:
		t->lower_fin = true;
		lower_readable(t);
		break;
	case STREAM_WRITABLE:
		flush_out(t);
		if (t->write_blocked && t->established && write_ok(t)) {
			t->write_blocked = false;
			stream_emit(&t->s, STREAM_WRITABLE);
		}
		break;
	case STREAM_RESET:
	case STREAM_CLOSED:
		t->gone = true;
		stream_emit(&t->s, ev);
		break;
	}
}

/* ---- the decrypted stream ---- */

static size_t tls_readable(const struct stream *s)
{
	const struct tls_server *t = tls_of(s);

	return t->plen - t->poff;
}

static size_t tls_read(struct stream *s, uint8_t *buf, size_t len)
{
	struct tls_server *t = tls_of(s);
	size_t n = t->plen - t->poff;

	if (n > len)
		n = len;
	memcpy(buf, t->plain + t->poff, n);
	t->poff += n;
	if (t->poff == t->plen && t->established) {
		pump_in(t);		/* room again: take what waits below */
		fin_up(t);
	}
	return n;
}

static size_t tls_write(struct stream *s, const uint8_t *p, size_t len)
{
	struct tls_server *t = tls_of(s);
	size_t done = 0;

	if (!t->established || t->gone || t->error)
		return 0;
	while (done < len && write_ok(t)) {
		size_t k = len - done;
		int ret;

		if (k > TLS_PLAIN_MAX)
			k = TLS_PLAIN_MAX;
		ret = mbedtls_ssl_write(&t->ssl, p + done, k);
		if (ret <= 0) {
			tls_fail(t, "TLS: could not encrypt toward the guest");
			return done;
		}
		done += (size_t)ret;
		flush_out(t);
	}
	if (done < len)
		t->write_blocked = true;
	return done;
}

static void tls_shutdown(struct stream *s)
{
	struct tls_server *t = tls_of(s);

	if (t->gone)
		return;
	if (t->established)
		mbedtls_ssl_close_notify(&t->ssl);
	t->shutting = true;
	flush_out(t);
}

static void tls_abort(struct stream *s)
{
	struct tls_server *t = tls_of(s);

	if (!t->gone)
		stream_abort(t->lower);
}

static const struct stream_ops tls_stream_ops = {
	.readable = tls_readable,
	.read = tls_read,
	.write = tls_write,
	.shutdown = tls_shutdown,
	.abort = tls_abort,
};

/* ---- lifetime ---- */

/**
 * conf_setup() - the per-flow configuration: our leaf, TLS 1.2, AEAD
 * @t:		flow (t->leaf set)
 *
 * Return: 0, or an mbedTLS error.
 */
static int conf_setup(struct tls_server *t)
{
	mbedtls_ssl_config *c = &t->conf;
	int ret;

	ret = tls_conf_base(c, MBEDTLS_SSL_IS_SERVER, &t->ctx->drbg, t->ctx->alpn);
	if (ret)
		return ret;
	mbedtls_ssl_conf_ciphersuites(c, t->ctx->suites);
	mbedtls_ssl_conf_session_tickets_cb(c, ticket_write, ticket_parse, t->ctx);
	return mbedtls_ssl_conf_own_cert(c, &t->leaf->chain, &t->leaf->key);
}

/**
 * tls_server_new() - put a TLS server on a guest stream
 * @ctx:	shared state (tls_server_ctx_init() succeeded)
 * @lower:	the TCP stream (its event callback becomes ours)
 * @leaf:	certificate to present; the reference passes to the flow
 * @sni:	the name the ClientHello sent ("" for none)
 * @first:	ClientHello bytes already read; must stay valid while the
 *		flow lives
 * @n:		their number
 *
 * The caller sets s.event (the reader) and may set on_error before the
 * first event arrives; the handshake advances on the lower stream's events.
 *
 * Return: the flow, or NULL (out of memory; the leaf reference is dropped).
 */
struct tls_server *tls_server_new(struct tls_server_ctx *ctx, struct stream *lower,
				  struct tls_leaf *leaf, const char *sni,
				  const uint8_t *first, size_t n)
{
	struct tls_server *t = calloc(1, sizeof(*t));

	if (!t) {
		tls_leaf_unref(leaf);
		return NULL;
	}
	t->ctx = ctx;
	t->leaf = leaf;
	t->lower = lower;
	t->first = first;
	t->first_len = n;
	snprintf(t->name, sizeof(t->name), "%s", sni);
	t->s = (struct stream){
		.ops = &tls_stream_ops,
		.guest_ip = lower->guest_ip,
		.dst_ip = lower->dst_ip,
		.guest_port = lower->guest_port,
		.dst_port = lower->dst_port,
		.sni = t->name,
	};
	mbedtls_ssl_config_init(&t->conf);
	mbedtls_ssl_init(&t->ssl);
	if (conf_setup(t) || mbedtls_ssl_setup(&t->ssl, &t->conf)) {
		tls_server_free(t);
		return NULL;
	}
	mbedtls_ssl_set_bio(&t->ssl, t, tls_send, tls_recv, NULL);
	lower->event = on_lower;
	lower->ud = t;
	return t;
}

/**
 * tls_server_free() - release a flow (the lower stream is the caller's)
 * @t:		flow, or NULL
 */
void tls_server_free(struct tls_server *t)
{
	if (!t)
		return;
	if (t->lower && t->lower->ud == t)
		t->lower->event = NULL;
	mbedtls_ssl_free(&t->ssl);
	mbedtls_ssl_config_free(&t->conf);
	tls_leaf_unref(t->leaf);
	free(t);
}
