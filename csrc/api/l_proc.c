/* SPDX-License-Identifier: MIT */
/* l_proc.c - child processes (QEMU) started by spawn.c, watched on luv's loop
 *
 * A proc is a pidfd polled for readability (or, without pidfds, a timer
 * that tries waitpid every PROC_POLL_MS); when the child has exited it is
 * reaped and on_exit(code, signal) runs (user value 1). If the Lua value is
 * collected or closed while the child still runs, the child is SIGKILLed and
 * reaped: a VM never outlives the object that owns it.
 *
 * core.spawn's fourth argument confines the child (spawn.h: rlimits, a uid
 * drop, a chosen environment); core.user and core.group resolve names with
 * NSS here, before the fork, since the child must not call into NSS.
 */

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/api.h"
#include "vmm/spawn.h"

#define PROC_MT		"gondolin.proc"
#define PROC_POLL_MS	20
#define PROC_NSS_BUF	4096	/* getpwnam_r/getgrnam_r scratch */

struct proc {
	struct api_handle h;	/* must be first */
	union {			/* poll on the pidfd, or timer without one */
		uv_handle_t any;
		uv_poll_t poll;
		uv_timer_t timer;
	} w;
	pid_t pid;
	int pidfd;
	int reaped;
	int closed;
};

static struct proc *check_proc(lua_State *L, int idx)
{
	struct proc **p = luaL_checkudata(L, idx, PROC_MT);

	luaL_argcheck(L, *p != NULL, idx, "proc is closed");
	return *p;
}

static void on_uv_close(uv_handle_t *handle)
{
	struct proc *pr = handle->data;

	if (pr->pidfd >= 0)
		close(pr->pidfd);
	free(pr);
}

/**
 * proc_release() - stop watching; kill and reap a child still running
 * @pr:		proc
 */
static void proc_release(struct proc *pr)
{
	if (pr->closed)
		return;
	pr->closed = 1;
	if (!pr->reaped) {
		kill(pr->pid, SIGKILL);
		waitpid(pr->pid, NULL, 0);	/* prompt after SIGKILL */
		pr->reaped = 1;
	}
	uv_close(&pr->w.any, on_uv_close);	/* also stops it */
}

/**
 * proc_check() - reap the child if it exited, and report it
 * @pr:		proc
 */
static void proc_check(struct proc *pr)
{
	lua_State *L = pr->h.L;
	int st;

	if (pr->reaped || waitpid(pr->pid, &st, WNOHANG) != pr->pid)
		return;
	pr->reaped = 1;
	if (pr->pidfd >= 0)
		uv_poll_stop(&pr->w.poll);
	else
		uv_timer_stop(&pr->w.timer);
	if (WIFSIGNALED(st)) {
		lua_pushnil(L);
		lua_pushinteger(L, WTERMSIG(st));
	} else {
		lua_pushinteger(L, WEXITSTATUS(st));
		lua_pushnil(L);
	}
	api_call_uservalue(L, pr, 1, 2);
}

static void on_exit_ready(uv_poll_t *poll, int status, int events)
{
	(void)status;
	(void)events;
	proc_check(poll->data);
}

static void on_exit_tick(uv_timer_t *timer)
{
	proc_check(timer->data);
}

/**
 * build_fds() - read {{target, source}, ...} from the table at @idx
 * @L:		Lua state
 * @idx:	table index
 * @fds:	output, SPAWN_MAX_FDS entries
 *
 * Return: number of entries (raises on misuse)
 */
static int build_fds(lua_State *L, int idx, struct spawn_fd *fds)
{
	int n = (int)lua_rawlen(L, idx), i;

	luaL_argcheck(L, n <= SPAWN_MAX_FDS, idx, "too many descriptors");
	for (i = 0; i < n; i++) {
		lua_rawgeti(L, idx, i + 1);
		luaL_argcheck(L, lua_istable(L, -1), idx, "entries are {target, source}");
		lua_rawgeti(L, -1, 1);
		lua_rawgeti(L, -2, 2);
		fds[i].target = (int)luaL_checkinteger(L, -2);
		fds[i].source = (int)luaL_optinteger(L, -1, -1);
		luaL_argcheck(L, fds[i].target >= 0 && fds[i].target < 64, idx,
			      "target descriptor must be 0..63");
		lua_pop(L, 3);
	}
	return n;
}

/**
 * build_strv() - a NULL-terminated char *[] from the string list at @idx
 * @L:		Lua state
 * @idx:	table index (absolute)
 * @max:	most entries accepted
 * @what:	for the error message
 *
 * The vector is a userdata left on the stack; its strings stay anchored in
 * the table at @idx, which the caller keeps on the stack until exec.
 *
 * Return: the vector (raises on misuse)
 */
static char **build_strv(lua_State *L, int idx, int max, const char *what)
{
	int n = (int)lua_rawlen(L, idx), i;
	char **v;

	if (n >= max)
		luaL_error(L, "%s: at most %d strings", what, max - 1);
	v = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
	for (i = 0; i < n; i++) {
		lua_rawgeti(L, idx, i + 1);
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "%s: entry %d is not a string", what, i + 1);
		v[i] = (char *)lua_tostring(L, -1);
		lua_pop(L, 1);
	}
	v[n] = NULL;
	return v;
}

/**
 * opt_uint() - a non-negative integer field of the table at @idx, or 0
 * @L:		Lua state
 * @idx:	table index (absolute)
 * @k:		field name
 *
 * Return: the value; raises if present and not a non-negative integer
 */
static lua_Integer opt_uint(lua_State *L, int idx, const char *k)
{
	lua_Integer v;
	int isint;

	lua_getfield(L, idx, k);
	v = lua_tointegerx(L, -1, &isint);
	if (!lua_isnil(L, -1) && (!isint || v < 0))
		luaL_error(L, "core.spawn: opts.%s must be a non-negative integer", k);
	lua_pop(L, 1);
	return v;
}

/**
 * build_limits() - opts.rlimits = { as =, nofile =, nproc = } into @l
 * @L:		Lua state
 * @opts:	index of the opts table
 * @l:		output
 */
static void build_limits(lua_State *L, int opts, struct spawn_limits *l)
{
	int t;

	if (lua_getfield(L, opts, "rlimits") == LUA_TTABLE) {
		t = lua_gettop(L);
		l->as = (rlim_t)opt_uint(L, t, "as");
		l->nofile = (rlim_t)opt_uint(L, t, "nofile");
		l->nproc = (rlim_t)opt_uint(L, t, "nproc");
	}
	lua_pop(L, 1);
}

/**
 * build_cred() - opts.uid, opts.gid, opts.groups into @c
 * @L:		Lua state
 * @opts:	index of the opts table
 * @c:		output; @c->drop is set when opts.uid is present
 */
static void build_cred(lua_State *L, int opts, struct spawn_cred *c)
{
	int i, n;

	lua_getfield(L, opts, "uid");
	c->drop = !lua_isnil(L, -1);
	lua_pop(L, 1);
	if (!c->drop)
		return;
	lua_getfield(L, opts, "gid");
	luaL_argcheck(L, !lua_isnil(L, -1), 4, "opts.uid needs opts.gid");
	lua_pop(L, 1);
	c->uid = (uid_t)opt_uint(L, opts, "uid");
	c->gid = (gid_t)opt_uint(L, opts, "gid");
	luaL_argcheck(L, c->uid != 0, 4, "opts.uid must not be 0 (root)");
	if (lua_getfield(L, opts, "groups") == LUA_TTABLE) {
		n = (int)lua_rawlen(L, -1);
		luaL_argcheck(L, n <= SPAWN_MAX_GROUPS, 4, "too many groups");
		for (i = 0; i < n; i++) {
			lua_rawgeti(L, -1, i + 1);
			c->groups[i] = (gid_t)luaL_checkinteger(L, -1);
			lua_pop(L, 1);
		}
		c->ngroups = n;
	}
	lua_pop(L, 1);
}

/**
 * build_opts() - read core.spawn's opts (argument 4) into @req
 * @L:		Lua state
 * @req:	spawn request
 *
 * opts.env, when given, is anchored at stack slot 5 with its vector.
 */
static void build_opts(lua_State *L, struct spawn_req *req)
{
	if (lua_isnoneornil(L, 4))
		return;
	luaL_checktype(L, 4, LUA_TTABLE);
	build_limits(L, 4, &req->limits);
	build_cred(L, 4, &req->cred);
	if (lua_getfield(L, 4, "env") == LUA_TTABLE) {
		req->envp = build_strv(L, lua_gettop(L), SPAWN_MAX_ENV, "core.spawn opts.env");
		return;		/* table and vector stay on the stack */
	}
	lua_pop(L, 1);
}

/**
 * lproc_spawn() - core.spawn(argv, fds, on_exit, opts?) -> proc | nil, msg, code
 * @L:		Lua state
 *
 * opts: rlimits = { as, nofile, nproc } (0 or absent: inherited), uid and
 * gid (drop to them; with groups, the supplementary groups kept), env (a
 * list of "K=V": the child's whole environment). See spawn.h.
 *
 * Return: 1 or 3
 */
static int lproc_spawn(lua_State *L)
{
	struct spawn_fd fds[SPAWN_MAX_FDS];
	int n, rc, pidfd = -1, stage;
	struct spawn_req req = { 0 };
	struct proc **p, *pr;
	char **argv;
	pid_t pid;

	luaL_checktype(L, 1, LUA_TTABLE);
	luaL_checktype(L, 2, LUA_TTABLE);
	luaL_checktype(L, 3, LUA_TFUNCTION);
	lua_settop(L, 4);
	n = (int)lua_rawlen(L, 1);
	luaL_argcheck(L, n > 0 && n < SPAWN_MAX_ARGS, 1, "argv must have 1..255 strings");
	build_opts(L, &req);
	argv = build_strv(L, 1, SPAWN_MAX_ARGS, "core.spawn argv");
	req.argv = argv;
	req.fds = fds;
	req.nfds = build_fds(L, 2, fds);

	p = lua_newuserdatauv(L, sizeof(*p), 1);
	*p = NULL;
	luaL_setmetatable(L, PROC_MT);
	pr = calloc(1, sizeof(*pr));
	if (!pr)
		return luaL_error(L, "out of memory");
	rc = spawn_child(&req, &pid, &pidfd, &stage);
	if (rc < 0) {
		free(pr);
		lua_pushfstring(L, "%s: %s", argv[0], spawn_stage_name(stage));
		return api_fail_errno(L, rc, lua_tostring(L, -1));
	}
	pr->pid = pid;
	pr->pidfd = pidfd;
	if (pidfd >= 0) {
		uv_poll_init(api_loop(L), &pr->w.poll, pidfd);
		uv_poll_start(&pr->w.poll, UV_READABLE, on_exit_ready);
	} else {
		uv_timer_init(api_loop(L), &pr->w.timer);
		uv_timer_start(&pr->w.timer, on_exit_tick, PROC_POLL_MS, PROC_POLL_MS);
	}
	pr->w.any.data = pr;
	*p = pr;
	api_handle_register(L, -1, pr);
	lua_pushvalue(L, 3);
	lua_setiuservalue(L, -2, 1);
	return 1;
}

/* proc:pid() */
static int lproc_pid(lua_State *L)
{
	lua_pushinteger(L, check_proc(L, 1)->pid);
	return 1;
}

/* proc:kill(signo) -> true | nil, msg, code */
static int lproc_kill(lua_State *L)
{
	struct proc *pr = check_proc(L, 1);
	int sig = (int)luaL_optinteger(L, 2, SIGTERM);

	luaL_argcheck(L, sig >= 0 && sig < 65, 2, "signal number out of range");
	if (pr->reaped)
		return api_fail(L, "process has exited", "exited");
	if (kill(pr->pid, sig) < 0)
		return api_fail_errno(L, -errno, "kill");
	lua_pushboolean(L, 1);
	return 1;
}

/* proc:running() */
static int lproc_running(lua_State *L)
{
	struct proc **p = luaL_checkudata(L, 1, PROC_MT);

	lua_pushboolean(L, *p && !(*p)->reaped);
	return 1;
}

/* proc:close(): kills a running child; a second close does nothing */
static int lproc_close(lua_State *L)
{
	struct proc **p = luaL_checkudata(L, 1, PROC_MT);

	if (*p)
		proc_release(*p);
	*p = NULL;
	return 0;
}

static const luaL_Reg proc_methods[] = {
	{ "pid",	lproc_pid },
	{ "kill",	lproc_kill },
	{ "running",	lproc_running },
	{ "close",	lproc_close },
	{ NULL, NULL }
};

static const luaL_Reg proc_meta[] = {
	{ "__gc",	lproc_close },
	{ "__close",	lproc_close },
	{ NULL, NULL }
};

/**
 * lproc_user() - core.user(name | uid) -> { name, uid, gid } | nil, msg, code
 * @L:		Lua state
 *
 * Return: 1 or 3 ("unknown" when there is no such user)
 */
static int lproc_user(lua_State *L)
{
	struct passwd pw, *res = NULL;
	char buf[PROC_NSS_BUF];
	int rc;

	if (lua_type(L, 1) == LUA_TNUMBER)
		rc = getpwuid_r((uid_t)luaL_checkinteger(L, 1), &pw, buf, sizeof(buf), &res);
	else
		rc = getpwnam_r(luaL_checkstring(L, 1), &pw, buf, sizeof(buf), &res);
	if (rc)
		return api_fail_errno(L, -rc, "getpwnam");
	if (!res)
		return api_fail(L, lua_pushfstring(L, "no user %s", luaL_tolstring(L, 1, NULL)), "unknown");
	lua_createtable(L, 0, 3);
	lua_pushstring(L, pw.pw_name);
	lua_setfield(L, -2, "name");
	api_set_int(L, "uid", pw.pw_uid);
	api_set_int(L, "gid", pw.pw_gid);
	return 1;
}

/* core.group(name) -> gid | nil, msg, code ("unknown": no such group) */
static int lproc_group(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	struct group gr, *res = NULL;
	char buf[PROC_NSS_BUF];
	int rc;

	rc = getgrnam_r(name, &gr, buf, sizeof(buf), &res);
	if (rc)
		return api_fail_errno(L, -rc, "getgrnam");
	if (!res)
		return api_fail(L, lua_pushfstring(L, "no group %s", name), "unknown");
	lua_pushinteger(L, gr.gr_gid);
	return 1;
}

/* core.geteuid(): whether we run as root decides the uid drop */
static int lproc_geteuid(lua_State *L)
{
	lua_pushinteger(L, geteuid());
	return 1;
}

static const luaL_Reg proc_funcs[] = {
	{ "spawn",	lproc_spawn },
	{ "user",	lproc_user },
	{ "group",	lproc_group },
	{ "geteuid",	lproc_geteuid },
	{ NULL, NULL }
};

void api_open_proc(lua_State *L)
{
	api_new_class(L, PROC_MT, proc_meta, proc_methods);
	luaL_setfuncs(L, proc_funcs, 0);
}
