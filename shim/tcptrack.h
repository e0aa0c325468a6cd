/* SPDX-License-Identifier: MIT */
/*
 * Matched connections that MIGRDMA_FALLBACK=tcp let use plain TCP.  Their
 * bytes never pass through migrdma; each sits in the fd table as a tagged
 * pointer (never a struct msock) only so that its close is seen and
 * reported like a diverted connection's: the close line and MIGRDMA_STATS.
 */
#ifndef MIGRDMA_SHIM_TCPTRACK_H
#define MIGRDMA_SHIM_TCPTRACK_H

#include <stdbool.h>
#include <sys/socket.h>

/* Is this fd table entry a tracked TCP connection (not a struct msock)? */
static inline bool tcp_track_is(const void *entry)
{
	return (unsigned long)entry & 1UL;
}

/* Start tracking fd, connected (or connecting) to peer, as role. */
void tcp_track_install(int fd, const char *role, unsigned conn_id,
		       const struct sockaddr *peer);

/* fd, still open, is being closed: report what it carried, free entry. */
void tcp_track_closed(int fd, void *entry);

/* Free entry without a report (the fd was reused unseen, or after fork). */
void tcp_track_forget(void *entry);

#endif
