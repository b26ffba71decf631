/*
 * The sections of config.json, each parsed by its own file (internal to oci/): process
 * (oci_config_process.c), linux (oci_config_linux.c), linux.seccomp (oci_config_seccomp.c).
 * Each parser fills a zeroed struct and, on failure, leaves it for the matching free function.
 */
#ifndef OCI_CONFIG_PARTS_H
#define OCI_CONFIG_PARTS_H

#include "oci_config.h"
#include "oci_json.h"

int oci_parse_process(oci_jpath_t *p, const json_t *obj, oci_process_t *proc);
void oci_process_free(oci_process_t *proc);

int oci_parse_linux(oci_jpath_t *p, const json_t *obj, oci_linux_t *lx);
void oci_linux_free(oci_linux_t *lx);

int oci_parse_seccomp(oci_jpath_t *p, const json_t *obj, oci_seccomp_t *sc);
void oci_seccomp_free(oci_seccomp_t *sc);

/* Index of `name` in the NULL-terminated table `names`, or -1. */
int oci_name_index(const char *const *names, const char *name);

/* True if obj's member `key` is set: present and neither null, {} nor []. For members km-shim
 * only records in order to refuse them (their content is not checked). */
bool oci_j_nonempty(const json_t *obj, const char *key);

#endif
