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
	/* The dying thread only: the others run on until they see the guest has ended. */
	km_snapshot_req_t req = {.path = g->opts.coredump_path, .reason = KM_REASON_CORE, .keep_running = true,
				 .only = v};
	g->term_signal = sig;
	v->state.flags = 0;
	km_mm_rdlock(&g->mm);
	int rc = km_vcpu_capture(v, user, &err) < 0 ? -1 : km_snapshot_write(g, &req, &res, &err);
	km_mm_rdunlock(&g->mm);
	if (rc < 0) {
		fprintf(stderr, "km: no core file: %s\n", err->msg);
		km_err_free(&err);
		return;
	}
	g->core_written = true;
}
