/* Time syscalls: clocks and sleeps, on the host's clocks. */
#include <errno.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/times.h>
#include <time.h>
#include <unistd.h>

#include "km_guest.h"
#include "km_syscall.h"
#include "km_sys_util.h"
#include "km_time.h"
#include "km_vdso.h"

#define MM(v) (&(v)->g->mm)

KM_SYSCALL(clock_gettime)
{
	/* Into km's memory first: the vDSO would write the guest's page from km's own code, where
	 * a page the host cannot provide (a file past its end) would be a host SIGBUS. */
	struct timespec ts;
	if (!km_vdso_clock(v->g, (clockid_t)a[0], &ts) && clock_gettime((clockid_t)a[0], &ts) < 0)
		return -errno;
	return km_copy_to_guest(MM(v), a[1], &ts, sizeof(ts));
}

KM_SYSCALL(clock_getres)
{
	struct timespec ts;
	if (clock_getres((clockid_t)a[0], &ts) < 0)
		return -errno;
	if (a[1] != 0 && km_copy_to_guest(MM(v), a[1], &ts, sizeof(ts)) < 0)
		return -EFAULT;
	return 0;
}

KM_SYSCALL(gettimeofday)
{
	struct timespec ts;
	if (!km_vdso_clock(v->g, CLOCK_REALTIME, &ts))
		clock_gettime(CLOCK_REALTIME, &ts);
	struct timeval tv = {ts.tv_sec, ts.tv_nsec / 1000};
	struct timezone tz = {0, 0};
	if (a[0] != 0 && km_copy_to_guest(MM(v), a[0], &tv, sizeof(tv)) < 0)
		return -EFAULT;
	if (a[1] != 0 && km_copy_to_guest(MM(v), a[1], &tz, sizeof(tz)) < 0)
		return -EFAULT;
	return 0;
}

KM_SYSCALL(time)
{
	struct timespec ts;
	if (!km_vdso_clock(v->g, CLOCK_REALTIME, &ts))
		clock_gettime(CLOCK_REALTIME, &ts);
	time_t t = ts.tv_sec;
	if (a[0] != 0 && km_copy_to_guest(MM(v), a[0], &t, sizeof(t)) < 0)
		return -EFAULT;
	return t;
}

static struct timespec ts_add(struct timespec a, struct timespec b)
{
	a.tv_sec += b.tv_sec;
	a.tv_nsec += b.tv_nsec;
	if (a.tv_nsec >= 1000000000) {
		a.tv_sec++;
		a.tv_nsec -= 1000000000;
	}
	return a;
}

static struct timespec ts_until(struct timespec deadline, struct timespec now)
{
	struct timespec r = {deadline.tv_sec - now.tv_sec, deadline.tv_nsec - now.tv_nsec};
	if (r.tv_nsec < 0) {
		r.tv_sec--;
		r.tv_nsec += 1000000000;
	}
	return r.tv_sec < 0 ? (struct timespec){0, 0} : r;
}

/* The deadline of a relative sleep: a fresh one, or the one a kick interrupted when the program
 * makes the same call again (restarted by km after a snapshot). */
static struct timespec sleep_deadline(km_vcpu_t *v, clockid_t clk, uint64_t req_gva, struct timespec req)
{
	struct timespec now;
	clock_gettime(clk, &now);
	bool same = v->sleep_restart.valid && v->sleep_restart.rip == v->user.rip &&
		    v->sleep_restart.req_gva == req_gva && v->sleep_restart.clk == clk;
	v->sleep_restart.valid = false;
	return same ? v->sleep_restart.deadline : ts_add(now, req);
}

/* Sleeps with the request copied in first, so a bad pointer fails before any sleeping. Relative
 * sleeps run to an absolute deadline, which survives km restarting the call. */
static long do_sleep(km_vcpu_t *v, clockid_t clk, int flags, uint64_t req_gva, uint64_t rem_gva)
{
	struct timespec req, rem;
	if (km_copy_from_guest(MM(v), &req, req_gva, sizeof(req)) < 0)
		return -EFAULT;
	if (req.tv_nsec < 0 || req.tv_nsec >= 1000000000 || req.tv_sec < 0)
		return -EINVAL;
	struct timespec deadline = req;
	/* A guest deadline on a monotonic clock is on the guest's clock (km_vdso.h). */
	if ((flags & TIMER_ABSTIME) && (clk == CLOCK_MONOTONIC || clk == CLOCK_BOOTTIME))
		deadline = km_vdso_mono_to_host(v->g, req);
	if (!(flags & TIMER_ABSTIME))
		deadline = sleep_deadline(v, clk, req_gva, req);
	int rc = clock_nanosleep(clk, TIMER_ABSTIME, &deadline, NULL);
	if (rc == EINTR && !(flags & TIMER_ABSTIME)) {
		v->sleep_restart.valid = true;
		v->sleep_restart.rip = v->user.rip;
		v->sleep_restart.req_gva = req_gva;
		v->sleep_restart.clk = clk;
		v->sleep_restart.deadline = deadline;
		struct timespec now;
		clock_gettime(clk, &now);
		rem = ts_until(deadline, now);
		if (rem_gva != 0 && km_copy_to_guest(MM(v), rem_gva, &rem, sizeof(rem)) < 0)
			return -EFAULT;
	}
	return -rc;
}

KM_SYSCALL(nanosleep)
{
	return do_sleep(v, CLOCK_MONOTONIC, 0, a[0], a[1]);
}

KM_SYSCALL(clock_nanosleep)
{
	if (a[1] & ~(uint64_t)TIMER_ABSTIME)
		return -EINVAL;
	return do_sleep(v, (clockid_t)a[0], (int)a[1], a[2], a[3]);
}

KM_SYSCALL(times)
{
	struct tms t;
	clock_t rc = times(&t);
	if (a[0] != 0 && km_copy_to_guest(MM(v), a[0], &t, sizeof(t)) < 0)
		return -EFAULT;
	return rc;
}

/* timerfd: the host's own (reads, poll and epoll need nothing of km); km checks the fd and
 * copies the itimerspecs, in Linux's order: the new value is read before the fd is looked at. */
KM_SYSCALL(timerfd_create)
{
	return km_fd_new(v->g, km_host_ret(syscall(SYS_timerfd_create, (int)a[0], (int)a[1])));
}

KM_SYSCALL(timerfd_settime)
{
	struct itimerspec nv, ov;
	if (km_copy_from_guest(MM(v), &nv, a[2], sizeof(nv)) < 0)
		return -EFAULT;
	if (km_fd_check((int)a[0]) < 0)
		return -EBADF;
	long rc = km_host_ret(syscall(SYS_timerfd_settime, (int)a[0], (int)a[1], &nv, a[3] != 0 ? &ov : NULL));
	if (rc == 0 && a[3] != 0 && km_copy_to_guest(MM(v), a[3], &ov, sizeof(ov)) < 0)
		return -EFAULT;
	return rc;
}

KM_SYSCALL(timerfd_gettime)
{
	struct itimerspec cur;
	if (km_fd_check((int)a[0]) < 0)
		return -EBADF;
	long rc = km_host_ret(syscall(SYS_timerfd_gettime, (int)a[0], &cur));
	if (rc == 0 && km_copy_to_guest(MM(v), a[1], &cur, sizeof(cur)) < 0)
		return -EFAULT;
	return rc;
}

const km_sys_def_t km_sys_time_defs[] = {
    {SYS_clock_gettime, "clock_gettime", sys_clock_gettime, "dp"},
    {SYS_clock_getres, "clock_getres", sys_clock_getres, "dp"},
    {SYS_gettimeofday, "gettimeofday", sys_gettimeofday, "pp"},
    {SYS_time, "time", sys_time, "p"},
    {SYS_nanosleep, "nanosleep", sys_nanosleep, "pp"},
    {SYS_clock_nanosleep, "clock_nanosleep", sys_clock_nanosleep, "ddpp"},
    {SYS_times, "times", sys_times, "p"},
    {SYS_timerfd_create, "timerfd_create", sys_timerfd_create, "dx"},
    {SYS_timerfd_settime, "timerfd_settime", sys_timerfd_settime, "fxpp"},
    {SYS_timerfd_gettime, "timerfd_gettime", sys_timerfd_gettime, "fp"},
    {0, NULL, NULL, NULL},
};
