/* SPDX-License-Identifier: MIT */
/* upstream.c - libuv TCP/TLS client for mediated requests: checked resolution, pool */

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
 *	  -> HANDSHAKE (TLS only): tls/client.c over the socket; the
 *	     certificate is verified for the requested host
 *	  -> CONNECTED: ops.connected(0); reads and writes
 *	upstream_release(reuse) -> back to the pool, or closed
 *
 * Failures before CONNECTED end in one ops.connected(err) call (or, when
 * every address of a literal or mapped name is blocked, in a NULL return
 * from upstream_open() with the range's name). UPSTREAM_CONNECT_MS bounds
 * resolution, connection and the TLS handshake together.
 *
 * Writes: uv_try_write() first; what the socket did not take is copied
 * into one heap request per call, counted in @wq. The owner keeps @wq
 * under UPSTREAM_WQ_MAX by asking upstream_writable() first, and is told
 * through ops.drain when @wq has fallen to UPSTREAM_WQ_LOW. Reads land
 * in the owner's buffer (ops.alloc), and only while it asked for them
 * (upstream_read()), so a slow guest stops the upstream socket.
 *
 * TLS (upstream_open(tls = true)): the owner sees the same calls and
 * callbacks with plaintext. The socket's bytes land in the client's
 * bounded ciphertext buffer (tls_client_in_space()), read only while
 * the owner wants reads and that buffer has room; decrypted bytes go
 * straight into the owner's ops.alloc buffer (tls_pump()), so nothing
 * between the socket and the owner grows. Records that arrive with the
 * owner not reading stay encrypted; upstream_read(true) pumps them on
 * the next timer tick (never from inside the owner's own call), using
 * the timer the connect timeout used. Plaintext written becomes records
 * through the client's sink, which is the plain write path above: @wq
 * counts ciphertext, and upstream_writable() gives the plaintext that
 * fits (tls_client_room()), so backpressure is unchanged. The socket
 * ending without close_notify is an ordinary UV_EOF once every byte
 * before it was delivered; the HTTP framing above tells a cut body.
 * upstream_shutdown() sends close_notify, then FIN. The pool's TLS
 * configuration (trust anchors, session cache) is made from the policy
 * on the first TLS connection and shared by reference.
 *
 * Pool: an idle connection keeps reading into a small scratch buffer; any
 * byte or EOF from the server while idle (it closed, or spoke out of
 * turn) closes it, as does UPSTREAM_POOL_IDLE_MS without use. At most
 * UPSTREAM_POOL_PER_ORIGIN per host:port and UPSTREAM_POOL_MAX in all.
 * Idle connections are keyed by (host, port, TLS or not): a plain one is
 * never reused for TLS or the other way round, and a TLS connection is
 * only pooled with nothing from the server left unread. Connections in
 * the pool were checked when they were made.
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
	UP_HANDSHAKE,		/* TLS only */
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
 * @secure:	TLS was asked for (pool key)
 * @sock_reading: the socket is being read (TLS: not the same as @reading)
 * @tls_end:	TLS: the end was reported to the owner
 * @tls_more:	TLS: a pump may make progress (ciphertext arrived since the
 *		last one ran dry, or it stopped for the owner)
 * @starved:	TLS: the owner's alloc gave no room; wait for upstream_read()
 * @sock_end:	TLS: UV_EOF or the error that ended the socket's reads, or 0
 * @werr:	TLS: the libuv error of the last failed ciphertext write
 * @tls:	TLS client state, or NULL for plain TCP
 * @pnext, @pprev: pool list links
 * @addr_text:	the address connected to
 * @why:	a TLS failure's text (outlives @tls: the owner may read it
 *		after upstream_close(), until the close callbacks ran)
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
	bool secure, sock_reading, tls_end, tls_more, starved;
	int sock_end, werr;
	struct tls_client *tls;
	struct upstream *pnext, **pprev;
	char addr_text[IPADDR_STRLEN];
	char why[UPSTREAM_WHY_MAX];
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
static void sock_reads(struct upstream *u, bool on);
static int sock_write(struct upstream *u, const uv_buf_t *bufs, unsigned n);
static void tls_start(struct upstream *u);
static void tls_pump(struct upstream *u);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

/**
 * fail() - report a failure before the connection was up
 * @u:		connection (RESOLVING or CONNECTING)
 * @err:	-errno
 * @why:	static text
 */
static void fail(struct upstream *u, int err, const char *why)
{
	sock_reads(u, false);
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
	uv_tcp_nodelay(&u->tcp, 1);
	ipaddr_format(&u->addrs[u->next - 1], u->addr_text, sizeof(u->addr_text));
	if (u->tls) {
		tls_start(u);		/* the connect timeout runs on */
		return;
	}
	uv_timer_stop(&u->timer);
	u->state = UP_CONNECTED;
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
	else if (u->state == UP_HANDSHAKE)
		fail(u, -ETIMEDOUT, "upstream TLS handshake failed: timeout");
	else if (u->state == UP_CONNECTED && u->tls)
		tls_pump(u);		/* scheduled by tls_update() */
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
 * @tls:	a TLS connection is wanted (a plain one otherwise)
 *
 * Return: the connection, or NULL.
 */
static struct upstream *pool_take(struct upstream_pool *pool,
				  const struct hostpat_host *h, unsigned port,
				  bool tls)
{
	struct upstream *u;

	for (u = pool->idle; u; u = u->pnext) {
		if (u->port != port || u->secure != tls || !hostpat_host_equal(&u->host, h))
			continue;
		pool_unlink(u);
		uv_timer_stop(&u->timer);
		sock_reads(u, false);
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

/* ---- TLS ---- */

/**
 * tls_sink() - ciphertext from the TLS client: onto the socket
 * @ud:		connection
 * @buf:	bytes
 * @len:	their number
 *
 * Return: @len, or -1 (the libuv error is kept in @werr).
 */
static int tls_sink(void *ud, const unsigned char *buf, size_t len)
{
	struct upstream *u = ud;
	uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
	int rc = sock_write(u, &b, 1);

	if (rc < 0) {
		u->werr = rc;
		return -1;
	}
	return (int)len;
}

/**
 * tls_setup() - the TLS client of a new connection
 * @u:		connection (RESOLVING)
 *
 * Makes the pool's configuration from its policy the first time.
 *
 * Return: 0, or -1 with the reason in pool->tls_err.
 */
static int tls_setup(struct upstream *u)
{
	struct upstream_pool *pool = u->pool;
	const struct policy *p = pool->policy;

	if (!pool->tls) {
		pool->tls = tls_client_conf_new(p->upstream_ca, p->upstream_ca_len,
						p->nupstream_ca, pool->tls_err,
						sizeof(pool->tls_err));
		if (!pool->tls)
			return -1;
	}
	u->tls = tls_client_new(pool->tls, u->host.name, u->port, tls_sink, u,
				pool->tls_err, sizeof(pool->tls_err));
	return u->tls ? 0 : -1;
}

/**
 * tls_update() - read the socket only when its bytes have somewhere to go
 * @u:		TLS connection
 *
 * During the handshake: while the ciphertext buffer has room. After it:
 * also only while the owner wants reads. Schedules a pump (timer, 0 ms)
 * when the owner reads and buffered records wait.
 */
static void tls_update(struct upstream *u)
{
	size_t room = 0;

	if (!u->tls || (u->state != UP_HANDSHAKE && u->state != UP_CONNECTED))
		return;
	tls_client_in_space(u->tls, &room);
	sock_reads(u, room > 0 && !u->sock_end &&
		   (u->state == UP_HANDSHAKE || u->reading));
	if (u->state == UP_CONNECTED && u->reading && u->tls_more &&
	    !u->starved && !u->tls_end)
		uv_timer_start(&u->timer, on_timer, 0, 0);
}

/**
 * tls_handshake() - advance the handshake; report its end
 * @u:		connection (HANDSHAKE)
 */
static void tls_handshake(struct upstream *u)
{
	int rc = tls_client_handshake(u->tls);

	if (rc == -EAGAIN)
		return;
	if (rc < 0) {
		snprintf(u->why, sizeof(u->why), "%s", tls_client_why(u->tls));
		fail(u, -EPROTO, u->why);
		return;
	}
	uv_timer_stop(&u->timer);
	u->state = UP_CONNECTED;
	tls_update(u);			/* no reads until the owner asks */
	u->ops->connected(u, u->ud, 0, NULL);
}

/**
 * tls_start() - the socket is connected: send the ClientHello
 * @u:		connection (CONNECTING, @tls set)
 */
static void tls_start(struct upstream *u)
{
	u->state = UP_HANDSHAKE;
	tls_handshake(u);
	tls_update(u);
}

/**
 * tls_pump() - decrypt buffered records into the owner's buffers
 * @u:		connection (CONNECTED, TLS)
 *
 * Runs from socket and timer callbacks only. Stops when the owner stops
 * reading or has no room, when more ciphertext is needed, or at the end:
 * then once ops.read(UV_EOF) (close_notify, or the socket ended without
 * one), the socket's own error, or UV_EPROTO.
 */
static void tls_pump(struct upstream *u)
{
	uv_buf_t b;
	ssize_t n;
	int end;

	while (u->state == UP_CONNECTED && u->ops && u->reading &&
	       u->tls_more && !u->tls_end) {
		b = u->ops->alloc(u, u->ud);
		if (b.len == 0) {
			u->starved = true;
			break;
		}
		n = tls_client_read(u->tls, b.base, b.len);
		if (n == -EAGAIN) {
			u->tls_more = false;
			break;
		}
		if (n > 0) {
			u->ops->read(u, u->ud, n);
			continue;
		}
		end = n < 0 ? UV_EPROTO : u->sock_end < 0 && u->sock_end != UV_EOF ?
		      u->sock_end : UV_EOF;
		u->tls_end = true;
		u->reading = false;
		sock_reads(u, false);
		u->ops->read(u, u->ud, end);
		return;
	}
	tls_update(u);
}

/**
 * tls_on_read() - ciphertext, or the end, from the socket
 * @u:		connection (HANDSHAKE or CONNECTED, TLS)
 * @n:		bytes that landed in tls_client_in_space(), or a libuv error
 */
static void tls_on_read(struct upstream *u, ssize_t n)
{
	if (n == UV_ENOBUFS) {		/* the buffer is full: wait for a pump */
		tls_update(u);
		return;
	}
	if (n > 0) {
		tls_client_in_commit(u->tls, (size_t)n);
	} else {
		u->sock_end = (int)n;
		tls_client_in_end(u->tls);
	}
	u->tls_more = true;
	if (u->state == UP_HANDSHAKE)
		tls_handshake(u);
	else
		tls_pump(u);
	tls_update(u);
}

/**
 * upstream_open() - a connection to host:port, pooled or new
 * @pool:	the VM's pool
 * @host:	requested host (normalised)
 * @port:	requested port
 * @tls:	speak TLS to the server (verified for @host; SNI unless an
 *		IP literal); false: plain TCP
 * @ops:	callbacks
 * @ud:		their data
 * @err:	on NULL, -EACCES (every address blocked), -EPROTO (no TLS
 *		client could be set up) or another -errno
 * @why:	on NULL, why: a blocked range's name, or a failure (static,
 *		or held by the pool)
 *
 * When the result is upstream_connected() it came from the pool and no
 * ops.connected call follows; otherwise exactly one will.
 *
 * Return: the connection, or NULL.
 */
struct upstream *upstream_open(struct upstream_pool *pool,
			       const struct hostpat_host *host, unsigned port,
			       bool tls, const struct upstream_ops *ops, void *ud,
			       int *err, const char **why)
{
	struct upstream *u = pool_take(pool, host, port, tls);

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
	u->secure = tls;
	u->state = UP_RESOLVING;
	uv_tcp_init(pool->loop, &u->tcp);
	uv_timer_init(pool->loop, &u->timer);
	u->tcp.data = u->timer.data = u;
	u->handles = 2;
	if (tls && tls_setup(u) < 0) {
		*err = -EPROTO;
		*why = pool->tls_err;
		u->ops = NULL;
		upstream_close(u);
		return NULL;
	}
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
 * upstream_is_tls() - does the connection speak TLS
 * @u:		connection
 *
 * Return: true when opened with tls.
 */
bool upstream_is_tls(const struct upstream *u)
{
	return u->secure;
}

/**
 * upstream_tls_resumed() - did the TLS handshake resume a kept session
 * @u:		connection
 *
 * Return: true when abbreviated (false for plain TCP).
 */
bool upstream_tls_resumed(const struct upstream *u)
{
	return u->tls && tls_client_resumed(u->tls);
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
 * With TLS, @wq counts ciphertext and the room is the plaintext whose
 * records fit in what is left.
 *
 * Return: room below UPSTREAM_WQ_MAX (0 when not connected).
 */
size_t upstream_writable(const struct upstream *u)
{
	size_t room;

	if (u->state != UP_CONNECTED || u->wq >= UPSTREAM_WQ_MAX)
		return 0;
	room = UPSTREAM_WQ_MAX - u->wq;
	return u->tls ? tls_client_room(u->tls, room) : room;
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
	if (u->state == UP_HANDSHAKE && status < 0) {
		fail(u, -EPROTO, "upstream TLS handshake failed: cannot write to the server");
		return;
	}
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
 * sock_write() - bytes onto the socket, queueing what it does not take
 * @u:		connection with a connected socket
 * @bufs:	buffers
 * @n:		their number
 *
 * Return: 0, or a negative libuv error (the connection is broken).
 */
static int sock_write(struct upstream *u, const uv_buf_t *bufs, unsigned n)
{
	struct upstream_wreq *w;
	size_t total = 0, skip, off = 0;
	uv_buf_t b;
	unsigned i;
	int rc = 0;

	for (i = 0; i < n; i++)
		total += bufs[i].len;
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
 * upstream_write() - send bytes, queueing what the socket does not take
 * @u:		connected connection
 * @bufs:	buffers (plaintext: with TLS they become records here)
 * @n:		their number
 *
 * The caller keeps the total under upstream_writable().
 *
 * Return: 0, or a negative libuv error (the connection is broken).
 */
int upstream_write(struct upstream *u, const uv_buf_t *bufs, unsigned n)
{
	unsigned i;

	if (u->state != UP_CONNECTED)
		return UV_ENOTCONN;
	if (!u->tls)
		return sock_write(u, bufs, n);
	u->werr = 0;
	for (i = 0; i < n; i++)
		if (tls_client_write(u->tls, bufs[i].base, bufs[i].len) < 0)
			return u->werr ? u->werr : UV_EPROTO;
	if (tls_client_flush(u->tls) < 0)
		return u->werr ? u->werr : UV_EPROTO;
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
	unsigned char *p;
	size_t room;

	(void)hint;
	if (u->tls && (u->state == UP_HANDSHAKE || u->state == UP_CONNECTED)) {
		p = tls_client_in_space(u->tls, &room);
		*buf = uv_buf_init((char *)p, (unsigned)room);
	} else if (u->state == UP_CONNECTED && u->ops)
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
	(void)s;
	if (n == 0)
		return;
	if (u->tls && (u->state == UP_HANDSHAKE || u->state == UP_CONNECTED)) {
		tls_on_read(u, n);
		return;
	}
	if (n == UV_ENOBUFS)
		return;
	if (u->state == UP_IDLE) {	/* the server spoke or closed: drop it */
		upstream_close(u);
		return;
	}
	if (u->state != UP_CONNECTED || !u->ops)
		return;
	if (n < 0) {
		sock_reads(u, false);
		u->reading = false;
	}
	u->ops->read(u, u->ud, n);
}

/**
 * sock_reads() - start or stop reading the socket
 * @u:		connection
 * @on:		read
 */
static void sock_reads(struct upstream *u, bool on)
{
	if (u->sock_reading == on)
		return;
	u->sock_reading = on;
	if (on)
		uv_read_start((uv_stream_t *)&u->tcp, on_alloc, on_read);
	else
		uv_read_stop((uv_stream_t *)&u->tcp);
}

/**
 * upstream_read() - start or stop reading from the server
 * @u:		connected connection
 * @on:		whether the owner has room
 *
 * With TLS, records already received are decrypted from the next timer
 * tick on, never from inside this call.
 */
void upstream_read(struct upstream *u, bool on)
{
	if (u->state != UP_CONNECTED)
		return;
	if (u->tls) {
		if (on)
			u->starved = false;
		u->reading = on && !u->tls_end;
		tls_update(u);
		return;
	}
	if (u->reading == on)
		return;
	u->reading = on;
	sock_reads(u, on);
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
 *
 * With TLS, close_notify goes first; a failure shows up as a read error.
 */
void upstream_shutdown(struct upstream *u)
{
	uv_shutdown_t *req;

	if (u->state != UP_CONNECTED)
		return;
	if (u->tls)
		(void)tls_client_close_notify(u->tls);
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
	    pool->nidle >= UPSTREAM_POOL_MAX ||
	    (u->tls && (u->tls_end || u->sock_end || tls_client_pending(u->tls)))) {
		upstream_close(u);
		return;
	}
	for (x = pool->idle; x; x = x->pnext)
		if (x->port == u->port && x->secure == u->secure &&
		    hostpat_host_equal(&x->host, &u->host))
			same++;
	if (same >= UPSTREAM_POOL_PER_ORIGIN) {
		upstream_close(u);
		return;
	}
	u->state = UP_IDLE;
	u->want_drain = false;
	u->reading = true;
	u->tls_more = u->starved = false;
	sock_reads(u, true);		/* into scratch: any byte closes it */
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
	tls_client_free(u->tls);	/* @why stays: it is ours */
	u->tls = NULL;
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
	tls_client_conf_unref(pool->tls);	/* live TLS connections hold their own */
	pool->tls = NULL;
}
