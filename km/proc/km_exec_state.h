/*
 * What crosses an execve: km re-executes itself for the new program (km_exec.c) and hands the
 * new km, through a sealed memfd named by the internal option --exec-state=FD, what Linux keeps
 * across exec that km keeps for the guest (the host keeps pid, fds, cwd, umask, itimers, process
 * group, parent), and km's own options. Versioned and sized; every field is checked when read,
 * because the km that wrote it may have been taken over by its guest.
 *
 * The new km accepts a state only from an fd in km's own range (a guest's fds are all below it),
 * only a memfd sealed against writes, and only if the process that wrote it is this one (its pid
 * is recorded: exec keeps it), so no other process's state can be put in.
 */
#ifndef KM_EXEC_STATE_H
#define KM_EXEC_STATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>

#include "km_error.h"
#include "km_exec_fd.h"
#include "km_guest.h"

#define KM_EXEC_STATE_VERSION 2 /* 2: descendant, mono_shift */
#define KM_EXEC_STATE_MAX (16u << 20)  /* bytes of one state (the guest's seccomp texts dominate) */
#define KM_EXEC_STATE_FDS_MAX 64      /* inherited fds and signalfds passed across, each */
#define KM_EXEC_STATE_SIGS_MAX 2048   /* pending signals passed across (two queues) */
#define KM_EXEC_STATE_ENV_MAX (6u << 20) /* bytes of the program's environment (execve's bound) */
#define KM_EXEC_STATE_STR_MAX (32u * 4096) /* one environment string, NUL included (MAX_ARG_STRLEN) */
#define KM_EXEC_STATE_SHIFT_MAX (100ll * 366 * 86400 * 1000000000ll) /* ns: a century */


typedef struct km_exec_fdpair {
	int32_t guest_fd; /* the guest's fd (inherited), or -1 (signalfd) */
	int32_t fd;       /* km's copy, passed across (>= KM_FD_RESERVED_BASE) */
	uint64_t mask;    /* signalfd: the signals it reads */
} km_exec_fdpair_t;

typedef struct km_exec_sig {
	uint32_t own; /* 1: pending for the thread that exec'd; 0: for the process */
	siginfo_t info;
} km_exec_sig_t;

typedef struct km_exec_state {
	/* km's options */
	uint64_t memory, snapshot_file_max;
	int32_t tcp_established, restore_missing;
	bool trace, coredump_forced, no_seccomp, timing;
	bool self_contained;     /* --self-contained */
	uint32_t snapshot_chain; /* --snapshot-chain (0: the default) */
	uint8_t syscall_path;    /* --syscall-path (enum km_syscall_path) */
	/* The km exec'ing is not the one the user started but a forked child's (or one such a km
	 * exec'd): it leaves reporting its program's death to the parent program (km_end.h). */
	bool descendant;
	uint64_t host_mask; /* the exec'ing thread's host signal mask, for the new km's main thread */
	char *snapshot_path, *coredump_path, *mgmt_path; /* absolute; mgmt_path NULL: none */
	uint64_t mgmt_dev, mgmt_ino; /* the socket file km created at mgmt_path (0: not km's) */
	/* fds passed across (in km's range, not close-on-exec), -1 when none */
	int32_t kvm_fd, mgmt_fd, err_fd, prog_fd;
	/* the guest */
	int32_t pid; /* as the guest sees it (a resumed guest's is virtual) */
	bool unkillable;
	/* The guest's monotonic clocks minus the host's (km_vdso_mono_shift; a resumed guest's is
	 * not 0): Linux's clocks do not go back across exec, so neither do the guest's. */
	int64_t mono_shift;
	uint64_t ignored, sigmask;
	km_exec_sig_t *sigs;
	uint32_t nsigs;
	struct rlimit nofile;
	struct rlimit rlim[RLIM_NLIMITS];
	uint32_t rlim_set;
	void *gsc; /* the guest's seccomp filters as km_gsc_save gives them; NULL: none */
	uint32_t gsc_len;
	km_exec_fdpair_t *inherited, *sigfds;
	uint32_t ninherited, nsigfds;
	/* The program's environment (NULL-terminated). It travels here, not as the new km's own
	 * environment, which stays km's: the guest must not set what km's C library reads at start
	 * (GLIBC_TUNABLES, LD_* for a sanitizer build's dynamic km, km's own KM_* switches). */
	char **envp;
	uint32_t nenvp;
} km_exec_state_t;

/* What main tells km_exec.c about this km: whether its own seccomp filter is in force (it stays
 * in force in the new km, which then does not install it again), and the management listener to
 * hand over (km_mgmt_handover: -1 none; the socket file's identity when km created it). */
void km_exec_set_host(bool confined, int mgmt_fd, uint64_t mgmt_dev, uint64_t mgmt_ino);

/* A forked child has no management listener to hand over (km_mgmt_forget_in_child closed its
 * copies): an execve of the child passes none. */
void km_exec_forget_mgmt(void);

/* Writes st into a new sealed memfd in km's range, not close-on-exec. The fd, or -1 with *err. */
int km_exec_state_write(const km_exec_state_t *st, km_err_t **err);

/* Reads and checks the state at fd (from --exec-state) into *st, closing fd. Every fd it names
 * is checked to be open and in km's range and made close-on-exec again. 0, or -1 with *err. */
int km_exec_state_read(int fd, km_exec_state_t *st, km_err_t **err);

/* Frees what read allocated and closes the fds st still owns (set to -1 when taken). */
void km_exec_state_free(km_exec_state_t *st);

/* The new km, before the program is loaded: the guest's pid, limits, dispositions (handlers
 * reset, SIG_IGN kept), seccomp filters. 0, or -1 with *err. */
int km_exec_state_apply_process(km_guest_t *g, km_exec_state_t *st, km_err_t **err);

/* After the program is loaded (vCPU 0 exists): its mask, the pending signals, inherited fds,
 * signalfds and the monotonic clocks' offset. 0, or -1 with *err. */
int km_exec_state_apply_thread(km_guest_t *g, km_exec_state_t *st, km_err_t **err);

#endif
