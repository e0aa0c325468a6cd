// SPDX-License-Identifier: MIT
/*
 * Completion processing: received messages are validated and queued,
 * finished sends release their slots and registrations, and control
 * messages (credits, FIN, keepalive) are sent from here.  The completion
 * queue is reaped by whichever thread calls in (a program thread in a read
 * or write, the service thread on an event or its tick).
 * Every function is called with c->lock held.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "common/log.h"

/* A control message's work request id: its number, and its slot (none if inline). */
#define CTRL_NO_SLOT	0xffu
#define CTRL_SLOT_BITS	8

int conn_post_recv(struct rt_conn *c, unsigned idx)
{
	struct ibv_recv_wr wr, *bad;
	struct ibv_sge sge;

	sge.addr = (uintptr_t)(c->rbufs + (size_t)idx * RT_MSG_SIZE);
	sge.length = RT_MSG_SIZE;
	sge.lkey = c->rbuf_mr->lkey;
	memset(&wr, 0, sizeof(wr));
	wr.wr_id = rt_wr_id(RT_WR_RECV, idx);
	wr.sg_list = &sge;
	wr.num_sge = 1;
	return ibv_post_recv(c->qp, &wr, &bad) ? -1 : 0;
}

static bool ctrl_pending_flag(struct rt_conn *c, enum wire_opcode op, bool set)
{
	bool *flag = op == WIRE_OP_FIN ? &c->ctrl_fin_pending :
		     op == WIRE_OP_PONG ? &c->ctrl_pong_pending :
		     op == WIRE_OP_PING ? &c->ctrl_ping_pending :
		     op == WIRE_OP_CREDIT ? &c->ctrl_credit_pending : NULL;

	if (flag)
		*flag = set;
	return flag != NULL;
}

void conn_send_ctrl(struct rt_conn *c, enum wire_opcode op)
{
	conn_send_ctrl_payload(c, op, NULL, 0);
}

/* A free control buffer, or RT_CTRL_SLOTS if none. */
static unsigned ctrl_free_slot(const struct rt_conn *c)
{
	unsigned i;

	for (i = 0; i < RT_CTRL_SLOTS && c->ctrl_busy[i]; i++)
		;
	return i;
}

static bool ctrl_sq_room(const struct rt_conn *c)
{
	/*
	 * An open DATA message keeps the entries tx_can_open reserved for it:
	 * taken here, its post would overflow the queue.
	 */
	unsigned held = c->tx.open ? RT_MAX_WR_PER_MSG + 1 : 0;

	return conn_sq_used(c) + held + 1 <= RT_SQ_DEPTH;
}

void conn_send_ctrl_payload(struct rt_conn *c, enum wire_opcode op, const void *payload,
			    uint32_t len)
{
	uint8_t inline_buf[RT_CTRL_BUF];
	struct ibv_send_wr wr, *bad;
	struct wire_hdr h;
	struct ibv_sge sge;
	bool inl = WIRE_HDR_LEN + len <= c->max_inline;
	unsigned slot = CTRL_NO_SLOT;
	uint8_t *buf = inline_buf;

	if (!c->qp || c->state == CS_FAILED || c->disconnecting)
		return;
	if (!ctrl_sq_room(c) || (op == WIRE_OP_FIN && !tx_backlog_empty(c))) {
		/*
		 * Posting now would overflow the send queue (sent after the next
		 * reap), or a FIN would overtake the backlog (sent once it is empty).
		 */
		ctrl_pending_flag(c, op, true);
		return;
	}
	if (!inl) {
		/* The device cannot copy it at post time: it needs a buffer until done. */
		slot = ctrl_free_slot(c);
		if (slot == RT_CTRL_SLOTS) {
			/* Sent when a control slot frees up (conn_flush_pending_ctrl). */
			ctrl_pending_flag(c, op, true);
			return;
		}
		buf = c->sbufs + (size_t)RT_TX_SLOTS * RT_MSG_SIZE + (size_t)slot * RT_CTRL_BUF;
	}
	ctrl_pending_flag(c, op, false);

	memset(&h, 0, sizeof(h));
	h.version = WIRE_VERSION;
	h.opcode = op;
	h.inline_len = len;
	credit_rx_take(&c->crx, &h.credit_msgs, &h.credit_ring);
	wire_hdr_encode(&h, buf);
	if (len)
		memcpy(buf + WIRE_HDR_LEN, payload, len);

	sge.addr = (uintptr_t)buf;
	sge.length = WIRE_HDR_LEN + len;
	sge.lkey = c->sbuf_mr->lkey;
	memset(&wr, 0, sizeof(wr));
	wr.sg_list = &sge;
	wr.num_sge = 1;
	wr.opcode = IBV_WR_SEND;
	/*
	 * Every message is solicited, credit too: a writer short of credit
	 * then asks for solicited events only, and its own sends' completions
	 * do not wake it for nothing.
	 */
	wr.send_flags |= IBV_SEND_SOLICITED;
	if (inl)
		wr.send_flags |= IBV_SEND_INLINE;
	/*
	 * Inline control messages are signalled only now and then, to free
	 * their send-queue entries: a completion covers all posted before it.
	 * FIN and RESET are signalled so that a drained queue can be seen.
	 */
	if (!inl || op == WIRE_OP_FIN || op == WIRE_OP_RESET ||
	    c->ctrl_unsignalled + 1 >= RT_CTRL_SIGNAL_EVERY)
		wr.send_flags |= IBV_SEND_SIGNALED;
	wr.wr_id = rt_wr_id(RT_WR_CTRL, (c->ctrl_posted + 1) << CTRL_SLOT_BITS | slot);
	if (ibv_post_send(c->qp, &wr, &bad)) {
		conn_fail(c, ECONNRESET, "cannot post a control message");
		return;
	}
	c->ctrl_posted++;
	if (wr.send_flags & IBV_SEND_SIGNALED)
		c->ctrl_unsignalled = 0;
	else
		c->ctrl_unsignalled++;
	if (slot != CTRL_NO_SLOT)
		c->ctrl_busy[slot] = true;
	c->last_tx_ms = rt_coarse_ms();
	if (op == WIRE_OP_FIN)
		c->fin_sent = true;
}

void conn_flush_pending_ctrl(struct rt_conn *c)
{
	if (c->ctrl_fin_pending)
		conn_send_ctrl(c, WIRE_OP_FIN);
	if (c->ctrl_pong_pending)
		conn_send_ctrl(c, WIRE_OP_PONG);
	if (c->ctrl_ping_pending)
		conn_send_ctrl(c, WIRE_OP_PING);
	if (c->ctrl_credit_pending)
		conn_send_ctrl(c, WIRE_OP_CREDIT);
}

static void protocol_error(struct rt_conn *c, const char *why)
{
	log_error(c->id, "malformed message from the peer, closing the connection: %s", why);
	conn_fail(c, ECONNRESET, why);
}

/* Queue a validated DATA message for the program to read. */
static void data_arrived(struct rt_conn *c, unsigned idx, const struct wire_hdr *h,
			 const struct wire_data *data, bool *newdata)
{
	struct rx_msg *m;

	if (c->fin_received) {
		protocol_error(c, "data after FIN");
		return;
	}
	if (c->rxq_count >= RT_DATA_CREDITS) {
		protocol_error(c, "more DATA messages than credits");
		return;
	}
	credit_rx_arrived(&c->crx, h->ring_skip, h->ring_len);
	m = &c->rxq[(c->rxq_head + c->rxq_count) % RT_DATA_CREDITS];
	memset(m, 0, sizeof(*m));
	m->buf = idx;
	m->hdr = *h;
	m->data = *data;
	c->rxq_count++;
	c->rx_ready += (size_t)h->ring_len + h->inline_len;
	*newdata = true;
	if (c->shut_rd)
		conn_rx_discard(c);	/* as TCP does after SHUT_RD */
}

/* Until the secret is proven, the proof is the only message allowed. */
static void auth_message(struct rt_conn *c, unsigned idx, const struct wire_hdr *h,
			 const struct wire_data *data)
{
	if (conn_post_recv(c, idx)) {
		conn_fail(c, ECONNRESET, "cannot re-post a receive buffer");
		return;
	}
	if (c->is_server && h->opcode == WIRE_OP_AUTH)
		conn_auth_received(c, data->inline_bytes);
	else if (!c->is_server && h->opcode == WIRE_OP_AUTH_OK)
		conn_auth_ok_received(c);
	else
		protocol_error(c, "message before authentication completed");
}

/*
 * A server that wants the secret waits for the client's proof from
 * rdma_accept on: the client sends it as soon as its own ESTABLISHED
 * arrives, and it can land before the server's ESTABLISHED is handled.
 */
static bool awaiting_proof(const struct rt_conn *c)
{
	return c->state == CS_AUTHENTICATING ||
	       (c->is_server && c->auth && c->state == CS_ACCEPTING);
}

static void handle_recv(struct rt_conn *c, unsigned idx, uint32_t len, bool *newdata)
{
	const uint8_t *buf = c->rbufs + (size_t)idx * RT_MSG_SIZE;
	struct wire_rx_limits lim;
	struct wire_data data;
	struct wire_hdr h;
	const char *why;

	/* After a failure the rest of the queue is noise, not news. */
	if (c->state == CS_FAILED)
		return;
	c->last_rx_ms = rt_coarse_ms();
	c->ping_outstanding = false;
	lim.ring_size = c->ring_size;
	lim.ring_pos = c->crx.ring_pos;
	lim.ring_free = credit_rx_ring_free(&c->crx);
	lim.max_credit_msgs = credit_tx_max_return_msgs(&c->ctx);
	lim.max_credit_ring = credit_tx_max_return_ring(&c->ctx);
	if (len > RT_MSG_SIZE || wire_msg_decode(buf, len, &lim, &h, &data, &why)) {
		protocol_error(c, len > RT_MSG_SIZE ? "message too long" : why);
		return;
	}
	credit_tx_return(&c->ctx, h.credit_msgs, h.credit_ring);
	c->stats.msgs_in++;

	if (awaiting_proof(c)) {
		auth_message(c, idx, &h, &data);
		return;
	}
	if (h.opcode == WIRE_OP_AUTH || h.opcode == WIRE_OP_AUTH_OK) {
		protocol_error(c, "unexpected authentication message");
		return;
	}
	/* A DATA message's buffer holds its bytes until the program has read them. */
	if (h.opcode != WIRE_OP_DATA && conn_post_recv(c, idx)) {
		conn_fail(c, ECONNRESET, "cannot re-post a receive buffer");
		return;
	}
	switch (h.opcode) {
	case WIRE_OP_DATA:
		data_arrived(c, idx, &h, &data, newdata);
		break;
	case WIRE_OP_FIN:
		c->fin_received = true;
		if (c->end_reason && !strcmp(c->end_reason, "close"))
			c->end_reason = "eof";
		*newdata = true;
		break;
	case WIRE_OP_RESET:
		conn_fail(c, ECONNRESET, "the peer reset the connection");
		break;
	case WIRE_OP_PING:
		conn_send_ctrl(c, WIRE_OP_PONG);
		break;
	default:
		break;
	}
}

static void handle_send_done(struct rt_conn *c, uint64_t kind, uint64_t value, bool ok)
{
	struct tx_slot *s;
	unsigned idx;

	if (kind == RT_WR_CTRL) {
		uint64_t n = value >> CTRL_SLOT_BITS;

		idx = (unsigned)(value & ((1u << CTRL_SLOT_BITS) - 1));
		if (idx < RT_CTRL_SLOTS)
			c->ctrl_busy[idx] = false;
		if (n > c->ctrl_done && n <= c->ctrl_posted)
			c->ctrl_done = n;
		return;
	}
	idx = (unsigned)value;
	if (kind != RT_WR_DATA || idx >= RT_TX_SLOTS || !c->slots[idx].busy)
		return;
	s = &c->slots[idx];
	release_slot_refs(c, s);
	s->busy = false;
	c->data_wrs_outstanding -= s->nwr;
	if (s->seq > c->seq_done)
		c->seq_done = s->seq;
	if (ok && s->seq > c->seq_ok)
		c->seq_ok = s->seq;
	/* Completions come in order: every control message before it is done too. */
	if (s->ctrl_before > c->ctrl_done)
		c->ctrl_done = s->ctrl_before;
}

bool conn_sq_idle(const struct rt_conn *c)
{
	return conn_sq_used(c) == 0;
}

static const char *wc_error_reason(enum ibv_wc_status st)
{
	switch (st) {
	case IBV_WC_RETRY_EXC_ERR:
		return "the peer stopped acknowledging (transport retries exhausted)";
	case IBV_WC_RNR_RETRY_EXC_ERR:
		return "the peer stopped posting receives";
	case IBV_WC_REM_ACCESS_ERR:
		return "the peer refused an RDMA write (remote access error)";
	default:
		return ibv_wc_status_str(st);
	}
}

bool conn_progress(struct rt_conn *c)
{
	struct ibv_wc wc[32];
	bool changed = false, newdata = false;
	int n, i;

	if (!conn_has_queues(c))
		return false;
	while ((n = ibv_poll_cq(c->cq, 32, wc)) > 0) {
		changed = true;
		for (i = 0; i < n; i++) {
			uint64_t kind = wc[i].wr_id >> RT_WR_KIND_SHIFT;
			uint64_t value = wc[i].wr_id & ((1ULL << RT_WR_KIND_SHIFT) - 1);

			if (wc[i].status != IBV_WC_SUCCESS) {
				if (kind == RT_WR_DATA || kind == RT_WR_CTRL)
					handle_send_done(c, kind, value, false);
				if (wc[i].status == IBV_WC_WR_FLUSH_ERR &&
				    (c->disconnecting || c->peer_gone || c->state == CS_FAILED))
					continue;
				if (wc[i].status == IBV_WC_RETRY_EXC_ERR)
					conn_fail(c, ETIMEDOUT, wc_error_reason(wc[i].status));
				else
					conn_fail(c, ECONNRESET, wc_error_reason(wc[i].status));
				continue;
			}
			if (kind == RT_WR_RECV && value < c->nrecv && wc[i].opcode != IBV_WC_RECV)
				/* The buffer still holds an old message: never read it again. */
				protocol_error(c, "an RDMA write with immediate data took a receive");
			else if (kind == RT_WR_RECV && value < c->nrecv)
				handle_recv(c, (unsigned)value, wc[i].byte_len, &newdata);
			else
				handle_send_done(c, kind, value, true);
		}
	}
	if (n < 0)
		conn_fail(c, EIO, "polling the completion queue failed");
	if (!changed)
		return false;
	/* A sleeper spinning with the lock dropped did not see what this reaped. */
	c->wake_gen++;
	conn_flush_pending_ctrl(c);
	pthread_cond_broadcast(&c->cond);
	conn_update_events(c, newdata);
	return true;
}
