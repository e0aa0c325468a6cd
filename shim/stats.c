// SPDX-License-Identifier: MIT
/*
 * Per-connection statistics as JSON lines.
 *
 * Written from the program's close() path, so nothing here allocates or uses
 * stdio streams, and errno is left as the program's close() will set it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/real.h"
#include "common/log.h"
#include "init.h"
#include "stats.h"

/* Every field at its widest, with the strings fully escaped, fits easily. */
#define STATS_LINE_MAX 2048

struct jbuf {
	char *p;
	size_t len;
	size_t cap;
	bool full;
};

static void jb_put(struct jbuf *jb, const char *s, size_t n)
{
	if (jb->full || n >= jb->cap - jb->len) {
		jb->full = true;
		return;
	}
	memcpy(jb->p + jb->len, s, n);
	jb->len += n;
	jb->p[jb->len] = '\0';
}

static void jb_puts(struct jbuf *jb, const char *s)
{
	jb_put(jb, s, strlen(s));
}

static void jb_printf(struct jbuf *jb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void jb_printf(struct jbuf *jb, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		jb->full = true;
		return;
	}
	jb_put(jb, tmp, (size_t)n);
}

/* s as a JSON string (n bytes at most), or null when there is none. */
static void jb_string(struct jbuf *jb, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	if (!s) {
		jb_puts(jb, "null");
		return;
	}
	jb_put(jb, "\"", 1);
	for (i = 0; i < n && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };

		switch (c) {
		case '"':
			jb_put(jb, "\\\"", 2);
			break;
		case '\\':
			jb_put(jb, "\\\\", 2);
			break;
		case '\b':
			jb_put(jb, "\\b", 2);
			break;
		case '\f':
			jb_put(jb, "\\f", 2);
			break;
		case '\n':
			jb_put(jb, "\\n", 2);
			break;
		case '\r':
			jb_put(jb, "\\r", 2);
			break;
		case '\t':
			jb_put(jb, "\\t", 2);
			break;
		default:
			if (c < 0x20)
				jb_put(jb, esc, sizeof(esc));
			else
				jb_put(jb, (const char *)&c, 1);
		}
	}
	jb_put(jb, "\"", 1);
}

static void jb_key(struct jbuf *jb, const char *key)
{
	jb_put(jb, ",\"", 2);
	jb_puts(jb, key);
	jb_put(jb, "\":", 2);
}

static void jb_u64(struct jbuf *jb, const char *key, uint64_t v)
{
	jb_key(jb, key);
	jb_printf(jb, "%" PRIu64, v);
}

/*
 * Seconds with microsecond precision, formatted by hand: "%f" follows
 * LC_NUMERIC, and a program that set a locale would get "1,5".
 */
static void jb_seconds(struct jbuf *jb, double d)
{
	unsigned long long us;
	bool neg = d < 0;

	if (neg)
		d = -d;
	if (!isfinite(d) || d >= 1e12) {
		jb_puts(jb, "null");
		return;
	}
	us = (unsigned long long)(d * 1e6 + 0.5);
	jb_printf(jb, "%s%llu.%06llu", neg && us ? "-" : "", us / 1000000, us % 1000000);
}

/*
 * A fraction or a rate with fixed decimals, by hand for the same reason
 * as jb_seconds; scale is 10^decimals.
 */
static void jb_fixed(struct jbuf *jb, double v, unsigned long long scale, int decimals)
{
	unsigned long long n;

	if (!isfinite(v) || v < 0 || v >= 1e15) {
		jb_puts(jb, "null");
		return;
	}
	n = (unsigned long long)(v * (double)scale + 0.5);
	jb_printf(jb, "%llu.%0*llu", n / scale, decimals, n % scale);
}

/* The zero-copy share of the bytes sent; null when nothing was sent. */
static void jb_ratio(struct jbuf *jb, const struct conn_stats *s)
{
	if (!s->bytes_out) {
		jb_puts(jb, "null");
		return;
	}
	jb_fixed(jb, (double)s->bytes_out_zerocopy / (double)s->bytes_out, 10000, 4);
}

/* Average MB/s (10^6 bytes, as migrdma stat shows) over the connection's life. */
static void jb_rate(struct jbuf *jb, uint64_t bytes, double duration_s)
{
	if (!(duration_s > 0)) {
		jb_puts(jb, "null");
		return;
	}
	jb_fixed(jb, (double)bytes / duration_s / 1e6, 1000, 3);
}

int stats_format_line(const struct conn_stats *s, char *buf, size_t buflen)
{
	struct jbuf jb = { .p = buf, .cap = buflen };

	if (!s || !buf || !buflen)
		return -1;
	buf[0] = '\0';
	/* key=value with the names of the JSON record, so one grep finds both. */
	jb_printf(&jb, "closed: transport=%s role=%s", s->transport ? s->transport : "?",
		  s->role ? s->role : "?");
	jb_puts(&jb, " local=");
	jb_put(&jb, s->local, strnlen(s->local, sizeof(s->local)));
	jb_puts(&jb, " peer=");
	jb_put(&jb, s->peer, strnlen(s->peer, sizeof(s->peer)));
	jb_puts(&jb, " duration_s=");
	jb_seconds(&jb, s->duration_s);
	jb_printf(&jb, " bytes_out=%" PRIu64 " bytes_in=%" PRIu64, s->bytes_out, s->bytes_in);
	jb_puts(&jb, " zerocopy_share=");
	jb_ratio(&jb, s);
	jb_puts(&jb, " out_mb_s=");
	jb_rate(&jb, s->bytes_out, s->duration_s);
	jb_puts(&jb, " in_mb_s=");
	jb_rate(&jb, s->bytes_in, s->duration_s);
	jb_printf(&jb, " close_reason=%s", s->close_reason ? s->close_reason : "?");
	if (jb.full) {
		buf[0] = '\0';
		return -1;
	}
	return (int)jb.len;
}

int stats_format_json(const struct conn_stats *s, char *buf, size_t buflen)
{
	struct jbuf jb = { .p = buf, .cap = buflen };
	struct timespec now;

	if (!s || !buf || !buflen)
		return -1;
	buf[0] = '\0';
	clock_gettime(CLOCK_REALTIME, &now);

	jb_printf(&jb, "{\"time\":%lld", (long long)now.tv_sec);
	jb_key(&jb, "pid");
	jb_printf(&jb, "%d", (int)getpid());
	jb_key(&jb, "conn_id");
	jb_printf(&jb, "%u", s->conn_id);
	jb_key(&jb, "role");
	jb_string(&jb, s->role, SIZE_MAX);
	jb_key(&jb, "transport");
	jb_string(&jb, s->transport, SIZE_MAX);
	jb_key(&jb, "local");
	jb_string(&jb, s->local, sizeof(s->local));
	jb_key(&jb, "peer");
	jb_string(&jb, s->peer, sizeof(s->peer));
	jb_key(&jb, "duration_s");
	jb_seconds(&jb, s->duration_s);
	jb_u64(&jb, "bytes_out", s->bytes_out);
	jb_u64(&jb, "bytes_in", s->bytes_in);
	jb_u64(&jb, "bytes_out_zerocopy", s->bytes_out_zerocopy);
	jb_u64(&jb, "bytes_out_send", s->bytes_out_send);
	jb_u64(&jb, "bytes_backlogged", s->bytes_backlogged);
	jb_u64(&jb, "registrations", s->registrations);
	jb_u64(&jb, "registered_bytes_peak", s->registered_bytes_peak);
	jb_u64(&jb, "writes", s->writes);
	jb_u64(&jb, "reads", s->reads);
	jb_u64(&jb, "msgs_out", s->msgs_out);
	jb_u64(&jb, "msgs_in", s->msgs_in);
	jb_key(&jb, "zerocopy_share");
	jb_ratio(&jb, s);
	jb_key(&jb, "out_mb_s");
	jb_rate(&jb, s->bytes_out, s->duration_s);
	jb_key(&jb, "in_mb_s");
	jb_rate(&jb, s->bytes_in, s->duration_s);
	jb_key(&jb, "close_reason");
	jb_string(&jb, s->close_reason, SIZE_MAX);
	jb_put(&jb, "}\n", 2);

	if (jb.full) {
		buf[0] = '\0';
		return -1;
	}
	return (int)jb.len;
}

int stats_append(const char *path, const struct conn_stats *s)
{
	char line[STATS_LINE_MAX];
	int saved_errno = errno;
	int fd, len, err;
	ssize_t n;

	if (!path || !*path || !s) {
		errno = EINVAL;
		return -1;
	}
	len = stats_format_json(s, line, sizeof(line));
	if (len < 0) {
		errno = EOVERFLOW;
		return -1;
	}

	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;

	/* One write: lines from concurrent closes must not interleave. */
	do
		n = REAL(write)(fd, line, (size_t)len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		goto fail;
	if (n != len) {
		errno = ENOSPC;
		goto fail;
	}
	if (REAL(close)(fd) < 0)
		return -1;
	errno = saved_errno;
	return 0;

fail:
	err = errno;
	REAL(close)(fd);
	errno = err;
	return -1;
}

double stats_seconds_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

void stats_report_closed(const struct conn_stats *s)
{
	const struct migrdma_config *cfg = shim_config();
	char line[512];

	if (stats_format_line(s, line, sizeof(line)) >= 0)
		log_notice(s->conn_id, "%s", line);
	if (cfg->stats_file[0] && stats_append(cfg->stats_file, s))
		log_warn(s->conn_id, "cannot append statistics to %s: %m", cfg->stats_file);
}
