/*
 * Loading a program's ELF image into the guest address space (libelf): ET_EXEC and ET_DYN for
 * x86-64, and for a dynamically linked program its interpreter (PT_INTERP, the dynamic linker),
 * as Linux's binfmt_elf does: the program at its addresses (ET_DYN at KM_PIE_BASE), the
 * interpreter where mmap would put it, started first with AT_BASE pointing at it.
 */
#ifndef KM_ELF_LOAD_H
#define KM_ELF_LOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "km_error.h"
#include "km_mm.h"

/* Longest PT_INTERP km accepts, NUL included (Linux's PATH_MAX). */
#define KM_INTERP_MAX 4096

typedef struct km_elf_info {
	uint64_t entry;      /* entry point (load bias applied) */
	uint64_t bias;       /* load bias: 0 for ET_EXEC */
	uint64_t phdr;       /* guest address of the program headers (AT_PHDR) */
	uint16_t phnum, phent;
	uint64_t image_start; /* page-aligned start of the lowest segment */
	uint64_t image_end;  /* end of the highest segment: the heap starts after it */
	bool exec_stack;     /* PT_GNU_STACK asks for an executable stack (or is absent) */
	char interp[KM_INTERP_MAX]; /* PT_INTERP as written in the program; "" for a static one */
} km_elf_info_t;

/* The interpreter as loaded (km_elf_load_interp): what the guest starts at, and the file's
 * identity for snapshots (NT_KM_DYNLINKER). */
typedef struct km_interp_info {
	char path[KM_INTERP_MAX]; /* its absolute path, symlinks resolved (as NT_FILE names it) */
	uint64_t base, entry;     /* load address (AT_BASE) and entry point (bias applied) */
	uint64_t dev, ino, size;  /* identity of the file when loaded */
	int64_t mtime_sec, mtime_nsec;
} km_interp_info_t;

/* Default load address of a static-pie program (Linux's ELF_ET_DYN_BASE without randomisation). */
#define KM_PIE_BASE 0x555555554000ul

/* Checks that `path` is an x86-64 ELF program and maps its PT_LOAD segments into mm; info->interp
 * is its PT_INTERP (checked: NUL-terminated, at most KM_INTERP_MAX bytes), "" if none. Errors name
 * the file and say what is wrong with it. */
int km_elf_load(km_mm_t *mm, const char *path, km_elf_info_t *info, km_err_t **err);

/* Loads the interpreter `prog`'s PT_INTERP names (prog->interp, opened as Linux opens it: relative
 * to the working directory if not absolute) as file mappings in a free range below mm->mmap_base
 * (set by then: km_initstack_map). It must be an x86-64 ET_DYN or ET_EXEC without PT_INTERP of
 * its own. Errors name both files. */
int km_elf_load_interp(km_mm_t *mm, const char *prog_path, const km_elf_info_t *prog, km_interp_info_t *out,
		       km_err_t **err);

/* Whether km can run `path` as a program, checked without mapping anything (execve decides with
 * it before km commits to replacing the program): 0 if so; else -errno as Linux's execve gives
 * for that file (EACCES not a regular file, ENOEXEC not an x86-64 ELF program or unusable
 * headers, ENOENT its interpreter is missing, ELIBBAD its interpreter is not a usable ELF), with
 * *err saying why for --trace. A #! script is not ELF: callers handle scripts before this. */
int km_elf_probe(const char *path, km_err_t **err);

#endif
