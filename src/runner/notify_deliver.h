/* The runner's notification sender: a thread that takes due deliveries (a job's end, a report;
 * sql/019_notifications.sql), mails them through the deployment's SMTP server or POSTs them,
 * signed, to the organisation's webhook, and records each attempt; a failure is tried again
 * later, each wait twice the one before. */
#ifndef STOWAGE_RUNNER_NOTIFY_DELIVER_H
#define STOWAGE_RUNNER_NOTIFY_DELIVER_H

#include "job.h"
#include "mail.h"

#define NOTIFY_ATTEMPTS 5

struct notify_sender {
	const struct runner_context *ctx;
	const char *database_url;
	struct mail_conf mail;
	const char *site_url;	/* the base of the links in mails and payloads; "" when unset */
	long retry_s;		/* the wait before the first retry (notification_retry_seconds) */
};

/* The thread: sends deliveries until the process ends. */
void *notify_sender_loop(void *arg);

#endif
