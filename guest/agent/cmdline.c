/* SPDX-License-Identifier: MIT */
/* cmdline.c - the kernel command line: what the host tells init at boot */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"

/**
 * cmdline_read() - /proc/cmdline into @buf
 * @buf:	CMDLINE_MAX + 1 bytes
 *
 * Return: 0 or -errno.
 */
int cmdline_read(char *buf)
{
	ssize_t n;
	int fd;

	fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, CMDLINE_MAX);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

/**
 * cmdline_param() - the value of "@name" at the start of a word
 * @cmdline:	NUL-terminated command line
 * @name:	parameter with its '=', e.g. "gondolin.root="
 * @len:	set to the value's length (up to a space, newline or the end);
 *		may be NULL
 *
 * Return: the value, or NULL when the parameter is absent.
 */
const char *cmdline_param(const char *cmdline, const char *name, size_t *len)
{
	const char *p = cmdline;

	for (;;) {
		p = strstr(p, name);
		if (!p)
			return NULL;
		if (p == cmdline || p[-1] == ' ')
			break;
		p++;
	}
	p += strlen(name);
	if (len)
		*len = strcspn(p, " \n");
	return p;
}
