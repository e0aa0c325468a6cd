/* SPDX-License-Identifier: MIT */
/*
 * Per-connection statistics, appended as one JSON object per line to
 * MIGRDMA_STATS when a diverted connection closes.
 */
#ifndef MIGRDMA_SHIM_STATS_H
#define MIGRDMA_SHIM_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct conn_stats {
	unsigned conn_id;
	const char *role;		/* "client" or "server" */
	const char *transport;		/* "rdma" or "tcp" */
	char local[64];			/* "ADDR:PORT" or "[ADDR6]:PORT" */
	char peer[64];
	double duration_s;
	uint64_t bytes_out;
	uint64_t bytes_in;
	uint64_t bytes_out_zerocopy;	/* RDMA-written from the program's memory */
	uint64_t bytes_out_send;	/* carried inside SEND messages */
	uint64_t bytes_backlogged;	/* written while the window was full (MIGRDMA_BACKLOG) */
	uint64_t registrations;		/* memory registrations made for this connection */
	uint64_t registered_bytes_peak;	/* peak bytes pinned by the process while it ran */
	uint64_t writes;		/* write-family calls */
	uint64_t reads;			/* read-family calls */
	uint64_t msgs_out;		/* RDMA DATA messages sent (the batching at work) */
	uint64_t msgs_in;		/* ... and received */
	const char *close_reason;	/* "close", "eof", "reset", "timeout", ... */
};

/* Format s as one JSON line (with '\n') into buf. Returns length, or -1 if it did not fit. */
int stats_format_json(const struct conn_stats *s, char *buf, size_t buflen);

/*
 * Format s as the one-line summary logged when a connection closes:
 * "closed: transport=rdma role=client ... close_reason=eof", key=value with
 * the JSON record's field names.  Returns length, or -1 if it did not fit.
 */
int stats_format_line(const struct conn_stats *s, char *buf, size_t buflen);

/* Append s to path with one O_APPEND write. Returns 0 or -1 (errno set). */
int stats_append(const char *path, const struct conn_stats *s);

/* Seconds of CLOCK_MONOTONIC since t0. */
double stats_seconds_since(const struct timespec *t0);

/*
 * The proof a connection leaves when it closes: one line at the default
 * (notice) level, and a MIGRDMA_STATS record when that is set.
 */
void stats_report_closed(const struct conn_stats *s);

#endif
