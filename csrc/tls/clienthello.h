/* SPDX-License-Identifier: MIT */
/* clienthello.h - find the SNI in a TLS ClientHello, without trusting it */
#ifndef GONDOLIN_TLS_CLIENTHELLO_H
#define GONDOLIN_TLS_CLIENTHELLO_H

#include <stddef.h>
#include <stdint.h>

#define CLIENTHELLO_MAX_NAME	253	/* DNS name limit */

/**
 * struct clienthello - what the classifier needs from a ClientHello
 * @sni:	server name (lower-cased, NUL-terminated), "" if none was sent
 * @record_len:	bytes of the first TLS record, header included
 */
struct clienthello {
	char sni[CLIENTHELLO_MAX_NAME + 1];
	size_t record_len;
};

int clienthello_parse(const uint8_t *p, size_t len, struct clienthello *ch);

#endif /* GONDOLIN_TLS_CLIENTHELLO_H */
