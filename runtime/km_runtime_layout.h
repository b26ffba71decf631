/*
 * Layout of km's runtime region, shared by the C side (km/) and the assembly stubs (runtime/).
 *
 * The program runs at CPL3 exactly as under Linux. The runtime region sits at the top of the
 * lower half (the program's mappings end below KM_RT_GVA), because on KVM's PVM backend code and
 * tables in the upper half are out of the guest's allowed address range. Guest-physical 0.
 *
 *   +0x00000  user stub page (U=1, read/exec): the syscall entry (LSTAR)
 *   +0x01000  kernel stub page (U=0): exception stubs, TLB-flush return
 *   +0x02000  IDT (U=0)
 *   +0x10000  per-vCPU areas, KM_RT_VCPU_SIZE each (U=0): GDT, TSS, exception stack
 *   +0x900000 the vDSO (runtime/vdso/km_vdso_layout.h)
 *   +0xa00000 per-vCPU poll stubs, one page each (U=1, read/exec): LSTAR of the poll path
 *   +0xb00000 per-vCPU poll slots, one page each (U=1, read/write), KM_RT_POLL_DIST past the stub
 *
 * Why the syscall entry is `int3`: on PVM a `syscall` from CPL3 lands at LSTAR still at CPL3, and
 * no CPL3 instruction exits to km; on hardware KVM it lands at CPL0. `int3` reaches km's CPL0
 * exception stub through the IDT in both cases, and km returns to the program by editing the
 * iret frame (rip = rcx, rflags = r11, user CS/SS), so one stub serves both.
 */
#ifndef KM_RUNTIME_LAYOUT_H
#define KM_RUNTIME_LAYOUT_H

#define KM_RT_GVA 0x7fffff000000
#define KM_RT_GPA 0x0
#define KM_RT_SIZE 0x1000000 /* 16 MiB of guest-physical space reserved for the runtime */

#define KM_RT_USER_OFF 0x0
#define KM_RT_KERN_OFF 0x1000
#define KM_RT_IDT_OFF 0x2000
#define KM_RT_CODE_SIZE 0x2000 /* user page + kernel page, assembled as one blob */

/* Offsets inside the code blob (loaded at KM_RT_USER_OFF). */
#define KM_RT_SYSCALL_ENTRY 0x0       /* LSTAR: int3 */
#define KM_RT_FLUSH_ENTRY 0x1000      /* reload CR3, then return from the exception frame */
#define KM_RT_EXC_STUBS 0x1100        /* exception stub for vector v at KM_RT_EXC_STUBS + v * 32 */
#define KM_RT_EXC_STUB_SIZE 32
#define KM_RT_EXC_RETURN 0x1080       /* common tail: drop the error code, iretq */

#define KM_RT_VCPU_OFF 0x10000
#define KM_RT_VCPU_SIZE 0x8000
#define KM_RT_VCPU_GDT 0x0
#define KM_RT_VCPU_TSS 0x1000
#define KM_RT_VCPU_STACK_TOP 0x8000 /* IST1 and RSP0: pages +0x2000 .. +0x8000 */
#define KM_MAX_VCPUS 256

/* The exitless syscall path (--syscall-path=poll, km_syscall_poll.h). Each vCPU's LSTAR is its
 * own copy of the poll stub (assembled once at KM_RT_POLL_TEMPLATE in the code blob); the stub
 * reaches its slot RIP-relative, so it needs no register, no stack and no per-CPU base. The slot
 * is the program's to write (any thread's): km copies a request once and trusts none of it. */
#define KM_RT_POLL_STUB_OFF 0xa00000
#define KM_RT_POLL_SLOT_OFF 0xb00000
#define KM_RT_POLL_STRIDE 0x1000
#define KM_RT_POLL_DIST (KM_RT_POLL_SLOT_OFF - KM_RT_POLL_STUB_OFF)
#define KM_RT_POLL_TEMPLATE 0x400  /* in the user page of the code blob */
#define KM_RT_POLL_STUB_SIZE 0x400
#define KM_POLL_TAKE_TICKS 0x3c0   /* in the stub page (read-only to the program, km writes it): */
#define KM_POLL_DONE_TICKS 0x3c8   /* TSC ticks the stub waits for a server to take, to finish */
#define KM_POLL_INT3_NEW 0x3e0     /* stub offsets of its two int3s (km takes either as a syscall) */
#define KM_POLL_INT3_TAKEN 0x3f0

/* Slot fields (byte offsets). */
#define KM_SLOT_STATE 0x00      /* 32 bits, KM_POLL_* below */
#define KM_SLOT_NR 0x08
#define KM_SLOT_ARGS 0x10       /* rdi rsi rdx r10 r8 r9 */
#define KM_SLOT_RESULT 0x40
#define KM_SLOT_RSP 0x60        /* the stub's scratch: the program's rsp while it restores rflags */
#define KM_SLOT_FLAGS_TOP 0x70  /* a one-word stack for popfq */

/* Slot states. The stub moves IDLE->REQ, REQ->IDLE (gave up before a server took it),
 * TAKEN->ABANDON (gave up waiting), DONE/REFUSED->IDLE; a server REQ->TAKEN, TAKEN->DONE,
 * TAKEN->REFUSED, TAKEN->FINISH (km's vCPU thread must finish it), IDLE->ASLEEP. */
#define KM_POLL_IDLE 0
#define KM_POLL_REQ 1
#define KM_POLL_TAKEN 2
#define KM_POLL_DONE 3
#define KM_POLL_FINISH 4
#define KM_POLL_REFUSED 5
#define KM_POLL_ASLEEP 6
#define KM_POLL_ABANDON 7

/* I/O port the exception stubs write to; `out` from CPL0 is one VM exit km decodes by port. */
#define KM_PORT_EXC_BASE 0x20 /* 0x20 + vector, vectors 0..31 */

/* GDT selectors, laid out so that STAR works the way Linux sets it up. */
#define KM_SEL_KCODE 0x10
#define KM_SEL_KDATA 0x18
#define KM_SEL_UCODE32 0x23
#define KM_SEL_UDATA 0x2b
#define KM_SEL_UCODE 0x33
#define KM_SEL_TSS 0x40
#define KM_GDT_ENTRIES 10

#endif
