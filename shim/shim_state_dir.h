/*
 * A container's directory <root>/<id>: the id rule, the lock, atomic creation and removal.
 *
 * Every km-shim call that touches a container holds an exclusive flock on <root>/<id>/lock for
 * its whole run, so two calls on one id are serialised. A container directory appears under its
 * name complete or not at all: it is made as <root>/.new-<id>-XXXXXX (lock taken, state written by
 * the caller) and renamed into place with RENAME_NOREPLACE. Temporary directories a km-shim
 * killed -9 left behind are swept by a later create (their lock is free and they are older than
 * 30 seconds: a live create publishes within a moment).
 */
#ifndef SHIM_STATE_DIR_H
#define SHIM_STATE_DIR_H

#include <stdbool.h>

#include "km_error.h"

typedef struct shim_dir {
	char *path; /* <root>/<id> once published (the temporary path before), absolute */
	char *id;
	int dirfd; /* O_DIRECTORY of path; survives the rename */
	int lock_fd; /* holds the flock */
} shim_dir_t;

#define SHIM_DIR_INIT {NULL, NULL, -1, -1}

/* runc's rule: ^[\w+-\.]+$ (letters, digits, '_', '+', ',', '-', '.'), not "." or "..", at most
 * 1024 bytes. -1 with *err ("invalid container id \"a/b\": ..."). */
int shim_id_check(const char *id, km_err_t **err);

/* Makes <root> (0711) if it is missing. -1 with *err. */
int shim_root_make(const char *root, km_err_t **err);

/* Opens <root>/<id> and, if `lock`, locks it (waits for the lock: commands that change the
 * container lock it; state/list/ps only read the atomically written record). A missing
 * directory, or one removed while this call waited: -1 with *err "container \"ID\" does not
 * exist" and errnum ENOENT. */
int shim_dir_open(const char *root, const char *id, bool lock, shim_dir_t *d, km_err_t **err);

/* Makes the temporary directory for a new container, locked; the id is checked for existence
 * first ("container \"ID\" already exists", errnum EEXIST). */
int shim_dir_begin(const char *root, const char *id, shim_dir_t *d, km_err_t **err);

/* Renames the temporary directory to <root>/<id> (RENAME_NOREPLACE); d->path follows. */
int shim_dir_publish(shim_dir_t *d, const char *root, km_err_t **err);

/* Removes the directory and everything in it (the lock stays held until shim_dir_close). */
int shim_dir_remove(shim_dir_t *d, km_err_t **err);

/* Closes the descriptors (releasing the lock) and frees; safe on an unused or closed dir. */
void shim_dir_close(shim_dir_t *d);

/* Path of `name` inside the directory; caller frees. NULL on allocation failure. */
char *shim_dir_file(const shim_dir_t *d, const char *name);

/* The ids of the containers under root, sorted, NULL-terminated (a missing root: none). Caller
 * frees each and the array. -1 with *err. */
int shim_dir_list(const char *root, char ***ids, km_err_t **err);

#endif
