/*
 * A starter config.json for km-shim (`km-shim spec`), in the spirit of `runc spec` but suited to
 * km: the program runs as root inside its namespaces (pid, network, ipc, uts, mount) on a
 * read-only "rootfs", with runc's default mounts, masked and read-only paths, a minimal
 * capability set and RLIMIT_NOFILE 1024, without a terminal.
 */
#ifndef OCI_SPEC_H
#define OCI_SPEC_H

#include "km_error.h"

/* The JSON text (indented, ending in a newline) of that config with process.args = `args`
 * (a NULL-terminated vector; NULL or empty means ["sh"]). Caller frees. NULL with *err if an
 * argument is not UTF-8 (JSON cannot carry it) or memory runs out. */
char *oci_spec_default(const char *const *args, km_err_t **err);

#endif
