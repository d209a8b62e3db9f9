/* SPDX-License-Identifier: MIT */
/* stream.h - a byte stream toward the guest: a TCP connection, or TLS over one */
#ifndef GONDOLIN_NET_STREAM_H
#define GONDOLIN_NET_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "net/net.h"

/*
 * The HTTP mediation reads and writes a struct stream and never learns
 * whether it serves plain TCP (tcp_stream.c) or the decrypted side of a
 * TLS server (csrc/tls/server.c). The contract is the TCP engine's:
 *
 *   read()      takes what readable() reports, never blocks;
 *   write()     takes what fits and returns that count; a short write
 *               owes one STREAM_WRITABLE once room frees up;
 *   shutdown()  our FIN (TLS: close_notify first) after the queued data;
 *   abort()     reset at once; STREAM_CLOSED is reported before it returns.
 *
 * Events go to @event, which the consumer sets; after STREAM_RESET or
 * STREAM_CLOSED no call may be made on the stream.
 */
enum stream_event {
	STREAM_READABLE,	/* bytes to read() */
	STREAM_WRITABLE,	/* room after a short write() */
	STREAM_FIN,		/* the guest finished sending (after all data) */
	STREAM_RESET,		/* reset, or gave up: the stream is gone */
	STREAM_CLOSED,		/* fully closed: the stream is gone */
};

struct stream;

struct stream_ops {
	size_t (*readable)(const struct stream *s);
	size_t (*read)(struct stream *s, uint8_t *buf, size_t len);
	size_t (*write)(struct stream *s, const uint8_t *p, size_t len);
	void (*shutdown)(struct stream *s);
	void (*abort)(struct stream *s);
};

/**
 * struct stream - one guest connection as a byte stream
 * @ops:	the implementation
 * @guest_ip, @dst_ip, @guest_port, @dst_port: the guest's TCP 4-tuple
 * @sni:	the TLS server name ("" when the ClientHello sent none), NULL
 *		on a plain TCP stream
 * @event:	the consumer's callback, @ud its data
 */
struct stream {
	const struct stream_ops *ops;
	uint32_t guest_ip, dst_ip;
	uint16_t guest_port, dst_port;
	const char *sni;
	void (*event)(void *ud, enum stream_event ev);
	void *ud;
};

static inline size_t stream_readable(const struct stream *s)
{
	return s->ops->readable(s);
}

static inline size_t stream_read(struct stream *s, uint8_t *buf, size_t len)
{
	return s->ops->read(s, buf, len);
}

static inline size_t stream_write(struct stream *s, const uint8_t *p, size_t len)
{
	return s->ops->write(s, p, len);
}

static inline void stream_shutdown(struct stream *s)
{
	s->ops->shutdown(s);
}

static inline void stream_abort(struct stream *s)
{
	s->ops->abort(s);
}

static inline void stream_emit(struct stream *s, enum stream_event ev)
{
	if (s->event)
		s->event(s->ud, ev);
}

/**
 * struct tcp_stream - a guest TCP connection as a stream (tcp_stream.c)
 * @s:		the stream (first member)
 * @net:	the stack
 * @c:		the connection, NULL once it is gone
 */
struct tcp_stream {
	struct stream s;
	struct net *net;
	struct tcp_conn *c;
};

void tcp_stream_init(struct tcp_stream *ts, struct net *n, struct tcp_conn *c);
void tcp_stream_event(struct tcp_stream *ts, enum tcp_event ev);

#endif /* GONDOLIN_NET_STREAM_H */
