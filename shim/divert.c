// SPDX-License-Identifier: MIT
/*
 * Diverting a socket: connect() and listen() on a socket MIGRDMA_TARGETS
 * matches, accept() on a diverted listener, and the plain-TCP fallback
 * MIGRDMA_FALLBACK=tcp allows.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/addr.h"
#include "common/log.h"
#include "config.h"
#include "doorbell.h"
#include "init.h"
#include "msock.h"
#include "rdma/transport.h"
#include "shim.h"
#include "tcptrack.h"
#include "stats.h"

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

/*
 * Is fd still the program's socket, a duplicate of which is the shadow?
 * rt_connect may wait for seconds, and a program thread may close fd
 * meanwhile and get a new file at the same number (a program bug, but one
 * the kernel's connect survives): putting the doorbell there would replace
 * that unrelated file.  Only a close in the few instructions between this
 * check and the dup3 escapes it.  Without a shadow there is nothing to
 * compare with, and the socket is taken to be still there.
 */
static bool still_programs_socket(int fd, int shadow_fd)
{
	struct stat now, shadow;

	if (shadow_fd < 0 || fstat(shadow_fd, &shadow))
		return true;
	return !fstat(fd, &now) && now.st_dev == shadow.st_dev && now.st_ino == shadow.st_ino;
}

/*
 * Closed while rt_connect waited?  Then the connection, made or not, is
 * dropped, and neither the doorbell nor a TCP fallback's connect may touch
 * the fd's new file.
 */
static bool fd_lost_while_connecting(int fd, struct msock *ms)
{
	if (still_programs_socket(fd, ms->shadow_fd))
		return false;
	log_warn(ms->conn ? rt_conn_id(ms->conn) : 0, "fd %d was closed while it connected; "
		 "dropping the connection, the fd's new file is left alone", fd);
	if (ms->conn)
		rt_conn_close(ms->conn);
	ms->conn = NULL;
	return true;
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

/* MIGRDMA_FALLBACK=tcp: say why plain TCP is used instead.  False without it. */
static bool fall_back_to_tcp(const char *failed, int err, const char *instead)
{
	if (!fallback_tcp())
		return false;
	log_warn(0, "%s (%s): %s as MIGRDMA_FALLBACK=tcp allows", failed, strerror(err), instead);
	return true;
}

/* A matched socket that cannot have RDMA fails (error) or uses TCP (warning). */
static enum log_level fallback_level(void)
{
	return fallback_tcp() ? LOG_LEVEL_WARN : LOG_LEVEL_ERROR;
}

static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * Should a failure to reach addr be told at the default level?  Once per
 * address: a program retrying in a loop would otherwise fill the log.
 */
bool divert_first_report(const struct sockaddr *addr)
{
	static char seen[16][64];
	static unsigned next;
	char where[64];
	bool first = true;
	unsigned i;

	addr_format(addr, where, sizeof(where));
	pthread_mutex_lock(&report_lock);
	for (i = 0; i < 16 && first; i++)
		first = strcmp(seen[i], where) != 0;
	if (first)
		memcpy(seen[next++ % 16], where, sizeof(where));
	pthread_mutex_unlock(&report_lock);
	return first;
}

/* fork: a leaf lock, taken last and released first (fork.c). */
void divert_atfork_prepare(void)
{
	pthread_mutex_lock(&report_lock);
}

void divert_atfork_release(void)
{
	pthread_mutex_unlock(&report_lock);
}

/* The transport cannot start (no RDMA on this host): say so, naming addr. */
static void report_no_rdma(unsigned id, const struct sockaddr *addr, const char *what, int err)
{
	enum log_level level = fallback_level();
	char where[64];

	if (!divert_first_report(addr))
		level = LOG_LEVEL_DEBUG;
	if (!log_enabled(level))
		return;
	addr_format(addr, where, sizeof(where));
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

/* MIGRDMA_FALLBACK=tcp and the RDMA connection failed: plain TCP instead. */
static int connect_fall_back(int fd, const struct sockaddr *addr, socklen_t len,
			     struct msock *ms, int err)
{
	unsigned id = ms->conn ? rt_conn_id(ms->conn) : rt_reserve_conn_id();
	char where[64];

	if (ms->conn) {
		rt_conn_close(ms->conn);
		ms->conn = NULL;
	}
	addr_format(addr, where, sizeof(where));
	log_warn(id, "RDMA connection to %s failed (%s): using plain TCP as "
		 "MIGRDMA_FALLBACK=tcp allows", where, strerror(err));
	shim_put(ms);
	return connect_plain(fd, addr, len, id);
}

/* A bad MIGRDMA_* variable and no explicit fallback: fail closed. */
static int refuse_matched(const struct sockaddr *addr, const char *what)
{
	char where[64];

	addr_format(addr, where, sizeof(where));
	log_debug(0, "%s %s refused: a MIGRDMA_* variable is bad (see the start-up error)",
		  what, where);
	errno = EPERM;
	return -1;
}

/*
 * Is this connect or listen one to divert?  1: yes (the transport is up,
 * *handled is true); 0: leave it to the kernel; -1: the interposer's answer
 * is decided (errno set, *handled true) when the configuration is bad.
 */
static int claim_matched(int fd, const struct sockaddr *addr, socklen_t len, int *domain,
			 const char *what, bool *handled)
{
	if (!shim_active()) {
		if (!shim_refusing(addr, len) || !is_tcp_stream(fd, domain))
			return 0;
		*handled = true;
		return refuse_matched(addr, what);
	}
	if (!config_match(shim_config(), addr, len) || !is_tcp_stream(fd, domain))
		return 0;
	return 1;
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
	ret = claim_matched(fd, addr, len, &domain, "connect to", handled);
	if (ret <= 0)
		return ret;
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
	if (fd_lost_while_connecting(fd, ms)) {
		ret = -EBADF;
		goto fail;
	}
	if (ret && ret != -EINPROGRESS) {
		if (fallback_tcp())
			return connect_fall_back(fd, addr, len, ms, -ret);
		if (ms->conn)
			rt_conn_close(ms->conn);
		ms->conn = NULL;
		goto fail;
	}
	if (msock_nodelay(ms))
		rt_conn_set_nodelay(ms->conn, true);
	/* Now put the doorbell where the program's TCP socket was. */
	if (REAL(dup3)(ms->db.app_fd, fd, fd_cloexec(fd) ? O_CLOEXEC : 0) < 0) {
		ret = -errno;
		goto fail;
	}
	msock_install(fd, ms);
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

	if (ms->forked_away) {
		errno = EBADF;
		return -1;
	}
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

	*handled = false;
	existing = shim_get(fd);
	if (existing) {
		/* listen() again on our listener only changes the backlog. */
		*handled = true;
		shim_put(existing);
		return 0;
	}
	if ((!shim_active() && !shim_refusing(NULL, 0)) ||
	    REAL(getsockname)(fd, (struct sockaddr *)&ss, &len))
		return 0;
	if ((ss.ss_family == AF_INET && ((struct sockaddr_in *)&ss)->sin_port == 0) ||
	    (ss.ss_family == AF_INET6 && ((struct sockaddr_in6 *)&ss)->sin6_port == 0))
		return 0;	/* unbound: no rule can name its port yet */
	ret = claim_matched(fd, (struct sockaddr *)&ss, len, &domain, "listen on", handled);
	if (ret <= 0)
		return ret;
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
		if (fall_back_to_tcp("cannot listen over RDMA", -ret, "listening on plain TCP")) {
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
	msock_install(fd, ms);
	shim_mark_transport_fds();
	log_debug(0, "fd %d diverted (listen)", fd);
	shim_put(ms);
	return 0;
fail:
	shim_put(ms);
	errno = -ret;
	return -1;
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
	addr_format(&ss, peer, sizeof(peer));
	log_warn(id, "accepted a plain TCP connection from %s (MIGRDMA_FALLBACK=tcp)", peer);
	tcp_track_install(fd, "server", id, (struct sockaddr *)&ss);
	msock_copy_addr(&ss, addr, addrlen);
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
	/* Accepted TCP connections inherit the listener's TCP_NODELAY. */
	if (msock_nodelay(ms))
		rt_conn_set_nodelay(nms->conn, true);
	msock_install(program_fd, nms);
	shim_mark_transport_fds();
	rt_conn_peer_addr(nms->conn, &peer);
	msock_copy_addr(&peer, addr, addrlen);
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
