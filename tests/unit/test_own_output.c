// SPDX-License-Identifier: MIT
/*
 * The library's own output (log lines, statistics, crash backtraces) goes
 * straight to the kernel, never through the write() it interposes: if the
 * log fd number were a diverted socket, the interposer would send log text
 * into the migration stream, and the crash handler would take the fd
 * table's lock from a signal handler (issue 11, defect 2).
 *
 * This program defines write() itself, as libmigrdma.so does, and counts
 * the calls the library code makes to it.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "shim/backtrace.h"
#include "common/log.h"
#include "shim/stats.h"

static int counting;		/* count only between arm() and disarm() */
static int interposed_writes;

ssize_t write(int fd, const void *buf, size_t n)
{
	if (counting)
		interposed_writes++;
	return syscall(SYS_write, fd, buf, n);
}

static int pipe_fds[2];

static int setup(void **state)
{
	(void)state;
	if (pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	interposed_writes = 0;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	counting = 0;
	log_set_fd_for_test(STDERR_FILENO);
	close(pipe_fds[0]);
	close(pipe_fds[1]);
	return 0;
}

static size_t drain(char *buf, size_t len)
{
	ssize_t n = read(pipe_fds[0], buf, len - 1);

	buf[n > 0 ? n : 0] = '\0';
	return n > 0 ? (size_t)n : 0;
}

static void test_log_line(void **state)
{
	char got[512];

	(void)state;
	log_set_fd_for_test(pipe_fds[1]);
	counting = 1;
	log_warn(3, "a line of %d words", 5);
	counting = 0;
	assert_true(drain(got, sizeof(got)) > 0);
	assert_non_null(strstr(got, "warn [c3] a line of 5 words\n"));
	assert_int_equal(interposed_writes, 0);
}

static void test_backtrace(void **state)
{
	char got[8192];

	(void)state;
	counting = 1;
	backtrace_write(pipe_fds[1]);
	counting = 0;
	assert_true(drain(got, sizeof(got)) > 0);
	assert_non_null(strstr(got, "  #0 "));
	assert_int_equal(interposed_writes, 0);
}

static void test_stats_line(void **state)
{
	char path[] = "/tmp/migrdma-own-output-XXXXXX";
	struct conn_stats s = { .conn_id = 9, .role = "client", .transport = "rdma",
				.local = "198.18.0.1:1", .peer = "198.18.0.2:2",
				.close_reason = "close" };
	char got[1024];
	ssize_t n;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	counting = 1;
	assert_int_equal(stats_append(path, &s), 0);
	counting = 0;
	n = pread(fd, got, sizeof(got) - 1, 0);
	close(fd);
	unlink(path);
	assert_true(n > 0);
	got[n] = '\0';
	assert_non_null(strstr(got, "\"conn_id\":9"));
	assert_int_equal(interposed_writes, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_log_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backtrace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats_line, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
