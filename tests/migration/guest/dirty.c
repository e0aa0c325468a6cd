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
 *   rate=MIB     rewrite at most MIB MiB of pages per second, paced by the
 *                PIT (default 0: as fast as the CPU goes)
 * The window is clipped to the RAM the boot loader reports.
 *
 * Every write touches the first 32-bit word of one 4 KiB page (enough to
 * dirty the whole page for migration) and stores a running sequence
 * number, so a page never keeps the value it had in an earlier pass.
 *
 * A status block at physical 0x00200000 (STATUS_ADDR) lets a test see that
 * the guest is alive (e.g. "xp /4wx 0x200000" in the HMP monitor):
 *   +0 magic 0x59545244 ("DRTY")  +4 completed passes over the window
 *   +8 pages written (low 32 bits) +12 window start  +16 window size
 *   +20 rate (MiB/s, 0 = unpaced)
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
	uint32_t passes;
	uint32_t pages;
	uint32_t start;
	uint32_t size;
	uint32_t rate_mib;
};

/* The header must sit in the first 8 KiB of the file, 4-byte aligned: its
 * own section, which dirty.ld places first. */
__attribute__((section(".multiboot"), used, aligned(4)))
static const uint32_t multiboot_header[3] = {
	MB_HEADER_MAGIC,
	MB_HEADER_FLAGS,
	(uint32_t)-(MB_HEADER_MAGIC + MB_HEADER_FLAGS),
};

static uint8_t stack[16384] __attribute__((aligned(16)));

void guest_main(uint32_t magic, const struct mb_info *mbi);

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

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

/* --- time: PIT channel 0, polled ------------------------------------------
 * Interrupts stay off, so the PIT is only read: channel 0 in mode 2 with
 * the full 65536 reload counts down at 1.193182 MHz and wraps every 55 ms;
 * as long as it is read more often than that, the modular difference
 * between two reads is the elapsed time. */
static uint16_t pit_last;
static uint32_t pit_now; /* ticks since pit_init(), wraps after ~1 h */

static uint16_t pit_read(void)
{
	uint8_t lo, hi;

	outb(0x43, 0x00); /* latch channel 0 */
	lo = inb(0x40);
	hi = inb(0x40);
	return (uint16_t)(lo | (hi << 8));
}

static void pit_init(void)
{
	outb(0x43, 0x34); /* channel 0, lobyte/hibyte, mode 2, binary */
	outb(0x40, 0);
	outb(0x40, 0); /* reload 0 = 65536 */
	pit_last = pit_read();
	pit_now = 0;
}

static uint32_t pit_ticks(void)
{
	uint16_t c = pit_read();

	pit_now += (uint16_t)(pit_last - c); /* it counts down */
	pit_last = c;
	return pit_now;
}

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
	uint32_t start, size, rate, batch = 1, ticks_per_batch = 0;
	uint32_t seq = 1, next = 0, pages_in_window, i;

	if (magic == MB_BOOT_MAGIC) {
		if (mbi->flags & MB_INFO_MEM)
			ram_end = MIB + mbi->mem_upper * 1024u;
		if (mbi->flags & MB_INFO_CMDLINE)
			cmd = (const char *)(uintptr_t)mbi->cmdline;
	}

	start = arg_u32(cmd, "start", 16) * MIB;
	size = arg_u32(cmd, "window", 64) * MIB;
	rate = arg_u32(cmd, "rate", 0);
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
	pages_in_window = size / PAGE;

	st->magic = STATUS_MAGIC;
	st->passes = 0;
	st->pages = 0;
	st->start = start;
	st->size = pages_in_window * PAGE;
	st->rate_mib = rate;

	if (pages_in_window == 0)
		for (;;)
			__asm__ volatile("hlt");

	if (rate) {
		/* Pace in batches of about 1 ms worth of pages, so the PIT is
		 * polled often and the rate is smooth. */
		uint32_t pages_per_s = rate * (MIB / PAGE);

		batch = pages_per_s / 1000 + 1;
		ticks_per_batch = PIT_HZ * batch / pages_per_s;
		pit_init();
		next = pit_ticks();
	}

	for (;;) {
		for (i = 0; i < pages_in_window; i++) {
			if (rate && i % batch == 0) {
				uint32_t now;

				while ((int32_t)((now = pit_ticks()) - next) < 0)
					;
				/* If we fell far behind (a slow vCPU, the VM
				 * stopped), restart the schedule from now
				 * instead of bursting to catch up. */
				if ((int32_t)(now - next) > (int32_t)(PIT_HZ / 10))
					next = now;
				next += ticks_per_batch;
			}
			*(volatile uint32_t *)(uintptr_t)(start + i * PAGE) = seq++;
			st->pages++;
		}
		st->passes++;
	}
}
