// SPDX-License-Identifier: MIT
/*
 * live_probe: measures how fast a connection notices that its peer is gone.
 * A plain BSD-socket program, meant to run under LD_PRELOAD=libmigrdma.so.
 *
 *   live_probe sink PORT [ADDR]
 *       accept one connection, read and discard until EOF or an error,
 *       never write; prints "sink: listening" and "sink: accepted".
 *       Listens on every address, or on ADDR only
 *   live_probe stream ADDR PORT [--limit S]
 *       connect and stream 64 KiB page-aligned writes (zero-copy) from one
 *       thread, while a second thread sits in read() (the sink never
 *       writes) and a third in poll(POLLIN); prints "probe: streaming"
 *       once 4 MiB are through, then waits until all three calls returned
 *   live_probe idle ADDR PORT --shutdown-after S [--limit S]
 *       connect and send nothing; one thread in read(), one in poll();
 *       after S seconds the main thread calls shutdown(SHUT_RDWR) and the
 *       blocked calls must return
 *
 * The client prints one line per blocked call:
 *   probe: CALL ret=R errno=NAME revents=0xN t=SECONDS.NANOS
 * with t in CLOCK_REALTIME, so a script can compare it with the time it
 * caused an event; "probe: shutdown t=..." for idle; then "probe: final
 * revents=0xN" (poll of the fd after everything returned) and "probe:
 * done".  A call still blocked after --limit seconds (default 60) is
 * reported as "probe: CALL still blocked" and the exit status is 1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK		(64u * 1024)
#define STREAMING_AT	(4u << 20)

struct call {
	const char *name;
	int fd;
	volatile bool done;
	ssize_t ret;
	int err;
	short revents;
	struct timespec t;
};

static const char *errno_name(int e)
{
	switch (e) {
	case 0:
		return "0";
	case ECONNRESET:
		return "ECONNRESET";
	case ETIMEDOUT:
		return "ETIMEDOUT";
	case EPIPE:
		return "EPIPE";
	case ENODEV:
		return "ENODEV";
	case ECONNABORTED:
		return "ECONNABORTED";
	case EIO:
		return "EIO";
	case ENOTCONN:
		return "ENOTCONN";
	default:
		return strerror(e);
	}
}

static void finish(struct call *c, ssize_t ret, int err)
{
	clock_gettime(CLOCK_REALTIME, &c->t);
	c->ret = ret;
	c->err = err;
	__atomic_store_n(&c->done, true, __ATOMIC_RELEASE);
}

static void *writer(void *arg)
{
	struct call *c = arg;
	uint64_t total = 0;
	bool said = false;
	uint8_t *buf;
	ssize_t n;

	if (posix_memalign((void **)&buf, 4096, CHUNK))
		abort();
	memset(buf, 0x5a, CHUNK);
	for (;;) {
		n = write(c->fd, buf, CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		total += (uint64_t)n;
		if (!said && total >= STREAMING_AT) {
			printf("probe: streaming\n");
			said = true;
		}
	}
	finish(c, n, n < 0 ? errno : 0);
	free(buf);
	return NULL;
}

static void *reader(void *arg)
{
	struct call *c = arg;
	char b;
	ssize_t n;

	do {
		n = read(c->fd, &b, 1);
	} while (n < 0 && errno == EINTR);
	finish(c, n, n < 0 ? errno : 0);
	return NULL;
}

static void *poller(void *arg)
{
	struct call *c = arg;
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	int n;

	do {
		n = poll(&pfd, 1, -1);
	} while (n < 0 && errno == EINTR);
	c->revents = pfd.revents;
	finish(c, n, n < 0 ? errno : 0);
	return NULL;
}

static void print_call(const struct call *c)
{
	if (!__atomic_load_n(&c->done, __ATOMIC_ACQUIRE)) {
		printf("probe: %s still blocked\n", c->name);
		return;
	}
	printf("probe: %s ret=%zd errno=%s revents=0x%x t=%lld.%09ld\n", c->name, c->ret,
	       errno_name(c->err), (unsigned)(unsigned short)c->revents, (long long)c->t.tv_sec,
	       c->t.tv_nsec);
}

static int listen_accept(uint16_t port, const char *addr)
{
	struct sockaddr_in sin;
	int lfd, fd, one = 1;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0) {
		perror("socket");
		exit(1);
	}
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	if (addr && inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		fprintf(stderr, "not an IPv4 address: %s\n", addr);
		exit(2);
	}
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) || listen(lfd, 4)) {
		perror("bind/listen");
		exit(1);
	}
	printf("sink: listening\n");
	fd = accept(lfd, NULL, NULL);
	if (fd < 0) {
		perror("accept");
		exit(1);
	}
	close(lfd);
	printf("sink: accepted\n");
	return fd;
}

static int do_sink(uint16_t port, const char *addr)
{
	int fd = listen_accept(port, addr);
	uint64_t total = 0;
	uint8_t *buf = malloc(CHUNK);
	ssize_t n;

	if (!buf)
		return 1;
	for (;;) {
		n = read(fd, buf, CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		total += (uint64_t)n;
	}
	printf("sink: %s after %llu bytes\n", n < 0 ? strerror(errno) : "EOF",
	       (unsigned long long)total);
	close(fd);
	free(buf);
	return 0;
}

static int connect_to(const char *addr, uint16_t port)
{
	struct sockaddr_in sin;
	int fd, tries;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		fprintf(stderr, "live_probe: bad address %s\n", addr);
		exit(2);
	}
	for (tries = 0;; tries++) {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0) {
			perror("socket");
			exit(1);
		}
		if (!connect(fd, (struct sockaddr *)&sin, sizeof(sin)))
			return fd;
		/* Right after a link comes back the route may need a moment. */
		if ((errno != ECONNREFUSED && errno != EHOSTUNREACH && errno != ENETUNREACH &&
		     errno != ETIMEDOUT) || tries >= 100) {
			fprintf(stderr, "live_probe: connect %s:%u: %s\n", addr, port,
				strerror(errno));
			exit(1);
		}
		close(fd);
		usleep(200 * 1000);
	}
}

static bool all_done(struct call **calls, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (!__atomic_load_n(&calls[i]->done, __ATOMIC_ACQUIRE))
			return false;
	return true;
}

static int do_client(const char *addr, uint16_t port, bool idle, int shut_after, int limit)
{
	struct call w = { .name = "write" }, r = { .name = "read" }, p = { .name = "poll" };
	struct call *calls[3];
	struct pollfd pfd;
	struct timespec t0, now;
	pthread_t th;
	int fd, n = 0, i;
	bool ok;

	signal(SIGPIPE, SIG_IGN);
	fd = connect_to(addr, port);
	w.fd = r.fd = p.fd = fd;
	printf("probe: connected\n");
	if (!idle)
		calls[n++] = &w;
	calls[n++] = &r;
	calls[n++] = &p;
	if (!idle && pthread_create(&th, NULL, writer, &w))
		abort();
	if (pthread_create(&th, NULL, reader, &r) || pthread_create(&th, NULL, poller, &p))
		abort();

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (idle) {
		struct timespec ts;

		printf("probe: idle\n");
		sleep((unsigned)shut_after);
		for (i = 0; i < n; i++)
			if (__atomic_load_n(&calls[i]->done, __ATOMIC_ACQUIRE))
				printf("probe: %s returned before the shutdown\n", calls[i]->name);
		clock_gettime(CLOCK_REALTIME, &ts);
		if (shutdown(fd, SHUT_RDWR))
			printf("probe: shutdown failed: %s\n", strerror(errno));
		printf("probe: shutdown t=%lld.%09ld\n", (long long)ts.tv_sec, ts.tv_nsec);
	}
	for (;;) {
		if (all_done(calls, n))
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec > limit)
			break;
		usleep(10 * 1000);
	}
	ok = all_done(calls, n);
	for (i = 0; i < n; i++)
		print_call(calls[i]);
	pfd.fd = fd;
	pfd.events = POLLIN | POLLOUT;
	pfd.revents = 0;
	poll(&pfd, 1, 0);
	printf("probe: final revents=0x%x\n", (unsigned)(unsigned short)pfd.revents);
	printf("probe: done\n");
	fflush(stdout);
	/* Threads may still be blocked: leave without joining them. */
	_exit(ok ? 0 : 1);
}

static void usage(void)
{
	fprintf(stderr, "usage: live_probe sink PORT [ADDR]\n"
			"       live_probe stream ADDR PORT [--limit S]\n"
			"       live_probe idle ADDR PORT --shutdown-after S [--limit S]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int shut_after = -1, limit = 60, i;
	bool idle;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if ((argc == 3 || argc == 4) && !strcmp(argv[1], "sink"))
		return do_sink((uint16_t)atoi(argv[2]), argc == 4 ? argv[3] : NULL);
	if (argc < 4)
		usage();
	if (!strcmp(argv[1], "stream"))
		idle = false;
	else if (!strcmp(argv[1], "idle"))
		idle = true;
	else
		usage();
	for (i = 5; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--shutdown-after"))
			shut_after = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--limit"))
			limit = atoi(argv[i + 1]);
		else
			usage();
	}
	if (i != argc || (idle && shut_after < 0) || limit <= 0)
		usage();
	if (idle)
		limit += shut_after;
	return do_client(argv[2], (uint16_t)atoi(argv[3]), idle, shut_after, limit);
}
