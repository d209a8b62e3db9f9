/* SPDX-License-Identifier: MIT */
/* tcp.h - the TCP engine's interface to ipv4.c and to the embedder */
#ifndef GONDOLIN_NET_TCP_H
#define GONDOLIN_NET_TCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/net.h"

/**
 * struct tcp_conn - the part of a connection the embedder may read
 * @guest_ip, @guest_port: the guest's end
 * @dst_ip, @dst_port:	where the guest is connecting to
 * @user:		the embedder's pointer, untouched by the engine
 * The rest of the connection lives in tcp.c.
 */
struct tcp_conn {
	uint32_t guest_ip, dst_ip;
	uint16_t guest_port, dst_port;
	void *user;
};

int tcp_init(struct net *n);
void tcp_free(struct net *n);
/* ipv4.c hands every TCP segment for us here (IP checksum already checked) */
int tcp_input(struct net *n, uint32_t src, uint32_t dst,
	      const uint8_t *seg, size_t len);
void tcp_timer(struct net *n, uint64_t now_ms);
uint64_t tcp_next_timer(const struct net *n);

/* Embedder side. */
size_t tcp_readable(const struct tcp_conn *c);
size_t tcp_read(struct net *n, struct tcp_conn *c, uint8_t *buf, size_t len);
size_t tcp_writable(const struct tcp_conn *c);
size_t tcp_write(struct net *n, struct tcp_conn *c, const uint8_t *p, size_t len);
void tcp_shutdown(struct net *n, struct tcp_conn *c);
void tcp_abort(struct net *n, struct tcp_conn *c);
const char *tcp_state_name(const struct tcp_conn *c);

/**
 * struct tcp_conn_info - a snapshot of one connection (diagnostics, tests)
 * @state:		tcp_state_name()
 * @iss, @irs:		our and the guest's initial sequence numbers
 * @snd_una, @snd_nxt:	oldest unacknowledged and next sequence number we send
 * @snd_wnd:		the guest's window, in bytes (scaled)
 * @rcv_nxt:		next sequence number expected from the guest
 * @rcv_wnd:		window we last advertised, in bytes (scaled)
 * @mss:		largest segment payload we send
 * @snd_wscale, @rcv_wscale: window scale shifts (guest's, ours)
 * @ws_ok:		window scaling in effect
 * @rto_ms, @srtt_ms:	retransmission timeout, smoothed round-trip time
 * @retries:		unanswered retransmissions or window probes in a row
 * @send_queued:	bytes written and not yet acknowledged by the guest
 * @recv_queued:	bytes received and not yet tcp_read()
 * @ooo_ranges:		out-of-order ranges held for reassembly
 */
struct tcp_conn_info {
	const char *state;
	uint32_t iss, irs, snd_una, snd_nxt, snd_wnd, rcv_nxt, rcv_wnd;
	uint16_t mss;
	uint8_t snd_wscale, rcv_wscale;
	bool ws_ok;
	uint32_t rto_ms, srtt_ms, retries;
	size_t send_queued, recv_queued;
	unsigned ooo_ranges;
};

/**
 * struct tcp_gauges - what the connection table holds right now
 * @conns:		slots in use (all states), at most cfg.max_tcp
 * @half_open:		in SYN_RECEIVED, at most cfg.max_half_open
 * @time_wait:		in TIME_WAIT
 * @buf_bytes:		send and receive buffer bytes allocated
 * @syn_dropped:	SYNs dropped because the half-open table was full
 */
struct tcp_gauges {
	uint32_t conns, half_open, time_wait;
	size_t buf_bytes;
	uint64_t syn_dropped;
};

void tcp_conn_info(const struct tcp_conn *c, struct tcp_conn_info *out);
void tcp_gauges(const struct net *n, struct tcp_gauges *out);
/* tests only: the next accepted connection uses @isn as our ISN */
void tcp_test_isn(struct net *n, uint32_t isn);

#endif /* GONDOLIN_NET_TCP_H */
