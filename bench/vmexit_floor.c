/*
 * vmexit_floor: the cheapest possible guest-syscall round trip on this machine's KVM, measured
 * without km. It builds its own VM (bench_kvm.h: one memslot, one vCPU, long mode set directly
 * with KVM_SET_SREGS, identity page tables) and runs one of these guest loops, counting exits:
 *
 *   syscall_sync  `mov $39,%eax; syscall` -> LSTAR stub `out %al,$0x10; jmp *%rcx`, registers
 *                 handed over through kvm_run sync regs and rax written back (KVM_CAP_SYNC_REGS):
 *                 exactly km's path, with the monitor doing nothing but return a value and resume.
 *                 This is the floor km's per-syscall cost is compared with.
 *   syscall_bare  the same guest code, without sync regs (monitor just calls KVM_RUN again).
 *   out_bare      `out %al,$0x10; jmp` in a loop: no syscall instruction, no sync regs.
 *
 * Each variant: a warm-up, then BATCHES batches of PER_BATCH exits, each batch timed with
 * CLOCK_MONOTONIC; the per-exit cost of a batch is its time / PER_BATCH. Prints, per variant,
 *   variant=<name> exits=<n> median_ns=<..> p90_ns=<..> min_ns=<..>
 * (median/p90/min over the batches). Usage: vmexit_floor [batches [per_batch [variant]]]
 * (all three variants unless one is named).
 */
#include "bench_kvm.h"

extern const uint8_t g_sys_loop[], g_sys_loop_end[], g_out_loop[], g_out_loop_end[], g_lstar[], g_lstar_end[];

/* Guest code, copied into guest memory (position independent). */
__asm__(".pushsection .rodata\n"
	"g_sys_loop:\n"
	"1:	mov $39, %eax\n" /* getppid's number, as the program would load it */
	"	syscall\n"
	"	jmp 1b\n"
	"g_sys_loop_end:\n"
	"g_out_loop:\n"
	"2:	out %al, $0x10\n"
	"	jmp 2b\n"
	"g_out_loop_end:\n"
	"g_lstar:\n" /* syscall entry at CPL0: no stack touched, as in km's runtime */
	"	out %al, $0x10\n"
	"	jmp *%rcx\n"
	"g_lstar_end:\n"
	".popsection\n");

static const char *prog = "vmexit_floor";

enum variant { SYSCALL_SYNC, SYSCALL_BARE, OUT_BARE };
static const char *names[] = {"syscall_sync", "syscall_bare", "out_bare"};

static void run_variant(enum variant var, int batches, int per_batch)
{
	bk_vm_t v;
	bk_init(&v);
	if (bk_open_kvm(&v) < 0)
		bk_die(prog, "open /dev/kvm");
	if (bk_create_vm(&v) < 0)
		bk_die(prog, "KVM_CREATE_VM");
	if (bk_add_memory(&v) < 0)
		bk_die(prog, "guest memory");
	memcpy(v.mem + BK_CODE, g_sys_loop, (size_t)(g_sys_loop_end - g_sys_loop));
	memcpy(v.mem + BK_CODE + 0x100, g_out_loop, (size_t)(g_out_loop_end - g_out_loop));
	memcpy(v.mem + BK_LSTAR_OFF, g_lstar, (size_t)(g_lstar_end - g_lstar));
	if (bk_create_vcpu(&v) < 0)
		bk_die(prog, "KVM_CREATE_VCPU");
	if (bk_setup_vcpu(&v, var == OUT_BARE ? BK_CODE + 0x100 : BK_CODE) < 0)
		bk_die(prog, "vCPU setup");

	int sync = var == SYSCALL_SYNC;
	struct kvm_run *run = v.run;
	run->kvm_valid_regs = sync ? KVM_SYNC_X86_REGS : 0;

	double *per_exit = calloc((size_t)batches, sizeof *per_exit);
	if (!per_exit)
		bk_die(prog, "calloc");
	int warmup = per_batch < 2000 ? 2000 : per_batch;
	for (int b = -1; b < batches; b++) {
		int n = b < 0 ? warmup : per_batch;
		double t0 = bk_now_ns();
		for (int i = 0; i < n; i++) {
			if (ioctl(v.vcpu, KVM_RUN, 0) < 0)
				bk_die(prog, "KVM_RUN");
			if (run->exit_reason != KVM_EXIT_IO || run->io.port != BK_PORT) {
				fprintf(stderr, "%s: unexpected exit %u (port %#x)\n", prog, run->exit_reason,
					run->io.port);
				exit(2);
			}
			if (sync) {
				/* What a monitor must do at least: read the syscall, write its result. */
				if (run->s.regs.regs.rax != 39) {
					fprintf(stderr, "%s: guest rax %llu, expected 39\n", prog,
						run->s.regs.regs.rax);
					exit(2);
				}
				run->s.regs.regs.rax = 1;
				run->kvm_dirty_regs = KVM_SYNC_X86_REGS;
			}
		}
		double t1 = bk_now_ns();
		if (b >= 0)
			per_exit[b] = (t1 - t0) / n;
	}
	bk_close(&v);

	double min = bk_quantile(per_exit, (size_t)batches, 0.0);
	double med = bk_quantile(per_exit, (size_t)batches, 0.5);
	double p90 = bk_quantile(per_exit, (size_t)batches, 0.9);
	printf("variant=%s exits=%ld median_ns=%.0f p90_ns=%.0f min_ns=%.0f\n", names[var],
	       (long)batches * per_batch, med, p90, min);
	fflush(stdout);
	free(per_exit);
}

int main(int argc, char **argv)
{
	int batches = argc > 1 ? atoi(argv[1]) : 20;
	int per_batch = argc > 2 ? atoi(argv[2]) : 2000;
	int only = -1;
	for (int i = 0; argc > 3 && i < 3; i++)
		if (strcmp(argv[3], names[i]) == 0)
			only = i;
	if (batches < 1 || per_batch < 1 || argc > 4 || (argc > 3 && only < 0)) {
		fprintf(stderr, "usage: %s [batches [per_batch [syscall_sync|syscall_bare|out_bare]]]\n", prog);
		return 2;
	}
	for (int i = 0; i < 3; i++)
		if (only < 0 || only == i)
			run_variant((enum variant)i, batches, per_batch);
	return 0;
}
