// SPDX-License-Identifier: MIT
/*
 * The passive side's queue: rt_listen(), the accept queue of established
 * connections and its backlog limit, rt_accept(), and the listener's end.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "common/log.h"
#include "internal.h"

static void listener_free(struct rt_listener *l)
{
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->cond);
	free(l);
}

/* A listening rdma_cm id for l->addr in l->cm_id, or a negative errno. */
static int listen_on(struct rt_listener *l)
{
	struct rdma_cm_id *id;
	int ret;

	if (rdma_create_id(rt_g.cm_chan, &id, l, RDMA_PS_TCP))
		return -errno;
	/* Requests are answered at once by the service thread: a short queue is enough. */
	if (rdma_bind_addr(id, (struct sockaddr *)&l->addr) || rdma_listen(id, 128)) {
		ret = -errno;
		rdma_destroy_id(id);
		return ret;
	}
	l->cm_id = id;
	return 0;
}

int rt_listen(const struct sockaddr *addr, socklen_t addrlen, int backlog,
	      rt_notify_fn notify, void *arg, struct rt_listener **out)
{
	pthread_condattr_t ca;
	struct rt_listener *l;
	char where[80];
	int ret;

	addr_format(addr, where, sizeof(where));
	if (addrlen > sizeof(l->addr))
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	memcpy(&l->addr, addr, addrlen);
	l->obj.kind = RT_OBJ_LISTENER;
	pthread_mutex_init(&l->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cond, &ca);
	pthread_condattr_destroy(&ca);
	l->backlog = backlog;
	l->notify = notify;
	l->notify_arg = arg;
	ret = listen_on(l);
	if (ret) {
		log_error(0, "cannot listen for RDMA connections on %s: %s", where, strerror(-ret));
		listener_free(l);
		return ret == -ENOENT ? -ENODEV : ret;
	}
	pthread_mutex_lock(&rt_g.lock);
	l->next_all = rt_g.listeners;
	rt_g.listeners = l;
	pthread_mutex_unlock(&rt_g.lock);
	log_info(0, "listening for RDMA connections on %s", where);
	*out = l;
	return 0;
}

/*
 * A listener bound to one device's address hears nothing once that device
 * is removed, and a device that comes back (a driver reset, rxe re-added)
 * is a new one.  A TCP listener keeps its port whatever happens to the
 * interface, so this one does too: the dead id goes, and the service
 * thread's tick binds the address again until a device has it.  accept()
 * meanwhile waits as it would for a quiet port.  A wildcard listener never
 * sees this: rdma_cm follows devices for it.
 */
void listener_device_removed(struct rt_listener *l)
{
	char where[80];

	addr_format(&l->addr, where, sizeof(where));
	log_warn(0, "the RDMA device under the listener on %s was removed; "
		 "listening again once a device has the address", where);
	rdma_destroy_id(l->cm_id);
	l->cm_id = NULL;
	rt_forget_removed_devices();
	l->device_gone = true;
	l->relisten_ms = rt_now_ms() + RT_RELISTEN_MS;
}

/*
 * The published listener listening on id, or NULL: rt_listen may not have
 * published it yet, or may be failing and about to free it, and then its
 * own clean-up ends the id.
 */
struct rt_listener *listener_with_id(struct rdma_cm_id *id)
{
	struct rt_listener *l;

	pthread_mutex_lock(&rt_g.lock);
	for (l = rt_g.listeners; l && l->cm_id != id; l = l->next_all)
		;
	pthread_mutex_unlock(&rt_g.lock);
	return l;
}

void listener_listen_again(struct rt_listener *l, uint64_t now)
{
	char where[80];
	bool closed;
	int ret;

	if (!l->device_gone || now < l->relisten_ms)
		return;
	pthread_mutex_lock(&l->lock);
	closed = l->closed;
	pthread_mutex_unlock(&l->lock);
	if (closed)
		return;
	ret = listen_on(l);
	addr_format(&l->addr, where, sizeof(where));
	if (ret) {
		log_debug(0, "cannot listen on %s yet: %s", where, strerror(-ret));
		l->relisten_ms = now + RT_RELISTEN_MS;
		return;
	}
	l->device_gone = false;
	log_info(0, "listening for RDMA connections on %s again", where);
}

void listener_update_events(struct rt_listener *l)
{
	unsigned ev = (l->npending || l->shut || l->extra_ready) ? RT_EV_READABLE : 0;

	if (l->notify && ev != l->last_events) {
		l->last_events = ev;
		l->notify(l->notify_arg, ev | (l->npending ? RT_EV_NEWDATA : 0));
	}
}

int rt_accept(struct rt_listener *l, bool nonblock, rt_notify_fn notify, void *arg,
	      struct rt_conn **out)
{
	struct rt_conn *c;
	struct timespec ts;

	pthread_mutex_lock(&l->lock);
	while (!l->pending_head) {
		if (l->shut) {
			pthread_mutex_unlock(&l->lock);
			return -EINVAL;
		}
		if (nonblock) {
			pthread_mutex_unlock(&l->lock);
			return -EAGAIN;
		}
		ts = rt_abs_timeout(1000);
		pthread_cond_timedwait(&l->cond, &l->lock, &ts);
	}
	c = l->pending_head;
	c->queued = false;
	l->pending_head = c->next_pending;
	if (!l->pending_head)
		l->pending_tail = NULL;
	l->npending--;
	listener_update_events(l);
	pthread_mutex_unlock(&l->lock);

	pthread_mutex_lock(&c->lock);
	c->listener = NULL;
	c->next_pending = NULL;
	c->notify = notify;
	c->notify_arg = arg;
	/* Bytes may have arrived before accept: publish the state now. */
	c->last_events = ~0u;
	conn_update_events(c, c->rx_ready > 0);
	pthread_mutex_unlock(&c->lock);
	*out = c;
	return 0;
}

void rt_listener_set_notify(struct rt_listener *l, rt_notify_fn notify, void *arg)
{
	pthread_mutex_lock(&l->lock);
	l->notify = notify;
	l->notify_arg = arg;
	l->last_events = ~0u;
	listener_update_events(l);
	pthread_mutex_unlock(&l->lock);
}

void rt_listener_set_extra_ready(struct rt_listener *l, bool ready)
{
	pthread_mutex_lock(&l->lock);
	l->extra_ready = ready;
	listener_update_events(l);
	pthread_mutex_unlock(&l->lock);
}

void rt_listener_shutdown(struct rt_listener *l)
{
	pthread_mutex_lock(&l->lock);
	l->shut = true;
	pthread_cond_broadcast(&l->cond);
	listener_update_events(l);
	pthread_mutex_unlock(&l->lock);
}

void rt_listener_close(struct rt_listener *l)
{
	pthread_mutex_lock(&l->lock);
	l->shut = true;
	l->closed = true;
	l->notify = NULL;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
	conn_wake_service();
}

/*
 * Connections being set up or waiting for accept() on l.  Each pins its
 * ring and buffers, so like TCP's backlog this bounds what a peer can make
 * a listener hold before the program accepts anything.
 */
bool listener_full(struct rt_listener *l)
{
	/*
	 * Twice the backlog plus a little: a refused peer fails at once
	 * (TCP's would retry a dropped SYN), so leave room for QEMU, whose
	 * multifd opens channels+1 connections to a listen(channels) socket.
	 */
	unsigned used = 0, limit = 2 * (l->backlog > 0 ? (unsigned)l->backlog : 1) + 4;
	struct rt_conn *c;

	pthread_mutex_lock(&rt_g.lock);
	for (c = rt_g.conns; c; c = c->next_all)
		if (c->listener == l && !c->owner_gone)
			used++;
	pthread_mutex_unlock(&rt_g.lock);
	return used >= limit;
}

/* Put an established connection on its listener's accept queue.  c->lock held. */
void listener_enqueue(struct rt_conn *c)
{
	struct rt_listener *l = c->listener;

	if (!l || c->queued)
		return;
	c->queued = true;
	c->was_queued = true;
	pthread_mutex_lock(&l->lock);
	if (l->pending_tail)
		l->pending_tail->next_pending = c;
	else
		l->pending_head = c;
	l->pending_tail = c;
	l->npending++;
	pthread_cond_broadcast(&l->cond);
	listener_update_events(l);
	pthread_mutex_unlock(&l->lock);
}

/*
 * Take a queued connection off its listener's accept queue before the
 * program ever saw it.  c->lock held.  Returns false if accept() won the
 * race and the connection is the program's now.
 */
bool listener_drop_pending(struct rt_conn *c)
{
	struct rt_listener *l = c->listener;
	struct rt_conn **pp, *prev = NULL;
	bool found = false;

	if (!l)
		return false;
	pthread_mutex_lock(&l->lock);
	for (pp = &l->pending_head; *pp; prev = *pp, pp = &(*pp)->next_pending) {
		if (*pp != c)
			continue;
		*pp = c->next_pending;
		if (l->pending_tail == c)
			l->pending_tail = prev;
		c->next_pending = NULL;
		c->queued = false;
		l->npending--;
		listener_update_events(l);
		found = true;
		break;
	}
	pthread_mutex_unlock(&l->lock);
	return found;
}

void listener_destroy(struct rt_listener *l)
{
	struct rt_conn *c, *next;

	if (l->cm_id)
		rdma_destroy_id(l->cm_id);
	/* Connections still being set up for it now have nowhere to go. */
	pthread_mutex_lock(&rt_g.lock);
	for (c = rt_g.conns; c; c = c->next_all) {
		pthread_mutex_lock(&c->lock);
		if (c->listener == l && !c->queued) {
			c->listener = NULL;
			/* Queued once: accept() or the drop above owns its end. */
			if (!c->owner_gone && !c->was_queued) {
				c->owner_gone = true;
				conn_fail(c, ECONNABORTED, "the listener was closed");
			}
		}
		pthread_mutex_unlock(&c->lock);
	}
	pthread_mutex_unlock(&rt_g.lock);
	/* Nobody will accept these now; none may point at l once it is freed. */
	for (c = l->pending_head; c; c = next) {
		next = c->next_pending;
		pthread_mutex_lock(&c->lock);
		c->queued = false;
		c->listener = NULL;
		c->next_pending = NULL;
		pthread_mutex_unlock(&c->lock);
		rt_conn_close(c);
	}
	listener_free(l);
}
