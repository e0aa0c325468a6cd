/* SPDX-License-Identifier: MIT */
/* Byte counts of a plain (fallback) TCP connection, read from the kernel. */
#ifndef MIGRDMA_SHIM_TCPINFO_H
#define MIGRDMA_SHIM_TCPINFO_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Bytes the program wrote to (acknowledged or still queued) and the peer
 * sent on the TCP socket fd, SYN and FIN excluded; *reset when the
 * connection ended with a reset.  0, or -1 when the kernel has no such
 * counters (errno unchanged).
 */
int tcpinfo_bytes(int fd, uint64_t *out, uint64_t *in, bool *reset);

#endif
