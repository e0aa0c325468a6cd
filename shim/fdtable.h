/* SPDX-License-Identifier: MIT */
/*
 * The fd table: which file descriptors migrdma diverted (and to what), and
 * which are its own internal ones that the program's close loops must not
 * close.
 *
 * Lookups are lock-free and allocation-free, so the passthrough path of
 * every interposer costs one or two loads: safe in signal handlers and
 * before initialisation.  Pages are allocated on first use.
 */
#ifndef MIGRDMA_SHIM_FDTABLE_H
#define MIGRDMA_SHIM_FDTABLE_H

#include <stdbool.h>

#define FDTABLE_MAX_FD (1 << 20)

/* The object diverted at fd, or NULL.  Lock-free. */
void *fdtable_get(int fd);

/* Map fd to obj (NULL clears).  Returns the previous object; -1 fd range → NULL. */
void *fdtable_set(int fd, void *obj);

bool fdtable_is_internal(int fd);
/* Returns -1 if fd is out of range or a page cannot be allocated. */
int fdtable_mark_internal(int fd, bool internal);

/*
 * Iterate the fds in [first, last] that are diverted (want_internal false)
 * or internal (want_internal true), in ascending order: returns the next
 * such fd >= from, or -1.
 */
int fdtable_next(int from, int last, bool want_internal);

/* Forget everything (after fork in the child, and for tests). */
void fdtable_reset(void);

#endif
