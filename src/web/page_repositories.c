/* Backup repositories (manual 3.2): S3 or S3-compatible buckets. Submitting writes, reads back
 * and deletes a probe object and says "Connected" or exactly why not. Many clusters may share
 * one bucket: every backup lives under its own prefix and nothing takes a bucket-wide lock. */
#include "web.h"
#include "db.h"
#include "form.h"
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_choices[] = { "s3", "s3-compatible", NULL };

static const struct form_field repo_fields[] = {
	{ .name = "name", .label = "Name", .kind = FORM_NAME, .required = 1 },
	{ .name = "kind", .label = "Type", .kind = FORM_CHOICE, .required = 1, .choices = kind_choices },
	{ .name = "bucket", .label = "Bucket", .kind = FORM_TEXT, .required = 1, .max_len = 63 },
	{ .name = "region", .label = "Region", .kind = FORM_TEXT, .max_len = 64 },
	{ .name = "endpoint", .label = "Endpoint", .kind = FORM_URL, .max_len = 2048 },
	{ .name = "prefix", .label = "Prefix", .kind = FORM_TEXT, .max_len = 512 },
	{ .name = "access_key", .label = "Access key", .kind = FORM_TEXT, .required = 1, .max_len = 256 },
	{ .name = "secret_key", .label = "Secret key", .kind = FORM_SECRET, .max_len = 1024 },
	{ .name = "save_unverified", .label = "Save even if the test fails", .kind = FORM_BOOL },
};
#define REPO_N (sizeof repo_fields / sizeof repo_fields[0])

/* S3 bucket naming rules: 3-63 of [a-z0-9.-], starting and ending with a letter or digit. */
static int valid_bucket(const char *b)
{
	size_t n = strlen(b);

	return n >= 3 && n <= 63 && strspn(b, "abcdefghijklmnopqrstuvwxyz0123456789.-") == n &&
	       b[0] != '.' && b[0] != '-' && b[n - 1] != '.' && b[n - 1] != '-';
}

/* Words of lowercase letters and digits joined by single '-': us-east-1, eu-central-2, garage. */
static int valid_region(const char *r)
{
	size_t n = strlen(r);

	if (!n || n > 64 || r[0] == '-' || r[n - 1] == '-' || strstr(r, "--"))
		return 0;
	return strspn(r, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

/* A validated field's value, "" when it was left out. */
static const char *val(const struct form_values *v, const char *name)
{
	const char *value = form_value(v, repo_fields, name);

	return value ? value : "";
}

/* Checks across fields that the per-field kinds cannot express. */
static void repo_validate_more(struct form_values *v, long long id)
{
	const char *kind = val(v, "kind"), *endpoint = val(v, "endpoint"), *prefix = val(v, "prefix");

	if (*val(v, "bucket") && !valid_bucket(val(v, "bucket")))
		form_fail(v, repo_fields, "bucket", "Bucket: 3 to 63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit");
	if (*val(v, "region") && !valid_region(val(v, "region")))
		form_fail(v, repo_fields, "region", "Region: words of lowercase letters and digits joined by single '-', such as us-east-1");
	if (strcmp(kind, "s3-compatible") == 0 && !*endpoint)
		form_fail(v, repo_fields, "endpoint", "Endpoint: required for an S3-compatible store (http://minio.example:9000)");
	if (prefix[0] == '/' || strstr(prefix, ".."))
		form_fail(v, repo_fields, "prefix", "Prefix: a folder inside the bucket, without a leading '/' or '..'");
	if (!id && !*val(v, "secret_key"))
		form_fail(v, repo_fields, "secret_key", "Secret key: required");
}

static void repo_refused(struct request *r, const cJSON *p, const char *msg);

/* How the repository form is shown and a runner's answer to its save or Test (web_connection.c). */
const struct web_saved repository_saved = {
	.what = "repository", .id_param = "repository_id", .test_purpose = "repository_test", .list = "/repositories",
	.refused = repo_refused, .page = "repository_form", .nav = "nav_repositories",
	.title_new = "Add a backup repository", .title_edit = "Edit repository", .test_noun = "access test",
	.test_label = "Test access", .secret_name = "secret_key", .secret_label = "Secret key",
};

static void repo_form_respond(struct request *r, int status, cJSON *view, long long id)
{
	web_connection_form(r, status, view, id, &repository_saved);
}

void page_repositories(struct request *r)
{
	char err[512];
	PGresult *res = db_exec(r->db,
		"SELECT id, name, kind, bucket, region, coalesce(endpoint, '') AS endpoint, prefix, status, status_message, "
		"coalesce(to_char(last_checked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), '') AS last_checked, "
		"status = 'connected' AS connected "
		"FROM repositories ORDER BY name", 0, NULL, err, sizeof err);
	cJSON *view;

	if (!res) {
		respond_db_error(r, err);
		return;
	}
	view = cJSON_CreateObject();
	cJSON_AddStringToObject(view, "title", "Backup repositories");
	cJSON_AddBoolToObject(view, "nav_repositories", 1);
	cJSON_AddItemToObject(view, "repositories", db_rows_json(res));
	PQclear(res);
	respond_page(r, 200, "repositories", view);
}

void page_repository_new(struct request *r)
{
	cJSON *view = cJSON_CreateObject();
	cJSON *fields = cJSON_AddObjectToObject(view, "fields");

	cJSON_AddStringToObject(cJSON_AddObjectToObject(fields, "region"), "value", "us-east-1");
	cJSON_AddBoolToObject(view, "kind_compatible", 1);
	repo_form_respond(r, 200, view, 0);
}

/* The sealed secret key stored for repository id, or NULL after answering. The web never opens
 * it: the runner does, for the probe. */
static char *repo_stored_secret(struct request *r, long long id)
{
	PGresult *res = web_row(r, "SELECT secret_key_enc FROM repositories WHERE id = $1", id, "repository");
	char *secret;

	if (!res)
		return NULL;
	secret = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return secret;
}

/* Asks a runner to probe the bucket; the page follows the request (web_save_answered). */
static void repo_ask(struct request *r, cJSON *p)
{
	web_request_follow(r, "repository_probe", p);
}

static void repo_save(struct request *r, long long id)
{
	struct form_values v;
	char sid[24];
	char *sealed = NULL;
	cJSON *view, *p;

	form_validate(repo_fields, REPO_N, &r->form, &v);
	repo_validate_more(&v, id);
	if (v.errors) {
		view = form_view(&v, repo_fields);
		cJSON_AddBoolToObject(view, "kind_compatible", strcmp(val(&v, "kind"), "s3") != 0);
		repo_form_respond(r, 422, view, id);
		form_values_free(&v);
		return;
	}
	snprintf(sid, sizeof sid, "%lld", id);
	if (*val(&v, "secret_key")) {
		if (!(sealed = secret_seal(&r->ctx->keyring, r->session.org_id, "repository.secret_key", val(&v, "secret_key")))) {
			respond_db_error(r, "sealing the secret key failed");
			goto out;
		}
	} else if (!(sealed = repo_stored_secret(r, id))) {
		goto out;
	}
	if (web_org_rate_limit(r) <= 0)
		goto out;
	p = cJSON_CreateObject();
	cJSON_AddStringToObject(p, "purpose", "repository_save");
	cJSON_AddNumberToObject(p, "repository_id", (double)id);
	cJSON_AddStringToObject(p, "name", val(&v, "name"));
	cJSON_AddStringToObject(p, "kind", val(&v, "kind"));
	cJSON_AddStringToObject(p, "bucket", val(&v, "bucket"));
	cJSON_AddStringToObject(p, "region", *val(&v, "region") ? val(&v, "region") : "us-east-1");
	cJSON_AddStringToObject(p, "endpoint", val(&v, "endpoint"));
	cJSON_AddStringToObject(p, "prefix", val(&v, "prefix"));
	cJSON_AddStringToObject(p, "access_key", val(&v, "access_key"));
	cJSON_AddStringToObject(p, "secret_key_enc", sealed);
	cJSON_AddStringToObject(p, "key_id", r->ctx->keyring.key_id);
	cJSON_AddBoolToObject(p, "save_unverified", strcmp(val(&v, "save_unverified"), "true") == 0);
	repo_ask(r, p);
out:
	free(sealed);
	form_values_free(&v);
}

/* A save that was not stored: the form again with why and what was typed (never the secret). */
static void repo_refused(struct request *r, const cJSON *p, const char *msg)
{
	static const char *const names[] = { "name", "kind", "bucket", "region", "endpoint", "prefix", "access_key" };
	long long id = (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(p, "repository_id"));
	cJSON *view = cJSON_CreateObject(), *fields = cJSON_AddObjectToObject(view, "fields");

	for (int i = 0; i < 7; i++)
		cJSON_AddStringToObject(cJSON_AddObjectToObject(fields, names[i]), "value", json_str(p, names[i]));
	cJSON_AddStringToObject(view, "form_error", msg);
	cJSON_AddBoolToObject(view, "kind_compatible", strcmp(json_str(p, "kind"), "s3") != 0);
	if (id)
		cJSON_AddBoolToObject(view, "secret_stored", 1);
	repo_form_respond(r, 422, view, id);
}


void page_repository_create(struct request *r)
{
	repo_save(r, 0);
}

void page_repository_update(struct request *r)
{
	long long id = request_param_id(r, "id");

	if (!id) {
		respond_error(r, 404, "There is no such repository.");
		return;
	}
	repo_save(r, id);
}

void page_repository_edit(struct request *r)
{
	long long id = request_param_id(r, "id");
	char sid[24];
	static const char *const names[] = { "name", "kind", "bucket", "region", "endpoint", "prefix", "access_key" };
	PGresult *res = web_row(r, "SELECT name, kind, bucket, region, coalesce(endpoint, ''), prefix, access_key, "
				"status, status_message FROM repositories WHERE id = $1", id, "repository");
	cJSON *view, *fields;

	if (!res)
		return;
	snprintf(sid, sizeof sid, "%lld", id);
	view = cJSON_CreateObject();
	fields = cJSON_AddObjectToObject(view, "fields");
	for (int i = 0; i < 7; i++)
		cJSON_AddStringToObject(cJSON_AddObjectToObject(fields, names[i]), "value", PQgetvalue(res, 0, i));
	cJSON_AddBoolToObject(view, "kind_compatible", strcmp(PQgetvalue(res, 0, 1), "s3") != 0);
	cJSON_AddStringToObject(view, "status", PQgetvalue(res, 0, 7));
	cJSON_AddStringToObject(view, "status_message", PQgetvalue(res, 0, 8));
	cJSON_AddBoolToObject(view, "secret_stored", 1);
	PQclear(res);
	web_repository_upkeep(r, view, sid);
	repo_form_respond(r, 200, view, id);
}

/* Test: a runner probes the bucket with the stored secret; the page follows its answer. */
void page_repository_test(struct request *r)
{
	long long id = request_param_id(r, "id");
	PGresult *res;
	cJSON *p;

	if (web_org_rate_limit(r) <= 0)
		return;
	res = web_row(r, "SELECT kind, bucket, region, coalesce(endpoint, ''), access_key, secret_key_enc "
		      "FROM repositories WHERE id = $1", id, "repository");
	if (!res)
		return;
	p = cJSON_CreateObject();
	cJSON_AddStringToObject(p, "purpose", "repository_test");
	cJSON_AddNumberToObject(p, "repository_id", (double)id);
	static const char *const cols[] = { "kind", "bucket", "region", "endpoint", "access_key", "secret_key_enc" };
	for (int i = 0; i < 6; i++)
		cJSON_AddStringToObject(p, cols[i], PQgetvalue(res, 0, i));
	PQclear(res);
	repo_ask(r, p);
}

void page_repository_delete(struct request *r)
{
	static const struct delete_action a = {
		"DELETE FROM repositories WHERE id = $1 RETURNING name", "repository.delete", "There is no such repository.",
		"This repository holds backups or is used by a plan: delete those first.",
		"Repository %s deleted; the backups in its bucket were left in place.", "/repositories",
	};

	respond_delete(r, &a);
}
