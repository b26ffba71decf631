/*
 * execve and execveat (km_proc.h): everything Linux decides before its point of no return is
 * decided here first, so that each error reaches the caller, which goes on; then km re-executes
 * itself (execveat of its own binary, KM_EXEC_SELF_FD) for the new program, handing it the
 * state Linux keeps across exec (km_exec_state.h). docs/decisions.md has why a re-exec.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "km_elf_load.h"
#include "km_end.h"
#include "km_exec_state.h"
#include "km_fd_admit.h"
#include "km_guest_seccomp.h"
#include "km_proc.h"
#include "km_rlimit.h"
#include "km_signal.h"
#include "km_sigqueue.h"
#include "km_sys_util.h"
#include "km_syscall.h"
#include "km_vdso.h"

#define MAX_ARG_STRLEN (32 * 4096) /* Linux: one argument or environment string, NUL included */
#define ARG_MIN (128u << 10)       /* Linux's ARG_MAX: the least room execve gives */
#define ARG_CAP (6u << 20)         /* Linux: 3/4 of an 8 MiB stack at most */
#define BINPRM_BUF_SIZE 256        /* Linux reads this much of a file to tell what it is */
#define SCRIPT_DEPTH 5             /* #! scripts Linux runs through before ELOOP */

static bool host_confined;
static int host_mgmt_fd = -1;
static uint64_t host_mgmt_dev, host_mgmt_ino;

void km_exec_set_host(bool confined, int mgmt_fd, uint64_t mgmt_dev, uint64_t mgmt_ino)
{
	host_confined = confined;
	host_mgmt_fd = mgmt_fd;
	host_mgmt_dev = mgmt_dev;
	host_mgmt_ino = mgmt_ino;
}

void km_exec_forget_mgmt(void)
{
	host_mgmt_fd = -1;
	host_mgmt_dev = host_mgmt_ino = 0;
}

/* --- argv and envp ------------------------------------------------------------------------ */

typedef struct strv {
	char **v;
	size_t n, cap;
} strv_t;

static void strv_free(strv_t *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* Inserts a copy of str at index at. 0 or -ENOMEM. */
static int strv_insert(strv_t *s, size_t at, const char *str)
{
	if (s->n + 2 > s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		char **v = realloc(s->v, cap * sizeof(*v));
		if (v == NULL)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	char *c = strdup(str);
	if (c == NULL)
		return -ENOMEM;
	memmove(&s->v[at + 1], &s->v[at], (s->n - at) * sizeof(*s->v));
	s->v[at] = c;
	s->n++;
	s->v[s->n] = NULL;
	return 0;
}

/* The room argv and envp have, as Linux gives it: a quarter of the stack limit, between
 * ARG_MIN and ARG_CAP. */
static size_t arg_room(km_guest_t *g)
{
	struct rlimit rl;
	size_t room = ARG_CAP;
	if (km_rlimit_get(g, RLIMIT_STACK, &rl) == 0 && rl.rlim_cur / 4 < room)
		room = rl.rlim_cur / 4;
	return room < ARG_MIN ? ARG_MIN : room;
}

/* Copies the guest's NULL-terminated string array at gva (0: empty), counting each string and
 * pointer against *room: E2BIG past it or for a string longer than MAX_ARG_STRLEN, EFAULT. */
static long copy_strv(km_guest_t *g, uint64_t gva, strv_t *s, size_t *room, char *buf)
{
	for (uint64_t i = 0; gva != 0; i++) {
		uint64_t p;
		if (gva + i * 8 < gva || km_copy_from_guest(&g->mm, &p, gva + i * 8, sizeof(p)) < 0)
			return -EFAULT;
		if (p == 0)
			return 0;
		if (*room < sizeof(p))
			return -E2BIG;
		*room -= sizeof(p);
		int rc = km_copy_str(&g->mm, p, buf, MAX_ARG_STRLEN);
		if (rc < 0)
			return rc == -ENAMETOOLONG ? -E2BIG : rc;
		size_t len = strlen(buf) + 1;
		if (*room < len)
			return -E2BIG;
		*room -= len;
		if (strv_insert(s, s->n, buf) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* --- the program -------------------------------------------------------------------------- */

/* Opens what the guest names for exec, in km's range, close-on-exec. The fd or -errno. */
static int open_prog(km_guest_t *g, int dirfd, const char *path, int flags)
{
	if (path[0] == '\0' && (flags & AT_EMPTY_PATH)) {
		if (dirfd == AT_FDCWD)
			return -EACCES; /* the working directory: a directory */
		if (dirfd < 0 || km_fd_check(dirfd) < 0 || fcntl(dirfd, F_GETFD) < 0)
			return -EBADF;
		int fd = km_fd_reopen(dirfd, O_RDONLY | O_NONBLOCK);
		if (fd < 0)
			return errno == ENXIO || errno == EISDIR ? -EACCES : -errno;
		fd = km_fd_reserve(fd);
		return fd < 0 ? -EMFILE : fd;
	}
	if (km_is_self_exe(g, path)) { /* the program itself, as Linux would run it again */
		path = g->exe_path;
		dirfd = AT_FDCWD;
	}
	bool follow = !(flags & AT_SYMLINK_NOFOLLOW);
	long rc = km_path_admit(g, dirfd, path, follow);
	if (rc < 0)
		return (int)rc;
	km_fd_transient_begin();
	long fd = openat(km_fd_at(dirfd), path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
	fd = km_fd_admit(g, fd < 0 ? -errno : fd);
	if (fd >= 0) {
		fd = km_fd_reserve((int)fd);
		if (fd < 0)
			fd = -EMFILE;
	}
	km_fd_transient_end();
	return (int)fd;
}

/* What Linux checks of the file itself: a regular file, on a mount that allows exec, that the
 * caller may execute. 0 or -EACCES. */
static int check_file(int fd)
{
	struct stat st;
	struct statvfs vfs;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return -EACCES;
	if (fstatvfs(fd, &vfs) == 0 && (vfs.f_flag & ST_NOEXEC))
		return -EACCES;
	if (syscall(SYS_faccessat2, fd, "", X_OK, AT_EMPTY_PATH | AT_EACCESS) < 0)
		return errno == EACCES || errno == EPERM ? -EACCES : -errno;
	return 0;
}

/* The first line of a #! script in buf (n bytes): its interpreter and optional argument, as
 * Linux's binfmt_script takes them. 0, or -ENOEXEC. */
static int parse_shebang(char *buf, size_t n, char **interp, char **arg)
{
	size_t end = 2;
	while (end < n && buf[end] != '\n' && buf[end] != '\0')
		end++;
	bool whole = end < n;
	buf[end] = '\0'; /* n < sizeof(buf): there is room for it */
	char *p = buf + 2;
	while (*p == ' ' || *p == '\t')
		p++;
	char *e = buf + end;
	while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	if (*p == '\0')
		return -ENOEXEC;
	*interp = p;
	while (*p != '\0' && *p != ' ' && *p != '\t')
		p++;
	/* A line cut by the buffer must at least end the interpreter's name within it. */
	if (!whole && *p == '\0' && e == buf + end)
		return -ENOEXEC;
	*arg = NULL;
	if (*p != '\0') {
		*p++ = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '\0')
			*arg = p;
	}
	return 0;
}

/* The name Linux gives the file (a script's argument, AT_EXECFN): the path, or /dev/fd/N[/path]
 * when it is relative to a directory fd. */
static void file_name(int dirfd, const char *path, char *out, size_t size)
{
	out[0] = '\0';
	if (strlen(path) + 32 > size)
		return;
	if (path[0] == '/' || dirfd == AT_FDCWD)
		snprintf(out, size, "%s", path);
	else if (path[0] == '\0')
		snprintf(out, size, "/dev/fd/%d", dirfd);
	else
		snprintf(out, size, "/dev/fd/%d/%s", dirfd, path);
}

/* argv becomes interp [arg] name argv[1...], as binfmt_script makes it. */
static int script_argv(strv_t *argv, const char *interp, const char *arg, const char *name)
{
	if (argv->n > 0) {
		free(argv->v[0]);
		memmove(&argv->v[0], &argv->v[1], argv->n * sizeof(*argv->v));
		argv->n--;
	}
	if (strv_insert(argv, 0, name) < 0 || (arg != NULL && strv_insert(argv, 0, arg) < 0) ||
	    strv_insert(argv, 0, interp) < 0)
		return -ENOMEM;
	return 0;
}

/* Opens and checks the file named, as Linux does first (before it looks at argv). */
static int open_checked(km_guest_t *g, int dirfd, const char *path, int flags)
{
	int f = open_prog(g, dirfd, path, flags);
	int rc = f < 0 ? f : check_file(f);
	if (rc < 0 && f >= 0)
		close(f);
	return rc < 0 ? rc : f;
}

/* Follows #! scripts from (dirfd, path), open and checked at *fd, to the ELF program km will run
 * and checks it. The program's fd (km's range) in *fd, argv rewritten for scripts. 0 or -errno
 * (*fd then closed); *why for --trace. */
static int resolve(km_guest_t *g, int dirfd, const char *path0, int flags, strv_t *argv, int *fd, char *why,
		   size_t whylen)
{
	char path[KM_PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s", path0);
	int f = *fd;
	*fd = -1;
	for (int depth = 0;; depth++) {
		int rc = depth == 0 ? 0 : (f = open_checked(g, dirfd, path, flags));
		rc = rc < 0 ? rc : 0;
		char buf[BINPRM_BUF_SIZE + 1];
		ssize_t n = rc == 0 ? pread(f, buf, BINPRM_BUF_SIZE, 0) : 0;
		if (rc == 0 && n < 0)
			rc = -errno;
		if (rc == 0 && n >= 2 && buf[0] == '#' && buf[1] == '!') {
			char *interp, *arg, name[KM_PATH_MAX + 64];
			close(f);
			f = -1;
			if (depth >= SCRIPT_DEPTH)
				return -ELOOP;
			/* Linux names a script by an fd the new program cannot reach: ENOENT. */
			if (path[0] != '/' && dirfd != AT_FDCWD && (fcntl(dirfd, F_GETFD) & FD_CLOEXEC))
				return -ENOENT;
			if ((rc = parse_shebang(buf, (size_t)n, &interp, &arg)) < 0)
				return rc;
			file_name(dirfd, path, name, sizeof(name));
			if ((rc = script_argv(argv, interp, arg, name)) < 0)
				return rc;
			snprintf(path, sizeof(path), "%s", interp);
			dirfd = AT_FDCWD;
			flags = 0;
			continue;
		}
		if (rc == 0) {
			char self[64];
			km_err_t *err = NULL;
			snprintf(self, sizeof(self), "/proc/self/fd/%d", f);
			rc = km_elf_probe(self, &err);
			if (err != NULL) { /* named by the path the guest gave, not km's fd */
				size_t sl = strlen(self);
				bool named = strncmp(err->msg, self, sl) == 0 && strncmp(err->msg + sl, ": ", 2) == 0;
				snprintf(why, whylen, "%s", err->msg + (named ? sl + 2 : 0));
			}
			km_err_free(&err);
		}
		if (rc < 0) {
			if (f >= 0)
				close(f);
			return rc;
		}
		*fd = f;
		return 0;
	}
}

/* --- the state ---------------------------------------------------------------------------- */

/* A copy of fd for the new km: in km's range, not close-on-exec. -1 if it cannot be made. */
static int pass(int fd)
{
	return fd < 0 ? -1 : fcntl(fd, F_DUPFD, KM_FD_RESERVED_BASE);
}

static bool same_file(int a, int b)
{
	pid_t me = getpid();
	return syscall(SYS_kcmp, me, me, KCMP_FILE, a, b) == 0;
}

/* True if the guest keeps an fd on keeper's file across exec (open, not close-on-exec). */
static bool kept(km_guest_t *g, int keeper, int only)
{
	int lo = only >= 0 ? only : 0, hi = only >= 0 ? only + 1 : km_fd_limit(g);
	for (int fd = lo; fd < hi; fd++) {
		int fl = fcntl(fd, F_GETFD);
		if (fl >= 0 && !(fl & FD_CLOEXEC) && same_file(fd, keeper))
			return true;
	}
	return false;
}

static int add_pair(km_exec_fdpair_t **p, uint32_t *n, int guest_fd, int keeper, uint64_t mask)
{
	if (*n >= KM_EXEC_STATE_FDS_MAX)
		return 0; /* past the bound the new km accepts: forgotten, as a resume would */
	km_exec_fdpair_t *np = realloc(*p, (*n + 1) * sizeof(*np));
	if (np == NULL)
		return -ENOMEM;
	*p = np;
	int fd = pass(keeper);
	if (fd < 0)
		return -errno;
	np[(*n)++] = (km_exec_fdpair_t){guest_fd, fd, mask};
	return 0;
}

static int collect_fds(km_guest_t *g, km_exec_state_t *st)
{
	for (int i = 0; i < g->ninherited; i++)
		if (kept(g, g->inherited[i].keeper, g->inherited[i].fd) &&
		    add_pair(&st->inherited, &st->ninherited, g->inherited[i].fd, g->inherited[i].keeper, 0) < 0)
			return -ENOMEM;
	km_signal_lock(g);
	int rc = 0;
	for (int i = 0; i < KM_MAX_SIGFDS && rc == 0; i++)
		if (g->sigfds[i].used && kept(g, g->sigfds[i].keeper, -1))
			rc = add_pair(&st->sigfds, &st->nsigfds, -1, g->sigfds[i].keeper, g->sigfds[i].mask);
	km_signal_unlock(g);
	return rc;
}

static int add_sigs(km_exec_state_t *st, const km_sigqueue_t *q, uint32_t own)
{
	for (size_t i = 0; i < q->n && st->nsigs < KM_EXEC_STATE_SIGS_MAX; i++)
		st->sigs[st->nsigs++] = (km_exec_sig_t){own, *km_sigqueue_at(q, i)};
	return 0;
}

/* The guest's signals: the caller's mask, what is ignored, what is pending. */
static int collect_signals(km_vcpu_t *v, km_exec_state_t *st)
{
	km_guest_t *g = v->g;
	st->sigs = calloc(KM_EXEC_STATE_SIGS_MAX, sizeof(*st->sigs));
	if (st->sigs == NULL)
		return -ENOMEM;
	km_signal_lock(g);
	st->sigmask = v->sigmask;
	for (int sig = 1; sig <= KM_NSIG; sig++)
		if (g->sigactions[sig - 1].handler == (uint64_t)(uintptr_t)SIG_IGN)
			st->ignored |= KM_SIGBIT(sig);
	add_sigs(st, &g->sigpending, 0);
	add_sigs(st, &v->sigpending, 1);
	km_signal_unlock(g);
	return 0;
}

static int collect(km_vcpu_t *v, int prog_fd, km_exec_state_t *st)
{
	km_guest_t *g = v->g;
	const km_guest_opts_t *o = &g->opts;
	memset(st, 0, sizeof(*st));
	st->memory = o->memory;
	st->snapshot_file_max = o->snapshot_file_max;
	st->tcp_established = o->tcp_established;
	st->restore_missing = o->restore_missing;
	st->trace = o->trace;
	st->coredump_forced = o->coredump_forced;
	st->no_seccomp = !host_confined;
	st->timing = o->timing;
	st->syscall_path = (uint8_t)o->syscall_path;
	st->self_contained = o->self_contained;
	st->snapshot_chain = o->snapshot_chain;
	st->snapshot_path = (char *)o->snapshot_path;
	st->coredump_path = (char *)o->coredump_path;
	/* A socket km created by path: handed over with its file, which the new km removes at its
	 * end; one given as --mgmt-fd: handed over alone. */
	st->mgmt_path = (char *)o->mgmt_path;
	st->mgmt_dev = host_mgmt_fd >= 0 ? host_mgmt_dev : 0;
	st->mgmt_ino = host_mgmt_fd >= 0 ? host_mgmt_ino : 0;
	st->kvm_fd = pass(g->machine.kvm_fd);
	st->mgmt_fd = pass(host_mgmt_fd);
	st->err_fd = pass(km_error_fd());
	st->prog_fd = pass(prog_fd);
	st->pid = g->pid;
	st->unkillable = g->unkillable;
	st->descendant = km_end_is_descendant();
	st->mono_shift = km_vdso_mono_shift(g);
	st->nofile = g->nofile;
	memcpy(st->rlim, g->rlim, sizeof(st->rlim));
	st->rlim_set = g->rlim_set;
	size_t glen = 0;
	st->gsc = g->gseccomp != NULL ? km_gsc_save(g->gseccomp, &glen) : NULL;
	st->gsc_len = (uint32_t)glen;
	if (st->kvm_fd < 0 || st->err_fd < 0 || st->prog_fd < 0 || (host_mgmt_fd >= 0 && st->mgmt_fd < 0) ||
	    (g->gseccomp != NULL && g->gseccomp->nfilters > 0 && st->gsc == NULL))
		return -ENOMEM;
	if (collect_signals(v, st) < 0)
		return -ENOMEM;
	return collect_fds(g, st);
}

/* Closes the copies made for the new km (the exec failed). */
static void drop(km_exec_state_t *st)
{
	st->snapshot_path = st->coredump_path = st->mgmt_path = NULL; /* the options' */
	st->envp = NULL; /* the caller's */
	st->nenvp = 0;
	km_exec_state_free(st);
}

/* --- the exec ----------------------------------------------------------------------------- */

/* km's command line for the new program: km --exec-state=FD -- argv... */
static char **km_argv(int state_fd, strv_t *argv, char *opt, size_t optlen)
{
	char **kv = calloc(argv->n + 4, sizeof(*kv));
	if (kv == NULL)
		return NULL;
	snprintf(opt, optlen, "--exec-state=%d", state_fd);
	kv[0] = "km";
	kv[1] = opt;
	kv[2] = "--";
	for (size_t i = 0; i < argv->n; i++)
		kv[3 + i] = argv->v[i];
	return kv;
}

extern char **environ;

/* Replaces km with a km running the program at prog_fd. Returns only on failure (-errno). */
static long reexec_locked(km_vcpu_t *v, int prog_fd, strv_t *argv, strv_t *envp)
{
	km_exec_state_t st;
	km_err_t *err = NULL;
	/* A kick or another signal of km's own that reached this thread during the exec would find
	 * its handler reset in the new km and end it: blocked until the new km has its handlers
	 * (the mask crosses the exec; the state says what to go back to). */
	uint64_t block = ~(KM_SIGBIT(SIGSYS) | KM_SIG_UNBLOCKABLE), old_mask = 0;
	syscall(SYS_rt_sigprocmask, SIG_BLOCK, &block, &old_mask, sizeof(old_mask));
	long rc = collect(v, prog_fd, &st);
	st.host_mask = old_mask;
	st.envp = envp->v;
	st.nenvp = (uint32_t)envp->n;
	int sfd = rc == 0 ? km_exec_state_write(&st, &err) : -1;
	if (rc == 0 && sfd < 0)
		rc = -(err != NULL && err->errnum != 0 ? err->errnum : ENOMEM);
	km_err_free(&err);
	char opt[64];
	char **kv = rc == 0 ? km_argv(sfd, argv, opt, sizeof(opt)) : NULL;
	if (rc == 0 && kv == NULL)
		rc = -ENOMEM;
	if (rc == 0) {
		/* The syscall layer traces a call when it returns, which this one does not. */
		if (v->g->opts.trace)
			dprintf(v->g->opts.trace_fd, "execve(\"%s\", ...) = 0 (km starts again for the new program)\n",
				argv->v[0]);
		fcntl(KM_EXEC_SELF_FD, F_SETFD, 0);
		syscall(SYS_execveat, KM_EXEC_SELF_FD, "", kv, environ, AT_EMPTY_PATH); /* km's own */
		rc = -errno;
		fcntl(KM_EXEC_SELF_FD, F_SETFD, FD_CLOEXEC);
	}
	free(kv);
	if (sfd >= 0)
		close(sfd);
	drop(&st);
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old_mask, NULL, sizeof(old_mask));
	return rc;
}

/* One exec at a time: two threads exec'ing at once would each pass fds to a km that knows only
 * one state (the kernel lets one exec win and ends the other thread). */
static pthread_mutex_t exec_lock = PTHREAD_MUTEX_INITIALIZER;

static long reexec(km_vcpu_t *v, int prog_fd, strv_t *argv, strv_t *envp)
{
	pthread_mutex_lock(&exec_lock);
	long rc = reexec_locked(v, prog_fd, argv, envp);
	pthread_mutex_unlock(&exec_lock);
	return rc;
}

static void trace_why(km_guest_t *g, const char *path, long rc, const char *why)
{
	if (g->opts.trace && why[0] != '\0')
		dprintf(g->opts.trace_fd, "km: execve %s: %s (%s)\n", path, why, strerrorname_np((int)-rc) ?: "?");
}

long km_proc_execve(km_vcpu_t *v, int dirfd, uint64_t pathp, uint64_t argvp, uint64_t envpp, int flags)
{
	km_guest_t *g = v->g;
	if (flags & ~(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW))
		return -EINVAL;
	char path[KM_PATH_MAX];
	int rc = km_copy_str(&g->mm, pathp, path, sizeof(path));
	if (rc < 0)
		return rc;
	/* Linux's order: the file first (ENOENT, EACCES), then argv and envp, then its contents. */
	int prog = open_checked(g, dirfd, path, flags);
	if (prog < 0)
		return prog;
	char *buf = malloc(MAX_ARG_STRLEN);
	if (buf == NULL) {
		close(prog);
		return -ENOMEM;
	}
	strv_t argv = {0}, envp = {0};
	size_t room = arg_room(g);
	long ret = copy_strv(g, argvp, &argv, &room, buf);
	if (ret == 0)
		ret = copy_strv(g, envpp, &envp, &room, buf);
	free(buf);
	/* Linux runs a program given no argv with one empty argument. */
	if (ret == 0 && argv.n == 0)
		ret = strv_insert(&argv, 0, "");
	if (ret == 0 && envp.v == NULL && (envp.v = calloc(1, sizeof(char *))) == NULL)
		ret = -ENOMEM;
	char why[512] = "";
	if (ret == 0)
		ret = resolve(g, dirfd, path, flags, &argv, &prog, why, sizeof(why));
	if (ret == 0 && fcntl(KM_EXEC_SELF_FD, F_GETFD) < 0) {
		snprintf(why, sizeof(why), "km has no fd on its own binary (/proc/self/exe could not be opened at start)");
		ret = -ENOSYS;
	}
	if (ret == 0)
		ret = reexec(v, prog, &argv, &envp);
	else
		trace_why(g, path, ret, why);
	if (prog >= 0)
		close(prog);
	strv_free(&argv);
	strv_free(&envp);
	return ret;
}

/* --- the syscalls ------------------------------------------------------------------------- */

KM_SYSCALL(execve)
{
	return km_proc_execve(v, AT_FDCWD, a[0], a[1], a[2], 0);
}

KM_SYSCALL(execveat)
{
	return km_proc_execve(v, (int)a[0], a[1], a[2], a[3], (int)a[4]);
}

const km_sys_def_t km_sys_exec_defs[] = {
    {SYS_execve, "execve", sys_execve, "spp"},
    {SYS_execveat, "execveat", sys_execveat, "fsppx"},
    {0, NULL, NULL, NULL},
};
