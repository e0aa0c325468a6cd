// SPDX-License-Identifier: MIT
/*
 * The library's life: read the configuration once, decide whether to be
 * active, start logging and crash backtraces, and keep fork safe.
 * The transport itself starts only when a socket is first diverted, so a
 * preloaded process that never touches a matching address costs nothing.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

#include "backtrace.h"
#include "config.h"
#include "init.h"
#include "live.h"
#include "common/log.h"
#include "common/real.h"
#include "rdma/transport.h"
#include "shim.h"

/*
 * SHIM_REFUSING: MIGRDMA_TARGETS is valid but another variable is not, and
 * no explicit MIGRDMA_FALLBACK=tcp allows plain TCP, so matched sockets are
 * refused (fail closed) and nothing else is touched.
 */
enum shim_state { SHIM_UNINIT = 0, SHIM_INERT = 1, SHIM_ACTIVE = 2, SHIM_REFUSING = 3 };

#ifndef MIGRDMA_VERSION
#error "MIGRDMA_VERSION must come from CMake's project(VERSION)"
#endif

/*
 * A what(1)-style marker: `migrdma doctor` and `strings | grep` find the
 * version of a library file without loading it.
 */
static const char migrdma_ident[] __attribute__((used)) = "@(#)migrdma " MIGRDMA_VERSION;

static int shim_state;			/* atomic enum shim_state */
static pthread_once_t shim_once = PTHREAD_ONCE_INIT;
static __thread int in_init;
static struct migrdma_config shim_cfg;
static bool transport_started;
static pthread_mutex_t transport_lock = PTHREAD_MUTEX_INITIALIZER;

const struct migrdma_config *shim_config(void)
{
	return &shim_cfg;
}

static void mark_internal(int fd, void *arg)
{
	(void)arg;
	if (fd >= 0)
		fdtable_mark_internal(fd, true);
}

void shim_mark_transport_fds(void)
{
	rt_for_each_internal_fd(mark_internal, NULL);
	if (log_fd() > 2)
		fdtable_mark_internal(log_fd(), true);
}

void init_atfork_prepare(void)
{
	pthread_mutex_lock(&transport_lock);
}

void init_atfork_parent(void)
{
	pthread_mutex_unlock(&transport_lock);
}

/* The child shares nothing live with the parent's transport. */
void init_atfork_child(void)
{
	transport_started = false;
	pthread_mutex_unlock(&transport_lock);
}

const char *shim_version(void)
{
	return migrdma_ident + 12;
}

/* Warn about each MIGRDMA_* name that is no variable of ours (a typo). */
static unsigned check_names(bool report)
{
	char msg[256];
	unsigned n = 0;
	char **e;

	for (e = environ; e && *e; e++) {
		if (!config_unknown_name(*e, msg, sizeof(msg)))
			continue;
		n++;
		if (report)
			log_warn(0, "%s", msg);
	}
	return n;
}

/* Stay out of the way for good: drop the log file opened to say why. */
static void become_inert(void)
{
	shim_cfg.log_file[0] = '\0';
	log_init(shim_cfg.log_level, shim_cfg.log_file);
	__atomic_store_n(&shim_state, SHIM_INERT, __ATOMIC_RELEASE);
}

static void do_init(void)
{
	char err[256];
	bool bad;
	int saved = errno;

	in_init = 1;
	real_resolve();
	bad = config_load(&shim_cfg, NULL, err, sizeof(err)) != 0;
	if (shim_cfg.disabled ||
	    (!bad && shim_cfg.nrules == 0 && !check_names(false))) {
		__atomic_store_n(&shim_state, SHIM_INERT, __ATOMIC_RELEASE);
		goto out;
	}
	/* Errors go where the log goes: the valid MIGRDMA_LOG_FILE, if any. */
	log_init(shim_cfg.log_level, shim_cfg.log_file);
	check_names(true);
	if (bad) {
		const char *more = shim_cfg.bad_vars > 1 ? " (and more bad MIGRDMA_* variables)" : "";

		if (shim_cfg.nrules == 0) {
			mlog(LOG_LEVEL_ERROR, 0, "%s%s; migrdma stays inert", err, more);
			become_inert();
		} else if (shim_cfg.fallback == FALLBACK_TCP) {
			mlog(LOG_LEVEL_ERROR, 0, "%s%s; connections matching MIGRDMA_TARGETS use plain "
			     "TCP, as MIGRDMA_FALLBACK=tcp allows", err, more);
			become_inert();
		} else {
			mlog(LOG_LEVEL_ERROR, 0, "%s%s; connections matching MIGRDMA_TARGETS are refused "
			     "until it is fixed (only MIGRDMA_FALLBACK=tcp would let them use plain TCP)",
			     err, more);
			if (log_fd() > 2)
				fdtable_mark_internal(log_fd(), true);
			__atomic_store_n(&shim_state, SHIM_REFUSING, __ATOMIC_RELEASE);
		}
		goto out;
	}
	if (shim_cfg.nrules == 0) {
		become_inert();
		goto out;
	}
	backtrace_install();
	shim_install_fork_handlers();
	log_info(0, "migrdma %s active: %zu target rule(s), fallback %s", shim_version(),
		 shim_cfg.nrules, shim_cfg.fallback == FALLBACK_TCP ? "tcp" : "none");
	__atomic_store_n(&shim_state, SHIM_ACTIVE, __ATOMIC_RELEASE);
out:
	in_init = 0;
	errno = saved;
}

bool shim_refusing(const struct sockaddr *addr, socklen_t len)
{
	shim_active();
	return __atomic_load_n(&shim_state, __ATOMIC_ACQUIRE) == SHIM_REFUSING &&
	       (!addr || config_match(&shim_cfg, addr, len));
}

bool shim_active(void)
{
	int st = __atomic_load_n(&shim_state, __ATOMIC_ACQUIRE);

	if (st != SHIM_UNINIT)
		return st == SHIM_ACTIVE;
	/* Our own start-up calls interposed functions: they must pass through. */
	if (in_init)
		return false;
	pthread_once(&shim_once, do_init);
	return __atomic_load_n(&shim_state, __ATOMIC_ACQUIRE) == SHIM_ACTIVE;
}

static bool allow_peer(const struct sockaddr *peer)
{
	return config_allowed(&shim_cfg, peer);
}

int shim_start_transport(void)
{
	struct rt_options opts;
	int ret = 0;

	pthread_mutex_lock(&transport_lock);
	if (transport_started)
		goto out;
	opts.zcopy_min = shim_cfg.zcopy_min;
	opts.chunk = shim_cfg.chunk;
	opts.pin_limit = shim_cfg.pin_limit;
	opts.ring_size = shim_cfg.ring_size;
	opts.backlog = shim_cfg.backlog;
	opts.busy_poll_us = shim_cfg.busy_poll_us;
	opts.connect_timeout_ms = shim_cfg.connect_timeout_ms;
	opts.keepalive_s = shim_cfg.keepalive_s;
	opts.ack_timeout = shim_cfg.ack_timeout;
	opts.secret = shim_cfg.secret_len ? shim_cfg.secret : NULL;
	opts.secret_len = shim_cfg.secret_len;
	opts.pin_all = shim_cfg.pin_all;
	opts.defer = shim_cfg.defer == DEFER_OFF ? RT_DEFER_OFF :
		     shim_cfg.defer == DEFER_ALL ? RT_DEFER_ALL : RT_DEFER_AUTO;
	opts.allow_peer = shim_cfg.nallow ? allow_peer : NULL;
	ret = rt_init(&opts);
	if (ret == 0) {
		transport_started = true;
		shim_mark_transport_fds();
		if (shim_cfg.live)
			live_start();
	}
out:
	pthread_mutex_unlock(&transport_lock);
	return ret;
}

__attribute__((constructor)) static void migrdma_constructor(void)
{
	shim_active();
}

__attribute__((destructor)) static void migrdma_destructor(void)
{
	if (transport_started) {
		live_stop();
		rt_quiesce_at_exit(2000);
	}
}
