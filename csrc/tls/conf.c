/* SPDX-License-Identifier: MIT */
/* conf.c - what every TLS endpoint of ours agrees on */

/*
 * The guest-facing server and the upstream client share one protocol
 * policy, set here so they cannot drift apart: TLS 1.2 only (mbedTLS 2.28
 * has no 1.3, and nothing older is acceptable), no renegotiation, our own
 * random generator, ALPN http/1.1.
 */

#include "tls/conf.h"

/**
 * tls_conf_base() - defaults plus the shared policy
 * @c:		configuration (mbedtls_ssl_config_init() done)
 * @endpoint:	MBEDTLS_SSL_IS_SERVER or MBEDTLS_SSL_IS_CLIENT
 * @drbg:	seeded generator (outlives @c)
 * @alpn:	NULL-terminated protocols (outlive @c)
 *
 * Return: 0, or an mbedTLS error.
 */
int tls_conf_base(mbedtls_ssl_config *c, int endpoint, mbedtls_ctr_drbg_context *drbg,
		  const char **alpn)
{
	int ret = mbedtls_ssl_config_defaults(c, endpoint, MBEDTLS_SSL_TRANSPORT_STREAM,
					      MBEDTLS_SSL_PRESET_DEFAULT);

	if (ret)
		return ret;
	mbedtls_ssl_conf_rng(c, mbedtls_ctr_drbg_random, drbg);
	mbedtls_ssl_conf_min_version(c, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_max_version(c, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_renegotiation(c, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
	return mbedtls_ssl_conf_alpn_protocols(c, alpn);
}
