/* SPDX-License-Identifier: MIT */
/* fuse_mount.c - the boot-time FUSE mounts: which, and making them */

/*
 * The host lists the mounts on the kernel command line,
 *
 *	gondolin.mounts=B64	(base64 of absolute guest paths, one a line)
 *
 * and the agent mounts each one, in list order, before HELLO. A mount point
 * may lie inside an earlier FUSE mount: creating it (mkdir -p) and mounting
 * on it then go through that mount, i.e. through the agent's own poll
 * loop. So the mkdir and mount(2) calls run in a child, the mount helper,
 * while the loop serves the requests they cause; the helper reports a
 * failure on a pipe and exits, and HELLO (with the failure as its error)
 * follows the pipe's EOF. The /dev/fuse fds are opened by the agent before
 * the fork and named to mount(2) as fd=N; the kernel keeps the file, so
 * the agent's copy is the live connection.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "fuse.h"
#include "proto/fs.h"

#define MOUNTS_PARAM	"gondolin.mounts="
#define MOUNT_FLAGS	(MS_NOSUID | MS_NODEV)

/**
 * fs_cmdline_mounts() - the mount points listed on the kernel command line
 * @err:	message when the list is malformed
 * @elen:	its size
 * @paths:	filled with up to AGENT_MOUNTS_MAX paths (into a static buffer)
 *
 * Return: number of paths (0: none listed), or -1 with @err set.
 */
int fs_cmdline_mounts(char *err, size_t elen, char **paths)
{
	static char cmdline[CMDLINE_MAX + 1];
	static char list[CMDLINE_MAX];
	char *line, *save = NULL;
	const char *v;
	int n = 0, len;
	size_t vlen;

	if (cmdline_read(cmdline) < 0)
		return 0;
	v = cmdline_param(cmdline, MOUNTS_PARAM, &vlen);
	if (!v)
		return 0;
	len = cmdline_b64_decode(v, vlen, (uint8_t *)list, sizeof(list) - 1);
	if (len < 0 || memchr(list, '\0', (size_t)len)) {
		snprintf(err, elen, "malformed " MOUNTS_PARAM " on the command line");
		return -1;
	}
	list[len] = '\0';
	for (line = strtok_r(list, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!fs_path_ok(line, strlen(line)) || strcmp(line, "/") == 0 ||
		    n == AGENT_MOUNTS_MAX) {
			snprintf(err, elen, "mount point not usable (%d at most, "
				 "absolute, normalised, not /)", AGENT_MOUNTS_MAX);
			return -1;
		}
		paths[n++] = line;
	}
	return n;
}

/**
 * mkdir_p() - create @path and its missing parents
 * @path:	absolute path (modified while working, restored)
 *
 * Return: 0 or -errno (ENOTDIR when it exists but is no directory).
 */
static int mkdir_p(char *path)
{
	struct stat st;
	char *p;

	for (p = path + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;

		*p = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST) {
			int e = errno;

			*p = c;
			return -e;
		}
		*p = c;
		if (!c)
			break;
	}
	if (stat(path, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/**
 * mount_one() - mkdir -p and mount(2) one FUSE mount
 * @path:	mount point
 * @fd:		its /dev/fuse
 * @err:	message on failure
 * @elen:	its size
 *
 * Return: 0 or -1.
 */
static int mount_one(char *path, int fd, char *err, size_t elen)
{
	char opts[160];
	int rc;

	rc = mkdir_p(path);
	if (rc < 0) {
		snprintf(err, elen, "mount %s: mkdir: %s", path, strerror(-rc));
		return -1;
	}
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0,"
		 "allow_other,max_read=%d", fd, FS_IO_MAX);
	if (mount("gondolin", path, "fuse.gondolin", MOUNT_FLAGS, opts) < 0) {
		snprintf(err, elen, "mount %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/**
 * fuse_mount_spawn() - fork the mount helper
 * @paths:	mount points, in order
 * @fds:	their /dev/fuse fds
 * @n:		how many
 * @pid:	the helper's pid (reaped with the other children)
 *
 * Return: the read end of the helper's report pipe (non-blocking): a '+'
 * for each mount made, then the reason if one failed, then EOF when the
 * helper is done; or -errno.
 */
int fuse_mount_spawn(char *const *paths, const int *fds, unsigned int n,
		     pid_t *pid)
{
	char err[160];
	unsigned int i;
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	*pid = fork();
	if (*pid < 0) {
		int e = errno;

		close(p[0]);
		close(p[1]);
		return -e;
	}
	if (*pid == 0) {
		close(p[0]);
		for (i = 0; i < n; i++) {
			if (mount_one(paths[i], fds[i], err, sizeof(err)) < 0) {
				if (write(p[1], err, strlen(err)) < 0)
					_exit(2);
				_exit(1);
			}
			if (write(p[1], "+", 1) != 1)
				_exit(2);
		}
		_exit(0);
	}
	close(p[1]);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	return p[0];
}
