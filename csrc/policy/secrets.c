/* SPDX-License-Identifier: MIT */
/* secrets.c - placeholders, substitution toward allowed hosts, masking */

/*
 * Theory of Operation
 *
 * The guest sees each secret only as a placeholder,
 * "GONDOLIN_SECRET_<name>_<48 lower-case hex>", built from 24 random bytes
 * the caller draws (so this file needs no entropy source and no state).
 * 192 random bits make it unguessable; the name makes it readable in logs.
 *
 * Requests: secret_substitute() scans a header value once, left to right.
 * At each position a known placeholder (longest wins) is replaced by the
 * real value if the destination host matches the secret's host list, and
 * otherwise the whole request is refused (-EACCES, naming the secret). A
 * real value appearing literally toward a host its secret does not allow
 * is refused the same way (a hook or redirect must not leak it). Text
 * inside a placeholder is never searched for values. Output goes to a
 * caller buffer; not fitting is -ENOSPC, and the caller fails closed.
 *
 * secret_target_substitute() does the same for a request target, but
 * replaces only in the query and only placeholders of secrets that opted
 * in (@in_query), percent-encoding the value; every other placeholder in
 * the target is left as it is, and still refused toward a wrong host.
 *
 * secret_basic_substitute() handles "Basic <token>" (Authorization and
 * Proxy-Authorization): the token must be strict base64 (padded, canonical,
 * at most SECRET_BASIC_MAX bytes decoded); it is decoded, substituted as
 * above and re-encoded, keeping the scheme spelling and whitespace. Any
 * other value is copied through unchanged, with 0 substitutions.
 *
 * Responses: secret_mask() replaces every real value by its placeholder,
 * the longest value first where several start at one position. The
 * streaming secret_masker gives the same output for any chunking: a
 * position where a value could start but the chunk ends first is held back
 * (fewer than SECRET_VALUE_MAX bytes) until the next chunk or finish
 * decides it. Held bytes plus output that did not fit stay in a fixed
 * SECRET_MASK_BUF buffer; feed() reports how much input it took.
 *
 * Request bodies run the same stream the other way (a filler): the
 * placeholders of secrets that opted in (@in_body) become their values
 * where the host allows the secret, and stop the stream (@denied) where
 * it does not; other bytes pass unchanged.
 */

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "policy/secrets.h"
#include "util/ascii.h"

#define HEX_DIGITS	"0123456789abcdef"

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/**
 * struct outbuf - a caller's output buffer being filled
 * @p:		buffer
 * @len:	bytes written
 * @cap:	size of @p
 */
struct outbuf {
	uint8_t *p;
	size_t len, cap;
};

/**
 * out_put() - append bytes if they fit
 * @o: output
 * @s: bytes
 * @n: count
 *
 * Return: false (nothing written) when they do not fit.
 */
static bool out_put(struct outbuf *o, const void *s, size_t n)
{
	if (n > o->cap - o->len)
		return false;
	if (n)
		memcpy(o->p + o->len, s, n);
	o->len += n;
	return true;
}

/**
 * secret_name_valid() - whether a secret name is 1..64 of [A-Za-z0-9_]
 * @name: name
 * @n: its length
 *
 * Return: true when valid.
 */
bool secret_name_valid(const char *name, size_t n)
{
	size_t i;
	char c;

	if (n == 0 || n > SECRET_NAME_MAX)
		return false;
	for (i = 0; i < n; i++) {
		c = name[i];
		if (!ascii_alnum((unsigned char)c) && c != '_')
			return false;
	}
	return true;
}

/**
 * secret_placeholder() - build the placeholder for a secret
 * @name: secret name
 * @n: its length
 * @rnd: random bytes from a CSPRNG
 * @rlen: their number, SECRET_RANDOM_LEN
 * @out: output
 * @cap: size of @out; SECRET_PLACEHOLDER_MAX + 1 always suffices
 *
 * Return: length written (NUL-terminated), -EINVAL for a bad name or
 * random length, or -ENOSPC.
 */
int secret_placeholder(const char *name, size_t n, const uint8_t *rnd,
		       size_t rlen, char *out, size_t cap)
{
	size_t len = SECRET_PREFIX_LEN + n + 1 + 2 * rlen, i, o;

	if (!secret_name_valid(name, n) || rlen != SECRET_RANDOM_LEN)
		return -EINVAL;
	if (len >= cap)
		return -ENOSPC;
	memcpy(out, SECRET_PREFIX, SECRET_PREFIX_LEN);
	memcpy(out + SECRET_PREFIX_LEN, name, n);
	o = SECRET_PREFIX_LEN + n;
	out[o++] = '_';
	for (i = 0; i < rlen; i++) {
		out[o++] = HEX_DIGITS[rnd[i] >> 4];
		out[o++] = HEX_DIGITS[rnd[i] & 15];
	}
	out[o] = '\0';
	return (int)len;
}

/**
 * placeholder_valid() - whether @ph is a placeholder for @name
 * @name: valid secret name
 * @n: its length
 * @ph: candidate
 * @plen: its length
 *
 * Return: true when @ph has the exact placeholder shape for @name.
 */
static bool placeholder_valid(const char *name, size_t n, const char *ph,
			      size_t plen)
{
	size_t i, h = SECRET_PREFIX_LEN + n + 1;

	if (plen != h + 2 * SECRET_RANDOM_LEN ||
	    memcmp(ph, SECRET_PREFIX, SECRET_PREFIX_LEN) != 0 ||
	    memcmp(ph + SECRET_PREFIX_LEN, name, n) != 0 || ph[h - 1] != '_')
		return false;
	for (i = h; i < plen; i++)
		if (!memchr(HEX_DIGITS, ph[i], 16))
			return false;
	return true;
}

/**
 * secret_init() - fill a secret; its host list starts empty
 * @s: secret
 * @name: name, see secret_name_valid()
 * @nlen: its length
 * @value: real value, 1..SECRET_VALUE_MAX bytes (copied)
 * @vlen: its length
 * @ph: placeholder from secret_placeholder() for @name
 * @plen: its length
 * @err: set to a constant message on failure (may be NULL)
 *
 * Return: 0, -EINVAL, or -ENOMEM. On failure @s needs no secret_free().
 */
int secret_init(struct secret *s, const char *name, size_t nlen,
		const void *value, size_t vlen, const char *ph, size_t plen,
		const char **err)
{
	const char *e = NULL;

	memset(s, 0, sizeof(*s));
	if (!secret_name_valid(name, nlen))
		e = "secret name must be 1..64 of [A-Za-z0-9_]";
	else if (vlen == 0 || vlen > SECRET_VALUE_MAX)
		e = "secret value must be 1..4096 bytes";
	else if (!placeholder_valid(name, nlen, ph, plen))
		e = "malformed placeholder";
	if (e) {
		if (err)
			*err = e;
		return -EINVAL;
	}
	s->value = malloc(vlen);
	if (!s->value)
		return -ENOMEM;
	memcpy(s->value, value, vlen);
	s->value_len = vlen;
	memcpy(s->name, name, nlen);
	s->name_len = nlen;
	memcpy(s->placeholder, ph, plen);
	s->placeholder_len = plen;
	hostpat_set_init(&s->hosts, 0, 0);
	return 0;
}

/**
 * secret_free() - release a secret (value wiped); safe to call twice
 * @s: secret
 */
void secret_free(struct secret *s)
{
	if (s->value) {
		explicit_bzero(s->value, s->value_len);
		free(s->value);
	}
	s->value = NULL;
	s->value_len = 0;
	hostpat_set_free(&s->hosts);
}

/**
 * placeholder_at() - the longest known placeholder starting at @p
 * @sec: secrets
 * @n: their number
 * @p: text
 * @avail: bytes from @p to the end
 *
 * Return: the secret's index, or -1.
 */
static int placeholder_at(const struct secret *sec, size_t n, const uint8_t *p,
			  size_t avail)
{
	size_t k, pl;
	int best = -1;

	if (avail < SECRET_PREFIX_LEN || memcmp(p, SECRET_PREFIX, SECRET_PREFIX_LEN))
		return -1;
	for (k = 0; k < n; k++) {
		pl = sec[k].placeholder_len;
		if (pl <= avail && memcmp(p, sec[k].placeholder, pl) == 0 &&
		    (best < 0 || pl > sec[best].placeholder_len))
			best = (int)k;
	}
	return best;
}

/**
 * host_allowed() - whether a secret may go to a host and port
 * @s: secret
 * @h: destination host
 * @port: destination port
 *
 * Return: true when the secret's host list matches.
 */
static bool host_allowed(const struct secret *s, const struct hostpat_host *h,
			 unsigned port)
{
	return hostpat_set_match(&s->hosts, h, port) >= 0;
}

/**
 * denied_value_at() - a real value starting at @p that may not go to @h
 * @sec: secrets
 * @n: their number
 * @h: destination host
 * @port: destination port
 * @p: text
 * @avail: bytes from @p to the end
 *
 * Return: the secret's index, or -1.
 */
static int denied_value_at(const struct secret *sec, size_t n,
			   const struct hostpat_host *h, unsigned port,
			   const uint8_t *p, size_t avail)
{
	size_t k, vl;

	for (k = 0; k < n; k++) {
		vl = sec[k].value_len;
		if (vl && vl <= avail && sec[k].value[0] == p[0] &&
		    memcmp(p, sec[k].value, vl) == 0 && !host_allowed(&sec[k], h, port))
			return (int)k;
	}
	return -1;
}

/* How subst_scan() writes an allowed secret's value. */
enum subst_mode {
	SUBST_RAW,	/* every placeholder, the value as is (header values) */
	SUBST_QUERY,	/* placeholders of @in_query secrets, percent-encoded */
	SUBST_KEEP,	/* none: placeholders are only checked (target path) */
};

/**
 * put_pct() - append bytes percent-encoded (all but RFC 3986 unreserved)
 * @o: output
 * @s: bytes
 * @n: count
 *
 * Return: false when they do not fit.
 */
static bool put_pct(struct outbuf *o, const uint8_t *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	uint8_t e[3] = { '%' };
	size_t i;

	for (i = 0; i < n; i++) {
		uint8_t c = s[i];

		if (ascii_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
			if (!out_put(o, &c, 1))
				return false;
			continue;
		}
		e[1] = (uint8_t)hex[c >> 4];
		e[2] = (uint8_t)hex[c & 15];
		if (!out_put(o, e, 3))
			return false;
	}
	return true;
}

/**
 * subst_put() - write what replaces secret @s's placeholder
 * @s: secret (allowed toward the host)
 * @mode: enum subst_mode
 * @o: output
 *
 * Return: 1 replaced, 0 placeholder kept, -ENOSPC.
 */
static int subst_put(const struct secret *s, int mode, struct outbuf *o)
{
	bool ok;

	if (mode == SUBST_KEEP || (mode == SUBST_QUERY && !s->in_query))
		ok = out_put(o, s->placeholder, s->placeholder_len);
	else if (mode == SUBST_QUERY)
		ok = put_pct(o, s->value, s->value_len);
	else
		ok = out_put(o, s->value, s->value_len);
	if (!ok)
		return -ENOSPC;
	return mode == SUBST_RAW || (mode == SUBST_QUERY && s->in_query);
}

/**
 * subst_scan() - substitute placeholders in @in into @o
 * @sec: secrets
 * @n: their number
 * @h: destination host
 * @port: destination port
 * @in: text
 * @len: its length
 * @mode: enum subst_mode
 * @o: output
 * @which: the offending secret's index on -EACCES
 *
 * Return: substitutions made, -EACCES, or -ENOSPC.
 */
static int subst_scan(const struct secret *sec, size_t n,
		      const struct hostpat_host *h, unsigned port,
		      const uint8_t *in, size_t len, int mode, struct outbuf *o,
		      int *which)
{
	size_t i = 0, from = 0;
	int k, rc, count = 0;

	while (i < len) {
		k = placeholder_at(sec, n, in + i, len - i);
		if (k < 0 && (k = denied_value_at(sec, n, h, port, in + i, len - i)) >= 0) {
			*which = k;
			return -EACCES;		/* a real value headed elsewhere */
		}
		if (k < 0) {
			i++;
			continue;
		}
		if (!host_allowed(&sec[k], h, port)) {
			*which = k;
			return -EACCES;
		}
		if (!out_put(o, in + from, i - from) ||
		    (rc = subst_put(&sec[k], mode, o)) < 0)
			return -ENOSPC;
		i += sec[k].placeholder_len;
		from = i;
		count += rc;
	}
	return out_put(o, in + from, len - from) ? count : -ENOSPC;
}

/**
 * secret_substitute() - replace placeholders in a request header value
 * @sec: secrets
 * @n: their number
 * @h: destination host (normalised)
 * @port: destination port
 * @in: header value
 * @len: its length (at most INT_MAX)
 * @out: output buffer
 * @cap: its size
 * @outlen: bytes written to @out
 * @which: on -EACCES, the index of the secret that blocked the request
 *
 * Return: substitutions made (>= 0), -EACCES when a placeholder or a real
 * value would go to a host its secret does not allow (refuse the request),
 * or -ENOSPC when the result does not fit.
 */
int secret_substitute(const struct secret *sec, size_t n,
		      const struct hostpat_host *h, unsigned port,
		      const char *in, size_t len, char *out, size_t cap,
		      size_t *outlen, int *which)
{
	struct outbuf o = { (uint8_t *)out, 0, cap };
	int rc;

	if (len > INT_MAX)
		return -ENOSPC;
	rc = subst_scan(sec, n, h, port, (const uint8_t *)in, len, SUBST_RAW, &o, which);
	*outlen = o.len;
	return rc;
}

/**
 * secret_target_substitute() - placeholders in a request target
 * @sec: secrets
 * @n: their number
 * @h: destination host (normalised)
 * @port: destination port
 * @in: request target (origin form: path, then "?" query)
 * @len: its length (at most INT_MAX)
 * @out: output buffer
 * @cap: its size
 * @outlen: bytes written to @out
 * @which: on -EACCES, the index of the secret that blocked the request
 *
 * Only the query of @in_query secrets is rewritten; see the top comment.
 *
 * Return: substitutions made (>= 0), -EACCES, or -ENOSPC.
 */
int secret_target_substitute(const struct secret *sec, size_t n,
			     const struct hostpat_host *h, unsigned port,
			     const char *in, size_t len, char *out, size_t cap,
			     size_t *outlen, int *which)
{
	struct outbuf o = { (uint8_t *)out, 0, cap };
	const char *q = memchr(in, '?', len);
	size_t plen = q ? (size_t)(q - in) : len;
	int rc, rq = 0;

	*outlen = 0;
	if (len > INT_MAX)
		return -ENOSPC;
	rc = subst_scan(sec, n, h, port, (const uint8_t *)in, plen, SUBST_KEEP, &o, which);
	if (rc >= 0 && q)
		rq = subst_scan(sec, n, h, port, (const uint8_t *)q, len - plen,
				SUBST_QUERY, &o, which);
	if (rc < 0 || rq < 0)
		return rc < 0 ? rc : rq;
	*outlen = o.len;
	return rq;
}

/**
 * b64_value() - value of a standard base64 character
 * @c: character
 *
 * Return: 0..63, or -1 (also for '=').
 */
static int b64_value(unsigned char c)
{
	const char *p;

	if (c == '\0' || c == '=')
		return -1;
	p = memchr(b64_alphabet, c, 64);
	return p ? (int)(p - b64_alphabet) : -1;
}

/**
 * b64_quad() - decode four characters (the last quad may end in padding)
 * @in: four characters
 * @pad: trailing '=' in this quad (0..2)
 * @v: 24-bit value out
 *
 * Return: 0, or -1 for a character outside the alphabet.
 */
static int b64_quad(const char *in, size_t pad, uint32_t *v)
{
	int k, d;

	*v = 0;
	for (k = 0; k < 4; k++) {
		d = (size_t)k >= 4 - pad ? 0 : b64_value((unsigned char)in[k]);
		if (d < 0)
			return -1;
		*v = *v << 6 | (uint32_t)d;
	}
	return 0;
}

/**
 * secret_base64_decode() - strict RFC 4648 base64 (padded, canonical)
 * @in: text
 * @n: its length
 * @out: bytes out
 * @cap: size of @out
 *
 * Return: decoded length, or -1 when malformed, non-canonical (nonzero
 * pad bits), empty, or larger than @cap.
 */
int secret_base64_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
	size_t i, o = 0, pad = 0, olen;
	uint32_t v;

	if (n == 0 || n % 4 || n > INT_MAX)
		return -1;
	pad = (in[n - 1] == '=') + (in[n - 1] == '=' && in[n - 2] == '=');
	olen = n / 4 * 3 - pad;
	if (olen > cap)
		return -1;
	for (i = 0; i < n; i += 4) {
		if (b64_quad(in + i, i + 4 == n ? pad : 0, &v) < 0)
			return -1;
		if ((pad == 1 && i + 4 == n && (v & 0xff)) ||
		    (pad == 2 && i + 4 == n && (v & 0xffff)))
			return -1;		/* non-canonical pad bits */
		out[o++] = (uint8_t)(v >> 16);
		if (o < olen)
			out[o++] = (uint8_t)(v >> 8);
		if (o < olen)
			out[o++] = (uint8_t)v;
	}
	return (int)olen;
}

/**
 * secret_base64_encode() - standard padded base64
 * @in: bytes
 * @n: their number
 * @out: text out (not NUL-terminated)
 * @cap: size of @out
 *
 * Return: length written, or -ENOSPC.
 */
int secret_base64_encode(const uint8_t *in, size_t n, char *out, size_t cap)
{
	size_t i, o = 0, olen;
	uint32_t v;

	if (n > (size_t)INT_MAX / 4 * 3 - 3)
		return -ENOSPC;
	olen = (n + 2) / 3 * 4;
	if (olen > cap)
		return -ENOSPC;
	for (i = 0; i < n; i += 3) {
		v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = b64_alphabet[v >> 18];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? b64_alphabet[v & 63] : '=';
	}
	return (int)olen;
}

/**
 * is_ows() - HTTP optional whitespace
 * @c: character
 *
 * Return: true for SP and HTAB.
 */
static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/**
 * basic_token() - locate the token of "[OWS] Basic SP+ token [OWS]"
 * @s: header value
 * @n: its length
 * @start: token start out
 * @end: token end out
 *
 * Return: true when @s is Basic credentials (scheme case-insensitive).
 */
static bool basic_token(const char *s, size_t n, size_t *start, size_t *end)
{
	static const char scheme[] = "basic";
	size_t i = 0, k;

	while (i < n && is_ows(s[i]))
		i++;
	if (n - i < 6 || !is_ows(s[i + 5]))
		return false;
	for (k = 0; k < 5; k++)
		if ((s[i + k] | 0x20) != scheme[k])
			return false;
	for (i += 5; i < n && is_ows(s[i]); i++)
		;
	for (*start = i; i < n && !is_ows(s[i]); i++)
		;
	for (*end = i; i < n && is_ows(s[i]); i++)
		;
	return i == n && *end > *start;
}

/**
 * copy_value() - copy a value that needs no substitution
 * @in: value
 * @len: its length
 * @o: output
 * @outlen: bytes written
 *
 * Return: 0, or -ENOSPC.
 */
static int copy_value(const char *in, size_t len, struct outbuf *o,
		      size_t *outlen)
{
	if (!out_put(o, in, len))
		return -ENOSPC;
	*outlen = o->len;
	return 0;
}

/**
 * secret_basic_substitute() - substitute inside "Basic <base64>"
 * @sec: secrets
 * @n: their number
 * @h: destination host (normalised)
 * @port: destination port
 * @in: Authorization or Proxy-Authorization value
 * @len: its length
 * @out: output buffer
 * @cap: its size
 * @outlen: bytes written to @out
 * @which: on -EACCES, the index of the secret that blocked the request
 *
 * A value that is not Basic with a strict base64 token is copied as is.
 *
 * Return: substitutions made in the decoded credentials (>= 0), -EACCES
 * (refuse the request), or -ENOSPC.
 */
int secret_basic_substitute(const struct secret *sec, size_t n,
			    const struct hostpat_host *h, unsigned port,
			    const char *in, size_t len, char *out, size_t cap,
			    size_t *outlen, int *which)
{
	uint8_t dec[SECRET_BASIC_MAX], sub[SECRET_BASIC_MAX];
	struct outbuf o = { (uint8_t *)out, 0, cap }, so = { sub, 0, sizeof(sub) };
	size_t ts, te;
	int dl, rc, el;

	*outlen = 0;
	if (!basic_token(in, len, &ts, &te) ||
	    (dl = secret_base64_decode(in + ts, te - ts, dec, sizeof(dec))) < 0)
		return copy_value(in, len, &o, outlen);
	rc = subst_scan(sec, n, h, port, dec, (size_t)dl, SUBST_RAW, &so, which);
	explicit_bzero(dec, sizeof(dec));
	if (rc <= 0) {
		explicit_bzero(sub, sizeof(sub));
		return rc < 0 ? rc : copy_value(in, len, &o, outlen);
	}
	el = -ENOSPC;
	if (out_put(&o, in, ts))
		el = secret_base64_encode(sub, so.len, out + o.len, cap - o.len);
	explicit_bzero(sub, sizeof(sub));
	if (el < 0)
		return -ENOSPC;
	o.len += (size_t)el;
	if (!out_put(&o, in + te, len - te))
		return -ENOSPC;
	*outlen = o.len;
	return rc;
}

/**
 * needle() - what a stream looks for of secret @k
 * @sec: secrets
 * @k: index
 * @fill: the stream is a filler
 * @len: its length out
 *
 * Return: the placeholder (filling) or the real value (masking).
 */
static const uint8_t *needle(const struct secret *sec, size_t k, bool fill,
			     size_t *len)
{
	if (fill) {
		*len = sec[k].placeholder_len;
		return (const uint8_t *)sec[k].placeholder;
	}
	*len = sec[k].value_len;
	return sec[k].value;
}

/**
 * struct mask_scan - one pass of a stream (or of secret_mask())
 * @sec:	secrets
 * @n:		their number
 * @fill:	placeholders to values, see struct secret_stream
 * @use:	fill: enum secret_use per secret
 * @first:	bytes that start a needle
 * @final:	no input follows what is given
 * @count:	replacements (advanced)
 * @denied:	fill: set to a denied secret's index when one is found
 * @need_more:	set when the pass stopped for lack of input
 */
struct mask_scan {
	const struct secret *sec;
	size_t n;
	bool fill;
	const uint8_t *use;
	const bool *first;
	bool final;
	size_t *count;
	int *denied;
	bool need_more;
};

/**
 * build_first() - mark the bytes that start some needle
 * @ms: pass (sec, n, fill, use set)
 * @first: 256 flags out
 */
static void build_first(const struct mask_scan *ms, bool *first)
{
	const uint8_t *nd;
	size_t k, len;

	memset(first, 0, 256 * sizeof(*first));
	for (k = 0; k < ms->n; k++) {
		nd = needle(ms->sec, k, ms->fill, &len);
		if (len && (!ms->fill || ms->use[k] != SECRET_SKIP))
			first[nd[0]] = true;
	}
}

/**
 * mask_at() - what to do at one position of a scan
 * @ms: pass
 * @p: text
 * @avail: bytes from @p to the end of what is known
 *
 * Return: index of the longest needle matching at @p, -1 when none does,
 * or -2 when a longer needle might still match once more bytes arrive.
 */
static int mask_at(const struct mask_scan *ms, const uint8_t *p, size_t avail)
{
	const uint8_t *nd;
	size_t k, vl, bl = 0;
	int best = -1;

	for (k = 0; k < ms->n; k++) {
		if (ms->fill && ms->use[k] == SECRET_SKIP)
			continue;
		nd = needle(ms->sec, k, ms->fill, &vl);
		if (vl == 0 || nd[0] != p[0])
			continue;
		if (vl > avail) {
			if (!ms->final && memcmp(p, nd, avail) == 0)
				return -2;
			continue;
		}
		if (memcmp(p, nd, vl) == 0 && (best < 0 || vl > bl)) {
			best = (int)k;
			bl = vl;
		}
	}
	return best;
}

/**
 * mask_put() - write the replacement for needle @k
 * @ms: pass
 * @k: secret index
 * @o: output
 *
 * Return: false when it does not fit.
 */
static bool mask_put(const struct mask_scan *ms, int k, struct outbuf *o)
{
	const struct secret *s = &ms->sec[k];

	if (ms->fill)
		return out_put(o, s->value, s->value_len);
	return out_put(o, s->placeholder, s->placeholder_len);
}

/**
 * mask_run() - replace as much of @in as is decided and fits in @o
 * @ms: pass parameters
 * @in: text
 * @len: its length
 * @o: output
 *
 * Return: bytes of @in consumed (a denied needle stops the pass before it).
 */
static size_t mask_run(struct mask_scan *ms, const uint8_t *in, size_t len,
		       struct outbuf *o)
{
	size_t i = 0, j, take, nl;
	int k;

	ms->need_more = false;
	while (i < len) {
		for (j = i; j < len && !ms->first[in[j]]; j++)
			;
		take = j - i < o->cap - o->len ? j - i : o->cap - o->len;
		out_put(o, in + i, take);
		i += take;
		if (i < j || i == len)
			break;			/* output full, or done */
		k = mask_at(ms, in + i, len - i);
		if (k == -2) {
			ms->need_more = true;
			break;
		}
		if (k >= 0 && ms->fill && ms->use[k] == SECRET_DENY) {
			*ms->denied = k;
			break;
		}
		if (k == -1 ? !out_put(o, in + i, 1) : !mask_put(ms, k, o))
			break;
		nl = 1;
		if (k >= 0) {
			needle(ms->sec, (size_t)k, ms->fill, &nl);
			(*ms->count)++;
		}
		i += nl;
	}
	return i;
}

/**
 * secret_mask() - replace real values by their placeholders
 * @sec: secrets
 * @n: their number
 * @in: response header value or whole body
 * @len: its length (at most INT_MAX)
 * @out: output buffer
 * @cap: its size
 * @outlen: bytes written to @out
 *
 * Return: values masked (>= 0), or -ENOSPC when the result does not fit.
 */
int secret_mask(const struct secret *sec, size_t n, const void *in, size_t len,
		void *out, size_t cap, size_t *outlen)
{
	struct outbuf o = { out, 0, cap };
	bool first[256];
	size_t count = 0;
	struct mask_scan ms = { sec, n, false, NULL, first, true, &count, NULL, false };

	*outlen = 0;
	if (len > INT_MAX)
		return -ENOSPC;
	build_first(&ms, first);
	if (mask_run(&ms, in, len, &o) < len)
		return -ENOSPC;
	*outlen = o.len;
	return (int)count;
}

/**
 * stream_pass() - the pass parameters of a stream
 * @m: stream
 * @final: no more input follows
 *
 * Return: pass parameters pointing into @m.
 */
static struct mask_scan stream_pass(struct secret_stream *m, bool final)
{
	struct mask_scan ms = { m->sec, m->n, m->fill, m->use, m->first, final,
				&m->count, &m->denied, false };

	return ms;
}

/**
 * secret_masker_init() - start masking a response stream
 * @m: stream
 * @sec: secrets (must outlive @m)
 * @n: their number
 */
void secret_masker_init(struct secret_stream *m, const struct secret *sec,
			size_t n)
{
	struct mask_scan ms;

	m->sec = sec;
	m->n = n;
	m->fill = false;
	m->count = 0;
	m->denied = -1;
	m->len = 0;
	ms = stream_pass(m, false);
	build_first(&ms, m->first);
}

/**
 * secret_filler_init() - start filling a request body toward a host
 * @m: stream
 * @sec: secrets (must outlive @m), at most SECRET_MAX
 * @n: their number
 * @h: destination host
 * @port: destination port
 *
 * Return: true when some value can be filled in, so the body's length may
 * change; false when the stream can only pass bytes or stop (denied).
 */
bool secret_filler_init(struct secret_stream *m, const struct secret *sec,
			size_t n, const struct hostpat_host *h, unsigned port)
{
	struct mask_scan ms;
	bool resizes = false;
	size_t k;

	m->sec = sec;
	m->n = n < SECRET_MAX ? n : SECRET_MAX;
	m->fill = true;
	m->count = 0;
	m->denied = -1;
	m->len = 0;
	for (k = 0; k < m->n; k++) {
		m->use[k] = !sec[k].in_body ? SECRET_SKIP :
			    host_allowed(&sec[k], h, port) ? SECRET_FILL : SECRET_DENY;
		resizes = resizes || m->use[k] == SECRET_FILL;
	}
	ms = stream_pass(m, false);
	build_first(&ms, m->first);
	return resizes;
}

/**
 * secret_stream_feed() - replace in the next chunk of a stream
 * @m: stream
 * @in: chunk
 * @len: its length
 * @out: output buffer
 * @cap: its size, at least SECRET_MASK_OUT_MIN (masking) or
 *	 SECRET_FILL_OUT_MIN (filling)
 * @produced: bytes written to @out
 *
 * Call again with the rest of @in until all is taken. Output can lag the
 * input by fewer than SECRET_MASK_BUF bytes; secret_stream_finish() ends
 * the stream. A filler that met a denied placeholder (@denied >= 0) takes
 * nothing more.
 *
 * Return: bytes of @in taken (0 only when @cap is too small, the held
 * bytes filled the output, or the stream was denied).
 */
size_t secret_stream_feed(struct secret_stream *m, const void *in, size_t len,
			  void *out, size_t cap, size_t *produced)
{
	struct outbuf o = { out, 0, cap };
	struct mask_scan ms = stream_pass(m, false);
	size_t take, used;

	*produced = 0;
	if (cap < (m->fill ? SECRET_FILL_OUT_MIN : SECRET_MASK_OUT_MIN) || len == 0 ||
	    m->denied >= 0)
		return 0;
	if (m->len == 0) {		/* nothing held: work in place */
		used = mask_run(&ms, in, len, &o);
		if (ms.need_more) {	/* the rest is shorter than a needle */
			memcpy(m->buf, (const uint8_t *)in + used, len - used);
			m->len = len - used;
			used = len;
		}
		*produced = o.len;
		return used;
	}
	take = len < SECRET_MASK_BUF - m->len ? len : SECRET_MASK_BUF - m->len;
	memcpy(m->buf + m->len, in, take);
	m->len += take;
	used = mask_run(&ms, m->buf, m->len, &o);
	memmove(m->buf, m->buf + used, m->len - used);
	m->len -= used;
	*produced = o.len;
	return take;
}

/**
 * secret_stream_finish() - flush what the stream holds at its end
 * @m: stream
 * @out: output buffer
 * @cap: its size
 * @produced: bytes written to @out
 *
 * Return: 0 when everything was flushed, 1 when @out was too small (call
 * again), -EACCES when a filler was denied (see @denied).
 */
int secret_stream_finish(struct secret_stream *m, void *out, size_t cap,
			 size_t *produced)
{
	struct outbuf o = { out, 0, cap };
	struct mask_scan ms = stream_pass(m, true);
	size_t used;

	*produced = 0;
	if (m->denied < 0) {
		used = mask_run(&ms, m->buf, m->len, &o);
		memmove(m->buf, m->buf + used, m->len - used);
		m->len -= used;
		*produced = o.len;
	}
	if (m->denied >= 0)
		return -EACCES;
	return m->len ? 1 : 0;
}
