/*
 * Loading a program's ELF image into the guest address space (libelf): static ET_EXEC and
 * static-pie ET_DYN for x86-64. Dynamically linked programs are refused with a clear message.
 */
#ifndef KM_ELF_LOAD_H
#define KM_ELF_LOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "km_error.h"
#include "km_mm.h"

typedef struct km_elf_info {
	uint64_t entry;      /* entry point (load bias applied) */
	uint64_t bias;       /* load bias: 0 for ET_EXEC */
	uint64_t phdr;       /* guest address of the program headers (AT_PHDR) */
	uint16_t phnum, phent;
	uint64_t image_end;  /* end of the highest segment: the heap starts after it */
	bool exec_stack;     /* PT_GNU_STACK asks for an executable stack (or is absent) */
} km_elf_info_t;

/* Default load address of a static-pie program (Linux's ELF_ET_DYN_BASE without randomisation). */
#define KM_PIE_BASE 0x555555554000ul

/* Checks that `path` is a static x86-64 ELF program and maps its PT_LOAD segments into mm. Errors
 * name the file and say what is wrong with it. */
int km_elf_load(km_mm_t *mm, const char *path, km_elf_info_t *info, km_err_t **err);

/* Whether km can run `path` as a program, checked without mapping anything (execve decides with
 * it before km commits to replacing the program): 0 if so; else -errno as Linux's execve gives
 * for that file (EACCES not a regular file, ENOEXEC not an x86-64 ELF program or unusable
 * headers, ENOENT its interpreter is missing, ELIBBAD its interpreter is not a usable ELF), with
 * *err saying why for --trace. A #! script is not ELF: callers handle scripts before this. */
int km_elf_probe(const char *path, km_err_t **err);

#endif
