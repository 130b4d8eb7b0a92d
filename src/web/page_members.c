/* Members of the organisation: the list for everyone, invitations and role changes for admins. */
#include "web.h"
#include "audit.h"
#include "db.h"
#include "form.h"
#include "password.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const role_choices[] = { "admin", "operator", "viewer", NULL };

static const struct form_field invite_fields[] = {
	{ .name = "email", .label = "Email", .kind = FORM_EMAIL, .required = 1, .max_len = 254 },
	{ .name = "display_name", .label = "Name", .kind = FORM_TEXT, .required = 1, .max_len = 100 },
	{ .name = "role", .label = "Role", .kind = FORM_CHOICE, .required = 1, .choices = role_choices },
	{ .name = "password", .label = "Temporary password", .kind = FORM_PASSWORD, .required = 1, .max_len = 256 },
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
		"SELECT u.id, u.email, u.display_name, m.role, to_char(m.created_at, 'YYYY-MM-DD') "
		"FROM memberships m JOIN users u ON u.id = m.user_id ORDER BY lower(u.email)",
		0, NULL, err, sizeof err);
	cJSON *list;

	if (!res) {
		respond_db_error(r, err);
		return -1;
	}
	list = cJSON_AddArrayToObject(view, "members");
	for (int i = 0; i < PQntuples(res); i++) {
		cJSON *m = cJSON_CreateObject();
		long long id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		cJSON_AddNumberToObject(m, "id", (double)id);
		cJSON_AddStringToObject(m, "email", PQgetvalue(res, i, 1));
		cJSON_AddStringToObject(m, "display_name", PQgetvalue(res, i, 2));
		cJSON_AddStringToObject(m, "role", PQgetvalue(res, i, 3));
		cJSON_AddStringToObject(m, "since", PQgetvalue(res, i, 4));
		cJSON_AddBoolToObject(m, "is_me", id == r->session.user_id);
		cJSON *roles = cJSON_AddArrayToObject(m, "roles");
		for (int k = 0; role_choices[k]; k++) {
			cJSON *opt = cJSON_CreateObject();
			cJSON_AddStringToObject(opt, "name", role_choices[k]);
			cJSON_AddBoolToObject(opt, "selected", strcmp(role_choices[k], PQgetvalue(res, i, 3)) == 0);
			cJSON_AddItemToArray(roles, opt);
		}
		cJSON_AddItemToArray(list, m);
	}
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
	char *hash = password_hash(form_value(&v, invite_fields, "password"));
	const char *email = form_value(&v, invite_fields, "email");
	const char *params[] = { email, form_value(&v, invite_fields, "display_name"), hash,
				 form_value(&v, invite_fields, "role") };
	PGresult *res = hash ? db_exec(r->db, "SELECT created FROM invite($1, $2, $3, $4)", 4, params, err, sizeof err) : NULL;
	free(hash);
	if (!res) {
		if (strcmp(db_last_sqlstate(), "23505") == 0) {
			cJSON *view = form_view(&v, invite_fields);
			cJSON_AddStringToObject(view, "form_error", "That person is already a member.");
			/* The failed statement aborted the transaction: start a fresh one to list members. */
			db_rollback(r->db);
			if (db_tenant_begin(r->db, r->session.org_id, r->session.user_id, err, sizeof err) < 0) {
				cJSON_Delete(view);
				form_values_free(&v);
				respond_db_error(r, err);
				return;
			}
			members_respond(r, 422, view);
		} else {
			respond_db_error(r, err);
		}
		form_values_free(&v);
		return;
	}
	int created = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	cJSON *detail = cJSON_CreateObject();
	cJSON_AddStringToObject(detail, "role", form_value(&v, invite_fields, "role"));
	cJSON_AddBoolToObject(detail, "new_account", created);
	int rc = audit_record(r->db, "member.invite", email, detail, err, sizeof err);
	cJSON_Delete(detail);
	if (rc < 0) {
		form_values_free(&v);
		respond_db_error(r, err);
		return;
	}
	char msg[400];
	snprintf(msg, sizeof msg, created ? "%s was invited; give them the temporary password." :
		 "%s already had an account and is now a member.", email);
	form_values_free(&v);
	response_flash(r, msg);
	respond_redirect(r, "/members");
}

/* The member's email, or NULL after answering 404. Caller frees. */
static char *member_email(struct request *r, long long id)
{
	char sid[24], err[512];
	const char *params[] = { sid };
	PGresult *res;
	char *email = NULL;

	snprintf(sid, sizeof sid, "%lld", id);
	res = db_exec(r->db, "SELECT u.email FROM memberships m JOIN users u ON u.id = m.user_id "
		      "WHERE m.user_id = $1", 1, params, err, sizeof err);
	if (!res) {
		respond_db_error(r, err);
		return NULL;
	}
	if (PQntuples(res) == 1)
		email = xstrdup(PQgetvalue(res, 0, 0));
	else
		respond_error(r, 404, "There is no such member in this organisation.");
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
		respond_error(r, 422, v.error[0] ? v.error[0] : "Role: choose admin, operator or viewer.");
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
