/* SPDX-License-Identifier: MIT */
/* udp.c - UDP demultiplexing (DHCP, DNS) and output */

/*
 * UDP exists for two services, both answered by the host itself: DHCP
 * (port 67, any destination, the only traffic allowed from 0.0.0.0) and
 * DNS (port 53 on the gateway). There is no UDP forwarding: every other
 * datagram is dropped and counted in udp_dropped. A datagram's length
 * field must fit in the IP payload (trailing bytes beyond it are ignored)
 * and a non-zero checksum must verify; 0 means the sender sent none.
 */

#include <errno.h>
#include <string.h>

#include "net/checksum.h"
#include "net/dhcp.h"
#include "net/dns.h"
#include "net/ipv4.h"
#include "net/udp.h"

/**
 * udp_deliver() - hand a valid datagram's payload to its service
 * @n:		stack
 * @src, @dst:	addresses
 * @sport, @dport: ports
 * @p:		payload
 * @len:	its length
 *
 * Return: the service's verdict, or 0 (counted) when there is none
 */
static int udp_deliver(struct net *n, uint32_t src, uint32_t dst,
		       uint16_t sport, uint16_t dport,
		       const uint8_t *p, size_t len)
{
	int rc = 0;

	if (dport == UDP_PORT_DHCP_SERVER && sport == UDP_PORT_DHCP_CLIENT)
		rc = dhcp_input(n, src, dst, p, len);
	else if (dport == UDP_PORT_DNS && dst == n->cfg.gw_ip && src != 0)
		rc = dns_input(n, src, sport, dst, p, len);
	if (rc == 0)
		n->stats.udp_dropped++;
	return rc;
}

/**
 * udp_input() - validate a datagram from the guest and deliver it
 * @n:		stack
 * @src:	guest address (or 0.0.0.0 before DHCP)
 * @dst:	destination address
 * @p:		UDP header and payload
 * @len:	IP payload length
 *
 * Return: 1 handled, 0 not ours, -1 malformed
 */
int udp_input(struct net *n, uint32_t src, uint32_t dst,
	      const uint8_t *p, size_t len)
{
	uint16_t sport, dport, ulen, sum;
	struct net_cursor c;

	net_cursor_init(&c, p, len);
	if (!net_pull_be16(&c, &sport) || !net_pull_be16(&c, &dport) ||
	    !net_pull_be16(&c, &ulen) || !net_pull_be16(&c, &sum))
		return -1;
	if (ulen < UDP_HLEN || ulen > len)
		return -1;
	if (sum != 0 && csum_tcpudp(src, dst, IPV4_PROTO_UDP, p, ulen) != 0) {
		n->stats.bad_checksum++;
		return -1;
	}
	return udp_deliver(n, src, dst, sport, dport, c.p, ulen - UDP_HLEN);
}

/**
 * udp_output() - send a datagram to the guest
 * @n:		stack
 * @src:	source address
 * @sport:	source port
 * @dst:	destination address (guest, or broadcast)
 * @dport:	destination port
 * @payload:	data
 * @len:	its length
 *
 * Return: 0, or -EMSGSIZE
 */
int udp_output(struct net *n, uint32_t src, uint16_t sport,
	       uint32_t dst, uint16_t dport, const uint8_t *payload, size_t len)
{
	uint8_t *d = ipv4_tx_payload(n);
	uint16_t sum;

	if (len + UDP_HLEN > ipv4_max_payload(n))
		return -EMSGSIZE;
	net_put_be16(d, sport);
	net_put_be16(d + 2, dport);
	net_put_be16(d + 4, (uint16_t)(UDP_HLEN + len));
	net_put_be16(d + 6, 0);
	memcpy(d + UDP_HLEN, payload, len);
	sum = csum_tcpudp(src, dst, IPV4_PROTO_UDP, d, UDP_HLEN + len);
	net_put_be16(d + 6, sum ? sum : 0xffff);	/* 0 would mean "none" */
	return ipv4_output(n, src, dst, IPV4_PROTO_UDP, d, UDP_HLEN + len);
}
