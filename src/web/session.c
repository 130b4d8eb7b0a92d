/* Sessions (an HttpOnly cookie holding a random token; the database keeps its SHA-256) and CSRF
 * tokens (per session; before sign-in, a double-submit cookie). */
#include "web.h"
#include "db.h"
#include "log.h"
#include "token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SESSION_COOKIE "stowage_session"
#define PRESESSION_CSRF_COOKIE "stowage_csrf"
#define SESSION_SECONDS (12 * 3600)

const char *role_name(enum role role)
{
	switch (role) {
	case ROLE_ADMIN: return "admin";
	case ROLE_OPERATOR: return "operator";
	case ROLE_VIEWER: return "viewer";
	default: return "none";
	}
}

enum role role_parse(const char *name)
{
	if (!name)
		return ROLE_NONE;
	if (strcmp(name, "admin") == 0)
		return ROLE_ADMIN;
	if (strcmp(name, "operator") == 0)
		return ROLE_OPERATOR;
	if (strcmp(name, "viewer") == 0)
		return ROLE_VIEWER;
	return ROLE_NONE;
}

/* bytea parameters travel in hex text form: "\x" and 64 digits. */
void web_token_hash_param(const char *token, char out[67])
{
	uint8_t hash[32];

	token_hash(token, hash);
	out[0] = '\\';
	out[1] = 'x';
	hex_encode(hash, sizeof hash, out + 2);
}

static void copy_field(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

/* Opens the request's transaction bound to its session's tenant, or to none without a valid
 * session, in one round trip (session_begin, sql/009_session_begin.sql; without a well-formed
 * cookie, the binding to no tenant alone, which costs PostgreSQL less); a read-only route's
 * query rides along. */
int session_begin(struct request *r, const struct route *rt)
{
	int read_only = (rt->flags & ROUTE_READ_ONLY) != 0;
	const char *token = request_cookie(r, SESSION_COOKIE);
	char hash[67], err[512];
	const char *params[] = { hash };
	static const char *const no_tenant[] = { "", "" };
	int looked_up = token && strlen(token) == TOKEN_TEXT_LEN;
	PGresult *res;

	memset(&r->session, 0, sizeof r->session);
	if (looked_up) {
		web_token_hash_param(token, hash);
		res = db_begin_exec(r->db, read_only, "SELECT user_id, org_id, role, csrf_token, email, display_name, "
				    "org_name FROM session_begin($1)", 1, params, route_query(rt), err, sizeof err);
	} else {
		res = db_begin_exec(r->db, read_only, DB_TENANT_BIND_SQL, 2, no_tenant, route_query(rt), err, sizeof err);
	}
	if (!res) {
		log_error("session lookup: %s", err);
		return -1;
	}
	r->read_only = read_only;
	if (looked_up && PQntuples(res) == 1) {
		struct session *s = &r->session;
		s->user_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		s->org_id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		s->role = role_parse(PQgetvalue(res, 0, 2));
		copy_field(s->csrf, sizeof s->csrf, PQgetvalue(res, 0, 3));
		copy_field(s->email, sizeof s->email, PQgetvalue(res, 0, 4));
		copy_field(s->display_name, sizeof s->display_name, PQgetvalue(res, 0, 5));
		copy_field(s->org_name, sizeof s->org_name, PQgetvalue(res, 0, 6));
	}
	PQclear(res);
	return 0;
}

const char *request_authorization(const struct request *r)
{
	return request_header(r, "HTTP_AUTHORIZATION");
}

int request_has_session_cookie(const struct request *r)
{
	return kv_get(&r->cookies, SESSION_COOKIE) || kv_get(&r->cookies, "__Host-" SESSION_COOKIE);
}

/* "Bearer stw_<43 characters>": the token, or NULL. The scheme is case-insensitive (RFC 9110). */
static const char *bearer_token(const char *authorization)
{
	const char *t;

	if (strncasecmp(authorization, "Bearer ", 7) != 0)
		return NULL;
	t = authorization + 7;
	while (*t == ' ')
		t++;
	if (strlen(t) != API_TOKEN_TEXT_LEN || strncmp(t, API_TOKEN_PREFIX, strlen(API_TOKEN_PREFIX)) != 0)
		return NULL;
	return t;
}

int session_load_bearer(struct request *r, const char *authorization)
{
	const char *token = bearer_token(authorization);
	char hash[67], err[512];
	const char *params[] = { hash, r->method, r->path };
	PGresult *res;
	int found;

	memset(&r->session, 0, sizeof r->session);
	if (!token)
		return 0;
	web_token_hash_param(token, hash);
	res = db_exec(r->db, "SELECT user_id, org_id, role, token_id, email, display_name, org_name "
		      "FROM api_token_use($1, $2, $3)", 3, params, err, sizeof err);
	if (!res) {
		log_error("token lookup: %s", err);
		return -1;
	}
	found = PQntuples(res) == 1;
	if (found) {
		struct session *s = &r->session;
		s->user_id = strtoll(PQgetvalue(res, 0, PQfnumber(res, "user_id")), NULL, 10);
		s->org_id = strtoll(PQgetvalue(res, 0, PQfnumber(res, "org_id")), NULL, 10);
		s->role = role_parse(PQgetvalue(res, 0, PQfnumber(res, "role")));
		s->token_id = strtoll(PQgetvalue(res, 0, PQfnumber(res, "token_id")), NULL, 10);
		copy_field(s->email, sizeof s->email, PQgetvalue(res, 0, PQfnumber(res, "email")));
		copy_field(s->display_name, sizeof s->display_name, PQgetvalue(res, 0, PQfnumber(res, "display_name")));
		copy_field(s->org_name, sizeof s->org_name, PQgetvalue(res, 0, PQfnumber(res, "org_name")));
	}
	PQclear(res);
	return found;
}

/* Inside the request's transaction: binds it to the new session's tenant and stores the session. */
int session_create(struct request *r, long long user_id, long long org_id, char *err, size_t errlen)
{
	char token[TOKEN_TEXT_LEN + 1], csrf[TOKEN_TEXT_LEN + 1], hash[67], org[24], user[24];
	const char *bind[] = { org, user };
	const char *params[] = { hash, csrf };

	if (token_new(token) < 0 || token_new(csrf) < 0) {
		snprintf(err, errlen, "no random bytes for a session token");
		return -1;
	}
	snprintf(org, sizeof org, "%lld", org_id);
	snprintf(user, sizeof user, "%lld", user_id);
	web_token_hash_param(token, hash);
	if (db_run(r->db, DB_TENANT_BIND_SQL, 2, bind, err, errlen) < 0)
		return -1;
	if (db_run(r->db, "INSERT INTO sessions (token_hash, csrf_token, org_id, user_id, expires_at) "
		   "VALUES ($1, $2, current_org(), current_app_user(), now() + interval '12 hours')",
		   2, params, err, errlen) < 0)
		return -1;
	response_set_cookie(r, SESSION_COOKIE, token, SESSION_SECONDS);
	return 0;
}

void session_destroy(struct request *r)
{
	const char *token = request_cookie(r, SESSION_COOKIE);
	char hash[67], err[512];
	const char *params[] = { hash };

	if (token && strlen(token) == TOKEN_TEXT_LEN) {
		web_token_hash_param(token, hash);
		if (db_run(r->db, "DELETE FROM sessions WHERE token_hash = $1", 1, params, err, sizeof err) < 0)
			log_error("sign-out: %s", err);
	}
	response_set_cookie(r, SESSION_COOKIE, "", 0);
	memset(&r->session, 0, sizeof r->session);
}

/* 1 when the POST carries the token of its session (or, signed out, of its CSRF cookie). */
int csrf_check(const struct request *r)
{
	const char *sent = kv_get(&r->form, "_csrf");
	const char *want;

	if (!sent)
		sent = request_header(r, "HTTP_X_CSRF_TOKEN");
	if (!sent)
		return 0;
	want = r->session.user_id ? r->session.csrf : request_cookie(r, PRESESSION_CSRF_COOKIE);
	return want && token_equal(sent, want);
}

const char *csrf_token_for_view(struct request *r)
{
	const char *cookie;

	if (r->session.token_id)
		return "";
	if (r->session.user_id)
		return r->session.csrf;
	cookie = request_cookie(r, PRESESSION_CSRF_COOKIE);
	if (cookie && strlen(cookie) == TOKEN_TEXT_LEN)
		return cookie;
	/* Kept in the cookie list so that the value handed to the view lives as long as the request. */
	char fresh[TOKEN_TEXT_LEN + 1];
	if (token_new(fresh) < 0)
		return "";
	response_set_cookie(r, PRESESSION_CSRF_COOKIE, fresh, SESSION_SECONDS);
	kv_add(&r->cookies, request_tls(r) ? "__Host-" PRESESSION_CSRF_COOKIE : PRESESSION_CSRF_COOKIE,
	       fresh, strlen(fresh));
	return r->cookies.items[r->cookies.count - 1].value;
}
