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
