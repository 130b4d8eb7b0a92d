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

/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is judged as the IPv4 address it is. */
static int net_allow_contains(const struct net_allow *allow, const struct sockaddr *sa)
{
	const unsigned char *addr;
	int family = sa->sa_family;

	if (family == AF_INET) {
		addr = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
	} else if (family == AF_INET6) {
		addr = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)addr)) {
			family = AF_INET;
			addr += 12;
		}
	} else {
		return 0;
	}
	for (size_t i = 0; i < allow->n; i++)
		if (net_allow_match(&allow->nets[i], family, addr))
			return 1;
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
