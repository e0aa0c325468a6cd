/* SPDX-License-Identifier: MIT */
/* The one socket-address formatter, for log lines, statistics and the tools. */
#ifndef MIGRDMA_COMMON_ADDR_H
#define MIGRDMA_COMMON_ADDR_H

#include <stddef.h>

/*
 * "ADDR:PORT" or "[ADDR6]:PORT" ("[fe80::1%3]:PORT" with a scope) of a
 * struct sockaddr into buf, truncated to fit; "?" for NULL or another family.
 */
void addr_format(const void *sockaddr, char *buf, size_t buflen);

/* The address alone, without port or brackets; "?" as above. */
void addr_format_host(const void *sockaddr, char *buf, size_t buflen);

#endif
