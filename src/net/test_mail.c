#include "mail.h"
#include "check.h"

/* A recipient goes into the To: header and the SMTP envelope: nothing that could add a header,
 * a second recipient or an SMTP command may pass. */
static void test_mail_address_ok_refuses_injection(void)
{
	CHECK_INTEQ(mail_address_ok("ann@example.com"), 1);
	CHECK_INTEQ(mail_address_ok("ann+ops@sub.example.com"), 1);
	CHECK_INTEQ(mail_address_ok("ann@example.com\r\nBcc: eve@evil.example"), 0);
	CHECK_INTEQ(mail_address_ok("ann@example.com\nRCPT TO:<eve@evil.example>"), 0);
	CHECK_INTEQ(mail_address_ok("ann@example.com, eve@evil.example"), 0);
	CHECK_INTEQ(mail_address_ok("<eve@evil.example>"), 0);
	CHECK_INTEQ(mail_address_ok("ann @example.com"), 0);
	CHECK_INTEQ(mail_address_ok("no-at-sign"), 0);
	CHECK_INTEQ(mail_address_ok(""), 0);
	CHECK_INTEQ(mail_address_ok(NULL), 0);
}

static void test_mail_without_smtp_is_logged_not_sent(void)
{
	struct mail_conf conf = { .smtp_url = NULL, .from = "stowage@localhost" };
	char err[256] = "";

	CHECK_INTEQ(mail_send(&conf, "ann@example.com", "Subject", "a link:\nhttp://x/confirm/abc\n", err, sizeof err), 0);
	CHECK_INTEQ(mail_send(&conf, "ann@example.com\r\nBcc: e@x", "Subject", "body", err, sizeof err), -1);
	CHECK(strstr(err, "recipient") != NULL);
}

int main(void)
{
	RUN(test_mail_address_ok_refuses_injection);
	RUN(test_mail_without_smtp_is_logged_not_sent);
	return check_done();
}
