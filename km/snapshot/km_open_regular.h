/*
 * Opening a file a snapshot names (a parent, the file below a mapping) only if it is a regular
 * file. Opening a device or a FIFO can act (a FIFO blocks or wakes its writer, a device may
 * rewind or start something), so such a name must never be opened; and a check by name (stat)
 * followed by an open by name leaves a window in which the name can be swapped for one.
 */
#ifndef KM_OPEN_REGULAR_H
#define KM_OPEN_REGULAR_H

#include <stdbool.h>

/* Opens path read-only (O_CLOEXEC, in km's reserved fd range) if it is a regular file: the name
 * is resolved once with O_PATH (which opens nothing), that inode checked, then opened again
 * through /proc/self/fd (the same inode, whatever the name now is). Returns the fd, or -1 with
 * errno, and *not_regular set when the name resolved to something else (errno then 0). */
int km_open_regular(const char *path, bool *not_regular);

#endif
