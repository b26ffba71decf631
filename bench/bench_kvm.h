/*
 * Minimal KVM VM for the floor benchmarks (vmexit_floor.c, vmcreate_floor.c): no km code, only the
 * steps km's own start-up has to do, each a separate function so vmcreate_floor can time them.
 *
 * vmexit_floor.c uses only the generic helpers (open, VM, vCPU, close, timing) and builds its own
 * CPL3 guest state in km's shape; the layout below is the CPL0 one vmcreate_floor.c uses.
 *
 * Guest layout (guest-physical == guest-virtual in the lower half; the same physical pages are also
 * mapped at BK_HIGH_GVA in the upper half, where km kept its syscall entry when it ran programs at CPL0):
 *   0x1000 PML4   0x2000 PDPT   0x3000 PD (one 2 MiB page covering guest-physical 0..2 MiB)
 *   0x4000 GDT    0x8000 top of a stack (never used by the floor guests)
 *   0x10000 guest code (the loop)   0x11000 syscall entry (LSTAR) stub
 */
#ifndef BENCH_KVM_H
#define BENCH_KVM_H

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define BK_MEM_SIZE (2u << 20)
#define BK_PML4 0x1000
#define BK_PDPT 0x2000
#define BK_PD 0x3000
#define BK_GDT 0x4000
#define BK_STACK_TOP 0x8000
#define BK_CODE 0x10000
#define BK_LSTAR_OFF 0x11000
#define BK_HIGH_GVA 0xffff800000000000ULL
#define BK_PORT 0x10 /* the port km's syscall stub writes to */

typedef struct bk_vm {
	int kvm, vm, vcpu;
	uint8_t *mem;
	struct kvm_run *run;
	size_t run_size;
} bk_vm_t;

static inline double bk_now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static inline void bk_die(const char *prog, const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(errno));
	if (errno == EACCES || errno == ENOENT)
		fprintf(stderr, "%s: /dev/kvm must exist and be readable and writable by this user\n", prog);
	exit(2);
}

static inline void bk_init(bk_vm_t *v)
{
	memset(v, 0, sizeof *v);
	v->kvm = v->vm = v->vcpu = -1;
}

static inline int bk_open_kvm(bk_vm_t *v)
{
	v->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (v->kvm < 0)
		return -1;
	if (ioctl(v->kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		errno = ENOTSUP;
		return -1;
	}
	return 0;
}

static inline int bk_create_vm(bk_vm_t *v)
{
	v->vm = ioctl(v->kvm, KVM_CREATE_VM, 0);
	return v->vm < 0 ? -1 : 0;
}

/* Allocates guest memory, writes page tables and a GDT into it, registers it as memory slot 0. */
static inline int bk_add_memory(bk_vm_t *v)
{
	v->mem = mmap(NULL, BK_MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
		      0);
	if (v->mem == MAP_FAILED) {
		v->mem = NULL;
		return -1;
	}
	uint64_t *pml4 = (uint64_t *)(v->mem + BK_PML4), *pdpt = (uint64_t *)(v->mem + BK_PDPT);
	uint64_t *pd = (uint64_t *)(v->mem + BK_PD), *gdt = (uint64_t *)(v->mem + BK_GDT);
	pml4[0] = BK_PDPT | 3;   /* present, writable */
	pml4[256] = BK_PDPT | 3; /* BK_HIGH_GVA: same physical pages */
	pdpt[0] = BK_PD | 3;
	pd[0] = 0x0 | 0x83; /* 2 MiB page at guest-physical 0 */
	gdt[1] = 0x00af9b000000ffffULL; /* 0x08: 64-bit code, DPL0 */
	gdt[2] = 0x00cf93000000ffffULL; /* 0x10: data, DPL0 */
	struct kvm_userspace_memory_region r = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = BK_MEM_SIZE, .userspace_addr = (uint64_t)v->mem};
	return ioctl(v->vm, KVM_SET_USER_MEMORY_REGION, &r);
}

static inline int bk_create_vcpu(bk_vm_t *v)
{
	v->vcpu = ioctl(v->vm, KVM_CREATE_VCPU, 0);
	if (v->vcpu < 0)
		return -1;
	int sz = ioctl(v->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz <= 0)
		return -1;
	v->run_size = (size_t)sz;
	v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->vcpu, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		return -1;
	}
	return 0;
}

/* A flat 64-bit code or data segment; its privilege is the selector's RPL. */
static inline void bk_seg(struct kvm_segment *s, uint16_t sel, int code)
{
	memset(s, 0, sizeof *s);
	s->selector = sel;
	s->dpl = sel & 3;
	s->limit = 0xffffffff;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	if (code) {
		s->type = 11; /* execute/read, accessed */
		s->l = 1;
	} else {
		s->type = 3; /* read/write, accessed */
		s->db = 1;
	}
}

/* Gives the vCPU KVM's supported CPUID set, as km gives its vCPUs. Returns 0 or -1. */
static inline int bk_set_cpuid(bk_vm_t *v)
{
	static struct {
		struct kvm_cpuid2 c;
		struct kvm_cpuid_entry2 e[256];
	} cp;
	memset(&cp, 0, sizeof cp);
	cp.c.nent = 256;
	if (ioctl(v->kvm, KVM_GET_SUPPORTED_CPUID, &cp) < 0 || ioctl(v->vcpu, KVM_SET_CPUID2, &cp) < 0)
		return -1;
	return 0;
}

/* CPUID (bk_set_cpuid), 64-bit long mode set directly with KVM_SET_SREGS, syscall MSRs (LSTAR at
 * the upper-half alias of the stub, as km does), entry rip. */
static inline int bk_setup_vcpu(bk_vm_t *v, uint64_t rip)
{
	if (bk_set_cpuid(v) < 0)
		return -1;

	struct kvm_sregs s;
	if (ioctl(v->vcpu, KVM_GET_SREGS, &s) < 0)
		return -1;
	s.cr3 = BK_PML4;
	s.cr4 = (1u << 5) | (1u << 9) | (1u << 10); /* PAE, OSFXSR, OSXMMEXCPT */
	s.cr0 = 0x80050033;                         /* PG, AM, WP, NE, ET, MP, PE */
	s.efer = 0xd01;                             /* NXE, LMA, LME, SCE */
	bk_seg(&s.cs, 0x08, 1);
	bk_seg(&s.ds, 0x10, 0);
	s.es = s.fs = s.gs = s.ss = s.ds;
	s.gdt.base = BK_GDT;
	s.gdt.limit = 3 * 8 - 1;
	if (ioctl(v->vcpu, KVM_SET_SREGS, &s) < 0)
		return -1;

	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e[3];
	} ms;
	memset(&ms, 0, sizeof ms);
	ms.h.nmsrs = 3;
	ms.e[0].index = 0xC0000082; /* LSTAR */
	ms.e[0].data = BK_HIGH_GVA + BK_LSTAR_OFF;
	ms.e[1].index = 0xC0000081; /* STAR: syscall CS 0x08 / SS 0x10 */
	ms.e[1].data = (0x10ULL << 48) | (0x08ULL << 32);
	ms.e[2].index = 0xC0000084; /* SFMASK: keep rflags (IF is clear anyway) */
	ms.e[2].data = 0;
	if (ioctl(v->vcpu, KVM_SET_MSRS, &ms) != 3)
		return -1;

	struct kvm_regs regs;
	memset(&regs, 0, sizeof regs);
	regs.rip = rip;
	regs.rsp = BK_STACK_TOP;
	regs.rflags = 2;
	return ioctl(v->vcpu, KVM_SET_REGS, &regs);
}

static inline void bk_close(bk_vm_t *v)
{
	if (v->run)
		munmap(v->run, v->run_size);
	if (v->vcpu >= 0)
		close(v->vcpu);
	if (v->vm >= 0)
		close(v->vm);
	if (v->mem)
		munmap(v->mem, BK_MEM_SIZE);
	if (v->kvm >= 0)
		close(v->kvm);
	bk_init(v);
}

static int bk_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Sorts xs and returns the value at quantile q (nearest rank: q=0.5 median, q=0.9 p90). */
static inline double bk_quantile(double *xs, size_t n, double q)
{
	qsort(xs, n, sizeof *xs, bk_cmp_double);
	size_t i = (size_t)(q * (double)n + 0.999999);
	if (i < 1)
		i = 1;
	if (i > n)
		i = n;
	return xs[i - 1];
}

#endif
