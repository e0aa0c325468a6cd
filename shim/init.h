/* SPDX-License-Identifier: MIT */
/* Internal to shim/: start-up state shared by its files. */
#ifndef MIGRDMA_SHIM_INIT_H
#define MIGRDMA_SHIM_INIT_H

#include "config.h"

const struct migrdma_config *shim_config(void);

/* Start the transport on first use; 0 or a negative errno. */
int shim_start_transport(void);

/* Protect the transport's fds from the program's close loops. */
void shim_mark_transport_fds(void);

/* In a forked child: make inherited diverted fds fail cleanly. */
void shim_after_fork_child(void);

#endif
