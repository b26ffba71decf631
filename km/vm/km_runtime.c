/* Loads km's runtime region into the guest: see km_runtime.h. */
#include "km_runtime.h"

#include <string.h>
#include <sys/mman.h>

extern const uint8_t km_runtime_start[], km_runtime_end[];

/* 64-bit interrupt gate on IST1; dpl 3 lets the program raise it itself (int3, into). */
static void set_gate(uint64_t *idt, int vec, uint64_t handler, int dpl)
{
	uint64_t type = 0x8e | ((uint64_t)dpl << 5);
	idt[vec * 2] = (handler & 0xffff) | ((uint64_t)KM_SEL_KCODE << 16) | (1ull << 32) /* IST1 */ |
		       (type << 40) | (((handler >> 16) & 0xffff) << 48);
	idt[vec * 2 + 1] = handler >> 32;
}

int km_runtime_load(km_mm_t *mm, km_err_t **err)
{
	size_t code_len = (size_t)(km_runtime_end - km_runtime_start);
	if (code_len != KM_RT_CODE_SIZE)
		return km_err_set(err, 0, "internal: runtime code is %zu bytes, expected %d", code_len,
				  KM_RT_CODE_SIZE);
	uint8_t *rt = km_gpa_to_hva(mm, KM_RT_GPA);
	memcpy(rt + KM_RT_USER_OFF, km_runtime_start, code_len);
	uint64_t *idt = (uint64_t *)(rt + KM_RT_IDT_OFF);
	for (int vec = 0; vec < 32; vec++)
		set_gate(idt, vec, km_rt_gva(KM_RT_USER_OFF + KM_RT_EXC_STUBS + vec * KM_RT_EXC_STUB_SIZE),
			 vec == 3 || vec == 4 ? 3 : 0);

	/* The syscall entry must be reachable at CPL3 (PVM runs it there); everything else is kernel
	 * only, so the program can neither read nor change its IDT, GDT or exception stacks. */
	int rc = km_pt_map(&mm->pt, km_rt_gva(KM_RT_USER_OFF), KM_RT_GPA + KM_RT_USER_OFF, KM_PAGE_SIZE,
			   PROT_READ | PROT_EXEC);
	if (rc == 0)
		rc = km_pt_map(&mm->pt, km_rt_gva(KM_RT_KERN_OFF), KM_RT_GPA + KM_RT_KERN_OFF, KM_PAGE_SIZE,
			       PROT_READ | PROT_EXEC | KM_PROT_KERNEL);
	if (rc == 0)
		rc = km_pt_map(&mm->pt, km_rt_gva(KM_RT_IDT_OFF), KM_RT_GPA + KM_RT_IDT_OFF, KM_PAGE_SIZE,
			       PROT_READ | KM_PROT_KERNEL);
	if (rc == 0)
		rc = km_pt_map(&mm->pt, km_rt_gva(KM_RT_VCPU_OFF), KM_RT_GPA + KM_RT_VCPU_OFF,
			       (uint64_t)KM_MAX_VCPUS * KM_RT_VCPU_SIZE, PROT_READ | PROT_WRITE | KM_PROT_KERNEL);
	/* The poll stubs and slots (km_syscall_poll.h): the program reaches them at CPL3 on PVM.
	 * Every vCPU's slot is writable by every thread of the program: km trusts none of it. */
	if (rc == 0)
		rc = km_pt_map(&mm->pt, km_rt_gva(KM_RT_POLL_STUB_OFF), KM_RT_GPA + KM_RT_POLL_STUB_OFF,
			       (uint64_t)KM_MAX_VCPUS * KM_RT_POLL_STRIDE, PROT_READ | PROT_EXEC);
	if (rc == 0)
		rc = km_pt_map(&mm->pt, km_rt_gva(KM_RT_POLL_SLOT_OFF), KM_RT_GPA + KM_RT_POLL_SLOT_OFF,
			       (uint64_t)KM_MAX_VCPUS * KM_RT_POLL_STRIDE, PROT_READ | PROT_WRITE);
	if (rc < 0)
		return km_err_set(err, -rc, "mapping km's runtime into the guest");
	return 0;
}

void km_runtime_vcpu_init(km_mm_t *mm, int id)
{
	uint8_t *area = km_gpa_to_hva(mm, KM_RT_GPA + KM_RT_VCPU_OFF + (uint64_t)id * KM_RT_VCPU_SIZE);
	uint64_t *gdt = (uint64_t *)(area + KM_RT_VCPU_GDT);
	uint64_t tss = km_rt_vcpu_gva(id, KM_RT_VCPU_TSS), tss_limit = 0x67;
	memset(gdt, 0, KM_GDT_ENTRIES * 8);
	gdt[KM_SEL_KCODE / 8] = 0x00af9b000000ffffull;   /* 64-bit code, DPL0 */
	gdt[KM_SEL_KDATA / 8] = 0x00cf93000000ffffull;   /* data, DPL0 */
	gdt[KM_SEL_UCODE32 / 8] = 0x00cffb000000ffffull; /* 32-bit code, DPL3 (STAR needs it) */
	gdt[KM_SEL_UDATA / 8] = 0x00cff3000000ffffull;   /* data, DPL3 */
	gdt[KM_SEL_UCODE / 8] = 0x00affb000000ffffull;   /* 64-bit code, DPL3 */
	gdt[KM_SEL_TSS / 8] = tss_limit | ((tss & 0xffffff) << 16) | (0x89ull << 40) | (((tss >> 24) & 0xff) << 56);
	gdt[KM_SEL_TSS / 8 + 1] = tss >> 32;

	uint8_t *t = area + KM_RT_VCPU_TSS;
	memset(t, 0, 0x68);
	uint64_t stack = km_rt_vcpu_gva(id, KM_RT_VCPU_STACK_TOP);
	memcpy(t + 0x04, &stack, sizeof(stack)); /* RSP0 */
	memcpy(t + 0x24, &stack, sizeof(stack)); /* IST1 */
	uint16_t iomap = 0x68;                   /* no I/O bitmap: the program gets no ports */
	memcpy(t + 0x66, &iomap, sizeof(iomap));
}

void km_runtime_poll_init(km_mm_t *mm, int id)
{
	uint8_t *rt = km_gpa_to_hva(mm, KM_RT_GPA);
	memcpy(km_runtime_poll_stub(mm, id), rt + KM_RT_USER_OFF + KM_RT_POLL_TEMPLATE, KM_RT_POLL_STUB_SIZE);
	uint8_t *slot = km_runtime_poll_slot(mm, id);
	memset(slot, 0, KM_RT_POLL_STRIDE);
	__atomic_store_n((uint32_t *)(slot + KM_SLOT_STATE), KM_POLL_ASLEEP, __ATOMIC_RELEASE);
}

void *km_runtime_poll_stub(km_mm_t *mm, int id)
{
	return km_gpa_to_hva(mm, KM_RT_GPA + KM_RT_POLL_STUB_OFF + (uint64_t)id * KM_RT_POLL_STRIDE);
}

void *km_runtime_poll_slot(km_mm_t *mm, int id)
{
	return km_gpa_to_hva(mm, KM_RT_GPA + KM_RT_POLL_SLOT_OFF + (uint64_t)id * KM_RT_POLL_STRIDE);
}

bool km_rt_in_poll_stub(uint64_t rip)
{
	uint64_t base = km_rt_gva(KM_RT_POLL_STUB_OFF);
	return rip >= base && rip - base < (uint64_t)KM_MAX_VCPUS * KM_RT_POLL_STRIDE;
}

bool km_rt_is_poll_int3(uint64_t rip)
{
	if (!km_rt_in_poll_stub(rip))
		return false;
	uint64_t off = (rip - km_rt_gva(KM_RT_POLL_STUB_OFF)) % KM_RT_POLL_STRIDE;
	return off == KM_POLL_INT3_NEW + 1 || off == KM_POLL_INT3_TAKEN + 1;
}

void *km_rt_host(km_mm_t *mm, uint64_t gva, uint64_t len)
{
	if (gva < KM_RT_GVA || gva - KM_RT_GVA > KM_RT_SIZE || len > KM_RT_SIZE - (gva - KM_RT_GVA))
		return NULL;
	return km_gpa_to_hva(mm, KM_RT_GPA + (gva - KM_RT_GVA));
}
