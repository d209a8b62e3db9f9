/* SPDX-License-Identifier: MIT */
/* net_fuzz.c - libFuzzer target: the whole stack fed a sequence of frames */

/*
 * The input is a sequence of records:
 *
 *	u8 ctl, u16 len (big endian), len bytes
 *
 * ctl bit 0: the bytes are an IPv4 datagram; prepend the Ethernet header
 *            a guest would send (guest MAC -> gateway MAC, type IPv4)
 * ctl bit 1: fix the IPv4 total length and header checksum
 * ctl bit 2: fix the TCP/UDP/ICMP checksum
 * ctl bit 3: rewrite the IPv4 source to the guest's address
 * ctl bits 4-7: advance the clock by (bits << 6) ms and run net_timer()
 *
 * Bits 1-3 let the fuzzer reach past the checksums into TCP, DHCP and DNS,
 * and our ISN is pinned to 0 (tcp_test_isn) so that a guest ACK of 1
 * completes a handshake.
 * The embedder accepts every connection and, on events, reads, echoes a
 * little, shuts down on FIN and now and then aborts. Every frame the stack
 * outputs must be well formed: a sane length, the gateway as Ethernet
 * source, and valid IPv4 and TCP/UDP/ICMP checksums; otherwise we abort().
 */

#include <stdlib.h>
#include <string.h>

#include "net/checksum.h"
#include "net/eth.h"
#include "net/ipv4.h"
#include "net/net.h"
#include "net/tcp.h"

#define MAX_RECORD	(NET_MAX_FRAME + 64)

/**
 * struct harness - state shared with the callbacks
 * @n:		the stack
 * @rng:	xorshift state, seeded from the input
 * @frames:	output frames seen
 */
struct harness {
	struct net n;
	uint32_t rng;
	size_t frames;
};

/**
 * rnd() - next pseudo-random number
 * @h:		harness
 *
 * Return: 32 bits
 */
static uint32_t rnd(struct harness *h)
{
	h->rng ^= h->rng << 13;
	h->rng ^= h->rng >> 17;
	h->rng ^= h->rng << 5;
	return h->rng;
}

/**
 * check_l4() - the transport checksum of an output datagram must verify
 * @ip:		IPv4 header
 * @hlen:	its length
 * @total:	datagram length
 */
static void check_l4(const uint8_t *ip, size_t hlen, size_t total)
{
	const uint8_t *l4 = ip + hlen;
	size_t len = total - hlen;
	uint32_t src = net_get_be32(ip + 12), dst = net_get_be32(ip + 16);

	switch (ip[9]) {
	case IPV4_PROTO_ICMP:
		if (csum(l4, len) != 0)
			abort();
		break;
	case IPV4_PROTO_UDP:
		if (len < 8 || net_get_be16(l4 + 4) != len ||
		    (net_get_be16(l4 + 6) != 0 &&
		     csum_tcpudp(src, dst, IPV4_PROTO_UDP, l4, len) != 0))
			abort();
		break;
	case IPV4_PROTO_TCP:
		if (len < 20 || csum_tcpudp(src, dst, IPV4_PROTO_TCP, l4, len) != 0)
			abort();
		break;
	default:
		abort();	/* we never send anything else */
	}
}

/**
 * out() - ops.output: validate every frame the stack sends
 * @ud:		harness
 * @f:		frame
 * @len:	its length
 */
static void out(void *ud, const uint8_t *f, size_t len)
{
	struct harness *h = ud;
	size_t hlen, total;
	const uint8_t *ip;

	h->frames++;
	if (len < ETH_HLEN || len > NET_MAX_FRAME ||
	    memcmp(f + ETH_ALEN, h->n.cfg.gw_mac, ETH_ALEN) != 0)
		abort();
	if (net_get_be16(f + 12) == ETH_P_ARP)
		return;
	if (net_get_be16(f + 12) != ETH_P_IPV4 || len < ETH_HLEN + IPV4_HLEN)
		abort();
	ip = f + ETH_HLEN;
	hlen = (size_t)(ip[0] & 0xf) * 4;
	total = net_get_be16(ip + 2);
	if (ip[0] >> 4 != 4 || hlen < IPV4_HLEN || total < hlen ||
	    total != len - ETH_HLEN || total > h->n.cfg.mtu ||
	    csum(ip, hlen) != 0)
		abort();
	check_l4(ip, hlen, total);
}

/**
 * accept_conn() - ops.tcp_accept: take everything
 * @ud:		harness
 * @c:		connection
 *
 * Return: true
 */
static bool accept_conn(void *ud, struct tcp_conn *c)
{
	(void)ud;
	(void)c;
	return true;
}

/**
 * event() - ops.tcp_event: behave like a small echo server
 * @ud:		harness
 * @c:		connection
 * @ev:		what happened
 */
static void event(void *ud, struct tcp_conn *c, enum tcp_event ev)
{
	struct harness *h = ud;
	uint8_t buf[512];
	size_t got, room;

	switch (ev) {
	case TCP_EV_ESTABLISHED:
		tcp_write(&h->n, c, (const uint8_t *)"hello\r\n", 7);
		break;
	case TCP_EV_READABLE:
		got = tcp_read(&h->n, c, buf, 1 + rnd(h) % sizeof(buf));
		room = tcp_writable(c);
		tcp_write(&h->n, c, buf, got < room ? got : room);
		if (rnd(h) % 64 == 0)
			tcp_abort(&h->n, c);
		break;
	case TCP_EV_WRITABLE:
		if (rnd(h) % 4 == 0)
			tcp_write(&h->n, c, buf, 1 + rnd(h) % sizeof(buf));
		break;
	case TCP_EV_FIN:
		tcp_shutdown(&h->n, c);
		break;
	case TCP_EV_RESET:
	case TCP_EV_CLOSED:
		break;
	}
}

/**
 * fix_checksums() - make a datagram's lengths and checksums valid as asked
 * @h:		harness
 * @ip:		IPv4 datagram
 * @len:	its length
 * @ctl:	the record's control bits
 */
static void fix_checksums(struct harness *h, uint8_t *ip, size_t len, uint8_t ctl)
{
	size_t hlen;

	if (len < IPV4_HLEN)
		return;
	hlen = (size_t)(ip[0] & 0xf) * 4;
	if (hlen < IPV4_HLEN || hlen > len)
		return;
	if (ctl & 8)
		net_put_be32(ip + 12, h->n.cfg.guest_ip);
	if (ctl & 4) {
		uint8_t *l4 = ip + hlen;
		size_t l4len = len - hlen;
		size_t off = ip[9] == IPV4_PROTO_TCP ? 16 : ip[9] == IPV4_PROTO_UDP ? 6 : 2;

		if (ip[9] == IPV4_PROTO_UDP && l4len >= 8)
			net_put_be16(l4 + 4, (uint16_t)l4len);
		if (l4len >= off + 2) {
			net_put_be16(l4 + off, 0);
			net_put_be16(l4 + off, ip[9] == IPV4_PROTO_ICMP ? csum(l4, l4len) :
				     csum_tcpudp(net_get_be32(ip + 12), net_get_be32(ip + 16),
						 ip[9], l4, l4len));
		}
	}
	if (ctl & 2) {
		net_put_be16(ip + 2, (uint16_t)len);
		net_put_be16(ip + 10, 0);
		net_put_be16(ip + 10, csum(ip, hlen));
	}
}

/**
 * feed() - turn one record into a frame and give it to the stack
 * @h:		harness
 * @ctl:	control bits
 * @p:		record bytes
 * @len:	their length
 * @now:	the clock (advanced)
 */
static void feed(struct harness *h, uint8_t ctl, const uint8_t *p, size_t len,
		 uint64_t *now)
{
	uint8_t frame[ETH_HLEN + MAX_RECORD];
	size_t flen = len;
	uint8_t *d = frame;

	if (ctl & 1) {
		memcpy(frame, h->n.cfg.gw_mac, ETH_ALEN);
		memcpy(frame + ETH_ALEN, h->n.cfg.guest_mac, ETH_ALEN);
		net_put_be16(frame + 12, ETH_P_IPV4);
		d = frame + ETH_HLEN;
		flen += ETH_HLEN;
	}
	memcpy(d, p, len);
	tcp_test_isn(&h->n, 0);
	if (ctl & 1)
		fix_checksums(h, d, len, ctl);
	net_input(&h->n, frame, flen, *now);
	if (ctl >> 4) {
		*now += (uint64_t)(ctl >> 4) << 6;
		net_timer(&h->n, *now);
	}
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
		.output = out, .tcp_accept = accept_conn, .tcp_event = event,
	};
	struct net_config cfg;
	struct harness *h = calloc(1, sizeof(*h));
	uint64_t now = 1000;
	size_t pos = 0, len;
	int i;

	if (!h)
		return 0;
	net_config_default(&cfg);
	cfg.max_tcp = 8;
	cfg.max_half_open = 4;
	cfg.tcp_buf = 4096;
	if (net_init(&h->n, &cfg, &ops, h) < 0)
		abort();
	h->rng = 0x9e3779b9u ^ (uint32_t)size;
	while (size - pos >= 3) {
		len = net_get_be16(data + pos + 1) % MAX_RECORD;
		if (len > size - pos - 3)
			len = size - pos - 3;
		feed(h, data[pos], data + pos + 3, len, &now);
		pos += 3 + len;
	}
	for (i = 0; i < 64 && net_next_timer(&h->n) != NET_TIMER_NONE; i++) {
		now = net_next_timer(&h->n) > now ? net_next_timer(&h->n) : now + 1;
		net_timer(&h->n, now);	/* run every timer out */
	}
	net_free(&h->n);
	free(h);
	return 0;
}
