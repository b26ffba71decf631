/*
 * Unit tests for the signal frame (km_sigframe.c): the frame km builds is read back through
 * glibc's own view of it (ucontext_t, struct sigcontext, struct _fpx_sw_bytes, which mirror the
 * kernel's uapi headers), so a layout mistake fails here; placement (red zone, alignment,
 * alternate stack, SS_AUTODISARM, nesting, overflow); and sigreturn's reading of frames a hostile
 * program edited; and against the host kernel itself: km reads a frame the kernel built, and the
 * kernel's rt_sigreturn (in a child) takes a frame km built. Needs no KVM: km_mm_init only
 * reserves host memory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ucontext.h>
#include <sys/wait.h>
#include <unistd.h>

#include "km_sigframe.h"

#define P 4096ul
#define STK 0x10000000ul  /* 16 pages, read/write; nothing mapped below */
#define ALTMAP 0x20000000ul /* 4 pages, read/write; the altstack is its upper two */
#define ALT (ALTMAP + 2 * P)
#define ALT_SIZE (2 * P)
#define RO 0x30000000ul   /* one read-only page */
#define HOLE 0x40000000ul /* nothing */
/* The cross-checks with the host kernel: the same addresses on the host and in the guest. */
#define HOSTWIN 0x50000000ul
#define HOSTWIN_SIZE (16 * P)
#define RECORD 0x50100000ul /* shared with a child: what it found in its registers */

#define XCR0 0xe7ull      /* x87 SSE AVX opmask ZMM_Hi256 Hi16_ZMM */
#define XSIZE 2688u       /* the standard image for XCR0: Hi16_ZMM ends at 1664 + 1024 */
#define SA_RESTORER_ 0x04000000ull
#define SS_AUTODISARM_ (1u << 31)
#define FRAME_SIZE 440u /* sizeof(struct rt_sigframe) */
#define UC_SIZE 304u    /* the kernel's ucontext: glibc's up to uc_sigmask, plus 64 bits of mask */
#define UC_FLAGS 7u     /* UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS */
#define MXCSR_OFF 24
#define SW_OFF 464
#define HDR_OFF 512

#define TF 0x100ull
#define DF 0x400ull
#define RF 0x10000ull

typedef struct t {
	km_mm_t mm;
	uint8_t xsave[XSIZE]; /* the vCPU's image going in */
	uint8_t back[XSIZE];  /* what sigreturn reads back */
	siginfo_t info;
	km_sigframe_in_t in;
	km_sigframe_out_t out;
	km_sigframe_ret_t ret;
} t_t;

static int map_at(km_mm_t *mm, uint64_t at, size_t len, int prot)
{
	int64_t r = km_mm_map(mm, at, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0,
			      KM_VMA_ANON, NULL);
	return r == (int64_t)at ? 0 : -1;
}

/* An image with a recognisable byte everywhere, a valid header and MXCSR (with DAZ, which must
 * survive), and the software bytes zero as KVM gives them. */
static void make_xsave(uint8_t *x)
{
	uint64_t bv = 0x7;
	uint32_t mxcsr = 0x1f80 | 0x40;
	for (uint32_t i = 0; i < XSIZE; i++)
		x[i] = (uint8_t)(i * 7 + 3);
	memcpy(x + MXCSR_OFF, &mxcsr, 4);
	memset(x + SW_OFF, 0, 512 - SW_OFF);
	memset(x + HDR_OFF, 0, 64);
	memcpy(x + HDR_OFF, &bv, 8);
}

static int setup(void **state)
{
	t_t *t = calloc(1, sizeof(*t));
	km_err_t *err = NULL;
	if (t == NULL || km_mm_init(&t->mm, 64ul << 20, 46, &err) < 0)
		return -1;
	if (map_at(&t->mm, STK, 16 * P, PROT_READ | PROT_WRITE) < 0 ||
	    map_at(&t->mm, ALTMAP, 4 * P, PROT_READ | PROT_WRITE) < 0 || map_at(&t->mm, RO, P, PROT_READ) < 0)
		return -1;
	make_xsave(t->xsave);
	t->info.si_signo = SIGUSR1;
	t->info.si_code = SI_USER;
	t->info.si_pid = 4242;
	t->info.si_uid = 77;
	t->in = (km_sigframe_in_t){
		.regs = {.rax = 0x1001, .rbx = 0x1002, .rcx = 0x1003, .rdx = 0x1004, .rsi = 0x1005,
			 .rdi = 0x1006, .rsp = STK + 12 * P + 0x37, .rbp = 0x1008, .r8 = 0x1009,
			 .r9 = 0x100a, .r10 = 0x100b, .r11 = 0x100c, .r12 = 0x100d, .r13 = 0x100e,
			 .r14 = 0x100f, .r15 = 0x1010, .rip = 0x401234, .rflags = 0x246 | TF | DF},
		.xsave = t->xsave,
		.xsave_size = XSIZE,
		.xcr0 = XCR0,
		.info = &t->info,
		.handler = 0x402000,
		.sa_flags = SA_SIGINFO | SA_RESTORER_,
		.restorer = 0x403000,
		.saved_mask = (1ull << (SIGHUP - 1)) | (1ull << (SIGRTMIN + 3 - 1)),
		.altstack = {.ss_sp = NULL, .ss_flags = 0, .ss_size = 0},
		.trapno = 14, .err = 6, .cr2 = 0xdead000,
	};
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	t_t *t = *state;
	km_mm_fini(&t->mm);
	free(t);
	return 0;
}

static void gput(t_t *t, uint64_t gva, const void *p, size_t n)
{
	assert_int_equal(km_copy_to_guest(&t->mm, gva, p, n), 0);
}

static void gget(t_t *t, uint64_t gva, void *p, size_t n)
{
	assert_int_equal(km_copy_from_guest(&t->mm, p, gva, n), 0);
}

static void build(t_t *t)
{
	assert_int_equal(km_sigframe_build(&t->mm, &t->in, &t->out), 0);
}

/* sigreturn as the restorer makes it: the handler's ret popped pretcode. */
static int read_back(t_t *t)
{
	return km_sigframe_read(&t->mm, t->out.regs.rsp + 8, XCR0, t->back, XSIZE, &t->ret);
}

/* The frame's ucontext as glibc sees it (only the kernel's part: the rest of glibc's is its own). */
static void frame_uc(t_t *t, ucontext_t *uc)
{
	memset(uc, 0, sizeof(*uc));
	gget(t, t->out.regs.rdx, uc, UC_SIZE);
}

static uint64_t frame_fpstate(t_t *t)
{
	ucontext_t uc;
	frame_uc(t, &uc);
	return (uint64_t)(uintptr_t)uc.uc_mcontext.fpregs;
}

/* --- the layout, read through libc's structs ---------------------------------------------------- */

static void test_layout_matches_libc(void **state)
{
	t_t *t = *state;
	const struct kvm_regs *r = &t->in.regs;
	ucontext_t uc;
	struct sigcontext sc;
	siginfo_t si;
	uint64_t pretcode;

	/* glibc's ucontext_t is the kernel's up to uc_sigmask, which km's test relies on. */
	assert_int_equal(offsetof(ucontext_t, uc_mcontext), 40);
	assert_int_equal(offsetof(ucontext_t, uc_sigmask), 296);
	assert_int_equal(sizeof(mcontext_t), sizeof(struct sigcontext));

	build(t);
	assert_int_equal(t->out.regs.rsi, t->out.regs.rsp + 8 + UC_SIZE);
	assert_int_equal(t->out.regs.rdx, t->out.regs.rsp + 8);
	gget(t, t->out.regs.rsp, &pretcode, 8);
	assert_int_equal(pretcode, t->in.restorer);

	frame_uc(t, &uc);
	assert_int_equal(uc.uc_flags, UC_FLAGS);
	assert_null(uc.uc_link);
	assert_null(uc.uc_stack.ss_sp);
	assert_int_equal(uc.uc_stack.ss_flags, 0);
	assert_int_equal(uc.uc_stack.ss_size, 0);
	const greg_t *g = uc.uc_mcontext.gregs;
	assert_int_equal(g[REG_R8], r->r8);
	assert_int_equal(g[REG_R9], r->r9);
	assert_int_equal(g[REG_R10], r->r10);
	assert_int_equal(g[REG_R11], r->r11);
	assert_int_equal(g[REG_R12], r->r12);
	assert_int_equal(g[REG_R13], r->r13);
	assert_int_equal(g[REG_R14], r->r14);
	assert_int_equal(g[REG_R15], r->r15);
	assert_int_equal(g[REG_RDI], r->rdi);
	assert_int_equal(g[REG_RSI], r->rsi);
	assert_int_equal(g[REG_RBP], r->rbp);
	assert_int_equal(g[REG_RBX], r->rbx);
	assert_int_equal(g[REG_RDX], r->rdx);
	assert_int_equal(g[REG_RAX], r->rax);
	assert_int_equal(g[REG_RCX], r->rcx);
	assert_int_equal(g[REG_RSP], r->rsp);
	assert_int_equal(g[REG_RIP], r->rip);
	assert_int_equal(g[REG_EFL], r->rflags);
	assert_int_equal(g[REG_CSGSFS], 0x002b000000000033ll); /* cs 0x33, gs 0, fs 0, ss 0x2b */
	assert_int_equal(g[REG_ERR], 6);
	assert_int_equal(g[REG_TRAPNO], 14);
	assert_int_equal(g[REG_OLDMASK], t->in.saved_mask);
	assert_int_equal(g[REG_CR2], 0xdead000);
	assert_int_equal(uc.uc_sigmask.__val[0], t->in.saved_mask);

	/* The same bytes as <asm/sigcontext.h>'s struct sigcontext (glibc's copy of it). */
	gget(t, t->out.regs.rdx + offsetof(ucontext_t, uc_mcontext), &sc, sizeof(sc));
	assert_int_equal(sc.rip, r->rip);
	assert_int_equal(sc.eflags, r->rflags);
	assert_int_equal(sc.cs, 0x33);
	assert_int_equal(sc.gs, 0);
	assert_int_equal(sc.fs, 0);
	assert_int_equal(sc.__pad0, 0x2b);
	assert_int_equal(sc.err, 6);
	assert_int_equal(sc.trapno, 14);
	assert_int_equal(sc.oldmask, t->in.saved_mask);
	assert_int_equal(sc.cr2, 0xdead000);
	assert_ptr_equal(sc.fpstate, uc.uc_mcontext.fpregs);
	for (int i = 0; i < 8; i++)
		assert_int_equal(sc.__reserved1[i], 0);

	gget(t, t->out.regs.rsi, &si, sizeof(si));
	assert_memory_equal(&si, &t->info, sizeof(si));
}

static void test_fpstate_layout(void **state)
{
	t_t *t = *state;
	uint8_t img[XSIZE];
	struct _fpx_sw_bytes sw;
	uint32_t magic2;
	uint64_t bv;

	build(t);
	uint64_t fp = frame_fpstate(t);
	gget(t, fp, img, XSIZE);
	gget(t, fp + SW_OFF, &sw, sizeof(sw));
	gget(t, fp + XSIZE, &magic2, 4);
	assert_int_equal(sw.magic1, FP_XSTATE_MAGIC1);
	assert_int_equal(sw.extended_size, XSIZE + 4);
	assert_int_equal(sw.xstate_bv, XCR0);
	assert_int_equal(sw.xstate_size, XSIZE);
	assert_int_equal(magic2, FP_XSTATE_MAGIC2);
	/* The image as is, but for the software bytes; XSTATE_BV also marks x87 and SSE present. */
	assert_memory_equal(img, t->xsave, SW_OFF);
	memcpy(&bv, img + HDR_OFF, 8);
	assert_int_equal(bv, 0x7);
	assert_memory_equal(img + HDR_OFF + 8, t->xsave + HDR_OFF + 8, XSIZE - HDR_OFF - 8);

	/* x87 and SSE in their initial state in the vCPU are still marked present in the frame, and
	 * the rest of the header is zero whatever the image held. */
	bv = 0x4;
	memcpy(t->xsave + HDR_OFF, &bv, 8);
	memset(t->xsave + HDR_OFF + 8, 0xff, 56);
	build(t);
	gget(t, frame_fpstate(t) + HDR_OFF, img, 64);
	memcpy(&bv, img, 8);
	assert_int_equal(bv, 0x7);
	for (int i = 8; i < 64; i++)
		assert_int_equal(img[i], 0);
}

/* --- handler entry and the round trip -------------------------------------------------------- */

static void test_handler_entry(void **state)
{
	t_t *t = *state;
	build(t);
	const struct kvm_regs *o = &t->out.regs, *r = &t->in.regs;
	assert_int_equal(o->rip, t->in.handler);
	assert_int_equal(o->rdi, SIGUSR1);
	assert_int_equal(o->rax, 0);
	assert_int_equal(o->rflags, 0x246); /* TF and DF gone, IF and bit 1 kept */
	assert_int_equal(o->rbx, r->rbx);
	assert_int_equal(o->rcx, r->rcx);
	assert_int_equal(o->rbp, r->rbp);
	assert_int_equal(o->r8, r->r8);
	assert_int_equal(o->r15, r->r15);
	assert_false(t->out.on_altstack);

	t->in.regs.rflags = 0x202 | RF | TF;
	build(t);
	assert_int_equal(t->out.regs.rflags, 0x202);
}

static void test_round_trip(void **state)
{
	t_t *t = *state;
	struct kvm_regs want = t->in.regs;
	t->in.altstack = (stack_t){.ss_sp = (void *)ALT, .ss_flags = 0, .ss_size = ALT_SIZE};
	build(t);
	assert_int_equal(read_back(t), 0);
	want.rflags = (want.rflags & 0x3c0dd5) | 0x202;
	assert_memory_equal(&t->ret.regs, &want, sizeof(want));
	assert_int_equal(t->ret.mask, t->in.saved_mask);
	assert_ptr_equal(t->ret.altstack.ss_sp, (void *)ALT);
	assert_int_equal(t->ret.altstack.ss_flags, 0);
	assert_int_equal(t->ret.altstack.ss_size, ALT_SIZE);
	assert_true(t->ret.fpu_valid);
	assert_memory_equal(t->back, t->xsave, XSIZE);

	/* A handler's edits to its ucontext come back: registers, mask, FPU state. */
	ucontext_t uc;
	frame_uc(t, &uc);
	uc.uc_mcontext.gregs[REG_RIP] = 0x404040;
	uc.uc_mcontext.gregs[REG_RAX] = 99;
	uc.uc_sigmask.__val[0] = 1ull << (SIGINT - 1);
	gput(t, t->out.regs.rdx, &uc, UC_SIZE);
	uint8_t xmm0 = 0x5a;
	gput(t, frame_fpstate(t) + 160, &xmm0, 1);
	assert_int_equal(read_back(t), 0);
	assert_int_equal(t->ret.regs.rip, 0x404040);
	assert_int_equal(t->ret.regs.rax, 99);
	assert_int_equal(t->ret.mask, 1ull << (SIGINT - 1));
	assert_int_equal(t->back[160], 0x5a);
}

/* --- placement --------------------------------------------------------------------------------- */

static void test_alignment_and_red_zone(void **state)
{
	t_t *t = *state;
	uint8_t guard[256], seen[256];
	memset(guard, 0xaa, sizeof(guard));
	for (uint64_t off = 0; off < 64; off++) {
		uint64_t rsp = STK + 12 * P + off;
		t->in.regs.rsp = rsp;
		gput(t, rsp - 128, guard, sizeof(guard));
		build(t);
		uint64_t frame = t->out.regs.rsp, fp = frame_fpstate(t);
		assert_int_equal((frame + 8) % 16, 0);
		assert_int_equal(fp % 64, 0);
		assert_true(frame + FRAME_SIZE <= fp);
		assert_true(fp - (frame + FRAME_SIZE) < 32);
		assert_true(fp + XSIZE + 4 <= rsp - 128);
		assert_true(rsp - 128 - (fp + XSIZE + 4) < 64);
		/* The red zone and everything above it untouched. */
		gget(t, rsp - 128, seen, sizeof(seen));
		assert_memory_equal(seen, guard, sizeof(seen));
	}
}

static void test_onstack(void **state)
{
	t_t *t = *state;
	ucontext_t uc;
	t->in.altstack = (stack_t){.ss_sp = (void *)ALT, .ss_flags = 0, .ss_size = ALT_SIZE};

	/* Without SA_ONSTACK the altstack is not used. */
	build(t);
	assert_true(t->out.regs.rsp > STK && t->out.regs.rsp < t->in.regs.rsp);
	assert_false(t->out.on_altstack);

	t->in.sa_flags |= SA_ONSTACK;
	build(t);
	uint64_t fp = frame_fpstate(t);
	assert_true(t->out.on_altstack);
	assert_int_equal(fp, (ALT + ALT_SIZE - (XSIZE + 4)) & ~63ul);
	assert_true(t->out.regs.rsp > ALT);
	assert_int_equal((t->out.regs.rsp + 8) % 16, 0);
	assert_ptr_equal(t->out.altstack_after.ss_sp, (void *)ALT);
	assert_int_equal(t->out.altstack_after.ss_size, ALT_SIZE);
	assert_int_equal(t->out.altstack_after.ss_flags, 0);
	/* The saved sigcontext still has the interrupted rsp; uc_stack the altstack's flags as set
	 * (Linux saves them, not SS_ONSTACK). */
	frame_uc(t, &uc);
	assert_int_equal(uc.uc_mcontext.gregs[REG_RSP], t->in.regs.rsp);
	assert_ptr_equal(uc.uc_stack.ss_sp, (void *)ALT);
	assert_int_equal(uc.uc_stack.ss_flags, 0);
	assert_int_equal(uc.uc_stack.ss_size, ALT_SIZE);

	/* A disabled altstack is not used. */
	t->in.altstack = (stack_t){.ss_sp = NULL, .ss_flags = SS_DISABLE, .ss_size = 0};
	build(t);
	assert_false(t->out.on_altstack);
	assert_true(t->out.regs.rsp > STK && t->out.regs.rsp < t->in.regs.rsp);
}

static void test_autodisarm(void **state)
{
	t_t *t = *state;
	ucontext_t uc;
	t->in.altstack = (stack_t){.ss_sp = (void *)ALT, .ss_flags = (int)SS_AUTODISARM_, .ss_size = ALT_SIZE};
	t->in.sa_flags |= SA_ONSTACK;
	build(t);
	assert_true(t->out.on_altstack);
	assert_int_equal(frame_fpstate(t), (ALT + ALT_SIZE - (XSIZE + 4)) & ~63ul);
	assert_null(t->out.altstack_after.ss_sp);
	assert_int_equal(t->out.altstack_after.ss_flags, SS_DISABLE);
	assert_int_equal(t->out.altstack_after.ss_size, 0);
	frame_uc(t, &uc);
	assert_ptr_equal(uc.uc_stack.ss_sp, (void *)ALT);
	assert_int_equal((uint32_t)uc.uc_stack.ss_flags, SS_AUTODISARM_);
	assert_int_equal(uc.uc_stack.ss_size, ALT_SIZE);
	/* sigreturn re-arms it. */
	assert_int_equal(read_back(t), 0);
	assert_ptr_equal(t->ret.altstack.ss_sp, (void *)ALT);
	assert_int_equal((uint32_t)t->ret.altstack.ss_flags, SS_AUTODISARM_);
	assert_int_equal(t->ret.altstack.ss_size, ALT_SIZE);

	/* With SS_AUTODISARM a thread inside the altstack does not count as on it: back to its top. */
	t->in.regs.rsp = ALT + ALT_SIZE - 200;
	build(t);
	assert_int_equal(frame_fpstate(t), (ALT + ALT_SIZE - (XSIZE + 4)) & ~63ul);

	/* Any delivery disarms it, even one that does not use it (as Linux's signal_delivered). */
	t->in.sa_flags &= ~(uint64_t)SA_ONSTACK;
	t->in.regs.rsp = STK + 12 * P;
	build(t);
	assert_false(t->out.on_altstack);
	assert_int_equal(t->out.altstack_after.ss_flags, SS_DISABLE);
	assert_int_equal(t->out.altstack_after.ss_size, 0);
}

static void test_nested_on_altstack(void **state)
{
	t_t *t = *state;
	t->in.altstack = (stack_t){.ss_sp = (void *)ALT, .ss_flags = 0, .ss_size = ALT_SIZE};
	t->in.sa_flags |= SA_ONSTACK;

	/* Already on it: the frame goes below the current rsp (and its red zone), not at the top. */
	uint64_t rsp = ALT + ALT_SIZE - 200;
	t->in.regs.rsp = rsp;
	build(t);
	uint64_t fp = frame_fpstate(t);
	assert_true(t->out.on_altstack);
	assert_true(fp + XSIZE + 4 <= rsp - 128);
	assert_true(t->out.regs.rsp > ALT);

	/* A frame that would run off its bottom is refused, though memory below is mapped. */
	t->in.regs.rsp = ALT + 1000;
	assert_int_equal(km_sigframe_build(&t->mm, &t->in, &t->out), -EFAULT);
	t->in.sa_flags &= ~(uint64_t)SA_ONSTACK; /* on it already: the check holds without SA_ONSTACK */
	assert_int_equal(km_sigframe_build(&t->mm, &t->in, &t->out), -EFAULT);
}

static void test_does_not_fit(void **state)
{
	t_t *t = *state;
	/* Below the stack's mapping. */
	t->in.regs.rsp = STK + 256;
	assert_int_equal(km_sigframe_build(&t->mm, &t->in, &t->out), -EFAULT);
	t->in.regs.rsp = 64;
	assert_int_equal(km_sigframe_build(&t->mm, &t->in, &t->out), -EFAULT);
	t->in.regs.rsp = ~0ull;
	assert_int_equal(km_sigframe_build(&t->mm, &t->in, &t->out), -EFAULT);

	/* An altstack that is not writable memory, or that wraps. */
	t->in.regs.rsp = STK + 12 * P;
	t->in.sa_flags |= SA_ONSTACK;
	t->in.altstack = (stack_t){.ss_sp = (void *)HOLE, .ss_flags = 0, .ss_size = 4 * P};
	assert_int_equal(km_sigframe_build(&t->mm, &t->in, &t->out), -EFAULT);
	t->in.altstack = (stack_t){.ss_sp = (void *)(RO - 3 * P), .ss_flags = 0, .ss_size = 4 * P};
	assert_int_equal(km_sigframe_build(&t->mm, &t->in, &t->out), -EFAULT);
	/* ss_sp + ss_size wraps around to the middle of the stack's mapping. */
	t->in.altstack = (stack_t){.ss_sp = (void *)-P, .ss_flags = 0, .ss_size = STK + 13 * P};
	assert_int_equal(km_sigframe_build(&t->mm, &t->in, &t->out), -EFAULT);
	t->in.altstack = (stack_t){.ss_sp = NULL, .ss_flags = SS_DISABLE, .ss_size = 0};

	/* No restorer: x86-64 has nowhere to return. */
	t->in.sa_flags &= ~SA_RESTORER_;
	assert_int_equal(km_sigframe_build(&t->mm, &t->in, &t->out), -EFAULT);
	t->in.sa_flags |= SA_RESTORER_;

	/* Image sizes km cannot hold. */
	t->in.xsave_size = 512;
	assert_int_equal(km_sigframe_build(&t->mm, &t->in, &t->out), -EINVAL);
	t->in.xsave_size = 1u << 20;
	assert_int_equal(km_sigframe_build(&t->mm, &t->in, &t->out), -EINVAL);
	t->in.xsave_size = XSIZE;
	build(t);
}

/* --- reading hostile frames ---------------------------------------------------------------------- */

static uint64_t sc_field(t_t *t, size_t off)
{
	return t->out.regs.rdx + offsetof(ucontext_t, uc_mcontext) + off;
}

static void put_fpstate_ptr(t_t *t, uint64_t v)
{
	gput(t, sc_field(t, offsetof(struct sigcontext, fpstate)), &v, 8);
}

static void test_read_bad_frame(void **state)
{
	t_t *t = *state;
	build(t);
	/* The frame itself unreadable. */
	assert_int_equal(km_sigframe_read(&t->mm, HOLE + 64, XCR0, t->back, XSIZE, &t->ret), -EFAULT);
	assert_int_equal(km_sigframe_read(&t->mm, 0, XCR0, t->back, XSIZE, &t->ret), -EFAULT);
	assert_int_equal(km_sigframe_read(&t->mm, ~0ull, XCR0, t->back, XSIZE, &t->ret), -EFAULT);
	/* Its ucontext starts below the stack's mapping. */
	assert_int_equal(km_sigframe_read(&t->mm, STK - 100, XCR0, t->back, XSIZE, &t->ret), -EFAULT);

	/* fpstate unmapped, misaligned, outside the user range. */
	uint64_t fp = frame_fpstate(t);
	put_fpstate_ptr(t, HOLE);
	assert_int_equal(read_back(t), -EFAULT);
	put_fpstate_ptr(t, fp + 16);
	assert_int_equal(read_back(t), -EFAULT);
	put_fpstate_ptr(t, ~63ull);
	assert_int_equal(read_back(t), -EFAULT);
	/* Only the legacy area mapped, with magics claiming more: MAGIC2 unreadable. */
	uint8_t img[576];
	gget(t, fp, img, sizeof(img));
	put_fpstate_ptr(t, STK + 16 * P - 576);
	gput(t, STK + 16 * P - 576, img, sizeof(img));
	assert_int_equal(read_back(t), -EFAULT);

	/* No FPU state at all. */
	put_fpstate_ptr(t, 0);
	assert_int_equal(read_back(t), 0);
	assert_false(t->ret.fpu_valid);
	assert_int_equal(t->ret.regs.rip, t->in.regs.rip);
}

static void test_read_hostile_registers_and_mask(void **state)
{
	t_t *t = *state;
	build(t);
	/* IOPL, NT, RF, VM and bits above 21 set; IF clear. */
	uint64_t efl = ~0ull & ~0x200ull;
	gput(t, sc_field(t, offsetof(struct sigcontext, eflags)), &efl, 8);
	uint64_t mask = ~0ull;
	gput(t, t->out.regs.rdx + offsetof(ucontext_t, uc_sigmask), &mask, 8);
	assert_int_equal(read_back(t), 0);
	assert_int_equal(t->ret.regs.rflags, 0x3c0dd5 | 0x202);
	assert_int_equal(t->ret.regs.rflags & 0x3000, 0);  /* IOPL */
	assert_int_equal(t->ret.regs.rflags & 0x20000, 0); /* VM */
	assert_int_equal(t->ret.mask, ~0ull & ~((1ull << (SIGKILL - 1)) | (1ull << (SIGSTOP - 1))));

	/* A non-canonical rip is a bad frame; the highest canonical user address is not. */
	uint64_t rip = 0x0000800000000000ull;
	gput(t, sc_field(t, offsetof(struct sigcontext, rip)), &rip, 8);
	assert_int_equal(read_back(t), -EFAULT);
	rip = 0x00007fffffffffffull;
	gput(t, sc_field(t, offsetof(struct sigcontext, rip)), &rip, 8);
	assert_int_equal(read_back(t), 0);
	assert_int_equal(t->ret.regs.rip, rip);
}

/* What a bare FXSAVE area becomes: its legacy bytes (no software bytes), x87 and SSE present,
 * nothing else. */
static void expect_fx_only(t_t *t, const uint8_t *legacy)
{
	uint8_t zero[XSIZE] = {0};
	uint64_t bv;
	assert_true(t->ret.fpu_valid);
	assert_memory_equal(t->back, legacy, SW_OFF);
	assert_memory_equal(t->back + SW_OFF, zero, 512 - SW_OFF);
	memcpy(&bv, t->back + HDR_OFF, 8);
	assert_int_equal(bv, 0x3);
	assert_memory_equal(t->back + HDR_OFF + 8, zero, XSIZE - HDR_OFF - 8);
}

static void test_read_fpstate_without_magic(void **state)
{
	t_t *t = *state;
	uint32_t bad = 0x12345678, big = 0x7fffffff;

	build(t);
	uint64_t fp = frame_fpstate(t);
	gput(t, fp + SW_OFF, &bad, 4); /* magic1 */
	assert_int_equal(read_back(t), 0);
	expect_fx_only(t, t->xsave);

	build(t);
	gput(t, fp + XSIZE, &bad, 4); /* magic2 */
	assert_int_equal(read_back(t), 0);
	expect_fx_only(t, t->xsave);

	build(t);
	gput(t, fp + SW_OFF + offsetof(struct _fpx_sw_bytes, xstate_size), &big, 4);
	gput(t, fp + SW_OFF + offsetof(struct _fpx_sw_bytes, extended_size), &big, 4);
	assert_int_equal(read_back(t), 0);
	expect_fx_only(t, t->xsave);

	/* A size larger than km's image, with MAGIC2 where it says: not believed. */
	build(t);
	uint32_t over = XSIZE + 64, over_ext = XSIZE + 68, magic2 = FP_XSTATE_MAGIC2;
	gput(t, fp + SW_OFF + offsetof(struct _fpx_sw_bytes, xstate_size), &over, 4);
	gput(t, fp + SW_OFF + offsetof(struct _fpx_sw_bytes, extended_size), &over_ext, 4);
	gput(t, fp + over, &magic2, 4);
	assert_int_equal(read_back(t), 0);
	expect_fx_only(t, t->xsave);

	build(t);
	uint32_t small = 600; /* extended_size below xstate_size */
	gput(t, fp + SW_OFF + offsetof(struct _fpx_sw_bytes, extended_size), &small, 4);
	assert_int_equal(read_back(t), 0);
	expect_fx_only(t, t->xsave);
}

static void test_read_fpstate_sanitised(void **state)
{
	t_t *t = *state;
	build(t);
	uint64_t fp = frame_fpstate(t);
	uint8_t hdr[64];
	memset(hdr, 0xff, sizeof(hdr)); /* XSTATE_BV, XCOMP_BV and the reserved bytes all ones */
	gput(t, fp + HDR_OFF, hdr, sizeof(hdr));
	uint32_t mxcsr = 0xffffffff;
	gput(t, fp + MXCSR_OFF, &mxcsr, 4);
	assert_int_equal(read_back(t), 0);
	uint64_t bv, xcomp;
	memcpy(&bv, t->back + HDR_OFF, 8);
	memcpy(&xcomp, t->back + HDR_OFF + 8, 8);
	assert_int_equal(bv, XCR0);
	assert_int_equal(xcomp, 0);
	for (int i = 16; i < 64; i++)
		assert_int_equal(t->back[HDR_OFF + i], 0);
	memcpy(&mxcsr, t->back + MXCSR_OFF, 4);
	assert_int_equal(mxcsr, 0xffff);
	for (int i = SW_OFF; i < 512; i++)
		assert_int_equal(t->back[i], 0);

	/* The frame's xfeatures limit what is restored: SSE left out is its initial state. */
	build(t);
	uint64_t x87 = 0x1;
	gput(t, fp + SW_OFF + offsetof(struct _fpx_sw_bytes, xstate_bv), &x87, 8);
	assert_int_equal(read_back(t), 0);
	memcpy(&bv, t->back + HDR_OFF, 8);
	assert_int_equal(bv, 0x1);

	/* A smaller image (from a machine with fewer components): only its bytes are read. */
	build(t);
	uint32_t size = 832, ext = 836, magic2 = FP_XSTATE_MAGIC2;
	gput(t, fp + SW_OFF + offsetof(struct _fpx_sw_bytes, xstate_size), &size, 4);
	gput(t, fp + SW_OFF + offsetof(struct _fpx_sw_bytes, extended_size), &ext, 4);
	gput(t, fp + size, &magic2, 4);
	assert_int_equal(read_back(t), 0);
	assert_memory_equal(t->back + 576, t->xsave + 576, size - 576);
	for (uint32_t i = size; i < XSIZE; i++)
		assert_int_equal(t->back[i], 0);
}

/* --- against the host kernel ------------------------------------------------------------------ */

/* A frame the host kernel built, on an altstack at HOSTWIN: its bytes and where its parts are. */
typedef struct host_frame {
	uint8_t bytes[HOSTWIN_SIZE];
	uint64_t uc, fp;
	uint32_t xsize;
	uint64_t xfeatures;
} host_frame_t;

static host_frame_t *hf;

static void capture(int sig, siginfo_t *si, void *u)
{
	ucontext_t *uc = u;
	struct _fpx_sw_bytes sw;
	(void)sig, (void)si;
	memcpy(&sw, (uint8_t *)uc->uc_mcontext.fpregs + SW_OFF, sizeof(sw));
	hf->uc = (uint64_t)(uintptr_t)uc;
	hf->fp = (uint64_t)(uintptr_t)uc->uc_mcontext.fpregs;
	hf->xsize = sw.xstate_size;
	hf->xfeatures = sw.xstate_bv;
	/* Only the kernel's frame: this handler's own stack below it is a sanitizer's to poison. */
	uint64_t lo = hf->uc - 8, hi = hf->fp + sw.xstate_size + 4;
	if (lo >= HOSTWIN && hi <= HOSTWIN + HOSTWIN_SIZE)
		memcpy(hf->bytes + (lo - HOSTWIN), (void *)lo, hi - lo);
}

static void host_frame(host_frame_t *out)
{
	struct sigaction sa = {.sa_sigaction = capture, .sa_flags = SA_SIGINFO | SA_ONSTACK}, old_sa;
	stack_t ss = {.ss_sp = (void *)HOSTWIN, .ss_size = HOSTWIN_SIZE}, old_ss;
	sigset_t m, old_m;
	void *w = mmap((void *)HOSTWIN, HOSTWIN_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	assert_ptr_equal(w, (void *)HOSTWIN);
	hf = out;
	sigemptyset(&m);
	sigaddset(&m, SIGHUP);
	assert_int_equal(sigprocmask(SIG_BLOCK, &m, &old_m), 0);
	assert_int_equal(sigaltstack(&ss, &old_ss), 0);
	assert_int_equal(sigaction(SIGUSR1, &sa, &old_sa), 0);
	assert_int_equal(raise(SIGUSR1), 0);
	assert_int_equal(sigaction(SIGUSR1, &old_sa, NULL), 0);
	assert_int_equal(sigaltstack(&old_ss, NULL), 0);
	assert_int_equal(sigprocmask(SIG_SETMASK, &old_m, NULL), 0);
	munmap(w, HOSTWIN_SIZE);
	assert_true(out->xsize >= 576 && out->xsize <= 4096);
}

/* The host kernel's own frame, put at the same guest addresses, reads back as what it holds. */
static void test_reads_host_kernel_frame(void **state)
{
	t_t *t = *state;
	host_frame_t *h = calloc(1, sizeof(*h));
	uint8_t *img = calloc(1, 4096);
	ucontext_t uc;
	assert_non_null(h);
	assert_non_null(img);
	host_frame(h);
	assert_int_equal(map_at(&t->mm, HOSTWIN, HOSTWIN_SIZE, PROT_READ | PROT_WRITE), 0);
	gput(t, HOSTWIN, h->bytes, HOSTWIN_SIZE);
	memcpy(&uc, h->bytes + (h->uc - HOSTWIN), UC_SIZE);

	assert_int_equal(km_sigframe_read(&t->mm, h->uc, h->xfeatures, img, h->xsize, &t->ret), 0);
	const greg_t *g = uc.uc_mcontext.gregs;
	assert_int_equal(t->ret.regs.rip, g[REG_RIP]);
	assert_int_equal(t->ret.regs.rsp, g[REG_RSP]);
	assert_int_equal(t->ret.regs.rbx, g[REG_RBX]);
	assert_int_equal(t->ret.regs.r15, g[REG_R15]);
	assert_int_equal(t->ret.regs.rflags, g[REG_EFL]);
	assert_int_equal(t->ret.mask, uc.uc_sigmask.__val[0]);
	assert_true(t->ret.mask & (1ull << (SIGHUP - 1)));
	assert_ptr_equal(t->ret.altstack.ss_sp, (void *)HOSTWIN);
	assert_int_equal(t->ret.altstack.ss_size, HOSTWIN_SIZE);
	assert_true(t->ret.fpu_valid);
	/* The kernel's image, software bytes aside: its header is already clean. */
	const uint8_t *kimg = h->bytes + (h->fp - HOSTWIN);
	assert_memory_equal(img, kimg, SW_OFF);
	assert_memory_equal(img + 512, kimg + 512, h->xsize - 512);
	free(img);
	free(h);
}

/* The child's landing place after the host's rt_sigreturn: it writes what it finds to RECORD
 * (rax rbx rcx rdx rsi rdi rbp rsp r8 r15, rflags, xmm0, ymm0's upper half) and exits. */
extern void sigframe_landing(void);
__asm__(".text\n.globl sigframe_landing\nsigframe_landing:\n"
	"mov %rax, 0x50100000\n mov %rbx, 0x50100008\n mov %rcx, 0x50100010\n mov %rdx, 0x50100018\n"
	"mov %rsi, 0x50100020\n mov %rdi, 0x50100028\n mov %rbp, 0x50100030\n mov %rsp, 0x50100038\n"
	"mov %r8, 0x50100040\n mov %r15, 0x50100048\n pushfq\n pop %rax\n mov %rax, 0x50100050\n"
	"movdqu %xmm0, 0x50100058\n vextractf128 $1, %ymm0, %xmm1\n movdqu %xmm1, 0x50100068\n"
	"mov $60, %eax\n xor %edi, %edi\n syscall\n ud2\n");

/* A frame km builds is one the host kernel's rt_sigreturn takes: registers, flags and AVX state
 * (which it loads only from a full XSAVE image with both magics) arrive in the program. */
static void test_host_kernel_takes_frame(void **state)
{
	t_t *t = *state;
	host_frame_t *h = calloc(1, sizeof(*h));
	uint8_t img[4096] __attribute__((aligned(64)));
	assert_non_null(h);
	host_frame(h);
	assert_true(h->xfeatures & 0x4); /* AVX */
	memcpy(img, h->bytes + (h->fp - HOSTWIN), h->xsize);
	memset(img + SW_OFF, 0, 512 - SW_OFF);
	for (int i = 0; i < 16; i++) {
		img[160 + i] = (uint8_t)(0xa0 + i); /* xmm0 */
		img[576 + i] = (uint8_t)(0xc0 + i); /* ymm0 bits 128..255 */
	}
	img[HDR_OFF] |= 0x4;
	t->in.xsave = img;
	t->in.xsave_size = h->xsize;
	t->in.xcr0 = h->xfeatures;
	t->in.regs.rip = (uint64_t)(uintptr_t)sigframe_landing;
	t->in.regs.rsp = HOSTWIN + 8 * P + 8;
	t->in.regs.rflags = 0x2c7; /* CF PF ZF SF, IF */
	assert_int_equal(map_at(&t->mm, HOSTWIN, HOSTWIN_SIZE, PROT_READ | PROT_WRITE), 0);
	build(t);
	gget(t, HOSTWIN, h->bytes, HOSTWIN_SIZE);

	uint64_t *rec = mmap((void *)RECORD, P, PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	assert_ptr_equal(rec, (void *)RECORD);
	uint64_t sp = t->out.regs.rsp + 8; /* as after the handler's ret */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		void *w = mmap((void *)HOSTWIN, HOSTWIN_SIZE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (w != (void *)HOSTWIN)
			_exit(3);
		memcpy(w, h->bytes, HOSTWIN_SIZE);
		__asm__ volatile("mov %0, %%rsp\n mov $15, %%eax\n syscall\n ud2" : : "r"(sp) : "memory");
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	const struct kvm_regs *r = &t->in.regs;
	assert_int_equal(rec[0], r->rax);
	assert_int_equal(rec[1], r->rbx);
	assert_int_equal(rec[2], r->rcx);
	assert_int_equal(rec[3], r->rdx);
	assert_int_equal(rec[4], r->rsi);
	assert_int_equal(rec[5], r->rdi);
	assert_int_equal(rec[6], r->rbp);
	assert_int_equal(rec[7], r->rsp);
	assert_int_equal(rec[8], r->r8);
	assert_int_equal(rec[9], r->r15);
	assert_int_equal(rec[10] & 0xfff, 0x2c7);
	assert_memory_equal((uint8_t *)&rec[11], img + 160, 16);
	assert_memory_equal((uint8_t *)&rec[13], img + 576, 16);
	munmap(rec, P);
	free(h);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_layout_matches_libc),
	    T(test_fpstate_layout),
	    T(test_handler_entry),
	    T(test_round_trip),
	    T(test_alignment_and_red_zone),
	    T(test_onstack),
	    T(test_autodisarm),
	    T(test_nested_on_altstack),
	    T(test_does_not_fit),
	    T(test_read_bad_frame),
	    T(test_read_hostile_registers_and_mask),
	    T(test_read_fpstate_without_magic),
	    T(test_read_fpstate_sanitised),
	    T(test_reads_host_kernel_frame),
	    T(test_host_kernel_takes_frame),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
