/*
 * The program's initial stack, built as Linux builds it: argc, argv, envp, the auxiliary vector,
 * then the strings, random bytes and platform name near the top of the stack mapping.
 */
#ifndef KM_INITSTACK_H
#define KM_INITSTACK_H

#include <stdbool.h>
#include <stdint.h>

#include "km_elf_load.h"
#include "km_error.h"
#include "km_guest.h"

/* Maps the stack (RLIMIT_STACK sized, untouched pages free; executable if exec_stack) below
 * KM_USER_TOP and sets mm->mmap_base below it, as Linux does before it maps the interpreter. */
int km_initstack_map(km_guest_t *g, bool exec_stack, km_err_t **err);

/* Writes argv/envp/auxv on the stack (mapped first by km_initstack_map if it is not yet). interp
 * is the program's interpreter as loaded, or NULL for a static program (AT_BASE 0). Returns the
 * initial rsp in *rsp. */
int km_initstack_build(km_guest_t *g, const km_elf_info_t *elf, const km_interp_info_t *interp,
		       char *const argv[], char *const envp[], uint64_t *rsp, km_err_t **err);

#endif
