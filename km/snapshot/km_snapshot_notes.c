/* The snapshot writer's notes: CPU, process, signal, fd-table, mapping and loader state, each
 * as docs/snapshot-format.md describes it (km_snapshot_writer.h). */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/procfs.h>
#include <sys/stat.h>
#include <sys/user.h>
#include <time.h>
#include <unistd.h>

#include "km_cli.h"
#include "km_buf.h"
#include "km_guest.h"
#include "km_fdtab.h"
#include "km_guest_seccomp.h"
#include "km_signal.h"
#include "km_timers.h"
#include "km_time.h"
#include "km_rlimit.h"
#include "km_runtime_layout.h"
#include "km_snapshot.h"
#include "km_sys_util.h"
#include "km_vdso.h"
#include "km_snapshot_layers.h"
#include "km_snapshot_writer.h"

#define PAGE KM_PAGE_SIZE

#define KM_RUNTIME_VERSION 1

/* --- notes -------------------------------------------------------------------------------- */


#define ALIGN4(x) (((x) + 3) & ~(size_t)3)

/* Appends one note: header, owner name and descriptor, each padded to 4 bytes as in Linux cores.
 * desc may be NULL (zeroed descriptor of desc_len bytes, filled by the caller through the
 * returned pointer). */
static void *note_add(notebuf_t *nb, const char *owner, uint32_t type, const void *desc, size_t desc_len)
{
	size_t name_len = strlen(owner) + 1;
	Elf64_Nhdr *h = km_buf_reserve(&nb->b, sizeof(*h));
	char *name = km_buf_reserve(&nb->b, ALIGN4(name_len));
	uint8_t *d = km_buf_reserve(&nb->b, ALIGN4(desc_len));
	if (nb->b.failed)
		return NULL;
	/* an append may have moved the buffer: recompute from the end */
	d = nb->b.p + nb->b.len - ALIGN4(desc_len);
	name = (char *)d - ALIGN4(name_len);
	h = (Elf64_Nhdr *)((uint8_t *)name - sizeof(*h));
	h->n_namesz = (Elf64_Word)name_len;
	h->n_descsz = (Elf64_Word)desc_len;
	h->n_type = type;
	memcpy(name, owner, name_len);
	if (desc != NULL)
		memcpy(d, desc, desc_len);
	return d;
}

static void prstatus_regs(const km_vcpu_state_t *s, struct user_regs_struct *u)
{
	const struct kvm_regs *r = &s->regs;
	memset(u, 0, sizeof(*u));
	u->r15 = r->r15, u->r14 = r->r14, u->r13 = r->r13, u->r12 = r->r12;
	u->rbp = r->rbp, u->rbx = r->rbx, u->r11 = r->r11, u->r10 = r->r10;
	u->r9 = r->r9, u->r8 = r->r8, u->rax = r->rax, u->rcx = r->rcx;
	u->rdx = r->rdx, u->rsi = r->rsi, u->rdi = r->rdi;
	u->orig_rax = (unsigned long long)-1;
	u->rip = r->rip, u->eflags = r->rflags, u->rsp = r->rsp;
	u->cs = KM_SEL_UCODE, u->ss = KM_SEL_UDATA;
	u->fs_base = s->fs_base, u->gs_base = s->gs_base;
}

/* A relative sleep km interrupted and the thread will make again: what is left of it, so that
 * the resumed copy sleeps only that long (NT_KM_CPU reserved[1..4]: ns left + 1, the request's
 * address, the clock, the rip after the call). */
static void sleep_left(const km_vcpu_t *v, km_nt_cpu_t *c)
{
	if (!v->sleep_restart.valid)
		return;
	struct timespec now;
	clock_gettime(v->sleep_restart.clk, &now);
	int64_t left = km_ts_diff_ns(v->sleep_restart.deadline, now);
	c->reserved[1] = (uint64_t)(left > 0 ? left : 0) + 1;
	c->reserved[2] = v->sleep_restart.req_gva;
	c->reserved[3] = (uint64_t)v->sleep_restart.clk;
	c->reserved[4] = v->sleep_restart.rip;
}

/* The thread's name (PR_SET_NAME), which lives in its host thread (2.3: NT_KM_CPU reserved[5..6],
 * NUL-padded; all zero: not recorded). */
static void thread_name(const km_vcpu_t *v, km_nt_cpu_t *c)
{
	pid_t host = __atomic_load_n(&v->host_tid, __ATOMIC_ACQUIRE);
	char path[64], name[17] = {0};
	if (v->comm[0] != '\0') { /* resumed and not yet run: still the saved one */
		memcpy(name, v->comm, sizeof(v->comm));
	} else if (host > 0) {
		snprintf(path, sizeof(path), "/proc/self/task/%d/comm", (int)host);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, name, 16) : -1;
		if (fd >= 0)
			close(fd);
		if (n > 0 && name[n - 1] == '\n')
			name[n - 1] = '\0';
	}
	memcpy(&c->reserved[5], name, 16);
}

static void add_cpu_notes(notebuf_t *nb, km_guest_t *g, km_vcpu_t *v, int sig)
{
	const km_vcpu_state_t *s = &v->state;
	struct elf_prstatus ps;
	memset(&ps, 0, sizeof(ps));
	ps.pr_cursig = (short)sig;
	ps.pr_info.si_signo = sig;
	ps.pr_sighold = v->sigmask;
	ps.pr_sigpend = v->sigpending.set;
	ps.pr_pid = v->tid;
	ps.pr_ppid = getppid();
	ps.pr_pgrp = getpgrp();
	ps.pr_sid = getsid(0);
	prstatus_regs(s, (struct user_regs_struct *)&ps.pr_reg);
	ps.pr_fpvalid = 1;
	note_add(nb, "CORE", NT_PRSTATUS, &ps, sizeof(ps));
	note_add(nb, "CORE", NT_FPREGSET, s->xsave.region, 512);
	/* gdb reads XCR0 from the image's software-reserved bytes (464), as Linux stores it there. */
	uint8_t *x = note_add(nb, "LINUX", NT_X86_XSTATE, s->xsave.region, g->machine.xsave_size);
	if (x != NULL)
		memcpy(x + 464, &s->xcr0, sizeof(s->xcr0));

	km_nt_cpu_t c;
	memset(&c, 0, sizeof(c));
	c.vcpu_id = (uint32_t)v->id;
	c.tid = (uint32_t)v->tid;
	c.flags = s->flags | (v->restore_sigmask ? KM_CPU_RESTORE_SIGMASK : 0);
	c.reserved[0] = v->restore_sigmask ? v->saved_sigmask : 0;
	sleep_left(v, &c);
	thread_name(v, &c);
	c.fs_base = s->fs_base;
	c.gs_base = s->gs_base;
	c.sigmask = v->sigmask;
	c.altstack_sp = (uint64_t)(uintptr_t)v->altstack.ss_sp;
	c.altstack_size = v->altstack.ss_size;
	c.altstack_flags = (uint32_t)v->altstack.ss_flags;
	c.clear_child_tid = v->clear_child_tid;
	c.robust_list = v->robust_list;
	c.robust_list_len = v->robust_list_len;
	c.xcr0 = s->xcr0;
	const struct kvm_regs *r = &s->regs;
	uint64_t regs[18] = {r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi, r->rsp, r->rbp, r->r8,
			     r->r9,  r->r10, r->r11, r->r12, r->r13, r->r14, r->r15, r->rip, r->rflags};
	memcpy(c.regs, regs, sizeof(regs));
	c.reserved[7] = km_vdso_code_id(g, r->rip); /* 2.5: stood inside the vDSO's code */
	note_add(nb, KM_NOTE_OWNER, NT_KM_CPU, &c, sizeof(c));
}

static void add_prpsinfo(notebuf_t *nb, km_guest_t *g)
{
	struct elf_prpsinfo pi;
	memset(&pi, 0, sizeof(pi));
	pi.pr_state = 0;
	pi.pr_sname = 'R';
	pi.pr_uid = getuid();
	pi.pr_gid = getgid();
	pi.pr_pid = g->pid;
	pi.pr_ppid = getppid();
	pi.pr_pgrp = getpgrp();
	pi.pr_sid = getsid(0);
	const char *base = strrchr(g->exe_path, '/');
	snprintf(pi.pr_fname, sizeof(pi.pr_fname), "%s", base != NULL ? base + 1 : g->exe_path);
	size_t n = 0;
	for (int i = 0; i < g->argc && n + 1 < sizeof(pi.pr_psargs); i++)
		n += (size_t)snprintf(pi.pr_psargs + n, sizeof(pi.pr_psargs) - n, "%s%s", i ? " " : "", g->argv[i]);
	note_add(nb, "CORE", NT_PRPSINFO, &pi, sizeof(pi));
}

/* NT_FILE: which file each file-backed mapping comes from, as the kernel writes it. */
static void add_nt_file(notebuf_t *nb, km_mm_t *mm)
{
	uint64_t count = 0;
	size_t strings = 0;
	for (size_t i = 0; i < mm->nvmas; i++)
		if (mm->vmas[i].path != NULL) {
			count++;
			strings += strlen(mm->vmas[i].path) + 1;
		}
	size_t len = 16 + count * 24 + strings;
	uint8_t *d = note_add(nb, "CORE", NT_FILE, NULL, len);
	if (d == NULL)
		return;
	uint64_t head[2] = {count, PAGE};
	memcpy(d, head, sizeof(head)); /* descriptors are only 4-byte aligned */
	uint8_t *w = d + sizeof(head);
	char *str = (char *)(d + 16 + count * 24);
	for (size_t i = 0; i < mm->nvmas; i++) {
		km_vma_t *v = &mm->vmas[i];
		if (v->path == NULL)
			continue;
		uint64_t entry[3] = {v->start, v->end, v->offset / PAGE};
		memcpy(w, entry, sizeof(entry));
		w += sizeof(entry);
		size_t n = strlen(v->path) + 1;
		memcpy(str, v->path, n);
		str += n;
	}
}

bool km_snap_vma_saved(const km_vma_t *v)
{
	/* A shared file mapping's contents are the file's: restore maps the file again. One of a
	 * file no path names is saved too (2.3): restore maps the file the fd table recreated, or,
	 * if the program no longer had it open, a private copy of these bytes. */
	return !((v->flags & MAP_SHARED) && !(v->flags & MAP_ANONYMOUS)) || km_link_deleted(v->path);
}

/* NT_KM_VMA: saved 2 for a segment with pages below it (2.6), so that an older km refuses the
 * file rather than read those pages as zeros. */
static void add_vma_notes(notebuf_t *nb, km_mm_t *mm)
{
	for (size_t i = 0; i < mm->nvmas; i++) {
		km_vma_t *v = &mm->vmas[i];
		size_t plen = v->path != NULL ? strlen(v->path) + 1 : 0;
		size_t padded = (plen + 7) & ~(size_t)7;
		uint8_t *d = note_add(nb, KM_NOTE_OWNER, NT_KM_VMA, NULL, sizeof(km_nt_vma_t) + padded);
		if (d == NULL)
			return;
		/* descriptors are only 4-byte aligned: build the record aside, then copy it in */
		uint32_t saved = !km_snap_vma_saved(v) ? 0 : km_layers_below(nb->layers, i) != KM_BELOW_NONE ? 2 : 1;
		km_nt_vma_t n = {.start = v->start, .end = v->end, .prot = (uint32_t)v->prot,
				 .flags = (uint32_t)v->flags, .kind = (uint32_t)v->kind, .saved = saved,
				 .offset = v->offset, .dev = v->dev, .ino = v->ino, .path_len = (uint32_t)padded};
		memcpy(d, &n, sizeof(n));
		if (plen)
			memcpy(d + sizeof(n), v->path, plen);
	}
}

/* The identity a private mapping's file has now, if it is still the file the program mapped
 * (same dev/ino); else the mapping's own dev/ino with size and time 0, which no file at that
 * path matches at resume. False if the mapping has no file to check (anonymous, shared: the shared
 * ones are mapped from their file again and checked then, deleted, not a regular file). */
bool km_snap_mapfile_id(const km_vma_t *v, km_nt_fileid_t *id)
{
	if (v->path == NULL || (v->flags & MAP_SHARED) || (v->flags & MAP_ANONYMOUS) || v->path[0] != '/' ||
	    km_link_deleted(v->path))
		return false;
	struct stat st;
	if (stat(v->path, &st) < 0 || !S_ISREG(st.st_mode))
		return false;
	*id = (km_nt_fileid_t){.dev = v->dev, .ino = v->ino};
	if (st.st_dev == v->dev && st.st_ino == v->ino) {
		id->size = (uint64_t)st.st_size;
		id->mtime_sec = st.st_mtim.tv_sec;
		id->mtime_nsec = st.st_mtim.tv_nsec;
	}
	return true;
}

/* NT_KM_DYNLINKER: the interpreter, and the identity of each private file mapping's file. */
static void add_dynlinker(notebuf_t *nb, km_guest_t *g)
{
	km_mm_t *mm = &g->mm;
	const struct km_dynlinker *dl = &g->dynlinker;
	size_t plen = dl->path != NULL ? strlen(dl->path) + 1 : 0, padded = (plen + 7) & ~(size_t)7;
	km_nt_mapfile_t *files = calloc(mm->nvmas + 1, sizeof(*files));
	if (files == NULL) {
		nb->b.failed = true; /* the snapshot fails for want of memory, as for any note */
		return;
	}
	uint32_t n = 0;
	for (size_t i = 0; i < mm->nvmas; i++)
		if (km_snap_mapfile_id(&mm->vmas[i], &files[n].id))
			files[n++].vma = (uint32_t)i;
	km_nt_dynlinker_t d = {.nfiles = n, .path_len = (uint32_t)padded};
	if (dl->path != NULL) {
		d.base = dl->base;
		d.entry = dl->entry;
		d.interp = (km_nt_fileid_t){.dev = dl->dev, .ino = dl->ino, .size = dl->size,
					    .mtime_sec = dl->mtime_sec, .mtime_nsec = dl->mtime_nsec};
	}
	size_t flen = (size_t)n * sizeof(*files);
	uint8_t *p = note_add(nb, KM_NOTE_OWNER, NT_KM_DYNLINKER, NULL, sizeof(d) + flen + padded);
	if (p != NULL) {
		/* descriptors are only 4-byte aligned: copied in, not built in place */
		memcpy(p, &d, sizeof(d));
		memcpy(p + sizeof(d), files, flen);
		if (plen > 0)
			memcpy(p + sizeof(d) + flen, dl->path, plen);
	}
	free(files);
}

/* The threads a file records: every live one, or only the one a core is for. */
static bool recorded(const km_snapshot_req_t *req, const km_vcpu_t *v)
{
	if (v == NULL)
		return false;
	return req->only != NULL ? v == req->only : v->live;
}

static uint32_t recorded_count(km_guest_t *g, const km_snapshot_req_t *req)
{
	uint32_t n = 0;
	for (int i = 0; i < g->nvcpus; i++)
		n += recorded(req, g->vcpus[i]);
	return n;
}

static void add_proc_notes(notebuf_t *nb, km_guest_t *g, const km_snapshot_req_t *req, int sig)
{
	km_mm_t *mm = &g->mm;
	km_nt_proc_t p;
	memset(&p, 0, sizeof(p));
	p.version = KM_SNAPSHOT_VERSION;
	p.reason = (uint32_t)req->reason;
	p.nvcpus = recorded_count(g, req);
	p.pid = (uint32_t)g->pid;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	p.created_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	p.memory_limit = mm->limit;
	p.brk_start = mm->brk_start;
	p.brk_cur = mm->brk_cur;
	p.mmap_base = mm->mmap_base;
	p.stack_top = mm->stack_top;
	p.entry = g->entry;
	mode_t um = umask(0);
	umask(um);
	p.umask = (uint32_t)um;
	p.term_signal = (uint32_t)sig;
	for (int r = 0; r < 16; r++) { /* 2.3: as the guest sees them (km_rlimit.h) */
		struct rlimit rl;
		if (km_rlimit_get(g, r, &rl) == 0) {
			p.rlimits[r][0] = rl.rlim_cur;
			p.rlimits[r][1] = rl.rlim_max;
		}
	}
	p.nofile_guest[0] = g->nofile.rlim_cur;
	p.nofile_guest[1] = g->nofile.rlim_max;
	p.ignored_signals = g->opts.ignored_signals;
	p.env_count = g->env_count;
	p.env_bytes = g->env_bytes;
	p.arg_start = g->arg_start;
	p.arg_end = g->arg_end;
	p.env_start = g->env_start;
	p.env_end = g->env_end;
	p.start_stack = g->start_stack;
	note_add(nb, KM_NOTE_OWNER, NT_KM_PROC, &p, sizeof(p));

	km_nt_guest_t gn = {.runtime_version = KM_RUNTIME_VERSION, .rt_gva = KM_RT_GVA, .rt_size = KM_RT_SIZE,
			    .user_top = KM_USER_TOP, .vdso_layout = g->vdso_gva != 0 ? KM_VDSO_LAYOUT : 0,
			    .vdso_gva = g->vdso_gva};
	km_vdso_save_clocks(g, gn.mono_ns);
	note_add(nb, KM_NOTE_OWNER, NT_KM_GUEST, &gn, sizeof(gn));
	add_dynlinker(nb, g);
	note_add(nb, KM_NOTE_OWNER, NT_KM_SIGACTIONS, g->sigactions, sizeof(g->sigactions));

	/* exe, cwd, label, km version, then argv */
	char cwd[4096];
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		cwd[0] = '\0';
	const char *fixed[4] = {g->exe_path, cwd, req->label != NULL ? req->label : "", KM_VERSION};
	size_t len = 0;
	for (int i = 0; i < 4; i++)
		len += strlen(fixed[i]) + 1;
	for (int i = 0; i < g->argc; i++)
		len += strlen(g->argv[i]) + 1;
	char *d = note_add(nb, KM_NOTE_OWNER, NT_KM_STRINGS, NULL, len);
	if (d == NULL)
		return;
	for (int i = 0; i < 4 + g->argc; i++) {
		const char *s = i < 4 ? fixed[i] : g->argv[i - 4];
		size_t n = strlen(s) + 1;
		memcpy(d, s, n);
		d += n;
	}
}

/* One record per pending signal: the process's (tid 0), then each recorded thread's. */
static void add_pending(uint8_t **at, uint32_t tid, const km_sigqueue_t *q)
{
	for (size_t i = 0; i < q->n; i++) {
		km_nt_sigpending_t e;
		memset(&e, 0, sizeof(e));
		e.tid = tid;
		memcpy(e.info, km_sigqueue_at(q, i), sizeof(e.info));
		if (*at != NULL)
			memcpy(*at, &e, sizeof(e));
		*at = *at != NULL ? *at + sizeof(e) : NULL;
	}
}

static void add_signal_notes(notebuf_t *nb, km_guest_t *g, const km_snapshot_req_t *req)
{
	km_signal_lock(g);
	size_t n = g->sigpending.n;
	for (int i = 0; i < g->nvcpus; i++)
		if (recorded(req, g->vcpus[i]))
			n += g->vcpus[i]->sigpending.n;
	uint8_t *at = note_add(nb, KM_NOTE_OWNER, NT_KM_SIGPENDING, NULL, n * sizeof(km_nt_sigpending_t));
	add_pending(&at, 0, &g->sigpending);
	for (int i = 0; i < g->nvcpus; i++)
		if (recorded(req, g->vcpus[i]))
			add_pending(&at, (uint32_t)g->vcpus[i]->tid, &g->vcpus[i]->sigpending);
	km_signal_unlock(g);
	void *timers = NULL;
	size_t len = km_timers_save(g, &timers);
	if (len == 0)
		nb->b.failed = true;
	else
		note_add(nb, KM_NOTE_OWNER, NT_KM_TIMERS, timers, len);
	free(timers);
}

/* The guest's own seccomp filters (2.2), so that a resumed program stays filtered. */
static void add_seccomp_note(notebuf_t *nb, km_guest_t *g)
{
	if (g->gseccomp == NULL || g->gseccomp->nfilters == 0)
		return;
	size_t len;
	void *p = km_gsc_save(g->gseccomp, &len);
	if (p == NULL)
		nb->b.failed = true; /* never a snapshot that silently drops the filter */
	else
		note_add(nb, KM_NOTE_OWNER, NT_KM_SECCOMP, p, len);
	free(p);
}

/* The fd table (2.3): its blobs' places and checksums are filled in when they are written. */
static void add_files_note(notebuf_t *nb)
{
	if (nb->files == NULL)
		return;
	km_buf_t d = {0};
	km_err_t *err = NULL;
	if (km_fdtab_note(nb->files, &d, &err) < 0) {
		km_err_free(&err);
		nb->b.failed = true;
	} else {
		uint8_t *at = note_add(nb, KM_NOTE_OWNER, NT_KM_FILES, d.p, d.len);
		if (at != NULL)
			nb->files_at = (size_t)(at - nb->b.p);
	}
	km_buf_free(&d);
}

/* NT_KM_LAYERS (2.6): the file's id, its parent and the pages each segment holds. */
static void add_layers_note(notebuf_t *nb)
{
	if (nb->layers == NULL)
		return;
	uint8_t *d = note_add(nb, KM_NOTE_OWNER, NT_KM_LAYERS, NULL, km_layers_note_len(nb->layers));
	if (d != NULL)
		km_layers_note_fill(nb->layers, d);
}

int km_snap_notes_build(km_guest_t *g, const km_snapshot_req_t *req, int sig, notebuf_t *nb, km_err_t **err)
{
	/* First, so a reader finds it before it must trust any other note; filled in last. */
	uint8_t *sum = note_add(nb, KM_NOTE_OWNER, NT_KM_CHECKSUM, NULL,
				sizeof(km_nt_checksum_t) + g->mm.nvmas * sizeof(uint32_t));
	if (sum != NULL)
		nb->sum_at = (size_t)(sum - nb->b.p);
	add_prpsinfo(nb, g);
	for (int i = 0; i < g->nvcpus; i++)
		if (recorded(req, g->vcpus[i]))
			add_cpu_notes(nb, g, g->vcpus[i], sig);
	note_add(nb, "CORE", NT_AUXV, g->auxv, g->auxv_len);
	add_nt_file(nb, &g->mm);
	add_proc_notes(nb, g, req, sig);
	add_signal_notes(nb, g, req);
	add_seccomp_note(nb, g);
	add_files_note(nb);
	add_vma_notes(nb, &g->mm);
	add_layers_note(nb);
	if (nb->b.failed)
		return km_err_set(err, ENOMEM, "building the snapshot's notes");
	return 0;
}
