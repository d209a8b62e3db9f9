/* SPDX-License-Identifier: MIT */
/* dhcp_fuzz.c - libFuzzer target: DHCP message parser and reply builder */

/*
 * The input is one DHCP message (the UDP payload). It is parsed; if it
 * parses, a reply of every kind is built and checked (BOOTREPLY, same xid
 * and chaddr, cookie, message type as the first option, an end option,
 * at least 300 bytes), and the message is also run through dhcp_input()
 * of a stack whose output is checked to be a broadcast or guest-addressed
 * frame of plausible size.
 */

#include <stdlib.h>
#include <string.h>

#include "net/dhcp.h"
#include "net/eth.h"

/**
 * check_reply() - invariants of a built reply
 * @req:	the client's message
 * @type:	the reply type
 * @r:		reply
 * @len:	its length
 */
static void check_reply(const struct dhcp_msg *req, enum dhcp_type type,
			const uint8_t *r, size_t len)
{
	size_t i = 240;

	if (len < DHCP_MIN_LEN || len > DHCP_MAX_REPLY || r[0] != 2 ||
	    net_get_be32(r + 4) != req->xid ||
	    memcmp(r + 28, req->chaddr, DHCP_CHADDR_LEN) != 0 ||
	    net_get_be32(r + 236) != 0x63825363u ||
	    r[240] != 53 || r[241] != 1 || r[242] != type)
		abort();
	while (i < len && r[i] != 255)	/* options are well formed */
		i += r[i] == 0 ? 1 : 2u + (i + 1 < len ? r[i + 1] : 0);
	if (i >= len)
		abort();
}

/**
 * out() - ops.output of the stack under test
 * @ud:		unused
 * @f:		frame
 * @len:	its length
 */
static void out(void *ud, const uint8_t *f, size_t len)
{
	(void)ud;
	if (len < ETH_HLEN + 20 + 8 + DHCP_MIN_LEN || len > NET_MAX_FRAME)
		abort();
	if (memcmp(f, eth_broadcast, ETH_ALEN) != 0 && f[0] != 0x02)
		abort();
}

/**
 * accept_none() - ops.tcp_accept (no TCP here)
 * @ud:		unused
 * @c:		unused
 *
 * Return: false
 */
static bool accept_none(void *ud, struct tcp_conn *c)
{
	(void)ud;
	(void)c;
	return false;
}

/**
 * no_event() - ops.tcp_event (no TCP here)
 * @ud:		unused
 * @c:		unused
 * @ev:		unused
 */
static void no_event(void *ud, struct tcp_conn *c, enum tcp_event ev)
{
	(void)ud;
	(void)c;
	(void)ev;
}

/**
 * LLVMFuzzerTestOneInput() - libFuzzer entry
 * @data:	input
 * @size:	its length
 *
 * Return: 0
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct net_ops ops = {
		.output = out, .tcp_accept = accept_none, .tcp_event = no_event,
	};
	static const enum dhcp_type types[] = { DHCP_OFFER, DHCP_ACK, DHCP_NAK };
	struct net_config cfg;
	struct dhcp_msg m;
	uint8_t r[DHCP_MAX_REPLY];
	struct net n;
	size_t i, len;
	int rc;

	rc = dhcp_parse(data, size, &m);
	if (rc != 1 && rc != -1)
		abort();
	net_config_default(&cfg);
	if (rc == 1) {
		for (i = 0; i < 3; i++) {
			len = dhcp_build(&cfg, &m, types[i], r, sizeof(r));
			check_reply(&m, types[i], r, len);
		}
		if (dhcp_build(&cfg, &m, DHCP_ACK, r, sizeof(r) - 1) != 0)
			abort();
	}
	cfg.max_tcp = cfg.max_half_open = 1;	/* no TCP here: keep init cheap */
	cfg.tcp_buf = 4096;
	if (net_init(&n, &cfg, &ops, NULL) < 0)
		abort();
	rc = dhcp_input(&n, 0, 0xffffffffu, data, size);
	if (rc < -1 || rc > 1 || (rc == -1) != (n.stats.dhcp_malformed == 1))
		abort();
	net_free(&n);
	return 0;
}
