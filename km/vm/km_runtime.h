/*
 * km's runtime region inside the guest (layout in runtime/km_runtime_layout.h): the IDT, the stub
 * code, and each vCPU's GDT, TSS and IST stack. Built fresh by every km, for new guests and for
 * restored snapshots alike.
 */
#ifndef KM_RUNTIME_H
#define KM_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>

#include "km_error.h"
#include "km_mm.h"
#include "km_runtime_layout.h"

/* Copies the stub code in, fills the IDT and maps the region at KM_RT_GVA. */
int km_runtime_load(km_mm_t *mm, km_err_t **err);

/* Fills vCPU `id`'s GDT and TSS (its IST stack pointer included). */
void km_runtime_vcpu_init(km_mm_t *mm, int id);

/* Gives vCPU `id` a fresh copy of the poll stub and an empty slot, marked ASLEEP (no server
 * serves it until km_syscall_poll arms it): for every new or reused vCPU. */
void km_runtime_poll_init(km_mm_t *mm, int id);

/* km's pointer to vCPU id's poll stub page (the program can only read and run it): km writes
 * the stub's spin bounds there (KM_POLL_TAKE_TICKS, KM_POLL_DONE_TICKS). */
void *km_runtime_poll_stub(km_mm_t *mm, int id);

/* km's pointer to vCPU id's poll slot (guest memory: the program may write it at any time). */
void *km_runtime_poll_slot(km_mm_t *mm, int id);

/* True if rip is just past one of the int3s of any vCPU's poll stub (a syscall exit). */
bool km_rt_is_poll_int3(uint64_t rip);

/* True if rip lies in the poll stubs (CPL3 code of km's, not a clean point of the program's). */
bool km_rt_in_poll_stub(uint64_t rip);

/* Guest virtual address of vCPU id's poll stub (its LSTAR on the poll path). */
static inline uint64_t km_rt_poll_entry(int id)
{
	return KM_RT_GVA + KM_RT_POLL_STUB_OFF + (uint64_t)id * KM_RT_POLL_STRIDE;
}

/* Guest virtual address of a runtime offset. */
static inline uint64_t km_rt_gva(uint64_t off)
{
	return KM_RT_GVA + off;
}

/* Host pointer for a runtime guest virtual address, NULL if it is outside the region. */
void *km_rt_host(km_mm_t *mm, uint64_t gva, uint64_t len);

/* Guest virtual address of vCPU id's area plus `off` (KM_RT_VCPU_GDT, _TSS, _STACK_TOP). */
static inline uint64_t km_rt_vcpu_gva(int id, uint64_t off)
{
	return KM_RT_GVA + KM_RT_VCPU_OFF + (uint64_t)id * KM_RT_VCPU_SIZE + off;
}

#endif
