/* The Linux x86-64 signal frame, built and read back. See km_sigframe.h. */
#include "km_sigframe.h"

#include <errno.h>
#include <string.h>

/* The kernel's ABI (uapi asm/sigcontext.h, asm/ucontext.h, asm/signal.h); glibc does not export
 * all of it, and km's own structs below keep the layout independent of libc's idea of it. */
#define KM_SA_ONSTACK 0x08000000ull
#define KM_SA_RESTORER 0x04000000ull
#define KM_SS_DISABLE 2
#define KM_SS_AUTODISARM (1u << 31)
#define KM_UC_FP_XSTATE 0x1ull
#define KM_UC_SIGCONTEXT_SS 0x2ull
#define KM_UC_STRICT_RESTORE_SS 0x4ull
#define KM_FP_XSTATE_MAGIC1 0x46505853u
#define KM_FP_XSTATE_MAGIC2 0x46505845u
#define KM_USER_CS 0x33
#define KM_USER_SS 0x2b
#define KM_RED_ZONE 128

#define RFL_FIXED 0x2ull
#define RFL_TF 0x100ull
#define RFL_IF 0x200ull
#define RFL_DF 0x400ull
#define RFL_RF 0x10000ull
/* What sigreturn takes from the frame: the bits a program may own (CF PF AF ZF SF TF DF OF AC
 * and the ID/VIF/VIP bits popf cannot reach anyway), the same set km's sysret path keeps. */
#define RFL_USER_MASK 0x3c0dd5ull

/* The XSAVE image: a 512-byte FXSAVE legacy area whose bytes 464..511 are left to software (the
 * signal frame's _fpx_sw_bytes live there), then the 64-byte XSAVE header. */
#define XS_LEGACY 512u
#define XS_MXCSR 24u
#define XS_SW 464u
#define XS_HDR 512u
#define XS_HDR_SIZE 64u
#define XS_MIN (XS_LEGACY + XS_HDR_SIZE)
/* km's vCPU holds its image in a struct kvm_xsave, so nothing larger ever reaches a frame. */
#define XS_MAX ((uint32_t)sizeof(struct kvm_xsave))
#define XFEATURE_FPSSE 0x3ull
/* MXCSR bits a restore may set: every XSAVE-capable CPU has DAZ (bit 6), and KVM refuses an image
 * with any bit its host's MXCSR_MASK lacks, so bits 16..31 go. */
#define MXCSR_MASK 0x0000ffffu

typedef struct km_sw_bytes { /* _fpx_sw_bytes */
	uint32_t magic1;
	uint32_t extended_size; /* the image plus MAGIC2 */
	uint64_t xfeatures;     /* the components the image holds */
	uint32_t xstate_size;   /* the image without MAGIC2 */
	uint32_t padding[7];
} km_sw_bytes_t;

typedef struct km_sigcontext { /* struct sigcontext, 64-bit */
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags;
	uint16_t cs, gs, fs, ss;
	uint64_t err, trapno, oldmask, cr2;
	uint64_t fpstate;
	uint64_t reserved1[8];
} km_sigcontext_t;

typedef struct km_stack { /* stack_t */
	uint64_t ss_sp;
	int32_t ss_flags;
	uint32_t pad;
	uint64_t ss_size;
} km_stack_t;

typedef struct km_ucontext { /* the kernel's struct ucontext: the mask is the kernel's 64 bits */
	uint64_t uc_flags;
	uint64_t uc_link;
	km_stack_t uc_stack;
	km_sigcontext_t uc_mcontext;
	uint64_t uc_sigmask;
} km_ucontext_t;

typedef struct km_rt_sigframe {
	uint64_t pretcode;
	km_ucontext_t uc;
	uint8_t info[128];
} km_rt_sigframe_t;

_Static_assert(sizeof(km_sw_bytes_t) == 48, "_fpx_sw_bytes");
_Static_assert(sizeof(km_sigcontext_t) == 256, "sigcontext");
_Static_assert(offsetof(km_sigcontext_t, cs) == 144 && offsetof(km_sigcontext_t, fpstate) == 184,
	       "sigcontext fields");
_Static_assert(offsetof(km_ucontext_t, uc_mcontext) == 40 && offsetof(km_ucontext_t, uc_sigmask) == 296,
	       "ucontext");
_Static_assert(offsetof(km_rt_sigframe_t, info) == 312 && sizeof(km_rt_sigframe_t) == 440, "rt_sigframe");
_Static_assert(sizeof(siginfo_t) == 128, "siginfo");

/* --- the alternate stack, as the kernel judges it -------------------------------------------- */

static bool altstack_armed(const stack_t *as)
{
	return as->ss_size != 0 && !(as->ss_flags & KM_SS_DISABLE);
}

/* sp is on the altstack: (base, base + size], the stack growing down from its top. */
static bool within_altstack(const stack_t *as, uint64_t sp)
{
	uint64_t base = (uint64_t)(uintptr_t)as->ss_sp;
	return altstack_armed(as) && sp > base && sp - base <= as->ss_size;
}

/* With SS_AUTODISARM the thread counts as never on it: a handler that longjmp'd out, or state
 * corrupted to point near it, must not block the next delivery there. */
static bool on_altstack(const stack_t *as, uint64_t sp)
{
	return !((uint32_t)as->ss_flags & KM_SS_AUTODISARM) && within_altstack(as, sp);
}

/* --- building ---------------------------------------------------------------------------------- */

/* Where the frame and its FPU state go. Returns 0 or -EFAULT. */
static int place_frame(const km_sigframe_in_t *in, uint64_t *frame, uint64_t *fpstate, bool *on_alt)
{
	const stack_t *as = &in->altstack;
	uint64_t fp_size = (uint64_t)in->xsave_size + sizeof(uint32_t);
	bool nested = on_altstack(as, in->regs.rsp), entering = false;
	uint64_t sp;

	if (in->regs.rsp < KM_RED_ZONE)
		return -EFAULT;
	sp = in->regs.rsp - KM_RED_ZONE;
	if ((in->sa_flags & KM_SA_ONSTACK) && altstack_armed(as) && !on_altstack(as, sp)) {
		if (__builtin_add_overflow((uint64_t)(uintptr_t)as->ss_sp, (uint64_t)as->ss_size, &sp))
			return -EFAULT;
		entering = true;
	}
	if (sp < fp_size + sizeof(km_rt_sigframe_t) + 64 + 16 + 8)
		return -EFAULT;
	*fpstate = (sp - fp_size) & ~63ull;
	/* Handler entry as if called: (rsp + 8) 16-byte aligned. */
	*frame = ((*fpstate - sizeof(km_rt_sigframe_t)) & ~15ull) - 8;
	/* Running off the bottom of the alternate stack would scribble over whatever lies below it. */
	if ((nested || entering) && !within_altstack(as, *frame))
		return -EFAULT;
	*on_alt = nested || entering;
	return 0;
}

/* The frame's copy of the FPU state: the image as is, a header a restore accepts, and the
 * software bytes and MAGIC2 that say it is a full XSAVE image. */
static void fill_fpstate(uint8_t *fp, const km_sigframe_in_t *in)
{
	km_sw_bytes_t sw = {
		.magic1 = KM_FP_XSTATE_MAGIC1,
		.extended_size = in->xsave_size + (uint32_t)sizeof(uint32_t),
		.xfeatures = in->xcr0,
		.xstate_size = in->xsave_size,
	};
	uint32_t magic2 = KM_FP_XSTATE_MAGIC2;
	uint64_t bv;

	memcpy(fp, in->xsave, in->xsave_size);
	memcpy(&bv, fp + XS_HDR, sizeof(bv));
	/* x87 and SSE always marked present, as Linux does: a program that edits only the legacy
	 * area of its frame gets that edit back at sigreturn. */
	bv = (bv & in->xcr0) | XFEATURE_FPSSE;
	memset(fp + XS_HDR, 0, XS_HDR_SIZE);
	memcpy(fp + XS_HDR, &bv, sizeof(bv));
	memcpy(fp + XS_SW, &sw, sizeof(sw));
	memcpy(fp + in->xsave_size, &magic2, sizeof(magic2));
}

static void fill_sigcontext(km_sigcontext_t *sc, const km_sigframe_in_t *in, uint64_t fpstate)
{
	const struct kvm_regs *r = &in->regs;
	*sc = (km_sigcontext_t){
		.r8 = r->r8, .r9 = r->r9, .r10 = r->r10, .r11 = r->r11,
		.r12 = r->r12, .r13 = r->r13, .r14 = r->r14, .r15 = r->r15,
		.rdi = r->rdi, .rsi = r->rsi, .rbp = r->rbp, .rbx = r->rbx,
		.rdx = r->rdx, .rax = r->rax, .rcx = r->rcx, .rsp = r->rsp,
		.rip = r->rip, .eflags = r->rflags,
		.cs = KM_USER_CS, .ss = KM_USER_SS,
		.err = in->err, .trapno = in->trapno, .oldmask = in->saved_mask, .cr2 = in->cr2,
		.fpstate = fpstate,
	};
}

static void fill_frame(km_rt_sigframe_t *f, const km_sigframe_in_t *in, uint64_t fpstate)
{
	memset(f, 0, sizeof(*f));
	f->pretcode = in->restorer;
	f->uc.uc_flags = KM_UC_FP_XSTATE | KM_UC_SIGCONTEXT_SS | KM_UC_STRICT_RESTORE_SS;
	/* The altstack as the thread holds it (flags and all), before SS_AUTODISARM disarms it:
	 * sigreturn re-arms it from here. */
	f->uc.uc_stack.ss_sp = (uint64_t)(uintptr_t)in->altstack.ss_sp;
	f->uc.uc_stack.ss_flags = in->altstack.ss_flags;
	f->uc.uc_stack.ss_size = in->altstack.ss_size;
	fill_sigcontext(&f->uc.uc_mcontext, in, fpstate);
	f->uc.uc_sigmask = in->saved_mask;
	/* Linux copies the siginfo only for SA_SIGINFO and leaves stack garbage otherwise; km always
	 * writes it, so no byte of km's or an older frame's shows through. */
	memcpy(f->info, in->info, sizeof(f->info));
}

static void handler_entry(km_sigframe_out_t *out, const km_sigframe_in_t *in, uint64_t frame)
{
	out->regs = in->regs;
	out->regs.rip = in->handler;
	out->regs.rsp = frame;
	out->regs.rdi = (uint64_t)in->info->si_signo;
	out->regs.rsi = frame + offsetof(km_rt_sigframe_t, info);
	out->regs.rdx = frame + offsetof(km_rt_sigframe_t, uc);
	out->regs.rax = 0;
	out->regs.rflags = (in->regs.rflags & ~(RFL_TF | RFL_DF | RFL_RF)) | RFL_FIXED;
}

int km_sigframe_build(km_mm_t *mm, const km_sigframe_in_t *in, km_sigframe_out_t *out)
{
	uint8_t fp[XS_MAX + sizeof(uint32_t)];
	km_rt_sigframe_t f;
	uint64_t frame, fpstate;
	bool on_alt;
	int r;

	if (in->xsave_size < XS_MIN || in->xsave_size > XS_MAX || in->xsave == NULL || in->info == NULL)
		return -EINVAL;
	/* x86-64 has no kernel-provided return path: without a restorer the frame is unusable. */
	if (!(in->sa_flags & KM_SA_RESTORER))
		return -EFAULT;
	r = place_frame(in, &frame, &fpstate, &on_alt);
	if (r < 0)
		return r;
	fill_fpstate(fp, in);
	fill_frame(&f, in, fpstate);
	if (km_copy_to_guest(mm, fpstate, fp, in->xsave_size + sizeof(uint32_t)) < 0 ||
	    km_copy_to_guest(mm, frame, &f, sizeof(f)) < 0)
		return -EFAULT;
	handler_entry(out, in, frame);
	out->on_altstack = on_alt;
	/* Disarmed at every delivery, whether or not this handler asked for the altstack, as Linux. */
	out->altstack_after = ((uint32_t)in->altstack.ss_flags & KM_SS_AUTODISARM)
				      ? (stack_t){.ss_sp = NULL, .ss_flags = KM_SS_DISABLE, .ss_size = 0}
				      : in->altstack;
	return 0;
}

/* --- reading back ------------------------------------------------------------------------------ */

/* Does the image at gva (whose legacy area is already in buf) say it is a full XSAVE image, with
 * both magics? Its size is believed only within [XS_MIN, xsave_size]. Sets *sw and *full; 0, or
 * -EFAULT if MAGIC2's place cannot be read (as Linux). */
static int xstate_extent(km_mm_t *mm, uint64_t gva, const uint8_t *buf, uint32_t xsave_size,
			 km_sw_bytes_t *sw, bool *full)
{
	uint32_t magic2;

	memcpy(sw, buf + XS_SW, sizeof(*sw));
	*full = sw->magic1 == KM_FP_XSTATE_MAGIC1 && sw->xstate_size >= XS_MIN &&
		sw->xstate_size <= xsave_size && sw->xstate_size <= sw->extended_size;
	if (!*full)
		return 0;
	if (km_copy_from_guest(mm, &magic2, gva + sw->xstate_size, sizeof(magic2)) < 0)
		return -EFAULT;
	*full = magic2 == KM_FP_XSTATE_MAGIC2;
	return 0;
}

/* Makes buf an image KVM_SET_XSAVE accepts and that holds nothing the program may not set:
 * components outside xcr0 and `present` in their initial state, a zero compaction word and
 * reserved header, legal MXCSR bits, no software bytes. */
static void sanitise_xsave(uint8_t *buf, uint64_t bv, uint64_t present, uint64_t xcr0)
{
	uint32_t mxcsr;

	bv &= present & xcr0;
	memset(buf + XS_HDR, 0, XS_HDR_SIZE);
	memcpy(buf + XS_HDR, &bv, sizeof(bv));
	memcpy(&mxcsr, buf + XS_MXCSR, sizeof(mxcsr));
	mxcsr &= MXCSR_MASK;
	memcpy(buf + XS_MXCSR, &mxcsr, sizeof(mxcsr));
	memset(buf + XS_SW, 0, XS_LEGACY - XS_SW);
}

/* Reads the FPU state a frame points at into buf (xsave_size bytes). A frame whose software bytes
 * or MAGIC2 do not describe a full image is taken as a bare FXSAVE area (x87 and SSE only), as
 * Linux does for programs that build or copy only the legacy part. 0 or -EFAULT. */
static int read_fpstate(km_mm_t *mm, uint64_t gva, uint64_t xcr0, uint8_t *buf, uint32_t xsave_size)
{
	km_sw_bytes_t sw;
	uint64_t bv;
	bool full;

	/* XRSTOR and FXRSTOR fault on a misaligned image, and Linux's sigreturn with them. */
	if ((gva & 63) != 0 || gva >= KM_USER_TOP)
		return -EFAULT;
	memset(buf, 0, xsave_size);
	if (km_copy_from_guest(mm, buf, gva, XS_LEGACY) < 0)
		return -EFAULT;
	if (xstate_extent(mm, gva, buf, xsave_size, &sw, &full) < 0)
		return -EFAULT;
	if (!full) {
		sanitise_xsave(buf, XFEATURE_FPSSE, XFEATURE_FPSSE, xcr0);
		return 0;
	}
	if (km_copy_from_guest(mm, buf + XS_LEGACY, gva + XS_LEGACY, sw.xstate_size - XS_LEGACY) < 0)
		return -EFAULT;
	/* Bytes past the frame's xstate_size stay zero: each component's initial value. */
	memcpy(&bv, buf + XS_HDR, sizeof(bv));
	sanitise_xsave(buf, bv, sw.xfeatures, xcr0);
	return 0;
}

static void restore_regs(struct kvm_regs *r, const km_sigcontext_t *sc)
{
	*r = (struct kvm_regs){
		.r8 = sc->r8, .r9 = sc->r9, .r10 = sc->r10, .r11 = sc->r11,
		.r12 = sc->r12, .r13 = sc->r13, .r14 = sc->r14, .r15 = sc->r15,
		.rdi = sc->rdi, .rsi = sc->rsi, .rbp = sc->rbp, .rbx = sc->rbx,
		.rdx = sc->rdx, .rax = sc->rax, .rcx = sc->rcx, .rsp = sc->rsp,
		.rip = sc->rip,
		.rflags = (sc->eflags & RFL_USER_MASK) | RFL_FIXED | RFL_IF,
	};
}

int km_sigframe_read(km_mm_t *mm, uint64_t rsp, uint64_t xcr0, void *xsave, uint32_t xsave_size,
		     km_sigframe_ret_t *ret)
{
	const uint64_t unblockable = (1ull << (SIGKILL - 1)) | (1ull << (SIGSTOP - 1));
	km_sigframe_ret_t res = {0};
	km_ucontext_t uc;
	uint64_t frame;

	if (xsave_size < XS_MIN || xsave_size > XS_MAX)
		return -EINVAL;
	if (rsp < sizeof(uint64_t) || rsp >= KM_USER_TOP)
		return -EFAULT;
	frame = rsp - sizeof(uint64_t);
	if (km_copy_from_guest(mm, &uc, frame + offsetof(km_rt_sigframe_t, uc), sizeof(uc)) < 0)
		return -EFAULT;
	/* A non-canonical rip would fail the VM entry (or km's iretq) instead of faulting in the
	 * program; Linux's return to it faults, a SIGSEGV either way. */
	if (((int64_t)(uc.uc_mcontext.rip << 16) >> 16) != (int64_t)uc.uc_mcontext.rip)
		return -EFAULT;
	restore_regs(&res.regs, &uc.uc_mcontext);
	res.mask = uc.uc_sigmask & ~unblockable;
	res.altstack = (stack_t){
		.ss_sp = (void *)(uintptr_t)uc.uc_stack.ss_sp,
		.ss_flags = uc.uc_stack.ss_flags,
		.ss_size = uc.uc_stack.ss_size,
	};
	if (uc.uc_mcontext.fpstate != 0) {
		if (read_fpstate(mm, uc.uc_mcontext.fpstate, xcr0, xsave, xsave_size) < 0)
			return -EFAULT;
		res.fpu_valid = true;
	}
	*ret = res;
	return 0;
}
