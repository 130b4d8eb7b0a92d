/* The networks that user-supplied URLs (API servers, S3 endpoints) may point into. A URL's
 * host is resolved once, every address is checked, and the caller pins the connection to
 * exactly those addresses (CURLOPT_RESOLVE), so DNS cannot change between check and connect. */
#ifndef STOWAGE_NET_ALLOW_H
#define STOWAGE_NET_ALLOW_H

#include <stddef.h>

#include <curl/curl.h>

#define NET_ALLOW_MAX 64
#define NET_ALLOW_OPTIN_MAX 16
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
	size_t n_optin;		/* ranges of the deny list this deployment opts back in */
	struct net_allow_net optin[NET_ALLOW_OPTIN_MAX];
};

struct sockaddr;

/* "127.0.0.0/8, ::1/128, 10.0.0.0/8": comma or space separated CIDRs; a bare address means
 * that one address. Host bits set below the prefix are an error (a typo, not an intention). */
int net_allow_parse(const char *cidr_list, struct net_allow *allow, char *err, size_t errlen);
/* Config allowed_private_networks, after net_allow_parse: ranges of the deny list (loopback,
 * 0.0.0.0/8, link-local, RFC 1918, 100.64.0.0/10, ULA, NAT64, multicast, ...) that URLs may
 * reach after all. Without it no address of the deny list passes, whatever allow holds. */
int net_allow_opt_in(struct net_allow *allow, const char *cidr_list, char *err, size_t errlen);
/* The same, keeping the opt-ins allow already has: one organisation's, added by the runner to
 * the deployment's (org_network_opt_ins). */
int net_allow_opt_in_add(struct net_allow *allow, const char *cidr_list, char *err, size_t errlen);
/* The deny-list range sa lies in, in words ("loopback (127.0.0.0/8)"), or NULL when it lies in
 * none or allow opts it back in (allow may be NULL: no opt-in). */
const char *net_allow_denied(const struct net_allow *allow, const struct sockaddr *sa);
/* Resolves url's host and returns 0 only if every address it resolves to lies in allow and
 * outside the deny list (but for allow's opt-ins).
 * resolve receives the CURLOPT_RESOLVE entry that pins those addresses ("" when the host is
 * an IP literal, which needs no pinning). */
int net_allow_check_url(const struct net_allow *allow, const char *url, char *resolve,
			size_t resolvelen, char *err, size_t errlen);
/* The same check without resolving anything, for the web (which makes no outbound connection,
 * DNS included): 0 when url's host is an IP literal that passes, 1 when it is a host name (left
 * to net_allow_check_url where the connection is made), -1 with err when it is refused; *literal
 * receives the address's text (or "") for a further look at the organisation's opt-ins. */
int net_allow_check_url_offline(const struct net_allow *allow, const char *url, char literal[64], char *err,
				size_t errlen);

/* Pins a libcurl handle to what net_allow_check_url checked: resolve's addresses (NULL: an IP
 * literal), no proxy from the environment (http_proxy and the like may not carry a tenant's
 * request, nor resolve its host again), and the CA bundle ca_pem when not NULL. Every request to
 * a tenant's server is set up here. */
void net_allow_pin(CURL *h, struct curl_slist *resolve, const char *ca_pem);

#endif
