/*
 * The guest's signals, with Linux's semantics: dispositions (km_guest_t.sigactions), a mask per
 * thread, pending signals per thread and per process (km_sigqueue.h), delivery to handlers on
 * the thread's stack (km_sigframe.h) or the default action, and waiting for signals.
 *
 * When a signal is delivered: a vCPU takes it at its next return to the program (the end of a
 * syscall, an exception km resumes, or a kick that stopped it in the program's own code). A
 * signal posted to a thread kicks it out of the guest or out of a blocking host syscall; the
 * syscall then ends with EINTR or is restarted, as SA_RESTART and the call say.
 *
 * km_signal.c keeps the guest's own signals; km_signal_host.c is km's side facing the host:
 * signals from outside (a thread of km waits for them and posts them to the guest), signals the
 * guest sends to other processes, and the limits the host enforces (SIGXCPU, SIGXFSZ).
 */
#ifndef KM_SIGNAL_H
#define KM_SIGNAL_H

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include "km_guest.h"
#include "km_vcpu.h"

/* What a signal does when nothing handles it. */
enum km_sig_default { KM_SIG_TERM, KM_SIG_CORE, KM_SIG_IGNORE, KM_SIG_STOP };
enum km_sig_default km_sig_default_action(int sig);

/* The smallest alternate stack sigaltstack takes (the kernel's MINSIGSTKSZ; glibc's macro is
 * a sysconf call under _GNU_SOURCE). */
#define KM_MINSIGSTKSZ 2048

/* What a syscall handler returns when km (not a signal) interrupted it: a stop, the guest
 * ending, a kick. Never seen by the program: the syscall layer makes the call again, or ends it
 * with EINTR if a handler now runs that wants that (km_signal_interrupts). Linux's ERESTARTSYS,
 * the same idea. */
#define KM_ERESTART 512

/* Signals no thread can block or catch. */
#define KM_SIG_UNBLOCKABLE ((1ull << (SIGKILL - 1)) | (1ull << (SIGSTOP - 1)))

/* --- sending ------------------------------------------------------------------------------ */

/* Posts a signal to the whole guest (kill): queued for the process, and the thread that will
 * take it (one that does not block it, the main thread first) is woken. A signal the guest
 * ignores is dropped. Returns 0, or -EAGAIN when the queue is full for a real-time signal. */
int km_signal_send_process(km_guest_t *g, const siginfo_t *info);

/* Posts a signal to one thread (tgkill, a fault, SIGPIPE). Same returns. */
int km_signal_send_thread(km_vcpu_t *t, const siginfo_t *info);

/* The siginfo of a signal the guest sends itself with code si_code (SI_USER, SI_TKILL, ...). */
void km_signal_info(km_vcpu_t *from, int sig, int si_code, siginfo_t *info);

/* Raises sig for v's thread as the kernel would for its syscall (SIGPIPE, SIGXFSZ). */
void km_signal_raise(km_vcpu_t *v, int sig);

/* Posts info's signal to v's thread so that it cannot be blocked or ignored (Linux's
 * force_sig_info: a blocked or ignored one is unblocked and reset to its default action), as
 * for a seccomp trap's SIGSYS. Taken at v's next return to the program. */
void km_signal_force(km_vcpu_t *v, const siginfo_t *info);

/* The live guest thread (vCPU) whose thread id is tid; NULL if none. */
km_vcpu_t *km_signal_guest_thread(km_guest_t *g, pid_t tid);

/* The thread that should take the process's next pending signal (the main thread if it does
 * not block it, else one that does not), NULL if every thread blocks them all. */
km_vcpu_t *km_signal_process_taker(km_guest_t *g);

/* --- taking ------------------------------------------------------------------------------- */

/* True if a signal v does not block is pending for it or for the process. A hint read without
 * the lock (cheap on every return to the program); km_signal_deliver decides under it. */
bool km_signal_deliverable(km_vcpu_t *v);

/* Signals pending for v's thread alone (bit sig-1), blocked ones included. */
uint64_t km_signal_pending_own(km_vcpu_t *v);

/* Signals pending for v's thread or its process (bit sig-1), blocked ones included. */
uint64_t km_signal_pending_set(km_vcpu_t *v);

/* A syscall of v ended in -EINTR because km kicked it. If a signal will now run a handler
 * that does not ask for SA_RESTART, or the call cannot be restarted after a handler (nr: the
 * syscall), the program must see EINTR: returns true. Otherwise (no handler will run, or
 * SA_RESTART on a restartable call) the call is made again: false. */
bool km_signal_interrupts(km_vcpu_t *v, long nr);

/* At a return to the program with its registers *u: delivers the pending signals v may take.
 * A handler: its frame is built and *u becomes the handler's entry (returns false). A default
 * action that ends the guest ends it (returns true). Ignored ones vanish. If the frame cannot
 * be written the guest dies of SIGSEGV, as on Linux. */
bool km_signal_deliver(km_vcpu_t *v, struct kvm_regs *u);

/* A fault in the program (trapno: the CPU vector, err: its error code) raises sig with si_code
 * and si_addr: delivered to the handler at once, as Linux forces it; blocked or ignored, or
 * with no handler, the guest dies of it (with a core when its default action dumps one).
 * *u are the registers at the fault and become the handler's entry. Returns true if the guest
 * ended. */
bool km_signal_fault(km_vcpu_t *v, struct kvm_regs *u, int sig, int si_code, uint64_t addr, int trapno,
		     uint64_t err);

/* rt_sigreturn: the frame at the program's rsp gives back registers (v->user), mask, FPU state
 * and alternate stack. A bad frame raises SIGSEGV as a fault does (its handler runs if it has
 * one, else the guest dies of it). Returns the restored rax. */
long km_signal_sigreturn(km_vcpu_t *v);

/* Takes, without running a handler, the next pending signal among `set` (rt_sigtimedwait).
 * True with *info filled, false if none. */
bool km_signal_take(km_vcpu_t *v, uint64_t set, siginfo_t *info);

/* Blocks v's thread until a signal among `own` is pending for it, or among `shared` for the
 * process, the deadline passes (NULL: none; CLOCK_MONOTONIC), or km kicks it (a stop, the guest
 * ending, or a process signal km chose this thread to take: km_signal_send_process kicks only
 * that one). Returns 0 (a wake signal is pending), -EAGAIN (deadline), -KM_ERESTART (kicked:
 * the syscall returns it). */
int km_signal_wait(km_vcpu_t *v, uint64_t own, uint64_t shared, const struct timespec *deadline);

/* Puts `mask` in force for the syscall being made (sigsuspend, ppoll, pselect6, epoll_pwait);
 * the thread's own mask comes back on its way out, after any handler. -EINTR if a signal the
 * new mask lets through is already pending (the call must not block). */
int km_signal_call_mask(km_vcpu_t *v, uint64_t mask);

/* A disposition changed to "ignore" (explicitly or by default): pending instances vanish. */
void km_signal_discard_ignored(km_guest_t *g, int sig);

/* Locks the guest's signal state (dispositions, pending queues, masks of other threads). */
void km_signal_lock(km_guest_t *g);
void km_signal_unlock(km_guest_t *g);

/* --- km_signal_host.c --------------------------------------------------------------------- */

/* The host process (thread group) that thread `tid` belongs to, or -ESRCH (-EPERM: not ours to
 * see). */
pid_t km_signal_host_tgid(pid_t tid);

/* Sends sig (with info, or as kill() when NULL) to the host process that pid (a process or any
 * of its threads) belongs to, through a pidfd, so a reused number cannot reach anything else;
 * km's own process is -ESRCH. 0 or -errno (the host's: ESRCH, EPERM, ...). */
long km_signal_host_process(pid_t pid, int sig, siginfo_t *info);

/* Installs km's handlers for SIGXCPU and SIGXFSZ (RLIMIT_CPU and RLIMIT_FSIZE are applied on
 * the host: they become the guest's signals, and km's own writes get EFBIG instead of dying),
 * and blocks, in the calling thread and so in every thread it creates, the signals km forwards
 * to the guest (km_signal_forward_start takes them). Once, in main, before any thread starts. */
void km_signal_host_init(void);

/* Starts the thread that takes signals sent to km from outside (SIGTERM, SIGINT, SIGUSR1,
 * timers the guest set...) and posts them to the guest. Returns 0 or -1 with *err. */
int km_signal_forward_start(km_guest_t *g, km_err_t **err);

/* True if km forwards sig to the guest when the host sends it to km (km keeps the others for
 * itself: the kick, faults, SIGXCPU/SIGXFSZ, SIGPIPE, SIGSYS, SIGKILL, SIGSTOP). */
bool km_signal_host_forwarded(int sig);

/* Makes km's host disposition of SIGCHLD follow the guest's (sa): SIG_IGN and SA_NOCLDWAIT make
 * the host reap the guest's children (km's) by itself, as Linux does for the guest; SA_NOCLDSTOP
 * spares stops. km still never takes SIGCHLD itself: it stays blocked for the forwarding thread. */
void km_signal_host_sigchld(const km_sigaction_t *sa);

/* Stops it (the guest has ended). */
void km_signal_forward_stop(km_guest_t *g);

/* Tells it a signal was posted: it kicks the taker again every few ms while the signal waits,
 * which covers a kick that landed just before its thread blocked in a host syscall. */
void km_signal_forward_poke(km_guest_t *g);

/* Blocks SIGXCPU in the calling thread (old mask in *old): threads of km that are not vCPUs are
 * created with it blocked, so the kernel hands it to a vCPU thread. */
void km_signal_host_block(sigset_t *old);

/* Around one guest syscall km runs on the host: a SIGXFSZ the host sent for it (the call failed
 * with EFBIG) or a pending SIGXCPU becomes the guest's. */
void km_signal_syscall_begin(void);
void km_signal_syscall_end(km_vcpu_t *v, long ret);

/* After KVM_RUN was interrupted: posts a pending SIGXCPU to the guest. */
void km_signal_host_deliver(km_vcpu_t *v);

#endif
