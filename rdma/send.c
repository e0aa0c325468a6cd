// SPDX-License-Identifier: MIT
/*
 * The send path.  Each DATA message is up to RT_MAX_WR_PER_MSG RDMA WRITEs
 * of page-aligned program memory into the peer's ring, followed by one
 * SEND that carries the small bytes inline and the segment list that puts
 * everything back in stream order.  The WRITEs are unsignalled: the RC
 * queue pair completes the SEND only after them.
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

#define PAGE_SIZE_BYTES 4096u

/* Where the caller's iovec array has got to. */
struct iov_cursor {
	const struct iovec *iov;
	int iovcnt;
	int i;
	size_t off;
	size_t zcopy;			/* of the bytes taken, those sent zero-copy */
};

/* The mapping (from /proc/self/maps) holding addr; 0 if none. */
static int find_mapping(uintptr_t addr, uintptr_t *start, uintptr_t *end)
{
	char line[512];
	FILE *f = fopen("/proc/self/maps", "re");
	int found = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		if (sscanf(line, "%lx-%lx", &s, &e) == 2 && s <= addr && addr < e) {
			*start = s;
			*end = e;
			found = 1;
			break;
		}
	}
	fclose(f);
	return found;
}

/*
 * MIGRDMA_PIN_ALL: on the first miss in a mapping, register all of it (as
 * far as the pin limit allows) so later sends never stop to register.
 * Returns the registrations made.
 */
static unsigned pin_whole_mapping(struct rt_conn *c, uintptr_t addr)
{
	size_t chunk = rt_g.opts.chunk;
	struct regcache_stats st;
	struct regcache_ref ref;
	uintptr_t start, end, a;
	unsigned made = 0;
	int registered;

	if (!find_mapping(addr, &start, &end))
		return 0;
	for (a = start & ~(uintptr_t)(chunk - 1); a < end; a += chunk) {
		uintptr_t s = a < start ? start : a;
		uintptr_t e = a + chunk > end ? end : a + chunk;

		regcache_get_stats(c->regcache, &st);
		/* Never evict what is already pinned to pin more. */
		if (st.pinned_bytes + chunk > rt_g.opts.pin_limit)
			break;
		if (regcache_get(c->regcache, (void *)s, e - s, &ref, &registered))
			break;
		regcache_put(c->regcache, ref.entry);
		made += registered;
	}
	log_info(c->id, "MIGRDMA_PIN_ALL: registered %u chunks of the mapping at %#lx-%#lx",
		 made, (unsigned long)start, (unsigned long)end);
	return made;
}


static bool zcopy_eligible(const struct iovec *v)
{
	return ((uintptr_t)v->iov_base & (PAGE_SIZE_BYTES - 1)) == 0 &&
	       v->iov_len >= rt_g.opts.zcopy_min;
}

static uint32_t seg_room(const struct tx_msg *m, bool new_seg)
{
	uint32_t used = WIRE_HDR_LEN + m->inline_len + 4 * (m->nseg + (new_seg ? 1 : 0));

	if (new_seg && m->nseg >= RT_MAX_SEGS)
		return 0;
	return used >= m->cap ? 0 : m->cap - used;
}

static void add_seg(struct tx_msg *m, uint32_t n, bool ring)
{
	if (m->nseg && m->last_seg_ring == ring &&
	    (m->segs[m->nseg - 1] & WIRE_SEG_LEN_MASK) + (uint64_t)n <= WIRE_SEG_LEN_MASK) {
		m->segs[m->nseg - 1] += n;
		return;
	}
	m->segs[m->nseg++] = wire_seg_encode(n, ring);
	m->last_seg_ring = ring;
}

/* Copy up to n bytes inline; returns bytes taken. */
static uint32_t take_inline(struct tx_msg *m, const uint8_t *src, size_t n)
{
	bool new_seg = !(m->nseg && !m->last_seg_ring);
	uint32_t room = seg_room(m, new_seg);

	if (n > room)
		n = room;
	if (!n)
		return 0;
	memcpy(m->buf + WIRE_HDR_LEN + m->inline_len, src, n);
	m->inline_len += n;
	add_seg(m, (uint32_t)n, false);
	m->inline_bytes += n;
	return (uint32_t)n;
}

/* Add [a, a+n) under ref to the message's WRITEs; false when they are full. */
static bool add_sge(struct rt_conn *c, struct tx_msg *m, uintptr_t a, uint32_t n,
		    const struct regcache_ref *ref)
{
	struct tx_slot *s = m->slot;
	struct ibv_sge *prev;
	unsigned w;

	w = m->nwr ? m->nwr - 1 : 0;
	prev = m->nwr && m->nsge[w] ? &m->sge[w][m->nsge[w] - 1] : NULL;
	if (prev && prev->lkey == ref->lkey && prev->addr + prev->length == a &&
	    s->nrefs && s->refs[s->nrefs - 1] == ref->entry) {
		/* Neighbouring pages of one registration: one SGE, one reference. */
		prev->length += n;
		regcache_put(c->regcache, ref->entry);
		return true;
	}
	if (s->nrefs >= RT_MAX_REFS)
		return false;
	if (m->nwr == 0 || m->nsge[w] == c->max_sge) {
		if (m->nwr == RT_MAX_WR_PER_MSG)
			return false;
		m->nsge[m->nwr++] = 0;
		w = m->nwr - 1;
	}
	m->sge[w][m->nsge[w]].addr = a;
	m->sge[w][m->nsge[w]].length = n;
	m->sge[w][m->nsge[w]].lkey = ref->lkey;
	m->nsge[w]++;
	s->refs[s->nrefs++] = ref->entry;
	return true;
}

/*
 * Reference n bytes of program memory for an RDMA WRITE; returns bytes
 * taken, 0 when the message is full, or -1 when the memory cannot be
 * registered (the caller then copies it instead).
 */
static int64_t take_zcopy(struct rt_conn *c, struct tx_msg *m, const uint8_t *src, size_t n)
{
	size_t chunk = rt_g.opts.chunk;
	uintptr_t a = (uintptr_t)src;
	struct regcache_ref ref;
	int registered;
	bool new_seg = !(m->nseg && m->last_seg_ring);

	if (n > m->ring_budget - m->ring_len)
		n = m->ring_budget - m->ring_len;
	/* A registration never spans chunks: split at the boundary. */
	if (n > chunk - (a & (chunk - 1)))
		n = chunk - (a & (chunk - 1));
	if (!n || !seg_room(m, new_seg) || m->slot->nrefs >= RT_MAX_REFS)
		return 0;

	if (regcache_get(c->regcache, src, n, &ref, &registered)) {
		log_debug(c->id, "cannot register %zu bytes at %p (%m); copying them instead",
			  n, (const void *)src);
		return -1;
	}
	m->registrations += registered;
	if (registered && rt_g.opts.pin_all)
		m->registrations += pin_whole_mapping(c, a);
	if (!add_sge(c, m, a, (uint32_t)n, &ref)) {
		regcache_put(c->regcache, ref.entry);
		return 0;
	}
	if (!m->must_wait && !defer_allowed(src, n))
		m->must_wait = true;
	m->ring_len += (uint32_t)n;
	add_seg(m, (uint32_t)n, true);
	m->zcopy_bytes += n;
	return (int64_t)n;
}

/* Can a new message be started: a free slot, a credit, and room in the send queue? */
static bool tx_can_open(const struct rt_conn *c)
{
	return c->ctx.msgs_avail > 0 && conn_room_for_message(c);
}

static void tx_open(struct rt_conn *c)
{
	struct tx_msg *m = &c->tx;

	m->open = true;
	m->must_wait = false;
	m->slot_idx = c->slot_next;
	m->slot = &c->slots[m->slot_idx];
	m->slot->nrefs = 0;
	m->buf = c->sbufs + (size_t)m->slot_idx * RT_MSG_SIZE;
	m->cap = c->peer_msg_size;
	m->inline_len = 0;
	m->ring_len = 0;
	m->nseg = 0;
	m->last_seg_ring = false;
	m->nwr = 0;
	m->zcopy_bytes = 0;
	m->inline_bytes = 0;
	m->registrations = 0;
	m->remote_off = credit_tx_ring_offset(&c->ctx);
	m->ring_budget = 0;
	m->fast_flush = false;
}

/* Ring bytes the open message may still place: they only grow as credit returns. */
static void tx_update_budget(struct rt_conn *c)
{
	/* A quarter of the ring per message keeps several messages in flight. */
	uint32_t b = credit_tx_ring_grant(&c->ctx, c->ctx.ring_size / 4);

	if (b > c->tx.ring_budget)
		c->tx.ring_budget = b;
}

/* The open message's nwr work requests are on the send queue. */
static void tx_slot_posted(struct rt_conn *c, unsigned nwr)
{
	struct tx_slot *s = c->tx.slot;

	s->busy = true;
	s->nwr = nwr;
	s->seq = ++c->seq_posted;
	s->ctrl_before = c->ctrl_posted;
	c->data_wrs_outstanding += nwr;
	c->slot_next = (c->slot_next + 1) % RT_TX_SLOTS;
}

/*
 * The device refused the message's work request number taken.  Those
 * before it, WRITEs from the program's memory, it took, and none of them
 * is signalled.  conn_fail stops the queue pair; a signalled marker behind
 * them then completes (flushed) only once they have, and stands for the
 * message, so that a write waiting for it waits for them.  Only in the
 * error state: otherwise the marker would really be sent, and complete
 * as if the message had.
 */
static void tx_post_failed(struct rt_conn *c, unsigned taken)
{
	struct ibv_send_wr marker, *bad = NULL;

	conn_fail(c, ECONNRESET, "cannot post a send");
	if (!taken || c->qp->state != IBV_QPS_ERR)
		return;
	memset(&marker, 0, sizeof(marker));
	marker.wr_id = rt_wr_id(RT_WR_DATA, c->tx.slot_idx);
	marker.opcode = IBV_WR_SEND;
	marker.send_flags = IBV_SEND_SIGNALED;
	if (ibv_post_send(c->qp, &marker, &bad)) {
		log_warn(c->id, "the device took %u writes of a message it then refused, "
			 "and cannot post the marker that would show them finished", taken);
		return;
	}
	tx_slot_posted(c, taken + 1);
}

static int tx_post(struct rt_conn *c)
{
	struct ibv_send_wr wrs[RT_MAX_WR_PER_MSG + 1], *bad = NULL;
	struct tx_msg *m = &c->tx;
	struct ibv_sge send_sge;
	struct wire_hdr h;
	uint64_t remote = c->peer_ring_addr + m->remote_off;
	unsigned i, nw = 0;
	uint32_t len;

	memset(wrs, 0, sizeof(wrs));
	for (i = 0; i < m->nwr; i++) {
		uint32_t bytes = 0;

		if (!m->nsge[i])
			continue;
		for (unsigned k = 0; k < m->nsge[i]; k++)
			bytes += m->sge[i][k].length;
		wrs[nw].opcode = IBV_WR_RDMA_WRITE;
		wrs[nw].sg_list = m->sge[i];
		wrs[nw].num_sge = (int)m->nsge[i];
		wrs[nw].wr.rdma.remote_addr = remote;
		wrs[nw].wr.rdma.rkey = c->peer_rkey;
		wrs[nw].next = &wrs[nw + 1];
		remote += bytes;
		nw++;
	}

	memset(&h, 0, sizeof(h));
	h.version = WIRE_VERSION;
	h.opcode = WIRE_OP_DATA;
	h.nseg = (uint16_t)m->nseg;
	h.ring_len = m->ring_len;
	h.inline_len = m->inline_len;
	credit_rx_take(&c->crx, &h.credit_msgs, &h.credit_ring);
	wire_hdr_encode(&h, m->buf);
	len = WIRE_HDR_LEN + m->inline_len;
	for (i = 0; i < m->nseg; i++, len += 4)
		wire_put32(m->buf + len, m->segs[i]);

	send_sge.addr = (uintptr_t)m->buf;
	send_sge.length = len;
	send_sge.lkey = c->sbuf_mr->lkey;
	wrs[nw].wr_id = rt_wr_id(RT_WR_DATA, m->slot_idx);
	wrs[nw].opcode = IBV_WR_SEND;
	wrs[nw].sg_list = &send_sge;
	wrs[nw].num_sge = 1;
	/* Solicited: a receiver with nothing to read asked to be woken by it. */
	wrs[nw].send_flags = IBV_SEND_SIGNALED | IBV_SEND_SOLICITED;
	if (len <= c->max_inline)
		wrs[nw].send_flags |= IBV_SEND_INLINE;
	wrs[nw].next = NULL;

	m->open = false;
	if (ibv_post_send(c->qp, wrs, &bad)) {
		/* A provider that does not say which one failed may have taken them all. */
		tx_post_failed(c, bad >= wrs && bad <= &wrs[nw] ? (unsigned)(bad - wrs) : nw);
		return -1;
	}
	tx_slot_posted(c, nw + 1);
	credit_tx_commit(&c->ctx, m->ring_len);
	c->last_tx_ms = rt_coarse_ms();
	c->stats.msgs_out++;
	c->stats.bytes_out += m->zcopy_bytes + m->inline_bytes;
	c->stats.bytes_out_zerocopy += m->zcopy_bytes;
	c->stats.bytes_out_send += m->inline_bytes;
	c->stats.registrations += m->registrations;
	return 0;
}

int tx_flush(struct rt_conn *c)
{
	if (!c->tx.open || !c->tx.nseg)
		return 0;
	if (c->state == CS_FAILED)
		return -1;
	return tx_post(c);
}

void tx_flush_if_idle(struct rt_conn *c, uint64_t *seen)
{
	struct tx_msg *m = &c->tx;

	if (m->open && m->nseg && m->gen == *seen)
		tx_flush(c);
	*seen = m->gen;
}

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

static bool cursor_done(const struct iov_cursor *cur)
{
	int i;

	for (i = cur->i; i < cur->iovcnt; i++)
		if (cur->iov[i].iov_len > (i == cur->i ? cur->off : 0))
			return false;
	return true;
}

/* Why a write cannot go ahead, as a negative errno; 0 if it can. */
static int send_blocked_error(struct rt_conn *c)
{
	if (c->state == CS_FAILED)
		return -(c->sticky_error ? c->sticky_error : EPIPE);
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
		if (c->seq_done >= seq || !c->cq || c->destroyed)
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
		if (!tx_can_open(c))
			return conn_progress(c) ? 1 : wait_for_window(c, deadline, nonblock);
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
		return c->tx.ring_budget ? 1 : wait_for_window(c, deadline, nonblock);
	}
	if (c->tx.must_wait)
		*wait_seq = c->seq_posted + 1;
	return tx_post(c) ? -(c->sticky_error ? c->sticky_error : EPIPE) : 1;
}

ssize_t rt_send(struct rt_conn *c, const struct iovec *iov, int iovcnt, int flags,
		int timeout_ms)
{
	uint64_t deadline = rt_deadline(timeout_ms);
	bool nonblock = timeout_ms == 0;
	struct iov_cursor cur = { iov, iovcnt, 0, 0, 0 };
	uint64_t wait_seq = 0;
	bool no_zcopy = false, small;
	size_t total = 0;
	int err;

	pthread_mutex_lock(&c->lock);
	c->stats.writes++;
	c->in_call++;
	conn_progress(c);
	do {
		err = cursor_done(&cur) ? 0 :
		      send_step(c, &cur, &no_zcopy, deadline, nonblock, &total, &wait_seq);
	} while (err == 1);
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
				err = -(c->sticky_error ? c->sticky_error : EPIPE);
		} else if ((small || c->nodelay) && !c->tx.fast_flush) {
			tx_hold_fast(c);
		}
	}
	c->bulk_streak = small ? 0 : c->bulk_streak + 1;
	/* The caller may reuse its buffers only once the device has read them. */
	if (wait_seq) {
		wait_sent(c, wait_seq);
		if (c->seq_ok < wait_seq)
			err = -(c->sticky_error ? c->sticky_error : EPIPE), total = 0;
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
