/* SPDX-License-Identifier: MIT */
/*
 * intercept/: the libc entry points migrdma interposes.  Each looks the fd
 * up and hands a diverted one to shim/, or calls the real function.
 * These are the library's only exported symbols (the INTERPOSE lines of
 * common/interposed.def, from which the linker map is generated).
 */
#ifndef MIGRDMA_INTERCEPT_H
#define MIGRDMA_INTERCEPT_H

#include "shim/shim.h"

#define MIGRDMA_EXPORT __attribute__((visibility("default")))

/* A sockaddr pointer from glibc's transparent-union argument types. */
#define SA(arg) ((arg).__sockaddr__)

#endif
