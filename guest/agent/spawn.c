/* SPDX-License-Identifier: MIT */
/* spawn.c - build a session's environment and fork/exec its leader */

/*
 * Theory of Operation
 *
 * The parent prepares everything the child needs (argv, a complete envp,
 * the three stdio fds) before fork(), so the child only rearranges fds
 * and calls into the kernel. The agent is single-threaded, so the child
 * may use stdio-free libc calls freely; it still reports with dprintf(2)
 * and leaves with _exit() so no agent buffers are flushed twice.
 *
 * Every fd the agent owns is close-on-exec, so the new program sees only
 * 0, 1, 2. The agent ignores SIGPIPE and catches SIGCHLD; the child puts
 * both back to default, since an ignored disposition survives execve.
 *
 * Environment: the base below, then the EXEC_START env entries, each
 * replacing a base entry of the same name or appended. TERM is
 * xterm-256color on a pty and dumb on pipes.
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "agent.h"

#define EXIT_NOT_FOUND	127
#define EXIT_NOT_EXEC	126

static const char *const base_env[] = {
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root",
	NULL,			/* TERM, filled in by spawn_envp() */
};
#define BASE_ENV_N	(sizeof(base_env) / sizeof(base_env[0]))

/*
 * Where TLS clients look for trust anchors, when trust.c installed the CA:
 * our CA alone. Every TLS server the guest can reach is the host's
 * interception, so no other anchor can ever verify, and a client that
 * parses the system bundle (150 certificates) spends 0.35 s of an
 * emulated CPU on each start. The system bundle with our CA stays in
 * /etc/ssl/certs for tools that read it by path.
 */
static const char *const trust_env[] = {
	"SSL_CERT_FILE=" TRUST_CA,
	"CURL_CA_BUNDLE=" TRUST_CA,
	"REQUESTS_CA_BUNDLE=" TRUST_CA,
	"GIT_SSL_CAINFO=" TRUST_CA,
	"PIP_CERT=" TRUST_CA,
	"NODE_EXTRA_CA_CERTS=" TRUST_CA,
};
#define TRUST_ENV_N	(sizeof(trust_env) / sizeof(trust_env[0]))

extern char **environ;

/**
 * env_name_len() - length of the name part of "NAME=value"
 * @kv: entry (contains '=')
 *
 * Return: bytes before the first '='.
 */
static size_t env_name_len(const char *kv)
{
	return (size_t)(strchr(kv, '=') - kv);
}

/**
 * env_set() - replace the entry with @kv's name, or append @kv
 * @envp: vector with room for one more entry and its NULL
 * @n: entries in @envp (updated)
 * @kv: "NAME=value", heap-owned; ownership moves to @envp
 */
static void env_set(char **envp, size_t *n, char *kv)
{
	size_t len = env_name_len(kv), i;

	for (i = 0; i < *n; i++) {
		if (env_name_len(envp[i]) == len &&
		    memcmp(envp[i], kv, len) == 0) {
			free(envp[i]);
			envp[i] = kv;
			return;
		}
	}
	envp[(*n)++] = kv;
	envp[*n] = NULL;
}

/**
 * spawn_envp() - the base environment with @overrides applied
 * @overrides: "K=V" entries (validated), may be NULL when @n is 0
 * @n: number of overrides
 * @pty: choose TERM for a terminal
 *
 * Return: a heap NULL-terminated vector, or NULL on ENOMEM.
 */
char **spawn_envp(char **overrides, size_t n, bool pty)
{
	size_t ntrust = access(TRUST_CA, F_OK) == 0 ? TRUST_ENV_N : 0;
	size_t total = BASE_ENV_N + ntrust + n, cnt = 0, i;
	char **envp, *kv;

	envp = calloc(total + 1, sizeof(*envp));
	if (!envp)
		return NULL;
	for (i = 0; i < total; i++) {
		if (i < BASE_ENV_N - 1)
			kv = strdup(base_env[i]);
		else if (i == BASE_ENV_N - 1)
			kv = strdup(pty ? "TERM=xterm-256color" : "TERM=dumb");
		else if (i < BASE_ENV_N + ntrust)
			kv = strdup(trust_env[i - BASE_ENV_N]);
		else
			kv = strdup(overrides[i - BASE_ENV_N - ntrust]);
		if (!kv) {
			for (i = 0; i < cnt; i++)
				free(envp[i]);
			free(envp);
			return NULL;
		}
		env_set(envp, &cnt, kv);
	}
	return envp;
}

/**
 * child_stdio() - put the session's fds on 0, 1, 2
 * @fds: child's stdin (-1: /dev/null), stdout, stderr
 *
 * All three are >= 3 (main() keeps 0..2 occupied), so dup2 cannot clobber
 * a source before it is used.
 */
static void child_stdio(const int fds[3])
{
	int i, fd;

	for (i = 0; i < 3; i++) {
		fd = fds[i];
		if (fd < 0)
			fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (fd < 0 || dup2(fd, i) < 0)
			_exit(EXIT_NOT_EXEC);
	}
}

/**
 * child_exec() - in the forked child: become the session leader and exec
 * @req: what to run
 * @fds: stdio for the child (see child_stdio())
 */
static _Noreturn void child_exec(const struct exec_req *req, const int fds[3])
{
	sigset_t none;
	int e;

	signal(SIGPIPE, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setsid();
	if (req->pty)
		ioctl(fds[1], TIOCSCTTY, 0);
	child_stdio(fds);
	if (req->cwd && chdir(req->cwd) < 0) {
		dprintf(2, "gondolin: %s: %s\n", req->cwd, strerror(errno));
		_exit(EXIT_NOT_FOUND);
	}
	environ = req->envp;
	execvp(req->argv[0], req->argv);
	e = errno;
	dprintf(2, "gondolin: %s: %s\n", req->argv[0], strerror(e));
	_exit(e == ENOENT ? EXIT_NOT_FOUND : EXIT_NOT_EXEC);
}

/**
 * spawn_child() - fork the session leader
 * @req: decoded EXEC_START
 * @fds: the child's stdin (-1 for /dev/null), stdout, stderr; with a pty
 *       all three are the slave, which becomes the controlling terminal
 *
 * Return: the child's pid, or -errno when fork failed.
 */
pid_t spawn_child(const struct exec_req *req, const int fds[3])
{
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0)
		child_exec(req, fds);
	return pid;
}
