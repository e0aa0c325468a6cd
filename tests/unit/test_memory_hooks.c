// SPDX-License-Identifier: MIT
/*
 * The memory hooks of intercept/memory_calls.c drop the registrations over
 * memory whose pages the program replaces, so a later send never reads an
 * old page through a stale pin:
 *  - after the real call, also for a registration another thread made while
 *    the call was under way (a send of a neighbouring page);
 *  - for mmap(MAP_FIXED) over the range, mprotect() adding PROT_WRITE, and
 *    the file behind a mapping losing pages (fallocate's PUNCH_HOLE, as
 *    QEMU discards hugetlbfs RAM, and a shrinking ftruncate);
 *  - and for nothing else: the file hooks drop only what maps the changed
 *    part of that file;
 *  - through the names programs built with _FILE_OFFSET_BITS=64 call
 *    (mmap64, fallocate64, ftruncate64), as QEMU is;
 *  - with the file's mappings remembered only until the program's mappings
 *    change.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_util.h"

#include "common/real.h"
#include "rdma/regcache.h"

#define PAGE 4096
#define MIB ((size_t)1 << 20)

static struct regcache *rc;

static int setup(void **state)
{
	static const struct regcache_backend be = { fake_reg, fake_dereg, NULL };

	(void)state;
	rc = regcache_create(&be, MIB, 256 * MIB);
	return rc ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	regcache_destroy(rc);
	return 0;
}

/* 1 if a send from p now registers afresh, 0 if it reuses a cached pin. */
static int registers_afresh(void *p)
{
	struct regcache_ref ref;
	int registered;

	assert_int_equal(regcache_get(rc, p, PAGE, &ref, &registered), 0);
	regcache_put(rc, ref.entry);
	return registered;
}

/* n chunk-aligned MiB of fresh anonymous memory. */
static uint8_t *aligned_map(size_t n)
{
	uint8_t *raw = mmap(NULL, (n + 1) * MIB, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(raw != MAP_FAILED);
	return (uint8_t *)(((uintptr_t)raw + MIB - 1) & ~(uintptr_t)(MIB - 1));
}

static uint8_t *race_chunk;
static int (*true_madvise)(void *, size_t, int);

/* Another thread sends page 1 of the chunk while page 0 is being discarded. */
static int madvise_with_racing_send(void *addr, size_t len, int advice)
{
	registers_afresh(race_chunk + PAGE);
	return true_madvise(addr, len, advice);
}

static void test_registration_during_madvise(void **state)
{
	(void)state;
	race_chunk = aligned_map(1);
	assert_int_equal(registers_afresh(race_chunk), 1);
	true_madvise = REAL(madvise);
	real.madvise = madvise_with_racing_send;
	assert_int_equal(madvise(race_chunk, PAGE, MADV_DONTNEED), 0);
	real.madvise = true_madvise;
	/* The chunk registered mid-call pins page 0's discarded frame. */
	assert_int_equal(registers_afresh(race_chunk), 1);
}

static void test_map_fixed_over_registration(void **state)
{
	uint8_t *p = aligned_map(1);

	(void)state;
	assert_int_equal(registers_afresh(p), 1);
	assert_int_equal(registers_afresh(p), 0);
	assert_true(mmap(p, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
			 -1, 0) == p);
	assert_int_equal(registers_afresh(p), 1);
}

static void test_mprotect_write(void **state)
{
	uint8_t *p = aligned_map(1);

	(void)state;
	assert_int_equal(registers_afresh(p), 1);
	assert_int_equal(mprotect(p, PAGE, PROT_READ), 0);
	assert_int_equal(registers_afresh(p), 0);	/* nothing replaced */
	assert_int_equal(mprotect(p, PAGE, PROT_READ | PROT_WRITE), 0);
	assert_int_equal(registers_afresh(p), 1);
}

/* Two chunks of a shared file mapping: file offsets [0, 1 MiB) and [1, 2 MiB). */
static uint8_t *file_chunks(int *fd)
{
	uint8_t *p = aligned_map(2);

	*fd = memfd_create("migrdma-test", MFD_CLOEXEC);
	assert_true(*fd >= 0);
	assert_int_equal(ftruncate(*fd, 2 * MIB), 0);
	assert_true(mmap(p, 2 * MIB, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, *fd, 0) == p);
	memset(p, 0x5a, 2 * MIB);
	assert_int_equal(registers_afresh(p), 1);
	assert_int_equal(registers_afresh(p + MIB), 1);
	return p;
}

static void test_punch_hole(void **state)
{
	int fd, other;
	uint8_t *p = file_chunks(&fd), *q = file_chunks(&other);

	(void)state;
	assert_int_equal(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				   (off_t)MIB, (off_t)MIB), 0);
	assert_int_equal(registers_afresh(p + MIB), 1);
	assert_int_equal(registers_afresh(p), 0);	/* its part of the file is intact */
	assert_int_equal(registers_afresh(q + MIB), 0);	/* another file */
	close(fd);
	close(other);
}

static void test_truncate(void **state)
{
	int fd;
	uint8_t *p = file_chunks(&fd);

	(void)state;
	assert_int_equal(ftruncate(fd, (off_t)MIB), 0);
	assert_int_equal(registers_afresh(p + MIB), 1);
	assert_int_equal(registers_afresh(p), 0);
	/* Growing it again drops nothing. */
	assert_int_equal(ftruncate(fd, 2 * (off_t)MIB), 0);
	assert_int_equal(registers_afresh(p + MIB), 0);
	close(fd);
}

static void test_largefile_names(void **state)
{
	uint8_t *p = aligned_map(1), *f;
	int fd;

	(void)state;
	assert_int_equal(registers_afresh(p), 1);
	assert_true(mmap64(p, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
			   -1, 0) == p);
	assert_int_equal(registers_afresh(p), 1);

	f = file_chunks(&fd);
	assert_int_equal(fallocate64(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
				     (off_t)MIB), 0);
	assert_int_equal(registers_afresh(f), 1);
	assert_int_equal(registers_afresh(f + MIB), 0);
	assert_int_equal(ftruncate64(fd, (off_t)MIB), 0);
	assert_int_equal(registers_afresh(f + MIB), 1);
	close(fd);
}

/* A second mapping of a file made after a first hole punch is not missed by the next. */
static void test_new_mapping_after_punch(void **state)
{
	int fd;
	uint8_t *p = file_chunks(&fd), *q = aligned_map(2);

	(void)state;
	assert_int_equal(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				   (off_t)MIB, (off_t)MIB), 0);
	assert_int_equal(registers_afresh(p + MIB), 1);
	assert_true(mmap(q, 2 * MIB, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == q);
	memset(q, 0x33, 2 * MIB);
	assert_int_equal(registers_afresh(q + MIB), 1);
	assert_int_equal(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				   (off_t)MIB, (off_t)MIB), 0);
	assert_int_equal(registers_afresh(q + MIB), 1);
	assert_int_equal(registers_afresh(p + MIB), 1);
	/* Nothing mapped changed since: the remembered mappings serve. */
	assert_int_equal(registers_afresh(q), 1);
	assert_int_equal(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				   (off_t)MIB, (off_t)MIB), 0);
	assert_int_equal(registers_afresh(q + MIB), 1);
	assert_int_equal(registers_afresh(q), 0);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_registration_during_madvise),
		cmocka_unit_test(test_map_fixed_over_registration),
		cmocka_unit_test(test_mprotect_write),
		cmocka_unit_test(test_punch_hole),
		cmocka_unit_test(test_truncate),
		cmocka_unit_test(test_largefile_names),
		cmocka_unit_test(test_new_mapping_after_punch),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
