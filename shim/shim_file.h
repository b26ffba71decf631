/*
 * Small file helpers the container layer shares: writing a value into a kernel file
 * (/proc/<pid>/uid_map, /proc/sys/..., a cgroup's files) and mkdir -p.
 */
#ifndef SHIM_FILE_H
#define SHIM_FILE_H

#include <sys/types.h>

#include "km_error.h"

/* Writes `text` to the existing file `path`, opened O_WRONLY|O_CLOEXEC|`oflags`, in a single
 * write(2) (kernel files take a value per write). -1 with *err naming the file and, if it is one
 * line, the value ("writing \"max\" to /sys/fs/cgroup/x/pids.max: Invalid argument"). */
int shim_write_file(const char *path, int oflags, const char *text, km_err_t **err);

/* mkdir -p: makes `path` and its missing parents with `mode` (before the umask); an existing
 * directory is fine. -1 with errno. */
int shim_mkdir_p(const char *path, mode_t mode);

#endif
