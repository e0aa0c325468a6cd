// SPDX-License-Identifier: MIT
/* Unit tests for shim/stats.c: JSON lines and address formatting. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/addr.h"
#include "shim/stats.h"

static struct conn_stats sample(void)
{
	struct conn_stats s;

	memset(&s, 0, sizeof(s));
	s.conn_id = 7;
	s.role = "client";
	s.transport = "rdma";
	strcpy(s.local, "10.0.0.1:40000");
	strcpy(s.peer, "[fd00::2]:4444");
	s.duration_s = 12.5;
	s.bytes_out = 8589934592ULL;
	s.bytes_in = 1234;
	s.bytes_out_zerocopy = 8000000000ULL;
	s.bytes_out_send = 589934592ULL;
	s.bytes_backlogged = 33554432ULL;
	s.registrations = 42;
	s.registered_bytes_peak = 1073741824ULL;
	s.writes = 100000;
	s.reads = 17;
	s.msgs_out = 2100;
	s.msgs_in = 9;
	s.close_reason = "close";
	return s;
}

/*
 * The line starts with the wall-clock time, which the test cannot know
 * exactly: check it is now-ish and return what follows it.
 */
static const char *skip_time(const char *line, time_t before, time_t after)
{
	const char *prefix = "{\"time\":";
	unsigned long long t;
	char *end;

	assert_memory_equal(line, prefix, strlen(prefix));
	t = strtoull(line + strlen(prefix), &end, 10);
	/* time() may read a coarse clock a tick behind. */
	assert_in_range(t, (unsigned long long)before, (unsigned long long)after + 1);
	return end;
}

static void assert_json(const struct conn_stats *s, const char *expect_after_pid)
{
	char buf[2048], expect[2048];
	time_t before, after;
	const char *rest;
	int len;

	before = time(NULL);
	len = stats_format_json(s, buf, sizeof(buf));
	after = time(NULL);
	assert_true(len > 0);
	assert_int_equal((size_t)len, strlen(buf));
	rest = skip_time(buf, before, after);
	snprintf(expect, sizeof(expect), ",\"pid\":%d,%s", (int)getpid(), expect_after_pid);
	assert_string_equal(rest, expect);
}

static void test_json_exact(void **state)
{
	struct conn_stats s = sample();

	(void)state;
	assert_json(&s,
		    "\"conn_id\":7,\"role\":\"client\",\"transport\":\"rdma\","
		    "\"local\":\"10.0.0.1:40000\",\"peer\":\"[fd00::2]:4444\","
		    "\"duration_s\":12.500000,\"bytes_out\":8589934592,\"bytes_in\":1234,"
		    "\"bytes_out_zerocopy\":8000000000,\"bytes_out_send\":589934592,\"bytes_backlogged\":33554432,"
		    "\"registrations\":42,\"registered_bytes_peak\":1073741824,"
		    "\"writes\":100000,\"reads\":17,\"msgs_out\":2100,\"msgs_in\":9,\"zerocopy_share\":0.9313,"
		    "\"out_mb_s\":687.195,\"in_mb_s\":0.000,\"close_reason\":\"close\"}\n");
}

static void test_json_extremes(void **state)
{
	struct conn_stats s;

	(void)state;
	memset(&s, 0, sizeof(s));
	s.conn_id = 4294967295U;
	s.bytes_out = UINT64_MAX;
	s.duration_s = 0.0000004;
	assert_json(&s,
		    "\"conn_id\":4294967295,\"role\":null,\"transport\":null,"
		    "\"local\":\"\",\"peer\":\"\","
		    "\"duration_s\":0.000000,\"bytes_out\":18446744073709551615,\"bytes_in\":0,"
		    "\"bytes_out_zerocopy\":0,\"bytes_out_send\":0,\"bytes_backlogged\":0,"
		    "\"registrations\":0,\"registered_bytes_peak\":0,"
		    "\"writes\":0,\"reads\":0,\"msgs_out\":0,\"msgs_in\":0,\"zerocopy_share\":0.0000,"
		    "\"out_mb_s\":null,\"in_mb_s\":0.000,\"close_reason\":null}\n");
}

/* The default-level close line: the JSON record's fields, key=value. */
static void test_close_line(void **state)
{
	struct conn_stats s = sample();
	char buf[512], tiny[40];
	int n;

	(void)state;
	n = stats_format_line(&s, buf, sizeof(buf));
	assert_int_equal(n, (int)strlen(buf));
	assert_string_equal(buf,
			    "closed: transport=rdma role=client local=10.0.0.1:40000 "
			    "peer=[fd00::2]:4444 duration_s=12.500000 bytes_out=8589934592 "
			    "bytes_in=1234 zerocopy_share=0.9313 out_mb_s=687.195 in_mb_s=0.000 "
			    "close_reason=close");

	/* A TCP fallback: nothing zero-copy, nothing sent yet gives null. */
	memset(&s, 0, sizeof(s));
	s.conn_id = 3;
	s.role = "server";
	s.transport = "tcp";
	strcpy(s.local, "198.18.0.2:4444");
	strcpy(s.peer, "198.18.0.1:50000");
	s.duration_s = 2.0;
	s.bytes_in = 3000000;
	s.close_reason = "close";
	assert_true(stats_format_line(&s, buf, sizeof(buf)) > 0);
	assert_string_equal(buf,
			    "closed: transport=tcp role=server local=198.18.0.2:4444 "
			    "peer=198.18.0.1:50000 duration_s=2.000000 bytes_out=0 "
			    "bytes_in=3000000 zerocopy_share=null out_mb_s=0.000 in_mb_s=1.500 "
			    "close_reason=close");

	/* Too small: nothing half-written. */
	assert_int_equal(stats_format_line(&s, tiny, sizeof(tiny)), -1);
	assert_string_equal(tiny, "");
	assert_int_equal(stats_format_line(NULL, buf, sizeof(buf)), -1);
}

static void test_json_duration(void **state)
{
	static const struct {
		double d;
		const char *text;
	} cases[] = {
		{ 0.0, "0.000000" }, { 1.0, "1.000000" }, { 0.0000015, "0.000002" },
		{ 3599.9999996, "3600.000000" }, { -2.25, "-2.250000" },
		{ 1.0 / 0.0, "null" }, { 0.0 / 0.0, "null" }, { 1e13, "null" },
	};
	char buf[2048], needle[64];
	struct conn_stats s;
	size_t i;

	(void)state;
	memset(&s, 0, sizeof(s));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		s.duration_s = cases[i].d;
		assert_true(stats_format_json(&s, buf, sizeof(buf)) > 0);
		snprintf(needle, sizeof(needle), ",\"duration_s\":%s,", cases[i].text);
		if (!strstr(buf, needle))
			fail_msg("duration %g: want %s in %s", cases[i].d, needle, buf);
	}
}

static void test_json_escaping(void **state)
{
	struct conn_stats s = sample();
	char buf[2048];

	(void)state;
	s.role = "a\"b\\c";
	s.transport = "\n\r\t\b\f";
	s.close_reason = "\x01\x1f\x7f" "\xc3\xa9";
	strcpy(s.local, "/x");
	/* A full, unterminated array must not run into the next field. */
	memset(s.peer, 'p', sizeof(s.peer));
	assert_true(stats_format_json(&s, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, ",\"role\":\"a\\\"b\\\\c\","));
	assert_non_null(strstr(buf, ",\"transport\":\"\\n\\r\\t\\b\\f\","));
	assert_non_null(strstr(buf, ",\"close_reason\":\"\\u0001\\u001f\x7f\xc3\xa9\"}\n"));
	assert_non_null(strstr(buf, ",\"local\":\"/x\","));
	assert_non_null(strstr(buf, ",\"peer\":\"pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp\","));
	/* Exactly one line. */
	assert_ptr_equal(strchr(buf, '\n'), buf + strlen(buf) - 1);
}

static void test_json_too_small(void **state)
{
	struct conn_stats s = sample();
	char buf[2048];
	int len;

	(void)state;
	len = stats_format_json(&s, buf, sizeof(buf));
	assert_true(len > 0);
	/* Needs len + 1 bytes for the terminator. */
	assert_int_equal(stats_format_json(&s, buf, (size_t)len), -1);
	assert_int_equal(stats_format_json(&s, buf, (size_t)len + 1), len);
	assert_int_equal(stats_format_json(&s, buf, 10), -1);
	assert_int_equal(stats_format_json(&s, buf, 0), -1);
	assert_int_equal(stats_format_json(NULL, buf, sizeof(buf)), -1);
}

static void test_format_addr(void **state)
{
	struct sockaddr_in6 sin6;
	struct sockaddr_in sin;
	struct sockaddr_un sun;
	char buf[64];

	(void)state;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(4444);
	inet_pton(AF_INET, "192.168.10.20", &sin.sin_addr);
	addr_format(&sin, buf, sizeof(buf));
	assert_string_equal(buf, "192.168.10.20:4444");

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(65535);
	inet_pton(AF_INET6, "fd00::1:2", &sin6.sin6_addr);
	addr_format(&sin6, buf, sizeof(buf));
	assert_string_equal(buf, "[fd00::1:2]:65535");

	inet_pton(AF_INET6, "::ffff:10.0.0.1", &sin6.sin6_addr);
	sin6.sin6_port = htons(80);
	addr_format(&sin6, buf, sizeof(buf));
	assert_string_equal(buf, "[::ffff:10.0.0.1]:80");

	inet_pton(AF_INET6, "fe80::1", &sin6.sin6_addr);
	sin6.sin6_scope_id = 3;
	addr_format(&sin6, buf, sizeof(buf));
	assert_string_equal(buf, "[fe80::1%3]:80");

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	addr_format(&sun, buf, sizeof(buf));
	assert_string_equal(buf, "?");
	addr_format(NULL, buf, sizeof(buf));
	assert_string_equal(buf, "?");

	/* Truncates, never overruns. */
	memset(buf, 'z', sizeof(buf));
	addr_format(&sin, buf, 8);
	assert_string_equal(buf, "192.168");
	assert_int_equal(buf[8], 'z');
	addr_format(&sin, buf, 0);
	assert_int_equal(buf[0], '1');
}

static char *read_file(const char *path)
{
	static char buf[8192];
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	close(fd);
	return buf;
}

static void test_append(void **state)
{
	char dir[] = "/tmp/migrdma-stats-XXXXXX";
	struct conn_stats s = sample();
	char path[128], line[2048];
	char *content, *second;
	mode_t old_mask;
	struct stat st;
	int len;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/stats.json", dir);

	old_mask = umask(022);
	errno = EBADF;
	assert_int_equal(stats_append(path, &s), 0);
	/* Success leaves errno as the caller had it. */
	assert_int_equal(errno, EBADF);
	umask(old_mask);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);

	s.conn_id = 8;
	s.close_reason = "reset";
	assert_int_equal(stats_append(path, &s), 0);

	content = read_file(path);
	second = strchr(content, '\n');
	assert_non_null(second);
	second++;
	assert_non_null(strstr(content, "\"conn_id\":7,"));
	assert_null(strstr(second, "\"conn_id\":7,"));
	assert_non_null(strstr(second, "\"conn_id\":8,"));
	assert_non_null(strstr(second, "\"close_reason\":\"reset\"}\n"));
	assert_ptr_equal(strchr(second, '\n'), second + strlen(second) - 1);

	/* The file holds exactly what stats_format_json produced. */
	len = stats_format_json(&s, line, sizeof(line));
	assert_int_equal(strlen(second), (size_t)len);

	unlink(path);
	rmdir(dir);
}

static void test_append_errors(void **state)
{
	struct conn_stats s = sample();

	(void)state;
	errno = 0;
	assert_int_equal(stats_append("/nonexistent-dir/x/stats.json", &s), -1);
	assert_int_equal(errno, ENOENT);
	errno = 0;
	assert_int_equal(stats_append("", &s), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(stats_append(NULL, &s), -1);
	assert_int_equal(errno, EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_exact),
		cmocka_unit_test(test_json_extremes),
		cmocka_unit_test(test_json_duration),
		cmocka_unit_test(test_json_escaping),
		cmocka_unit_test(test_close_line),
		cmocka_unit_test(test_json_too_small),
		cmocka_unit_test(test_format_addr),
		cmocka_unit_test(test_append),
		cmocka_unit_test(test_append_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
