// SPDX-License-Identifier: MIT
/*
 * Unit tests for the connection timers in rdma/cm.c, on connections that
 * never touch a device: what the service thread may decide about a
 * connection before its owner has started setting it up.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rdma/internal.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fresh_connection_has_no_deadline),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
