// SPDX-License-Identifier: MIT
/* Connection objects: life, readiness, failure (resources.c: their verbs resources). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "common/log.h"

struct rt_conn *conn_alloc(bool is_server)
{
	pthread_condattr_t ca;
	struct rt_conn *c;

	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->obj.kind = RT_OBJ_CONN;
	c->is_server = is_server;
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cond, &ca);
	pthread_condattr_destroy(&ca);
	clock_gettime(CLOCK_MONOTONIC, &c->t_start);
	c->last_rx_ms = c->last_tx_ms = rt_coarse_ms();
	c->end_reason = "close";
	/*
	 * No deadline until the caller starts the set-up: the service thread's
	 * timers see the connection as soon as it is listed below, and creating
	 * the id or registering the ring can take a while.  Far off, not the
	 * maximum, so that deadline arithmetic cannot wrap.
	 */
	c->deadline_ms = UINT64_MAX / 2;
	c->sleep_wake_fd = -1;

	pthread_mutex_lock(&rt_g.lock);
	c->id = ++rt_g.next_id;
	c->next_all = rt_g.conns;
	rt_g.conns = c;
	pthread_mutex_unlock(&rt_g.lock);
	return c;
}

bool conn_has_queues(const struct rt_conn *c)
{
	/* The flag first: the fields behind it may be being written. */
	return !c->setting_up && !c->destroyed && c->cq;
}

void conn_local_hello(const struct rt_conn *c, struct wire_hello *h)
{
	memset(h, 0, sizeof(*h));
	h->magic = WIRE_MAGIC;
	h->version = WIRE_VERSION;
	h->ring_rkey = c->ring_mr->rkey;
	h->ring_addr = (uintptr_t)c->ring;
	h->ring_size = c->ring_size;
	h->credits = RT_DATA_CREDITS;
	h->msg_size = RT_MSG_SIZE;
}

void conn_apply_peer_hello(struct rt_conn *c, const struct wire_hello *h)
{
	c->peer_ring_addr = h->ring_addr;
	c->peer_rkey = h->ring_rkey;
	c->peer_msg_size = h->msg_size < RT_MSG_SIZE ? h->msg_size : RT_MSG_SIZE;
	credit_tx_init(&c->ctx, h->credits < RT_TX_SLOTS ? h->credits : RT_TX_SLOTS,
		       h->ring_size);
}


/*
 * A failed connection's device must read no more of what we posted: a
 * write that returns an error leaves its buffer to the program, which may
 * overwrite it at once.  The error state ends the queue pair's work and
 * completes every request still posted (flushed), without waiting for the
 * rdma_disconnect that the next tick makes.
 */
static void conn_stop_qp(struct rt_conn *c)
{
	struct ibv_qp_attr attr = { .qp_state = IBV_QPS_ERR };
	int ret;

	if (c->setting_up || !c->qp || c->qp_stopped)
		return;
	c->qp_stopped = true;
	ret = ibv_modify_qp(c->qp, &attr, IBV_QP_STATE);
	if (ret)
		log_warn(c->id, "cannot stop the queue pair of the failed connection: %s",
			 strerror(ret));
}

/* Called with c->lock held. */
void conn_fail(struct rt_conn *c, int err, const char *reason)
{
	if (c->state == CS_FAILED)
		return;
	conn_stop_qp(c);
	if (c->state == CS_ESTABLISHED || c->state == CS_DISCONNECTED)
		log_warn(c->id, "connection broken: %s", reason);
	else
		log_warn(c->id, "connection set-up failed: %s", reason);
	c->state = CS_FAILED;
	c->error = err;
	c->sticky_error = err;
	c->end_reason = err == ETIMEDOUT ? "timeout" : err == ECONNRESET ? "reset" : "error";
	conn_wake_waiters(c);
	conn_update_events(c, false);
	conn_wake_service();
}

static bool conn_can_send(const struct rt_conn *c)
{
	/* Bytes handed over beyond the window go first. */
	if (!tx_backlog_empty(c))
		return false;
	if (credit_tx_ring_used(&c->ctx) >= c->ctx.ring_size)
		return false;
	return c->tx.open || (c->ctx.msgs_avail > 0 && !c->slots[c->slot_next].busy);
}

static bool conn_readable(const struct rt_conn *c)
{
	return c->rx_ready || c->fin_received || c->shut_rd || c->state == CS_FAILED ||
	       c->peer_gone;
}

/* Called with c->lock held. */
void conn_update_events(struct rt_conn *c, bool newdata)
{
	unsigned ev = 0;
	bool broken = c->state == CS_FAILED;
	bool up = c->state == CS_ESTABLISHED || c->state == CS_DISCONNECTED;

	if (conn_readable(c))
		ev |= RT_EV_READABLE;
	if (c->fin_received || c->shut_rd || broken || c->peer_gone)
		ev |= RT_EV_RDHUP;
	if (broken || (up && (c->shut_wr || c->peer_gone || conn_can_send(c))))
		ev |= RT_EV_WRITABLE;
	/*
	 * A peer that closed after its FIN is a TCP socket in CLOSE_WAIT: no
	 * hang-up while we may still write, so a program that closes on
	 * POLLHUP first does not lose the bytes it has not read yet.
	 */
	if (broken || (c->peer_gone && !c->fin_received) ||
	    ((c->fin_received || c->shut_rd) && c->shut_wr))
		ev |= RT_EV_HUP;
	if (broken)
		ev |= RT_EV_ERR;
	if (!c->notify)
		return;
	if (c->in_call)
		newdata = false;
	if (ev != c->last_events || newdata) {
		c->last_events = ev;
		c->notify(c->notify_arg, ev | (newdata ? RT_EV_NEWDATA : 0));
	}
}

uint64_t rt_deadline(int timeout_ms)
{
	return timeout_ms > 0 ? rt_now_ms() + (uint64_t)timeout_ms : 0;
}

bool conn_short_of_credit_only(const struct rt_conn *c)
{
	if (c->tx.open)
		return true;	/* only ring bytes can be short */
	return conn_room_for_message(c);
}

/*
 * Which completion events somebody needs: 0 none, 1 solicited ones (every
 * message from the peer, credits included), 2 all (our own sends too).
 */
static int events_needed(const struct rt_conn *c)
{
	bool up = c->state == CS_ESTABLISHED || c->state == CS_DISCONNECTED;
	bool want_window = up && !c->shut_wr && !c->fin_sent && !conn_can_send(c);
	/* The backlog moves on as credit returns, also with no program thread in a call. */
	bool backlog = up && !tx_backlog_empty(c);
	/* A control message waiting for room goes when our own sends complete. */
	bool ctrl_waits = !c->disconnecting &&
			  (c->ctrl_credit_pending || c->ctrl_fin_pending || c->ctrl_pong_pending ||
			   c->ctrl_ping_pending);

	if (!conn_has_queues(c) || c->state == CS_FAILED)
		return 0;
	if (c->sleepers_any || ctrl_waits ||
	    ((want_window || backlog) && !conn_short_of_credit_only(c)))
		return 2;
	if (c->sleepers || c->sleepers_credit || want_window || backlog || !conn_readable(c))
		return 1;
	return 0;
}

bool conn_arm(struct rt_conn *c)
{
	int need = events_needed(c);

	if (!need || (c->cq_armed && (c->cq_armed_any || need == 1)))
		return false;
	if (ibv_req_notify_cq(c->cq, need == 1))
		return false;
	c->cq_armed = true;
	c->cq_armed_any = need == 2;
	/* What completed before the request raises no event: reap it now. */
	return conn_progress(c);
}

bool conn_take_cq_event(struct rt_conn *c)
{
	struct ibv_cq *cq;
	void *ctx;

	/* The channel fd is non-blocking: no event is EAGAIN, never a wait. */
	if (ibv_get_cq_event(c->chan, &cq, &ctx))
		return false;
	ibv_ack_cq_events(cq, 1);
	/* The event used the request up. */
	c->cq_armed = false;
	return true;
}

bool rt_conn_established(struct rt_conn *c)
{
	bool up;

	pthread_mutex_lock(&c->lock);
	up = c->state == CS_ESTABLISHED || c->state == CS_DISCONNECTED;
	pthread_mutex_unlock(&c->lock);
	return up;
}

int rt_conn_error(struct rt_conn *c)
{
	int err;

	pthread_mutex_lock(&c->lock);
	err = c->error_reported ? 0 : c->error;
	c->error_reported = true;
	pthread_mutex_unlock(&c->lock);
	return err;
}

size_t rt_conn_readable_bytes(struct rt_conn *c)
{
	size_t n;

	pthread_mutex_lock(&c->lock);
	n = c->rx_ready;
	pthread_mutex_unlock(&c->lock);
	return n;
}

int rt_conn_local_addr(struct rt_conn *c, struct sockaddr_storage *ss)
{
	pthread_mutex_lock(&c->lock);
	*ss = c->local;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

int rt_conn_peer_addr(struct rt_conn *c, struct sockaddr_storage *ss)
{
	pthread_mutex_lock(&c->lock);
	*ss = c->peer;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

unsigned rt_conn_id(struct rt_conn *c)
{
	return c->id;
}

void rt_conn_get_stats(struct rt_conn *c, struct rt_conn_stats *out)
{
	size_t now, peak;

	rt_devices_pinned(&now, &peak);
	pthread_mutex_lock(&c->lock);
	*out = c->stats;
	/* A held message's bytes were written: the program counts them sent. */
	if (c->tx.open && c->state != CS_FAILED) {
		out->bytes_out += c->tx.zcopy_bytes + c->tx.inline_bytes;
		out->bytes_out_zerocopy += c->tx.zcopy_bytes;
		out->bytes_out_send += c->tx.inline_bytes;
	}
	/* So were the backlog's. */
	if (c->state != CS_FAILED) {
		out->bytes_out += c->backlog.bytes;
		out->bytes_out_zerocopy += c->backlog.zcopy_bytes;
		out->bytes_out_send += c->backlog.bytes - c->backlog.zcopy_bytes;
	}
	out->registered_bytes_peak = peak;
	pthread_mutex_unlock(&c->lock);
}

const char *rt_conn_end_reason(struct rt_conn *c)
{
	return c->end_reason;
}

void rt_conn_close(struct rt_conn *c)
{
	pthread_mutex_lock(&c->lock);
	c->owner_gone = true;
	c->notify = NULL;
	tx_flush(c);
	log_debug(c->id, "closed by the program: %llu messages out, %llu in",
		 (unsigned long long)c->stats.msgs_out, (unsigned long long)c->stats.msgs_in);
	if (c->state == CS_ESTABLISHED && !c->fin_sent) {
		c->shut_wr = true;
		conn_send_ctrl(c, WIRE_OP_FIN);
	}
	c->deadline_ms = rt_now_ms() + RT_LINGER_MS;
	conn_wake_waiters(c);
	pthread_mutex_unlock(&c->lock);
	conn_wake_service();
}

void rt_quiesce_at_exit(unsigned timeout_ms)
{
	uint64_t deadline = rt_now_ms() + timeout_ms;
	struct rt_conn *c;
	bool busy = true;

	pthread_mutex_lock(&rt_g.lock);
	if (!rt_g.initialised)
		goto out;
	for (c = rt_g.conns; c; c = c->next_all) {
		pthread_mutex_lock(&c->lock);
		if (c->state == CS_ESTABLISHED && !c->fin_sent && !c->destroyed) {
			tx_flush(c);
			c->shut_wr = true;
			conn_send_ctrl(c, WIRE_OP_FIN);
		}
		pthread_mutex_unlock(&c->lock);
	}
	while (busy && rt_now_ms() < deadline) {
		busy = false;
		for (c = rt_g.conns; c; c = c->next_all) {
			pthread_mutex_lock(&c->lock);
			conn_progress(c);
			tx_backlog_move_on(c);
			if (conn_has_queues(c) && c->qp && c->state != CS_FAILED &&
			    (!conn_sq_idle(c) || !tx_backlog_empty(c)))
				busy = true;
			pthread_mutex_unlock(&c->lock);
		}
		if (busy) {
			pthread_mutex_unlock(&rt_g.lock);
			usleep(1000);
			pthread_mutex_lock(&rt_g.lock);
		}
	}
out:
	pthread_mutex_unlock(&rt_g.lock);
}

static const char *state_name(const struct rt_conn *c)
{
	if (c->owner_gone)
		return "closing";
	switch (c->state) {
	case CS_RESOLVING_ADDR:
	case CS_RESOLVING_ROUTE:
	case CS_CONNECTING:
	case CS_ACCEPTING:
		return "connecting";
	case CS_AUTHENTICATING:
		return "authenticating";
	case CS_ESTABLISHED:
		return c->fin_received ? "eof" : c->shut_wr ? "half-closed" : "established";
	case CS_FAILED:
		return "failed";
	case CS_DISCONNECTED:
		return "disconnected";
	}
	return "?";
}

unsigned rt_snapshot(struct rt_conn_info *out, unsigned max)
{
	uint64_t now = rt_now_ms();
	struct rt_conn *c;
	unsigned n = 0;

	pthread_mutex_lock(&rt_g.lock);
	for (c = rt_g.conns; c && n < max; c = c->next_all) {
		struct rt_conn_info *i = &out[n];

		pthread_mutex_lock(&c->lock);
		if (!c->destroyed) {
			i->id = c->id;
			i->is_server = c->is_server;
			i->state = state_name(c);
			i->local = c->local;
			i->peer = c->peer;
			i->stats = c->stats;
			i->age_ms = now - ((uint64_t)c->t_start.tv_sec * 1000 +
					   (uint64_t)c->t_start.tv_nsec / 1000000);
			n++;
		}
		pthread_mutex_unlock(&c->lock);
	}
	pthread_mutex_unlock(&rt_g.lock);
	return n;
}
