// SPDX-License-Identifier: MIT
#include "addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static void format(const void *sockaddr, char *buf, size_t buflen, bool with_port)
{
	char host[INET6_ADDRSTRLEN];
	struct sockaddr_in6 sin6;
	struct sockaddr_in sin;
	sa_family_t family;

	if (!buf || !buflen)
		return;
	if (!sockaddr)
		goto unknown;

	/* Copies: the caller's pointer may be a sockaddr_storage or unaligned. */
	memcpy(&family, (const char *)sockaddr + offsetof(struct sockaddr, sa_family),
	       sizeof(family));
	switch (family) {
	case AF_INET:
		memcpy(&sin, sockaddr, sizeof(sin));
		if (!inet_ntop(AF_INET, &sin.sin_addr, host, sizeof(host)))
			goto unknown;
		if (with_port)
			snprintf(buf, buflen, "%s:%u", host, ntohs(sin.sin_port));
		else
			snprintf(buf, buflen, "%s", host);
		return;
	case AF_INET6:
		memcpy(&sin6, sockaddr, sizeof(sin6));
		if (!inet_ntop(AF_INET6, &sin6.sin6_addr, host, sizeof(host)))
			goto unknown;
		if (!with_port)
			snprintf(buf, buflen, "%s", host);
		/* Link-local addresses are ambiguous without their interface. */
		else if (sin6.sin6_scope_id)
			snprintf(buf, buflen, "[%s%%%u]:%u", host,
				 (unsigned)sin6.sin6_scope_id, ntohs(sin6.sin6_port));
		else
			snprintf(buf, buflen, "[%s]:%u", host, ntohs(sin6.sin6_port));
		return;
	}
unknown:
	snprintf(buf, buflen, "?");
}

void addr_format(const void *sockaddr, char *buf, size_t buflen)
{
	format(sockaddr, buf, buflen, true);
}

void addr_format_host(const void *sockaddr, char *buf, size_t buflen)
{
	format(sockaddr, buf, buflen, false);
}
