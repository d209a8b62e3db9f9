/* SPDX-License-Identifier: MIT */
/* upstream.c - libuv TCP client for mediated requests: checked resolution, pool */

/*
 * Theory of Operation
 *
 * One struct upstream is one TCP connection from the host to the server a
 * guest request is for. Its life:
 *
 *	upstream_open()
 *	  -> from the pool (an idle keep-alive connection to the same
 *	     host:port): connected at once, upstream_reused() is true
 *	  -> else RESOLVING: the policy's resolve map, an IP literal, or
 *	     uv_getaddrinfo(); EVERY address is checked with
 *	     policy_addr_blocked() and only the ones that pass are kept (at
 *	     most UPSTREAM_MAX_ADDRS, in resolver order)
 *	  -> CONNECTING: uv_tcp_connect() to the first kept address (the
 *	     next ones only when connect fails at once, e.g. no route for
 *	     that family), so the socket can only ever reach an address that
 *	     passed the check (no second resolution between check and
 *	     connect: no rebinding)
 *	  -> CONNECTED: ops.connected(0); reads and writes
 *	upstream_release(reuse) -> back to the pool, or closed
 *
 * Failures before CONNECTED end in one ops.connected(err) call (or, when
 * every address of a literal or mapped name is blocked, in a NULL return
 * from upstream_open() with the range's name). UPSTREAM_CONNECT_MS bounds
 * resolution and connection together.
 *
 * Writes: uv_try_write() first; what the socket did not take is copied
 * into one heap request per call, counted in @wq. The owner keeps @wq
 * under UPSTREAM_WQ_MAX by asking upstream_writable() first, and is told
 * through ops.drain when @wq has fallen to UPSTREAM_WQ_LOW. Reads land
 * in the owner's buffer (ops.alloc), and only while it asked for them
 * (upstream_read()), so a slow guest stops the upstream socket.
 *
 * Pool: an idle connection keeps reading into a small scratch buffer; any
 * byte or EOF from the server while idle (it closed, or spoke out of
 * turn) closes it, as does UPSTREAM_POOL_IDLE_MS without use. At most
 * UPSTREAM_POOL_PER_ORIGIN per host:port and UPSTREAM_POOL_MAX in all.
 * Connections in the pool were checked when they were made.
 *
 * Lifetime: the struct holds two libuv handles (socket, timer) and is
 * freed when both close callbacks have run. getaddrinfo cannot be
 * cancelled once running, so its request is allocated on its own and
 * frees itself; a closed upstream detaches from it first. After
 * upstream_close() no callback reaches the owner.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "http/upstream.h"

#define UPSTREAM_SCRATCH	256	/* idle read buffer (bytes are discarded) */

enum upstream_state {
	UP_RESOLVING,
	UP_CONNECTING,
	UP_CONNECTED,
	UP_IDLE,		/* in the pool */
	UP_CLOSED,
};

/**
 * struct upstream - one host-side connection
 * @tcp:	socket handle
 * @timer:	connect timeout, pool idle timeout
 * @conn:	connect request (one in flight)
 * @gai:	resolution in flight (detached on close), or NULL
 * @pool:	owning pool
 * @ops:	owner callbacks (NULL while idle or closed)
 * @ud:		owner data
 * @host:	the host asked for (pool key, range exceptions)
 * @port:	port asked for
 * @addrs:	checked addresses, tried in order
 * @naddr:	entries in @addrs
 * @next:	next address to try
 * @blocked:	range name of the first blocked address seen, or NULL
 * @state:	enum upstream_state
 * @handles:	libuv handles not yet closed
 * @wq:		bytes queued in write requests
 * @want_drain:	@wq went above UPSTREAM_WQ_LOW; tell the owner when below
 * @reading:	the owner wants reads
 * @reused:	came from the pool
 * @pnext, @pprev: pool list links
 * @addr_text:	the address connected to
 * @scratch:	reads while idle in the pool
 */
struct upstream {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_connect_t conn;
	struct upstream_gai *gai;
	struct upstream_pool *pool;
	const struct upstream_ops *ops;
	void *ud;
	struct hostpat_host host;
	unsigned port;
	struct ipaddr addrs[UPSTREAM_MAX_ADDRS];
	size_t naddr, next;
	const char *blocked;
	int state;
	int handles;
	size_t wq;
	bool want_drain, reading, reused;
	struct upstream *pnext, **pprev;
	char addr_text[IPADDR_STRLEN];
	char scratch[UPSTREAM_SCRATCH];
};

/**
 * struct upstream_gai - a getaddrinfo request that may outlive its upstream
 * @req:	libuv request
 * @u:		the upstream, or NULL once it closed
 */
struct upstream_gai {
	uv_getaddrinfo_t req;
	struct upstream *u;
};

/**
 * struct upstream_wreq - one queued write and its bytes
 * @req:	libuv request
 * @u:		connection
 * @len:	bytes in @data
 * @data:	copy of what uv_try_write() did not take
 */
struct upstream_wreq {
	uv_write_t req;
	struct upstream *u;
	size_t len;
	char data[];
};

static void try_next(struct upstream *u);

/**
 * fail() - report a failure before the connection was up
 * @u:		connection (RESOLVING or CONNECTING)
 * @err:	-errno
 * @why:	static text
 */
static void fail(struct upstream *u, int err, const char *why)
{
	uv_timer_stop(&u->timer);
	u->state = UP_CLOSED;
	if (u->ops)
		u->ops->connected(u, u->ud, err, why);
}

/**
 * add_addr() - keep an address if it passes the range check
 * @u:		connection being resolved
 * @a:		candidate
 */
static void add_addr(struct upstream *u, const struct ipaddr *a)
{
	const char *r;
	size_t i;

	for (i = 0; i < u->naddr; i++)
		if (ipaddr_equal(&u->addrs[i], a))
			return;
	r = policy_addr_blocked(u->pool->policy, &u->host, u->port, a);
	if (r) {
		if (!u->blocked)
			u->blocked = r;
		return;
	}
	if (u->naddr < UPSTREAM_MAX_ADDRS)
		u->addrs[u->naddr++] = *a;
}

/**
 * from_sockaddr() - an ipaddr from a resolver result
 * @sa:		socket address
 * @a:		output
 *
 * Return: true for IPv4 and IPv6.
 */
static bool from_sockaddr(const struct sockaddr *sa, struct ipaddr *a)
{
	memset(a, 0, sizeof(*a));
	if (sa->sa_family == AF_INET) {
		a->family = IPADDR_V4;
		memcpy(a->b, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		a->family = IPADDR_V6;
		memcpy(a->b, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		return true;
	}
	return false;
}

/**
 * on_resolved() - getaddrinfo finished
 * @req:	request (struct upstream_gai)
 * @status:	0 or a libuv error
 * @res:	results
 */
static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct upstream_gai *g = (struct upstream_gai *)req;
	struct upstream *u = g->u;
	struct addrinfo *ai;
	struct ipaddr a;

	if (u) {
		u->gai = NULL;
		for (ai = status == 0 ? res : NULL; ai; ai = ai->ai_next)
			if (from_sockaddr(ai->ai_addr, &a))
				add_addr(u, &a);
	}
	uv_freeaddrinfo(res);
	free(g);
	if (!u || u->state != UP_RESOLVING)
		return;
	if (status < 0)
		fail(u, -EHOSTUNREACH, "the host name does not resolve");
	else if (u->naddr == 0 && u->blocked)
		fail(u, -EACCES, u->blocked);
	else if (u->naddr == 0)
		fail(u, -EHOSTUNREACH, "the host name has no address");
	else
		try_next(u);
}

/**
 * on_connect() - one connect attempt finished
 * @req:	connect request
 * @status:	0 or a libuv error
 */
static void on_connect(uv_connect_t *req, int status)
{
	struct upstream *u = req->data;

	if (u->state != UP_CONNECTING)
		return;			/* closed meanwhile (UV_ECANCELED) */
	if (status < 0) {
		fail(u, -ECONNREFUSED, status == UV_ECONNREFUSED ?
		     "connection refused" : "cannot connect to the server");
		return;
	}
	uv_timer_stop(&u->timer);
	uv_tcp_nodelay(&u->tcp, 1);
	u->state = UP_CONNECTED;
	ipaddr_format(&u->addrs[u->next - 1], u->addr_text, sizeof(u->addr_text));
	u->ops->connected(u, u->ud, 0, NULL);
}

/**
 * try_next() - connect to the next checked address
 * @u:		connection
 *
 * A socket whose connect failed cannot be used again, so only addresses
 * that fail synchronously (no route, wrong family) move on to the next
 * one; an asynchronous failure is reported (one socket per upstream keeps
 * the handle accounting simple).
 */
static void try_next(struct upstream *u)
{
	struct sockaddr_storage ss;
	const struct ipaddr *a;
	int rc = UV_ECONNREFUSED;

	u->state = UP_CONNECTING;
	while (u->next < u->naddr) {
		a = &u->addrs[u->next++];
		memset(&ss, 0, sizeof(ss));
		if (a->family == IPADDR_V4) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

			sin->sin_family = AF_INET;
			sin->sin_port = htons((uint16_t)u->port);
			memcpy(&sin->sin_addr, a->b, 4);
		} else {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

			sin6->sin6_family = AF_INET6;
			sin6->sin6_port = htons((uint16_t)u->port);
			memcpy(&sin6->sin6_addr, a->b, 16);
		}
		u->conn.data = u;
		rc = uv_tcp_connect(&u->conn, &u->tcp, (struct sockaddr *)&ss, on_connect);
		if (rc == 0)
			return;
	}
	fail(u, -ECONNREFUSED, rc == UV_ECONNREFUSED ? "connection refused" :
	     "cannot connect to the server");
}

/**
 * on_timer() - connect timeout, or pool idle timeout
 * @t:		timer
 */
static void on_timer(uv_timer_t *t)
{
	struct upstream *u = t->data;

	if (u->state == UP_IDLE)
		upstream_close(u);
	else if (u->state == UP_RESOLVING || u->state == UP_CONNECTING)
		fail(u, -ETIMEDOUT, "connect timeout");
}

/**
 * pool_unlink() - take an idle connection off the pool's list
 * @u:		connection (in the pool)
 */
static void pool_unlink(struct upstream *u)
{
	*u->pprev = u->pnext;
	if (u->pnext)
		u->pnext->pprev = u->pprev;
	u->pnext = NULL;
	u->pprev = NULL;
	u->pool->nidle--;
}

/**
 * pool_take() - an idle connection to host:port, unlinked from the pool
 * @pool:	pool
 * @h:		host
 * @port:	port
 *
 * Return: the connection, or NULL.
 */
static struct upstream *pool_take(struct upstream_pool *pool,
				  const struct hostpat_host *h, unsigned port)
{
	struct upstream *u;

	for (u = pool->idle; u; u = u->pnext) {
		if (u->port != port || !hostpat_host_equal(&u->host, h))
			continue;
		pool_unlink(u);
		uv_timer_stop(&u->timer);
		uv_read_stop((uv_stream_t *)&u->tcp);
		u->reading = false;
		u->state = UP_CONNECTED;
		u->reused = true;
		return u;
	}
	return NULL;
}

/**
 * start_lookup() - find the candidate addresses of a new connection
 * @u:		connection (RESOLVING, handles initialised)
 * @why:	set when it fails at once
 *
 * Return: 0 when resolution or connection is under way, -1 when every
 * known address is blocked (@why names the range) or nothing can start.
 */
static int start_lookup(struct upstream *u, const char **why)
{
	const struct policy_resolve *r;
	struct addrinfo hints;
	size_t i;

	if (u->host.kind != HOSTPAT_NAME) {
		add_addr(u, &u->host.ip);
	} else if ((r = policy_resolve_find(u->pool->policy, &u->host))) {
		for (i = 0; i < r->naddr; i++)
			add_addr(u, &r->addr[i]);
	} else {
		u->gai = calloc(1, sizeof(*u->gai));
		if (!u->gai) {
			*why = "out of memory";
			return -1;
		}
		u->gai->u = u;
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		if (uv_getaddrinfo(u->pool->loop, &u->gai->req, on_resolved,
				   u->host.name, NULL, &hints) < 0) {
			free(u->gai);
			u->gai = NULL;
			*why = "the host name does not resolve";
			return -1;
		}
		return 0;
	}
	if (u->naddr == 0) {
		*why = u->blocked ? u->blocked : "the host has no address";
		return -1;
	}
	try_next(u);
	return 0;
}

/**
 * upstream_open() - a connection to host:port, pooled or new
 * @pool:	the VM's pool
 * @host:	requested host (normalised)
 * @port:	requested port
 * @ops:	callbacks
 * @ud:		their data
 * @err:	on NULL, -EACCES (every address blocked) or another -errno
 * @why:	on NULL, why (static): a blocked range's name, or a failure
 *
 * When the result is upstream_connected() it came from the pool and no
 * ops.connected call follows; otherwise exactly one will.
 *
 * Return: the connection, or NULL.
 */
struct upstream *upstream_open(struct upstream_pool *pool,
			       const struct hostpat_host *host, unsigned port,
			       const struct upstream_ops *ops, void *ud,
			       int *err, const char **why)
{
	struct upstream *u = pool_take(pool, host, port);

	if (u) {
		u->ops = ops;
		u->ud = ud;
		return u;
	}
	u = calloc(1, sizeof(*u));
	if (!u) {
		*err = -ENOMEM;
		*why = "out of memory";
		return NULL;
	}
	u->pool = pool;
	u->ops = ops;
	u->ud = ud;
	u->host = *host;
	u->port = port;
	u->state = UP_RESOLVING;
	uv_tcp_init(pool->loop, &u->tcp);
	uv_timer_init(pool->loop, &u->timer);
	u->tcp.data = u->timer.data = u;
	u->handles = 2;
	uv_timer_start(&u->timer, on_timer, UPSTREAM_CONNECT_MS, 0);
	if (start_lookup(u, why) < 0) {
		*err = u->blocked && u->naddr == 0 ? -EACCES : -EHOSTUNREACH;
		u->ops = NULL;
		upstream_close(u);
		return NULL;
	}
	return u;
}

/**
 * upstream_connected() - is the connection up
 * @u:		connection
 *
 * Return: true when reads and writes may start.
 */
bool upstream_connected(const struct upstream *u)
{
	return u->state == UP_CONNECTED;
}

/**
 * upstream_reused() - did the connection come from the pool
 * @u:		connection
 *
 * Return: true when reused (a request on it may meet a server-side close).
 */
bool upstream_reused(const struct upstream *u)
{
	return u->reused;
}

/**
 * upstream_address() - the address connected to, as text
 * @u:		connection
 *
 * Return: the text ("" before the connection is up).
 */
const char *upstream_address(const struct upstream *u)
{
	return u->addr_text;
}

/**
 * upstream_writable() - bytes that may be queued now
 * @u:		connection
 *
 * Return: room below UPSTREAM_WQ_MAX (0 when not connected).
 */
size_t upstream_writable(const struct upstream *u)
{
	if (u->state != UP_CONNECTED || u->wq >= UPSTREAM_WQ_MAX)
		return 0;
	return UPSTREAM_WQ_MAX - u->wq;
}

/**
 * on_written() - a queued write finished
 * @req:	write request (struct upstream_wreq)
 * @status:	0 or a libuv error
 */
static void on_written(uv_write_t *req, int status)
{
	struct upstream_wreq *w = (struct upstream_wreq *)req;
	struct upstream *u = w->u;

	u->wq -= w->len;
	free(w);
	if (u->state != UP_CONNECTED || !u->ops)
		return;
	if (status < 0) {
		u->ops->read(u, u->ud, status);
		return;
	}
	if (u->want_drain && u->wq <= UPSTREAM_WQ_LOW) {
		u->want_drain = false;
		u->ops->drain(u, u->ud);
	}
}

/**
 * upstream_write() - send bytes, queueing what the socket does not take
 * @u:		connected connection
 * @bufs:	buffers
 * @n:		their number
 *
 * The caller keeps the total under upstream_writable().
 *
 * Return: 0, or a negative libuv error (the connection is broken).
 */
int upstream_write(struct upstream *u, const uv_buf_t *bufs, unsigned n)
{
	struct upstream_wreq *w;
	size_t total = 0, skip, off = 0;
	uv_buf_t b;
	unsigned i;
	int rc = 0;

	for (i = 0; i < n; i++)
		total += bufs[i].len;
	if (u->state != UP_CONNECTED)
		return UV_ENOTCONN;
	if (total == 0)
		return 0;
	if (u->wq == 0) {
		rc = uv_try_write((uv_stream_t *)&u->tcp, bufs, n);
		if (rc < 0 && rc != UV_EAGAIN)
			return rc;
	}
	skip = rc > 0 ? (size_t)rc : 0;
	if (skip == total)
		return 0;
	w = malloc(sizeof(*w) + total - skip);
	if (!w)
		return UV_ENOMEM;
	for (i = 0; i < n; i++) {
		size_t l = bufs[i].len, drop = skip < l ? skip : l;

		skip -= drop;
		memcpy(w->data + off, bufs[i].base + drop, l - drop);
		off += l - drop;
	}
	w->u = u;
	w->len = off;
	b = uv_buf_init(w->data, (unsigned)off);
	rc = uv_write(&w->req, (uv_stream_t *)&u->tcp, &b, 1, on_written);
	if (rc < 0) {
		free(w);
		return rc;
	}
	u->wq += off;
	if (u->wq > UPSTREAM_WQ_LOW)
		u->want_drain = true;
	return 0;
}

/**
 * on_alloc() - libuv wants a read buffer
 * @h:		socket
 * @hint:	suggested size (ignored)
 * @buf:	output
 */
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct upstream *u = h->data;

	(void)hint;
	if (u->state == UP_CONNECTED && u->ops)
		*buf = u->ops->alloc(u, u->ud);
	else
		*buf = uv_buf_init(u->scratch, sizeof(u->scratch));
}

/**
 * on_read() - bytes or EOF from the server
 * @s:		socket
 * @n:		bytes, or a libuv error / UV_EOF
 * @buf:	the buffer on_alloc() gave
 */
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct upstream *u = s->data;

	(void)buf;
	if (n == 0 || n == UV_ENOBUFS)
		return;
	if (u->state == UP_IDLE) {	/* the server spoke or closed: drop it */
		upstream_close(u);
		return;
	}
	if (u->state != UP_CONNECTED || !u->ops)
		return;
	if (n < 0) {
		uv_read_stop(s);
		u->reading = false;
	}
	u->ops->read(u, u->ud, n);
}

/**
 * upstream_read() - start or stop reading from the server
 * @u:		connected connection
 * @on:		whether the owner has room
 */
void upstream_read(struct upstream *u, bool on)
{
	if (u->state != UP_CONNECTED || u->reading == on)
		return;
	u->reading = on;
	if (on)
		uv_read_start((uv_stream_t *)&u->tcp, on_alloc, on_read);
	else
		uv_read_stop((uv_stream_t *)&u->tcp);
}

/**
 * on_shutdown() - a write-side shutdown finished
 * @req:	request (heap)
 * @status:	ignored: a failure shows up as a read error
 */
static void on_shutdown(uv_shutdown_t *req, int status)
{
	(void)status;
	free(req);
}

/**
 * upstream_shutdown() - send FIN after the queued writes (tunnels)
 * @u:		connected connection
 */
void upstream_shutdown(struct upstream *u)
{
	uv_shutdown_t *req;

	if (u->state != UP_CONNECTED)
		return;
	req = malloc(sizeof(*req));
	if (req && uv_shutdown(req, (uv_stream_t *)&u->tcp, on_shutdown) < 0)
		free(req);
}

/**
 * upstream_release() - the owner is done: pool the connection or close it
 * @u:		connection
 * @reuse:	the last exchange left it clean for another request
 */
void upstream_release(struct upstream *u, bool reuse)
{
	struct upstream_pool *pool = u->pool;
	struct upstream *x;
	size_t same = 0;

	u->ops = NULL;
	if (!reuse || pool->closing || u->state != UP_CONNECTED || u->wq != 0 ||
	    pool->nidle >= UPSTREAM_POOL_MAX) {
		upstream_close(u);
		return;
	}
	for (x = pool->idle; x; x = x->pnext)
		if (x->port == u->port && hostpat_host_equal(&x->host, &u->host))
			same++;
	if (same >= UPSTREAM_POOL_PER_ORIGIN) {
		upstream_close(u);
		return;
	}
	u->state = UP_IDLE;
	u->want_drain = false;
	u->reading = true;
	uv_read_start((uv_stream_t *)&u->tcp, on_alloc, on_read);
	uv_timer_start(&u->timer, on_timer, UPSTREAM_POOL_IDLE_MS, 0);
	u->pnext = pool->idle;
	u->pprev = &pool->idle;
	if (pool->idle)
		pool->idle->pprev = &u->pnext;
	pool->idle = u;
	pool->nidle++;
}

/**
 * on_closed() - one handle closed; the last frees the connection
 * @h:		socket or timer
 */
static void on_closed(uv_handle_t *h)
{
	struct upstream *u = h->data;

	if (--u->handles == 0)
		free(u);
}

/**
 * upstream_close() - close now; no callback reaches the owner afterwards
 * @u:		connection (any state but closed twice)
 */
void upstream_close(struct upstream *u)
{
	if (u->pprev)			/* idle in the pool */
		pool_unlink(u);
	if (u->gai) {
		u->gai->u = NULL;
		uv_cancel((uv_req_t *)&u->gai->req);
		u->gai = NULL;
	}
	u->ops = NULL;
	u->state = UP_CLOSED;
	if (!uv_is_closing((uv_handle_t *)&u->tcp)) {
		uv_close((uv_handle_t *)&u->tcp, on_closed);
		uv_close((uv_handle_t *)&u->timer, on_closed);
	}
}

/**
 * upstream_pool_init() - an empty pool
 * @pool:	pool
 * @loop:	loop
 * @policy:	policy every connection is checked against
 */
void upstream_pool_init(struct upstream_pool *pool, uv_loop_t *loop,
			const struct policy *policy)
{
	memset(pool, 0, sizeof(*pool));
	pool->loop = loop;
	pool->policy = policy;
}

/**
 * upstream_pool_close() - close every idle connection; keep nothing later
 * @pool:	pool
 */
void upstream_pool_close(struct upstream_pool *pool)
{
	pool->closing = true;
	while (pool->idle)
		upstream_close(pool->idle);
}
