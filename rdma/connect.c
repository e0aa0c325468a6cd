// SPDX-License-Identifier: MIT
/*
 * The active side: rt_connect(), address and route resolution (retried
 * until the connect deadline), and the connect request carrying our hello.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "common/addr.h"
#include "common/log.h"
#include "internal.h"

/*
 * One address-resolution attempt.  Short, and retried until the connect
 * deadline: the kernel re-checks a pending neighbour lookup only when the
 * attempt times out, so one lost ARP exchange would otherwise cost the
 * whole connect timeout.
 */
#define RESOLVE_ATTEMPT_MS 1000

int cm_resolve_timeout_ms(const struct rt_conn *c)
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
			      cm_resolve_timeout_ms(c))) {
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

void cm_route_resolved(struct rt_conn *c)
{
	struct rdma_conn_param param;
	uint8_t req[WIRE_REQ_AUTH_LEN];
	struct wire_hello mine;
	int ret;

	/* Set-up takes the global lock, so it runs without the connection's (see resources.c). */
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
	cm_fill_conn_param(&param, req, c->auth ? WIRE_REQ_AUTH_LEN : WIRE_HELLO_LEN);
	cm_set_ack_timeout(c, c->cm_id);
	if (rdma_connect(c->cm_id, &param))
		conn_fail(c, errno, "rdma_connect failed");
	else
		c->state = CS_CONNECTING;
	pthread_mutex_unlock(&c->lock);
}
