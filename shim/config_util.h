/* SPDX-License-Identifier: MIT */
/* Helpers the configuration's files share (config.c, rules.c, config_names.c). */
#ifndef MIGRDMA_SHIM_CONFIG_UTIL_H
#define MIGRDMA_SHIM_CONFIG_UTIL_H

#include <stddef.h>

/* Quoted values are cut here so a runaway value cannot swamp the message. */
#define QUOTE_MAX 64

/* Format one error message into err (if any); returns -1 for "return config_set_err(...)". */
int config_set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Copy value for quoting in an error message.  Control characters become '?'
 * so the message stays on one line whatever the environment held.
 */
const char *config_quote(const char *value, char *buf, size_t buflen);

/* Decimal digits only: strtoull alone would accept " -1" and "+1".  0 or -1. */
int config_parse_decimal(const char *s, unsigned long long *out, const char **end);

#endif
