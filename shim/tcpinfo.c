// SPDX-License-Identifier: MIT
/*
 * Byte counts of a plain TCP connection, from the kernel: a connection
 * that MIGRDMA_FALLBACK=tcp let through is not intercepted byte by byte,
 * yet its close line must say what it carried.
 *
 * glibc's <netinet/tcp.h> lacks the RFC 4898 counters, so this file alone
 * uses the kernel's <linux/tcp.h>.
 */
#include <errno.h>
#include <stdbool.h>
#include <linux/sockios.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "common/real.h"
#include "tcpinfo.h"

/* The kernel's TCP states (include/net/tcp_states.h), not in any uapi header. */
enum {
	ST_TIME_WAIT = 6, ST_CLOSE = 7, ST_CLOSE_WAIT = 8, ST_LAST_ACK = 9, ST_CLOSING = 11,
};

/*
 * Did the peer's FIN arrive?  A fully closed socket (both FINs, or a
 * reset) is in CLOSE; only a reset leaves an error behind.
 */
static bool fin_received(int fd, unsigned state, bool *reset)
{
	socklen_t len = sizeof(int);
	int err = 0;

	*reset = false;
	if (state == ST_CLOSE_WAIT || state == ST_LAST_ACK || state == ST_CLOSING ||
	    state == ST_TIME_WAIT)
		return true;
	if (state != ST_CLOSE)
		return false;
	if (REAL(getsockopt)(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err)
		*reset = true;
	return !*reset;
}

int tcpinfo_bytes(int fd, uint64_t *out, uint64_t *in, bool *reset)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int saved = errno, queued = 0;
	uint64_t acked;

	memset(&ti, 0, sizeof(ti));
	*reset = false;
	if (REAL(getsockopt)(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) ||
	    len < offsetof(struct tcp_info, tcpi_bytes_sent) + sizeof(ti.tcpi_bytes_sent)) {
		errno = saved;
		return -1;
	}
	/* SIOCOUTQ: written but not yet acknowledged; the program wrote it. */
	if (REAL(ioctl)(fd, SIOCOUTQ, &queued) || queued < 0)
		queued = 0;
	/*
	 * The SYN and FIN take a sequence number each, so acknowledged plus
	 * queued counts one or two too many.  bytes_sent counts data only,
	 * but retransmissions twice: the smaller is exact without them.
	 */
	acked = (ti.tcpi_bytes_acked ? ti.tcpi_bytes_acked - 1 : 0) + (uint64_t)queued;
	*out = acked < ti.tcpi_bytes_sent ? acked : ti.tcpi_bytes_sent;
	*in = ti.tcpi_bytes_received;
	if (*in && fin_received(fd, ti.tcpi_state, reset))
		(*in)--;
	errno = saved;
	return 0;
}
