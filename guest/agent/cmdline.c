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

/**
 * b64_value() - value of a standard base64 character
 * @c:		character
 *
 * Return: 0..63, or -1.
 */
static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	return c == '/' ? 63 : -1;
}

/**
 * cmdline_b64_decode() - decode a standard base64 parameter value
 * @in:		characters (padding optional, nothing else allowed)
 * @n:		their count
 * @out:	decoded bytes
 * @cap:	room at @out
 *
 * Return: bytes decoded, or -1 when malformed or too long for @cap.
 */
int cmdline_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
	uint32_t acc = 0;
	size_t i, len = 0;
	unsigned int bits = 0;
	int v;

	while (n > 0 && in[n - 1] == '=')
		n--;
	for (i = 0; i < n; i++) {
		v = b64_value((unsigned char)in[i]);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (len == cap)
				return -1;
			out[len++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	return n % 4 == 1 ? -1 : (int)len;
}
