/* SPDX-License-Identifier: MIT */
/* l_net.c - core.net: one guest network stack and its TCP connections in Lua
 *
 * Theory of Operation
 *
 * core.net{...} returns a "gondolin.net" userdata that holds a struct net
 * inline (no libuv handle: nothing outlives the Lua value). Its user
 * values are the callbacks (1 on_output, 2 on_accept, 3 on_event, 4 on_log)
 * and (5) the anchor table of open connections.
 *
 * The stack only runs inside a call from Lua: net:input(), net:timer() and
 * the connection methods. Each of them "enters" the net, recording the
 * calling thread in ln->L, so the stack's callbacks (ops.output, accept,
 * event, log) run on that thread. Every callback runs inside lua_pcall of
 * a C function (lnet_protected), so no Lua error or memory error can
 * longjmp through the protocol code; an error is passed to on_log (or
 * printed on stderr without one) and fails closed: a frame is lost, a
 * connection is refused or aborted.
 *
 * Connections. On a SYN the engine asks ops.tcp_accept; we create a
 * "gondolin.tcp_conn" userdata (user value 1: the net, so a connection
 * keeps its net alive), anchor it in table 5 keyed by its own address,
 * point c->user at it and ask on_accept(conn). Only a true result accepts;
 * with no on_accept every connection is refused (deny by default). After
 * TCP_EV_CLOSED (or a refusal) the userdata is invalidated (its c is
 * cleared, methods raise "connection is closed") and un-anchored; the
 * engine frees the struct tcp_conn after that event.
 *
 * Callbacks cannot yield (they run under lua_pcall from C; a yield is an
 * error like any other). Times are milliseconds on the embedder's clock:
 * input/timer take "now", next_timer() answers in the same clock.
 *
 * Re-entrancy. Callbacks may call connection methods (read, write, ...)
 * except from on_output, and may not call net:input() or net:timer(),
 * which raise. net:close() from a callback is deferred until the
 * outermost call into the net returns. Closing (or collecting) the net
 * invalidates every connection first, then frees the stack; callbacks the
 * engine makes while being freed are ignored.
 */

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "net/net.h"
#include "net/tcp.h"

#define NET_MT		"gondolin.net"
#define CONN_MT		"gondolin.tcp_conn"

/* Ceilings on what core.net{} accepts (the error names them). */
#define LNET_MIN_MTU		576
#define LNET_MAX_MTU		NET_MAX_MTU
#define LNET_MAX_TCP		65536
#define LNET_MIN_TCP_BUF	4096
#define LNET_MAX_TCP_BUF	(16u * 1024 * 1024)

enum { UV_ON_OUTPUT = 1, UV_ON_ACCEPT, UV_ON_EVENT, UV_ON_LOG, UV_CONNS,
       UV_COUNT = UV_CONNS };

static const char *const event_names[] = {
	[TCP_EV_ESTABLISHED] = "established",
	[TCP_EV_READABLE] = "readable",
	[TCP_EV_WRITABLE] = "writable",
	[TCP_EV_FIN] = "fin",
	[TCP_EV_RESET] = "reset",
	[TCP_EV_CLOSED] = "closed",
};
static_assert(sizeof(event_names) / sizeof(event_names[0]) == TCP_EV_CLOSED + 1,
	      "one name per enum tcp_event");

/**
 * struct lnet - the net userdata's contents
 * @h:		handle bookkeeping (must be first: api_handle_register)
 * @n:		the stack
 * @L:		thread of the call in progress; NULL outside calls
 * @depth:	nested calls into the stack
 * @in_output:	inside on_output (connection methods refused)
 * @closed:	net_free() done (or under way)
 * @close_pending: close() was called inside a callback
 * @has_log:	on_log was given
 */
struct lnet {
	struct api_handle h;
	struct net n;
	lua_State *L;
	int depth;
	int in_output;
	int closed;
	int close_pending;
	bool has_log;
};

/**
 * struct lconn - the tcp_conn userdata's contents
 * @c:		the engine's connection; NULL once closed
 * @ln:		its net (kept alive by user value 1)
 */
struct lconn {
	struct tcp_conn *c;
	struct lnet *ln;
};

enum lnet_kind { K_OUTPUT, K_ACCEPT, K_EVENT, K_FORGET, K_LOG };

/**
 * struct lnet_call - one callback to run under lua_pcall
 * @ln:		net
 * @kind:	which callback
 * @data, @len:	frame (K_OUTPUT) or message (K_LOG)
 * @c:		connection (K_ACCEPT)
 * @lc:		connection userdata contents (K_EVENT, K_FORGET)
 * @ev:		event (K_EVENT)
 * @accepted:	result of on_accept
 */
struct lnet_call {
	struct lnet *ln;
	enum lnet_kind kind;
	const void *data;
	size_t len;
	struct tcp_conn *c;
	struct lconn *lc;
	enum tcp_event ev;
	int accepted;
};

/**
 * check_net() - the open net at @idx
 * @L:		Lua state
 * @idx:	argument index
 *
 * Return: the net; raises if it is not a net or is closed
 */
static struct lnet *check_net(lua_State *L, int idx)
{
	struct lnet *ln = luaL_checkudata(L, idx, NET_MT);

	luaL_argcheck(L, !ln->closed && !ln->close_pending, idx, "net is closed");
	return ln;
}

/**
 * check_conn() - the open connection at @idx
 * @L:		Lua state
 * @idx:	argument index
 *
 * Return: the connection; raises if closed or used from on_output
 */
static struct lconn *check_conn(lua_State *L, int idx)
{
	struct lconn *lc = luaL_checkudata(L, idx, CONN_MT);

	luaL_argcheck(L, lc->c && !lc->ln->closed && !lc->ln->close_pending,
		      idx, "connection is closed");
	if (lc->ln->in_output)
		luaL_error(L, "connection methods cannot be called from on_output");
	return lc;
}

/**
 * push_conn() - push the anchored userdata of a connection
 * @L:		Lua state
 * @net_idx:	index of the net userdata
 * @lc:		connection contents
 *
 * Return: 1 pushed, 0 (nothing pushed) if it is not anchored
 */
static int push_conn(lua_State *L, int net_idx, struct lconn *lc)
{
	if (lua_getiuservalue(L, net_idx, UV_CONNS) != LUA_TTABLE) {
		lua_pop(L, 1);
		return 0;
	}
	if (lua_rawgetp(L, -1, lc) != LUA_TUSERDATA) {
		lua_pop(L, 2);
		return 0;
	}
	lua_remove(L, -2);
	return 1;
}

/**
 * call_accept() - create the connection userdata and ask on_accept
 * @L:		Lua state (net userdata at 2)
 * @k:		the call
 *
 * Return: 0 (results in @k)
 */
static int call_accept(lua_State *L, struct lnet_call *k)
{
	struct lconn *lc = lua_newuserdatauv(L, sizeof(*lc), 1);

	lc->c = NULL;
	lc->ln = k->ln;
	luaL_setmetatable(L, CONN_MT);
	lua_pushvalue(L, 2);
	lua_setiuservalue(L, 3, 1);
	if (lua_getiuservalue(L, 2, UV_CONNS) != LUA_TTABLE)
		return 0;
	lua_pushvalue(L, 3);
	lua_rawsetp(L, -2, lc);
	lc->c = k->c;			/* anchored: safe to hand out */
	k->c->user = lc;
	k->lc = lc;
	if (lua_getiuservalue(L, 2, UV_ON_ACCEPT) != LUA_TFUNCTION)
		return 0;
	lua_pushvalue(L, 3);
	lua_call(L, 1, 1);
	k->accepted = lua_toboolean(L, -1);
	return 0;
}

/**
 * lnet_protected() - run one callback; called through lua_pcall
 * @L:		Lua state; 1: light userdata struct lnet_call
 *
 * Return: 0
 */
static int lnet_protected(lua_State *L)
{
	struct lnet_call *k = lua_touserdata(L, 1);
	int slot = k->kind == K_OUTPUT ? UV_ON_OUTPUT :
		   k->kind == K_LOG ? UV_ON_LOG : UV_ON_EVENT;

	if (!api_handle_push(L, k->ln))		/* net at 2 */
		return 0;
	if (k->kind == K_ACCEPT)
		return call_accept(L, k);
	if (k->kind == K_FORGET) {
		if (lua_getiuservalue(L, 2, UV_CONNS) == LUA_TTABLE) {
			lua_pushnil(L);
			lua_rawsetp(L, -2, k->lc);
		}
		return 0;
	}
	if (lua_getiuservalue(L, 2, slot) != LUA_TFUNCTION)
		return 0;
	if (k->kind == K_EVENT) {
		if (!push_conn(L, 2, k->lc))
			return 0;
		lua_pushstring(L, event_names[k->ev]);
		lua_call(L, 2, 0);
	} else {
		lua_pushlstring(L, k->data, k->len);
		lua_call(L, 1, 0);
	}
	return 0;
}

/**
 * traceback() - message handler for callbacks
 * @L:		Lua state
 *
 * Return: 1 (the message with a traceback)
 */
static int traceback(lua_State *L)
{
	luaL_traceback(L, L, lua_tostring(L, 1), 1);
	return 1;
}

static void report(struct lnet *ln, const char *err, bool from_log);

/**
 * lnet_call() - run @k under lua_pcall on the calling thread
 * @k:		the call
 *
 * Return: 0, or -1 if it raised (reported through on_log, or on stderr
 * without one) or could not run
 */
static int lnet_call(struct lnet_call *k)
{
	lua_State *L = k->ln->L;
	int top, rc;

	if (!L || k->ln->closed || !lua_checkstack(L, 8))
		return -1;
	top = lua_gettop(L);
	lua_pushcfunction(L, traceback);
	lua_pushcfunction(L, lnet_protected);
	lua_pushlightuserdata(L, k);
	rc = lua_pcall(L, 1, 0, top + 1);
	if (rc != LUA_OK)
		report(k->ln, lua_tostring(L, -1), k->kind == K_LOG);
	lua_settop(L, top);
	return rc == LUA_OK ? 0 : -1;
}

/**
 * report() - tell on_log (or stderr) that a callback raised
 * @ln:		net
 * @err:	the error with its traceback (may be NULL)
 * @from_log:	on_log itself raised: use stderr
 */
static void report(struct lnet *ln, const char *err, bool from_log)
{
	struct lnet_call k = { .ln = ln, .kind = K_LOG };
	char msg[1024];

	snprintf(msg, sizeof(msg), "error in net callback: %s", err ? err : "?");
	k.data = msg;
	k.len = strlen(msg);
	if (from_log || !ln->has_log || lnet_call(&k) < 0)
		fprintf(stderr, "gondolin: %s\n", msg);
}

/**
 * forget() - invalidate a connection's userdata and drop its anchor
 * @ln:		net
 * @lc:		connection contents
 */
static void forget(struct lnet *ln, struct lconn *lc)
{
	struct lnet_call k = { .ln = ln, .kind = K_FORGET, .lc = lc };

	if (lc->c)
		lc->c->user = NULL;
	lc->c = NULL;
	lnet_call(&k);
}

/**
 * on_output() - ops.output: hand one frame to on_output(frame)
 * @ud:		net
 * @frame:	Ethernet frame for the guest
 * @len:	its length
 */
static void on_output(void *ud, const uint8_t *frame, size_t len)
{
	struct lnet_call k = { .ln = ud, .kind = K_OUTPUT, .data = frame, .len = len };

	k.ln->in_output++;
	lnet_call(&k);
	k.ln->in_output--;
}

/**
 * on_accept() - ops.tcp_accept: make the connection userdata, ask on_accept
 * @ud:		net
 * @c:		the new connection
 *
 * Return: true only if on_accept returned a true value
 */
static bool on_accept(void *ud, struct tcp_conn *c)
{
	struct lnet_call k = { .ln = ud, .kind = K_ACCEPT, .c = c };

	c->user = NULL;
	if (k.ln->closed)
		return false;
	if (lnet_call(&k) == 0 && k.accepted)
		return true;
	if (k.lc)
		forget(k.ln, k.lc);
	return false;
}

/**
 * on_event() - ops.tcp_event: call on_event(conn, name); invalidate on close
 * @ud:		net
 * @c:		connection
 * @ev:		what happened
 *
 * A callback that raises aborts the connection (fail closed).
 */
static void on_event(void *ud, struct tcp_conn *c, enum tcp_event ev)
{
	struct lnet_call k = { .ln = ud, .kind = K_EVENT, .lc = c->user, .ev = ev };
	int rc;

	if (!k.lc || k.ln->closed || (unsigned int)ev > TCP_EV_CLOSED)
		return;				/* refused, or the net is closing */
	rc = lnet_call(&k);
	if (ev == TCP_EV_CLOSED)
		forget(k.ln, k.lc);
	else if (rc < 0 && ev != TCP_EV_RESET && k.lc->c && !k.ln->closed)
		tcp_abort(&k.ln->n, c);		/* fail closed */
}

/**
 * on_log() - ops.log: pass a diagnostic line to on_log(msg)
 * @ud:		net
 * @msg:	the line
 */
static void on_log(void *ud, const char *msg)
{
	struct lnet_call k = { .ln = ud, .kind = K_LOG, .data = msg, .len = strlen(msg) };

	lnet_call(&k);
}

/* a per-VM bound refused something: on_log("limit: NAME") */
static void on_limit(void *ud, const char *name)
{
	char msg[64];

	snprintf(msg, sizeof(msg), "limit: %s", name);
	on_log(ud, msg);
}

/**
 * lnet_enter() - start a call into the stack from thread @L
 * @ln:		net
 * @L:		calling thread
 *
 * Return: the previous thread, for lnet_leave()
 */
static lua_State *lnet_enter(struct lnet *ln, lua_State *L)
{
	lua_State *prev = ln->L;

	ln->L = L;
	ln->depth++;
	return prev;
}

static void lnet_shut(lua_State *L, struct lnet *ln, int net_idx);

/**
 * lnet_leave() - end a call; run a close deferred by a callback
 * @ln:		net
 * @L:		calling thread
 * @prev:	what lnet_enter() returned
 * @net_idx:	stack index of the net userdata in @L
 */
static void lnet_leave(struct lnet *ln, lua_State *L, lua_State *prev,
		       int net_idx)
{
	ln->L = prev;
	if (--ln->depth == 0 && ln->close_pending)
		lnet_shut(L, ln, net_idx);
}

/**
 * lnet_shut() - invalidate every connection, then free the stack
 * @L:		Lua state
 * @ln:		net
 * @net_idx:	stack index of its userdata
 */
static void lnet_shut(lua_State *L, struct lnet *ln, int net_idx)
{
	struct lconn *lc;

	if (ln->closed)
		return;
	ln->closed = 1;
	net_idx = lua_absindex(L, net_idx);
	if (lua_getiuservalue(L, net_idx, UV_CONNS) == LUA_TTABLE) {
		lua_pushnil(L);
		while (lua_next(L, -2)) {
			lc = lua_touserdata(L, -1);
			if (lc)
				lc->c = NULL;
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);
	lua_pushnil(L);
	lua_setiuservalue(L, net_idx, UV_CONNS);
	net_free(&ln->n);
}

/**
 * opt_ip() - read an optional dotted-quad field of the options table
 * @L:		Lua state
 * @key:	field name
 * @out:	value out (host order), untouched when absent
 */
static void opt_ip(lua_State *L, const char *key, uint32_t *out)
{
	struct in_addr a;

	if (lua_getfield(L, 1, key) != LUA_TNIL) {
		if (!lua_isstring(L, -1) || inet_pton(AF_INET, lua_tostring(L, -1), &a) != 1)
			luaL_error(L, "core.net: %s must be a dotted-quad IPv4 address", key);
		*out = ntohl(a.s_addr);
	}
	lua_pop(L, 1);
}

/**
 * opt_mac() - read an optional "xx:xx:xx:xx:xx:xx" field
 * @L:		Lua state
 * @key:	field name
 * @out:	six bytes out, untouched when absent
 */
static void opt_mac(lua_State *L, const char *key, uint8_t out[6])
{
	unsigned int b[6];
	char tail;
	int i;

	if (lua_getfield(L, 1, key) != LUA_TNIL) {
		if (!lua_isstring(L, -1) ||
		    sscanf(lua_tostring(L, -1), "%2x:%2x:%2x:%2x:%2x:%2x%c",
			   &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6)
			luaL_error(L, "core.net: %s must be a MAC address xx:xx:xx:xx:xx:xx", key);
		for (i = 0; i < 6; i++)
			out[i] = (uint8_t)b[i];
	}
	lua_pop(L, 1);
}

/**
 * opt_uint() - read an optional integer field within [lo, hi]
 * @L:		Lua state
 * @key:	field name
 * @lo:		smallest value
 * @hi:		largest value
 * @def:	value when absent
 *
 * Return: the value (raises when out of range)
 */
static uint32_t opt_uint(lua_State *L, const char *key, lua_Integer lo,
			 lua_Integer hi, uint32_t def)
{
	lua_Integer v = def;
	int isnum = 1;

	if (lua_getfield(L, 1, key) != LUA_TNIL)
		v = lua_tointegerx(L, -1, &isnum);
	lua_pop(L, 1);
	if (!isnum || v < lo || v > hi)
		luaL_error(L, "core.net: %s must be an integer in %I..%I", key, lo, hi);
	return (uint32_t)v;
}

/**
 * read_config() - the configuration: defaults plus the table's overrides
 * @L:		Lua state (options table at 1)
 * @cfg:	configuration out
 */
static void read_config(lua_State *L, struct net_config *cfg)
{
	net_config_default(cfg);
	opt_ip(L, "gw_ip", &cfg->gw_ip);
	opt_ip(L, "guest_ip", &cfg->guest_ip);
	opt_ip(L, "netmask", &cfg->netmask);
	opt_mac(L, "gw_mac", cfg->gw_mac);
	opt_mac(L, "guest_mac", cfg->guest_mac);
	cfg->mtu = (uint16_t)opt_uint(L, "mtu", LNET_MIN_MTU, LNET_MAX_MTU, cfg->mtu);
	cfg->lease_s = opt_uint(L, "lease", 60, INT32_MAX, cfg->lease_s);
	cfg->max_tcp = opt_uint(L, "max_tcp", 1, LNET_MAX_TCP, cfg->max_tcp);
	cfg->max_half_open = opt_uint(L, "max_half_open", 1, cfg->max_tcp,
				      cfg->max_half_open < cfg->max_tcp ?
				      cfg->max_half_open : cfg->max_tcp);
	cfg->tcp_buf = opt_uint(L, "tcp_buf", LNET_MIN_TCP_BUF, LNET_MAX_TCP_BUF,
				cfg->tcp_buf);
	cfg->max_buffered = opt_uint(L, "max_buffered", LNET_MIN_TCP_BUF, UINT32_MAX,
				     (uint32_t)cfg->max_buffered);
}

/**
 * lnet_new() - core.net{on_output=, on_accept=, on_event=, on_log=,
 * gw_ip=, guest_ip=, netmask=, gw_mac=, guest_mac=, mtu=, lease=,
 * max_tcp=, max_half_open=, tcp_buf=, max_buffered=}
 * @L:		Lua state
 *
 * Return: 1 (the net); raises on a bad option or configuration
 */
static int lnet_new(lua_State *L)
{
	static const struct net_ops ops = {
		.output = on_output, .tcp_accept = on_accept,
		.tcp_event = on_event, .log = on_log, .limit = on_limit,
	};
	static const char *const cbs[] = { "on_output", "on_accept", "on_event", "on_log" };
	struct net_config cfg;
	struct lnet *ln;
	int rc, i;

	luaL_checktype(L, 1, LUA_TTABLE);
	read_config(L, &cfg);
	for (i = 0; i < 4; i++) {
		int t = lua_getfield(L, 1, cbs[i]);

		luaL_argcheck(L, t == LUA_TNIL || t == LUA_TFUNCTION, 1,
			      "callbacks must be functions");
		lua_pop(L, 1);
	}
	ln = lua_newuserdatauv(L, sizeof(*ln), UV_COUNT);
	memset(ln, 0, sizeof(*ln));
	ln->closed = 1;				/* until net_init succeeds */
	luaL_setmetatable(L, NET_MT);
	rc = net_init(&ln->n, &cfg, &ops, ln);
	if (rc < 0)
		return rc == -EINVAL ? luaL_error(L, "core.net: inconsistent network configuration")
				     : luaL_error(L, "core.net: out of memory");
	ln->closed = 0;
	lua_getfield(L, 1, "on_log");
	ln->has_log = lua_isfunction(L, -1);
	lua_pop(L, 1);
	api_handle_register(L, -1, ln);
	for (i = 0; i < 4; i++) {
		lua_getfield(L, 1, cbs[i]);
		lua_setiuservalue(L, -2, UV_ON_OUTPUT + i);
	}
	lua_newtable(L);
	lua_setiuservalue(L, -2, UV_CONNS);
	return 1;
}

/**
 * lnet_input() - net:input(frame[, now_ms]) -> verdict
 * @L:		Lua state
 *
 * Return: 1 ("handled", "ignored" or "malformed"; drops are also counted)
 */
static int lnet_input(lua_State *L)
{
	static const char *const verdict[] = { "malformed", "ignored", "handled" };
	struct lnet *ln = check_net(L, 1);
	size_t len;
	const char *frame = luaL_checklstring(L, 2, &len);
	lua_Integer now = luaL_optinteger(L, 3, (lua_Integer)ln->n.now_ms);
	lua_State *prev;
	int rc;

	luaL_argcheck(L, now >= 0, 3, "time must be >= 0");
	if (ln->depth > 0)
		return luaL_error(L, "net:input() cannot be called from a net callback");
	prev = lnet_enter(ln, L);
	rc = net_input(&ln->n, (const uint8_t *)frame, len, (uint64_t)now);
	lnet_leave(ln, L, prev, 1);
	lua_pushstring(L, verdict[rc < 0 ? 0 : rc > 0 ? 2 : 1]);
	return 1;
}

/**
 * lnet_timer() - net:timer(now_ms): run what is due
 * @L:		Lua state
 *
 * Return: 0
 */
static int lnet_timer(lua_State *L)
{
	struct lnet *ln = check_net(L, 1);
	lua_Integer now = luaL_checkinteger(L, 2);
	lua_State *prev;

	luaL_argcheck(L, now >= 0, 2, "time must be >= 0");
	if (ln->depth > 0)
		return luaL_error(L, "net:timer() cannot be called from a net callback");
	prev = lnet_enter(ln, L);
	net_timer(&ln->n, (uint64_t)now);
	lnet_leave(ln, L, prev, 1);
	return 0;
}

/**
 * lnet_next_timer() - net:next_timer() -> absolute ms | nil
 * @L:		Lua state
 *
 * Return: 1
 */
static int lnet_next_timer(lua_State *L)
{
	uint64_t t = net_next_timer(&check_net(L, 1)->n);

	if (t == NET_TIMER_NONE || t > (uint64_t)LUA_MAXINTEGER)
		lua_pushnil(L);
	else
		lua_pushinteger(L, (lua_Integer)t);
	return 1;
}

#define STAT(f_)	{ #f_, offsetof(struct net_stats, f_) }

static const struct { const char *name; size_t off; } stat_fields[] = {
	STAT(frames_in), STAT(frames_out), STAT(dropped),
	STAT(arp_replies), STAT(icmp_echo), STAT(dhcp_replies),
	STAT(dns_queries), STAT(dns_malformed), STAT(udp_dropped),
	STAT(ipv6_dropped), STAT(bad_checksum), STAT(tcp_accepted),
	STAT(tcp_refused), STAT(tcp_resets_sent), STAT(tcp_retransmits),
	STAT(ip_malformed), STAT(ip_fragments), STAT(dhcp_malformed),
	STAT(dhcp_naks), STAT(dns_evicted),
};
static_assert(sizeof(stat_fields) / sizeof(stat_fields[0]) ==
	      sizeof(struct net_stats) / sizeof(uint64_t), "every counter listed");

/**
 * api_push_net_stats() - push a table of every counter of a stack
 * @L:		Lua state
 * @s:		counters
 */
void api_push_net_stats(lua_State *L, const struct net_stats *s)
{
	const uint8_t *base = (const uint8_t *)s;
	uint64_t v;
	size_t i;

	lua_createtable(L, 0, (int)(sizeof(stat_fields) / sizeof(stat_fields[0])) + 1);
	for (i = 0; i < sizeof(stat_fields) / sizeof(stat_fields[0]); i++) {
		memcpy(&v, base + stat_fields[i].off, sizeof(v));
		api_set_int(L, stat_fields[i].name, (lua_Integer)v);
	}
}

/**
 * lnet_stats() - net:stats() -> table of counters
 * @L:		Lua state
 *
 * Return: 1
 */
static int lnet_stats(lua_State *L)
{
	struct lnet *ln = luaL_checkudata(L, 1, NET_MT);

	api_push_net_stats(L, &ln->n.stats);
	return 1;
}

/* net:tcp_isn(n): our ISN for the next accepted connection (specs only) */
static int lnet_tcp_isn(lua_State *L)
{
	struct lnet *ln = check_net(L, 1);
	lua_Integer isn = luaL_checkinteger(L, 2);

	luaL_argcheck(L, isn >= 0 && isn <= 0xffffffffLL, 2, "ISN must be 0..2^32-1");
	tcp_test_isn(&ln->n, (uint32_t)isn);
	return 0;
}

/**
 * lnet_tcp_gauges() - net:tcp_gauges() -> {conns=, half_open=, time_wait=,
 * buf_bytes=, syn_dropped=}: what the connection table holds now
 * @L:		Lua state
 *
 * Return: 1
 */
static int lnet_tcp_gauges(lua_State *L)
{
	struct lnet *ln = check_net(L, 1);
	struct tcp_gauges g;

	tcp_gauges(&ln->n, &g);
	lua_createtable(L, 0, 5);
	api_set_int(L, "conns", g.conns);
	api_set_int(L, "half_open", g.half_open);
	api_set_int(L, "time_wait", g.time_wait);
	api_set_int(L, "buf_bytes", (lua_Integer)g.buf_bytes);
	api_set_int(L, "syn_dropped", (lua_Integer)g.syn_dropped);
	return 1;
}

/**
 * lnet_dns_name() - net:dns_name("a.b.c.d") -> name | nil
 * @L:		Lua state
 *
 * Return: 1; the name synthetic DNS gave that address, if it remembers it
 */
static int lnet_dns_name(lua_State *L)
{
	struct lnet *ln = check_net(L, 1);
	const char *s = luaL_checkstring(L, 2), *name;
	struct in_addr a;

	luaL_argcheck(L, inet_pton(AF_INET, s, &a) == 1, 2, "not an IPv4 address");
	name = dns_pool_name(ln->n.dns, ntohl(a.s_addr));
	if (name)
		lua_pushstring(L, name);
	else
		lua_pushnil(L);
	return 1;
}

/**
 * lnet_close() - net:close() -> true; also __gc and __close
 * @L:		Lua state
 *
 * Return: 1. Inside a callback the close happens when the outermost call
 * into the net returns; a second close does nothing.
 */
static int lnet_close(lua_State *L)
{
	struct lnet *ln = luaL_checkudata(L, 1, NET_MT);

	if (ln->depth > 0)
		ln->close_pending = 1;
	else
		lnet_shut(L, ln, 1);
	lua_pushboolean(L, 1);
	return 1;
}

/**
 * lnet_tostring() - __tostring
 * @L:		Lua state
 *
 * Return: 1
 */
static int lnet_tostring(lua_State *L)
{
	struct lnet *ln = luaL_checkudata(L, 1, NET_MT);

	lua_pushfstring(L, "gondolin.net (%s)", ln->closed ? "closed" : "open");
	return 1;
}

/**
 * conn_begin() - push the connection's net and enter it
 * @L:		Lua state (connection at 1)
 * @lc:		connection
 * @prev:	previous thread out, for conn_end()
 *
 * Return: stack index of the net userdata
 */
static int conn_begin(lua_State *L, struct lconn *lc, lua_State **prev)
{
	lua_getiuservalue(L, 1, 1);
	*prev = lnet_enter(lc->ln, L);
	return lua_gettop(L);
}

/**
 * conn_end() - leave the net entered by conn_begin() and pop it
 * @L:		Lua state
 * @lc:		connection
 * @prev:	from conn_begin()
 * @net_idx:	from conn_begin()
 */
static void conn_end(lua_State *L, struct lconn *lc, lua_State *prev, int net_idx)
{
	lnet_leave(lc->ln, L, prev, net_idx);
	lua_remove(L, net_idx);
}

/**
 * lconn_read() - conn:read([max]) -> string (possibly empty)
 * @L:		Lua state
 *
 * Return: 1
 */
static int lconn_read(lua_State *L)
{
	struct lconn *lc = check_conn(L, 1);
	size_t avail = tcp_readable(lc->c), got;
	lua_Integer max = luaL_optinteger(L, 2, (lua_Integer)avail);
	lua_State *prev;
	luaL_Buffer b;
	char *p;
	int ni;

	luaL_argcheck(L, max >= 0, 2, "max must be >= 0");
	if ((size_t)max < avail)
		avail = (size_t)max;
	p = luaL_buffinitsize(L, &b, avail ? avail : 1);
	ni = conn_begin(L, lc, &prev);
	got = avail ? tcp_read(&lc->ln->n, lc->c, (uint8_t *)p, avail) : 0;
	conn_end(L, lc, prev, ni);
	luaL_pushresultsize(&b, got);
	return 1;
}

/**
 * lconn_write() - conn:write(s) -> bytes accepted (may be fewer than #s)
 * @L:		Lua state
 *
 * Return: 1
 */
static int lconn_write(lua_State *L)
{
	struct lconn *lc = check_conn(L, 1);
	size_t len, n;
	const char *s = luaL_checklstring(L, 2, &len);
	lua_State *prev;
	int ni;

	ni = conn_begin(L, lc, &prev);
	n = len ? tcp_write(&lc->ln->n, lc->c, (const uint8_t *)s, len) : 0;
	conn_end(L, lc, prev, ni);
	lua_pushinteger(L, (lua_Integer)n);
	return 1;
}

/**
 * lconn_readable() - conn:readable() -> bytes waiting to be read
 * @L:		Lua state
 *
 * Return: 1
 */
static int lconn_readable(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)tcp_readable(check_conn(L, 1)->c));
	return 1;
}

/**
 * lconn_writable() - conn:writable() -> bytes write() would accept now
 * @L:		Lua state
 *
 * Return: 1
 */
static int lconn_writable(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)tcp_writable(check_conn(L, 1)->c));
	return 1;
}

/**
 * lconn_shutdown() - conn:shutdown(): send FIN after the queued data
 * @L:		Lua state
 *
 * Return: 0
 */
static int lconn_shutdown(lua_State *L)
{
	struct lconn *lc = check_conn(L, 1);
	lua_State *prev;
	int ni = conn_begin(L, lc, &prev);

	tcp_shutdown(&lc->ln->n, lc->c);
	conn_end(L, lc, prev, ni);
	return 0;
}

/**
 * lconn_abort() - conn:abort(): reset the connection
 * @L:		Lua state
 *
 * Return: 0
 */
static int lconn_abort(lua_State *L)
{
	struct lconn *lc = check_conn(L, 1);
	lua_State *prev;
	int ni = conn_begin(L, lc, &prev);

	tcp_abort(&lc->ln->n, lc->c);
	conn_end(L, lc, prev, ni);
	return 0;
}

/**
 * push_ip() - push an address as a dotted quad
 * @L:		Lua state
 * @ip:		address (host order)
 */
static void push_ip(lua_State *L, uint32_t ip)
{
	lua_pushfstring(L, "%d.%d.%d.%d", (int)(ip >> 24), (int)(ip >> 16 & 0xff),
			(int)(ip >> 8 & 0xff), (int)(ip & 0xff));
}

/**
 * set_conn_state() - the engine's snapshot of @c into the table on top
 * @L:		Lua state
 * @c:		connection
 */
static void set_conn_state(lua_State *L, const struct tcp_conn *c)
{
	struct tcp_conn_info i;

	tcp_conn_info(c, &i);
	lua_pushstring(L, i.state);
	lua_setfield(L, -2, "state");
	api_set_int(L, "iss", i.iss);
	api_set_int(L, "irs", i.irs);
	api_set_int(L, "snd_una", i.snd_una);
	api_set_int(L, "snd_nxt", i.snd_nxt);
	api_set_int(L, "snd_wnd", i.snd_wnd);
	api_set_int(L, "rcv_nxt", i.rcv_nxt);
	api_set_int(L, "rcv_wnd", i.rcv_wnd);
	api_set_int(L, "mss", i.mss);
	api_set_int(L, "snd_wscale", i.snd_wscale);
	api_set_int(L, "rcv_wscale", i.rcv_wscale);
	lua_pushboolean(L, i.ws_ok);
	lua_setfield(L, -2, "ws_ok");
	api_set_int(L, "rto_ms", i.rto_ms);
	api_set_int(L, "srtt_ms", i.srtt_ms);
	api_set_int(L, "retries", i.retries);
	api_set_int(L, "send_queued", (lua_Integer)i.send_queued);
	api_set_int(L, "recv_queued", (lua_Integer)i.recv_queued);
	api_set_int(L, "ooo_ranges", i.ooo_ranges);
}

/**
 * lconn_info() - conn:info() -> {guest_ip=, guest_port=, dst_ip=,
 * dst_port=, state=, and the engine's counters: iss, irs, snd_una,
 * snd_nxt, snd_wnd, rcv_nxt, rcv_wnd, mss, snd_wscale, rcv_wscale, ws_ok,
 * rto_ms, srtt_ms, retries, send_queued, recv_queued, ooo_ranges}
 * @L:		Lua state
 *
 * Return: 1
 */
static int lconn_info(lua_State *L)
{
	struct tcp_conn *c = check_conn(L, 1)->c;

	lua_createtable(L, 0, 22);
	push_ip(L, c->guest_ip);
	lua_setfield(L, -2, "guest_ip");
	api_set_int(L, "guest_port", c->guest_port);
	push_ip(L, c->dst_ip);
	lua_setfield(L, -2, "dst_ip");
	api_set_int(L, "dst_port", c->dst_port);
	set_conn_state(L, c);
	return 1;
}

/**
 * lconn_closed() - conn:closed() -> true once the connection is gone
 * @L:		Lua state
 *
 * Return: 1
 */
static int lconn_closed(lua_State *L)
{
	struct lconn *lc = luaL_checkudata(L, 1, CONN_MT);

	lua_pushboolean(L, !lc->c || lc->ln->closed || lc->ln->close_pending);
	return 1;
}

/**
 * lconn_tostring() - __tostring
 * @L:		Lua state
 *
 * Return: 1
 */
static int lconn_tostring(lua_State *L)
{
	struct lconn *lc = luaL_checkudata(L, 1, CONN_MT);
	struct tcp_conn *c = lc->ln->closed ? NULL : lc->c;

	if (!c) {
		lua_pushliteral(L, "gondolin.tcp_conn (closed)");
		return 1;
	}
	lua_pushliteral(L, "gondolin.tcp_conn (");
	push_ip(L, c->guest_ip);
	lua_pushfstring(L, ":%d -> ", (int)c->guest_port);
	push_ip(L, c->dst_ip);
	lua_pushfstring(L, ":%d)", (int)c->dst_port);
	lua_concat(L, 5);
	return 1;
}

static const luaL_Reg net_methods[] = {
	{ "input",	lnet_input },
	{ "timer",	lnet_timer },
	{ "next_timer",	lnet_next_timer },
	{ "stats",	lnet_stats },
	{ "tcp_gauges",	lnet_tcp_gauges },
	{ "tcp_isn",	lnet_tcp_isn },
	{ "dns_name",	lnet_dns_name },
	{ "close",	lnet_close },
	{ NULL, NULL }
};

static const luaL_Reg net_meta[] = {
	{ "__gc",	lnet_close },
	{ "__close",	lnet_close },
	{ "__tostring",	lnet_tostring },
	{ NULL, NULL }
};

static const luaL_Reg conn_methods[] = {
	{ "read",	lconn_read },
	{ "write",	lconn_write },
	{ "readable",	lconn_readable },
	{ "writable",	lconn_writable },
	{ "shutdown",	lconn_shutdown },
	{ "abort",	lconn_abort },
	{ "info",	lconn_info },
	{ "closed",	lconn_closed },
	{ NULL, NULL }
};

static const luaL_Reg conn_meta[] = {
	{ "__tostring",	lconn_tostring },
	{ NULL, NULL }
};

/**
 * api_open_net() - add core.net to the module table on top of the stack
 * @L:		Lua state
 */
void api_open_net(lua_State *L)
{
	api_new_class(L, NET_MT, net_meta, net_methods);
	api_new_class(L, CONN_MT, conn_meta, conn_methods);
	lua_pushcfunction(L, lnet_new);
	lua_setfield(L, -2, "net");
}
