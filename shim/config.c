// SPDX-License-Identifier: MIT
/*
 * MIGRDMA_* environment parsing and target matching.
 *
 * Runs once at start-up, possibly from a constructor before the program's
 * main(), so it allocates nothing and never touches stdio streams.  Every
 * rejection produces exactly one line naming the variable, quoting what was
 * given and saying what would have been accepted.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "config_util.h"

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)
#define GIB ((size_t)1 << 30)

static const char *env_getenv(const char *name)
{
	return getenv(name);
}

static void config_defaults(struct migrdma_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->fallback = FALLBACK_NONE;
	cfg->log_level = LOG_LEVEL_NOTICE;
	cfg->zcopy_min = 4096;
	cfg->chunk = MIB;
	cfg->pin_limit = GIB;
	cfg->ring_size = 8 * MIB;
	cfg->backlog = 32 * MIB;
	cfg->busy_poll_us = 0;
	cfg->connect_timeout_ms = 15000;
	cfg->live = true;
	cfg->keepalive_s = 10;
	cfg->ack_timeout = 16;
}

int config_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/*
 * Copy value for quoting in an error message.  Control characters become '?'
 * so the message stays on one line whatever the environment held.
 */
const char *config_quote(const char *value, char *buf, size_t buflen)
{
	size_t i, n = 0;

	for (i = 0; value[i] && n + 4 < buflen; i++) {
		unsigned char c = (unsigned char)value[i];

		buf[n++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (value[i] && n + 3 < buflen) {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
	return buf;
}

/* "64K", "2M", "1G" when exact, plain bytes otherwise. */
static const char *size_str(size_t v, char *buf, size_t buflen)
{
	if (v && v % GIB == 0)
		snprintf(buf, buflen, "%zuG", v / GIB);
	else if (v && v % MIB == 0)
		snprintf(buf, buflen, "%zuM", v / MIB);
	else if (v && v % KIB == 0)
		snprintf(buf, buflen, "%zuK", v / KIB);
	else
		snprintf(buf, buflen, "%zu", v);
	return buf;
}

/* Decimal digits only: strtoull alone would accept " -1" and "+1". */
int config_parse_decimal(const char *s, unsigned long long *out, const char **end)
{
	unsigned long long v;
	char *e;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &e, 10);
	if (errno == ERANGE)
		return -1;
	*out = v;
	*end = e;
	return 0;
}

int config_parse_size(const char *value, size_t *out)
{
	unsigned long long v, mult = 1;
	const char *p;
	int saved_errno = errno;
	int ret = -1;

	if (!value || config_parse_decimal(value, &v, &p) < 0)
		goto out;

	switch (*p) {
	case 'k': case 'K':
		mult = KIB;
		break;
	case 'm': case 'M':
		mult = MIB;
		break;
	case 'g': case 'G':
		mult = GIB;
		break;
	}
	if (mult != 1) {
		p++;
		if (*p == 'i' || *p == 'I') {
			p++;
			if (*p != 'b' && *p != 'B')
				goto out;
		}
	}
	if (*p == 'b' || *p == 'B')
		p++;
	if (*p)
		goto out;

	if (v > SIZE_MAX / mult)
		goto out;
	*out = (size_t)(v * mult);
	ret = 0;
out:
	errno = saved_errno;
	return ret;
}

/* An unset or empty variable means "use the default". */
static const char *lookup(const char *(*getenv_fn)(const char *), const char *name)
{
	const char *v = getenv_fn(name);

	return (v && *v) ? v : NULL;
}

static int load_bool(const char *(*getenv_fn)(const char *), const char *name,
		     bool *out, char *err, size_t errlen)
{
	static const char *const yes[] = { "1", "true", "yes" };
	static const char *const no[] = { "0", "false", "no" };
	const char *v = lookup(getenv_fn, name);
	char q[QUOTE_MAX];
	size_t i;

	if (!v)
		return 0;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!strcasecmp(v, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(v, no[i])) {
			*out = false;
			return 0;
		}
	}
	return config_set_err(err, errlen, "%s=\"%s\": must be 1, 0, true, false, yes or no",
		       name, config_quote(v, q, sizeof(q)));
}

static int load_uint(const char *(*getenv_fn)(const char *), const char *name,
		     unsigned lo, unsigned hi, unsigned *out,
		     char *err, size_t errlen)
{
	const char *v = lookup(getenv_fn, name);
	unsigned long long n;
	const char *end;
	char q[QUOTE_MAX];

	if (!v)
		return 0;
	if (config_parse_decimal(v, &n, &end) < 0 || *end || n < lo || n > hi)
		return config_set_err(err, errlen, "%s=\"%s\": must be an integer between %u and %u",
			       name, config_quote(v, q, sizeof(q)), lo, hi);
	*out = (unsigned)n;
	return 0;
}

/* what describes the accepted values, e.g. "a power of two between 64K and 1G". */
static int load_size(const char *(*getenv_fn)(const char *), const char *name,
		     size_t lo, size_t hi, bool pow2, const char *what,
		     size_t *out, char *err, size_t errlen)
{
	const char *v = lookup(getenv_fn, name);
	char q[QUOTE_MAX];
	size_t n;

	if (!v)
		return 0;
	if (config_parse_size(v, &n) < 0 || n < lo || n > hi ||
	    (pow2 && (n & (n - 1))))
		return config_set_err(err, errlen, "%s=\"%s\": must be %s",
			       name, config_quote(v, q, sizeof(q)), what);
	*out = n;
	return 0;
}

static int load_path(const char *(*getenv_fn)(const char *), const char *name,
		     char *out, size_t outlen, char *err, size_t errlen)
{
	const char *v = lookup(getenv_fn, name);
	char q[QUOTE_MAX];
	size_t len;

	if (!v)
		return 0;
	/* A truncated path would silently write somewhere else. */
	len = strlen(v);
	if (len >= outlen)
		return config_set_err(err, errlen, "%s=\"%s\": path is %zu bytes, the limit is %zu",
			       name, config_quote(v, q, sizeof(q)), len, outlen - 1);
	memcpy(out, v, len + 1);
	return 0;
}

static int load_fallback(const char *(*getenv_fn)(const char *),
			 struct migrdma_config *cfg, char *err, size_t errlen)
{
	const char *v = lookup(getenv_fn, "MIGRDMA_FALLBACK");
	char q[QUOTE_MAX];

	if (!v)
		return 0;
	if (!strcasecmp(v, "none"))
		cfg->fallback = FALLBACK_NONE;
	else if (!strcasecmp(v, "tcp"))
		cfg->fallback = FALLBACK_TCP;
	else
		return config_set_err(err, errlen, "MIGRDMA_FALLBACK=\"%s\": must be none or tcp",
			       config_quote(v, q, sizeof(q)));
	return 0;
}

static int load_defer(const char *(*getenv_fn)(const char *),
		      struct migrdma_config *cfg, char *err, size_t errlen)
{
	const char *v = lookup(getenv_fn, "MIGRDMA_DEFER");
	char q[QUOTE_MAX];

	if (!v)
		return 0;
	if (!strcasecmp(v, "auto"))
		cfg->defer = DEFER_AUTO;
	else if (!strcasecmp(v, "off"))
		cfg->defer = DEFER_OFF;
	else if (!strcasecmp(v, "all"))
		cfg->defer = DEFER_ALL;
	else
		return config_set_err(err, errlen, "MIGRDMA_DEFER=\"%s\": must be auto, off or all",
			       config_quote(v, q, sizeof(q)));
	return 0;
}

static int load_log_level(const char *(*getenv_fn)(const char *),
			  struct migrdma_config *cfg, char *err, size_t errlen)
{
	static const char *const words[] = {
		[LOG_LEVEL_ERROR] = "error",
		[LOG_LEVEL_WARN] = "warn",
		[LOG_LEVEL_NOTICE] = "notice",
		[LOG_LEVEL_INFO] = "info",
		[LOG_LEVEL_DEBUG] = "debug",
	};
	const char *v = lookup(getenv_fn, "MIGRDMA_LOG");
	char q[QUOTE_MAX];
	size_t i;

	if (!v)
		return 0;
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (!strcasecmp(v, words[i])) {
			cfg->log_level = (enum log_level)i;
			return 0;
		}
	}
	return config_set_err(err, errlen, "MIGRDMA_LOG=\"%s\": must be error, warn, notice, info or debug",
		       config_quote(v, q, sizeof(q)));
}

/*
 * Every variable is checked even after one is found bad: whether matched
 * connections are refused or may use TCP depends on MIGRDMA_TARGETS and
 * MIGRDMA_FALLBACK, and the error itself must reach MIGRDMA_LOG_FILE.
 * The first error is kept in err; cfg->bad_vars counts them all.
 */
struct load_state {
	struct migrdma_config *cfg;
	char *err;
	size_t errlen;
	char scratch[256];
};

static void note(struct load_state *st, int rc)
{
	if (rc == 0)
		return;
	if (!st->cfg->bad_vars++ && st->err && st->errlen)
		snprintf(st->err, st->errlen, "%s", st->scratch);
	st->scratch[0] = '\0';
}

static void config_load_vars(struct migrdma_config *cfg,
			     const char *(*getenv_fn)(const char *name),
			     char *err, size_t errlen)
{
	struct load_state st = { .cfg = cfg, .err = err, .errlen = errlen };
	char *e = st.scratch;
	size_t el = sizeof(st.scratch);
	char a[32], b[32], what[128];
	const char *v;

	note(&st, load_bool(getenv_fn, "MIGRDMA_DISABLE", &cfg->disabled, e, el));

	v = lookup(getenv_fn, "MIGRDMA_TARGETS");
	if (v)
		note(&st, config_parse_targets(cfg, v, e, el));

	note(&st, load_fallback(getenv_fn, cfg, e, el));
	note(&st, load_log_level(getenv_fn, cfg, e, el));
	note(&st, load_path(getenv_fn, "MIGRDMA_LOG_FILE", cfg->log_file,
			    sizeof(cfg->log_file), e, el));
	note(&st, load_path(getenv_fn, "MIGRDMA_STATS", cfg->stats_file,
			    sizeof(cfg->stats_file), e, el));

	note(&st, load_size(getenv_fn, "MIGRDMA_ZCOPY_MIN", 1, GIB, false,
			    "a size between 1 and 1G", &cfg->zcopy_min, e, el));
	note(&st, load_size(getenv_fn, "MIGRDMA_CHUNK", 64 * KIB, GIB, true,
			    "a power of two between 64K and 1G", &cfg->chunk, e, el));
	note(&st, load_size(getenv_fn, "MIGRDMA_RING", 256 * KIB, GIB, true,
			    "a power of two between 256K and 1G", &cfg->ring_size, e, el));
	note(&st, load_size(getenv_fn, "MIGRDMA_BACKLOG", 0, GIB, false,
			    "a size between 0 (off) and 1G", &cfg->backlog, e, el));

	/* The limit must hold at least two chunks or the pipeline stalls. */
	snprintf(what, sizeof(what), "a size of at least %s (twice MIGRDMA_CHUNK=%s)",
		 size_str(2 * cfg->chunk, a, sizeof(a)), size_str(cfg->chunk, b, sizeof(b)));
	if (load_size(getenv_fn, "MIGRDMA_PIN_LIMIT", 2 * cfg->chunk, SIZE_MAX, false,
		      what, &cfg->pin_limit, e, el) < 0)
		note(&st, -1);
	/* A larger MIGRDMA_CHUNK alone can push the default limit too low. */
	else if (cfg->pin_limit < 2 * cfg->chunk)
		note(&st, config_set_err(e, el, "MIGRDMA_CHUNK=\"%s\": needs MIGRDMA_PIN_LIMIT of at least %s, the default is 1G",
				  b, a));

	v = lookup(getenv_fn, "MIGRDMA_ALLOW");
	if (v)
		note(&st, config_parse_allow(cfg, v, e, el));
	v = lookup(getenv_fn, "MIGRDMA_SECRET");
	if (v) {
		size_t n = strlen(v);

		/* Short secrets are guessable offline from one captured handshake. */
		if (n < 8 || n >= sizeof(cfg->secret)) {
			note(&st, config_set_err(e, el,
					  "MIGRDMA_SECRET: must be 8 to %zu characters long",
					  sizeof(cfg->secret) - 1));
		} else {
			memcpy(cfg->secret, v, n + 1);
			cfg->secret_len = n;
		}
	}
	note(&st, load_bool(getenv_fn, "MIGRDMA_PIN_ALL", &cfg->pin_all, e, el));
	note(&st, load_bool(getenv_fn, "MIGRDMA_LIVE", &cfg->live, e, el));
	note(&st, load_defer(getenv_fn, cfg, e, el));

	note(&st, load_uint(getenv_fn, "MIGRDMA_BUSY_POLL_US", 0, 10000,
			    &cfg->busy_poll_us, e, el));
	note(&st, load_uint(getenv_fn, "MIGRDMA_CONNECT_TIMEOUT_MS", 100, 600000,
			    &cfg->connect_timeout_ms, e, el));
	note(&st, load_uint(getenv_fn, "MIGRDMA_KEEPALIVE", 1, 3600,
			    &cfg->keepalive_s, e, el));
	note(&st, load_uint(getenv_fn, "MIGRDMA_ACK_TIMEOUT", 0, 31,
			    &cfg->ack_timeout, e, el));
}

int config_load(struct migrdma_config *cfg,
		const char *(*getenv_fn)(const char *name),
		char *err, size_t errlen)
{
	/* Called from the constructor: the program must not see errno move. */
	int saved_errno = errno;

	config_defaults(cfg);
	if (err && errlen)
		err[0] = '\0';
	if (!getenv_fn)
		getenv_fn = env_getenv;

	config_load_vars(cfg, getenv_fn, err, errlen);
	errno = saved_errno;
	return cfg->bad_vars ? -1 : 0;
}
