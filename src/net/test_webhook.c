#include "webhook.h"
#include "net_allow.h"
#include "check.h"

#include <string.h>

/* The value a receiver computes with any HMAC-SHA256 (here Python's hmac module):
 * hmac.new(b"whsec_test", b"1700000000." + body, sha256).hexdigest() */
static void test_signature_is_hmac_sha256_of_timestamp_dot_body(void)
{
	const char *body = "{\"event\":\"job.failed\"}";
	char sig[WEBHOOK_SIGNATURE_LEN + 1];

	webhook_sign("whsec_test", "1700000000", body, strlen(body), sig);
	CHECK_STREQ(sig, "sha256=79a35dfcf292bb0d4bd03583ef5c79d0f63ce61e48101535cf6701e18b377553");
}

/* A replayed body under a new timestamp, another secret, a changed body, or the boundary between
 * timestamp and body moved: every one signs differently. */
static void test_signature_binds_secret_timestamp_and_body(void)
{
	char a[WEBHOOK_SIGNATURE_LEN + 1], b[WEBHOOK_SIGNATURE_LEN + 1];

	webhook_sign("s", "1700000000", "{}", 2, a);
	webhook_sign("s", "1700000001", "{}", 2, b);
	CHECK(strcmp(a, b) != 0);
	webhook_sign("t", "1700000000", "{}", 2, b);
	CHECK(strcmp(a, b) != 0);
	webhook_sign("s", "1700000000", "{ }", 3, b);
	CHECK(strcmp(a, b) != 0);
	webhook_sign("s", "17", "00.x", 4, a);
	webhook_sign("s", "1700", ".x", 2, b);
	CHECK(strcmp(a, b) != 0);
	CHECK_INTEQ((int)strlen(a), WEBHOOK_SIGNATURE_LEN);
}

/* The metadata address and loopback are refused before any connection when nothing opts them in. */
static void test_post_refuses_denied_addresses(void)
{
	struct net_allow allow;
	char err[512] = "";

	CHECK_INTEQ(net_allow_parse("0.0.0.0/0, ::/0", &allow, err, sizeof err), 0);
	CHECK(webhook_post(&allow, "http://169.254.169.254/latest/meta-data", "s", "{}", 1, 1000, err, sizeof err) == -1);
	CHECK(strstr(err, "refused") != NULL && strstr(err, "link-local") != NULL);
	CHECK(webhook_post(&allow, "http://127.0.0.1:1/hook", "s", "{}", 1, 1000, err, sizeof err) == -1);
	CHECK(strstr(err, "loopback") != NULL);
	CHECK(webhook_post(&allow, "file:///etc/passwd", "s", "{}", 1, 1000, err, sizeof err) == -1);
}

/* The web's check resolves nothing: literals are judged, names are left to the runner. */
static void test_offline_check_judges_literals_only(void)
{
	struct net_allow allow;
	char err[512] = "", literal[64];

	CHECK_INTEQ(net_allow_parse("0.0.0.0/0, ::/0", &allow, err, sizeof err), 0);
	CHECK_INTEQ(net_allow_check_url_offline(&allow, "http://127.0.0.1:8080/x", literal, err, sizeof err), -1);
	CHECK_STREQ(literal, "127.0.0.1");
	CHECK_INTEQ(net_allow_check_url_offline(&allow, "http://[::1]/x", literal, err, sizeof err), -1);
	CHECK_STREQ(literal, "::1");
	CHECK_INTEQ(net_allow_check_url_offline(&allow, "https://93.184.215.14/x", literal, err, sizeof err), 0);
	CHECK_INTEQ(net_allow_check_url_offline(&allow, "https://hooks.example.com/x", literal, err, sizeof err), 1);
	CHECK_STREQ(literal, "");
	CHECK_INTEQ(net_allow_opt_in(&allow, "127.0.0.0/8", err, sizeof err), 0);
	CHECK_INTEQ(net_allow_check_url_offline(&allow, "http://127.0.0.1:8080/x", literal, err, sizeof err), 0);
}

int main(void)
{
	RUN(test_signature_is_hmac_sha256_of_timestamp_dot_body);
	RUN(test_signature_binds_secret_timestamp_and_body);
	RUN(test_post_refuses_denied_addresses);
	RUN(test_offline_check_judges_literals_only);
	return check_done();
}
