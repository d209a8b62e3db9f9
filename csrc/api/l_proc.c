/* SPDX-License-Identifier: MIT */
/* l_proc.c - child processes (QEMU) started by spawn.c, watched on luv's loop
 *
 * A proc is a pidfd polled for readability (or, without pidfds, a timer
 * that tries waitpid every PROC_POLL_MS); when the child has exited it is
 * reaped and on_exit(code, signal) runs (user value 1). If the Lua value is
 * collected or closed while the child still runs, the child is SIGKILLed and
 * reaped: a VM never outlives the object that owns it.
 */

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/api.h"
#include "vmm/spawn.h"

#define PROC_MT		"gondolin.proc"
#define PROC_POLL_MS	20

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
 * lproc_spawn() - core.spawn(argv, fds, on_exit) -> proc | nil, msg, code
 * @L:		Lua state
 *
 * Return: 1 or 3
 */
static int lproc_spawn(lua_State *L)
{
	struct spawn_fd fds[SPAWN_MAX_FDS];
	struct spawn_req req = { 0 };
	int n, i, rc, pidfd = -1;
	struct proc **p, *pr;
	char **argv;
	pid_t pid;

	luaL_checktype(L, 1, LUA_TTABLE);
	luaL_checktype(L, 2, LUA_TTABLE);
	luaL_checktype(L, 3, LUA_TFUNCTION);
	n = (int)lua_rawlen(L, 1);
	luaL_argcheck(L, n > 0 && n < SPAWN_MAX_ARGS, 1, "argv must have 1..255 strings");
	argv = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
	for (i = 0; i < n; i++) {
		lua_rawgeti(L, 1, i + 1);
		argv[i] = (char *)luaL_checkstring(L, -1);	/* anchored in argv table */
		lua_pop(L, 1);
	}
	argv[n] = NULL;
	req.argv = argv;
	req.fds = fds;
	req.nfds = build_fds(L, 2, fds);

	p = lua_newuserdatauv(L, sizeof(*p), 1);
	*p = NULL;
	luaL_setmetatable(L, PROC_MT);
	pr = calloc(1, sizeof(*pr));
	if (!pr)
		return luaL_error(L, "out of memory");
	rc = spawn_child(&req, &pid, &pidfd);
	if (rc < 0) {
		free(pr);
		return api_fail_errno(L, rc, argv[0]);
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

void api_open_proc(lua_State *L)
{
	api_new_class(L, PROC_MT, proc_meta, proc_methods);
	lua_pushcfunction(L, lproc_spawn);
	lua_setfield(L, -2, "spawn");
}
