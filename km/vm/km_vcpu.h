/*
 * A virtual CPU: one KVM vCPU, its kvm_run page, its slice of the runtime region (GDT, TSS, IST
 * stack) and the host thread that drives it. Every guest thread gets one (threads issue); nothing
 * here is a global, so many can run at once.
 */
#ifndef KM_VCPU_H
#define KM_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "km_error.h"
#include "km_sigqueue.h"

struct km_guest;

/* The program's view of a vCPU at a clean point: what a snapshot saves and a restore sets. */
typedef struct km_vcpu_state {
	struct kvm_regs regs;   /* as the program sees them (rip/rsp/rflags at CPL3) */
	uint64_t fs_base, gs_base;
	uint64_t xcr0;
	uint64_t flags;         /* KM_CPU_* (km_coredump.h) */
	struct kvm_xsave xsave; /* FPU/SSE/AVX/AVX-512 state, XSAVE layout */
} km_vcpu_state_t;

typedef struct km_vcpu {
	struct km_guest *g;
	int id;              /* index: selects the vCPU's runtime area */
	int fd;              /* KVM vCPU fd */
	struct kvm_run *run; /* shared with KVM; sync regs live here */
	pid_t tid;           /* thread id the guest sees */
	pid_t host_tid;      /* the host thread running it, 0 until it runs (km's /proc view) */
	char comm[16];       /* a resumed thread's name (PR_SET_NAME), given to its host thread when
			      * it starts; "" for none */
	uint64_t clear_child_tid; /* set_tid_address */
	uint64_t robust_list, robust_list_len;
	uint64_t sigmask;         /* blocked signals (bit sig-1); others read it under g->sig_lock */
	uint64_t saved_sigmask;   /* the mask to restore after a call that set one for its duration */
	bool restore_sigmask;     /* (sigsuspend, ppoll, pselect6, epoll_pwait): at the next return */
	km_sigqueue_t sigpending; /* signals for this thread (under g->sig_lock) */
	uint32_t wake_seq;        /* futex word: bumped by every kick (km_signal_wait sleeps on it) */
	stack_t altstack;         /* sigaltstack; ss_sp is a guest address */
	bool started;         /* has entered the guest */
	bool exit_in_stub;    /* the last exit came from an exception stub (it returns through one) */
	/* Thread-group membership (km_stopall.h; under g->threads.lock). */
	bool live;            /* the slot holds a guest thread that has not ended */
	bool thread_running;  /* a host thread still runs this vCPU: the slot cannot be reused */
	bool thread_exit;     /* this guest thread called exit: its run loop ends */
	uint32_t born;        /* futex word: 1 once its id is set and it may run (km_threads.c) */
	bool parked;          /* parked in a stop */
	int capture_rc;       /* KM_STOP_CLEAN: 0 if its state was captured */
	atomic_int in_guest;  /* inside (or about to enter) KVM_RUN */
	uint64_t syscall_nr;  /* the syscall being handled (to rewind it for a restart) */
	uint64_t sys_epoch;   /* the mapping epoch its syscall in flight started in; 0: none */
	uint64_t tlb_gen;     /* the km_mm_t.tlb_gen this vCPU's TLB is known to match */
	uint64_t last_pf_rip; /* to tell a stale-TLB fault (retried once) from a real one */
	uint64_t last_pf_addr;
	/* Kicks may come from any thread at any moment of the vCPU's life (km_vcpu_kick). */
	pthread_mutex_t kick_lock; /* orders a kick against the run loop's start and end */
	pthread_t thread;     /* the host thread running it; valid while thread_live */
	bool thread_live;     /* in km_vcpu_run: a kick signals `thread` (under kick_lock) */
	atomic_int kicked;    /* a kick arrived since km last looked (lock-free: the handler sets it) */
	struct km_poll *poll; /* its syscall server (km_syscall_poll.h), NULL until first used */
	km_vcpu_state_t state; /* filled by km_vcpu_capture for a snapshot or core */
	struct kvm_sregs init_sregs; /* what km_vcpu_create set: km_vcpu_reset puts it back */
	/* The program's registers at the syscall being handled, as they will be when it returns
	 * (rip after the syscall instruction, rflags from r11, rsp from the exception frame). */
	struct kvm_regs user;
	/* A relative sleep km interrupted (kick) and the program will make again: it ends at the
	 * same deadline, not a full interval later. */
	struct {
		bool valid;
		uint64_t rip, req_gva;
		clockid_t clk;
		struct timespec deadline;
	} sleep_restart;
} km_vcpu_t;

/* Creates vCPU `id` of guest g: KVM vCPU, CPUID, control registers, long mode segments, GDT/TSS
 * in its runtime area, syscall MSRs, XCR0, FPU defaults. */
int km_vcpu_create(struct km_guest *g, int id, km_vcpu_t **out, km_err_t **err);

/* Makes an ended thread's vCPU new again for another thread (KVM vCPUs cannot be destroyed one
 * by one): control and segment registers and every field a thread owns. The caller loads the
 * FPU state and the general registers (clone: the parent's). */
int km_vcpu_reset(km_vcpu_t *v, km_err_t **err);

/* Sets the general registers for the first entry: rip, rsp, everything else zero. */
int km_vcpu_set_entry(km_vcpu_t *v, uint64_t rip, uint64_t rsp, km_err_t **err);

/* Runs the vCPU until its guest thread ends (exit, exit_group, fatal signal) or km fails.
 * Returns 0 when the guest ended (see km_guest_t for how), -1 with *err when km failed. */
int km_vcpu_run(km_vcpu_t *v, km_err_t **err);

/* After KVM_RUN came back early (a kick): true, with the program's registers in *r, if the vCPU
 * stopped in the program's own code where its state is whole (CPL3, outside km's runtime, no
 * exception or interrupt pending delivery): a clean point. */
bool km_vcpu_stopped_in_program(km_vcpu_t *v, struct kvm_regs *r);

/* Sets the FS base (arch_prctl ARCH_SET_FS). Returns 0 or -errno. */
int km_vcpu_set_fs_base(km_vcpu_t *v, uint64_t base);
uint64_t km_vcpu_get_fs_base(km_vcpu_t *v);

/* Makes the vCPU drop cached translations before it runs program code again: through the
 * runtime's flush stub if it stands in an exception stub, else by reloading its control
 * registers. Only while the vCPU is out of KVM_RUN, from its own thread. */
void km_vcpu_flush_tlb(km_vcpu_t *v);

/* Fills v->state from the vCPU, with `user` as the program's general registers (the caller
 * knows them: an exception frame, or the vCPU itself when it stopped in program code). */
int km_vcpu_capture(km_vcpu_t *v, const struct kvm_regs *user, km_err_t **err);

/* Loads v->state into the vCPU (restore): registers, FS/GS base, XCR0, XSAVE image. */
int km_vcpu_load_state(km_vcpu_t *v, km_err_t **err);

/* Makes the vCPU leave KVM_RUN, or a host syscall it is blocked in, soon (another thread calls
 * this). The vCPU sees EINTR and v->kicked set. Safe at any moment between km_vcpu_create and
 * km_vcpu_destroy: a vCPU whose run loop has not started yet sees the kick before its first
 * KVM_RUN (which returns at once, at the entry point: a clean point), one whose loop has ended
 * ignores it. The stop-all of several vCPUs is this, applied to each after posting the request
 * they must see (km_snapshot_request). */
void km_vcpu_kick(km_vcpu_t *v);

/* Wakes the vCPU's thread if it waits for signals (km_signal_wait) so that it looks again;
 * nothing else (no EINTR). */
void km_vcpu_wake(km_vcpu_t *v);

/* For a thread of km that runs syscall handlers without being a vCPU (a poll server): km's kick
 * signal sets *flag in it (NULL: nothing). */
void km_vcpu_kick_flag(atomic_int *flag);

/* Installs km's kick signal handler; once per process, before any vCPU runs. */
void km_vcpu_kick_init(void);

/* Releases the KVM vCPU and its mapping. */
void km_vcpu_destroy(km_vcpu_t *v);

/* After a host fork, in the child: releases the parent's vCPU without a single ioctl (a vCPU's
 * ioctls fail outside the process that made its VM): unmaps kvm_run, closes the fd, frees v. The
 * calling thread may be the one that ran v (it stops being its vCPU for kicks). */
void km_vcpu_forget(km_vcpu_t *v);

/* The signal km sends a vCPU's thread to stop it (a real-time one, never the guest's). */
#define KM_SIG_KICK (SIGRTMIN + 3)

/* Shorthand for the vCPU's general registers as the last exit left them (sync regs). */
#define KM_REGS(v) (&(v)->run->s.regs.regs)

#endif
