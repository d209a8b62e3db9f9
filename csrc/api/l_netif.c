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
 * Output: ops.output appends [len][frame] to a fill buffer (NETIF_TX bytes).
 * After each batch of input or timers, flush() hands the fill buffer to
 * libuv (uv_try_write, then one uv_write in flight); while it is in flight
 * the other buffer fills. When both are full, frames are dropped and
 * counted, like a NIC whose ring is full: TCP retransmits, ARP/DHCP retry.
 *
 * TCP flows: every SYN is accepted (subject to the engine's caps); the first
 * bytes are collected (FLOW_SNIFF_MAX) and classified (net/flow.c). The
 * verdict, and every refusal, is reported once per flow to Lua through
 * on_event (user value 1) — an audit record, not a per-packet call. Flows
 * that send nothing for FLOW_SNIFF_MS are reset. HTTP and TLS mediation
 * are not wired in yet: such flows are reset with reason "not mediated".
 *
 * Timers: one uv_timer, armed for the earlier of net_next_timer() and the
 * earliest sniff deadline.
 */

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "net/flow.h"
#include "net/net.h"
#include "net/tcp.h"

#define NETIF_MT	"gondolin.netif"
#define NETIF_TX	(512 * 1024)		/* per output buffer (two of them) */
#define NETIF_RX	(64 * 1024 + NET_MAX_FRAME + 4)

enum { UV_ON_EVENT = 1, UV_COUNT = UV_ON_EVENT };

struct flow {
	struct flow *next, **pprev;
	struct netif *nif;
	struct tcp_conn *c;
	uint64_t deadline;
	size_t n;
	uint8_t buf[FLOW_SNIFF_MAX];
};

struct netif {
	struct api_handle h;	/* must be first */
	uv_pipe_t pipe;
	uv_timer_t timer;
	uv_write_t wreq;
	struct net net;
	int closed, handles;
	struct netif **slot;
	struct flow *flows;
	uint8_t *rx;
	size_t rx_len;
	uint8_t *tx[2];		/* tx[0] fills, tx[1] is in flight */
	size_t tx_len[2];
	int writing;
	uint64_t tx_dropped;
};

static void netif_flush(struct netif *nif);
static void netif_arm(struct netif *nif);

/* ---- audit events (once per flow decision) ---- */

static void ip_str(uint32_t ip, char out[INET_ADDRSTRLEN])
{
	struct in_addr a = { htonl(ip) };

	inet_ntop(AF_INET, &a, out, INET_ADDRSTRLEN);
}

/**
 * flow_event() - tell Lua what was decided about a flow
 * @nif:	interface
 * @c:		the connection
 * @decision:	"deny", "allow", ...
 * @kind:	flow kind name
 * @reason:	why (may be NULL)
 * @sni:	TLS server name (may be NULL or "")
 */
static void flow_event(struct netif *nif, const struct tcp_conn *c, const char *decision,
		       const char *kind, const char *reason, const char *sni)
{
	lua_State *L = nif->h.L;
	char ip[INET_ADDRSTRLEN];
	const char *name;

	if (nif->closed)
		return;
	lua_createtable(L, 0, 8);
	lua_pushstring(L, decision);
	lua_setfield(L, -2, "decision");
	lua_pushstring(L, kind);
	lua_setfield(L, -2, "kind");
	if (reason) {
		lua_pushstring(L, reason);
		lua_setfield(L, -2, "reason");
	}
	ip_str(c->dst_ip, ip);
	lua_pushstring(L, ip);
	lua_setfield(L, -2, "dst_ip");
	lua_pushinteger(L, c->dst_port);
	lua_setfield(L, -2, "dst_port");
	name = dns_pool_name(nif->net.dns, c->dst_ip);
	if (name) {
		lua_pushstring(L, name);
		lua_setfield(L, -2, "host");
	}
	if (sni && *sni) {
		lua_pushstring(L, sni);
		lua_setfield(L, -2, "sni");
	}
	api_call_uservalue(L, nif, UV_ON_EVENT, 1);
}

/* ---- flows ---- */

static void flow_unlink(struct flow *f)
{
	*f->pprev = f->next;
	if (f->next)
		f->next->pprev = f->pprev;
	f->c->user = NULL;
	free(f);
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

	flow_event(nif, c, "deny", kind, reason, sni);
	flow_unlink(f);
	tcp_abort(&nif->net, c);
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
	if (fc.kind == FLOW_REFUSED)
		flow_refuse(f, "unknown", fc.reason, NULL);
	else
		flow_refuse(f, flow_kind_name(fc.kind), "not mediated",
			    fc.kind == FLOW_TLS ? fc.hello.sni : NULL);
}

static bool on_tcp_accept(void *ud, struct tcp_conn *c)
{
	struct netif *nif = ud;
	struct flow *f = calloc(1, sizeof(*f));

	if (!f)
		return false;
	f->nif = nif;
	f->c = c;
	f->deadline = uv_now(nif->timer.loop) + FLOW_SNIFF_MS;
	f->next = nif->flows;
	f->pprev = &nif->flows;
	if (nif->flows)
		nif->flows->pprev = &f->next;
	nif->flows = f;
	c->user = f;
	return true;
}

static void on_tcp_event(void *ud, struct tcp_conn *c, enum tcp_event ev)
{
	struct flow *f = c->user;

	(void)ud;
	if (!f)
		return;
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

static void on_output(void *ud, const uint8_t *frame, size_t len)
{
	struct netif *nif = ud;
	uint8_t *p;

	if (nif->closed || nif->tx_len[0] + 4 + len > NETIF_TX) {
		nif->tx_dropped++;
		return;
	}
	p = nif->tx[0] + nif->tx_len[0];
	p[0] = (uint8_t)(len >> 24);
	p[1] = (uint8_t)(len >> 16);
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
	memcpy(p + 4, frame, len);
	nif->tx_len[0] += 4 + len;
}

static void on_log(void *ud, const char *msg)
{
	(void)ud;
	(void)msg;	/* counters carry the story; keep the loop quiet */
}

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

static void on_alloc(uv_handle_t *handle, size_t hint, uv_buf_t *buf)
{
	struct netif *nif = handle->data;

	(void)hint;
	*buf = uv_buf_init((char *)nif->rx + nif->rx_len, (unsigned)(NETIF_RX - nif->rx_len));
}

static void netif_shut(struct netif *nif);

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
		size_t len = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];

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
	memmove(nif->rx, nif->rx + off, nif->rx_len - off);
	nif->rx_len -= off;
	netif_flush(nif);
	netif_arm(nif);
}

/* ---- timers ---- */

static void on_timer(uv_timer_t *t)
{
	struct netif *nif = t->data;
	uint64_t now = uv_now(t->loop);
	struct flow *f, *next;

	net_timer(&nif->net, now);
	for (f = nif->flows; f; f = next) {
		next = f->next;
		if (f->deadline <= now)
			flow_refuse(f, "unknown", "sniff timeout", NULL);
	}
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
	struct flow *f;

	for (f = nif->flows; f; f = f->next)
		if (f->deadline < due)
			due = f->deadline;
	if (due == UINT64_MAX) {
		uv_timer_stop(&nif->timer);
		return;
	}
	uv_timer_start(&nif->timer, on_timer, due > now ? due - now : 0, 0);
}

/* ---- lifetime ---- */

static void on_handle_closed(uv_handle_t *h)
{
	struct netif *nif = h->data;

	if (--nif->handles > 0)
		return;
	free(nif->rx);
	free(nif->tx[0]);
	free(nif->tx[1]);
	free(nif);
}

/**
 * netif_shut() - stop everything; memory goes when both handles closed
 * @nif:	interface
 */
static void netif_shut(struct netif *nif)
{
	if (nif->closed)
		return;
	nif->closed = 1;
	if (nif->slot)
		*nif->slot = NULL;
	net_free(&nif->net);	/* frees flows' conns; our flows go below */
	while (nif->flows) {
		struct flow *f = nif->flows;

		nif->flows = f->next;
		free(f);
	}
	uv_close((uv_handle_t *)&nif->pipe, on_handle_closed);
	uv_close((uv_handle_t *)&nif->timer, on_handle_closed);
}

/* core.netif(fd, {on_event = fn}) -> netif; owns fd from now on */
static int lnetif_new(lua_State *L)
{
	static const struct net_ops ops = {
		.output = on_output, .tcp_accept = on_tcp_accept,
		.tcp_event = on_tcp_event, .log = on_log,
	};
	int fd = (int)luaL_checkinteger(L, 1);
	struct net_config cfg;
	struct netif **p, *nif;

	luaL_checktype(L, 2, LUA_TTABLE);
	p = lua_newuserdatauv(L, sizeof(*p), UV_COUNT);
	*p = NULL;
	luaL_setmetatable(L, NETIF_MT);
	nif = calloc(1, sizeof(*nif));
	if (!nif)
		return luaL_error(L, "out of memory");
	nif->rx = malloc(NETIF_RX);
	nif->tx[0] = malloc(NETIF_TX);
	nif->tx[1] = malloc(NETIF_TX);
	net_config_default(&cfg);
	if (!nif->rx || !nif->tx[0] || !nif->tx[1] || net_init(&nif->net, &cfg, &ops, nif) < 0) {
		free(nif->rx);
		free(nif->tx[0]);
		free(nif->tx[1]);
		free(nif);
		return luaL_error(L, "out of memory");
	}
	uv_pipe_init(api_loop(L), &nif->pipe, 0);
	uv_timer_init(api_loop(L), &nif->timer);
	nif->pipe.data = nif->timer.data = nif;
	nif->handles = 2;
	*p = nif;
	nif->slot = p;
	api_handle_register(L, -1, nif);
	lua_getfield(L, 2, "on_event");
	lua_setiuservalue(L, -2, UV_ON_EVENT);
	if (uv_pipe_open(&nif->pipe, fd) < 0 ||
	    uv_read_start((uv_stream_t *)&nif->pipe, on_alloc, on_read) < 0) {
		netif_shut(nif);
		return api_fail(L, "cannot read the network socket", "io");
	}
	return 1;
}

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
	const struct net_stats *s = &nif->net.stats;

	lua_createtable(L, 0, 16);
#define STAT(f_) (lua_pushinteger(L, (lua_Integer)s->f_), lua_setfield(L, -2, #f_))
	STAT(frames_in); STAT(frames_out); STAT(dropped); STAT(arp_replies);
	STAT(icmp_echo); STAT(dhcp_replies); STAT(dns_queries); STAT(dns_malformed);
	STAT(udp_dropped); STAT(ipv6_dropped); STAT(bad_checksum); STAT(tcp_accepted);
	STAT(tcp_refused); STAT(tcp_resets_sent); STAT(tcp_retransmits);
#undef STAT
	lua_pushinteger(L, (lua_Integer)nif->tx_dropped);
	lua_setfield(L, -2, "tx_dropped");
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

void api_open_netif(lua_State *L)
{
	luaL_newmetatable(L, NETIF_MT);
	luaL_setfuncs(L, netif_meta, 0);
	luaL_newlib(L, netif_methods);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
	lua_pushcfunction(L, lnetif_new);
	lua_setfield(L, -2, "netif");
	lua_pushcfunction(L, lflow_classify);
	lua_setfield(L, -2, "flow_classify");
}
