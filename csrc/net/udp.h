/* SPDX-License-Identifier: MIT */
/* udp.h - UDP demultiplexing (DHCP, DNS) and output */
#ifndef GONDOLIN_NET_UDP_H
#define GONDOLIN_NET_UDP_H

#include <stddef.h>
#include <stdint.h>

#include "net/net.h"

#define UDP_HLEN		8
#define UDP_PORT_DNS		53
#define UDP_PORT_DHCP_SERVER	67
#define UDP_PORT_DHCP_CLIENT	68

/* -1 malformed, 0 not ours (dropped, counted in udp_dropped), 1 handled */
int udp_input(struct net *n, uint32_t src, uint32_t dst,
	      const uint8_t *p, size_t len);
int udp_output(struct net *n, uint32_t src, uint16_t sport,
	       uint32_t dst, uint16_t dport, const uint8_t *payload, size_t len);

#endif /* GONDOLIN_NET_UDP_H */
