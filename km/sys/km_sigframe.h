/*
 * The signal frame: what Linux x86-64 pushes on a thread's stack to run a signal handler
 * (struct rt_sigframe: the restorer's return address, a ucontext with the interrupted registers,
 * the siginfo, and the FPU/SSE/AVX state in XSAVE layout with its software-reserved header),
 * and reading it back at rt_sigreturn. Byte for byte the kernel's layout, so that libc's
 * restorers, debuggers, and programs that read or edit their ucontext (Go's runtime, JITs,
 * siglongjmp) work unchanged.
 *
 * Pure functions over guest memory: no vCPU, no KVM. The caller gets the registers and the XSAVE
 * image from the vCPU before and loads them after.
 */
#ifndef KM_SIGFRAME_H
#define KM_SIGFRAME_H

#include <linux/kvm.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "km_mm.h"

/* What the interrupted thread was, and what the handler is. */
typedef struct km_sigframe_in {
	struct kvm_regs regs;   /* the program's registers at the interruption (CPL3 view) */
	const void *xsave;      /* its FPU state: KVM's XSAVE image (standard, non-compacted) */
	uint32_t xsave_size;    /* bytes of that image in use for xcr0 (km_machine_t.xsave_size) */
	uint64_t xcr0;
	const siginfo_t *info;  /* what the handler receives (si_signo set) */
	uint64_t handler;       /* km_sigaction_t: handler, flags (SA_*), restorer */
	uint64_t sa_flags;
	uint64_t restorer;
	uint64_t saved_mask;    /* the mask to restore at sigreturn (uc_sigmask) */
	stack_t altstack;       /* the thread's sigaltstack (ss_sp a guest address) */
	uint64_t fs_base;       /* not part of the frame; kept for symmetry with the kernel's */
	uint64_t trapno, err, cr2; /* mcontext's trapno, err, cr2 (0 for signals not from faults) */
} km_sigframe_in_t;

/* The handler's entry: registers to load (rip = handler, rsp = the frame, rdi = signal,
 * rsi = &siginfo, rdx = &ucontext, rax = 0, rflags with TF, DF and RF cleared), and whether the
 * frame went on the alternate stack. SS_AUTODISARM disarms the altstack at every delivery, as
 * Linux does: *altstack_after. The caller also resets the vCPU's FPU to its initial state for
 * the handler (Linux's handlers start with a clean FPU; the program's is in the frame). */
typedef struct km_sigframe_out {
	struct kvm_regs regs;
	bool on_altstack;
	stack_t altstack_after; /* the thread's sigaltstack after delivery */
} km_sigframe_out_t;

/* Builds the frame in guest memory below in->regs.rsp (past the 128-byte red zone), or at the
 * top of the alternate stack when SA_ONSTACK asks for it and the thread is not already on it.
 * Returns 0, or -EFAULT if the frame does not fit in writable guest memory (Linux then kills
 * the thread's process with SIGSEGV), -EINVAL for an xsave_size it cannot hold. */
int km_sigframe_build(km_mm_t *mm, const km_sigframe_in_t *in, km_sigframe_out_t *out);

/* What rt_sigreturn restores: registers (rflags limited to the bits a program may own, CS/SS
 * implied), the XSAVE image to load (sanitised: XSTATE_BV within xcr0, MXCSR reserved bits
 * clear, reserved header bytes zero), the signal mask (SIGKILL/SIGSTOP removed) and the
 * sigaltstack the frame's uc_stack asks for: unchecked, the caller applies it as sigaltstack(2)
 * would and ignores every refusal (EPERM while on it, EINVAL, ENOMEM), as Linux does. */
typedef struct km_sigframe_ret {
	struct kvm_regs regs;
	uint64_t mask;
	stack_t altstack;
	bool fpu_valid; /* false: the frame had no FPU state (fpstate NULL): reset the FPU */
} km_sigframe_ret_t;

/* Reads the frame the handler's `ret` into the restorer left at rsp (the restorer's rsp at its
 * `syscall`: the frame starts at rsp - 8). xsave receives xsave_size bytes (clobbered on failure).
 * An fpstate without both magics is taken as a bare FXSAVE area (x87 and SSE only); one not
 * 64-byte aligned or unreadable is a bad frame. Returns 0, -EFAULT (bad frame: Linux sends
 * SIGSEGV), or -EINVAL for an xsave_size km_sigframe_build would refuse. Never trusts a byte of
 * the frame (a non-canonical rip is a bad frame). */
int km_sigframe_read(km_mm_t *mm, uint64_t rsp, uint64_t xcr0, void *xsave, uint32_t xsave_size,
		     km_sigframe_ret_t *ret);

#endif
