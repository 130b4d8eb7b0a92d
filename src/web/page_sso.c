/* Single sign-on with OpenID Connect (docs/sso.md): an admin's settings page, and the sign-in
 * through the organisation's provider: the authorization code flow with PKCE (S256), the state,
 * nonce and verifier bound to this browser by a cookie and used once. The web connects to no
 * provider: discovery, the keys and the code exchange are runner requests; the web verifies the
 * ID token the runner brings back (oidc_token) and makes the session. */
#include "web.h"
#include "audit.h"
#include "db.h"
#include "form.h"
#include "log.h"
#include "oidc_token.h"
#include "token.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SSO_COOKIE "stowage_sso"
#define SSO_COOKIE_SECONDS 600
#define ROLE_MAP_MAX 50

static const char *const role_choices[] = { "", "viewer", "operator", "admin", NULL };

static const struct form_field sso_fields[] = {
	{ .name = "issuer", .label = "Issuer URL", .kind = FORM_URL, .required = 1, .max_len = 2048 },
	{ .name = "client_id", .label = "Client ID", .kind = FORM_TEXT, .required = 1, .max_len = 255 },
	{ .name = "client_secret", .label = "Client secret", .kind = FORM_SECRET, .max_len = 1024 },
	{ .name = "role_claim", .label = "Role claim", .kind = FORM_TEXT, .required = 1, .max_len = 64 },
	{ .name = "role_map", .label = "Role mapping", .kind = FORM_TEXTAREA, .max_len = 8192 },
	{ .name = "default_role", .label = "Default role", .kind = FORM_CHOICE, .choices = role_choices },
	{ .name = "require_sso", .label = "Require single sign-on", .kind = FORM_BOOL },
};
#define SSO_N (sizeof sso_fields / sizeof sso_fields[0])

static const struct form_field start_fields[] = {
	{ .name = "org", .label = "Organisation", .kind = FORM_TEXT, .required = 1, .max_len = 100 },
};

static const char *col(PGresult *res, const char *name)
{
	return PQgetvalue(res, 0, PQfnumber(res, name));
}

static void redirect_uri(const struct request *r, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s/sso/callback", r->ctx->site_url);
}

/* "value=role" lines into {"value": "role"}; NULL with err naming the line. */
static cJSON *role_map_parse(const char *text, char *err, size_t errlen)
{
	cJSON *map = cJSON_CreateObject();
	char *copy = xstrdup(text ? text : ""), *save = NULL;
	int line = 0, n = 0;

	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		line++;
		char *eq = strrchr(l, '=');
		while (*l == ' ' || *l == '\t')
			l++;
		if (!*l)
			continue;
		if (!eq || eq == l) {
			snprintf(err, errlen, "Role mapping: line %d is not \"claim value=role\"", line);
			goto bad;
		}
		*eq = '\0';
		char *role = eq + 1, *end = eq;
		while (end > l && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		while (*role == ' ')
			role++;
		if (role_parse(role) == ROLE_NONE) {
			snprintf(err, errlen, "Role mapping: line %d names the role \"%.40s\"; use viewer, operator or admin",
				 line, role);
			goto bad;
		}
		if (++n > ROLE_MAP_MAX || strlen(l) > 200) {
			snprintf(err, errlen, "Role mapping: at most %d lines of at most 200 characters", ROLE_MAP_MAX);
			goto bad;
		}
		cJSON_DeleteItemFromObjectCaseSensitive(map, l);
		cJSON_AddStringToObject(map, l, role);
	}
	free(copy);
	return map;
bad:
	free(copy);
	cJSON_Delete(map);
	return NULL;
}

static int role_claim_ok(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || strchr("_.:-", *s)))
			return 0;
	return 1;
}

/* fields.default_role as form_view makes it: its value and the choices, one selected. */
static void default_role_field(cJSON *fields, const char *value)
{
	cJSON *f = cJSON_AddObjectToObject(fields, "default_role"), *list = cJSON_AddArrayToObject(f, "choices");

	cJSON_AddStringToObject(f, "value", value);
	for (size_t i = 0; role_choices[i]; i++) {
		cJSON *c = cJSON_CreateObject();
		cJSON_AddStringToObject(c, "value", role_choices[i]);
		cJSON_AddBoolToObject(c, "selected", strcmp(role_choices[i], value) == 0);
		cJSON_AddItemToArray(list, c);
	}
}

/* The settings page: the stored settings (never the secret), or the form sent back (view). */
static void sso_form_respond(struct request *r, int status, cJSON *view)
{
	char err[512], uri[600];
	PGresult *res = db_exec(r->db, "SELECT issuer, client_id, role_claim, role_map::text, coalesce(default_role, '') "
				"AS default_role, require_sso, to_char(jwks_fetched_at AT TIME ZONE 'UTC', "
				"'YYYY-MM-DD HH24:MI') AS keys_read, jsonb_array_length(jwks->'keys') AS keys FROM org_sso",
				0, NULL, err, sizeof err);
	if (!res) {
		cJSON_Delete(view);
		respond_db_error(r, err);
		return;
	}
	if (!view) {
		view = cJSON_CreateObject();
		cJSON *fields = cJSON_AddObjectToObject(view, "fields");
		if (PQntuples(res) == 1) {
			struct strbuf lines = STRBUF_INIT;
			cJSON *map = cJSON_Parse(col(res, "role_map")), *m;
			cJSON_ArrayForEach(m, map)
				strbuf_addf(&lines, "%s=%s\n", m->string, cJSON_GetStringValue(m) ? m->valuestring : "");
			cJSON_Delete(map);
			cJSON_AddStringToObject(cJSON_AddObjectToObject(fields, "issuer"), "value", col(res, "issuer"));
			cJSON_AddStringToObject(cJSON_AddObjectToObject(fields, "client_id"), "value", col(res, "client_id"));
			cJSON_AddStringToObject(cJSON_AddObjectToObject(fields, "role_claim"), "value", col(res, "role_claim"));
			cJSON_AddStringToObject(cJSON_AddObjectToObject(fields, "role_map"), "value", lines.buf ? lines.buf : "");
			default_role_field(fields, col(res, "default_role"));
			cJSON_AddBoolToObject(cJSON_AddObjectToObject(fields, "require_sso"), "checked",
					      strcmp(col(res, "require_sso"), "t") == 0);
			strbuf_release(&lines);
		} else {
			cJSON_AddStringToObject(cJSON_AddObjectToObject(fields, "role_claim"), "value", "groups");
			default_role_field(fields, "");
		}
	}
	if (PQntuples(res) == 1) {
		cJSON *st = cJSON_AddObjectToObject(view, "configured");
		cJSON_AddStringToObject(st, "keys_read", col(res, "keys_read"));
		cJSON_AddNumberToObject(st, "keys", atoi(col(res, "keys")));
		cJSON_AddBoolToObject(st, "require_sso", strcmp(col(res, "require_sso"), "t") == 0);
		cJSON_AddBoolToObject(view, "secret_stored", 1);
	}
	PQclear(res);
	redirect_uri(r, uri, sizeof uri);
	cJSON_AddStringToObject(view, "redirect_uri", uri);
	cJSON_AddStringToObject(view, "title", "Single sign-on");
	cJSON_AddBoolToObject(view, "nav_sso", 1);
	if (status == 200)
		respond_page(r, 200, "sso", view);
	else
		respond_form_errors(r, "sso", view);
}

void page_sso_settings(struct request *r)
{
	sso_form_respond(r, 200, NULL);
}

/* The form again with a check beyond the fields' kinds failed (msg names the field). */
static void sso_refused(struct request *r, struct form_values *v, const char *field, const char *msg)
{
	form_fail(v, sso_fields, field, "%s", msg);
	cJSON *view = form_view(v, sso_fields);
	cJSON_AddStringToObject(view, "form_error", msg);
	sso_form_respond(r, 422, view);
}

/* POST /settings/sso: validated here, then a runner reads discovery and the keys and stores it. */
void page_sso_save(struct request *r)
{
	struct form_values v;
	char err[512];
	PGresult *res;

	if (form_validate(sso_fields, SSO_N, &r->form, &v) > 0) {
		sso_form_respond(r, 422, form_view(&v, sso_fields));
		form_values_free(&v);
		return;
	}
	const char *issuer = form_value(&v, sso_fields, "issuer"), *secret = form_value(&v, sso_fields, "client_secret");
	const char *claim = form_value(&v, sso_fields, "role_claim");
	cJSON *map = role_map_parse(form_value(&v, sso_fields, "role_map"), err, sizeof err);
	if (!map) {
		sso_refused(r, &v, "role_map", err);
		form_values_free(&v);
		return;
	}
	if (!role_claim_ok(claim)) {
		cJSON_Delete(map);
		sso_refused(r, &v, "role_claim", "Role claim: letters, digits and _ . : - only");
		form_values_free(&v);
		return;
	}
	res = db_exec(r->db, "SELECT 1 FROM org_sso", 0, NULL, err, sizeof err);
	int stored = res && PQntuples(res) == 1;
	PQclear(res);
	if ((!secret || !*secret) && !stored) {
		cJSON_Delete(map);
		sso_refused(r, &v, "client_secret", "Client secret: required the first time");
		form_values_free(&v);
		return;
	}
	char *sealed = secret && *secret ? secret_seal(&r->ctx->keyring, r->session.org_id, "sso.client_secret", secret) : NULL;
	cJSON *p = cJSON_CreateObject();
	cJSON_AddStringToObject(p, "purpose", "sso_save");
	cJSON_AddStringToObject(p, "issuer", issuer);
	cJSON_AddStringToObject(p, "client_id", form_value(&v, sso_fields, "client_id"));
	cJSON_AddStringToObject(p, "client_secret_enc", sealed ? sealed : "");
	cJSON_AddStringToObject(p, "key_id", r->ctx->keyring.key_id);
	cJSON_AddStringToObject(p, "role_claim", claim);
	cJSON_AddItemToObject(p, "role_map", map);
	cJSON_AddStringToObject(p, "default_role", form_value(&v, sso_fields, "default_role") ?
				form_value(&v, sso_fields, "default_role") : "");
	cJSON_AddBoolToObject(p, "require_sso", strcmp(form_value(&v, sso_fields, "require_sso"), "true") == 0);
	free(sealed);
	form_values_free(&v);
	web_request_follow(r, "sso_discovery", p);
}

/* The runner's answer to a save: stored, or the form again with why (never the secret). */
void sso_request_answered(struct request *r, const struct runner_answer *a)
{
	const cJSON *p = a->params;
	const char *message = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a->result, "message"));
	char msg[800];

	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a->result, "stored"))) {
		response_flash(r, "Single sign-on saved: the provider's discovery document and keys were read.");
		respond_redirect(r, "/settings/sso");
		return;
	}
	cJSON *view = cJSON_CreateObject(), *fields = cJSON_AddObjectToObject(view, "fields"), *m;
	static const char *const names[] = { "issuer", "client_id", "role_claim" };
	const char *def = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "default_role"));
	default_role_field(fields, def ? def : "");
	for (int i = 0; i < 3; i++) {
		const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, names[i]));
		cJSON_AddStringToObject(cJSON_AddObjectToObject(fields, names[i]), "value", s ? s : "");
	}
	struct strbuf lines = STRBUF_INIT;
	cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(p, "role_map"))
		strbuf_addf(&lines, "%s=%s\n", m->string, cJSON_GetStringValue(m) ? m->valuestring : "");
	cJSON_AddStringToObject(cJSON_AddObjectToObject(fields, "role_map"), "value", lines.buf ? lines.buf : "");
	strbuf_release(&lines);
	cJSON_AddBoolToObject(cJSON_AddObjectToObject(fields, "require_sso"), "checked",
			      cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "require_sso")));
	snprintf(msg, sizeof msg, "Not saved: %s", message ? message : a->error[0] ? a->error : "the runner gave no answer");
	cJSON_AddStringToObject(view, "form_error", msg);
	sso_form_respond(r, 422, view);
}

/* POST /settings/sso/delete */
void page_sso_delete(struct request *r)
{
	char err[512];

	if (db_run(r->db, "DELETE FROM org_sso", 0, NULL, err, sizeof err) < 0 ||
	    audit_record(r->db, "sso.delete", "", NULL, err, sizeof err) < 0) {
		respond_db_error(r, err);
		return;
	}
	response_flash(r, "Single sign-on removed: members sign in with their passwords.");
	respond_redirect(r, "/settings/sso");
}

/* ---- signing in ---- */

static void sha256_param(const char *text, char out[67])
{
	web_token_hash_param(text, out);
}

/* POST /signin/sso {org}: a login in flight, then to the provider's authorization endpoint. */
void page_sso_start(struct request *r)
{
	struct form_values v;
	char state[TOKEN_TEXT_LEN + 1], nonce[TOKEN_TEXT_LEN + 1], verifier[TOKEN_TEXT_LEN + 1], browser[TOKEN_TEXT_LEN + 1];
	char state_hash[67], browser_hash[67], challenge[48], err[512], uri[600];
	uint8_t digest[32];

	if (form_validate(start_fields, 1, &r->form, &v) > 0) {
		respond_error(r, 422, form_first_error(&v));
		form_values_free(&v);
		return;
	}
	/* Counted per client as a sign-in attempt, never per organisation: a count per organisation
	 * would let anyone who knows its name spend its members' sign-ins. */
	if (web_rate_limit(r, "signin", "sign-in attempts", NULL) <= 0) {
		form_values_free(&v);
		return;
	}
	if (token_new(state) < 0 || token_new(nonce) < 0 || token_new(verifier) < 0 || token_new(browser) < 0) {
		form_values_free(&v);
		respond_error(r, 503, "No random bytes for a sign-in; try again.");
		return;
	}
	sha256_param(state, state_hash);
	sha256_param(browser, browser_hash);
	const char *next = web_safe_next(kv_get(&r->form, "_next"));
	const char *p[] = { form_value(&v, start_fields, "org"), browser_hash, state_hash, nonce, verifier, next };
	PGresult *res = db_exec(r->db, "SELECT authorization_endpoint, client_id FROM sso_begin($1, $2, $3, $4, $5, $6)",
				6, p, err, sizeof err);
	form_values_free(&v);
	if (!res) {
		respond_db_error(r, err);
		return;
	}
	if (PQntuples(res) != 1) {
		PQclear(res);
		respond_error(r, 404, "Organisation: no organisation of that name signs in with single sign-on.");
		return;
	}
	SHA256((const uint8_t *)verifier, strlen(verifier), digest);
	base64url_encode(digest, sizeof digest, challenge);
	redirect_uri(r, uri, sizeof uri);
	struct strbuf loc = STRBUF_INIT;
	const char *endpoint = col(res, "authorization_endpoint"), *client_id = col(res, "client_id");
	strbuf_addstr(&loc, endpoint);
	strbuf_addstr(&loc, strchr(endpoint, '?') ? "&" : "?");
	strbuf_addstr(&loc, "response_type=code&scope=openid%20email%20profile&client_id=");
	url_escape(&loc, client_id, strlen(client_id));
	strbuf_addstr(&loc, "&redirect_uri=");
	url_escape(&loc, uri, strlen(uri));
	strbuf_addf(&loc, "&state=%s&nonce=%s&code_challenge=%s&code_challenge_method=S256", state, nonce, challenge);
	PQclear(res);
	response_set_cookie(r, SSO_COOKIE, browser, SSO_COOKIE_SECONDS);
	/* a page that moves on, not a redirect: the console's CSP (form-action 'self') forbids a
	 * form's answer to redirect to another site */
	cJSON *view = cJSON_CreateObject();
	struct strbuf refresh = STRBUF_INIT;
	strbuf_addf(&refresh, "0;url=%s", loc.buf);
	cJSON_AddStringToObject(view, "title", "Continuing to your provider");
	cJSON_AddStringToObject(view, "refresh", refresh.buf);
	cJSON_AddStringToObject(view, "authorization_url", loc.buf);
	respond_page(r, 200, "sso_continue", view);
	strbuf_release(&refresh);
	strbuf_release(&loc);
}

static const char *browser_cookie(struct request *r, char hash[67])
{
	const char *c = request_cookie(r, SSO_COOKIE);

	if (!c || strlen(c) != TOKEN_TEXT_LEN)
		return NULL;
	sha256_param(c, hash);
	return hash;
}

/* GET /sso/callback?code&state: once per state, from the browser that started it. */
void page_sso_callback(struct request *r)
{
	const char *code = kv_get(&r->query, "code"), *state = kv_get(&r->query, "state");
	const char *error = kv_get(&r->query, "error");
	char browser_hash[67], state_hash[67], err[512], uri[600], loc[64], msg[400];

	if (error) {
		const char *desc = kv_get(&r->query, "error_description");
		snprintf(msg, sizeof msg, "The provider did not sign you in: %.100s%s%.200s", error, desc ? ": " : "",
			 desc ? desc : "");
		respond_error(r, 403, msg);
		return;
	}
	if (!code || !state || !*code || strlen(code) > 2048 || strlen(state) != TOKEN_TEXT_LEN) {
		respond_error(r, 400, "This sign-in link lacks its code or state; start again from the sign-in page.");
		return;
	}
	if (!browser_cookie(r, browser_hash)) {
		respond_error(r, 400, "This sign-in was not started in this browser (its cookie is missing); start again.");
		return;
	}
	sha256_param(state, state_hash);
	redirect_uri(r, uri, sizeof uri);
	const char *p[] = { browser_hash, state_hash, code, uri };
	PGresult *res = db_exec(r->db, "SELECT sso_callback($1, $2, $3, $4)", 4, p, err, sizeof err);
	if (!res) {
		respond_db_error(r, err);
		return;
	}
	if (PQgetisnull(res, 0, 0)) {
		PQclear(res);
		respond_error(r, 400, "This sign-in was used already, has expired, or was started in another browser; "
			      "start again from the sign-in page.");
		return;
	}
	snprintf(loc, sizeof loc, "/sso/finish/%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	respond_redirect(r, loc);
}

/* The role the claim maps to: the highest of its values' (a string or an array of strings),
 * else the default role, else ROLE_NONE. */
static enum role role_from_claims(const cJSON *claims, const char *claim, const cJSON *map, const char *def)
{
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(claims, claim), *one;
	const cJSON *list = cJSON_IsArray(c) ? c : NULL;
	enum role best = ROLE_NONE;

	if (cJSON_IsString(c)) {
		best = role_parse(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(map, c->valuestring)));
	} else {
		cJSON_ArrayForEach(one, list) {
			enum role r = cJSON_IsString(one) ?
				role_parse(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(map, one->valuestring))) : ROLE_NONE;
			if (r > best)
				best = r;
		}
	}
	return best != ROLE_NONE ? best : role_parse(def);
}

/* The ID token's claims, with the userinfo's for names the token lacks when the userinfo is about
 * the same subject (OpenID Connect Core 5.3.2). */
static void merge_userinfo(cJSON *claims, const cJSON *userinfo)
{
	const cJSON *sub = cJSON_GetObjectItemCaseSensitive(userinfo, "sub"), *c;

	if (!cJSON_IsString(sub) ||
	    strcmp(sub->valuestring, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(claims, "sub"))) != 0)
		return;
	cJSON_ArrayForEach(c, userinfo)
		if (c->string && !cJSON_GetObjectItemCaseSensitive(claims, c->string))
			cJSON_AddItemToObject(claims, c->string, cJSON_Duplicate(c, 1));
}

static const char *claim_str(const cJSON *claims, const char *name)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(claims, name));
	return s && strlen(s) <= 254 ? s : NULL;
}

/* GET /sso/finish/:id: "signing in…" until the runner has the token, then the session. */
void page_sso_finish(struct request *r)
{
	char browser_hash[67], login[24], err[600], why[800];
	const char *p[] = { browser_hash, login };
	PGresult *res;

	snprintf(login, sizeof login, "%lld", request_param_id(r, "id"));
	if (!browser_cookie(r, browser_hash)) {
		respond_error(r, 400, "This sign-in was not started in this browser (its cookie is missing); start again.");
		return;
	}
	res = db_exec(r->db, "SELECT org_id, nonce, next, answered, result::text, error, finished, issuer, client_id, "
		      "jwks::text, role_claim, role_map::text, coalesce(default_role, '') AS default_role "
		      "FROM sso_login_state($1, $2)", 2, p, err, sizeof err);
	if (!res) {
		respond_db_error(r, err);
		return;
	}
	if (PQntuples(res) != 1 || strcmp(col(res, "finished"), "t") == 0) {
		PQclear(res);
		respond_error(r, 400, "This sign-in was used already or has expired; start again from the sign-in page.");
		return;
	}
	if (strcmp(col(res, "answered"), "t") != 0) {
		PQclear(res);
		cJSON *view = cJSON_CreateObject();
		cJSON_AddStringToObject(view, "title", "Signing in…");
		cJSON_AddStringToObject(view, "refresh", "1");
		cJSON_AddBoolToObject(view, "pending", 1);
		respond_page(r, 200, "sso_pending", view);
		return;
	}
	cJSON *result = cJSON_Parse(col(res, "result"));
	const char *message = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(result, "message"));
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "ok"))) {
		snprintf(why, sizeof why, "Single sign-on failed: %s", message ? message : *col(res, "error") ?
			 col(res, "error") : "the runner gave no answer");
		cJSON_Delete(result);
		PQclear(res);
		respond_error(r, 502, why);
		return;
	}
	cJSON *jwks = cJSON_GetObjectItemCaseSensitive(result, "jwks") ?
		cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(result, "jwks"), 1) : cJSON_Parse(col(res, "jwks"));
	const struct oidc_expect expect = { col(res, "issuer"), col(res, "client_id"), col(res, "nonce"), time(NULL) };
	cJSON *claims = oidc_id_token_verify(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(result, "id_token")),
					     jwks, &expect, err, sizeof err);
	cJSON_Delete(jwks);
	if (!claims) {
		log_info("sso: organisation %s refused an ID token: %s", col(res, "org_id"), err);
		snprintf(why, sizeof why, "Single sign-on refused: %s.", err);
		cJSON_Delete(result);
		PQclear(res);
		respond_error(r, 403, why);
		return;
	}
	merge_userinfo(claims, cJSON_GetObjectItemCaseSensitive(result, "userinfo"));
	cJSON_Delete(result);
	cJSON *map = cJSON_Parse(col(res, "role_map"));
	enum role role = role_from_claims(claims, col(res, "role_claim"), map, col(res, "default_role"));
	cJSON_Delete(map);
	long long org_id = strtoll(col(res, "org_id"), NULL, 10);
	char next[2100];
	snprintf(next, sizeof next, "%s", web_safe_next(col(res, "next")));
	if (role == ROLE_NONE) {
		snprintf(why, sizeof why, "Single sign-on refused: your provider's claim %s maps to no role here; "
			 "ask an admin of the organisation.", col(res, "role_claim"));
		PQclear(res);
		cJSON_Delete(claims);
		respond_error(r, 403, why);
		return;
	}
	PQclear(res);
	const char *email = claim_str(claims, "email");
	const cJSON *verified = cJSON_GetObjectItemCaseSensitive(claims, "email_verified");
	/* An address the provider does not vouch for names nobody: email_verified false, "false" or
	 * anything but true. A provider that sends no email_verified at all vouches by sending it. */
	if (email && verified && !cJSON_IsTrue(verified) &&
	    !(cJSON_IsString(verified) && strcmp(verified->valuestring, "true") == 0))
		email = NULL;
	const char *name = claim_str(claims, "name");
	const char *sp[] = { login, browser_hash, claim_str(claims, "sub"), email, name ? name : "", role_name(role) };
	res = db_exec(r->db, "SELECT user_id, refused FROM sso_signin($1, $2, $3, $4, $5, $6)", 6, sp, err, sizeof err);
	cJSON_Delete(claims);
	if (!res) {
		respond_db_error(r, err);
		return;
	}
	if (!PQgetisnull(res, 0, 1)) {
		snprintf(why, sizeof why, "Single sign-on refused: %s", PQgetvalue(res, 0, 1));
		PQclear(res);
		r->rollback = 0;	/* the login is spent all the same */
		respond_error(r, 403, why);
		return;
	}
	long long user_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	if (session_create(r, user_id, org_id, err, sizeof err) < 0) {
		respond_db_error(r, err);
		return;
	}
	response_set_cookie(r, SSO_COOKIE, "", 0);
	respond_redirect(r, next);
}
