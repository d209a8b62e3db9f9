/* SPDX-License-Identifier: MIT */
/* leaf.c - leaf certificates per server name, minted once, cached (LRU) */

/*
 * A leaf is minted the first time a name is seen and handed out for
 * TLS_LEAF_TTL_MS; at most TLS_LEAF_MAX names are kept, the least recently
 * used going first. A linear scan over 256 entries costs far less than
 * one handshake. A handshake holds a reference, so eviction never frees a
 * certificate in use; a leaf carries its own copy of the CA certificate,
 * so one still referenced after tls_leaf_cache_free() (or after the CA is
 * closed) stays valid until its last tls_leaf_unref().
 *
 * Expiry uses the caller's clock (the loop's milliseconds); the
 * certificate's own validity uses the wall clock.
 */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tls/leaf.h"

/* CLOCK_MONOTONIC in microseconds, for the cost of minting */
static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/**
 * tls_leaf_cache_init() - an empty cache
 * @c:		cache
 * @ca:		the CA that signs (outlives the cache)
 * @max:	names kept (0: TLS_LEAF_MAX)
 * @ttl_ms:	lifetime in the cache (0: TLS_LEAF_TTL_MS)
 *
 * Return: 0, or -1 out of memory.
 */
int tls_leaf_cache_init(struct tls_leaf_cache *c, struct tls_ca *ca, size_t max, uint64_t ttl_ms)
{
	memset(c, 0, sizeof(*c));
	c->ca = ca;
	c->max = max ? max : TLS_LEAF_MAX;
	c->ttl_ms = ttl_ms ? ttl_ms : TLS_LEAF_TTL_MS;
	c->slot = calloc(c->max, sizeof(*c->slot));
	return c->slot ? 0 : -1;
}

/**
 * tls_leaf_cache_free() - drop the cache's references (handshakes keep theirs)
 * @c:		cache; tls_leaf_cache_init() makes it usable again
 */
void tls_leaf_cache_free(struct tls_leaf_cache *c)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		tls_leaf_unref(c->slot[i]);
	free(c->slot);
	c->slot = NULL;
	c->n = 0;
}

/**
 * tls_leaf_unref() - drop a reference; the last frees
 * @l:		leaf, or NULL
 */
void tls_leaf_unref(struct tls_leaf *l)
{
	if (!l || --l->refs)
		return;
	mbedtls_x509_crt_free(&l->chain);
	mbedtls_pk_free(&l->key);
	free(l);
}

/* the slot to put a new leaf in: a free one, else the least recently used */
static size_t victim(struct tls_leaf_cache *c)
{
	size_t i, v = 0;

	if (c->n < c->max)
		return c->n++;
	for (i = 1; i < c->n; i++)
		if (c->slot[i]->used < c->slot[v]->used)
			v = i;
	tls_leaf_unref(c->slot[v]);
	c->slot[v] = NULL;
	c->evicted++;
	return v;
}

/**
 * mint() - a new leaf for @name
 * @c:		cache
 * @name:	lower-case name
 * @now_ms:	for its expiry
 * @err, @errlen: reason on failure
 */
static struct tls_leaf *mint(struct tls_leaf_cache *c, const char *name, uint64_t now_ms,
			     char *err, size_t errlen)
{
	struct tls_leaf *l = calloc(1, sizeof(*l));
	uint64_t t0 = mono_us();

	if (!l) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	mbedtls_x509_crt_init(&l->chain);
	mbedtls_pk_init(&l->key);
	l->refs = 1;
	snprintf(l->name, sizeof(l->name), "%s", name);
	/* @now_ms is the loop's clock, not the wall clock validity needs */
	if (tls_ca_issue(c->ca, name, (uint64_t)time(NULL), TLS_LEAF_DAYS, &l->chain, &l->key,
			 err, errlen) < 0) {
		tls_leaf_unref(l);
		return NULL;
	}
	l->expires_ms = now_ms + c->ttl_ms;
	c->minted++;
	c->mint_us += mono_us() - t0;
	return l;
}

/**
 * tls_leaf_get() - the leaf for @name, minted if not cached or expired
 * @c:		cache
 * @name:	DNS name or IP literal (compared without case)
 * @now_ms:	current time
 * @err, @errlen: reason on failure
 *
 * Return: a new reference (tls_leaf_unref() it), or NULL.
 */
struct tls_leaf *tls_leaf_get(struct tls_leaf_cache *c, const char *name, uint64_t now_ms,
			      char *err, size_t errlen)
{
	char low[TLS_NAME_MAX + 1];
	struct tls_leaf *l;
	size_t i, n = strlen(name);

	if (n > TLS_NAME_MAX || !tls_name_ok(name)) {
		snprintf(err, errlen, "not a name a certificate can carry: %.64s", name);
		return NULL;
	}
	for (i = 0; i <= n; i++)
		low[i] = (char)tolower((unsigned char)name[i]);
	for (i = 0; i < c->n; i++) {
		l = c->slot[i];
		if (strcmp(l->name, low) != 0)
			continue;
		if (l->expires_ms > now_ms) {
			c->hits++;
			l->used = ++c->clock;
			l->refs++;
			return l;
		}
		tls_leaf_unref(l);	/* expired: replace in place */
		c->slot[i] = c->slot[--c->n];
		break;
	}
	c->misses++;
	l = mint(c, low, now_ms, err, errlen);
	if (!l)
		return NULL;
	i = victim(c);
	c->slot[i] = l;
	l->used = ++c->clock;
	l->refs++;		/* the cache's and the caller's */
	return l;
}
