// SPDX-License-Identifier: MIT
/* Unit tests for shim/fdtable.c: the diverted and internal fd table. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "shim/fdtable.h"

/* Stand-ins for diverted sockets: only their addresses matter. */
static int objs[8];

static int reset(void **state)
{
	(void)state;
	fdtable_reset();
	return 0;
}

static void test_get_set_clear(void **state)
{
	(void)state;
	assert_null(fdtable_get(0));
	assert_null(fdtable_get(5));
	assert_false(fdtable_is_internal(5));

	assert_null(fdtable_set(5, &objs[0]));
	assert_ptr_equal(fdtable_get(5), &objs[0]);
	assert_null(fdtable_get(4));
	assert_null(fdtable_get(6));
	/* Setting again hands back what was there. */
	assert_ptr_equal(fdtable_set(5, &objs[1]), &objs[0]);
	assert_ptr_equal(fdtable_get(5), &objs[1]);
	/* NULL clears. */
	assert_ptr_equal(fdtable_set(5, NULL), &objs[1]);
	assert_null(fdtable_get(5));
	assert_null(fdtable_set(5, NULL));

	/* Clearing an fd whose page was never created is harmless. */
	assert_null(fdtable_set(500000, NULL));
	assert_null(fdtable_get(500000));

	/* The first and last fds, and both sides of a page boundary. */
	assert_null(fdtable_set(0, &objs[2]));
	assert_null(fdtable_set(FDTABLE_MAX_FD - 1, &objs[3]));
	assert_null(fdtable_set(1023, &objs[4]));
	assert_null(fdtable_set(1024, &objs[5]));
	assert_ptr_equal(fdtable_get(0), &objs[2]);
	assert_ptr_equal(fdtable_get(FDTABLE_MAX_FD - 1), &objs[3]);
	assert_ptr_equal(fdtable_get(1023), &objs[4]);
	assert_ptr_equal(fdtable_get(1024), &objs[5]);
	assert_null(fdtable_get(1022));
	assert_null(fdtable_get(1025));
	assert_null(fdtable_get(FDTABLE_MAX_FD - 2));

	/* Diverted and internal are independent. */
	assert_false(fdtable_is_internal(0));
	assert_int_equal(fdtable_mark_internal(0, true), 0);
	assert_ptr_equal(fdtable_get(0), &objs[2]);
	fdtable_set(0, NULL);
	assert_true(fdtable_is_internal(0));
}

static void test_out_of_range(void **state)
{
	static const int bad[] = { -1, -2, -1024, INT_MIN, FDTABLE_MAX_FD,
				   FDTABLE_MAX_FD + 1, FDTABLE_MAX_FD * 2, INT_MAX };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int fd = bad[i];

		assert_null(fdtable_get(fd));
		assert_null(fdtable_set(fd, &objs[0]));
		assert_null(fdtable_get(fd));
		assert_null(fdtable_set(fd, NULL));
		assert_false(fdtable_is_internal(fd));
		assert_int_equal(fdtable_mark_internal(fd, true), -1);
		assert_false(fdtable_is_internal(fd));
		/* Unmarking what cannot be marked is not an error. */
		assert_int_equal(fdtable_mark_internal(fd, false), 0);
	}
	/* Nothing in range was touched by any of that. */
	assert_int_equal(fdtable_next(0, INT_MAX, false), -1);
	assert_int_equal(fdtable_next(0, INT_MAX, true), -1);
}

static void test_internal(void **state)
{
	(void)state;
	assert_false(fdtable_is_internal(3));
	assert_int_equal(fdtable_mark_internal(3, true), 0);
	assert_true(fdtable_is_internal(3));
	assert_false(fdtable_is_internal(2));
	assert_false(fdtable_is_internal(4));
	assert_null(fdtable_get(3));
	/* Marking twice, unmarking twice. */
	assert_int_equal(fdtable_mark_internal(3, true), 0);
	assert_true(fdtable_is_internal(3));
	assert_int_equal(fdtable_mark_internal(3, false), 0);
	assert_false(fdtable_is_internal(3));
	assert_int_equal(fdtable_mark_internal(3, false), 0);
	assert_false(fdtable_is_internal(3));

	/* Unmarking an fd on a page never created marks nothing. */
	assert_int_equal(fdtable_mark_internal(700000, false), 0);
	assert_int_equal(fdtable_next(699000, 701000, true), -1);
	assert_int_equal(fdtable_mark_internal(FDTABLE_MAX_FD - 1, true), 0);
	assert_true(fdtable_is_internal(FDTABLE_MAX_FD - 1));
}

/* Collect what fdtable_next yields over [from, last]. */
static int collect(int from, int last, bool internal, int *out, int max)
{
	int n = 0, fd;

	for (fd = fdtable_next(from, last, internal); fd >= 0;
	     fd = fdtable_next(fd + 1, last, internal)) {
		assert_true(n < max);
		/* Ascending, within the range, and really of the kind asked. */
		assert_true(n == 0 || fd > out[n - 1]);
		assert_true(fd >= from && fd <= last);
		if (internal)
			assert_true(fdtable_is_internal(fd));
		else
			assert_non_null(fdtable_get(fd));
		out[n++] = fd;
	}
	return n;
}

static void test_next_sparse(void **state)
{
	static const int diverted[] = { 0, 7, 1023, 1024, 5000, 65535, 300000,
					FDTABLE_MAX_FD - 1 };
	static const int internal[] = { 1, 7, 2047, 2048, 500000, FDTABLE_MAX_FD - 2 };
	size_t nd = sizeof(diverted) / sizeof(diverted[0]);
	size_t ni = sizeof(internal) / sizeof(internal[0]);
	int out[16], n;
	size_t i;

	(void)state;
	assert_int_equal(fdtable_next(0, INT_MAX, false), -1);
	for (i = 0; i < nd; i++)
		fdtable_set(diverted[i], &objs[i % 8]);
	for (i = 0; i < ni; i++)
		assert_int_equal(fdtable_mark_internal(internal[i], true), 0);

	/* The whole table, with the largest possible last. */
	n = collect(0, INT_MAX, false, out, 16);
	assert_int_equal(n, (int)nd);
	for (i = 0; i < nd; i++)
		assert_int_equal(out[i], diverted[i]);
	n = collect(0, INT_MAX, true, out, 16);
	assert_int_equal(n, (int)ni);
	for (i = 0; i < ni; i++)
		assert_int_equal(out[i], internal[i]);

	/* A negative start means the beginning. */
	assert_int_equal(fdtable_next(-1, INT_MAX, false), 0);
	assert_int_equal(fdtable_next(INT_MIN, INT_MAX, true), 1);

	/* Bounds are inclusive at both ends. */
	assert_int_equal(fdtable_next(7, 7, false), 7);
	assert_int_equal(fdtable_next(7, 7, true), 7);
	assert_int_equal(fdtable_next(8, 1022, false), -1);
	assert_int_equal(fdtable_next(8, 1023, false), 1023);
	assert_int_equal(fdtable_next(1025, 65534, false), 5000);
	assert_int_equal(fdtable_next(5001, 65534, false), -1);
	assert_int_equal(fdtable_next(8, 2047, true), 2047);
	assert_int_equal(fdtable_next(8, 2046, true), -1);
	/* Across pages never allocated, to the far end. */
	assert_int_equal(fdtable_next(300001, INT_MAX, false), FDTABLE_MAX_FD - 1);
	assert_int_equal(fdtable_next(500001, INT_MAX, true), FDTABLE_MAX_FD - 2);
	assert_int_equal(fdtable_next(FDTABLE_MAX_FD - 1, INT_MAX, true), -1);
	assert_int_equal(fdtable_next(FDTABLE_MAX_FD - 1, FDTABLE_MAX_FD - 1, false),
			 FDTABLE_MAX_FD - 1);

	/* Starting past the end, or after last: nothing. */
	assert_int_equal(fdtable_next(FDTABLE_MAX_FD, INT_MAX, false), -1);
	assert_int_equal(fdtable_next(INT_MAX, INT_MAX, false), -1);
	assert_int_equal(fdtable_next(100, 99, false), -1);
	assert_int_equal(fdtable_next(0, -1, false), -1);
	assert_int_equal(fdtable_next(-5, -1, true), -1);

	/* A sub-range in the middle. */
	n = collect(1000, 70000, false, out, 16);
	assert_int_equal(n, 4);
	assert_int_equal(out[0], 1023);
	assert_int_equal(out[3], 65535);

	/* Clearing takes an fd out of the iteration, leaving the page. */
	fdtable_set(5000, NULL);
	assert_int_equal(fdtable_next(1025, 65534, false), -1);
	fdtable_mark_internal(2047, false);
	assert_int_equal(fdtable_next(8, INT_MAX, true), 2048);

	/*
	 * Starting in the middle of a missing page must not skip the first
	 * fds of the next one: 800000 is 256 into page 781, 800768 starts
	 * page 782.
	 */
	fdtable_set(800768, &objs[0]);
	assert_int_equal(fdtable_next(800000, INT_MAX, false), 800768);
	assert_int_equal(fdtable_next(800000, 800767, false), -1);
	assert_int_equal(fdtable_next(800000, 800768, false), 800768);
}

static void test_next_dense(void **state)
{
	int fd, n = 0;

	(void)state;
	/* Every third fd over several pages. */
	for (fd = 0; fd < 5000; fd += 3)
		fdtable_set(fd, &objs[fd % 8]);
	for (fd = fdtable_next(0, INT_MAX, false); fd >= 0;
	     fd = fdtable_next(fd + 1, INT_MAX, false)) {
		assert_int_equal(fd, 3 * n);
		n++;
	}
	assert_int_equal(n, (5000 + 2) / 3);
	assert_int_equal(fdtable_next(0, INT_MAX, true), -1);
}

static void test_reset(void **state)
{
	(void)state;
	fdtable_set(3, &objs[0]);
	fdtable_set(FDTABLE_MAX_FD - 1, &objs[1]);
	fdtable_mark_internal(4, true);
	fdtable_mark_internal(200000, true);

	fdtable_reset();
	assert_null(fdtable_get(3));
	assert_null(fdtable_get(FDTABLE_MAX_FD - 1));
	assert_false(fdtable_is_internal(4));
	assert_false(fdtable_is_internal(200000));
	assert_int_equal(fdtable_next(0, INT_MAX, false), -1);
	assert_int_equal(fdtable_next(0, INT_MAX, true), -1);
	/* Twice in a row, and the table works afterwards. */
	fdtable_reset();
	assert_null(fdtable_set(3, &objs[2]));
	assert_ptr_equal(fdtable_get(3), &objs[2]);
	assert_int_equal(fdtable_next(0, INT_MAX, false), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get_set_clear, reset, reset),
		cmocka_unit_test_setup_teardown(test_out_of_range, reset, reset),
		cmocka_unit_test_setup_teardown(test_internal, reset, reset),
		cmocka_unit_test_setup_teardown(test_next_sparse, reset, reset),
		cmocka_unit_test_setup_teardown(test_next_dense, reset, reset),
		cmocka_unit_test_setup_teardown(test_reset, reset, reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
