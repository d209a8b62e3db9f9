/* SPDX-License-Identifier: MIT */
/* exec.c - exec sessions: stdio plumbing, credits, timeouts, signals, exit */

/*
 * Theory of Operation
 *
 * A session lives in one of AGENT_MAX_SESSIONS slots from EXEC_START until
 * EXEC_EXIT is queued; id 0 marks a free slot. Its states:
 *
 *   running  - leader alive. stdout/stderr are polled for POLLIN only while
 *              the stream holds credit and the outbound ring is not
 *              congested; otherwise the fd is left out of the poll set, so
 *              the child's pipe fills and the child blocks in write(2).
 *              Each read takes at most min(FRAME_CHUNK, credit) bytes.
 *   draining - leader reaped (exited). Stdin is closed and its queue
 *              dropped. Each stream is read until EOF, EIO (pty) or
 *              EAGAIN; EAGAIN counts as EOF because only background
 *              processes can still write. Reading still needs credit, so
 *              output is never dropped for want of it.
 *
 * A pty master is never closed while the leader lives: that hangs up the
 * terminal and SIGHUPs the leader, which matters when the leader closed
 * 0..2 just before exiting (GNU cat does) and EIO raced its exit_group.
 *   done     - both streams closed: EXEC_EXIT is queued, fds closed, the
 *              slot freed and the id remembered in a small ring so late
 *              host input for it is dropped quietly.
 *
 * Stdin: the host may send at most in_credit bytes (1 MiB granted at
 * start). Bytes are written to the child at once when it accepts them and
 * queued (in chunks, bounded by the credit) otherwise; credit goes back in
 * EXEC_STDIN_CREDIT once AGENT_CREDIT_BATCH bytes reached the child or the
 * queue drains. If the child closes its stdin, queued and later bytes are
 * discarded but still credited, so a host writer never stalls. EOF closes
 * the pipe, or writes the terminal's VEOF character on a pty.
 *
 * Timeouts are absolute monotonic deadlines; the main loop's poll timeout
 * is the nearest one. Signals and timeouts go to the process group
 * (-pid: the leader called setsid()); before the child has done so the
 * group does not exist yet and the leader alone is signalled.
 */

#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "agent.h"

#define VEOF_DEFAULT	4	/* ^D */

/**
 * close_fd() - close an fd if open and mark it closed
 * @fd: fd slot
 */
static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/**
 * set_nonblock() - make @fd non-blocking
 * @fd: fd
 *
 * Return: 0 or -errno.
 */
static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/**
 * add_credit() - add credit with saturation
 * @c: credit counter
 * @n: bytes granted
 */
static void add_credit(uint64_t *c, uint64_t n)
{
	*c = n > AGENT_CREDIT_MAX - *c ? AGENT_CREDIT_MAX : *c + n;
}

/**
 * send_signal() - signal a session's process group (or its leader)
 * @s: session whose leader has not been reaped
 * @sig: signal number
 */
static void send_signal(struct session *s, int sig)
{
	if (kill(-s->pid, sig) < 0 && errno == ESRCH)
		kill(s->pid, sig);
}

/**
 * drop_stdin() - discard queued stdin, counting it as consumed
 * @s: session
 */
static void drop_stdin(struct session *s)
{
	struct stdin_chunk *c;

	while ((c = s->inq)) {
		s->inq = c->next;
		s->in_freed += c->len - c->off;
		free(c);
	}
	s->inq_tail = NULL;
}

/**
 * close_stdin() - stop writing to the child
 * @s: session
 *
 * On a pty the master is shared with stdout and stays open.
 */
static void close_stdin(struct session *s)
{
	drop_stdin(s);
	s->eof_pending = false;
	if (s->pty)
		s->in_fd = -1;
	else
		close_fd(&s->in_fd);
}

/**
 * return_credit() - send stdin credit back when worth a frame
 * @a: agent
 * @s: session
 */
static void return_credit(struct agent *a, struct session *s)
{
	if (s->exited || s->in_freed == 0 ||
	    (s->in_freed < AGENT_CREDIT_BATCH && s->inq))
		return;
	add_credit(&s->in_credit, s->in_freed);
	msg_send_stdin_credit(a, s, s->in_freed);
	s->in_freed = 0;
}

/**
 * write_eof() - act on a pending EXEC_STDIN_EOF once the queue is empty
 * @s: session
 */
static void write_eof(struct session *s)
{
	struct termios t;
	uint8_t c = VEOF_DEFAULT;

	if (!s->pty) {
		close_stdin(s);
		return;
	}
	if (tcgetattr(s->in_fd, &t) == 0 && t.c_cc[VEOF] != _POSIX_VDISABLE)
		c = t.c_cc[VEOF];
	if (write(s->in_fd, &c, 1) == 1)
		s->eof_pending = false;
	else if (errno != EAGAIN && errno != EINTR)
		close_stdin(s);
}

/**
 * write_stdin() - move queued stdin into the child as far as it accepts
 * @a: agent
 * @s: session
 */
static void write_stdin(struct agent *a, struct session *s)
{
	struct stdin_chunk *c;
	ssize_t n;

	while (s->in_fd >= 0 && (c = s->inq)) {
		n = write(s->in_fd, c->data + c->off, c->len - c->off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (errno != EAGAIN)
				close_stdin(s);	/* EPIPE: child closed stdin */
			break;
		}
		c->off += (size_t)n;
		s->in_freed += (uint64_t)n;
		if (c->off == c->len) {
			s->inq = c->next;
			if (!s->inq)
				s->inq_tail = NULL;
			free(c);
		}
	}
	if (s->in_fd >= 0 && !s->inq && s->eof_pending)
		write_eof(s);
	return_credit(a, s);
}

/**
 * queue_stdin() - append bytes to a session's stdin queue
 * @s: session
 * @p: bytes
 * @n: count (within the session's credit)
 *
 * Return: 0 or -ENOMEM.
 */
static int queue_stdin(struct session *s, const uint8_t *p, size_t n)
{
	struct stdin_chunk *c = malloc(sizeof(*c) + n);

	if (!c)
		return -ENOMEM;
	c->next = NULL;
	c->len = n;
	c->off = 0;
	memcpy(c->data, p, n);
	if (s->inq_tail)
		s->inq_tail->next = c;
	else
		s->inq = c;
	s->inq_tail = c;
	return 0;
}

/**
 * exec_find() - the live session with @id
 * @a: agent
 * @id: session id (non-zero)
 *
 * Return: the session or NULL.
 */
struct session *exec_find(struct agent *a, uint32_t id)
{
	unsigned int i;

	for (i = 0; i < AGENT_MAX_SESSIONS && id; i++)
		if (a->sess[i].id == id)
			return &a->sess[i];
	return NULL;
}

/**
 * exec_recent() - whether @id belongs to a recently finished session
 * @a: agent
 * @id: session id (non-zero)
 *
 * Return: true when it does.
 */
bool exec_recent(const struct agent *a, uint32_t id)
{
	unsigned int i;

	for (i = 0; i < AGENT_RECENT_IDS; i++)
		if (a->recent[i] == id)
			return true;
	return false;
}

/**
 * forget_recent() - drop @id from the recent ring (the host reuses it)
 * @a: agent
 * @id: session id
 */
static void forget_recent(struct agent *a, uint32_t id)
{
	unsigned int i;

	for (i = 0; i < AGENT_RECENT_IDS; i++)
		if (a->recent[i] == id)
			a->recent[i] = 0;
}

/**
 * open_pty() - create the pty of a new session
 * @s: session (out.fd and in_fd become the master)
 * @req: request (window size)
 * @child: set to the slave, three times
 *
 * Return: 0 or -errno.
 */
static int open_pty(struct session *s, const struct exec_req *req,
		    int child[3])
{
	struct winsize ws = { .ws_row = req->rows, .ws_col = req->cols };
	int m, sl;

	if (openpty(&m, &sl, NULL, NULL, &ws) < 0)
		return -errno;
	if (fcntl(m, F_SETFD, FD_CLOEXEC) < 0 ||
	    fcntl(sl, F_SETFD, FD_CLOEXEC) < 0 || set_nonblock(m) < 0) {
		close(m);
		close(sl);
		return -EIO;
	}
	s->out.fd = s->in_fd = m;
	child[0] = child[1] = child[2] = sl;
	return 0;
}

/**
 * open_pipes() - create the stdio pipes of a new session
 * @s: session (out.fd, err.fd, in_fd become the agent's ends)
 * @req: request (whether stdin is wanted)
 * @child: set to the child's ends: stdin (-1: /dev/null), stdout, stderr
 *
 * Return: 0 or -errno (nothing left open).
 */
static int open_pipes(struct session *s, const struct exec_req *req,
		      int child[3])
{
	int p[3][2] = { { -1, -1 }, { -1, -1 }, { -1, -1 } };
	int i, rc = 0;

	for (i = req->want_stdin ? 0 : 1; i < 3 && !rc; i++) {
		if (pipe2(p[i], O_CLOEXEC) < 0)
			rc = -errno;
		else
			rc = set_nonblock(i == 0 ? p[i][1] : p[i][0]);
	}
	if (rc) {
		for (i = 0; i < 3; i++)
			close_fd(&p[i][0]), close_fd(&p[i][1]);
		return rc;
	}
	s->in_fd = p[0][1];
	s->out.fd = p[1][0];
	s->err.fd = p[2][0];
	child[0] = p[0][0], child[1] = p[1][1], child[2] = p[2][1];
	return 0;
}

/**
 * close_child_ends() - close the parent's copies of the child's stdio
 * @child: as filled by open_stdio()
 */
static void close_child_ends(int child[3])
{
	int i, j;

	for (i = 0; i < 3; i++) {
		for (j = 0; j < i; j++)
			if (child[j] == child[i])
				child[i] = -1;	/* pty: one slave fd */
	}
	for (i = 0; i < 3; i++)
		close_fd(&child[i]);
}

/**
 * release() - close a session's fds, free its queue, free the slot
 * @a: agent
 * @s: session
 */
static void release(struct agent *a, struct session *s)
{
	drop_stdin(s);
	if (!s->pty)
		close_fd(&s->in_fd);
	close_fd(&s->out.fd);
	close_fd(&s->err.fd);
	a->recent[a->recent_pos] = s->id;
	a->recent_pos = (a->recent_pos + 1) % AGENT_RECENT_IDS;
	memset(s, 0, sizeof(*s));
	s->in_fd = s->out.fd = s->err.fd = -1;
	a->nsess--;
}

/**
 * exec_start() - start a session for a decoded EXEC_START
 * @a: agent
 * @id: new session id (not live, non-zero; the caller checked)
 * @req: request; still owned by the caller
 *
 * Answers EXEC_STARTED, or ERROR exec_failed when no process could be made.
 */
void exec_start(struct agent *a, uint32_t id, struct exec_req *req)
{
	int child[3] = { -1, -1, -1 }, rc;
	struct session *s = NULL;
	unsigned int i;
	pid_t pid;

	for (i = 0; i < AGENT_MAX_SESSIONS && !s; i++)
		if (a->sess[i].id == 0)
			s = &a->sess[i];
	if (!s) {
		msg_send_error(a, id, "too_many_sessions", "no free slot");
		return;
	}
	s->in_fd = s->out.fd = s->err.fd = -1;
	rc = req->pty ? open_pty(s, req, child) : open_pipes(s, req, child);
	pid = rc < 0 ? rc : spawn_child(req, child);
	close_child_ends(child);
	if (pid < 0) {
		if (!req->pty)
			close_fd(&s->in_fd);
		close_fd(&s->out.fd);
		close_fd(&s->err.fd);
		s->in_fd = -1;
		msg_send_error(a, id, "exec_failed", strerror((int)-pid));
		return;
	}
	forget_recent(a, id);
	s->id = id;
	s->pid = pid;
	s->pty = req->pty;
	s->out.credit = s->err.credit = req->window;
	s->out.type = FRAME_EXEC_STDOUT;
	s->err.type = FRAME_EXEC_STDERR;
	s->in_credit = req->want_stdin ? AGENT_STDIN_CREDIT : 0;
	s->deadline = req->timeout_ms ? agent_now_ms() + req->timeout_ms : 0;
	a->nsess++;
	msg_send_started(a, s);
}

/**
 * exec_stdin() - EXEC_STDIN: take stdin bytes within the granted credit
 * @a: agent
 * @s: session
 * @p: bytes (valid only during the call)
 * @n: count, > 0
 */
void exec_stdin(struct agent *a, struct session *s, const uint8_t *p, size_t n)
{
	ssize_t w = 0;

	if (n > s->in_credit) {
		msg_send_error(a, s->id, "stdin_overflow",
			       "stdin beyond the granted credit");
		return;
	}
	s->in_credit -= n;
	if (s->in_fd >= 0 && !(s->eof_pending && !s->pty) && !s->inq) {
		do {
			w = write(s->in_fd, p, n);
		} while (w < 0 && errno == EINTR);
		if (w < 0 && errno != EAGAIN)
			close_stdin(s);		/* EPIPE: child closed stdin */
		w = w < 0 ? 0 : w;
		s->in_freed += (uint64_t)w;
	}
	if ((size_t)w < n && (s->in_fd < 0 || (s->eof_pending && !s->pty) ||
			      queue_stdin(s, p + w, n - (size_t)w) < 0))
		s->in_freed += n - (size_t)w;	/* nobody reads it: credit back */
	return_credit(a, s);
}

/**
 * exec_stdin_eof() - EXEC_STDIN_EOF: end of input once the queue drains
 * @a: agent
 * @s: session
 */
void exec_stdin_eof(struct agent *a, struct session *s)
{
	if (s->in_fd < 0)
		return;
	s->eof_pending = true;
	write_stdin(a, s);
}

/**
 * exec_credit() - EXEC_CREDIT: more output credit
 * @s: session
 * @out: stdout bytes
 * @err: stderr bytes
 */
void exec_credit(struct session *s, uint64_t out, uint64_t err)
{
	add_credit(&s->out.credit, out);
	add_credit(&s->err.credit, err);
}

/**
 * exec_resize() - EXEC_RESIZE: set the pty window size (SIGWINCH follows)
 * @s: session (ignored without a pty)
 * @rows: rows
 * @cols: columns
 */
void exec_resize(struct session *s, uint16_t rows, uint16_t cols)
{
	struct winsize ws = { .ws_row = rows, .ws_col = cols };

	if (s->pty && s->out.fd >= 0)
		ioctl(s->out.fd, TIOCSWINSZ, &ws);
}

/**
 * exec_signal() - EXEC_SIGNAL: signal the session's process group
 * @s: session
 * @sig: 1..64
 */
void exec_signal(struct session *s, int sig)
{
	if (!s->exited)
		send_signal(s, sig);
}

/**
 * exec_reap() - collect every exited child; leaders start draining
 * @a: agent
 *
 * Unknown pids (orphans re-parented to PID 1, background children) are
 * just reaped.
 */
void exec_reap(struct agent *a)
{
	unsigned int i;
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (i = 0; i < AGENT_MAX_SESSIONS; i++) {
			struct session *s = &a->sess[i];

			if (s->id && !s->exited && s->pid == pid) {
				s->exited = true;
				s->status = st;
				s->deadline = 0;
				close_stdin(s);
				break;
			}
		}
	}
}

/**
 * read_stream() - read one credited chunk of a stream and queue it
 * @a: agent
 * @s: session
 * @st: stream with fd >= 0 and credit > 0
 *
 * Return: bytes sent (> 0), 0 when the stream ended (now closed),
 * -EAGAIN when nothing is there.
 */
static int read_stream(struct agent *a, struct session *s, struct stream *st)
{
	size_t want = st->credit < FRAME_CHUNK ? (size_t)st->credit : FRAME_CHUNK;
	ssize_t n;

	do {
		n = read(st->fd, a->scratch, want);
	} while (n < 0 && errno == EINTR);
	if (n > 0) {
		st->credit -= (uint64_t)n;
		port_send(&a->port, st->type, s->id, a->scratch, (size_t)n);
		return (int)n;
	}
	if (n < 0 && errno == EAGAIN)
		return -EAGAIN;
	if (s->pty)		/* EIO: every slave fd is closed */
		close_stdin(s);
	if (s->pty && !s->exited)
		st->eof = true;	/* closed once the leader is reaped */
	else
		close_fd(&st->fd);
	return 0;
}

/**
 * readable() - whether a stream may be read now
 * @a: agent
 * @st: stream
 *
 * Return: true when open, not at EOF, credited and the port is not
 * congested.
 */
static bool readable(const struct agent *a, const struct stream *st)
{
	return st->fd >= 0 && !st->eof && st->credit > 0 &&
	       !port_congested(&a->port);
}

/**
 * drain() - after the leader exited: read streams until EAGAIN (= EOF)
 * @a: agent
 * @s: session in the draining state
 */
static void drain(struct agent *a, struct session *s)
{
	struct stream *streams[2] = { &s->out, &s->err };
	int i, rc;

	for (i = 0; i < 2; i++) {
		if (streams[i]->eof)
			close_fd(&streams[i]->fd);
		while (readable(a, streams[i])) {
			rc = read_stream(a, s, streams[i]);
			if (rc == -EAGAIN)
				close_fd(&streams[i]->fd);
			if (rc <= 0)
				break;
		}
	}
}

/**
 * exec_poll_timeout() - poll timeout until the nearest session deadline
 * @a: agent
 * @now: monotonic ms
 *
 * An exited session that could drain now (its pipes are not polled) makes
 * the timeout 0: the ring may have drained since exec_finish() stopped.
 *
 * Return: milliseconds, or -1 when no session has a deadline.
 */
int exec_poll_timeout(struct agent *a, uint64_t now)
{
	uint64_t best = UINT64_MAX;
	unsigned int i;

	for (i = 0; i < AGENT_MAX_SESSIONS; i++) {
		struct session *s = &a->sess[i];

		if (s->id && s->exited &&
		    (readable(a, &s->out) || readable(a, &s->err)))
			return 0;
		if (s->id && s->deadline && s->deadline < best)
			best = s->deadline;
	}
	if (best == UINT64_MAX)
		return -1;
	if (best <= now)
		return 0;
	return best - now > INT32_MAX ? INT32_MAX : (int)(best - now);
}

/**
 * exec_poll_fill() - set the three poll slots of every session
 * @a: agent
 *
 * A slot the agent is not interested in gets fd -1, so POLLHUP on an
 * uncredited stream cannot spin the loop.
 */
void exec_poll_fill(struct agent *a)
{
	struct pollfd *p = a->pfd + AGENT_POLL_FIXED;
	unsigned int i;

	for (i = 0; i < AGENT_MAX_SESSIONS; i++, p += 3) {
		struct session *s = &a->sess[i];
		bool run = s->id && !s->exited;

		p[0].fd = run && readable(a, &s->out) ? s->out.fd : -1;
		p[0].events = POLLIN;
		p[1].fd = run && readable(a, &s->err) ? s->err.fd : -1;
		p[1].events = POLLIN;
		p[2].fd = run && (s->inq || s->eof_pending) ? s->in_fd : -1;
		p[2].events = POLLOUT;
		p[0].revents = p[1].revents = p[2].revents = 0;
	}
}

/**
 * exec_poll_handle() - act on the poll results of every session
 * @a: agent
 *
 * Runs before any inbound frame is dispatched, so the slots still belong
 * to the sessions exec_poll_fill() saw.
 */
void exec_poll_handle(struct agent *a)
{
	struct pollfd *p = a->pfd + AGENT_POLL_FIXED;
	unsigned int i;

	for (i = 0; i < AGENT_MAX_SESSIONS; i++, p += 3) {
		struct session *s = &a->sess[i];

		if (!s->id)
			continue;
		if (p[0].revents && readable(a, &s->out))
			read_stream(a, s, &s->out);
		if (p[1].revents && readable(a, &s->err))
			read_stream(a, s, &s->err);
		if (p[2].revents && s->in_fd >= 0)
			write_stdin(a, s);
	}
}

/**
 * exec_finish() - fire timeouts, drain exited sessions, send EXEC_EXIT
 * @a: agent
 * @now: monotonic ms
 */
void exec_finish(struct agent *a, uint64_t now)
{
	unsigned int i;

	for (i = 0; i < AGENT_MAX_SESSIONS; i++) {
		struct session *s = &a->sess[i];

		if (!s->id)
			continue;
		if (!s->exited && s->deadline && now >= s->deadline) {
			send_signal(s, SIGKILL);
			s->timed_out = true;
			s->deadline = 0;
		}
		if (!s->exited)
			continue;
		drain(a, s);
		if (s->out.fd < 0 && s->err.fd < 0) {
			msg_send_exit(a, s);
			release(a, s);
		}
	}
}

/**
 * exec_kill_all() - SIGKILL every running session (the host went away)
 * @a: agent
 */
void exec_kill_all(struct agent *a)
{
	unsigned int i;

	for (i = 0; i < AGENT_MAX_SESSIONS; i++)
		if (a->sess[i].id && !a->sess[i].exited)
			send_signal(&a->sess[i], SIGKILL);
}
