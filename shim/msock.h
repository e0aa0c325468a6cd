/* SPDX-License-Identifier: MIT */
/*
 * Internal to shim/: the diverted socket behind a program's fd.  msock.c
 * has its life and its I/O and options, msock_fd.c the fds that map to it,
 * divert.c the connect/listen/accept that create one.
 */
#ifndef MIGRDMA_SHIM_MSOCK_H
#define MIGRDMA_SHIM_MSOCK_H

#include <stdbool.h>
#include <sys/socket.h>
#include <time.h>

#include "doorbell.h"

struct msock {
	int refs;			/* atomic: one per fd mapping, one per call in flight */
	int fd_refs;			/* atomic: fd mappings */
	bool is_listener;
	int domain;
	bool nonblock;			/* atomic: O_NONBLOCK of the program's fd */
	bool forked_away;		/* inherited by a child: unusable */
	int rcv_timeout_ms;		/* atomic: SO_RCVTIMEO, -1 = none */
	int snd_timeout_ms;		/* atomic: SO_SNDTIMEO, -1 = none */
	struct doorbell db;
	int shadow_fd;			/* TCP socket for options; holds a listener's port */
	struct rt_conn *conn;
	struct rt_listener *lst;
	bool tcp_listening;		/* MIGRDMA_FALLBACK=tcp: the shadow listens too */
	struct rt_watch *tcp_watch;
	struct sockaddr_storage local;	/* a listener's bound address */
	struct timespec t_start;
	const char *role;
};

struct msock *msock_new(bool listener, int domain, const char *role);
/* The transport's readiness callback: rings ms's doorbell. */
void msock_notify(void *arg, unsigned events);
/* fd now stands for ms (a reference is taken). */
void msock_install(int fd, struct msock *ms);
/* TCP_NODELAY as the program last set it (kept on the shadow socket). */
bool msock_nodelay(const struct msock *ms);
/* A peer or local address into the program's (addr, len), truncated like the kernel's. */
void msock_copy_addr(const struct sockaddr_storage *ss, struct sockaddr *addr, socklen_t *len);

#endif
