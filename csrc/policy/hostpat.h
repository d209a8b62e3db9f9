/* SPDX-License-Identifier: MIT */
/* hostpat.h - host names, host patterns and compiled allowlists */
#ifndef GONDOLIN_POLICY_HOSTPAT_H
#define GONDOLIN_POLICY_HOSTPAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/ipaddr.h"

#define HOSTPAT_NAME_MAX	253	/* a DNS name, no trailing dot */
#define HOSTPAT_LABEL_MAX	63
#define HOSTPAT_TEXT_MAX	(2 + HOSTPAT_NAME_MAX + 2 + 6)	/* "*." or [] and ":65535" */
#define HOSTPAT_MAX_PATTERNS	4096	/* per set */
#define HOSTPAT_ANY_PORT	0

/* what a normalised host is */
enum hostpat_host_kind {
	HOSTPAT_NAME = 0,
	HOSTPAT_IPV4 = IPADDR_V4,
	HOSTPAT_IPV6 = IPADDR_V6,
};

/* flags for hostpat_parse() and hostpat_set_init() */
#define HOSTPAT_F_EXACT		0x1	/* no "*." patterns */
#define HOSTPAT_F_PORT		0x2	/* every pattern names a port */
#define HOSTPAT_F_EXCEPTIONS	(HOSTPAT_F_EXACT | HOSTPAT_F_PORT)

/**
 * struct hostpat_host - a host as the guest named it, normalised
 * @name:	lower case, no trailing dot; an IP literal in canonical text
 *		(IPv6 without brackets); NUL-terminated
 * @len:	length of @name
 * @kind:	enum hostpat_host_kind
 * @ip:		the address when @kind is not HOSTPAT_NAME
 */
struct hostpat_host {
	char name[HOSTPAT_NAME_MAX + 1];
	size_t len;
	int kind;
	struct ipaddr ip;
};

/**
 * struct hostpat - one compiled pattern
 * @host:	exact host, or for a wildcard the suffix after "*."
 * @wildcard:	"*.suffix": matches names strictly below @host.name
 * @port:	1..65535, or HOSTPAT_ANY_PORT
 */
struct hostpat {
	struct hostpat_host host;
	bool wildcard;
	uint16_t port;
};

/**
 * struct hostpat_set - an ordered list of patterns; first match wins
 * @pat:	@cap entries, allocated by hostpat_set_init()
 * @n:		entries in use
 * @cap:	entries allocated (<= HOSTPAT_MAX_PATTERNS)
 * @flags:	HOSTPAT_F_* every pattern was checked against
 */
struct hostpat_set {
	struct hostpat *pat;
	size_t n, cap;
	unsigned flags;
};

bool hostpat_host_equal(const struct hostpat_host *a, const struct hostpat_host *b);
int hostpat_host_parse(const char *s, size_t n, struct hostpat_host *h,
		       const char **err);
int hostpat_parse(const char *s, size_t n, unsigned flags, struct hostpat *p,
		  const char **err);
bool hostpat_match(const struct hostpat *p, const struct hostpat_host *h,
		   unsigned port);
int hostpat_format(const struct hostpat *p, char *buf, size_t cap);

int hostpat_set_init(struct hostpat_set *s, size_t cap, unsigned flags);
int hostpat_set_add(struct hostpat_set *s, const char *pat, size_t n,
		    const char **err);
int hostpat_set_match(const struct hostpat_set *s, const struct hostpat_host *h,
		      unsigned port);
int hostpat_set_match_str(const struct hostpat_set *s, const char *host,
			  size_t n, unsigned port);
void hostpat_set_free(struct hostpat_set *s);

const char *hostpat_blocked(const struct hostpat_set *exceptions,
			    const struct hostpat_host *h, unsigned port,
			    const struct ipaddr *addr);

#endif /* GONDOLIN_POLICY_HOSTPAT_H */
