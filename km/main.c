/* km: run a static Linux x86-64 program in its own KVM virtual machine. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "km_cli.h"
#include "km_end.h"
#include "km_exec_state.h"
#include "km_guest.h"
#include "km_guest_seccomp.h"
#include "km_inspect.h"
#include "km_mgmt.h"
#include "km_fdtab.h"
#include "km_passfd.h"
#include "km_seccomp.h"
#include "km_signal.h"
#include "km_snapshot.h"
#include "km_snapshot_layers.h"
#include "km_sys_util.h" /* KM_FD_RESERVED_BASE */

extern char **environ;

#if defined(__SANITIZE_ADDRESS__)
/* ASan zeroes RLIMIT_CORE in the processes it runs, which would silence km's own core files
 * (kmcore) in the sanitizer build; km never dumps its own core, so let the limit be. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "disable_coredump=0";
}
#endif

/* Signals km was started with ignored, as a mask (bit sig-1). */
static uint64_t inherited_ignored(void)
{
	uint64_t mask = 0;
	for (int sig = 1; sig < 64; sig++) {
		struct sigaction sa;
		if (sig != SIGKILL && sig != SIGSTOP && sigaction(sig, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
			mask |= 1ull << (sig - 1);
	}
	return mask;
}

/* Paths the user gave are relative to where km started; a resumed program moves km into its
 * own working directory, so they are made absolute first. */
static char *absolute(const char *path)
{
	if (path == NULL || path[0] == '/')
		return path != NULL ? strdup(path) : NULL;
	char cwd[4096];
	char *abs = NULL;
	if (getcwd(cwd, sizeof(cwd)) == NULL || asprintf(&abs, "%s/%s", cwd, path) < 0)
		return NULL;
	return abs;
}

typedef struct paths {
	char *snapshot, *coredump, *mgmt;
} paths_t;

static int make_paths_absolute(km_guest_opts_t *o, paths_t *p, km_err_t **err)
{
	p->snapshot = absolute(o->snapshot_path);
	p->coredump = absolute(o->coredump_path);
	p->mgmt = absolute(o->mgmt_path);
	if (p->snapshot == NULL || p->coredump == NULL || (o->mgmt_path != NULL && p->mgmt == NULL))
		return km_err_set(err, errno, "resolving file names against the working directory");
	o->snapshot_path = p->snapshot;
	o->coredump_path = p->coredump;
	o->mgmt_path = p->mgmt;
	return 0;
}

/* Resumes the snapshot at `path`, or open at fd (>= 0; then `path` only names it in messages). */
static int resume(km_guest_t *g, const km_guest_opts_t *opts, const char *path, int fd, km_err_t **err)
{
	km_snapshot_t s;
	int rc = fd >= 0 ? km_snapshot_open_fd(fd, path, &s, err) : km_snapshot_open(path, &s, err);
	if (rc == 0) /* the chain below it (2.6), every member checked before anything is built */
		rc = km_layers_open_chain(&s, fd >= 0 ? NULL : path, opts->parent_fds, opts->nparent_fds, err);
	if (rc == 0 && (rc = km_guest_create(g, opts, err)) == 0)
		rc = km_snapshot_restore(g, &s, err);
	km_snapshot_close(&s);
	return rc;
}

/* km's seccomp filter from here on (unless --no-seccomp); then the test hook, if asked for. */
static int confine(const km_cli_t *cli, km_err_t **err)
{
	/* After an execve the filter of the km before is in force (it forbids seccomp(2) itself). */
	bool inherited = cli->exec_state_fd >= 0 && !cli->no_seccomp;
	if (!cli->no_seccomp && !inherited && km_seccomp_install(err) < 0)
		return -1;
	return km_seccomp_probe(getenv("KM_TEST_SECCOMP_PROBE"), err);
}

/* Every descriptor passed in, checked and moved out of the guest's reach before anything else
 * happens (the guest inherits every fd below km's range). */
static int take_passed_fds(km_cli_t *cli, km_err_t **err)
{
	struct {
		int *fd;
		km_passfd_kind_t kind;
		const char *opt;
	} fds[] = {
	    {&cli->kvm_fd, KM_PASSFD_KVM, "--kvm-fd"},
	    {&cli->mgmt_fd, KM_PASSFD_LISTENER, "--mgmt-fd"},
	    {&cli->ready_fd, KM_PASSFD_WRITER, "--ready-fd"},
	    {&cli->start_fd, KM_PASSFD_READER, "--start-fd"},
	    {&cli->snapshot_fd, KM_PASSFD_REGULAR, "--snapshot-fd"},
	    {&cli->guest_seccomp_fd, KM_PASSFD_REGULAR, "--guest-seccomp-fd"},
	};
	/* All checked before any is moved: a move could land on a number given for another one. */
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i].fd < 0)
			continue;
		int probe = *fds[i].fd;
		if (fcntl(probe, F_GETFD) < 0)
			return km_err_set(err, 0, "%s=%d: fd %d is not open", fds[i].opt, probe, probe);
	}
	for (size_t i = 0; i < cli->nparent_fds; i++)
		if (fcntl(cli->parent_fds[i], F_GETFD) < 0)
			return km_err_set(err, 0, "--snapshot-parent-fd=%d: fd %d is not open", cli->parent_fds[i],
					  cli->parent_fds[i]);
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (*fds[i].fd >= 0 && km_passfd_take(fds[i].fd, fds[i].kind, fds[i].opt, err) < 0)
			return -1;
	for (size_t i = 0; i < cli->nparent_fds; i++)
		if (km_passfd_take(&cli->parent_fds[i], KM_PASSFD_REGULAR, "--snapshot-parent-fd", err) < 0)
			return -1;
	cli->guest.kvm_fd = cli->kvm_fd;
	if (cli->kvm_fd >= 0)
		cli->guest.kvm_dev = "the KVM device of --kvm-fd";
	return 0;
}

/* --guest-seccomp(-fd): the program's own filter, added to any a resumed snapshot carried. */
static int load_guest_seccomp(km_cli_t *cli, km_guest_t *g, km_err_t **err)
{
	if (cli->guest_seccomp_fd < 0 && cli->guest_seccomp_path == NULL)
		return 0;
	if (km_gsc_ensure(&g->gseccomp) == NULL)
		return km_err_set(err, ENOMEM, "the program's seccomp filter");
	if (cli->guest_seccomp_fd >= 0) {
		int rc = km_gsc_add_fd(g->gseccomp, cli->guest_seccomp_fd, "--guest-seccomp-fd", err);
		close(cli->guest_seccomp_fd);
		cli->guest_seccomp_fd = -1;
		return rc;
	}
	int fd = open(cli->guest_seccomp_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return km_err_set(err, errno, "--guest-seccomp: %s", cli->guest_seccomp_path);
	int rc = km_gsc_add_fd(g->gseccomp, fd, "--guest-seccomp", err);
	close(fd);
	return rc < 0 ? km_err_wrap(err, "%s", cli->guest_seccomp_path) : 0;
}

/* --ready-fd, then --start-fd: *go false when nobody will start the program. */
static int ready_and_wait(km_cli_t *cli, bool *go, km_err_t **err)
{
	*go = true;
	if (cli->ready_fd >= 0) {
		int fd = cli->ready_fd;
		cli->ready_fd = -1;
		if (km_passfd_ready(fd, err) < 0)
			return -1;
	}
	if (cli->start_fd >= 0) {
		int fd = cli->start_fd;
		cli->start_fd = -1;
		return km_passfd_wait_start(fd, go, err);
	}
	return 0;
}

/* xs: after an execve, the state of the km before (a socket file it created is this km's now). */
static int start_mgmt(km_cli_t *cli, km_guest_t *g, const km_exec_state_t *xs, km_mgmt_t **mgmt, km_err_t **err)
{
	if (cli->guest.mgmt_path == NULL && cli->mgmt_fd < 0)
		return 0;
	sigset_t mask; /* the listener never takes the guest's SIGXCPU */
	km_signal_host_block(&mask);
	int rc;
	if (cli->mgmt_fd >= 0) {
		km_mgmt_opts_t opts = {0};
		if ((xs->mgmt_dev | xs->mgmt_ino) != 0)
			opts = (km_mgmt_opts_t){.owned_path = xs->mgmt_path, .owned_dev = xs->mgmt_dev, .owned_ino = xs->mgmt_ino};
		rc = km_mgmt_start_fd(g, cli->mgmt_fd, &opts, mgmt, err);
		if (rc == 0)
			cli->mgmt_fd = -1; /* the listener's now */
	} else {
		rc = km_mgmt_start(g, cli->guest.mgmt_path, mgmt, err);
	}
	pthread_sigmask(SIG_SETMASK, &mask, NULL);
	return rc;
}

/* km's fd on its own binary at KM_EXEC_SELF_FD, for execve (km_exec.c). After an execve the
 * km before left its own there: kept when /proc is not there to open it again. */
static void open_self(km_cli_t *cli)
{
	/* A descriptor passed in on that very number moves out of the way first. */
	int *passed[] = {&cli->kvm_fd, &cli->mgmt_fd, &cli->ready_fd, &cli->start_fd, &cli->snapshot_fd,
			 &cli->guest_seccomp_fd};
	for (size_t i = 0; i < sizeof(passed) / sizeof(passed[0]); i++)
		if (*passed[i] == KM_EXEC_SELF_FD) {
			int moved = fcntl(KM_EXEC_SELF_FD, F_DUPFD, KM_FD_RESERVED_BASE);
			if (moved >= 0) {
				close(KM_EXEC_SELF_FD);
				*passed[i] = moved;
			}
		}
	int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && fd != KM_EXEC_SELF_FD) {
		dup3(fd, KM_EXEC_SELF_FD, O_CLOEXEC);
		close(fd);
	} else if (fd < 0 && cli->exec_state_fd < 0) {
		close(KM_EXEC_SELF_FD); /* not ours: execve then fails with ENOSYS */
	}
	fcntl(KM_EXEC_SELF_FD, F_SETFD, FD_CLOEXEC);
}

/* --exec-state: the options and fds of the km before the execve become this km's. */
static int take_exec_state(km_cli_t *cli, km_exec_state_t *st, km_err_t **err)
{
	int fd = cli->exec_state_fd;
	if (km_exec_state_read(fd, st, err) < 0)
		return -1;
	km_guest_opts_t *o = &cli->guest;
	if (st->err_fd >= 0) {
		km_error_use_fd(st->err_fd);
		st->err_fd = -1;
	}
	o->trace_fd = km_error_fd();
	/* The km before blocked its own signals for the exec; this km has its handlers now. */
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &st->host_mask, NULL, sizeof(st->host_mask));
	o->memory = st->memory;
	o->snapshot_file_max = st->snapshot_file_max;
	o->self_contained = st->self_contained;
	o->snapshot_chain = st->snapshot_chain;
	o->tcp_established = st->tcp_established;
	o->restore_missing = st->restore_missing;
	o->trace = st->trace;
	o->coredump_forced = st->coredump_forced;
	o->timing = st->timing;
	o->syscall_path = st->syscall_path;
	o->snapshot_path = st->snapshot_path;
	o->coredump_path = st->coredump_path;
	/* The listener: handed over (with the file km made at mgmt_path, or as --mgmt-fd), or,
	 * when it could not be, bound at mgmt_path again. start_mgmt takes a handed-over one first. */
	o->mgmt_path = st->mgmt_path;
	o->ignored_signals = st->ignored;
	cli->no_seccomp = st->no_seccomp;
	cli->kvm_fd = st->kvm_fd;
	cli->mgmt_fd = st->mgmt_fd;
	st->kvm_fd = st->mgmt_fd = -1; /* take_passed_fds checks and keeps them */
	return 0;
}

/* The program an execve named: loaded with the state of the km before it. */
static int exec_load(km_guest_t *g, km_cli_t *cli, km_exec_state_t *st, char **argv, char **env, km_err_t **err)
{
	char prog[64];
	snprintf(prog, sizeof(prog), "/proc/self/fd/%d", st->prog_fd);
	int rc = km_guest_create(g, &cli->guest, err);
	if (rc == 0)
		rc = km_exec_state_apply_process(g, st, err);
	if (rc == 0)
		rc = km_guest_load_program(g, prog, &argv[cli->prog_index], env, err);
	if (rc == 0)
		rc = km_exec_state_apply_thread(g, st, err);
	close(st->prog_fd);
	st->prog_fd = -1;
	return rc;
}

static int run(km_cli_t *cli, int argc, char **argv, int *term_signal, km_err_t **err)
{
	(void)argc;
	char fdname[64]; /* by the number it was given on */
	snprintf(fdname, sizeof(fdname), "--snapshot-fd=%d", cli->snapshot_fd);
	km_exec_state_t xs;
	memset(&xs, 0, sizeof(xs));
	xs.kvm_fd = xs.mgmt_fd = xs.err_fd = xs.prog_fd = -1;
	open_self(cli);
	if (cli->exec_state_fd >= 0 && take_exec_state(cli, &xs, err) < 0)
		return -1;
	if (take_passed_fds(cli, err) < 0) {
		km_exec_state_free(&xs);
		return -1;
	}
	const char *prog = cli->prog_index >= 0 ? argv[cli->prog_index] : fdname;
	/* Only a management request names a parent: without a socket, tracking changed pages (a
	 * fault on each page's first write after a snapshot) would buy nothing. */
	cli->guest.track_changes = cli->guest.mgmt_path != NULL || cli->mgmt_fd >= 0;
	/* --inspect parses a file that may be hostile and needs nothing the filter forbids. */
	if (cli->inspect)
		return confine(cli, err) == 0 && km_inspect(prog, cli->verify, stdout, err) == 0 ? 0 : -1;
	paths_t paths = {0};
	/* After an execve the program's environment is the one it passed, not km's (km_exec_state.h). */
	char **env = cli->exec_state_fd >= 0 ? xs.envp : km_cli_guest_env(cli, environ, err);
	if (env == NULL || make_paths_absolute(&cli->guest, &paths, err) < 0) {
		if (cli->exec_state_fd < 0)
			km_cli_free_env(env);
		km_exec_state_free(&xs);
		return -1;
	}
	km_guest_t g;
	memset(&g, 0, sizeof(g));
	g.machine.kvm_fd = g.machine.vm_fd = -1;
	int status = -1, rc;
	if (cli->exec_state_fd >= 0) {
		rc = exec_load(&g, cli, &xs, argv, env, err);
	} else if (cli->snapshot_fd >= 0) {
		int fd = cli->snapshot_fd;
		cli->snapshot_fd = -1; /* the snapshot's from here on, closed with it */
		cli->guest.snapshot_source = prog;
		rc = resume(&g, &cli->guest, prog, fd, err);
	} else if (km_snapshot_is_snapshot(prog)) {
		cli->guest.snapshot_source = prog;
		rc = resume(&g, &cli->guest, prog, -1, err);
	} else {
		rc = km_guest_create(&g, &cli->guest, err);
		if (rc == 0)
			rc = km_guest_load_program(&g, prog, &argv[cli->prog_index], env, err);
		if (rc == 0) /* what the program starts with is its caller's: a resume gives its own */
			rc = km_fdtab_note_inherited(&g, err);
	}
	km_mgmt_t *mgmt = NULL;
	bool go = true;
	if (rc == 0)
		rc = load_guest_seccomp(cli, &g, err);
	if (rc == 0)
		rc = ready_and_wait(cli, &go, err);
	if (rc == 0 && !go)
		status = 0; /* nobody will start it: not an error, and nothing ran */
	if (rc == 0 && go)
		rc = start_mgmt(cli, &g, &xs, &mgmt, err);
	if (rc == 0 && go) { /* what an execve hands over to the next km */
		uint64_t dev = 0, ino = 0;
		int lfd = mgmt != NULL ? km_mgmt_handover(mgmt, &dev, &ino) : -1;
		km_exec_set_host(!cli->no_seccomp, lfd, dev, ino);
	}
	if (rc == 0 && go)
		rc = km_signal_forward_start(&g, err);
	/* Confined from here on, before the guest's first instruction, in every mode. */
	if (rc == 0 && go)
		rc = confine(cli, err);
	/* A forked child ends through km_end too; after an exec, the program is the one exec named. */
	km_end_set_prog(cli->exec_state_fd >= 0 && g.exe_path != NULL ? g.exe_path : prog);
	km_end_set_origin(cli->exec_state_fd >= 0 && xs.descendant);
	if (rc == 0 && go && km_guest_run(&g, err) == 0)
		status = km_end_report(&g);
	km_signal_forward_stop(&g);
	km_exec_set_host(false, -1, 0, 0);
	if (mgmt != NULL)
		km_mgmt_stop(mgmt);
	*term_signal = status >= 0 ? g.term_signal : 0;
	km_guest_destroy(&g);
	if (cli->exec_state_fd < 0)
		km_cli_free_env(env);
	km_exec_state_free(&xs);
	free(paths.snapshot);
	free(paths.coredump);
	free(paths.mgmt);
	return status;
}

int main(int argc, char **argv)
{
	km_err_t *err = NULL;
	km_cli_t cli;
	int status = 1, term_signal = 0;
	/* First: a km an execve started is under km's filter already (km_exec_state.h). */
	km_seccomp_reporter(NULL);
	uint64_t ignored = inherited_ignored();
	/* A guest writing to a closed pipe must see EPIPE (and km decides about SIGPIPE), not kill km. */
	signal(SIGPIPE, SIG_IGN);
	km_signal_host_init();
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	km_vcpu_kick_init();
	km_fd_limit_init();
	km_error_keep_stderr(KM_FD_RESERVED_BASE);
	if (km_cli_parse(&cli, argc, argv, &err) == 0) {
		cli.guest.ignored_signals = ignored;
		cli.guest.start_ns = (uint64_t)t0.tv_sec * 1000000000ull + (uint64_t)t0.tv_nsec;
		const char *t = getenv("KM_TIMING");
		cli.guest.timing = t != NULL && strcmp(t, "1") == 0;
		status = cli.done ? 0 : run(&cli, argc, argv, &term_signal, &err);
	}
	if (status < 0 || err != NULL) {
		fprintf(stderr, "km: %s\n", err != NULL ? err->msg : "failed");
		status = 1;
	}
	km_err_free(&err);
	km_cli_free(&cli);
	if (term_signal != 0)
		km_end_die_like_the_guest(term_signal);
	return status;
}
