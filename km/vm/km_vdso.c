/* The guest's vDSO and the clock lines behind it: see km_vdso.h and km_vdso_data.h. */
#include "km_vdso.h"

#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "km_guest.h"
#include "km_crc32c.h"
#include "km_pagetable.h"
#include "km_runtime.h"
#include "km_time.h"

extern const uint8_t km_vdso_image_start[], km_vdso_image_end[];

/* How often the lines are redrawn: often enough that a change of the host's rate (NTP) shows
 * within a fraction of a second, rarely enough to cost nothing (a few microseconds each). */
#define PERIOD_NS 100000000ull
/* Most a line is slewed per period to meet the host's clock (500 ppm), and the gap past which a
 * clock is stepped instead (REALTIME set, BOOTTIME after a suspend). */
#define SLEW_MAX_NS (PERIOD_NS / 2000)
#define STEP_NS 1000000ull
/* The measured rate replaces the TSC's nominal one once its baseline is this long. */
#define BASELINE_NS 1000000000ull

static const clockid_t host_clock[KM_VCLK_N] = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME,
						CLOCK_MONOTONIC_RAW};

struct km_vdso {
	struct km_vdso_data *page; /* km's view of the guest's data page */
	pthread_mutex_t lock;      /* the writers: the thread, a resume */
	pthread_cond_t cond;       /* the thread's sleep; signalled to stop it */
	pthread_t thread;
	bool running, stop;
	bool drawn;                 /* the page holds lines to continue from */
	uint64_t nominal_mult;      /* from KVM's TSC frequency */
	uint64_t first_tsc, first_ns[KM_VCLK_N]; /* the rate's baseline, the host's own readings */
	int64_t shift_ns;           /* added to the host's monotonic clocks: the resume offset */
};

static uint64_t ts_ns_signed(struct timespec t, int64_t add)
{
	int64_t ns = (int64_t)km_ts_ns(t) + add;
	return ns < 0 ? 0 : (uint64_t)ns;
}

/* Clock i as the guest should see it, straight from the host (no line). */
static uint64_t guest_view(const struct km_vdso *d, int i)
{
	struct timespec t = {0, 0};
	clock_gettime(host_clock[i], &t);
	return ts_ns_signed(t, i == KM_VCLK_REALTIME ? 0 : d->shift_ns);
}

/* The host's clock i (own reading, no shift) and the TSC at that moment. */
static void sample(int i, uint64_t *tsc, uint64_t *ns)
{
	struct timespec t = {0, 0};
	uint64_t a = km_vdso_rdtsc();
	clock_gettime(host_clock[i], &t);
	uint64_t b = km_vdso_rdtsc();
	*tsc = a + (b - a) / 2;
	*ns = km_ts_ns(t);
}

/* ns per tick, 32.32, of clock i measured since the baseline; the nominal one until it is long. */
static uint64_t rate(const struct km_vdso *d, int i, uint64_t tsc, uint64_t ns)
{
	if (tsc <= d->first_tsc || ns < d->first_ns[i] + BASELINE_NS)
		return d->nominal_mult;
	return (uint64_t)(((unsigned __int128)(ns - d->first_ns[i]) << 32) / (tsc - d->first_tsc));
}

struct km_vdso_clock km_vdso_next_line(const struct km_vdso_clock *old, uint64_t old_base, bool wall,
				       uint64_t t1, uint64_t h, uint64_t r)
{
	struct km_vdso_clock out;
	uint64_t base = h;
	if (old != NULL) {
		uint64_t e = km_vdso_line(old_base, old, t1);
		bool step = h > e + STEP_NS || (wall && e > h + STEP_NS);
		base = step ? h : e;
	}
	int64_t corr = (int64_t)(h - base);
	if (corr > (int64_t)SLEW_MAX_NS)
		corr = (int64_t)SLEW_MAX_NS;
	if (corr < -(int64_t)SLEW_MAX_NS)
		corr = -(int64_t)SLEW_MAX_NS;
	/* The ticks of one period at rate r; the correction spread over them. */
	uint64_t ticks = (uint64_t)(((unsigned __int128)PERIOD_NS << 32) / (r ? r : 1));
	int64_t adj = (int64_t)((__int128)corr * ((__int128)1 << 32) / (__int128)(ticks ? ticks : 1));
	out.base_ns = base;
	out.mult = adj < 0 && (uint64_t)-adj >= r ? r / 2 : (uint64_t)((int64_t)r + adj);
	return out;
}

/* Redraws every line from the host's clocks now. Under d->lock. */
static void redraw(struct km_vdso *d)
{
	uint64_t tsc[KM_VCLK_N], ns[KM_VCLK_N], h[KM_VCLK_N];
	for (int i = 0; i < KM_VCLK_N; i++)
		sample(i, &tsc[i], &ns[i]);
	/* A TSC behind the last line's start (reset by a host suspend): measure the rate afresh. */
	if (d->drawn && tsc[KM_VCLK_MONOTONIC] < d->page->tsc_base)
		d->first_tsc = 0;
	if (d->first_tsc == 0) {
		d->first_tsc = tsc[KM_VCLK_MONOTONIC];
		for (int i = 0; i < KM_VCLK_N; i++)
			d->first_ns[i] = ns[i] - (uint64_t)((((unsigned __int128)(tsc[i] - d->first_tsc)) *
							     d->nominal_mult) >> 32);
	}
	/* REALTIME and BOOTTIME run at MONOTONIC's rate (their own readings step); RAW at its own. */
	uint64_t r_mono = rate(d, KM_VCLK_MONOTONIC, tsc[KM_VCLK_MONOTONIC], ns[KM_VCLK_MONOTONIC]);
	uint64_t r_raw = rate(d, KM_VCLK_MONOTONIC_RAW, tsc[KM_VCLK_MONOTONIC_RAW], ns[KM_VCLK_MONOTONIC_RAW]);

	struct km_vdso_data *p = d->page;
	__atomic_store_n(&p->seq, p->seq + 1, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	uint64_t t1 = km_vdso_rdtsc();
	struct km_vdso_clock c[KM_VCLK_N];
	for (int i = 0; i < KM_VCLK_N; i++) {
		uint64_t r = i == KM_VCLK_MONOTONIC_RAW ? r_raw : r_mono;
		int64_t add = i == KM_VCLK_REALTIME ? 0 : d->shift_ns;
		uint64_t proj = ns[i] + (uint64_t)((((unsigned __int128)(t1 - tsc[i])) * r) >> 32);
		h[i] = (int64_t)proj + add < 0 ? 0 : (uint64_t)((int64_t)proj + add);
		c[i] = km_vdso_next_line(d->drawn ? &d->page->clk[i] : NULL, d->page->tsc_base,
					 i == KM_VCLK_REALTIME, t1, h[i], r);
	}
	p->tsc_base = t1;
	memcpy(p->clk, c, sizeof(c));
	d->drawn = true;
	__atomic_store_n(&p->seq, p->seq + 1, __ATOMIC_RELEASE);
}

static void *updater(void *arg)
{
	struct km_vdso *d = arg;
	pthread_mutex_lock(&d->lock);
	while (!d->stop) {
		struct timespec dl = km_clock_in(CLOCK_MONOTONIC, PERIOD_NS);
		while (!d->stop && pthread_cond_timedwait(&d->cond, &d->lock, &dl) != ETIMEDOUT)
			;
		if (!d->stop && (d->page->flags & KM_VDSO_TSC))
			redraw(d);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

/* Whether the host's TSC can carry the guest's clocks: invariant, and the host's own clock source
 * (when the host says which). */
static bool tsc_usable(void)
{
	unsigned a, b, c, dx;
	if (!__get_cpuid(0x80000007, &a, &b, &c, &dx) || !(dx & (1u << 8)))
		return false;
	char src[32] = "";
	int fd = open("/sys/devices/system/clocksource/clocksource0/current_clocksource", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return true; /* no /sys (a container): the CPU's word stands */
	ssize_t n = read(fd, src, sizeof(src) - 1);
	close(fd);
	return n >= 3 && strncmp(src, "tsc\n", 4) == 0;
}

/* Whether the guest's rdtscp reads the host's TSC_AUX (Linux's cpu | node << 12): the CPU has
 * rdtscp and KVM neither offers it to guests nor keeps a TSC_AUX of theirs, as under PVM, where
 * the guest's rdtscp runs natively (measured: docs/decisions.md, entry 14). Where KVM keeps a
 * guest TSC_AUX (hardware KVM) it would read km's value, not the host CPU: getcpu asks km. */
static bool rdtscp_is_hosts(const km_guest_t *g)
{
	unsigned a, b, c, dx;
	if (!__get_cpuid(0x80000001, &a, &b, &c, &dx) || !(dx & (1u << 27)))
		return false;
	const struct kvm_cpuid2 *id = g->machine.cpuid;
	for (uint32_t i = 0; id != NULL && i < id->nent; i++)
		if (id->entries[i].function == 0x80000001 && (id->entries[i].edx & (1u << 27)))
			return false;
	struct kvm_msr_list probe = {.nmsrs = 0};
	ioctl(g->machine.kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe); /* E2BIG, with the count */
	if (probe.nmsrs == 0 || probe.nmsrs > 65536)
		return false;
	struct kvm_msr_list *l = calloc(1, sizeof(*l) + probe.nmsrs * sizeof(uint32_t));
	if (l == NULL)
		return false;
	l->nmsrs = probe.nmsrs;
	bool found = ioctl(g->machine.kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0;
	for (uint32_t i = 0; !found && i < l->nmsrs; i++)
		found = l->indices[i] == 0xc0000103; /* MSR_TSC_AUX */
	free(l);
	return !found;
}

static int map_pages(km_guest_t *g, km_err_t **err)
{
	size_t len = (size_t)(km_vdso_image_end - km_vdso_image_start);
	if (len == 0 || len > KM_VDSO_IMAGE_MAX)
		return km_err_set(err, 0, "internal: the vDSO image is %zu bytes (most %d)", len, KM_VDSO_IMAGE_MAX);
	uint8_t *data = km_gpa_to_hva(&g->mm, KM_RT_GPA + KM_VDSO_RT_OFF);
	memset(data, 0, KM_PAGE_SIZE + KM_VDSO_IMAGE_MAX);
	memcpy(data + KM_PAGE_SIZE, km_vdso_image_start, len);
	g->vdso->page = (struct km_vdso_data *)data;
	/* Read-only to the guest, the data page not executable: a guest write faults (SIGSEGV). */
	int rc = km_pt_map(&g->mm.pt, KM_VDSO_DATA_GVA, KM_RT_GPA + KM_VDSO_RT_OFF, KM_PAGE_SIZE, PROT_READ);
	if (rc == 0)
		rc = km_pt_map(&g->mm.pt, KM_VDSO_GVA, KM_RT_GPA + KM_VDSO_RT_OFF + KM_PAGE_SIZE,
			       (len + KM_PAGE_SIZE - 1) & ~(uint64_t)(KM_PAGE_SIZE - 1), PROT_READ | PROT_EXEC);
	if (rc < 0)
		return km_err_set(err, -rc, "mapping the vDSO into the guest");
	return 0;
}

/* Starts the thread that keeps the lines current. */
static int start(km_guest_t *g, km_err_t **err)
{
	struct km_vdso *d = g->vdso;
	d->stop = false;
	/* Every signal blocked in the thread: the host's are the forwarding thread's, the kicks and
	 * SIGXCPU/SIGXFSZ the vCPU threads' (km_signal_host.c). */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&d->thread, NULL, updater, d);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return km_err_set(err, rc, "starting the vDSO's clock thread");
	d->running = true;
	return 0;
}

/* The redraw thread's lock and wake-up (its timed waits on CLOCK_MONOTONIC); made anew in a
 * forked child, where the parent's thread may have held them. */
static void init_sync(struct km_vdso *d)
{
	pthread_mutex_init(&d->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->cond, &ca);
	pthread_condattr_destroy(&ca);
}

int km_vdso_init(km_guest_t *g, km_err_t **err)
{
	struct km_vdso *d = calloc(1, sizeof(*d));
	if (d == NULL)
		return km_err_set(err, ENOMEM, "allocating the vDSO's state");
	g->vdso = d;
	init_sync(d);
	if (map_pages(g, err) < 0)
		return -1;
	g->vdso_gva = KM_VDSO_GVA;
	/* Tests only: the guest's monotonic clocks this many seconds ahead of the host's from the
	 * start, as on a host up that much longer; its snapshot then resumes on a host whose clocks
	 * are far behind it (the test cannot reboot). */
	const char *ahead = getenv("KM_TEST_CLOCK_AHEAD");
	if (ahead != NULL)
		d->shift_ns = (int64_t)(strtoull(ahead, NULL, 10) % 100000000ull * KM_NS_PER_SEC);
	struct timespec res;
	d->page->hres_ns = clock_getres(CLOCK_MONOTONIC, &res) == 0 ? km_ts_ns(res) : 1;
	d->page->coarse_ns = clock_getres(CLOCK_MONOTONIC_COARSE, &res) == 0 ? km_ts_ns(res) : 4000000;
	/* Tests only: the vDSO as on a host whose TSC km cannot use (every read a syscall). */
	bool no_tsc = getenv("KM_TEST_VDSO_SYSCALL") != NULL;
	d->page->flags = !no_tsc && rdtscp_is_hosts(g) ? KM_VDSO_RDTSCP : 0;
	long khz = ioctl(g->machine.vm_fd, KVM_GET_TSC_KHZ, 0);
	if (khz > 0 && !no_tsc && tsc_usable()) {
		d->nominal_mult = (uint64_t)((1000000ull << 32) / (uint64_t)khz);
		d->page->flags |= KM_VDSO_TSC;
		redraw(d);
	}
	return start(g, err);
}

int km_vdso_fork_child(km_guest_t *g, km_err_t **err)
{
	struct km_vdso *d = g->vdso;
	init_sync(d);
	d->running = false;
	/* A write the parent's thread left half done: nobody finishes it here but this redraw. */
	if (d->page->seq & 1) {
		__atomic_store_n(&d->page->seq, d->page->seq + 1, __ATOMIC_RELEASE);
		d->drawn = false;
	}
	if (d->page->flags & KM_VDSO_TSC)
		redraw(d);
	return start(g, err);
}

void km_vdso_stop(km_guest_t *g)
{
	struct km_vdso *d = g->vdso;
	if (d == NULL)
		return;
	if (d->running) {
		pthread_mutex_lock(&d->lock);
		d->stop = true;
		pthread_cond_signal(&d->cond);
		pthread_mutex_unlock(&d->lock);
		pthread_join(d->thread, NULL);
		d->running = false;
	}
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->lock);
	free(d);
	g->vdso = NULL;
}

void km_vdso_vcpu_init(km_guest_t *g, int vcpu_fd)
{
	uint64_t zero = 0;
	struct kvm_device_attr a = {.group = KVM_VCPU_TSC_CTRL, .attr = KVM_VCPU_TSC_OFFSET,
				    .addr = (uint64_t)(uintptr_t)&zero};
	if (g->vdso == NULL || ioctl(vcpu_fd, KVM_SET_DEVICE_ATTR, &a) == 0)
		return;
	pthread_mutex_lock(&g->vdso->lock);
	__atomic_and_fetch(&g->vdso->page->flags, ~KM_VDSO_TSC, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&g->vdso->lock);
}

static uint32_t image_id(void)
{
	static uint32_t id;
	uint32_t v = __atomic_load_n(&id, __ATOMIC_RELAXED);
	if (v == 0) {
		v = km_crc32c(0, km_vdso_image_start, (size_t)(km_vdso_image_end - km_vdso_image_start));
		v = v != 0 ? v : 1;
		__atomic_store_n(&id, v, __ATOMIC_RELAXED);
	}
	return v;
}

uint32_t km_vdso_code_id(const km_guest_t *g, uint64_t rip)
{
	size_t len = (size_t)(km_vdso_image_end - km_vdso_image_start);
	bool inside = g->vdso_gva != 0 && rip >= KM_VDSO_GVA + KM_VDSO_ENTRY_END && rip < KM_VDSO_GVA + len;
	return inside ? image_id() : 0;
}

bool km_vdso_code_ok(uint32_t id)
{
	return id == 0 || id == image_id();
}

bool km_vdso_holds(km_guest_t *g, uint64_t gva)
{
	size_t len = (size_t)(km_vdso_image_end - km_vdso_image_start);
	return g->vdso_gva != 0 && gva >= KM_VDSO_DATA_GVA && gva < KM_VDSO_GVA + len;
}

static int line_of(clockid_t clk)
{
	switch (clk) {
	case CLOCK_REALTIME:
	case CLOCK_REALTIME_COARSE:
		return KM_VCLK_REALTIME;
	case CLOCK_MONOTONIC:
	case CLOCK_MONOTONIC_COARSE:
		return KM_VCLK_MONOTONIC;
	case CLOCK_BOOTTIME:
		return KM_VCLK_BOOTTIME;
	case CLOCK_MONOTONIC_RAW:
		return KM_VCLK_MONOTONIC_RAW;
	default:
		return -1;
	}
}

bool km_vdso_clock(km_guest_t *g, clockid_t clk, struct timespec *ts)
{
	int i = line_of(clk);
	if (i < 0 || g->vdso == NULL)
		return false;
	uint64_t ns;
	if (!km_vdso_read(g->vdso->page, i, &ns))
		ns = guest_view(g->vdso, i);
	*ts = km_ns_ts(ns);
	return true;
}

int64_t km_vdso_mono_shift(km_guest_t *g)
{
	return g->vdso != NULL ? __atomic_load_n(&g->vdso->shift_ns, __ATOMIC_RELAXED) : 0;
}

struct timespec km_vdso_mono_to_host(km_guest_t *g, struct timespec guest)
{
	int64_t shift = km_vdso_mono_shift(g);
	/* A malformed one stays as it is, for the host to refuse (EINVAL) as Linux does. */
	if (shift == 0 || guest.tv_sec < 0 || guest.tv_nsec < 0 || guest.tv_nsec >= (long)KM_NS_PER_SEC)
		return guest;
	int64_t ns = (int64_t)km_ts_ns(guest) - shift;
	return km_ns_ts(ns > 0 ? (uint64_t)ns : 0);
}

void km_vdso_save_clocks(km_guest_t *g, uint64_t ns[3])
{
	static const clockid_t c[3] = {CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_MONOTONIC_RAW};
	for (int i = 0; i < 3; i++) {
		struct timespec t;
		km_vdso_clock(g, c[i], &t);
		ns[i] = km_ts_ns(t);
	}
}

void km_vdso_resume_clocks(km_guest_t *g, const uint64_t ns[3])
{
	static const int line[3] = {KM_VCLK_MONOTONIC, KM_VCLK_BOOTTIME, KM_VCLK_MONOTONIC_RAW};
	struct km_vdso *d = g->vdso;
	pthread_mutex_lock(&d->lock);
	int64_t need = 0;
	for (int i = 0; i < 3; i++) {
		int64_t gap = (int64_t)ns[i] - (int64_t)guest_view(d, line[i]);
		if (ns[i] != 0 && gap > need)
			need = gap;
	}
	/* The guest has not run yet: its lines start afresh from the new view. */
	__atomic_store_n(&d->shift_ns, d->shift_ns + need, __ATOMIC_RELAXED);
	d->drawn = false;
	if (d->page->flags & KM_VDSO_TSC)
		redraw(d);
	pthread_mutex_unlock(&d->lock);
}
