// SPDX-License-Identifier: MIT
/*
 * Unit tests for rdma/wire.c: the hello, the message header and the
 * validation of everything a peer sends.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_util.h"

#include "rdma/wire.h"

/* The reasons wire_msg_decode gives, so each test checks the rule it aims at. */
#define WHY_SHORT	"message shorter than its header"
#define WHY_VERSION	"unknown message version"
#define WHY_OPCODE	"unknown opcode"
#define WHY_CREDIT_MSGS	"more message credits than were lent"
#define WHY_CREDIT_RING	"more ring credit than was lent"
#define WHY_CONTROL	"control message carries data"
#define WHY_NOSEG	"DATA without segments"
#define WHY_LENGTH	"DATA length does not match its segments"
#define WHY_EMPTY	"empty segment"
#define WHY_SUMS	"segment lengths do not add up"
#define WHY_SKIP	"ring skip does not reach the ring's end"
#define WHY_PAST_END	"ring data runs past the ring's end"
#define WHY_OVERRUN	"ring data overruns unread bytes"
#define WHY_AUTH	"malformed authentication message"

#define RING		(64u * 1024)
#define MAX_MSG		4096u

/* ---- hello ---- */

static struct wire_hello good_hello(void)
{
	struct wire_hello h;

	memset(&h, 0, sizeof(h));
	h.magic = WIRE_MAGIC;
	h.version = WIRE_VERSION;
	h.flags = 0;
	h.ring_rkey = 0x89abcdefU;
	h.ring_addr = 0x00007f1234560000ULL;
	h.ring_size = 1u << 20;
	h.credits = 16;
	h.msg_size = 64u * 1024;
	return h;
}

/* Encode h, decode it back, return what decode said. */
static int hello_trip(const struct wire_hello *h, struct wire_hello *out)
{
	uint8_t buf[WIRE_HELLO_LEN];

	wire_hello_encode(h, buf);
	memset(out, 0xa5, sizeof(*out));
	return wire_hello_decode(buf, sizeof(buf), out);
}

static void assert_hello_equal(const struct wire_hello *a, const struct wire_hello *b)
{
	assert_int_equal(a->magic, b->magic);
	assert_int_equal(a->version, b->version);
	assert_int_equal(a->flags, b->flags);
	assert_int_equal(a->ring_rkey, b->ring_rkey);
	assert_true(a->ring_addr == b->ring_addr);
	assert_int_equal(a->ring_size, b->ring_size);
	assert_int_equal(a->credits, b->credits);
	assert_int_equal(a->msg_size, b->msg_size);
}

static void test_hello_round_trip(void **state)
{
	struct wire_hello h = good_hello(), out;

	(void)state;
	assert_int_equal(hello_trip(&h, &out), 0);
	assert_hello_equal(&h, &out);

	/* The extremes of every range are accepted and survive the trip. */
	h.flags = WIRE_HELLO_AUTH;
	h.ring_rkey = UINT32_MAX;
	h.ring_size = WIRE_RING_MAX;
	h.ring_addr = UINT64_MAX - WIRE_RING_MAX;
	h.credits = WIRE_CREDITS_MAX;
	h.msg_size = WIRE_MSG_MAX;
	assert_int_equal(hello_trip(&h, &out), 0);
	assert_hello_equal(&h, &out);

	h.ring_rkey = 0;
	h.ring_size = WIRE_RING_MIN;
	h.ring_addr = 0;
	h.credits = 1;
	h.msg_size = WIRE_MSG_MIN;
	assert_int_equal(hello_trip(&h, &out), 0);
	assert_hello_equal(&h, &out);
}

/* The layout is the protocol: pin it down byte by byte. */
static void test_hello_layout(void **state)
{
	static const uint8_t expect[WIRE_HELLO_LEN] = {
		0x4d, 0x47, 0x52, 0x44,		/* magic "MGRD" */
		0x01, 0x01, 0x00, 0x00,		/* version, flags, reserved */
		0xef, 0xcd, 0xab, 0x89,		/* ring_rkey */
		0x00, 0x00, 0x56, 0x34, 0x12, 0x7f, 0x00, 0x00,	/* ring_addr */
		0x00, 0x00, 0x10, 0x00,		/* ring_size */
		0x10, 0x00, 0x00, 0x00,		/* credits, reserved */
		0x00, 0x00, 0x01, 0x00,		/* msg_size */
	};
	struct wire_hello h = good_hello();
	uint8_t buf[WIRE_HELLO_LEN];

	(void)state;
	h.flags = WIRE_HELLO_AUTH;
	memset(buf, 0xff, sizeof(buf));
	wire_hello_encode(&h, buf);
	assert_memory_equal(buf, expect, sizeof(expect));
}

static void test_hello_padded(void **state)
{
	struct wire_hello h = good_hello(), out;
	uint8_t buf[196];	/* the largest private data rdma_cm delivers (REP) */

	(void)state;
	memset(buf, 0, sizeof(buf));
	wire_hello_encode(&h, buf);
	assert_int_equal(wire_hello_decode(buf, 56, &out), 0);	/* REQ size */
	assert_hello_equal(&h, &out);
	assert_int_equal(wire_hello_decode(buf, sizeof(buf), &out), 0);
	assert_hello_equal(&h, &out);
	assert_int_equal(wire_hello_decode(buf, WIRE_HELLO_LEN + 1, &out), 0);
}

static void test_hello_short(void **state)
{
	struct wire_hello h = good_hello(), out;
	uint8_t buf[WIRE_HELLO_LEN];
	size_t len;

	(void)state;
	wire_hello_encode(&h, buf);
	for (len = 0; len < WIRE_HELLO_LEN; len++)
		assert_int_equal(wire_hello_decode(buf, len, &out), -WIRE_REJECT_MALFORMED);
	assert_int_equal(wire_hello_decode(NULL, WIRE_HELLO_LEN, &out),
			 -WIRE_REJECT_MALFORMED);
	assert_int_equal(wire_hello_decode(NULL, 0, &out), -WIRE_REJECT_MALFORMED);
}

static void test_hello_bad_magic(void **state)
{
	struct wire_hello h = good_hello(), out;
	uint8_t buf[WIRE_HELLO_LEN];
	unsigned i;

	(void)state;
	/* Any single flipped bit in the magic. */
	for (i = 0; i < 32; i++) {
		wire_hello_encode(&h, buf);
		buf[i / 8] ^= (uint8_t)(1u << (i % 8));
		assert_int_equal(wire_hello_decode(buf, sizeof(buf), &out),
				 -WIRE_REJECT_MALFORMED);
	}
	/* Byte-swapped magic (a big-endian encoder). */
	h.magic = 0x4d475244U;
	assert_int_equal(hello_trip(&h, &out), -WIRE_REJECT_MALFORMED);
	/* All zeros: rdma_cm private data from a peer that sent none. */
	memset(buf, 0, sizeof(buf));
	assert_int_equal(wire_hello_decode(buf, sizeof(buf), &out), -WIRE_REJECT_MALFORMED);
}

static void test_hello_version(void **state)
{
	struct wire_hello h = good_hello(), out;
	static const uint8_t bad[] = { 0, 2, 3, 0x7f, 0xff };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad); i++) {
		h.version = bad[i];
		assert_int_equal(hello_trip(&h, &out), -WIRE_REJECT_VERSION);
	}
	/* The version is told apart even when the rest is nonsense. */
	h.credits = 0;
	h.ring_size = 3;
	assert_int_equal(hello_trip(&h, &out), -WIRE_REJECT_VERSION);
}

static void test_hello_flags(void **state)
{
	struct wire_hello h = good_hello(), out;
	unsigned bit;

	(void)state;
	h.flags = WIRE_HELLO_AUTH;
	assert_int_equal(hello_trip(&h, &out), 0);
	for (bit = 1; bit < 8; bit++) {
		h.flags = (uint8_t)(1u << bit);
		assert_int_equal(hello_trip(&h, &out), -WIRE_REJECT_MALFORMED);
		h.flags |= WIRE_HELLO_AUTH;
		assert_int_equal(hello_trip(&h, &out), -WIRE_REJECT_MALFORMED);
	}
	h.flags = 0xff;
	assert_int_equal(hello_trip(&h, &out), -WIRE_REJECT_MALFORMED);
}

static void test_hello_ring_size(void **state)
{
	static const uint32_t bad[] = {
		0, 1, 3, 4096, WIRE_RING_MIN / 2, WIRE_RING_MIN - 1, WIRE_RING_MIN + 1,
		3 * WIRE_RING_MIN, (1u << 20) + 4096, WIRE_RING_MAX - 1,
		WIRE_RING_MAX + 1, WIRE_RING_MAX * 2u, 0x80000001U, UINT32_MAX,
	};
	struct wire_hello h = good_hello(), out;
	uint32_t size;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		h.ring_size = bad[i];
		assert_int_equal(hello_trip(&h, &out), -WIRE_REJECT_MALFORMED);
	}
	for (size = WIRE_RING_MIN; size && size <= WIRE_RING_MAX; size <<= 1) {
		h.ring_size = size;
		assert_int_equal(hello_trip(&h, &out), 0);
	}
}

static void test_hello_ring_addr(void **state)
{
	struct wire_hello h = good_hello(), out;

	(void)state;
	/* The ring's last byte must be addressable: addr + size may not wrap. */
	h.ring_addr = UINT64_MAX - h.ring_size;
	assert_int_equal(hello_trip(&h, &out), 0);
	h.ring_addr = UINT64_MAX - h.ring_size + 1;
	assert_int_equal(hello_trip(&h, &out), -WIRE_REJECT_MALFORMED);
	h.ring_addr = UINT64_MAX;
	assert_int_equal(hello_trip(&h, &out), -WIRE_REJECT_MALFORMED);
	h.ring_addr = 1ULL << 63;
	assert_int_equal(hello_trip(&h, &out), 0);
}

static void test_hello_credits(void **state)
{
	struct wire_hello h = good_hello(), out;

	(void)state;
	h.credits = 0;
	assert_int_equal(hello_trip(&h, &out), -WIRE_REJECT_MALFORMED);
	h.credits = WIRE_CREDITS_MAX + 1;
	assert_int_equal(hello_trip(&h, &out), -WIRE_REJECT_MALFORMED);
	h.credits = UINT16_MAX;
	assert_int_equal(hello_trip(&h, &out), -WIRE_REJECT_MALFORMED);
	h.credits = 1;
	assert_int_equal(hello_trip(&h, &out), 0);
	h.credits = WIRE_CREDITS_MAX;
	assert_int_equal(hello_trip(&h, &out), 0);
}

static void test_hello_msg_size(void **state)
{
	static const uint32_t bad[] = {
		0, 1, WIRE_HDR_LEN, WIRE_MSG_MIN - 1, WIRE_MSG_MAX + 1, UINT32_MAX,
	};
	struct wire_hello h = good_hello(), out;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		h.msg_size = bad[i];
		assert_int_equal(hello_trip(&h, &out), -WIRE_REJECT_MALFORMED);
	}
	h.msg_size = WIRE_MSG_MIN;
	assert_int_equal(hello_trip(&h, &out), 0);
	h.msg_size = WIRE_MSG_MAX;
	assert_int_equal(hello_trip(&h, &out), 0);
}

/* ---- messages ---- */

static struct wire_rx_limits limits(uint64_t ring_pos, uint64_t ring_free)
{
	struct wire_rx_limits lim;

	lim.ring_size = RING;
	lim.ring_pos = ring_pos;
	lim.ring_free = ring_free;
	lim.max_credit_msgs = 16;
	lim.max_credit_ring = RING;
	return lim;
}

/*
 * Lay a message out as the sender does: header | inline bytes | nseg
 * descriptors.  The header is written as given (nseg included), the
 * inline bytes are a recognisable pattern.  Returns the length.
 */
static size_t build(uint8_t *buf, const struct wire_hdr *h, uint32_t inline_bytes,
		    const uint32_t *segs, unsigned nseg)
{
	size_t len = WIRE_HDR_LEN;
	uint32_t i;

	wire_hdr_encode(h, buf);
	for (i = 0; i < inline_bytes; i++)
		buf[len++] = (uint8_t)(i * 7 + 1);
	for (i = 0; i < nseg; i++, len += 4)
		wire_put32(buf + len, segs[i]);
	return len;
}

static struct wire_hdr data_hdr(unsigned nseg, uint32_t ring_len, uint32_t inline_len)
{
	struct wire_hdr h;

	memset(&h, 0, sizeof(h));
	h.version = WIRE_VERSION;
	h.opcode = WIRE_OP_DATA;
	h.nseg = (uint16_t)nseg;
	h.ring_len = ring_len;
	h.inline_len = inline_len;
	return h;
}

/* The well-formed DATA message the rejection tests break one rule of. */
static const uint32_t good_segs[] = {
	10,			/* inline */
	WIRE_SEG_RING | 4096,
	5,			/* inline */
	WIRE_SEG_RING | 100,
};
#define GOOD_NSEG	4u
#define GOOD_RING	4196u
#define GOOD_INLINE	15u

static size_t build_good(uint8_t *buf)
{
	struct wire_hdr h = data_hdr(GOOD_NSEG, GOOD_RING, GOOD_INLINE);

	return build(buf, &h, GOOD_INLINE, good_segs, GOOD_NSEG);
}

static int decode(const uint8_t *buf, size_t len, const struct wire_rx_limits *lim,
		  struct wire_hdr *h, struct wire_data *d, const char **why)
{
	*why = NULL;
	return wire_msg_decode(buf, len, lim, h, d, why);
}

static void expect_reject(const uint8_t *buf, size_t len, const struct wire_rx_limits *lim,
			  const char *reason)
{
	struct wire_data d;
	struct wire_hdr h;
	const char *why;

	assert_int_equal(decode(buf, len, lim, &h, &d, &why), -1);
	assert_non_null(why);
	assert_string_equal(why, reason);
}

static void expect_accept(const uint8_t *buf, size_t len, const struct wire_rx_limits *lim)
{
	struct wire_data d;
	struct wire_hdr h;
	const char *why;

	if (decode(buf, len, lim, &h, &d, &why))
		fail_msg("rejected: %s", why ? why : "(no reason)");
}

/* Control messages proper: everything but DATA and AUTH, which carry bytes. */
static bool plain_control(int op)
{
	return op != WIRE_OP_DATA && op != WIRE_OP_AUTH;
}

static void test_hdr_layout(void **state)
{
	static const uint8_t expect[WIRE_HDR_LEN] = {
		0x01, 0x05, 0x34, 0x12,		/* version, opcode, nseg */
		0x04, 0x03, 0x02, 0x01,		/* credit_msgs */
		0x08, 0x07, 0x06, 0x05,		/* credit_ring */
		0x0c, 0x0b, 0x0a, 0x09,		/* ring_skip */
		0x10, 0x0f, 0x0e, 0x0d,		/* ring_len */
		0x14, 0x13, 0x12, 0x11,		/* inline_len */
	};
	struct wire_hdr h = {
		.version = 1, .opcode = 5, .nseg = 0x1234,
		.credit_msgs = 0x01020304, .credit_ring = 0x05060708,
		.ring_skip = 0x090a0b0c, .ring_len = 0x0d0e0f10,
		.inline_len = 0x11121314,
	};
	uint8_t buf[WIRE_HDR_LEN + 4], seg[4];

	(void)state;
	memset(buf, 0xee, sizeof(buf));
	wire_hdr_encode(&h, buf);
	assert_memory_equal(buf, expect, sizeof(expect));
	/* Nothing past the header is touched. */
	assert_int_equal(buf[WIRE_HDR_LEN], 0xee);

	wire_put32(seg, 0xdeadbeefU);
	assert_int_equal(seg[0], 0xef);
	assert_int_equal(seg[3], 0xde);
	assert_int_equal(wire_get32(seg), 0xdeadbeefU);
	assert_int_equal(wire_seg_encode(100, 1), WIRE_SEG_RING | 100);
	assert_int_equal(wire_seg_encode(100, 0), 100);
	assert_int_equal(wire_seg_encode(WIRE_SEG_LEN_MASK, 1), UINT32_MAX);
}

static void test_control_round_trip(void **state)
{
	struct wire_rx_limits lim = limits(0, RING);
	uint8_t buf[WIRE_HDR_LEN];
	struct wire_hdr h, out;
	struct wire_data d;
	const char *why;
	int op;

	(void)state;
	for (op = WIRE_OP_CREDIT; op <= WIRE_OP_MAX; op++) {
		if (!plain_control(op))
			continue;
		memset(&h, 0, sizeof(h));
		h.version = WIRE_VERSION;
		h.opcode = (uint8_t)op;
		h.credit_msgs = (uint32_t)op;
		h.credit_ring = 1000u * (uint32_t)op;
		wire_hdr_encode(&h, buf);
		memset(&out, 0xa5, sizeof(out));
		assert_int_equal(decode(buf, sizeof(buf), &lim, &out, &d, &why), 0);
		assert_memory_equal(&out, &h, sizeof(h));

		/* The credit limits are inclusive. */
		h.credit_msgs = lim.max_credit_msgs;
		h.credit_ring = lim.max_credit_ring;
		wire_hdr_encode(&h, buf);
		assert_int_equal(decode(buf, sizeof(buf), &lim, &out, &d, &why), 0);
		assert_int_equal(out.credit_msgs, lim.max_credit_msgs);
		assert_int_equal(out.credit_ring, lim.max_credit_ring);
	}
}

static void test_data_round_trip(void **state)
{
	struct wire_rx_limits lim = limits(3 * (uint64_t)RING + 1000, RING);
	struct wire_hdr h, out;
	uint8_t buf[256];
	struct wire_data d;
	const char *why;
	size_t len;
	unsigned i;

	(void)state;
	len = build_good(buf);
	assert_int_equal(len, WIRE_HDR_LEN + GOOD_INLINE + 4 * GOOD_NSEG);
	memset(&out, 0xa5, sizeof(out));
	assert_int_equal(decode(buf, len, &lim, &out, &d, &why), 0);
	h = data_hdr(GOOD_NSEG, GOOD_RING, GOOD_INLINE);
	assert_memory_equal(&out, &h, sizeof(h));
	assert_ptr_equal(d.inline_bytes, buf + WIRE_HDR_LEN);
	assert_ptr_equal(d.segs, buf + WIRE_HDR_LEN + GOOD_INLINE);
	assert_int_equal(d.ring_off, 1000);
	for (i = 0; i < GOOD_NSEG; i++)
		assert_int_equal(wire_get32(d.segs + 4 * i), good_segs[i]);
	assert_int_equal(d.inline_bytes[0], 1);

	/* Credits ride on DATA too. */
	h.credit_msgs = 16;
	h.credit_ring = RING;
	len = build(buf, &h, GOOD_INLINE, good_segs, GOOD_NSEG);
	assert_int_equal(decode(buf, len, &lim, &out, &d, &why), 0);
	assert_int_equal(out.credit_msgs, 16);
	assert_int_equal(out.credit_ring, RING);
}

static void test_data_shapes(void **state)
{
	struct wire_rx_limits lim = limits(0, RING);
	uint32_t segs[3];
	struct wire_hdr h, out;
	uint8_t buf[256];
	struct wire_data d;
	const char *why;
	size_t len;

	(void)state;
	/* Inline only. */
	segs[0] = 40;
	h = data_hdr(1, 0, 40);
	len = build(buf, &h, 40, segs, 1);
	assert_int_equal(decode(buf, len, &lim, &out, &d, &why), 0);
	assert_int_equal(d.ring_off, 0);

	/* Ring only: the whole ring at once, from offset 0. */
	segs[0] = WIRE_SEG_RING | RING;
	h = data_hdr(1, RING, 0);
	len = build(buf, &h, 0, segs, 1);
	assert_int_equal(decode(buf, len, &lim, &out, &d, &why), 0);
	assert_ptr_equal(d.segs, buf + WIRE_HDR_LEN);

	/* Neighbouring segments of one kind are allowed. */
	segs[0] = WIRE_SEG_RING | 10;
	segs[1] = WIRE_SEG_RING | 20;
	segs[2] = 3;
	h = data_hdr(3, 30, 3);
	len = build(buf, &h, 3, segs, 3);
	assert_int_equal(decode(buf, len, &lim, &out, &d, &why), 0);
}

static void test_data_skip(void **state)
{
	struct wire_rx_limits lim = limits(RING - 5536, RING);
	uint32_t seg = WIRE_SEG_RING | 4096;
	struct wire_hdr h, out;
	uint8_t buf[64];
	struct wire_data d;
	const char *why;
	size_t len;

	(void)state;
	/* Skipping exactly the tail moves the data to the ring's start. */
	h = data_hdr(1, 4096, 0);
	h.ring_skip = 5536;
	len = build(buf, &h, 0, &seg, 1);
	assert_int_equal(decode(buf, len, &lim, &out, &d, &why), 0);
	assert_int_equal(d.ring_off, 0);
	assert_int_equal(out.ring_skip, 5536);

	/* The skip counts against the free space. */
	lim.ring_free = 5536 + 4096;
	assert_int_equal(decode(buf, len, &lim, &out, &d, &why), 0);
	lim.ring_free = 5536 + 4095;
	expect_reject(buf, len, &lim, WHY_OVERRUN);

	/* A skip short of the end, or past it. */
	lim.ring_free = RING;
	h.ring_skip = 5535;
	len = build(buf, &h, 0, &seg, 1);
	expect_reject(buf, len, &lim, WHY_SKIP);
	h.ring_skip = 5537;
	len = build(buf, &h, 0, &seg, 1);
	expect_reject(buf, len, &lim, WHY_SKIP);
	h.ring_skip = 1;
	len = build(buf, &h, 0, &seg, 1);
	expect_reject(buf, len, &lim, WHY_SKIP);
	h.ring_skip = UINT32_MAX;
	len = build(buf, &h, 0, &seg, 1);
	expect_reject(buf, len, &lim, WHY_SKIP);

	/* The offset is ring_pos modulo the ring, however far the stream got. */
	lim.ring_pos = 1000ULL * RING + RING - 5536;
	h.ring_skip = 5536;
	len = build(buf, &h, 0, &seg, 1);
	assert_int_equal(decode(buf, len, &lim, &out, &d, &why), 0);
	assert_int_equal(d.ring_off, 0);
}

static void test_data_ring_bounds(void **state)
{
	struct wire_rx_limits lim = limits(RING - 5536, RING);
	uint32_t seg;
	struct wire_hdr h;
	uint8_t buf[64];
	size_t len;

	(void)state;
	/* Up to the ring's end exactly, not one byte further. */
	seg = WIRE_SEG_RING | 5536;
	h = data_hdr(1, 5536, 0);
	len = build(buf, &h, 0, &seg, 1);
	expect_accept(buf, len, &lim);
	seg = WIRE_SEG_RING | 5537;
	h = data_hdr(1, 5537, 0);
	len = build(buf, &h, 0, &seg, 1);
	expect_reject(buf, len, &lim, WHY_PAST_END);

	/* Larger than the ring altogether, from offset 0. */
	lim.ring_pos = 0;
	seg = WIRE_SEG_RING | (RING + 1);
	h = data_hdr(1, RING + 1, 0);
	len = build(buf, &h, 0, &seg, 1);
	expect_reject(buf, len, &lim, WHY_PAST_END);

	/* A huge ring segment cannot sneak past through wrapping arithmetic. */
	seg = WIRE_SEG_RING | WIRE_SEG_LEN_MASK;
	h = data_hdr(1, WIRE_SEG_LEN_MASK, 0);
	len = build(buf, &h, 0, &seg, 1);
	expect_reject(buf, len, &lim, WHY_PAST_END);

	/* Overrunning unread bytes, which may be anywhere below the end. */
	lim.ring_pos = 1000;
	lim.ring_free = 4095;
	seg = WIRE_SEG_RING | 4096;
	h = data_hdr(1, 4096, 0);
	len = build(buf, &h, 0, &seg, 1);
	expect_reject(buf, len, &lim, WHY_OVERRUN);
	lim.ring_free = 4096;
	expect_accept(buf, len, &lim);
	lim.ring_free = 0;
	expect_reject(buf, len, &lim, WHY_OVERRUN);

	/* Inline-only data needs no ring space at all. */
	seg = 8;
	h = data_hdr(1, 0, 8);
	len = build(buf, &h, 8, &seg, 1);
	expect_accept(buf, len, &lim);
}

static void test_data_segments(void **state)
{
	struct wire_rx_limits lim = limits(1000, RING);
	uint32_t segs[GOOD_NSEG + 1];
	uint8_t buf[256];
	struct wire_hdr h;
	size_t len;

	(void)state;
	len = build_good(buf);
	expect_accept(buf, len, &lim);

	/* Ring segments adding up to more, or less, than ring_len. */
	h = data_hdr(GOOD_NSEG, GOOD_RING + 1, GOOD_INLINE);
	len = build(buf, &h, GOOD_INLINE, good_segs, GOOD_NSEG);
	expect_reject(buf, len, &lim, WHY_SUMS);
	h = data_hdr(GOOD_NSEG, GOOD_RING - 1, GOOD_INLINE);
	len = build(buf, &h, GOOD_INLINE, good_segs, GOOD_NSEG);
	expect_reject(buf, len, &lim, WHY_SUMS);

	/* Inline segments not matching the inline bytes actually carried. */
	h = data_hdr(GOOD_NSEG, GOOD_RING, GOOD_INLINE + 1);
	len = build(buf, &h, GOOD_INLINE + 1, good_segs, GOOD_NSEG);
	expect_reject(buf, len, &lim, WHY_SUMS);
	h = data_hdr(GOOD_NSEG, GOOD_RING, GOOD_INLINE - 1);
	len = build(buf, &h, GOOD_INLINE - 1, good_segs, GOOD_NSEG);
	expect_reject(buf, len, &lim, WHY_SUMS);

	/* Bytes moved between kinds: both totals then disagree. */
	memcpy(segs, good_segs, sizeof(good_segs));
	segs[0] |= WIRE_SEG_RING;
	h = data_hdr(GOOD_NSEG, GOOD_RING, GOOD_INLINE);
	len = build(buf, &h, GOOD_INLINE, segs, GOOD_NSEG);
	expect_reject(buf, len, &lim, WHY_SUMS);

	/* An empty segment, of either kind, anywhere. */
	memcpy(segs, good_segs, sizeof(good_segs));
	segs[GOOD_NSEG] = 0;
	h = data_hdr(GOOD_NSEG + 1, GOOD_RING, GOOD_INLINE);
	len = build(buf, &h, GOOD_INLINE, segs, GOOD_NSEG + 1);
	expect_reject(buf, len, &lim, WHY_EMPTY);
	segs[GOOD_NSEG] = WIRE_SEG_RING;
	len = build(buf, &h, GOOD_INLINE, segs, GOOD_NSEG + 1);
	expect_reject(buf, len, &lim, WHY_EMPTY);
	segs[0] = 0;
	segs[1] = 10;
	segs[2] = WIRE_SEG_RING | 4196;
	segs[3] = 5;
	segs[4] = 0;
	len = build(buf, &h, GOOD_INLINE, segs, GOOD_NSEG + 1);
	expect_reject(buf, len, &lim, WHY_EMPTY);

	/* No segments at all, even with nothing to carry. */
	h = data_hdr(0, 0, 0);
	len = build(buf, &h, 0, NULL, 0);
	expect_reject(buf, len, &lim, WHY_NOSEG);
	h = data_hdr(0, GOOD_RING, GOOD_INLINE);
	len = build(buf, &h, GOOD_INLINE, NULL, 0);
	expect_reject(buf, len, &lim, WHY_NOSEG);
}

static void test_data_length(void **state)
{
	struct wire_rx_limits lim = limits(1000, RING);
	uint8_t buf[256];
	struct wire_hdr h;
	size_t len;

	(void)state;
	memset(buf, 0, sizeof(buf));
	len = build_good(buf);
	/* A byte missing, or one too many. */
	expect_reject(buf, len - 1, &lim, WHY_LENGTH);
	buf[len] = 0;
	expect_reject(buf, len + 1, &lim, WHY_LENGTH);
	expect_reject(buf, len + 4, &lim, WHY_LENGTH);
	/* Only the header. */
	expect_reject(buf, WIRE_HDR_LEN, &lim, WHY_LENGTH);

	/* nseg claiming more, or fewer, descriptors than are there. */
	h = data_hdr(GOOD_NSEG + 1, GOOD_RING, GOOD_INLINE);
	len = build(buf, &h, GOOD_INLINE, good_segs, GOOD_NSEG);
	expect_reject(buf, len, &lim, WHY_LENGTH);
	h = data_hdr(GOOD_NSEG - 1, GOOD_RING, GOOD_INLINE);
	len = build(buf, &h, GOOD_INLINE, good_segs, GOOD_NSEG);
	expect_reject(buf, len, &lim, WHY_LENGTH);
	h = data_hdr(UINT16_MAX, GOOD_RING, GOOD_INLINE);
	len = build(buf, &h, GOOD_INLINE, good_segs, GOOD_NSEG);
	expect_reject(buf, len, &lim, WHY_LENGTH);

	/* inline_len claiming bytes beyond the message. */
	h = data_hdr(GOOD_NSEG, GOOD_RING, UINT32_MAX);
	len = build(buf, &h, GOOD_INLINE, good_segs, GOOD_NSEG);
	expect_reject(buf, len, &lim, WHY_LENGTH);
	h = data_hdr(GOOD_NSEG, GOOD_RING, UINT32_MAX - WIRE_HDR_LEN - 4 * GOOD_NSEG + 1);
	len = build(buf, &h, GOOD_INLINE, good_segs, GOOD_NSEG);
	expect_reject(buf, len, &lim, WHY_LENGTH);
}

static void test_credit_limits(void **state)
{
	struct wire_rx_limits lim = limits(1000, RING);
	uint8_t buf[256];
	struct wire_hdr h;
	size_t len;

	(void)state;
	lim.max_credit_msgs = 5;
	lim.max_credit_ring = 7000;

	h = data_hdr(GOOD_NSEG, GOOD_RING, GOOD_INLINE);
	h.credit_msgs = 5;
	h.credit_ring = 7000;
	len = build(buf, &h, GOOD_INLINE, good_segs, GOOD_NSEG);
	expect_accept(buf, len, &lim);
	h.credit_msgs = 6;
	len = build(buf, &h, GOOD_INLINE, good_segs, GOOD_NSEG);
	expect_reject(buf, len, &lim, WHY_CREDIT_MSGS);
	h.credit_msgs = UINT32_MAX;
	len = build(buf, &h, GOOD_INLINE, good_segs, GOOD_NSEG);
	expect_reject(buf, len, &lim, WHY_CREDIT_MSGS);
	h.credit_msgs = 0;
	h.credit_ring = 7001;
	len = build(buf, &h, GOOD_INLINE, good_segs, GOOD_NSEG);
	expect_reject(buf, len, &lim, WHY_CREDIT_RING);

	/* Nothing lent: any credit is too much. */
	lim.max_credit_msgs = 0;
	lim.max_credit_ring = 0;
	memset(&h, 0, sizeof(h));
	h.version = WIRE_VERSION;
	h.opcode = WIRE_OP_CREDIT;
	len = build(buf, &h, 0, NULL, 0);
	expect_accept(buf, len, &lim);
	h.credit_msgs = 1;
	len = build(buf, &h, 0, NULL, 0);
	expect_reject(buf, len, &lim, WHY_CREDIT_MSGS);
	h.credit_msgs = 0;
	h.credit_ring = 1;
	len = build(buf, &h, 0, NULL, 0);
	expect_reject(buf, len, &lim, WHY_CREDIT_RING);
}

static void test_version_opcode(void **state)
{
	static const uint8_t bad_versions[] = { 0, 2, 0xff };
	static const uint8_t bad_ops[] = { 0, WIRE_OP_MAX + 1, 0x80, 0xff };
	struct wire_rx_limits lim = limits(1000, RING);
	uint8_t buf[256];
	size_t len, i;

	(void)state;
	for (i = 0; i < sizeof(bad_versions); i++) {
		len = build_good(buf);
		buf[0] = bad_versions[i];
		expect_reject(buf, len, &lim, WHY_VERSION);
	}
	for (i = 0; i < sizeof(bad_ops); i++) {
		len = build_good(buf);
		buf[1] = bad_ops[i];
		expect_reject(buf, len, &lim, WHY_OPCODE);
		/* The same as a bare header. */
		expect_reject(buf, WIRE_HDR_LEN, &lim, WHY_OPCODE);
	}
}

static void test_control_with_data(void **state)
{
	struct wire_rx_limits lim = limits(1000, RING);
	uint8_t buf[256];
	struct wire_hdr h;
	int op, field;
	size_t len;

	(void)state;
	for (op = WIRE_OP_CREDIT; op <= WIRE_OP_MAX; op++) {
		if (!plain_control(op))
			continue;
		for (field = 0; field < 4; field++) {
			memset(&h, 0, sizeof(h));
			h.version = WIRE_VERSION;
			h.opcode = (uint8_t)op;
			switch (field) {
			case 0: h.nseg = 1; break;
			case 1: h.ring_skip = 1; break;
			case 2: h.ring_len = 1; break;
			case 3: h.inline_len = 1; break;
			}
			len = build(buf, &h, 0, NULL, 0);
			expect_reject(buf, len, &lim, WHY_CONTROL);
		}
		/* A well-formed header followed by anything. */
		memset(&h, 0, sizeof(h));
		h.version = WIRE_VERSION;
		h.opcode = (uint8_t)op;
		len = build(buf, &h, 0, NULL, 0);
		expect_accept(buf, len, &lim);
		buf[len] = 0;
		expect_reject(buf, len + 1, &lim, WHY_CONTROL);
		/* Even a full DATA body after a control opcode. */
		len = build_good(buf);
		buf[1] = (uint8_t)op;
		expect_reject(buf, len, &lim, WHY_CONTROL);
	}
}

/* AUTH: a header and exactly WIRE_AUTH_LEN inline bytes, nothing else. */
static size_t build_auth(uint8_t *buf, uint32_t inline_len, uint32_t carried)
{
	struct wire_hdr h;

	memset(&h, 0, sizeof(h));
	h.version = WIRE_VERSION;
	h.opcode = WIRE_OP_AUTH;
	h.inline_len = inline_len;
	return build(buf, &h, carried, NULL, 0);
}

static void test_auth_message(void **state)
{
	struct wire_rx_limits lim = limits(1000, RING);
	struct wire_hdr h, out;
	uint8_t buf[256];
	struct wire_data d;
	const char *why;
	size_t len;
	int field;

	(void)state;
	len = build_auth(buf, WIRE_AUTH_LEN, WIRE_AUTH_LEN);
	assert_int_equal(len, WIRE_HDR_LEN + WIRE_AUTH_LEN);
	memset(&d, 0, sizeof(d));
	assert_int_equal(decode(buf, len, &lim, &out, &d, &why), 0);
	assert_int_equal(out.opcode, WIRE_OP_AUTH);
	assert_int_equal(out.inline_len, WIRE_AUTH_LEN);
	assert_ptr_equal(d.inline_bytes, buf + WIRE_HDR_LEN);
	assert_int_equal(d.inline_bytes[0], 1);

	/* Proof bytes missing, short, long, or disagreeing with the header. */
	expect_reject(buf, WIRE_HDR_LEN, &lim, WHY_AUTH);
	expect_reject(buf, len - 1, &lim, WHY_AUTH);
	buf[len] = 0;
	expect_reject(buf, len + 1, &lim, WHY_AUTH);
	len = build_auth(buf, WIRE_AUTH_LEN - 1, WIRE_AUTH_LEN - 1);
	expect_reject(buf, len, &lim, WHY_AUTH);
	len = build_auth(buf, WIRE_AUTH_LEN + 1, WIRE_AUTH_LEN + 1);
	expect_reject(buf, len, &lim, WHY_AUTH);
	len = build_auth(buf, 0, WIRE_AUTH_LEN);
	expect_reject(buf, len, &lim, WHY_AUTH);
	len = build_auth(buf, UINT32_MAX, WIRE_AUTH_LEN);
	expect_reject(buf, len, &lim, WHY_AUTH);

	/* No segments, skip or ring bytes. */
	for (field = 0; field < 3; field++) {
		memset(&h, 0, sizeof(h));
		h.version = WIRE_VERSION;
		h.opcode = WIRE_OP_AUTH;
		h.inline_len = WIRE_AUTH_LEN;
		switch (field) {
		case 0: h.nseg = 1; break;
		case 1: h.ring_skip = RING - 1000; break;
		case 2: h.ring_len = 1; break;
		}
		len = build(buf, &h, WIRE_AUTH_LEN, NULL, 0);
		expect_reject(buf, len, &lim, WHY_AUTH);
	}

	/* Credits on it are checked like anywhere else. */
	memset(&h, 0, sizeof(h));
	h.version = WIRE_VERSION;
	h.opcode = WIRE_OP_AUTH;
	h.inline_len = WIRE_AUTH_LEN;
	h.credit_msgs = lim.max_credit_msgs + 1;
	len = build(buf, &h, WIRE_AUTH_LEN, NULL, 0);
	expect_reject(buf, len, &lim, WHY_CREDIT_MSGS);

	/* AUTH_OK is a plain control message. */
	memset(&h, 0, sizeof(h));
	h.version = WIRE_VERSION;
	h.opcode = WIRE_OP_AUTH_OK;
	len = build(buf, &h, 0, NULL, 0);
	expect_accept(buf, len, &lim);
	len = build_auth(buf, WIRE_AUTH_LEN, WIRE_AUTH_LEN);
	buf[1] = WIRE_OP_AUTH_OK;
	expect_reject(buf, len, &lim, WHY_CONTROL);
}

static void test_short_message(void **state)
{
	struct wire_rx_limits lim = limits(1000, RING);
	uint8_t buf[256];
	size_t len;

	(void)state;
	build_good(buf);
	for (len = 0; len < WIRE_HDR_LEN; len++)
		expect_reject(buf, len, &lim, WHY_SHORT);
}

/* ---- fuzzing ---- */


/* Values likely to sit on a boundary of some check. */
static uint32_t interesting(void)
{
	static const uint32_t v[] = {
		0, 1, 2, 3, 4, 5, 15, 16, 17, 24, 255, 256, 4095, 4096, 4196, 5536,
		RING - 1, RING, RING + 1, 0x7fff, 0x8000, 0xffff, 0x10000,
		WIRE_SEG_RING, WIRE_SEG_RING | 1, WIRE_SEG_LEN_MASK,
		0xfffffffeU, UINT32_MAX,
	};

	return v[rnd_below(sizeof(v) / sizeof(v[0]))];
}

/* A random valid DATA message (and limits it is valid against). */
static size_t fuzz_seed_msg(uint8_t *buf, struct wire_rx_limits *lim)
{
	uint32_t segs[16], ring_len = 0, inline_len = 0, off, to_end, skip = 0;
	unsigned nseg = 1 + rnd_below(16), i;
	struct wire_hdr h;

	*lim = limits(rnd() >> 20, RING);
	if (rnd_below(8) == 0) {
		/* Other messages now and then, so mutations reach those too. */
		memset(&h, 0, sizeof(h));
		h.version = WIRE_VERSION;
		h.opcode = (uint8_t)(WIRE_OP_CREDIT + rnd_below(WIRE_OP_MAX - WIRE_OP_DATA));
		h.credit_msgs = rnd_below(lim->max_credit_msgs + 1);
		h.credit_ring = rnd_below(lim->max_credit_ring + 1);
		if (h.opcode == WIRE_OP_AUTH) {
			h.inline_len = WIRE_AUTH_LEN;
			return build(buf, &h, WIRE_AUTH_LEN, NULL, 0);
		}
		return build(buf, &h, 0, NULL, 0);
	}
	off = (uint32_t)(lim->ring_pos & (RING - 1));
	to_end = RING - off;
	if (off && rnd_below(4) == 0) {
		/* Skip the tail: the data then has what lies before off. */
		skip = to_end;
		to_end = off;
	}
	for (i = 0; i < nseg; i++) {
		if (rnd_below(2)) {
			uint32_t n = 1 + rnd_below(4096);

			if (ring_len + n > to_end)
				n = 0;
			if (n) {
				segs[i] = WIRE_SEG_RING | n;
				ring_len += n;
				continue;
			}
		}
		segs[i] = 1 + rnd_below(100);
		inline_len += segs[i];
	}
	lim->ring_free = skip + ring_len + rnd_below(RING - skip - ring_len + 1);
	h = data_hdr(nseg, ring_len, inline_len);
	h.ring_skip = skip;
	h.credit_msgs = rnd_below(lim->max_credit_msgs + 1);
	h.credit_ring = rnd_below(lim->max_credit_ring + 1);
	return build(buf, &h, inline_len, segs, nseg);
}

static void mutate(uint8_t *buf, size_t *len, struct wire_rx_limits *lim)
{
	unsigned k, rounds = 1 + rnd_below(4);
	size_t at;

	for (k = 0; k < rounds; k++) {
		switch (rnd_below(9)) {
		case 0:		/* flip a bit */
			at = rnd_below((uint32_t)*len);
			buf[at] ^= (uint8_t)(1u << rnd_below(8));
			break;
		case 1:		/* a random byte */
			buf[rnd_below((uint32_t)*len)] = (uint8_t)rnd();
			break;
		case 2:		/* a header field set to a boundary value */
			wire_put32(buf + 4 * (1 + rnd_below(5)), interesting());
			break;
		case 3:		/* nseg */
			buf[2] = (uint8_t)rnd_below(24);
			buf[3] = rnd_below(8) ? 0 : (uint8_t)rnd();
			break;
		case 4:		/* a descriptor-sized word anywhere after the header */
			if (*len >= WIRE_HDR_LEN + 4) {
				at = WIRE_HDR_LEN + rnd_below((uint32_t)(*len - WIRE_HDR_LEN - 3));
				wire_put32(buf + at, interesting());
			}
			break;
		case 5:		/* truncate */
			*len = rnd_below((uint32_t)*len + 1);
			if (*len == 0)
				*len = 1;
			break;
		case 6:		/* extend with junk */
			while (*len < MAX_MSG && rnd_below(4)) {
				buf[*len] = (uint8_t)rnd();
				(*len)++;
			}
			break;
		case 7:		/* the opcode */
			buf[1] = (uint8_t)rnd_below(WIRE_OP_MAX + 2);
			break;
		case 8:		/* the receiver's view */
			lim->ring_pos = rnd_below(4) ? lim->ring_pos + rnd_below(RING)
						     : rnd();
			lim->ring_free = rnd_below(RING + 1);
			break;
		}
	}
}

static void check_invariants(const uint8_t *buf, size_t len,
			     const struct wire_rx_limits *lim, const struct wire_hdr *h,
			     const struct wire_data *d)
{
	uint64_t ring_sum = 0, inline_sum = 0;
	uint32_t off;
	unsigned i;

	assert_int_equal(h->version, WIRE_VERSION);
	assert_in_range(h->opcode, WIRE_OP_DATA, WIRE_OP_MAX);
	assert_true(h->credit_msgs <= lim->max_credit_msgs);
	assert_true(h->credit_ring <= lim->max_credit_ring);
	if (h->opcode == WIRE_OP_AUTH) {
		assert_int_equal(len, WIRE_HDR_LEN + WIRE_AUTH_LEN);
		assert_int_equal(h->inline_len, WIRE_AUTH_LEN);
		assert_int_equal(h->nseg, 0);
		assert_int_equal(h->ring_skip, 0);
		assert_int_equal(h->ring_len, 0);
		assert_ptr_equal(d->inline_bytes, buf + WIRE_HDR_LEN);
		return;
	}
	if (h->opcode != WIRE_OP_DATA) {
		assert_int_equal(len, WIRE_HDR_LEN);
		assert_int_equal(h->nseg, 0);
		assert_int_equal(h->ring_skip, 0);
		assert_int_equal(h->ring_len, 0);
		assert_int_equal(h->inline_len, 0);
		return;
	}
	assert_true(h->nseg > 0);
	assert_int_equal(len, WIRE_HDR_LEN + (uint64_t)h->inline_len + 4ULL * h->nseg);
	assert_ptr_equal(d->inline_bytes, buf + WIRE_HDR_LEN);
	assert_ptr_equal(d->segs, buf + WIRE_HDR_LEN + h->inline_len);
	for (i = 0; i < h->nseg; i++) {
		uint32_t s = wire_get32(d->segs + 4 * i);

		assert_true((s & WIRE_SEG_LEN_MASK) != 0);
		if (s & WIRE_SEG_RING)
			ring_sum += s & WIRE_SEG_LEN_MASK;
		else
			inline_sum += s & WIRE_SEG_LEN_MASK;
	}
	assert_true(ring_sum == h->ring_len);
	assert_true(inline_sum == h->inline_len);
	assert_true((uint64_t)d->ring_off + h->ring_len <= lim->ring_size);
	assert_true((uint64_t)h->ring_skip + h->ring_len <= lim->ring_free);
	off = (uint32_t)(lim->ring_pos & (lim->ring_size - 1));
	if (h->ring_skip) {
		assert_int_equal(h->ring_skip, lim->ring_size - off);
		assert_int_equal(d->ring_off, 0);
	} else {
		assert_int_equal(d->ring_off, off);
	}
}

static void test_fuzz_data(void **state)
{
	long page = sysconf(_SC_PAGESIZE);
	unsigned long iter, accepted = 0, accepted_data = 0;
	uint8_t work[MAX_MSG + 64], *area, *edge;
	struct wire_rx_limits lim;
	struct wire_data d;
	struct wire_hdr h;
	const char *why;
	size_t len;

	(void)state;
	/*
	 * Every message is decoded from the very end of a page followed by
	 * an inaccessible one, so reading one byte too far faults.
	 */
	area = mmap(NULL, (size_t)page * 3, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(area != MAP_FAILED);
	assert_int_equal(mprotect(area + 2 * page, (size_t)page, PROT_NONE), 0);
	edge = area + 2 * page;

	rng_state = 0x6d696772646d6121ULL;
	for (iter = 0; iter < 100000; iter++) {
		uint8_t *msg;

		len = fuzz_seed_msg(work, &lim);
		if (iter % 16 == 0) {
			/* The unmutated seed must always be accepted. */
			msg = edge - len;
			memcpy(msg, work, len);
			if (decode(msg, len, &lim, &h, &d, &why))
				fail_msg("iteration %lu: valid message rejected: %s", iter, why);
			check_invariants(msg, len, &lim, &h, &d);
		}
		mutate(work, &len, &lim);
		assert_true(len <= MAX_MSG);
		msg = edge - len;
		memcpy(msg, work, len);
		why = NULL;
		if (decode(msg, len, &lim, &h, &d, &why) == 0) {
			accepted++;
			if (h.opcode == WIRE_OP_DATA)
				accepted_data++;
			check_invariants(msg, len, &lim, &h, &d);
		} else {
			assert_non_null(why);
		}
	}
	print_message("fuzz: %lu of %lu mutated messages accepted (%lu DATA)\n",
		      accepted, iter, accepted_data);
	/* The mutations must leave some messages valid, or the loop proved little. */
	assert_true(accepted_data > 1000);
	assert_true(accepted > accepted_data);
	munmap(area, (size_t)page * 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello_round_trip),
		cmocka_unit_test(test_hello_layout),
		cmocka_unit_test(test_hello_padded),
		cmocka_unit_test(test_hello_short),
		cmocka_unit_test(test_hello_bad_magic),
		cmocka_unit_test(test_hello_version),
		cmocka_unit_test(test_hello_flags),
		cmocka_unit_test(test_hello_ring_size),
		cmocka_unit_test(test_hello_ring_addr),
		cmocka_unit_test(test_hello_credits),
		cmocka_unit_test(test_hello_msg_size),
		cmocka_unit_test(test_hdr_layout),
		cmocka_unit_test(test_control_round_trip),
		cmocka_unit_test(test_data_round_trip),
		cmocka_unit_test(test_data_shapes),
		cmocka_unit_test(test_data_skip),
		cmocka_unit_test(test_data_ring_bounds),
		cmocka_unit_test(test_data_segments),
		cmocka_unit_test(test_data_length),
		cmocka_unit_test(test_credit_limits),
		cmocka_unit_test(test_version_opcode),
		cmocka_unit_test(test_control_with_data),
		cmocka_unit_test(test_auth_message),
		cmocka_unit_test(test_short_message),
		cmocka_unit_test(test_fuzz_data),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
