// SPDX-License-Identifier: MIT
/*
 * fork() while other threads are inside the library must not leave the
 * child with a lock no thread will ever release (after cwrap's
 * socket_wrapper test_fork_thread_deadlock).  Worker threads keep taking
 * every process-wide lock: the munmap hook's registration-cache list,
 * rt_g.lock, the fd table's lock and the transport start-up lock.  The
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
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_util.h"

#include "common/log.h"
#include "rdma/regcache.h"
#include "rdma/transport.h"
#include "shim/init.h"
#include "shim/shim.h"

#define FORKS 100
#define WORKERS 4
#define CHILD_LIMIT_MS 30000
#define PAGE 4096

static int stop;		/* atomic */
static int fd_a, fd_b;


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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fork_while_threads_inside),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
