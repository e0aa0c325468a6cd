// SPDX-License-Identifier: MIT
#include "real.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

struct real_fns real;

/* Used when libc lacks a function (close_range before glibc 2.34). */
static int fallback_close_range(unsigned first, unsigned last, int flags)
{
	return (int)syscall(SYS_close_range, first, last, flags);
}

static void fallback_closefrom(int lowfd)
{
	syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0);
}

static void *lookup(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);
	Dl_info mine, theirs;

	/* RTLD_NEXT must never hand back one of our own interposers. */
	if (p && dladdr((void *)real_resolve, &mine) && dladdr(p, &theirs) &&
	    mine.dli_fbase == theirs.dli_fbase) {
		static const char msg[] = "migrdma: dlsym(RTLD_NEXT) found the interposer itself\n";

		/* The table is what is being built: only the kernel is left. */
		syscall(SYS_write, 2, msg, sizeof(msg) - 1);
		abort();
	}
	return p;
}

void real_resolve(void)
{
#define INTERPOSE(ret, name, params) \
	__atomic_store_n((void **)&real.name, lookup(#name), __ATOMIC_RELEASE);
#define REAL_ONLY INTERPOSE
#include "interposed.def"
#undef INTERPOSE
#undef REAL_ONLY
	if (!real.close_range)
		real.close_range = fallback_close_range;
	if (!real.closefrom)
		real.closefrom = fallback_closefrom;
	if (!real.fcntl64)
		real.fcntl64 = real.fcntl;
}
