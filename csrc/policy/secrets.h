/* SPDX-License-Identifier: MIT */
/* secrets.h - placeholders, substitution toward allowed hosts, masking */
#ifndef GONDOLIN_POLICY_SECRETS_H
#define GONDOLIN_POLICY_SECRETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/hostpat.h"

#define SECRET_PREFIX		"GONDOLIN_SECRET_"
#define SECRET_PREFIX_LEN	16
#define SECRET_NAME_MAX		64	/* [A-Za-z0-9_], like an env variable */
#define SECRET_RANDOM_LEN	24	/* random bytes in a placeholder (48 hex) */
#define SECRET_PLACEHOLDER_MAX	(SECRET_PREFIX_LEN + SECRET_NAME_MAX + 1 + 2 * SECRET_RANDOM_LEN)
#define SECRET_VALUE_MAX	4096
#define SECRET_MAX		256	/* secrets per policy */
#define SECRET_BASIC_MAX	8192	/* decoded Basic credentials, either side of substitution */
#define SECRET_MASK_BUF		(2 * SECRET_VALUE_MAX)
#define SECRET_MASK_OUT_MIN	SECRET_PLACEHOLDER_MAX	/* least output a masker call needs */

/**
 * struct secret - one secret the guest only knows by its placeholder
 * @name:	[A-Za-z0-9_]{1,64}, NUL-terminated
 * @name_len:	length of @name
 * @placeholder: SECRET_PREFIX name "_" 48 lower-case hex, NUL-terminated
 * @placeholder_len: length of @placeholder
 * @value:	the real value, a malloc'd copy (1..SECRET_VALUE_MAX bytes)
 * @value_len:	length of @value
 * @hosts:	where the real value may go; filled by the caller with
 *		hostpat_set_init() + hostpat_set_add() after secret_init()
 */
struct secret {
	char name[SECRET_NAME_MAX + 1];
	size_t name_len;
	char placeholder[SECRET_PLACEHOLDER_MAX + 1];
	size_t placeholder_len;
	uint8_t *value;
	size_t value_len;
	struct hostpat_set hosts;
};

/**
 * struct secret_masker - streaming secret_mask() over a response body
 * @sec:	secrets (must outlive the masker)
 * @n:		their number
 * @count:	values masked so far
 * @len:	bytes held in @buf
 * @first:	bytes that start some value
 * @buf:	input not yet decided: the start of a possible value cut off
 *		by the end of a chunk, or bytes the output had no room for
 */
struct secret_masker {
	const struct secret *sec;
	size_t n;
	size_t count;
	size_t len;
	bool first[256];
	uint8_t buf[SECRET_MASK_BUF];
};

bool secret_name_valid(const char *name, size_t n);
int secret_placeholder(const char *name, size_t n, const uint8_t *rnd,
		       size_t rlen, char *out, size_t cap);
int secret_init(struct secret *s, const char *name, size_t nlen,
		const void *value, size_t vlen, const char *ph, size_t plen,
		const char **err);
void secret_free(struct secret *s);

int secret_find(const struct secret *sec, size_t n, const char *buf,
		size_t len, size_t *off);
int secret_substitute(const struct secret *sec, size_t n,
		      const struct hostpat_host *h, unsigned port,
		      const char *in, size_t len, char *out, size_t cap,
		      size_t *outlen, int *which);
int secret_basic_substitute(const struct secret *sec, size_t n,
			    const struct hostpat_host *h, unsigned port,
			    const char *in, size_t len, char *out, size_t cap,
			    size_t *outlen, int *which);

int secret_base64_decode(const char *in, size_t n, uint8_t *out, size_t cap);
int secret_base64_encode(const uint8_t *in, size_t n, char *out, size_t cap);

int secret_mask(const struct secret *sec, size_t n, const void *in, size_t len,
		void *out, size_t cap, size_t *outlen);
void secret_masker_init(struct secret_masker *m, const struct secret *sec,
			size_t n);
size_t secret_masker_feed(struct secret_masker *m, const void *in, size_t len,
			  void *out, size_t cap, size_t *produced);
int secret_masker_finish(struct secret_masker *m, void *out, size_t cap,
			 size_t *produced);

#endif /* GONDOLIN_POLICY_SECRETS_H */
