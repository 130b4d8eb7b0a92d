/* Clusters (manual 3.1): list with status; add, edit, test and delete. Saving tests the
 * connection with the token and says "Connected" and the version, or exactly why not. */
#include "web.h"
#include "db.h"
#include "form.h"
#include "kubeconfig.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct form_field cluster_fields[] = {
	{ .name = "name", .label = "Name", .kind = FORM_NAME, .required = 1 },
	{ .name = "api_url", .label = "API server URL", .kind = FORM_URL, .required = 1, .max_len = 2048 },
	{ .name = "token", .label = "Bearer token", .kind = FORM_SECRET, .max_len = 8192 },
	{ .name = "ca_pem", .label = "CA bundle", .kind = FORM_TEXTAREA, .max_len = 65536 },
	{ .name = "save_unverified", .label = "Save even if the test fails", .kind = FORM_BOOL },
};
#define CLUSTER_N (sizeof cluster_fields / sizeof cluster_fields[0])

static int valid_ca(const char *pem)
{
	return !pem || !*pem || strstr(pem, "-----BEGIN CERTIFICATE-----") != NULL;
}

static void cluster_refused(struct request *r, const cJSON *p, const char *msg);

/* How the cluster form is shown and a runner's answer to its save or Test (web_connection.c). */
const struct web_saved cluster_saved = {
	.what = "cluster", .id_param = "cluster_id", .test_purpose = "cluster_test", .list = "/clusters",
	.refused = cluster_refused, .page = "cluster_form", .nav = "nav_clusters", .title_new = "Add a cluster",
	.title_edit = "Edit cluster", .test_noun = "connection test", .test_label = "Test connection",
	.secret_name = "token", .secret_label = "Bearer token",
};

static void cluster_form_respond(struct request *r, int status, cJSON *view, long long id)
{
	web_connection_form(r, status, view, id, &cluster_saved);
}

/* The route's query (routes.c): sent with the request's BEGIN. */
const char page_clusters_query[] =
	"SELECT id, name, api_url, k8s_version, status, status = 'connected' AS connected, status_message, "
	"coalesce(to_char(last_checked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), '') AS last_checked "
	"FROM clusters ORDER BY name";

void page_clusters(struct request *r)
{
	char err[512];
	PGresult *res = db_exec(r->db, page_clusters_query, 0, NULL, err, sizeof err);
	cJSON *view;

	if (!res) {
		respond_db_error(r, err);
		return;
	}
	view = cJSON_CreateObject();
	cJSON_AddStringToObject(view, "title", "Clusters");
	cJSON_AddBoolToObject(view, "nav_clusters", 1);
	cJSON_AddItemToObject(view, "clusters", db_rows_json(res));
	PQclear(res);
	respond_page(r, 200, "clusters", view);
}

void page_cluster_new(struct request *r)
{
	cluster_form_respond(r, 200, cJSON_CreateObject(), 0);
}

/* Asks a runner to test the connection with token_enc (sealed for this organisation) and goes to
 * the page that follows the request; once answered, web_save_answered shows what the runner stored
 * (when it connected, or save_unverified). The web worker itself never connects. */
static void cluster_ask(struct request *r, long long id, const char *name, const char *url, const char *token_enc,
			const char *ca, int save_unverified, const char *page)
{
	cJSON *p = cJSON_CreateObject();

	if (web_org_rate_limit(r) <= 0) {
		cJSON_Delete(p);
		return;
	}
	cJSON_AddStringToObject(p, "purpose", "cluster_save");
	cJSON_AddStringToObject(p, "api_url", url);
	cJSON_AddStringToObject(p, "ca_pem", ca ? ca : "");
	cJSON_AddStringToObject(p, "token_enc", token_enc);
	cJSON_AddStringToObject(p, "key_id", r->ctx->keyring.key_id);
	cJSON_AddNumberToObject(p, "cluster_id", (double)id);
	cJSON_AddStringToObject(p, "name", name);
	cJSON_AddBoolToObject(p, "save_unverified", save_unverified);
	cJSON_AddStringToObject(p, "page", page);
	web_request_follow(r, "cluster_probe", p);
}

/* A save that was not stored: its form again, saying why, with what was typed (never the token). */
static void cluster_refused(struct request *r, const cJSON *p, const char *msg)
{
	const char *page = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "page"));
	long long id = (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(p, "cluster_id"));
	cJSON *view = cJSON_CreateObject(), *fields = cJSON_AddObjectToObject(view, "fields");
	static const char *const names[] = { "name", "api_url", "ca_pem" };

	for (int i = 0; i < 3; i++) {
		const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, names[i]));
		cJSON_AddStringToObject(cJSON_AddObjectToObject(fields, names[i]), "value", v ? v : "");
	}
	cJSON_AddStringToObject(view, "form_error", msg);
	if (id)
		cJSON_AddBoolToObject(view, "secret_stored", 1);
	if (page && strcmp(page, "cluster_import") == 0) {
		cJSON_AddStringToObject(view, "title", "Import a kubeconfig");
		cJSON_AddBoolToObject(view, "nav_clusters", 1);
		respond_form_errors(r, "cluster_import", view);
		return;
	}
	cluster_form_respond(r, 422, view, id);
}


/* 1 when two CA bundles are the same text, whatever the line endings and surrounding blanks (a
 * browser sends a textarea back with CRLF). */
static int same_pem(const char *a, const char *b)
{
	while (*a == ' ' || *a == '\t' || *a == '\r' || *a == '\n')
		a++;
	while (*b == ' ' || *b == '\t' || *b == '\r' || *b == '\n')
		b++;
	for (;;) {
		while (*a == '\r')
			a++;
		while (*b == '\r')
			b++;
		if (*a != *b) {
			/* Only trailing blanks may differ. */
			const char *rest = *a ? a : b;
			return strspn(rest, " \t\r\n") == strlen(rest) && (!*a || !*b);
		}
		if (!*a)
			return 1;
		a++;
		b++;
	}
}

/* The sealed token stored for cluster id, and the API URL and CA it was stored for (caller frees
 * all three); NULL after answering. The web never opens it: the runner does, for the test. */
static char *cluster_stored_token(struct request *r, long long id, char **url, char **ca)
{
	PGresult *res = web_row(r, "SELECT token_enc, api_url, coalesce(ca_pem, '') FROM clusters WHERE id = $1", id,
				"cluster");
	char *token;

	if (!res)
		return NULL;
	token = xstrdup(PQgetvalue(res, 0, 0));
	*url = xstrdup(PQgetvalue(res, 0, 1));
	*ca = xstrdup(PQgetvalue(res, 0, 2));
	PQclear(res);
	return token;
}

static void cluster_save(struct request *r, long long id)
{
	struct form_values v;
	char *token;

	form_validate(cluster_fields, CLUSTER_N, &r->form, &v);
	/* the one rule for an API server's address, stated on the form too: TLS only (the client
	 * refuses anything else, as does a kubeconfig import) */
	const char *url = form_value(&v, cluster_fields, "api_url");
	if (url && strncasecmp(url, "https://", 8) != 0)
		form_fail(&v, cluster_fields, "api_url",
			  "API server URL: must be an https:// URL (an API server is reached over TLS only)");
	if (!valid_ca(form_value(&v, cluster_fields, "ca_pem")))
		form_fail(&v, cluster_fields, "ca_pem", "CA bundle: must be PEM certificates (-----BEGIN CERTIFICATE-----)");
	const char *typed = form_value(&v, cluster_fields, "token");
	if (!id && !(typed && *typed))
		form_fail(&v, cluster_fields, "token", "Bearer token: required");
	if (v.errors) {
		cluster_form_respond(r, 422, form_view(&v, cluster_fields), id);
		form_values_free(&v);
		return;
	}
	if (typed && *typed) {
		token = secret_seal(&r->ctx->keyring, r->session.org_id, "cluster.token", typed);
		if (!token)
			respond_db_error(r, "sealing the token failed");
	} else {
		/* The stored token goes only where it was first sent: a new API URL or CA could be
		 * someone else's server, which would then receive it. */
		char *stored_url = NULL, *stored_ca = NULL;
		const char *ca = form_value(&v, cluster_fields, "ca_pem");
		token = cluster_stored_token(r, id, &stored_url, &stored_ca);
		if (token && (strcmp(stored_url, form_value(&v, cluster_fields, "api_url")) != 0 ||
			      !same_pem(stored_ca, ca ? ca : ""))) {
			form_fail(&v, cluster_fields, "token", "%s", strcmp(stored_url, form_value(&v, cluster_fields, "api_url")) != 0 ?
				"Bearer token: required again when the API server URL changes; the stored token is "
				"never sent to a new address." :
				"Bearer token: required again when the CA bundle changes; the stored token is never "
				"sent to a server verified by another CA.");
			free(token);
			token = NULL;
			cluster_form_respond(r, 422, form_view(&v, cluster_fields), id);
		}
		free(stored_url);
		free(stored_ca);
	}
	if (token) {
		cluster_ask(r, id, form_value(&v, cluster_fields, "name"), form_value(&v, cluster_fields, "api_url"),
			    token, form_value(&v, cluster_fields, "ca_pem"),
			    strcmp(form_value(&v, cluster_fields, "save_unverified"), "true") == 0, "cluster_form");
	}
	free(token);
	form_values_free(&v);
}

static const struct form_field import_fields[] = {
	{ .name = "kubeconfig", .label = "Kubeconfig file", .kind = FORM_TEXTAREA, .max_len = KUBECONFIG_MAX_BYTES },
	{ .name = "kubeconfig_text", .label = "Kubeconfig", .kind = FORM_TEXTAREA, .max_len = KUBECONFIG_MAX_BYTES },
	{ .name = "context", .label = "Context", .kind = FORM_TEXT, .max_len = 253 },
	{ .name = "name", .label = "Name", .kind = FORM_NAME },
	{ .name = "save_unverified", .label = "Save even if the test fails", .kind = FORM_BOOL },
};
#define IMPORT_N (sizeof import_fields / sizeof import_fields[0])

void page_cluster_import_form(struct request *r)
{
	cJSON *view = cJSON_CreateObject();

	cJSON_AddStringToObject(view, "title", "Import a kubeconfig");
	cJSON_AddBoolToObject(view, "nav_clusters", 1);
	respond_page(r, 200, "cluster_import", view);
}

/* A DNS label made from a context name: "kubernetes-admin@prod" -> "kubernetes-admin-prod". */
static void name_from_context(const char *context, char *out, size_t size)
{
	size_t n = 0;

	for (const char *p = context; *p && n + 1 < size && n < 63; p++) {
		char c = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
			c = '-';
		if (c == '-' && (n == 0 || out[n - 1] == '-'))
			continue;
		out[n++] = c;
	}
	while (n > 0 && out[n - 1] == '-')
		n--;
	out[n] = '\0';
	if (n == 0)
		snprintf(out, size, "imported");
}

void page_cluster_import(struct request *r)
{
	struct form_values v;
	struct kubeconfig_options opt = { 0 };
	struct k8s_cluster_conf conf = { 0 };
	char context[256], name[64], err[512];

	form_validate(import_fields, IMPORT_N, &r->form, &v);
	const char *file = form_value(&v, import_fields, "kubeconfig");
	const char *text = form_value(&v, import_fields, "kubeconfig_text");
	const char *yaml = file && *file ? file : text;
	if (!v.errors && !(yaml && *yaml))
		form_fail(&v, import_fields, "kubeconfig", "Kubeconfig file: choose a file or paste its content");
	const char *ctx_name = form_value(&v, import_fields, "context");
	opt.context = ctx_name && *ctx_name ? ctx_name : NULL;
	if (!v.errors && kubeconfig_parse(yaml, strlen(yaml), &opt, &conf, context, sizeof context, err, sizeof err) < 0)
		form_fail(&v, import_fields, "kubeconfig_text", "Kubeconfig: %s", err);
	if (v.errors) {
		cJSON *view = form_view(&v, import_fields);
		cJSON_AddStringToObject(view, "title", "Import a kubeconfig");
		cJSON_AddBoolToObject(view, "nav_clusters", 1);
		respond_form_errors(r, "cluster_import", view);
		form_values_free(&v);
		return;
	}
	const char *typed_name = form_value(&v, import_fields, "name");
	if (typed_name && *typed_name)
		snprintf(name, sizeof name, "%s", typed_name);
	else
		name_from_context(context, name, sizeof name);
	char *sealed = secret_seal(&r->ctx->keyring, r->session.org_id, "cluster.token", conf.token);
	if (!sealed)
		respond_db_error(r, "sealing the token failed");
	else
		cluster_ask(r, 0, name, conf.api_url, sealed, conf.ca_pem,
			    strcmp(form_value(&v, import_fields, "save_unverified"), "true") == 0, "cluster_import");
	free(sealed);
	kubeconfig_conf_free(&conf);
	form_values_free(&v);
}

void page_cluster_create(struct request *r)
{
	cluster_save(r, 0);
}

void page_cluster_update(struct request *r)
{
	long long id = request_param_id(r, "id");

	if (!id) {
		respond_error(r, 404, "There is no such cluster.");
		return;
	}
	cluster_save(r, id);
}

void page_cluster_edit(struct request *r)
{
	long long id = request_param_id(r, "id");
	PGresult *res = web_row(r, "SELECT name, api_url, coalesce(ca_pem, ''), status, status_message, k8s_version "
				"FROM clusters WHERE id = $1", id, "cluster");
	cJSON *view, *fields;

	if (!res)
		return;
	view = cJSON_CreateObject();
	fields = cJSON_AddObjectToObject(view, "fields");
	const char *names[] = { "name", "api_url", "ca_pem" };
	for (int i = 0; i < 3; i++)
		cJSON_AddStringToObject(cJSON_AddObjectToObject(fields, names[i]), "value", PQgetvalue(res, 0, i));
	cJSON_AddStringToObject(view, "status", PQgetvalue(res, 0, 3));
	cJSON_AddStringToObject(view, "status_message", PQgetvalue(res, 0, 4));
	cJSON_AddBoolToObject(view, "secret_stored", 1);
	PQclear(res);
	cluster_form_respond(r, 200, view, id);
}

/* Test: a runner connects with the stored token; the page follows its answer. */
void page_cluster_test(struct request *r)
{
	long long id = request_param_id(r, "id");
	PGresult *res;
	cJSON *p;

	if (web_org_rate_limit(r) <= 0)
		return;
	res = web_row(r, "SELECT name, api_url, coalesce(ca_pem, ''), token_enc FROM clusters WHERE id = $1", id, "cluster");
	if (!res)
		return;
	p = cJSON_CreateObject();
	cJSON_AddStringToObject(p, "purpose", "cluster_test");
	cJSON_AddNumberToObject(p, "cluster_id", (double)id);
	cJSON_AddStringToObject(p, "api_url", PQgetvalue(res, 0, 1));
	cJSON_AddStringToObject(p, "ca_pem", PQgetvalue(res, 0, 2));
	cJSON_AddStringToObject(p, "token_enc", PQgetvalue(res, 0, 3));
	PQclear(res);
	web_request_follow(r, "cluster_probe", p);
}

void page_cluster_delete(struct request *r)
{
	static const struct delete_action a = {
		"DELETE FROM clusters WHERE id = $1 RETURNING name", "cluster.delete", "There is no such cluster.",
		"This cluster is used by a plan or a job's record: delete those plans first.", "Cluster %s deleted.",
		"/clusters",
	};

	respond_delete(r, &a);
}
