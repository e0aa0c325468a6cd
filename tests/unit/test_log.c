// SPDX-License-Identifier: MIT
/* Unit tests for common/log.c: line format, filtering, errno, destinations. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "shim/config.h"

static int pipe_fds[2] = { -1, -1 };
static char got[1 << 16];
static char want[4096];

static int setup(void **state)
{
	(void)state;
	if (pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	log_set_fd_for_test(pipe_fds[1]);
	log_set_level(LOG_LEVEL_WARN);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	log_set_fd_for_test(STDERR_FILENO);
	log_set_level(LOG_LEVEL_WARN);
	close(pipe_fds[0]);
	close(pipe_fds[1]);
	return 0;
}

/* Everything written to the pipe so far. */
static const char *drain(void)
{
	size_t len = 0;
	ssize_t n;

	while (len < sizeof(got) - 1) {
		n = read(pipe_fds[0], got + len, sizeof(got) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	got[len] = '\0';
	return got;
}

static const char *line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The expected "migrdma[PID] ..." line; fmt covers what follows the pid. */
static const char *line(const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(want, sizeof(want), "migrdma[%d] ", (int)getpid());
	va_start(ap, fmt);
	vsnprintf(want + n, sizeof(want) - (size_t)n, fmt, ap);
	va_end(ap);
	return want;
}

static void test_before_init(void **state)
{
	(void)state;
	assert_int_equal(log_fd(), STDERR_FILENO);
	assert_true(log_enabled(LOG_LEVEL_ERROR));
	assert_true(log_enabled(LOG_LEVEL_WARN));
	assert_false(log_enabled(LOG_LEVEL_INFO));
	assert_false(log_enabled(LOG_LEVEL_DEBUG));
}

static void test_format(void **state)
{
	(void)state;
	log_set_level(LOG_LEVEL_DEBUG);

	mlog(LOG_LEVEL_INFO, 0, "hello %d", 5);
	assert_string_equal(drain(), line("info hello 5\n"));
	log_warn(3, "slow peer %s", "10.0.0.2:4444");
	assert_string_equal(drain(), line("warn [c3] slow peer 10.0.0.2:4444\n"));
	log_error(4294967295U, "x");
	assert_string_equal(drain(), line("error [c4294967295] x\n"));
	log_debug(12, "chunk %zu", (size_t)65536);
	assert_string_equal(drain(), line("debug [c12] chunk 65536\n"));
	log_info(0, "%s", "");
	assert_string_equal(drain(), line("info \n"));
}

static void test_trailing_newline(void **state)
{
	(void)state;
	log_warn(0, "ends with newline\n");
	assert_string_equal(drain(), line("warn ends with newline\n"));
	log_warn(0, "two\n\n");
	assert_string_equal(drain(), line("warn two\n"));
}

static void test_level_filter(void **state)
{
	char expect[512];

	(void)state;
	log_set_level(LOG_LEVEL_WARN);
	log_debug(1, "d");
	log_info(1, "i");
	log_warn(1, "w");
	log_error(1, "e");
	snprintf(expect, sizeof(expect), "%s", line("warn [c1] w\n"));
	strncat(expect, line("error [c1] e\n"), sizeof(expect) - strlen(expect) - 1);
	assert_string_equal(drain(), expect);

	log_set_level(LOG_LEVEL_ERROR);
	assert_false(log_enabled(LOG_LEVEL_WARN));
	log_warn(0, "w");
	log_error(0, "e");
	assert_string_equal(drain(), line("error e\n"));

	log_set_level(LOG_LEVEL_INFO);
	assert_true(log_enabled(LOG_LEVEL_INFO));
	assert_false(log_enabled(LOG_LEVEL_DEBUG));
	log_debug(0, "d");
	log_info(0, "i");
	assert_string_equal(drain(), line("info i\n"));
}

static int debug_args_evaluated;

static int count_evaluation(void)
{
	return ++debug_args_evaluated;
}

static void test_debug_args_not_evaluated(void **state)
{
	(void)state;
	log_set_level(LOG_LEVEL_INFO);
	log_debug(0, "%d", count_evaluation());
	assert_int_equal(debug_args_evaluated, 0);
	log_set_level(LOG_LEVEL_DEBUG);
	log_debug(0, "%d", count_evaluation());
	assert_int_equal(debug_args_evaluated, 1);
	assert_string_equal(drain(), line("debug 1\n"));
}

static void test_errno_preserved(void **state)
{
	(void)state;
	errno = ENOSPC;
	log_warn(0, "written");
	assert_int_equal(errno, ENOSPC);

	errno = ECONNRESET;
	log_debug(0, "filtered");
	assert_int_equal(errno, ECONNRESET);

	/* A failing write must not leak its errno either. */
	log_set_fd_for_test(-1);
	errno = ETIMEDOUT;
	log_error(0, "nowhere");
	assert_int_equal(errno, ETIMEDOUT);
	log_set_fd_for_test(987654);
	log_error(0, "bad fd");
	assert_int_equal(errno, ETIMEDOUT);
	log_set_fd_for_test(pipe_fds[1]);

	/* %m sees the caller's errno, not one clobbered by the formatting. */
	errno = ENOSPC;
	log_error(0, "write: %m");
	assert_int_equal(errno, ENOSPC);
	assert_string_equal(drain(), line("warn written\nmigrdma[%d] error write: %s\n",
					  (int)getpid(), strerror(ENOSPC)));
}

static void test_truncation(void **state)
{
	char big[3000];
	const char *out;
	size_t len;

	(void)state;
	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_warn(9, "%s", big);
	out = drain();
	len = strlen(out);
	assert_int_equal(len, 1024);
	line("warn [c9] qqq");
	assert_memory_equal(out, want, strlen(want));
	assert_string_equal(out + len - 5, "q...\n");
	assert_ptr_equal(strchr(out, '\n'), out + len - 1);

	/* Exactly filling the line is not truncation. */
	len = 1023 - strlen(line("warn "));
	memset(big, 'r', len);
	big[len] = '\0';
	log_warn(0, "%s", big);
	out = drain();
	assert_int_equal(strlen(out), 1024);
	assert_string_equal(out + 1024 - 3, "rr\n");
}

#define THREADS 4
#define LINES_PER_THREAD 400

static void *writer(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	int i;

	for (i = 0; i < LINES_PER_THREAD; i++)
		log_warn(id, "line %d %0200d end", i, i);
	return NULL;
}

/* Lines from concurrent threads arrive whole, never interleaved. */
static void test_threads_do_not_interleave(void **state)
{
	static char buf[1 << 20];
	char prefix[64], *p, *nl;
	pthread_t threads[THREADS];
	int counts[THREADS + 1] = { 0 };
	size_t len = 0;
	unsigned id;
	ssize_t n;
	int i, lines = 0;

	(void)state;
	/* Blocking writes: the reader below keeps the pipe flowing. */
	fcntl(pipe_fds[1], F_SETFL, 0);
	for (i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, writer,
						(void *)(uintptr_t)(i + 1)), 0);
	while (lines < THREADS * LINES_PER_THREAD && len < sizeof(buf) - 1) {
		n = read(pipe_fds[0], buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EAGAIN) {
			usleep(1000);
			continue;
		}
		assert_true(n > 0);
		len += (size_t)n;
		buf[len] = '\0';
		lines = 0;
		for (p = buf; (p = strchr(p, '\n')); p++)
			lines++;
	}
	for (i = 0; i < THREADS; i++)
		pthread_join(threads[i], NULL);
	fcntl(pipe_fds[1], F_SETFL, O_NONBLOCK);

	snprintf(prefix, sizeof(prefix), "migrdma[%d] warn [c", (int)getpid());
	for (p = buf; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		assert_non_null(nl);
		assert_memory_equal(p, prefix, strlen(prefix));
		id = (unsigned)strtoul(p + strlen(prefix), NULL, 10);
		assert_in_range(id, 1, THREADS);
		counts[id]++;
		assert_memory_equal(nl - 4, " end", 4);
		assert_null(memchr(p + strlen(prefix), 'm', (size_t)(nl - p) - strlen(prefix)));
	}
	for (i = 1; i <= THREADS; i++)
		assert_int_equal(counts[i], LINES_PER_THREAD);
}

static void test_init_file(void **state)
{
	char dir[] = "/tmp/migrdma-log-XXXXXX";
	struct migrdma_config cfg;
	char path[128], path2[128], buf[4096];
	int fd, first_fd;
	ssize_t n;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/a.log", dir);
	snprintf(path2, sizeof(path2), "%s/b.log", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "old\n", 4), 4);
	close(fd);

	memset(&cfg, 0, sizeof(cfg));
	cfg.log_level = LOG_LEVEL_INFO;
	strcpy(cfg.log_file, path);
	errno = EXDEV;
	log_init(cfg.log_level, cfg.log_file);
	assert_int_equal(errno, EXDEV);
	first_fd = log_fd();
	assert_true(first_fd > STDERR_FILENO);
	assert_true(fcntl(first_fd, F_GETFD) & FD_CLOEXEC);
	assert_true(log_enabled(LOG_LEVEL_INFO));
	assert_false(log_enabled(LOG_LEVEL_DEBUG));
	log_info(2, "to file");

	fd = open(path, O_RDONLY);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n > 0);
	buf[n] = '\0';
	/* Appended, not truncated. */
	snprintf(want, sizeof(want), "old\nmigrdma[%d] info [c2] to file\n", (int)getpid());
	assert_string_equal(buf, want);

	/* Re-initialising keeps the descriptor number, so no thread is misdirected. */
	strcpy(cfg.log_file, path2);
	log_init(cfg.log_level, cfg.log_file);
	assert_int_equal(log_fd(), first_fd);
	log_info(0, "second");
	fd = open(path2, O_RDONLY);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, line("info second\n"));

	cfg.log_file[0] = '\0';
	log_init(cfg.log_level, cfg.log_file);
	assert_int_equal(log_fd(), STDERR_FILENO);
	/* The file we opened was closed, not leaked. */
	assert_int_equal(fcntl(first_fd, F_GETFD), -1);

	unlink(path);
	unlink(path2);
	rmdir(dir);
}

static void test_init_fallback(void **state)
{
	struct migrdma_config cfg;
	int saved_stderr;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.log_level = LOG_LEVEL_WARN;
	strcpy(cfg.log_file, "/nonexistent-migrdma-dir/x.log");

	saved_stderr = dup(STDERR_FILENO);
	assert_true(saved_stderr >= 0);
	assert_int_equal(dup2(pipe_fds[1], STDERR_FILENO), STDERR_FILENO);
	errno = 0;
	log_init(cfg.log_level, cfg.log_file);
	assert_int_equal(errno, 0);
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);

	assert_int_equal(log_fd(), STDERR_FILENO);
	assert_string_equal(drain(), line("warn cannot open MIGRDMA_LOG_FILE "
					  "\"/nonexistent-migrdma-dir/x.log\": %s; logging to stderr\n",
					  strerror(ENOENT)));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_before_init),
		T(test_format),
		T(test_trailing_newline),
		T(test_level_filter),
		T(test_debug_args_not_evaluated),
		T(test_errno_preserved),
		T(test_truncation),
		T(test_threads_do_not_interleave),
		T(test_init_file),
		T(test_init_fallback),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
