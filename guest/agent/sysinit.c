/* SPDX-License-Identifier: MIT */
/* sysinit.c - what the agent does first when it is the guest's PID 1
 *
 * The kernel runs the agent as /init straight from the initramfs. Setting up
 * the system here, with plain syscalls, instead of in a shell script saves a
 * fork+exec of busybox per step, which under TCG is milliseconds each and
 * adds up to a noticeable part of boot time (see docs/performance.md).
 *
 * Steps, in order: /proc, /sys and /dev; the kernel modules listed in
 * /lib/modules/load (only images built for a stock kernel have it); the
 * root disk, when the command line names one (root.c); the other pseudo
 * and tmpfs mounts, in the final root; /dev/ptmx; hostname; loopback up; a
 * DHCP lease for eth0 from the host (dhcp.c). Each failure is logged and
 * skipped (a missing /run is no reason to refuse exec requests), except a
 * root disk that cannot be used: that is reported in HELLO.
 */

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent.h"

#define MODULE_LIST	"/lib/modules/load"
#define MODULE_LIST_MAX	(16 * 1024)

struct sysinit_mount {
	const char *src, *dir, *type;
	unsigned long flags;
	const char *data;
};

/* Before the root switch: what finding and mounting the disk needs. */
static const struct sysinit_mount sysinit_early[] = {
	{ "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
	{ "sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
	{ "devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=755" },
};

/* After it, in the final root. */
static const struct sysinit_mount sysinit_late[] = {
	{ "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
	  "gid=5,mode=620,ptmxmode=666" },
	{ "tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777" },
	{ "tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777" },
	{ "tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755" },
};

/**
 * sysinit_mount_list() - mount each entry of a table
 * @m:		entries
 * @n:		number of entries
 */
static void sysinit_mount_list(const struct sysinit_mount *m, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		mkdir(m[i].dir, 0755);
		if (mount(m[i].src, m[i].dir, m[i].type, m[i].flags, m[i].data) < 0 &&
		    errno != EBUSY)
			agent_log("sysinit: mount %s: %s", m[i].dir, strerror(errno));
	}
}

#define MOUNT_LIST(t_)	sysinit_mount_list((t_), sizeof(t_) / sizeof((t_)[0]))

/**
 * sysinit_late_mounts() - devpts, shm and tmpfs mounts; /dev/ptmx; /root
 */
static void sysinit_late_mounts(void)
{
	MOUNT_LIST(sysinit_late);
	if (access("/dev/ptmx", F_OK) < 0 && symlink("pts/ptmx", "/dev/ptmx") < 0)
		agent_log("sysinit: /dev/ptmx: %s", strerror(errno));
	mkdir("/root", 0700);
}

/**
 * sysinit_loopback() - bring lo up (127.0.0.1 is configured by the kernel)
 */
static void sysinit_loopback(void)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		return;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			agent_log("sysinit: lo up: %s", strerror(errno));
	}
	close(s);
}

/**
 * sysinit_modules() - load each module named in MODULE_LIST, in order
 */
static void sysinit_modules(void)
{
	static char list[MODULE_LIST_MAX + 1];
	char *line, *save = NULL;
	ssize_t n;
	int fd;

	fd = open(MODULE_LIST, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, list, MODULE_LIST_MAX);
	close(fd);
	if (n <= 0)
		return;
	list[n] = '\0';
	for (line = strtok_r(list, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		int mfd = open(line, O_RDONLY | O_CLOEXEC);

		if (mfd < 0 || syscall(SYS_finit_module, mfd, "", 0) < 0) {
			if (errno != EEXIST)
				agent_log("sysinit: module %s: %s", line, strerror(errno));
		}
		if (mfd >= 0)
			close(mfd);
	}
}

/**
 * agent_sysinit() - prepare the guest system; called once as PID 1
 * @a:		agent (boot_error set when the root disk cannot be used)
 */
void agent_sysinit(struct agent *a)
{
	MOUNT_LIST(sysinit_early);
	sysinit_modules();
	root_switch(a->boot_error, sizeof(a->boot_error));
	if (a->boot_error[0])
		agent_log("root: %s", a->boot_error);
	sysinit_late_mounts();
	trust_install();
	if (sethostname("gondolin", 8) < 0)
		agent_log("sysinit: hostname: %s", strerror(errno));
	sysinit_loopback();
	agent_dhcp();
}
