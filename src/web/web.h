/* The FastCGI worker's request, its response, and the page handlers' common helpers. */
#ifndef STOWAGE_WEB_H
#define STOWAGE_WEB_H

#include "http_metrics.h"
#include "http_parse.h"
#include "job_queue.h"
#include "mail.h"
#include "net_allow.h"
#include "secret_store.h"
#include "strbuf.h"
#include "template.h"
#include "token.h"

#include <cjson/cJSON.h>
#include <fcgiapp.h>
#include <libpq-fe.h>

enum role { ROLE_NONE, ROLE_VIEWER, ROLE_OPERATOR, ROLE_ADMIN };

/* Process-wide state, set up once before the workers fork. */
struct web_context {
	struct template_set *templates;
	const char *database_url;
	int cookie_secure;
	size_t max_body;
	struct secret_keyring keyring;	/* seals cluster tokens and S3 secret keys; sealing-only
					 * (sealing_key_file): it cannot open one */
	struct mail_conf mail;		/* confirmation, invitation and reset links go out this way */
	long rate_per_address;		/* see web_rate_limit */
	long rate_per_org;		/* see web_org_rate_limit */
	long rate_per_client;
	const char *site_url;		/* the links' base, from stowage.conf (never the Host header) */
	struct http_metrics *metrics;	/* web_metrics_file, shared by the workers; NULL: not counted */
	/* the deployment's networks, for the checks that need no resolving (a webhook URL's
	 * address literal); the runner checks again, resolving, when it connects */
	struct net_allow allowed_networks;
};

struct session {
	long long user_id; /* 0: anonymous */
	long long org_id;
	enum role role;
	char csrf[64];
	char email[256];
	char display_name[128];
	char org_name[128];
	/* Set when an API token (Authorization: Bearer) stands for the person: no cookie, no CSRF. */
	long long token_id;
};

struct request {
	FCGX_Request *fcgi;
	const struct web_context *ctx;
	PGconn *db;
	const char *method;
	const char *path;
	const char *remote_addr;
	int wants_json;
	struct kv_list query;
	struct kv_list form;	/* urlencoded, multipart, or a flat JSON object's members */
	struct kv_list cookies;
	struct kv_list params;	/* captured from the route pattern */
	int route_index;	/* into web_routes, -1 when none matched (the metrics' label) */
	struct session session;
	/* A handler sets this when its change failed and the transaction must not commit. */
	int rollback;
	/* The transaction is READ ONLY (a ROUTE_READ_ONLY page): it commits without a wait. */
	int read_only;
	/* The response, written by exactly one respond_* call. */
	int responded;
	int status;
	struct strbuf headers;
	struct strbuf body;
};

struct route {
	const char *method;
	const char *pattern;	/* "/members/:id/role": ":name" captures one path segment */
	void (*handler)(struct request *r);
	unsigned flags;
};

#define ROUTE_PUBLIC 1u		/* no session needed (sign-in, sign-up) */
#define ROUTE_OPERATOR 2u	/* operators and admins only */
#define ROUTE_ADMIN 4u		/* admins only */
#define ROUTE_PERSON 8u		/* a signed-in person only, never an API token (tokens, password, sign-out) */
/* A GET that only reads: its transaction is READ ONLY (PostgreSQL refuses a write in it) and is
 * committed while the page goes out, not waited for (docs/performance.md). */
#define ROUTE_READ_ONLY 16u

extern const struct route web_routes[];
extern const size_t web_routes_count;

/* routes.c: the whole life of one request. */
void web_dispatch(struct request *r);
/* After a statement that failed as the page expected (a name taken), the request's transaction
 * is aborted and every read of it would fail: this starts a fresh one under the same tenant so
 * that the page can still show its form. 0, or -1 when it could not (answered 500). */
int web_transaction_restart(struct request *r);

/* request.c */
int request_read(struct request *r, FCGX_Request *fcgi, const struct web_context *ctx, char *err, size_t errlen);
void request_free(struct request *r);
const char *request_header(const struct request *r, const char *cgi_name);
long long request_param_id(const struct request *r, const char *name);
int request_tls(const struct request *r);
/* Our cookie `name` ("__Host-name" over TLS), or NULL. */
const char *request_cookie(const struct request *r, const char *name);

/* response.c: each ends the request's response. */
/* Renders template `page` in the layout, or the view as JSON when the client asked for JSON.
 * Adds the common view fields (user, org, csrf, role flags). Takes ownership of view. */
void respond_page(struct request *r, int status, const char *page, cJSON *view);
void respond_redirect(struct request *r, const char *location);
void respond_error(struct request *r, int status, const char *message);
void respond_send(struct request *r);
void response_set_cookie(struct request *r, const char *name, const char *value, long max_age);
/* A one-time message shown on the next page (after a redirect). */
void response_flash(struct request *r, const char *message);
/* The view of a form that failed validation is shown again with status 422. */
void respond_form_errors(struct request *r, const char *page, cJSON *view);
/* text as text/plain; with a filename, as an attachment of that name (letters, digits, '.', '-'). */
void respond_text(struct request *r, const char *filename, const char *text, size_t len);
/* bytes of content_type (a constant of the caller's) as an attachment of that filename. */
void respond_file(struct request *r, const char *content_type, const char *filename, const void *data, size_t len);

/* session.c */
/* BEGINs the request's transaction for route rt (READ ONLY for a ROUTE_READ_ONLY route, then
 * r->read_only is set; with its route_query in the same round trip), bound to the tenant of its
 * session cookie (r->session) or, without a valid one, to no tenant. 0, or -1 on a database
 * error (nothing left open). */
int session_begin(struct request *r, const struct route *rt);
/* routes.c: a ROUTE_READ_ONLY page's first query when it takes no parameters, or NULL: sent in
 * the round trip that opens the request (after session_begin, so bound to the same tenant, or to
 * none) and handed to the handler's db_exec of it. */
const char *route_query(const struct route *rt);
/* The request's Authorization header when it is one, else NULL. */
const char *request_authorization(const struct request *r);
/* Loads the identity of the request's bearer token: 1 when it is valid, 0 when it is not (the
 * caller answers 401), -1 on a database error. Records the use in the audit log. */
int session_load_bearer(struct request *r, const char *authorization);
/* 1 when the request carries a session cookie, valid or not, under either name. */
int request_has_session_cookie(const struct request *r);
/* An API token's text: the prefix (so that secret scanners recognise it) and a random token. */
#define API_TOKEN_PREFIX "stw_"
#define API_TOKEN_TEXT_LEN (4 + TOKEN_TEXT_LEN)
int session_create(struct request *r, long long user_id, long long org_id, char *err, size_t errlen);
void session_destroy(struct request *r);
int csrf_check(const struct request *r);
const char *csrf_token_for_view(struct request *r);
/* A token's SHA-256 as a bytea parameter in hex text form ("\x" and 64 digits). */
void web_token_hash_param(const char *token, char out[67]);

/* web_rate.c: counts an attempt at action ("signup", "signin", "invite", "reset") for address
 * (may be NULL) and for the client; 1 when allowed, 0 after answering 429 in words naming what
 * (plural: "sign-ups"), -1 after answering with a database error. */
int web_rate_limit(struct request *r, const char *action, const char *what, const char *address);
/* Counts one connection to a tenant's server made for the session's organisation (a cluster or
 * repository test or save, a dry run) against rate_limit_per_org an hour: 1 when allowed, 0
 * after answering 429 in words, -1 after answering with a database error. */
int web_org_rate_limit(struct request *r);
/* 1 after answering 429 when email's wrong passwords slowed it down, 0 when it may try, -1 after
 * answering with a database error. */
int web_signin_slowed(struct request *r, const char *email);
/* Records a wrong password for email; 0, or -1 after answering with a database error. The caller
 * answers and clears r->rollback, so that the failure is kept. */
int web_signin_failed(struct request *r, const char *email);

/* page_account.c: one-time links. A new token and its hash parameter; 0 or -1 with err. */
int account_link_new(char token[44], char hash[67], char *err, size_t errlen);
/* Mails intro, the link site_url + path + token, and outro to `to`; 0 or -1 with err. */
int account_mail_link(struct request *r, const char *to, const char *subject, const char *intro,
		      const char *path, const char *token, const char *outro, char *err, size_t errlen);
const char *role_name(enum role role);
enum role role_parse(const char *name);

/* web_row.c: one of the tenant's rows by the route's id. web_row runs query with $1 = id (under
 * row-level security) and returns its one row; otherwise (no such id, or another organisation's)
 * it answers 404 "There is no such <noun>." (500 when the database failed) and returns NULL. */
PGresult *web_row(struct request *r, const char *query, long long id, const char *noun);

/* A page's "Delete" button. sql deletes by $1 (the route's id) and returns the row's name; done
 * is a format with one %s for that name. */
struct delete_action {
	const char *sql;
	const char *audit_action;
	const char *not_found;
	const char *in_use;	/* when other rows still refer to it */
	const char *done;
	const char *then;	/* where to go afterwards */
};
void respond_delete(struct request *r, const struct delete_action *a);

/* web_job_queue.c: "queue a job and go to its page", for every button that starts a job. */
struct web_job {
	struct job_spec spec;
	const char *audit_action, *audit_name;	/* recorded with the job's id */
	const char *flash;			/* shown on the job's page */
	const char *already;			/* when the same job is live already: said on ... */
	const char *already_location;		/* ... this page (NULL: the live job is refused as an error) */
};
void web_job_queue(struct request *r, const struct web_job *q);

/* page helpers: the failure path of a database call inside a handler. */
void respond_db_error(struct request *r, const char *err);

/* web_requests.c: the web connects to no tenant's server; a runner does, for a request
 * (runner_requests, sql/012). */
struct runner_answer {
	long long id;
	char kind[24];
	char state[16];		/* pending, running, answered */
	int answered;
	int applied;		/* the runner stored what it asked for (a save, a Test's status) */
	long long created_by;	/* the user who asked */
	cJSON *result;		/* answered: the runner's result (owned), or NULL */
	cJSON *params;		/* what was asked (owned) */
	char error[600];	/* answered without a result: why, in words */
};
void runner_answer_free(struct runner_answer *a);
/* A new request of the session's organisation (the runners are woken); its id, or 0 with err,
 * or WEB_REQUESTS_FULL with err in words when the organisation has too many waiting. */
#define WEB_REQUESTS_FULL (-1LL)
long long web_request_ask(struct request *r, const char *kind, const cJSON *params, char *err, size_t errlen);
/* Asks a runner (params: owned, freed) and goes to the page that follows the request, or answers
 * why it could not be asked. */
void web_request_follow(struct request *r, const char *kind, cJSON *params);
/* Answers a failed web_request_ask: 429 in words when full, else a database error. */
void web_request_refused(struct request *r, long long rid, const char *err);
/* Request id of the session's organisation into a; -1 when there is none. */
int web_request_load(struct request *r, long long id, struct runner_answer *a);
/* The wizards' live reads ([web_read_new(...), ...]): 1 with a answered (the same reads answered
 * in the last 30 s are reused), 0 while a runner reads (a->id set), -1 with err. */
/* Answers older than fresh_seconds are asked again: WEB_READS_FRESH for what a wizard shows, a
 * few seconds for a check that guards a change (a migration's pre-check). */
#define WEB_READS_FRESH 30
/* The newest request of kind with these params answered within fresh_seconds (or on its way),
 * else a new one: 1 answered, 0 pending (a->id set), -1 with err (a->id WEB_REQUESTS_FULL when full). */
int web_request_reuse(struct request *r, const char *kind, const cJSON *params, int fresh_seconds,
		      struct runner_answer *a, char *err, size_t errlen);
int web_cluster_reads(struct request *r, const cJSON *reads, int fresh_seconds, struct runner_answer *a, char *err,
		      size_t errlen);
cJSON *web_read_new(const char *read, long long cluster_id);
/* Read i's data, or NULL with why in words (and web_read_status: the server's HTTP status). */
const cJSON *web_read_result(const struct runner_answer *a, int i, char *why, size_t whylen);
long web_read_status(const struct runner_answer *a, int i);
/* view.live_pending {id, state, message, resubmit} and view.request {id, kind, state}: the page
 * says it waits, and resubmits its form (to resubmit) once the request is answered. */
void web_request_view(cJSON *view, const struct runner_answer *a, const char *message, const char *resubmit);
/* The pages that act on an answer (GET /requests/:id). */
/* A save (or Test) of a tenant's connection, stored by the runner with its answer: where it goes. */
struct web_saved {
	const char *what;		/* "cluster" */
	const char *id_param;		/* the request's parameter naming the row: "cluster_id" */
	const char *test_purpose;	/* "cluster_test" */
	const char *list;		/* where a stored save goes: "/clusters" */
	/* the form again with msg and what was typed (never the secret) */
	void (*refused)(struct request *r, const cJSON *params, const char *msg);
	const char *page, *nav;			/* its form's template, the menu entry: "cluster_form", "nav_clusters" */
	const char *title_new, *title_edit;
	const char *test_noun, *test_label;	/* "connection test", "Test connection" */
	const char *secret_name, *secret_label;	/* "token", "Bearer token" */
};
extern const struct web_saved cluster_saved, repository_saved;
void web_save_answered(struct request *r, const struct runner_answer *a, const char *purpose,
		       const struct web_saved *s);
/* The connection's form (view has fields, form_error, secret_stored) as the page or its errors. */
void web_connection_form(struct request *r, int status, cJSON *view, long long id, const struct web_saved *s);
void hook_dry_run_answered(struct request *r, const struct runner_answer *a);
void backup_object_answered(struct request *r, const struct runner_answer *a);
void page_runner_request(struct request *r);
void page_runner_request_state(struct request *r);

/* web_wizard.c: multi-step forms. Each step is a declared form; the values of every step travel
 * in hidden fields, and a step is shown only once every step before it validated on the server. */
#define WIZARD_MAX_STEPS 8
struct form_values;
struct form_field;
struct wizard;
struct wizard_step {
	const char *title;
	const struct form_field *fields;
	size_t n;
	/* Checks the form kinds cannot express (across fields, against the database); adds errors
	 * to v. Runs only when the fields validated, after the checks of the steps before it (w holds
	 * their values). May be NULL. */
	void (*check)(struct request *r, const struct wizard *w, struct form_values *v);
};
struct wizard {
	const struct wizard_step *steps;
	size_t nsteps;
	struct form_values *v;	/* one per step */
	char *form_error;	/* a key that belongs to no step */
};
/* Validates every step of input; runs the checks of steps 1..upto-1. Returns the step to show
 * (1-based): the first before upto with an error, else upto (nsteps + 1: all valid). */
size_t wizard_run(struct request *r, struct wizard *w, const struct wizard_step *steps, size_t nsteps,
		  const struct kv_list *input, size_t upto);
/* The value of field name of step (1-based), or NULL. */
const char *wizard_value(const struct wizard *w, size_t step, const char *name);
/* Sets an error on field name of step (the first error of a field wins). */
void wizard_error(struct wizard *w, size_t step, const char *name, const char *message);
/* One line of a wizard's view.checks: what was found, ok or not, in words. */
void wizard_check(cJSON *checks, int ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* One entry of view.steps, the step list templates/wizard_steps.html shows above every wizard. */
void wizard_step_add(cJSON *steps, const char *title, int current);
/* The view of step `shown`: its fields (with their errors when with_errors), the other steps'
 * values as "hidden" [{name, value}], "steps" for the progress list, "stepN": true, "prev". */
cJSON *wizard_view(const struct wizard *w, size_t shown, int with_errors);
void wizard_free(struct wizard *w);

/* web_hooks.c: the wizards' hook steps (library hooks by name, in order, and an inline script). */
/* Field library_hooks of fields names hooks of the organisation's library, or gets an error. */
void web_hooks_check(struct request *r, struct form_values *v, const struct form_field *fields);
/* phase: NULL (the plan's own hook point) or the one phase the hooks run at. */
char *web_hooks_json(struct request *r, const char *list, const char *script, const char *phase);
void web_hooks_add_library(struct request *r, cJSON *view);

/* pages */
void page_signup_form(struct request *r);
void page_signup_post(struct request *r);
void page_signin_form(struct request *r);
/* next when it is a path on this site, else "/" (never another site after sign-in). */
const char *web_safe_next(const char *next);
/* page_sso.c: single sign-on's settings and sign-in */
void page_sso_settings(struct request *r);
void page_sso_save(struct request *r);
void page_sso_delete(struct request *r);
void page_sso_start(struct request *r);
void page_sso_callback(struct request *r);
void page_sso_finish(struct request *r);
void sso_request_answered(struct request *r, const struct runner_answer *a);
void page_signin_post(struct request *r);
void page_signout_post(struct request *r);
void page_confirm_form(struct request *r);
void page_confirm_post(struct request *r);
void page_invitation(struct request *r);
void page_invitation_accept(struct request *r);
void page_account(struct request *r);
void page_account_password(struct request *r);
void page_password_forgot_form(struct request *r);
void page_password_forgot(struct request *r);
void page_password_reset_form(struct request *r);
void page_password_reset(struct request *r);
void page_home(struct request *r);
void page_members(struct request *r);
void page_members_invite(struct request *r);
void page_members_role(struct request *r);
void page_members_remove(struct request *r);
void page_audit(struct request *r);
void page_tokens(struct request *r);
void page_jobs(struct request *r);
void page_token_create(struct request *r);
void page_token_revoke(struct request *r);
/* page_notifications.c: the organisation's defaults and deliveries; a plan's own settings */
void page_org_notifications(struct request *r);
void page_org_notifications_save(struct request *r);
void page_backup_plan_notifications(struct request *r);
void page_backup_plan_notifications_save(struct request *r);
void page_restore_plan_notifications(struct request *r);
void page_restore_plan_notifications_save(struct request *r);
void page_migration_plan_notifications(struct request *r);
void page_migration_plan_notifications_save(struct request *r);
/* The plan wizards' "Mail on failure" field (notify_emails): the plan's own addresses, comma
 * separated. column is "backup_plan_id", "restore_plan_id" or "migration_plan_id". Saving none
 * where the plan has no webhook either gives the plan back to the organisation's defaults. */
int notify_emails_check(const char *text, char *why, size_t whylen);
int notify_plan_emails_load(struct request *r, const char *column, long long plan_id, char *out, size_t outlen);
int notify_plan_emails_save(struct request *r, const char *column, long long plan_id, const char *emails,
			    char *err, size_t errlen);
void page_schedule_preview(struct request *r);
void page_migrations(struct request *r);
void page_migration_new(struct request *r);
void page_migration_step(struct request *r);
void page_migration_create(struct request *r);
void page_migration_edit(struct request *r);
void page_migration_edit_step(struct request *r);
void page_migration_update(struct request *r);
void page_migration(struct request *r);
void page_migration_precheck(struct request *r);
void page_migration_run(struct request *r);
void page_migration_precopy(struct request *r);
void page_migration_cutover(struct request *r);
void page_migration_test(struct request *r);
void page_migration_delete(struct request *r);
/* The cron expression of a schedule form (kind cron/hourly/daily/weekly), or -1 with err. */
int schedule_expression(const char *kind, const char *cron, const char *at, const char *weekday,
			char *out, size_t outlen, char *err, size_t errlen);
void page_clusters(struct request *r);
extern const char page_clusters_query[];
void page_cluster_new(struct request *r);
void page_cluster_import_form(struct request *r);
void page_cluster_import(struct request *r);
void page_cluster_create(struct request *r);
void page_cluster_edit(struct request *r);
void page_cluster_update(struct request *r);
void page_cluster_test(struct request *r);
void page_cluster_limits(struct request *r);
void page_cluster_limits_save(struct request *r);
void page_cluster_delete(struct request *r);
void page_repositories(struct request *r);
void page_repository_new(struct request *r);
void page_repository_create(struct request *r);
void page_repository_edit(struct request *r);
void page_repository_update(struct request *r);
void page_repository_test(struct request *r);
void page_repository_delete(struct request *r);
void page_backup_plans(struct request *r);
void page_backup_plan_new(struct request *r);
void page_backup_plan_wizard_post(struct request *r);
void page_backup_plan_create(struct request *r);
void page_backup_plan_edit(struct request *r);
void page_backup_plan_edit_step(struct request *r);
void page_backup_plan_update(struct request *r);
void page_backup_plan_run(struct request *r);
void page_backup_plan_delete(struct request *r);
void page_backup_plan_jobs(struct request *r);
void page_restore_plans(struct request *r);
void page_restore_plan_new(struct request *r);
void page_restore_plan_wizard_post(struct request *r);
void page_restore_plan_create(struct request *r);
void page_restore_plan_edit(struct request *r);
void page_restore_plan_edit_step(struct request *r);
void page_restore_plan_update(struct request *r);
void page_restore_plan_activate(struct request *r);
void page_restore_plan_delete(struct request *r);
void page_restore_plan_jobs(struct request *r);
/* page_backups.c: the repository page's "upkeep": backups, bytes stored, deduplication, the
 * last prune and what it freed (view["upkeep"]). */
void web_repository_upkeep(struct request *r, cJSON *view, const char *repository_id);
void page_repository_sync(struct request *r);
void page_backups(struct request *r);
void page_backup(struct request *r);
void page_backup_delete(struct request *r);
void page_backup_verify(struct request *r);
/* page_test_restore.c */
void page_backup_test_restore(struct request *r);
void page_backup_plan_test_restore_save(struct request *r);
/* The backup's test restores ("test_restores", with their checks) and the clusters to test in. */
int test_restore_backup_view(struct request *r, cJSON *view, const char *backup_id, char *err, size_t errlen);
/* The plan's test restore settings as plan's "test_restore". */
int test_restore_plan_view(struct request *r, cJSON *plan, const char *plan_id, char *err, size_t errlen);
void page_backup_object(struct request *r);
void page_backup_download(struct request *r);
void page_job_archive_download(struct request *r);
void page_job(struct request *r);
void page_job_progress(struct request *r);
void page_job_log(struct request *r);
void page_job_cancel(struct request *r);
void page_job_diagnostics(struct request *r);
void page_job_undo(struct request *r);
void page_job_diagnostics_download(struct request *r);
void page_hooks(struct request *r);
void page_hook_new(struct request *r);
void page_hook_create(struct request *r);
void page_hook_check(struct request *r);
void page_hook_edit(struct request *r);
void page_hook_update(struct request *r);
void page_hook_dry_run(struct request *r);
void page_hook_delete(struct request *r);

#endif
