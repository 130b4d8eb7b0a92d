#include "notify_deliver.h"
#include "db.h"
#include "log.h"
#include "runner_requests.h"
#include "strbuf.h"
#include "webhook.h"
#include "json.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WEBHOOK_TIMEOUT_MS 10000L

struct delivery {
	long long id, org_id, setting_id;
	const char *channel, *target, *event;
	cJSON *payload;
	int attempts;
};

static const char *kind_word(const char *kind)
{
	return strcmp(kind, "backup") == 0 ? "Backup" : strcmp(kind, "restore") == 0 ? "Restore" : "Migration";
}

/* A job's end in words: the subject and the text of its mail. */
static void job_mail(const struct notify_sender *s, const cJSON *p, struct strbuf *subject, struct strbuf *body)
{
	const cJSON *job = cJSON_GetObjectItemCaseSensitive(p, "job");
	const char *state = json_str(job, "state"), *plan = json_str(job, "plan");
	const char *said = strcmp(state, "failed") == 0 ? "failed" :
		strcmp(state, "partially_failed") == 0 ? "partly failed" : "succeeded";

	strbuf_addf(subject, "[Stowage] %s %s %s", kind_word(json_str(job, "kind")), *plan ? plan : "(plan deleted)", said);
	strbuf_addf(body, "%s job %.0f of plan %s in %s %s.\n\n", kind_word(json_str(job, "kind")), json_num(job, "id"),
		    *plan ? plan : "(deleted)", json_str(p, "organisation"), said);
	if (*json_str(job, "error"))
		strbuf_addf(body, "Error: %s\n", json_str(job, "error"));
	strbuf_addf(body, "Started: %s\nFinished: %s\nItems: %.0f (%.0f failed)\nData: %.0f bytes\n",
		    json_str(job, "started_at"), json_str(job, "finished_at"), json_num(job, "items"), json_num(job, "items_failed"),
		    json_num(job, "bytes"));
	strbuf_addf(body, "\nThe job, its items and its log: %s%s\n", s->site_url, json_str(job, "path"));
}

/* The protection report in words. */
static void report_mail(const struct notify_sender *s, const cJSON *p, struct strbuf *subject, struct strbuf *body)
{
	const cJSON *summary = cJSON_GetObjectItemCaseSensitive(p, "summary"), *row;
	const char *period = json_str(p, "period");

	strbuf_addf(subject, "[Stowage] %s protection report of %s", strcmp(period, "weekly") == 0 ? "Weekly" : "Daily",
		    json_str(p, "organisation"));
	strbuf_addf(body, "Protection of %s from %s to %s.\n\n%.0f backup plans, %.0f without a good backup; "
		    "%.0f failed jobs in the period.\n\nPlans (last good backup, failures in the period):\n",
		    json_str(p, "organisation"), json_str(p, "since"), json_str(p, "until"), json_num(summary, "plans"),
		    json_num(summary, "unprotected"), json_num(summary, "failed_jobs"));
	cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(p, "plans")) {
		const char *good = json_str(row, "last_good_backup");
		strbuf_addf(body, "  %s: %s, %.0f failures\n", json_str(row, "plan"), *good ? good : "NO GOOD BACKUP",
			    json_num(row, "failures"));
	}
	if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(p, "failed_jobs")) > 0)
		strbuf_addstr(body, "\nFailed jobs:\n");
	cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(p, "failed_jobs"))
		strbuf_addf(body, "  %s %s job %.0f at %s: %s %s%s\n", json_str(row, "state"), json_str(row, "kind"), json_num(row, "id"),
			    json_str(row, "finished_at"), json_str(row, "error"), s->site_url, json_str(row, "path"));
	strbuf_addf(body, "\nNotification settings: %s/notifications\n", s->site_url);
}

static int send_mail(const struct notify_sender *s, const struct delivery *d, char *err, size_t errlen)
{
	struct strbuf subject = STRBUF_INIT, body = STRBUF_INIT;
	int rc;

	if (strcmp(d->event, "report") == 0)
		report_mail(s, d->payload, &subject, &body);
	else
		job_mail(s, d->payload, &subject, &body);
	rc = mail_send(&s->mail, d->target, subject.buf, body.buf, err, errlen);
	strbuf_release(&subject);
	strbuf_release(&body);
	return rc;
}

/* The webhook's sealed secret, opened, if the settings still send to this URL. */
static char *webhook_secret(const struct notify_sender *s, PGconn *db, const struct delivery *d, char *err,
			    size_t errlen)
{
	char sid[24];
	const char *params[] = { sid, d->target };
	char *secret = NULL;
	PGresult *res;

	snprintf(sid, sizeof sid, "%lld", d->setting_id);
	if (db_tenant_begin(db, d->org_id, 0, err, errlen) < 0)
		return NULL;
	res = db_exec(db, "SELECT webhook_secret_enc FROM notification_settings WHERE id = $1 AND webhook_url = $2",
		      2, params, err, errlen);
	if (res && PQntuples(res) != 1)
		snprintf(err, errlen, "the webhook was removed or changed after this was queued");
	else if (res && !(secret = secret_open(&s->ctx->keyring, d->org_id, "notification.webhook_secret",
					       PQgetvalue(res, 0, 0))))
		snprintf(err, errlen, "the webhook's secret cannot be decrypted with the current master key");
	PQclear(res);
	db_rollback(db);
	return secret;
}

static int send_webhook(const struct notify_sender *s, PGconn *db, const struct delivery *d, char *err, size_t errlen)
{
	struct net_allow allow;
	char *secret, *body;
	long status;

	if (runner_org_networks(db, d->org_id, &s->ctx->allowed_networks, &allow, err, errlen) < 0 ||
	    !(secret = webhook_secret(s, db, d, err, errlen)))
		return -1;
	cJSON *doc = cJSON_Duplicate(d->payload, 1);
	cJSON_AddNumberToObject(doc, "delivery", (double)d->id);
	cJSON_AddNumberToObject(doc, "attempt", d->attempts);
	body = cJSON_PrintUnformatted(doc);
	cJSON_Delete(doc);
	status = webhook_post(&allow, d->target, secret, body, (long)time(NULL), WEBHOOK_TIMEOUT_MS, err, errlen);
	secret_free(secret);
	free(body);
	return status >= 200 && status <= 299 ? 0 : -1;
}

/* The attempt's outcome: delivered, tried again later, or given up after NOTIFY_ATTEMPTS. */
static void record(const struct notify_sender *s, PGconn *db, const struct delivery *d, int ok, const char *why)
{
	char sid[24], wait[24], err[512];
	const char *params[] = { sid, ok ? "delivered" : d->attempts >= NOTIFY_ATTEMPTS ? "failed" : "pending",
				 ok ? "" : why, wait };
	long backoff = s->retry_s;

	for (int i = 1; i < d->attempts && backoff < 86400; i++)
		backoff *= 2;
	snprintf(sid, sizeof sid, "%lld", d->id);
	snprintf(wait, sizeof wait, "%ld", backoff);
	if (db_tenant_begin(db, d->org_id, 0, err, sizeof err) < 0 ||
	    db_run(db, "UPDATE notification_deliveries SET state = $2, last_error = left($3, 1000), "
		   "delivered_at = CASE WHEN $2 = 'delivered' THEN now() END, "
		   "next_attempt_at = now() + make_interval(secs => $4::int) WHERE id = $1", 4, params, err, sizeof err) < 0 ||
	    db_commit(db, err, sizeof err) < 0) {
		db_rollback(db);
		log_error("notification %lld: cannot record its attempt: %s", d->id, err);
		return;
	}
	if (ok)
		log_info("notification %lld (%s, %s) of organisation %lld delivered", d->id, d->event, d->channel, d->org_id);
	else
		log_warn("notification %lld (%s, %s) of organisation %lld, attempt %d: %s", d->id, d->event, d->channel,
			 d->org_id, d->attempts, why);
}

/* Claims one due delivery and makes its attempt; 1 when there was one. */
static int deliver_one(const struct notify_sender *s, PGconn *db)
{
	char err[1024] = "";
	const char *params[] = { s->ctx->runner_id };
	struct delivery d = { 0 };
	PGresult *res;
	int ok;

	if (db_ensure(db, err, sizeof err) < 0)
		return 0;
	res = db_exec(db, "SELECT delivery_id, delivery_org_id, coalesce(delivery_setting_id, 0), delivery_channel, "
		      "delivery_target, delivery_event, delivery_payload::text, delivery_attempts "
		      "FROM claim_notification_delivery($1)", 1, params, err, sizeof err);
	if (!res || PQntuples(res) != 1) {
		if (!res)
			log_error("claiming a notification: %s", err);
		PQclear(res);
		return 0;
	}
	d.id = atoll(PQgetvalue(res, 0, PQfnumber(res, "delivery_id")));
	d.org_id = atoll(PQgetvalue(res, 0, PQfnumber(res, "delivery_org_id")));
	d.setting_id = atoll(PQgetvalue(res, 0, 2));
	d.channel = PQgetvalue(res, 0, PQfnumber(res, "delivery_channel"));
	d.target = PQgetvalue(res, 0, PQfnumber(res, "delivery_target"));
	d.event = PQgetvalue(res, 0, PQfnumber(res, "delivery_event"));
	d.payload = cJSON_Parse(PQgetvalue(res, 0, 6));
	d.attempts = atoi(PQgetvalue(res, 0, PQfnumber(res, "delivery_attempts")));
	if (!cJSON_IsObject(d.payload))
		ok = (snprintf(err, sizeof err, "the queued notification is not a JSON object"), -1);
	else if (strcmp(d.channel, "email") == 0)
		ok = send_mail(s, &d, err, sizeof err);
	else
		ok = send_webhook(s, db, &d, err, sizeof err);
	record(s, db, &d, ok == 0, err);
	cJSON_Delete(d.payload);
	PQclear(res);
	return 1;
}

void *notify_sender_loop(void *arg)
{
	const struct notify_sender *s = arg;
	char err[512];
	PGconn *db = db_connect(s->database_url, "stowage-runner-notifications", err, sizeof err);

	if (!db || db_run(db, "LISTEN stowage_notifications", 0, NULL, err, sizeof err) < 0)
		log_fatal("notifications: %s", err);
	for (;;) {
		struct pollfd pfd = { .fd = PQsocket(db), .events = POLLIN };
		PGnotify *n;

		if (deliver_one(s, db))
			continue;
		/* woken by NOTIFY; polls anyway for retries that came due, and after a reconnect */
		if (pfd.fd < 0 || PQstatus(db) != CONNECTION_OK)
			poll(NULL, 0, 2000);
		else if (poll(&pfd, 1, 1000) > 0 && !PQconsumeInput(db))
			poll(NULL, 0, 2000);
		while ((n = PQnotifies(db)) != NULL)
			PQfreemem(n);
		if (PQstatus(db) != CONNECTION_OK && db_ensure(db, err, sizeof err) == 0)
			db_run(db, "LISTEN stowage_notifications", 0, NULL, err, sizeof err);
	}
	return NULL;
}
