/*
 * snap-vdso-edit FILE layout N | FILE old | FILE code [N]: edits a km snapshot in place as another
 * km would have written it, and recomputes its header checksum (tests/e2e/vdso.sh):
 *   layout N   NT_KM_GUEST's vdso_layout becomes N (a km whose vDSO has another layout)
 *   old        format 2.4 with NT_KM_GUEST's vDSO fields zero (a file from before the vDSO)
 *   code [N]   prints the first thread's vDSO code id (NT_KM_CPU reserved[7]: which vDSO image
 *              it stood inside, 0 for none) as "code 0x..."; with N, sets it to N
 * Exits 0, or prints what went wrong and exits 1. Knows the format only as far as this needs:
 * km/snapshot/km_coredump.h and docs/snapshot-format.md.
 */
#include <elf.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NT_KM_PROC 0x4b4d0001
#define NT_KM_GUEST 0x4b4d0003
#define NT_KM_CPU 0x4b4d0002
#define NT_KM_CHECKSUM 0x4b4d0008
/* Offsets inside the descriptors (km_coredump.h). */
#define GUEST_VDSO_LAYOUT 4
#define GUEST_VDSO_GVA 32
#define GUEST_MONO_NS 40
#define CHECKSUM_HEADER_CRC 4
#define CPU_CODE_ID 296 /* offsetof(km_nt_cpu_t, reserved[7]) */

static uint32_t crc32c(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;
	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1)));
	}
	return c ^ 0xffffffffu;
}

static int fail(const char *what)
{
	printf("snap-vdso-edit: %s\n", what);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc < 3 || (strcmp(argv[2], "layout") == 0 && argc < 4))
		return fail("usage: snap-vdso-edit FILE layout N | FILE old | FILE code [N]");
	int fd = open(argv[1], O_RDWR);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return fail("cannot open the file");
	Elf64_Ehdr eh;
	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) || eh.e_phoff != sizeof(eh) || eh.e_phnum == 0)
		return fail("not a km snapshot");
	Elf64_Phdr ph;
	if (pread(fd, &ph, sizeof(ph), (off_t)eh.e_phoff) != sizeof(ph) || ph.p_type != PT_NOTE)
		return fail("no PT_NOTE first");
	size_t covered = ph.p_offset + ph.p_filesz;
	if (covered > (size_t)st.st_size || covered > (64u << 20))
		return fail("notes past the file");
	uint8_t *h = malloc(covered);
	if (h == NULL || pread(fd, h, covered, 0) != (ssize_t)covered)
		return fail("cannot read the headers");
	uint8_t *proc = NULL, *guest = NULL, *sum = NULL, *cpu = NULL;
	for (size_t at = ph.p_offset; at + sizeof(Elf64_Nhdr) <= covered;) {
		Elf64_Nhdr n;
		memcpy(&n, h + at, sizeof(n));
		size_t desc = at + sizeof(n) + ((n.n_namesz + 3) & ~3u);
		if (desc + n.n_descsz > covered)
			return fail("a note past the notes");
		if (n.n_namesz == 3 && memcmp(h + at + sizeof(n), "KM", 3) == 0) {
			if (n.n_type == NT_KM_PROC)
				proc = h + desc;
			if (n.n_type == NT_KM_GUEST)
				guest = h + desc;
			if (n.n_type == NT_KM_CHECKSUM)
				sum = h + desc;
			if (n.n_type == NT_KM_CPU && cpu == NULL && n.n_descsz >= CPU_CODE_ID + 8)
				cpu = h + desc;
		}
		at = desc + ((n.n_descsz + 3) & ~3u);
	}
	if (proc == NULL || guest == NULL || sum == NULL)
		return fail("missing NT_KM_PROC, NT_KM_GUEST or NT_KM_CHECKSUM");
	if (strcmp(argv[2], "layout") == 0) {
		uint32_t layout = (uint32_t)strtoul(argv[3], NULL, 0);
		memcpy(guest + GUEST_VDSO_LAYOUT, &layout, sizeof(layout));
	} else if (strcmp(argv[2], "old") == 0) {
		uint32_t version = 2u | 4u << 16;
		memcpy(proc, &version, sizeof(version));
		memset(guest + GUEST_VDSO_LAYOUT, 0, 4);
		memset(guest + GUEST_VDSO_GVA, 0, 8 * 4);
	} else if (strcmp(argv[2], "code") == 0 && cpu != NULL) {
		uint64_t id;
		memcpy(&id, cpu + CPU_CODE_ID, sizeof(id));
		printf("code %#llx\n", (unsigned long long)id);
		if (argc < 4)
			return 0;
		id = strtoull(argv[3], NULL, 0);
		memcpy(cpu + CPU_CODE_ID, &id, sizeof(id));
	} else {
		return fail("unknown edit, or no NT_KM_CPU");
	}
	memset(sum + CHECKSUM_HEADER_CRC, 0, 4);
	uint32_t crc = crc32c(h, covered);
	memcpy(sum + CHECKSUM_HEADER_CRC, &crc, sizeof(crc));
	if (pwrite(fd, h, covered, 0) != (ssize_t)covered || close(fd) < 0)
		return fail("cannot write the headers");
	free(h);
	return 0;
}
