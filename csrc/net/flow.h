/* SPDX-License-Identifier: MIT */
/* flow.h - decide what a guest TCP flow is from its first bytes */
#ifndef GONDOLIN_NET_FLOW_H
#define GONDOLIN_NET_FLOW_H

#include <stddef.h>
#include <stdint.h>

#include "tls/clienthello.h"

#define FLOW_SNIFF_MAX		4096	/* bytes looked at before giving up */
#define FLOW_SNIFF_MS		5000	/* a client that sends nothing is reset */

enum flow_kind {
	FLOW_UNDECIDED,
	FLOW_HTTP,		/* an HTTP/1.x request line */
	FLOW_TLS,		/* a TLS ClientHello (sni may be "") */
	FLOW_REFUSED,		/* anything else; reason says why */
};

/**
 * struct flow_class - the verdict
 * @kind:	see enum flow_kind
 * @reason:	static string for FLOW_REFUSED (and audit)
 * @hello:	for FLOW_TLS
 */
struct flow_class {
	enum flow_kind kind;
	const char *reason;
	struct clienthello hello;
};

int flow_classify(const uint8_t *p, size_t len, struct flow_class *fc);
const char *flow_kind_name(enum flow_kind k);

#endif /* GONDOLIN_NET_FLOW_H */
