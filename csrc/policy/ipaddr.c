/* SPDX-License-Identifier: MIT */
/* ipaddr.c - IP literals in every notation, canonical text, blocked ranges */

/*
 * Theory of Operation
 *
 * A host the guest names is either an IP literal or a DNS name, and the two
 * must never be confused: the OS resolver (inet_aton inside getaddrinfo) and
 * URL parsers read "127.1", "0x7f.1", "0177.0.0.1" and "2130706433" as
 * 127.0.0.1. So the IPv4 parser here accepts the same superset they do:
 * one to four dot-separated parts, each decimal, octal (leading 0) or hex
 * (0x, possibly with no digits, which is 0); every part but the last is a
 * byte and the last fills the remaining bytes; one trailing dot is allowed.
 * ipaddr_v4_attempt() says when a text is meant as IPv4 at all (its last
 * label starts with a digit, which no top-level domain does); such a text
 * that fails to parse is an invalid host, never a name to resolve.
 *
 * IPv6 follows RFC 4291 text: eight groups of 1-4 hex digits, one "::" for
 * one or more zero groups, an optional trailing strict dotted quad, and
 * optional brackets (in ipaddr_parse() only). Zone ids ("%eth0") are
 * rejected: they only qualify link-local addresses, which are blocked.
 *
 * ipaddr_format() writes RFC 5952 text (lower case, the longest run of two
 * or more zero groups compressed, the first on a tie; ::ffff:a.b.c.d for
 * IPv4-mapped), which ipaddr_parse() reads back to the same address.
 *
 * ipaddr_blocked() walks one table per family, first match wins, most
 * specific ranges first so the name is informative. IPv6 prefixes that
 * embed an IPv4 address (mapped, compatible, NAT64 64:ff9b::/96, 6to4) are
 * judged by the embedded address: blocked if it is, allowed otherwise.
 * Any other IPv6 address outside 2000::/3, the only global unicast space,
 * is blocked too. Tables are const; there is no state.
 */

#include <string.h>

#include "policy/ipaddr.h"
#include "util/ascii.h"

#define V4_PART_MAX	4

/* how a range judges an address inside it */
enum ipaddr_embed {
	EMBED_NONE,		/* the whole range is blocked */
	EMBED_LOW32,		/* judge the IPv4 address in bytes 12..15 */
	EMBED_6TO4,		/* judge the IPv4 address in bytes 2..5 */
};

/**
 * struct ipaddr_range - one special-purpose range
 * @plen:	prefix length in bits
 * @embed:	enum ipaddr_embed
 * @prefix:	network bytes (4 used for IPv4)
 * @name:	"<cidr> <purpose>", returned by ipaddr_blocked()
 */
struct ipaddr_range {
	uint8_t plen;
	uint8_t embed;
	uint8_t prefix[16];
	const char *name;
};

static const struct ipaddr_range v4_ranges[] = {
	{ 8,  EMBED_NONE, { 0 },		"0.0.0.0/8 this network" },
	{ 8,  EMBED_NONE, { 10 },		"10.0.0.0/8 private" },
	{ 10, EMBED_NONE, { 100, 64 },		"100.64.0.0/10 shared address space (CGNAT)" },
	{ 8,  EMBED_NONE, { 127 },		"127.0.0.0/8 loopback" },
	{ 16, EMBED_NONE, { 169, 254 },		"169.254.0.0/16 link-local (cloud metadata)" },
	{ 12, EMBED_NONE, { 172, 16 },		"172.16.0.0/12 private" },
	{ 24, EMBED_NONE, { 192, 0, 0 },	"192.0.0.0/24 IETF protocol assignments" },
	{ 24, EMBED_NONE, { 192, 0, 2 },	"192.0.2.0/24 documentation (TEST-NET-1)" },
	{ 24, EMBED_NONE, { 192, 88, 99 },	"192.88.99.0/24 6to4 relay anycast" },
	{ 16, EMBED_NONE, { 192, 168 },		"192.168.0.0/16 private" },
	{ 15, EMBED_NONE, { 198, 18 },		"198.18.0.0/15 benchmarking" },
	{ 24, EMBED_NONE, { 198, 51, 100 },	"198.51.100.0/24 documentation (TEST-NET-2)" },
	{ 24, EMBED_NONE, { 203, 0, 113 },	"203.0.113.0/24 documentation (TEST-NET-3)" },
	{ 4,  EMBED_NONE, { 224 },		"224.0.0.0/4 multicast" },
	{ 32, EMBED_NONE, { 255, 255, 255, 255 }, "255.255.255.255/32 limited broadcast" },
	{ 4,  EMBED_NONE, { 240 },		"240.0.0.0/4 reserved" },
};

static const struct ipaddr_range v6_ranges[] = {
	{ 128, EMBED_NONE, { 0 },		"::/128 unspecified" },
	{ 128, EMBED_NONE, { [15] = 1 },	"::1/128 loopback" },
	{ 96,  EMBED_LOW32, { [10] = 0xff, [11] = 0xff }, "::ffff:0:0/96 IPv4-mapped" },
	{ 96,  EMBED_LOW32, { 0 },		"::/96 IPv4-compatible" },
	{ 96,  EMBED_LOW32, { 0, 0x64, 0xff, 0x9b }, "64:ff9b::/96 NAT64" },
	{ 48,  EMBED_NONE, { 0, 0x64, 0xff, 0x9b, 0, 1 }, "64:ff9b:1::/48 local-use NAT64" },
	{ 64,  EMBED_NONE, { 1 },		"100::/64 discard-only" },
	{ 32,  EMBED_NONE, { 0x20, 0x01 },	"2001::/32 Teredo" },
	{ 23,  EMBED_NONE, { 0x20, 0x01 },	"2001::/23 IETF protocol assignments" },
	{ 32,  EMBED_NONE, { 0x20, 0x01, 0x0d, 0xb8 }, "2001:db8::/32 documentation" },
	{ 16,  EMBED_6TO4, { 0x20, 0x02 },	"2002::/16 6to4" },
	{ 20,  EMBED_NONE, { 0x3f, 0xff },	"3fff::/20 documentation" },
	{ 7,   EMBED_NONE, { 0xfc },		"fc00::/7 unique local" },
	{ 10,  EMBED_NONE, { 0xfe, 0x80 },	"fe80::/10 link-local" },
	{ 10,  EMBED_NONE, { 0xfe, 0xc0 },	"fec0::/10 site-local (deprecated)" },
	{ 8,   EMBED_NONE, { 0xff },		"ff00::/8 multicast" },
};

static const char v6_not_global[] = "non-global IPv6 (outside 2000::/3)";

/**
 * v4_part() - parse one inet_aton-style IPv4 part
 * @s: text of the part (no dots)
 * @n: its length
 * @v: value out
 *
 * Decimal, octal after a leading 0, hex after 0x (no digits is 0, as in
 * inet_aton and the URL standard). Values beyond 32 bits are refused as
 * they are read, so no accumulation can wrap.
 *
 * Return: 0, or -1 when malformed.
 */
static int v4_part(const char *s, size_t n, uint32_t *v)
{
	unsigned base = 10;
	uint64_t acc = 0;
	size_t i = 0;
	int d;

	if (n == 0)
		return -1;
	if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		i = 2;
	} else if (n >= 2 && s[0] == '0') {
		base = 8;
		i = 1;
	}
	for (; i < n; i++) {
		d = ascii_hex((unsigned char)s[i]);
		if (d < 0 || (unsigned)d >= base)
			return -1;
		acc = acc * base + (unsigned)d;
		if (acc > UINT32_MAX)
			return -1;
	}
	*v = (uint32_t)acc;
	return 0;
}

/**
 * set_v4() - fill @a with an IPv4 address
 * @a: address out
 * @v: host-order value
 */
static void set_v4(struct ipaddr *a, uint32_t v)
{
	memset(a, 0, sizeof(*a));
	a->family = IPADDR_V4;
	a->b[0] = (uint8_t)(v >> 24);
	a->b[1] = (uint8_t)(v >> 16);
	a->b[2] = (uint8_t)(v >> 8);
	a->b[3] = (uint8_t)v;
}

/**
 * ipaddr_parse_v4() - parse an IPv4 literal in any inet_aton notation
 * @s: text, not necessarily NUL-terminated
 * @n: its length
 * @a: address out (untouched on failure)
 *
 * Return: IPADDR_V4, or -1 when @s is not an IPv4 literal.
 */
int ipaddr_parse_v4(const char *s, size_t n, struct ipaddr *a)
{
	uint32_t part[V4_PART_MAX], v;
	size_t np = 0, start = 0, i;

	if (n > 0 && s[n - 1] == '.')
		n--;			/* one trailing dot, as in a FQDN */
	if (n == 0 || n > IPADDR_TEXT_MAX)
		return -1;
	for (i = 0; i <= n; i++) {
		if (i < n && s[i] != '.')
			continue;
		if (np == V4_PART_MAX || v4_part(s + start, i - start, &part[np]) < 0)
			return -1;
		np++;
		start = i + 1;
	}
	v = part[np - 1];
	if (np > 1 && (uint64_t)v >> (8 * (5 - np)) != 0)
		return -1;		/* the last part fills 5 - np bytes */
	for (i = 0; i + 1 < np; i++) {
		if (part[i] > 255)
			return -1;
		v |= part[i] << (8 * (3 - i));
	}
	set_v4(a, v);
	return IPADDR_V4;
}

/**
 * dotted_quad() - parse the strict a.b.c.d that may end an IPv6 literal
 * @s: text
 * @n: its length (all of it must be consumed)
 * @out: four bytes out
 *
 * Exactly four decimal parts of 1-3 digits, no leading zeros, each <= 255
 * (what inet_pton accepts).
 *
 * Return: 0, or -1 when malformed.
 */
static int dotted_quad(const char *s, size_t n, uint8_t *out)
{
	size_t i = 0, k, digits;
	unsigned v;

	for (k = 0; k < 4; k++) {
		if (k > 0 && (i >= n || s[i++] != '.'))
			return -1;
		for (v = 0, digits = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
			if (digits > 0 && v == 0)
				return -1;	/* leading zero */
			v = v * 10 + (unsigned)(s[i] - '0');
			if (++digits > 3 || v > 255)
				return -1;
		}
		if (digits == 0)
			return -1;
		out[k] = (uint8_t)v;
	}
	return i == n ? 0 : -1;
}

/**
 * hex_group() - read up to five hex digits (five means too many)
 * @s: text
 * @n: its length
 * @i: position, advanced past the digits
 * @v: value out
 *
 * Return: the number of digits read.
 */
static size_t hex_group(const char *s, size_t n, size_t *i, unsigned *v)
{
	size_t start = *i;
	int d;

	*v = 0;
	while (*i < n && *i - start < 5 && (d = ascii_hex((unsigned char)s[*i])) >= 0) {
		*v = *v * 16 + (unsigned)d;
		(*i)++;
	}
	return *i - start;
}

/**
 * v6_groups() - split IPv6 text into groups around at most one "::"
 * @s: text without brackets
 * @n: its length
 * @g: 16 bytes of groups out, in text order, before expansion
 * @ng: number of 16-bit groups written
 * @gap: group index of the "::", or -1
 *
 * Return: 0, or -1 when malformed.
 */
static int v6_groups(const char *s, size_t n, uint8_t *g, size_t *ng, int *gap)
{
	size_t i = 0, digits, start;
	unsigned v;

	*ng = 0;
	*gap = -1;
	if (s[0] == ':') {
		if (s[1] != ':')
			return -1;
		*gap = 0;
		i = 2;
		if (i == n)
			return 0;
	}
	for (;;) {
		start = i;
		digits = hex_group(s, n, &i, &v);
		if (i < n && s[i] == '.') {		/* trailing IPv4 */
			if (*ng > 6 || dotted_quad(s + start, n - start, g + 2 * *ng) < 0)
				return -1;
			*ng += 2;
			return 0;
		}
		if (digits == 0 || digits > 4 || *ng == 8)
			return -1;
		g[2 * *ng] = (uint8_t)(v >> 8);
		g[2 * *ng + 1] = (uint8_t)v;
		(*ng)++;
		if (i == n)
			return 0;
		if (s[i++] != ':' || i == n)
			return -1;		/* junk, or a lone trailing ':' */
		if (s[i] == ':') {
			if (*gap >= 0)
				return -1;	/* a second "::" */
			*gap = (int)*ng;
			if (++i == n)
				return 0;
		}
	}
}

/**
 * ipaddr_parse_v6() - parse an IPv6 literal (no brackets, no zone id)
 * @s: text, not necessarily NUL-terminated
 * @n: its length
 * @a: address out (untouched on failure)
 *
 * Return: IPADDR_V6, or -1 when @s is not an IPv6 literal.
 */
int ipaddr_parse_v6(const char *s, size_t n, struct ipaddr *a)
{
	uint8_t g[16] = { 0 };
	size_t ng, tail;
	int gap;

	if (n < 2 || n > IPADDR_TEXT_MAX || v6_groups(s, n, g, &ng, &gap) < 0)
		return -1;
	if (gap < 0 ? ng != 8 : ng > 7)
		return -1;		/* "::" stands for at least one group */
	memset(a, 0, sizeof(*a));
	a->family = IPADDR_V6;
	if (gap < 0) {
		memcpy(a->b, g, 16);
		return IPADDR_V6;
	}
	tail = ng - (size_t)gap;
	memcpy(a->b, g, 2 * (size_t)gap);
	memcpy(a->b + 16 - 2 * tail, g + 2 * gap, 2 * tail);
	return IPADDR_V6;
}

/**
 * ipaddr_v4_attempt() - whether a host text is meant as an IPv4 literal
 * @s: host text (no brackets, no port)
 * @n: its length
 *
 * True when the last label (one trailing dot ignored) starts with a decimal
 * digit. Top-level domains are alphabetic, so such a text is never a name
 * worth resolving, and resolvers would read it numerically.
 *
 * Return: true if @s must parse as IPv4 or be refused.
 */
bool ipaddr_v4_attempt(const char *s, size_t n)
{
	size_t i;

	if (n > 0 && s[n - 1] == '.')
		n--;
	for (i = n; i > 0 && s[i - 1] != '.'; i--)
		;
	return i < n && s[i] >= '0' && s[i] <= '9';
}

/**
 * ipaddr_parse() - parse an IPv4 or IPv6 literal in any notation
 * @s: text, not necessarily NUL-terminated; IPv6 may be in brackets
 * @n: its length
 * @a: address out (untouched on failure)
 *
 * Text with a ':' or a '[' is IPv6, anything else IPv4. Callers that must
 * tell names from literals use ipaddr_v4_attempt() on a -1 result.
 *
 * Return: IPADDR_V4 or IPADDR_V6, or -1 when @s is not an IP literal.
 */
int ipaddr_parse(const char *s, size_t n, struct ipaddr *a)
{
	if (n == 0 || n > IPADDR_TEXT_MAX)
		return -1;
	if (s[0] == '[') {
		if (n < 2 || s[n - 1] != ']')
			return -1;
		return ipaddr_parse_v6(s + 1, n - 2, a);
	}
	if (memchr(s, ':', n))
		return ipaddr_parse_v6(s, n, a);
	return ipaddr_parse_v4(s, n, a);
}

/**
 * put_uint() - append a number in base 10 or 16 to a bounded buffer
 * @buf: buffer
 * @len: bytes written so far (advanced)
 * @v: value (< 65536)
 * @base: 10 or 16
 */
static void put_uint(char *buf, size_t *len, unsigned v, unsigned base)
{
	char tmp[8];
	size_t k = 0;

	do {
		tmp[k++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (k)
		buf[(*len)++] = tmp[--k];
}

/**
 * format_v4() - dotted quad of four bytes
 * @b: bytes
 * @buf: at least 16 bytes
 * @len: bytes written so far (advanced)
 */
static void format_v4(const uint8_t *b, char *buf, size_t *len)
{
	int k;

	for (k = 0; k < 4; k++) {
		if (k)
			buf[(*len)++] = '.';
		put_uint(buf, len, b[k], 10);
	}
}

/**
 * zero_run() - the longest run of two or more zero groups (first on a tie)
 * @b: 16 address bytes
 * @len: run length in groups out (0 when none)
 *
 * Return: index of the first group of the run.
 */
static int zero_run(const uint8_t *b, int *len)
{
	int best = 0, i, j;

	*len = 0;
	for (i = 0; i < 8; i = j + 1) {
		for (j = i; j < 8 && !b[2 * j] && !b[2 * j + 1]; j++)
			;
		if (j - i > *len && j - i >= 2) {
			*len = j - i;
			best = i;
		}
	}
	return best;
}

/**
 * format_v6() - RFC 5952 text of an IPv6 address
 * @b: 16 bytes
 * @buf: at least IPADDR_STRLEN bytes
 *
 * Return: length written.
 */
static size_t format_v6(const uint8_t *b, char *buf)
{
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };
	size_t len = 0;
	int run, rlen, i;

	if (memcmp(b, mapped, sizeof(mapped)) == 0) {
		memcpy(buf, "::ffff:", 7);
		len = 7;
		format_v4(b + 12, buf, &len);
		return len;
	}
	run = zero_run(b, &rlen);
	for (i = 0; i < 8; i++) {
		if (rlen && i == run) {
			buf[len++] = ':';
			buf[len++] = ':';
			i += rlen - 1;
			continue;
		}
		if (i > 0 && !(rlen && i == run + rlen))
			buf[len++] = ':';
		put_uint(buf, &len, (unsigned)b[2 * i] << 8 | b[2 * i + 1], 16);
	}
	return len;
}

/**
 * ipaddr_format() - canonical text of an address
 * @a: address
 * @buf: output
 * @cap: size of @buf; IPADDR_STRLEN always suffices
 *
 * Return: length written (NUL-terminated), or -1 when @cap is too small or
 * @a has no valid family.
 */
int ipaddr_format(const struct ipaddr *a, char *buf, size_t cap)
{
	char tmp[IPADDR_STRLEN];
	size_t len = 0;

	if (a->family == IPADDR_V4)
		format_v4(a->b, tmp, &len);
	else if (a->family == IPADDR_V6)
		len = format_v6(a->b, tmp);
	else
		return -1;
	if (len >= cap)
		return -1;
	memcpy(buf, tmp, len);
	buf[len] = '\0';
	return (int)len;
}

/**
 * ipaddr_equal() - same family and bytes
 * @a: address
 * @b: address
 *
 * Return: true when equal.
 */
bool ipaddr_equal(const struct ipaddr *a, const struct ipaddr *b)
{
	return a->family == b->family && memcmp(a->b, b->b, 16) == 0;
}

/**
 * prefix_match() - whether @a starts with the first @plen bits of @p
 * @a: address bytes
 * @p: prefix bytes
 * @plen: prefix length in bits
 *
 * Return: true on a match.
 */
static bool prefix_match(const uint8_t *a, const uint8_t *p, unsigned plen)
{
	unsigned full = plen / 8, rem = plen % 8;

	if (memcmp(a, p, full) != 0)
		return false;
	return rem == 0 || ((a[full] ^ p[full]) & (0xff00u >> rem)) == 0;
}

/**
 * find_range() - first range of @t containing @b
 * @t: table
 * @n: entries
 * @b: address bytes
 *
 * Return: the range, or NULL.
 */
static const struct ipaddr_range *find_range(const struct ipaddr_range *t,
					     size_t n, const uint8_t *b)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (prefix_match(b, t[i].prefix, t[i].plen))
			return &t[i];
	return NULL;
}

/**
 * blocked_v4() - range name for IPv4 bytes
 * @b: four bytes
 *
 * Return: the name, or NULL when not blocked.
 */
static const char *blocked_v4(const uint8_t *b)
{
	const struct ipaddr_range *r;

	r = find_range(v4_ranges, sizeof(v4_ranges) / sizeof(v4_ranges[0]), b);
	return r ? r->name : NULL;
}

/**
 * ipaddr_blocked() - whether an address is in a blocked special range
 * @a: address (a literal the guest named, or one a name resolved to)
 *
 * Return: the name of the range ("127.0.0.0/8 loopback"; for an IPv6
 * prefix embedding IPv4, the embedded address's range), or NULL when the
 * address is public. An address of no known family is reported blocked.
 */
const char *ipaddr_blocked(const struct ipaddr *a)
{
	const struct ipaddr_range *r;

	if (a->family == IPADDR_V4)
		return blocked_v4(a->b);
	if (a->family != IPADDR_V6)
		return "invalid address family";
	r = find_range(v6_ranges, sizeof(v6_ranges) / sizeof(v6_ranges[0]), a->b);
	if (r && r->embed == EMBED_LOW32)
		return blocked_v4(a->b + 12);
	if (r && r->embed == EMBED_6TO4)
		return blocked_v4(a->b + 2);
	if (r)
		return r->name;
	return (a->b[0] & 0xe0) == 0x20 ? NULL : v6_not_global;
}
