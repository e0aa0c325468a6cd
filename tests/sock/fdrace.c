// SPDX-License-Identifier: MIT
/*
 * connect_close: one thread is in a blocking connect() while another
 * closes that fd and gets a new file at the same number.  That is a
 * program bug, but the kernel survives it: its connect works on the
 * socket it was called on, and the new file is left alone.  A transport
 * that swaps its own fd in where the program's socket was once the
 * connection is up must check that the number is still that socket, or it
 * replaces the unrelated file.
 *
 * Regression: through libmigrdma, connect waited for the RDMA connection
 * and then dup3'd its doorbell over the fd, whatever it had become.
 *
 * To hold the connect open long enough, the server stops itself (SIGSTOP)
 * and a child of its continues it 2 s later.  A kernel TCP connect is done
 * by then anyway (the kernel completes the handshake for a stopped
 * listener); an RDMA one waits for the server's library to accept it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sockcheck.h"

#define FDRACE_STOP_MS		2000
#define FDRACE_CONNECT_AFTER_MS	300
#define FDRACE_CLOSE_AFTER_MS	300

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

int connect_close_server(struct sc_ctx *ctx)
{
	int ctl, fd, status;
	pid_t waker;

	ctl = sc_accept(ctx->lfd);
	sc_recv_token(ctl, 's', "stop request");
	waker = fork();
	if (waker < 0)
		sc_fail_errno("fork");
	if (waker == 0) {
		sleep_ms(FDRACE_STOP_MS);
		kill(getppid(), SIGCONT);
		_exit(0);
	}
	sc_send_token(ctl, 'S');
	/* The client connects while this process is stopped. */
	raise(SIGSTOP);
	sc_progress();
	sc_step("accept the connection whose fd the client closed");
	fd = sc_accept(ctx->lfd);
	sc_expect_eof(fd, "connection whose fd was closed while it connected");
	close(fd);
	sc_recv_token(ctl, 'd', "client done");
	sc_send_token(ctl, 'k');
	sc_expect_eof(ctl, "control connection");
	close(ctl);
	while (waitpid(waker, &status, 0) < 0 && errno == EINTR)
		;
	return 0;
}

struct fdrace_connect {
	const struct sc_ctx *ctx;
	int fd;
	int ret;
	int err;
	bool done;
	pthread_mutex_t lock;
};

static void *fdrace_connect_thread(void *arg)
{
	struct fdrace_connect *fc = arg;
	struct sockaddr_in sin = fc->ctx->addr;
	int ret, err;

	ret = connect(fc->fd, (struct sockaddr *)&sin, sizeof(sin));
	err = errno;
	pthread_mutex_lock(&fc->lock);
	fc->ret = ret;
	fc->err = err;
	fc->done = true;
	pthread_mutex_unlock(&fc->lock);
	return NULL;
}

/* Put /dev/null at fd (closing the socket there); returns its device number. */
static dev_t replace_with_devnull(int fd)
{
	struct stat st;
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (null < 0 || fstat(null, &st))
		sc_fail_errno("open /dev/null");
	if (dup2(null, fd) != fd)
		sc_fail_errno("dup2(/dev/null, %d)", fd);
	close(null);
	return st.st_rdev;
}

int connect_close_client(struct sc_ctx *ctx)
{
	struct fdrace_connect fc = { .ctx = ctx, .lock = PTHREAD_MUTEX_INITIALIZER };
	struct stat st;
	pthread_t t;
	bool done_early;
	dev_t null_rdev;
	int ctl;

	ctl = sc_connect(ctx);
	sc_send_token(ctl, 's');
	sc_recv_token(ctl, 'S', "server stopping");
	sleep_ms(FDRACE_CONNECT_AFTER_MS);

	sc_step("connect in one thread, close its fd in another");
	fc.fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fc.fd < 0)
		sc_fail_errno("socket");
	if (pthread_create(&t, NULL, fdrace_connect_thread, &fc))
		sc_fail("pthread_create failed");
	sleep_ms(FDRACE_CLOSE_AFTER_MS);
	pthread_mutex_lock(&fc.lock);
	done_early = fc.done;
	pthread_mutex_unlock(&fc.lock);
	null_rdev = replace_with_devnull(fc.fd);
	pthread_join(t, NULL);
	sc_progress();

	if (fstat(fc.fd, &st))
		sc_fail_errno("fstat(%d) after connect returned", fc.fd);
	if (!S_ISCHR(st.st_mode) || st.st_rdev != null_rdev)
		sc_fail("connect replaced fd %d, which the program had closed and reopened as "
			"/dev/null while connect waited", fc.fd);
	if (sc_expect_rdma()) {
		/* Over RDMA the connect must really have raced the close. */
		if (done_early)
			sc_fail("connect returned within %d ms although the server was stopped",
				FDRACE_CLOSE_AFTER_MS);
		if (fc.ret != -1 || fc.err != EBADF)
			sc_fail("connect on a closed fd returned %d (%s), want -1 EBADF", fc.ret,
				fc.ret ? strerror(fc.err) : "no error");
	}
	sc_info("connect returned %d%s%s; fd %d is still /dev/null", fc.ret,
		fc.ret ? " " : "", fc.ret ? strerror(fc.err) : "", fc.fd);
	close(fc.fd);

	sc_send_token(ctl, 'd');
	sc_recv_token(ctl, 'k', "server done");
	close(ctl);
	return 0;
}
