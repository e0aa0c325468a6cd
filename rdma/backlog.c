// SPDX-License-Identifier: MIT
/*
 * The backlog: stream bytes a write hands over when the peer's ring has no
 * room for them, so that the write returns at once instead of waiting for
 * the peer to read.  It is a deeper send queue for memory whose writes may
 * complete in the background anyway (rt_options.defer: QEMU's guest RAM),
 * like the queue native rdma: posts without flow control.  Pinned, not
 * copied: each zero-copy range keeps its own registration reference until
 * a message takes it, so munmap or madvise cannot change what goes out;
 * the few copied bytes between pages (QEMU's 8-byte page headers) are
 * copied into the arena.
 *
 * Why it matters: QEMU checks how much RAM is left to send after each
 * iterator call, which it ends after 50 ms.  Writes that wait for the
 * wire make every call move only what the wire moves in 50 ms, so QEMU
 * stops the guest with nearly its whole threshold still to send.  With
 * the backlog a call hands over far more, and the write that ends it
 * waits for all of it (see below), as native rdma: drains its queue at
 * the end of each call: the RAM left falls in large steps, and what is
 * left at the stop is smaller.
 *
 * A write may join the backlog only if all of it may: a bulk write
 * (RT_HOLD_MIN_CALL or more), every zero-copy segment in memory whose
 * writes may complete in the background, every other segment small, and
 * its last segment zero-copy; with nobody blocked reading the
 * connection (its answer may be behind), within MIGRDMA_BACKLOG bytes.
 * A write that ends in copied bytes (QEMU's end-of-section marker, which
 * ends each iterator call; a multifd sync packet; any request) is not
 * taken: it waits until the whole backlog is in messages, then goes as
 * usual.  So when the program goes on after such a write, at most a
 * ring's worth of its bytes is in flight, as without the backlog.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "common/log.h"

/* Copied segments between pages are small; a larger one ends the stream. */
#define BL_COPY_MAX	(64u * 1024)

/* Room for the copied bytes: QEMU's are 8 per page, 9 per zero page. */
static size_t arena_size(void)
{
	return rt_g.opts.backlog / 32 > 64 * 1024 ? rt_g.opts.backlog / 32 : 64 * 1024;
}

static bool backlog_alloc(struct rt_conn *c)
{
	struct tx_backlog *b = &c->backlog;
	size_t pages = rt_g.opts.backlog / 4096;

	/* A header and a page for each page in the worst case. */
	b->cap = (unsigned)(2 * pages + 16);
	b->arena_cap = arena_size();
	b->items = calloc(b->cap, sizeof(*b->items));
	b->arena = malloc(b->arena_cap);
	if (b->items && b->arena)
		return true;
	free(b->items);
	free(b->arena);
	b->items = NULL;
	b->arena = NULL;
	return false;
}

/* Everything left the backlog: start again at the front. */
static void backlog_reset(struct tx_backlog *b)
{
	b->head = b->tail = 0;
	b->head_off = 0;
	b->arena_used = 0;
	b->bytes = 0;
	b->zcopy_bytes = 0;
}

/* Drop the items from `from` on (a write not taken after all). */
static void backlog_truncate(struct rt_conn *c, unsigned from, size_t arena_used)
{
	struct tx_backlog *b = &c->backlog;

	while (b->tail > from) {
		struct tx_bl_item *it = &b->items[--b->tail];

		if (it->entry) {
			regcache_put(c->regcache, it->entry);
			b->zcopy_bytes -= it->len;
		}
		b->bytes -= it->len;
	}
	b->arena_used = arena_used;
	if (b->head == b->tail)
		backlog_reset(b);
}

void tx_backlog_clear(struct rt_conn *c)
{
	struct tx_backlog *b = &c->backlog;

	/* The head item's taken part holds no reference of its own. */
	if (b->items)
		backlog_truncate(c, b->head, 0);
	free(b->items);
	free(b->arena);
	memset(b, 0, sizeof(*b));
}

/* May the rest of this write join the backlog?  (Shape and room only.) */
static bool admissible(const struct rt_conn *c, const struct iovec *iov, int iovcnt, int i,
		       size_t off, size_t call_bytes)
{
	const struct tx_backlog *b = &c->backlog;
	size_t rest = 0, copied = 0;
	/* Half the pin limit at most: the writes behind it still need registrations. */
	size_t cap = rt_g.opts.backlog < rt_g.opts.pin_limit / 2 ?
		     rt_g.opts.backlog : rt_g.opts.pin_limit / 2;
	bool last_zcopy = false;

	if (!rt_g.opts.backlog || c->state != CS_ESTABLISHED || c->sleepers ||
	    call_bytes < RT_HOLD_MIN_CALL)
		return false;
	for (; i < iovcnt; i++, off = 0) {
		const uint8_t *p = (const uint8_t *)iov[i].iov_base + off;
		size_t n = iov[i].iov_len - off;

		if (!n)
			continue;
		last_zcopy = zcopy_eligible(&iov[i]);
		if (last_zcopy && !defer_allowed(p, n))
			return false;
		if (!last_zcopy && n > BL_COPY_MAX)
			return false;
		if (!last_zcopy)
			copied += n;
		rest += n;
	}
	return last_zcopy && b->bytes + rest <= cap && b->arena_used + copied <= arena_size();
}

/* Queue [p, p+n) of program memory, pinned chunk by chunk. */
static bool admit_zcopy(struct rt_conn *c, const uint8_t *p, size_t n, unsigned first)
{
	struct tx_backlog *b = &c->backlog;
	size_t chunk = rt_g.opts.chunk;

	while (n) {
		uintptr_t a = (uintptr_t)p;
		size_t piece = chunk - (a & (chunk - 1));
		struct tx_bl_item *prev = b->tail > first ? &b->items[b->tail - 1] : NULL;
		struct regcache_ref ref;
		int registered;

		if (piece > n)
			piece = n;
		if (piece > UINT32_MAX / 2 || regcache_get(c->regcache, p, piece, &ref, &registered))
			return false;
		c->stats.registrations += registered;
		if (prev && prev->entry == ref.entry && prev->addr + prev->len == a) {
			/* The next page of the same registration: one item, one reference. */
			prev->len += (uint32_t)piece;
			regcache_put(c->regcache, ref.entry);
		} else if (b->tail < b->cap) {
			b->items[b->tail++] = (struct tx_bl_item){ a, (uint32_t)piece, ref.lkey,
								   ref.entry };
		} else {
			regcache_put(c->regcache, ref.entry);
			return false;
		}
		b->bytes += piece;
		b->zcopy_bytes += piece;
		p += piece;
		n -= piece;
	}
	return true;
}

static bool admit_copy(struct tx_backlog *b, const uint8_t *p, size_t n)
{
	uint8_t *dst = b->arena + b->arena_used;

	if (b->tail >= b->cap || n > b->arena_cap - b->arena_used)
		return false;
	memcpy(dst, p, n);
	b->arena_used += n;
	b->items[b->tail++] = (struct tx_bl_item){ (uintptr_t)dst, (uint32_t)n, 0, NULL };
	b->bytes += n;
	return true;
}

bool tx_backlog_admit(struct rt_conn *c, const struct iovec *iov, int iovcnt, int i,
		      size_t off, size_t call_bytes)
{
	struct tx_backlog *b = &c->backlog;
	size_t arena_used, bytes;
	unsigned first;

	if (!admissible(c, iov, iovcnt, i, off, call_bytes))
		return false;
	if (!b->items && !backlog_alloc(c))
		return false;
	first = b->tail;
	arena_used = b->arena_used;
	bytes = b->bytes;
	for (; i < iovcnt; i++, off = 0) {
		const uint8_t *p = (const uint8_t *)iov[i].iov_base + off;
		size_t n = iov[i].iov_len - off;
		bool ok;

		if (!n)
			continue;
		ok = zcopy_eligible(&iov[i]) ? admit_zcopy(c, p, n, first) : admit_copy(b, p, n);
		if (!ok) {
			/* Unregistrable, or the pin limit: the write goes the usual way. */
			backlog_truncate(c, first, arena_used);
			return false;
		}
	}
	c->stats.bytes_backlogged += b->bytes - bytes;
	return true;
}

/* Move backlog bytes into the open message; returns bytes moved. */
static size_t backlog_fill(struct rt_conn *c)
{
	struct tx_backlog *b = &c->backlog;
	struct tx_msg *m = &c->tx;
	size_t moved = 0;

	while (b->head < b->tail) {
		struct tx_bl_item *it = &b->items[b->head];
		const uint8_t *p = (const uint8_t *)it->addr + b->head_off;
		uint32_t left = it->len - b->head_off, n;
		bool ref_used = false;

		if (it->entry) {
			struct regcache_ref ref = { it->entry, it->lkey, 0, 0 };

			n = take_pinned(c, m, p, left, &ref, &ref_used);
		} else {
			n = take_inline(m, p, left);
		}
		if (!n)
			break;
		moved += n;
		if (it->entry)
			b->zcopy_bytes -= n;
		b->head_off += n;
		if (b->head_off == it->len) {
			/* Its reference went with the last of its bytes. */
			if (it->entry && !ref_used)
				regcache_put(c->regcache, it->entry);
			b->head++;
			b->head_off = 0;
		}
	}
	b->bytes -= moved;
	if (moved)
		m->gen++;
	if (b->head == b->tail)
		backlog_reset(b);
	return moved;
}

void tx_backlog_move_on(struct rt_conn *c)
{
	if (tx_backlog_empty(c) || c->destroyed)
		return;
	tx_backlog_pump(c, false);
	/* Emptied: the doorbell may be writable again. */
	conn_update_events(c, false);
}

int tx_backlog_pump(struct rt_conn *c, bool writer)
{
	if (tx_backlog_empty(c) || c->destroyed || !c->qp)
		return 0;
	if (c->state != CS_ESTABLISHED) {
		if (c->state != CS_FAILED && c->state != CS_DISCONNECTED)
			return 0;
		/* Broken under it: like a TCP send queue after a reset. */
		tx_backlog_clear(c);
		return -1;
	}
	for (;;) {
		if (!c->tx.open) {
			if (!tx_can_open(c))
				break;
			tx_open(c);
		}
		tx_update_budget(c);
		backlog_fill(c);
		if (tx_backlog_empty(c) || !c->tx.nseg)
			break;
		/* Full, or out of ring budget: send it and look again. */
		if (tx_post(c)) {
			tx_backlog_clear(c);
			return -1;
		}
	}
	if (!tx_backlog_empty(c))
		return 0;
	if (!writer && tx_flush(c))
		return -1;
	/* A FIN that waited for the backlog. */
	conn_flush_pending_ctrl(c);
	return 0;
}
