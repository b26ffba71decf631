/* linux.seccomp to km's guest seccomp rules: see shim_seccomp.h. */
#include "shim_seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define NR_MAX 512     /* km's rules name syscalls below this */
#define DATA_MAX 4095  /* an errno km's format carries */

/* Flags and why none changes anything under km:
 *   SECCOMP_FILTER_FLAG_TSYNC       km applies the rules to every guest thread anyway;
 *   SECCOMP_FILTER_FLAG_LOG         km logs what a `log` action says, nothing else;
 *   SECCOMP_FILTER_FLAG_SPEC_ALLOW  speculation mitigations are km's host process's business;
 *   SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV  only for NOTIFY, which is refused. */

static const char *action_word(oci_seccomp_action_t a)
{
	switch (a) {
	case OCI_SCMP_ACT_KILL: return "kill-thread";
	case OCI_SCMP_ACT_KILL_PROCESS: return "kill-process";
	case OCI_SCMP_ACT_TRAP: return "trap";
	case OCI_SCMP_ACT_ERRNO: return "errno";
	case OCI_SCMP_ACT_TRACE: return "trace";
	case OCI_SCMP_ACT_ALLOW: return "allow";
	case OCI_SCMP_ACT_LOG: return "log";
	case OCI_SCMP_ACT_NOTIFY: return NULL;
	}
	return NULL;
}

static const char *op_word(oci_seccomp_op_t op)
{
	switch (op) {
	case OCI_SCMP_CMP_NE: return "ne";
	case OCI_SCMP_CMP_LT: return "lt";
	case OCI_SCMP_CMP_LE: return "le";
	case OCI_SCMP_CMP_EQ: return "eq";
	case OCI_SCMP_CMP_GE: return "ge";
	case OCI_SCMP_CMP_GT: return "gt";
	case OCI_SCMP_CMP_MASKED_EQ: return "masked-eq";
	}
	return NULL;
}

/* "ACTION DATA": errnoRet for errno (EPERM when absent, as runc), 0 for the rest. */
static int action_data(oci_seccomp_action_t a, bool has_ret, unsigned ret, const char *where, const char **word,
		       unsigned *data, km_err_t **err)
{
	*word = action_word(a);
	if (*word == NULL)
		return km_err_set(err, 0, "%s: SCMP_ACT_NOTIFY is not supported (km has no seccomp listener to serve)",
				  where);
	*data = 0;
	if (a == OCI_SCMP_ACT_ERRNO)
		*data = has_ret ? ret : EPERM;
	if (*data > DATA_MAX)
		return km_err_set(err, 0, "%s: errnoRet %u is above %d", where, *data, DATA_MAX);
	return 0;
}

static int check_arches(const oci_seccomp_t *sc, km_err_t **err)
{
	if (sc->architectures == NULL || sc->architectures[0] == NULL)
		return 0; /* none listed: the native one, x86-64 */
	for (char **a = sc->architectures; *a != NULL; a++)
		if (strcmp(*a, "SCMP_ARCH_X86_64") == 0)
			return 0;
	return km_err_set(err, 0, "linux.seccomp.architectures does not include SCMP_ARCH_X86_64, the only "
				  "architecture km runs");
}

static int emit_rule(FILE *f, const oci_seccomp_rule_t *r, size_t ri, km_err_t **err)
{
	char where[64];
	snprintf(where, sizeof(where), "linux.seccomp.syscalls[%zu]", ri);
	const char *word;
	unsigned data;
	if (action_data(r->action, r->has_errno_ret, r->errno_ret, where, &word, &data, err) < 0)
		return -1;
	if (r->n_args > 6)
		return km_err_set(err, 0, "%s: %zu argument conditions (at most 6)", where, r->n_args);
	for (size_t a = 0; a < r->n_args; a++)
		if (r->args[a].index > 5 || op_word(r->args[a].op) == NULL)
			return km_err_set(err, 0, "%s.args[%zu]: bad index or op", where, a);
	for (char **name = r->names; name != NULL && *name != NULL; name++) {
		int nr = seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86_64, *name);
		if (nr < 0 || nr >= NR_MAX)
			continue; /* not a syscall of x86-64: skipped, as libseccomp (and so runc) does */
		fprintf(f, "%d %s %u", nr, word, data);
		for (size_t a = 0; a < r->n_args; a++)
			fprintf(f, " %u %s %llu %llu", r->args[a].index, op_word(r->args[a].op),
				(unsigned long long)r->args[a].value, (unsigned long long)r->args[a].value_two);
		fputc('\n', f);
	}
	return 0;
}

int shim_seccomp_text(const oci_seccomp_t *sc, char **text, size_t *len, km_err_t **err)
{
	*text = NULL;
	*len = 0;
	if (check_arches(sc, err) < 0)
		return -1;
	const char *word;
	unsigned data;
	if (action_data(sc->default_action, sc->has_default_errno_ret, sc->default_errno_ret, "linux.seccomp.defaultAction",
			&word, &data, err) < 0)
		return -1;
	char *p = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&p, &n);
	if (f == NULL)
		return km_err_set(err, errno, "linux.seccomp");
	fprintf(f, "km-guest-seccomp 1\ndefault %s %u\n", word, data);
	int rc = 0;
	for (size_t i = 0; i < sc->n_rules && rc == 0; i++)
		rc = emit_rule(f, &sc->rules[i], i, err);
	if (fclose(f) != 0 && rc == 0)
		rc = km_err_set(err, ENOMEM, "linux.seccomp");
	if (rc < 0) {
		free(p);
		return -1;
	}
	*text = p;
	*len = n;
	return 0;
}

int shim_seccomp_compile(const oci_seccomp_t *sc, int *memfd_out, km_err_t **err)
{
	*memfd_out = -1;
	char *text;
	size_t len;
	if (shim_seccomp_text(sc, &text, &len, err) < 0)
		return -1;
	int fd = memfd_create("km-guest-seccomp", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		free(text);
		return km_err_set(err, errno, "linux.seccomp: memfd_create");
	}
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = errno;
			free(text);
			close(fd);
			return km_err_set(err, e, "linux.seccomp: writing the rules");
		}
		off += (size_t)w;
	}
	free(text);
	/* Sealed: nobody changes the rules between here and km reading them. */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0) {
		int e = errno;
		close(fd);
		return km_err_set(err, e, "linux.seccomp: sealing the rules");
	}
	*memfd_out = fd;
	return 0;
}
