/*
 * The guest's timers: POSIX timers (timer_create...) and interval timers (setitimer, alarm) run
 * on the host, whose signals km's forwarding thread takes for the guest (km_signal_host.c). A
 * POSIX timer's id is km's (an index), not the host's, so that a resumed snapshot re-creates
 * its timers under the ids the program holds. Snapshots record what is armed and how long is
 * left (NT_KM_TIMERS).
 */
#ifndef KM_TIMERS_H
#define KM_TIMERS_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "km_coredump.h"
#include "km_guest.h"

#ifndef SIGEV_THREAD_ID
#define SIGEV_THREAD_ID 4
#endif

/* struct sigevent as the kernel reads it (64 bytes): value, signo, notify, then the thread id. */
typedef struct km_sigevent {
	uint64_t value;
	int32_t signo;
	int32_t notify;
	int32_t tid;
	int32_t pad[11];
} km_sigevent_t;

/* timer_create: ev NULL means SIGEV_SIGNAL with SIGALRM and the timer's id as value. Returns 0
 * with *id, or -errno (EINVAL for a signal km keeps, or a thread not the guest's; EAGAIN past
 * KM_MAX_TIMERS). */
long km_timer_create(km_vcpu_t *v, clockid_t clock, const km_sigevent_t *ev, int *id);

/* The host timer behind the guest's id, or -EINVAL. */
int km_timer_host_id(km_guest_t *g, int id);

/* timer_delete. */
long km_timer_delete(km_guest_t *g, int id);

/* A host SI_TIMER siginfo becomes the guest's: its timer id, and the guest thread it is for (0:
 * the process). Returns false if it is no timer of the guest's (a stale one: dropped). */
bool km_timer_translate(km_guest_t *g, siginfo_t *info, pid_t *tid);

/* NT_KM_TIMERS for a snapshot: a malloc'd note in *out. Returns its size, 0 on failure. */
size_t km_timers_save(km_guest_t *g, void **out);

/* Keeps a snapshot's NT_KM_TIMERS (len bytes) to arm when the guest starts (the forwarding thread
 * must exist for SIGEV_THREAD_ID timers). Checked: returns -1 if it is malformed. */
int km_timers_stash(km_guest_t *g, const void *note, size_t len);

/* Arms what km_timers_stash kept. */
void km_timers_resume(km_guest_t *g);

#endif
