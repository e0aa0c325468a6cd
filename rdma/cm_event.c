// SPDX-License-Identifier: MIT
/*
 * rdma_cm event dispatch: each event on the service thread's channel goes
 * to the connection or listener it is about, and failures become one
 * errno and one line saying why.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/addr.h"
#include "common/log.h"
#include "internal.h"

/* rdma_cm REJECTED status for a reject by the peer's consumer (IB CM). */
#define CM_REJ_CONSUMER_DEFINED 28

static void disconnected(struct rt_conn *c)
{
	pthread_mutex_lock(&c->lock);
	/* Completions that arrived before the DREQ belong to the stream. */
	conn_progress(c);
	c->peer_gone = true;
	if (c->state == CS_AUTHENTICATING)
		conn_fail(c, ECONNREFUSED, c->is_server ? "the peer left before authenticating"
							: "the peer refused our MIGRDMA_SECRET proof");
	if (c->state == CS_ESTABLISHED) {
		c->state = CS_DISCONNECTED;
		/* Only a disconnect we did not start can cut the peer's stream short. */
		if (!c->fin_received && !c->disconnecting) {
			c->end_reason = "reset";
			log_warn(c->id, "the peer disconnected without closing the stream");
		}
	}
	if (!c->disconnecting && c->cm_id) {
		c->disconnecting = true;
		rdma_disconnect(c->cm_id);
	}
	conn_wake_waiters(c);
	conn_update_events(c, false);
	pthread_mutex_unlock(&c->lock);
}

static int addr_error_errno(int status)
{
	switch (-status) {
	case ENODEV:
	case EADDRNOTAVAIL:
		return ENODEV;
	case ENETUNREACH:
		return ENETUNREACH;
	default:
		return EHOSTUNREACH;
	}
}

/* An event that ends a connection attempt: say why, fail with the errno.  c->lock held. */
static void failure_event(struct rt_conn *c, struct rdma_cm_event *ev, const char *where)
{
	char why[200];

	switch (ev->event) {
	case RDMA_CM_EVENT_ADDR_ERROR:
		if (ev->status == -ETIMEDOUT && c->state == CS_RESOLVING_ADDR &&
		    rt_now_ms() + 50 < c->deadline_ms &&
		    !rdma_resolve_addr(c->cm_id,
				       c->has_bind_src ? (struct sockaddr *)&c->bind_src : NULL,
				       (struct sockaddr *)&c->peer, cm_resolve_timeout_ms(c))) {
			log_debug(c->id, "address resolution timed out; retrying");
			break;
		}
		snprintf(why, sizeof(why),
			 "no RDMA device can reach %s (address resolution: %s)", where,
			 strerror(-ev->status));
		conn_fail(c, addr_error_errno(ev->status), why);
		break;
	case RDMA_CM_EVENT_ROUTE_ERROR:
		snprintf(why, sizeof(why), "no RDMA route to %s (%s)", where,
			 strerror(-ev->status));
		conn_fail(c, EHOSTUNREACH, why);
		break;
	case RDMA_CM_EVENT_REJECTED: {
		const uint8_t *pd = ev->param.conn.private_data;

		if (ev->status == CM_REJ_CONSUMER_DEFINED && pd &&
		    ev->param.conn.private_data_len >= REJECT_DATA_LEN &&
		    wire_get32(pd) == WIRE_MAGIC)
			snprintf(why, sizeof(why), "%s refused the connection: %s", where,
				 cm_reject_text(pd[4]));
		else
			snprintf(why, sizeof(why),
				 "nothing accepts RDMA connections at %s (is the peer running with migrdma?)",
				 where);
		conn_fail(c, ECONNREFUSED, why);
		break;
	}
	case RDMA_CM_EVENT_UNREACHABLE:
		snprintf(why, sizeof(why), "%s is unreachable over RDMA (%s)", where,
			 strerror(-ev->status));
		conn_fail(c, ev->status == -ETIMEDOUT ? ETIMEDOUT : EHOSTUNREACH, why);
		break;
	case RDMA_CM_EVENT_CONNECT_ERROR:
		snprintf(why, sizeof(why), "connection to %s failed (%s)", where,
			 strerror(-ev->status));
		conn_fail(c, ECONNREFUSED, why);
		break;
	case RDMA_CM_EVENT_DEVICE_REMOVAL:
		c->device_removed = true;
		conn_fail(c, ENODEV, "the RDMA device was removed");
		break;
	default:
		break;
	}
}

static void conn_event(struct rt_conn *c, struct rdma_cm_event *ev)
{
	char where[80], why[200];

	addr_format(&c->peer, where, sizeof(where));
	switch (ev->event) {
	case RDMA_CM_EVENT_ADDR_RESOLVED:
		pthread_mutex_lock(&c->lock);
		if (c->state == CS_RESOLVING_ADDR) {
			if (rdma_resolve_route(c->cm_id, (int)rt_g.opts.connect_timeout_ms)) {
				snprintf(why, sizeof(why), "cannot resolve a route to %s: %s",
					 where, strerror(errno));
				conn_fail(c, EHOSTUNREACH, why);
			} else {
				c->state = CS_RESOLVING_ROUTE;
			}
		}
		pthread_mutex_unlock(&c->lock);
		break;
	case RDMA_CM_EVENT_ROUTE_RESOLVED:
		cm_route_resolved(c);
		break;
	case RDMA_CM_EVENT_ESTABLISHED:
		cm_established(c, ev);
		break;
	case RDMA_CM_EVENT_DISCONNECTED:
		disconnected(c);
		break;
	default:
		pthread_mutex_lock(&c->lock);
		failure_event(c, ev, where);
		pthread_mutex_unlock(&c->lock);
		break;
	}
}

void cm_handle_event(struct rdma_cm_event *ev)
{
	struct rdma_cm_id *destroy = NULL;
	struct rt_listener *deaf = NULL;
	struct rt_obj *obj;

	obj = ev->event == RDMA_CM_EVENT_CONNECT_REQUEST ? NULL : ev->id->context;
	log_debug(obj && obj->kind == RT_OBJ_CONN ? ((struct rt_conn *)obj)->id : 0,
		  "rdma_cm event %s (status %d)", rdma_event_str(ev->event), ev->status);

	if (ev->event == RDMA_CM_EVENT_CONNECT_REQUEST) {
		struct rt_listener *l = ev->listen_id->context;

		if (cm_connect_request(l, ev))
			destroy = ev->id;
		rdma_ack_cm_event(ev);
		if (destroy)
			rdma_destroy_id(destroy);
		return;
	}
	obj = ev->id->context;
	if (obj && obj->kind == RT_OBJ_CONN)
		conn_event((struct rt_conn *)obj, ev);
	if (ev->event == RDMA_CM_EVENT_DEVICE_REMOVAL) {
		rt_device_removed(ev->id->verbs);
		if (obj && obj->kind == RT_OBJ_LISTENER)
			deaf = listener_with_id(ev->id);
	}
	rdma_ack_cm_event(ev);
	/* Only once acknowledged may its id go. */
	if (deaf)
		listener_device_removed(deaf);
}
