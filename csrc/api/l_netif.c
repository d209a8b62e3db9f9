/* SPDX-License-Identifier: MIT */
/* l_netif.c - a VM's network interface: the stack on QEMU's virtio-net socket
 *
 * Theory of Operation
 *
 * QEMU's `-netdev stream` end is one side of a socketpair we created; its
 * byte stream carries Ethernet frames, each behind a 4-byte big-endian
 * length (written by QEMU, so not guest-forgeable, but still bounded: a
 * length above NET_MAX_FRAME ends the interface). Reads land in a fixed
 * buffer; every complete frame goes through net_input() in C. No Lua runs
 * per packet.
 *
 * Output: the stack builds each frame in place in a fill buffer (NETIF_TX
 * bytes, ops.tx_frame), after room for its length; ops.output then only
 * writes the 4-byte length (a frame built elsewhere is copied).
 * After each batch of input or timers, flush() hands the fill buffer to
 * libuv (uv_try_write, then one uv_write in flight); while it is in flight
 * the other buffer fills. When both are full, frames are dropped and
 * counted, like a NIC whose ring is full: TCP retransmits, ARP/DHCP retry.
 *
 * TCP flows: every SYN is accepted (subject to the engine's caps); the first
 * bytes are collected (FLOW_SNIFF_MAX) and classified (net/flow.c). An
 * HTTP/1.x flow is handed, with the bytes read so far, to the HTTP
 * mediation (csrc/http/proxy.c), which from then on gets the flow's TCP
 * events and reports one audit record per request. Every other verdict
 * is a refusal (reset) reported once per flow; TLS is refused until TLS
 * interception exists. Flows that send nothing for FLOW_SNIFF_MS are
 * reset: sniffing flows wait in accept order (their deadlines are too), so
 * only the oldest is looked at; mediated flows sit on a list of their own
 * and cost the timers nothing. Audit records go to Lua through on_event (user value 1), and
 * only when it is a function: no Lua runs per packet, and none per
 * request unless the policy has hooks or someone listens for events.
 *
 * Policy: user value 2 holds the compiled policy (l_hook.c) the mediation
 * decides with; without one, an empty policy denies every request. Its
 * hooks run through lhook_start(); the flow resumes from the loop when
 * they finish (see l_hook.c).
 *
 * Timers: one uv_timer, armed for the earlier of net_next_timer() and the
 * earliest sniff deadline; each mediated flow has its own (proxy.c).
 */

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/l_hook.h"
#include "http/proxy.h"
#include "net/flow.h"
#include "net/net.h"
#include "net/tcp.h"
#include "policy/policy.h"
#include "tls/leaf.h"
#include "tls/server.h"

#define NETIF_MT	"gondolin.netif"
#define NETIF_TX	(512 * 1024)		/* per output buffer (two of them) */
#define NETIF_RX	(64 * 1024 + NET_MAX_FRAME + 4)

enum { UV_ON_EVENT = 1, UV_POLICY, UV_TLS_CA, UV_COUNT = UV_TLS_CA };

/**
 * struct flow - one guest TCP connection
 * @next, @pprev: links on nif->sniffing or nif->mediated
 * @nif:	interface
 * @c:		the connection
 * @id:		flow id (audit records)
 * @deadline:	sniff deadline
 * @px:		HTTP mediation, once classified as HTTP
 * @n:		bytes sniffed
 * @buf:	those bytes
 */
struct flow {
	struct flow *next, **pprev;
	struct netif *nif;
	struct tcp_conn *c;
	struct tcp_stream ts;
	struct tls_server *tls;
	uint64_t id;
	uint64_t deadline;
	struct proxy *px;
	size_t n;
	uint8_t buf[FLOW_SNIFF_MAX];
};

/**
 * struct netif - one VM's network interface
 * @h:		binding handle (first)
 * @pipe:	QEMU's end of the stream
 * @timer:	stack and sniff timers
 * @wreq:	the write in flight
 * @net:	the stack
 * @closed:	netif_shut() ran
 * @handles:	libuv handles not yet closed (pipe, timer, mediation idle)
 * @slot:	the userdata's pointer, cleared on shut
 * @sniffing:	flows being classified, oldest first
 * @sniff_tail:	where the next sniffing flow is linked
 * @mediated:	flows handed to the HTTP mediation
 * @rx:		input buffer
 * @rx_len:	bytes in it
 * @tx:		output buffers: tx[0] fills, tx[1] is in flight
 * @tx_len:	their fill
 * @writing:	tx[1] is in flight
 * @tx_dropped:	frames dropped with both buffers full
 * @px:		HTTP mediation state
 * @tls:	what the guest TLS servers share
 * @leaves:	the CA's leaf cache (user value UV_TLS_CA keeps it alive), or
 *		NULL: TLS flows are refused
 * @dead:	TLS flows waiting to be freed from the timer, outside the TLS
 *		code that reported their end
 * @policy:	our reference to the policy
 * @next_flow:	next flow id
 * @events:	on_event is a function
 * @limit_hits:	times each per-VM bound (limit_names) refused something
 * @limit_ms:	when its last audit event went out (one a second at most:
 *		a SYN flood must not become an event flood)
 */
/* The per-VM bounds of this file and net/ (docs/security.md) */
static const char *const limit_names[] = {
	"tcp_flows", "tcp_half_open", "tcp_buffered", "http_flows",
};
#define NETIF_LIMITS	(sizeof(limit_names) / sizeof(limit_names[0]))
#define NETIF_LIMIT_EVENT_MS	1000

struct netif {
	struct api_handle h;	/* must be first */
	uv_pipe_t pipe;
	uv_timer_t timer;
	uv_write_t wreq;
	struct net net;
	int closed, handles;
	struct netif **slot;
	struct flow *sniffing, **sniff_tail;
	struct flow *mediated;
	uint8_t *rx;
	size_t rx_len;
	uint8_t *tx[2];
	size_t tx_len[2];
	int writing;
	uint64_t tx_dropped;
	struct proxy_ctx px;
	struct tls_server_ctx tls;
	struct tls_leaf_cache *leaves;
	struct flow *dead;
	struct policy *policy;
	uint64_t next_flow;
	bool events;
	uint64_t limit_hits[NETIF_LIMITS], limit_ms[NETIF_LIMITS];
};

static void netif_flush(struct netif *nif);
static void netif_arm(struct netif *nif);

/* ---- audit events ---- */

/**
 * ip_str() - dotted quad of a host-order address
 * @ip:		address
 * @out:	text
 */
static void ip_str(uint32_t ip, char out[INET_ADDRSTRLEN])
{
	struct in_addr a = { htonl(ip) };

	inet_ntop(AF_INET, &a, out, INET_ADDRSTRLEN);
}

/**
 * set_str() - t[k] = v when v is set
 * @L:		Lua state
 * @k:		key
 * @v:		value or NULL
 */
static void set_str(lua_State *L, const char *k, const char *v)
{
	if (!v)
		return;
	lua_pushstring(L, v);
	lua_setfield(L, -2, k);
}

/**
 * set_endpoints() - src/dst fields of an audit record
 * @L:		Lua state
 * @gip, @gport: guest end
 * @dip, @dport: destination
 */
static void set_endpoints(lua_State *L, uint32_t gip, unsigned gport, uint32_t dip,
			  unsigned dport)
{
	char ip[INET_ADDRSTRLEN];

	ip_str(gip, ip);
	lua_pushfstring(L, "%s:%d", ip, (int)gport);
	lua_setfield(L, -2, "src");
	ip_str(dip, ip);
	set_str(L, "dst_ip", ip);
	api_set_int(L, "dst_port", dport);
}

/**
 * flow_event() - tell Lua what was decided about a flow
 * @nif:	interface
 * @f:		the flow
 * @decision:	"deny", "allow", ...
 * @kind:	flow kind name
 * @reason:	why (may be NULL)
 * @sni:	TLS server name (may be NULL or "")
 */
static void flow_event(struct netif *nif, const struct flow *f, const char *decision,
		       const char *kind, const char *reason, const char *sni)
{
	const struct tcp_conn *c = f->c;
	lua_State *L = nif->h.L;

	if (nif->closed || !nif->events)
		return;
	lua_createtable(L, 0, 10);
	api_set_int(L, "flow", (lua_Integer)f->id);
	set_str(L, "decision", decision);
	set_str(L, "kind", kind);
	set_str(L, "reason", reason);
	set_endpoints(L, c->guest_ip, c->guest_port, c->dst_ip, c->dst_port);
	set_str(L, "host", dns_pool_name(nif->net.dns, c->dst_ip));
	if (sni && *sni)
		set_str(L, "sni", sni);
	api_call_uservalue(L, nif, UV_ON_EVENT, 1);
}

/**
 * on_limit() - a per-VM bound refused something: count it, and send an
 * audit event {kind = "limit", limit = name, hits = n} at most once a
 * second per bound
 * @ud:		interface
 * @name:	one of limit_names
 */
static void on_limit(void *ud, const char *name)
{
	struct netif *nif = ud;
	uint64_t now = uv_now(nif->timer.loop);
	lua_State *L = nif->h.L;
	size_t i;

	for (i = 0; i < NETIF_LIMITS && strcmp(limit_names[i], name); i++)
		;
	if (i == NETIF_LIMITS)
		return;
	nif->limit_hits[i]++;
	if (nif->closed || !nif->events ||
	    (nif->limit_ms[i] && now - nif->limit_ms[i] < NETIF_LIMIT_EVENT_MS))
		return;
	nif->limit_ms[i] = now;
	lua_createtable(L, 0, 3);
	set_str(L, "kind", "limit");
	set_str(L, "limit", name);
	api_set_int(L, "hits", (lua_Integer)nif->limit_hits[i]);
	api_call_uservalue(L, nif, UV_ON_EVENT, 1);
}

/**
 * px_event() - an audit record from the HTTP mediation
 * @ud:		interface
 * @ev:		record
 */
static void px_event(void *ud, const struct proxy_event *ev)
{
	struct netif *nif = ud;
	lua_State *L = nif->h.L;

	if (nif->closed || !nif->events)
		return;
	lua_createtable(L, 0, 24);
	set_str(L, "kind", "http");
	api_set_int(L, "flow", (lua_Integer)ev->flow);
	set_endpoints(L, ev->guest_ip, ev->guest_port, ev->dst_ip, ev->dst_port);
	set_str(L, "host", ev->host && *ev->host ? ev->host : NULL);
	if (ev->port)
		api_set_int(L, "port", ev->port);
	set_str(L, "method", ev->method && *ev->method ? ev->method : NULL);
	set_str(L, "path", ev->path && *ev->path ? ev->path : NULL);
	if (ev->status)
		api_set_int(L, "status", ev->status);
	api_set_int(L, "bytes_in", (lua_Integer)ev->bytes_in);
	api_set_int(L, "bytes_out", (lua_Integer)ev->bytes_out);
	lua_pushnumber(L, ev->duration_ms / 1000.0);
	lua_setfield(L, -2, "duration");
	set_str(L, "decision", ev->decision);
	set_str(L, "rule", ev->rule);
	set_str(L, "reason", ev->reason);
	set_str(L, "upstream", ev->upstream);
	if (ev->upstream) {
		lua_pushboolean(L, ev->reused);
		lua_setfield(L, -2, "reused");
	}
	if (ev->secrets)
		api_set_int(L, "secrets", ev->secrets);
	if (ev->masked)
		api_set_int(L, "masked", ev->masked);
	set_str(L, "secret", ev->violation);
	if (ev->websocket) {
		lua_pushboolean(L, 1);
		lua_setfield(L, -2, "websocket");
	}
	if (ev->tls) {
		lua_pushboolean(L, 1);
		lua_setfield(L, -2, "tls");
	}
	api_call_uservalue(L, nif, UV_ON_EVENT, 1);
}

/* ---- the HTTP mediation's other callbacks ---- */

/**
 * px_kick() - frames may be queued: send them, re-arm the stack's timer
 * @ud:		interface
 */
static void px_kick(void *ud)
{
	struct netif *nif = ud;

	if (nif->closed)
		return;
	netif_flush(nif);
	netif_arm(nif);
}

/**
 * push_policy() - push the policy userdata of @nif
 * @nif:	interface
 *
 * Return: true when pushed.
 */
static bool push_policy(struct netif *nif)
{
	lua_State *L = nif->h.L;

	if (!api_handle_push(L, nif))
		return false;
	if (lua_getiuservalue(L, -1, UV_POLICY) != LUA_TUSERDATA) {
		lua_pop(L, 2);
		return false;
	}
	lua_remove(L, -2);
	return true;
}

/**
 * px_on_request() - start on_request for a flow
 * @ud:		interface
 * @px:		flow
 * @rq:		request
 *
 * Return: 0, or -1.
 */
static int px_on_request(void *ud, struct proxy *px, const struct proxy_request *rq)
{
	struct netif *nif = ud;
	int rc;

	if (nif->closed || !push_policy(nif))
		return -1;
	rc = lhook_start(nif->h.L, -1, px, rq, NULL);
	lua_pop(nif->h.L, 1);
	return rc;
}

/**
 * px_on_response() - start on_response for a flow
 * @ud:		interface
 * @px:		flow
 * @rq:		request as sent
 * @rs:		response head
 *
 * Return: 0, or -1.
 */
static int px_on_response(void *ud, struct proxy *px, const struct proxy_request *rq,
			  const struct proxy_response *rs)
{
	struct netif *nif = ud;
	int rc;

	if (nif->closed || !push_policy(nif))
		return -1;
	rc = lhook_start(nif->h.L, -1, px, rq, rs);
	lua_pop(nif->h.L, 1);
	return rc;
}

/**
 * px_body() - a body a hook asked for is ready
 * @ud:		interface
 * @px:		flow
 * @p:		body
 * @n:		length
 * @err:	NULL or why not
 */
static void px_body(void *ud, struct proxy *px, const char *p, size_t n, const char *err)
{
	struct netif *nif = ud;

	lhook_body(nif->h.L, px, p, n, err);
}

/**
 * px_cancel() - a flow with a hook pending is gone
 * @ud:		interface
 * @px:		flow
 */
static void px_cancel(void *ud, struct proxy *px)
{
	struct netif *nif = ud;

	lhook_cancel(nif->h.L, px);
}

static const struct proxy_ops netif_proxy_ops = {
	.event = px_event,
	.kick = px_kick,
	.on_request = px_on_request,
	.on_response = px_on_response,
	.body = px_body,
	.cancel = px_cancel,
	.limit = on_limit,
};

/* ---- flows ---- */

/**
 * flow_del() - take a flow off its list
 * @f:		flow
 */
static void flow_del(struct flow *f)
{
	if (f->nif->sniff_tail == &f->next)
		f->nif->sniff_tail = f->pprev;
	*f->pprev = f->next;
	if (f->next)
		f->next->pprev = f->pprev;
}

/**
 * flow_unlink() - forget a flow
 * @f:		flow (freed; with TLS, from the next timer run)
 *
 * A TLS flow ends inside the TLS code (an error resets the connection,
 * which reports CLOSED at once), so it is only freed later.
 */
static void flow_unlink(struct flow *f)
{
	struct netif *nif = f->nif;

	flow_del(f);
	f->c->user = NULL;
	if (!f->tls) {
		free(f);
		return;
	}
	f->next = nif->dead;
	nif->dead = f;
	netif_arm(nif);
}

/**
 * flows_free_dead() - free the TLS flows that ended
 * @nif:	interface
 */
static void flows_free_dead(struct netif *nif)
{
	struct flow *f;

	while ((f = nif->dead)) {
		nif->dead = f->next;
		tls_server_free(f->tls);
		free(f);
	}
}

/**
 * flow_mediate() - move a flow classified as HTTP to the mediated list
 * @f:		flow (f->px set)
 */
static void flow_mediate(struct flow *f)
{
	struct netif *nif = f->nif;

	flow_del(f);
	f->next = nif->mediated;
	f->pprev = &nif->mediated;
	if (nif->mediated)
		nif->mediated->pprev = &f->next;
	nif->mediated = f;
}

/**
 * flow_refuse() - reset a flow and report why
 * @f:		flow (freed)
 * @kind:	what it was classified as
 * @reason:	why it is refused
 * @sni:	server name, if any
 */
static void flow_refuse(struct flow *f, const char *kind, const char *reason, const char *sni)
{
	struct netif *nif = f->nif;
	struct tcp_conn *c = f->c;

	flow_event(nif, f, "deny", kind, reason, sni);
	flow_unlink(f);
	tcp_abort(&nif->net, c);
}

/**
 * flow_tls_error() - a guest TLS flow failed; the reset follows
 * @ud:		flow
 * @why:	reason
 */
static void flow_tls_error(void *ud, const char *why)
{
	struct flow *f = ud;

	flow_event(f->nif, f, "error", "tls", why, f->tls ? f->tls->name : NULL);
}

/**
 * flow_tls() - put a TLS server on the flow, and the HTTP mediation on it
 * @f:		flow
 * @ch:		what the classifier read of the ClientHello
 *
 * The leaf is for the SNI, or without one for the destination's synthetic
 * DNS name; with neither there is no name to present, so we refuse.
 */
static void flow_tls(struct flow *f, const struct clienthello *ch)
{
	struct netif *nif = f->nif;
	const char *name = ch->sni[0] ? ch->sni : dns_pool_name(nif->net.dns, f->c->dst_ip);
	struct tls_leaf *leaf;
	char err[160];

	if (!nif->leaves) {
		flow_refuse(f, "tls", "TLS interception is not configured (no CA)", ch->sni);
		return;
	}
	if (!name) {
		flow_refuse(f, "tls", "no SNI, and the destination has no DNS name", NULL);
		return;
	}
	if (!proxy_room(&nif->px)) {
		flow_refuse(f, "tls", "too many HTTP flows at once", ch->sni);
		return;
	}
	leaf = tls_leaf_get(nif->leaves, name, uv_now(nif->timer.loop), err, sizeof(err));
	if (!leaf) {
		flow_refuse(f, "tls", err, ch->sni);
		return;
	}
	tcp_stream_init(&f->ts, &nif->net, f->c);
	f->tls = tls_server_new(&nif->tls, &f->ts.s, leaf, ch->sni, f->buf, f->n);
	if (f->tls)
		f->px = proxy_new(&nif->px, &f->tls->s, f->id, NULL, 0);
	if (!f->px) {
		tls_server_free(f->tls);
		f->tls = NULL;
		flow_refuse(f, "tls", "out of memory", ch->sni);
		return;
	}
	f->tls->on_error = flow_tls_error;
	f->tls->ud = f;
	flow_mediate(f);
	tls_server_start(f->tls);
}

/**
 * flow_sniff() - take the flow's first bytes and decide
 * @f:		flow
 */
static void flow_sniff(struct flow *f)
{
	struct netif *nif = f->nif;
	struct flow_class fc;

	f->n += tcp_read(&nif->net, f->c, f->buf + f->n, sizeof(f->buf) - f->n);
	if (flow_classify(f->buf, f->n, &fc) == 0)
		return;
	if (fc.kind == FLOW_HTTP) {
		tcp_stream_init(&f->ts, &nif->net, f->c);
		f->px = proxy_new(&nif->px, &f->ts.s, f->id, f->buf, f->n);
		if (f->px)
			flow_mediate(f);
		else
			flow_refuse(f, "http", errno == EMFILE ? "too many HTTP flows at once" : "out of memory", NULL);
	} else if (fc.kind == FLOW_TLS) {
		flow_tls(f, &fc.hello);
	} else {
		flow_refuse(f, "unknown", fc.reason, NULL);
	}
}

/**
 * on_tcp_accept() - a SYN: take every connection the engine allows
 * @ud:		interface
 * @c:		connection
 *
 * Return: true (false when out of memory).
 */
static bool on_tcp_accept(void *ud, struct tcp_conn *c)
{
	struct netif *nif = ud;
	struct flow *f = calloc(1, sizeof(*f));

	if (!f)
		return false;
	f->nif = nif;
	f->c = c;
	f->id = ++nif->next_flow;
	f->deadline = uv_now(nif->timer.loop) + FLOW_SNIFF_MS;
	f->pprev = nif->sniff_tail;	/* deadlines in accept order */
	*nif->sniff_tail = f;
	nif->sniff_tail = &f->next;
	c->user = f;
	return true;
}

/**
 * on_tcp_event() - the engine reports on a connection
 * @ud:		interface
 * @c:		connection
 * @ev:		event
 */
static void on_tcp_event(void *ud, struct tcp_conn *c, enum tcp_event ev)
{
	struct flow *f = c->user;

	(void)ud;
	if (!f)
		return;
	if (f->px) {
		tcp_stream_event(&f->ts, ev);
		if (ev == TCP_EV_RESET || ev == TCP_EV_CLOSED)
			flow_unlink(f);		/* the proxy let go of c */
		return;
	}
	switch (ev) {
	case TCP_EV_READABLE:
		flow_sniff(f);
		break;
	case TCP_EV_FIN:
		flow_refuse(f, "unknown", "closed before a request", NULL);
		break;
	case TCP_EV_RESET:
	case TCP_EV_CLOSED:
		flow_unlink(f);
		break;
	default:
		break;
	}
}

/* ---- frames in and out ---- */

/**
 * on_tx_frame() - let the stack build the next frame in the fill buffer
 * @ud:		interface
 *
 * Return: the spot after the next length prefix, or NULL when a whole
 * NET_MAX_FRAME might not fit (the stack then builds in its own buffer).
 */
static uint8_t *on_tx_frame(void *ud)
{
	struct netif *nif = ud;

	if (NETIF_TX - nif->tx_len[0] < 4 + NET_MAX_FRAME)
		return NULL;
	return nif->tx[0] + nif->tx_len[0] + 4;
}

/**
 * on_output() - queue one frame for QEMU, behind its 4-byte length
 * @ud:		interface
 * @frame:	Ethernet frame (usually built in place, see on_tx_frame())
 * @len:	its length
 *
 * Dropped and counted when the fill buffer is full (a full NIC ring).
 */
static void on_output(void *ud, const uint8_t *frame, size_t len)
{
	struct netif *nif = ud;
	uint8_t *p = nif->tx[0] + nif->tx_len[0];

	if (nif->closed || nif->tx_len[0] + 4 + len > NETIF_TX) {
		nif->tx_dropped++;
		return;
	}
	net_put_be32(p, (uint32_t)len);
	if (frame != p + 4)
		memcpy(p + 4, frame, len);
	nif->tx_len[0] += 4 + len;
}

/**
 * on_written() - the frames in flight reached QEMU's socket
 * @req:	write request
 * @status:	0 or a libuv error
 */
static void on_written(uv_write_t *req, int status)
{
	struct netif *nif = req->data;

	nif->writing = 0;
	nif->tx_len[1] = 0;
	if (status < 0 || nif->closed)
		return;
	netif_flush(nif);
}

/**
 * netif_flush() - hand queued output to libuv; one write in flight at most
 * @nif:	interface
 */
static void netif_flush(struct netif *nif)
{
	uint8_t *t;
	uv_buf_t b;
	int n;

	if (nif->writing || nif->tx_len[0] == 0 || nif->closed)
		return;
	t = nif->tx[1];
	nif->tx[1] = nif->tx[0];
	nif->tx[0] = t;
	nif->tx_len[1] = nif->tx_len[0];
	nif->tx_len[0] = 0;
	b = uv_buf_init((char *)nif->tx[1], (unsigned)nif->tx_len[1]);
	n = uv_try_write((uv_stream_t *)&nif->pipe, &b, 1);
	if (n == (int)b.len) {
		nif->tx_len[1] = 0;
		return;
	}
	if (n > 0) {
		b.base += n;
		b.len -= (size_t)n;
	}
	nif->wreq.data = nif;
	nif->writing = 1;
	if (uv_write(&nif->wreq, (uv_stream_t *)&nif->pipe, &b, 1, on_written) < 0) {
		nif->writing = 0;
		nif->tx_len[1] = 0;
	}
}

/**
 * on_alloc() - read into the free end of the input buffer
 * @handle:	the pipe
 * @hint:	ignored
 * @buf:	output
 */
static void on_alloc(uv_handle_t *handle, size_t hint, uv_buf_t *buf)
{
	struct netif *nif = handle->data;

	(void)hint;
	*buf = uv_buf_init((char *)nif->rx + nif->rx_len, (unsigned)(NETIF_RX - nif->rx_len));
}

static void netif_shut(struct netif *nif);

/**
 * on_read() - frames from QEMU: every complete one goes to net_input()
 * @s:		the pipe
 * @n:		bytes read, or a libuv error
 * @buf:	the buffer on_alloc() gave
 */
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct netif *nif = s->data;
	uint64_t now = uv_now(nif->timer.loop);
	size_t off = 0;

	(void)buf;
	if (n < 0) {
		netif_shut(nif);
		return;
	}
	nif->rx_len += (size_t)n;
	while (nif->rx_len - off >= 4) {
		const uint8_t *p = nif->rx + off;
		size_t len = net_get_be32(p);

		if (len > NET_MAX_FRAME) {	/* QEMU never does this: stop */
			netif_shut(nif);
			return;
		}
		if (nif->rx_len - off - 4 < len)
			break;
		net_input(&nif->net, p + 4, len, now);
		off += 4 + len;
		if (nif->closed)
			return;
	}
	if (off) {
		memmove(nif->rx, nif->rx + off, nif->rx_len - off);
		nif->rx_len -= off;
	}
	netif_flush(nif);
	netif_arm(nif);
}

/* ---- timers ---- */

/**
 * on_timer() - the stack's timers and the sniff deadlines
 * @t:		the interface's timer
 */
static void on_timer(uv_timer_t *t)
{
	struct netif *nif = t->data;
	uint64_t now = uv_now(t->loop);

	flows_free_dead(nif);
	net_timer(&nif->net, now);
	while (nif->sniffing && nif->sniffing->deadline <= now)
		flow_refuse(nif->sniffing, "unknown", "sniff timeout", NULL);
	netif_flush(nif);
	netif_arm(nif);
}

/**
 * netif_arm() - set the timer for the next thing due
 * @nif:	interface
 */
static void netif_arm(struct netif *nif)
{
	uint64_t due = net_next_timer(&nif->net), now = uv_now(nif->timer.loop);

	if (nif->sniffing && nif->sniffing->deadline < due)
		due = nif->sniffing->deadline;
	if (nif->dead)
		due = now;
	if (due == UINT64_MAX) {
		uv_timer_stop(&nif->timer);
		return;
	}
	uv_timer_start(&nif->timer, on_timer, due > now ? due - now : 0, 0);
}

/* ---- lifetime ---- */

/**
 * on_handle_closed() - one of our handles closed; the last frees
 * @h:		pipe, timer or the mediation's idle handle
 */
static void on_handle_closed(uv_handle_t *h)
{
	struct netif *nif = h->data;

	if (--nif->handles > 0)
		return;
	policy_unref(nif->policy);
	if (nif->leaves)
		tls_server_ctx_free(&nif->tls);
	free(nif->rx);
	free(nif->tx[0]);
	free(nif->tx[1]);
	free(nif);
}

/**
 * netif_shut() - stop everything; memory goes when all handles closed
 * @nif:	interface
 *
 * Mediated flows end first (no audit records, hooks cancelled), then the
 * stack, which frees the guest connections.
 */
static void netif_shut(struct netif *nif)
{
	struct flow *f;

	if (nif->closed)
		return;
	nif->closed = 1;
	if (nif->slot)
		*nif->slot = NULL;
	for (f = nif->mediated; f; f = f->next)
		f->px = NULL;
	proxy_ctx_close(&nif->px, on_handle_closed);
	net_free(&nif->net);	/* frees flows' conns; our flows go below */
	while ((f = nif->sniffing ? nif->sniffing : nif->mediated)) {
		flow_del(f);
		tls_server_free(f->tls);
		free(f);
	}
	flows_free_dead(nif);
	uv_close((uv_handle_t *)&nif->pipe, on_handle_closed);
	uv_close((uv_handle_t *)&nif->timer, on_handle_closed);
}

/*
 * core.netif(fd, {on_event = fn, policy = compiled, tls_ca = core.tls_ca,
 * tls_chacha_first = bool}) -> netif; owns fd from now on. Without a policy
 * every HTTP request is denied; without a CA every TLS flow is refused.
 */
static int lnetif_new(lua_State *L)
{
	static const struct net_ops ops = {
		.output = on_output, .tx_frame = on_tx_frame,
		.tcp_accept = on_tcp_accept, .tcp_event = on_tcp_event,
		.limit = on_limit,
	};
	int fd = (int)luaL_checkinteger(L, 1);
	bool hook_req = false, hook_res = false, chacha;
	struct policy *pol = NULL;
	const char *err = NULL;
	struct net_config cfg;
	struct netif **p, *nif;

	luaL_checktype(L, 2, LUA_TTABLE);
	if (lua_getfield(L, 2, "policy") != LUA_TNIL)
		pol = lhook_policy(L, -1, &hook_req, &hook_res);
	lua_pop(L, 1);
	if (pol)
		policy_ref(pol);
	else if (!(pol = policy_new(0, 0, 0, 0, &err)))
		return luaL_error(L, "out of memory");
	p = lua_newuserdatauv(L, sizeof(*p), UV_COUNT);
	*p = NULL;
	luaL_setmetatable(L, NETIF_MT);
	nif = calloc(1, sizeof(*nif));
	if (!nif) {
		policy_unref(pol);
		return luaL_error(L, "out of memory");
	}
	nif->policy = pol;
	nif->sniff_tail = &nif->sniffing;
	nif->rx = malloc(NETIF_RX);
	nif->tx[0] = malloc(NETIF_TX);
	nif->tx[1] = malloc(NETIF_TX);
	net_config_default(&cfg);
	if (!nif->rx || !nif->tx[0] || !nif->tx[1] || net_init(&nif->net, &cfg, &ops, nif) < 0) {
		free(nif->rx);
		free(nif->tx[0]);
		free(nif->tx[1]);
		free(nif);
		policy_unref(pol);
		return luaL_error(L, "out of memory");
	}
	uv_pipe_init(api_loop(L), &nif->pipe, 0);
	uv_timer_init(api_loop(L), &nif->timer);
	nif->pipe.data = nif->timer.data = nif;
	proxy_ctx_init(&nif->px, api_loop(L), &nif->net, pol, &netif_proxy_ops, nif);
	nif->px.hook_request = hook_req;
	nif->px.hook_response = hook_res;
	nif->px.idle.data = nif;	/* on_handle_closed() finds us through it */
	nif->handles = 3;
	*p = nif;
	nif->slot = p;
	api_handle_register(L, -1, nif);
	lua_getfield(L, 2, "on_event");
	nif->events = lua_isfunction(L, -1);
	lua_setiuservalue(L, -2, UV_ON_EVENT);
	lua_getfield(L, 2, "policy");
	lua_setiuservalue(L, -2, UV_POLICY);
	if (lua_getfield(L, 2, "tls_ca") != LUA_TNIL) {
		nif->leaves = api_tls_cache(L, -1);
		lua_getfield(L, 2, "tls_chacha_first");
		chacha = lua_toboolean(L, -1);
		lua_pop(L, 1);
		if (tls_server_ctx_init(&nif->tls, chacha) < 0)
			nif->leaves = NULL;
	}
	lua_setiuservalue(L, -2, UV_TLS_CA);
	if (uv_pipe_open(&nif->pipe, fd) < 0 ||
	    uv_read_start((uv_stream_t *)&nif->pipe, on_alloc, on_read) < 0) {
		netif_shut(nif);
		return api_fail(L, "cannot read the network socket", "io");
	}
	return 1;
}

/**
 * check_netif() - the open interface at @idx
 * @L:		Lua state
 * @idx:	stack index
 *
 * Return: it (raises when closed).
 */
static struct netif *check_netif(lua_State *L, int idx)
{
	struct netif **p = luaL_checkudata(L, idx, NETIF_MT);

	luaL_argcheck(L, *p != NULL, idx, "netif is closed");
	return *p;
}

/* netif:stats() -> table of counters */
static int lnetif_stats(lua_State *L)
{
	struct netif *nif = check_netif(L, 1);

	api_push_net_stats(L, &nif->net.stats);
	api_set_int(L, "tx_dropped", (lua_Integer)nif->tx_dropped);
	api_set_int(L, "tls_handshakes", (lua_Integer)nif->tls.handshakes);
	api_set_int(L, "tls_resumed", (lua_Integer)nif->tls.resumed);
	api_set_int(L, "tls_failures", (lua_Integer)nif->tls.failures);
	lua_createtable(L, 0, NETIF_LIMITS);
	for (size_t i = 0; i < NETIF_LIMITS; i++)
		api_set_int(L, limit_names[i], (lua_Integer)nif->limit_hits[i]);
	lua_setfield(L, -2, "limits");
	return 1;
}

/* netif:close(); a second close does nothing */
static int lnetif_close(lua_State *L)
{
	struct netif **p = luaL_checkudata(L, 1, NETIF_MT);

	if (*p)
		netif_shut(*p);
	*p = NULL;
	return 0;
}

/* core.flow_classify(bytes) -> kind, reason|sni  (for specs) */
static int lflow_classify(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	struct flow_class fc;

	if (flow_classify((const uint8_t *)s, len, &fc) == 0) {
		lua_pushliteral(L, "undecided");
		return 1;
	}
	lua_pushstring(L, flow_kind_name(fc.kind));
	if (fc.kind == FLOW_REFUSED)
		lua_pushstring(L, fc.reason);
	else if (fc.kind == FLOW_TLS)
		lua_pushstring(L, fc.hello.sni);
	else
		lua_pushnil(L);
	return 2;
}

static const luaL_Reg netif_methods[] = {
	{ "stats",	lnetif_stats },
	{ "close",	lnetif_close },
	{ NULL, NULL }
};

static const luaL_Reg netif_meta[] = {
	{ "__gc",	lnetif_close },
	{ "__close",	lnetif_close },
	{ NULL, NULL }
};

/**
 * api_open_netif() - register core.netif and core.flow_classify
 * @L:		Lua state, the core table on top
 */
void api_open_netif(lua_State *L)
{
	api_new_class(L, NETIF_MT, netif_meta, netif_methods);
	lua_pushcfunction(L, lnetif_new);
	lua_setfield(L, -2, "netif");
	lua_pushcfunction(L, lflow_classify);
	lua_setfield(L, -2, "flow_classify");
}
