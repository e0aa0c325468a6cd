/* SPDX-License-Identifier: MIT */
/* Helpers the unit tests share. */
#ifndef MIGRDMA_TESTS_UNIT_TEST_UTIL_H
#define MIGRDMA_TESTS_UNIT_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <infiniband/verbs.h>

/* xorshift64*, seeded by each test: every run sees the same sequence. */
static uint64_t rng_state __attribute__((unused));

static inline uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static inline uint32_t rnd_below(uint32_t n)
{
	return n ? (uint32_t)((rnd() >> 32) % n) : 0;
}

/* A registration backend without a device: the handle is the address. */
static inline void *fake_reg(void *ctx, void *addr, size_t len, uint32_t *lkey)
{
	(void)ctx;
	(void)len;
	*lkey = 1;
	return addr;
}

static inline void fake_dereg(void *ctx, void *handle)
{
	(void)ctx;
	(void)handle;
}

/* A device's post_recv that takes every receive. */
static inline int fake_post_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr,
				 struct ibv_recv_wr **bad)
{
	(void)qp;
	(void)wr;
	(void)bad;
	return 0;
}

#endif
