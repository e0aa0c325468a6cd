// SPDX-License-Identifier: MIT
/*
 * Unit tests for rdma/credit.c: the sender's and the receiver's view of
 * the credits, and a simulation of both ends exchanging real messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "test_util.h"

#include "rdma/credit.h"
#include "rdma/wire.h"

#define RING	(64u * 1024)

/* ---- the sender ---- */

static void test_tx_init(void **state)
{
	struct credit_tx tx;

	(void)state;
	memset(&tx, 0xa5, sizeof(tx));
	credit_tx_init(&tx, 16, RING);
	assert_int_equal(tx.msgs_lent, 16);
	assert_int_equal(tx.msgs_avail, 16);
	assert_int_equal(credit_tx_ring_used(&tx), 0);
	assert_int_equal(credit_tx_ring_offset(&tx), 0);
	assert_int_equal(credit_tx_max_return_msgs(&tx), 0);
	assert_int_equal(credit_tx_max_return_ring(&tx), 0);
	assert_int_equal(credit_tx_ring_grant(&tx, 0), 0);
	assert_int_equal(credit_tx_ring_grant(&tx, 1), 1);
	assert_int_equal(credit_tx_ring_grant(&tx, RING), RING);
	assert_int_equal(credit_tx_ring_grant(&tx, RING + 1), RING);
	assert_int_equal(credit_tx_ring_grant(&tx, UINT32_MAX), RING);
}

static void test_tx_grant_free_space(void **state)
{
	struct credit_tx tx;

	(void)state;
	credit_tx_init(&tx, 16, RING);
	/* Full: nothing more, whatever is asked. */
	credit_tx_commit(&tx, RING);
	assert_int_equal(credit_tx_ring_used(&tx), RING);
	assert_int_equal(credit_tx_ring_offset(&tx), 0);
	assert_int_equal(credit_tx_ring_grant(&tx, 1), 0);
	assert_int_equal(credit_tx_ring_grant(&tx, UINT32_MAX), 0);

	/*
	 * Wrapped with unread bytes still ahead: 50000 placed, 40000 freed,
	 * then 15536 more up to the end.  Offset 0, 25536 in use: the end is
	 * far but only 40000 are free.
	 */
	credit_tx_init(&tx, 16, RING);
	credit_tx_commit(&tx, 50000);
	assert_int_equal(credit_tx_return(&tx, 1, 40000), 0);
	credit_tx_commit(&tx, RING - 50000);
	assert_int_equal(credit_tx_ring_offset(&tx), 0);
	assert_int_equal(credit_tx_ring_used(&tx), 25536);
	assert_int_equal(credit_tx_ring_grant(&tx, 50000), 40000);
	assert_int_equal(credit_tx_ring_grant(&tx, 40000), 40000);
	assert_int_equal(credit_tx_ring_grant(&tx, 39999), 39999);
}

static void test_tx_grant_ring_end(void **state)
{
	struct credit_tx tx;

	(void)state;
	/* 31000 placed, 1000 freed: 35536 free but only 34536 before the end. */
	credit_tx_init(&tx, 16, RING);
	credit_tx_commit(&tx, 1000);
	credit_tx_commit(&tx, 30000);
	assert_int_equal(credit_tx_return(&tx, 1, 1000), 0);
	assert_int_equal(credit_tx_ring_offset(&tx), 31000);
	assert_int_equal(credit_tx_ring_used(&tx), 30000);
	assert_int_equal(credit_tx_ring_grant(&tx, 35536), RING - 31000);
	assert_int_equal(credit_tx_ring_grant(&tx, RING - 31000), RING - 31000);
	assert_int_equal(credit_tx_ring_grant(&tx, 100), 100);

	/* Everything freed, one byte before the end: one byte, then the start. */
	credit_tx_init(&tx, 16, RING);
	credit_tx_commit(&tx, RING - 1);
	assert_int_equal(credit_tx_return(&tx, 1, RING - 1), 0);
	assert_int_equal(credit_tx_ring_grant(&tx, 4096), 1);
	credit_tx_commit(&tx, 1);
	assert_int_equal(credit_tx_ring_offset(&tx), 0);
	assert_int_equal(credit_tx_ring_grant(&tx, 4096), 4096);
	assert_int_equal(credit_tx_ring_grant(&tx, UINT32_MAX), RING - 1);

	/* The offset keeps wrapping as the stream goes on. */
	credit_tx_init(&tx, 4, RING);
	for (int i = 0; i < 1000; i++) {
		credit_tx_commit(&tx, 40000);
		assert_int_equal(credit_tx_return(&tx, 1, 40000), 0);
		assert_int_equal(credit_tx_ring_offset(&tx),
				 (uint32_t)(((uint64_t)i + 1) * 40000 % RING));
	}
	assert_true(tx.ring_pos == 40000000ULL);
}

static void test_tx_accounting(void **state)
{
	struct credit_tx tx;

	(void)state;
	credit_tx_init(&tx, 3, RING);
	credit_tx_commit(&tx, 100);
	credit_tx_commit(&tx, 0);	/* inline only: a message, no ring */
	assert_int_equal(tx.msgs_avail, 1);
	assert_int_equal(credit_tx_max_return_msgs(&tx), 2);
	assert_int_equal(credit_tx_max_return_ring(&tx), 100);
	assert_int_equal(credit_tx_ring_used(&tx), 100);
	credit_tx_commit(&tx, 200);
	assert_int_equal(tx.msgs_avail, 0);
	assert_int_equal(credit_tx_max_return_msgs(&tx), 3);
	assert_int_equal(credit_tx_max_return_ring(&tx), 300);
	assert_int_equal(credit_tx_ring_offset(&tx), 300);

	/* Partial returns; messages and bytes come back independently. */
	assert_int_equal(credit_tx_return(&tx, 1, 0), 0);
	assert_int_equal(tx.msgs_avail, 1);
	assert_int_equal(credit_tx_ring_used(&tx), 300);
	assert_int_equal(credit_tx_return(&tx, 0, 150), 0);
	assert_int_equal(credit_tx_ring_used(&tx), 150);
	assert_int_equal(credit_tx_max_return_ring(&tx), 150);
	assert_int_equal(credit_tx_return(&tx, 0, 0), 0);
	assert_int_equal(credit_tx_return(&tx, 2, 150), 0);
	assert_int_equal(tx.msgs_avail, 3);
	assert_int_equal(credit_tx_ring_used(&tx), 0);
	assert_int_equal(credit_tx_max_return_msgs(&tx), 0);
	assert_int_equal(credit_tx_max_return_ring(&tx), 0);
	/* The offset does not move back when bytes are freed. */
	assert_int_equal(credit_tx_ring_offset(&tx), 300);
}

static void test_tx_over_return(void **state)
{
	struct credit_tx tx, saved;

	(void)state;
	credit_tx_init(&tx, 4, RING);
	/* Nothing lent yet: nothing may come back. */
	saved = tx;
	assert_int_equal(credit_tx_return(&tx, 1, 0), -1);
	assert_int_equal(credit_tx_return(&tx, 0, 1), -1);
	assert_memory_equal(&tx, &saved, sizeof(tx));

	credit_tx_commit(&tx, 1000);
	credit_tx_commit(&tx, 2000);
	saved = tx;
	assert_int_equal(credit_tx_return(&tx, 3, 0), -1);
	assert_memory_equal(&tx, &saved, sizeof(tx));
	assert_int_equal(credit_tx_return(&tx, 0, 3001), -1);
	assert_memory_equal(&tx, &saved, sizeof(tx));
	/* One good field does not let the other through, nor half-apply. */
	assert_int_equal(credit_tx_return(&tx, 2, 3001), -1);
	assert_memory_equal(&tx, &saved, sizeof(tx));
	assert_int_equal(credit_tx_return(&tx, 3, 3000), -1);
	assert_memory_equal(&tx, &saved, sizeof(tx));
	assert_int_equal(credit_tx_return(&tx, UINT32_MAX, UINT32_MAX), -1);
	assert_memory_equal(&tx, &saved, sizeof(tx));

	/* Exactly what is out is fine; after that, nothing more. */
	assert_int_equal(credit_tx_return(&tx, 2, 3000), 0);
	saved = tx;
	assert_int_equal(credit_tx_return(&tx, 1, 0), -1);
	assert_int_equal(credit_tx_return(&tx, 0, 1), -1);
	assert_memory_equal(&tx, &saved, sizeof(tx));
}

/* ---- the receiver ---- */

static void test_rx_free_space(void **state)
{
	struct credit_rx rx;
	uint32_t m, r;

	(void)state;
	memset(&rx, 0xa5, sizeof(rx));
	credit_rx_init(&rx, 16, RING);
	assert_int_equal(credit_rx_ring_free(&rx), RING);
	assert_false(credit_rx_should_report(&rx));

	credit_rx_arrived(&rx, 0, 1000);
	assert_int_equal(credit_rx_ring_free(&rx), RING - 1000);
	credit_rx_arrived(&rx, 0, 0);	/* inline only */
	assert_int_equal(credit_rx_ring_free(&rx), RING - 1000);

	/* Read, but the sender does not know yet: still not free. */
	credit_rx_message_done(&rx, 1000);
	assert_int_equal(credit_rx_ring_free(&rx), RING - 1000);
	credit_rx_message_done(&rx, 0);
	assert_int_equal(credit_rx_ring_free(&rx), RING - 1000);

	credit_rx_take(&rx, &m, &r);
	assert_int_equal(m, 2);
	assert_int_equal(r, 1000);
	assert_int_equal(credit_rx_ring_free(&rx), RING);

	/* A skip uses the ring like data, and is freed with its message. */
	credit_rx_arrived(&rx, 5000, 3000);
	assert_int_equal(credit_rx_ring_free(&rx), RING - 8000);
	credit_rx_arrived(&rx, 0, RING - 8000);
	assert_int_equal(credit_rx_ring_free(&rx), 0);
	credit_rx_message_done(&rx, 8000);
	assert_int_equal(credit_rx_ring_free(&rx), 0);
	credit_rx_take(&rx, &m, &r);
	assert_int_equal(m, 1);
	assert_int_equal(r, 8000);
	assert_int_equal(credit_rx_ring_free(&rx), 8000);
	credit_rx_message_done(&rx, RING - 8000);
	credit_rx_take(&rx, &m, &r);
	assert_int_equal(credit_rx_ring_free(&rx), RING);
	assert_true(rx.ring_pos == RING + 1000);
}

static void test_rx_should_report(void **state)
{
	struct credit_rx rx;
	uint32_t m, r;
	int i;

	(void)state;
	/* Half the messages: 7 of 16 is not enough, 8 is. */
	credit_rx_init(&rx, 16, RING);
	for (i = 0; i < 7; i++) {
		credit_rx_arrived(&rx, 0, 10);
		credit_rx_message_done(&rx, 10);
		assert_false(credit_rx_should_report(&rx));
	}
	credit_rx_arrived(&rx, 0, 10);
	credit_rx_message_done(&rx, 10);
	assert_true(credit_rx_should_report(&rx));
	credit_rx_take(&rx, &m, &r);
	assert_int_equal(m, 8);
	assert_int_equal(r, 80);
	assert_false(credit_rx_should_report(&rx));

	/* Half the ring, in one message. */
	credit_rx_arrived(&rx, 0, RING / 2 - 1);
	credit_rx_message_done(&rx, RING / 2 - 1);
	assert_false(credit_rx_should_report(&rx));
	credit_rx_take(&rx, &m, &r);
	credit_rx_arrived(&rx, 0, RING / 2);
	credit_rx_message_done(&rx, RING / 2);
	assert_true(credit_rx_should_report(&rx));
	credit_rx_take(&rx, &m, &r);

	/* ... or accumulated over several, skips included. */
	credit_rx_arrived(&rx, 0, RING / 4);
	credit_rx_message_done(&rx, RING / 4);
	assert_false(credit_rx_should_report(&rx));
	credit_rx_arrived(&rx, RING / 4 - 1, 0);
	credit_rx_message_done(&rx, RING / 4 - 1);
	assert_false(credit_rx_should_report(&rx));
	credit_rx_arrived(&rx, 0, 1);
	credit_rx_message_done(&rx, 1);
	assert_true(credit_rx_should_report(&rx));

	/* Odd and tiny message counts round up: 2 of 3 is half, 1 of 1 too. */
	credit_rx_init(&rx, 3, RING);
	credit_rx_arrived(&rx, 0, 0);
	credit_rx_message_done(&rx, 0);
	assert_false(credit_rx_should_report(&rx));
	credit_rx_arrived(&rx, 0, 0);
	credit_rx_message_done(&rx, 0);
	assert_true(credit_rx_should_report(&rx));
	credit_rx_init(&rx, 1, RING);
	assert_false(credit_rx_should_report(&rx));
	credit_rx_arrived(&rx, 0, 0);
	credit_rx_message_done(&rx, 0);
	assert_true(credit_rx_should_report(&rx));

	/* The largest ring: no overflow in the half test. */
	credit_rx_init(&rx, WIRE_CREDITS_MAX, WIRE_RING_MAX);
	credit_rx_arrived(&rx, 0, WIRE_RING_MAX / 2 - 1);
	credit_rx_message_done(&rx, WIRE_RING_MAX / 2 - 1);
	assert_false(credit_rx_should_report(&rx));
	credit_rx_arrived(&rx, 0, WIRE_RING_MAX / 2);
	credit_rx_message_done(&rx, WIRE_RING_MAX / 2);
	assert_true(credit_rx_should_report(&rx));
	credit_rx_take(&rx, &m, &r);
	assert_int_equal(r, WIRE_RING_MAX - 1);
}

static void test_rx_take(void **state)
{
	struct credit_rx rx, before;
	uint32_t m = 99, r = 99;

	(void)state;
	credit_rx_init(&rx, 16, RING);
	credit_rx_take(&rx, &m, &r);
	assert_int_equal(m, 0);
	assert_int_equal(r, 0);

	credit_rx_arrived(&rx, 0, 4096);
	credit_rx_arrived(&rx, 0, 512);
	credit_rx_message_done(&rx, 4096);
	credit_rx_message_done(&rx, 512);
	before = rx;
	credit_rx_take(&rx, &m, &r);
	assert_int_equal(m, 2);
	assert_int_equal(r, 4608);
	assert_int_equal(rx.owed_msgs, 0);
	assert_int_equal(rx.owed_ring, 0);
	/* Nothing else moves. */
	assert_true(rx.ring_pos == before.ring_pos);
	assert_true(rx.ring_freed == before.ring_freed);
	assert_int_equal(rx.msgs_lent, before.msgs_lent);
	assert_int_equal(rx.ring_size, before.ring_size);
	/* A second take finds nothing. */
	credit_rx_take(&rx, &m, &r);
	assert_int_equal(m, 0);
	assert_int_equal(r, 0);
	assert_false(credit_rx_should_report(&rx));
}

/* ---- both ends together ---- */


#define SIM_QUEUE	1024
#define SIM_MSG_MAX	(WIRE_HDR_LEN + 256 + 3 * 4)

/* One DATA message on the wire or waiting to be read. */
struct sim_msg {
	uint8_t buf[SIM_MSG_MAX];
	size_t len;
	/* Filled in by the receiver on arrival. */
	uint32_t skip;
	uint32_t ring_len;
	uint32_t inline_len;
	uint32_t ring_off;
	uint32_t unread;
};

/* One credit report from the receiver to the sender. */
struct sim_credit {
	uint8_t buf[WIRE_HDR_LEN];
};

struct sim {
	struct credit_tx tx;
	struct credit_rx rx;
	uint32_t msgs;
	uint32_t ring_size;
	bool skips;			/* the sender sometimes skips the ring's tail */

	struct sim_msg wire[SIM_QUEUE];	/* sent, not arrived: FIFO */
	unsigned wire_head, wire_count;
	struct sim_msg rxq[SIM_QUEUE];	/* arrived, not yet wholly read */
	unsigned rxq_head, rxq_count;
	struct sim_credit back[SIM_QUEUE];	/* reports on their way back */
	unsigned back_head, back_count;

	/* Ground truth, kept apart from the credit structures. */
	uint64_t ring_bytes_sent;	/* skips included */
	uint64_t ring_bytes_freed;
	uint64_t msgs_sent;
	uint64_t msgs_freed;
	uint64_t stream_sent;
	uint64_t stream_read;
	uint64_t blocked;
	uint64_t unstalls;
};

/* Could the sender send a message wanting `want` ring bytes (0: inline only)? */
static bool sim_sender_blocked(const struct sim *s, uint32_t want)
{
	if (s->tx.msgs_avail == 0)
		return true;
	return want && credit_tx_ring_grant(&s->tx, want) == 0;
}

static void sim_check(const struct sim *s)
{
	uint64_t ring_out = s->ring_bytes_sent - s->ring_bytes_freed;

	/* The sender never has more out than it was lent... */
	assert_true(credit_tx_ring_used(&s->tx) <= s->ring_size);
	assert_true(s->tx.msgs_avail <= s->msgs);
	/* ... and really never puts more in the ring, or in flight, than fits. */
	assert_true(ring_out <= s->ring_size);
	assert_true(s->msgs_sent - s->msgs_freed <= s->msgs);
	assert_true(s->wire_count + s->rxq_count <= s->msgs);
	/* The receiver's view never lets a sender in beyond what is free. */
	assert_true(credit_rx_ring_free(&s->rx) <= s->ring_size - (s->rx.ring_pos - s->rx.ring_freed));
}

/* The sender builds one DATA message, as wire.h lays it out. */
static void sim_send(struct sim *s, uint32_t want, uint32_t inline_len)
{
	struct sim_msg *m = &s->wire[(s->wire_head + s->wire_count) % SIM_QUEUE];
	uint32_t segs[3], nseg = 0, ring_len = 0, skip = 0, off, i;
	struct wire_hdr h;

	assert_false(sim_sender_blocked(s, want));
	assert_true(s->wire_count < SIM_QUEUE);
	off = credit_tx_ring_offset(&s->tx);
	if (want) {
		ring_len = credit_tx_ring_grant(&s->tx, want);
		/*
		 * Instead of a short piece before the end, skip the tail and
		 * place all of it at the start when that much is free.
		 */
		if (s->skips && off && ring_len < want &&
		    (uint64_t)(s->ring_size - off) + want <=
		    s->ring_size - credit_tx_ring_used(&s->tx) && rnd_below(2)) {
			skip = s->ring_size - off;
			ring_len = want;
		}
		assert_true(ring_len > 0);
		/* The contiguous piece never runs past the ring's end. */
		assert_true((uint64_t)(skip ? 0 : off) + ring_len <= s->ring_size);
	}
	/* Inline bytes before the ring piece, after it, or on both sides. */
	if (!ring_len) {
		segs[nseg++] = inline_len;
	} else if (!inline_len) {
		segs[nseg++] = WIRE_SEG_RING | ring_len;
	} else {
		uint32_t before = rnd_below(inline_len + 1);

		if (before)
			segs[nseg++] = before;
		segs[nseg++] = WIRE_SEG_RING | ring_len;
		if (inline_len - before)
			segs[nseg++] = inline_len - before;
	}

	memset(&h, 0, sizeof(h));
	h.version = WIRE_VERSION;
	h.opcode = WIRE_OP_DATA;
	h.nseg = (uint16_t)nseg;
	h.ring_skip = skip;
	h.ring_len = ring_len;
	h.inline_len = inline_len;
	wire_hdr_encode(&h, m->buf);
	m->len = WIRE_HDR_LEN;
	for (i = 0; i < inline_len; i++)
		m->buf[m->len++] = (uint8_t)i;
	for (i = 0; i < nseg; i++, m->len += 4)
		wire_put32(m->buf + m->len, segs[i]);

	credit_tx_commit(&s->tx, skip + ring_len);
	s->wire_count++;
	s->ring_bytes_sent += skip + ring_len;
	s->msgs_sent++;
	s->stream_sent += ring_len + inline_len;
	sim_check(s);
}

/* The oldest DATA message reaches the receiver, which validates it. */
static void sim_arrive(struct sim *s)
{
	struct sim_msg *m = &s->wire[s->wire_head];
	struct wire_rx_limits lim;
	struct wire_data d;
	struct wire_hdr h;
	const char *why = NULL;

	lim.ring_size = s->ring_size;
	lim.ring_pos = s->rx.ring_pos;
	lim.ring_free = credit_rx_ring_free(&s->rx);
	/* No reverse traffic in this model: no credit may ride on DATA. */
	lim.max_credit_msgs = 0;
	lim.max_credit_ring = 0;
	if (wire_msg_decode(m->buf, m->len, &lim, &h, &d, &why))
		fail_msg("the receiver rejected what the sender's credits allowed: %s", why);
	credit_rx_arrived(&s->rx, h.ring_skip, h.ring_len);

	assert_true(s->rxq_count < SIM_QUEUE);
	m->skip = h.ring_skip;
	m->ring_len = h.ring_len;
	m->inline_len = h.inline_len;
	m->ring_off = d.ring_off;
	m->unread = h.ring_len + h.inline_len;
	s->rxq[(s->rxq_head + s->rxq_count) % SIM_QUEUE] = *m;
	s->rxq_count++;
	s->wire_head = (s->wire_head + 1) % SIM_QUEUE;
	s->wire_count--;
	sim_check(s);
}

/* The receiver reports what it owes, in a CREDIT message. */
static void sim_report(struct sim *s)
{
	struct sim_credit *c = &s->back[(s->back_head + s->back_count) % SIM_QUEUE];
	struct wire_hdr h;

	assert_true(s->back_count < SIM_QUEUE);
	memset(&h, 0, sizeof(h));
	h.version = WIRE_VERSION;
	h.opcode = WIRE_OP_CREDIT;
	credit_rx_take(&s->rx, &h.credit_msgs, &h.credit_ring);
	assert_int_equal(s->rx.owed_msgs, 0);
	assert_int_equal(s->rx.owed_ring, 0);
	wire_hdr_encode(&h, c->buf);
	s->back_count++;
}

/* The program reads up to n bytes; whole messages give their credit back. */
static void sim_consume(struct sim *s, uint64_t n, bool piggyback)
{
	while (n && s->rxq_count) {
		struct sim_msg *m = &s->rxq[s->rxq_head];
		uint32_t k = m->unread < n ? m->unread : (uint32_t)n;

		m->unread -= k;
		n -= k;
		s->stream_read += k;
		if (m->unread)
			break;
		credit_rx_message_done(&s->rx, m->skip + m->ring_len);
		s->ring_bytes_freed += m->skip + m->ring_len;
		s->msgs_freed++;
		s->rxq_head = (s->rxq_head + 1) % SIM_QUEUE;
		s->rxq_count--;
	}
	/* As recv.c does: report once enough is owed... */
	if (credit_rx_should_report(&s->rx))
		sim_report(s);
	/* ... and now and then on a message going the other way anyway. */
	else if (piggyback && (s->rx.owed_msgs || s->rx.owed_ring))
		sim_report(s);
	sim_check(s);
}

/* The oldest report reaches the sender, which validates and applies it. */
static void sim_credit_arrive(struct sim *s)
{
	struct sim_credit *c = &s->back[s->back_head];
	struct wire_rx_limits lim;
	struct wire_data d;
	struct wire_hdr h;
	const char *why = NULL;

	lim.ring_size = s->ring_size;
	lim.ring_pos = 0;
	lim.ring_free = s->ring_size;
	lim.max_credit_msgs = credit_tx_max_return_msgs(&s->tx);
	lim.max_credit_ring = credit_tx_max_return_ring(&s->tx);
	if (wire_msg_decode(c->buf, WIRE_HDR_LEN, &lim, &h, &d, &why))
		fail_msg("the sender rejected the receiver's credit: %s", why);
	assert_int_equal(credit_tx_return(&s->tx, h.credit_msgs, h.credit_ring), 0);
	s->back_head = (s->back_head + 1) % SIM_QUEUE;
	s->back_count--;
	sim_check(s);
}

/*
 * Everything in flight arrives and the program reads it all, the receiver
 * reporting only when should_report says so.  After that nothing can move
 * any more, so a sender still blocked would wait forever.
 */
static void sim_drain(struct sim *s, uint32_t want)
{
	bool was_blocked = sim_sender_blocked(s, want);

	while (s->wire_count || s->rxq_count || s->back_count) {
		while (s->wire_count)
			sim_arrive(s);
		sim_consume(s, UINT64_MAX, false);
		while (s->back_count)
			sim_credit_arrive(s);
	}
	assert_int_equal(s->rxq_count, 0);
	assert_true(s->stream_read == s->stream_sent);
	if (sim_sender_blocked(s, want))
		fail_msg("stall: sender blocked (msgs_avail %u of %u, ring used %llu of %u, "
			 "want %u) with everything read; the receiver owes %u msgs / %u bytes "
			 "and should_report says %d",
			 s->tx.msgs_avail, s->msgs,
			 (unsigned long long)credit_tx_ring_used(&s->tx), s->ring_size, want,
			 s->rx.owed_msgs, s->rx.owed_ring, credit_rx_should_report(&s->rx));
	if (was_blocked)
		s->unstalls++;
}

static void sim_round(struct sim *s, unsigned steps)
{
	unsigned i;

	for (i = 0; i < steps; i++) {
		uint32_t want = 0, inline_len = 0;

		/* What the program writes next: page-aligned bulk, or small bytes. */
		switch (rnd_below(4)) {
		case 0:
			inline_len = 1 + rnd_below(256);
			break;
		case 1:
			want = 1 + rnd_below(s->ring_size / 4);
			break;
		case 2:
			want = 1 + rnd_below(s->ring_size);
			inline_len = rnd_below(2) ? 1 + rnd_below(256) : 0;
			break;
		case 3:
			want = 4096 * (1 + rnd_below(s->ring_size / 4096));
			break;
		}
		if (!sim_sender_blocked(s, want)) {
			sim_send(s, want, inline_len);
		} else {
			s->blocked++;
			if (rnd_below(8) == 0)
				sim_drain(s, want);
		}

		/* The network and the receiver move at their own pace. */
		while (s->wire_count && rnd_below(3))
			sim_arrive(s);
		if (s->rxq_count && rnd_below(2))
			sim_consume(s, 1 + rnd_below(s->ring_size / 2), rnd_below(16) == 0);
		while (s->back_count && rnd_below(2))
			sim_credit_arrive(s);
	}
	sim_drain(s, 1);
	sim_drain(s, 0);
	/* Whatever is still owed goes back when the connection winds down. */
	sim_report(s);
	sim_credit_arrive(s);
}

static void sim_init(struct sim *s, uint32_t msgs, uint32_t ring_size, bool skips)
{
	memset(s, 0, sizeof(*s));
	s->msgs = msgs;
	s->ring_size = ring_size;
	s->skips = skips;
	credit_tx_init(&s->tx, msgs, ring_size);
	credit_rx_init(&s->rx, msgs, ring_size);
}

static void test_simulation(void **state)
{
	static const uint32_t msgs[] = { 1, 2, 3, 5, 16, 17, 64, WIRE_CREDITS_MAX };
	static const uint32_t rings[] = { WIRE_RING_MIN, 128u * 1024, 1u << 20 };
	static struct sim s;
	uint64_t total_blocked = 0, total_unstalls = 0, total_bytes = 0;
	unsigned round;

	(void)state;
	rng_state = 0x637265646974ULL;
	for (round = 0; round < 1000; round++) {
		uint32_t m = msgs[rnd_below(sizeof(msgs) / sizeof(msgs[0]))];
		uint32_t r = rings[rnd_below(sizeof(rings) / sizeof(rings[0]))];

		sim_init(&s, m, r, rnd_below(2));
		sim_round(&s, 2000);
		total_blocked += s.blocked;
		total_unstalls += s.unstalls;
		total_bytes += s.stream_sent;
		/* Everything sent was read; every credit came home. */
		assert_true(s.stream_read == s.stream_sent);
		assert_int_equal(s.tx.msgs_avail, m);
		assert_int_equal(credit_tx_ring_used(&s.tx), 0);
		assert_int_equal(credit_rx_ring_free(&s.rx), r);
	}
	print_message("simulation: %llu bytes, sender blocked %llu times, "
		      "%llu blocked drains freed by should_report reports\n",
		      (unsigned long long)total_bytes, (unsigned long long)total_blocked,
		      (unsigned long long)total_unstalls);
	/* The model must actually exercise the blocked paths. */
	assert_true(total_blocked > 1000);
	assert_true(total_unstalls > 100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tx_init),
		cmocka_unit_test(test_tx_grant_free_space),
		cmocka_unit_test(test_tx_grant_ring_end),
		cmocka_unit_test(test_tx_accounting),
		cmocka_unit_test(test_tx_over_return),
		cmocka_unit_test(test_rx_free_space),
		cmocka_unit_test(test_rx_should_report),
		cmocka_unit_test(test_rx_take),
		cmocka_unit_test(test_simulation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
