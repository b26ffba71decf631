/*
 * vmexit_floor: the cheapest possible guest-syscall round trip on this machine's KVM, measured
 * without km. It builds its own VM with bench_kvm.h's helpers (one memslot, one vCPU) and, here,
 * its own guest state in the shape km gives a program: 4-level page tables with user (U=1) and
 * supervisor (U=0) pages, a GDT with Linux's selectors, a 64-bit TSS whose RSP0 and IST1 point at
 * an exception stack, an IDT whose gates all use IST1. It then runs one of these guest loops,
 * counting exits:
 *
 *   km_path    the program's path under km. At CPL3 (CS 0x33, SS 0x2b):
 *              `mov $39,%eax; syscall` -> LSTAR, on a user page, holds `int3` (PVM keeps CPL3
 *              there, hardware KVM enters CPL0; either way int3 goes through the IDT) -> #BP gate
 *              (DPL3, IST1) -> CPL0 stub on a supervisor page `pushq $0; out %al,$0x23; jmp
 *              common; common: add $8,%rsp; iretq`. The monitor gets KVM_EXIT_IO with the registers
 *              in kvm_run sync regs (KVM_CAP_SYNC_REGS), checks rax, writes a result into rax, and
 *              edits the iret frame on the IST stack the way sysret would return (rip = rcx,
 *              rflags = r11, CS 0x33, SS 0x2b), then resumes. This is km's syscall path with a
 *              monitor that does nothing else: the floor km's per-syscall cost is compared with.
 *   int3_cpl3  a plain exit round trip on the same path without the syscall instruction: a CPL3
 *              loop `int3; jmp` through the same gate and CPL0 stub. No sync regs; the monitor
 *              just runs the vCPU again, and iretq returns to the jmp.
 *   out_cpl0   `out %al,$0x10; jmp` in a loop at CPL0 (CS 0x10), no sync regs: the round trip
 *              km's old CPL0 design paid. On PVM, guest code at CPL0 is run by KVM's instruction
 *              emulator, so this row measures the emulator, not a hardware exit.
 *
 * and two floors of the exitless syscall path (issue 12), where no round trip leaves the VM:
 *
 *   sysjmp     the `syscall` instruction alone: at CPL3, `mov $39,%eax; syscall` with LSTAR at a
 *              stub on a user page that returns at once (`jmp *%rcx` where it runs at CPL3, as on
 *              PVM; `sysretq` where `syscall` entered CPL0, as on hardware KVM). No monitor work:
 *              what a poll path cannot avoid paying per syscall on this host (PVM traps the
 *              instruction; on hardware it is native, tens of ns).
 *   poll       a CPL3 guest and a host thread trading a word through shared memory: the guest
 *              stores a sequence number into a request word and spins (`pause`) until the host
 *              thread, polling that word, copies it into a response word on another cache line.
 *              No `syscall`, no exit: the cost of handing a request to a server thread and back.
 *
 * Each variant: a warm-up, then BATCHES batches of PER_BATCH round trips, each batch timed with
 * CLOCK_MONOTONIC; the per-round-trip cost of a batch is its time / PER_BATCH. For the exit
 * variants each round trip is one KVM_RUN; sysjmp and poll make PER_BATCH round trips inside one
 * KVM_RUN (the count is read from guest memory) and end it with one int3 exit, whose cost (one exit
 * per batch) is in the figure. Prints, per variant,
 *   variant=<name> exits=<n> median_ns=<..> p90_ns=<..> min_ns=<..>          (exit variants)
 *   variant=<name> round_trips=<n> median_ns=<..> p90_ns=<..> min_ns=<..>    (sysjmp, poll)
 * (median/p90/min over the batches). Usage: vmexit_floor [batches [per_batch [variant]]]
 * (all five variants unless one is named).
 *
 * Guest-physical layout (2 MiB, bench_kvm.h's BK_MEM_SIZE):
 *   0x1000 PML4   0x2000/0x3000/0x4000 PDPT/PD/PT of the low mappings
 *                 0x5000/0x6000/0x7000 PDPT/PD/PT of the runtime region
 *   0x10000 the program's code (user, read/exec)   0x11000 its stack page (user, read/write),
 *           whose first cache lines hold the batch count and the poll words (PROG_COUNT, ...)
 *   0x100000 the runtime region, mapped at RT_GVA (the top of the lower half, as km maps its own:
 *            PVM does not allow the guest the upper half):
 *     +0x0000 user page: the syscall entry (LSTAR): int3; at +0x10 sysjmp's returning entry
 *     +0x1000 supervisor page: common return, exception stubs, the CPL0 out loop
 *     +0x2000 IDT   +0x3000 GDT (TSS at +0x3100)   +0x4000..+0x8000 IST1/RSP0 stack
 */
#include "bench_kvm.h"

#include <pthread.h>

#define RT_GVA 0x7fffff000000ULL
#define RT_GPA 0x100000ULL
#define RT_USER 0x0000 /* LSTAR page */
#define RT_USER_SYSJMP 0x10 /* sysjmp's LSTAR, on the same page */
#define RT_KERN 0x1000 /* exception stubs */
/* offsets inside the supervisor page */
#define RT_KERN_COMMON 0x00
#define RT_KERN_OUT_LOOP 0x40
#define RT_KERN_STUBS 0x100
#define RT_STUB_SIZE 16
#define RT_IDT 0x2000
#define RT_GDT 0x3000
#define RT_TSS 0x3100
#define RT_STACK 0x4000
#define RT_STACK_TOP 0x8000
#define RT_PAGES 8

#define PROG_CODE 0x10000ULL
#define PROG_STACK 0x11000ULL
#define PROG_RSP (PROG_STACK + 0x1000)
/* Words the monitor and the batch loops share, each on a cache line of its own (the stack grows
 * down from the page's end and never reaches them). */
#define PROG_COUNT (PROG_STACK + 0x00)	  /* round trips per KVM_RUN (sysjmp, poll) */
#define PROG_POLL_REQ (PROG_STACK + 0x40)  /* poll: the guest's sequence number */
#define PROG_POLL_RESP (PROG_STACK + 0x80) /* poll: the host thread's copy of it */
/* Where each loop starts inside the code page. */
#define PROG_OFF_SYSCALL 0x000
#define PROG_OFF_INT3 0x100
#define PROG_OFF_SYSJMP 0x200
#define PROG_OFF_POLL 0x300

#define SEL_KCODE 0x10
#define SEL_KDATA 0x18
#define SEL_UCODE32 0x23
#define SEL_UDATA 0x2b
#define SEL_UCODE 0x33
#define SEL_TSS 0x40
#define GDT_ENTRIES 10

#define PORT_EXC_BASE 0x20 /* the CPL0 stub of vector v writes to port 0x20 + v */
#define PORT_CPL0_LOOP 0x10

#define PTE_P (1ULL << 0)
#define PTE_RW (1ULL << 1)
#define PTE_US (1ULL << 2)
#define PTE_A (1ULL << 5)
#define PTE_D (1ULL << 6)
#define PTE_NX (1ULL << 63)

#define RFLAGS_USER_MASK 0x3c0dd5ULL /* flags a program may set (what sysret lets through) */
#define RFLAGS_IF 0x200ULL

extern const uint8_t g_prog_syscall[], g_prog_syscall_end[], g_prog_int3[], g_prog_int3_end[], g_prog_sysjmp[],
    g_prog_sysjmp_end[], g_prog_poll[], g_prog_poll_end[], g_user_page[], g_user_page_end[], g_kern_page[],
    g_kern_page_end[];

/* Guest code, copied into guest memory. The supervisor page is one position-independent blob. */
__asm__(".pushsection .rodata\n"
	"g_prog_syscall:\n"
	"1:	mov $39, %eax\n" /* getppid's number, as the program would load it */
	"	syscall\n"
	"	jmp 1b\n"
	"g_prog_syscall_end:\n"
	"g_prog_int3:\n"
	"2:	int3\n"
	"	jmp 2b\n"
	"g_prog_int3_end:\n"
	/* sysjmp and poll: the batch count is reloaded from memory each KVM_RUN, so the monitor
	 * needs no register access; r10 survives syscall (rcx, r11 do not). */
	"g_prog_sysjmp:\n"
	"4:	mov 0x11000, %r10\n" /* PROG_COUNT */
	"5:	mov $39, %eax\n"
	"	syscall\n"
	"	dec %r10\n"
	"	jnz 5b\n"
	"	int3\n"
	"	jmp 4b\n"
	"g_prog_sysjmp_end:\n"
	"g_prog_poll:\n"
	"	xor %ecx, %ecx\n"
	"6:	mov 0x11000, %r10\n" /* PROG_COUNT */
	"7:	inc %rcx\n"
	"	mov %rcx, 0x11040\n" /* PROG_POLL_REQ */
	"8:	pause\n"
	"	cmp 0x11080, %rcx\n" /* PROG_POLL_RESP */
	"	jne 8b\n"
	"	dec %r10\n"
	"	jnz 7b\n"
	"	int3\n"
	"	jmp 6b\n"
	"g_prog_poll_end:\n"
	"g_user_page:\n" /* LSTAR */
	"	int3\n"
	"	ud2\n" /* never reached: the monitor returns to rcx */
	/* RT_USER_SYSJMP: the stub returns by itself. CPL3 (PVM keeps the program's CS) cannot
	 * sysret, so it jumps; CPL0 (hardware KVM) sysrets to CPL3. r8 is the loop's to lose. */
	".org g_user_page + 0x10\n"
	"	mov %cs, %r8d\n"
	"	test $3, %r8b\n"
	"	jz 9f\n"
	"	jmp *%rcx\n"
	"9:	sysretq\n"
	"g_user_page_end:\n"
	".balign 16\n"
	"g_kern_page:\n"
	"kern_common:\n"	/* RT_KERN_COMMON */
	"	add $8, %rsp\n" /* the error code */
	"	iretq\n"
	".org g_kern_page + 0x40\n" /* RT_KERN_OUT_LOOP */
	"3:	out %al, $0x10\n"
	"	jmp 3b\n"
	/* RT_KERN_STUBS + vec * RT_STUB_SIZE: uniform frame (error code, rip, cs, rflags, rsp, ss) */
	".macro exc_stub vec, has_err\n"
	".org g_kern_page + 0x100 + \\vec * 16\n"
	".if \\has_err == 0\n"
	"	pushq $0\n"
	".endif\n"
	"	out %al, $(0x20 + \\vec)\n"
	"	jmp kern_common\n"
	".endm\n"
	"exc_stub 0,0; exc_stub 1,0; exc_stub 2,0; exc_stub 3,0; exc_stub 4,0; exc_stub 5,0\n"
	"exc_stub 6,0; exc_stub 7,0; exc_stub 8,1; exc_stub 9,0; exc_stub 10,1; exc_stub 11,1\n"
	"exc_stub 12,1; exc_stub 13,1; exc_stub 14,1; exc_stub 15,0; exc_stub 16,0; exc_stub 17,1\n"
	"exc_stub 18,0; exc_stub 19,0; exc_stub 20,0; exc_stub 21,1; exc_stub 22,0; exc_stub 23,0\n"
	"exc_stub 24,0; exc_stub 25,0; exc_stub 26,0; exc_stub 27,0; exc_stub 28,0; exc_stub 29,1\n"
	"exc_stub 30,1; exc_stub 31,0\n"
	".purgem exc_stub\n"
	"g_kern_page_end:\n"
	".popsection\n");

/* The frame the CPU and the stub leave on the IST stack. */
typedef struct frame {
	uint64_t error, rip, cs, rflags, rsp, ss;
} frame_t;

static const char *prog = "vmexit_floor";

enum variant { KM_PATH, INT3_CPL3, OUT_CPL0, SYSJMP, POLL, NVARIANTS };
static const char *names[NVARIANTS] = {"km_path", "int3_cpl3", "out_cpl0", "sysjmp", "poll"};

static uint64_t *table_at(bk_vm_t *v, uint64_t gpa)
{
	return (uint64_t *)(v->mem + gpa);
}

/* Maps one 4 KiB page in the PT at pt_gpa (covering the 2 MiB that contains gva). */
static void map_page(bk_vm_t *v, uint64_t pt_gpa, uint64_t gva, uint64_t gpa, uint64_t flags)
{
	table_at(v, pt_gpa)[(gva >> 12) & 511] = gpa | PTE_P | PTE_A | PTE_D | flags;
}

/* 64-bit interrupt gate to handler on IST1, callable from CPL dpl. */
static void set_gate(uint64_t *idt, int vec, uint64_t handler, int dpl)
{
	uint64_t type = 0x8e | ((uint64_t)dpl << 5);
	idt[vec * 2] = (handler & 0xffff) | ((uint64_t)SEL_KCODE << 16) | (1ULL << 32) | (type << 40) |
		       (((handler >> 16) & 0xffff) << 48);
	idt[vec * 2 + 1] = handler >> 32;
}

/* Page tables, runtime region, GDT, TSS, IDT, the program's code; memory slot 0. */
static void build_memory(bk_vm_t *v)
{
	v->mem = mmap(NULL, BK_MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		      -1, 0);
	if (v->mem == MAP_FAILED) {
		v->mem = NULL;
		bk_die(prog, "mmap guest memory");
	}
	const uint64_t table = PTE_P | PTE_RW | PTE_US | PTE_A; /* leaves decide user/supervisor */
	/* low: PML4[0] -> PDPT -> PD -> PT */
	table_at(v, 0x1000)[0] = 0x2000 | table;
	table_at(v, 0x2000)[0] = 0x3000 | table;
	table_at(v, 0x3000)[0] = 0x4000 | table;
	table_at(v, 0x1000)[(RT_GVA >> 39) & 511] = 0x5000 | table; /* runtime region */
	table_at(v, 0x5000)[(RT_GVA >> 30) & 511] = 0x6000 | table;
	table_at(v, 0x6000)[(RT_GVA >> 21) & 511] = 0x7000 | table;

	map_page(v, 0x4000, PROG_CODE, PROG_CODE, PTE_US);
	map_page(v, 0x4000, PROG_STACK, PROG_STACK, PTE_US | PTE_RW | PTE_NX);
	map_page(v, 0x7000, RT_GVA + RT_USER, RT_GPA + RT_USER, PTE_US); /* LSTAR: reachable at CPL3 */
	map_page(v, 0x7000, RT_GVA + RT_KERN, RT_GPA + RT_KERN, 0);
	map_page(v, 0x7000, RT_GVA + RT_IDT, RT_GPA + RT_IDT, PTE_NX);
	map_page(v, 0x7000, RT_GVA + RT_GDT, RT_GPA + RT_GDT, PTE_RW | PTE_NX);
	for (uint64_t off = RT_STACK; off < RT_STACK_TOP; off += 0x1000)
		map_page(v, 0x7000, RT_GVA + off, RT_GPA + off, PTE_RW | PTE_NX);

	memcpy(v->mem + PROG_CODE + PROG_OFF_SYSCALL, g_prog_syscall, (size_t)(g_prog_syscall_end - g_prog_syscall));
	memcpy(v->mem + PROG_CODE + PROG_OFF_INT3, g_prog_int3, (size_t)(g_prog_int3_end - g_prog_int3));
	memcpy(v->mem + PROG_CODE + PROG_OFF_SYSJMP, g_prog_sysjmp, (size_t)(g_prog_sysjmp_end - g_prog_sysjmp));
	memcpy(v->mem + PROG_CODE + PROG_OFF_POLL, g_prog_poll, (size_t)(g_prog_poll_end - g_prog_poll));
	memcpy(v->mem + RT_GPA + RT_USER, g_user_page, (size_t)(g_user_page_end - g_user_page));
	memcpy(v->mem + RT_GPA + RT_KERN, g_kern_page, (size_t)(g_kern_page_end - g_kern_page));

	uint64_t *idt = table_at(v, RT_GPA + RT_IDT);
	for (int vec = 0; vec < 32; vec++)
		set_gate(idt, vec, RT_GVA + RT_KERN + RT_KERN_STUBS + (uint64_t)vec * RT_STUB_SIZE,
			 vec == 3 || vec == 4 ? 3 : 0); /* int3 and into may be raised by the program */

	uint64_t *gdt = table_at(v, RT_GPA + RT_GDT), tss = RT_GVA + RT_TSS;
	gdt[SEL_KCODE / 8] = 0x00af9b000000ffffULL;   /* 64-bit code, DPL0 */
	gdt[SEL_KDATA / 8] = 0x00cf93000000ffffULL;   /* data, DPL0 */
	gdt[SEL_UCODE32 / 8] = 0x00cffb000000ffffULL; /* 32-bit code, DPL3 (STAR's layout needs it) */
	gdt[SEL_UDATA / 8] = 0x00cff3000000ffffULL;   /* data, DPL3 */
	gdt[SEL_UCODE / 8] = 0x00affb000000ffffULL;   /* 64-bit code, DPL3 */
	gdt[SEL_TSS / 8] = 0x67 | ((tss & 0xffffff) << 16) | (0x8bULL << 40) | (((tss >> 24) & 0xff) << 56);
	gdt[SEL_TSS / 8 + 1] = tss >> 32; /* 64-bit TSS, busy (TR is loaded with it) */

	uint8_t *t = v->mem + RT_GPA + RT_TSS;
	uint64_t stack = RT_GVA + RT_STACK_TOP;
	uint16_t iomap = 0x68;			/* no I/O bitmap: CPL3 gets no ports */
	memcpy(t + 0x04, &stack, sizeof stack); /* RSP0 */
	memcpy(t + 0x24, &stack, sizeof stack); /* IST1 */
	memcpy(t + 0x66, &iomap, sizeof iomap);

	struct kvm_userspace_memory_region r = {
	    .slot = 0, .guest_phys_addr = 0, .memory_size = BK_MEM_SIZE, .userspace_addr = (uint64_t)v->mem};
	if (ioctl(v->vm, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		bk_die(prog, "KVM_SET_USER_MEMORY_REGION");
}

/* CPUID and XCR0 as a monitor gives a program (KVM's supported set, all XSAVE features but AMX,
 * so the vCPU carries the same FPU state a real program's does), long mode with the GDT, IDT and
 * TSS above, the syscall MSRs (LSTAR = lstar), and the entry point at CPL3 (or at CPL0 for
 * out_cpl0). */
static void setup_vcpu(bk_vm_t *v, int cpl0, uint64_t rip, uint64_t lstar)
{
	static struct {
		struct kvm_cpuid2 c;
		struct kvm_cpuid_entry2 e[256];
	} cp;
	memset(&cp, 0, sizeof cp);
	cp.c.nent = 256;
	if (ioctl(v->kvm, KVM_GET_SUPPORTED_CPUID, &cp) < 0)
		bk_die(prog, "KVM_GET_SUPPORTED_CPUID");
	uint64_t xcr0 = 0x3; /* x87, SSE */
	for (uint32_t i = 0; i < cp.c.nent; i++) {
		struct kvm_cpuid_entry2 *e = &cp.c.entries[i];
		if (e->function == 0xd && e->index == 0) {
			/* every feature KVM offers but AMX (bits 17, 18), as km does */
			xcr0 = ((uint64_t)e->edx << 32 | e->eax) & ~((1ULL << 17) | (1ULL << 18));
			e->eax &= (uint32_t)xcr0;
			e->edx &= (uint32_t)(xcr0 >> 32);
		}
	}
	if (ioctl(v->vcpu, KVM_SET_CPUID2, &cp) < 0)
		bk_die(prog, "KVM_SET_CPUID2");

	struct kvm_sregs s;
	if (ioctl(v->vcpu, KVM_GET_SREGS, &s) < 0)
		bk_die(prog, "KVM_GET_SREGS");
	/* CR0: PG AM WP NE ET MP PE. CR4: PAE PGE OSFXSR OSXMMEXCPT OSXSAVE. EFER: NXE LMA LME SCE. */
	s.cr0 = 0x80050033;
	s.cr3 = 0x1000;
	s.cr4 = (1u << 5) | (1u << 7) | (1u << 9) | (1u << 10) | (1u << 18);
	s.efer = 0xd01;
	bk_seg(&s.cs, cpl0 ? SEL_KCODE : SEL_UCODE, 1);
	bk_seg(&s.ds, cpl0 ? SEL_KDATA : SEL_UDATA, 0);
	s.es = s.ss = s.fs = s.gs = s.ds;
	s.gdt.base = RT_GVA + RT_GDT;
	s.gdt.limit = GDT_ENTRIES * 8 - 1;
	s.idt.base = RT_GVA + RT_IDT;
	s.idt.limit = 32 * 16 - 1;
	memset(&s.tr, 0, sizeof s.tr);
	s.tr.selector = SEL_TSS;
	s.tr.base = RT_GVA + RT_TSS;
	s.tr.limit = 0x67;
	s.tr.type = 11; /* busy 64-bit TSS */
	s.tr.present = 1;
	if (ioctl(v->vcpu, KVM_SET_SREGS, &s) < 0)
		bk_die(prog, "KVM_SET_SREGS (long mode)");

	struct kvm_xcrs x;
	memset(&x, 0, sizeof x);
	x.nr_xcrs = 1;
	x.xcrs[0].value = xcr0;
	if (ioctl(v->vcpu, KVM_SET_XCRS, &x) < 0)
		bk_die(prog, "KVM_SET_XCRS");

	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e[4];
	} ms;
	memset(&ms, 0, sizeof ms);
	ms.h.nmsrs = 4;
	ms.e[0].index = 0xC0000082; /* LSTAR: on the user page */
	ms.e[0].data = lstar;
	ms.e[1].index = 0xC0000081; /* STAR: syscall CS 0x10 / SS 0x18; sysret base 0x20 (0x23/0x2b/0x33) */
	ms.e[1].data = ((uint64_t)(SEL_UCODE32 & ~3) << 48) | ((uint64_t)SEL_KCODE << 32);
	ms.e[2].index = 0xC0000084; /* SFMASK: keep rflags */
	ms.e[3].index = 0xC0000083; /* CSTAR */
	if (ioctl(v->vcpu, KVM_SET_MSRS, &ms) != 4)
		bk_die(prog, "KVM_SET_MSRS (syscall MSRs)");

	struct kvm_regs regs;
	memset(&regs, 0, sizeof regs);
	regs.rip = rip;
	regs.rsp = PROG_RSP;
	regs.rflags = cpl0 ? 0x2 : 0x202; /* a program runs with IF set */
	if (ioctl(v->vcpu, KVM_SET_REGS, &regs) < 0)
		bk_die(prog, "KVM_SET_REGS");
}

/* The frame on the IST stack that guest rsp points at, or NULL if rsp is not inside that stack. */
static frame_t *frame_at(bk_vm_t *v, uint64_t rsp)
{
	if (rsp < RT_GVA + RT_STACK || rsp > RT_GVA + RT_STACK_TOP - sizeof(frame_t))
		return NULL;
	return (frame_t *)(v->mem + RT_GPA + (rsp - RT_GVA));
}

static void unexpected_exit(bk_vm_t *v, enum variant var)
{
	struct kvm_run *run = v->run;
	struct kvm_regs r;
	int have = ioctl(v->vcpu, KVM_GET_REGS, &r) == 0;
	fprintf(stderr, "%s: %s: unexpected exit %u", prog, names[var], run->exit_reason);
	if (run->exit_reason == KVM_EXIT_IO) {
		fprintf(stderr, " (port %#x)", run->io.port);
		frame_t *f = have ? frame_at(v, r.rsp) : NULL;
		if (run->io.port >= PORT_EXC_BASE && run->io.port < PORT_EXC_BASE + 32 && f != NULL)
			fprintf(stderr, ": exception vector %d, error %#llx, at rip %#llx cs %#llx",
				run->io.port - PORT_EXC_BASE, (unsigned long long)f->error,
				(unsigned long long)f->rip, (unsigned long long)f->cs);
	}
	if (have)
		fprintf(stderr, "; vCPU rip %#llx rsp %#llx", (unsigned long long)r.rip,
			(unsigned long long)r.rsp);
	fprintf(stderr, "\n");
	exit(2);
}

/* km_path's monitor: one syscall, handled the way km returns from one, with nothing else done. */
static void syscall_exit(bk_vm_t *v)
{
	struct kvm_regs *r = &v->run->s.regs.regs;
	frame_t *f = frame_at(v, r->rsp);
	if (f == NULL || f->rip != RT_GVA + RT_USER + 1) /* #BP reports the rip after the int3 */
		unexpected_exit(v, KM_PATH);
	if (r->rax != 39) {
		fprintf(stderr, "%s: guest rax %llu, expected 39\n", prog, (unsigned long long)r->rax);
		exit(2);
	}
	r->rax = 1; /* the result */
	v->run->kvm_dirty_regs = KVM_SYNC_X86_REGS;
	f->rip = r->rcx; /* as sysret: back after the syscall, with the program's flags */
	f->rflags = (r->r11 & RFLAGS_USER_MASK) | 0x2 | RFLAGS_IF;
	f->cs = SEL_UCODE;
	f->ss = SEL_UDATA;
}

/* poll's host side: copies each new request word into the response word until told to stop. It
 * spins with pause and never sleeps, as a server that was just busy would. */
typedef struct poller {
	uint64_t *req, *resp;
	int stop; /* atomic */
} poller_t;

static void *poller_main(void *arg)
{
	poller_t *p = arg;
	uint64_t last = __atomic_load_n(p->resp, __ATOMIC_RELAXED);
	while (!__atomic_load_n(&p->stop, __ATOMIC_RELAXED)) {
		uint64_t r = __atomic_load_n(p->req, __ATOMIC_ACQUIRE);
		if (r != last) {
			last = r;
			__atomic_store_n(p->resp, r, __ATOMIC_RELEASE);
		} else {
			__builtin_ia32_pause();
		}
	}
	return NULL;
}

static uint64_t *guest_word(bk_vm_t *v, uint64_t gpa)
{
	return (uint64_t *)(v->mem + gpa);
}

/* Round trips per KVM_RUN for the in-VM variants: poll's are some 100 times cheaper than an exit,
 * so it makes 20 times as many per batch, keeping its one exit per batch under 1% of the figure. */
static int in_vm_count(enum variant var, int per_batch)
{
	return var == POLL ? per_batch * 20 : per_batch;
}

static void run_variant(enum variant var, int batches, int per_batch)
{
	bk_vm_t v;
	bk_init(&v);
	if (bk_open_kvm(&v) < 0)
		bk_die(prog, "open /dev/kvm");
	if (bk_create_vm(&v) < 0)
		bk_die(prog, "KVM_CREATE_VM");
	build_memory(&v);
	if (bk_create_vcpu(&v) < 0)
		bk_die(prog, "KVM_CREATE_VCPU");
	static const uint64_t entry[NVARIANTS] = {
	    [KM_PATH] = PROG_CODE + PROG_OFF_SYSCALL, [INT3_CPL3] = PROG_CODE + PROG_OFF_INT3,
	    [OUT_CPL0] = RT_GVA + RT_KERN + RT_KERN_OUT_LOOP, [SYSJMP] = PROG_CODE + PROG_OFF_SYSJMP,
	    [POLL] = PROG_CODE + PROG_OFF_POLL};
	uint64_t lstar = RT_GVA + RT_USER + (var == SYSJMP ? RT_USER_SYSJMP : 0);
	setup_vcpu(&v, var == OUT_CPL0, entry[var], lstar);

	int port = var == OUT_CPL0 ? PORT_CPL0_LOOP : PORT_EXC_BASE + 3;
	int sync = var == KM_PATH;
	int in_vm = var == SYSJMP || var == POLL; /* many round trips per KVM_RUN */
	struct kvm_run *run = v.run;
	run->kvm_valid_regs = sync ? KVM_SYNC_X86_REGS : 0;

	poller_t pl = {.req = guest_word(&v, PROG_POLL_REQ), .resp = guest_word(&v, PROG_POLL_RESP), .stop = 0};
	pthread_t pt;
	if (var == POLL) {
		int e = pthread_create(&pt, NULL, poller_main, &pl);
		if (e != 0) {
			errno = e;
			bk_die(prog, "pthread_create (poll's host thread)");
		}
	}

	double *per_trip = calloc((size_t)batches, sizeof *per_trip);
	if (!per_trip)
		bk_die(prog, "calloc");
	int warmup = per_batch < 2000 ? 2000 : per_batch;
	uint64_t trips = 0; /* poll: round trips the guest made, to check the host thread saw them all */
	for (int b = -1; b < batches; b++) {
		int n = b < 0 ? warmup : per_batch;
		int runs = n; /* KVM_RUNs in this batch */
		if (in_vm) {
			n = in_vm_count(var, n);
			runs = 1;
			*guest_word(&v, PROG_COUNT) = (uint64_t)n;
			trips += (uint64_t)n;
		}
		double t0 = bk_now_ns();
		for (int i = 0; i < runs; i++) {
			if (ioctl(v.vcpu, KVM_RUN, 0) < 0)
				bk_die(prog, "KVM_RUN");
			if (run->exit_reason != KVM_EXIT_IO || run->io.port != port)
				unexpected_exit(&v, var);
			if (sync)
				syscall_exit(&v);
		}
		double t1 = bk_now_ns();
		if (b >= 0)
			per_trip[b] = (t1 - t0) / n;
	}
	if (var == POLL) {
		__atomic_store_n(&pl.stop, 1, __ATOMIC_RELAXED);
		pthread_join(pt, NULL);
		if (*pl.resp != trips) {
			fprintf(stderr, "%s: poll: the host thread answered up to %llu, the guest made %llu round trips\n",
				prog, (unsigned long long)*pl.resp, (unsigned long long)trips);
			exit(2);
		}
	}
	bk_close(&v);

	double min = bk_quantile(per_trip, (size_t)batches, 0.0);
	double med = bk_quantile(per_trip, (size_t)batches, 0.5);
	double p90 = bk_quantile(per_trip, (size_t)batches, 0.9);
	printf("variant=%s %s=%ld median_ns=%.0f p90_ns=%.0f min_ns=%.0f\n", names[var], in_vm ? "round_trips" : "exits",
	       (long)batches * (in_vm ? in_vm_count(var, per_batch) : per_batch), med, p90, min);
	fflush(stdout);
	free(per_trip);
}

int main(int argc, char **argv)
{
	int batches = argc > 1 ? atoi(argv[1]) : 20;
	int per_batch = argc > 2 ? atoi(argv[2]) : 2000;
	int only = -1;
	for (int i = 0; argc > 3 && i < NVARIANTS; i++)
		if (strcmp(argv[3], names[i]) == 0)
			only = i;
	if (batches < 1 || per_batch < 1 || argc > 4 || (argc > 3 && only < 0)) {
		fprintf(stderr, "usage: %s [batches [per_batch [km_path|int3_cpl3|out_cpl0|sysjmp|poll]]]\n", prog);
		return 2;
	}
	for (int i = 0; i < NVARIANTS; i++)
		if (only < 0 || only == i)
			run_variant((enum variant)i, batches, per_batch);
	return 0;
}
