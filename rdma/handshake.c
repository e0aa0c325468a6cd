// SPDX-License-Identifier: MIT
/*
 * The connection handshake: the versioned hello in rdma_cm's private data,
 * the listener's admission decision (version, MIGRDMA_ALLOW, backlog), the
 * MIGRDMA_SECRET challenge-response, and the move to established.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "common/addr.h"
#include "common/log.h"
#include "internal.h"

static socklen_t sa_len(const struct sockaddr *sa)
{
	return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
					 : sizeof(struct sockaddr_in);
}

void cm_copy_addrs(struct rt_conn *c, struct rdma_cm_id *id)
{
	struct sockaddr *l = rdma_get_local_addr(id), *p = rdma_get_peer_addr(id);

	if (l && (l->sa_family == AF_INET || l->sa_family == AF_INET6))
		memcpy(&c->local, l, sa_len(l));
	if (p && (p->sa_family == AF_INET || p->sa_family == AF_INET6))
		memcpy(&c->peer, p, sa_len(p));
}

void cm_fill_conn_param(struct rdma_conn_param *param, const uint8_t *pdata,
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

void cm_set_ack_timeout(struct rt_conn *c, struct rdma_cm_id *id)
{
	uint8_t t = (uint8_t)rt_g.opts.ack_timeout;

	/*
	 * rdma_cm's default was 19 on the test rig (kernel 6.1, soft-RoCE),
	 * 2.1 s: a packet lost with nothing behind it to show the gap (the
	 * peer's credit message, the last of a burst) stalled the stream that
	 * long before the resend.  Older kernels lack the option and keep
	 * their default.
	 */
	if (t && rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT, &t, sizeof(t)))
		log_info(c->id, "cannot set the ACK timeout to %u (%m); the default stays", t);
}

static void reject(struct rdma_cm_id *id, enum wire_reject reason)
{
	uint8_t data[REJECT_DATA_LEN];

	wire_put32(data, WIRE_MAGIC);
	data[4] = (uint8_t)reason;
	rdma_reject(id, data, sizeof(data));
}

const char *cm_reject_text(int reason)
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
 * Whether l takes the connection request ev, whose hello is decoded into
 * *peer: 0, or the enum wire_reject to refuse it with (already logged).
 */
static int admit(struct rt_listener *l, struct rdma_cm_event *ev, struct wire_hello *peer)
{
	uint8_t pdata_len = ev->param.conn.private_data_len;
	bool want_auth = rt_g.opts.secret_len > 0;
	char from[80];
	bool shut;
	int ret;

	addr_format(rdma_get_peer_addr(ev->id), from, sizeof(from));
	ret = wire_hello_decode(ev->param.conn.private_data, pdata_len, peer);
	if (ret) {
		log_warn(0, "refused an RDMA connection from %s: %s", from, cm_reject_text(-ret));
		return -ret;
	}
	if (rt_g.opts.allow_peer && !rt_g.opts.allow_peer(rdma_get_peer_addr(ev->id))) {
		log_warn(0, "refused an RDMA connection from %s: not in MIGRDMA_ALLOW", from);
		return WIRE_REJECT_POLICY;
	}
	if (want_auth != !!(peer->flags & WIRE_HELLO_AUTH) ||
	    (want_auth && pdata_len < WIRE_REQ_AUTH_LEN)) {
		log_warn(0, "refused an RDMA connection from %s: %s", from,
			 want_auth ? "it presented no MIGRDMA_SECRET proof"
				   : "it expects a MIGRDMA_SECRET, which this side has not set");
		return WIRE_REJECT_POLICY;
	}
	pthread_mutex_lock(&l->lock);
	shut = l->shut;
	pthread_mutex_unlock(&l->lock);
	if (shut)
		return WIRE_REJECT_RESOURCES;
	if (listener_full(l)) {
		log_warn(0, "refused an RDMA connection from %s: the listen backlog is full", from);
		return WIRE_REJECT_RESOURCES;
	}
	return 0;
}

/*
 * MIGRDMA_SECRET: take the client's nonce from its request, and put ours
 * and our proof after the hello in rep.  c->lock held.
 */
static int server_auth_reply(struct rt_conn *c, const uint8_t *pdata, uint8_t *rep)
{
	c->auth = true;
	memcpy(c->client_nonce, pdata + WIRE_HELLO_LEN, WIRE_NONCE_LEN);
	if (auth_nonce(c->server_nonce))
		return -1;
	memcpy(rep + WIRE_HELLO_LEN, c->server_nonce, WIRE_NONCE_LEN);
	auth_proof(rt_g.opts.secret, rt_g.opts.secret_len, AUTH_SERVER_PROOF,
		   c->client_nonce, c->server_nonce, rep + WIRE_HELLO_LEN + WIRE_NONCE_LEN);
	return 0;
}

bool cm_connect_request(struct rt_listener *l, struct rdma_cm_event *ev)
{
	struct rdma_cm_id *id = ev->id;
	uint8_t rep[WIRE_REP_AUTH_LEN];
	struct rdma_conn_param param;
	struct wire_hello peer, mine;
	bool want_auth = rt_g.opts.secret_len > 0;
	struct rt_conn *c;
	int reason;

	reason = admit(l, ev, &peer);
	if (reason) {
		reject(id, (enum wire_reject)reason);
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
		mine.flags |= WIRE_HELLO_AUTH;
		if (server_auth_reply(c, ev->param.conn.private_data, rep)) {
			pthread_mutex_unlock(&c->lock);
			reject(id, WIRE_REJECT_RESOURCES);
			c->owner_gone = true;
			c->state = CS_FAILED;
			return false;
		}
	}
	wire_hello_encode(&mine, rep);
	cm_fill_conn_param(&param, rep, want_auth ? WIRE_REP_AUTH_LEN : WIRE_HELLO_LEN);
	c->state = CS_ACCEPTING;
	c->deadline_ms = rt_now_ms() + rt_g.opts.connect_timeout_ms;
	cm_copy_addrs(c, id);
	cm_set_ack_timeout(c, id);
	if (rdma_accept(id, &param)) {
		conn_fail(c, ECONNABORTED, "rdma_accept failed");
		c->owner_gone = true;
	}
	pthread_mutex_unlock(&c->lock);
	return false;
}

static void now_established(struct rt_conn *c)
{
	char where[80];

	addr_format(&c->peer, where, sizeof(where));
	c->state = CS_ESTABLISHED;
	c->last_rx_ms = rt_now_ms();
	log_info(c->id, "RDMA connection %s %s established%s", c->is_server ? "from" : "to",
		 where, c->auth ? " (secret verified)" : "");
	conn_wake_waiters(c);
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

void cm_established(struct rt_conn *c, struct rdma_cm_event *ev)
{
	struct wire_hello peer;
	char where[80];
	int ret;

	pthread_mutex_lock(&c->lock);
	if (c->state != CS_CONNECTING && c->state != CS_ACCEPTING) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	cm_copy_addrs(c, c->cm_id);
	addr_format(&c->peer, where, sizeof(where));
	if (!c->is_server) {
		ret = wire_hello_decode(ev->param.conn.private_data,
					ev->param.conn.private_data_len, &peer);
		if (ret) {
			char why[160];

			snprintf(why, sizeof(why), "%s answered with a bad hello: %s", where,
				 cm_reject_text(-ret));
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
