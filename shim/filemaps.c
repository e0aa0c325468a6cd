// SPDX-License-Identifier: MIT
/*
 * Memory can be discarded through the file behind it, not only through
 * its address: QEMU frees hugetlbfs-backed guest RAM with
 * fallocate(PUNCH_HOLE) alone, and a shrinking ftruncate drops the pages
 * past the new end.  A registration over such a mapping still pins the
 * old pages, so a later send would read them instead of the new ones.
 * Find the program's mappings of the file in /proc/self/maps and drop the
 * registrations over the part that changed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/real.h"
#include "rdma/transport.h"
#include "shim.h"

struct file_range {
	dev_t dev;
	ino_t ino;
	uint64_t start;		/* file offsets [start, end) */
	uint64_t end;
};

struct file_mapping {
	uint64_t lo, hi;	/* addresses [lo, hi) */
	uint64_t pgoff;		/* the file offset at lo */
};

/*
 * The last files' mappings, so that a program punching many holes in one
 * file (a balloon discarding page by page) reads /proc/self/maps once,
 * until its mappings change: maps_gen moves with every mmap, munmap and
 * mremap of the program's.  Only ever try-locked: a thread never waits for
 * it, and a child forked while it was held just scans every time.
 */
#define CACHED_FILES 8
#define CACHED_MAPPINGS 16

struct file_maps {
	bool used;
	dev_t dev;
	ino_t ino;
	unsigned gen;
	unsigned n;
	struct file_mapping m[CACHED_MAPPINGS];
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct file_maps cache[CACHED_FILES];
static unsigned cache_next;
static unsigned maps_gen;

void shim_maps_changed(void)
{
	__atomic_add_fetch(&maps_gen, 1, __ATOMIC_ACQ_REL);
}

/* Drop the registrations over what one mapping holds of the changed range. */
static void invalidate_mapping(const struct file_mapping *m, const struct file_range *fr)
{
	uint64_t from, to;

	from = fr->start > m->pgoff ? fr->start : m->pgoff;
	to = m->hi - m->lo > UINT64_MAX - m->pgoff ? UINT64_MAX : m->pgoff + (m->hi - m->lo);
	if (fr->end < to)
		to = fr->end;
	if (from >= to)
		return;
	rt_invalidate_memory((const void *)(uintptr_t)(m->lo + (from - m->pgoff)),
			     (size_t)(to - from));
}

struct scan {
	const struct file_range *fr;
	struct file_mapping m[CACHED_MAPPINGS];
	unsigned n;
	bool overflow;		/* more mappings than m holds: not cached */
};

/* One line of /proc/self/maps: is it a mapping of the file? */
static void scan_line(const char *line, struct scan *sc)
{
	struct file_mapping m;
	unsigned maj, min;
	char perms[8];
	uint64_t ino;

	if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %" SCNx64 " %x:%x %" SCNu64,
		   &m.lo, &m.hi, perms, &m.pgoff, &maj, &min, &ino) != 7)
		return;
	if (ino != (uint64_t)sc->fr->ino || makedev(maj, min) != sc->fr->dev || m.hi <= m.lo)
		return;
	invalidate_mapping(&m, sc->fr);
	if (sc->n < CACHED_MAPPINGS)
		sc->m[sc->n++] = m;
	else
		sc->overflow = true;
}

static void scan_maps(struct scan *sc)
{
	char buf[8192];
	size_t have = 0;
	ssize_t n;
	int fd;

	fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		sc->overflow = true;
		return;
	}
	for (;;) {
		char *line, *nl;

		n = REAL(read)(fd, buf + have, sizeof(buf) - 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = '\0';
		line = buf;
		while ((nl = strchr(line, '\n'))) {
			*nl = '\0';
			scan_line(line, sc);
			line = nl + 1;
		}
		have -= (size_t)(line - buf);
		memmove(buf, line, have);
		/* No line is this long; drop it rather than stall. */
		if (have == sizeof(buf) - 1)
			have = 0;
	}
	if (n < 0)
		sc->overflow = true;
	if (have) {
		buf[have] = '\0';
		scan_line(buf, sc);
	}
	REAL(close)(fd);
}

static struct file_maps *cache_find(const struct file_range *fr)
{
	unsigned i;

	for (i = 0; i < CACHED_FILES; i++)
		if (cache[i].used && cache[i].dev == fr->dev && cache[i].ino == fr->ino)
			return &cache[i];
	return NULL;
}

/* The file's mappings as of gen, when the cache has them; the lock not waited for. */
static bool cache_lookup(const struct file_range *fr, unsigned gen, struct scan *sc)
{
	struct file_maps *f;
	bool hit = false;

	if (pthread_mutex_trylock(&cache_lock))
		return false;
	f = cache_find(fr);
	if (f && f->gen == gen) {
		memcpy(sc->m, f->m, sizeof(f->m[0]) * f->n);
		sc->n = f->n;
		hit = true;
	}
	pthread_mutex_unlock(&cache_lock);
	return hit;
}

static void cache_store(const struct file_range *fr, unsigned gen, const struct scan *sc)
{
	struct file_maps *f;

	if (sc->overflow || pthread_mutex_trylock(&cache_lock))
		return;
	f = cache_find(fr);
	if (!f)
		f = &cache[cache_next++ % CACHED_FILES];
	f->used = true;
	f->dev = fr->dev;
	f->ino = fr->ino;
	f->gen = gen;
	f->n = sc->n;
	memcpy(f->m, sc->m, sizeof(sc->m[0]) * sc->n);
	pthread_mutex_unlock(&cache_lock);
}

void shim_file_changed(int fd, uint64_t offset, uint64_t len)
{
	struct file_range fr;
	struct scan sc;
	struct stat st;
	int saved = errno;
	unsigned gen, i;

	if (!rt_memory_registered() || len == 0 || fstat(fd, &st) || !S_ISREG(st.st_mode))
		goto out;
	fr.dev = st.st_dev;
	fr.ino = st.st_ino;
	fr.start = offset;
	fr.end = len > UINT64_MAX - offset ? UINT64_MAX : offset + len;
	memset(&sc, 0, sizeof(sc));
	sc.fr = &fr;
	/* Read before the scan: a mapping made meanwhile makes the entry stale. */
	gen = __atomic_load_n(&maps_gen, __ATOMIC_ACQUIRE);
	if (cache_lookup(&fr, gen, &sc)) {
		for (i = 0; i < sc.n; i++)
			invalidate_mapping(&sc.m[i], &fr);
		goto out;
	}
	scan_maps(&sc);
	cache_store(&fr, gen, &sc);
out:
	errno = saved;
}

int64_t shim_file_size(int fd)
{
	struct stat st;
	int saved = errno;
	int64_t size = -1;

	if (rt_memory_registered() && !fstat(fd, &st) && S_ISREG(st.st_mode))
		size = st.st_size;
	errno = saved;
	return size;
}
