/* Test-only view of the dirty tracker: see km_dirty_probe.h. */
#include "km_dirty_probe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "km_dirty.h"
#include "km_guest.h"
#include "km_stopall.h"

/* The changed pages' addresses, ascending (VMAs are in address order). Returns how many, or -1
 * (no memory). */
static long list_pages(km_mm_t *mm, uint64_t **holds, uint64_t **out)
{
	size_t n = 0, cap = 0;
	uint64_t *list = NULL;
	for (size_t i = 0; i < mm->nvmas; i++) {
		uint64_t pages = (mm->vmas[i].end - mm->vmas[i].start) / KM_PAGE_SIZE;
		for (uint64_t p = 0; p < pages; p++) {
			if (!(holds[i][p / 64] >> (p % 64) & 1))
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 256;
				uint64_t *l = realloc(list, cap * sizeof(*l));
				if (l == NULL) {
					free(list);
					return -1;
				}
				list = l;
			}
			list[n++] = mm->vmas[i].start + p * KM_PAGE_SIZE;
		}
	}
	*out = list;
	return (long)n;
}

/* With the other vCPUs stopped. *list gets the pages for COLLECT. */
static long probe_stopped(km_guest_t *g, uint64_t op, uint64_t **list)
{
	km_err_t *err = NULL;
	uint64_t **holds = NULL;
	long rc = 0;
	if (op == KM_DIRTY_PROBE_START) {
		rc = km_dirty_start(g, &err);
	} else if ((rc = km_dirty_collect(g, &holds, &err)) == 0) {
		km_mm_rdlock(&g->mm);
		if (op == KM_DIRTY_PROBE_COLLECT && (rc = list_pages(&g->mm, holds, list)) < 0)
			rc = -ENOMEM;
		km_mm_rdunlock(&g->mm);
		if (op == KM_DIRTY_PROBE_RETURN)
			km_dirty_return(g, holds);
		else
			km_dirty_free(holds, g->mm.nvmas);
	}
	if (err != NULL) {
		fprintf(stderr, "km: dirty probe: %s\n", err->msg);
		rc = err->errnum > 0 ? -err->errnum : -EIO;
		km_err_free(&err);
	}
	return rc;
}

long km_dirty_probe(km_vcpu_t *v, const km_hc_args_t *args)
{
	km_guest_t *g = v->g;
	if (!g->opts.test_dirty_probe)
		return -ENOSYS;
	if (args->arg1 > KM_DIRTY_PROBE_RETURN)
		return -EINVAL;
	if (km_stopall_begin(g, v, KM_STOP_CLEAN, &v->user, 0) < 0)
		return -EINTR;
	uint64_t *list = NULL;
	long n = probe_stopped(g, args->arg1, &list);
	km_stopall_end(g);
	if (n > 0 && args->arg1 == KM_DIRTY_PROBE_COLLECT) {
		size_t copy = (uint64_t)n < args->arg3 ? (size_t)n : args->arg3;
		if (km_copy_to_guest(&g->mm, args->arg2, list, copy * sizeof(*list)) < 0)
			n = -EFAULT;
	}
	free(list);
	return n;
}
