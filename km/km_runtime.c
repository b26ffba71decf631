/* Loads km's runtime region into the guest: see km_runtime.h. */
#include "km_runtime.h"

#include <string.h>
#include <sys/mman.h>

extern const uint8_t km_runtime_start[], km_runtime_end[];

/* 64-bit interrupt gate: present, DPL0, type 0xE, IST1. */
static void set_gate(uint64_t *idt, int vec, uint64_t handler)
{
	idt[vec * 2] = (handler & 0xffff) | ((uint64_t)KM_SEL_CODE << 16) | (1ull << 32) /* IST1 */ |
		       (0x8eull << 40) | (((handler >> 16) & 0xffff) << 48);
	idt[vec * 2 + 1] = handler >> 32;
}

int km_runtime_load(km_mm_t *mm, km_err_t **err)
{
	size_t code_len = (size_t)(km_runtime_end - km_runtime_start);
	if (code_len > KM_RT_CODE_SIZE)
		return km_err_set(err, 0, "internal: runtime code is %zu bytes, more than its %d-byte slot",
				  code_len, KM_RT_CODE_SIZE);
	uint8_t *rt = km_gpa_to_hva(mm, KM_RT_GPA);
	memcpy(rt + KM_RT_CODE_OFF, km_runtime_start, code_len);
	uint64_t *idt = (uint64_t *)(rt + KM_RT_IDT_OFF);
	for (int vec = 0; vec < 32; vec++)
		set_gate(idt, vec, km_rt_gva(KM_RT_CODE_OFF + KM_RT_EXC_STUBS + vec * KM_RT_EXC_STUB_SIZE));

	/* The guest runs at CPL0 and could rewrite all of this anyway; read-only still catches a
	 * stray program write as a clean fault instead of a silent runtime corruption. */
	int rc = km_pt_map(&mm->pt, KM_RT_GVA, KM_RT_GPA, KM_RT_CODE_OFF + KM_RT_CODE_SIZE, PROT_READ | PROT_EXEC);
	if (rc == 0)
		rc = km_pt_map(&mm->pt, km_rt_gva(KM_RT_VCPU_OFF), KM_RT_GPA + KM_RT_VCPU_OFF,
			       (uint64_t)KM_MAX_VCPUS * KM_RT_VCPU_SIZE, PROT_READ | PROT_WRITE);
	if (rc < 0)
		return km_err_set(err, -rc, "mapping km's runtime into the guest");
	return 0;
}

void km_runtime_vcpu_init(km_mm_t *mm, int id)
{
	uint8_t *area = km_gpa_to_hva(mm, KM_RT_GPA + KM_RT_VCPU_OFF + (uint64_t)id * KM_RT_VCPU_SIZE);
	uint64_t *gdt = (uint64_t *)(area + KM_RT_VCPU_GDT);
	uint64_t tss = km_rt_vcpu_gva(id, KM_RT_VCPU_TSS), tss_limit = 0x67;
	gdt[0] = 0;
	gdt[KM_SEL_CODE / 8] = 0x00af9b000000ffffull; /* 64-bit code, DPL0 */
	gdt[KM_SEL_DATA / 8] = 0x00cf93000000ffffull; /* data, DPL0 */
	gdt[KM_SEL_TSS / 8] = tss_limit | ((tss & 0xffffff) << 16) | (0x89ull << 40) | (((tss >> 24) & 0xff) << 56);
	gdt[KM_SEL_TSS / 8 + 1] = tss >> 32;

	uint8_t *t = area + KM_RT_VCPU_TSS;
	memset(t, 0, 0x68);
	uint64_t ist1 = km_rt_vcpu_gva(id, KM_RT_VCPU_STACK_TOP);
	memcpy(t + 0x24, &ist1, sizeof(ist1)); /* IST1 */
	uint16_t iomap = 0x68;                 /* no I/O bitmap */
	memcpy(t + 0x66, &iomap, sizeof(iomap));
}

void *km_rt_host(km_mm_t *mm, uint64_t gva, uint64_t len)
{
	if (gva < KM_RT_GVA || gva - KM_RT_GVA > KM_RT_SIZE || len > KM_RT_SIZE - (gva - KM_RT_GVA))
		return NULL;
	return km_gpa_to_hva(mm, KM_RT_GPA + (gva - KM_RT_GVA));
}
