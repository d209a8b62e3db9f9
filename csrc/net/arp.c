/* SPDX-License-Identifier: MIT */
/* arp.c - answer the guest's ARP requests for the gateway */

/*
 * The guest only ever needs one neighbour, the gateway. We answer a
 * request (op 1) from the guest's MAC and IP whose target is the gateway
 * IP; replies, gratuitous announcements, probes, requests for any other
 * address and anything that is not Ethernet/IPv4 ARP are ignored. We never
 * send requests: the guest's MAC is configured, not learned.
 */

#include <string.h>

#include "net/arp.h"
#include "net/eth.h"

#define ARP_HRD_ETHER	1
#define ARP_OP_REQUEST	1
#define ARP_OP_REPLY	2

/**
 * struct arp_pkt - the fields of an Ethernet/IPv4 ARP packet
 * @op:		operation
 * @sha, @tha:	sender and target hardware addresses (point into the packet)
 * @spa, @tpa:	sender and target protocol addresses (host order)
 */
struct arp_pkt {
	uint16_t op;
	const uint8_t *sha, *tha;
	uint32_t spa, tpa;
};

/**
 * arp_parse() - read an Ethernet/IPv4 ARP packet; trailing padding is fine
 * @p:		packet
 * @len:	its length
 * @a:		fields out
 *
 * Return: 1 parsed, -1 malformed or not Ethernet/IPv4
 */
static int arp_parse(const uint8_t *p, size_t len, struct arp_pkt *a)
{
	uint16_t htype, ptype;
	uint8_t hlen, plen;
	struct net_cursor c;

	net_cursor_init(&c, p, len);
	if (!net_pull_be16(&c, &htype) || !net_pull_be16(&c, &ptype) ||
	    !net_pull_u8(&c, &hlen) || !net_pull_u8(&c, &plen) ||
	    !net_pull_be16(&c, &a->op))
		return -1;
	if (htype != ARP_HRD_ETHER || ptype != ETH_P_IPV4 ||
	    hlen != ETH_ALEN || plen != 4)
		return -1;
	a->sha = net_pull(&c, ETH_ALEN);
	if (!a->sha || !net_pull_be32(&c, &a->spa))
		return -1;
	a->tha = net_pull(&c, ETH_ALEN);
	if (!a->tha || !net_pull_be32(&c, &a->tpa))
		return -1;
	return 1;
}

/**
 * arp_reply() - tell the guest the gateway's MAC
 * @n:		stack
 */
static void arp_reply(struct net *n)
{
	uint8_t *f = net_tx_frame(n), *r = f + ETH_HLEN;

	net_put_be16(r, ARP_HRD_ETHER);
	net_put_be16(r + 2, ETH_P_IPV4);
	r[4] = ETH_ALEN;
	r[5] = 4;
	net_put_be16(r + 6, ARP_OP_REPLY);
	memcpy(r + 8, n->cfg.gw_mac, ETH_ALEN);
	net_put_be32(r + 14, n->cfg.gw_ip);
	memcpy(r + 18, n->cfg.guest_mac, ETH_ALEN);
	net_put_be32(r + 24, n->cfg.guest_ip);
	if (eth_send(n, ETH_P_ARP, n->cfg.guest_mac, f, ETH_HLEN + ARP_LEN) == 0)
		n->stats.arp_replies++;
}

/**
 * arp_input() - handle one ARP packet from the guest
 * @n:		stack
 * @src_mac:	Ethernet source address of the frame
 * @p:		ARP packet
 * @len:	its length (may include padding)
 *
 * Return: 1 answered, 0 ignored, -1 malformed
 */
int arp_input(struct net *n, const uint8_t src_mac[6], const uint8_t *p,
	      size_t len)
{
	struct arp_pkt a;

	if (arp_parse(p, len, &a) < 0)
		return -1;
	if (a.op != ARP_OP_REQUEST || a.tpa != n->cfg.gw_ip ||
	    a.spa != n->cfg.guest_ip ||
	    memcmp(a.sha, n->cfg.guest_mac, ETH_ALEN) != 0 ||
	    memcmp(src_mac, n->cfg.guest_mac, ETH_ALEN) != 0)
		return 0;
	arp_reply(n);
	return 1;
}
