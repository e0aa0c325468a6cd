// SPDX-License-Identifier: MIT
/*
 * Which program memory a write may leave in flight after it returns.
 *
 * A zero-copy write normally returns only once the device has read the
 * program's buffer, since a program may overwrite a buffer as soon as
 * write() returns.  Memory the program itself marked MADV_DONTFORK is
 * memory it shares with a device, and QEMU marks every guest RAM block so:
 * for guest RAM a page rewritten after it was sent is dirty again and is
 * sent again later, in order, on a reliable connection.  Such writes return
 * at once and complete in the background (MIGRDMA_DEFER=auto).
 *
 * The table is small and changes rarely (QEMU marks a handful of RAM
 * blocks at start-up); its lock is a leaf, never held while calling out.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>

#include "internal.h"

#define DEFER_MAX_RANGES 64

struct defer_range {
	uintptr_t start;
	uintptr_t end;
};

static pthread_mutex_t defer_lock = PTHREAD_MUTEX_INITIALIZER;
static struct defer_range ranges[DEFER_MAX_RANGES];
static unsigned nranges;

/* Remove [start, end) from every range, splitting where needed (lock held). */
static void ranges_cut(uintptr_t start, uintptr_t end)
{
	unsigned i = 0;

	while (i < nranges) {
		struct defer_range *r = &ranges[i];

		if (r->end <= start || r->start >= end) {
			i++;
			continue;
		}
		if (r->start < start && r->end > end) {
			/* A hole in the middle: keep both sides if there is room. */
			if (nranges < DEFER_MAX_RANGES) {
				ranges[nranges].start = end;
				ranges[nranges].end = r->end;
				nranges++;
			}
			r->end = start;
			i++;
		} else if (r->start < start) {
			r->end = start;
			i++;
		} else if (r->end > end) {
			r->start = end;
			i++;
		} else {
			*r = ranges[--nranges];
		}
	}
}

void rt_note_advice(const void *addr, size_t len, int advice)
{
	uintptr_t start = (uintptr_t)addr, end = start + len;

	/* libibverbs marks what it registers itself (fork safety): not the program's opt-in. */
	if (regcache_in_backend() || !len || end < start)
		return;
	if (advice != MADV_DONTFORK && advice != MADV_DOFORK)
		return;
	pthread_mutex_lock(&defer_lock);
	ranges_cut(start, end);
	/* A full table only means fewer writes return early: never wrong. */
	if (advice == MADV_DONTFORK && nranges < DEFER_MAX_RANGES) {
		ranges[nranges].start = start;
		ranges[nranges].end = end;
		nranges++;
	}
	pthread_mutex_unlock(&defer_lock);
}

void rt_forget_memory(const void *addr, size_t len)
{
	uintptr_t start = (uintptr_t)addr;

	if (!len || start + len < start)
		return;
	pthread_mutex_lock(&defer_lock);
	ranges_cut(start, start + len);
	pthread_mutex_unlock(&defer_lock);
}

bool defer_allowed(const void *addr, size_t len)
{
	uintptr_t start = (uintptr_t)addr, end = start + len;
	bool ok = false;
	unsigned i;

	switch (rt_g.opts.defer) {
	case RT_DEFER_OFF:
		return false;
	case RT_DEFER_ALL:
		return true;
	case RT_DEFER_AUTO:
		break;
	}
	pthread_mutex_lock(&defer_lock);
	for (i = 0; i < nranges && !ok; i++)
		ok = ranges[i].start <= start && end <= ranges[i].end;
	pthread_mutex_unlock(&defer_lock);
	return ok;
}

/* fork: held across it, so the child's copy of the table is whole (service.c). */
void defer_atfork_prepare(void)
{
	pthread_mutex_lock(&defer_lock);
}

void defer_atfork_release(void)
{
	pthread_mutex_unlock(&defer_lock);
}

/*
 * MADV_DONTFORK memory is not mapped in the child: whatever the child maps
 * there later was never marked by it.
 */
void defer_atfork_child(void)
{
	nranges = 0;
	pthread_mutex_unlock(&defer_lock);
}
