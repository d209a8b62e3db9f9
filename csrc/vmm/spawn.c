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
 * - an exec failure travels back over a CLOEXEC pipe as an errno, so the
 *   caller gets "No such file or directory" instead of a child that exits.
 *
 * The caller watches the returned pidfd (readable once the child exits) and
 * reaps with waitpid(); no SIGCHLD handler is involved, so libuv's own child
 * handling is unaffected. Where pidfd_open() does not exist (Linux < 5.3,
 * valgrind) the pidfd is -1 and the caller polls waitpid() instead.
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/spawn.h"

#define SPAWN_HIGH_FD	256	/* parking area while fds are rearranged */

/**
 * child_fds() - put the requested descriptors in place in the child
 * @req:	spawn request
 *
 * Return: 0, or -1 with errno set
 */
static int child_fds(const struct spawn_req *req)
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
	/* dup2() clears FD_CLOEXEC on the targets; close everything else */
	return (int)syscall(SYS_close_range, (unsigned)maxfd + 1, ~0U, 0);
}

/**
 * child_exec() - runs in the forked child; never returns
 * @req:	spawn request
 * @errfd:	CLOEXEC pipe to report an errno on failure
 * @parent:	pid of the parent, to detect an early orphaning
 */
static void child_exec(const struct spawn_req *req, int errfd, pid_t parent)
{
	sigset_t all;
	int err;

	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(127);
	setpgid(0, 0);
	errfd = fcntl(errfd, F_DUPFD_CLOEXEC, SPAWN_HIGH_FD + SPAWN_MAX_FDS);
	if (errfd >= 0 && child_fds(req) == 0)
		execvp(req->argv[0], req->argv);
	err = errno;
	if (errfd >= 0 && write(errfd, &err, sizeof(err)) < 0)
		_exit(127);
	_exit(127);
}

/**
 * spawn_child() - fork and exec @req
 * @req:	what to run
 * @pid:	set to the child's pid
 * @pidfd:	set to a CLOEXEC pidfd for the child, or -1 without pidfds
 *
 * Return: 0, or -errno (exec failures included, the child already reaped)
 */
int spawn_child(const struct spawn_req *req, pid_t *pid, int *pidfd)
{
	pid_t parent = getpid(), child;
	int pipefd[2], err = 0;
	ssize_t n;

	if (!req->argv || !req->argv[0] || req->nfds < 0 ||
	    req->nfds > SPAWN_MAX_FDS)
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
		n = read(pipefd[0], &err, sizeof(err));
	while (n < 0 && errno == EINTR);
	close(pipefd[0]);
	if (n == sizeof(err)) {
		waitpid(child, NULL, 0);
		return -err;
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
