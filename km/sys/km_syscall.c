/* Syscall dispatch and --trace. See km_syscall.h. */
#include "km_syscall.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "km_exception.h"
#include "km_guest.h"
#include "km_guest_seccomp.h"
#include "km_hypercall.h"
#include "km_snapshot.h"
#include "km_threads.h"
#include "km_signal.h"
#include "km_sys_util.h"
#include "km_syscall_names.h" /* generated from <asm/unistd_64.h>: km_syscall_names[] */

#define KM_NSYSCALLS 512

static const km_sys_def_t *table[KM_NSYSCALLS];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void add_family(const km_sys_def_t *defs)
{
	for (const km_sys_def_t *d = defs; d->name != NULL; d++)
		if (d->nr >= 0 && d->nr < KM_NSYSCALLS)
			table[d->nr] = d;
}

static void build_table(void)
{
	add_family(km_sys_file_defs);
	add_family(km_sys_net_defs);
	add_family(km_sys_mem_defs);
	add_family(km_sys_proc_defs);
	add_family(km_sys_time_defs);
	add_family(km_sys_misc_defs);
	add_family(km_sys_thread_defs);
	add_family(km_sys_signal_defs);
	add_family(km_sys_wait_defs);
	add_family(km_sys_exec_defs);
}

void km_syscall_init(void)
{
	pthread_once(&table_once, build_table);
}

const char *km_syscall_name(int nr)
{
	if (nr >= 0 && nr < KM_NSYSCALLS && table[nr] != NULL)
		return table[nr]->name;
	return NULL;
}

/* Formats one argument for --trace into buf. */
static void trace_arg(km_vcpu_t *v, char f, uint64_t a, char *buf, size_t len)
{
	switch (f) {
	case 'd':
	case 'f':
		snprintf(buf, len, "%ld", (long)a);
		break;
	case 'u':
		snprintf(buf, len, "%lu", (unsigned long)a);
		break;
	case 'o':
		snprintf(buf, len, "%#lo", (unsigned long)a);
		break;
	case 's': {
		/* Copied, not pointed at: a string may cross mappings that are apart on the host. */
		char str[64];
		size_t n = km_guest_prefix(&v->g->mm, a, sizeof(str) - 1, KM_ACC_READ);
		if (n == 0 || km_copy_from_guest(&v->g->mm, str, a, n) < 0) {
			snprintf(buf, len, "%#lx", (unsigned long)a);
			break;
		}
		str[n] = '\0';
		bool cut = strlen(str) == sizeof(str) - 1;
		snprintf(buf, len, "\"%s\"%s", str, cut ? "..." : "");
		break;
	}
	case 'p':
		if (a == 0) {
			snprintf(buf, len, "NULL");
			break;
		}
		/* fall through */
	default:
		snprintf(buf, len, "%#lx", (unsigned long)a);
	}
}

static const char *name_of(uint64_t nr)
{
	if (nr < sizeof(km_syscall_names) / sizeof(km_syscall_names[0]) && km_syscall_names[nr] != NULL)
		return km_syscall_names[nr];
	if (nr == KM_HCALL_BASE + HC_snapshot)
		return "km_hcall(HC_snapshot)";
	return NULL;
}

/* Prints "name(args) = result" like strace; `done` false prints "= ?" (exit never returns). */
static void trace(km_vcpu_t *v, uint64_t nr, const uint64_t *a, long ret, bool done)
{
	const km_sys_def_t *d = nr < KM_NSYSCALLS ? table[nr] : NULL;
	char line[1024];
	size_t n = 0;
	const char *name = name_of(nr);
	/* As strace -f: once the guest has more than one thread, each line says whose it is. */
	if (v->g->nvcpus > 1)
		n += (size_t)snprintf(line + n, sizeof(line) - n, "[tid %d] ", (int)v->tid);
	if (name != NULL)
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%s(", name);
	else
		n += (size_t)snprintf(line + n, sizeof(line) - n, "syscall_%#lx(", (unsigned long)nr);
	const char *fmt = d != NULL ? d->args : "xxxxxx";
	for (int i = 0; fmt[i] != '\0' && i < 6 && n < sizeof(line); i++) {
		char arg[128];
		trace_arg(v, fmt[i], a[i], arg, sizeof(arg));
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s", i ? ", " : "", arg);
	}
	if (n >= sizeof(line))
		n = sizeof(line) - 1;
	if (!done)
		dprintf(v->g->opts.trace_fd, "%s) = ?\n", line);
	else if (ret == -KM_ERESTART)
		dprintf(v->g->opts.trace_fd, "%s) = ? ERESTART (interrupted by km: made again, or EINTR for a handler)\n", line);
	else if (ret < 0 && ret > -4096)
		dprintf(v->g->opts.trace_fd, "%s) = -1 %s (%s)%s\n", line, strerrorname_np((int)-ret) ?: "?",
			strerror((int)-ret), d == NULL ? " [not implemented by km]" : "");
	else if (ret >= 0 && ret < 1 << 20)
		dprintf(v->g->opts.trace_fd, "%s) = %ld\n", line, ret);
	else
		dprintf(v->g->opts.trace_fd, "%s) = %#lx\n", line, (unsigned long)ret);
}

/* Linux raises SIGPIPE when a write to a pipe or socket fails with EPIPE (sends unless
 * MSG_NOSIGNAL); km's own SIGPIPE is ignored so the guest's disposition decides. */
static bool raises_sigpipe(uint64_t nr, const uint64_t *a)
{
	switch (nr) {
	case SYS_write:
	case SYS_writev:
	case SYS_pwrite64:
	case SYS_pwritev:
	case SYS_pwritev2:
	case SYS_sendfile:
	case SYS_splice:
	case SYS_tee:
	case SYS_vmsplice:
		return true;
	case SYS_sendto:
		return !(a[3] & MSG_NOSIGNAL);
	case SYS_sendmsg:
	case SYS_sendmmsg:
		return !(a[2] & MSG_NOSIGNAL);
	default:
		return false;
	}
}

#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1
#endif
#define KM_AUDIT_ARCH_X86_64 0xc000003eu

/* The guest's filter dies of SIGSYS as Linux's kill actions do (with a core file when one is due:
 * the registers show the call not made, rax its number). */
static void seccomp_kill(km_vcpu_t *v, uint64_t nr)
{
	struct kvm_regs u = v->user;
	u.rax = nr;
	km_guest_kill(v, SIGSYS, u.rip, 0);
	km_core_dump(v, &u, SIGSYS);
}

/* SECCOMP_RET_TRAP: the call is not made, rax keeps its number (Linux rolls it back) and a
 * forced SIGSYS says which call from where. */
static long seccomp_trap(km_vcpu_t *v, uint64_t nr, uint16_t data)
{
	siginfo_t info;
	memset(&info, 0, sizeof(info));
	info.si_signo = SIGSYS;
	info.si_errno = data;
	info.si_code = SYS_SECCOMP;
	info.si_call_addr = (void *)(uintptr_t)v->user.rip;
	info.si_syscall = (int)nr;
	info.si_arch = KM_AUDIT_ARCH_X86_64;
	km_signal_force(v, &info);
	return (long)nr;
}

/* The guest's own filter (km_guest_seccomp.h) on syscall nr: true if the call is not to be made,
 * with *ret what the program gets. */
static bool guest_filtered(km_vcpu_t *v, uint64_t nr, const uint64_t *a, long *ret)
{
	km_gsc_verdict_t vd = km_gsc_eval(v->g->gseccomp, nr, a);
	const char *name;
	switch (vd.action) {
	case KM_GSC_ALLOW:
		return false;
	case KM_GSC_LOG:
		name = name_of(nr);
		dprintf(km_error_fd(), "km: seccomp: the program's syscall %s (%lu) logged by its filter\n",
			name != NULL ? name : "?", (unsigned long)nr);
		return false;
	case KM_GSC_ERRNO:
		*ret = -(long)vd.data;
		return true;
	case KM_GSC_TRACE: /* no tracer can be attached: Linux answers ENOSYS then */
		*ret = -ENOSYS;
		return true;
	case KM_GSC_TRAP:
		*ret = seccomp_trap(v, nr, vd.data);
		return true;
	case KM_GSC_KILL_THREAD:
		if (km_threads_live(v->g) > 1) {
			km_threads_exit(v, 0);
			if (v->thread_exit) {
				*ret = 0;
				return true;
			}
		}
		/* the last thread: the process dies of it, as on Linux */
		/* fall through */
	case KM_GSC_KILL_PROCESS:
	default:
		seccomp_kill(v, nr);
		*ret = 0;
		return true;
	}
}

/* Runs the call; `filter`: the guest's seccomp filter (if any) judges it first. */
static long run_call(km_vcpu_t *v, uint64_t nr, const uint64_t a[6], bool filter)
{
	const km_sys_def_t *d = nr < KM_NSYSCALLS ? table[nr] : NULL;
	long ret;
	/* Guest memory this call translates stays km's until the call ends (km_phys_deferred_t). */
	__atomic_store_n(&v->sys_epoch, km_mm_epoch(&v->g->mm), __ATOMIC_SEQ_CST);
	bool made = true;
	if (filter && v->g->gseccomp != NULL && guest_filtered(v, nr, a, &ret))
		made = false;
	else if (km_is_hcall(nr))
		ret = km_hcall_handle(v, nr - KM_HCALL_BASE, a[0]);
	else {
		km_signal_syscall_begin();
		ret = d != NULL ? d->fn(v, a) : -ENOSYS;
		km_signal_syscall_end(v, ret);
	}
	if (made && ret == -EPIPE && raises_sigpipe(nr, a))
		km_signal_raise(v, SIGPIPE);
	if (made && nr == SYS_rt_sigreturn && !km_guest_ended(v->g))
		ret = (long)v->user.rax; /* the restored rax, whatever it is */
	__atomic_store_n(&v->sys_epoch, 0, __ATOMIC_RELEASE);
	if (v->g->opts.trace)
		trace(v, nr, a, ret, !km_guest_ended(v->g) && !v->thread_exit);
	return ret;
}

long km_syscall_run(km_vcpu_t *v, uint64_t nr, const uint64_t a[6])
{
	return run_call(v, nr, a, true);
}

long km_syscall_run_unfiltered(km_vcpu_t *v, uint64_t nr, const uint64_t a[6])
{
	return run_call(v, nr, a, false);
}

void km_syscall_handle(km_vcpu_t *v)
{
	struct kvm_regs *r = KM_REGS(v);
	uint64_t a[6] = {r->rdi, r->rsi, r->rdx, r->r10, r->r8, r->r9};
	r->rax = (uint64_t)km_syscall_run(v, r->rax, a);
	/* syscall put the return address in rcx and rflags in r11, exactly as Linux leaves them. */
	v->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
}
