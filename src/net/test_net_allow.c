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
	CHECK_INTEQ(net_allow_opt_in(&a, "10.0.0.0/8", err, sizeof err), 0);
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
	CHECK_INTEQ(net_allow_opt_in(&a, "fd00::/8, ::/96, 127.0.0.0/8", err, sizeof err), 0);
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
	CHECK_INTEQ(net_allow_opt_in(&a, "127.0.0.0/8, ::1/128", err, sizeof err), 0);
	CHECK_INTEQ(net_allow_check_url(&a, "https://localhost:6443/api", pin, sizeof pin, err, sizeof err), 0);
	CHECK(strncmp(pin, "localhost:6443:", 15) == 0);
	CHECK(strstr(pin, "127.0.0.1") != NULL || strstr(pin, "[::1]") != NULL);
	CHECK_INTEQ(net_allow_check_url(&a, "http://localhost/", pin, sizeof pin, err, sizeof err), 0);
	CHECK(strncmp(pin, "localhost:80:", 13) == 0);

	CHECK_INTEQ(net_allow_parse("10.0.0.0/8", &a, err, sizeof err), 0);
	CHECK_INTEQ(net_allow_opt_in(&a, "127.0.0.0/8, ::1/128", err, sizeof err), 0);
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

/* Every range of the deny list refuses, whatever allowed_networks says, in every IPv6 form
 * that carries an IPv4 address; an opt-in gives back that range and no other. */
static void test_deny_list_holds_whatever_allowed_networks_says(void)
{
	static const struct {
		const char *url, *words;
	} denied[] = {
		{ "http://0.0.0.0/", "\"this network\" (0.0.0.0/8)" },
		{ "http://0.255.255.255/", "\"this network\" (0.0.0.0/8)" },
		{ "http://127.0.0.1/", "loopback (127.0.0.0/8)" },
		{ "http://127.255.255.254/", "loopback (127.0.0.0/8)" },
		{ "http://169.254.169.254/latest/meta-data/", "link-local, where cloud metadata services answer (169.254.0.0/16)" },
		{ "http://10.0.0.1/", "a private network (10.0.0.0/8)" },
		{ "http://10.255.255.255/", "a private network (10.0.0.0/8)" },
		{ "http://172.16.0.1/", "a private network (172.16.0.0/12)" },
		{ "http://172.31.255.255/", "a private network (172.16.0.0/12)" },
		{ "http://192.168.0.1/", "a private network (192.168.0.0/16)" },
		{ "http://100.64.0.1/", "carrier-grade NAT (100.64.0.0/10)" },
		{ "http://100.127.255.255/", "carrier-grade NAT (100.64.0.0/10)" },
		{ "http://192.0.0.170/", "IETF protocol assignments (192.0.0.0/24)" },
		{ "http://198.18.0.1/", "benchmarking (198.18.0.0/15)" },
		{ "http://224.0.0.1/", "multicast (224.0.0.0/4)" },
		{ "http://239.255.255.250/", "multicast (224.0.0.0/4)" },
		{ "http://255.255.255.255/", "reserved and broadcast (240.0.0.0/4)" },
		{ "http://[::1]/", "the unspecified, loopback or IPv4-compatible IPv6 addresses (::/96)" },
		{ "http://[::]/", "the unspecified, loopback or IPv4-compatible IPv6 addresses (::/96)" },
		{ "http://[::127.0.0.1]/", "the unspecified, loopback or IPv4-compatible IPv6 addresses (::/96)" },
		{ "http://[fe80::1]/", "IPv6 link-local (fe80::/10)" },
		{ "http://[febf:ffff::1]/", "IPv6 link-local (fe80::/10)" },
		{ "http://[fec0::1]/", "IPv6 site-local (fec0::/10)" },
		{ "http://[fc00::1]/", "IPv6 unique local addresses (fc00::/7)" },
		{ "http://[fd12:3456::1]/", "IPv6 unique local addresses (fc00::/7)" },
		{ "http://[64:ff9b::7f00:1]/", "NAT64 (64:ff9b::/96)" },
		{ "http://[64:ff9b::a9fe:a9fe]/", "NAT64 (64:ff9b::/96)" },
		{ "http://[64:ff9b:1::1]/", "local-use NAT64 (64:ff9b:1::/48)" },
		{ "http://[ff02::1]/", "IPv6 multicast (ff00::/8)" },
		/* IPv4-mapped and 6to4: the IPv4 address they carry */
		{ "http://[::ffff:127.0.0.1]/", "loopback (127.0.0.0/8)" },
		{ "http://[::ffff:7f00:1]/", "loopback (127.0.0.0/8)" },
		{ "http://[::ffff:169.254.169.254]/", "link-local, where cloud metadata services answer (169.254.0.0/16)" },
		{ "http://[::ffff:10.1.2.3]/", "a private network (10.0.0.0/8)" },
		{ "http://[::ffff:172.20.0.1]/", "a private network (172.16.0.0/12)" },
		{ "http://[::ffff:192.168.1.1]/", "a private network (192.168.0.0/16)" },
		{ "http://[::ffff:100.64.0.1]/", "carrier-grade NAT (100.64.0.0/10)" },
		{ "http://[::ffff:0.0.0.0]/", "\"this network\" (0.0.0.0/8)" },
		{ "http://[::ffff:224.0.0.1]/", "multicast (224.0.0.0/4)" },
		{ "http://[2002:7f00:1::1]/", "loopback (127.0.0.0/8)" },
		{ "http://[2002:a9fe:a9fe::]/", "link-local, where cloud metadata services answer (169.254.0.0/16)" },
	};
	static const char *const public_ones[] = {
		"http://8.8.8.8/", "http://172.32.0.1/", "http://172.15.255.255/", "http://100.128.0.1/",
		"http://169.253.255.255/", "http://1.0.0.1/", "http://[2001:db8::1]/", "http://[2606:4700::1111]/",
		"http://[::ffff:8.8.8.8]/", "http://[2002:808:808::1]/", "http://[64:ff9a::1]/", "http://[fbff::1]/",
	};
	struct net_allow a;
	char err[256] = "", pin[NET_ALLOW_RESOLVE_MAX], want[256];

	CHECK_INTEQ(net_allow_parse("0.0.0.0/0, ::/0", &a, err, sizeof err), 0);
	for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++) {
		char host[64];
		const char *h = denied[i].url + 7;
		size_t len = strcspn(h, "/");

		snprintf(host, sizeof host, "%.*s", (int)len, h);
		if (host[0] == '[') {
			memmove(host, host + 1, strlen(host));
			host[strlen(host) - 1] = '\0';
		}
		CHECK_INTEQ(net_allow_check_url(&a, denied[i].url, pin, sizeof pin, err, sizeof err), -1);
		snprintf(want, sizeof want, "address %s is %s, which is always refused unless "
			 "allowed_private_networks names it", host, denied[i].words);
		CHECK_STREQ(err, want);
	}
	for (size_t i = 0; i < sizeof public_ones / sizeof public_ones[0]; i++) {
		CHECK_INTEQ(net_allow_check_url(&a, public_ones[i], pin, sizeof pin, err, sizeof err), 0);
		if (*err)
			printf("# %s: %s\n", public_ones[i], err);
		err[0] = '\0';
	}
	/* opting loopback back in opens loopback, also mapped, and nothing else */
	CHECK_INTEQ(net_allow_opt_in(&a, "127.0.0.0/8, ::1/128", err, sizeof err), 0);
	CHECK_INTEQ(net_allow_check_url(&a, "http://127.0.0.1:9000/", pin, sizeof pin, err, sizeof err), 0);
	CHECK_INTEQ(net_allow_check_url(&a, "http://[::1]:9000/", pin, sizeof pin, err, sizeof err), 0);
	CHECK_INTEQ(net_allow_check_url(&a, "http://[::ffff:127.0.0.1]/", pin, sizeof pin, err, sizeof err), 0);
	CHECK_INTEQ(net_allow_check_url(&a, "http://169.254.169.254/", pin, sizeof pin, err, sizeof err), -1);
	CHECK_INTEQ(net_allow_check_url(&a, "http://10.0.0.1/", pin, sizeof pin, err, sizeof err), -1);
	CHECK_INTEQ(net_allow_check_url(&a, "http://[::]/", pin, sizeof pin, err, sizeof err), -1);
	/* an opt-in outside allowed_networks still needs allowed_networks */
	CHECK_INTEQ(net_allow_parse("8.8.8.0/24", &a, err, sizeof err), 0);
	CHECK_INTEQ(net_allow_opt_in(&a, "127.0.0.0/8", err, sizeof err), 0);
	CHECK_INTEQ(net_allow_check_url(&a, "http://127.0.0.1/", pin, sizeof pin, err, sizeof err), -1);
	CHECK_STREQ(err, "address 127.0.0.1 is outside the allowed networks");
	/* and a hostname that resolves into the deny list says which address and range */
	CHECK_INTEQ(net_allow_parse("0.0.0.0/0, ::/0", &a, err, sizeof err), 0);
	CHECK_INTEQ(net_allow_check_url(&a, "https://localhost:6443/", pin, sizeof pin, err, sizeof err), -1);
	CHECK(strstr(err, "host localhost resolves to ") == err);
	CHECK(strstr(err, "always refused unless allowed_private_networks names it") != NULL);
	CHECK_INTEQ(net_allow_opt_in(&a, "bad", err, sizeof err), -1);
}

/* One organisation's opt-ins are added to the deployment's, never replacing them, and the
 * count stays capped. */
static void test_org_opt_in_adds_to_the_deployment(void)
{
	struct net_allow base, org;
	char err[256] = "", pin[NET_ALLOW_RESOLVE_MAX];

	CHECK_INTEQ(net_allow_parse("0.0.0.0/0", &base, err, sizeof err), 0);
	CHECK_INTEQ(net_allow_opt_in(&base, "10.0.0.0/8", err, sizeof err), 0);
	CHECK_INTEQ(net_allow_check_url(&base, "https://127.0.0.1:6443/", pin, sizeof pin, err, sizeof err), -1);
	org = base;
	CHECK_INTEQ(net_allow_opt_in_add(&org, "127.0.0.0/8", err, sizeof err), 0);
	CHECK_INTEQ(net_allow_check_url(&org, "https://127.0.0.1:6443/", pin, sizeof pin, err, sizeof err), 0);
	CHECK_INTEQ(net_allow_check_url(&org, "https://10.2.3.4/", pin, sizeof pin, err, sizeof err), 0);
	/* the deployment's own stays as it was */
	CHECK_INTEQ(net_allow_check_url(&base, "https://127.0.0.1:6443/", pin, sizeof pin, err, sizeof err), -1);
	CHECK_INTEQ(net_allow_opt_in_add(&org, "garbage", err, sizeof err), -1);
	for (int i = 0; i < NET_ALLOW_OPTIN_MAX - 2; i++)
		CHECK_INTEQ(net_allow_opt_in_add(&org, "192.168.0.0/16", err, sizeof err), 0);
	CHECK_INTEQ(net_allow_opt_in_add(&org, "192.168.0.0/16", err, sizeof err), -1);
}

int main(void)
{
	RUN(test_org_opt_in_adds_to_the_deployment);
	RUN(test_deny_list_holds_whatever_allowed_networks_says);
	RUN(test_parse_lists_and_errors);
	RUN(test_v4_range_edges);
	RUN(test_v6_range_edges);
	RUN(test_hostname_resolving_to_loopback_is_pinned);
	RUN(test_bad_urls);
	return check_done();
}
