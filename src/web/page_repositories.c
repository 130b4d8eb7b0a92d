/* Backup repositories (manual 3.2): S3 or S3-compatible buckets. Submitting writes, reads back
 * and deletes a probe object and says "Connected" or exactly why not. Many clusters may share
 * one bucket: every backup lives under its own prefix and nothing takes a bucket-wide lock. */
#include "web.h"
#include "audit.h"
#include "db.h"
#include "form.h"
#include "s3_client.h"

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
enum { F_NAME, F_KIND, F_BUCKET, F_REGION, F_ENDPOINT, F_PREFIX, F_ACCESS, F_SECRET, F_UNVERIFIED };

#define REPO_TEST_TIMEOUT_MS 10000

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
static const char *val(const struct form_values *v, int field)
{
	return v->value[field] ? v->value[field] : "";
}

static void set_error(struct form_values *v, int field, const char *msg)
{
	if (v->error[field])
		return;
	v->error[field] = xstrdup(msg);
	v->errors++;
}

/* Checks across fields that the per-field kinds cannot express. */
static void repo_validate_more(struct form_values *v, long long id)
{
	const char *kind = val(v, F_KIND), *endpoint = val(v, F_ENDPOINT), *prefix = val(v, F_PREFIX);

	if (v->value[F_BUCKET] && !valid_bucket(v->value[F_BUCKET]))
		set_error(v, F_BUCKET, "Bucket: 3 to 63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit");
	if (*val(v, F_REGION) && !valid_region(val(v, F_REGION)))
		set_error(v, F_REGION, "Region: words of lowercase letters and digits joined by single '-', such as us-east-1");
	if (strcmp(kind, "s3-compatible") == 0 && !*endpoint)
		set_error(v, F_ENDPOINT, "Endpoint: required for an S3-compatible store (http://minio.example:9000)");
	if (prefix[0] == '/' || strstr(prefix, ".."))
		set_error(v, F_PREFIX, "Prefix: a folder inside the bucket, without a leading '/' or '..'");
	if (!id && !*val(v, F_SECRET))
		set_error(v, F_SECRET, "Secret key: required");
}

static void repo_form_respond(struct request *r, int status, cJSON *view, long long id)
{
	cJSON_AddStringToObject(view, "title", id ? "Edit repository" : "Add a backup repository");
	cJSON_AddBoolToObject(view, "nav_repositories", 1);
	if (id)
		cJSON_AddNumberToObject(view, "id", (double)id);
	if (status == 200)
		respond_page(r, 200, "repository_form", view);
	else
		respond_form_errors(r, "repository_form", view);
}

/* The probe: write, read back and delete an object. message receives "Connected" or why not. */
static int repo_test(const struct web_context *ctx, const char *kind, const char *bucket, const char *region,
		     const char *endpoint, const char *access_key, const char *secret_key,
		     char *message, size_t msglen)
{
	struct s3_conf conf = { .endpoint = (char *)(strcmp(kind, "s3") == 0 && !(endpoint && *endpoint) ? NULL : endpoint),
				.region = (char *)(region && *region ? region : "us-east-1"),
				.bucket = (char *)bucket, .access_key = (char *)access_key,
				.secret_key = (char *)secret_key, .path_style = strcmp(kind, "s3-compatible") == 0,
				.timeout_ms = REPO_TEST_TIMEOUT_MS };
	struct s3_error err = { 0 };

	if (s3_probe(&conf, &ctx->allowed_networks, &err) == 0) {
		snprintf(message, msglen, "Connected: wrote, read back and deleted a probe object in %s", bucket);
		return 1;
	}
	s3_error_describe(&err, message, msglen);
	return 0;
}

void page_repositories(struct request *r)
{
	char err[512];
	PGresult *res = db_exec(r->db,
		"SELECT id, name, kind, bucket, region, coalesce(endpoint, ''), prefix, status, status_message, "
		"coalesce(to_char(last_checked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), '') "
		"FROM repositories ORDER BY name", 0, NULL, err, sizeof err);
	cJSON *view, *list;
	static const char *const cols[] = { NULL, "name", "kind", "bucket", "region", "endpoint", "prefix",
					    "status", "status_message", "last_checked" };

	if (!res) {
		respond_db_error(r, err);
		return;
	}
	view = cJSON_CreateObject();
	cJSON_AddStringToObject(view, "title", "Backup repositories");
	cJSON_AddBoolToObject(view, "nav_repositories", 1);
	list = cJSON_AddArrayToObject(view, "repositories");
	for (int i = 0; i < PQntuples(res); i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "id", strtod(PQgetvalue(res, i, 0), NULL));
		for (int c = 1; c < 10; c++)
			cJSON_AddStringToObject(o, cols[c], PQgetvalue(res, i, c));
		cJSON_AddBoolToObject(o, "connected", strcmp(PQgetvalue(res, i, 7), "connected") == 0);
		cJSON_AddItemToArray(list, o);
	}
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

/* The stored secret key of repository id (tenant-bound), or NULL after answering. */
static char *repo_stored_secret(struct request *r, const char *sid)
{
	const char *params[] = { sid };
	char err[512], *secret = NULL;
	PGresult *res = db_exec(r->db, "SELECT secret_key_enc FROM repositories WHERE id = $1", 1, params, err, sizeof err);

	if (!res || PQntuples(res) != 1)
		respond_error(r, 404, "There is no such repository.");
	else if (!(secret = secret_open(&r->ctx->keyring, r->session.org_id, "repository.secret_key", PQgetvalue(res, 0, 0))))
		respond_error(r, 500, "The stored secret key cannot be decrypted with the current master key.");
	PQclear(res);
	return secret;
}

static void repo_save(struct request *r, long long id)
{
	struct form_values v;
	char err[512], sid[24], message[600];
	char *secret = NULL, *sealed = NULL;
	cJSON *view;

	form_validate(repo_fields, REPO_N, &r->form, &v);
	repo_validate_more(&v, id);
	if (v.errors) {
		view = form_view(&v, repo_fields);
		cJSON_AddBoolToObject(view, "kind_compatible", strcmp(val(&v, F_KIND), "s3") != 0);
		repo_form_respond(r, 422, view, id);
		form_values_free(&v);
		return;
	}
	snprintf(sid, sizeof sid, "%lld", id);
	if (*val(&v, F_SECRET))
		secret = xstrdup(val(&v, F_SECRET));
	else if (!(secret = repo_stored_secret(r, sid)))
		goto out;
	if (web_org_rate_limit(r) <= 0)
		goto out;
	const char *region = *val(&v, F_REGION) ? val(&v, F_REGION) : "us-east-1";
	const char *endpoint = *val(&v, F_ENDPOINT) ? val(&v, F_ENDPOINT) : NULL;
	int ok = repo_test(r->ctx, val(&v, F_KIND), val(&v, F_BUCKET), region, endpoint, val(&v, F_ACCESS), secret,
			   message, sizeof message);
	if (!ok && strcmp(val(&v, F_UNVERIFIED), "true") != 0) {
		char msg[700];
		view = form_view(&v, repo_fields);
		snprintf(msg, sizeof msg, "Not saved: %s", message);
		cJSON_AddStringToObject(view, "form_error", msg);
		cJSON_AddBoolToObject(view, "kind_compatible", strcmp(val(&v, F_KIND), "s3") != 0);
		repo_form_respond(r, 422, view, id);
		goto out;
	}
	sealed = secret_seal(&r->ctx->keyring, r->session.org_id, "repository.secret_key", secret);
	const char *params[] = { val(&v, F_NAME), val(&v, F_KIND), val(&v, F_BUCKET), region, endpoint,
				 val(&v, F_PREFIX), strcmp(val(&v, F_KIND), "s3-compatible") == 0 ? "true" : "false",
				 val(&v, F_ACCESS), sealed, r->ctx->keyring.key_id, ok ? "connected" : "error", message, sid };
	PGresult *res = sealed ? db_exec(r->db, id ?
		"UPDATE repositories SET name = $1, kind = $2, bucket = $3, region = $4, endpoint = $5, prefix = $6, "
		"path_style = $7, access_key = $8, secret_key_enc = $9, key_id = $10, status = $11, status_message = $12, "
		"last_checked_at = now(), updated_at = now() WHERE id = $13 RETURNING id" :
		"INSERT INTO repositories (name, kind, bucket, region, endpoint, prefix, path_style, access_key, "
		"secret_key_enc, key_id, status, status_message, last_checked_at) "
		"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now()) RETURNING id",
		id ? 13 : 12, params, err, sizeof err) : NULL;
	if (!res) {
		if (strcmp(db_last_sqlstate(), "23505") == 0) {
			view = form_view(&v, repo_fields);
			cJSON_AddStringToObject(view, "form_error", "Name: a repository of that name already exists.");
			repo_form_respond(r, 422, view, id);
		} else {
			respond_db_error(r, sealed ? err : "sealing the secret key failed");
		}
		goto out;
	}
	int found = PQntuples(res) == 1;
	long long created = found && !id ? atoll(PQgetvalue(res, 0, 0)) : 0;
	PQclear(res);
	if (!found) {
		respond_error(r, 404, "There is no such repository.");
		goto out;
	}
	/* a new repository that connected reads its bucket's backups into the catalog (re-import) */
	if (created && ok && web_repository_sync_queue(r, created, err, sizeof err) < 0) {
		respond_db_error(r, err);
		goto out;
	}
	cJSON *detail = cJSON_CreateObject();
	cJSON_AddStringToObject(detail, "bucket", val(&v, F_BUCKET));
	cJSON_AddStringToObject(detail, "status", ok ? "connected" : "error");
	int rc = audit_record(r->db, id ? "repository.update" : "repository.create", val(&v, F_NAME), detail, err, sizeof err);
	cJSON_Delete(detail);
	if (rc < 0) {
		respond_db_error(r, err);
		goto out;
	}
	response_flash(r, message);
	respond_redirect(r, "/repositories");
out:
	secret_free(secret);
	free(sealed);
	form_values_free(&v);
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
	char sid[24], err[512];
	const char *params[] = { sid };
	static const char *const names[] = { "name", "kind", "bucket", "region", "endpoint", "prefix", "access_key" };
	PGresult *res;
	cJSON *view, *fields;

	snprintf(sid, sizeof sid, "%lld", id);
	res = id ? db_exec(r->db, "SELECT name, kind, bucket, region, coalesce(endpoint, ''), prefix, access_key, "
			   "status, status_message FROM repositories WHERE id = $1", 1, params, err, sizeof err) : NULL;
	if (!res || PQntuples(res) != 1) {
		PQclear(res);
		respond_error(r, 404, "There is no such repository.");
		return;
	}
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

void page_repository_test(struct request *r)
{
	long long id = request_param_id(r, "id");
	char sid[24], err[512], loc[64], message[600];
	const char *params[] = { sid };
	PGresult *res;
	char *secret;
	int ok = 0;

	if (web_org_rate_limit(r) <= 0)
		return;
	snprintf(sid, sizeof sid, "%lld", id);
	res = id ? db_exec(r->db, "SELECT kind, bucket, region, endpoint, access_key FROM repositories WHERE id = $1",
			   1, params, err, sizeof err) : NULL;
	if (!res || PQntuples(res) != 1) {
		PQclear(res);
		respond_error(r, 404, "There is no such repository.");
		return;
	}
	if (!(secret = repo_stored_secret(r, sid))) {
		PQclear(res);
		return;
	}
	ok = repo_test(r->ctx, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
		       PQgetisnull(res, 0, 3) ? NULL : PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 4), secret,
		       message, sizeof message);
	secret_free(secret);
	PQclear(res);
	const char *upd[] = { ok ? "connected" : "error", message, sid };
	if (db_run(r->db, "UPDATE repositories SET status = $1, status_message = $2, last_checked_at = now() WHERE id = $3",
		   3, upd, err, sizeof err) < 0) {
		respond_db_error(r, err);
		return;
	}
	response_flash(r, message);
	snprintf(loc, sizeof loc, "/repositories/%lld", id);
	respond_redirect(r, loc);
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
