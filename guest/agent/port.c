/* SPDX-License-Identifier: MIT */
/* port.c - frame I/O on the control port: bounded outbound ring, inbound reader */

/*
 * Theory of Operation
 *
 * Outbound: every frame the agent sends is encoded into one ring buffer of
 * AGENT_OUTQ_CAP bytes and written with writev(2) as the port accepts it
 * (the fd is non-blocking; virtio-serial takes at most 32 KiB per write).
 * Producers check port_congested() before doing anything that creates
 * output (reading a child's pipe, taking the next inbound frame); above
 * AGENT_OUTQ_HIGH they wait for the ring to drain. The headroom above the
 * high-water mark is two maximum frames, more than any single step adds
 * (one output chunk, one PONG, one reply per session), so port_send()
 * failing with -ENOBUFS means a bug, not a slow host.
 *
 * Inbound: bytes are read straight into the frame_reader's free tail;
 * frames are taken from it by the main loop. The ring and the reader are
 * allocated once at startup and never grow.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "agent.h"

/**
 * outq_put() - append bytes to the ring (caller checked the room)
 * @q: ring
 * @p: bytes
 * @n: count
 */
static void outq_put(struct outq *q, const uint8_t *p, size_t n)
{
	size_t tail = (q->head + q->len) % AGENT_OUTQ_CAP;
	size_t first = AGENT_OUTQ_CAP - tail;

	if (first > n)
		first = n;
	memcpy(q->buf + tail, p, first);
	memcpy(q->buf, p + first, n - first);
	q->len += n;
}

/**
 * outq_consume() - drop @n written bytes from the front of the ring
 * @q: ring
 * @n: bytes written
 */
static void outq_consume(struct outq *q, size_t n)
{
	q->head = (q->head + n) % AGENT_OUTQ_CAP;
	q->len -= n;
	if (q->len == 0)
		q->head = 0;
}

/**
 * port_open() - take over @fd as the control port
 * @p: port to set up
 * @fd: connected port or socket
 *
 * Return: 0, or -errno.
 */
int port_open(struct port *p, int fd)
{
	int fl, rc;

	memset(p, 0, sizeof(*p));
	p->fd = fd;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return -errno;
	rc = frame_reader_init(&p->rd, FRAME_MAX_PAYLOAD);
	if (rc < 0)
		return rc;
	p->q.buf = malloc(AGENT_OUTQ_CAP);
	if (!p->q.buf)
		return -ENOMEM;
	return 0;
}

/**
 * port_send() - queue one frame for the host
 * @p: port
 * @type: message type
 * @id: session id or 0
 * @payload: payload bytes (may be NULL when @len is 0)
 * @len: payload length, at most FRAME_MAX_PAYLOAD
 *
 * Return: 0, -EMSGSIZE for a payload above the limit, -ENOBUFS when the
 * ring is full (a producer ignored port_congested()).
 */
int port_send(struct port *p, uint8_t type, uint32_t id,
	      const void *payload, size_t len)
{
	uint8_t hdr[FRAME_HDR_LEN];

	if (len > FRAME_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (AGENT_OUTQ_CAP - p->q.len < FRAME_HDR_LEN + len) {
		agent_log("outbound queue full, frame type 0x%02x dropped", type);
		return -ENOBUFS;
	}
	frame_header(hdr, type, id, (uint32_t)len);
	outq_put(&p->q, hdr, sizeof(hdr));
	if (len)
		outq_put(&p->q, payload, len);
	return 0;
}

/**
 * port_congested() - whether producers of output must wait
 * @p: port
 *
 * Return: true while the outbound ring is above its high-water mark.
 */
bool port_congested(const struct port *p)
{
	return p->q.len >= AGENT_OUTQ_HIGH;
}

/**
 * port_flush() - write as much of the ring as the port takes now
 * @p: port
 *
 * Return: 0 (written, or the port would block), or -errno on a write
 * error such as EPIPE (the host is gone).
 */
int port_flush(struct port *p)
{
	struct iovec iov[2];
	size_t first;
	ssize_t n;

	while (p->q.len > 0) {
		first = AGENT_OUTQ_CAP - p->q.head;
		if (first > p->q.len)
			first = p->q.len;
		iov[0] = (struct iovec){ p->q.buf + p->q.head, first };
		iov[1] = (struct iovec){ p->q.buf, p->q.len - first };
		n = writev(p->fd, iov, iov[1].iov_len ? 2 : 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? 0 : -errno;
		outq_consume(&p->q, (size_t)n);
	}
	return 0;
}

/**
 * port_read() - read what the port has into the frame reader
 * @p: port
 *
 * Return: bytes read (> 0), 0 at EOF, -EAGAIN when nothing is there or the
 * reader is full (frames must be taken first), or -errno.
 */
int port_read(struct port *p)
{
	size_t avail;
	uint8_t *dst;
	ssize_t n;

	dst = frame_reader_space(&p->rd, &avail);
	if (avail == 0)
		return -EAGAIN;
	do {
		n = read(p->fd, dst, avail);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	frame_reader_commit(&p->rd, (size_t)n);
	return (int)n;
}
