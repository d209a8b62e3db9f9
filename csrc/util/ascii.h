/* SPDX-License-Identifier: MIT */
/* ascii.h - byte classes and case folding shared by the parsers: ASCII
 * only, no locale, every byte value accepted */
#ifndef GONDOLIN_UTIL_ASCII_H
#define GONDOLIN_UTIL_ASCII_H

#include <stdbool.h>

/* A-Z folded to a-z, other bytes unchanged. */
static inline unsigned char ascii_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* ALPHA or DIGIT. */
static inline bool ascii_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Value of a hex digit (either case): 0..15, or -1. */
static inline int ascii_hex(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = ascii_lower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A host-name / DNS-label byte ([A-Za-z0-9_-]) folded to lower case, or 0. */
static inline char ascii_name_char(unsigned char c)
{
	return ascii_alnum(c) || c == '-' || c == '_' ? (char)ascii_lower(c) : 0;
}

#endif /* GONDOLIN_UTIL_ASCII_H */
