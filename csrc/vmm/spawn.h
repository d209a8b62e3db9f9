/* SPDX-License-Identifier: MIT */
/* spawn.h - start a child (QEMU) that cannot outlive us, with chosen fds */
#ifndef GONDOLIN_VMM_SPAWN_H
#define GONDOLIN_VMM_SPAWN_H

#include <sys/resource.h>
#include <sys/types.h>

#define SPAWN_MAX_FDS	16	/* descriptors a child may inherit */
#define SPAWN_MAX_ARGS	256
#define SPAWN_MAX_GROUPS	8	/* supplementary groups kept after a drop */
#define SPAWN_MAX_ENV	64	/* environment entries, when one is given */

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
 * struct spawn_limits - resource limits set in the child before exec
 * @as:		RLIMIT_AS in bytes; 0 leaves it as inherited
 * @nofile:	RLIMIT_NOFILE; 0 leaves it
 * @nproc:	RLIMIT_NPROC (counts every task of the child's real uid); 0 leaves it
 *
 * RLIMIT_CORE is always 0: a QEMU core dump would hold guest memory.
 */
struct spawn_limits {
	rlim_t as;
	rlim_t nofile;
	rlim_t nproc;
};

/**
 * struct spawn_cred - the identity the child drops to before exec
 * @drop:	0: keep ours; 1: setgroups, setresgid, setresuid to these
 * @uid:	user id, never 0 when @drop is set
 * @gid:	group id
 * @groups:	supplementary groups (e.g. kvm, for /dev/kvm)
 * @ngroups:	entries in @groups
 */
struct spawn_cred {
	int drop;
	uid_t uid;
	gid_t gid;
	gid_t groups[SPAWN_MAX_GROUPS];
	int ngroups;
};

/**
 * struct spawn_req - what to start
 * @argv:	NULL-terminated argument vector; argv[0] is searched in PATH
 * @envp:	NULL-terminated environment, or NULL to inherit ours
 * @fds:	descriptors the child gets; 0, 1 and 2 default to /dev/null
 * @nfds:	entries in @fds
 * @limits:	rlimits for the child
 * @cred:	identity for the child
 *
 * The child always runs with no_new_privs set.
 */
struct spawn_req {
	char *const *argv;
	char *const *envp;
	const struct spawn_fd *fds;
	int nfds;
	struct spawn_limits limits;
	struct spawn_cred cred;
};

/* the step a failed spawn stopped at (spawn_stage_name() spells it) */
enum spawn_stage {
	SPAWN_STAGE_SETUP,	/* pipe, fork, fds */
	SPAWN_STAGE_NNP,
	SPAWN_STAGE_RLIMIT,
	SPAWN_STAGE_GROUPS,
	SPAWN_STAGE_GID,
	SPAWN_STAGE_UID,
	SPAWN_STAGE_EXEC,
	SPAWN_STAGE_COUNT
};

int spawn_child(const struct spawn_req *req, pid_t *pid, int *pidfd, int *stage);
const char *spawn_stage_name(int stage);

#endif /* GONDOLIN_VMM_SPAWN_H */
