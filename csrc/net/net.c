/* SPDX-License-Identifier: MIT */
/* net.c - one instance of the host's userspace network stack */

/*
 * Theory of Operation
 *
 * A struct net is everything one VM's network needs: the configuration,
 * the embedder's callbacks, counters, the synthetic DNS table and the TCP
 * engine's state. It owns no sockets, threads or timers: the embedder
 * feeds guest frames to net_input(), passes the time with every call, and
 * calls net_timer() when net_next_timer() says so. Output happens inside
 * those calls, through ops.output, one complete frame at a time.
 *
 * Only TCP has timers (retransmission, idle, TIME_WAIT); ARP, ICMP, DHCP
 * and DNS answer immediately and keep no per-request state.
 *
 * Memory is allocated in net_init() only, sized by the configuration and
 * compile-time limits; nothing a guest sends makes the stack allocate
 * outside tcp.c's per-connection buffers, which are bounded by max_tcp and
 * tcp_buf. The stack is not thread-safe and not re-entrant: callbacks may
 * call the tcp_* embedder functions, but not net_input/net_timer.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/dns.h"
#include "net/eth.h"
#include "net/net.h"
#include "net/tcp.h"

#define NET_MIN_MTU	576	/* a DHCP reply must fit */

/**
 * net_config_default() - the network the guest sees unless told otherwise
 * @cfg:	configuration out
 */
void net_config_default(struct net_config *cfg)
{
	static const uint8_t gw_mac[6] = { 0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd };
	static const uint8_t guest_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 };

	memset(cfg, 0, sizeof(*cfg));
	memcpy(cfg->gw_mac, gw_mac, sizeof(gw_mac));
	memcpy(cfg->guest_mac, guest_mac, sizeof(guest_mac));
	cfg->gw_ip = 0xc0a87f01;		/* 192.168.127.1 */
	cfg->guest_ip = 0xc0a87f03;		/* 192.168.127.3 */
	cfg->netmask = 0xffffff00;
	cfg->mtu = NET_MAX_MTU;
	cfg->lease_s = 86400;
	cfg->pool_base = 0xc6120000;		/* 198.18.0.0/15 */
	cfg->pool_bits = 15;
	cfg->max_tcp = 1024;
	cfg->max_half_open = 128;
	cfg->tcp_buf = 256 * 1024;
	cfg->max_buffered = 256u << 20;	/* TCP ring bytes of all flows (mostly untouched: 1 page per idle ring) */
}

/**
 * net_limit() - tell the embedder a per-VM bound refused something
 * @n:		stack
 * @limit:	its name (docs/security.md, "Per-VM bounds")
 */
void net_limit(struct net *n, const char *limit)
{
	if (n->ops.limit)
		n->ops.limit(n->ud, limit);
}

/**
 * net_config_check() - reject configurations the stack cannot serve
 * @cfg:	configuration
 *
 * Return: 0 or -EINVAL
 */
static int net_config_check(const struct net_config *cfg)
{
	uint32_t host = ~cfg->netmask;

	if ((host & (host + 1)) != 0 || host < 3)	/* contiguous, >= /30 */
		return -EINVAL;
	if ((cfg->gw_ip & cfg->netmask) != (cfg->guest_ip & cfg->netmask) ||
	    cfg->gw_ip == cfg->guest_ip ||
	    (cfg->gw_ip & host) == 0 || (cfg->gw_ip & host) == host ||
	    (cfg->guest_ip & host) == 0 || (cfg->guest_ip & host) == host)
		return -EINVAL;
	if (cfg->mtu < NET_MIN_MTU || cfg->mtu > NET_MAX_MTU)
		return -EINVAL;
	if (memcmp(cfg->gw_mac, cfg->guest_mac, 6) == 0 ||
	    (cfg->gw_mac[0] & 1) || (cfg->guest_mac[0] & 1))
		return -EINVAL;	/* unicast, distinct */
	if (cfg->max_tcp == 0 || cfg->max_half_open == 0 || cfg->tcp_buf == 0)
		return -EINVAL;
	if (cfg->pool_bits < DNS_POOL_MIN_BITS || cfg->pool_bits > DNS_POOL_MAX_BITS)
		return -EINVAL;
	return 0;
}

/**
 * net_init() - set up a stack
 * @n:		stack (any contents)
 * @cfg:	configuration (copied)
 * @ops:	embedder callbacks (copied); output is required
 * @ud:		passed to every callback
 *
 * Return: 0, -EINVAL (bad configuration) or -ENOMEM
 */
int net_init(struct net *n, const struct net_config *cfg,
	     const struct net_ops *ops, void *ud)
{
	int rc;

	memset(n, 0, sizeof(*n));
	if (!ops->output || !ops->tcp_accept || !ops->tcp_event ||
	    net_config_check(cfg) < 0)
		return -EINVAL;
	n->cfg = *cfg;
	n->ops = *ops;
	n->ud = ud;
	n->tx = malloc(NET_MAX_FRAME);
	n->dns = dns_pool_new(cfg->pool_base, cfg->pool_bits);
	rc = n->tx && n->dns ? tcp_init(n) : -ENOMEM;
	if (rc < 0) {
		dns_pool_free(n->dns);
		free(n->tx);
		n->dns = NULL;
		n->tx = NULL;
		return rc;
	}
	return 0;
}

/**
 * net_tx_frame() - start an output frame; layers write their headers in
 * place, so a frame is never copied from one layer to the next
 * @n:		stack
 *
 * Return: NET_MAX_FRAME bytes for the frame (Ethernet header first).
 */
uint8_t *net_tx_frame(struct net *n)
{
	uint8_t *f = n->ops.tx_frame ? n->ops.tx_frame(n->ud) : NULL;

	return f ? f : n->tx;
}

/**
 * net_free() - release everything a stack holds; safe to call twice
 * @n:		stack
 */
void net_free(struct net *n)
{
	if (!n->dns)
		return;			/* never initialised, or freed */
	tcp_free(n);
	n->tcp = NULL;
	dns_pool_free(n->dns);
	n->dns = NULL;
	free(n->tx);
	n->tx = NULL;
}

/**
 * net_input() - take one Ethernet frame from the guest
 * @n:		stack
 * @frame:	frame without FCS
 * @len:	its length
 * @now_ms:	current time (monotonic milliseconds)
 *
 * Return: 1 handled, 0 not ours, -1 malformed (the last two are counted
 * in stats.dropped); never anything the caller must act on
 */
int net_input(struct net *n, const uint8_t *frame, size_t len, uint64_t now_ms)
{
	int rc;

	if (now_ms > n->now_ms)
		n->now_ms = now_ms;
	n->stats.frames_in++;
	rc = len > NET_MAX_FRAME ? -1 : eth_input(n, frame, len);
	if (rc != 1)
		n->stats.dropped++;
	return rc;
}

/**
 * net_timer() - run what is due at @now_ms
 * @n:		stack
 * @now_ms:	current time
 */
void net_timer(struct net *n, uint64_t now_ms)
{
	if (now_ms > n->now_ms)
		n->now_ms = now_ms;
	tcp_timer(n, n->now_ms);
}

/**
 * net_next_timer() - when net_timer() should next run
 * @n:		stack
 *
 * Return: absolute time in ms, or NET_TIMER_NONE
 */
uint64_t net_next_timer(const struct net *n)
{
	return tcp_next_timer(n);
}
