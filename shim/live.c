// SPDX-License-Identifier: MIT
#include "live.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/log.h"
#include "common/real.h"
#include "rdma/transport.h"
#include "stats.h"

static struct live_file *live;
static pid_t live_owner;
static char live_path[64];

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void live_tick(void *arg)
{
	static struct rt_conn_info info[LIVE_MAX_CONNS];
	struct live_file *f = arg;
	size_t pinned, peak;
	unsigned n, i;

	n = rt_snapshot(info, LIVE_MAX_CONNS);
	rt_pinned_bytes(&pinned, &peak);
	__atomic_add_fetch(&f->seq, 1, __ATOMIC_ACQ_REL);
	for (i = 0; i < n; i++) {
		struct live_conn *c = &f->conns[i];

		c->id = info[i].id;
		c->is_server = info[i].is_server;
		snprintf(c->state, sizeof(c->state), "%s", info[i].state);
		addr_format(&info[i].local, c->local, sizeof(c->local));
		addr_format(&info[i].peer, c->peer, sizeof(c->peer));
		c->bytes_out = info[i].stats.bytes_out;
		c->bytes_in = info[i].stats.bytes_in;
		c->bytes_out_zerocopy = info[i].stats.bytes_out_zerocopy;
		c->bytes_out_send = info[i].stats.bytes_out_send;
		c->registrations = info[i].stats.registrations;
		c->age_ms = info[i].age_ms;
	}
	f->nconns = n;
	f->pinned_now = pinned;
	f->pinned_peak = peak;
	f->updated_ms = now_ms();
	__atomic_add_fetch(&f->seq, 1, __ATOMIC_ACQ_REL);
}

void live_start(void)
{
	struct live_file *f;
	int fd;

	if (live)
		return;
	snprintf(live_path, sizeof(live_path), LIVE_DIR "/" LIVE_PREFIX "%d", (int)getpid());
	fd = open(live_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		log_info(0, "no live statistics for migrdma stat: cannot create %s: %m", live_path);
		return;
	}
	if (REAL(ftruncate)(fd, sizeof(*f))) {
		log_info(0, "no live statistics: cannot size %s: %m", live_path);
		goto fail;
	}
	f = REAL(mmap)(NULL, sizeof(*f), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (f == MAP_FAILED)
		goto fail;
	REAL(close)(fd);
	memcpy(f->magic, LIVE_MAGIC, sizeof(f->magic));
	f->version = LIVE_VERSION;
	f->pid = (uint64_t)getpid();
	live = f;
	live_owner = getpid();
	rt_set_tick(live_tick, f);
	return;
fail:
	REAL(close)(fd);
	unlink(live_path);
}

void live_stop(void)
{
	if (!live || getpid() != live_owner)
		return;
	rt_set_tick(NULL, NULL);
	unlink(live_path);
}
