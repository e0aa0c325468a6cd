// SPDX-License-Identifier: MIT
#include "credit.h"

void credit_tx_init(struct credit_tx *tx, uint32_t msgs, uint32_t ring_size)
{
	tx->msgs_lent = msgs;
	tx->msgs_avail = msgs;
	tx->ring_size = ring_size;
	tx->ring_pos = 0;
	tx->ring_acked = 0;
}

uint64_t credit_tx_ring_used(const struct credit_tx *tx)
{
	return tx->ring_pos - tx->ring_acked;
}

uint32_t credit_tx_ring_offset(const struct credit_tx *tx)
{
	return (uint32_t)(tx->ring_pos & (tx->ring_size - 1));
}

uint32_t credit_tx_ring_grant(const struct credit_tx *tx, uint32_t want)
{
	uint64_t free = tx->ring_size - credit_tx_ring_used(tx);
	uint32_t to_end = tx->ring_size - credit_tx_ring_offset(tx);

	if (want > free)
		want = (uint32_t)free;
	if (want > to_end)
		want = to_end;
	return want;
}

void credit_tx_commit(struct credit_tx *tx, uint32_t ring_len)
{
	tx->msgs_avail--;
	tx->ring_pos += ring_len;
}

uint32_t credit_tx_max_return_msgs(const struct credit_tx *tx)
{
	return tx->msgs_lent - tx->msgs_avail;
}

uint32_t credit_tx_max_return_ring(const struct credit_tx *tx)
{
	return (uint32_t)credit_tx_ring_used(tx);
}

int credit_tx_return(struct credit_tx *tx, uint32_t msgs, uint32_t ring)
{
	if (msgs > credit_tx_max_return_msgs(tx) ||
	    ring > credit_tx_max_return_ring(tx))
		return -1;
	tx->msgs_avail += msgs;
	tx->ring_acked += ring;
	return 0;
}

void credit_rx_init(struct credit_rx *rx, uint32_t msgs, uint32_t ring_size)
{
	rx->msgs_lent = msgs;
	rx->ring_size = ring_size;
	rx->ring_pos = 0;
	rx->ring_freed = 0;
	rx->owed_msgs = 0;
	rx->owed_ring = 0;
}

uint64_t credit_rx_ring_free(const struct credit_rx *rx)
{
	/* Bytes freed but not yet reported are still unusable by the sender. */
	return rx->ring_size - (rx->ring_pos - rx->ring_freed) - rx->owed_ring;
}

void credit_rx_arrived(struct credit_rx *rx, uint32_t skip, uint32_t ring_len)
{
	rx->ring_pos += (uint64_t)skip + ring_len;
}

void credit_rx_message_done(struct credit_rx *rx, uint32_t ring_bytes)
{
	rx->owed_msgs++;
	rx->ring_freed += ring_bytes;
	rx->owed_ring += ring_bytes;
}

bool credit_rx_should_report(const struct credit_rx *rx)
{
	return rx->owed_msgs * 2 >= rx->msgs_lent ||
	       (uint64_t)rx->owed_ring * 2 >= rx->ring_size;
}

void credit_rx_take(struct credit_rx *rx, uint32_t *msgs, uint32_t *ring)
{
	*msgs = rx->owed_msgs;
	*ring = rx->owed_ring;
	rx->owed_msgs = 0;
	rx->owed_ring = 0;
}
