// SPDX-License-Identifier: MIT
/*
 * migrdma stat: the diverted connections of running processes, live, like
 * top(1).
 *
 * A process whose connections libmigrdma.so diverts publishes their counters
 * in /dev/shm/migrdma.PID (written by shim/live.c, laid out in shim/live.h),
 * refreshed about ten times a second.  This reads those files without any
 * lock: the writer keeps `seq` odd while it updates, so a copy counts only
 * if `seq` was even before it and unchanged after it.  The files are read
 * with pread(), never mapped: a file that shrinks under a mapping (its PID
 * exec()ing a new program that re-creates it) would kill us with SIGBUS.
 *
 * Throughput is the byte delta between two samples over the delta of the
 * writer's own timestamps (updated_ms), so it does not depend on when this
 * program happened to wake up.  Every refresh printed is thus the second of
 * two samples -i SECONDS apart; --once takes exactly two.
 *
 * A file whose process is gone (it crashed, or was killed, before unlinking
 * it) or whose PID now belongs to a younger process is stale: it is skipped
 * with a note, and removed only with --clean.
 *
 * Exit status: 0 when at least one refresh was printed, 1 when there was
 * nothing to show (no export, a stale or bad file), 2 for a bad command line.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <langinfo.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shim/live.h"
#include "tools.h"

#define PROG "migrdma stat"

/* How long a reader waits for the writer to finish an update. */
#define SEQ_WAIT_MS 2000

/*
 * A file last changed this long before its PID's process started belongs to
 * an earlier process.  The slack covers the coarseness of the start time
 * (/proc/stat's btime is whole seconds) and small clock steps.
 */
#define REUSE_SLACK_S 2

/* The writer refreshes every 100 ms: this much silence is worth a note. */
#define QUIET_MS 2000

#define INTERVAL_MIN 0.1
#define INTERVAL_MAX 86400.0

#define LIVE_PATH_MAX 64

struct stat_opts {
	int pid;		/* 0: every process */
	long count;		/* refreshes to print; 0: until interrupted */
	double interval;	/* seconds between samples */
	bool json;
	bool clean;
};

struct proc {
	int pid;
	uint64_t data_age_ms;	/* how old the counters were when read */
	struct live_file f;
};

struct sample {
	struct proc *procs;	/* sorted by pid */
	size_t n, cap;
	struct timespec wall;
};

enum read_result {
	READ_OK,
	READ_NONE,		/* no file: no export */
	READ_STALE,		/* left behind by a process that is gone */
	READ_BAD,		/* refused: not a file this version reads */
	READ_ERROR,		/* could not be read (permission, I/O, busy) */
};

enum proc_state {
	PROC_ALIVE,
	PROC_DEAD,
	PROC_REUSED,
};

static volatile sig_atomic_t stop_signal;

/* PIDs whose files were already reported as skipped, to say it only once. */
static int *noted;
static size_t nnoted, noted_cap;

/* ---- small helpers ------------------------------------------------------------ */

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void live_path(int pid, char *buf, size_t len)
{
	snprintf(buf, len, LIVE_DIR "/" LIVE_PREFIX "%d", pid);
}

/* A process id as written in a file name or on the command line. */
static int parse_pid(const char *s)
{
	char *end;
	long v;

	if (*s < '1' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v > INT_MAX)
		return -1;
	return (int)v;
}

/* Bytes as people read them: "512 B", "1.5 KiB", ..., "3.2 TiB". */
static const char *human(uint64_t v, char *buf, size_t len)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double d = (double)v;
	size_t u = 0;

	if (v < 1024) {
		snprintf(buf, len, "%" PRIu64 " B", v);
		return buf;
	}
	d /= 1024;
	while (d >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		d /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s", d, units[u]);
	return buf;
}

/* The file is not ours to trust: keep its strings terminated. */
static void terminate_strings(struct live_file *f)
{
	uint32_t i;

	for (i = 0; i < f->nconns; i++) {
		struct live_conn *c = &f->conns[i];

		c->state[sizeof(c->state) - 1] = '\0';
		c->local[sizeof(c->local) - 1] = '\0';
		c->peer[sizeof(c->peer) - 1] = '\0';
	}
}

/* For the table: anything but printable ASCII becomes '?'. */
static const char *printable(const char *s, char *buf, size_t len)
{
	size_t i;

	for (i = 0; s[i] && i + 1 < len; i++)
		buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	buf[i] = '\0';
	return buf;
}

static void json_string(const char *s)
{
	const unsigned char *p;

	putchar('"');
	for (p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20 || *p >= 0x7f)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static bool was_noted(int pid)
{
	size_t i;

	for (i = 0; i < nnoted; i++) {
		if (noted[i] == pid)
			return true;
	}
	return false;
}

static void mark_noted(int pid)
{
	int *p;

	if (nnoted == noted_cap) {
		p = realloc(noted, (noted_cap ? noted_cap * 2 : 16) * sizeof(*noted));
		if (!p)
			return;
		noted = p;
		noted_cap = noted_cap ? noted_cap * 2 : 16;
	}
	noted[nnoted++] = pid;
}

/* ---- is the writer still there? ------------------------------------------------------ */

/* Boot time in seconds since the epoch, from /proc/stat. */
static long long boot_time(void)
{
	static long long btime = -1;
	char line[256];
	FILE *f;

	if (btime >= 0)
		return btime;
	f = fopen("/proc/stat", "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "btime %lld", &btime) == 1)
			break;
	}
	fclose(f);
	return btime;
}

/*
 * The state letter and the start time (seconds since the epoch) of a
 * process, from /proc/PID/stat.  Returns -1 if it cannot be read.
 */
static int proc_stat(int pid, char *state, long long *start)
{
	unsigned long long ticks;
	char path[64], buf[1024], *p;
	long long btime;
	long hz;
	ssize_t n;
	int fd, field;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: skip to the last ')'. */
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || !p[2])
		return -1;
	*state = p[2];
	/* Field 3 is the state; field 22 is the start time in clock ticks. */
	p += 2;
	for (field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -1;
		p++;
	}
	if (sscanf(p, "%llu", &ticks) != 1)
		return -1;
	btime = boot_time();
	hz = sysconf(_SC_CLK_TCK);
	if (btime < 0 || hz <= 0)
		return -1;
	*start = btime + (long long)(ticks / (unsigned long long)hz);
	return 0;
}

/*
 * Whether the process that wrote a file (last changed at st's ctime: writes
 * through the writer's mapping leave it alone) may still be running.
 */
static enum proc_state process_state(int pid, const struct stat *st)
{
	long long start;
	char state;

	if (kill(pid, 0) < 0 && errno == ESRCH)
		return PROC_DEAD;
	if (proc_stat(pid, &state, &start) < 0)
		return PROC_ALIVE;	/* another PID namespace, say: trust kill() */
	if (state == 'Z' || state == 'X')
		return PROC_DEAD;
	if ((long long)st->st_ctim.tv_sec + REUSE_SLACK_S < start)
		return PROC_REUSED;
	return PROC_ALIVE;
}

/* ---- reading a file ----------------------------------------------------------------- */

static bool magic_unset(const struct live_file *hdr)
{
	size_t i;

	for (i = 0; i < sizeof(hdr->magic); i++) {
		if (hdr->magic[i])
			return false;
	}
	return true;
}

/* Read the header: 1 when it is there, 0 when the file is shorter. */
static int read_header(int fd, struct live_file *hdr)
{
	ssize_t n;

	n = pread(fd, hdr, offsetof(struct live_file, conns), 0);
	if (n < 0)
		return -1;
	return n == (ssize_t)offsetof(struct live_file, conns);
}

/*
 * A stale file: report it and, with --clean, remove it, but only if it
 * looks like one of ours: empty or zeroed (its process died creating it),
 * or with our magic.
 */
static enum read_result stale(const char *path, int fd, enum proc_state ps,
			      const struct stat_opts *o, char *why, size_t len)
{
	const char *reason = ps == PROC_DEAD ? "process is not running" :
			     "process started after the file was written: its PID was reused";
	char magic[sizeof(((struct live_file *)0)->magic)];
	static const char zero[sizeof(magic)];
	ssize_t n;

	if (!o->clean) {
		snprintf(why, len, "stale (its %s); migrdma stat --clean removes it", reason);
		return READ_STALE;
	}
	n = pread(fd, magic, sizeof(magic), 0);
	if (n != 0 && (n != (ssize_t)sizeof(magic) ||
		       (memcmp(magic, LIVE_MAGIC, sizeof(magic)) && memcmp(magic, zero, sizeof(magic))))) {
		snprintf(why, len, "stale (its %s), but not a migrdma statistics file: left alone",
			 reason);
		return READ_STALE;
	}
	if (unlink(path) < 0) {
		snprintf(why, len, "stale (its %s), cannot remove it: %s", reason, strerror(errno));
		return READ_STALE;
	}
	snprintf(why, len, "stale (its %s): removed", reason);
	return READ_STALE;
}

/*
 * One consistent copy of /dev/shm/migrdma.PID.  On anything but READ_OK,
 * why says what was wrong (nothing for READ_NONE).
 */
static enum read_result read_live(int pid, const struct stat_opts *o, struct live_file *f,
				  char *why, size_t len)
{
	uint64_t deadline = mono_ms() + SEQ_WAIT_MS;
	enum read_result ret = READ_ERROR;
	char path[LIVE_PATH_MAX];
	struct live_file *hdr = f;
	enum proc_state ps;
	uint64_t s1, s2;
	struct stat st;
	int fd, got, tries;

	why[0] = '\0';
	live_path(pid, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return READ_NONE;
		if (errno == ELOOP) {
			snprintf(why, len, "is a symbolic link, not a migrdma statistics file");
			return READ_BAD;
		}
		if (errno == EACCES) {
			snprintf(why, len, "%s (run as root or as the process's user)",
				 strerror(errno));
			return READ_ERROR;
		}
		snprintf(why, len, "cannot open it: %s", strerror(errno));
		return READ_ERROR;
	}
	if (fstat(fd, &st) < 0) {
		snprintf(why, len, "cannot stat it: %s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, len, "is not a regular file");
		ret = READ_BAD;
		goto out;
	}
	ps = process_state(pid, &st);
	if (ps != PROC_ALIVE) {
		ret = stale(path, fd, ps, o, why, len);
		goto out;
	}

	memset(hdr->magic, 0, sizeof(hdr->magic));
	for (tries = 0;; tries++, usleep(1000)) {
		/* A few tries at least: this process may have been the slow one. */
		if (tries >= 10 && mono_ms() > deadline) {
			if (magic_unset(hdr))
				snprintf(why, len, "is empty or incomplete (its process died creating it?)");
			else
				snprintf(why, len, "did not hold still for %d ms (its writer is stuck mid-update?)",
					 SEQ_WAIT_MS);
			goto out;
		}
		if (fstat(fd, &st) < 0 || (got = read_header(fd, hdr)) < 0) {
			snprintf(why, len, "cannot read it: %s", strerror(errno));
			goto out;
		}
		/* Being created: live_start() truncates, sizes, then writes the magic. */
		if (!got || magic_unset(hdr)) {
			memset(hdr->magic, 0, sizeof(hdr->magic));
			continue;
		}
		if (memcmp(hdr->magic, LIVE_MAGIC, sizeof(hdr->magic))) {
			snprintf(why, len, "bad magic: not a migrdma statistics file");
			ret = READ_BAD;
			goto out;
		}
		if (hdr->version != LIVE_VERSION) {
			snprintf(why, len, "format version %" PRIu32 ", but this migrdma reads version %d"
				 " (a different migrdma release wrote it)", hdr->version, LIVE_VERSION);
			ret = READ_BAD;
			goto out;
		}
		if (st.st_size != (off_t)sizeof(*f)) {
			snprintf(why, len, "is %lld bytes long, but a version %d file has %zu",
				 (long long)st.st_size, LIVE_VERSION, sizeof(*f));
			ret = READ_BAD;
			goto out;
		}

		s1 = hdr->seq;
		if (s1 & 1)
			continue;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (pread(fd, f, sizeof(*f), 0) != (ssize_t)sizeof(*f))
			continue;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (pread(fd, &s2, sizeof(s2), offsetof(struct live_file, seq)) != sizeof(s2))
			continue;
		if (s1 == s2 && f->seq == s1)
			break;
	}

	if (f->nconns > LIVE_MAX_CONNS) {
		snprintf(why, len, "claims %" PRIu32 " connections, but holds at most %d",
			 f->nconns, LIVE_MAX_CONNS);
		ret = READ_BAD;
		goto out;
	}
	if (f->pid != (uint64_t)pid) {
		snprintf(why, len, "belongs to process %" PRIu64 ", not to process %d",
			 f->pid, pid);
		ret = READ_BAD;
		goto out;
	}
	terminate_strings(f);
	ret = READ_OK;
out:
	close(fd);
	return ret;
}

/* ---- samples ------------------------------------------------------------------------- */

static struct proc *sample_add(struct sample *s)
{
	struct proc *p;
	size_t cap;

	if (s->n == s->cap) {
		cap = s->cap ? s->cap * 2 : 4;
		p = realloc(s->procs, cap * sizeof(*p));
		if (!p)
			return NULL;
		s->procs = p;
		s->cap = cap;
	}
	return &s->procs[s->n++];
}

static int proc_cmp(const void *a, const void *b)
{
	const struct proc *x = a, *y = b;

	return (x->pid > y->pid) - (x->pid < y->pid);
}

static const struct proc *sample_find(const struct sample *s, int pid)
{
	struct proc key = { .pid = pid };

	if (!s || !s->n)
		return NULL;
	return bsearch(&key, s->procs, s->n, sizeof(key), proc_cmp);
}

/*
 * Read one process's file into s.  A file skipped in a scan of every
 * process is reported once, on stderr; for a single PID the caller reports.
 */
static enum read_result sample_take(struct sample *s, int pid, const struct stat_opts *o,
				    char *why, size_t len)
{
	enum read_result r;
	struct proc *p;
	uint64_t now;

	p = sample_add(s);
	if (!p) {
		snprintf(why, len, "out of memory");
		return READ_ERROR;
	}
	r = read_live(pid, o, &p->f, why, len);
	if (r != READ_OK) {
		s->n--;
		return r;
	}
	p->pid = pid;
	now = mono_ms();
	p->data_age_ms = now > p->f.updated_ms ? now - p->f.updated_ms : 0;
	return READ_OK;
}

static int scan_all(struct sample *s, const struct stat_opts *o)
{
	char why[256];
	struct dirent *d;
	enum read_result r;
	DIR *dir;
	int pid;

	dir = opendir(LIVE_DIR);
	if (!dir) {
		fprintf(stderr, PROG ": cannot list " LIVE_DIR ": %s\n", strerror(errno));
		return -1;
	}
	while ((d = readdir(dir))) {
		if (strncmp(d->d_name, LIVE_PREFIX, strlen(LIVE_PREFIX)))
			continue;
		pid = parse_pid(d->d_name + strlen(LIVE_PREFIX));
		if (pid <= 0)
			continue;
		r = sample_take(s, pid, o, why, sizeof(why));
		if (r == READ_OK || r == READ_NONE || was_noted(pid))
			continue;
		fprintf(stderr, PROG ": ignoring " LIVE_DIR "/%s: %s\n", d->d_name, why);
		mark_noted(pid);
	}
	closedir(dir);
	return 0;
}

/*
 * A new sample in s.  Returns -1 after an error message when the sample
 * has nothing (for one PID: no usable file), else 0.  first: the first
 * sample of the run, whose errors say more about why.
 */
static int sample(struct sample *s, const struct stat_opts *o, bool first)
{
	char why[256], path[LIVE_PATH_MAX];
	enum read_result r;

	s->n = 0;
	clock_gettime(CLOCK_REALTIME, &s->wall);
	if (!o->pid) {
		if (scan_all(s, o) < 0)
			return -1;
		qsort(s->procs, s->n, sizeof(*s->procs), proc_cmp);
		if (first && !s->n) {
			fprintf(stderr, PROG ": no process has migrdma connections (or they run with MIGRDMA_LIVE=0)\n");
			return -1;
		}
		return 0;
	}

	r = sample_take(s, o->pid, o, why, sizeof(why));
	if (r == READ_OK)
		return 0;
	if (r == READ_NONE) {
		if (kill(o->pid, 0) < 0 && errno == ESRCH)
			fprintf(stderr, PROG ": process %d %s\n", o->pid,
				first ? "is not running" : "has exited");
		else if (first)
			fprintf(stderr, PROG ": process %d has no migrdma connections (or MIGRDMA_LIVE=0)\n",
				o->pid);
		else
			fprintf(stderr, PROG ": process %d no longer exports statistics (it is exiting?)\n",
				o->pid);
		return -1;
	}
	live_path(o->pid, path, sizeof(path));
	fprintf(stderr, PROG ": %s: %s\n", path, why);
	return -1;
}

/* ---- throughput ------------------------------------------------------------------------ */

/*
 * MB/s (10^6 bytes a second) out and in of connection c of process cur
 * since the previous sample.  False when there is no rate to give: no
 * earlier sample of the process, no refresh since, or counters that went
 * backwards (another process, its PID reused).  A connection opened since
 * the previous sample started from zero.
 */
static bool conn_rate(const struct proc *prev, const struct proc *cur,
		      const struct live_conn *c, double *out, double *in)
{
	uint64_t dt, base_out = 0, base_in = 0;
	const struct live_conn *p = NULL;
	uint32_t i;

	if (!prev || cur->f.updated_ms <= prev->f.updated_ms)
		return false;
	dt = cur->f.updated_ms - prev->f.updated_ms;
	for (i = 0; i < prev->f.nconns; i++) {
		if (prev->f.conns[i].id == c->id) {
			p = &prev->f.conns[i];
			break;
		}
	}
	if (p) {
		if (c->bytes_out < p->bytes_out || c->bytes_in < p->bytes_in)
			return false;
		base_out = p->bytes_out;
		base_in = p->bytes_in;
	} else if (c->age_ms > dt) {
		return false;	/* older than the interval but missing before */
	}
	*out = (double)(c->bytes_out - base_out) / (double)dt / 1000.0;
	*in = (double)(c->bytes_in - base_in) / (double)dt / 1000.0;
	return true;
}

static bool zerocopy_share(const struct live_conn *c, double *share)
{
	if (!c->bytes_out)
		return false;
	*share = (double)c->bytes_out_zerocopy / (double)c->bytes_out;
	return true;
}

/* ---- output ---------------------------------------------------------------------------- */

static size_t count_conns(const struct sample *s)
{
	size_t i, n = 0;

	for (i = 0; i < s->n; i++)
		n += s->procs[i].f.nconns;
	return n;
}

static void print_json(const struct sample *prev, const struct sample *cur,
		       const struct stat_opts *o)
{
	char when[64];
	struct tm tm;
	size_t i;
	uint32_t j;

	gmtime_r(&cur->wall.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	printf("{\"time\":\"%s.%03ldZ\",\"interval_s\":%g,\"processes\":[",
	       when, cur->wall.tv_nsec / 1000000, o->interval);
	for (i = 0; i < cur->n; i++) {
		const struct proc *p = &cur->procs[i];
		const struct proc *pp = sample_find(prev, p->pid);

		printf("%s{\"pid\":%d,\"pinned_now\":%" PRIu64 ",\"pinned_peak\":%" PRIu64
		       ",\"data_age_ms\":%" PRIu64 ",\"connections\":[",
		       i ? "," : "", p->pid, p->f.pinned_now, p->f.pinned_peak, p->data_age_ms);
		for (j = 0; j < p->f.nconns; j++) {
			const struct live_conn *c = &p->f.conns[j];
			double out, in, share;

			/* The field names of MIGRDMA_STATS records and the close line. */
			printf("%s{\"conn_id\":%" PRIu32 ",\"role\":\"%s\",\"transport\":\"rdma\","
			       "\"local\":", j ? "," : "", c->id, c->is_server ? "server" : "client");
			json_string(c->local);
			fputs(",\"peer\":", stdout);
			json_string(c->peer);
			fputs(",\"state\":", stdout);
			json_string(c->state);
			printf(",\"bytes_out\":%" PRIu64 ",\"bytes_in\":%" PRIu64
			       ",\"bytes_out_zerocopy\":%" PRIu64 ",\"bytes_out_send\":%" PRIu64
			       ",\"registrations\":%" PRIu64 ",\"duration_s\":%" PRIu64 ".%03" PRIu64,
			       c->bytes_out, c->bytes_in, c->bytes_out_zerocopy, c->bytes_out_send,
			       c->registrations, c->age_ms / 1000, c->age_ms % 1000);
			if (conn_rate(pp, p, c, &out, &in))
				printf(",\"out_mb_s\":%.3f,\"in_mb_s\":%.3f", out, in);
			else
				fputs(",\"out_mb_s\":null,\"in_mb_s\":null", stdout);
			if (zerocopy_share(c, &share))
				printf(",\"zerocopy_share\":%.4f}", share);
			else
				fputs(",\"zerocopy_share\":null}", stdout);
		}
		fputs("]}", stdout);
	}
	fputs("]}\n", stdout);
}

static void print_table(const struct sample *prev, const struct sample *cur,
			const struct stat_opts *o, bool tty, bool utf8, bool first)
{
	const char *arrow = utf8 ? "\u2192" : "->";
	int arrow_w = utf8 ? 1 : 2;
	char when[64], local[64], peer[64], state[16];
	char b_out[24], b_in[24], now[24], peak[24], rate[2][16], zc[16], pinned[64];
	size_t i, nconns = count_conns(cur);
	int wl = 5, wp = 4, w;
	struct tm tm;
	uint32_t j;

	for (i = 0; i < cur->n; i++) {
		for (j = 0; j < cur->procs[i].f.nconns; j++) {
			w = (int)strlen(cur->procs[i].f.conns[j].local);
			wl = w > wl ? w : wl;
			w = (int)strlen(cur->procs[i].f.conns[j].peer);
			wp = w > wp ? w : wp;
		}
	}

	if (tty)
		fputs("\033[H\033[2J", stdout);
	else if (!first)
		putchar('\n');
	localtime_r(&cur->wall.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	printf("migrdma stat  %s  every %g s: %zu process%s, %zu connection%s\n", when,
	       o->interval, cur->n, cur->n == 1 ? "" : "es", nconns, nconns == 1 ? "" : "s");
	if (!cur->n) {
		printf("no process has migrdma connections right now\n");
		return;
	}
	printf("%7s %4s %-6s %-*s %*s %-*s %-11s %8s %8s %10s %10s %6s %5s  %s\n",
	       "PID", "CONN", "ROLE", wl, "LOCAL", arrow_w, "", wp, "PEER", "STATE",
	       "OUT MB/s", "IN MB/s", "OUT", "IN", "0-COPY", "REGS", "PINNED NOW/PEAK");

	for (i = 0; i < cur->n; i++) {
		const struct proc *p = &cur->procs[i];
		const struct proc *pp = sample_find(prev, p->pid);

		snprintf(pinned, sizeof(pinned), "%s / %s",
			 human(p->f.pinned_now, now, sizeof(now)),
			 human(p->f.pinned_peak, peak, sizeof(peak)));
		if (!p->f.nconns)
			printf("%7d %4s %-6s %-*s %s\n", p->pid, "-", "-", wl + wp + arrow_w + 2,
			       "(no diverted connections now)", pinned);
		for (j = 0; j < p->f.nconns; j++) {
			const struct live_conn *c = &p->f.conns[j];
			double out, in, share;

			if (conn_rate(pp, p, c, &out, &in)) {
				snprintf(rate[0], sizeof(rate[0]), "%.1f", out);
				snprintf(rate[1], sizeof(rate[1]), "%.1f", in);
			} else {
				strcpy(rate[0], "-");
				strcpy(rate[1], "-");
			}
			if (zerocopy_share(c, &share))
				snprintf(zc, sizeof(zc), "%.1f%%", share * 100);
			else
				strcpy(zc, "-");
			printf("%7d %4" PRIu32 " %-6s %-*s %s %-*s %-11s %8s %8s %10s %10s %6s %5" PRIu64 "  %s\n",
			       p->pid, c->id, c->is_server ? "server" : "client",
			       wl, printable(c->local, local, sizeof(local)), arrow,
			       wp, printable(c->peer, peer, sizeof(peer)),
			       printable(c->state, state, sizeof(state)), rate[0], rate[1],
			       human(c->bytes_out, b_out, sizeof(b_out)),
			       human(c->bytes_in, b_in, sizeof(b_in)), zc, c->registrations, pinned);
		}
	}
	for (i = 0; i < cur->n; i++) {
		if (cur->procs[i].data_age_ms >= QUIET_MS)
			printf("process %d: no refresh for %.1f s (stopped, or hung?)\n",
			       cur->procs[i].pid, cur->procs[i].data_age_ms / 1000.0);
	}
}

/* ---- command line --------------------------------------------------------------------- */

static void stat_usage(FILE *out)
{
	fprintf(out,
		"usage: migrdma stat [PID] [-n COUNT] [-i SECONDS] [--once] [--json] [--clean]\n"
		"\n"
		"Show the diverted connections of process PID, or of every process that\n"
		"has some, with their throughput, every SECONDS like top(1).  Reads the\n"
		"live statistics in " LIVE_DIR "/" LIVE_PREFIX "PID (see MIGRDMA_LIVE in migrdma(7)).\n"
		"Throughput is in MB/s (10^6 bytes a second); sizes in KiB, MiB, GiB.\n"
		"\n"
		"  -i SECONDS   time between refreshes (default 1, at least %g)\n"
		"  -n COUNT     stop after COUNT refreshes (default: until interrupted)\n"
		"      --once   one refresh: two samples SECONDS apart, then exit\n"
		"      --json   one JSON object per refresh, on one line\n"
		"      --clean  remove stale files left by processes that are gone\n"
		"  -h, --help   show this help\n"
		"\n"
		"Exit status: 0 after at least one refresh; 1 if there was nothing to\n"
		"show (no such export, a stale or bad file); 2 for a bad command line.\n",
		INTERVAL_MIN);
}

__attribute__((format(printf, 1, 2)))
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	stat_usage(stderr);
	return EXIT_USAGE;
}

/* Returns -1 when the command line is good, else the exit status. */
static int parse_args(int argc, char **argv, struct stat_opts *o)
{
	static const struct option longopts[] = {
		{ "once", no_argument, NULL, 'O' },
		{ "json", no_argument, NULL, 'J' },
		{ "clean", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool once = false, have_count = false;
	const char *count_arg = "";
	char *end;
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":n:i:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			errno = 0;
			o->count = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || o->count <= 0)
				return usage_error("-n %s: not a positive number of refreshes", optarg);
			have_count = true;
			count_arg = optarg;
			break;
		case 'i':
			errno = 0;
			o->interval = strtod(optarg, &end);
			if (errno || end == optarg || *end || !isfinite(o->interval) ||
			    o->interval < INTERVAL_MIN || o->interval > INTERVAL_MAX)
				return usage_error("-i %s: not a number of seconds from 0.1 to 86400",
						   optarg);
			break;
		case 'O':
			once = true;
			break;
		case 'J':
			o->json = true;
			break;
		case 'C':
			o->clean = true;
			break;
		case 'h':
			stat_usage(stdout);
			return 0;
		case ':':
			return usage_error("option %s needs an argument", argv[optind - 1]);
		default:
			if (optopt) {
				char opt[3] = { '-', (char)optopt, '\0' };

				return usage_error("unknown option %s", opt);
			}
			return usage_error("unknown option %s", argv[optind - 1]);
		}
	}
	if (once) {
		if (have_count && o->count != 1)
			return usage_error("--once and -n %s contradict each other", count_arg);
		o->count = 1;
	}
	if (optind < argc) {
		o->pid = parse_pid(argv[optind]);
		if (o->pid <= 0)
			return usage_error("'%s' is not a process id", argv[optind]);
		optind++;
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	return -1;
}

static void on_signal(int sig)
{
	stop_signal = sig;
}

/* Signals that end the refresh loop cleanly, unless ignored (nohup, say). */
static void catch_signals(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa, old;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART: the sleep must end */
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
			sigaction(sigs[i], &sa, NULL);
	}
}

/* Sleep until the CLOCK_MONOTONIC time *t; false if a signal says stop. */
static bool sleep_until(const struct timespec *t)
{
	int err;

	while ((err = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, t, NULL))) {
		if (err != EINTR || stop_signal)
			return false;
	}
	return !stop_signal;
}

static void add_seconds(struct timespec *t, double seconds)
{
	long long ns = (long long)(seconds * 1e9);

	t->tv_sec += ns / 1000000000;
	t->tv_nsec += ns % 1000000000;
	if (t->tv_nsec >= 1000000000) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000;
	}
}

/*
 * The next deadline, one interval on; if we fell behind (a stopped
 * terminal, say), one interval from now.
 */
static void advance(struct timespec *t, double seconds)
{
	struct timespec now;

	add_seconds(t, seconds);
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec > t->tv_nsec)) {
		*t = now;
		add_seconds(t, seconds);
	}
}

int cmd_stat(int argc, char **argv)
{
	struct stat_opts o = { .interval = 1.0 };
	struct sample a = { 0 }, b = { 0 };
	struct sample *prev = &a, *cur = &b, *tmp;
	bool tty, utf8;
	struct timespec next;
	long printed = 0;
	int ret;

	ret = parse_args(argc, argv, &o);
	if (ret >= 0)
		return ret;

	setlocale(LC_CTYPE, "");
	utf8 = !strcmp(nl_langinfo(CODESET), "UTF-8");
	tty = !o.json && isatty(STDOUT_FILENO);
	catch_signals();

	ret = 1;
	if (sample(prev, &o, true) < 0)
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!o.count || printed < o.count) {
		advance(&next, o.interval);
		if (!sleep_until(&next))
			break;
		if (sample(cur, &o, false) < 0)
			break;
		if (o.json)
			print_json(prev, cur, &o);
		else
			print_table(prev, cur, &o, tty, utf8, !printed);
		fflush(stdout);
		printed++;
		tmp = prev;
		prev = cur;
		cur = tmp;
	}
	if (printed)
		ret = 0;
	if (stop_signal && !printed) {
		/* Interrupted before showing anything: die of the signal, as usual. */
		free(a.procs);
		free(b.procs);
		signal(stop_signal, SIG_DFL);
		raise(stop_signal);
	}
out:
	free(a.procs);
	free(b.procs);
	free(noted);
	return ret;
}
