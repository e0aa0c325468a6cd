/* SPDX-License-Identifier: MIT */
/*
 * Crash backtraces: on SIGSEGV, SIGBUS, SIGILL, SIGFPE or SIGABRT the
 * library writes a libunwind backtrace to the log, restores the previous
 * disposition and re-raises, so the process dies exactly as it would have.
 * Installed only when the library is active (never when inert), and never
 * over a handler the program already installed.
 */
#ifndef MIGRDMA_SHIM_BACKTRACE_H
#define MIGRDMA_SHIM_BACKTRACE_H

void backtrace_install(void);

/* Write the current thread's backtrace to fd, async-signal-safely. */
void backtrace_write(int fd);

#endif
