/* SPDX-License-Identifier: MIT */
/* conf.h - what every TLS endpoint of ours agrees on */
#ifndef GONDOLIN_TLS_CONF_H
#define GONDOLIN_TLS_CONF_H

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ssl.h>

int tls_conf_base(mbedtls_ssl_config *c, int endpoint, mbedtls_ctr_drbg_context *drbg,
		  const char **alpn);

#endif /* GONDOLIN_TLS_CONF_H */
