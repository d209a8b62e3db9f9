/* SPDX-License-Identifier: MIT */
/* eth.h - Ethernet II framing between the guest and the stack */
#ifndef GONDOLIN_NET_ETH_H
#define GONDOLIN_NET_ETH_H

#include <stddef.h>
#include <stdint.h>

#include "net/net.h"

#define ETH_HLEN	14
#define ETH_ALEN	6
#define ETH_P_IPV4	0x0800
#define ETH_P_ARP	0x0806
#define ETH_P_IPV6	0x86dd

extern const uint8_t eth_broadcast[ETH_ALEN];

/* -1 malformed, 0 not ours (dropped), 1 handled */
int eth_input(struct net *n, const uint8_t *frame, size_t len);
/*
 * eth_send() - fill the header of @frame (from net_tx_frame(), payload
 * after ETH_HLEN bytes of headroom) and hand it to ops.output.
 */
int eth_send(struct net *n, uint16_t ethertype, const uint8_t dst[ETH_ALEN],
	     uint8_t *frame, size_t len);

#endif /* GONDOLIN_NET_ETH_H */
