// SPDX-License-Identifier: MIT
/*
 * A connection's set-up and teardown against a fake device, with a program
 * thread calling in meanwhile.
 *
 * Regression: the service thread creates a connecting socket's completion
 * channel, CQ and QP (conn_setup_resources) without the connection's lock,
 * because set-up takes the global lock and that one comes first.  A program
 * thread that read or wrote the socket meanwhile (nonblocking, as QEMU's
 * are) polled and armed the CQ the set-up had just published, racing with
 * the set-up's own writes of the same fields.  Now nobody else touches the
 * queues until the set-up is done.
 *
 * Regression: the queue pair kept rdma_cm's ACK timeout, 2.1 s on the test
 * rig, so a lost packet with nothing behind it stalled a migration for
 * that long (seen in about one run in ten); MIGRDMA_ACK_TIMEOUT is now set
 * on the id before rdma_connect.
 *
 * Regression: conn_destroy destroyed the completion channel and only later
 * cleared c->chan, without the global lock.  rt_for_each_internal_fd, which
 * a connect or accept in a program thread calls under that lock, read the
 * freed channel meanwhile and reported its fd number, which the program
 * may have been given again, as the library's own.
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
#define FAKE_CHANS	4
static struct ibv_comp_channel fake_chans[FAKE_CHANS];
static int nchans;

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

/* One per connection, never freed: a destroyed one keeps what it was left with. */
struct ibv_comp_channel *ibv_create_comp_channel(struct ibv_context *context)
{
	struct ibv_comp_channel *chan;

	if (nchans == FAKE_CHANS)
		return NULL;
	chan = &fake_chans[nchans++];
	chan->context = context;
	chan->fd = eventfd(0, EFD_CLOEXEC);
	return chan->fd < 0 ? NULL : chan;
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

/* What a destroyed channel's fd reads as: as if its memory had been reused. */
#define CHAN_FREED_FD	0x7ffffff0

/* Teardown waits in its first ibv_dereg_mr, after the channel is gone, until released. */
static bool in_dereg, dereg_released;

static int rdma_destroy_qp_called;

void rdma_destroy_qp(struct rdma_cm_id *id)
{
	(void)id;
	rdma_destroy_qp_called++;
}

int ibv_destroy_cq(struct ibv_cq *cq)
{
	(void)cq;
	return 0;
}

int ibv_destroy_comp_channel(struct ibv_comp_channel *channel)
{
	close(channel->fd);
	channel->fd = CHAN_FREED_FD;
	return 0;
}

int ibv_dereg_mr(struct ibv_mr *mr)
{
	(void)mr;
	pthread_mutex_lock(&gate_lock);
	if (!dereg_released) {
		in_dereg = true;
		pthread_cond_broadcast(&gate_cond);
		gate_wait_for(&dereg_released);
	}
	pthread_mutex_unlock(&gate_lock);
	return 0;
}

int ibv_dealloc_pd(struct ibv_pd *pd)
{
	(void)pd;
	return 0;
}

int rdma_destroy_id(struct rdma_cm_id *id)
{
	(void)id;
	return 0;
}

struct ibv_context **rdma_get_devices(int *num_devices)
{
	*num_devices = 0;
	return NULL;
}

void rdma_free_devices(struct ibv_context **list)
{
	(void)list;
}

/* The ACK timeout the id had when rdma_connect was called; -1: never set. */
static int ack_timeout_set = -1, ack_timeout_at_connect = -1;

int rdma_set_option(struct rdma_cm_id *id, int level, int optname, void *optval,
		    size_t optlen)
{
	(void)id;
	if (level == RDMA_OPTION_ID && optname == RDMA_OPTION_ID_ACK_TIMEOUT &&
	    optlen == sizeof(uint8_t))
		ack_timeout_set = *(uint8_t *)optval;
	return 0;
}

int rdma_connect(struct rdma_cm_id *id, struct rdma_conn_param *param)
{
	(void)id;
	(void)param;
	ack_timeout_at_connect = ack_timeout_set;
	return 0;
}

/* A connecting socket's connection whose route has just been resolved. */
static struct rt_conn *conn_with_route(struct rdma_cm_id *id)
{
	struct rt_conn *c;

	memset(id, 0, sizeof(*id));
	id->verbs = &fake_ctx;
	c = conn_alloc(false);
	assert_non_null(c);
	c->cm_id = id;
	c->state = CS_RESOLVING_ROUTE;
	c->deadline_ms = rt_now_ms() + 60000;
	return c;
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
	rt_g.opts.ack_timeout = 16;
	rt_g.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	rt_g.wake_fd = -1;
	assert_true(rt_g.epoll_fd >= 0);

	c = conn_with_route(&id);

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
	/* rdma_cm's default (2.1 s on soft-RoCE) would stall a stream per lost packet. */
	assert_int_equal(ack_timeout_at_connect, 16);

	/* Once set up, the queues are the program threads' to use again. */
	r = rt_recv(c, &iov, 1, 0, 0);
	assert_int_equal(r, -EAGAIN);
}

static void *run_destroy(void *arg)
{
	conn_destroy(arg);
	return NULL;
}

struct fd_seen {
	int chan_fd, wake_fd;
	bool chan, wake, freed;
};

static void note_internal_fd(int fd, void *arg)
{
	struct fd_seen *seen = arg;

	seen->chan |= fd == seen->chan_fd;
	seen->wake |= fd == seen->wake_fd;
	seen->freed |= fd == CHAN_FREED_FD;
}

static void test_internal_fds_during_destroy(void **state)
{
	struct rdma_event_channel cm_chan = { .fd = -1 };
	struct fd_seen seen = { -1, -1, false, false, false };
	struct rdma_cm_id id;
	struct rt_conn *c;
	pthread_t destroyer;
	bool in;

	(void)state;
	c = conn_with_route(&id);
	setup_thread = pthread_self();
	cm_route_resolved(c);
	assert_ptr_equal(c->qp, &fake_qp);
	seen.chan_fd = c->chan->fd;
	seen.wake_fd = c->sleep_wake_fd;
	rt_g.cm_chan = &cm_chan;
	rt_g.initialised = true;

	/* Both are the library's while the connection has them. */
	rt_for_each_internal_fd(note_internal_fd, &seen);
	assert_true(seen.chan);
	assert_true(seen.wake);

	assert_int_equal(pthread_create(&destroyer, NULL, run_destroy, c), 0);
	pthread_mutex_lock(&gate_lock);
	in = gate_wait_for(&in_dereg);
	pthread_mutex_unlock(&gate_lock);
	assert_true(in);

	/* Closed: the program may have those numbers again. */
	seen.chan = seen.wake = seen.freed = false;
	rt_for_each_internal_fd(note_internal_fd, &seen);
	pthread_mutex_lock(&gate_lock);
	dereg_released = true;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
	assert_int_equal(pthread_join(destroyer, NULL), 0);
	rt_g.initialised = false;
	rt_g.cm_chan = NULL;
	assert_false(seen.freed);
	assert_false(seen.chan);
	assert_false(seen.wake);
	assert_int_equal(rdma_destroy_qp_called, 1);
	conn_free_zombies();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_program_calls_during_setup),
		cmocka_unit_test(test_internal_fds_during_destroy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
