/* SPDX-License-Identifier: MIT */
/* What the hostile-peer test programs share. */
#ifndef MIGRDMA_TESTS_HOSTILE_UTIL_H
#define MIGRDMA_TESTS_HOSTILE_UTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static inline double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One failure line, head then message, flushed before the caller exits. */
static inline void print_failure(const char *head, const char *fmt, va_list ap)
{
	fputs(head, stdout);
	vprintf(fmt, ap);
	putchar('\n');
	fflush(stdout);
}

#endif
