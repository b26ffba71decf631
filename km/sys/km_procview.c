/* The guest's view of /proc: see km_procview.h. */
#include "km_procview.h"
#include "km_stopall.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "km_buf.h"
#include "km_io.h"
#include "km_sys_util.h"

/* /proc/<pid>/cmdline and environ are capped as Linux caps a single read of them would be if the
 * guest asked for more: the answer is built whole, so bound what one open can cost km. */
#define ARGS_MAX (1ul << 20)
#define PROC_ROOT_INO 1

/* Entries of km's process (or of a guest thread) that describe the guest as well as km and name
 * nothing of km's memory, registers or threads: the host's file is the answer. */
static const char *const pass_entries[] = {
    "limits",    "comm",	    "cgroup",	    "mounts",	 "mountinfo", "mountstats",
    "io",	 "oom_score", "oom_score_adj", "oom_adj",	"loginuid",	 "sessionid", "sched",
    "schedstat", "cpuset",    "wchan",	    "uid_map",	    "gid_map",	 "setgroups", "projid_map",
    "cwd",	 "root",      "exe",	    "personality", "timers",	 "children",  "arch_status",
    "autogroup", "net",	      "ns",	    "fd",	    "fdinfo",	 "task",      NULL,
};

static const struct {
	const char *name;
	km_pv_file_t file;
} synth_entries[] = {
    {"cmdline", KM_PV_CMDLINE}, {"environ", KM_PV_ENVIRON}, {"auxv", KM_PV_AUXV},
    {"maps", KM_PV_MAPS},	{"stat", KM_PV_STAT},	    {"status", KM_PV_STATUS},
    {"statm", KM_PV_STATM},
};

/* Entries of another process (or of one of its threads) that describe it without reaching into
 * its memory, registers, fds or layout: the host's file, as natively. stat is answered with its
 * address fields 0 and exe is judged apart (km_procview.h). */
static const char *const other_pass_entries[] = {
    "cmdline",	  "comm",	"status",	"statm",      "limits",	    "cgroup",	  "mounts",
    "mountinfo",  "mountstats", "io",		"oom_score",  "oom_score_adj", "oom_adj",   "loginuid",
    "sessionid",  "sched",	"schedstat",	"cpuset",     "wchan",	    "uid_map",	  "gid_map",
    "setgroups",  "projid_map", "cwd",		"root",	      "personality", "timers",	  "children",
    "arch_status", "autogroup", NULL,
};

static km_pv_t verdict(km_pv_verdict_t v)
{
	return (km_pv_t){.verdict = v};
}

/* A pid, tid or fd number as procfs spells it (digits, no sign, no leading zero); -1 if the
 * component at s is not one. *end is set past it. */
static long number(const char *s, const char **end)
{
	long n = 0;
	const char *p = s;
	if (*p == '0' && p[1] != '/' && p[1] != '\0')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		n = n * 10 + (*p - '0');
		if (n > 0x7fffffff)
			return -1;
	}
	if (p == s || (*p != '/' && *p != '\0'))
		return -1;
	*end = *p == '/' ? p + 1 : p;
	return n;
}

bool km_procview_guest_tid(km_guest_t *g, pid_t tid)
{
	for (int i = 0; i < g->nvcpus; i++)
		if (g->vcpus[i] != NULL && __atomic_load_n(&g->vcpus[i]->live, __ATOMIC_ACQUIRE) &&
		    __atomic_load_n(&g->vcpus[i]->host_tid, __ATOMIC_ACQUIRE) == tid)
			return true;
	return false;
}

/* A thread of km's own process (its task/ has it): km's threads are /proc/<tid> too. */
static bool km_thread(pid_t tid)
{
	char p[64];
	struct stat st;
	snprintf(p, sizeof(p), "/proc/%d/task/%d", (int)getpid(), (int)tid);
	return stat(p, &st) == 0;
}

/* The first component of `rest` is `name` exactly (followed by '/' or the end). */
static bool comp_is(const char *rest, const char *name, const char **after)
{
	size_t n = strlen(name);
	if (strncmp(rest, name, n) != 0 || (rest[n] != '/' && rest[n] != '\0'))
		return false;
	*after = rest[n] == '/' ? rest + n + 1 : rest + n;
	return true;
}

/* fd/ and fdinfo/ of any process: km's reserved range does not exist (a km's fds there are its
 * VM, vCPUs, pagemap, snapshot files and management socket). NULL if `rest` is neither. */
static const km_pv_t *fd_entry(const char *rest, km_pv_t *out)
{
	const char *sub, *after;
	if (!comp_is(rest, "fd", &sub) && !comp_is(rest, "fdinfo", &sub))
		return NULL;
	long fd = *sub == '\0' ? 0 : number(sub, &after);
	*out = verdict(fd >= KM_FD_RESERVED_BASE ? KM_PV_HIDE : KM_PV_PASS);
	return out;
}

/* An entry inside km's process directory (process: tid 0) or a guest thread's directory. */
static km_pv_t classify_entry(km_guest_t *g, const char *rest, pid_t tid)
{
	const char *sub;
	if (*rest == '\0')
		return verdict(KM_PV_PASS);
	if (tid == 0 && comp_is(rest, "task", &sub)) {
		const char *after;
		if (*sub == '\0')
			return verdict(KM_PV_PASS);
		long t = number(sub, &after);
		if (t < 0)
			return verdict(KM_PV_HIDE);
		if (!km_procview_guest_tid(g, (pid_t)t))
			return verdict(KM_PV_HIDE);
		return classify_entry(g, after, (pid_t)t);
	}
	km_pv_t fdv;
	if (fd_entry(rest, &fdv) != NULL)
		return fdv;
	if (comp_is(rest, "net", &sub) || comp_is(rest, "ns", &sub))
		return verdict(KM_PV_PASS);
	for (size_t i = 0; i < sizeof(synth_entries) / sizeof(synth_entries[0]); i++)
		if (strcmp(rest, synth_entries[i].name) == 0)
			return (km_pv_t){.verdict = KM_PV_SYNTH, .file = synth_entries[i].file, .tid = tid};
	for (size_t i = 0; pass_entries[i] != NULL; i++)
		if (strcmp(rest, pass_entries[i]) == 0)
			return verdict(KM_PV_PASS);
	/* Not on the list: mem, pagemap, map_files, syscall, stack, smaps, clear_refs, attr, ...
	 * and whatever a newer kernel adds. */
	return verdict(KM_PV_DENY);
}

static struct stat km_binary;
static bool km_binary_known;

static void find_km_binary(void)
{
	km_binary_known = stat("/proc/self/exe", &km_binary) == 0;
}

/* Whether host process `pid` runs km's own binary: its exe would show km's path. If km cannot
 * name its own binary, every process may be a km. */
static bool km_process(pid_t pid)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, find_km_binary);
	char p[64];
	struct stat st;
	snprintf(p, sizeof(p), "/proc/%d/exe", (int)pid);
	if (stat(p, &st) < 0)
		return !km_binary_known; /* exe unreadable (a kernel thread, a process gone): no path shows */
	return !km_binary_known || (st.st_dev == km_binary.st_dev && st.st_ino == km_binary.st_ino);
}

/* An entry inside another process's directory (tid 0) or one of its threads' (km_procview.h). */
static km_pv_t classify_other(const char *rest, pid_t pid, pid_t tid)
{
	const char *sub;
	km_pv_t fdv;
	if (*rest == '\0')
		return verdict(KM_PV_PASS);
	if (tid == 0 && comp_is(rest, "task", &sub)) {
		const char *after;
		long t = *sub == '\0' ? -1 : number(sub, &after);
		if (t < 0)
			return verdict(KM_PV_PASS); /* task/ itself; any other name does not exist */
		return classify_other(after, pid, (pid_t)t);
	}
	if (fd_entry(rest, &fdv) != NULL)
		return fdv;
	if (comp_is(rest, "net", &sub) || comp_is(rest, "ns", &sub))
		return verdict(KM_PV_PASS);
	if (strcmp(rest, "stat") == 0)
		return (km_pv_t){.verdict = KM_PV_SYNTH, .file = KM_PV_OTHER_STAT, .tid = tid, .pid = pid};
	if (strcmp(rest, "exe") == 0)
		return verdict(km_process(tid != 0 ? tid : pid) ? KM_PV_DENY : KM_PV_PASS);
	for (size_t i = 0; other_pass_entries[i] != NULL; i++)
		if (strcmp(rest, other_pass_entries[i]) == 0)
			return verdict(KM_PV_PASS);
	return verdict(KM_PV_DENY);
}

km_pv_t km_procview_classify(km_guest_t *g, const char *rel)
{
	const char *rest;
	long pid = number(rel, &rest);
	if (pid < 0)
		return verdict(KM_PV_PASS); /* meminfo, sys/..., self (the link itself), ... */
	if (pid == getpid())
		return classify_entry(g, rest, 0);
	if (!km_thread((pid_t)pid))
		return classify_other(rest, (pid_t)pid, 0);
	if (!km_procview_guest_tid(g, (pid_t)pid))
		return verdict(KM_PV_HIDE);
	return classify_entry(g, rest, (pid_t)pid);
}

/* True if `dir` is the root of a procfs mount. */
static bool proc_root(const char *dir)
{
	struct statfs sfs;
	struct stat st;
	return statfs(dir, &sfs) == 0 && sfs.f_type == PROC_SUPER_MAGIC && stat(dir, &st) == 0 &&
	       st.st_ino == PROC_ROOT_INO;
}

/* Whether procfs is mounted at /proc, asked once: the guest cannot mount, and every opened procfs
 * file would otherwise pay two more host syscalls to ask again. */
static bool proc_at_proc(void)
{
	static int known = -1; /* -1 unknown, 0 no, 1 yes; a race only asks twice */
	int k = __atomic_load_n(&known, __ATOMIC_RELAXED);
	if (k < 0) {
		k = proc_root("/proc");
		__atomic_store_n(&known, k, __ATOMIC_RELAXED);
	}
	return k == 1;
}

bool km_procview_rel(int fd, char *buf, size_t size, const char **rel)
{
	struct statfs sfs;
	if (fstatfs(fd, &sfs) < 0 || sfs.f_type != PROC_SUPER_MAGIC)
		return false;
	if (km_fd_path(fd, buf, size) < 0 || buf[0] != '/')
		return false;
	if (strncmp(buf, "/proc/", 6) == 0 && proc_at_proc()) {
		*rel = buf + 6;
		return true;
	}
	if (strcmp(buf, "/proc") == 0) {
		*rel = buf + 5;
		return true;
	}
	/* procfs mounted elsewhere: the longest prefix that is a procfs root is the mount point. */
	for (char *s = buf + strlen(buf); s > buf; s--) {
		if (*s != '/')
			continue;
		*s = '\0';
		bool root = proc_root(buf);
		*s = '/';
		if (root) {
			*rel = s + 1;
			return true;
		}
	}
	/* A procfs file whose mount point km cannot find: treat it as km's, the safe side. */
	snprintf(buf, size, "%d/unknown", (int)getpid());
	*rel = buf;
	return true;
}

/* --- km's answers -------------------------------------------------------------------------- */

/* Guest bytes [start, end) as Linux reads cmdline/environ from the process's memory; false if
 * the range is unknown or no longer readable. */
static bool guest_range(km_guest_t *g, uint64_t start, uint64_t end, km_buf_t *t)
{
	if (start == 0 || end <= start || end - start > ARGS_MAX)
		return false;
	size_t at = t->len;
	void *d = km_buf_reserve(t, end - start);
	if (d != NULL && km_copy_from_guest(&g->mm, d, start, end - start) == 0)
		return true;
	t->len = at; /* nothing of a range that could not be read */
	return false;
}

static void gen_cmdline(km_guest_t *g, km_buf_t *t)
{
	if (guest_range(g, g->arg_start, g->arg_end, t))
		return;
	for (int i = 0; i < g->argc && g->argv[i] != NULL; i++)
		km_buf_put(t, g->argv[i], strlen(g->argv[i]) + 1);
}

static void gen_environ(km_guest_t *g, km_buf_t *t)
{
	guest_range(g, g->env_start, g->env_end, t);
}

static const char *vma_name(km_guest_t *g, const km_vma_t *v)
{
	switch (v->kind) {
	case KM_VMA_BRK:
		return "[heap]";
	case KM_VMA_STACK:
		return "[stack]";
	case KM_VMA_ELF:
		return v->path != NULL ? v->path : g->exe_path;
	default:
		return v->path;
	}
}

static void gen_maps(km_guest_t *g, km_buf_t *t)
{
	km_mm_t *mm = &g->mm;
	for (size_t i = 0; i < mm->nvmas; i++) {
		const km_vma_t *v = &mm->vmas[i];
		const char *name = vma_name(g, v);
		bool file = v->kind == KM_VMA_FILE || v->kind == KM_VMA_ELF;
		char head[160];
		int n = snprintf(head, sizeof(head), "%08" PRIx64 "-%08" PRIx64 " %c%c%c%c %08" PRIx64 " %02x:%02x %lu",
				 v->start, v->end, v->prot & PROT_READ ? 'r' : '-', v->prot & PROT_WRITE ? 'w' : '-',
				 v->prot & PROT_EXEC ? 'x' : '-', v->flags & MAP_SHARED ? 's' : 'p',
				 file ? v->offset : 0, file ? major(v->dev) : 0, file ? minor(v->dev) : 0,
				 file ? (unsigned long)v->ino : 0ul);
		if (name != NULL)
			km_buf_printf(t, "%-72s %s\n", head, name);
		else
			km_buf_printf(t, "%.*s\n", n, head);
	}
	/* The one runtime page the program can reach (the syscall entry), as Linux lists [vdso]. */
	km_buf_printf(t, "%08" PRIx64 "-%08" PRIx64 " r-xp 00000000 00:00 0%*s[km]\n", (uint64_t)KM_RT_GVA,
	     (uint64_t)KM_RT_GVA + KM_PAGE_SIZE, 51, "");
}

static uint64_t guest_vsize(km_guest_t *g)
{
	uint64_t total = KM_PAGE_SIZE; /* the runtime page of maps */
	for (size_t i = 0; i < g->mm.nvmas; i++)
		total += g->mm.vmas[i].end - g->mm.vmas[i].start;
	return total;
}

/* The host's file `name` of process `pid` (0: km's) or of its thread `tid` (0: the process),
 * whole and NUL-terminated (to free), or NULL with *rc = -errno. */
static char *host_text_of(pid_t pid, pid_t tid, const char *name, int *rc)
{
	char path[96], proc[24] = "self";
	if (pid != 0)
		snprintf(proc, sizeof(proc), "%d", (int)pid);
	if (tid == 0)
		snprintf(path, sizeof(path), "/proc/%s/%s", proc, name);
	else
		snprintf(path, sizeof(path), "/proc/%s/task/%d/%s", proc, (int)tid, name);
	int fd = km_fd_reserve(open(path, O_RDONLY | O_CLOEXEC));
	if (fd < 0) {
		*rc = -errno;
		return NULL;
	}
	km_buf_t b = {0};
	char chunk[4096];
	ssize_t n;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		km_buf_put(&b, chunk, (size_t)n);
	*rc = n < 0 ? -errno : 0;
	close(fd);
	km_buf_put(&b, "", 1);
	if (*rc == 0 && b.failed)
		*rc = -ENOMEM;
	if (*rc < 0) {
		km_buf_free(&b);
		return NULL;
	}
	return (char *)b.p;
}

/* The host's file for km's process (tid 0) or one of its threads: see host_text_of. */
static char *host_text(pid_t tid, const char *name, int *rc)
{
	return host_text_of(0, tid, name, rc);
}

/* The guest's id for host thread `tid` (0: the process). */
static pid_t guest_id(km_guest_t *g, pid_t tid)
{
	for (int i = 0; tid != 0 && i < g->nvcpus; i++)
		if (g->vcpus[i] != NULL && __atomic_load_n(&g->vcpus[i]->live, __ATOMIC_ACQUIRE) &&
		    __atomic_load_n(&g->vcpus[i]->host_tid, __ATOMIC_ACQUIRE) == tid)
			return g->vcpus[i]->tid;
	return g->pid;
}

typedef struct code_range {
	uint64_t code_start, code_end, data_start, data_end;
} code_range_t;

static code_range_t program_ranges(km_guest_t *g)
{
	code_range_t r = {0};
	for (size_t i = 0; i < g->mm.nvmas; i++) {
		const km_vma_t *v = &g->mm.vmas[i];
		if (v->kind != KM_VMA_ELF)
			continue;
		uint64_t *lo = v->prot & PROT_EXEC ? &r.code_start : &r.data_start;
		uint64_t *hi = v->prot & PROT_EXEC ? &r.code_end : &r.data_end;
		if (*lo == 0 || v->start < *lo)
			*lo = v->start;
		if (v->end > *hi)
			*hi = v->end;
	}
	return r;
}

/* The value km puts in stat's field `field` (proc(5)'s numbering): false to keep the host's. */
typedef bool (*stat_field_fn)(km_guest_t *g, const code_range_t *cr, int field, uint64_t *val);

/* Writes the host's stat line `host` (modified in place) to t, with pid `id` and the fields
 * `set` chooses. */
static int put_stat(km_guest_t *g, char *host, int id, stat_field_fn set, km_buf_t *t)
{
	char *comm_end = strrchr(host, ')');
	char *open = strchr(host, '(');
	if (comm_end == NULL || open == NULL || comm_end < open)
		return -EIO;
	code_range_t cr = g != NULL ? program_ranges(g) : (code_range_t){0};
	km_buf_printf(t, "%d ", id);
	km_buf_put(t, open, (size_t)(comm_end - open) + 1);
	int field = 2;
	char *save = NULL;
	for (char *f = strtok_r(comm_end + 1, " \n", &save); f != NULL; f = strtok_r(NULL, " \n", &save)) {
		uint64_t val;
		if (set(g, &cr, ++field, &val))
			km_buf_printf(t, " %" PRIu64, val);
		else
			km_buf_printf(t, " %s", f);
	}
	km_buf_put(t, "\n", 1);
	return 0;
}

/* The guest's sizes and addresses where the host's would be km's. */
static bool own_stat_field(km_guest_t *g, const code_range_t *cr, int field, uint64_t *val)
{
	switch (field) {
	case 23: *val = guest_vsize(g); return true;
	case 26: *val = cr->code_start; return true;
	case 27: *val = cr->code_end; return true;
	case 28: *val = g->start_stack; return true;
	case 29: case 30: *val = 0; return true; /* kstkesp, kstkeip: 0 as Linux shows them */
	case 45: *val = cr->data_start; return true;
	case 46: *val = cr->data_end; return true;
	case 47: *val = g->mm.brk_start; return true;
	case 48: *val = g->arg_start; return true;
	case 49: *val = g->arg_end; return true;
	case 50: *val = g->env_start; return true;
	case 51: *val = g->env_end; return true;
	default: return false;
	}
}

/* Another process's addresses (a km's would be its layout) are 0, as the kernel shows them for a
 * process one may not trace: startcode, endcode, startstack, kstkesp, kstkeip, and start_data
 * to env_end. */
static bool other_stat_field(km_guest_t *g, const code_range_t *cr, int field, uint64_t *val)
{
	(void)g;
	(void)cr;
	*val = 0;
	return (field >= 26 && field <= 30) || (field >= 45 && field <= 51);
}

/* /proc/<pid>/stat: the host's line with the ids, sizes and addresses (which would be km's) set
 * from the guest. */
static int gen_stat(km_guest_t *g, pid_t tid, km_buf_t *t)
{
	int rc;
	char *host = host_text(tid, "stat", &rc);
	if (host == NULL)
		return rc;
	rc = put_stat(g, host, (int)guest_id(g, tid), own_stat_field, t);
	free(host);
	return rc;
}

/* Another process's (or thread's) stat: the host's line without its addresses. */
static int gen_other_stat(pid_t pid, pid_t tid, km_buf_t *t)
{
	int rc;
	char *host = host_text_of(pid, tid, "stat", &rc);
	if (host == NULL)
		return rc;
	rc = put_stat(NULL, host, (int)(tid != 0 ? tid : pid), other_stat_field, t);
	free(host);
	return rc;
}

/* /proc/<pid>/status: the host's lines with the ids and the address-space size set from the
 * guest (the host's would count km's whole guest-physical reservation). */
static int gen_status(km_guest_t *g, pid_t tid, km_buf_t *t)
{
	int rc;
	char *host = host_text(tid, "status", &rc);
	if (host == NULL)
		return rc;
	uint64_t kb = guest_vsize(g) >> 10;
	char *save = NULL;
	for (char *l = strtok_r(host, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
		if (strncmp(l, "Pid:", 4) == 0)
			km_buf_printf(t, "Pid:\t%d\n", (int)guest_id(g, tid));
		else if (strncmp(l, "Tgid:", 5) == 0)
			km_buf_printf(t, "Tgid:\t%d\n", (int)g->pid);
		else if (strncmp(l, "VmPeak:", 7) == 0)
			km_buf_printf(t, "VmPeak:\t%8" PRIu64 " kB\n", kb);
		else if (strncmp(l, "VmSize:", 7) == 0)
			km_buf_printf(t, "VmSize:\t%8" PRIu64 " kB\n", kb);
		else if (strncmp(l, "Threads:", 8) == 0)
			km_buf_printf(t, "Threads:\t%d\n", km_threads_live(g));
		else
			km_buf_printf(t, "%s\n", l);
	}
	free(host);
	return 0;
}

/* /proc/<pid>/statm: the host's page counts, with the first (the address space's size, which
 * would be km's whole reservation) the guest's. */
static int gen_statm(km_guest_t *g, pid_t tid, km_buf_t *t)
{
	int rc;
	char *host = host_text(tid, "statm", &rc);
	if (host == NULL)
		return rc;
	const char *rest = strchr(host, ' ');
	km_buf_printf(t, "%" PRIu64 "%s", guest_vsize(g) / KM_PAGE_SIZE, rest != NULL ? rest : "\n");
	free(host);
	return 0;
}

static int generate(km_guest_t *g, const km_pv_t *pv, km_buf_t *t)
{
	switch (pv->file) {
	case KM_PV_CMDLINE:
		gen_cmdline(g, t);
		return 0;
	case KM_PV_ENVIRON:
		gen_environ(g, t);
		return 0;
	case KM_PV_AUXV:
		if (g->auxv != NULL)
			km_buf_put(t, g->auxv, g->auxv_len);
		return 0;
	case KM_PV_MAPS:
		gen_maps(g, t);
		return 0;
	case KM_PV_STAT:
		return gen_stat(g, pv->tid, t);
	case KM_PV_STATUS:
		return gen_status(g, pv->tid, t);
	case KM_PV_STATM:
		return gen_statm(g, pv->tid, t);
	case KM_PV_OTHER_STAT:
		return gen_other_stat(pv->pid, pv->tid, t);
	default:
		return -EACCES;
	}
}

int km_procview_open(km_guest_t *g, const km_pv_t *pv)
{
	km_buf_t t = {0};
	int rc = generate(g, pv, &t);
	if (rc == 0 && t.failed)
		rc = -ENOMEM;
	int fd = rc < 0 ? -1 : memfd_create("km-proc", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (rc == 0 && fd < 0)
		rc = -errno;
	if (rc == 0)
		rc = km_pwrite_all(fd, t.p, t.len, 0);
	/* Sealed as procfs files are unwritable; the guest reads it from the start (pwrite left the
	 * offset there). */
	if (rc == 0 && fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0)
		rc = -errno;
	km_buf_free(&t);
	if (rc < 0) {
		if (fd >= 0)
			close(fd);
		return rc;
	}
	return fd;
}

/* --- directory listings ---------------------------------------------------------------------- */

typedef enum dir_kind { DIR_OTHER, DIR_TASK, DIR_FDS } dir_kind_t;

/* Which of km's directories `dir` (procfs-relative) is, if any. */
static dir_kind_t dir_kind(km_guest_t *g, const char *dir)
{
	const char *rest, *sub;
	long pid = number(dir, &rest);
	if (pid < 0)
		return DIR_OTHER;
	bool process = pid == getpid();
	/* Another process (not one of km's threads): its task/ is the host's; its fds are filtered. */
	bool other = !process && !km_thread((pid_t)pid);
	if (!process && !other && !km_procview_guest_tid(g, (pid_t)pid))
		return DIR_OTHER;
	if ((process || other) && comp_is(rest, "task", &sub)) {
		if (*sub == '\0')
			return other ? DIR_OTHER : DIR_TASK;
		long t = number(sub, &rest);
		if (t < 0)
			return DIR_OTHER;
	}
	if ((comp_is(rest, "fd", &sub) || comp_is(rest, "fdinfo", &sub)) && *sub == '\0')
		return DIR_FDS;
	return DIR_OTHER;
}

/* Whether an entry called `name` in a directory of kind k is km's own. */
static bool hidden_name(km_guest_t *g, dir_kind_t k, const char *name)
{
	const char *end;
	long n = number(name, &end);
	if (n < 0)
		return false;
	if (k == DIR_TASK)
		return !km_procview_guest_tid(g, (pid_t)n);
	return k == DIR_FDS && n >= KM_FD_RESERVED_BASE;
}

/* Both layouts start with d_ino (8) and d_off (8), then d_reclen (2); the name follows at
 * name_off. */
static size_t filter(km_guest_t *g, const char *dir, void *buf, size_t n, size_t name_off)
{
	dir_kind_t k = dir_kind(g, dir);
	if (k == DIR_OTHER)
		return n;
	char *p = buf, *out = buf;
	size_t off = 0;
	while (off + name_off < n) {
		unsigned short reclen;
		memcpy(&reclen, p + off + 16, sizeof(reclen));
		if (reclen == 0 || off + reclen > n)
			break;
		if (!hidden_name(g, k, p + off + name_off)) {
			if (out != p + off)
				memmove(out, p + off, reclen);
			out += reclen;
		}
		off += reclen;
	}
	return (size_t)(out - (char *)buf);
}

size_t km_procview_filter_dents64(km_guest_t *g, const char *dir, void *buf, size_t n)
{
	return filter(g, dir, buf, n, 19); /* d_ino, d_off, d_reclen, d_type, d_name */
}

size_t km_procview_filter_dents(km_guest_t *g, const char *dir, void *buf, size_t n)
{
	return filter(g, dir, buf, n, 18); /* d_ino, d_off, d_reclen, d_name */
}
