/*
 * The one door into the guest's fd table for host fds km did not create from a guest fd: every
 * fd opened by path for the guest (open, openat, openat2, creat, ...) and every fd that arrives
 * from outside (recvmsg SCM_RIGHTS) passes here before its number reaches the guest.
 *
 * What is refused is decided by what the fd is, never by the path the guest wrote: km's own
 * memory, registers and threads (/proc/<km>/mem, pagemap, map_files, ... by whatever route) and
 * km's own files (the reserved fds re-opened through /proc/<km>/fd) never enter, nor those of any
 * other process (a guest's parent and children are kms too: km_procview.h). Some /proc files
 * that would describe km are replaced by km's description of the guest (km_procview.c).
 */
#ifndef KM_FD_ADMIT_H
#define KM_FD_ADMIT_H

#include <stdbool.h>

#include "km_guest.h"

/* fd: a host fd (or -errno, passed through). Returns the fd the guest gets: `fd` itself, or a
 * replacement holding km's view of the guest (then `fd` is closed), or -errno after closing
 * `fd` (EACCES for what names km). O_CLOEXEC of `fd` carries over to a replacement. */
long km_fd_admit(km_guest_t *g, long fd);

/* For calls that name a file by path without opening it for the guest (stat, readlink, access,
 * chdir, link, ...) and before opens: 0 if the guest may name (dirfd, path), else -ENOENT (km's
 * own threads and fds) or -EACCES (km's memory and registers). `follow`: the call follows a
 * final symlink, so where it leads is judged too. A path that does not resolve is 0: the real
 * call reports that. Races with a concurrent rename are harmless for opens (km_fd_admit judges
 * the opened file itself); for the others the worst case is a stat or readlink of km's entry. */
long km_path_admit(km_guest_t *g, int dirfd, const char *path, bool follow);

#endif
