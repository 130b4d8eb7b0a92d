/* Parsing a scraper's request: the request line only (headers are read and ignored), strictly:
 * a method, one space, an origin-form path of visible ASCII, one space, HTTP/1.0 or HTTP/1.1. */
#include "metrics_http.h"

#include <stdio.h>
#include <string.h>

static const char *find_head_end(const char *buf, size_t len)
{
	for (size_t i = 0; i + 3 < len; i++)
		if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n')
			return buf + i;
	for (size_t i = 0; i + 1 < len; i++)	/* bare LF, as some clients send */
		if (buf[i] == '\n' && buf[i + 1] == '\n')
			return buf + i;
	return NULL;
}

int metrics_request_parse(const char *buf, size_t len, char *path, size_t pathlen, int *head)
{
	const char *end = find_head_end(buf, len), *sp1, *sp2, *eol;
	size_t plen;

	if (!end)
		return len >= METRICS_REQUEST_MAX ? 431 : 0;
	eol = memchr(buf, '\n', (size_t)(end - buf) + 2);	/* end + 1 is the head's first newline at the latest */
	if (!eol)
		return 400;
	if (eol > buf && eol[-1] == '\r')
		eol--;
	sp1 = memchr(buf, ' ', (size_t)(eol - buf));
	if (!sp1)
		return 400;
	sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
	if (!sp2 || sp1[1] != '/')
		return 400;
	if ((size_t)(eol - sp2 - 1) != 8 || (memcmp(sp2 + 1, "HTTP/1.1", 8) != 0 && memcmp(sp2 + 1, "HTTP/1.0", 8) != 0))
		return 400;
	for (const char *p = sp1 + 1; p < sp2; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return 400;
	*head = (size_t)(sp1 - buf) == 4 && memcmp(buf, "HEAD", 4) == 0;
	if (!*head && !((size_t)(sp1 - buf) == 3 && memcmp(buf, "GET", 3) == 0))
		return 405;
	plen = strcspn(sp1 + 1, "? ");
	if (plen > (size_t)(sp2 - sp1 - 1))
		plen = (size_t)(sp2 - sp1 - 1);
	if (plen + 1 > pathlen)
		return 414;
	memcpy(path, sp1 + 1, plen);
	path[plen] = '\0';
	return 200;
}
