/* CPU exceptions -> Linux signals with default actions. See km_exception.h. */
#include "km_exception.h"

#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "km_guest.h"
#include "km_runtime.h"
#include "km_syscall.h"

#define PF_WRITE (1u << 1)
#define PF_FETCH (1u << 4)

/* rflags bits a program may set (CF PF AF ZF SF TF DF OF AC ID and the like), as sysret allows. */
#define RFLAGS_USER_MASK 0x3c0dd5ull
#define RFLAGS_FIXED 0x2ull
#define RFLAGS_IF 0x200ull

/* The frame the CPU and the stub left on the IST stack. */
typedef struct exc_frame {
	uint64_t error, rip, cs, rflags, rsp, ss;
} exc_frame_t;

/* The signal Linux sends for each vector (arch/x86/kernel/traps.c). */
static int vector_signal(int vector)
{
	switch (vector) {
	case 0:  /* #DE divide error */
	case 16: /* #MF x87 error */
	case 19: /* #XM SIMD error */
		return SIGFPE;
	case 1: /* #DB */
	case 3: /* #BP int3 */
		return SIGTRAP;
	case 6: /* #UD */
		return SIGILL;
	case 11: /* #NP */
	case 12: /* #SS */
	case 17: /* #AC */
		return SIGBUS;
	default:
		return SIGSEGV;
	}
}

void km_guest_kill(km_vcpu_t *v, int sig, uint64_t rip, uint64_t addr)
{
	km_guest_t *g = v->g;
	if (g->exited)
		return;
	g->exited = true;
	g->term_signal = sig;
	g->fault_rip = rip;
	g->fault_addr = addr;
}

/* A #PF the guest's mappings allow is a stale translation (km widened a mapping and the vCPU had
 * the old one cached): flush once and retry. A second fault at the same place is real. */
static bool page_fault_is_stale(km_vcpu_t *v, uint64_t cr2, uint64_t error, uint64_t rip)
{
	km_vma_t *vma = km_vma_find(&v->g->mm, cr2);
	bool allowed = vma != NULL && vma->prot != PROT_NONE;
	if (allowed && (error & PF_WRITE) && !(vma->prot & PROT_WRITE))
		allowed = false;
	if (allowed && (error & PF_FETCH) && !(vma->prot & PROT_EXEC))
		allowed = false;
	bool repeat = v->last_pf_rip == rip && v->last_pf_addr == cr2;
	v->last_pf_rip = rip;
	v->last_pf_addr = cr2;
	return allowed && !repeat;
}

/* The program's `syscall` reached the runtime's entry, whose int3 brought us here: run it, then
 * return to the instruction after the syscall the way sysret would (rip = rcx, rflags = r11). */
static int syscall_from_frame(km_vcpu_t *v, exc_frame_t *f)
{
	km_syscall_handle(v);
	if (v->g->exited)
		return 0;
	struct kvm_regs *r = KM_REGS(v);
	f->rip = r->rcx;
	f->rflags = (r->r11 & RFLAGS_USER_MASK) | RFLAGS_FIXED | RFLAGS_IF;
	f->cs = KM_SEL_UCODE;
	f->ss = KM_SEL_UDATA;
	return 1;
}

int km_exception_handle(km_vcpu_t *v, int vector)
{
	exc_frame_t *f = km_rt_host(&v->g->mm, KM_REGS(v)->rsp, sizeof(exc_frame_t));
	if (f == NULL) {
		km_guest_kill(v, SIGSEGV, KM_REGS(v)->rip, 0);
		return 0;
	}
	if (vector == 3 && f->rip == km_rt_gva(KM_RT_USER_OFF + KM_RT_SYSCALL_ENTRY) + 1)
		return syscall_from_frame(v, f);
	uint64_t addr = f->rip;
	if (vector == 14) {
		struct kvm_sregs s;
		addr = ioctl(v->fd, KVM_GET_SREGS, &s) == 0 ? s.cr2 : 0;
		if (page_fault_is_stale(v, addr, f->error, f->rip)) {
			km_vcpu_flush_tlb(v);
			return 1;
		}
	}
	/* Linux reports int3 at the instruction after it, and so does the frame. */
	km_guest_kill(v, vector_signal(vector), f->rip, addr);
	return 0;
}
