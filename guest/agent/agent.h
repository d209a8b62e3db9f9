/* SPDX-License-Identifier: MIT */
/* agent.h - shared state and limits of the gondolin guest agent */
#ifndef GONDOLIN_AGENT_H
#define GONDOLIN_AGENT_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/frame.h"

#define AGENT_NAME		"gondolin-agent 0.1"
#define AGENT_PORT_NAME		"gondolin.control"

#define AGENT_MAX_SESSIONS	256
#define AGENT_RECENT_IDS	256		/* exited ids whose late input is dropped */
#define AGENT_OUTQ_HIGH		(1024 * 1024)	/* stop producing output above this */
#define AGENT_OUTQ_CAP		(AGENT_OUTQ_HIGH + 2 * (FRAME_HDR_LEN + FRAME_MAX_PAYLOAD))
#define AGENT_STDIN_CREDIT	(1024 * 1024)	/* stdin bytes queued per session */
#define AGENT_CREDIT_BATCH	(64 * 1024)	/* coalesce stdin credit returns */
#define AGENT_WINDOW_DEFAULT	(256 * 1024)
#define AGENT_WINDOW_MIN	(4 * 1024)
#define AGENT_WINDOW_MAX	(16 * 1024 * 1024)
#define AGENT_CREDIT_MAX	((uint64_t)1 << 40)	/* saturation point */
#define AGENT_MAX_ARGS		4096		/* argv and env entries each */
#define AGENT_MAX_STR		(64 * 1024)
#define AGENT_PING_MAX		FRAME_CHUNK
#define AGENT_MSG_MAX		512		/* encoded control replies */
#define AGENT_RETRY_MS		100		/* PID 1: back-off after port EOF */

#define AGENT_FS_PORT_NAME	"gondolin.fs"
#define AGENT_MOUNTS_MAX	16		/* FUSE mounts */

#define AGENT_POLL_FIXED	2		/* signal pipe, port */
#define AGENT_POLL_FS		(AGENT_POLL_FIXED + 3 * AGENT_MAX_SESSIONS)
#define AGENT_POLL_FS_SLOTS	(2 + AGENT_MOUNTS_MAX)	/* fs port, helper, mounts */
#define AGENT_POLL_MAX		(AGENT_POLL_FS + AGENT_POLL_FS_SLOTS)

/**
 * struct outq - ring buffer of encoded frames waiting for the port
 * @buf:	AGENT_OUTQ_CAP bytes
 * @head:	offset of the first queued byte
 * @len:	queued bytes
 */
struct outq {
	uint8_t *buf;
	size_t head, len;
};

/**
 * struct port - the control port: inbound frames and the outbound queue
 * @fd:		the port (virtio-serial device or an inherited socket)
 * @rd:		frame reassembly
 * @q:		frames not yet written
 * @retry_at:	monotonic ms before which the port is not polled (PID 1
 *		back-off after EOF); 0 when active
 * @eof:	the host hung up (in --fd mode: time to exit)
 */
struct port {
	int fd;
	struct frame_reader rd;
	struct outq q;
	uint64_t retry_at;
	bool eof;
};

/**
 * struct stdin_chunk - one queued piece of stdin
 * @next:	next chunk
 * @len:	bytes in @data
 * @off:	bytes of @data already written to the child
 * @data:	the bytes
 */
struct stdin_chunk {
	struct stdin_chunk *next;
	size_t len, off;
	uint8_t data[];
};

/**
 * struct stream - one output stream of a session (stdout or stderr)
 * @fd:		read end (pipe or pty master), -1 once at EOF
 * @credit:	bytes the agent may still send
 * @type:	FRAME_EXEC_STDOUT or FRAME_EXEC_STDERR
 * @eof:	a pty master read EIO before the leader was reaped: the fd
 *		stays open (closing the master would hang up the terminal
 *		and SIGHUP a leader that is just exiting) but is not read
 */
struct stream {
	int fd;
	uint64_t credit;
	uint8_t type;
	bool eof;
};

/**
 * struct session - one exec session, from EXEC_START to EXEC_EXIT
 * @id:		host-chosen id, 0 when the slot is free
 * @pid:	leader pid (= its process group and session id)
 * @status:	wait status, valid once @exited
 * @exited:	the leader has been reaped
 * @timed_out:	killed because timeout_ms expired
 * @pty:	the leader runs on a pty; @out.fd is the master
 * @eof_pending: the host sent EXEC_STDIN_EOF; act once the queue drains
 * @in_fd:	where stdin goes (pipe write end or pty master), -1 when off
 * @out:	stdout (pty output)
 * @err:	stderr (unused with a pty)
 * @inq:	queued stdin, oldest first
 * @inq_tail:	last chunk of @inq
 * @in_credit:	stdin bytes the host may still send
 * @in_freed:	stdin bytes written to the child but not yet credited back
 * @deadline:	monotonic ms of the timeout, 0 for none
 */
struct session {
	uint32_t id;
	pid_t pid;
	int status;
	bool exited, timed_out, pty, eof_pending;
	int in_fd;
	struct stream out, err;
	struct stdin_chunk *inq, *inq_tail;
	uint64_t in_credit, in_freed;
	uint64_t deadline;
};

/**
 * struct exec_req - a decoded EXEC_START; strings are owned (malloc'd)
 * @argv:	NULL-terminated, at least one entry
 * @envp:	complete environment, NULL-terminated
 * @cwd:	directory to chdir to, or NULL
 * @pty:	run on a pseudo-terminal
 * @want_stdin: the host will send stdin (always true with @pty)
 * @rows:	pty rows
 * @cols:	pty columns
 * @timeout_ms:	0 for none
 * @window:	initial credit per output stream
 */
struct exec_req {
	char **argv, **envp;
	char *cwd;
	bool pty, want_stdin;
	uint16_t rows, cols;
	uint64_t timeout_ms, window;
};

/**
 * struct agent - everything the agent owns
 * @port:	the control port
 * @sess:	session slots, id 0 = free
 * @nsess:	live sessions
 * @recent:	ring of recently exited ids (late input is dropped quietly)
 * @recent_pos:	next slot in @recent
 * @sig_rd:	self-pipe read end, readable after SIGCHLD
 * @pid1:	running as init: never exit, reap orphans
 * @pfd:	poll set, rebuilt each turn; fixed slots, 3 per session, then
 *		the FS client's (fuse.c)
 * @scratch:	buffer for one output chunk
 * @boot_error:	why the root disk or a mount could not be used (sent in
 *		HELLO), or ""
 * @fs:		the FUSE client, NULL when no mounts were asked for
 * @hello_sent:	HELLO is out (it waits for the mounts)
 */
struct agent {
	struct port port;
	struct session sess[AGENT_MAX_SESSIONS];
	unsigned int nsess;
	uint32_t recent[AGENT_RECENT_IDS];
	unsigned int recent_pos;
	int sig_rd;
	bool pid1;
	struct pollfd pfd[AGENT_POLL_MAX];
	uint8_t scratch[FRAME_CHUNK];
	char boot_error[160];
	struct fsc *fs;
	bool hello_sent;
};

/* main.c */
uint64_t agent_now_ms(void);
void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* cmdline.c */
#define CMDLINE_MAX		4096
int cmdline_read(char *buf);
const char *cmdline_param(const char *cmdline, const char *name, size_t *len);
int cmdline_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap);

/* trust.c: the interception CA, for TLS clients in the guest */
#define TRUST_CA		"/run/gondolin/ca.crt"
#define TRUST_BUNDLE		"/run/gondolin/ca-certificates.crt"
void trust_install(void);

/* port.c */
int port_open(struct port *p, int fd);
int port_send(struct port *p, uint8_t type, uint32_t id,
	      const void *payload, size_t len);
bool port_congested(const struct port *p);
int port_flush(struct port *p);
int port_read(struct port *p);

/* msg.c */
void msg_dispatch(struct agent *a, const struct frame *f);
void msg_send_hello(struct agent *a);
void msg_send_error(struct agent *a, uint32_t id, const char *code,
		    const char *message);
void msg_send_started(struct agent *a, const struct session *s);
void msg_send_exit(struct agent *a, const struct session *s);
void msg_send_stdin_credit(struct agent *a, const struct session *s,
			   uint64_t bytes);
void exec_req_free(struct exec_req *req);

/* exec.c */
struct session *exec_find(struct agent *a, uint32_t id);
bool exec_recent(const struct agent *a, uint32_t id);
void exec_start(struct agent *a, uint32_t id, struct exec_req *req);
void exec_stdin(struct agent *a, struct session *s, const uint8_t *p,
		size_t n);
void exec_stdin_eof(struct agent *a, struct session *s);
void exec_credit(struct session *s, uint64_t out, uint64_t err);
void exec_resize(struct session *s, uint16_t rows, uint16_t cols);
void exec_signal(struct session *s, int sig);
void exec_reap(struct agent *a);
int exec_poll_timeout(struct agent *a, uint64_t now);
void exec_poll_fill(struct agent *a);
void exec_poll_handle(struct agent *a);
void exec_finish(struct agent *a, uint64_t now);
void exec_kill_all(struct agent *a);

/* fuse.c, fuse_mount.c: the FUSE mounts served over gondolin.fs */
struct fsc;
int fs_start(struct agent *a, int port_fd, char *const *paths, unsigned int n);
bool fs_mounting(const struct agent *a);
int fs_poll_timeout(const struct agent *a, uint64_t now, int timeout);
void fs_poll_fill(struct agent *a);
void fs_poll_handle(struct agent *a);
void fs_stop(struct agent *a);
int fs_cmdline_mounts(char *err, size_t elen, char **paths);

/* spawn.c */
pid_t spawn_child(const struct exec_req *req, const int fds[3]);
char **spawn_envp(char **overrides, size_t n, bool pty);

/* sysinit.c, root.c, dhcp.c */
void agent_sysinit(struct agent *a);
void root_switch(char *err, size_t len);
int agent_dhcp(void);

#endif /* GONDOLIN_AGENT_H */
