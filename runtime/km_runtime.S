/*
 * km's guest runtime: the code that runs in the guest beside the program, assembled to a flat
 * binary that km loads at KM_RT_GVA (layout and the reasons for it in km_runtime_layout.h).
 * Position independent, and it never touches the program's stack: exceptions run on the vCPU's
 * IST stack, so the red zone below the program's rsp survives everything km does.
 */
#include "km_runtime_layout.h"

	.code64
	.text

/* User page. `syscall` lands here (LSTAR) with rcx = return rip and r11 = rflags. */
	.org KM_RT_SYSCALL_ENTRY
km_syscall_entry:
	int3
	ud2 /* never reached: km returns straight to the program */

/* The poll stub (template; km copies it into each vCPU's stub page, whose LSTAR it is). It saves
 * the call into its slot (S, RIP-relative: no register, no stack), claims the slot, and spins
 * for a km server (km_syscall_poll.c) within TSC bounds km wrote into the stub page (which the
 * program cannot write: every spin ends, so every vCPU reaches a clean point). The deadline is
 * kept in r9 (saved in the slot, restored on every way out). DONE: back
 * to the program as sysret would (rax the result, rcx/r11 as `syscall` left them, rflags from
 * r11). Anything else: rax/rdx/rcx/r11 as at the `syscall`, then one of two int3s, which km
 * takes as a syscall exit (it trusts neither the int3 nor the slot: its own state decides). */
#define LOAD_TSC rdtsc; shl $32, %rdx; or %rdx, %rax
	.org KM_RT_POLL_TEMPLATE
km_poll_stub:
	.set S, km_poll_stub + KM_RT_POLL_DIST
	mov %rax, S + KM_SLOT_NR(%rip)
	mov %rdi, S + KM_SLOT_ARGS + 0(%rip)
	mov %rsi, S + KM_SLOT_ARGS + 8(%rip)
	mov %rdx, S + KM_SLOT_ARGS + 16(%rip)
	mov %r10, S + KM_SLOT_ARGS + 24(%rip)
	mov %r8, S + KM_SLOT_ARGS + 32(%rip)
	mov %r9, S + KM_SLOT_ARGS + 40(%rip)
	/* The program single-steps (TF in its rflags; SFMASK keeps it out of the stub): the exit
	 * path returns as Linux does, the trap on the program's next instruction. This stub's
	 * popfq would raise it inside the stub. */
	bt $8, %r11
	jc .Lnew
	mov $KM_POLL_IDLE, %eax
	mov $KM_POLL_REQ, %edx
	lock cmpxchg %edx, S + KM_SLOT_STATE(%rip)
	jne .Lnew /* a server asleep (or the slot busy): the exit path */
	LOAD_TSC
	add km_poll_stub + KM_POLL_TAKE_TICKS(%rip), %rax
	mov %rax, %r9
.Ltake:
	pause
	mov S + KM_SLOT_STATE(%rip), %eax
	cmp $KM_POLL_REQ, %eax
	jne .Ltaken
	LOAD_TSC
	cmp %r9, %rax
	jb .Ltake
	mov $KM_POLL_REQ, %eax /* nobody took it: withdraw it, unless a server takes it now */
	mov $KM_POLL_IDLE, %edx
	lock cmpxchg %edx, S + KM_SLOT_STATE(%rip)
	je .Lnew
.Ltaken: /* eax: the state that followed REQ */
	cmp $KM_POLL_DONE, %eax
	je .Ldone
	cmp $KM_POLL_REFUSED, %eax
	je .Lrefused
	cmp $KM_POLL_TAKEN, %eax
	jne .Lhandback
	LOAD_TSC
	add km_poll_stub + KM_POLL_DONE_TICKS(%rip), %rax
	mov %rax, %r9
.Lwait:
	pause
	mov S + KM_SLOT_STATE(%rip), %eax
	cmp $KM_POLL_TAKEN, %eax
	jne .Lanswered
	LOAD_TSC
	cmp %r9, %rax
	jb .Lwait
	mov $KM_POLL_TAKEN, %eax /* it blocks: km's vCPU thread sleeps until the answer instead */
	mov $KM_POLL_ABANDON, %edx
	lock cmpxchg %edx, S + KM_SLOT_STATE(%rip)
	je .Lhandback
.Lanswered:
	cmp $KM_POLL_REFUSED, %eax
	je .Lrefused
	cmp $KM_POLL_DONE, %eax
	jne .Lhandback
.Ldone:
	mov S + KM_SLOT_RESULT(%rip), %rax
	movl $KM_POLL_IDLE, S + KM_SLOT_STATE(%rip)
	mov S + KM_SLOT_ARGS + 40(%rip), %r9
	mov %cs, %edx
	test $3, %dl
	jz .Lsysret
	/* CPL3 (PVM): rflags come back through a one-word stack in the slot, the program's own
	 * stack (and its red zone) untouched. */
	mov %rsp, S + KM_SLOT_RSP(%rip)
	lea S + KM_SLOT_FLAGS_TOP(%rip), %rsp
	push %r11
	mov S + KM_SLOT_ARGS + 16(%rip), %rdx
	popfq
	mov S + KM_SLOT_RSP(%rip), %rsp
	jmp *%rcx
.Lsysret: /* CPL0 (hardware KVM): as Linux returns */
	mov S + KM_SLOT_ARGS + 16(%rip), %rdx
	sysretq
.Lrefused:
	movl $KM_POLL_IDLE, S + KM_SLOT_STATE(%rip)
.Lnew:
	mov S + KM_SLOT_NR(%rip), %rax
	mov S + KM_SLOT_ARGS + 16(%rip), %rdx
	mov S + KM_SLOT_ARGS + 40(%rip), %r9
	jmp .Lint3_new
.Lhandback:
	mov S + KM_SLOT_NR(%rip), %rax
	mov S + KM_SLOT_ARGS + 16(%rip), %rdx
	mov S + KM_SLOT_ARGS + 40(%rip), %r9
	jmp .Lint3_taken
	.org km_poll_stub + KM_POLL_TAKE_TICKS
	.quad 0 /* km writes both per vCPU */
	.quad 0
	.org km_poll_stub + KM_POLL_INT3_NEW
.Lint3_new:
	int3 /* nothing taken: km runs the call as on the exit path */
	ud2
	.org km_poll_stub + KM_POLL_INT3_TAKEN
.Lint3_taken:
	int3 /* a server took it: km finishes it on the vCPU's thread */
	ud2
	.org km_poll_stub + KM_RT_POLL_STUB_SIZE

/* Kernel page. km sends a vCPU here, instead of the plain return, after it narrowed a mapping:
 * reloading CR3 drops stale translations (hardware KVM caches them in the guest TLB). We are on
 * the IST stack, so pushing is safe. */
	.org KM_RT_FLUSH_ENTRY
km_flush_entry:
	push %rax
	mov %cr3, %rax
	mov %rax, %cr3
	pop %rax
	jmp km_exc_return

	.org KM_RT_EXC_RETURN
km_exc_return:
	add $8, %rsp /* error code */
	iretq

/* One stub per vector: a uniform frame (error code, rip, cs, rflags, rsp, ss) on the IST stack,
 * then one exit to km, which ends the guest, edits the frame, or handles a syscall. */
.macro exc_stub vec, has_err
	.org KM_RT_EXC_STUBS + \vec * KM_RT_EXC_STUB_SIZE
	.if \has_err == 0
	pushq $0
	.endif
	out %al, $(KM_PORT_EXC_BASE + \vec)
	jmp km_exc_return
.endm

	exc_stub 0, 0
	exc_stub 1, 0
	exc_stub 2, 0
	exc_stub 3, 0
	exc_stub 4, 0
	exc_stub 5, 0
	exc_stub 6, 0
	exc_stub 7, 0
	exc_stub 8, 1
	exc_stub 9, 0
	exc_stub 10, 1
	exc_stub 11, 1
	exc_stub 12, 1
	exc_stub 13, 1
	exc_stub 14, 1
	exc_stub 15, 0
	exc_stub 16, 0
	exc_stub 17, 1
	exc_stub 18, 0
	exc_stub 19, 0
	exc_stub 20, 0
	exc_stub 21, 1
	exc_stub 22, 0
	exc_stub 23, 0
	exc_stub 24, 0
	exc_stub 25, 0
	exc_stub 26, 0
	exc_stub 27, 0
	exc_stub 28, 0
	exc_stub 29, 1
	exc_stub 30, 1
	exc_stub 31, 0

	.org KM_RT_CODE_SIZE - 1
	.byte 0xcc
