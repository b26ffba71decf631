/*
 * Reading a snapshot: every byte of the header, program headers and notes is checked before
 * anything is created, so a truncated, corrupted or foreign file is one clear error. See
 * km_snapshot.h; format in km_coredump.h.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "km_mm.h"
#include "km_runtime_layout.h"
#include "km_sigqueue.h"
#include "km_machine.h"
#include "km_snapshot.h"
#include "km_snapshot_layers.h"
#include "km_crc32c.h"

#define MAX_NOTES_LEN (64ul << 20)
#define SIGACTIONS_LEN (64 * 32)
#define MIN_XSAVE 576
#define MAX_XSAVE 4096

static bool read_exact(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n == 0)
			errno = 0; /* the file ended: the caller's message says so, no stale strerror */
		if (n <= 0)
			return false;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return true;
}

static int check_ehdr(const Elf64_Ehdr *eh, uint64_t size, const char *name, km_err_t **err)
{
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0)
		return km_err_set(err, 0, "%s: not an ELF file", name);
	if (eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB || eh->e_machine != EM_X86_64)
		return km_err_set(err, 0, "%s: not an x86-64 ELF file", name);
	if (eh->e_type != ET_CORE)
		return km_err_set(err, 0, "%s: not a snapshot (ELF type %u, not a core file)", name, eh->e_type);
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum < 1)
		return km_err_set(err, 0, "%s: corrupt snapshot: bad program header table", name);
	if (eh->e_phoff > size || (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > size - eh->e_phoff)
		return km_err_set(err, 0, "%s: truncated snapshot: program headers past the end of the file", name);
	return 0;
}

/* One note, bounds-checked. */
typedef struct note {
	const char *owner;
	uint32_t type;
	const uint8_t *desc;
	size_t len;
} note_t;

#define ALIGN4(x) (((x) + 3) & ~(uint64_t)3)

/* Steps to the note at *pos; false at the end. Sets *bad on a malformed note. */
static bool next_note(const uint8_t *buf, size_t len, size_t *pos, note_t *n, bool *bad)
{
	if (*pos >= len)
		return false;
	if (len - *pos < sizeof(Elf64_Nhdr)) {
		*bad = true;
		return false;
	}
	Elf64_Nhdr h;
	memcpy(&h, buf + *pos, sizeof(h));
	uint64_t name_at = *pos + sizeof(h), desc_at = name_at + ALIGN4((uint64_t)h.n_namesz);
	uint64_t end = desc_at + ALIGN4((uint64_t)h.n_descsz);
	if (h.n_namesz == 0 || end > len || buf[name_at + h.n_namesz - 1] != '\0') {
		*bad = true;
		return false;
	}
	n->owner = (const char *)buf + name_at;
	n->type = h.n_type;
	n->desc = buf + desc_at;
	n->len = h.n_descsz;
	*pos = (size_t)end;
	return true;
}

/* NT_KM_STRINGS: exe, cwd, label, km version, argv... each NUL-terminated. */
static int parse_strings(km_snapshot_t *s, const note_t *n)
{
	if (n->len == 0 || n->desc[n->len - 1] != '\0')
		return -1;
	const char *p = (const char *)n->desc, *end = p + n->len;
	const char **fixed[4] = {&s->exe_path, &s->cwd, &s->label, &s->km_version};
	int i = 0;
	while (p < end) {
		if (i < 4)
			*fixed[i] = p;
		else if (i == 4)
			s->argv = p;
		i++;
		p += strlen(p) + 1;
	}
	if (i < 5 || s->exe_path[0] != '/')
		return -1;
	s->argc = (uint32_t)(i - 4);
	return 0;
}

static int parse_vma(km_snapshot_t *s, const note_t *n, size_t *nv, size_t cap)
{
	if (n->len < sizeof(km_nt_vma_t))
		return -1;
	if (*nv >= cap)
		return -3; /* more mappings than segments */
	km_snap_vma_t *v = &s->vmas[(*nv)++];
	memcpy(&v->nt, n->desc, sizeof(v->nt));
	if (v->nt.path_len > n->len - sizeof(km_nt_vma_t))
		return -1;
	v->path = NULL;
	if (v->nt.path_len > 0) {
		const char *p = (const char *)n->desc + sizeof(km_nt_vma_t);
		if (memchr(p, '\0', v->nt.path_len) == NULL)
			return -1;
		v->path = p;
	}
	if (v->nt.kind > KM_VMA_STACK || v->nt.saved > (km_snapshot_has(s, KM_SNAPSHOT_MINOR_LAYERS) ? 2u : 1u) ||
	    (v->nt.prot & ~7u) ||
	    !(v->nt.flags & (MAP_SHARED | MAP_PRIVATE)))
		return -1;
	if (!v->nt.saved && (v->path == NULL || (v->nt.flags & MAP_ANONYMOUS) || !(v->nt.flags & MAP_SHARED)))
		return -1; /* only shared file mappings live outside the snapshot */
	return 0;
}

/* NT_KM_DYNLINKER (2.4): the header, nfiles records and the path fill it exactly; the path is an
 * absolute NUL-terminated string, and absent exactly when the program had no interpreter. The
 * records' vma indices are checked once every NT_KM_VMA is known (check_mapfiles). */
static int parse_dynlinker(km_snapshot_t *s, const note_t *n)
{
	if (n->len == 0 || !km_snapshot_has(s, KM_SNAPSHOT_MINOR_DYNLINKER))
		return 0; /* before 2.4: empty, nothing recorded */
	if (n->len < sizeof(km_nt_dynlinker_t) || s->mapfiles != NULL)
		return -1;
	km_nt_dynlinker_t d;
	memcpy(&d, n->desc, sizeof(d));
	uint64_t rest = n->len - sizeof(d);
	if ((uint64_t)d.nfiles > rest / sizeof(km_nt_mapfile_t) ||
	    rest - (uint64_t)d.nfiles * sizeof(km_nt_mapfile_t) != d.path_len || (d.path_len & 7u))
		return -1;
	const uint8_t *files = n->desc + sizeof(d);
	const char *path = (const char *)files + (size_t)d.nfiles * sizeof(km_nt_mapfile_t);
	if (d.path_len == 0) {
		if (d.base != 0 || d.entry != 0)
			return -1;
	} else if (memchr(path, '\0', d.path_len) == NULL || path[0] != '/' || d.base == 0 ||
		   d.base >= KM_USER_TOP || d.entry >= KM_USER_TOP) {
		return -1;
	}
	s->dynlinker = d;
	s->interp_path = d.path_len > 0 ? path : NULL;
	s->mapfiles = files;
	s->nmapfiles = d.nfiles;
	return 0;
}

/* True if the notes hold km's process note: a core km did not write is "not a km snapshot",
 * whatever its own notes look like (a kernel core's XSAVE note is larger than km accepts). */
static bool has_km_proc(const km_snapshot_t *s)
{
	size_t pos = 0;
	bool bad = false;
	note_t n;
	while (next_note(s->notes, s->notes_len, &pos, &n, &bad))
		if (strcmp(n.owner, KM_NOTE_OWNER) == 0 && n.type == NT_KM_PROC)
			return true;
	return false;
}

/* Walks all notes, filling s. Notes it does not know (a type a newer minor added, another
 * owner's) are skipped: that is what lets an older km of the same major read a newer file.
 * Returns 0, -1 with *why, or -2 if the file has no km notes. */
static int parse_notes(km_snapshot_t *s, size_t vma_cap, const char **why)
{
	if (!has_km_proc(s))
		return *why = "no NT_KM_PROC note", -2;
	size_t pos = 0, nv = 0;
	uint32_t nxsave = 0, nproc = 0;
	bool bad = false;
	note_t n;
	while (next_note(s->notes, s->notes_len, &pos, &n, &bad)) {
		bool km = strcmp(n.owner, KM_NOTE_OWNER) == 0;
		if (km && n.type == NT_KM_PROC) {
			if (n.len != sizeof(km_nt_proc_t) || nproc++)
				return *why = "bad NT_KM_PROC note", -1;
			memcpy(&s->proc, n.desc, sizeof(s->proc));
		} else if (km && n.type == NT_KM_CPU) {
			if (n.len != sizeof(km_nt_cpu_t) || s->ncpus >= KM_SNAP_MAX_VCPUS)
				return *why = "bad NT_KM_CPU note", -1;
			memcpy(&s->cpus[s->ncpus++].km, n.desc, sizeof(km_nt_cpu_t));
		} else if (km && n.type == NT_KM_GUEST) {
			if (n.len != sizeof(km_nt_guest_t))
				return *why = "bad NT_KM_GUEST note", -1;
			memcpy(&s->guest, n.desc, sizeof(s->guest));
		} else if (km && n.type == NT_KM_SIGACTIONS) {
			if (n.len != SIGACTIONS_LEN)
				return *why = "bad NT_KM_SIGACTIONS note", -1;
			s->sigactions = n.desc;
		} else if (km && n.type == NT_KM_STRINGS) {
			if (parse_strings(s, &n) < 0)
				return *why = "bad NT_KM_STRINGS note", -1;
		} else if (km && n.type == NT_KM_VMA) {
			int rc = parse_vma(s, &n, &nv, vma_cap);
			if (rc < 0)
				return *why = rc == -3 ? "more mapping notes than segments" : "bad NT_KM_VMA note", -1;
		} else if (km && n.type == NT_KM_SIGPENDING && km_snapshot_has(s, KM_SNAPSHOT_MINOR_THREADS)) {
			if (n.len % sizeof(km_nt_sigpending_t) != 0 || s->sigpending != NULL)
				return *why = "bad NT_KM_SIGPENDING note", -1;
			s->sigpending = n.desc;
			s->nsigpending = (uint32_t)(n.len / sizeof(km_nt_sigpending_t));
		} else if (km && n.type == NT_KM_TIMERS && km_snapshot_has(s, KM_SNAPSHOT_MINOR_THREADS)) {
			if (n.len < sizeof(km_nt_timers_t) || s->timers != NULL)
				return *why = "bad NT_KM_TIMERS note", -1;
			s->timers = n.desc;
			s->timers_len = n.len;
		} else if (km && n.type == NT_KM_SECCOMP && km_snapshot_has(s, KM_SNAPSHOT_MINOR_SECCOMP)) {
			if (n.len < 4 || s->seccomp != NULL)
				return *why = "bad NT_KM_SECCOMP note", -1;
			s->seccomp = n.desc;
			s->seccomp_len = n.len;
		} else if (km && n.type == NT_KM_FILES && km_snapshot_has(s, KM_SNAPSHOT_MINOR_FILES)) {
			if (s->files != NULL)
				return *why = "two NT_KM_FILES notes", -1;
			s->files = n.desc;
			s->files_len = n.len;
		} else if (km && n.type == NT_KM_LAYERS && km_snapshot_has(s, KM_SNAPSHOT_MINOR_LAYERS)) {
			if (s->layers_desc != NULL)
				return *why = "two NT_KM_LAYERS notes", -1;
			s->layers_desc = n.desc; /* checked once the segments are known */
			s->layers_len = n.len;
		} else if (km && n.type == NT_KM_DYNLINKER) {
			if (parse_dynlinker(s, &n) < 0)
				return *why = "bad NT_KM_DYNLINKER note", -1;
		} else if (strcmp(n.owner, "LINUX") == 0 && n.type == NT_X86_XSTATE) {
			if (n.len < MIN_XSAVE || n.len > MAX_XSAVE || nxsave >= KM_SNAP_MAX_VCPUS)
				return *why = "bad NT_X86_XSTATE note", -1;
			s->cpus[nxsave].xsave = n.desc;
			s->cpus[nxsave++].xsave_len = n.len;
		} else if (strcmp(n.owner, "CORE") == 0 && n.type == NT_AUXV) {
			if ((n.len % 16) != 0 || n.len > 4096)
				return *why = "bad NT_AUXV note", -1;
			s->auxv = n.desc;
			s->auxv_len = n.len;
		}
	}
	if (bad)
		return *why = "corrupt note", -1;
	if (nproc == 0)
		return *why = "no NT_KM_PROC note", -2;
	s->nvmas = nv;
	return 0;
}

/* Thread ids are positive and distinct, and every pending signal is a signal, for the process
 * or for one of them, within what a queue holds. */
static int check_threads(const km_snapshot_t *s)
{
	for (uint32_t i = 0; i < s->ncpus; i++) {
		if (s->cpus[i].km.tid == 0 || s->cpus[i].km.tid > 0x3fffffff)
			return -1;
		for (uint32_t j = 0; j < i; j++)
			if (s->cpus[j].km.tid == s->cpus[i].km.tid)
				return -1;
	}
	if (s->nsigpending > (uint64_t)KM_SIGQUEUE_MAX * (1 + s->ncpus))
		return -1;
	for (uint32_t k = 0; k < s->nsigpending; k++) {
		km_nt_sigpending_t e;
		memcpy(&e, s->sigpending + (size_t)k * sizeof(e), sizeof(e));
		int signo;
		memcpy(&signo, e.info, sizeof(signo));
		bool owner = e.tid == 0;
		for (uint32_t i = 0; i < s->ncpus && !owner; i++)
			owner = s->cpus[i].km.tid == e.tid;
		if (!owner || signo < 1 || signo > 64)
			return -1;
	}
	return 0;
}

static int check_complete(km_snapshot_t *s, const char *name, km_err_t **err)
{
	if (s->ncpus == 0 || s->ncpus != s->proc.nvcpus)
		return km_err_set(err, 0, "%s: corrupt snapshot: %u vCPU notes for %u vCPUs", name, s->ncpus,
				  s->proc.nvcpus);
	uint8_t seen[KM_MAX_VCPUS] = {0};
	for (uint32_t i = 0; i < s->ncpus; i++) {
		uint32_t id = s->cpus[i].km.vcpu_id;
		if (s->cpus[i].xsave == NULL)
			return km_err_set(err, 0, "%s: corrupt snapshot: vCPU %u has no FPU state", name, i);
		if (id >= KM_MAX_VCPUS || seen[id]++)
			return km_err_set(err, 0, "%s: corrupt snapshot: bad or repeated vCPU id %u", name, id);
	}
	if (s->sigactions == NULL || s->exe_path == NULL || s->auxv == NULL || s->guest.user_top == 0)
		return km_err_set(err, 0, "%s: corrupt snapshot: process notes missing", name);
	if (check_threads(s) < 0)
		return km_err_set(err, 0, "%s: corrupt snapshot: bad thread ids or pending signals", name);
	for (uint32_t i = 0; i < s->nmapfiles; i++) {
		km_nt_mapfile_t f;
		memcpy(&f, s->mapfiles + (size_t)i * sizeof(f), sizeof(f));
		/* Only a private mapping of a named file has an identity to check. */
		if (f.vma >= s->nvmas || s->vmas[f.vma].path == NULL || !s->vmas[f.vma].nt.saved ||
		    (s->vmas[f.vma].nt.flags & MAP_ANONYMOUS))
			return km_err_set(err, 0, "%s: corrupt snapshot: NT_KM_DYNLINKER names mapping %u of %zu", name,
					  f.vma, s->nvmas);
	}
	const km_nt_proc_t *p = &s->proc;
	if ((p->brk_start & (KM_PAGE_SIZE - 1)) || p->brk_start > p->brk_cur || p->brk_cur > KM_USER_TOP ||
	    p->mmap_base > KM_USER_TOP || p->stack_top > KM_USER_TOP || (p->umask & ~0777u))
		return km_err_set(err, 0, "%s: corrupt snapshot: process layout out of range", name);
	return 0;
}

/* PT_LOADs: one per NT_KM_VMA, same order, page aligned, inside the file and the program's
 * address space, ascending and not overlapping. */
static int check_loads(km_snapshot_t *s, const Elf64_Phdr *ph, size_t nph, const char *name, km_err_t **err)
{
	size_t k = 0;
	uint64_t prev_end = 0;
	for (size_t i = 0; i < nph; i++) {
		if (ph[i].p_type != PT_LOAD)
			continue;
		if (k >= s->nvmas)
			return km_err_set(err, 0, "%s: corrupt snapshot: more segments than mappings", name);
		km_snap_vma_t *v = &s->vmas[k++];
		uint64_t len = ph[i].p_memsz;
		if (ph[i].p_vaddr != v->nt.start || v->nt.end <= v->nt.start || len != v->nt.end - v->nt.start ||
		    (v->nt.start | len | ph[i].p_offset) & (KM_PAGE_SIZE - 1))
			return km_err_set(err, 0, "%s: corrupt snapshot: segment %zu disagrees with its mapping", name, i);
		if (v->nt.start < KM_PAGE_SIZE || v->nt.end > KM_USER_TOP)
			return km_err_set(err, 0, "%s: segment at %#lx lies outside the program's address space", name,
					  (unsigned long)v->nt.start);
		if (v->nt.start < prev_end)
			return km_err_set(err, 0, "%s: segments overlap at %#lx", name, (unsigned long)v->nt.start);
		prev_end = v->nt.end;
		/* 2.6: a saved segment's bytes in the file may end at its last held page (NT_KM_LAYERS
		 * says what lies below the rest: km_layers_parse checks it). */
		bool short_ok = v->nt.saved && ph[i].p_filesz < len && !(ph[i].p_filesz & (KM_PAGE_SIZE - 1)) &&
				km_snapshot_has(s, KM_SNAPSHOT_MINOR_LAYERS);
		if (ph[i].p_filesz != (v->nt.saved ? len : 0) && !short_ok)
			return km_err_set(err, 0, "%s: corrupt snapshot: segment %zu has %#lx bytes for %#lx", name, i,
					  (unsigned long)ph[i].p_filesz, (unsigned long)len);
		if (ph[i].p_offset > s->file_size || ph[i].p_filesz > s->file_size - ph[i].p_offset)
			return km_err_set(err, 0, "%s: truncated snapshot: segment %zu ends past the end of the file", name,
					  i);
		v->file_off = ph[i].p_offset;
		v->file_len = ph[i].p_filesz;
		memcpy(&v->crc, s->segment_crcs + 4 * (k - 1), sizeof(v->crc));
		s->saved_bytes += ph[i].p_filesz;
		if (ph[i].p_filesz > 0 && ph[i].p_offset + ph[i].p_filesz > s->saved_end)
			s->saved_end = ph[i].p_offset + ph[i].p_filesz;
	}
	/* k == nvmas here: parse_vma refuses more mapping notes than segments, the loop fewer */
	return 0;
}

/* The format version: the first 4 bytes of NT_KM_PROC in every major. False if there is none. */
static bool proc_version(const km_snapshot_t *s, uint32_t *version)
{
	size_t pos = 0;
	bool bad = false;
	note_t n;
	while (next_note(s->notes, s->notes_len, &pos, &n, &bad))
		if (strcmp(n.owner, KM_NOTE_OWNER) == 0 && n.type == NT_KM_PROC && n.len >= sizeof(*version)) {
			memcpy(version, n.desc, sizeof(*version));
			return true;
		}
	return false;
}

/* Every minor of km's own major is read (what a newer minor added is skipped); another major
 * is refused, saying which km can resume it. */
static int check_version(uint32_t version, const char *name, km_err_t **err)
{
	uint32_t major = KM_SNAPSHOT_MAJOR_OF(version), minor = KM_SNAPSHOT_MINOR_OF(version);
	if (major == KM_SNAPSHOT_MAJOR)
		return 0;
	return km_err_set(err, 0, "%s: snapshot format %u.%u is %s than this km reads (%u.x): resume it with %s km", name,
			  major, minor, major > KM_SNAPSHOT_MAJOR ? "newer" : "older", KM_SNAPSHOT_MAJOR,
			  major > KM_SNAPSHOT_MAJOR ? "a newer" : "an older");
}

/* The first note is not NT_KM_CHECKSUM (and the file's major is km's own): a core km did not
 * write, or a damaged snapshot. */
static int no_checksum(const km_snapshot_t *s, const char *name, km_err_t **err)
{
	if (has_km_proc(s))
		return km_err_set(err, 0, "%s: corrupt snapshot: the notes do not start with NT_KM_CHECKSUM", name);
	size_t pos = 0;
	bool bad = false;
	note_t n;
	while (next_note(s->notes, s->notes_len, &pos, &n, &bad))
		;
	if (bad) /* a malformed note hides whatever follows it: do not call the file foreign */
		return km_err_set(err, 0, "%s: corrupt snapshot: corrupt note", name);
	return km_err_set(err, 0, "%s: an ELF core file, but not a km snapshot (no km notes)", name);
}

/* NT_KM_CHECKSUM, the first note: its header_crc must match the bytes from the file's start to
 * the end of the notes (read again from the file: the ELF header and program headers are in
 * that range too) before anything in them is trusted. Keeps the segment checksums. */
static int check_header_sum(km_snapshot_t *s, const Elf64_Ehdr *eh, const Elf64_Phdr *ph, const Elf64_Phdr *note,
			    const char *name, km_err_t **err)
{
	size_t pos = 0;
	bool bad = false;
	note_t n;
	if (!next_note(s->notes, s->notes_len, &pos, &n, &bad) || strcmp(n.owner, KM_NOTE_OWNER) != 0 ||
	    n.type != NT_KM_CHECKSUM)
		return no_checksum(s, name, err);
	km_nt_checksum_t c;
	if (n.len < sizeof(c))
		return km_err_set(err, 0, "%s: corrupt snapshot: bad NT_KM_CHECKSUM note", name);
	memcpy(&c, n.desc, sizeof(c));
	uint64_t covered = note->p_offset + note->p_filesz;
	if (c.algorithm != KM_CHECKSUM_CRC32C || c.covered != covered || (n.len - sizeof(c)) % 4 != 0 ||
	    (n.len - sizeof(c)) / 4 != c.nsegments)
		return km_err_set(err, 0, "%s: corrupt snapshot: bad NT_KM_CHECKSUM note", name);
	/* Laid out as km writes it, so that the checksum covers exactly the bytes parsed, as they
	 * were read once: the program headers right after the ELF header, the notes right after
	 * them. */
	if (eh->e_phoff != sizeof(*eh) || note->p_offset != sizeof(*eh) + (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr))
		return km_err_set(err, 0, "%s: corrupt snapshot: the program headers and notes do not follow the ELF header",
				  name);
	size_t field = (size_t)(n.desc - s->notes) + offsetof(km_nt_checksum_t, header_crc);
	uint32_t crc = km_snapshot_header_crc(eh, ph, eh->e_phnum, s->notes, s->notes_len, field);
	if (crc != c.header_crc)
		return km_err_set(err, 0,
				  "%s: corrupt snapshot: its ELF header, program headers or notes changed since it was "
				  "written (checksum %#010x, expected %#010x)",
				  name, crc, c.header_crc);
	s->segment_crcs = n.desc + sizeof(c);
	s->nsegment_crcs = c.nsegments;
	return 0;
}

static int read_notes(km_snapshot_t *s, const Elf64_Ehdr *eh, const Elf64_Phdr *ph, size_t nph, const char *name,
		      km_err_t **err)
{
	const Elf64_Phdr *note = NULL;
	size_t loads = 0;
	for (size_t i = 0; i < nph; i++) {
		if (ph[i].p_type == PT_NOTE && note == NULL)
			note = &ph[i];
		loads += ph[i].p_type == PT_LOAD;
	}
	if (note == NULL)
		return km_err_set(err, 0, "%s: not a km snapshot: no notes", name);
	if (note->p_filesz > MAX_NOTES_LEN || note->p_offset > s->file_size ||
	    note->p_filesz > s->file_size - note->p_offset)
		return km_err_set(err, 0, "%s: truncated snapshot: notes past the end of the file", name);
	s->notes_len = note->p_filesz;
	/* Exact sizes (no slack byte) so ASan sees an off-by-one read in the parsers. */
	s->notes = malloc(s->notes_len > 0 ? s->notes_len : 1);
	s->vmas = calloc(loads > 0 ? loads : 1, sizeof(*s->vmas));
	if (s->notes == NULL || s->vmas == NULL)
		return km_err_set(err, ENOMEM, "%s: reading the notes", name);
	if (!read_exact(s->fd, s->notes, s->notes_len, note->p_offset))
		return km_err_set(err, errno, "%s: reading the notes", name);
	/* The version is checked before any other note is parsed (another major's notes may not
	 * parse as this one's). It is read before the checksum is checked, but then trusted only to
	 * explain a file the checksum refuses: another major may checksum its notes otherwise or,
	 * as format 1, not at all. */
	uint32_t version;
	bool versioned = proc_version(s, &version);
	if (check_header_sum(s, eh, ph, note, name, err) < 0) {
		if (versioned && KM_SNAPSHOT_MAJOR_OF(version) != KM_SNAPSHOT_MAJOR) {
			km_err_free(err);
			return check_version(version, name, err);
		}
		return -1;
	}
	if (versioned && check_version(version, name, err) < 0)
		return -1;
	if (s->nsegment_crcs != loads)
		return km_err_set(err, 0, "%s: corrupt snapshot: %u segment checksums for %zu segments", name,
				  s->nsegment_crcs, loads);
	const char *why = NULL;
	int rc = parse_notes(s, loads, &why);
	if (rc == -2)
		return km_err_set(err, 0, "%s: an ELF core file, but not a km snapshot (no km notes)", name);
	if (rc < 0)
		return km_err_set(err, 0, "%s: corrupt snapshot: %s", name, why);
	return 0;
}

/* 2.6: the held pages of each segment and the parent, once the segments are known. A 2.6 file
 * without the note holds every page (a core). */
static int check_layers(km_snapshot_t *s, const char *name, km_err_t **err)
{
	const char *why = NULL;
	if (s->layers_desc != NULL && km_layers_parse(s, s->layers_desc, s->layers_len, &why) < 0)
		return km_err_set(err, 0, "%s: corrupt snapshot: %s", name, why);
	for (size_t i = 0; i < s->nvmas; i++)
		if (s->vmas[i].nt.saved && s->vmas[i].below == KM_BELOW_NONE &&
		    s->vmas[i].file_len != s->vmas[i].nt.end - s->vmas[i].nt.start)
			return km_err_set(err, 0, "%s: corrupt snapshot: segment %zu lacks bytes and has nothing below it",
					  name, i + 1);
	return 0;
}

int km_snapshot_open_fd(int fd, const char *name, km_snapshot_t *s, km_err_t **err)
{
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return km_err_set(err, errno, "%s", name);
	if (!S_ISREG(st.st_mode))
		return km_err_set(err, 0, "%s: not a regular file", name);
	s->file_size = (uint64_t)st.st_size;
	Elf64_Ehdr eh;
	if (!read_exact(fd, &eh, sizeof(eh), 0))
		return km_err_set(err, 0, "%s: not an ELF file (too short)", name);
	if (check_ehdr(&eh, s->file_size, name, err) < 0)
		return -1;
	Elf64_Phdr *ph = malloc(eh.e_phnum * sizeof(*ph));
	if (ph == NULL)
		return km_err_set(err, ENOMEM, "%s: program headers", name);
	int rc = -1;
	if (!read_exact(fd, ph, eh.e_phnum * sizeof(*ph), eh.e_phoff))
		km_err_set(err, errno, "%s: reading program headers", name);
	else if (read_notes(s, &eh, ph, eh.e_phnum, name, err) == 0 && check_complete(s, name, err) == 0 &&
		 check_loads(s, ph, eh.e_phnum, name, err) == 0 && check_layers(s, name, err) == 0)
		rc = 0;
	free(ph);
	return rc;
}

int km_snapshot_open(const char *path, km_snapshot_t *s, km_err_t **err)
{
	/* In km's range: a resume closes every fd below it that is not the program's. */
	int fd = km_fd_reserve(open(path, O_RDONLY | O_CLOEXEC));
	if (fd < 0) {
		memset(s, 0, sizeof(*s));
		s->fd = -1;
		return km_err_set(err, errno, "%s", path);
	}
	return km_snapshot_open_fd(fd, path, s, err);
}

int km_snapshot_verify(const km_snapshot_t *s, const char *name, uint64_t *bytes, km_err_t **err)
{
	uint64_t done = 0;
	for (size_t i = 0; i < s->nvmas; i++) {
		const km_snap_vma_t *v = &s->vmas[i];
		uint32_t crc;
		if (km_snapshot_segment_crc(s->fd, v->file_off, v->file_len, &crc) < 0)
			return km_err_set(err, errno, "%s: reading the segment at %#lx", name, (unsigned long)v->nt.start);
		/* 2.6: a segment whose bytes end at its last held page is summed over its whole size,
		 * the rest as zeros (the writer folds pages it does not hold in as zeros) */
		if (v->file_len > 0 && v->held != NULL)
			crc = km_crc32c_zeros(crc, v->nt.end - v->nt.start - v->file_len);
		if (crc != v->crc)
			return km_err_set(err, 0,
					  "%s: corrupt snapshot: memory of segment %zu (%#lx-%#lx, file offset %#lx) "
					  "changed since it was written (checksum %#010x, expected %#010x)",
					  name, i + 1, (unsigned long)v->nt.start, (unsigned long)v->nt.end,
					  (unsigned long)v->file_off, crc, v->crc);
		done += v->file_len;
	}
	if (bytes != NULL)
		*bytes = done;
	return 0;
}

bool km_snapshot_has(const km_snapshot_t *s, uint32_t minor)
{
	return KM_SNAPSHOT_MINOR_OF(s->proc.version) >= minor;
}

void km_snapshot_close(km_snapshot_t *s)
{
	/* The chain below, nearest first, without recursion (a chain is at most
	 * KM_LAYERS_MAX_DEPTH, but a loop over it costs nothing). */
	for (km_snapshot_t *p = s->parent, *next; p != NULL; p = next) {
		next = p->parent;
		p->parent = NULL;
		km_snapshot_close(p);
		free(p);
	}
	s->parent = NULL;
	free(s->name);
	s->name = NULL;
	if (s->fd >= 0)
		close(s->fd);
	free(s->notes);
	free(s->vmas);
	s->fd = -1;
	s->notes = NULL;
	s->vmas = NULL;
}

bool km_snapshot_is_snapshot(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	Elf64_Ehdr eh;
	bool core = read_exact(fd, &eh, sizeof(eh), 0) && memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 &&
		    eh.e_type == ET_CORE;
	close(fd);
	return core;
}
