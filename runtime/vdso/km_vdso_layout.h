/*
 * The guest's vDSO as km places it, shared by the vDSO's sources (runtime/vdso/) and km
 * (km/vm/km_vdso.c). Part of the snapshot format: a resumed program calls the entry addresses its
 * libc cached from the vDSO it started with, so the address and each entry's offset are fixed
 * for a layout version (KM_VDSO_LAYOUT), which a snapshot records and a resume checks.
 *
 *   KM_VDSO_DATA_GVA   the data page (read-only to the guest): struct km_vdso_data, km writes it
 *   KM_VDSO_GVA        the vDSO's ELF image (read/exec), AT_SYSINFO_EHDR; the data page is the
 *                      page right below it, which the image reaches rip-relative
 *   KM_VDSO_GVA + KM_VDSO_ENTRY_*   the entry points, each a jump into the code behind it
 *
 * Both live in km's runtime region (runtime/km_runtime_layout.h), above the per-vCPU areas, so
 * snapshots leave them out as they leave out the rest of the runtime.
 */
#ifndef KM_VDSO_LAYOUT_H
#define KM_VDSO_LAYOUT_H

#define KM_VDSO_LAYOUT 1 /* bump when anything below changes meaning or place */

#define KM_VDSO_RT_OFF 0x900000     /* the data page, from KM_RT_GVA / KM_RT_GPA */
#define KM_VDSO_DATA_GVA 0x7fffff900000
#define KM_VDSO_GVA 0x7fffff901000
#define KM_VDSO_IMAGE_MAX 0x4000    /* the image's most bytes */

/* Entry points, from KM_VDSO_GVA: 16 bytes each, a `jmp` to the implementation. */
#define KM_VDSO_ENTRY_BASE 0x1000
#define KM_VDSO_ENTRY_CLOCK_GETTIME 0x1000
#define KM_VDSO_ENTRY_GETTIMEOFDAY 0x1010
#define KM_VDSO_ENTRY_TIME 0x1020
#define KM_VDSO_ENTRY_GETCPU 0x1030
#define KM_VDSO_ENTRY_CLOCK_GETRES 0x1040
#define KM_VDSO_ENTRY_END 0x1050 /* the code behind the slots is this km's own */

#endif
