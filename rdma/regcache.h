/* SPDX-License-Identifier: MIT */
/*
 * Registration cache: registers the program's memory on demand, one
 * chunk-aligned chunk at a time, and keeps the pinned total at or below a
 * limit by deregistering the least recently used idle chunks.
 *
 * The backend (ibv_reg_mr / ibv_dereg_mr in production) is a pair of
 * callbacks so the cache can be tested without a device.  Thread-safe.
 */
#ifndef MIGRDMA_RDMA_REGCACHE_H
#define MIGRDMA_RDMA_REGCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct regcache;
struct regcache_entry;

struct regcache_backend {
	/* Register [addr, addr+len); return an opaque handle and the lkey, or NULL (errno set). */
	void *(*reg)(void *ctx, void *addr, size_t len, uint32_t *lkey);
	void (*dereg)(void *ctx, void *handle);
	void *ctx;
};

struct regcache_ref {
	struct regcache_entry *entry;
	uint32_t lkey;
	uintptr_t start;	/* the registered range, covering what was asked */
	size_t len;
};

struct regcache_stats {
	uint64_t registrations;
	uint64_t deregistrations;
	uint64_t hits;
	uint64_t misses;
	uint64_t evictions;
	uint64_t invalidations;
	uint64_t failures;
	size_t pinned_bytes;
	size_t pinned_peak;
	size_t entries;
};

/* chunk: a power of two, at least a page; pin_limit: bytes. */
struct regcache *regcache_create(const struct regcache_backend *backend,
				 size_t chunk, size_t pin_limit);
void regcache_destroy(struct regcache *rc);

/*
 * Get a registration covering [addr, addr+len), which must not cross a
 * chunk boundary.  Takes a reference that the caller drops with
 * regcache_put() once the hardware is done with the memory.  *registered
 * is set to 1 when a new registration was made.  Returns 0, or -1 with
 * errno: ENOMEM when the pin limit is reached by memory in use, or the
 * backend's errno.
 */
int regcache_get(struct regcache *rc, const void *addr, size_t len,
		 struct regcache_ref *ref, int *registered);
void regcache_put(struct regcache *rc, struct regcache_entry *entry);
/* One more reference on an entry the caller holds one on already. */
void regcache_hold(struct regcache *rc, struct regcache_entry *entry);

/*
 * The program unmapped, remapped or discarded [addr, addr+len): forget
 * every registration overlapping it (idle ones at once, busy ones when
 * their last reference is dropped) so new data is never read through a
 * stale pin.
 */
void regcache_invalidate(struct regcache *rc, const void *addr, size_t len);

/*
 * regcache_invalidate() on every cache.  The munmap, mremap and madvise
 * hooks call it from any thread, holding nothing; it takes only this
 * file's locks, and does nothing on a thread inside a backend call (the
 * driver's own memory, with a cache lock held).
 */
void regcache_invalidate_all(const void *addr, size_t len);

/* Does any cache hold a registration (alive or retired but busy)? */
bool regcache_any_entries(void);

/* fork: hold the list of caches across it; the child forgets the parent's. */
void regcache_atfork_prepare(void);
void regcache_atfork_parent(void);
void regcache_atfork_child(void);

/* Drop every idle registration. */
void regcache_flush(struct regcache *rc);

void regcache_get_stats(struct regcache *rc, struct regcache_stats *out);

size_t regcache_chunk(const struct regcache *rc);

/*
 * Is this thread inside a backend call (registering or deregistering)?
 * What the driver does to memory there is its own doing, not the program's.
 */
bool regcache_in_backend(void);

#endif
