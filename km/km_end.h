/*
 * How km ends once its guest has: the line saying how the program died, km's exit status, and
 * dying of the program's signal. Shared by main and by a forked child (km_fork.c), which never
 * returns into main's frames but must end exactly as a km would.
 */
#ifndef KM_END_H
#define KM_END_H

#include <stdbool.h>

#include "km_error.h"
#include "km_guest.h"

/* The program's name in km's messages (as the user gave it); main sets it before the guest runs. */
void km_end_set_prog(const char *prog);

/* Which km this is, before its guest runs: the one the user started (descendant false: its pid
 * is recorded), or one an exec'd descendant became (descendant true, from the exec state). A km
 * forked from the recorded one (another pid) is a descendant too. */
void km_end_set_origin(bool descendant);

/* Whether this km is a descendant of the one the user started (see km_end_set_origin). */
bool km_end_is_descendant(void);

/* Tells how the guest ended, as a shell would (one line for a fatal signal other than SIGPIPE),
 * and returns km's exit status: the guest's status, or 128 + its signal. A descendant prints no
 * line: natively the dying process says nothing, and its parent program (a shell) reports the
 * death as it sees fit, on its own stderr. */
int km_end_report(const km_guest_t *g);

/* The guest died of sig: km dies of it too, without a host core (SIGSTOP and SIGSYS excepted:
 * the caller then exits with 128 + sig). Returns only in those cases. */
void km_end_die_like_the_guest(int sig);

/* The end of a forked child's km, after its guest ran (rc 0) or km failed (rc -1, err): prints
 * the report or the error, stops the forwarding thread, releases the guest and exits or dies as
 * main would. */
_Noreturn void km_end_child(km_guest_t *g, int rc, km_err_t *err);

#endif
