/* SPDX-License-Identifier: MIT */
/* server.h - the TLS server the guest talks to: a stream over a stream */
#ifndef GONDOLIN_TLS_SERVER_H
#define GONDOLIN_TLS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>

#include "net/stream.h"

#define TLS_RECORD_MAX	(16384 + 2048)	/* largest TLS 1.2 ciphertext fragment */
#define TLS_PLAIN_MAX	16384		/* decrypted bytes held for the reader */
#define TLS_COUT_MAX	(2 * (TLS_RECORD_MAX + 5))	/* ciphertext toward the guest */

struct tls_leaf;

/**
 * struct tls_server_ctx - what every guest TLS flow of one interface shares
 * @entropy, @drbg:	its random numbers
 * @ticket:		session ticket keys
 * @alpn:		ALPN protocols offered (NULL-terminated)
 * @suites:		cipher suites, ours first (0-terminated)
 * @handshakes:		handshakes completed (statistics)
 * @resumed:		of them, resumed from a ticket
 * @failures:		flows closed by a TLS error
 */
struct tls_server_ctx {
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_ssl_ticket_context ticket;
	const char *alpn[2];
	const int *suites;
	uint64_t handshakes, resumed, failures;
};

int tls_server_ctx_init(struct tls_server_ctx *ctx, bool chacha_first);
void tls_server_ctx_free(struct tls_server_ctx *ctx);

/**
 * struct tls_server - one guest flow's TLS server
 * @s:		the decrypted stream (first member), what the HTTP side uses
 * @lower:	the ciphertext stream (the guest TCP connection)
 * @ctx:	shared state
 * @leaf:	the certificate presented (a reference)
 * @conf, @ssl:	mbedTLS state; @conf is per flow so that @leaf is its own cert
 * @first:	ClientHello bytes the classifier already read, @first_len
 *		their number, @first_off how many mbedTLS took
 * @rec_hdr, @rec_have, @rec_left: the guest's record framing, followed
 *		across reads so that handshake records after the handshake
 *		(renegotiation) are seen before mbedTLS handles them
 * @plain:	decrypted bytes not yet read, [@poff, @plen)
 * @cout:	ciphertext not yet taken by @lower, [@coff, @clen)
 * @name:	SNI as sent, "" when none (what @s.sni points at)
 * @error:	why the flow failed, NULL while it has not
 * @bio_error:	a reason tls_recv() found, for the mbedTLS error it causes
 * @on_error:	told once, before the lower stream is reset, @ud its data
 */
struct tls_server {
	struct stream s;
	struct stream *lower;
	struct tls_server_ctx *ctx;
	struct tls_leaf *leaf;
	mbedtls_ssl_config conf;
	mbedtls_ssl_context ssl;
	const uint8_t *first;
	size_t first_len, first_off;
	uint8_t rec_hdr[5];
	size_t rec_have, rec_left;
	bool established;	/* handshake done */
	bool lower_fin;		/* the guest's TCP FIN arrived */
	bool peer_closed;	/* close_notify, or FIN after the last record */
	bool fin_sent_up;	/* STREAM_FIN went to the reader */
	bool write_blocked;	/* a short write owes STREAM_WRITABLE */
	bool shutting;		/* shutdown(): FIN once @cout is flushed */
	bool gone;		/* the lower stream reset or closed */
	uint8_t plain[TLS_PLAIN_MAX];
	size_t poff, plen;
	uint8_t cout[TLS_COUT_MAX];
	size_t coff, clen;
	char name[254];
	const char *error;
	const char *bio_error;
	void (*on_error)(void *ud, const char *why);
	void *ud;
};

struct tls_server *tls_server_new(struct tls_server_ctx *ctx, struct stream *lower,
				  struct tls_leaf *leaf, const char *sni,
				  const uint8_t *first, size_t n);
void tls_server_start(struct tls_server *t);
void tls_server_free(struct tls_server *t);

#endif /* GONDOLIN_TLS_SERVER_H */
