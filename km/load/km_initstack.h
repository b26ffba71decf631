/*
 * The program's initial stack, built as Linux builds it: argc, argv, envp, the auxiliary vector,
 * then the strings, random bytes and platform name near the top of the stack mapping.
 */
#ifndef KM_INITSTACK_H
#define KM_INITSTACK_H

#include <stdint.h>

#include "km_elf_load.h"
#include "km_error.h"
#include "km_guest.h"

/* Maps the stack (RLIMIT_STACK sized, untouched pages free) below KM_USER_TOP, sets mm->mmap_base
 * below it, and writes argv/envp/auxv. Returns the initial rsp in *rsp. */
int km_initstack_build(km_guest_t *g, const km_elf_info_t *elf, char *const argv[], char *const envp[],
		       uint64_t *rsp, km_err_t **err);

#endif
