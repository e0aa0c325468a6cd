/* SPDX-License-Identifier: MIT */
/*
 * The doorbell: a socketpair whose one end the program holds in place of
 * its TCP socket.  migrdma drives that end's readiness, so ppoll, poll,
 * select, epoll and io_uring all see a diverted connection correctly
 * without being interposed:
 *   readable  - a byte waits in the program's end (one more per arrival
 *               the transport reports, so edge-triggered waiters see every
 *               new batch), taken away once a read finds nothing more;
 *   writable  - our end's receive queue is empty; to make the program's end
 *               unwritable we fill it with filler from the program's side;
 *   hang-up   - our end is shut down, which the kernel reports as POLLHUP.
 */
#ifndef MIGRDMA_SHIM_DOORBELL_H
#define MIGRDMA_SHIM_DOORBELL_H

#include <stdbool.h>

struct doorbell {
	int app_fd;		/* our internal duplicate of the program's end */
	int our_fd;		/* the other end */
	bool readable;
	unsigned rings;		/* bytes rung since the last drain */
	bool writable;
	bool rdhup;
	bool hup;
};

/*
 * Create a doorbell, initially neither readable nor writable.  The
 * program's end is placed at target_fd (atomically replacing what was
 * there) or, with target_fd -1, at a new fd; it is returned in
 * *program_fd with O_NONBLOCK and FD_CLOEXEC as asked.  Both internal fds
 * are close-on-exec and marked internal.
 */
int doorbell_create(struct doorbell *db, int target_fd, bool nonblock, bool cloexec,
		    int *program_fd);

/* Make the program's end show exactly these RT_EV_* events. */
void doorbell_set(struct doorbell *db, unsigned events);

void doorbell_destroy(struct doorbell *db);

#endif
