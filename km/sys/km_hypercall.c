/* Hypercalls from the program to km: see km_hypercall.h. */
#include "km_hypercall.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "km_dirty_probe.h"
#include "km_guest.h"
#include "km_snapshot.h"
#include "km_sys_util.h"

#define LABEL_MAX 256

static void set_hc_ret(km_vcpu_t *v, uint64_t args_gva, long ret)
{
	uint64_t r = (uint64_t)ret;
	km_copy_to_guest(&v->g->mm, args_gva + offsetof(km_hc_args_t, hc_ret), &r, sizeof(r));
}

/* HC_snapshot: the file records the program as it will be when the call returns in a resumed
 * run (rax and hc_ret KM_SNAPSHOT_RESUMED); this run gets TAKEN, an error, or ends. */
static long hc_snapshot(km_vcpu_t *v, uint64_t args_gva, const km_hc_args_t *args)
{
	km_guest_t *g = v->g;
	char label[LABEL_MAX], path[KM_PATH_MAX];
	int rc;
	if (args->arg2 & ~KM_SNAPSHOT_KEEP_RUNNING)
		return -EINVAL;
	if (args->arg1 != 0 && (rc = km_copy_str(&g->mm, args->arg1, label, sizeof(label))) < 0)
		return rc;
	if (args->arg3 != 0 && (rc = km_copy_str(&g->mm, args->arg3, path, sizeof(path))) < 0)
		return rc;
	km_snapshot_req_t req = {
	    .path = args->arg3 != 0 ? path : g->opts.snapshot_path,
	    .label = args->arg1 != 0 ? label : NULL,
	    .reason = KM_REASON_SNAPSHOT,
	    .keep_running = (args->arg2 & KM_SNAPSHOT_KEEP_RUNNING) != 0,
	};
	set_hc_ret(v, args_gva, KM_SNAPSHOT_RESUMED);
	struct kvm_regs resumed = v->user;
	resumed.rax = KM_SNAPSHOT_RESUMED;
	km_err_t *err = NULL;
	km_snapshot_result_t res;
	if (km_snapshot_take(v, &resumed, 0, &req, &res, &err) < 0) {
		/* The program learns it failed; the user learns why. */
		fprintf(stderr, "km: snapshot failed: %s\n", err->msg);
		long ret = err->errnum > 0 ? -err->errnum : -EIO;
		km_err_free(&err);
		return ret;
	}
	return KM_SNAPSHOT_TAKEN;
}

long km_hcall_handle(km_vcpu_t *v, uint64_t nr, uint64_t args_gva)
{
	km_hc_args_t args;
	if (km_copy_from_guest(&v->g->mm, &args, args_gva, sizeof(args)) < 0)
		return -EFAULT;
	long ret;
	switch (nr) {
	case HC_snapshot:
		ret = hc_snapshot(v, args_gva, &args);
		break;
	case HC_dirty_probe:
		ret = km_dirty_probe(v, &args);
		break;
	default:
		ret = -ENOSYS;
	}
	if (!km_guest_ended(v->g))
		set_hc_ret(v, args_gva, ret);
	return ret;
}
