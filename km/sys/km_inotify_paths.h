/*
 * The paths of the guest's inotify watches, for snapshots: the kernel shows each watch's inode
 * (/proc/self/fdinfo) but not the name it was added by, and a resume can only add a watch by
 * name. km notes, at each inotify_add_watch the guest makes, the watched inode's absolute path;
 * a snapshot takes the path of each watched inode from here, checked to still name that inode.
 *
 * Keyed by the watched inode, not by inotify instance: every inotify fd is the same anonymous
 * inode, so an instance has no cheap identity, and whoever watches an inode watches it by any of
 * its names. Bounded (KM_INOTIFY_PATHS_MAX): when full, inodes no inotify fd of the guest still
 * watches (removed watches, closed instances) are forgotten. Thread-safe.
 */
#ifndef KM_INOTIFY_PATHS_H
#define KM_INOTIFY_PATHS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "km_guest.h"

#define KM_INOTIFY_PATHS_MAX 4096

/* After the guest's inotify_add_watch(.., path, mask) succeeded: path as the guest wrote it
 * (resolved against the cwd, as the kernel did). Out of memory or a path too long: not noted
 * (a snapshot then refuses that inotify, naming the watch). */
void km_inotify_note(km_guest_t *g, const char *path, uint32_t mask);

/* The absolute path noted for inode (dev, ino), if it still names that inode, into buf (len
 * bytes), and the watch flags it was added with that a resume needs (IN_DONT_FOLLOW). */
bool km_inotify_path(km_guest_t *g, dev_t dev, ino_t ino, char *buf, size_t len, uint32_t *flags);

/* Frees the guest's notes (km_guest_destroy). */
void km_inotify_free(km_guest_t *g);

#endif
