/* The guest's timers on the host's: see km_timers.h. */
#include "km_timers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include "km_signal.h"
#include "km_time.h"
#include "km_snapshot_lease.h" /* KM_SIG_LEASE */

/* Signals a timer may not carry: km's own, which its threads take. */
static bool signal_ok(int sig)
{
	return sig >= 1 && sig <= KM_NSIG && sig != KM_SIG_KICK && sig != KM_SIG_LEASE && sig != SIGKILL &&
	       sig != SIGSTOP;
}

/* Clocks a guest's timer may use (the CPU-time clocks of other processes and threads are not
 * the guest's to name). */
static bool clock_ok(clockid_t c)
{
	return c == CLOCK_REALTIME || c == CLOCK_MONOTONIC || c == CLOCK_BOOTTIME || c == CLOCK_REALTIME_ALARM ||
	       c == CLOCK_BOOTTIME_ALARM || c == CLOCK_PROCESS_CPUTIME_ID || c == CLOCK_TAI;
}

/* Creates the host timer for entry t (notify and signal already checked). */
static int host_create(km_guest_t *g, struct km_timer *t)
{
	km_sigevent_t ev;
	memset(&ev, 0, sizeof(ev));
	ev.value = t->value;
	ev.signo = t->signo;
	ev.notify = t->notify;
	if (t->notify == SIGEV_THREAD_ID)
		ev.tid = (int32_t)__atomic_load_n(&g->sigfwd_tid, __ATOMIC_ACQUIRE);
	int id;
	if (syscall(SYS_timer_create, (clockid_t)t->clock, &ev, &id) < 0)
		return -errno;
	t->host_id = id;
	return 0;
}

long km_timer_create(km_vcpu_t *v, clockid_t clock, const km_sigevent_t *ev, int *id)
{
	km_guest_t *g = v->g;
	if (!clock_ok(clock))
		return -EINVAL;
	struct km_timer t = {.used = true, .clock = clock, .notify = SIGEV_SIGNAL, .signo = SIGALRM};
	if (ev != NULL) {
		t.notify = ev->notify;
		t.signo = ev->signo;
		t.value = ev->value;
		if (t.notify != SIGEV_NONE && !signal_ok(t.signo))
			return -EINVAL;
		if (t.notify == SIGEV_THREAD_ID) {
			if (km_signal_guest_thread(g, ev->tid) == NULL)
				return -EINVAL;
			t.tid = ev->tid;
		} else if (t.notify != SIGEV_SIGNAL && t.notify != SIGEV_NONE) {
			return -EINVAL;
		}
	}
	km_signal_lock(g);
	int slot = -1;
	for (int i = 0; i < KM_MAX_TIMERS && slot < 0; i++)
		if (!g->timers[i].used)
			slot = i;
	if (ev == NULL)
		t.value = (uint64_t)slot;
	long rc = slot < 0 ? -EAGAIN : host_create(g, &t);
	if (rc == 0) {
		g->timers[slot] = t;
		*id = slot;
	}
	km_signal_unlock(g);
	return rc;
}

int km_timer_host_id(km_guest_t *g, int id)
{
	km_signal_lock(g);
	int h = id >= 0 && id < KM_MAX_TIMERS && g->timers[id].used ? g->timers[id].host_id : -EINVAL;
	km_signal_unlock(g);
	return h;
}

long km_timer_delete(km_guest_t *g, int id)
{
	km_signal_lock(g);
	long rc = -EINVAL;
	if (id >= 0 && id < KM_MAX_TIMERS && g->timers[id].used) {
		rc = syscall(SYS_timer_delete, g->timers[id].host_id) < 0 ? -errno : 0;
		g->timers[id].used = false;
	}
	km_signal_unlock(g);
	return rc;
}

bool km_timer_translate(km_guest_t *g, siginfo_t *info, pid_t *tid)
{
	*tid = 0;
	if (info->si_code != SI_TIMER)
		return true;
	bool found = false;
	km_signal_lock(g);
	for (int i = 0; i < KM_MAX_TIMERS && !found; i++) {
		struct km_timer *t = &g->timers[i];
		if (t->used && t->host_id == info->si_timerid) {
			info->si_timerid = i;
			*tid = t->notify == SIGEV_THREAD_ID ? t->tid : 0;
			found = true;
		}
	}
	km_signal_unlock(g);
	return found;
}

/* --- snapshots ---------------------------------------------------------------------------- */

static uint64_t tv_ns(struct timeval t)
{
	return (uint64_t)t.tv_sec * KM_NS_PER_SEC + (uint64_t)t.tv_usec * 1000ull;
}

size_t km_timers_save(km_guest_t *g, void **out)
{
	km_signal_lock(g);
	uint32_t n = 0;
	for (int i = 0; i < KM_MAX_TIMERS; i++)
		n += g->timers[i].used;
	size_t len = sizeof(km_nt_timers_t) + n * sizeof(km_nt_posix_timer_t);
	km_nt_timers_t *h = calloc(1, len);
	if (h == NULL) {
		km_signal_unlock(g);
		return 0;
	}
	for (int w = 0; w < 3; w++) {
		struct itimerval it;
		if (getitimer(w, &it) == 0)
			h->itimer[w] = (km_nt_itimer_t){tv_ns(it.it_value), tv_ns(it.it_interval)};
	}
	km_nt_posix_timer_t *p = (km_nt_posix_timer_t *)(h + 1);
	for (int i = 0; i < KM_MAX_TIMERS; i++) {
		struct km_timer *t = &g->timers[i];
		struct itimerspec cur;
		if (!t->used)
			continue;
		memset(&cur, 0, sizeof(cur));
		syscall(SYS_timer_gettime, t->host_id, &cur);
		*p++ = (km_nt_posix_timer_t){.id = (uint32_t)i, .clock = t->clock, .notify = t->notify,
					     .signo = t->signo, .value = t->value, .tid = (uint32_t)t->tid,
					     .time = {km_ts_ns(cur.it_value), km_ts_ns(cur.it_interval)}};
		h->nposix++;
	}
	km_signal_unlock(g);
	*out = h;
	return len;
}

#define MAX_NS (KM_NS_PER_SEC * 86400 * 365 * 100) /* a century: anything longer is corrupt */

static bool time_ok(const km_nt_itimer_t *t)
{
	return t->value_ns < MAX_NS && t->interval_ns < MAX_NS;
}

int km_timers_stash(km_guest_t *g, const void *note, size_t len)
{
	km_nt_timers_t h;
	if (len < sizeof(h))
		return -1;
	memcpy(&h, note, sizeof(h));
	if (h.nposix > KM_MAX_TIMERS || len != sizeof(h) + h.nposix * sizeof(km_nt_posix_timer_t))
		return -1;
	for (int w = 0; w < 3; w++)
		if (!time_ok(&h.itimer[w]))
			return -1;
	uint8_t seen[KM_MAX_TIMERS] = {0};
	for (uint32_t i = 0; i < h.nposix; i++) {
		km_nt_posix_timer_t p;
		memcpy(&p, (const uint8_t *)note + sizeof(h) + i * sizeof(p), sizeof(p));
		if (p.id >= KM_MAX_TIMERS || seen[p.id]++ || !clock_ok(p.clock) || !time_ok(&p.time))
			return -1;
		if (p.notify != SIGEV_SIGNAL && p.notify != SIGEV_NONE && p.notify != SIGEV_THREAD_ID)
			return -1;
		if (p.notify != SIGEV_NONE && !signal_ok(p.signo))
			return -1;
	}
	g->resume_timers = malloc(len);
	if (g->resume_timers == NULL)
		return -1;
	memcpy(g->resume_timers, note, len);
	g->resume_timers_len = len;
	return 0;
}

static struct timeval ns_tv(uint64_t ns)
{
	return (struct timeval){(time_t)(ns / KM_NS_PER_SEC), (suseconds_t)(ns % KM_NS_PER_SEC / 1000)};
}

void km_timers_resume(km_guest_t *g)
{
	if (g->resume_timers == NULL)
		return;
	km_nt_timers_t h;
	memcpy(&h, g->resume_timers, sizeof(h));
	for (int w = 0; w < 3; w++)
		if (h.itimer[w].value_ns != 0) {
			struct itimerval it = {ns_tv(h.itimer[w].interval_ns), ns_tv(h.itimer[w].value_ns)};
			setitimer(w, &it, NULL);
		}
	km_signal_lock(g);
	for (uint32_t i = 0; i < h.nposix; i++) {
		km_nt_posix_timer_t p;
		memcpy(&p, (const uint8_t *)g->resume_timers + sizeof(h) + i * sizeof(p), sizeof(p));
		struct km_timer t = {.used = true, .clock = p.clock, .notify = p.notify, .signo = p.signo,
				     .value = p.value, .tid = (pid_t)p.tid};
		if (host_create(g, &t) < 0)
			continue; /* the clock is gone on this host: the timer never fires */
		g->timers[p.id] = t;
		struct itimerspec it = {km_ns_ts(p.time.interval_ns), km_ns_ts(p.time.value_ns)};
		if (p.time.value_ns != 0)
			syscall(SYS_timer_settime, t.host_id, 0, &it, NULL);
	}
	km_signal_unlock(g);
	free(g->resume_timers);
	g->resume_timers = NULL;
}
