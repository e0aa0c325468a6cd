/* SPDX-License-Identifier: MIT */
/*
 * Live statistics export, read by `migrdma stat`.
 *
 * A process that diverts connections maps /dev/shm/migrdma.<pid> and the
 * service thread refreshes it about ten times a second: a copy of each
 * connection's counters, no locks shared with the reader.  Readers retry
 * while `seq` is odd or changes under them.  MIGRDMA_LIVE=0 turns it off.
 */
#ifndef MIGRDMA_SHIM_LIVE_H
#define MIGRDMA_SHIM_LIVE_H

#include <stdint.h>

#define LIVE_MAGIC "MIGRDMA1"
#define LIVE_VERSION 1
#define LIVE_MAX_CONNS 64
#define LIVE_DIR "/dev/shm"
#define LIVE_PREFIX "migrdma."

struct live_conn {
	uint32_t id;
	uint32_t is_server;
	char state[16];
	char local[64];
	char peer[64];
	uint64_t bytes_out;
	uint64_t bytes_in;
	uint64_t bytes_out_zerocopy;
	uint64_t bytes_out_send;
	uint64_t registrations;
	uint64_t age_ms;
};

struct live_file {
	char magic[8];
	uint32_t version;
	uint32_t nconns;
	uint64_t pid;
	uint64_t seq;			/* odd while the writer is updating */
	uint64_t updated_ms;		/* CLOCK_MONOTONIC milliseconds */
	uint64_t pinned_now;
	uint64_t pinned_peak;
	struct live_conn conns[LIVE_MAX_CONNS];
};

/* Start exporting (once the transport runs).  Failures only log. */
void live_start(void);

/* Remove the export at exit (only in the process that created it). */
void live_stop(void);

#endif
