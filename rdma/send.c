// SPDX-License-Identifier: MIT
/*
 * The send path.  Each DATA message is up to RT_MAX_WR_PER_MSG RDMA WRITEs
 * of page-aligned program memory into the peer's ring, followed by one
 * SEND that carries the small bytes inline and the segment list that puts
 * everything back in stream order.  The WRITEs are unsignalled: the RC
 * queue pair completes the SEND only after them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "common/log.h"

#define PAGE_SIZE_BYTES 4096u

/* Where the caller's iovec array has got to. */
struct iov_cursor {
	const struct iovec *iov;
	int iovcnt;
	int i;
	size_t off;
};

/* One DATA message being assembled in a send slot. */
struct msg_builder {
	struct rt_conn *c;
	struct tx_slot *slot;
	unsigned slot_idx;
	uint8_t *buf;
	uint32_t cap;			/* message capacity: the peer's message size */
	uint32_t inline_len;
	uint32_t ring_len;
	uint32_t ring_budget;		/* ring bytes granted for this message */
	uint32_t remote_off;		/* ring offset of the first ring byte */
	unsigned nseg;
	bool last_seg_ring;
	uint32_t segs[RT_MAX_SEGS];
	struct ibv_sge sge[RT_MAX_WR_PER_MSG][RT_MAX_SGE];
	unsigned nsge[RT_MAX_WR_PER_MSG];
	unsigned nwr;			/* WRITEs started (the last one may be filling) */
	uint64_t zcopy_bytes;
	uint64_t inline_bytes;
	unsigned registrations;
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

static uint32_t seg_room(const struct msg_builder *b, bool new_seg)
{
	uint32_t used = WIRE_HDR_LEN + b->inline_len + 4 * (b->nseg + (new_seg ? 1 : 0));

	if (new_seg && b->nseg >= RT_MAX_SEGS)
		return 0;
	return used >= b->cap ? 0 : b->cap - used;
}

static void add_seg(struct msg_builder *b, uint32_t n, bool ring)
{
	if (b->nseg && b->last_seg_ring == ring &&
	    (b->segs[b->nseg - 1] & WIRE_SEG_LEN_MASK) + (uint64_t)n <= WIRE_SEG_LEN_MASK) {
		b->segs[b->nseg - 1] += n;
		return;
	}
	b->segs[b->nseg++] = wire_seg_encode(n, ring);
	b->last_seg_ring = ring;
}

/* Copy up to n bytes inline; returns bytes taken. */
static uint32_t take_inline(struct msg_builder *b, const uint8_t *src, size_t n)
{
	bool new_seg = !(b->nseg && !b->last_seg_ring);
	uint32_t room = seg_room(b, new_seg);

	if (n > room)
		n = room;
	if (!n)
		return 0;
	memcpy(b->buf + WIRE_HDR_LEN + b->inline_len, src, n);
	b->inline_len += n;
	add_seg(b, (uint32_t)n, false);
	b->inline_bytes += n;
	return (uint32_t)n;
}

/*
 * Reference n bytes of program memory for an RDMA WRITE; returns bytes
 * taken, 0 when the message is full, or -1 when the memory cannot be
 * registered (the caller then copies it instead).
 */
static int64_t take_zcopy(struct msg_builder *b, const uint8_t *src, size_t n)
{
	struct rt_conn *c = b->c;
	size_t chunk = rt_g.opts.chunk;
	uintptr_t a = (uintptr_t)src;
	struct regcache_ref ref;
	struct ibv_sge *prev;
	unsigned w;
	int registered;
	bool new_seg = !(b->nseg && b->last_seg_ring);

	if (n > b->ring_budget - b->ring_len)
		n = b->ring_budget - b->ring_len;
	/* A registration never spans chunks: split at the boundary. */
	if (n > chunk - (a & (chunk - 1)))
		n = chunk - (a & (chunk - 1));
	if (!n || !seg_room(b, new_seg) || b->slot->nrefs >= RT_MAX_REFS)
		return 0;

	if (regcache_get(c->regcache, src, n, &ref, &registered)) {
		log_debug(c->id, "cannot register %zu bytes at %p (%m); copying them instead",
			  n, (const void *)src);
		return -1;
	}
	b->registrations += registered;
	if (registered && rt_g.opts.pin_all)
		b->registrations += pin_whole_mapping(c, a);

	if (b->nwr == 0 || b->nsge[b->nwr - 1] == c->max_sge) {
		if (b->nwr == RT_MAX_WR_PER_MSG) {
			regcache_put(c->regcache, ref.entry);
			return 0;
		}
		b->nsge[b->nwr++] = 0;
	}
	w = b->nwr - 1;
	prev = b->nsge[w] ? &b->sge[w][b->nsge[w] - 1] : NULL;
	if (prev && prev->lkey == ref.lkey && prev->addr + prev->length == a) {
		/* One SGE for neighbouring pages; the extra reference keeps it simple. */
		prev->length += (uint32_t)n;
	} else {
		struct ibv_sge *s = &b->sge[w][b->nsge[w]++];

		s->addr = a;
		s->length = (uint32_t)n;
		s->lkey = ref.lkey;
	}
	b->slot->refs[b->slot->nrefs++] = ref.entry;
	b->ring_len += (uint32_t)n;
	add_seg(b, (uint32_t)n, true);
	b->zcopy_bytes += n;
	return (int64_t)n;
}

static void builder_start(struct msg_builder *b, struct rt_conn *c)
{
	b->c = c;
	b->slot_idx = c->slot_next;
	b->slot = &c->slots[b->slot_idx];
	b->slot->nrefs = 0;
	b->buf = c->sbufs + (size_t)b->slot_idx * RT_MSG_SIZE;
	b->cap = c->peer_msg_size;
	b->inline_len = 0;
	b->ring_len = 0;
	b->nseg = 0;
	b->last_seg_ring = false;
	b->nwr = 0;
	b->zcopy_bytes = 0;
	b->inline_bytes = 0;
	b->registrations = 0;
	b->remote_off = credit_tx_ring_offset(&c->ctx);
	/* A quarter of the ring per message keeps several messages in flight. */
	b->ring_budget = credit_tx_ring_grant(&c->ctx, c->ctx.ring_size / 4);
}

static int builder_post(struct msg_builder *b)
{
	struct ibv_send_wr wrs[RT_MAX_WR_PER_MSG + 1], *bad;
	struct rt_conn *c = b->c;
	struct ibv_sge send_sge;
	struct wire_hdr h;
	uint64_t remote = c->peer_ring_addr + b->remote_off;
	unsigned i, nw = 0;
	uint32_t len;

	memset(wrs, 0, sizeof(wrs));
	for (i = 0; i < b->nwr; i++) {
		uint32_t bytes = 0;

		if (!b->nsge[i])
			continue;
		for (unsigned k = 0; k < b->nsge[i]; k++)
			bytes += b->sge[i][k].length;
		wrs[nw].opcode = IBV_WR_RDMA_WRITE;
		wrs[nw].sg_list = b->sge[i];
		wrs[nw].num_sge = (int)b->nsge[i];
		wrs[nw].wr.rdma.remote_addr = remote;
		wrs[nw].wr.rdma.rkey = c->peer_rkey;
		wrs[nw].next = &wrs[nw + 1];
		remote += bytes;
		nw++;
	}

	memset(&h, 0, sizeof(h));
	h.version = WIRE_VERSION;
	h.opcode = WIRE_OP_DATA;
	h.nseg = (uint16_t)b->nseg;
	h.ring_len = b->ring_len;
	h.inline_len = b->inline_len;
	credit_rx_take(&c->crx, &h.credit_msgs, &h.credit_ring);
	wire_hdr_encode(&h, b->buf);
	len = WIRE_HDR_LEN + b->inline_len;
	for (i = 0; i < b->nseg; i++, len += 4)
		wire_put32(b->buf + len, b->segs[i]);

	send_sge.addr = (uintptr_t)b->buf;
	send_sge.length = len;
	send_sge.lkey = c->sbuf_mr->lkey;
	wrs[nw].wr_id = 2ULL << 32 | b->slot_idx;
	wrs[nw].opcode = IBV_WR_SEND;
	wrs[nw].sg_list = &send_sge;
	wrs[nw].num_sge = 1;
	wrs[nw].send_flags = IBV_SEND_SIGNALED;
	if (len <= c->max_inline)
		wrs[nw].send_flags |= IBV_SEND_INLINE;
	wrs[nw].next = NULL;

	if (ibv_post_send(c->qp, wrs, &bad)) {
		conn_fail(c, ECONNRESET, "cannot post a send");
		return -1;
	}
	b->slot->busy = true;
	b->slot->nwr = nw + 1;
	b->slot->seq = ++c->seq_posted;
	c->sq_outstanding += nw + 1;
	c->slot_next = (c->slot_next + 1) % RT_TX_SLOTS;
	credit_tx_commit(&c->ctx, b->ring_len);
	c->last_tx_ms = rt_now_ms();
	c->stats.msgs_out++;
	c->stats.bytes_out += b->zcopy_bytes + b->inline_bytes;
	c->stats.bytes_out_zerocopy += b->zcopy_bytes;
	c->stats.bytes_out_send += b->inline_bytes;
	c->stats.registrations += b->registrations;
	return 0;
}

/* Fill one message from the cursor.  Returns bytes taken. */
static size_t build_message(struct msg_builder *b, struct iov_cursor *cur,
			    bool *no_zcopy)
{
	size_t taken = 0;

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
			n = take_zcopy(b, src, left);
			if (n < 0) {
				/* Unregistrable memory still has to arrive: copy it. */
				*no_zcopy = true;
				continue;
			}
		} else {
			n = take_inline(b, src, left);
		}
		if (n == 0)
			break;
		cur->off += (size_t)n;
		taken += (size_t)n;
	}
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

ssize_t rt_send(struct rt_conn *c, const struct iovec *iov, int iovcnt, int timeout_ms)
{
	uint64_t deadline = rt_deadline(timeout_ms);
	bool nonblock = timeout_ms == 0;
	struct iov_cursor cur = { iov, iovcnt, 0, 0 };
	struct msg_builder *b;
	uint64_t wait_seq = 0;
	bool no_zcopy = false;
	ssize_t total = 0;
	int err = 0;

	b = malloc(sizeof(*b));
	if (!b)
		return -ENOMEM;
	pthread_mutex_lock(&c->lock);
	c->stats.writes++;
	while (!cursor_done(&cur)) {
		size_t n;

		err = send_blocked_error(c);
		if (err == -EAGAIN && !nonblock) {
			/* Blocking write on a connection still being set up. */
			if (!conn_wait_until(c, deadline))
				break;
			continue;
		}
		if (err)
			break;
		if (c->ctx.msgs_avail == 0 || c->slots[c->slot_next].busy) {
			err = -EAGAIN;
			if (nonblock || !conn_wait_until(c, deadline))
				break;
			continue;
		}
		builder_start(b, c);
		n = build_message(b, &cur, &no_zcopy);
		if (n == 0) {
			/* The ring is full and the next bytes want it. */
			err = -EAGAIN;
			if (nonblock || !conn_wait_until(c, deadline))
				break;
			continue;
		}
		err = 0;
		if (builder_post(b)) {
			err = -c->sticky_error;
			break;
		}
		if (b->zcopy_bytes)
			wait_seq = c->seq_posted;
		total += (ssize_t)n;
	}
	/* The caller may reuse its buffers only once the hardware has read them. */
	while (wait_seq && c->seq_done < wait_seq && c->state != CS_FAILED)
		conn_wait(c);
	if (wait_seq && c->seq_done < wait_seq)
		err = -(c->sticky_error ? c->sticky_error : EPIPE), total = 0;
	conn_update_events(c, false);
	pthread_mutex_unlock(&c->lock);
	free(b);
	if (total > 0)
		return total;
	return err ? err : 0;
}
