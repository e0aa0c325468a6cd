/* SPDX-License-Identifier: MIT */
/*
 * What shim/ offers the interposers in intercept/: start-up, the decision
 * whether a socket is diverted, and socket operations on diverted fds.
 *
 * Every shim_* call on a diverted fd follows libc conventions: it returns
 * what the libc function would and sets errno on failure.  Passthrough is
 * the interposer's job (real.h); shim_get() is lock-free and returns NULL
 * for every fd migrdma does not own.
 */
#ifndef MIGRDMA_SHIM_SHIM_H
#define MIGRDMA_SHIM_SHIM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "fdtable.h"
#include "common/real.h"

struct msock;

/* Initialise once (thread-safe, re-entrancy-safe); true if the library is active. */
bool shim_active(void);

/* The diverted socket at fd with a reference taken, or NULL.  Cheap when NULL. */
struct msock *shim_get(int fd);
void shim_put(struct msock *ms);

/*
 * connect()/listen() on a socket that may match MIGRDMA_TARGETS.  Sets
 * *handled to false when the call is not ours (the interposer then calls
 * libc); otherwise returns the result.
 */
int shim_connect(int fd, const struct sockaddr *addr, socklen_t len, bool *handled);
int shim_listen(int fd, int backlog, bool *handled);

int shim_connect_again(struct msock *ms);
int shim_accept(struct msock *ms, struct sockaddr *addr, socklen_t *addrlen, int flags);
ssize_t shim_send(struct msock *ms, const struct iovec *iov, int iovcnt, int flags);
ssize_t shim_recv(struct msock *ms, const struct iovec *iov, int iovcnt, int flags);
int shim_shutdown(struct msock *ms, int how);
int shim_getsockopt(struct msock *ms, int level, int name, void *val, socklen_t *len);
int shim_setsockopt(struct msock *ms, int level, int name, const void *val, socklen_t len);
int shim_getsockname(struct msock *ms, struct sockaddr *addr, socklen_t *len);
int shim_getpeername(struct msock *ms, struct sockaddr *addr, socklen_t *len);
int shim_fionread(struct msock *ms, int *out);
/* The program changed O_NONBLOCK on the fd (already applied to the kernel fd). */
void shim_set_nonblock(struct msock *ms, bool nonblock);

/* close() of a diverted fd: forget it, close it, tear down on the last one. */
int shim_close(int fd);

/* newfd now refers to the same socket as oldfd (dup family); newfd's old mapping is dropped. */
void shim_dup_done(int oldfd, int newfd);

/* close_range()/closefrom() that never close migrdma's internal fds. */
int shim_close_range(unsigned first, unsigned last, int flags);

/* The program unmapped, remapped or discarded memory. */
void shim_memory_changed(const void *addr, size_t len);
/* munmap/mremap: also forgets the memory's madvise advice. */
void shim_memory_unmapped(const void *addr, size_t len);
void shim_memory_advised(const void *addr, size_t len, int advice);
/*
 * The file behind fd lost [offset, offset+len) (hole punched, truncated):
 * drop registrations over the program's mappings of it.  Keeps errno.
 */
void shim_file_changed(int fd, uint64_t offset, uint64_t len);
/* The program mapped, unmapped or moved memory (filemaps.c's cache). */
void shim_maps_changed(void);
/* fd's size when it is a regular file and memory is registered, else -1. */
int64_t shim_file_size(int fd);

/* Trace a call on a diverted fd at debug level. */
void shim_trace(struct msock *ms, const char *call, long ret);

#endif
