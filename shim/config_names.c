// SPDX-License-Identifier: MIT
/* Unknown MIGRDMA_* names, and the nearest known one to suggest. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_util.h"

/* Every variable the library reads, and the wrapper's own (it passes through). */
static const char *const known_names[] = {
	"MIGRDMA_TARGETS", "MIGRDMA_DISABLE", "MIGRDMA_FALLBACK", "MIGRDMA_LOG",
	"MIGRDMA_LOG_FILE", "MIGRDMA_STATS", "MIGRDMA_ZCOPY_MIN", "MIGRDMA_CHUNK",
	"MIGRDMA_PIN_LIMIT", "MIGRDMA_RING", "MIGRDMA_BACKLOG", "MIGRDMA_BUSY_POLL_US",
	"MIGRDMA_CONNECT_TIMEOUT_MS", "MIGRDMA_KEEPALIVE", "MIGRDMA_ACK_TIMEOUT", "MIGRDMA_SECRET",
	"MIGRDMA_ALLOW", "MIGRDMA_PIN_ALL", "MIGRDMA_LIVE", "MIGRDMA_DEFER", "MIGRDMA_LIB",
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
	config_quote(name, q, sizeof(q));
	/* Beyond a third of the name, a "did you mean" is a guess, not a typo. */
	if (best && best_dist <= 1 + strlen(best) / 4)
		snprintf(msg, msglen, "unknown variable %s is ignored; did you mean %s?", q, best);
	else
		snprintf(msg, msglen, "unknown variable %s is ignored (the variables are listed in migrdma(7))",
			 q);
	return 1;
}
