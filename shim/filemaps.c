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

/* One line of /proc/self/maps: drop what it maps of the range. */
static void invalidate_line(const char *line, const struct file_range *fr)
{
	uint64_t lo, hi, pgoff, ino, from, to;
	unsigned maj, min;
	char perms[8];

	if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %" SCNx64 " %x:%x %" SCNu64,
		   &lo, &hi, perms, &pgoff, &maj, &min, &ino) != 7)
		return;
	if (ino != (uint64_t)fr->ino || makedev(maj, min) != fr->dev || hi <= lo)
		return;
	from = fr->start > pgoff ? fr->start : pgoff;
	to = hi - lo > UINT64_MAX - pgoff ? UINT64_MAX : pgoff + (hi - lo);
	if (fr->end < to)
		to = fr->end;
	if (from >= to)
		return;
	rt_invalidate_memory((const void *)(uintptr_t)(lo + (from - pgoff)), (size_t)(to - from));
}

static void scan_maps(const struct file_range *fr)
{
	char buf[8192];
	size_t have = 0;
	ssize_t n;
	int fd;

	fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
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
			invalidate_line(line, fr);
			line = nl + 1;
		}
		have -= (size_t)(line - buf);
		memmove(buf, line, have);
		/* No line is this long; drop it rather than stall. */
		if (have == sizeof(buf) - 1)
			have = 0;
	}
	if (have) {
		buf[have] = '\0';
		invalidate_line(buf, fr);
	}
	REAL(close)(fd);
}

void shim_file_changed(int fd, uint64_t offset, uint64_t len)
{
	struct file_range fr;
	struct stat st;
	int saved = errno;

	if (!rt_memory_registered() || len == 0 || fstat(fd, &st) || !S_ISREG(st.st_mode))
		goto out;
	fr.dev = st.st_dev;
	fr.ino = st.st_ino;
	fr.start = offset;
	fr.end = len > UINT64_MAX - offset ? UINT64_MAX : offset + len;
	scan_maps(&fr);
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
