/* The networks that user-supplied URLs (API servers, S3 endpoints) may point into. A URL's
 * host is resolved once, every address is checked, and the caller pins the connection to
 * exactly those addresses (CURLOPT_RESOLVE), so DNS cannot change between check and connect. */
#ifndef STOWAGE_NET_ALLOW_H
#define STOWAGE_NET_ALLOW_H

#include <stddef.h>

#define NET_ALLOW_MAX 64
/* "host:port:addr,addr,..." for CURLOPT_RESOLVE */
#define NET_ALLOW_RESOLVE_MAX 1024

struct net_allow_net {
	int family;		/* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int prefix;
};

struct net_allow {
	size_t n;
	struct net_allow_net nets[NET_ALLOW_MAX];
};

/* "127.0.0.0/8, ::1/128, 10.0.0.0/8": comma or space separated CIDRs; a bare address means
 * that one address. Host bits set below the prefix are an error (a typo, not an intention). */
int net_allow_parse(const char *cidr_list, struct net_allow *allow, char *err, size_t errlen);
/* Resolves url's host and returns 0 only if every address it resolves to lies in allow.
 * resolve receives the CURLOPT_RESOLVE entry that pins those addresses ("" when the host is
 * an IP literal, which needs no pinning). */
int net_allow_check_url(const struct net_allow *allow, const char *url, char *resolve,
			size_t resolvelen, char *err, size_t errlen);

#endif
