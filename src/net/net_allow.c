#include "net_allow.h"
#include "strbuf.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static int net_allow_parse_one(const char *text, struct net_allow_net *net, char *err, size_t errlen)
{
	char addr[INET6_ADDRSTRLEN + 8], *slash, *end;
	int bytes, max;
	long prefix;

	if (strlen(text) >= sizeof addr) {
		snprintf(err, errlen, "allowed network \"%.60s\" is not an address/prefix", text);
		return -1;
	}
	strcpy(addr, text);
	slash = strchr(addr, '/');
	if (slash)
		*slash++ = '\0';
	memset(net, 0, sizeof *net);
	if (inet_pton(AF_INET, addr, net->addr) == 1) {
		net->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, addr, net->addr) == 1) {
		net->family = AF_INET6;
		max = 128;
	} else {
		snprintf(err, errlen, "allowed network \"%s\": \"%s\" is not an IPv4 or IPv6 address", text, addr);
		return -1;
	}
	prefix = max;
	if (slash) {
		prefix = strtol(slash, &end, 10);
		if (*slash < '0' || *slash > '9' || *end || prefix > max) {
			snprintf(err, errlen, "allowed network \"%s\": prefix length must be 0 to %d", text, max);
			return -1;
		}
	}
	net->prefix = (int)prefix;
	bytes = max / 8;
	for (int bit = (int)prefix; bit < bytes * 8; bit++)
		if (net->addr[bit / 8] & (0x80 >> (bit % 8))) {
			snprintf(err, errlen, "allowed network \"%s\" has address bits set past its /%ld prefix",
				 text, prefix);
			return -1;
		}
	return 0;
}

int net_allow_parse(const char *cidr_list, struct net_allow *allow, char *err, size_t errlen)
{
	char *copy = xstrdup(cidr_list ? cidr_list : ""), *save = NULL, *tok;
	int rc = 0;

	memset(allow, 0, sizeof *allow);
	for (tok = strtok_r(copy, ", \t\n", &save); tok; tok = strtok_r(NULL, ", \t\n", &save)) {
		if (allow->n == NET_ALLOW_MAX) {
			snprintf(err, errlen, "allowed networks: more than %d entries", NET_ALLOW_MAX);
			rc = -1;
			break;
		}
		if (net_allow_parse_one(tok, &allow->nets[allow->n], err, errlen) < 0) {
			rc = -1;
			break;
		}
		allow->n++;
	}
	free(copy);
	return rc;
}

static int net_allow_match(const struct net_allow_net *net, int family, const unsigned char *addr)
{
	int full = net->prefix / 8, rest = net->prefix % 8;

	if (net->family != family)
		return 0;
	if (memcmp(net->addr, addr, (size_t)full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((net->addr[full] ^ addr[full]) & (0xff << (8 - rest)) & 0xff) == 0;
}

/* Ranges no tenant's URL may reach whatever allowed_networks says: the runner's and web
 * worker's own machine, its neighbours, cloud metadata services, the operator's private
 * networks. A deployment opts one back in by naming it in allowed_private_networks. */
static const struct {
	const char *cidr, *what;
} net_deny_list[] = {
	{ "0.0.0.0/8", "\"this network\" (0.0.0.0/8)" },
	{ "127.0.0.0/8", "loopback (127.0.0.0/8)" },
	{ "169.254.0.0/16", "link-local, where cloud metadata services answer (169.254.0.0/16)" },
	{ "10.0.0.0/8", "a private network (10.0.0.0/8)" },
	{ "172.16.0.0/12", "a private network (172.16.0.0/12)" },
	{ "192.168.0.0/16", "a private network (192.168.0.0/16)" },
	{ "100.64.0.0/10", "carrier-grade NAT (100.64.0.0/10)" },
	{ "192.0.0.0/24", "IETF protocol assignments (192.0.0.0/24)" },
	{ "198.18.0.0/15", "benchmarking (198.18.0.0/15)" },
	{ "224.0.0.0/4", "multicast (224.0.0.0/4)" },
	{ "240.0.0.0/4", "reserved and broadcast (240.0.0.0/4)" },
	{ "::/96", "the unspecified, loopback or IPv4-compatible IPv6 addresses (::/96)" },
	{ "fe80::/10", "IPv6 link-local (fe80::/10)" },
	{ "fec0::/10", "IPv6 site-local (fec0::/10)" },
	{ "fc00::/7", "IPv6 unique local addresses (fc00::/7)" },
	{ "64:ff9b::/96", "NAT64 (64:ff9b::/96)" },
	{ "64:ff9b:1::/48", "local-use NAT64 (64:ff9b:1::/48)" },
	{ "ff00::/8", "IPv6 multicast (ff00::/8)" },
};

/* The address as judged: an IPv4-mapped IPv6 address (::ffff:a.b.c.d) and a 6to4 one
 * (2002:AABB:CCDD::/48) are the IPv4 address they carry. */
static int net_allow_family_addr(const struct sockaddr *sa, const unsigned char **addr)
{
	int family = sa->sa_family;

	if (family == AF_INET) {
		*addr = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
	} else if (family == AF_INET6) {
		*addr = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)*addr)) {
			family = AF_INET;
			*addr += 12;
		} else if ((*addr)[0] == 0x20 && (*addr)[1] == 0x02) {
			family = AF_INET;
			*addr += 2;
		}
	} else {
		return -1;
	}
	return family;
}

static int net_allow_in(const struct net_allow_net *nets, size_t n, int family, const unsigned char *addr)
{
	for (size_t i = 0; i < n; i++)
		if (net_allow_match(&nets[i], family, addr))
			return 1;
	return 0;
}

const char *net_allow_denied(const struct net_allow *allow, const struct sockaddr *sa)
{
	const unsigned char *addr;
	int family = net_allow_family_addr(sa, &addr);
	char err[128];

	if (family < 0)
		return "not an IP address";
	if (allow && net_allow_in(allow->optin, allow->n_optin, family, addr))
		return NULL;
	for (size_t i = 0; i < sizeof net_deny_list / sizeof net_deny_list[0]; i++) {
		struct net_allow_net deny;

		/* constant, well-formed input: parsed per call, so no state is shared between threads */
		if (net_allow_parse_one(net_deny_list[i].cidr, &deny, err, sizeof err) < 0)
			abort();
		if (net_allow_match(&deny, family, addr))
			return net_deny_list[i].what;
	}
	return NULL;
}

static int net_allow_contains(const struct net_allow *allow, const struct sockaddr *sa)
{
	const unsigned char *addr;
	int family = net_allow_family_addr(sa, &addr);

	return family >= 0 && net_allow_in(allow->nets, allow->n, family, addr);
}

int net_allow_opt_in(struct net_allow *allow, const char *cidr_list, char *err, size_t errlen)
{
	struct net_allow tmp;

	if (net_allow_parse(cidr_list, &tmp, err, errlen) < 0)
		return -1;
	if (tmp.n > NET_ALLOW_OPTIN_MAX) {
		snprintf(err, errlen, "allowed private networks: more than %d entries", NET_ALLOW_OPTIN_MAX);
		return -1;
	}
	memcpy(allow->optin, tmp.nets, tmp.n * sizeof tmp.nets[0]);
	allow->n_optin = tmp.n;
	return 0;
}

int net_allow_opt_in_add(struct net_allow *allow, const char *cidr_list, char *err, size_t errlen)
{
	struct net_allow tmp;

	if (net_allow_parse(cidr_list, &tmp, err, errlen) < 0)
		return -1;
	if (allow->n_optin + tmp.n > NET_ALLOW_OPTIN_MAX) {
		snprintf(err, errlen, "allowed private networks: more than %d entries", NET_ALLOW_OPTIN_MAX);
		return -1;
	}
	memcpy(allow->optin + allow->n_optin, tmp.nets, tmp.n * sizeof tmp.nets[0]);
	allow->n_optin += tmp.n;
	return 0;
}

static int net_allow_url_parts(const char *url, char **host, char **port, char *err, size_t errlen)
{
	CURLU *u = curl_url();
	int rc = -1;

	*host = *port = NULL;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		snprintf(err, errlen, "\"%.200s\" is not a valid URL", url);
	else if (curl_url_get(u, CURLUPART_HOST, host, 0) != CURLUE_OK)
		snprintf(err, errlen, "URL \"%.200s\" names no host", url);
	else if (curl_url_get(u, CURLUPART_PORT, port, CURLU_DEFAULT_PORT) != CURLUE_OK)
		snprintf(err, errlen, "URL \"%.200s\" has no port and an unknown scheme", url);
	else
		rc = 0;
	curl_url_cleanup(u);
	return rc;
}

/* Strips the brackets of an IPv6 literal in place. */
static char *net_allow_unbracket(char *host)
{
	size_t len = strlen(host);

	if (host[0] == '[' && len > 1 && host[len - 1] == ']') {
		host[len - 1] = '\0';
		return host + 1;
	}
	return host;
}

static int net_allow_check_addrs(const struct net_allow *allow, const char *host, const char *port,
				 int literal, struct strbuf *resolve, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = literal ? AI_NUMERICHOST : 0 };
	struct addrinfo *res = NULL;
	int gai = getaddrinfo(host, port, &hints, &res), rc = 0, n = 0;

	if (gai != 0) {
		snprintf(err, errlen, "cannot resolve host %s: %s", host, gai_strerror(gai));
		return -1;
	}
	if (!literal)
		strbuf_addf(resolve, "%s:%s:", host, port);
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		char text[INET6_ADDRSTRLEN];

		getnameinfo(ai->ai_addr, ai->ai_addrlen, text, sizeof text, NULL, 0, NI_NUMERICHOST);
		const char *denied = net_allow_denied(allow, ai->ai_addr);

		if (denied) {
			if (literal)
				snprintf(err, errlen, "address %s is %s, which is always refused unless "
					 "allowed_private_networks names it", host, denied);
			else
				snprintf(err, errlen, "host %s resolves to %s, which is %s, always refused unless "
					 "allowed_private_networks names it", host, text, denied);
			rc = -1;
			break;
		}
		if (!net_allow_contains(allow, ai->ai_addr)) {
			if (literal)
				snprintf(err, errlen, "address %s is outside the allowed networks", host);
			else
				snprintf(err, errlen, "host %s resolves to %s, which is outside the allowed networks",
					 host, text);
			rc = -1;
			break;
		}
		if (literal)
			continue;
		strbuf_addf(resolve, ai->ai_family == AF_INET6 ? "%s[%s]" : "%s%s", n++ ? "," : "", text);
	}
	freeaddrinfo(res);
	return rc;
}

int net_allow_check_url(const struct net_allow *allow, const char *url, char *resolve,
			size_t resolvelen, char *err, size_t errlen)
{
	struct strbuf pin = STRBUF_INIT;
	char *host_raw, *port, *host;
	unsigned char probe[16];
	int literal, rc;

	if (resolvelen)
		resolve[0] = '\0';
	if (net_allow_url_parts(url, &host_raw, &port, err, errlen) < 0) {
		curl_free(host_raw);
		curl_free(port);
		return -1;
	}
	host = net_allow_unbracket(host_raw);
	literal = inet_pton(AF_INET, host, probe) == 1 || inet_pton(AF_INET6, host, probe) == 1;
	rc = net_allow_check_addrs(allow, host, port, literal, &pin, err, errlen);
	if (rc == 0 && pin.len >= resolvelen) {
		snprintf(err, errlen, "host %s resolves to too many addresses", host);
		rc = -1;
	}
	if (rc == 0 && pin.len)
		memcpy(resolve, pin.buf, pin.len + 1);
	strbuf_release(&pin);
	curl_free(host_raw);
	curl_free(port);
	return rc;
}

int net_allow_check_url_offline(const struct net_allow *allow, const char *url, char literal[64], char *err,
				size_t errlen)
{
	struct strbuf unused = STRBUF_INIT;
	char *host_raw, *port, *host;
	unsigned char probe[16];
	int rc = 1;

	literal[0] = '\0';
	if (net_allow_url_parts(url, &host_raw, &port, err, errlen) < 0) {
		rc = -1;
	} else {
		host = net_allow_unbracket(host_raw);
		if (inet_pton(AF_INET, host, probe) == 1 || inet_pton(AF_INET6, host, probe) == 1) {
			snprintf(literal, 64, "%s", host);
			rc = net_allow_check_addrs(allow, host, port, 1, &unused, err, errlen);
		}
	}
	strbuf_release(&unused);
	curl_free(host_raw);
	curl_free(port);
	return rc;
}

void net_allow_pin(CURL *h, struct curl_slist *resolve, const char *ca_pem)
{
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	if (resolve)
		curl_easy_setopt(h, CURLOPT_RESOLVE, resolve);
	if (ca_pem) {
		struct curl_blob blob = { (void *)ca_pem, strlen(ca_pem), CURL_BLOB_COPY };

		curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
	}
}
