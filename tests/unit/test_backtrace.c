// SPDX-License-Identifier: MIT
/*
 * Unit tests for shim/backtrace.c.  Each crash happens in a forked child:
 * the parent checks how the child died and what it wrote to the log pipe.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "shim/backtrace.h"
#include "common/log.h"

static const int fatal_signals[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };

struct child {
	int status;
	char out[32768];
};

static void prepare_child(int log_pipe)
{
	size_t i;

	/* No core files from crashes we cause on purpose. */
	prctl(PR_SET_DUMPABLE, 0);
	/* cmocka catches these itself; a fresh program would have SIG_DFL. */
	for (i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++)
		signal(fatal_signals[i], SIG_DFL);
	log_set_fd_for_test(log_pipe);
}

static void run_child(void (*fn)(void), struct child *c)
{
	size_t len = 0;
	ssize_t n;
	pid_t pid;
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		prepare_child(p[1]);
		backtrace_install();
		fn();
		_exit(0);
	}
	close(p[1]);
	for (;;) {
		n = read(p[0], c->out + len, sizeof(c->out) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	c->out[len] = '\0';
	close(p[0]);
	assert_int_equal(waitpid(pid, &c->status, 0), pid);
}

/* The line holding needle, copied out so it can be checked on its own. */
static const char *find_line(const char *text, const char *needle)
{
	static char buf[512];
	const char *p = strstr(text, needle), *start, *end;
	size_t len;

	if (!p)
		return NULL;
	for (start = p; start > text && start[-1] != '\n'; start--)
		;
	end = strchr(p, '\n');
	len = end ? (size_t)(end - start) : strlen(start);
	if (len >= sizeof(buf))
		len = sizeof(buf) - 1;
	memcpy(buf, start, len);
	buf[len] = '\0';
	return buf;
}

static void assert_died_by(const struct child *c, int sig)
{
	if (!WIFSIGNALED(c->status))
		fail_msg("child did not die by a signal (status 0x%x); output:\n%s",
			 c->status, c->out);
	if (WTERMSIG(c->status) != sig)
		fail_msg("child died by signal %d, not %d; output:\n%s",
			 WTERMSIG(c->status), sig, c->out);
}

/* An inaccessible page rather than NULL: UBSan would stop a NULL store first. */
static int *volatile bad_pointer;

__attribute__((noinline)) void crash_here(void)
{
	*bad_pointer = 1;
}

__attribute__((noinline)) void crash_caller(void)
{
	crash_here();
	/* Keep this frame: no tail call into crash_here. */
	__asm__ volatile("" ::: "memory");
}

static void test_segv(void **state)
{
	static struct child c;
	char header[128];
	const char *l;
	char *page;

	(void)state;
	page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(page != MAP_FAILED);
	bad_pointer = (int *)(page + 8);
	run_child(crash_caller, &c);
	munmap(page, 4096);
	assert_died_by(&c, SIGSEGV);

	snprintf(header, sizeof(header),
		 "error: fatal signal 11 (SIGSEGV) at %p; backtrace:\n", (void *)(page + 8));
	l = strstr(c.out, header);
	if (!l)
		fail_msg("no crash header in:\n%s", c.out);
	/* The header is a whole "migrdma[PID] " line. */
	assert_int_equal(strncmp(c.out, "migrdma[", 8), 0);

	l = find_line(c.out, "  #0 0x");
	if (!l)
		fail_msg("no frame #0 in:\n%s", c.out);
	/* Frame #0 is where the fault was, not the handler. */
	if (!strstr(l, "crash_here+0x"))
		fail_msg("frame #0 is not crash_here: %s\n%s", l, c.out);
	l = find_line(c.out, "  #1 0x");
	assert_non_null(l);
	if (!strstr(l, "crash_caller+0x"))
		fail_msg("frame #1 is not crash_caller: %s\n%s", l, c.out);
	assert_null(strstr(c.out, "crash_handler"));
}

/*
 * Out of reach of inter-procedural optimisation: at -O3 GCC otherwise folds
 * the call through run_child's pointer into a direct call of abort(), and
 * this frame is gone from the very backtrace the test reads.
 */
__attribute__((noinline, noipa)) void do_abort(void)
{
	__asm__ volatile("" ::: "memory");
	abort();
}

static void test_abort(void **state)
{
	static struct child c;

	(void)state;
	run_child(do_abort, &c);
	assert_died_by(&c, SIGABRT);
	/* Raised, not a fault: no address to report. */
	if (!strstr(c.out, "error: fatal signal 6 (SIGABRT); backtrace:\n"))
		fail_msg("no crash header in:\n%s", c.out);
	assert_non_null(strstr(c.out, "\n  #0 0x"));
	assert_non_null(strstr(c.out, "do_abort+0x"));
}

static void do_raise_fpe(void)
{
	raise(SIGFPE);
}

static void test_raised_fpe(void **state)
{
	static struct child c;

	(void)state;
	run_child(do_raise_fpe, &c);
	assert_died_by(&c, SIGFPE);
	assert_non_null(strstr(c.out, "fatal signal 8 (SIGFPE); backtrace:\n"));
	assert_non_null(strstr(c.out, "\n  #0 0x"));
}

static volatile int stop_recursion;

__attribute__((noinline)) int recurse(int depth)
{
	volatile char pad[512];

	pad[0] = (char)depth;
	if (stop_recursion)
		return 0;
	return recurse(depth + 1) + pad[0];
}

static void overflow_stack(void)
{
	recurse(0);
}

/* Only possible with the alternate signal stack: the thread's own is gone. */
static void test_stack_overflow(void **state)
{
	static struct child c;

	(void)state;
	run_child(overflow_stack, &c);
	assert_died_by(&c, SIGSEGV);
	if (!strstr(c.out, "fatal signal 11 (SIGSEGV) at 0x"))
		fail_msg("no crash header in:\n%s", c.out);
	assert_non_null(strstr(c.out, "recurse+0x"));
	assert_non_null(strstr(c.out, "  ... (more frames not shown)\n"));
}

static void my_handler(int sig)
{
	(void)sig;
}

static int check_respects_program_handlers(void)
{
	struct sigaction sa;
	stack_t ss, before;

	/* AddressSanitizer installs an alternate stack of its own first. */
	if (sigaltstack(NULL, &before) < 0)
		return 7;
	signal(SIGSEGV, my_handler);
	signal(SIGBUS, SIG_IGN);
	backtrace_install();

	if (sigaction(SIGSEGV, NULL, &sa) < 0 || sa.sa_handler != my_handler)
		return 1;
	if (sigaction(SIGBUS, NULL, &sa) < 0 || sa.sa_handler != SIG_IGN)
		return 2;
	if (sigaction(SIGILL, NULL, &sa) < 0 || sa.sa_handler == SIG_DFL ||
	    (sa.sa_flags & (SA_SIGINFO | SA_ONSTACK)) != (SA_SIGINFO | SA_ONSTACK))
		return 3;
	if (sigaction(SIGABRT, NULL, &sa) < 0 || sa.sa_handler == SIG_DFL)
		return 4;
	if (sigaltstack(NULL, &ss) < 0 || (ss.ss_flags & SS_DISABLE))
		return 5;
	/* One the thread already had is kept; otherwise ours is big enough for libunwind. */
	if (!(before.ss_flags & SS_DISABLE) ?
	    ss.ss_sp != before.ss_sp || ss.ss_size != before.ss_size : ss.ss_size < 65536)
		return 5;

	/* A second install changes nothing and keeps the same stack. */
	backtrace_install();
	{
		stack_t again;

		if (sigaltstack(NULL, &again) < 0 || again.ss_sp != ss.ss_sp)
			return 6;
	}
	return 0;
}

static void test_respects_program_handlers(void **state)
{
	int p[2], status;
	pid_t pid;

	(void)state;
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prepare_child(p[1]);
		_exit(check_respects_program_handlers());
	}
	close(p[0]);
	close(p[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_backtrace_write(void **state)
{
	char out[8192];
	const char *l;
	size_t len = 0;
	ssize_t n;
	int p[2];

	(void)state;
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	errno = EDOM;
	backtrace_write(p[1]);
	assert_int_equal(errno, EDOM);
	while ((n = read(p[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(p[0]);
	close(p[1]);

	assert_int_equal(strncmp(out, "  #0 0x", 7), 0);
	l = find_line(out, "  #0 0x");
	if (!strstr(l, "test_backtrace_write+0x"))
		fail_msg("frame #0 is not the caller: %s\n%s", l, out);
	assert_null(strstr(out, " backtrace_write+"));

	/* A closed log is not an error worth crashing over. */
	backtrace_write(-1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_segv),
		cmocka_unit_test(test_abort),
		cmocka_unit_test(test_raised_fpe),
		cmocka_unit_test(test_stack_overflow),
		cmocka_unit_test(test_respects_program_handlers),
		cmocka_unit_test(test_backtrace_write),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
