/*
 * Unit tests for km_snapshot_read.c, the snapshot loader, on bad input.
 *
 * - Replays every file in tests/fuzz/regressions/ (inputs that once made the loader crash, hang
 *   or leak, found by tests/fuzz/fuzz_snapshot.c) and tests/fuzz/corpus/ (the fuzzer's seeds:
 *   real km snapshots and cores cut down to headers and notes, a kernel core file, ...): each
 *   must be accepted, or refused with an error object whose message names the file.
 * - Targeted corruptions of a real snapshot's headers and notes (the corpus seed
 *   snapshot-compact, which the loader accepts): truncated at every 64 bytes, km's notes renamed, two segments overlapping, vCPU ids out of range or repeated,
 *   the most vCPU and XSAVE notes the loader takes and one more, an oversized NT_AUXV. These
 *   are resealed (km_snapshot_reseal) before opening, so that the checksum does not hide them.
 * - Format versions (MAJOR.MINOR): the seed, written before minors existed, reads as 2.0; 2.1 and
 *   2.7 (with km notes of unknown types) are read; majors 0, 1, 3 and more are refused with
 *   their version and which km reads them.
 * - The checksums (NT_KM_CHECKSUM): every changed bit in the headers and notes refused, the
 *   message of a change only the checksum sees, a missing checksum note, format 1;
 *   km_snapshot_verify on segments with a hole, then with a changed byte.
 *
 * The tests find tests/fuzz/ through $KM_SRC (the source tree) or, without it, by walking up
 * from the working directory (make check runs from the repository root). No KVM is needed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "km_crc32c.h"
#include "km_runtime_layout.h"
#include "km_snapshot.h"

#define SEED "snapshot-compact"
#define PAGE 4096ul

/* --- finding and reading files ----------------------------------------------------------- */

/* The directory holding tests/fuzz/corpus: $KM_SRC, or the working directory or a parent. */
static const char *src_root(void)
{
	static char root[PATH_MAX];
	if (root[0] != '\0')
		return root;
	char probe[PATH_MAX + 32];
	const char *env = getenv("KM_SRC");
	if (env != NULL && env[0] != '\0') {
		snprintf(root, sizeof(root), "%s", env);
		return root;
	}
#ifdef KM_SRC_DIR
	snprintf(probe, sizeof(probe), "%s/tests/fuzz/corpus", KM_SRC_DIR);
	if (access(probe, R_OK) == 0) {
		snprintf(root, sizeof(root), "%s", KM_SRC_DIR);
		return root;
	}
#endif
	char cwd[PATH_MAX];
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return NULL;
	for (;;) {
		snprintf(probe, sizeof(probe), "%s/tests/fuzz/corpus", cwd);
		if (access(probe, R_OK) == 0) {
			snprintf(root, sizeof(root), "%s", cwd);
			return root;
		}
		char *slash = strrchr(cwd, '/');
		if (slash == NULL || slash == cwd)
			return NULL;
		*slash = '\0';
	}
}

/* tests/fuzz/<sub> under the source tree; fails the test if the tree cannot be found. */
static const char *fuzz_dir(const char *sub)
{
	static char p[PATH_MAX + 64];
	const char *root = src_root();
	if (root == NULL)
		fail_msg("cannot find tests/fuzz/corpus: set KM_SRC to the source tree");
	snprintf(p, sizeof(p), "%s/tests/fuzz/%s", root, sub);
	return p;
}

static uint8_t *read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail_msg("%s: %s", path, strerror(errno));
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	uint8_t *buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	size_t done = 0;
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);
		assert_true(n > 0);
		done += (size_t)n;
	}
	close(fd);
	*len = done;
	return buf;
}

/* tests/fuzz/corpus/<name> (to free). */
static char *corpus_file(const char *name)
{
	char *p = NULL;
	if (asprintf(&p, "%s/%s", fuzz_dir("corpus"), name) < 0)
		fail_msg("out of memory");
	return p;
}

/* --- opening ----------------------------------------------------------------------------- */

/* Opens `len` bytes as a snapshot called `name` (through a memfd, as the fuzz target does),
 * exactly as they are. Checks the error contract: 0 and no error, or -1 and an error whose
 * message names the file. Returns rc; the message, if any, is copied to msg. */
static int open_raw(const void *bytes, size_t len, const char *name, char *msg, size_t msg_size)
{
	int fd = memfd_create("snapshot-test", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, bytes, len), (ssize_t)len);
	km_snapshot_t *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	km_err_t *err = NULL;
	int rc = km_snapshot_open_fd(fd, name, s, &err);
	if (msg_size > 0)
		msg[0] = '\0';
	if (rc == 0) {
		assert_null(err);
		assert_true(s->nvmas > 0 && s->ncpus > 0);
	} else {
		assert_int_equal(rc, -1);
		assert_non_null(err);
		assert_non_null(err->msg);
		if (strstr(err->msg, name) == NULL)
			fail_msg("%s: message does not name the file: %s", name, err->msg);
		if (msg_size > 0)
			snprintf(msg, msg_size, "%s", err->msg);
	}
	km_snapshot_close(s);
	free(s);
	km_err_free(&err);
	return rc;
}

/* open_raw on a copy whose header checksum is recomputed first (when it has an NT_KM_CHECKSUM
 * note): a test that damages a field on purpose reaches the check for that field. */
static int open_bytes(const void *bytes, size_t len, const char *name, char *msg, size_t msg_size)
{
	uint8_t *copy = malloc(len > 0 ? len : 1);
	assert_non_null(copy);
	memcpy(copy, bytes, len);
	km_snapshot_reseal(copy, len);
	int rc = open_raw(copy, len, name, msg, msg_size);
	free(copy);
	return rc;
}

/* Expects `bytes` refused with a message containing `part`. */
static void expect_refused(const void *bytes, size_t len, const char *name, const char *part)
{
	char msg[1024];
	if (open_bytes(bytes, len, name, msg, sizeof(msg)) == 0)
		fail_msg("%s: accepted, expected an error containing '%s'", name, part);
	if (strstr(msg, part) == NULL)
		fail_msg("%s: expected '%s' in: %s", name, part, msg);
}

/* Expects `bytes`, exactly as they are, refused with a message containing `part`. */
static void expect_refused_raw(const void *bytes, size_t len, const char *name, const char *part)
{
	char msg[1024];
	if (open_raw(bytes, len, name, msg, sizeof(msg)) == 0)
		fail_msg("%s: accepted, expected an error containing '%s'", name, part);
	if (strstr(msg, part) == NULL)
		fail_msg("%s: expected '%s' in: %s", name, part, msg);
}

/* Replays every file of tests/fuzz/<sub>, by path (km_snapshot_open) and through a memfd.
 * Returns how many there were. */
static int replay_dir(const char *sub, bool must_exist)
{
	char dirpath[PATH_MAX + 64];
	snprintf(dirpath, sizeof(dirpath), "%s", fuzz_dir(sub));
	DIR *d = opendir(dirpath);
	if (d == NULL) {
		if (must_exist)
			fail_msg("%s: %s", dirpath, strerror(errno));
		return 0;
	}
	int count = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char path[PATH_MAX + 320];
		snprintf(path, sizeof(path), "%s/%s", dirpath, e->d_name);
		struct stat st;
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		print_message("  %s/%s\n", sub, e->d_name);

		km_snapshot_t *s = calloc(1, sizeof(*s));
		assert_non_null(s);
		km_err_t *err = NULL;
		int rc = km_snapshot_open(path, s, &err);
		if (rc == 0) {
			assert_null(err);
		} else {
			assert_int_equal(rc, -1);
			assert_non_null(err);
			if (strstr(err->msg, path) == NULL)
				fail_msg("%s: message does not name the file: %s", path, err->msg);
		}
		km_snapshot_close(s);
		free(s);
		km_err_free(&err);

		size_t len;
		uint8_t *bytes = read_file(path, &len);
		assert_int_equal(open_raw(bytes, len, e->d_name, NULL, 0), rc);
		free(bytes);
		count++;
	}
	closedir(d);
	return count;
}

/* --- finding fields in a snapshot's bytes -------------------------------------------------- */

static Elf64_Phdr *phdr(uint8_t *buf, size_t len, uint32_t type, int nth)
{
	Elf64_Ehdr eh;
	assert_true(len >= sizeof(eh));
	memcpy(&eh, buf, sizeof(eh));
	assert_true(eh.e_phoff + (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) <= len);
	assert_true(eh.e_phoff % 8 == 0);
	Elf64_Phdr *ph = (Elf64_Phdr *)(buf + eh.e_phoff);
	for (int i = 0; i < eh.e_phnum; i++)
		if (ph[i].p_type == type && nth-- == 0)
			return &ph[i];
	return NULL;
}

/* The nth note of `owner` and `type` (type 0: any type): its header. *desc: its descriptor. */
static Elf64_Nhdr *find_note(uint8_t *buf, size_t len, const char *owner, uint32_t type, int nth,
			     uint8_t **desc)
{
	Elf64_Phdr *note = phdr(buf, len, PT_NOTE, 0);
	assert_non_null(note);
	assert_true(note->p_offset + note->p_filesz <= len);
	size_t pos = note->p_offset, end = note->p_offset + note->p_filesz;
	while (pos + sizeof(Elf64_Nhdr) <= end) {
		Elf64_Nhdr *nh = (Elf64_Nhdr *)(buf + pos);
		const char *name = (const char *)(nh + 1);
		uint8_t *d = (uint8_t *)name + ((nh->n_namesz + 3) & ~3u);
		if (strcmp(name, owner) == 0 && (type == 0 || nh->n_type == type) && nth-- == 0) {
			*desc = d;
			return nh;
		}
		pos = (size_t)(d - buf) + ((nh->n_descsz + 3) & ~3u);
	}
	return NULL;
}

static uint8_t *seed;
static size_t seed_len;

static int setup(void **state)
{
	(void)state;
	char *path = corpus_file(SEED);
	seed = read_file(path, &seed_len);
	free(path);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(seed);
	seed = NULL;
	return 0;
}

/* --- tests ------------------------------------------------------------------------------ */

static void test_replay_regressions(void **state)
{
	(void)state;
	int n = replay_dir("regressions", false);
	print_message("  %d regression inputs\n", n);
}

static void test_replay_corpus(void **state)
{
	(void)state;
	assert_true(replay_dir("corpus", true) > 0);
}

/* The seed the targeted tests corrupt is itself a snapshot the loader accepts. */
static void test_seed_accepted(void **state)
{
	(void)state;
	char msg[1024];
	if (open_raw(seed, seed_len, SEED, msg, sizeof(msg)) != 0)
		fail_msg("%s refused: %s", SEED, msg);
}

static void test_truncated(void **state)
{
	(void)state;
	static const char *const seeds[] = {SEED, "snapshot-filemaps-compact", "kmcore-compact"};
	for (size_t k = 0; k < sizeof(seeds) / sizeof(seeds[0]); k++) {
		char *path = corpus_file(seeds[k]);
		size_t len;
		uint8_t *bytes = read_file(path, &len);
		free(path);
		for (size_t cut = 0; cut < len; cut += 64) {
			char name[128];
			snprintf(name, sizeof(name), "%s-cut-at-%zu", seeds[k], cut);
			char msg[1024];
			if (open_raw(bytes, cut, name, msg, sizeof(msg)) == 0)
				fail_msg("%s accepted", name);
		}
		free(bytes);
	}
}

static void test_not_km(void **state)
{
	(void)state;
	uint8_t *desc;
	Elf64_Nhdr *nh;
	int renamed = 0;
	while ((nh = find_note(seed, seed_len, KM_NOTE_OWNER, 0, 0, &desc)) != NULL) {
		memcpy((char *)(nh + 1), "XX", 2);
		renamed++;
	}
	assert_true(renamed >= 5);
	expect_refused(seed, seed_len, "no-km-notes", "not a km snapshot");
}

/* Two PT_LOADs (and their NT_KM_VMA notes) made to overlap: the first grows to two pages, the
 * second starts in its second page. */
static void test_overlap(void **state)
{
	(void)state;
	uint8_t *d0, *d1;
	assert_non_null(find_note(seed, seed_len, KM_NOTE_OWNER, NT_KM_VMA, 0, &d0));
	assert_non_null(find_note(seed, seed_len, KM_NOTE_OWNER, NT_KM_VMA, 1, &d1));
	Elf64_Phdr *p0 = phdr(seed, seed_len, PT_LOAD, 0), *p1 = phdr(seed, seed_len, PT_LOAD, 1);
	assert_non_null(p0);
	assert_non_null(p1);
	km_nt_vma_t v0, v1;
	memcpy(&v0, d0, sizeof(v0));
	memcpy(&v1, d1, sizeof(v1));
	assert_true(seed_len >= 2 * PAGE);
	v0.end = v0.start + 2 * PAGE;
	p0->p_memsz = 2 * PAGE;
	p0->p_filesz = v0.saved ? 2 * PAGE : 0;
	v1.start = v0.start + PAGE;
	v1.end = v1.start + PAGE;
	p1->p_vaddr = v1.start;
	p1->p_memsz = PAGE;
	memcpy(d0, &v0, sizeof(v0));
	memcpy(d1, &v1, sizeof(v1));
	expect_refused(seed, seed_len, "overlapping-segments", "overlap");

	/* The same start twice. */
	v1.start = v0.start;
	v1.end = v1.start + PAGE;
	p1->p_vaddr = v1.start;
	memcpy(d1, &v1, sizeof(v1));
	expect_refused(seed, seed_len, "same-start", "overlap");
}

/* A vCPU id indexes the runtime region (per-vCPU GDT, TSS, stacks): before the loader checked
 * it, ids 256..4095 were accepted, KVM created the vCPU and km wrote its GDT/TSS past the
 * runtime's vCPU area; the guest triple-faulted. */
static void test_vcpu_id(void **state)
{
	(void)state;
	uint8_t *desc;
	assert_non_null(find_note(seed, seed_len, KM_NOTE_OWNER, NT_KM_CPU, 0, &desc));
	static const uint32_t bad[] = {KM_MAX_VCPUS, 600, 4095, 0xffffffffu};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memcpy(desc + offsetof(km_nt_cpu_t, vcpu_id), &bad[i], sizeof(bad[i]));
		char name[64];
		snprintf(name, sizeof(name), "vcpu-id-%u", bad[i]);
		expect_refused(seed, seed_len, name, "vCPU id");
	}
	uint32_t last = KM_MAX_VCPUS - 1;
	memcpy(desc + offsetof(km_nt_cpu_t, vcpu_id), &last, sizeof(last));
	char msg[1024];
	if (open_bytes(seed, seed_len, "vcpu-id-255", msg, sizeof(msg)) != 0)
		fail_msg("vCPU id %u refused: %s", last, msg);
}

/* Appends a note (owner, type, desc) to `*buf`, whose notes must end the file (true of the
 * compacted corpus seeds), and grows PT_NOTE to take it. */
static void append_note(uint8_t **buf, size_t *len, const char *owner, uint32_t type, const void *desc,
			size_t desc_len)
{
	Elf64_Phdr *note = phdr(*buf, *len, PT_NOTE, 0);
	assert_non_null(note);
	assert_int_equal(note->p_offset + note->p_filesz, *len);
	Elf64_Nhdr nh = {.n_namesz = (uint32_t)strlen(owner) + 1, .n_descsz = (uint32_t)desc_len, .n_type = type};
	size_t name_pad = (nh.n_namesz + 3) & ~3u, desc_pad = (desc_len + 3) & ~(size_t)3;
	size_t add = sizeof(nh) + name_pad + desc_pad;
	uint8_t *b = realloc(*buf, *len + add);
	assert_non_null(b);
	memset(b + *len, 0, add);
	memcpy(b + *len, &nh, sizeof(nh));
	memcpy(b + *len + sizeof(nh), owner, nh.n_namesz);
	memcpy(b + *len + sizeof(nh) + name_pad, desc, desc_len);
	*buf = b;
	*len += add;
	note = phdr(*buf, *len, PT_NOTE, 0);
	note->p_filesz += add;
}

/* --- format versions --------------------------------------------------------------------- */

/* Writes `version` into the NT_KM_PROC note of buf. */
static void set_version(uint8_t *buf, size_t len, uint32_t version)
{
	uint8_t *desc;
	assert_non_null(find_note(buf, len, KM_NOTE_OWNER, NT_KM_PROC, 0, &desc));
	memcpy(desc + offsetof(km_nt_proc_t, version), &version, sizeof(version));
}

/* Opens `len` bytes (resealed) and fails the test unless they are accepted; to close and free. */
static km_snapshot_t *open_ok(const uint8_t *bytes, size_t len, const char *name)
{
	uint8_t *copy = malloc(len);
	assert_non_null(copy);
	memcpy(copy, bytes, len);
	km_snapshot_reseal(copy, len);
	int fd = memfd_create(name, MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, copy, len), (ssize_t)len);
	free(copy);
	km_snapshot_t *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	km_err_t *err = NULL;
	if (km_snapshot_open_fd(fd, name, s, &err) != 0)
		fail_msg("%s refused: %s", name, err->msg);
	return s;
}

static void close_ok(km_snapshot_t *s)
{
	km_snapshot_close(s);
	free(s);
}

/* --- NT_KM_DYNLINKER (2.4) ---------------------------------------------------------------- */

/* A copy of the seed (an empty NT_KM_DYNLINKER, as every file before 2.4 has) as format `version`
 * with a second NT_KM_DYNLINKER appended: `d`, `nfiles` records for mapping `vma`, and `path`
 * (padded to 8; NULL for none) or `raw_path_len` raw bytes of it. */
static uint8_t *with_dynlinker(size_t *len, uint32_t version, km_nt_dynlinker_t d, uint32_t nfiles, uint32_t vma,
			       const char *path, uint32_t raw_path_len)
{
	uint8_t *desc;
	assert_non_null(find_note(seed, seed_len, KM_NOTE_OWNER, NT_KM_DYNLINKER, 0, &desc));
	size_t plen = path != NULL ? strlen(path) + 1 : 0, padded = raw_path_len ? raw_path_len : (plen + 7) & ~(size_t)7;
	d.nfiles = nfiles;
	d.path_len = (uint32_t)padded;
	size_t n = sizeof(d) + nfiles * sizeof(km_nt_mapfile_t) + padded;
	uint8_t *note = calloc(1, n);
	assert_non_null(note);
	memcpy(note, &d, sizeof(d));
	for (uint32_t i = 0; i < nfiles; i++) {
		km_nt_mapfile_t f = {.vma = vma, .id = {.dev = 1, .ino = 2, .size = 3, .mtime_sec = 4}};
		memcpy(note + sizeof(d) + i * sizeof(f), &f, sizeof(f));
	}
	if (path != NULL)
		memcpy(note + sizeof(d) + nfiles * sizeof(km_nt_mapfile_t), path, plen < padded ? plen : padded);
	*len = seed_len;
	uint8_t *b = malloc(*len);
	assert_non_null(b);
	memcpy(b, seed, *len);
	append_note(&b, len, KM_NOTE_OWNER, NT_KM_DYNLINKER, note, n);
	set_version(b, *len, version);
	free(note);
	return b;
}

static const km_nt_dynlinker_t interp_at = {.base = 0x7ffff7fc3000ul, .entry = 0x7ffff7fe3000ul};

/* The first mapping of the seed that names a file (its program). */
static uint32_t file_vma(void)
{
	size_t len;
	uint8_t *b = with_dynlinker(&len, KM_SNAPSHOT_VERSION, (km_nt_dynlinker_t){0}, 0, 0, NULL, 0);
	km_snapshot_t *s = open_ok(b, len, "dynlinker-none");
	uint32_t i = 0;
	while (i < s->nvmas && s->vmas[i].path == NULL)
		i++;
	assert_true(i < s->nvmas);
	assert_null(s->interp_path);
	close_ok(s);
	free(b);
	return i;
}

static void test_dynlinker(void **state)
{
	(void)state;
	uint32_t v = file_vma();
	size_t len;
	uint8_t *b = with_dynlinker(&len, KM_SNAPSHOT_VERSION, interp_at, 2, v, "/lib64/ld-linux-x86-64.so.2", 0);
	km_snapshot_t *s = open_ok(b, len, "dynlinker");
	assert_string_equal(s->interp_path, "/lib64/ld-linux-x86-64.so.2");
	assert_int_equal(s->dynlinker.base, interp_at.base);
	assert_int_equal(s->nmapfiles, 2);
	km_nt_mapfile_t f;
	memcpy(&f, s->mapfiles + sizeof(f), sizeof(f));
	assert_int_equal(f.vma, v);
	assert_int_equal(f.id.size, 3);
	close_ok(s);
	free(b);
	/* A 2.3 file's note is not read, whatever it holds. */
	b = with_dynlinker(&len, KM_SNAPSHOT_VERSION_OF(2, 3), interp_at, 1, 9999, "relative", 0);
	s = open_ok(b, len, "dynlinker-2.3");
	assert_null(s->interp_path);
	assert_int_equal(s->nmapfiles, 0);
	close_ok(s);
	free(b);
}

/* Hostile NT_KM_DYNLINKER contents: each refused as a bad note or a bad mapping index. */
static void test_dynlinker_bad(void **state)
{
	(void)state;
	uint32_t v = file_vma();
	const char *ld = "/lib64/ld-linux-x86-64.so.2";
	const uint32_t ver = KM_SNAPSHOT_VERSION;
	struct {
		const char *name, *want;
		km_nt_dynlinker_t d;
		uint32_t nfiles, vma;
		const char *path;
		uint32_t raw;
	} cases[] = {
	    {"dl-relative", "NT_KM_DYNLINKER", interp_at, 0, 0, "lib/ld.so", 0},
	    {"dl-no-nul", "NT_KM_DYNLINKER", interp_at, 0, 0, "/lib/ld-12345678", 16},
	    {"dl-odd-len", "NT_KM_DYNLINKER", interp_at, 0, 0, "/lib/ld.so", 11},
	    {"dl-base-no-path", "NT_KM_DYNLINKER", interp_at, 0, 0, NULL, 0},
	    {"dl-no-base", "NT_KM_DYNLINKER", {.entry = 1}, 0, 0, ld, 0},
	    {"dl-base-high", "NT_KM_DYNLINKER", {.base = KM_RT_GVA, .entry = 1}, 0, 0, ld, 0},
	    {"dl-vma-range", "names mapping", interp_at, 1, 100000, ld, 0},
	    {"dl-vma-max", "names mapping", interp_at, 1, UINT32_MAX, ld, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len;
		uint8_t *b = with_dynlinker(&len, ver, cases[i].d, cases[i].nfiles, cases[i].vma, cases[i].path,
					    cases[i].raw);
		expect_refused(b, len, cases[i].name, cases[i].want);
		free(b);
	}
	/* nfiles larger than the note holds (a count that would overflow the size check). */
	size_t len;
	uint8_t *b = with_dynlinker(&len, ver, interp_at, 1, v, ld, 0);
	uint8_t *desc;
	int nth = 1; /* the appended one */
	assert_non_null(find_note(b, len, KM_NOTE_OWNER, NT_KM_DYNLINKER, nth, &desc));
	uint32_t huge[] = {2, 0x10000000u, UINT32_MAX};
	for (size_t i = 0; i < 3; i++) {
		memcpy(desc + offsetof(km_nt_dynlinker_t, nfiles), &huge[i], sizeof(huge[i]));
		expect_refused(b, len, "dl-nfiles", "NT_KM_DYNLINKER");
	}
	free(b);
	/* Two notes with contents. */
	b = with_dynlinker(&len, ver, interp_at, 1, v, ld, 0);
	assert_non_null(find_note(b, len, KM_NOTE_OWNER, NT_KM_DYNLINKER, 1, &desc));
	Elf64_Nhdr *nh = find_note(b, len, KM_NOTE_OWNER, NT_KM_DYNLINKER, 1, &desc);
	size_t n = nh->n_descsz;
	uint8_t *copy = malloc(n);
	memcpy(copy, desc, n);
	append_note(&b, &len, KM_NOTE_OWNER, NT_KM_DYNLINKER, copy, n);
	expect_refused(b, len, "dl-twice", "NT_KM_DYNLINKER");
	free(copy);
	free(b);
}

/* Files km wrote before versions had minors hold a plain 2 (the seed was one such, and is marked
 * so again in case the corpus is remade): they read as 2.0, files without what 2.1 added. */
static void test_version_2_0(void **state)
{
	(void)state;
	set_version(seed, seed_len, 2);
	km_snapshot_t *s = open_ok(seed, seed_len, "format-2.0");
	assert_int_equal(s->proc.version, 2);
	assert_int_equal(KM_SNAPSHOT_MAJOR_OF(s->proc.version), 2);
	assert_int_equal(KM_SNAPSHOT_MINOR_OF(s->proc.version), 0);
	assert_true(km_snapshot_has(s, 0));
	assert_false(km_snapshot_has(s, KM_SNAPSHOT_MINOR_THREADS));
	close_ok(s);
}

/* 2.1 files (the encoding keeps the major where a plain 2 was); km writes 2.5 now. */
static void test_version_2_1(void **state)
{
	(void)state;
	assert_int_equal(KM_SNAPSHOT_VERSION, 0x00060002);
	set_version(seed, seed_len, KM_SNAPSHOT_VERSION_OF(2, 1));
	km_snapshot_t *s = open_ok(seed, seed_len, "format-2.1");
	assert_true(km_snapshot_has(s, KM_SNAPSHOT_MINOR_THREADS));
	assert_false(km_snapshot_has(s, KM_SNAPSHOT_MINOR_SECCOMP));
	assert_false(km_snapshot_has(s, KM_SNAPSHOT_MINOR_FILES));
	close_ok(s);
}

/* A newer minor of the same major, with a km note of a type this km does not know (and one of
 * another owner), is read: the unknown notes are skipped. */
static void test_version_newer_minor(void **state)
{
	(void)state;
	size_t len = seed_len;
	uint8_t *b = malloc(len);
	assert_non_null(b);
	memcpy(b, seed, len);
	static const uint8_t future[40] = {1, 2, 3, 4, 5};
	append_note(&b, &len, KM_NOTE_OWNER, 0x4b4d00f7, future, sizeof(future));
	append_note(&b, &len, KM_NOTE_OWNER, 0x4b4d00f8, future, 0);
	append_note(&b, &len, "FUTURE", 1, future, 13);
	set_version(b, len, KM_SNAPSHOT_VERSION_OF(2, 7));
	km_snapshot_t *s = open_ok(b, len, "format-2.7");
	assert_int_equal(KM_SNAPSHOT_MINOR_OF(s->proc.version), 7);
	assert_true(km_snapshot_has(s, KM_SNAPSHOT_MINOR_THREADS));
	assert_true(km_snapshot_has(s, 7));
	assert_false(km_snapshot_has(s, 8));
	close_ok(s);
	/* A 2.0 file with the same unknown notes reads too: it is the note, not the minor, that is skipped. */
	set_version(b, len, 2);
	close_ok(open_ok(b, len, "format-2.0-unknown-notes"));
	free(b);
}

/* Another major is refused with one line naming the file's version and the km that reads it,
 * also when its notes would not parse as this major's (a second NT_KM_PROC) and when its
 * checksum does not match (another major may checksum otherwise, or, as format 1, not at all). */
static void test_version_other_major(void **state)
{
	(void)state;
	set_version(seed, seed_len, KM_SNAPSHOT_VERSION_OF(3, 0));
	expect_refused(seed, seed_len, "f3",
		       "f3: snapshot format 3.0 is newer than this km reads (2.x): resume it with a newer km");
	expect_refused_raw(seed, seed_len, "f3-raw", "f3-raw: snapshot format 3.0 is newer than this km reads");
	set_version(seed, seed_len, KM_SNAPSHOT_VERSION_OF(3, 2));
	expect_refused(seed, seed_len, "f3.2", "snapshot format 3.2 is newer than this km reads (2.x)");
	set_version(seed, seed_len, 42);
	expect_refused(seed, seed_len, "f42", "snapshot format 42.0 is newer");
	set_version(seed, seed_len, 0xffffffffu);
	expect_refused(seed, seed_len, "fmax", "snapshot format 65535.65535 is newer");
	set_version(seed, seed_len, 1);
	expect_refused(seed, seed_len, "f1",
		       "f1: snapshot format 1.0 is older than this km reads (2.x): resume it with an older km");
	set_version(seed, seed_len, KM_SNAPSHOT_VERSION_OF(1, 3));
	expect_refused(seed, seed_len, "f1.3", "snapshot format 1.3 is older than this km reads (2.x)");
	set_version(seed, seed_len, 0);
	expect_refused(seed, seed_len, "f0", "snapshot format 0.0 is older than this km reads (2.x)");

	size_t len = seed_len;
	uint8_t *b = malloc(len);
	assert_non_null(b);
	memcpy(b, seed, len);
	uint8_t *desc;
	assert_non_null(find_note(b, len, KM_NOTE_OWNER, NT_KM_PROC, 0, &desc));
	uint8_t proc[sizeof(km_nt_proc_t) + 8];
	memcpy(proc, desc, sizeof(km_nt_proc_t));
	append_note(&b, &len, KM_NOTE_OWNER, NT_KM_PROC, proc, sizeof(proc));
	set_version(b, len, KM_SNAPSHOT_VERSION_OF(3, 0));
	expect_refused(b, len, "f3-notes", "snapshot format 3.0 is newer than this km reads (2.x)");
	set_version(b, len, 2);
	expect_refused(b, len, "f2-notes", "bad NT_KM_PROC note");
	free(b);
}

/* The seed with `ncpu` NT_KM_CPU notes (ids from ids[], or 0, 1, 2, ... when NULL), `nxsave`
 * NT_X86_XSTATE notes and NT_KM_PROC.nvcpus = ncpu. */
static uint8_t *with_cpus(uint32_t ncpu, uint32_t nxsave, const uint32_t *ids, size_t *len)
{
	uint8_t *buf = malloc(seed_len), *desc;
	assert_non_null(buf);
	memcpy(buf, seed, seed_len);
	*len = seed_len;
	Elf64_Nhdr *xh = find_note(buf, *len, "LINUX", NT_X86_XSTATE, 0, &desc);
	assert_non_null(xh);
	size_t xlen = xh->n_descsz;
	uint8_t *xsave = malloc(xlen);
	assert_non_null(xsave);
	memcpy(xsave, desc, xlen);
	assert_non_null(find_note(buf, *len, KM_NOTE_OWNER, NT_KM_CPU, 0, &desc));
	km_nt_cpu_t cpu;
	memcpy(&cpu, desc, sizeof(cpu));
	cpu.vcpu_id = ids != NULL ? ids[0] : 0;
	memcpy(desc, &cpu, sizeof(cpu));
	uint32_t tid0 = cpu.tid;
	for (uint32_t i = 1; i < ncpu; i++) {
		cpu.vcpu_id = ids != NULL ? ids[i] : i;
		cpu.tid = tid0 + i; /* every thread its own id */
		append_note(&buf, len, KM_NOTE_OWNER, NT_KM_CPU, &cpu, sizeof(cpu));
	}
	for (uint32_t i = 1; i < nxsave; i++)
		append_note(&buf, len, "LINUX", NT_X86_XSTATE, xsave, xlen);
	free(xsave);
	assert_non_null(find_note(buf, *len, KM_NOTE_OWNER, NT_KM_PROC, 0, &desc));
	memcpy(desc + offsetof(km_nt_proc_t, nvcpus), &ncpu, sizeof(ncpu));
	return buf;
}

/* The edges of the loader's fixed arrays: KM_SNAP_MAX_VCPUS vCPU and XSAVE notes fit, one more
 * of either is refused; a vCPU without FPU state and a repeated id are refused. */
static void test_many_cpus(void **state)
{
	(void)state;
	size_t len;
	uint8_t *b = with_cpus(KM_SNAP_MAX_VCPUS, KM_SNAP_MAX_VCPUS, NULL, &len);
	char msg[1024];
	if (open_bytes(b, len, "256-vcpus", msg, sizeof(msg)) != 0)
		fail_msg("256 vCPUs refused: %s", msg);
	free(b);

	b = with_cpus(KM_SNAP_MAX_VCPUS + 1, KM_SNAP_MAX_VCPUS + 1, NULL, &len);
	expect_refused(b, len, "257-vcpus", "bad NT_KM_CPU note");
	free(b);

	b = with_cpus(1, KM_SNAP_MAX_VCPUS + 1, NULL, &len);
	expect_refused(b, len, "257-xsave-notes", "bad NT_X86_XSTATE note");
	free(b);

	b = with_cpus(2, 1, NULL, &len);
	expect_refused(b, len, "2-vcpus-1-xsave", "no FPU state");
	free(b);

	static const uint32_t twice[] = {7, 7};
	b = with_cpus(2, 2, twice, &len);
	expect_refused(b, len, "repeated-vcpu-id", "repeated vCPU id 7");
	free(b);

	static const uint32_t two[] = {0, 1};
	b = with_cpus(2, 2, two, &len);
	if (open_bytes(b, len, "2-vcpus", msg, sizeof(msg)) != 0)
		fail_msg("2 vCPUs refused: %s", msg);
	/* Two threads with one id: refused (signals and futexes name threads by id). */
	uint8_t *d2;
	assert_non_null(find_note(b, len, KM_NOTE_OWNER, NT_KM_CPU, 1, &d2));
	km_nt_cpu_t c1;
	memcpy(&c1, d2, sizeof(c1));
	c1.tid--;
	memcpy(d2, &c1, sizeof(c1));
	km_snapshot_reseal(b, len);
	expect_refused(b, len, "repeated-tid", "bad thread ids");
	free(b);
}

/* A second NT_AUXV of 4112 bytes (past the loader's 4096) and one of odd size. */
static void test_auxv(void **state)
{
	(void)state;
	size_t len = seed_len;
	uint8_t *b = malloc(len);
	assert_non_null(b);
	memcpy(b, seed, len);
	static uint8_t big[4112];
	append_note(&b, &len, "CORE", NT_AUXV, big, sizeof(big));
	expect_refused(b, len, "big-auxv", "bad NT_AUXV note");
	free(b);

	len = seed_len;
	b = malloc(len);
	assert_non_null(b);
	memcpy(b, seed, len);
	append_note(&b, &len, "CORE", NT_AUXV, big, 24);
	expect_refused(b, len, "odd-auxv", "bad NT_AUXV note");
	free(b);
}


/* --- checksums ---------------------------------------------------------------------------- */

/* End of the notes: what NT_KM_CHECKSUM's header checksum covers. */
static size_t covered_len(uint8_t *buf, size_t len)
{
	Elf64_Phdr *note = phdr(buf, len, PT_NOTE, 0);
	assert_non_null(note);
	return (size_t)(note->p_offset + note->p_filesz);
}

/* Every single-bit change anywhere in the ELF header, program headers or notes is refused (a
 * CRC catches every one), whatever check sees it first. */
static void test_checksum_every_byte(void **state)
{
	(void)state;
	size_t covered = covered_len(seed, seed_len);
	for (size_t i = 0; i < covered; i++) {
		uint8_t bit = (uint8_t)(1u << (i % 8));
		seed[i] ^= bit;
		char name[64], msg[1024];
		snprintf(name, sizeof(name), "flip-at-%zu", i);
		if (open_raw(seed, seed_len, name, msg, sizeof(msg)) == 0)
			fail_msg("%s: a changed bit at offset %zu was accepted", name, i);
		seed[i] ^= bit;
	}
	char msg[1024];
	assert_int_equal(open_raw(seed, seed_len, SEED, msg, sizeof(msg)), 0);
}

/* A change no other check notices (e_flags, a PT_LOAD's p_align, a byte of the label) is
 * refused by the checksum, with a message saying so. */
static void test_checksum_message(void **state)
{
	(void)state;
	seed[offsetof(Elf64_Ehdr, e_flags)] ^= 1;
	expect_refused_raw(seed, seed_len, "ehdr-flags", "changed since it was written");
	seed[offsetof(Elf64_Ehdr, e_flags)] ^= 1;
	Elf64_Phdr *load = phdr(seed, seed_len, PT_LOAD, 0);
	assert_non_null(load);
	load->p_align ^= 0x100000;
	expect_refused_raw(seed, seed_len, "phdr-align", "changed since it was written");
	load->p_align ^= 0x100000;
	uint8_t *desc;
	Elf64_Nhdr *nh = find_note(seed, seed_len, "CORE", NT_PRPSINFO, 0, &desc);
	assert_non_null(nh);
	desc[nh->n_descsz - 1] ^= 0x20;
	expect_refused_raw(seed, seed_len, "note-prpsinfo", "changed since it was written");
	desc[nh->n_descsz - 1] ^= 0x20;
}

/* A file of format 1 (no NT_KM_CHECKSUM note) is refused for its version, not as corrupt; a
 * format-2 file whose checksum note is gone is corrupt. */
static void test_checksum_missing(void **state)
{
	(void)state;
	uint8_t *desc, *pdesc;
	Elf64_Nhdr *nh = find_note(seed, seed_len, KM_NOTE_OWNER, NT_KM_CHECKSUM, 0, &desc);
	assert_non_null(nh);
	nh->n_type = 0x4b4d00fe;
	expect_refused_raw(seed, seed_len, "no-checksum-note", "do not start with NT_KM_CHECKSUM");
	assert_non_null(find_note(seed, seed_len, KM_NOTE_OWNER, NT_KM_PROC, 0, &pdesc));
	uint32_t v = 1;
	memcpy(pdesc + offsetof(km_nt_proc_t, version), &v, sizeof(v));
	expect_refused_raw(seed, seed_len, "version-1", "version-1: snapshot format 1.0 is older than this km reads");
}

/* km_snapshot_verify: the seed with every segment's page moved to its own page after the notes
 * (the first left a hole), the segment checksums set to match: verified; then a byte of the
 * second segment's data changed: refused, naming that segment and its address. */
static void test_verify(void **state)
{
	(void)state;
	size_t base = (seed_len + PAGE - 1) & ~(PAGE - 1);
	int nloads = 0;
	while (phdr(seed, seed_len, PT_LOAD, nloads) != NULL)
		nloads++;
	assert_true(nloads >= 2);
	size_t len = base + (size_t)nloads * PAGE;
	uint8_t *b = calloc(1, len);
	assert_non_null(b);
	memcpy(b, seed, seed_len);
	uint8_t *desc;
	assert_non_null(find_note(b, len, KM_NOTE_OWNER, NT_KM_CHECKSUM, 0, &desc));
	uint8_t *crcs = desc + sizeof(km_nt_checksum_t);
	for (int k = 0; k < nloads; k++) {
		Elf64_Phdr *ph = phdr(b, len, PT_LOAD, k);
		ph->p_offset = base + (size_t)k * PAGE;
		uint8_t *page = b + ph->p_offset;
		if (k > 0)
			for (size_t i = 0; i < PAGE; i++)
				page[i] = (uint8_t)(i * 7 + (size_t)k);
		uint32_t crc = ph->p_filesz ? km_crc32c(0, page, PAGE) : 0;
		memcpy(crcs + 4 * k, &crc, sizeof(crc));
	}
	assert_true(km_snapshot_reseal(b, len));

	/* A real file, so the hole is a hole (SEEK_DATA). */
	int fd = memfd_create("verify", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)len), 0);
	assert_int_equal(pwrite(fd, b, base, 0), (ssize_t)base);
	assert_int_equal(pwrite(fd, b + base + PAGE, len - base - PAGE, (off_t)(base + PAGE)),
			 (ssize_t)(len - base - PAGE));
	km_snapshot_t *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	km_err_t *err = NULL;
	if (km_snapshot_open_fd(fd, "verify", s, &err) < 0)
		fail_msg("%s", err->msg);
	uint64_t bytes = 0;
	if (km_snapshot_verify(s, "verify", &bytes, &err) < 0)
		fail_msg("%s", err->msg);
	assert_true(bytes > 0);

	Elf64_Phdr *second = phdr(b, len, PT_LOAD, 1);
	uint8_t x = 0xff;
	assert_int_equal(pwrite(s->fd, &x, 1, (off_t)(second->p_offset + 100)), 1);
	assert_int_equal(km_snapshot_verify(s, "verify", &bytes, &err), -1);
	char where[64];
	snprintf(where, sizeof(where), "segment 2 (%#lx-", (unsigned long)second->p_vaddr);
	if (strstr(err->msg, where) == NULL || strstr(err->msg, "verify") == NULL)
		fail_msg("expected '%s' in: %s", where, err->msg);
	km_err_free(&err);
	km_snapshot_close(s);
	free(s);
	free(b);
}

/* A page left to a mapping's file (KM_BELOW_FILE) lies wholly inside it by its recorded size:
 * the layers seed (a program's text below its file) is accepted as written, and refused once its
 * files are recorded as empty (mapped, those pages would be past the file's end: SIGBUS). */
static void test_layers_below_file_past_end(void **state)
{
	(void)state;
	size_t len;
	char *path = corpus_file("snapshot-layers-file-compact");
	uint8_t *buf = read_file(path, &len);
	free(path);
	char msg[1024];
	assert_int_equal(open_bytes(buf, len, "layers-file", msg, sizeof(msg)), 0);
	uint8_t *d;
	assert_non_null(find_note(buf, len, "KM", NT_KM_DYNLINKER, 0, &d));
	km_nt_dynlinker_t dl;
	memcpy(&dl, d, sizeof(dl));
	assert_true(dl.nfiles > 0);
	for (uint32_t k = 0; k < dl.nfiles; k++) {
		km_nt_mapfile_t f;
		uint8_t *at = d + sizeof(dl) + (size_t)k * sizeof(f);
		memcpy(&f, at, sizeof(f));
		f.id.size = 0;
		memcpy(at, &f, sizeof(f));
	}
	expect_refused(buf, len, "layers-file-empty", "bad NT_KM_LAYERS segment record or bitmap");
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replay_regressions),
		cmocka_unit_test(test_replay_corpus),
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_seed_accepted),
		T(test_truncated),
		T(test_version_2_0),
		T(test_version_2_1),
		T(test_version_newer_minor),
		T(test_version_other_major),
		T(test_not_km),
		T(test_overlap),
		T(test_vcpu_id),
		T(test_many_cpus),
		T(test_auxv),
		T(test_dynlinker),
		T(test_dynlinker_bad),
		T(test_checksum_every_byte),
		T(test_checksum_message),
		T(test_checksum_missing),
		T(test_verify),
		cmocka_unit_test(test_layers_below_file_past_end),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
