/*
 * The config.json fuzz target's check of one input, shared by the libFuzzer target
 * (tests/fuzz/fuzz_oci_config.c, built by tests/fuzz/build.sh oci) and its replay in make check
 * (tests/unit/test_oci_fuzz_replay.c), so the harness is compiled and run by every make check.
 */
#ifndef KM_FUZZ_OCI_CONFIG_H
#define KM_FUZZ_OCI_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/* Parses `data` with oci_config_parse. Returns 1 if it was accepted (and then every promise of
 * oci_config.h holds), 0 if it was refused with one printable line naming "config.json"; on any
 * broken promise it prints why and abort()s. The error message (if any) is copied to msg. */
int km_fuzz_oci_config_one(const uint8_t *data, size_t size, char *msg, size_t msg_size);

#endif
