/* Virtual CPUs: creation, register setup and the run loop. See km_vcpu.h. */
#include "km_vcpu.h"

#include <errno.h>
#include <sys/prctl.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "km_exception.h"
#include "km_vdso.h"
#include "km_guest.h"
#include "km_runtime.h"
#include "km_signal.h"
#include "km_snapshot.h"
#include "km_snapshot_lease.h"
#include "km_stopall.h"
#include "km_syscall.h"
#include "km_syscall_poll.h"

#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_CSTAR 0xc0000083
#define MSR_SFMASK 0xc0000084
#define RFLAGS_TF 0x100ull
#define MSR_FS_BASE 0xc0000100
#define MSR_GS_BASE 0xc0000101

#define CR0_PE (1ull << 0)
#define CR0_MP (1ull << 1)
#define CR0_ET (1ull << 4)
#define CR0_NE (1ull << 5)
#define CR0_WP (1ull << 16)
#define CR0_AM (1ull << 18)
#define CR0_PG (1ull << 31)
#define CR4_PAE (1ull << 5)
#define CR4_PGE (1ull << 7)
#define CR4_OSFXSR (1ull << 9)
#define CR4_OSXMMEXCPT (1ull << 10)
#define CR4_FSGSBASE (1ull << 16)
#define CR4_OSXSAVE (1ull << 18)
#define EFER_SCE (1ull << 0)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define EFER_NXE (1ull << 11)

/* The vCPU this host thread runs, for the kick signal handler. */
static __thread km_vcpu_t *current_vcpu;
/* The kicked flag of the poll server this host thread is (km_syscall_poll.c), for the same. */
static __thread atomic_int *current_kick_flag;

static void segment(struct kvm_segment *s, uint16_t sel, bool code)
{
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->dpl = sel & 3;
	s->limit = 0xffffffff;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	if (code) {
		s->type = 11; /* execute/read, accessed */
		s->l = 1;
	} else {
		s->type = 3; /* read/write, accessed */
		s->db = 1;
	}
}

static bool cpu_has_fsgsbase(km_machine_t *m)
{
	for (uint32_t i = 0; i < m->cpuid->nent; i++)
		if (m->cpuid->entries[i].function == 7 && m->cpuid->entries[i].index == 0)
			return m->cpuid->entries[i].ebx & 1;
	return false;
}

static int setup_sregs(km_vcpu_t *v, km_err_t **err)
{
	struct kvm_sregs s;
	if (ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		return km_err_set(err, errno, "vCPU %d: KVM_GET_SREGS", v->id);
	s.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_PG;
	s.cr3 = v->g->mm.pt.cr3;
	s.cr4 = CR4_PAE | CR4_PGE | CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_OSXSAVE;
	if (cpu_has_fsgsbase(&v->g->machine))
		s.cr4 |= CR4_FSGSBASE; /* Linux lets programs use rd/wrfsbase; so does km */
	s.efer = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE;
	/* The program runs at CPL3 with Linux's user selectors, as under Linux. */
	segment(&s.cs, KM_SEL_UCODE, true);
	segment(&s.ds, KM_SEL_UDATA, false);
	s.es = s.ss = s.fs = s.gs = s.ds;
	s.gdt.base = km_rt_vcpu_gva(v->id, KM_RT_VCPU_GDT);
	s.gdt.limit = KM_GDT_ENTRIES * 8 - 1;
	s.idt.base = km_rt_gva(KM_RT_IDT_OFF);
	s.idt.limit = 32 * 16 - 1;
	memset(&s.tr, 0, sizeof(s.tr));
	s.tr.selector = KM_SEL_TSS;
	s.tr.base = km_rt_vcpu_gva(v->id, KM_RT_VCPU_TSS);
	s.tr.limit = 0x67;
	s.tr.type = 11; /* busy 64-bit TSS */
	s.tr.present = 1;
	if (ioctl(v->fd, KVM_SET_SREGS, &s) < 0)
		return km_err_set(err, errno, "vCPU %d: setting long mode (KVM_SET_SREGS)", v->id);
	v->init_sregs = s;
	return 0;
}

static int setup_msrs(km_vcpu_t *v, km_err_t **err)
{
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e[4];
	} m = {.h.nmsrs = 4};
	/* The exit path's entry, or this vCPU's own poll stub (km_syscall_poll.h). */
	uint64_t lstar = km_poll_enabled(v->g) ? km_rt_poll_entry(v->id) : km_rt_gva(KM_RT_USER_OFF + KM_RT_SYSCALL_ENTRY);
	m.e[0] = (struct kvm_msr_entry){.index = MSR_LSTAR, .data = lstar};
	/* syscall loads CS from STAR[47:32] (SS = +8); user selectors derive from STAR[63:48]. */
	m.e[1] = (struct kvm_msr_entry){.index = MSR_STAR,
					.data = (uint64_t)(KM_SEL_UCODE32 & ~3) << 48 | (uint64_t)KM_SEL_KCODE << 32};
	/* The poll stub runs without the program's TF (a single-step trap in it would hand the
	 * program a signal inside km's stub); the program's own comes back from r11. */
	m.e[2] = (struct kvm_msr_entry){.index = MSR_SFMASK, .data = km_poll_enabled(v->g) ? RFLAGS_TF : 0};
	m.e[3] = (struct kvm_msr_entry){.index = MSR_CSTAR, .data = 0};
	if (ioctl(v->fd, KVM_SET_MSRS, &m) != 4)
		return km_err_set(err, errno, "vCPU %d: setting syscall MSRs", v->id);
	return 0;
}

static int setup_fpu(km_vcpu_t *v, km_err_t **err)
{
	struct kvm_xcrs x = {.nr_xcrs = 1, .xcrs[0] = {.xcr = 0, .value = v->g->machine.xcr0}};
	if (ioctl(v->fd, KVM_SET_XCRS, &x) < 0)
		return km_err_set(err, errno, "vCPU %d: enabling XSAVE features %#lx (KVM_SET_XCRS)", v->id,
				  (unsigned long)v->g->machine.xcr0);
	struct kvm_fpu f;
	memset(&f, 0, sizeof(f));
	f.fcw = 0x37f; /* the x87 and SSE defaults a Linux process starts with */
	f.mxcsr = 0x1f80;
	if (ioctl(v->fd, KVM_SET_FPU, &f) < 0)
		return km_err_set(err, errno, "vCPU %d: KVM_SET_FPU", v->id);
	return 0;
}

int km_vcpu_create(km_guest_t *g, int id, km_vcpu_t **out, km_err_t **err)
{
	km_vcpu_t *v = calloc(1, sizeof(*v));
	if (v == NULL)
		return km_err_set(err, ENOMEM, "allocating vCPU %d", id);
	v->g = g;
	v->id = id;
	pthread_mutex_init(&v->kick_lock, NULL);
	v->fd = km_fd_reserve(ioctl(g->machine.vm_fd, KVM_CREATE_VCPU, id));
	if (v->fd < 0) {
		km_err_set(err, errno, "creating vCPU %d (KVM_CREATE_VCPU)", id);
		free(v);
		return -1;
	}
	v->run = mmap(NULL, g->machine.run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		km_err_set(err, errno, "mapping vCPU %d's kvm_run", id);
		km_vcpu_destroy(v);
		return -1;
	}
	km_runtime_vcpu_init(&g->mm, id);
	km_runtime_poll_init(&g->mm, id);
	if (ioctl(v->fd, KVM_SET_CPUID2, g->machine.cpuid) < 0) {
		km_err_set(err, errno, "vCPU %d: KVM_SET_CPUID2", id);
		km_vcpu_destroy(v);
		return -1;
	}
	if (setup_sregs(v, err) < 0 || setup_msrs(v, err) < 0 || setup_fpu(v, err) < 0) {
		km_vcpu_destroy(v);
		return -1;
	}
	km_vdso_vcpu_init(g, v->fd);
	v->run->kvm_valid_regs = KVM_SYNC_X86_REGS;
	v->tlb_gen = g->mm.tlb_gen;
	*out = v;
	return 0;
}

int km_vcpu_reset(km_vcpu_t *v, km_err_t **err)
{
	/* The last thread left it inside an exit (the `out` of its exit syscall's stub). KVM
	 * completes such an exit on the next KVM_RUN, moving rip past the `out`, which would land
	 * the new thread in the stub: complete it now, without running anything. */
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	ioctl(v->fd, KVM_RUN, 0);
	v->tid = 0;
	v->host_tid = 0;
	v->clear_child_tid = 0;
	v->robust_list = v->robust_list_len = 0;
	v->sigmask = 0;
	v->restore_sigmask = false;
	km_sigqueue_discard(&v->sigpending, ~0ull);
	memset(&v->altstack, 0, sizeof(v->altstack));
	v->altstack.ss_flags = SS_DISABLE;
	v->started = v->exit_in_stub = false;
	v->thread_exit = v->parked = false;
	v->last_pf_rip = v->last_pf_addr = 0;
	memset(&v->sleep_restart, 0, sizeof(v->sleep_restart));
	atomic_store(&v->kicked, 0);
	__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	km_runtime_vcpu_init(&v->g->mm, v->id);
	km_poll_vcpu_reset(v);
	/* Every vCPU ioctl costs tens of microseconds here (PVM's vcpu_load): only what a thread
	 * can have changed is written back. Its segment registers (a program may load others) go
	 * back to the ones km set first; the syscall MSRs and XCR0 cannot be changed from CPL3 and
	 * are as km left them; the FPU is the caller's to load (clone copies the parent's). */
	if (ioctl(v->fd, KVM_SET_SREGS, &v->init_sregs) < 0)
		return km_err_set(err, errno, "vCPU %d: resetting its control registers (KVM_SET_SREGS)", v->id);
	v->tlb_gen = v->g->mm.tlb_gen;
	return 0;
}

int km_vcpu_set_entry(km_vcpu_t *v, uint64_t rip, uint64_t rsp, km_err_t **err)
{
	struct kvm_regs r;
	memset(&r, 0, sizeof(r));
	r.rip = rip;
	r.rsp = rsp;
	r.rflags = 0x202; /* IF set, as for any Linux process */
	if (ioctl(v->fd, KVM_SET_REGS, &r) < 0)
		return km_err_set(err, errno, "vCPU %d: KVM_SET_REGS", v->id);
	return 0;
}

int km_vcpu_set_fs_base(km_vcpu_t *v, uint64_t base)
{
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e;
	} m = {.h.nmsrs = 1, .e = {.index = MSR_FS_BASE, .data = base}};
	return ioctl(v->fd, KVM_SET_MSRS, &m) == 1 ? 0 : -EINVAL;
}

uint64_t km_vcpu_get_fs_base(km_vcpu_t *v)
{
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e;
	} m = {.h.nmsrs = 1, .e = {.index = MSR_FS_BASE}};
	return ioctl(v->fd, KVM_GET_MSRS, &m) == 1 ? m.e.data : 0;
}

static bool stopped_at_cpl3(km_vcpu_t *v, struct kvm_regs *r, struct kvm_sregs *s, bool poll_stub);

void km_vcpu_flush_tlb(km_vcpu_t *v)
{
	if (v->exit_in_stub) {
		/* The vCPU stands in an exception stub right after its `out`; continuing at the flush
		 * entry instead reloads CR3 and then takes the same way back to the program. */
		v->tlb_gen = v->g->mm.tlb_gen;
		KM_REGS(v)->rip = km_rt_gva(KM_RT_USER_OFF + KM_RT_FLUSH_ENTRY);
		v->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
		return;
	}
	/* Kicked out in the program's own code (another thread narrowed a mapping), or in a poll
	 * stub (CPL3 code that may return to the program without another exit): writing the
	 * control registers back makes KVM drop the vCPU's translations. Kicked in km's stubs, it
	 * is on its way back to the program through them: left for its next exit, which is soon
	 * (rewriting the registers of a vCPU inside its CPL0 stub breaks it on PVM). */
	struct kvm_regs r;
	struct kvm_sregs s;
	if (!stopped_at_cpl3(v, &r, &s, true))
		return;
	v->tlb_gen = v->g->mm.tlb_gen;
	ioctl(v->fd, KVM_SET_SREGS, &s);
}


/* The guest ended, or this thread of it did: the run loop ends. */
static bool must_leave(km_vcpu_t *v)
{
	return km_guest_ended(v->g) || v->thread_exit;
}

static int program_fault(km_vcpu_t *v, int sig, int code, uint64_t addr);

/* KVM_CAP_MEMORY_FAULT_INFO (Linux 6.8; not in these headers): an EFAULT from KVM_RUN may come
 * with the guest-physical address KVM could not back. This host's KVM (PVM, 6.18) reports the
 * capability but does not fill it in for these faults, so SIGBUS's si_addr is 0 here. */
#define KM_EXIT_MEMORY_FAULT 39
struct km_memory_fault {
	uint64_t flags, gpa, size;
};

/* The guest address behind the memory fault KVM reported, or 0 when it did not say. */
static uint64_t fault_gva(km_vcpu_t *v)
{
	if (v->run->exit_reason != KM_EXIT_MEMORY_FAULT)
		return 0;
	const struct km_memory_fault *mf = (const void *)&v->run->mmio;
	km_mm_t *mm = &v->g->mm;
	uint64_t gva = 0;
	km_mm_rdlock(mm);
	for (size_t i = 0; i < mm->nvmas && gva == 0; i++) {
		const km_vma_t *m = &mm->vmas[i];
		if (mf->gpa >= m->gpa && mf->gpa < m->gpa + (m->end - m->start))
			gva = m->start + (mf->gpa - m->gpa);
	}
	km_mm_rdunlock(mm);
	return gva;
}

/* One exit: returns 1 to keep running, 0 when the guest ended, -1 on a km failure. */
static int handle_exit(km_vcpu_t *v, km_err_t **err)
{
	struct kvm_run *run = v->run;
	switch (run->exit_reason) {
	case KVM_EXIT_IO: {
		int port = run->io.port;
		if (port >= KM_PORT_EXC_BASE && port < KM_PORT_EXC_BASE + 32) {
			v->exit_in_stub = true;
			int rc = km_exception_handle(v, port - KM_PORT_EXC_BASE);
			return rc > 0 && must_leave(v) ? 0 : rc;
		}
		km_err_set(err, 0, "vCPU %d: unexpected I/O exit on port %#x at rip %#llx", v->id, port,
			   (unsigned long long)KM_REGS(v)->rip);
		return -1;
	}
	case KVM_EXIT_HLT:
		/* hlt is privileged on Linux: the kernel answers it with SIGSEGV. */
		return program_fault(v, SIGSEGV, SI_KERNEL, 0);
	case KVM_EXIT_MMIO:
		/* The guest reached guest-physical memory that backs nothing (it rewrote its paging). */
		km_guest_kill(v, SIGSEGV, KM_REGS(v)->rip, run->mmio.phys_addr);
		return 0;
	case KVM_EXIT_SHUTDOWN:
		km_err_set(err, 0, "guest vCPU %d triple-faulted at rip %#llx (its runtime state is corrupt)", v->id,
			   (unsigned long long)KM_REGS(v)->rip);
		return -1;
	case KVM_EXIT_FAIL_ENTRY:
		km_err_set(err, 0, "vCPU %d failed to enter the guest (hardware reason %#llx)", v->id,
			   (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		return -1;
	case KVM_EXIT_INTERNAL_ERROR:
		km_err_set(err, 0, "KVM internal error on vCPU %d (suberror %u) at rip %#llx", v->id,
			   run->internal.suberror, (unsigned long long)KM_REGS(v)->rip);
		return -1;
	default:
		km_err_set(err, 0, "vCPU %d: unexpected KVM exit reason %u at rip %#llx", v->id, run->exit_reason,
			   (unsigned long long)KM_REGS(v)->rip);
		return -1;
	}
}

/* KM_TIMING=1: how long a restore took, from km's start to the first entry into the program. */
static void print_restore_timing(km_guest_t *g)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	uint64_t now = (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
	fprintf(stderr, "km-timing: restore_to_first_entry_ns=%lu\n", (unsigned long)(now - g->opts.start_ns));
}

/* An exception or interrupt KVM has yet to deliver (e.g. the #BP of an int3 just executed, or a
 * fault): the registers are not a point the program can continue from, since a snapshot does
 * not record the event. Its delivery exits to km at once, and that exit is a clean point. A vCPU
 * whose events cannot be read is taken as having none. */
static bool event_in_flight(km_vcpu_t *v)
{
	struct kvm_vcpu_events ev;
	memset(&ev, 0, sizeof(ev));
	if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return false;
	return ev.exception.injected || ev.exception.pending || ev.interrupt.injected || ev.nmi.injected;
}

/* Stopped at CPL3 in the program's code, or (poll_stub) in a poll stub too: code that runs at
 * CPL3 and whose control registers may be rewritten. */
static bool stopped_at_cpl3(km_vcpu_t *v, struct kvm_regs *r, struct kvm_sregs *s, bool poll_stub)
{
	if (ioctl(v->fd, KVM_GET_REGS, r) < 0 || ioctl(v->fd, KVM_GET_SREGS, s) < 0)
		return false;
	bool where = r->rip < KM_RT_GVA || (poll_stub && km_rt_in_poll_stub(r->rip));
	return (s->cs.selector & 3) == 3 && where && !event_in_flight(v);
}

bool km_vcpu_stopped_in_program(km_vcpu_t *v, struct kvm_regs *r)
{
	struct kvm_sregs s;
	/* CPL3 in the runtime is the syscall entry stub (on PVM `syscall` lands there without
	 * leaving CPL3), rcx/r11 already clobbered: not the program's state. Its int3 comes next,
	 * and the syscall exit is the clean point; the poll stub likewise: its request may be in
	 * a server's hands. An exception or interrupt KVM has yet to deliver would be lost with
	 * registers taken now. */
	return stopped_at_cpl3(v, r, &s, false);
}

/* Loads the program's registers into a vCPU stopped in the program's own code. */
static void set_program_regs(km_vcpu_t *v, const struct kvm_regs *u)
{
	struct kvm_regs r = *u;
	r.rflags = (r.rflags & 0x3c0dd5ull) | 0x202; /* only the bits a program may own, IF on */
	ioctl(v->fd, KVM_SET_REGS, &r);
}

/* KVM_RUN came back because of a kick. If the vCPU stopped in program code (CPL3, below the
 * runtime), that is a clean point: park there for a stop in progress, deliver pending signals.
 * In km's stubs it is not; the stub's exit follows at once and is served then (a signal still
 * pending is kicked for again by the forwarding thread). Returns true if the vCPU must leave. */
static bool kicked_in_program(km_vcpu_t *v)
{
	__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	if (!atomic_exchange(&v->kicked, 0))
		return must_leave(v);
	bool stop = km_stopall_pending(v->g), sig = km_signal_deliverable(v);
	struct kvm_regs r;
	if ((!stop && !sig) || must_leave(v) || !km_vcpu_stopped_in_program(v, &r))
		return must_leave(v);
	struct kvm_regs was = r;
	if (km_return_point(v, &r, 0))
		return true;
	if (memcmp(&r, &was, sizeof(r)) != 0)
		set_program_regs(v, &r); /* a handler's entry */
	return must_leave(v);
}

/* The program did something Linux answers with a signal (an access the host cannot back, hlt,
 * a jump into memory that backs nothing) while in its own code: its handler runs, or it dies. */
static int program_fault(km_vcpu_t *v, int sig, int code, uint64_t addr)
{
	struct kvm_regs r;
	if (ioctl(v->fd, KVM_GET_REGS, &r) < 0) {
		km_guest_kill(v, sig, 0, addr);
		return 0;
	}
	if (km_signal_fault(v, &r, sig, code, addr, 14, 0))
		return 0;
	set_program_regs(v, &r);
	return 1;
}

/* Another process wants the snapshot file this guest's memory still maps: copy it out, with
 * every other vCPU out of the guest while its memory is replaced under it. If a stop is in
 * progress, next time round. */
static int detach_if_lease_broken(km_vcpu_t *v, km_err_t **err)
{
	km_guest_t *g = v->g;
	if (!km_snapshot_lease_broken(g) || km_stopall_begin(g, v, KM_STOP_OUT, NULL, 0) < 0)
		return 0;
	pthread_rwlock_wrlock(&g->mm.lock);
	int rc = km_snapshot_lease_broken(g) ? km_snapshot_detach(g, err) : 0;
	pthread_rwlock_unlock(&g->mm.lock);
	km_stopall_end(g);
	return rc;
}

static int run_loop(km_vcpu_t *v, km_err_t **err)
{
	for (;;) {
		if (detach_if_lease_broken(v, err) < 0)
			return -1;
		if (km_stopall_gate(v) || v->thread_exit) {
			km_stopall_left_guest(v);
			return 0;
		}
		if (v->tlb_gen != __atomic_load_n(&v->g->mm.tlb_gen, __ATOMIC_ACQUIRE) && v->started)
			km_vcpu_flush_tlb(v);
		if (!v->started && v->g->opts.timing && v->g->opts.snapshot_source != NULL)
			print_restore_timing(v->g);
		v->started = true;
		int r = ioctl(v->fd, KVM_RUN, 0);
		int saved = errno;
		km_stopall_left_guest(v);
		errno = saved;
		v->exit_in_stub = false;
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				km_signal_host_deliver(v);
				if (kicked_in_program(v))
					return 0;
				continue;
			}
			if (errno == EFAULT) {
				/* The guest touched memory the host could not provide (a file mapping
				 * past the end of its file). Linux sends SIGBUS. */
				if (program_fault(v, SIGBUS, BUS_ADRERR, fault_gva(v)) == 0)
					return 0;
				continue;
			}
			return km_err_set(err, errno, "vCPU %d: KVM_RUN", v->id);
		}
		int rc = handle_exit(v, err);
		if (rc <= 0)
			return rc;
	}
}

/* From here on kicks reach this thread as signals. A kick that came before (the vCPU not started
 * yet) has left immediate_exit set, so the first KVM_RUN returns at once and serves it. */
static void thread_enter(km_vcpu_t *v)
{
	current_vcpu = v; /* before thread_live: the handler must find the vCPU */
	pthread_mutex_lock(&v->kick_lock);
	v->thread = pthread_self();
	__atomic_store_n(&v->host_tid, gettid(), __ATOMIC_RELEASE);
	v->thread_live = true;
	pthread_mutex_unlock(&v->kick_lock);
	if (v->comm[0] != '\0') { /* the guest's name for this thread lives in its host thread */
		prctl(PR_SET_NAME, v->comm);
		v->comm[0] = '\0';
	}
}

/* No kick signals after this: the thread may go on to other work, or end. */
static void thread_leave(km_vcpu_t *v)
{
	pthread_mutex_lock(&v->kick_lock);
	v->thread_live = false;
	pthread_mutex_unlock(&v->kick_lock);
	current_vcpu = NULL;
}

int km_vcpu_run(km_vcpu_t *v, km_err_t **err)
{
	thread_enter(v);
	int rc = run_loop(v, err);
	thread_leave(v);
	return rc;
}

/* --- program state: capture and load ---------------------------------------------------- */

static int get_msr_pair(km_vcpu_t *v, uint64_t *fs, uint64_t *gs)
{
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e[2];
	} m = {.h.nmsrs = 2, .e = {{.index = MSR_FS_BASE}, {.index = MSR_GS_BASE}}};
	if (ioctl(v->fd, KVM_GET_MSRS, &m) != 2)
		return -1;
	*fs = m.e[0].data;
	*gs = m.e[1].data;
	return 0;
}

int km_vcpu_capture(km_vcpu_t *v, const struct kvm_regs *user, km_err_t **err)
{
	km_vcpu_state_t *s = &v->state;
	s->regs = *user;
	if (get_msr_pair(v, &s->fs_base, &s->gs_base) < 0)
		return km_err_set(err, errno, "vCPU %d: reading FS/GS base", v->id);
	struct kvm_xcrs x;
	if (ioctl(v->fd, KVM_GET_XCRS, &x) < 0 || x.nr_xcrs < 1)
		return km_err_set(err, errno, "vCPU %d: reading XCR0", v->id);
	s->xcr0 = x.xcrs[0].value;
	if (ioctl(v->fd, KVM_GET_XSAVE, &s->xsave) < 0)
		return km_err_set(err, errno, "vCPU %d: reading the FPU/SSE/AVX state (KVM_GET_XSAVE)", v->id);
	return 0;
}

int km_vcpu_load_state(km_vcpu_t *v, km_err_t **err)
{
	km_vcpu_state_t *s = &v->state;
	struct kvm_xcrs x = {.nr_xcrs = 1, .xcrs[0] = {.xcr = 0, .value = s->xcr0}};
	if ((s->xcr0 & ~v->g->machine.xcr0) != 0)
		return km_err_set(err, 0, "the snapshot uses CPU state (XCR0 %#lx) this machine does not offer (%#lx)",
				  (unsigned long)s->xcr0, (unsigned long)v->g->machine.xcr0);
	if (ioctl(v->fd, KVM_SET_XCRS, &x) < 0)
		return km_err_set(err, errno, "vCPU %d: setting XCR0 %#lx", v->id, (unsigned long)s->xcr0);
	if (ioctl(v->fd, KVM_SET_XSAVE, &s->xsave) < 0)
		return km_err_set(err, errno, "vCPU %d: loading the FPU/SSE/AVX state (KVM_SET_XSAVE)", v->id);
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e[2];
	} m = {.h.nmsrs = 2, .e = {{.index = MSR_FS_BASE, .data = s->fs_base}, {.index = MSR_GS_BASE, .data = s->gs_base}}};
	if (ioctl(v->fd, KVM_SET_MSRS, &m) != 2)
		return km_err_set(err, errno, "vCPU %d: setting FS/GS base", v->id);
	struct kvm_regs r = s->regs;
	r.rflags = (r.rflags & 0x3c0dd5ull) | 0x202; /* only the bits a program may own, IF on */
	if (ioctl(v->fd, KVM_SET_REGS, &r) < 0)
		return km_err_set(err, errno, "vCPU %d: setting registers", v->id);
	return 0;
}

/* --- kicks -------------------------------------------------------------------------------- */

static void kick_handler(int sig)
{
	(void)sig;
	km_vcpu_t *v = current_vcpu;
	if (v != NULL) {
		__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		atomic_store(&v->kicked, 1);
	} else if (current_kick_flag != NULL) {
		atomic_store(current_kick_flag, 1);
	}
}

void km_vcpu_kick_flag(atomic_int *flag)
{
	current_kick_flag = flag;
}

void km_vcpu_kick_init(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: a host syscall the vCPU is blocked in must return EINTR */
	sigaction(KM_SIG_KICK, &sa, NULL);
}

void km_vcpu_wake(km_vcpu_t *v)
{
	__atomic_add_fetch(&v->wake_seq, 1, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, &v->wake_seq, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

void km_vcpu_kick(km_vcpu_t *v)
{
	/* A thread waiting for signals sleeps on wake_seq (km_signal_wait). */
	km_vcpu_wake(v);
	/* Set from here first: they are what a vCPU not yet in its run loop sees (KVM reads
	 * immediate_exit on entry to KVM_RUN); the signal is for a vCPU already inside. */
	atomic_store(&v->kicked, 1);
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&v->kick_lock);
	if (v->thread_live)
		pthread_kill(v->thread, KM_SIG_KICK);
	pthread_mutex_unlock(&v->kick_lock);
	km_poll_kick(v); /* a syscall of v's that its server runs */
}

void km_vcpu_destroy(km_vcpu_t *v)
{
	if (v == NULL)
		return;
	km_poll_destroy(v);
	if (v->run != NULL)
		munmap(v->run, v->g->machine.run_size);
	if (v->fd >= 0)
		close(v->fd);
	pthread_mutex_destroy(&v->kick_lock);
	km_sigqueue_free(&v->sigpending);
	free(v);
}

void km_vcpu_forget(km_vcpu_t *v)
{
	if (v == NULL)
		return;
	if (current_vcpu == v)
		current_vcpu = NULL; /* a kick from now on finds no vCPU (none will come until the next) */
	km_poll_forget(v);
	if (v->run != NULL)
		munmap(v->run, v->g->machine.run_size);
	if (v->fd >= 0)
		close(v->fd);
	/* kick_lock is not destroyed: a thread of the parent may have held it at the fork. */
	km_sigqueue_free(&v->sigpending);
	free(v);
}
