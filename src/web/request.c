/* Turning a FastCGI request into a struct request: headers, path, query, cookies and body, each
 * bounded and validated before any handler sees them. */
#include "web.h"
#include "json_shape.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_QUERY_FIELDS 64
#define MAX_FORM_FIELDS 256

const char *request_header(const struct request *r, const char *cgi_name)
{
	return FCGX_GetParam(cgi_name, r->fcgi->envp);
}

/* 1 when the client reached nginx over TLS (nginx's fastcgi_params pass HTTPS=on). */
int request_tls(const struct request *r)
{
	const char *https = request_header(r, "HTTPS");

	return https && (strcmp(https, "on") == 0 || strcmp(https, "ON") == 0);
}

/* Over TLS our cookies carry the __Host- prefix (Secure, Path=/, no Domain: a sibling subdomain
 * cannot set or shadow them), and only the prefixed name is read. */
const char *request_cookie(const struct request *r, const char *name)
{
	char full[128];

	if (!request_tls(r))
		return kv_get(&r->cookies, name);
	snprintf(full, sizeof full, "__Host-%s", name);
	return kv_get(&r->cookies, full);
}

static int read_body(struct request *r, struct strbuf *body, char *err, size_t errlen)
{
	const char *cl = request_header(r, "CONTENT_LENGTH");
	char *end;
	unsigned long long len;
	char chunk[8192];

	if (!cl || !*cl)
		return 0;
	errno = 0;
	len = strtoull(cl, &end, 10);
	if (errno || *end || end == cl) {
		snprintf(err, errlen, "Content-Length is not a number");
		return -400;
	}
	if (len > r->ctx->max_body) {
		snprintf(err, errlen, "request body of %llu bytes is over the limit of %zu bytes", len, r->ctx->max_body);
		return -413;
	}
	while (body->len < len) {
		size_t want = len - body->len < sizeof chunk ? len - body->len : sizeof chunk;
		int n = FCGX_GetStr(chunk, (int)want, r->fcgi->in);
		if (n <= 0) {
			snprintf(err, errlen, "request body ended after %zu of %llu bytes", body->len, len);
			return -400;
		}
		strbuf_add(body, chunk, (size_t)n);
	}
	return 0;
}

/* A JSON API body is a flat object; its members become form fields so that one validator
 * serves HTML forms and API clients alike. */
static int json_body_to_form(struct request *r, const struct strbuf *body, char *err, size_t errlen)
{
	/* counted before cJSON makes a node of 72 bytes for each value (a 2 MiB body of "0," is a
	 * million): a form's fields, a list's items each counted as a field, with room for brackets */
	struct json_shape shape = { 0 };

	json_shape_feed(&shape, body->buf, body->len);
	if (shape.values > 4 * MAX_FORM_FIELDS) {
		snprintf(err, errlen, "more than %d fields", MAX_FORM_FIELDS);
		return -1;
	}

	cJSON *root = cJSON_ParseWithLength(body->buf ? body->buf : "", body->len), *item;
	int rc = 0;

	if (!root || !cJSON_IsObject(root)) {
		snprintf(err, errlen, "request body is not a JSON object");
		cJSON_Delete(root);
		return -1;
	}
	cJSON_ArrayForEach(item, root) {
		char num[64];
		const char *value = NULL;

		if (r->form.count >= MAX_FORM_FIELDS) {
			snprintf(err, errlen, "more than %d fields", MAX_FORM_FIELDS);
			rc = -1;
			break;
		}
		if (cJSON_IsString(item)) {
			value = item->valuestring;
		} else if (cJSON_IsBool(item)) {
			value = cJSON_IsTrue(item) ? "true" : "";
		} else if (cJSON_IsNumber(item)) {
			snprintf(num, sizeof num, "%.17g", item->valuedouble);
			value = num;
		} else if (cJSON_IsArray(item)) {
			const cJSON *el;
			cJSON_ArrayForEach(el, item) {
				if (r->form.count >= MAX_FORM_FIELDS) {
					snprintf(err, errlen, "more than %d fields", MAX_FORM_FIELDS);
					rc = -1;
					break;
				}
				if (!cJSON_IsString(el)) {
					snprintf(err, errlen, "field %s: list items must be strings", item->string);
					rc = -1;
					break;
				}
				kv_add(&r->form, item->string, el->valuestring, strlen(el->valuestring));
			}
			if (rc)
				break;
			continue;
		} else if (cJSON_IsNull(item)) {
			continue;
		} else {
			snprintf(err, errlen, "field %s: must be a string, number, boolean or list of strings", item->string);
			rc = -1;
			break;
		}
		kv_add(&r->form, item->string, value, strlen(value));
	}
	cJSON_Delete(root);
	return rc;
}

static int parse_body(struct request *r, char *err, size_t errlen)
{
	const char *ctype = request_header(r, "CONTENT_TYPE");
	struct strbuf body = STRBUF_INIT;
	int rc = read_body(r, &body, err, errlen);

	if (rc < 0)
		goto out;
	if (body.len == 0)
		goto out;
	if (ctype && http_media_type_is(ctype, "application/x-www-form-urlencoded"))
		rc = http_parse_urlencoded(body.buf, body.len, MAX_FORM_FIELDS, &r->form, err, errlen);
	else if (ctype && http_media_type_is(ctype, "multipart/form-data"))
		rc = http_parse_multipart(body.buf, body.len, ctype, MAX_FORM_FIELDS, &r->form, err, errlen);
	else if (ctype && http_media_type_is(ctype, "application/json"))
		rc = json_body_to_form(r, &body, err, errlen);
	else {
		snprintf(err, errlen, "unsupported Content-Type %s", ctype ? ctype : "(none)");
		rc = -415;
		goto out;
	}
	if (rc < 0 && rc != -413)
		rc = -400;
out:
	strbuf_release(&body);
	return rc;
}

/* 0, or the negated HTTP status to answer with err. */
int request_read(struct request *r, FCGX_Request *fcgi, const struct web_context *ctx, char *err, size_t errlen)
{
	const char *qs, *cookie, *accept;

	memset(r, 0, sizeof *r);
	r->fcgi = fcgi;
	r->ctx = ctx;
	r->status = 200;
	r->route_index = -1;
	r->method = request_header(r, "REQUEST_METHOD");
	r->path = request_header(r, "DOCUMENT_URI");
	r->remote_addr = request_header(r, "REMOTE_ADDR");
	if (!r->method || !r->path) {
		snprintf(err, errlen, "the web server did not pass REQUEST_METHOD and DOCUMENT_URI");
		return -500;
	}
	accept = request_header(r, "HTTP_ACCEPT");
	r->wants_json = accept && http_accepts_json(accept);
	if (http_path_check(r->path, err, errlen) < 0)
		return -400;
	qs = request_header(r, "QUERY_STRING");
	if (qs && *qs && http_parse_urlencoded(qs, strlen(qs), MAX_QUERY_FIELDS, &r->query, err, errlen) < 0)
		return -400;
	cookie = request_header(r, "HTTP_COOKIE");
	if (cookie && http_parse_cookies(cookie, &r->cookies, err, errlen) < 0)
		return -400;
	if (strcmp(r->method, "POST") == 0)
		return parse_body(r, err, errlen);
	return 0;
}

void request_free(struct request *r)
{
	kv_list_free(&r->query);
	kv_list_free(&r->form);
	kv_list_free(&r->cookies);
	kv_list_free(&r->params);
	strbuf_release(&r->headers);
	strbuf_release(&r->body);
}

/* A positive id from the route, or 0 when it is not one (the caller answers 404). */
long long request_param_id(const struct request *r, const char *name)
{
	const char *v = kv_get(&r->params, name);
	char *end;
	long long id;

	if (!v || !*v || strspn(v, "0123456789") != strlen(v) || strlen(v) > 18)
		return 0;
	id = strtoll(v, &end, 10);
	return id > 0 ? id : 0;
}
