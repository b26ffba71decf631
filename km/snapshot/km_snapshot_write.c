/*
 * The snapshot (and core) writer: see km_snapshot.h for the contract, km_coredump.h for the
 * format. Layout: ELF header, program headers (PT_NOTE, then one PT_LOAD per VMA), the notes,
 * then each segment's bytes at a page-aligned offset. Only pages that may hold data are read
 * (pagemap says which anonymous pages were ever touched), and only non-zero pages are written:
 * the rest are holes, so the file's disk usage tracks what the program really used.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
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
#include "km_crc32c.h"
#include "km_guest.h"
#include "km_fdtab.h"
#include "km_guest_seccomp.h"
#include "km_signal.h"
#include "km_timers.h"
#include "km_time.h"
#include "km_guest_fault.h"
#include "km_io.h"
#include "km_pagemap.h"
#include "km_rlimit.h"
#include "km_runtime_layout.h"
#include "km_snapshot.h"
#include "km_sys_util.h"

#define PAGE KM_PAGE_SIZE
#define KM_RUNTIME_VERSION 1

/* --- notes -------------------------------------------------------------------------------- */

typedef struct notebuf {
	km_buf_t b;
	size_t sum_at; /* NT_KM_CHECKSUM's descriptor, filled in last */
	km_fdtab_t *files; /* the fd table (NULL in cores) */
	size_t files_at;   /* NT_KM_FILES's descriptor, whose blob offsets are filled in last */
} notebuf_t;

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

static bool vma_saved(const km_vma_t *v)
{
	/* A shared file mapping's contents are the file's: restore maps the file again. One of a
	 * file no path names is saved too (2.3): restore maps the file the fd table recreated, or,
	 * if the program no longer had it open, a private copy of these bytes. */
	return !((v->flags & MAP_SHARED) && !(v->flags & MAP_ANONYMOUS)) || km_link_deleted(v->path);
}

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
		km_nt_vma_t n = {.start = v->start, .end = v->end, .prot = (uint32_t)v->prot,
				 .flags = (uint32_t)v->flags, .kind = (uint32_t)v->kind, .saved = vma_saved(v),
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
static bool mapfile_id(const km_vma_t *v, km_nt_fileid_t *id)
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
		if (mapfile_id(&mm->vmas[i], &files[n].id))
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
			    .user_top = KM_USER_TOP};
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

static int build_notes(km_guest_t *g, const km_snapshot_req_t *req, int sig, notebuf_t *nb, km_err_t **err)
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
	if (nb->b.failed)
		return km_err_set(err, ENOMEM, "building the snapshot's notes");
	return 0;
}

/* --- segments ----------------------------------------------------------------------------- */

static uint32_t elf_flags(int prot)
{
	return ((prot & PROT_READ) ? PF_R : 0) | ((prot & PROT_WRITE) ? PF_W : 0) | ((prot & PROT_EXEC) ? PF_X : 0);
}

typedef struct page_scan {
	const uint8_t *p;
	uint32_t crc;   /* in: the CRC so far; out: through this page, if it holds data */
	uint64_t zeros; /* zero bytes since the CRC so far, folded in only before a data page */
	bool data;
} page_scan_t;

static void scan_fn(void *arg)
{
	page_scan_t *s = arg;
	s->data = !km_mem_is_zero(s->p, PAGE);
	if (s->data)
		s->crc = km_crc32c(km_crc32c_zeros(s->crc, s->zeros), s->p, PAGE);
}

/* One guarded pass over a page that may hold data: whether it does, and if so *crc continued
 * through the `zeros` bytes of holes before it and through it. A page the host cannot provide (a private file mapping past the
 * end of its file, where the guest would get SIGBUS) counts as zero: it becomes a hole in the
 * file, and reads as zero after a resume (docs/snapshot-format.md). */
static bool page_has_data(const uint8_t *p, uint64_t zeros, uint32_t *crc)
{
	page_scan_t s = {p, *crc, zeros, false};
	if (km_guest_fault_run(p, PAGE, scan_fn, &s) < 0 || !s.data)
		return false;
	*crc = s.crc;
	return true;
}

#define PM_BATCH 4096

/* Where the bytes a page may hold come from, to know which pages need reading at all. */
typedef struct source {
	enum km_backing backing;
	int pagemap;  /* /proc/self/pagemap, or -1 */
	int old_fd;   /* KM_BACK_SNAPSHOT: the snapshot the memory still maps */
	uint64_t old_off;
} source_t;

/* Marks in `maybe` the pages of [first, first+n) that may hold data: touched pages (pagemap:
 * present or swapped), and for memory still mapping an older snapshot, the pages that file has
 * data for. Untouched anonymous pages are zero; so are untouched pages over the old file's holes.
 * File-backed memory is all "maybe". Where the kernel cannot say, everything is. */
static void find_candidates(const source_t *src, const uint8_t *host, uint64_t first, uint64_t n, bool *maybe)
{
	uint64_t pm[PM_BATCH];
	bool have_pm = src->backing != KM_BACK_FILE && km_pagemap_read(src->pagemap, host + first * PAGE, n, pm);
	for (uint64_t i = 0; i < n; i++)
		maybe[i] = !have_pm || (pm[i] & (KM_PM_PRESENT | KM_PM_SWAPPED));
	if (!have_pm || src->backing != KM_BACK_SNAPSHOT)
		return;
	off_t lo = (off_t)(src->old_off + first * PAGE), hi = lo + (off_t)(n * PAGE);
	for (off_t at = lo; at < hi;) {
		off_t data = lseek(src->old_fd, at, SEEK_DATA);
		if (data < 0 || data >= hi)
			break;
		off_t hole = lseek(src->old_fd, data, SEEK_HOLE);
		if (hole < 0 || hole > hi)
			hole = hi;
		for (off_t p = data & ~(off_t)(PAGE - 1); p < hole; p += (off_t)PAGE)
			maybe[(p - lo) / (off_t)PAGE] = true;
		at = hole;
	}
}

/* A run of consecutive data pages waiting to be written with one pwrite. */
typedef struct run {
	uint64_t start, len; /* in pages */
} run_t;

static int flush_run(int fd, const uint8_t *host, uint64_t off, run_t *r, uint64_t *written)
{
	if (r->len == 0)
		return 0;
	size_t bytes = r->len * PAGE;
	int rc = km_pwrite_all(fd, host + r->start * PAGE, bytes, off + r->start * PAGE);
	if (rc < 0)
		return rc;
	*written += bytes;
	r->len = 0;
	return 0;
}

/* Writes the non-zero pages of [host, host+len) at `off` in fd, as runs of pages; pages that
 * cannot hold data (find_candidates) are never read, so huge untouched reservations cost
 * nothing. *crc gets the CRC32C of the range as the file will hold it: data pages hashed right
 * after the zero check looked at them, holes folded in as zeros (no extra pass over memory).
 * Returns 0 or -errno. */
static int write_range(int fd, const source_t *src, const uint8_t *host, uint64_t len, uint64_t off,
		       uint64_t *written, uint32_t *crc)
{
	uint64_t npages = len / PAGE, zeros = 0;
	bool maybe[PM_BATCH];
	run_t run = {0, 0};
	*crc = 0;
	for (uint64_t base = 0; base < npages; base += PM_BATCH) {
		uint64_t n = npages - base < PM_BATCH ? npages - base : PM_BATCH;
		find_candidates(src, host, base, n, maybe);
		for (uint64_t i = 0; i < n; i++) {
			uint64_t pg = base + i;
			bool data = maybe[i] && page_has_data(host + pg * PAGE, zeros, crc);
			zeros = data ? 0 : zeros + PAGE;
			if (data && run.len > 0 && run.start + run.len == pg) {
				run.len++;
				continue;
			}
			int rc = flush_run(fd, host, off, &run, written);
			if (rc < 0)
				return rc;
			if (data)
				run = (run_t){pg, 1};
		}
	}
	*crc = km_crc32c_zeros(*crc, zeros);
	return flush_run(fd, host, off, &run, written);
}

/* --- the file ----------------------------------------------------------------------------- */

/* Where the file goes: the directory (an fd in km's range) and the name in it; `shown` names it
 * in messages. */
typedef struct place {
	int dfd;
	const char *name;
	const char *shown;
} place_t;

/* A file in the directory that has no name until it is complete (O_TMPFILE), or a hidden
 * temporary name where the filesystem cannot do that. */
static int open_temp(const place_t *pl, char *tmpname, size_t size)
{
	tmpname[0] = '\0';
	int fd = km_fd_reserve(openat(pl->dfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
	if (fd >= 0)
		return fd;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	for (int attempt = 0; attempt < 100; attempt++) {
		snprintf(tmpname, size, ".kmsnap.tmp.%d.%lx.%d", (int)getpid(), (unsigned long)ts.tv_nsec, attempt);
		fd = km_fd_reserve(openat(pl->dfd, tmpname, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
		if (fd >= 0 || errno != EEXIST)
			break;
	}
	if (fd < 0)
		tmpname[0] = '\0';
	return fd;
}

/* What is at the snapshot's final name. Only a regular file or nothing may be replaced: rename
 * would put the snapshot over a socket (km's own management socket), a device node, a FIFO or an
 * empty directory. A symbolic link is refused too: rename would replace the link itself, not
 * the file it names, which is rarely what the user meant. */
typedef enum target { TARGET_NONE, TARGET_REGULAR } target_t;

static const char *kind_name(mode_t m)
{
	if (S_ISSOCK(m))
		return "a unix socket";
	if (S_ISCHR(m))
		return "a character device";
	if (S_ISBLK(m))
		return "a block device";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISLNK(m))
		return "a symbolic link";
	return "not a regular file";
}

static int check_target(const place_t *pl, target_t *t, km_err_t **err)
{
	struct stat st;
	if (fstatat(pl->dfd, pl->name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENOENT)
			return km_err_set(err, errno, "%s", pl->shown);
		*t = TARGET_NONE;
		return 0;
	}
	if (S_ISREG(st.st_mode)) {
		*t = TARGET_REGULAR;
		return 0;
	}
	km_err_set(err, 0, "%s: %s is there; a snapshot replaces only a regular file%s", pl->shown,
		   kind_name(st.st_mode),
		   S_ISLNK(st.st_mode) ? " (km does not replace or follow a link at the snapshot's name)" : "");
	if (err != NULL && *err != NULL) /* km_err_set leaves it NULL when it cannot allocate */
		(*err)->errnum = S_ISDIR(st.st_mode) ? EISDIR : EEXIST; /* what the hypercall returns */
	return -1;
}

/* Gives the finished temporary file the final name. Over nothing: renameat2(RENAME_NOREPLACE),
 * so a file that appeared meanwhile is never replaced; over a regular file: checked again
 * right before the rename, which replaces it atomically. */
static int publish(int fd, const char *tmpname, const place_t *pl, target_t was, km_err_t **err)
{
	char linkname[128];
	int dfd = pl->dfd;
	if (tmpname[0] == '\0') {
		char proc[64];
		snprintf(proc, sizeof(proc), "/proc/thread-self/fd/%d", fd); /* the writer may be the listener, which has an fd table of its own */
		bool linked = false;
		for (int attempt = 0; attempt < 100 && !linked; attempt++) {
			snprintf(linkname, sizeof(linkname), ".kmsnap.link.%d.%d", (int)getpid(), attempt);
			linked = linkat(AT_FDCWD, proc, dfd, linkname, AT_SYMLINK_FOLLOW) == 0;
			if (!linked && errno != EEXIST)
				return km_err_set(err, errno, "%s: giving the snapshot a name in its directory", pl->shown);
		}
		/* Every name taken: renaming the last one tried would publish somebody else's file. */
		if (!linked)
			return km_err_set(err, EEXIST, "%s: giving the snapshot a name in its directory", pl->shown);
		tmpname = linkname;
	}
	target_t now;
	int rc = check_target(pl, &now, err);
	if (rc == 0 && was == TARGET_NONE) {
		rc = renameat2(dfd, tmpname, dfd, pl->name, RENAME_NOREPLACE);
		if (rc < 0 && errno == EINVAL) { /* a filesystem without it: link(2) never replaces either */
			rc = linkat(dfd, tmpname, dfd, pl->name, 0);
			if (rc == 0)
				unlinkat(dfd, tmpname, 0);
		}
		if (rc < 0)
			km_err_set(err, errno, errno == EEXIST ? "%s: a file appeared at the snapshot's name while it was "
								"being written; not replaced"
							      : "%s: giving the snapshot its name",
				   pl->shown);
	} else if (rc == 0 && renameat(dfd, tmpname, dfd, pl->name) < 0) {
		rc = km_err_set(err, errno, "%s: giving the snapshot its name", pl->shown);
	}
	if (rc < 0) {
		unlinkat(dfd, tmpname, 0);
		return -1;
	}
	int sfd = km_fd_reserve(openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (sfd >= 0) {
		fsync(sfd); /* the rename itself must survive a crash */
		close(sfd);
	}
	return 0;
}

/* Each saved segment's bytes, at ph[1 + i].p_offset; their checksums into crcs[i]. */
static int write_memory(km_guest_t *g, int fd, const Elf64_Phdr *ph, uint32_t *crcs, km_snapshot_result_t *res,
			const char *path, km_err_t **err)
{
	km_mm_t *mm = &g->mm;
	int pagemap = km_fd_reserve(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
	int rc = 0;
	for (size_t i = 0; i < mm->nvmas && rc == 0; i++) {
		km_vma_t *v = &mm->vmas[i];
		crcs[i] = 0;
		if (ph[1 + i].p_filesz == 0)
			continue;
		source_t src = {.backing = v->backing, .pagemap = pagemap, .old_fd = mm->snapshot_fd,
				.old_off = v->backing_off};
		if (src.backing == KM_BACK_SNAPSHOT && src.old_fd < 0)
			src.backing = KM_BACK_FILE;
		rc = write_range(fd, &src, mm->host + v->gpa, v->end - v->start, ph[1 + i].p_offset, &res->memory_bytes,
				 &crcs[i]);
		if (rc < 0)
			km_err_set(err, -rc, "%s: writing the memory mapped at %#lx-%#lx (%#lx bytes at file offset %#lx)",
				   path, (unsigned long)v->start, (unsigned long)v->end, (unsigned long)(v->end - v->start),
				   (unsigned long)ph[1 + i].p_offset);
	}
	if (pagemap >= 0)
		close(pagemap);
	return rc < 0 ? -1 : 0;
}

/* Fills NT_KM_CHECKSUM (segment checksums, then the one over [0, end of notes)) and writes the
 * ELF header, program headers and notes, which lie contiguously from offset 0. */
static int write_headers(int fd, const Elf64_Ehdr *eh, const Elf64_Phdr *ph, size_t nph, notebuf_t *nb,
			 const uint32_t *crcs, size_t ncrcs, const char *path, km_err_t **err)
{
	size_t hdrs = sizeof(*eh) + nph * sizeof(*ph);
	size_t covered = hdrs + nb->b.len;
	km_nt_checksum_t c = {.algorithm = KM_CHECKSUM_CRC32C, .covered = covered, .nsegments = (uint32_t)ncrcs};
	memcpy(nb->b.p + nb->sum_at, &c, sizeof(c));
	memcpy(nb->b.p + nb->sum_at + sizeof(c), crcs, ncrcs * sizeof(*crcs));
	size_t field = nb->sum_at + offsetof(km_nt_checksum_t, header_crc);
	uint32_t crc = km_snapshot_header_crc(eh, ph, nph, nb->b.p, nb->b.len, field);
	memcpy(nb->b.p + field, &crc, sizeof(crc));
	int rc = km_pwrite_all(fd, eh, sizeof(*eh), 0);
	if (rc == 0)
		rc = km_pwrite_all(fd, ph, nph * sizeof(*ph), sizeof(*eh));
	if (rc == 0)
		rc = km_pwrite_all(fd, nb->b.p, nb->b.len, hdrs);
	if (rc < 0)
		return km_err_set(err, -rc, "%s: writing the ELF header, program headers and notes (%zu bytes)", path,
				  covered);
	return 0;
}

static int retry_eintr(int rc)
{
	return rc < 0 && errno == EINTR;
}

/* The whole file: memory first, then the headers and notes that describe and checksum it. */
static int write_file(km_guest_t *g, int fd, notebuf_t *nb, km_snapshot_result_t *res, km_err_t **err,
		      const char *path)
{
	km_mm_t *mm = &g->mm;
	size_t nph = 1 + mm->nvmas;
	size_t hdrs = sizeof(Elf64_Ehdr) + nph * sizeof(Elf64_Phdr);
	uint64_t data_off = KM_PAGE_UP(hdrs + nb->b.len);
	Elf64_Ehdr eh;
	memset(&eh, 0, sizeof(eh));
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_ident[EI_OSABI] = ELFOSABI_NONE;
	eh.e_type = ET_CORE;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_phoff = sizeof(Elf64_Ehdr);
	eh.e_ehsize = sizeof(Elf64_Ehdr);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = (Elf64_Half)nph;
	Elf64_Phdr *ph = calloc(nph, sizeof(*ph));
	uint32_t *crcs = calloc(mm->nvmas + 1, sizeof(*crcs));
	int rc = -1;
	if (ph == NULL || crcs == NULL) {
		km_err_set(err, ENOMEM, "%s: program headers", path);
		goto out;
	}
	ph[0] = (Elf64_Phdr){.p_type = PT_NOTE, .p_offset = hdrs, .p_filesz = nb->b.len, .p_align = 4};
	uint64_t off = data_off;
	for (size_t i = 0; i < mm->nvmas; i++) {
		km_vma_t *v = &mm->vmas[i];
		uint64_t size = v->end - v->start;
		uint64_t fsz = vma_saved(v) ? size : 0;
		ph[1 + i] = (Elf64_Phdr){.p_type = PT_LOAD, .p_flags = elf_flags(v->prot), .p_offset = off,
					 .p_vaddr = v->start, .p_memsz = size, .p_filesz = fsz, .p_align = PAGE};
		off += fsz;
	}
	/* The open files' data after the memory, page-aligned; no program header covers it. */
	if (nb->files != NULL && km_fdtab_blob_bytes(nb->files) > 0) {
		off = KM_PAGE_UP(off);
		if (km_fdtab_write_blobs(nb->files, fd, off, nb->b.p + nb->files_at, err) < 0) {
			km_err_wrap(err, "%s", path);
			goto out;
		}
		off += km_fdtab_blob_bytes(nb->files);
	}
	if (write_memory(g, fd, ph, crcs, res, path, err) < 0 ||
	    write_headers(fd, &eh, ph, nph, nb, crcs, mm->nvmas, path, err) < 0)
		goto out;
	/* Holes at the end must still count: the file is as long as its last segment says. */
	int r;
	while (retry_eintr(r = ftruncate(fd, (off_t)off)))
		;
	if (r == 0)
		while (retry_eintr(r = fsync(fd)))
			;
	if (r < 0) {
		km_err_set(err, errno, "%s: finishing the file (%#lx bytes)", path, (unsigned long)off);
		goto out;
	}
	rc = 0;
out:
	free(ph);
	free(crcs);
	return rc;
}

/* The directory and name for req: the directory the caller gives (dir_fn), or the path's. */
static int find_place(const km_snapshot_req_t *req, place_t *pl, char **dcopy, km_err_t **err)
{
	pl->shown = req->path;
	if (req->dir_fn != NULL) {
		pl->name = req->path;
		pl->dfd = req->dir_fn(req->dir_arg);
		if (pl->dfd < 0)
			return km_err_set(err, -pl->dfd, "%s: the directory to write in", req->path);
		return 0;
	}
	char *d = strdup(req->path), *b = strdup(req->path);
	if (d == NULL || b == NULL) {
		free(d);
		free(b);
		return km_err_set(err, ENOMEM, "%s", req->path);
	}
	const char *base = basename(b); /* the POSIX one (libgen.h): "" never, "/" for "/" */
	size_t blen = strlen(base);
	memmove(b, base, blen + 1);
	*dcopy = b;
	const char *dir = dirname(d);
	pl->name = b;
	pl->dfd = km_fd_reserve(open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	int e = errno;
	if (pl->dfd < 0)
		km_err_set(err, e, "%s: creating the file in %s", req->path, dir);
	free(d);
	return pl->dfd < 0 ? -1 : 0;
}

int km_snapshot_write(km_guest_t *g, const km_snapshot_req_t *req, km_snapshot_result_t *res, km_err_t **err)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	memset(res, 0, sizeof(*res));
	int sig = req->reason == KM_REASON_CORE ? g->term_signal : 0;
	notebuf_t nb = {0};
	if (req->reason != KM_REASON_CORE) {
		km_fdtab_save_opts_t fo = {.tcp = req->tcp != 0 ? (enum km_tcp_policy)(req->tcp - 1)
							  : (enum km_tcp_policy)g->opts.tcp_established,
					   .file_max = g->opts.snapshot_file_max, .ends = !req->keep_running};
		if (km_fdtab_save(g, &fo, &nb.files, err) < 0)
			return km_err_wrap(err, "%s", req->path);
	}
	if (build_notes(g, req, sig, &nb, err) < 0) {
		km_buf_free(&nb.b);
		km_fdtab_release(nb.files, true);
		return km_err_wrap(err, "%s", req->path);
	}
	char *dcopy = NULL;
	char tmpname[128];
	tmpname[0] = '\0';
	place_t pl = {.dfd = -1};
	target_t was;
	int fd = -1, rc = -1;
	if (find_place(req, &pl, &dcopy, err) < 0 || check_target(&pl, &was, err) < 0)
		; /* refused before anything is written */
	else if ((fd = open_temp(&pl, tmpname, sizeof(tmpname))) < 0)
		km_err_set(err, errno, "%s: creating the file in its directory", req->path);
	else if (write_file(g, fd, &nb, res, err, req->path) == 0) {
		struct stat st;
		if (fstat(fd, &st) == 0) {
			res->file_size = (uint64_t)st.st_size;
			res->disk_bytes = (uint64_t)st.st_blocks * 512;
		}
		rc = publish(fd, tmpname, &pl, was, err);
	}
	if (fd >= 0) {
		if (rc < 0 && tmpname[0] != '\0')
			unlinkat(pl.dfd, tmpname, 0);
		close(fd);
	}
	if (pl.dfd >= 0)
		close(pl.dfd);
	free(dcopy);
	km_buf_free(&nb.b);
	/* Live objects the table touched (TCP repair) go back as they were unless km now ends */
	km_fdtab_release(nb.files, rc < 0 || req->keep_running);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	res->elapsed_ns = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000ull + (uint64_t)(t1.tv_nsec - t0.tv_nsec);
	if (rc == 0 && g->opts.timing)
		fprintf(stderr, "km-timing: snapshot_ns=%lu bytes=%lu\n", (unsigned long)res->elapsed_ns,
			(unsigned long)res->memory_bytes);
	return rc;
}
