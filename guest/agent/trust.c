/* SPDX-License-Identifier: MIT */
/* trust.c - install the host's interception CA into the guest trust store */

/*
 * The host intercepts TLS with leaves signed by a per-user CA; guest
 * clients must trust it. The host puts the CA certificate (never its key)
 * on the kernel command line as gondolin.ca=<base64 DER>, the body of its
 * PEM. We write it to TRUST_CA, and TRUST_BUNDLE = the image's system
 * bundle + the CA, bind-mounted over the system bundle so that tools with
 * a compiled-in path (curl, git, python's ssl, apt) see it too. The bind
 * mount works on a read-only root and never reaches the disk, so a
 * checkpoint never captures a CA that may later be rotated. Exec sessions
 * get the usual variables pointing at TRUST_CA (spawn.c says why).
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"

#define CA_PARAM	"gondolin.ca="
#define CA_B64_MAX	3072		/* a P-256 or RSA-2048 CA fits well within */
#define SYSTEM_BUNDLE	"/etc/ssl/certs/ca-certificates.crt"
#define COPY_CHUNK	8192

/**
 * ca_b64_ok() - a value that decodes as base64, of sane length
 * @v:		value
 * @n:		its length
 */
static bool ca_b64_ok(const char *v, size_t n)
{
	uint8_t der[CA_B64_MAX / 4 * 3];

	return n > 0 && n <= CA_B64_MAX && cmdline_b64_decode(v, n, der, sizeof(der)) > 0;
}

/**
 * write_pem() - the certificate as PEM, 64 characters a line
 * @fd:		open file
 * @v:		base64 body
 * @n:		its length
 *
 * Return: 0 or -1.
 */
static int write_pem(int fd, const char *v, size_t n)
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----\n";
	static const char end[] = "-----END CERTIFICATE-----\n";
	size_t off, k;

	if (write(fd, begin, sizeof(begin) - 1) != (ssize_t)(sizeof(begin) - 1))
		return -1;
	for (off = 0; off < n; off += k) {
		k = n - off < 64 ? n - off : 64;
		if (write(fd, v + off, k) != (ssize_t)k || write(fd, "\n", 1) != 1)
			return -1;
	}
	if (write(fd, end, sizeof(end) - 1) != (ssize_t)(sizeof(end) - 1))
		return -1;
	return 0;
}

/**
 * copy_file() - append @path to @fd (absent: nothing), newline-terminated
 * @fd:		destination
 * @path:	source
 *
 * Return: 1 when copied, 0 when absent, -1 on error.
 */
static int copy_file(int fd, const char *path)
{
	char buf[COPY_CHUNK];
	ssize_t n = 0, last = 0;
	int in = open(path, O_RDONLY | O_CLOEXEC);

	if (in < 0)
		return errno == ENOENT ? 0 : -1;
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		if (write(fd, buf, (size_t)n) != n)
			break;
		last = n;
	}
	close(in);
	if (n != 0)
		return -1;
	if (last && buf[last - 1] != '\n' && write(fd, "\n", 1) != 1)
		return -1;
	return 1;
}

/**
 * write_file() - create @path (0644) with the CA, after @base if given
 * @path:	file to create
 * @base:	bundle to start from, or NULL
 * @v, @n:	base64 body of the CA
 *
 * Return: 1 when @base existed, 0 when not, -1 on error.
 */
static int write_file(const char *path, const char *base, const char *v, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int had = 0;

	if (fd < 0)
		return -1;
	if (base)
		had = copy_file(fd, base);
	if (had < 0 || write_pem(fd, v, n) < 0) {
		close(fd);
		return -1;
	}
	return close(fd) < 0 ? -1 : had;
}

/**
 * trust_install() - install the CA named on the command line, if any
 *
 * Needs /proc and a writable /run. Failures are logged: the guest still
 * boots, and TLS clients then report an unknown issuer.
 */
void trust_install(void)
{
	static char cmdline[CMDLINE_MAX + 1];
	const char *v;
	size_t n;
	int had;

	if (cmdline_read(cmdline) < 0)
		return;
	v = cmdline_param(cmdline, CA_PARAM, &n);
	if (!v)
		return;
	if (!ca_b64_ok(v, n)) {
		agent_log("trust: malformed " CA_PARAM);
		return;
	}
	mkdir("/run/gondolin", 0755);
	if (write_file(TRUST_CA, NULL, v, n) < 0 ||
	    (had = write_file(TRUST_BUNDLE, SYSTEM_BUNDLE, v, n)) < 0) {
		agent_log("trust: %s", strerror(errno));
		return;
	}
	if (had && mount(TRUST_BUNDLE, SYSTEM_BUNDLE, NULL, MS_BIND, NULL) < 0)
		agent_log("trust: bind %s: %s", SYSTEM_BUNDLE, strerror(errno));
}
