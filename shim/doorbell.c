// SPDX-License-Identifier: MIT
#include "doorbell.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdtable.h"
#include "common/real.h"
#include "rdma/transport.h"

/* One call empties it as a rule: rings are one byte each, filler a few KiB. */
static void drain(int fd)
{
	char buf[16384];

	while (REAL(recv)(fd, buf, sizeof(buf), MSG_DONTWAIT) == (ssize_t)sizeof(buf))
		;
}

/* Write from the program's end until the kernel says it is full. */
static void fill(int fd)
{
	static const char zeros[4096];

	while (REAL(send)(fd, zeros, sizeof(zeros), MSG_DONTWAIT | MSG_NOSIGNAL) > 0)
		;
}

int doorbell_create(struct doorbell *db, int target_fd, bool nonblock, bool cloexec,
		    int *program_fd)
{
	int sv[2], small = 1, fd;

	if (REAL(socketpair)(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -errno;
	/* The smallest send buffer makes "unwritable" cost a few KiB of filler. */
	REAL(setsockopt)(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	if (target_fd >= 0)
		fd = REAL(dup3)(sv[0], target_fd, cloexec ? O_CLOEXEC : 0);
	else
		fd = REAL(fcntl)(sv[0], cloexec ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
	if (fd < 0) {
		int err = errno;

		REAL(close)(sv[0]);
		REAL(close)(sv[1]);
		return -err;
	}
	if (nonblock)
		REAL(fcntl)(fd, F_SETFL, REAL(fcntl)(fd, F_GETFL) | O_NONBLOCK);
	else
		REAL(fcntl)(fd, F_SETFL, REAL(fcntl)(fd, F_GETFL) & ~O_NONBLOCK);
	db->app_fd = sv[0];
	db->our_fd = sv[1];
	db->readable = false;
	db->rings = 0;
	db->writable = false;
	db->rdhup = false;
	db->hup = false;
	fdtable_mark_internal(sv[0], true);
	fdtable_mark_internal(sv[1], true);
	fill(db->app_fd);
	*program_fd = fd;
	return 0;
}

/* The program's end reports POLLHUP (and POLLIN, POLLRDHUP) from now on. */
static void hang_up(struct doorbell *db)
{
	drain(db->our_fd);
	REAL(shutdown)(db->our_fd, SHUT_RDWR);
	db->hup = true;
}

/*
 * The program's end reports POLLERR too: a unix socket whose peer is
 * closed with bytes unread gets ECONNRESET as its pending error, which is
 * what poll shows for a TCP connection that failed.
 */
static void fail(struct doorbell *db)
{
	REAL(send)(db->app_fd, "!", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	fdtable_mark_internal(db->our_fd, false);
	REAL(close)(db->our_fd);
	db->our_fd = -1;
	db->hup = true;
}

void doorbell_set(struct doorbell *db, unsigned events)
{
	bool want_read = events & RT_EV_READABLE;
	bool want_write = events & RT_EV_WRITABLE;
	int saved = errno;

	if (db->hup)
		goto out;
	if (events & RT_EV_ERR) {
		fail(db);
		goto out;
	}
	if (events & RT_EV_HUP) {
		hang_up(db);
		goto out;
	}
	/*
	 * End-of-stream before any byte: a waiter woken by the byte must
	 * already see POLLRDHUP, as it would on a TCP socket.
	 */
	if ((events & RT_EV_RDHUP) && !db->rdhup) {
		REAL(shutdown)(db->our_fd, SHUT_WR);
		db->rdhup = true;
		db->readable = true;
	}
	/*
	 * One byte per arrival the transport reports (RT_EV_NEWDATA): each is
	 * a new edge for edge-triggered waiters.  The transport reports only
	 * arrivals nobody is reading yet, so a program that reads as fast as
	 * bytes come sees one byte per readable edge.
	 */
	if (want_read && !db->rdhup && (!db->readable || (events & RT_EV_NEWDATA))) {
		if (REAL(send)(db->our_fd, "!", 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1)
			db->rings++;
		db->readable = true;
	} else if (!want_read && db->readable && !db->rdhup) {
		drain(db->app_fd);
		db->readable = false;
		db->rings = 0;
	}
	if (want_write && !db->writable) {
		drain(db->our_fd);
		db->writable = true;
	} else if (!want_write && db->writable) {
		fill(db->app_fd);
		db->writable = false;
	}
out:
	errno = saved;
}

void doorbell_destroy(struct doorbell *db)
{
	if (db->app_fd >= 0) {
		fdtable_mark_internal(db->app_fd, false);
		REAL(close)(db->app_fd);
	}
	if (db->our_fd >= 0) {
		fdtable_mark_internal(db->our_fd, false);
		REAL(close)(db->our_fd);
	}
	db->app_fd = db->our_fd = -1;
}
