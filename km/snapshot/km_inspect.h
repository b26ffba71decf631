/* `km --inspect SNAPSHOT`: what a user wants to know about a snapshot, without running it. */
#ifndef KM_INSPECT_H
#define KM_INSPECT_H

#include <stdio.h>

#include "km_error.h"

#include <stdbool.h>

/* Checks the snapshot at `path` completely (as a restore would) and describes it on `out`: km
 * version and format, why and when it was written, the program and its arguments, each thread
 * and where it stands, each mapping with size, protection and bytes stored, totals. With
 * `verify`, also reads every saved segment and checks it against its checksum: -1 with *err
 * naming the first segment that differs. */
int km_inspect(const char *path, bool verify, FILE *out, km_err_t **err);

#endif
