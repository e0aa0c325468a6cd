/* SPDX-License-Identifier: MIT */
/*
 * The one table of real libc functions, found with dlsym(RTLD_NEXT), built
 * from interposed.def.  Everything migrdma does on its own fds and memory
 * goes through it, never through its own interposers: shim/ and rdma/
 * call REAL(name), never a bare interposed name (tests/preload/self_bound.sh
 * checks the built library).  Entries resolve on first use, so interposers
 * work even when another library's constructor calls them before ours ran.
 */
#ifndef MIGRDMA_COMMON_REAL_H
#define MIGRDMA_COMMON_REAL_H

#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

struct real_fns {
#define INTERPOSE(ret, name, params) ret (*name) params;
#define REAL_ONLY(ret, name, params) ret (*name) params;
#include "interposed.def"
#undef INTERPOSE
#undef REAL_ONLY
};

extern struct real_fns real;

/* Resolve every entry (idempotent, thread-safe). */
void real_resolve(void);

/* The real function name, resolved on first use. */
#define REAL(name) (real.name ? real.name : (real_resolve(), real.name))

#endif
