/* Kubernetes object names, the one check: DNS-1123 labels and subdomains. */
#ifndef STOWAGE_NAMES_H
#define STOWAGE_NAMES_H

#include <stddef.h>

/* 1 when the len bytes of s are a DNS-1123 label (dots 0: lowercase letters, digits and '-',
 * starting and ending with a letter or digit) or subdomain (dots 1: '.' too) of at most max bytes:
 * 63 for namespaces and labels, 253 for most object names. */
int dns_name_valid(const char *s, size_t len, size_t max, int dots);

#endif
