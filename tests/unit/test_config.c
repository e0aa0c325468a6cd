// SPDX-License-Identifier: MIT
/* Unit tests for shim/config.c: MIGRDMA_* parsing and target matching. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <cmocka.h>

#include "shim/config.h"

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)
#define GIB ((size_t)1 << 30)

/* The fake environment: a small table the tests fill in. */
#define FAKE_ENV_MAX 16

static struct {
	const char *name;
	const char *value;
} fake_env[FAKE_ENV_MAX];
static size_t fake_env_n;

static int reset_env(void **state)
{
	(void)state;
	fake_env_n = 0;
	return 0;
}

static void set_env(const char *name, const char *value)
{
	size_t i;

	for (i = 0; i < fake_env_n; i++) {
		if (!strcmp(fake_env[i].name, name)) {
			fake_env[i].value = value;
			return;
		}
	}
	assert_true(fake_env_n < FAKE_ENV_MAX);
	fake_env[fake_env_n].name = name;
	fake_env[fake_env_n].value = value;
	fake_env_n++;
}

static const char *fake_getenv(const char *name)
{
	size_t i;

	for (i = 0; i < fake_env_n; i++)
		if (!strcmp(fake_env[i].name, name))
			return fake_env[i].value;
	return NULL;
}

static struct migrdma_config cfg;
static char err[256];

static int load(void)
{
	memset(err, 'x', sizeof(err));
	err[sizeof(err) - 1] = '\0';
	return config_load(&cfg, fake_getenv, err, sizeof(err));
}

static void assert_loads(void)
{
	if (load() != 0)
		fail_msg("config_load failed: %s", err);
	assert_string_equal(err, "");
}

/* Rejected, with one line naming the variable and quoting the value. */
static void assert_rejects(const char *name, const char *value)
{
	set_env(name, value);
	if (load() != -1)
		fail_msg("%s=\"%s\" was accepted", name, value);
	if (!strstr(err, name))
		fail_msg("error for %s=\"%s\" does not name it: %s", name, value, err);
	if (!strstr(err, value))
		fail_msg("error for %s=\"%s\" does not quote it: %s", name, value, err);
	assert_null(strchr(err, '\n'));
	set_env(name, NULL);
}

static void test_defaults(void **state)
{
	(void)state;
	assert_loads();
	assert_false(cfg.disabled);
	assert_int_equal(cfg.nrules, 0);
	assert_int_equal(cfg.fallback, FALLBACK_NONE);
	assert_int_equal(cfg.log_level, LOG_LEVEL_NOTICE);
	assert_int_equal(cfg.bad_vars, 0);
	assert_string_equal(cfg.log_file, "");
	assert_string_equal(cfg.stats_file, "");
	assert_int_equal(cfg.zcopy_min, 4096);
	assert_int_equal(cfg.chunk, MIB);
	assert_int_equal(cfg.pin_limit, GIB);
	assert_int_equal(cfg.ring_size, 8 * MIB);
	assert_int_equal(cfg.backlog, 32 * MIB);
	assert_int_equal(cfg.busy_poll_us, 0);
	assert_int_equal(cfg.connect_timeout_ms, 15000);
	assert_int_equal(cfg.keepalive_s, 10);
	assert_int_equal(cfg.ack_timeout, 16);
}

static void test_empty_means_default(void **state)
{
	(void)state;
	set_env("MIGRDMA_DISABLE", "");
	set_env("MIGRDMA_TARGETS", "");
	set_env("MIGRDMA_LOG", "");
	set_env("MIGRDMA_CHUNK", "");
	set_env("MIGRDMA_KEEPALIVE", "");
	assert_loads();
	assert_false(cfg.disabled);
	assert_int_equal(cfg.nrules, 0);
	assert_int_equal(cfg.log_level, LOG_LEVEL_NOTICE);
	assert_int_equal(cfg.chunk, MIB);
	assert_int_equal(cfg.keepalive_s, 10);
}

static void test_real_environment(void **state)
{
	(void)state;
	setenv("MIGRDMA_KEEPALIVE", "42", 1);
	assert_int_equal(config_load(&cfg, NULL, err, sizeof(err)), 0);
	assert_int_equal(cfg.keepalive_s, 42);
	unsetenv("MIGRDMA_KEEPALIVE");
}

static void test_errno_preserved(void **state)
{
	(void)state;
	errno = EBADF;
	assert_loads();
	assert_int_equal(errno, EBADF);
	set_env("MIGRDMA_CHUNK", "bogus");
	errno = EBADF;
	assert_int_equal(load(), -1);
	assert_int_equal(errno, EBADF);
}

static void test_disable(void **state)
{
	static const struct {
		const char *value;
		bool disabled;
	} ok[] = {
		{ "1", true }, { "0", false }, { "true", true }, { "false", false },
		{ "yes", true }, { "no", false }, { "TRUE", true }, { "No", false },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		set_env("MIGRDMA_DISABLE", ok[i].value);
		assert_loads();
		assert_int_equal(cfg.disabled, ok[i].disabled);
	}
	assert_rejects("MIGRDMA_DISABLE", "2");
	assert_rejects("MIGRDMA_DISABLE", "on");
	assert_rejects("MIGRDMA_DISABLE", " 1");
	assert_rejects("MIGRDMA_DISABLE", "yes please");
}

static void test_fallback(void **state)
{
	(void)state;
	set_env("MIGRDMA_FALLBACK", "tcp");
	assert_loads();
	assert_int_equal(cfg.fallback, FALLBACK_TCP);
	set_env("MIGRDMA_FALLBACK", "none");
	assert_loads();
	assert_int_equal(cfg.fallback, FALLBACK_NONE);
	set_env("MIGRDMA_FALLBACK", "TCP");
	assert_loads();
	assert_int_equal(cfg.fallback, FALLBACK_TCP);
	assert_rejects("MIGRDMA_FALLBACK", "udp");
	assert_rejects("MIGRDMA_FALLBACK", "1");
}

static void test_log_level(void **state)
{
	static const struct {
		const char *value;
		enum log_level level;
	} ok[] = {
		{ "error", LOG_LEVEL_ERROR }, { "warn", LOG_LEVEL_WARN },
		{ "notice", LOG_LEVEL_NOTICE }, { "info", LOG_LEVEL_INFO }, { "debug", LOG_LEVEL_DEBUG },
		{ "DEBUG", LOG_LEVEL_DEBUG },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		set_env("MIGRDMA_LOG", ok[i].value);
		assert_loads();
		assert_int_equal(cfg.log_level, ok[i].level);
	}
	assert_rejects("MIGRDMA_LOG", "warning");
	assert_rejects("MIGRDMA_LOG", "3");
	assert_rejects("MIGRDMA_LOG", "trace");
}

static void test_paths(void **state)
{
	char longest[256], too_long[257];

	(void)state;
	set_env("MIGRDMA_LOG_FILE", "/tmp/migrdma.log");
	set_env("MIGRDMA_STATS", "stats.json");
	assert_loads();
	assert_string_equal(cfg.log_file, "/tmp/migrdma.log");
	assert_string_equal(cfg.stats_file, "stats.json");

	memset(longest, 'a', sizeof(longest) - 1);
	longest[sizeof(longest) - 1] = '\0';
	set_env("MIGRDMA_LOG_FILE", longest);
	set_env("MIGRDMA_STATS", longest);
	assert_loads();
	assert_string_equal(cfg.log_file, longest);
	assert_string_equal(cfg.stats_file, longest);

	memset(too_long, 'b', sizeof(too_long) - 1);
	too_long[sizeof(too_long) - 1] = '\0';
	set_env("MIGRDMA_STATS", NULL);
	set_env("MIGRDMA_LOG_FILE", too_long);
	assert_int_equal(load(), -1);
	assert_non_null(strstr(err, "MIGRDMA_LOG_FILE"));
	assert_non_null(strstr(err, "bbbb..."));
	set_env("MIGRDMA_LOG_FILE", NULL);
	set_env("MIGRDMA_STATS", too_long);
	assert_int_equal(load(), -1);
	assert_non_null(strstr(err, "MIGRDMA_STATS"));
}

static void test_parse_size(void **state)
{
	static const struct {
		const char *in;
		size_t out;
	} ok[] = {
		{ "0", 0 }, { "4096", 4096 }, { "4096B", 4096 }, { "4k", 4 * KIB },
		{ "4K", 4 * KIB }, { "1M", MIB }, { "1MB", MIB }, { "1MiB", MIB },
		{ "1mib", MIB }, { "3g", 3 * GIB }, { "1GB", GIB }, { "007", 7 },
	};
	static const char *const bad[] = {
		"", "-1", "+1", " 1", "1 ", "1T", "1iB", "1Mi", "1MBB", "K", "1.5M",
		"0x10", "18446744073709551616", "17179869184G", "1M\n",
	};
	size_t i, out;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		out = 12345;
		if (config_parse_size(ok[i].in, &out) != 0)
			fail_msg("\"%s\" rejected", ok[i].in);
		assert_int_equal(out, ok[i].out);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		out = 12345;
		if (config_parse_size(bad[i], &out) != -1)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_int_equal(out, 12345);
	}
	assert_int_equal(config_parse_size(NULL, &out), -1);
}

static void test_zcopy_min(void **state)
{
	(void)state;
	set_env("MIGRDMA_ZCOPY_MIN", "1");
	assert_loads();
	assert_int_equal(cfg.zcopy_min, 1);
	set_env("MIGRDMA_ZCOPY_MIN", "64K");
	assert_loads();
	assert_int_equal(cfg.zcopy_min, 64 * KIB);
	set_env("MIGRDMA_ZCOPY_MIN", "1G");
	assert_loads();
	assert_int_equal(cfg.zcopy_min, GIB);
	assert_rejects("MIGRDMA_ZCOPY_MIN", "0");
	assert_rejects("MIGRDMA_ZCOPY_MIN", "1073741825");
	assert_rejects("MIGRDMA_ZCOPY_MIN", "2G");
	assert_rejects("MIGRDMA_ZCOPY_MIN", "-1");
	assert_rejects("MIGRDMA_ZCOPY_MIN", "4K junk");
}

static void test_chunk(void **state)
{
	(void)state;
	set_env("MIGRDMA_CHUNK", "64K");
	assert_loads();
	assert_int_equal(cfg.chunk, 64 * KIB);
	set_env("MIGRDMA_CHUNK", "2MiB");
	assert_loads();
	assert_int_equal(cfg.chunk, 2 * MIB);
	set_env("MIGRDMA_CHUNK", "512m");
	assert_loads();
	assert_int_equal(cfg.chunk, 512 * MIB);

	assert_rejects("MIGRDMA_CHUNK", "3M");
	assert_string_equal(err, "MIGRDMA_CHUNK=\"3M\": must be a power of two between 64K and 1G");
	assert_rejects("MIGRDMA_CHUNK", "32K");
	assert_rejects("MIGRDMA_CHUNK", "2G");
	assert_rejects("MIGRDMA_CHUNK", "0");
	assert_rejects("MIGRDMA_CHUNK", "1M ");
	assert_rejects("MIGRDMA_CHUNK", "lots");
}

static void test_ring(void **state)
{
	(void)state;
	set_env("MIGRDMA_RING", "256K");
	assert_loads();
	assert_int_equal(cfg.ring_size, 256 * KIB);
	set_env("MIGRDMA_RING", "1G");
	assert_loads();
	assert_int_equal(cfg.ring_size, GIB);
	assert_rejects("MIGRDMA_RING", "128K");
	assert_rejects("MIGRDMA_RING", "3M");
	assert_rejects("MIGRDMA_RING", "2G");
}

static void test_backlog(void **state)
{
	(void)state;
	set_env("MIGRDMA_BACKLOG", "0");
	assert_loads();
	assert_int_equal(cfg.backlog, 0);
	set_env("MIGRDMA_BACKLOG", "96M");
	assert_loads();
	assert_int_equal(cfg.backlog, 96 * MIB);
	set_env("MIGRDMA_BACKLOG", "1G");
	assert_loads();
	assert_int_equal(cfg.backlog, GIB);
	assert_rejects("MIGRDMA_BACKLOG", "2G");
	assert_rejects("MIGRDMA_BACKLOG", "-1");
	assert_rejects("MIGRDMA_BACKLOG", "lots");
}

static void test_pin_limit(void **state)
{
	(void)state;
	set_env("MIGRDMA_PIN_LIMIT", "2M");
	assert_loads();
	assert_int_equal(cfg.pin_limit, 2 * MIB);
	set_env("MIGRDMA_PIN_LIMIT", "64G");
	assert_loads();
	assert_int_equal(cfg.pin_limit, 64 * GIB);

	assert_rejects("MIGRDMA_PIN_LIMIT", "1M");
	assert_non_null(strstr(err, "2M"));
	assert_rejects("MIGRDMA_PIN_LIMIT", "many");

	/* The limit is checked against the chunk actually configured. */
	set_env("MIGRDMA_CHUNK", "512M");
	set_env("MIGRDMA_PIN_LIMIT", "1G");
	assert_loads();
	assert_rejects("MIGRDMA_PIN_LIMIT", "1023M");

	/* A 1G chunk does not fit the 1G default. */
	set_env("MIGRDMA_CHUNK", "1G");
	assert_int_equal(load(), -1);
	assert_non_null(strstr(err, "MIGRDMA_PIN_LIMIT"));
	assert_non_null(strstr(err, "MIGRDMA_CHUNK"));
	set_env("MIGRDMA_PIN_LIMIT", "2G");
	assert_loads();
	assert_int_equal(cfg.chunk, GIB);
	assert_int_equal(cfg.pin_limit, 2 * GIB);
}

static void test_integers(void **state)
{
	(void)state;
	set_env("MIGRDMA_BUSY_POLL_US", "0");
	set_env("MIGRDMA_CONNECT_TIMEOUT_MS", "100");
	set_env("MIGRDMA_KEEPALIVE", "1");
	set_env("MIGRDMA_ACK_TIMEOUT", "0");
	assert_loads();
	assert_int_equal(cfg.busy_poll_us, 0);
	assert_int_equal(cfg.connect_timeout_ms, 100);
	assert_int_equal(cfg.keepalive_s, 1);
	assert_int_equal(cfg.ack_timeout, 0);

	set_env("MIGRDMA_BUSY_POLL_US", "10000");
	set_env("MIGRDMA_CONNECT_TIMEOUT_MS", "600000");
	set_env("MIGRDMA_KEEPALIVE", "3600");
	set_env("MIGRDMA_ACK_TIMEOUT", "31");
	assert_loads();
	assert_int_equal(cfg.busy_poll_us, 10000);
	assert_int_equal(cfg.connect_timeout_ms, 600000);
	assert_int_equal(cfg.keepalive_s, 3600);
	assert_int_equal(cfg.ack_timeout, 31);

	assert_rejects("MIGRDMA_BUSY_POLL_US", "10001");
	assert_rejects("MIGRDMA_BUSY_POLL_US", "-1");
	assert_rejects("MIGRDMA_BUSY_POLL_US", "+5");
	assert_rejects("MIGRDMA_BUSY_POLL_US", "1.5");
	assert_rejects("MIGRDMA_BUSY_POLL_US", "1K");
	assert_rejects("MIGRDMA_BUSY_POLL_US", "99999999999999999999999");
	assert_rejects("MIGRDMA_CONNECT_TIMEOUT_MS", "99");
	assert_rejects("MIGRDMA_CONNECT_TIMEOUT_MS", "600001");
	assert_rejects("MIGRDMA_CONNECT_TIMEOUT_MS", "5s");
	assert_rejects("MIGRDMA_KEEPALIVE", "0");
	assert_rejects("MIGRDMA_KEEPALIVE", "3601");
	assert_string_equal(err, "MIGRDMA_KEEPALIVE=\"3601\": must be an integer between 1 and 3600");
	assert_rejects("MIGRDMA_ACK_TIMEOUT", "32");
	assert_string_equal(err, "MIGRDMA_ACK_TIMEOUT=\"32\": must be an integer between 0 and 31");
	assert_rejects("MIGRDMA_ACK_TIMEOUT", "-1");
}

static void test_control_chars_quoted_on_one_line(void **state)
{
	(void)state;
	set_env("MIGRDMA_LOG", "warn\nerror");
	assert_int_equal(load(), -1);
	assert_string_equal(err, "MIGRDMA_LOG=\"warn?error\": must be error, warn, notice, info or debug");
}

static const struct target_rule *rule(size_t i)
{
	assert_true(i < cfg.nrules);
	return &cfg.rules[i];
}

static int parse(const char *value)
{
	memset(&cfg, 0, sizeof(cfg));
	memset(err, 0, sizeof(err));
	return config_parse_targets(&cfg, value, err, sizeof(err));
}

static void test_targets_valid(void **state)
{
	struct in6_addr v6;
	struct in_addr v4;

	(void)state;
	assert_int_equal(parse("192.168.1.2:4444"), 0);
	assert_int_equal(cfg.nrules, 1);
	inet_pton(AF_INET, "192.168.1.2", &v4);
	assert_int_equal(rule(0)->family, AF_INET);
	assert_int_equal(rule(0)->addr.v4.s_addr, v4.s_addr);
	assert_int_equal(rule(0)->port_lo, 4444);
	assert_int_equal(rule(0)->port_hi, 4444);

	assert_int_equal(parse("10.0.0.1:5000-5100"), 0);
	assert_int_equal(rule(0)->port_lo, 5000);
	assert_int_equal(rule(0)->port_hi, 5100);

	assert_int_equal(parse("*:1-65535"), 0);
	assert_int_equal(rule(0)->family, AF_UNSPEC);
	assert_int_equal(rule(0)->port_lo, 1);
	assert_int_equal(rule(0)->port_hi, 65535);

	assert_int_equal(parse("[fd00::1]:4444"), 0);
	inet_pton(AF_INET6, "fd00::1", &v6);
	assert_int_equal(rule(0)->family, AF_INET6);
	assert_memory_equal(&rule(0)->addr.v6, &v6, sizeof(v6));
	assert_int_equal(rule(0)->port_lo, 4444);

	assert_int_equal(parse("[::1]:7000-7001"), 0);
	assert_int_equal(rule(0)->family, AF_INET6);
	assert_int_equal(rule(0)->port_lo, 7000);
	assert_int_equal(rule(0)->port_hi, 7001);

	/* A mapped address is an IPv4 rule in disguise. */
	assert_int_equal(parse("[::ffff:10.1.2.3]:80"), 0);
	inet_pton(AF_INET, "10.1.2.3", &v4);
	assert_int_equal(rule(0)->family, AF_INET);
	assert_int_equal(rule(0)->addr.v4.s_addr, v4.s_addr);

	assert_int_equal(parse("5.5.5.5:80-80"), 0);
	assert_int_equal(rule(0)->port_lo, 80);
	assert_int_equal(rule(0)->port_hi, 80);
}

static void test_targets_list_and_whitespace(void **state)
{
	(void)state;
	assert_int_equal(parse("  1.2.3.4:80 ,\t*:5000-5100 , [::1]:4444  "), 0);
	assert_int_equal(cfg.nrules, 3);
	assert_int_equal(rule(0)->family, AF_INET);
	assert_int_equal(rule(0)->port_lo, 80);
	assert_int_equal(rule(1)->family, AF_UNSPEC);
	assert_int_equal(rule(1)->port_hi, 5100);
	assert_int_equal(rule(2)->family, AF_INET6);
	assert_int_equal(rule(2)->port_lo, 4444);

	assert_int_equal(parse("1.2.3.4:80,5.6.7.8:90"), 0);
	assert_int_equal(cfg.nrules, 2);

	assert_int_equal(parse(""), 0);
	assert_int_equal(cfg.nrules, 0);
	assert_int_equal(parse(" \t "), 0);
	assert_int_equal(cfg.nrules, 0);
	assert_int_equal(parse(NULL), 0);
	assert_int_equal(cfg.nrules, 0);
}

static void assert_bad_rule(const char *value, const char *quoted)
{
	if (parse(value) != -1)
		fail_msg("MIGRDMA_TARGETS=\"%s\" accepted", value);
	assert_int_equal(cfg.nrules, 0);
	if (!strstr(err, "MIGRDMA_TARGETS") || !strstr(err, quoted))
		fail_msg("error for \"%s\" should quote \"%s\": %s", value, quoted, err);
	assert_null(strchr(err, '\n'));
}

static void test_targets_malformed(void **state)
{
	(void)state;
	assert_bad_rule("1.2.3.4", "\"1.2.3.4\"");
	assert_bad_rule("1.2.3.4:", "\"1.2.3.4:\"");
	assert_bad_rule(":80", "\":80\"");
	assert_bad_rule("1.2.3.4:0", "\"1.2.3.4:0\"");
	assert_bad_rule("1.2.3.4:70000", "\"1.2.3.4:70000\"");
	assert_bad_rule("1.2.3.4:99999999999999999999", "\"1.2.3.4:99999999999999999999\"");
	assert_bad_rule("1.2.3.4:90-80", "\"1.2.3.4:90-80\"");
	assert_bad_rule("1.2.3.4:80-", "\"1.2.3.4:80-\"");
	assert_bad_rule("1.2.3.4:-80", "\"1.2.3.4:-80\"");
	assert_bad_rule("1.2.3.4:80-90-100", "\"1.2.3.4:80-90-100\"");
	assert_bad_rule("1.2.3.4:0-80", "\"1.2.3.4:0-80\"");
	assert_bad_rule("1.2.3.4:8o", "\"1.2.3.4:8o\"");
	assert_bad_rule("[::1:80", "\"[::1:80\"");
	assert_bad_rule("[::1]80", "\"[::1]80\"");
	assert_bad_rule("[::1]:", "\"[::1]:\"");
	assert_bad_rule("[1.2.3.4]:80", "\"[1.2.3.4]:80\"");
	assert_bad_rule("[fe80::1%eth0]:80", "\"[fe80::1%eth0]:80\"");
	assert_bad_rule("::1:80", "\"::1:80\"");
	assert_bad_rule("999.1.1.1:80", "\"999.1.1.1:80\"");
	assert_bad_rule("1.2.3:80", "\"1.2.3:80\"");
	assert_bad_rule("host.example:80", "\"host.example:80\"");
	assert_bad_rule("1.2.3.4 :80", "\"1.2.3.4 :80\"");
	assert_bad_rule("**:80", "\"**:80\"");

	/* The bad rule is quoted, not the whole list. */
	assert_bad_rule("1.2.3.4:80, 5.6.7.8:0 ,*:9", "\"5.6.7.8:0\"");
	assert_null(strstr(err, "1.2.3.4:80"));

	assert_bad_rule("1.2.3.4:80,", "MIGRDMA_TARGETS");
	assert_bad_rule("1.2.3.4:80,,5.6.7.8:80", "MIGRDMA_TARGETS");
	assert_bad_rule(",", "MIGRDMA_TARGETS");
}

static void test_targets_too_many(void **state)
{
	char value[CONFIG_MAX_RULES * 16 + 32];
	size_t i, len = 0;

	(void)state;
	for (i = 0; i < CONFIG_MAX_RULES; i++)
		len += (size_t)sprintf(value + len, "%s*:%zu", i ? "," : "", 1000 + i);
	assert_int_equal(parse(value), 0);
	assert_int_equal(cfg.nrules, CONFIG_MAX_RULES);
	assert_int_equal(rule(CONFIG_MAX_RULES - 1)->port_lo, 1000 + CONFIG_MAX_RULES - 1);

	sprintf(value + len, ",*:2000");
	assert_int_equal(parse(value), -1);
	assert_int_equal(cfg.nrules, 0);
	assert_non_null(strstr(err, "MIGRDMA_TARGETS"));
	assert_non_null(strstr(err, "64"));
}

static void test_targets_too_long_rule(void **state)
{
	char value[300];

	(void)state;
	memset(value, '1', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	assert_int_equal(parse(value), -1);
	assert_non_null(strstr(err, "MIGRDMA_TARGETS"));
	assert_non_null(strstr(err, "..."));
}

static void test_targets_via_load(void **state)
{
	(void)state;
	set_env("MIGRDMA_TARGETS", "10.0.0.2:4444, [fd00::2]:4444");
	assert_loads();
	assert_int_equal(cfg.nrules, 2);
	set_env("MIGRDMA_TARGETS", "10.0.0.2");
	assert_int_equal(load(), -1);
	assert_non_null(strstr(err, "MIGRDMA_TARGETS"));
	assert_non_null(strstr(err, "\"10.0.0.2\""));
}

static struct sockaddr_in sin4(const char *addr, unsigned port)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	assert_int_equal(inet_pton(AF_INET, addr, &sin.sin_addr), 1);
	return sin;
}

static struct sockaddr_in6 sin6(const char *addr, unsigned port)
{
	struct sockaddr_in6 sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin6_family = AF_INET6;
	sin.sin6_port = htons((uint16_t)port);
	assert_int_equal(inet_pton(AF_INET6, addr, &sin.sin6_addr), 1);
	return sin;
}

static bool match4(const char *addr, unsigned port)
{
	struct sockaddr_in sin = sin4(addr, port);

	return config_match(&cfg, (struct sockaddr *)&sin, sizeof(sin));
}

static bool match6(const char *addr, unsigned port)
{
	struct sockaddr_in6 sin = sin6(addr, port);

	return config_match(&cfg, (struct sockaddr *)&sin, sizeof(sin));
}

static void test_match_v4(void **state)
{
	(void)state;
	assert_int_equal(parse("10.0.0.2:4444, 10.0.0.3:5000-5010"), 0);
	assert_true(match4("10.0.0.2", 4444));
	assert_false(match4("10.0.0.2", 4445));
	assert_false(match4("10.0.0.4", 4444));
	assert_true(match4("10.0.0.3", 5000));
	assert_true(match4("10.0.0.3", 5010));
	assert_false(match4("10.0.0.3", 4999));
	assert_false(match4("10.0.0.3", 5011));
	assert_false(match4("10.0.0.3", 0));
	/* Same address in IPv6 clothing. */
	assert_true(match6("::ffff:10.0.0.2", 4444));
	assert_false(match6("::ffff:10.0.0.2", 4445));
	/* Wrong family: an IPv6 address never equals an IPv4 rule. */
	assert_false(match6("fd00::2", 4444));
	assert_false(match6("::10.0.0.2", 4444));
}

static void test_match_v6(void **state)
{
	(void)state;
	assert_int_equal(parse("[fd00::2]:4444-4446"), 0);
	assert_true(match6("fd00::2", 4444));
	assert_true(match6("fd00::2", 4446));
	assert_false(match6("fd00::2", 4447));
	assert_false(match6("fd00::3", 4444));
	assert_false(match4("10.0.0.2", 4444));
	assert_false(match6("::ffff:10.0.0.2", 4444));
}

static void test_match_mapped_rule(void **state)
{
	(void)state;
	assert_int_equal(parse("[::ffff:10.0.0.2]:4444"), 0);
	assert_true(match4("10.0.0.2", 4444));
	assert_true(match6("::ffff:10.0.0.2", 4444));
}

static void test_match_star(void **state)
{
	(void)state;
	assert_int_equal(parse("*:4444"), 0);
	assert_true(match4("10.9.8.7", 4444));
	assert_true(match4("127.0.0.1", 4444));
	assert_true(match6("fd00::9", 4444));
	assert_true(match6("::ffff:1.2.3.4", 4444));
	assert_false(match4("10.9.8.7", 4443));
	assert_false(match6("fd00::9", 4445));
}

static void test_match_wildcard_bind(void **state)
{
	(void)state;
	assert_int_equal(parse("10.0.0.2:4444, [fd00::2]:6000-6010"), 0);
	assert_true(match4("0.0.0.0", 4444));
	assert_true(match6("::", 4444));
	assert_true(match4("0.0.0.0", 6005));
	assert_true(match6("::", 6010));
	assert_true(match6("::ffff:0.0.0.0", 4444));
	assert_false(match4("0.0.0.0", 4445));
	assert_false(match6("::", 5999));
	assert_false(match4("0.0.0.0", 0));
}

static void test_match_bad_input(void **state)
{
	struct sockaddr_in s4 = sin4("10.0.0.2", 4444);
	struct sockaddr_in6 s6 = sin6("fd00::2", 4444);
	struct sockaddr_un sun;

	(void)state;
	assert_int_equal(parse("10.0.0.2:4444, [fd00::2]:4444, *:5555"), 0);
	assert_true(config_match(&cfg, (struct sockaddr *)&s4, sizeof(s4)));
	assert_false(config_match(&cfg, (struct sockaddr *)&s4, sizeof(s4) - 1));
	assert_false(config_match(&cfg, (struct sockaddr *)&s4, 0));
	assert_true(config_match(&cfg, (struct sockaddr *)&s6, sizeof(s6)));
	/* RFC 2133 size (no scope id) is what old programs pass; the kernel takes it. */
	assert_true(config_match(&cfg, (struct sockaddr *)&s6, 24));
	assert_false(config_match(&cfg, (struct sockaddr *)&s6, 23));
	assert_false(config_match(&cfg, (struct sockaddr *)&s6, sizeof(struct sockaddr_in)));
	assert_false(config_match(&cfg, NULL, sizeof(s4)));
	assert_false(config_match(NULL, (struct sockaddr *)&s4, sizeof(s4)));

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, "/tmp/sock");
	assert_false(config_match(&cfg, (struct sockaddr *)&sun, sizeof(sun)));

	/* No rules: the library is inert. */
	assert_int_equal(parse(""), 0);
	assert_false(match4("10.0.0.2", 4444));
	assert_false(match4("0.0.0.0", 4444));
	assert_false(match6("::", 4444));
}

/*
 * Fail closed: one bad variable no longer stops the others from being read.
 * Whether matched sockets are refused depends on MIGRDMA_TARGETS and
 * MIGRDMA_FALLBACK, and the error must reach MIGRDMA_LOG_FILE.
 */
static void test_bad_variable_keeps_the_rest(void **state)
{
	(void)state;
	set_env("MIGRDMA_TARGETS", "198.18.0.2:4444");
	set_env("MIGRDMA_LOG", "verbose");
	set_env("MIGRDMA_LOG_FILE", "/var/log/migrdma.log");
	set_env("MIGRDMA_STATS", "/tmp/stats.json");
	set_env("MIGRDMA_KEEPALIVE", "20");
	assert_int_equal(load(), -1);
	assert_string_equal(err, "MIGRDMA_LOG=\"verbose\": must be error, warn, notice, info or debug");
	assert_int_equal(cfg.bad_vars, 1);
	assert_int_equal(cfg.nrules, 1);
	assert_int_equal(cfg.rules[0].port_lo, 4444);
	assert_int_equal(cfg.fallback, FALLBACK_NONE);
	assert_int_equal(cfg.log_level, LOG_LEVEL_NOTICE);
	assert_string_equal(cfg.log_file, "/var/log/migrdma.log");
	assert_string_equal(cfg.stats_file, "/tmp/stats.json");
	assert_int_equal(cfg.keepalive_s, 20);

	/* An explicit fallback is still seen after the bad one. */
	set_env("MIGRDMA_FALLBACK", "tcp");
	assert_int_equal(load(), -1);
	assert_int_equal(cfg.fallback, FALLBACK_TCP);
}

static void test_bad_variables_counted_first_named(void **state)
{
	(void)state;
	set_env("MIGRDMA_TARGETS", "198.18.0.2:4444");
	set_env("MIGRDMA_CHUNK", "3M");
	set_env("MIGRDMA_KEEPALIVE", "0");
	set_env("MIGRDMA_SECRET", "short");
	assert_int_equal(load(), -1);
	assert_int_equal(cfg.bad_vars, 3);
	/* The first in reading order is the one named. */
	assert_string_equal(err, "MIGRDMA_CHUNK=\"3M\": must be a power of two between 64K and 1G");
	assert_int_equal(cfg.chunk, MIB);
	assert_int_equal(cfg.keepalive_s, 10);
	assert_int_equal(cfg.secret_len, 0);
	assert_int_equal(cfg.nrules, 1);

	/* A bad rule leaves no rules at all, never some of them. */
	reset_env(NULL);
	set_env("MIGRDMA_TARGETS", "198.18.0.2:4444,nonsense");
	set_env("MIGRDMA_FALLBACK", "maybe");
	assert_int_equal(load(), -1);
	assert_int_equal(cfg.bad_vars, 2);
	assert_int_equal(cfg.nrules, 0);
	assert_non_null(strstr(err, "MIGRDMA_TARGETS"));
}

static void assert_unknown(const char *entry, const char *expect)
{
	char msg[256];

	memset(msg, 'x', sizeof(msg));
	if (config_unknown_name(entry, msg, sizeof(msg)) != 1)
		fail_msg("%s: not reported as unknown", entry);
	assert_string_equal(msg, expect);
}

static void test_unknown_names(void **state)
{
	char msg[256] = "untouched";

	(void)state;
	assert_unknown("MIGRDMA_TARGET=198.18.0.2:4444",
		       "unknown variable MIGRDMA_TARGET is ignored; did you mean MIGRDMA_TARGETS?");
	assert_unknown("MIGRDMA_LOGFILE=/tmp/x",
		       "unknown variable MIGRDMA_LOGFILE is ignored; did you mean MIGRDMA_LOG_FILE?");
	assert_unknown("MIGRDMA_FALBACK=tcp",
		       "unknown variable MIGRDMA_FALBACK is ignored; did you mean MIGRDMA_FALLBACK?");
	/* A swap of two letters is one edit. */
	assert_unknown("MIGRDMA_RNIG=8M",
		       "unknown variable MIGRDMA_RNIG is ignored; did you mean MIGRDMA_RING?");
	assert_unknown("MIGRDMA_COMPLETELY_DIFFERENT=1",
		       "unknown variable MIGRDMA_COMPLETELY_DIFFERENT is ignored (the variables are listed in migrdma(7))");
	/* No '=' (a malformed environ entry) is still a name. */
	assert_unknown("MIGRDMA_STAT",
		       "unknown variable MIGRDMA_STAT is ignored; did you mean MIGRDMA_STATS?");

	/* Known names, other prefixes and prefixes of known names. */
	assert_int_equal(config_unknown_name("MIGRDMA_TARGETS=*:4444", msg, sizeof(msg)), 0);
	assert_int_equal(config_unknown_name("MIGRDMA_LOG_FILE=", msg, sizeof(msg)), 0);
	assert_int_equal(config_unknown_name("MIGRDMA_LIB=/x/libmigrdma.so", msg, sizeof(msg)), 0);
	assert_int_equal(config_unknown_name("MIGRDMA_VM_LOG=/tmp/console", msg, sizeof(msg)), 0);
	assert_int_equal(config_unknown_name("PATH=/usr/bin", msg, sizeof(msg)), 0);
	assert_int_equal(config_unknown_name("migrdma_targets=x", msg, sizeof(msg)), 0);
	assert_int_equal(config_unknown_name(NULL, msg, sizeof(msg)), 0);
	assert_string_equal(msg, "untouched");
}

static void test_name_distance(void **state)
{
	char long_a[200], long_b[200];

	(void)state;
	assert_int_equal(config_name_distance("", ""), 0);
	assert_int_equal(config_name_distance("ABC", ""), 3);
	assert_int_equal(config_name_distance("MIGRDMA_LOG", "MIGRDMA_LOG"), 0);
	assert_int_equal(config_name_distance("MIGRDMA_TARGET", "MIGRDMA_TARGETS"), 1);
	assert_int_equal(config_name_distance("MIGRDMA_RNIG", "MIGRDMA_RING"), 1);
	assert_int_equal(config_name_distance("KITTEN", "SITTING"), 3);
	/* Very long names are compared on a bounded prefix, never overrun. */
	memset(long_a, 'A', sizeof(long_a) - 1);
	long_a[sizeof(long_a) - 1] = '\0';
	memset(long_b, 'B', sizeof(long_b) - 1);
	long_b[sizeof(long_b) - 1] = '\0';
	assert_int_equal(config_name_distance(long_a, long_b), 48);
}

#define T(f) cmocka_unit_test_setup(f, reset_env)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_defaults),
		T(test_empty_means_default),
		T(test_real_environment),
		T(test_errno_preserved),
		T(test_disable),
		T(test_fallback),
		T(test_log_level),
		T(test_paths),
		T(test_parse_size),
		T(test_zcopy_min),
		T(test_chunk),
		T(test_ring),
		T(test_backlog),
		T(test_pin_limit),
		T(test_integers),
		T(test_control_chars_quoted_on_one_line),
		T(test_targets_valid),
		T(test_targets_list_and_whitespace),
		T(test_targets_malformed),
		T(test_targets_too_many),
		T(test_targets_too_long_rule),
		T(test_targets_via_load),
		T(test_match_v4),
		T(test_match_v6),
		T(test_match_mapped_rule),
		T(test_match_star),
		T(test_match_wildcard_bind),
		T(test_match_bad_input),
		T(test_bad_variable_keeps_the_rest),
		T(test_bad_variables_counted_first_named),
		T(test_unknown_names),
		T(test_name_distance),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
