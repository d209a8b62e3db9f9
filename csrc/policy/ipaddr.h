/* SPDX-License-Identifier: MIT */
/* ipaddr.h - IP literals in every notation, canonical text, blocked ranges */
#ifndef GONDOLIN_POLICY_IPADDR_H
#define GONDOLIN_POLICY_IPADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IPADDR_V4		4
#define IPADDR_V6		6
#define IPADDR_TEXT_MAX		64	/* longest literal ipaddr_parse() reads */
#define IPADDR_STRLEN		46	/* canonical text + NUL (INET6_ADDRSTRLEN) */

/**
 * struct ipaddr - one IPv4 or IPv6 address
 * @family:	IPADDR_V4 or IPADDR_V6
 * @b:		network byte order; an IPv4 address uses b[0..3], rest zero
 */
struct ipaddr {
	int family;
	uint8_t b[16];
};

int ipaddr_parse(const char *s, size_t n, struct ipaddr *a);
int ipaddr_parse_v4(const char *s, size_t n, struct ipaddr *a);
int ipaddr_parse_v6(const char *s, size_t n, struct ipaddr *a);
bool ipaddr_v4_attempt(const char *s, size_t n);
int ipaddr_format(const struct ipaddr *a, char *buf, size_t cap);
bool ipaddr_equal(const struct ipaddr *a, const struct ipaddr *b);
const char *ipaddr_blocked(const struct ipaddr *a);

#endif /* GONDOLIN_POLICY_IPADDR_H */
