/* SPDX-License-Identifier: MIT */
/* l_hook.h - compiled policies and hook calls, shared by l_hook.c and l_netif.c */
#ifndef GONDOLIN_API_L_HOOK_H
#define GONDOLIN_API_L_HOOK_H

#include <stdbool.h>

#include "api/api.h"
#include "http/proxy.h"

struct policy *lhook_policy(lua_State *L, int idx, bool *on_request,
			    bool *on_response);
int lhook_start(lua_State *L, int pidx, struct proxy *px,
		const struct proxy_request *rq, const struct proxy_response *rs);
void lhook_body(lua_State *L, struct proxy *px, const char *p, size_t n,
		const char *err);
void lhook_cancel(lua_State *L, struct proxy *px);

#endif /* GONDOLIN_API_L_HOOK_H */
