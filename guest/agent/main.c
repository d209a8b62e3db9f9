/* SPDX-License-Identifier: MIT */
/* main.c - gondolin-agent startup, control port discovery and the poll loop */

/*
 * Theory of Operation
 *
 * The agent is one thread around one poll(2) loop. Each turn:
 *
 *   0. take frames parked in the reader while the ring was congested (the
 *      ring may have drained without a POLLOUT wake-up);
 *   1. poll the SIGCHLD self-pipe, the control port (POLLIN only while
 *      the outbound ring is below its high-water mark, POLLOUT while it
 *      holds data) and up to three fds per session; the timeout is the
 *      nearest session deadline or the port's retry time;
 *   2. reap children (SIGCHLD wrote a byte to the self-pipe);
 *   3. move session I/O (child output -> frames, queued stdin -> child);
 *   4. flush the ring, read the port, dispatch complete frames until the
 *      ring is congested (frames left in the reader wait for a later turn);
 *   5. fire timeouts, drain exited sessions, send EXEC_EXIT; flush again.
 *
 * Session slots are only freed in step 5 and only created in step 4, after
 * step 3 has consumed the poll results, so a slot's results always belong
 * to the session they were polled for.
 *
 * Modes: as PID 1 (it is /init) the agent first sets the system up
 * (sysinit.c), then finds the virtio-serial port named
 * gondolin.control, never exits, and treats EOF from the host as a pause
 * (poll again after AGENT_RETRY_MS). With --fd N it uses an inherited fd
 * (a socketpair in host-side tests), becomes a child subreaper so orphans
 * are still reaped, and exits 0 when the host hangs up.
 *
 * FUSE mounts (fuse.c): as PID 1 the command line's gondolin.mounts= lists
 * them and the port gondolin.fs serves them; in --fd mode, --mount PATH
 * (repeatable) and --fs-fd M. The FS client's fds get their own poll slots
 * after the sessions'. HELLO is held back, and the control port not read,
 * until every mount exists (or failed, which HELLO's error then says), so
 * no exec session starts before its files are there.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "proto/fs.h"

#define PORT_CLASS_DIR		"/sys/class/virtio-ports"
#define PORT_WAIT_STEP_MS	5
#define PORT_WAIT_TRIES		2000	/* ~10 s, then PID 1 keeps trying slowly */
#define PORT_WAIT_SLOW_MS	1000

static int sig_wr = -1;		/* self-pipe write end, for the handler */

/**
 * struct args - the command line
 * @fd:		--fd: the control port, -1 to find it
 * @fs_fd:	--fs-fd: the FS port, -1 to find it
 * @name:	--port: the control port's name
 * @mounts:	--mount: FUSE mount points
 * @nmounts:	entries in @mounts
 */
struct args {
	int fd, fs_fd;
	const char *name;
	char *mounts[AGENT_MOUNTS_MAX];
	unsigned int nmounts;
};

/**
 * agent_now_ms() - monotonic clock in milliseconds
 *
 * Return: milliseconds since an arbitrary point.
 */
uint64_t agent_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/**
 * agent_log() - one line to stderr (the console when running as PID 1)
 * @fmt: printf format
 */
void agent_log(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	dprintf(2, "gondolin-agent: %s\n", line);
}

/**
 * sleep_ms() - sleep, ignoring interruptions
 * @ms: milliseconds
 */
static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/**
 * on_sigchld() - SIGCHLD handler: wake the poll loop
 * @sig: signal number (unused)
 */
static void on_sigchld(int sig)
{
	int e = errno;
	char c = 0;
	ssize_t r;

	(void)sig;
	r = write(sig_wr, &c, 1);	/* pipe full: a wake-up is pending anyway */
	(void)r;
	errno = e;
}

/**
 * setup_signals() - ignore SIGPIPE, route SIGCHLD to a self-pipe
 * @a: agent (sig_rd set)
 *
 * Return: 0 or -errno.
 */
static int setup_signals(struct agent *a)
{
	struct sigaction sa;
	int p[2];

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	a->sig_rd = p[0];
	sig_wr = p[1];
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_sigchld;
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGCHLD, &sa, NULL) < 0)
		return -errno;
	return 0;
}

/**
 * keep_stdio_open() - make sure fds 0..2 exist so new fds are >= 3
 */
static void keep_stdio_open(void)
{
	int fd;

	for (fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) < 0 &&
		    open("/dev/null", O_RDWR) < 0)
			return;
	}
}

/**
 * port_name_matches() - whether /sys/class/virtio-ports/@dev/name is @name
 * @dev: port device name (vportNpM)
 * @name: wanted port name
 *
 * Return: true on a match.
 */
static bool port_name_matches(const char *dev, const char *name)
{
	char path[PATH_MAX], buf[128];
	ssize_t n;
	int fd;

	n = snprintf(path, sizeof(path), PORT_CLASS_DIR "/%s/name", dev);
	if (n < 0 || (size_t)n >= sizeof(path))
		return false;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return strcmp(buf, name) == 0;
}

/**
 * find_port() - open the virtio-serial port called @name
 * @name: port name
 *
 * Return: an open fd, or -1 when it is not (yet) there.
 */
static int find_port(const char *name)
{
	char path[PATH_MAX];
	struct dirent *e;
	int fd = -1;
	DIR *d;

	d = opendir(PORT_CLASS_DIR);
	if (!d)
		return -1;
	while (fd < 0 && (e = readdir(d))) {
		if (e->d_name[0] == '.' || !port_name_matches(e->d_name, name))
			continue;
		snprintf(path, sizeof(path), "/dev/%s", e->d_name);
		fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			agent_log("%s: %s", path, strerror(errno));
	}
	closedir(d);
	return fd;
}

/**
 * wait_port() - find the control port, retrying while devices appear
 * @name: port name
 * @pid1: never give up
 *
 * Return: an open fd, or -1 after ~10 s when not PID 1.
 */
static int wait_port(const char *name, bool pid1)
{
	unsigned int tries;
	int fd;

	for (tries = 0;; tries++) {
		fd = find_port(name);
		if (fd >= 0)
			return fd;
		if (tries == PORT_WAIT_TRIES) {
			agent_log("no virtio port named %s", name);
			if (!pid1)
				return -1;
		}
		sleep_ms(tries < PORT_WAIT_TRIES ? PORT_WAIT_STEP_MS
						  : PORT_WAIT_SLOW_MS);
	}
}

/**
 * port_gone() - the host hung up or the port failed
 * @a: agent
 *
 * In --fd mode the loop then ends; as PID 1 the port is polled again
 * after a pause (exiting would panic the kernel).
 */
static void port_gone(struct agent *a)
{
	if (!a->pid1) {
		a->port.eof = true;
		return;
	}
	if (!a->port.retry_at)
		agent_log("control port closed by the host; waiting");
	a->port.retry_at = agent_now_ms() + AGENT_RETRY_MS;
}

/**
 * dispatch_frames() - take buffered frames while output may be produced
 * @a: agent
 */
static void dispatch_frames(struct agent *a)
{
	struct frame f;
	int rc;

	while (!port_congested(&a->port)) {
		rc = frame_reader_next(&a->port.rd, &f);
		if (rc == 0)
			return;
		if (rc < 0)
			msg_send_error(a, 0, "oversized", "frame above 256 KiB dropped");
		else
			msg_dispatch(a, &f);
	}
}

/**
 * port_io() - flush the ring, read and dispatch the port's frames
 * @a: agent
 * @revents: poll result for the port
 */
static void port_io(struct agent *a, short revents)
{
	int rc;

	if ((revents & POLLOUT) && port_flush(&a->port) < 0)
		port_gone(a);
	dispatch_frames(a);
	if (!(revents & (POLLIN | POLLHUP | POLLERR)) || port_congested(&a->port))
		return;
	rc = port_read(&a->port);
	if (rc > 0) {
		a->port.retry_at = 0;
		dispatch_frames(a);
	} else if (rc != -EAGAIN) {
		port_gone(a);
	}
}

/**
 * fill_fixed() - poll slots of the self-pipe and the port
 * @a: agent
 * @now: monotonic ms
 * @timeout: poll timeout, lowered to the port's retry time
 */
static void fill_fixed(struct agent *a, uint64_t now, int *timeout)
{
	struct pollfd *p = &a->pfd[1];
	int wait;

	a->pfd[0] = (struct pollfd){ .fd = a->sig_rd, .events = POLLIN };
	*p = (struct pollfd){ .fd = a->port.fd };
	if (a->port.retry_at > now) {
		wait = (int)(a->port.retry_at - now);
		if (*timeout < 0 || wait < *timeout)
			*timeout = wait;
		p->fd = -1;
		return;
	}
	if (!port_congested(&a->port) && a->hello_sent)
		p->events |= POLLIN;
	if (a->port.q.len)
		p->events |= POLLOUT;
	if (!p->events)
		p->fd = -1;	/* a bare POLLHUP would spin */
}

/**
 * drain_sigpipe() - empty the self-pipe after SIGCHLD
 * @a: agent
 */
static void drain_sigpipe(struct agent *a)
{
	char buf[64];

	while (read(a->sig_rd, buf, sizeof(buf)) > 0)
		;
}

/**
 * run() - the poll loop
 * @a: agent with an open port
 *
 * Return: only in --fd mode, when the host hung up: 0.
 */
static int run(struct agent *a)
{
	int timeout;

	while (!a->port.eof) {
		if (!a->hello_sent && !fs_mounting(a)) {
			msg_send_hello(a);
			a->hello_sent = true;
		}
		dispatch_frames(a);	/* frames parked while congested */
		timeout = exec_poll_timeout(a, agent_now_ms());
		timeout = fs_poll_timeout(a, agent_now_ms(), timeout);
		fill_fixed(a, agent_now_ms(), &timeout);
		exec_poll_fill(a);
		fs_poll_fill(a);
		if (poll(a->pfd, AGENT_POLL_MAX, timeout) < 0 && errno != EINTR)
			agent_log("poll: %s", strerror(errno));
		if (a->pfd[0].revents) {
			drain_sigpipe(a);
			exec_reap(a);
		}
		exec_poll_handle(a);
		fs_poll_handle(a);
		port_io(a, a->pfd[1].fd >= 0 ? a->pfd[1].revents : 0);
		exec_finish(a, agent_now_ms());
		if (a->port.q.len && !a->port.retry_at && port_flush(&a->port) < 0)
			port_gone(a);
	}
	exec_kill_all(a);
	fs_stop(a);
	return 0;
}

/**
 * parse_fd() - a non-negative fd number
 * @s:		argument
 * @fd:		set
 *
 * Return: 0 or -1.
 */
static int parse_fd(const char *s, int *fd)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*end || end == s || v < 0 || v > INT_MAX)
		return -1;
	*fd = (int)v;
	return 0;
}

/**
 * parse_args() - --fd N, --port NAME, --fs-fd M, --mount PATH...
 * @argc: argument count
 * @argv: arguments
 * @o: filled in
 *
 * Unknown arguments are an error except as PID 1, where the kernel passes
 * leftover command-line words.
 *
 * Return: 0 or -1.
 */
static int parse_args(int argc, char **argv, struct args *o)
{
	int i;

	for (i = 1; i < argc; i++) {
		bool more = i + 1 < argc;

		if (strcmp(argv[i], "--fd") == 0 && more) {
			if (parse_fd(argv[++i], &o->fd) < 0)
				return -1;
		} else if (strcmp(argv[i], "--fs-fd") == 0 && more) {
			if (parse_fd(argv[++i], &o->fs_fd) < 0)
				return -1;
		} else if (strcmp(argv[i], "--port") == 0 && more) {
			o->name = argv[++i];
		} else if (strcmp(argv[i], "--mount") == 0 && more) {
			i++;
			if (o->nmounts == AGENT_MOUNTS_MAX || strcmp(argv[i], "/") == 0 ||
			    !fs_path_ok(argv[i], strlen(argv[i])))
				return -1;
			o->mounts[o->nmounts++] = argv[i];
		} else if (getpid() != 1) {
			return -1;
		}
	}
	return 0;
}

/**
 * setup_mounts() - start the FUSE mounts asked for, if any
 * @a: agent (boot_error set when they cannot be made)
 * @o: arguments (--mount / --fs-fd in --fd mode)
 *
 * As PID 1 the list comes from the command line and the port is found by
 * name; without a list nothing happens and the port may be absent.
 */
static void setup_mounts(struct agent *a, struct args *o)
{
	char err[sizeof(a->boot_error)] = "";
	int n = (int)o->nmounts, fd = o->fs_fd;

	if (a->pid1)
		n = fs_cmdline_mounts(err, sizeof(err), o->mounts);
	if (n > 0 && fd < 0)
		fd = wait_port(AGENT_FS_PORT_NAME, false);
	if (n > 0 && fd < 0)
		snprintf(err, sizeof(err), "mounts: no virtio port named "
			 AGENT_FS_PORT_NAME);
	if (n > 0 && fd >= 0 && fs_start(a, fd, o->mounts, (unsigned int)n) < 0)
		agent_log("%s", a->boot_error);
	if (err[0]) {
		agent_log("%s", err);
		if (!a->boot_error[0])
			memcpy(a->boot_error, err, sizeof(err));
	}
}

/**
 * main() - start the agent
 * @argc: argument count
 * @argv: arguments
 *
 * Return: exit status (never returns as PID 1).
 */
int main(int argc, char **argv)
{
	static struct agent agent;
	struct args o = { .fd = -1, .fs_fd = -1, .name = AGENT_PORT_NAME };
	struct agent *a = &agent;
	int rc;

	if (parse_args(argc, argv, &o) < 0) {
		dprintf(2, "usage: gondolin-agent [--fd N] [--port NAME] "
			"[--fs-fd M] [--mount PATH]...\n");
		return 2;
	}
	a->pid1 = getpid() == 1;
	if (a->pid1)
		agent_sysinit(a);
	keep_stdio_open();
	if (!a->pid1)
		prctl(PR_SET_CHILD_SUBREAPER, 1);
	if (setup_signals(a) < 0)
		return 1;
	if (o.fd < 0)
		o.fd = wait_port(o.name, a->pid1);
	if (o.fd < 0)
		return 1;
	rc = port_open(&a->port, o.fd);
	if (rc < 0) {
		agent_log("port: %s", strerror(-rc));
		return 1;
	}
	for (rc = 0; rc < AGENT_MAX_SESSIONS; rc++)
		a->sess[rc].in_fd = a->sess[rc].out.fd = a->sess[rc].err.fd = -1;
	setup_mounts(a, &o);
	return run(a);
}
