/* SPDX-License-Identifier: MIT */
/* ca.c - the per-user interception CA: files, checks, leaf minting */

/*
 * One CA per user, under $XDG_CACHE_HOME/gondolin/ca: ca.key (0600) and
 * ca.crt. EC P-256 for the CA and every leaf: a key is made in well under
 * a millisecond where RSA-2048 takes tens, and every TLS client we care
 * about verifies ECDSA. Made on first use; a CA that exists but does not
 * check out is an error naming the file, never silently replaced: the
 * user may have trusted it elsewhere. `gondolin ca rotate` replaces it.
 *
 * Files are written to a temporary name (O_EXCL, final mode from the
 * start) and renamed, so a reader never sees half a key or a key that was
 * briefly world-readable. Both are written before either is renamed, and
 * every open, make and rotate holds flock() on the directory, so two
 * processes making the first CA at once, or a rotate racing an open,
 * never pair one CA's key with another's certificate.
 *
 * Leaves name the CA as issuer by copying its parsed subject (tags and
 * order kept), so a CA made elsewhere (RSA or EC, any subject) signs
 * leaves that chain to it.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <mbedtls/asn1write.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/platform_util.h>

#include "tls/ca.h"

#define DER_MAX		2048
#define SERIAL_LEN	16
#define PATH_MAX_CA	(TLS_DIR_MAX + 32)	/* dir + "/ca.key.tmp-<pid>" */
#define HOUR_S		3600

/* ---- random, names, time ---- */

static int rng_seed(struct tls_ca *ca)
{
	static const char pers[] = "gondolin ca";

	mbedtls_entropy_init(&ca->entropy);
	mbedtls_ctr_drbg_init(&ca->drbg);
	return mbedtls_ctr_drbg_seed(&ca->drbg, mbedtls_entropy_func, &ca->entropy,
				     (const unsigned char *)pers, sizeof(pers) - 1);
}

/**
 * tls_name_ok() - a name we put in a certificate: a DNS name or IP literal
 * @name:	candidate
 *
 * Only letters, digits and . - _ : (IPv6), 1 to TLS_NAME_MAX bytes: such
 * a name cannot break the subject syntax ("CN=...") or a log line.
 */
bool tls_name_ok(const char *name)
{
	size_t n = strlen(name);

	return n > 0 && n <= TLS_NAME_MAX &&
	       strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:") == n;
}

/* "YYYYMMDDhhmmss" for @t, as x509write wants */
static void x509_time(time_t t, char out[16])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 16, "%Y%m%d%H%M%S", &tm);
}

static void set_err(char *err, size_t len, const char *what, int ret)
{
	char buf[128];

	mbedtls_strerror(ret, buf, sizeof(buf));
	snprintf(err, len, "%s: %s", what, buf);
}

/* ---- writing certificates ---- */

/**
 * put_tlv() - one tag-length-value, written backwards in front of *@p
 * @p:		write position (moves toward @start)
 * @start:	the buffer's beginning
 * @tag:	ASN.1 tag
 * @v, @n:	the value
 *
 * Return: bytes written, or a negative mbedTLS error.
 */
static int put_tlv(unsigned char **p, unsigned char *start, int tag, const void *v, size_t n)
{
	int len = 0, ret;

	MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_raw_buffer(p, start, v, n));
	MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(p, start, n));
	MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_tag(p, start, (unsigned char)tag));
	return len;
}

/**
 * set_seq_ext() - a non-critical extension: SEQUENCE { one TLV }
 * @w:		certificate being written
 * @oid, @oid_len: the extension
 * @tag, @v, @n: the TLV inside the SEQUENCE
 */
static int set_seq_ext(mbedtls_x509write_cert *w, const char *oid, size_t oid_len,
		       int tag, const void *v, size_t n)
{
	unsigned char buf[TLS_NAME_MAX + 32], *p = buf + sizeof(buf);
	int len = 0, ret;

	MBEDTLS_ASN1_CHK_ADD(len, put_tlv(&p, buf, tag, v, n));
	MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(&p, buf, (size_t)len));
	MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_tag(&p, buf,
				MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
	return mbedtls_x509write_crt_set_extension(w, oid, oid_len, 0, p, (size_t)len);
}

/**
 * add_san() - subjectAltName: one dNSName, or one iPAddress for a literal
 * @w:		certificate being written
 * @name:	the name (checked)
 */
static int add_san(mbedtls_x509write_cert *w, const char *name)
{
	unsigned char ip[16];
	size_t iplen = 0;

	if (inet_pton(AF_INET, name, ip) == 1)
		iplen = 4;
	else if (inet_pton(AF_INET6, name, ip) == 1)
		iplen = 16;
	if (iplen)
		return set_seq_ext(w, MBEDTLS_OID_SUBJECT_ALT_NAME,
				   MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME),
				   MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7, ip, iplen);
	return set_seq_ext(w, MBEDTLS_OID_SUBJECT_ALT_NAME, MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME),
			   MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2, name, strlen(name));
}

/* extendedKeyUsage: serverAuth */
static int add_eku(mbedtls_x509write_cert *w)
{
	return set_seq_ext(w, MBEDTLS_OID_EXTENDED_KEY_USAGE, MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE),
			   MBEDTLS_ASN1_OID, MBEDTLS_OID_SERVER_AUTH,
			   MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH));
}

/* authorityKeyIdentifier: [0] the CA's subjectKeyIdentifier */
static int add_aki(mbedtls_x509write_cert *w, const unsigned char *ski, size_t ski_len)
{
	return set_seq_ext(w, MBEDTLS_OID_AUTHORITY_KEY_IDENTIFIER,
			   MBEDTLS_OID_SIZE(MBEDTLS_OID_AUTHORITY_KEY_IDENTIFIER),
			   MBEDTLS_ASN1_CONTEXT_SPECIFIC | 0, ski, ski_len);
}

/**
 * find_ski() - the subjectKeyIdentifier of a parsed certificate
 * @crt:	certificate (mbedTLS 2.28 keeps its extensions only as DER)
 * @out:	TLS_SKI_MAX bytes
 *
 * Every step is bounded by mbedtls_asn1_get_tag(); anything unexpected
 * reads as "none".
 *
 * Return: its length, or 0 when there is none.
 */
static size_t find_ski(const mbedtls_x509_crt *crt, unsigned char *out)
{
	unsigned char *p = crt->v3_ext.p, *end, *ext_end;
	size_t len, olen;
	int crit;

	if (!p)			/* a v1 certificate */
		return 0;
	end = p + crt->v3_ext.len;
	if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE))
		return 0;
	while (p < end) {
		if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE))
			return 0;
		ext_end = p + len;
		if (mbedtls_asn1_get_tag(&p, ext_end, &olen, MBEDTLS_ASN1_OID))
			return 0;
		if (olen != MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_KEY_IDENTIFIER) ||
		    memcmp(p, MBEDTLS_OID_SUBJECT_KEY_IDENTIFIER, olen) != 0) {
			p = ext_end;
			continue;
		}
		p += olen;
		mbedtls_asn1_get_bool(&p, ext_end, &crit);	/* optional */
		if (mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_OCTET_STRING) ||
		    mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_OCTET_STRING) ||
		    len == 0 || len > TLS_SKI_MAX)
			return 0;
		memcpy(out, p, len);
		return len;
	}
	return 0;
}

/* a fresh P-256 key */
static int gen_key(mbedtls_ctr_drbg_context *drbg, mbedtls_pk_context *key)
{
	int ret = mbedtls_pk_setup(key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));

	if (ret)
		return ret;
	return mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*key),
				   mbedtls_ctr_drbg_random, drbg);
}

/**
 * copy_issuer() - the issuer name of @w = @dn, an already parsed name
 * @w:		certificate being written (its issuer list empty)
 * @dn:		the CA certificate's subject
 *
 * x509write keeps names as a list written back to front, each node with
 * its string tag; the parsed list runs front to back, so prepending each
 * node reproduces the CA's subject DER exactly. x509write_crt_free()
 * frees what is allocated here.
 *
 * Return: 0 or MBEDTLS_ERR_X509_ALLOC_FAILED.
 */
static int copy_issuer(mbedtls_x509write_cert *w, const mbedtls_x509_name *dn)
{
	mbedtls_asn1_named_data *n;

	for (; dn; dn = dn->next) {
		n = calloc(1, sizeof(*n));
		if (!n)
			return MBEDTLS_ERR_X509_ALLOC_FAILED;
		n->next = w->issuer;
		w->issuer = n;
		n->oid = dn->oid;
		n->val = dn->val;
		n->oid.p = malloc(dn->oid.len ? dn->oid.len : 1);
		n->val.p = malloc(dn->val.len ? dn->val.len : 1);
		if (!n->oid.p || !n->val.p)
			return MBEDTLS_ERR_X509_ALLOC_FAILED;
		memcpy(n->oid.p, dn->oid.p, dn->oid.len);
		memcpy(n->val.p, dn->val.p, dn->val.len);
	}
	return 0;
}

/**
 * write_cert() - sign a certificate
 * @drbg:	random numbers
 * @subject:	subject name ("CN=...")
 * @key:	the subject's key
 * @ca:		leaf: the issuing CA; NULL for the (self-signed) CA
 * @name:	leaf: the SAN name; NULL for the CA
 * @now:	the time it is made (validity starts an hour before)
 * @days:	validity from @now
 * @der:	DER_MAX bytes; the certificate ends at its end
 *
 * Return: the DER length, or a negative mbedTLS error.
 */
static int write_cert(mbedtls_ctr_drbg_context *drbg, const char *subject,
		      mbedtls_pk_context *key, struct tls_ca *ca, const char *name,
		      time_t now, unsigned days, unsigned char *der)
{
	mbedtls_x509write_cert w;
	unsigned char sb[SERIAL_LEN];
	char from[16], to[16];
	mbedtls_mpi serial;
	int ret;

	mbedtls_x509write_crt_init(&w);
	mbedtls_mpi_init(&serial);
	ret = mbedtls_ctr_drbg_random(drbg, sb, sizeof(sb));
	sb[0] = (sb[0] & 0x7f) | 0x01;		/* positive, never zero */
	if (!ret)
		ret = mbedtls_mpi_read_binary(&serial, sb, sizeof(sb));
	x509_time(now - HOUR_S, from);
	x509_time(now + (time_t)days * 86400, to);
	mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
	mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
	mbedtls_x509write_crt_set_subject_key(&w, key);
	mbedtls_x509write_crt_set_issuer_key(&w, ca ? &ca->key : key);
	if (!ret)
		ret = mbedtls_x509write_crt_set_serial(&w, &serial);
	if (!ret)
		ret = mbedtls_x509write_crt_set_subject_name(&w, subject);
	if (!ret)
		ret = ca ? copy_issuer(&w, &ca->crt.subject) :
			   mbedtls_x509write_crt_set_issuer_name(&w, subject);
	if (!ret)
		ret = mbedtls_x509write_crt_set_validity(&w, from, to);
	if (!ret)
		ret = mbedtls_x509write_crt_set_basic_constraints(&w, name ? 0 : 1, name ? -1 : 0);
	if (!ret)
		ret = mbedtls_x509write_crt_set_subject_key_identifier(&w);
	if (!ret && !ca)	/* self-signed: the same SHA-1 as the SKI */
		ret = mbedtls_x509write_crt_set_authority_key_identifier(&w);
	if (!ret && ca && ca->ski_len)
		ret = add_aki(&w, ca->ski, ca->ski_len);
	if (!ret)
		ret = mbedtls_x509write_crt_set_key_usage(&w, name ? MBEDTLS_X509_KU_DIGITAL_SIGNATURE :
				MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN);
	if (!ret && name)
		ret = add_san(&w, name);
	if (!ret && name)
		ret = add_eku(&w);
	if (!ret)
		ret = mbedtls_x509write_crt_der(&w, der, DER_MAX, mbedtls_ctr_drbg_random, drbg);
	mbedtls_mpi_free(&serial);
	mbedtls_x509write_crt_free(&w);
	return ret;
}

/* ---- files ---- */

/* @dir/ca.crt and @dir/ca.key, PATH_MAX_CA bytes each */
static void ca_paths(const char *dir, char *crt, char *key)
{
	snprintf(crt, PATH_MAX_CA, "%s/ca.crt", dir);
	snprintf(key, PATH_MAX_CA, "%s/ca.key", dir);
}

/**
 * write_tmp() - a new file beside @path holding @data
 * @path:	the name it will be renamed to
 * @data:	contents (NUL-terminated)
 * @mode:	permissions from creation on (O_EXCL: never an existing file or link)
 * @tmp:	PATH_MAX_CA bytes; gets the temporary name
 *
 * Return: 0, or -errno with nothing left behind.
 */
static int write_tmp(const char *path, const char *data, mode_t mode, char *tmp)
{
	size_t n = strlen(data);
	int fd, e = 0;

	snprintf(tmp, PATH_MAX_CA, "%s.tmp-%ld", path, (long)getpid());
	unlink(tmp);		/* left by a crashed process with our pid */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	errno = 0;
	if (write(fd, data, n) != (ssize_t)n || fsync(fd) < 0)
		e = errno ? errno : EIO;
	if (close(fd) < 0 && !e)
		e = errno;
	if (e)
		unlink(tmp);
	return -e;
}

/**
 * make_pem() - a new CA as PEM text
 * @pem:	TLS_PEM_MAX bytes; the certificate
 * @kpem:	TLS_PEM_MAX bytes; the key (the caller wipes it)
 * @err, @errlen: reason on failure
 *
 * Return: 0 or -1.
 */
static int make_pem(char *pem, char *kpem, char *err, size_t errlen)
{
	unsigned char der[DER_MAX];
	struct tls_ca tmp;
	size_t olen;
	int ret, len;

	memset(&tmp, 0, sizeof(tmp));
	mbedtls_pk_init(&tmp.key);
	ret = rng_seed(&tmp);
	if (!ret)
		ret = gen_key(&tmp.drbg, &tmp.key);
	len = ret ? ret : write_cert(&tmp.drbg, TLS_CA_SUBJECT, &tmp.key, NULL, NULL,
				     time(NULL), TLS_CA_DAYS, der);
	ret = len < 0 ? len : mbedtls_pk_write_key_pem(&tmp.key, (unsigned char *)kpem, TLS_PEM_MAX);
	if (!ret)
		ret = mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE-----\n",
					       "-----END CERTIFICATE-----\n",
					       der + DER_MAX - len, (size_t)len,
					       (unsigned char *)pem, TLS_PEM_MAX, &olen);
	mbedtls_pk_free(&tmp.key);
	mbedtls_ctr_drbg_free(&tmp.drbg);
	mbedtls_entropy_free(&tmp.entropy);
	if (ret) {
		set_err(err, errlen, "cannot make a CA", ret);
		return -1;
	}
	return 0;
}

/**
 * ca_make() - a new CA in @dir, replacing what is there
 * @dir:	directory (exists, locked by the caller)
 * @err, @errlen: reason on failure
 *
 * Both files are complete under temporary names before either is renamed.
 *
 * Return: 0 or -1.
 */
static int ca_make(const char *dir, char *err, size_t errlen)
{
	char crt[PATH_MAX_CA], key[PATH_MAX_CA], ctmp[PATH_MAX_CA], ktmp[PATH_MAX_CA];
	char pem[TLS_PEM_MAX], kpem[TLS_PEM_MAX];
	const char *what = key;
	int e;

	if (make_pem(pem, kpem, err, errlen) < 0)
		return -1;
	ca_paths(dir, crt, key);
	e = write_tmp(key, kpem, 0600, ktmp);
	mbedtls_platform_zeroize(kpem, sizeof(kpem));
	if (!e) {
		what = crt;
		e = write_tmp(crt, pem, 0644, ctmp);
		if (e)
			unlink(ktmp);
	}
	if (!e && (rename(ktmp, key) < 0 || rename(ctmp, crt) < 0)) {
		e = -errno;
		unlink(ktmp);
		unlink(ctmp);
	}
	if (e) {
		snprintf(err, errlen, "cannot write %s: %s", what, strerror(-e));
		return -1;
	}
	return 0;
}

/**
 * dir_lock() - make @dir (0700) if missing, and hold flock() on it
 * @dir:	CA directory (its parent must exist)
 * @err, @errlen: reason on failure
 *
 * Return: the descriptor holding the lock (close() releases it), or -1.
 */
static int dir_lock(const char *dir, char *err, size_t errlen)
{
	int fd;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		snprintf(err, errlen, "cannot lock %s: %s", dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* the advice every CA problem ends with */
#define ROTATE_HINT	"; run `gondolin ca rotate` to make a new one"

/* why the parsed CA certificate cannot sign our leaves, or NULL */
static const char *crt_unfit(const mbedtls_x509_crt *crt)
{
	const mbedtls_x509_name *n;
	mbedtls_pk_type_t t = mbedtls_pk_get_type(&crt->pk);

	if (!crt->ca_istrue)
		return "not a CA";
	if (crt->next)
		return "more than one certificate";
	if (mbedtls_x509_time_is_past(&crt->valid_to))
		return "expired";
	if (mbedtls_x509_time_is_future(&crt->valid_from))
		return "not valid yet";
	if (t != MBEDTLS_PK_ECKEY && t != MBEDTLS_PK_RSA)
		return "key neither EC nor RSA";
	for (n = &crt->subject; n; n = n->next)
		if (n->next_merged)
			return "multi-valued subject name";
	return NULL;
}

/**
 * ca_load() - read and check ca.crt and ca.key
 * @ca:		CA (initialised, @ca->dir set)
 * @err, @errlen: reason, naming the file, on failure
 *
 * Return: 0 or -1.
 */
static int ca_load(struct tls_ca *ca, char *err, size_t errlen)
{
	char crt[PATH_MAX_CA], key[PATH_MAX_CA], why[128];
	const char *unfit;
	struct stat st;
	size_t olen;
	int ret;

	ca_paths(ca->dir, crt, key);
	if (stat(key, &st) == 0 && (st.st_mode & 077)) {
		snprintf(err, errlen, "CA key %s is readable by others (mode %03o); "
			 "chmod 600 it, or run `gondolin ca rotate`", key, (unsigned)(st.st_mode & 0777));
		return -1;
	}
	ret = mbedtls_x509_crt_parse_file(&ca->crt, crt);
	if (ret) {
		mbedtls_strerror(ret, why, sizeof(why));
		snprintf(err, errlen, "CA certificate %s is invalid (%s)" ROTATE_HINT, crt, why);
		return -1;
	}
	unfit = crt_unfit(&ca->crt);
	if (unfit) {
		snprintf(err, errlen, "CA certificate %s is invalid (%s)" ROTATE_HINT, crt, unfit);
		return -1;
	}
	ret = mbedtls_pk_parse_keyfile(&ca->key, key, NULL);
	if (ret) {
		mbedtls_strerror(ret, why, sizeof(why));
		snprintf(err, errlen, "CA key %s is invalid (%s)" ROTATE_HINT, key, why);
		return -1;
	}
	if (mbedtls_pk_get_type(&ca->key) != mbedtls_pk_get_type(&ca->crt.pk) ||
	    mbedtls_pk_check_pair(&ca->crt.pk, &ca->key)) {
		snprintf(err, errlen, "CA key %s does not match %s" ROTATE_HINT, key, crt);
		return -1;
	}
	ret = mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n",
				       ca->crt.raw.p, ca->crt.raw.len,
				       (unsigned char *)ca->pem, sizeof(ca->pem), &olen);
	if (ret) {
		snprintf(err, errlen, "CA certificate %s is too large" ROTATE_HINT, crt);
		return -1;
	}
	ca->pem_len = strlen(ca->pem);
	ca->ski_len = find_ski(&ca->crt, ca->ski);
	return 0;
}

/**
 * tls_ca_open() - load the CA of @dir, making it when there is none
 * @ca:		to fill (tls_ca_close() it, also after a failure)
 * @dir:	its directory (made 0700 if missing; its parent must exist)
 * @err, @errlen: reason on failure
 *
 * A CA is made only when both files are missing; one without the other,
 * or a pair that does not check out, is an error naming the file.
 *
 * Return: 0 or -1.
 */
int tls_ca_open(struct tls_ca *ca, const char *dir, char *err, size_t errlen)
{
	char crt[PATH_MAX_CA], key[PATH_MAX_CA];
	bool have_crt, have_key;
	int fd, ret = -1;

	memset(ca, 0, sizeof(*ca));
	mbedtls_x509_crt_init(&ca->crt);
	mbedtls_pk_init(&ca->key);
	if (rng_seed(ca)) {
		snprintf(err, errlen, "no entropy for the CA");
		return -1;
	}
	if (strlen(dir) >= sizeof(ca->dir)) {
		snprintf(err, errlen, "CA directory path too long: %.64s...", dir);
		return -1;
	}
	snprintf(ca->dir, sizeof(ca->dir), "%s", dir);
	fd = dir_lock(dir, err, errlen);
	if (fd < 0)
		return -1;
	ca_paths(dir, crt, key);
	have_crt = access(crt, F_OK) == 0;
	have_key = access(key, F_OK) == 0;
	if (have_crt != have_key)
		snprintf(err, errlen, "%s is missing (its pair exists)" ROTATE_HINT,
			 have_crt ? key : crt);
	else if (have_crt || ca_make(dir, err, errlen) == 0)
		ret = ca_load(ca, err, errlen);
	close(fd);		/* the lock */
	return ret;
}

/**
 * tls_ca_rotate() - replace the CA of @dir by a new one
 * @dir:	its directory (made if missing)
 * @err, @errlen: reason on failure
 *
 * A struct tls_ca already open keeps the old CA in memory.
 *
 * Return: 0 or -1.
 */
int tls_ca_rotate(const char *dir, char *err, size_t errlen)
{
	int fd, ret;

	if (strlen(dir) >= TLS_DIR_MAX) {
		snprintf(err, errlen, "CA directory path too long: %.64s...", dir);
		return -1;
	}
	fd = dir_lock(dir, err, errlen);
	if (fd < 0)
		return -1;
	ret = ca_make(dir, err, errlen);
	close(fd);
	return ret;
}

/**
 * tls_ca_close() - free what tls_ca_open() set up (also after it failed)
 * @ca:		CA
 */
void tls_ca_close(struct tls_ca *ca)
{
	mbedtls_x509_crt_free(&ca->crt);
	mbedtls_pk_free(&ca->key);
	mbedtls_ctr_drbg_free(&ca->drbg);
	mbedtls_entropy_free(&ca->entropy);
}

/* ---- leaves ---- */

/**
 * tls_ca_issue() - mint a leaf for @name, signed by the CA
 * @ca:		CA
 * @name:	DNS name or IP literal (tls_name_ok())
 * @now_s:	wall-clock time, Unix seconds (valid from an hour before)
 * @days:	validity after @now_s
 * @chain:	initialised; gets the leaf, then the CA certificate, ready for
 *		mbedtls_ssl_conf_own_cert(conf, chain, key)
 * @key:	initialised; gets the leaf's key (fresh EC P-256)
 * @err, @errlen: reason on failure
 *
 * Return: 0 or -1.
 */
int tls_ca_issue(struct tls_ca *ca, const char *name, uint64_t now_s, unsigned days,
		 mbedtls_x509_crt *chain, mbedtls_pk_context *key, char *err, size_t errlen)
{
	unsigned char der[DER_MAX];
	char subject[TLS_NAME_MAX + 8];
	int ret, len;

	if (!tls_name_ok(name)) {
		snprintf(err, errlen, "not a name a certificate can carry: %.64s", name);
		return -1;
	}
	snprintf(subject, sizeof(subject), "CN=%s", name);
	ret = gen_key(&ca->drbg, key);
	len = ret ? ret : write_cert(&ca->drbg, subject, key, ca, name, (time_t)now_s, days, der);
	ret = len < 0 ? len : mbedtls_x509_crt_parse_der(chain, der + DER_MAX - len, (size_t)len);
	if (!ret)
		ret = mbedtls_x509_crt_parse_der(chain, ca->crt.raw.p, ca->crt.raw.len);
	if (ret) {
		set_err(err, errlen, "cannot mint a certificate", ret);
		return -1;
	}
	return 0;
}

/**
 * tls_ca_issue_pem() - tls_ca_issue() as PEM text (test servers)
 * @ca, @name, @now_s, @days: as tls_ca_issue()
 * @cert, @certlen: the chain as PEM
 * @key, @keylen: the key as PEM
 * @err, @errlen: reason on failure
 *
 * Return: 0 or -1.
 */
int tls_ca_issue_pem(struct tls_ca *ca, const char *name, uint64_t now_s, unsigned days,
		     char *cert, size_t certlen, char *key, size_t keylen,
		     char *err, size_t errlen)
{
	mbedtls_x509_crt chain;
	mbedtls_pk_context pk;
	const mbedtls_x509_crt *c;
	size_t off = 0, olen;
	int ret = 0;

	mbedtls_x509_crt_init(&chain);
	mbedtls_pk_init(&pk);
	if (tls_ca_issue(ca, name, now_s, days, &chain, &pk, err, errlen) < 0) {
		ret = -1;
		goto out;
	}
	for (c = &chain; c && c->raw.len; c = c->next) {
		if (mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE-----\n",
					     "-----END CERTIFICATE-----\n", c->raw.p, c->raw.len,
					     (unsigned char *)cert + off, certlen - off, &olen)) {
			snprintf(err, errlen, "certificate PEM too large");
			ret = -1;
			goto out;
		}
		off += olen - 1;	/* olen counts the NUL */
	}
	if (mbedtls_pk_write_key_pem(&pk, (unsigned char *)key, keylen)) {
		snprintf(err, errlen, "key PEM too large");
		ret = -1;
	}
out:
	mbedtls_x509_crt_free(&chain);
	mbedtls_pk_free(&pk);
	return ret;
}
