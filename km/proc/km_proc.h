/*
 * Guest processes (issue 10). Every guest process is one km process with its own VM:
 *
 * - fork, vfork, clone/clone3 without CLONE_THREAD (posix_spawn, system()) fork km itself on the
 *   host (km_fork.c). The child gets a copy-on-write copy of km's memory, hence of guest memory
 *   with its page tables and runtime at the same guest-physical addresses; it drops the parent's
 *   VM and vCPU fds (a KVM VM belongs to the process that made it), makes a new VM over the same
 *   host memory and one vCPU with the forking thread's state at its syscall (rax 0), restarts the
 *   km threads a process needs (signal forwarding) and runs. Nothing of guest memory is copied.
 * - execve/execveat re-execute km (km_exec.c): the new program is checked first (so that every
 *   error Linux gives at execve is returned to the caller, which goes on), then km execveat()s
 *   its own binary (an fd opened at start, AT_EMPTY_PATH: the only form km's seccomp allows) with
 *   the program's path, argv and envp and a small versioned state blob (km_exec_state.h) holding
 *   what Linux keeps across exec and km keeps for the guest. The host kernel keeps the rest: pid,
 *   fds without FD_CLOEXEC, cwd, umask, itimers, process group and session, the parent.
 * - wait4, waitid, getppid, setsid, setpgid, kill of a process group: the host's, because a
 *   guest's child process is a host child of its km.
 */
#ifndef KM_PROC_H
#define KM_PROC_H

#include <stdbool.h>
#include <stdint.h>

#include "km_guest.h"
#include "km_vcpu.h"

/* True if clone flags ask for a new process rather than a thread (no CLONE_THREAD). */
bool km_proc_is_fork(uint64_t flags);

/* clone/clone3 (and fork, vfork) that make a new process, from vCPU v at its syscall: flags (with
 * the exit signal in CSIGNAL), the child's stack (0: the caller's), parent_tid and child_tid
 * addresses, TLS base (CLONE_SETTLS). In the parent: returns the child's pid or -errno (EINVAL /
 * ENOSYS with a --trace line for what km does not support). With CLONE_VFORK the parent returns
 * only once the child has exec'd or ended. In the child: does not return to its caller; the
 * child process runs the guest to its end and ends as km's main would (km_proc_child_main). */
long km_proc_fork(km_vcpu_t *v, uint64_t flags, uint64_t stack, uint64_t ptid, uint64_t ctid, uint64_t tls);

/* execve/execveat from vCPU v: dirfd (AT_FDCWD for execve), guest addresses of the path, argv and
 * envp, AT_* flags. Returns -errno as Linux's execve would when the program cannot be run (the
 * caller goes on); on success does not return (km is replaced by a km running the program). */
long km_proc_execve(km_vcpu_t *v, int dirfd, uint64_t path, uint64_t argv, uint64_t envp, int flags);

/* 1 if the guest's process has child processes that are alive or not yet waited for (a snapshot
 * of one process of a tree is refused), 0 if none, -1 with *err if km cannot tell. */
int km_proc_has_children(km_guest_t *g, km_err_t **err);

#endif
