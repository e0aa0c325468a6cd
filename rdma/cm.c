// SPDX-License-Identifier: MIT
/*
 * Connection management with librdmacm: active connect, listen/accept,
 * the versioned hello in the private data, rdma_cm event handling and the
 * timers that bound every wait (connect deadline, keepalive, close linger).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "common/addr.h"
#include "common/log.h"
#include "internal.h"

/* rdma_cm REJECTED status for a reject by the peer's consumer (IB CM). */
#define CM_REJ_CONSUMER_DEFINED 28
#define REJECT_DATA_LEN 5

static socklen_t sa_len(const struct sockaddr *sa)
{
	return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
					 : sizeof(struct sockaddr_in);
}

static void copy_addrs(struct rt_conn *c, struct rdma_cm_id *id)
{
	struct sockaddr *l = rdma_get_local_addr(id), *p = rdma_get_peer_addr(id);

	if (l && (l->sa_family == AF_INET || l->sa_family == AF_INET6))
		memcpy(&c->local, l, sa_len(l));
	if (p && (p->sa_family == AF_INET || p->sa_family == AF_INET6))
		memcpy(&c->peer, p, sa_len(p));
}

static void fill_conn_param(struct rdma_conn_param *param, const uint8_t *pdata,
			    uint8_t len)
{
	memset(param, 0, sizeof(*param));
	param->private_data = pdata;
	param->private_data_len = len;
	/* We never issue RDMA READs or atomics. */
	param->responder_resources = 0;
	param->initiator_depth = 0;
	param->retry_count = 7;
	/* Infinite RNR retry: a receiver briefly out of buffers is not an error. */
	param->rnr_retry_count = 7;
}

/*
 * One address-resolution attempt.  Short, and retried until the connect
 * deadline: the kernel re-checks a pending neighbour lookup only when the
 * attempt times out, so one lost ARP exchange would otherwise cost the
 * whole connect timeout.
 */
#define RESOLVE_ATTEMPT_MS 1000

static int resolve_timeout_ms(const struct rt_conn *c)
{
	uint64_t now = rt_now_ms();
	uint64_t left = c->deadline_ms > now ? c->deadline_ms - now : 1;

	return (int)(left < RESOLVE_ATTEMPT_MS ? left : RESOLVE_ATTEMPT_MS);
}

int rt_connect(const struct sockaddr *dst, socklen_t dstlen,
	       const struct sockaddr *src, socklen_t srclen, bool nonblock,
	       rt_notify_fn notify, void *arg, struct rt_conn **out)
{
	struct rdma_cm_id *id;
	struct rt_conn *c;
	char where[80];
	int ret;

	(void)srclen;
	if (dstlen < sizeof(struct sockaddr_in) || dstlen > sizeof(c->peer))
		return -EINVAL;
	c = conn_alloc(false);
	if (!c)
		return -ENOMEM;
	memcpy(&c->peer, dst, dstlen);
	addr_format(dst, where, sizeof(where));
	if (rdma_create_id(rt_g.cm_chan, &id, c, RDMA_PS_TCP)) {
		ret = -errno;
		log_error(c->id, "cannot create an RDMA id to connect to %s: %s", where,
			  strerror(errno));
		pthread_mutex_lock(&c->lock);
		c->owner_gone = true;
		c->state = CS_FAILED;
		pthread_mutex_unlock(&c->lock);
		conn_wake_service();
		return ret;
	}
	pthread_mutex_lock(&c->lock);
	c->cm_id = id;
	c->notify = notify;
	c->notify_arg = arg;
	c->state = CS_RESOLVING_ADDR;
	c->deadline_ms = rt_now_ms() + rt_g.opts.connect_timeout_ms;
	if (src && srclen <= sizeof(c->bind_src)) {
		memcpy(&c->bind_src, src, srclen);
		c->has_bind_src = true;
	}
	if (rdma_resolve_addr(id, (struct sockaddr *)src, (struct sockaddr *)dst,
			      resolve_timeout_ms(c))) {
		int err = errno == ENODEV || errno == EADDRNOTAVAIL ? ENODEV : errno;
		char why[160];

		snprintf(why, sizeof(why), "no RDMA route to %s: %s", where, strerror(errno));
		conn_fail(c, err, why);
		c->owner_gone = true;
		pthread_mutex_unlock(&c->lock);
		conn_wake_service();
		return -err;
	}
	*out = c;
	if (nonblock) {
		pthread_mutex_unlock(&c->lock);
		return -EINPROGRESS;
	}
	while (c->state < CS_ESTABLISHED)
		conn_wait(c);
	ret = 0;
	if (c->state == CS_FAILED) {
		ret = -c->error;
		c->error_reported = true;
	}
	pthread_mutex_unlock(&c->lock);
	return ret;
}

static void listener_free(struct rt_listener *l)
{
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->cond);
	free(l);
}

int rt_listen(const struct sockaddr *addr, socklen_t addrlen, int backlog,
	      rt_notify_fn notify, void *arg, struct rt_listener **out)
{
	pthread_condattr_t ca;
	struct rt_listener *l;
	char where[80];
	int ret;

	(void)addrlen;
	addr_format(addr, where, sizeof(where));
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->obj.kind = RT_OBJ_LISTENER;
	pthread_mutex_init(&l->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cond, &ca);
	pthread_condattr_destroy(&ca);
	l->backlog = backlog;
	l->notify = notify;
	l->notify_arg = arg;
	if (rdma_create_id(rt_g.cm_chan, &l->cm_id, l, RDMA_PS_TCP))
		goto fail;
	if (rdma_bind_addr(l->cm_id, (struct sockaddr *)addr))
		goto fail;
	/* Requests are answered at once by the service thread: a short queue is enough. */
	if (rdma_listen(l->cm_id, 128))
		goto fail;
	pthread_mutex_lock(&rt_g.lock);
	l->next_all = rt_g.listeners;
	rt_g.listeners = l;
	pthread_mutex_unlock(&rt_g.lock);
	log_info(0, "listening for RDMA connections on %s", where);
	*out = l;
	return 0;
fail:
	ret = -errno;
	log_error(0, "cannot listen for RDMA connections on %s: %s", where, strerror(errno));
	if (l->cm_id)
		rdma_destroy_id(l->cm_id);
	listener_free(l);
	return ret == -ENOENT ? -ENODEV : ret;
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

static void reject(struct rdma_cm_id *id, enum wire_reject reason)
{
	uint8_t data[REJECT_DATA_LEN];

	wire_put32(data, WIRE_MAGIC);
	data[4] = (uint8_t)reason;
	rdma_reject(id, data, sizeof(data));
}

static const char *reject_text(int reason)
{
	switch (reason) {
	case WIRE_REJECT_VERSION:
		return "incompatible migrdma protocol version";
	case WIRE_REJECT_MALFORMED:
		return "malformed connection request";
	case WIRE_REJECT_RESOURCES:
		return "out of resources";
	case WIRE_REJECT_POLICY:
		return "not allowed by the listener's policy";
	default:
		return "unknown reason";
	}
}

/*
 * Connections being set up or waiting for accept() on l.  Each pins its
 * ring and buffers, so like TCP's backlog this bounds what a peer can make
 * a listener hold before the program accepts anything.
 */
static bool listener_full(struct rt_listener *l)
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

/* Returns true when the event's id must be destroyed after the ack. */
static bool handle_connect_request(struct rt_listener *l, struct rdma_cm_event *ev)
{
	struct rdma_cm_id *id = ev->id;
	const uint8_t *pdata = ev->param.conn.private_data;
	uint8_t pdata_len = ev->param.conn.private_data_len;
	uint8_t rep[WIRE_REP_AUTH_LEN];
	struct rdma_conn_param param;
	struct wire_hello peer, mine;
	bool want_auth = rt_g.opts.secret_len > 0;
	struct rt_conn *c;
	char from[80];
	int ret;

	addr_format(rdma_get_peer_addr(id), from, sizeof(from));
	ret = wire_hello_decode(pdata, pdata_len, &peer);
	if (ret) {
		log_warn(0, "refused an RDMA connection from %s: %s", from, reject_text(-ret));
		reject(id, (enum wire_reject)-ret);
		return true;
	}
	if (rt_g.opts.allow_peer && !rt_g.opts.allow_peer(rdma_get_peer_addr(id))) {
		log_warn(0, "refused an RDMA connection from %s: not in MIGRDMA_ALLOW", from);
		reject(id, WIRE_REJECT_POLICY);
		return true;
	}
	if (want_auth != !!(peer.flags & WIRE_HELLO_AUTH) ||
	    (want_auth && pdata_len < WIRE_REQ_AUTH_LEN)) {
		log_warn(0, "refused an RDMA connection from %s: %s", from,
			 want_auth ? "it presented no MIGRDMA_SECRET proof"
				   : "it expects a MIGRDMA_SECRET, which this side has not set");
		reject(id, WIRE_REJECT_POLICY);
		return true;
	}
	pthread_mutex_lock(&l->lock);
	ret = l->shut;
	pthread_mutex_unlock(&l->lock);
	if (ret) {
		reject(id, WIRE_REJECT_RESOURCES);
		return true;
	}
	if (listener_full(l)) {
		log_warn(0, "refused an RDMA connection from %s: the listen backlog is full", from);
		reject(id, WIRE_REJECT_RESOURCES);
		return true;
	}
	c = conn_alloc(true);
	if (!c) {
		reject(id, WIRE_REJECT_RESOURCES);
		return true;
	}
	id->context = c;
	if (conn_setup_resources(c, id)) {
		reject(id, WIRE_REJECT_RESOURCES);
		/* The id goes with the connection. */
		c->owner_gone = true;
		c->state = CS_FAILED;
		return false;
	}
	pthread_mutex_lock(&c->lock);
	c->listener = l;
	conn_apply_peer_hello(c, &peer);
	conn_local_hello(c, &mine);
	if (want_auth) {
		c->auth = true;
		mine.flags |= WIRE_HELLO_AUTH;
		memcpy(c->client_nonce, pdata + WIRE_HELLO_LEN, WIRE_NONCE_LEN);
		if (auth_nonce(c->server_nonce)) {
			pthread_mutex_unlock(&c->lock);
			reject(id, WIRE_REJECT_RESOURCES);
			c->owner_gone = true;
			c->state = CS_FAILED;
			return false;
		}
		memcpy(rep + WIRE_HELLO_LEN, c->server_nonce, WIRE_NONCE_LEN);
		auth_proof(rt_g.opts.secret, rt_g.opts.secret_len, AUTH_SERVER_PROOF,
			   c->client_nonce, c->server_nonce,
			   rep + WIRE_HELLO_LEN + WIRE_NONCE_LEN);
	}
	wire_hello_encode(&mine, rep);
	fill_conn_param(&param, rep, want_auth ? WIRE_REP_AUTH_LEN : WIRE_HELLO_LEN);
	c->state = CS_ACCEPTING;
	c->deadline_ms = rt_now_ms() + rt_g.opts.connect_timeout_ms;
	copy_addrs(c, id);
	if (rdma_accept(id, &param)) {
		conn_fail(c, ECONNABORTED, "rdma_accept failed");
		c->owner_gone = true;
	}
	pthread_mutex_unlock(&c->lock);
	return false;
}

/* Put an established connection on its listener's accept queue.  c->lock held. */
static void listener_enqueue(struct rt_conn *c)
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
static bool listener_drop_pending(struct rt_conn *c)
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

static void now_established(struct rt_conn *c)
{
	char where[80];

	addr_format(&c->peer, where, sizeof(where));
	c->state = CS_ESTABLISHED;
	c->last_rx_ms = rt_now_ms();
	log_info(c->id, "RDMA connection %s %s established%s", c->is_server ? "from" : "to",
		 where, c->auth ? " (secret verified)" : "");
	pthread_cond_broadcast(&c->cond);
	conn_update_events(c, false);
	if (c->is_server)
		listener_enqueue(c);
}

/* Server: the client's proof arrived.  c->lock held. */
void conn_auth_received(struct rt_conn *c, const uint8_t *proof)
{
	uint8_t want[AUTH_PROOF_LEN];
	char from[80];

	auth_proof(rt_g.opts.secret, rt_g.opts.secret_len, AUTH_CLIENT_PROOF,
		   c->client_nonce, c->server_nonce, want);
	if (!auth_equal(want, proof, AUTH_PROOF_LEN)) {
		addr_format(&c->peer, from, sizeof(from));
		log_warn(c->id, "refused an RDMA connection from %s: wrong MIGRDMA_SECRET", from);
		conn_fail(c, ECONNREFUSED, "wrong secret");
		return;
	}
	conn_send_ctrl(c, WIRE_OP_AUTH_OK);
	now_established(c);
}

/* Client: the server admitted us.  c->lock held. */
void conn_auth_ok_received(struct rt_conn *c)
{
	now_established(c);
}

/* Client: check the server's proof and send ours.  c->lock held. */
static int client_authenticate(struct rt_conn *c, const uint8_t *pdata, uint8_t len,
			       const struct wire_hello *peer, const char *where)
{
	uint8_t want[AUTH_PROOF_LEN], mine[AUTH_PROOF_LEN];
	char why[160];

	if (!(peer->flags & WIRE_HELLO_AUTH) || len < WIRE_REP_AUTH_LEN) {
		snprintf(why, sizeof(why), "%s does not authenticate, but MIGRDMA_SECRET is set",
			 where);
		conn_fail(c, ECONNREFUSED, why);
		return -1;
	}
	memcpy(c->server_nonce, pdata + WIRE_HELLO_LEN, WIRE_NONCE_LEN);
	auth_proof(rt_g.opts.secret, rt_g.opts.secret_len, AUTH_SERVER_PROOF,
		   c->client_nonce, c->server_nonce, want);
	if (!auth_equal(want, pdata + WIRE_HELLO_LEN + WIRE_NONCE_LEN, AUTH_PROOF_LEN)) {
		snprintf(why, sizeof(why), "%s does not hold the same MIGRDMA_SECRET", where);
		conn_fail(c, ECONNREFUSED, why);
		return -1;
	}
	auth_proof(rt_g.opts.secret, rt_g.opts.secret_len, AUTH_CLIENT_PROOF,
		   c->client_nonce, c->server_nonce, mine);
	c->state = CS_AUTHENTICATING;
	conn_send_ctrl_payload(c, WIRE_OP_AUTH, mine, AUTH_PROOF_LEN);
	return 0;
}

static void established(struct rt_conn *c, struct rdma_cm_event *ev)
{
	struct wire_hello peer;
	char where[80];
	int ret;

	pthread_mutex_lock(&c->lock);
	if (c->state != CS_CONNECTING && c->state != CS_ACCEPTING) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	copy_addrs(c, c->cm_id);
	addr_format(&c->peer, where, sizeof(where));
	if (!c->is_server) {
		ret = wire_hello_decode(ev->param.conn.private_data,
					ev->param.conn.private_data_len, &peer);
		if (ret) {
			char why[160];

			snprintf(why, sizeof(why), "%s answered with a bad hello: %s", where,
				 reject_text(-ret));
			conn_fail(c, ECONNREFUSED, why);
			pthread_mutex_unlock(&c->lock);
			return;
		}
		conn_apply_peer_hello(c, &peer);
		if (c->auth) {
			client_authenticate(c, ev->param.conn.private_data,
					    ev->param.conn.private_data_len, &peer, where);
			pthread_mutex_unlock(&c->lock);
			return;
		}
	} else if (c->auth) {
		/* The client's proof is the first message; until then, no accept(). */
		c->state = CS_AUTHENTICATING;
		pthread_mutex_unlock(&c->lock);
		return;
	}
	now_established(c);
	pthread_mutex_unlock(&c->lock);
}

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
	pthread_cond_broadcast(&c->cond);
	conn_update_events(c, false);
	pthread_mutex_unlock(&c->lock);
}

static void route_resolved(struct rt_conn *c)
{
	struct rdma_conn_param param;
	uint8_t req[WIRE_REQ_AUTH_LEN];
	struct wire_hello mine;
	int ret;

	/* Set-up takes the global lock, so it runs before the connection's. */
	ret = conn_setup_resources(c, c->cm_id);
	pthread_mutex_lock(&c->lock);
	if (c->state != CS_RESOLVING_ROUTE) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	if (ret) {
		conn_fail(c, -ret == ENOMEM ? ENOBUFS : -ret, "cannot set up RDMA resources");
		pthread_mutex_unlock(&c->lock);
		return;
	}
	conn_local_hello(c, &mine);
	if (rt_g.opts.secret_len) {
		c->auth = true;
		mine.flags |= WIRE_HELLO_AUTH;
		if (auth_nonce(c->client_nonce)) {
			conn_fail(c, EIO, "no random bytes for the authentication nonce");
			pthread_mutex_unlock(&c->lock);
			return;
		}
		memcpy(req + WIRE_HELLO_LEN, c->client_nonce, WIRE_NONCE_LEN);
	}
	wire_hello_encode(&mine, req);
	fill_conn_param(&param, req, c->auth ? WIRE_REQ_AUTH_LEN : WIRE_HELLO_LEN);
	if (rdma_connect(c->cm_id, &param))
		conn_fail(c, errno, "rdma_connect failed");
	else
		c->state = CS_CONNECTING;
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
		route_resolved(c);
		break;
	case RDMA_CM_EVENT_ESTABLISHED:
		established(c, ev);
		break;
	case RDMA_CM_EVENT_DISCONNECTED:
		disconnected(c);
		break;
	default:
		pthread_mutex_lock(&c->lock);
		switch (ev->event) {
		case RDMA_CM_EVENT_ADDR_ERROR:
			if (ev->status == -ETIMEDOUT && c->state == CS_RESOLVING_ADDR &&
			    rt_now_ms() + 50 < c->deadline_ms &&
			    !rdma_resolve_addr(c->cm_id,
					       c->has_bind_src ? (struct sockaddr *)&c->bind_src : NULL,
					       (struct sockaddr *)&c->peer, resolve_timeout_ms(c))) {
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
					 reject_text(pd[4]));
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
			conn_fail(c, ENODEV, "the RDMA device was removed");
			break;
		default:
			break;
		}
		pthread_mutex_unlock(&c->lock);
		break;
	}
}

void cm_handle_event(struct rdma_cm_event *ev)
{
	struct rdma_cm_id *destroy = NULL;
	struct rt_obj *obj;

	obj = ev->event == RDMA_CM_EVENT_CONNECT_REQUEST ? NULL : ev->id->context;
	log_debug(obj && obj->kind == RT_OBJ_CONN ? ((struct rt_conn *)obj)->id : 0,
		  "rdma_cm event %s (status %d)", rdma_event_str(ev->event), ev->status);

	if (ev->event == RDMA_CM_EVENT_CONNECT_REQUEST) {
		struct rt_listener *l = ev->listen_id->context;

		if (handle_connect_request(l, ev))
			destroy = ev->id;
		rdma_ack_cm_event(ev);
		if (destroy)
			rdma_destroy_id(destroy);
		return;
	}
	obj = ev->id->context;
	if (obj && obj->kind == RT_OBJ_CONN)
		conn_event((struct rt_conn *)obj, ev);
	rdma_ack_cm_event(ev);
}

/* What the timers decided for one connection. */
static bool conn_timers(struct rt_conn *c, uint64_t now)
{
	uint64_t ka = (uint64_t)rt_g.opts.keepalive_s * 1000;
	bool destroy = false;
	char why[120];

	pthread_mutex_lock(&c->lock);
	if (c->destroyed)
		goto out;
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
		bool drained = c->sq_outstanding == 0;

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

static void listener_destroy(struct rt_listener *l)
{
	struct rt_conn *c, *next;

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

void cm_check_timers(uint64_t now)
{
	struct rt_conn *doomed[64], *c;
	struct rt_listener *closed[16], **lp;
	unsigned nd = 0, nl = 0, i;

	pthread_mutex_lock(&rt_g.lock);
	for (c = rt_g.conns; c; c = c->next_all)
		if (conn_timers(c, now) && nd < 64)
			doomed[nd++] = c;
	for (lp = &rt_g.listeners; *lp && nl < 16; ) {
		struct rt_listener *l = *lp;

		if (l->closed) {
			*lp = l->next_all;
			closed[nl++] = l;
		} else {
			lp = &l->next_all;
		}
	}
	pthread_mutex_unlock(&rt_g.lock);

	for (i = 0; i < nl; i++)
		listener_destroy(closed[i]);
	for (i = 0; i < nd; i++)
		conn_destroy(doomed[i]);
}
