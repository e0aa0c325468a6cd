// SPDX-License-Identifier: MIT
/*
 * Bulk data cases: qemu_sendmsg, mixed_calls, bidir, many_conns, churn.
 * Every byte received is checked against the deterministic stream.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "sockcheck.h"

/* ------------------------------------------------------------------ */
/* qemu_sendmsg                                                        */
/* ------------------------------------------------------------------ */

/*
 * The stream imitates QEMU's RAM migration: a 188-byte preamble message,
 * then messages of 32 (header, page) pairs sent with one sendmsg() of 64
 * iovecs, the first RAM message starting with a 22-byte section header, and
 * an end-of-stream header.  Headers live in a small heap buffer that is
 * rewritten for every message; pages come from a big mmap()ed "guest RAM"
 * region in a varying order, and some pages are rewritten right after they
 * were sent, as a running guest dirties them.  TCP semantics say the peer
 * gets the bytes as they were when sendmsg() returned, so a zero-copy
 * transport that reads the pages later would be caught here.
 *
 * Both halves run the same generator; the receiver uses it to know what
 * every byte must be without holding a copy of the region.
 */
#define Q_PAGE		4096
#define Q_PAIRS		32
#define Q_PREAMBLE	188
#define Q_SECTION	22
#define Q_FLAG_PAGE	0x08
#define Q_FLAG_EOS	0x10
#define Q_NOPAGE	UINT32_MAX
#define Q_MAX_PAGES	16384		/* 64 MiB region */

struct qseg {
	uint32_t len;
	uint32_t page;			/* Q_NOPAGE: bytes are in hdr[hoff] */
	uint32_t hoff;
};

struct qgen {
	uint64_t seed_hdr;
	uint64_t seed_ram;
	uint32_t npages;		/* power of two, >= 2 * Q_PAIRS */
	uint8_t *version;		/* per page, bumped when dirtied */
	uint64_t pages_left;
	uint64_t msg;			/* index of the current message */
	bool eos_sent;
	struct qseg seg[2 * Q_PAIRS + 1];
	int nseg;
	uint32_t pages[Q_PAIRS];
	int npairs;
	uint8_t hdr[Q_PREAMBLE + 8 * (Q_PAIRS + 1)];
};

static void put_be64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t q_page_seed(const struct qgen *g, uint8_t version)
{
	return g->seed_ram + (uint64_t)version * 0x632be59bd9b4e019ull;
}

static void qgen_init(struct qgen *g, uint64_t total)
{
	uint64_t pages;

	memset(g, 0, sizeof(*g));
	g->seed_hdr = sc_seed(1);
	g->seed_ram = sc_seed(2);
	pages = total > Q_PREAMBLE + Q_SECTION + 8 ?
		(total - Q_PREAMBLE - Q_SECTION - 8) / (Q_PAGE + 8) : 1;
	g->pages_left = pages ? pages : 1;
	g->npages = 2 * Q_PAIRS;
	while (g->npages < g->pages_left && g->npages < Q_MAX_PAGES)
		g->npages *= 2;
	g->version = calloc(g->npages, 1);
	if (!g->version)
		sc_fail("calloc(%u)", g->npages);
}

static void qgen_add(struct qgen *g, uint32_t len, uint32_t page, uint32_t hoff)
{
	g->seg[g->nseg++] = (struct qseg){ .len = len, .page = page,
					   .hoff = hoff };
}

/*
 * Pages of a message are distinct (npages > Q_PAIRS), so a page's version
 * is the same for the whole message.  Even messages walk the region in
 * order, odd ones jump with an odd stride to spread the addresses.
 */
static uint32_t qgen_page(const struct qgen *g, int i)
{
	uint32_t mask = g->npages - 1;
	uint32_t base = (uint32_t)sc_mix64(g->msg) & mask;
	uint32_t stride = g->msg & 1 ? ((uint32_t)sc_mix64(~g->msg) & mask) | 1 : 1;

	return (base + (uint32_t)i * stride) & mask;
}

/* Describe the next message; false once the end-of-stream one was used. */
static bool qgen_next(struct qgen *g)
{
	uint32_t hoff = 0;
	int i;

	g->nseg = 0;
	g->npairs = 0;
	if (g->eos_sent)
		return false;
	if (g->msg == 0) {
		pat_fill(g->seed_hdr, 0, g->hdr, Q_PREAMBLE);
		qgen_add(g, Q_PREAMBLE, Q_NOPAGE, 0);
		return true;
	}
	if (!g->pages_left) {
		put_be64(g->hdr, g->msg << 8 | Q_FLAG_EOS);
		qgen_add(g, 8, Q_NOPAGE, 0);
		g->eos_sent = true;
		return true;
	}
	if (g->msg == 1) {
		pat_fill(g->seed_hdr, 4096, g->hdr, Q_SECTION);
		qgen_add(g, Q_SECTION, Q_NOPAGE, 0);
		hoff = Q_SECTION;
	}
	g->npairs = g->msg == 1 ? Q_PAIRS - 1 : Q_PAIRS;
	if ((uint64_t)g->npairs > g->pages_left)
		g->npairs = (int)g->pages_left;
	for (i = 0; i < g->npairs; i++) {
		uint32_t page = qgen_page(g, i);

		g->pages[i] = page;
		put_be64(g->hdr + hoff, (uint64_t)page << 12 |
			 (uint64_t)g->version[page] << 4 | Q_FLAG_PAGE);
		qgen_add(g, 8, Q_NOPAGE, hoff);
		qgen_add(g, Q_PAGE, page, 0);
		hoff += 8;
	}
	g->pages_left -= (uint64_t)g->npairs;
	return true;
}

/* After a message: the "guest" dirties about a quarter of its pages. */
static void qgen_commit(struct qgen *g, uint8_t *region)
{
	int i;

	for (i = 0; i < g->npairs; i++) {
		uint32_t page = g->pages[i];

		if (sc_mix64(g->msg * 64 + (uint64_t)i) & 3)
			continue;
		g->version[page]++;
		if (region)
			pat_fill(q_page_seed(g, g->version[page]),
				 (uint64_t)page * Q_PAGE,
				 region + (size_t)page * Q_PAGE, Q_PAGE);
	}
	g->msg++;
}

static uint64_t qemu_total(void)
{
	const char *mb = getenv("SOCKCHECK_MB");

	if (mb && atoll(mb) > 0)
		return (uint64_t)atoll(mb) << 20;
	return sc_scaled(256ull << 20, 1ull << 20);
}

int qemu_sendmsg_client(struct sc_ctx *ctx)
{
	struct iovec iov[2 * Q_PAIRS + 1];
	uint64_t sent = 0, short_sends = 0;
	uint8_t *region, *hdrbuf;
	struct qgen g;
	uint32_t p;
	int fd, i;

	qgen_init(&g, qemu_total());
	region = sc_alloc_pages((size_t)g.npages * Q_PAGE);
	for (p = 0; p < g.npages; p++)
		pat_fill(q_page_seed(&g, 0), (uint64_t)p * Q_PAGE,
			 region + (size_t)p * Q_PAGE, Q_PAGE);
	/* Headers go out from a small heap buffer, reused every message. */
	hdrbuf = sc_xmalloc(sizeof(g.hdr));

	sc_step("connect");
	fd = sc_connect(ctx);
	/* Users tell the library's CPU from QEMU's in top or /proc by its thread's name. */
	if (sc_expect_rdma() && !sc_has_thread("migrdma-svc"))
		sc_fail("connected through libmigrdma, but no thread is named migrdma-svc");
	sc_step("sendmsg stream");
	while (qgen_next(&g)) {
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)g.nseg };
		size_t left = 0;
		struct iovec *cur = iov;

		memcpy(hdrbuf, g.hdr, sizeof(g.hdr));
		for (i = 0; i < g.nseg; i++) {
			iov[i].iov_len = g.seg[i].len;
			iov[i].iov_base = g.seg[i].page == Q_NOPAGE ?
				(void *)(hdrbuf + g.seg[i].hoff) :
				(void *)(region + (size_t)g.seg[i].page * Q_PAGE);
			left += g.seg[i].len;
		}
		while (left) {
			ssize_t n = sendmsg(fd, &mh, 0);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				sc_fail_errno("sendmsg(%zu iovs, %zu bytes) of message %llu",
					      mh.msg_iovlen, left,
					      (unsigned long long)g.msg);
			if (n == 0)
				sc_fail("sendmsg returned 0");
			sc_progress();
			sc_count((uint64_t)n);
			sent += (uint64_t)n;
			left -= (size_t)n;
			if (!left)
				break;
			/* Short send: carry on from the first unsent byte. */
			short_sends++;
			while ((size_t)n >= cur->iov_len) {
				n -= (ssize_t)cur->iov_len;
				cur++;
			}
			cur->iov_base = (char *)cur->iov_base + n;
			cur->iov_len -= (size_t)n;
			mh.msg_iov = cur;
			mh.msg_iovlen = (size_t)(iov + g.nseg - cur);
		}
		/* sendmsg() returned: the buffers are ours again. */
		memset(hdrbuf, 0xa5, sizeof(g.hdr));
		qgen_commit(&g, region);
	}
	sc_info("sent %llu bytes in %llu messages, %llu short sends",
		(unsigned long long)sent, (unsigned long long)g.msg,
		(unsigned long long)short_sends);
	/* Like QEMU at the end of migration: no more data, then close. */
	if (shutdown(fd, SHUT_WR))
		sc_fail_errno("shutdown(SHUT_WR)");
	sc_step("wait for the server to close");
	sc_expect_eof(fd, "after stream");
	close(fd);
	sc_free_pages(region, (size_t)g.npages * Q_PAGE);
	free(hdrbuf);
	free(g.version);
	return 0;
}

int qemu_sendmsg_server(struct sc_ctx *ctx)
{
	const size_t bufmax = 32 * 1024;
	uint64_t total = 0, eagain = 0, calls = 0, t0 = 0;
	struct timespec ts = { .tv_sec = sc_timeout_ms() / 1000 };
	uint8_t *buf = sc_alloc_pages(bufmax);
	uint32_t so = 0;
	struct qgen g;
	bool more;
	int fd, si = 0;

	qgen_init(&g, qemu_total());
	sc_step("accept");
	fd = sc_accept(ctx->lfd);
	sc_set_nonblock(fd, true);
	more = qgen_next(&g);
	sc_step("ppoll+recvmsg stream");
	for (;;) {
		/* QEMU's reads are 32 KiB minus whatever its buffer holds. */
		struct iovec iov = {
			.iov_base = buf,
			.iov_len = bufmax - (calls * 1021) % 4097,
		};
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n = recvmsg(fd, &mh, 0);
		uint8_t *p = buf;
		int r;

		calls++;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			eagain++;
			do {
				r = ppoll(&pfd, 1, &ts, NULL);
			} while (r < 0 && errno == EINTR);
			if (r < 0)
				sc_fail_errno("ppoll");
			if (r == 0)
				sc_fail("ppoll: no data for %d s after %llu bytes",
					sc_timeout_ms() / 1000,
					(unsigned long long)total);
			if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR)))
				sc_fail("ppoll returned revents 0x%x", pfd.revents);
			continue;
		}
		if (n < 0)
			sc_fail_errno("recvmsg after %llu bytes",
				      (unsigned long long)total);
		if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
			sc_fail("recvmsg msg_flags 0x%x", mh.msg_flags);
		if (n == 0)
			break;
		if (!t0)
			t0 = sc_now_ns();
		sc_progress();
		sc_count((uint64_t)n);
		total += (uint64_t)n;
		while (n > 0) {
			struct qseg *s;
			uint32_t k;

			if (!more)
				sc_fail("%zd bytes past the end-of-stream header",
					n);
			s = &g.seg[si];
			k = s->len - so < (uint32_t)n ? s->len - so : (uint32_t)n;
			if (s->page == Q_NOPAGE) {
				if (memcmp(g.hdr + s->hoff + so, p, k))
					sc_fail("header of message %llu segment %d differs (stream byte %llu)",
						(unsigned long long)g.msg, si,
						(unsigned long long)(total - (uint64_t)n));
			} else {
				pat_verify(q_page_seed(&g, g.version[s->page]),
					   (uint64_t)s->page * Q_PAGE + so, p, k,
					   "page data");
			}
			p += k;
			n -= k;
			so += k;
			if (so < s->len)
				continue;
			so = 0;
			if (++si < g.nseg)
				continue;
			si = 0;
			qgen_commit(&g, NULL);
			more = qgen_next(&g);
		}
	}
	if (more || si || so)
		sc_fail("EOF in the middle of message %llu (after %llu bytes)",
			(unsigned long long)g.msg, (unsigned long long)total);
	sc_info("received %llu bytes, %.1f MB/s, %llu recvmsg calls, %llu EAGAIN",
		(unsigned long long)total,
		t0 ? (double)total / 1e6 / sc_since_s(t0) : 0.0,
		(unsigned long long)calls, (unsigned long long)eagain);
	close(fd);
	sc_free_pages(buf, bufmax);
	free(g.version);
	return 0;
}

/* ------------------------------------------------------------------ */
/* mixed_calls                                                         */
/* ------------------------------------------------------------------ */

static const size_t mix_sizes[] = {
	1, 2, 3, 7, 8, 15, 64, 100, 511, 1000, 1448, 4095, 4096, 4097,
	8191, 16384, 65535, 65536, 100000, 262144, 1 << 20,
};
#define MIX_NSIZES (sizeof(mix_sizes) / sizeof(mix_sizes[0]))
#define MIX_BUF ((1 << 20) + 2 * 4096)

static size_t mix_nops(void)
{
	return (size_t)sc_scaled(200, 30);
}

static size_t mix_send_size(size_t i)
{
	return mix_sizes[sc_mix64(i * 2 + 1) % MIX_NSIZES];
}

static size_t mix_recv_size(size_t j)
{
	return mix_sizes[sc_mix64(j * 2 + 0x51) % MIX_NSIZES];
}

/* Big buffers page-aligned or one byte off, small ones at odd offsets. */
static size_t mix_offset(size_t i, size_t size)
{
	if (size >= 65536)
		return i & 1 ? 1 + i % 7 : 0;
	return i % 13;
}

/* Split len into up to max iovecs of uneven sizes, some of them empty. */
static int mix_split(struct iovec *iov, int max, char *p, size_t len, size_t i)
{
	int k = 1 + (int)(i % (size_t)(max - 1)), n = 0;

	if (i % 3 == 0) {
		iov[n].iov_base = p;
		iov[n++].iov_len = 0;
	}
	while (n < max - 1 && k-- > 1 && len > 1) {
		size_t part = 1 + sc_mix64(i * 31 + (size_t)n) % (len - 1);

		iov[n].iov_base = p;
		iov[n++].iov_len = part;
		p += part;
		len -= part;
	}
	iov[n].iov_base = p;
	iov[n++].iov_len = len;
	return n;
}

static ssize_t mix_send_once(int fd, size_t i, char *p, size_t len)
{
	struct iovec iov[12];
	struct msghdr mh = { 0 };
	/* Cork all but the last op now and then; last one must flush. */
	int more = i % 4 == 0 && i + 1 < mix_nops() ? MSG_MORE : 0;
	int nosig = i % 4 == 1 ? MSG_NOSIGNAL : 0;

	switch (i % 5) {
	case 0:
		return write(fd, p, len);
	case 1:
		return writev(fd, iov, mix_split(iov, 12, p, len, i));
	case 2:
		return send(fd, p, len, more | nosig);
	case 3:
		return sendto(fd, p, len, nosig, NULL, 0);
	default:
		mh.msg_iov = iov;
		mh.msg_iovlen = (size_t)mix_split(iov, 12, p, len, i);
		return sendmsg(fd, &mh, more | MSG_NOSIGNAL);
	}
}

static const char *const send_names[] = {
	"write", "writev", "send", "sendto", "sendmsg"
};
static const char *const recv_names[] = {
	"read", "readv", "recv", "recvfrom", "recvmsg"
};

int mixed_calls_client(struct sc_ctx *ctx)
{
	uint64_t seed = sc_seed(1), pos = 0;
	char *buf = sc_alloc_pages(MIX_BUF);
	size_t i, nops = mix_nops();
	int fd;

	sc_step("connect");
	fd = sc_connect(ctx);
	/* The server checks MSG_DONTWAIT on an empty socket first. */
	sc_recv_token(fd, 'G', "go token");

	sc_step("zero-length sends");
	if (write(fd, buf, 0) != 0)
		sc_fail_errno("write(0 bytes) did not return 0");
	if (send(fd, buf, 0, MSG_NOSIGNAL) != 0)
		sc_fail_errno("send(0 bytes) did not return 0");

	sc_step("send ops");
	for (i = 0; i < nops; i++) {
		size_t size = mix_send_size(i), off = mix_offset(i, size);
		char *p = buf + off;

		pat_fill(seed, pos, p, size);
		while (size) {
			ssize_t n = mix_send_once(fd, i, p, size);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				sc_fail_errno("op %zu: %s(%zu bytes at offset %zu)",
					      i, send_names[i % 5], size, off);
			if ((size_t)n > size)
				sc_fail("op %zu: %s returned %zd > %zu", i,
					send_names[i % 5], n, size);
			sc_progress();
			sc_count((uint64_t)n);
			p += n;
			size -= (size_t)n;
			pos += (uint64_t)n;
		}
	}
	sc_step("wait for ack");
	if (sc_recv_u64(fd, "ack") != pos)
		sc_fail("server acked a different byte count");
	close(fd);
	sc_free_pages(buf, MIX_BUF);
	return 0;
}

/* The connected peer's address may be reported, or no address at all. */
static void mix_check_name(const struct sockaddr_in *sa, socklen_t len,
			   const struct sockaddr_in *peer, const char *what)
{
	if (len == 0)
		return;
	if (len != sizeof(*sa) || sa->sin_family != AF_INET ||
	    sa->sin_port != peer->sin_port ||
	    sa->sin_addr.s_addr != peer->sin_addr.s_addr)
		sc_fail("%s: source address (len %u) is not the peer's", what,
			(unsigned)len);
}

static void expect_eagain(ssize_t n, const char *what)
{
	if (n >= 0)
		sc_fail("%s on an empty socket returned %zd, want EAGAIN", what, n);
	if (errno != EAGAIN && errno != EWOULDBLOCK)
		sc_fail_errno("%s on an empty socket: want EAGAIN", what);
}

/* One receive call of the given method (index into recv_names). */
static ssize_t mix_recv_once(int fd, int method, size_t j, char *p, size_t len,
			     int flags, const struct sockaddr_in *peer)
{
	struct iovec iov[12];
	struct sockaddr_in sa;
	socklen_t salen = sizeof(sa);
	struct msghdr mh = { 0 };
	ssize_t n;

	switch (method) {
	case 0:
		return read(fd, p, len);
	case 1:
		return readv(fd, iov, mix_split(iov, 12, p, len, j));
	case 2:
		return recv(fd, p, len, flags);
	case 3:
		memset(&sa, 0xee, sizeof(sa));
		n = recvfrom(fd, p, len, flags, (struct sockaddr *)&sa, &salen);
		if (n > 0)
			mix_check_name(&sa, salen, peer, "recvfrom");
		return n;
	default:
		memset(&sa, 0xee, sizeof(sa));
		mh.msg_name = &sa;
		mh.msg_namelen = sizeof(sa);
		mh.msg_iov = iov;
		mh.msg_iovlen = (size_t)mix_split(iov, 12, p, len, j);
		n = recvmsg(fd, &mh, flags);
		if (n > 0) {
			mix_check_name(&sa, mh.msg_namelen, peer, "recvmsg");
			if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC | MSG_OOB))
				sc_fail("recvmsg msg_flags 0x%x", mh.msg_flags);
		}
		return n;
	}
}

int mixed_calls_server(struct sc_ctx *ctx)
{
	uint64_t seed = sc_seed(1), pos = 0, total = 0;
	char *buf = sc_alloc_pages(MIX_BUF), *peek = sc_xmalloc(MIX_BUF);
	size_t i, j, nops = mix_nops(), peeks = 0, waitalls = 0, truncs = 0;
	struct sockaddr_in peer;
	socklen_t plen = sizeof(peer);
	struct msghdr mh = { 0 };
	struct iovec iov;
	int fd;

	for (i = 0; i < nops; i++)
		total += mix_send_size(i);
	sc_step("accept");
	fd = sc_accept(ctx->lfd);
	if (getpeername(fd, (struct sockaddr *)&peer, &plen))
		sc_fail_errno("getpeername");

	sc_step("MSG_DONTWAIT on an empty socket");
	expect_eagain(recv(fd, buf, 100, MSG_DONTWAIT), "recv(MSG_DONTWAIT)");
	expect_eagain(recvfrom(fd, buf, 100, MSG_DONTWAIT, NULL, NULL),
		      "recvfrom(MSG_DONTWAIT)");
	iov = (struct iovec){ .iov_base = buf, .iov_len = 100 };
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	expect_eagain(recvmsg(fd, &mh, MSG_DONTWAIT), "recvmsg(MSG_DONTWAIT)");
	expect_eagain(recv(fd, buf, 100, MSG_DONTWAIT | MSG_PEEK),
		      "recv(MSG_PEEK|MSG_DONTWAIT)");
	sc_send_token(fd, 'G');

	sc_step("receive ops");
	for (j = 0; pos < total; j++) {
		size_t size = mix_recv_size(j), off = mix_offset(j, size);
		char *p = buf + off;
		ssize_t n;

		if (size > total - pos)
			size = (size_t)(total - pos);
		if (j % 6 == 3) {
			/* Peeked bytes are exactly what the next read gets. */
			ssize_t k;

			do {
				k = recv(fd, peek, size, MSG_PEEK);
			} while (k < 0 && errno == EINTR);
			if (k <= 0)
				sc_fail_errno("op %zu: recv(MSG_PEEK, %zu) = %zd",
					      j, size, k);
			pat_verify(seed, pos, peek, (size_t)k, "peeked data");
			n = mix_recv_once(fd, (int)(j % 5), j, p, (size_t)k,
					  j % 12 == 3 ? MSG_DONTWAIT : 0, &peer);
			if (n < 0)
				sc_fail_errno("op %zu: %s after peeking %zd bytes",
					      j, recv_names[j % 5], k);
			if (n != k)
				sc_fail("op %zu: %s after peeking %zd bytes returned %zd",
					j, recv_names[j % 5], k, n);
			if (memcmp(peek, p, (size_t)k))
				sc_fail("op %zu: peeked bytes differ from read bytes", j);
			peeks++;
		} else if (j % 6 == 5) {
			/* Alternately recv and recvmsg. */
			int method = j % 12 == 5 ? 2 : 4;

			do {
				n = mix_recv_once(fd, method, j, p, size,
						  MSG_WAITALL, &peer);
			} while (n < 0 && errno == EINTR);
			if (n < 0)
				sc_fail_errno("op %zu: %s(MSG_WAITALL, %zu bytes)",
					      j, recv_names[method], size);
			if ((size_t)n != size)
				sc_fail("op %zu: %s(MSG_WAITALL) returned %zd of %zu bytes",
					j, recv_names[method], n, size);
			waitalls++;
		} else if (j % 12 == 1) {
			/* MSG_TRUNC discards what it reads, into no buffer at all. */
			do {
				n = recv(fd, NULL, size, MSG_TRUNC | MSG_WAITALL);
			} while (n < 0 && errno == EINTR);
			if (n < 0)
				sc_fail_errno("op %zu: recv(NULL, %zu, MSG_TRUNC|MSG_WAITALL)",
					      j, size);
			if ((size_t)n != size)
				sc_fail("op %zu: recv(MSG_TRUNC|MSG_WAITALL) returned %zd of %zu bytes",
					j, n, size);
			truncs++;
			sc_progress();
			sc_count((uint64_t)n);
			pos += (uint64_t)n;
			continue;
		} else {
			do {
				n = mix_recv_once(fd, (int)(j % 5), j, p, size, 0,
						  &peer);
			} while (n < 0 && errno == EINTR);
			if (n < 0)
				sc_fail_errno("op %zu: %s(%zu bytes at offset %zu)",
					      j, recv_names[j % 5], size, off);
			if (n == 0)
				sc_fail("op %zu: EOF at stream byte %llu of %llu",
					j, (unsigned long long)pos,
					(unsigned long long)total);
			if ((size_t)n > size)
				sc_fail("op %zu: %s returned %zd > %zu", j,
					recv_names[j % 5], n, size);
		}
		pat_verify(seed, pos, p, (size_t)n, recv_names[j % 5]);
		sc_progress();
		sc_count((uint64_t)n);
		pos += (uint64_t)n;
	}

	sc_step("MSG_DONTWAIT on a drained socket");
	expect_eagain(recv(fd, buf, 1, MSG_DONTWAIT), "recv(MSG_DONTWAIT)");
	sc_send_u64(fd, total);
	sc_step("wait for EOF");
	sc_expect_eof(fd, "after ack");
	sc_info("%zu receive ops, %zu peeks, %zu MSG_WAITALL, %zu MSG_TRUNC", j, peeks,
		waitalls, truncs);
	close(fd);
	sc_free_pages(buf, MIX_BUF);
	free(peek);
	return 0;
}

/* ------------------------------------------------------------------ */
/* bidir                                                               */
/* ------------------------------------------------------------------ */

struct bidir_arg {
	int fd;
	uint64_t seed;
	uint64_t len;
};

static void *bidir_writer(void *p)
{
	struct bidir_arg *a = p;

	sc_send_stream(a->fd, a->seed, 0, a->len, "writer thread");
	if (shutdown(a->fd, SHUT_WR))
		sc_fail_errno("shutdown(SHUT_WR)");
	return NULL;
}

static void *bidir_reader(void *p)
{
	struct bidir_arg *a = p;

	sc_recv_stream(a->fd, a->seed, 0, a->len, "reader thread");
	sc_expect_eof(a->fd, "reader thread");
	return NULL;
}

static int bidir_run(int fd, bool server)
{
	uint64_t len = sc_scaled(64ull << 20, 64 * 1024);
	struct bidir_arg out = { fd, sc_seed(server ? 1 : 2), len };
	struct bidir_arg in = { fd, sc_seed(server ? 2 : 1), len };
	uint64_t t0 = sc_now_ns();
	pthread_t w, r;

	sc_step("full duplex transfer");
	if (pthread_create(&w, NULL, bidir_writer, &out) ||
	    pthread_create(&r, NULL, bidir_reader, &in))
		sc_fail("pthread_create");
	pthread_join(w, NULL);
	pthread_join(r, NULL);
	sc_info("%llu bytes each way in %.2f s", (unsigned long long)len,
		sc_since_s(t0));
	close(fd);
	return 0;
}

int bidir_server(struct sc_ctx *ctx)
{
	return bidir_run(sc_accept(ctx->lfd), true);
}

int bidir_client(struct sc_ctx *ctx)
{
	return bidir_run(sc_connect(ctx), false);
}

/* ------------------------------------------------------------------ */
/* many_conns                                                          */
/* ------------------------------------------------------------------ */

#define MANY 5

struct many_arg {
	struct sc_ctx *ctx;
	int fd;
	int id;
};

static unsigned many_seen;

static uint64_t many_len(int id)
{
	/* Distinct lengths as well as distinct contents. */
	return sc_scaled(16ull << 20, 64 * 1024) + (uint64_t)id * 4099;
}

static void *many_client_thread(void *p)
{
	struct many_arg *a = p;
	int fd = sc_connect_id(a->ctx, (uint8_t)a->id);

	sc_send_u64(fd, many_len(a->id));
	sc_send_stream(fd, sc_seed(10 + (unsigned)a->id), 0, many_len(a->id),
		       "stream");
	if (sc_recv_u64(fd, "ack") != many_len(a->id))
		sc_fail("connection %d: wrong ack", a->id);
	close(fd);
	return NULL;
}

static void *many_server_thread(void *p)
{
	struct many_arg *a = p;
	uint8_t id;
	uint64_t len;

	sc_read_exact(a->fd, &id, 1, "connection id");
	if (id >= MANY)
		sc_fail("connection id %u out of range", id);
	if (__atomic_fetch_or(&many_seen, 1u << id, __ATOMIC_RELAXED) &
	    (1u << id))
		sc_fail("connection id %u seen twice", id);
	len = sc_recv_u64(a->fd, "length header");
	if (len != many_len(id))
		sc_fail("connection %u: header says %llu bytes, want %llu", id,
			(unsigned long long)len,
			(unsigned long long)many_len(id));
	sc_recv_stream(a->fd, sc_seed(10 + id), 0, len, "stream");
	sc_send_u64(a->fd, len);
	sc_expect_eof(a->fd, "after ack");
	close(a->fd);
	return NULL;
}

int many_conns_server(struct sc_ctx *ctx)
{
	struct many_arg a[MANY];
	pthread_t t[MANY];
	int i;

	sc_step("accept and verify 5 streams");
	for (i = 0; i < MANY; i++) {
		a[i] = (struct many_arg){ .ctx = ctx, .id = i,
					  .fd = sc_accept(ctx->lfd) };
		if (pthread_create(&t[i], NULL, many_server_thread, &a[i]))
			sc_fail("pthread_create");
	}
	for (i = 0; i < MANY; i++)
		pthread_join(t[i], NULL);
	if (many_seen != (1u << MANY) - 1)
		sc_fail("connection ids seen: 0x%x", many_seen);
	return 0;
}

#define MAX_THREADS 8

/* n threads running fn, the i-th given {ctx, id i}; returns when all end. */
static void run_threads(struct sc_ctx *ctx, int n, void *(*fn)(void *))
{
	struct many_arg a[MAX_THREADS];
	pthread_t t[MAX_THREADS];
	int i;

	if (n > MAX_THREADS)
		sc_fail("run_threads: %d threads, at most %d", n, MAX_THREADS);
	for (i = 0; i < n; i++) {
		a[i] = (struct many_arg){ .ctx = ctx, .id = i, .fd = -1 };
		if (pthread_create(&t[i], NULL, fn, &a[i]))
			sc_fail("pthread_create");
	}
	for (i = 0; i < n; i++)
		pthread_join(t[i], NULL);
}

int many_conns_client(struct sc_ctx *ctx)
{
	sc_step("5 concurrent connections");
	run_threads(ctx, MANY, many_client_thread);
	return 0;
}

/* ------------------------------------------------------------------ */
/* churn                                                               */
/* ------------------------------------------------------------------ */

/*
 * Connections opened, filled and closed back to back by several threads,
 * each send buffer a fresh mapping that is unmapped right after its close.
 * Under the library that races connection teardown (freeing a connection's
 * registrations) against the munmap hook walking every connection's
 * registrations: the regression test for a use-after-free that hung QEMU.
 */
#define CHURN_THREADS 4

static unsigned churn_rounds(void)
{
	return (unsigned)sc_scaled(24, 4);
}

static uint64_t churn_len(unsigned id, unsigned round)
{
	/* Page-aligned bulk (zero-copy) plus a tail that is not. */
	return (1u << 20) + (uint64_t)(id * 7 + round % 5) * 4096 + round * 8 + 3;
}

static uint64_t churn_seed(unsigned id, unsigned round)
{
	return sc_seed(100 + id * 1000 + round);
}

static void *churn_client_thread(void *p)
{
	struct many_arg *a = p;
	unsigned r, rounds = churn_rounds();

	for (r = 0; r < rounds; r++) {
		uint64_t len = churn_len((unsigned)a->id, r);
		size_t maplen = (len + 4095) & ~(size_t)4095;
		uint8_t *buf = sc_alloc_pages(maplen);
		int fd;

		pat_fill(churn_seed((unsigned)a->id, r), 0, buf, len);
		fd = sc_connect_id(a->ctx, (uint8_t)a->id);
		sc_send_u64(fd, r);
		sc_send_u64(fd, len);
		sc_write_all(fd, buf, len, "churn stream");
		if (sc_recv_u64(fd, "ack") != len)
			sc_fail("thread %d round %u: wrong ack", a->id, r);
		close(fd);
		sc_free_pages(buf, maplen);
	}
	return NULL;
}

static void *churn_server_thread(void *p)
{
	struct many_arg *a = p;
	unsigned n, rounds = churn_rounds();

	for (n = 0; n < rounds; n++) {
		int fd = sc_accept(a->ctx->lfd);
		uint64_t r, len;
		uint8_t id;

		sc_read_exact(fd, &id, 1, "connection id");
		if (id >= CHURN_THREADS)
			sc_fail("connection id %u out of range", id);
		r = sc_recv_u64(fd, "round");
		len = sc_recv_u64(fd, "length header");
		if (r >= rounds || len != churn_len(id, (unsigned)r))
			sc_fail("thread %u: round %llu, length %llu: not what was sent", id,
				(unsigned long long)r, (unsigned long long)len);
		sc_recv_stream(fd, churn_seed(id, (unsigned)r), 0, len, "churn stream");
		sc_send_u64(fd, len);
		sc_expect_eof(fd, "after ack");
		close(fd);
		__atomic_add_fetch(&many_seen, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

int churn_server(struct sc_ctx *ctx)
{
	sc_step("accept and verify churning connections");
	run_threads(ctx, CHURN_THREADS, churn_server_thread);
	if (many_seen != CHURN_THREADS * churn_rounds())
		sc_fail("%u connections verified, want %u", many_seen,
			CHURN_THREADS * churn_rounds());
	return 0;
}

int churn_client(struct sc_ctx *ctx)
{
	sc_step("4 threads open, fill and close connections back to back");
	run_threads(ctx, CHURN_THREADS, churn_client_thread);
	return 0;
}
