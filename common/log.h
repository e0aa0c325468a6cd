/* SPDX-License-Identifier: MIT */
/*
 * One-line logging: "migrdma[PID] LEVEL [cN] message".
 *
 * Safe to call before log_init() (goes to stderr at level notice), from any
 * thread, and from the transport.  Writes with a single write(2) per line so
 * lines from threads never interleave, through the real write(): never
 * through the interposer, even if the log fd number is a diverted socket.
 * Part of common/, which rdma/ and shim/ both use.
 */
#ifndef MIGRDMA_COMMON_LOG_H
#define MIGRDMA_COMMON_LOG_H

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_NOTICE,		/* the default: one line per connection when it closes */
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

/*
 * Log at level to file (opened O_APPEND|O_CLOEXEC), or to stderr when file
 * is NULL or empty.
 */
void log_init(enum log_level level, const char *file);

/* The fd lines go to (stderr until log_init opened a file); -1 if none. */
int log_fd(void);

/* Is level enabled?  Cheap; use it to guard expensive debug formatting. */
int log_enabled(enum log_level level);

/*
 * Send lines to fd instead (not closed by us), for tests that read them back
 * through a pipe.  log_init() switches back to its own destination.
 */
void log_set_fd_for_test(int fd);

/* Change the level chosen by log_init(); mainly for tests. */
void log_set_level(enum log_level level);

/* conn_id 0 means "not about one connection" and omits the [cN] tag. */
void mlog(enum log_level level, unsigned conn_id, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_error(id, ...) mlog(LOG_LEVEL_ERROR, (id), __VA_ARGS__)
#define log_warn(id, ...)  mlog(LOG_LEVEL_WARN, (id), __VA_ARGS__)
#define log_notice(id, ...) mlog(LOG_LEVEL_NOTICE, (id), __VA_ARGS__)
#define log_info(id, ...)  mlog(LOG_LEVEL_INFO, (id), __VA_ARGS__)
#define log_debug(id, ...) do { if (log_enabled(LOG_LEVEL_DEBUG)) mlog(LOG_LEVEL_DEBUG, (id), __VA_ARGS__); } while (0)

#endif
