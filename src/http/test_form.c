#include "form.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>

static const char *const providers[] = { "s3", "gcs", "azure", NULL };

static const struct form_field fields[] = {
	{ .name = "title", .label = "Title", .kind = FORM_TEXT, .max_len = 10 },
	{ .name = "cluster", .label = "Cluster name", .kind = FORM_NAME, .required = 1 },
	{ .name = "email", .label = "Email", .kind = FORM_EMAIL },
	{ .name = "password", .label = "Password", .kind = FORM_PASSWORD },
	{ .name = "port", .label = "Port", .kind = FORM_INT, .min = 1, .max = 65535 },
	{ .name = "enabled", .label = "Enabled", .kind = FORM_BOOL },
	{ .name = "provider", .label = "Provider", .kind = FORM_CHOICE, .choices = providers },
	{ .name = "endpoint", .label = "Endpoint", .kind = FORM_URL },
	{ .name = "script", .label = "Script", .kind = FORM_TEXTAREA },
	{ .name = "token", .label = "Token", .kind = FORM_SECRET },
};
#define NFIELDS (sizeof fields / sizeof fields[0])

/* Validates one field's value (with a valid cluster name, the required field). Returns the
 * field's error or NULL; *value gets a copy of the normalised value. */
static char *check_one(const char *name, const char *value, size_t len, char **normalised)
{
	struct kv_list in = { 0 };
	struct form_values v;
	char *error;

	kv_add(&in, "cluster", "prod-1", 6);
	if (strcmp(name, "cluster") == 0)
		kv_list_free(&in);
	kv_add(&in, name, value, len);
	form_validate(fields, NFIELDS, &in, &v);
	const char *got = form_value(&v, fields, name);
	*normalised = got ? strdup(got) : NULL;
	size_t i = 0;
	while (strcmp(fields[i].name, name) != 0)
		i++;
	error = v.error[i] ? strdup(v.error[i]) : NULL;
	CHECK(v.error[NFIELDS] == NULL);
	form_values_free(&v);
	kv_list_free(&in);
	return error;
}

#define ACCEPTS(name, input, want) do { \
	char *val_ = NULL, *e_ = check_one(name, input, strlen(input), &val_); \
	CHECK_STREQ(e_ ? e_ : "(no error)", "(no error)"); \
	CHECK_STREQ(val_, want); \
	free(e_); \
	free(val_); \
} while (0)

#define REJECTS(name, input, want_error) do { \
	char *val_ = NULL, *e_ = check_one(name, input, strlen(input), &val_); \
	CHECK_STREQ(e_, want_error); \
	CHECK(val_ == NULL); \
	free(e_); \
	free(val_); \
} while (0)

static void test_text_is_trimmed_checked_and_bounded(void)
{
	ACCEPTS("title", "  hello \t", "hello");
	ACCEPTS("title", "caf\xc3\xa9 na\xc3\xafve", "café naïve");	/* 10 characters, 12 bytes */
	REJECTS("title", "eleven char", "Title: at most 10 characters");
	REJECTS("title", "a\x01" "b", "Title: must not contain control characters");
	REJECTS("title", "a\nb", "Title: must not contain control characters");
	REJECTS("title", "\xc3\x28", "Title: not valid UTF-8 text");
	char *val = NULL, *e = check_one("title", "a\0b", 3, &val);
	CHECK_STREQ(e, "Title: must not contain control characters");
	free(e);
	free(val);
}

static void test_name_is_a_dns_label(void)
{
	ACCEPTS("cluster", "prod-eu-1", "prod-eu-1");
	ACCEPTS("cluster", "a", "a");
	const char *msg = "Cluster name: use lowercase letters, digits and '-', starting and ending with a "
			  "letter or digit (at most 63)";
	REJECTS("cluster", "Prod", msg);
	REJECTS("cluster", "-prod", msg);
	REJECTS("cluster", "prod-", msg);
	REJECTS("cluster", "prod_1", msg);
	REJECTS("cluster", "prod.eu", msg);
	REJECTS("cluster", "a123456789012345678901234567890123456789012345678901234567890123", msg);
	ACCEPTS("cluster", "a12345678901234567890123456789012345678901234567890123456789012",
		"a12345678901234567890123456789012345678901234567890123456789012");
	REJECTS("cluster", "", "Cluster name: required");
	REJECTS("cluster", "   ", "Cluster name: required");
}

static void test_email(void)
{
	ACCEPTS("email", "ops+backup@example.co.uk", "ops+backup@example.co.uk");
	REJECTS("email", "ops@localhost", "Email: not an email address");
	REJECTS("email", "ops.example.com", "Email: not an email address");
	REJECTS("email", "a@b@example.com", "Email: not an email address");
	REJECTS("email", "a..b@example.com", "Email: not an email address");
	REJECTS("email", "a b@example.com", "Email: not an email address");
	REJECTS("email", "@example.com", "Email: not an email address");
	REJECTS("email", "a@-example.com", "Email: not an email address");
	REJECTS("email", "a@example..com", "Email: not an email address");
}

static void test_password_is_not_trimmed_and_is_bounded(void)
{
	ACCEPTS("password", " correct horse ", " correct horse ");
	REJECTS("password", "short", "Password: use at least 10 characters");
	char longpw[300];
	memset(longpw, 'p', 257);
	longpw[257] = '\0';
	REJECTS("password", longpw, "Password: use at most 256 characters");
	longpw[256] = '\0';
	ACCEPTS("password", longpw, longpw);
}

static void test_int_bounds(void)
{
	ACCEPTS("port", "443", "443");
	ACCEPTS("port", " 0080 ", "80");
	ACCEPTS("port", "+65535", "65535");
	REJECTS("port", "0", "Port: must be a whole number from 1 to 65535");
	REJECTS("port", "65536", "Port: must be a whole number from 1 to 65535");
	REJECTS("port", "8o", "Port: must be a whole number from 1 to 65535");
	REJECTS("port", "1.5", "Port: must be a whole number from 1 to 65535");
	REJECTS("port", "99999999999999999999999", "Port: must be a whole number from 1 to 65535");
	REJECTS("port", "- 1", "Port: must be a whole number from 1 to 65535");
}

static void test_bool(void)
{
	ACCEPTS("enabled", "on", "true");
	ACCEPTS("enabled", "1", "true");
	ACCEPTS("enabled", "true", "true");
	REJECTS("enabled", "yes please", "Enabled: must be checked or left unchecked");

	struct kv_list in = { 0 };
	struct form_values v;
	kv_add(&in, "cluster", "c", 1);
	CHECK_INTEQ(form_validate(fields, NFIELDS, &in, &v), 0);
	CHECK_STREQ(form_value(&v, fields, "enabled"), "false");
	CHECK(form_value(&v, fields, "title") == NULL);	/* absent optional text */
	form_values_free(&v);
	kv_list_free(&in);
}

static void test_choice(void)
{
	ACCEPTS("provider", "gcs", "gcs");
	REJECTS("provider", "GCS", "Provider: choose one of the offered options");
	REJECTS("provider", "ftp", "Provider: choose one of the offered options");
}

static void test_url(void)
{
	ACCEPTS("endpoint", "https://s3.eu-west-1.amazonaws.com", "https://s3.eu-west-1.amazonaws.com");
	ACCEPTS("endpoint", "http://minio.local:9000/bucket/path?x=1", "http://minio.local:9000/bucket/path?x=1");
	ACCEPTS("endpoint", "HTTPS://[fd00::1]:8443/", "HTTPS://[fd00::1]:8443/");
	ACCEPTS("endpoint", "http://10.0.0.5", "http://10.0.0.5");
	const char *msg = "Endpoint: must be an http:// or https:// URL";
	REJECTS("endpoint", "ftp://example.com", msg);
	REJECTS("endpoint", "https://user:pw@example.com/", msg);
	REJECTS("endpoint", "https://example.com/#frag", msg);
	REJECTS("endpoint", "https://example.com:0/", msg);
	REJECTS("endpoint", "https://example.com:65536", msg);
	REJECTS("endpoint", "https://example.com:80x", msg);
	REJECTS("endpoint", "https:///path", msg);
	REJECTS("endpoint", "https://exa mple.com", msg);
	REJECTS("endpoint", "https://example.com/a b", msg);
	REJECTS("endpoint", "javascript:alert(1)", msg);
	REJECTS("endpoint", "https://[zz::1]/", msg);
}

static void test_textarea_keeps_lines(void)
{
	ACCEPTS("script", "\r\nlocal x = 1\r\n\tif x then\r\n  return x\nend\r\n", "local x = 1\n\tif x then\n  return x\nend");
	REJECTS("script", "x\x1b[31m", "Script: must not contain control characters");
	ACCEPTS("token", "  tok-123  ", "tok-123");
}

static void test_unknown_duplicate_and_ignored_keys(void)
{
	struct kv_list in = { 0 };
	struct form_values v;

	kv_add(&in, "_csrf", "t", 1);
	kv_add(&in, "_submit", "Save", 4);
	kv_add(&in, "cluster", "c", 1);
	CHECK_INTEQ(form_validate(fields, NFIELDS, &in, &v), 0);
	CHECK(v.error[NFIELDS] == NULL);
	form_values_free(&v);

	kv_add(&in, "admin", "1", 1);
	CHECK_INTEQ(form_validate(fields, NFIELDS, &in, &v), 1);
	CHECK_STREQ(v.error[NFIELDS], "The form has an unexpected field \"admin\"");
	form_values_free(&v);
	kv_list_free(&in);

	kv_add(&in, "cluster", "a", 1);
	kv_add(&in, "cluster", "b", 1);
	CHECK_INTEQ(form_validate(fields, NFIELDS, &in, &v), 1);
	CHECK_STREQ(v.error[NFIELDS], "Cluster name: given more than once");
	CHECK_STREQ(form_value(&v, fields, "cluster"), "a");
	form_values_free(&v);
	kv_list_free(&in);

	CHECK_INTEQ(form_validate(fields, NFIELDS, NULL, &v), 1);
	CHECK_STREQ(v.error[1], "Cluster name: required");
	CHECK(form_value(&v, fields, "nope") == NULL);
	form_values_free(&v);
}

static void test_view_shows_input_and_errors_but_never_secrets(void)
{
	struct kv_list in = { 0 };
	struct form_values v;
	cJSON *view;
	char *json;

	kv_add(&in, "cluster", "Bad Name", 8);
	kv_add(&in, "password", "hunter2hunter2", 14);
	kv_add(&in, "token", "s3cr3t-token", 12);
	kv_add(&in, "provider", "gcs", 3);
	kv_add(&in, "enabled", "on", 2);
	kv_add(&in, "port", "70000", 5);
	kv_add(&in, "bogus", "x", 1);
	CHECK_INTEQ(form_validate(fields, NFIELDS, &in, &v), 3);
	view = form_view(&v, fields);
	json = cJSON_PrintUnformatted(view);
	CHECK(strstr(json, "hunter2") == NULL);
	CHECK(strstr(json, "s3cr3t") == NULL);
	CHECK_STREQ(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(view, "fields"), "cluster"), "value")->valuestring,
		    "Bad Name");
	CHECK(strstr(json, "\"port\":{\"value\":\"70000\",\"error\":\"Port: must be a whole number from 1 to 65535\"}") != NULL);
	CHECK(strstr(json, "\"enabled\":{\"checked\":true}") != NULL);
	CHECK(strstr(json, "\"choices\":[{\"value\":\"s3\",\"selected\":false},{\"value\":\"gcs\",\"selected\":true},"
			   "{\"value\":\"azure\",\"selected\":false}]") != NULL);
	CHECK(strstr(json, "\"form_error\":\"The form has an unexpected field \\\"bogus\\\"\"") != NULL);
	CHECK(strstr(json, "\"password\":{}") != NULL);
	free(json);
	cJSON_Delete(view);
	form_values_free(&v);
	kv_list_free(&in);
}

static void test_fail_by_name_keeps_the_first_error(void)
{
	struct kv_list in = { 0 };
	struct form_values v;

	kv_add(&in, "cluster", "prod", 4);
	kv_add(&in, "port", "0", 1);
	CHECK_INTEQ(form_validate(fields, NFIELDS, &in, &v), 1);
	CHECK(form_first_error(&v) != NULL && strcmp(form_first_error(&v), "Port: must be a whole number from 1 to 65535") == 0);
	form_fail(&v, fields, "port", "Port: %d is taken", 8080);	/* the kind's error stays */
	form_fail(&v, fields, "endpoint", "Endpoint: %s", "not reachable from the allowed networks");
	form_fail(&v, fields, NULL, "The cluster %s is gone", "prod");
	form_fail(&v, fields, "no-such-field", "lands on the form");
	CHECK_INTEQ(v.errors, 3);
	CHECK_STREQ(form_error(&v, fields, "port"), "Port: must be a whole number from 1 to 65535");
	CHECK_STREQ(form_error(&v, fields, "endpoint"), "Endpoint: not reachable from the allowed networks");
	CHECK_STREQ(form_error(&v, fields, NULL), "The cluster prod is gone");
	CHECK(form_error(&v, fields, "cluster") == NULL);
	form_values_free(&v);

	CHECK_INTEQ(form_validate(fields, 0, &in, &v), 1);	/* no fields: only the form's own error */
	CHECK_STREQ(form_first_error(&v), "The form has an unexpected field \"cluster\"");
	form_values_free(&v);
	kv_list_free(&in);
}

int main(void)
{
	RUN(test_text_is_trimmed_checked_and_bounded);
	RUN(test_name_is_a_dns_label);
	RUN(test_email);
	RUN(test_password_is_not_trimmed_and_is_bounded);
	RUN(test_int_bounds);
	RUN(test_bool);
	RUN(test_choice);
	RUN(test_url);
	RUN(test_textarea_keeps_lines);
	RUN(test_unknown_duplicate_and_ignored_keys);
	RUN(test_view_shows_input_and_errors_but_never_secrets);
	RUN(test_fail_by_name_keeps_the_first_error);
	return check_done();
}
