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
#define SECRET_FILL_OUT_MIN	SECRET_VALUE_MAX	/* least output a filler call needs */

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
 * @in_query:	also substituted in the query of the request target
 *		(percent-encoded); opt-in, set by the caller
 * @in_body:	also substituted in request bodies; opt-in, set by the caller
 */
struct secret {
	char name[SECRET_NAME_MAX + 1];
	size_t name_len;
	char placeholder[SECRET_PLACEHOLDER_MAX + 1];
	size_t placeholder_len;
	uint8_t *value;
	size_t value_len;
	struct hostpat_set hosts;
	bool in_query, in_body;
};

/* What a filler does with one secret's placeholder (secret_filler_init()). */
enum secret_use {
	SECRET_SKIP,	/* not opted in to bodies: bytes pass */
	SECRET_FILL,	/* replaced by the real value */
	SECRET_DENY,	/* may not go to this host: the stream stops */
};

/**
 * struct secret_stream - streaming replacement over a body
 * @sec:	secrets (must outlive the stream)
 * @n:		their number
 * @fill:	placeholders become values (a request body toward a host);
 *		otherwise values become placeholders (a response body)
 * @count:	replacements so far
 * @denied:	fill: the secret whose placeholder stopped the stream, or -1
 * @len:	bytes held in @buf
 * @first:	bytes that start something to replace
 * @use:	fill: enum secret_use per secret
 * @buf:	input not yet decided: the start of a possible match cut off
 *		by the end of a chunk, or bytes the output had no room for
 */
struct secret_stream {
	const struct secret *sec;
	size_t n;
	bool fill;
	size_t count;
	int denied;
	size_t len;
	bool first[256];
	uint8_t use[SECRET_MAX];
	uint8_t buf[SECRET_MASK_BUF];
};

bool secret_name_valid(const char *name, size_t n);
int secret_placeholder(const char *name, size_t n, const uint8_t *rnd,
		       size_t rlen, char *out, size_t cap);
int secret_init(struct secret *s, const char *name, size_t nlen,
		const void *value, size_t vlen, const char *ph, size_t plen,
		const char **err);
void secret_free(struct secret *s);

int secret_substitute(const struct secret *sec, size_t n,
		      const struct hostpat_host *h, unsigned port,
		      const char *in, size_t len, char *out, size_t cap,
		      size_t *outlen, int *which);
int secret_target_substitute(const struct secret *sec, size_t n,
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
void secret_masker_init(struct secret_stream *m, const struct secret *sec,
			size_t n);
bool secret_filler_init(struct secret_stream *m, const struct secret *sec,
			size_t n, const struct hostpat_host *h, unsigned port);
size_t secret_stream_feed(struct secret_stream *m, const void *in, size_t len,
			  void *out, size_t cap, size_t *produced);
int secret_stream_finish(struct secret_stream *m, void *out, size_t cap,
			 size_t *produced);

#endif /* GONDOLIN_POLICY_SECRETS_H */
