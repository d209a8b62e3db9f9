/* SPDX-License-Identifier: MIT */
/* policy.c - the compiled egress policy: allowlist, exceptions, resolve map, secrets */

/*
 * Theory of Operation
 *
 * lua/gondolin/policy.lua validates the user's table and compiles it once
 * into one struct policy through the policy_add_*() calls below; after
 * that the policy is read-only and shared by every VM (and every flow)
 * that uses it, kept alive by a reference count (the Lua userdata holds
 * one, each network interface using it another).
 *
 * Decisions, in the order the HTTP mediation asks them:
 *
 * 1. policy_allow(): the requested host and port against the allowlist.
 *    Deny by default: an empty allowlist matches nothing. The index of the
 *    first matching pattern names the rule in audit events.
 *
 * 2. policy_resolve_find(): a host-side override of name resolution (like
 *    curl --resolve). Its addresses are range-checked like any other.
 *
 * 3. policy_addr_blocked(): every address a host resolved to is checked
 *    against the blocked special ranges (ipaddr.c). An address is exempt
 *    only when an allow_internal entry names exactly the requested
 *    host:port, or exactly that address and port ("127.0.0.1:8080" lets
 *    an allowed name that resolves to 127.0.0.1 reach port 8080, and
 *    nothing else there). The exception list never widens the allowlist.
 *
 * 4. Secrets: placeholders are built here from getrandom() bytes at
 *    compile time; substitution and masking are secrets.c's.
 *
 * 5. upstream_ca: PEM texts the upstream TLS client trusts besides the
 *    host's bundle. They are only stored here (at most
 *    POLICY_UPSTREAM_CA_MAX, checked by the caller, tls/client.c's
 *    tls_client_ca_load()); http/upstream.c builds its TLS configuration
 *    from them.
 *
 * Sizes are fixed when the policy is created (policy_new() takes the
 * counts, bounded by HOSTPAT_MAX_PATTERNS, POLICY_RESOLVE_MAX and
 * SECRET_MAX), so nothing grows afterwards.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "policy/policy.h"

/**
 * policy_new() - an empty policy sized for its entries
 * @nallow:	allowlist patterns
 * @ninternal:	allow_internal entries
 * @nresolve:	resolve map names
 * @nsecrets:	secrets
 * @err:	set to a constant message on failure
 *
 * Return: the policy with one reference, or NULL.
 */
struct policy *policy_new(size_t nallow, size_t ninternal, size_t nresolve,
			  size_t nsecrets, const char **err)
{
	struct policy *p;

	if (nallow > HOSTPAT_MAX_PATTERNS || ninternal > HOSTPAT_MAX_PATTERNS) {
		*err = "too many host patterns (at most 4096)";
		return NULL;
	}
	if (nresolve > POLICY_RESOLVE_MAX || nsecrets > SECRET_MAX) {
		*err = nsecrets > SECRET_MAX ? "too many secrets (at most 256)" :
		       "too many resolve entries (at most 1024)";
		return NULL;
	}
	*err = "out of memory";
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->refs = 1;
	if (hostpat_set_init(&p->allow, nallow, 0) < 0 ||
	    hostpat_set_init(&p->internal, ninternal, HOSTPAT_F_EXCEPTIONS) < 0)
		goto fail;
	if (nresolve && !(p->resolve = calloc(nresolve, sizeof(*p->resolve))))
		goto fail;
	if (nsecrets && !(p->secrets = calloc(nsecrets, sizeof(*p->secrets))))
		goto fail;
	p->resolve_cap = nresolve;
	p->secrets_cap = nsecrets;
	return p;
fail:
	policy_unref(p);
	return NULL;
}

/**
 * policy_ref() - take a reference
 * @p:		policy
 */
void policy_ref(struct policy *p)
{
	p->refs++;
}

/**
 * policy_unref() - drop a reference; the last one frees (secrets wiped)
 * @p:		policy, or NULL
 */
void policy_unref(struct policy *p)
{
	size_t i;

	if (!p || --p->refs > 0)
		return;
	hostpat_set_free(&p->allow);
	hostpat_set_free(&p->internal);
	for (i = 0; i < p->nsecrets; i++)
		secret_free(&p->secrets[i]);
	for (i = 0; i < p->nupstream_ca; i++)
		free((void *)p->upstream_ca[i]);
	free(p->secrets);
	free(p->resolve);
	free(p);
}

/**
 * policy_add_allow() - append an allowlist pattern
 * @p:		policy being built
 * @pat:	pattern text (hostpat.c grammar)
 * @n:		its length
 * @err:	constant message on failure
 *
 * Return: 0, or -EINVAL / -ENOSPC.
 */
int policy_add_allow(struct policy *p, const char *pat, size_t n,
		     const char **err)
{
	return hostpat_set_add(&p->allow, pat, n, err);
}

/**
 * policy_add_internal() - append an exact host:port range exception
 * @p:		policy being built
 * @pat:	"host:port" or "[v6]:port"
 * @n:		its length
 * @err:	constant message on failure
 *
 * Return: 0, or -EINVAL / -ENOSPC.
 */
int policy_add_internal(struct policy *p, const char *pat, size_t n,
			const char **err)
{
	return hostpat_set_add(&p->internal, pat, n, err);
}

/**
 * resolve_entry() - the map entry for a host, created when missing
 * @p:		policy being built
 * @h:		normalised name
 * @err:	constant message on failure
 *
 * Return: the entry, or NULL when the map is full.
 */
static struct policy_resolve *resolve_entry(struct policy *p,
					    const struct hostpat_host *h,
					    const char **err)
{
	struct policy_resolve *r = (struct policy_resolve *)policy_resolve_find(p, h);

	if (r)
		return r;
	if (p->nresolve == p->resolve_cap) {
		*err = "too many resolve entries";
		return NULL;
	}
	r = &p->resolve[p->nresolve++];
	r->host = *h;
	r->naddr = 0;
	return r;
}

/**
 * policy_add_resolve() - map a name to one more address
 * @p:		policy being built
 * @name:	host name (not an IP literal)
 * @n:		its length
 * @addr:	IP literal
 * @alen:	its length
 * @err:	constant message on failure
 *
 * Return: 0, or -EINVAL / -ENOSPC.
 */
int policy_add_resolve(struct policy *p, const char *name, size_t n,
		       const char *addr, size_t alen, const char **err)
{
	struct policy_resolve *r;
	struct hostpat_host h;
	struct ipaddr a;

	if (hostpat_host_parse(name, n, &h, err) < 0)
		return -EINVAL;
	if (h.kind != HOSTPAT_NAME) {
		*err = "resolve keys must be host names, not IP addresses";
		return -EINVAL;
	}
	if (ipaddr_parse(addr, alen, &a) < 0) {
		*err = "resolve values must be IP addresses";
		return -EINVAL;
	}
	r = resolve_entry(p, &h, err);
	if (!r)
		return -ENOSPC;
	if (r->naddr == POLICY_RESOLVE_ADDRS) {
		*err = "too many addresses for one name (at most 8)";
		return -ENOSPC;
	}
	r->addr[r->naddr++] = a;
	return 0;
}

/**
 * policy_add_secret() - add a secret with a fresh random placeholder
 * @p:		policy being built
 * @name:	secret name (also the guest's environment variable)
 * @n:		its length
 * @value:	real value
 * @vlen:	its length
 * @nhosts:	host patterns that will follow (policy_add_secret_host())
 * @err:	constant message on failure
 *
 * Return: 0, or -EINVAL / -ENOSPC / -ENOMEM / -EIO.
 */
int policy_add_secret(struct policy *p, const char *name, size_t n,
		      const void *value, size_t vlen, size_t nhosts,
		      const char **err)
{
	char ph[SECRET_PLACEHOLDER_MAX + 1];
	uint8_t rnd[SECRET_RANDOM_LEN];
	struct secret *s;
	int len, rc;

	if (p->nsecrets == p->secrets_cap) {
		*err = "too many secrets";
		return -ENOSPC;
	}
	if (policy_random(rnd, sizeof(rnd)) < 0) {
		*err = "no random bytes for a placeholder";
		return -EIO;
	}
	len = secret_placeholder(name, n, rnd, sizeof(rnd), ph, sizeof(ph));
	explicit_bzero(rnd, sizeof(rnd));
	if (len < 0) {
		*err = "secret name must be 1..64 of [A-Za-z0-9_]";
		return -EINVAL;
	}
	s = &p->secrets[p->nsecrets];
	rc = secret_init(s, name, n, value, vlen, ph, (size_t)len, err);
	if (rc < 0) {
		if (rc == -ENOMEM)
			*err = "out of memory";
		return rc;
	}
	hostpat_set_free(&s->hosts);
	if (hostpat_set_init(&s->hosts, nhosts, 0) < 0) {
		secret_free(s);
		*err = nhosts > HOSTPAT_MAX_PATTERNS ? "too many hosts" : "out of memory";
		return -ENOMEM;
	}
	p->nsecrets++;
	return 0;
}

/**
 * policy_secret_opt_in() - where else the last added secret is substituted
 * @p:		policy being built (a secret added)
 * @in_query:	in the query of the request target
 * @in_body:	in request bodies
 */
void policy_secret_opt_in(struct policy *p, bool in_query, bool in_body)
{
	struct secret *s = &p->secrets[p->nsecrets - 1];

	s->in_query = in_query;
	s->in_body = in_body;
	p->body_secrets = p->body_secrets || in_body;
}

/**
 * policy_add_secret_host() - a host the last added secret may go to
 * @p:		policy being built
 * @pat:	host pattern
 * @n:		its length
 * @err:	constant message on failure
 *
 * Return: 0, or -EINVAL / -ENOSPC.
 */
int policy_add_secret_host(struct policy *p, const char *pat, size_t n,
			   const char **err)
{
	if (p->nsecrets == 0) {
		*err = "no secret to add a host to";
		return -EINVAL;
	}
	return hostpat_set_add(&p->secrets[p->nsecrets - 1].hosts, pat, n, err);
}

/**
 * policy_add_upstream_ca() - keep a copy of one upstream_ca PEM text
 * @p:		policy being built
 * @pem:	PEM text (already checked)
 * @len:	its length
 * @err:	constant message on failure
 *
 * Return: 0, or -ENOSPC / -ENOMEM.
 */
int policy_add_upstream_ca(struct policy *p, const char *pem, size_t len,
			   const char **err)
{
	char *copy;

	if (p->nupstream_ca == POLICY_UPSTREAM_CA_MAX) {
		*err = "too many upstream_ca files (at most 16)";
		return -ENOSPC;
	}
	copy = malloc(len + 1);
	if (!copy) {
		*err = "out of memory";
		return -ENOMEM;
	}
	memcpy(copy, pem, len);
	copy[len] = '\0';
	p->upstream_ca[p->nupstream_ca] = copy;
	p->upstream_ca_len[p->nupstream_ca++] = len;
	return 0;
}

/**
 * policy_allow() - the allowlist rule a host and port match
 * @p:		policy
 * @h:		requested host, normalised
 * @port:	requested port
 *
 * Return: the rule's index, or -1 (denied: deny by default).
 */
int policy_allow(const struct policy *p, const struct hostpat_host *h,
		 unsigned port)
{
	return hostpat_set_match(&p->allow, h, port);
}

/**
 * policy_rule_text() - the normalised text of an allowlist rule
 * @p:		policy
 * @rule:	index from policy_allow()
 * @buf:	output
 * @cap:	its size (HOSTPAT_TEXT_MAX + 1 suffices)
 *
 * Return: length written, or -EINVAL / -ENOSPC.
 */
int policy_rule_text(const struct policy *p, int rule, char *buf, size_t cap)
{
	if (rule < 0 || (size_t)rule >= p->allow.n)
		return -EINVAL;
	return hostpat_format(&p->allow.pat[rule], buf, cap);
}

/**
 * policy_addr_blocked() - may a connection for @h:@port go to @addr
 * @p:		policy
 * @h:		requested host
 * @port:	requested port
 * @addr:	an address @h resolved to
 *
 * Return: NULL when allowed, else the blocked range's name (static).
 */
const char *policy_addr_blocked(const struct policy *p,
				const struct hostpat_host *h, unsigned port,
				const struct ipaddr *addr)
{
	return hostpat_blocked(&p->internal, h, port, addr);
}

/**
 * policy_resolve_find() - the resolve map entry for a host
 * @p:		policy
 * @h:		normalised host
 *
 * Return: the entry, or NULL (resolve with the system resolver).
 */
const struct policy_resolve *policy_resolve_find(const struct policy *p,
						 const struct hostpat_host *h)
{
	size_t i;

	for (i = 0; i < p->nresolve; i++)
		if (hostpat_host_equal(&p->resolve[i].host, h))
			return &p->resolve[i];
	return NULL;
}

/**
 * policy_random() - fill a buffer from the kernel's CSPRNG
 * @buf:	output
 * @n:		bytes wanted
 *
 * getrandom() first; /dev/urandom when the call is unavailable.
 *
 * Return: 0, or -EIO.
 */
int policy_random(void *buf, size_t n)
{
	uint8_t *p = buf;
	size_t got = 0;
	ssize_t r;
	int fd;

	while (got < n) {
		r = getrandom(p + got, n - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	if (got == n)
		return 0;
	fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -EIO;
	while (got < n) {
		r = read(fd, p + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	return got == n ? 0 : -EIO;
}
