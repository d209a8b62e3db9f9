/* SPDX-License-Identifier: MIT */
/* checksum.c - the Internet checksum (RFC 1071) and the TCP/UDP pseudo-header */

/*
 * The sum is byte-order independent (RFC 1071 section 2B): we add 32-bit
 * words in the machine's order into a 64-bit accumulator, fold to 16 bits
 * and swap once at the end on little-endian machines. A 64-bit accumulator
 * cannot overflow for any buffer that fits in memory (2^32 additions of
 * values below 2^32).
 */

#include <string.h>

#include "net/checksum.h"

/**
 * csum_fold() - fold a wide ones'-complement sum to 16 bits
 * @sum:	sum of 16-bit quantities
 *
 * Return: the folded sum (not complemented)
 */
static uint16_t csum_fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/**
 * csum_native() - sum @len bytes as native-order 16-bit words
 * @p:		bytes
 * @len:	count
 *
 * Return: the sum folded to 16 bits, in native order
 */
static uint16_t csum_native(const uint8_t *p, size_t len)
{
	uint64_t sum = 0;
	uint32_t w32;
	uint16_t w16;

	for (; len >= 4; p += 4, len -= 4) {
		memcpy(&w32, p, 4);
		sum += w32;
	}
	if (len >= 2) {
		memcpy(&w16, p, 2);
		sum += w16;
		p += 2;
		len -= 2;
	}
	if (len) {		/* odd tail: the high byte of a big-endian word */
		uint8_t last[2] = { p[0], 0 };

		memcpy(&w16, last, 2);
		sum += w16;
	}
	return csum_fold(sum);
}

/**
 * csum_partial() - ones'-complement sum of a buffer, big-endian valued
 * @buf:	bytes
 * @len:	count
 *
 * Return: the sum (fits 16 bits; callers may add several before folding)
 */
static uint32_t csum_partial(const void *buf, size_t len)
{
	uint16_t s = csum_native(buf, len);

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	s = (uint16_t)(s >> 8 | s << 8);
#endif
	return s;
}

/**
 * csum() - the Internet checksum of a buffer (IPv4 header, ICMP)
 * @buf:	bytes
 * @len:	count
 *
 * Return: the checksum field value, or 0 over a correctly checksummed buffer
 */
uint16_t csum(const void *buf, size_t len)
{
	return (uint16_t)~csum_fold(csum_partial(buf, len));
}

/**
 * csum_tcpudp() - TCP/UDP checksum including the IPv4 pseudo-header
 * @src:	source address (host order)
 * @dst:	destination address (host order)
 * @proto:	IP protocol number
 * @buf:	TCP or UDP header and payload
 * @len:	their length (at most 65535)
 *
 * Return: the checksum field value, or 0 over a correctly checksummed segment
 */
uint16_t csum_tcpudp(uint32_t src, uint32_t dst, uint8_t proto,
		     const void *buf, size_t len)
{
	uint64_t sum = csum_partial(buf, len);

	sum += (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff);
	sum += proto;
	sum += (uint64_t)len;	/* the pseudo-header length is 16 bits */
	return (uint16_t)~csum_fold(sum);
}
