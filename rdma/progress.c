// SPDX-License-Identifier: MIT
/*
 * Completion processing: received messages are validated and queued,
 * finished sends release their slots and registrations, and control
 * messages (credits, FIN, keepalive) are sent from here.
 * Every function is called with c->lock held.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "common/log.h"

#define WR_KIND_SHIFT	32
#define WR_RECV		1ULL
#define WR_DATA		2ULL
#define WR_CTRL		3ULL

static uint64_t wr_id(uint64_t kind, unsigned idx)
{
	return kind << WR_KIND_SHIFT | idx;
}

int conn_post_recv(struct rt_conn *c, unsigned idx)
{
	struct ibv_recv_wr wr, *bad;
	struct ibv_sge sge;

	sge.addr = (uintptr_t)(c->rbufs + (size_t)idx * RT_MSG_SIZE);
	sge.length = RT_MSG_SIZE;
	sge.lkey = c->rbuf_mr->lkey;
	memset(&wr, 0, sizeof(wr));
	wr.wr_id = wr_id(WR_RECV, idx);
	wr.sg_list = &sge;
	wr.num_sge = 1;
	return ibv_post_recv(c->qp, &wr, &bad) ? -1 : 0;
}

static bool ctrl_pending_flag(struct rt_conn *c, enum wire_opcode op, bool set)
{
	bool *flag = op == WIRE_OP_FIN ? &c->ctrl_fin_pending :
		     op == WIRE_OP_PONG ? &c->ctrl_pong_pending :
		     op == WIRE_OP_CREDIT ? &c->ctrl_credit_pending : NULL;

	if (flag)
		*flag = set;
	return flag != NULL;
}

void conn_send_ctrl(struct rt_conn *c, enum wire_opcode op)
{
	conn_send_ctrl_payload(c, op, NULL, 0);
}

void conn_send_ctrl_payload(struct rt_conn *c, enum wire_opcode op, const void *payload,
			    uint32_t len)
{
	struct ibv_send_wr wr, *bad;
	struct wire_hdr h;
	struct ibv_sge sge;
	uint8_t *buf;
	unsigned i;

	if (!c->qp || c->state == CS_FAILED || c->disconnecting)
		return;
	for (i = 0; i < RT_CTRL_SLOTS && c->ctrl_busy[i]; i++)
		;
	if (i == RT_CTRL_SLOTS) {
		/* Sent when a control slot frees up (conn_flush_pending_ctrl). */
		ctrl_pending_flag(c, op, true);
		return;
	}
	ctrl_pending_flag(c, op, false);

	memset(&h, 0, sizeof(h));
	h.version = WIRE_VERSION;
	h.opcode = op;
	h.inline_len = len;
	credit_rx_take(&c->crx, &h.credit_msgs, &h.credit_ring);
	buf = c->sbufs + (size_t)RT_TX_SLOTS * RT_MSG_SIZE + (size_t)i * RT_CTRL_BUF;
	wire_hdr_encode(&h, buf);
	if (len)
		memcpy(buf + WIRE_HDR_LEN, payload, len);

	sge.addr = (uintptr_t)buf;
	sge.length = WIRE_HDR_LEN + len;
	sge.lkey = c->sbuf_mr->lkey;
	memset(&wr, 0, sizeof(wr));
	wr.wr_id = wr_id(WR_CTRL, i);
	wr.sg_list = &sge;
	wr.num_sge = 1;
	wr.opcode = IBV_WR_SEND;
	wr.send_flags = IBV_SEND_SIGNALED;
	if (c->max_inline >= sge.length)
		wr.send_flags |= IBV_SEND_INLINE;
	if (ibv_post_send(c->qp, &wr, &bad)) {
		conn_fail(c, ECONNRESET, "cannot post a control message");
		return;
	}
	c->ctrl_busy[i] = true;
	c->sq_outstanding++;
	c->last_tx_ms = rt_now_ms();
	if (op == WIRE_OP_FIN)
		c->fin_sent = true;
}

void conn_flush_pending_ctrl(struct rt_conn *c)
{
	if (c->ctrl_fin_pending)
		conn_send_ctrl(c, WIRE_OP_FIN);
	if (c->ctrl_pong_pending)
		conn_send_ctrl(c, WIRE_OP_PONG);
	if (c->ctrl_credit_pending)
		conn_send_ctrl(c, WIRE_OP_CREDIT);
}

static void protocol_error(struct rt_conn *c, const char *why)
{
	log_error(c->id, "malformed message from the peer, closing the connection: %s", why);
	conn_fail(c, ECONNRESET, why);
}

static void handle_recv(struct rt_conn *c, unsigned idx, uint32_t len, bool *newdata)
{
	const uint8_t *buf = c->rbufs + (size_t)idx * RT_MSG_SIZE;
	struct wire_rx_limits lim;
	struct wire_data data;
	struct wire_hdr h;
	const char *why;
	struct rx_msg *m;

	/* After a failure the rest of the queue is noise, not news. */
	if (c->state == CS_FAILED)
		return;
	c->last_rx_ms = rt_now_ms();
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

	/* Until the secret is proven, the proof is the only message allowed. */
	if (c->state == CS_AUTHENTICATING) {
		if (conn_post_recv(c, idx)) {
			conn_fail(c, ECONNRESET, "cannot re-post a receive buffer");
			return;
		}
		if (c->is_server && h.opcode == WIRE_OP_AUTH)
			conn_auth_received(c, data.inline_bytes);
		else if (!c->is_server && h.opcode == WIRE_OP_AUTH_OK)
			conn_auth_ok_received(c);
		else
			protocol_error(c, "message before authentication completed");
		return;
	}
	if (h.opcode == WIRE_OP_AUTH || h.opcode == WIRE_OP_AUTH_OK) {
		protocol_error(c, "unexpected authentication message");
		return;
	}

	if (h.opcode != WIRE_OP_DATA) {
		if (conn_post_recv(c, idx)) {
			conn_fail(c, ECONNRESET, "cannot re-post a receive buffer");
			return;
		}
	}
	switch (h.opcode) {
	case WIRE_OP_DATA:
		if (c->fin_received) {
			protocol_error(c, "data after FIN");
			return;
		}
		if (c->rxq_count >= RT_DATA_CREDITS) {
			protocol_error(c, "more DATA messages than credits");
			return;
		}
		credit_rx_arrived(&c->crx, h.ring_skip, h.ring_len);
		m = &c->rxq[(c->rxq_head + c->rxq_count) % RT_DATA_CREDITS];
		memset(m, 0, sizeof(*m));
		m->buf = idx;
		m->hdr = h;
		m->data = data;
		c->rxq_count++;
		c->rx_ready += (size_t)h.ring_len + h.inline_len;
		*newdata = true;
		if (c->shut_rd)
			conn_rx_discard(c);	/* as TCP does after SHUT_RD */
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

static void handle_send_done(struct rt_conn *c, uint64_t kind, unsigned idx)
{
	struct tx_slot *s;

	if (kind == WR_CTRL && idx < RT_CTRL_SLOTS) {
		c->ctrl_busy[idx] = false;
		c->sq_outstanding--;
		return;
	}
	if (kind != WR_DATA || idx >= RT_TX_SLOTS)
		return;
	s = &c->slots[idx];
	for (unsigned i = 0; i < s->nrefs; i++)
		regcache_put(c->regcache, s->refs[i]);
	s->nrefs = 0;
	s->busy = false;
	c->sq_outstanding -= s->nwr;
	if (s->seq > c->seq_done)
		c->seq_done = s->seq;
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

void conn_progress(struct rt_conn *c)
{
	struct ibv_wc wc[32];
	bool changed = false, newdata = false;
	int n, i;

	if (!c->cq || c->destroyed)
		return;
	while ((n = ibv_poll_cq(c->cq, 32, wc)) > 0) {
		changed = true;
		for (i = 0; i < n; i++) {
			uint64_t kind = wc[i].wr_id >> WR_KIND_SHIFT;
			unsigned idx = (unsigned)(wc[i].wr_id & 0xffffffffu);

			if (wc[i].status != IBV_WC_SUCCESS) {
				if (kind == WR_DATA || kind == WR_CTRL)
					handle_send_done(c, kind, idx);
				if (wc[i].status == IBV_WC_WR_FLUSH_ERR &&
				    (c->disconnecting || c->peer_gone || c->state == CS_FAILED))
					continue;
				if (wc[i].status == IBV_WC_RETRY_EXC_ERR)
					conn_fail(c, ETIMEDOUT, wc_error_reason(wc[i].status));
				else
					conn_fail(c, ECONNRESET, wc_error_reason(wc[i].status));
				continue;
			}
			if (kind == WR_RECV && idx < c->nrecv)
				handle_recv(c, idx, wc[i].byte_len, &newdata);
			else
				handle_send_done(c, kind, idx);
		}
	}
	if (n < 0)
		conn_fail(c, EIO, "polling the completion queue failed");
	if (!changed)
		return;
	conn_flush_pending_ctrl(c);
	pthread_cond_broadcast(&c->cond);
	conn_update_events(c, newdata);
}
