// SPDX-License-Identifier: MIT
/*
 * The service thread: the one place that reads rdma_cm events and
 * completion-channel events, runs timers (connect deadlines, keepalive,
 * close linger) and tears connections down.  A program thread that has to
 * wait sleeps on its connection's completion channel itself when no other
 * thread does (conn_sleep), and on a condition variable otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"
#include "common/log.h"
#include "common/real.h"

struct rt_global rt_g = { .lock = PTHREAD_MUTEX_INITIALIZER, .epoll_fd = -1, .wake_fd = -1 };

/* epoll tags that are not connections. */
static char tag_cm, tag_wake;
static void (*tick_fn)(void *arg);
static void *tick_arg;

void rt_set_tick(void (*fn)(void *arg), void *arg)
{
	tick_arg = arg;
	__atomic_store_n(&tick_fn, fn, __ATOMIC_RELEASE);
}

#define SERVICE_TICK_MS 100

uint64_t rt_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t rt_coarse_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Condition variables here use CLOCK_MONOTONIC (see conn_alloc). */
struct timespec rt_abs_timeout(unsigned ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

int rt_service_watch(int fd, void *ptr)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = ptr };

	return epoll_ctl(rt_g.epoll_fd, EPOLL_CTL_ADD, fd, &ev);
}

void rt_service_unwatch(int fd)
{
	epoll_ctl(rt_g.epoll_fd, EPOLL_CTL_DEL, fd, NULL);
}

void conn_wake_service(void)
{
	uint64_t one = 1;

	if (rt_g.wake_fd < 0)
		return;
	if (REAL(write)(rt_g.wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_debug(0, "service wake-up failed: %m");
}

static void handle_cq_event(struct rt_conn *c)
{
	pthread_mutex_lock(&c->lock);
	/* A program thread asleep on the channel takes the event itself. */
	if (!c->chan_taken && conn_take_cq_event(c) && !c->destroyed) {
		/* Re-armed only if somebody still needs it. */
		conn_progress(c);
		/* Credit came back while no program thread was in a call. */
		tx_backlog_move_on(c);
		pthread_cond_broadcast(&c->cond);
		conn_arm(c);
	}
	pthread_mutex_unlock(&c->lock);
}

static void handle_watch(struct rt_watch *w)
{
	pthread_mutex_lock(&w->lock);
	if (!w->cancelled)
		w->cb(w->arg);
	pthread_mutex_unlock(&w->lock);
}

struct rt_watch *rt_watch_fd(int fd, void (*cb)(void *arg), void *arg)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT };
	struct rt_watch *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->obj.kind = RT_OBJ_WATCH;
	pthread_mutex_init(&w->lock, NULL);
	w->fd = fd;
	w->cb = cb;
	w->arg = arg;
	ev.data.ptr = w;
	if (epoll_ctl(rt_g.epoll_fd, EPOLL_CTL_ADD, fd, &ev)) {
		free(w);
		return NULL;
	}
	return w;
}

void rt_watch_rearm(struct rt_watch *w)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT, .data.ptr = w };

	epoll_ctl(rt_g.epoll_fd, EPOLL_CTL_MOD, w->fd, &ev);
}

void rt_watch_cancel(struct rt_watch *w)
{
	pthread_mutex_lock(&w->lock);
	w->cancelled = true;
	epoll_ctl(rt_g.epoll_fd, EPOLL_CTL_DEL, w->fd, NULL);
	pthread_mutex_unlock(&w->lock);
	/* An event for it may sit in the service thread's current batch. */
	pthread_mutex_lock(&rt_g.lock);
	w->next_zombie = rt_g.watch_zombies;
	rt_g.watch_zombies = w;
	pthread_mutex_unlock(&rt_g.lock);
}

static void free_watch_zombies(void)
{
	struct rt_watch *w, *next;

	pthread_mutex_lock(&rt_g.lock);
	w = rt_g.watch_zombies;
	rt_g.watch_zombies = NULL;
	pthread_mutex_unlock(&rt_g.lock);
	for (; w; w = next) {
		next = w->next_zombie;
		pthread_mutex_destroy(&w->lock);
		free(w);
	}
}

static void handle_cm_events(void)
{
	struct rdma_cm_event *ev;

	while (rdma_get_cm_event(rt_g.cm_chan, &ev) == 0)
		cm_handle_event(ev);
}

static void *service_main(void *arg)
{
	struct epoll_event evs[32];
	uint64_t last_tick = 0;
	sigset_t all;

	(void)arg;
	/* Signals belong to the program's threads, never to ours. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	/* So that top, perf and /proc tell its CPU from the program's. */
	pthread_setname_np(pthread_self(), "migrdma-svc");

	for (;;) {
		bool fast = __atomic_load_n(&rt_g.fast_tick, __ATOMIC_ACQUIRE);
		bool woken = false;
		int n, i;
		uint64_t now;

		conn_free_zombies();
		free_watch_zombies();
		n = epoll_wait(rt_g.epoll_fd, evs, 32, fast ? RT_HOLD_TICK_MS : SERVICE_TICK_MS);
		for (i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;

			if (p == &tag_cm) {
				handle_cm_events();
			} else if (p == &tag_wake) {
				uint64_t v;

				woken = true;
				if (REAL(read)(rt_g.wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
					log_debug(0, "service wake read: %m");
			} else if (((struct rt_obj *)p)->kind == RT_OBJ_WATCH) {
				handle_watch(p);
			} else {
				handle_cq_event(p);
			}
		}
		if (fast || woken) {
			/* Cleared first: see tx_hold_fast. */
			__atomic_store_n(&rt_g.fast_tick, false, __ATOMIC_SEQ_CST);
			if (cm_flush_held())
				__atomic_store_n(&rt_g.fast_tick, true, __ATOMIC_RELEASE);
		}
		now = rt_now_ms();
		if ((n == 0 && !fast) || now - last_tick >= SERVICE_TICK_MS || woken) {
			cm_check_timers(now);
			if (tick_fn)
				tick_fn(tick_arg);
			last_tick = now;
		}
	}
	return NULL;
}

static int set_nonblock(int fd)
{
	int fl = REAL(fcntl)(fd, F_GETFL);

	if (fl < 0)
		return -1;
	return REAL(fcntl)(fd, F_SETFL, fl | O_NONBLOCK);
}

int rt_init(const struct rt_options *opts)
{
	pthread_attr_t attr;
	int ret = 0, err;

	pthread_mutex_lock(&rt_g.lock);
	if (rt_g.initialised) {
		ret = rt_g.init_error;
		goto out;
	}
	rt_g.opts = *opts;
	rt_g.epoll_fd = -1;
	rt_g.wake_fd = -1;
	rt_g.cm_chan = rdma_create_event_channel();
	if (!rt_g.cm_chan) {
		ret = errno == ENOENT || errno == ENOSYS ? -ENODEV : -errno;
		if (!ret)
			ret = -ENODEV;
		/* Start-up is retried on every connect: the caller says it once per address. */
		log_debug(0, "no RDMA available: cannot open the rdma_cm event channel (%s)",
			  strerror(-ret));
		goto fail;
	}
	if (set_nonblock(rt_g.cm_chan->fd))
		goto fail_errno;
	rt_g.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	rt_g.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (rt_g.epoll_fd < 0 || rt_g.wake_fd < 0)
		goto fail_errno;
	if (rt_service_watch(rt_g.cm_chan->fd, &tag_cm) ||
	    rt_service_watch(rt_g.wake_fd, &tag_wake))
		goto fail_errno;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	err = pthread_create(&rt_g.thread, &attr, service_main, NULL);
	pthread_attr_destroy(&attr);
	if (err) {
		errno = err;
		goto fail_errno;
	}
	rt_g.initialised = true;
	goto out;

fail_errno:
	ret = -errno;
	log_error(0, "transport start-up failed: %s", strerror(errno));
fail:
	if (rt_g.wake_fd >= 0)
		REAL(close)(rt_g.wake_fd);
	if (rt_g.epoll_fd >= 0)
		REAL(close)(rt_g.epoll_fd);
	if (rt_g.cm_chan)
		rdma_destroy_event_channel(rt_g.cm_chan);
	rt_g.cm_chan = NULL;
	rt_g.epoll_fd = rt_g.wake_fd = -1;
	/* Failed start-ups are retried: a device may appear later. */
out:
	pthread_mutex_unlock(&rt_g.lock);
	return ret;
}

unsigned rt_reserve_conn_id(void)
{
	unsigned id;

	pthread_mutex_lock(&rt_g.lock);
	id = ++rt_g.next_id;
	pthread_mutex_unlock(&rt_g.lock);
	return id;
}

void rt_for_each_internal_fd(void (*fn)(int fd, void *arg), void *arg)
{
	struct ibv_context **devs;
	struct rt_conn *c;
	int i, n = 0;

	pthread_mutex_lock(&rt_g.lock);
	if (!rt_g.initialised)
		goto out;
	fn(rt_g.epoll_fd, arg);
	fn(rt_g.wake_fd, arg);
	fn(rt_g.cm_chan->fd, arg);
	devs = rdma_get_devices(&n);
	for (i = 0; devs && i < n; i++) {
		fn(devs[i]->cmd_fd, arg);
		fn(devs[i]->async_fd, arg);
	}
	if (devs)
		rdma_free_devices(devs);
	for (c = rt_g.conns; c; c = c->next_all) {
		if (c->chan)
			fn(c->chan->fd, arg);
		if (c->sleep_wake_fd >= 0)
			fn(c->sleep_wake_fd, arg);
	}
out:
	pthread_mutex_unlock(&rt_g.lock);
}

/* Lock order: rt_g.lock, then the registration caches' list. */
void rt_atfork_prepare(void)
{
	pthread_mutex_lock(&rt_g.lock);
	regcache_atfork_prepare();
	defer_atfork_prepare();
}

void rt_atfork_parent(void)
{
	defer_atfork_release();
	regcache_atfork_parent();
	pthread_mutex_unlock(&rt_g.lock);
}

void rt_atfork_child(void)
{
	/*
	 * The child has no service thread and must not touch the parent's
	 * queue pairs: pretend the transport was never started.  Memory is
	 * leaked on purpose; freeing it could unmap pages the parent's device
	 * still writes into (they are shared until exec).  The locks were
	 * taken by this thread before fork, so they are whole and ours.
	 */
	defer_atfork_child();
	regcache_atfork_child();
	rt_g.initialised = false;
	rt_g.conns = NULL;
	rt_g.listeners = NULL;
	rt_g.devices = NULL;
	rt_g.cm_chan = NULL;
	rt_g.epoll_fd = -1;
	rt_g.wake_fd = -1;
	pthread_mutex_unlock(&rt_g.lock);
}
