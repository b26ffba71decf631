/*
 * The snapshot file a resumed guest's memory still maps. Memory is mapped from the file
 * MAP_PRIVATE, so until the guest writes a page, that page is the file's page cache: another
 * process writing into the file would change the running guest's memory, and truncating it would
 * kill the guest with SIGBUS. km therefore holds a read lease on the file for the guest's life.
 * Opening the file for writing or truncating it breaks the lease: the kernel makes that process
 * wait and sends km KM_SIG_LEASE; km kicks vCPU 0, whose thread (the only one that changes the
 * address space) detaches the memory - every host mapping of the file is replaced by anonymous
 * memory holding the same bytes - and then releases the lease, which lets the writer go on.
 * Where no lease can be had, the memory is detached at resume (no lazy loading for that file).
 * A resumed incremental chain maps pages from every member (the parents too): each member is
 * leased the same way, and a break of any of them detaches the memory from every file of the
 * chain. A member without a lease has its pages detached at resume; without a lease on the top
 * file, all of them are. The files below private file mappings (program text, libraries) are
 * not snapshot files and are never leased.
 * docs/snapshot-format.md ("Resuming") states the rule; docs/decisions.md (6) the measurements.
 */
#ifndef KM_SNAPSHOT_LEASE_H
#define KM_SNAPSHOT_LEASE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "km_error.h"

struct km_guest;
struct km_snapshot;

/* Sent by the kernel when the lease is broken; km's vCPU kick is SIGRTMIN + 3. */
#define KM_SIG_LEASE (SIGRTMIN + 4)

/* Takes a read lease on g->mm.snapshot_fd, its break signal aimed at the calling thread (the one
 * that will run vCPU 0), then checks the file still holds `need` bytes (the end of the last saved
 * segment). Returns 1 with the lease, 0 when none can be had (the file is open for writing
 * somewhere, km is neither its owner nor has CAP_LEASE, the filesystem refuses): the caller must
 * then detach the memory before the guest runs. -1 with *err if the file shrank. */
int km_snapshot_lease_take(struct km_guest *g, uint64_t need, const char *name, km_err_t **err);

/* Keeps every member below the top of s's chain open and, when the top is leased, leases each
 * (as km_snapshot_lease_take, the file checked to still hold its saved segments). Call after
 * km_snapshot_lease_take and before mapping memory. 0, or -1 with *err (a member shrank). */
int km_snapshot_lease_chain(struct km_guest *g, const struct km_snapshot *s, const char *name, km_err_t **err);

/* Detaches the memory from the members km_snapshot_lease_chain could not lease and closes them;
 * the leased ones stay. Same thread rule as km_snapshot_detach. 0, or -1 with *err. */
int km_snapshot_detach_unleased(struct km_guest *g, km_err_t **err);

/* True when the lease was broken and the memory is not detached yet. An atomic load: called
 * before every entry into the guest. */
bool km_snapshot_lease_broken(struct km_guest *g);

/* Replaces every private host mapping of the snapshot file and of every member of its chain
 * inside guest memory with anonymous memory holding the same bytes (the file's data read with
 * pread, pages the guest already wrote copied), marks the VMAs anonymous, releases the leases
 * (if km's: g->snap_leased) and closes the files. Must run on the thread that changes the
 * address space, with no vCPU in the guest. No-op without a file. */
int km_snapshot_detach(struct km_guest *g, km_err_t **err);

#endif
