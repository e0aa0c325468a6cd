// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for everything a peer can send: the hello in the
 * rdma_cm private data and every message on the queue pair.  The first
 * input byte picks the parser and the receiver state it is checked against.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rdma/wire.h"

static void check_hello(const uint8_t *data, size_t size)
{
	struct wire_hello h;
	uint8_t again[WIRE_HELLO_LEN];
	struct wire_hello h2;

	/* Zeroed so padding compares equal below. */
	memset(&h, 0, sizeof(h));
	memset(&h2, 0, sizeof(h2));
	if (wire_hello_decode(data, size, &h))
		return;
	/* Whatever is accepted must survive a round trip unchanged. */
	wire_hello_encode(&h, again);
	if (wire_hello_decode(again, sizeof(again), &h2) || memcmp(&h, &h2, sizeof(h)))
		abort();
	if ((h.ring_size & (h.ring_size - 1)) || h.credits == 0)
		abort();
}

static void check_msg(uint8_t selector, const uint8_t *data, size_t size)
{
	struct wire_rx_limits lim;
	struct wire_data d;
	struct wire_hdr h;
	const char *why;
	uint64_t ring = 0, inl = 0;
	unsigned i;

	lim.ring_size = 1u << (16 + (selector & 7));
	lim.ring_pos = (uint64_t)(selector >> 3) * 4099;
	lim.ring_free = lim.ring_size >> (selector & 1);
	lim.max_credit_msgs = 16;
	lim.max_credit_ring = lim.ring_size;
	if (wire_msg_decode(data, size, &lim, &h, &d, &why))
		return;
	if (h.opcode != WIRE_OP_DATA)
		return;
	/* An accepted DATA message must be safe to copy out exactly as described. */
	if (d.inline_bytes != data + WIRE_HDR_LEN)
		abort();
	for (i = 0; i < h.nseg; i++) {
		uint32_t s = wire_get32(d.segs + 4 * i);

		if (s & WIRE_SEG_RING)
			ring += s & WIRE_SEG_LEN_MASK;
		else
			inl += s & WIRE_SEG_LEN_MASK;
	}
	if (ring != h.ring_len || inl != h.inline_len ||
	    (uint64_t)d.ring_off + h.ring_len > lim.ring_size ||
	    d.segs + 4 * (size_t)h.nseg != data + size)
		abort();
	/* It fits the unread space, and starts where the receiver says, not the sender. */
	if ((uint64_t)h.ring_skip + h.ring_len > lim.ring_free)
		abort();
	if (d.ring_off != (h.ring_skip ? 0 : (uint32_t)(lim.ring_pos & (lim.ring_size - 1))))
		abort();
	if (h.ring_skip && h.ring_skip != lim.ring_size - (uint32_t)(lim.ring_pos & (lim.ring_size - 1)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	if (data[0] & 0x80)
		check_hello(data + 2, size - 2);
	else
		check_msg(data[1], data + 2, size - 2);
	return 0;
}
