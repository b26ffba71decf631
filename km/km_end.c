/* How km ends once its guest has: see km_end.h. */
#include "km_end.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "km_signal.h"

static const char *end_prog = "program";
static pid_t end_origin_pid; /* the km the user started: 0 until km_end_set_origin */
static bool end_descendant;

void km_end_set_prog(const char *prog)
{
	end_prog = prog;
}

void km_end_set_origin(bool descendant)
{
	end_origin_pid = getpid();
	end_descendant = descendant;
}

bool km_end_is_descendant(void)
{
	/* A fork copies the recorded pid; exec keeps the pid and passes the flag on. */
	return end_descendant || (end_origin_pid != 0 && getpid() != end_origin_pid);
}

int km_end_report(const km_guest_t *g)
{
	if (g->term_signal == 0)
		return g->exit_status & 0xff;
	int sig = g->term_signal;
	/* Shells stay quiet about broken pipes; so does km. */
	if (sig != SIGPIPE && !km_end_is_descendant())
		fprintf(stderr, "km: %s: killed by SIG%s (%s) at rip %#lx, fault address %#lx%s%s%s\n", end_prog,
			sigabbrev_np(sig) ?: "?", strsignal(sig), (unsigned long)g->fault_rip,
			(unsigned long)g->fault_addr, g->core_written ? " (core dumped to " : "",
			g->core_written ? g->opts.coredump_path : "", g->core_written ? ")" : "");
	return 128 + sig;
}

/* So that km's parent (a shell, a container runtime) sees the wait status a native run gives. No
 * host core: km wrote the guest's own (kmcore) if one was due, and km's would be of km. */
void km_end_die_like_the_guest(int sig)
{
	/* SIGSYS is km's own seccomp reporter, which its filter keeps in place: km exits 159
	 * (128 + SIGSYS, what km_end_report returned) instead. */
	if (sig == SIGSTOP || sig == SIGSYS)
		return;
	struct rlimit none = {0, 0};
	setrlimit(RLIMIT_CORE, &none);
	fflush(stdout);
	fflush(stderr);
	signal(sig, SIG_DFL);
	uint64_t set = 1ull << (sig - 1);
	syscall(SYS_rt_sigprocmask, SIG_UNBLOCK, &set, NULL, sizeof(set));
	raise(sig);
}

_Noreturn void km_end_child(km_guest_t *g, int rc, km_err_t *err)
{
	int status = 1, sig = 0;
	if (rc == 0) {
		status = km_end_report(g); /* no line: a forked child is a descendant */
		sig = g->term_signal;
	} else {
		fprintf(stderr, "km: %s\n", err != NULL ? err->msg : "failed");
	}
	km_err_free(&err);
	km_signal_forward_stop(g);
	km_guest_destroy(g);
	if (sig != 0)
		km_end_die_like_the_guest(sig);
	fflush(NULL);
	/* _exit, not exit: the heap main's frames hold (options, environment) is unreachable in a
	 * forked child, and a leak checker at exit would report it as km's leak. */
	_exit(status);
}
