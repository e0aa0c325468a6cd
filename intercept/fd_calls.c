// SPDX-License-Identifier: MIT
/* fd lifetime and flags: close, close_range, dup family, fcntl, ioctl. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "intercept.h"

MIGRDMA_EXPORT int close(int fd)
{
	/*
	 * An internal fd closed by a library we use (libibverbs closing a
	 * completion channel): the number may go to the program next, and
	 * close_range() must not spare it then.
	 */
	fdtable_mark_internal(fd, false);
	if (!fdtable_get(fd))
		return REAL(close)(fd);
	return shim_close(fd);
}

MIGRDMA_EXPORT int close_range(unsigned first, unsigned last, int flags)
{
	return shim_close_range(first, last, flags);
}

MIGRDMA_EXPORT void closefrom(int lowfd)
{
	if (lowfd < 0)
		lowfd = 0;
	shim_close_range((unsigned)lowfd, ~0U, 0);
}

MIGRDMA_EXPORT int dup(int fd)
{
	int newfd = REAL(dup)(fd);

	if (newfd >= 0 && fdtable_get(fd))
		shim_dup_done(fd, newfd);
	return newfd;
}

MIGRDMA_EXPORT int dup2(int oldfd, int newfd)
{
	int ret = REAL(dup2)(oldfd, newfd);

	/* The kernel closed whatever newfd was: the number is the program's. */
	if (ret >= 0 && newfd != oldfd)
		fdtable_mark_internal(newfd, false);
	if (ret >= 0 && (fdtable_get(oldfd) || fdtable_get(newfd)))
		shim_dup_done(oldfd, newfd);
	return ret;
}

MIGRDMA_EXPORT int dup3(int oldfd, int newfd, int flags)
{
	int ret = REAL(dup3)(oldfd, newfd, flags);

	/* The kernel closed whatever newfd was: the number is the program's. */
	if (ret >= 0 && newfd != oldfd)
		fdtable_mark_internal(newfd, false);
	if (ret >= 0 && (fdtable_get(oldfd) || fdtable_get(newfd)))
		shim_dup_done(oldfd, newfd);
	return ret;
}

/* The part fcntl and fcntl64 share: the kernel does the work, we track it. */
static int fcntl_common(int (*real_fcntl)(int, int, ...), int fd, int cmd, va_list ap)
{
	struct msock *ms;
	long arg = va_arg(ap, long);
	int ret;

	ret = real_fcntl(fd, cmd, arg);
	if (ret < 0 || !fdtable_get(fd))
		return ret;
	switch (cmd) {
	case F_DUPFD:
	case F_DUPFD_CLOEXEC:
		shim_dup_done(fd, ret);
		break;
	case F_SETFL:
		ms = shim_get(fd);
		if (ms) {
			shim_set_nonblock(ms, arg & O_NONBLOCK);
			shim_trace(ms, "fcntl(F_SETFL)", ret);
			shim_put(ms);
		}
		break;
	default:
		break;
	}
	return ret;
}

/*
 * Every fcntl command takes at most one argument, an int or a pointer;
 * reading it as a long is how libc itself forwards it.
 */
MIGRDMA_EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	int ret;

	va_start(ap, cmd);
	ret = fcntl_common(REAL(fcntl), fd, cmd, ap);
	va_end(ap);
	return ret;
}

MIGRDMA_EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	int ret;

	va_start(ap, cmd);
	ret = fcntl_common(REAL(fcntl64), fd, cmd, ap);
	va_end(ap);
	return ret;
}

MIGRDMA_EXPORT int ioctl(int fd, unsigned long request, ...)
{
	struct msock *ms;
	va_list ap;
	void *arg;
	int ret;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (!fdtable_get(fd) || (request != FIONREAD && request != FIONBIO))
		return REAL(ioctl)(fd, request, arg);
	ms = shim_get(fd);
	if (!ms)
		return REAL(ioctl)(fd, request, arg);
	if (request == FIONREAD) {
		ret = shim_fionread(ms, arg);
	} else {
		ret = REAL(ioctl)(fd, request, arg);
		if (ret == 0)
			shim_set_nonblock(ms, *(int *)arg != 0);
	}
	shim_put(ms);
	return ret;
}
