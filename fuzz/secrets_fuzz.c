/* SPDX-License-Identifier: MIT */
/* secrets_fuzz.c - libFuzzer target: substitution, Basic auth, masking */
#include <stdlib.h>
#include <string.h>
#include "policy/secrets.h"

static uint8_t out1[1 << 20], out2[1 << 20];

static void check_b64(const uint8_t *d, size_t n)
{
	static uint8_t dec[4096];
	static char enc[8192];
	int dl = secret_base64_decode((const char *)d, n, dec, sizeof(dec)), el;

	if (dl >= 0) {		/* strict: canonical text only */
		el = secret_base64_encode(dec, (size_t)dl, enc, sizeof(enc));
		if (el != (int)n || memcmp(enc, d, n))
			abort();
	}
	if (n <= 3000) {
		el = secret_base64_encode(d, n, enc, sizeof(enc));
		if (el < 0 || secret_base64_decode(enc, (size_t)el, dec, sizeof(dec)) != (int)n ||
		    memcmp(dec, d, n))
			abort();
	}
}

static void check_mask(const struct secret *sec, size_t ns, const uint8_t *d, size_t n, uint8_t seed)
{
	static struct secret_stream m;
	size_t l1 = 0, l2 = 0, pos = 0, c, took, prod, cap;
	int rc = secret_mask(sec, ns, d, n, out1, sizeof(out1), &l1);

	if (rc < 0)
		abort();
	secret_masker_init(&m, sec, ns);
	cap = SECRET_MASK_OUT_MIN + seed % 7;
	while (pos < n) {
		c = 1 + (d[pos] + seed) % 13;
		if (c > n - pos) c = n - pos;
		while (c > 0) {
			took = secret_stream_feed(&m, d + pos, c, out2 + l2, cap, &prod);
			l2 += prod;
			if (!took && !prod) abort();
			pos += took; c -= took;
		}
	}
	while (secret_stream_finish(&m, out2 + l2, cap, &prod))
		l2 += prod;
	l2 += prod;
	if (l1 != l2 || memcmp(out1, out2, l1) || m.count != (size_t)rc)
		abort();
}

/* Filling gives the same output, or the same denial, for any chunking. */
static void check_fill(const struct secret *sec, size_t ns, const struct hostpat_host *h,
		       const uint8_t *d, size_t n, uint8_t seed)
{
	static struct secret_stream m;
	size_t l[2] = { 0, 0 }, pos, c, took, prod;
	int denied[2], pass, rc;
	uint8_t *out[2] = { out1, out2 };

	for (pass = 0; pass < 2; pass++) {
		secret_filler_init(&m, sec, ns, h, 443);
		for (pos = 0; pos < n && m.denied < 0; pos += took) {
			c = pass ? 1 + (d[pos] + seed) % 17 : n - pos;
			if (c > n - pos) c = n - pos;
			if (l[pass] + c * 40 + SECRET_FILL_OUT_MIN > sizeof(out1))
				return;		/* the output might not fit: not this input */
			took = secret_stream_feed(&m, d + pos, c, out[pass] + l[pass],
						  SECRET_FILL_OUT_MIN + seed % 5, &prod);
			l[pass] += prod;
			if (!took && !prod && m.denied < 0) abort();
		}
		do {
			rc = secret_stream_finish(&m, out[pass] + l[pass], SECRET_FILL_OUT_MIN, &prod);
			l[pass] += prod;
		} while (rc == 1);
		denied[pass] = m.denied;
	}
	if (denied[0] != denied[1] || (denied[0] < 0 && (l[0] != l[1] || memcmp(out1, out2, l[0]))))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *names[3] = { "A", "B_2", "c" };
	static const char *hosts[3] = { "a.com", "*.b.com", "a.com:443" };
	struct secret sec[3];
	struct hostpat_host ha, hb;
	char ph[SECRET_PLACEHOLDER_MAX + 1];
	uint8_t rnd[SECRET_RANDOM_LEN];
	size_t ns = 0, pos, vl, ol;
	int k, which, pl;

	if (size < 4 || size > 60000)
		return 0;
	check_b64(data, size);
	pos = 1;
	for (k = 0; k < (data[0] & 3) && pos < size; k++) {
		vl = 1 + data[pos++] % 24;
		if (vl > size - pos) break;
		memset(rnd, k * 17 + 1, sizeof(rnd));
		pl = secret_placeholder(names[k], strlen(names[k]), rnd, sizeof(rnd), ph, sizeof(ph));
		if (pl < 0 || secret_init(&sec[ns], names[k], strlen(names[k]), data + pos, vl, ph, (size_t)pl, NULL))
			abort();
		hostpat_set_init(&sec[ns].hosts, 1, 0);
		if (hostpat_set_add(&sec[ns].hosts, hosts[k], strlen(hosts[k]), NULL))
			abort();
		sec[ns].in_query = data[0] & 4;
		sec[ns].in_body = (data[0] >> (3 + k)) & 1;
		ns++;
		pos += vl;
	}
	hostpat_host_parse("a.com", 5, &ha, NULL);
	hostpat_host_parse("x.b.com", 7, &hb, NULL);
	secret_substitute(sec, ns, &ha, 443, (const char *)data + pos, size - pos, (char *)out1, 65536, &ol, &which);
	secret_substitute(sec, ns, &hb, 80, (const char *)data + pos, size - pos, (char *)out1, 100, &ol, &which);
	secret_basic_substitute(sec, ns, &ha, 443, (const char *)data + pos, size - pos, (char *)out1, 65536, &ol, &which);
	secret_basic_substitute(sec, ns, &hb, 443, (const char *)data + pos, size - pos, (char *)out1, 50, &ol, &which);
	for (k = 0; k < (int)ns; k++) {	/* a placeholder in Basic credentials */
		static uint8_t cred[600];
		static char hdr[1000];
		size_t cl = sec[k].placeholder_len;
		int el;

		memcpy(cred, "u:", 2);
		memcpy(cred + 2, sec[k].placeholder, cl);
		memcpy(hdr, "Basic ", 6);
		el = secret_base64_encode(cred, cl + 2, hdr + 6, sizeof(hdr) - 6);
		which = -1;
		if (secret_basic_substitute(sec, ns, &ha, 443, hdr, 6 + (size_t)el, (char *)out1, 65536, &ol, &which) < 0
		    && k != 1 && which == k)
			abort();	/* its own placeholder toward an allowed host */
	}
	secret_target_substitute(sec, ns, &ha, 443, (const char *)data + pos, size - pos, (char *)out1, 65536, &ol, &which);
	secret_target_substitute(sec, ns, &hb, 80, (const char *)data + pos, size - pos, (char *)out1, 64, &ol, &which);
	check_mask(sec, ns, data + pos, size - pos, data[0]);
	check_fill(sec, ns, &ha, data + pos, size - pos, data[0]);
	check_fill(sec, ns, &hb, data + pos, size - pos, data[0]);
	if (ns) {			/* bodies with placeholders spliced in */
		static uint8_t sp[16384];
		size_t sl = 0, i;

		for (i = pos; i < size && sl + SECRET_PLACEHOLDER_MAX < sizeof(sp); i++) {
			if (data[i] % 11 == 0) {
				k = data[i] % (int)ns;
				memcpy(sp + sl, sec[k].placeholder, sec[k].placeholder_len);
				sl += sec[k].placeholder_len;
			} else {
				sp[sl++] = data[i];
			}
		}
		check_fill(sec, ns, &ha, sp, sl, data[0]);
		check_fill(sec, ns, &hb, sp, sl, data[0]);
	}
	while (ns)
		secret_free(&sec[--ns]);
	return 0;
}
