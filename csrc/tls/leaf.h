/* SPDX-License-Identifier: MIT */
/* leaf.h - leaf certificates per server name, minted once, cached (LRU) */
#ifndef GONDOLIN_TLS_LEAF_H
#define GONDOLIN_TLS_LEAF_H

#include <stddef.h>
#include <stdint.h>

#include "tls/ca.h"

#define TLS_LEAF_MAX	256			/* names cached */
#define TLS_LEAF_TTL_MS	(10 * 60 * 1000)	/* a cached leaf is re-minted after */
#define TLS_LEAF_DAYS	30			/* validity of a leaf */

/**
 * struct tls_leaf - one minted certificate; shared by reference
 * @chain:	the leaf, then the CA certificate
 * @key:	the leaf's key
 * @name:	the (lower-case) name it is for
 * @expires_ms:	when the cache stops handing it out
 * @used:	LRU stamp
 * @refs:	the cache's reference and each handshake's
 */
struct tls_leaf {
	mbedtls_x509_crt chain;
	mbedtls_pk_context key;
	char name[TLS_NAME_MAX + 1];
	uint64_t expires_ms, used;
	unsigned refs;
};

/**
 * struct tls_leaf_cache - leaves of one CA
 * @ca:		the CA (not owned)
 * @slot:	cached leaves, @n of them, at most @max
 * @ttl_ms:	see TLS_LEAF_TTL_MS
 * @clock:	LRU counter
 * @hits:	lookups answered from the cache
 * @misses:	lookups that had to mint (absent or expired)
 * @minted:	leaves minted (misses whose minting succeeded)
 * @evicted:	leaves pushed out by a newer name (LRU)
 * @mint_us:	total time spent minting, microseconds (CLOCK_MONOTONIC)
 */
struct tls_leaf_cache {
	struct tls_ca *ca;
	struct tls_leaf **slot;
	size_t n, max;
	uint64_t ttl_ms, clock;
	uint64_t hits, misses, minted, evicted, mint_us;
};

int tls_leaf_cache_init(struct tls_leaf_cache *c, struct tls_ca *ca, size_t max, uint64_t ttl_ms);
void tls_leaf_cache_free(struct tls_leaf_cache *c);
struct tls_leaf *tls_leaf_get(struct tls_leaf_cache *c, const char *name, uint64_t now_ms,
			      char *err, size_t errlen);
void tls_leaf_unref(struct tls_leaf *l);

#endif /* GONDOLIN_TLS_LEAF_H */
