/*
 * Hostile guest: signal frames forged or placed where they cannot go (issue 7, "Bad input").
 * Run as `hostile_sigframe km TMPDIR` (tests/e2e/hostile.sh): handlers rewrite their own frame
 * before rt_sigreturn (rip in km's runtime region or non-canonical, kernel cs/ss, IOPL/VM/NT in
 * rflags, fpstate in the runtime region, XSAVE header reserved bits); each return either faults
 * (SIGSEGV, caught here and left with siglongjmp) or continues with sanitised state: user cs,
 * no IOPL (cli still faults), a working FPU. After all of it the IDT at 0x7fffff002000 still
 * cannot be read. Run with one MODE argument (tests/e2e/sigframe.sh) it sets up one delivery that
 * cannot work and must die of SIGSEGV, as on Linux, with km intact and reporting it:
 *   handler-unmapped, handler-runtime, restorer-runtime, stack-unmapped, stack-readonly,
 *   altstack-runtime, altstack-unmapped.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>

#include "check.h"

#define RT_BASE 0x7fffff000000UL
#define RT_IDT (RT_BASE + 0x2000)
#define RT_STUB (RT_BASE + 0x1000)

static sigjmp_buf segv_jmp;
static volatile int segv_hits;

static void on_segv(int sig)
{
	(void)sig;
	segv_hits++;
	siglongjmp(segv_jmp, 1);
}

enum forge { F_RIP_RT, F_RIP_NONCANON, F_SEGS, F_RFLAGS, F_FPSTATE_RT, F_XSAVE_HDR, F_FPSTATE_ODD };
static volatile enum forge forging;

static void forger(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	greg_t *g = uc->uc_mcontext.gregs;
	(void)sig;
	(void)si;
	switch (forging) {
	case F_RIP_RT:
		g[REG_RIP] = (greg_t)RT_STUB;
		break;
	case F_RIP_NONCANON:
		g[REG_RIP] = (greg_t)0x8000000000001000ULL;
		break;
	case F_SEGS: /* cs, gs, fs, ss packed in one word: the kernel's selectors */
		g[REG_CSGSFS] = (greg_t)(0x10ULL | (0x18ULL << 48));
		break;
	case F_RFLAGS:
		g[REG_EFL] |= 0x3000 | 0x4000 | 0x20000 | 0x80000 | 0x100000;
		break;
	case F_FPSTATE_RT:
		uc->uc_mcontext.fpregs = (void *)RT_IDT;
		break;
	case F_XSAVE_HDR: { /* xstate_bv/xcomp_bv and the reserved words of the header */
		uint8_t *fp = (uint8_t *)uc->uc_mcontext.fpregs;
		uint64_t junk = ~0ULL;
		for (int off = 512; off < 576; off += 8)
			memcpy(fp + off, &junk, 8);
		uint32_t mxcsr = 0xffffffff;
		memcpy(fp + 24, &mxcsr, 4);
		break;
	}
	case F_FPSTATE_ODD:
		uc->uc_mcontext.fpregs = (void *)((uintptr_t)uc->uc_mcontext.fpregs + 8);
		break;
	}
}

static unsigned short read_cs(void)
{
	unsigned short cs;
	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	return cs;
}

static unsigned long read_flags(void)
{
	unsigned long f;
	__asm__ volatile("pushf; pop %0" : "=r"(f));
	return f;
}

/* Raises SIGUSR1 with the frame forged as f: 1 if the return faulted, 0 if it continued. */
static int forge(enum forge f)
{
	forging = f;
	int before = segv_hits;
	if (sigsetjmp(segv_jmp, 1) == 0)
		raise(SIGUSR1);
	return segv_hits != before;
}

static volatile double fp_a = 1.5, fp_b = 2.25;

static void forged_returns(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = forger;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGSEGV, on_segv);

	CHECK(forge(F_RIP_RT) == 1, "sigreturn to rip in km's runtime region faults");
	CHECK(forge(F_RIP_NONCANON) == 1, "sigreturn to a non-canonical rip faults");
	int r = forge(F_SEGS);
	CHECK(r == 1 || (read_cs() & 3) == 3, "sigreturn with kernel cs/ss: faults or stays at CPL3 (cs %#x)", read_cs());
	r = forge(F_RFLAGS);
	unsigned long fl = read_flags();
	CHECK(r == 1 || (fl & (0x3000 | 0x4000 | 0x20000)) == 0, "sigreturn with IOPL/NT/VM: faults or drops them (%#lx)", fl);
	/* With IOPL 3 cli would run; at IOPL 0 it is a #GP, SIGSEGV. */
	int before = segv_hits;
	if (sigsetjmp(segv_jmp, 1) == 0)
		__asm__ volatile("cli");
	CHECK(segv_hits == before + 1, "cli still faults afterwards");
	CHECK(forge(F_FPSTATE_RT) == 1, "sigreturn with fpstate in km's runtime region faults");
	CHECK(forge(F_FPSTATE_ODD) == 1, "sigreturn with a misaligned fpstate faults");
	r = forge(F_XSAVE_HDR);
	volatile double c = fp_a * fp_b;
	CHECK(r == 1 || c == 3.375, "sigreturn with an XSAVE header full of reserved bits: faults or the FPU works");
	CHECK(c == 3.375, "the FPU computes afterwards");

	before = segv_hits;
	volatile uint64_t x = 0;
	if (sigsetjmp(segv_jmp, 1) == 0)
		x = *(volatile uint64_t *)RT_IDT;
	CHECK(segv_hits == before + 1, "the IDT at %#lx still cannot be read (%#llx)", RT_IDT, (unsigned long long)x);
	before = segv_hits;
	if (sigsetjmp(segv_jmp, 1) == 0)
		*(volatile uint64_t *)RT_IDT = 0;
	CHECK(segv_hits == before + 1, "nor written");
	signal(SIGUSR1, SIG_DFL);
}

/* --- deliveries that cannot work: each must end the program with SIGSEGV ------------------- */

struct ksigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

static void nop_handler(int sig)
{
	(void)sig;
}

/* tgkill(self, SIGUSR1) with rsp at `sp`: the frame goes there on the way back to user mode. */
static void __attribute__((noreturn)) signal_on_stack(uintptr_t sp)
{
	long pid = getpid(), tid = syscall(SYS_gettid);
	__asm__ volatile("mov %0, %%rsp\n\t"
			 "syscall\n\t"
			 "ud2"
			 :
			 : "r"(sp), "a"((long)SYS_tgkill), "D"(pid), "S"(tid), "d"((long)SIGUSR1)
			 : "memory");
	__builtin_unreachable();
}

static void on_altstack(void *base)
{
	stack_t ss = {.ss_sp = base, .ss_size = 0x10000, .ss_flags = 0};
	if (sigaltstack(&ss, NULL) != 0) {
		printf("sigaltstack refused: %s\n", strerror(errno));
		exit(3);
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = nop_handler;
	sa.sa_flags = SA_ONSTACK;
	sigaction(SIGUSR1, &sa, NULL);
	raise(SIGUSR1);
}

static int fatal_mode(const char *mode)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	printf("mode %s\n", mode);
	fflush(stdout);
	if (strcmp(mode, "handler-unmapped") == 0 || strcmp(mode, "handler-runtime") == 0) {
		sa.sa_handler = (void (*)(int))(strcmp(mode, "handler-unmapped") == 0 ? 0xdead0000UL : RT_STUB);
		sigaction(SIGUSR1, &sa, NULL);
		raise(SIGUSR1);
	} else if (strcmp(mode, "restorer-runtime") == 0) {
		struct ksigaction ka = {.handler = (void *)nop_handler, .flags = 0x04000000 /* SA_RESTORER */,
					.restorer = (void *)RT_STUB};
		syscall(SYS_rt_sigaction, SIGUSR1, &ka, NULL, 8);
		syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGUSR1);
	} else if (strcmp(mode, "stack-unmapped") == 0 || strcmp(mode, "stack-readonly") == 0) {
		sa.sa_handler = nop_handler;
		sigaction(SIGUSR1, &sa, NULL);
		uintptr_t sp = 0xdead0000UL;
		if (strcmp(mode, "stack-readonly") == 0) {
			char *p = mmap(NULL, 65536, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (p == MAP_FAILED)
				return 2;
			sp = (uintptr_t)p + 65536;
		}
		signal_on_stack(sp);
	} else if (strcmp(mode, "altstack-runtime") == 0) {
		on_altstack((void *)RT_BASE);
	} else if (strcmp(mode, "altstack-unmapped") == 0) {
		on_altstack((void *)0xdead0000UL);
	} else {
		printf("unknown mode\n");
		return 2;
	}
	printf("still alive after %s\n", mode);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc == 2)
		return fatal_mode(argv[1]);
	forged_returns();
	CHECK_EQ(write(1, "", 0), 0, "km is intact: it still serves syscalls");
	return check_done();
}
