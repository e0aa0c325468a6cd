/* SPDX-License-Identifier: MIT */
/*
 * The migrdma wire protocol, version 1.
 *
 * Connection set-up: each side puts a struct wire_hello into the rdma_cm
 * private data (client in CONNECT, server in ACCEPT).  It tells the peer
 * where its receive ring is and how many SEND messages it can take.
 *
 * The stream: a sender RDMA-WRITEs large page-aligned segments straight
 * from the program's memory into the receiver's ring, then SENDs one
 * message whose segment list says, in stream order, which bytes are in
 * the ring and which are inline in the message itself.  A DATA message is
 * the header, then the inline bytes, then nseg segment descriptors (the
 * sender copies inline bytes before it knows how many segments follow).  Ring bytes of one
 * message are contiguous; ring_skip says how many bytes at the ring's end
 * the sender jumped over to keep them so.
 *
 * Every integer is little-endian.  Every field from the peer is checked
 * by the decode functions before anything else looks at it.
 */
#ifndef MIGRDMA_RDMA_WIRE_H
#define MIGRDMA_RDMA_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define WIRE_MAGIC		0x4452474dU	/* "MGRD" */
#define WIRE_VERSION		1
#define WIRE_HELLO_LEN		32
#define WIRE_HDR_LEN		24
#define WIRE_SEG_RING		0x80000000U
#define WIRE_SEG_LEN_MASK	0x7fffffffU

#define WIRE_RING_MIN		(64u * 1024)
#define WIRE_RING_MAX		(1u << 30)
#define WIRE_MSG_MIN		256u
#define WIRE_MSG_MAX		(1u << 20)
#define WIRE_CREDITS_MAX	1024u
#define WIRE_AUTH_LEN		32u
#define WIRE_NONCE_LEN		16u
/* Private data: hello, then with WIRE_HELLO_AUTH the client's nonce, or the
 * server's nonce and proof. */
#define WIRE_REQ_AUTH_LEN	(WIRE_HELLO_LEN + WIRE_NONCE_LEN)
#define WIRE_REP_AUTH_LEN	(WIRE_HELLO_LEN + WIRE_NONCE_LEN + WIRE_AUTH_LEN)

/* Hello flags. */
#define WIRE_HELLO_AUTH		0x01	/* MIGRDMA_SECRET challenge-response (auth.h) */

/* Rejection reasons carried in a REJECT's private data (one byte after magic). */
enum wire_reject {
	WIRE_REJECT_VERSION = 1,
	WIRE_REJECT_MALFORMED = 2,
	WIRE_REJECT_RESOURCES = 3,
	WIRE_REJECT_POLICY = 4,
};

struct wire_hello {
	uint32_t magic;
	uint8_t version;
	uint8_t flags;
	uint32_t ring_rkey;
	uint64_t ring_addr;
	uint32_t ring_size;	/* power of two */
	uint16_t credits;	/* DATA messages the sender may have outstanding */
	uint32_t msg_size;	/* largest SEND message the receiver accepts */
};

enum wire_opcode {
	WIRE_OP_DATA = 1,	/* stream bytes: ring segments and inline bytes */
	WIRE_OP_CREDIT = 2,	/* only returns credits */
	WIRE_OP_FIN = 3,	/* no more stream bytes: the peer sees EOF */
	WIRE_OP_RESET = 4,	/* abortive close: the peer sees ECONNRESET */
	WIRE_OP_PING = 5,	/* keepalive probe */
	WIRE_OP_PONG = 6,	/* keepalive answer */
	WIRE_OP_AUTH = 7,	/* client's secret proof: WIRE_AUTH_LEN inline bytes */
	WIRE_OP_AUTH_OK = 8,	/* server accepted the proof: the stream may start */
	WIRE_OP_MAX = 8,
};

struct wire_hdr {
	uint8_t version;
	uint8_t opcode;
	uint16_t nseg;		/* DATA: segment descriptors at the message's end */
	uint32_t credit_msgs;	/* receive buffers freed since the last report */
	uint32_t credit_ring;	/* ring bytes freed since the last report */
	uint32_t ring_skip;	/* DATA: bytes skipped at the ring's end first */
	uint32_t ring_len;	/* DATA: bytes of this message placed in the ring */
	uint32_t inline_len;	/* DATA: bytes carried inline after the header */
};

/* What the receiver knows, to validate a message against. */
struct wire_rx_limits {
	uint32_t ring_size;	/* our ring */
	uint64_t ring_pos;	/* ring byte count received so far (mod ring_size = offset) */
	uint64_t ring_free;	/* bytes of our ring not holding unread data */
	uint32_t max_credit_msgs;
	uint32_t max_credit_ring;
};

/* A validated DATA message, pointing into the receive buffer. */
struct wire_data {
	const uint8_t *segs;	/* nseg little-endian u32 descriptors */
	const uint8_t *inline_bytes;
	uint32_t ring_off;	/* offset in our ring of the first ring byte */
};

void wire_hello_encode(const struct wire_hello *h, uint8_t out[WIRE_HELLO_LEN]);

/*
 * Decode and validate a hello of len bytes.  Returns 0, or a negative
 * enum wire_reject value telling why it is unacceptable.
 */
int wire_hello_decode(const void *buf, size_t len, struct wire_hello *out);

void wire_hdr_encode(const struct wire_hdr *h, uint8_t out[WIRE_HDR_LEN]);

/*
 * Decode and validate one received message of len bytes.  For DATA,
 * fills *data and checks: the segment list and inline bytes exactly fill
 * the message; every segment is non-empty; ring segments sum to ring_len
 * and inline ones to inline_len; the skip is 0 or exactly the ring's tail;
 * ring_len fits between the (post-skip) offset and the ring's end, and in
 * the free space.  Credit fields are checked against lim.
 * Returns 0, or -1 with *why set to a static reason string.
 */
int wire_msg_decode(const void *buf, size_t len, const struct wire_rx_limits *lim,
		    struct wire_hdr *hdr, struct wire_data *data, const char **why);

static inline uint32_t wire_seg_encode(uint32_t len, int in_ring)
{
	return (len & WIRE_SEG_LEN_MASK) | (in_ring ? WIRE_SEG_RING : 0);
}

uint32_t wire_get32(const uint8_t *p);
void wire_put32(uint8_t *p, uint32_t v);

#endif
