/* The guest's resource limits: see km_rlimit.h. */
#include "km_rlimit.h"

#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "km_sys_util.h"

bool km_rlimit_emulated(int res)
{
	switch (res) {
	case RLIMIT_DATA:	/* km's mallocs and mappings are data too */
	case RLIMIT_STACK:	/* the vCPU runs on km's main thread; the guest's stack is sized at start */
	case RLIMIT_NPROC:	/* km's own threads (management listener) */
	case RLIMIT_NOFILE:	/* km's fds live above the guest's (KM_FD_RESERVED_BASE) */
	case RLIMIT_MEMLOCK:	/* mlock is accepted without pinning anything */
	case RLIMIT_AS:		/* km's reservation of guest memory is larger than any guest limit */
	case RLIMIT_SIGPENDING: /* km's kicks are queued real-time signals */
		return true;
	default:
		return false;
	}
}

static bool capable_sys_resource(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &h, d) < 0)
		return false;
	return d[CAP_SYS_RESOURCE / 32].effective & (1u << (CAP_SYS_RESOURCE % 32));
}

/* What the guest inherited: the host's limit, and for RLIMIT_NOFILE never km's own fds. */
static void inherited(int res, struct rlimit *rl)
{
	if (getrlimit(res, rl) < 0)
		*rl = (struct rlimit){RLIM_INFINITY, RLIM_INFINITY};
	if (res == RLIMIT_NOFILE) {
		if (rl->rlim_cur > KM_FD_RESERVED_BASE)
			rl->rlim_cur = KM_FD_RESERVED_BASE;
		if (rl->rlim_max > KM_FD_RESERVED_BASE)
			rl->rlim_max = KM_FD_RESERVED_BASE;
	}
}

int km_rlimit_get(km_guest_t *g, int res, struct rlimit *rl)
{
	if (res < 0 || res >= RLIM_NLIMITS)
		return -EINVAL;
	if (res == RLIMIT_NOFILE && (g->nofile.rlim_cur != 0 || g->nofile.rlim_max != 0))
		*rl = g->nofile; /* kept apart: snapshots record it */
	else if (res != RLIMIT_NOFILE && (g->rlim_set & (1u << res)))
		*rl = g->rlim[res];
	else
		inherited(res, rl);
	return 0;
}

int km_rlimit_set(km_guest_t *g, int res, const struct rlimit *rl)
{
	if (res < 0 || res >= RLIM_NLIMITS || rl->rlim_cur > rl->rlim_max)
		return -EINVAL;
	if (!km_rlimit_emulated(res))
		return setrlimit(res, rl) < 0 ? -errno : 0;
	struct rlimit old;
	km_rlimit_get(g, res, &old);
	if (rl->rlim_max > old.rlim_max && !capable_sys_resource())
		return -EPERM;
	if (res == RLIMIT_NOFILE) {
		if (rl->rlim_max > KM_FD_RESERVED_BASE)
			return -EPERM; /* fds from KM_FD_RESERVED_BASE up are km's own */
		g->nofile = *rl;
		return 0;
	}
	g->rlim[res] = *rl;
	g->rlim_set |= 1u << res;
	if (res == RLIMIT_AS) /* enforced where km maps memory for the guest (km_mm.c) */
		g->mm.as_limit = rl->rlim_cur == RLIM_INFINITY ? UINT64_MAX : rl->rlim_cur;
	return 0;
}

static const char *const rlimit_names[16] = {
    "RLIMIT_CPU",   "RLIMIT_FSIZE",   "RLIMIT_DATA",   "RLIMIT_STACK",  "RLIMIT_CORE",       "RLIMIT_RSS",
    "RLIMIT_NPROC", "RLIMIT_NOFILE",  "RLIMIT_MEMLOCK", "RLIMIT_AS",    "RLIMIT_LOCKS",      "RLIMIT_SIGPENDING",
    "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
};

void km_rlimit_restore(km_guest_t *g, const uint64_t lim[16][2], const char *name)
{
	for (int res = 0; res < 16 && res < RLIM_NLIMITS; res++) {
		struct rlimit rl = {lim[res][0], lim[res][1]};
		if (res == RLIMIT_NOFILE || rl.rlim_cur > rl.rlim_max)
			continue; /* NOFILE: restored apart; an impossible pair: keep what this km has */
		if (km_rlimit_emulated(res)) {
			/* km's own record of a limit it enforces only for the guest: nothing to ask the host */
			g->rlim[res] = rl;
			g->rlim_set |= 1u << res;
			if (res == RLIMIT_AS)
				g->mm.as_limit = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : rl.rlim_cur;
			continue;
		}
		if (setrlimit(res, &rl) == 0)
			continue;
		struct rlimit now;
		if (getrlimit(res, &now) < 0)
			continue;
		rl.rlim_max = now.rlim_max;
		if (rl.rlim_cur > rl.rlim_max)
			rl.rlim_cur = rl.rlim_max;
		setrlimit(res, &rl);
		fprintf(stderr, "km: %s: %s stays at %llu (the snapshot had %llu): this km may not raise it\n", name,
			rlimit_names[res], (unsigned long long)now.rlim_max, (unsigned long long)lim[res][1]);
	}
}
