// SPDX-License-Identifier: MIT
/*
 * guest_ram: QEMU's RAM stream from memory marked MADV_DONTFORK, as QEMU
 * marks guest RAM, into a reader that starts late.  Each sendmsg() carries
 * 32 (8-byte header, page) pairs; the headers come from a heap buffer that
 * is overwritten as soon as each call returns; the stream ends with an
 * 8-byte end-of-section marker, after which the writer waits for the
 * reader's answer.
 *
 * The pages are never rewritten while the stream is sent, so every byte is
 * known: the reader checks them all.  But right after the last page is
 * written, before the marker, the writer replaces the whole region: it
 * unmaps it and maps fresh memory full of other bytes at the same address.
 * Whatever a transport still had to send from the old pages must be the
 * old bytes (a pin keeps them), never the new ones and never a crash.
 *
 * On kernel TCP the reader's late start only makes writes wait.  Through
 * libmigrdma with its backlog on (SOCKCHECK_EXPECT=rdma from run-pair.sh,
 * MIGRDMA_BACKLOG not 0), writes of such memory may be handed over beyond
 * the peer's window, so the writer must get through more pages than its
 * 8 MiB ring holds before the reader has read a byte.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sockcheck.h"

#define GR_PAGE		4096u
#define GR_PAIRS	32u
#define GR_MSGS		128u		/* 16 MiB of pages */
#define GR_LATE_MS	1500u		/* the reader's late start */
#define GR_EOS		0x10u

static uint64_t gr_seed(void)
{
	return sc_seed(7);
}

/* Message m's pair i: which page, spread over the region. */
static uint32_t gr_page(uint32_t m, uint32_t i)
{
	return (m * GR_PAIRS + i * 37u) % (GR_MSGS * GR_PAIRS);
}

static void gr_header(uint8_t *h, uint32_t page)
{
	uint64_t v = (uint64_t)page << 12 | 0x08;
	int k;

	for (k = 0; k < 8; k++)
		h[k] = (uint8_t)(v >> (56 - 8 * k));
}

/* Are the writes through the library with its backlog, and so expected not to wait? */
static bool gr_expect_backlog(void)
{
	const char *backlog = getenv("MIGRDMA_BACKLOG");

	return sc_expect_rdma() && !(backlog && !strcmp(backlog, "0"));
}

static void gr_sendmsg_all(int fd, struct iovec *iov, int iovcnt, const char *what)
{
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)iovcnt };

	while (mh.msg_iovlen) {
		ssize_t n = sendmsg(fd, &mh, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			sc_fail_errno("sendmsg of %s", what);
		sc_count((uint64_t)n);
		sc_progress();
		while (mh.msg_iovlen && (size_t)n >= mh.msg_iov->iov_len) {
			n -= (ssize_t)mh.msg_iov->iov_len;
			mh.msg_iov++;
			mh.msg_iovlen--;
		}
		if (mh.msg_iovlen) {
			mh.msg_iov->iov_base = (char *)mh.msg_iov->iov_base + n;
			mh.msg_iov->iov_len -= (size_t)n;
		}
	}
}

/* Unmap the region and map other bytes in its place. */
static void gr_replace_region(uint8_t *region, size_t len)
{
	void *p;

	if (munmap(region, len))
		sc_fail_errno("munmap of the region");
	p = mmap(region, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		 -1, 0);
	if (p != region)
		sc_fail_errno("mmap over the old region");
	memset(region, 0xd7, len);
}

int guest_ram_client(struct sc_ctx *ctx)
{
	size_t len = (size_t)GR_MSGS * GR_PAIRS * GR_PAGE;
	uint8_t *region = sc_alloc_pages(len), *hdrs = sc_xmalloc(8 * GR_PAIRS), eos[8] = { 0 };
	struct iovec iov[2 * GR_PAIRS];
	uint64_t t0;
	double pages_s;
	uint32_t m, i;
	int fd;

	if (madvise(region, len, MADV_DONTFORK))
		sc_fail_errno("madvise(MADV_DONTFORK)");
	pat_fill(gr_seed(), 0, region, len);
	sc_step("connect");
	fd = sc_connect(ctx);
	sc_step("64-iovec sendmsg of headers and pages while the reader has not started");
	t0 = sc_now_ns();
	for (m = 0; m < GR_MSGS; m++) {
		for (i = 0; i < GR_PAIRS; i++) {
			gr_header(hdrs + 8 * i, gr_page(m, i));
			iov[2 * i].iov_base = hdrs + 8 * i;
			iov[2 * i].iov_len = 8;
			iov[2 * i + 1].iov_base = region + (size_t)gr_page(m, i) * GR_PAGE;
			iov[2 * i + 1].iov_len = GR_PAGE;
		}
		gr_sendmsg_all(fd, iov, 2 * GR_PAIRS, "headers and pages");
		memset(hdrs, 0xa5, 8 * GR_PAIRS);
	}
	pages_s = sc_since_s(t0);
	sc_info("%u messages of pages written in %.0f ms (the reader starts after %u ms)",
		GR_MSGS, pages_s * 1e3, GR_LATE_MS);
	if (gr_expect_backlog() && pages_s * 1e3 >= GR_LATE_MS / 2)
		sc_fail("through the library the page writes took %.0f ms: they waited for the "
			"reader, though their memory may stay in flight beyond its window",
			pages_s * 1e3);
	sc_step("replace the region, then the end-of-section marker");
	gr_replace_region(region, len);
	eos[7] = GR_EOS;
	sc_write_all(fd, eos, sizeof(eos), "end-of-section marker");
	sc_step("wait for the reader's answer");
	sc_recv_token(fd, 'G', "stream received");
	close(fd);
	sc_free_pages(region, len);
	free(hdrs);
	return 0;
}

int guest_ram_server(struct sc_ctx *ctx)
{
	uint8_t *page = sc_xmalloc(GR_PAGE), hdr[8], want[8], eos[8] = { 0 };
	uint32_t m, i;
	int fd;

	sc_step("accept, then wait before reading");
	fd = sc_accept(ctx->lfd);
	usleep(GR_LATE_MS * 1000);
	sc_step("every header and page as it was when written");
	for (m = 0; m < GR_MSGS; m++) {
		for (i = 0; i < GR_PAIRS; i++) {
			uint32_t p = gr_page(m, i);

			sc_read_exact(fd, hdr, sizeof(hdr), "page header");
			gr_header(want, p);
			if (memcmp(hdr, want, sizeof(hdr)))
				sc_fail("message %u pair %u: header differs", m, i);
			sc_read_exact(fd, page, GR_PAGE, "page");
			pat_verify(gr_seed(), (uint64_t)p * GR_PAGE, page, GR_PAGE,
				   "guest page (the region was replaced after it was written)");
		}
	}
	sc_read_exact(fd, hdr, sizeof(hdr), "end-of-section marker");
	eos[7] = GR_EOS;
	if (memcmp(hdr, eos, sizeof(eos)))
		sc_fail("the end-of-section marker differs");
	sc_send_token(fd, 'G');
	sc_expect_eof(fd, "after the stream");
	close(fd);
	free(page);
	return 0;
}
