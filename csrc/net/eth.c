/* SPDX-License-Identifier: MIT */
/* eth.c - Ethernet II: demultiplex guest frames, frame our output */

/*
 * The guest's only link partner is the gateway, so we accept frames
 * addressed to the gateway MAC or to broadcast and nothing else (multicast
 * from the guest has no listener here). No VLAN tags, no jumbo frames.
 *
 * IPv6 is not supported: the guest gets no router advertisement, no
 * DHCPv6 and no v6 route, and synthetic DNS never answers AAAA. IPv6 frames
 * (neighbour discovery, MLD, ...) are counted in ipv6_dropped and dropped,
 * whatever their destination MAC, so the counter shows how chatty the
 * guest's v6 stack is.
 */

#include <errno.h>
#include <string.h>

#include "net/arp.h"
#include "net/eth.h"
#include "net/ipv4.h"

const uint8_t eth_broadcast[ETH_ALEN] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

/**
 * eth_input() - take one frame from the guest
 * @n:		stack
 * @frame:	Ethernet frame without FCS
 * @len:	its length
 *
 * Return: 1 handled, 0 not ours, -1 malformed
 */
int eth_input(struct net *n, const uint8_t *frame, size_t len)
{
	const uint8_t *dst, *src;
	struct net_cursor c;
	uint16_t type;

	net_cursor_init(&c, frame, len);
	dst = net_pull(&c, ETH_ALEN);
	src = net_pull(&c, ETH_ALEN);
	if (!dst || !src || !net_pull_be16(&c, &type))
		return -1;
	if (type == ETH_P_IPV6) {
		n->stats.ipv6_dropped++;
		return 0;
	}
	if (memcmp(dst, n->cfg.gw_mac, ETH_ALEN) != 0 &&
	    memcmp(dst, eth_broadcast, ETH_ALEN) != 0)
		return 0;
	switch (type) {
	case ETH_P_IPV4:
		return ipv4_input(n, c.p, c.left);
	case ETH_P_ARP:
		return arp_input(n, src, c.p, c.left);
	default:
		return 0;
	}
}

/**
 * eth_send() - write the Ethernet header into @frame's headroom and output it
 * @n:		stack
 * @ethertype:	payload type
 * @dst:	destination MAC
 * @frame:	ETH_HLEN bytes of headroom followed by the payload
 * @len:	total length including the headroom
 *
 * Return: 0, or -EMSGSIZE when @len is out of range
 */
int eth_send(struct net *n, uint16_t ethertype, const uint8_t dst[ETH_ALEN],
	     uint8_t *frame, size_t len)
{
	if (len < ETH_HLEN || len > NET_MAX_FRAME)
		return -EMSGSIZE;
	memcpy(frame, dst, ETH_ALEN);
	memcpy(frame + ETH_ALEN, n->cfg.gw_mac, ETH_ALEN);
	net_put_be16(frame + 2 * ETH_ALEN, ethertype);
	n->stats.frames_out++;
	n->ops.output(n->ud, frame, len);
	return 0;
}
