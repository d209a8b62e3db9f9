/* SPDX-License-Identifier: MIT */
/* flow_fuzz.c - the flow classifier and the ClientHello parser on any bytes */

#include <stdint.h>
#include <string.h>

#include "net/flow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct flow_class fc;
	size_t i;

	/* every prefix, as the bytes trickle in, must be classifiable */
	for (i = 0; i <= size && i <= FLOW_SNIFF_MAX + 1; i += 1 + i / 8) {
		if (flow_classify(data, i, &fc) == 1) {
			if (fc.kind == FLOW_TLS) {
				if (fc.hello.record_len > i || strlen(fc.hello.sni) > CLIENTHELLO_MAX_NAME)
					__builtin_trap();
			}
			if (fc.kind == FLOW_REFUSED && !fc.reason)
				__builtin_trap();
			break;
		}
	}
	return 0;
}
