// SPDX-License-Identifier: MIT
/*
 * The interposers of intercept/ linked into a test program, to check what
 * they do when the library itself, or a library it calls, reaches them:
 *  - a munmap() made while the transport holds its locks must not wait on
 *    those locks (issue 11, defect 1);
 *  - an fd's internal mark dies with the fd, so close_range() never skips a
 *    program fd that reuses the number (issue 11, defect 3).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_util.h"

#include "rdma/internal.h"
#include "rdma/regcache.h"
#include "shim/fdtable.h"

#define PAGE 4096
#define HANG_LIMIT_S 5

struct unmap_job {
	void *addr;
	int unmapped;		/* atomic */
	int done;		/* atomic */
};

static bool wait_done(const int *flag)
{
	struct timespec step = { 0, 10 * 1000 * 1000 };
	int i;

	for (i = 0; i < HANG_LIMIT_S * 100; i++) {
		if (__atomic_load_n(flag, __ATOMIC_ACQUIRE))
			return true;
		nanosleep(&step, NULL);
	}
	return false;
}

/* Stands for library code that unmaps while the transport's lock is held. */
static void unmap_under_lock(int fd, void *arg)
{
	struct unmap_job *job = arg;

	(void)fd;
	if (__atomic_load_n(&job->unmapped, __ATOMIC_ACQUIRE))
		return;
	assert_int_equal(munmap(job->addr, PAGE), 0);
	__atomic_store_n(&job->unmapped, 1, __ATOMIC_RELEASE);
}

static void *walk_internal_fds(void *arg)
{
	struct unmap_job *job = arg;

	rt_for_each_internal_fd(unmap_under_lock, job);
	__atomic_store_n(&job->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * rt_for_each_internal_fd() calls back with rt_g.lock held; fdtable's lost
 * page race and the providers under rdma_get_devices() munmap there.  The
 * munmap hook must not take that lock again.
 */
static void test_munmap_under_transport_lock(void **state)
{
	struct rdma_event_channel chan = { .fd = -1 };
	struct unmap_job job = { 0 };
	pthread_t t;

	(void)state;
	job.addr = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(job.addr != MAP_FAILED);
	/* A started transport, as far as the walk and the hook can tell. */
	rt_g.cm_chan = &chan;
	rt_g.initialised = true;
	assert_int_equal(pthread_create(&t, NULL, walk_internal_fds, &job), 0);
	if (!wait_done(&job.done))
		fail_msg("munmap under rt_g.lock did not return within %d s: self-deadlock",
			 HANG_LIMIT_S);
	pthread_join(t, NULL);
	rt_g.initialised = false;
	rt_g.cm_chan = NULL;
	assert_int_equal(job.unmapped, 1);
}

/* A backend that unmaps inside registration, as a provider may. */
static void *spare_page;

static void *unmapping_reg(void *ctx, void *addr, size_t len, uint32_t *lkey)
{
	(void)ctx;
	(void)len;
	if (spare_page) {
		assert_int_equal(munmap(spare_page, PAGE), 0);
		spare_page = NULL;
	}
	*lkey = 7;
	return addr;
}

struct reg_job {
	struct regcache *rc;
	void *buf;
	int done;		/* atomic */
};

static void *register_once(void *arg)
{
	struct reg_job *job = arg;
	struct regcache_ref ref;
	int registered = 0;

	assert_int_equal(regcache_get(job->rc, job->buf, PAGE, &ref, &registered), 0);
	assert_int_equal(registered, 1);
	regcache_put(job->rc, ref.entry);
	__atomic_store_n(&job->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* The registration cache's own lock is held across the backend call. */
static void test_munmap_inside_registration(void **state)
{
	struct regcache_backend be = { unmapping_reg, fake_dereg, NULL };
	static char buf[PAGE] __attribute__((aligned(PAGE)));
	struct reg_job job = { 0 };
	pthread_t t;

	(void)state;
	spare_page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(spare_page != MAP_FAILED);
	job.rc = regcache_create(&be, 1 << 20, 64 << 20);
	assert_non_null(job.rc);
	job.buf = buf;
	assert_int_equal(pthread_create(&t, NULL, register_once, &job), 0);
	if (!wait_done(&job.done))
		fail_msg("munmap inside a registration did not return within %d s",
			 HANG_LIMIT_S);
	pthread_join(t, NULL);
	assert_null(spare_page);
	regcache_destroy(job.rc);
}

static int open_null(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	return fd;
}

/*
 * libibverbs closes a completion channel through our close(); a program
 * fd that later gets the same number must be closed by close_range().
 */
static void test_close_clears_internal_mark(void **state)
{
	int fd, again, keep;

	(void)state;
	fd = open_null();
	assert_int_equal(fdtable_mark_internal(fd, true), 0);
	assert_int_equal(close(fd), 0);
	assert_false(fdtable_is_internal(fd));

	again = open_null();
	assert_int_equal(again, fd);
	keep = open_null();
	assert_int_equal(close_range((unsigned)again, (unsigned)again, 0), 0);
	assert_int_equal(fcntl(again, F_GETFD), -1);
	assert_int_equal(errno, EBADF);
	/* A live internal fd is still spared. */
	assert_int_equal(fdtable_mark_internal(keep, true), 0);
	assert_int_equal(close_range((unsigned)keep, (unsigned)keep, 0), 0);
	assert_true(fcntl(keep, F_GETFD) >= 0);
	assert_int_equal(fdtable_mark_internal(keep, false), 0);
	assert_int_equal(close(keep), 0);
}

/* dup2() onto an internal number closes that fd: the number is the program's now. */
static void test_dup2_clears_internal_mark(void **state)
{
	int a, b;

	(void)state;
	a = open_null();
	b = open_null();
	assert_int_equal(fdtable_mark_internal(b, true), 0);
	assert_int_equal(dup2(a, b), b);
	assert_false(fdtable_is_internal(b));
	assert_int_equal(close_range((unsigned)b, (unsigned)b, 0), 0);
	assert_int_equal(fcntl(b, F_GETFD), -1);
	assert_int_equal(close(a), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_munmap_under_transport_lock),
		cmocka_unit_test(test_munmap_inside_registration),
		cmocka_unit_test(test_close_clears_internal_mark),
		cmocka_unit_test(test_dup2_clears_internal_mark),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
