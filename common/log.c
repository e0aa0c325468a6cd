// SPDX-License-Identifier: MIT
/*
 * Line logging for the preload library.
 *
 * Lines are built on the stack and handed to the kernel in one write(2), so
 * threads never interleave and no stdio stream or lock is involved: the
 * program may be holding any of those when we log.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "real.h"

/* Long enough for any message we write, short enough for a coroutine stack. */
#define LOG_LINE_MAX 1024

/* Keep clear of 0-2: a daemonizing program dup2()s /dev/null over them. */
#define LOG_FD_MIN 3

static atomic_int log_level_cur = LOG_LEVEL_NOTICE;
static atomic_int log_fd_cur = STDERR_FILENO;

/* The file log_init() opened, if any; only log_init() touches it. */
static int log_owned_fd = -1;

static const char *const level_words[] = {
	[LOG_LEVEL_ERROR] = "error",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_NOTICE] = "notice",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

int log_fd(void)
{
	return atomic_load_explicit(&log_fd_cur, memory_order_relaxed);
}

int log_enabled(enum log_level level)
{
	return (int)level <= atomic_load_explicit(&log_level_cur, memory_order_relaxed);
}

void log_set_fd_for_test(int fd)
{
	atomic_store(&log_fd_cur, fd);
}

void log_set_level(enum log_level level)
{
	atomic_store(&log_level_cur, (int)level);
}

static void log_use_stderr(void)
{
	int old = log_owned_fd;

	atomic_store(&log_fd_cur, STDERR_FILENO);
	log_owned_fd = -1;
	if (old >= 0)
		REAL(close)(old);
}

static void log_use_file(int fd)
{
	int cur = atomic_load(&log_fd_cur);
	int old = log_owned_fd;

	/*
	 * Re-initialising: replace the file under the same descriptor number
	 * so a thread that already loaded it never writes to a recycled fd.
	 */
	if (old >= 0 && cur == old && REAL(dup3)(fd, old, O_CLOEXEC) == old) {
		REAL(close)(fd);
		return;
	}
	atomic_store(&log_fd_cur, fd);
	log_owned_fd = fd;
	if (old >= 0)
		REAL(close)(old);
}

void log_init(enum log_level level, const char *file)
{
	int saved_errno = errno;
	int fd, high;

	atomic_store(&log_level_cur, (int)level);

	if (!file || !file[0]) {
		log_use_stderr();
		goto out;
	}

	fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		log_use_stderr();
		log_warn(0, "cannot open MIGRDMA_LOG_FILE \"%s\": %m; logging to stderr",
			 file);
		goto out;
	}
	if (fd < LOG_FD_MIN) {
		high = REAL(fcntl)(fd, F_DUPFD_CLOEXEC, LOG_FD_MIN);
		if (high >= 0) {
			REAL(close)(fd);
			fd = high;
		}
	}
	log_use_file(fd);
out:
	errno = saved_errno;
}

void mlog(enum log_level level, unsigned conn_id, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	int saved_errno = errno;
	size_t len, room;
	va_list ap;
	ssize_t n;
	int fd, r;

	if (!log_enabled(level))
		goto out;
	fd = log_fd();
	if (fd < 0)
		goto out;
	if ((unsigned)level >= sizeof(level_words) / sizeof(level_words[0]))
		level = LOG_LEVEL_DEBUG;

	if (conn_id)
		r = snprintf(line, sizeof(line), "migrdma[%d] %s [c%u] ",
			     (int)getpid(), level_words[level], conn_id);
	else
		r = snprintf(line, sizeof(line), "migrdma[%d] %s ",
			     (int)getpid(), level_words[level]);
	if (r < 0)
		goto out;
	len = (size_t)r;

	/* Leave room for the newline; the caller may use %m. */
	room = sizeof(line) - 1 - len;
	errno = saved_errno;
	va_start(ap, fmt);
	r = vsnprintf(line + len, room + 1, fmt, ap);
	va_end(ap);
	if (r < 0) {
		r = snprintf(line + len, room + 1, "(bad log format \"%s\")", fmt);
		if (r < 0)
			r = 0;
	}

	if ((size_t)r > room) {
		len += room;
		memcpy(line + len - 3, "...", 3);
	} else {
		len += (size_t)r;
		/* Callers sometimes end with '\n'; one line means one line. */
		while (len && line[len - 1] == '\n')
			len--;
	}
	line[len++] = '\n';

	do
		n = REAL(write)(fd, line, len);
	while (n < 0 && errno == EINTR);
out:
	errno = saved_errno;
}
