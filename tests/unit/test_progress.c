// SPDX-License-Identifier: MIT
/*
 * conn_progress() fed crafted completions through a fake verbs context:
 *  - a server that wants MIGRDMA_SECRET takes the client's proof even when
 *    it lands before the server's ESTABLISHED event was handled (the client
 *    sends it on its own ESTABLISHED, which can come first);
 *  - before the proof, nothing else is taken, DATA included;
 *  - a receive consumed by an RDMA write with immediate data (which this
 *    protocol never sends) is an error, not a re-read of the old buffer;
 *  - a peek with MSG_WAITALL waits for the whole length, as TCP's does, but
 *    not for more than the peer can send before we consume anything;
 *  - MSG_TRUNC discards what it reads, without a buffer and without a cap;
 *  - a peer gone after its FIN is no hang-up while we may still write;
 *  - a write that fails returns only once the device has given its buffer
 *    back (the queue pair stopped, its requests flushed), and never reports
 *    bytes whose send completed with an error as written;
 *  - control messages leave the open DATA message its send-queue entries.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#include <cmocka.h>

#include "test_util.h"

#include "rdma/auth.h"
#include "rdma/internal.h"
#include "shim/msock.h"
#include "shim/shim.h"

static const char secret[] = "a-shared-secret";

static struct ibv_wc queued[4];
static int nqueued;
static int nposted_sends;

/*
 * The fake device's send queue: every work request it took and has not
 * completed.  It completes none by itself; once the queue pair is in the
 * error state, polling flushes them in order, as a device does.
 */
static uint64_t sq[2 * RT_SQ_DEPTH];
static unsigned sq_head, sq_len;
static int refuse_post = 1;	/* which post (1 the next) refuses ... */
static int refuse_at = -1;	/* ... its request number refuse_at */
static bool qp_in_error;
static uint64_t flush_delay_ms;	/* a device flushes this long after the error state */
static uint64_t error_at_ms;
static int last_solicited_only = -1;

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int fake_poll(struct ibv_cq *cq, int n, struct ibv_wc *wc)
{
	int k = nqueued < n ? nqueued : n;

	(void)cq;
	memcpy(wc, queued, sizeof(*wc) * (size_t)k);
	nqueued -= k;
	if (qp_in_error && mono_ms() < error_at_ms + flush_delay_ms)
		return k;
	while (k < n && qp_in_error && sq_len) {
		memset(&wc[k], 0, sizeof(wc[k]));
		wc[k].wr_id = sq[sq_head];
		wc[k].status = IBV_WC_WR_FLUSH_ERR;
		sq_head = (sq_head + 1) % (2 * RT_SQ_DEPTH);
		sq_len--;
		k++;
	}
	return k;
}

/* Linked before libibverbs: the library's calls come here. */
int ibv_modify_qp(struct ibv_qp *qp, struct ibv_qp_attr *attr, int attr_mask)
{
	if (!(attr_mask & IBV_QP_STATE))
		return 0;
	qp->state = attr->qp_state;
	if (attr->qp_state == IBV_QPS_ERR && !qp_in_error) {
		qp_in_error = true;
		error_at_ms = mono_ms();
	}
	return 0;
}

static int fake_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad)
{
	int i;

	(void)qp;
	nposted_sends++;
	for (i = 0; wr; wr = wr->next, i++) {
		if (refuse_post == 1 && i == refuse_at) {
			refuse_at = -1;
			*bad = wr;
			return ENOMEM;
		}
		sq[(sq_head + sq_len) % (2 * RT_SQ_DEPTH)] = wr->wr_id;
		sq_len++;
	}
	if (refuse_post > 1)
		refuse_post--;
	return 0;
}

static int fake_req_notify(struct ibv_cq *cq, int solicited_only)
{
	(void)cq;
	last_solicited_only = solicited_only;
	return 0;
}

static struct ibv_context fake_ctx;
static struct ibv_cq fake_cq;
static struct ibv_qp fake_qp;
static struct ibv_mr fake_mr;

/* A server connection as rdma_accept leaves it: QP ready, ESTABLISHED not yet seen. */
static struct rt_conn *accepting_server(bool auth)
{
	struct rt_conn *c;

	fake_ctx.ops.poll_cq = fake_poll;
	fake_ctx.ops.post_recv = fake_post_recv;
	fake_ctx.ops.post_send = fake_post_send;
	fake_ctx.ops.req_notify_cq = fake_req_notify;
	fake_cq.context = &fake_ctx;
	fake_qp.context = &fake_ctx;
	rt_g.opts.secret = secret;
	rt_g.opts.secret_len = sizeof(secret) - 1;

	c = conn_alloc(true);
	assert_non_null(c);
	c->nrecv = RT_DATA_CREDITS + RT_CTRL_RECVS;
	c->rbufs = calloc(c->nrecv, RT_MSG_SIZE);
	c->sbufs = calloc(1, RT_TX_SLOTS * RT_MSG_SIZE + RT_CTRL_SLOTS * RT_CTRL_BUF);
	assert_non_null(c->rbufs);
	assert_non_null(c->sbufs);
	c->rbuf_mr = c->sbuf_mr = &fake_mr;
	c->qp = &fake_qp;
	c->cq = &fake_cq;
	c->max_inline = 64;
	c->ring_size = 1u << 20;
	credit_rx_init(&c->crx, RT_DATA_CREDITS, c->ring_size);
	credit_tx_init(&c->ctx, 16, 1u << 20);
	c->auth = auth;
	memset(c->client_nonce, 1, sizeof(c->client_nonce));
	memset(c->server_nonce, 2, sizeof(c->server_nonce));
	c->state = CS_ACCEPTING;
	nposted_sends = 0;
	sq_head = sq_len = 0;
	refuse_post = 1;
	refuse_at = -1;
	qp_in_error = false;
	flush_delay_ms = 0;
	fake_qp.state = IBV_QPS_RTS;
	return c;
}

static void queue_recv(unsigned idx, uint32_t len, enum ibv_wc_opcode opcode)
{
	memset(queued, 0, sizeof(queued));
	queued[0].wr_id = rt_wr_id(RT_WR_RECV, idx);
	queued[0].status = IBV_WC_SUCCESS;
	queued[0].opcode = opcode;
	queued[0].byte_len = len;
	nqueued = 1;
}

static uint32_t put_proof(struct rt_conn *c, unsigned idx, const char *key)
{
	uint8_t *buf = c->rbufs + (size_t)idx * RT_MSG_SIZE;
	struct wire_hdr h = { 0 };

	h.version = WIRE_VERSION;
	h.opcode = WIRE_OP_AUTH;
	h.inline_len = WIRE_AUTH_LEN;
	wire_hdr_encode(&h, buf);
	auth_proof(key, strlen(key), AUTH_CLIENT_PROOF, c->client_nonce, c->server_nonce,
		   buf + WIRE_HDR_LEN);
	return WIRE_HDR_LEN + WIRE_AUTH_LEN;
}

/* A DATA message carrying four inline bytes. */
static uint32_t put_data(struct rt_conn *c, unsigned idx)
{
	uint8_t *buf = c->rbufs + (size_t)idx * RT_MSG_SIZE;
	struct wire_hdr h = { 0 };

	h.version = WIRE_VERSION;
	h.opcode = WIRE_OP_DATA;
	h.nseg = 1;
	h.inline_len = 4;
	wire_hdr_encode(&h, buf);
	memcpy(buf + WIRE_HDR_LEN, "abcd", 4);
	wire_put32(buf + WIRE_HDR_LEN + 4, wire_seg_encode(4, 0));
	return WIRE_HDR_LEN + 4 + 4;
}

static void progress(struct rt_conn *c)
{
	pthread_mutex_lock(&c->lock);
	conn_progress(c);
	pthread_mutex_unlock(&c->lock);
}

static void test_proof_before_established(void **state)
{
	struct rt_conn *c = accepting_server(true);

	(void)state;
	queue_recv(0, put_proof(c, 0, secret), IBV_WC_RECV);
	progress(c);
	assert_int_equal(c->state, CS_ESTABLISHED);
	assert_int_equal(nposted_sends, 1);	/* AUTH_OK */
}

static void test_wrong_proof_before_established(void **state)
{
	struct rt_conn *c = accepting_server(true);

	(void)state;
	queue_recv(0, put_proof(c, 0, "another-secret"), IBV_WC_RECV);
	progress(c);
	assert_int_equal(c->state, CS_FAILED);
	assert_int_equal(c->sticky_error, ECONNREFUSED);
}

static void test_data_before_proof(void **state)
{
	struct rt_conn *c = accepting_server(true);

	(void)state;
	queue_recv(0, put_data(c, 0), IBV_WC_RECV);
	progress(c);
	assert_int_equal(c->state, CS_FAILED);
	assert_int_equal(c->rxq_count, 0);
	assert_int_equal(c->rx_ready, 0);
}

/* Without a secret, DATA that beats ESTABLISHED is queued for the program. */
static void test_data_before_established_without_secret(void **state)
{
	struct rt_conn *c = accepting_server(false);

	(void)state;
	queue_recv(0, put_data(c, 0), IBV_WC_RECV);
	progress(c);
	assert_int_equal(c->state, CS_ACCEPTING);
	assert_int_equal(c->rxq_count, 1);
	assert_int_equal(c->rx_ready, 4);
}

static void test_write_with_imm_is_refused(void **state)
{
	struct rt_conn *c = accepting_server(false);

	(void)state;
	c->state = CS_ESTABLISHED;
	/* An old, valid DATA message still sits in the buffer the write consumed. */
	queue_recv(0, put_data(c, 0), IBV_WC_RECV_RDMA_WITH_IMM);
	progress(c);
	assert_int_equal(c->state, CS_FAILED);
	assert_int_equal(c->rxq_count, 0);
	assert_int_equal(c->rx_ready, 0);
}

/* An established connection holding one DATA message of four bytes, "abcd". */
static struct rt_conn *holding_four_bytes(void)
{
	struct rt_conn *c = accepting_server(false);

	c->state = CS_ESTABLISHED;
	queue_recv(0, put_data(c, 0), IBV_WC_RECV);
	progress(c);
	assert_int_equal(c->rx_ready, 4);
	return c;
}

static void test_peek_waitall_waits(void **state)
{
	struct rt_conn *c = holding_four_bytes();
	char buf[8] = { 0 };
	struct iovec iov = { buf, sizeof(buf) };
	uint64_t t0 = mono_ms();
	ssize_t n;

	(void)state;
	/* Four of eight bytes: it waits out its timeout, then gives what is there. */
	n = rt_recv(c, &iov, 1, RT_RECV_PEEK | RT_RECV_WAITALL, 200);
	assert_int_equal(n, 4);
	assert_true(mono_ms() - t0 >= 150);
	assert_memory_equal(buf, "abcd", 4);
	assert_int_equal(c->rx_ready, 4);	/* still there: it was a peek */
	/* Non-blocking, it returns what is there at once. */
	assert_int_equal(rt_recv(c, &iov, 1, RT_RECV_PEEK | RT_RECV_WAITALL, 0), 4);
	/* Asking for no more than is there, it returns at once too. */
	iov.iov_len = 4;
	t0 = mono_ms();
	assert_int_equal(rt_recv(c, &iov, 1, RT_RECV_PEEK | RT_RECV_WAITALL, 5000), 4);
	assert_true(mono_ms() - t0 < 1000);
}

static void test_peek_waitall_full_queue(void **state)
{
	struct rt_conn *c = holding_four_bytes();
	char buf[200];
	struct iovec iov = { buf, sizeof(buf) };
	uint64_t t0;
	unsigned i;

	(void)state;
	/* Every message credit holds unread bytes: the peer can send nothing more. */
	for (i = 1; i < RT_DATA_CREDITS; i++) {
		queue_recv(i, put_data(c, i), IBV_WC_RECV);
		progress(c);
	}
	assert_int_equal(c->rx_ready, 4 * RT_DATA_CREDITS);
	t0 = mono_ms();
	assert_int_equal(rt_recv(c, &iov, 1, RT_RECV_PEEK | RT_RECV_WAITALL, 5000),
			 4 * RT_DATA_CREDITS);
	assert_true(mono_ms() - t0 < 1000);
}

/* A DATA message placing len ring bytes of value v at the ring's current position. */
static uint32_t put_ring_data(struct rt_conn *c, unsigned idx, uint32_t len, uint8_t v)
{
	uint8_t *buf = c->rbufs + (size_t)idx * RT_MSG_SIZE;
	struct wire_hdr h = { 0 };

	memset(c->ring + (c->crx.ring_pos % c->ring_size), v, len);
	h.version = WIRE_VERSION;
	h.opcode = WIRE_OP_DATA;
	h.nseg = 1;
	h.ring_len = len;
	wire_hdr_encode(&h, buf);
	wire_put32(buf + WIRE_HDR_LEN, wire_seg_encode(len, 1));
	return WIRE_HDR_LEN + 4;
}

static void test_trunc_discards_without_cap(void **state)
{
	struct rt_conn *c = accepting_server(false);
	struct iovec iov = { NULL, 6u << 20 };
	struct msock ms = { 0 };
	uint32_t chunk = 2u << 20;
	char tail[5] = { 0 };
	unsigned i;

	(void)state;
	c->state = CS_ESTABLISHED;
	c->ring_size = 8u << 20;
	c->ring = calloc(1, c->ring_size);
	assert_non_null(c->ring);
	credit_rx_init(&c->crx, RT_DATA_CREDITS, c->ring_size);
	for (i = 0; i < 3; i++) {
		queue_recv(i, put_ring_data(c, i, chunk, (uint8_t)i), IBV_WC_RECV);
		progress(c);
	}
	queue_recv(3, put_data(c, 3), IBV_WC_RECV);
	progress(c);
	assert_int_equal(c->rx_ready, 3 * chunk + 4);
	ms.conn = c;
	ms.rcv_timeout_ms = -1;
	/* 6 MiB into no buffer at all, as TCP's MSG_TRUNC does. */
	assert_int_equal(shim_recv(&ms, &iov, 1, MSG_TRUNC | MSG_WAITALL), 3 * chunk);
	/* What follows is intact. */
	iov.iov_base = tail;
	iov.iov_len = 4;
	assert_int_equal(shim_recv(&ms, &iov, 1, 0), 4);
	assert_string_equal(tail, "abcd");
}

static unsigned last_events;

static void note_events(void *arg, unsigned events)
{
	(void)arg;
	last_events = events;
}

static unsigned events_now(struct rt_conn *c)
{
	pthread_mutex_lock(&c->lock);
	c->last_events = ~0u;
	conn_update_events(c, false);
	pthread_mutex_unlock(&c->lock);
	return last_events;
}

static void test_closed_peer_is_no_hangup(void **state)
{
	struct rt_conn *c = holding_four_bytes();

	(void)state;
	c->notify = note_events;
	/* The peer sent FIN, then went away (it disconnects after its FIN). */
	c->fin_received = true;
	c->peer_gone = true;
	assert_int_equal(events_now(c) & (RT_EV_READABLE | RT_EV_RDHUP | RT_EV_WRITABLE | RT_EV_HUP),
			 RT_EV_READABLE | RT_EV_RDHUP | RT_EV_WRITABLE);
	/* Both directions closed: now it is one. */
	c->shut_wr = true;
	assert_true(events_now(c) & RT_EV_HUP);
	/* Gone without a FIN: a reset, a hang-up at once. */
	c->shut_wr = false;
	c->fin_received = false;
	assert_true(events_now(c) & RT_EV_HUP);
	c->notify = NULL;
}

static void *no_reg(void *ctx, void *addr, size_t len, uint32_t *lkey)
{
	(void)ctx;
	(void)len;
	*lkey = 7;
	return addr;
}

static void no_dereg(void *ctx, void *handle)
{
	(void)ctx;
	(void)handle;
}

static struct regcache_backend no_backend = { no_reg, no_dereg, NULL };

/* An established connection that sends program memory zero-copy, which did not opt in. */
static struct rt_conn *sending_conn(void)
{
	struct rt_conn *c = accepting_server(false);

	c->state = CS_ESTABLISHED;
	rt_g.opts.chunk = 1u << 20;
	rt_g.opts.zcopy_min = 4096;
	rt_g.opts.defer = RT_DEFER_AUTO;
	c->regcache = regcache_create(&no_backend, 1u << 20, 64u << 20);
	assert_non_null(c->regcache);
	c->peer_msg_size = RT_MSG_SIZE;
	c->max_sge = RT_MAX_SGE;
	return c;
}

struct writer {
	struct rt_conn *c;
	void *buf;
	size_t len;
	ssize_t ret;
	unsigned sq_left;	/* the device's queue when the write returned */
	uint64_t returned_ms;
	volatile bool done;
};

static void *write_buf(void *arg)
{
	struct writer *w = arg;
	struct iovec iov = { w->buf, w->len };

	w->ret = rt_send(w->c, &iov, 1, 0, -1);
	w->sq_left = sq_len;
	w->returned_ms = mono_ms();
	w->done = true;
	return NULL;
}

static void new_writer(struct writer *w, struct rt_conn *c, size_t len)
{
	memset(w, 0, sizeof(*w));
	w->c = c;
	w->len = len;
	w->buf = aligned_alloc(4096, len);
	assert_non_null(w->buf);
}

/* Until the writer is asleep waiting for its send to complete. */
static void wait_for_sleeping_writer(struct rt_conn *c)
{
	struct timespec ms = { 0, 1000000 };
	bool asleep = false;

	while (!asleep) {
		nanosleep(&ms, NULL);
		pthread_mutex_lock(&c->lock);
		asleep = c->sleepers_any > 0;
		pthread_mutex_unlock(&c->lock);
	}
}

/*
 * Regression: a connection failing under a write that waits for its
 * zero-copy send (memory that did not opt in) let the write return at
 * once, its WRITE still on the send queue, so the program's next bytes
 * in that buffer could still go out.  The device here flushes 200 ms after
 * the error state: the write waits that long, without holding the lock.
 */
static void test_failed_write_waits_for_flush(void **state)
{
	struct timespec ms10 = { 0, 10 * 1000000 };
	struct rt_conn *c = sending_conn();
	struct writer w;
	uint64_t failed_ms;
	pthread_t t;

	(void)state;
	new_writer(&w, c, 65536);
	flush_delay_ms = 200;
	assert_int_equal(pthread_create(&t, NULL, write_buf, &w), 0);
	wait_for_sleeping_writer(c);
	assert_int_equal(sq_len, 2);	/* its WRITE and its SEND */
	pthread_mutex_lock(&c->lock);
	conn_fail(c, ETIMEDOUT, "the peer has been silent");
	pthread_mutex_unlock(&c->lock);
	failed_ms = mono_ms();
	nanosleep(&ms10, NULL);
	pthread_mutex_lock(&c->lock);	/* not held while it waits */
	assert_false(w.done);
	pthread_mutex_unlock(&c->lock);
	pthread_join(t, NULL);
	assert_int_equal(w.ret, -ETIMEDOUT);
	assert_true(qp_in_error);
	assert_int_equal(w.sq_left, 0);
	assert_true(w.returned_ms >= failed_ms + 150);
	free(w.buf);
}

/*
 * Regression (found in review): a write of two messages whose second the
 * device refused outright returned at once, the first one's WRITE still
 * queued.
 */
static void test_refused_second_message_waits_for_first(void **state)
{
	struct rt_conn *c = sending_conn();
	struct writer w;
	uint64_t t0;

	(void)state;
	new_writer(&w, c, 512 * 1024);	/* two messages: a quarter of the 1 MiB ring each */
	flush_delay_ms = 50;
	refuse_post = 2;
	refuse_at = 0;
	t0 = mono_ms();
	write_buf(&w);
	assert_int_equal(w.ret, -ECONNRESET);
	assert_int_equal(nposted_sends, 2);
	assert_int_equal(c->seq_posted, 1);
	assert_int_equal(w.sq_left, 0);
	assert_true(w.returned_ms >= t0 + 40);
	free(w.buf);
}

/* Regression: a send completed with an error counted as written. */
static void test_errored_send_is_no_success(void **state)
{
	struct rt_conn *c = sending_conn();
	struct writer w;
	pthread_t t;

	(void)state;
	new_writer(&w, c, 65536);
	assert_int_equal(pthread_create(&t, NULL, write_buf, &w), 0);
	wait_for_sleeping_writer(c);
	memset(queued, 0, sizeof(queued));
	queued[0].wr_id = rt_wr_id(RT_WR_DATA, 0);
	queued[0].status = IBV_WC_RETRY_EXC_ERR;
	nqueued = 1;
	progress(c);
	pthread_join(t, NULL);
	assert_int_equal(w.ret, -ETIMEDOUT);
	free(w.buf);
}

/*
 * Regression: a device that took a message's WRITEs but refused its SEND
 * left them on the queue, unsignalled, while the write returned.  A marker
 * behind them shows when they are flushed.
 */
static void test_refused_send_waits_for_its_writes(void **state)
{
	struct rt_conn *c = sending_conn();
	struct writer w;
	uint64_t t0;

	(void)state;
	new_writer(&w, c, 65536);
	flush_delay_ms = 50;
	refuse_at = 1;
	t0 = mono_ms();
	write_buf(&w);
	assert_int_equal(w.ret, -ECONNRESET);
	assert_int_equal(w.sq_left, 0);
	assert_int_equal(nposted_sends, 2);	/* the message, then the marker */
	assert_true(w.returned_ms >= t0 + 40);
	assert_true(w.returned_ms < t0 + 1000);
	assert_int_equal(c->data_wrs_outstanding, 0);
	free(w.buf);
}

/*
 * Regression: a message open for more bytes has the send-queue entries
 * tx_can_open counted for it; control messages posted meanwhile took them,
 * and its post then overflowed the queue by up to RT_MAX_WR_PER_MSG + 1.
 * Held back, they go once a completion makes room, a PING too, and
 * meanwhile every completion is asked for, our own sends' too.
 */
static void test_control_leaves_open_message_room(void **state)
{
	struct rt_conn *c = sending_conn();
	char byte = 'x';
	struct iovec iov = { &byte, 1 };

	(void)state;
	pthread_mutex_lock(&c->lock);
	c->data_wrs_outstanding = RT_SQ_DEPTH - (RT_MAX_WR_PER_MSG + 1);
	pthread_mutex_unlock(&c->lock);
	/* MSG_MORE: the write leaves its message open. */
	assert_int_equal(rt_send(c, &iov, 1, RT_SEND_MORE, 0), 1);
	pthread_mutex_lock(&c->lock);
	assert_true(c->tx.open);
	conn_send_ctrl(c, WIRE_OP_CREDIT);
	conn_send_ctrl(c, WIRE_OP_PING);
	assert_int_equal(nposted_sends, 0);
	assert_true(c->ctrl_credit_pending);
	assert_true(c->ctrl_ping_pending);
	c->cq_armed = false;
	conn_arm(c);
	assert_int_equal(last_solicited_only, 0);
	tx_flush(c);
	assert_int_equal(sq_len, 1);
	pthread_mutex_unlock(&c->lock);
	/* The message completes: conn_progress sends what waited. */
	memset(queued, 0, sizeof(queued));
	queued[0].wr_id = rt_wr_id(RT_WR_DATA, 0);
	queued[0].status = IBV_WC_SUCCESS;
	nqueued = 1;
	progress(c);
	assert_false(c->ctrl_credit_pending);
	assert_false(c->ctrl_ping_pending);
	assert_int_equal(nposted_sends, 3);
	assert_true(conn_sq_used(c) <= RT_SQ_DEPTH);
}

/* A CREDIT message from the peer returning msgs messages and ring bytes. */
static uint32_t put_credit(struct rt_conn *c, unsigned idx, uint32_t msgs, uint32_t ring)
{
	uint8_t *buf = c->rbufs + (size_t)idx * RT_MSG_SIZE;
	struct wire_hdr h = { 0 };

	h.version = WIRE_VERSION;
	h.opcode = WIRE_OP_CREDIT;
	h.credit_msgs = msgs;
	h.credit_ring = ring;
	wire_hdr_encode(&h, buf);
	return WIRE_HDR_LEN;
}

/*
 * The backlog: with the peer's ring full, a bulk write of memory that may
 * stay in flight is handed over and returns at once (before, a
 * non-blocking one got EAGAIN and a blocking one waited for the peer).  A
 * write ending in copied bytes may not pass it, nor may the FIN; once the
 * peer returns credit, its bytes go out in order, then the FIN.
 */
static void test_backlog_takes_bulk_beyond_window(void **state)
{
	struct rt_conn *c = sending_conn();
	size_t ring = 1u << 20, more = 64 * (8 + 4096);
	uint8_t *buf = aligned_alloc(4096, ring + 64 * 4096), hdrs[64 * 8];
	char marker[8] = { 0 };
	struct iovec small = { marker, sizeof(marker) };
	struct iovec iov = { buf, ring }, pairs[128];
	uint64_t last;
	unsigned i;

	(void)state;
	assert_non_null(buf);
	/* QEMU's shape: an 8-byte header (copied), then its page (pinned). */
	for (i = 0; i < 64; i++) {
		pairs[2 * i] = (struct iovec){ hdrs + 8 * i, 8 };
		pairs[2 * i + 1] = (struct iovec){ buf + ring + 4096 * i, 4096 };
	}
	rt_g.opts.defer = RT_DEFER_ALL;
	rt_g.opts.backlog = 4u << 20;
	rt_g.opts.pin_limit = 64u << 20;
	assert_int_equal(rt_send(c, &iov, 1, 0, 0), (ssize_t)ring);
	assert_int_equal(rt_send(c, pairs, 128, 0, 0), (ssize_t)more);
	pthread_mutex_lock(&c->lock);
	/* The first header still went out inline, in a message of its own. */
	assert_int_equal(c->backlog.bytes, more - 8);
	assert_int_equal(c->stats.bytes_backlogged, more - 8);
	assert_int_equal(c->stats.bytes_out, ring + 8);
	pthread_mutex_unlock(&c->lock);

	assert_int_equal(rt_send(c, &small, 1, 0, 0), -EAGAIN);
	pthread_mutex_lock(&c->lock);
	conn_send_ctrl(c, WIRE_OP_FIN);
	assert_true(c->ctrl_fin_pending);
	assert_false(c->fin_sent);
	pthread_mutex_unlock(&c->lock);

	queue_recv(0, put_credit(c, 0, 4, (uint32_t)ring), IBV_WC_RECV);
	pthread_mutex_lock(&c->lock);
	conn_progress(c);
	assert_int_equal(tx_backlog_pump(c, false), 0);
	assert_true(tx_backlog_empty(c));
	assert_int_equal(c->stats.bytes_out, ring + more);
	assert_true(c->fin_sent);
	last = sq[(sq_head + sq_len - 1) % (2 * RT_SQ_DEPTH)];
	assert_int_equal(last >> RT_WR_KIND_SHIFT, RT_WR_CTRL);
	pthread_mutex_unlock(&c->lock);
	rt_g.opts.defer = RT_DEFER_AUTO;
	rt_g.opts.backlog = 0;
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_proof_before_established),
		cmocka_unit_test(test_wrong_proof_before_established),
		cmocka_unit_test(test_data_before_proof),
		cmocka_unit_test(test_data_before_established_without_secret),
		cmocka_unit_test(test_write_with_imm_is_refused),
		cmocka_unit_test(test_peek_waitall_waits),
		cmocka_unit_test(test_peek_waitall_full_queue),
		cmocka_unit_test(test_trunc_discards_without_cap),
		cmocka_unit_test(test_closed_peer_is_no_hangup),
		cmocka_unit_test(test_failed_write_waits_for_flush),
		cmocka_unit_test(test_refused_second_message_waits_for_first),
		cmocka_unit_test(test_errored_send_is_no_success),
		cmocka_unit_test(test_refused_send_waits_for_its_writes),
		cmocka_unit_test(test_control_leaves_open_message_room),
		cmocka_unit_test(test_backlog_takes_bulk_beyond_window),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
