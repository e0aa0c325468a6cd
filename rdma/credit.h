/* SPDX-License-Identifier: MIT */
/*
 * Credit-based flow control, kept apart from the verbs so it can be tested.
 *
 * A sender may have at most `msgs` DATA messages and `ring_size` ring
 * bytes outstanding.  The receiver returns both as it hands bytes to the
 * program, piggy-backed on its own messages or in a CREDIT message once
 * enough is owed that the sender could be waiting for it.
 */
#ifndef MIGRDMA_RDMA_CREDIT_H
#define MIGRDMA_RDMA_CREDIT_H

#include <stdbool.h>
#include <stdint.h>

struct credit_tx {
	uint32_t msgs_lent;	/* what the peer's hello granted */
	uint32_t msgs_avail;
	uint32_t ring_size;	/* the peer's ring */
	uint64_t ring_pos;	/* ring bytes placed so far, skips included */
	uint64_t ring_acked;	/* ring bytes the peer has freed so far */
};

struct credit_rx {
	uint32_t msgs_lent;
	uint32_t ring_size;	/* our ring */
	uint64_t ring_pos;	/* ring bytes received so far, skips included */
	uint64_t ring_freed;	/* ring bytes handed to the program (or skipped) */
	uint32_t owed_msgs;	/* freed since the last report */
	uint32_t owed_ring;
};

void credit_tx_init(struct credit_tx *tx, uint32_t msgs, uint32_t ring_size);

/* Ring bytes not yet freed by the peer. */
uint64_t credit_tx_ring_used(const struct credit_tx *tx);

/*
 * How many of `want` ring bytes may be placed now, contiguously, at the
 * current ring offset: bounded by free space and by the ring's end.
 */
uint32_t credit_tx_ring_grant(const struct credit_tx *tx, uint32_t want);

/* Offset in the peer's ring where the next ring byte goes. */
uint32_t credit_tx_ring_offset(const struct credit_tx *tx);

/* Account one DATA message carrying ring_len ring bytes. Needs msgs_avail > 0. */
void credit_tx_commit(struct credit_tx *tx, uint32_t ring_len);

/* Apply credits returned by the peer; -1 if it returns more than it holds. */
int credit_tx_return(struct credit_tx *tx, uint32_t msgs, uint32_t ring);

/* Most the peer can legitimately return now (for validating its messages). */
uint32_t credit_tx_max_return_msgs(const struct credit_tx *tx);
uint32_t credit_tx_max_return_ring(const struct credit_tx *tx);

void credit_rx_init(struct credit_rx *rx, uint32_t msgs, uint32_t ring_size);

/* Ring bytes not holding unread data: what a DATA message may still fill. */
uint64_t credit_rx_ring_free(const struct credit_rx *rx);

/* A validated DATA message placed skip + ring_len bytes in our ring. */
void credit_rx_arrived(struct credit_rx *rx, uint32_t skip, uint32_t ring_len);

/* The program consumed a whole message, freeing ring bytes (skip included). */
void credit_rx_message_done(struct credit_rx *rx, uint32_t ring_bytes);

/*
 * Is enough owed that the sender might be stalled on it?  Half the
 * messages or half the ring.  A sender stops only when it has no message
 * credit left or no ring byte free, so once the program has read
 * everything at least that much is owed and no one waits forever; half
 * the ring per report means one credit message, and at most one wake-up
 * of a blocked sender, per half ring (two 2 MiB messages by default).
 */
bool credit_rx_should_report(const struct credit_rx *rx);

/* Take what is owed, for a message header, and zero it. */
void credit_rx_take(struct credit_rx *rx, uint32_t *msgs, uint32_t *ring);

#endif
