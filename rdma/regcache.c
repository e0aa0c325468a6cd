// SPDX-License-Identifier: MIT
#include "regcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#define REGCACHE_BUCKETS 4096
#define REGCACHE_PAGE 4096

struct regcache_entry {
	uintptr_t start;
	size_t len;
	void *handle;
	uint32_t lkey;
	unsigned refcnt;
	bool stale;			/* invalidated while busy: dereg on last put */
	struct regcache_entry *hash_next;
	struct regcache_entry *lru_prev;	/* LRU: head = least recently used */
	struct regcache_entry *lru_next;
};

struct regcache {
	pthread_mutex_t lock;
	struct regcache_backend backend;
	size_t chunk;
	size_t pin_limit;
	struct regcache_entry *buckets[REGCACHE_BUCKETS];
	struct regcache_entry *lru_head;
	struct regcache_entry *lru_tail;
	struct regcache_stats stats;
	struct regcache *all_prev;	/* every cache, under all_lock */
	struct regcache *all_next;
};

/*
 * Every cache, for regcache_invalidate_all().  The program's munmap hook
 * walks this list, so its lock is its own: no code holds it while calling
 * out of this file, and the transport's locks are never taken under it.
 */
static pthread_mutex_t all_lock = PTHREAD_MUTEX_INITIALIZER;
static struct regcache *all_head;
/* Registrations alive in every cache: lets a file hook skip its map scan. */
static long live_entries;

/*
 * Set while this thread is inside a backend call, with a cache's lock
 * held: memory a driver unmaps there is its own, never the program's, and
 * invalidating would take that lock again.
 */
static __thread int in_backend __attribute__((tls_model("initial-exec")));

static void *backend_reg(struct regcache *rc, uintptr_t start, size_t len, uint32_t *lkey)
{
	void *handle;

	in_backend++;
	handle = rc->backend.reg(rc->backend.ctx, (void *)start, len, lkey);
	in_backend--;
	return handle;
}

static size_t bucket_of(const struct regcache *rc, uintptr_t addr)
{
	uintptr_t chunk_index = addr / rc->chunk;

	return (chunk_index ^ (chunk_index >> 12)) % REGCACHE_BUCKETS;
}

static void lru_unlink(struct regcache *rc, struct regcache_entry *e)
{
	if (e->lru_prev)
		e->lru_prev->lru_next = e->lru_next;
	else
		rc->lru_head = e->lru_next;
	if (e->lru_next)
		e->lru_next->lru_prev = e->lru_prev;
	else
		rc->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
}

static void lru_push_tail(struct regcache *rc, struct regcache_entry *e)
{
	e->lru_prev = rc->lru_tail;
	e->lru_next = NULL;
	if (rc->lru_tail)
		rc->lru_tail->lru_next = e;
	else
		rc->lru_head = e;
	rc->lru_tail = e;
}

static void hash_unlink(struct regcache *rc, struct regcache_entry *e)
{
	struct regcache_entry **pp = &rc->buckets[bucket_of(rc, e->start)];

	while (*pp && *pp != e)
		pp = &(*pp)->hash_next;
	if (*pp)
		*pp = e->hash_next;
	e->hash_next = NULL;
}

static void entry_free(struct regcache *rc, struct regcache_entry *e)
{
	in_backend++;
	rc->backend.dereg(rc->backend.ctx, e->handle);
	rc->stats.deregistrations++;
	rc->stats.pinned_bytes -= e->len;
	rc->stats.entries--;
	__atomic_sub_fetch(&live_entries, 1, __ATOMIC_RELAXED);
	free(e);
	in_backend--;
}

/* Remove an entry from lookup; free it now if idle, else on its last put. */
static void entry_retire(struct regcache *rc, struct regcache_entry *e)
{
	if (e->stale)
		return;
	hash_unlink(rc, e);
	lru_unlink(rc, e);
	e->stale = true;
	if (e->refcnt == 0)
		entry_free(rc, e);
}

struct regcache *regcache_create(const struct regcache_backend *backend,
				 size_t chunk, size_t pin_limit)
{
	struct regcache *rc;

	if (!backend || !backend->reg || !backend->dereg || chunk < REGCACHE_PAGE ||
	    (chunk & (chunk - 1))) {
		errno = EINVAL;
		return NULL;
	}
	rc = calloc(1, sizeof(*rc));
	if (!rc)
		return NULL;
	pthread_mutex_init(&rc->lock, NULL);
	rc->backend = *backend;
	rc->chunk = chunk;
	rc->pin_limit = pin_limit;
	pthread_mutex_lock(&all_lock);
	rc->all_next = all_head;
	if (all_head)
		all_head->all_prev = rc;
	__atomic_store_n(&all_head, rc, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&all_lock);
	return rc;
}

void regcache_destroy(struct regcache *rc)
{
	size_t i;

	if (!rc)
		return;
	pthread_mutex_lock(&all_lock);
	if (rc->all_prev)
		rc->all_prev->all_next = rc->all_next;
	else if (all_head == rc)
		__atomic_store_n(&all_head, rc->all_next, __ATOMIC_RELAXED);
	if (rc->all_next)
		rc->all_next->all_prev = rc->all_prev;
	pthread_mutex_unlock(&all_lock);
	pthread_mutex_lock(&rc->lock);
	for (i = 0; i < REGCACHE_BUCKETS; i++) {
		while (rc->buckets[i]) {
			struct regcache_entry *e = rc->buckets[i];

			/* Busy entries at destroy are a caller bug; dereg anyway. */
			rc->buckets[i] = e->hash_next;
			entry_free(rc, e);
		}
	}
	pthread_mutex_unlock(&rc->lock);
	pthread_mutex_destroy(&rc->lock);
	free(rc);
}

static struct regcache_entry *lookup(struct regcache *rc, uintptr_t addr, size_t len)
{
	struct regcache_entry *e;

	for (e = rc->buckets[bucket_of(rc, addr)]; e; e = e->hash_next)
		if (e->start <= addr && addr + len <= e->start + e->len)
			return e;
	return NULL;
}

/* Evict idle entries, oldest first, until `need` more bytes fit the limit. */
static bool make_room(struct regcache *rc, size_t need)
{
	struct regcache_entry *e = rc->lru_head;

	while (rc->stats.pinned_bytes + need > rc->pin_limit && e) {
		struct regcache_entry *next = e->lru_next;

		if (e->refcnt == 0) {
			entry_retire(rc, e);
			rc->stats.evictions++;
		}
		e = next;
	}
	return rc->stats.pinned_bytes + need <= rc->pin_limit;
}

static struct regcache_entry *try_register(struct regcache *rc, uintptr_t start,
					   size_t len)
{
	struct regcache_entry *e;

	if (!make_room(rc, len)) {
		errno = ENOMEM;
		return NULL;
	}
	/* An allocator other than glibc's may madvise or map here: our own hooks. */
	in_backend++;
	e = calloc(1, sizeof(*e));
	in_backend--;
	if (!e)
		return NULL;
	e->handle = backend_reg(rc, start, len, &e->lkey);
	if (!e->handle) {
		int saved = errno;

		in_backend++;
		free(e);
		in_backend--;
		errno = saved;
		return NULL;
	}
	e->start = start;
	e->len = len;
	return e;
}

int regcache_get(struct regcache *rc, const void *addr, size_t len,
		 struct regcache_ref *ref, int *registered)
{
	uintptr_t a = (uintptr_t)addr;
	uintptr_t chunk_start = a & ~(uintptr_t)(rc->chunk - 1);
	struct regcache_entry *e;
	int ret = 0;

	*registered = 0;
	if (len == 0 || a + len < a || a + len > chunk_start + rc->chunk) {
		errno = EINVAL;
		return -1;
	}
	pthread_mutex_lock(&rc->lock);
	e = lookup(rc, a, len);
	if (e) {
		rc->stats.hits++;
		lru_unlink(rc, e);
		goto found;
	}
	rc->stats.misses++;
	/*
	 * The whole chunk first: neighbouring pages will follow.  It fails
	 * when part of the chunk is not mapped, or is guarded, so fall back
	 * to just the pages asked for.
	 */
	e = try_register(rc, chunk_start, rc->chunk);
	if (!e) {
		uintptr_t first = a & ~(uintptr_t)(REGCACHE_PAGE - 1);
		uintptr_t last = (a + len + REGCACHE_PAGE - 1) & ~(uintptr_t)(REGCACHE_PAGE - 1);

		e = try_register(rc, first, last - first);
	}
	if (!e) {
		rc->stats.failures++;
		ret = -1;
		goto out;
	}
	*registered = 1;
	rc->stats.registrations++;
	rc->stats.entries++;
	__atomic_add_fetch(&live_entries, 1, __ATOMIC_RELAXED);
	rc->stats.pinned_bytes += e->len;
	if (rc->stats.pinned_bytes > rc->stats.pinned_peak)
		rc->stats.pinned_peak = rc->stats.pinned_bytes;
	e->hash_next = rc->buckets[bucket_of(rc, e->start)];
	rc->buckets[bucket_of(rc, e->start)] = e;
found:
	lru_push_tail(rc, e);
	e->refcnt++;
	ref->entry = e;
	ref->lkey = e->lkey;
	ref->start = e->start;
	ref->len = e->len;
out:
	pthread_mutex_unlock(&rc->lock);
	return ret;
}

void regcache_hold(struct regcache *rc, struct regcache_entry *e)
{
	pthread_mutex_lock(&rc->lock);
	e->refcnt++;
	pthread_mutex_unlock(&rc->lock);
}

void regcache_put(struct regcache *rc, struct regcache_entry *e)
{
	pthread_mutex_lock(&rc->lock);
	if (e->refcnt > 0 && --e->refcnt == 0 && e->stale)
		entry_free(rc, e);
	pthread_mutex_unlock(&rc->lock);
}

static void invalidate_bucket(struct regcache *rc, size_t bucket, uintptr_t a,
			      uintptr_t end)
{
	struct regcache_entry *e = rc->buckets[bucket];

	while (e) {
		struct regcache_entry *next = e->hash_next;

		if (e->start < end && a < e->start + e->len) {
			entry_retire(rc, e);
			rc->stats.invalidations++;
		}
		e = next;
	}
}

void regcache_invalidate(struct regcache *rc, const void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr, end = a + len;
	uintptr_t first = a & ~(uintptr_t)(rc->chunk - 1);
	size_t i;

	if (len == 0)
		return;
	if (end < a)
		end = UINTPTR_MAX;
	pthread_mutex_lock(&rc->lock);
	/*
	 * Entries never cross a chunk, so only the chunks overlapped can
	 * hold them; past a bucket's worth of chunks, walking every bucket
	 * is cheaper.
	 */
	if ((end - first) / rc->chunk >= REGCACHE_BUCKETS) {
		for (i = 0; i < REGCACHE_BUCKETS; i++)
			invalidate_bucket(rc, i, a, end);
	} else {
		for (; first < end; first += rc->chunk) {
			invalidate_bucket(rc, bucket_of(rc, first), a, end);
			/* The last chunk of the address space: first would wrap to 0. */
			if (first + rc->chunk < first)
				break;
		}
	}
	pthread_mutex_unlock(&rc->lock);
}

void regcache_invalidate_all(const void *addr, size_t len)
{
	struct regcache *rc;

	if (in_backend || !__atomic_load_n(&all_head, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&all_lock);
	for (rc = all_head; rc; rc = rc->all_next)
		regcache_invalidate(rc, addr, len);
	pthread_mutex_unlock(&all_lock);
}

void regcache_atfork_prepare(void)
{
	pthread_mutex_lock(&all_lock);
}

void regcache_atfork_parent(void)
{
	pthread_mutex_unlock(&all_lock);
}

void regcache_atfork_child(void)
{
	/* The parent's registrations are not the child's to drop. */
	__atomic_store_n(&all_head, NULL, __ATOMIC_RELAXED);
	__atomic_store_n(&live_entries, 0, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&all_lock);
}

void regcache_flush(struct regcache *rc)
{
	struct regcache_entry *e, *next;

	pthread_mutex_lock(&rc->lock);
	for (e = rc->lru_head; e; e = next) {
		next = e->lru_next;
		if (e->refcnt == 0)
			entry_retire(rc, e);
	}
	pthread_mutex_unlock(&rc->lock);
}

void regcache_get_stats(struct regcache *rc, struct regcache_stats *out)
{
	pthread_mutex_lock(&rc->lock);
	*out = rc->stats;
	pthread_mutex_unlock(&rc->lock);
}

bool regcache_any_entries(void)
{
	return __atomic_load_n(&live_entries, __ATOMIC_RELAXED) > 0;
}

bool regcache_in_backend(void)
{
	return in_backend != 0;
}

size_t regcache_chunk(const struct regcache *rc)
{
	return rc->chunk;
}
