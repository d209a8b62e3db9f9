/* SPDX-License-Identifier: MIT */
/* tcp.c - the TCP engine: the host as the passive end of guest connections */

/*
 * Theory of Operation
 *
 * The guest's only network peer is this stack, so every TCP connection the
 * guest opens, to any address, ends here: we are the passive side of all of
 * them and never open one ourselves. ipv4.c hands us each segment addressed
 * to us (tcp_input), the embedder (the flow classifier, or the Lua binding
 * in tests) reads and writes the byte streams (tcp_read, tcp_write) and is
 * told what happened through ops.tcp_event. Time only enters as n->now_ms
 * (set by net_input/net_timer): no clock is read here, so a test drives
 * every timer by passing times.
 *
 * Connections and limits
 *
 * A connection lives in one of cfg.max_tcp slots allocated in tcp_init(),
 * found by its 4-tuple through a fixed hash table (2 * max_tcp buckets,
 * rounded up to a power of two, chained through slot indexes). The hash is
 * SipHash-2-4 keyed with 128 random bits drawn once per stack, so a guest
 * cannot aim its ports at one chain. Per connection we allocate at most two
 * rings of cfg.tcp_buf bytes (send, receive), and only when a direction
 * first carries data: a handshake costs no buffer. Memory is therefore
 * bounded by max_tcp * (slot + 2 * tcp_buf) whatever the guest sends.
 *
 * Half-open connections (SYN_RECEIVED) are capped by cfg.max_half_open.
 * When the cap is reached, further SYNs are dropped silently and counted
 * (tcp_gauges.syn_dropped): the guest's SYN retransmission (1 s, 3 s, 7 s,
 * ...) retries them once the handshake timeout (TCP_HANDSHAKE_MS) has
 * reclaimed stale half-open slots, whereas a RST would fail a legitimate
 * connect() at once during a flood. When every slot is taken, the oldest
 * TIME_WAIT connection is recycled; if there is none the SYN is refused
 * with RST|ACK (a full table does not drain quickly).
 *
 * Handshake
 *
 * A SYN for an unknown 4-tuple takes a slot, then ops.tcp_accept() decides:
 * refused -> RST|ACK (ack = seq + 1), no events ever; accepted -> SYN-ACK
 * with our MSS (mtu - 40) and, only when the guest offered window scaling,
 * our window scale (the smallest shift that covers tcp_buf). No SACK, no
 * timestamps. Our ISN is SipHash(key, 4-tuple, counter), so it is neither
 * predictable by the guest nor a global. A duplicate SYN re-sends the
 * SYN-ACK; the SYN-ACK is also retransmitted on its own timer (at most
 * TCP_SYNACK_RETRIES times) until the handshake timeout. Data on a SYN is
 * not taken (no Fast Open): it is not acknowledged, so the guest resends it.
 *
 * Sequence numbers
 *
 * All comparisons use SEQ_LT() and friends (tcp_conn.h): serial-number
 * arithmetic modulo 2^32, correct across wrap-around on both sides.
 *
 * Guest -> host data
 *
 * Incoming segments pass the RFC 9293 acceptability test against the free
 * space of the receive ring (we take anything that fits, which is at least
 * the window we advertised), are trimmed on both sides, and land in the
 * ring. In-order bytes are committed and signalled with TCP_EV_READABLE.
 * Out-of-order bytes are written at their final place in the ring's
 * scratch space and remembered as up to TCP_OOO_MAX sequence ranges
 * (tcp_buf.c); a segment that would need a ninth range is dropped and left
 * to the guest to retransmit. When a hole fills, the ranges it reaches are
 * committed at once. Delivery only ever follows rcv_nxt, so overlaps and
 * duplicates cannot be delivered twice. A FIN beyond a hole is held and
 * taken when the data before it is complete.
 *
 * The advertised window is the ring's free space, scaled, with receiver
 * silly-window avoidance (RFC 9293 3.8.6.2.2: the right edge moves only by
 * min(buffer / 2, MSS) or more) and never beyond the free space, so a
 * well-behaved guest is never trimmed and its ACKs, sent from the edge we
 * showed it, are always acceptable (tcp_wnd_calc, tcp_acceptable). When
 * tcp_read() frees enough space while the guest's window is below half
 * the maximum, a window update goes out. Every segment that carries data
 * or needs an answer makes an ACK owed; at most one ACK goes out per input
 * segment, and none when a data segment we send carries it.
 *
 * Host -> guest data
 *
 * tcp_write() appends to the send ring (bounded by tcp_buf: short writes
 * set write_blocked, and TCP_EV_WRITABLE follows once ACKs free space, or
 * when the ring empties). Segments carry at most min(guest MSS, mtu - 40)
 * bytes, within min(the guest's scaled window, cwnd). Congestion control
 * is RFC 5681 slow start / congestion avoidance with an initial window of
 * TCP_INIT_CWND segments, fast retransmit on the third duplicate ACK and
 * NewReno fast recovery (RFC 6582). One retransmission timer per
 * connection (RFC 6298): 1 s initially, then SRTT + 4 * RTTVAR from Karn-
 * filtered samples, clamped to [TCP_RTO_MIN_MS, TCP_RTO_MAX_MS], doubled on
 * each expiry; an expiry resends from snd_una with cwnd = 1 MSS, and
 * TCP_MAX_RETRIES expiries in a row end the connection (RST to the guest,
 * TCP_EV_RESET, TCP_EV_CLOSED). A zero window with data waiting arms the
 * same timer as a persist timer, which sends a one-byte window probe with
 * backoff; probes that draw no answer TCP_MAX_RETRIES times also give up.
 *
 * Close
 *
 * States are RFC 9293's, from SYN_RECEIVED on. The guest's FIN is taken
 * in order only and signalled with TCP_EV_FIN after any data. tcp_shutdown()
 * queues our FIN after the queued data (ESTABLISHED -> FIN_WAIT_1,
 * CLOSE_WAIT -> LAST_ACK). TIME_WAIT lasts TCP_TIME_WAIT_MS (short: the
 * only peer is our own guest on a lossless link); FIN_WAIT_2 may last
 * while the guest keeps sending (a half-close), but at most
 * TCP_FIN_WAIT2_MS without progress. A graceful end never discards bytes
 * the embedder has not read: LAST_ACK then goes to TIME_WAIT, and
 * TIME_WAIT is extended, while reads continue. An in-window RST with
 * seq == rcv_nxt ends the connection (TCP_EV_RESET, TCP_EV_CLOSED); other
 * in-window RSTs and SYNs get a challenge ACK (RFC 5961); RSTs in
 * TIME_WAIT are ignored (RFC 1337).
 * tcp_abort() sends RST and ends with TCP_EV_CLOSED alone. A segment for no
 * connection is answered by RST: seq = its ack when it has ACK set, else
 * RST|ACK with ack = seq + length (SYN and FIN count one).
 *
 * Events and lifetime
 *
 * Once tcp_accept() returned true the embedder gets exactly one
 * TCP_EV_CLOSED, last, whatever happens; the slot is reused after it. The
 * embedder may call tcp_read/write/shutdown/abort from inside an event
 * (not from tcp_accept), including on the connection the event is about:
 * a slot being worked on is marked busy, so closing it from a callback
 * defers the free to the outermost engine call, and the engine stops
 * touching a connection as soon as it is closed. Events of one segment
 * come in the order ESTABLISHED, WRITABLE, READABLE, FIN.
 *
 * Timers
 *
 * Each slot has a retransmission/persist/SYN-ACK deadline (t_rtx), a state
 * deadline (handshake, TIME_WAIT: t_state) and an idle deadline (last
 * progress + TCP_IDLE_MS, or TCP_FIN_WAIT2_MS in FIN_WAIT_2, in the
 * synchronized states: progress is data or a FIN taken in order, an ACK of
 * new data, a window change or a tcp_read(), so a peer that only answers
 * probes with a zero window is still reclaimed). The earliest of the three
 * keys a min-heap (tcp_buf.c), so tcp_next_timer() is its top and
 * tcp_timer() pops what is due.
 *
 * Not done
 *
 * No SACK (neither sent nor understood), so a burst of losses is
 * repaired one hole per round trip or by the retransmission timer: the
 * virtio link does not lose frames unless the embedder's transmit queue
 * overflows. No delayed ACKs, no timestamps, no urgent data (URG bytes are
 * ordinary bytes), no Fast Open. tcp_test_isn() lets tests choose our next
 * ISN (e.g. near 2^32); nothing else can.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "net/checksum.h"
#include "net/ipv4.h"
#include "net/tcp.h"
#include "net/tcp_conn.h"

/* Timeouts in milliseconds; build with -DTCP_IDLE_MS=... to change them. */
#ifndef TCP_HANDSHAKE_MS
#define TCP_HANDSHAKE_MS	10000		/* SYN_RECEIVED */
#endif
#ifndef TCP_IDLE_MS
#define TCP_IDLE_MS		(10 * 60 * 1000)	/* no progress */
#endif
#ifndef TCP_FIN_WAIT2_MS
#define TCP_FIN_WAIT2_MS	60000
#endif
#ifndef TCP_TIME_WAIT_MS
#define TCP_TIME_WAIT_MS	2000
#endif
#define TCP_RTO_INIT_MS		1000		/* RFC 6298 2.1 */
#define TCP_RTO_MIN_MS		200
#define TCP_RTO_MAX_MS		60000
#define TCP_MAX_RETRIES		8		/* then reset */
#define TCP_SYNACK_RETRIES	3
#define TCP_BACKOFF_MAX		16

/* Limits */
#define TCP_MAX_CONNS		(1u << 16)	/* cfg.max_tcp ceiling */
#define TCP_BUF_MAX		(16u << 20)	/* cfg.tcp_buf ceiling */
#define TCP_INIT_CWND		10		/* segments (RFC 6928) */
#define TCP_MSS_DEFAULT		536		/* no MSS option (RFC 9293) */
#define TCP_MSS_MIN		64		/* floor for the guest's MSS */
#define TCP_WSCALE_MAX		14		/* RFC 7323 2.3 */
#define TCP_CWND_MAX		(1u << 30)

/* Header */
#define TCP_HLEN		20
#define TCP_FIN			0x01
#define TCP_SYN			0x02
#define TCP_RST			0x04
#define TCP_PSH			0x08
#define TCP_ACK			0x10
#define TCP_FLAGS		0x3f	/* CWR/ECE ignored: no ECN */
#define TCP_OPT_EOL		0
#define TCP_OPT_NOP		1
#define TCP_OPT_MSS		2
#define TCP_OPT_WS		3
#define TCP_SYNACK_OPTLEN	8	/* MSS, NOP, window scale */

/**
 * struct tcp_state - one stack's connection table
 * @socks:	cfg.max_tcp slots
 * @bucket:	hash chain heads (slot indexes), @mask + 1 of them
 * @heap:	timer heap over the slots
 * @mask:	bucket count minus one
 * @nslots:	cfg.max_tcp
 * @free_head:	first free slot, chained through hnext
 * @used:	slots not free
 * @half_open:	slots in SYN_RECEIVED
 * @time_wait:	slots in TIME_WAIT
 * @key:	SipHash key for buckets and ISNs
 * @isn_count:	mixed into every ISN
 * @isn_forced:	tcp_test_isn() set @isn_next for the next connection
 * @isn_next:	that ISN
 * @buf_bytes:	ring bytes allocated
 * @syn_dropped: SYNs dropped for the half-open cap
 */
struct tcp_state {
	struct tcp_sock *socks;
	uint32_t *bucket;
	struct tcp_heap heap;
	uint32_t mask, nslots, free_head;
	uint32_t used, half_open, time_wait;
	uint64_t key[2];
	uint32_t isn_count;
	bool isn_forced;
	uint32_t isn_next;
	size_t buf_bytes;
	uint64_t syn_dropped;
};

/**
 * struct tcp_seg - a received segment, validated
 * @src, @dst:	IP addresses: the guest's, and where it is connecting to
 * @sport, @dport: ports (guest's, destination)
 * @seq, @ack:	sequence and acknowledgement numbers
 * @flags:	TCP_FIN ... TCP_ACK
 * @wnd:	window field, unscaled
 * @mss:	MSS option, 0 when absent (SYN only)
 * @has_ws:	window scale option present (SYN only)
 * @ws:		its shift
 * @data:	payload
 * @len:	payload length
 */
struct tcp_seg {
	uint32_t src, dst;
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t wnd, mss;
	bool has_ws;
	uint8_t ws;
	const uint8_t *data;
	uint32_t len;
};

/**
 * struct tcp_out - a segment header to send
 * @src, @dst:	IP addresses (ours is the one the guest connected to)
 * @sport, @dport: ports
 * @seq, @ack:	sequence and acknowledgement numbers
 * @flags:	flags
 * @wnd:	window field, already scaled
 * @optlen:	bytes of @opt used
 * @opt:	options (SYN-ACK only)
 */
struct tcp_out {
	uint32_t src, dst;
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t wnd;
	uint8_t optlen;
	uint8_t opt[TCP_SYNACK_OPTLEN];
};

static const char *const tcp_st_name[] = {
	[TCP_ST_CLOSED]		= "CLOSED",
	[TCP_ST_SYN_RECEIVED]	= "SYN_RECEIVED",
	[TCP_ST_ESTABLISHED]	= "ESTABLISHED",
	[TCP_ST_FIN_WAIT_1]	= "FIN_WAIT_1",
	[TCP_ST_FIN_WAIT_2]	= "FIN_WAIT_2",
	[TCP_ST_CLOSE_WAIT]	= "CLOSE_WAIT",
	[TCP_ST_CLOSING]	= "CLOSING",
	[TCP_ST_LAST_ACK]	= "LAST_ACK",
	[TCP_ST_TIME_WAIT]	= "TIME_WAIT",
};
_Static_assert(sizeof(tcp_st_name) / sizeof(tcp_st_name[0]) == TCP_ST_COUNT,
	       "tcp_st_name matches enum tcp_st");

/* ------------------------------------------------------------------ */
/* Helpers: keyed hash, slots, logging                                 */
/* ------------------------------------------------------------------ */

#define ROTL64(x_, b_)	(((x_) << (b_)) | ((x_) >> (64 - (b_))))

/**
 * sip_round() - one SipHash round
 * @v:		state
 */
static void sip_round(uint64_t v[4])
{
	v[0] += v[1]; v[1] = ROTL64(v[1], 13); v[1] ^= v[0];
	v[0] = ROTL64(v[0], 32);
	v[2] += v[3]; v[3] = ROTL64(v[3], 16); v[3] ^= v[2];
	v[0] += v[3]; v[3] = ROTL64(v[3], 21); v[3] ^= v[0];
	v[2] += v[1]; v[1] = ROTL64(v[1], 17); v[1] ^= v[2];
	v[2] = ROTL64(v[2], 32);
}

/**
 * tcp_siphash() - SipHash-2-4 of a short message
 * @k:		128-bit key
 * @p:		message
 * @len:	its length
 *
 * Return: the 64-bit hash
 */
static uint64_t tcp_siphash(const uint64_t k[2], const uint8_t *p, size_t len)
{
	uint64_t v[4] = { k[0] ^ 0x736f6d6570736575ULL, k[1] ^ 0x646f72616e646f6dULL,
			  k[0] ^ 0x6c7967656e657261ULL, k[1] ^ 0x7465646279746573ULL };
	uint64_t m, b = (uint64_t)len << 56;
	size_t i;

	for (; len >= 8; p += 8, len -= 8) {
		for (m = 0, i = 0; i < 8; i++)
			m |= (uint64_t)p[i] << (8 * i);
		v[3] ^= m;
		sip_round(v);
		sip_round(v);
		v[0] ^= m;
	}
	for (i = 0; i < len; i++)
		b |= (uint64_t)p[i] << (8 * i);
	v[3] ^= b;
	sip_round(v);
	sip_round(v);
	v[0] ^= b;
	v[2] ^= 0xff;
	for (i = 0; i < 4; i++)
		sip_round(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/**
 * tcp_tuple_hash() - keyed hash of a 4-tuple, with an extra word
 * @ts:		table (key)
 * @gip, @gport: guest's end
 * @dip, @dport: destination
 * @extra:	0 for buckets, a counter for ISNs
 *
 * Return: the hash
 */
static uint64_t tcp_tuple_hash(const struct tcp_state *ts, uint32_t gip,
			       uint16_t gport, uint32_t dip, uint16_t dport,
			       uint32_t extra)
{
	uint8_t m[16];

	net_put_be32(m, gip);
	net_put_be32(m + 4, dip);
	net_put_be16(m + 8, gport);
	net_put_be16(m + 10, dport);
	net_put_be32(m + 12, extra);
	return tcp_siphash(ts->key, m, sizeof(m));
}

/**
 * tcp_bucket() - hash chain of a 4-tuple
 * @ts:		table
 * @gip, @gport: guest's end
 * @dip, @dport: destination
 *
 * Return: bucket index
 */
static uint32_t tcp_bucket(const struct tcp_state *ts, uint32_t gip,
			   uint16_t gport, uint32_t dip, uint16_t dport)
{
	return (uint32_t)tcp_tuple_hash(ts, gip, gport, dip, dport, 0) & ts->mask;
}

/**
 * tcp_sock_of() - the slot behind an embedder handle
 * @c:		handle (first member of its slot)
 *
 * Return: the slot
 */
static struct tcp_sock *tcp_sock_of(const struct tcp_conn *c)
{
	return (struct tcp_sock *)c;
}

/**
 * tcp_idx() - a slot's index
 * @ts:		table
 * @s:		slot
 *
 * Return: index into ts->socks
 */
static uint32_t tcp_idx(const struct tcp_state *ts, const struct tcp_sock *s)
{
	return (uint32_t)(s - ts->socks);
}

/**
 * tcp_log() - one diagnostic line about a connection, if the embedder logs
 * @n:		stack
 * @s:		connection
 * @what:	what happened
 */
static void tcp_log(const struct net *n, const struct tcp_sock *s,
		    const char *what)
{
	uint32_t g = s->pub.guest_ip, d = s->pub.dst_ip;
	char line[128];

	if (!n->ops.log)
		return;
	snprintf(line, sizeof(line), "tcp %u.%u.%u.%u:%u -> %u.%u.%u.%u:%u: %s",
		 g >> 24, (g >> 16) & 0xff, (g >> 8) & 0xff, g & 0xff,
		 s->pub.guest_port, d >> 24, (d >> 16) & 0xff, (d >> 8) & 0xff,
		 d & 0xff, s->pub.dst_port, what);
	n->ops.log(n->ud, line);
}

/**
 * tcp_set_state() - change state, keeping the table's counters
 * @n:		stack
 * @s:		connection
 * @st:		new state
 */
static void tcp_set_state(struct net *n, struct tcp_sock *s, enum tcp_st st)
{
	struct tcp_state *ts = n->tcp;

	if (s->state == TCP_ST_SYN_RECEIVED)
		ts->half_open--;
	if (s->state == TCP_ST_TIME_WAIT)
		ts->time_wait--;
	if (st == TCP_ST_SYN_RECEIVED)
		ts->half_open++;
	if (st == TCP_ST_TIME_WAIT)
		ts->time_wait++;
	s->state = (uint8_t)st;
}

/**
 * tcp_reserve() - give a ring its storage, counting it against the VM's
 * cfg.max_buffered
 * @n:		stack
 * @r:		ring
 *
 * Return: 0, -ENOBUFS (the VM's bound) or -ENOMEM
 */
static int tcp_reserve(struct net *n, struct tcp_ring *r)
{
	if (r->buf)
		return 0;
	if (n->tcp->buf_bytes + r->size > n->cfg.max_buffered) {
		net_limit(n, "tcp_buffered");
		return -ENOBUFS;
	}
	if (tcp_ring_reserve(r) < 0)
		return -ENOMEM;
	n->tcp->buf_bytes += r->size;
	return 0;
}

/**
 * tcp_release() - free a ring's storage, counting it
 * @n:		stack
 * @r:		ring
 */
static void tcp_release(struct net *n, struct tcp_ring *r)
{
	if (r->buf)
		n->tcp->buf_bytes -= r->size;
	tcp_ring_release(r);
}

/**
 * tcp_hash_insert() - make a connection findable by its 4-tuple
 * @n:		stack
 * @s:		connection (addresses set)
 */
static void tcp_hash_insert(struct net *n, struct tcp_sock *s)
{
	struct tcp_state *ts = n->tcp;
	uint32_t b = tcp_bucket(ts, s->pub.guest_ip, s->pub.guest_port,
				s->pub.dst_ip, s->pub.dst_port);

	s->hnext = ts->bucket[b];
	ts->bucket[b] = tcp_idx(ts, s);
}

/**
 * tcp_hash_remove() - unlink a connection from its hash chain
 * @n:		stack
 * @s:		connection (hashed)
 */
static void tcp_hash_remove(struct net *n, struct tcp_sock *s)
{
	struct tcp_state *ts = n->tcp;
	uint32_t b = tcp_bucket(ts, s->pub.guest_ip, s->pub.guest_port,
				s->pub.dst_ip, s->pub.dst_port);
	uint32_t *link = &ts->bucket[b], i = tcp_idx(ts, s);

	while (*link != TCP_NIL && *link != i)
		link = &ts->socks[*link].hnext;
	if (*link == i)
		*link = s->hnext;
	s->hnext = TCP_NIL;
}

/**
 * tcp_lookup() - find the connection a segment belongs to
 * @n:		stack
 * @g:		segment
 *
 * Return: connection, or NULL
 */
static struct tcp_sock *tcp_lookup(struct net *n, const struct tcp_seg *g)
{
	struct tcp_state *ts = n->tcp;
	uint32_t i = ts->bucket[tcp_bucket(ts, g->src, g->sport, g->dst, g->dport)];

	for (; i != TCP_NIL; i = ts->socks[i].hnext) {
		struct tcp_sock *s = &ts->socks[i];

		if (s->pub.guest_ip == g->src && s->pub.dst_ip == g->dst &&
		    s->pub.guest_port == g->sport && s->pub.dst_port == g->dport)
			return s;
	}
	return NULL;
}

/**
 * tcp_slot_free() - return a closed, idle slot to the free list
 * @n:		stack
 * @s:		slot
 */
static void tcp_slot_free(struct net *n, struct tcp_sock *s)
{
	struct tcp_state *ts = n->tcp;

	tcp_release(n, &s->snd);
	tcp_release(n, &s->rcv);
	s->known = false;
	s->hnext = ts->free_head;
	ts->free_head = tcp_idx(ts, s);
	ts->used--;
}

/* ------------------------------------------------------------------ */
/* Timers                                                              */
/* ------------------------------------------------------------------ */

/**
 * tcp_idle_applies() - whether the idle timeout runs in this state
 * @s:		connection
 *
 * Return: true from ESTABLISHED up to (not including) TIME_WAIT
 */
static bool tcp_idle_applies(const struct tcp_sock *s)
{
	return s->state >= TCP_ST_ESTABLISHED && s->state < TCP_ST_TIME_WAIT;
}

/**
 * tcp_idle_limit() - how long a connection may go without progress
 * @s:		connection
 *
 * Return: ms; FIN_WAIT_2 (we are done, the guest may still send) gets the
 * shorter TCP_FIN_WAIT2_MS
 */
static uint64_t tcp_idle_limit(const struct tcp_sock *s)
{
	return s->state == TCP_ST_FIN_WAIT_2 ? TCP_FIN_WAIT2_MS : TCP_IDLE_MS;
}

/**
 * tcp_sched() - recompute a connection's earliest deadline, reposition it
 * @n:		stack
 * @s:		connection
 */
static void tcp_sched(struct net *n, struct tcp_sock *s)
{
	struct tcp_state *ts = n->tcp;
	uint64_t d = NET_TIMER_NONE;

	if (s->state != TCP_ST_CLOSED) {
		if (s->t_rtx)
			d = s->t_rtx;
		if (s->t_state && s->t_state < d)
			d = s->t_state;
		if (tcp_idle_applies(s) && s->last_act + tcp_idle_limit(s) < d)
			d = s->last_act + tcp_idle_limit(s);
	}
	s->deadline = d;
	tcp_heap_update(&ts->heap, ts->socks, tcp_idx(ts, s));
}

/**
 * tcp_rto_now() - the current timeout with backoff applied
 * @s:		connection
 *
 * Return: milliseconds
 */
static uint64_t tcp_rto_now(const struct tcp_sock *s)
{
	uint64_t t = (uint64_t)s->rto << s->backoff;

	return t > TCP_RTO_MAX_MS ? TCP_RTO_MAX_MS : t;
}

/**
 * tcp_rtt_sample() - fold a round-trip measurement into the RTO (RFC 6298)
 * @s:		connection
 * @ms:		measured round trip
 */
static void tcp_rtt_sample(struct tcp_sock *s, uint64_t ms)
{
	uint32_t r8 = (uint32_t)(ms > TCP_RTO_MAX_MS ? TCP_RTO_MAX_MS : ms) * 8;
	uint32_t var;

	if (!s->rtt_valid) {
		s->srtt8 = r8;
		s->rttvar8 = r8 / 2;
		s->rtt_valid = true;
	} else {
		uint32_t d = s->srtt8 > r8 ? s->srtt8 - r8 : r8 - s->srtt8;

		s->rttvar8 = (3 * s->rttvar8 + d) / 4;
		s->srtt8 = (7 * s->srtt8 + r8) / 8;
	}
	var = s->rttvar8 / 2;			/* 4 * RTTVAR, in ms */
	s->rto = s->srtt8 / 8 + (var ? var : 1);
	if (s->rto < TCP_RTO_MIN_MS)
		s->rto = TCP_RTO_MIN_MS;
	if (s->rto > TCP_RTO_MAX_MS)
		s->rto = TCP_RTO_MAX_MS;
}

/**
 * tcp_rtt_check() - take a sample if @ack covers the timed segment
 * @n:		stack
 * @s:		connection
 * @ack:	acknowledgement number received
 */
static void tcp_rtt_check(const struct net *n, struct tcp_sock *s, uint32_t ack)
{
	if (!s->rtt_on || SEQ_LT(ack, s->rtt_seq))
		return;
	s->rtt_on = false;
	tcp_rtt_sample(s, n->now_ms - s->rtt_ts);
}

/* ------------------------------------------------------------------ */
/* Output                                                              */
/* ------------------------------------------------------------------ */

/**
 * tcp_out_send() - checksum and send one segment
 * @n:		stack
 * @o:		header
 * @r:		ring holding the payload (NULL when @len is 0)
 * @off:	payload offset in @r's committed bytes
 * @len:	payload length
 *
 * Return: 0, or -EMSGSIZE
 */
static int tcp_out_send(struct net *n, const struct tcp_out *o,
			const struct tcp_ring *r, uint32_t off, uint32_t len)
{
	size_t hlen = TCP_HLEN + o->optlen;
	uint8_t *seg = ipv4_tx_payload(n);

	if (hlen + len > ipv4_max_payload(n))
		return -EMSGSIZE;
	net_put_be16(seg, o->sport);
	net_put_be16(seg + 2, o->dport);
	net_put_be32(seg + 4, o->seq);
	net_put_be32(seg + 8, o->ack);
	seg[12] = (uint8_t)(hlen / 4 << 4);
	seg[13] = o->flags;
	net_put_be16(seg + 14, o->wnd);
	net_put_be32(seg + 16, 0);		/* checksum, urgent pointer */
	memcpy(seg + TCP_HLEN, o->opt, o->optlen);
	if (len)
		tcp_ring_get(r, off, seg + hlen, len);
	net_put_be16(seg + 16, csum_tcpudp(o->src, o->dst, IPV4_PROTO_TCP,
					   seg, hlen + len));
	return ipv4_output(n, o->src, o->dst, IPV4_PROTO_TCP, seg, hlen + len);
}

/**
 * tcp_wnd_max() - the largest window we can advertise
 * @s:		connection
 *
 * Return: bytes, a multiple of the scale unit
 */
static uint32_t tcp_wnd_max(const struct tcp_sock *s)
{
	uint32_t max = (uint32_t)65535 << s->rcv_wscale;

	if (s->rcv.size < max)
		max = s->rcv.size & ~((1u << s->rcv_wscale) - 1);
	return max;
}

/**
 * tcp_wnd_adv() - what is left of the farthest window we advertised
 * @s:		connection
 *
 * Never more than the free space: every edge was at most the free space
 * when sent, and both shrink together as bytes are committed.
 *
 * Return: bytes from rcv_nxt to the farthest advertised right edge, or 0
 */
static uint32_t tcp_wnd_adv(const struct tcp_sock *s)
{
	return SEQ_GT(s->rcv_adv, s->rcv_nxt) ? s->rcv_adv - s->rcv_nxt : 0;
}

/**
 * tcp_wnd_calc() - the window to advertise now (no side effects)
 * @s:		connection
 *
 * Free ring space, capped and rounded down to the scale unit, so we never
 * promise a byte we could not store: whatever the guest sends within any
 * edge we showed it fits, and its later ACKs (at that edge) stay
 * acceptable. Receiver SWS avoidance keeps the old edge unless it would
 * move by min(max / 2, MSS). rcv_nxt moves by any amount, so the old edge
 * may be unaligned; its rounded-down value can appear to retreat by less
 * than one unit (RFC 7323 2.4), while rcv_adv keeps the farthest edge.
 *
 * Return: bytes, a multiple of the scale unit
 */
static uint32_t tcp_wnd_calc(const struct tcp_sock *s)
{
	uint32_t unit = 1u << s->rcv_wscale, max = tcp_wnd_max(s);
	uint32_t cur = tcp_wnd_adv(s), space = tcp_ring_space(&s->rcv);
	uint32_t w = space < max ? space : max, sws = max / 2;

	if (s->rcv_mss < sws)
		sws = s->rcv_mss;
	if (w < cur + sws && w < max)
		w = cur;			/* SWS: keep the edge */
	return w & ~(unit - 1);
}

/**
 * tcp_out_init() - header fields every segment of a connection shares
 * @s:		connection
 * @o:		header out
 * @seq:	sequence number
 * @flags:	flags (ACK is added)
 *
 * Advertises the current window and records its right edge; any segment
 * carries our latest ACK, so none is owed afterwards.
 */
static void tcp_out_init(struct tcp_sock *s, struct tcp_out *o, uint32_t seq,
			 uint8_t flags)
{
	uint32_t w = tcp_wnd_calc(s);

	memset(o, 0, sizeof(*o));
	o->src = s->pub.dst_ip;
	o->dst = s->pub.guest_ip;
	o->sport = s->pub.dst_port;
	o->dport = s->pub.guest_port;
	o->seq = seq;
	o->ack = s->rcv_nxt;
	o->flags = flags | TCP_ACK;
	o->wnd = (uint16_t)(w >> s->rcv_wscale);
	s->rcv_adv = SEQ_MAX(s->rcv_adv, s->rcv_nxt + w);
	s->ack_now = false;
}

/**
 * tcp_send_seg() - send a segment of a connection's stream
 * @n:		stack
 * @s:		connection
 * @seq:	first sequence number
 * @flags:	extra flags (PSH, FIN, RST)
 * @len:	payload bytes, taken from the send ring at @seq
 */
static void tcp_send_seg(struct net *n, struct tcp_sock *s, uint32_t seq,
			 uint8_t flags, uint32_t len)
{
	struct tcp_out o;

	tcp_out_init(s, &o, seq, flags);
	tcp_out_send(n, &o, &s->snd, seq - s->snd_una, len);
}

/**
 * tcp_send_ack() - send a pure ACK (also a window update)
 * @n:		stack
 * @s:		connection
 */
static void tcp_send_ack(struct net *n, struct tcp_sock *s)
{
	tcp_send_seg(n, s, s->snd_nxt, 0, 0);
}

/**
 * tcp_send_rst() - reset a connection towards the guest
 * @n:		stack
 * @s:		connection
 */
static void tcp_send_rst(struct net *n, struct tcp_sock *s)
{
	struct tcp_out o;

	tcp_out_init(s, &o, s->snd_nxt, TCP_RST);
	o.wnd = 0;
	tcp_out_send(n, &o, NULL, 0, 0);
	n->stats.tcp_resets_sent++;
}

/**
 * tcp_send_synack() - send (or resend) our SYN-ACK with its options
 * @n:		stack
 * @s:		connection in SYN_RECEIVED
 */
static void tcp_send_synack(struct net *n, struct tcp_sock *s)
{
	uint32_t w = tcp_ring_space(&s->rcv);
	struct tcp_out o;

	tcp_out_init(s, &o, s->iss, TCP_SYN);
	w = w > 65535 ? 65535 : w;		/* never scaled in a SYN */
	o.wnd = (uint16_t)w;
	s->rcv_adv = SEQ_MAX(s->rcv_adv, s->rcv_nxt + w);
	o.opt[0] = TCP_OPT_MSS;
	o.opt[1] = 4;
	net_put_be16(o.opt + 2, s->rcv_mss);
	o.optlen = 4;
	if (s->ws_ok) {
		o.opt[4] = TCP_OPT_NOP;
		o.opt[5] = TCP_OPT_WS;
		o.opt[6] = 3;
		o.opt[7] = s->rcv_wscale;
		o.optlen = 8;
	}
	tcp_out_send(n, &o, NULL, 0, 0);
}

/**
 * tcp_rst_reply() - answer a segment that has no connection (RFC 9293)
 * @n:		stack
 * @g:		the segment (not itself a RST)
 */
static void tcp_rst_reply(struct net *n, const struct tcp_seg *g)
{
	struct tcp_out o = {
		.src = g->dst, .dst = g->src, .sport = g->dport, .dport = g->sport,
	};

	if (g->flags & TCP_ACK) {
		o.seq = g->ack;
		o.flags = TCP_RST;
	} else {
		o.ack = g->seq + g->len + !!(g->flags & TCP_SYN) +
			!!(g->flags & TCP_FIN);
		o.flags = TCP_RST | TCP_ACK;
	}
	tcp_out_send(n, &o, NULL, 0, 0);
	n->stats.tcp_resets_sent++;
}

/**
 * tcp_can_send() - whether this state sends data or our FIN
 * @s:		connection
 *
 * Return: true in ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, CLOSING, LAST_ACK
 */
static bool tcp_can_send(const struct tcp_sock *s)
{
	switch (s->state) {
	case TCP_ST_ESTABLISHED:
	case TCP_ST_CLOSE_WAIT:
	case TCP_ST_FIN_WAIT_1:
	case TCP_ST_CLOSING:
	case TCP_ST_LAST_ACK:
		return true;
	default:
		return false;
	}
}

/**
 * tcp_unsent() - queued bytes not sent since the last go-back
 * @s:		connection
 *
 * Return: bytes from snd_nxt to the end of the send ring
 */
static uint32_t tcp_unsent(const struct tcp_sock *s)
{
	uint32_t off = s->snd_nxt - s->snd_una;

	return off < s->snd.len ? s->snd.len - off : 0;
}

/**
 * tcp_usable() - bytes the guest's window and cwnd allow beyond snd_nxt
 * @s:		connection
 *
 * Return: bytes
 */
static uint32_t tcp_usable(const struct tcp_sock *s)
{
	uint32_t lim = s->snd_wnd < s->cwnd ? s->snd_wnd : s->cwnd;
	uint32_t right = s->snd_una + lim;

	return SEQ_GT(right, s->snd_nxt) ? right - s->snd_nxt : 0;
}

/**
 * tcp_output_one() - send the next segment if window and data allow
 * @n:		stack
 * @s:		connection
 *
 * The FIN rides on the segment that ends the queued data, or goes alone
 * (it needs no window).
 *
 * Return: true if a segment went out
 */
static bool tcp_output_one(struct net *n, struct tcp_sock *s)
{
	uint32_t end = s->snd_una + s->snd.len, len = tcp_unsent(s);
	uint32_t usable = tcp_usable(s);
	bool fin;

	len = len < s->snd_mss ? len : s->snd_mss;
	len = len < usable ? len : usable;
	fin = s->fin_queued && s->snd_nxt + len == end;
	if (!len && !fin)
		return false;
	if (!s->rtt_on && len && SEQ_GE(s->snd_nxt, s->snd_max)) {
		s->rtt_on = true;		/* new data: time it */
		s->rtt_seq = s->snd_nxt + len;
		s->rtt_ts = n->now_ms;
	}
	tcp_send_seg(n, s, s->snd_nxt, (uint8_t)((fin ? TCP_FIN : 0) |
		     (len && s->snd_nxt + len == end ? TCP_PSH : 0)), len);
	s->snd_nxt += len + fin;
	if (fin) {
		s->fin_sent = true;
		s->fin_seq = end;
	}
	s->snd_max = SEQ_MAX(s->snd_max, s->snd_nxt);
	return true;
}

/**
 * tcp_arm_send_timer() - retransmission timer while data is in flight,
 * persist timer while data waits on a zero window, nothing otherwise
 * @n:		stack
 * @s:		connection
 */
static void tcp_arm_send_timer(struct net *n, struct tcp_sock *s)
{
	if (SEQ_GT(s->snd_nxt, s->snd_una)) {
		if (!s->t_rtx || s->persist) {
			s->persist = false;
			s->t_rtx = n->now_ms + tcp_rto_now(s);
		}
	} else if (tcp_unsent(s)) {
		if (!s->t_rtx || !s->persist) {
			s->persist = true;
			s->t_rtx = n->now_ms + tcp_rto_now(s);
		}
	} else {
		s->t_rtx = 0;
		s->persist = false;
	}
}

/**
 * tcp_output() - send what the windows allow, then arm the send timer
 * @n:		stack
 * @s:		connection
 */
static void tcp_output(struct net *n, struct tcp_sock *s)
{
	if (!tcp_can_send(s))
		return;
	while (tcp_output_one(n, s))
		;
	tcp_arm_send_timer(n, s);
}

/**
 * tcp_retransmit_head() - resend the oldest unacknowledged segment
 * @n:		stack
 * @s:		connection
 */
static void tcp_retransmit_head(struct net *n, struct tcp_sock *s)
{
	uint32_t len = s->snd.len < s->snd_mss ? s->snd.len : s->snd_mss;
	bool fin = s->fin_sent && len == s->snd.len;

	if (!len && !fin)
		return;
	tcp_send_seg(n, s, s->snd_una, fin ? TCP_FIN : 0, len);
	s->rtt_on = false;			/* Karn */
	n->stats.tcp_retransmits++;
}

/* ------------------------------------------------------------------ */
/* Closing                                                             */
/* ------------------------------------------------------------------ */

/**
 * tcp_emit() - deliver one event, if the embedder holds the connection
 * @n:		stack
 * @s:		connection
 * @ev:		event
 *
 * Return: false if the connection is closed (now or already)
 */
static bool tcp_emit(struct net *n, struct tcp_sock *s, enum tcp_event ev)
{
	if (!s->known || s->state == TCP_ST_CLOSED)
		return false;
	n->ops.tcp_event(n->ud, &s->pub, ev);
	return s->state != TCP_ST_CLOSED;
}

/**
 * tcp_close() - end a connection: no more segments, timers or lookups;
 * RESET (if @reset) and CLOSED to the embedder; the slot is freed now or,
 * if an engine call is still working on it, when that call returns
 * @n:		stack
 * @s:		connection
 * @reset:	deliver TCP_EV_RESET before TCP_EV_CLOSED
 */
static void tcp_close(struct net *n, struct tcp_sock *s, bool reset)
{
	bool known = s->known;

	if (s->state == TCP_ST_CLOSED)
		return;
	tcp_hash_remove(n, s);
	tcp_set_state(n, s, TCP_ST_CLOSED);	/* API calls from here on: no-ops */
	s->t_rtx = s->t_state = 0;
	s->ev = 0;
	tcp_sched(n, s);
	s->busy++;				/* callbacks must not free it */
	if (known && reset)
		n->ops.tcp_event(n->ud, &s->pub, TCP_EV_RESET);
	if (known)
		n->ops.tcp_event(n->ud, &s->pub, TCP_EV_CLOSED);
	if (!--s->busy)
		tcp_slot_free(n, s);
}

/**
 * tcp_reset() - give up on a connection: RST to the guest, RESET, CLOSED
 * @n:		stack
 * @s:		connection
 * @why:	for the log
 */
static void tcp_reset(struct net *n, struct tcp_sock *s, const char *why)
{
	tcp_log(n, s, why);
	tcp_send_rst(n, s);
	tcp_close(n, s, true);
}

/**
 * tcp_enter_time_wait() - both FINs exchanged and ours acknowledged
 * @n:		stack
 * @s:		connection
 */
static void tcp_enter_time_wait(struct net *n, struct tcp_sock *s)
{
	tcp_set_state(n, s, TCP_ST_TIME_WAIT);
	s->t_state = n->now_ms + TCP_TIME_WAIT_MS;
	s->t_rtx = 0;
	s->persist = false;
	tcp_release(n, &s->snd);		/* everything was acknowledged */
	if (!s->rcv.len)
		tcp_release(n, &s->rcv);	/* and nothing more will come */
}

/**
 * tcp_flush_events() - deliver the events a segment or timer produced
 * @n:		stack
 * @s:		connection
 */
static void tcp_flush_events(struct net *n, struct tcp_sock *s)
{
	static const struct {
		uint8_t bit;
		enum tcp_event ev;
	} order[] = {
		{ TCP_EVB_WRITABLE, TCP_EV_WRITABLE },
		{ TCP_EVB_READABLE, TCP_EV_READABLE },
		{ TCP_EVB_FIN, TCP_EV_FIN },
	};
	size_t i;

	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		if (!(s->ev & order[i].bit))
			continue;
		s->ev &= (uint8_t)~order[i].bit;
		if (!tcp_emit(n, s, order[i].ev))
			return;
	}
}

/**
 * tcp_put() - end an engine call on a connection: owed ACK, timers, and
 * the deferred free of a slot closed meanwhile
 * @n:		stack
 * @s:		connection (busy)
 */
static void tcp_put(struct net *n, struct tcp_sock *s)
{
	if (s->state != TCP_ST_CLOSED) {
		if (s->ack_now)
			tcp_send_ack(n, s);
		tcp_sched(n, s);
	}
	if (!--s->busy && s->state == TCP_ST_CLOSED)
		tcp_slot_free(n, s);
}

/* ------------------------------------------------------------------ */
/* Input: parsing                                                      */
/* ------------------------------------------------------------------ */

/**
 * tcp_parse_options() - read MSS and window scale from a SYN's options
 * @g:		segment (fields out)
 * @p:		options
 * @len:	their length (at most 40)
 *
 * Anything malformed ends the parse; what was read so far stays.
 */
static void tcp_parse_options(struct tcp_seg *g, const uint8_t *p, size_t len)
{
	const uint8_t *v;
	struct net_cursor c;
	uint8_t kind, olen;

	net_cursor_init(&c, p, len);
	while (net_pull_u8(&c, &kind) && kind != TCP_OPT_EOL) {
		if (kind == TCP_OPT_NOP)
			continue;
		if (!net_pull_u8(&c, &olen) || olen < 2 ||
		    !(v = net_pull(&c, (size_t)olen - 2)))
			return;
		if (kind == TCP_OPT_MSS && olen == 4) {
			g->mss = net_get_be16(v);
		} else if (kind == TCP_OPT_WS && olen == 3) {
			g->has_ws = true;
			g->ws = v[0] > TCP_WSCALE_MAX ? TCP_WSCALE_MAX : v[0];
		}
	}
}

/**
 * tcp_parse() - validate a segment and pick out its fields
 * @n:		stack (checksum counter)
 * @src:	IP source (the guest)
 * @dst:	IP destination
 * @p:		TCP header and payload
 * @len:	their length
 * @g:		fields out
 *
 * Return: 1 valid, -1 malformed or bad checksum
 */
static int tcp_parse(struct net *n, uint32_t src, uint32_t dst,
		     const uint8_t *p, size_t len, struct tcp_seg *g)
{
	size_t doff;

	if (len < TCP_HLEN || len > 65535)
		return -1;
	doff = (size_t)(p[12] >> 4) * 4;
	if (doff < TCP_HLEN || doff > len)
		return -1;
	if (csum_tcpudp(src, dst, IPV4_PROTO_TCP, p, len) != 0) {
		n->stats.bad_checksum++;
		return -1;
	}
	memset(g, 0, sizeof(*g));
	g->src = src;
	g->dst = dst;
	g->sport = net_get_be16(p);
	g->dport = net_get_be16(p + 2);
	g->seq = net_get_be32(p + 4);
	g->ack = net_get_be32(p + 8);
	g->flags = p[13] & TCP_FLAGS;
	g->wnd = net_get_be16(p + 14);
	g->data = p + doff;
	g->len = (uint32_t)(len - doff);
	if (!g->sport || !g->dport)
		return -1;
	if ((g->flags & TCP_SYN) && (g->flags & (TCP_RST | TCP_FIN)))
		return -1;
	if (g->flags & TCP_SYN)
		tcp_parse_options(g, p + TCP_HLEN, doff - TCP_HLEN);
	return 1;
}

/* ------------------------------------------------------------------ */
/* Input: new connections                                              */
/* ------------------------------------------------------------------ */

/**
 * tcp_time_wait_oldest() - the TIME_WAIT connection that expires first
 * @ts:		table
 *
 * Return: connection, or NULL when none is in TIME_WAIT
 */
static struct tcp_sock *tcp_time_wait_oldest(struct tcp_state *ts)
{
	struct tcp_sock *best = NULL;
	uint32_t i;

	if (!ts->time_wait)
		return NULL;
	for (i = 0; i < ts->nslots; i++) {
		struct tcp_sock *s = &ts->socks[i];

		if (s->state == TCP_ST_TIME_WAIT && !s->busy &&
		    (!best || s->t_state < best->t_state))
			best = s;
	}
	return best;
}

/**
 * tcp_slot_alloc() - take a free slot, recycling a TIME_WAIT one if needed
 * @n:		stack
 *
 * Return: a zeroed slot (counted as used), or NULL when the table is full
 */
static struct tcp_sock *tcp_slot_alloc(struct net *n)
{
	struct tcp_state *ts = n->tcp;
	struct tcp_sock *s;

	if (ts->free_head == TCP_NIL) {
		s = tcp_time_wait_oldest(ts);
		if (!s)
			return NULL;
		tcp_close(n, s, false);
	}
	s = &ts->socks[ts->free_head];
	ts->free_head = s->hnext;
	ts->used++;
	memset(s, 0, sizeof(*s));
	s->hnext = s->heap_pos = TCP_NIL;
	s->deadline = NET_TIMER_NONE;
	s->snd.size = s->rcv.size = n->cfg.tcp_buf;
	return s;
}

/**
 * tcp_isn() - our initial sequence number for a new connection
 * @ts:		table
 * @g:		the SYN
 *
 * Return: keyed hash of the 4-tuple and a counter, or the forced test ISN
 */
static uint32_t tcp_isn(struct tcp_state *ts, const struct tcp_seg *g)
{
	if (ts->isn_forced) {
		ts->isn_forced = false;
		return ts->isn_next;
	}
	return (uint32_t)tcp_tuple_hash(ts, g->src, g->sport, g->dst, g->dport,
					++ts->isn_count);
}

/**
 * tcp_rcv_wscale() - our window scale: the smallest shift covering @buf
 * @buf:	receive buffer size
 *
 * Return: shift, at most TCP_WSCALE_MAX
 */
static uint8_t tcp_rcv_wscale(uint32_t buf)
{
	uint8_t ws = 0;

	while (ws < TCP_WSCALE_MAX && (buf >> ws) > 65535)
		ws++;
	return ws;
}

/**
 * tcp_sock_init() - fill a new slot from the guest's SYN
 * @n:		stack
 * @s:		slot from tcp_slot_alloc()
 * @g:		the SYN
 */
static void tcp_sock_init(struct net *n, struct tcp_sock *s,
			  const struct tcp_seg *g)
{
	uint32_t mss = g->mss ? g->mss : TCP_MSS_DEFAULT;

	s->pub.guest_ip = g->src;
	s->pub.guest_port = g->sport;
	s->pub.dst_ip = g->dst;
	s->pub.dst_port = g->dport;
	s->rcv_mss = (uint16_t)(n->cfg.mtu - 40);
	mss = mss < TCP_MSS_MIN ? TCP_MSS_MIN : mss;
	s->snd_mss = (uint16_t)(mss < s->rcv_mss ? mss : s->rcv_mss);
	s->ws_ok = g->has_ws;
	s->snd_wscale = s->ws_ok ? g->ws : 0;
	s->rcv_wscale = s->ws_ok ? tcp_rcv_wscale(n->cfg.tcp_buf) : 0;
	s->irs = g->seq;
	s->rcv_nxt = s->rcv_adv = g->seq + 1;
	s->iss = tcp_isn(n->tcp, g);
	s->snd_una = s->iss;
	s->snd_nxt = s->snd_max = s->iss + 1;
	s->snd_wnd = s->max_snd_wnd = g->wnd;	/* a SYN's window is unscaled */
	s->snd_wl1 = g->seq;
	s->snd_wl2 = s->iss;
	s->rto = TCP_RTO_INIT_MS;
	s->last_act = n->now_ms;
}

/**
 * tcp_syn() - a SYN for no connection: admit, ask the embedder, answer
 * @n:		stack
 * @g:		the SYN (no ACK)
 *
 * Return: 1 handled, 0 dropped (half-open table full)
 */
static int tcp_syn(struct net *n, const struct tcp_seg *g)
{
	struct tcp_state *ts = n->tcp;
	struct tcp_sock *s;

	if (ts->half_open >= n->cfg.max_half_open) {
		ts->syn_dropped++;
		net_limit(n, "tcp_half_open");
		return 0;
	}
	s = tcp_slot_alloc(n);
	if (!s) {
		n->stats.tcp_refused++;
		net_limit(n, "tcp_flows");
		tcp_rst_reply(n, g);
		return 1;
	}
	tcp_sock_init(n, s, g);
	tcp_set_state(n, s, TCP_ST_SYN_RECEIVED);
	if (!n->ops.tcp_accept(n->ud, &s->pub)) {
		n->stats.tcp_refused++;
		tcp_rst_reply(n, g);
		tcp_set_state(n, s, TCP_ST_CLOSED);
		tcp_slot_free(n, s);
		return 1;
	}
	n->stats.tcp_accepted++;
	s->known = true;
	tcp_hash_insert(n, s);
	tcp_send_synack(n, s);
	s->rtt_on = true;			/* time the handshake */
	s->rtt_seq = s->iss + 1;
	s->rtt_ts = n->now_ms;
	s->t_rtx = n->now_ms + tcp_rto_now(s);
	s->t_state = n->now_ms + TCP_HANDSHAKE_MS;
	tcp_sched(n, s);
	return 1;
}

/**
 * tcp_input_listen() - a segment that matches no connection
 * @n:		stack
 * @g:		segment
 *
 * Return: 1 handled, 0 dropped
 */
static int tcp_input_listen(struct net *n, const struct tcp_seg *g)
{
	if (g->flags & TCP_RST)
		return 1;			/* never answer a RST */
	if ((g->flags & TCP_ACK) || !(g->flags & TCP_SYN)) {
		tcp_rst_reply(n, g);
		return 1;
	}
	return tcp_syn(n, g);
}

/* ------------------------------------------------------------------ */
/* Input: synchronized states                                          */
/* ------------------------------------------------------------------ */

/**
 * tcp_rcv_space() - how many bytes from rcv_nxt on we can take
 * @s:		connection
 *
 * Return: free receive space, 0 once the guest's FIN was taken
 */
static uint32_t tcp_rcv_space(const struct tcp_sock *s)
{
	return s->fin_rcvd ? 0 : tcp_ring_space(&s->rcv);
}

/**
 * tcp_acceptable() - RFC 9293 3.10.7.4 sequence acceptability test
 * @s:		connection
 * @g:		segment
 *
 * The window is the free space, which covers every edge we advertised
 * (tcp_wnd_calc), so a guest that sent up to our edge never has its ACKs
 * refused. An empty segment may sit exactly on the right edge, as Linux
 * accepts: a guest whose window is full sends its ACKs from there, and
 * refusing them while our own buffer is full would leave both sides
 * waiting forever. With no space only seq == rcv_nxt passes (for its ACK
 * and RST; its data is trimmed).
 *
 * Return: true if the segment overlaps the receive window
 */
static bool tcp_acceptable(const struct tcp_sock *s, const struct tcp_seg *g)
{
	uint32_t wnd = tcp_rcv_space(s), off = g->seq - s->rcv_nxt;
	uint32_t slen = g->len + !!(g->flags & TCP_SYN) + !!(g->flags & TCP_FIN);

	if (!slen)
		return off <= wnd;
	if (!wnd)
		return off == 0;
	return off < wnd || off + slen - 1 < wnd;
}

/**
 * tcp_input_rst() - an acceptable RST (RFC 5961 3.2)
 * @n:		stack
 * @s:		connection
 * @g:		segment
 */
static void tcp_input_rst(struct net *n, struct tcp_sock *s,
			  const struct tcp_seg *g)
{
	if (g->seq != s->rcv_nxt) {
		s->ack_now = true;		/* challenge ACK */
		return;
	}
	tcp_log(n, s, "reset by guest");
	tcp_close(n, s, true);
}

/**
 * tcp_cc_on_ack() - congestion window after new data is acknowledged
 * @n:		stack
 * @s:		connection (snd_una already advanced)
 * @acked:	bytes newly acknowledged
 */
static void tcp_cc_on_ack(struct net *n, struct tcp_sock *s, uint32_t acked)
{
	if (s->in_recovery) {
		if (SEQ_GE(s->snd_una, s->recover)) {
			s->in_recovery = false;	/* full ACK */
			s->cwnd = s->ssthresh;
		} else {			/* partial ACK: next hole */
			s->cwnd = s->cwnd > acked ? s->cwnd - acked : 0;
			s->cwnd += s->snd_mss;
			tcp_retransmit_head(n, s);
		}
		return;
	}
	if (s->cwnd < s->ssthresh)
		s->cwnd += acked < s->snd_mss ? acked : s->snd_mss;
	else
		s->cwnd += (uint32_t)s->snd_mss * s->snd_mss / s->cwnd + 1;
	if (s->cwnd > TCP_CWND_MAX)
		s->cwnd = TCP_CWND_MAX;
}

/**
 * tcp_ack_advance() - the guest acknowledged new sequence space
 * @n:		stack
 * @s:		connection
 * @ack:	its acknowledgement number, after snd_una, at most snd_max
 */
static void tcp_ack_advance(struct net *n, struct tcp_sock *s, uint32_t ack)
{
	uint32_t acked = ack - s->snd_una, data = acked;

	if (s->fin_sent && ack == s->fin_seq + 1)
		data--;				/* our FIN */
	data = data < s->snd.len ? data : s->snd.len;
	tcp_ring_consume(&s->snd, data);
	s->snd_una = ack;
	if (SEQ_LT(s->snd_nxt, ack))
		s->snd_nxt = ack;		/* a window probe was taken */
	tcp_rtt_check(n, s, ack);
	tcp_cc_on_ack(n, s, acked);
	s->retries = s->backoff = s->dupacks = 0;
	s->last_act = n->now_ms;
	s->t_rtx = 0;				/* re-armed by tcp_output() */
	if (data && (s->write_blocked || !s->snd.len)) {
		s->write_blocked = false;
		s->ev |= TCP_EVB_WRITABLE;
	}
}

/**
 * tcp_loss_ssthresh() - ssthresh after a loss: half the flight, at least
 * two segments (RFC 5681 (4))
 * @s:		connection
 */
static void tcp_loss_ssthresh(struct tcp_sock *s)
{
	uint32_t flight = s->snd_max - s->snd_una;

	s->ssthresh = flight / 2 > 2u * s->snd_mss ? flight / 2 : 2u * s->snd_mss;
}

/**
 * tcp_dupack() - a duplicate ACK: fast retransmit on the third (RFC 5681)
 * @n:		stack
 * @s:		connection
 */
static void tcp_dupack(struct net *n, struct tcp_sock *s)
{
	if (s->in_recovery) {
		s->cwnd += s->snd_mss;		/* a segment left the network */
		return;
	}
	if (++s->dupacks != 3)
		return;
	tcp_loss_ssthresh(s);
	s->cwnd = s->ssthresh + 3u * s->snd_mss;
	s->recover = s->snd_max;
	s->in_recovery = true;
	tcp_retransmit_head(n, s);
}

/**
 * tcp_update_window() - take the guest's window if the segment is newer
 * than the last one that set it (RFC 9293 3.10.7.4, SND.WL1/WL2)
 * @n:		stack
 * @s:		connection
 * @g:		segment
 */
static void tcp_update_window(struct net *n, struct tcp_sock *s,
			      const struct tcp_seg *g)
{
	uint32_t wnd = (uint32_t)g->wnd << s->snd_wscale;

	if (!SEQ_LT(s->snd_wl1, g->seq) &&
	    !(s->snd_wl1 == g->seq && SEQ_LE(s->snd_wl2, g->ack)))
		return;
	s->snd_wl1 = g->seq;
	s->snd_wl2 = g->ack;
	if (wnd == s->snd_wnd)
		return;
	s->last_act = n->now_ms;
	if (!s->snd_wnd && s->persist) {	/* window opened: probes end */
		s->persist = false;
		s->t_rtx = 0;
		s->backoff = s->retries = 0;
	}
	s->snd_wnd = wnd;
	if (wnd > s->max_snd_wnd)
		s->max_snd_wnd = wnd;
}

/**
 * tcp_ack() - process the ACK field of an acceptable segment
 * @n:		stack
 * @s:		connection
 * @g:		segment (ACK set)
 *
 * Return: false if the segment must be dropped
 */
static bool tcp_ack(struct net *n, struct tcp_sock *s, const struct tcp_seg *g)
{
	if (SEQ_GT(g->ack, s->snd_max) ||
	    SEQ_LT(g->ack, s->snd_una - s->max_snd_wnd)) {
		s->ack_now = true;		/* RFC 5961 5.2 */
		return false;
	}
	if (s->persist)
		s->retries = 0;			/* the guest answers probes */
	if (SEQ_GT(g->ack, s->snd_una))
		tcp_ack_advance(n, s, g->ack);
	else if (g->ack == s->snd_una && !g->len && !(g->flags & TCP_FIN) &&
		 ((uint32_t)g->wnd << s->snd_wscale) == s->snd_wnd &&
		 SEQ_GT(s->snd_nxt, s->snd_una))
		tcp_dupack(n, s);
	tcp_update_window(n, s, g);
	return true;
}

/**
 * tcp_our_fin_acked() - state changes once our FIN is acknowledged
 * @n:		stack
 * @s:		connection
 *
 * Return: false if the connection closed
 */
static bool tcp_our_fin_acked(struct net *n, struct tcp_sock *s)
{
	if (!s->fin_sent || s->snd_una != s->fin_seq + 1)
		return true;
	switch (s->state) {
	case TCP_ST_FIN_WAIT_1:
		tcp_set_state(n, s, TCP_ST_FIN_WAIT_2);
		tcp_release(n, &s->snd);
		return true;
	case TCP_ST_CLOSING:
		tcp_enter_time_wait(n, s);
		return true;
	case TCP_ST_LAST_ACK:
		if (s->rcv.len) {		/* unread bytes: hold the slot */
			tcp_enter_time_wait(n, s);
			return true;
		}
		tcp_close(n, s, false);
		return false;
	default:
		return true;
	}
}

/**
 * tcp_rcv_commit() - in-order bytes now end at @upto: commit them and any
 * out-of-order ranges they reach
 * @n:		stack
 * @s:		connection
 * @upto:	one past the last in-order byte stored
 */
static void tcp_rcv_commit(struct net *n, struct tcp_sock *s, uint32_t upto)
{
	uint32_t nxt = tcp_ooo_take(&s->ooo, s->rcv_nxt, upto);

	tcp_ring_commit(&s->rcv, nxt - s->rcv_nxt);
	s->rcv_nxt = nxt;
	s->last_act = n->now_ms;
	s->ev |= TCP_EVB_READABLE;
}

/**
 * tcp_data() - store a segment's payload: trim, place, commit
 * @n:		stack
 * @s:		connection (receiving)
 * @g:		segment
 *
 * Return: false if the connection closed (no memory)
 */
static bool tcp_data(struct net *n, struct tcp_sock *s, const struct tcp_seg *g)
{
	uint32_t seq = g->seq, len = g->len, space, off;
	const uint8_t *p = g->data;

	if (!len)
		return true;
	s->ack_now = true;
	if (SEQ_LT(seq, s->rcv_nxt)) {		/* already have the front */
		uint32_t d = s->rcv_nxt - seq;

		if (d >= len)
			return true;
		p += d;
		len -= d;
		seq = s->rcv_nxt;
	}
	off = seq - s->rcv_nxt;
	space = tcp_rcv_space(s);
	if (off >= space)
		return true;
	len = len < space - off ? len : space - off;	/* beyond the buffer */
	if (tcp_reserve(n, &s->rcv) < 0) {
		tcp_reset(n, s, "no buffer for the guest's bytes (VM bound or memory)");
		return false;
	}
	if (off) {				/* beyond a hole */
		if (tcp_ooo_add(&s->ooo, s->rcv_nxt, seq, seq + len))
			tcp_ring_put(&s->rcv, off, p, len);
		return true;
	}
	tcp_ring_put(&s->rcv, 0, p, len);
	tcp_rcv_commit(n, s, seq + len);
	return true;
}

/**
 * tcp_fin() - note the guest's FIN; take it once everything before it is in
 * @n:		stack
 * @s:		connection (receiving)
 * @g:		segment
 */
static void tcp_fin(struct net *n, struct tcp_sock *s, const struct tcp_seg *g)
{
	uint32_t fseq = g->seq + g->len;

	if ((g->flags & TCP_FIN) && SEQ_GE(fseq, s->rcv_nxt) &&
	    fseq - s->rcv_nxt <= tcp_ring_space(&s->rcv)) {
		s->fin_held = true;
		s->fin_held_seq = fseq;
		s->ack_now = true;
	}
	if (!s->fin_held || s->fin_held_seq != s->rcv_nxt) {
		if (s->fin_held && SEQ_GT(s->rcv_nxt, s->fin_held_seq))
			s->fin_held = false;	/* data went past it: bogus */
		return;
	}
	s->fin_held = false;
	s->fin_rcvd = true;
	s->rcv_nxt++;
	s->ack_now = true;
	s->last_act = n->now_ms;
	s->ev |= TCP_EVB_FIN;
	if (s->state == TCP_ST_ESTABLISHED)
		tcp_set_state(n, s, TCP_ST_CLOSE_WAIT);
	else if (s->state == TCP_ST_FIN_WAIT_1)
		tcp_set_state(n, s, TCP_ST_CLOSING);
	else if (s->state == TCP_ST_FIN_WAIT_2)
		tcp_enter_time_wait(n, s);
}

/**
 * tcp_receiving() - whether the guest may still send data in this state
 * @s:		connection
 *
 * Return: true in ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2
 */
static bool tcp_receiving(const struct tcp_sock *s)
{
	return s->state == TCP_ST_ESTABLISHED || s->state == TCP_ST_FIN_WAIT_1 ||
	       s->state == TCP_ST_FIN_WAIT_2;
}

/**
 * tcp_input_sync() - a segment in ESTABLISHED or a later state before
 * TIME_WAIT (RFC 9293 3.10.7.4, in its order)
 * @n:		stack
 * @s:		connection
 * @g:		segment
 */
static void tcp_input_sync(struct net *n, struct tcp_sock *s,
			   const struct tcp_seg *g)
{
	if (!tcp_acceptable(s, g)) {
		if (!(g->flags & TCP_RST))
			s->ack_now = true;
		return;
	}
	if (g->flags & TCP_RST) {
		tcp_input_rst(n, s, g);
		return;
	}
	if (g->flags & TCP_SYN) {
		s->ack_now = true;		/* RFC 5961 4.2 challenge ACK */
		return;
	}
	if (!(g->flags & TCP_ACK) || !tcp_ack(n, s, g) ||
	    !tcp_our_fin_acked(n, s))
		return;
	if (tcp_receiving(s)) {
		if (!tcp_data(n, s, g))
			return;
		tcp_fin(n, s, g);
	} else if (g->len || (g->flags & TCP_FIN)) {
		s->ack_now = true;
	}
	tcp_output(n, s);
	tcp_flush_events(n, s);
}

/**
 * tcp_establish() - the guest acknowledged our SYN
 * @n:		stack
 * @s:		connection in SYN_RECEIVED
 * @g:		the acknowledging segment
 *
 * Return: false if the connection closed from the ESTABLISHED event
 */
static bool tcp_establish(struct net *n, struct tcp_sock *s,
			  const struct tcp_seg *g)
{
	tcp_set_state(n, s, s->fin_queued ? TCP_ST_FIN_WAIT_1 : TCP_ST_ESTABLISHED);
	tcp_rtt_check(n, s, g->ack);
	s->snd_una = g->ack;
	s->snd_wnd = (uint32_t)g->wnd << s->snd_wscale;
	s->max_snd_wnd = s->snd_wnd > s->max_snd_wnd ? s->snd_wnd : s->max_snd_wnd;
	s->snd_wl1 = g->seq;
	s->snd_wl2 = g->ack;
	s->cwnd = TCP_INIT_CWND * (uint32_t)s->snd_mss;
	s->ssthresh = TCP_CWND_MAX;
	s->retries = s->backoff = 0;
	s->t_rtx = s->t_state = 0;
	s->last_act = n->now_ms;
	return tcp_emit(n, s, TCP_EV_ESTABLISHED);
}

/**
 * tcp_input_synrcvd() - a segment while we wait for the handshake's ACK
 * @n:		stack
 * @s:		connection in SYN_RECEIVED
 * @g:		segment
 *
 * Return: true if the connection was closed for a new SYN to reuse
 */
static bool tcp_input_synrcvd(struct net *n, struct tcp_sock *s,
			      const struct tcp_seg *g)
{
	if (g->flags & TCP_RST) {
		if (tcp_acceptable(s, g))
			tcp_close(n, s, true);
		return false;
	}
	if (g->flags & TCP_SYN) {
		if (g->seq == s->irs && !(g->flags & TCP_ACK)) {
			tcp_send_synack(n, s);	/* our SYN-ACK was lost */
			n->stats.tcp_retransmits++;
			s->rtt_on = false;
			return false;
		}
		if (g->flags & TCP_ACK)
			return false;
		tcp_close(n, s, true);		/* a new attempt replaces it */
		return true;
	}
	if (!(g->flags & TCP_ACK))
		return false;
	if (g->ack != s->iss + 1) {
		tcp_rst_reply(n, g);
		return false;
	}
	if (!tcp_acceptable(s, g))
		return false;
	if (tcp_establish(n, s, g))
		tcp_input_sync(n, s, g);
	return false;
}

/**
 * tcp_input_time_wait() - a segment in TIME_WAIT
 * @n:		stack
 * @s:		connection
 * @g:		segment
 *
 * A retransmitted FIN is acknowledged again and restarts the wait; a SYN
 * beyond our rcv_nxt may reuse the 4-tuple at once (RFC 9293 3.10.7.4);
 * RSTs are ignored (RFC 1337).
 *
 * Return: true if the connection was closed for the SYN to reuse
 */
static bool tcp_input_time_wait(struct net *n, struct tcp_sock *s,
				const struct tcp_seg *g)
{
	if (g->flags & TCP_RST)
		return false;
	if ((g->flags & TCP_SYN) && !(g->flags & TCP_ACK) &&
	    SEQ_GT(g->seq, s->rcv_nxt)) {
		tcp_close(n, s, false);
		return true;
	}
	if (g->flags & TCP_FIN)
		s->t_state = n->now_ms + TCP_TIME_WAIT_MS;
	if (g->flags & (TCP_FIN | TCP_SYN) || g->len)
		s->ack_now = true;
	return false;
}

/**
 * tcp_segment() - dispatch a segment by its connection's state
 * @n:		stack
 * @s:		connection (busy)
 * @g:		segment
 *
 * Return: true if the connection was closed for a new SYN to reuse
 */
static bool tcp_segment(struct net *n, struct tcp_sock *s,
			const struct tcp_seg *g)
{
	switch (s->state) {
	case TCP_ST_SYN_RECEIVED:
		return tcp_input_synrcvd(n, s, g);
	case TCP_ST_TIME_WAIT:
		return tcp_input_time_wait(n, s, g);
	default:
		tcp_input_sync(n, s, g);
		return false;
	}
}

/* ------------------------------------------------------------------ */
/* Timer expiries                                                      */
/* ------------------------------------------------------------------ */

/**
 * tcp_synack_expire() - resend the SYN-ACK, a few times
 * @n:		stack
 * @s:		connection in SYN_RECEIVED
 */
static void tcp_synack_expire(struct net *n, struct tcp_sock *s)
{
	s->rtt_on = false;
	if (s->retries >= TCP_SYNACK_RETRIES) {
		s->t_rtx = 0;			/* the handshake timeout decides */
		return;
	}
	s->retries++;
	s->backoff++;
	tcp_send_synack(n, s);
	n->stats.tcp_retransmits++;
	s->t_rtx = n->now_ms + tcp_rto_now(s);
}

/**
 * tcp_persist_expire() - send a one-byte window probe
 * @n:		stack
 * @s:		connection with data waiting on a zero window
 */
static void tcp_persist_expire(struct net *n, struct tcp_sock *s)
{
	if (s->retries >= TCP_MAX_RETRIES) {
		tcp_reset(n, s, "window probes unanswered");
		return;
	}
	s->retries++;
	if (s->backoff < TCP_BACKOFF_MAX)
		s->backoff++;
	if (s->snd.len) {
		tcp_send_seg(n, s, s->snd_una, 0, 1);
		s->snd_max = SEQ_MAX(s->snd_max, s->snd_una + 1);
	}
	s->t_rtx = n->now_ms + tcp_rto_now(s);
}

/**
 * tcp_rtx_expire() - retransmission timeout: back off, resend from snd_una
 * @n:		stack
 * @s:		connection with data or FIN in flight
 */
static void tcp_rtx_expire(struct net *n, struct tcp_sock *s)
{
	if (s->retries >= TCP_MAX_RETRIES) {
		tcp_reset(n, s, "retransmissions unanswered");
		return;
	}
	s->retries++;
	if (s->backoff < TCP_BACKOFF_MAX)
		s->backoff++;
	n->stats.tcp_retransmits++;
	tcp_loss_ssthresh(s);
	s->cwnd = s->snd_mss;
	s->in_recovery = false;
	s->dupacks = 0;
	s->rtt_on = false;			/* Karn */
	s->snd_nxt = s->snd_una;		/* go back */
	s->t_rtx = 0;
	tcp_output(n, s);
}

/**
 * tcp_state_expire() - the handshake or TIME_WAIT deadline
 * @n:		stack
 * @s:		connection
 *
 * TIME_WAIT is extended while the embedder still has bytes to read and
 * keeps reading (at most TCP_IDLE_MS without a read), so a graceful close
 * never drops data the guest sent.
 */
static void tcp_state_expire(struct net *n, struct tcp_sock *s)
{
	s->t_state = 0;
	if (s->starved) {
		tcp_reset(n, s, "no send buffer (VM bound or memory)");
	} else if (s->state == TCP_ST_SYN_RECEIVED) {
		tcp_reset(n, s, "handshake timeout");
	} else if (s->state == TCP_ST_TIME_WAIT) {
		if (s->rcv.len && n->now_ms - s->last_act < TCP_IDLE_MS)
			s->t_state = n->now_ms + TCP_TIME_WAIT_MS;
		else
			tcp_close(n, s, false);
	}
}

/**
 * tcp_conn_timer() - run a connection's due timers
 * @n:		stack (now_ms)
 * @s:		connection (busy)
 */
static void tcp_conn_timer(struct net *n, struct tcp_sock *s)
{
	uint64_t now = n->now_ms;

	if (s->t_state && s->t_state <= now) {
		tcp_state_expire(n, s);
		if (s->state == TCP_ST_CLOSED)
			return;
	}
	if (tcp_idle_applies(s) && s->last_act + tcp_idle_limit(s) <= now) {
		tcp_reset(n, s, s->state == TCP_ST_FIN_WAIT_2 ?
			  "no FIN from the guest" : "idle timeout");
		return;
	}
	if (!s->t_rtx || s->t_rtx > now)
		return;
	if (s->state == TCP_ST_SYN_RECEIVED)
		tcp_synack_expire(n, s);
	else if (s->persist)
		tcp_persist_expire(n, s);
	else
		tcp_rtx_expire(n, s);
}

/* ------------------------------------------------------------------ */
/* Interface to net.c / ipv4.c                                         */
/* ------------------------------------------------------------------ */

/**
 * tcp_seed() - draw the stack's hash key
 * @key:	128 bits out
 *
 * Return: 0, or -EIO when no randomness is available
 */
static int tcp_seed(uint64_t key[2])
{
	size_t got = 0;
	ssize_t r;
	int fd;

	while (got < 16) {
		r = getrandom((uint8_t *)key + got, 16 - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	if (got == 16)
		return 0;
	fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -EIO;
	r = read(fd, key, 16);
	close(fd);
	return r == 16 ? 0 : -EIO;
}

/**
 * tcp_init() - allocate the connection table for a stack
 * @n:		stack (cfg set)
 *
 * Return: 0, -EINVAL (max_tcp or tcp_buf beyond their ceilings), -ENOMEM,
 * or -EIO (no randomness for the hash key)
 */
int tcp_init(struct net *n)
{
	uint32_t i, nb = 16, max = n->cfg.max_tcp;
	struct tcp_state *ts;

	if (!max || max > TCP_MAX_CONNS || !n->cfg.tcp_buf ||
	    n->cfg.tcp_buf > TCP_BUF_MAX)
		return -EINVAL;
	while (nb < 2 * max)
		nb *= 2;
	ts = calloc(1, sizeof(*ts));
	if (!ts)
		return -ENOMEM;
	ts->socks = calloc(max, sizeof(*ts->socks));
	ts->bucket = malloc(nb * sizeof(*ts->bucket));
	ts->heap.idx = malloc(max * sizeof(*ts->heap.idx));
	n->tcp = ts;
	if (!ts->socks || !ts->bucket || !ts->heap.idx) {
		tcp_free(n);
		return -ENOMEM;
	}
	if (tcp_seed(ts->key) < 0) {
		tcp_free(n);
		return -EIO;
	}
	ts->mask = nb - 1;
	ts->nslots = max;
	for (i = 0; i < nb; i++)
		ts->bucket[i] = TCP_NIL;
	for (i = 0; i < max; i++)
		ts->socks[i].hnext = i + 1 < max ? i + 1 : TCP_NIL;
	ts->free_head = 0;
	return 0;
}

/**
 * tcp_free() - release the table and every buffer; no events are sent
 * @n:		stack
 */
void tcp_free(struct net *n)
{
	struct tcp_state *ts = n->tcp;
	uint32_t i;

	if (!ts)
		return;
	for (i = 0; ts->socks && i < ts->nslots; i++) {
		tcp_ring_release(&ts->socks[i].snd);
		tcp_ring_release(&ts->socks[i].rcv);
	}
	free(ts->socks);
	free(ts->bucket);
	free(ts->heap.idx);
	free(ts);
	n->tcp = NULL;
}

/**
 * tcp_input() - one segment from the guest
 * @n:		stack
 * @src:	IP source (the guest)
 * @dst:	IP destination (any unicast address)
 * @seg:	TCP header and payload
 * @len:	their length
 *
 * Return: 1 handled, 0 dropped (half-open table full), -1 malformed
 */
int tcp_input(struct net *n, uint32_t src, uint32_t dst,
	      const uint8_t *seg, size_t len)
{
	struct tcp_sock *s;
	struct tcp_seg g;
	bool again;

	if (tcp_parse(n, src, dst, seg, len, &g) < 0)
		return -1;
	s = tcp_lookup(n, &g);
	if (!s)
		return tcp_input_listen(n, &g);
	s->busy++;
	again = tcp_segment(n, s, &g);
	tcp_put(n, s);
	return again ? tcp_input_listen(n, &g) : 1;
}

/**
 * tcp_timer() - run every timer due at @now_ms
 * @n:		stack
 * @now_ms:	current time (also in n->now_ms)
 */
void tcp_timer(struct net *n, uint64_t now_ms)
{
	struct tcp_state *ts = n->tcp;
	uint32_t budget = 2 * ts->nslots + 16;	/* every expiry moves a deadline */

	while (ts->heap.len && budget--) {
		struct tcp_sock *s = &ts->socks[ts->heap.idx[0]];

		if (s->deadline > now_ms)
			break;
		s->busy++;
		tcp_conn_timer(n, s);
		tcp_put(n, s);
	}
}

/**
 * tcp_next_timer() - the earliest deadline of any connection
 * @n:		stack
 *
 * Return: absolute ms, or NET_TIMER_NONE
 */
uint64_t tcp_next_timer(const struct net *n)
{
	const struct tcp_state *ts = n->tcp;

	if (!ts || !ts->heap.len)
		return NET_TIMER_NONE;
	return ts->socks[ts->heap.idx[0]].deadline;
}

/* ------------------------------------------------------------------ */
/* Interface to the embedder                                           */
/* ------------------------------------------------------------------ */

/**
 * tcp_live() - whether the embedder may act on a connection
 * @s:		connection
 *
 * Return: accepted and not closed
 */
static bool tcp_live(const struct tcp_sock *s)
{
	return s->known && s->state != TCP_ST_CLOSED;
}

/**
 * tcp_readable() - bytes waiting for tcp_read()
 * @c:		connection
 *
 * Return: count
 */
size_t tcp_readable(const struct tcp_conn *c)
{
	const struct tcp_sock *s = tcp_sock_of(c);

	return tcp_live(s) ? s->rcv.len : 0;
}

/**
 * tcp_wnd_update_due() - whether reading opened the window enough to tell
 * the guest: it is receiving, its window is below half the maximum, and
 * the window would move (by at least the SWS threshold)
 * @s:		connection
 *
 * Return: true to send a window update
 */
static bool tcp_wnd_update_due(const struct tcp_sock *s)
{
	uint32_t cur = tcp_wnd_adv(s);

	if (!tcp_receiving(s) || s->fin_rcvd)
		return false;
	return cur < tcp_wnd_max(s) / 2 && tcp_wnd_calc(s) > cur;
}

/**
 * tcp_read() - take bytes the guest sent
 * @n:		stack
 * @c:		connection
 * @buf:	destination
 * @len:	its size
 *
 * Return: bytes copied (0 when none are waiting)
 */
size_t tcp_read(struct net *n, struct tcp_conn *c, uint8_t *buf, size_t len)
{
	struct tcp_sock *s = tcp_sock_of(c);
	uint32_t k;

	if (!tcp_live(s) || !s->rcv.len)
		return 0;
	k = len < s->rcv.len ? (uint32_t)len : s->rcv.len;
	tcp_ring_get(&s->rcv, 0, buf, k);
	tcp_ring_consume(&s->rcv, k);
	s->last_act = n->now_ms;		/* the embedder's progress counts */
	if (s->fin_rcvd && !s->rcv.len)
		tcp_release(n, &s->rcv);	/* nothing more will come */
	if (tcp_wnd_update_due(s))
		tcp_send_ack(n, s);
	tcp_sched(n, s);
	return k;
}

/**
 * tcp_may_write() - whether tcp_write() takes bytes in this state
 * @s:		connection
 *
 * Return: true in ESTABLISHED and CLOSE_WAIT before tcp_shutdown()
 */
static bool tcp_may_write(const struct tcp_sock *s)
{
	return tcp_live(s) && !s->fin_queued &&
	       (s->state == TCP_ST_ESTABLISHED || s->state == TCP_ST_CLOSE_WAIT);
}

/**
 * tcp_writable() - room in the send buffer
 * @c:		connection
 *
 * Return: bytes tcp_write() would take now
 */
size_t tcp_writable(const struct tcp_conn *c)
{
	const struct tcp_sock *s = tcp_sock_of(c);

	return tcp_may_write(s) ? tcp_ring_space(&s->snd) : 0;
}

/**
 * tcp_write() - queue bytes for the guest and send what the window allows
 * @n:		stack
 * @c:		connection
 * @p:		bytes
 * @len:	count
 *
 * A short count means the buffer is full: TCP_EV_WRITABLE follows when
 * the guest acknowledges data.
 *
 * Return: bytes taken
 */
size_t tcp_write(struct net *n, struct tcp_conn *c, const uint8_t *p,
		 size_t len)
{
	struct tcp_sock *s = tcp_sock_of(c);
	uint32_t room, k;

	if (!tcp_may_write(s))
		return 0;
	room = tcp_ring_space(&s->snd);
	k = len < room ? (uint32_t)len : room;
	if (k < len)
		s->write_blocked = true;
	if (!k)
		return 0;
	if (tcp_reserve(n, &s->snd) < 0) {
		/* no buffer: the flow is lost, reset from the timer (not from
		 * inside the embedder's write) */
		s->write_blocked = s->starved = true;
		s->t_state = n->now_ms + 1;	/* 0 would mean no deadline */
		tcp_sched(n, s);
		return 0;
	}
	tcp_ring_put(&s->snd, 0, p, k);
	tcp_ring_commit(&s->snd, k);
	tcp_output(n, s);
	tcp_sched(n, s);
	return k;
}

/**
 * tcp_shutdown() - no more data from us: FIN after what is queued
 * @n:		stack
 * @c:		connection
 */
void tcp_shutdown(struct net *n, struct tcp_conn *c)
{
	struct tcp_sock *s = tcp_sock_of(c);

	if (!tcp_live(s) || s->fin_queued)
		return;
	if (s->state == TCP_ST_ESTABLISHED)
		tcp_set_state(n, s, TCP_ST_FIN_WAIT_1);
	else if (s->state == TCP_ST_CLOSE_WAIT)
		tcp_set_state(n, s, TCP_ST_LAST_ACK);
	else if (s->state != TCP_ST_SYN_RECEIVED)
		return;
	s->fin_queued = true;			/* SYN_RECEIVED: sent once established */
	tcp_output(n, s);
	tcp_sched(n, s);
}

/**
 * tcp_abort() - reset a connection; TCP_EV_CLOSED follows at once
 * @n:		stack
 * @c:		connection
 */
void tcp_abort(struct net *n, struct tcp_conn *c)
{
	struct tcp_sock *s = tcp_sock_of(c);

	if (!tcp_live(s))
		return;
	if (s->state != TCP_ST_TIME_WAIT)
		tcp_send_rst(n, s);
	tcp_close(n, s, false);
}

/**
 * tcp_state_name() - a connection's state, as in RFC 9293
 * @c:		connection
 *
 * Return: static string, e.g. "ESTABLISHED"
 */
const char *tcp_state_name(const struct tcp_conn *c)
{
	const struct tcp_sock *s = tcp_sock_of(c);

	return s->state < TCP_ST_COUNT ? tcp_st_name[s->state] : "?";
}

/**
 * tcp_conn_info() - a snapshot of a connection
 * @c:		connection
 * @out:	filled in
 */
void tcp_conn_info(const struct tcp_conn *c, struct tcp_conn_info *out)
{
	const struct tcp_sock *s = tcp_sock_of(c);

	memset(out, 0, sizeof(*out));
	out->state = tcp_state_name(c);
	out->iss = s->iss;
	out->irs = s->irs;
	out->snd_una = s->snd_una;
	out->snd_nxt = s->snd_nxt;
	out->snd_wnd = s->snd_wnd;
	out->rcv_nxt = s->rcv_nxt;
	out->rcv_wnd = tcp_wnd_adv(s);
	out->mss = s->snd_mss;
	out->snd_wscale = s->snd_wscale;
	out->rcv_wscale = s->rcv_wscale;
	out->ws_ok = s->ws_ok;
	out->rto_ms = (uint32_t)tcp_rto_now(s);
	out->srtt_ms = s->srtt8 / 8;
	out->retries = s->retries;
	out->send_queued = s->snd.len;
	out->recv_queued = s->rcv.len;
	out->ooo_ranges = s->ooo.n;
}

/**
 * tcp_gauges() - what the connection table holds now
 * @n:		stack
 * @out:	filled in
 */
void tcp_gauges(const struct net *n, struct tcp_gauges *out)
{
	const struct tcp_state *ts = n->tcp;

	memset(out, 0, sizeof(*out));
	if (!ts)
		return;
	out->conns = ts->used;
	out->half_open = ts->half_open;
	out->time_wait = ts->time_wait;
	out->buf_bytes = ts->buf_bytes;
	out->syn_dropped = ts->syn_dropped;
}

/**
 * tcp_test_isn() - make the next accepted connection use @isn (tests only)
 * @n:		stack
 * @isn:	our initial sequence number for it
 */
void tcp_test_isn(struct net *n, uint32_t isn)
{
	n->tcp->isn_forced = true;
	n->tcp->isn_next = isn;
}
