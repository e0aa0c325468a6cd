// SPDX-License-Identifier: MIT
/*
 * test-stat-writer: writes a synthetic live statistics file (shim/live.h)
 * for tools/test-stat.sh, the way shim/live.c does: through a shared
 * mapping, with `seq` odd while the fields change.
 *
 *   test-stat-writer PATH --new PID [FIELD=VALUE]...
 *   test-stat-writer PATH [FIELD=VALUE]...
 *
 * --new starts a fresh file: zeroes, the magic, the version, the pid, and
 * updated_ms = now.  FIELDs are the struct live_file members (magic,
 * version, nconns, pid, seq, updated_ms, pinned_now, pinned_peak, size),
 * and cN.MEMBER for connection N's struct live_conn members.  VALUE is a
 * number, a string for the text fields, "now" (CLOCK_MONOTONIC ms) or +N to
 * add N to the current value.  "size=N" truncates the file to N bytes after
 * everything else.  Unless seq= is given, seq goes up by one before and
 * after the changes, as the real writer does.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "shim/live.h"

struct field {
	const char *name;
	size_t off;
	size_t size;		/* 4 or 8 for numbers */
	int text;		/* a char array of `size` bytes */
};

#define NUM(s, m) { #m, offsetof(struct s, m), sizeof(((struct s *)0)->m), 0 }
#define TEXT(s, m) { #m, offsetof(struct s, m), sizeof(((struct s *)0)->m), 1 }

static const struct field file_fields[] = {
	TEXT(live_file, magic), NUM(live_file, version), NUM(live_file, nconns),
	NUM(live_file, pid), NUM(live_file, seq), NUM(live_file, updated_ms),
	NUM(live_file, pinned_now), NUM(live_file, pinned_peak),
};

static const struct field conn_fields[] = {
	NUM(live_conn, id), NUM(live_conn, is_server), TEXT(live_conn, state),
	TEXT(live_conn, local), TEXT(live_conn, peer), NUM(live_conn, bytes_out),
	NUM(live_conn, bytes_in), NUM(live_conn, bytes_out_zerocopy),
	NUM(live_conn, bytes_out_send), NUM(live_conn, registrations),
	NUM(live_conn, age_ms),
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const struct field *lookup(const struct field *t, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!strcmp(t[i].name, name))
			return &t[i];
	}
	return NULL;
}

static int set_field(char *base, const struct field *fl, const char *value)
{
	uint64_t v, cur;
	uint32_t v32;
	char *end;

	if (fl->text) {
		memset(base + fl->off, 0, fl->size);
		memcpy(base + fl->off, value, strnlen(value, fl->size));
		return 0;
	}
	if (fl->size == 4) {
		memcpy(&v32, base + fl->off, 4);
		cur = v32;
	} else {
		memcpy(&cur, base + fl->off, 8);
	}
	if (!strcmp(value, "now")) {
		v = now_ms();
	} else {
		errno = 0;
		v = strtoull(value + (*value == '+'), &end, 10);
		if (errno || !*value || *end)
			return -1;
		if (*value == '+')
			v += cur;
	}
	if (fl->size == 4) {
		v32 = (uint32_t)v;
		memcpy(base + fl->off, &v32, 4);
	} else {
		memcpy(base + fl->off, &v, 8);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct live_file *f;
	const struct field *fl;
	long long size = -1;
	int fd, i, first = 2, bump = 1, ret = 1;

	if (argc < 2) {
		fprintf(stderr, "usage: test-stat-writer PATH [--new PID] [FIELD=VALUE]...\n");
		return 2;
	}
	for (i = 2; i < argc; i++) {
		if (!strncmp(argv[i], "seq=", 4))
			bump = 0;
	}
	fd = open(argv[1], O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	if (ftruncate(fd, sizeof(*f)) < 0) {
		perror("ftruncate");
		goto out;
	}
	f = mmap(NULL, sizeof(*f), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (f == MAP_FAILED) {
		perror("mmap");
		goto out;
	}
	if (argc > 3 && !strcmp(argv[2], "--new")) {
		memset(f, 0, sizeof(*f));
		memcpy(f->magic, LIVE_MAGIC, sizeof(f->magic));
		f->version = LIVE_VERSION;
		f->pid = strtoull(argv[3], NULL, 10);
		f->updated_ms = now_ms();
		first = 4;
	}
	if (bump)
		__atomic_add_fetch(&f->seq, 1, __ATOMIC_ACQ_REL);
	for (i = first; i < argc; i++) {
		char name[64], *eq = strchr(argv[i], '=');
		char *base = (char *)f;
		const char *member;
		unsigned long n;

		if (!eq || (size_t)(eq - argv[i]) >= sizeof(name)) {
			fprintf(stderr, "test-stat-writer: bad argument '%s'\n", argv[i]);
			goto unmap;
		}
		memcpy(name, argv[i], eq - argv[i]);
		name[eq - argv[i]] = '\0';
		if (!strcmp(name, "size")) {
			size = strtoll(eq + 1, NULL, 10);
			continue;
		}
		if (name[0] == 'c' && sscanf(name, "c%lu.", &n) == 1 && strchr(name, '.')) {
			member = strchr(name, '.') + 1;
			fl = lookup(conn_fields, sizeof(conn_fields) / sizeof(conn_fields[0]), member);
			if (n >= LIVE_MAX_CONNS || !fl) {
				fprintf(stderr, "test-stat-writer: unknown field '%s'\n", name);
				goto unmap;
			}
			base = (char *)&f->conns[n];
		} else {
			fl = lookup(file_fields, sizeof(file_fields) / sizeof(file_fields[0]), name);
			if (!fl) {
				fprintf(stderr, "test-stat-writer: unknown field '%s'\n", name);
				goto unmap;
			}
		}
		if (set_field(base, fl, eq + 1) < 0) {
			fprintf(stderr, "test-stat-writer: bad value in '%s'\n", argv[i]);
			goto unmap;
		}
	}
	if (bump)
		__atomic_add_fetch(&f->seq, 1, __ATOMIC_ACQ_REL);
	ret = 0;
unmap:
	munmap(f, sizeof(*f));
	if (!ret && size >= 0 && ftruncate(fd, size) < 0) {
		perror("ftruncate");
		ret = 1;
	}
out:
	close(fd);
	return ret;
}
