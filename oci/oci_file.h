/*
 * Replacing a small file atomically: a reader (another km-shim, containerd, podman) sees the old
 * contents or the new, never a half-written file, even if we are killed or the machine stops.
 * Used for state.json, the pid file and a checkpoint's metadata.
 */
#ifndef OCI_FILE_H
#define OCI_FILE_H

#include <stddef.h>
#include <sys/types.h>

#include "km_error.h"

/* Writes `len` bytes to a temporary file in directory fd `dfd`, syncs it, renames it over `name`
 * and syncs the directory. `dir` is how the directory is named in errors. The file gets `mode`
 * (before the umask). -1 with *err naming dir/name on failure; no temporary file is left. */
int oci_file_replace_at(int dfd, const char *dir, const char *name, const void *buf, size_t len, mode_t mode,
			km_err_t **err);

/* oci_file_replace_at for a path (relative to the working directory or absolute). */
int oci_file_replace(const char *path, const void *buf, size_t len, mode_t mode, km_err_t **err);

#endif
