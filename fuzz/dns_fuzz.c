/* SPDX-License-Identifier: MIT */
/* dns_fuzz.c - libFuzzer target: DNS query parser, reply builder, name pool */

/*
 * Input: u8 prefill, then records (u8 len, len bytes), each a DNS query.
 * prefill * 5 synthetic names are assigned first, so that the pool's LRU
 * eviction is reached (the table holds DNS_POOL_ENTRIES names).
 *
 * Every record is parsed; a parsed query is answered, and the reply must
 * echo the id, have QR set, one question identical to the query's, at
 * most one answer, and fit DNS_MAX_REPLY. An A/IN answer for a name must
 * equal the address dns_pool_assign() gives that name next, and the pool
 * must map that address back to the name (unless it was a literal or
 * localhost, which bypass the pool).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/dns.h"

/**
 * check_reply() - invariants of a reply to @q
 * @pool:	name table
 * @q:		parsed query
 * @r:		reply
 * @len:	its length
 */
static void check_reply(struct dns_pool *pool, const struct dns_query *q,
			const uint8_t *r, size_t len)
{
	uint16_t an;
	uint32_t ip, again;
	const char *back;

	if (len < DNS_HLEN + q->question_len || len > DNS_MAX_REPLY ||
	    net_get_be16(r) != q->id || !(r[2] & 0x80) ||
	    net_get_be16(r + 4) != 1 ||
	    memcmp(r + DNS_HLEN, q->question, q->question_len) != 0)
		abort();
	an = net_get_be16(r + 6);
	if (an > 1 || len != DNS_HLEN + q->question_len + 16u * an)
		abort();
	if (an == 0)
		return;
	if (q->qtype != DNS_TYPE_A || q->qclass != DNS_CLASS_IN || q->name_len == 0)
		abort();
	ip = net_get_be32(r + len - 4);
	back = dns_pool_name(pool, ip);
	if (back) {
		if (strcmp(back, q->name) != 0)
			abort();
		if (dns_pool_assign(pool, q->name, q->name_len, &again) != 0 || again != ip)
			abort();
	}
}

/**
 * prefill() - assign synthetic names
 * @pool:	name table
 * @count:	how many
 */
static void prefill(struct dns_pool *pool, unsigned int count)
{
	char name[32];
	uint32_t ip;
	unsigned int i;
	int len;

	for (i = 0; i < count; i++) {
		len = snprintf(name, sizeof(name), "p%u.fill", i);
		if (dns_pool_assign(pool, name, (size_t)len, &ip) != 0 ||
		    strcmp(dns_pool_name(pool, ip), name) != 0)
			abort();
	}
}

/**
 * LLVMFuzzerTestOneInput() - libFuzzer entry
 * @data:	input
 * @size:	its length
 *
 * Return: 0
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dns_pool *pool;
	uint8_t out[DNS_MAX_REPLY];
	struct dns_query q;
	size_t pos = 1, len, rlen;

	if (size < 1)
		return 0;
	pool = dns_pool_new(0xc6120000, 15);
	if (!pool)
		abort();
	prefill(pool, data[0] * 5u);
	while (pos < size) {
		len = data[pos++];
		if (len > size - pos)
			len = size - pos;
		if (dns_parse_query(data + pos, len, &q) == 1) {
			if (q.name_len > DNS_MAX_NAME || strlen(q.name) != q.name_len)
				abort();
			rlen = dns_build_reply(pool, &q, out, sizeof(out));
			if (rlen == 0 || dns_build_reply(pool, &q, out, DNS_MAX_REPLY - 1) != 0)
				abort();
			check_reply(pool, &q, out, rlen);
		}
		pos += len;
	}
	dns_pool_free(pool);
	return 0;
}
