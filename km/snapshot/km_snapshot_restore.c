/*
 * Resuming a snapshot: a fresh VM and runtime from this km, the program's memory mapped from the
 * file (copy-on-write, loaded lazily: restore time does not grow with memory size, and the file
 * is never written; a lease keeps others from writing it, km_snapshot_lease.h), every register
 * and the process state put back. See km_snapshot.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "km_fdtab.h"
#include "km_guest.h"
#include "km_guest_seccomp.h"
#include "km_machine.h"
#include "km_rlimit.h"
#include "km_runtime_layout.h"
#include "km_snapshot.h"
#include "km_snapshot_layers.h"
#include "km_snapshot_lease.h"
#include "km_signal.h"
#include "km_threads.h"
#include "km_time.h"
#include "km_sys_util.h"
#include "km_timers.h"
#include "km_vdso.h"

/* A shared file mapping comes back from its file, which must still be the same file. */
static int open_shared_file(const km_snap_vma_t *sv, const char *name, km_err_t **err)
{
	int mode = (sv->nt.prot & PROT_WRITE) ? O_RDWR : O_RDONLY;
	int fd = open(sv->path, mode | O_CLOEXEC);
	if (fd < 0)
		return km_err_set(err, errno, "%s: the file of a shared mapping at %#lx, %s", name,
				  (unsigned long)sv->nt.start, sv->path);
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_dev != sv->nt.dev || st.st_ino != sv->nt.ino) {
		close(fd);
		return km_err_set(err, 0, "%s: %s is no longer the file the program had mapped at %#lx", name,
				  sv->path, (unsigned long)sv->nt.start);
	}
	return fd;
}

static int restore_memory(km_guest_t *g, const km_snapshot_t *s, const char *name, km_err_t **err)
{
	km_mm_t *mm = &g->mm;
	uint64_t total = 0;
	for (size_t i = 0; i < s->nvmas; i++)
		total += s->vmas[i].nt.end - s->vmas[i].nt.start;
	if (total > mm->limit)
		return km_err_set(err, 0, "%s: the snapshot's %lu MiB of mappings exceed the memory limit of %lu MiB",
				  name, (unsigned long)(total >> 20), (unsigned long)(mm->limit >> 20));
	km_mm_set_brk_start(mm, s->proc.brk_start);
	mm->brk_cur = s->proc.brk_cur;
	mm->mmap_base = s->proc.mmap_base;
	mm->stack_top = s->proc.stack_top;
	for (size_t i = 0; i < s->nvmas; i++) {
		const km_snap_vma_t *sv = &s->vmas[i];
		km_vma_t v = {.start = sv->nt.start, .end = sv->nt.end, .prot = (int)sv->nt.prot,
			      .flags = (int)sv->nt.flags, .kind = (enum km_vma_kind)sv->nt.kind,
			      .path = (char *)sv->path, .offset = sv->nt.offset, .dev = (dev_t)sv->nt.dev,
			      .ino = (ino_t)sv->nt.ino};
		int fd = s->fd, share = MAP_PRIVATE;
		uint64_t off = sv->file_off;
		int again = (sv->nt.flags & MAP_SHARED) && !(sv->nt.flags & MAP_ANONYMOUS) && sv->nt.saved
				    ? km_fdtab_restored_file(g, sv->nt.dev, sv->nt.ino)
				    : -1;
		if (again >= 0) { /* the memfd or deleted file the fd table recreated: shared again */
			fd = again;
			share = MAP_SHARED;
			off = sv->nt.offset;
			/* A writable mapping needs the file open for writing, which the program's fd
			 * may not be (a copy made here and closed again drops the program's POSIX
			 * locks on the file: a rare mix, left so). */
			if ((sv->nt.prot & PROT_WRITE) && (fcntl(again, F_GETFL) & O_ACCMODE) != O_RDWR) {
				if ((fd = km_fd_reserve(km_fd_reopen(again, O_RDWR))) < 0)
					return km_err_set(err, errno, "%s: the file of a shared mapping at %#lx", name,
							  (unsigned long)sv->nt.start);
			}
		} else if (!sv->nt.saved) {
			if ((fd = open_shared_file(sv, name, err)) < 0)
				return -1;
			share = MAP_SHARED;
			off = sv->nt.offset;
		}
		int rc = km_mm_restore_vma(mm, &v, fd, off, share);
		if (fd != s->fd && fd != again)
			close(fd);
		if (rc < 0)
			return km_err_set(err, -rc, "%s: mapping %#lx-%#lx", name, (unsigned long)v.start,
					  (unsigned long)v.end);
		/* 2.6: the pages this file does not hold, from the layers below it */
		if (fd == s->fd && km_layers_map_vma(mm, s, i, name, err) < 0)
			return -1;
	}
	return 0;
}

static int restore_process(km_guest_t *g, const km_snapshot_t *s, const char *name, km_err_t **err)
{
	g->exe_path = strdup(s->exe_path);
	g->auxv = malloc(s->auxv_len);
	if (g->exe_path == NULL || g->auxv == NULL)
		return km_err_set(err, ENOMEM, "%s", name);
	memcpy(g->auxv, s->auxv, s->auxv_len);
	g->auxv_len = s->auxv_len;
	char **argv = calloc(s->argc + 1, sizeof(char *));
	if (argv == NULL)
		return km_err_set(err, ENOMEM, "%s", name);
	const char *p = s->argv;
	for (uint32_t i = 0; i < s->argc; i++, p += strlen(p) + 1)
		argv[i] = (char *)p;
	int rc = km_guest_set_argv(g, argv, err);
	free(argv);
	if (rc < 0)
		return -1;
	/* The program keeps the ids it had: libcs cache the tid (raise, mutex owners). */
	g->pid = (pid_t)s->proc.pid;
	g->entry = s->proc.entry;
	g->env_count = s->proc.env_count;
	g->env_bytes = s->proc.env_bytes;
	/* Only ever read through checked guest-memory copies (km_procview.c): any value is safe. */
	g->arg_start = s->proc.arg_start;
	g->arg_end = s->proc.arg_end;
	g->env_start = s->proc.env_start;
	g->env_end = s->proc.env_end;
	g->start_stack = s->proc.start_stack;
	memcpy(g->sigactions, s->sigactions, sizeof(g->sigactions));
	g->nofile.rlim_cur = s->proc.nofile_guest[0];
	g->nofile.rlim_max = s->proc.nofile_guest[1];
	if (km_snapshot_has(s, KM_SNAPSHOT_MINOR_FILES)) /* before, the file held km's own limits */
		km_rlimit_restore(g, s->proc.rlimits, name);
	umask((mode_t)s->proc.umask);
	if (s->cwd[0] != '\0' && chdir(s->cwd) < 0)
		return km_err_set(err, errno, "%s: entering the program's working directory %s", name, s->cwd);
	return 0;
}

/* A relative sleep the snapshot interrupted goes on for what was left of it (from now). */
static void restore_sleep(km_vcpu_t *v, const km_nt_cpu_t *c)
{
	clockid_t clk = (clockid_t)c->reserved[3];
	struct timespec now;
	if (c->reserved[1] == 0 || c->reserved[1] > KM_NS_PER_SEC * 86400 * 365 || clock_gettime(clk, &now) < 0)
		return; /* no sleep, an absurd one, or a clock this host lacks: the sleep starts anew */
	v->sleep_restart.valid = true;
	v->sleep_restart.deadline = km_ts_add_ns(now, c->reserved[1] - 1);
	v->sleep_restart.clk = clk;
	v->sleep_restart.req_gva = c->reserved[2];
	v->sleep_restart.rip = c->reserved[4];
}

static int restore_vcpu(km_guest_t *g, const km_snap_cpu_t *c, const char *name, km_err_t **err)
{
	km_vcpu_t *v;
	if (km_vcpu_create(g, (int)c->km.vcpu_id, &v, err) < 0)
		return -1;
	v->tid = (pid_t)c->km.tid;
	km_threads_add_initial(g, v);
	v->sigmask = c->km.sigmask & ~KM_SIG_UNBLOCKABLE;
	v->restore_sigmask = (c->km.flags & KM_CPU_RESTORE_SIGMASK) != 0;
	v->saved_sigmask = c->km.reserved[0] & ~KM_SIG_UNBLOCKABLE;
	restore_sleep(v, &c->km);
	v->altstack.ss_sp = (void *)(uintptr_t)c->km.altstack_sp;
	v->altstack.ss_size = c->km.altstack_size;
	v->altstack.ss_flags = (int)c->km.altstack_flags;
	v->clear_child_tid = c->km.clear_child_tid;
	v->robust_list = c->km.robust_list;
	v->robust_list_len = c->km.robust_list_len;
	memcpy(v->comm, &c->km.reserved[5], 15); /* 2.3; zeros before: none (v->comm[15] stays 0) */
	km_vcpu_state_t *st = &v->state;
	const uint64_t *r = c->km.regs;
	memset(&st->regs, 0, sizeof(st->regs));
	st->regs = (struct kvm_regs){.rax = r[0], .rbx = r[1], .rcx = r[2], .rdx = r[3], .rsi = r[4], .rdi = r[5],
				     .rsp = r[6], .rbp = r[7], .r8 = r[8], .r9 = r[9], .r10 = r[10], .r11 = r[11],
				     .r12 = r[12], .r13 = r[13], .r14 = r[14], .r15 = r[15], .rip = r[16],
				     .rflags = r[17]};
	/* The program's code, or the vDSO's (a thread caught inside clock_gettime). */
	if (st->regs.rip >= KM_USER_TOP && !km_vdso_holds(g, st->regs.rip))
		return km_err_set(err, 0, "%s: vCPU %u stood outside the program (rip %#lx)", name, c->km.vcpu_id,
				  (unsigned long)st->regs.rip);
	st->fs_base = c->km.fs_base;
	st->gs_base = c->km.gs_base;
	st->xcr0 = c->km.xcr0;
	st->flags = c->km.flags;
	memset(&st->xsave, 0, sizeof(st->xsave));
	memcpy(st->xsave.region, c->xsave, c->xsave_len);
	memset((uint8_t *)st->xsave.region + 464, 0, 8); /* the XCR0 copy gdb wants is not XSAVE state */
	if (km_vcpu_load_state(v, err) < 0)
		return km_err_wrap(err, "%s", name);
	return 0;
}

/* Pending signals go back in their queues, in order; the timers are armed when the guest starts
 * (km_timers.h). */
static int restore_signals(km_guest_t *g, const km_snapshot_t *s, const char *name, km_err_t **err)
{
	for (uint32_t k = 0; k < s->nsigpending; k++) {
		km_nt_sigpending_t e;
		siginfo_t info;
		memcpy(&e, s->sigpending + (size_t)k * sizeof(e), sizeof(e));
		memcpy(&info, e.info, sizeof(info));
		km_sigqueue_t *q = &g->sigpending;
		if (e.tid != 0) {
			km_vcpu_t *t = km_signal_guest_thread(g, (pid_t)e.tid);
			if (t == NULL)
				return km_err_set(err, 0, "%s: a signal pending for thread %u, which it does not have", name,
						  e.tid);
			q = &t->sigpending;
		}
		if (km_sigqueue_add(q, &info) < 0)
			return km_err_set(err, 0, "%s: too many pending signals", name);
	}
	if (s->timers != NULL && km_timers_stash(g, s->timers, s->timers_len) < 0)
		return km_err_set(err, 0, "%s: corrupt snapshot: bad NT_KM_TIMERS note", name);
	return 0;
}

/* The program was filtered when the snapshot was taken: it stays so. */
static int restore_seccomp(km_guest_t *g, const km_snapshot_t *s, const char *name, km_err_t **err)
{
	if (s->seccomp == NULL)
		return 0;
	if (km_gsc_ensure(&g->gseccomp) == NULL)
		return km_err_set(err, ENOMEM, "%s: the program's seccomp filter", name);
	if (km_gsc_restore(g->gseccomp, s->seccomp, s->seccomp_len, err) < 0)
		return km_err_wrap(err, "%s: corrupt snapshot", name);
	return 0;
}

/* The fd table (2.3); an older file had only what the resuming km gives the program. */
static int restore_files(km_guest_t *g, const km_snapshot_t *s, const char *name, km_err_t **err)
{
	if (s->files == NULL)
		return km_fdtab_note_inherited(g, err);
	return km_fdtab_restore(g, s->files, s->files_len, g->mm.snapshot_fd, s->file_size, name,
				(enum km_missing_policy)g->opts.restore_missing, err);
}

/* The program may hold the vDSO's entry addresses (2.5): this km must give the same layout at the
 * same place. Its monotonic clocks go on from where the file left them (km_vdso.h). An older
 * file's program never saw a vDSO. */
static int restore_vdso(km_guest_t *g, const km_snapshot_t *s, const char *name, km_err_t **err)
{
	if (!km_snapshot_has(s, KM_SNAPSHOT_MINOR_VDSO))
		return 0;
	const km_nt_guest_t *n = &s->guest;
	if (n->vdso_layout != 0 && (n->vdso_layout != KM_VDSO_LAYOUT || n->vdso_gva != g->vdso_gva))
		return km_err_set(err, 0, "%s: its program uses vDSO layout %u at %#lx, this km gives layout %u at %#lx: "
				  "resume it with the km that wrote it", name, n->vdso_layout,
				  (unsigned long)n->vdso_gva, KM_VDSO_LAYOUT, (unsigned long)g->vdso_gva);
	/* A thread stopped inside the vDSO's code goes on in that code: only the same image has it. */
	for (uint32_t i = 0; i < s->ncpus; i++)
		if (s->cpus[i].km.reserved[7] > UINT32_MAX || !km_vdso_code_ok((uint32_t)s->cpus[i].km.reserved[7]))
			return km_err_set(err, 0, "%s: thread %u stood inside the vDSO of another km build "
					  "(image %#lx): resume it with the km that wrote it", name,
					  s->cpus[i].km.tid, (unsigned long)s->cpus[i].km.reserved[7]);
	km_vdso_resume_clocks(g, n->mono_ns);
	return 0;
}

/* Every file a private mapping maps (2.4: the program, its interpreter, libraries, data files)
 * must still have the size and modification time it had: the program's code came from it, and what it maps later (dlopen, the
 * next library of a search path) must match what it already has. Checked before anything is
 * recreated. */
static int check_member_files(const km_snapshot_t *s, const char *name, km_err_t **err)
{
	for (uint32_t i = 0; i < s->nmapfiles; i++) {
		km_nt_mapfile_t f;
		memcpy(&f, s->mapfiles + (size_t)i * sizeof(f), sizeof(f));
		const km_snap_vma_t *v = &s->vmas[f.vma]; /* index checked by the reader */
		struct stat st;
		if (stat(v->path, &st) < 0)
			return km_err_set(err, errno, "%s: %s, mapped by the program at %#lx, is gone", name, v->path,
					  (unsigned long)v->nt.start);
		/* Not dev/ino: a copy with the same size and modification time (cp -a, an image
		 * unpacked again, another host) is the same file, so snapshots move between hosts
		 * and containers; an upgrade or a rebuild changes one of them. */
		if ((uint64_t)st.st_size != f.id.size || st.st_mtim.tv_sec != f.id.mtime_sec ||
		    st.st_mtim.tv_nsec != f.id.mtime_nsec)
			return km_err_set(err, 0,
					  "%s: %s, mapped by the program at %#lx, changed since the snapshot "
					  "(size or modification time differ)",
					  name, v->path, (unsigned long)v->nt.start);
	}
	return 0;
}

/* ... of the file and of every member of the chain below it (2.6): pages may come from any. */
static int check_mapped_files(const km_snapshot_t *s, const char *name, km_err_t **err)
{
	for (const km_snapshot_t *m = s; m != NULL; m = m->parent)
		if (check_member_files(m, m == s || m->name == NULL ? name : m->name, err) < 0)
			return -1;
	return 0;
}

/* The interpreter the program was started with, for the next snapshot to record. */
static int restore_dynlinker(km_guest_t *g, const km_snapshot_t *s, const char *name, km_err_t **err)
{
	if (s->interp_path == NULL)
		return 0;
	const km_nt_dynlinker_t *d = &s->dynlinker;
	if ((g->dynlinker.path = strdup(s->interp_path)) == NULL)
		return km_err_set(err, ENOMEM, "%s", name);
	g->dynlinker.base = d->base;
	g->dynlinker.entry = d->entry;
	g->dynlinker.dev = d->interp.dev;
	g->dynlinker.ino = d->interp.ino;
	g->dynlinker.size = d->interp.size;
	g->dynlinker.mtime_sec = d->interp.mtime_sec;
	g->dynlinker.mtime_nsec = d->interp.mtime_nsec;
	return 0;
}

int km_snapshot_restore(km_guest_t *g, const km_snapshot_t *s, km_err_t **err)
{
	const char *name = g->opts.snapshot_source != NULL ? g->opts.snapshot_source : "snapshot";
	if (s->guest.user_top > KM_USER_TOP)
		return km_err_set(err, 0, "%s: taken with a larger program address space (%#lx) than this km's (%#lx)",
				  name, (unsigned long)s->guest.user_top, (unsigned long)KM_USER_TOP);
	if (restore_vdso(g, s, name, err) < 0 || check_mapped_files(s, name, err) < 0 ||
	    restore_dynlinker(g, s, name, err) < 0)
		return -1;
	/* Memory not yet touched stays in the snapshot file: keep it open for the guest's lifetime
	 * (the next snapshot reads what was never copied), leased so that nobody changes it under
	 * the guest (km_snapshot_lease.h). */
	g->mm.snapshot_fd = km_fd_reserve(dup(s->fd));
	if (g->mm.snapshot_fd < 0)
		return km_err_set(err, errno, "%s: keeping the snapshot open", name);
	int leased = km_snapshot_lease_take(g, s->saved_end, name, err);
	/* The parents of an incremental chain are mapped too: leased alike (km_snapshot_lease.h). */
	if (leased >= 0 && km_snapshot_lease_chain(g, s, name, err) < 0)
		return -1;
	/* Files before memory: a shared mapping of a memfd maps the one the fd table recreated. */
	if (leased < 0 || restore_process(g, s, name, err) < 0 || restore_files(g, s, name, err) < 0)
		return -1;
	int rc = restore_memory(g, s, name, err);
	km_fdtab_forget_files(g);
	if (rc < 0)
		return -1;
	/* Without a lease the file could change under the guest at any time: copy it all now. */
	if (!leased && km_snapshot_detach(g, err) < 0)
		return km_err_wrap(err, "%s", name);
	if (leased && km_snapshot_detach_unleased(g, err) < 0)
		return km_err_wrap(err, "%s", name);
	for (uint32_t i = 0; i < s->ncpus; i++)
		if (restore_vcpu(g, &s->cpus[i], name, err) < 0)
			return -1;
	if (restore_signals(g, s, name, err) < 0 || restore_seccomp(g, s, name, err) < 0)
		return -1;
	km_layers_resumed(g, s);
	return 0;
}
