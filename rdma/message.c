// SPDX-License-Identifier: MIT
/*
 * Building and posting one DATA message: up to RT_MAX_WR_PER_MSG RDMA
 * WRITEs of page-aligned program memory into the peer's ring, then one
 * SEND that carries the small bytes inline and the segment list that puts
 * everything back in stream order.  The WRITEs are unsignalled: the RC
 * queue pair completes the SEND only after them.  send.c decides when a
 * write fills and posts a message; backlog.c fills them from bytes
 * accepted beyond the window.  Every function is called with c->lock held.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "common/log.h"

#define PAGE_SIZE_BYTES 4096u

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


bool zcopy_eligible(const struct iovec *v)
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
uint32_t take_inline(struct tx_msg *m, const uint8_t *src, size_t n)
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

/* How many of n zero-copy bytes fit: ring budget, a segment and a reference. */
static size_t zcopy_room(const struct tx_msg *m, size_t n)
{
	bool new_seg = !(m->nseg && m->last_seg_ring);

	if (!seg_room(m, new_seg) || m->slot->nrefs >= RT_MAX_REFS)
		return 0;
	return n < m->ring_budget - m->ring_len ? n : m->ring_budget - m->ring_len;
}

/* n zero-copy bytes joined the message's WRITEs: place them in the ring's stream. */
static void zcopy_taken(struct tx_msg *m, uint32_t n)
{
	m->ring_len += n;
	add_seg(m, n, true);
	m->zcopy_bytes += n;
}

/*
 * Reference n bytes of program memory for an RDMA WRITE; returns bytes
 * taken, 0 when the message is full, or -1 when the memory cannot be
 * registered (the caller then copies it instead).
 */
int64_t take_zcopy(struct rt_conn *c, struct tx_msg *m, const uint8_t *src, size_t n)
{
	size_t chunk = rt_g.opts.chunk;
	uintptr_t a = (uintptr_t)src;
	struct regcache_ref ref;
	int registered;

	n = zcopy_room(m, n);
	/* A registration never spans chunks: split at the boundary. */
	if (n > chunk - (a & (chunk - 1)))
		n = chunk - (a & (chunk - 1));
	if (!n)
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
	zcopy_taken(m, (uint32_t)n);
	return (int64_t)n;
}

uint32_t take_pinned(struct rt_conn *c, struct tx_msg *m, const uint8_t *src, uint32_t n,
		     const struct regcache_ref *ref, bool *ref_used)
{
	uint32_t want = n;

	*ref_used = false;
	n = (uint32_t)zcopy_room(m, n);
	if (!n)
		return 0;
	/* The message's SGE needs a reference of its own unless it takes them all. */
	if (n < want)
		regcache_hold(c->regcache, ref->entry);
	if (!add_sge(c, m, (uintptr_t)src, n, ref)) {
		if (n < want)
			regcache_put(c->regcache, ref->entry);
		return 0;
	}
	*ref_used = n == want;
	zcopy_taken(m, n);
	return n;
}

/* Can a new message be started: a free slot, a credit, and room in the send queue? */
bool tx_can_open(const struct rt_conn *c)
{
	return c->ctx.msgs_avail > 0 && conn_room_for_message(c);
}

void tx_open(struct rt_conn *c)
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
void tx_update_budget(struct rt_conn *c)
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

int tx_post(struct rt_conn *c)
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
