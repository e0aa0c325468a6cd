/* SPDX-License-Identifier: MIT */
/*
 * Configuration read once from the environment at start-up.
 *
 * Every MIGRDMA_* variable is validated; a bad value yields one clear error
 * line (config_load() returns -1).  What the library then does depends on
 * MIGRDMA_TARGETS and MIGRDMA_FALLBACK (see shim/init.c): with rules and no
 * explicit MIGRDMA_FALLBACK=tcp, matched connections are refused.
 */
#ifndef MIGRDMA_SHIM_CONFIG_H
#define MIGRDMA_SHIM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "common/log.h"

enum fallback_mode {
	FALLBACK_NONE = 0,	/* never make a TCP connection for a matched socket */
	FALLBACK_TCP,		/* use plain TCP (with a warning) when RDMA fails */
};

/* One MIGRDMA_TARGETS rule: an address (or any) and an inclusive port range. */
struct target_rule {
	int family;			/* AF_INET, AF_INET6, or AF_UNSPEC for '*' */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} addr;
	uint16_t port_lo;
	uint16_t port_hi;
};

#define CONFIG_MAX_RULES 64
#define CONFIG_MAX_ALLOW 64
#define CONFIG_MAX_SECRET 256

/* One MIGRDMA_ALLOW entry: an address prefix peers may connect from. */
struct allow_rule {
	int family;			/* AF_INET or AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} addr;
	unsigned prefix;		/* bits */
};

/* Which zero-copy writes may return before the device read them (rdma/defer.c). */
enum defer_mode { DEFER_AUTO, DEFER_OFF, DEFER_ALL };

struct migrdma_config {
	bool disabled;			/* MIGRDMA_DISABLE=1 */
	struct target_rule rules[CONFIG_MAX_RULES];
	size_t nrules;			/* MIGRDMA_TARGETS */
	enum fallback_mode fallback;	/* MIGRDMA_FALLBACK=none|tcp */
	enum log_level log_level;	/* MIGRDMA_LOG=error|warn|notice|info|debug */
	char log_file[256];		/* MIGRDMA_LOG_FILE, "" = stderr */
	char stats_file[256];		/* MIGRDMA_STATS, "" = off */
	size_t zcopy_min;		/* MIGRDMA_ZCOPY_MIN, bytes, default 4096 */
	size_t chunk;			/* MIGRDMA_CHUNK, bytes, power of two, default 1 MiB */
	size_t pin_limit;		/* MIGRDMA_PIN_LIMIT, bytes, default 1 GiB */
	size_t ring_size;		/* MIGRDMA_RING, bytes, default 8 MiB */
	size_t backlog;			/* MIGRDMA_BACKLOG, bytes, default 32 MiB; 0: off */
	unsigned busy_poll_us;		/* MIGRDMA_BUSY_POLL_US, default 0, max 10000 */
	unsigned connect_timeout_ms;	/* MIGRDMA_CONNECT_TIMEOUT_MS, default 15000 */
	unsigned keepalive_s;		/* MIGRDMA_KEEPALIVE, seconds, default 10 */
	unsigned ack_timeout;		/* MIGRDMA_ACK_TIMEOUT, 4.096 us << N, default 16; 0: rdma_cm's */
	struct allow_rule allow[CONFIG_MAX_ALLOW];
	size_t nallow;			/* MIGRDMA_ALLOW, empty = any peer */
	char secret[CONFIG_MAX_SECRET];	/* MIGRDMA_SECRET, "" = no authentication */
	size_t secret_len;
	bool pin_all;			/* MIGRDMA_PIN_ALL=1 */
	enum defer_mode defer;		/* MIGRDMA_DEFER=auto|off|all */
	bool live;			/* MIGRDMA_LIVE, default 1: export for migrdma stat */
	unsigned bad_vars;		/* variables that were rejected (the rest still apply) */
};

/*
 * Parse the process environment (via getenv_fn, so tests can inject one).
 * On error writes one message into err (size errlen) naming the first bad
 * variable and the accepted values, and returns -1.  cfg is always fully
 * initialised with defaults first, and every valid variable is applied even
 * when another is bad; cfg->bad_vars counts the bad ones.
 */
int config_load(struct migrdma_config *cfg,
		const char *(*getenv_fn)(const char *name),
		char *err, size_t errlen);

/* Parse a MIGRDMA_TARGETS value into cfg->rules. Returns 0 or -1 with err set. */
int config_parse_targets(struct migrdma_config *cfg, const char *value,
			 char *err, size_t errlen);

/* Parse a MIGRDMA_ALLOW value (comma-separated CIDR prefixes) into cfg->allow. */
int config_parse_allow(struct migrdma_config *cfg, const char *value,
		       char *err, size_t errlen);

/* May a peer at addr connect to our listeners?  True when no MIGRDMA_ALLOW is set. */
bool config_allowed(const struct migrdma_config *cfg, const struct sockaddr *addr);

/*
 * Parse a byte size: a decimal number with an optional K, M, G suffix
 * (powers of 1024, case-insensitive, optional trailing 'B' or 'iB').
 * Returns 0 or -1 on any garbage, overflow, or empty string.
 */
int config_parse_size(const char *value, size_t *out);

/*
 * Does addr (AF_INET or AF_INET6, port in network order inside it) match a
 * rule?  An IPv4-mapped IPv6 address matches IPv4 rules.  A wildcard address
 * (INADDR_ANY / in6addr_any), used by bind(), matches any rule for that port.
 */
bool config_match(const struct migrdma_config *cfg, const struct sockaddr *addr,
		  socklen_t addrlen);

/*
 * entry is one "NAME=value" of the environment.  If NAME starts with
 * MIGRDMA_ but is no variable migrdma knows, write a one-line warning into
 * msg naming it and the nearest known name (when it is close) and return 1;
 * else return 0.
 */
int config_unknown_name(const char *entry, char *msg, size_t msglen);

/* Edit distance (with adjacent swaps) between two names, for suggestions. */
unsigned config_name_distance(const char *a, const char *b);

#endif
