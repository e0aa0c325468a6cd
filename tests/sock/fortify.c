// SPDX-License-Identifier: MIT
/*
 * fortify: reads as a program built with -D_FORTIFY_SOURCE=2 -O2 does them.
 * With fixed-size buffers and lengths known only at run time, glibc routes
 * read/recv/recvfrom/poll through __read_chk, __recv_chk, __recvfrom_chk
 * and __poll_chk; an interposing library that only wraps read() and friends
 * would never see these calls.  The sock.fortify.symbols test checks with nm
 * that the binary really imports the _chk names.
 */
#if !defined(_FORTIFY_SOURCE) || _FORTIFY_SOURCE < 2 || !defined(__OPTIMIZE__)
#error "fortify.c must be built with -O2 -D_FORTIFY_SOURCE=2 (see CMakeLists.txt)"
#endif

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sockcheck.h"

#define FORT_BUF 4096

/*
 * Read through a volatile so the compiler cannot prove the length fits the
 * buffer; a provably safe length would be compiled to the plain call.
 */
static volatile size_t fort_max = FORT_BUF;
static volatile nfds_t fort_nfds = 1;

static uint64_t fortify_len(void)
{
	return sc_scaled(4 << 20, 65536);
}

/* Wait with poll() on an array whose length the compiler knows. */
static void fort_wait(int fd)
{
	struct pollfd pfd[1] = { { .fd = fd, .events = POLLIN } };
	int r;

	do {
		r = poll(pfd, fort_nfds, sc_timeout_ms());
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		sc_fail_errno("poll");
	if (!r)
		sc_fail("poll: nothing to read within %d ms", sc_timeout_ms());
}

/* Receive len bytes of stream seed, rotating through the _chk entries. */
static void fort_recv(int fd, uint64_t seed, uint64_t len)
{
	char buf[FORT_BUF];
	uint64_t pos = 0;
	unsigned i = 0;

	while (pos < len) {
		size_t want = fort_max - (i * 37) % 1024;
		ssize_t n;

		if (want > len - pos)
			want = (size_t)(len - pos);
		if (i % 8 == 0)
			fort_wait(fd);
		switch (i % 3) {
		case 0:
			n = read(fd, buf, want);
			break;
		case 1:
			n = recv(fd, buf, want, 0);
			break;
		default:
			n = recvfrom(fd, buf, want, 0, NULL, NULL);
			break;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			sc_fail_errno("fortified read #%u", i);
		if (n == 0)
			sc_fail("EOF after %llu of %llu bytes",
				(unsigned long long)pos, (unsigned long long)len);
		pat_verify(seed, pos, buf, (size_t)n, "fortified read");
		pos += (uint64_t)n;
		sc_count((uint64_t)n);
		sc_progress();
		i++;
	}
}

int fortify_server(struct sc_ctx *ctx)
{
	int fd;

	sc_step("fortified reads");
	fd = sc_accept(ctx->lfd);
	fort_recv(fd, sc_seed(1), fortify_len());
	sc_send_stream(fd, sc_seed(2), 0, 100000, "reply");
	sc_expect_eof(fd, "end");
	close(fd);
	return 0;
}

int fortify_client(struct sc_ctx *ctx)
{
	int fd;

	sc_step("send, then fortified reads of the reply");
	fd = sc_connect(ctx);
	sc_send_stream(fd, sc_seed(1), 0, fortify_len(), "data");
	fort_recv(fd, sc_seed(2), 100000);
	close(fd);
	return 0;
}
