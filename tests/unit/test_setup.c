// SPDX-License-Identifier: MIT
/*
 * A connection's set-up against a fake device, with a program thread
 * calling in meanwhile.
 *
 * Regression: the service thread creates a connecting socket's completion
 * channel, CQ and QP (conn_setup_resources) without the connection's lock,
 * because set-up takes the global lock and that one comes first.  A program
 * thread that read or wrote the socket meanwhile (nonblocking, as QEMU's
 * are) polled and armed the CQ the set-up had just published, racing with
 * the set-up's own writes of the same fields.  Now nobody else touches the
 * queues until the set-up is done.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_util.h"

#include "rdma/internal.h"

/* verbs.h makes it a macro; the library ends up calling the function, defined below. */
#undef ibv_reg_mr

static struct ibv_context fake_ctx;
static struct ibv_pd fake_pd;
static struct ibv_cq fake_cq;
static struct ibv_qp fake_qp;
static struct ibv_mr fake_mr;
static struct ibv_comp_channel fake_chan;

/* The set-up waits inside rdma_create_qp, after the CQ exists, until released. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool in_create_qp, released;
static pthread_t setup_thread;
static int foreign_cq_calls;	/* poll or arm from a thread other than the set-up's */

/* With gate_lock held: wait until *flag is set, at most 10 s; returns *flag. */
static bool gate_wait_for(const bool *flag)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	while (!*flag)
		if (pthread_cond_timedwait(&gate_cond, &gate_lock, &until) == ETIMEDOUT)
			break;
	return *flag;
}

static void note_cq_call(void)
{
	pthread_mutex_lock(&gate_lock);
	if (in_create_qp && !pthread_equal(pthread_self(), setup_thread))
		foreign_cq_calls++;
	pthread_mutex_unlock(&gate_lock);
}

static int fake_poll(struct ibv_cq *cq, int n, struct ibv_wc *wc)
{
	(void)cq;
	(void)n;
	(void)wc;
	note_cq_call();
	return 0;
}

static int fake_req_notify(struct ibv_cq *cq, int solicited_only)
{
	(void)cq;
	(void)solicited_only;
	note_cq_call();
	return 0;
}

/* Linked before libibverbs and librdmacm: the library's calls come here. */
int ibv_query_device(struct ibv_context *context, struct ibv_device_attr *attr)
{
	(void)context;
	memset(attr, 0, sizeof(*attr));
	attr->max_sge = 32;
	attr->max_qp_wr = 4096;
	return 0;
}

const char *ibv_get_device_name(struct ibv_device *device)
{
	(void)device;
	return "fake0";
}

struct ibv_pd *ibv_alloc_pd(struct ibv_context *context)
{
	fake_pd.context = context;
	return &fake_pd;
}

struct ibv_comp_channel *ibv_create_comp_channel(struct ibv_context *context)
{
	fake_chan.context = context;
	fake_chan.fd = eventfd(0, EFD_CLOEXEC);
	return fake_chan.fd < 0 ? NULL : &fake_chan;
}

struct ibv_cq *ibv_create_cq(struct ibv_context *context, int cqe, void *cq_context,
			     struct ibv_comp_channel *channel, int comp_vector)
{
	(void)cqe;
	(void)comp_vector;
	fake_cq.context = context;
	fake_cq.cq_context = cq_context;
	fake_cq.channel = channel;
	return &fake_cq;
}

struct ibv_mr *ibv_reg_mr(struct ibv_pd *pd, void *addr, size_t length, int access)
{
	(void)access;
	fake_mr.pd = pd;
	fake_mr.addr = addr;
	fake_mr.length = length;
	return &fake_mr;
}

struct ibv_mr *ibv_reg_mr_iova2(struct ibv_pd *pd, void *addr, size_t length, uint64_t iova,
				unsigned int access)
{
	(void)iova;
	return ibv_reg_mr(pd, addr, length, (int)access);
}

int rdma_create_qp(struct rdma_cm_id *id, struct ibv_pd *pd, struct ibv_qp_init_attr *attr)
{
	(void)pd;
	(void)attr;
	pthread_mutex_lock(&gate_lock);
	in_create_qp = true;
	pthread_cond_broadcast(&gate_cond);
	gate_wait_for(&released);
	in_create_qp = false;
	pthread_mutex_unlock(&gate_lock);
	fake_qp.context = id->verbs;
	fake_qp.state = IBV_QPS_INIT;
	id->qp = &fake_qp;
	return 0;
}

int rdma_connect(struct rdma_cm_id *id, struct rdma_conn_param *param)
{
	(void)id;
	(void)param;
	return 0;
}

static void *run_route_resolved(void *arg)
{
	cm_route_resolved(arg);
	return NULL;
}

/* Wait (bounded) until the set-up thread has reached rdma_create_qp. */
static bool wait_in_create_qp(void)
{
	bool in;

	pthread_mutex_lock(&gate_lock);
	in = gate_wait_for(&in_create_qp);
	pthread_mutex_unlock(&gate_lock);
	return in;
}

static void release_create_qp(void)
{
	pthread_mutex_lock(&gate_lock);
	released = true;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
}

static void test_program_calls_during_setup(void **state)
{
	struct rdma_cm_id id;
	struct rt_conn *c;
	struct iovec iov;
	char byte = 0;
	ssize_t r;

	(void)state;
	fake_ctx.ops.poll_cq = fake_poll;
	fake_ctx.ops.req_notify_cq = fake_req_notify;
	fake_ctx.ops.post_recv = fake_post_recv;
	rt_g.opts.ring_size = 1u << 20;
	rt_g.opts.chunk = 1u << 20;
	rt_g.opts.pin_limit = 1u << 30;
	rt_g.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	rt_g.wake_fd = -1;
	assert_true(rt_g.epoll_fd >= 0);

	memset(&id, 0, sizeof(id));
	id.verbs = &fake_ctx;
	c = conn_alloc(false);
	assert_non_null(c);
	c->cm_id = &id;
	c->state = CS_RESOLVING_ROUTE;
	c->deadline_ms = rt_now_ms() + 60000;

	assert_int_equal(pthread_create(&setup_thread, NULL, run_route_resolved, c), 0);
	assert_true(wait_in_create_qp());

	/* A nonblocking read and write of the socket that is still connecting. */
	iov.iov_base = &byte;
	iov.iov_len = 1;
	r = rt_recv(c, &iov, 1, 0, 0);
	assert_int_equal(r, -EAGAIN);
	r = rt_send(c, &iov, 1, 0, 0);
	assert_int_equal(r, -EAGAIN);
	assert_int_equal(foreign_cq_calls, 0);

	release_create_qp();
	assert_int_equal(pthread_join(setup_thread, NULL), 0);
	pthread_mutex_lock(&c->lock);
	assert_int_equal(c->state, CS_CONNECTING);
	assert_false(c->setting_up);
	assert_ptr_equal(c->qp, &fake_qp);
	pthread_mutex_unlock(&c->lock);

	/* Once set up, the queues are the program threads' to use again. */
	r = rt_recv(c, &iov, 1, 0, 0);
	assert_int_equal(r, -EAGAIN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_program_calls_during_setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
