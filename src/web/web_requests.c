/* Requests to the runners: a web worker connects to no tenant's server. A Test, a save that
 * tests, a dry run and the wizards' live reads are rows of runner_requests that a runner's fast
 * lane answers (src/runner/runner_requests.c), storing a save or a Test's status with its
 * answer; a page shows "reading the cluster…" and follows the request until its answer is there,
 * as the job page follows a job, then says what happened. */
#include "web.h"
#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The wizards ask the same reads again on every step they show: an answer this fresh is reused. */
/* Requests of one organisation waiting for a runner at once: more are refused in words, so that
 * a script cannot queue the runners' lanes full (they answer one organisation two at a time). */
#define REQUESTS_WAITING_MAX "20"

void runner_answer_free(struct runner_answer *a)
{
	cJSON_Delete(a->result);
	cJSON_Delete(a->params);
	memset(a, 0, sizeof *a);
}

static void answer_from_row(PGresult *res, struct runner_answer *a)
{
	memset(a, 0, sizeof *a);
	a->id = atoll(PQgetvalue(res, 0, 0));
	snprintf(a->kind, sizeof a->kind, "%s", PQgetvalue(res, 0, 1));
	snprintf(a->state, sizeof a->state, "%s", PQgetvalue(res, 0, 2));
	a->result = PQgetisnull(res, 0, 3) ? NULL : cJSON_Parse(PQgetvalue(res, 0, 3));
	snprintf(a->error, sizeof a->error, "%s", PQgetvalue(res, 0, 4));
	a->params = cJSON_Parse(PQgetvalue(res, 0, 5));
	a->applied = !PQgetisnull(res, 0, 6);
	a->created_by = atoll(PQgetvalue(res, 0, 7));
	a->answered = strcmp(a->state, "answered") == 0;
}

#define ANSWER_COLUMNS "id, kind, state, result::text, error, params::text, applied_at, coalesce(created_by, 0)"

long long web_request_ask(struct request *r, const char *kind, const cJSON *params, char *err, size_t errlen)
{
	char *text = cJSON_PrintUnformatted(params), uid[24];
	const char *p[] = { kind, text, uid };
	PGresult *res;
	long long id = 0;

	snprintf(uid, sizeof uid, "%lld", r->session.user_id);
	res = db_exec(r->db, "INSERT INTO runner_requests (kind, params, created_by) SELECT $1, $2::jsonb, $3 "
		      "WHERE (SELECT count(*) FROM runner_requests WHERE state <> 'answered' "
		      "AND created_at > now() - interval '2 minutes') < " REQUESTS_WAITING_MAX " RETURNING id",
		      3, p, err, errlen);
	if (res && PQntuples(res) == 1) {
		id = atoll(PQgetvalue(res, 0, 0));
	} else if (res) {
		snprintf(err, errlen, "Too many requests of your organisation are waiting for a runner ("
			 REQUESTS_WAITING_MAX "); try again once they are answered.");
		id = WEB_REQUESTS_FULL;
	}
	PQclear(res);
	free(text);
	return id;
}

int web_request_load(struct request *r, long long id, struct runner_answer *a)
{
	char sid[24], err[256];
	const char *p[] = { sid };
	PGresult *res;

	memset(a, 0, sizeof *a);
	snprintf(sid, sizeof sid, "%lld", id);
	res = db_exec(r->db, "SELECT " ANSWER_COLUMNS " FROM runner_requests WHERE id = $1", 1, p, err, sizeof err);
	if (!res || PQntuples(res) != 1) {
		PQclear(res);
		return -1;
	}
	answer_from_row(res, a);
	PQclear(res);
	return 0;
}

int web_request_reuse(struct request *r, const char *kind, const cJSON *params, int fresh_seconds,
		      struct runner_answer *a, char *err, size_t errlen)
{
	char *text = cJSON_PrintUnformatted(params), fresh[16];
	const char *p[] = { kind, text, fresh };
	PGresult *res;

	snprintf(fresh, sizeof fresh, "%d", fresh_seconds);
	/* the newest same request, answered within the freshness (a failure at most 30 s: it may
	 * have been passing) or still on its way */
	res = db_exec(r->db, "SELECT " ANSWER_COLUMNS " FROM runner_requests WHERE kind = $1 "
		      "AND params = $2::jsonb AND (state <> 'answered' OR answered_at > now() - make_interval(secs => "
		      "CASE WHEN error = '' THEN $3::int ELSE least($3::int, 30) END)) "
		      "AND created_at > now() - make_interval(secs => greatest($3::int, 120)) ORDER BY id DESC LIMIT 1",
		      3, p, err, errlen);
	free(text);
	if (!res)
		return -1;
	if (PQntuples(res) == 1) {
		answer_from_row(res, a);
		PQclear(res);
		return a->answered;
	}
	PQclear(res);
	memset(a, 0, sizeof *a);
	a->id = web_request_ask(r, kind, params, err, errlen);
	snprintf(a->kind, sizeof a->kind, "%s", kind);
	snprintf(a->state, sizeof a->state, "pending");
	return a->id > 0 ? 0 : -1;
}

int web_cluster_reads(struct request *r, const cJSON *reads, int fresh_seconds, struct runner_answer *a, char *err,
		      size_t errlen)
{
	cJSON *params = cJSON_CreateObject();
	int rc;

	cJSON_AddItemToObject(params, "reads", cJSON_Duplicate(reads, 1));
	rc = web_request_reuse(r, "cluster_read", params, fresh_seconds, a, err, errlen);
	cJSON_Delete(params);
	return rc;
}

void web_request_follow(struct request *r, const char *kind, cJSON *params)
{
	char err[512], loc[64];
	long long rid = web_request_ask(r, kind, params, err, sizeof err);

	cJSON_Delete(params);
	if (rid <= 0) {
		web_request_refused(r, rid, err);
		return;
	}
	snprintf(loc, sizeof loc, "/requests/%lld", rid);
	respond_redirect(r, loc);
}

void web_request_refused(struct request *r, long long rid, const char *err)
{
	if (rid == WEB_REQUESTS_FULL)
		respond_error(r, 429, err);
	else
		respond_db_error(r, err);
}

const cJSON *web_read_result(const struct runner_answer *a, int i, char *why, size_t whylen)
{
	const cJSON *one = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(a->result, "results"), i);

	if (a->error[0]) {
		snprintf(why, whylen, "%s", a->error);
		return NULL;
	}
	if (!one) {
		snprintf(why, whylen, "the runner gave no answer for this read");
		return NULL;
	}
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(one, "ok"))) {
		const char *e = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(one, "error"));
		snprintf(why, whylen, "%s", e ? e : "failed");
		return NULL;
	}
	return cJSON_GetObjectItemCaseSensitive(one, "data");
}

long web_read_status(const struct runner_answer *a, int i)
{
	const cJSON *one = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(a->result, "results"), i);
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(one, "http_status");

	return cJSON_IsNumber(s) ? (long)s->valuedouble : 0;
}

cJSON *web_read_new(const char *read, long long cluster_id)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "read", read);
	cJSON_AddNumberToObject(o, "cluster_id", (double)cluster_id);
	return o;
}

void web_request_view(cJSON *view, const struct runner_answer *a, const char *message, const char *resubmit)
{
	cJSON *p = cJSON_AddObjectToObject(view, "live_pending");

	cJSON_AddNumberToObject(p, "id", (double)a->id);
	cJSON_AddStringToObject(p, "state", a->state);
	cJSON_AddStringToObject(p, "message", message);
	if (resubmit)
		cJSON_AddStringToObject(p, "resubmit", resubmit);
	/* an API client polls GET /requests/:id/state, then asks again */
	cJSON *req = cJSON_AddObjectToObject(view, "request");
	cJSON_AddNumberToObject(req, "id", (double)a->id);
	cJSON_AddStringToObject(req, "kind", a->kind);
	cJSON_AddStringToObject(req, "state", a->state);
}

static void add_request_state(cJSON *view, const struct runner_answer *a)
{
	cJSON *req = cJSON_AddObjectToObject(view, "request");

	cJSON_AddNumberToObject(req, "id", (double)a->id);
	cJSON_AddStringToObject(req, "kind", a->kind);
	cJSON_AddStringToObject(req, "state", a->state);
	cJSON_AddBoolToObject(req, "answered", a->answered);
	cJSON_AddStringToObject(req, "error", a->error);
}

void page_runner_request_state(struct request *r)
{
	struct runner_answer a;
	cJSON *view;

	if (web_request_load(r, request_param_id(r, "id"), &a) < 0) {
		respond_error(r, 404, "There is no such request.");
		return;
	}
	view = cJSON_CreateObject();
	add_request_state(view, &a);
	runner_answer_free(&a);
	r->wants_json = 1;
	respond_page(r, 200, "request_pending", view);
}

static const char *pending_words(const char *kind)
{
	if (strcmp(kind, "repository_probe") == 0)
		return "Testing the repository: a runner writes, reads back and deletes a probe object…";
	if (strcmp(kind, "hook_dry_run") == 0)
		return "Dry run: a runner runs the hook against the cluster, recording its writes…";
	if (strcmp(kind, "backup_object") == 0)
		return "Reading the object: a runner reads the backup's archive…";
	if (strcmp(kind, "modifier_preview") == 0)
		return "Previewing the modifiers: a runner applies them to the backup's objects…";
	if (strcmp(kind, "sso_discovery") == 0)
		return "Reading the provider: a runner fetches its discovery document and keys…";
	return "Testing the connection: a runner is reading the cluster…";
}

/* GET /requests/:id: while the runner has not answered, a page that follows it; then the page
 * that asked shows the answer (a save stored or refused, a Test's words, a dry run's output). */
void page_runner_request(struct request *r)
{
	struct runner_answer a;
	const char *purpose;

	/* the person who asked sees the answer (a form's values, a dry run's output) */
	if (web_request_load(r, request_param_id(r, "id"), &a) < 0 || a.created_by != r->session.user_id) {
		if (a.id)
			runner_answer_free(&a);
		respond_error(r, 404, "There is no such request.");
		return;
	}
	if (!a.answered) {
		cJSON *view = cJSON_CreateObject();
		cJSON_AddStringToObject(view, "title", "Waiting for a runner");
		web_request_view(view, &a, pending_words(a.kind), NULL);
		respond_page(r, 200, "request_pending", view);
		runner_answer_free(&a);
		return;
	}
	purpose = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a.params, "purpose"));
	if (!purpose)
		purpose = "";
	if (strncmp(purpose, "cluster_", 8) == 0)
		web_save_answered(r, &a, purpose, &cluster_saved);
	else if (strncmp(purpose, "repository_", 11) == 0)
		web_save_answered(r, &a, purpose, &repository_saved);
	else if (strcmp(purpose, "hook_dry_run") == 0)
		hook_dry_run_answered(r, &a);
	else if (strcmp(a.kind, "backup_object") == 0)
		backup_object_answered(r, &a);
	else if (strcmp(purpose, "sso_save") == 0)
		sso_request_answered(r, &a);
	else {
		cJSON *view = cJSON_CreateObject();
		cJSON_AddStringToObject(view, "title", "Answered");
		add_request_state(view, &a);
		respond_page(r, 200, "request_pending", view);
	}
	runner_answer_free(&a);
}
