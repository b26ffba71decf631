/*
 * Guest signal dispositions and default actions. Until guest handlers are delivered (signals
 * issue), a signal the guest sends itself takes its default action, as Linux would without a
 * handler; dispositions and masks are kept exactly so that snapshots and the signals work can
 * build on them.
 */
#ifndef KM_SIGNAL_H
#define KM_SIGNAL_H

#include <stdbool.h>

#include "km_vcpu.h"

/* What a signal does when nothing handles it. */
enum km_sig_default { KM_SIG_TERM, KM_SIG_CORE, KM_SIG_IGNORE, KM_SIG_STOP };
enum km_sig_default km_sig_default_action(int sig);

/* Delivers `sig` to the guest running on v: ignored signals vanish, others end the guest.
 * Returns true if the guest ended. */
bool km_signal_raise(km_vcpu_t *v, int sig);

#endif
