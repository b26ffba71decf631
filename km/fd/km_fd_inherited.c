/*
 * Two kinds the core itself records (km_fdtab.h): "inherited", what km's caller gave the program,
 * which the resuming km's own fd of the same number replaces; and "unsupported", a file no kind
 * could save, whose record is the reason its resume fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "km_fdtab.h"
#include "km_sys_util.h"

static bool never(struct km_guest *g, const km_fdprobe_t *p)
{
	(void)g;
	(void)p;
	return false; /* the core decides these two itself */
}

static int inherited_restore(km_fdrest_t *rs, const km_fdrec_t *r, km_err_t **err)
{
	(void)rs;
	km_rec_t rec = {.p = r->data, .len = r->len};
	uint32_t src = km_rec_get_u32(&rec);
	if (!km_rec_done(&rec) || src >= KM_FD_RESERVED_BASE)
		return km_err_set(err, 0, "corrupt record");
	int fd = fcntl((int)src, F_DUPFD_CLOEXEC, KM_FD_RESERVED_BASE);
	if (fd < 0)
		return km_err_set(err, 0, "it was the program's fd %u from whoever started km, and the resuming km "
					  "was given no fd %u", src, src);
	return fd;
}

static void inherited_describe(const km_fdrec_t *r, km_buf_t *out)
{
	km_rec_t rec = {.p = r->data, .len = r->len};
	uint32_t src = km_rec_get_u32(&rec);
	if (km_rec_done(&rec))
		km_buf_printf(out, "from the caller's fd %u (the resuming km's own)", src);
	else
		km_buf_printf(out, "(corrupt record)");
}

const km_fdkind_t km_fdkind_inherited = {
    .kind = KM_FDK_INHERITED,
    .name = "inherited",
    .match = never,
    .restore = inherited_restore,
    .describe = inherited_describe,
};

static int unsupported_restore(km_fdrest_t *rs, const km_fdrec_t *r, km_err_t **err)
{
	(void)rs;
	km_rec_t rec = {.p = r->data, .len = r->len};
	const char *why = km_rec_get_str(&rec, 8192);
	return km_err_set(err, 0, "%s", km_rec_done(&rec) ? why : "corrupt record");
}

static void unsupported_describe(const km_fdrec_t *r, km_buf_t *out)
{
	km_rec_t rec = {.p = r->data, .len = r->len};
	const char *why = km_rec_get_str(&rec, 8192);
	km_buf_printf(out, "%s", km_rec_done(&rec) ? why : "(corrupt record)");
}

const km_fdkind_t km_fdkind_unsupported = {
    .kind = KM_FDK_UNSUPPORTED,
    .name = "unsupported",
    .match = never,
    .restore = unsupported_restore,
    .describe = unsupported_describe,
};
