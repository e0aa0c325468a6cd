// SPDX-License-Identifier: MIT
/*
 * Which program fds stand for which diverted socket: references taken
 * from the fd table, close, the dup family, close_range, and fork.
 */
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include "init.h"
#include "msock.h"
#include "rdma/transport.h"
#include "shim.h"
#include "tcptrack.h"

/*
 * Readers take it shared to turn a table entry into a reference; close
 * takes it exclusive to remove the entry, so a reference is never taken
 * on a socket being freed.
 */
static pthread_rwlock_t table_lock = PTHREAD_RWLOCK_INITIALIZER;

struct msock *shim_get(int fd)
{
	void *p = fdtable_get(fd);
	struct msock *ms;

	/* The passthrough path: one lock-free load for every fd we don't own. */
	if (!p || tcp_track_is(p))
		return NULL;
	pthread_rwlock_rdlock(&table_lock);
	p = fdtable_get(fd);
	ms = p && !tcp_track_is(p) ? p : NULL;
	if (ms)
		__atomic_add_fetch(&ms->refs, 1, __ATOMIC_ACQ_REL);
	pthread_rwlock_unlock(&table_lock);
	return ms;
}

void msock_install(int fd, struct msock *ms)
{
	void *old;

	__atomic_add_fetch(&ms->refs, 1, __ATOMIC_ACQ_REL);
	__atomic_add_fetch(&ms->fd_refs, 1, __ATOMIC_ACQ_REL);
	pthread_rwlock_wrlock(&table_lock);
	old = fdtable_set(fd, ms);
	pthread_rwlock_unlock(&table_lock);
	if (old && tcp_track_is(old)) {
		tcp_track_forget(old);
	} else if (old && old != ms) {
		/* The fd number was reused behind our back (a close we did not see). */
		__atomic_sub_fetch(&((struct msock *)old)->fd_refs, 1, __ATOMIC_ACQ_REL);
		shim_put(old);
	}
}

/* The last fd of ms is gone: wake anyone still blocked in it. */
static void last_fd_closed(struct msock *ms)
{
	if (ms->forked_away)
		return;
	if (ms->conn && __atomic_load_n(&ms->refs, __ATOMIC_ACQUIRE) > 1)
		rt_shutdown(ms->conn, SHUT_RDWR);
	if (ms->lst)
		rt_listener_shutdown(ms->lst);
}

static void uninstall(int fd)
{
	struct msock *ms;
	void *p;

	pthread_rwlock_wrlock(&table_lock);
	p = fdtable_set(fd, NULL);
	pthread_rwlock_unlock(&table_lock);
	if (!p)
		return;
	if (tcp_track_is(p)) {
		tcp_track_closed(fd, p);
		return;
	}
	ms = p;
	if (__atomic_sub_fetch(&ms->fd_refs, 1, __ATOMIC_ACQ_REL) == 0)
		last_fd_closed(ms);
	shim_put(ms);
}

int shim_close(int fd)
{
	int ret, err;

	/* Forget the mapping before the number can be reused. */
	uninstall(fd);
	ret = REAL(close)(fd);
	err = errno;
	errno = err;
	return ret;
}

void shim_dup_done(int oldfd, int newfd)
{
	struct msock *ms;

	if (newfd == oldfd)
		return;
	uninstall(newfd);
	ms = shim_get(oldfd);
	if (!ms)
		return;
	msock_install(newfd, ms);
	shim_put(ms);
}

int shim_close_range(unsigned first, unsigned last, int flags)
{
	unsigned cur = first;
	int fd, top, ret = 0;

	if (first > last) {
		errno = EINVAL;
		return -1;
	}
	/* Nothing we track lives that high: the kernel can have the whole range. */
	if (flags & CLOSE_RANGE_CLOEXEC || first >= FDTABLE_MAX_FD)
		return REAL(close_range)(first, last, flags);
	top = last >= FDTABLE_MAX_FD ? FDTABLE_MAX_FD - 1 : (int)last;
	/* Diverted fds need our close; internal ones must survive. */
	for (fd = fdtable_next((int)first, top, false); fd >= 0;
	     fd = fdtable_next(fd + 1, top, false))
		uninstall(fd);
	for (fd = fdtable_next((int)first, top, true); fd >= 0;
	     fd = fdtable_next(fd + 1, top, true)) {
		if ((unsigned)fd > cur && REAL(close_range)(cur, (unsigned)fd - 1, flags))
			ret = -1;
		cur = (unsigned)fd + 1;
	}
	if (cur <= last && cur >= first && REAL(close_range)(cur, last, flags))
		ret = -1;
	return ret;
}

void msock_atfork_prepare(void)
{
	pthread_rwlock_wrlock(&table_lock);
}

void msock_atfork_parent(void)
{
	pthread_rwlock_unlock(&table_lock);
}

/* Inherited diverted fds fail cleanly from now on (see forked_away). */
void msock_atfork_child(void)
{
	int fd;

	for (fd = fdtable_next(0, FDTABLE_MAX_FD - 1, false); fd >= 0;
	     fd = fdtable_next(fd + 1, FDTABLE_MAX_FD - 1, false)) {
		void *p = fdtable_get(fd);

		/* A plain TCP connection is the parent's to report. */
		if (p && tcp_track_is(p)) {
			fdtable_set(fd, NULL);
			tcp_track_forget(p);
		} else if (p) {
			((struct msock *)p)->forked_away = true;
		}
	}
	/*
	 * glibc's rwlock remembers its writer by thread id, and the child's
	 * thread has a new one: an unlock here would count as a reader's.
	 * Re-initialising is sound only because prepare holds the lock, so
	 * no other thread was inside it at fork.
	 */
	pthread_rwlock_init(&table_lock, NULL);
}
