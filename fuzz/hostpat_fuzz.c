/* SPDX-License-Identifier: MIT */
/* hostpat_fuzz.c - libFuzzer target: host pattern compilation and matching */

/*
 * The input is lines: patterns up to the first empty line, then hosts,
 * each host line's first byte choosing its port. Checks:
 *  - a compiled pattern prints to text that compiles to the same pattern;
 *  - every pattern's verdict on every valid host equals a model written
 *    against the raw host text (case-insensitive compare, IP literals
 *    compared as addresses), and the set returns the first such pattern;
 *  - verdicts do not change with the host's case or a trailing dot;
 *  - an exceptions set only ever holds exact host:port patterns.
 */

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/hostpat.h"

#define SET_MAX		64
#define LINE_MAX_LEN	300

/**
 * same_pattern() - field-wise equality of two compiled patterns
 * @a: pattern
 * @b: pattern
 *
 * Return: true when equal.
 */
static bool same_pattern(const struct hostpat *a, const struct hostpat *b)
{
	return a->wildcard == b->wildcard && a->port == b->port &&
	       a->host.kind == b->host.kind && a->host.len == b->host.len &&
	       memcmp(a->host.name, b->host.name, a->host.len) == 0 &&
	       (a->host.kind == HOSTPAT_NAME || ipaddr_equal(&a->host.ip, &b->host.ip));
}

/**
 * check_reparse() - the printed pattern compiles back to itself
 * @p: compiled pattern
 * @flags: flags it was compiled with
 */
static void check_reparse(const struct hostpat *p, unsigned flags)
{
	char t[HOSTPAT_TEXT_MAX + 1], t2[HOSTPAT_TEXT_MAX + 1];
	struct hostpat q;
	int len = hostpat_format(p, t, sizeof(t));

	if (len <= 0 || hostpat_parse(t, (size_t)len, flags, &q, NULL) != 0 ||
	    !same_pattern(p, &q))
		abort();
	if (hostpat_format(&q, t2, sizeof(t2)) != len || memcmp(t, t2, (size_t)len))
		abort();
	if ((flags & HOSTPAT_F_EXACT) && (p->wildcard || !p->port))
		abort();
}

/**
 * model_match() - reference verdict of one pattern on raw host text
 * @p: pattern
 * @host: raw host text of a valid host
 * @n: its length
 * @port: port
 *
 * Return: true when @p should match.
 */
static bool model_match(const struct hostpat *p, const char *host, size_t n,
			unsigned port)
{
	const char *pt = p->host.name;
	size_t pl = p->host.len;
	struct ipaddr ha;

	if (p->port && p->port != port)
		return false;
	if (p->host.kind != HOSTPAT_NAME)
		return ipaddr_parse(host, n, &ha) >= 0 && ipaddr_equal(&ha, &p->host.ip);
	if (memchr(host, ':', n) || memchr(host, '[', n))
		return false;
	if (n > 0 && host[n - 1] == '.')
		n--;
	if (!p->wildcard)
		return n == pl && strncasecmp(host, pt, n) == 0;
	return n > pl + 1 && host[n - pl - 1] == '.' &&
	       strncasecmp(host + n - pl, pt, pl) == 0;
}

/**
 * check_host() - one host against the set and the model
 * @s: set
 * @host: raw host text
 * @n: its length
 * @port: port
 */
static void check_host(const struct hostpat_set *s, const char *host, size_t n,
		       unsigned port)
{
	char alt[LINE_MAX_LEN + 2];
	struct hostpat_host h;
	int first = -1;
	size_t i;

	if (hostpat_host_parse(host, n, &h, NULL) < 0) {
		if (hostpat_set_match_str(s, host, n, port) != -1)
			abort();
		return;
	}
	for (i = 0; i < s->n; i++) {
		bool m = hostpat_match(&s->pat[i], &h, port);

		if (m != model_match(&s->pat[i], host, n, port))
			abort();
		if (m && first < 0)
			first = (int)i;
	}
	if (hostpat_set_match(s, &h, port) != first)
		abort();
	for (i = 0; i < n; i++)
		alt[i] = (char)(host[i] >= 'a' && host[i] <= 'z' ? host[i] - 32 : host[i]);
	if (hostpat_set_match_str(s, alt, n, port) != first)
		abort();
	if (h.kind == HOSTPAT_NAME && host[n - 1] != '.') {
		alt[n] = '.';
		if (hostpat_set_match_str(s, alt, n + 1, port) != first)
			abort();
	}
}

/**
 * next_line() - split off one line
 * @p: cursor (advanced)
 * @end: end of input
 * @len: line length out
 *
 * Return: the line start.
 */
static const char *next_line(const char **p, const char *end, size_t *len)
{
	const char *s = *p, *nl = memchr(s, '\n', (size_t)(end - s));

	*len = (size_t)((nl ? nl : end) - s);
	*p = nl ? nl + 1 : end;
	return s;
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
	const char *p = (const char *)data, *end = p + size, *line;
	struct hostpat_set set, exc;
	unsigned port;
	size_t len;

	if (hostpat_set_init(&set, SET_MAX, 0) || hostpat_set_init(&exc, SET_MAX, HOSTPAT_F_EXCEPTIONS))
		abort();
	while (p < end) {
		line = next_line(&p, end, &len);
		if (len == 0)
			break;
		if (hostpat_set_add(&set, line, len, NULL) == 0)
			check_reparse(&set.pat[set.n - 1], 0);
		if (hostpat_set_add(&exc, line, len, NULL) == 0)
			check_reparse(&exc.pat[exc.n - 1], HOSTPAT_F_EXCEPTIONS);
	}
	while (p < end) {
		line = next_line(&p, end, &len);
		if (len == 0 || len > LINE_MAX_LEN)
			continue;
		port = (unsigned)(uint8_t)line[0] * 257u % 65536u;
		check_host(&set, line + 1, len - 1, port);
		check_host(&set, line + 1, len - 1, 443);
		check_host(&exc, line + 1, len - 1, port);
	}
	hostpat_set_free(&set);
	hostpat_set_free(&exc);
	hostpat_set_free(&set);
	return 0;
}
