// SPDX-License-Identifier: MIT
/*
 * sockcheck driver: picks a case and runs its server half, client half, or
 * both (local mode: server in a forked child on 127.0.0.1, ephemeral port).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sockcheck.h"

static const struct sc_case cases[] = {
#define SC_CASE(n, f, d) { #n, n##_server, n##_client, f, d },
#include "cases.def"
#undef SC_CASE
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

static void usage(void)
{
	fprintf(stderr,
		"usage: sockcheck server PORT CASE\n"
		"       sockcheck client ADDR PORT CASE\n"
		"       sockcheck local CASE\n"
		"       sockcheck list\n"
		"       sockcheck info CASE\n"
		"env: SOCKCHECK_SCALE (payload multiplier, default 1),\n"
		"     SOCKCHECK_MB (qemu_sendmsg MiB, default 256 * scale),\n"
		"     SOCKCHECK_TIMEOUT (s without progress, default 30),\n"
		"     SOCKCHECK_CONNECT_TIMEOUT (s to retry refused connects, default 10)\n");
	exit(2);
}

static const struct sc_case *find_case(const char *name)
{
	size_t i;

	for (i = 0; i < NCASES; i++)
		if (!strcmp(cases[i].name, name))
			return &cases[i];
	fprintf(stderr, "sockcheck: unknown case '%s' (try: sockcheck list)\n",
		name);
	exit(2);
}

static uint16_t parse_port(const char *s, bool allow_zero)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*end || v < (allow_zero ? 0 : 1) || v > 65535) {
		fprintf(stderr, "sockcheck: bad port '%s'\n", s);
		exit(2);
	}
	return (uint16_t)v;
}

static int run_half(const struct sc_case *c, struct sc_ctx *ctx)
{
	uint64_t t0 = sc_now_ns();
	int rc;

	sc_set_case(c->name, ctx->server ? "server" : "client");
	sc_watchdog_init();
	rc = ctx->server ? c->server(ctx) : c->client(ctx);
	alarm(0);
	if (rc == SC_EXIT_SKIP)
		return rc;
	if (rc)
		sc_fail("case returned %d", rc);
	printf("PASS case=%s bytes=%llu role=%s time=%.2fs\n", c->name,
	       (unsigned long long)sc_bytes(), ctx->server ? "server" : "client",
	       sc_since_s(t0));
	fflush(stdout);
	return 0;
}

static int run_server(const struct sc_case *c, uint16_t port)
{
	struct sc_ctx ctx = { .server = true, .port = port };
	socklen_t len = sizeof(ctx.addr);

	sc_set_case(c->name, "server");
	ctx.lfd = sc_listen_any(port);
	if (getsockname(ctx.lfd, (struct sockaddr *)&ctx.addr, &len))
		sc_fail_errno("getsockname(listener)");
	ctx.port = ntohs(ctx.addr.sin_port);
	if (!port)
		printf("INFO case=%s: server: listening port=%u\n", c->name,
		       ctx.port);
	return run_half(c, &ctx);
}

static int run_client(const struct sc_case *c, const char *addr, uint16_t port)
{
	struct sc_ctx ctx = { .server = false, .lfd = -1, .port = port };

	sc_set_case(c->name, "client");
	ctx.addr.sin_family = AF_INET;
	ctx.addr.sin_port = htons(port);
	if (inet_pton(AF_INET, addr, &ctx.addr.sin_addr) != 1) {
		fprintf(stderr, "sockcheck: bad IPv4 address '%s'\n", addr);
		return 2;
	}
	return run_half(c, &ctx);
}

/*
 * Local mode forks rather than using a thread so that each half has its own
 * fd table (close_range), signal dispositions (SIGPIPE) and alarm().
 */
static int run_local(const struct sc_case *c)
{
	struct sc_ctx sctx = { .server = true, .local = true };
	struct sc_ctx cctx = { .server = false, .local = true, .lfd = -1 };
	socklen_t len = sizeof(sctx.addr);
	int status, crc, src;
	pid_t pid, w;

	sc_set_case(c->name, "local");
	sctx.addr.sin_family = AF_INET;
	sctx.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sctx.lfd = sc_listen_aux(&sctx, 0, true);
	if (getsockname(sctx.lfd, (struct sockaddr *)&sctx.addr, &len))
		sc_fail_errno("getsockname(listener)");
	sctx.port = ntohs(sctx.addr.sin_port);
	cctx.addr = sctx.addr;
	cctx.port = sctx.port;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		sc_fail_errno("fork");
	if (pid == 0) {
		/* Never outlive a client half that died. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1)
			_exit(1);
		_exit(run_half(c, &sctx));
	}
	close(sctx.lfd);
	sc_set_child(pid);
	crc = run_half(c, &cctx);

	/* The child has its own watchdog; this one only guards waitpid. */
	sc_set_case(c->name, "client");
	sc_step("waiting for the server half to exit");
	do {
		w = waitpid(pid, &status, 0);
	} while (w < 0 && errno == EINTR);
	alarm(0);
	sc_set_child(0);
	if (w < 0)
		sc_fail_errno("waitpid");
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "FAIL case=%s: server: killed by signal %d\n",
			c->name, WTERMSIG(status));
		return 1;
	}
	src = WEXITSTATUS(status);
	if (src == SC_EXIT_SKIP || crc == SC_EXIT_SKIP)
		return SC_EXIT_SKIP;
	return src ? src : crc;
}

int main(int argc, char **argv)
{
	size_t i;

	/* Each PASS/INFO line must reach a pipe whole and in order. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		usage();
	if (!strcmp(argv[1], "list") && argc == 2) {
		for (i = 0; i < NCASES; i++)
			printf("%s\n", cases[i].name);
		return 0;
	}
	if (!strcmp(argv[1], "info") && argc == 3) {
		const struct sc_case *c = find_case(argv[2]);

		printf("name=%s side_tcp=%d\ndesc=%s\n", c->name,
		       !!(c->flags & SC_SIDE_TCP), c->desc);
		return 0;
	}
	if (!strcmp(argv[1], "server") && argc == 4)
		return run_server(find_case(argv[3]), parse_port(argv[2], true));
	if (!strcmp(argv[1], "client") && argc == 5)
		return run_client(find_case(argv[4]), argv[2],
				  parse_port(argv[3], false));
	if (!strcmp(argv[1], "local") && argc == 3)
		return run_local(find_case(argv[2]));
	usage();
}
