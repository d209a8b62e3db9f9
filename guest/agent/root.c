/* SPDX-License-Identifier: MIT */
/* root.c - mount the image's root disk and make it the agent's / */

/*
 * Theory of Operation
 *
 * Images with a root disk boot the same small initramfs as `minimal`, with
 * the agent as /init. The host asks for the disk on the kernel command line:
 *
 *	gondolin.root=DEV[,ro][,grow]
 *
 * DEV is a block device name under /dev (vda). The agent mounts it as ext4
 * on /newroot (read-only with "ro"), grows the filesystem to the size of
 * the device with "grow" (the host made the disk larger than the image:
 * an online resize is one ioctl, so the image needs no resize2fs), moves
 * /dev, /proc and /sys under it and makes it / (the switch_root dance:
 * MS_MOVE onto /, chroot). The agent itself keeps running from the
 * initramfs it was loaded from; nothing is exec'd.
 *
 * /root becomes a tmpfs (as /tmp and /run do, in sysinit.c), so a read-only
 * disk still has a writable home; the image's own top-level dotfiles
 * (.bashrc, .profile) are copied into it through a descriptor opened before
 * the mount, which still reaches the directory underneath.
 *
 * A failure leaves the initramfs as / and is reported in HELLO, so the host
 * fails the boot at once with the reason instead of timing out.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

#define ROOT_PARAM	"gondolin.root="
#define ROOT_NEW	"/newroot"
#define ROOT_DEV_MAX	16		/* device name bytes */
#define ROOT_WAIT_MS	5000		/* for the device node to appear */
#define ROOT_WAIT_STEP	2
#define SKEL_MAX_FILES	64		/* dotfiles copied into /root */
#define SKEL_MAX_BYTES	(256 * 1024)

/* Not in musl's headers: <linux/fs.h> and <linux/ext4.h> values. */
#define ROOT_BLKGETSIZE64	_IOR(0x12, 114, size_t)
#define ROOT_EXT4_RESIZE_FS	_IOW('f', 16, uint64_t)

/**
 * struct root_req - what the command line asked for
 * @dev:	"/dev/" plus the device name
 * @ro:		mount read-only
 * @grow:	grow the filesystem to the device size
 */
struct root_req {
	char dev[sizeof("/dev/") + ROOT_DEV_MAX];
	bool ro, grow;
};

/**
 * root_parse() - find and check gondolin.root= in a command line
 * @cmdline:	NUL-terminated kernel command line
 * @req:	filled in
 *
 * Return: 1 when asked for a root disk, 0 when not, -1 when malformed.
 */
static int root_parse(const char *cmdline, struct root_req *req)
{
	const char *v, *end;
	size_t n;

	v = cmdline_param(cmdline, ROOT_PARAM, NULL);
	if (!v)
		return 0;
	n = strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789");
	if (n == 0 || n > ROOT_DEV_MAX)
		return -1;
	memset(req, 0, sizeof(*req));
	memcpy(req->dev, "/dev/", 5);
	memcpy(req->dev + 5, v, n);
	for (v += n; *v == ','; v = end) {
		end = v + 1 + strcspn(v + 1, ", \n");
		if (end - v == 3 && memcmp(v, ",ro", 3) == 0)
			req->ro = true;
		else if (end - v == 5 && memcmp(v, ",grow", 5) == 0)
			req->grow = true;
		else
			return -1;
	}
	return (*v == '\0' || *v == ' ' || *v == '\n') ? 1 : -1;
}

/**
 * wait_device() - wait for the device node (devtmpfs makes it on probe)
 * @dev:	path
 *
 * Return: true once it exists.
 */
static bool wait_device(const char *dev)
{
	struct timespec ts = { 0, ROOT_WAIT_STEP * 1000000L };
	int waited;

	for (waited = 0; waited <= ROOT_WAIT_MS; waited += ROOT_WAIT_STEP) {
		if (access(dev, F_OK) == 0)
			return true;
		nanosleep(&ts, NULL);
	}
	return false;
}

/**
 * root_grow() - grow the mounted ext4 at ROOT_NEW to fill @dev
 * @dev:	the block device
 * @err:	message on failure
 * @len:	size of @err
 *
 * Return: 0 or -1.
 */
static int root_grow(const char *dev, char *err, size_t len)
{
	uint64_t bytes = 0, blocks;
	struct statfs sf;
	int fd, dfd;

	dfd = open(dev, O_RDONLY | O_CLOEXEC);
	if (dfd < 0 || ioctl(dfd, ROOT_BLKGETSIZE64, &bytes) < 0) {
		snprintf(err, len, "grow: size of %s: %s", dev, strerror(errno));
		if (dfd >= 0)
			close(dfd);
		return -1;
	}
	close(dfd);
	if (statfs(ROOT_NEW, &sf) < 0 || sf.f_bsize <= 0) {
		snprintf(err, len, "grow: statfs: %s", strerror(errno));
		return -1;
	}
	blocks = bytes / (uint64_t)sf.f_bsize;
	fd = open(ROOT_NEW, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || ioctl(fd, ROOT_EXT4_RESIZE_FS, &blocks) < 0) {
		snprintf(err, len, "grow: resize to %llu blocks: %s",
			 (unsigned long long)blocks, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/**
 * skel_copy_one() - copy one regular file or symlink from @from into @to
 * @from:	directory fd of the image's /root (under the tmpfs)
 * @to:		directory fd of the new tmpfs
 * @name:	entry name
 * @buf:	SKEL_MAX_BYTES scratch
 */
static void skel_copy_one(int from, int to, const char *name, char *buf)
{
	struct stat st;
	ssize_t n;
	int in, out;

	if (fstatat(from, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	if (S_ISLNK(st.st_mode)) {
		n = readlinkat(from, name, buf, SKEL_MAX_BYTES - 1);
		if (n > 0) {
			buf[n] = '\0';
			if (symlinkat(buf, to, name) < 0)
				agent_log("root: /root/%s: %s", name, strerror(errno));
		}
		return;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > SKEL_MAX_BYTES)
		return;
	in = openat(from, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (in < 0)
		return;
	n = read(in, buf, SKEL_MAX_BYTES);
	close(in);
	if (n < 0)
		return;
	out = openat(to, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		     st.st_mode & 07777);
	if (out < 0)
		return;
	if (write(out, buf, (size_t)n) != n || fchown(out, st.st_uid, st.st_gid) < 0)
		agent_log("root: /root/%s: %s", name, strerror(errno));
	close(out);
}

/**
 * root_home() - mount a tmpfs on ROOT_NEW/root, keeping the image's dotfiles
 *
 * Return: 0 or -errno.
 */
static int root_home(void)
{
	static char buf[SKEL_MAX_BYTES];
	int old, to, copied = 0;
	struct dirent *e;
	DIR *d;

	mkdir(ROOT_NEW "/root", 0700);	/* EROFS/EEXIST: use what is there */
	old = open(ROOT_NEW "/root", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mount("tmpfs", ROOT_NEW "/root", "tmpfs", MS_NOSUID | MS_NODEV,
		  "mode=700") < 0) {
		if (old >= 0)
			close(old);
		return -errno;
	}
	if (old < 0)
		return 0;
	to = open(ROOT_NEW "/root", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = to >= 0 ? fdopendir(old) : NULL;
	if (!d) {
		close(old);
		if (to >= 0)
			close(to);
		return 0;
	}
	while ((e = readdir(d)) && copied < SKEL_MAX_FILES) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		skel_copy_one(old, to, e->d_name, buf);
		copied++;
	}
	closedir(d);
	close(to);
	return 0;
}

/**
 * root_enter() - move the early mounts under ROOT_NEW and make it /
 *
 * Return: 0 or -errno.
 */
static int root_enter(void)
{
	static const char *const moved[] = { "/dev", "/proc", "/sys" };
	char dest[64];
	size_t i;

	for (i = 0; i < sizeof(moved) / sizeof(moved[0]); i++) {
		snprintf(dest, sizeof(dest), ROOT_NEW "%s", moved[i]);
		mkdir(dest, 0755);
		if (mount(moved[i], dest, NULL, MS_MOVE, NULL) < 0)
			return -errno;
	}
	if (chdir(ROOT_NEW) < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 ||
	    chroot(".") < 0 || chdir("/") < 0)
		return -errno;
	return 0;
}

/**
 * root_mount() - mount @req's device on ROOT_NEW, grow it, add /root
 * @req:	what to mount
 * @err:	message on failure
 * @len:	size of @err
 *
 * Return: 0 or -1.
 */
static int root_mount(const struct root_req *req, char *err, size_t len)
{
	unsigned long flags = MS_NOATIME | (req->ro ? MS_RDONLY : 0);
	int rc;

	mkdir(ROOT_NEW, 0755);
	if (!wait_device(req->dev)) {
		snprintf(err, len, "no root device %s", req->dev);
		return -1;
	}
	if (mount(req->dev, ROOT_NEW, "ext4", flags, "") < 0) {
		snprintf(err, len, "mount %s as ext4: %s", req->dev, strerror(errno));
		return -1;
	}
	if (req->grow && !req->ro && root_grow(req->dev, err, len) < 0)
		return -1;
	rc = root_home();
	if (rc < 0) {
		snprintf(err, len, "tmpfs on /root: %s", strerror(-rc));
		return -1;
	}
	return 0;
}

/**
 * root_switch() - switch to the root disk if the command line names one
 * @err:	empty on success or when there is no root disk, else the reason
 * @len:	size of @err
 *
 * Needs /proc and /dev mounted. Called once, as PID 1, before the rest of
 * the system is set up.
 */
void root_switch(char *err, size_t len)
{
	static char cmdline[CMDLINE_MAX + 1];
	struct root_req req;
	int rc;

	err[0] = '\0';
	rc = cmdline_read(cmdline);
	if (rc < 0) {
		snprintf(err, len, "/proc/cmdline: %s", strerror(-rc));
		return;
	}
	rc = root_parse(cmdline, &req);
	if (rc == 0)
		return;
	if (rc < 0) {
		snprintf(err, len, "malformed " ROOT_PARAM " on the command line");
		return;
	}
	if (root_mount(&req, err, len) < 0)
		return;
	rc = root_enter();
	if (rc < 0)
		snprintf(err, len, "switching to the root disk: %s", strerror(-rc));
}
