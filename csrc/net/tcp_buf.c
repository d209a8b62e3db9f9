/* SPDX-License-Identifier: MIT */
/* tcp_buf.c - the TCP engine's bounded rings, reassembly ranges, timer heap */

/*
 * Theory of Operation
 *
 * Nothing here knows about segments or states; tcp.c does. Three
 * structures, each with a size fixed when it is created:
 *
 * - struct tcp_ring: a byte ring of cfg.tcp_buf bytes, one per direction
 *   and connection, allocated on first use (a connection that never
 *   carries data in a direction costs no buffer there) and freed when the
 *   connection is. The send ring holds bytes from snd_una on; the receive
 *   ring holds bytes the embedder has not read yet, followed by scratch
 *   space where out-of-order bytes wait at their final position: a byte
 *   with sequence number q sits at head + len + (q - rcv_nxt), a position
 *   that neither committing in-order bytes (len and rcv_nxt grow together)
 *   nor reading (head grows, len shrinks) moves. Reassembly therefore
 *   needs no memory beyond the window the guest was offered.
 *
 * - struct tcp_ooo: at most TCP_OOO_MAX disjoint [start, end) sequence
 *   ranges of such scratch bytes, sorted and merged on insert. Sequence
 *   numbers are compared as offsets from rcv_nxt, so wrap-around is
 *   harmless (every range lies within the window, far below 2^31).
 *
 * - struct tcp_heap: a binary min-heap of connection slot indexes keyed
 *   by each slot's earliest deadline, so tcp_next_timer() is O(1) and a
 *   timer change is O(log max_tcp). Each slot records its heap position.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/tcp_conn.h"

/**
 * tcp_ring_reserve() - make sure a ring has its storage
 * @r:		ring (size set)
 *
 * Return: 0, or -ENOMEM
 */
int tcp_ring_reserve(struct tcp_ring *r)
{
	if (r->buf)
		return 0;
	r->buf = malloc(r->size);
	if (!r->buf)
		return -ENOMEM;
	r->head = r->len = 0;
	return 0;
}

/**
 * tcp_ring_release() - free a ring's storage and forget its contents
 * @r:		ring
 */
void tcp_ring_release(struct tcp_ring *r)
{
	free(r->buf);
	r->buf = NULL;
	r->head = r->len = 0;
}

/**
 * tcp_ring_space() - bytes that can still be committed
 * @r:		ring (storage not needed)
 *
 * Return: size minus committed bytes
 */
uint32_t tcp_ring_space(const struct tcp_ring *r)
{
	return r->size - r->len;
}

/**
 * tcp_ring_put() - store bytes in the scratch space after the committed ones
 * @r:		ring with storage
 * @off:	offset after the last committed byte
 * @p:		bytes
 * @len:	count; @off + @len <= tcp_ring_space()
 */
void tcp_ring_put(struct tcp_ring *r, uint32_t off, const uint8_t *p,
		  uint32_t len)
{
	uint32_t pos = (uint32_t)(((uint64_t)r->head + r->len + off) % r->size);
	uint32_t first = r->size - pos;

	if (first > len)
		first = len;
	memcpy(r->buf + pos, p, first);
	memcpy(r->buf, p + first, len - first);
}

/**
 * tcp_ring_get() - copy committed bytes out without consuming them
 * @r:		ring with storage
 * @off:	offset from the first committed byte
 * @p:		destination
 * @len:	count; @off + @len <= committed bytes
 */
void tcp_ring_get(const struct tcp_ring *r, uint32_t off, uint8_t *p,
		  uint32_t len)
{
	uint32_t pos = (uint32_t)(((uint64_t)r->head + off) % r->size);
	uint32_t first = r->size - pos;

	if (first > len)
		first = len;
	memcpy(p, r->buf + pos, first);
	memcpy(p + first, r->buf, len - first);
}

/**
 * tcp_ring_commit() - make scratch bytes at the front committed
 * @r:		ring
 * @len:	count, at most tcp_ring_space()
 */
void tcp_ring_commit(struct tcp_ring *r, uint32_t len)
{
	r->len += len;
}

/**
 * tcp_ring_consume() - drop committed bytes from the front
 * @r:		ring
 * @len:	count, at most the committed bytes
 */
void tcp_ring_consume(struct tcp_ring *r, uint32_t len)
{
	r->head = (uint32_t)(((uint64_t)r->head + len) % r->size);
	r->len -= len;	/* head stays put even when empty: scratch bytes follow it */
}

/**
 * tcp_ooo_add() - record received bytes [start, end) beyond a hole
 * @o:		ranges
 * @base:	rcv_nxt; @start must be after it
 * @start:	first sequence number
 * @end:	one past the last
 *
 * Overlapping and adjacent ranges merge. When the result would need more
 * than TCP_OOO_MAX ranges, nothing changes.
 *
 * Return: true if recorded (the caller then stores the bytes)
 */
bool tcp_ooo_add(struct tcp_ooo *o, uint32_t base, uint32_t start,
		 uint32_t end)
{
	uint32_t s = start - base, e = end - base, rs, re;
	struct tcp_ooo out = { .n = 0 };
	bool placed = false;
	unsigned i;

	for (i = 0; i < o->n; i++) {
		rs = o->r[i].start - base;
		re = o->r[i].end - base;
		if (re < s || rs > e) {		/* disjoint, not adjacent */
			if (rs > e && !placed) {
				if (out.n == TCP_OOO_MAX)
					return false;
				out.r[out.n].start = base + s;
				out.r[out.n++].end = base + e;
				placed = true;
			}
			if (out.n == TCP_OOO_MAX)
				return false;
			out.r[out.n++] = o->r[i];
			continue;
		}
		s = rs < s ? rs : s;		/* merge into the new range */
		e = re > e ? re : e;
	}
	if (!placed) {
		if (out.n == TCP_OOO_MAX)
			return false;
		out.r[out.n].start = base + s;
		out.r[out.n++].end = base + e;
	}
	*o = out;
	return true;
}

/**
 * tcp_ooo_take() - absorb the ranges that in-order data now reaches
 * @o:		ranges, all starting after @base
 * @base:	rcv_nxt before the in-order bytes
 * @upto:	one past the in-order bytes just received
 *
 * Return: the new rcv_nxt (at least @upto)
 */
uint32_t tcp_ooo_take(struct tcp_ooo *o, uint32_t base, uint32_t upto)
{
	uint32_t u = upto - base;
	unsigned i = 0;

	while (i < o->n && o->r[i].start - base <= u) {
		if (o->r[i].end - base > u)
			u = o->r[i].end - base;
		i++;
	}
	if (i) {
		memmove(o->r, o->r + i, (o->n - i) * sizeof(o->r[0]));
		o->n -= i;
	}
	return base + u;
}

/**
 * tcp_heap_swap() - exchange two heap entries and fix their positions
 * @h:		heap
 * @socks:	slots
 * @a:		position
 * @b:		position
 */
static void tcp_heap_swap(struct tcp_heap *h, struct tcp_sock *socks,
			  uint32_t a, uint32_t b)
{
	uint32_t t = h->idx[a];

	h->idx[a] = h->idx[b];
	h->idx[b] = t;
	socks[h->idx[a]].heap_pos = a;
	socks[h->idx[b]].heap_pos = b;
}

/**
 * tcp_heap_up() - move an entry towards the root while it is earlier
 * @h:		heap
 * @socks:	slots
 * @pos:	position
 *
 * Return: final position
 */
static uint32_t tcp_heap_up(struct tcp_heap *h, struct tcp_sock *socks,
			    uint32_t pos)
{
	while (pos) {
		uint32_t parent = (pos - 1) / 2;

		if (socks[h->idx[parent]].deadline <= socks[h->idx[pos]].deadline)
			break;
		tcp_heap_swap(h, socks, pos, parent);
		pos = parent;
	}
	return pos;
}

/**
 * tcp_heap_down() - move an entry towards the leaves while it is later
 * @h:		heap
 * @socks:	slots
 * @pos:	position
 */
static void tcp_heap_down(struct tcp_heap *h, struct tcp_sock *socks,
			  uint32_t pos)
{
	for (;;) {
		uint32_t l = 2 * pos + 1, r = l + 1, m = pos;

		if (l < h->len &&
		    socks[h->idx[l]].deadline < socks[h->idx[m]].deadline)
			m = l;
		if (r < h->len &&
		    socks[h->idx[r]].deadline < socks[h->idx[m]].deadline)
			m = r;
		if (m == pos)
			return;
		tcp_heap_swap(h, socks, pos, m);
		pos = m;
	}
}

/**
 * tcp_heap_remove() - take a slot out of the heap, if it is in
 * @h:		heap
 * @socks:	slots
 * @i:		slot index
 */
static void tcp_heap_remove(struct tcp_heap *h, struct tcp_sock *socks, uint32_t i)
{
	uint32_t pos = socks[i].heap_pos;

	if (pos == TCP_NIL)
		return;
	socks[i].heap_pos = TCP_NIL;
	if (pos == --h->len)
		return;
	h->idx[pos] = h->idx[h->len];
	socks[h->idx[pos]].heap_pos = pos;
	tcp_heap_down(h, socks, tcp_heap_up(h, socks, pos));
}

/**
 * tcp_heap_update() - place a slot by its (changed) deadline
 * @h:		heap, with room for every slot
 * @socks:	slots
 * @i:		slot index; NET_TIMER_NONE as deadline takes it out
 */
void tcp_heap_update(struct tcp_heap *h, struct tcp_sock *socks, uint32_t i)
{
	uint32_t pos = socks[i].heap_pos;

	if (socks[i].deadline == NET_TIMER_NONE) {
		tcp_heap_remove(h, socks, i);
		return;
	}
	if (pos == TCP_NIL) {
		pos = h->len++;
		h->idx[pos] = i;
		socks[i].heap_pos = pos;
	}
	tcp_heap_down(h, socks, tcp_heap_up(h, socks, pos));
}
