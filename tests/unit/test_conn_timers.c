// SPDX-License-Identifier: MIT
/*
 * Unit tests for connection bookkeeping in rdma/conn.c, listener.c and
 * timers.c, on connections that never touch a device: what the service
 * thread's timers may decide before the owner has started the set-up, and
 * tearing a connection down while other threads walk every connection's
 * registrations.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_util.h"

#include "rdma/internal.h"
#include "rdma/regcache.h"

/*
 * Regression: conn_alloc() lists a connection before connect()/accept
 * handling has set its deadline.  The timers used to read the zero
 * deadline as long expired and failed the connection with "no answer
 * within N ms" (and a sticky ETIMEDOUT) while its set-up was still
 * starting; seen in the soak as a warning followed by "established".
 */
static void test_fresh_connection_has_no_deadline(void **state)
{
	struct rt_conn *c;
	uint64_t now = rt_now_ms();

	(void)state;
	c = conn_alloc(false);
	assert_non_null(c);
	cm_check_timers(now);
	cm_check_timers(now + 3600 * 1000);
	assert_int_not_equal(c->state, CS_FAILED);
	assert_int_equal(c->error, 0);
	assert_int_equal(c->sticky_error, 0);
	assert_string_equal(c->end_reason, "close");
	assert_false(c->destroyed);

	/* Once the set-up has started, its deadline applies. */
	pthread_mutex_lock(&c->lock);
	c->deadline_ms = now + 1000;
	pthread_mutex_unlock(&c->lock);
	cm_check_timers(now + 500);
	assert_int_not_equal(c->state, CS_FAILED);
	cm_check_timers(now + 1001);
	assert_int_equal(c->state, CS_FAILED);
	assert_int_equal(c->sticky_error, ETIMEDOUT);

	/* Without an owner a failed connection is torn down and freed. */
	pthread_mutex_lock(&c->lock);
	c->owner_gone = true;
	pthread_mutex_unlock(&c->lock);
	cm_check_timers(now + 1002);
	conn_free_zombies();
	pthread_mutex_lock(&rt_g.lock);
	assert_null(rt_g.conns);
	pthread_mutex_unlock(&rt_g.lock);
}

static int accept_ticks;

/* The listener's notify runs inside rt_accept() after it took the
 * connection off the queue and before it locks the connection: stand in
 * for the service thread's timer tick landing right there. */
static void tick_inside_accept(void *arg, unsigned events)
{
	struct rt_listener *l = arg;

	(void)events;
	if (l->npending == 0 && !accept_ticks++)
		cm_check_timers(rt_now_ms());
}

/*
 * Regression: a queued connection that failed with unread bytes is kept for
 * accept().  The timers treated any failed server connection off the queue
 * as ownerless, so a tick between rt_accept()'s dequeue and its taking the
 * connection's lock destroyed the connection accept() was returning.
 */
static void test_accept_races_timers(void **state)
{
	struct rt_listener *l = calloc(1, sizeof(*l));
	struct rt_conn *c, *got = NULL;

	(void)state;
	assert_non_null(l);
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->cond, NULL);
	l->backlog = 4;
	c = conn_alloc(true);
	assert_non_null(c);
	pthread_mutex_lock(&c->lock);
	c->listener = l;
	c->state = CS_FAILED;
	c->error = c->sticky_error = ECONNRESET;
	c->rx_ready = 100;		/* bytes the program must still read */
	c->queued = c->was_queued = true;
	l->pending_head = l->pending_tail = c;
	l->npending = 1;
	pthread_mutex_unlock(&c->lock);

	cm_check_timers(rt_now_ms());
	assert_true(c->queued);		/* unread bytes: not dropped */
	assert_false(c->owner_gone);

	l->notify = tick_inside_accept;
	l->notify_arg = l;
	l->last_events = RT_EV_READABLE;
	assert_int_equal(rt_accept(l, true, NULL, NULL, &got), 0);
	assert_int_equal(accept_ticks, 1);
	assert_ptr_equal(got, c);
	assert_false(c->owner_gone);
	assert_false(c->destroyed);
	assert_null(c->listener);

	/* The program closes it: now it goes. */
	pthread_mutex_lock(&c->lock);
	c->owner_gone = true;
	pthread_mutex_unlock(&c->lock);
	cm_check_timers(rt_now_ms());
	conn_free_zombies();
	pthread_mutex_lock(&rt_g.lock);
	assert_null(rt_g.conns);
	pthread_mutex_unlock(&rt_g.lock);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->cond);
	free(l);
}


static bool walkers_stop;

/* What the munmap hook and every stats line do: walk all the caches. */
static void *walk_registrations(void *arg)
{
	static char page[4096] __attribute__((aligned(4096)));
	size_t now, peak;

	(void)arg;
	while (!__atomic_load_n(&walkers_stop, __ATOMIC_ACQUIRE)) {
		rt_devices_pinned(&now, &peak);
		rt_invalidate_memory(page, sizeof(page));
	}
	return NULL;
}

/*
 * Regression: conn_destroy() freed a connection's registration cache while
 * it was still listed in rt_g.conns, so a thread in the munmap hook or
 * writing a stats line could lock freed memory (QEMU's main thread hung in
 * regcache_get_stats at the end of a multifd migration).  Under ASan this
 * fails with a heap-use-after-free report on the old code.
 */
static void test_destroy_while_walking(void **state)
{
	struct regcache_backend be = { fake_reg, fake_dereg, NULL };
	static char buf[4096] __attribute__((aligned(4096)));
	bool was_init = rt_g.initialised;
	pthread_t walker[2];
	int i, round;

	(void)state;
	rt_g.initialised = true;	/* the munmap hook's entry test */
	__atomic_store_n(&walkers_stop, false, __ATOMIC_RELEASE);
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&walker[i], NULL, walk_registrations, NULL), 0);
	for (round = 0; round < 2000; round++) {
		struct rt_conn *c = conn_alloc(false);
		struct regcache_ref ref;
		struct regcache *rc;
		int registered;

		assert_non_null(c);
		rc = regcache_create(&be, 1 << 20, 8 << 20);
		assert_non_null(rc);
		assert_int_equal(regcache_get(rc, buf, 4096, &ref, &registered), 0);
		regcache_put(rc, ref.entry);
		pthread_mutex_lock(&rt_g.lock);
		c->regcache = rc;
		pthread_mutex_unlock(&rt_g.lock);
		conn_destroy(c);
		conn_free_zombies();
	}
	__atomic_store_n(&walkers_stop, true, __ATOMIC_RELEASE);
	for (i = 0; i < 2; i++)
		pthread_join(walker[i], NULL);
	rt_g.initialised = was_init;
	pthread_mutex_lock(&rt_g.lock);
	assert_null(rt_g.conns);
	pthread_mutex_unlock(&rt_g.lock);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fresh_connection_has_no_deadline),
		cmocka_unit_test(test_destroy_while_walking),
		cmocka_unit_test(test_accept_races_timers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
