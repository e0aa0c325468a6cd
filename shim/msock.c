// SPDX-License-Identifier: MIT
/*
 * Diverted sockets.  A struct msock stands behind every fd the program
 * holds for a diverted connection or listener (dups share one).  It owns
 * the doorbell the program's fd really is, a "shadow" TCP socket that
 * answers socket options exactly as TCP would, and the transport object.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "doorbell.h"
#include "init.h"
#include "log.h"
#include "rdma/transport.h"
#include "shim.h"
#include "stats.h"
#include "tcptrack.h"

struct msock {
	int refs;			/* atomic: one per fd mapping, one per call in flight */
	int fd_refs;			/* atomic: fd mappings */
	bool is_listener;
	int domain;
	bool nonblock;			/* atomic: O_NONBLOCK of the program's fd */
	bool forked_away;		/* inherited by a child: unusable */
	int rcv_timeout_ms;		/* atomic: SO_RCVTIMEO, -1 = none */
	int snd_timeout_ms;		/* atomic: SO_SNDTIMEO, -1 = none */
	struct doorbell db;
	int shadow_fd;			/* TCP socket for options; holds a listener's port */
	struct rt_conn *conn;
	struct rt_listener *lst;
	bool tcp_listening;		/* MIGRDMA_FALLBACK=tcp: the shadow listens too */
	struct rt_watch *tcp_watch;
	struct sockaddr_storage local;	/* a listener's bound address */
	struct timespec t_start;
	const char *role;
};

/*
 * Readers take it shared to turn a table entry into a reference; close
 * takes it exclusive to remove the entry, so a reference is never taken
 * on a socket being freed.
 */
static pthread_rwlock_t table_lock = PTHREAD_RWLOCK_INITIALIZER;
static bool forked_child;

static void msock_notify(void *arg, unsigned events)
{
	struct msock *ms = arg;

	doorbell_set(&ms->db, events);
}

static struct msock *msock_new(bool listener, int domain, const char *role)
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

	rt_conn_get_stats(ms->conn, &rs);
	memset(&s, 0, sizeof(s));
	s.conn_id = rt_conn_id(ms->conn);
	s.role = ms->role;
	s.transport = "rdma";
	rt_conn_local_addr(ms->conn, &ss);
	stats_format_addr(&ss, s.local, sizeof(s.local));
	rt_conn_peer_addr(ms->conn, &ss);
	stats_format_addr(&ss, s.peer, sizeof(s.peer));
	s.duration_s = stats_seconds_since(&ms->t_start);
	s.bytes_out = rs.bytes_out;
	s.bytes_in = rs.bytes_in;
	s.bytes_out_zerocopy = rs.bytes_out_zerocopy;
	s.bytes_out_send = rs.bytes_out_send;
	s.registrations = rs.registrations;
	s.registered_bytes_peak = rs.registered_bytes_peak;
	s.writes = rs.writes;
	s.reads = rs.reads;
	s.close_reason = rt_conn_end_reason(ms->conn);
	stats_report_closed(&s);
}

static void msock_destroy(struct msock *ms)
{
	int saved = errno;

	if (ms->forked_away) {
		/* The parent still owns the transport objects: only drop our fds. */
		if (ms->db.app_fd >= 0)
			REAL(close)(ms->db.app_fd);
		if (ms->db.our_fd >= 0)
			REAL(close)(ms->db.our_fd);
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

struct msock *shim_get(int fd)
{
	void *p = fdtable_get(fd);
	struct msock *ms;

	/* The passthrough path: one lock-free load for every fd we don't own. */
	if (!p || tcp_track_is(p))
		return NULL;
	pthread_rwlock_rdlock(&table_lock);
	p = fdtable_get(fd);
	ms = p && !tcp_track_is(p) ? p : NULL;
	if (ms)
		__atomic_add_fetch(&ms->refs, 1, __ATOMIC_ACQ_REL);
	pthread_rwlock_unlock(&table_lock);
	return ms;
}

static void install(int fd, struct msock *ms)
{
	void *old;

	__atomic_add_fetch(&ms->refs, 1, __ATOMIC_ACQ_REL);
	__atomic_add_fetch(&ms->fd_refs, 1, __ATOMIC_ACQ_REL);
	pthread_rwlock_wrlock(&table_lock);
	old = fdtable_set(fd, ms);
	pthread_rwlock_unlock(&table_lock);
	if (old && tcp_track_is(old)) {
		tcp_track_forget(old);
	} else if (old && old != ms) {
		/* The fd number was reused behind our back (a close we did not see). */
		__atomic_sub_fetch(&((struct msock *)old)->fd_refs, 1, __ATOMIC_ACQ_REL);
		shim_put(old);
	}
}

/* The last fd of ms is gone: wake anyone still blocked in it. */
static void last_fd_closed(struct msock *ms)
{
	if (ms->forked_away)
		return;
	if (ms->conn && __atomic_load_n(&ms->refs, __ATOMIC_ACQUIRE) > 1)
		rt_shutdown(ms->conn, SHUT_RDWR);
	if (ms->lst)
		rt_listener_shutdown(ms->lst);
}

static void uninstall(int fd)
{
	struct msock *ms;
	void *p;

	pthread_rwlock_wrlock(&table_lock);
	p = fdtable_set(fd, NULL);
	pthread_rwlock_unlock(&table_lock);
	if (!p)
		return;
	if (tcp_track_is(p)) {
		tcp_track_closed(fd, p);
		return;
	}
	ms = p;
	if (__atomic_sub_fetch(&ms->fd_refs, 1, __ATOMIC_ACQ_REL) == 0)
		last_fd_closed(ms);
	shim_put(ms);
}

int shim_close(int fd)
{
	int ret, err;

	/* Forget the mapping before the number can be reused. */
	uninstall(fd);
	ret = REAL(close)(fd);
	err = errno;
	errno = err;
	return ret;
}

void shim_dup_done(int oldfd, int newfd)
{
	struct msock *ms;

	if (newfd == oldfd)
		return;
	uninstall(newfd);
	ms = shim_get(oldfd);
	if (!ms)
		return;
	install(newfd, ms);
	shim_put(ms);
}

int shim_close_range(unsigned first, unsigned last, int flags)
{
	unsigned cur = first;
	int fd, top, ret = 0;

	if (first > last) {
		errno = EINVAL;
		return -1;
	}
	/* Nothing we track lives that high: the kernel can have the whole range. */
	if (flags & CLOSE_RANGE_CLOEXEC || first >= FDTABLE_MAX_FD)
		return REAL(close_range)(first, last, flags);
	top = last >= FDTABLE_MAX_FD ? FDTABLE_MAX_FD - 1 : (int)last;
	/* Diverted fds need our close; internal ones must survive. */
	for (fd = fdtable_next((int)first, top, false); fd >= 0;
	     fd = fdtable_next(fd + 1, top, false))
		uninstall(fd);
	for (fd = fdtable_next((int)first, top, true); fd >= 0;
	     fd = fdtable_next(fd + 1, top, true)) {
		if ((unsigned)fd > cur && REAL(close_range)(cur, (unsigned)fd - 1, flags))
			ret = -1;
		cur = (unsigned)fd + 1;
	}
	if (cur <= last && cur >= first && REAL(close_range)(cur, last, flags))
		ret = -1;
	return ret;
}

void shim_after_fork_child(void)
{
	int fd;

	forked_child = true;
	pthread_rwlock_init(&table_lock, NULL);
	for (fd = fdtable_next(0, FDTABLE_MAX_FD - 1, false); fd >= 0;
	     fd = fdtable_next(fd + 1, FDTABLE_MAX_FD - 1, false)) {
		void *p = fdtable_get(fd);

		/* A plain TCP connection is the parent's to report. */
		if (p && tcp_track_is(p)) {
			fdtable_set(fd, NULL);
			tcp_track_forget(p);
		} else if (p) {
			((struct msock *)p)->forked_away = true;
		}
	}
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

static bool is_tcp_stream(int fd, int *domain)
{
	int type = 0, proto = 0;
	socklen_t len = sizeof(type);

	if (REAL(getsockopt)(fd, SOL_SOCKET, SO_TYPE, &type, &len) || type != SOCK_STREAM)
		return false;
	len = sizeof(proto);
	if (REAL(getsockopt)(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) || proto != IPPROTO_TCP)
		return false;
	len = sizeof(*domain);
	return REAL(getsockopt)(fd, SOL_SOCKET, SO_DOMAIN, domain, &len) == 0;
}

static bool fd_nonblock(int fd)
{
	int fl = REAL(fcntl)(fd, F_GETFL);

	return fl >= 0 && (fl & O_NONBLOCK);
}

static bool fd_cloexec(int fd)
{
	int fl = REAL(fcntl)(fd, F_GETFD);

	return fl >= 0 && (fl & FD_CLOEXEC);
}

static int keep_shadow(int fd)
{
	int shadow = REAL(fcntl)(fd, F_DUPFD_CLOEXEC, 0);

	if (shadow >= 0)
		fdtable_mark_internal(shadow, true);
	return shadow;
}

/* Was the socket bound by the program before connect?  Then keep its address. */
static bool bound_address(int fd, struct sockaddr_storage *ss, socklen_t *len)
{
	*len = sizeof(*ss);
	if (REAL(getsockname)(fd, (struct sockaddr *)ss, len))
		return false;
	if (ss->ss_family == AF_INET)
		return ((struct sockaddr_in *)ss)->sin_addr.s_addr != htonl(INADDR_ANY) ||
		       ((struct sockaddr_in *)ss)->sin_port != 0;
	if (ss->ss_family == AF_INET6)
		return !IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)ss)->sin6_addr) ||
		       ((struct sockaddr_in6 *)ss)->sin6_port != 0;
	return false;
}

static bool fallback_tcp(void)
{
	return shim_config()->fallback == FALLBACK_TCP;
}

/* A matched socket that cannot have RDMA fails (error) or uses TCP (warning). */
static enum log_level fallback_level(void)
{
	return fallback_tcp() ? LOG_LEVEL_WARN : LOG_LEVEL_ERROR;
}

/*
 * Should a failure to reach addr be told at the default level?  Once per
 * address: a program retrying in a loop would otherwise fill the log.
 */
static bool first_report(const struct sockaddr *addr)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static char seen[16][64];
	static unsigned next;
	char where[64];
	bool first = true;
	unsigned i;

	stats_format_addr(addr, where, sizeof(where));
	pthread_mutex_lock(&lock);
	for (i = 0; i < 16 && first; i++)
		first = strcmp(seen[i], where) != 0;
	if (first)
		memcpy(seen[next++ % 16], where, sizeof(where));
	pthread_mutex_unlock(&lock);
	return first;
}

/* The transport cannot start (no RDMA on this host): say so, naming addr. */
static void report_no_rdma(unsigned id, const struct sockaddr *addr, const char *what, int err)
{
	enum log_level level = fallback_level();
	char where[64];

	if (!first_report(addr))
		level = LOG_LEVEL_DEBUG;
	if (!log_enabled(level))
		return;
	stats_format_addr(addr, where, sizeof(where));
	mlog(level, id, "%s %s: no RDMA available (%s): load rdma_ucm, check "
	     "/dev/infiniband/rdma_cm, run `migrdma doctor`; %s", what, where, strerror(err),
	     fallback_tcp() ? "using plain TCP as MIGRDMA_FALLBACK=tcp allows" :
			      "refused (MIGRDMA_FALLBACK=none)");
}

/* MIGRDMA_FALLBACK=tcp: the program's own connect, watched for its close. */
static int connect_plain(int fd, const struct sockaddr *addr, socklen_t len, unsigned id)
{
	int ret = REAL(connect)(fd, addr, len), err = errno;

	if (ret == 0 || err == EINPROGRESS)
		tcp_track_install(fd, "client", id, addr);
	errno = err;
	return ret;
}

/* A bad MIGRDMA_* variable and no explicit fallback: fail closed. */
static int refuse_matched(const struct sockaddr *addr, const char *what)
{
	char where[64];

	stats_format_addr(addr, where, sizeof(where));
	log_debug(0, "%s %s refused: a MIGRDMA_* variable is bad (see the start-up error)",
		  what, where);
	errno = EPERM;
	return -1;
}

int shim_connect(int fd, const struct sockaddr *addr, socklen_t len, bool *handled)
{
	struct sockaddr_storage src;
	socklen_t srclen;
	struct msock *ms;
	bool nonblock, have_src;
	int domain, ret, program_fd;
	unsigned id;

	*handled = false;
	if (!addr || (addr->sa_family != AF_INET && addr->sa_family != AF_INET6) ||
	    tcp_track_is(fdtable_get(fd)))
		return 0;
	if (!shim_active()) {
		if (!shim_refusing(addr, len) || !is_tcp_stream(fd, &domain))
			return 0;
		*handled = true;
		return refuse_matched(addr, "connect to");
	}
	if (!config_match(shim_config(), addr, len) || !is_tcp_stream(fd, &domain))
		return 0;
	*handled = true;
	ret = shim_start_transport();
	if (ret) {
		id = rt_reserve_conn_id();
		report_no_rdma(id, addr, "connect to", -ret);
		if (fallback_tcp())
			return connect_plain(fd, addr, len, id);
		errno = -ret;
		return -1;
	}
	nonblock = fd_nonblock(fd);
	have_src = bound_address(fd, &src, &srclen);
	ms = msock_new(false, domain, "client");
	if (!ms) {
		errno = ENOMEM;
		return -1;
	}
	ms->nonblock = nonblock;
	ms->shadow_fd = keep_shadow(fd);
	ret = doorbell_create(&ms->db, -1, nonblock, true, &program_fd);
	if (ret)
		goto fail;
	/* The program's fd is not replaced yet: closing our spare end is enough. */
	REAL(close)(program_fd);
	/*
	 * With a TCP fallback the outcome must be known before answering, so
	 * even a non-blocking connect waits (bounded by the connect timeout).
	 */
	ret = rt_connect(addr, len, have_src ? (struct sockaddr *)&src : NULL, srclen,
			 nonblock && !fallback_tcp(), msock_notify, ms, &ms->conn);
	if (ret && ret != -EINPROGRESS) {
		id = ms->conn ? rt_conn_id(ms->conn) : rt_reserve_conn_id();
		if (ms->conn) {
			rt_conn_close(ms->conn);
			ms->conn = NULL;
		}
		if (fallback_tcp()) {
			char where[64];

			stats_format_addr(addr, where, sizeof(where));
			log_warn(id, "RDMA connection to %s failed (%s): using plain TCP as "
				 "MIGRDMA_FALLBACK=tcp allows", where, strerror(-ret));
			shim_put(ms);
			return connect_plain(fd, addr, len, id);
		}
		goto fail;
	}
	/* Now put the doorbell where the program's TCP socket was. */
	if (REAL(dup3)(ms->db.app_fd, fd, fd_cloexec(fd) ? O_CLOEXEC : 0) < 0) {
		ret = -errno;
		goto fail;
	}
	install(fd, ms);
	shim_mark_transport_fds();
	log_debug(rt_conn_id(ms->conn), "fd %d diverted (connect)", fd);
	shim_put(ms);
	if (ret == -EINPROGRESS) {
		errno = EINPROGRESS;
		return -1;
	}
	return 0;
fail:
	shim_put(ms);
	errno = -ret;
	return -1;
}

int shim_connect_again(struct msock *ms)
{
	int err;

	if (ms->is_listener) {
		errno = EISCONN;
		return -1;
	}
	err = rt_conn_error(ms->conn);
	if (err) {
		errno = err;
		return -1;
	}
	errno = rt_conn_established(ms->conn) ? EISCONN : EALREADY;
	return -1;
}

static void tcp_fallback_ready(void *arg)
{
	struct msock *ms = arg;

	rt_listener_set_extra_ready(ms->lst, true);
}

/* MIGRDMA_FALLBACK=tcp: peers without migrdma may connect over TCP too. */
static int start_tcp_fallback_listener(struct msock *ms, int backlog)
{
	int fl;

	if (ms->shadow_fd < 0 || REAL(listen)(ms->shadow_fd, backlog))
		return -1;
	fl = REAL(fcntl)(ms->shadow_fd, F_GETFL);
	REAL(fcntl)(ms->shadow_fd, F_SETFL, fl | O_NONBLOCK);
	ms->tcp_watch = rt_watch_fd(ms->shadow_fd, tcp_fallback_ready, ms);
	if (!ms->tcp_watch)
		return -1;
	ms->tcp_listening = true;
	return 0;
}

int shim_listen(int fd, int backlog, bool *handled)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct msock *ms;
	int domain, ret, program_fd;
	struct msock *existing;
	bool active;

	*handled = false;
	existing = shim_get(fd);
	if (existing) {
		/* listen() again on our listener only changes the backlog. */
		*handled = true;
		shim_put(existing);
		return 0;
	}
	active = shim_active();
	if ((!active && !shim_refusing(NULL, 0)) || !is_tcp_stream(fd, &domain) ||
	    REAL(getsockname)(fd, (struct sockaddr *)&ss, &len))
		return 0;
	if ((ss.ss_family == AF_INET && ((struct sockaddr_in *)&ss)->sin_port == 0) ||
	    (ss.ss_family == AF_INET6 && ((struct sockaddr_in6 *)&ss)->sin6_port == 0))
		return 0;	/* unbound: no rule can name its port yet */
	if (!active) {
		if (!shim_refusing((struct sockaddr *)&ss, len))
			return 0;
		*handled = true;
		return refuse_matched((struct sockaddr *)&ss, "listen on");
	}
	if (!config_match(shim_config(), (struct sockaddr *)&ss, len))
		return 0;
	ret = shim_start_transport();
	if (ret) {
		report_no_rdma(0, (struct sockaddr *)&ss, "listen on", -ret);
		if (fallback_tcp())
			return 0;
		*handled = true;
		errno = -ret;
		return -1;
	}
	*handled = true;
	ms = msock_new(true, domain, "server");
	if (!ms) {
		errno = ENOMEM;
		return -1;
	}
	ms->local = ss;
	ms->nonblock = fd_nonblock(fd);
	ms->shadow_fd = keep_shadow(fd);
	ret = rt_listen((struct sockaddr *)&ss, len, backlog, msock_notify, ms, &ms->lst);
	if (ret) {
		if (fallback_tcp()) {
			log_warn(0, "cannot listen over RDMA (%s): listening on plain TCP as "
				 "MIGRDMA_FALLBACK=tcp allows", strerror(-ret));
			*handled = false;
			shim_put(ms);
			return 0;
		}
		goto fail;
	}
	ret = doorbell_create(&ms->db, fd, ms->nonblock, fd_cloexec(fd), &program_fd);
	if (ret)
		goto fail;
	if (fallback_tcp() && start_tcp_fallback_listener(ms, backlog))
		log_warn(0, "cannot also listen on plain TCP: %m; only RDMA peers can connect");
	/* Nothing is pending yet; the transport rings when connections arrive. */
	rt_listener_set_notify(ms->lst, msock_notify, ms);
	install(fd, ms);
	shim_mark_transport_fds();
	log_debug(0, "fd %d diverted (listen)", fd);
	shim_put(ms);
	return 0;
fail:
	shim_put(ms);
	errno = -ret;
	return -1;
}

static void copy_addr(const struct sockaddr_storage *ss, struct sockaddr *addr,
		      socklen_t *len)
{
	socklen_t actual = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						     : sizeof(struct sockaddr_in);

	if (!addr || !len)
		return;
	memcpy(addr, ss, *len < actual ? *len : actual);
	*len = actual;
}

/* A plain TCP connection from a peer without migrdma (fallback only). */
static int accept_tcp_fallback(struct msock *ms, struct sockaddr *addr, socklen_t *addrlen,
			       int flags)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char peer[64];
	unsigned id;
	int fd;

	fd = REAL(accept4)(ms->shadow_fd, (struct sockaddr *)&ss, &len, flags);
	if (fd < 0) {
		/* Drained: stop reporting it and wait for the next one. */
		rt_listener_set_extra_ready(ms->lst, false);
		rt_watch_rearm(ms->tcp_watch);
		return -1;
	}
	id = rt_reserve_conn_id();
	stats_format_addr(&ss, peer, sizeof(peer));
	log_warn(id, "accepted a plain TCP connection from %s (MIGRDMA_FALLBACK=tcp)", peer);
	tcp_track_install(fd, "server", id, (struct sockaddr *)&ss);
	copy_addr(&ss, addr, addrlen);
	return fd;
}

static int accept_rdma(struct msock *ms, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
	struct sockaddr_storage peer;
	struct msock *nms;
	int ret, program_fd;

	nms = msock_new(false, ms->domain, "server");
	if (!nms) {
		errno = ENOMEM;
		return -1;
	}
	nms->nonblock = flags & SOCK_NONBLOCK;
	nms->shadow_fd = REAL(socket)(ms->domain, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
	if (nms->shadow_fd >= 0)
		fdtable_mark_internal(nms->shadow_fd, true);
	ret = doorbell_create(&nms->db, -1, nms->nonblock, flags & SOCK_CLOEXEC, &program_fd);
	if (ret)
		goto fail;
	ret = rt_accept(ms->lst, true, msock_notify, nms, &nms->conn);
	if (ret) {
		REAL(close)(program_fd);
		goto fail;
	}
	install(program_fd, nms);
	shim_mark_transport_fds();
	rt_conn_peer_addr(nms->conn, &peer);
	copy_addr(&peer, addr, addrlen);
	log_debug(rt_conn_id(nms->conn), "fd %d accepted", program_fd);
	shim_put(nms);
	return program_fd;
fail:
	shim_put(nms);
	errno = -ret;
	return -1;
}

int shim_accept(struct msock *ms, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
	struct pollfd pfd;
	int fd;

	if (!ms->is_listener || ms->forked_away) {
		errno = EINVAL;
		return -1;
	}
	if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) {
		errno = EINVAL;
		return -1;
	}
	for (;;) {
		fd = accept_rdma(ms, addr, addrlen, flags);
		if (fd >= 0 || errno != EAGAIN)
			return fd;
		if (ms->tcp_listening) {
			fd = accept_tcp_fallback(ms, addr, addrlen, flags);
			if (fd >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
				return fd;
		}
		if (__atomic_load_n(&ms->nonblock, __ATOMIC_ACQUIRE)) {
			errno = EAGAIN;
			return -1;
		}
		/*
		 * Wait the way the program would: on the listener's own fd,
		 * which the transport (and the TCP fallback) make readable.
		 */
		pfd.fd = ms->db.app_fd;
		pfd.events = POLLIN;
		REAL(poll)(&pfd, 1, 1000);
	}
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
	ret = rt_send(ms->conn, iov, iovcnt, io_timeout(ms, flags, &ms->snd_timeout_ms));
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
	copy_addr(&ss, addr, len);
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
	copy_addr(&ss, addr, len);
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
