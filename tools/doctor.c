// SPDX-License-Identifier: MIT
/*
 * migrdma doctor: can this host carry a migration over RDMA, with the
 * MIGRDMA_* configuration in the environment?
 *
 * Every check prints one line that starts with "ok", "warn" or "FAIL", and
 * every warn or FAIL is followed by one "fix:" line, so the output doubles as
 * a to-do list.  The checks run roughly in the order a failure would bite:
 * configuration, library, kernel interfaces, devices and ports, the path to
 * each target address, and the memlock limit that registration needs.
 *
 * The configuration is parsed by the library's own parser (shim/config.c),
 * so the doctor can never accept what the library would refuse.
 *
 * Exit status: 0 when nothing failed, 1 when something did, 2 for a bad
 * command line.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <infiniband/verbs.h>
#include <limits.h>
#include <link.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <rdma/rdma_cma.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/addr.h"
#include "shim/config.h"
#include "tools.h"

#ifndef MIGRDMA_INSTALL_LIB
#define MIGRDMA_INSTALL_LIB "/usr/local/lib/libmigrdma.so"
#endif
#ifndef MIGRDMA_LIBDIR_REL
#define MIGRDMA_LIBDIR_REL "lib"
#endif

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define KIB ((uint64_t)1 << 10)
#define MIB ((uint64_t)1 << 20)
#define GIB ((uint64_t)1 << 30)

/*
 * What one diverted connection pins besides its receive ring: send and
 * receive message buffers and control blocks, rounded up generously.
 */
#define CONN_BUFFERS (3 * MIB)

/*
 * Connections a migration opens at once: the main channel plus the multifd
 * channels most set-ups use.  A guess, but memlock limits are all-or-nothing
 * in practice (64 KiB by default, or unlimited), so it need not be exact.
 */
#define EXPECTED_CONNS 5

/* Short: an answer that takes longer is a problem worth reporting anyway. */
#define RESOLVE_TIMEOUT_MS 2000

#define MAX_FOR 16
#define TARGETS_MAX 8192
#define LIST_MAX 1024

/* CAP_IPC_LOCK's bit in /proc/self/status CapEff, from linux/capability.h. */
#define CAP_IPC_LOCK_BIT 14

extern char **environ;

static unsigned nfail, nwarn;

/* ---- reporting ----------------------------------------------------------- */

__attribute__((format(printf, 2, 0)))
static void vsay(const char *tag, const char *fmt, va_list ap)
{
	printf("%-5s ", tag);
	vprintf(fmt, ap);
	putchar('\n');
}

__attribute__((format(printf, 1, 2)))
static void ok(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay("ok", fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 1, 2)))
static void warn(const char *fmt, ...)
{
	va_list ap;

	nwarn++;
	va_start(ap, fmt);
	vsay("warn", fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 1, 2)))
static void fail(const char *fmt, ...)
{
	va_list ap;

	nfail++;
	va_start(ap, fmt);
	vsay("FAIL", fmt, ap);
	va_end(ap);
}

/* The one-line remedy that follows every warn and FAIL. */
__attribute__((format(printf, 1, 2)))
static void fix(const char *fmt, ...)
{
	va_list ap;

	fputs("      fix: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* Append to a bounded list; a cut-off list ends in "...". */
__attribute__((format(printf, 3, 4)))
static void append(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;
	int n;

	if (used + 4 >= len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len - used)
		strcpy(buf + len - 4, "...");
}

/* Sizes as people read them: exact GiB, else MiB or KiB rounded up. */
static const char *human(uint64_t v, char *buf, size_t len)
{
	if (v >= GIB && v % GIB == 0)
		snprintf(buf, len, "%llu GiB", (unsigned long long)(v / GIB));
	else if (v >= MIB)
		snprintf(buf, len, "%llu MiB", (unsigned long long)((v + MIB - 1) / MIB));
	else if (v >= KIB)
		snprintf(buf, len, "%llu KiB", (unsigned long long)((v + KIB - 1) / KIB));
	else
		snprintf(buf, len, "%llu bytes", (unsigned long long)v);
	return buf;
}

/* ---- configuration --------------------------------------------------------- */

/*
 * config_load() takes a getenv-like function without a context argument, so
 * the probe state is global.  The probe hides MIGRDMA_TARGETS (checked on its
 * own, possibly from -t) and variables already reported as bad, and records
 * every name the parser asks for: a MIGRDMA_* variable it never asks for is
 * one it does not know.
 */
#define PROBE_NAMES 64
#define NAME_MAX_LEN 64

static struct {
	const char *asked[PROBE_NAMES];
	size_t nasked;
	bool overflow;
	char masked[PROBE_NAMES][NAME_MAX_LEN];
	size_t nmasked;
} probe;

static bool probe_masked(const char *name)
{
	size_t i;

	for (i = 0; i < probe.nmasked; i++) {
		if (!strcmp(probe.masked[i], name))
			return true;
	}
	return false;
}

static bool probe_asked(const char *name)
{
	size_t i;

	for (i = 0; i < probe.nasked; i++) {
		if (!strcmp(probe.asked[i], name))
			return true;
	}
	return false;
}

static const char *probe_getenv(const char *name)
{
	if (!probe_asked(name)) {
		if (probe.nasked < PROBE_NAMES)
			probe.asked[probe.nasked++] = name;
		else
			probe.overflow = true;
	}
	if (!strcmp(name, "MIGRDMA_TARGETS") || probe_masked(name))
		return NULL;
	return getenv(name);
}

/* Every config_load() message starts with the variable's name. */
static int err_var_name(const char *err, char *name, size_t len)
{
	size_t n = strspn(err, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");

	if (strncmp(err, "MIGRDMA_", 8) || n <= 8 || n >= len)
		return -1;
	memcpy(name, err, n);
	name[n] = '\0';
	return 0;
}

static void format_rule(const struct target_rule *r, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN], p[16];

	if (r->port_lo == r->port_hi)
		snprintf(p, sizeof(p), "%u", r->port_lo);
	else
		snprintf(p, sizeof(p), "%u-%u", r->port_lo, r->port_hi);
	if (r->family == AF_INET6) {
		inet_ntop(AF_INET6, &r->addr.v6, a, sizeof(a));
		snprintf(buf, len, "[%s]:%s", a, p);
	} else if (r->family == AF_INET) {
		inet_ntop(AF_INET, &r->addr.v4, a, sizeof(a));
		snprintf(buf, len, "%s:%s", a, p);
	} else {
		snprintf(buf, len, "*:%s", p);
	}
}

/* The rules, from -t if given, else from MIGRDMA_TARGETS, into parsed-> */
static void check_rules(const char *opt, struct migrdma_config *parsed)
{
	const char *value = opt ? opt : getenv("MIGRDMA_TARGETS");
	char err[256], list[LIST_MAX] = "", rule[128];
	size_t i;

	if (config_parse_targets(parsed, value, err, sizeof(err)) < 0) {
		fail("%s", err);
		fix("write the rules as ADDR:PORT, ADDR:LO-HI, *:PORT, *:LO-HI or [IPV6]:PORT, separated by commas");
		return;
	}
	if (!parsed->nrules) {
		warn("MIGRDMA_TARGETS is empty: the library would divert nothing and the migration would use TCP");
		fix("name the migration address: -t ADDR:PORT, or export MIGRDMA_TARGETS=ADDR:PORT");
		return;
	}
	for (i = 0; i < parsed->nrules; i++) {
		format_rule(&parsed->rules[i], rule, sizeof(rule));
		append(list, sizeof(list), "%s%s", i ? ", " : "", rule);
	}
	ok("MIGRDMA_TARGETS%s: %zu rule%s: %s", opt ? " (from -t)" : "",
	   parsed->nrules, parsed->nrules == 1 ? "" : "s", list);
}

static void list_set_variables(char *list, size_t len)
{
	size_t i;

	for (i = 0; i < probe.nasked; i++) {
		const char *name = probe.asked[i], *v = getenv(name);

		if (!v || !*v || !strcmp(name, "MIGRDMA_TARGETS"))
			continue;
		/* Never echo the secret: doctor output gets pasted into tickets. */
		if (!strcmp(name, "MIGRDMA_SECRET"))
			append(list, len, "%s%s=(%zu characters)", *list ? " " : "", name, strlen(v));
		else
			append(list, len, "%s%s=%s", *list ? " " : "", name, v);
	}
}

/* MIGRDMA_* names the parser never asked for: typos, or another version's. */
static void check_unknown_variables(void)
{
	char name[NAME_MAX_LEN], msg[256];
	const char *hint;
	char **e;

	if (probe.overflow)
		return;
	for (e = environ; *e; e++) {
		size_t n = strcspn(*e, "=");

		if (strncmp(*e, "MIGRDMA_", 8) || n >= sizeof(name))
			continue;
		memcpy(name, *e, n);
		name[n] = '\0';
		/* The tools' own and the VM test harness's variables. */
		if (!strcmp(name, "MIGRDMA_LIB") || !strncmp(name, "MIGRDMA_VM_", 11))
			continue;
		if (probe_asked(name))
			continue;
		if (config_unknown_name(*e, msg, sizeof(msg)) && (hint = strstr(msg, "; did you mean")))
			warn("%s is set, but the library reads no such variable%s", name, hint);
		else
			warn("%s is set, but the library reads no such variable", name);
		fix("correct its spelling or unset it (migrdma(7) lists the variables)");
	}
}

static const char *no_env(const char *name)
{
	(void)name;
	return NULL;
}

/*
 * Every variable but the rules, parsed by config_load().  It stops at the
 * first bad value, so hide each bad one and parse again: one run of the
 * doctor then reports every mistake, not just the first.
 */
static void check_variables(struct migrdma_config *cfg)
{
	char err[256], name[NAME_MAX_LEN], list[LIST_MAX] = "";
	unsigned bad = 0;

	for (;;) {
		probe.nasked = 0;
		probe.overflow = false;
		if (config_load(cfg, probe_getenv, err, sizeof(err)) == 0)
			break;
		bad++;
		fail("%s", err);
		if (err_var_name(err, name, sizeof(name)) < 0 || probe_masked(name) ||
		    probe.nmasked == PROBE_NAMES) {
			fix("correct the variable named above (migrdma(7) lists what each accepts)");
			/* Cannot tell what else is wrong: go on with the defaults. */
			config_load(cfg, no_env, NULL, 0);
			return;
		}
		fix("set %s to one of the values named, or unset it for the default", name);
		strcpy(probe.masked[probe.nmasked++], name);
	}

	if (!bad) {
		list_set_variables(list, sizeof(list));
		if (*list)
			ok("MIGRDMA_* variables are valid: %s", list);
		else
			ok("MIGRDMA_* variables: none set besides the rules, the defaults apply");
	}
	if (cfg->disabled) {
		warn("MIGRDMA_DISABLE=%s: the library will stay inert and the migration would use TCP",
		     getenv("MIGRDMA_DISABLE"));
		fix("unset MIGRDMA_DISABLE");
	}
	check_unknown_variables();
}

/* The whole configuration: the rules, then every other variable. */
static void check_config(const char *targets, struct migrdma_config *cfg)
{
	static struct migrdma_config rules;

	check_rules(targets, &rules);
	check_variables(cfg);
	/* check_variables() hid MIGRDMA_TARGETS from the parser: add the rules. */
	memcpy(cfg->rules, rules.rules, sizeof(cfg->rules));
	cfg->nrules = rules.nrules;
}

/* ---- library --------------------------------------------------------------- */

/*
 * The names a preloaded libmigrdma.so must define for QEMU's migration
 * socket: connect to divert it, and the two glibc names a stale or foreign
 * build is most likely to miss, which would leave those calls to libc.
 */
static const char *const lib_exports[] = { "connect", "fcntl64", "close_range" };

static int exe_dir(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);
	char *slash;

	if (n <= 0)
		return -1;
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	return 0;
}

static bool try_library(const char *cand, char *buf, char *looked, size_t looked_len)
{
	if (access(cand, F_OK) == 0) {
		/* buf is PATH_MAX long, as realpath() wants. */
		if (!realpath(cand, buf) && snprintf(buf, PATH_MAX, "%s", cand) >= PATH_MAX)
			return false;
		return true;
	}
	append(looked, looked_len, "%s%s", *looked ? ", " : "", cand);
	return false;
}

/*
 * migrdma-run's search order: --lib or $MIGRDMA_LIB (an explicit choice is
 * used as it is, found or not), the installed path, then the same path
 * relative to this binary (an install with another --prefix), then the build
 * tree this binary was built in.  Writes the places tried into looked.
 */
static const char *find_library(const char *opt, char buf[PATH_MAX],
				char *looked, size_t looked_len)
{
	const char *env = getenv("MIGRDMA_LIB");
	char dir[PATH_MAX], cand[PATH_MAX + 64];

	if (opt || (env && *env)) {
		snprintf(buf, PATH_MAX, "%s", opt ? opt : env);
		return buf;
	}
	if (try_library(MIGRDMA_INSTALL_LIB, buf, looked, looked_len))
		return buf;
	if (exe_dir(dir, sizeof(dir)) < 0)
		return NULL;
	if (MIGRDMA_LIBDIR_REL[0]) {
		snprintf(cand, sizeof(cand), "%s/../%s/libmigrdma.so", dir, MIGRDMA_LIBDIR_REL);
		if (try_library(cand, buf, looked, looked_len))
			return buf;
	}
	snprintf(cand, sizeof(cand), "%s/../libmigrdma.so", dir);
	if (try_library(cand, buf, looked, looked_len))
		return buf;
	return NULL;
}

/*
 * dlopen() runs the library's constructor, which reads MIGRDMA_*: with the
 * configuration already checked, make it inert and quiet instead of letting
 * it log the same errors again.
 */
static void quiet_library_environment(void)
{
	char name[NAME_MAX_LEN];
	unsigned guard = 0;
	char **e;

again:
	for (e = environ; *e && guard < 1024; e++) {
		size_t n = strcspn(*e, "=");

		if (strncmp(*e, "MIGRDMA_", 8) || n >= sizeof(name))
			continue;
		memcpy(name, *e, n);
		name[n] = '\0';
		unsetenv(name);
		guard++;
		/* unsetenv() reshuffled environ: start over. */
		goto again;
	}
	setenv("MIGRDMA_DISABLE", "1", 1);
}

/*
 * The version built into a library file: its what(1) marker
 * "@(#)migrdma VERSION" (shim/init.c), found without loading the file.
 */
static bool library_version(const char *path, char *buf, size_t len)
{
	static const char marker[] = "@(#)migrdma ";
	char chunk[65536 + sizeof(marker)];
	size_t have = 0, n, i, k;
	bool found = false;
	FILE *f;

	f = fopen(path, "re");
	if (!f)
		return false;
	while (!found && (n = fread(chunk + have, 1, sizeof(chunk) - have, f)) > 0) {
		n += have;
		for (i = 0; i + sizeof(marker) - 1 < n; i++) {
			if (memcmp(chunk + i, marker, sizeof(marker) - 1))
				continue;
			i += sizeof(marker) - 1;
			for (k = 0; i + k < n && k + 1 < len && chunk[i + k] > ' ' &&
				    chunk[i + k] < 0x7f; k++)
				buf[k] = chunk[i + k];
			buf[k] = '\0';
			found = k > 0;
			break;
		}
		/* Keep a marker's worth of tail: it may straddle two reads. */
		have = n < sizeof(marker) ? n : sizeof(marker) - 1;
		memmove(chunk, chunk + n - have, have);
	}
	fclose(f);
	return found;
}

static void check_library(const char *opt)
{
	char version[64];
	char path[PATH_MAX], looked[LIST_MAX] = "", missing[256] = "";
	struct link_map *lm = NULL;
	void *h;
	size_t i;

	if (!find_library(opt, path, looked, sizeof(looked))) {
		fail("library: libmigrdma.so not found (looked at %s)", looked);
		fix("build it (cmake --build build), install it (cmake --install build), or name it with --lib PATH or MIGRDMA_LIB");
		return;
	}
	if (access(path, R_OK) < 0) {
		fail("library: %s: %s", path, strerror(errno));
		fix("%s", opt ? "pass the path of a built libmigrdma.so to --lib"
			      : "point MIGRDMA_LIB at a built libmigrdma.so, or unset it");
		return;
	}

	quiet_library_environment();
	dlerror();
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fail("library: cannot load it: %s", dlerror());
		fix("install the libraries it names (packages libibverbs1, librdmacm1, libunwind8), or rebuild it on this host");
		return;
	}
	if (dlinfo(h, RTLD_DI_LINKMAP, &lm) < 0 || !lm) {
		fail("library: %s: dlinfo: %s", path, dlerror());
		fix("rebuild the library (cmake --build build)");
		goto out;
	}
	/* dlsym() also searches the library's dependencies: libc has them all. */
	for (i = 0; i < ARRAY_SIZE(lib_exports); i++) {
		void *sym = dlsym(h, lib_exports[i]);
		Dl_info info;

		if (sym && dladdr(sym, &info) && info.dli_fname &&
		    !strcmp(info.dli_fname, lm->l_name))
			continue;
		append(missing, sizeof(missing), "%s%s", *missing ? ", " : "", lib_exports[i]);
	}
	if (*missing) {
		fail("library: %s loads but does not define %s", path, missing);
		fix("rebuild it from this source tree (cmake --build build); that build of the library would leave those calls to libc");
		goto out;
	}
	if (!library_version(path, version, sizeof(version))) {
		warn("library: %s loads, but carries no version (a build older than 0.1.0?)", path);
		fix("rebuild or reinstall it from this source tree, so that its version can be checked");
	} else if (strcmp(version, MIGRDMA_VERSION)) {
		warn("library: %s is migrdma %s, this tool is %s", path, version, MIGRDMA_VERSION);
		fix("install the library and the tools of one build");
	} else {
		ok("library: %s (migrdma %s) loads and defines connect, fcntl64 and close_range",
		   path, version);
	}
out:
	dlclose(h);
}

/* ---- kernel interfaces, devices, ports --------------------------------------- */

static bool check_rdma_cm(void)
{
	const char *node = "/dev/infiniband/rdma_cm";
	int fd = open(node, O_RDWR | O_CLOEXEC);

	if (fd >= 0) {
		close(fd);
		ok("%s opens read-write (rdma_ucm is loaded)", node);
		return true;
	}
	if (errno == ENOENT) {
		fail("%s is missing: the rdma_ucm module is not loaded", node);
		fix("modprobe rdma_ucm (and list it in /etc/modules-load.d/rdma.conf to load it at boot)");
	} else if (errno == EACCES || errno == EPERM) {
		fail("%s: %s", node, strerror(errno));
		fix("give this user read-write access to %s (the rdma-core package's udev rules make it 0666)", node);
	} else {
		fail("%s: %s", node, strerror(errno));
		fix("check dmesg for rdma_ucm errors, then modprobe -r rdma_ucm && modprobe rdma_ucm");
	}
	return false;
}

static const char *port_state(enum ibv_port_state s)
{
	switch (s) {
	case IBV_PORT_DOWN:
		return "DOWN";
	case IBV_PORT_INIT:
		return "INIT";
	case IBV_PORT_ARMED:
		return "ARMED";
	case IBV_PORT_ACTIVE:
		return "ACTIVE";
	case IBV_PORT_ACTIVE_DEFER:
		return "ACTIVE_DEFER";
	default:
		return "NOP";
	}
}

static unsigned mtu_bytes(enum ibv_mtu m)
{
	return (m >= IBV_MTU_256 && m <= IBV_MTU_4096) ? 128u << m : 0;
}

static bool is_roce(struct ibv_context *ctx, const struct ibv_port_attr *pa)
{
	return ctx->device->transport_type == IBV_TRANSPORT_IB &&
	       pa->link_layer == IBV_LINK_LAYER_ETHERNET;
}

static const char *link_kind(struct ibv_context *ctx, const struct ibv_port_attr *pa)
{
	if (ctx->device->transport_type == IBV_TRANSPORT_IWARP)
		return "iWARP";
	if (pa->link_layer == IBV_LINK_LAYER_ETHERNET)
		return "Ethernet (RoCE)";
	return "InfiniBand";
}

/* The netdev under a RoCE or iWARP port, from its first GID; "" for none. */
static const char *port_netdev(struct ibv_context *ctx, uint8_t port, char *buf)
{
	struct ibv_gid_entry e;

	buf[0] = '\0';
	if (ibv_query_gid_ex(ctx, port, 0, &e, 0) == 0 && e.ndev_ifindex &&
	    !if_indextoname(e.ndev_ifindex, buf))
		buf[0] = '\0';
	return buf;
}

static void port_down_fix(struct ibv_context *ctx, const struct ibv_port_attr *pa,
			  const char *netdev)
{
	if (pa->link_layer == IBV_LINK_LAYER_ETHERNET ||
	    ctx->device->transport_type == IBV_TRANSPORT_IWARP) {
		if (*netdev)
			fix("ip link set dev %s up, then check its link (ip link show %s; ethtool %s)",
			    netdev, netdev, netdev);
		else
			fix("bring up the Ethernet interface under this device and check its link");
	} else if (pa->state == IBV_PORT_INIT || pa->state == IBV_PORT_ARMED) {
		fix("the port waits for a subnet manager: run opensm on one host of the fabric");
	} else {
		fix("check the cable and the switch port (ibstat shows the physical state)");
	}
}

static void check_port(struct ibv_context *ctx, const char *name, uint8_t port,
		       unsigned *active)
{
	struct ibv_port_attr pa;
	char netdev[IF_NAMESIZE] = "";
	int ret;

	ret = ibv_query_port(ctx, port, &pa);
	if (ret) {
		fail("%s port %u: ibv_query_port: %s", name, port, strerror(ret));
		fix("check dmesg for driver errors, then reload the device's driver");
		return;
	}
	if (pa.link_layer == IBV_LINK_LAYER_ETHERNET ||
	    ctx->device->transport_type == IBV_TRANSPORT_IWARP)
		port_netdev(ctx, port, netdev);

	if (pa.state != IBV_PORT_ACTIVE) {
		warn("%s port %u: %s, not ACTIVE (%s%s%s)", name, port, port_state(pa.state),
		     link_kind(ctx, &pa), *netdev ? ", netdev " : "", netdev);
		port_down_fix(ctx, &pa, netdev);
		return;
	}
	(*active)++;
	ok("%s port %u: ACTIVE, %s, active MTU %u%s%s", name, port, link_kind(ctx, &pa),
	   mtu_bytes(pa.active_mtu), *netdev ? ", netdev " : "", netdev);
	/* RoCE's MTU follows the netdev's: 1500 gives 1024, and 4x the packets. */
	if (is_roce(ctx, &pa) && pa.active_mtu < IBV_MTU_4096) {
		warn("%s port %u: RoCE active MTU %u is small: four times the packets of MTU 4096",
		     name, port, mtu_bytes(pa.active_mtu));
		fix("raise the netdev MTU to 9000 (ip link set dev %s mtu 9000) on both hosts and the switch ports between them",
		    *netdev ? netdev : "NETDEV");
	}
}

static void check_device(struct ibv_device *dev, unsigned *active)
{
	const char *name = ibv_get_device_name(dev);
	struct ibv_device_attr attr;
	struct ibv_context *ctx;
	char node[sizeof(dev->dev_name) + 32];
	unsigned port;
	int fd, ret, err;

	snprintf(node, sizeof(node), "/dev/infiniband/%s", dev->dev_name);
	fd = open(node, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
		fail("%s: cannot open %s: %s", name, node, strerror(err));
		if (err == ENOENT)
			fix("modprobe ib_uverbs");
		else
			fix("give this user read-write access to %s (a udev rule, or the group that owns it)", node);
		return;
	}
	close(fd);

	ctx = ibv_open_device(dev);
	if (!ctx) {
		fail("%s: ibv_open_device: %s", name, strerror(errno));
		fix("check dmesg for driver errors; a missing provider is fixed by installing ibverbs-providers");
		return;
	}
	ret = ibv_query_device(ctx, &attr);
	if (ret) {
		fail("%s: ibv_query_device: %s", name, strerror(ret));
		fix("check dmesg for driver errors, then reload the device's driver");
		goto out;
	}
	ok("%s: %s opens read-write, %u port%s", name, node, attr.phys_port_cnt,
	   attr.phys_port_cnt == 1 ? "" : "s");
	for (port = 1; port <= attr.phys_port_cnt; port++)
		check_port(ctx, name, (uint8_t)port, active);
out:
	ibv_close_device(ctx);
}

/* ---- target addresses ---------------------------------------------------------- */

struct target {
	struct sockaddr_storage ss;
	char label[160];
};

static bool is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

/* Same family and address; ports do not matter. */
static bool same_addr(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a->sa_family != b->sa_family)
		return false;
	if (a->sa_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		       &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr));
}

/* The interface holding addr, to name the netdev that lacks an RDMA device. */
static bool iface_of(const struct sockaddr *sa, char *buf, size_t len)
{
	struct ifaddrs *ifa, *i;
	bool found = false;

	if (getifaddrs(&ifa) < 0)
		return false;
	for (i = ifa; i && !found; i = i->ifa_next) {
		if (i->ifa_addr && (i->ifa_addr->sa_family == AF_INET ||
				    i->ifa_addr->sa_family == AF_INET6) &&
		    same_addr(i->ifa_addr, sa)) {
			snprintf(buf, len, "%s", i->ifa_name);
			found = true;
		}
	}
	freeifaddrs(ifa);
	return found;
}

/*
 * The GID rdma_cm will use from addr: RoCE GIDs carry the IP address
 * (IPv4-mapped for IPv4), and rdma_cm prefers RoCE v2 where both exist.  On
 * InfiniBand the port GID, index 0.
 */
static int find_gid(struct ibv_context *ctx, uint8_t port, const struct sockaddr *addr,
		    struct ibv_gid_entry *out)
{
	struct ibv_port_attr pa;
	union ibv_gid want;
	bool found = false;
	int i;

	if (ibv_query_port(ctx, port, &pa))
		return -1;
	memset(&want, 0, sizeof(want));
	if (addr->sa_family == AF_INET) {
		want.raw[10] = 0xff;
		want.raw[11] = 0xff;
		memcpy(&want.raw[12], &((const struct sockaddr_in *)addr)->sin_addr, 4);
	} else {
		memcpy(want.raw, &((const struct sockaddr_in6 *)addr)->sin6_addr, 16);
	}
	for (i = 0; i < pa.gid_tbl_len; i++) {
		struct ibv_gid_entry e;

		if (ibv_query_gid_ex(ctx, port, (uint32_t)i, &e, 0))
			continue;
		if (pa.link_layer != IBV_LINK_LAYER_ETHERNET) {
			*out = e;
			return 0;
		}
		if (memcmp(e.gid.raw, want.raw, sizeof(want.raw)))
			continue;
		if (e.gid_type == IBV_GID_TYPE_ROCE_V2) {
			*out = e;
			return 0;
		}
		if (!found)
			*out = e;
		found = true;
	}
	return found ? 0 : -1;
}

static const char *gid_type_str(uint32_t t)
{
	switch (t) {
	case IBV_GID_TYPE_IB:
		return "IB";
	case IBV_GID_TYPE_ROCE_V1:
		return "RoCE v1";
	case IBV_GID_TYPE_ROCE_V2:
		return "RoCE v2";
	default:
		return "unknown type";
	}
}

/* Wait for the next event on ch; -1 with errno ETIMEDOUT if none came. */
static int next_event(struct rdma_event_channel *ch, int timeout_ms,
		      enum rdma_cm_event_type *type, int *status)
{
	struct pollfd pfd = { .fd = ch->fd, .events = POLLIN };
	struct rdma_cm_event *ev;
	int n;

	do
		n = poll(&pfd, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		errno = ETIMEDOUT;
	if (n <= 0)
		return -1;
	if (rdma_get_cm_event(ch, &ev))
		return -1;
	*type = ev->event;
	*status = ev->status;
	rdma_ack_cm_event(ev);
	return 0;
}

/* Why an expected event did not come, for a FAIL line. */
static void event_why(int got, enum rdma_cm_event_type type, int status,
		      char *buf, size_t len)
{
	if (got < 0)
		snprintf(buf, len, "%s", errno == ETIMEDOUT ? "no answer within the timeout"
							     : strerror(errno));
	else if (status < 0)
		snprintf(buf, len, "%s: %s", rdma_event_str(type), strerror(-status));
	else
		snprintf(buf, len, "%s (status %d)", rdma_event_str(type), status);
}

enum locality { ADDR_REMOTE, ADDR_LOCAL, ADDR_LOCAL_NO_RDMA, ADDR_UNKNOWN };

/*
 * Binding decides whether addr is ours: rdma_cm refuses an address no
 * interface holds (EADDRNOTAVAIL) and one whose interface has no RDMA
 * device (ENODEV).
 */
static enum locality classify(struct rdma_event_channel *ch, const struct sockaddr *sa,
			     char *dev, size_t len, unsigned *port)
{
	struct sockaddr_storage ss;
	struct rdma_cm_id *id;
	enum locality where;

	memcpy(&ss, sa, sizeof(ss));
	if (ss.ss_family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = 0;
	else
		((struct sockaddr_in6 *)&ss)->sin6_port = 0;
	if (rdma_create_id(ch, &id, NULL, RDMA_PS_TCP))
		return ADDR_UNKNOWN;
	if (rdma_bind_addr(id, (struct sockaddr *)&ss) == 0) {
		where = id->verbs ? ADDR_LOCAL : ADDR_LOCAL_NO_RDMA;
		if (id->verbs) {
			snprintf(dev, len, "%s", ibv_get_device_name(id->verbs->device));
			*port = id->port_num;
		}
	} else if (errno == EADDRNOTAVAIL)
		where = ADDR_REMOTE;
	else if (errno == ENODEV)
		where = ADDR_LOCAL_NO_RDMA;
	else
		where = ADDR_UNKNOWN;
	rdma_destroy_id(id);
	return where;
}

/*
 * Resolve addr and a route to it the way connect() will, and say which
 * device, port, GID and netdev the connection would use.
 */
static void check_target(const struct target *t)
{
	const struct sockaddr *sa = (const struct sockaddr *)&t->ss;
	char why[160], ifname[IF_NAMESIZE], src[INET6_ADDRSTRLEN], gid[INET6_ADDRSTRLEN];
	char netdev[IF_NAMESIZE] = "", detail[256] = "", where_str[128];
	char bound_dev[IBV_SYSFS_NAME_MAX] = "";
	unsigned bound_port = 0;
	struct rdma_event_channel *ch;
	enum rdma_cm_event_type type = RDMA_CM_EVENT_ADDR_ERROR;
	struct rdma_cm_id *id = NULL;
	struct ibv_port_attr pa;
	struct ibv_gid_entry e;
	enum locality where;
	const char *dev;
	int got, status = 0;

	ch = rdma_create_event_channel();
	if (!ch) {
		fail("%s: rdma_create_event_channel: %s", t->label, strerror(errno));
		fix("modprobe rdma_ucm, and check that this user may open /dev/infiniband/rdma_cm");
		return;
	}
	where = classify(ch, sa, bound_dev, sizeof(bound_dev), &bound_port);
	if (where == ADDR_LOCAL_NO_RDMA && is_loopback(sa)) {
		fail("%s: a loopback address, which no RDMA device serves", t->label);
		fix("use this host's address on the RDMA network, in the rule and in QEMU's migration URI");
		goto out;
	}
	if (where == ADDR_LOCAL_NO_RDMA) {
		bool known = iface_of(sa, ifname, sizeof(ifname));

		fail("%s: a local address, but %s has no RDMA device", t->label,
		     known ? ifname : "its interface");
		fix("use the address of the RDMA NIC, or for soft-RoCE: rdma link add rxe_%s type rxe netdev %s",
		    known ? ifname : "NETDEV", known ? ifname : "NETDEV");
		goto out;
	}

	if (rdma_create_id(ch, &id, NULL, RDMA_PS_TCP)) {
		fail("%s: rdma_create_id: %s", t->label, strerror(errno));
		fix("check dmesg for rdma_cm errors");
		goto out;
	}
	if (rdma_resolve_addr(id, NULL, (struct sockaddr *)sa, RESOLVE_TIMEOUT_MS)) {
		got = -1;
		goto addr_failed;
	}
	got = next_event(ch, RESOLVE_TIMEOUT_MS + 1000, &type, &status);
	if (got < 0 || type != RDMA_CM_EVENT_ADDR_RESOLVED)
		goto addr_failed;
	if (rdma_resolve_route(id, RESOLVE_TIMEOUT_MS)) {
		got = -1;
		goto route_failed;
	}
	got = next_event(ch, RESOLVE_TIMEOUT_MS + 1000, &type, &status);
	if (got < 0 || type != RDMA_CM_EVENT_ROUTE_RESOLVED)
		goto route_failed;

	dev = ibv_get_device_name(id->verbs->device);
	addr_format_host(rdma_get_local_addr(id), src, sizeof(src));
	if (find_gid(id->verbs, id->port_num, rdma_get_local_addr(id), &e) == 0) {
		inet_ntop(AF_INET6, e.gid.raw, gid, sizeof(gid));
		snprintf(detail, sizeof(detail), ", GID index %u %s (%s)", e.gid_index, gid,
			 gid_type_str(e.gid_type));
		if (e.ndev_ifindex && !if_indextoname(e.ndev_ifindex, netdev))
			netdev[0] = '\0';
	}
	if (ibv_query_port(id->verbs, id->port_num, &pa) == 0 && pa.state != IBV_PORT_ACTIVE) {
		fail("%s: would use %s port %u, which is %s", t->label, dev, id->port_num,
		     port_state(pa.state));
		port_down_fix(id->verbs, &pa, netdev);
		goto out;
	}
	if (where == ADDR_LOCAL)
		snprintf(where_str, sizeof(where_str), "local, a listener binds to %s port %u",
			 bound_dev, bound_port);
	else
		snprintf(where_str, sizeof(where_str), "reachable");
	ok("%s: %s; connections to it use %s port %u from %s%s%s%s", t->label, where_str,
	   dev, id->port_num, src, detail, *netdev ? ", netdev " : "", netdev);
	goto out;

addr_failed:
	if (got < 0 && !errno)
		errno = EIO;
	event_why(got, type, status, why, sizeof(why));
	fail("%s: no RDMA path to it: address resolution failed (%s)", t->label, why);
	addr_format_host(sa, src, sizeof(src));
	fix("check that the route to %s leaves through a netdev with an RDMA device (ip route get %s; rdma link) and that the host answers (ping %s)",
	    src, src, src);
	goto out;

route_failed:
	event_why(got, type, status, why, sizeof(why));
	fail("%s: address resolved, but route resolution failed (%s)", t->label, why);
	fix("on InfiniBand, a subnet manager must run (opensm); on RoCE, check the neighbour entry (ip neigh) and the netdev's link");
out:
	if (id)
		rdma_destroy_id(id);
	rdma_destroy_event_channel(ch);
}

/* "ADDR", "[IPV6]" or a rule "ADDR:PORT" naming one address. */
static int parse_for(const char *arg, struct target *t)
{
	static struct migrdma_config one;
	struct sockaddr_in *sin = (struct sockaddr_in *)&t->ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&t->ss;
	char buf[INET6_ADDRSTRLEN + 2];
	size_t n = strlen(arg);

	memset(t, 0, sizeof(*t));
	snprintf(t->label, sizeof(t->label), "%s (--for)", arg);
	if (n >= 2 && n < sizeof(buf) && arg[0] == '[' && arg[n - 1] == ']') {
		memcpy(buf, arg + 1, n - 2);
		buf[n - 2] = '\0';
		arg = buf;
	}
	if (inet_pton(AF_INET, arg, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, arg, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		return 0;
	}
	if (config_parse_targets(&one, arg, NULL, 0) == 0 && one.nrules == 1 &&
	    one.rules[0].family != AF_UNSPEC) {
		if (one.rules[0].family == AF_INET) {
			sin->sin_family = AF_INET;
			sin->sin_addr = one.rules[0].addr.v4;
		} else {
			sin6->sin6_family = AF_INET6;
			sin6->sin6_addr = one.rules[0].addr.v6;
		}
		return 0;
	}
	return -1;
}

/* Each distinct address of the rules, then each --for address. */
static void check_targets(const struct migrdma_config *cfg, const struct target *fors,
			  size_t nfor, bool have_cm)
{
	struct target *t;
	size_t i, j, n = 0, wild = 0;

	t = calloc(CONFIG_MAX_RULES + MAX_FOR, sizeof(*t));
	if (!t) {
		fail("target addresses: out of memory");
		fix("free some memory and run migrdma doctor again");
		return;
	}
	for (i = 0; i < cfg->nrules; i++) {
		const struct target_rule *r = &cfg->rules[i];
		struct target *c = &t[n];
		char rule[128];

		if (r->family == AF_UNSPEC) {
			wild++;
			continue;
		}
		memset(c, 0, sizeof(*c));
		c->ss.ss_family = (sa_family_t)r->family;
		if (r->family == AF_INET)
			((struct sockaddr_in *)&c->ss)->sin_addr = r->addr.v4;
		else
			((struct sockaddr_in6 *)&c->ss)->sin6_addr = r->addr.v6;
		for (j = 0; j < n && !same_addr((struct sockaddr *)&t[j].ss,
						(struct sockaddr *)&c->ss); j++)
			;
		if (j < n)
			continue;
		format_rule(r, rule, sizeof(rule));
		snprintf(c->label, sizeof(c->label), "target %s", rule);
		n++;
	}
	for (i = 0; i < nfor; i++)
		t[n++] = fors[i];

	if (!n) {
		if (wild) {
			warn("no target address to check: every rule is *:PORT");
			fix("name the peer's address with --for ADDR");
		}
		goto out;
	}
	if (!have_cm) {
		warn("target addresses not checked: rdma_cm is unavailable");
		fix("fix the /dev/infiniband/rdma_cm line above, then run migrdma doctor again");
		goto out;
	}
	for (i = 0; i < n; i++)
		check_target(&t[i]);
out:
	free(t);
}

/* ---- memlock ------------------------------------------------------------------- */

static bool have_cap_ipc_lock(void)
{
	unsigned long long eff = 0;
	char line[256];
	bool found = false;
	FILE *f;

	f = fopen("/proc/self/status", "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "CapEff: %llx", &eff) == 1) {
			found = true;
			break;
		}
	}
	fclose(f);
	return found && (eff >> CAP_IPC_LOCK_BIT) & 1;
}

/*
 * Registration pins pages against RLIMIT_MEMLOCK (CAP_IPC_LOCK lifts it).
 * Count, for each connection a migration opens, its receive ring and
 * buffers and its own zero-copy registration cache, capped at
 * MIGRDMA_PIN_LIMIT per connection.
 */
static void check_memlock(const struct migrdma_config *cfg)
{
	uint64_t need = EXPECTED_CONNS * ((uint64_t)cfg->ring_size + CONN_BUFFERS +
					  (uint64_t)cfg->pin_limit);
	char h_need[32], h_cur[32], h_max[32], h_ring[32], h_buf[32], h_pin[32];
	char how[256];
	struct rlimit rl;

	if (getrlimit(RLIMIT_MEMLOCK, &rl) < 0) {
		fail("memlock: getrlimit: %s", strerror(errno));
		fix("run ulimit -l to see the limit; it must be unlimited or above %s",
		    human(need, h_need, sizeof(h_need)));
		return;
	}
	snprintf(how, sizeof(how), "%d connections x (%s ring + %s buffers + %s MIGRDMA_PIN_LIMIT)",
		 EXPECTED_CONNS, human(cfg->ring_size, h_ring, sizeof(h_ring)),
		 human(CONN_BUFFERS, h_buf, sizeof(h_buf)),
		 human(cfg->pin_limit, h_pin, sizeof(h_pin)));
	human(need, h_need, sizeof(h_need));
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need) {
		ok("memlock limit %s covers what the configuration may pin, about %s (%s)",
		   rl.rlim_cur == RLIM_INFINITY ? "unlimited" : human(rl.rlim_cur, h_cur, sizeof(h_cur)),
		   h_need, how);
		return;
	}
	human(rl.rlim_cur, h_cur, sizeof(h_cur));
	if (rl.rlim_max == RLIM_INFINITY)
		snprintf(h_max, sizeof(h_max), "unlimited");
	else
		human(rl.rlim_max, h_max, sizeof(h_max));
	if (have_cap_ipc_lock()) {
		warn("memlock limit %s is below what the configuration may pin, about %s (%s); this process has CAP_IPC_LOCK, which lifts the limit, but a QEMU started without it (libvirt runs QEMU unprivileged) would fail to register memory",
		     h_cur, h_need, how);
	} else {
		fail("memlock limit %s (hard limit %s) is below what the configuration may pin, about %s (%s): memory registration would fail",
		     h_cur, h_max, h_need, how);
	}
	fix("ulimit -l unlimited in the shell that starts QEMU; LimitMEMLOCK=infinity in a systemd unit; <memtune><hard_limit> in a libvirt domain; or lower MIGRDMA_PIN_LIMIT");
}

/* ---- no device at all -------------------------------------------------------------- */

/* An up, non-loopback interface with an address, to make the hint copy-pastable. */
static void some_netdev(char *buf, size_t len)
{
	struct ifaddrs *ifa, *i;

	snprintf(buf, len, "eth0");
	if (getifaddrs(&ifa) < 0)
		return;
	for (i = ifa; i; i = i->ifa_next) {
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
		    (i->ifa_flags & IFF_UP) && !(i->ifa_flags & IFF_LOOPBACK)) {
			snprintf(buf, len, "%s", i->ifa_name);
			break;
		}
	}
	freeifaddrs(ifa);
}

/*
 * Devices the kernel has, whether or not libibverbs can use them: names the
 * first few into names, returns how many.
 */
static int kernel_devices(char *names, size_t len)
{
	struct dirent *d;
	DIR *dir;
	int n = 0;

	names[0] = '\0';
	dir = opendir("/sys/class/infiniband");
	if (!dir)
		return 0;
	while ((d = readdir(dir))) {
		if (d->d_name[0] == '.')
			continue;
		append(names, len, "%s%s", n ? ", " : "", d->d_name);
		n++;
	}
	closedir(dir);
	return n;
}

/* No device at all: say what is missing; the caller goes on with the rest. */
static void no_devices(void)
{
	char netdev[IF_NAMESIZE], names[128];

	if (kernel_devices(names, sizeof(names)) > 0) {
		fail("the kernel has RDMA devices (%s) but libibverbs lists none", names);
		fix("modprobe ib_uverbs, and install ibverbs-providers");
		return;
	}
	some_netdev(netdev, sizeof(netdev));
	fail("no RDMA devices found: a matched connection would fail with ENODEV (or use TCP with MIGRDMA_FALLBACK=tcp)");
	fix("load the NIC's RDMA driver, or for testing: modprobe rdma_rxe && rdma link add rxe0 type rxe netdev %s",
	    netdev);
	if (access("/dev/infiniband/rdma_cm", F_OK) < 0)
		printf("      (and /dev/infiniband/rdma_cm is missing: modprobe rdma_ucm)\n");
}

/* ---- command line ------------------------------------------------------------------- */

static void doctor_usage(FILE *out)
{
	fprintf(out,
		"usage: migrdma doctor [-t RULES]... [--for ADDR]... [--lib PATH] [--config-only]\n"
		"\n"
		"Check that this host can carry a live migration over RDMA with the\n"
		"MIGRDMA_* configuration in the environment, and say how to fix what\n"
		"is missing.  Exit status: 0 if no check failed, 1 otherwise.\n"
		"\n"
		"  -t, --targets RULES  check these rules instead of MIGRDMA_TARGETS\n"
		"                       (repeatable; joined with commas)\n"
		"      --for ADDR       also check the RDMA path to ADDR (repeatable)\n"
		"      --lib PATH       check this libmigrdma.so instead of searching\n"
		"      --config-only    check only the MIGRDMA_* variables; touch no device\n"
		"  -h, --help           show this help\n");
}

int cmd_doctor(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "targets", required_argument, NULL, 't' },
		{ "for", required_argument, NULL, 'F' },
		{ "lib", required_argument, NULL, 'L' },
		{ "config-only", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct migrdma_config cfg;
	static struct target fors[MAX_FOR];
	static char targets[TARGETS_MAX];
	struct ibv_device **devs = NULL;
	const char *lib = NULL;
	bool have_targets = false, config_only = false, have_cm = false;
	size_t nfor = 0;
	unsigned active = 0;
	int c, i, ndev = 0;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+:t:h", longopts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (strlen(targets) + strlen(optarg) + 2 > sizeof(targets)) {
				fprintf(stderr, "migrdma doctor: -t: rules longer than %zu characters\n",
					sizeof(targets) - 1);
				return EXIT_USAGE;
			}
			if (have_targets)
				strcat(targets, ",");
			strcat(targets, optarg);
			have_targets = true;
			break;
		case 'F':
			if (nfor == MAX_FOR) {
				fprintf(stderr, "migrdma doctor: at most %d --for addresses\n", MAX_FOR);
				return EXIT_USAGE;
			}
			if (parse_for(optarg, &fors[nfor]) < 0) {
				fprintf(stderr, "migrdma doctor: --for %s: not an IPv4 or IPv6 address\n",
					optarg);
				return EXIT_USAGE;
			}
			nfor++;
			break;
		case 'L':
			lib = optarg;
			break;
		case 'C':
			config_only = true;
			break;
		case 'h':
			doctor_usage(stdout);
			return 0;
		case ':':
			fprintf(stderr, "migrdma doctor: option %s needs an argument\n", argv[optind - 1]);
			doctor_usage(stderr);
			return EXIT_USAGE;
		default:
			if (optopt)
				fprintf(stderr, "migrdma doctor: unknown option -%c\n", optopt);
			else
				fprintf(stderr, "migrdma doctor: unknown option %s\n", argv[optind - 1]);
			doctor_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "migrdma doctor: unexpected argument '%s'\n", argv[optind]);
		doctor_usage(stderr);
		return EXIT_USAGE;
	}

	/* Lines, not blocks, when piped: the VM console and tee show progress. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	printf("migrdma doctor %s\n", MIGRDMA_VERSION);
	check_config(have_targets ? targets : NULL, &cfg);

	if (!config_only) {
		check_library(lib);
		devs = ibv_get_device_list(&ndev);
		if (!devs || ndev <= 0) {
			/*
			 * Nothing to carry a migration, but the rest of the
			 * set-up can still be checked: fix it all in one go.
			 */
			if (devs)
				ibv_free_device_list(devs);
			devs = NULL;
			ndev = 0;
			no_devices();
		} else {
			have_cm = check_rdma_cm();
			for (i = 0; i < ndev; i++)
				check_device(devs[i], &active);
			if (!active) {
				fail("no RDMA port is ACTIVE");
				fix("see the port lines above: bring up the netdev under a RoCE device, or start a subnet manager on InfiniBand");
			}
			ibv_free_device_list(devs);
			check_targets(&cfg, fors, nfor, have_cm);
		}
		check_memlock(&cfg);
	}

	if (nfail)
		printf("migrdma doctor: %u problem%s, %u warning%s: fix the FAIL lines before migrating\n",
		       nfail, nfail == 1 ? "" : "s", nwarn, nwarn == 1 ? "" : "s");
	else
		printf("migrdma doctor: no problems, %u warning%s\n", nwarn, nwarn == 1 ? "" : "s");
	return nfail ? 1 : 0;
}
