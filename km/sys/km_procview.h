/*
 * The guest's view of /proc. The host's /proc/<km pid> describes km: its memory (mem, pagemap,
 * map_files), its registers (syscall, stack), its threads (the management listener, KVM's
 * workers), its layout (maps, smaps, stat's addresses) and its arguments and environment. The
 * guest is the same host process, so every route there (self, thread-self, a pid or tid, task/,
 * a symlink, a dirfd, `..`) ends in km's entries.
 *
 * This is an allow-list over what an entry IS (its path inside procfs, as the kernel names the
 * opened file), not over the path the guest wrote: entries of km's process that describe the
 * guest harmlessly pass through; cmdline, environ, auxv, maps, stat, statm and status are answered by km
 * from the guest's own state; km's other threads and fds do not exist (ENOENT); everything else
 * under km's pid is EACCES.
 *
 * Other processes: the guest's parent and children are kms too (fork forks km), so their /proc
 * is another km's memory, registers, fds and layout. A program cannot tell whether a pid is a
 * km, so one rule holds for every other process, the kernel's own for a process one may not
 * trace (what a program already copes with): mem, pagemap, map_files, syscall, stack, environ,
 * auxv, maps/smaps/numa_maps (km's layout would undo km's ASLR), attr/, clear_refs and anything
 * not listed are EACCES; stat's address fields are 0; fd/N and fdinfo/N at km's reserved range
 * do not exist and are left out of listings. What describes a process without reaching into it
 * (status, cmdline, comm, limits, cgroup, cwd, root, ns/, net/, fd/ below km's range, ...) is
 * the host's. exe is the host's too, except that of a km (its target is km's own binary): that
 * is EACCES, since /proc/self/exe does not show km's path either. The rest of /proc (meminfo,
 * sys/, ...) is the host's view, exactly what a native program sees.
 */
#ifndef KM_PROCVIEW_H
#define KM_PROCVIEW_H

#include <stdbool.h>
#include <sys/types.h>

#include "km_guest.h"

/* What km does with one procfs entry. */
typedef enum km_pv_verdict {
	KM_PV_PASS,  /* the host's entry, unchanged */
	KM_PV_DENY,  /* names km's memory, registers or security state: EACCES */
	KM_PV_HIDE,  /* km's own thread or fd: ENOENT, as for something that does not exist */
	KM_PV_SYNTH, /* answered by km from the guest's state (km_pv_file_t) */
} km_pv_verdict_t;

typedef enum km_pv_file {
	KM_PV_NONE,
	KM_PV_CMDLINE,
	KM_PV_ENVIRON,
	KM_PV_AUXV,
	KM_PV_MAPS,
	KM_PV_STAT,
	KM_PV_STATUS,
	KM_PV_STATM,
	KM_PV_OTHER_STAT, /* another process's stat, its address fields 0 */
} km_pv_file_t;

typedef struct km_pv {
	km_pv_verdict_t verdict;
	km_pv_file_t file; /* KM_PV_SYNTH: which file */
	pid_t tid;         /* KM_PV_SYNTH: the host thread it describes (0: the process) */
	pid_t pid;         /* KM_PV_OTHER_STAT: the other process (tid: its thread, or 0) */
} km_pv_t;

/* Classifies `rel`, a path inside procfs without the mount point ("1234/task/1235/mem",
 * "meminfo", "1234/fd/1003"), as the kernel names an entry (no "self", no "..": see
 * km_procview_rel). */
km_pv_t km_procview_classify(km_guest_t *g, const char *rel);

/* The procfs-relative name of host fd `fd` in buf, if it is on procfs. Returns true and points
 * *rel into buf, or false (not procfs, or its name cannot be read). */
bool km_procview_rel(int fd, char *buf, size_t size, const char **rel);

/* A new fd (a sealed memfd positioned at 0) holding km's answer for `pv`. Returns it or -errno. */
int km_procview_open(km_guest_t *g, const km_pv_t *pv);

/* True if host tid `tid` runs one of the guest's vCPUs. */
bool km_procview_guest_tid(km_guest_t *g, pid_t tid);

/* Removes from a getdents64 buffer (n bytes at buf) the entries of a km procfs directory that
 * the guest must not see (km's threads in task/, km's fds in fd/ and fdinfo/). `dir` is the
 * directory's procfs-relative name. Returns the new byte count. */
size_t km_procview_filter_dents64(km_guest_t *g, const char *dir, void *buf, size_t n);
/* The same for the old getdents layout. */
size_t km_procview_filter_dents(km_guest_t *g, const char *dir, void *buf, size_t n);

#endif
