// SPDX-License-Identifier: MIT
/*
 * Diverted sockets.  A struct msock stands behind every fd the program
 * holds for a diverted connection or listener (dups share one).  It owns
 * the doorbell the program's fd really is, a "shadow" TCP socket that
 * answers socket options exactly as TCP would, and the transport object.
 * This file: its life, and the calls the program makes on it.
 */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/addr.h"
#include "common/log.h"
#include "config.h"
#include "doorbell.h"
#include "init.h"
#include "msock.h"
#include "rdma/transport.h"
#include "shim.h"
#include "stats.h"

void msock_notify(void *arg, unsigned events)
{
	struct msock *ms = arg;

	doorbell_set(&ms->db, events);
}

struct msock *msock_new(bool listener, int domain, const char *role)
{
	struct msock *ms = calloc(1, sizeof(*ms));

	if (!ms)
		return NULL;
	ms->refs = 1;
	ms->is_listener = listener;
	ms->domain = domain;
	ms->shadow_fd = -1;
	ms->rcv_timeout_ms = -1;
	ms->snd_timeout_ms = -1;
	ms->db.app_fd = ms->db.our_fd = -1;
	ms->role = role;
	clock_gettime(CLOCK_MONOTONIC, &ms->t_start);
	return ms;
}

static void write_stats(struct msock *ms)
{
	struct rt_conn_stats rs;
	struct sockaddr_storage ss;
	struct conn_stats s;

	if (!ms->conn)
		return;
	rt_conn_get_stats(ms->conn, &rs);
	memset(&s, 0, sizeof(s));
	s.conn_id = rt_conn_id(ms->conn);
	s.role = ms->role;
	s.transport = "rdma";
	rt_conn_local_addr(ms->conn, &ss);
	addr_format(&ss, s.local, sizeof(s.local));
	rt_conn_peer_addr(ms->conn, &ss);
	addr_format(&ss, s.peer, sizeof(s.peer));
	s.duration_s = stats_seconds_since(&ms->t_start);
	s.bytes_out = rs.bytes_out;
	s.bytes_in = rs.bytes_in;
	s.bytes_out_zerocopy = rs.bytes_out_zerocopy;
	s.bytes_out_send = rs.bytes_out_send;
	s.bytes_backlogged = rs.bytes_backlogged;
	s.registrations = rs.registrations;
	s.registered_bytes_peak = rs.registered_bytes_peak;
	s.writes = rs.writes;
	s.reads = rs.reads;
	s.msgs_out = rs.msgs_out;
	s.msgs_in = rs.msgs_in;
	s.close_reason = rt_conn_end_reason(ms->conn);
	stats_report_closed(&s);
}

static void msock_destroy(struct msock *ms)
{
	int saved = errno;

	if (ms->forked_away) {
		/* The parent still owns the transport objects: only drop our fds. */
		doorbell_destroy(&ms->db);
		goto out;
	}
	if (ms->conn) {
		write_stats(ms);
		log_debug(rt_conn_id(ms->conn), "closed");
		rt_conn_close(ms->conn);
	}
	if (ms->tcp_watch)
		rt_watch_cancel(ms->tcp_watch);
	if (ms->lst)
		rt_listener_close(ms->lst);
	doorbell_destroy(&ms->db);
out:
	if (ms->shadow_fd >= 0) {
		fdtable_mark_internal(ms->shadow_fd, false);
		REAL(close)(ms->shadow_fd);
	}
	free(ms);
	errno = saved;
}

void shim_put(struct msock *ms)
{
	if (__atomic_sub_fetch(&ms->refs, 1, __ATOMIC_ACQ_REL) == 0)
		msock_destroy(ms);
}

void shim_trace(struct msock *ms, const char *call, long ret)
{
	if (!log_enabled(LOG_LEVEL_DEBUG))
		return;
	mlog(LOG_LEVEL_DEBUG, ms->conn ? rt_conn_id(ms->conn) : 0, "%s -> %ld%s%s", call, ret,
	     ret < 0 ? " " : "", ret < 0 ? strerror(errno) : "");
}

void shim_set_nonblock(struct msock *ms, bool nonblock)
{
	__atomic_store_n(&ms->nonblock, nonblock, __ATOMIC_RELEASE);
}

void msock_copy_addr(const struct sockaddr_storage *ss, struct sockaddr *addr,
		      socklen_t *len)
{
	socklen_t actual = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						     : sizeof(struct sockaddr_in);

	if (!addr || !len)
		return;
	memcpy(addr, ss, *len < actual ? *len : actual);
	*len = actual;
}

/* What stops any read or write on ms before it starts, as an errno; 0 if nothing. */
static int io_refused(const struct msock *ms, int iovcnt)
{
	if (ms->forked_away)
		return EBADF;
	if (ms->is_listener)
		return ENOTCONN;
	if (iovcnt < 0 || iovcnt > IOV_MAX)
		return EINVAL;
	return 0;
}

/* The transport's timeout for one call: 0 non-blocking, else SO_*TIMEO or -1. */
static int io_timeout(const struct msock *ms, int flags, const int *timeo_ms)
{
	if (__atomic_load_n(&ms->nonblock, __ATOMIC_ACQUIRE) || (flags & MSG_DONTWAIT))
		return 0;
	return __atomic_load_n(timeo_ms, __ATOMIC_ACQUIRE);
}

static ssize_t io_result(ssize_t ret)
{
	if (ret >= 0)
		return ret;
	errno = (int)-ret;
	return -1;
}

ssize_t shim_send(struct msock *ms, const struct iovec *iov, int iovcnt, int flags)
{
	int err = io_refused(ms, iovcnt);
	ssize_t ret;

	if (!err && (flags & MSG_OOB))
		err = EOPNOTSUPP;
	if (err) {
		errno = err;
		return -1;
	}
	ret = rt_send(ms->conn, iov, iovcnt, flags & MSG_MORE ? RT_SEND_MORE : 0,
		      io_timeout(ms, flags, &ms->snd_timeout_ms));
	/* TCP raises SIGPIPE for a write to a closed stream unless told not to. */
	if (ret == -EPIPE && !(flags & MSG_NOSIGNAL))
		pthread_kill(pthread_self(), SIGPIPE);
	return io_result(ret);
}

ssize_t shim_recv(struct msock *ms, const struct iovec *iov, int iovcnt, int flags)
{
	int err = io_refused(ms, iovcnt);
	int rflags = 0;

	if (!err && (flags & MSG_OOB))
		err = EINVAL;
	/* No zero-copy completions are ever queued here. */
	if (!err && (flags & MSG_ERRQUEUE))
		err = EAGAIN;
	if (err) {
		errno = err;
		return -1;
	}
	if (flags & MSG_PEEK)
		rflags |= RT_RECV_PEEK;
	if (flags & MSG_WAITALL)
		rflags |= RT_RECV_WAITALL;
	/* TCP discards what MSG_TRUNC reads; the buffer may even be NULL. */
	if (flags & MSG_TRUNC)
		rflags |= RT_RECV_TRUNC;
	return io_result(rt_recv(ms->conn, iov, iovcnt, rflags,
				 io_timeout(ms, flags, &ms->rcv_timeout_ms)));
}

int shim_shutdown(struct msock *ms, int how)
{
	int ret;

	if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR) {
		errno = EINVAL;
		return -1;
	}
	if (ms->forked_away) {
		errno = EBADF;
		return -1;
	}
	if (ms->is_listener) {
		rt_listener_shutdown(ms->lst);
		return 0;
	}
	ret = rt_shutdown(ms->conn, how);
	if (ret) {
		errno = -ret;
		return -1;
	}
	return 0;
}

static int put_int(void *val, socklen_t *len, int v)
{
	if (!val || !len || *len < sizeof(int)) {
		errno = EINVAL;
		return -1;
	}
	memcpy(val, &v, sizeof(v));
	*len = sizeof(int);
	return 0;
}

int shim_getsockopt(struct msock *ms, int level, int name, void *val, socklen_t *len)
{
	if (level == SOL_SOCKET) {
		switch (name) {
		case SO_ERROR:
			return put_int(val, len, ms->conn && !ms->forked_away ?
					       rt_conn_error(ms->conn) : 0);
		case SO_TYPE:
			return put_int(val, len, SOCK_STREAM);
		case SO_DOMAIN:
			return put_int(val, len, ms->domain);
		case SO_PROTOCOL:
			return put_int(val, len, IPPROTO_TCP);
		case SO_ACCEPTCONN:
			return put_int(val, len, ms->is_listener);
		default:
			break;
		}
	}
	/* Everything else is answered by a real TCP socket of the same kind. */
	return REAL(getsockopt)(ms->shadow_fd, level, name, val, len);
}

bool msock_nodelay(const struct msock *ms)
{
	socklen_t len = sizeof(int);
	int on = 0;

	if (REAL(getsockopt)(ms->shadow_fd, IPPROTO_TCP, TCP_NODELAY, &on, &len))
		return false;
	return on != 0;
}

/* Read the kernel's (rounded) value back, so waits here match what TCP would do. */
static void cache_timeout(struct msock *ms, int name)
{
	struct timeval tv;
	socklen_t len = sizeof(tv);
	long long ms_val = -1;

	if (REAL(getsockopt)(ms->shadow_fd, SOL_SOCKET, name, &tv, &len) == 0 &&
	    (tv.tv_sec || tv.tv_usec)) {
		ms_val = (long long)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
		if (ms_val > INT32_MAX)
			ms_val = -1;
	}
	__atomic_store_n(name == SO_RCVTIMEO ? &ms->rcv_timeout_ms : &ms->snd_timeout_ms,
			 (int)ms_val, __ATOMIC_RELEASE);
}

int shim_setsockopt(struct msock *ms, int level, int name, const void *val, socklen_t len)
{
	int ret;

	if (level == SOL_SOCKET && name == SO_ZEROCOPY) {
		static bool told;

		/*
		 * MSG_ZEROCOPY completions would have to be forged; refusing
		 * lets the program (QEMU's zero-copy-send) say it is unsupported.
		 * QEMU probes SO_ZEROCOPY on every channel whether or not
		 * zero-copy-send is on, so this is no warning; the README's
		 * troubleshooting table maps QEMU's message to the fix.
		 */
		if (!__atomic_exchange_n(&told, true, __ATOMIC_RELAXED))
			log_debug(0, "SO_ZEROCOPY refused on an RDMA connection: migrdma already "
				     "sends page-aligned memory without copying (QEMU: leave "
				     "zero-copy-send off)");
		errno = ENOPROTOOPT;
		return -1;
	}
	ret = REAL(setsockopt)(ms->shadow_fd, level, name, val, len);
	if (ret == 0 && level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO))
		cache_timeout(ms, name);
	if (ret == 0 && level == IPPROTO_TCP && name == TCP_NODELAY && ms->conn &&
	    !ms->forked_away)
		rt_conn_set_nodelay(ms->conn, msock_nodelay(ms));
	return ret;
}

int shim_getsockname(struct msock *ms, struct sockaddr *addr, socklen_t *len)
{
	struct sockaddr_storage ss;

	if (!addr || !len) {
		errno = EFAULT;
		return -1;
	}
	if (ms->is_listener || ms->forked_away)
		return REAL(getsockname)(ms->shadow_fd, addr, len);
	rt_conn_local_addr(ms->conn, &ss);
	if (ss.ss_family == AF_UNSPEC)
		return REAL(getsockname)(ms->shadow_fd, addr, len);
	msock_copy_addr(&ss, addr, len);
	return 0;
}

int shim_getpeername(struct msock *ms, struct sockaddr *addr, socklen_t *len)
{
	struct sockaddr_storage ss;

	if (!addr || !len) {
		errno = EFAULT;
		return -1;
	}
	if (ms->is_listener || ms->forked_away || !rt_conn_established(ms->conn)) {
		errno = ENOTCONN;
		return -1;
	}
	rt_conn_peer_addr(ms->conn, &ss);
	msock_copy_addr(&ss, addr, len);
	return 0;
}

int shim_fionread(struct msock *ms, int *out)
{
	if (ms->is_listener || ms->forked_away) {
		errno = EINVAL;
		return -1;
	}
	*out = (int)rt_conn_readable_bytes(ms->conn);
	return 0;
}

void shim_memory_changed(const void *addr, size_t len)
{
	rt_invalidate_memory(addr, len);
}

void shim_memory_unmapped(const void *addr, size_t len)
{
	rt_forget_memory(addr, len);
	rt_invalidate_memory(addr, len);
}

void shim_memory_advised(const void *addr, size_t len, int advice)
{
	rt_note_advice(addr, len, advice);
}
