// SPDX-License-Identifier: MIT
/*
 * hostile_peer: a migrdma wire-protocol peer that breaks the rules.
 *
 *   hostile_peer list
 *   hostile_peer ADDR PORT SCENARIO [TIMEOUT_S]
 *
 * A plain librdmacm/libibverbs client, no library preload.  It connects to
 * a migrdma listener, performs a real version 1 handshake (rdma/wire.c
 * encodes the hello), registers a receive ring of its own, and then does
 * one forbidden thing, one scenario per connection.
 *
 * Message scenarios first prove the connection works: a DATA message whose
 * inline bytes are the line "HOSTILE <scenario>\n" (the victim program is
 * expected to echo every byte back) and, for the ring scenarios, a valid
 * 4 KiB RDMA WRITE into the victim's ring announced by a DATA message.  The
 * echo must come back byte-exact before the attack starts, so each attack
 * differs from a valid exchange in exactly the field under test.  The
 * verdict is then: the victim closed the connection (rdma_cm DISCONNECTED
 * or our QP in error) within TIMEOUT_S.
 *
 * Hello scenarios must be refused at connect time: REJECTED, with the
 * migrdma reject reason in the private data.
 *
 * RDMA WRITE scenarios target memory outside the victim's advertised ring
 * and must end in a remote access error on our side.  rdma_write_cross_conn
 * opens two connections and writes from the first into the second's ring,
 * which must fail the same way.
 *
 * conn_flood opens 16 valid connections to a listener whose program never
 * accepts (hostile_victim --idle-port) and wants some of them refused.  With
 * HOSTILE_VICTIM_PID set it reports the victim's VmPin before and after.
 *
 * `list` prints one line per scenario: NAME KIND EXPECT, where KIND is
 * hello, msg, write, cross or flood, and EXPECT (the rest of the line) is
 * the text the victim's log must hold, alternatives separated by '|' ("-"
 * when the victim may stay silent).
 *
 * Prints "hostile: SCENARIO: ok: ..." and exits 0, or "hostile: SCENARIO:
 * FAIL: ..." and exits 1; 2 for usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "util.h"
#include "wire.h"

#define RING_SIZE	WIRE_RING_MIN		/* our ring, written by the victim */
#define RBUF_SIZE	(64u * 1024)		/* what our hello's msg_size promises */
#define NRECV		32u
#define NSLOT		64u
#define SLOT_SIZE	4096u
#define BIG_SIZE	(2u * 1024 * 1024)	/* over-long messages, WRITE sources */
#define RX_MAX		(1u << 20)		/* echoed bytes we keep */
#define CM_REJ_CONSUMER_DEFINED 28

#define WR_RECV		1ull
#define WR_SEND		2ull
#define WR_WRITE	3ull
#define WR_BIG		4ull

static const char *scen_name = "?";

struct peer {
	struct rdma_event_channel *ch;
	struct rdma_cm_id *id;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	uint8_t *ring, *rbufs, *slots, *big;
	struct ibv_mr *ring_mr, *rbuf_mr, *slot_mr, *big_mr;
	bool slot_busy[NSLOT];
	unsigned slot_next;
	bool big_busy;

	struct wire_hello v;		/* the victim's hello */
	uint64_t tx_pos;		/* ring bytes placed in the victim's ring */
	uint64_t rx_pos;		/* ring bytes the victim placed in ours */
	unsigned rx_data_msgs;		/* DATA messages from the victim */
	uint8_t *rx;			/* stream bytes echoed back */
	size_t rx_len;
	size_t tx_len;			/* stream bytes we sent validly */
	uint8_t *tx;

	bool established;
	bool disconnected;
	bool qp_error;			/* a flushed or failed completion */
	enum ibv_wc_status send_err;	/* first failed send/write */
	uint64_t send_err_kind;
	bool victim_bad;		/* the victim sent something malformed */
	char victim_why[128];
};

/* Event fields kept after the ack. */
struct cm_ev {
	enum rdma_cm_event_type type;
	int status;
	uint8_t pdata[64];
	uint8_t pdata_len;
};

static _Noreturn void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static _Noreturn void fail(const char *fmt, ...)
{
	char head[128];
	va_list ap;

	snprintf(head, sizeof(head), "hostile: %s: FAIL: ", scen_name);
	va_start(ap, fmt);
	print_failure(head, fmt, ap);
	va_end(ap);
	exit(1);
}

static void ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void ok(const char *fmt, ...)
{
	va_list ap;

	printf("hostile: %s: ok: ", scen_name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static void info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void info(const char *fmt, ...)
{
	va_list ap;

	printf("hostile: %s: ", scen_name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static void *map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		fail("mmap %zu bytes: %s", len, strerror(errno));
	return p;
}

static struct ibv_mr *reg(struct peer *p, void *buf, size_t len, int access)
{
	struct ibv_mr *mr = ibv_reg_mr(p->pd, buf, len, access);

	if (!mr)
		fail("ibv_reg_mr %zu bytes: %s", len, strerror(errno));
	return mr;
}

/* ------------------------------------------------------------------ */
/* completions                                                         */
/* ------------------------------------------------------------------ */

/* One scatter-gather entry: every work request here has exactly one. */
static void one_sge(struct ibv_sge *sge, const void *buf, uint32_t len, const struct ibv_mr *mr)
{
	sge->addr = (uintptr_t)buf;
	sge->length = len;
	sge->lkey = mr->lkey;
}

static void post_recv(struct peer *p, unsigned i)
{
	struct ibv_recv_wr wr, *bad;
	struct ibv_sge sge;

	one_sge(&sge, p->rbufs + (size_t)i * RBUF_SIZE, RBUF_SIZE, p->rbuf_mr);
	memset(&wr, 0, sizeof(wr));
	wr.wr_id = WR_RECV << 32 | i;
	wr.sg_list = &sge;
	wr.num_sge = 1;
	if (ibv_post_recv(p->qp, &wr, &bad))
		p->qp_error = true;
}

static int post_send(struct peer *p, uint64_t kind, unsigned idx, struct ibv_mr *mr,
		     const void *buf, uint32_t len, enum ibv_wr_opcode op,
		     uint64_t raddr, uint32_t rkey)
{
	struct ibv_send_wr wr, *bad;
	struct ibv_sge sge;

	one_sge(&sge, buf, len, mr);
	memset(&wr, 0, sizeof(wr));
	wr.wr_id = kind << 32 | idx;
	wr.sg_list = &sge;
	wr.num_sge = 1;
	wr.opcode = op;
	wr.send_flags = IBV_SEND_SIGNALED;
	if (op == IBV_WR_RDMA_WRITE) {
		wr.wr.rdma.remote_addr = raddr;
		wr.wr.rdma.rkey = rkey;
	}
	errno = ibv_post_send(p->qp, &wr, &bad);
	return errno ? -1 : 0;
}

static void send_ctrl(struct peer *p, uint8_t op);

/* A message from the victim: it must be valid; keep DATA bytes, answer PING. */
static void victim_msg(struct peer *p, unsigned idx, uint32_t len)
{
	const uint8_t *buf = p->rbufs + (size_t)idx * RBUF_SIZE;
	struct wire_rx_limits lim;
	struct wire_data d;
	struct wire_hdr h;
	const char *why;
	uint32_t ring_cur = 0, inl_cur = 0;
	unsigned i;

	lim.ring_size = RING_SIZE;
	lim.ring_pos = p->rx_pos;
	lim.ring_free = RING_SIZE;	/* we never report credit: the victim cannot wrap */
	lim.max_credit_msgs = UINT32_MAX;
	lim.max_credit_ring = UINT32_MAX;
	if (len > RBUF_SIZE || wire_msg_decode(buf, len, &lim, &h, &d, &why)) {
		if (!p->victim_bad)
			snprintf(p->victim_why, sizeof(p->victim_why), "%s",
				 len > RBUF_SIZE ? "message too long" : why);
		p->victim_bad = true;
		post_recv(p, idx);
		return;
	}
	if (h.opcode == WIRE_OP_DATA) {
		p->rx_data_msgs++;
		for (i = 0; i < h.nseg; i++) {
			uint32_t s = wire_get32(d.segs + i * 4);
			uint32_t n = s & WIRE_SEG_LEN_MASK;
			const uint8_t *src;

			if (s & WIRE_SEG_RING) {
				src = p->ring + d.ring_off + ring_cur;
				ring_cur += n;
			} else {
				src = d.inline_bytes + inl_cur;
				inl_cur += n;
			}
			if (p->rx_len + n <= RX_MAX) {
				memcpy(p->rx + p->rx_len, src, n);
				p->rx_len += n;
			}
		}
		p->rx_pos += (uint64_t)h.ring_skip + h.ring_len;
	} else if (h.opcode == WIRE_OP_PING) {
		send_ctrl(p, WIRE_OP_PONG);
	}
	post_recv(p, idx);
}

static void poll_cq(struct peer *p)
{
	struct ibv_wc wc[32];
	int n, i;

	while ((n = ibv_poll_cq(p->cq, 32, wc)) > 0) {
		for (i = 0; i < n; i++) {
			uint64_t kind = wc[i].wr_id >> 32;
			unsigned idx = (unsigned)wc[i].wr_id;

			if (kind == WR_SEND && idx < NSLOT)
				p->slot_busy[idx] = false;
			if (kind == WR_BIG)
				p->big_busy = false;
			if (wc[i].status != IBV_WC_SUCCESS) {
				p->qp_error = true;
				if (kind != WR_RECV && wc[i].status != IBV_WC_WR_FLUSH_ERR &&
				    !p->send_err) {
					p->send_err = wc[i].status;
					p->send_err_kind = kind;
				}
				continue;
			}
			if (kind == WR_RECV && idx < NRECV)
				victim_msg(p, idx, wc[i].byte_len);
		}
	}
	if (n < 0)
		p->qp_error = true;
}

/* ------------------------------------------------------------------ */
/* rdma_cm events                                                      */
/* ------------------------------------------------------------------ */

/* Next event within ms, polling the CQ meanwhile; false on timeout. */
static bool next_event(struct peer *p, int ms, struct cm_ev *out)
{
	double end = now_s() + ms / 1000.0;
	struct rdma_cm_event *ev;

	for (;;) {
		struct pollfd pfd = { .fd = p->ch->fd, .events = POLLIN };

		if (p->cq)
			poll_cq(p);
		if (rdma_get_cm_event(p->ch, &ev) == 0)
			break;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			fail("rdma_get_cm_event: %s", strerror(errno));
		if (now_s() >= end)
			return false;
		poll(&pfd, 1, 1);
	}
	memset(out, 0, sizeof(*out));
	out->type = ev->event;
	out->status = ev->status;
	if (ev->param.conn.private_data && ev->param.conn.private_data_len) {
		out->pdata_len = ev->param.conn.private_data_len < sizeof(out->pdata) ?
				 ev->param.conn.private_data_len : sizeof(out->pdata);
		memcpy(out->pdata, ev->param.conn.private_data, out->pdata_len);
	}
	rdma_ack_cm_event(ev);
	if (out->type == RDMA_CM_EVENT_DISCONNECTED)
		p->disconnected = true;
	return true;
}

static void expect_event(struct peer *p, enum rdma_cm_event_type type, int ms)
{
	struct cm_ev ev;

	if (!next_event(p, ms, &ev))
		fail("no %s within %d ms", rdma_event_str(type), ms);
	if (ev.type != type)
		fail("got %s (status %d), want %s", rdma_event_str(ev.type), ev.status,
		     rdma_event_str(type));
}

/* ------------------------------------------------------------------ */
/* set-up                                                              */
/* ------------------------------------------------------------------ */

static void peer_resolve(struct peer *p, const char *addr, const char *port)
{
	struct addrinfo hints, *res;
	struct ibv_qp_init_attr qa;
	int fl, ret;
	unsigned i;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	ret = getaddrinfo(addr, port, &hints, &res);
	if (ret)
		fail("%s:%s: %s", addr, port, gai_strerror(ret));

	p->ch = rdma_create_event_channel();
	if (!p->ch)
		fail("rdma_create_event_channel: %s", strerror(errno));
	fl = fcntl(p->ch->fd, F_GETFL);
	fcntl(p->ch->fd, F_SETFL, fl | O_NONBLOCK);
	if (rdma_create_id(p->ch, &p->id, p, RDMA_PS_TCP))
		fail("rdma_create_id: %s", strerror(errno));
	if (rdma_resolve_addr(p->id, NULL, res->ai_addr, 2000))
		fail("rdma_resolve_addr: %s", strerror(errno));
	freeaddrinfo(res);
	expect_event(p, RDMA_CM_EVENT_ADDR_RESOLVED, 5000);
	if (rdma_resolve_route(p->id, 2000))
		fail("rdma_resolve_route: %s", strerror(errno));
	expect_event(p, RDMA_CM_EVENT_ROUTE_RESOLVED, 5000);

	p->pd = ibv_alloc_pd(p->id->verbs);
	if (!p->pd)
		fail("ibv_alloc_pd: %s", strerror(errno));
	p->cq = ibv_create_cq(p->id->verbs, 2 * (NSLOT + NRECV), NULL, NULL, 0);
	if (!p->cq)
		fail("ibv_create_cq: %s", strerror(errno));
	memset(&qa, 0, sizeof(qa));
	qa.send_cq = p->cq;
	qa.recv_cq = p->cq;
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = NSLOT + 8;
	qa.cap.max_recv_wr = NRECV;
	qa.cap.max_send_sge = 1;
	qa.cap.max_recv_sge = 1;
	if (rdma_create_qp(p->id, p->pd, &qa))
		fail("rdma_create_qp: %s", strerror(errno));
	p->qp = p->id->qp;

	p->ring = map(RING_SIZE);
	p->rbufs = map((size_t)NRECV * RBUF_SIZE);
	p->slots = map((size_t)NSLOT * SLOT_SIZE);
	p->big = map(BIG_SIZE);
	p->rx = map(RX_MAX);
	p->tx = map(RX_MAX);
	p->ring_mr = reg(p, p->ring, RING_SIZE, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	p->rbuf_mr = reg(p, p->rbufs, (size_t)NRECV * RBUF_SIZE, IBV_ACCESS_LOCAL_WRITE);
	p->slot_mr = reg(p, p->slots, (size_t)NSLOT * SLOT_SIZE, IBV_ACCESS_LOCAL_WRITE);
	p->big_mr = reg(p, p->big, BIG_SIZE, IBV_ACCESS_LOCAL_WRITE);
	for (i = 0; i < NRECV; i++)
		post_recv(p, i);
}

static void our_hello(const struct peer *p, struct wire_hello *h)
{
	memset(h, 0, sizeof(*h));
	h->magic = WIRE_MAGIC;
	h->version = WIRE_VERSION;
	h->ring_rkey = p->ring_mr->rkey;
	h->ring_addr = (uintptr_t)p->ring;
	h->ring_size = RING_SIZE;
	h->credits = 16;
	h->msg_size = RBUF_SIZE;
}

/* rdma_connect with pdata; returns the event that answered it. */
static void peer_connect(struct peer *p, const uint8_t *pdata, uint8_t len, struct cm_ev *ev)
{
	struct rdma_conn_param param;

	memset(&param, 0, sizeof(param));
	param.private_data = pdata;
	param.private_data_len = len;
	param.retry_count = 7;
	param.rnr_retry_count = 7;
	if (rdma_connect(p->id, &param))
		fail("rdma_connect: %s", strerror(errno));
	if (!next_event(p, 20000, ev))
		fail("no answer to the connection request within 20 s");
}

static void peer_establish(struct peer *p, const char *addr, const char *port)
{
	uint8_t pdata[WIRE_HELLO_LEN];
	struct wire_hello h;
	struct cm_ev ev;
	int ret;

	peer_resolve(p, addr, port);
	our_hello(p, &h);
	wire_hello_encode(&h, pdata);
	peer_connect(p, pdata, sizeof(pdata), &ev);
	if (ev.type != RDMA_CM_EVENT_ESTABLISHED)
		fail("a valid hello was answered with %s (status %d)",
		     rdma_event_str(ev.type), ev.status);
	ret = wire_hello_decode(ev.pdata, ev.pdata_len, &p->v);
	if (ret)
		fail("the victim's hello does not decode (reject reason %d)", -ret);
	p->established = true;
}

static void peer_destroy(struct peer *p)
{
	struct cm_ev ev;

	if (p->established && !p->disconnected) {
		rdma_disconnect(p->id);
		while (!p->disconnected && next_event(p, 3000, &ev))
			;
	}
	if (p->qp)
		rdma_destroy_qp(p->id);
	if (p->ring_mr)
		ibv_dereg_mr(p->ring_mr);
	if (p->rbuf_mr)
		ibv_dereg_mr(p->rbuf_mr);
	if (p->slot_mr)
		ibv_dereg_mr(p->slot_mr);
	if (p->big_mr)
		ibv_dereg_mr(p->big_mr);
	if (p->cq)
		ibv_destroy_cq(p->cq);
	if (p->pd)
		ibv_dealloc_pd(p->pd);
	if (p->id)
		rdma_destroy_id(p->id);
	if (p->ch)
		rdma_destroy_event_channel(p->ch);
}

/* ------------------------------------------------------------------ */
/* sending                                                             */
/* ------------------------------------------------------------------ */

/* Wait until cond(p) holds, polling; false on timeout. */
static bool pump_until(struct peer *p, int ms, bool (*cond)(struct peer *p))
{
	double end = now_s() + ms / 1000.0;
	struct cm_ev ev;

	while (!cond(p)) {
		if (now_s() >= end)
			return false;
		if (next_event(p, 1, &ev) && ev.type != RDMA_CM_EVENT_DISCONNECTED)
			info("unexpected rdma_cm event %s", rdma_event_str(ev.type));
	}
	return true;
}

static bool slot_free(struct peer *p)
{
	return !p->slot_busy[p->slot_next] || p->qp_error;
}

static uint8_t *slot_get(struct peer *p, unsigned *idx)
{
	if (!pump_until(p, 10000, slot_free))
		fail("send slot %u still busy after 10 s", p->slot_next);
	*idx = p->slot_next;
	p->slot_next = (p->slot_next + 1) % NSLOT;
	return p->slots + (size_t)*idx * SLOT_SIZE;
}

/* SEND len bytes that the caller built in a slot. */
static void send_slot(struct peer *p, unsigned idx, uint32_t len)
{
	if (post_send(p, WR_SEND, idx, p->slot_mr, p->slots + (size_t)idx * SLOT_SIZE, len,
		      IBV_WR_SEND, 0, 0))
		fail("ibv_post_send: %s", strerror(errno));
	p->slot_busy[idx] = true;
}

/* A message: header, inline bytes, then raw tail bytes (segments or junk). */
static void send_msg(struct peer *p, const struct wire_hdr *h, const void *inl,
		     uint32_t inl_len, const uint32_t *segs, unsigned nseg,
		     uint32_t extra)
{
	unsigned idx, i;
	uint8_t *b = slot_get(p, &idx);
	uint32_t len = WIRE_HDR_LEN;

	if (WIRE_HDR_LEN + inl_len + 4 * nseg + extra > SLOT_SIZE)
		fail("message of %u bytes does not fit a slot", inl_len + 4 * nseg + extra);
	wire_hdr_encode(h, b);
	memcpy(b + len, inl, inl_len);
	len += inl_len;
	for (i = 0; i < nseg; i++, len += 4)
		wire_put32(b + len, segs[i]);
	memset(b + len, 0xa5, extra);
	len += extra;
	send_slot(p, idx, len);
}

static void send_ctrl(struct peer *p, uint8_t op)
{
	struct wire_hdr h = { .version = WIRE_VERSION, .opcode = op };

	send_msg(p, &h, NULL, 0, NULL, 0, 0);
}

/* A valid DATA message of inline bytes only. */
static void send_inline(struct peer *p, const void *bytes, uint32_t len)
{
	struct wire_hdr h = { .version = WIRE_VERSION, .opcode = WIRE_OP_DATA, .nseg = 1,
			      .inline_len = len };
	uint32_t seg = wire_seg_encode(len, 0);

	send_msg(p, &h, bytes, len, &seg, 1, 0);
	memcpy(p->tx + p->tx_len, bytes, len);
	p->tx_len += len;
}

static uint8_t pattern(uint64_t pos)
{
	uint64_t x = (pos + 1) * 0x9e3779b97f4a7c15ull;

	return (uint8_t)(x >> 56 ^ x >> 29);
}

static bool big_free(struct peer *p)
{
	return !p->big_busy || p->qp_error;
}

/* RDMA WRITE len bytes from the big buffer to raddr/rkey. */
static void rdma_write(struct peer *p, uint64_t raddr, uint32_t rkey, uint32_t len)
{
	if (!pump_until(p, 10000, big_free))
		fail("the previous WRITE never completed");
	if (post_send(p, WR_BIG, 0, p->big_mr, p->big, len, IBV_WR_RDMA_WRITE, raddr, rkey))
		fail("ibv_post_send(RDMA WRITE): %s", strerror(errno));
	p->big_busy = true;
}

/* Valid: n ring bytes at the victim's current ring offset, then the DATA. */
static void send_ring(struct peer *p, uint32_t n)
{
	uint32_t off = (uint32_t)(p->tx_pos & (p->v.ring_size - 1));
	struct wire_hdr h = { .version = WIRE_VERSION, .opcode = WIRE_OP_DATA, .nseg = 1,
			      .ring_len = n };
	uint32_t seg = wire_seg_encode(n, 1);
	uint32_t i;

	if (off + n > p->v.ring_size || n > BIG_SIZE)
		fail("prelude ring write would wrap");
	for (i = 0; i < n; i++)
		p->big[i] = pattern(p->tx_len + i);
	rdma_write(p, p->v.ring_addr + off, p->v.ring_rkey, n);
	send_msg(p, &h, NULL, 0, &seg, 1, 0);
	memcpy(p->tx + p->tx_len, p->big, n);
	p->tx_len += n;
	p->tx_pos += n;
}

static bool echo_done(struct peer *p)
{
	return p->rx_len >= p->tx_len || p->disconnected || p->qp_error;
}

static void wait_echo(struct peer *p)
{
	if (!pump_until(p, 20000, echo_done))
		fail("the victim echoed %zu of %zu bytes within 20 s", p->rx_len, p->tx_len);
	if (p->victim_bad)
		fail("the victim sent a malformed message: %s", p->victim_why);
	if (p->rx_len < p->tx_len)
		fail("the connection ended before the echo (%zu of %zu bytes)%s", p->rx_len,
		     p->tx_len, p->send_err ? ", a send failed" : "");
	if (memcmp(p->rx, p->tx, p->tx_len))
		fail("the echo differs from what was sent");
}

static bool closed(struct peer *p)
{
	return p->disconnected || p->qp_error;
}

/* ------------------------------------------------------------------ */
/* scenarios                                                           */
/* ------------------------------------------------------------------ */

enum kind { K_HELLO, K_MSG, K_WRITE, K_CROSS, K_FLOOD };

struct scenario {
	const char *name;
	enum kind kind;
	const char *expect;		/* victim log text, NULL if none is required */
	bool ring_prelude;
	bool stall;			/* ask the victim program to stop reading a while */
	int reject;			/* K_HELLO: the wire_reject reason wanted */
	void (*hello)(uint8_t *pdata, uint8_t *len);
	void (*attack)(struct peer *p);
	const char *desc;
};

static void hdr_init(struct wire_hdr *h, uint8_t op)
{
	memset(h, 0, sizeof(*h));
	h->version = WIRE_VERSION;
	h->opcode = op;
}

static void a_bad_version(struct peer *p)
{
	struct wire_hdr h;

	hdr_init(&h, WIRE_OP_CREDIT);
	h.version = WIRE_VERSION + 1;
	send_msg(p, &h, NULL, 0, NULL, 0, 0);
}

static void a_unknown_opcode(struct peer *p)
{
	struct wire_hdr h;

	hdr_init(&h, WIRE_OP_MAX + 1);
	send_msg(p, &h, NULL, 0, NULL, 0, 0);
}

static void a_zero_opcode(struct peer *p)
{
	struct wire_hdr h;

	hdr_init(&h, 0);
	send_msg(p, &h, NULL, 0, NULL, 0, 0);
}

static void a_short_msg(struct peer *p)
{
	unsigned idx;
	uint8_t *b = slot_get(p, &idx);
	struct wire_hdr h;

	hdr_init(&h, WIRE_OP_CREDIT);
	wire_hdr_encode(&h, b);
	send_slot(p, idx, WIRE_HDR_LEN - 4);
}

static void a_segs_mismatch(struct peer *p)
{
	static const char bytes[16] = "0123456789abcdef";
	uint32_t segs[2] = { wire_seg_encode(8, 0), wire_seg_encode(4, 0) };
	struct wire_hdr h;

	/* Length matches header + 16 inline + 2 descriptors; 8 + 4 != 16. */
	hdr_init(&h, WIRE_OP_DATA);
	h.nseg = 2;
	h.inline_len = 16;
	send_msg(p, &h, bytes, 16, segs, 2, 0);
}

static void a_len_mismatch(struct peer *p)
{
	static const char bytes[16] = "0123456789abcdef";
	uint32_t seg = wire_seg_encode(16, 0);
	struct wire_hdr h;

	hdr_init(&h, WIRE_OP_DATA);
	h.nseg = 1;
	h.inline_len = 16;
	send_msg(p, &h, bytes, 16, &seg, 1, 4);
}

static void a_no_segments(struct peer *p)
{
	struct wire_hdr h;

	hdr_init(&h, WIRE_OP_DATA);
	send_msg(p, &h, NULL, 0, NULL, 0, 0);
}

static void a_empty_segment(struct peer *p)
{
	static const char bytes[8] = "01234567";
	uint32_t segs[2] = { wire_seg_encode(8, 0), wire_seg_encode(0, 0) };
	struct wire_hdr h;

	hdr_init(&h, WIRE_OP_DATA);
	h.nseg = 2;
	h.inline_len = 8;
	send_msg(p, &h, bytes, 8, segs, 2, 0);
}

static void a_ring_past_end(struct peer *p)
{
	uint32_t off = (uint32_t)(p->tx_pos & (p->v.ring_size - 1));
	uint32_t n = p->v.ring_size - off + 1;
	uint32_t seg = wire_seg_encode(n, 1);
	struct wire_hdr h;

	hdr_init(&h, WIRE_OP_DATA);
	h.nseg = 1;
	h.ring_len = n;
	send_msg(p, &h, NULL, 0, &seg, 1, 0);
	info("announced %u ring bytes at ring offset %u of %u", n, off, p->v.ring_size);
}

static void a_skip_short(struct peer *p)
{
	uint32_t seg = wire_seg_encode(4096, 1);
	struct wire_hdr h;

	hdr_init(&h, WIRE_OP_DATA);
	h.nseg = 1;
	h.ring_skip = 4096;	/* the ring's end is ring_size - 4096 away */
	h.ring_len = 4096;
	send_msg(p, &h, NULL, 0, &seg, 1, 0);
}

static void a_ring_overrun(struct peer *p)
{
	uint32_t off = (uint32_t)(p->tx_pos & (p->v.ring_size - 1));
	uint32_t n = off + 4096;
	uint32_t seg = wire_seg_encode(n, 1);
	struct wire_hdr h;

	/* A correct skip to the end, then more bytes than the whole ring holds. */
	hdr_init(&h, WIRE_OP_DATA);
	h.nseg = 1;
	h.ring_skip = p->v.ring_size - off;
	h.ring_len = n;
	send_msg(p, &h, NULL, 0, &seg, 1, 0);
}

static void a_credit_msgs(struct peer *p)
{
	struct wire_hdr h;

	hdr_init(&h, WIRE_OP_CREDIT);
	h.credit_msgs = p->rx_data_msgs + 1;
	send_msg(p, &h, NULL, 0, NULL, 0, 0);
	info("returned %u message credits for %u DATA messages received", h.credit_msgs,
	     p->rx_data_msgs);
}

static void a_credit_ring(struct peer *p)
{
	struct wire_hdr h;

	hdr_init(&h, WIRE_OP_CREDIT);
	h.credit_ring = (uint32_t)p->rx_pos + 1;
	send_msg(p, &h, NULL, 0, NULL, 0, 0);
	info("returned %u ring bytes for %llu received", h.credit_ring,
	     (unsigned long long)p->rx_pos);
}

static void a_over_credits(struct peer *p)
{
	unsigned i, n = p->v.credits + 4;
	char line[16];

	/* The victim program is not reading: every message stays queued. */
	for (i = 0; i < n; i++) {
		snprintf(line, sizeof(line), "msg %u\n", i);
		send_inline(p, line, (uint32_t)strlen(line));
	}
	info("sent %u DATA messages against %u credits", n, p->v.credits);
}

static void a_ctrl_data(struct peer *p)
{
	static const char bytes[8] = "ctrldata";
	struct wire_hdr h;

	hdr_init(&h, WIRE_OP_CREDIT);
	h.inline_len = 8;
	send_msg(p, &h, bytes, 8, NULL, 0, 0);
}

static void a_ping_ring(struct peer *p)
{
	struct wire_hdr h;

	hdr_init(&h, WIRE_OP_PING);
	h.ring_len = 4096;
	send_msg(p, &h, NULL, 0, NULL, 0, 0);
}

static void a_auth(struct peer *p)
{
	uint8_t proof[WIRE_AUTH_LEN];
	struct wire_hdr h;

	memset(proof, 0x5a, sizeof(proof));
	hdr_init(&h, WIRE_OP_AUTH);
	h.inline_len = WIRE_AUTH_LEN;
	send_msg(p, &h, proof, WIRE_AUTH_LEN, NULL, 0, 0);
}

static void a_auth_ok(struct peer *p)
{
	send_ctrl(p, WIRE_OP_AUTH_OK);
}

static void a_data_after_fin(struct peer *p)
{
	uint32_t seg = wire_seg_encode(8, 0);
	struct wire_hdr h;

	send_ctrl(p, WIRE_OP_FIN);
	hdr_init(&h, WIRE_OP_DATA);
	h.nseg = 1;
	h.inline_len = 8;
	send_msg(p, &h, "afterfin", 8, &seg, 1, 0);
}

static void a_too_long(struct peer *p)
{
	uint32_t n = p->v.msg_size + 1;
	struct wire_hdr h;

	if (n > BIG_SIZE)
		fail("the victim's msg_size %u is larger than our buffer", p->v.msg_size);
	/* A DATA header that would be consistent, were the message allowed. */
	hdr_init(&h, WIRE_OP_DATA);
	h.nseg = 1;
	h.inline_len = n - WIRE_HDR_LEN - 4;
	memset(p->big, 'L', n);
	wire_hdr_encode(&h, p->big);
	wire_put32(p->big + n - 4, wire_seg_encode(h.inline_len, 0));
	if (post_send(p, WR_BIG, 0, p->big_mr, p->big, n, IBV_WR_SEND, 0, 0))
		fail("ibv_post_send: %s", strerror(errno));
	p->big_busy = true;
	info("sent a %u-byte message; the victim's hello allows %u", n, p->v.msg_size);
}

static void a_write_past(struct peer *p)
{
	memset(p->big, 'W', 4096);
	rdma_write(p, p->v.ring_addr + p->v.ring_size, p->v.ring_rkey, 4096);
}

static void a_write_straddle(struct peer *p)
{
	memset(p->big, 'W', 8192);
	rdma_write(p, p->v.ring_addr + p->v.ring_size - 4096, p->v.ring_rkey, 8192);
}

static void a_write_before(struct peer *p)
{
	memset(p->big, 'W', 4096);
	rdma_write(p, p->v.ring_addr - 4096, p->v.ring_rkey, 4096);
}

static void a_write_bad_rkey(struct peer *p)
{
	memset(p->big, 'W', 4096);
	/* Same MR index, another key byte. */
	rdma_write(p, p->v.ring_addr, p->v.ring_rkey ^ 0x5a, 4096);
}

static void h_bad_magic(uint8_t *pdata, uint8_t *len)
{
	(void)len;
	wire_put32(pdata, WIRE_MAGIC ^ 0x01000000u);
}

static void h_bad_version(uint8_t *pdata, uint8_t *len)
{
	(void)len;
	pdata[4] = WIRE_VERSION + 1;
}

static void h_ring_not_pow2(uint8_t *pdata, uint8_t *len)
{
	(void)len;
	wire_put32(pdata + 20, WIRE_RING_MIN * 3 / 2);
}

static void h_ring_too_small(uint8_t *pdata, uint8_t *len)
{
	(void)len;
	wire_put32(pdata + 20, WIRE_RING_MIN / 2);
}

static void h_zero_credits(uint8_t *pdata, uint8_t *len)
{
	(void)len;
	pdata[24] = 0;
	pdata[25] = 0;
}

static void h_msg_size_small(uint8_t *pdata, uint8_t *len)
{
	(void)len;
	wire_put32(pdata + 28, WIRE_MSG_MIN - 1);
}

static void h_unknown_flags(uint8_t *pdata, uint8_t *len)
{
	(void)len;
	pdata[5] = 0x80;
}

static void h_ring_wraps(uint8_t *pdata, uint8_t *len)
{
	(void)len;
	/* ring_addr + ring_size overflows 64 bits. */
	memset(pdata + 12, 0xff, 8);
}

static void h_auth_flag(uint8_t *pdata, uint8_t *len)
{
	/* Claims a MIGRDMA_SECRET (and carries a nonce) the listener has not set. */
	pdata[5] = WIRE_HELLO_AUTH;
	memset(pdata + WIRE_HELLO_LEN, 0x33, WIRE_NONCE_LEN);
	*len = WIRE_REQ_AUTH_LEN;
}

static void h_no_pdata(uint8_t *pdata, uint8_t *len)
{
	(void)pdata;
	*len = 0;
}

#define MALFORMED "malformed message from the peer, closing the connection: "

static const struct scenario scenarios[] = {
	{ "hello_bad_magic", K_HELLO, "malformed connection request",
	  .reject = WIRE_REJECT_MALFORMED, .hello = h_bad_magic,
	  .desc = "hello with a wrong magic" },
	{ "hello_bad_version", K_HELLO, "incompatible migrdma protocol version",
	  .reject = WIRE_REJECT_VERSION, .hello = h_bad_version, .desc = "hello of version 2" },
	{ "hello_ring_not_pow2", K_HELLO, "malformed connection request",
	  .reject = WIRE_REJECT_MALFORMED, .hello = h_ring_not_pow2,
	  .desc = "ring size 96 KiB, not a power of two" },
	{ "hello_ring_too_small", K_HELLO, "malformed connection request",
	  .reject = WIRE_REJECT_MALFORMED, .hello = h_ring_too_small, .desc = "ring size 32 KiB" },
	{ "hello_ring_wraps", K_HELLO, "malformed connection request",
	  .reject = WIRE_REJECT_MALFORMED, .hello = h_ring_wraps,
	  .desc = "ring address + size overflows" },
	{ "hello_zero_credits", K_HELLO, "malformed connection request",
	  .reject = WIRE_REJECT_MALFORMED, .hello = h_zero_credits, .desc = "credits 0" },
	{ "hello_msg_size_small", K_HELLO, "malformed connection request",
	  .reject = WIRE_REJECT_MALFORMED, .hello = h_msg_size_small, .desc = "msg_size 255" },
	{ "hello_unknown_flags", K_HELLO, "malformed connection request",
	  .reject = WIRE_REJECT_MALFORMED, .hello = h_unknown_flags, .desc = "flag 0x80" },
	{ "hello_no_pdata", K_HELLO, "malformed connection request",
	  .reject = WIRE_REJECT_MALFORMED, .hello = h_no_pdata, .desc = "no private data" },
	{ "hello_auth_flag", K_HELLO, "which this side has not set", .reject = WIRE_REJECT_POLICY,
	  .hello = h_auth_flag,
	  .desc = "asks for MIGRDMA_SECRET authentication the listener lacks" },

	{ "msg_bad_version", K_MSG, MALFORMED "unknown message version",
	  .attack = a_bad_version, .desc = "message header of version 2" },
	{ "msg_unknown_opcode", K_MSG, MALFORMED "unknown opcode",
	  .attack = a_unknown_opcode, .desc = "opcode 9" },
	{ "msg_zero_opcode", K_MSG, MALFORMED "unknown opcode",
	  .attack = a_zero_opcode, .desc = "opcode 0" },
	{ "msg_short", K_MSG, MALFORMED "message shorter than its header",
	  .attack = a_short_msg, .desc = "a 20-byte message" },
	{ "data_segs_mismatch", K_MSG, MALFORMED "segment lengths do not add up",
	  .attack = a_segs_mismatch, .desc = "inline segments 8 + 4 for inline_len 16" },
	{ "data_len_mismatch", K_MSG, MALFORMED "DATA length does not match its segments",
	  .attack = a_len_mismatch, .desc = "4 stray bytes after the segment list" },
	{ "data_no_segments", K_MSG, MALFORMED "DATA without segments",
	  .attack = a_no_segments, .desc = "DATA with nseg 0" },
	{ "data_empty_segment", K_MSG, MALFORMED "empty segment",
	  .attack = a_empty_segment, .desc = "a zero-length segment" },
	{ "data_ring_past_end", K_MSG, MALFORMED "ring data runs past the ring's end",
	  .ring_prelude = true, .attack = a_ring_past_end,
	  .desc = "ring_len one byte longer than the rest of the ring" },
	{ "data_skip_short", K_MSG, MALFORMED "ring skip does not reach the ring's end",
	  .ring_prelude = true, .attack = a_skip_short, .desc = "ring_skip 4096 at offset 4096" },
	{ "data_ring_overrun", K_MSG, MALFORMED "ring data overruns unread bytes",
	  .ring_prelude = true, .attack = a_ring_overrun,
	  .desc = "skip to the end plus more than a ring's worth" },
	{ "credit_msgs_overreturn", K_MSG, MALFORMED "more message credits than were lent",
	  .attack = a_credit_msgs, .desc = "one message credit more than the victim lent" },
	{ "credit_ring_overreturn", K_MSG, MALFORMED "more ring credit than was lent",
	  .ring_prelude = true, .attack = a_credit_ring,
	  .desc = "one ring byte more than the victim placed" },
	{ "data_over_credits", K_MSG, MALFORMED "more DATA messages than credits",
	  .stall = true, .attack = a_over_credits,
	  .desc = "credits + 4 DATA messages while the program does not read" },
	/* rxe completes the receive with "local QP operation error". */
	{ "msg_too_long", K_MSG, "local length error|local QP operation error",
	  .attack = a_too_long,
	  .desc = "a SEND one byte longer than the victim's msg_size" },
	{ "ctrl_with_data", K_MSG, MALFORMED "control message carries data",
	  .attack = a_ctrl_data, .desc = "CREDIT with 8 inline bytes" },
	{ "ping_with_ring", K_MSG, MALFORMED "control message carries data",
	  .attack = a_ping_ring, .desc = "PING with ring_len 4096" },
	{ "auth_no_secret", K_MSG, MALFORMED "unexpected authentication message",
	  .attack = a_auth, .desc = "AUTH proof on a listener without MIGRDMA_SECRET" },
	{ "auth_ok_unsolicited", K_MSG, MALFORMED "unexpected authentication message",
	  .attack = a_auth_ok, .desc = "AUTH_OK sent to a server" },
	{ "data_after_fin", K_MSG, MALFORMED "data after FIN",
	  .attack = a_data_after_fin, .desc = "FIN, then DATA" },

	{ "rdma_write_past_ring", K_WRITE, NULL, .attack = a_write_past,
	  .desc = "RDMA WRITE of 4 KiB just past the ring's end" },
	{ "rdma_write_straddle", K_WRITE, NULL, .attack = a_write_straddle,
	  .desc = "RDMA WRITE of 8 KiB across the ring's end" },
	{ "rdma_write_before_ring", K_WRITE, NULL, .attack = a_write_before,
	  .desc = "RDMA WRITE of 4 KiB just before the ring" },
	{ "rdma_write_bad_rkey", K_WRITE, NULL, .attack = a_write_bad_rkey,
	  .desc = "RDMA WRITE into the ring with a wrong rkey" },
	{ "rdma_write_cross_conn", K_CROSS, NULL,
	  .desc = "two connections; RDMA WRITE from the first into the second's ring" },
	{ "conn_flood", K_FLOOD, NULL,
	  .desc = "16 valid connections to a listener whose program never accepts" },
};

#define NSCEN (sizeof(scenarios) / sizeof(scenarios[0]))

static const char *kind_name(enum kind k)
{
	switch (k) {
	case K_HELLO:
		return "hello";
	case K_MSG:
		return "msg";
	case K_WRITE:
		return "write";
	case K_CROSS:
		return "cross";
	case K_FLOOD:
		return "flood";
	}
	return "?";
}

static int run_hello(const struct scenario *s, const char *addr, const char *port)
{
	uint8_t pdata[WIRE_REQ_AUTH_LEN];
	struct peer p = { 0 };
	struct wire_hello h;
	uint8_t len = WIRE_HELLO_LEN;
	struct cm_ev ev;
	double t0;

	peer_resolve(&p, addr, port);
	our_hello(&p, &h);
	memset(pdata, 0, sizeof(pdata));
	wire_hello_encode(&h, pdata);
	s->hello(pdata, &len);
	t0 = now_s();
	peer_connect(&p, len ? pdata : NULL, len, &ev);
	if (ev.type == RDMA_CM_EVENT_ESTABLISHED) {
		p.established = true;
		peer_destroy(&p);
		fail("the victim accepted the connection");
	}
	if (ev.type != RDMA_CM_EVENT_REJECTED)
		fail("answered with %s (status %d), want REJECTED", rdma_event_str(ev.type),
		     ev.status);
	if (ev.status != CM_REJ_CONSUMER_DEFINED || ev.pdata_len < 5 ||
	    wire_get32(ev.pdata) != WIRE_MAGIC)
		fail("REJECTED without a migrdma reason (status %d, %u bytes)", ev.status,
		     ev.pdata_len);
	if (ev.pdata[4] != s->reject)
		fail("rejected with reason %u, want %d", ev.pdata[4], s->reject);
	ok("REJECTED with reason %u after %.0f ms", ev.pdata[4], (now_s() - t0) * 1000);
	peer_destroy(&p);
	return 0;
}

static const char *wc_str(enum ibv_wc_status st)
{
	return ibv_wc_status_str(st);
}

static int run_attack(const struct scenario *s, const char *addr, const char *port,
		      int timeout_s)
{
	struct peer p = { 0 };
	char line[96];
	double t0, dt;

	peer_establish(&p, addr, port);
	info("connected: victim ring %u bytes, %u credits, msg_size %u", p.v.ring_size,
	     p.v.credits, p.v.msg_size);

	/* Prove the connection works before breaking the rules. */
	snprintf(line, sizeof(line), "HOSTILE %s%s\n", s->name, s->stall ? " stall" : "");
	send_inline(&p, line, (uint32_t)strlen(line));
	if (s->ring_prelude)
		send_ring(&p, 4096);
	wait_echo(&p);
	info("valid prelude echoed (%zu bytes, %llu in the victim's ring)", p.tx_len,
	     (unsigned long long)p.tx_pos);
	if (s->stall)
		usleep(300 * 1000);	/* the victim program is now asleep */

	t0 = now_s();
	s->attack(&p);
	if (s->kind == K_WRITE) {
		if (!pump_until(&p, timeout_s * 1000, closed))
			fail("the WRITE neither failed nor ended the connection in %d s",
			     timeout_s);
		dt = now_s() - t0;
		if (p.send_err != IBV_WC_REM_ACCESS_ERR)
			fail("the WRITE ended with '%s', want remote access error",
			     p.send_err ? wc_str(p.send_err) : "success");
		ok("remote access error after %.0f ms", dt * 1000);
		peer_destroy(&p);
		return 0;
	}
	if (!pump_until(&p, timeout_s * 1000, closed))
		fail("the victim kept the connection open for %d s", timeout_s);
	dt = now_s() - t0;
	if (p.victim_bad)
		fail("the victim sent a malformed message: %s", p.victim_why);
	ok("the victim closed the connection after %.0f ms (%s%s%s)", dt * 1000,
	   p.disconnected ? "DISCONNECTED" : "queue pair error",
	   p.send_err ? ", our send: " : "", p.send_err ? wc_str(p.send_err) : "");
	peer_destroy(&p);
	return 0;
}

/*
 * Connection a writes into connection b's ring, at the offset b's next
 * ring bytes would go; b then announces those bytes without writing them.
 * A victim that keeps connections apart refuses a's WRITE (remote access
 * error); otherwise the victim hands a's bytes to b's reader.
 */
static int run_cross(const char *addr, const char *port, int timeout_s)
{
	struct peer a = { 0 }, b = { 0 };
	uint32_t off, seg = wire_seg_encode(4096, 1), i;
	struct wire_hdr h;
	char line[96];

	peer_establish(&a, addr, port);
	peer_establish(&b, addr, port);
	snprintf(line, sizeof(line), "HOSTILE %s a\n", scen_name);
	send_inline(&a, line, (uint32_t)strlen(line));
	wait_echo(&a);
	snprintf(line, sizeof(line), "HOSTILE %s b\n", scen_name);
	send_inline(&b, line, (uint32_t)strlen(line));
	wait_echo(&b);
	info("ring of connection a: rkey %#x addr %#llx; of b: rkey %#x addr %#llx",
	     a.v.ring_rkey, (unsigned long long)a.v.ring_addr, b.v.ring_rkey,
	     (unsigned long long)b.v.ring_addr);

	off = (uint32_t)(b.tx_pos & (b.v.ring_size - 1));
	for (i = 0; i < 4096; i++)
		a.big[i] = pattern(b.tx_len + i);
	rdma_write(&a, b.v.ring_addr + off, b.v.ring_rkey, 4096);
	if (!pump_until(&a, timeout_s * 1000, big_free))
		fail("the cross-connection WRITE did not complete in %d s", timeout_s);
	if (a.send_err == IBV_WC_REM_ACCESS_ERR) {
		ok("the WRITE from connection a into b's ring failed with a remote access error");
		peer_destroy(&a);
		peer_destroy(&b);
		return 0;
	}
	if (a.send_err)
		fail("the WRITE ended with '%s', want remote access error", wc_str(a.send_err));

	/* It landed: show that the victim delivers it as b's stream. */
	hdr_init(&h, WIRE_OP_DATA);
	h.nseg = 1;
	h.ring_len = 4096;
	send_msg(&b, &h, NULL, 0, &seg, 1, 0);
	memcpy(b.tx + b.tx_len, a.big, 4096);
	b.tx_len += 4096;
	b.tx_pos += 4096;
	wait_echo(&b);
	fail("connection a wrote 4096 bytes into connection b's ring (rkey %#x) and the "
	     "victim delivered them to b's reader: rings of different connections share "
	     "one protection domain", b.v.ring_rkey);
}

static long vm_pinned_kib(void)
{
	const char *pid = getenv("HOSTILE_VICTIM_PID");
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	if (!pid)
		return -1;
	snprintf(path, sizeof(path), "/proc/%s/status", pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmPin: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

#define FLOOD_N 16
/* Less than one connection's ring: other traffic may pin a little. */
#define FLOOD_PIN_SLACK_KIB 4096

/*
 * Valid connections that the victim program never accepts.  A listener
 * should bound what such connections cost (listen backlog); each one that
 * is ESTABLISHED holds a ring, buffers and a queue pair in the victim.
 */
static int run_flood(const char *addr, const char *port)
{
	struct peer *p = calloc(FLOOD_N, sizeof(*p));
	uint8_t pdata[WIRE_HELLO_LEN];
	unsigned est = 0, rej = 0, other = 0, i;
	long pin0 = vm_pinned_kib(), pin1, pin2;
	struct wire_hello h;
	char pins[160] = "";
	struct cm_ev ev;

	if (!p)
		fail("out of memory");
	for (i = 0; i < FLOOD_N; i++) {
		peer_resolve(&p[i], addr, port);
		our_hello(&p[i], &h);
		wire_hello_encode(&h, pdata);
		peer_connect(&p[i], pdata, sizeof(pdata), &ev);
		if (ev.type == RDMA_CM_EVENT_ESTABLISHED) {
			p[i].established = true;
			est++;
		} else if (ev.type == RDMA_CM_EVENT_REJECTED) {
			rej++;
		} else {
			other++;
		}
	}
	usleep(500 * 1000);
	pin1 = vm_pinned_kib();
	for (i = 0; i < FLOOD_N; i++)
		peer_destroy(&p[i]);
	free(p);
	/* The victim's timers run every 100 ms; give them ample time. */
	sleep(2);
	pin2 = vm_pinned_kib();
	if (pin0 >= 0 && pin1 >= 0 && pin2 >= 0)
		snprintf(pins, sizeof(pins),
			 "; victim VmPin %ld KiB before, %ld KiB with the connections open, "
			 "%ld KiB 2 s after they closed", pin0, pin1, pin2);
	if (!rej)
		fail("all %u connections were established (%u other answers) although the "
		     "program accepts none: the listen backlog is not enforced%s", est, other,
		     pins);
	/*
	 * Each established one pinned about 10 MiB (ring and buffers).  Once
	 * its peer is gone nothing can ever read from it, so the victim must
	 * have let go of it without waiting for an accept() that never comes.
	 */
	if (pin0 >= 0 && pin2 >= 0 && pin2 - pin0 > FLOOD_PIN_SLACK_KIB)
		fail("%u established, %u refused, but the dead ones still pin memory%s", est,
		     rej, pins);
	ok("%u established, %u refused, %u other answers%s", est, rej, other, pins);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: hostile_peer list\n"
			"       hostile_peer ADDR PORT SCENARIO [TIMEOUT_S]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const struct scenario *s = NULL;
	int timeout_s = 20;
	size_t i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && !strcmp(argv[1], "list")) {
		for (i = 0; i < NSCEN; i++)
			printf("%s %s %s\n", scenarios[i].name, kind_name(scenarios[i].kind),
			       scenarios[i].expect ? scenarios[i].expect : "-");
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "describe")) {
		for (i = 0; i < NSCEN; i++)
			if (!strcmp(scenarios[i].name, argv[2])) {
				printf("%s\n", scenarios[i].desc);
				return 0;
			}
		return 2;
	}
	if (argc != 4 && argc != 5)
		usage();
	if (argc == 5)
		timeout_s = atoi(argv[4]);
	if (timeout_s <= 0)
		usage();
	for (i = 0; i < NSCEN; i++)
		if (!strcmp(scenarios[i].name, argv[3]))
			s = &scenarios[i];
	if (!s) {
		fprintf(stderr, "hostile_peer: unknown scenario '%s' (try: hostile_peer list)\n",
			argv[3]);
		return 2;
	}
	scen_name = s->name;
	info("%s", s->desc);
	if (s->kind == K_HELLO)
		return run_hello(s, argv[1], argv[2]);
	if (s->kind == K_CROSS)
		return run_cross(argv[1], argv[2], timeout_s);
	if (s->kind == K_FLOOD)
		return run_flood(argv[1], argv[2]);
	return run_attack(s, argv[1], argv[2], timeout_s);
}
