// SPDX-License-Identifier: MIT
/*
 * Memory the program unmaps, moves, maps over, discards or makes writable
 * may be registered: the pin would keep the old pages and a later send
 * would read stale data.  Drop those registrations once the real call has
 * returned: another thread's send may have registered the range again
 * while the call was under way.  Bytes already written from such memory
 * are safe either way: the pin keeps the pages they were written from.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/types.h>

#include "intercept.h"

#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED 24
#endif

/* Drop registrations over [addr, addr+len) without touching errno. */
static void changed(const void *addr, size_t len)
{
	int saved = errno;

	shim_memory_changed(addr, len);
	errno = saved;
}

MIGRDMA_EXPORT int munmap(void *addr, size_t len)
{
	int ret;

	shim_memory_unmapped(addr, len);
	ret = REAL(munmap)(addr, len);
	changed(addr, len);
	shim_maps_changed();
	return ret;
}

MIGRDMA_EXPORT void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
	void *new_addr = NULL, *ret;
	va_list ap;

	if (flags & MREMAP_FIXED) {
		va_start(ap, flags);
		new_addr = va_arg(ap, void *);
		va_end(ap);
	}
	shim_memory_unmapped(old, old_len);
	if (new_addr)
		shim_memory_unmapped(new_addr, new_len);
	ret = REAL(mremap)(old, old_len, new_len, flags, new_addr);
	shim_maps_changed();
	changed(old, old_len);
	if (ret != MAP_FAILED)
		changed(ret, new_len);
	return ret;
}

static int discards(int advice)
{
	return advice == MADV_DONTNEED || advice == MADV_REMOVE || advice == MADV_FREE ||
	       advice == MADV_DONTNEED_LOCKED;
}

MIGRDMA_EXPORT int madvise(void *addr, size_t len, int advice)
{
	int ret;

	/* QEMU marks guest RAM MADV_DONTFORK: writes from it may complete later. */
	if (advice == MADV_DONTFORK || advice == MADV_DOFORK)
		shim_memory_advised(addr, len, advice);
	ret = REAL(madvise)(addr, len, advice);
	if (discards(advice))
		changed(addr, len);
	return ret;
}

/*
 * MAP_FIXED replaces whatever was mapped there.  Programs built with
 * _FILE_OFFSET_BITS=64, QEMU among them, call the ...64 names; on LP64
 * the two take the same arguments, so each pair shares one body.
 */
static void *map_with(void *(*real_mmap)(void *, size_t, int, int, int, off_t), void *addr,
		      size_t len, int prot, int flags, int fd, off_t off)
{
	void *ret = real_mmap(addr, len, prot, flags, fd, off);

	shim_maps_changed();
	if ((flags & MAP_FIXED) && ret != MAP_FAILED)
		changed(ret, len);
	return ret;
}

MIGRDMA_EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return map_with(REAL(mmap), addr, len, prot, flags, fd, off);
}

MIGRDMA_EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return map_with(REAL(mmap64), addr, len, prot, flags, fd, off);
}

/*
 * A page pinned while it was read-only may be a shared one that the next
 * write replaces with a private copy.
 */
MIGRDMA_EXPORT int mprotect(void *addr, size_t len, int prot)
{
	int ret = REAL(mprotect)(addr, len, prot);

	if (!ret && (prot & PROT_WRITE))
		changed(addr, len);
	return ret;
}

/* hugetlbfs-backed RAM is discarded through its file alone. */
static int allocate_with(int (*real_fallocate)(int, int, off_t, off_t), int fd, int mode,
			 off_t off, off_t len)
{
	int ret = real_fallocate(fd, mode, off, len);

	if (ret || off < 0 || len <= 0)
		return ret;
	if (mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE))
		shim_file_changed(fd, (uint64_t)off, UINT64_MAX);	/* the rest moves */
	else if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
		shim_file_changed(fd, (uint64_t)off, (uint64_t)len);
	return ret;
}

MIGRDMA_EXPORT int fallocate(int fd, int mode, off_t off, off_t len)
{
	return allocate_with(REAL(fallocate), fd, mode, off, len);
}

MIGRDMA_EXPORT int fallocate64(int fd, int mode, off_t off, off_t len)
{
	return allocate_with(REAL(fallocate64), fd, mode, off, len);
}

static int truncate_with(int (*real_ftruncate)(int, off_t), int fd, off_t len)
{
	int64_t old = len >= 0 ? shim_file_size(fd) : -1;
	int ret = real_ftruncate(fd, len);

	if (!ret && old > len)
		shim_file_changed(fd, (uint64_t)len, (uint64_t)(old - len));
	return ret;
}

MIGRDMA_EXPORT int ftruncate(int fd, off_t len)
{
	return truncate_with(REAL(ftruncate), fd, len);
}

MIGRDMA_EXPORT int ftruncate64(int fd, off_t len)
{
	return truncate_with(REAL(ftruncate64), fd, len);
}
