/* SPDX-License-Identifier: MIT */
/* dhcp.c - the guest's DHCP client: one lease for eth0 at boot
 *
 * Theory of Operation
 *
 * The host's stack is the only DHCP server the guest can see, and it
 * answers in microseconds, so this is the smallest client that is still
 * correct: DISCOVER, OFFER, REQUEST, ACK, each step retried a few times on
 * a short timeout, over a UDP socket bound to port 68 on eth0 (the server
 * broadcasts its replies, so no address or raw socket is needed first).
 * The lease is applied with ioctls (MTU, address, netmask, default route)
 * and /etc/resolv.conf. It replaces busybox udhcpc, whose process startup
 * and script (five `ip` executions) cost ~0.2-0.5 s of boot under TCG.
 *
 * Replies come from the host and are parsed through a bounded cursor; a
 * malformed or foreign reply is ignored and the step retried. The lease is
 * not renewed: the host's lease outlives any VM.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"

#define DHCP_IF		"eth0"
#define DHCP_TRIES	4
#define DHCP_WAIT_MS	500
#define DHCP_MSG_MAX	576
#define DHCP_FIXED	236	/* op .. file, before the magic cookie */
#define DHCP_COOKIE	0x63825363u

enum { DISCOVER = 1, OFFER = 2, REQUEST = 3, ACK = 5, NAK = 6 };

struct lease {
	uint32_t ip, mask, router, dns, server;	/* network byte order */
	uint16_t mtu;
};

/**
 * build() - write a DISCOVER or REQUEST into @buf
 * @buf:	DHCP_MSG_MAX bytes
 * @type:	DISCOVER or REQUEST
 * @xid:	transaction id
 * @mac:	our MAC
 * @offer:	for REQUEST: the address and server to ask for
 *
 * Return: message length
 */
static size_t build(uint8_t *buf, int type, uint32_t xid, const uint8_t mac[6],
		    const struct lease *offer)
{
	static const uint8_t params[] = { 1, 3, 6, 26, 51, 54 };
	uint8_t *o = buf + DHCP_FIXED + 4;
	uint32_t v;

	memset(buf, 0, DHCP_MSG_MAX);
	buf[0] = 1;				/* BOOTREQUEST */
	buf[1] = 1;				/* Ethernet */
	buf[2] = 6;
	memcpy(buf + 4, &xid, 4);
	buf[10] = 0x80;				/* broadcast replies, please */
	memcpy(buf + 28, mac, 6);
	v = htonl(DHCP_COOKIE);
	memcpy(buf + DHCP_FIXED, &v, 4);
	*o++ = 53, *o++ = 1, *o++ = (uint8_t)type;
	*o++ = 55, *o++ = sizeof(params);
	memcpy(o, params, sizeof(params));
	o += sizeof(params);
	if (type == REQUEST) {
		*o++ = 50, *o++ = 4;
		memcpy(o, &offer->ip, 4), o += 4;
		*o++ = 54, *o++ = 4;
		memcpy(o, &offer->server, 4), o += 4;
	}
	*o++ = 255;
	return (size_t)(o - buf) < 300 ? 300 : (size_t)(o - buf);
}

/**
 * parse() - read a reply to our transaction
 * @p:		bytes received
 * @len:	their number
 * @xid:	our transaction id
 * @l:		lease fields found
 *
 * Return: the message type (OFFER, ACK, NAK), or -1 if not ours or malformed
 */
static int parse(const uint8_t *p, size_t len, uint32_t xid, struct lease *l)
{
	size_t i = DHCP_FIXED + 4;
	uint32_t cookie;
	int type = -1;

	if (len < i || p[0] != 2 || memcmp(p + 4, &xid, 4) != 0)
		return -1;
	memcpy(&cookie, p + DHCP_FIXED, 4);
	if (ntohl(cookie) != DHCP_COOKIE)
		return -1;
	memset(l, 0, sizeof(*l));
	memcpy(&l->ip, p + 16, 4);			/* yiaddr */
	while (i < len && p[i] != 255) {
		uint8_t code = p[i], olen;

		if (code == 0) {			/* pad */
			i++;
			continue;
		}
		if (i + 2 > len || i + 2 + p[i + 1] > len)
			return -1;
		olen = p[i + 1];
		if (code == 53 && olen == 1)
			type = p[i + 2];
		else if (olen >= 4 && (code == 1 || code == 3 || code == 6 || code == 54))
			memcpy(code == 1 ? &l->mask : code == 3 ? &l->router :
			       code == 6 ? &l->dns : &l->server, p + i + 2, 4);
		else if (code == 26 && olen == 2)
			l->mtu = (uint16_t)(p[i + 2] << 8 | p[i + 3]);
		i += 2 + (size_t)olen;
	}
	return type;
}

/**
 * exchange() - send @out and wait for a reply of one of two types
 * @s:		socket
 * @out:	message
 * @olen:	its length
 * @xid:	transaction id
 * @want:	reply type wanted (OFFER or ACK)
 * @l:		lease from the reply
 *
 * Return: the reply type (@want or NAK), or -1 after DHCP_TRIES timeouts
 */
static int exchange(int s, const uint8_t *out, size_t olen, uint32_t xid, int want,
		    struct lease *l)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(67),
				  .sin_addr.s_addr = htonl(INADDR_BROADCAST) };
	uint8_t in[1500];
	int try, type;

	for (try = 0; try < DHCP_TRIES; try++) {
		struct pollfd pfd = { .fd = s, .events = POLLIN };

		if (sendto(s, out, olen, 0, (struct sockaddr *)&to, sizeof(to)) < 0)
			return -1;
		while (poll(&pfd, 1, DHCP_WAIT_MS) > 0) {
			ssize_t n = recv(s, in, sizeof(in), 0);

			if (n <= 0)
				break;
			type = parse(in, (size_t)n, xid, l);
			if (type == want || type == NAK)
				return type;
		}
	}
	return -1;
}

static int ifreq_ioctl(int s, unsigned long req, struct ifreq *ifr)
{
	memset(ifr->ifr_name, 0, IFNAMSIZ);
	strcpy(ifr->ifr_name, DHCP_IF);
	return ioctl(s, req, ifr);
}

static void set_addr(int s, unsigned long req, uint32_t addr)
{
	struct ifreq ifr = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;

	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = addr;
	if (ifreq_ioctl(s, req, &ifr) < 0)
		agent_log("dhcp: ioctl %lx: %s", req, strerror(errno));
}

/**
 * apply() - configure eth0 and the resolver from an ACK
 * @s:		any AF_INET socket
 * @l:		lease
 */
static void apply(int s, const struct lease *l)
{
	struct sockaddr_in *sin;
	struct rtentry rt = { 0 };
	struct ifreq ifr = { 0 };
	char line[64], ip[INET_ADDRSTRLEN];
	int fd;

	if (l->mtu >= 576) {
		ifr.ifr_mtu = l->mtu;
		ifreq_ioctl(s, SIOCSIFMTU, &ifr);
	}
	set_addr(s, SIOCSIFADDR, l->ip);
	set_addr(s, SIOCSIFNETMASK, l->mask ? l->mask : htonl(0xffffff00));
	if (l->router) {
		sin = (struct sockaddr_in *)&rt.rt_dst;
		sin->sin_family = AF_INET;
		sin = (struct sockaddr_in *)&rt.rt_genmask;
		sin->sin_family = AF_INET;
		sin = (struct sockaddr_in *)&rt.rt_gateway;
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = l->router;
		rt.rt_flags = RTF_UP | RTF_GATEWAY;
		rt.rt_dev = (char *)DHCP_IF;
		if (ioctl(s, SIOCADDRT, &rt) < 0 && errno != EEXIST)
			agent_log("dhcp: default route: %s", strerror(errno));
	}
	if (!l->dns)
		return;
	fd = open("/etc/resolv.conf", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	inet_ntop(AF_INET, &l->dns, ip, sizeof(ip));
	snprintf(line, sizeof(line), "nameserver %s\n", ip);
	if (write(fd, line, strlen(line)) < 0)
		agent_log("dhcp: resolv.conf: %s", strerror(errno));
	close(fd);
}

/**
 * open_socket() - UDP :68 on eth0, link up; fills @mac
 * @mac:	eth0's hardware address
 *
 * Return: socket, or -1
 */
static int open_socket(uint8_t mac[6])
{
	struct sockaddr_in me = { .sin_family = AF_INET, .sin_port = htons(68) };
	struct ifreq ifr = { 0 };
	int s, on = 1;

	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	if (ifreq_ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		goto fail;
	ifr.ifr_flags |= IFF_UP;
	if (ifreq_ioctl(s, SIOCSIFFLAGS, &ifr) < 0 || ifreq_ioctl(s, SIOCGIFHWADDR, &ifr) < 0)
		goto fail;
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	if (setsockopt(s, SOL_SOCKET, SO_BROADCAST, &on, sizeof(on)) < 0 ||
	    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0 ||
	    setsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, DHCP_IF, sizeof(DHCP_IF)) < 0 ||
	    bind(s, (struct sockaddr *)&me, sizeof(me)) < 0)
		goto fail;
	return s;
fail:
	agent_log("dhcp: %s: %s", DHCP_IF, strerror(errno));
	close(s);
	return -1;
}

/**
 * agent_dhcp() - get and apply a lease for eth0; no-op without eth0
 *
 * Return: 0 configured, -1 not (logged)
 */
int agent_dhcp(void)
{
	uint8_t buf[DHCP_MSG_MAX], mac[6];
	struct lease offer, ack;
	uint32_t xid;
	size_t len;
	int s, rc = -1;

	if (access("/sys/class/net/" DHCP_IF, F_OK) < 0)
		return -1;
	s = open_socket(mac);
	if (s < 0)
		return -1;
	xid = (uint32_t)agent_now_ms() ^ (uint32_t)getpid() << 16 ^ (uint32_t)mac[5] << 8;
	len = build(buf, DISCOVER, xid, mac, NULL);
	if (exchange(s, buf, len, xid, OFFER, &offer) == OFFER && offer.server) {
		len = build(buf, REQUEST, xid, mac, &offer);
		if (exchange(s, buf, len, xid, ACK, &ack) == ACK) {
			apply(s, &ack);
			rc = 0;
		}
	}
	if (rc < 0)
		agent_log("dhcp: no lease for %s", DHCP_IF);
	close(s);
	return rc;
}
