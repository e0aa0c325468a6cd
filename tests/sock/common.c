// SPDX-License-Identifier: MIT
/*
 * Shared helpers for sockcheck: reporting, watchdog, deterministic data and
 * bounded socket I/O.  Helpers fail the case themselves, so case code reads
 * as the protocol it checks.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "sockcheck.h"

static int connect_timeout_ms(void);

static const char *case_name = "?";
static const char *role = "?";
static volatile const char *cur_step = "start";
static volatile pid_t child_pid;
static uint64_t bytes_moved;
static int timeout_s = -1;

void sc_set_case(const char *name, const char *r)
{
	case_name = name;
	role = r;
}

const char *sc_case_name(void)
{
	return case_name;
}

void sc_set_child(pid_t pid)
{
	child_pid = pid;
}

static void __attribute__((format(printf, 2, 0)))
vreport(const char *tag, const char *fmt, va_list ap, int err)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (err)
		fprintf(stderr, "%s case=%s: %s: %s (%s)\n", tag, case_name,
			role, msg, strerror(err));
	else
		fprintf(stderr, "%s case=%s: %s: %s\n", tag, case_name, role,
			msg);
}

/*
 * _exit, not exit: a failing thread must not run atexit handlers or flush
 * stdio under the feet of the other threads still using them.
 */
static _Noreturn void finish(int code)
{
	if (child_pid > 0)
		kill(child_pid, SIGKILL);
	fflush(stdout);
	_exit(code);
}

void sc_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport("FAIL", fmt, ap, 0);
	va_end(ap);
	finish(1);
}

void sc_fail_errno(const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	va_start(ap, fmt);
	vreport("FAIL", fmt, ap, err ? err : EIO);
	va_end(ap);
	finish(1);
}

void sc_skip(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport("SKIP", fmt, ap, 0);
	va_end(ap);
	finish(SC_EXIT_SKIP);
}

void sc_info(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	printf("INFO case=%s: %s: %s\n", case_name, role, msg);
	fflush(stdout);
}

void sc_step(const char *what)
{
	cur_step = what;
	sc_progress();
}

int sc_timeout_ms(void)
{
	if (timeout_s < 0) {
		const char *s = getenv("SOCKCHECK_TIMEOUT");

		timeout_s = s ? atoi(s) : 0;
		if (timeout_s <= 0)
			timeout_s = 30;
	}
	return timeout_s * 1000;
}

void sc_progress(void)
{
	alarm((unsigned)(sc_timeout_ms() / 1000));
}

static void put(const char *s)
{
	ssize_t r = write(2, s, strlen(s));

	(void)r;
}

/* Async-signal-safe: only write(2), kill(2) and _exit(2). */
static void on_alarm(int sig)
{
	char num[16];
	int n = timeout_s, i = sizeof(num) - 1;

	(void)sig;
	num[i] = '\0';
	do {
		num[--i] = (char)('0' + n % 10);
		n /= 10;
	} while (n && i > 0);
	put("FAIL case=");
	put(case_name);
	put(": ");
	put(role);
	put(": no progress for ");
	put(num + i);
	put(" s (SOCKCHECK_TIMEOUT) in step: ");
	put((const char *)cur_step);
	put("\n");
	if (child_pid > 0)
		kill(child_pid, SIGKILL);
	_exit(1);
}

/*
 * Cases that do not test SIGPIPE must never see one; dying silently from the
 * default action would hide which step broke the connection.
 */
static void on_sigpipe(int sig)
{
	(void)sig;
	put("FAIL case=");
	put(case_name);
	put(": ");
	put(role);
	put(": unexpected SIGPIPE in step: ");
	put((const char *)cur_step);
	put("\n");
	if (child_pid > 0)
		kill(child_pid, SIGKILL);
	_exit(1);
}

void sc_watchdog_init(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_handler = on_sigpipe;
	sigaction(SIGPIPE, &sa, NULL);
	sc_progress();
}

void sc_count(uint64_t n)
{
	__atomic_fetch_add(&bytes_moved, n, __ATOMIC_RELAXED);
}

uint64_t sc_bytes(void)
{
	return __atomic_load_n(&bytes_moved, __ATOMIC_RELAXED);
}

double sc_scale(void)
{
	static double scale = -1;
	const char *s;

	if (scale >= 0)
		return scale;
	s = getenv("SOCKCHECK_SCALE");
	scale = s ? strtod(s, NULL) : 1.0;
	if (!(scale > 0))
		scale = 1.0;
	return scale;
}

uint64_t sc_scaled(uint64_t base, uint64_t min)
{
	double v = (double)base * sc_scale();

	return v < (double)min ? min : (uint64_t)v;
}

uint64_t sc_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void *sc_xmalloc(size_t len)
{
	void *p = malloc(len ? len : 1);

	if (!p)
		sc_fail("malloc(%zu) failed", len);
	return p;
}

void *sc_alloc_pages(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		sc_fail_errno("mmap(%zu)", len);
	return p;
}

void sc_free_pages(void *p, size_t len)
{
	munmap(p, len);
}

/* ---- deterministic data ---- */

/* splitmix64 finaliser: cheap and every input bit affects every output bit. */
uint64_t sc_mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

uint64_t sc_seed(unsigned stream)
{
	uint64_t h = 0xcbf29ce484222325ull;
	const char *p;

	for (p = case_name; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	return sc_mix64(h + 0x9e3779b97f4a7c15ull * (stream + 1));
}

static inline uint64_t pat_word(uint64_t seed, uint64_t w)
{
	return sc_mix64(seed + w * 0x9e3779b97f4a7c15ull);
}

static inline uint8_t pat_byte(uint64_t seed, uint64_t pos)
{
	return (uint8_t)(pat_word(seed, pos >> 3) >> ((pos & 7) * 8));
}

void pat_fill(uint64_t seed, uint64_t pos, void *buf, size_t len)
{
	uint8_t *p = buf;

	for (; len && (pos & 7); len--, pos++)
		*p++ = pat_byte(seed, pos);
	for (; len >= 8; len -= 8, pos += 8, p += 8) {
		uint64_t w = pat_word(seed, pos >> 3);
		uint8_t b[8];
		int i;

		/* Little-endian by construction, matching pat_byte(). */
		for (i = 0; i < 8; i++)
			b[i] = (uint8_t)(w >> (i * 8));
		memcpy(p, b, 8);
	}
	for (; len; len--, pos++)
		*p++ = pat_byte(seed, pos);
}

ssize_t pat_mismatch(uint64_t seed, uint64_t pos, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint8_t exp[4096];
	size_t off = 0;

	while (off < len) {
		size_t n = len - off < sizeof(exp) ? len - off : sizeof(exp);
		size_t i;

		pat_fill(seed, pos + off, exp, n);
		if (memcmp(exp, p + off, n)) {
			for (i = 0; i < n; i++)
				if (exp[i] != p[off + i])
					return (ssize_t)(off + i);
		}
		off += n;
	}
	return -1;
}

void pat_verify(uint64_t seed, uint64_t pos, const void *buf, size_t len,
		const char *what)
{
	ssize_t bad = pat_mismatch(seed, pos, buf, len);

	if (bad < 0)
		return;
	sc_fail("%s: data mismatch at stream byte %llu: got 0x%02x, want 0x%02x",
		what, (unsigned long long)(pos + (uint64_t)bad),
		((const uint8_t *)buf)[bad],
		pat_byte(seed, pos + (uint64_t)bad));
}

/* ---- sockets ---- */

static int connect_timeout_ms(void)
{
	const char *s = getenv("SOCKCHECK_CONNECT_TIMEOUT");
	int v = s ? atoi(s) : 0;

	return (v > 0 ? v : 10) * 1000;
}

static int listen_on(const struct sockaddr_in *sin, bool do_listen)
{
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		sc_fail_errno("socket");
	/* Back-to-back runs reuse the port while the last one is in TIME_WAIT. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)))
		sc_fail_errno("setsockopt(SO_REUSEADDR)");
	if (bind(fd, (const struct sockaddr *)sin, sizeof(*sin)))
		sc_fail_errno("bind(%s:%u)", inet_ntoa(sin->sin_addr),
			      ntohs(sin->sin_port));
	if (do_listen && listen(fd, 16))
		sc_fail_errno("listen");
	return fd;
}

int sc_listen_any(uint16_t port)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_port = htons(port),
		.sin_addr.s_addr = htonl(INADDR_ANY),
	};

	return listen_on(&sin, true);
}

int sc_listen_aux(const struct sc_ctx *ctx, uint16_t port, bool do_listen)
{
	struct sockaddr_in sin = ctx->addr;

	sin.sin_port = htons(port);
	return listen_on(&sin, do_listen);
}

uint16_t sc_local_port(int fd)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	if (getsockname(fd, (struct sockaddr *)&sin, &len))
		sc_fail_errno("getsockname");
	return ntohs(sin.sin_port);
}

short sc_poll1(int fd, short events, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int r;

	do {
		r = poll(&pfd, 1, timeout_ms);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		sc_fail_errno("poll");
	return r ? pfd.revents : 0;
}

int sc_accept(int lfd)
{
	/* The peer may still be retrying a refused connect for this long. */
	int tmo = connect_timeout_ms() > sc_timeout_ms() ?
		  connect_timeout_ms() : sc_timeout_ms();
	int fd;

	for (;;) {
		alarm((unsigned)(tmo / 1000 + 5));
		if (!(sc_poll1(lfd, POLLIN, tmo) & POLLIN))
			sc_fail("accept: no connection within %d ms", tmo);
		fd = accept(lfd, NULL, NULL);
		if (fd >= 0)
			break;
		if (errno != EINTR && errno != EAGAIN &&
		    errno != ECONNABORTED)
			sc_fail_errno("accept");
	}
	sc_progress();
	return fd;
}

int sc_connect_port(const struct sc_ctx *ctx, uint16_t port)
{
	struct sockaddr_in sin = ctx->addr;
	uint64_t deadline;
	int fd;

	sin.sin_port = htons(port);
	deadline = sc_now_ns() + (uint64_t)connect_timeout_ms() * 1000000;
	/* Retrying is progress: the watchdog must outlast the retry bound. */
	alarm((unsigned)(connect_timeout_ms() + sc_timeout_ms()) / 1000);
	for (;;) {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0)
			sc_fail_errno("socket");
		if (!connect(fd, (struct sockaddr *)&sin, sizeof(sin)))
			break;
		if (errno != ECONNREFUSED && errno != EINTR)
			sc_fail_errno("connect(%s:%u)", inet_ntoa(sin.sin_addr),
				      port);
		close(fd);
		/* The server may not be listening yet: retry, bounded. */
		if (sc_now_ns() > deadline) {
			errno = ECONNREFUSED;
			sc_fail_errno("connect(%s:%u): retried for %d ms",
				      inet_ntoa(sin.sin_addr), port,
				      connect_timeout_ms());
		}
		usleep(50 * 1000);
	}
	sc_progress();
	return fd;
}

int sc_connect(const struct sc_ctx *ctx)
{
	return sc_connect_port(ctx, ctx->port);
}

int sc_connect_id(const struct sc_ctx *ctx, uint8_t id)
{
	int fd = sc_connect(ctx);

	sc_write_all(fd, &id, 1, "connection id");
	return fd;
}

void sc_accept_ids(int lfd, int *fds, int n)
{
	int i;

	for (i = 0; i < n; i++)
		fds[i] = -1;
	for (i = 0; i < n; i++) {
		int fd = sc_accept(lfd);
		uint8_t id;

		sc_read_exact(fd, &id, 1, "connection id");
		if (id >= n || fds[id] >= 0)
			sc_fail("bad or duplicate connection id %u", id);
		fds[id] = fd;
	}
}

void sc_set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		sc_fail_errno("fcntl(F_GETFL)");
	fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
	if (fcntl(fd, F_SETFL, fl))
		sc_fail_errno("fcntl(F_SETFL)");
}

/* On a nonblocking fd, wait (bounded) instead of failing on EAGAIN. */
static void wait_again(int fd, short ev, const char *what)
{
	if (!(sc_poll1(fd, ev, sc_timeout_ms()) & (ev | POLLERR | POLLHUP)))
		sc_fail("%s: fd %d not ready within %d ms", what, fd,
			sc_timeout_ms());
}

/*
 * After a read or write returned n: true when the call is to be made
 * again (interrupted, or would block and fd is now ready for ev).
 */
static bool try_again(ssize_t n, int fd, short ev, const char *what)
{
	if (n >= 0)
		return false;
	if (errno == EINTR)
		return true;
	if (errno != EAGAIN)
		return false;
	wait_again(fd, ev, what);
	return true;
}

void sc_write_all(int fd, const void *buf, size_t len, const char *what)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (try_again(n, fd, POLLOUT, what))
			continue;
		if (n < 0)
			sc_fail_errno("%s: write(%zu)", what, len);
		if (n == 0)
			sc_fail("%s: write(%zu) returned 0", what, len);
		p += n;
		len -= (size_t)n;
		sc_count((uint64_t)n);
		sc_progress();
	}
}

void sc_read_exact(int fd, void *buf, size_t len, const char *what)
{
	char *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);

		if (try_again(n, fd, POLLIN, what))
			continue;
		if (n < 0)
			sc_fail_errno("%s: read after %zu of %zu bytes", what,
				      got, len);
		if (n == 0)
			sc_fail("%s: unexpected EOF after %zu of %zu bytes",
				what, got, len);
		got += (size_t)n;
		sc_count((uint64_t)n);
		sc_progress();
	}
}

void sc_expect_eof(int fd, const char *what)
{
	char c;
	ssize_t n;

	for (;;) {
		n = read(fd, &c, 1);
		if (try_again(n, fd, POLLIN, what))
			continue;
		break;
	}
	if (n < 0)
		sc_fail_errno("%s: read for EOF", what);
	if (n > 0)
		sc_fail("%s: expected EOF, got data byte 0x%02x", what,
			(uint8_t)c);
	sc_progress();
}

#define STREAM_CHUNK (256 * 1024)

void sc_send_stream(int fd, uint64_t seed, uint64_t pos, uint64_t len,
		    const char *what)
{
	char *buf = sc_xmalloc(STREAM_CHUNK);

	while (len) {
		size_t n = len < STREAM_CHUNK ? (size_t)len : STREAM_CHUNK;

		pat_fill(seed, pos, buf, n);
		sc_write_all(fd, buf, n, what);
		pos += n;
		len -= n;
	}
	free(buf);
}

void sc_recv_stream(int fd, uint64_t seed, uint64_t pos, uint64_t len,
		    const char *what)
{
	char *buf = sc_xmalloc(STREAM_CHUNK);
	uint64_t end = pos + len;

	while (pos < end) {
		size_t want = end - pos < STREAM_CHUNK ? (size_t)(end - pos) :
							 STREAM_CHUNK;
		ssize_t n = read(fd, buf, want);

		if (try_again(n, fd, POLLIN, what))
			continue;
		if (n < 0)
			sc_fail_errno("%s: read at stream byte %llu", what,
				      (unsigned long long)pos);
		if (n == 0)
			sc_fail("%s: unexpected EOF at stream byte %llu of %llu",
				what, (unsigned long long)pos,
				(unsigned long long)end);
		pat_verify(seed, pos, buf, (size_t)n, what);
		pos += (uint64_t)n;
		sc_count((uint64_t)n);
		sc_progress();
	}
	free(buf);
}

void sc_send_token(int fd, char tok)
{
	sc_write_all(fd, &tok, 1, "token");
}

void sc_recv_token(int fd, char tok, const char *what)
{
	char c;

	sc_read_exact(fd, &c, 1, what);
	if (c != tok)
		sc_fail("%s: protocol token '%c' expected, got 0x%02x", what,
			tok, (uint8_t)c);
}

void sc_send_u64(int fd, uint64_t v)
{
	uint8_t b[8];
	int i;

	for (i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (56 - 8 * i));
	sc_write_all(fd, b, 8, "u64");
}

uint64_t sc_recv_u64(int fd, const char *what)
{
	uint8_t b[8];
	uint64_t v = 0;
	int i;

	sc_read_exact(fd, b, 8, what);
	for (i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

/*
 * There is no portable way to know that another thread has entered a
 * blocking call; the scheduler state in /proc ('S' = interruptible sleep) is
 * the closest observable.  Several sightings in a row rule out a thread
 * that only paused on its way into the call.  Without /proc fall back to a
 * short pause: the test then still checks the wake-up, only less strictly.
 */
void sc_wait_blocked(pid_t tid, const char *what)
{
	uint64_t deadline = sc_now_ns() + (uint64_t)sc_timeout_ms() * 1000000;
	char path[64], buf[512];
	int seen = 0;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	while (seen < 5) {
		int fd = open(path, O_RDONLY);
		ssize_t n;
		char *rp;

		if (fd < 0) {
			usleep(200 * 1000);
			return;
		}
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[n > 0 ? n : 0] = '\0';
		rp = strrchr(buf, ')');
		if (rp && rp[1] == ' ' && rp[2] == 'S')
			seen++;
		else
			seen = 0;
		if (sc_now_ns() > deadline)
			sc_fail("%s: thread never blocked", what);
		usleep(2000);
	}
}

bool sc_has_thread(const char *comm)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	bool found = false;

	if (!d)
		sc_fail_errno("opendir /proc/self/task");
	while (!found && (e = readdir(d))) {
		char path[300], name[32] = "";
		ssize_t n;
		int fd;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		n = read(fd, name, sizeof(name) - 1);
		close(fd);
		name[n > 0 ? n : 0] = '\0';
		name[strcspn(name, "\n")] = '\0';
		found = !strcmp(name, comm);
	}
	closedir(d);
	return found;
}

bool sc_expect_rdma(void)
{
	const char *expect = getenv("SOCKCHECK_EXPECT");

	return expect && !strcmp(expect, "rdma");
}
