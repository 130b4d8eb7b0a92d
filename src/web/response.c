/* Writing responses: one page renderer that answers HTML or JSON from the same view model,
 * redirects, errors and cookies. */
#include "web.h"
#include "db.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLASH_COOKIE "stowage_flash"

static const char *status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 303: return "See Other";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	default: return status >= 500 ? "Internal Server Error" : "Error";
	}
}

void response_set_cookie(struct request *r, const char *name, const char *value, long max_age)
{
	int tls = request_tls(r);

	strbuf_addf(&r->headers, "Set-Cookie: %s%s=%s; Path=/; HttpOnly; SameSite=Lax; Max-Age=%ld%s\r\n",
		    tls ? "__Host-" : "", name, value, max_age, tls || r->ctx->cookie_secure ? "; Secure" : "");
}

void response_flash(struct request *r, const char *message)
{
	struct strbuf v = STRBUF_INIT;

	url_escape(&v, message, strlen(message));
	response_set_cookie(r, FLASH_COOKIE, v.buf, 60);
	strbuf_release(&v);
}

/* The flash message of the previous response, decoded, or NULL; it is shown once. */
static char *take_flash(struct request *r)
{
	const char *raw = request_cookie(r, FLASH_COOKIE);
	struct kv_list decoded = { 0 };
	char err[128];
	char *msg = NULL;

	if (!raw || !*raw)
		return NULL;
	response_set_cookie(r, FLASH_COOKIE, "", 0);
	if (http_parse_urlencoded(raw, strlen(raw), 1, &decoded, err, sizeof err) == 0 && decoded.count == 1)
		msg = xstrdup(decoded.items[0].key);
	kv_list_free(&decoded);
	return msg;
}

static void add_common_view(struct request *r, cJSON *view)
{
	const struct session *s = &r->session;
	char *flash = take_flash(r);

	if (flash) {
		cJSON_AddStringToObject(view, "flash", flash);
		free(flash);
	}
	cJSON_AddStringToObject(view, "csrf", csrf_token_for_view(r));
	if (!s->user_id)
		return;
	cJSON *me = cJSON_AddObjectToObject(view, "me");
	cJSON_AddStringToObject(me, "email", s->email);
	cJSON_AddStringToObject(me, "display_name", s->display_name);
	cJSON_AddStringToObject(me, "role", role_name(s->role));
	cJSON_AddBoolToObject(me, "can_write", s->role >= ROLE_OPERATOR);
	cJSON_AddBoolToObject(me, "is_admin", s->role == ROLE_ADMIN);
	cJSON *org = cJSON_AddObjectToObject(view, "org");
	cJSON_AddStringToObject(org, "name", s->org_name);
}

void respond_send(struct request *r)
{
	struct strbuf head = STRBUF_INIT;

	/* libfcgi's own printf knows no %zu: format here, write bytes there. */
	strbuf_addf(&head, "Status: %d %s\r\n", r->status, status_text(r->status));
	strbuf_add(&head, r->headers.buf ? r->headers.buf : "", r->headers.len);
	strbuf_addf(&head, "Cache-Control: no-store\r\nContent-Length: %zu\r\n\r\n", r->body.len);
	FCGX_PutStr(head.buf, (int)head.len, r->fcgi->out);
	strbuf_release(&head);
	if (r->body.len && strcmp(r->method ? r->method : "", "HEAD") != 0)
		FCGX_PutStr(r->body.buf, (int)r->body.len, r->fcgi->out);
}

static void respond_json(struct request *r, int status, const cJSON *value)
{
	char *json = cJSON_PrintUnformatted(value);

	r->status = status;
	strbuf_addstr(&r->headers, "Content-Type: application/json\r\n");
	strbuf_addstr(&r->body, json);
	strbuf_addch(&r->body, '\n');
	free(json);
	r->responded = 1;
}

void respond_page(struct request *r, int status, const char *page, cJSON *view)
{
	char err[512];
	int rc;

	if (r->responded) {
		cJSON_Delete(view);
		return;
	}
	add_common_view(r, view);
	if (r->wants_json) {
		respond_json(r, status, view);
		cJSON_Delete(view);
		return;
	}
	/* One allocation for a typical page (2 to 10 KiB) instead of a doubling from 64 bytes. */
	strbuf_grow(&r->body, 16 * 1024);
	rc = template_render_in_layout(r->ctx->templates, "layout", page, view, &r->body, err, sizeof err);
	cJSON_Delete(view);
	if (rc < 0) {
		log_error("rendering %s: %s", page, err);
		r->status = 500;
		strbuf_addstr(&r->headers, "Content-Type: text/plain; charset=utf-8\r\n");
		strbuf_addstr(&r->body, "Internal error while rendering the page.\n");
		r->responded = 1;
		return;
	}
	r->status = status;
	strbuf_addstr(&r->headers, "Content-Type: text/html; charset=utf-8\r\n");
	r->responded = 1;
}

void respond_form_errors(struct request *r, const char *page, cJSON *view)
{
	r->rollback = 1;
	respond_page(r, 422, page, view);
}

void respond_redirect(struct request *r, const char *location)
{
	if (r->responded)
		return;
	r->status = 303;
	strbuf_addf(&r->headers, "Location: %s\r\n", location);
	if (r->wants_json) {
		cJSON *v = cJSON_CreateObject();
		cJSON_AddStringToObject(v, "redirect", location);
		respond_json(r, 303, v);
		cJSON_Delete(v);
		return;
	}
	r->responded = 1;
}

void respond_error(struct request *r, int status, const char *message)
{
	cJSON *view = cJSON_CreateObject();
	cJSON *e = cJSON_AddObjectToObject(view, "error");

	r->rollback = 1;
	if (r->responded) {
		cJSON_Delete(view);
		return;
	}
	cJSON_AddNumberToObject(e, "status", status);
	cJSON_AddStringToObject(e, "message", message);
	cJSON_AddStringToObject(view, "title", status_text(status));
	respond_page(r, status, "error", view);
}

void respond_db_error(struct request *r, const char *err)
{
	const char *quota = db_quota_refusal(err);

	if (quota) {	/* an organisation's quota: the database's sentence names the bound */
		respond_error(r, 409, quota);
		return;
	}
	log_error("%s %s: %s", r->method, r->path, err);
	respond_error(r, 500, "The database refused the change; nothing was saved.");
}

void respond_file(struct request *r, const char *content_type, const char *filename, const void *data, size_t len)
{
	if (r->responded)
		return;
	r->status = 200;
	strbuf_addf(&r->headers, "Content-Type: %s\r\n", content_type);
	if (filename && *filename && strspn(filename, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == strlen(filename))
		strbuf_addf(&r->headers, "Content-Disposition: attachment; filename=\"%s\"\r\n", filename);
	strbuf_add(&r->body, data, len);
	r->responded = 1;
}

void respond_text(struct request *r, const char *filename, const char *text, size_t len)
{
	if (r->responded)
		return;
	r->status = 200;
	strbuf_addstr(&r->headers, "Content-Type: text/plain; charset=utf-8\r\n");
	if (filename && *filename && strspn(filename, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == strlen(filename))
		strbuf_addf(&r->headers, "Content-Disposition: attachment; filename=\"%s\"\r\n", filename);
	strbuf_add(&r->body, text, len);
	r->responded = 1;
}
