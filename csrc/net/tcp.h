/* SPDX-License-Identifier: MIT */
/* tcp.h - the TCP engine's interface to ipv4.c and to the embedder */
#ifndef GONDOLIN_NET_TCP_H
#define GONDOLIN_NET_TCP_H

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

#endif /* GONDOLIN_NET_TCP_H */
