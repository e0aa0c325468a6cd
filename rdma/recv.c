// SPDX-License-Identifier: MIT
/*
 * The receive path: copy queued DATA messages out to the program in
 * stream order, from our ring and from the messages' inline bytes, and
 * give credit back as whole messages are consumed.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"
#include "common/log.h"

/* Give a fully read message's buffer and ring space back. */
static void rx_msg_release(struct rt_conn *c)
{
	struct rx_msg *m = &c->rxq[c->rxq_head];

	credit_rx_message_done(&c->crx, m->hdr.ring_skip + m->hdr.ring_len);
	c->rxq_head = (c->rxq_head + 1) % RT_DATA_CREDITS;
	c->rxq_count--;
	if (c->qp && conn_post_recv(c, m->buf) && c->state != CS_FAILED &&
	    !c->peer_gone && !c->disconnecting)
		conn_fail(c, ECONNRESET, "cannot re-post a receive buffer");
}

/* Where the caller's iovec array has been filled to. */
struct iov_pos {
	const struct iovec *iov;
	int iovcnt;
	int i;
	size_t off;
	bool discard;		/* count the bytes, copy nothing (MSG_TRUNC) */
};

static size_t iov_put(struct iov_pos *p, const uint8_t *src, size_t n)
{
	size_t done = 0;

	while (done < n && p->i < p->iovcnt) {
		size_t room = p->iov[p->i].iov_len - p->off;
		size_t k = n - done < room ? n - done : room;

		if (!p->discard)
			memcpy((uint8_t *)p->iov[p->i].iov_base + p->off, src + done, k);
		done += k;
		p->off += k;
		if (p->off == p->iov[p->i].iov_len) {
			p->i++;
			p->off = 0;
		}
	}
	return done;
}

/*
 * Copy what fits of message m into p.  With consume false the message's
 * cursor is left as it was (MSG_PEEK).
 */
static size_t rx_copy_msg(struct rt_conn *c, struct rx_msg *m, struct iov_pos *p,
			  bool consume, bool *finished)
{
	struct rx_msg cur = *m;
	size_t total = 0;

	while (cur.seg < cur.hdr.nseg && p->i < p->iovcnt) {
		uint32_t d = wire_get32(cur.data.segs + (size_t)cur.seg * 4);
		uint32_t len = d & WIRE_SEG_LEN_MASK;
		const uint8_t *src;
		size_t n;

		if (d & WIRE_SEG_RING)
			src = c->ring + cur.data.ring_off + cur.ring_off;
		else
			src = cur.data.inline_bytes + cur.inline_off;
		/* src already points at the segment's unread part. */
		n = iov_put(p, src, len - cur.seg_off);
		total += n;
		cur.seg_off += (uint32_t)n;
		if (d & WIRE_SEG_RING)
			cur.ring_off += (uint32_t)n;
		else
			cur.inline_off += (uint32_t)n;
		if (cur.seg_off == len) {
			cur.seg++;
			cur.seg_off = 0;
		}
	}
	*finished = cur.seg == cur.hdr.nseg;
	if (consume)
		*m = cur;
	return total;
}

/* Copy queued bytes out; returns bytes copied. */
static size_t rx_copy(struct rt_conn *c, struct iov_pos *p, bool consume)
{
	size_t total = 0;
	unsigned k = 0;
	bool finished;

	while (k < c->rxq_count && p->i < p->iovcnt) {
		struct rx_msg *m = &c->rxq[(c->rxq_head + k) % RT_DATA_CREDITS];

		total += rx_copy_msg(c, m, p, consume, &finished);
		if (!finished)
			break;
		if (consume)
			rx_msg_release(c);	/* advances the head */
		else
			k++;
	}
	if (consume) {
		c->rx_ready -= total;
		c->stats.bytes_in += total;
		if (total && credit_rx_should_report(&c->crx))
			conn_send_ctrl(c, WIRE_OP_CREDIT);
	}
	return total;
}

void conn_rx_discard(struct rt_conn *c)
{
	while (c->rxq_count)
		rx_msg_release(c);
	c->rx_ready = 0;
	if (credit_rx_should_report(&c->crx))
		conn_send_ctrl(c, WIRE_OP_CREDIT);
}

/*
 * A peek consumes nothing, and only consumed bytes free room for more: can
 * more still arrive?  Credit owed to the peer is reported first, so it
 * never waits on us; then only a full queue of messages or a full ring
 * stops it.
 */
static bool rx_can_grow(struct rt_conn *c)
{
	if (c->crx.owed_msgs || c->crx.owed_ring)
		conn_send_ctrl(c, WIRE_OP_CREDIT);
	return c->rxq_count < c->crx.msgs_lent &&
	       c->crx.ring_pos - c->crx.ring_freed < c->crx.ring_size;
}

ssize_t rt_recv(struct rt_conn *c, const struct iovec *iov, int iovcnt, int flags,
		int timeout_ms)
{
	uint64_t deadline = rt_deadline(timeout_ms);
	bool nonblock = timeout_ms == 0;
	struct iov_pos p = { iov, iovcnt, 0, 0, flags & RT_RECV_TRUNC };
	bool peek = flags & RT_RECV_PEEK;
	size_t want = iov_total(iov, iovcnt), got = 0;
	ssize_t ret;

	if (want == 0)
		return 0;
	pthread_mutex_lock(&c->lock);
	c->stats.reads++;
	c->in_call++;
	/* A reader may be waiting for the answer to what we hold back: send it. */
	tx_flush(c);
	tx_stream_reset(c);
	conn_progress(c);
	for (;;) {
		if (c->shut_rd) {
			ret = (ssize_t)got;
			break;
		}
		if (c->rx_ready) {
			struct iov_pos q = p;

			if (peek) {
				got = rx_copy(c, &q, false);
			} else {
				got += rx_copy(c, &p, true);
			}
			/* A peek with MSG_WAITALL waits for the whole length too, as TCP's does. */
			if (!(flags & RT_RECV_WAITALL) || got == want) {
				ret = (ssize_t)got;
				break;
			}
			if (peek && !rx_can_grow(c)) {
				ret = (ssize_t)got;
				break;
			}
		}
		if (c->fin_received || c->peer_gone) {
			/* The peer vanished without a FIN: that is a reset, not EOF. */
			ret = got || c->fin_received ? (ssize_t)got : -ECONNRESET;
			break;
		}
		if (c->state == CS_FAILED) {
			ret = got ? (ssize_t)got : -(c->sticky_error ? c->sticky_error : ECONNRESET);
			break;
		}
		if (c->state != CS_ESTABLISHED && c->state != CS_DISCONNECTED && nonblock) {
			ret = got ? (ssize_t)got : -EAGAIN;
			break;
		}
		if (nonblock) {
			ret = got ? (ssize_t)got : -EAGAIN;
			break;
		}
		if (!conn_sleep(c, deadline, WAIT_MESSAGE)) {
			ret = got ? (ssize_t)got : -EAGAIN;
			break;
		}
	}
	c->in_call--;
	conn_update_events(c, false);
	conn_arm(c);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int rt_shutdown(struct rt_conn *c, int how)
{
	int ret = 0;

	if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	if (c->state != CS_ESTABLISHED && c->state != CS_DISCONNECTED &&
	    c->state != CS_FAILED) {
		/* Shutting down a connect in progress abandons it. */
		conn_fail(c, ECONNABORTED, "shut down before the connection was established");
		c->shut_rd = c->shut_wr = true;
		goto out;
	}
	if (how == SHUT_RD || how == SHUT_RDWR) {
		c->shut_rd = true;
		conn_rx_discard(c);
	}
	if (how == SHUT_WR || how == SHUT_RDWR) {
		tx_flush(c);
		c->shut_wr = true;
		if (!c->fin_sent && c->state == CS_ESTABLISHED)
			conn_send_ctrl(c, WIRE_OP_FIN);
	}
out:
	conn_wake_waiters(c);
	conn_update_events(c, false);
	pthread_mutex_unlock(&c->lock);
	return ret;
}
