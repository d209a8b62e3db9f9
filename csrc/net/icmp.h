/* SPDX-License-Identifier: MIT */
/* icmp.h - echo replies from the gateway */
#ifndef GONDOLIN_NET_ICMP_H
#define GONDOLIN_NET_ICMP_H

#include <stddef.h>
#include <stdint.h>

#include "net/net.h"

/* -1 malformed (bad checksum, short), 0 not ours (dropped), 1 answered */
int icmp_input(struct net *n, uint32_t src, uint32_t dst,
	       const uint8_t *p, size_t len);

#endif /* GONDOLIN_NET_ICMP_H */
