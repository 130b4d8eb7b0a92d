/* The routing table, and the one path every request takes through it: parse, match, session,
 * CSRF, role, a transaction bound to the tenant, the handler, commit or roll back. */
#include "web.h"
#include "db.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

const struct route web_routes[] = {
	{ "GET", "/signup", page_signup_form, ROUTE_PUBLIC | ROUTE_READ_ONLY },
	{ "POST", "/signup", page_signup_post, ROUTE_PUBLIC },
	{ "GET", "/signin", page_signin_form, ROUTE_PUBLIC | ROUTE_READ_ONLY },
	{ "POST", "/signin", page_signin_post, ROUTE_PUBLIC },
	{ "POST", "/signin/sso", page_sso_start, ROUTE_PUBLIC },
	{ "GET", "/sso/callback", page_sso_callback, ROUTE_PUBLIC },
	{ "GET", "/sso/finish/:id", page_sso_finish, ROUTE_PUBLIC },
	{ "GET", "/settings/sso", page_sso_settings, ROUTE_ADMIN | ROUTE_PERSON },
	{ "POST", "/settings/sso", page_sso_save, ROUTE_ADMIN | ROUTE_PERSON },
	{ "POST", "/settings/sso/delete", page_sso_delete, ROUTE_ADMIN | ROUTE_PERSON },
	{ "POST", "/signout", page_signout_post, ROUTE_PERSON },
	{ "GET", "/confirm/:token", page_confirm_form, ROUTE_PUBLIC },
	{ "POST", "/confirm/:token", page_confirm_post, ROUTE_PUBLIC },
	{ "GET", "/invitations/:token", page_invitation, ROUTE_PUBLIC },
	{ "GET", "/account", page_account, ROUTE_PERSON },
	{ "POST", "/account/password", page_account_password, ROUTE_PERSON },
	{ "GET", "/password/forgot", page_password_forgot_form, ROUTE_PUBLIC },
	{ "POST", "/password/forgot", page_password_forgot, ROUTE_PUBLIC },
	{ "GET", "/password/reset/:token", page_password_reset_form, ROUTE_PUBLIC },
	{ "POST", "/password/reset/:token", page_password_reset, ROUTE_PUBLIC },
	{ "POST", "/invitations/:token", page_invitation_accept, ROUTE_PUBLIC },
	{ "GET", "/", page_home, ROUTE_READ_ONLY },
	{ "GET", "/members", page_members, ROUTE_READ_ONLY },
	{ "POST", "/members", page_members_invite, ROUTE_ADMIN },
	{ "POST", "/members/:id/role", page_members_role, ROUTE_ADMIN },
	{ "POST", "/members/:id/remove", page_members_remove, ROUTE_ADMIN },
	{ "GET", "/audit", page_audit, ROUTE_READ_ONLY },
	{ "GET", "/tokens", page_tokens, ROUTE_ADMIN | ROUTE_PERSON },
	{ "POST", "/tokens", page_token_create, ROUTE_ADMIN | ROUTE_PERSON },
	{ "POST", "/tokens/:id/revoke", page_token_revoke, ROUTE_ADMIN | ROUTE_PERSON },
	{ "GET", "/notifications", page_org_notifications, 0 },
	{ "POST", "/notifications", page_org_notifications_save, ROUTE_ADMIN },
	{ "GET", "/backup-plans/:id/notifications", page_backup_plan_notifications, 0 },
	{ "POST", "/backup-plans/:id/notifications", page_backup_plan_notifications_save, ROUTE_OPERATOR },
	{ "GET", "/restore-plans/:id/notifications", page_restore_plan_notifications, 0 },
	{ "POST", "/restore-plans/:id/notifications", page_restore_plan_notifications_save, ROUTE_OPERATOR },
	{ "GET", "/migrations/:id/notifications", page_migration_plan_notifications, 0 },
	{ "POST", "/migrations/:id/notifications", page_migration_plan_notifications_save, ROUTE_OPERATOR },
	{ "GET", "/schedule/preview", page_schedule_preview, 0 },
	{ "GET", "/migrations", page_migrations, ROUTE_READ_ONLY },
	{ "GET", "/migrations/new", page_migration_new, ROUTE_OPERATOR },
	{ "POST", "/migrations/new", page_migration_step, ROUTE_OPERATOR },
	{ "POST", "/migrations", page_migration_create, ROUTE_OPERATOR },
	{ "GET", "/migrations/:id", page_migration, 0 },
	{ "POST", "/migrations/:id", page_migration_update, ROUTE_OPERATOR },
	{ "GET", "/migrations/:id/edit", page_migration_edit, ROUTE_OPERATOR },
	{ "POST", "/migrations/:id/edit", page_migration_edit_step, ROUTE_OPERATOR },
	{ "POST", "/migrations/:id/precheck", page_migration_precheck, ROUTE_OPERATOR },
	{ "POST", "/migrations/:id/migrate", page_migration_run, ROUTE_OPERATOR },
	{ "POST", "/migrations/:id/precopy", page_migration_precopy, ROUTE_OPERATOR },
	{ "POST", "/migrations/:id/cutover", page_migration_cutover, ROUTE_OPERATOR },
	{ "POST", "/migrations/:id/test", page_migration_test, ROUTE_OPERATOR },
	{ "POST", "/migrations/:id/delete", page_migration_delete, ROUTE_OPERATOR },
	{ "GET", "/clusters", page_clusters, ROUTE_READ_ONLY },
	{ "GET", "/clusters/new", page_cluster_new, ROUTE_OPERATOR },
	{ "GET", "/clusters/import", page_cluster_import_form, ROUTE_OPERATOR },
	{ "POST", "/clusters/import", page_cluster_import, ROUTE_OPERATOR },
	{ "POST", "/clusters", page_cluster_create, ROUTE_OPERATOR },
	{ "GET", "/clusters/:id", page_cluster_edit, 0 },
	{ "POST", "/clusters/:id", page_cluster_update, ROUTE_OPERATOR },
	{ "POST", "/clusters/:id/test", page_cluster_test, ROUTE_OPERATOR },
	{ "GET", "/clusters/:id/limits", page_cluster_limits, 0 },
	{ "POST", "/clusters/:id/limits", page_cluster_limits_save, ROUTE_OPERATOR },
	{ "POST", "/clusters/:id/delete", page_cluster_delete, ROUTE_OPERATOR },
	{ "GET", "/repositories", page_repositories, ROUTE_READ_ONLY },
	{ "GET", "/repositories/new", page_repository_new, ROUTE_OPERATOR },
	{ "POST", "/repositories", page_repository_create, ROUTE_OPERATOR },
	{ "GET", "/repositories/:id", page_repository_edit, 0 },
	{ "POST", "/repositories/:id", page_repository_update, ROUTE_OPERATOR },
	{ "POST", "/repositories/:id/test", page_repository_test, ROUTE_OPERATOR },
	{ "POST", "/repositories/:id/delete", page_repository_delete, ROUTE_OPERATOR },
	{ "POST", "/repositories/:id/sync", page_repository_sync, ROUTE_OPERATOR },
	{ "GET", "/backup-plans", page_backup_plans, ROUTE_READ_ONLY },
	{ "GET", "/backup-plans/new", page_backup_plan_new, ROUTE_OPERATOR },
	{ "POST", "/backup-plans/new", page_backup_plan_wizard_post, ROUTE_OPERATOR },
	{ "POST", "/backup-plans", page_backup_plan_create, ROUTE_OPERATOR },
	{ "GET", "/backup-plans/:id/edit", page_backup_plan_edit, ROUTE_OPERATOR },
	{ "POST", "/backup-plans/:id/edit", page_backup_plan_edit_step, ROUTE_OPERATOR },
	{ "POST", "/backup-plans/:id", page_backup_plan_update, ROUTE_OPERATOR },
	{ "POST", "/backup-plans/:id/backup", page_backup_plan_run, ROUTE_OPERATOR },
	{ "POST", "/backup-plans/:id/test-restore", page_backup_plan_test_restore_save, ROUTE_OPERATOR },
	{ "POST", "/backup-plans/:id/delete", page_backup_plan_delete, ROUTE_OPERATOR },
	{ "GET", "/backup-plans/:id/jobs", page_backup_plan_jobs, 0 },
	{ "GET", "/restore-plans", page_restore_plans, ROUTE_READ_ONLY },
	{ "GET", "/restore-plans/new", page_restore_plan_new, ROUTE_OPERATOR },
	{ "POST", "/restore-plans/new", page_restore_plan_wizard_post, ROUTE_OPERATOR },
	{ "POST", "/restore-plans", page_restore_plan_create, ROUTE_OPERATOR },
	{ "GET", "/restore-plans/:id/edit", page_restore_plan_edit, ROUTE_OPERATOR },
	{ "POST", "/restore-plans/:id/edit", page_restore_plan_edit_step, ROUTE_OPERATOR },
	{ "POST", "/restore-plans/:id", page_restore_plan_update, ROUTE_OPERATOR },
	{ "POST", "/restore-plans/:id/activate", page_restore_plan_activate, ROUTE_OPERATOR },
	{ "POST", "/restore-plans/:id/delete", page_restore_plan_delete, ROUTE_OPERATOR },
	{ "GET", "/restore-plans/:id/jobs", page_restore_plan_jobs, 0 },
	{ "GET", "/requests/:id", page_runner_request, 0 },
	{ "GET", "/requests/:id/state", page_runner_request_state, 0 },
	{ "GET", "/jobs", page_jobs, ROUTE_READ_ONLY },
	{ "GET", "/backups", page_backups, ROUTE_READ_ONLY },
	{ "GET", "/backups/:id", page_backup, 0 },
	{ "POST", "/backups/:id/delete", page_backup_delete, ROUTE_OPERATOR },
	{ "POST", "/backups/:id/verify", page_backup_verify, ROUTE_OPERATOR },
	{ "POST", "/backups/:id/test-restore", page_backup_test_restore, ROUTE_OPERATOR },
	{ "GET", "/backups/:id/object", page_backup_object, 0 },
	{ "POST", "/backups/:id/download", page_backup_download, ROUTE_OPERATOR },
	{ "GET", "/jobs/:id", page_job, ROUTE_READ_ONLY },
	{ "GET", "/jobs/:id/progress", page_job_progress, ROUTE_READ_ONLY },
	{ "GET", "/jobs/:id/log.txt", page_job_log, 0 },
	{ "POST", "/jobs/:id/cancel", page_job_cancel, ROUTE_OPERATOR },
	{ "POST", "/jobs/:id/diagnostics", page_job_diagnostics, ROUTE_OPERATOR },
	{ "GET", "/jobs/:id/diagnostics.tar.gz", page_job_diagnostics_download, 0 },
	{ "GET", "/jobs/:id/archive.tar.gz", page_job_archive_download, ROUTE_OPERATOR },
	{ "POST", "/jobs/:id/undo", page_job_undo, ROUTE_OPERATOR },
	{ "GET", "/hooks", page_hooks, ROUTE_READ_ONLY },
	{ "GET", "/hooks/new", page_hook_new, ROUTE_OPERATOR },
	{ "POST", "/hooks", page_hook_create, ROUTE_OPERATOR },
	{ "POST", "/hooks/check", page_hook_check, 0 },
	{ "GET", "/hooks/:id", page_hook_edit, 0 },
	{ "POST", "/hooks/:id", page_hook_update, ROUTE_OPERATOR },
	{ "POST", "/hooks/:id/dry-run", page_hook_dry_run, ROUTE_OPERATOR },
	{ "POST", "/hooks/:id/delete", page_hook_delete, ROUTE_OPERATOR },
};
const size_t web_routes_count = sizeof web_routes / sizeof web_routes[0];

/* 1 when path matches pattern; ":name" segments are captured into params. */
static int route_pattern_match(const char *pattern, const char *path, struct kv_list *params)
{
	while (*pattern && *path) {
		if (*pattern == ':') {
			const char *name = ++pattern, *seg = path;
			size_t nlen = strcspn(name, "/"), slen = strcspn(seg, "/");
			char key[32];
			if (slen == 0 || nlen >= sizeof key)
				return 0;
			memcpy(key, name, nlen);
			key[nlen] = '\0';
			kv_add(params, key, seg, slen);
			pattern += nlen;
			path += slen;
			continue;
		}
		if (*pattern++ != *path++)
			return 0;
	}
	return *pattern == '\0' && *path == '\0';
}

/* The route for the request, or NULL with *status 404 or 405. */
static const struct route *route_find(struct request *r, int *status)
{
	int path_matched = 0;

	for (size_t i = 0; i < web_routes_count; i++) {
		const struct route *rt = &web_routes[i];
		struct kv_list params = { 0 };
		if (!route_pattern_match(rt->pattern, r->path, &params)) {
			kv_list_free(&params);
			continue;
		}
		path_matched = 1;
		if (strcmp(rt->method, r->method) == 0 ||
		    (strcmp(rt->method, "GET") == 0 && strcmp(r->method, "HEAD") == 0)) {
			r->params = params;
			r->route_index = (int)i;
			return rt;
		}
		kv_list_free(&params);
	}
	*status = path_matched ? 405 : 404;
	return NULL;
}

static void redirect_to_signin(struct request *r)
{
	struct strbuf loc = STRBUF_INIT;

	if (r->wants_json) {
		respond_error(r, 401, "Sign in first.");
		return;
	}
	strbuf_addstr(&loc, "/signin?next=");
	url_escape(&loc, r->path, strlen(r->path));
	respond_redirect(r, loc.buf);
	strbuf_release(&loc);
}

static int role_allows(const struct route *rt, enum role role)
{
	if (rt->flags & ROUTE_ADMIN)
		return role == ROLE_ADMIN;
	if (rt->flags & ROUTE_OPERATOR)
		return role >= ROLE_OPERATOR;
	return role >= ROLE_VIEWER;
}

const char *route_query(const struct route *rt)
{
	static const struct {
		void (*handler)(struct request *r);
		const char *query;
	} queries[] = {
		{ page_clusters, page_clusters_query },
	};

	if (!(rt->flags & ROUTE_READ_ONLY))
		return NULL;
	for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++)
		if (queries[i].handler == rt->handler)
			return queries[i].query;
	return NULL;
}

/* Runs the handler in the request's open transaction: commits what it did, or rolls back. */
static void run_handler(struct request *r, const struct route *rt)
{
	char err[512];

	rt->handler(r);
	if (r->rollback || !r->responded) {
		db_rollback(r->db);
		if (!r->responded)
			respond_error(r, 500, "The page gave no answer.");
		return;
	}
	if ((r->read_only ? db_commit_read_only(r->db, err, sizeof err) : db_commit(r->db, err, sizeof err)) < 0) {
		r->responded = 0;
		strbuf_reset(&r->headers);
		strbuf_reset(&r->body);
		respond_db_error(r, err);
	}
}

/* An API token's request: JSON always; never together with a session cookie (else the cookie's
 * request would pass without its CSRF token); only on routes for signed-in members, and never on
 * those that act on the person (tokens, password, sign-out). 1 when authenticated, else 0 or -1
 * after answering. */
static int authenticate_bearer(struct request *r, const struct route *rt)
{
	int rc;

	r->wants_json = 1;
	if (request_has_session_cookie(r)) {
		respond_error(r, 400, "Send either a session cookie or an API token, not both.");
		return 0;
	}
	if (rt->flags & (ROUTE_PUBLIC | ROUTE_PERSON)) {
		respond_error(r, 403, "An API token cannot be used here; sign in as a person.");
		return 0;
	}
	rc = session_load_bearer(r, request_authorization(r));
	if (rc < 0) {
		respond_error(r, 503, "The database is not reachable; try again in a moment.");
		return -1;
	}
	if (rc == 0) {
		strbuf_addstr(&r->headers, "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n");
		respond_error(r, 401, "The API token is unknown, revoked or expired.");
		return 0;
	}
	return 1;
}

/* 1 when the request may run the route; else 0 after answering. */
static int request_allowed(struct request *r, const struct route *rt)
{
	if (!(rt->flags & ROUTE_PUBLIC) && !r->session.user_id) {
		redirect_to_signin(r);
		return 0;
	}
	/* A bearer request carries no cookie (authenticate_bearer refused one that did), so a
	 * cross-site form cannot make it: it needs no CSRF token. */
	if (strcmp(r->method, "POST") == 0 && !r->session.token_id && !csrf_check(r)) {
		respond_error(r, 403, "The form's security token is missing or out of date. Reload the page and try again.");
		return 0;
	}
	if (r->session.user_id && !role_allows(rt, r->session.role)) {
		char msg[256];
		snprintf(msg, sizeof msg, "Your role (%s) does not allow this; ask an admin of %s.",
			 role_name(r->session.role), r->session.org_name);
		respond_error(r, 403, msg);
		return 0;
	}
	return 1;
}

/* A request with a session cookie (or none) costs three round trips to PostgreSQL: BEGIN with
 * session_begin, the page's query, COMMIT. A ROUTE_READ_ONLY page does not wait for its COMMIT's
 * answer, and one with a route query has it answered in the first round trip: one round trip
 * waited for in all (docs/performance.md). */
int web_transaction_restart(struct request *r)
{
	char err[512];

	db_rollback(r->db);
	if (db_tenant_begin(r->db, r->session.org_id, r->session.user_id, err, sizeof err) == 0)
		return 0;
	respond_db_error(r, err);
	return -1;
}

void web_dispatch(struct request *r)
{
	const struct route *rt;
	int status = 404;
	char err[512];

	rt = route_find(r, &status);
	if (!rt) {
		respond_error(r, status, status == 404 ? "There is no such page." : "That method is not allowed here.");
		return;
	}
	if (db_ensure(r->db, err, sizeof err) < 0) {
		log_error("%s", err);
		respond_error(r, 503, "The database is not reachable; try again in a moment.");
		return;
	}
	if (request_authorization(r)) {
		if (authenticate_bearer(r, rt) <= 0)
			return;
		if (db_tenant_begin(r->db, r->session.org_id, r->session.user_id, err, sizeof err) < 0) {
			respond_db_error(r, err);
			return;
		}
	} else if (session_begin(r, rt) < 0) {
		respond_error(r, 503, "The database is not reachable; try again in a moment.");
		return;
	}
	if (!request_allowed(r, rt)) {
		db_rollback(r->db);
		return;
	}
	run_handler(r, rt);
}
