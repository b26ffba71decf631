/*
 * vmcreate_floor: what creating a VM costs before any program runs in it, measured without km.
 * Each repetition, timed phase by phase with CLOCK_MONOTONIC:
 *   open     open /dev/kvm (+ KVM_GET_API_VERSION)
 *   vm       KVM_CREATE_VM
 *   mem      mmap 2 MiB of guest memory, page tables + GDT written into it, KVM_SET_USER_MEMORY_REGION
 *   vcpu     KVM_CREATE_VCPU + mmap of its kvm_run
 *   setup    KVM_GET_SUPPORTED_CPUID/KVM_SET_CPUID2, long mode via KVM_SET_SREGS, syscall MSRs, regs
 *   run      first KVM_RUN until the guest's first exit (one `out`, as km's syscall stub does)
 *   total    the sum of the above: the "VM creation floor"
 *   close    munmap + close of everything (not in total; reported separately)
 * Two modes, each printing one line per phase:
 *   mode=fresh  every repetition in a newly forked process, whose first VM it is (what km pays:
 *               km is a new process on every run). Timed inside the child; fork is not counted.
 *   mode=warm   repetitions one after the other in this process (kernel caches warm).
 * Line format: mode=<m> phase=<name> reps=<n> median_us=<..> p90_us=<..> min_us=<..>
 * Usage: vmcreate_floor [reps]
 */
#include "bench_kvm.h"

#include <sys/wait.h>

extern const uint8_t g_first_exit[], g_first_exit_end[];

__asm__(".pushsection .rodata\n"
	"g_first_exit:\n"
	"	out %al, $0x10\n"
	"	hlt\n"
	"g_first_exit_end:\n"
	".popsection\n");

static const char *prog = "vmcreate_floor";

enum { P_OPEN, P_VM, P_MEM, P_VCPU, P_SETUP, P_RUN, P_TOTAL, P_CLOSE, NPHASE };
static const char *phase_names[NPHASE] = {"open", "vm", "mem", "vcpu", "setup", "run", "total", "close"};

static void one(double *t /* [NPHASE], microseconds */)
{
	bk_vm_t v;
	bk_init(&v);
	double ts[8];
	ts[0] = bk_now_ns();
	if (bk_open_kvm(&v) < 0)
		bk_die(prog, "open /dev/kvm");
	ts[1] = bk_now_ns();
	if (bk_create_vm(&v) < 0)
		bk_die(prog, "KVM_CREATE_VM");
	ts[2] = bk_now_ns();
	if (bk_add_memory(&v) < 0)
		bk_die(prog, "guest memory");
	memcpy(v.mem + BK_CODE, g_first_exit, (size_t)(g_first_exit_end - g_first_exit));
	ts[3] = bk_now_ns();
	if (bk_create_vcpu(&v) < 0)
		bk_die(prog, "KVM_CREATE_VCPU");
	ts[4] = bk_now_ns();
	if (bk_setup_vcpu(&v, BK_CODE) < 0)
		bk_die(prog, "vCPU setup");
	v.run->kvm_valid_regs = KVM_SYNC_X86_REGS;
	ts[5] = bk_now_ns();
	if (ioctl(v.vcpu, KVM_RUN, 0) < 0)
		bk_die(prog, "KVM_RUN");
	ts[6] = bk_now_ns();
	if (v.run->exit_reason != KVM_EXIT_IO || v.run->io.port != BK_PORT) {
		fprintf(stderr, "%s: unexpected first exit %u\n", prog, v.run->exit_reason);
		exit(2);
	}
	bk_close(&v);
	ts[7] = bk_now_ns();
	for (int p = P_OPEN; p <= P_RUN; p++)
		t[p] = (ts[p + 1] - ts[p]) / 1e3;
	t[P_TOTAL] = (ts[6] - ts[0]) / 1e3;
	t[P_CLOSE] = (ts[7] - ts[6]) / 1e3;
}

static void report(const char *mode, double *t, int reps)
{
	double *col = calloc((size_t)reps, sizeof *col);
	if (!col)
		bk_die(prog, "calloc");
	for (int p = 0; p < NPHASE; p++) {
		for (int r = 0; r < reps; r++)
			col[r] = t[(size_t)r * NPHASE + p];
		printf("mode=%s phase=%s reps=%d median_us=%.1f p90_us=%.1f min_us=%.1f\n", mode, phase_names[p], reps,
		       bk_quantile(col, (size_t)reps, 0.5), bk_quantile(col, (size_t)reps, 0.9),
		       bk_quantile(col, (size_t)reps, 0.0));
	}
	fflush(stdout);
	free(col);
}

/* One repetition in a new process; its timings come back through a pipe. */
static void one_fresh(double *t)
{
	int fd[2];
	if (pipe(fd) < 0)
		bk_die(prog, "pipe");
	pid_t pid = fork();
	if (pid < 0)
		bk_die(prog, "fork");
	if (pid == 0) {
		close(fd[0]);
		double c[NPHASE];
		one(c);
		_exit(write(fd[1], c, sizeof c) == (ssize_t)sizeof c ? 0 : 1);
	}
	close(fd[1]);
	ssize_t got = read(fd[0], t, NPHASE * sizeof *t);
	close(fd[0]);
	int st;
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 ||
	    got != (ssize_t)(NPHASE * sizeof *t)) {
		fprintf(stderr, "%s: measuring child failed\n", prog);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	int reps = argc > 1 ? atoi(argv[1]) : 100;
	if (reps < 1) {
		fprintf(stderr, "usage: %s [reps]\n", prog);
		return 2;
	}
	double *t = calloc((size_t)reps * NPHASE, sizeof *t);
	if (!t)
		bk_die(prog, "calloc");
	double warm[NPHASE];
	/* fresh first, so no child inherits anything from a VM this process made */
	for (int i = 0; i < 3; i++)
		one_fresh(warm);
	for (int r = 0; r < reps; r++)
		one_fresh(t + (size_t)r * NPHASE);
	report("fresh", t, reps);
	for (int i = 0; i < 3; i++)
		one(warm);
	for (int r = 0; r < reps; r++)
		one(t + (size_t)r * NPHASE);
	report("warm", t, reps);
	free(t);
	return 0;
}
