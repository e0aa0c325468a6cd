// SPDX-License-Identifier: MIT
/*
 * Unit tests for shim/doorbell.c on real kernel socketpairs: what poll
 * and epoll see on the program's end as migrdma rings the doorbell.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "rdma/transport.h"
#include "shim/doorbell.h"
#include "shim/fdtable.h"
#include "common/real.h"

#define EV_MASK	(POLLIN | POLLOUT | POLLHUP | POLLERR)

static int setup(void **state)
{
	(void)state;
	real_resolve();
	fdtable_reset();
	return 0;
}

/* What a zero-timeout poll reports for fd, among POLLIN/OUT/HUP/ERR. */
static short poll_now(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLOUT };
	int n = poll(&p, 1, 0);

	assert_true(n == 0 || n == 1);
	assert_false(p.revents & POLLNVAL);
	return n ? (short)(p.revents & EV_MASK) : 0;
}

static void assert_events(int fd, short expect)
{
	short got = poll_now(fd);

	if (got != expect)
		fail_msg("fd %d: poll says%s%s%s%s, expected%s%s%s%s", fd,
			 got & POLLIN ? " IN" : "", got & POLLOUT ? " OUT" : "",
			 got & POLLHUP ? " HUP" : "", got & POLLERR ? " ERR" : "",
			 expect & POLLIN ? " IN" : "", expect & POLLOUT ? " OUT" : "",
			 expect & POLLHUP ? " HUP" : "", expect & POLLERR ? " ERR" : "");
}

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0 || errno != EBADF;
}

static int make(struct doorbell *db, int target, bool nonblock, bool cloexec)
{
	int pfd = -1;

	memset(db, 0xff, sizeof(*db));
	assert_int_equal(doorbell_create(db, target, nonblock, cloexec, &pfd), 0);
	assert_true(pfd >= 0);
	return pfd;
}

static void unmake(struct doorbell *db, int pfd)
{
	doorbell_destroy(db);
	assert_int_equal(close(pfd), 0);
}

static void test_initial(void **state)
{
	struct doorbell db;
	struct stat st;
	int pfd;

	(void)state;
	pfd = make(&db, -1, false, false);
	/* Neither readable nor writable, nor hung up. */
	assert_events(pfd, 0);
	assert_true(pfd != db.app_fd && pfd != db.our_fd && db.app_fd != db.our_fd);
	assert_int_equal(fstat(pfd, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	/* A blocking read would wait: prove it without blocking. */
	assert_int_equal(recv(pfd, &st, 1, MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	unmake(&db, pfd);
}

static void test_readable(void **state)
{
	struct doorbell db;
	int pfd, i;

	(void)state;
	pfd = make(&db, -1, true, true);
	for (i = 0; i < 3; i++) {
		doorbell_set(&db, RT_EV_READABLE);
		assert_events(pfd, POLLIN);
		/* Saying it again changes nothing. */
		doorbell_set(&db, RT_EV_READABLE);
		assert_events(pfd, POLLIN);
		doorbell_set(&db, 0);
		assert_events(pfd, 0);
		doorbell_set(&db, 0);
		assert_events(pfd, 0);
	}
	/* With NEWDATA from the start, and after several arrivals. */
	doorbell_set(&db, RT_EV_READABLE | RT_EV_NEWDATA);
	assert_events(pfd, POLLIN);
	for (i = 0; i < 10; i++)
		doorbell_set(&db, RT_EV_READABLE | RT_EV_NEWDATA);
	doorbell_set(&db, 0);
	assert_events(pfd, 0);
	/* NEWDATA without READABLE does not make it readable. */
	doorbell_set(&db, RT_EV_NEWDATA);
	assert_events(pfd, 0);
	unmake(&db, pfd);
}

static void test_writable(void **state)
{
	struct doorbell db;
	int pfd, i;

	(void)state;
	pfd = make(&db, -1, false, false);
	for (i = 0; i < 3; i++) {
		doorbell_set(&db, RT_EV_WRITABLE);
		assert_events(pfd, POLLOUT);
		doorbell_set(&db, RT_EV_WRITABLE);
		assert_events(pfd, POLLOUT);
		doorbell_set(&db, 0);
		assert_events(pfd, 0);
	}
	/* Both at once, and each alone, from each state. */
	doorbell_set(&db, RT_EV_READABLE | RT_EV_WRITABLE);
	assert_events(pfd, POLLIN | POLLOUT);
	doorbell_set(&db, RT_EV_WRITABLE);
	assert_events(pfd, POLLOUT);
	doorbell_set(&db, RT_EV_READABLE);
	assert_events(pfd, POLLIN);
	doorbell_set(&db, RT_EV_READABLE | RT_EV_WRITABLE);
	assert_events(pfd, POLLIN | POLLOUT);
	doorbell_set(&db, 0);
	assert_events(pfd, 0);
	unmake(&db, pfd);
}

/* xorshift64*, seeded. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

static void test_random_transitions(void **state)
{
	static const unsigned choices[] = {
		0, RT_EV_READABLE, RT_EV_WRITABLE, RT_EV_READABLE | RT_EV_WRITABLE,
		RT_EV_READABLE | RT_EV_NEWDATA,
		RT_EV_READABLE | RT_EV_WRITABLE | RT_EV_NEWDATA,
	};
	uint64_t seed = 0x646f6f7262656c6cULL;
	struct doorbell db;
	int pfd, i;

	(void)state;
	pfd = make(&db, -1, true, false);
	/* No filler or ring bytes may pile up over many transitions. */
	for (i = 0; i < 2000; i++) {
		unsigned ev = choices[rnd(&seed) % (sizeof(choices) / sizeof(choices[0]))];

		doorbell_set(&db, ev);
		assert_events(pfd, (short)((ev & RT_EV_READABLE ? POLLIN : 0) |
					   (ev & RT_EV_WRITABLE ? POLLOUT : 0)));
	}
	unmake(&db, pfd);
}

/* How many events an EPOLLET waiter gets now (0 or 1), and which. */
static int epoll_now(int epfd, uint32_t *events)
{
	struct epoll_event ev[2];
	int n = epoll_wait(epfd, ev, 2, 0);

	assert_true(n == 0 || n == 1);
	*events = n ? ev[0].events : 0;
	return n;
}

static void test_newdata_edge(void **state)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET };
	struct doorbell db;
	uint32_t got;
	int pfd, epfd, i;

	(void)state;
	pfd = make(&db, -1, true, true);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	assert_true(epfd >= 0);
	ev.data.fd = pfd;
	assert_int_equal(epoll_ctl(epfd, EPOLL_CTL_ADD, pfd, &ev), 0);
	assert_int_equal(epoll_now(epfd, &got), 0);

	doorbell_set(&db, RT_EV_READABLE | RT_EV_NEWDATA);
	assert_int_equal(epoll_now(epfd, &got), 1);
	assert_true(got & EPOLLIN);
	/* Edge-triggered: consumed, and nothing new. */
	assert_int_equal(epoll_now(epfd, &got), 0);
	/* Still readable without new data: no new edge. */
	doorbell_set(&db, RT_EV_READABLE);
	assert_int_equal(epoll_now(epfd, &got), 0);
	doorbell_set(&db, RT_EV_READABLE | RT_EV_WRITABLE);
	doorbell_set(&db, RT_EV_READABLE);
	assert_int_equal(epoll_now(epfd, &got), 0);

	/* Each arrival while readable is a new edge. */
	for (i = 0; i < 20; i++) {
		doorbell_set(&db, RT_EV_READABLE | RT_EV_NEWDATA);
		assert_int_equal(epoll_now(epfd, &got), 1);
		assert_true(got & EPOLLIN);
		assert_int_equal(epoll_now(epfd, &got), 0);
		assert_events(pfd, POLLIN);
	}

	/* Read everything, then new data: an edge again, and the count restarts. */
	doorbell_set(&db, 0);
	assert_int_equal(epoll_now(epfd, &got), 0);
	doorbell_set(&db, RT_EV_READABLE);
	assert_int_equal(epoll_now(epfd, &got), 1);
	for (i = 0; i < 40; i++) {
		doorbell_set(&db, RT_EV_READABLE | RT_EV_NEWDATA);
		assert_int_equal(epoll_now(epfd, &got), 1);
	}
	close(epfd);
	unmake(&db, pfd);
}

static void test_writable_edge(void **state)
{
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLET };
	struct doorbell db;
	uint32_t got;
	int pfd, epfd;

	(void)state;
	pfd = make(&db, -1, true, false);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	assert_true(epfd >= 0);
	assert_int_equal(epoll_ctl(epfd, EPOLL_CTL_ADD, pfd, &ev), 0);
	assert_int_equal(epoll_now(epfd, &got), 0);
	doorbell_set(&db, RT_EV_WRITABLE);
	assert_int_equal(epoll_now(epfd, &got), 1);
	assert_true(got & EPOLLOUT);
	assert_int_equal(epoll_now(epfd, &got), 0);
	doorbell_set(&db, 0);
	assert_int_equal(epoll_now(epfd, &got), 0);
	doorbell_set(&db, RT_EV_WRITABLE);
	assert_int_equal(epoll_now(epfd, &got), 1);
	close(epfd);
	unmake(&db, pfd);
}

static void test_hup(void **state)
{
	static const unsigned before[] = {
		0, RT_EV_READABLE, RT_EV_WRITABLE, RT_EV_READABLE | RT_EV_WRITABLE,
	};
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET };
	struct doorbell db;
	uint32_t got;
	int pfd, epfd;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(before) / sizeof(before[0]); i++) {
		pfd = make(&db, -1, true, true);
		epfd = epoll_create1(EPOLL_CLOEXEC);
		assert_true(epfd >= 0);
		assert_int_equal(epoll_ctl(epfd, EPOLL_CTL_ADD, pfd, &ev), 0);
		doorbell_set(&db, before[i]);
		epoll_now(epfd, &got);

		doorbell_set(&db, RT_EV_HUP | (before[i] & RT_EV_READABLE));
		assert_true(poll_now(pfd) & POLLHUP);
		assert_true(poll_now(pfd) & POLLIN);
		assert_int_equal(epoll_now(epfd, &got), 1);
		assert_true(got & EPOLLHUP);
		/* Final: later calls change nothing. */
		doorbell_set(&db, 0);
		assert_true(poll_now(pfd) & POLLHUP);
		assert_true(poll_now(pfd) & POLLIN);
		doorbell_set(&db, RT_EV_READABLE | RT_EV_NEWDATA);
		assert_true(poll_now(pfd) & POLLHUP);
		/* The kernel agrees: a write fails at once. */
		assert_int_equal(send(pfd, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL), -1);
		assert_int_equal(errno, EPIPE);
		close(epfd);
		unmake(&db, pfd);
	}
}

/* fd flags as the program would see them. */
static void assert_flags(int fd, bool nonblock, bool cloexec)
{
	int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);

	assert_true(fl >= 0 && fdfl >= 0);
	assert_int_equal(!!(fl & O_NONBLOCK), nonblock);
	assert_int_equal(!!(fdfl & FD_CLOEXEC), cloexec);
}

static void test_flags(void **state)
{
	struct doorbell db;
	int pfd, k;

	(void)state;
	for (k = 0; k < 4; k++) {
		bool nonblock = k & 1, cloexec = k & 2;

		pfd = make(&db, -1, nonblock, cloexec);
		assert_flags(pfd, nonblock, cloexec);
		/* Our own ends never leak into an exec'd program. */
		assert_true(fcntl(db.app_fd, F_GETFD) & FD_CLOEXEC);
		assert_true(fcntl(db.our_fd, F_GETFD) & FD_CLOEXEC);
		unmake(&db, pfd);
	}
}

static void test_target_fd(void **state)
{
	struct doorbell db;
	struct stat st;
	int pipefd[2], target, pfd, k;

	(void)state;
	signal(SIGPIPE, SIG_IGN);
	for (k = 0; k < 4; k++) {
		bool nonblock = k & 1, cloexec = k & 2;

		/*
		 * The program's old fd: the read end of a pipe, at a high
		 * number, with the opposite flags of what is asked.
		 */
		assert_int_equal(pipe(pipefd), 0);
		target = fcntl(pipefd[0], cloexec ? F_DUPFD : F_DUPFD_CLOEXEC, 100);
		assert_true(target >= 100);
		close(pipefd[0]);
		assert_int_equal(fcntl(target, F_SETFL, nonblock ? 0 : O_NONBLOCK), 0);

		pfd = make(&db, target, nonblock, cloexec);
		assert_int_equal(pfd, target);
		assert_int_equal(fstat(target, &st), 0);
		assert_true(S_ISSOCK(st.st_mode));
		assert_flags(target, nonblock, cloexec);
		/* The pipe lost its only reader: the old file was closed. */
		assert_int_equal(write(pipefd[1], "x", 1), -1);
		assert_int_equal(errno, EPIPE);
		close(pipefd[1]);

		/* It is the doorbell now. */
		assert_events(target, 0);
		doorbell_set(&db, RT_EV_READABLE | RT_EV_WRITABLE);
		assert_events(target, POLLIN | POLLOUT);
		assert_false(fdtable_is_internal(target));
		unmake(&db, pfd);
	}
}

static void test_internal_marks(void **state)
{
	struct doorbell db;
	int pfd, app, our;

	(void)state;
	pfd = make(&db, -1, false, true);
	app = db.app_fd;
	our = db.our_fd;
	assert_true(fdtable_is_internal(app));
	assert_true(fdtable_is_internal(our));
	assert_false(fdtable_is_internal(pfd));
	assert_int_equal(fdtable_next(0, INT32_MAX, true), app < our ? app : our);

	doorbell_destroy(&db);
	assert_int_equal(db.app_fd, -1);
	assert_int_equal(db.our_fd, -1);
	assert_false(fdtable_is_internal(app));
	assert_false(fdtable_is_internal(our));
	assert_int_equal(fdtable_next(0, INT32_MAX, true), -1);
	assert_false(fd_open(app));
	assert_false(fd_open(our));
	/* The program's fd is the program's to close; the far end is gone. */
	assert_true(fd_open(pfd));
	assert_true(poll_now(pfd) & POLLHUP);
	/* Destroying twice is harmless. */
	doorbell_destroy(&db);
	assert_true(fd_open(pfd));
	close(pfd);
}

static void test_independent(void **state)
{
	struct doorbell db[3];
	int pfd[3], i;

	(void)state;
	for (i = 0; i < 3; i++)
		pfd[i] = make(&db[i], -1, true, true);
	doorbell_set(&db[0], RT_EV_READABLE);
	doorbell_set(&db[1], RT_EV_WRITABLE);
	doorbell_set(&db[2], RT_EV_HUP);
	assert_events(pfd[0], POLLIN);
	assert_events(pfd[1], POLLOUT);
	assert_true(poll_now(pfd[2]) & POLLHUP);
	for (i = 0; i < 3; i++)
		unmake(&db[i], pfd[i]);
	assert_int_equal(fdtable_next(0, INT32_MAX, true), -1);
}

static void test_errno_preserved(void **state)
{
	struct doorbell db;
	int pfd;

	(void)state;
	pfd = make(&db, -1, true, true);
	errno = EINTR;
	doorbell_set(&db, RT_EV_READABLE | RT_EV_WRITABLE);
	assert_int_equal(errno, EINTR);
	errno = ETIMEDOUT;
	doorbell_set(&db, 0);	/* drains to EAGAIN internally */
	assert_int_equal(errno, ETIMEDOUT);
	errno = ENOTCONN;
	doorbell_set(&db, RT_EV_HUP);
	assert_int_equal(errno, ENOTCONN);
	unmake(&db, pfd);
}

static void test_create_failure(void **state)
{
	struct doorbell db;
	int pfd = -7;

	(void)state;
	/* An fd number beyond the process limit cannot be the target. */
	assert_true(doorbell_create(&db, 1 << 30, false, false, &pfd) < 0);
	assert_int_equal(pfd, -7);
	/* Nothing leaked, nothing left marked. */
	assert_int_equal(fdtable_next(0, INT32_MAX, true), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_initial, setup),
		cmocka_unit_test_setup(test_readable, setup),
		cmocka_unit_test_setup(test_writable, setup),
		cmocka_unit_test_setup(test_random_transitions, setup),
		cmocka_unit_test_setup(test_newdata_edge, setup),
		cmocka_unit_test_setup(test_writable_edge, setup),
		cmocka_unit_test_setup(test_hup, setup),
		cmocka_unit_test_setup(test_flags, setup),
		cmocka_unit_test_setup(test_target_fd, setup),
		cmocka_unit_test_setup(test_internal_marks, setup),
		cmocka_unit_test_setup(test_independent, setup),
		cmocka_unit_test_setup(test_errno_preserved, setup),
		cmocka_unit_test_setup(test_create_failure, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
