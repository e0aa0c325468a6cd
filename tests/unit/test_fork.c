// SPDX-License-Identifier: MIT
/*
 * fork() while other threads are inside the library must not leave the
 * child with a lock no thread will ever release (after cwrap's
 * socket_wrapper test_fork_thread_deadlock).  Worker threads keep taking
 * every process-wide lock: the munmap hook's registration-cache list,
 * rt_g.lock, the fd table's lock, the transport start-up lock and the
 * lock of the once-per-address failure report.  The
 * main thread forks again and again; each child takes the same locks and
 * exits.  A child that does not exit in time is stuck on a lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_util.h"

#include "common/log.h"
#include "rdma/regcache.h"
#include "rdma/transport.h"
#include "rdma/internal.h"
#include "shim/init.h"
#include "shim/msock.h"
#include "shim/shim.h"

#define FORKS 100
#define WORKERS 5
#define CHILD_LIMIT_MS 30000
#define PAGE 4096

static int stop;		/* atomic */
static int fd_a, fd_b;
static struct sockaddr_in report_addr = { .sin_family = AF_INET };


/* Each worker and each child: one pass over the library's locks. */
static void touch_every_lock(int which)
{
	size_t now, peak;
	void *p;

	switch (which % WORKERS) {
	case 0:
		p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p != MAP_FAILED)
			munmap(p, PAGE);	/* the hook: regcache list lock */
		/* What the hook does for a large unmap: the lock held longest. */
		rt_invalidate_memory((void *)(uintptr_t)PAGE, (size_t)1 << 40);
		break;
	case 1:
		rt_pinned_bytes(&now, &peak);	/* rt_g.lock */
		break;
	case 2:
		shim_dup_done(fd_a, fd_b);	/* the fd table's lock */
		break;
	case 3:
		shim_start_transport();		/* start-up lock, then rt_g.lock */
		break;
	case 4:
		divert_first_report((const struct sockaddr *)&report_addr);
		break;
	}
}

static void *worker(void *arg)
{
	int which = (int)(intptr_t)arg;

	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE))
		touch_every_lock(which);
	return NULL;
}

/* 0 when the child exited 0 within the limit; it is killed otherwise. */
static int reap(pid_t pid)
{
	struct timespec step = { 0, 1000 * 1000 };
	int status, i;

	for (i = 0; i < CHILD_LIMIT_MS; i++) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
		nanosleep(&step, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

static void test_fork_while_threads_inside(void **state)
{
	struct regcache_backend be = { fake_reg, fake_dereg, NULL };
	pthread_t threads[WORKERS];
	struct regcache *rc;
	int devnull, i, w;

	(void)state;
	/* No RDMA here: start-up fails and says so, once per attempt. */
	devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	assert_true(devnull >= 0);
	log_set_fd_for_test(devnull);
	fd_a = open("/dev/null", O_RDONLY | O_CLOEXEC);
	fd_b = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(fd_a >= 0 && fd_b >= 0);
	/* A cache on the list, so the munmap hook really takes its lock. */
	rc = regcache_create(&be, 1 << 20, 64 << 20);
	assert_non_null(rc);
	shim_install_fork_handlers();

	for (w = 0; w < WORKERS; w++)
		assert_int_equal(pthread_create(&threads[w], NULL, worker, (void *)(intptr_t)w), 0);
	for (i = 0; i < FORKS; i++) {
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			/* A child may start a transport of its own: a new cache. */
			regcache_destroy(regcache_create(&be, 1 << 20, 64 << 20));
			for (w = 0; w < WORKERS; w++)
				touch_every_lock(w);
			_exit(0);
		}
		if (reap(pid))
			fail_msg("fork %d: the child hung on a lock held at fork (or failed)", i);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	for (w = 0; w < WORKERS; w++)
		pthread_join(threads[w], NULL);
	regcache_destroy(rc);
	log_set_fd_for_test(STDERR_FILENO);
	close(devnull);
	close(fd_a);
	close(fd_b);
}

/* The parent's MADV_DONTFORK memory is not the child's: it is not even mapped there. */
static void test_child_forgets_dontfork(void **state)
{
	size_t len = (size_t)1 << 20;
	uint8_t *p;
	pid_t pid;

	(void)state;
	shim_install_fork_handlers();
	rt_g.opts.defer = RT_DEFER_AUTO;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(p != MAP_FAILED);
	assert_int_equal(madvise(p, len, MADV_DONTFORK), 0);
	assert_true(defer_allowed(p, PAGE));
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* Fresh memory where the parent's was: never marked by the child. */
		void *q = mmap(p, len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

		_exit(q == (void *)p && !defer_allowed(p, PAGE) ? 0 : 1);
	}
	assert_int_equal(reap(pid), 0);
	assert_true(defer_allowed(p, PAGE));
	munmap(p, len);
}

/* A child's connect() on an inherited socket fails at once, touching nothing of the parent's. */
static void test_inherited_socket_connect(void **state)
{
	struct msock ms = { 0 };

	(void)state;
	ms.forked_away = true;
	ms.conn = (struct rt_conn *)(uintptr_t)16;	/* the parent's: must not be used */
	errno = 0;
	assert_int_equal(shim_connect_again(&ms), -1);
	assert_int_equal(errno, EBADF);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fork_while_threads_inside),
		cmocka_unit_test(test_child_forgets_dontfork),
		cmocka_unit_test(test_inherited_socket_connect),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
