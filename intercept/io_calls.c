// SPDX-License-Identifier: MIT
/* The data path: read and write families, fortified variants included. */
#undef _FORTIFY_SOURCE
#include <errno.h>
#include <string.h>

#include "intercept.h"

extern void __chk_fail(void) __attribute__((noreturn));
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
		       __SOCKADDR_ARG addr, socklen_t *addrlen);

static ssize_t recv_one(struct msock *ms, void *buf, size_t n, int flags, const char *call)
{
	struct iovec iov = { buf, n };
	ssize_t ret = shim_recv(ms, &iov, 1, flags);

	shim_trace(ms, call, ret);
	shim_put(ms);
	return ret;
}

static ssize_t send_iov(struct msock *ms, const struct iovec *iov, int iovcnt, int flags,
			const char *call)
{
	ssize_t ret = shim_send(ms, iov, iovcnt, flags);

	shim_trace(ms, call, ret);
	shim_put(ms);
	return ret;
}

/*
 * The fortified variants share these bodies: calling the exported name
 * would go through the PLT, as a call from the program does.
 */
static ssize_t do_read(int fd, void *buf, size_t n)
{
	struct msock *ms = shim_get(fd);

	if (!ms)
		return REAL(read)(fd, buf, n);
	return recv_one(ms, buf, n, 0, "read");
}

static ssize_t do_recv(int fd, void *buf, size_t n, int flags)
{
	struct msock *ms = shim_get(fd);

	if (!ms)
		return REAL(recv)(fd, buf, n, flags);
	return recv_one(ms, buf, n, flags, "recv");
}

static ssize_t do_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr,
			   socklen_t *addrlen)
{
	struct msock *ms = shim_get(fd);

	if (!ms)
		return REAL(recvfrom)(fd, buf, n, flags, addr, addrlen);
	/* A connected stream socket reports no source address. */
	if (addr && addrlen)
		*addrlen = 0;
	return recv_one(ms, buf, n, flags, "recvfrom");
}

MIGRDMA_EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	return do_read(fd, buf, n);
}

MIGRDMA_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	return do_read(fd, buf, n);
}

MIGRDMA_EXPORT ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
	struct msock *ms = shim_get(fd);
	ssize_t ret;

	if (!ms)
		return REAL(readv)(fd, iov, iovcnt);
	ret = shim_recv(ms, iov, iovcnt, 0);
	shim_trace(ms, "readv", ret);
	shim_put(ms);
	return ret;
}

MIGRDMA_EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	return do_recv(fd, buf, n, flags);
}

MIGRDMA_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
	if (n > buflen)
		__chk_fail();
	return do_recv(fd, buf, n, flags);
}

MIGRDMA_EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, __SOCKADDR_ARG addr,
				socklen_t *addrlen)
{
	return do_recvfrom(fd, buf, n, flags, SA(addr), addrlen);
}

MIGRDMA_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
				      __SOCKADDR_ARG addr, socklen_t *addrlen)
{
	if (n > buflen)
		__chk_fail();
	return do_recvfrom(fd, buf, n, flags, SA(addr), addrlen);
}

MIGRDMA_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	struct msock *ms = shim_get(fd);
	ssize_t ret;

	if (!ms)
		return REAL(recvmsg)(fd, msg, flags);
	if (!msg) {
		shim_put(ms);
		errno = EFAULT;
		return -1;
	}
	ret = shim_recv(ms, msg->msg_iov, (int)msg->msg_iovlen, flags);
	if (ret >= 0) {
		msg->msg_namelen = 0;
		msg->msg_controllen = 0;
		msg->msg_flags = 0;
	}
	shim_trace(ms, "recvmsg", ret);
	shim_put(ms);
	return ret;
}

MIGRDMA_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	struct msock *ms = shim_get(fd);
	struct iovec iov = { (void *)buf, n };

	if (!ms)
		return REAL(write)(fd, buf, n);
	return send_iov(ms, &iov, 1, 0, "write");
}

MIGRDMA_EXPORT ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
	struct msock *ms = shim_get(fd);

	if (!ms)
		return REAL(writev)(fd, iov, iovcnt);
	return send_iov(ms, iov, iovcnt, 0, "writev");
}

MIGRDMA_EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	struct msock *ms = shim_get(fd);
	struct iovec iov = { (void *)buf, n };

	if (!ms)
		return REAL(send)(fd, buf, n, flags);
	return send_iov(ms, &iov, 1, flags, "send");
}

MIGRDMA_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags,
			      __CONST_SOCKADDR_ARG addr, socklen_t addrlen)
{
	struct msock *ms = shim_get(fd);
	struct iovec iov = { (void *)buf, n };

	if (!ms)
		return REAL(sendto)(fd, buf, n, flags, SA(addr), addrlen);
	/* Like TCP: a destination on a connected stream socket is ignored. */
	return send_iov(ms, &iov, 1, flags, "sendto");
}

MIGRDMA_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	struct msock *ms = shim_get(fd);

	if (!ms)
		return REAL(sendmsg)(fd, msg, flags);
	if (!msg) {
		shim_put(ms);
		errno = EFAULT;
		return -1;
	}
	return send_iov(ms, msg->msg_iov, (int)msg->msg_iovlen, flags, "sendmsg");
}
