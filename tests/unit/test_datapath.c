// SPDX-License-Identifier: MIT
/*
 * Unit tests for the data path's bookkeeping that needs no device: which
 * memory a write may leave in flight (rdma/defer.c), how long a waiter
 * busy-polls (MIGRDMA_BUSY_POLL_US), how a thread asleep on the completion
 * channel is woken, when completion events are asked for, and which
 * writes may be held back for the next one to join.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "rdma/internal.h"
#include "rdma/regcache.h"

#define MIB (1024ul * 1024)

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static const void *at(uintptr_t a)
{
	return (const void *)a;
}

static void test_defer_follows_dontfork(void **state)
{
	uintptr_t base = 0x10000000;

	(void)state;
	rt_g.opts.defer = RT_DEFER_AUTO;
	assert_false(defer_allowed(at(base), 4096));

	rt_note_advice(at(base), 8 * MIB, MADV_DONTFORK);
	assert_true(defer_allowed(at(base), 4096));
	assert_true(defer_allowed(at(base + 8 * MIB - 4096), 4096));
	/* Straddling the end is not covered. */
	assert_false(defer_allowed(at(base + 8 * MIB - 4096), 8192));
	assert_false(defer_allowed(at(base - 4096), 4096));

	/* Other advice changes nothing. */
	rt_note_advice(at(base), 8 * MIB, MADV_HUGEPAGE);
	assert_true(defer_allowed(at(base + MIB), 4096));

	/* MADV_DOFORK in the middle splits the range. */
	rt_note_advice(at(base + 2 * MIB), MIB, MADV_DOFORK);
	assert_true(defer_allowed(at(base + MIB), 4096));
	assert_false(defer_allowed(at(base + 2 * MIB), 4096));
	assert_true(defer_allowed(at(base + 3 * MIB), 4096));

	/* Unmapped memory forgets its advice, so a new mapping there starts plain. */
	rt_forget_memory(at(base), 8 * MIB);
	assert_false(defer_allowed(at(base + MIB), 4096));
	assert_false(defer_allowed(at(base + 3 * MIB), 4096));
}

static void test_defer_modes(void **state)
{
	uintptr_t base = 0x20000000;

	(void)state;
	rt_note_advice(at(base), MIB, MADV_DONTFORK);
	rt_g.opts.defer = RT_DEFER_OFF;
	assert_false(defer_allowed(at(base), 4096));
	rt_g.opts.defer = RT_DEFER_ALL;
	assert_true(defer_allowed(at(base + 4 * MIB), 4096));
	rt_g.opts.defer = RT_DEFER_AUTO;
	assert_true(defer_allowed(at(base), 4096));
	rt_forget_memory(at(base), MIB);
}

/* A registration backend that marks the memory MADV_DONTFORK, as libibverbs does for fork safety. */
static void *dontfork_reg(void *ctx, void *addr, size_t len, uint32_t *lkey)
{
	(void)ctx;
	rt_note_advice(addr, len, MADV_DONTFORK);
	*lkey = 1;
	return addr;
}

static void nop_dereg(void *ctx, void *handle)
{
	(void)ctx;
	(void)handle;
}

/* libibverbs marks memory it registers MADV_DONTFORK itself (fork safety): not the program's opt-in. */
static void test_defer_ignores_verbs_advice(void **state)
{
	struct regcache_backend backend = { dontfork_reg, nop_dereg, NULL };
	void *base = (void *)0x30000000;
	struct regcache_ref ref;
	struct regcache *rc;
	int registered;

	(void)state;
	rt_g.opts.defer = RT_DEFER_AUTO;
	rc = regcache_create(&backend, MIB, 16 * MIB);
	assert_non_null(rc);
	assert_int_equal(regcache_get(rc, base, 4096, &ref, &registered), 0);
	assert_int_equal(registered, 1);
	regcache_put(rc, ref.entry);
	assert_false(defer_allowed(base, 4096));
	/* The same advice from the program itself counts. */
	rt_note_advice(base, MIB, MADV_DONTFORK);
	assert_true(defer_allowed(base, 4096));
	rt_forget_memory(base, MIB);
	regcache_destroy(rc);
}

/*
 * Regression: the busy-poll deadline was built from the millisecond clock
 * times 1000 and compared with microseconds, so MIGRDMA_BUSY_POLL_US=200
 * spun for 200 us only when called in the first 200 us of a millisecond,
 * and otherwise polled once.  Now it spins for the whole budget.
 */
static void test_busy_poll_spins_its_budget(void **state)
{
	struct rt_conn *c;
	int i;

	(void)state;
	c = conn_alloc(false);
	assert_non_null(c);
	rt_g.opts.busy_poll_us = 300;
	pthread_mutex_lock(&c->lock);
	for (i = 0; i < 20; i++) {
		uint64_t t0 = mono_us();

		/* No device: nothing completes; the deadline has passed once the spin ends. */
		assert_false(conn_sleep(c, rt_now_ms(), WAIT_MESSAGE));
		assert_true(mono_us() - t0 >= 250);
	}
	pthread_mutex_unlock(&c->lock);
	rt_g.opts.busy_poll_us = 0;
	pthread_mutex_lock(&c->lock);
	c->owner_gone = true;
	pthread_mutex_unlock(&c->lock);
	cm_check_timers(rt_now_ms() + 3600 * 1000);
	conn_free_zombies();
}

static struct rt_conn *established_conn(void)
{
	struct rt_conn *c = conn_alloc(false);

	assert_non_null(c);
	c->state = CS_ESTABLISHED;
	return c;
}

static void free_conn(struct rt_conn *c)
{
	pthread_mutex_lock(&c->lock);
	c->state = CS_FAILED;
	c->owner_gone = true;
	pthread_mutex_unlock(&c->lock);
	cm_check_timers(rt_now_ms() + 3600 * 1000);
	conn_free_zombies();
}

/*
 * A thread asleep on its connection's completion channel (rdma/sleep.c)
 * does not see condition-variable broadcasts.  What is not a completion
 * (the connection failing, a close or shutdown by another thread, an
 * rdma_cm event) must still wake it at once, not when its one-second
 * bound runs out.  Stand-ins for the channel: an eventfd nobody writes.
 */
struct sleeper {
	struct rt_conn *c;
	uint64_t slept_us;
	bool returned;
};

static void *sleep_once(void *arg)
{
	struct sleeper *s = arg;
	uint64_t t0 = mono_us();

	pthread_mutex_lock(&s->c->lock);
	s->returned = conn_sleep(s->c, 0, WAIT_SENDS);
	pthread_mutex_unlock(&s->c->lock);
	s->slept_us = mono_us() - t0;
	return NULL;
}

/* An established connection whose completion channel is chan (an eventfd). */
static struct rt_conn *channel_conn(struct ibv_comp_channel *chan)
{
	struct rt_conn *c = established_conn();

	chan->fd = eventfd(0, EFD_NONBLOCK);
	assert_true(chan->fd >= 0);
	c->chan = chan;
	c->sleep_wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(c->sleep_wake_fd >= 0);
	return c;
}

static void free_channel_conn(struct rt_conn *c)
{
	close(c->chan->fd);
	c->chan = NULL;		/* not a real channel: conn_destroy must not destroy it */
	free_conn(c);
}

static void fail_locked(struct rt_conn *c)
{
	pthread_mutex_lock(&c->lock);
	conn_fail(c, ECONNRESET, "the test fails it");
	pthread_mutex_unlock(&c->lock);
}

static void test_channel_sleeper_woken_by_failure(void **state)
{
	struct ibv_comp_channel chan = { 0 };
	struct rt_conn *c = channel_conn(&chan);
	struct sleeper s = { .c = c };
	pthread_t t;
	bool taken = false;
	int i;

	(void)state;
	assert_int_equal(pthread_create(&t, NULL, sleep_once, &s), 0);
	/* Wait until it has taken the channel, then fail the connection. */
	for (i = 0; i < 500 && !taken; i++) {
		usleep(1000);
		pthread_mutex_lock(&c->lock);
		taken = c->chan_taken;
		pthread_mutex_unlock(&c->lock);
	}
	assert_true(taken);
	fail_locked(c);
	pthread_join(t, NULL);
	assert_true(s.returned);
	assert_true(s.slept_us < 500 * 1000);
	assert_false(c->chan_taken);
	free_channel_conn(c);
}

/*
 * Regression: with MIGRDMA_BUSY_POLL_US the sleeper spins with the lock
 * dropped, and a failure that came meanwhile found nobody to wake: the
 * sleeper then slept on the channel for its whole one-second bound.
 */
static void test_wake_during_spin_not_lost(void **state)
{
	struct ibv_comp_channel chan = { 0 };
	struct rt_conn *c = channel_conn(&chan);
	struct sleeper s = { .c = c };
	pthread_t t;

	(void)state;
	rt_g.opts.busy_poll_us = 300 * 1000;
	assert_int_equal(pthread_create(&t, NULL, sleep_once, &s), 0);
	usleep(50 * 1000);	/* well inside the spin */
	fail_locked(c);
	pthread_join(t, NULL);
	rt_g.opts.busy_poll_us = 0;
	assert_true(s.returned);
	assert_true(s.slept_us < 800 * 1000);
	free_channel_conn(c);
}

static struct ibv_wc spin_wc[1];
static int spin_nwc;

static int spin_poll_cq(struct ibv_cq *cq, int n, struct ibv_wc *wc)
{
	int k = spin_nwc < n ? spin_nwc : n;

	(void)cq;
	memcpy(wc, spin_wc, sizeof(*wc) * (size_t)k);
	spin_nwc -= k;
	return k;
}

static int spin_req_notify(struct ibv_cq *cq, int solicited_only)
{
	(void)cq;
	(void)solicited_only;
	return 0;
}

static void *read_wait(void *arg)
{
	struct sleeper *s = arg;
	uint64_t t0 = mono_us();

	pthread_mutex_lock(&s->c->lock);
	while (!s->c->rx_ready)
		conn_sleep(s->c, 0, WAIT_MESSAGE);
	pthread_mutex_unlock(&s->c->lock);
	s->slept_us = mono_us() - t0;
	return NULL;
}

/*
 * A reader spinning (MIGRDMA_BUSY_POLL_US) drops the lock between polls.
 * When another thread (a writer, the service thread) reaped the reader's
 * message meanwhile, the reader's own polls found nothing, and it went to
 * sleep for its whole one-second bound with the bytes already there.
 */
static void test_reap_by_another_during_spin(void **state)
{
	static struct ibv_context ctx;
	static struct ibv_cq cq;
	struct rt_conn *c = established_conn();
	struct sleeper s = { .c = c };
	pthread_t t;

	(void)state;
	ctx.ops.poll_cq = spin_poll_cq;
	ctx.ops.req_notify_cq = spin_req_notify;
	cq.context = &ctx;
	c->cq = &cq;
	rt_g.opts.busy_poll_us = 100 * 1000;
	assert_int_equal(pthread_create(&t, NULL, read_wait, &s), 0);
	usleep(20 * 1000);	/* inside the spin */
	pthread_mutex_lock(&c->lock);
	/* Another thread reaps a completion; it made the reader's bytes ready. */
	memset(spin_wc, 0, sizeof(spin_wc));
	spin_wc[0].wr_id = rt_wr_id(RT_WR_CTRL, 0);
	spin_wc[0].status = IBV_WC_SUCCESS;
	spin_nwc = 1;
	assert_true(conn_progress(c));
	c->rx_ready = 100;
	pthread_mutex_unlock(&c->lock);
	pthread_join(t, NULL);
	rt_g.opts.busy_poll_us = 0;
	assert_true(s.slept_us < 500 * 1000);
	c->rx_ready = 0;
	c->cq = NULL;
	free_conn(c);
}

/*
 * Small copied writes (QEMU's TLS records) are held only within a stream:
 * more than RT_STREAM_WRITES in a row, no read and no pause between them.
 */
static void test_small_writes_held_only_in_a_stream(void **state)
{
	struct timespec pause = { 0, (long)(3 * RT_STREAM_GAP_MS) * 1000000 };
	struct rt_conn *c = established_conn();
	unsigned i;

	(void)state;
	pthread_mutex_lock(&c->lock);
	for (i = 0; i < RT_STREAM_WRITES; i++) {
		tx_note_write(c, true);
		assert_false(tx_may_hold(c, 37, 0, 0));
	}
	tx_note_write(c, true);
	assert_true(tx_may_hold(c, 4125, 0, 0));
	/* A small write carrying zero-copy memory (an urgent postcopy page) always goes. */
	assert_false(tx_may_hold(c, 4104, 4096, 0));
	/* Nor is anything held while a thread waits to read, or with TCP_NODELAY. */
	c->sleepers = 1;
	assert_false(tx_may_hold(c, 37, 0, 0));
	c->sleepers = 0;
	c->nodelay = true;
	assert_false(tx_may_hold(c, 37, 0, 0));
	c->nodelay = false;
	/*
	 * A bulk or zero-copy write ends it too: a small write after bulk
	 * ones is a marker somebody may wait for (multifd's sync packet).
	 */
	tx_note_write(c, false);
	tx_note_write(c, true);
	assert_false(tx_may_hold(c, 1096, 0, 0));
	for (i = 0; i < RT_STREAM_WRITES; i++)
		tx_note_write(c, true);
	assert_true(tx_may_hold(c, 37, 0, 0));
	/* A read ends the stream: the program may wait for an answer. */
	tx_stream_reset(c);
	tx_note_write(c, true);
	assert_false(tx_may_hold(c, 37, 0, 0));
	/* So does a pause. */
	for (i = 0; i < 2 * RT_STREAM_WRITES; i++)
		tx_note_write(c, true);
	assert_true(tx_may_hold(c, 37, 0, 0));
	nanosleep(&pause, NULL);
	tx_note_write(c, true);
	assert_false(tx_may_hold(c, 37, 0, 0));
	/* MSG_MORE holds regardless, a first bulk write too. */
	assert_true(tx_may_hold(c, 37, 0, RT_SEND_MORE));
	c->bulk_streak = 0;
	assert_true(tx_may_hold(c, 131072, 131072, RT_SEND_MORE));
	/* A bulk write is held only after another bulk write. */
	c->bulk_streak = 0;
	assert_false(tx_may_hold(c, 131072, 131072, 0));
	c->bulk_streak = 1;
	assert_true(tx_may_hold(c, 131072, 131072, 0));
	/*
	 * TCP_NODELAY is about small writes: a bulk stream is still held
	 * (QEMU's multifd channels set it and write 512 KiB packets), but
	 * neither a small write nor MSG_MORE's.
	 */
	c->nodelay = true;
	assert_true(tx_may_hold(c, 525632, 524288, 0));
	c->bulk_streak = 0;
	assert_false(tx_may_hold(c, 525632, 524288, 0));
	assert_false(tx_may_hold(c, 1344, 0, RT_SEND_MORE));
	c->nodelay = false;
	pthread_mutex_unlock(&c->lock);
	free_conn(c);
}

/* A writer short only of credit needs the peer's messages, not our completions. */
static void test_credit_wait_is_solicited_only(void **state)
{
	struct rt_conn *c = established_conn();

	(void)state;
	pthread_mutex_lock(&c->lock);
	c->tx.open = true;
	assert_true(conn_short_of_credit_only(c));
	c->tx.open = false;
	assert_true(conn_short_of_credit_only(c));
	/* A busy slot is freed by our own send's completion. */
	c->slots[c->slot_next].busy = true;
	assert_false(conn_short_of_credit_only(c));
	c->slots[c->slot_next].busy = false;
	c->data_wrs_outstanding = RT_SQ_DEPTH;
	assert_false(conn_short_of_credit_only(c));
	c->data_wrs_outstanding = 0;
	pthread_mutex_unlock(&c->lock);
	free_conn(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defer_follows_dontfork),
		cmocka_unit_test(test_defer_modes),
		cmocka_unit_test(test_defer_ignores_verbs_advice),
		cmocka_unit_test(test_busy_poll_spins_its_budget),
		cmocka_unit_test(test_channel_sleeper_woken_by_failure),
		cmocka_unit_test(test_wake_during_spin_not_lost),
		cmocka_unit_test(test_reap_by_another_during_spin),
		cmocka_unit_test(test_small_writes_held_only_in_a_stream),
		cmocka_unit_test(test_credit_wait_is_solicited_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
