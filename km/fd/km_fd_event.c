/*
 * The eventfd and timerfd kinds of the fd table (km_fdtab.h). Their state is what the kernel
 * shows in /proc/self/fdinfo; a resume makes a new one and puts that state back.
 *
 * eventfd record: u64 count, u32 semaphore (EFD_SEMAPHORE: 0 or 1).
 * timerfd record: u32 clockid, u32 settime flags (TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET),
 *   u64 value (ns: the time left; for an absolute CLOCK_REALTIME(_ALARM) timer the CLOCK_REALTIME
 *   deadline instead; 0: disarmed), u64 interval (ns), u64 ticks (expirations not yet read).
 * The time a snapshot waits is not counted: a relative timer (and an absolute one on another
 * clock, whose readings mean nothing to the resuming host) goes on with the time it had left;
 * an absolute wall-clock timer keeps its wall-clock deadline (a program that asked to wake at
 * 12:00 wakes at 12:00, or at once if the pause went past it).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "km_fdinfo.h"
#include "km_fdtab.h"
#include "km_sigfd.h"
#include "km_time.h"

#define EVENTFD_MAX 0xfffffffffffffffeull
#define TIME_MAX_NS (1ull << 62) /* about 146 years: any timespec a program can set fits */
#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t) /* <linux/timerfd.h>, which clashes with glibc's */
#endif

/* Status flags an event fd may carry besides its access mode (O_APPEND: F_SETFL allows it). */
#define EV_FLAGS ((uint32_t)(O_NONBLOCK | O_APPEND))

static bool link_is(const km_fdprobe_t *p, const char *name)
{
	return strcmp(p->link, name) == 0;
}

/* The saved status flags, checked against the access mode `acc`, set on new fd (made
 * O_NONBLOCK, so that putting its state back never blocks). */
static int put_flags(int fd, uint32_t oflags, uint32_t acc, km_err_t **err)
{
	if ((oflags & O_ACCMODE) != acc || (oflags & ~(EV_FLAGS | O_ACCMODE)) != 0)
		return km_err_set(err, 0, "corrupt record: status flags %#x", oflags);
	if (fcntl(fd, F_SETFL, (int)(oflags & EV_FLAGS)) < 0)
		return km_err_set(err, errno, "F_SETFL");
	return 0;
}

/* --- eventfd -------------------------------------------------------------------------------- */

static bool eventfd_match(struct km_guest *g, const km_fdprobe_t *p)
{
	return link_is(p, "anon_inode:[eventfd]") && !km_sigfd_is(g, p->fd);
}

static int eventfd_save(km_fdsave_t *sv, const km_fdprobe_t *p, km_buf_t *rec, km_err_t **err)
{
	(void)sv;
	uint64_t count, sem;
	if (!km_fdinfo_u64(p->fdinfo, "eventfd-count", 16, &count))
		return km_err_set(err, 0, "no eventfd-count in its fdinfo");
	if (!km_fdinfo_u64(p->fdinfo, "eventfd-semaphore", 10, &sem))
		return km_err_set(err, 0, "this kernel does not show whether it is EFD_SEMAPHORE (Linux 6.6 does)");
	km_rec_put_u64(rec, count);
	km_rec_put_u32(rec, sem != 0);
	return 0;
}

static bool ev_read(const km_fdrec_t *r, uint64_t *count, uint32_t *sem)
{
	km_rec_t rec = {.p = r->data, .len = r->len};
	*count = km_rec_get_u64(&rec);
	*sem = km_rec_get_u32(&rec);
	return km_rec_done(&rec) && *count <= EVENTFD_MAX && *sem <= 1;
}

static int eventfd_restore(km_fdrest_t *rs, const km_fdrec_t *r, km_err_t **err)
{
	(void)rs;
	uint64_t count;
	uint32_t sem;
	if (!ev_read(r, &count, &sem))
		return km_err_set(err, 0, "corrupt record");
	/* eventfd2 takes an int's worth: a larger count is written in. */
	int fd = (int)syscall(SYS_eventfd2, 0, (sem ? EFD_SEMAPHORE : 0) | EFD_NONBLOCK | EFD_CLOEXEC);
	if (fd < 0)
		return km_err_set(err, errno, "eventfd");
	int rc = 0;
	if (count > 0 && write(fd, &count, sizeof(count)) != sizeof(count))
		rc = km_err_set(err, errno, "setting its count");
	if (rc < 0 || put_flags(fd, r->oflags, O_RDWR, err) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void eventfd_describe(const km_fdrec_t *r, km_buf_t *out)
{
	uint64_t count;
	uint32_t sem;
	if (ev_read(r, &count, &sem))
		km_buf_printf(out, "count=%" PRIu64 "%s", count, sem ? " semaphore" : "");
	else
		km_buf_printf(out, "(corrupt record)");
}

const km_fdkind_t km_fdkind_eventfd = {
    .kind = KM_FDK_EVENTFD,
    .name = "eventfd",
    .match = eventfd_match,
    .save = eventfd_save,
    .restore = eventfd_restore,
    .describe = eventfd_describe,
};

/* --- timerfd -------------------------------------------------------------------------------- */

typedef struct tfd {
	uint32_t clock, flags;
	uint64_t value, interval, ticks;
} tfd_t;

static bool clock_ok(uint32_t c)
{
	return c == CLOCK_REALTIME || c == CLOCK_MONOTONIC || c == CLOCK_BOOTTIME || c == CLOCK_REALTIME_ALARM ||
	       c == CLOCK_BOOTTIME_ALARM;
}

static bool wall_clock(uint32_t c)
{
	return c == CLOCK_REALTIME || c == CLOCK_REALTIME_ALARM;
}

/* "(sec, nsec)" of field key, in ns. */
static bool info_time(const char *info, const char *key, uint64_t *ns)
{
	const char *s = km_fdinfo_field(info, key);
	unsigned long long sec, nsec;
	if (s == NULL || sscanf(s, "(%llu, %llu)", &sec, &nsec) != 2 || nsec >= KM_NS_PER_SEC ||
	    sec >= TIME_MAX_NS / KM_NS_PER_SEC)
		return false;
	*ns = sec * KM_NS_PER_SEC + nsec;
	return true;
}

static bool timerfd_match(struct km_guest *g, const km_fdprobe_t *p)
{
	(void)g;
	return link_is(p, "anon_inode:[timerfd]");
}

static int timerfd_save(km_fdsave_t *sv, const km_fdprobe_t *p, km_buf_t *rec, km_err_t **err)
{
	(void)sv;
	tfd_t t;
	uint64_t clock, flags;
	if (!km_fdinfo_u64(p->fdinfo, "clockid", 10, &clock) || !km_fdinfo_u64(p->fdinfo, "ticks", 10, &t.ticks) ||
	    !km_fdinfo_u64(p->fdinfo, "settime flags", 8, &flags) || !info_time(p->fdinfo, "it_value", &t.value) ||
	    !info_time(p->fdinfo, "it_interval", &t.interval))
		return km_err_set(err, 0, "its fdinfo is not what km reads");
	if ((flags & TFD_TIMER_ABSTIME) && wall_clock((uint32_t)clock) && t.value != 0) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		t.value += km_ts_ns(now);
	}
	km_rec_put_u32(rec, (uint32_t)clock);
	km_rec_put_u32(rec, (uint32_t)flags);
	km_rec_put_u64(rec, t.value);
	km_rec_put_u64(rec, t.interval);
	km_rec_put_u64(rec, t.ticks);
	return 0;
}

static bool timerfd_read(const km_fdrec_t *r, tfd_t *t)
{
	km_rec_t rec = {.p = r->data, .len = r->len};
	t->clock = km_rec_get_u32(&rec);
	t->flags = km_rec_get_u32(&rec);
	t->value = km_rec_get_u64(&rec);
	t->interval = km_rec_get_u64(&rec);
	t->ticks = km_rec_get_u64(&rec);
	if (!km_rec_done(&rec) || !clock_ok(t->clock) || t->interval >= TIME_MAX_NS || t->value >= TIME_MAX_NS ||
	    (t->flags & ~(uint32_t)(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET)) != 0)
		return false;
	/* the kernel's rule: cancel-on-set only for an absolute wall-clock timer */
	return !(t->flags & TFD_TIMER_CANCEL_ON_SET) || ((t->flags & TFD_TIMER_ABSTIME) && wall_clock(t->clock));
}

static int arm(int fd, const tfd_t *t, km_err_t **err)
{
	bool abs = (t->flags & TFD_TIMER_ABSTIME) && wall_clock(t->clock) && t->value != 0;
	struct itimerspec its = {.it_value = km_ns_ts(t->value), .it_interval = km_ns_ts(t->interval)};
	if (syscall(SYS_timerfd_settime, fd, abs ? (int)t->flags : 0, &its, NULL) < 0)
		return km_err_set(err, errno, "timerfd_settime");
	/* Expirations not read yet; without the kernel's CONFIG_CHECKPOINT_RESTORE they are lost. */
	if (t->ticks > 0 && ioctl(fd, TFD_IOC_SET_TICKS, &t->ticks) < 0 && errno != ENOTTY)
		return km_err_set(err, errno, "putting back %" PRIu64 " expirations", t->ticks);
	return 0;
}

static int timerfd_restore(km_fdrest_t *rs, const km_fdrec_t *r, km_err_t **err)
{
	(void)rs;
	tfd_t t;
	if (!timerfd_read(r, &t))
		return km_err_set(err, 0, "corrupt record");
	int fd = (int)syscall(SYS_timerfd_create, (int)t.clock, TFD_NONBLOCK | TFD_CLOEXEC);
	if (fd < 0)
		return km_err_set(err, errno, "timerfd_create (clock %u)", t.clock);
	if (arm(fd, &t, err) < 0 || put_flags(fd, r->oflags, O_RDWR, err) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static const char *clock_name(uint32_t c)
{
	switch (c) {
	case CLOCK_REALTIME:
		return "realtime";
	case CLOCK_MONOTONIC:
		return "monotonic";
	case CLOCK_BOOTTIME:
		return "boottime";
	case CLOCK_REALTIME_ALARM:
		return "realtime-alarm";
	default:
		return "boottime-alarm";
	}
}

static void put_secs(km_buf_t *out, const char *what, uint64_t ns)
{
	char num[32];
	snprintf(num, sizeof(num), "%" PRIu64 ".%09" PRIu64, ns / (uint64_t)KM_NS_PER_SEC, ns % (uint64_t)KM_NS_PER_SEC);
	size_t n = strlen(num);
	while (num[n - 1] == '0')
		num[--n] = '\0';
	if (num[n - 1] == '.')
		num[--n] = '\0';
	km_buf_printf(out, " %s=%ss", what, num);
}

static void timerfd_describe(const km_fdrec_t *r, km_buf_t *out)
{
	tfd_t t;
	if (!timerfd_read(r, &t)) {
		km_buf_printf(out, "(corrupt record)");
		return;
	}
	km_buf_printf(out, "%s", clock_name(t.clock));
	bool abs = (t.flags & TFD_TIMER_ABSTIME) && wall_clock(t.clock);
	if (t.value == 0)
		km_buf_printf(out, " disarmed");
	else
		put_secs(out, abs ? "deadline" : "value", t.value);
	if (t.interval != 0)
		put_secs(out, "interval", t.interval);
	if (t.ticks != 0)
		km_buf_printf(out, " ticks=%" PRIu64, t.ticks);
	if (t.flags & TFD_TIMER_ABSTIME)
		km_buf_printf(out, " abstime");
	if (t.flags & TFD_TIMER_CANCEL_ON_SET)
		km_buf_printf(out, " cancel-on-set");
}

const km_fdkind_t km_fdkind_timerfd = {
    .kind = KM_FDK_TIMERFD,
    .name = "timerfd",
    .match = timerfd_match,
    .save = timerfd_save,
    .restore = timerfd_restore,
    .describe = timerfd_describe,
};
