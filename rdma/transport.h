/* SPDX-License-Identifier: MIT */
/*
 * The RDMA stream transport: what rdma/ offers the rest of migrdma.
 *
 * A connection carries one reliable byte stream each way over an RC queue
 * pair set up with rdma_cm.  Large page-aligned segments are RDMA-written
 * from the caller's memory into the peer's receive ring; everything else
 * rides inline in SEND messages (see wire.h).
 *
 * Readiness is pushed to the owner through a notify callback, called with
 * the connection's lock held whenever the set of ready events may have
 * changed; the owner mirrors it on a real kernel fd.  The transport knows
 * nothing about file descriptors the program holds.
 *
 * All functions return 0 / a byte count on success and a negative errno
 * on failure.
 */
#ifndef MIGRDMA_RDMA_TRANSPORT_H
#define MIGRDMA_RDMA_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

struct rt_conn;
struct rt_listener;

/* Which zero-copy writes may return before the device has read the buffer. */
enum rt_defer {
	RT_DEFER_AUTO,			/* memory the program marked MADV_DONTFORK (QEMU's guest RAM) */
	RT_DEFER_OFF,			/* none: every write waits for its zero-copy bytes */
	RT_DEFER_ALL,			/* all: the program promises not to reuse buffers it sent */
};

struct rt_options {
	size_t zcopy_min;		/* smallest page-aligned segment sent zero-copy */
	size_t chunk;			/* registration granularity */
	size_t pin_limit;		/* most bytes registered at once, per connection */
	size_t ring_size;		/* our receive ring, power of two */
	size_t backlog;			/* bytes a write may hand over beyond the window; 0: none */
	unsigned busy_poll_us;		/* spin this long before sleeping */
	unsigned connect_timeout_ms;
	unsigned keepalive_s;		/* declare a silent peer dead after this */
	/* How long a queue pair waits for an ACK before it resends: 4.096 us << N; 0: rdma_cm's. */
	unsigned ack_timeout;
	const void *secret;		/* MIGRDMA_SECRET, NULL for none */
	size_t secret_len;
	bool pin_all;			/* register a buffer's whole mapping on first use */
	enum rt_defer defer;
	/* May a peer at this address connect to our listeners?  NULL: anyone. */
	bool (*allow_peer)(const struct sockaddr *peer);
};

/* Readiness bits passed to the notify callback. */
#define RT_EV_READABLE	0x1	/* bytes, EOF or an error are there to read */
#define RT_EV_WRITABLE	0x2	/* a write would make progress (or fail at once) */
#define RT_EV_HUP	0x4	/* the connection is finished or broken */
#define RT_EV_NEWDATA	0x8	/* new bytes arrived (an edge for edge-triggered waiters) */
#define RT_EV_RDHUP	0x10	/* no more bytes will arrive (peer's FIN, or our SHUT_RD) */
#define RT_EV_ERR	0x20	/* the connection failed (with RT_EV_HUP) */

typedef void (*rt_notify_fn)(void *arg, unsigned events);

/* Per-connection counters, also used for MIGRDMA_STATS. */
struct rt_conn_stats {
	uint64_t bytes_out;
	uint64_t bytes_in;
	uint64_t bytes_out_zerocopy;
	uint64_t bytes_out_send;
	uint64_t bytes_backlogged;	/* of bytes_out, handed over beyond the window */
	uint64_t registrations;
	uint64_t registered_bytes_peak;
	uint64_t msgs_out;
	uint64_t msgs_in;
	uint64_t writes;
	uint64_t reads;
};

/* Start the service thread and open the event channel (idempotent). */
int rt_init(const struct rt_options *opts);

/*
 * Connect to dst (AF_INET/AF_INET6).  src, if non-NULL, is a local address
 * to bind first.  With nonblock, returns -EINPROGRESS and completes in the
 * background: watch for RT_EV_WRITABLE, then call rt_conn_error().
 * The errno on failure says why: ECONNREFUSED (nobody listens, or the peer
 * refused), EHOSTUNREACH/ENETUNREACH, ENODEV (no RDMA device for the route),
 * ETIMEDOUT.  *out is set in every case but an immediate failure.
 */
int rt_connect(const struct sockaddr *dst, socklen_t dstlen,
	       const struct sockaddr *src, socklen_t srclen, bool nonblock,
	       rt_notify_fn notify, void *arg, struct rt_conn **out);

/* Listen on addr (port must be non-zero). */
int rt_listen(const struct sockaddr *addr, socklen_t addrlen, int backlog,
	      rt_notify_fn notify, void *arg, struct rt_listener **out);

/* Take an established connection; -EAGAIN if none is pending and nonblock. */
int rt_accept(struct rt_listener *l, bool nonblock, rt_notify_fn notify,
	      void *arg, struct rt_conn **out);

/* Wake every waiter of the listener and make accept fail with EINVAL. */
void rt_listener_shutdown(struct rt_listener *l);
void rt_listener_close(struct rt_listener *l);
/* Swap the listener's notify target (after the owner re-homes it). */
void rt_listener_set_notify(struct rt_listener *l, rt_notify_fn notify, void *arg);

/*
 * Something outside the transport (a TCP fallback listener) has
 * connections pending: report the listener readable while it is so.
 */
void rt_listener_set_extra_ready(struct rt_listener *l, bool ready);

struct rt_watch;

/*
 * Call cb(arg) from the service thread once fd is readable.  One-shot:
 * call rt_watch_rearm() after consuming what was there.  After
 * rt_watch_cancel() returns, cb is not running and never runs again.
 */
struct rt_watch *rt_watch_fd(int fd, void (*cb)(void *arg), void *arg);
void rt_watch_rearm(struct rt_watch *w);
void rt_watch_cancel(struct rt_watch *w);

#define RT_SEND_MORE	0x1	/* MSG_MORE: more follows at once, hold this back */

/*
 * Write the stream bytes in iov.  Page-aligned segments of at least
 * zcopy_min bytes are written zero-copy, the rest is copied.  The call
 * returns once the caller may reuse every buffer: at once for copied
 * bytes and for memory rt_options.defer covers, else when the device has
 * read it.  A write of bulk data may be held back briefly so that the
 * next one joins the same message; a smaller write, a read, MSG_MORE's
 * absence on a small write, close and shutdown all send what is held.
 * timeout_ms: 0 for non-blocking, -1 to wait as long as it takes, else
 * the most to wait for window space (as SO_SNDTIMEO).  Returns bytes
 * written (possibly fewer than asked when the window filled), or -EAGAIN,
 * -EPIPE, -ECONNRESET, -ETIMEDOUT, -ENOTCONN.
 */
ssize_t rt_send(struct rt_conn *c, const struct iovec *iov, int iovcnt, int flags,
		int timeout_ms);

/* TCP_NODELAY on the connection: never hold a write back. */
void rt_conn_set_nodelay(struct rt_conn *c, bool on);

#define RT_RECV_PEEK	0x1
#define RT_RECV_WAITALL	0x2
#define RT_RECV_TRUNC	0x4	/* discard what is read (TCP's MSG_TRUNC): iov_base never touched */

/*
 * Read stream bytes into iov: 0 at EOF; -EAGAIN when none came within
 * timeout_ms (0: don't wait, -1: wait as long as it takes, as SO_RCVTIMEO).
 */
ssize_t rt_recv(struct rt_conn *c, const struct iovec *iov, int iovcnt, int flags,
		int timeout_ms);

/* SHUT_RD / SHUT_WR / SHUT_RDWR: wakes every waiter at once. */
int rt_shutdown(struct rt_conn *c, int how);

/* Pending error for SO_ERROR (cleared by the call), 0 if none. */
int rt_conn_error(struct rt_conn *c);

/* Is the connection established (connect finished successfully)? */
bool rt_conn_established(struct rt_conn *c);

/* Bytes readable now without blocking (for FIONREAD / SIOCINQ). */
size_t rt_conn_readable_bytes(struct rt_conn *c);

int rt_conn_local_addr(struct rt_conn *c, struct sockaddr_storage *ss);
int rt_conn_peer_addr(struct rt_conn *c, struct sockaddr_storage *ss);
unsigned rt_conn_id(struct rt_conn *c);
/*
 * A connection id from the same sequence, for a connection the transport
 * never carries (no RDMA, or a TCP fallback), so its log lines and
 * statistics still name it.  Works before rt_init().
 */
unsigned rt_reserve_conn_id(void);
void rt_conn_get_stats(struct rt_conn *c, struct rt_conn_stats *out);
/* Why the connection ended ("close", "eof", "reset", "timeout", ...). */
const char *rt_conn_end_reason(struct rt_conn *c);

/* A snapshot of one live connection, for the live-statistics export. */
struct rt_conn_info {
	unsigned id;
	bool is_server;
	const char *state;		/* "connecting", "established", "closing", ... */
	struct sockaddr_storage local;
	struct sockaddr_storage peer;
	struct rt_conn_stats stats;
	uint64_t age_ms;
};

/* Fill up to max snapshots of the connections alive now; returns how many. */
unsigned rt_snapshot(struct rt_conn_info *out, unsigned max);

/* Call fn(arg) from the service thread about every 100 ms (NULL to stop). */
void rt_set_tick(void (*fn)(void *arg), void *arg);

/*
 * The owner is done with the connection: send FIN after the bytes already
 * written, let them drain (bounded), then tear down in the background.
 */
void rt_conn_close(struct rt_conn *c);

/* The program unmapped or discarded memory: drop stale registrations. */
void rt_invalidate_memory(const void *addr, size_t len);
/* Is any program memory registered?  Cheap; for hooks with costly work. */
bool rt_memory_registered(void);

/* The program gave madvise() advice (MADV_DONTFORK matters, see rt_defer). */
void rt_note_advice(const void *addr, size_t len, int advice);
/* The program unmapped or moved memory: it no longer carries its advice. */
void rt_forget_memory(const void *addr, size_t len);

/* Process-wide pinned bytes now and at peak. */
void rt_pinned_bytes(size_t *now, size_t *peak);

/*
 * Call fn for every file descriptor the transport and its libraries hold,
 * so the owner can protect them from the program's close loops.
 */
void rt_for_each_internal_fd(void (*fn)(int fd, void *arg), void *arg);

/*
 * The process is exiting: like the kernel closing TCP sockets at exit,
 * end every stream with a FIN and give queued sends up to timeout_ms to
 * reach the peer before the queue pairs die with the process.
 */
void rt_quiesce_at_exit(unsigned timeout_ms);

/*
 * fork: prepare takes the transport's process-wide locks (after the
 * owner's, before nothing else of ours); parent releases them; child
 * releases them after forgetting the parent's resources without touching
 * them.
 */
void rt_atfork_prepare(void);
void rt_atfork_parent(void);
void rt_atfork_child(void);

#endif
