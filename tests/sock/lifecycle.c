// SPDX-License-Identifier: MIT
/*
 * Connection lifetime cases: eof, late_accept, peer_close, shutdown_wakes, dup,
 * close_range.  These are the paths where a transport that replaces TCP
 * most easily diverges: who sees EOF when, which error a dead peer gives,
 * whether a shutdown() from another thread unblocks a stuck call (QEMU's
 * migration cancel and yank rely on it), and when the last fd referring to
 * a connection is really gone.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sockcheck.h"

static pid_t my_tid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* ------------------------------------------------------------------ */
/* eof                                                                 */
/* ------------------------------------------------------------------ */

static uint64_t eof_k(void)
{
	return sc_scaled(1 << 20, 4096) + 17;
}

static uint64_t eof_reply(void)
{
	return sc_scaled(256 * 1024, 1024) + 5;
}

static void expect_hup(int fd, const char *what)
{
	short rev = sc_poll1(fd, POLLIN | POLLOUT | POLLRDHUP, 0);

	if ((rev & (POLLIN | POLLRDHUP | POLLHUP)) !=
	    (POLLIN | POLLRDHUP | POLLHUP))
		sc_fail("%s: poll revents 0x%x, want POLLIN|POLLRDHUP|POLLHUP",
			what, rev);
}

/* A read hang-up, not a full one: readable (EOF), still writable. */
static void expect_rdhup_only(int fd, const char *what)
{
	short rev = sc_poll1(fd, POLLIN | POLLOUT | POLLRDHUP, 0);

	if ((rev & (POLLIN | POLLOUT | POLLRDHUP | POLLHUP)) !=
	    (POLLIN | POLLOUT | POLLRDHUP))
		sc_fail("%s: revents 0x%x, want POLLIN|POLLOUT|POLLRDHUP", what, rev);
}

int eof_client(struct sc_ctx *ctx)
{
	char c = 'x';
	int fd;

	sc_step("send then shut down");
	fd = sc_connect(ctx);
	sc_send_stream(fd, sc_seed(1), 0, eof_k(), "request");
	if (shutdown(fd, SHUT_WR))
		sc_fail_errno("shutdown(SHUT_WR)");
	errno = 0;
	if (send(fd, &c, 1, MSG_NOSIGNAL) != -1 || errno != EPIPE)
		sc_fail_errno("send after own SHUT_WR: want EPIPE");

	sc_step("read the reply on the half-closed socket");
	sc_recv_stream(fd, sc_seed(2), 0, eof_reply(), "reply");
	sc_expect_eof(fd, "after reply");
	sc_expect_eof(fd, "EOF again");
	/* Both directions are now shut: poll says hang-up. */
	expect_hup(fd, "after both directions closed");
	close(fd);
	return 0;
}

int eof_server(struct sc_ctx *ctx)
{
	int fd;

	sc_step("read until EOF");
	fd = sc_accept(ctx->lfd);
	sc_recv_stream(fd, sc_seed(1), 0, eof_k(), "request");
	sc_expect_eof(fd, "after request");
	sc_expect_eof(fd, "EOF again");
	/* EOF stays readable, and is a read hang-up, not a full one. */
	expect_rdhup_only(fd, "after peer SHUT_WR");

	sc_step("reply on the half-closed socket");
	sc_send_stream(fd, sc_seed(2), 0, eof_reply(), "reply");
	if (shutdown(fd, SHUT_WR))
		sc_fail_errno("shutdown(SHUT_WR)");
	expect_hup(fd, "after both directions closed");
	close(fd);
	return 0;
}

/* ------------------------------------------------------------------ */
/* late_accept                                                         */
/* ------------------------------------------------------------------ */

/*
 * Connections that the client opened and closed before the server got round
 * to accept(): one empty, one with a request.  Both must still be accepted,
 * in order, the empty one reading end of stream at once and the other its
 * bytes and then end of stream; nothing may be lost or reordered.
 */
#define LATE_ACCEPT_DELAY_MS 1000
#define LATE_ACCEPT_MARKER 0x1a7eacceull

static uint64_t late_k(void)
{
	return sc_scaled(256 * 1024, 4096) + 5;
}

int late_accept_server(struct sc_ctx *ctx)
{
	struct timespec ts = { LATE_ACCEPT_DELAY_MS / 1000,
			       (LATE_ACCEPT_DELAY_MS % 1000) * 1000000L };
	int empty, full, marker;

	/*
	 * The one sleep in sockcheck, on purpose: accept() late, after the
	 * client has closed its first two connections (a busy program).
	 */
	sc_step("accept late");
	nanosleep(&ts, NULL);
	sc_progress();
	empty = sc_accept(ctx->lfd);
	sc_expect_eof(empty, "connection closed before accept, nothing sent");
	close(empty);
	full = sc_accept(ctx->lfd);
	sc_recv_stream(full, sc_seed(7), 0, late_k(), "request sent before accept");
	sc_expect_eof(full, "after the request");
	close(full);
	marker = sc_accept(ctx->lfd);
	if (sc_recv_u64(marker, "marker") != LATE_ACCEPT_MARKER)
		sc_fail("third connection: wrong marker");
	sc_send_token(marker, 'k');
	sc_expect_eof(marker, "after the marker");
	close(marker);
	return 0;
}

int late_accept_client(struct sc_ctx *ctx)
{
	int fd;

	sc_step("open and close before the server accepts");
	fd = sc_connect(ctx);
	close(fd);
	fd = sc_connect(ctx);
	sc_send_stream(fd, sc_seed(7), 0, late_k(), "request");
	close(fd);
	fd = sc_connect(ctx);
	sc_send_u64(fd, LATE_ACCEPT_MARKER);
	sc_recv_token(fd, 'k', "server saw all three");
	close(fd);
	return 0;
}

/* ------------------------------------------------------------------ */
/* closed_peer                                                         */
/* ------------------------------------------------------------------ */

/*
 * The peer writes, closes and is gone, and only then does this side look:
 * the unread bytes must still be there, and poll must not say POLLHUP,
 * which programs take as "nothing more will come".
 */
int closed_peer_server(struct sc_ctx *ctx)
{
	int fd;

	sc_step("write, then close");
	fd = sc_accept(ctx->lfd);
	sc_send_stream(fd, sc_seed(1), 0, 65536, "data");
	close(fd);
	return 0;
}

int closed_peer_client(struct sc_ctx *ctx)
{
	int fd;

	sc_step("let the peer close, then poll");
	fd = sc_connect(ctx);
	/* Long enough for the peer's close to be complete on any transport. */
	nanosleep(&(struct timespec){ 2, 0 }, NULL);
	expect_rdhup_only(fd, "peer closed, bytes unread");

	sc_step("read every byte, then EOF");
	sc_recv_stream(fd, sc_seed(1), 0, 65536, "data");
	sc_expect_eof(fd, "after data");
	close(fd);
	return 0;
}

/* ------------------------------------------------------------------ */
/* peer_close                                                          */
/* ------------------------------------------------------------------ */

static volatile sig_atomic_t sigpipes;

static void count_sigpipe(int sig)
{
	(void)sig;
	sigpipes++;
}

int peer_close_server(struct sc_ctx *ctx)
{
	int fd;

	sc_step("read, then close");
	fd = sc_accept(ctx->lfd);
	sc_recv_stream(fd, sc_seed(1), 0, 65536, "data");
	/* Everything was read, so close() sends FIN, not RST. */
	close(fd);
	return 0;
}

static bool dead_peer_errno(int e)
{
	return e == EPIPE || e == ECONNRESET;
}

int peer_close_client(struct sc_ctx *ctx)
{
	uint64_t deadline;
	struct sigaction sa, old;
	char buf[1024] = { 0 };
	unsigned ok_writes = 0, i;
	int fd, first_err = 0, old_pipes;
	ssize_t n;

	sc_step("write, then wait for the peer's close");
	fd = sc_connect(ctx);
	sc_send_stream(fd, sc_seed(1), 0, 65536, "data");
	n = read(fd, buf, sizeof(buf));
	if (n > 0)
		sc_fail("read after peer close returned %zd bytes", n);
	if (n < 0 && errno != ECONNRESET)
		sc_fail_errno("read after peer close: want 0 or ECONNRESET");

	sc_step("MSG_NOSIGNAL writes to a closed peer");
	deadline = sc_now_ns() + 10ull * 1000000000;
	for (;;) {
		n = send(fd, buf, sizeof(buf), MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (!dead_peer_errno(errno))
				sc_fail_errno("send to closed peer: want EPIPE or ECONNRESET");
			first_err = errno;
			break;
		}
		ok_writes++;
		if (sc_now_ns() > deadline)
			sc_fail("send to a closed peer still succeeds after 10 s (%u writes)",
				ok_writes);
		/* Events 0: returns only on POLLERR/POLLHUP, the RST. */
		sc_poll1(fd, 0, 10);
	}

	sc_step("write() to a closed peer raises SIGPIPE");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = count_sigpipe;
	sigaction(SIGPIPE, &sa, &old);
	for (i = 0; i < 100; i++) {
		old_pipes = sigpipes;
		n = write(fd, buf, 1);
		if (n >= 0 || errno == EINTR)
			continue;
		if (errno == ECONNRESET)
			continue;	/* a pending reset is reported once */
		if (errno != EPIPE)
			sc_fail_errno("write to closed peer: want EPIPE");
		if (sigpipes != old_pipes + 1)
			sc_fail("write failed with EPIPE but SIGPIPE was raised %d times",
				sigpipes - old_pipes);
		break;
	}
	if (i == 100)
		sc_fail("100 writes to a closed peer without EPIPE");
	sigaction(SIGPIPE, &old, NULL);

	n = read(fd, buf, sizeof(buf));
	if (n > 0 || (n < 0 && errno != ECONNRESET))
		sc_fail_errno("read after reset returned %zd: want 0 or ECONNRESET",
			      n);
	sc_info("%u writes succeeded, then %s; SIGPIPE with EPIPE ok",
		ok_writes, strerror(first_err));
	close(fd);
	return 0;
}

/* ------------------------------------------------------------------ */
/* shutdown_wakes                                                      */
/* ------------------------------------------------------------------ */

enum { SW_CTL, SW_RDWR_READER, SW_RD_READER, SW_WR_WRITER, SW_RDWR_WRITER,
	SW_N };

struct blocked {
	int fd;
	bool writer;
	uint64_t seed;
	volatile pid_t tid;
	ssize_t ret;		/* reader: read() result */
	int err;		/* errno of the call that ended it */
	uint64_t written;	/* writer: bytes accepted */
	uint64_t end_ns;
};

static int wake_limit_ms(void)
{
	const char *s = getenv("SOCKCHECK_WAKE_MS");

	return s && atoi(s) > 0 ? atoi(s) : 1000;
}

static void *blocked_thread(void *p)
{
	struct blocked *b = p;
	char *buf = sc_xmalloc(65536);
	char c;

	b->tid = my_tid();
	if (!b->writer) {
		do {
			b->ret = read(b->fd, &c, 1);
		} while (b->ret < 0 && errno == EINTR);
		b->err = b->ret < 0 ? errno : 0;
		b->end_ns = sc_now_ns();
		free(buf);
		return NULL;
	}
	for (;;) {
		ssize_t n;

		pat_fill(b->seed, b->written, buf, 65536);
		n = write(b->fd, buf, 65536);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			b->err = n < 0 ? errno : EIO;
			break;
		}
		b->written += (uint64_t)n;
		sc_count((uint64_t)n);
	}
	b->end_ns = sc_now_ns();
	free(buf);
	return NULL;
}

/* Block a thread in read() or write() on fd, shut down, time the wake-up. */
static struct blocked shut_blocked(int fd, int how, bool writer, uint64_t seed,
				   const char *what)
{
	struct blocked b = { .fd = fd, .writer = writer, .seed = seed };
	uint64_t t0;
	double ms;
	pthread_t t;

	sc_step(what);
	if (pthread_create(&t, NULL, blocked_thread, &b))
		sc_fail("pthread_create");
	while (!b.tid)
		sched_yield();
	sc_wait_blocked(b.tid, what);
	t0 = sc_now_ns();
	if (shutdown(fd, how))
		sc_fail_errno("%s: shutdown", what);
	pthread_join(t, NULL);
	ms = (double)(b.end_ns - t0) / 1e6;
	if (ms > wake_limit_ms())
		sc_fail("%s: blocked call returned %.0f ms after shutdown (limit %d ms, SOCKCHECK_WAKE_MS)",
			what, ms, wake_limit_ms());
	if (!writer && b.ret != 0) {
		errno = b.err;
		sc_fail_errno("%s: read returned %zd, want 0", what, b.ret);
	}
	if (writer && b.err != EPIPE) {
		errno = b.err;
		sc_fail_errno("%s: write ended with %s, want EPIPE", what,
			      strerror(b.err));
	}
	sc_info("%s: woke after %.1f ms", what, ms);
	sc_progress();
	return b;
}

int shutdown_wakes_server(struct sc_ctx *ctx)
{
	struct blocked b;
	int fds[SW_N], i, s;

	/* The writers must see EPIPE from write(), not die of SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	sc_step("accept");
	sc_accept_ids(ctx->lfd, fds, SW_N);

	s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0)
		sc_fail_errno("socket");
	if (shutdown(s, SHUT_RDWR) != -1 || errno != ENOTCONN)
		sc_fail_errno("shutdown of an unconnected socket: want ENOTCONN");
	close(s);

	shut_blocked(fds[SW_RDWR_READER], SHUT_RDWR, false, 0,
		     "blocked read + shutdown(SHUT_RDWR)");
	sc_expect_eof(fds[SW_RDWR_READER], "read after SHUT_RDWR");

	shut_blocked(fds[SW_RD_READER], SHUT_RD, false, 0,
		     "blocked read + shutdown(SHUT_RD)");
	/* SHUT_RD leaves the sending direction alone. */
	sc_send_stream(fds[SW_RD_READER], sc_seed(5), 0, 1000,
		       "write after SHUT_RD");
	if (shutdown(fds[SW_RD_READER], SHUT_WR))
		sc_fail_errno("shutdown(SHUT_WR) after SHUT_RD");

	b = shut_blocked(fds[SW_WR_WRITER], SHUT_WR, true, sc_seed(7),
			 "blocked write + shutdown(SHUT_WR)");
	sc_send_u64(fds[SW_CTL], b.written);

	b = shut_blocked(fds[SW_RDWR_WRITER], SHUT_RDWR, true, sc_seed(8),
			 "blocked write + shutdown(SHUT_RDWR)");
	sc_send_u64(fds[SW_CTL], b.written);

	sc_step("SHUT_WR leaves the receiving direction alone");
	sc_recv_stream(fds[SW_WR_WRITER], sc_seed(6), 0, 1000,
		       "read after SHUT_WR");
	sc_recv_token(fds[SW_CTL], 'D', "done token");
	for (i = 0; i < SW_N; i++)
		close(fds[i]);
	return 0;
}

int shutdown_wakes_client(struct sc_ctx *ctx)
{
	uint64_t w;
	int fds[SW_N], i;

	sc_step("connect");
	for (i = 0; i < SW_N; i++)
		fds[i] = sc_connect_id(ctx, (uint8_t)i);

	sc_step("EOF after the peer's SHUT_RDWR");
	sc_expect_eof(fds[SW_RDWR_READER], "after SHUT_RDWR");
	sc_step("data, then EOF after the peer's SHUT_RD");
	sc_recv_stream(fds[SW_RD_READER], sc_seed(5), 0, 1000,
		       "data after SHUT_RD");
	sc_expect_eof(fds[SW_RD_READER], "after SHUT_RD + SHUT_WR");

	sc_step("drain after the peer's SHUT_WR");
	w = sc_recv_u64(fds[SW_CTL], "bytes written before SHUT_WR");
	sc_send_stream(fds[SW_WR_WRITER], sc_seed(6), 0, 1000,
		       "data to a SHUT_WR peer");
	sc_recv_stream(fds[SW_WR_WRITER], sc_seed(7), 0, w, "window data");
	sc_expect_eof(fds[SW_WR_WRITER], "after SHUT_WR");

	sc_step("drain after the peer's SHUT_RDWR");
	w = sc_recv_u64(fds[SW_CTL], "bytes written before SHUT_RDWR");
	sc_recv_stream(fds[SW_RDWR_WRITER], sc_seed(8), 0, w, "window data");
	sc_expect_eof(fds[SW_RDWR_WRITER], "after SHUT_RDWR");

	for (i = 1; i < SW_N; i++)
		close(fds[i]);
	sc_send_token(fds[SW_CTL], 'D');
	sc_expect_eof(fds[SW_CTL], "control");
	close(fds[SW_CTL]);
	return 0;
}

/* ------------------------------------------------------------------ */
/* dup                                                                 */
/* ------------------------------------------------------------------ */

#define DUP_SEG 4099
#define DUP_NSEG 8

static void expect_fd_flags(int fd, int want, const char *what)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl < 0)
		sc_fail_errno("%s: F_GETFD on fd %d", what, fd);
	if ((fl & FD_CLOEXEC) != want)
		sc_fail("%s: fd %d FD_CLOEXEC is %d, want %d", what, fd,
			fl & FD_CLOEXEC, want);
}

/* A free fd number at or above min (dup2/dup3 need an explicit target). */
static int free_fd(int min)
{
	while (fcntl(min, F_GETFD) >= 0 || errno != EBADF)
		min++;
	return min;
}

static void dup_seg(int fd, int k)
{
	sc_send_stream(fd, sc_seed(1), (uint64_t)k * DUP_SEG, DUP_SEG,
		       "segment");
}

int dup_client(struct sc_ctx *ctx)
{
	int a, b, d1, d2, d3, d4, d5, t;

	sc_step("connect");
	a = sc_connect_id(ctx, 0);
	b = sc_connect_id(ctx, 1);

	sc_step("make dups");
	d1 = dup(a);
	if (d1 < 0)
		sc_fail_errno("dup");
	t = free_fd(100);
	d2 = dup2(a, t);
	if (d2 != t)
		sc_fail_errno("dup2(%d, %d) = %d", a, t, d2);
	t = free_fd(t + 1);
	d3 = dup3(a, t, O_CLOEXEC);
	if (d3 != t)
		sc_fail_errno("dup3(%d, %d, O_CLOEXEC) = %d", a, t, d3);
	d4 = fcntl(a, F_DUPFD, 200);
	if (d4 < 200)
		sc_fail_errno("fcntl(F_DUPFD, 200) = %d", d4);
	d5 = fcntl(a, F_DUPFD_CLOEXEC, 300);
	if (d5 < 300)
		sc_fail_errno("fcntl(F_DUPFD_CLOEXEC, 300) = %d", d5);
	expect_fd_flags(a, 0, "original");
	expect_fd_flags(d1, 0, "dup");
	expect_fd_flags(d2, 0, "dup2");
	expect_fd_flags(d3, FD_CLOEXEC, "dup3(O_CLOEXEC)");
	expect_fd_flags(d4, 0, "F_DUPFD");
	expect_fd_flags(d5, FD_CLOEXEC, "F_DUPFD_CLOEXEC");
	if (dup2(a, a) != a)
		sc_fail_errno("dup2(fd, fd) must return fd");
	errno = 0;
	if (dup3(a, a, 0) != -1 || errno != EINVAL)
		sc_fail_errno("dup3(fd, fd, 0): want EINVAL");

	sc_step("write through each dup, closing the previous one");
	dup_seg(a, 0);
	dup_seg(d1, 1);
	close(a);
	dup_seg(d2, 2);
	close(d1);
	dup_seg(d3, 3);
	close(d2);
	dup_seg(d4, 4);
	close(d3);
	dup_seg(d5, 5);
	close(d4);

	/* Replacing connection b's fd closes connection b (its last fd). */
	sc_step("dup2 over another connection");
	if (dup2(d5, b) != b)
		sc_fail_errno("dup2 over connection fd");
	dup_seg(b, 6);
	close(d5);
	dup_seg(b, 7);

	sc_step("last fd keeps the connection open");
	sc_recv_token(b, 'A', "ack through the last dup");
	close(b);
	return 0;
}

int dup_server(struct sc_ctx *ctx)
{
	int fds[2], a, d, k;

	sc_step("accept");
	sc_accept_ids(ctx->lfd, fds, 2);
	a = fds[0];
	for (k = 0; k < 6; k++)
		sc_recv_stream(a, sc_seed(1), (uint64_t)k * DUP_SEG, DUP_SEG,
			       "segment");

	sc_step("connection replaced by dup2 sees EOF");
	sc_expect_eof(fds[1], "connection b");
	close(fds[1]);

	/* Reading through a dup of our own fd, then dropping it, is harmless. */
	d = dup(a);
	if (d < 0)
		sc_fail_errno("dup");
	for (k = 6; k < DUP_NSEG; k++)
		sc_recv_stream(d, sc_seed(1), (uint64_t)k * DUP_SEG, DUP_SEG,
			       "segment");
	close(d);

	sc_step("no EOF while one dup is open");
	if (sc_poll1(a, POLLIN | POLLRDHUP, 200))
		sc_fail("connection readable (EOF?) while the peer still holds a dup");
	sc_send_token(a, 'A');
	sc_step("EOF after the last close");
	sc_expect_eof(a, "after last close");
	close(a);
	return 0;
}

/* ------------------------------------------------------------------ */
/* close_range                                                         */
/* ------------------------------------------------------------------ */

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/*
 * Prefer the libc wrapper: a preloaded library can interpose it, while a
 * raw syscall would bypass the library entirely.
 */
static int do_close_range(unsigned first, unsigned last, int flags)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 34)
	return close_range(first, last, flags);
#elif defined(SYS_close_range)
	return (int)syscall(SYS_close_range, first, last, flags);
#else
	errno = ENOSYS;
	return -1;
#endif
}

#define CR_NEXTRA 5

/*
 * The eventfds this process has open.  The case makes none of its own, so
 * any it finds belong to whatever runs underneath it (a preload library),
 * and a program's close_range must leave those alone.
 */
static int count_eventfds(void)
{
	char path[64], target[64];
	int fd, n = 0;

	for (fd = 0; fd < 4096; fd++) {
		ssize_t len;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		len = readlink(path, target, sizeof(target) - 1);
		if (len < 0)
			continue;
		target[len] = 0;
		if (strcmp(target, "anon_inode:[eventfd]") == 0)
			n++;
	}
	return n;
}

/*
 * Both halves probe before connecting, so that on an old kernel both skip
 * instead of one of them waiting for a peer that gave up.
 */
static void close_range_probe(void)
{
	if (!do_close_range(~0U - 1, ~0U, 0))
		return;
	if (errno == ENOSYS)
		sc_skip("close_range: not supported by this kernel or libc");
	sc_fail_errno("close_range(~0U - 1, ~0U, 0)");
}

int close_range_client(struct sc_ctx *ctx)
{
	int c, extra[CR_NEXTRA], p[2], i, evfds;

	close_range_probe();
	sc_step("connect");
	c = sc_connect(ctx);
	sc_send_stream(c, sc_seed(1), 0, 10000, "before close_range");

	/* Extras strictly above c, whatever gaps lie below it. */
	if (pipe(p))
		sc_fail_errno("pipe");
	extra[0] = p[0];
	extra[1] = p[1];
	extra[2] = open("/dev/null", O_RDONLY);
	extra[3] = dup(c);	/* a second fd for the same connection */
	extra[4] = socket(AF_INET, SOCK_STREAM, 0);
	for (i = 0; i < CR_NEXTRA; i++) {
		int moved;

		if (extra[i] < 0)
			sc_fail_errno("making extra fd %d", i);
		moved = fcntl(extra[i], F_DUPFD, c + 1 + i);
		if (moved < 0)
			sc_fail_errno("F_DUPFD");
		close(extra[i]);
		extra[i] = moved;
	}

	sc_step("close_range CLOEXEC");
	if (do_close_range((unsigned)c + 1, ~0U, CLOSE_RANGE_CLOEXEC)) {
		if (errno != EINVAL)
			sc_fail_errno("close_range(CLOSE_RANGE_CLOEXEC)");
		sc_info("CLOSE_RANGE_CLOEXEC not supported (EINVAL), skipped");
	} else {
		for (i = 0; i < CR_NEXTRA; i++)
			expect_fd_flags(extra[i], FD_CLOEXEC, "after CLOSE_RANGE_CLOEXEC");
		expect_fd_flags(c, 0, "connection below the range");
	}

	sc_step("close_range above the connection");
	evfds = count_eventfds();
	if (do_close_range((unsigned)c + 1, ~0U, 0))
		sc_fail_errno("close_range(%d, ~0U, 0)", c + 1);
	for (i = 0; i < CR_NEXTRA; i++)
		if (fcntl(extra[i], F_GETFD) != -1 || errno != EBADF)
			sc_fail("fd %d still open after close_range", extra[i]);
	/* Regression: libmigrdma's per-connection wake-up eventfd was not spared. */
	if (count_eventfds() != evfds)
		sc_fail("close_range closed %d eventfd(s) the program never opened",
			evfds - count_eventfds());
	sc_send_stream(c, sc_seed(1), 10000, 10000, "after close_range");
	sc_recv_token(c, 'K', "ack");

	sc_step("close_range closes the connection");
	if (do_close_range((unsigned)c, (unsigned)c, 0))
		sc_fail_errno("close_range(%d, %d, 0)", c, c);
	if (fcntl(c, F_GETFD) != -1 || errno != EBADF)
		sc_fail("connection fd still open after close_range");
	return 0;
}

int close_range_server(struct sc_ctx *ctx)
{
	int fd;

	close_range_probe();
	sc_step("read across the peer's close_range");
	fd = sc_accept(ctx->lfd);
	sc_recv_stream(fd, sc_seed(1), 0, 20000, "data");
	sc_send_token(fd, 'K');
	sc_step("EOF after close_range of the last fd");
	sc_expect_eof(fd, "after close_range");
	if (do_close_range((unsigned)fd, (unsigned)fd, 0))
		sc_fail_errno("close_range of own connection");
	return 0;
}
