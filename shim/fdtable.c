// SPDX-License-Identifier: MIT
#include "fdtable.h"

#include "common/real.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#define PAGE_SHIFT_FDS 10
#define PAGE_FDS (1 << PAGE_SHIFT_FDS)
#define NPAGES (FDTABLE_MAX_FD / PAGE_FDS)

struct fd_slot {
	void *obj;		/* atomic */
	unsigned char internal;	/* atomic */
};

static struct fd_slot *pages[NPAGES];	/* atomic pointers */

static struct fd_slot *page_of(int fd, bool create)
{
	struct fd_slot *p, *fresh;

	if (fd < 0 || fd >= FDTABLE_MAX_FD)
		return NULL;
	p = __atomic_load_n(&pages[fd >> PAGE_SHIFT_FDS], __ATOMIC_ACQUIRE);
	if (p || !create)
		return p;
	/* mmap, not malloc: this may run inside a malloc-free context. */
	fresh = REAL(mmap)(NULL, sizeof(struct fd_slot) * PAGE_FDS, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (fresh == MAP_FAILED)
		return NULL;
	if (!__atomic_compare_exchange_n(&pages[fd >> PAGE_SHIFT_FDS], &p, fresh, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		REAL(munmap)(fresh, sizeof(struct fd_slot) * PAGE_FDS);
		return p;
	}
	return fresh;
}

void *fdtable_get(int fd)
{
	struct fd_slot *p = page_of(fd, false);

	return p ? __atomic_load_n(&p[fd & (PAGE_FDS - 1)].obj, __ATOMIC_ACQUIRE) : NULL;
}

void *fdtable_set(int fd, void *obj)
{
	struct fd_slot *p = page_of(fd, obj != NULL);

	if (!p)
		return NULL;
	return __atomic_exchange_n(&p[fd & (PAGE_FDS - 1)].obj, obj, __ATOMIC_ACQ_REL);
}

bool fdtable_is_internal(int fd)
{
	struct fd_slot *p = page_of(fd, false);

	return p && __atomic_load_n(&p[fd & (PAGE_FDS - 1)].internal, __ATOMIC_ACQUIRE);
}

int fdtable_mark_internal(int fd, bool internal)
{
	struct fd_slot *p = page_of(fd, internal);

	if (!p)
		return internal ? -1 : 0;
	__atomic_store_n(&p[fd & (PAGE_FDS - 1)].internal, internal, __ATOMIC_RELEASE);
	return 0;
}

int fdtable_next(int from, int last, bool want_internal)
{
	int fd = from < 0 ? 0 : from;

	if (last >= FDTABLE_MAX_FD)
		last = FDTABLE_MAX_FD - 1;
	while (fd <= last) {
		struct fd_slot *p = page_of(fd, false);
		int end;

		if (!p) {
			/* A whole missing page holds nothing: skip it. */
			fd = (fd | (PAGE_FDS - 1)) + 1;
			continue;
		}
		end = fd | (PAGE_FDS - 1);
		if (end > last)
			end = last;
		for (; fd <= end; fd++) {
			struct fd_slot *s = &p[fd & (PAGE_FDS - 1)];

			if (want_internal ? __atomic_load_n(&s->internal, __ATOMIC_ACQUIRE)
					  : __atomic_load_n(&s->obj, __ATOMIC_ACQUIRE) != NULL)
				return fd;
		}
	}
	return -1;
}

void fdtable_reset(void)
{
	int i;

	for (i = 0; i < NPAGES; i++) {
		struct fd_slot *p = __atomic_exchange_n(&pages[i], NULL, __ATOMIC_ACQ_REL);

		if (p)
			REAL(munmap)(p, sizeof(struct fd_slot) * PAGE_FDS);
	}
}
