/* SPDX-License-Identifier: MIT */
/* checksum.h - the Internet checksum (RFC 1071) and the TCP/UDP pseudo-header */
#ifndef GONDOLIN_NET_CHECKSUM_H
#define GONDOLIN_NET_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

/*
 * csum() and csum_tcpudp() return the value to store, in host order, in a
 * header's checksum field (write it big-endian), computed with that field
 * zero. Computed over bytes that already carry a correct checksum they
 * return 0, which is how received headers are verified.
 */
uint16_t csum(const void *buf, size_t len);
uint16_t csum_tcpudp(uint32_t src, uint32_t dst, uint8_t proto,
		     const void *buf, size_t len);

#endif /* GONDOLIN_NET_CHECKSUM_H */
