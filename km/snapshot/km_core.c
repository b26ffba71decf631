/* Core files for programs that die of a signal: the snapshot writer with reason KM_REASON_CORE. */
#include <stdio.h>
#include <sys/resource.h>

#include "km_guest.h"
#include "km_snapshot.h"

void km_core_dump(km_vcpu_t *v, const struct kvm_regs *user, int sig)
{
	km_guest_t *g = v->g;
	struct rlimit rl;
	/* Like the kernel: no core when RLIMIT_CORE is 0, unless the user asked for one by name. */
	if (!g->opts.coredump_forced && getrlimit(RLIMIT_CORE, &rl) == 0 && rl.rlim_cur == 0)
		return;
	km_err_t *err = NULL;
	km_snapshot_result_t res;
	km_snapshot_req_t req = {.path = g->opts.coredump_path, .reason = KM_REASON_CORE, .keep_running = true};
	g->term_signal = sig;
	v->state.flags = 0;
	if (km_vcpu_capture(v, user, &err) < 0 || km_snapshot_write(g, &req, &res, &err) < 0) {
		fprintf(stderr, "km: no core file: %s\n", err->msg);
		km_err_free(&err);
		return;
	}
	g->core_written = true;
}
