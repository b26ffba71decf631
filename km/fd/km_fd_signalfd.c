/*
 * The signalfd kind of the fd table (km_fdtab.h): km's own signalfds (km_sigfd.h), each an
 * eventfd km keeps a record of. The record is the mask; the eventfd's counter is km's (it only
 * says "some signal of the mask is pending") and is set again from the pending signals at resume.
 *
 * Record: u64 mask (signal n is bit n-1).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "km_fdtab.h"
#include "km_sigfd.h"

static bool signalfd_match(struct km_guest *g, const km_fdprobe_t *p)
{
	uint64_t mask;
	return km_sigfd_mask(g, p->fd, &mask);
}

static int signalfd_save(km_fdsave_t *sv, const km_fdprobe_t *p, km_buf_t *rec, km_err_t **err)
{
	uint64_t mask;
	if (!km_sigfd_mask(km_fdsave_guest(sv), p->fd, &mask))
		return km_err_set(err, 0, "it stopped being a signalfd while saved");
	km_rec_put_u64(rec, mask);
	return 0;
}

static int signalfd_restore(km_fdrest_t *rs, const km_fdrec_t *r, km_err_t **err)
{
	km_rec_t rec = {.p = r->data, .len = r->len};
	uint64_t mask = km_rec_get_u64(&rec);
	if (!km_rec_done(&rec) || (r->oflags & ~(uint32_t)O_NONBLOCK) != O_RDWR)
		return km_err_set(err, 0, "corrupt record");
	int fd = (int)syscall(SYS_eventfd2, 0, ((r->oflags & O_NONBLOCK) ? EFD_NONBLOCK : 0) | EFD_CLOEXEC);
	if (fd < 0)
		return km_err_set(err, errno, "eventfd");
	int rc = km_sigfd_adopt(km_fdrest_guest(rs), fd, mask);
	if (rc < 0) {
		close(fd);
		return km_err_set(err, -rc, "registering it as a signalfd");
	}
	return fd;
}

static void signalfd_describe(const km_fdrec_t *r, km_buf_t *out)
{
	km_rec_t rec = {.p = r->data, .len = r->len};
	uint64_t mask = km_rec_get_u64(&rec);
	if (km_rec_done(&rec))
		km_buf_printf(out, "mask=%#lx", (unsigned long)mask);
	else
		km_buf_printf(out, "(corrupt record)");
}

const km_fdkind_t km_fdkind_signalfd = {
    .kind = KM_FDK_SIGNALFD,
    .name = "signalfd",
    .match = signalfd_match,
    .save = signalfd_save,
    .restore = signalfd_restore,
    .describe = signalfd_describe,
};
