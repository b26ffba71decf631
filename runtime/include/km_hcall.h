/*
 * km_hcall.h: calls from a program to the km monitor it runs under.
 *
 *     km_hc_args_t snapshotargs = {};
 *     km_hcall(HC_snapshot, &snapshotargs);
 *
 * A hypercall is an ordinary `syscall` instruction with a number Linux never uses
 * (KM_HCALL_BASE + call), so it works from a program linked against an unmodified libc, and the
 * same program run natively gets -ENOSYS back instead of crashing. Header only, no dependencies.
 */
#ifndef KM_HCALL_H
#define KM_HCALL_H

#include <stdint.h>

#define KM_HCALL_BASE 0x4b4d0000 /* "KM": far above any Linux syscall number */

enum km_hcall_nr {
	HC_snapshot = 1, /* take a snapshot of this program (see below) */
	HC_dirty_probe = 63, /* km's tests only: -ENOSYS unless km runs with --test-dirty-probe */
};

/* HC_dirty_probe's arg1 (km/sys/km_dirty_probe.h). */
#define KM_DIRTY_PROBE_START 0
#define KM_DIRTY_PROBE_COLLECT 1
#define KM_DIRTY_PROBE_RETURN 2

/* Arguments and result of a hypercall; unused fields must be zero. */
typedef struct km_hc_args {
	uint64_t hc_ret; /* filled in by km: the call's result, as km_hcall returns it */
	uint64_t arg1;
	uint64_t arg2;
	uint64_t arg3;
	uint64_t arg4;
	uint64_t arg5;
	uint64_t arg6;
} km_hc_args_t;

/*
 * HC_snapshot: km stops the program at this call and writes its whole state to the snapshot file
 * (km --snapshot=FILE, default "kmsnap" in km's working directory).
 *   arg1: label (const char *, NUL-terminated, at most 255 bytes; 0 for none), kept in the file
 *   arg2: flags, KM_SNAPSHOT_KEEP_RUNNING to go on after the snapshot instead of exiting
 *   arg3: file name (const char *, 0: km's --snapshot name), relative to km's working directory
 * Result:
 *   - default: km exits with status 0 once the snapshot is safely written; the call does not
 *     return in this run of the program.
 *   - KEEP_RUNNING: returns KM_SNAPSHOT_TAKEN (0) once the file is written.
 *   - in a program resumed from the snapshot (km FILE): returns KM_SNAPSHOT_RESUMED (1).
 *   - on failure: -errno (e.g. -ENOSPC), and the program goes on; natively: -ENOSYS.
 */
#define KM_SNAPSHOT_KEEP_RUNNING 1ull
#define KM_SNAPSHOT_TAKEN 0
#define KM_SNAPSHOT_RESUMED 1

/* Issues hypercall `nr`; returns what km put in args->hc_ret, or -ENOSYS when not under km. */
static inline long km_hcall(int nr, km_hc_args_t *args)
{
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"((long)KM_HCALL_BASE + nr), "D"(args)
			 : "rcx", "r11", "memory");
	return ret;
}

/* Convenience: snapshot with an optional label and flags; result as for HC_snapshot. */
static inline long km_snapshot(const char *label, uint64_t flags)
{
	km_hc_args_t a = {0, (uint64_t)(uintptr_t)label, flags, 0, 0, 0, 0};
	return km_hcall(HC_snapshot, &a);
}

#endif
