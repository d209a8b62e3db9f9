/* SPDX-License-Identifier: MIT */
/* msg.c - decode host messages, encode the agent's replies (docs/protocol.md) */

/*
 * Theory of Operation
 *
 * msg_dispatch() receives every complete inbound frame. Structured
 * payloads are validated whole first (one CBOR map that cbor_skip()
 * consumes exactly), then read key by key with the cbor_map_* lookups:
 * unknown keys are ignored, a known key of the wrong type makes the frame
 * malformed. Every problem becomes one ERROR frame and the agent carries
 * on; nothing here can end the connection.
 *
 * Input for an id that is not live is answered with unknown_session,
 * except for ids that exited recently: late frames for those are dropped
 * quietly, since the host may have sent them before it saw EXEC_EXIT.
 *
 * Decoded EXEC_START strings are copied into a struct exec_req (heap,
 * bounded by the frame size) because the frame's payload is only valid
 * until the next read from the port.
 */

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <sys/wait.h>

#include "agent.h"
#include "proto/cbor.h"

#define SIGNAL_MAX	64
#define PTY_ROWS	24
#define PTY_COLS	80
#define TIMEOUT_MAX_MS	((uint64_t)1 << 40)	/* keeps deadlines from wrapping */

/**
 * valid_map() - whether a payload is exactly one well-formed CBOR map
 * @f: frame
 *
 * Return: true when it is.
 */
static bool valid_map(const struct frame *f)
{
	struct cbor_reader r;
	struct cbor_item it;

	cbor_reader_init(&r, f->payload, f->len);
	if (cbor_read(&r, &it) < 0 || it.type != CBOR_MAP)
		return false;
	cbor_reader_init(&r, f->payload, f->len);
	return cbor_skip(&r) == 0 && r.p == r.end;
}

/**
 * dup_text() - copy a CBOR text into a C string
 * @p: text bytes
 * @n: length
 *
 * Return: the string, or NULL when too long, containing NUL, or on ENOMEM.
 */
static char *dup_text(const uint8_t *p, size_t n)
{
	char *s;

	if (n > AGENT_MAX_STR || memchr(p, 0, n))
		return NULL;
	s = malloc(n + 1);
	if (!s)
		return NULL;
	memcpy(s, p, n);
	s[n] = 0;
	return s;
}

/**
 * free_strv() - free a NULL-terminated string vector
 * @v: vector or NULL
 */
static void free_strv(char **v)
{
	size_t i;

	if (!v)
		return;
	for (i = 0; v[i]; i++)
		free(v[i]);
	free(v);
}

/**
 * read_text_array() - decode an array of texts into a string vector
 * @v: cursor at the array
 * @out: NULL-terminated vector (heap)
 * @count: number of entries
 * @is_env: entries must look like K=V with a non-empty K
 *
 * Return: 0, or -1 when malformed, too large, or out of memory.
 */
static int read_text_array(struct cbor_reader *v, char ***out, size_t *count,
			   bool is_env)
{
	struct cbor_item it;
	char **vec;
	size_t i;

	if (cbor_read(v, &it) < 0 || it.type != CBOR_ARRAY ||
	    it.u > AGENT_MAX_ARGS)
		return -1;
	vec = calloc((size_t)it.u + 1, sizeof(*vec));
	if (!vec)
		return -1;
	*count = (size_t)it.u;
	for (i = 0; i < *count; i++) {
		if (cbor_read(v, &it) < 0 || it.type != CBOR_TEXT ||
		    !(vec[i] = dup_text(it.str, it.len)) ||
		    (is_env && (it.len == 0 || vec[i][0] == '=' ||
				!strchr(vec[i], '=')))) {
			free_strv(vec);
			return -1;
		}
	}
	*out = vec;
	return 0;
}

/**
 * clamp_u16() - a window dimension: 0 (or absent) takes @dflt
 * @v: decoded value
 * @dflt: default
 *
 * Return: the dimension.
 */
static uint16_t clamp_u16(uint64_t v, uint16_t dflt)
{
	if (v == 0)
		return dflt;
	return v > UINT16_MAX ? UINT16_MAX : (uint16_t)v;
}

/**
 * decode_scalars() - the optional scalar fields of EXEC_START
 * @f: frame
 * @req: request to fill
 *
 * Return: 0, or -1 when a field has the wrong type.
 */
static int decode_scalars(const struct frame *f, struct exec_req *req)
{
	uint64_t rows = 0, cols = 0, window = AGENT_WINDOW_DEFAULT;
	const uint8_t *cwd;
	size_t cwd_len;
	int rc;

	if (cbor_map_bool(f->payload, f->len, "pty", &req->pty) < 0 ||
	    cbor_map_bool(f->payload, f->len, "stdin", &req->want_stdin) < 0 ||
	    cbor_map_uint(f->payload, f->len, "rows", &rows) < 0 ||
	    cbor_map_uint(f->payload, f->len, "cols", &cols) < 0 ||
	    cbor_map_uint(f->payload, f->len, "timeout_ms", &req->timeout_ms) < 0 ||
	    cbor_map_uint(f->payload, f->len, "window", &window) < 0)
		return -1;
	rc = cbor_map_text(f->payload, f->len, "cwd", &cwd, &cwd_len);
	if (rc < 0 || (rc == 1 && !(req->cwd = dup_text(cwd, cwd_len))))
		return -1;
	req->rows = clamp_u16(rows, PTY_ROWS);
	req->cols = clamp_u16(cols, PTY_COLS);
	if (req->timeout_ms > TIMEOUT_MAX_MS)
		req->timeout_ms = TIMEOUT_MAX_MS;
	if (window < AGENT_WINDOW_MIN)
		window = AGENT_WINDOW_MIN;
	req->window = window > AGENT_WINDOW_MAX ? AGENT_WINDOW_MAX : window;
	req->want_stdin = req->want_stdin || req->pty;	/* a terminal always has input */
	return 0;
}

/**
 * decode_exec_start() - EXEC_START into a request
 * @f: frame
 * @req: request to fill; exec_req_free() it whatever the result
 *
 * Return: 0, or -1 when malformed (or out of memory).
 */
static int decode_exec_start(const struct frame *f, struct exec_req *req)
{
	char **env = NULL;
	struct cbor_reader v;
	size_t argc, envc = 0;
	int rc;

	memset(req, 0, sizeof(*req));
	if (!valid_map(f))
		return -1;
	if (cbor_map_find(f->payload, f->len, "argv", &v) != 1 ||
	    read_text_array(&v, &req->argv, &argc, false) < 0 || argc == 0)
		return -1;
	rc = cbor_map_find(f->payload, f->len, "env", &v);
	if (rc < 0 || (rc == 1 && read_text_array(&v, &env, &envc, true) < 0))
		return -1;
	if (decode_scalars(f, req) < 0) {
		free_strv(env);
		return -1;
	}
	req->envp = spawn_envp(env, envc, req->pty);
	free_strv(env);
	return req->envp ? 0 : -1;
}

/**
 * exec_req_free() - release what decode_exec_start() allocated
 * @req: request
 */
void exec_req_free(struct exec_req *req)
{
	free_strv(req->argv);
	free_strv(req->envp);
	free(req->cwd);
	memset(req, 0, sizeof(*req));
}

/**
 * send_map() - queue a frame whose payload a writer produced
 * @a: agent
 * @type: message type
 * @id: session id
 * @w: finished writer
 */
static void send_map(struct agent *a, uint8_t type, uint32_t id,
		     const struct cbor_writer *w)
{
	if (w->err) {
		agent_log("reply type 0x%02x does not fit", type);
		return;
	}
	port_send(&a->port, type, id, w->buf, w->len);
}

/**
 * msg_send_error() - queue an ERROR frame
 * @a: agent
 * @id: the offending frame's id, or 0
 * @code: stable code from docs/protocol.md
 * @message: human-readable detail (truncated to fit)
 */
void msg_send_error(struct agent *a, uint32_t id, const char *code,
		    const char *message)
{
	uint8_t buf[AGENT_MSG_MAX];
	struct cbor_writer w;
	size_t n = strlen(message);

	if (n > AGENT_MSG_MAX / 2)
		n = AGENT_MSG_MAX / 2;
	cbor_writer_init(&w, buf, sizeof(buf));
	cbor_put_map(&w, 2);
	cbor_put_cstr(&w, "code");
	cbor_put_cstr(&w, code);
	cbor_put_cstr(&w, "message");
	cbor_put_text(&w, message, n);
	send_map(a, FRAME_ERROR, id, &w);
}

/**
 * error_fmt() - queue an ERROR frame with a formatted message
 * @a: agent
 * @id: frame id or 0
 * @code: error code
 * @fmt: printf format
 */
static void __attribute__((format(printf, 4, 5)))
error_fmt(struct agent *a, uint32_t id, const char *code, const char *fmt, ...)
{
	char msg[AGENT_MSG_MAX / 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	msg_send_error(a, id, code, msg);
}

/**
 * msg_send_hello() - queue HELLO (version, agent, kernel, caps[, error])
 * @a: agent
 */
void msg_send_hello(struct agent *a)
{
	static const char *const caps[] = { "exec", "pty", "signal", "timeout", "ping" };
	uint8_t buf[AGENT_MSG_MAX];
	struct cbor_writer w;
	struct utsname u;
	size_t i;

	if (uname(&u) < 0)
		strcpy(u.release, "unknown");
	cbor_writer_init(&w, buf, sizeof(buf));
	cbor_put_map(&w, a->boot_error[0] ? 5 : 4);
	cbor_put_cstr(&w, "version");
	cbor_put_uint(&w, PROTO_VERSION);
	cbor_put_cstr(&w, "agent");
	cbor_put_cstr(&w, AGENT_NAME);
	cbor_put_cstr(&w, "kernel");
	cbor_put_cstr(&w, u.release);
	cbor_put_cstr(&w, "caps");
	cbor_put_array(&w, sizeof(caps) / sizeof(caps[0]));
	for (i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		cbor_put_cstr(&w, caps[i]);
	if (a->boot_error[0]) {
		cbor_put_cstr(&w, "error");
		cbor_put_cstr(&w, a->boot_error);
	}
	send_map(a, FRAME_HELLO, 0, &w);
}

/**
 * msg_send_started() - queue EXEC_STARTED
 * @a: agent
 * @s: new session
 */
void msg_send_started(struct agent *a, const struct session *s)
{
	uint8_t buf[AGENT_MSG_MAX];
	struct cbor_writer w;

	cbor_writer_init(&w, buf, sizeof(buf));
	cbor_put_map(&w, 2);
	cbor_put_cstr(&w, "pid");
	cbor_put_uint(&w, (uint64_t)s->pid);
	cbor_put_cstr(&w, "stdin_credit");
	cbor_put_uint(&w, s->in_credit);
	send_map(a, FRAME_EXEC_STARTED, s->id, &w);
}

/**
 * msg_send_exit() - queue EXEC_EXIT, the last frame of a session
 * @a: agent
 * @s: session whose leader was reaped
 */
void msg_send_exit(struct agent *a, const struct session *s)
{
	bool sig = WIFSIGNALED(s->status);
	uint8_t buf[AGENT_MSG_MAX];
	struct cbor_writer w;

	cbor_writer_init(&w, buf, sizeof(buf));
	cbor_put_map(&w, sig ? 3 : 2);
	cbor_put_cstr(&w, "code");
	cbor_put_uint(&w, sig ? 128 + (uint64_t)WTERMSIG(s->status)
			      : (uint64_t)WEXITSTATUS(s->status));
	if (sig) {
		cbor_put_cstr(&w, "signal");
		cbor_put_uint(&w, (uint64_t)WTERMSIG(s->status));
	}
	cbor_put_cstr(&w, "timed_out");
	cbor_put_bool(&w, s->timed_out);
	send_map(a, FRAME_EXEC_EXIT, s->id, &w);
}

/**
 * msg_send_stdin_credit() - queue EXEC_STDIN_CREDIT
 * @a: agent
 * @s: session
 * @bytes: credit returned
 */
void msg_send_stdin_credit(struct agent *a, const struct session *s,
			   uint64_t bytes)
{
	uint8_t buf[AGENT_MSG_MAX];
	struct cbor_writer w;

	cbor_writer_init(&w, buf, sizeof(buf));
	cbor_put_map(&w, 1);
	cbor_put_cstr(&w, "bytes");
	cbor_put_uint(&w, bytes);
	send_map(a, FRAME_EXEC_STDIN_CREDIT, s->id, &w);
}

/**
 * live_session() - the session a frame is for, reporting unknown ids
 * @a: agent
 * @f: frame
 *
 * Return: the session, or NULL (an error was sent unless the id exited
 * recently).
 */
static struct session *live_session(struct agent *a, const struct frame *f)
{
	struct session *s = f->id ? exec_find(a, f->id) : NULL;

	if (!s && !(f->id && exec_recent(a, f->id)))
		error_fmt(a, f->id, "unknown_session", "no session %u", f->id);
	return s;
}

/**
 * on_exec_start() - EXEC_START: decode and start a session
 * @a: agent
 * @f: frame
 */
static void on_exec_start(struct agent *a, const struct frame *f)
{
	struct exec_req req;

	if (f->id == 0) {
		msg_send_error(a, 0, "malformed", "EXEC_START needs a non-zero id");
		return;
	}
	if (exec_find(a, f->id)) {
		error_fmt(a, f->id, "duplicate_session", "session %u is live", f->id);
		return;
	}
	if (a->nsess >= AGENT_MAX_SESSIONS) {
		msg_send_error(a, f->id, "too_many_sessions", "256 sessions live");
		return;
	}
	if (decode_exec_start(f, &req) < 0)
		msg_send_error(a, f->id, "malformed", "bad EXEC_START");
	else
		exec_start(a, f->id, &req);
	exec_req_free(&req);
}

/**
 * on_credit() - EXEC_CREDIT: more output credit
 * @a: agent
 * @f: frame
 */
static void on_credit(struct agent *a, const struct frame *f)
{
	uint64_t out = 0, err = 0;
	struct session *s;

	if (!valid_map(f) ||
	    cbor_map_uint(f->payload, f->len, "stdout", &out) < 0 ||
	    cbor_map_uint(f->payload, f->len, "stderr", &err) < 0) {
		msg_send_error(a, f->id, "malformed", "bad EXEC_CREDIT");
		return;
	}
	s = live_session(a, f);
	if (s)
		exec_credit(s, out, err);
}

/**
 * on_resize() - EXEC_RESIZE: new pty window size (ignored without a pty)
 * @a: agent
 * @f: frame
 */
static void on_resize(struct agent *a, const struct frame *f)
{
	uint64_t rows = 0, cols = 0;
	struct session *s;

	if (!valid_map(f) ||
	    cbor_map_uint(f->payload, f->len, "rows", &rows) < 0 ||
	    cbor_map_uint(f->payload, f->len, "cols", &cols) < 0) {
		msg_send_error(a, f->id, "malformed", "bad EXEC_RESIZE");
		return;
	}
	s = live_session(a, f);
	if (s)
		exec_resize(s, clamp_u16(rows, PTY_ROWS), clamp_u16(cols, PTY_COLS));
}

/**
 * on_signal() - EXEC_SIGNAL: signal the session's process group
 * @a: agent
 * @f: frame
 */
static void on_signal(struct agent *a, const struct frame *f)
{
	uint64_t sig = 0;
	struct session *s;

	if (!valid_map(f) ||
	    cbor_map_uint(f->payload, f->len, "signal", &sig) != 1 ||
	    sig < 1 || sig > SIGNAL_MAX) {
		msg_send_error(a, f->id, "malformed", "bad EXEC_SIGNAL");
		return;
	}
	s = live_session(a, f);
	if (s)
		exec_signal(s, (int)sig);
}

/**
 * on_stdin() - EXEC_STDIN and EXEC_STDIN_EOF
 * @a: agent
 * @f: frame
 */
static void on_stdin(struct agent *a, const struct frame *f)
{
	struct session *s = live_session(a, f);

	if (!s)
		return;
	if (f->type == FRAME_EXEC_STDIN_EOF)
		exec_stdin_eof(a, s);
	else if (f->len > 0)
		exec_stdin(a, s, f->payload, f->len);
}

/* 2020-01-01 and 2200-01-01 in ns: a clock outside is not the host's */
#define CLOCK_MIN_NS	1577836800000000000ULL
#define CLOCK_MAX_NS	7258118400000000000ULL

/**
 * on_clock() - CLOCK_SET: take the host's wall clock
 * @a: agent
 * @f: frame
 *
 * The RTC has whole seconds and the boot takes more, so without this the
 * guest runs up to seconds behind the host, whose clock stamps the files of
 * every mount: a file just made would look as if from the future.
 */
static void on_clock(struct agent *a, const struct frame *f)
{
	struct timespec ts;
	uint64_t ns = 0;

	if (!valid_map(f) || cbor_map_uint(f->payload, f->len, "ns", &ns) != 1 ||
	    ns < CLOCK_MIN_NS || ns > CLOCK_MAX_NS) {
		msg_send_error(a, f->id, "malformed", "bad CLOCK_SET");
		return;
	}
	ts.tv_sec = (time_t)(ns / 1000000000u);
	ts.tv_nsec = (long)(ns % 1000000000u);
	if (clock_settime(CLOCK_REALTIME, &ts) < 0)
		error_fmt(a, f->id, "clock_failed", "clock_settime: %s", strerror(errno));
}

/**
 * msg_dispatch() - act on one inbound frame
 * @a: agent
 * @f: frame (payload valid only during this call)
 */
void msg_dispatch(struct agent *a, const struct frame *f)
{
	switch (f->type) {
	case FRAME_EXEC_START:
		on_exec_start(a, f);
		break;
	case FRAME_EXEC_STDIN:
	case FRAME_EXEC_STDIN_EOF:
		on_stdin(a, f);
		break;
	case FRAME_EXEC_CREDIT:
		on_credit(a, f);
		break;
	case FRAME_EXEC_RESIZE:
		on_resize(a, f);
		break;
	case FRAME_EXEC_SIGNAL:
		on_signal(a, f);
		break;
	case FRAME_CLOCK_SET:
		on_clock(a, f);
		break;
	case FRAME_PING:
		if (f->len > AGENT_PING_MAX)
			msg_send_error(a, f->id, "malformed", "PING above 64 KiB");
		else
			port_send(&a->port, FRAME_PONG, f->id, f->payload, f->len);
		break;
	default:
		error_fmt(a, f->id, "unknown_type", "type 0x%02x", f->type);
		break;
	}
}
