// SPDX-License-Identifier: MIT
/* Encoding and validation of everything migrdma puts on the wire. */
#include "wire.h"

#include <string.h>

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v;
	p[1] = v >> 8;
}

void wire_put32(uint8_t *p, uint32_t v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

static void put64(uint8_t *p, uint64_t v)
{
	wire_put32(p, (uint32_t)v);
	wire_put32(p + 4, (uint32_t)(v >> 32));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

uint32_t wire_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)wire_get32(p) | (uint64_t)wire_get32(p + 4) << 32;
}

static int is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/*
 * Hello layout: magic(4) version(1) flags(1) reserved(2) ring_rkey(4)
 * ring_addr(8) ring_size(4) credits(2) reserved(2) msg_size(4) = 32.
 */
void wire_hello_encode(const struct wire_hello *h, uint8_t out[WIRE_HELLO_LEN])
{
	memset(out, 0, WIRE_HELLO_LEN);
	wire_put32(out, h->magic);
	out[4] = h->version;
	out[5] = h->flags;
	wire_put32(out + 8, h->ring_rkey);
	put64(out + 12, h->ring_addr);
	wire_put32(out + 20, h->ring_size);
	put16(out + 24, h->credits);
	wire_put32(out + 28, h->msg_size);
}

int wire_hello_decode(const void *buf, size_t len, struct wire_hello *out)
{
	const uint8_t *p = buf;

	/* rdma_cm may pad private data with zeros, so longer is fine. */
	if (!buf || len < WIRE_HELLO_LEN)
		return -WIRE_REJECT_MALFORMED;
	out->magic = wire_get32(p);
	out->version = p[4];
	out->flags = p[5];
	out->ring_rkey = wire_get32(p + 8);
	out->ring_addr = get64(p + 12);
	out->ring_size = wire_get32(p + 20);
	out->credits = get16(p + 24);
	out->msg_size = wire_get32(p + 28);

	if (out->magic != WIRE_MAGIC)
		return -WIRE_REJECT_MALFORMED;
	if (out->version != WIRE_VERSION)
		return -WIRE_REJECT_VERSION;
	if (out->flags & ~WIRE_HELLO_AUTH)
		return -WIRE_REJECT_MALFORMED;
	if (!is_pow2(out->ring_size) || out->ring_size < WIRE_RING_MIN ||
	    out->ring_size > WIRE_RING_MAX)
		return -WIRE_REJECT_MALFORMED;
	if (out->ring_addr > UINT64_MAX - out->ring_size)
		return -WIRE_REJECT_MALFORMED;
	if (out->credits == 0 || out->credits > WIRE_CREDITS_MAX)
		return -WIRE_REJECT_MALFORMED;
	if (out->msg_size < WIRE_MSG_MIN || out->msg_size > WIRE_MSG_MAX)
		return -WIRE_REJECT_MALFORMED;
	return 0;
}

/*
 * Header layout: version(1) opcode(1) nseg(2) credit_msgs(4)
 * credit_ring(4) ring_skip(4) ring_len(4) inline_len(4) = 24.
 */
void wire_hdr_encode(const struct wire_hdr *h, uint8_t out[WIRE_HDR_LEN])
{
	out[0] = h->version;
	out[1] = h->opcode;
	put16(out + 2, h->nseg);
	wire_put32(out + 4, h->credit_msgs);
	wire_put32(out + 8, h->credit_ring);
	wire_put32(out + 12, h->ring_skip);
	wire_put32(out + 16, h->ring_len);
	wire_put32(out + 20, h->inline_len);
}

static int fail(const char **why, const char *reason)
{
	*why = reason;
	return -1;
}

static int decode_data(const uint8_t *p, size_t len, const struct wire_rx_limits *lim,
		       const struct wire_hdr *h, struct wire_data *data,
		       const char **why)
{
	uint64_t ring_sum = 0, inline_sum = 0, need;
	uint32_t off;
	unsigned i;

	if (h->nseg == 0)
		return fail(why, "DATA without segments");
	need = WIRE_HDR_LEN + (uint64_t)h->nseg * 4 + h->inline_len;
	if (need != len)
		return fail(why, "DATA length does not match its segments");

	data->inline_bytes = p + WIRE_HDR_LEN;
	data->segs = data->inline_bytes + h->inline_len;
	for (i = 0; i < h->nseg; i++) {
		uint32_t d = wire_get32(data->segs + i * 4);
		uint32_t n = d & WIRE_SEG_LEN_MASK;

		if (n == 0)
			return fail(why, "empty segment");
		if (d & WIRE_SEG_RING)
			ring_sum += n;
		else
			inline_sum += n;
	}
	if (ring_sum != h->ring_len || inline_sum != h->inline_len)
		return fail(why, "segment lengths do not add up");

	off = (uint32_t)(lim->ring_pos & (lim->ring_size - 1));
	if (h->ring_skip) {
		if (h->ring_skip != lim->ring_size - off)
			return fail(why, "ring skip does not reach the ring's end");
		off = 0;
	}
	if (h->ring_len > lim->ring_size - off)
		return fail(why, "ring data runs past the ring's end");
	if ((uint64_t)h->ring_skip + h->ring_len > lim->ring_free)
		return fail(why, "ring data overruns unread bytes");
	data->ring_off = off;
	return 0;
}

int wire_msg_decode(const void *buf, size_t len, const struct wire_rx_limits *lim,
		    struct wire_hdr *h, struct wire_data *data, const char **why)
{
	const uint8_t *p = buf;

	if (len < WIRE_HDR_LEN)
		return fail(why, "message shorter than its header");
	h->version = p[0];
	h->opcode = p[1];
	h->nseg = get16(p + 2);
	h->credit_msgs = wire_get32(p + 4);
	h->credit_ring = wire_get32(p + 8);
	h->ring_skip = wire_get32(p + 12);
	h->ring_len = wire_get32(p + 16);
	h->inline_len = wire_get32(p + 20);

	if (h->version != WIRE_VERSION)
		return fail(why, "unknown message version");
	if (h->opcode < WIRE_OP_DATA || h->opcode > WIRE_OP_MAX)
		return fail(why, "unknown opcode");
	if (h->credit_msgs > lim->max_credit_msgs)
		return fail(why, "more message credits than were lent");
	if (h->credit_ring > lim->max_credit_ring)
		return fail(why, "more ring credit than was lent");
	if (h->opcode == WIRE_OP_DATA)
		return decode_data(p, len, lim, h, data, why);
	if (h->opcode == WIRE_OP_AUTH) {
		if (len != WIRE_HDR_LEN + WIRE_AUTH_LEN || h->inline_len != WIRE_AUTH_LEN ||
		    h->nseg || h->ring_skip || h->ring_len)
			return fail(why, "malformed authentication message");
		data->inline_bytes = p + WIRE_HDR_LEN;
		return 0;
	}
	if (len != WIRE_HDR_LEN || h->nseg || h->ring_skip || h->ring_len ||
	    h->inline_len)
		return fail(why, "control message carries data");
	return 0;
}
