/* SPDX-License-Identifier: MIT */
/* hostpat.c - host names, host patterns and compiled allowlists */

/*
 * Theory of Operation
 *
 * Hosts and patterns go through one normaliser, hostpat_host_parse(), so
 * they compare as plain strings: names are lower-cased ASCII with one
 * trailing dot removed, labels of [a-z0-9_-] between 1 and 63 bytes, at
 * most 253 bytes in all (IDNs arrive as punycode); IP literals become their
 * canonical ipaddr_format() text, so "0x7f.1" and "127.0.0.1" are the same
 * host. Text whose last label starts with a digit is an IPv4 attempt and
 * text with a ':' or '[' an IPv6 attempt (ipaddr.c); if it does not parse
 * it is an invalid host, never a name to hand to a resolver.
 *
 * Pattern grammar (case-insensitive):
 *
 *	pattern  = [ "*." ] host [ ":" port ]
 *	         | "[" ipv6 "]" [ ":" port ]  |  ipv6	(bare: no port)
 *	port     = 1..65535; none means any port
 *
 * "a.b" matches exactly a.b; "*.a.b" matches names strictly below a.b (not
 * a.b itself, list both for both); '*' anywhere else, "*" alone and "*."
 * before an IP literal are compile errors. HOSTPAT_F_EXCEPTIONS sets (the
 * allow-internal list) take only exact host:port entries.
 *
 * A set is an array of at most HOSTPAT_MAX_PATTERNS entries allocated once
 * by hostpat_set_init(); matching is a linear scan in list order, so the
 * returned index names the first rule that matched. Sets are read-only
 * after compilation and may be shared.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "policy/hostpat.h"
#include "util/ascii.h"

/**
 * parse_name() - validate and lower-case a DNS name
 * @s: text without trailing dot
 * @n: its length, 1..HOSTPAT_NAME_MAX
 * @h: host out
 *
 * Return: NULL, or a constant error message.
 */
static const char *parse_name(const char *s, size_t n, struct hostpat_host *h)
{
	size_t i, label = 0;
	char c;

	for (i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (label == 0)
				return "empty label";
			label = 0;
			h->name[i] = '.';
			continue;
		}
		c = ascii_name_char((unsigned char)s[i]);
		if (!c)
			return s[i] == '*' ? "'*' is only allowed as a leading \"*.\" label"
					   : "invalid character in host name";
		if (++label > HOSTPAT_LABEL_MAX)
			return "label longer than 63 bytes";
		h->name[i] = c;
	}
	if (label == 0)
		return "empty label";
	h->name[n] = '\0';
	h->len = n;
	h->kind = HOSTPAT_NAME;
	memset(&h->ip, 0, sizeof(h->ip));
	return NULL;
}

/**
 * host_of_ip() - fill in kind and canonical name from @h->ip
 * @h: host whose @ip is set
 */
static void host_of_ip(struct hostpat_host *h)
{
	h->kind = h->ip.family;
	h->len = (size_t)ipaddr_format(&h->ip, h->name, sizeof(h->name));
}

/**
 * parse_ip() - an IP literal host, in canonical text
 * @s: text
 * @n: its length
 * @h: host out
 *
 * Return: NULL, or a constant error message.
 */
static const char *parse_ip(const char *s, size_t n, struct hostpat_host *h)
{
	int fam = ipaddr_parse(s, n, &h->ip);

	if (fam < 0) {
		if (memchr(s, '%', n))
			return "IPv6 zone ids are not allowed";
		if (s[0] == '[' || memchr(s, ':', n))
			return "invalid IPv6 literal";
		return "invalid IPv4 literal (a last label starting with a digit "
		       "makes an IP address, not a name)";
	}
	host_of_ip(h);
	return NULL;
}

/**
 * hostpat_host_equal() - the same normalised host
 * @a: host
 * @b: host
 *
 * Return: true when their normalised names are equal.
 */
bool hostpat_host_equal(const struct hostpat_host *a, const struct hostpat_host *b)
{
	return a->len == b->len && memcmp(a->name, b->name, a->len) == 0;
}

/**
 * hostpat_host_parse() - normalise a host the guest named
 * @s: host text (no port; IPv6 bare or in brackets), not NUL-terminated
 * @n: its length
 * @h: host out
 * @err: set to a constant message on failure (may be NULL)
 *
 * Return: the enum hostpat_host_kind, or -1 when @s is not a valid host
 * (such a host must be denied, not resolved).
 */
int hostpat_host_parse(const char *s, size_t n, struct hostpat_host *h,
		       const char **err)
{
	const char *e;

	if (n > 0 && (s[0] == '[' || memchr(s, ':', n) || ipaddr_v4_attempt(s, n)))
		e = parse_ip(s, n, h);		/* reads its own trailing dot */
	else if (n > 0 && s[n - 1] == '.' && --n == 0)
		e = "empty host";
	else if (n == 0)
		e = "empty host";
	else if (n > HOSTPAT_NAME_MAX)
		e = "host name longer than 253 bytes";
	else
		e = parse_name(s, n, h);
	if (e) {
		if (err)
			*err = e;
		return -1;
	}
	return h->kind;
}

/**
 * parse_port() - a decimal port 1..65535
 * @s: digits
 * @n: their count
 * @port: value out
 *
 * Return: NULL, or a constant error message.
 */
static const char *parse_port(const char *s, size_t n, uint16_t *port)
{
	unsigned v = 0;
	size_t i;

	if (n == 0)
		return "empty port";
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return "port is not a number";
		v = v * 10 + (unsigned)(s[i] - '0');
		if (v > 65535)
			return "port out of range 1..65535";
	}
	if (v == 0)
		return "port out of range 1..65535";
	*port = (uint16_t)v;
	return NULL;
}

/**
 * split_port() - separate the host part of a pattern from its port
 * @s: pattern
 * @n: its length (> 0)
 * @hlen: length of the host part out
 * @port: port out (HOSTPAT_ANY_PORT when none)
 *
 * Return: NULL, or a constant error message.
 */
static const char *split_port(const char *s, size_t n, size_t *hlen,
			      uint16_t *port)
{
	const char *colon, *close;

	*port = HOSTPAT_ANY_PORT;
	*hlen = n;
	if (s[0] == '[') {
		close = memchr(s, ']', n);
		if (!close)
			return "unterminated '['";
		*hlen = (size_t)(close - s) + 1;
		if (*hlen == n)
			return NULL;
		if (s[*hlen] != ':')
			return "unexpected text after ']'";
		return parse_port(s + *hlen + 1, n - *hlen - 1, port);
	}
	colon = memchr(s, ':', n);
	if (!colon || memchr(colon + 1, ':', n - (size_t)(colon - s) - 1))
		return NULL;		/* no port, or a bare IPv6 literal */
	*hlen = (size_t)(colon - s);
	return parse_port(colon + 1, n - *hlen - 1, port);
}

/**
 * check_flags() - restrictions of the set a pattern goes into
 * @p: parsed pattern
 * @flags: HOSTPAT_F_*
 *
 * Return: NULL, or a constant error message.
 */
static const char *check_flags(const struct hostpat *p, unsigned flags)
{
	if ((flags & HOSTPAT_F_EXACT) && p->wildcard)
		return "must be an exact host, without \"*.\"";
	if ((flags & HOSTPAT_F_PORT) && p->port == HOSTPAT_ANY_PORT)
		return "must name a port (host:port)";
	return NULL;
}

/**
 * parse_pattern() - hostpat_parse() without the error plumbing
 * @s: pattern
 * @n: its length
 * @flags: HOSTPAT_F_*
 * @p: pattern out
 *
 * Return: NULL, or a constant error message.
 */
static const char *parse_pattern(const char *s, size_t n, unsigned flags,
				 struct hostpat *p)
{
	const char *e;
	size_t hlen;

	if (n == 0)
		return "empty pattern";
	if (n > HOSTPAT_TEXT_MAX)
		return "pattern too long";
	e = split_port(s, n, &hlen, &p->port);
	if (e)
		return e;
	p->wildcard = hlen >= 2 && s[0] == '*' && s[1] == '.';
	if (p->wildcard) {
		s += 2;
		hlen -= 2;
	}
	if (hlen == 1 && s[0] == '*')
		return "\"*\" alone is not allowed (it would allow every host)";
	if (hostpat_host_parse(s, hlen, &p->host, &e) < 0)
		return e;
	if (p->wildcard && p->host.kind != HOSTPAT_NAME)
		return "\"*.\" applies to names, not IP literals";
	return check_flags(p, flags);
}

/**
 * hostpat_parse() - compile one pattern
 * @s: pattern text, not NUL-terminated
 * @n: its length
 * @flags: HOSTPAT_F_* restrictions
 * @p: pattern out
 * @err: set to a constant message on failure (may be NULL)
 *
 * Return: 0, or -EINVAL.
 */
int hostpat_parse(const char *s, size_t n, unsigned flags, struct hostpat *p,
		  const char **err)
{
	const char *e = parse_pattern(s, n, flags, p);

	if (!e)
		return 0;
	if (err)
		*err = e;
	return -EINVAL;
}

/**
 * hostpat_match() - whether one pattern matches a host and port
 * @p: pattern
 * @h: normalised host
 * @port: destination port
 *
 * Return: true on a match.
 */
bool hostpat_match(const struct hostpat *p, const struct hostpat_host *h,
		   unsigned port)
{
	size_t sl = p->host.len;

	if (p->port != HOSTPAT_ANY_PORT && p->port != port)
		return false;
	if (!p->wildcard)
		return h->len == sl && memcmp(h->name, p->host.name, sl) == 0;
	return h->kind == HOSTPAT_NAME && h->len > sl + 1 &&
	       h->name[h->len - sl - 1] == '.' &&
	       memcmp(h->name + h->len - sl, p->host.name, sl) == 0;
}

/**
 * hostpat_format() - normalised text of a pattern (compiles back to itself)
 * @p: pattern
 * @buf: output
 * @cap: size of @buf; HOSTPAT_TEXT_MAX + 1 always suffices
 *
 * Return: length written (NUL-terminated), or -ENOSPC.
 */
int hostpat_format(const struct hostpat *p, char *buf, size_t cap)
{
	char tmp[HOSTPAT_TEXT_MAX + 1];
	bool brackets = p->host.kind == HOSTPAT_IPV6 && p->port;
	size_t len = 0;
	unsigned v = p->port, div;

	if (p->wildcard) {
		tmp[len++] = '*';
		tmp[len++] = '.';
	}
	if (brackets)
		tmp[len++] = '[';
	memcpy(tmp + len, p->host.name, p->host.len);
	len += p->host.len;
	if (brackets)
		tmp[len++] = ']';
	if (v) {
		tmp[len++] = ':';
		for (div = 10000; div > v; div /= 10)
			;
		for (; div; div /= 10)
			tmp[len++] = (char)('0' + v / div % 10);
	}
	if (len >= cap)
		return -ENOSPC;
	memcpy(buf, tmp, len);
	buf[len] = '\0';
	return (int)len;
}

/**
 * hostpat_set_init() - allocate an empty set for up to @cap patterns
 * @s: set
 * @cap: patterns it will hold (<= HOSTPAT_MAX_PATTERNS)
 * @flags: HOSTPAT_F_* every added pattern must satisfy
 *
 * Return: 0, -E2BIG when @cap is over the limit, or -ENOMEM.
 */
int hostpat_set_init(struct hostpat_set *s, size_t cap, unsigned flags)
{
	s->pat = NULL;
	s->n = s->cap = 0;
	s->flags = flags;
	if (cap > HOSTPAT_MAX_PATTERNS)
		return -E2BIG;
	if (cap == 0)
		return 0;
	s->pat = calloc(cap, sizeof(*s->pat));
	if (!s->pat)
		return -ENOMEM;
	s->cap = cap;
	return 0;
}

/**
 * hostpat_set_add() - compile a pattern and append it to the set
 * @s: set
 * @pat: pattern text
 * @n: its length
 * @err: set to a constant message on failure (may be NULL)
 *
 * Return: 0, -ENOSPC when the set is full, or -EINVAL.
 */
int hostpat_set_add(struct hostpat_set *s, const char *pat, size_t n,
		    const char **err)
{
	int rc;

	if (s->n == s->cap) {
		if (err)
			*err = "too many patterns";
		return -ENOSPC;
	}
	rc = hostpat_parse(pat, n, s->flags, &s->pat[s->n], err);
	if (rc == 0)
		s->n++;
	return rc;
}

/**
 * hostpat_set_match() - first pattern of the set matching a host and port
 * @s: set
 * @h: normalised host
 * @port: destination port
 *
 * Return: the index of the matching pattern, or -1.
 */
int hostpat_set_match(const struct hostpat_set *s, const struct hostpat_host *h,
		      unsigned port)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (hostpat_match(&s->pat[i], h, port))
			return (int)i;
	return -1;
}

/**
 * hostpat_set_match_str() - hostpat_set_match() on raw host text
 * @s: set
 * @host: host text (see hostpat_host_parse())
 * @n: its length
 * @port: destination port
 *
 * Return: the index of the matching pattern, or -1 (also for an invalid
 * host).
 */
int hostpat_set_match_str(const struct hostpat_set *s, const char *host,
			  size_t n, unsigned port)
{
	struct hostpat_host h;

	if (hostpat_host_parse(host, n, &h, NULL) < 0)
		return -1;
	return hostpat_set_match(s, &h, port);
}

/**
 * hostpat_set_free() - release a set; safe to call twice
 * @s: set
 */
void hostpat_set_free(struct hostpat_set *s)
{
	free(s->pat);
	s->pat = NULL;
	s->n = s->cap = 0;
}

/**
 * hostpat_blocked() - internal-range verdict for one address of a host
 * @exceptions: HOSTPAT_F_EXCEPTIONS set of exact host:port entries, or NULL
 * @h: the host the guest asked for
 * @port: the destination port
 * @addr: an address @h resolved to (for an IP literal, @h->ip)
 *
 * An exception lifts the block when an entry names the requested host and
 * port, or the address itself and the port: an IP entry covers any
 * (allowed) name that resolves to it, on that port only.
 *
 * Return: NULL when the address may be used, else the blocked range's name.
 */
const char *hostpat_blocked(const struct hostpat_set *exceptions,
			    const struct hostpat_host *h, unsigned port,
			    const struct ipaddr *addr)
{
	const char *r = ipaddr_blocked(addr);
	struct hostpat_host ah;

	if (!r || !exceptions)
		return r;
	if (hostpat_set_match(exceptions, h, port) >= 0)
		return NULL;
	ah.ip = *addr;
	host_of_ip(&ah);
	return hostpat_set_match(exceptions, &ah, port) >= 0 ? NULL : r;
}
