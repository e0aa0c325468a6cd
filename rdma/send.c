// SPDX-License-Identifier: MIT
/*
 * The send path: how a write fills and posts DATA messages (message.c
 * builds them), and when it waits.
 *
 * Nothing here waits that need not.  A write posts its messages and
 * returns; completions are reaped by whichever thread calls in next.  It
 * waits only for zero-copy bytes the program may overwrite the moment the
 * call returns (memory rt_options.defer does not cover), or for window
 * space.
 *
 * Fewer, larger messages cost fewer packets (every RDMA message is
 * acknowledged) and fewer wake-ups at the receiver.  QEMU writes 128 KiB
 * at a time, so a bulk write whose bytes may stay in flight is held back
 * until the next write joins it, up to RT_HOLD_TARGET, but only within a
 * stream of bulk writes (the first after a read or a small write always
 * goes at once) and never while a thread is blocked reading the
 * connection.  Small copied writes are held only in a stream of such
 * writes (QEMU's TLS channel writes one record of at most 16 KiB per
 * call); the service thread then looks every RT_HOLD_TICK_MS and posts
 * what no write has added to since it last looked.  Otherwise what is
 * held is sent by the next small write after bulk ones (a request or a
 * marker somebody waits for), by any read or shutdown or close of the
 * connection, by the service thread's tick if nothing was added for a
 * whole tick, or once the message is full.  MSG_MORE holds even a small
 * write.  Under TCP_NODELAY no small write is held, MSG_MORE or not, but a
 * bulk stream is, with the fast tick watching its tail.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "common/log.h"

/* Where the caller's iovec array has got to. */
struct iov_cursor {
	const struct iovec *iov;
	int iovcnt;
	int i;
	size_t off;
	size_t zcopy;			/* of the bytes taken, those sent zero-copy */
	size_t call_bytes;		/* the whole write */
};

/* Fill the open message from the cursor.  Returns bytes taken. */
static size_t tx_fill(struct rt_conn *c, struct iov_cursor *cur, bool *no_zcopy)
{
	struct tx_msg *m = &c->tx;
	size_t taken = 0;

	tx_update_budget(c);
	while (cur->i < cur->iovcnt) {
		const struct iovec *v = &cur->iov[cur->i];
		const uint8_t *src = (const uint8_t *)v->iov_base + cur->off;
		size_t left = v->iov_len - cur->off;
		int64_t n;

		if (!left) {
			cur->i++;
			cur->off = 0;
			continue;
		}
		if (!*no_zcopy && zcopy_eligible(v)) {
			n = take_zcopy(c, m, src, left);
			if (n < 0) {
				/* Unregistrable memory still has to arrive: copy it. */
				*no_zcopy = true;
				continue;
			}
			cur->zcopy += (size_t)n;
		} else {
			n = take_inline(m, src, left);
		}
		if (n == 0)
			break;
		cur->off += (size_t)n;
		taken += (size_t)n;
	}
	if (taken)
		m->gen++;
	return taken;
}

/* Hand the rest of the write to the backlog (backlog.c); false if it may not go there. */
static bool send_to_backlog(struct rt_conn *c, struct iov_cursor *cur, bool no_zcopy,
			    size_t *total)
{
	size_t rest;

	if (no_zcopy || !tx_backlog_admit(c, cur->iov, cur->iovcnt, cur->i, cur->off,
					  cur->call_bytes))
		return false;
	rest = cur->call_bytes - *total;
	*total += rest;
	cur->zcopy += rest;
	cur->i = cur->iovcnt;
	cur->off = 0;
	return true;
}

static bool cursor_done(const struct iov_cursor *cur)
{
	int i;

	for (i = cur->i; i < cur->iovcnt; i++)
		if (cur->iov[i].iov_len > (i == cur->i ? cur->off : 0))
			return false;
	return true;
}

/* A broken connection's error for the program, as a negative errno. */
static int broken_error(const struct rt_conn *c)
{
	return -(c->sticky_error ? c->sticky_error : EPIPE);
}

/* Why a write cannot go ahead, as a negative errno; 0 if it can. */
static int send_blocked_error(struct rt_conn *c)
{
	if (c->state == CS_FAILED)
		return broken_error(c);
	if (c->shut_wr || c->fin_sent || c->peer_gone)
		return -EPIPE;
	if (c->state != CS_ESTABLISHED && c->state != CS_DISCONNECTED)
		return c->state < CS_ESTABLISHED ? -EAGAIN : -ENOTCONN;
	return 0;
}

void tx_note_write(struct rt_conn *c, bool small_copied)
{
	uint64_t now;

	/* Any other write ends the stream; only a stream needs the clock. */
	if (!small_copied) {
		c->write_streak = 0;
		return;
	}
	now = rt_coarse_ms();
	if (now - c->last_write_ms > RT_STREAM_GAP_MS)
		c->write_streak = 0;
	c->write_streak++;
	c->last_write_ms = now;
}

void tx_stream_reset(struct rt_conn *c)
{
	c->bulk_streak = 0;
	c->write_streak = 0;
}

/*
 * May the open message stay unposted when this write returns?  Only in a
 * stream: the write before this one was bulk too and nothing was read in
 * between, so the program is not waiting for an answer to the first of
 * them; or, for a small write that was copied, many such writes came
 * with no read, pause or other write in between (a small write after bulk
 * ones is a marker somebody may wait for: multifd's sync packet, QEMU's
 * end of a section).  A small zero-copy write (a page postcopy
 * needs urgently) always goes.  And nothing is held while a thread is
 * blocked reading this connection: it may wait for the peer's answer to
 * what we would hold (QEMU's return path).
 */
bool tx_may_hold(const struct rt_conn *c, size_t call_bytes, size_t call_zcopy, int flags)
{
	const struct tx_msg *m = &c->tx;

	if (m->must_wait || c->state != CS_ESTABLISHED || c->sleepers)
		return false;
	if (m->ring_len + m->inline_len >= RT_HOLD_TARGET)
		return false;
	if ((flags & RT_SEND_MORE) && !c->nodelay)
		return true;
	/*
	 * A bulk stream is held even with TCP_NODELAY, which is about small
	 * writes: QEMU sets it on every multifd channel, whose 512 KiB
	 * packets would otherwise each be a message of their own.  The fast
	 * tick bounds how long such a tail waits (rt_send).
	 */
	if (call_bytes >= RT_HOLD_MIN_CALL)
		return c->bulk_streak > 0;
	if (c->nodelay)
		return false;
	return !call_zcopy && c->write_streak > RT_STREAM_WRITES;
}

/*
 * A write was held that must not wait for the 100 ms tick (a small one,
 * or any under TCP_NODELAY): make sure the service thread ticks fast.  It
 * clears the flag before it looks at the connections, so either it sees
 * this message (we hold the lock it needs) or we see the flag clear.
 */
static void tx_hold_fast(struct rt_conn *c)
{
	c->tx.fast_flush = true;
	if (!__atomic_exchange_n(&rt_g.fast_tick, true, __ATOMIC_ACQ_REL))
		conn_wake_service();
}

/*
 * The connection failed while the message numbered seq was posted, so the
 * device may still be reading the program's buffer.  conn_fail put the
 * queue pair in the error state, which completes every posted request:
 * wait for that before the write returns.  Nobody is woken for completions
 * of a failed connection, so poll, briefly; a device that never flushes
 * costs RT_FLUSH_WAIT_MS, then a warning.
 */
static void wait_flushed(struct rt_conn *c, uint64_t seq)
{
	uint64_t deadline = rt_now_ms() + RT_FLUSH_WAIT_MS;
	struct timespec pause = { 0, 200 * 1000 };

	for (;;) {
		conn_progress(c);
		if (c->seq_done >= seq || !conn_has_queues(c))
			return;
		if (rt_now_ms() >= deadline)
			break;
		pthread_mutex_unlock(&c->lock);
		nanosleep(&pause, NULL);
		pthread_mutex_lock(&c->lock);
	}
	log_warn(c->id, "the device did not return a failed write's buffer within %u ms; "
		 "it may still read it", RT_FLUSH_WAIT_MS);
}

/*
 * Wait until the message numbered seq has completed: the device has read
 * every byte of it.  On most devices the completion is already there.
 */
static void wait_sent(struct rt_conn *c, uint64_t seq)
{
	conn_progress(c);
	while (c->seq_done < seq && c->state != CS_FAILED)
		conn_sleep(c, 0, WAIT_SENDS);
	/*
	 * Beyond seq_posted: the device refused that message and holds
	 * nothing of it, but may still hold the call's earlier ones.
	 */
	if (seq > c->seq_posted)
		seq = c->seq_posted;
	if (c->seq_done < seq)
		wait_flushed(c, seq);
}

/*
 * Window space is short: 1 to look again once woken, -EAGAIN if not to
 * wait.  Short of credit only, no completion of our own sends can help:
 * only the peer's (solicited) messages wake the writer then.
 */
static int wait_for_window(struct rt_conn *c, uint64_t deadline, bool nonblock)
{
	enum conn_wait_for what = conn_short_of_credit_only(c) ? WAIT_CREDIT : WAIT_SENDS;

	if (nonblock || !conn_sleep(c, deadline, what))
		return -EAGAIN;
	return 1;
}

/* One pass of rt_send's loop: 1 to go on, 0 when done, or a negative errno. */
static int send_step(struct rt_conn *c, struct iov_cursor *cur, bool *no_zcopy,
		     uint64_t deadline, bool nonblock, size_t *total, uint64_t *wait_seq)
{
	int err = send_blocked_error(c);
	size_t n;

	if (err == -EAGAIN && !nonblock)	/* a blocking write while still connecting */
		return conn_sleep(c, deadline, WAIT_MESSAGE) ? 1 : -EAGAIN;
	if (err)
		return err;
	if (!c->tx.open) {
		/* No slot, credit or queue room: what completed may have freed some. */
		if (!tx_can_open(c)) {
			if (conn_progress(c))
				return 1;
			if (send_to_backlog(c, cur, *no_zcopy, total))
				return 0;
			return wait_for_window(c, deadline, nonblock);
		}
		tx_open(c);
	}
	n = tx_fill(c, cur, no_zcopy);
	*total += n;
	if (cursor_done(cur))
		return 0;
	if (!c->tx.nseg) {
		/* The peer's ring is full: nothing fits until it reads. */
		conn_progress(c);
		tx_update_budget(c);
		if (c->tx.ring_budget)
			return 1;
		if (send_to_backlog(c, cur, *no_zcopy, total))
			return 0;
		return wait_for_window(c, deadline, nonblock);
	}
	if (c->tx.must_wait)
		*wait_seq = c->seq_posted + 1;
	return tx_post(c) ? broken_error(c) : 1;
}

/*
 * Bytes handed to the backlog earlier go first.  This write joins them if
 * it may (0: done); otherwise it waits until they are all in messages, so
 * that it goes out right behind them (1: go on as usual), or fails.
 */
static int send_after_backlog(struct rt_conn *c, struct iov_cursor *cur, uint64_t deadline,
			      bool nonblock, size_t *total)
{
	int err;

	for (;;) {
		err = send_blocked_error(c);
		if (err)
			return err;
		if (tx_backlog_pump(c, true))
			return broken_error(c);
		if (tx_backlog_empty(c))
			return 1;
		if (send_to_backlog(c, cur, false, total))
			return 0;
		if (wait_for_window(c, deadline, nonblock) < 0)
			return -EAGAIN;
		conn_progress(c);
	}
}

ssize_t rt_send(struct rt_conn *c, const struct iovec *iov, int iovcnt, int flags,
		int timeout_ms)
{
	uint64_t deadline = rt_deadline(timeout_ms);
	bool nonblock = timeout_ms == 0;
	struct iov_cursor cur = { iov, iovcnt, 0, 0, 0, iov_total(iov, iovcnt) };
	uint64_t wait_seq = 0;
	bool no_zcopy = false, small;
	size_t total = 0;
	int err;

	pthread_mutex_lock(&c->lock);
	c->stats.writes++;
	c->in_call++;
	conn_progress(c);
	err = tx_backlog_empty(c) ? 1 : send_after_backlog(c, &cur, deadline, nonblock, &total);
	while (err == 1)
		err = cursor_done(&cur) ? 0 :
		      send_step(c, &cur, &no_zcopy, deadline, nonblock, &total, &wait_seq);
	/*
	 * Whatever this write leaves in the open message goes now, unless
	 * the next write may join it.  A write that stops short (EAGAIN, a
	 * timeout) posts too: nobody may wait on bytes that are held.
	 */
	small = total < RT_HOLD_MIN_CALL;
	tx_note_write(c, small && !cur.zcopy);
	if (c->tx.open && c->tx.nseg) {
		if (err < 0 || !tx_may_hold(c, total, cur.zcopy, flags)) {
			if (c->tx.must_wait)
				wait_seq = c->seq_posted + 1;
			if (tx_flush(c) && !total)
				err = broken_error(c);
		} else if ((small || c->nodelay) && !c->tx.fast_flush) {
			tx_hold_fast(c);
		}
	}
	c->bulk_streak = small ? 0 : c->bulk_streak + 1;
	/* The caller may reuse its buffers only once the device has read them. */
	if (wait_seq) {
		wait_sent(c, wait_seq);
		if (c->seq_ok < wait_seq)
			err = broken_error(c), total = 0;
	}
	c->in_call--;
	conn_update_events(c, false);
	conn_arm(c);
	pthread_mutex_unlock(&c->lock);
	if (total > 0)
		return (ssize_t)total;
	return err < 0 ? err : 0;
}

void rt_conn_set_nodelay(struct rt_conn *c, bool on)
{
	pthread_mutex_lock(&c->lock);
	c->nodelay = on;
	if (on)
		tx_flush(c);
	pthread_mutex_unlock(&c->lock);
}
