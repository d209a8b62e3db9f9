/* SPDX-License-Identifier: MIT */
/* client.c - the TLS client toward upstream servers: verification, resumption */

/*
 * Theory of Operation
 *
 * When a mediated request goes to an https origin, the host opens its own
 * TLS connection to the server (http/upstream.c drives the socket; this
 * file is only mbedTLS, no libuv, no Lua).
 *
 * Configuration: one struct tls_client_conf per VM (its upstream pool),
 * reference counted because a connection may outlive the pool that made
 * it. TLS 1.2 client (mbedTLS 2.28 has no 1.3), MBEDTLS_SSL_VERIFY_REQUIRED,
 * ALPN "http/1.1", renegotiation disabled, session tickets on, and its own
 * entropy and ctr_drbg. Trust anchors are the policy's upstream_ca
 * certificates (parsed when the conf is made) plus the host's bundle
 * (TLS_CLIENT_BUNDLE), parsed on the first connection only, because
 * parsing ~140 certificates costs milliseconds a VM that never speaks
 * HTTPS should not pay. A missing bundle leaves only the extra CAs; no
 * anchor at all fails every connection with a clear reason.
 *
 * Names: the requested host is both the SNI and the name verified
 * (mbedtls_ssl_set_hostname(): dNSName SANs, wildcards, else the CN). An
 * IP literal sends no SNI (RFC 6066 forbids it); a per-connection verify
 * callback then checks the leaf for an iPAddress SAN with the same bytes,
 * or a dNSName/CN spelling the literal, and flags a name mismatch
 * otherwise, so IP origins are verified too.
 *
 * Memory BIO: mbedTLS never touches a socket. Ciphertext read from the
 * server is appended to @in (TLS_CLIENT_IN_MAX; the owner reads the
 * socket only while tls_client_in_space() has room) and bio_recv() hands
 * it out, answering WANT_READ when it is empty, or 0 (end of stream)
 * after tls_client_in_end(). mbedTLS itself holds at most one record
 * (16 KiB plus overhead) of what it took. Ciphertext out goes to the
 * owner's sink, which takes every record whole: the owner bounds what it
 * feeds in, and tls_client_room() turns its free ciphertext room into
 * plaintext bytes, counting the per-record expansion of the worst case of
 * our staging (see tls_client_write()). So WANT_WRITE never happens and
 * no caller buffer is pinned by mbedTLS's retry contract.
 *
 * Plaintext out is staged in @stage (TLS_CLIENT_STAGE) so that many small
 * pieces (a chunk header, its data, its CRLF) become one record; writes
 * of at least a stage go straight to mbedTLS. tls_client_flush() ends a
 * batch.
 *
 * Resumption: after each completed handshake the session is copied into
 * the conf, keyed "host:port", in a TLS_CLIENT_SESSIONS-slot LRU; the
 * next connection to that origin offers it (ticket or session id). The
 * session was verified for the same name against the same anchors, so
 * trusting its resumption is the same decision. A handshake that failed
 * forgets its origin's session. Whether the server accepted it is seen
 * from the state machine: a full TLS 1.2 handshake passes through
 * SERVER_CERTIFICATE, an abbreviated one jumps from ServerHello to the
 * server's ChangeCipherSpec. stats.resumed counts it.
 *
 * Failures carry a short reason in @why ("upstream certificate not
 * trusted: ...", "upstream certificate name mismatch: ...", "upstream TLS
 * handshake failed: ..."), built from mbedtls_x509_crt_verify_info() and
 * mbedtls_strerror(), bounded by TLS_CLIENT_WHY_MAX.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>

#include "tls/client.h"
#include "tls/conf.h"

#define PEM_CERT_BEGIN	"-----BEGIN CERTIFICATE-----"
#define SAN_DNS		(MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_DNS_NAME)
#define SAN_IP		(MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_IP_ADDRESS)

/**
 * struct tls_client - one upstream TLS connection
 * @ssl:	mbedTLS context
 * @conf:	shared configuration (one reference)
 * @sink:	where ciphertext goes, with @ud
 * @ud:		its data
 * @key:	"host:port" (session cache)
 * @host:	the name verified (also for IP literals)
 * @ip:		@host is an IP literal: @ipb holds its @iplen bytes
 * @ipb:	its address bytes
 * @iplen:	4 or 16
 * @offered:	a kept session was offered
 * @full:	the handshake went through the server's Certificate
 * @resumed:	the handshake was abbreviated
 * @done:	the handshake completed
 * @in_end:	no ciphertext follows what is in @in
 * @in_off:	start of unread bytes in @in
 * @in_len:	end of them
 * @nstage:	bytes in @stage
 * @why:	failure reason
 * @in:		ciphertext from the server
 * @stage:	plaintext not yet made into a record
 */
struct tls_client {
	mbedtls_ssl_context ssl;
	struct tls_client_conf *conf;
	tls_client_sink sink;
	void *ud;
	char key[TLS_CLIENT_KEY_MAX];
	char host[TLS_CLIENT_KEY_MAX];
	bool ip;
	unsigned char ipb[16];
	size_t iplen;
	bool offered, full, resumed, done, in_end;
	size_t in_off, in_len, nstage;
	char why[TLS_CLIENT_WHY_MAX];
	unsigned char in[TLS_CLIENT_IN_MAX];
	unsigned char stage[TLS_CLIENT_STAGE];
};

/* ---- certificates ---- */

/**
 * crt_count() - certificates in a chain
 * @crt:	chain head (an empty head counts 0)
 *
 * Return: their number.
 */
static size_t crt_count(const mbedtls_x509_crt *crt)
{
	size_t n = 0;

	for (; crt && crt->version != 0; crt = crt->next)
		n++;
	return n;
}

/**
 * parse_pem() - append the certificates of a PEM text to @chain
 * @chain:	chain (initialised)
 * @pem:	text, not necessarily NUL-terminated
 * @len:	its length
 * @err:	reason on failure
 * @errlen:	its size
 *
 * Return: 0 when every certificate parsed and there was one at least,
 * -EINVAL otherwise, -ENOMEM.
 */
static int parse_pem(mbedtls_x509_crt *chain, const char *pem, size_t len,
		     char *err, size_t errlen)
{
	size_t before = crt_count(chain);
	char msg[96];
	char *buf;
	int rc;

	if (len == 0) {
		snprintf(err, errlen, "empty file (PEM expected)");
		return -EINVAL;
	}
	if (!memmem(pem, len, PEM_CERT_BEGIN, sizeof(PEM_CERT_BEGIN) - 1)) {
		snprintf(err, errlen, "no certificate found (PEM expected)");
		return -EINVAL;
	}
	buf = malloc(len + 1);		/* mbedTLS wants the NUL counted */
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	memcpy(buf, pem, len);
	buf[len] = '\0';
	rc = mbedtls_x509_crt_parse(chain, (const unsigned char *)buf, len + 1);
	free(buf);
	if (rc < 0) {
		mbedtls_strerror(rc, msg, sizeof(msg));
		snprintf(err, errlen, "invalid certificate: %s", msg);
		return -EINVAL;
	}
	if (rc > 0) {
		snprintf(err, errlen, "%d certificate(s) could not be parsed", rc);
		return -EINVAL;
	}
	if (crt_count(chain) == before) {
		snprintf(err, errlen, "no certificate found (PEM expected)");
		return -EINVAL;
	}
	return 0;
}

/**
 * tls_client_ca_check() - is this PEM text a usable list of certificates
 * @pem:	text
 * @len:	its length
 * @err:	reason when not
 * @errlen:	its size
 *
 * Return: 0, or -EINVAL / -ENOMEM.
 */
int tls_client_ca_check(const char *pem, size_t len, char *err, size_t errlen)
{
	mbedtls_x509_crt chain;
	int rc;

	mbedtls_x509_crt_init(&chain);
	rc = parse_pem(&chain, pem, len, err, errlen);
	mbedtls_x509_crt_free(&chain);
	return rc;
}

/**
 * read_all() - read a whole regular file of bounded size
 * @fd:		open descriptor
 * @out:	malloc'd bytes, NUL-terminated
 * @len:	their number (without the NUL)
 * @err:	reason on failure
 * @errlen:	its size
 *
 * Return: 0, or a negative errno.
 */
static int read_all(int fd, char **out, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	size_t got = 0;
	ssize_t r;
	char *buf;

	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -EIO;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s", S_ISDIR(st.st_mode) ? "is a directory" :
			 "not a regular file");
		return -EINVAL;
	}
	if (st.st_size > TLS_CLIENT_CA_FILE_MAX) {
		snprintf(err, errlen, "larger than %d bytes", TLS_CLIENT_CA_FILE_MAX);
		return -EFBIG;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	return 0;
}

/**
 * tls_client_ca_load() - read and check one upstream_ca file
 * @path:	file name
 * @pem:	out: its bytes (malloc'd, NUL-terminated; the caller frees)
 * @len:	out: their number
 * @err:	reason on failure (without the path)
 * @errlen:	its size
 *
 * Return: 0, or a negative errno.
 */
int tls_client_ca_load(const char *path, char **pem, size_t *len,
		       char *err, size_t errlen)
{
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s", strerror(-rc));
		return rc;
	}
	rc = read_all(fd, pem, len, err, errlen);
	close(fd);
	if (rc < 0)
		return rc;
	rc = tls_client_ca_check(*pem, *len, err, errlen);
	if (rc < 0) {
		free(*pem);
		*pem = NULL;
	}
	return rc;
}

/* ---- configuration ---- */

/**
 * tls_client_conf_new() - the shared client configuration of one VM
 * @ca_pem:	extra trust anchors (PEM texts), e.g. the policy's upstream_ca
 * @ca_len:	their lengths
 * @n:		their number
 * @err:	reason on failure
 * @errlen:	its size (TLS_CLIENT_ERR_MAX suffices)
 *
 * The host's bundle is added on the first connection (tls_client_new()).
 *
 * Return: the configuration with one reference, or NULL.
 */
struct tls_client_conf *tls_client_conf_new(const char *const *ca_pem,
					    const size_t *ca_len, size_t n,
					    char *err, size_t errlen)
{
	static const char pers[] = "gondolin tls client";
	struct tls_client_conf *conf = calloc(1, sizeof(*conf));
	char why[TLS_CLIENT_ERR_MAX];
	size_t i;

	if (!conf) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	conf->refs = 1;
	conf->bundle = TLS_CLIENT_BUNDLE;
	conf->alpn[0] = "http/1.1";
	mbedtls_ssl_config_init(&conf->ssl);
	mbedtls_entropy_init(&conf->entropy);
	mbedtls_ctr_drbg_init(&conf->drbg);
	mbedtls_x509_crt_init(&conf->chain);
	for (i = 0; i < TLS_CLIENT_SESSIONS; i++)
		mbedtls_ssl_session_init(&conf->sessions[i].session);
	for (i = 0; i < n; i++) {
		if (parse_pem(&conf->chain, ca_pem[i], ca_len[i], why, sizeof(why)) < 0) {
			snprintf(err, errlen, "upstream_ca %zu: %s", i + 1, why);
			goto fail;
		}
	}
	if (mbedtls_ctr_drbg_seed(&conf->drbg, mbedtls_entropy_func, &conf->entropy,
				  (const unsigned char *)pers, sizeof(pers) - 1)) {
		snprintf(err, errlen, "no entropy for the TLS client");
		goto fail;
	}
	if (tls_conf_base(&conf->ssl, MBEDTLS_SSL_IS_CLIENT, &conf->drbg, conf->alpn)) {
		snprintf(err, errlen, "cannot configure the TLS client");
		goto fail;
	}
	mbedtls_ssl_conf_authmode(&conf->ssl, MBEDTLS_SSL_VERIFY_REQUIRED);
	mbedtls_ssl_conf_session_tickets(&conf->ssl, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
	return conf;
fail:
	tls_client_conf_unref(conf);
	return NULL;
}

/**
 * tls_client_conf_ref() - take a reference
 * @conf:	configuration
 */
void tls_client_conf_ref(struct tls_client_conf *conf)
{
	conf->refs++;
}

/**
 * tls_client_conf_unref() - drop a reference; the last one frees
 * @conf:	configuration, or NULL
 */
void tls_client_conf_unref(struct tls_client_conf *conf)
{
	size_t i;

	if (!conf || --conf->refs > 0)
		return;
	for (i = 0; i < TLS_CLIENT_SESSIONS; i++)
		mbedtls_ssl_session_free(&conf->sessions[i].session);
	mbedtls_ssl_config_free(&conf->ssl);
	mbedtls_x509_crt_free(&conf->chain);
	mbedtls_ctr_drbg_free(&conf->drbg);
	mbedtls_entropy_free(&conf->entropy);
	free(conf);
}

/**
 * load_bundle() - add the host's CA bundle to the anchors, once
 * @conf:	configuration
 *
 * A missing or partly unreadable bundle keeps what parsed.
 */
static void load_bundle(struct tls_client_conf *conf)
{
	size_t before;

	if (conf->bundle_done)
		return;
	conf->bundle_done = true;
	before = crt_count(&conf->chain);
	if (access(conf->bundle, R_OK) == 0)
		(void)mbedtls_x509_crt_parse_file(&conf->chain, conf->bundle);
	conf->nbundle = crt_count(&conf->chain) - before;
	mbedtls_ssl_conf_ca_chain(&conf->ssl, &conf->chain, NULL);
}

/**
 * tls_client_conf_stats() - what the configuration's connections did
 * @conf:	configuration
 *
 * Return: the counters.
 */
const struct tls_client_stats *tls_client_conf_stats(const struct tls_client_conf *conf)
{
	return &conf->stats;
}

/* ---- session cache ---- */

/**
 * session_find() - the kept session of an origin
 * @conf:	configuration
 * @key:	"host:port"
 *
 * Return: its slot, or NULL.
 */
static struct tls_client_session *session_find(struct tls_client_conf *conf,
					       const char *key)
{
	size_t i;

	for (i = 0; i < TLS_CLIENT_SESSIONS; i++)
		if (conf->sessions[i].key[0] && !strcmp(conf->sessions[i].key, key))
			return &conf->sessions[i];
	return NULL;
}

/**
 * session_forget() - drop an origin's kept session
 * @conf:	configuration
 * @key:	"host:port"
 */
static void session_forget(struct tls_client_conf *conf, const char *key)
{
	struct tls_client_session *s = session_find(conf, key);

	if (!s)
		return;
	mbedtls_ssl_session_free(&s->session);
	mbedtls_ssl_session_init(&s->session);
	s->key[0] = '\0';
}

/**
 * session_keep() - keep the session of a completed handshake
 * @c:		connection
 *
 * Replaces the origin's slot, else a free one, else the least recently
 * used.
 */
static void session_keep(struct tls_client *c)
{
	struct tls_client_conf *conf = c->conf;
	struct tls_client_session *s = session_find(conf, c->key);
	size_t i;

	for (i = 0; !s && i < TLS_CLIENT_SESSIONS; i++)
		if (!conf->sessions[i].key[0])
			s = &conf->sessions[i];
	if (!s) {
		s = &conf->sessions[0];
		for (i = 1; i < TLS_CLIENT_SESSIONS; i++)
			if (conf->sessions[i].used < s->used)
				s = &conf->sessions[i];
	}
	mbedtls_ssl_session_free(&s->session);
	mbedtls_ssl_session_init(&s->session);
	s->key[0] = '\0';
	if (mbedtls_ssl_get_session(&c->ssl, &s->session) != 0)
		return;
	snprintf(s->key, sizeof(s->key), "%s", c->key);
	s->used = ++conf->clock;
}

/* ---- the memory BIO ---- */

/**
 * bio_recv() - mbedTLS wants ciphertext
 * @ctx:	connection
 * @buf:	where
 * @len:	at most
 *
 * Return: bytes, 0 at the end of the stream, or MBEDTLS_ERR_SSL_WANT_READ.
 */
static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
	struct tls_client *c = ctx;
	size_t n = c->in_len - c->in_off;

	if (n == 0)
		return c->in_end ? 0 : MBEDTLS_ERR_SSL_WANT_READ;
	if (n > len)
		n = len;
	memcpy(buf, c->in + c->in_off, n);
	c->in_off += n;
	if (c->in_off == c->in_len)
		c->in_off = c->in_len = 0;
	return (int)n;
}

/**
 * bio_send() - mbedTLS has a record for the server
 * @ctx:	connection
 * @buf:	bytes
 * @len:	their number
 *
 * Return: @len, or MBEDTLS_ERR_NET_SEND_FAILED.
 */
static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
	struct tls_client *c = ctx;

	return c->sink(c->ud, buf, len) < 0 ? MBEDTLS_ERR_NET_SEND_FAILED : (int)len;
}

/**
 * tls_client_in_space() - where ciphertext read from the socket may go
 * @c:		connection
 * @room:	out: bytes free there (0: stop reading the socket)
 *
 * Return: the free end of the input buffer.
 */
unsigned char *tls_client_in_space(struct tls_client *c, size_t *room)
{
	if (c->in_off > 0) {
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->in_off = 0;
	}
	*room = sizeof(c->in) - c->in_len;
	return c->in + c->in_len;
}

/**
 * tls_client_in_commit() - @n bytes landed in tls_client_in_space()
 * @c:		connection
 * @n:		at most the room it gave
 */
void tls_client_in_commit(struct tls_client *c, size_t n)
{
	if (n <= sizeof(c->in) - c->in_len)
		c->in_len += n;
}

/**
 * tls_client_in_end() - the server's side of the socket ended
 * @c:		connection
 */
void tls_client_in_end(struct tls_client *c)
{
	c->in_end = true;
}

/* ---- verification ---- */

/**
 * leaf_names_ip() - does a certificate name the IP literal we asked for
 * @c:		connection (@ip set)
 * @crt:	the server's certificate
 *
 * An iPAddress SAN with the same bytes, or a dNSName spelling it; without
 * a SAN extension, a CN spelling it.
 *
 * Return: true when it does.
 */
static bool leaf_names_ip(const struct tls_client *c, const mbedtls_x509_crt *crt)
{
	size_t hlen = strlen(c->host);
	const mbedtls_x509_sequence *s;
	const mbedtls_x509_name *n;

	if (crt->ext_types & MBEDTLS_X509_EXT_SUBJECT_ALT_NAME) {
		for (s = &crt->subject_alt_names; s && s->buf.p; s = s->next) {
			if (s->buf.tag == SAN_IP && s->buf.len == c->iplen &&
			    !memcmp(s->buf.p, c->ipb, c->iplen))
				return true;
			if (s->buf.tag == SAN_DNS && s->buf.len == hlen &&
			    !strncasecmp((const char *)s->buf.p, c->host, hlen))
				return true;
		}
		return false;
	}
	for (n = &crt->subject; n; n = n->next)
		if (n->oid.p && !MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) &&
		    n->val.len == hlen && !memcmp(n->val.p, c->host, hlen))
			return true;
	return false;
}

/**
 * verify_ip() - per-certificate verify callback for IP literal origins
 * @ctx:	connection
 * @crt:	certificate being checked
 * @depth:	0 for the server's own
 * @flags:	verification flags, to add to
 *
 * Return: 0 (the flags decide).
 */
static int verify_ip(void *ctx, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
	if (depth == 0 && !leaf_names_ip(ctx, crt))
		*flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
	return 0;
}

/**
 * one_line() - make mbedTLS's multi-line text one line
 * @s:		text, changed in place
 */
static void one_line(char *s)
{
	size_t n = strlen(s);
	char *p;

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
	for (p = s; *p; p++)
		if (*p == '\n')
			*p = ';';
}

/**
 * handshake_failed() - record why a handshake failed
 * @c:		connection
 * @rc:		mbedTLS error
 */
static void handshake_failed(struct tls_client *c, int rc)
{
	uint32_t flags;
	char info[128];

	c->conf->stats.failures++;
	session_forget(c->conf, c->key);
	if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
		flags = mbedtls_ssl_get_verify_result(&c->ssl);
		if (mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags) < 0)
			snprintf(info, sizeof(info), "flags 0x%x", (unsigned)flags);
		one_line(info);
		if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
			snprintf(c->why, sizeof(c->why), "upstream certificate not trusted: %s", info);
		else if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH)
			snprintf(c->why, sizeof(c->why),
				 "upstream certificate name mismatch: not valid for %.100s", c->host);
		else
			snprintf(c->why, sizeof(c->why), "upstream certificate rejected: %s", info);
		return;
	}
	if (rc == MBEDTLS_ERR_SSL_CONN_EOF)
		snprintf(info, sizeof(info), "the server closed the connection");
	else if (rc == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE)
		snprintf(info, sizeof(info), "the server sent a fatal alert");
	else
		mbedtls_strerror(rc, info, sizeof(info));
	snprintf(c->why, sizeof(c->why), "upstream TLS handshake failed: %s", info);
}

/* ---- connections ---- */

/**
 * tls_client_new() - a client for one connection to host:port
 * @conf:	configuration (a reference is taken)
 * @host:	requested host, normalised: a name, or an IP literal
 * @port:	port (session cache key)
 * @sink:	where ciphertext goes
 * @ud:		its data
 * @err:	reason on failure
 * @errlen:	its size
 *
 * Loads the host's CA bundle the first time. Nothing is sent until
 * tls_client_handshake().
 *
 * Return: the connection, or NULL.
 */
struct tls_client *tls_client_new(struct tls_client_conf *conf,
				  const char *host, unsigned port,
				  tls_client_sink sink, void *ud,
				  char *err, size_t errlen)
{
	struct tls_client_session *s;
	struct tls_client *c;
	bool v6;

	load_bundle(conf);
	if (crt_count(&conf->chain) == 0) {
		snprintf(err, errlen, "upstream TLS: no trusted CA (%s is missing and no upstream_ca is set)",
			 conf->bundle);
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	mbedtls_ssl_init(&c->ssl);
	if (mbedtls_ssl_setup(&c->ssl, &conf->ssl) != 0) {
		mbedtls_ssl_free(&c->ssl);
		free(c);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->conf = conf;
	tls_client_conf_ref(conf);
	c->sink = sink;
	c->ud = ud;
	snprintf(c->host, sizeof(c->host), "%s", host);
	v6 = inet_pton(AF_INET6, host, c->ipb) == 1;
	c->ip = v6 || inet_pton(AF_INET, host, c->ipb) == 1;
	c->iplen = v6 ? 16 : 4;
	snprintf(c->key, sizeof(c->key), v6 ? "[%s]:%u" : "%s:%u", host, port);
	if (c->ip)
		mbedtls_ssl_set_verify(&c->ssl, verify_ip, c);	/* and no SNI */
	else if (mbedtls_ssl_set_hostname(&c->ssl, host) != 0) {
		snprintf(err, errlen, "upstream TLS: invalid host name");
		tls_client_free(c);
		return NULL;
	}
	mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
	s = session_find(conf, c->key);
	if (s && mbedtls_ssl_set_session(&c->ssl, &s->session) == 0) {
		c->offered = true;
		s->used = ++conf->clock;
	}
	return c;
}

/**
 * tls_client_free() - free a connection (no close_notify)
 * @c:		connection, or NULL
 */
void tls_client_free(struct tls_client *c)
{
	if (!c)
		return;
	mbedtls_ssl_free(&c->ssl);
	tls_client_conf_unref(c->conf);
	free(c);
}

/**
 * tls_client_handshake() - advance the handshake with what has arrived
 * @c:		connection
 *
 * Return: 0 once complete, -EAGAIN for more ciphertext, -EPROTO on
 * failure (tls_client_why() says why).
 */
int tls_client_handshake(struct tls_client *c)
{
	int rc;

	if (c->done)
		return 0;
	if (c->why[0])
		return -EPROTO;
	while (c->ssl.state != MBEDTLS_SSL_HANDSHAKE_OVER) {
		rc = mbedtls_ssl_handshake_step(&c->ssl);
		if (c->ssl.state == MBEDTLS_SSL_SERVER_CERTIFICATE)
			c->full = true;
		if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
			return -EAGAIN;
		if (rc != 0) {
			handshake_failed(c, rc);
			return -EPROTO;
		}
	}
	c->done = true;
	c->resumed = c->offered && !c->full;
	c->conf->stats.handshakes++;
	c->conf->stats.offered += c->offered;
	c->conf->stats.resumed += c->resumed;
	session_keep(c);
	return 0;
}

/**
 * tls_client_read() - decrypted bytes from the server
 * @c:		connection (handshake complete)
 * @buf:	where
 * @len:	at most
 *
 * Return: bytes, 0 at the end (close_notify, or the socket ended without
 * one: servers often do that after a complete response, and the HTTP
 * framing above tells a truncated body), -EAGAIN when more ciphertext is
 * needed, -EPROTO on a TLS error (tls_client_why()).
 */
ssize_t tls_client_read(struct tls_client *c, void *buf, size_t len)
{
	char info[96];
	int rc;

	rc = mbedtls_ssl_read(&c->ssl, buf, len);
	if (rc > 0)
		return rc;
	if (rc == 0 || rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || rc == MBEDTLS_ERR_SSL_CONN_EOF)
		return 0;
	if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
		return -EAGAIN;
	mbedtls_strerror(rc, info, sizeof(info));
	snprintf(c->why, sizeof(c->why), "upstream TLS: %s", info);
	return -EPROTO;
}

/**
 * ssl_write_all() - make records of @len plaintext bytes
 * @c:		connection
 * @p:		bytes
 * @len:	their number
 *
 * Return: 0, or -EPIPE (the sink failed, or mbedTLS did).
 */
static int ssl_write_all(struct tls_client *c, const unsigned char *p, size_t len)
{
	int rc;

	while (len > 0) {
		rc = mbedtls_ssl_write(&c->ssl, p, len);
		if (rc <= 0)		/* WANT_WRITE cannot happen: the sink takes all */
			return -EPIPE;
		p += rc;
		len -= (size_t)rc;
	}
	return 0;
}

/**
 * tls_client_flush() - make a record of the staged plaintext
 * @c:		connection
 *
 * Return: 0, or -EPIPE.
 */
int tls_client_flush(struct tls_client *c)
{
	size_t n = c->nstage;

	c->nstage = 0;
	return n ? ssl_write_all(c, c->stage, n) : 0;
}

/**
 * tls_client_write() - plaintext toward the server (staged; see flush)
 * @c:		connection (handshake complete)
 * @buf:	bytes
 * @len:	their number
 *
 * Bytes are staged until TLS_CLIENT_STAGE fill; a write of at least that
 * much (with an empty stage) becomes records directly. Between two
 * flushes, records are either full stages, direct writes of at least a
 * stage, or one last partial stage: tls_client_room() counts on that.
 *
 * Return: 0, or -EPIPE.
 */
int tls_client_write(struct tls_client *c, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	size_t n;

	while (len > 0) {
		if (c->nstage == 0 && len >= TLS_CLIENT_STAGE)
			return ssl_write_all(c, p, len);
		n = TLS_CLIENT_STAGE - c->nstage;
		if (n > len)
			n = len;
		memcpy(c->stage + c->nstage, p, n);
		c->nstage += n;
		p += n;
		len -= n;
		if (c->nstage == TLS_CLIENT_STAGE && tls_client_flush(c) < 0)
			return -EPIPE;
	}
	return 0;
}

/**
 * tls_client_room() - plaintext that fits in @wire bytes of ciphertext
 * @c:		connection
 * @wire:	ciphertext room
 *
 * With records of at least a stage except the last, T plaintext bytes
 * make at most T / TLS_CLIENT_STAGE + 2 records (a partial stage before
 * a direct write, the last partial one) of mbedTLS's expansion each.
 *
 * Return: T such that writing T bytes and flushing produces <= @wire.
 */
size_t tls_client_room(const struct tls_client *c, size_t wire)
{
	int e = mbedtls_ssl_get_record_expansion(&c->ssl);
	size_t exp = e > 0 ? (size_t)e : TLS_CLIENT_OVERHEAD;

	if (wire <= 2 * exp)
		return 0;
	return (wire - 2 * exp) / (TLS_CLIENT_STAGE + exp) * TLS_CLIENT_STAGE +
	       ((wire - 2 * exp) % (TLS_CLIENT_STAGE + exp)) * TLS_CLIENT_STAGE /
	       (TLS_CLIENT_STAGE + exp);
}

/**
 * tls_client_close_notify() - tell the server we are done sending
 * @c:		connection
 *
 * Return: 0, or -EPIPE.
 */
int tls_client_close_notify(struct tls_client *c)
{
	if (tls_client_flush(c) < 0)
		return -EPIPE;
	return mbedtls_ssl_close_notify(&c->ssl) == 0 ? 0 : -EPIPE;
}

/**
 * tls_client_pending() - does anything from the server wait to be read
 * @c:		connection
 *
 * Return: true when decrypted bytes, a partial record or unread
 * ciphertext is held, or the end of the stream is still to be reported.
 */
bool tls_client_pending(const struct tls_client *c)
{
	return c->in_off < c->in_len || c->in_end ||
	       mbedtls_ssl_get_bytes_avail(&c->ssl) > 0 ||
	       mbedtls_ssl_check_pending(&c->ssl);
}

/**
 * tls_client_resumed() - was the handshake abbreviated
 * @c:		connection
 *
 * Return: true when the server accepted the session we kept.
 */
bool tls_client_resumed(const struct tls_client *c)
{
	return c->resumed;
}

/**
 * tls_client_why() - why the handshake or a read failed
 * @c:		connection
 *
 * Return: the text ("" when nothing failed); valid until tls_client_free().
 */
const char *tls_client_why(const struct tls_client *c)
{
	return c->why;
}
