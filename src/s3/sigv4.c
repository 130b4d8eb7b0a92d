#include "sigv4.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

struct sigv4_encoded {
	char *name;
	char *value;
};

void sigv4_hex(const unsigned char *bytes, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[bytes[i] >> 4];
		out[2 * i + 1] = digits[bytes[i] & 15];
	}
	out[2 * len] = '\0';
}

void sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[SHA256_DIGEST_LENGTH];

	SHA256(data, len, md);
	sigv4_hex(md, sizeof md, out);
}

void sigv4_amz_date(time_t t, char out[17])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

void sigv4_uri_encode(struct strbuf *out, const char *s, size_t len, int keep_slash)
{
	static const char digits[] = "0123456789ABCDEF";

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/')) {
			strbuf_addch(out, (char)c);
			continue;
		}
		strbuf_addch(out, '%');
		strbuf_addch(out, digits[c >> 4]);
		strbuf_addch(out, digits[c & 15]);
	}
}

static int sigv4_encoded_cmp(const void *a, const void *b)
{
	const struct sigv4_encoded *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->value, y->value);
}

static void sigv4_canonical_query(struct strbuf *out, const struct sigv4_request *req)
{
	struct sigv4_encoded *enc = xcalloc(req->nquery ? req->nquery : 1, sizeof *enc);

	for (size_t i = 0; i < req->nquery; i++) {
		struct strbuf n = STRBUF_INIT, v = STRBUF_INIT;
		const char *value = req->query[i].value ? req->query[i].value : "";

		sigv4_uri_encode(&n, req->query[i].name, strlen(req->query[i].name), 0);
		sigv4_uri_encode(&v, value, strlen(value), 0);
		enc[i].name = strbuf_take(&n);
		enc[i].value = strbuf_take(&v);
	}
	qsort(enc, req->nquery, sizeof *enc, sigv4_encoded_cmp);
	for (size_t i = 0; i < req->nquery; i++) {
		strbuf_addf(out, "%s%s=%s", i ? "&" : "", enc[i].name, enc[i].value);
		free(enc[i].name);
		free(enc[i].value);
	}
	free(enc);
}

/* Lower-case name; value trimmed with inner runs of spaces collapsed to one. */
static void sigv4_header_canonical(const struct sigv4_pair *h, struct sigv4_encoded *out)
{
	struct strbuf v = STRBUF_INIT;
	const char *p = h->value ? h->value : "";
	char *name = xstrdup(h->name);

	for (char *c = name; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	while (*p == ' ' || *p == '\t')
		p++;
	for (; *p; p++) {
		if ((*p == ' ' || *p == '\t') && (p[1] == ' ' || p[1] == '\t' || p[1] == '\0'))
			continue;
		strbuf_addch(&v, *p == '\t' ? ' ' : *p);
	}
	out->name = name;
	out->value = strbuf_take(&v);
}

static int sigv4_name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct sigv4_encoded *)a)->name, ((const struct sigv4_encoded *)b)->name);
}

/* Appends the canonical headers block and fills signed with "host;x-amz-date". Repeated
 * names are joined with commas, in the order given. */
static void sigv4_canonical_headers(struct strbuf *out, struct strbuf *signed_names,
				    const struct sigv4_request *req)
{
	struct sigv4_encoded *hs = xcalloc(req->nheaders ? req->nheaders : 1, sizeof *hs);
	size_t n = req->nheaders;

	for (size_t i = 0; i < n; i++)
		sigv4_header_canonical(&req->headers[i], &hs[i]);
	/* qsort is not stable; repeated names keep their order through a merge below. */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && sigv4_name_cmp(&hs[j - 1], &hs[j]) > 0; j--) {
			struct sigv4_encoded t = hs[j];

			hs[j] = hs[j - 1];
			hs[j - 1] = t;
		}
	for (size_t i = 0; i < n; i++) {
		int same = i > 0 && strcmp(hs[i - 1].name, hs[i].name) == 0;

		if (same) {
			strbuf_addf(out, ",%s", hs[i].value);
		} else {
			if (i > 0)
				strbuf_addch(out, '\n');
			strbuf_addf(out, "%s:%s", hs[i].name, hs[i].value);
			strbuf_addf(signed_names, "%s%s", signed_names->len ? ";" : "", hs[i].name);
		}
	}
	strbuf_addch(out, '\n');
	for (size_t i = 0; i < n; i++) {
		free(hs[i].name);
		free(hs[i].value);
	}
	free(hs);
}

static void sigv4_hmac(const void *key, size_t keylen, const char *data, unsigned char out[32])
{
	unsigned char md[32];
	unsigned int len = sizeof md;

	/* out may be the key itself. */
	HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)data, strlen(data), md, &len);
	memcpy(out, md, sizeof md);
	OPENSSL_cleanse(md, sizeof md);
}

static int sigv4_date_valid(const char *d)
{
	if (!d || strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z')
		return 0;
	for (int i = 0; i < 15; i++)
		if (i != 8 && !isdigit((unsigned char)d[i]))
			return 0;
	return 1;
}

int sigv4_sign(const struct sigv4_request *req, struct sigv4_signature *out)
{
	struct strbuf cr = STRBUF_INIT, sts = STRBUF_INIT, signed_names = STRBUF_INIT;
	struct strbuf key = STRBUF_INIT, auth = STRBUF_INIT;
	unsigned char k[32], sig[32];
	char date[9], cr_hash[65];

	memset(out, 0, sizeof *out);
	if (!req->method || !req->path || !req->payload_sha256 || !req->region || !req->service ||
	    !req->access_key || !req->secret_key || !sigv4_date_valid(req->amz_date))
		return -1;
	memcpy(date, req->amz_date, 8);
	date[8] = '\0';

	strbuf_addf(&cr, "%s\n", req->method);
	sigv4_uri_encode(&cr, req->path, strlen(req->path), 1);
	strbuf_addch(&cr, '\n');
	sigv4_canonical_query(&cr, req);
	strbuf_addch(&cr, '\n');
	sigv4_canonical_headers(&cr, &signed_names, req);
	strbuf_addf(&cr, "\n%s\n%s", signed_names.buf ? signed_names.buf : "", req->payload_sha256);
	sigv4_sha256_hex(cr.buf, cr.len, cr_hash);

	strbuf_addf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", req->amz_date, date,
		    req->region, req->service, cr_hash);

	strbuf_addf(&key, "AWS4%s", req->secret_key);
	sigv4_hmac(key.buf, key.len, date, k);
	OPENSSL_cleanse(key.buf, key.len);
	strbuf_release(&key);
	sigv4_hmac(k, sizeof k, req->region, k);
	sigv4_hmac(k, sizeof k, req->service, k);
	sigv4_hmac(k, sizeof k, "aws4_request", k);
	sigv4_hmac(k, sizeof k, sts.buf, sig);
	OPENSSL_cleanse(k, sizeof k);
	sigv4_hex(sig, sizeof sig, out->signature);

	strbuf_addf(&auth, "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, Signature=%s",
		    req->access_key, date, req->region, req->service,
		    signed_names.buf ? signed_names.buf : "", out->signature);
	strbuf_release(&signed_names);
	out->canonical_request = strbuf_take(&cr);
	out->string_to_sign = strbuf_take(&sts);
	out->authorization = strbuf_take(&auth);
	return 0;
}

void sigv4_signature_free(struct sigv4_signature *sig)
{
	free(sig->canonical_request);
	free(sig->string_to_sign);
	free(sig->authorization);
	memset(sig, 0, sizeof *sig);
}
