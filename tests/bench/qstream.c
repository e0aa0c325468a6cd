// SPDX-License-Identifier: MIT
/*
 * qstream: a QEMU 7.2 RAM-migration stream, for throughput benchmarks.
 *
 *   qstream send ADDR PORT MIB     connect and send MIB MiB of "guest RAM"
 *   qstream recv PORT [ADDR]       accept one connection, verify, report
 *
 * The sender does what QEMU's migration source does in a bulk RAM pass: a
 * blocking socket, and one sendmsg() per 32 pages, each page preceded by its
 * 8-byte header, so 64 iovecs: the headers from a small heap buffer, the
 * pages (4096 bytes, page-aligned) straight from a big mmap()ed region
 * marked MADV_DONTFORK as QEMU marks guest RAM,
 * consecutive guest pages from the first to the last.
 *
 * The receiver does what QEMU's destination does: a non-blocking socket,
 * ppoll() for readiness, recvmsg() into a ~32 KiB buffer (alternately 28 KiB
 * and 32 KiB), starting over on EAGAIN.  It checks every byte against the
 * generator the sender used.
 *
 * The stream: a 16-byte preamble (be32 "QEVM", be32 version 3, be64 page
 * count), then per page a be64 header (page offset | RAM_SAVE_FLAG_PAGE |
 * RAM_SAVE_FLAG_CONTINUE) and the page, then a be64 RAM_SAVE_FLAG_EOS, then
 * EOF.
 *
 * Each side prints one JSON line on stdout; errors go to stderr.  The exit
 * status is 0 only if the transfer completed and (receiver) every byte was
 * right.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define Q_PAGE		4096u
#define Q_HDR		8u
#define Q_REC		(Q_HDR + Q_PAGE)
#define Q_PAIRS		32u
#define Q_PREAMBLE	16u
#define Q_MAGIC		0x5145564du	/* "QEVM" */
#define Q_VERSION	3u
#define Q_FLAG_PAGE	0x08u
#define Q_FLAG_EOS	0x10u
#define Q_FLAG_CONT	0x20u
#define Q_MAX_MIB	(1u << 20)	/* 1 TiB: keeps every size in range */

/* The receiver's idle limit: no byte for this long is an error. */
#define Q_IDLE_MS	60000

static const char *prog = "qstream";

static void err_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void err_msg(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(double *user, double *sys)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru))
		return 0;
	*user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
	*sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	return *user + *sys;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	int i;

	for (i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put_be64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void make_preamble(uint8_t *p, uint64_t npages)
{
	put_be32(p, Q_MAGIC);
	put_be32(p + 4, Q_VERSION);
	put_be64(p + 8, npages);
}

static uint64_t page_header(uint64_t page)
{
	return page * Q_PAGE | Q_FLAG_PAGE | Q_FLAG_CONT;
}

/* The content of guest page "page": every 8-byte word distinct. */
static void fill_page(uint64_t *w, uint64_t page)
{
	unsigned i;

	for (i = 0; i < Q_PAGE / 8; i++) {
		uint64_t v = (page * (Q_PAGE / 8) + i + 1) * 0x9e3779b97f4a7c15ull;

		w[i] = v ^ (v >> 29);
	}
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

/* ------------------------------------------------------------------ */
/* sender                                                              */
/* ------------------------------------------------------------------ */

struct send_stats {
	uint64_t calls;
	uint64_t partial;
};

/* One blocking sendmsg() of the whole vector, as QEMU's writev loop does. */
static int send_vec(int fd, struct iovec *iov, int iovcnt, struct send_stats *st)
{
	struct msghdr msg;
	ssize_t n;

	while (iovcnt > 0) {
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = iov;
		msg.msg_iovlen = (size_t)iovcnt;
		n = sendmsg(fd, &msg, 0);
		st->calls++;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err_msg("sendmsg: %s", strerror(errno));
			return -1;
		}
		if (n == 0) {
			err_msg("sendmsg returned 0");
			return -1;
		}
		while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			st->partial++;
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

static int connect_to(const char *addr, const char *port)
{
	struct addrinfo hints, *res, *ai;
	int fd = -1, ret, err = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	ret = getaddrinfo(addr, port, &hints, &res);
	if (ret) {
		err_msg("%s:%s: %s", addr, port, gai_strerror(ret));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (!connect(fd, ai->ai_addr, ai->ai_addrlen))
			break;
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		err_msg("connect %s:%s: %s", addr, port, strerror(err));
	return fd;
}

static int do_send(const char *addr, const char *port, unsigned long mib)
{
	struct iovec iov[2 * Q_PAIRS];
	struct send_stats st = { 0 };
	double t_fill, t0, t1, c0, c1, u0, s0, u1, s1;
	uint8_t pre[Q_PREAMBLE], eos[Q_HDR];
	uint64_t npages, page, bytes;
	size_t ram_size;
	uint8_t *ram, *hdr;
	int fd;

	ram_size = (size_t)mib << 20;
	npages = ram_size / Q_PAGE;

	t_fill = now_s();
	ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ram == MAP_FAILED) {
		err_msg("mmap %lu MiB: %s", mib, strerror(errno));
		return 1;
	}
	/* As QEMU does for every guest RAM block (it shares them with devices). */
	if (madvise(ram, ram_size, MADV_DONTFORK))
		err_msg("madvise(MADV_DONTFORK): %s", strerror(errno));
	for (page = 0; page < npages; page++)
		fill_page((uint64_t *)(ram + page * Q_PAGE), page);
	t_fill = now_s() - t_fill;

	/* QEMU's QEMUFile buffer: headers are copied into it. */
	hdr = malloc(Q_PAIRS * Q_HDR);
	if (!hdr) {
		err_msg("out of memory");
		return 1;
	}

	signal(SIGPIPE, SIG_IGN);
	c0 = cpu_s(&u0, &s0);
	t0 = now_s();
	fd = connect_to(addr, port);
	if (fd < 0)
		return 1;

	make_preamble(pre, npages);
	iov[0].iov_base = pre;
	iov[0].iov_len = sizeof(pre);
	if (send_vec(fd, iov, 1, &st))
		goto fail;

	for (page = 0; page < npages;) {
		unsigned i, n = npages - page < Q_PAIRS ? (unsigned)(npages - page) : Q_PAIRS;

		for (i = 0; i < n; i++, page++) {
			put_be64(hdr + i * Q_HDR, page_header(page));
			iov[2 * i].iov_base = hdr + i * Q_HDR;
			iov[2 * i].iov_len = Q_HDR;
			iov[2 * i + 1].iov_base = ram + page * Q_PAGE;
			iov[2 * i + 1].iov_len = Q_PAGE;
		}
		if (send_vec(fd, iov, (int)(2 * n), &st))
			goto fail;
	}

	put_be64(eos, Q_FLAG_EOS);
	iov[0].iov_base = eos;
	iov[0].iov_len = sizeof(eos);
	if (send_vec(fd, iov, 1, &st))
		goto fail;

	if (close(fd)) {
		err_msg("close: %s", strerror(errno));
		return 1;
	}
	t1 = now_s();
	c1 = cpu_s(&u1, &s1);
	bytes = Q_PREAMBLE + npages * Q_REC + Q_HDR;

	printf("{\"role\":\"send\",\"bytes\":%" PRIu64 ",\"pages\":%" PRIu64
	       ",\"wall_s\":%.6f,\"cpu_s\":%.6f,\"cpu_user_s\":%.6f,\"cpu_sys_s\":%.6f"
	       ",\"cpu_s_per_gib\":%.6f,\"gbit_s\":%.6f,\"sendmsg_calls\":%" PRIu64
	       ",\"partial_sends\":%" PRIu64 ",\"fill_s\":%.6f}\n",
	       bytes, npages, t1 - t0, c1 - c0, u1 - u0, s1 - s0,
	       (c1 - c0) / ((double)bytes / (1u << 30)),
	       t1 > t0 ? (double)bytes * 8 / (t1 - t0) / 1e9 : 0.0,
	       st.calls, st.partial, t_fill);
	fflush(stdout);
	free(hdr);
	munmap(ram, ram_size);
	return 0;

fail:
	close(fd);
	free(hdr);
	munmap(ram, ram_size);
	return 1;
}

/* ------------------------------------------------------------------ */
/* receiver                                                            */
/* ------------------------------------------------------------------ */

struct verifier {
	uint64_t off;			/* stream offset of the next byte */
	uint64_t npages;		/* from the preamble, once it is complete */
	uint64_t total;			/* expected stream length, once known */
	uint8_t pre[Q_PREAMBLE];
	uint64_t page_cached;		/* page whose content is in expect */
	bool have_page;
	uint64_t expect[Q_PAGE / 8];
	bool bad;
	uint64_t bad_off;
};

static void mark_bad(struct verifier *v, uint64_t off, const char *what)
{
	if (v->bad)
		return;
	v->bad = true;
	v->bad_off = off;
	err_msg("mismatch at stream offset %" PRIu64 " (%s)", off, what);
}

/* Check buf[0..len) against the stream from offset v->off on. */
static void verify(struct verifier *v, const uint8_t *buf, size_t len)
{
	while (len && !v->bad) {
		uint64_t off = v->off, rec, in;
		size_t n;

		if (off < Q_PREAMBLE) {
			n = Q_PREAMBLE - off < len ? (size_t)(Q_PREAMBLE - off) : len;
			memcpy(v->pre + off, buf, n);
			if (off + n == Q_PREAMBLE) {
				uint8_t want[Q_PREAMBLE];

				v->npages = get_be64(v->pre + 8);
				make_preamble(want, v->npages);
				if (memcmp(want, v->pre, Q_PREAMBLE) ||
				    v->npages > ((uint64_t)Q_MAX_MIB << 20) / Q_PAGE) {
					mark_bad(v, 0, "preamble");
					return;
				}
				v->total = Q_PREAMBLE + v->npages * Q_REC + Q_HDR;
			}
		} else if (off >= v->total) {
			mark_bad(v, off, "data after the end-of-stream header");
			return;
		} else if (off >= v->total - Q_HDR) {
			uint8_t want[Q_HDR];

			in = off - (v->total - Q_HDR);
			n = Q_HDR - in < len ? (size_t)(Q_HDR - in) : len;
			put_be64(want, Q_FLAG_EOS);
			if (memcmp(want + in, buf, n)) {
				mark_bad(v, off, "end-of-stream header");
				return;
			}
		} else {
			rec = (off - Q_PREAMBLE) / Q_REC;
			in = (off - Q_PREAMBLE) % Q_REC;
			if (in < Q_HDR) {
				uint8_t want[Q_HDR];

				n = Q_HDR - in < len ? (size_t)(Q_HDR - in) : len;
				put_be64(want, page_header(rec));
				if (memcmp(want + in, buf, n)) {
					mark_bad(v, off, "page header");
					return;
				}
			} else {
				in -= Q_HDR;
				n = Q_PAGE - in < len ? (size_t)(Q_PAGE - in) : len;
				if (!v->have_page || v->page_cached != rec) {
					fill_page(v->expect, rec);
					v->page_cached = rec;
					v->have_page = true;
				}
				if (memcmp((uint8_t *)v->expect + in, buf, n)) {
					mark_bad(v, off, "page content");
					return;
				}
			}
		}
		v->off += n;
		buf += n;
		len -= n;
	}
}

static int listen_on(const char *addr, const char *port)
{
	struct addrinfo hints, *res;
	int fd, ret, one = 1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = addr ? AF_UNSPEC : AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	ret = getaddrinfo(addr, port, &hints, &res);
	if (ret) {
		err_msg("%s:%s: %s", addr ? addr : "*", port, gai_strerror(ret));
		return -1;
	}
	fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
	if (fd < 0) {
		err_msg("socket: %s", strerror(errno));
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 1)) {
		err_msg("bind/listen %s:%s: %s", addr ? addr : "*", port, strerror(errno));
		close(fd);
		fd = -1;
	}
out:
	freeaddrinfo(res);
	return fd;
}

static int do_recv(const char *port, const char *addr)
{
	static const size_t sizes[2] = { 28 * 1024, 32 * 1024 };
	uint64_t calls = 0, eagain = 0;
	struct verifier *v;
	double t0, t1, c0, c1, u0, s0, u1, s1;
	bool eof = false, failed = false, ok;
	uint8_t *buf;
	int lfd, fd, flags;

	v = calloc(1, sizeof(*v));
	buf = malloc(32 * 1024);
	if (!v || !buf) {
		err_msg("out of memory");
		return 1;
	}
	lfd = listen_on(addr, port);
	if (lfd < 0)
		return 1;
	/* Readiness for scripts: the port is open. */
	fprintf(stderr, "%s: listening on %s:%s\n", prog, addr ? addr : "*", port);

	do
		fd = accept(lfd, NULL, NULL);
	while (fd < 0 && errno == EINTR);
	if (fd < 0) {
		err_msg("accept: %s", strerror(errno));
		return 1;
	}
	c0 = cpu_s(&u0, &s0);
	t0 = now_s();
	close(lfd);

	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		err_msg("fcntl O_NONBLOCK: %s", strerror(errno));
		return 1;
	}

	while (!eof && !v->bad) {
		struct iovec iov = { buf, sizes[calls & 1] };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		n = recvmsg(fd, &msg, 0);
		calls++;
		if (n > 0) {
			verify(v, buf, (size_t)n);
			continue;
		}
		if (n == 0) {
			eof = true;
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			struct pollfd pfd = { .fd = fd, .events = POLLIN };
			struct timespec ts = { Q_IDLE_MS / 1000, 0 };
			int r;

			eagain++;
			r = ppoll(&pfd, 1, &ts, NULL);
			if (r < 0 && errno != EINTR) {
				err_msg("ppoll: %s", strerror(errno));
				failed = true;
				break;
			}
			if (r == 0) {
				err_msg("no data for %d s at stream offset %" PRIu64,
					Q_IDLE_MS / 1000, v->off);
				failed = true;
				break;
			}
			continue;
		}
		err_msg("recvmsg: %s", strerror(errno));
		failed = true;
		break;
	}
	t1 = now_s();
	c1 = cpu_s(&u1, &s1);
	close(fd);

	if (eof && !v->bad && (v->off < Q_PREAMBLE || v->off != v->total)) {
		err_msg("EOF at stream offset %" PRIu64 ", expected %" PRIu64,
			v->off, v->total);
		failed = true;
	}
	ok = eof && !failed && !v->bad;
	printf("{\"role\":\"recv\",\"bytes\":%" PRIu64 ",\"pages\":%" PRIu64
	       ",\"seconds\":%.6f,\"gbit_s\":%.6f,\"verified\":%s"
	       ",\"first_bad_offset\":",
	       v->off, v->npages, t1 - t0,
	       t1 > t0 ? (double)v->off * 8 / (t1 - t0) / 1e9 : 0.0,
	       ok ? "true" : "false");
	if (v->bad)
		printf("%" PRIu64, v->bad_off);
	else
		printf("null");
	printf(",\"cpu_s\":%.6f,\"recvmsg_calls\":%" PRIu64 ",\"eagain\":%" PRIu64 "}\n",
	       c1 - c0, calls, eagain);
	fflush(stdout);
	free(buf);
	free(v);
	return ok ? 0 : 1;
}

static int usage(void)
{
	fprintf(stderr, "usage: %s recv PORT [ADDR]\n"
			"       %s send ADDR PORT MIB\n", prog, prog);
	return 2;
}

int main(int argc, char **argv)
{
	unsigned long v;

	if (argc >= 3 && !strcmp(argv[1], "recv") && argc <= 4) {
		if (parse_uint(argv[2], 65535, &v) || !v)
			return usage();
		return do_recv(argv[2], argc == 4 ? argv[3] : NULL);
	}
	if (argc == 5 && !strcmp(argv[1], "send")) {
		if (parse_uint(argv[3], 65535, &v) || !v)
			return usage();
		if (parse_uint(argv[4], Q_MAX_MIB, &v) || !v)
			return usage();
		return do_send(argv[2], argv[3], v);
	}
	return usage();
}
