// SPDX-License-Identifier: MIT
/*
 * migrdma: the command-line companion of libmigrdma.so.
 *
 * main() only dispatches: every subcommand is one row of the table below and
 * one cmd_NAME() function (in its own file) that parses its own options and
 * returns its own exit status.
 */
#include <stdio.h>
#include <string.h>

#include "tools.h"

struct subcommand {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

/* A new subcommand (such as stat) is one more row here. */
static const struct subcommand subcommands[] = {
	{ "doctor", cmd_doctor, "check this host and the MIGRDMA_* configuration" },
	{ "stat", cmd_stat, "show live counters and throughput of diverted connections" },
};

#define NSUBCOMMANDS (sizeof(subcommands) / sizeof(subcommands[0]))

static void usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: migrdma COMMAND [OPTIONS]\n"
		     "       migrdma COMMAND --help\n"
		     "       migrdma --version\n\ncommands:\n");
	for (i = 0; i < NSUBCOMMANDS; i++)
		fprintf(out, "  %-10s %s\n", subcommands[i].name, subcommands[i].summary);
	fprintf(out, "\nSee migrdma(1); the library itself is described in migrdma(7).\n");
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;
	size_t i;

	if (!cmd) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "--version")) {
		printf("migrdma %s\n", MIGRDMA_VERSION);
		return 0;
	}
	for (i = 0; i < NSUBCOMMANDS; i++) {
		if (!strcmp(cmd, subcommands[i].name))
			return subcommands[i].run(argc - 1, argv + 1);
	}
	fprintf(stderr, "migrdma: unknown command '%s'\n", cmd);
	usage(stderr);
	return EXIT_USAGE;
}
