/* Members of the organisation: the list for everyone, invitations and role changes for admins. */
#include "web.h"
#include "audit.h"
#include "db.h"
#include "form.h"
#include "json.h"
#include "log.h"
#include "token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const role_choices[] = { "admin", "operator", "viewer", NULL };

static const struct form_field invite_fields[] = {
	{ .name = "email", .label = "Email", .kind = FORM_EMAIL, .required = 1, .max_len = 254 },
	{ .name = "display_name", .label = "Name", .kind = FORM_TEXT, .required = 1, .max_len = 100 },
	{ .name = "role", .label = "Role", .kind = FORM_CHOICE, .required = 1, .choices = role_choices },
};
#define INVITE_N (sizeof invite_fields / sizeof invite_fields[0])

static const struct form_field role_fields[] = {
	{ .name = "role", .label = "Role", .kind = FORM_CHOICE, .required = 1, .choices = role_choices },
};

/* The members list, added to view; 0 or -1 after answering with the error. */
static int add_members(struct request *r, cJSON *view)
{
	char err[512];
	PGresult *res = db_exec(r->db,
		"SELECT u.id, u.email, u.display_name, m.role, to_char(m.created_at, 'YYYY-MM-DD') AS since "
		"FROM memberships m JOIN users u ON u.id = m.user_id ORDER BY lower(u.email)",
		0, NULL, err, sizeof err);
	cJSON *list, *m;

	if (!res) {
		respond_db_error(r, err);
		return -1;
	}
	list = db_rows_json(res);
	PQclear(res);
	cJSON_AddItemToObject(view, "members", list);
	cJSON_ArrayForEach(m, list) {
		cJSON_AddBoolToObject(m, "is_me", (long long)json_num(m, "id") == r->session.user_id);
		cJSON *roles = cJSON_AddArrayToObject(m, "roles");
		for (int k = 0; role_choices[k]; k++) {
			cJSON *opt = cJSON_CreateObject();
			cJSON_AddStringToObject(opt, "name", role_choices[k]);
			cJSON_AddBoolToObject(opt, "selected", strcmp(role_choices[k], json_str(m, "role")) == 0);
			cJSON_AddItemToArray(roles, opt);
		}
	}
	res = db_exec(r->db, "SELECT email, display_name, role, to_char(created_at, 'YYYY-MM-DD') AS since FROM invitations "
		      "WHERE expires_at > now() ORDER BY lower(email)", 0, NULL, err, sizeof err);
	if (!res) {
		respond_db_error(r, err);
		return -1;
	}
	cJSON_AddItemToObject(view, "invitations", db_rows_json(res));
	cJSON_AddBoolToObject(view, "has_invitations", PQntuples(res) > 0);
	PQclear(res);
	return 0;
}

static void members_respond(struct request *r, int status, cJSON *view)
{
	cJSON_AddStringToObject(view, "title", "Members");
	cJSON_AddBoolToObject(view, "nav_members", 1);
	if (add_members(r, view) < 0) {
		cJSON_Delete(view);
		return;
	}
	if (status == 200)
		respond_page(r, 200, "members", view);
	else
		respond_form_errors(r, "members", view);
}

void page_members(struct request *r)
{
	members_respond(r, 200, cJSON_CreateObject());
}

void page_members_invite(struct request *r)
{
	struct form_values v;
	char err[512];

	if (form_validate(invite_fields, INVITE_N, &r->form, &v) > 0) {
		members_respond(r, 422, form_view(&v, invite_fields));
		form_values_free(&v);
		return;
	}
	int allowed = web_rate_limit(r, "invite", "invitations", form_value(&v, invite_fields, "email"));
	if (allowed <= 0) {
		form_values_free(&v);
		return;
	}
	char token[TOKEN_TEXT_LEN + 1], hash[67];
	if (account_link_new(token, hash, err, sizeof err) < 0) {
		form_values_free(&v);
		respond_db_error(r, err);
		return;
	}
	const char *email = form_value(&v, invite_fields, "email");
	const char *role = form_value(&v, invite_fields, "role");
	const char *params[] = { email, form_value(&v, invite_fields, "display_name"), role, hash };
	PGresult *res = db_exec(r->db, "SELECT invite($1, $2, $3, $4)", 4, params, err, sizeof err);
	if (!res) {
		if (strcmp(db_last_sqlstate(), "23505") == 0) {
			cJSON *view = form_view(&v, invite_fields);
			cJSON_AddStringToObject(view, "form_error", "Email: that person is already a member of this organisation.");
			/* The failed statement aborted the transaction: a fresh one to list members. */
			if (web_transaction_restart(r) < 0) {
				cJSON_Delete(view);
				form_values_free(&v);
				return;
			}
			members_respond(r, 422, view);
		} else {
			respond_db_error(r, err);
		}
		form_values_free(&v);
		return;
	}
	PQclear(res);
	/* The same answer whether or not the address has an account anywhere: the invitation is
	 * pending until its owner opens the mailed link and accepts. */
	cJSON *detail = cJSON_CreateObject();
	cJSON_AddStringToObject(detail, "role", role);
	int rc = audit_record(r->db, "member.invite", email, detail, err, sizeof err);
	cJSON_Delete(detail);
	if (rc < 0) {
		form_values_free(&v);
		respond_db_error(r, err);
		return;
	}
	char intro[700];
	snprintf(intro, sizeof intro, "%s invites you to the organisation %s on Stowage as %s. "
		 "Open this link to accept:", r->session.display_name, r->session.org_name, role);
	if (account_mail_link(r, email, "An invitation to Stowage", intro, "/invitations/", token,
			      "The link works once and expires in seven days. If you did not expect it, ignore this mail.",
			      err, sizeof err) < 0) {
		log_error("%s", err);
		r->rollback = 1;
		form_values_free(&v);
		respond_error(r, 503, "The invitation mail could not be sent, so nobody was invited; try again later.");
		return;
	}
	char msg[400];
	snprintf(msg, sizeof msg, "An invitation was sent to %s; they join once they accept it.", email);
	form_values_free(&v);
	response_flash(r, msg);
	respond_redirect(r, "/members");
}

/* The member's email, or NULL after answering 404. Caller frees. */
static char *member_email(struct request *r, long long id)
{
	PGresult *res = web_row(r, "SELECT u.email FROM memberships m JOIN users u ON u.id = m.user_id "
				"WHERE m.user_id = $1", id, "member in this organisation");
	char *email;

	if (!res)
		return NULL;
	email = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return email;
}

/* 1 when removing the admin role from user id would leave the organisation without an admin. */
static int last_admin(struct request *r, long long id)
{
	char sid[24], err[512];
	const char *params[] = { sid };
	PGresult *res;
	int last;

	snprintf(sid, sizeof sid, "%lld", id);
	res = db_exec(r->db, "SELECT count(*) FILTER (WHERE user_id <> $1) = 0 FROM memberships "
		      "WHERE role = 'admin'", 1, params, err, sizeof err);
	if (!res)
		return 1;
	last = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return last;
}

void page_members_role(struct request *r)
{
	long long id = request_param_id(r, "id");
	struct form_values v;
	char sid[24], err[512];
	char *email;

	if (!id) {
		respond_error(r, 404, "There is no such member in this organisation.");
		return;
	}
	if (form_validate(role_fields, 1, &r->form, &v) > 0) {
		respond_error(r, 422, form_first_error(&v));
		form_values_free(&v);
		return;
	}
	if (!(email = member_email(r, id))) {
		form_values_free(&v);
		return;
	}
	const char *role = form_value(&v, role_fields, "role");
	if (strcmp(role, "admin") != 0 && last_admin(r, id)) {
		respond_error(r, 409, "The organisation needs at least one admin.");
	} else {
		snprintf(sid, sizeof sid, "%lld", id);
		const char *params[] = { role, sid };
		cJSON *detail = cJSON_CreateObject();
		cJSON_AddStringToObject(detail, "role", role);
		if (db_run(r->db, "UPDATE memberships SET role = $1 WHERE user_id = $2", 2, params, err, sizeof err) < 0 ||
		    audit_record(r->db, "member.role", email, detail, err, sizeof err) < 0) {
			respond_db_error(r, err);
		} else {
			char msg[400];
			snprintf(msg, sizeof msg, "%s is now %s.", email, role);
			response_flash(r, msg);
			respond_redirect(r, "/members");
		}
		cJSON_Delete(detail);
	}
	free(email);
	form_values_free(&v);
}

void page_members_remove(struct request *r)
{
	long long id = request_param_id(r, "id");
	char sid[24], err[512];
	const char *params[] = { sid };
	char *email;

	if (!id) {
		respond_error(r, 404, "There is no such member in this organisation.");
		return;
	}
	if (!(email = member_email(r, id)))
		return;
	if (last_admin(r, id)) {
		respond_error(r, 409, "The organisation needs at least one admin.");
	} else {
		snprintf(sid, sizeof sid, "%lld", id);
		if (db_run(r->db, "DELETE FROM memberships WHERE user_id = $1", 1, params, err, sizeof err) < 0 ||
		    audit_record(r->db, "member.remove", email, NULL, err, sizeof err) < 0) {
			respond_db_error(r, err);
		} else {
			char msg[400];
			snprintf(msg, sizeof msg, "%s is no longer a member.", email);
			response_flash(r, msg);
			respond_redirect(r, "/members");
		}
	}
	free(email);
}
