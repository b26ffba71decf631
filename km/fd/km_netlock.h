/*
 * The network lock: between a snapshot that ends the program and its resume, no socket owns the
 * program's established TCP connections (they were saved with TCP_REPAIR, km_tcp_repair.c), and
 * the host would answer any segment of theirs (data, a delayed ACK, a retransmission) with a
 * reset. km closes that window with an nf_tables table of its own, "km_lock_<pid>" in the inet
 * family: an input-hook chain with one rule per connection that drops its incoming segments, so
 * the peer only retransmits until the resumed socket answers. Spoken over NETLINK_NETFILTER by
 * km itself (no nft binary, no library). docs/snapshot-files.md, "Kind 8: inet".
 */
#ifndef KM_NETLOCK_H
#define KM_NETLOCK_H

#include <stdbool.h>
#include <stddef.h>

#include "km_inet.h"

#define KM_NETLOCK_PREFIX "km_lock_"

/* This km's lock table name, "km_lock_<pid>", into buf (KM_INET_LOCK_MAX bytes). */
void km_netlock_name(char *buf, size_t size);

/* True if a resume may delete table `name` (from a snapshot: hostile): the prefix, then 1 to 31
 * letters, digits or '_'. */
bool km_netlock_name_ok(const char *name);

/* Called before an established TCP connection of the save is read (repair mode): the first
 * call makes this save's lock. When km will end the program (km_fdsave_ends), it covers every
 * established connection of the (stopped) program whose peer is outside it, installed at once in
 * one transaction, so that nothing a peer sends from now on is acknowledged by the host and then
 * lost; the save's release takes it off again if the program goes on after all, and leaves it
 * for the resume otherwise. If it cannot be installed, the snapshot stands and one warning line
 * says so. */
int km_netlock_cover(km_fdsave_t *sv, km_err_t **err);

/* The name of the lock this save installed into buf (KM_INET_LOCK_MAX bytes), or "" if it
 * installed none (a keep-running snapshot; only connections within the program; a failure). */
void km_netlock_held(km_fdsave_t *sv, char *buf, size_t size);

/* Deletes lock table `name` (inet family) if it exists; a name km_netlock_name_ok refuses is
 * never sent. 0 (also when there is no such table), or -1 with *err. */
int km_netlock_remove(const char *name, km_err_t **err);

#endif
