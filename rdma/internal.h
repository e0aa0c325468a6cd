/* SPDX-License-Identifier: MIT */
/* Transport internals shared by the files of rdma/. Not for other directories. */
#ifndef MIGRDMA_RDMA_INTERNAL_H
#define MIGRDMA_RDMA_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "credit.h"
#include "regcache.h"
#include "transport.h"
#include "wire.h"

#define RT_MSG_SIZE		(64u * 1024)	/* our largest SEND message */
#define RT_DATA_CREDITS		16u		/* DATA messages we let the peer have outstanding */
#define RT_CTRL_RECVS		8u		/* extra receives for control messages */
#define RT_TX_SLOTS		16u		/* DATA messages we keep in flight */
#define RT_CTRL_SLOTS		8u		/* control messages in flight */
#define RT_CTRL_BUF		64u
#define RT_MAX_WR_PER_MSG	8u		/* RDMA WRITEs before one DATA SEND */
#define RT_MAX_SGE		32u
#define RT_MAX_SEGS		2048u		/* segment descriptors in one DATA message */
#define RT_MAX_REFS		(RT_MAX_WR_PER_MSG * RT_MAX_SGE)
#define RT_SQ_DEPTH		(RT_TX_SLOTS * (RT_MAX_WR_PER_MSG + 1) + RT_CTRL_SLOTS)
#define RT_LINGER_MS		10000u		/* how long close waits for sends to drain */
/* How long a write that failed waits for the device to give its buffers back. */
#define RT_FLUSH_WAIT_MS	2000u
/* How often a listener whose device was removed tries to listen again. */
#define RT_RELISTEN_MS		1000u
/*
 * A write of at least this many bytes may leave its tail unposted so the
 * next write can join it (see send.c); smaller ones are posted at once,
 * since they are usually a request someone waits for.
 */
#define RT_HOLD_MIN_CALL	(16u * 1024)
/* Stop holding once a message carries this many bytes. */
#define RT_HOLD_TARGET		(2048u * 1024)
/*
 * A small write whose bytes were all copied is held only within a stream
 * of such writes (QEMU's TLS channel writes one record per call): more
 * than RT_STREAM_WRITES in a row with no read or other write in between,
 * none of them more than RT_STREAM_GAP_MS (coarse clock) after the one
 * before.  While one is held, or a bulk write under TCP_NODELAY, the
 * service thread looks every RT_HOLD_TICK_MS and posts it once no write
 * has added to it.
 */
#define RT_STREAM_WRITES	4u
#define RT_STREAM_GAP_MS	8u
#define RT_HOLD_TICK_MS		2
/* Without a signalled one among them, at most this many control messages are posted. */
#define RT_CTRL_SIGNAL_EVERY	8u

/* Work request ids: what completed, and which slot or sequence number. */
#define RT_WR_KIND_SHIFT	56
#define RT_WR_RECV		1ULL
#define RT_WR_DATA		2ULL
#define RT_WR_CTRL		3ULL

static inline uint64_t rt_wr_id(uint64_t kind, uint64_t value)
{
	return kind << RT_WR_KIND_SHIFT | value;
}

enum rt_obj_kind { RT_OBJ_CONN = 1, RT_OBJ_LISTENER = 2, RT_OBJ_WATCH = 3 };

enum conn_state {
	CS_RESOLVING_ADDR,
	CS_RESOLVING_ROUTE,
	CS_CONNECTING,		/* client: rdma_connect sent */
	CS_ACCEPTING,		/* server: rdma_accept sent, not yet established */
	CS_AUTHENTICATING,	/* connected; the MIGRDMA_SECRET proof is in flight */
	CS_ESTABLISHED,
	CS_FAILED,		/* connect failed or connection broken: see error */
	CS_DISCONNECTED,	/* the peer disconnected after a FIN */
};

struct rt_device {
	struct ibv_context *verbs;
	struct ibv_device_attr attr;
	bool removed;			/* verbs is closed: a new context may reuse its address */
	struct rt_device *next;
};

struct tx_slot {
	bool busy;
	unsigned nwr;			/* work requests this slot's message used */
	unsigned nrefs;
	struct regcache_entry *refs[RT_MAX_REFS];
	uint64_t seq;
	uint64_t ctrl_before;		/* control messages posted before this one */
};

/*
 * The DATA message being assembled.  It outlives the write that opened it
 * when that write is held back for the next one to join (send.c).
 */
struct tx_msg {
	bool open;
	bool must_wait;			/* holds program memory the program may reuse at once */
	struct tx_slot *slot;
	unsigned slot_idx;
	uint8_t *buf;
	uint32_t cap;			/* message capacity: the peer's message size */
	uint32_t inline_len;
	uint32_t ring_len;
	uint32_t ring_budget;		/* ring bytes granted for this message */
	uint32_t remote_off;		/* ring offset of the first ring byte */
	unsigned nseg;
	bool last_seg_ring;
	uint32_t segs[RT_MAX_SEGS];
	struct ibv_sge sge[RT_MAX_WR_PER_MSG][RT_MAX_SGE];
	unsigned nsge[RT_MAX_WR_PER_MSG];
	unsigned nwr;			/* WRITEs started (the last one may be filling) */
	uint64_t zcopy_bytes;
	uint64_t inline_bytes;
	unsigned registrations;
	uint64_t gen;			/* bumped whenever a write adds to it */
	/*
	 * What the service thread's last 100 ms tick saw, and its last fast
	 * tick: each compares with its own, or two looks in one pass would
	 * take a message just held for an idle one.
	 */
	uint64_t gen_seen_tick;
	uint64_t gen_seen_fast;
	bool fast_flush;		/* held, but watched by the fast tick: a small write, or TCP_NODELAY */
};

/*
 * Stream bytes a write handed over when the window was full (backlog.c),
 * in order: zero-copy ranges of program memory, each pinned by its own
 * registration reference, and copied bytes in the arena.
 */
struct tx_bl_item {
	uintptr_t addr;			/* program memory, or the arena for copied bytes */
	uint32_t len;
	uint32_t lkey;
	struct regcache_entry *entry;	/* the reference that pins it; NULL when copied */
};

struct tx_backlog {
	struct tx_bl_item *items;
	unsigned cap;
	unsigned head;			/* the next item to go into a message */
	unsigned tail;
	uint32_t head_off;		/* bytes of items[head] already in messages */
	uint8_t *arena;
	size_t arena_cap;
	size_t arena_used;
	size_t bytes;			/* stream bytes queued */
	size_t zcopy_bytes;		/* of them, program memory */
};

struct rx_msg {
	unsigned buf;			/* receive buffer index */
	struct wire_hdr hdr;
	struct wire_data data;
	unsigned seg;			/* read cursor: segment index */
	uint32_t seg_off;		/* bytes of that segment already read */
	uint32_t inline_off;		/* inline bytes already read */
	uint32_t ring_off;		/* ring bytes already read */
};

struct rt_obj {
	enum rt_obj_kind kind;
};

struct rt_conn {
	struct rt_obj obj;
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* broadcast on every change waiters care about */
	unsigned id;
	bool is_server;

	struct rdma_cm_id *cm_id;
	struct rt_device *dev;
	/*
	 * Our own protection domain: a ring's rkey then opens that ring to
	 * this queue pair only, never to another connection's peer.
	 */
	struct ibv_pd *pd;
	struct regcache *regcache;	/* program memory registered in pd */
	struct ibv_comp_channel *chan;
	bool chan_taken;		/* a program thread sleeps on chan; the service thread keeps off */
	int sleep_wake_fd;		/* eventfd: wakes the thread asleep on chan for what is not a completion */
	unsigned wake_gen;		/* counts wake-ups and reaping passes: what a spinning sleeper may miss */
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	unsigned max_sge;
	unsigned max_inline;

	uint8_t *ring;			/* our receive ring, written by the peer */
	struct ibv_mr *ring_mr;
	uint32_t ring_size;
	uint8_t *rbufs;			/* receive buffers */
	struct ibv_mr *rbuf_mr;
	unsigned nrecv;
	uint8_t *sbufs;			/* DATA slots, then control slots */
	struct ibv_mr *sbuf_mr;
	struct tx_slot slots[RT_TX_SLOTS];
	unsigned slot_next;		/* slots are used round-robin, in order */
	bool ctrl_busy[RT_CTRL_SLOTS];
	bool ctrl_credit_pending;	/* a CREDIT is owed but no slot was free */
	bool ctrl_fin_pending;
	bool ctrl_pong_pending;
	bool ctrl_ping_pending;
	unsigned data_wrs_outstanding;	/* work requests of DATA messages not yet completed */
	uint64_t ctrl_posted;		/* control messages posted, ever */
	uint64_t ctrl_done;		/* of them, known to be complete */
	unsigned ctrl_unsignalled;	/* posted since the last signalled one */
	struct tx_msg tx;		/* the DATA message being assembled */
	struct tx_backlog backlog;	/* handed over beyond the window, after tx */

	/*
	 * Completion events are requested only when somebody needs waking:
	 * a sleeping thread, or a program waiting on the doorbell.  Otherwise
	 * the threads that call in reap the completion queue themselves.
	 */
	bool cq_armed;
	bool cq_armed_any;		/* armed for every completion, not only solicited ones */
	unsigned sleepers;		/* threads in conn_sleep() waiting for a message */
	unsigned sleepers_any;		/* ... waiting for any completion (their own sends) */
	unsigned sleepers_credit;	/* ... waiting for the peer to return credit */
	bool nodelay;			/* TCP_NODELAY: hold no small write, a bulk stream only briefly */
	unsigned bulk_streak;		/* bulk writes in a row, with no read in between */
	unsigned write_streak;		/* small copied writes in a row, nothing else in between */
	uint64_t last_write_ms;		/* coarse clock */
	/*
	 * A program thread is inside a read or write: arrivals it reaps are
	 * no news to anybody waiting (it is the reader, or the reader will
	 * find them), so they ring no doorbell.
	 */
	unsigned in_call;

	struct rx_msg rxq[RT_DATA_CREDITS];
	unsigned rxq_head;
	unsigned rxq_count;
	size_t rx_ready;		/* unread stream bytes queued */

	uint64_t peer_ring_addr;
	uint32_t peer_rkey;
	uint32_t peer_msg_size;
	struct credit_tx ctx;
	struct credit_rx crx;

	enum conn_state state;
	int error;			/* errno of a failure, reported once via SO_ERROR */
	int sticky_error;		/* errno later calls keep returning */
	bool error_reported;
	bool fin_sent;
	bool fin_received;
	bool peer_gone;			/* DISCONNECTED seen */
	bool shut_rd;
	bool shut_wr;
	bool owner_gone;		/* rt_conn_close called */
	bool disconnecting;		/* rdma_disconnect called */
	bool qp_stopped;		/* moved to the error state: the device reads nothing more */
	bool device_removed;		/* RDMA_CM_EVENT_DEVICE_REMOVAL seen */
	bool destroyed;
	/*
	 * conn_setup_resources is creating the queues without c->lock (it
	 * takes the global lock): until it is done nobody else touches the
	 * completion channel, CQ or QP.
	 */
	bool setting_up;
	bool ping_outstanding;
	bool auth;			/* MIGRDMA_SECRET challenge-response in use */
	bool queued;			/* on the listener's accept queue */
	bool was_queued;		/* ever queued: only accept() or the listener may end it */
	uint8_t client_nonce[WIRE_NONCE_LEN];
	uint8_t server_nonce[WIRE_NONCE_LEN];
	const char *end_reason;

	uint64_t seq_posted;		/* DATA messages posted */
	uint64_t seq_done;		/* DATA messages whose SEND completed, or was flushed */
	uint64_t seq_ok;		/* ... that completed without error */

	rt_notify_fn notify;
	void *notify_arg;
	unsigned last_events;

	struct sockaddr_storage local;
	struct sockaddr_storage peer;
	struct sockaddr_storage bind_src;	/* the program's bind() before connect */
	bool has_bind_src;
	struct rt_listener *listener;	/* server side, until accepted */
	struct rt_conn *next_pending;
	struct rt_conn *next_all;

	struct timespec t_start;
	uint64_t deadline_ms;		/* connect deadline, or close linger deadline */
	uint64_t last_rx_ms;		/* coarse clock (rt_coarse_ms) */
	uint64_t last_tx_ms;
	struct rt_conn_stats stats;
	size_t registered_peak_at_start;
};

/* Send-queue entries in use: DATA work requests, and control messages not known complete. */
static inline unsigned conn_sq_used(const struct rt_conn *c)
{
	return c->data_wrs_outstanding + (unsigned)(c->ctrl_posted - c->ctrl_done);
}

/* The bytes an iovec array holds, bounded as a read's or write's count is: nothing wraps. */
static inline size_t iov_total(const struct iovec *iov, int iovcnt)
{
	size_t n = 0;
	int i;

	for (i = 0; i < iovcnt; i++)
		n = iov[i].iov_len > SSIZE_MAX - n ? SSIZE_MAX : n + iov[i].iov_len;
	return n;
}

/* A free slot and send-queue room for the largest DATA message; credit aside. */
static inline bool conn_room_for_message(const struct rt_conn *c)
{
	return !c->slots[c->slot_next].busy &&
	       conn_sq_used(c) + RT_MAX_WR_PER_MSG + 1 <= RT_SQ_DEPTH;
}

struct rt_listener {
	struct rt_obj obj;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct rdma_cm_id *cm_id;	/* NULL while its device is gone; service thread only */
	struct sockaddr_storage addr;	/* what it listens on */
	bool device_gone;		/* listening again once a device has the address */
	uint64_t relisten_ms;		/* the next attempt */
	int backlog;
	struct rt_conn *pending_head;	/* established, not yet accepted */
	struct rt_conn *pending_tail;
	unsigned npending;
	bool shut;
	bool closed;
	bool extra_ready;		/* the owner's TCP fallback has connections */
	rt_notify_fn notify;
	void *notify_arg;
	unsigned last_events;
	struct rt_listener *next_all;
};

struct rt_watch {
	struct rt_obj obj;
	pthread_mutex_t lock;		/* held while cb runs, so cancel can wait it out */
	int fd;
	bool cancelled;
	void (*cb)(void *arg);
	void *arg;
	struct rt_watch *next_zombie;
};

struct rt_global {
	pthread_mutex_t lock;		/* lists and devices; never taken under a conn lock */
	bool initialised;
	int init_error;
	struct rt_options opts;
	struct rdma_event_channel *cm_chan;
	int epoll_fd;
	int wake_fd;			/* eventfd: wakes the service thread */
	pthread_t thread;
	struct rt_device *devices;
	struct rt_conn *conns;
	struct rt_listener *listeners;
	struct rt_conn *zombies;	/* destroyed, freed after the current event batch */
	bool fast_tick;			/* a fast_flush write is held somewhere: tick every RT_HOLD_TICK_MS */
	struct rt_watch *watch_zombies;
	unsigned next_id;
	size_t pinned_peak;		/* process-wide, over all connections */
};

extern struct rt_global rt_g;

/* The private data of a reject: WIRE_MAGIC, then one enum wire_reject byte. */
#define REJECT_DATA_LEN 5

/*
 * What each file of rdma/ does, and what it offers the others.  The public
 * API (rt_*) is in transport.h; regcache.c, credit.c, wire.c and auth.c
 * have headers of their own.
 */

/* service.c: the service thread, its epoll set, clocks, rt_init, fork */
uint64_t rt_now_ms(void);
/* A clock good to a scheduler tick that costs no system call (for keepalive). */
uint64_t rt_coarse_ms(void);
struct timespec rt_abs_timeout(unsigned ms);
int rt_service_watch(int fd, void *ptr);
void rt_service_unwatch(int fd);
void conn_wake_service(void);

/* device.c: devices, their registration caches, pinned bytes, invalidation */
struct rt_device *rt_device_get(struct ibv_context *verbs);
struct regcache *rt_regcache_create(struct ibv_pd *pd);
void rt_devices_pinned(size_t *now, size_t *peak);

/* resources.c: a connection's verbs resources and buffers, set up and torn down */
int conn_setup_resources(struct rt_conn *c, struct rdma_cm_id *id);
/* Service thread only: frees everything but the object (conn_free_zombies). */
void conn_destroy(struct rt_conn *c);
/* The device is done with a message: drop its registrations' references. */
void release_slot_refs(struct rt_conn *c, struct tx_slot *s);
void conn_free_zombies(void);

/* conn.c: a connection's state, events and waits */
struct rt_conn *conn_alloc(bool is_server);
/* Whether the connection's queues exist and may be used (with c->lock held). */
bool conn_has_queues(const struct rt_conn *c);
void conn_fail(struct rt_conn *c, int err, const char *reason);
void conn_update_events(struct rt_conn *c, bool newdata);
void conn_apply_peer_hello(struct rt_conn *c, const struct wire_hello *h);
void conn_local_hello(const struct rt_conn *c, struct wire_hello *h);
uint64_t rt_deadline(int timeout_ms);
/*
 * Ask for a completion event if anybody will need waking by one (lock
 * held).  Returns true if completions were reaped on the way.
 */
bool conn_arm(struct rt_conn *c);
/* Take and acknowledge one pending completion event, if any (lock held). */
bool conn_take_cq_event(struct rt_conn *c);
/*
 * Is a write held up only by credit (not by a busy slot or a full send
 * queue, which only our own completions free)?  Lock held.
 */
bool conn_short_of_credit_only(const struct rt_conn *c);
/* Every work request posted so far has completed (lock held). */
bool conn_sq_idle(const struct rt_conn *c);

/* sleep.c: how a program thread waits on a connection */
/* What a sleeping thread waits for, and so which completions must wake it. */
enum conn_wait_for {
	WAIT_MESSAGE,		/* a message from the peer (they are all solicited) */
	WAIT_CREDIT,		/* credit from the peer: also only in its messages */
	WAIT_SENDS,		/* its own sends to complete: every completion */
};
/*
 * Wait (lock held, released while asleep) until something happens on the
 * connection or deadline_ms (0: none) passes; false once it has passed.
 */
bool conn_sleep(struct rt_conn *c, uint64_t deadline_ms, enum conn_wait_for what);
/* Something a sleeper may wait for changed, other than a completion.  Lock held. */
void conn_wake_waiters(struct rt_conn *c);
/* Wait for the service thread's news (set-up), bounded to a second. */
void conn_wait(struct rt_conn *c);

/* defer.c: which program memory a write may leave in flight */
/* May a write return while the device has yet to read [addr, addr+len)? */
bool defer_allowed(const void *addr, size_t len);
/* fork: take the table's lock before, release it after (parent and child). */
void defer_atfork_prepare(void);
void defer_atfork_release(void);
void defer_atfork_child(void);

/* message.c: building and posting one DATA message (lock held) */
/* Is this iovec sent zero-copy (page-aligned, at least MIGRDMA_ZCOPY_MIN)? */
bool zcopy_eligible(const struct iovec *v);
/* A free slot, a credit, and room in the send queue for a new message? */
bool tx_can_open(const struct rt_conn *c);
void tx_open(struct rt_conn *c);
/* Ring bytes the open message may place: they only grow as credit returns. */
void tx_update_budget(struct rt_conn *c);
/* Copy up to n bytes inline; returns bytes taken. */
uint32_t take_inline(struct tx_msg *m, const uint8_t *src, size_t n);
/* Zero-copy up to n bytes, registering them; 0 when full, -1 if unregistrable. */
int64_t take_zcopy(struct rt_conn *c, struct tx_msg *m, const uint8_t *src, size_t n);
/*
 * Zero-copy up to n bytes under ref, which pins them already.  Returns
 * bytes taken; *ref_used is set when ref itself went with them (all n).
 */
uint32_t take_pinned(struct rt_conn *c, struct tx_msg *m, const uint8_t *src, uint32_t n,
		     const struct regcache_ref *ref, bool *ref_used);
int tx_post(struct rt_conn *c);
/* Post the DATA message being assembled, if it holds anything. */
int tx_flush(struct rt_conn *c);
/*
 * The service thread's ticks: post a held message no write has added to
 * since this tick last looked (*seen: that tick's own mark).
 */
void tx_flush_if_idle(struct rt_conn *c, uint64_t *seen);

/* backlog.c: bytes a write handed over beyond the window (lock held) */
static inline bool tx_backlog_empty(const struct rt_conn *c)
{
	return c->backlog.head == c->backlog.tail;
}
/*
 * Take the rest of a write, from iov[i] at off, into the backlog, so the
 * write returns now; false when it may not (see backlog.c), and nothing
 * was taken.  call_bytes: the whole write's size.
 */
bool tx_backlog_admit(struct rt_conn *c, const struct iovec *iov, int iovcnt, int i,
		      size_t off, size_t call_bytes);
/*
 * Move backlog bytes into messages as far as the window allows.  Once
 * they are all out: a writer (writer true) may add to the last message;
 * otherwise it is posted, and a FIN that waited for them goes.  -1 when
 * the connection has failed (the backlog is dropped).
 */
int tx_backlog_pump(struct rt_conn *c, bool writer);
/*
 * The same for a thread that is not the writer (the service thread, a
 * sleeper woken by a completion, exit), which also updates readiness.
 */
void tx_backlog_move_on(struct rt_conn *c);
/* Drop the backlog and the registrations it holds. */
void tx_backlog_clear(struct rt_conn *c);

/* send.c: when a write posts, holds back or waits */
/* A read came: the writes before it were not a stream. */
void tx_stream_reset(struct rt_conn *c);
/* Count a write into the stream of small copied ones, which a pause or any other write ends. */
void tx_note_write(struct rt_conn *c, bool small_copied);
/*
 * May the open message stay unposted when a write of call_bytes (of them
 * call_zcopy zero-copy) returns?
 */
bool tx_may_hold(const struct rt_conn *c, size_t call_bytes, size_t call_zcopy, int flags);

/* progress.c: completions, receive posting, control messages */
/* Reap the completion queue; returns true if anything completed (lock held). */
bool conn_progress(struct rt_conn *c);
int conn_post_recv(struct rt_conn *c, unsigned idx);
void conn_send_ctrl(struct rt_conn *c, enum wire_opcode op);
void conn_send_ctrl_payload(struct rt_conn *c, enum wire_opcode op, const void *payload,
			    uint32_t len);
void conn_flush_pending_ctrl(struct rt_conn *c);

/* recv.c (send.c has only rt_send, in transport.h) */
void conn_rx_discard(struct rt_conn *c);

/* connect.c: the active side, rt_connect and address/route resolution */
int cm_resolve_timeout_ms(const struct rt_conn *c);
void cm_route_resolved(struct rt_conn *c);

/* listener.c: rt_listen, the accept queue and its limit, rt_accept */
void listener_update_events(struct rt_listener *l);
bool listener_full(struct rt_listener *l);
void listener_enqueue(struct rt_conn *c);
bool listener_drop_pending(struct rt_conn *c);
void listener_destroy(struct rt_listener *l);
struct rt_listener *listener_with_id(struct rdma_cm_id *id);
void listener_device_removed(struct rt_listener *l);
void rt_device_removed(struct ibv_context *verbs);
void rt_forget_removed_devices(void);
void listener_listen_again(struct rt_listener *l, uint64_t now);

/* handshake.c: hello, admission, MIGRDMA_SECRET, becoming established */
void cm_copy_addrs(struct rt_conn *c, struct rdma_cm_id *id);
void cm_fill_conn_param(struct rdma_conn_param *param, const uint8_t *pdata, uint8_t len);
/* MIGRDMA_ACK_TIMEOUT on the id, before rdma_connect or rdma_accept. */
void cm_set_ack_timeout(struct rt_conn *c, struct rdma_cm_id *id);
const char *cm_reject_text(int reason);
/* A CONNECT_REQUEST on l; true when the event's id must be destroyed after the ack. */
bool cm_connect_request(struct rt_listener *l, struct rdma_cm_event *ev);
void cm_established(struct rt_conn *c, struct rdma_cm_event *ev);
void conn_auth_received(struct rt_conn *c, const uint8_t *proof);
void conn_auth_ok_received(struct rt_conn *c);

/* cm_event.c: rdma_cm event dispatch */
void cm_handle_event(struct rdma_cm_event *ev);

/* timers.c: deadlines, keepalive, linger, teardown */
void cm_check_timers(uint64_t now);
/* The fast tick: post fast_flush messages no write has added to; true if any stay held. */
bool cm_flush_held(void);

#endif
