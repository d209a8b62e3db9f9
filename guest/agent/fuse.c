/* SPDX-License-Identifier: MIT */
/* fuse.c - the FUSE client: /dev/fuse requests <-> FS RPC on gondolin.fs */

/*
 * Theory of Operation
 *
 * The agent speaks the raw /dev/fuse protocol (no libfuse) for each mount
 * the host listed, and forwards every request that needs the host as one
 * FS request frame on the gondolin.fs port (docs/protocol.md, "FS RPC").
 * Everything runs in the agent's one poll loop:
 *
 *   - a /dev/fuse fd is polled for POLLIN only while fewer than
 *     FS_INFLIGHT_MAX requests await the host and the port's outbound ring
 *     is below its high-water mark, so the kernel's queue, not the agent,
 *     holds the backlog;
 *   - each kernel request is decoded, its nodeids turned into guest paths
 *     (fuse_node.c), and either answered here (INIT, FLUSH, OPENDIR, ...)
 *     or sent to the host under a fresh id, recorded in a struct freq slot
 *     with what the reply needs (the kernel's unique, names for new nodes,
 *     the size asked for);
 *   - each reply frame is matched by id, checked (one CBOR map, the right
 *     keys and types, no more data than asked) and turned into the kernel
 *     reply. Anything wrong fails that one request with EIO; a reply whose
 *     id is not in flight is dropped. No input from the host ends a mount.
 *
 * Directory handles need no state: READDIR's kernel offset is the number
 * of entries already returned ("." and ".." first, made up here), so each
 * READDIR asks the host for entries from there, fills the kernel's buffer
 * with as many records as fit, and numbers them so the next READDIR
 * starts where this one stopped.
 *
 * Mounting (fuse_mount.c) happens in a child so that a mount point inside
 * another FUSE mount can be created while this loop serves that mount;
 * HELLO waits for it (main.c). If the port goes away, requests in flight
 * and new ones fail with EIO; as PID 1 the port is tried again later.
 *
 * The agent itself never touches paths under its mounts: it would wait
 * on itself.
 *
 * Files: this one holds the request slots, the ports and the poll loop's
 * side; fuse_req.c turns kernel requests into FS requests, fuse_reply.c
 * host replies into kernel replies, fuse_node.c keeps the node table and
 * fuse_mount.c makes the mounts.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "agent.h"
#include "fuse.h"
#include "fuse_abi.h"
#include "proto/cbor.h"
#include "proto/fs.h"

#define FUSE_TURN_MAX	16		/* kernel requests per fd per turn */

/* ---- kernel replies ------------------------------------------------- */

/**
 * kreply() - answer kernel request @unique on @m
 * @m:		mount
 * @unique:	request
 * @err:	0 or a positive errno
 * @data:	reply body (may be NULL)
 * @len:	its size
 */
void kreply(struct fmount *m, uint64_t unique, int err,
	    const void *data, size_t len)
{
	struct fuse_out_header h = { 0 };
	struct iovec iov[2];
	ssize_t n;

	if (m->fd < 0 || unique == FUSE_REPLY_ONLY)
		return;
	if (err)
		len = 0;
	h.len = (uint32_t)(sizeof(h) + len);
	h.error = -err;
	h.unique = unique;
	iov[0] = (struct iovec){ &h, sizeof(h) };
	iov[1] = (struct iovec){ (void *)data, len };
	do {
		n = writev(m->fd, iov, len ? 2 : 1);
	} while (n < 0 && errno == EINTR);
	/* ENOENT: the request was interrupted and is gone; nothing to do */
	if (n < 0 && errno != ENOENT)
		agent_log("fuse %s: reply: %s", m->path, strerror(errno));
}

/* ---- request slots and the port -------------------------------------- */

/**
 * freq_find() - the request in flight with frame id @id
 * @c:		client
 * @id:		frame id
 *
 * Return: the slot or NULL.
 */
struct freq *freq_find(struct fsc *c, uint32_t id)
{
	unsigned int i;

	if (!id)
		return NULL;
	for (i = 0; i < FS_INFLIGHT_MAX; i++)
		if (c->req[i].id == id)
			return &c->req[i];
	return NULL;
}

/**
 * freq_new() - a free slot for kernel request @h on mount @mi
 * @c:		client (caller checked inflight < FS_INFLIGHT_MAX)
 * @mi:		mount index
 * @h:		kernel request header
 * @op:		FS request type
 *
 * Return: the slot, id not yet assigned.
 */
struct freq *freq_new(struct fsc *c, unsigned int mi,
		      const struct fuse_in_header *h, uint8_t op)
{
	unsigned int i;

	for (i = 0; i < FS_INFLIGHT_MAX; i++)
		if (!c->req[i].id)
			break;
	memset(&c->req[i], 0, offsetof(struct freq, name));
	c->req[i].name[0] = c->req[i].name2[0] = '\0';
	c->req[i].unique = h->unique;
	c->req[i].opcode = h->opcode;
	c->req[i].op = op;
	c->req[i].mnt = (uint8_t)mi;
	c->req[i].node = h->nodeid;
	return &c->req[i];
}

/**
 * freq_done() - free a slot
 * @c:		client
 * @r:		slot in use
 */
void freq_done(struct fsc *c, struct freq *r)
{
	if (r->id) {
		r->id = 0;
		c->inflight--;
	}
}

/**
 * freq_send() - give @r an id and queue its frame: the map in @w, then @data
 * @c:		client
 * @r:		slot
 * @w:		encoded map (in c->enc)
 * @data:	FS_WRITE bytes or NULL
 * @dlen:	their count
 *
 * Return: 0, or a positive errno for the kernel (the slot is then free).
 */
int freq_send(struct fsc *c, struct freq *r, struct cbor_writer *w,
	      const void *data, size_t dlen)
{
	if (w->err || w->len + dlen > sizeof(c->enc))
		return ENAMETOOLONG;
	if (c->down)
		return EIO;
	if (dlen)
		memcpy(c->enc + w->len, data, dlen);
	do {
		c->next_id++;
	} while (!c->next_id || freq_find(c, c->next_id));
	if (port_send(&c->port, r->op, c->next_id, c->enc, w->len + dlen) < 0)
		return EIO;
	r->id = c->next_id;
	c->inflight++;
	return 0;
}

/**
 * put_path() - "@key": path of @node (plus "/@name")
 * @m:		mount
 * @w:		writer
 * @key:	map key
 * @node:	nodeid
 * @name:	component or NULL
 * @nlen:	its length
 * @buf:	c->path or c->path2
 *
 * Return: 0 or a positive errno.
 */
int put_path(struct fmount *m, struct cbor_writer *w, const char *key,
	     uint64_t node, const char *name, size_t nlen, char *buf)
{
	int n = fnode_path(&m->nodes, node, name, nlen, buf, FS_PATH_MAX + 1);

	if (n < 0)
		return -n;
	cbor_put_cstr(w, key);
	cbor_put_text(w, buf, (size_t)n);
	return 0;
}

/**
 * enc_start() - start a request map of @pairs pairs in c->enc, leaving
 * room after it for FS_WRITE's data
 * @c:		client
 * @w:		writer, initialised here
 * @pairs:	key/value pairs the map will have
 */
void enc_start(struct fsc *c, struct cbor_writer *w, unsigned int pairs)
{
	cbor_writer_init(w, c->enc, sizeof(c->enc) - FS_IO_MAX);
	cbor_put_map(w, pairs);
}
/**
 * fail_all() - the port is gone: every request in flight fails with EIO
 * @c:		client
 */
static void fail_all(struct fsc *c)
{
	unsigned int i;

	for (i = 0; i < FS_INFLIGHT_MAX; i++) {
		if (!c->req[i].id)
			continue;
		kreply(&c->m[c->req[i].mnt], c->req[i].unique, EIO, NULL, 0);
		freq_done(c, &c->req[i]);
	}
	c->port.q.len = c->port.q.head = 0;
}

/**
 * fs_port_gone() - EOF or an error on gondolin.fs
 * @a:		agent
 */
static void fs_port_gone(struct agent *a)
{
	struct fsc *c = a->fs;

	if (!c->down)
		agent_log("fs: port closed by the host");
	c->down = true;
	fail_all(c);
	if (a->pid1)
		c->port.retry_at = agent_now_ms() + AGENT_RETRY_MS;
}

/**
 * fs_port_io() - flush, read and dispatch the port
 * @a:		agent
 * @revents:	poll result
 */
static void fs_port_io(struct agent *a, short revents)
{
	struct fsc *c = a->fs;
	struct frame f;
	int rc;

	if ((revents & POLLOUT) && port_flush(&c->port) < 0)
		fs_port_gone(a);
	if (!(revents & (POLLIN | POLLHUP | POLLERR)))
		return;
	rc = port_read(&c->port);
	if (rc == 0 || (rc < 0 && rc != -EAGAIN)) {
		fs_port_gone(a);
		return;
	}
	if (rc > 0 && c->down) {
		agent_log("fs: port back");
		c->down = false;
		c->port.retry_at = 0;
	}
	while ((rc = frame_reader_next(&c->port.rd, &f)) != 0) {
		if (rc < 0)
			agent_log("fs: frame above 256 KiB dropped");
		else
			fuse_host_frame(c, &f);
	}
}

/**
 * fuse_io() - take the kernel's requests on mount @mi
 * @c:		client
 * @mi:		mount index
 */
static void fuse_io(struct fsc *c, unsigned int mi)
{
	struct fmount *m = &c->m[mi];
	unsigned int turn;
	ssize_t n;

	for (turn = 0; turn < FUSE_TURN_MAX && m->fd >= 0; turn++) {
		if (c->inflight >= FS_INFLIGHT_MAX || port_congested(&c->port))
			return;
		n = read(m->fd, c->in, sizeof(c->in));
		if (n < 0 && (errno == EINTR || errno == ENOENT))
			continue;	/* ENOENT: interrupted before we read it */
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {		/* ENODEV: unmounted or aborted */
			agent_log("fuse %s: connection ended (%s)", m->path,
				  n < 0 ? strerror(errno) : "EOF");
			close(m->fd);
			m->fd = -1;
			return;
		}
		fuse_kernel_request(c, mi, (size_t)n);
	}
}

/* ---- the agent's side ------------------------------------------------ */

/**
 * helper_io() - read the mount helper's report; EOF means it is done
 * @a:		agent
 */
static void helper_io(struct agent *a)
{
	struct fsc *c = a->fs;
	char buf[64];
	ssize_t n, i;

	n = read(c->helper_fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	for (i = 0; i < n; i++) {
		if (buf[i] == '+' && !c->helper_len && c->mounted < c->nmounts)
			c->mounted++;
		else if (c->helper_len < sizeof(c->helper_msg) - 1)
			c->helper_msg[c->helper_len++] = buf[i];
	}
	if (n > 0)
		return;
	c->helper_msg[c->helper_len] = '\0';	/* EOF: the helper is done */
	close(c->helper_fd);
	c->helper_fd = -1;
	if (!c->helper_len)
		return;
	agent_log("%s", c->helper_msg);
	if (!a->boot_error[0])
		snprintf(a->boot_error, sizeof(a->boot_error), "%s", c->helper_msg);
}

/**
 * fs_mounting() - whether the mount helper is still at work
 * @a:		agent
 *
 * Return: true until every mount is done (or failed).
 */
bool fs_mounting(const struct agent *a)
{
	return a->fs && a->fs->helper_fd >= 0;
}

/**
 * fs_poll_timeout() - lower @timeout to the port's retry time
 * @a:		agent
 * @now:	monotonic ms
 * @timeout:	poll timeout so far (-1: none)
 *
 * Return: the new timeout.
 */
int fs_poll_timeout(const struct agent *a, uint64_t now, int timeout)
{
	int wait;

	if (!a->fs || !a->fs->port.retry_at)
		return timeout;
	wait = a->fs->port.retry_at > now ? (int)(a->fs->port.retry_at - now) : 0;
	return (timeout < 0 || wait < timeout) ? wait : timeout;
}

/**
 * fs_poll_fill() - the port, the helper pipe and each /dev/fuse
 * @a:		agent
 */
void fs_poll_fill(struct agent *a)
{
	struct pollfd *p = a->pfd + AGENT_POLL_FS;
	struct fsc *c = a->fs;
	bool take;
	unsigned int i;

	for (i = 0; i < AGENT_POLL_FS_SLOTS; i++)
		p[i] = (struct pollfd){ .fd = -1 };
	if (!c)
		return;
	if (!c->down || (c->port.retry_at && c->port.retry_at <= agent_now_ms())) {
		p[0].fd = c->port.fd;
		p[0].events = POLLIN | (c->port.q.len ? POLLOUT : 0);
	}
	p[1].fd = c->helper_fd;
	p[1].events = POLLIN;
	take = c->inflight < FS_INFLIGHT_MAX && !port_congested(&c->port);
	for (i = 0; i < c->mounted; i++) {
		p[2 + i].fd = take ? c->m[i].fd : -1;
		p[2 + i].events = POLLIN;
	}
}

/**
 * fs_poll_handle() - act on the poll results; flush what was queued
 * @a:		agent
 */
void fs_poll_handle(struct agent *a)
{
	struct pollfd *p = a->pfd + AGENT_POLL_FS;
	struct fsc *c = a->fs;
	unsigned int i;

	if (!c)
		return;
	if (p[0].fd >= 0 && p[0].revents)
		fs_port_io(a, p[0].revents);
	if (p[1].fd >= 0 && p[1].revents)
		helper_io(a);
	for (i = 0; i < c->mounted; i++)
		if (p[2 + i].fd >= 0 && p[2 + i].revents)
			fuse_io(c, i);
	if (c->port.q.len && !c->down && port_flush(&c->port) < 0)
		fs_port_gone(a);
}

/**
 * open_fuse() - one /dev/fuse per mount, set up for the loop
 * @c:		client
 * @paths:	mount points
 * @n:		how many
 * @fds:	filled with the fds
 * @err:	message on failure
 * @elen:	its size
 *
 * Return: 0 or -1.
 */
static int open_fuse(struct fsc *c, char *const *paths, unsigned int n,
		     int *fds, char *err, size_t elen)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		struct fmount *m = &c->m[i];

		m->path = paths[i];
		m->fd = open("/dev/fuse", O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (m->fd < 0) {
			snprintf(err, elen, "mount %s: /dev/fuse: %s", paths[i],
				 strerror(errno));
			return -1;
		}
		c->nmounts++;
		fds[i] = m->fd;
		if (fnodes_init(&m->nodes, m->path) < 0) {
			snprintf(err, elen, "mount %s: out of memory", paths[i]);
			return -1;
		}
	}
	return 0;
}

/**
 * fs_start() - serve @n FUSE mounts over @port_fd and start mounting them
 * @a:		agent (boot_error set on failure)
 * @port_fd:	gondolin.fs (taken over)
 * @paths:	mount points, checked with fs_path_ok; must outlive the agent
 * @n:		how many (1..AGENT_MOUNTS_MAX)
 *
 * The mounts themselves are made by a child (fuse_mount.c) while the
 * loop serves them; fs_mounting() says when it is done.
 *
 * Return: 0 or -1.
 */
int fs_start(struct agent *a, int port_fd, char *const *paths, unsigned int n)
{
	char *err = a->boot_error;
	size_t elen = sizeof(a->boot_error);
	int fds[AGENT_MOUNTS_MAX], rc;
	struct fsc *c;
	pid_t pid;

	c = calloc(1, sizeof(*c));
	if (!c || n > AGENT_MOUNTS_MAX) {
		snprintf(err, elen, "mounts: %s", c ? "too many" : "out of memory");
		free(c);
		close(port_fd);
		return -1;
	}
	c->helper_fd = -1;
	a->fs = c;
	rc = port_open(&c->port, port_fd);
	if (rc < 0) {
		snprintf(err, elen, "mounts: port: %s", strerror(-rc));
		c->down = true;
		return -1;
	}
	if (open_fuse(c, paths, n, fds, err, elen) < 0)
		return -1;
	c->helper_fd = fuse_mount_spawn(paths, fds, n, &pid);
	if (c->helper_fd < 0) {
		snprintf(err, elen, "mounts: fork: %s", strerror(-c->helper_fd));
		c->helper_fd = -1;
		return -1;
	}
	return 0;
}

/**
 * fs_stop() - close every mount's connection (--fd mode, at exit)
 * @a:		agent
 */
void fs_stop(struct agent *a)
{
	struct fsc *c = a->fs;
	unsigned int i;

	if (!c)
		return;
	for (i = 0; i < c->nmounts; i++) {
		if (c->m[i].fd >= 0)
			close(c->m[i].fd);
		fnodes_free(&c->m[i].nodes);
	}
	if (c->helper_fd >= 0)
		close(c->helper_fd);
	frame_reader_free(&c->port.rd);
	free(c->port.q.buf);
	close(c->port.fd);
	free(c);
	a->fs = NULL;
}
