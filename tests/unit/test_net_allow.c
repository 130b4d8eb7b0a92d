#include "net_allow.h"
#include "check.h"

static void test_parse_lists_and_errors(void)
{
	struct net_allow a;
	char err[256] = "";

	CHECK_INTEQ(net_allow_parse("127.0.0.0/8, ::1/128,10.0.0.0/8 192.168.1.7", &a, err, sizeof err), 0);
	CHECK_INTEQ(a.n, 4);
	CHECK_INTEQ(a.nets[3].prefix, 32);
	CHECK_INTEQ(net_allow_parse("10.0.0.1/8", &a, err, sizeof err), -1);
	CHECK_STREQ(err, "allowed network \"10.0.0.1/8\" has address bits set past its /8 prefix");
	CHECK_INTEQ(net_allow_parse("10.0.0.0/33", &a, err, sizeof err), -1);
	CHECK_STREQ(err, "allowed network \"10.0.0.0/33\": prefix length must be 0 to 32");
	CHECK_INTEQ(net_allow_parse("10.0.0.0/-1", &a, err, sizeof err), -1);
	CHECK_INTEQ(net_allow_parse("example.com/8", &a, err, sizeof err), -1);
	CHECK_STREQ(err, "allowed network \"example.com/8\": \"example.com\" is not an IPv4 or IPv6 address");
	CHECK_INTEQ(net_allow_parse("fd00::/129", &a, err, sizeof err), -1);
	CHECK_INTEQ(net_allow_parse("", &a, err, sizeof err), 0);
	CHECK_INTEQ(a.n, 0);
}

static void test_v4_range_edges(void)
{
	struct net_allow a;
	char err[256] = "", pin[NET_ALLOW_RESOLVE_MAX];

	CHECK_INTEQ(net_allow_parse("10.1.2.0/23", &a, err, sizeof err), 0);
	CHECK_INTEQ(net_allow_check_url(&a, "https://10.1.2.0/", pin, sizeof pin, err, sizeof err), 0);
	CHECK_STREQ(pin, "");
	CHECK_INTEQ(net_allow_check_url(&a, "https://10.1.3.255:6443/", pin, sizeof pin, err, sizeof err), 0);
	CHECK_INTEQ(net_allow_check_url(&a, "https://10.1.4.0/", pin, sizeof pin, err, sizeof err), -1);
	CHECK_STREQ(err, "address 10.1.4.0 is outside the allowed networks");
	CHECK_INTEQ(net_allow_check_url(&a, "https://10.1.1.255/", pin, sizeof pin, err, sizeof err), -1);
	/* An IPv4-mapped IPv6 literal is judged as the IPv4 address it carries. */
	CHECK_INTEQ(net_allow_check_url(&a, "https://[::ffff:10.1.2.9]/", pin, sizeof pin, err, sizeof err), 0);
	CHECK_INTEQ(net_allow_check_url(&a, "https://[::ffff:10.9.2.9]/", pin, sizeof pin, err, sizeof err), -1);
}

static void test_v6_range_edges(void)
{
	struct net_allow a;
	char err[256] = "", pin[NET_ALLOW_RESOLVE_MAX];

	CHECK_INTEQ(net_allow_parse("fd00:1::/33, ::1", &a, err, sizeof err), 0);
	CHECK_INTEQ(net_allow_check_url(&a, "http://[::1]:9000/x", pin, sizeof pin, err, sizeof err), 0);
	CHECK_INTEQ(net_allow_check_url(&a, "http://[fd00:1:7fff:ffff::1]/", pin, sizeof pin, err, sizeof err), 0);
	CHECK_INTEQ(net_allow_check_url(&a, "http://[fd00:1:8000::]/", pin, sizeof pin, err, sizeof err), -1);
	CHECK_INTEQ(net_allow_check_url(&a, "http://[::2]/", pin, sizeof pin, err, sizeof err), -1);
	/* No IPv4 network listed: nothing IPv4 passes. */
	CHECK_INTEQ(net_allow_check_url(&a, "http://127.0.0.1/", pin, sizeof pin, err, sizeof err), -1);
}

static void test_hostname_resolving_to_loopback_is_pinned(void)
{
	struct net_allow a;
	char err[256] = "", pin[NET_ALLOW_RESOLVE_MAX];

	CHECK_INTEQ(net_allow_parse("127.0.0.0/8, ::1/128", &a, err, sizeof err), 0);
	CHECK_INTEQ(net_allow_check_url(&a, "https://localhost:6443/api", pin, sizeof pin, err, sizeof err), 0);
	CHECK(strncmp(pin, "localhost:6443:", 15) == 0);
	CHECK(strstr(pin, "127.0.0.1") != NULL || strstr(pin, "[::1]") != NULL);
	CHECK_INTEQ(net_allow_check_url(&a, "http://localhost/", pin, sizeof pin, err, sizeof err), 0);
	CHECK(strncmp(pin, "localhost:80:", 13) == 0);

	CHECK_INTEQ(net_allow_parse("10.0.0.0/8", &a, err, sizeof err), 0);
	CHECK_INTEQ(net_allow_check_url(&a, "https://localhost:6443/api", pin, sizeof pin, err, sizeof err), -1);
	CHECK(strstr(err, "host localhost resolves to ") == err);
	CHECK(strstr(err, "outside the allowed networks") != NULL);
	CHECK_STREQ(pin, "");
}

static void test_bad_urls(void)
{
	struct net_allow a;
	char err[256] = "", pin[NET_ALLOW_RESOLVE_MAX];

	CHECK_INTEQ(net_allow_parse("0.0.0.0/0", &a, err, sizeof err), 0);
	CHECK_INTEQ(net_allow_check_url(&a, "not a url", pin, sizeof pin, err, sizeof err), -1);
	CHECK_STREQ(err, "\"not a url\" is not a valid URL");
	CHECK_INTEQ(net_allow_check_url(&a, "https://no-such-host.invalid/", pin, sizeof pin, err, sizeof err), -1);
	CHECK(strstr(err, "cannot resolve host no-such-host.invalid") == err);
}

int main(void)
{
	RUN(test_parse_lists_and_errors);
	RUN(test_v4_range_edges);
	RUN(test_v6_range_edges);
	RUN(test_hostname_resolving_to_loopback_is_pinned);
	RUN(test_bad_urls);
	return check_done();
}
