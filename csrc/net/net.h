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

#define NET_MAX_MTU	65520		/* as passt: a few large frames beat many small ones */
#define NET_MAX_FRAME	(14 + NET_MAX_MTU + 4)	/* eth header + MTU (+ VLAN slack) */
#define NET_TIMER_NONE	UINT64_MAX	/* net_next_timer(): nothing scheduled */

struct tcp_conn;
struct tcp_state;
struct dns_pool;

/**
 * struct net_config - the network the guest sees
 * @gw_mac, @guest_mac:	MAC addresses (the guest's is also given to QEMU)
 * @gw_ip:		gateway; also DHCP server, DNS server, ping target
 * @guest_ip:		the one address DHCP hands out
 * @netmask:		e.g. 0xffffff00
 * @mtu:		offered by DHCP and used for MSS (<= NET_MAX_MTU)
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
	uint64_t max_buffered;
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
 * @tx_frame:	optional: where the next frame may be built in place
 *		(NET_MAX_FRAME bytes, valid until the next output), or NULL
 *		for the stack's own buffer; output() then gets that pointer
 *		back, so the embedder need not copy the frame
 * @tcp_accept:	a SYN arrived for @c (addresses/ports set); return true to
 *		accept (SYN-ACK), false to refuse (RST)
 * @tcp_event:	see enum tcp_event
 * @log:	optional diagnostics (one line, no newline)
 * @limit:	optional: a per-VM bound refused something ("tcp_flows",
 *		"tcp_half_open", "tcp_buffered"); may be called often
 */
struct net_ops {
	void (*output)(void *ud, const uint8_t *frame, size_t len);
	uint8_t *(*tx_frame)(void *ud);
	bool (*tcp_accept)(void *ud, struct tcp_conn *c);
	void (*tcp_event)(void *ud, struct tcp_conn *c, enum tcp_event ev);
	void (*log)(void *ud, const char *msg);
	void (*limit)(void *ud, const char *limit);
};

/*
 * Counters, for diagnostics, tests and audit. Every input frame is either
 * handled or counted in @dropped; the other drop counters say why for some
 * of them (a frame may be in @dropped and in one of those).
 */
struct net_stats {
	uint64_t frames_in, frames_out, dropped;
	uint64_t arp_replies, icmp_echo, dhcp_replies, dns_queries, dns_malformed;
	uint64_t udp_dropped, ipv6_dropped, bad_checksum;
	uint64_t tcp_accepted, tcp_refused, tcp_resets_sent, tcp_retransmits;
	uint64_t ip_malformed, ip_fragments, dhcp_malformed, dhcp_naks;
	uint64_t dns_evicted;
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
	uint8_t *tx;		/* our frame buffer when ops.tx_frame has none */
};

void net_config_default(struct net_config *cfg);
void net_limit(struct net *n, const char *limit);
int net_init(struct net *n, const struct net_config *cfg,
	     const struct net_ops *ops, void *ud);
void net_free(struct net *n);
int net_input(struct net *n, const uint8_t *frame, size_t len, uint64_t now_ms);
void net_timer(struct net *n, uint64_t now_ms);
uint64_t net_next_timer(const struct net *n);

/* Below: shared between the net/ files only. */

/**
 * struct net_cursor - a bounds-checked reader over guest bytes
 * @p:		next unread byte
 * @left:	bytes from @p to the end of the buffer
 *
 * Every read of guest-controlled bytes goes through net_pull() and the
 * net_pull_*() helpers: they return NULL/false, and consume nothing, when
 * fewer bytes are left than asked for.
 */
struct net_cursor {
	const uint8_t *p;
	size_t left;
};

/**
 * net_cursor_init() - start reading @len bytes at @p
 * @c:		cursor
 * @p:		buffer
 * @len:	its length
 */
static inline void net_cursor_init(struct net_cursor *c, const uint8_t *p,
				   size_t len)
{
	c->p = p;
	c->left = len;
}

/**
 * net_pull() - take @len bytes
 * @c:		cursor
 * @len:	bytes wanted
 *
 * Return: pointer to them, or NULL (nothing consumed) when short
 */
static inline const uint8_t *net_pull(struct net_cursor *c, size_t len)
{
	const uint8_t *p = c->p;

	if (len > c->left)
		return NULL;
	c->p += len;
	c->left -= len;
	return p;
}

/**
 * net_pull_u8() - take one byte
 * @c:		cursor
 * @v:		value out
 *
 * Return: false when no byte is left
 */
static inline bool net_pull_u8(struct net_cursor *c, uint8_t *v)
{
	const uint8_t *p = net_pull(c, 1);

	if (!p)
		return false;
	*v = p[0];
	return true;
}

/**
 * net_pull_be16() - take a big-endian u16
 * @c:		cursor
 * @v:		value out
 *
 * Return: false when short
 */
static inline bool net_pull_be16(struct net_cursor *c, uint16_t *v)
{
	const uint8_t *p = net_pull(c, 2);

	if (!p)
		return false;
	*v = (uint16_t)(p[0] << 8 | p[1]);
	return true;
}

/**
 * net_pull_be32() - take a big-endian u32
 * @c:		cursor
 * @v:		value out
 *
 * Return: false when short
 */
static inline bool net_pull_be32(struct net_cursor *c, uint32_t *v)
{
	const uint8_t *p = net_pull(c, 4);

	if (!p)
		return false;
	*v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	     (uint32_t)p[2] << 8 | p[3];
	return true;
}

/**
 * net_get_be16() - read a big-endian u16 from our own (sized) buffer
 * @p:		two bytes
 *
 * Return: the value
 */
static inline uint16_t net_get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/**
 * net_get_be32() - read a big-endian u32 from our own (sized) buffer
 * @p:		four bytes
 *
 * Return: the value
 */
static inline uint32_t net_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/**
 * net_put_be16() - write a big-endian u16
 * @p:		two bytes of output
 * @v:		value
 */
static inline void net_put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/**
 * net_put_be32() - write a big-endian u32
 * @p:		four bytes of output
 * @v:		value
 */
static inline void net_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

uint8_t *net_tx_frame(struct net *n);
int ipv4_output(struct net *n, uint32_t src, uint32_t dst, uint8_t proto,
		uint8_t *payload, size_t len);
const char *dns_pool_name(const struct dns_pool *p, uint32_t ip);

#endif /* GONDOLIN_NET_H */
