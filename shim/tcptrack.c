// SPDX-License-Identifier: MIT
/*
 * The close report of a TCP fallback connection: the same line and
 * MIGRDMA_STATS record as an RDMA connection's, with transport "tcp" and
 * the byte counts the kernel kept (tcpinfo.c).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/addr.h"
#include "fdtable.h"
#include "common/real.h"
#include "stats.h"
#include "tcpinfo.h"
#include "tcptrack.h"

struct tcp_track {
	unsigned conn_id;
	const char *role;
	char peer[64];			/* a closed socket no longer knows it */
	struct timespec t_start;
	dev_t dev;			/* which socket: dup2() may replace the fd */
	ino_t ino;
};

static struct tcp_track *track_of(void *entry)
{
	return (struct tcp_track *)((uintptr_t)entry & ~(uintptr_t)1);
}

void tcp_track_install(int fd, const char *role, unsigned conn_id,
		       const struct sockaddr *peer)
{
	struct tcp_track *t = calloc(1, sizeof(*t));
	struct stat st;
	void *old;

	if (!t)
		return;
	t->conn_id = conn_id;
	t->role = role;
	addr_format(peer, t->peer, sizeof(t->peer));
	clock_gettime(CLOCK_MONOTONIC, &t->t_start);
	if (fstat(fd, &st) == 0) {
		t->dev = st.st_dev;
		t->ino = st.st_ino;
	}
	/* A plain socket: nothing of migrdma's can be at fd but a stale track. */
	old = fdtable_set(fd, (void *)((uintptr_t)t | 1));
	if (old && tcp_track_is(old))
		tcp_track_forget(old);
}

void tcp_track_forget(void *entry)
{
	free(track_of(entry));
}

void tcp_track_closed(int fd, void *entry)
{
	struct tcp_track *t = track_of(entry);
	struct sockaddr_storage ss;
	struct conn_stats s;
	socklen_t len;
	struct stat st;
	bool reset;

	memset(&s, 0, sizeof(s));
	s.conn_id = t->conn_id;
	s.role = t->role;
	s.transport = "tcp";
	s.duration_s = stats_seconds_since(&t->t_start);
	s.close_reason = "close";
	memcpy(s.peer, t->peer, sizeof(s.peer));
	if (fstat(fd, &st) || st.st_dev != t->dev || st.st_ino != t->ino) {
		s.close_reason = "replaced";	/* dup2() over it: the socket is gone */
	} else {
		len = sizeof(ss);
		if (REAL(getsockname)(fd, (struct sockaddr *)&ss, &len) == 0)
			addr_format(&ss, s.local, sizeof(s.local));
		if (tcpinfo_bytes(fd, &s.bytes_out, &s.bytes_in, &reset) == 0 && reset)
			s.close_reason = "reset";
	}
	if (!s.local[0])
		snprintf(s.local, sizeof(s.local), "?");
	stats_report_closed(&s);
	free(t);
}
