/* Notifications: who hears of a job's end (failure, partial failure, success if asked) and of the
 * organisation's daily or weekly protection report, by mail and by a signed webhook. The
 * organisation's defaults and its deliveries on /notifications; a plan's own settings, which
 * replace the defaults for its jobs, on the plan's notifications page. The web only stores
 * settings: a runner sends (docs/notifications.md). */
#include "web.h"
#include "audit.h"
#include "db.h"
#include "form.h"
#include "webhook.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EMAILS_MAX 10
#define DELIVERIES_SHOWN 50

static const char *const report_choices[] = { "off", "daily", "weekly", NULL };

static const struct form_field notify_fields[] = {
	{ .name = "emails", .label = "Mail to", .kind = FORM_TEXT, .max_len = 1000 },
	{ .name = "webhook_url", .label = "Webhook URL", .kind = FORM_URL, .max_len = 2048 },
	{ .name = "new_secret", .label = "New webhook secret", .kind = FORM_BOOL },
	{ .name = "on_failure", .label = "On failure", .kind = FORM_BOOL },
	{ .name = "on_partial", .label = "On partial failure", .kind = FORM_BOOL },
	{ .name = "on_success", .label = "On success", .kind = FORM_BOOL },
	{ .name = "report", .label = "Protection report", .kind = FORM_CHOICE, .choices = report_choices },
	{ .name = "report_hour", .label = "Report hour (UTC)", .kind = FORM_INT, .min = 0, .max = 23 },
	{ .name = "report_weekday", .label = "Report weekday", .kind = FORM_INT, .min = 0, .max = 6 },
	{ .name = "inherit", .label = "Use the organisation's defaults", .kind = FORM_BOOL },
};
#define NOTIFY_N (sizeof notify_fields / sizeof notify_fields[0])

/* Whose settings a page shows: the organisation's (plan_id 0) or one plan's. */
struct notify_scope {
	const char *column;	/* "backup_plan_id", ...; NULL: the organisation's default */
	const char *table;
	const char *path;	/* the plan's page prefix, "/backup-plans" */
	const char *what;	/* "backup plan" */
	long long plan_id;
	char plan_name[128];
};

static const char *value(PGresult *res, int row, const char *column)
{
	return PQgetvalue(res, row, PQfnumber(res, column));
}

static int is_true(const struct form_values *v, const char *name)
{
	const char *x = form_value(v, notify_fields, name);
	return x && strcmp(x, "true") == 0;
}

/* The settings row of scope (none: a plan that follows the organisation's defaults), locked. */
static PGresult *settings_load(struct request *r, const struct notify_scope *sc, char *err, size_t errlen)
{
	char sid[24], where[128], sql[700];
	const char *params[] = { sid };

	snprintf(sid, sizeof sid, "%lld", sc->plan_id);
	/* column names come from the constant scopes below, never from input */
	if (sc->column)
		snprintf(where, sizeof where, "%s = $1", sc->column);
	else
		snprintf(where, sizeof where, "backup_plan_id IS NULL AND restore_plan_id IS NULL AND "
			 "migration_plan_id IS NULL AND $1::bigint = 0");
	snprintf(sql, sizeof sql, "SELECT id, array_to_string(emails, ', ') AS emails, webhook_url, on_failure, on_partial, "
		 "on_success, report, report_hour, report_weekday, "
		 "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS updated "
		 "FROM notification_settings WHERE %s FOR UPDATE", where);
	return db_exec(r->db, sql, 1, params, err, errlen);
}

/* The stored settings as the form's view (or the defaults when there are none). */
static cJSON *settings_view(PGresult *res, const struct notify_scope *sc)
{
	cJSON *view = cJSON_CreateObject(), *s = cJSON_AddObjectToObject(view, "settings");
	int have = res && PQntuples(res) == 1;

	cJSON_AddBoolToObject(s, "stored", have);
	cJSON_AddBoolToObject(s, "inherit", sc->column && !have);
	cJSON_AddStringToObject(s, "emails", have ? value(res, 0, "emails") : "");
	cJSON_AddStringToObject(s, "webhook_url", have ? value(res, 0, "webhook_url") : "");
	cJSON_AddBoolToObject(s, "webhook", have && *value(res, 0, "webhook_url"));
	cJSON_AddBoolToObject(s, "on_failure", have ? *value(res, 0, "on_failure") == 't' : 1);
	cJSON_AddBoolToObject(s, "on_partial", have ? *value(res, 0, "on_partial") == 't' : 1);
	cJSON_AddBoolToObject(s, "on_success", have && *value(res, 0, "on_success") == 't');
	const char *report = have ? value(res, 0, "report") : "off";
	cJSON_AddStringToObject(s, "report", report);
	cJSON_AddBoolToObject(s, "report_daily", strcmp(report, "daily") == 0);
	cJSON_AddBoolToObject(s, "report_weekly", strcmp(report, "weekly") == 0);
	cJSON_AddNumberToObject(s, "report_hour", have ? atoi(value(res, 0, "report_hour")) : 7);
	cJSON_AddNumberToObject(s, "report_weekday", have ? atoi(value(res, 0, "report_weekday")) : 1);
	cJSON_AddStringToObject(s, "updated", have ? value(res, 0, "updated") : "");
	return view;
}

/* The organisation's latest deliveries, every plan's and the reports, added to view. */
static int add_deliveries(struct request *r, cJSON *view)
{
	char err[512], limit[16];
	const char *params[] = { limit };
	PGresult *res;
	cJSON *list;

	snprintf(limit, sizeof limit, "%d", DELIVERIES_SHOWN);
	res = db_exec(r->db, "SELECT id, event, coalesce(job_id, 0) AS job_id, channel, target, state, attempts, last_error, "
		      "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS created, "
		      "coalesce(to_char(delivered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), '') AS delivered, "
		      "CASE WHEN state = 'pending' AND attempts > 0 THEN "
		      "to_char(next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') ELSE '' END AS next_attempt "
		      "FROM notification_deliveries ORDER BY created_at DESC, id DESC LIMIT $1::int",
		      1, params, err, sizeof err);
	if (!res) {
		respond_db_error(r, err);
		return -1;
	}
	list = cJSON_AddArrayToObject(view, "deliveries");
	for (int i = 0; i < PQntuples(res); i++) {
		cJSON *d = cJSON_CreateObject();
		long long job = atoll(value(res, i, "job_id"));
		cJSON_AddNumberToObject(d, "id", (double)atoll(value(res, i, "id")));
		cJSON_AddStringToObject(d, "event", value(res, i, "event"));
		if (job)
			cJSON_AddNumberToObject(d, "job_id", (double)job);
		else
			cJSON_AddNullToObject(d, "job_id");
		cJSON_AddStringToObject(d, "channel", value(res, i, "channel"));
		cJSON_AddStringToObject(d, "target", value(res, i, "target"));
		cJSON_AddStringToObject(d, "state", value(res, i, "state"));
		cJSON_AddNumberToObject(d, "attempts", atoi(value(res, i, "attempts")));
		cJSON_AddStringToObject(d, "last_error", value(res, i, "last_error"));
		cJSON_AddStringToObject(d, "created", value(res, i, "created"));
		cJSON_AddStringToObject(d, "delivered", value(res, i, "delivered"));
		cJSON_AddStringToObject(d, "next_attempt", value(res, i, "next_attempt"));
		cJSON_AddItemToArray(list, d);
	}
	PQclear(res);
	return 0;
}

static void notify_respond(struct request *r, const struct notify_scope *sc, int status, cJSON *view)
{
	char title[200], action[96];

	if (sc->column) {
		snprintf(title, sizeof title, "Notifications of %s %s", sc->what, sc->plan_name);
		snprintf(action, sizeof action, "%s/%lld/notifications", sc->path, sc->plan_id);
		cJSON_AddStringToObject(view, "plan", sc->plan_name);
		cJSON_AddNumberToObject(view, "plan_id", (double)sc->plan_id);
		cJSON_AddStringToObject(view, "plan_kind", sc->what);
	} else {
		snprintf(title, sizeof title, "Notifications");
		snprintf(action, sizeof action, "/notifications");
		cJSON_AddBoolToObject(view, "nav_notifications", 1);
		if (add_deliveries(r, view) < 0) {
			cJSON_Delete(view);
			return;
		}
	}
	cJSON_AddStringToObject(view, "title", title);
	cJSON_AddStringToObject(view, "action", action);
	cJSON_AddBoolToObject(view, "org_default", !sc->column);
	cJSON_AddBoolToObject(view, "can_edit", sc->column ? r->session.role >= ROLE_OPERATOR : r->session.role == ROLE_ADMIN);
	if (status == 422)
		respond_form_errors(r, "notifications", view);
	else
		respond_page(r, status, "notifications", view);
}

/* The plan the route names, in this organisation; 0, or -1 after answering 404. */
static int scope_for(struct request *r, struct notify_scope *sc, const char *column, const char *table,
		     const char *path, const char *what)
{
	char sql[128];
	PGresult *res;

	*sc = (struct notify_scope){ column, table, path, what, request_param_id(r, "id"), "" };
	if (!column)
		return 0;
	snprintf(sql, sizeof sql, "SELECT name FROM %s WHERE id = $1", table);
	if (!(res = web_row(r, sql, sc->plan_id, what)))
		return -1;
	snprintf(sc->plan_name, sizeof sc->plan_name, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

static void notify_show(struct request *r, const struct notify_scope *sc)
{
	char err[512];
	PGresult *res = settings_load(r, sc, err, sizeof err);

	if (!res) {
		respond_db_error(r, err);
		return;
	}
	cJSON *view = settings_view(res, sc);
	PQclear(res);
	notify_respond(r, sc, 200, view);
}

/* "a@x, b@y": every address one a mail may go to, at most EMAILS_MAX; out gets "{a@x,b@y}". */
static int emails_parse(const char *text, struct strbuf *out, char *why, size_t whylen)
{
	char *copy = xstrdup(text ? text : ""), *save = NULL;
	int n = 0, rc = 0;

	strbuf_addch(out, '{');
	for (char *a = strtok_r(copy, ", \t;", &save); a; a = strtok_r(NULL, ", \t;", &save)) {
		if (!mail_address_ok(a)) {
			snprintf(why, whylen, "\"%.100s\" is not an address a mail may go to", a);
			rc = -1;
			break;
		}
		if (++n > EMAILS_MAX) {
			snprintf(why, whylen, "at most %d addresses", EMAILS_MAX);
			rc = -1;
			break;
		}
		strbuf_addf(out, "%s\"%s\"", n > 1 ? "," : "", a);	/* no quote or backslash can pass mail_address_ok */
	}
	strbuf_addch(out, '}');
	free(copy);
	return rc;
}

/* The webhook URL's address literal against the deployment's networks and the organisation's
 * opt-ins; a host name is checked by the runner when it connects (the web resolves nothing). */
static int webhook_url_check(struct request *r, const char *url, char *why, size_t whylen)
{
	char literal[64], err[512];
	int rc = net_allow_check_url_offline(&r->ctx->allowed_networks, url, literal, why, whylen);

	if (rc >= 0 || !*literal)
		return rc < 0 ? -1 : 0;
	const char *params[] = { literal };
	PGresult *res = db_exec(r->db, "SELECT org_network_opt_in_covers($1::inet)", 1, params, err, sizeof err);
	int covered = res && PQntuples(res) == 1 && *PQgetvalue(res, 0, 0) == 't';
	PQclear(res);
	if (!covered)
		return -1;
	struct net_allow opted = r->ctx->allowed_networks;
	if (net_allow_opt_in_add(&opted, literal, err, sizeof err) < 0)
		return -1;
	return net_allow_check_url_offline(&opted, url, literal, why, whylen) < 0 ? -1 : 0;
}

static void notify_save(struct request *r, const struct notify_scope *sc)
{
	struct form_values v;
	struct strbuf emails = STRBUF_INIT;
	char why[600], err[512], secret[TOKEN_TEXT_LEN + 8] = "", sid[24] = "0", plan[24];
	PGresult *res;

	form_validate(notify_fields, NOTIFY_N, &r->form, &v);
	const char *url = form_value(&v, notify_fields, "webhook_url");
	const char *report = form_value(&v, notify_fields, "report");
	int inherit = sc->column && is_true(&v, "inherit");
	if (emails_parse(form_value(&v, notify_fields, "emails"), &emails, why, sizeof why) < 0)
		form_fail(&v, notify_fields, "emails", "Mail to: %s", why);
	if (url && *url && webhook_url_check(r, url, why, sizeof why) < 0)
		form_fail(&v, notify_fields, "webhook_url", "Webhook URL: %s", why);
	if (sc->column && report && strcmp(report, "off") != 0)
		form_fail(&v, notify_fields, "report", "Protection report: the organisation's alone; set it on its "
			  "notifications page");
	if (v.errors) {
		cJSON *view = form_view(&v, notify_fields);
		form_values_free(&v);
		strbuf_release(&emails);
		notify_respond(r, sc, 422, view);
		return;
	}
	if (!(res = settings_load(r, sc, err, sizeof err)))
		goto db_error;
	int have = PQntuples(res) == 1;
	int had_webhook = have && *value(res, 0, "webhook_url");
	if (have)
		snprintf(sid, sizeof sid, "%s", value(res, 0, "id"));
	PQclear(res);
	snprintf(plan, sizeof plan, "%lld", sc->plan_id);

	if (inherit) {
		const char *params[] = { sid };
		if (db_run(r->db, "DELETE FROM notification_settings WHERE id = $1", 1, params, err, sizeof err) < 0)
			goto db_error;
	} else {
		/* the secret: new with a new webhook or when asked for, kept otherwise, gone with the URL */
		char *sealed = NULL;
		int fresh = url && *url && (!had_webhook || is_true(&v, "new_secret"));
		if (fresh) {
			char random[TOKEN_TEXT_LEN + 1];
			if (token_new(random) < 0) {
				form_values_free(&v);
				strbuf_release(&emails);
				respond_error(r, 503, "No random bytes for a webhook secret; try again.");
				return;
			}
			snprintf(secret, sizeof secret, "%s%s", WEBHOOK_SECRET_PREFIX, random);
			explicit_bzero(random, sizeof random);
			sealed = secret_seal(&r->ctx->keyring, r->session.org_id, "notification.webhook_secret", secret);
			if (!sealed) {
				form_values_free(&v);
				strbuf_release(&emails);
				respond_db_error(r, "sealing the webhook secret failed");
				return;
			}
		}
		const char *params[] = { sid, emails.buf, url ? url : "", fresh ? "t" : "f", sealed, r->ctx->keyring.key_id,
					 form_value(&v, notify_fields, "on_failure"), form_value(&v, notify_fields, "on_partial"),
					 form_value(&v, notify_fields, "on_success"), report ? report : "off",
					 form_value(&v, notify_fields, "report_hour") ? form_value(&v, notify_fields, "report_hour") : "7",
					 form_value(&v, notify_fields, "report_weekday") ? form_value(&v, notify_fields, "report_weekday") : "1",
					 plan };
		char sql[1400];
		if (have)	/* a report switched on or moved starts at its next hour, not at once */
			snprintf(sql, sizeof sql,
				 "UPDATE notification_settings SET emails = $2::text[], webhook_url = $3, "
				 "webhook_secret_enc = CASE WHEN $3 = '' THEN NULL WHEN $4::boolean THEN $5::bytea "
				 "ELSE webhook_secret_enc END, "
				 "key_id = CASE WHEN $3 = '' THEN NULL WHEN $4::boolean THEN $6 ELSE key_id END, "
				 "on_failure = $7, on_partial = $8, on_success = $9, "
				 "report_last_at = CASE WHEN report <> $10 OR report_hour <> $11::int "
				 "OR report_weekday <> $12::int THEN now() ELSE report_last_at END, "
				 "report = $10, report_hour = $11::int, report_weekday = $12::int, updated_at = now() "
				 "WHERE id = $1 AND $13::bigint IS NOT NULL");
		else
			snprintf(sql, sizeof sql,
				 "INSERT INTO notification_settings (%s%s emails, webhook_url, webhook_secret_enc, key_id, "
				 "on_failure, on_partial, on_success, report, report_hour, report_weekday) "
				 "SELECT %s $2::text[], $3, CASE WHEN $4::boolean THEN $5::bytea END, "
				 "CASE WHEN $4::boolean THEN $6 END, $7, $8, $9, $10, $11::int, $12::int "
				 "WHERE $1 = '0' AND $13::bigint IS NOT NULL",
				 sc->column ? sc->column : "", sc->column ? "," : "", sc->column ? "$13::bigint," : "");
		int rc = db_run(r->db, sql, 13, params, err, sizeof err);
		free(sealed);
		if (rc < 0)
			goto db_error;
	}
	cJSON *detail = cJSON_CreateObject();
	cJSON_AddStringToObject(detail, "scope", sc->column ? sc->what : "organisation");
	cJSON_AddBoolToObject(detail, "inherit", inherit);
	cJSON_AddStringToObject(detail, "webhook_url", inherit || !url ? "" : url);
	cJSON_AddBoolToObject(detail, "new_webhook_secret", *secret != '\0');
	int arc = audit_record(r->db, "notifications.update", sc->column ? sc->plan_name : "organisation", detail, err,
			       sizeof err);
	cJSON_Delete(detail);
	if (arc < 0)
		goto db_error;
	form_values_free(&v);
	strbuf_release(&emails);
	if (!(res = settings_load(r, sc, err, sizeof err))) {
		explicit_bzero(secret, sizeof secret);
		respond_db_error(r, err);
		return;
	}
	cJSON *view = settings_view(res, sc);
	PQclear(res);
	cJSON_AddStringToObject(view, "saved", inherit ? "This plan now follows the organisation's defaults." :
				"Notification settings saved.");
	if (*secret)	/* shown this once: only a runner can open the stored one */
		cJSON_AddStringToObject(view, "webhook_secret", secret);
	explicit_bzero(secret, sizeof secret);
	notify_respond(r, sc, 200, view);
	return;
db_error:
	form_values_free(&v);
	strbuf_release(&emails);
	explicit_bzero(secret, sizeof secret);
	respond_db_error(r, err);
}

#define SCOPE_PAGES(fn, column, table, path, what) \
	void page_##fn##_notifications(struct request *r) \
	{ \
		struct notify_scope sc; \
		if (scope_for(r, &sc, column, table, path, what) == 0) \
			notify_show(r, &sc); \
	} \
	void page_##fn##_notifications_save(struct request *r) \
	{ \
		struct notify_scope sc; \
		if (scope_for(r, &sc, column, table, path, what) == 0) \
			notify_save(r, &sc); \
	}

SCOPE_PAGES(org, NULL, NULL, "", "organisation")
SCOPE_PAGES(backup_plan, "backup_plan_id", "backup_plans", "/backup-plans", "backup plan")
SCOPE_PAGES(restore_plan, "restore_plan_id", "restore_plans", "/restore-plans", "restore plan")
SCOPE_PAGES(migration_plan, "migration_plan_id", "migration_plans", "/migrations", "migration plan")

/* ---- the plan wizards' "Mail on failure" field: the plan's own addresses ---- */

int notify_emails_check(const char *text, char *why, size_t whylen)
{
	struct strbuf unused = STRBUF_INIT;
	int rc = emails_parse(text, &unused, why, whylen);

	strbuf_release(&unused);
	return rc;
}

int notify_plan_emails_load(struct request *r, const char *column, long long plan_id, char *out, size_t outlen)
{
	struct notify_scope sc = { .column = column, .plan_id = plan_id };
	char err[512];
	PGresult *res = settings_load(r, &sc, err, sizeof err);

	out[0] = '\0';
	if (!res)
		return -1;
	if (PQntuples(res) == 1)
		snprintf(out, outlen, "%s", value(res, 0, "emails"));
	PQclear(res);
	return 0;
}

int notify_plan_emails_save(struct request *r, const char *column, long long plan_id, const char *emails,
			    char *err, size_t errlen)
{
	struct notify_scope sc = { .column = column, .plan_id = plan_id };
	struct strbuf list = STRBUF_INIT;
	char sid[24], why[300], sql[400];
	const char *params[] = { sid, NULL };
	PGresult *res;
	int rc;

	if (emails_parse(emails, &list, why, sizeof why) < 0) {
		snprintf(err, errlen, "Mail on failure: %s", why);
		strbuf_release(&list);
		return -1;
	}
	params[1] = list.buf;
	if (!(res = settings_load(r, &sc, err, errlen))) {
		strbuf_release(&list);
		return -1;
	}
	int have = PQntuples(res) == 1, webhook = have && *value(res, 0, "webhook_url");
	PQclear(res);
	snprintf(sid, sizeof sid, "%lld", plan_id);
	/* column names come from the constant scopes, never from input */
	if (have && !webhook && strcmp(list.buf, "{}") == 0)	/* nothing of its own left: the defaults again */
		snprintf(sql, sizeof sql, "DELETE FROM notification_settings WHERE %s = $1 AND $2::text IS NOT NULL", column);
	else if (have)
		snprintf(sql, sizeof sql, "UPDATE notification_settings SET emails = $2::text[], updated_at = now() "
			 "WHERE %s = $1", column);
	else if (strcmp(list.buf, "{}") != 0)
		snprintf(sql, sizeof sql, "INSERT INTO notification_settings (%s, emails) VALUES ($1, $2::text[])", column);
	else
		sql[0] = '\0';
	rc = *sql ? db_run(r->db, sql, 2, params, err, errlen) : 0;
	strbuf_release(&list);
	return rc;
}
