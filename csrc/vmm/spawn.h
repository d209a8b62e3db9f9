/* SPDX-License-Identifier: MIT */
/* spawn.h - start a child (QEMU) that cannot outlive us, with chosen fds */
#ifndef GONDOLIN_VMM_SPAWN_H
#define GONDOLIN_VMM_SPAWN_H

#include <sys/types.h>

#define SPAWN_MAX_FDS	16	/* descriptors a child may inherit */
#define SPAWN_MAX_ARGS	256

/**
 * struct spawn_fd - one descriptor to hand to the child
 * @target:	descriptor number in the child
 * @source:	our descriptor; -1 means /dev/null
 */
struct spawn_fd {
	int target;
	int source;
};

/**
 * struct spawn_req - what to start
 * @argv:	NULL-terminated argument vector; argv[0] is searched in PATH
 * @fds:	descriptors the child gets; 0, 1 and 2 default to /dev/null
 * @nfds:	entries in @fds
 */
struct spawn_req {
	char *const *argv;
	const struct spawn_fd *fds;
	int nfds;
};

int spawn_child(const struct spawn_req *req, pid_t *pid, int *pidfd);

#endif /* GONDOLIN_VMM_SPAWN_H */
