// SPDX-License-Identifier: MIT
/*
 * hostile_echo: the well-behaved peer of hostile_victim.  Run it under
 * LD_PRELOAD=libmigrdma.so:
 *
 *   hostile_echo ADDR PORT LABEL [--bytes N] [--stop-file F] [--pace-ms MS]
 *
 * Connects, sends the line "LABEL\n", then streams a position-keyed byte
 * pattern in writes of mixed sizes and alignments (1 B to 256 KiB; page-
 * aligned ones go zero-copy), pausing MS (default 2) between writes, until
 * N bytes (default unbounded) are sent or file F exists.  Then it shuts
 * down its sending side.  A second thread reads the echo back and checks
 * every byte, until EOF.
 *
 * Prints "echo: PASS label=LABEL bytes=N time=S" and exits 0 when the whole
 * stream came back byte-exact followed by EOF; otherwise "echo: FAIL ..."
 * and exits 1.  No progress for 60 s is a FAIL.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define CHUNK_MAX	(256u * 1024)
#define IDLE_S		60

static const char *label;
static uint64_t limit = UINT64_MAX;
static const char *stop_file;
static unsigned pace_ms = 2;
static uint64_t sent;			/* written by the sender, then final */

static _Noreturn void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static _Noreturn void fail(const char *fmt, ...)
{
	char head[128];
	va_list ap;

	snprintf(head, sizeof(head), "echo: FAIL label=%s: ", label ? label : "?");
	va_start(ap, fmt);
	print_failure(head, fmt, ap);
	va_end(ap);
	_exit(1);
}

static void on_alarm(int sig)
{
	static const char msg[] = "echo: FAIL: no progress for 60 s\n";
	ssize_t r;

	(void)sig;
	r = write(1, msg, sizeof(msg) - 1);
	(void)r;
	_exit(1);
}

static uint8_t pattern(uint64_t pos)
{
	uint64_t x = (pos + 1) * 0x9e3779b97f4a7c15ull;

	return (uint8_t)(x >> 56 ^ x >> 29);
}

static void write_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail("write after %llu bytes: %s", (unsigned long long)sent,
			     n < 0 ? strerror(errno) : "returned 0");
		p += n;
		len -= (size_t)n;
	}
}

static void *sender(void *arg)
{
	static const uint32_t sizes[] = { 1, 4096, 7, 65536, 100, 65536 + 13, 4096 * 3, 1500,
					  CHUNK_MAX, 33, 8192 + 1 };
	int fd = *(int *)arg;
	uint8_t *buf;
	uint64_t pos = 0;
	unsigned i = 0;

	if (posix_memalign((void **)&buf, 4096, CHUNK_MAX + 4096))
		fail("out of memory");
	while (pos < limit) {
		uint32_t len = sizes[i % (sizeof(sizes) / sizeof(sizes[0]))];
		/* Every third write starts off the page boundary: a copy, not zero-copy. */
		uint8_t *p = buf + (i % 3 == 2 ? 1 : 0);
		uint32_t k;

		if (len > limit - pos)
			len = (uint32_t)(limit - pos);
		for (k = 0; k < len; k++)
			p[k] = pattern(pos + k);
		write_all(fd, p, len);
		pos += len;
		__atomic_store_n(&sent, pos, __ATOMIC_RELEASE);
		i++;
		if (stop_file && access(stop_file, F_OK) == 0)
			break;
		if (pace_ms)
			usleep(pace_ms * 1000);
	}
	if (shutdown(fd, SHUT_WR))
		fail("shutdown(SHUT_WR): %s", strerror(errno));
	free(buf);
	return NULL;
}

static int connect_retry(const char *addr, uint16_t port)
{
	struct sockaddr_in sin;
	double end = now_s() + 60;
	int fd;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
		fail("bad address %s", addr);
	for (;;) {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0)
			fail("socket: %s", strerror(errno));
		if (!connect(fd, (struct sockaddr *)&sin, sizeof(sin)))
			return fd;
		if (errno != ECONNREFUSED || now_s() > end)
			fail("connect %s:%u: %s", addr, port, strerror(errno));
		close(fd);
		usleep(200 * 1000);
	}
}

int main(int argc, char **argv)
{
	uint8_t *buf, line[256];
	uint64_t got = 0;
	size_t llen;
	pthread_t t;
	double t0;
	int fd, i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 4) {
		fprintf(stderr, "usage: hostile_echo ADDR PORT LABEL [--bytes N] [--stop-file F]"
				" [--pace-ms MS]\n");
		return 2;
	}
	label = argv[3];
	for (i = 4; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--bytes"))
			limit = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--stop-file"))
			stop_file = argv[i + 1];
		else if (!strcmp(argv[i], "--pace-ms"))
			pace_ms = (unsigned)atoi(argv[i + 1]);
		else
			fail("unknown option %s", argv[i]);
	}
	if (i != argc)
		fail("option %s needs a value", argv[i]);
	llen = strlen(label);
	if (llen + 1 > sizeof(line) || memchr(label, '\n', llen))
		fail("bad label");
	signal(SIGALRM, on_alarm);
	alarm(IDLE_S);

	t0 = now_s();
	fd = connect_retry(argv[1], (uint16_t)atoi(argv[2]));
	memcpy(line, label, llen);
	line[llen] = '\n';
	write_all(fd, line, llen + 1);
	printf("echo: connected label=%s\n", label);
	if (pthread_create(&t, NULL, sender, &fd))
		fail("pthread_create");

	buf = malloc(CHUNK_MAX);
	if (!buf)
		fail("out of memory");
	/* The label comes back first. */
	while (got < llen + 1) {
		ssize_t n = read(fd, line + got, llen + 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail("reading the label echo: %s", n < 0 ? strerror(errno) : "EOF");
		got += (uint64_t)n;
	}
	if (memcmp(line, label, llen) || line[llen] != '\n')
		fail("the label came back wrong");
	got = 0;
	for (;;) {
		ssize_t n = read(fd, buf, CHUNK_MAX);
		ssize_t k;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail("read after %llu bytes: %s", (unsigned long long)got, strerror(errno));
		if (n == 0)
			break;
		for (k = 0; k < n; k++)
			if (buf[k] != pattern(got + (uint64_t)k))
				fail("byte %llu is 0x%02x, want 0x%02x",
				     (unsigned long long)(got + (uint64_t)k), buf[k],
				     pattern(got + (uint64_t)k));
		got += (uint64_t)n;
		alarm(IDLE_S);
	}
	pthread_join(t, NULL);
	if (got != __atomic_load_n(&sent, __ATOMIC_ACQUIRE))
		fail("EOF after %llu of %llu bytes", (unsigned long long)got,
		     (unsigned long long)sent);
	close(fd);
	printf("echo: PASS label=%s bytes=%llu time=%.1fs\n", label, (unsigned long long)got,
	       now_s() - t0);
	return 0;
}
