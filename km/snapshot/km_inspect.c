/* `km --inspect`: see km_inspect.h. */
#include "km_fdtab.h"
#include "km_inspect.h"

#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "km_mm.h"
#include "km_snapshot.h"
#include "km_snapshot_layers.h"

static const char *reason_name(uint32_t r)
{
	switch (r) {
	case KM_REASON_SNAPSHOT:
		return "the program asked (HC_snapshot)";
	case KM_REASON_MGMT:
		return "requested on the management socket";
	case KM_REASON_CORE:
		return "core file: the program died of a signal";
	default:
		return "unknown";
	}
}

static const char *kind_name(uint32_t k)
{
	static const char *names[] = {"anonymous", "file", "program", "heap", "stack"};
	return k < sizeof(names) / sizeof(names[0]) ? names[k] : "?";
}

static void human(uint64_t n, char *buf, size_t len)
{
	if (n >= (1ull << 30))
		snprintf(buf, len, "%.1f GiB", (double)n / (1ull << 30));
	else if (n >= (1ull << 20))
		snprintf(buf, len, "%.1f MiB", (double)n / (1ull << 20));
	else
		snprintf(buf, len, "%.1f KiB", (double)n / 1024);
}

static void print_header(const km_snapshot_t *s, const char *path, FILE *out)
{
	time_t t = (time_t)(s->proc.created_ns / 1000000000ull);
	struct tm tm;
	char when[64];
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	fprintf(out, "snapshot:      %s\n", path);
	fprintf(out, "format:        km snapshot format %u.%u, written by km %s\n", KM_SNAPSHOT_MAJOR_OF(s->proc.version),
		KM_SNAPSHOT_MINOR_OF(s->proc.version), s->km_version);
	fprintf(out, "written:       %s, %s\n", when, reason_name(s->proc.reason));
	if (s->proc.reason == KM_REASON_CORE)
		fprintf(out, "signal:        %u (SIG%s)\n", s->proc.term_signal,
			sigabbrev_np((int)s->proc.term_signal) ?: "?");
	if (s->label[0] != '\0')
		fprintf(out, "label:         %s\n", s->label);
	fprintf(out, "program:       %s\n", s->exe_path);
	fprintf(out, "arguments:    ");
	const char *a = s->argv;
	for (uint32_t i = 0; i < s->argc; i++, a += strlen(a) + 1)
		fprintf(out, " '%s'", a);
	fprintf(out, "\nworking dir:   %s\n", s->cwd);
	fprintf(out, "pid:           %u\n", s->proc.pid);
}

static void print_threads(const km_snapshot_t *s, FILE *out)
{
	fprintf(out, "threads:       %u\n", s->ncpus);
	for (uint32_t i = 0; i < s->ncpus; i++) {
		const km_nt_cpu_t *c = &s->cpus[i].km;
		fprintf(out, "  vcpu %u tid %u: rip %#" PRIx64 " rsp %#" PRIx64 " fs_base %#" PRIx64 "%s\n", c->vcpu_id,
			c->tid, c->regs[16], c->regs[6], c->fs_base,
			(c->flags & KM_CPU_RESTART_SYSCALL) ? ", about to restart syscall" : "");
	}
}

static void print_mappings(const km_snapshot_t *s, FILE *out)
{
	uint64_t mapped = 0;
	fprintf(out, "mappings:      %zu\n", s->nvmas);
	for (size_t i = 0; i < s->nvmas; i++) {
		const km_snap_vma_t *v = &s->vmas[i];
		uint64_t len = v->nt.end - v->nt.start;
		char size[32];
		human(len, size, sizeof(size));
		mapped += len;
		fprintf(out, "  %012" PRIx64 "-%012" PRIx64 " %c%c%c %-7s %10s %-9s %s%s\n", v->nt.start, v->nt.end,
			(v->nt.prot & PROT_READ) ? 'r' : '-', (v->nt.prot & PROT_WRITE) ? 'w' : '-',
			(v->nt.prot & PROT_EXEC) ? 'x' : '-', (v->nt.flags & MAP_SHARED) ? "shared" : "private", size,
			kind_name(v->nt.kind), v->path != NULL ? v->path : "",
			v->nt.saved ? "" : " (contents in the file, not the snapshot)");
		if (v->below != KM_BELOW_NONE)
			fprintf(out, "      holds %" PRIu64 " of %" PRIu64 " pages; the others from %s\n",
				km_layers_held_pages(s, i), len / KM_PAGE_SIZE,
				v->below == KM_BELOW_PARENT ? "its parent" : "the mapped file");
	}
	char a[32], b[32], c[32];
	human(mapped, a, sizeof(a));
	human(s->saved_bytes, b, sizeof(b));
	human(s->file_size, c, sizeof(c));
	fprintf(out, "memory:        %s mapped, %s laid out in the file (untouched and zero pages are holes)\n", a, b);
	fprintf(out, "file size:     %s\n", c);
}

static void print_dynlinker(const km_snapshot_t *s, FILE *out)
{
	if (!km_snapshot_has(s, KM_SNAPSHOT_MINOR_DYNLINKER)) {
		fprintf(out, "interpreter:   not recorded (before format 2.4)\n");
		return;
	}
	if (s->interp_path == NULL)
		fprintf(out, "interpreter:   none (statically linked)\n");
	else
		fprintf(out, "interpreter:   %s at %#" PRIx64 ", entry %#" PRIx64 " (inode %" PRIu64 ", %" PRIu64 " bytes)\n",
			s->interp_path, s->dynlinker.base, s->dynlinker.entry, s->dynlinker.interp.ino,
			s->dynlinker.interp.size);
	fprintf(out, "mapped files:  %u private file mappings, each refused at resume if its file changed\n",
		s->nmapfiles);
}

static void print_files(const km_snapshot_t *s, FILE *out)
{
	if (s->files == NULL) {
		fprintf(out, "open files:    not recorded (before format 2.3, or a core)\n");
		return;
	}
	km_buf_t b = {0};
	km_fdtab_describe(s->files, s->files_len, &b);
	fprintf(out, "open files:\n");
	if (b.failed)
		fprintf(out, "  (out of memory)\n");
	else
		fwrite(b.p, 1, b.len, out);
	km_buf_free(&b);
}

/* One member of a chain: where it is, its id and depth, what it holds. */
static void print_member(const km_snapshot_t *m, const char *path, int k, FILE *out)
{
	char id[33], b[32];
	uint64_t held = 0;
	for (size_t i = 0; i < m->nvmas; i++)
		held += km_layers_held_pages(m, i);
	human(held * KM_PAGE_SIZE, b, sizeof(b));
	km_layers_id_hex(m->layers.id, id);
	fprintf(out, "  [%d] %s: id %s, depth %u, holds %" PRIu64 " pages (%s)\n", k, path, id, m->layers.depth,
		held, b);
}

/* 2.6: the file's layers, newest first. Opening the chain checks each member; a broken chain
 * is reported after what could be read. */
static int print_chain(km_snapshot_t *s, const char *path, FILE *out, km_err_t **err)
{
	if (!s->layered) {
		fprintf(out, "layers:        none (every page in this file: before format 2.6, or a core)\n");
		return 0;
	}
	int rc = km_layers_open_chain(s, path, NULL, 0, err);
	int n = 0;
	for (const km_snapshot_t *m = s; m != NULL; m = m->parent)
		n++;
	fprintf(out, "chain:         %d file%s, this one first%s\n", n, n == 1 ? "" : "s",
		s->layers.depth > 0 ? " (an incremental snapshot: each holds the pages changed since its parent)" : "");
	int k = 0;
	for (const km_snapshot_t *m = s; m != NULL; m = m->parent, k++)
		print_member(m, m == s ? path : m->name, k, out);
	if (rc < 0)
		fflush(out);
	return rc;
}

/* --verify: every member's memory. */
static int verify_chain(const km_snapshot_t *s, const char *path, FILE *out, km_err_t **err)
{
	for (const km_snapshot_t *m = s; m != NULL; m = m->parent) {
		uint64_t bytes = 0;
		const char *name = m == s ? path : m->name;
		if (km_snapshot_verify(m, name, &bytes, err) < 0)
			return -1;
		char b[32];
		human(bytes, b, sizeof(b));
		fprintf(out, "verified:      memory of all %zu segments of %s ok (%s laid out in the file)\n", m->nvmas,
			name, b);
	}
	return 0;
}

int km_inspect(const char *path, bool verify, FILE *out, km_err_t **err)
{
	km_snapshot_t s;
	if (km_snapshot_open(path, &s, err) < 0) {
		km_snapshot_close(&s);
		return -1;
	}
	print_header(&s, path, out);
	print_threads(&s, out);
	print_mappings(&s, out);
	print_dynlinker(&s, out);
	print_files(&s, out);
	fprintf(out, "heap:          %#" PRIx64 "-%#" PRIx64 "\n", s.proc.brk_start, s.proc.brk_cur);
	fprintf(out, "environment:   %" PRIu64 " variables, %" PRIu64 " bytes at start\n", s.proc.env_count,
		s.proc.env_bytes);
	fprintf(out, "checksums:     headers and notes ok (CRC32C)%s\n",
		verify ? "" : "; memory not checked (--verify)");
	int rc = print_chain(&s, path, out, err);
	if (rc == 0 && verify) {
		fflush(out); /* the description first, then any error line from main */
		rc = verify_chain(&s, path, out, err);
		uint64_t fbytes = 0;
		if (rc == 0 && s.files != NULL &&
		    (rc = km_fdtab_verify(s.files, s.files_len, s.fd, s.file_size, path, &fbytes, err)) == 0) {
			char b[32];
			human(fbytes, b, sizeof(b));
			fprintf(out, "verified:      open files' saved data ok (%s)\n", b);
		}
	}
	km_snapshot_close(&s);
	return rc;
}
