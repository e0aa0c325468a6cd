// SPDX-License-Identifier: MIT
/*
 * hostile_victim: the program hostile_peer attacks.  Run it under
 * LD_PRELOAD=libmigrdma.so with a MIGRDMA_TARGETS rule for PORT:
 *
 *   hostile_victim PORT [--idle-port IPORT] [--sockcheck SCPORT CASE]
 *
 * It listens on 0.0.0.0:PORT and echoes every byte of every connection
 * back, one thread per connection.  The first line a peer sends is its
 * label ("GOOD ..." or "HOSTILE <scenario> [stall]"); after a label ending
 * in " stall" the thread echoes it and then sleeps 3 s before reading on,
 * so that whatever the peer sends next queues up unread in the library.
 *
 * On stdout (line-buffered):
 *   victim: listening on PORT
 *   victim: conn N accepted: LABEL
 *   victim: conn N ended: eof|error (ERRNO TEXT) in=BYTES out=BYTES: LABEL
 *
 * --idle-port opens a second listener, with a backlog of 4, that is never
 * accepted from (the target of hostile_peer's conn_flood).
 *
 * SIGUSR1 runs the server half of sockcheck case CASE (eof, mixed_calls,
 * bidir, many_conns, shutdown_wakes) on a fresh listener on SCPORT,
 * inside this process, next to the echo connections, and
 * prints sockcheck's PASS line (a FAIL ends the process with status 1).
 * SIGTERM or SIGINT prints "victim: exiting: ..." and exits 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sockcheck.h"

#define BUF_SIZE	(256u * 1024)
#define LABEL_MAX	200
#define STALL_S		3

static const struct {
	const char *name;
	sc_half_fn server;
} sc_cases[] = {
	{ "eof", eof_server },
	{ "mixed_calls", mixed_calls_server },
	{ "bidir", bidir_server },
	{ "many_conns", many_conns_server },
	{ "shutdown_wakes", shutdown_wakes_server },
};

static unsigned long n_conns, n_errors, n_eof;
static uint16_t sc_port;
static const char *sc_case;

struct conn {
	int fd;
	unsigned long id;
};

static int send_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void *echo_thread(void *arg)
{
	struct conn *c = arg;
	char label[LABEL_MAX + 1] = "";
	uint64_t in = 0, out = 0;
	const char *how = "eof";
	uint8_t *buf;
	size_t have = 0;
	int err = 0;
	char *nl;

	if (posix_memalign((void **)&buf, 4096, BUF_SIZE)) {
		close(c->fd);
		free(c);
		return NULL;
	}
	/* The label: everything up to the first newline. */
	while (have < LABEL_MAX) {
		ssize_t n = read(c->fd, buf + have, LABEL_MAX - have);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? errno : 0;
			break;
		}
		have += (size_t)n;
		if (memchr(buf, '\n', have))
			break;
	}
	in = have;
	memcpy(label, buf, have < LABEL_MAX ? have : LABEL_MAX);
	label[have < LABEL_MAX ? have : LABEL_MAX] = '\0';
	nl = strchr(label, '\n');
	if (nl)
		*nl = '\0';
	printf("victim: conn %lu accepted: %s\n", c->id, label);
	if (have && send_all(c->fd, buf, have)) {
		err = errno;
		goto out;
	}
	out = have;
	if (!nl)
		goto out;
	if (strlen(label) > 6 && !strcmp(label + strlen(label) - 6, " stall"))
		sleep(STALL_S);

	for (;;) {
		ssize_t n = read(c->fd, buf, BUF_SIZE);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? errno : 0;
			break;
		}
		in += (uint64_t)n;
		if (send_all(c->fd, buf, (size_t)n)) {
			err = errno;
			break;
		}
		out += (uint64_t)n;
	}
out:
	if (err) {
		how = "error";
		__atomic_fetch_add(&n_errors, 1, __ATOMIC_RELAXED);
	} else {
		__atomic_fetch_add(&n_eof, 1, __ATOMIC_RELAXED);
	}
	printf("victim: conn %lu ended: %s%s%s%s in=%llu out=%llu: %s\n", c->id, how,
	       err ? " (" : "", err ? strerror(err) : "", err ? ")" : "",
	       (unsigned long long)in, (unsigned long long)out, label);
	close(c->fd);
	free(buf);
	free(c);
	return NULL;
}

static void run_sockcheck(void)
{
	struct sc_ctx ctx = { .server = true, .port = sc_port };
	socklen_t len = sizeof(ctx.addr);
	sc_half_fn fn = NULL;
	uint64_t t0;
	size_t i;

	for (i = 0; i < sizeof(sc_cases) / sizeof(sc_cases[0]); i++)
		if (!strcmp(sc_cases[i].name, sc_case))
			fn = sc_cases[i].server;
	if (!fn) {
		printf("victim: no sockcheck case '%s' here\n", sc_case);
		exit(1);
	}
	sc_set_case(sc_case, "server");
	ctx.lfd = sc_listen_any(sc_port);
	if (getsockname(ctx.lfd, (struct sockaddr *)&ctx.addr, &len))
		sc_fail_errno("getsockname(listener)");
	printf("victim: sockcheck %s listening on %u\n", sc_case, sc_port);
	t0 = sc_now_ns();
	sc_watchdog_init();
	if (fn(&ctx))
		sc_fail("case failed");
	alarm(0);
	printf("PASS case=%s bytes=%llu role=server time=%.2fs\n", sc_case,
	       (unsigned long long)sc_bytes(), sc_since_s(t0));
	close(ctx.lfd);
}

static void *signal_thread(void *arg)
{
	sigset_t *set = arg;
	int sig;

	for (;;) {
		if (sigwait(set, &sig))
			continue;
		if (sig == SIGUSR1 && sc_case) {
			run_sockcheck();
			continue;
		}
		if (sig == SIGTERM || sig == SIGINT) {
			printf("victim: exiting: %lu connections, %lu ended by EOF, %lu by an "
			       "error\n",
			       __atomic_load_n(&n_conns, __ATOMIC_RELAXED),
			       __atomic_load_n(&n_eof, __ATOMIC_RELAXED),
			       __atomic_load_n(&n_errors, __ATOMIC_RELAXED));
			fflush(stdout);
			exit(0);
		}
	}
	return NULL;
}

static _Noreturn void usage(void)
{
	fprintf(stderr, "usage: hostile_victim PORT [--idle-port IPORT]"
			" [--sockcheck SCPORT CASE]\n");
	exit(2);
}

static uint16_t parse_port(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*end || v <= 0 || v > 65535)
		usage();
	return (uint16_t)v;
}

static int listen_on(uint16_t port, int backlog)
{
	struct sockaddr_in sin;
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0) {
		perror("socket");
		exit(1);
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) || listen(fd, backlog)) {
		perror("bind/listen");
		exit(1);
	}
	return fd;
}

int main(int argc, char **argv)
{
	static sigset_t set;
	pthread_attr_t attr;
	uint16_t port, idle_port = 0;
	pthread_t t;
	int lfd, i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		usage();
	port = parse_port(argv[1]);
	for (i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--idle-port") && i + 1 < argc) {
			idle_port = parse_port(argv[++i]);
		} else if (!strcmp(argv[i], "--sockcheck") && i + 2 < argc) {
			sc_port = parse_port(argv[++i]);
			sc_case = argv[++i];
		} else {
			usage();
		}
	}

	/* Every thread inherits the mask; only signal_thread takes these. */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (pthread_create(&t, NULL, signal_thread, &set)) {
		perror("pthread_create");
		return 1;
	}

	lfd = listen_on(port, 64);
	if (idle_port) {
		listen_on(idle_port, 4);
		printf("victim: idle listener (backlog 4, never accepted) on %u\n", idle_port);
	}
	printf("victim: listening on %u\n", port);

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (;;) {
		struct conn *c;
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			printf("victim: accept: %s\n", strerror(errno));
			return 1;
		}
		c = malloc(sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->id = __atomic_add_fetch(&n_conns, 1, __ATOMIC_RELAXED);
		if (pthread_create(&t, &attr, echo_thread, c)) {
			printf("victim: pthread_create failed\n");
			close(fd);
			free(c);
		}
	}
}
