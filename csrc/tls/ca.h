/* SPDX-License-Identifier: MIT */
/* ca.h - the per-user interception CA: files, checks, leaf minting */
#ifndef GONDOLIN_TLS_CA_H
#define GONDOLIN_TLS_CA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#define TLS_CA_SUBJECT	"CN=gondolin MITM CA,O=gondolin"
#define TLS_CA_DAYS	3650
#define TLS_NAME_MAX	253
#define TLS_DIR_MAX	1024
#define TLS_PEM_MAX	4096	/* a P-256 certificate or key as PEM */
#define TLS_SKI_MAX	32	/* subjectKeyIdentifier kept for leaves' AKI */

/**
 * struct tls_ca - the CA of this user, loaded or made on first use
 * @entropy, @drbg: this CA's random numbers (serials, keys)
 * @crt:	its certificate
 * @key:	its private key (EC P-256)
 * @pem:	the certificate as PEM, @pem_len its length (@crt.raw is the DER)
 * @ski:	its subjectKeyIdentifier, @ski_len bytes (0: none, leaves
 *		then carry no authorityKeyIdentifier)
 * @dir:	directory of ca.crt and ca.key
 */
struct tls_ca {
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_x509_crt crt;
	mbedtls_pk_context key;
	char pem[TLS_PEM_MAX];
	size_t pem_len;
	unsigned char ski[TLS_SKI_MAX];
	size_t ski_len;
	char dir[TLS_DIR_MAX];
};

int tls_ca_open(struct tls_ca *ca, const char *dir, char *err, size_t errlen);
int tls_ca_rotate(const char *dir, char *err, size_t errlen);
void tls_ca_close(struct tls_ca *ca);
bool tls_name_ok(const char *name);
int tls_ca_issue(struct tls_ca *ca, const char *name, uint64_t now_s, unsigned days,
		 mbedtls_x509_crt *chain, mbedtls_pk_context *key, char *err, size_t errlen);
int tls_ca_issue_pem(struct tls_ca *ca, const char *name, uint64_t now_s, unsigned days,
		     char *cert, size_t certlen, char *key, size_t keylen,
		     char *err, size_t errlen);

#endif /* GONDOLIN_TLS_CA_H */
