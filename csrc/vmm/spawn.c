/* SPDX-License-Identifier: MIT */
/* spawn.c - start a child (QEMU) that cannot outlive us, with chosen fds
 *
 * Theory of Operation
 *
 * libuv's uv_spawn cannot set PR_SET_PDEATHSIG, and a QEMU left behind by a
 * crashed or killed host process is exactly what we must never have. So we
 * fork and exec ourselves:
 *
 * - the child asks for SIGKILL when its parent dies, then checks it was not
 *   orphaned already in the window before prctl();
 * - it gets its own process group, so a Ctrl-C on the terminal reaches us
 *   (and we decide), not QEMU directly;
 * - the descriptors to inherit are first moved above every target, then
 *   dup2()ed into place, and everything else is closed: socketpair ends
 *   become QEMU's chardev fds without any socket file on disk;
 * - it is confined before exec (child_confine): no_new_privs, rlimits, and,
 *   when asked, a drop to an unprivileged uid/gid with only the listed
 *   supplementary groups. This is done here, not with QEMU's -runas,
 *   because QEMU 7.2 installs its seccomp filter (-sandbox
 *   elevateprivileges=deny) before it calls setuid, and dies of SIGSYS;
 * - an exec or setup failure travels back over a CLOEXEC pipe as a stage
 *   and an errno, so the caller gets "setresuid: Operation not permitted"
 *   or "exec: No such file or directory" instead of a child that exits.
 *
 * The caller watches the returned pidfd (readable once the child exits) and
 * reaps with waitpid(); no SIGCHLD handler is involved, so libuv's own child
 * handling is unaffected. Where pidfd_open() does not exist (Linux < 5.3,
 * valgrind) the pidfd is -1 and the caller polls waitpid() instead.
 */

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/spawn.h"

#define SPAWN_HIGH_FD	256	/* parking area while fds are rearranged */

/* what the child was doing when it failed, for the caller's message */
static const char *const spawn_stage_str[] = {
	[SPAWN_STAGE_SETUP]	= "spawn",
	[SPAWN_STAGE_NNP]	= "no_new_privs",
	[SPAWN_STAGE_RLIMIT]	= "setrlimit",
	[SPAWN_STAGE_GROUPS]	= "setgroups",
	[SPAWN_STAGE_GID]	= "setresgid",
	[SPAWN_STAGE_UID]	= "setresuid",
	[SPAWN_STAGE_EXEC]	= "exec",
};
static_assert(sizeof(spawn_stage_str) / sizeof(spawn_stage_str[0]) == SPAWN_STAGE_COUNT,
	      "spawn_stage_str covers enum spawn_stage");

/* the child's report over the pipe */
struct spawn_err {
	int stage;
	int err;
};

/**
 * child_fds() - put the requested descriptors in place in the child
 * @req:	spawn request
 * @errfd:	the error pipe (above every target): kept, moved just above
 *		the targets (below any descriptor limit set later)
 *
 * Return: the error pipe's new descriptor, or -1 with errno set
 */
static int child_fds(const struct spawn_req *req, int errfd)
{
	int parked[SPAWN_MAX_FDS], devnull, i, maxfd = 2;

	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0)
		return -1;
	for (i = 0; i < req->nfds; i++) {
		int src = req->fds[i].source < 0 ? devnull : req->fds[i].source;

		parked[i] = fcntl(src, F_DUPFD_CLOEXEC, SPAWN_HIGH_FD);
		if (parked[i] < 0)
			return -1;
	}
	for (i = 0; i <= 2; i++)
		if (dup2(devnull, i) < 0)
			return -1;
	for (i = 0; i < req->nfds; i++) {
		if (dup2(parked[i], req->fds[i].target) < 0)
			return -1;
		if (req->fds[i].target > maxfd)
			maxfd = req->fds[i].target;
	}
	/* dup2() clears FD_CLOEXEC on the targets; close everything else
	 * but the error pipe (CLOEXEC: exec closes it) */
	if (syscall(SYS_close_range, (unsigned)maxfd + 1, (unsigned)errfd - 1, 0) < 0 ||
	    syscall(SYS_close_range, (unsigned)errfd + 1, ~0U, 0) < 0)
		return -1;
	i = fcntl(errfd, F_DUPFD_CLOEXEC, maxfd + 1);
	if (i < 0)
		return -1;
	close(errfd);
	return i;
}

/**
 * child_rlimit() - set both the soft and the hard limit, so QEMU cannot
 *		    raise it back (it could, had we set only the soft one)
 * @res:	RLIMIT_*
 * @v:		limit; 0 leaves the inherited one, and an inherited hard
 *		limit below @v wins (an unprivileged parent cannot raise it)
 *
 * Return: 0, or -1 with errno set
 */
static int child_rlimit(int res, rlim_t v)
{
	struct rlimit rl;

	if (!v)
		return 0;
	if (getrlimit(res, &rl) < 0)
		return -1;
	if (v < rl.rlim_max)	/* never above the inherited hard limit */
		rl.rlim_max = v;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(res, &rl) == 0)
		return 0;
	/* lowering a hard limit cannot fail on Linux; an emulator can
	 * (valgrind lets a process change only its soft descriptor limit):
	 * then the soft limit alone */
	if (errno != EPERM || getrlimit(res, &rl) < 0 || v > rl.rlim_max)
		return -1;
	rl.rlim_cur = v;
	return setrlimit(res, &rl);
}

/**
 * child_drop() - become the unprivileged user of @c, for good
 * @c:		identity
 * @stage:	set to the step that failed
 *
 * Groups first, then the gid, then the uid: after setresuid we could no
 * longer change the other two. All three of real, effective and saved ids
 * are set, so nothing can switch back to root. The kernel clears
 * PR_SET_PDEATHSIG on a credential change, so it is set again last; the
 * caller checks for an orphaning after that.
 *
 * Return: 0, or -1 with errno set
 */
static int child_drop(const struct spawn_cred *c, int *stage)
{
	*stage = SPAWN_STAGE_GROUPS;
	if (setgroups((size_t)c->ngroups, c->groups) < 0)
		return -1;
	*stage = SPAWN_STAGE_GID;
	if (setresgid(c->gid, c->gid, c->gid) < 0)
		return -1;
	*stage = SPAWN_STAGE_UID;
	if (setresuid(c->uid, c->uid, c->uid) < 0)
		return -1;
	if (setuid(0) == 0) {	/* paranoia: the drop must not be undoable */
		errno = EPERM;
		return -1;
	}
	/* changing credentials cleared the parent-death signal: arm it again */
	*stage = SPAWN_STAGE_SETUP;
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		return -1;
	return 0;
}

/**
 * child_confine() - no_new_privs, rlimits, then the uid drop
 * @req:	spawn request
 * @stage:	set to the step that failed
 *
 * no_new_privs makes a setuid or file-capability binary reached by exec
 * gain nothing, and is what lets QEMU install its seccomp filter. The
 * rlimits come before the drop: once unprivileged we could only lower them.
 *
 * Return: 0, or -1 with errno set
 */
static int child_confine(const struct spawn_req *req, int *stage)
{
	const struct spawn_limits *l = &req->limits;
	const struct rlimit no_core = { 0, 0 };

	*stage = SPAWN_STAGE_NNP;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	*stage = SPAWN_STAGE_RLIMIT;
	if (setrlimit(RLIMIT_CORE, &no_core) < 0)	/* no guest memory in a core */
		return -1;
	if (child_rlimit(RLIMIT_AS, l->as) < 0 ||
	    child_rlimit(RLIMIT_NOFILE, l->nofile) < 0 ||
	    child_rlimit(RLIMIT_NPROC, l->nproc) < 0)
		return -1;
	return req->cred.drop ? child_drop(&req->cred, stage) : 0;
}

/**
 * child_exec() - runs in the forked child; never returns
 * @req:	spawn request
 * @errfd:	CLOEXEC pipe to report a failure on
 * @parent:	pid of the parent, to detect an early orphaning
 */
static void child_exec(const struct spawn_req *req, int errfd, pid_t parent)
{
	struct spawn_err e = { SPAWN_STAGE_SETUP, 0 };
	sigset_t all;

	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(127);
	setpgid(0, 0);
	errfd = fcntl(errfd, F_DUPFD_CLOEXEC, SPAWN_HIGH_FD + SPAWN_MAX_FDS);
	if (errfd >= 0)
		errfd = child_fds(req, errfd);
	if (errfd >= 0 && child_confine(req, &e.stage) == 0) {
		if (getppid() != parent)	/* died while the signal was unarmed */
			_exit(127);
		e.stage = SPAWN_STAGE_EXEC;
		if (req->envp)
			execvpe(req->argv[0], req->argv, req->envp);
		else
			execvp(req->argv[0], req->argv);
	}
	e.err = errno;
	if (errfd >= 0 && write(errfd, &e, sizeof(e)) < 0)
		_exit(127);
	_exit(127);
}

/**
 * spawn_stage_name() - what a failed spawn was doing
 * @stage:	from spawn_child()
 *
 * Return: a static string ("setresuid", "exec", ...)
 */
const char *spawn_stage_name(int stage)
{
	if (stage < 0 || stage >= SPAWN_STAGE_COUNT)
		return "spawn";
	return spawn_stage_str[stage];
}

/**
 * spawn_check() - validate a request before forking
 * @req:	spawn request
 *
 * Return: true if it can be started
 */
static bool spawn_check(const struct spawn_req *req)
{
	const struct spawn_cred *c = &req->cred;

	if (!req->argv || !req->argv[0] || req->nfds < 0 || req->nfds > SPAWN_MAX_FDS)
		return false;
	/* dropping "to root" would be a silent no-op: refuse it */
	return !c->drop || (c->uid != 0 && c->ngroups >= 0 && c->ngroups <= SPAWN_MAX_GROUPS);
}

/**
 * spawn_child() - fork and exec @req
 * @req:	what to run
 * @pid:	set to the child's pid
 * @pidfd:	set to a CLOEXEC pidfd for the child, or -1 without pidfds
 * @stage:	set to the SPAWN_STAGE_* that failed, on failure
 *
 * Return: 0, or -errno (child failures included, the child already reaped)
 */
int spawn_child(const struct spawn_req *req, pid_t *pid, int *pidfd, int *stage)
{
	struct spawn_err e = { SPAWN_STAGE_SETUP, 0 };
	pid_t parent = getpid(), child;
	int pipefd[2], err = 0;
	ssize_t n;

	*stage = SPAWN_STAGE_SETUP;
	if (!spawn_check(req))
		return -EINVAL;
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	child = fork();
	if (child < 0) {
		err = -errno;
		close(pipefd[0]);
		close(pipefd[1]);
		return err;
	}
	if (child == 0)
		child_exec(req, pipefd[1], parent);
	close(pipefd[1]);
	do
		n = read(pipefd[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(pipefd[0]);
	if (n == sizeof(e)) {
		waitpid(child, NULL, 0);
		*stage = e.stage;
		return -e.err;
	}
	*pidfd = (int)syscall(SYS_pidfd_open, child, 0);
	if (*pidfd < 0 && errno != ENOSYS) {
		err = -errno;
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		return err;
	}
	if (*pidfd >= 0)
		fcntl(*pidfd, F_SETFD, FD_CLOEXEC);
	*pid = child;
	return 0;
}
