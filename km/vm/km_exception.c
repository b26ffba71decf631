/* CPU exceptions -> Linux signals with default actions. See km_exception.h. */
#include "km_exception.h"

#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "km_guest.h"
#include "km_runtime.h"
#include "km_signal.h"
#include "km_stopall.h"
#include "km_snapshot.h"
#include "km_syscall.h"
#include "km_syscall_poll.h"
#include "km_vdso.h"
#include <errno.h>
#include <pthread.h>

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
	pthread_mutex_lock(&g->threads.lock);
	bool first = !g->exited;
	if (first) {
		g->fault_rip = rip;
		g->fault_addr = addr;
	}
	pthread_mutex_unlock(&g->threads.lock);
	if (first)
		km_guest_end(g, 0, sig);
}

/* A #PF the guest's mappings allow is a stale translation (km widened a mapping and the vCPU had
 * the old one cached): flush once and retry. A second fault at the same place is real. */
static bool page_fault_is_stale(km_vcpu_t *v, uint64_t cr2, uint64_t error, uint64_t rip)
{
	km_mm_rdlock(&v->g->mm);
	km_vma_t *vma = km_vma_find(&v->g->mm, cr2);
	int prot = vma != NULL ? vma->prot : PROT_NONE;
	km_mm_rdunlock(&v->g->mm);
	bool allowed = prot != PROT_NONE;
	if (allowed && (error & PF_WRITE) && !(prot & PROT_WRITE))
		allowed = false;
	if (allowed && (error & PF_FETCH) && !(prot & PROT_EXEC))
		allowed = false;
	bool repeat = v->last_pf_rip == rip && v->last_pf_addr == cr2;
	v->last_pf_rip = rip;
	v->last_pf_addr = cr2;
	return allowed && !repeat;
}

/* The program's registers as its syscall instruction left them, and as they will be when it
 * returns (rip after it, rflags from r11, rsp from the frame). */
static void syscall_user_regs(km_vcpu_t *v, const exc_frame_t *f)
{
	struct kvm_regs *r = KM_REGS(v);
	v->user = *r;
	v->user.rip = r->rcx;
	v->user.rsp = f->rsp;
	v->user.rflags = (r->r11 & RFLAGS_USER_MASK) | RFLAGS_FIXED | RFLAGS_IF;
}

/* The same registers rewound to re-execute the syscall (instruction `syscall` is 2 bytes). */
static struct kvm_regs restart_regs(const km_vcpu_t *v, uint64_t nr)
{
	struct kvm_regs u = v->user;
	u.rip -= 2;
	u.rax = nr;
	return u;
}

struct kvm_regs km_syscall_restart_regs(const km_vcpu_t *v)
{
	return restart_regs(v, v->syscall_nr);
}

/* Puts the program's registers *u back where the vCPU, standing in an exception stub, will
 * return to them: rip, rsp and rflags into the iret frame (with the user selectors), the rest
 * into the vCPU's registers (the stub's own rip, rsp and rflags stay). */
static void return_to(km_vcpu_t *v, exc_frame_t *f, const struct kvm_regs *u)
{
	struct kvm_regs *r = KM_REGS(v);
	uint64_t rip = r->rip, rsp = r->rsp, rflags = r->rflags;
	*r = *u;
	r->rip = rip;
	r->rsp = rsp;
	r->rflags = rflags;
	f->rip = u->rip;
	f->rsp = u->rsp;
	f->rflags = (u->rflags & RFLAGS_USER_MASK) | RFLAGS_FIXED | RFLAGS_IF;
	f->cs = KM_SEL_UCODE;
	f->ss = KM_SEL_UDATA;
	v->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
}

bool km_return_point(km_vcpu_t *v, struct kvm_regs *u, uint64_t cpu_flags)
{
	if (km_stopall_pending(v->g) && km_stopall_park(v, u, cpu_flags))
		return true;
	if (v->restore_sigmask || km_signal_deliverable(v))
		return km_signal_deliver(v, u);
	return false;
}

/* The end of a syscall on the vCPU's thread, whoever ran it (this thread, or a poll server that
 * handed it back: poll_kicked if km's kick interrupted it there): return to the instruction after
 * the syscall the way sysret would (rip = rcx, rflags = r11). A host syscall interrupted by km's
 * kick ends with EINTR if a signal handler runs now that wants it (km_signal_interrupts), else it
 * is made again, invisibly to the program. */
static int syscall_epilogue(km_vcpu_t *v, exc_frame_t *f, uint64_t nr, long ret, bool poll_kicked)
{
	if (km_guest_ended(v->g) || v->thread_exit)
		return 0;
	/* v->user: the program's registers after the call (rt_sigreturn replaced all of them). */
	struct kvm_regs u = v->user;
	u.rax = (uint64_t)ret;
	uint64_t flags = 0;
	/* Interrupted by km: a host syscall its kick cut short (EINTR), or a wait of km's own that
	 * says so. Made again unless a signal handler that wants EINTR runs now. */
	bool by_km = ret == -KM_ERESTART;
	if ((ret == -EINTR && (atomic_exchange(&v->kicked, 0) | poll_kicked)) || by_km) {
		if (!km_signal_interrupts(v, (long)nr)) {
			u = restart_regs(v, nr);
			flags = KM_CPU_RESTART_SYSCALL;
		} else {
			u.rax = (uint64_t)-EINTR;
		}
		atomic_store(&v->kicked, 0);
	}
	/* Asked for while a call that does not block ran (its kick is spent on the way back
	 * through the stub): the program just after the call, with its result, is a clean point
	 * too; waiting for its next syscall could take long. */
	if (km_return_point(v, &u, flags))
		return 0;
	return_to(v, f, &u);
	return 1;
}

/* The program's `syscall` reached an int3 of the runtime (the exit path's entry, or a poll stub
 * that did not get its answer): the registers are as the `syscall` left them. A syscall a poll
 * server ran and handed back is finished, whatever the int3 or the registers claim (km's own
 * state says so); otherwise it is run here. A snapshot asked for before it is run records the
 * program as about to make it. */
static int syscall_from_frame(km_vcpu_t *v, exc_frame_t *f)
{
	struct kvm_regs *r = KM_REGS(v);
	uint64_t nr = r->rax;
	v->syscall_nr = nr;
	syscall_user_regs(v, f);
	km_poll_handback_t hb;
	if (km_poll_claim(v, &hb)) {
		km_poll_release(v);
		v->syscall_nr = hb.nr;
		return syscall_epilogue(v, f, hb.nr, hb.ret, hb.kicked);
	}
	if (km_stopall_pending(v->g)) {
		struct kvm_regs u = restart_regs(v, nr);
		if (km_stopall_park(v, &u, KM_CPU_RESTART_SYSCALL)) {
			km_poll_release(v);
			return 0;
		}
	}
	km_syscall_handle(v);
	km_poll_release(v);
	km_poll_after_exit(v);
	return syscall_epilogue(v, f, nr, (long)r->rax, false);
}

/* The program's registers where an exception hit it. */
static void fault_user_regs(km_vcpu_t *v, const exc_frame_t *f, struct kvm_regs *u)
{
	*u = *KM_REGS(v);
	u->rip = f->rip;
	u->rsp = f->rsp;
	u->rflags = f->rflags;
}

/* si_code and si_addr Linux gives the signal of a fault (arch/x86/kernel/traps.c, fault.c). */
static int fault_code(km_vcpu_t *v, int vector, uint64_t err, uint64_t *addr, uint64_t rip)
{
	switch (vector) {
	case 0:
		*addr = rip;
		return FPE_INTDIV;
	case 16:
	case 19:
		*addr = rip;
		return FPE_FLTINV;
	case 6:
		*addr = rip;
		return ILL_ILLOPN;
	case 1:
	case 3:
		*addr = 0;
		return SI_KERNEL;
	case 14: {
		km_mm_rdlock(&v->g->mm);
		bool mapped = km_vma_find(&v->g->mm, *addr) != NULL || km_vdso_holds(v->g, *addr);
		km_mm_rdunlock(&v->g->mm);
		(void)err;
		return mapped ? SEGV_ACCERR : SEGV_MAPERR;
	}
	case 17:
		return BUS_ADRALN;
	default:
		*addr = 0; /* #GP, #SS, #NP: Linux sends SIGSEGV (SIGBUS) with SI_KERNEL */
		return SI_KERNEL;
	}
}

int km_exception_handle(km_vcpu_t *v, int vector)
{
	exc_frame_t *f = km_rt_host(&v->g->mm, KM_REGS(v)->rsp, sizeof(exc_frame_t));
	if (f == NULL) {
		km_guest_kill(v, SIGSEGV, KM_REGS(v)->rip, 0);
		return 0;
	}
	if (vector == 3 && (f->rip == km_rt_gva(KM_RT_USER_OFF + KM_RT_SYSCALL_ENTRY) + 1 || km_rt_is_poll_int3(f->rip)))
		return syscall_from_frame(v, f);
	uint64_t addr = f->rip;
	if (vector == 14) {
		struct kvm_sregs s;
		addr = ioctl(v->fd, KVM_GET_SREGS, &s) == 0 ? s.cr2 : 0;
		if (page_fault_is_stale(v, addr, f->error, f->rip)) {
			struct kvm_regs u;
			fault_user_regs(v, f, &u); /* retried: a clean point, the access happens on resume */
			if (km_stopall_pending(v->g) && km_stopall_park(v, &u, 0))
				return 0;
			km_vcpu_flush_tlb(v);
			return 1;
		}
	}
	/* Linux reports int3 at the instruction after it, and so does the frame. */
	int sig = vector_signal(vector);
	struct kvm_regs u;
	fault_user_regs(v, f, &u);
	if ((f->cs & 3) != 3) {
		/* In km's own stubs: nothing of the program's to hand a handler. */
		km_guest_kill(v, sig, f->rip, addr);
		return 0;
	}
	int code = fault_code(v, vector, f->error, &addr, f->rip);
	if (km_signal_fault(v, &u, sig, code, addr, vector, f->error))
		return 0;
	return_to(v, f, &u);
	return 1;
}
