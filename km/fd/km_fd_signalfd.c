/* Placeholder: the signalfd kind(s) of the fd table (km_fdtab.h); the owner of this file replaces it. */
#include "km_fdtab.h"

static bool no_match(struct km_guest *g, const km_fdprobe_t *p)
{
	(void)g;
	(void)p;
	return false;
}

static int not_yet(km_fdrest_t *rs, const km_fdrec_t *r, km_err_t **err)
{
	(void)rs;
	(void)r;
	return km_err_set(err, 0, "not supported yet");
}

static void nothing(const km_fdrec_t *r, km_buf_t *out)
{
	(void)r;
	(void)out;
}

const km_fdkind_t km_fdkind_signalfd = {.kind = KM_FDK_SIGNALFD, .name = "signalfd", .match = no_match, .restore = not_yet, .describe = nothing};
