// SPDX-License-Identifier: MIT
/* Connection set-up and socket-level calls. */
#include <errno.h>

#include "intercept.h"

MIGRDMA_EXPORT int connect(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
	struct msock *ms = shim_get(fd);
	bool handled;
	int ret;

	if (ms) {
		ret = shim_connect_again(ms);
		shim_put(ms);
		return ret;
	}
	ret = shim_connect(fd, SA(addr), len, &handled);
	return handled ? ret : REAL(connect)(fd, SA(addr), len);
}

MIGRDMA_EXPORT int listen(int fd, int backlog)
{
	bool handled;
	int ret = shim_listen(fd, backlog, &handled);

	return handled ? ret : REAL(listen)(fd, backlog);
}

MIGRDMA_EXPORT int accept4(int fd, __SOCKADDR_ARG addr, socklen_t *len, int flags)
{
	struct msock *ms = shim_get(fd);
	int ret;

	if (!ms)
		return REAL(accept4)(fd, SA(addr), len, flags);
	ret = shim_accept(ms, SA(addr), len, flags);
	shim_trace(ms, "accept4", ret);
	shim_put(ms);
	return ret;
}

MIGRDMA_EXPORT int accept(int fd, __SOCKADDR_ARG addr, socklen_t *len)
{
	struct msock *ms = shim_get(fd);
	int ret;

	if (!ms)
		return REAL(accept)(fd, SA(addr), len);
	ret = shim_accept(ms, SA(addr), len, 0);
	shim_trace(ms, "accept", ret);
	shim_put(ms);
	return ret;
}

MIGRDMA_EXPORT int shutdown(int fd, int how)
{
	struct msock *ms = shim_get(fd);
	int ret;

	if (!ms)
		return REAL(shutdown)(fd, how);
	ret = shim_shutdown(ms, how);
	shim_trace(ms, "shutdown", ret);
	shim_put(ms);
	return ret;
}

MIGRDMA_EXPORT int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	struct msock *ms = shim_get(fd);
	int ret;

	if (!ms)
		return REAL(getsockopt)(fd, level, name, val, len);
	ret = shim_getsockopt(ms, level, name, val, len);
	shim_put(ms);
	return ret;
}

MIGRDMA_EXPORT int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	struct msock *ms = shim_get(fd);
	int ret;

	if (!ms)
		return REAL(setsockopt)(fd, level, name, val, len);
	ret = shim_setsockopt(ms, level, name, val, len);
	shim_put(ms);
	return ret;
}

MIGRDMA_EXPORT int getsockname(int fd, __SOCKADDR_ARG addr, socklen_t *len)
{
	struct msock *ms = shim_get(fd);
	int ret;

	if (!ms)
		return REAL(getsockname)(fd, SA(addr), len);
	ret = shim_getsockname(ms, SA(addr), len);
	shim_put(ms);
	return ret;
}

MIGRDMA_EXPORT int getpeername(int fd, __SOCKADDR_ARG addr, socklen_t *len)
{
	struct msock *ms = shim_get(fd);
	int ret;

	if (!ms)
		return REAL(getpeername)(fd, SA(addr), len);
	ret = shim_getpeername(ms, SA(addr), len);
	shim_put(ms);
	return ret;
}
