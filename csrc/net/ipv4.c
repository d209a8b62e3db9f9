/* SPDX-License-Identifier: MIT */
/* ipv4.c - IPv4 input validation and dispatch, output framing */

/*
 * Input: a datagram is accepted only when every length agrees (version 4,
 * 20 <= IHL*4 <= total length <= bytes received; Ethernet padding after
 * the total length is ignored) and its header checksum is right. Options
 * are skipped. Fragments (MF set or a non-zero offset) are dropped and
 * counted: we never reassemble, and the guest's stack sends DF datagrams
 * no larger than the MTU DHCP gave it. TTL is not looked at.
 *
 * The source must be the guest's address; 0.0.0.0 is let through for UDP
 * only, so that a DHCP client without an address can reach udp.c, which
 * admits it for port 67 alone. Destinations are judged by the protocol
 * handlers: ICMP and DNS answer the gateway only, TCP takes any unicast
 * address (the flow classifier decides what it means).
 *
 * Output: one header shape, IHL 5, DF, TTL 64, an ID counter per stack,
 * to the guest's MAC, or to broadcast for 255.255.255.255 (DHCP).
 */

#include <errno.h>
#include <string.h>

#include "net/checksum.h"
#include "net/eth.h"
#include "net/icmp.h"
#include "net/ipv4.h"
#include "net/tcp.h"
#include "net/udp.h"

#define IPV4_FLAG_DF	0x4000
#define IPV4_FLAG_MF	0x2000
#define IPV4_FRAG_MASK	0x1fff

/**
 * struct ipv4_hdr - the fields of a received header we use
 * @proto:	payload protocol
 * @frag:	flags and fragment offset
 * @src, @dst:	addresses (host order)
 * @payload:	first payload byte
 * @len:	payload length (total length minus header)
 */
struct ipv4_hdr {
	uint8_t proto;
	uint16_t frag;
	uint32_t src, dst;
	const uint8_t *payload;
	size_t len;
};

/**
 * ipv4_parse() - validate a datagram's header and lengths
 * @p:		datagram (possibly followed by Ethernet padding)
 * @len:	bytes available
 * @h:		fields out
 *
 * Return: 1 valid, -1 malformed (lengths, version, checksum: see stats)
 */
static int ipv4_parse(const uint8_t *p, size_t len, struct ipv4_hdr *h)
{
	uint8_t vihl, tos, ttl;
	uint16_t total, id, sum;
	struct net_cursor c;
	size_t hlen;

	net_cursor_init(&c, p, len);
	if (!net_pull_u8(&c, &vihl) || !net_pull_u8(&c, &tos) ||
	    !net_pull_be16(&c, &total) || !net_pull_be16(&c, &id) ||
	    !net_pull_be16(&c, &h->frag) || !net_pull_u8(&c, &ttl) ||
	    !net_pull_u8(&c, &h->proto) || !net_pull_be16(&c, &sum) ||
	    !net_pull_be32(&c, &h->src) || !net_pull_be32(&c, &h->dst))
		return -1;
	hlen = (size_t)(vihl & 0x0f) * 4;
	if (vihl >> 4 != 4 || hlen < IPV4_HLEN || total < hlen || total > len)
		return -1;
	if (!net_pull(&c, hlen - IPV4_HLEN))	/* options: skipped */
		return -1;
	h->payload = c.p;
	h->len = total - hlen;
	return 1;
}

/**
 * ipv4_dispatch() - hand a valid datagram to its protocol
 * @n:		stack
 * @h:		parsed header
 *
 * Return: the protocol handler's verdict (1 handled, 0 not ours, -1 bad)
 */
static int ipv4_dispatch(struct net *n, const struct ipv4_hdr *h)
{
	if (h->src != n->cfg.guest_ip && !(h->src == 0 && h->proto == IPV4_PROTO_UDP))
		return 0;
	switch (h->proto) {
	case IPV4_PROTO_ICMP:
		return icmp_input(n, h->src, h->dst, h->payload, h->len);
	case IPV4_PROTO_UDP:
		return udp_input(n, h->src, h->dst, h->payload, h->len);
	case IPV4_PROTO_TCP:
		if (h->dst == 0 || h->dst == IPV4_BROADCAST ||
		    (h->dst >> 28) == 0xe ||	/* multicast 224.0.0.0/4 */
		    h->dst == (n->cfg.gw_ip | ~n->cfg.netmask))
			return 0;
		return tcp_input(n, h->src, h->dst, h->payload, h->len);
	default:
		return 0;
	}
}

/**
 * ipv4_input() - validate and dispatch one IPv4 datagram from the guest
 * @n:		stack
 * @p:		Ethernet payload
 * @len:	its length (may include padding)
 *
 * Return: 1 handled, 0 not ours, -1 malformed
 */
int ipv4_input(struct net *n, const uint8_t *p, size_t len)
{
	struct ipv4_hdr h;

	if (ipv4_parse(p, len, &h) < 0) {
		n->stats.ip_malformed++;
		return -1;
	}
	if (csum(p, (size_t)(h.payload - p)) != 0) {
		n->stats.bad_checksum++;
		return -1;
	}
	if (h.frag & (IPV4_FLAG_MF | IPV4_FRAG_MASK)) {
		n->stats.ip_fragments++;
		return 0;
	}
	return ipv4_dispatch(n, &h);
}

/**
 * ipv4_max_payload() - the largest payload one datagram to the guest carries
 * @n:		stack
 *
 * Return: MTU minus the header
 */
size_t ipv4_max_payload(const struct net *n)
{
	return (size_t)n->cfg.mtu - IPV4_HLEN;
}

/**
 * ipv4_tx_payload() - start a datagram: where its transport builds the payload
 * @n:		stack
 *
 * Return: the spot right after the IPv4 header of a new output frame.
 */
uint8_t *ipv4_tx_payload(struct net *n)
{
	return net_tx_frame(n) + ETH_HLEN + IPV4_HLEN;
}

/**
 * ipv4_output() - send a datagram to the guest
 * @n:		stack
 * @src:	source address (what the guest talked to)
 * @dst:	destination: the guest's address, or 255.255.255.255
 * @proto:	payload protocol
 * @payload:	transport header and data, checksummed by the caller,
 *		built at ipv4_tx_payload()
 * @len:	its length, at most ipv4_max_payload()
 *
 * Return: 0, or -EMSGSIZE
 */
int ipv4_output(struct net *n, uint32_t src, uint32_t dst, uint8_t proto,
		uint8_t *payload, size_t len)
{
	uint8_t *ip = payload - IPV4_HLEN, *frame = ip - ETH_HLEN;
	const uint8_t *mac = n->cfg.guest_mac;

	if (len > ipv4_max_payload(n))		/* the MTU fits NET_MAX_FRAME */
		return -EMSGSIZE;
	ip[0] = 0x45;
	ip[1] = 0;
	net_put_be16(ip + 2, (uint16_t)(IPV4_HLEN + len));
	net_put_be16(ip + 4, n->ip_id++);
	net_put_be16(ip + 6, IPV4_FLAG_DF);
	ip[8] = IPV4_TTL;
	ip[9] = proto;
	net_put_be16(ip + 10, 0);
	net_put_be32(ip + 12, src);
	net_put_be32(ip + 16, dst);
	net_put_be16(ip + 10, csum(ip, IPV4_HLEN));
	if (dst == IPV4_BROADCAST)
		mac = eth_broadcast;
	return eth_send(n, ETH_P_IPV4, mac, frame, ETH_HLEN + IPV4_HLEN + len);
}
