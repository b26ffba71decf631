/*
 * touch_floor: the cheapest first touch of fresh guest memory this machine's KVM allows, measured
 * without km. Each run builds a new VM (bench_kvm.h's open/VM/vCPU helpers) with a CPL3 guest that
 * stores one byte into each 4 KiB page of MIB MiB of fresh memory, once, then stores to an address
 * with no memory slot behind it (KVM_EXIT_MMIO: the end mark, no IDT needed). Only KVM_RUN from
 * the first store to that exit is timed. Variants:
 *
 *   huge_thp     2 MiB guest pages over host memory advised MADV_HUGEPAGE (THP): what km asks for
 *   small_thp    4 KiB guest pages over THP host memory
 *   huge_nothp   2 MiB guest pages over host memory advised MADV_NOHUGEPAGE
 *   small_nothp  4 KiB guest pages, no THP
 *   huge_popul   2 MiB guest pages over THP host memory populated ahead (MADV_POPULATE_WRITE,
 *                timed too): what remains when the host's own faults are taken out of the guest's way
 *   native       the same stores in this process (mmap, no THP advice), for the ratio
 *   native_thp   the same, natively, over memory advised MADV_HUGEPAGE
 *
 * Each variant prints: variant=<name> mib=<MIB> median_ns=<..> min_ns=<..> per_page_ns=<median/pages>
 * It also prints once: pre_fault=<what KVM_PRE_FAULT_MEMORY did on this host: ok, or its errno's
 * name (EOPNOTSUPP on PVM: it needs TDP, and KVM_CAP_PRE_FAULT_MEMORY is 0)>.
 * Usage: touch_floor [MIB [runs [variant]]] (default 1024 MiB, 3 runs, every variant).
 *
 * Guest-physical layout: slot 0 (8 MiB at 0): 0x1000 PML4, 0x2000 PDPT, 0x3000 PD of gva 0..1 GiB,
 * 0x4000 PD of gva 1..2 GiB, 0x5000 PT of gva 0..2 MiB, 0x10000 the code, 0x100000.. the 4 KiB
 * page tables of the data. Slot 1: the data, at gpa = gva = 1 GiB. The end mark: gva 0x20000 ->
 * gpa 0xf0000000, no slot.
 */
#include "bench_kvm.h"

#define SLOT0_SIZE (8ull << 20)
#define DATA_BASE (1ull << 30)
#define CODE_GPA 0x10000ull
#define MARK_GVA 0x20000ull
#define MARK_GPA 0xf0000000ull
#define PT_BASE 0x100000ull
#define HUGE (2ull << 20)

#define PTE_P (1ull << 0)
#define PTE_RW (1ull << 1)
#define PTE_US (1ull << 2)
#define PTE_A (1ull << 5)
#define PTE_D (1ull << 6)
#define PTE_PS (1ull << 7)
#define TABLE (PTE_P | PTE_RW | PTE_US | PTE_A)
#define LEAF (PTE_P | PTE_RW | PTE_US | PTE_A | PTE_D)

#ifndef KVM_PRE_FAULT_MEMORY
#define KVM_PRE_FAULT_MEMORY _IOWR(KVMIO, 0xd5, struct kvm_pre_fault_memory)
struct kvm_pre_fault_memory {
	__u64 gpa;
	__u64 size;
	__u64 flags;
	__u64 padding[5];
};
#endif

static const char *prog = "touch_floor";

/* rdi = first byte, rsi = end; one store per 4 KiB page, then the end mark. */
extern const uint8_t g_touch[], g_touch_end[];
__asm__(".pushsection .rodata\n"
	"g_touch:\n"
	"1:	movb $1, (%rdi)\n"
	"	add $4096, %rdi\n"
	"	cmp %rsi, %rdi\n"
	"	jb 1b\n"
	"	movb $1, 0x20000\n" /* MARK_GVA */
	"	jmp .\n"
	"g_touch_end:\n"
	".popsection\n");

enum variant { HUGE_THP, SMALL_THP, HUGE_NOTHP, SMALL_NOTHP, HUGE_POPUL, NATIVE, NATIVE_THP, NVARIANTS };
static const char *names[NVARIANTS] = {"huge_thp",   "small_thp", "huge_nothp", "small_nothp",
				       "huge_popul", "native",    "native_thp"};

static uint64_t *tab(uint8_t *mem, uint64_t gpa)
{
	return (uint64_t *)(mem + gpa);
}

/* 2 MiB-aligned host memory (so that a guest 2 MiB page can sit on one host huge page). */
static uint8_t *aligned_anon(size_t len, int advice)
{
	uint8_t *p = mmap(NULL, len + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			  -1, 0);
	if (p == MAP_FAILED)
		bk_die(prog, "mmap");
	uint8_t *a = (uint8_t *)(((uintptr_t)p + HUGE - 1) & ~(HUGE - 1));
	if (a > p)
		munmap(p, (size_t)(a - p));
	munmap(a + len, (size_t)(p + HUGE - a));
	if (advice >= 0)
		(void)madvise(a, len, advice);
	return a;
}

static void set_slot(bk_vm_t *v, int slot, uint64_t gpa, uint64_t size, void *host)
{
	struct kvm_userspace_memory_region r = {
	    .slot = (uint32_t)slot, .guest_phys_addr = gpa, .memory_size = size, .userspace_addr = (uint64_t)host};
	if (ioctl(v->vm, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		bk_die(prog, "KVM_SET_USER_MEMORY_REGION");
}

static void build_tables(uint8_t *mem, uint64_t len, int huge)
{
	*tab(mem, 0x1000) = 0x2000 | TABLE;
	tab(mem, 0x2000)[0] = 0x3000 | TABLE;
	tab(mem, 0x2000)[1] = 0x4000 | TABLE;
	tab(mem, 0x3000)[0] = 0x5000 | TABLE;
	tab(mem, 0x5000)[CODE_GPA >> 12] = CODE_GPA | (LEAF & ~PTE_RW);
	tab(mem, 0x5000)[MARK_GVA >> 12] = MARK_GPA | LEAF;
	for (uint64_t i = 0; i < len / HUGE; i++) {
		if (huge) {
			tab(mem, 0x4000)[i] = (DATA_BASE + i * HUGE) | LEAF | PTE_PS;
			continue;
		}
		uint64_t pt = PT_BASE + i * 0x1000;
		tab(mem, 0x4000)[i] = pt | TABLE;
		for (uint64_t j = 0; j < 512; j++)
			tab(mem, pt)[j] = (DATA_BASE + i * HUGE + j * 0x1000) | LEAF;
	}
	memcpy(mem + CODE_GPA, g_touch, (size_t)(g_touch_end - g_touch));
}

/* Long mode at CPL3 (CS 0x33, SS 0x2b) straight from KVM_SET_SREGS; no GDT or IDT is consulted
 * unless something faults, and then the run ends with an unexpected exit. */
static void setup_cpl3(bk_vm_t *v, uint64_t len)
{
	if (bk_set_cpuid(v) < 0)
		bk_die(prog, "CPUID");
	struct kvm_sregs s;
	if (ioctl(v->vcpu, KVM_GET_SREGS, &s) < 0)
		bk_die(prog, "KVM_GET_SREGS");
	s.cr0 = 0x80050033;
	s.cr3 = 0x1000;
	s.cr4 = (1u << 5) | (1u << 9) | (1u << 10);
	s.efer = 0xd01;
	bk_seg(&s.cs, 0x33, 1);
	bk_seg(&s.ds, 0x2b, 0);
	s.es = s.ss = s.fs = s.gs = s.ds;
	if (ioctl(v->vcpu, KVM_SET_SREGS, &s) < 0)
		bk_die(prog, "KVM_SET_SREGS");
	struct kvm_regs r;
	memset(&r, 0, sizeof r);
	r.rip = CODE_GPA;
	r.rsp = 0x8000;
	r.rflags = 0x2;
	r.rdi = DATA_BASE;
	r.rsi = DATA_BASE + len;
	if (ioctl(v->vcpu, KVM_SET_REGS, &r) < 0)
		bk_die(prog, "KVM_SET_REGS");
}

/* What KVM_PRE_FAULT_MEMORY does here, asked once on a fresh VM: "ok", or the errno's name. */
static const char *pre_fault_result(void)
{
	bk_vm_t v;
	bk_init(&v);
	if (bk_open_kvm(&v) < 0 || bk_create_vm(&v) < 0)
		bk_die(prog, "KVM_CREATE_VM");
	uint8_t *mem = aligned_anon(SLOT0_SIZE, MADV_HUGEPAGE);
	set_slot(&v, 0, 0, SLOT0_SIZE, mem);
	if (bk_create_vcpu(&v) < 0)
		bk_die(prog, "KVM_CREATE_VCPU");
	static char buf[64];
	int cap = ioctl(v.vm, KVM_CHECK_EXTENSION, 236 /* KVM_CAP_PRE_FAULT_MEMORY */);
	struct kvm_pre_fault_memory pf = {.gpa = 0, .size = HUGE};
	int rc = ioctl(v.vcpu, KVM_PRE_FAULT_MEMORY, &pf);
	snprintf(buf, sizeof buf, "%s", rc < 0 ? strerrorname_np(errno) : "ok");
	if (cap <= 0 && rc == 0)
		snprintf(buf, sizeof buf, "ok-nocap");
	munmap(mem, SLOT0_SIZE);
	bk_close(&v);
	return buf;
}

static double native_once(uint64_t len, int thp)
{
	volatile uint8_t *p = aligned_anon(len, thp ? MADV_HUGEPAGE : -1);
	double t0 = bk_now_ns();
	for (uint64_t off = 0; off < len; off += 4096)
		p[off] = 1;
	double t = bk_now_ns() - t0;
	munmap((void *)p, len);
	return t;
}

static double vm_once(enum variant var, uint64_t len)
{
	if (var == NATIVE || var == NATIVE_THP)
		return native_once(len, var == NATIVE_THP);
	int huge = var == HUGE_THP || var == HUGE_NOTHP || var == HUGE_POPUL;
	int thp = var != HUGE_NOTHP && var != SMALL_NOTHP;
	bk_vm_t v;
	bk_init(&v);
	if (bk_open_kvm(&v) < 0 || bk_create_vm(&v) < 0)
		bk_die(prog, "KVM_CREATE_VM");
	uint8_t *low = aligned_anon(SLOT0_SIZE, MADV_NOHUGEPAGE);
	uint8_t *data = aligned_anon(len, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	build_tables(low, len, huge);
	set_slot(&v, 0, 0, SLOT0_SIZE, low);
	set_slot(&v, 1, DATA_BASE, len, data);
	if (bk_create_vcpu(&v) < 0)
		bk_die(prog, "KVM_CREATE_VCPU");
	setup_cpl3(&v, len);
	double t0 = bk_now_ns();
	if (var == HUGE_POPUL && madvise(data, len, 23 /* MADV_POPULATE_WRITE */) < 0)
		bk_die(prog, "MADV_POPULATE_WRITE");
	int rc = ioctl(v.vcpu, KVM_RUN, 0);
	double t = bk_now_ns() - t0;
	if (rc < 0)
		bk_die(prog, "KVM_RUN");
	if (v.run->exit_reason != KVM_EXIT_MMIO || v.run->mmio.phys_addr != MARK_GPA) {
		struct kvm_regs r;
		ioctl(v.vcpu, KVM_GET_REGS, &r);
		fprintf(stderr, "%s: %s: unexpected exit %u at rip %#llx rdi %#llx\n", prog, names[var],
			v.run->exit_reason, (unsigned long long)r.rip, (unsigned long long)r.rdi);
		exit(2);
	}
	bk_close(&v);
	munmap(low, SLOT0_SIZE);
	munmap(data, len);
	return t;
}

int main(int argc, char **argv)
{
	long mib = argc > 1 ? atol(argv[1]) : 1024;
	int runs = argc > 2 ? atoi(argv[2]) : 3;
	int only = -1;
	for (int i = 0; argc > 3 && i < NVARIANTS; i++)
		if (strcmp(argv[3], names[i]) == 0)
			only = i;
	if (mib < 2 || mib > 1024 || mib % 2 || runs < 1 || argc > 4 || (argc > 3 && only < 0)) {
		fprintf(stderr, "usage: %s [MIB (even, 2..1024) [runs [variant]]]\n", prog);
		return 2;
	}
	printf("pre_fault=%s\n", pre_fault_result());
	uint64_t len = (uint64_t)mib << 20;
	double *t = calloc((size_t)runs, sizeof *t);
	for (int i = 0; i < NVARIANTS; i++) {
		if (only >= 0 && only != i)
			continue;
		for (int r = 0; r < runs; r++)
			t[r] = vm_once((enum variant)i, len);
		double min = bk_quantile(t, (size_t)runs, 0.0), med = bk_quantile(t, (size_t)runs, 0.5);
		printf("variant=%s mib=%ld median_ns=%.0f min_ns=%.0f per_page_ns=%.0f\n", names[i], mib, med, min,
		       med / (double)(len / 4096));
		fflush(stdout);
	}
	free(t);
	return 0;
}
