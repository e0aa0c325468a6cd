// SPDX-License-Identifier: MIT
/*
 * The timers that bound every wait, run by the service thread each tick:
 * connect deadline, keepalive, dropping dead queued connections, close
 * linger, listening again where a device was removed; then the teardown
 * of what they ended.  And the fast tick that
 * posts held small writes (and TCP_NODELAY's bulk ones) once their stream
 * pauses.
 */
#include <errno.h>
#include <stdio.h>

#include "common/log.h"
#include "internal.h"

/* What the timers decided for one connection. */
static bool conn_timers(struct rt_conn *c, uint64_t now)
{
	uint64_t ka = (uint64_t)rt_g.opts.keepalive_s * 1000;
	bool destroy = false;
	char why[120];

	pthread_mutex_lock(&c->lock);
	if (c->destroyed)
		goto out;
	/*
	 * Nobody may have reaped for a while (a program that does not read):
	 * answer keepalive probes and take credits, and send what a write
	 * held back if no write has added to it since the last tick.
	 */
	conn_progress(c);
	tx_backlog_move_on(c);
	tx_flush_if_idle(c, &c->tx.gen_seen_tick);
	conn_arm(c);
	if (c->state < CS_ESTABLISHED && now > c->deadline_ms) {
		snprintf(why, sizeof(why), "no answer within %u ms", rt_g.opts.connect_timeout_ms);
		conn_fail(c, ETIMEDOUT, why);
	}
	if (c->state == CS_ESTABLISHED && ka && !c->disconnecting) {
		/* Program threads polling the CQ may have seen a message after `now`. */
		uint64_t silent = now > c->last_rx_ms ? now - c->last_rx_ms : 0;

		if (silent > ka) {
			snprintf(why, sizeof(why), "the peer has been silent for %u s",
				 rt_g.opts.keepalive_s);
			conn_fail(c, ETIMEDOUT, why);
		} else if (silent > ka / 3 && !c->ping_outstanding) {
			c->ping_outstanding = true;
			conn_send_ctrl(c, WIRE_OP_PING);
		}
	}
	/*
	 * A queued connection whose peer vanished without closing its stream
	 * and that holds no bytes for the program: accept() could only return
	 * a dead end, so free its ring and queue pair now.  Otherwise peers
	 * that connect and vanish would keep memory pinned and the backlog
	 * full until the program happened to accept.  One that ended with a
	 * FIN stays, so that accept() returns it and a read gives end of
	 * stream, as on TCP (the backlog limit bounds what those hold).
	 */
	if (c->is_server && c->queued && !c->owner_gone && !c->rx_ready && !c->fin_received &&
	    (c->state == CS_FAILED || c->peer_gone) && listener_drop_pending(c)) {
		log_debug(c->id, "dropped: the peer left before the program accepted it");
		c->owner_gone = true;
	}
	/*
	 * A server connection that failed before it was ever queued has no
	 * owner.  One that was queued is the program's once accept() takes it
	 * off the queue (before accept() has taken c->lock), or is dropped by
	 * the listener: never ours to end here.
	 */
	if (c->is_server && c->state == CS_FAILED && !c->was_queued && c->listener)
		c->owner_gone = true;
	if (c->state == CS_FAILED && !c->disconnecting && c->qp) {
		c->disconnecting = true;
		rdma_disconnect(c->cm_id);
	}
	if (c->owner_gone) {
		bool drained = conn_sq_idle(c);

		if (!c->disconnecting && (c->state == CS_ESTABLISHED || c->state == CS_DISCONNECTED) &&
		    ((drained && c->fin_sent) || now > c->deadline_ms || c->peer_gone)) {
			c->disconnecting = true;
			rdma_disconnect(c->cm_id);
		}
		if (c->state < CS_ESTABLISHED && c->state != CS_FAILED)
			destroy = now > c->deadline_ms;
		else if (c->state == CS_FAILED || c->peer_gone)
			destroy = true;
		else if (now > c->deadline_ms + 2000)
			destroy = true;
	}
out:
	pthread_mutex_unlock(&c->lock);
	return destroy;
}

bool cm_flush_held(void)
{
	bool any = false;
	struct rt_conn *c;

	pthread_mutex_lock(&rt_g.lock);
	for (c = rt_g.conns; c; c = c->next_all) {
		/*
		 * A thread in a call on the connection decides about the held
		 * message itself before it returns (a write holds or posts it,
		 * a read posts it): look again next tick rather than wait for
		 * the lock, which a write holds across its posts.
		 */
		if (pthread_mutex_trylock(&c->lock)) {
			any = true;
			continue;
		}
		if (!c->destroyed && c->tx.open && c->tx.fast_flush) {
			tx_flush_if_idle(c, &c->tx.gen_seen_fast);
			any |= c->tx.open && c->tx.fast_flush;
		}
		pthread_mutex_unlock(&c->lock);
	}
	pthread_mutex_unlock(&rt_g.lock);
	return any;
}

void cm_check_timers(uint64_t now)
{
	struct rt_conn *doomed[64], *c;
	struct rt_listener *closed[16], *l, **lp;
	unsigned nd = 0, nl = 0, i;

	pthread_mutex_lock(&rt_g.lock);
	for (c = rt_g.conns; c; c = c->next_all)
		if (conn_timers(c, now) && nd < 64)
			doomed[nd++] = c;
	for (lp = &rt_g.listeners; *lp && nl < 16; ) {
		l = *lp;
		if (l->closed) {
			*lp = l->next_all;
			closed[nl++] = l;
		} else {
			lp = &l->next_all;
		}
	}
	l = rt_g.listeners;
	pthread_mutex_unlock(&rt_g.lock);

	/*
	 * Without the lock: only this thread unlinks or frees listeners, and
	 * rt_listen only puts new ones in front of the head taken above.
	 */
	for (; l; l = l->next_all)
		listener_listen_again(l, now);
	for (i = 0; i < nl; i++)
		listener_destroy(closed[i]);
	for (i = 0; i < nd; i++)
		conn_destroy(doomed[i]);
}
