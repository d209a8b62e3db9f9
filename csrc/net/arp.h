/* SPDX-License-Identifier: MIT */
/* arp.h - answer the guest's ARP requests for the gateway */
#ifndef GONDOLIN_NET_ARP_H
#define GONDOLIN_NET_ARP_H

#include <stddef.h>
#include <stdint.h>

#include "net/net.h"

#define ARP_LEN		28	/* Ethernet/IPv4 ARP packet */

/* -1 malformed, 0 not ours (ignored), 1 answered */
int arp_input(struct net *n, const uint8_t src_mac[6], const uint8_t *p,
	      size_t len);

#endif /* GONDOLIN_NET_ARP_H */
