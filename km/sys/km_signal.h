/*
 * Guest signal dispositions and default actions. Until guest handlers are delivered (signals
 * issue), a signal the guest sends itself takes its default action, as Linux would without a
 * handler; dispositions and masks are kept exactly so that snapshots and the signals work can
 * build on them.
 */
#ifndef KM_SIGNAL_H
#define KM_SIGNAL_H

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

#include "km_guest.h"
#include "km_vcpu.h"

/* What a signal does when nothing handles it. */
enum km_sig_default { KM_SIG_TERM, KM_SIG_CORE, KM_SIG_IGNORE, KM_SIG_STOP };
enum km_sig_default km_sig_default_action(int sig);

/* Delivers `sig` to the guest running on v: ignored signals vanish, others end the guest.
 * Returns true if the guest ended. */
bool km_signal_raise(km_vcpu_t *v, int sig);

/* The guest thread (vCPU) whose thread id, as the guest sees it, is tid; NULL if none. Any other
 * thread of km is not the guest's to name. */
km_vcpu_t *km_signal_guest_thread(km_guest_t *g, pid_t tid);

/* The host process (thread group) that thread `tid` belongs to, or -ESRCH (-EPERM: not ours to
 * see). */
pid_t km_signal_host_tgid(pid_t tid);

/* Sends sig (with info, or as kill() when NULL) to the host process that pid (a process or any
 * of its threads) belongs to, through a pidfd, so a reused number cannot reach anything else;
 * km's own process is -ESRCH. 0 or -errno (the host's: ESRCH, EPERM, ...). */
long km_signal_host_process(pid_t pid, int sig, siginfo_t *info);

/* Installs km's handlers for SIGXCPU and SIGXFSZ, which the kernel sends about RLIMIT_CPU and
 * RLIMIT_FSIZE (applied on the host): they become the guest's signals, and km's own writes get
 * EFBIG instead of dying. Once, in main, before any thread starts. */
void km_signal_host_init(void);

/* Blocks SIGXCPU in the calling thread (old mask in *old): threads of km that are not vCPUs are
 * created with it blocked, so the kernel hands it to a vCPU thread. */
void km_signal_host_block(sigset_t *old);

/* Around one guest syscall km runs on the host: a SIGXFSZ the host sent for it (the call failed
 * with EFBIG) or a pending SIGXCPU becomes the guest's. end returns true if the guest ended. */
void km_signal_syscall_begin(void);
bool km_signal_syscall_end(km_vcpu_t *v, long ret);

/* After KVM_RUN was interrupted: delivers a pending SIGXCPU if the vCPU stopped in program code.
 * Returns true if the guest ended. */
bool km_signal_host_deliver(km_vcpu_t *v);

#endif
