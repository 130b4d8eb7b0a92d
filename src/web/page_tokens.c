/* API tokens of the organisation: admins create them (the secret is shown once, on the answer
 * to the creating POST, and never stored), see when each was last used, and revoke them. */
#include "web.h"
#include "audit.h"
#include "db.h"
#include "form.h"
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const role_choices[] = { "viewer", "operator", "admin", NULL };

static const struct form_field token_fields[] = {
	{ .name = "name", .label = "Name", .kind = FORM_TEXT, .required = 1, .max_len = 100 },
	{ .name = "role", .label = "Role", .kind = FORM_CHOICE, .required = 1, .choices = role_choices },
	{ .name = "expires_in_days", .label = "Expires in (days)", .kind = FORM_INT, .min = 1, .max = 3650 },
};
#define TOKEN_N (sizeof token_fields / sizeof token_fields[0])

/* The tokens list, added to view; 0 or -1 after answering with the error. */
static int add_tokens(struct request *r, cJSON *view)
{
	char err[512];
	PGresult *res = db_exec(r->db,
		"SELECT t.id, t.name, t.role, t.prefix, coalesce(u.email, '') AS created_by, "
		"to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS created, "
		"coalesce(to_char(t.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), '') AS expires, "
		"coalesce(to_char(t.last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), '') AS last_used, "
		"CASE WHEN t.revoked_at IS NOT NULL THEN 'revoked' "
		"WHEN t.expires_at <= now() THEN 'expired' ELSE 'active' END AS state "
		"FROM api_tokens t LEFT JOIN users u ON u.id = t.created_by "
		"ORDER BY t.revoked_at IS NOT NULL, t.created_at DESC, t.id DESC",
		0, NULL, err, sizeof err);
	cJSON *list, *t;

	if (!res) {
		respond_db_error(r, err);
		return -1;
	}
	list = db_rows_json(res);
	cJSON_AddItemToObject(view, "tokens", list);
	cJSON_ArrayForEach(t, list)
		cJSON_AddBoolToObject(t, "active", strcmp(json_str(t, "state"), "active") == 0);
	PQclear(res);
	return 0;
}

static void tokens_respond(struct request *r, int status, cJSON *view)
{
	cJSON_AddStringToObject(view, "title", "API tokens");
	cJSON_AddBoolToObject(view, "nav_tokens", 1);
	if (add_tokens(r, view) < 0) {
		cJSON_Delete(view);
		return;
	}
	if (status == 422)
		respond_form_errors(r, "tokens", view);
	else
		respond_page(r, status, "tokens", view);
}

void page_tokens(struct request *r)
{
	tokens_respond(r, 200, cJSON_CreateObject());
}

void page_token_create(struct request *r)
{
	struct form_values v;
	char random[TOKEN_TEXT_LEN + 1], secret[API_TOKEN_TEXT_LEN + 1], prefix[9], hash[67], sid[24], err[512];
	PGresult *res;

	if (form_validate(token_fields, TOKEN_N, &r->form, &v) > 0) {
		tokens_respond(r, 422, form_view(&v, token_fields));
		form_values_free(&v);
		return;
	}
	if (token_new(random) < 0) {
		form_values_free(&v);
		respond_error(r, 503, "No random bytes for a token; try again.");
		return;
	}
	snprintf(secret, sizeof secret, "%s%s", API_TOKEN_PREFIX, random);
	snprintf(prefix, sizeof prefix, "%.8s", secret);
	web_token_hash_param(secret, hash);
	const char *name = form_value(&v, token_fields, "name");
	const char *role = form_value(&v, token_fields, "role");
	const char *days = form_value(&v, token_fields, "expires_in_days");
	const char *params[] = { name, role, hash, prefix, days };
	res = db_exec(r->db, "INSERT INTO api_tokens (name, role, token_hash, prefix, expires_at) "
		      "VALUES ($1, $2, $3, $4, now() + make_interval(days => $5::int)) RETURNING id",
		      5, params, err, sizeof err);
	if (!res) {
		form_values_free(&v);
		respond_db_error(r, err);
		return;
	}
	snprintf(sid, sizeof sid, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	cJSON *detail = cJSON_CreateObject();
	cJSON_AddNumberToObject(detail, "token_id", (double)strtoll(sid, NULL, 10));
	cJSON_AddStringToObject(detail, "role", role);
	cJSON_AddStringToObject(detail, "expires_in_days", days ? days : "never");
	int rc = audit_record(r->db, "token.create", name, detail, err, sizeof err);
	cJSON_Delete(detail);
	if (rc < 0) {
		form_values_free(&v);
		respond_db_error(r, err);
		return;
	}
	cJSON *view = cJSON_CreateObject();
	cJSON *created = cJSON_AddObjectToObject(view, "created");
	cJSON_AddNumberToObject(created, "id", (double)strtoll(sid, NULL, 10));
	cJSON_AddStringToObject(created, "name", name);
	cJSON_AddStringToObject(created, "role", role);
	cJSON_AddStringToObject(created, "token", secret);
	explicit_bzero(random, sizeof random);
	explicit_bzero(secret, sizeof secret);
	form_values_free(&v);
	tokens_respond(r, 201, view);
}

void page_token_revoke(struct request *r)
{
	long long id = request_param_id(r, "id");
	char sid[24], err[512], msg[300];
	const char *params[] = { sid };
	PGresult *res;

	if (!id) {
		respond_error(r, 404, "There is no such token in this organisation.");
		return;
	}
	snprintf(sid, sizeof sid, "%lld", id);
	res = db_exec(r->db, "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL "
		      "RETURNING name", 1, params, err, sizeof err);
	if (!res) {
		respond_db_error(r, err);
		return;
	}
	if (PQntuples(res) != 1) {
		PQclear(res);
		respond_error(r, 404, "There is no such active token in this organisation.");
		return;
	}
	cJSON *detail = cJSON_CreateObject();
	cJSON_AddNumberToObject(detail, "token_id", (double)id);
	snprintf(msg, sizeof msg, "The token %s is revoked; requests with it are refused from now on.", PQgetvalue(res, 0, 0));
	int rc = audit_record(r->db, "token.revoke", PQgetvalue(res, 0, 0), detail, err, sizeof err);
	cJSON_Delete(detail);
	PQclear(res);
	if (rc < 0) {
		respond_db_error(r, err);
		return;
	}
	response_flash(r, msg);
	respond_redirect(r, "/tokens");
}
