/* SPDX-License-Identifier: MIT */
/* ipaddr_fuzz.c - libFuzzer target: IP literal parsing, canonical text, ranges */

/*
 * The input is one host text. Checks:
 *  - a parsed address prints canonically, and the text parses back to the
 *    same address, prints identically and has the same blocked verdict;
 *  - libc agrees: inet_pton(AF_INET6) accepts exactly the IPv6 literals we
 *    accept (same bytes), and inet_aton and we accept the same IPv4 texts
 *    outside the documented differences (we also take one trailing dot and
 *    an empty "0x" part; inet_aton also takes trailing whitespace + junk
 *    and texts over IPADDR_TEXT_MAX, e.g. long runs of leading zeros,
 *    which are invalid hosts to us, hence denied);
 *  - the key property: a host hostpat_host_parse() calls a name is never
 *    read as a number by inet_aton or inet_pton, so the resolver cannot
 *    turn a "name" into an address we did not check.
 */

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "policy/hostpat.h"
#include "policy/ipaddr.h"

#define TEXT_MAX	300

/**
 * has_byte_in() - whether any byte of @s is in @set
 * @s: text
 * @n: its length
 * @set: NUL-terminated set (NUL itself is always included)
 *
 * Return: true when one is.
 */
static bool has_byte_in(const char *s, size_t n, const char *set)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] == '\0' || strchr(set, s[i]))
			return true;
	return false;
}

/**
 * empty_hex_part() - whether some dot-separated part is a bare "0x"
 * @s: text
 * @n: its length
 *
 * Return: true when one is (we read it as 0, glibc refuses it).
 */
static bool empty_hex_part(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n; i++)
		if ((i == 0 || s[i - 1] == '.') && s[i] == '0' &&
		    (s[i + 1] == 'x' || s[i + 1] == 'X') &&
		    (i + 2 == n || s[i + 2] == '.'))
			return true;
	return false;
}

/**
 * check_round_trip() - canonical text parses back to the same address
 * @a: parsed address
 * @fam: its family
 */
static void check_round_trip(const struct ipaddr *a, int fam)
{
	char t1[IPADDR_STRLEN], t2[IPADDR_STRLEN];
	struct ipaddr b;
	int len;

	len = ipaddr_format(a, t1, sizeof(t1));
	if (len <= 0 || ipaddr_format(a, t1, (size_t)len) != -1)
		abort();		/* must refuse a buffer without room for NUL */
	if (ipaddr_parse(t1, (size_t)len, &b) != fam || !ipaddr_equal(a, &b))
		abort();
	if (ipaddr_format(&b, t2, sizeof(t2)) != len || strcmp(t1, t2) != 0)
		abort();
	if (ipaddr_blocked(a) != ipaddr_blocked(&b))
		abort();
}

/**
 * check_libc_v6() - inet_pton(AF_INET6) agrees with ipaddr_parse_v6()
 * @s: NUL-terminated copy of the input
 * @n: its length
 */
static void check_libc_v6(const char *s, size_t n)
{
	struct ipaddr a;
	uint8_t b[16];
	int ours = ipaddr_parse_v6(s, n, &a), libc = inet_pton(AF_INET6, s, b);

	if ((ours >= 0) != (libc == 1))
		abort();
	if (ours >= 0 && memcmp(a.b, b, 16) != 0)
		abort();
}

/**
 * check_libc_v4() - inet_aton agrees with ipaddr_parse_v4()
 * @s: NUL-terminated copy of the input
 * @n: its length
 */
static void check_libc_v4(const char *s, size_t n)
{
	struct in_addr in;
	struct ipaddr a;
	int ours = ipaddr_parse_v4(s, n, &a), libc = inet_aton(s, &in);
	bool ours_only = (n > 0 && s[n - 1] == '.') || empty_hex_part(s, n);
	bool libc_only = has_byte_in(s, n, " \t\n\v\f\r") || n > IPADDR_TEXT_MAX;

	if (ours >= 0 && !ours_only && (libc != 1 || memcmp(a.b, &in, 4) != 0))
		abort();
	if (libc == 1 && !libc_only && (ours < 0 || memcmp(a.b, &in, 4) != 0))
		abort();
}

/**
 * check_host() - names are never numeric to libc; literals are canonical
 * @s: NUL-terminated copy of the input
 * @n: its length
 */
static void check_host(const char *s, size_t n)
{
	struct hostpat_host h;
	struct in_addr in;
	char t[IPADDR_STRLEN];
	uint8_t b[16];
	int kind = hostpat_host_parse(s, n, &h, NULL);

	if (kind == HOSTPAT_NAME) {
		if (inet_aton(h.name, &in) || inet_pton(AF_INET6, h.name, b) == 1 ||
		    inet_aton(s, &in) || strlen(h.name) != h.len)
			abort();
	} else if (kind > 0) {
		if (ipaddr_format(&h.ip, t, sizeof(t)) != (int)h.len ||
		    strcmp(t, h.name) != 0)
			abort();
	}
}

/**
 * LLVMFuzzerTestOneInput() - libFuzzer entry
 * @data: input
 * @size: input length
 *
 * Return: 0.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char s[TEXT_MAX + 1];
	struct ipaddr a;
	int fam;

	if (size > TEXT_MAX)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	fam = ipaddr_parse(s, size, &a);
	if (fam >= 0)
		check_round_trip(&a, fam);
	if (!has_byte_in(s, size, "")) {
		if (!memchr(s, '[', size))
			check_libc_v6(s, size);
		check_libc_v4(s, size);
		check_host(s, size);
	}
	return 0;
}
