// SPDX-License-Identifier: MIT
/*
 * MIGRDMA_TARGETS and MIGRDMA_ALLOW: parsing the rules and matching
 * addresses against them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_util.h"

/* Longest rule we accept: a full IPv6 address in brackets and a port range. */
#define RULE_MAX 96

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
			return config_set_err(err, errlen, "MIGRDMA_TARGETS: more than %d rules",
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
	return config_set_err(err, errlen, "MIGRDMA_TARGETS: rule \"%s\": %s",
		       config_quote(rule, q, sizeof(q)), why);
bad_value:
	cfg->nrules = 0;
	return config_set_err(err, errlen, "MIGRDMA_TARGETS=\"%s\": %s",
		       config_quote(value, q, sizeof(q)), why);
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
		if (config_parse_decimal(slash + 1, &prefix, &end) || *end || prefix > max)
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
		return config_set_err(err, errlen, "MIGRDMA_ALLOW: longer than %zu characters",
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
			return config_set_err(err, errlen, "MIGRDMA_ALLOW: more than %d entries",
				       CONFIG_MAX_ALLOW);
		}
		/* Quoted from a copy: parsing cuts the entry at its '/'. */
		config_quote(t, q, sizeof(q));
		if (!*t || parse_allow_entry(t, &cfg->allow[cfg->nallow])) {
			cfg->nallow = 0;
			return config_set_err(err, errlen,
				       "MIGRDMA_ALLOW: bad entry %s: expected ADDR or ADDR/PREFIX (IPv4 or IPv6)",
				       q);
		}
		cfg->nallow++;
	}
	if (cfg->nallow == 0)
		return config_set_err(err, errlen, "MIGRDMA_ALLOW: empty list");
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
