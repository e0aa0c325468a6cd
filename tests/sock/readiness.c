// SPDX-License-Identifier: MIT
/*
 * Readiness cases: the server learns about data only through one readiness
 * mechanism (poll, ppoll, select, epoll, io_uring POLL_ADD) on a nonblocking
 * socket, never through a blocking read.  This is how event loops (QEMU's
 * main loop, glib) see a socket, and the library has to drive the real
 * socket's readiness exactly as kernel TCP would:
 *   - writable on a fresh connection, and again after a full window drains;
 *   - readable only when data is queued (idle = not ready), level-triggered
 *     while data remains, a new edge for new data under EPOLLET;
 *   - readable plus read() == 0 (and POLLRDHUP) once the peer shut down.
 *
 * Connection 0 carries the data; connection 1 is a side channel used while
 * connection 0's window is deliberately full.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sockcheck.h"

#if defined(SOCKCHECK_HAVE_LIBURING) && defined(__has_include)
#if __has_include(<liburing.h>)
#include <liburing.h>
#define HAVE_URING 1
#endif
#endif

enum wkind { W_POLL, W_PPOLL, W_SELECT, W_EPOLL, W_URING };

static const char *const wnames[] = {
	"poll", "ppoll", "select", "epoll", "io_uring"
};

struct waiter {
	enum wkind kind;
	int fd;
	int epfd;
	uint32_t ep_cur;
	bool ep_added;
#ifdef HAVE_URING
	struct io_uring ring;
	uint64_t ud;
#endif
};

#define RD_EVENTS (POLLIN | POLLRDHUP)
#define ROUND_BUF (256 * 1024)
#define FILL_TAIL 1000

static void waiter_init(struct waiter *w, enum wkind kind, int fd)
{
	memset(w, 0, sizeof(*w));
	w->kind = kind;
	w->fd = fd;
	w->epfd = -1;
	if (kind == W_EPOLL) {
		w->epfd = epoll_create1(EPOLL_CLOEXEC);
		if (w->epfd < 0)
			sc_fail_errno("epoll_create1");
	}
#ifdef HAVE_URING
	if (kind == W_URING) {
		int r = io_uring_queue_init(8, &w->ring, 0);

		if (r < 0) {
			errno = -r;
			sc_fail_errno("io_uring_queue_init");
		}
	}
#endif
}

static void waiter_exit(struct waiter *w)
{
	if (w->epfd >= 0)
		close(w->epfd);
#ifdef HAVE_URING
	if (w->kind == W_URING)
		io_uring_queue_exit(&w->ring);
#endif
}

static short wait_poll(struct waiter *w, short events, int timeout_ms)
{
	struct pollfd pfd = { .fd = w->fd, .events = events };
	struct timespec ts = { .tv_sec = timeout_ms / 1000,
			       .tv_nsec = (timeout_ms % 1000) * 1000000L };
	sigset_t mask;
	int r;

	sigemptyset(&mask);
	do {
		if (w->kind == W_PPOLL)
			r = ppoll(&pfd, 1, &ts, &mask);
		else
			r = poll(&pfd, 1, timeout_ms);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		sc_fail_errno("%s", wnames[w->kind]);
	return r ? pfd.revents : 0;
}

static short wait_select(struct waiter *w, short events, int timeout_ms)
{
	struct timeval tv = { .tv_sec = timeout_ms / 1000,
			      .tv_usec = (timeout_ms % 1000) * 1000 };
	fd_set rd, wr;
	short rev = 0;
	int r;

	if (w->fd >= FD_SETSIZE)
		sc_fail("fd %d too big for select", w->fd);
	do {
		FD_ZERO(&rd);
		FD_ZERO(&wr);
		if (events & POLLIN)
			FD_SET(w->fd, &rd);
		if (events & POLLOUT)
			FD_SET(w->fd, &wr);
		r = select(w->fd + 1, &rd, &wr, NULL, &tv);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		sc_fail_errno("select");
	if (FD_ISSET(w->fd, &rd))
		rev |= POLLIN;
	if (FD_ISSET(w->fd, &wr))
		rev |= POLLOUT;
	return rev;
}

/*
 * The interest set is changed only when the wanted events differ, so that
 * consecutive edge-triggered waits are not re-armed by EPOLL_CTL_MOD (which
 * would report a still-ready fd again and hide a missing edge).
 */
static short wait_epoll(struct waiter *w, short events, int timeout_ms, bool et)
{
	uint32_t want = (events & POLLIN ? EPOLLIN : 0) |
			(events & POLLOUT ? EPOLLOUT : 0) |
			(events & POLLRDHUP ? EPOLLRDHUP : 0) |
			(et ? EPOLLET : 0);
	struct epoll_event ev = { .events = want, .data.fd = w->fd };
	struct epoll_event out[4];
	short rev = 0;
	int r, i;

	if (!w->ep_added || want != w->ep_cur) {
		if (epoll_ctl(w->epfd, w->ep_added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD,
			      w->fd, &ev))
			sc_fail_errno("epoll_ctl");
		w->ep_added = true;
		w->ep_cur = want;
	}
	do {
		r = epoll_wait(w->epfd, out, 4, timeout_ms);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		sc_fail_errno("epoll_wait");
	if (r > 1)
		sc_fail("epoll_wait returned %d events for one fd", r);
	for (i = 0; i < r; i++) {
		if (out[i].data.fd != w->fd)
			sc_fail("epoll_wait: event for unknown fd %d",
				out[i].data.fd);
		rev |= (short)((out[i].events & EPOLLIN ? POLLIN : 0) |
			       (out[i].events & EPOLLOUT ? POLLOUT : 0) |
			       (out[i].events & EPOLLRDHUP ? POLLRDHUP : 0) |
			       (out[i].events & EPOLLHUP ? POLLHUP : 0) |
			       (out[i].events & EPOLLERR ? POLLERR : 0));
	}
	return rev;
}

#ifdef HAVE_URING
static short wait_uring(struct waiter *w, short events, int timeout_ms)
{
	struct __kernel_timespec ts = {
		.tv_sec = timeout_ms / 1000,
		.tv_nsec = (timeout_ms % 1000) * 1000000L,
	};
	uint64_t poll_ud = ++w->ud, rm_ud = 0;
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	short rev = 0;
	bool poll_done = false;
	int r;

	sqe = io_uring_get_sqe(&w->ring);
	if (!sqe)
		sc_fail("io_uring: no sqe");
	io_uring_prep_poll_add(sqe, w->fd, (unsigned)events);
	io_uring_sqe_set_data64(sqe, poll_ud);
	r = io_uring_submit(&w->ring);
	if (r != 1) {
		errno = r < 0 ? -r : EIO;
		sc_fail_errno("io_uring_submit(POLL_ADD)");
	}
	r = io_uring_wait_cqe_timeout(&w->ring, &cqe, &ts);
	if (r == 0) {
		if (cqe->user_data != poll_ud)
			sc_fail("io_uring: unexpected cqe %llu",
				(unsigned long long)cqe->user_data);
		if (cqe->res < 0) {
			errno = -cqe->res;
			sc_fail_errno("IORING_OP_POLL_ADD");
		}
		rev = (short)cqe->res;
		io_uring_cqe_seen(&w->ring, cqe);
		return rev;
	}
	if (r != -ETIME) {
		errno = -r;
		sc_fail_errno("io_uring_wait_cqe_timeout");
	}

	/* Timed out: cancel the poll and reap both completions. */
	sqe = io_uring_get_sqe(&w->ring);
	if (!sqe)
		sc_fail("io_uring: no sqe");
	/* By hand: io_uring_prep_poll_remove()'s signature changed. */
	io_uring_prep_rw(IORING_OP_POLL_REMOVE, sqe, -1, NULL, 0, 0);
	sqe->addr = poll_ud;
	rm_ud = ++w->ud;
	io_uring_sqe_set_data64(sqe, rm_ud);
	io_uring_submit(&w->ring);
	while (!poll_done || rm_ud) {
		struct __kernel_timespec t5 = { .tv_sec = 5 };

		r = io_uring_wait_cqe_timeout(&w->ring, &cqe, &t5);
		if (r) {
			errno = -r;
			sc_fail_errno("io_uring: reaping cancelled poll");
		}
		if (cqe->user_data == poll_ud) {
			poll_done = true;
			/* Raced with readiness: report it, it is genuine. */
			if (cqe->res > 0)
				rev = (short)cqe->res;
		} else if (cqe->user_data == rm_ud) {
			rm_ud = 0;
		}
		io_uring_cqe_seen(&w->ring, cqe);
	}
	return rev;
}
#endif

/* Returns the POLL* events seen on the fd, 0 on timeout. */
static short waiter_wait(struct waiter *w, short events, int timeout_ms, bool et)
{
	switch (w->kind) {
	case W_POLL:
	case W_PPOLL:
		return wait_poll(w, events, timeout_ms);
	case W_SELECT:
		return wait_select(w, events, timeout_ms);
	case W_EPOLL:
		return wait_epoll(w, events, timeout_ms, et);
	case W_URING:
#ifdef HAVE_URING
		return wait_uring(w, events, timeout_ms);
#endif
		break;
	}
	sc_fail("no waiter");
}

/* Sizes of the data rounds; the second half runs edge-triggered on epoll. */
static uint64_t round_size(int r)
{
	static const uint64_t sizes[] = { 1, 1000, 65536, 1 << 20,
					  1, 5000, 300000, 7 };

	if (sizes[r] > 65536)
		return sc_scaled(sizes[r], 65536);
	return sizes[r];
}

#define NROUNDS 8
#define NROUNDS_LT 4

/* select cannot express POLLRDHUP; every other mechanism reports it. */
static bool has_rdhup(enum wkind k)
{
	return k != W_SELECT;
}

static void recv_round(struct waiter *w, char *buf, uint64_t seed,
		       uint64_t pos, uint64_t size, bool et, int round)
{
	int fd = w->fd, tmo = sc_timeout_ms();
	uint64_t got = 0;

	while (got < size) {
		short rev = waiter_wait(w, RD_EVENTS, tmo, et);
		bool first = true;

		if (!rev)
			sc_fail("round %d: %s reported nothing within %d ms with %llu of %llu bytes received",
				round, wnames[w->kind], tmo,
				(unsigned long long)got,
				(unsigned long long)size);
		if (!(rev & POLLIN))
			sc_fail("round %d: woke with revents 0x%x but no POLLIN",
				round, rev);
		if (rev & (POLLRDHUP | POLLHUP | POLLERR))
			sc_fail("round %d: unexpected hangup/error revents 0x%x",
				round, rev);
		/* Edge-triggered: must drain to EAGAIN before waiting again. */
		for (;;) {
			size_t want;
			ssize_t n;

			if (got == size && !et)
				break;
			want = got == size ? 1 :
			       first && !et && size - got > 1 ? 1 :
			       size - got < ROUND_BUF ? (size_t)(size - got) :
			       ROUND_BUF;
			n = read(fd, buf, want);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN) {
				if (first)
					sc_fail("round %d: %s said readable but read() gives EAGAIN",
						round, wnames[w->kind]);
				break;
			}
			if (n < 0)
				sc_fail_errno("round %d: read", round);
			if (n == 0)
				sc_fail("round %d: EOF after %llu of %llu bytes",
					round, (unsigned long long)got,
					(unsigned long long)size);
			if (got == size)
				sc_fail("round %d: %zd bytes more than sent",
					round, n);
			pat_verify(seed, pos + got, buf, (size_t)n, "round data");
			got += (uint64_t)n;
			sc_count((uint64_t)n);
			sc_progress();
			if (first && !et && got < size) {
				char c;

				/* Level-triggered: still ready while data is queued. */
				if (recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 1 &&
				    !(waiter_wait(w, RD_EVENTS, 0, false) & POLLIN))
					sc_fail("round %d: %s not readable although data is queued",
						round, wnames[w->kind]);
			}
			first = false;
		}
	}
	/* The client now waits for our token: nothing is, or may be, ready. */
	if (waiter_wait(w, RD_EVENTS, 0, et))
		sc_fail("round %d: %s reports readiness after all %llu bytes were read",
			round, wnames[w->kind], (unsigned long long)size);
}

static int readiness_server(struct sc_ctx *ctx, enum wkind kind)
{
	uint64_t pos = 0, fill = 0, tail_sent = 0;
	char *buf = sc_xmalloc(ROUND_BUF);
	struct waiter w;
	bool early;
	short rev;
	int fds[2], a, r, n;

	sc_step("accept");
	sc_accept_ids(ctx->lfd, fds, 2);
	a = fds[0];
	sc_set_nonblock(a, true);
	waiter_init(&w, kind, a);

	sc_step("fresh connection is writable");
	rev = waiter_wait(&w, POLLOUT, 0, false);
	if (!(rev & POLLOUT))
		sc_fail("%s: fresh connection not writable (revents 0x%x)",
			wnames[kind], rev);

	sc_step("idle connection is not readable");
	rev = waiter_wait(&w, RD_EVENTS, 0, false);
	if (rev)
		sc_fail("%s: idle connection reports revents 0x%x at once",
			wnames[kind], rev);
	rev = waiter_wait(&w, RD_EVENTS, 50, false);
	if (rev)
		sc_fail("%s: idle connection reports revents 0x%x within 50 ms",
			wnames[kind], rev);

	for (r = 0; r < NROUNDS; r++) {
		bool et = kind == W_EPOLL && r >= NROUNDS_LT;

		sc_step(et ? "edge-triggered data round" : "data round");
		sc_send_token(a, 'G');
		recv_round(&w, buf, sc_seed(1), pos, round_size(r), et, r);
		pos += round_size(r);
	}

	sc_step("fill the send window");
	for (;;) {
		ssize_t k;

		pat_fill(sc_seed(3), fill, buf, 65536);
		k = write(a, buf, 65536);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN)
			break;
		if (k <= 0)
			sc_fail_errno("write while filling the window");
		fill += (uint64_t)k;
		sc_count((uint64_t)k);
		sc_progress();
		if (fill > (1ull << 30))
			sc_fail("wrote 1 GiB without EAGAIN on a peer that does not read");
	}
	early = waiter_wait(&w, POLLOUT, 0, false) & POLLOUT;
	sc_send_u64(fds[1], fill);

	sc_step("writable again after the peer drains");
	while (tail_sent < FILL_TAIL) {
		ssize_t k;

		rev = waiter_wait(&w, POLLOUT, sc_timeout_ms(), false);
		if (!(rev & POLLOUT))
			sc_fail("%s: not writable within %d ms while the peer drains (revents 0x%x)",
				wnames[kind], sc_timeout_ms(), rev);
		pat_fill(sc_seed(3), fill + tail_sent, buf,
			 FILL_TAIL - tail_sent);
		k = write(a, buf, FILL_TAIL - tail_sent);
		if (k < 0 && errno == EAGAIN)
			continue;
		if (k <= 0)
			sc_fail_errno("write after POLLOUT");
		tail_sent += (uint64_t)k;
		sc_count((uint64_t)k);
	}

	sc_step("EOF is readable");
	sc_send_token(a, 'G');
	rev = waiter_wait(&w, RD_EVENTS, sc_timeout_ms(), false);
	if (!(rev & POLLIN))
		sc_fail("%s: no POLLIN within %d ms after the peer shut down (revents 0x%x)",
			wnames[kind], sc_timeout_ms(), rev);
	if (has_rdhup(kind) && !(rev & POLLRDHUP))
		sc_fail("%s: POLLRDHUP missing after the peer shut down (revents 0x%x)",
			wnames[kind], rev);
	for (n = 0; n < 2; n++) {
		ssize_t k = read(a, buf, 1);

		if (k < 0)
			sc_fail_errno("read at EOF #%d", n + 1);
		if (k)
			sc_fail("read at EOF #%d returned %zd", n + 1, k);
	}
	sc_info("%s: window filled with %llu bytes (writable right after EAGAIN: %s)",
		wnames[kind], (unsigned long long)fill, early ? "yes" : "no");
	waiter_exit(&w);
	close(a);
	close(fds[1]);
	free(buf);
	return 0;
}

static int readiness_client(struct sc_ctx *ctx)
{
	uint64_t pos = 0, fill;
	int a, b, r;

	sc_step("connect");
	a = sc_connect_id(ctx, 0);
	b = sc_connect_id(ctx, 1);
	if (!(sc_poll1(a, POLLOUT, 0) & POLLOUT))
		sc_fail("fresh connection not writable");
	for (r = 0; r < NROUNDS; r++) {
		sc_step("data round");
		sc_recv_token(a, 'G', "round token");
		sc_send_stream(a, sc_seed(1), pos, round_size(r), "round data");
		pos += round_size(r);
	}
	sc_step("drain the full window");
	fill = sc_recv_u64(b, "fill count");
	sc_recv_stream(a, sc_seed(3), 0, fill + FILL_TAIL, "window data");
	sc_step("shut down");
	sc_recv_token(a, 'G', "EOF token");
	if (shutdown(a, SHUT_WR))
		sc_fail_errno("shutdown(SHUT_WR)");
	sc_expect_eof(a, "after shutdown");
	close(a);
	close(b);
	return 0;
}

#define READINESS(name, kind)					\
	int readiness_##name##_server(struct sc_ctx *ctx)	\
	{							\
		return readiness_server(ctx, kind);		\
	}							\
	int readiness_##name##_client(struct sc_ctx *ctx)	\
	{							\
		return readiness_client(ctx);			\
	}

READINESS(poll, W_POLL)
READINESS(ppoll, W_PPOLL)
READINESS(select, W_SELECT)
READINESS(epoll, W_EPOLL)

/*
 * Both halves decide to skip the same way (build, then kernel), so neither
 * waits for a peer that has already given up.
 */
static void uring_check(void)
{
#ifdef HAVE_URING
	struct io_uring ring;
	int r = io_uring_queue_init(8, &ring, 0);

	if (r < 0)
		sc_skip("io_uring unavailable: io_uring_queue_init: %s",
			strerror(-r));
	io_uring_queue_exit(&ring);
#else
	sc_skip("built without liburing (install liburing-dev)");
#endif
}

int readiness_io_uring_server(struct sc_ctx *ctx)
{
	uring_check();
	return readiness_server(ctx, W_URING);
}

int readiness_io_uring_client(struct sc_ctx *ctx)
{
	uring_check();
	return readiness_client(ctx);
}
