/* SPDX-License-Identifier: MIT */
/* client.h - the TLS client toward upstream servers: verification, resumption */
#ifndef GONDOLIN_TLS_CLIENT_H
#define GONDOLIN_TLS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#define TLS_CLIENT_BUNDLE	"/etc/ssl/certs/ca-certificates.crt"
#define TLS_CLIENT_CA_FILE_MAX	(1024 * 1024)	/* one upstream_ca file */
#define TLS_CLIENT_SESSIONS	32		/* origins whose session is kept */
#define TLS_CLIENT_KEY_MAX	(253 + 1 + 5 + 1)	/* "host:port" */
#define TLS_CLIENT_IN_MAX	(16 * 1024)	/* ciphertext read, not yet decrypted */
#define TLS_CLIENT_OVERHEAD	128		/* record expansion when mbedTLS cannot say */
#define TLS_CLIENT_STAGE	4096		/* small writes gathered into one record */
#define TLS_CLIENT_WHY_MAX	192		/* failure text, with its prefix */
#define TLS_CLIENT_ERR_MAX	160		/* configuration error text */

/**
 * struct tls_client_session - the last session of one origin
 * @key:	"host:port", "" when the slot is free
 * @session:	what mbedtls_ssl_get_session() copied
 * @used:	conf->clock when last stored or taken (LRU)
 */
struct tls_client_session {
	char key[TLS_CLIENT_KEY_MAX];
	mbedtls_ssl_session session;
	uint64_t used;
};

/**
 * struct tls_client_stats - what a configuration's connections did
 * @handshakes:	handshakes completed
 * @resumed:	of those, abbreviated (a kept session was accepted)
 * @offered:	handshakes that offered a kept session
 * @failures:	handshakes that failed (verification included)
 */
struct tls_client_stats {
	uint64_t handshakes, resumed, offered, failures;
};

/**
 * struct tls_client_conf - what every upstream TLS connection of a VM shares
 * @ssl:	TLS 1.2 client, VERIFY_REQUIRED, ALPN http/1.1, no renegotiation
 * @entropy, @drbg: its random numbers (seeded once, per conf)
 * @chain:	trust anchors: the extra CAs, then (lazily) the host's bundle
 * @alpn:	"http/1.1", NULL
 * @bundle:	path of the host bundle (TLS_CLIENT_BUNDLE)
 * @bundle_done: the bundle was loaded (or found missing): tried once
 * @nbundle:	certificates taken from the bundle
 * @sessions:	last session per origin, @clock orders them
 * @clock:	LRU counter
 * @stats:	counters
 * @refs:	references (the owner, each live connection)
 */
struct tls_client_conf {
	mbedtls_ssl_config ssl;
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_x509_crt chain;
	const char *alpn[2];
	const char *bundle;
	bool bundle_done;
	size_t nbundle;
	struct tls_client_session sessions[TLS_CLIENT_SESSIONS];
	uint64_t clock;
	struct tls_client_stats stats;
	unsigned refs;
};

/**
 * tls_client_sink - where a connection's ciphertext goes (the socket)
 * @ud:		tls_client_new()'s @ud
 * @buf:	bytes
 * @len:	their number
 *
 * Must take everything (the owner bounds what it feeds in; see client.c).
 * Return: @len, or a negative value (the connection is broken).
 */
typedef int (*tls_client_sink)(void *ud, const unsigned char *buf, size_t len);

struct tls_client;

struct tls_client_conf *tls_client_conf_new(const char *const *ca_pem,
					    const size_t *ca_len, size_t n,
					    char *err, size_t errlen);
void tls_client_conf_ref(struct tls_client_conf *conf);
void tls_client_conf_unref(struct tls_client_conf *conf);
const struct tls_client_stats *tls_client_conf_stats(const struct tls_client_conf *conf);
int tls_client_ca_load(const char *path, char **pem, size_t *len,
		       char *err, size_t errlen);
int tls_client_ca_check(const char *pem, size_t len, char *err, size_t errlen);

struct tls_client *tls_client_new(struct tls_client_conf *conf,
				  const char *host, unsigned port,
				  tls_client_sink sink, void *ud,
				  char *err, size_t errlen);
void tls_client_free(struct tls_client *c);
unsigned char *tls_client_in_space(struct tls_client *c, size_t *room);
void tls_client_in_commit(struct tls_client *c, size_t n);
void tls_client_in_end(struct tls_client *c);
int tls_client_handshake(struct tls_client *c);
ssize_t tls_client_read(struct tls_client *c, void *buf, size_t len);
int tls_client_write(struct tls_client *c, const void *buf, size_t len);
int tls_client_flush(struct tls_client *c);
size_t tls_client_room(const struct tls_client *c, size_t wire);
int tls_client_close_notify(struct tls_client *c);
bool tls_client_pending(const struct tls_client *c);
bool tls_client_resumed(const struct tls_client *c);
const char *tls_client_why(const struct tls_client *c);

#endif /* GONDOLIN_TLS_CLIENT_H */
