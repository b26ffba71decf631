/*
 * KVM's dirty log for memory slots: which guest-physical pages the guest wrote since the last
 * fetch. Works the same on hardware KVM and on PVM (shadow paging): KVM write-protects the slot's
 * pages and records the first write to each after every fetch.
 */
#ifndef KM_DIRTYLOG_H
#define KM_DIRTYLOG_H

#include <stdbool.h>
#include <stdint.h>

#include "km_machine.h"

/* Registers slot `slot` again as km_machine_set_memory did, with dirty logging on or off. Turning
 * it on write-protects every page of the slot and starts an empty log. Returns 0 or -errno. */
int km_dirtylog_set(km_machine_t *m, int slot, uint64_t gpa, uint64_t size, void *host, bool on);

/* Copies slot `slot`'s log into bitmap (bit p: page p of the slot; room for the slot's pages
 * rounded up to 64) and starts a new one (re-protects those pages). Returns 0 or -errno. */
int km_dirtylog_fetch(km_machine_t *m, int slot, uint64_t *bitmap);

#endif
