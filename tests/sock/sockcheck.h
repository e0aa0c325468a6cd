/* SPDX-License-Identifier: MIT */
/*
 * sockcheck: socket-semantics test driver.
 *
 * Every case has a server half and a client half that talk over one or more
 * TCP connections using only the BSD socket API.  The programs must pass
 * against plain kernel TCP; under LD_PRELOAD=libmigrdma.so they must pass
 * unchanged, which is the whole point: any difference the library makes
 * visible to an application is a bug.
 *
 * Halves coordinate through the connections themselves (one-byte tokens,
 * 64-bit counts), never through sleeps, and every blocking step is bounded
 * by a progress watchdog so a bug shows up as a FAIL line, not a hang.
 */
#ifndef SOCKCHECK_H
#define SOCKCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

#define SC_EXIT_SKIP 77

struct sc_ctx {
	bool server;
	bool local;			/* both halves in one run of sockcheck */
	int lfd;			/* server: listener on the main port */
	struct sockaddr_in addr;	/* client: server address, main port;
					 * server: the listener's bound address */
	uint16_t port;			/* main port, host order */
};

typedef int (*sc_half_fn)(struct sc_ctx *ctx);

/* Case flags, printed by `sockcheck info CASE` for run-pair.sh. */
enum {
	/* Makes connections to ports other than the main one (an ephemeral
	 * listener or a closed port), which a single-port MIGRDMA_TARGETS
	 * rule leaves on kernel TCP. */
	SC_SIDE_TCP = 1u << 0,
};

struct sc_case {
	const char *name;
	sc_half_fn server;
	sc_half_fn client;
	unsigned flags;
	const char *desc;
};

#define SC_CASE(name, flags, desc)				\
	int name##_server(struct sc_ctx *ctx);			\
	int name##_client(struct sc_ctx *ctx);
#include "cases.def"
#undef SC_CASE

/* ---- reporting (common.c) ---- */

void sc_set_case(const char *name, const char *role);
const char *sc_case_name(void);
/* Prints "FAIL case=NAME: ROLE: msg" and exits 1. */
_Noreturn void sc_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Same, with " (strerror(errno))" appended. */
_Noreturn void sc_fail_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "SKIP case=NAME: ROLE: msg" and exits 77. */
_Noreturn void sc_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sc_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Label the current step; the watchdog names it if progress stops. */
void sc_step(const char *what);
/* Re-arm the no-progress watchdog (called by every I/O helper). */
void sc_progress(void);
void sc_watchdog_init(void);
/* pid the watchdog and sc_fail() kill too (local mode's server child). */
void sc_set_child(pid_t pid);

void sc_count(uint64_t n);
uint64_t sc_bytes(void);

/* ---- knobs ---- */

double sc_scale(void);
/* base * SOCKCHECK_SCALE, at least min. */
uint64_t sc_scaled(uint64_t base, uint64_t min);
/* Bound for one blocking step, ms (SOCKCHECK_TIMEOUT seconds, default 30). */
int sc_timeout_ms(void);
uint64_t sc_now_ns(void);
static inline double sc_since_s(uint64_t t0)
{
	return (double)(sc_now_ns() - t0) / 1e9;
}

void *sc_xmalloc(size_t len);
void *sc_alloc_pages(size_t len);
void sc_free_pages(void *p, size_t len);

/* ---- deterministic data ---- */

/* Per-case, per-stream seed, identical in both halves. */
uint64_t sc_seed(unsigned stream);
uint64_t sc_mix64(uint64_t x);
/* Byte pos of stream seed is a pure function of (seed, pos). */
void pat_fill(uint64_t seed, uint64_t pos, void *buf, size_t len);
/* Offset of the first byte that differs from the stream, or -1. */
ssize_t pat_mismatch(uint64_t seed, uint64_t pos, const void *buf, size_t len);
/* sc_fail()s with position and byte values on a mismatch. */
void pat_verify(uint64_t seed, uint64_t pos, const void *buf, size_t len,
		const char *what);

/* ---- socket helpers: all bounded, all fail the case on error ---- */

int sc_listen_any(uint16_t port);
/* Listener on the same address as ctx's main one but another port (0 = any). */
int sc_listen_aux(const struct sc_ctx *ctx, uint16_t port, bool do_listen);
uint16_t sc_local_port(int fd);
int sc_accept(int lfd);
/* Connect to the server, retrying ECONNREFUSED for SOCKCHECK_CONNECT_TIMEOUT. */
int sc_connect(const struct sc_ctx *ctx);
int sc_connect_port(const struct sc_ctx *ctx, uint16_t port);
/* Connect and send a one-byte connection id. */
int sc_connect_id(const struct sc_ctx *ctx, uint8_t id);
/* Accept n connections and order them by their id byte (0..n-1). */
void sc_accept_ids(int lfd, int *fds, int n);

/* poll() one fd; returns revents, 0 on timeout. */
short sc_poll1(int fd, short events, int timeout_ms);
void sc_set_nonblock(int fd, bool on);

void sc_write_all(int fd, const void *buf, size_t len, const char *what);
void sc_read_exact(int fd, void *buf, size_t len, const char *what);
/* Next read returns 0. */
void sc_expect_eof(int fd, const char *what);
void sc_send_stream(int fd, uint64_t seed, uint64_t pos, uint64_t len,
		    const char *what);
void sc_recv_stream(int fd, uint64_t seed, uint64_t pos, uint64_t len,
		    const char *what);
void sc_send_token(int fd, char tok);
void sc_recv_token(int fd, char tok, const char *what);
void sc_send_u64(int fd, uint64_t v);
uint64_t sc_recv_u64(int fd, const char *what);

/* Wait until thread tid sleeps in the kernel (i.e. is blocked in a call). */
void sc_wait_blocked(pid_t tid, const char *what);
/* Does run-pair.sh expect RDMA to carry this run (SOCKCHECK_EXPECT=rdma)? */
bool sc_expect_rdma(void);
/* Has this process a thread named comm (/proc/self/task/N/comm)? */
bool sc_has_thread(const char *comm);

#endif
