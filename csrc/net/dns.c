/* SPDX-License-Identifier: MIT */
/* dns.c - the synthetic DNS resolver on the gateway */

/*
 * Theory of Operation
 *
 * The guest's only DNS server is the gateway, and nothing is ever looked
 * up upstream: the answer is made up here, so no guest query leaves the
 * host and DNS cannot be used as a tunnel.
 *
 * Queries. A query is accepted only if it is well formed and simple: QR=0,
 * opcode 0, exactly one question, no answer or authority records (any
 * additional records, such as an EDNS OPT, are ignored), the name in
 * uncompressed labels of 1..63 bytes from [A-Za-z0-9_-], at most 128
 * labels and 253 characters in dotted form. Anything else is dropped
 * without a reply and counted in dns_malformed.
 *
 * Answers. The reply echoes the id, RD and the question's bytes (so 0x20
 * case randomisation survives) and sets QR, AA and RA, RCODE 0:
 *   - A/IN for an IPv4 literal "a.b.c.d" (decimal, no leading zeros): that
 *     address;
 *   - A/IN for "localhost" or "*.localhost": 127.0.0.1 (RFC 6761);
 *   - A/IN for any other name: the name's address in the pool (below);
 *   - the root name, other types (AAAA included: the guest has no IPv6)
 *     and other classes: no answer records (NOERROR/NODATA).
 * Every answer has TTL DNS_TTL. If the pool cannot give an address the
 * reply is SERVFAIL.
 *
 * The pool. Names map to addresses in pool_base/pool_bits so that a TCP
 * connection to such an address tells which name the guest dialled
 * (dns_pool_name). Addresses are handed out in order from pool_base + 1,
 * skipping every x.y.z.0 and x.y.z.255, and the cursor wraps at the end of
 * the pool, skipping addresses still in use. At most DNS_POOL_ENTRIES
 * names are remembered; a new name beyond that evicts the least recently
 * queried one (counted in dns_evicted). So a name keeps its address for as
 * long as it stays in the table, and a freed address is handed out again
 * only after the cursor has gone once round the whole pool, which the
 * pool size (at least twice the table) makes unlikely within a DNS TTL.
 *
 * Storage: one allocation per stack, sized at compile time. Two chained
 * hash tables (by name, by address) index the entries; a doubly linked
 * list keeps them in recency order. Chains hold at most DNS_POOL_ENTRIES
 * entries, which bounds the cost of a lookup even for colliding names.
 */

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/dns.h"
#include "net/udp.h"
#include "util/ascii.h"

#define DNS_BUCKETS	(2 * DNS_POOL_ENTRIES)	/* power of two */
#define DNS_NIL		0xffff			/* end of a chain or list */
#define DNS_FLAG_QR	0x8000
#define DNS_FLAG_AA	0x0400
#define DNS_FLAG_RD	0x0100
#define DNS_FLAG_RA	0x0080
#define DNS_OPCODE(f_)	(((f_) >> 11) & 0xf)
#define DNS_RCODE_SERVFAIL 2
#define DNS_LOCALHOST	0x7f000001u

static_assert((DNS_BUCKETS & (DNS_BUCKETS - 1)) == 0, "buckets: power of two");
static_assert(DNS_POOL_ENTRIES < DNS_NIL, "entry index must fit u16");
static_assert((1u << (32 - DNS_POOL_MAX_BITS)) / 2 > DNS_POOL_ENTRIES,
	      "the smallest pool must outnumber the table");

/**
 * struct dns_entry - one remembered name
 * @ip:		its address (never 0 once used)
 * @name_next:	next entry in the same by-name bucket
 * @ip_next:	next entry in the same by-address bucket
 * @prev, @next: recency list neighbours (@prev is more recent)
 * @len:	name length
 * @name:	lower-cased dotted name, NUL-terminated
 */
struct dns_entry {
	uint32_t ip;
	uint16_t name_next, ip_next;
	uint16_t prev, next;
	uint8_t len;
	char name[DNS_MAX_NAME + 1];
};

/**
 * struct dns_pool - name <-> address table of one stack
 * @base:	first address of the pool
 * @size:	addresses in the pool
 * @cursor:	offset of the next address to try
 * @count:	entries in use (indices 0..count-1)
 * @head, @tail: most and least recently queried entry
 * @evicted:	entries dropped to make room
 * @by_name, @by_ip: bucket heads
 * @e:		the entries
 */
struct dns_pool {
	uint32_t base, size, cursor;
	uint16_t count, head, tail;
	uint64_t evicted;
	uint16_t by_name[DNS_BUCKETS], by_ip[DNS_BUCKETS];
	struct dns_entry e[DNS_POOL_ENTRIES];
};

/**
 * name_hash() - bucket of a name (FNV-1a)
 * @name:	bytes
 * @len:	count
 *
 * Return: bucket index
 */
static uint32_t name_hash(const char *name, size_t len)
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ (uint8_t)name[i]) * 16777619u;
	return h & (DNS_BUCKETS - 1);
}

/**
 * ip_hash() - bucket of an address
 * @ip:		address
 *
 * Return: bucket index
 */
static uint32_t ip_hash(uint32_t ip)
{
	return ((ip * 2654435761u) >> 16) & (DNS_BUCKETS - 1);
}

/**
 * dns_pool_new() - allocate an empty table for a pool
 * @base:	pool network address
 * @bits:	prefix length, DNS_POOL_MIN_BITS..DNS_POOL_MAX_BITS
 *
 * Return: the pool, or NULL (bad prefix or out of memory)
 */
struct dns_pool *dns_pool_new(uint32_t base, uint8_t bits)
{
	struct dns_pool *p;

	if (bits < DNS_POOL_MIN_BITS || bits > DNS_POOL_MAX_BITS)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->size = 1u << (32 - bits);
	p->base = base & ~(p->size - 1);
	p->cursor = 1;
	p->head = p->tail = DNS_NIL;
	memset(p->by_name, 0xff, sizeof(p->by_name));
	memset(p->by_ip, 0xff, sizeof(p->by_ip));
	return p;
}

/**
 * dns_pool_free() - release a pool
 * @p:		pool, or NULL
 */
void dns_pool_free(struct dns_pool *p)
{
	free(p);
}

/**
 * dns_pool_evicted() - how many names were forgotten to make room
 * @p:		pool
 *
 * Return: the count
 */
uint64_t dns_pool_evicted(const struct dns_pool *p)
{
	return p->evicted;
}

/**
 * find_ip() - entry holding an address
 * @p:		pool
 * @ip:		address
 *
 * Return: entry index or DNS_NIL
 */
static uint16_t find_ip(const struct dns_pool *p, uint32_t ip)
{
	uint16_t i;

	for (i = p->by_ip[ip_hash(ip)]; i != DNS_NIL; i = p->e[i].ip_next)
		if (p->e[i].ip == ip)
			return i;
	return DNS_NIL;
}

/**
 * find_name() - entry holding a name
 * @p:		pool
 * @name:	lower-cased name
 * @len:	its length
 * @h:		name_hash() of it
 *
 * Return: entry index or DNS_NIL
 */
static uint16_t find_name(const struct dns_pool *p, const char *name,
			  size_t len, uint32_t h)
{
	uint16_t i;

	for (i = p->by_name[h]; i != DNS_NIL;
	     i = p->e[i].name_next)
		if (p->e[i].len == len && memcmp(p->e[i].name, name, len) == 0)
			return i;
	return DNS_NIL;
}

/**
 * lru_unlink() - take an entry out of the recency list
 * @p:		pool
 * @i:		entry
 */
static void lru_unlink(struct dns_pool *p, uint16_t i)
{
	struct dns_entry *e = &p->e[i];

	if (e->prev != DNS_NIL)
		p->e[e->prev].next = e->next;
	else
		p->head = e->next;
	if (e->next != DNS_NIL)
		p->e[e->next].prev = e->prev;
	else
		p->tail = e->prev;
}

/**
 * lru_push() - make an entry the most recent
 * @p:		pool
 * @i:		entry (not in the list)
 */
static void lru_push(struct dns_pool *p, uint16_t i)
{
	p->e[i].prev = DNS_NIL;
	p->e[i].next = p->head;
	if (p->head != DNS_NIL)
		p->e[p->head].prev = i;
	p->head = i;
	if (p->tail == DNS_NIL)
		p->tail = i;
}

/**
 * chain_unlink() - remove an entry from one of the bucket chains
 * @p:		pool
 * @head:	the bucket head
 * @i:		entry
 * @by_ip:	which chain (next field) to follow
 */
static void chain_unlink(struct dns_pool *p, uint16_t *head, uint16_t i,
			 int by_ip)
{
	uint16_t *link = head;

	while (*link != DNS_NIL && *link != i)
		link = by_ip ? &p->e[*link].ip_next : &p->e[*link].name_next;
	if (*link == i)
		*link = by_ip ? p->e[i].ip_next : p->e[i].name_next;
}

/**
 * evict() - forget the least recently queried name
 * @p:		pool (full)
 *
 * Return: the freed entry index
 */
static uint16_t evict(struct dns_pool *p)
{
	uint16_t i = p->tail;
	struct dns_entry *e = &p->e[i];

	lru_unlink(p, i);
	chain_unlink(p, &p->by_name[name_hash(e->name, e->len)], i, 0);
	chain_unlink(p, &p->by_ip[ip_hash(e->ip)], i, 1);
	p->evicted++;
	return i;
}

/**
 * next_address() - the next free address at or after the cursor
 * @p:		pool
 * @ip:		address out
 *
 * Return: 0, or -ENOSPC when every usable address is in use
 */
static int next_address(struct dns_pool *p, uint32_t *ip)
{
	uint32_t tries, off, a;

	for (tries = 0; tries < p->size; tries++) {
		off = p->cursor;
		p->cursor = (p->cursor + 1) & (p->size - 1);
		a = p->base + off;
		if ((a & 0xff) == 0 || (a & 0xff) == 0xff || find_ip(p, a) != DNS_NIL)
			continue;
		*ip = a;
		return 0;
	}
	return -ENOSPC;
}

/**
 * dns_pool_assign() - the address of a name, allocating one if new
 * @p:		pool
 * @name:	lower-cased dotted name without trailing dot
 * @len:	its length, 1..DNS_MAX_NAME
 * @ip:		address out
 *
 * Return: 0, -EINVAL for a bad length, -ENOSPC when no address is free
 */
int dns_pool_assign(struct dns_pool *p, const char *name, size_t len,
		    uint32_t *ip)
{
	uint32_t a, hn, ha;
	uint16_t i;

	if (len == 0 || len > DNS_MAX_NAME)
		return -EINVAL;
	hn = name_hash(name, len);
	i = find_name(p, name, len, hn);
	if (i != DNS_NIL) {
		lru_unlink(p, i);
		lru_push(p, i);
		*ip = p->e[i].ip;
		return 0;
	}
	i = p->count < DNS_POOL_ENTRIES ? p->count++ : evict(p);
	if (next_address(p, &a) < 0)	/* cannot fail: see static_assert */
		return -ENOSPC;
	p->e[i].ip = a;
	p->e[i].len = (uint8_t)len;
	memcpy(p->e[i].name, name, len);
	p->e[i].name[len] = '\0';
	ha = ip_hash(a);
	p->e[i].name_next = p->by_name[hn];
	p->by_name[hn] = i;
	p->e[i].ip_next = p->by_ip[ha];
	p->by_ip[ha] = i;
	lru_push(p, i);
	*ip = a;
	return 0;
}

/**
 * dns_pool_name() - which name was given this address
 * @p:		pool
 * @ip:		address
 *
 * Return: the lower-cased name, valid until the next query, or NULL
 */
const char *dns_pool_name(const struct dns_pool *p, uint32_t ip)
{
	uint16_t i = find_ip(p, ip);

	return i == DNS_NIL ? NULL : p->e[i].name;
}

/**
 * parse_name() - read a question name in uncompressed labels
 * @c:		cursor at the name (advanced past it)
 * @q:		name and name_len out
 *
 * Return: 1 parsed, -1 malformed
 */
static int parse_name(struct net_cursor *c, struct dns_query *q)
{
	unsigned int labels = 0;
	const uint8_t *l;
	uint8_t len, k;

	q->name_len = 0;
	for (;;) {
		if (!net_pull_u8(c, &len))
			return -1;
		if (len == 0)
			break;
		if (len & 0xc0 || ++labels > DNS_MAX_LABELS)
			return -1;	/* pointer/extended label, or too many */
		if (!(l = net_pull(c, len)))
			return -1;
		if (q->name_len + (q->name_len > 0) + len > DNS_MAX_NAME)
			return -1;
		if (q->name_len > 0)
			q->name[q->name_len++] = '.';
		for (k = 0; k < len; k++)
			if (!(q->name[q->name_len++] = ascii_name_char(l[k])))
				return -1;
	}
	q->name[q->name_len] = '\0';
	return 1;
}

/**
 * dns_parse_query() - parse and validate a query from the guest
 * @p:		UDP payload
 * @len:	its length
 * @q:		the query out (points into @p)
 *
 * Return: 1 parsed, -1 malformed
 */
int dns_parse_query(const uint8_t *p, size_t len, struct dns_query *q)
{
	uint16_t qd, an, ns, ar;
	struct net_cursor c;

	net_cursor_init(&c, p, len);
	if (!net_pull_be16(&c, &q->id) || !net_pull_be16(&c, &q->flags) ||
	    !net_pull_be16(&c, &qd) || !net_pull_be16(&c, &an) ||
	    !net_pull_be16(&c, &ns) || !net_pull_be16(&c, &ar))
		return -1;
	if (q->flags & DNS_FLAG_QR || DNS_OPCODE(q->flags) != 0 ||
	    qd != 1 || an != 0 || ns != 0)
		return -1;
	q->question = c.p;
	if (parse_name(&c, q) < 0 || !net_pull_be16(&c, &q->qtype) ||
	    !net_pull_be16(&c, &q->qclass))
		return -1;
	q->question_len = (size_t)(c.p - q->question);
	return 1;
}

/**
 * parse_octet() - one decimal octet of a dotted quad
 * @s:		position in the name (advanced)
 * @end:	end of the name
 * @v:		value out
 *
 * Return: true for 0..255 written without leading zeros
 */
static bool parse_octet(const char **s, const char *end, uint32_t *v)
{
	const char *p = *s;
	uint32_t x = 0;

	while (p < end && *p >= '0' && *p <= '9' && p - *s < 3)
		x = x * 10 + (uint32_t)(*p++ - '0');
	if (p == *s || x > 255 || (p - *s > 1 && **s == '0'))
		return false;
	*s = p;
	*v = x;
	return true;
}

/**
 * ipv4_literal() - parse a name that is a dotted-quad address
 * @name:	name
 * @len:	its length
 * @ip:		address out
 *
 * Return: true if @name is exactly "a.b.c.d"
 */
static bool ipv4_literal(const char *name, size_t len, uint32_t *ip)
{
	const char *s = name, *end = name + len;
	uint32_t v, a = 0;
	int i;

	for (i = 0; i < 4; i++) {
		if (i > 0 && (s == end || *s++ != '.'))
			return false;
		if (!parse_octet(&s, end, &v))
			return false;
		a = a << 8 | v;
	}
	if (s != end)
		return false;
	*ip = a;
	return true;
}

/**
 * is_localhost() - "localhost" or a name under it
 * @name:	name
 * @len:	its length
 *
 * Return: true for localhost names
 */
static bool is_localhost(const char *name, size_t len)
{
	static const char lh[] = "localhost";
	const size_t n = sizeof(lh) - 1;

	if (len < n || memcmp(name + len - n, lh, n) != 0)
		return false;
	return len == n || name[len - n - 1] == '.';
}

/**
 * answer_a() - the address for an A query
 * @pool:	name table
 * @q:		query
 * @ip:		address out
 *
 * Return: 1 with an address, 0 for no answer (root), -1 pool failure
 */
static int answer_a(struct dns_pool *pool, const struct dns_query *q,
		    uint32_t *ip)
{
	if (q->name_len == 0)
		return 0;
	if (ipv4_literal(q->name, q->name_len, ip))
		return 1;
	if (is_localhost(q->name, q->name_len)) {
		*ip = DNS_LOCALHOST;
		return 1;
	}
	return dns_pool_assign(pool, q->name, q->name_len, ip) == 0 ? 1 : -1;
}

/**
 * put_answer() - append one A record pointing back at the question's name
 * @o:		write position
 * @ip:		address
 *
 * Return: one past the record
 */
static uint8_t *put_answer(uint8_t *o, uint32_t ip)
{
	net_put_be16(o, 0xc000 | DNS_HLEN);	/* pointer to the question */
	net_put_be16(o + 2, DNS_TYPE_A);
	net_put_be16(o + 4, DNS_CLASS_IN);
	net_put_be32(o + 6, DNS_TTL);
	net_put_be16(o + 10, 4);
	net_put_be32(o + 12, ip);
	return o + 16;
}

/**
 * dns_build_reply() - answer a parsed query
 * @pool:	name table (may assign an address)
 * @q:		query
 * @out:	buffer
 * @cap:	its size, at least DNS_MAX_REPLY
 *
 * Return: the reply's length, or 0 when @cap is too small
 */
size_t dns_build_reply(struct dns_pool *pool, const struct dns_query *q,
		       uint8_t *out, size_t cap)
{
	uint16_t flags = DNS_FLAG_QR | DNS_FLAG_AA | DNS_FLAG_RA;
	uint8_t *o = out + DNS_HLEN;
	uint32_t ip = 0;
	int rc = 0;

	if (cap < DNS_MAX_REPLY || q->question_len > DNS_MAX_REPLY - DNS_HLEN - 16)
		return 0;
	if (q->qtype == DNS_TYPE_A && q->qclass == DNS_CLASS_IN)
		rc = answer_a(pool, q, &ip);
	flags |= q->flags & DNS_FLAG_RD;
	if (rc < 0)
		flags |= DNS_RCODE_SERVFAIL;
	net_put_be16(out, q->id);
	net_put_be16(out + 2, flags);
	net_put_be16(out + 4, 1);
	net_put_be16(out + 6, rc > 0);
	net_put_be32(out + 8, 0);		/* NSCOUNT, ARCOUNT */
	memcpy(o, q->question, q->question_len);
	o += q->question_len;
	if (rc > 0)
		o = put_answer(o, ip);
	return (size_t)(o - out);
}

/**
 * dns_input() - answer one query from the guest
 * @n:		stack
 * @src:	guest address
 * @sport:	guest port
 * @dst:	the gateway (what the guest queried)
 * @p:		UDP payload
 * @len:	its length
 *
 * Return: 1 answered, -1 malformed (dropped, counted), 0 reply not sent
 */
int dns_input(struct net *n, uint32_t src, uint16_t sport, uint32_t dst,
	      const uint8_t *p, size_t len)
{
	uint8_t out[DNS_MAX_REPLY];
	struct dns_query q;
	size_t rlen;

	if (dns_parse_query(p, len, &q) < 0) {
		n->stats.dns_malformed++;
		return -1;
	}
	rlen = dns_build_reply(n->dns, &q, out, sizeof(out));
	n->stats.dns_evicted = dns_pool_evicted(n->dns);
	if (rlen == 0 || udp_output(n, dst, UDP_PORT_DNS, src, sport, out, rlen) < 0)
		return 0;
	n->stats.dns_queries++;
	return 1;
}
