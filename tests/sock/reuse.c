// SPDX-License-Identifier: MIT
/*
 * buffer_reuse: a write has returned, so its buffer is the program's
 * again.  The client overwrites every buffer the moment a write returns
 * (with different bytes) and the server checks that the stream carries
 * only what was there when each write was made.  The buffers are
 * page-aligned and large, exactly what a zero-copy transport would like
 * to send straight from the program's memory, and a transport that lets a
 * write return before the device has read its buffer, or that holds a
 * write back to merge it with the next one, would send the new bytes.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sockcheck.h"

#define REUSE_BUF	(2u << 20)

/* Write sizes: one page, QEMU's 128 KiB, a 1 MiB chunk, odd page counts. */
static const size_t reuse_sizes[] = { 4096, 131072, 1 << 20, 12288, 65536, 2 << 20, 8192 };
#define REUSE_NSIZES (sizeof(reuse_sizes) / sizeof(reuse_sizes[0]))

static unsigned reuse_rounds(void)
{
	return (unsigned)sc_scaled(24, 3);
}

static uint64_t reuse_total(void)
{
	uint64_t t = 0;
	unsigned r;

	for (r = 0; r < reuse_rounds(); r++)
		t += 2 * reuse_sizes[r % REUSE_NSIZES];
	return t;
}

/* Write [buf, buf+len) as stream bytes from pos, scribbling over each part once written. */
static void write_and_scribble(int fd, uint8_t *buf, size_t len, uint64_t seed, uint64_t pos,
			       bool two_iovecs, int flags)
{
	size_t off = 0;

	pat_fill(seed, pos, buf, len);
	while (off < len) {
		struct iovec iov[2];
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 1 };
		size_t left = len - off;
		ssize_t n;

		iov[0].iov_base = buf + off;
		iov[0].iov_len = left;
		/* Split at a page boundary so both iovecs stay page-aligned. */
		if (two_iovecs && left >= 8192) {
			iov[0].iov_len = (left / 2) & ~(size_t)4095;
			iov[1].iov_base = buf + off + iov[0].iov_len;
			iov[1].iov_len = left - iov[0].iov_len;
			mh.msg_iovlen = 2;
		}
		n = sendmsg(fd, &mh, flags);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			sc_fail_errno("sendmsg of %zu bytes at stream byte %llu", left,
				      (unsigned long long)(pos + off));
		/* Returned: the written part is ours to overwrite at once. */
		memset(buf + off, 0xee ^ (uint8_t)(pos >> 12), (size_t)n);
		off += (size_t)n;
		sc_count((uint64_t)n);
		sc_progress();
	}
}

int buffer_reuse_client(struct sc_ctx *ctx)
{
	uint8_t *a = sc_alloc_pages(REUSE_BUF), *b = sc_alloc_pages(REUSE_BUF);
	uint64_t seed = sc_seed(1), pos = 0;
	unsigned r;
	int fd;

	sc_step("connect");
	fd = sc_connect(ctx);
	sc_step("write, then overwrite each buffer as soon as the write returns");
	for (r = 0; r < reuse_rounds(); r++) {
		size_t len = reuse_sizes[r % REUSE_NSIZES];

		/* Back to back from two buffers, as a bulk sender does. */
		write_and_scribble(fd, a, len, seed, pos, r % 2, r % 3 == 2 ? MSG_MORE : 0);
		pos += len;
		write_and_scribble(fd, b, len, seed, pos, r % 2 == 0, 0);
		pos += len;
	}
	if (shutdown(fd, SHUT_WR))
		sc_fail_errno("shutdown(SHUT_WR)");
	sc_step("wait for the server to close");
	sc_expect_eof(fd, "after the stream");
	close(fd);
	sc_free_pages(a, REUSE_BUF);
	sc_free_pages(b, REUSE_BUF);
	return 0;
}

int buffer_reuse_server(struct sc_ctx *ctx)
{
	int fd;

	sc_step("accept");
	fd = sc_accept(ctx->lfd);
	sc_step("every byte as it was when its write was made");
	sc_recv_stream(fd, sc_seed(1), 0, reuse_total(), "reused buffers");
	sc_expect_eof(fd, "after the stream");
	close(fd);
	return 0;
}

/*
 * The end of a burst, writer's side: wait in poll(), not read, for the
 * server's answer, which it sends once it has every byte of the burst.  A
 * transport that batched the burst's tail and never sent it fails here.
 */
static void await_burst_answer(int fd, unsigned burst, char token)
{
	uint64_t t0;

	sc_step("wait in poll, not read, for the server to have it all");
	t0 = sc_now_ns();
	if (!(sc_poll1(fd, POLLIN, sc_timeout_ms()) & POLLIN))
		sc_fail("burst %u: the server never answered (its tail is stuck)", burst);
	sc_info("burst %u: answered %.1f ms after its last write", burst, sc_since_s(t0) * 1e3);
	sc_recv_token(fd, token, "burst received");
}

/* The server's side: nbursts bursts of len bytes of stream seed, each answered with token. */
static int serve_bursts(struct sc_ctx *ctx, unsigned seed, uint64_t len, unsigned nbursts,
			char token, const char *what)
{
	uint64_t pos = 0;
	unsigned b;
	int fd;

	sc_step("accept");
	fd = sc_accept(ctx->lfd);
	for (b = 0; b < nbursts; b++) {
		sc_step("every byte of the burst, then an answer");
		sc_recv_stream(fd, sc_seed(seed), pos, len, what);
		pos += len;
		sc_send_token(fd, token);
	}
	sc_expect_eof(fd, "after the bursts");
	close(fd);
	return 0;
}

/*
 * record_stream: the copy path's counterpart.  A TLS channel writes one
 * record per call, small and never page-aligned (QEMU's: a 37-byte record
 * for an 8-byte header, then one of 4125 bytes for a page), back to back,
 * and reuses its buffer at once.  A transport may batch such writes, but
 * each burst's tail must still arrive while the writer waits in poll()
 * without reading, as it does for the peer's answer.
 */
#define REC_SMALL	37u
#define REC_LARGE	4125u
#define REC_BURSTS	4u

static unsigned rec_per_burst(void)
{
	return (unsigned)sc_scaled(512, 64);
}

int record_stream_client(struct sc_ctx *ctx)
{
	uint8_t *buf = sc_xmalloc(REC_LARGE + 1) + 1;	/* never aligned */
	uint64_t seed = sc_seed(2), pos = 0;
	unsigned b, r;
	int fd;

	sc_step("connect");
	fd = sc_connect(ctx);
	for (b = 0; b < REC_BURSTS; b++) {
		sc_step("a burst of records, each buffer overwritten once written");
		for (r = 0; r < 2 * rec_per_burst(); r++) {
			size_t len = r % 2 ? REC_LARGE : REC_SMALL;

			pat_fill(seed, pos, buf, len);
			sc_write_all(fd, buf, len, "record");
			memset(buf, 0xa5, len);
			pos += len;
		}
		await_burst_answer(fd, b, 'R');
	}
	close(fd);
	free(buf - 1);
	return 0;
}

int record_stream_server(struct sc_ctx *ctx)
{
	return serve_bursts(ctx, 2, rec_per_burst() * (uint64_t)(REC_SMALL + REC_LARGE),
			    REC_BURSTS, 'R', "records");
}

/*
 * nodelay_bulk: QEMU's multifd channel.  TCP_NODELAY is set, and the
 * writer sends bulk chunks back to back (64 KiB, unaligned, so copied),
 * overwriting each buffer as soon as it is written, then waits in poll()
 * for the answer.  A transport may still batch the chunks (TCP_NODELAY is
 * about small writes), but each burst's tail must arrive without another
 * write or a read.
 */
#define NODELAY_CHUNK	(64u * 1024)
#define NODELAY_BURSTS	4u

static unsigned nodelay_chunks(void)
{
	return (unsigned)sc_scaled(16, 4);
}

int nodelay_bulk_client(struct sc_ctx *ctx)
{
	uint8_t *buf = sc_xmalloc(NODELAY_CHUNK + 1) + 1;	/* never aligned */
	uint64_t seed = sc_seed(3), pos = 0;
	unsigned b, k;
	int fd, one = 1;

	sc_step("connect, TCP_NODELAY");
	fd = sc_connect(ctx);
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		sc_fail("setsockopt(TCP_NODELAY): %s", strerror(errno));
	for (b = 0; b < NODELAY_BURSTS; b++) {
		sc_step("a burst of bulk chunks, each buffer overwritten once written");
		for (k = 0; k < nodelay_chunks(); k++) {
			pat_fill(seed, pos, buf, NODELAY_CHUNK);
			sc_write_all(fd, buf, NODELAY_CHUNK, "chunk");
			memset(buf, 0x5a, NODELAY_CHUNK);
			pos += NODELAY_CHUNK;
		}
		await_burst_answer(fd, b, 'N');
	}
	close(fd);
	free(buf - 1);
	return 0;
}

int nodelay_bulk_server(struct sc_ctx *ctx)
{
	return serve_bursts(ctx, 3, nodelay_chunks() * (uint64_t)NODELAY_CHUNK, NODELAY_BURSTS,
			    'N', "chunks");
}
