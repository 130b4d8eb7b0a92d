#include "mail.h"
#include "log.h"
#include "strbuf.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define MAIL_TIMEOUT_MS 15000L

struct reader {
	const char *data;
	size_t len, off;
};

static size_t read_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
	struct reader *r = userdata;
	size_t n = size * nitems;

	if (n > r->len - r->off)
		n = r->len - r->off;
	memcpy(buf, r->data + r->off, n);
	r->off += n;
	return n;
}

int mail_address_ok(const char *addr)
{
	if (!addr || !*addr || strlen(addr) > 254 || !strchr(addr, '@'))
		return 0;
	for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
		if (*p < 0x21 || *p == 0x7f || strchr("<>,;:\"()[]\\", *p))
			return 0;
	return 1;
}

/* The subject is ours (no user text with CR/LF reaches it), kept to one line regardless. */
static void add_header_line(struct strbuf *out, const char *name, const char *value)
{
	strbuf_addf(out, "%s: ", name);
	for (const char *p = value; *p; p++)
		if (*p != '\r' && *p != '\n')
			strbuf_addch(out, *p);
	strbuf_addstr(out, "\r\n");
}

int mail_send(const struct mail_conf *conf, const char *to, const char *subject, const char *body,
	      char *err, size_t errlen)
{
	if (!mail_address_ok(to)) {
		snprintf(err, errlen, "mail: the recipient address is not one a mail may go to");
		return -1;
	}
	if (!conf->smtp_url || !*conf->smtp_url) {
		struct strbuf line = STRBUF_INIT;
		for (const char *p = body; *p; p++)
			strbuf_addch(&line, *p == '\n' || *p == '\r' ? ' ' : *p);
		log_info("mail: no smtp_url in stowage.conf, so this mail to %s is only logged here: %s: %s",
			 to, subject, line.buf);
		strbuf_release(&line);
		return 0;
	}
	if (!mail_address_ok(conf->from)) {
		snprintf(err, errlen, "mail: mail_from in stowage.conf is not a usable address");
		return -1;
	}

	struct strbuf msg = STRBUF_INIT;
	char date[64], id[128];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
	snprintf(id, sizeof id, "<%lld.%p@stowage>", (long long)now, (void *)&msg);
	add_header_line(&msg, "Date", date);
	add_header_line(&msg, "From", conf->from);
	add_header_line(&msg, "To", to);
	add_header_line(&msg, "Subject", subject);
	add_header_line(&msg, "Message-ID", id);
	strbuf_addstr(&msg, "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
		      "Content-Transfer-Encoding: 8bit\r\n\r\n");
	/* SMTP wants CRLF line ends; a line of one '.' is escaped by libcurl. */
	for (const char *p = body; *p; p++) {
		if (*p == '\n' && (p == body || p[-1] != '\r'))
			strbuf_addstr(&msg, "\r\n");
		else
			strbuf_addch(&msg, *p);
	}
	strbuf_addstr(&msg, "\r\n");

	CURL *h = curl_easy_init();
	struct curl_slist *rcpt = NULL;
	struct reader rd = { msg.buf, msg.len, 0 };
	char curl_err[CURL_ERROR_SIZE] = "";
	char from[300];
	int rc = -1;

	if (!h) {
		snprintf(err, errlen, "mail: libcurl could not start");
		strbuf_release(&msg);
		return -1;
	}
	snprintf(from, sizeof from, "<%s>", conf->from);
	rcpt = curl_slist_append(rcpt, to);
	curl_easy_setopt(h, CURLOPT_URL, conf->smtp_url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	curl_easy_setopt(h, CURLOPT_MAIL_FROM, from);
	curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt);
	curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
	curl_easy_setopt(h, CURLOPT_READDATA, &rd);
	curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, MAIL_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
	if (conf->user && *conf->user) {
		curl_easy_setopt(h, CURLOPT_USERNAME, conf->user);
		curl_easy_setopt(h, CURLOPT_PASSWORD, conf->password ? conf->password : "");
		/* Credentials never travel in the clear: STARTTLS is required on smtp://. */
		curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
	}
	CURLcode cc = curl_easy_perform(h);
	if (cc != CURLE_OK)
		snprintf(err, errlen, "mail to %s: the SMTP server at smtp_url refused or failed: %s", to,
			 curl_err[0] ? curl_err : curl_easy_strerror(cc));
	else
		rc = 0;
	curl_slist_free_all(rcpt);
	curl_easy_cleanup(h);
	strbuf_release(&msg);
	return rc;
}
