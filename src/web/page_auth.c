/* Sign-up of a new organisation with its first admin, sign-in and sign-out. */
#include "web.h"
#include "audit.h"
#include "db.h"
#include "form.h"
#include "log.h"
#include "password.h"
#include "token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct form_field signup_fields[] = {
	{ .name = "org", .label = "Organisation", .kind = FORM_TEXT, .required = 1, .max_len = 100 },
	{ .name = "display_name", .label = "Your name", .kind = FORM_TEXT, .required = 1, .max_len = 100 },
	{ .name = "email", .label = "Email", .kind = FORM_EMAIL, .required = 1, .max_len = 254 },
	{ .name = "password", .label = "Password", .kind = FORM_PASSWORD, .required = 1, .max_len = 256 },
};
#define SIGNUP_N (sizeof signup_fields / sizeof signup_fields[0])

static const struct form_field signin_fields[] = {
	{ .name = "email", .label = "Email", .kind = FORM_EMAIL, .required = 1, .max_len = 254 },
	{ .name = "password", .label = "Password", .kind = FORM_SECRET, .required = 1, .max_len = 256 },
};
#define SIGNIN_N (sizeof signin_fields / sizeof signin_fields[0])

/* Only a path on this site may follow sign-in, never another site: it starts with a single '/',
 * and holds no control character, no "//", no backslash (browsers read it as '/') and no scheme
 * (a ':' before the first '/' or '?'; with a leading '/' that can only come from odd input). */
const char *web_safe_next(const char *next)
{
	if (!next || next[0] != '/' || strlen(next) > 2048)
		return "/";
	for (const unsigned char *p = (const unsigned char *)next; *p; p++) {
		if (*p < 0x20 || *p == 0x7f || *p == '\\')
			return "/";
		if (p[0] == '/' && p[1] == '/')
			return "/";
	}
	/* Percent-encoded slashes and backslashes would decode into the same tricks downstream. */
	if (strstr(next, "%2f") || strstr(next, "%2F") || strstr(next, "%5c") || strstr(next, "%5C"))
		return "/";
	size_t first = strcspn(next + 1, "/?#");
	const char *colon = memchr(next + 1, ':', first);
	if (colon)
		return "/";
	return next;
}

void page_signup_form(struct request *r)
{
	cJSON *view = cJSON_CreateObject();

	cJSON_AddStringToObject(view, "title", "Create an organisation");
	respond_page(r, 200, "signup", view);
}

void page_signup_post(struct request *r)
{
	struct form_values v;
	cJSON *view;
	char err[512];

	if (form_validate(signup_fields, SIGNUP_N, &r->form, &v) > 0) {
		view = form_view(&v, signup_fields);
		cJSON_AddStringToObject(view, "title", "Create an organisation");
		form_values_free(&v);
		respond_form_errors(r, "signup", view);
		return;
	}
	int allowed = web_rate_limit(r, "signup", "sign-ups", form_value(&v, signup_fields, "email"));
	if (allowed <= 0) {
		form_values_free(&v);
		return;
	}
	char token[TOKEN_TEXT_LEN + 1], token_hash[67];
	if (account_link_new(token, token_hash, err, sizeof err) < 0) {
		form_values_free(&v);
		respond_db_error(r, err);
		return;
	}
	char *hash = password_hash(form_value(&v, signup_fields, "password"));
	const char *params[] = { form_value(&v, signup_fields, "org"), form_value(&v, signup_fields, "email"),
				 form_value(&v, signup_fields, "display_name"), hash, token_hash };
	PGresult *res = hash ? db_exec(r->db, "SELECT org_id, user_id FROM signup($1, $2, $3, $4, $5)",
				       5, params, err, sizeof err) : NULL;
	free(hash);
	if (!res) {
		if (strcmp(db_last_sqlstate(), "23505") == 0) {
			view = form_view(&v, signup_fields);
			cJSON_AddStringToObject(view, "form_error",
				"Organisation: that name is already taken; choose another.");
			cJSON_AddStringToObject(view, "title", "Create an organisation");
			form_values_free(&v);
			respond_form_errors(r, "signup", view);
			return;
		}
		form_values_free(&v);
		respond_db_error(r, hash ? err : "password hashing failed");
		return;
	}
	const char *email = form_value(&v, signup_fields, "email");
	int existing = PQgetisnull(res, 0, 0);
	if (existing) {
		/* The address has a confirmed account: tell its owner, and answer as for any address. */
		PQclear(res);
		struct strbuf body = STRBUF_INIT;
		struct mail_conf conf = r->ctx->mail;
		strbuf_addf(&body, "Someone (perhaps you) tried to create an organisation on Stowage with this address, "
			    "which already has an account. Nothing was created.\n\nSign in: %s/signin\n"
			    "Forgot your password? %s/password/forgot\n\nIf it was not you, ignore this mail.\n",
			    r->ctx->site_url, r->ctx->site_url);
		if (mail_send(&conf, email, "You already have a Stowage account", body.buf, err, sizeof err) < 0)
			log_error("%s", err);
		strbuf_release(&body);
	} else {
		long long org_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		long long user_id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		PQclear(res);
		log_info("organisation %lld created by user %lld, waiting for the address to be confirmed", org_id, user_id);
	}
	/* Nothing is usable until the address is proven: no session yet, only a mailed link. */
	if (!existing && account_mail_link(r, email, "Confirm your address for Stowage",
			      "Someone (we hope you) created an organisation on Stowage with this address. "
			      "Open this link to confirm the address and start:",
			      "/confirm/", token,
			      "The link works once and expires in two days. If it was not you, ignore this mail: "
			      "nothing can be done with the account until the address is confirmed.",
			      err, sizeof err) < 0) {
		log_error("%s", err);
		r->rollback = 1;
		form_values_free(&v);
		respond_error(r, 503, "The confirmation mail could not be sent, so nothing was created; try again later.");
		return;
	}
	view = cJSON_CreateObject();
	cJSON_AddStringToObject(view, "title", "Check your mail");
	cJSON_AddStringToObject(view, "email", email);
	form_values_free(&v);
	respond_page(r, 200, "check_mail", view);
}

static void signin_view_respond(struct request *r, int status, struct form_values *v, const char *form_error)
{
	cJSON *view = v ? form_view(v, signin_fields) : cJSON_CreateObject();
	const char *next = kv_get(&r->form, "_next");

	if (!next)
		next = kv_get(&r->query, "next");
	cJSON_AddStringToObject(view, "title", "Sign in");
	cJSON_AddStringToObject(view, "next", web_safe_next(next));
	if (form_error)
		cJSON_AddStringToObject(view, "form_error", form_error);
	if (status == 200)
		respond_page(r, 200, "signin", view);
	else
		respond_form_errors(r, "signin", view);
}

void page_signin_form(struct request *r)
{
	if (r->session.user_id) {
		respond_redirect(r, "/");
		return;
	}
	signin_view_respond(r, 200, NULL, NULL);
}

void page_signin_post(struct request *r)
{
	struct form_values v;
	char err[512];
	const char *hash = password_dummy_hash();
	long long user_id = 0, org_id = 0;

	if (form_validate(signin_fields, SIGNIN_N, &r->form, &v) > 0) {
		signin_view_respond(r, 422, &v, NULL);
		form_values_free(&v);
		return;
	}
	const char *params[] = { form_value(&v, signin_fields, "email") };
	int confirmed = 0;
	if (web_rate_limit(r, "signin", "sign-in attempts", params[0]) <= 0) {
		form_values_free(&v);
		return;
	}
	int slowed = web_signin_slowed(r, params[0]);
	if (slowed != 0) {
		form_values_free(&v);
		return;
	}
	PGresult *res = db_exec(r->db, "SELECT user_id, password_hash, org_id, confirmed FROM auth_lookup($1)",
				1, params, err, sizeof err);
	if (!res) {
		form_values_free(&v);
		respond_db_error(r, err);
		return;
	}
	if (PQntuples(res) == 1) {
		user_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		hash = PQgetvalue(res, 0, 1);
		org_id = PQgetisnull(res, 0, 2) ? 0 : strtoll(PQgetvalue(res, 0, 2), NULL, 10);
		confirmed = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
	}
	/* Verify even for an unknown email, so that timing does not reveal which emails exist. */
	int ok = password_verify(form_value(&v, signin_fields, "password"), hash) && user_id && org_id;
	PQclear(res);
	if (!ok) {
		if (web_signin_failed(r, params[0]) < 0) {
			form_values_free(&v);
			return;
		}
		signin_view_respond(r, 422, &v, "Email or password is wrong.");
		r->rollback = 0; /* the failure and the attempt are recorded (the rate limits count them) */
		form_values_free(&v);
		return;
	}
	if (!confirmed) {
		/* Said only to whoever knows the password. */
		signin_view_respond(r, 422, &v, "This address is not confirmed yet: open the link in the mail we sent to it.");
		form_values_free(&v);
		return;
	}
	char org_text[24];
	const char *org_param[] = { org_text };
	snprintf(org_text, sizeof org_text, "%lld", org_id);
	res = db_exec(r->db, "SELECT sso_required($1::bigint)", 1, org_param, err, sizeof err);
	if (!res) {
		form_values_free(&v);
		respond_db_error(r, err);
		return;
	}
	int sso_only = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (sso_only) {
		/* Said only to whoever knows the password. */
		signin_view_respond(r, 422, &v, "Your organisation requires single sign-on: passwords are refused. "
				    "Sign in with single sign-on below.");
		form_values_free(&v);
		return;
	}
	if (session_create(r, user_id, org_id, err, sizeof err) < 0 ||
	    audit_record(r->db, "user.signin", form_value(&v, signin_fields, "email"), NULL, err, sizeof err) < 0) {
		form_values_free(&v);
		respond_db_error(r, err);
		return;
	}
	form_values_free(&v);
	respond_redirect(r, web_safe_next(kv_get(&r->form, "_next")));
}

void page_signout_post(struct request *r)
{
	char err[512];

	if (audit_record(r->db, "user.signout", r->session.email, NULL, err, sizeof err) < 0) {
		respond_db_error(r, err);
		return;
	}
	session_destroy(r);
	respond_redirect(r, "/signin");
}
