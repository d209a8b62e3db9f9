/* SPDX-License-Identifier: MIT */
/* dhcp.h - the DHCP server that configures the guest's one address */
#ifndef GONDOLIN_NET_DHCP_H
#define GONDOLIN_NET_DHCP_H

#include <stddef.h>
#include <stdint.h>

#include "net/net.h"

#define DHCP_CHADDR_LEN	16
#define DHCP_MIN_LEN	300	/* BOOTP's minimum message, what we pad to */
#define DHCP_MAX_REPLY	576	/* fits the minimum IPv4 reassembly size */

enum dhcp_type {
	DHCP_DISCOVER = 1, DHCP_OFFER, DHCP_REQUEST, DHCP_DECLINE,
	DHCP_ACK, DHCP_NAK, DHCP_RELEASE, DHCP_INFORM,
};

/**
 * struct dhcp_msg - what we use of a client's message
 * @type:	option 53
 * @xid:	transaction id
 * @flags:	BOOTP flags (0x8000 broadcast)
 * @ciaddr:	client's current address, 0 if none
 * @giaddr:	relay agent, 0 if none
 * @chaddr:	client hardware address field
 * @requested:	option 50, 0 if absent
 * @server_id:	option 54, 0 if absent
 */
struct dhcp_msg {
	uint8_t type;
	uint32_t xid;
	uint16_t flags;
	uint32_t ciaddr, giaddr;
	uint8_t chaddr[DHCP_CHADDR_LEN];
	uint32_t requested, server_id;
};

/* dhcp_parse: 1 parsed, -1 malformed */
int dhcp_parse(const uint8_t *p, size_t len, struct dhcp_msg *m);
/* dhcp_build: the reply's length (<= cap), or 0 if @cap is too small */
size_t dhcp_build(const struct net_config *cfg, const struct dhcp_msg *req,
		  enum dhcp_type type, uint8_t *out, size_t cap);
/* -1 malformed, 0 not ours, 1 handled */
int dhcp_input(struct net *n, uint32_t src, uint32_t dst,
	       const uint8_t *p, size_t len);

#endif /* GONDOLIN_NET_DHCP_H */
