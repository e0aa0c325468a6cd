/*
 * dirty.c: a freestanding 32-bit multiboot "kernel" that never stops
 * rewriting a window of guest RAM, so that a live migration of the VM
 * running it has real work to do in every precopy iteration.
 *
 * Boot it with "qemu-system-x86_64 -kernel dirty.elf [-append ARGS]".
 * QEMU's multiboot loader hands over in 32-bit protected mode with paging
 * off and interrupts disabled, so every physical address is directly
 * writable and nothing can interrupt the loop.
 *
 * ARGS (the multiboot command line, space separated, all optional):
 *   window=MIB   size of the rewritten window (default 64)
 *   start=MIB    physical start of the window (default 16)
 *   rate=MIB     rewrite at most MIB MiB of pages per second, paced by
 *                polling the PIT (default 0: as fast as the CPU goes)
 *   mix=1        the realistic guest (scripts/bench-migration): pages whose
 *                number is 0 or 1 modulo 4 are rewritten with 0 instead of
 *                the sequence number, so a RAM image laid out the same way
 *                (scripts/lib/guest_ram.py: those pages zero, the others
 *                compressible or random) keeps its half of zero pages while
 *                every window page is still dirtied (default 0: every page
 *                gets the sequence number)
 * The window is clipped to the RAM the boot loader reports.
 *
 * Every write touches the first 32-bit word of one 4 KiB page (enough to
 * dirty the whole page for migration) and stores a running sequence
 * number, so a page never keeps the value it had in an earlier pass.
 *
 * The loop (dirty_loop, in assembly) keeps ALL its state in registers and
 * writes nothing but the window: no stack, no counters in memory.  That is
 * deliberate.  QEMU's TCG before 9.0 can lose dirty bits of pages that
 * stay in its software TLB across a migration bitmap sync (the sync's fast
 * path clears the bits without resetting the TLB's not-dirty flags; fixed
 * upstream by "physmem: Fix migration dirty bitmap coherency with TCG
 * memory access"), so a guest that keeps writing a hot page -- its stack,
 * a progress counter -- ends up with that page stale on the destination
 * even over plain TCP.  Each window page is written once per pass, and an
 * INVLPG of that page comes right before every write: QEMU then looks the
 * page up afresh and sees the migration bitmap as it is now, so the write
 * is tracked.  Relying on window pages leaving the TLB between passes is
 * not enough: QEMU grows its TLB at every flush while it is busy, and each
 * migration flushes it, so after two or three migrations of one long-lived
 * process the whole window stays in the TLB (scripts/soak measured stale
 * pages on legs 3 to 20 of a long-lived source over plain TCP without it).
 * Progress is visible in EBX (the next sequence number): "info registers"
 * in the HMP monitor.
 *
 * A status block at physical 0x00200000 (STATUS_ADDR), written once at
 * boot, describes the window:
 *   +0 magic 0x59545244 ("DRTY")  +4 window start  +8 window size (bytes)
 *   +12 rate (MiB/s, 0 = unpaced)  +16 mix (0 or 1)
 *
 * Build: gcc -m32 -ffreestanding -fno-pic -nostdlib, linked with dirty.ld
 * (see build.sh).  Only compiler-provided headers are used, so no 32-bit
 * libc (gcc-multilib) is needed, and no libgcc: there is no 64-bit
 * division anywhere.
 */
#include <stdint.h>

#define MB_HEADER_MAGIC 0x1BADB002u
#define MB_BOOT_MAGIC 0x2BADB002u
/* Flag 1: please fill in mem_lower/mem_upper.  No flag 16: QEMU then loads
 * the ELF program headers itself. */
#define MB_HEADER_FLAGS 0x00000002u

#define MB_INFO_MEM 0x001u
#define MB_INFO_CMDLINE 0x004u

#define STATUS_ADDR 0x00200000u
#define STATUS_MAGIC 0x59545244u /* "DRTY" little-endian */

#define PAGE 4096u
#define MIB (1024u * 1024u)
#define PIT_HZ 1193182u

struct mb_info {
	uint32_t flags;
	uint32_t mem_lower; /* KiB below 1 MiB */
	uint32_t mem_upper; /* KiB from 1 MiB to the first hole */
	uint32_t boot_device;
	uint32_t cmdline; /* physical address of a NUL-terminated string */
};

struct status {
	uint32_t magic;
	uint32_t start;
	uint32_t size;
	uint32_t rate_mib;
	uint32_t mix;
};

/* Parameters for dirty_loop, set once at boot (the loop only reads them). */
uint32_t cfg_start, cfg_end; /* window [start, end), page aligned */
uint32_t cfg_ticks;	     /* PIT ticks per batch; 0 = unpaced */
uint32_t cfg_batch = 1;	     /* pages per batch */
/* mix=1: 0x2000, the page-number bit 1; a page with it clear gets 0. */
uint32_t cfg_zmask;

/* The header must sit in the first 8 KiB of the file, 4-byte aligned: its
 * own section, which dirty.ld places first. */
__attribute__((section(".multiboot"), used, aligned(4)))
static const uint32_t multiboot_header[3] = {
	MB_HEADER_MAGIC,
	MB_HEADER_FLAGS,
	(uint32_t)-(MB_HEADER_MAGIC + MB_HEADER_FLAGS),
};

/* Referenced only from the entry code below. */
__attribute__((used)) uint8_t stack[16384] __attribute__((aligned(16)));

void guest_main(uint32_t magic, const struct mb_info *mbi);
void dirty_loop(void) __attribute__((noreturn));

/* The entry point: no C runtime exists yet, so set a stack and pass the
 * boot loader's registers (eax = magic, ebx = info) as arguments. */
__asm__(".section .text.entry, \"ax\"\n"
	".globl _start\n"
	"_start:\n"
	"	cli\n"
	"	movl $stack + 16384, %esp\n"
	"	pushl %ebx\n"
	"	pushl %eax\n"
	"	call guest_main\n"
	"1:	hlt\n"
	"	jmp 1b\n"
	".previous\n");

/*
 * dirty_loop: rewrite the window forever; never returns.
 *
 * Registers: edi = next page, ebx = sequence number (the value written),
 * ecx = pages left in this batch; when paced also esi = PIT ticks since
 * start, ebp = when the next batch is due, edx = last PIT reading.
 *
 * Pacing: PIT channel 0 is put in mode 2 with the full 65536 reload and
 * only polled (interrupts stay off).  It counts down at 1.193182 MHz and
 * wraps every 55 ms, so as long as it is read more often than that (every
 * batch, about 1 ms), the 16-bit difference between two readings is the
 * time elapsed.
 */
#define PIT_READ_AX                                                              \
	"	xorl	%eax, %eax\n"                                              \
	"	outb	%al, $0x43\n"	/* latch channel 0 */                      \
	"	inb	$0x40, %al\n"	/* low byte */                             \
	"	movb	%al, %ah\n"                                                \
	"	inb	$0x40, %al\n"	/* high byte */                            \
	"	xchgb	%al, %ah\n"	/* eax = count, 0..65535 */

/*
 * The store into the page at edi: the sequence number (ebx), or 0 when
 * mix=1 and the page number is 0 or 1 modulo 4 (bit 13 of the address
 * clear).  eax is free at both places this is used (the paced loop
 * recomputes it at every batch).  Without mix, cfg_zmask is 0 and every
 * page gets ebx, as before.
 */
#define STORE_PAGE                                                               \
	"	movl	%edi, %eax\n"                                              \
	"	notl	%eax\n"                                                    \
	"	andl	cfg_zmask, %eax\n"                                         \
	"	jnz	3f\n"                                                      \
	"	movl	%ebx, (%edi)\n"                                            \
	"	jmp	4f\n"                                                      \
	"3:	movl	$0, (%edi)\n"                                              \
	"4:\n"

__asm__(".text\n"
	".globl dirty_loop\n"
	"dirty_loop:\n"
	"	movl	$1, %ebx\n"
	"	movl	cfg_start, %edi\n"
	"	cmpl	$0, cfg_ticks\n"
	"	jne	.Lpaced\n"
	/* Unpaced: as fast as the vCPU goes. */
	".Lfast:\n"
	"	invlpg	(%edi)\n"
	STORE_PAGE
	"	incl	%ebx\n"
	"	addl	$4096, %edi\n"
	"	cmpl	cfg_end, %edi\n"
	"	jb	.Lfast\n"
	"	movl	cfg_start, %edi\n"
	"	jmp	.Lfast\n"
	/* Paced: a batch of cfg_batch pages every cfg_ticks PIT ticks. */
	".Lpaced:\n"
	"	movb	$0x34, %al\n"	/* channel 0, lo/hi byte, mode 2, binary */
	"	outb	%al, $0x43\n"
	"	xorl	%eax, %eax\n"
	"	outb	%al, $0x40\n"
	"	outb	%al, $0x40\n"	/* reload 0 = 65536 */
	PIT_READ_AX
	"	movl	%eax, %edx\n"
	"	xorl	%esi, %esi\n"
	"	movl	%esi, %ebp\n"
	".Lbatch:\n"
	PIT_READ_AX
	"	xchgl	%eax, %edx\n"	/* edx = now, eax = last */
	"	subl	%edx, %eax\n"	/* it counts down */
	"	movzwl	%ax, %eax\n"
	"	addl	%eax, %esi\n"
	"	movl	%esi, %eax\n"
	"	subl	%ebp, %eax\n"
	"	js	.Lbatch\n"	/* not due yet */
	/* Far behind (a slow vCPU, the VM stopped): restart the schedule
	 * from now instead of bursting to catch up. */
	"	cmpl	$119318, %eax\n"
	"	jbe	1f\n"
	"	movl	%esi, %ebp\n"
	"1:	addl	cfg_ticks, %ebp\n"
	"	movl	cfg_batch, %ecx\n"
	".Lpage:\n"
	"	invlpg	(%edi)\n"
	STORE_PAGE
	"	incl	%ebx\n"
	"	addl	$4096, %edi\n"
	"	cmpl	cfg_end, %edi\n"
	"	jb	2f\n"
	"	movl	cfg_start, %edi\n"
	"2:	decl	%ecx\n"
	"	jnz	.Lpage\n"
	"	jmp	.Lbatch\n");

/* --- command line ----------------------------------------------------------- */
static int is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* Value of "key=NUMBER" among the space-separated words, or dflt. */
static uint32_t arg_u32(const char *cmd, const char *key, uint32_t dflt)
{
	const char *p = cmd;

	if (!cmd)
		return dflt;
	while (*p) {
		const char *k = key, *w = p;

		while (*k && *w == *k) {
			k++;
			w++;
		}
		if (!*k && *w == '=') {
			uint32_t v = 0;
			int digits = 0;

			for (w++; *w >= '0' && *w <= '9'; w++, digits++)
				v = v * 10 + (uint32_t)(*w - '0');
			if (digits && (!*w || is_space(*w)))
				return v;
		}
		while (*p && !is_space(*p))
			p++;
		while (is_space(*p))
			p++;
	}
	return dflt;
}

void guest_main(uint32_t magic, const struct mb_info *mbi)
{
	volatile struct status *st = (volatile struct status *)STATUS_ADDR;
	const char *cmd = 0;
	uint32_t ram_end = 128u * MIB; /* a guess, if the loader says nothing */
	uint32_t start, size, rate;

	if (magic == MB_BOOT_MAGIC) {
		if (mbi->flags & MB_INFO_MEM)
			ram_end = MIB + mbi->mem_upper * 1024u;
		if (mbi->flags & MB_INFO_CMDLINE)
			cmd = (const char *)(uintptr_t)mbi->cmdline;
	}

	start = arg_u32(cmd, "start", 16) * MIB;
	size = arg_u32(cmd, "window", 64) * MIB;
	rate = arg_u32(cmd, "rate", 0);
	if (arg_u32(cmd, "mix", 0))
		cfg_zmask = 0x2000u;
	if (rate > 4096)
		rate = 4096; /* keeps PIT_HZ * batch below 2^32 */
	/* Never write over the status block or ourselves (loaded at 1 MiB). */
	if (start < STATUS_ADDR + PAGE)
		start = STATUS_ADDR + PAGE;
	start &= ~(PAGE - 1);
	if (start >= ram_end)
		start = STATUS_ADDR + PAGE;
	if (size > ram_end - start)
		size = ram_end - start;
	size &= ~(PAGE - 1);
	if (size == 0)
		size = PAGE;

	cfg_start = start;
	cfg_end = start + size;
	if (rate) {
		/* Pace in batches of about 1 ms worth of pages, so the PIT is
		 * polled often (it wraps every 55 ms) and the rate is smooth. */
		uint32_t pages_per_s = rate * (MIB / PAGE);

		cfg_batch = pages_per_s / 1000 + 1;
		cfg_ticks = PIT_HZ * cfg_batch / pages_per_s;
		if (cfg_ticks == 0)
			cfg_ticks = 1;
	}

	/* Written once, before any migration can start. */
	st->magic = STATUS_MAGIC;
	st->start = start;
	st->size = size;
	st->rate_mib = rate;
	st->mix = cfg_zmask ? 1 : 0;

	dirty_loop();
}
