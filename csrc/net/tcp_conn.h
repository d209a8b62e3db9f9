/* SPDX-License-Identifier: MIT */
/* tcp_conn.h - one TCP connection's state, shared by the tcp_* files only */
#ifndef GONDOLIN_NET_TCP_CONN_H
#define GONDOLIN_NET_TCP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/tcp.h"

#define TCP_OOO_MAX	8		/* out-of-order ranges kept per connection */
#define TCP_NIL		UINT32_MAX	/* "no slot" in index links */

/*
 * Serial-number arithmetic (RFC 1982) on 32-bit sequence numbers: @a_ is
 * before @b_ when the forward distance from @b_ to @a_, taken as signed,
 * is negative. Correct across wrap-around for distances below 2^31.
 */
#define SEQ_LT(a_, b_)	((int32_t)((uint32_t)(a_) - (uint32_t)(b_)) < 0)
#define SEQ_LE(a_, b_)	((int32_t)((uint32_t)(a_) - (uint32_t)(b_)) <= 0)
#define SEQ_GT(a_, b_)	SEQ_LT(b_, a_)
#define SEQ_GE(a_, b_)	SEQ_LE(b_, a_)
#define SEQ_MAX(a_, b_)	(SEQ_GT(a_, b_) ? (a_) : (b_))

/* Events owed to the embedder (struct tcp_sock.ev), in delivery order */
#define TCP_EVB_WRITABLE	0x01
#define TCP_EVB_READABLE	0x02
#define TCP_EVB_FIN		0x04

/* Connection states (RFC 9293 3.3.2); we are always the passive side. */
enum tcp_st {
	TCP_ST_CLOSED,		/* free slot, or closed and waiting to be freed */
	TCP_ST_SYN_RECEIVED,
	TCP_ST_ESTABLISHED,
	TCP_ST_FIN_WAIT_1,
	TCP_ST_FIN_WAIT_2,
	TCP_ST_CLOSE_WAIT,
	TCP_ST_CLOSING,
	TCP_ST_LAST_ACK,
	TCP_ST_TIME_WAIT,
	TCP_ST_COUNT,
};

/**
 * struct tcp_ring - a byte ring of fixed size, allocated on first use
 * @buf:	storage (@size bytes) or NULL until needed
 * @size:	capacity
 * @head:	offset of the first committed byte
 * @len:	committed bytes (readable, or written and unacknowledged)
 *
 * Bytes past the committed ones (offsets @len .. @size - 1 from @head) are
 * scratch space: the receive side stores out-of-order data there.
 */
struct tcp_ring {
	uint8_t *buf;
	uint32_t size, head, len;
};

/**
 * struct tcp_ooo - out-of-order ranges received beyond rcv_nxt
 * @r:		sorted, disjoint, non-adjacent [start, end) sequence ranges
 * @n:		ranges in use
 */
struct tcp_ooo {
	struct {
		uint32_t start, end;
	} r[TCP_OOO_MAX];
	unsigned n;
};

/**
 * struct tcp_sock - one connection slot
 * @pub:	what the embedder sees (first member: tcp_sock_of() casts)
 * @hnext:	next slot in the hash chain, or in the free list
 * @heap_pos:	position in the timer heap, or TCP_NIL
 * @deadline:	earliest armed timer (heap key), or NET_TIMER_NONE
 * @state:	enum tcp_st
 * @busy:	engine calls on this slot in progress (defers the free)
 * @ev:		events owed to the embedder (TCP_EVB_*), sent in order
 * @known:	tcp_accept() said yes: events are delivered, API calls work
 * @ws_ok:	both sides sent a window scale option
 * @fin_queued:	tcp_shutdown() called: FIN goes after the queued data
 * @fin_sent:	our FIN went out at least once (at @fin_seq)
 * @fin_rcvd:	the guest's FIN was taken in order
 * @fin_held:	the guest sent a FIN at @fin_held_seq beyond a hole
 * @ack_now:	an ACK is owed to the guest (sent once per input)
 * @write_blocked: a tcp_write() came up short: send TCP_EV_WRITABLE
 * @starved:	the send buffer could not be had: reset at the next timer
 * @persist:	@t_rtx is the zero-window probe timer, not retransmission
 * @rtt_on:	timing the segment that ends at @rtt_seq (Karn: new data only)
 * @rtt_valid:	@srtt8 and @rttvar8 hold a measurement
 * @in_recovery: fast recovery (RFC 6582) until @recover is acknowledged
 * @snd_wscale:	shift applied to the guest's window field
 * @rcv_wscale:	shift the guest applies to ours
 * @dupacks:	duplicate ACKs in a row
 * @retries:	timer expiries without an answer (give up at the limit)
 * @backoff:	exponent of the current timer backoff
 * @snd_mss:	largest payload we send
 * @rcv_mss:	largest payload we told the guest to send
 * @iss, @snd_una, @snd_nxt, @snd_max, @fin_seq: send sequence space;
 *		@snd_max is the highest sequence number ever sent (+1)
 * @snd_wnd, @max_snd_wnd: the guest's window (bytes), largest seen
 * @snd_wl1, @snd_wl2: segment seq/ack of the last window update
 * @cwnd, @ssthresh, @recover: congestion control (RFC 5681, 6582)
 * @irs, @rcv_nxt: receive sequence space
 * @rcv_adv:	farthest right edge we ever advertised (never beyond the
 *		free space: see tcp_wnd_calc())
 * @fin_held_seq: sequence number of a FIN held beyond a hole
 * @srtt8, @rttvar8: RTT estimate (RFC 6298), milliseconds times 8
 * @rto:	retransmission timeout, ms (before backoff)
 * @rtt_seq, @rtt_ts: the timed segment's end and when it was sent
 * @t_rtx:	retransmission, SYN-ACK or persist deadline, 0 if off
 * @t_state:	handshake or TIME_WAIT deadline, 0 if off
 * @last_act:	last progress: either direction, or a tcp_read() (idle)
 * @snd, @rcv:	send and receive buffers, cfg.tcp_buf bytes each
 * @ooo:	out-of-order ranges, whose bytes sit in @rcv's scratch space
 */
struct tcp_sock {
	struct tcp_conn pub;
	uint32_t hnext, heap_pos;
	uint64_t deadline;
	uint8_t state, busy, ev;
	bool known, ws_ok, fin_queued, fin_sent, fin_rcvd, fin_held, ack_now;
	bool write_blocked, starved, persist, rtt_on, rtt_valid, in_recovery;
	uint8_t snd_wscale, rcv_wscale, dupacks, retries, backoff;
	uint16_t snd_mss, rcv_mss;
	uint32_t iss, snd_una, snd_nxt, snd_max, fin_seq;
	uint32_t snd_wnd, max_snd_wnd, snd_wl1, snd_wl2;
	uint32_t cwnd, ssthresh, recover;
	uint32_t irs, rcv_nxt, rcv_adv, fin_held_seq;
	uint32_t srtt8, rttvar8, rto, rtt_seq;
	uint64_t rtt_ts, t_rtx, t_state, last_act;
	struct tcp_ring snd, rcv;
	struct tcp_ooo ooo;
};

/**
 * struct tcp_heap - a binary min-heap of slot indexes keyed by deadline
 * @idx:	slot indexes, @len of them, capacity = number of slots
 * @len:	entries in use
 */
struct tcp_heap {
	uint32_t *idx;
	uint32_t len;
};

/* tcp_buf.c: bounded data structures under the state machine */
int tcp_ring_reserve(struct tcp_ring *r);
void tcp_ring_release(struct tcp_ring *r);
uint32_t tcp_ring_space(const struct tcp_ring *r);
void tcp_ring_put(struct tcp_ring *r, uint32_t off, const uint8_t *p,
		  uint32_t len);
void tcp_ring_get(const struct tcp_ring *r, uint32_t off, uint8_t *p,
		  uint32_t len);
void tcp_ring_commit(struct tcp_ring *r, uint32_t len);
void tcp_ring_consume(struct tcp_ring *r, uint32_t len);

bool tcp_ooo_add(struct tcp_ooo *o, uint32_t base, uint32_t start,
		 uint32_t end);
uint32_t tcp_ooo_take(struct tcp_ooo *o, uint32_t base, uint32_t upto);

void tcp_heap_update(struct tcp_heap *h, struct tcp_sock *socks,
		     uint32_t i);

#endif /* GONDOLIN_NET_TCP_CONN_H */
