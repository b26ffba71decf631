/* The state passed across an execve: see km_exec_state.h. */
#include "km_exec_state.h"
#include "km_coredump.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "km_buf.h"
#include "km_guest_seccomp.h"
#include "km_rlimit.h"
#include "km_sigfd.h"
#include "km_signal.h"
#include "km_sigqueue.h"
#include "km_sys_util.h"
#include "km_vdso.h"

#define MAGIC 0x316574617473786bull /* "kxstate1" */
#define SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

/* --- writing ------------------------------------------------------------------------------ */

static void put64(km_buf_t *b, uint64_t v)
{
	km_buf_put(b, &v, sizeof(v));
}

static void put_str(km_buf_t *b, const char *s)
{
	uint64_t n = s != NULL ? strlen(s) + 1 : 0; /* 0: NULL */
	put64(b, n);
	if (n != 0)
		km_buf_put(b, s, n);
}

static void put_pairs(km_buf_t *b, const km_exec_fdpair_t *p, uint32_t n)
{
	put64(b, n);
	for (uint32_t i = 0; i < n; i++) {
		put64(b, (uint64_t)(int64_t)p[i].guest_fd);
		put64(b, (uint64_t)(int64_t)p[i].fd);
		put64(b, p[i].mask);
	}
}

static void serialise(km_buf_t *b, const km_exec_state_t *st)
{
	put64(b, MAGIC);
	put64(b, KM_EXEC_STATE_VERSION);
	put64(b, (uint64_t)getpid());
	put64(b, st->memory);
	put64(b, st->snapshot_file_max);
	put64(b, (uint64_t)(int64_t)st->tcp_established);
	put64(b, (uint64_t)(int64_t)st->restore_missing);
	put64(b, (uint64_t)st->trace | (uint64_t)st->coredump_forced << 1 | (uint64_t)st->no_seccomp << 2 |
		     (uint64_t)st->timing << 3 | (uint64_t)st->unkillable << 4 | (uint64_t)st->descendant << 5 |
		     (uint64_t)st->self_contained << 6 | (uint64_t)st->snapshot_chain << 8 |
		     (uint64_t)st->syscall_path << 16);
	put64(b, st->host_mask);
	put_str(b, st->snapshot_path);
	put_str(b, st->coredump_path);
	put_str(b, st->mgmt_path);
	const int32_t fds[] = {st->kvm_fd, st->mgmt_fd, st->err_fd, st->prog_fd};
	for (size_t i = 0; i < 4; i++)
		put64(b, (uint64_t)(int64_t)fds[i]);
	put64(b, st->mgmt_dev);
	put64(b, st->mgmt_ino);
	put64(b, (uint64_t)(int64_t)st->pid);
	put64(b, (uint64_t)st->mono_shift);
	put64(b, st->ignored);
	put64(b, st->sigmask);
	put64(b, st->nsigs);
	for (uint32_t i = 0; i < st->nsigs; i++) {
		put64(b, st->sigs[i].own);
		km_buf_put(b, &st->sigs[i].info, sizeof(siginfo_t));
	}
	put64(b, st->nofile.rlim_cur);
	put64(b, st->nofile.rlim_max);
	put64(b, RLIM_NLIMITS);
	for (int i = 0; i < RLIM_NLIMITS; i++) {
		put64(b, st->rlim[i].rlim_cur);
		put64(b, st->rlim[i].rlim_max);
	}
	put64(b, st->rlim_set);
	put64(b, st->gsc_len);
	if (st->gsc_len != 0)
		km_buf_put(b, st->gsc, st->gsc_len);
	put_pairs(b, st->inherited, st->ninherited);
	put_pairs(b, st->sigfds, st->nsigfds);
	put64(b, st->nenvp);
	for (uint32_t i = 0; i < st->nenvp; i++)
		put_str(b, st->envp[i]);
	put64(b, MAGIC); /* the end: a truncated state is refused */
}

int km_exec_state_write(const km_exec_state_t *st, km_err_t **err)
{
	km_buf_t b = {0};
	serialise(&b, st);
	if (b.failed || b.len > KM_EXEC_STATE_MAX) {
		km_buf_free(&b);
		return km_err_set(err, ENOMEM, "building the exec state");
	}
	int fd = km_fd_reserve(memfd_create("km-exec-state", MFD_CLOEXEC | MFD_ALLOW_SEALING));
	int rc = fd < 0 ? -1 : 0;
	for (size_t off = 0; rc == 0 && off < b.len;) {
		ssize_t n = write(fd, b.p + off, b.len - off);
		if (n <= 0)
			rc = -1;
		else
			off += (size_t)n;
	}
	km_buf_free(&b);
	if (rc == 0 && (fcntl(fd, F_ADD_SEALS, SEALS) < 0 || fcntl(fd, F_SETFD, 0) < 0))
		rc = -1;
	if (rc < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return km_err_set(err, e, "writing the exec state");
	}
	return fd;
}

/* --- reading ------------------------------------------------------------------------------ */

typedef struct reader {
	const uint8_t *p;
	size_t len, off;
	bool bad;
} reader_t;

static uint64_t get64(reader_t *r)
{
	uint64_t v = 0;
	if (r->bad || r->len - r->off < sizeof(v)) {
		r->bad = true;
		return 0;
	}
	memcpy(&v, r->p + r->off, sizeof(v));
	r->off += sizeof(v);
	return v;
}

static const void *get_bytes(reader_t *r, uint64_t n)
{
	if (r->bad || n > r->len - r->off) {
		r->bad = true;
		return NULL;
	}
	const void *p = r->p + r->off;
	r->off += n;
	return p;
}

/* A NUL-terminated string of at most max bytes, or NULL (absent, or bad). */
static char *get_str_max(reader_t *r, uint64_t max)
{
	uint64_t n = get64(r);
	if (n == 0)
		return NULL;
	const char *s = n <= max ? get_bytes(r, n) : NULL;
	if (s == NULL || memchr(s, '\0', n) != s + n - 1) {
		r->bad = true;
		return NULL;
	}
	char *c = strdup(s);
	r->bad |= c == NULL;
	return c;
}

static char *get_str(reader_t *r)
{
	return get_str_max(r, KM_PATH_MAX);
}

/* The program's environment: bounded in count and bytes as execve bounds it. */
static void get_env(reader_t *r, km_exec_state_t *st)
{
	uint64_t n = get64(r), bytes = 0;
	if (n > KM_EXEC_STATE_ENV_MAX / sizeof(char *)) {
		r->bad = true;
		return;
	}
	st->envp = calloc(n + 1, sizeof(char *));
	r->bad |= st->envp == NULL;
	for (uint64_t i = 0; i < n && !r->bad; i++) {
		char *e = get_str_max(r, KM_EXEC_STATE_STR_MAX);
		if (e == NULL) {
			r->bad = true;
			break;
		}
		st->envp[st->nenvp++] = e;
		bytes += strlen(e) + 1 + sizeof(char *);
		r->bad |= bytes > KM_EXEC_STATE_ENV_MAX;
	}
}

/* An fd the old km passed: -1, or one of km's (open, in km's range), made close-on-exec. */
static int32_t get_fd(reader_t *r)
{
	int64_t fd = (int64_t)get64(r);
	if (fd == -1)
		return -1;
	if (fd < KM_FD_RESERVED_BASE || fd > INT32_MAX || fd == KM_EXEC_SELF_FD ||
	    fcntl((int)fd, F_SETFD, FD_CLOEXEC) < 0) {
		r->bad = true;
		return -1;
	}
	return (int32_t)fd;
}

static km_exec_fdpair_t *get_pairs(reader_t *r, uint32_t *n, bool inherited)
{
	uint64_t count = get64(r);
	*n = 0;
	if (count == 0 || count > KM_EXEC_STATE_FDS_MAX) {
		r->bad |= count != 0;
		return NULL;
	}
	km_exec_fdpair_t *p = calloc(count, sizeof(*p));
	if (p == NULL) {
		r->bad = true;
		return NULL;
	}
	for (uint64_t i = 0; i < count && !r->bad; i++) {
		int64_t gfd = (int64_t)get64(r);
		p[i].fd = get_fd(r);
		p[i].mask = get64(r);
		p[i].guest_fd = (int32_t)gfd;
		*n = (uint32_t)i + 1;
		if (p[i].fd < 0 || (inherited ? gfd < 0 || gfd >= KM_FD_RESERVED_BASE : gfd != -1))
			r->bad = true;
	}
	return p;
}

static void get_sigs(reader_t *r, km_exec_state_t *st)
{
	uint64_t n = get64(r);
	if (n == 0 || n > KM_EXEC_STATE_SIGS_MAX) {
		r->bad |= n != 0;
		return;
	}
	st->sigs = calloc(n, sizeof(*st->sigs));
	r->bad |= st->sigs == NULL;
	for (uint64_t i = 0; i < n && !r->bad; i++) {
		st->sigs[i].own = (uint32_t)get64(r);
		const void *info = get_bytes(r, sizeof(siginfo_t));
		if (info == NULL)
			break;
		memcpy(&st->sigs[i].info, info, sizeof(siginfo_t));
		int sig = st->sigs[i].info.si_signo;
		if (st->sigs[i].own > 1 || sig < 1 || sig > KM_NSIG || sig == SIGKILL || sig == SIGSTOP)
			r->bad = true;
		st->nsigs = (uint32_t)i + 1;
	}
}

static void get_limits(reader_t *r, km_exec_state_t *st)
{
	st->nofile.rlim_cur = get64(r);
	st->nofile.rlim_max = get64(r);
	if (get64(r) != RLIM_NLIMITS)
		r->bad = true;
	for (int i = 0; i < RLIM_NLIMITS && !r->bad; i++) {
		st->rlim[i].rlim_cur = get64(r);
		st->rlim[i].rlim_max = get64(r);
		if (st->rlim[i].rlim_cur > st->rlim[i].rlim_max)
			r->bad = true;
	}
	uint64_t set = get64(r);
	st->rlim_set = (uint32_t)set;
	if (set >> RLIM_NLIMITS != 0 || st->nofile.rlim_cur > st->nofile.rlim_max)
		r->bad = true;
}

static void parse(reader_t *r, km_exec_state_t *st)
{
	if (get64(r) != MAGIC || get64(r) != KM_EXEC_STATE_VERSION || get64(r) != (uint64_t)getpid()) {
		r->bad = true;
		return;
	}
	st->memory = get64(r);
	st->snapshot_file_max = get64(r);
	int64_t tcp = (int64_t)get64(r), missing = (int64_t)get64(r);
	uint64_t flags = get64(r);
	/* bit 7 unused; bits 8-15 --snapshot-chain (at most 64); bits 16-17 --syscall-path */
	if (tcp < 0 || tcp > 2 || missing < 0 || missing > 1 || flags >> 18 != 0 || (flags & 0x80) ||
	    ((flags >> 16) & 3) > 2 || ((flags >> 8) & 0xff) > KM_LAYERS_MAX_DEPTH ||
	    st->memory < (16ul << 20))
		r->bad = true;
	st->tcp_established = (int32_t)tcp;
	st->restore_missing = (int32_t)missing;
	st->trace = flags & 1;
	st->coredump_forced = flags & 2;
	st->no_seccomp = flags & 4;
	st->timing = flags & 8;
	st->unkillable = flags & 16;
	st->descendant = flags & 32;
	st->self_contained = flags & 64;
	st->snapshot_chain = (uint32_t)((flags >> 8) & 0xff);
	st->syscall_path = (uint8_t)((flags >> 16) & 3);
	st->host_mask = get64(r) & ~(KM_SIGBIT(SIGSYS) | KM_SIG_UNBLOCKABLE); /* km's reporter stays */
	st->snapshot_path = get_str(r);
	st->coredump_path = get_str(r);
	st->mgmt_path = get_str(r);
	if (st->snapshot_path == NULL || st->coredump_path == NULL || st->snapshot_path[0] != '/' ||
	    st->coredump_path[0] != '/' || (st->mgmt_path != NULL && st->mgmt_path[0] != '/'))
		r->bad = true;
	st->kvm_fd = get_fd(r);
	st->mgmt_fd = get_fd(r);
	st->err_fd = get_fd(r);
	st->prog_fd = get_fd(r);
	st->mgmt_dev = get64(r);
	st->mgmt_ino = get64(r);
	if ((st->mgmt_dev | st->mgmt_ino) != 0 && (st->mgmt_fd < 0 || st->mgmt_path == NULL))
		r->bad = true;
	int64_t pid = (int64_t)get64(r);
	if (st->prog_fd < 0 || pid <= 0 || pid > INT32_MAX)
		r->bad = true;
	st->pid = (int32_t)pid;
	/* Ahead of the host's only (a resume moves the guest's clocks forward, never back), and by
	 * less than a century: a state naming a shift that would wrap the clocks is not km's. */
	st->mono_shift = (int64_t)get64(r);
	if (st->mono_shift < 0 || st->mono_shift > KM_EXEC_STATE_SHIFT_MAX)
		r->bad = true;
	st->ignored = get64(r) & ~KM_SIG_UNBLOCKABLE;
	st->sigmask = get64(r) & ~KM_SIG_UNBLOCKABLE;
	get_sigs(r, st);
	get_limits(r, st);
	uint64_t glen = get64(r);
	if (glen > KM_EXEC_STATE_MAX)
		r->bad = true;
	const void *gsc = glen != 0 ? get_bytes(r, glen) : NULL;
	if (gsc != NULL && (st->gsc = malloc(glen)) != NULL) {
		memcpy(st->gsc, gsc, glen);
		st->gsc_len = (uint32_t)glen;
	} else if (glen != 0) {
		r->bad = true;
	}
	st->inherited = get_pairs(r, &st->ninherited, true);
	st->sigfds = get_pairs(r, &st->nsigfds, false);
	get_env(r, st);
	if (get64(r) != MAGIC || r->off != r->len)
		r->bad = true;
}

/* The memfd's bytes, checked to be a sealed memfd of a sane size. NULL with *err. */
static void *slurp(int fd, size_t *len, km_err_t **err)
{
	struct stat sb;
	int seals = fcntl(fd, F_GET_SEALS);
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || seals < 0 || (seals & SEALS) != SEALS ||
	    sb.st_size <= 0 || (uint64_t)sb.st_size > KM_EXEC_STATE_MAX) {
		km_err_set(err, 0, "--exec-state=%d: not a state km made (internal option: km sets it at execve)", fd);
		return NULL;
	}
	*len = (size_t)sb.st_size;
	uint8_t *p = malloc(*len);
	size_t off = 0;
	while (p != NULL && off < *len) {
		ssize_t n = pread(fd, p + off, *len - off, (off_t)off);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	if (p == NULL || off != *len) {
		free(p);
		km_err_set(err, errno, "--exec-state=%d: reading it", fd);
		return NULL;
	}
	return p;
}

static void init_fds(km_exec_state_t *st)
{
	memset(st, 0, sizeof(*st));
	st->kvm_fd = st->mgmt_fd = st->err_fd = st->prog_fd = -1;
}

int km_exec_state_read(int fd, km_exec_state_t *st, km_err_t **err)
{
	init_fds(st);
	if (fd < KM_FD_RESERVED_BASE) {
		close(fd);
		return km_err_set(err, 0, "--exec-state=%d: not one of km's fds (internal option: km sets it at execve)",
				  fd);
	}
	size_t len = 0;
	void *p = slurp(fd, &len, err);
	close(fd);
	if (p == NULL)
		return -1;
	reader_t r = {.p = p, .len = len};
	parse(&r, st);
	free(p);
	if (r.bad) {
		km_exec_state_free(st);
		return km_err_set(err, 0, "--exec-state: a state km did not make or does not understand");
	}
	return 0;
}

static void close_pairs(km_exec_fdpair_t *p, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (p[i].fd >= 0)
			close(p[i].fd);
	free(p);
}

void km_exec_state_free(km_exec_state_t *st)
{
	const int32_t fds[] = {st->kvm_fd, st->mgmt_fd, st->err_fd, st->prog_fd};
	for (size_t i = 0; i < 4; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	close_pairs(st->inherited, st->ninherited);
	close_pairs(st->sigfds, st->nsigfds);
	free(st->sigs);
	free(st->gsc);
	for (uint32_t i = 0; st->envp != NULL && i < st->nenvp; i++)
		free(st->envp[i]);
	free(st->envp);
	free(st->snapshot_path);
	free(st->coredump_path);
	free(st->mgmt_path);
	init_fds(st);
}

/* --- applying ----------------------------------------------------------------------------- */

int km_exec_state_apply_process(km_guest_t *g, km_exec_state_t *st, km_err_t **err)
{
	g->pid = st->pid;
	g->unkillable = st->unkillable;
	g->threads.next_tid = g->pid + 1;
	/* As Linux's exec: handlers go back to the default, ignored signals stay ignored. */
	for (int sig = 1; sig <= KM_NSIG; sig++) {
		bool ign = st->ignored & KM_SIGBIT(sig);
		g->sigactions[sig - 1] = (km_sigaction_t){.handler = ign ? (uint64_t)(uintptr_t)SIG_IGN : 0};
	}
	g->nofile = st->nofile;
	memcpy(g->rlim, st->rlim, sizeof(g->rlim));
	g->rlim_set = st->rlim_set;
	if (st->gsc_len != 0) {
		if (km_gsc_ensure(&g->gseccomp) == NULL)
			return km_err_set(err, ENOMEM, "the program's seccomp filter");
		if (km_gsc_restore(g->gseccomp, st->gsc, st->gsc_len, err) < 0)
			return km_err_wrap(err, "--exec-state: the program's seccomp filter");
	}
	return 0;
}

/* Pending signals go back in their queues, in their order. */
static int apply_signals(km_guest_t *g, km_vcpu_t *v, km_exec_state_t *st, km_err_t **err)
{
	km_signal_lock(g);
	int rc = 0;
	for (uint32_t i = 0; i < st->nsigs && rc == 0; i++)
		if (km_sigqueue_add(st->sigs[i].own ? &v->sigpending : &g->sigpending, &st->sigs[i].info) < 0)
			rc = km_err_set(err, 0, "--exec-state: too many pending signals");
	km_signal_unlock(g);
	return rc;
}

/* What km's caller gave the program, if the guest still has it under that number. */
static int apply_inherited(km_guest_t *g, km_exec_state_t *st, km_err_t **err)
{
	if (st->ninherited == 0)
		return 0;
	g->inherited = calloc(st->ninherited, sizeof(*g->inherited));
	if (g->inherited == NULL)
		return km_err_set(err, ENOMEM, "the program's inherited fds");
	for (uint32_t i = 0; i < st->ninherited; i++) {
		g->inherited[g->ninherited++] = (km_fd_inherit_t){st->inherited[i].guest_fd, st->inherited[i].fd};
		st->inherited[i].fd = -1; /* the guest's now */
	}
	return 0;
}

/* The new km's guest clocks start at least shift ahead of the host's, as the old km's stood: the
 * vDSO's resume path, given the host's clocks now plus shift, moves them there and never back. */
static void apply_clocks(km_guest_t *g, int64_t shift)
{
	static const clockid_t c[3] = {CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_MONOTONIC_RAW};
	if (shift == 0 || g->vdso == NULL)
		return;
	uint64_t ns[3];
	for (int i = 0; i < 3; i++) {
		struct timespec t;
		clock_gettime(c[i], &t);
		ns[i] = (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec + (uint64_t)shift;
	}
	km_vdso_resume_clocks(g, ns);
}

int km_exec_state_apply_thread(km_guest_t *g, km_exec_state_t *st, km_err_t **err)
{
	km_vcpu_t *v = g->vcpus[0];
	if (v == NULL)
		return km_err_set(err, 0, "--exec-state: no thread to apply it to");
	v->sigmask = st->sigmask;
	apply_clocks(g, st->mono_shift);
	if (apply_signals(g, v, st, err) < 0 || apply_inherited(g, st, err) < 0)
		return -1;
	for (uint32_t i = 0; i < st->nsigfds; i++) {
		int rc = km_sigfd_adopt(g, st->sigfds[i].fd, st->sigfds[i].mask);
		if (rc < 0)
			return km_err_set(err, -rc, "--exec-state: a signalfd");
		close(st->sigfds[i].fd);
		st->sigfds[i].fd = -1;
	}
	return 0;
}
