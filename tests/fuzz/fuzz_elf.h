/*
 * The ELF loader fuzz target's check of one input, shared by the libFuzzer target
 * (tests/fuzz/fuzz_elf.c, built by tests/fuzz/build.sh) and its replay in make check
 * (tests/unit/test_elf_fuzz_replay.c), so the harness is compiled and run by every make check.
 */
#ifndef KM_FUZZ_ELF_H
#define KM_FUZZ_ELF_H

#include <stddef.h>
#include <stdint.h>

/* Loads `data` as a program (km_elf_load on a memfd) into a fresh address space and, if it loads,
 * builds its initial stack (km_initstack_build). Returns 1 if it loaded, 0 if it was refused with
 * an error naming the file; on any broken promise of the loader it prints why and abort()s. The
 * error message (if any) is copied to msg. */
int km_fuzz_elf_one(const uint8_t *data, size_t size, char *msg, size_t msg_size);

#endif
