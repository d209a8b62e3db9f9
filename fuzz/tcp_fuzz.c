/* SPDX-License-Identifier: MIT */
/* tcp_fuzz.c - libFuzzer target: one TCP connection against a scripted guest */

/*
 * net_fuzz.c throws frames at the whole stack; this target instead plays a
 * well-behaved but unlucky guest against tcp.c and checks that the byte
 * streams survive. The input is a header (both ISNs, the guest's MSS and
 * window scale, tcp_buf, stream lengths) and then a script of operations:
 * the guest sends data at some offset (old, in order, beyond a hole or
 * beyond the window; FIN at the end), pure ACKs with random windows (zero
 * included); segments from the host are delivered, dropped, duplicated or
 * reordered; stray RSTs, SYNs and ACK-less segments arrive; the embedder
 * writes, reads, shuts down or aborts; the clock jumps. ISNs come from the input (tcp_test_isn() for ours), so sequence
 * numbers wrap on both sides.
 *
 * Checked all along (abort() on failure):
 * - every byte the embedder reads is the guest's stream at that offset;
 * - every byte the host sends is its stream at that offset, never beyond
 *   what was written, in segments no larger than the MSS, never beyond the
 *   largest right edge the guest advertised (+1 for a window probe);
 * - the host never acknowledges what the guest did not send;
 * - events: ESTABLISHED first, at most one FIN, CLOSED last and once.
 * After the script a lossless drain (the guest resends what is not
 * acknowledged, opens its window, the clock follows the timers) must
 * deliver both streams completely unless the connection was reset.
 */

#include <stdlib.h>
#include <string.h>

#include "net/checksum.h"
#include "net/eth.h"
#include "net/ipv4.h"
#include "net/net.h"
#include "net/tcp.h"

#define QMAX		64		/* host segments in flight to the guest */
#define SEG_MAX		1460
#define GPORT		40000
#define DPORT		443
#define DST_IP		0x5db8d822u	/* 93.184.216.34 */
#define DRAIN_ROUNDS	4000
#define F_FIN		0x01
#define F_SYN		0x02
#define F_RST		0x04
#define F_PSH		0x08
#define F_ACK		0x10

/**
 * struct seg - a segment from the host, as the guest sees it
 * @seq, @ack:	sequence and acknowledgement numbers
 * @flags:	TCP flags
 * @wnd:	window field
 * @len:	payload length
 * @data:	payload
 */
struct seg {
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t wnd, len;
	uint8_t data[SEG_MAX];
};

/**
 * struct harness - the stack, the scripted guest and the embedder
 * @n:		stack
 * @c:		the connection, while open
 * @now:	clock
 * @in, @left:	unread script
 * @g_isn, @h_isn: the guest's and the host's ISN
 * @gws, @ws_ok: guest window scale, and whether the host agreed
 * @mss:	the host's MSS limit towards the guest
 * @g_total:	length of the guest's stream
 * @g_una:	guest bytes the host acknowledged
 * @g_max:	guest bytes sent at least once
 * @g_fin:	the guest sent its FIN
 * @h_rcv:	host bytes the guest received in order
 * @h_fin:	the guest received the host's FIN
 * @maxwnd:	largest window (bytes) the guest advertised
 * @right:	bound on the host's right edge: any in-order point the guest
 *		reached plus the largest window (a window taken from an older
 *		segment applies from the newest ACK)
 * @e_read:	guest bytes the embedder read
 * @e_written:	host bytes the embedder wrote
 * @h_total:	length of the host's stream
 * @events:	events seen: established, fin, closed, reset
 * @dead:	closed, or reset seen by the guest
 * @q, @qn:	host segments not yet delivered to the guest
 */
struct harness {
	struct net n;
	struct tcp_conn *c;
	uint64_t now;
	const uint8_t *in;
	size_t left;
	uint32_t g_isn, h_isn;
	uint8_t gws;
	bool ws_ok;
	uint32_t mss, g_total, g_una, g_max;
	bool g_fin;
	uint32_t h_rcv;
	bool h_fin;
	uint32_t maxwnd, right;
	uint32_t e_read, e_written, h_total;
	unsigned established, fin, closed, reset;
	bool dead, shut;
	struct seg q[QMAX];
	unsigned qn;
};

/**
 * gbyte() - the guest's stream
 * @i:		offset
 *
 * Return: its byte
 */
static uint8_t gbyte(uint32_t i)
{
	return (uint8_t)(i * 131 + (i >> 8) + 7);
}

/**
 * hbyte() - the host's stream
 * @i:		offset
 *
 * Return: its byte
 */
static uint8_t hbyte(uint32_t i)
{
	return (uint8_t)(i * 197 + (i >> 9) + 3);
}

/**
 * take() - next script bytes as a big-endian number (0 once exhausted)
 * @h:		harness
 * @n:		bytes (1..4)
 *
 * Return: the value
 */
static uint32_t take(struct harness *h, unsigned n)
{
	uint32_t v = 0;

	while (n--) {
		v <<= 8;
		if (h->left) {
			v |= *h->in++;
			h->left--;
		}
	}
	return v;
}

/**
 * synack_options() - check our SYN-ACK's options; note window scaling
 * @h:		harness
 * @o:		options
 * @len:	their length
 * @tl:		segment length
 */
static void synack_options(struct harness *h, const uint8_t *o, size_t len,
			   size_t tl)
{
	size_t i = 0;
	bool mss = false;

	if (tl != 20 + len)
		abort();			/* no data on a SYN-ACK */
	while (i + 1 < len && o[i] != 0) {
		if (o[i] == 1) {
			i++;
			continue;
		}
		if (o[i] == 2 && o[i + 1] == 4 && i + 4 <= len)
			mss = net_get_be16(o + i + 2) == h->n.cfg.mtu - 40;
		else if (o[i] == 3 && o[i + 1] == 3)
			h->ws_ok = true;
		else
			abort();			/* we send nothing else */
		if (o[i + 1] < 2)
			abort();
		i += o[i + 1];
	}
	if (!mss)
		abort();
}

/**
 * on_output() - a frame for the guest: check it and queue TCP segments
 * @ud:		harness
 * @f:		Ethernet frame
 * @len:	its length
 */
static void on_output(void *ud, const uint8_t *f, size_t len)
{
	struct harness *h = ud;
	const uint8_t *ip = f + ETH_HLEN, *t;
	size_t tl, hl;
	struct seg *s;

	if (len < ETH_HLEN + IPV4_HLEN + 20 || net_get_be16(f + 12) != ETH_P_IPV4)
		return;
	if (ip[9] != IPV4_PROTO_TCP || csum(ip, IPV4_HLEN) != 0)
		abort();
	t = ip + IPV4_HLEN;
	tl = net_get_be16(ip + 2) - IPV4_HLEN;
	hl = (size_t)(t[12] >> 4) * 4;
	if (csum_tcpudp(net_get_be32(ip + 12), net_get_be32(ip + 16),
			IPV4_PROTO_TCP, t, tl) != 0 || hl < 20 || hl > tl ||
	    tl - hl > h->mss)
		abort();
	if (t[13] & F_SYN)
		synack_options(h, t + 20, hl - 20, tl);
	if (h->qn == QMAX)			/* the link lost it */
		return;
	s = &h->q[h->qn++];
	s->seq = net_get_be32(t + 4);
	s->ack = net_get_be32(t + 8);
	s->flags = t[13];
	s->wnd = net_get_be16(t + 14);
	s->len = (uint16_t)(tl - hl);
	memcpy(s->data, t + hl, s->len);
}

/**
 * on_accept() - accept the one connection of the script
 * @ud:		harness
 * @c:		connection
 *
 * Return: true
 */
static bool on_accept(void *ud, struct tcp_conn *c)
{
	struct harness *h = ud;

	if (h->c || h->closed)
		return false;
	h->c = c;
	return true;
}

/**
 * embed_read() - the embedder reads; bytes must follow the guest's stream
 * @h:		harness
 * @max:	bytes at most
 */
static void embed_read(struct harness *h, size_t max)
{
	uint8_t buf[4096];
	size_t n, i;

	if (!h->c)
		return;
	while (max) {
		n = tcp_read(&h->n, h->c, buf, max < sizeof(buf) ? max : sizeof(buf));
		if (!n)
			return;
		for (i = 0; i < n; i++)
			if (buf[i] != gbyte(h->e_read + (uint32_t)i))
				abort();
		h->e_read += (uint32_t)n;
		max -= n;
		if (h->e_read > h->g_max)
			abort();
	}
}

/**
 * embed_write() - the embedder writes the next bytes of the host's stream
 * @h:		harness
 * @max:	bytes at most
 */
static void embed_write(struct harness *h, size_t max)
{
	uint8_t buf[4096];
	size_t n, i;

	if (!h->c || h->shut)
		return;
	if (max > h->h_total - h->e_written)
		max = h->h_total - h->e_written;
	if (max > sizeof(buf))
		max = sizeof(buf);
	for (i = 0; i < max; i++)
		buf[i] = hbyte(h->e_written + (uint32_t)i);
	n = tcp_write(&h->n, h->c, buf, max);
	if (n > max)
		abort();
	h->e_written += (uint32_t)n;
}

/**
 * on_event() - track events, check their order, read eagerly
 * @ud:		harness
 * @c:		connection
 * @ev:		event
 */
static void on_event(void *ud, struct tcp_conn *c, enum tcp_event ev)
{
	struct harness *h = ud;

	if (c != h->c || h->closed)
		abort();
	if (ev != TCP_EV_ESTABLISHED && !h->established && ev != TCP_EV_RESET &&
	    ev != TCP_EV_CLOSED)
		abort();
	switch (ev) {
	case TCP_EV_ESTABLISHED:
		if (h->established++)
			abort();
		break;
	case TCP_EV_READABLE:
		if (h->e_read & 1)		/* sometimes read from inside */
			embed_read(h, 3000);
		break;
	case TCP_EV_FIN:
		if (h->fin++ || !h->g_fin)
			abort();
		break;
	case TCP_EV_RESET:
		h->reset++;
		break;
	case TCP_EV_CLOSED:
		h->closed++;
		h->c = NULL;
		h->dead = true;
		break;
	default:
		break;
	}
}

/**
 * guest_raw() - build and input one segment from the guest
 * @h:		harness
 * @seq, @ack:	sequence and acknowledgement numbers
 * @flags:	TCP flags
 * @wnd:	window field
 * @opt:	options (a multiple of 4 bytes)
 * @optlen:	their length
 * @off:	offset of the payload in the guest's stream
 * @len:	payload bytes
 */
static void guest_raw(struct harness *h, uint32_t seq, uint32_t ack,
		      uint8_t flags, uint16_t wnd, const uint8_t *opt,
		      size_t optlen, uint32_t off, uint32_t len)
{
	uint8_t frame[NET_MAX_FRAME], *ip = frame + ETH_HLEN, *t = ip + IPV4_HLEN;
	size_t hl = 20 + optlen, i;

	memcpy(frame, h->n.cfg.gw_mac, 6);
	memcpy(frame + 6, h->n.cfg.guest_mac, 6);
	net_put_be16(frame + 12, ETH_P_IPV4);
	memset(ip, 0, IPV4_HLEN);
	ip[0] = 0x45;
	net_put_be16(ip + 2, (uint16_t)(IPV4_HLEN + hl + len));
	ip[8] = 64;
	ip[9] = IPV4_PROTO_TCP;
	net_put_be32(ip + 12, h->n.cfg.guest_ip);
	net_put_be32(ip + 16, DST_IP);
	net_put_be16(ip + 10, csum(ip, IPV4_HLEN));
	net_put_be16(t, GPORT);
	net_put_be16(t + 2, DPORT);
	net_put_be32(t + 4, seq);
	net_put_be32(t + 8, ack);
	t[12] = (uint8_t)(hl / 4 << 4);
	t[13] = flags;
	net_put_be16(t + 14, wnd);
	net_put_be32(t + 16, 0);
	if (optlen)
		memcpy(t + 20, opt, optlen);
	for (i = 0; i < len; i++)
		t[hl + i] = gbyte(off + (uint32_t)i);
	net_put_be16(t + 16, csum_tcpudp(h->n.cfg.guest_ip, DST_IP,
					 IPV4_PROTO_TCP, t, hl + len));
	net_input(&h->n, frame, ETH_HLEN + IPV4_HLEN + hl + len, h->now);
}

/**
 * guest_send() - the guest sends data (or nothing) with ACK
 * @h:		harness
 * @off:	offset of the first data byte in the guest's stream
 * @len:	data bytes
 * @flags:	extra TCP flags (FIN)
 * @wnd:	window field
 */
static void guest_send(struct harness *h, uint32_t off, uint32_t len,
		       uint8_t flags, uint16_t wnd)
{
	uint32_t w = (uint32_t)wnd << (h->ws_ok ? h->gws : 0);

	h->maxwnd = w > h->maxwnd ? w : h->maxwnd;
	if (h->h_rcv + h->maxwnd > h->right)
		h->right = h->h_rcv + h->maxwnd;
	if (len > SEG_MAX)
		len = SEG_MAX;
	if (off + len > h->g_max)
		h->g_max = off + len;
	if (flags & F_FIN)
		h->g_fin = true;
	guest_raw(h, h->g_isn + 1 + off, h->h_isn + 1 + h->h_rcv + h->h_fin,
		  flags | F_ACK, wnd, NULL, 0, off, len);
}

/**
 * guest_ack() - a pure ACK at the guest's next sequence number
 * @h:		harness
 * @wnd:	window field
 */
static void guest_ack(struct harness *h, uint16_t wnd)
{
	guest_send(h, h->g_max + h->g_fin, 0, 0, wnd);
}

/**
 * guest_take() - the guest receives one host segment
 * @h:		harness
 * @s:		segment
 */
static void guest_take(struct harness *h, const struct seg *s)
{
	uint32_t off = s->seq - (h->h_isn + 1), ackoff = s->ack - (h->g_isn + 1);
	uint32_t i;

	if (s->flags & F_RST) {
		h->dead = true;
		return;
	}
	if ((s->flags & F_SYN) || h->dead)
		return;
	if (ackoff > h->g_max + h->g_fin)
		abort();			/* acknowledges unsent bytes */
	if (ackoff > h->g_una && ackoff <= h->g_max)
		h->g_una = ackoff;
	if (s->len && (off + s->len > h->e_written || off + s->len > h->right + 1))
		abort();			/* invented, or beyond the window */
	for (i = 0; i < s->len; i++)
		if (s->data[i] != hbyte(off + i))
			abort();
	if (off <= h->h_rcv && off + s->len > h->h_rcv)
		h->h_rcv = off + s->len;
	if ((s->flags & F_FIN) && off + s->len == h->h_rcv) {
		if (!h->shut || h->h_rcv != h->e_written)
			abort();
		h->h_fin = true;
	}
}

/**
 * deliver() - deliver, drop or requeue the oldest host segment
 * @h:		harness
 * @how:	0 deliver, 1 drop, 2 deliver and keep a copy at the tail
 *		(duplicate), 3 move to the tail (reorder)
 */
static void deliver(struct harness *h, unsigned how)
{
	struct seg s;

	if (!h->qn)
		return;
	s = h->q[0];
	memmove(h->q, h->q + 1, (h->qn - 1) * sizeof(h->q[0]));
	h->qn--;
	if (how == 0 || how == 2)
		guest_take(h, &s);
	if ((how == 2 || how == 3) && h->qn < QMAX)
		h->q[h->qn++] = s;
}

/**
 * guest_data() - the guest sends data somewhere around its window
 * @h:		harness
 * @a:		script bytes choosing where and how much
 */
static void guest_data(struct harness *h, uint32_t a)
{
	uint32_t lo = h->g_una > 200 ? h->g_una - 200 : 0, span, off, len;
	uint16_t wnd = (uint16_t)(a >> 16);

	if (h->g_fin || h->g_una >= h->g_total)
		return;
	span = h->g_total - lo;
	span = span > 12000 ? 12000 : span;
	off = lo + (a & 0xffff) % (span + 1);
	if (off > h->g_total)
		off = h->g_total;
	len = h->g_total - off;
	len = len > h->mss ? h->mss : len;
	len = len > (a >> 8 & 0xff) * 8 ? (a >> 8 & 0xff) * 8 : len;
	guest_send(h, off, len, off + len == h->g_total && (a & 0x10000) ? F_FIN : 0,
		   wnd ? wnd : 0xffff);
}

/**
 * guest_stray() - a segment a confused guest might send: RST, SYN or no
 * ACK, at or near its next sequence number (never FIN: the model would
 * lose track of its stream)
 * @h:		harness
 * @a:		script bytes choosing flags and offset
 */
static void guest_stray(struct harness *h, uint32_t a)
{
	static const uint8_t flags[] = { F_RST, F_RST | F_ACK, F_SYN, F_SYN | F_ACK, 0, F_PSH };
	uint32_t seq = h->g_isn + 1 + h->g_max + h->g_fin + (a >> 8) % 5000 - 50;
	uint32_t ack = h->h_isn + 1 + h->h_rcv + h->h_fin + (a >> 20) % 3 - 1;

	if (h->dead)
		return;
	if (a % 7 == 0)
		seq = h->g_isn + 1 + h->g_max + h->g_fin;	/* exact: a RST ends it */
	guest_raw(h, seq, ack, flags[a % sizeof(flags)], 0xffff, NULL, 0, 0, 0);
}

/**
 * step() - run one operation of the script
 * @h:		harness
 */
static void step(struct harness *h)
{
	uint8_t op = (uint8_t)take(h, 1);
	uint32_t a = take(h, 3);

	switch (op % 12) {
	case 0: case 1:
		guest_data(h, a);
		break;
	case 2:
		guest_ack(h, (uint16_t)(a & 3 ? a >> 4 : 0));
		break;
	case 3: case 4:
		for (a = a % 8 + 1; a--; )
			deliver(h, 0);
		break;
	case 5:
		deliver(h, a % 4);
		break;
	case 6:
		embed_write(h, a % 6000);
		break;
	case 7:
		embed_read(h, a % 6000);
		break;
	case 8: case 9:
		h->now += (a % 4096) * 8;
		net_timer(&h->n, h->now);
		break;
	case 10:
		if (h->c && a % 3 == 0) {
			h->shut = true;
			h->h_total = h->e_written;	/* nothing more to send */
			tcp_shutdown(&h->n, h->c);
		}
		break;
	default:
		if (h->c && a % 61 == 7)
			tcp_abort(&h->n, h->c);
		else
			guest_stray(h, a);
		break;
	}
}

/**
 * drain_round() - one lossless round: read, deliver, resend, acknowledge,
 * and follow the timers when nothing else moves
 * @h:		harness
 *
 * Return: false when both streams are complete
 */
static bool drain_round(struct harness *h)
{
	uint32_t off;

	embed_read(h, SIZE_MAX);
	if (h->e_written < h->h_total)
		embed_write(h, h->h_total - h->e_written);
	while (h->qn)
		deliver(h, 0);
	if (h->dead)
		return false;
	for (off = h->g_una; off < h->g_total && off < h->g_una + 16 * h->mss;
	     off += h->mss) {
		uint32_t len = h->g_total - off < h->mss ? h->g_total - off : h->mss;

		guest_send(h, off, len, h->g_fin && off + len == h->g_total ? F_FIN : 0,
			   0xffff);
	}
	guest_ack(h, 0xffff);
	while (h->qn)
		deliver(h, 0);
	embed_read(h, SIZE_MAX);
	if (h->e_read == h->g_total && h->h_rcv == h->h_total)
		return false;
	if (net_next_timer(&h->n) != NET_TIMER_NONE && !h->qn)
		h->now = net_next_timer(&h->n) > h->now ? net_next_timer(&h->n) : h->now;
	net_timer(&h->n, h->now);
	return true;
}

/**
 * handshake() - SYN, SYN-ACK, ACK
 * @h:		harness (ISNs set)
 * @opt:	the SYN's options
 * @optlen:	their length
 *
 * Return: 0
 */
static int handshake(struct harness *h, const uint8_t *opt, size_t optlen)
{
	bool ws_offered = optlen >= 4 && opt[optlen - 3] == 3;

	guest_raw(h, h->g_isn, 0, F_SYN, 0xffff, opt, optlen, 0, 0);
	if (h->qn != 1 || h->q[0].flags != (F_SYN | F_ACK) ||
	    h->q[0].seq != h->h_isn || h->q[0].ack != h->g_isn + 1 ||
	    h->ws_ok != ws_offered || !h->c)
		abort();
	h->qn = 0;
	h->maxwnd = h->right = 0xffff;		/* the SYN's window, unscaled */
	guest_ack(h, 0xffff);
	if (h->established != 1 || h->qn)
		abort();
	return 0;
}

/**
 * setup() - the stack and the handshake, from the input's header
 * @h:		harness
 *
 * Return: 0, or -1 when the handshake did not complete
 */
static int setup(struct harness *h)
{
	static const struct net_ops ops = {
		.output = on_output, .tcp_accept = on_accept, .tcp_event = on_event,
	};
	uint32_t gmss = take(h, 2), hdr = take(h, 1), i;
	struct net_config cfg;
	uint8_t opt[8];

	net_config_default(&cfg);
	cfg.max_tcp = 4;
	cfg.max_half_open = 2;
	cfg.tcp_buf = 4096u << (hdr & 3);		/* 4..32 KiB */
	cfg.mtu = (uint16_t)(576 + (take(h, 1) * 4) % 925);
	if (net_init(&h->n, &cfg, &ops, h) < 0)
		abort();
	h->g_isn = take(h, 4);
	h->h_isn = take(h, 4);
	tcp_test_isn(&h->n, h->h_isn);
	h->gws = (uint8_t)(take(h, 1) % 16);
	h->g_total = take(h, 2);
	h->h_total = take(h, 2);
	h->mss = gmss ? (gmss < 64 ? 64 : gmss) : 536;
	h->mss = h->mss < (uint32_t)cfg.mtu - 40 ? h->mss : (uint32_t)cfg.mtu - 40;
	/* SYN with options built by hand: MSS (unless 0), window scale (bit 2) */
	i = 0;
	if (gmss) {
		opt[i++] = 2; opt[i++] = 4; opt[i++] = (uint8_t)(gmss >> 8); opt[i++] = (uint8_t)gmss;
	}
	if (hdr & 4) {
		opt[i++] = 1; opt[i++] = 3; opt[i++] = 3; opt[i++] = h->gws;
	}
	return handshake(h, opt, i);
}

/**
 * LLVMFuzzerTestOneInput() - libFuzzer entry point
 * @data:	header and script
 * @size:	its length
 *
 * Return: 0
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct harness h;
	unsigned round;

	memset(&h, 0, sizeof(h));
	h.in = data;
	h.left = size;
	setup(&h);
	while (h.left && !h.dead)
		step(&h);
	for (round = 0; round < DRAIN_ROUNDS && drain_round(&h); round++)
		;
	if (!h.dead && (h.e_read != h.g_total || h.h_rcv != h.h_total))
		abort();			/* a stream got stuck */
	if (h.c)
		tcp_abort(&h.n, h.c);
	if (h.closed != 1 || (h.fin && !h.g_fin))
		abort();
	net_free(&h.n);
	return 0;
}
