// SPDX-License-Identifier: MIT
/*
 * Crash backtraces through libunwind.
 *
 * Everything reachable from the signal handler is async-signal-safe: numbers
 * are formatted by hand into stack buffers and written with write(2); no
 * stdio, no malloc, no locks.  The program may have crashed inside any of
 * those.
 */
#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "backtrace.h"
#include "common/log.h"
#include "common/real.h"

#define BT_MAX_FRAMES 64
#define BT_LINE_MAX 256
#define BT_NAME_MAX 160

/* libunwind walks DWARF on this stack; the kernel's signal frame needs room too. */
#define BT_ALTSTACK_SIZE (128 * 1024)

static const int fatal_signals[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };

/* Thread id of the thread writing a crash report, 0 if none. */
static atomic_long crash_owner;

struct line {
	char buf[BT_LINE_MAX];
	size_t len;
};

static void line_put(struct line *l, const char *s)
{
	while (*s && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = *s++;
}

static void line_dec(struct line *l, unsigned long v)
{
	char tmp[24];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = tmp[--n];
}

static void line_hex(struct line *l, unsigned long v)
{
	static const char digits[] = "0123456789abcdef";
	char tmp[24];
	size_t n = 0;

	do {
		tmp[n++] = digits[v & 15];
		v >>= 4;
	} while (v);
	line_put(l, "0x");
	while (n && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = tmp[--n];
}

/* The newline always fits: the helpers above stop one byte short. */
static void line_write(int fd, struct line *l)
{
	size_t off = 0;
	ssize_t n;

	l->buf[l->len++] = '\n';
	while (off < l->len) {
		n = REAL(write)(fd, l->buf + off, l->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	l->len = 0;
}

static void line_prefix(struct line *l)
{
	line_put(l, "migrdma[");
	line_dec(l, (unsigned long)getpid());
	line_put(l, "] ");
}

static const char *signal_name(int sig)
{
	switch (sig) {
	case SIGSEGV:
		return "SIGSEGV";
	case SIGBUS:
		return "SIGBUS";
	case SIGILL:
		return "SIGILL";
	case SIGFPE:
		return "SIGFPE";
	case SIGABRT:
		return "SIGABRT";
	}
	return "?";
}

static void write_frames(int fd, unw_cursor_t *cursor)
{
	char name[BT_NAME_MAX];
	struct line l = { .len = 0 };
	unw_word_t ip, off;
	int i, r;

	for (i = 0; i < BT_MAX_FRAMES; i++) {
		if (unw_get_reg(cursor, UNW_REG_IP, &ip) < 0 || !ip)
			return;
		line_put(&l, "  #");
		line_dec(&l, (unsigned long)i);
		line_put(&l, " ");
		line_hex(&l, (unsigned long)ip);
		line_put(&l, " ");
		/* -UNW_ENOMEM still fills name, truncated: better than nothing. */
		r = unw_get_proc_name(cursor, name, sizeof(name), &off);
		if (r == 0 || r == -UNW_ENOMEM) {
			name[sizeof(name) - 1] = '\0';
			line_put(&l, name);
			line_put(&l, "+");
			line_hex(&l, (unsigned long)off);
		} else {
			line_put(&l, "?");
		}
		line_write(fd, &l);

		if (unw_step(cursor) <= 0)
			return;
	}
	line_put(&l, "  ... (more frames not shown)");
	line_write(fd, &l);
}

static void write_unavailable(int fd)
{
	struct line l = { .len = 0 };

	line_put(&l, "  (backtrace unavailable)");
	line_write(fd, &l);
}

void backtrace_write(int fd)
{
	int saved_errno = errno;
	unw_context_t ctx;
	unw_cursor_t cursor;

	if (fd < 0)
		goto out;
	if (unw_getcontext(&ctx) < 0 || unw_init_local(&cursor, &ctx) < 0) {
		write_unavailable(fd);
		goto out;
	}
	/* Start at our caller: this function is not part of the story. */
	if (unw_step(&cursor) > 0)
		write_frames(fd, &cursor);
out:
	errno = saved_errno;
}

/*
 * The interrupted code's frames, without the handler's own: unwinding from
 * the kernel's ucontext starts exactly at the faulting instruction, where
 * walking out of the handler would depend on how this libunwind port marks
 * the signal trampoline.
 */
static void write_crash_frames(int fd, void *uctx)
{
	unw_context_t ctx;
	unw_cursor_t cursor;

	if (uctx && unw_init_local2(&cursor, (unw_context_t *)uctx,
				    UNW_INIT_SIGNAL_FRAME) == 0) {
		write_frames(fd, &cursor);
		return;
	}
	/* Show everything, handler included, rather than nothing. */
	if (unw_getcontext(&ctx) < 0 || unw_init_local(&cursor, &ctx) < 0) {
		write_unavailable(fd);
		return;
	}
	write_frames(fd, &cursor);
}

static void write_crash_header(int fd, int sig, const siginfo_t *si)
{
	struct line l = { .len = 0 };

	line_prefix(&l);
	line_put(&l, "error: fatal signal ");
	line_dec(&l, (unsigned long)sig);
	line_put(&l, " (");
	line_put(&l, signal_name(sig));
	line_put(&l, ")");
	/* Only a fault raised by the CPU has a meaningful address. */
	if (si && si->si_code > 0) {
		line_put(&l, " at ");
		line_hex(&l, (unsigned long)si->si_addr);
	}
	line_put(&l, "; backtrace:");
	line_write(fd, &l);
}

static void die_by(int sig)
{
	struct sigaction sa;
	sigset_t set;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);

	/*
	 * Pending while blocked, delivered as soon as we unblock it: the
	 * process ends with this signal's default action and its core.
	 */
	syscall(SYS_tgkill, (long)getpid(), (long)syscall(SYS_gettid), (long)sig);
	sigemptyset(&set);
	sigaddset(&set, sig);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	/* Still here: returning re-executes a faulting instruction anyway. */
}

static void crash_handler(int sig, siginfo_t *si, void *uctx)
{
	long self = syscall(SYS_gettid);
	long expected = 0;
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 10 * 1000 * 1000 };
	int fd, i;

	if (!atomic_compare_exchange_strong(&crash_owner, &expected, self)) {
		/*
		 * We crashed while reporting (expected == self): stop now.
		 * Another thread is reporting: let it finish, it will take
		 * the process down with it.
		 */
		for (i = 0; expected != self && i < 200; i++)
			nanosleep(&ts, NULL);
		die_by(sig);
		return;
	}

	fd = log_fd();
	if (fd < 0)
		fd = STDERR_FILENO;
	write_crash_header(fd, sig, si);
	write_crash_frames(fd, uctx);
	die_by(sig);
}

/*
 * Only the installing thread gets one: other threads are out of our reach.
 * Their own stacks serve every crash except a stack overflow.
 */
static void install_altstack(void)
{
	long page = sysconf(_SC_PAGESIZE);
	stack_t cur, ss;
	char *p;

	if (page <= 0)
		page = 4096;
	if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
		return;

	p = REAL(mmap)(NULL, BT_ALTSTACK_SIZE + (size_t)page, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (p == MAP_FAILED)
		return;
	/* Guard page below: overflowing the handler stack faults, not corrupts. */
	REAL(mprotect)(p, (size_t)page, PROT_NONE);

	memset(&ss, 0, sizeof(ss));
	ss.ss_sp = p + page;
	ss.ss_size = BT_ALTSTACK_SIZE;
	if (sigaltstack(&ss, NULL) < 0)
		REAL(munmap)(p, BT_ALTSTACK_SIZE + (size_t)page);
}

void backtrace_install(void)
{
	int saved_errno = errno;
	struct sigaction sa, old;
	bool installed = false;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = crash_handler;
	sa.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_ONSTACK;
	/* Nothing else should run on top of a crash report. */
	sigfillset(&sa.sa_mask);

	for (i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++) {
		int sig = fatal_signals[i];

		if (sigaction(sig, NULL, &old) < 0)
			continue;
		/* The program's own handler (or SIG_IGN) wins. */
		if (old.sa_handler != SIG_DFL)
			continue;
		if (sigaction(sig, &sa, NULL) == 0)
			installed = true;
	}
	if (installed)
		install_altstack();
	errno = saved_errno;
}
