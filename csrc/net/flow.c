/* SPDX-License-Identifier: MIT */
/* flow.c - decide what a guest TCP flow is from its first bytes
 *
 * The guest speaks first on every flow we accept. Its first bytes decide:
 * an HTTP/1.x request line goes to HTTP mediation, a TLS ClientHello to
 * interception, anything else is reset with a reason. CONNECT is refused:
 * the host never offers a generic tunnel. The embedder enforces
 * FLOW_SNIFF_MS, so a protocol where the server speaks first is reset too.
 */

#include <string.h>

#include "http/http1.h"
#include "net/flow.h"

#define METHOD_MAX	16

static const char *const flow_kind_names[] = {
	[FLOW_UNDECIDED] = "undecided",
	[FLOW_HTTP] = "http",
	[FLOW_TLS] = "tls",
	[FLOW_REFUSED] = "refused",
};
_Static_assert(sizeof(flow_kind_names) / sizeof(flow_kind_names[0]) == FLOW_REFUSED + 1,
	       "flow_kind_names matches enum flow_kind");

const char *flow_kind_name(enum flow_kind k)
{
	return k <= FLOW_REFUSED ? flow_kind_names[k] : "?";
}

/**
 * sniff_http() - does this start like an HTTP/1.x request line?
 * @p:		bytes
 * @len:	their number
 * @fc:		verdict (reason set when refused)
 *
 * Return: 1 decided (see fc->kind), 0 need more
 */
static int sniff_http(const uint8_t *p, size_t len, struct flow_class *fc)
{
	size_t i;

	for (i = 0; i < len && i <= METHOD_MAX; i++) {
		if (p[i] == ' ')
			break;
		if (!http1_is_tchar(p[i])) {
			fc->kind = FLOW_REFUSED;
			fc->reason = "not http or tls";
			return 1;
		}
	}
	if (i == len)
		return 0;
	if (i == 0 || i > METHOD_MAX) {
		fc->kind = FLOW_REFUSED;
		fc->reason = "not http or tls";
		return 1;
	}
	if (i == 7 && memcmp(p, "CONNECT", 7) == 0) {
		fc->kind = FLOW_REFUSED;
		fc->reason = "http connect refused";
		return 1;
	}
	fc->kind = FLOW_HTTP;	/* the HTTP parser judges the rest strictly */
	return 1;
}

/**
 * flow_classify() - classify a flow from the bytes received so far
 * @p:		bytes (at most FLOW_SNIFF_MAX are looked at)
 * @len:	their number
 * @fc:		verdict
 *
 * Return: 1 decided, 0 need more (the caller gives up at FLOW_SNIFF_MAX
 * bytes or FLOW_SNIFF_MS)
 */
int flow_classify(const uint8_t *p, size_t len, struct flow_class *fc)
{
	int rc;

	memset(fc, 0, sizeof(*fc));
	if (len == 0)
		return 0;
	if (p[0] == 0x16) {
		rc = clienthello_parse(p, len, &fc->hello);
		if (rc == 0 && len < FLOW_SNIFF_MAX)
			return 0;
		fc->kind = rc == 1 ? FLOW_TLS : FLOW_REFUSED;
		fc->reason = rc == 1 ? NULL : "malformed tls client hello";
		return 1;
	}
	rc = sniff_http(p, len < FLOW_SNIFF_MAX ? len : FLOW_SNIFF_MAX, fc);
	if (rc == 0 && len >= FLOW_SNIFF_MAX) {
		fc->kind = FLOW_REFUSED;
		fc->reason = "not http or tls";
		return 1;
	}
	return rc;
}
