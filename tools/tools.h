/* SPDX-License-Identifier: MIT */
/*
 * The migrdma command: one entry point per subcommand, dispatched by
 * tools/migrdma.c.  Each takes the arguments from the subcommand's name on
 * (argv[0] is "doctor", say) and returns the process exit status.
 */
#ifndef MIGRDMA_TOOLS_H
#define MIGRDMA_TOOLS_H

/* Set by tools/CMakeLists.txt; the fallbacks keep a hand compile working. */
#ifndef MIGRDMA_VERSION
#define MIGRDMA_VERSION "unknown"
#endif

/* Exit status for a command line the subcommand cannot make sense of. */
#define EXIT_USAGE 2

int cmd_doctor(int argc, char **argv);
int cmd_stat(int argc, char **argv);

#endif
