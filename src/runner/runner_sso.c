/* The runner's part of single sign-on: it alone talks to an organisation's OpenID provider.
 * sso_discovery reads the discovery document and the JWK Set when an admin saves the settings,
 * and stores them; sso_exchange trades a sign-in's code (with its PKCE verifier) for the ID
 * token, fetching the JWK Set again when the token names a key the cache lacks, and reads the
 * userinfo. The web verifies the ID token itself (oidc_token) and makes the session. */
#include "runner_sso.h"
#include "audit.h"
#include "db.h"
#include "oidc_fetch.h"
#include "oidc_token.h"
#include "secret_store.h"
#include "strbuf.h"
#include "template.h"
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cJSON *fail(const char *fmt, const char *what)
{
	cJSON *r = cJSON_CreateObject();
	char message[700];

	snprintf(message, sizeof message, fmt, what);
	cJSON_AddBoolToObject(r, "ok", 0);
	cJSON_AddStringToObject(r, "message", message);
	return r;
}

/* The provider's JWK Set, checked, or NULL with err. */
static cJSON *fetch_jwks(const struct net_allow *allow, const char *uri, char *err, size_t errlen)
{
	long status;
	char why[300];
	cJSON *jwks = oidc_fetch_json(allow, uri, NULL, NULL, &status, err, errlen);

	if (jwks && status != 200)
		snprintf(err, errlen, "%.200s: HTTP %ld", uri, status);
	else if (jwks && oidc_jwks_check(jwks, why, sizeof why) < 0)
		snprintf(err, errlen, "%.200s: %s", uri, why);
	else
		return jwks;
	cJSON_Delete(jwks);
	return NULL;
}

/* params: the settings the admin saved (issuer, ...); result: {ok, message, authorization_endpoint,
 * token_endpoint, userinfo_endpoint, jwks_uri, jwks}. */
cJSON *runner_sso_discovery(const struct runner_request *q)
{
	const char *issuer = json_str(q->params, "issuer");
	static const char *const endpoints[] = { "authorization_endpoint", "token_endpoint", "jwks_uri" };
	struct strbuf url = STRBUF_INIT;
	char err[600], why[300];
	long status;
	size_t len = strlen(issuer);
	cJSON *doc, *jwks, *r;

	strbuf_add(&url, issuer, len && issuer[len - 1] == '/' ? len - 1 : len);
	strbuf_addstr(&url, "/.well-known/openid-configuration");
	doc = oidc_fetch_json(q->allow, url.buf, NULL, NULL, &status, err, sizeof err);
	strbuf_release(&url);
	if (!doc)
		return fail("Discovery: %s", err);
	if (status != 200) {
		cJSON_Delete(doc);
		snprintf(err, sizeof err, "HTTP %ld from the discovery document", status);
		return fail("Discovery: %s", err);
	}
	/* OpenID Connect Discovery 4.3: the document's issuer is exactly the one asked */
	if (strcmp(json_str(doc, "issuer"), issuer) != 0) {
		snprintf(err, sizeof err, "the document names the issuer \"%.200s\", not \"%.200s\" (they must be identical)",
			 json_str(doc, "issuer"), issuer);
		cJSON_Delete(doc);
		return fail("Discovery: %s", err);
	}
	for (size_t i = 0; i < 3; i++)
		if (oidc_url_check(json_str(doc, endpoints[i]), why, sizeof why) < 0) {
			snprintf(err, sizeof err, "its %s %s", endpoints[i], why);
			cJSON_Delete(doc);
			return fail("Discovery: %s", err);
		}
	const cJSON *methods = cJSON_GetObjectItemCaseSensitive(doc, "code_challenge_methods_supported"), *m;
	int s256 = !methods;
	cJSON_ArrayForEach(m, methods)
		if (cJSON_IsString(m) && strcmp(m->valuestring, "S256") == 0)
			s256 = 1;
	if (!s256) {
		cJSON_Delete(doc);
		return fail("Discovery: %s", "the provider does not support PKCE with S256");
	}
	if (!(jwks = fetch_jwks(q->allow, json_str(doc, "jwks_uri"), err, sizeof err))) {
		cJSON_Delete(doc);
		return fail("Keys: %s", err);
	}
	r = cJSON_CreateObject();
	cJSON_AddBoolToObject(r, "ok", 1);
	cJSON_AddStringToObject(r, "message", "Connected: discovery and keys read");
	for (size_t i = 0; i < 3; i++)
		cJSON_AddStringToObject(r, endpoints[i], json_str(doc, endpoints[i]));
	const char *userinfo = json_str(doc, "userinfo_endpoint");
	cJSON_AddStringToObject(r, "userinfo_endpoint", oidc_url_check(userinfo, why, sizeof why) == 0 ? userinfo : "");
	cJSON_AddItemToObject(r, "jwks", jwks);
	cJSON_Delete(doc);
	return r;
}

/* The organisation's settings as the runner reads them, in a short transaction of their own. */
static cJSON *sso_settings(const struct runner_request *q, char *err, size_t errlen)
{
	PGresult *res;
	cJSON *s = NULL;

	if (db_tenant_begin(q->db, q->org_id, 0, err, errlen) < 0)
		return NULL;
	res = db_exec(q->db, "SELECT issuer, client_id, client_secret_enc, token_endpoint, userinfo_endpoint, jwks_uri, "
		      "jwks::text FROM org_sso", 0, NULL, err, errlen);
	if (res && PQntuples(res) == 1) {
		s = cJSON_CreateObject();
		for (int c = 0; c < PQnfields(res); c++)
			cJSON_AddStringToObject(s, PQfname(res, c), PQgetvalue(res, 0, c));
	} else if (res) {
		snprintf(err, errlen, "the organisation has no single sign-on any more");
	}
	PQclear(res);
	db_rollback(q->db);
	return s;
}

static void form_add(struct strbuf *f, const char *name, const char *value)
{
	if (f->len)
		strbuf_addstr(f, "&");
	strbuf_addstr(f, name);
	strbuf_addstr(f, "=");
	url_escape(f, value, strlen(value));
}

/* params: {code, verifier, redirect_uri, login_id}; result: {ok, message, id_token, userinfo,
 * jwks (only when fetched again)}. The access token stays in the runner. */
cJSON *runner_sso_exchange(const struct runner_request *q)
{
	char err[600], kid[128];
	long status;
	cJSON *s = sso_settings(q, err, sizeof err), *tok, *r, *cached;
	struct strbuf form = STRBUF_INIT;

	if (!s)
		return fail("Sign-in: %s", err);
	char *secret = secret_open(&q->ctx->keyring, q->org_id, "sso.client_secret", json_str(s, "client_secret_enc"));
	if (!secret) {
		cJSON_Delete(s);
		return fail("Sign-in: %s", "the stored client secret cannot be decrypted with the current master key");
	}
	char *basic = oidc_basic_auth(json_str(s, "client_id"), secret);
	secret_free(secret);
	form_add(&form, "grant_type", "authorization_code");
	form_add(&form, "code", json_str(q->params, "code"));
	form_add(&form, "redirect_uri", json_str(q->params, "redirect_uri"));
	form_add(&form, "code_verifier", json_str(q->params, "verifier"));
	tok = oidc_fetch_json(q->allow, json_str(s, "token_endpoint"), form.buf, basic, &status, err, sizeof err);
	secret_free(basic);
	strbuf_release(&form);
	if (!tok) {
		cJSON_Delete(s);
		return fail("The provider's token endpoint: %s", err);
	}
	const char *id_token = json_str(tok, "id_token");
	if (status != 200 || !*id_token) {
		snprintf(err, sizeof err, "HTTP %ld, %.100s %.300s", status, *json_str(tok, "error") ? json_str(tok, "error") : "no ID token",
			 json_str(tok, "error_description"));
		cJSON_Delete(tok);
		cJSON_Delete(s);
		return fail("The provider refused the code: %s", err);
	}
	r = cJSON_CreateObject();
	cJSON_AddBoolToObject(r, "ok", 1);
	cJSON_AddStringToObject(r, "id_token", id_token);
	/* a key the cache lacks: the provider rotated its keys, so they are read again */
	cached = cJSON_Parse(json_str(s, "jwks"));
	if (oidc_token_kid(id_token, kid, sizeof kid) == 0 && !oidc_jwks_has_kid(cached, kid)) {
		cJSON *jwks = fetch_jwks(q->allow, json_str(s, "jwks_uri"), err, sizeof err);
		if (jwks)
			cJSON_AddItemToObject(r, "jwks", jwks);
	}
	cJSON_Delete(cached);
	const char *access = json_str(tok, "access_token");
	if (*json_str(s, "userinfo_endpoint") && *access) {
		struct strbuf bearer = STRBUF_INIT;
		strbuf_addf(&bearer, "Bearer %s", access);
		cJSON *info = oidc_fetch_json(q->allow, json_str(s, "userinfo_endpoint"), NULL, bearer.buf, &status, err, sizeof err);
		strbuf_release(&bearer);
		if (info && status == 200)
			cJSON_AddItemToObject(r, "userinfo", info);
		else
			cJSON_Delete(info);
	}
	cJSON_Delete(tok);
	cJSON_Delete(s);
	return r;
}

/* The settings a discovery read well: inserted or updated (a blank secret keeps the stored one). */
static int store_settings(PGconn *db, const cJSON *p, const cJSON *result, char *err, size_t errlen)
{
	char *map = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(p, "role_map"));
	char *jwks = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(result, "jwks"));
	const char *secret = json_str(p, "client_secret_enc"), *def = json_str(p, "default_role");
	const char *params[] = { json_str(p, "issuer"), json_str(p, "client_id"), *secret ? secret : NULL, json_str(p, "key_id"),
				 json_str(p, "role_claim"), map ? map : "{}", *def ? def : NULL,
				 cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "require_sso")) ? "t" : "f",
				 json_str(result, "authorization_endpoint"), json_str(result, "token_endpoint"),
				 json_str(result, "userinfo_endpoint"), json_str(result, "jwks_uri"), jwks ? jwks : "{}" };
	int rc = db_run(db, "INSERT INTO org_sso (issuer, client_id, client_secret_enc, key_id, role_claim, role_map, "
			"default_role, require_sso, authorization_endpoint, token_endpoint, userinfo_endpoint, jwks_uri, jwks) "
			"VALUES ($1, $2, coalesce($3::bytea, (SELECT client_secret_enc FROM org_sso)), $4, $5, $6::jsonb, $7, "
			"$8::boolean, $9, $10, $11, $12, $13::jsonb) "
			"ON CONFLICT (org_id) DO UPDATE SET issuer = EXCLUDED.issuer, client_id = EXCLUDED.client_id, "
			"client_secret_enc = EXCLUDED.client_secret_enc, key_id = EXCLUDED.key_id, role_claim = EXCLUDED.role_claim, "
			"role_map = EXCLUDED.role_map, default_role = EXCLUDED.default_role, require_sso = EXCLUDED.require_sso, "
			"authorization_endpoint = EXCLUDED.authorization_endpoint, token_endpoint = EXCLUDED.token_endpoint, "
			"userinfo_endpoint = EXCLUDED.userinfo_endpoint, jwks_uri = EXCLUDED.jwks_uri, jwks = EXCLUDED.jwks, "
			"jwks_fetched_at = now(), updated_at = now()", 13, params, err, errlen);
	free(map);
	free(jwks);
	if (rc < 0)
		return -1;
	cJSON *detail = cJSON_CreateObject();
	cJSON_AddStringToObject(detail, "client_id", json_str(p, "client_id"));
	cJSON_AddBoolToObject(detail, "require_sso", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "require_sso")));
	rc = audit_record(db, "sso.update", json_str(p, "issuer"), detail, err, errlen);
	cJSON_Delete(detail);
	return rc;
}

int runner_sso_apply(PGconn *db, const char *kind, const cJSON *params, cJSON *result, char *err, size_t errlen)
{
	if (!result || !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "ok")))
		return 0;
	if (strcmp(kind, "sso_discovery") == 0) {
		if (store_settings(db, params, result, err, errlen) < 0)
			return -1;
		cJSON_AddBoolToObject(result, "stored", 1);
		return 1;
	}
	const cJSON *jwks = cJSON_GetObjectItemCaseSensitive(result, "jwks");
	if (strcmp(kind, "sso_exchange") != 0 || !jwks)
		return 0;
	char *text = cJSON_PrintUnformatted(jwks);
	const char *p[] = { text };
	int rc = db_run(db, "UPDATE org_sso SET jwks = $1::jsonb, jwks_fetched_at = now()", 1, p, err, errlen);
	free(text);
	return rc < 0 ? -1 : 1;
}
