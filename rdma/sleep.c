// SPDX-License-Identifier: MIT
/*
 * How a program thread waits on a connection: poll the completion queue
 * (MIGRDMA_BUSY_POLL_US), then sleep.  The first thread to sleep sleeps
 * on the connection's completion channel itself, so a completion wakes it
 * directly rather than through the service thread; any others wait on the
 * condition variable, which every change they care about broadcasts.
 */
#include <errno.h>
#include <poll.h>
#include <time.h>

#include "internal.h"
#include "common/log.h"
#include "common/real.h"

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/*
 * MIGRDMA_BUSY_POLL_US: poll the completion queue for up to that long
 * before paying for a sleep and a wake-up.  The lock is dropped between
 * polls so other threads can post meanwhile.  True if anything completed.
 */
static bool spin_for_progress(struct rt_conn *c)
{
	uint64_t until;
	unsigned i;

	if (!rt_g.opts.busy_poll_us)
		return false;
	until = now_us() + rt_g.opts.busy_poll_us;
	for (i = 1;; i++) {
		if (conn_progress(c))
			return true;
		pthread_mutex_unlock(&c->lock);
		for (unsigned k = 0; k < 32; k++)
			__builtin_ia32_pause();
		pthread_mutex_lock(&c->lock);
		/* Reading the clock may be a system call: not on every turn. */
		if (i % 16 == 0 && now_us() >= until)
			return false;
	}
}

/*
 * Sleep on the connection's completion channel instead of waiting for the
 * service thread to see the event and wake us: one wake-up instead of two.
 * The service thread stops watching the channel meanwhile, and whatever
 * this thread reaps it passes on to threads waiting on the condition
 * variable.  Lock held, released while asleep.
 */
static void sleep_on_channel(struct rt_conn *c, unsigned ms)
{
	struct pollfd p[2] = {
		{ .fd = c->chan->fd, .events = POLLIN },
		{ .fd = c->sleep_wake_fd, .events = POLLIN },
	};
	uint64_t v;

	c->chan_taken = true;
	rt_service_unwatch(c->chan->fd);
	pthread_mutex_unlock(&c->lock);
	REAL(poll)(p, 2, (int)ms);
	pthread_mutex_lock(&c->lock);
	/*
	 * Drained whether or not poll saw it: a waker may have written after
	 * poll returned, while chan_taken was still set.
	 */
	if (REAL(read)(c->sleep_wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_debug(c->id, "reading the sleeper's wake-up: %m");
	conn_take_cq_event(c);
	c->chan_taken = false;
	if (!c->destroyed && rt_service_watch(c->chan->fd, c))
		log_error(c->id, "cannot watch the completion channel again: %m");
	conn_progress(c);
	/* What the service thread would have done with the event. */
	tx_backlog_move_on(c);
	pthread_cond_broadcast(&c->cond);
}

void conn_wake_waiters(struct rt_conn *c)
{
	uint64_t one = 1;

	c->wake_gen++;
	pthread_cond_broadcast(&c->cond);
	if (c->chan_taken && REAL(write)(c->sleep_wake_fd, &one, sizeof(one)) < 0)
		log_debug(c->id, "waking the sleeper: %m");
}

static bool chan_sleep_ok(const struct rt_conn *c)
{
	bool up = c->state == CS_ESTABLISHED || c->state == CS_DISCONNECTED;

	return up && c->chan && c->sleep_wake_fd >= 0 && !c->chan_taken && !c->destroyed;
}

bool conn_sleep(struct rt_conn *c, uint64_t deadline_ms, enum conn_wait_for what)
{
	unsigned *count = what == WAIT_SENDS ? &c->sleepers_any :
			  what == WAIT_CREDIT ? &c->sleepers_credit : &c->sleepers;
	unsigned gen = c->wake_gen, ms = 1000;
	struct timespec ts;
	bool reaped;

	/* Counted while spinning too: a writer must not hold bytes a reader waits on. */
	(*count)++;
	/*
	 * The spin drops the lock: a wake-up, or a completion another thread
	 * reaped, may have come meanwhile (both move wake_gen).
	 */
	if (spin_for_progress(c) || c->wake_gen != gen) {
		(*count)--;
		return true;
	}
	if (deadline_ms) {
		uint64_t now = rt_now_ms();

		if (now >= deadline_ms) {
			(*count)--;
			return false;
		}
		if (deadline_ms - now < ms)
			ms = (unsigned)(deadline_ms - now);
	}
	reaped = conn_arm(c);
	/*
	 * Either sleep is bounded, so a lost wake-up costs a second, never a
	 * hang.  The channel only once established: until then the set-up may
	 * still be creating it and the queue, without the lock.
	 */
	if (!reaped && chan_sleep_ok(c)) {
		sleep_on_channel(c, ms);
		(*count)--;
		/* The event used the request up: re-armed if others still wait. */
		conn_arm(c);
		return true;
	}
	if (!reaped) {
		ts = rt_abs_timeout(ms);
		pthread_cond_timedwait(&c->cond, &c->lock, &ts);
	}
	(*count)--;
	return true;
}

void conn_wait(struct rt_conn *c)
{
	struct timespec ts = rt_abs_timeout(1000);

	pthread_cond_timedwait(&c->cond, &c->lock, &ts);
}
