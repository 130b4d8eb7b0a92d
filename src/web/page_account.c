/* Proof of address and invitations: the one-time links mailed to a person, and the pages they
 * open. A link is a random token; the database keeps only its SHA-256 (account_tokens). */
#include "web.h"
#include "audit.h"
#include "db.h"
#include "form.h"
#include "log.h"
#include "mail.h"
#include "password.h"
#include "token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int account_link_new(char token[TOKEN_TEXT_LEN + 1], char hash[67], char *err, size_t errlen)
{
	if (token_new(token) < 0) {
		snprintf(err, errlen, "no random bytes for a one-time link");
		return -1;
	}
	web_token_hash_param(token, hash);
	return 0;
}

int account_mail_link(struct request *r, const char *to, const char *subject, const char *intro,
		      const char *path, const char *token, const char *outro, char *err, size_t errlen)
{
	struct strbuf body = STRBUF_INIT;
	struct mail_conf conf = r->ctx->mail;
	int rc;

	strbuf_addf(&body, "%s\n\n%s%s%s\n\n%s\n", intro, r->ctx->site_url, path, token, outro);
	rc = mail_send(&conf, to, subject, body.buf, err, errlen);
	strbuf_release(&body);
	return rc;
}

/* A token from the route: exactly the shape token_new makes, or NULL. */
static const char *route_token(const struct request *r)
{
	const char *t = kv_get(&r->params, "token");

	if (!t || strlen(t) != TOKEN_TEXT_LEN)
		return NULL;
	for (const char *p = t; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '-' || *p == '_'))
			return NULL;
	return t;
}

/* GET /confirm/:token: a button, so that a link scanner or a planted link signs nobody in. */
void page_confirm_form(struct request *r)
{
	const char *token = route_token(r);
	cJSON *view;

	if (!token) {
		respond_error(r, 404, "This confirmation link is not valid: copy the whole link from the mail.");
		return;
	}
	view = cJSON_CreateObject();
	cJSON_AddStringToObject(view, "title", "Confirm your address");
	cJSON_AddStringToObject(view, "token", token);
	respond_page(r, 200, "confirm", view);
}

void page_confirm_post(struct request *r)
{
	const char *token = route_token(r);
	char hash[67], err[512];
	const char *params[] = { hash };
	PGresult *res;

	if (!token) {
		respond_error(r, 404, "This confirmation link is not valid: copy the whole link from the mail.");
		return;
	}
	web_token_hash_param(token, hash);
	res = db_exec(r->db, "SELECT user_id, org_id FROM confirm_email($1)", 1, params, err, sizeof err);
	if (!res) {
		respond_db_error(r, err);
		return;
	}
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 1)) {
		PQclear(res);
		respond_error(r, 410, "This confirmation link was already used or has expired. Sign in, or sign up again "
			      "for a new link.");
		return;
	}
	long long user_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	long long org_id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	if (session_create(r, user_id, org_id, err, sizeof err) < 0) {
		respond_db_error(r, err);
		return;
	}
	response_flash(r, "Welcome to Stowage. Your address is confirmed and your organisation is ready.");
	respond_redirect(r, "/");
}

static const struct form_field accept_fields[] = {
	{ .name = "display_name", .label = "Your name", .kind = FORM_TEXT, .required = 1, .max_len = 100 },
	{ .name = "password", .label = "Password", .kind = FORM_PASSWORD, .required = 1, .max_len = 256 },
};
#define ACCEPT_N (sizeof accept_fields / sizeof accept_fields[0])

/* The invitation behind the route's link, added to view; 0, or -1 after answering. */
static int invitation_view(struct request *r, const char *token, cJSON *view, int *has_account,
			   char *email, size_t email_len)
{
	char hash[67], err[512];
	const char *params[] = { hash };
	PGresult *res;

	web_token_hash_param(token, hash);
	res = db_exec(r->db, "SELECT org_name, email, display_name, role, has_account FROM invitation_lookup($1)",
		      1, params, err, sizeof err);
	if (!res) {
		respond_db_error(r, err);
		return -1;
	}
	if (PQntuples(res) != 1) {
		PQclear(res);
		respond_error(r, 410, "This invitation link was already used, was replaced by a newer one, or has expired. "
			      "Ask the organisation's admin to invite you again.");
		return -1;
	}
	*has_account = strcmp(PQgetvalue(res, 0, 4), "t") == 0;
	snprintf(email, email_len, "%s", PQgetvalue(res, 0, 1));
	cJSON_AddStringToObject(view, "title", "Invitation");
	cJSON_AddStringToObject(view, "token", token);
	cJSON_AddStringToObject(view, "invited_org", PQgetvalue(res, 0, 0));
	cJSON_AddStringToObject(view, "invited_email", email);
	cJSON_AddStringToObject(view, "invited_role", PQgetvalue(res, 0, 3));
	cJSON_AddBoolToObject(view, "has_account", *has_account);
	int mine = r->session.user_id && strcasecmp(r->session.email, email) == 0;
	cJSON_AddBoolToObject(view, "signed_in_as_invitee", mine);
	cJSON_AddBoolToObject(view, "signed_in_as_other", r->session.user_id && !mine);
	if (!cJSON_GetObjectItem(view, "fields")) {
		cJSON *fields = cJSON_AddObjectToObject(view, "fields");
		cJSON *name = cJSON_AddObjectToObject(fields, "display_name");
		cJSON_AddStringToObject(name, "value", PQgetvalue(res, 0, 2));
	}
	struct strbuf next = STRBUF_INIT, url = STRBUF_INIT;
	strbuf_addf(&next, "/invitations/%s", token);
	strbuf_addstr(&url, "/signin?next=");
	url_escape(&url, next.buf, next.len);
	cJSON_AddStringToObject(view, "signin_url", url.buf);
	strbuf_release(&next);
	strbuf_release(&url);
	PQclear(res);
	return 0;
}

/* The invitation of the link's token as a view, or NULL when the page has answered already. */
static cJSON *invitation_open(struct request *r, const char *token, int *has_account, char *email, size_t len)
{
	cJSON *view;

	if (!token) {
		respond_error(r, 404, "This invitation link is not valid: copy the whole link from the mail.");
		return NULL;
	}
	view = cJSON_CreateObject();
	if (invitation_view(r, token, view, has_account, email, len) < 0) {
		cJSON_Delete(view);
		return NULL;
	}
	return view;
}

void page_invitation(struct request *r)
{
	const char *token = route_token(r);
	cJSON *view;
	char email[256];
	int has_account;

	if (!(view = invitation_open(r, token, &has_account, email, sizeof email)))
		return;
	respond_page(r, 200, "invitation", view);
}

void page_invitation_accept(struct request *r)
{
	const char *token = route_token(r);
	struct form_values v;
	char hash[67], err[512], email[256], uid[24];
	int has_account;
	cJSON *view;
	PGresult *res;
	char *pw_hash = NULL;

	if (!(view = invitation_open(r, token, &has_account, email, sizeof email)))
		return;
	web_token_hash_param(token, hash);
	if (has_account) {
		/* The address has a confirmed account: only its owner, signed in, joins with it. */
		if (!r->session.user_id || strcasecmp(r->session.email, email) != 0) {
			cJSON_Delete(view);
			respond_error(r, 403, "Sign in as the invited address first, then accept the invitation.");
			return;
		}
		snprintf(uid, sizeof uid, "%lld", r->session.user_id);
		const char *params[] = { hash, uid };
		res = db_exec(r->db, "SELECT org_id, user_id FROM invitation_accept($1, $2, NULL, NULL)",
			      2, params, err, sizeof err);
	} else {
		if (form_validate(accept_fields, ACCEPT_N, &r->form, &v) > 0) {
			cJSON_Delete(view);
			view = form_view(&v, accept_fields);
			form_values_free(&v);
			if (invitation_view(r, token, view, &has_account, email, sizeof email) < 0) {
				cJSON_Delete(view);
				return;
			}
			respond_form_errors(r, "invitation", view);
			return;
		}
		pw_hash = password_hash(form_value(&v, accept_fields, "password"));
		if (!pw_hash) {
			form_values_free(&v);
			cJSON_Delete(view);
			respond_db_error(r, "password hashing failed");
			return;
		}
		const char *params[] = { hash, form_value(&v, accept_fields, "display_name"), pw_hash };
		res = db_exec(r->db, "SELECT org_id, user_id FROM invitation_accept($1, NULL, $2, $3)",
			      3, params, err, sizeof err);
		form_values_free(&v);
		free(pw_hash);
	}
	if (!res) {
		cJSON_Delete(view);
		respond_db_error(r, err);
		return;
	}
	if (PQntuples(res) != 1) {
		PQclear(res);
		cJSON_Delete(view);
		respond_error(r, 409, "This invitation can no longer be accepted this way; open its link again.");
		return;
	}
	long long org_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	long long user_id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	char msg[400];
	snprintf(msg, sizeof msg, "You joined %s as %s.",
		 cJSON_GetStringValue(cJSON_GetObjectItem(view, "invited_org")),
		 cJSON_GetStringValue(cJSON_GetObjectItem(view, "invited_role")));
	cJSON_Delete(view);
	if (session_create(r, user_id, org_id, err, sizeof err) < 0) {
		respond_db_error(r, err);
		return;
	}
	response_flash(r, msg);
	respond_redirect(r, "/");
}
