/* One guest: creation, program loading, running, teardown. See km_guest.h. */
#include "km_guest.h"
#include "km_inotify_paths.h"
#include "km_guest_seccomp.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "km_elf_load.h"
#include "km_initstack.h"
#include "km_runtime.h"
#include "km_snapshot.h"
#include "km_syscall.h"
#include "km_syscall_poll.h"
#include "km_sys_util.h"
#include "km_threads.h"
#include "km_vdso.h"

static int register_slot(void *ctx, int slot, uint64_t gpa, uint64_t size, void *host)
{
	km_err_t *err = NULL;
	int rc = km_machine_set_memory(ctx, slot, gpa, size, host, &err);
	km_err_free(&err);
	return rc;
}

/* The oldest mapping epoch a syscall in flight started in (km_mm.h: freed guest memory is not
 * reused while a host syscall may still use it). Called with the mapping lock written. */
static uint64_t oldest_busy(void *ctx)
{
	km_guest_t *g = ctx;
	uint64_t oldest = UINT64_MAX;
	for (int i = 0; i < KM_MAX_VCPUS; i++) {
		km_vcpu_t *v = __atomic_load_n(&g->vcpus[i], __ATOMIC_ACQUIRE);
		uint64_t ep = v != NULL ? __atomic_load_n(&v->sys_epoch, __ATOMIC_ACQUIRE) : 0;
		if (ep != 0 && ep < oldest)
			oldest = ep;
	}
	return oldest;
}

bool km_guest_end(km_guest_t *g, int exit_status, int term_signal)
{
	pthread_mutex_lock(&g->threads.lock);
	bool first = !g->exited;
	if (first) {
		g->exit_status = exit_status;
		g->term_signal = term_signal;
		__atomic_store_n(&g->exited, true, __ATOMIC_SEQ_CST);
		pthread_cond_broadcast(&g->threads.cond);
	}
	pthread_mutex_unlock(&g->threads.lock);
	if (first)
		km_threads_kick_all(g); /* every thread leaves at its next look */
	return first;
}

int km_guest_create(km_guest_t *g, const km_guest_opts_t *opts, km_err_t **err)
{
	memset(g, 0, sizeof(*g));
	g->machine.kvm_fd = g->machine.vm_fd = -1;
	g->opts = *opts;
	g->pid = getpid();
	g->unkillable = g->pid == 1; /* a resumed guest's pid may be its old one: this is km's own */
	km_threads_init(&g->threads);
	pthread_mutex_init(&g->sig_lock, NULL);
	g->threads_inited = true;
	g->threads.next_tid = g->pid + 1;
	/* Ignored signals stay ignored across exec; the guest starts as if km had exec'd it. */
	for (int sig = 1; sig <= KM_NSIG; sig++)
		if (opts->ignored_signals & (1ull << (sig - 1)))
			g->sigactions[sig - 1].handler = (uint64_t)(uintptr_t)SIG_IGN;
	km_syscall_init();
	if (km_machine_open(&g->machine, opts->kvm_dev, opts->kvm_fd, err) < 0)
		return -1;
	if (km_mm_init(&g->mm, opts->memory, g->machine.phys_bits, err) < 0)
		return -1;
	if (km_mm_attach(&g->mm, register_slot, &g->machine, err) < 0)
		return -1;
	g->mm.oldest_busy = oldest_busy;
	g->mm.busy_ctx = g;
	if (km_runtime_load(&g->mm, err) < 0)
		return -1;
	return km_vdso_init(g, err);
}

/* Loads the interpreter and records it in g->dynlinker. */
static int load_interp(km_guest_t *g, const char *prog, const km_elf_info_t *elf, km_interp_info_t *interp,
		       km_err_t **err)
{
	if (km_elf_load_interp(&g->mm, prog, elf, interp, err) < 0)
		return -1;
	struct km_dynlinker *d = &g->dynlinker;
	if ((d->path = strdup(interp->path)) == NULL)
		return km_err_set(err, ENOMEM, "%s", prog);
	d->base = interp->base;
	d->entry = interp->entry;
	d->dev = interp->dev;
	d->ino = interp->ino;
	d->size = interp->size;
	d->mtime_sec = interp->mtime_sec;
	d->mtime_nsec = interp->mtime_nsec;
	return 0;
}

int km_guest_load_program(km_guest_t *g, const char *path, char *const argv[], char *const envp[],
			  km_err_t **err)
{
	km_elf_info_t elf;
	g->exe_path = realpath(path, NULL);
	/* A program an execve named by an fd on a file no path reaches (fexecve of a memfd, passed
	 * as /proc/self/fd/N: km_exec_state.h) is called what Linux calls it, "/memfd:x (deleted)". */
	int e = errno;
	char link[4096];
	ssize_t n = g->exe_path == NULL && e == ENOENT ? readlink(path, link, sizeof(link) - 1) : -1;
	if (n > 0) {
		link[n] = '\0';
		if (km_link_deleted(link))
			g->exe_path = strdup(link);
	}
	if (g->exe_path == NULL)
		return km_err_set(err, e, "%s", path);
	if (km_guest_set_argv(g, argv, err) < 0)
		return -1;
	for (g->env_count = 0; envp[g->env_count] != NULL; g->env_count++)
		g->env_bytes += strlen(envp[g->env_count]) + 1;
	if (km_elf_load(&g->mm, path, &elf, err) < 0)
		return -1;
	g->entry = elf.entry;
	km_mm_set_brk_start(&g->mm, elf.image_end);
	/* As Linux: the stack (which sets where mmap looks) before the interpreter, mapped as mmap
	 * would place it. */
	if (km_initstack_map(g, elf.exec_stack, err) < 0)
		return km_err_wrap(err, "%s", path);
	km_interp_info_t *interp = NULL;
	if (elf.interp[0] != '\0') {
		if ((interp = malloc(sizeof(*interp))) == NULL)
			return km_err_set(err, ENOMEM, "%s", path);
		int rc = load_interp(g, g->exe_path, &elf, interp, err);
		if (rc < 0) {
			free(interp);
			return -1;
		}
	}
	uint64_t rsp;
	int rc = km_initstack_build(g, &elf, interp, argv, envp, &rsp, err);
	uint64_t start = interp != NULL ? interp->entry : elf.entry;
	free(interp);
	if (rc < 0)
		return km_err_wrap(err, "%s", path);
	km_vcpu_t *v;
	if (km_vcpu_create(g, 0, &v, err) < 0)
		return -1;
	v->tid = g->pid;
	km_threads_add_initial(g, v);
	return km_vcpu_set_entry(v, start, rsp, err);
}

int km_guest_run(km_guest_t *g, km_err_t **err)
{
	/* As exec does: the process's name (comm, ps, /proc/<pid>/status) is the program's. */
	const char *base = g->exe_path != NULL ? strrchr(g->exe_path, '/') : NULL;
	if (base != NULL)
		prctl(PR_SET_NAME, base + 1);
	int rc = km_threads_run(g, err);
	if (g->opts.timing)
		km_poll_print_timing(km_error_fd());
	return rc;
}

int km_guest_set_argv(km_guest_t *g, char *const argv[], km_err_t **err)
{
	int n = 0;
	while (argv[n] != NULL)
		n++;
	g->argv = calloc((size_t)n + 1, sizeof(char *));
	if (g->argv == NULL)
		return km_err_set(err, ENOMEM, "copying the program's arguments");
	for (g->argc = 0; g->argc < n; g->argc++)
		if ((g->argv[g->argc] = strdup(argv[g->argc])) == NULL)
			return km_err_set(err, ENOMEM, "copying the program's arguments");
	return 0;
}

void km_guest_destroy(km_guest_t *g)
{
	for (int i = 0; g->argv != NULL && i < g->argc; i++)
		free(g->argv[i]);
	km_poll_stop_all(g); /* before anything a served call may use goes away */
	free(g->argv);
	free(g->auxv);
	km_vdso_stop(g);
	g->argv = NULL;
	g->auxv = NULL;
	for (int i = 0; i < KM_MAX_VCPUS; i++) {
		km_vcpu_destroy(g->vcpus[i]);
		g->vcpus[i] = NULL;
	}
	g->nvcpus = 0;
	km_sigqueue_free(&g->sigpending);
	if (g->gseccomp != NULL)
		km_gsc_free(g->gseccomp);
	free(g->gseccomp);
	g->gseccomp = NULL;
	for (int i = 0; i < g->ninherited; i++)
		close(g->inherited[i].keeper);
	free(g->inherited);
	g->inherited = NULL;
	g->ninherited = 0;
	free(g->fd_restored);
	g->fd_restored = NULL;
	g->nfd_restored = 0;
	free(g->resume_timers);
	g->resume_timers = NULL;
	km_inotify_free(g);
	if (g->threads_inited) {
		km_threads_fini(&g->threads);
		pthread_mutex_destroy(&g->sig_lock);
	}
	g->threads_inited = false;
	/* The VM first: with it gone, unmapping guest memory has no KVM mappings to tear down
	 * range by range (measured: 1 ms at 16 MiB, 7 ms at 256 MiB off every exit). */
	km_machine_close(&g->machine);
	km_mm_fini(&g->mm);
	free(g->exe_path);
	g->exe_path = NULL;
	free(g->dynlinker.path);
	g->dynlinker.path = NULL;
}
