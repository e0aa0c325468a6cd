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

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)
#define GIB ((size_t)1 << 30)

/* Longest rule we accept: a full IPv6 address in brackets and a port range. */
#define RULE_MAX 96

/* Quoted values are cut here so a runaway value cannot swamp the message. */
#define QUOTE_MAX 64

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
	cfg->busy_poll_us = 0;
	cfg->connect_timeout_ms = 15000;
	cfg->live = true;
	cfg->keepalive_s = 10;
}

static int set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int set_err(char *err, size_t errlen, const char *fmt, ...)
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
static const char *quote(const char *value, char *buf, size_t buflen)
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
static int parse_decimal(const char *s, unsigned long long *out, const char **end)
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

	if (!value || parse_decimal(value, &v, &p) < 0)
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
	return set_err(err, errlen, "%s=\"%s\": must be 1, 0, true, false, yes or no",
		       name, quote(v, q, sizeof(q)));
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
	if (parse_decimal(v, &n, &end) < 0 || *end || n < lo || n > hi)
		return set_err(err, errlen, "%s=\"%s\": must be an integer between %u and %u",
			       name, quote(v, q, sizeof(q)), lo, hi);
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
		return set_err(err, errlen, "%s=\"%s\": must be %s",
			       name, quote(v, q, sizeof(q)), what);
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
		return set_err(err, errlen, "%s=\"%s\": path is %zu bytes, the limit is %zu",
			       name, quote(v, q, sizeof(q)), len, outlen - 1);
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
		return set_err(err, errlen, "MIGRDMA_FALLBACK=\"%s\": must be none or tcp",
			       quote(v, q, sizeof(q)));
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
	return set_err(err, errlen, "MIGRDMA_LOG=\"%s\": must be error, warn, notice, info or debug",
		       quote(v, q, sizeof(q)));
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
	char a[32], b[32], what[96];
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

	/* The limit must hold at least two chunks or the pipeline stalls. */
	snprintf(what, sizeof(what), "a size of at least %s (twice MIGRDMA_CHUNK=%s)",
		 size_str(2 * cfg->chunk, a, sizeof(a)), size_str(cfg->chunk, b, sizeof(b)));
	if (load_size(getenv_fn, "MIGRDMA_PIN_LIMIT", 2 * cfg->chunk, SIZE_MAX, false,
		      what, &cfg->pin_limit, e, el) < 0)
		note(&st, -1);
	/* A larger MIGRDMA_CHUNK alone can push the default limit too low. */
	else if (cfg->pin_limit < 2 * cfg->chunk)
		note(&st, set_err(e, el, "MIGRDMA_CHUNK=\"%s\": needs MIGRDMA_PIN_LIMIT of at least %s, the default is 1G",
				  b, a));

	v = lookup(getenv_fn, "MIGRDMA_ALLOW");
	if (v)
		note(&st, config_parse_allow(cfg, v, e, el));
	v = lookup(getenv_fn, "MIGRDMA_SECRET");
	if (v) {
		size_t n = strlen(v);

		/* Short secrets are guessable offline from one captured handshake. */
		if (n < 8 || n >= sizeof(cfg->secret)) {
			note(&st, set_err(e, el,
					  "MIGRDMA_SECRET: must be 8 to %zu characters long",
					  sizeof(cfg->secret) - 1));
		} else {
			memcpy(cfg->secret, v, n + 1);
			cfg->secret_len = n;
		}
	}
	note(&st, load_bool(getenv_fn, "MIGRDMA_PIN_ALL", &cfg->pin_all, e, el));
	note(&st, load_bool(getenv_fn, "MIGRDMA_LIVE", &cfg->live, e, el));

	note(&st, load_uint(getenv_fn, "MIGRDMA_BUSY_POLL_US", 0, 10000,
			    &cfg->busy_poll_us, e, el));
	note(&st, load_uint(getenv_fn, "MIGRDMA_CONNECT_TIMEOUT_MS", 100, 600000,
			    &cfg->connect_timeout_ms, e, el));
	note(&st, load_uint(getenv_fn, "MIGRDMA_KEEPALIVE", 1, 3600,
			    &cfg->keepalive_s, e, el));
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

/* "80" or "5000-5100"; NULL on success, else why not. */
static const char *parse_ports(const char *s, uint16_t *lo, uint16_t *hi)
{
	unsigned long port[2];
	int i;

	for (i = 0; i < 2; i++) {
		const char *start = s;

		port[i] = 0;
		while (*s >= '0' && *s <= '9') {
			/* Saturate so long digit strings cannot wrap into range. */
			if (port[i] <= 65535)
				port[i] = port[i] * 10 + (unsigned long)(*s - '0');
			s++;
		}
		if (s == start)
			return "expected a port number (1-65535) or range (LO-HI)";
		if (port[i] < 1 || port[i] > 65535)
			return "port must be between 1 and 65535";
		if (*s != '-' || i == 1)
			break;
		s++;
	}
	if (*s)
		return "expected a port number (1-65535) or range (LO-HI)";
	if (i == 0)
		port[1] = port[0];
	if (port[0] > port[1])
		return "port range must be LO-HI with LO <= HI";
	*lo = (uint16_t)port[0];
	*hi = (uint16_t)port[1];
	return NULL;
}

/* rule is a NUL-terminated copy we may modify; NULL on success, else why not. */
static const char *parse_rule(char *rule, struct target_rule *out)
{
	char *addr, *ports, *colon;

	memset(out, 0, sizeof(*out));

	if (rule[0] == '[') {
		char *close = strchr(rule, ']');

		if (!close)
			return "missing ']' after IPv6 address";
		if (close[1] != ':')
			return "expected [IPV6]:PORT";
		*close = '\0';
		addr = rule + 1;
		ports = close + 2;
		if (inet_pton(AF_INET6, addr, &out->addr.v6) != 1)
			return "not a valid IPv6 address";
		out->family = AF_INET6;
		/* Written as mapped, meant as IPv4: match it like an IPv4 rule. */
		if (IN6_IS_ADDR_V4MAPPED(&out->addr.v6)) {
			struct in_addr v4;

			memcpy(&v4, &out->addr.v6.s6_addr[12], sizeof(v4));
			out->family = AF_INET;
			out->addr.v4 = v4;
		}
	} else {
		colon = strrchr(rule, ':');
		if (!colon)
			return "expected ADDR:PORT, *:PORT or [IPV6]:PORT";
		*colon = '\0';
		addr = rule;
		ports = colon + 1;
		if (!*addr)
			return "missing address (use '*' for any address)";
		if (strchr(addr, ':'))
			return "IPv6 addresses must be in brackets, e.g. [::1]:PORT";
		if (!strcmp(addr, "*")) {
			out->family = AF_UNSPEC;
		} else {
			if (inet_pton(AF_INET, addr, &out->addr.v4) != 1)
				return "not a valid IPv4 address";
			out->family = AF_INET;
		}
	}

	return parse_ports(ports, &out->port_lo, &out->port_hi);
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int config_parse_targets(struct migrdma_config *cfg, const char *value,
			 char *err, size_t errlen)
{
	const char *p = value, *end, *why;
	char rule[RULE_MAX + 1], q[QUOTE_MAX];
	size_t len;

	cfg->nrules = 0;
	if (!p)
		return 0;
	while (is_space(*p))
		p++;
	if (!*p)
		return 0;

	for (;;) {
		end = strchr(p, ',');
		if (!end)
			end = p + strlen(p);
		while (p < end && is_space(*p))
			p++;
		len = (size_t)(end - p);
		while (len && is_space(p[len - 1]))
			len--;

		if (!len) {
			why = "empty rule (stray comma?)";
			goto bad_value;
		}
		if (len > RULE_MAX) {
			memcpy(rule, p, RULE_MAX);
			rule[RULE_MAX] = '\0';
			why = "rule too long";
			goto bad_rule;
		}
		if (cfg->nrules == CONFIG_MAX_RULES) {
			cfg->nrules = 0;
			return set_err(err, errlen, "MIGRDMA_TARGETS: more than %d rules",
				       CONFIG_MAX_RULES);
		}

		memcpy(rule, p, len);
		rule[len] = '\0';
		why = parse_rule(rule, &cfg->rules[cfg->nrules]);
		if (why) {
			/* parse_rule cut the copy up; quote what the user wrote. */
			memcpy(rule, p, len);
			rule[len] = '\0';
			goto bad_rule;
		}
		cfg->nrules++;

		if (!*end)
			break;
		p = end + 1;
	}
	return 0;

bad_rule:
	cfg->nrules = 0;
	return set_err(err, errlen, "MIGRDMA_TARGETS: rule \"%s\": %s",
		       quote(rule, q, sizeof(q)), why);
bad_value:
	cfg->nrules = 0;
	return set_err(err, errlen, "MIGRDMA_TARGETS=\"%s\": %s",
		       quote(value, q, sizeof(q)), why);
}

bool config_match(const struct migrdma_config *cfg, const struct sockaddr *addr,
		  socklen_t addrlen)
{
	struct sockaddr_in6 sin6;
	struct sockaddr_in sin;
	struct in6_addr v6 = IN6ADDR_ANY_INIT;
	struct in_addr v4 = { 0 };
	bool wildcard;
	uint16_t port;
	int family;
	size_t i;

	if (!cfg || !addr || addrlen < sizeof(sa_family_t))
		return false;

	switch (addr->sa_family) {
	case AF_INET:
		if (addrlen < sizeof(sin))
			return false;
		memcpy(&sin, addr, sizeof(sin));
		family = AF_INET;
		v4 = sin.sin_addr;
		port = ntohs(sin.sin_port);
		break;
	case AF_INET6:
		/*
		 * The kernel accepts the RFC 2133 size without sin6_scope_id,
		 * so we must too or such a connect() would slip past us.
		 */
		if (addrlen < offsetof(struct sockaddr_in6, sin6_scope_id))
			return false;
		memset(&sin6, 0, sizeof(sin6));
		memcpy(&sin6, addr, addrlen < sizeof(sin6) ? addrlen : sizeof(sin6));
		port = ntohs(sin6.sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr)) {
			family = AF_INET;
			memcpy(&v4, &sin6.sin6_addr.s6_addr[12], sizeof(v4));
		} else {
			family = AF_INET6;
			v6 = sin6.sin6_addr;
		}
		break;
	default:
		return false;
	}

	/* A listener on any address will accept connections for every rule. */
	if (family == AF_INET)
		wildcard = v4.s_addr == htonl(INADDR_ANY);
	else
		wildcard = IN6_IS_ADDR_UNSPECIFIED(&v6);

	for (i = 0; i < cfg->nrules && i < CONFIG_MAX_RULES; i++) {
		const struct target_rule *r = &cfg->rules[i];

		if (port < r->port_lo || port > r->port_hi)
			continue;
		if (wildcard || r->family == AF_UNSPEC)
			return true;
		if (r->family != family)
			continue;
		if (family == AF_INET && r->addr.v4.s_addr == v4.s_addr)
			return true;
		if (family == AF_INET6 && IN6_ARE_ADDR_EQUAL(&r->addr.v6, &v6))
			return true;
	}
	return false;
}

static int parse_allow_entry(char *entry, struct allow_rule *out)
{
	char *slash = strchr(entry, '/');
	unsigned long long prefix;
	const char *end;
	unsigned max;

	if (slash)
		*slash = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, entry, &out->addr.v4) == 1) {
		out->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, entry, &out->addr.v6) == 1) {
		out->family = AF_INET6;
		max = 128;
	} else {
		return -1;
	}
	out->prefix = max;
	if (slash) {
		if (parse_decimal(slash + 1, &prefix, &end) || *end || prefix > max)
			return -1;
		out->prefix = (unsigned)prefix;
	}
	return 0;
}

int config_parse_allow(struct migrdma_config *cfg, const char *value,
		       char *err, size_t errlen)
{
	char buf[1024], q[96];
	char *save = NULL, *tok;

	cfg->nallow = 0;
	if (strlen(value) >= sizeof(buf))
		return set_err(err, errlen, "MIGRDMA_ALLOW: longer than %zu characters",
			       sizeof(buf) - 1);
	strcpy(buf, value);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *t = tok, *e;

		while (is_space(*t))
			t++;
		e = t + strlen(t);
		while (e > t && is_space(e[-1]))
			*--e = '\0';
		if (cfg->nallow == CONFIG_MAX_ALLOW) {
			cfg->nallow = 0;
			return set_err(err, errlen, "MIGRDMA_ALLOW: more than %d entries",
				       CONFIG_MAX_ALLOW);
		}
		/* Quoted from a copy: parsing cuts the entry at its '/'. */
		quote(t, q, sizeof(q));
		if (!*t || parse_allow_entry(t, &cfg->allow[cfg->nallow])) {
			cfg->nallow = 0;
			return set_err(err, errlen,
				       "MIGRDMA_ALLOW: bad entry %s: expected ADDR or ADDR/PREFIX (IPv4 or IPv6)",
				       q);
		}
		cfg->nallow++;
	}
	if (cfg->nallow == 0)
		return set_err(err, errlen, "MIGRDMA_ALLOW: empty list");
	return 0;
}

static bool prefix_match(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, full))
		return false;
	if (!rest)
		return true;
	return ((a[full] ^ b[full]) & (0xff << (8 - rest))) == 0;
}

bool config_allowed(const struct migrdma_config *cfg, const struct sockaddr *addr)
{
	struct in_addr v4;
	const struct in6_addr *v6 = NULL;
	int family;
	size_t i;

	if (!cfg->nallow)
		return true;
	if (!addr)
		return false;
	if (addr->sa_family == AF_INET) {
		family = AF_INET;
		v4 = ((const struct sockaddr_in *)addr)->sin_addr;
	} else if (addr->sa_family == AF_INET6) {
		v6 = &((const struct sockaddr_in6 *)addr)->sin6_addr;
		family = AF_INET6;
		if (IN6_IS_ADDR_V4MAPPED(v6)) {
			family = AF_INET;
			memcpy(&v4, &v6->s6_addr[12], sizeof(v4));
		}
	} else {
		return false;
	}
	for (i = 0; i < cfg->nallow; i++) {
		const struct allow_rule *r = &cfg->allow[i];

		if (r->family != family)
			continue;
		if (family == AF_INET &&
		    prefix_match((const uint8_t *)&r->addr.v4, (const uint8_t *)&v4, r->prefix))
			return true;
		if (family == AF_INET6 &&
		    prefix_match(r->addr.v6.s6_addr, v6->s6_addr, r->prefix))
			return true;
	}
	return false;
}

/* Every variable the library reads, and the wrapper's own (it passes through). */
static const char *const known_names[] = {
	"MIGRDMA_TARGETS", "MIGRDMA_DISABLE", "MIGRDMA_FALLBACK", "MIGRDMA_LOG",
	"MIGRDMA_LOG_FILE", "MIGRDMA_STATS", "MIGRDMA_ZCOPY_MIN", "MIGRDMA_CHUNK",
	"MIGRDMA_PIN_LIMIT", "MIGRDMA_RING", "MIGRDMA_BUSY_POLL_US",
	"MIGRDMA_CONNECT_TIMEOUT_MS", "MIGRDMA_KEEPALIVE", "MIGRDMA_SECRET",
	"MIGRDMA_ALLOW", "MIGRDMA_PIN_ALL", "MIGRDMA_LIVE", "MIGRDMA_LIB",
};

#define NAME_MAX_CMP 48

/*
 * Optimal string alignment distance (Levenshtein plus adjacent swaps), on
 * the stack: this runs in the constructor.  Names longer than NAME_MAX_CMP
 * are compared on their first NAME_MAX_CMP characters.
 */
unsigned config_name_distance(const char *a, const char *b)
{
	unsigned d[NAME_MAX_CMP + 1][NAME_MAX_CMP + 1];
	size_t la = strnlen(a, NAME_MAX_CMP), lb = strnlen(b, NAME_MAX_CMP);
	size_t i, j;

	for (i = 0; i <= la; i++)
		d[i][0] = (unsigned)i;
	for (j = 0; j <= lb; j++)
		d[0][j] = (unsigned)j;
	for (i = 1; i <= la; i++) {
		for (j = 1; j <= lb; j++) {
			unsigned cost = a[i - 1] != b[j - 1];
			unsigned best = d[i - 1][j] + 1;

			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (d[i - 1][j - 1] + cost < best)
				best = d[i - 1][j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	}
	return d[la][lb];
}

int config_unknown_name(const char *entry, char *msg, size_t msglen)
{
	char name[NAME_MAX_CMP + 4], q[QUOTE_MAX];
	const char *eq, *best = NULL;
	unsigned dist, best_dist = ~0U;
	size_t i, len;

	/* MIGRDMA_VM_*: the test VM harness's own (scripts/VM.md). */
	if (!entry || strncmp(entry, "MIGRDMA_", 8) || !strncmp(entry, "MIGRDMA_VM_", 11))
		return 0;
	eq = strchr(entry, '=');
	len = eq ? (size_t)(eq - entry) : strlen(entry);
	if (len >= sizeof(name))
		len = sizeof(name) - 1;
	memcpy(name, entry, len);
	name[len] = '\0';
	for (i = 0; i < sizeof(known_names) / sizeof(known_names[0]); i++) {
		if (strlen(known_names[i]) == (eq ? (size_t)(eq - entry) : strlen(entry)) &&
		    !strncmp(entry, known_names[i], strlen(known_names[i])))
			return 0;
		dist = config_name_distance(name, known_names[i]);
		if (dist < best_dist) {
			best_dist = dist;
			best = known_names[i];
		}
	}
	quote(name, q, sizeof(q));
	/* Beyond a third of the name, a "did you mean" is a guess, not a typo. */
	if (best && best_dist <= 1 + strlen(best) / 4)
		snprintf(msg, msglen, "unknown variable %s is ignored; did you mean %s?", q, best);
	else
		snprintf(msg, msglen, "unknown variable %s is ignored (the variables are listed in migrdma(7))",
			 q);
	return 1;
}
