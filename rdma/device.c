// SPDX-License-Identifier: MIT
/* One protection domain and one registration cache per RDMA device. */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"
#include "common/log.h"

static void *verbs_reg(void *ctx, void *addr, size_t len, uint32_t *lkey)
{
	struct ibv_pd *pd = ctx;
	struct ibv_mr *mr;

	/*
	 * Ask for local write so the kernel breaks copy-on-write sharing now:
	 * a read-only pin of a shared page would keep the old page after the
	 * program writes to it.  Memory that is really read-only can only be
	 * pinned as it is.
	 */
	mr = ibv_reg_mr(pd, addr, len, IBV_ACCESS_LOCAL_WRITE);
	if (!mr && (errno == EFAULT || errno == EACCES || errno == EPERM))
		mr = ibv_reg_mr(pd, addr, len, 0);
	if (!mr)
		return NULL;
	*lkey = mr->lkey;
	return mr;
}

static void verbs_dereg(void *ctx, void *handle)
{
	(void)ctx;
	ibv_dereg_mr(handle);
}

struct regcache *rt_regcache_create(struct ibv_pd *pd)
{
	struct regcache_backend backend = { verbs_reg, verbs_dereg, pd };

	return regcache_create(&backend, rt_g.opts.chunk, rt_g.opts.pin_limit);
}

/* Called with rt_g.lock held. */
struct rt_device *rt_device_get(struct ibv_context *verbs)
{
	struct rt_device *dev;

	for (dev = rt_g.devices; dev; dev = dev->next)
		if (dev->verbs == verbs && !dev->removed)
			return dev;

	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return NULL;
	dev->verbs = verbs;
	if (ibv_query_device(verbs, &dev->attr)) {
		log_error(0, "cannot query RDMA device %s: %m",
			  ibv_get_device_name(verbs->device));
		free(dev);
		return NULL;
	}
	dev->next = rt_g.devices;
	rt_g.devices = dev;
	log_info(0, "using RDMA device %s (max_sge %d, max_qp_wr %d)",
		 ibv_get_device_name(verbs->device), dev->attr.max_sge,
		 dev->attr.max_qp_wr);
	return dev;
}

/* rdma_cm said verbs's device is being removed: a later context may reuse its address. */
void rt_device_removed(struct ibv_context *verbs)
{
	struct rt_device *dev;

	pthread_mutex_lock(&rt_g.lock);
	for (dev = rt_g.devices; dev; dev = dev->next)
		if (dev->verbs == verbs)
			dev->removed = true;
	pthread_mutex_unlock(&rt_g.lock);
}

/*
 * librdmacm keeps every device it has opened until a later call of its own
 * finds the device gone, and a driver that cannot take a context away from
 * a process (rxe) waits for that close before a removal can finish: the
 * removing command hangs.  Ask librdmacm to look, once our ids on a
 * removed device are destroyed.  It does not when no device is left at
 * all (see README, Limits).  Service thread.
 */
void rt_forget_removed_devices(void)
{
	struct ibv_context **devs = rdma_get_devices(NULL);

	if (devs)
		rdma_free_devices(devs);
}

void rt_devices_pinned(size_t *now, size_t *peak)
{
	struct regcache_stats st;
	struct rt_conn *c;

	*now = 0;
	pthread_mutex_lock(&rt_g.lock);
	for (c = rt_g.conns; c; c = c->next_all) {
		if (!c->regcache)
			continue;
		regcache_get_stats(c->regcache, &st);
		*now += st.pinned_bytes;
	}
	if (*now > rt_g.pinned_peak)
		rt_g.pinned_peak = *now;
	*peak = rt_g.pinned_peak;
	pthread_mutex_unlock(&rt_g.lock);
}

void rt_pinned_bytes(size_t *now, size_t *peak)
{
	rt_devices_pinned(now, peak);
}

/*
 * Called by the munmap, mremap and madvise hooks, from any thread and
 * with any of our locks possibly held by this thread (a driver unmapping
 * inside librdmacm under rt_g.lock): it must take none of the transport's
 * locks, only the registration caches' own.
 */
void rt_invalidate_memory(const void *addr, size_t len)
{
	regcache_invalidate_all(addr, len);
}

bool rt_memory_registered(void)
{
	return regcache_any_entries();
}
