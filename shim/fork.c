// SPDX-License-Identifier: MIT
/*
 * fork() while other threads are inside the library.  The child gets only
 * the forking thread, so a lock another thread held at fork would stay
 * held forever, and re-initialising it instead is undefined behaviour on
 * a lock that may be mid-update.  As cwrap's socket_wrapper does, prepare
 * takes every process-wide lock of the library, in the lock order, so no
 * other thread is inside any of them at fork; parent and child release
 * them.  Per-connection locks are not taken: the child never uses the
 * parent's connections (their fds fail with EBADF there).
 */
#include <pthread.h>

#include "init.h"
#include "rdma/transport.h"

static void prepare(void)
{
	init_atfork_prepare();
	msock_atfork_prepare();
	rt_atfork_prepare();
	divert_atfork_prepare();
}

static void parent(void)
{
	divert_atfork_release();
	rt_atfork_parent();
	msock_atfork_parent();
	init_atfork_parent();
}

static void child(void)
{
	divert_atfork_release();
	rt_atfork_child();
	msock_atfork_child();
	init_atfork_child();
}

static void install(void)
{
	pthread_atfork(prepare, parent, child);
}

void shim_install_fork_handlers(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, install);
}
