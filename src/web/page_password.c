/* Passwords: a member changes theirs; a forgotten one is reset through a mailed one-time link.
 * Either ends every session of the account (password_set in sql/007_accounts.sql). */
#include "web.h"
#include "db.h"
#include "form.h"
#include "log.h"
#include "password.h"
#include "token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct form_field change_fields[] = {
	{ .name = "current_password", .label = "Current password", .kind = FORM_SECRET, .required = 1, .max_len = 256 },
	{ .name = "new_password", .label = "New password", .kind = FORM_PASSWORD, .required = 1, .max_len = 256 },
};
#define CHANGE_N (sizeof change_fields / sizeof change_fields[0])

static const struct form_field forgot_fields[] = {
	{ .name = "email", .label = "Email", .kind = FORM_EMAIL, .required = 1, .max_len = 254 },
};

static const struct form_field reset_fields[] = {
	{ .name = "new_password", .label = "New password", .kind = FORM_PASSWORD, .required = 1, .max_len = 256 },
};

static void account_respond(struct request *r, int status, cJSON *view)
{
	cJSON_AddStringToObject(view, "title", "Your account");
	if (status == 200)
		respond_page(r, 200, "account", view);
	else
		respond_form_errors(r, "account", view);
}

void page_account(struct request *r)
{
	account_respond(r, 200, cJSON_CreateObject());
}

/* After a password was set: every session is gone, this browser's cookie too. */
static void signed_out_after(struct request *r, const char *message)
{
	response_set_cookie(r, "stowage_session", "", 0);
	memset(&r->session, 0, sizeof r->session);
	response_flash(r, message);
	respond_redirect(r, "/signin");
}

void page_account_password(struct request *r)
{
	struct form_values v;
	char err[512];
	const char *params[] = { r->session.email };
	PGresult *res;

	if (form_validate(change_fields, CHANGE_N, &r->form, &v) > 0) {
		account_respond(r, 422, form_view(&v, change_fields));
		form_values_free(&v);
		return;
	}
	/* A stolen session must not become a password oracle: the same limits as sign-in. */
	if (web_rate_limit(r, "signin", "password attempts", r->session.email) <= 0 ||
	    web_signin_slowed(r, r->session.email) != 0) {
		form_values_free(&v);
		return;
	}
	res = db_exec(r->db, "SELECT password_hash FROM auth_lookup($1)", 1, params, err, sizeof err);
	if (!res) {
		form_values_free(&v);
		respond_db_error(r, err);
		return;
	}
	int ok = PQntuples(res) == 1 && password_verify(form_value(&v, change_fields, "current_password"),
							 PQgetvalue(res, 0, 0));
	PQclear(res);
	if (!ok) {
		if (web_signin_failed(r, r->session.email) < 0) {
			form_values_free(&v);
			return;
		}
		cJSON *view = form_view(&v, change_fields);
		cJSON *fields = cJSON_GetObjectItem(view, "fields");
		cJSON *cur = fields ? cJSON_GetObjectItem(fields, "current_password") : NULL;
		if (cur)
			cJSON_AddStringToObject(cur, "error", "Current password: wrong; the password did not change.");
		else
			cJSON_AddStringToObject(view, "form_error", "Current password: wrong; the password did not change.");
		form_values_free(&v);
		account_respond(r, 422, view);
		r->rollback = 0; /* the wrong password is recorded */
		return;
	}
	char *hash = password_hash(form_value(&v, change_fields, "new_password"));
	form_values_free(&v);
	if (!hash) {
		respond_db_error(r, "password hashing failed");
		return;
	}
	const char *p2[] = { hash };
	int rc = db_run(r->db, "SELECT password_change($1)", 1, p2, err, sizeof err);
	free(hash);
	if (rc < 0) {
		respond_db_error(r, err);
		return;
	}
	signed_out_after(r, "Your password was changed and every session of your account ended. Sign in with the new password.");
}

static void forgot_respond(struct request *r, int status, cJSON *view)
{
	cJSON_AddStringToObject(view, "title", "Forgot your password?");
	if (status == 200)
		respond_page(r, 200, "password_forgot", view);
	else
		respond_form_errors(r, "password_forgot", view);
}

void page_password_forgot_form(struct request *r)
{
	forgot_respond(r, 200, cJSON_CreateObject());
}

void page_password_forgot(struct request *r)
{
	struct form_values v;
	char err[512], token[TOKEN_TEXT_LEN + 1], hash[67];
	PGresult *res;

	if (form_validate(forgot_fields, 1, &r->form, &v) > 0) {
		forgot_respond(r, 422, form_view(&v, forgot_fields));
		form_values_free(&v);
		return;
	}
	const char *email = form_value(&v, forgot_fields, "email");
	if (web_rate_limit(r, "reset", "password reset mails", email) <= 0) {
		form_values_free(&v);
		return;
	}
	if (account_link_new(token, hash, err, sizeof err) < 0) {
		form_values_free(&v);
		respond_db_error(r, err);
		return;
	}
	const char *params[] = { email, hash };
	res = db_exec(r->db, "SELECT password_reset_request($1, $2)", 2, params, err, sizeof err);
	if (!res) {
		form_values_free(&v);
		respond_db_error(r, err);
		return;
	}
	int known = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (known && account_mail_link(r, email, "Reset your Stowage password",
				       "Someone (we hope you) asked to reset the password of your Stowage account. "
				       "Open this link to set a new one:", "/password/reset/", token,
				       "The link works once and expires in an hour. If it was not you, ignore this mail: "
				       "your password stays as it is.", err, sizeof err) < 0) {
		/* Said in the log only: the page must not differ for addresses without an account. */
		log_error("%s", err);
		r->rollback = 1;
	}
	/* The same answer whether or not the address has an account. */
	cJSON *view = cJSON_CreateObject();
	cJSON_AddBoolToObject(view, "sent", 1);
	cJSON_AddStringToObject(view, "email", email);
	form_values_free(&v);
	forgot_respond(r, 200, view);
}

/* The route's token when it is a reset link still good; NULL after answering. */
static const char *reset_token(struct request *r, char hash[67])
{
	const char *t = kv_get(&r->params, "token");
	char err[512];
	const char *params[] = { hash };
	PGresult *res;
	int valid;

	if (!t || strlen(t) != TOKEN_TEXT_LEN || strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
						  "0123456789-_") != TOKEN_TEXT_LEN) {
		respond_error(r, 404, "This reset link is not valid: copy the whole link from the mail.");
		return NULL;
	}
	web_token_hash_param(t, hash);
	res = db_exec(r->db, "SELECT password_reset_valid($1)", 1, params, err, sizeof err);
	if (!res) {
		respond_db_error(r, err);
		return NULL;
	}
	valid = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (!valid) {
		respond_error(r, 410, "This reset link was already used, was replaced by a newer one, or has expired. "
			      "Ask for a new one.");
		return NULL;
	}
	return t;
}

static void reset_respond(struct request *r, int status, cJSON *view, const char *token)
{
	cJSON_AddStringToObject(view, "title", "Set a new password");
	cJSON_AddStringToObject(view, "token", token);
	if (status == 200)
		respond_page(r, 200, "password_reset", view);
	else
		respond_form_errors(r, "password_reset", view);
}

void page_password_reset_form(struct request *r)
{
	char hash[67];
	const char *token = reset_token(r, hash);

	if (token)
		reset_respond(r, 200, cJSON_CreateObject(), token);
}

void page_password_reset(struct request *r)
{
	char hash[67], err[512];
	const char *token = reset_token(r, hash);
	struct form_values v;

	if (!token)
		return;
	if (form_validate(reset_fields, 1, &r->form, &v) > 0) {
		reset_respond(r, 422, form_view(&v, reset_fields), token);
		form_values_free(&v);
		return;
	}
	char *pw = password_hash(form_value(&v, reset_fields, "new_password"));
	form_values_free(&v);
	if (!pw) {
		respond_db_error(r, "password hashing failed");
		return;
	}
	const char *params[] = { hash, pw };
	PGresult *res = db_exec(r->db, "SELECT user_id FROM password_reset($1, $2)", 2, params, err, sizeof err);
	free(pw);
	if (!res) {
		respond_db_error(r, err);
		return;
	}
	int done = PQntuples(res) == 1;
	PQclear(res);
	if (!done) {
		respond_error(r, 410, "This reset link was already used or has expired. Ask for a new one.");
		return;
	}
	signed_out_after(r, "Your password was reset and every session of your account ended. Sign in with the new password.");
}
