// SPDX-License-Identifier: MIT
/*
 * Memory the program unmaps, moves or discards may be registered: the pin
 * would keep the old pages and a later send would read stale data.  Drop
 * those registrations first.  Bytes already written from such memory are
 * safe either way: the pin keeps the pages they were written from.
 */
#include <stdarg.h>
#include <stddef.h>
#include <sys/mman.h>

#include "intercept.h"

MIGRDMA_EXPORT int munmap(void *addr, size_t len)
{
	shim_memory_unmapped(addr, len);
	return REAL(munmap)(addr, len);
}

MIGRDMA_EXPORT void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
	void *new_addr = NULL;
	va_list ap;

	if (flags & MREMAP_FIXED) {
		va_start(ap, flags);
		new_addr = va_arg(ap, void *);
		va_end(ap);
	}
	shim_memory_unmapped(old, old_len);
	if (new_addr)
		shim_memory_unmapped(new_addr, new_len);
	return REAL(mremap)(old, old_len, new_len, flags, new_addr);
}

MIGRDMA_EXPORT int madvise(void *addr, size_t len, int advice)
{
	if (advice == MADV_DONTNEED || advice == MADV_REMOVE || advice == MADV_FREE)
		shim_memory_changed(addr, len);
	/* QEMU marks guest RAM MADV_DONTFORK: writes from it may complete later. */
	if (advice == MADV_DONTFORK || advice == MADV_DOFORK)
		shim_memory_advised(addr, len, advice);
	return REAL(madvise)(addr, len, advice);
}
