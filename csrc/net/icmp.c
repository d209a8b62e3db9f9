/* SPDX-License-Identifier: MIT */
/* icmp.c - echo replies from the gateway */

/*
 * Only the gateway answers pings: an echo request (type 8, code 0) to
 * gw_ip with a correct checksum gets an echo reply with the same
 * identifier, sequence number and data. Pings to any other address, and
 * every other ICMP message, are dropped; the host never sends ICMP errors.
 * A reply is never larger than the request, which ipv4.c already bounded
 * by the frame size, and it is checked against the MTU before sending.
 */

#include <string.h>

#include "net/checksum.h"
#include "net/icmp.h"
#include "net/ipv4.h"

#define ICMP_HLEN		8
#define ICMP_ECHO_REPLY		0
#define ICMP_ECHO_REQUEST	8

/**
 * icmp_input() - answer an echo request to the gateway
 * @n:		stack
 * @src:	guest address
 * @dst:	address pinged
 * @p:		ICMP message
 * @len:	its length
 *
 * Return: 1 answered, 0 not ours, -1 malformed
 */
int icmp_input(struct net *n, uint32_t src, uint32_t dst,
	       const uint8_t *p, size_t len)
{
	uint8_t *reply = ipv4_tx_payload(n);
	struct net_cursor c;
	uint8_t type, code;

	net_cursor_init(&c, p, len);
	if (!net_pull_u8(&c, &type) || !net_pull_u8(&c, &code) ||
	    !net_pull(&c, ICMP_HLEN - 2))
		return -1;
	if (type != ICMP_ECHO_REQUEST || code != 0 || dst != n->cfg.gw_ip)
		return 0;
	if (csum(p, len) != 0) {
		n->stats.bad_checksum++;
		return -1;
	}
	if (len > ipv4_max_payload(n))
		return 0;
	memcpy(reply, p, len);
	reply[0] = ICMP_ECHO_REPLY;
	net_put_be16(reply + 2, 0);
	net_put_be16(reply + 2, csum(reply, len));
	if (ipv4_output(n, dst, src, IPV4_PROTO_ICMP, reply, len) < 0)
		return 0;
	n->stats.icmp_echo++;
	return 1;
}
