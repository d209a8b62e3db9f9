/* SPDX-License-Identifier: MIT */
/* net.h - the host's userspace network stack: one instance per VM
 *
 * The stack is pure protocol code: no libuv, no Lua. The embedder
 * (csrc/api/l_net.c) feeds it frames from the guest (net_input), receives
 * frames for the guest through ops.output, drives its timers
 * (net_timer/net_next_timer), and is told about TCP connections through
 * ops.tcp_accept / ops.tcp_event. This keeps every hop unit-testable and
 * fuzzable with synthetic frames.
 *
 * Data path: net_input -> eth_input -> arp_input | ipv4_input ->
 * icmp_input | udp_input (-> dhcp_input | dns_input) | tcp_input.
 * All addresses in this API are IPv4 in host byte order.
 */
#ifndef GONDOLIN_NET_H
#define GONDOLIN_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NET_MAX_FRAME	(1514 + 4)	/* eth header + MTU 1500 (+ VLAN slack) */

struct tcp_conn;
struct tcp_state;
struct dns_pool;

/**
 * struct net_config - the network the guest sees
 * @gw_mac, @guest_mac:	MAC addresses (the guest's is also given to QEMU)
 * @gw_ip:		gateway; also DHCP server, DNS server, ping target
 * @guest_ip:		the one address DHCP hands out
 * @netmask:		e.g. 0xffffff00
 * @mtu:		offered by DHCP and used for MSS (<= 1500)
 * @lease_s:		DHCP lease time
 * @pool_base, @pool_bits: synthetic DNS pool, e.g. 198.18.0.0/15
 * @max_tcp:		concurrent TCP connections (all states)
 * @max_half_open:	connections in SYN_RECEIVED
 * @tcp_buf:		bytes buffered per connection and direction
 */
struct net_config {
	uint8_t gw_mac[6], guest_mac[6];
	uint32_t gw_ip, guest_ip, netmask;
	uint16_t mtu;
	uint32_t lease_s;
	uint32_t pool_base;
	uint8_t pool_bits;
	uint32_t max_tcp, max_half_open;
	uint32_t tcp_buf;
};

/* What happened on a TCP connection, for ops.tcp_event. */
enum tcp_event {
	TCP_EV_ESTABLISHED,	/* handshake completed */
	TCP_EV_READABLE,	/* new in-order bytes from the guest: tcp_read() them */
	TCP_EV_WRITABLE,	/* send buffer space freed: tcp_write() more */
	TCP_EV_FIN,		/* the guest finished sending (after all data) */
	TCP_EV_RESET,		/* the guest reset, or we gave up (timeout, limits) */
	TCP_EV_CLOSED,		/* fully closed; last event, @c is freed after it */
};

/**
 * struct net_ops - what the embedder provides
 * @output:	send one Ethernet frame to the guest
 * @tcp_accept:	a SYN arrived for @c (addresses/ports set); return true to
 *		accept (SYN-ACK), false to refuse (RST)
 * @tcp_event:	see enum tcp_event
 * @log:	optional diagnostics (one line, no newline)
 */
struct net_ops {
	void (*output)(void *ud, const uint8_t *frame, size_t len);
	bool (*tcp_accept)(void *ud, struct tcp_conn *c);
	void (*tcp_event)(void *ud, struct tcp_conn *c, enum tcp_event ev);
	void (*log)(void *ud, const char *msg);
};

/* Counters, for diagnostics, tests and audit. */
struct net_stats {
	uint64_t frames_in, frames_out, dropped;
	uint64_t arp_replies, icmp_echo, dhcp_replies, dns_queries, dns_malformed;
	uint64_t udp_dropped, ipv6_dropped, bad_checksum;
	uint64_t tcp_accepted, tcp_refused, tcp_resets_sent, tcp_retransmits;
};

struct net {
	struct net_config cfg;
	struct net_ops ops;
	void *ud;
	uint64_t now_ms;		/* last time given to net_timer/net_input */
	struct net_stats stats;
	struct dns_pool *dns;
	struct tcp_state *tcp;
	uint16_t ip_id;
};

void net_config_default(struct net_config *cfg);
int net_init(struct net *n, const struct net_config *cfg,
	     const struct net_ops *ops, void *ud);
void net_free(struct net *n);
int net_input(struct net *n, const uint8_t *frame, size_t len, uint64_t now_ms);
void net_timer(struct net *n, uint64_t now_ms);
uint64_t net_next_timer(const struct net *n);

/* Below: shared between the net/ files only. */
int eth_output(struct net *n, uint16_t ethertype, const uint8_t dst[6],
	       const uint8_t *payload, size_t len);
int ipv4_output(struct net *n, uint32_t src, uint32_t dst, uint8_t proto,
		const uint8_t *payload, size_t len);
const char *dns_pool_name(const struct dns_pool *p, uint32_t ip);

#endif /* GONDOLIN_NET_H */
