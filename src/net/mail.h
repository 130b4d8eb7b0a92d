/* Mail out through SMTP with libcurl (smtp:// or smtps://, as configured in stowage.conf). */
#ifndef STOWAGE_MAIL_H
#define STOWAGE_MAIL_H

#include <stddef.h>

struct mail_conf {
	const char *smtp_url;	/* smtp://host:port or smtps://host:port; NULL or "": log the mail instead */
	const char *from;	/* the envelope and From: address */
	const char *user;	/* optional SMTP AUTH */
	const char *password;
};

/* Sends a plain-text mail. Without an SMTP server configured, logs it (with its links) and says
 * so. 0, or -1 with the reason in err. */
int mail_send(const struct mail_conf *conf, const char *to, const char *subject, const char *body,
	      char *err, size_t errlen);

/* 1 when addr is safe to put in a mail header: no CR, LF or control character, no '<', '>', ',' */
int mail_address_ok(const char *addr);

#endif
