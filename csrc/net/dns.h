/* SPDX-License-Identifier: MIT */
/* dns.h - the synthetic DNS resolver on the gateway */
#ifndef GONDOLIN_NET_DNS_H
#define GONDOLIN_NET_DNS_H

#include <stddef.h>
#include <stdint.h>

#include "net/net.h"

#define DNS_HLEN		12
#define DNS_MAX_NAME		253	/* dotted form, without the trailing dot */
#define DNS_MAX_LABELS		128
#define DNS_TTL			60	/* seconds, on every answer */
#define DNS_MAX_REPLY		512	/* header + question + one A record fit */
#define DNS_POOL_ENTRIES	1024	/* names remembered at once (LRU) */
#define DNS_POOL_MIN_BITS	8	/* pool prefix length bounds: the pool */
#define DNS_POOL_MAX_BITS	20	/* must outnumber DNS_POOL_ENTRIES */

#define DNS_TYPE_A		1
#define DNS_CLASS_IN		1

/**
 * struct dns_query - a parsed query
 * @id:		transaction id
 * @flags:	header flags (QR=0, opcode 0)
 * @qtype, @qclass: of the one question
 * @question:	the question's bytes in the packet (name, type, class)
 * @question_len: their length
 * @name:	the name, lower-cased, dotted, no trailing dot ("" for the root)
 * @name_len:	strlen(@name)
 */
struct dns_query {
	uint16_t id, flags, qtype, qclass;
	const uint8_t *question;
	size_t question_len;
	char name[DNS_MAX_NAME + 1];
	size_t name_len;
};

/* 1 parsed, -1 malformed */
int dns_parse_query(const uint8_t *p, size_t len, struct dns_query *q);
/* the reply's length (<= cap), or 0 when @cap < DNS_MAX_REPLY */
size_t dns_build_reply(struct dns_pool *pool, const struct dns_query *q,
		       uint8_t *out, size_t cap);

struct dns_pool *dns_pool_new(uint32_t base, uint8_t bits);
void dns_pool_free(struct dns_pool *p);
/* 0 and *ip set, or -EINVAL (bad name) / -ENOSPC (no address) */
int dns_pool_assign(struct dns_pool *p, const char *name, size_t len,
		    uint32_t *ip);
uint64_t dns_pool_evicted(const struct dns_pool *p);

/* -1 malformed, 0 no reply sent, 1 answered */
int dns_input(struct net *n, uint32_t src, uint16_t sport, uint32_t dst,
	      const uint8_t *p, size_t len);

#endif /* GONDOLIN_NET_DNS_H */
