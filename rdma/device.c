// SPDX-License-Identifier: MIT
/* One protection domain and one registration cache per RDMA device. */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"
#include "shim/log.h"

static void *verbs_reg(void *ctx, void *addr, size_t len, uint32_t *lkey)
{
	struct rt_device *dev = ctx;
	struct ibv_mr *mr;

	/*
	 * Ask for local write so the kernel breaks copy-on-write sharing now:
	 * a read-only pin of a shared page would keep the old page after the
	 * program writes to it.  Memory that is really read-only can only be
	 * pinned as it is.
	 */
	mr = ibv_reg_mr(dev->pd, addr, len, IBV_ACCESS_LOCAL_WRITE);
	if (!mr && (errno == EFAULT || errno == EACCES || errno == EPERM))
		mr = ibv_reg_mr(dev->pd, addr, len, 0);
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

/* Called with rt_g.lock held. */
struct rt_device *rt_device_get(struct ibv_context *verbs)
{
	struct regcache_backend backend = { verbs_reg, verbs_dereg, NULL };
	struct rt_device *dev;

	for (dev = rt_g.devices; dev; dev = dev->next)
		if (dev->verbs == verbs)
			return dev;

	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return NULL;
	dev->verbs = verbs;
	if (ibv_query_device(verbs, &dev->attr)) {
		log_error(0, "cannot query RDMA device %s: %m",
			  ibv_get_device_name(verbs->device));
		goto fail;
	}
	dev->pd = ibv_alloc_pd(verbs);
	if (!dev->pd) {
		log_error(0, "cannot allocate a protection domain on %s: %m",
			  ibv_get_device_name(verbs->device));
		goto fail;
	}
	backend.ctx = dev;
	dev->regcache = regcache_create(&backend, rt_g.opts.chunk, rt_g.opts.pin_limit);
	if (!dev->regcache)
		goto fail_pd;
	dev->next = rt_g.devices;
	rt_g.devices = dev;
	log_info(0, "using RDMA device %s (max_sge %d, max_qp_wr %d)",
		 ibv_get_device_name(verbs->device), dev->attr.max_sge,
		 dev->attr.max_qp_wr);
	return dev;
fail_pd:
	ibv_dealloc_pd(dev->pd);
fail:
	free(dev);
	return NULL;
}

void rt_devices_pinned(size_t *now, size_t *peak)
{
	struct regcache_stats st;
	struct rt_device *dev;

	*now = 0;
	*peak = 0;
	pthread_mutex_lock(&rt_g.lock);
	for (dev = rt_g.devices; dev; dev = dev->next) {
		regcache_get_stats(dev->regcache, &st);
		*now += st.pinned_bytes;
		*peak += st.pinned_peak;
	}
	pthread_mutex_unlock(&rt_g.lock);
}

void rt_pinned_bytes(size_t *now, size_t *peak)
{
	rt_devices_pinned(now, peak);
}

void rt_invalidate_memory(const void *addr, size_t len)
{
	struct rt_device *dev;

	if (!rt_g.initialised)
		return;
	pthread_mutex_lock(&rt_g.lock);
	for (dev = rt_g.devices; dev; dev = dev->next)
		regcache_invalidate(dev->regcache, addr, len);
	pthread_mutex_unlock(&rt_g.lock);
}
