/*
 * Shared by the snap_* guests (the snapshot tests, tests/e2e/snapshot.sh).
 *
 * snap_take() asks km for a snapshot through runtime/include/km_hcall.h. Natively the
 * hypercall returns -ENOSYS; snap_not_under_km() then says so and exits with SNAP_EXIT_NOT_KM,
 * which snapshot.sh expects from every snapshot mode run natively.
 *
 * snap_fence() is the register test: right before a syscall it loads every vector register
 * (xmm0-15, ymm0-15 with AVX, zmm0-31 and k1-k7 with AVX-512), three x87 stack registers
 * holding 80-bit values, a non-default MXCSR (round toward zero, flush to zero, a sticky flag)
 * and x87 control word (round up, double precision), and every general register the syscall
 * ABI preserves (rbx rbp rdx rsi rdi r8 r9 r10 r12-r15) with values made from a seed; right
 * after the syscall it stores them all, and snap_fence_check() compares. The syscall is either
 * the snapshot hypercall (the registers must survive snapshot and resume) or getpid (the same
 * code checked natively and under km without a snapshot). The hypercall happens inside the
 * noinline function snap_fence_sse/avx/avx512: gdb's backtrace of a snapshot names it.
 */
#ifndef KM_TEST_SNAP_COMMON_H
#define KM_TEST_SNAP_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>

#include "check.h"
#include "km_hcall.h"

/* Exit status of a snapshot mode run natively: "not under km, nothing to test". */
#define SNAP_EXIT_NOT_KM 77
/* Exit status when km refused the snapshot (the hypercall returned another -errno). */
#define SNAP_EXIT_FAILED 4

__attribute__((unused, noreturn)) static void snap_not_under_km(void)
{
	printf("snapshot hypercall returned ENOSYS: not running under km\n");
	fflush(stdout);
	exit(SNAP_EXIT_NOT_KM);
}

/*
 * HC_snapshot with a label, flags and file name (NULL: km's --snapshot name). Returns the
 * hypercall's result; *hc_ret (if not NULL) gets what km stored in the argument block.
 * stdout is flushed first so that no buffered text is duplicated into the resumed program.
 */
__attribute__((unused, noinline)) static long snap_take(const char *label, uint64_t flags,
							const char *file, long *hc_ret)
{
	km_hc_args_t a = {0, (uint64_t)(uintptr_t)label, flags, (uint64_t)(uintptr_t)file, 0, 0, 0};
	long r;

	fflush(stdout);
	a.hc_ret = 0x5a5a5a5a5a5a5a5aull; /* km overwrites it; natively it stays */
	r = km_hcall(HC_snapshot, &a);
	if (hc_ret)
		*hc_ret = (long)a.hc_ret;
	return r;
}

/* Prints the result of a failed snapshot (neither taken nor resumed) and exits. */
__attribute__((unused, noreturn)) static void snap_failed(long r)
{
	if (r == -ENOSYS)
		snap_not_under_km();
	printf("snapshot failed: %s\n", r < 0 && r > -4096 ? strerror((int)-r) : "unexpected result");
	fflush(stdout);
	exit(SNAP_EXIT_FAILED);
}

/* --- the register fence --------------------------------------------------------------------- */

struct snap_regs {
	uint8_t v[32][64]; /* vector registers, as wide as the CPU has */
	uint64_t k[8];     /* AVX-512 mask registers (k0 unused) */
	uint64_t gpr[12];  /* rbx rbp rdx rsi rdi r8 r9 r10 r12 r13 r14 r15 */
	uint8_t st[3][16]; /* x87 st0-st2 (10 bytes each used) */
	uint32_t mxcsr;
	uint16_t fcw;
	uint16_t pad;
};

/* Used by name from the asm below (rip-relative), so no register holds a pointer. */
__attribute__((used, aligned(64))) struct snap_regs snap_regs_in, snap_regs_out;
__attribute__((used)) uint64_t snap_saved_rbp;
__attribute__((used)) uint32_t snap_saved_mxcsr;
__attribute__((used)) uint16_t snap_saved_fcw;

#define SNAP_MXCSR 0xffa0 /* all exceptions masked, round toward zero, FTZ, PE flag set */
#define SNAP_FCW 0x0a7f   /* all exceptions masked, double precision, round up */

enum { SNAP_GPR_RDI = 4 };
static const char *const snap_gpr_names[12] = {"rbx", "rbp", "rdx", "rsi", "rdi", "r8",
					       "r9",  "r10", "r12", "r13", "r14", "r15"};

#define SNAP_OFF(f) "i"(offsetof(struct snap_regs, f))
#define SNAP_GPR_LOAD                                                                          \
	"movq %%rbp, snap_saved_rbp(%%rip)\n\t"                                                \
	"movq snap_regs_in+%c[gpr]+0(%%rip), %%rbx\n\t"                                        \
	"movq snap_regs_in+%c[gpr]+8(%%rip), %%rbp\n\t"                                        \
	"movq snap_regs_in+%c[gpr]+16(%%rip), %%rdx\n\t"                                       \
	"movq snap_regs_in+%c[gpr]+24(%%rip), %%rsi\n\t"                                       \
	"movq snap_regs_in+%c[gpr]+40(%%rip), %%r8\n\t"                                        \
	"movq snap_regs_in+%c[gpr]+48(%%rip), %%r9\n\t"                                        \
	"movq snap_regs_in+%c[gpr]+56(%%rip), %%r10\n\t"                                       \
	"movq snap_regs_in+%c[gpr]+64(%%rip), %%r12\n\t"                                       \
	"movq snap_regs_in+%c[gpr]+72(%%rip), %%r13\n\t"                                       \
	"movq snap_regs_in+%c[gpr]+80(%%rip), %%r14\n\t"                                       \
	"movq snap_regs_in+%c[gpr]+88(%%rip), %%r15\n\t"
#define SNAP_GPR_STORE                                                                         \
	"movq %%rbx, snap_regs_out+%c[gpr]+0(%%rip)\n\t"                                       \
	"movq %%rbp, snap_regs_out+%c[gpr]+8(%%rip)\n\t"                                       \
	"movq %%rdx, snap_regs_out+%c[gpr]+16(%%rip)\n\t"                                      \
	"movq %%rsi, snap_regs_out+%c[gpr]+24(%%rip)\n\t"                                      \
	"movq %%rdi, snap_regs_out+%c[gpr]+32(%%rip)\n\t"                                      \
	"movq %%r8, snap_regs_out+%c[gpr]+40(%%rip)\n\t"                                       \
	"movq %%r9, snap_regs_out+%c[gpr]+48(%%rip)\n\t"                                       \
	"movq %%r10, snap_regs_out+%c[gpr]+56(%%rip)\n\t"                                      \
	"movq %%r12, snap_regs_out+%c[gpr]+64(%%rip)\n\t"                                      \
	"movq %%r13, snap_regs_out+%c[gpr]+72(%%rip)\n\t"                                      \
	"movq %%r14, snap_regs_out+%c[gpr]+80(%%rip)\n\t"                                      \
	"movq %%r15, snap_regs_out+%c[gpr]+88(%%rip)\n\t"                                      \
	"movq snap_saved_rbp(%%rip), %%rbp\n\t"
/* x87: st2, st1, st0 pushed; MXCSR and control word saved, then replaced. */
#define SNAP_X87_LOAD                                                                          \
	"stmxcsr snap_saved_mxcsr(%%rip)\n\t"                                                  \
	"fnstcw snap_saved_fcw(%%rip)\n\t"                                                     \
	"fldt snap_regs_in+%c[st]+32(%%rip)\n\t"                                               \
	"fldt snap_regs_in+%c[st]+16(%%rip)\n\t"                                               \
	"fldt snap_regs_in+%c[st]+0(%%rip)\n\t"                                                \
	"ldmxcsr snap_regs_in+%c[mxcsr](%%rip)\n\t"                                            \
	"fldcw snap_regs_in+%c[fcw](%%rip)\n\t"
#define SNAP_X87_STORE                                                                         \
	"stmxcsr snap_regs_out+%c[mxcsr](%%rip)\n\t"                                           \
	"fnstcw snap_regs_out+%c[fcw](%%rip)\n\t"                                              \
	"fstpt snap_regs_out+%c[st]+0(%%rip)\n\t"                                              \
	"fstpt snap_regs_out+%c[st]+16(%%rip)\n\t"                                             \
	"fstpt snap_regs_out+%c[st]+32(%%rip)\n\t"                                             \
	"ldmxcsr snap_saved_mxcsr(%%rip)\n\t"                                                  \
	"fldcw snap_saved_fcw(%%rip)\n\t"
#define SNAP_OPERANDS                                                                          \
	: "+a"(nr)                                                                             \
	: "D"(arg), [gpr] SNAP_OFF(gpr), [st] SNAP_OFF(st), [mxcsr] SNAP_OFF(mxcsr),           \
	  [fcw] SNAP_OFF(fcw), [v] SNAP_OFF(v), [k] SNAP_OFF(k)
#define SNAP_CLOBBERS                                                                          \
	"rbx", "rcx", "rdx", "rsi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",       \
	    "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",    \
	    "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "cc", "memory"

#define SNAP_VEC(insn, reg, i) insn " snap_regs_in+%c[v]+" #i "*64(%%rip), %%" reg #i "\n\t"
#define SNAP_VEC_OUT(insn, reg, i) insn " %%" reg #i ", snap_regs_out+%c[v]+" #i "*64(%%rip)\n\t"
#define SNAP_VEC16(m, insn, reg)                                                               \
	m(insn, reg, 0) m(insn, reg, 1) m(insn, reg, 2) m(insn, reg, 3) m(insn, reg, 4)        \
	    m(insn, reg, 5) m(insn, reg, 6) m(insn, reg, 7) m(insn, reg, 8) m(insn, reg, 9)    \
		m(insn, reg, 10) m(insn, reg, 11) m(insn, reg, 12) m(insn, reg, 13)            \
		    m(insn, reg, 14) m(insn, reg, 15)
#define SNAP_VEC_HI16(m, insn, reg)                                                            \
	m(insn, reg, 16) m(insn, reg, 17) m(insn, reg, 18) m(insn, reg, 19) m(insn, reg, 20)   \
	    m(insn, reg, 21) m(insn, reg, 22) m(insn, reg, 23) m(insn, reg, 24)                \
		m(insn, reg, 25) m(insn, reg, 26) m(insn, reg, 27) m(insn, reg, 28)            \
		    m(insn, reg, 29) m(insn, reg, 30) m(insn, reg, 31)
#define SNAP_K(i) "kmovw snap_regs_in+%c[k]+" #i "*8(%%rip), %%k" #i "\n\t"
#define SNAP_K_OUT(i) "kmovw %%k" #i ", snap_regs_out+%c[k]+" #i "*8(%%rip)\n\t"

__attribute__((noinline, unused)) static long snap_fence_sse(long nr, void *arg)
{
	__asm__ volatile(SNAP_VEC16(SNAP_VEC, "movdqu", "xmm") SNAP_X87_LOAD SNAP_GPR_LOAD
			 "syscall\n\t" SNAP_GPR_STORE SNAP_X87_STORE
			 SNAP_VEC16(SNAP_VEC_OUT, "movdqu", "xmm")
			 SNAP_OPERANDS : SNAP_CLOBBERS);
	return nr;
}

__attribute__((noinline, unused, target("avx"))) static long snap_fence_avx(long nr, void *arg)
{
	__asm__ volatile(SNAP_VEC16(SNAP_VEC, "vmovdqu", "ymm") SNAP_X87_LOAD SNAP_GPR_LOAD
			 "syscall\n\t" SNAP_GPR_STORE SNAP_X87_STORE
			 SNAP_VEC16(SNAP_VEC_OUT, "vmovdqu", "ymm") "vzeroupper\n\t"
			 SNAP_OPERANDS : SNAP_CLOBBERS);
	return nr;
}

__attribute__((noinline, unused, target("avx512f"))) static long snap_fence_avx512(long nr, void *arg)
{
	__asm__ volatile(SNAP_VEC16(SNAP_VEC, "vmovdqu64", "zmm")
			 SNAP_VEC_HI16(SNAP_VEC, "vmovdqu64", "zmm")
			 SNAP_K(1) SNAP_K(2) SNAP_K(3) SNAP_K(4) SNAP_K(5) SNAP_K(6) SNAP_K(7)
			 SNAP_X87_LOAD SNAP_GPR_LOAD
			 "syscall\n\t" SNAP_GPR_STORE SNAP_X87_STORE
			 SNAP_K_OUT(1) SNAP_K_OUT(2) SNAP_K_OUT(3) SNAP_K_OUT(4) SNAP_K_OUT(5)
			 SNAP_K_OUT(6) SNAP_K_OUT(7)
			 SNAP_VEC16(SNAP_VEC_OUT, "vmovdqu64", "zmm")
			 SNAP_VEC_HI16(SNAP_VEC_OUT, "vmovdqu64", "zmm") "vzeroupper\n\t"
			 SNAP_OPERANDS : SNAP_CLOBBERS, "xmm16", "xmm17", "xmm18", "xmm19", "xmm20",
			 "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28",
			 "xmm29", "xmm30", "xmm31", "k1", "k2", "k3", "k4", "k5", "k6", "k7");
	return nr;
}

/* 0: SSE (16 x 16 bytes), 1: AVX (16 x 32), 2: AVX-512 (32 x 64 and k1-k7). */
__attribute__((unused)) static int snap_vec_level(void)
{
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f"))
		return 2;
	return __builtin_cpu_supports("avx") ? 1 : 0;
}

/* Fills snap_regs_in with values made from seed (different seeds, different values). */
__attribute__((unused)) static void snap_fence_prepare(unsigned long long seed)
{
	unsigned long long s = seed * 0x9E3779B97F4A7C15ull + 1;
	long double st[3];
	size_t i, j;

	memset(&snap_regs_in, 0, sizeof(snap_regs_in));
	memset(&snap_regs_out, 0, sizeof(snap_regs_out));
	for (i = 0; i < 32; i++)
		for (j = 0; j < 64; j += 8) {
			unsigned long long x = check_rand(&s);
			memcpy(&snap_regs_in.v[i][j], &x, 8);
		}
	for (i = 1; i < 8; i++)
		snap_regs_in.k[i] = check_rand(&s) & 0xffff;
	for (i = 0; i < 12; i++)
		snap_regs_in.gpr[i] = check_rand(&s);
	/* Outside double's range and precision: only a true 80-bit round trip keeps them. */
	st[0] = (long double)(seed + 1) / 3.0L;
	st[1] = -1.5e4000L;
	st[2] = 3.14159265358979323846264338327950288L + (long double)seed * 1e-18L;
	for (i = 0; i < 3; i++)
		memcpy(snap_regs_in.st[i], &st[i], 10);
	snap_regs_in.mxcsr = SNAP_MXCSR;
	snap_regs_in.fcw = SNAP_FCW;
}

/*
 * Loads the prepared registers, makes syscall nr with rdi = arg, stores the registers. Returns
 * the syscall's result. Call snap_fence_prepare() first and snap_fence_check() right after.
 */
__attribute__((unused, noinline)) static long snap_fence(int level, long nr, void *arg)
{
	switch (level) {
	case 2:
		return snap_fence_avx512(nr, arg);
	case 1:
		return snap_fence_avx(nr, arg);
	default:
		return snap_fence_sse(nr, arg);
	}
}

/*
 * Compares what came out with what went in; arg is the rdi value given to snap_fence. Appends
 * a description of the first differences to why (may be NULL) and returns 1 if all is equal.
 */
__attribute__((unused)) static int snap_fence_check(int level, void *arg, char *why, size_t whylen)
{
	int nregs = level == 2 ? 32 : 16, width = level == 2 ? 64 : level == 1 ? 32 : 16;
	int i, bad = 0;
	size_t n = 0;

#define SNAP_WHY(...)                                                                          \
	do {                                                                                   \
		if (why && n < whylen)                                                         \
			n += snprintf(why + n, whylen - n, __VA_ARGS__);                       \
		bad++;                                                                         \
	} while (0)
	if (why && whylen)
		why[0] = 0;
	for (i = 0; i < nregs; i++)
		if (memcmp(snap_regs_in.v[i], snap_regs_out.v[i], (size_t)width) != 0)
			SNAP_WHY("%s%d differs; ", level == 2 ? "zmm" : level == 1 ? "ymm" : "xmm", i);
	if (level == 2)
		for (i = 1; i < 8; i++)
			if ((snap_regs_in.k[i] & 0xffff) != (snap_regs_out.k[i] & 0xffff))
				SNAP_WHY("k%d %#llx, expected %#llx; ", i,
					 (unsigned long long)snap_regs_out.k[i],
					 (unsigned long long)snap_regs_in.k[i]);
	for (i = 0; i < 12; i++) {
		uint64_t want = i == SNAP_GPR_RDI ? (uint64_t)(uintptr_t)arg : snap_regs_in.gpr[i];
		if (snap_regs_out.gpr[i] != want)
			SNAP_WHY("%s %#llx, expected %#llx; ", snap_gpr_names[i],
				 (unsigned long long)snap_regs_out.gpr[i], (unsigned long long)want);
	}
	for (i = 0; i < 3; i++)
		if (memcmp(snap_regs_in.st[i], snap_regs_out.st[i], 10) != 0)
			SNAP_WHY("x87 st%d differs; ", i);
	if (snap_regs_out.mxcsr != SNAP_MXCSR)
		SNAP_WHY("mxcsr %#x, expected %#x; ", snap_regs_out.mxcsr, SNAP_MXCSR);
	if (snap_regs_out.fcw != SNAP_FCW)
		SNAP_WHY("x87 control word %#x, expected %#x; ", snap_regs_out.fcw, SNAP_FCW);
#undef SNAP_WHY
	return bad == 0;
}

/* The hypercall number snap_fence uses for a snapshot. */
#define SNAP_HCALL_NR ((long)KM_HCALL_BASE + HC_snapshot)

#endif
