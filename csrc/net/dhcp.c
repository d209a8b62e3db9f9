/* SPDX-License-Identifier: MIT */
/* dhcp.c - the DHCP server that configures the guest's one address */

/*
 * There is one client (the guest's MAC) and one address to give it
 * (guest_ip), so the server keeps no lease state:
 *
 *	DISCOVER          -> OFFER guest_ip
 *	REQUEST guest_ip  -> ACK   (requested address, or ciaddr when renewing)
 *	REQUEST other     -> NAK
 *	REQUEST for another server (option 54) -> ignored
 *	DECLINE, RELEASE  -> accepted, nothing to do
 *	anything else     -> ignored
 *
 * Replies carry: message type, server id, lease time, subnet mask, router,
 * DNS server (the gateway: see dns.c), interface MTU and broadcast
 * address. They go to 255.255.255.255 / ff:ff:ff:ff:ff:ff, except an ACK
 * to a renewing client (ciaddr = guest_ip), which is unicast.
 *
 * Parsing is strict: BOOTREQUEST, Ethernet hardware type and length, the
 * magic cookie, every option's length inside the message, an end option,
 * exactly one message type; options 50/53/54 with the wrong length or
 * given twice make the message malformed. No relay agents (giaddr must be
 * 0); option overload is not honoured (options in sname/file are ignored).
 */

#include <string.h>

#include "net/dhcp.h"
#include "net/eth.h"
#include "net/ipv4.h"
#include "net/udp.h"

#define BOOTP_FIXED		236	/* op .. file */
#define BOOTP_REQUEST		1
#define BOOTP_REPLY		2
#define BOOTP_HTYPE_ETHER	1
#define DHCP_COOKIE		0x63825363u

enum dhcp_option {
	OPT_PAD = 0, OPT_SUBNET_MASK = 1, OPT_ROUTER = 3, OPT_DNS = 6,
	OPT_MTU = 26, OPT_BROADCAST = 28, OPT_REQUESTED_IP = 50,
	OPT_LEASE_TIME = 51, OPT_MSG_TYPE = 53, OPT_SERVER_ID = 54,
	OPT_END = 255,
};

/**
 * dhcp_parse_fixed() - read the BOOTP fixed part and the magic cookie
 * @c:		cursor at the start of the message (advanced past the cookie)
 * @m:		fields out
 *
 * Return: 1 valid, -1 malformed
 */
static int dhcp_parse_fixed(struct net_cursor *c, struct dhcp_msg *m)
{
	uint8_t op, htype, hlen, hops;
	uint16_t secs;
	uint32_t yiaddr, siaddr, cookie;
	const uint8_t *chaddr;

	if (!net_pull_u8(c, &op) || !net_pull_u8(c, &htype) ||
	    !net_pull_u8(c, &hlen) || !net_pull_u8(c, &hops) ||
	    !net_pull_be32(c, &m->xid) || !net_pull_be16(c, &secs) ||
	    !net_pull_be16(c, &m->flags) || !net_pull_be32(c, &m->ciaddr) ||
	    !net_pull_be32(c, &yiaddr) || !net_pull_be32(c, &siaddr) ||
	    !net_pull_be32(c, &m->giaddr))
		return -1;
	chaddr = net_pull(c, DHCP_CHADDR_LEN);
	if (!chaddr || !net_pull(c, BOOTP_FIXED - 28 - DHCP_CHADDR_LEN) ||
	    !net_pull_be32(c, &cookie))
		return -1;
	if (op != BOOTP_REQUEST || htype != BOOTP_HTYPE_ETHER ||
	    hlen != ETH_ALEN || cookie != DHCP_COOKIE)
		return -1;
	memcpy(m->chaddr, chaddr, DHCP_CHADDR_LEN);
	return 1;
}

/**
 * dhcp_option() - take one option we care about
 * @m:		message being filled
 * @code:	option code
 * @v:		option value
 * @len:	its length
 * @seen:	bit set of options 50/53/54 already taken
 *
 * Return: 1 taken or ignored, -1 malformed (bad length, repeated)
 */
static int dhcp_option(struct dhcp_msg *m, uint8_t code, const uint8_t *v,
		       uint8_t len, unsigned int *seen)
{
	unsigned int bit;

	switch (code) {
	case OPT_MSG_TYPE:	bit = 1; break;
	case OPT_REQUESTED_IP:	bit = 2; break;
	case OPT_SERVER_ID:	bit = 4; break;
	default:		return 1;
	}
	if (*seen & bit || len != (code == OPT_MSG_TYPE ? 1 : 4))
		return -1;
	*seen |= bit;
	if (code == OPT_MSG_TYPE)
		m->type = v[0];
	else if (code == OPT_REQUESTED_IP)
		m->requested = net_get_be32(v);
	else
		m->server_id = net_get_be32(v);
	return 1;
}

/**
 * dhcp_parse_options() - walk the options up to the end option
 * @c:		cursor after the magic cookie
 * @m:		fields out
 *
 * Return: 1 valid, -1 malformed (truncated, no end, no message type)
 */
static int dhcp_parse_options(struct net_cursor *c, struct dhcp_msg *m)
{
	unsigned int seen = 0;
	const uint8_t *v;
	uint8_t code, len;

	for (;;) {
		if (!net_pull_u8(c, &code))
			return -1;		/* no end option */
		if (code == OPT_PAD)
			continue;
		if (code == OPT_END)
			break;
		if (!net_pull_u8(c, &len) || !(v = net_pull(c, len)))
			return -1;
		if (dhcp_option(m, code, v, len, &seen) < 0)
			return -1;
	}
	return (seen & 1) ? 1 : -1;
}

/**
 * dhcp_parse() - parse and validate a client's DHCP message
 * @p:		UDP payload
 * @len:	its length
 * @m:		fields out
 *
 * Return: 1 parsed, -1 malformed
 */
int dhcp_parse(const uint8_t *p, size_t len, struct dhcp_msg *m)
{
	struct net_cursor c;

	memset(m, 0, sizeof(*m));
	net_cursor_init(&c, p, len);
	if (dhcp_parse_fixed(&c, m) < 0)
		return -1;
	return dhcp_parse_options(&c, m);
}

/**
 * put_opt() - append one option
 * @o:		write position (advanced)
 * @code:	option code
 * @v:		value
 * @len:	its length
 */
static void put_opt(uint8_t **o, uint8_t code, const uint8_t *v, uint8_t len)
{
	(*o)[0] = code;
	(*o)[1] = len;
	memcpy(*o + 2, v, len);
	*o += 2 + len;
}

/**
 * put_opt32() - append an option holding one u32
 * @o:		write position (advanced)
 * @code:	option code
 * @v:		value
 */
static void put_opt32(uint8_t **o, uint8_t code, uint32_t v)
{
	uint8_t b[4];

	net_put_be32(b, v);
	put_opt(o, code, b, 4);
}

/**
 * dhcp_put_options() - the options of a reply
 * @cfg:	network configuration
 * @type:	OFFER, ACK or NAK
 * @o:		where to write (room for DHCP_MAX_REPLY - 240 bytes)
 *
 * Return: one past the last byte written
 */
static uint8_t *dhcp_put_options(const struct net_config *cfg,
				 enum dhcp_type type, uint8_t *o)
{
	uint8_t t = (uint8_t)type, mtu[2];

	put_opt(&o, OPT_MSG_TYPE, &t, 1);
	put_opt32(&o, OPT_SERVER_ID, cfg->gw_ip);
	if (type != DHCP_NAK) {
		put_opt32(&o, OPT_LEASE_TIME, cfg->lease_s);
		put_opt32(&o, OPT_SUBNET_MASK, cfg->netmask);
		put_opt32(&o, OPT_ROUTER, cfg->gw_ip);
		put_opt32(&o, OPT_DNS, cfg->gw_ip);
		net_put_be16(mtu, cfg->mtu);
		put_opt(&o, OPT_MTU, mtu, 2);
		put_opt32(&o, OPT_BROADCAST, cfg->guest_ip | ~cfg->netmask);
	}
	*o++ = OPT_END;
	return o;
}

/**
 * dhcp_build() - write a reply to @req
 * @cfg:	network configuration
 * @req:	the client's message
 * @type:	OFFER, ACK or NAK
 * @out:	buffer
 * @cap:	its size; DHCP_MAX_REPLY always suffices
 *
 * Return: the reply's length, or 0 when @cap is below DHCP_MAX_REPLY
 */
size_t dhcp_build(const struct net_config *cfg, const struct dhcp_msg *req,
		  enum dhcp_type type, uint8_t *out, size_t cap)
{
	uint8_t *end;
	size_t len;

	if (cap < DHCP_MAX_REPLY)
		return 0;
	memset(out, 0, DHCP_MAX_REPLY);
	out[0] = BOOTP_REPLY;
	out[1] = BOOTP_HTYPE_ETHER;
	out[2] = ETH_ALEN;
	net_put_be32(out + 4, req->xid);
	net_put_be16(out + 10, req->flags);
	if (type != DHCP_NAK) {
		net_put_be32(out + 12, type == DHCP_ACK ? req->ciaddr : 0);
		net_put_be32(out + 16, cfg->guest_ip);
		net_put_be32(out + 20, cfg->gw_ip);
	}
	memcpy(out + 28, req->chaddr, DHCP_CHADDR_LEN);
	net_put_be32(out + BOOTP_FIXED, DHCP_COOKIE);
	end = dhcp_put_options(cfg, type, out + BOOTP_FIXED + 4);
	len = (size_t)(end - out);
	return len < DHCP_MIN_LEN ? DHCP_MIN_LEN : len;
}

/**
 * dhcp_answer() - decide how to answer a parsed message
 * @n:		stack
 * @m:		the client's message
 *
 * Return: OFFER, ACK or NAK; 0 for no reply
 */
static int dhcp_answer(const struct net *n, const struct dhcp_msg *m)
{
	uint32_t want;

	switch (m->type) {
	case DHCP_DISCOVER:
		return DHCP_OFFER;
	case DHCP_REQUEST:
		if (m->server_id && m->server_id != n->cfg.gw_ip)
			return 0;	/* the client chose another server */
		want = m->requested ? m->requested : m->ciaddr;
		return want == n->cfg.guest_ip ? DHCP_ACK : DHCP_NAK;
	default:
		return 0;
	}
}

/**
 * dhcp_send() - build and send a reply
 * @n:		stack
 * @m:		the client's message
 * @type:	OFFER, ACK or NAK
 */
static void dhcp_send(struct net *n, const struct dhcp_msg *m,
		      enum dhcp_type type)
{
	uint32_t dst = IPV4_BROADCAST;
	uint8_t out[DHCP_MAX_REPLY];
	size_t len;

	len = dhcp_build(&n->cfg, m, type, out, sizeof(out));
	if (type == DHCP_ACK && m->ciaddr == n->cfg.guest_ip)
		dst = n->cfg.guest_ip;		/* renewing: unicast */
	if (udp_output(n, n->cfg.gw_ip, UDP_PORT_DHCP_SERVER, dst,
		       UDP_PORT_DHCP_CLIENT, out, len) < 0)
		return;
	n->stats.dhcp_replies++;
	if (type == DHCP_NAK)
		n->stats.dhcp_naks++;
}

/**
 * dhcp_input() - answer one DHCP message from the guest
 * @n:		stack
 * @src:	IP source (0.0.0.0 or the guest's address)
 * @dst:	IP destination (broadcast or the gateway)
 * @p:		UDP payload
 * @len:	its length
 *
 * Return: 1 handled, 0 not ours, -1 malformed
 */
int dhcp_input(struct net *n, uint32_t src, uint32_t dst,
	       const uint8_t *p, size_t len)
{
	struct dhcp_msg m;
	int type;

	(void)src;
	(void)dst;
	if (dhcp_parse(p, len, &m) < 0) {
		n->stats.dhcp_malformed++;
		return -1;
	}
	if (m.giaddr != 0 || memcmp(m.chaddr, n->cfg.guest_mac, ETH_ALEN) != 0)
		return 0;
	if (m.type == DHCP_DECLINE || m.type == DHCP_RELEASE)
		return 1;
	type = dhcp_answer(n, &m);
	if (type == 0)
		return 0;
	dhcp_send(n, &m, (enum dhcp_type)type);
	return 1;
}
