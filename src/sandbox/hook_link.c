#include "hook_link.h"
#include "http_retry.h"
#include "strbuf.h"

#include <errno.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int write_all(int fd, const char *p, size_t n, long deadline_ms)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd pfd = { fd, POLLOUT, 0 };
			long left = deadline_ms ? deadline_ms - http_retry_now_ms() : 1000;

			if (left <= 0) {
				errno = ETIMEDOUT;
				return -1;
			}
			poll(&pfd, 1, (int)(left > 1000 ? 1000 : left));
			continue;
		}
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int hook_link_send(int fd, const cJSON *msg, long deadline_ms)
{
	char *text = cJSON_PrintUnformatted(msg);
	size_t n = text ? strlen(text) : 0;
	unsigned char head[4] = { (unsigned char)(n >> 24), (unsigned char)(n >> 16),
				  (unsigned char)(n >> 8), (unsigned char)n };
	int rc;

	if (!text) {
		errno = ENOMEM;
		return -1;
	}
	rc = write_all(fd, (const char *)head, 4, deadline_ms) < 0 || write_all(fd, text, n, deadline_ms) < 0 ? -1 : 0;
	free(text);
	return rc;
}

/* Reads exactly n bytes before the deadline: 0, 1 at end of file before any byte, -1 otherwise. */
static int read_exact(int fd, char *p, size_t n, long deadline_ms, char *err, size_t errlen)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r;

		if (deadline_ms) {
			long left = deadline_ms - http_retry_now_ms();
			struct pollfd pfd = { fd, POLLIN, 0 };

			if (left <= 0 || poll(&pfd, 1, (int)(left > 1000 ? 1000 : left)) == 0) {
				if (left <= 0) {
					snprintf(err, errlen, "the hook process did not answer in time");
					return -1;
				}
				continue;
			}
		}
		r = read(fd, p + got, n - got);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0) {
			snprintf(err, errlen, "reading the hook pipe: %s", strerror(errno));
			return -1;
		}
		if (r == 0) {
			snprintf(err, errlen, "the other end of the hook pipe closed it%s", got ? " mid-message" : "");
			return got ? -1 : 1;
		}
		got += (size_t)r;
	}
	return 0;
}

int hook_link_recv(int fd, size_t max, long deadline_ms, cJSON **msg, char *err, size_t errlen)
{
	unsigned char head[4];
	uint32_t n;
	char *text;
	int rc;

	*msg = NULL;
	rc = read_exact(fd, (char *)head, 4, deadline_ms, err, errlen);
	if (rc)
		return -1;
	n = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 | (uint32_t)head[2] << 8 | head[3];
	if (n > max) {
		snprintf(err, errlen, "the hook pipe carried a message of %u bytes (at most %zu)", n, max);
		return -1;
	}
	text = xmalloc((size_t)n + 1);
	if (read_exact(fd, text, n, deadline_ms, err, errlen)) {
		free(text);
		return -1;
	}
	text[n] = '\0';
	*msg = cJSON_ParseWithLength(text, n);
	free(text);
	if (!*msg || !cJSON_IsObject(*msg)) {
		cJSON_Delete(*msg);
		*msg = NULL;
		snprintf(err, errlen, "the hook pipe carried a message that is not a JSON object");
		return -1;
	}
	return 0;
}

cJSON *hook_link_error_json(const struct k8s_error *err)
{
	cJSON *v = cJSON_CreateObject();

	cJSON_AddNumberToObject(v, "status", (double)err->http_status);
	cJSON_AddStringToObject(v, "reason", err->reason);
	cJSON_AddStringToObject(v, "message", err->message);
	cJSON_AddNumberToObject(v, "curl", err->curl_code);
	return v;
}

void hook_link_error_parse(const cJSON *v, struct k8s_error *err)
{
	const cJSON *status = cJSON_GetObjectItemCaseSensitive(v, "status");
	const cJSON *curl = cJSON_GetObjectItemCaseSensitive(v, "curl");
	const char *reason = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(v, "reason"));
	const char *message = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(v, "message"));

	memset(err, 0, sizeof *err);
	err->http_status = cJSON_IsNumber(status) && status->valuedouble >= 0 && status->valuedouble < 1000
				   ? (long)status->valuedouble : 0;
	err->curl_code = cJSON_IsNumber(curl) && curl->valuedouble >= 0 && curl->valuedouble < 1000
				 ? (int)curl->valuedouble : 0;
	snprintf(err->reason, sizeof err->reason, "%s", reason ? reason : "");
	snprintf(err->message, sizeof err->message, "%s", message ? message : "the runner gave no reason");
}

char *hook_link_base64(const char *data, size_t len)
{
	char *out = xmalloc(4 * ((len + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)data, (int)len);
	return out;
}

char *hook_link_unbase64(const char *s, size_t *len)
{
	size_t n = strlen(s);
	char *out;
	int r;

	if (n % 4 || n > (size_t)INT32_MAX)
		return NULL;
	out = xmalloc(n / 4 * 3 + 1);
	r = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
	if (r < 0) {
		free(out);
		return NULL;
	}
	*len = (size_t)r - (n && s[n - 1] == '=') - (n > 1 && s[n - 2] == '=');
	out[*len] = '\0';
	return out;
}
