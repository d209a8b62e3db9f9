/* SPDX-License-Identifier: MIT */
/* ipv4.h - IPv4 input validation and dispatch, output framing */
#ifndef GONDOLIN_NET_IPV4_H
#define GONDOLIN_NET_IPV4_H

#include <stddef.h>
#include <stdint.h>

#include "net/net.h"

#define IPV4_HLEN		20	/* without options; what we send */
#define IPV4_PROTO_ICMP		1
#define IPV4_PROTO_TCP		6
#define IPV4_PROTO_UDP		17
#define IPV4_BROADCAST		0xffffffffu
#define IPV4_TTL		64

/* -1 malformed, 0 not ours (dropped), 1 handled */
int ipv4_input(struct net *n, const uint8_t *p, size_t len);
/* the largest payload ipv4_output() accepts with this configuration */
size_t ipv4_max_payload(const struct net *n);
uint8_t *ipv4_tx_payload(struct net *n);

#endif /* GONDOLIN_NET_IPV4_H */
