/* SPDX-License-Identifier: MIT */
/* Internal to shim/: start-up state shared by its files. */
#ifndef MIGRDMA_SHIM_INIT_H
#define MIGRDMA_SHIM_INIT_H

#include <stdbool.h>
#include <sys/socket.h>

#include "config.h"

const struct migrdma_config *shim_config(void);

/* The library's version, as CMake's project() names it. */
const char *shim_version(void);

/*
 * Is addr matched by MIGRDMA_TARGETS while a bad variable makes the library
 * refuse matched sockets (fail closed)?  Then connect/listen fail with EPERM.
 * A NULL addr asks whether the library refuses at all.
 */
bool shim_refusing(const struct sockaddr *addr, socklen_t len);

/* Start the transport on first use; 0 or a negative errno. */
int shim_start_transport(void);

/* Protect the transport's fds from the program's close loops. */
void shim_mark_transport_fds(void);

/*
 * fork (fork.c): each part takes its locks in prepare and releases them in
 * parent and child, in the lock order transport_lock, table_lock, then the
 * transport's (rt_atfork_*), and last divert.c's report lock, a leaf.
 */
void shim_install_fork_handlers(void);
void init_atfork_prepare(void);
void init_atfork_parent(void);
void init_atfork_child(void);
void msock_atfork_prepare(void);
void msock_atfork_parent(void);
void msock_atfork_child(void);
/* divert.c's report lock, a leaf: taken last, released first. */
void divert_atfork_prepare(void);
void divert_atfork_release(void);
/* Is this the first failure to reach addr told (once per address)? */
bool divert_first_report(const struct sockaddr *addr);

#endif
