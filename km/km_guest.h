/*
 * One guest: the program running in its own VM. Ties the machine (KVM), the address space, the
 * vCPUs and the process state (ids, program path, arguments, how it ended) together.
 */
#ifndef KM_GUEST_H
#define KM_GUEST_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "km_error.h"
#include "km_machine.h"
#include "km_mm.h"
#include "km_runtime_layout.h"
#include "km_sigqueue.h"
#include "km_stopall.h"
#include "km_vcpu.h"

typedef struct km_guest_opts {
	uint64_t memory;    /* --memory, bytes */
	bool trace;         /* --trace */
	bool test_dirty_probe; /* --test-dirty-probe: HC_dirty_probe answers (km_dirty_probe.h) */
	int trace_fd;       /* where --trace writes (stderr) */
	const char *kvm_dev;
	int kvm_fd;         /* --kvm-fd, already checked and moved to km's range; -1: open kvm_dev */
	uint64_t ignored_signals; /* signals km inherited as ignored (bit sig-1): so does the guest */
	const char *snapshot_path; /* --snapshot (default "kmsnap") */
	const char *coredump_path; /* --coredump (default "kmcore") */
	bool coredump_forced;      /* --coredump given: write cores even with RLIMIT_CORE 0 */
	const char *mgmt_path;     /* --mgmt socket, or NULL */
	bool timing;               /* KM_TIMING=1: print restore timing */
	int syscall_path;          /* --syscall-path: enum km_syscall_path (km_syscall_poll.h) */
	int usable_cpus;           /* CPUs km may run on when it started (km_cpus.h; `auto`, its cap) */
	uint32_t poll_spin_us;     /* --test-poll-spin: every poll bound this long (0: km's own) */
	const char *snapshot_source; /* the snapshot being resumed (for messages), or NULL */
	uint64_t start_ns;         /* CLOCK_MONOTONIC when km started */
	int tcp_established;       /* --tcp-established: enum km_tcp_policy (km_fdtab.h) */
	int restore_missing;       /* --restore-missing: enum km_missing_policy */
	uint64_t snapshot_file_max; /* --snapshot-file-max: largest file contents a snapshot carries */
	bool self_contained;       /* --self-contained: snapshots hold every page (no file below) */
	bool track_changes;        /* a management socket may ask for incremental snapshots: changed
				    * pages are tracked from each snapshot and resume on (km_dirty.h) */
	uint32_t snapshot_chain;   /* --snapshot-chain: deepest incremental chain (0: default 8) */
	const int *parent_fds;     /* --snapshot-parent-fd, in order: the chain below --snapshot-fd */
	size_t nparent_fds;
} km_guest_opts_t;

/* A file a resume recreated under a new identity (km_fdtab.h): what the snapshot knew it as, and
 * the program's fd of the new one, until the program's shared mappings of it are mapped again. */
typedef struct km_fd_restored {
	uint64_t dev, ino;
	int fd;
} km_fd_restored_t;

/* An fd km's caller gave the program (km_fdtab.h, "inherited"): its number and km's copy of it,
 * above the guest's range, to recognise the description later (kcmp). */
typedef struct km_fd_inherit {
	int fd, keeper;
} km_fd_inherit_t;

struct km_snapshot_req;
struct km_snapshot_result;

/* A signal disposition exactly as the x86-64 kernel ABI passes it to rt_sigaction. */
typedef struct km_sigaction {
	uint64_t handler; /* SIG_DFL (0), SIG_IGN (1) or the handler's address */
	uint64_t flags;
	uint64_t restorer;
	uint64_t mask;
} km_sigaction_t;

typedef struct km_sigfd km_sigfd_t;

#define KM_NSIG 64
#define KM_MAX_SIGFDS 64   /* most signalfds a guest may have open at once */
#define KM_MAX_TIMERS 256   /* most POSIX timers a guest may hold (EAGAIN past it) */

typedef struct km_guest {
	km_guest_opts_t opts;
	km_machine_t machine;
	km_mm_t mm;
	km_vcpu_t *vcpus[KM_MAX_VCPUS]; /* by vCPU id; a slot stays allocated once used (km_threads.h) */
	int nvcpus;                     /* slots used so far (high-water mark) */

	pid_t pid;            /* process id the guest sees */
	/* A forked child's parent: km's host pid and the pid that parent's guest sees (they differ
	 * for a resumed parent), so that getppid() gives what the parent's getpid() gives while the
	 * parent lives. 0: not a forked child (getppid is the host's). */
	pid_t ppid_host, ppid_guest;
	/* km is the init of a pid namespace (km-shim's container with a pid namespace): as Linux's
	 * SIGNAL_UNKILLABLE, a signal at its default action is dropped, unless forced (a fault,
	 * a seccomp trap), which clears this as Linux's force_sig_info does. */
	bool unkillable;
	char *exe_path;       /* absolute path of the program (readlink /proc/self/exe) */
	uint64_t entry;       /* program entry point */
	/* The program's interpreter (PT_INTERP) as loaded: NT_KM_DYNLINKER records it, a resume
	 * checks the file is still the same. path NULL: a static program. */
	struct km_dynlinker {
		char *path; /* absolute, owned */
		uint64_t base, entry, dev, ino, size;
		int64_t mtime_sec, mtime_nsec;
	} dynlinker;
	uint64_t *auxv;       /* the auxiliary vector the program started with (a copy) */
	size_t auxv_len;      /* its size in bytes */
	char **argv;          /* the program's arguments (a copy, for snapshots and cores) */
	int argc;
	uint64_t env_count, env_bytes; /* the environment the program started with */
	/* Where the argument and environment strings lie on the initial stack (what Linux's
	 * /proc/<pid>/cmdline and environ read); 0 when unknown (a resumed snapshot). */
	uint64_t arg_start, arg_end, env_start, env_end;
	uint64_t start_stack; /* the initial stack pointer (at argc), as /proc/<pid>/stat shows */
	uint64_t vdso_gva;    /* the vDSO's image (AT_SYSINFO_EHDR), km_vdso.h */
	struct km_vdso *vdso; /* its clock lines and the thread keeping them current */

	/* The guest's threads (one per vCPU) and the stop-all primitive (km_stopall.h). */
	km_threads_t threads;
	bool threads_inited;
	km_err_t *thread_err; /* the first failure of km on a thread other than the main one */

	/* The snapshot file a resumed guest's memory still maps (km_snapshot_lease.h): leased, and
	 * the lease broken by another process (set from a signal handler, atomics). */
	bool snap_leased;
	bool snap_lease_broken;

	/* Signals (km_signal.h): dispositions, the process's pending signals, under sig_lock. */
	pthread_mutex_t sig_lock;
	km_sigaction_t sigactions[KM_NSIG]; /* index sig - 1 */
	km_sigqueue_t sigpending;
	/* The thread that takes signals sent to km from outside (km_signal_host.c). */
	pthread_t sigfwd_thread;
	bool sigfwd_running, sigfwd_stop;
	pid_t sigfwd_tid; /* its host thread id (SIGEV_THREAD_ID timers aim at it) */
	/* signalfds (km_sigfd.h): the eventfd each is, by inode, and the signals it reads. */
	struct km_sigfd {
		bool used;
		dev_t dev;
		ino_t ino;
		uint64_t mask;
		int keeper; /* km's own copy of the eventfd, to set its readiness */
	} sigfds[KM_MAX_SIGFDS];
	int nsigfds;
	/* The guest's POSIX timers: host timers whose signals km's forwarding thread takes. The
	 * guest's timer id is the index (so it survives a resume, where the host ids change). */
	struct km_timer {
		bool used;
		int host_id;
		int clock, notify, signo;
		uint64_t value; /* sigev_value */
		pid_t tid;      /* SIGEV_THREAD_ID: the guest thread */
	} timers[KM_MAX_TIMERS];
	/* Timers a resumed snapshot carried, armed when the forwarding thread starts (NULL: none). */
	void *resume_timers;
	size_t resume_timers_len;
	/* The guest's own seccomp filters (km_guest_seccomp.h), checked before each syscall; NULL:
	 * none. Set before the guest runs, never changed while it does. */
	struct km_gsc *gseccomp;
	/* The paths of the guest's inotify watches (km_inotify_paths.h); NULL until the first. */
	struct km_inotify_paths *inotify_paths;
	/* What km's caller gave the program (km_fdtab_note_inherited), in fd order. */
	km_fd_inherit_t *inherited;
	int ninherited;
	/* During a resume: files recreated under new identities (km_fdtab_restored_file). */
	km_fd_restored_t *fd_restored;
	int nfd_restored;
	struct rlimit nofile;               /* RLIMIT_NOFILE as the guest set it (0: not set) */
	struct rlimit rlim[RLIM_NLIMITS];   /* the other limits km keeps for the guest (km_rlimit.h) */
	uint32_t rlim_set;                  /* which of them the guest set (bit res) */

	/* How the guest ended: exit_group status, or a fatal signal. Once exited is set (atomics:
	 * km_guest_ended) every thread leaves at its next look. */
	bool exited;
	int exit_status;
	int term_signal;
	uint64_t fault_rip, fault_addr;
	bool core_written;    /* a core file was written for the fatal signal */
} km_guest_t;

/* True once the guest has ended (exit_group, a fatal signal, a snapshot that stops it). */
static inline bool km_guest_ended(const km_guest_t *g)
{
	return __atomic_load_n(&g->exited, __ATOMIC_ACQUIRE);
}

/* Marks the guest ended; the first caller's status wins. Returns true for that first caller. */
bool km_guest_end(km_guest_t *g, int exit_status, int term_signal);

/* Creates the VM, guest memory and runtime for a new guest. */
int km_guest_create(km_guest_t *g, const km_guest_opts_t *opts, km_err_t **err);

/* Loads program `path` (an x86-64 ELF) and, if it names one, its interpreter, builds its stack
 * from argv/envp and creates vCPU 0 ready to enter it (at the interpreter's entry if any). */
int km_guest_load_program(km_guest_t *g, const char *path, char *const argv[], char *const envp[],
			  km_err_t **err);

/* Keeps a copy of the program's arguments (snapshots and cores record them). */
int km_guest_set_argv(km_guest_t *g, char *const argv[], km_err_t **err);

/* Runs the guest until it ends. Returns 0 (see exited/exit_status/term_signal) or -1 with *err. */
int km_guest_run(km_guest_t *g, km_err_t **err);

/* Releases everything; safe on a partly created guest. */
void km_guest_destroy(km_guest_t *g);

#endif
