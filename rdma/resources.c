// SPDX-License-Identifier: MIT
/*
 * A connection's verbs resources and memory: set up once its route is
 * known (or its request arrives), torn down by the service thread once
 * the program has closed it and its sends have drained.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "internal.h"
#include "common/log.h"
#include "common/real.h"

static void log_registration_failure(struct rt_conn *c, const char *what, size_t len)
{
	struct rlimit rl;
	int err = errno;

	if ((err == ENOMEM || err == EPERM || err == EAGAIN) &&
	    getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		log_error(c->id, "cannot register %zu bytes for the %s: the locked-memory limit "
			  "is %llu KiB; raise it with 'ulimit -l unlimited', LimitMEMLOCK=infinity "
			  "(systemd) or <memtune><hard_limit> (libvirt)",
			  len, what, (unsigned long long)rl.rlim_cur / 1024);
		return;
	}
	log_error(c->id, "cannot register %zu bytes for the %s: %s", len, what, strerror(err));
}

static void *map_buffer(size_t len)
{
	void *p = REAL(mmap)(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static struct ibv_mr *map_and_register(struct rt_conn *c, uint8_t **buf, size_t len,
				       int access, const char *what)
{
	struct ibv_mr *mr;

	*buf = map_buffer(len);
	if (!*buf) {
		log_error(c->id, "cannot allocate %zu bytes for the %s: %m", len, what);
		return NULL;
	}
	mr = ibv_reg_mr(c->pd, *buf, len, access);
	if (!mr) {
		log_registration_failure(c, what, len);
		REAL(munmap)(*buf, len);
		*buf = NULL;
	}
	return mr;
}

static size_t sbuf_len(void)
{
	return (size_t)RT_TX_SLOTS * RT_MSG_SIZE + (size_t)RT_CTRL_SLOTS * RT_CTRL_BUF;
}

/* The completion channel, queue and queue pair; false with errno set. */
static bool create_queues(struct rt_conn *c, struct rdma_cm_id *id)
{
	struct ibv_comp_channel *chan;
	struct ibv_qp_init_attr qa;
	int fl, wake_fd;

	chan = ibv_create_comp_channel(id->verbs);
	if (!chan)
		return false;
	fl = REAL(fcntl)(chan->fd, F_GETFL);
	REAL(fcntl)(chan->fd, F_SETFL, fl | O_NONBLOCK);
	wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	/* rt_for_each_internal_fd reads both under the global lock. */
	pthread_mutex_lock(&rt_g.lock);
	c->chan = chan;
	c->sleep_wake_fd = wake_fd;
	pthread_mutex_unlock(&rt_g.lock);
	if (wake_fd < 0)
		return false;
	c->cq = ibv_create_cq(id->verbs, (int)(RT_SQ_DEPTH + c->nrecv), c, c->chan, 0);
	if (!c->cq)
		return false;
	/* Armed for the first completion; conn_arm() decides from then on. */
	if (ibv_req_notify_cq(c->cq, 0))
		return false;
	c->cq_armed = true;
	c->cq_armed_any = true;

	memset(&qa, 0, sizeof(qa));
	qa.send_cq = c->cq;
	qa.recv_cq = c->cq;
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = RT_SQ_DEPTH;
	qa.cap.max_recv_wr = c->nrecv;
	qa.cap.max_send_sge = c->max_sge;
	qa.cap.max_recv_sge = 1;
	qa.cap.max_inline_data = RT_CTRL_BUF;
	if (rdma_create_qp(id, c->pd, &qa)) {
		/* Inline data is an optimisation some devices lack. */
		qa.cap.max_inline_data = 0;
		if (rdma_create_qp(id, c->pd, &qa))
			return false;
	}
	c->qp = id->qp;
	c->max_inline = qa.cap.max_inline_data;
	return true;
}

static int setup_resources(struct rt_conn *c, struct rdma_cm_id *id)
{
	struct regcache *rc;
	unsigned i;

	/* The id is the connection's from here on, even if set-up fails. */
	c->cm_id = id;
	pthread_mutex_lock(&rt_g.lock);
	c->dev = rt_device_get(id->verbs);
	pthread_mutex_unlock(&rt_g.lock);
	if (!c->dev)
		return -ENODEV;
	c->max_sge = c->dev->attr.max_sge < (int)RT_MAX_SGE ? (unsigned)c->dev->attr.max_sge
							     : RT_MAX_SGE;
	c->nrecv = RT_DATA_CREDITS + RT_CTRL_RECVS;
	c->ring_size = (uint32_t)rt_g.opts.ring_size;

	c->pd = ibv_alloc_pd(id->verbs);
	if (!c->pd)
		goto fail_errno;
	rc = rt_regcache_create(c->pd);
	if (!rc)
		goto fail_errno;
	/* Others walk rt_g.conns and read c->regcache under rt_g.lock. */
	pthread_mutex_lock(&rt_g.lock);
	c->regcache = rc;
	pthread_mutex_unlock(&rt_g.lock);
	if (!create_queues(c, id))
		goto fail_errno;

	c->ring_mr = map_and_register(c, &c->ring, c->ring_size,
				      IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE,
				      "receive ring");
	if (!c->ring_mr)
		return -ENOMEM;
	c->rbuf_mr = map_and_register(c, &c->rbufs, (size_t)c->nrecv * RT_MSG_SIZE,
				      IBV_ACCESS_LOCAL_WRITE, "receive buffers");
	if (!c->rbuf_mr)
		return -ENOMEM;
	c->sbuf_mr = map_and_register(c, &c->sbufs, sbuf_len(), IBV_ACCESS_LOCAL_WRITE,
				      "send buffers");
	if (!c->sbuf_mr)
		return -ENOMEM;

	credit_rx_init(&c->crx, RT_DATA_CREDITS, c->ring_size);
	for (i = 0; i < c->nrecv; i++)
		if (conn_post_recv(c, i))
			goto fail_errno;
	if (rt_service_watch(c->chan->fd, c))
		goto fail_errno;
	return 0;

fail_errno:
	log_error(c->id, "cannot set up RDMA resources: %m");
	return errno ? -errno : -ENOMEM;
}

/*
 * Set-up takes the global lock, so it cannot run under the connection's:
 * program threads may hold c->lock meanwhile (a read or write on a socket
 * still connecting, a shutdown), and c->setting_up keeps them off the
 * queues being created.
 */
int conn_setup_resources(struct rt_conn *c, struct rdma_cm_id *id)
{
	int ret;

	pthread_mutex_lock(&c->lock);
	c->setting_up = true;
	pthread_mutex_unlock(&c->lock);
	ret = setup_resources(c, id);
	pthread_mutex_lock(&c->lock);
	c->setting_up = false;
	pthread_mutex_unlock(&c->lock);
	return ret;
}

void release_slot_refs(struct rt_conn *c, struct tx_slot *s)
{
	unsigned i;

	for (i = 0; i < s->nrefs; i++)
		regcache_put(c->regcache, s->refs[i]);
	s->nrefs = 0;
}

/* The completion queue and channel, and the sleepers' wake-up fd. */
static void destroy_queues(struct rt_conn *c)
{
	struct ibv_comp_channel *chan;
	int wake_fd;

	/*
	 * rt_for_each_internal_fd reads these under the global lock: unlisted
	 * there first, or it reads a freed channel and reports fd numbers the
	 * program may already have again.
	 */
	pthread_mutex_lock(&rt_g.lock);
	chan = c->chan;
	wake_fd = c->sleep_wake_fd;
	c->chan = NULL;
	c->sleep_wake_fd = -1;
	pthread_mutex_unlock(&rt_g.lock);
	if (c->cq)
		ibv_destroy_cq(c->cq);
	c->cq = NULL;
	if (chan)
		ibv_destroy_comp_channel(chan);
	if (wake_fd >= 0)
		REAL(close)(wake_fd);
}

static void free_buffers(struct rt_conn *c)
{
	if (c->ring_mr)
		ibv_dereg_mr(c->ring_mr);
	if (c->rbuf_mr)
		ibv_dereg_mr(c->rbuf_mr);
	if (c->sbuf_mr)
		ibv_dereg_mr(c->sbuf_mr);
	if (c->ring)
		REAL(munmap)(c->ring, c->ring_size);
	if (c->rbufs)
		REAL(munmap)(c->rbufs, (size_t)c->nrecv * RT_MSG_SIZE);
	if (c->sbufs)
		REAL(munmap)(c->sbufs, sbuf_len());
}

/* Service thread only. */
void conn_destroy(struct rt_conn *c)
{
	struct regcache *rc;
	struct rt_conn **pp;
	unsigned i;

	pthread_mutex_lock(&c->lock);
	c->destroyed = true;
	pthread_mutex_unlock(&c->lock);

	if (c->chan)
		rt_service_unwatch(c->chan->fd);
	if (c->qp)
		rdma_destroy_qp(c->cm_id);
	c->qp = NULL;
	for (i = 0; i < RT_TX_SLOTS; i++)
		release_slot_refs(c, &c->slots[i]);
	tx_backlog_clear(c);
	destroy_queues(c);
	free_buffers(c);
	/*
	 * Registrations die with their connection: memory freed inside libc
	 * never passes our munmap hook, so none may outlive it.  Detached
	 * under rt_g.lock first: the munmap hook and the pinned-bytes sum walk
	 * every connection's cache under that lock, and must never reach one
	 * being freed.
	 */
	pthread_mutex_lock(&rt_g.lock);
	rc = c->regcache;
	c->regcache = NULL;
	pthread_mutex_unlock(&rt_g.lock);
	if (rc)
		regcache_destroy(rc);
	if (c->pd)
		ibv_dealloc_pd(c->pd);
	c->pd = NULL;
	if (c->cm_id)
		rdma_destroy_id(c->cm_id);
	c->cm_id = NULL;
	if (c->device_removed)
		rt_forget_removed_devices();

	pthread_mutex_lock(&rt_g.lock);
	for (pp = &rt_g.conns; *pp; pp = &(*pp)->next_all) {
		if (*pp == c) {
			*pp = c->next_all;
			break;
		}
	}
	c->next_all = rt_g.zombies;
	rt_g.zombies = c;
	pthread_mutex_unlock(&rt_g.lock);
}

void conn_free_zombies(void)
{
	struct rt_conn *c, *next;

	pthread_mutex_lock(&rt_g.lock);
	c = rt_g.zombies;
	rt_g.zombies = NULL;
	pthread_mutex_unlock(&rt_g.lock);
	for (; c; c = next) {
		next = c->next_all;
		pthread_mutex_destroy(&c->lock);
		pthread_cond_destroy(&c->cond);
		free(c);
	}
}
