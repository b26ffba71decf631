/* signalfd on top of km's pending signals: see km_sigfd.h. */
#include "km_sigfd.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "km_machine.h"
#include "km_signal.h"
#include "km_sigqueue.h"
#include "km_sys_util.h"

/* fd is entry s's file. Every anon inode file (each eventfd, epoll, timerfd) has the same inode
 * number, so the inode only rules files out; kcmp says whether fd and km's copy are one file. */
static bool same_file(const km_sigfd_t *s, int fd, const struct stat *st)
{
	pid_t self = getpid();
	return st->st_ino == s->ino && st->st_dev == s->dev &&
	       syscall(SYS_kcmp, self, self, KCMP_FILE, fd, s->keeper) == 0;
}

/* The entry whose eventfd is the file behind guest fd, or NULL. Called with the signal lock. */
static km_sigfd_t *lookup(km_guest_t *g, int fd)
{
	struct stat st;
	if (g->nsigfds == 0 || km_fd_check(fd) < 0 || fstat(fd, &st) < 0)
		return NULL;
	for (int i = 0; i < KM_MAX_SIGFDS; i++)
		if (g->sigfds[i].used && same_file(&g->sigfds[i], fd, &st))
			return &g->sigfds[i];
	return NULL;
}

/* True if some guest fd still refers to entry s (a slow scan: only when the table is full). */
static bool still_open(km_guest_t *g, const km_sigfd_t *s)
{
	int lim = km_fd_limit(g);
	for (int fd = 0; fd < lim; fd++) {
		struct stat st;
		if (fstat(fd, &st) == 0 && same_file(s, fd, &st))
			return true;
	}
	return false;
}

bool km_sigfd_is(km_guest_t *g, int fd)
{
	if (__atomic_load_n(&g->nsigfds, __ATOMIC_ACQUIRE) == 0)
		return false;
	km_signal_lock(g);
	bool is = lookup(g, fd) != NULL;
	km_signal_unlock(g);
	return is;
}

/* A free slot, forgetting signalfds the guest has closed if none is free. -1: all in use. */
static int free_slot(km_guest_t *g)
{
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < KM_MAX_SIGFDS; i++)
			if (!g->sigfds[i].used)
				return i;
		for (int i = 0; i < KM_MAX_SIGFDS; i++)
			if (!still_open(g, &g->sigfds[i])) {
				close(g->sigfds[i].keeper);
				g->sigfds[i].used = false;
				g->nsigfds--;
			}
	}
	return -1;
}

/* Records eventfd fd in a free slot with km's own copy of it. 0 or -errno; fd is the caller's.
 * Called with the signal lock. */
static int enter(km_guest_t *g, int fd, uint64_t mask)
{
	int slot = free_slot(g);
	if (slot < 0)
		return -EMFILE;
	struct stat st;
	int keeper = km_fd_reserve(fcntl(fd, F_DUPFD_CLOEXEC, 0));
	if (keeper < 0 || fstat(fd, &st) < 0) {
		if (keeper >= 0)
			close(keeper);
		return -ENOMEM;
	}
	g->sigfds[slot] = (km_sigfd_t){.used = true, .ino = st.st_ino, .dev = st.st_dev, .mask = mask,
				       .keeper = keeper};
	__atomic_add_fetch(&g->nsigfds, 1, __ATOMIC_RELEASE);
	return 0;
}

/* A new signalfd: an eventfd for the guest, and km's own copy of it to set its readiness. */
static long create(km_guest_t *g, uint64_t mask, int flags)
{
	int efl = (flags & SFD_NONBLOCK ? EFD_NONBLOCK : 0) | (flags & SFD_CLOEXEC ? EFD_CLOEXEC : 0);
	long fd = km_fd_new(g, km_host_ret(syscall(SYS_eventfd2, 0, efl)));
	if (fd < 0)
		return fd;
	int rc = enter(g, (int)fd, mask);
	if (rc < 0) {
		close((int)fd);
		return rc;
	}
	return fd;
}

int km_sigfd_adopt(km_guest_t *g, int fd, uint64_t mask)
{
	km_signal_lock(g);
	int rc = enter(g, fd, mask & ~KM_SIG_UNBLOCKABLE);
	km_signal_unlock(g);
	if (rc == 0)
		km_sigfd_sync(g);
	return rc;
}

bool km_sigfd_mask(km_guest_t *g, int fd, uint64_t *mask)
{
	if (__atomic_load_n(&g->nsigfds, __ATOMIC_ACQUIRE) == 0)
		return false;
	km_signal_lock(g);
	km_sigfd_t *s = lookup(g, fd);
	if (s != NULL)
		*mask = s->mask;
	km_signal_unlock(g);
	return s != NULL;
}

long km_sigfd_create(km_vcpu_t *v, int fd, uint64_t mask, int flags)
{
	km_guest_t *g = v->g;
	if (flags & ~(SFD_NONBLOCK | SFD_CLOEXEC))
		return -EINVAL;
	mask &= ~KM_SIG_UNBLOCKABLE;
	km_signal_lock(g);
	long rc;
	if (fd == -1) {
		rc = create(g, mask, flags);
	} else {
		km_sigfd_t *s = lookup(g, fd);
		rc = s != NULL ? fd : km_fd_check(fd) < 0 || fd < 0 ? -EBADF : -EINVAL;
		if (s != NULL)
			s->mask = mask;
	}
	km_signal_unlock(g);
	km_sigfd_sync(g);
	return rc;
}

/* Takes signals for reader v among mask into out (at most n). Called with the signal lock. */
static size_t take(km_vcpu_t *v, uint64_t mask, struct signalfd_siginfo *out, size_t n)
{
	size_t got = 0;
	siginfo_t si;
	while (got < n && (km_sigqueue_take(&v->sigpending, mask, &si) || km_sigqueue_take(&v->g->sigpending, mask, &si))) {
		struct signalfd_siginfo *o = &out[got++];
		memset(o, 0, sizeof(*o));
		o->ssi_signo = (uint32_t)si.si_signo;
		o->ssi_errno = si.si_errno;
		o->ssi_code = si.si_code;
		o->ssi_pid = (uint32_t)si.si_pid;
		o->ssi_uid = si.si_uid;
		o->ssi_status = si.si_status;
		o->ssi_int = si.si_int;
		o->ssi_ptr = (uint64_t)(uintptr_t)si.si_ptr;
		o->ssi_addr = (uint64_t)(uintptr_t)si.si_addr;
		if (si.si_code == SI_TIMER) {
			o->ssi_tid = (uint32_t)si.si_timerid;
			o->ssi_overrun = (uint32_t)si.si_overrun;
		}
	}
	return got;
}

#define READ_MAX 32 /* records per read */

bool km_sigfd_read(km_vcpu_t *v, int fd, uint64_t buf, uint64_t len, long *ret)
{
	km_guest_t *g = v->g;
	if (__atomic_load_n(&g->nsigfds, __ATOMIC_ACQUIRE) == 0)
		return false;
	km_signal_lock(g);
	km_sigfd_t *s = lookup(g, fd);
	uint64_t mask = s != NULL ? s->mask : 0;
	km_signal_unlock(g);
	if (s == NULL)
		return false;
	if (len < sizeof(struct signalfd_siginfo)) {
		*ret = -EINVAL;
		return true;
	}
	size_t n = len / sizeof(struct signalfd_siginfo);
	struct signalfd_siginfo out[READ_MAX];
	for (;;) {
		km_signal_lock(g);
		size_t got = take(v, mask, out, n < READ_MAX ? n : READ_MAX);
		km_signal_unlock(g);
		if (got > 0) {
			km_sigfd_sync(g);
			size_t bytes = got * sizeof(out[0]);
			*ret = km_copy_to_guest(&g->mm, buf, out, bytes) < 0 ? -EFAULT : (long)bytes;
			return true;
		}
		if (fcntl(fd, F_GETFL) & O_NONBLOCK) {
			*ret = -EAGAIN;
			return true;
		}
		/* Interrupted by a signal of its own it may take, or one km picked it for (a kick);
		 * one in the mask another reader took first: wait on. */
		int rc = (km_signal_pending_own(v) & ~v->sigmask & ~mask) ? -EINTR
									   : km_signal_wait(v, mask | ~v->sigmask, mask, NULL);
		if (rc < 0) {
			*ret = rc; /* -KM_ERESTART: made again if no handler runs */
			return true;
		}
	}
}

/* The signals a reader could take: the process's and every live thread's (readiness is per
 * file, Linux's per reader; a reader takes its own). Called with the signal lock. */
static uint64_t any_pending(km_guest_t *g)
{
	uint64_t set = g->sigpending.set;
	pthread_mutex_lock(&g->threads.lock);
	for (int i = 0; i < g->nvcpus; i++)
		if (g->vcpus[i] != NULL && g->vcpus[i]->live)
			set |= g->vcpus[i]->sigpending.set;
	pthread_mutex_unlock(&g->threads.lock);
	return set;
}

/* Sets the eventfd's counter to 1 (readable) or 0 through km's copy; only km changes it. */
static void set_ready(int keeper, bool ready)
{
	struct pollfd p = {.fd = keeper, .events = POLLIN};
	bool is = poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
	uint64_t n = 1;
	if (ready && !is && write(keeper, &n, sizeof(n)) < 0)
		return;
	if (!ready && is && read(keeper, &n, sizeof(n)) < 0)
		return;
}

void km_sigfd_sync(km_guest_t *g)
{
	if (__atomic_load_n(&g->nsigfds, __ATOMIC_ACQUIRE) == 0)
		return;
	km_signal_lock(g);
	uint64_t pending = any_pending(g);
	for (int i = 0; i < KM_MAX_SIGFDS; i++)
		if (g->sigfds[i].used)
			set_ready(g->sigfds[i].keeper, (pending & g->sigfds[i].mask) != 0);
	km_signal_unlock(g);
}
