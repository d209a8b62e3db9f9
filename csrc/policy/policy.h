/* SPDX-License-Identifier: MIT */
/* policy.h - the compiled egress policy: allowlist, exceptions, resolve map, secrets */
#ifndef GONDOLIN_POLICY_POLICY_H
#define GONDOLIN_POLICY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/hostpat.h"
#include "policy/ipaddr.h"
#include "policy/secrets.h"

#define POLICY_RESOLVE_MAX	1024	/* names in the resolve map */
#define POLICY_RESOLVE_ADDRS	8	/* addresses per name */
#define POLICY_UPSTREAM_CA_MAX	16	/* upstream_ca files */

/**
 * struct policy_resolve - one entry of the host-side name override map
 * @host:	the name, normalised (hostpat_host_parse())
 * @addr:	its addresses, tried in order
 * @naddr:	entries of @addr in use
 */
struct policy_resolve {
	struct hostpat_host host;
	struct ipaddr addr[POLICY_RESOLVE_ADDRS];
	size_t naddr;
};

/**
 * struct policy - everything a VM's HTTP mediation decides with
 * @allow:	allowlist (HOSTPAT flags 0); empty denies everything
 * @internal:	exceptions to the blocked ranges (HOSTPAT_F_EXCEPTIONS)
 * @resolve:	host-side resolution overrides, @nresolve of @resolve_cap
 * @nresolve:	entries in use
 * @resolve_cap: entries allocated
 * @secrets:	secrets, @nsecrets of @secrets_cap
 * @nsecrets:	entries initialised
 * @secrets_cap: entries allocated
 * @body_secrets: some secret opted in to request bodies
 * @upstream_ca: extra trust anchors for upstream TLS (PEM texts, checked
 *		when added, NUL-terminated copies), @nupstream_ca of them;
 *		upstream.c makes its tls_client_conf from them
 * @upstream_ca_len: their lengths (without the NUL)
 * @nupstream_ca: entries in use
 * @refs:	references (the Lua userdata, each netif using it)
 *
 * Built once by the policy_add_*() calls, then read-only: any number of
 * VMs may share one policy.
 */
struct policy {
	struct hostpat_set allow;
	struct hostpat_set internal;
	struct policy_resolve *resolve;
	size_t nresolve, resolve_cap;
	struct secret *secrets;
	size_t nsecrets, secrets_cap;
	bool body_secrets;
	const char *upstream_ca[POLICY_UPSTREAM_CA_MAX];
	size_t upstream_ca_len[POLICY_UPSTREAM_CA_MAX];
	size_t nupstream_ca;
	unsigned refs;
};

struct policy *policy_new(size_t nallow, size_t ninternal, size_t nresolve,
			  size_t nsecrets, const char **err);
void policy_ref(struct policy *p);
void policy_unref(struct policy *p);

int policy_add_allow(struct policy *p, const char *pat, size_t n,
		     const char **err);
int policy_add_internal(struct policy *p, const char *pat, size_t n,
			const char **err);
int policy_add_resolve(struct policy *p, const char *name, size_t n,
		       const char *addr, size_t alen, const char **err);
int policy_add_secret(struct policy *p, const char *name, size_t n,
		      const void *value, size_t vlen, size_t nhosts,
		      const char **err);
void policy_secret_opt_in(struct policy *p, bool in_query, bool in_body);
int policy_add_secret_host(struct policy *p, const char *pat, size_t n,
			   const char **err);
int policy_add_upstream_ca(struct policy *p, const char *pem, size_t len,
			   const char **err);

int policy_allow(const struct policy *p, const struct hostpat_host *h,
		 unsigned port);
int policy_rule_text(const struct policy *p, int rule, char *buf, size_t cap);
const char *policy_addr_blocked(const struct policy *p,
				const struct hostpat_host *h, unsigned port,
				const struct ipaddr *addr);
const struct policy_resolve *policy_resolve_find(const struct policy *p,
						 const struct hostpat_host *h);
int policy_random(void *buf, size_t n);

#endif /* GONDOLIN_POLICY_POLICY_H */
