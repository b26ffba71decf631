/*
 * Paths inside a container's rootfs, resolved without following symlinks out of it.
 *
 * The rootfs belongs to whoever wrote the bundle: a symlink in it may point anywhere
 * ("/etc" -> "/host/etc" is meant relative to the rootfs; "../../../etc" tries to escape).
 * Absolute symlinks are taken relative to the rootfs, as the container will see them; a ".."
 * (in the path or in a symlink's target) that would climb above the rootfs is an error, not
 * clamped, so a bundle that tries to escape is told so. The final descriptor comes from
 * openat2(RESOLVE_IN_ROOT) where the kernel has it (the kernel then guarantees containment even
 * if the tree changes under us), else from the component walk itself (O_NOFOLLOW at each step).
 */
#ifndef SHIM_PATH_H
#define SHIM_PATH_H

#include <stdbool.h>
#include <sys/types.h>

#include "km_error.h"

typedef enum shim_path_create {
	SHIM_PATH_NOCREATE, /* every component must exist */
	SHIM_PATH_MKDIR, /* missing components are made as directories (0755) */
	SHIM_PATH_MKFILE, /* missing parents as directories, a missing last component as an empty file */
} shim_path_create_t;

/* Opens `path` (absolute or relative: both are taken from the rootfs's top) inside the tree
 * rooted at directory fd `rootfd`, O_PATH|O_CLOEXEC, creating what `create` says. Returns the fd,
 * or -1 with *err ("<path>: escapes the rootfs through symlink <component>" or the errno). */
int shim_path_open(int rootfd, const char *path, shim_path_create_t create, km_err_t **err);

/* Opens the parent directory of `path` inside `rootfd` (O_PATH|O_CLOEXEC, parents created when
 * `mkdirs`) and points *base at path's last component (inside `path`, not copied). */
int shim_path_open_parent(int rootfd, const char *path, bool mkdirs, const char **base, km_err_t **err);

/* "/proc/self/fd/N": a name mount(2) and friends accept for an O_PATH fd. */
void shim_path_fdname(int fd, char buf[32]);

#endif
