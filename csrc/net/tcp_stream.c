/* SPDX-License-Identifier: MIT */
/* tcp_stream.c - a guest TCP connection behind the stream interface */

#include "net/stream.h"
#include "net/tcp.h"

static struct tcp_stream *ts_of(const struct stream *s)
{
	return (struct tcp_stream *)s;
}

static size_t ts_readable(const struct stream *s)
{
	const struct tcp_stream *ts = ts_of(s);

	return ts->c ? tcp_readable(ts->c) : 0;
}

static size_t ts_read(struct stream *s, uint8_t *buf, size_t len)
{
	struct tcp_stream *ts = ts_of(s);

	return ts->c ? tcp_read(ts->net, ts->c, buf, len) : 0;
}

static size_t ts_write(struct stream *s, const uint8_t *p, size_t len)
{
	struct tcp_stream *ts = ts_of(s);

	return ts->c ? tcp_write(ts->net, ts->c, p, len) : 0;
}

static void ts_shutdown(struct stream *s)
{
	struct tcp_stream *ts = ts_of(s);

	if (ts->c)
		tcp_shutdown(ts->net, ts->c);
}

static void ts_abort(struct stream *s)
{
	struct tcp_stream *ts = ts_of(s);

	if (ts->c)
		tcp_abort(ts->net, ts->c);	/* TCP_EV_CLOSED comes back first */
}

static const struct stream_ops tcp_stream_ops = {
	.readable = ts_readable,
	.read = ts_read,
	.write = ts_write,
	.shutdown = ts_shutdown,
	.abort = ts_abort,
};

/**
 * tcp_stream_init() - wrap a connection
 * @ts:		stream to fill (the consumer sets ts->s.event)
 * @n:		the stack
 * @c:		the connection
 */
void tcp_stream_init(struct tcp_stream *ts, struct net *n, struct tcp_conn *c)
{
	*ts = (struct tcp_stream){
		.s = {
			.ops = &tcp_stream_ops,
			.guest_ip = c->guest_ip,
			.dst_ip = c->dst_ip,
			.guest_port = c->guest_port,
			.dst_port = c->dst_port,
		},
		.net = n,
		.c = c,
	};
}

/**
 * tcp_stream_event() - pass an engine event on to the consumer
 * @ts:		stream
 * @ev:		what the engine reported
 */
void tcp_stream_event(struct tcp_stream *ts, enum tcp_event ev)
{
	switch (ev) {
	case TCP_EV_READABLE:
		stream_emit(&ts->s, STREAM_READABLE);
		break;
	case TCP_EV_WRITABLE:
		stream_emit(&ts->s, STREAM_WRITABLE);
		break;
	case TCP_EV_FIN:
		stream_emit(&ts->s, STREAM_FIN);
		break;
	case TCP_EV_RESET:
		ts->c = NULL;
		stream_emit(&ts->s, STREAM_RESET);
		break;
	case TCP_EV_CLOSED:
		ts->c = NULL;
		stream_emit(&ts->s, STREAM_CLOSED);
		break;
	default:
		break;
	}
}
