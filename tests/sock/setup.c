// SPDX-License-Identifier: MIT
/*
 * Connection set-up and per-socket state: addresses, nonblock_connect,
 * accept_flags, sockopts, fcntl_flags.  An interposing library keeps its
 * own idea of each socket; these cases compare what the application can
 * ask about a socket with what kernel TCP answers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "sockcheck.h"

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif

/* ------------------------------------------------------------------ */
/* addresses                                                           */
/* ------------------------------------------------------------------ */

static const char *fmt_addr(const struct sockaddr_in *sa, char *buf, size_t len)
{
	char ip[INET_ADDRSTRLEN] = "?";

	inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof(ip));
	snprintf(buf, len, "%s:%u (family %d)", ip, ntohs(sa->sin_port),
		 sa->sin_family);
	return buf;
}

static void get_name(int fd, bool peer, struct sockaddr_in *sa, const char *what)
{
	socklen_t len = sizeof(*sa);
	int r;

	memset(sa, 0, sizeof(*sa));
	r = peer ? getpeername(fd, (struct sockaddr *)sa, &len) :
		   getsockname(fd, (struct sockaddr *)sa, &len);
	if (r)
		sc_fail_errno("%s: %s", what, peer ? "getpeername" : "getsockname");
	if (len != sizeof(*sa) || sa->sin_family != AF_INET)
		sc_fail("%s: %s returned length %u family %d", what,
			peer ? "getpeername" : "getsockname", (unsigned)len,
			sa->sin_family);
}

static bool same_addr(const struct sockaddr_in *a, const struct sockaddr_in *b)
{
	return a->sin_family == b->sin_family && a->sin_port == b->sin_port &&
	       a->sin_addr.s_addr == b->sin_addr.s_addr;
}

static void expect_same(const struct sockaddr_in *a, const struct sockaddr_in *b,
			const char *what)
{
	char x[64], y[64];

	if (!same_addr(a, b))
		sc_fail("%s: %s != %s", what, fmt_addr(a, x, sizeof(x)),
			fmt_addr(b, y, sizeof(y)));
}

static void send_addr(int fd, const struct sockaddr_in *sa)
{
	uint8_t b[8];

	b[0] = (uint8_t)(sa->sin_family >> 8);
	b[1] = (uint8_t)sa->sin_family;
	memcpy(b + 2, &sa->sin_port, 2);
	memcpy(b + 4, &sa->sin_addr, 4);
	sc_write_all(fd, b, 8, "address");
}

static void recv_addr(int fd, struct sockaddr_in *sa)
{
	uint8_t b[8];

	sc_read_exact(fd, b, 8, "address");
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = (sa_family_t)(b[0] << 8 | b[1]);
	memcpy(&sa->sin_port, b + 2, 2);
	memcpy(&sa->sin_addr, b + 4, 4);
}

/* A short buffer gets a truncated address and the full length back. */
static void check_truncation(int fd, const struct sockaddr_in *full)
{
	unsigned char buf[sizeof(struct sockaddr_in)];
	socklen_t len = 4;
	size_t i;

	memset(buf, 0xee, sizeof(buf));
	if (getpeername(fd, (struct sockaddr *)buf, &len))
		sc_fail_errno("getpeername with a 4-byte buffer");
	if (len != sizeof(struct sockaddr_in))
		sc_fail("getpeername with a 4-byte buffer: length %u, want %zu",
			(unsigned)len, sizeof(struct sockaddr_in));
	if (memcmp(buf, full, 4))
		sc_fail("getpeername with a 4-byte buffer: wrong prefix");
	for (i = 4; i < sizeof(buf); i++)
		if (buf[i] != 0xee)
			sc_fail("getpeername wrote past the 4-byte buffer");
}

static void expect_enotconn(int fd, const char *what)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	errno = 0;
	if (getpeername(fd, (struct sockaddr *)&sa, &len) != -1 ||
	    errno != ENOTCONN)
		sc_fail_errno("getpeername on %s: want ENOTCONN", what);
}

int addresses_server(struct sc_ctx *ctx)
{
	struct sockaddr_in ls, ps, lc, pc, acc, sa, unb;
	socklen_t acclen = sizeof(acc);
	int fd, l2, fd2, s;
	uint16_t port2;

	sc_step("listener address");
	get_name(ctx->lfd, false, &sa, "listener");
	expect_same(&sa, &ctx->addr, "listener getsockname");
	if (ntohs(sa.sin_port) != ctx->port)
		sc_fail("listener port %u, want %u", ntohs(sa.sin_port),
			ctx->port);
	expect_enotconn(ctx->lfd, "a listener");

	s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0)
		sc_fail_errno("socket");
	expect_enotconn(s, "a fresh socket");
	get_name(s, false, &unb, "unbound socket");
	if (unb.sin_port || unb.sin_addr.s_addr != htonl(INADDR_ANY))
		sc_fail("unbound socket has a name");
	close(s);

	sc_step("accept");
	if (!(sc_poll1(ctx->lfd, POLLIN, sc_timeout_ms()) & POLLIN))
		sc_fail("no connection within %d ms", sc_timeout_ms());
	memset(&acc, 0, sizeof(acc));
	fd = accept(ctx->lfd, (struct sockaddr *)&acc, &acclen);
	if (fd < 0)
		sc_fail_errno("accept");
	get_name(fd, false, &ls, "server connection");
	get_name(fd, true, &ps, "server connection");
	if (acclen != sizeof(acc))
		sc_fail("accept address length %u", (unsigned)acclen);
	expect_same(&acc, &ps, "accept address vs getpeername");
	if (ntohs(ls.sin_port) != ctx->port)
		sc_fail("connection local port %u, want %u",
			ntohs(ls.sin_port), ctx->port);
	check_truncation(fd, &ps);

	sc_step("compare names crosswise");
	recv_addr(fd, &lc);
	recv_addr(fd, &pc);
	expect_same(&lc, &ps, "client getsockname vs server getpeername");
	expect_same(&pc, &ls, "client getpeername vs server getsockname");
	send_addr(fd, &ls);
	send_addr(fd, &ps);

	sc_step("second listener on port 0");
	l2 = sc_listen_aux(ctx, 0, true);
	get_name(l2, false, &sa, "second listener");
	port2 = ntohs(sa.sin_port);
	if (!port2 || port2 == ctx->port)
		sc_fail("second listener bound to port 0 reports port %u",
			port2);
	sc_send_u64(fd, port2);
	fd2 = sc_accept(l2);
	get_name(fd2, false, &sa, "second connection");
	if (ntohs(sa.sin_port) != port2)
		sc_fail("second connection local port %u, want %u",
			ntohs(sa.sin_port), port2);
	get_name(fd2, true, &sa, "second connection");
	if (sa.sin_addr.s_addr != ps.sin_addr.s_addr)
		sc_fail("second connection comes from another address");
	sc_recv_token(fd2, 'X', "second connection");
	sc_send_token(fd2, 'Y');
	sc_expect_eof(fd2, "second connection");
	sc_expect_eof(fd, "first connection");
	close(fd2);
	close(l2);
	close(fd);
	return 0;
}

int addresses_client(struct sc_ctx *ctx)
{
	struct sockaddr_in lc, pc, ls, ps, sa;
	int fd, fd2;
	uint16_t port2;

	sc_step("connect");
	fd = sc_connect(ctx);
	get_name(fd, false, &lc, "client connection");
	get_name(fd, true, &pc, "client connection");
	expect_same(&pc, &ctx->addr, "getpeername vs connect address");
	if (!lc.sin_port)
		sc_fail("client connection has local port 0");
	check_truncation(fd, &pc);

	sc_step("compare names crosswise");
	send_addr(fd, &lc);
	send_addr(fd, &pc);
	recv_addr(fd, &ls);
	recv_addr(fd, &ps);
	expect_same(&ls, &pc, "server getsockname vs client getpeername");
	expect_same(&ps, &lc, "server getpeername vs client getsockname");

	sc_step("connect to the second listener");
	port2 = (uint16_t)sc_recv_u64(fd, "second port");
	fd2 = sc_connect_port(ctx, port2);
	get_name(fd2, true, &sa, "second connection");
	if (ntohs(sa.sin_port) != port2)
		sc_fail("second connection peer port %u, want %u",
			ntohs(sa.sin_port), port2);
	sc_send_token(fd2, 'X');
	sc_recv_token(fd2, 'Y', "second connection");
	close(fd2);
	close(fd);
	return 0;
}

/* ------------------------------------------------------------------ */
/* nonblock_connect                                                    */
/* ------------------------------------------------------------------ */

static int sock_error(int fd)
{
	int err = -1;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
		sc_fail_errno("getsockopt(SO_ERROR)");
	if (len != sizeof(err))
		sc_fail("SO_ERROR length %u", (unsigned)len);
	return err;
}

/* Nonblocking connect; returns SO_ERROR (0 = connected). */
static int nb_connect(const struct sc_ctx *ctx, uint16_t port, int *out)
{
	struct sockaddr_in sin = ctx->addr;
	int fd, fl, r, err;
	short rev;

	sin.sin_port = htons(port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd < 0)
		sc_fail_errno("socket(SOCK_NONBLOCK)");
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || !(fl & O_NONBLOCK))
		sc_fail("SOCK_NONBLOCK socket lacks O_NONBLOCK");
	*out = fd;
	r = connect(fd, (struct sockaddr *)&sin, sizeof(sin));
	if (!r)
		return 0;
	if (errno == ECONNREFUSED)
		return ECONNREFUSED;
	if (errno != EINPROGRESS)
		sc_fail_errno("nonblocking connect: want EINPROGRESS");
	rev = sc_poll1(fd, POLLOUT, sc_timeout_ms());
	if (!rev)
		sc_fail("nonblocking connect: not writable within %d ms",
			sc_timeout_ms());
	err = sock_error(fd);
	if (!err && (rev & (POLLERR | POLLHUP)))
		sc_fail("connected, but poll revents 0x%x", rev);
	if (err && !(rev & POLLERR))
		sc_fail("connect failed (%s), but poll revents 0x%x lack POLLERR",
			strerror(err), rev);
	return err;
}

int nonblock_connect_client(struct sc_ctx *ctx)
{
	const char *s = getenv("SOCKCHECK_CONNECT_TIMEOUT");
	int secs = s && atoi(s) > 0 ? atoi(s) : 10;
	uint64_t deadline = sc_now_ns() + (uint64_t)secs * 1000000000;
	int fd, err, r;
	uint16_t closed;

	sc_step("nonblocking connect");
	/* Retrying is progress: the watchdog must outlast the retry bound. */
	alarm((unsigned)(secs + sc_timeout_ms() / 1000));
	for (;;) {
		err = nb_connect(ctx, ctx->port, &fd);
		if (!err)
			break;
		if (err != ECONNREFUSED) {
			errno = err;
			sc_fail_errno("nonblocking connect: SO_ERROR");
		}
		close(fd);
		/* Server not listening yet. */
		if (sc_now_ns() > deadline)
			sc_fail("nonblocking connect still refused after retries");
		usleep(50 * 1000);
	}
	if (sock_error(fd))
		sc_fail("SO_ERROR not cleared");
	/* Completed connect: 0 (first report) or EISCONN, then EISCONN. */
	r = connect(fd, (struct sockaddr *)&ctx->addr, sizeof(ctx->addr));
	if (r && errno != EISCONN)
		sc_fail_errno("connect again after completion: want 0 or EISCONN");
	errno = 0;
	if (connect(fd, (struct sockaddr *)&ctx->addr, sizeof(ctx->addr)) != -1 ||
	    errno != EISCONN)
		sc_fail_errno("connect on a connected socket: want EISCONN");

	sc_step("data over the nonblocking connection");
	sc_send_stream(fd, sc_seed(1), 0, 100000, "request");
	sc_recv_stream(fd, sc_seed(2), 0, 100000, "reply");

	sc_step("connect to a closed port");
	closed = (uint16_t)sc_recv_u64(fd, "closed port");
	{
		int fd2;

		err = nb_connect(ctx, closed, &fd2);
		if (err != ECONNREFUSED) {
			errno = err;
			sc_fail_errno("nonblocking connect to closed port %u: want ECONNREFUSED",
				      closed);
		}
		if (sock_error(fd2))
			sc_fail("SO_ERROR not cleared after reading it");
		close(fd2);
	}
	{
		struct sockaddr_in sin = ctx->addr;
		int fd3 = socket(AF_INET, SOCK_STREAM, 0);

		sin.sin_port = htons(closed);
		errno = 0;
		if (connect(fd3, (struct sockaddr *)&sin, sizeof(sin)) != -1 ||
		    errno != ECONNREFUSED)
			sc_fail_errno("blocking connect to closed port %u: want ECONNREFUSED",
				      closed);
		close(fd3);
	}
	sc_send_token(fd, 'D');
	sc_expect_eof(fd, "end");
	close(fd);
	return 0;
}

int nonblock_connect_server(struct sc_ctx *ctx)
{
	int fd, closed;

	sc_step("exchange");
	fd = sc_accept(ctx->lfd);
	sc_recv_stream(fd, sc_seed(1), 0, 100000, "request");
	sc_send_stream(fd, sc_seed(2), 0, 100000, "reply");
	/* Bound but not listening: a SYN to it is refused. */
	closed = sc_listen_aux(ctx, 0, false);
	sc_send_u64(fd, sc_local_port(closed));
	sc_step("peer connects to the closed port");
	sc_recv_token(fd, 'D', "done token");
	close(closed);
	close(fd);
	return 0;
}

/* ------------------------------------------------------------------ */
/* accept_flags                                                        */
/* ------------------------------------------------------------------ */

static void expect_flags(int fd, bool nonblock, bool cloexec, const char *what)
{
	int fl = fcntl(fd, F_GETFL), fdf = fcntl(fd, F_GETFD);

	if (fl < 0 || fdf < 0)
		sc_fail_errno("%s: fcntl", what);
	if (!!(fl & O_NONBLOCK) != nonblock)
		sc_fail("%s: O_NONBLOCK is %s", what,
			fl & O_NONBLOCK ? "set" : "clear");
	if (!!(fdf & FD_CLOEXEC) != cloexec)
		sc_fail("%s: FD_CLOEXEC is %s", what,
			fdf & FD_CLOEXEC ? "set" : "clear");
	if ((fl & O_ACCMODE) != O_RDWR)
		sc_fail("%s: access mode 0x%x, want O_RDWR", what,
			fl & O_ACCMODE);
}

static void expect_errno(int r, int want, const char *what)
{
	if (r != -1)
		sc_fail("%s returned %d, want %s", what, r, strerror(want));
	if (errno != want && !(want == EAGAIN && errno == EWOULDBLOCK))
		sc_fail_errno("%s: want %s", what, strerror(want));
}

int accept_flags_server(struct sc_ctx *ctx)
{
	struct sockaddr_in sa, peer;
	socklen_t salen = sizeof(sa), plen = sizeof(peer);
	int c0, c1, c2, s, lfd = ctx->lfd;
	uint8_t id;
	char c;

	sc_step("first connection, blocking listener");
	c0 = sc_accept(lfd);
	sc_recv_token(c0, 0, "connection id 0");
	expect_flags(c0, false, false, "accept()ed socket");

	sc_step("idle nonblocking listener");
	sc_set_nonblock(lfd, true);
	expect_errno(accept(lfd, NULL, NULL), EAGAIN, "accept on idle listener");
	expect_errno(accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC),
		     EAGAIN, "accept4 on idle listener");
	if (sc_poll1(lfd, POLLIN, 0))
		sc_fail("idle listener polls readable");
	expect_errno(accept4(lfd, NULL, NULL, 0x40000000), EINVAL,
		     "accept4 with bad flags");
	s = socket(AF_INET, SOCK_STREAM, 0);
	expect_errno(accept(s, NULL, NULL), EINVAL, "accept on a non-listening socket");
	close(s);
	sc_send_token(c0, 'G');

	sc_step("accept4(SOCK_NONBLOCK|SOCK_CLOEXEC)");
	if (!(sc_poll1(lfd, POLLIN, sc_timeout_ms()) & POLLIN))
		sc_fail("listener not readable with a pending connection");
	c1 = accept4(lfd, (struct sockaddr *)&sa, &salen,
		     SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (c1 < 0)
		sc_fail_errno("accept4 with a pending connection");
	expect_flags(c1, true, true, "accept4(SOCK_NONBLOCK|SOCK_CLOEXEC)");
	if (getpeername(c1, (struct sockaddr *)&peer, &plen))
		sc_fail_errno("getpeername");
	if (salen != sizeof(sa) || memcmp(&sa, &peer, sizeof(sa)))
		sc_fail("accept4 address differs from getpeername");
	/* The peer sends nothing on it until told: nonblocking read. */
	expect_errno((int)read(c1, &c, 1), EAGAIN, "read on idle accept4 socket");
	sc_send_token(c0, 'S');
	sc_read_exact(c1, &id, 1, "connection id 1");
	if (id != 1)
		sc_fail("connection id %u, want 1", id);
	sc_recv_stream(c1, sc_seed(1), 0, 50000, "data on accept4 socket");

	sc_step("plain accept on a nonblocking listener");
	sc_send_token(c0, 'H');
	if (!(sc_poll1(lfd, POLLIN, sc_timeout_ms()) & POLLIN))
		sc_fail("listener not readable with a pending connection");
	c2 = accept(lfd, NULL, NULL);
	if (c2 < 0)
		sc_fail_errno("accept with a pending connection");
	/* Linux accept() does not inherit O_NONBLOCK from the listener. */
	expect_flags(c2, false, false, "accept() from a nonblocking listener");
	sc_recv_token(c2, 2, "connection id 2");
	sc_recv_stream(c2, sc_seed(2), 0, 50000, "data on accept socket");

	sc_send_token(c0, 'E');
	sc_expect_eof(c0, "connection 0");
	sc_expect_eof(c1, "connection 1");
	sc_expect_eof(c2, "connection 2");
	close(c0);
	close(c1);
	close(c2);
	return 0;
}

int accept_flags_client(struct sc_ctx *ctx)
{
	uint8_t one = 1;
	int c0, c1, c2;

	sc_step("connect");
	c0 = sc_connect_id(ctx, 0);
	sc_recv_token(c0, 'G', "go token");
	c1 = sc_connect(ctx);
	sc_recv_token(c0, 'S', "send token");
	sc_write_all(c1, &one, 1, "id");
	sc_send_stream(c1, sc_seed(1), 0, 50000, "data");
	sc_recv_token(c0, 'H', "third connection token");
	c2 = sc_connect_id(ctx, 2);
	sc_send_stream(c2, sc_seed(2), 0, 50000, "data");
	sc_recv_token(c0, 'E', "end token");
	close(c2);
	close(c1);
	close(c0);
	return 0;
}

/* ------------------------------------------------------------------ */
/* sockopts                                                            */
/* ------------------------------------------------------------------ */

static int get_int(int fd, int level, int opt, const char *name)
{
	int v = -12345;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, level, opt, &v, &len))
		sc_fail_errno("getsockopt(%s)", name);
	if (len != sizeof(v))
		sc_fail("getsockopt(%s) length %u", name, (unsigned)len);
	return v;
}

static void set_int(int fd, int level, int opt, int v, const char *name)
{
	if (setsockopt(fd, level, opt, &v, sizeof(v)))
		sc_fail_errno("setsockopt(%s, %d)", name, v);
}

#define GET(fd, lvl, opt) get_int(fd, lvl, opt, #opt)
#define SET(fd, lvl, opt, v) set_int(fd, lvl, opt, v, #opt)

static void expect_int(int fd, int level, int opt, int want, const char *name)
{
	int v = get_int(fd, level, opt, name);

	if (v != want)
		sc_fail("getsockopt(%s) = %d, want %d", name, v, want);
}

#define EXPECT(fd, lvl, opt, want) expect_int(fd, lvl, opt, want, #opt)

static void check_opts(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 5 }, lg2;
	struct timeval tv = { .tv_sec = 2, .tv_usec = 500000 }, tv2;
	socklen_t len;
	int v, r;

	sc_step("socket identity options");
	EXPECT(fd, SOL_SOCKET, SO_ERROR, 0);
	EXPECT(fd, SOL_SOCKET, SO_TYPE, SOCK_STREAM);
	EXPECT(fd, SOL_SOCKET, SO_DOMAIN, AF_INET);
	EXPECT(fd, SOL_SOCKET, SO_PROTOCOL, IPPROTO_TCP);
	EXPECT(fd, SOL_SOCKET, SO_ACCEPTCONN, 0);
	EXPECT(fd, SOL_SOCKET, SO_RCVLOWAT, 1);

	sc_step("settable options");
	SET(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
	if (!GET(fd, SOL_SOCKET, SO_KEEPALIVE))
		sc_fail("SO_KEEPALIVE not set");
	SET(fd, SOL_SOCKET, SO_KEEPALIVE, 0);
	EXPECT(fd, SOL_SOCKET, SO_KEEPALIVE, 0);
	SET(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
	SET(fd, SOL_SOCKET, SO_REUSEADDR, 1);
	if (!GET(fd, SOL_SOCKET, SO_REUSEADDR))
		sc_fail("SO_REUSEADDR not set");
	SET(fd, SOL_SOCKET, SO_RCVBUF, 256 * 1024);
	if (GET(fd, SOL_SOCKET, SO_RCVBUF) <= 0)
		sc_fail("SO_RCVBUF not positive");
	SET(fd, SOL_SOCKET, SO_SNDBUF, 256 * 1024);
	if (GET(fd, SOL_SOCKET, SO_SNDBUF) <= 0)
		sc_fail("SO_SNDBUF not positive");
	SET(fd, IPPROTO_TCP, TCP_NODELAY, 1);
	if (!GET(fd, IPPROTO_TCP, TCP_NODELAY))
		sc_fail("TCP_NODELAY not set");
	SET(fd, IPPROTO_TCP, TCP_KEEPIDLE, 30);
	EXPECT(fd, IPPROTO_TCP, TCP_KEEPIDLE, 30);
	SET(fd, IPPROTO_TCP, TCP_KEEPINTVL, 5);
	EXPECT(fd, IPPROTO_TCP, TCP_KEEPINTVL, 5);
	SET(fd, IPPROTO_TCP, TCP_KEEPCNT, 4);
	EXPECT(fd, IPPROTO_TCP, TCP_KEEPCNT, 4);

	if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)))
		sc_fail_errno("setsockopt(SO_LINGER)");
	len = sizeof(lg2);
	if (getsockopt(fd, SOL_SOCKET, SO_LINGER, &lg2, &len))
		sc_fail_errno("getsockopt(SO_LINGER)");
	if (len != sizeof(lg2) || !lg2.l_onoff || lg2.l_linger != 5)
		sc_fail("SO_LINGER reads back {%d, %d}", lg2.l_onoff,
			lg2.l_linger);
	lg.l_onoff = 0;
	lg.l_linger = 0;
	if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)))
		sc_fail_errno("setsockopt(SO_LINGER off)");

	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)))
		sc_fail_errno("setsockopt(SO_SNDTIMEO)");
	len = sizeof(tv2);
	if (getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv2, &len))
		sc_fail_errno("getsockopt(SO_SNDTIMEO)");
	if (tv2.tv_sec != 2 || tv2.tv_usec < 490000 || tv2.tv_usec > 510000)
		sc_fail("SO_SNDTIMEO reads back %ld.%06ld", (long)tv2.tv_sec,
			(long)tv2.tv_usec);
	tv.tv_sec = tv.tv_usec = 0;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)))
		sc_fail_errno("setsockopt(SO_SNDTIMEO off)");

	sc_step("unknown and optional options");
	v = 0;
	len = sizeof(v);
	errno = 0;
	if (getsockopt(fd, SOL_SOCKET, 0x7ff0, &v, &len) != -1 ||
	    errno != ENOPROTOOPT)
		sc_fail_errno("getsockopt(SOL_SOCKET, unknown): want ENOPROTOOPT");
	errno = 0;
	if (getsockopt(fd, IPPROTO_TCP, 0x7ff0, &v, &len) != -1 ||
	    errno != ENOPROTOOPT)
		sc_fail_errno("getsockopt(IPPROTO_TCP, unknown): want ENOPROTOOPT");

	v = 1;
	r = setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &v, sizeof(v));
	if (r && errno != ENOPROTOOPT)
		sc_fail_errno("setsockopt(SO_ZEROCOPY, 1): want success or ENOPROTOOPT");
	sc_info("SO_ZEROCOPY: %s", r ? "ENOPROTOOPT" : "accepted");
	if (!r) {
		v = 0;
		setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &v, sizeof(v));
	}
}

/* An idle read with SO_RCVTIMEO set fails with EAGAIN after the timeout. */
static void check_rcvtimeo(int fd)
{
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
	uint64_t t0;
	double ms;
	ssize_t n;
	char c;

	sc_step("SO_RCVTIMEO");
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)))
		sc_fail_errno("setsockopt(SO_RCVTIMEO)");
	t0 = sc_now_ns();
	n = read(fd, &c, 1);
	ms = sc_since_s(t0) * 1000;
	if (n != -1 || (errno != EAGAIN && errno != EWOULDBLOCK))
		sc_fail_errno("read with SO_RCVTIMEO on an idle socket returned %zd, want EAGAIN",
			      n);
	if (ms < 150 || ms > sc_timeout_ms())
		sc_fail("read with a 200 ms SO_RCVTIMEO returned after %.0f ms",
			ms);
	tv.tv_usec = 0;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)))
		sc_fail_errno("setsockopt(SO_RCVTIMEO off)");
}

int sockopts_server(struct sc_ctx *ctx)
{
	int fd;

	EXPECT(ctx->lfd, SOL_SOCKET, SO_ACCEPTCONN, 1);
	EXPECT(ctx->lfd, SOL_SOCKET, SO_TYPE, SOCK_STREAM);
	sc_step("accept");
	fd = sc_accept(ctx->lfd);
	check_opts(fd);
	/*
	 * Idle-read checks take turns: each side stays silent while the
	 * other one times out a read.
	 */
	sc_step("wait for the client's SO_RCVTIMEO check");
	sc_recv_token(fd, 'C', "client's idle read done");
	check_rcvtimeo(fd);
	sc_send_token(fd, 'T');
	sc_step("data with options set");
	sc_recv_stream(fd, sc_seed(1), 0, 65536, "data");
	sc_send_stream(fd, sc_seed(2), 0, 65536, "reply");
	sc_expect_eof(fd, "end");
	close(fd);
	return 0;
}

int sockopts_client(struct sc_ctx *ctx)
{
	int fd;

	sc_step("connect");
	fd = sc_connect(ctx);
	check_opts(fd);
	check_rcvtimeo(fd);
	sc_send_token(fd, 'C');
	sc_recv_token(fd, 'T', "server's idle read done");
	sc_step("data with options set");
	sc_send_stream(fd, sc_seed(1), 0, 65536, "data");
	sc_recv_stream(fd, sc_seed(2), 0, 65536, "reply");
	close(fd);
	return 0;
}

/* ------------------------------------------------------------------ */
/* fcntl_flags                                                         */
/* ------------------------------------------------------------------ */

static void nonblock_read_checks(int fd)
{
	int on = 1, fl;
	char c;

	sc_step("F_SETFL O_NONBLOCK");
	expect_flags(fd, false, false, "connected socket");
	sc_set_nonblock(fd, true);
	expect_flags(fd, true, false, "after F_SETFL O_NONBLOCK");
	expect_errno((int)read(fd, &c, 1), EAGAIN, "read on an idle O_NONBLOCK socket");
	expect_errno((int)recv(fd, &c, 1, 0), EAGAIN, "recv on an idle O_NONBLOCK socket");
	sc_set_nonblock(fd, false);
	expect_flags(fd, false, false, "after clearing O_NONBLOCK");

	sc_step("FIONBIO");
	if (ioctl(fd, FIONBIO, &on))
		sc_fail_errno("ioctl(FIONBIO, 1)");
	expect_flags(fd, true, false, "after FIONBIO 1");
	expect_errno((int)read(fd, &c, 1), EAGAIN, "read after FIONBIO 1");
	on = 0;
	if (ioctl(fd, FIONBIO, &on))
		sc_fail_errno("ioctl(FIONBIO, 0)");
	expect_flags(fd, false, false, "after FIONBIO 0");

	sc_step("F_SETFD");
	if (fcntl(fd, F_SETFD, FD_CLOEXEC))
		sc_fail_errno("F_SETFD FD_CLOEXEC");
	expect_flags(fd, false, true, "after F_SETFD FD_CLOEXEC");
	if (fcntl(fd, F_SETFD, 0))
		sc_fail_errno("F_SETFD 0");
	expect_flags(fd, false, false, "after F_SETFD 0");
	/* Other status flags must survive an O_NONBLOCK round trip. */
	fl = fcntl(fd, F_GETFL);
	if (fcntl(fd, F_SETFL, fl | O_NONBLOCK) || fcntl(fd, F_SETFL, fl))
		sc_fail_errno("F_SETFL round trip");
	if (fcntl(fd, F_GETFL) != fl)
		sc_fail("F_GETFL changed after a round trip: 0x%x -> 0x%x", fl,
			fcntl(fd, F_GETFL));
}

int fcntl_flags_server(struct sc_ctx *ctx)
{
	int fd;

	sc_step("accept");
	fd = sc_accept(ctx->lfd);
	/* The client waits for our first token before sending anything. */
	nonblock_read_checks(fd);
	sc_send_token(fd, '0');
	sc_step("blocking read after O_NONBLOCK cleared");
	sc_recv_token(fd, '1', "token 1");
	sc_send_stream(fd, sc_seed(1), 0, 100000, "data");
	sc_expect_eof(fd, "end");
	close(fd);
	return 0;
}

int fcntl_flags_client(struct sc_ctx *ctx)
{
	int fd;

	sc_step("connect");
	fd = sc_connect(ctx);
	sc_recv_token(fd, '0', "token 0");
	/* Everything sent so far is consumed and the server now waits. */
	nonblock_read_checks(fd);
	sc_send_token(fd, '1');
	sc_step("blocking read after O_NONBLOCK cleared");
	sc_recv_stream(fd, sc_seed(1), 0, 100000, "data");
	close(fd);
	return 0;
}
