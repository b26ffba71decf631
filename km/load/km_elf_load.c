/* ELF program loading: see km_elf_load.h. */
#include "km_elf_load.h"
#include "km_guest_fault.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int elf_prot(uint32_t pflags)
{
	return ((pflags & PF_R) ? PROT_READ : 0) | ((pflags & PF_W) ? PROT_WRITE : 0) |
	       ((pflags & PF_X) ? PROT_EXEC : 0);
}

/* Rejects what km cannot run, with the reason a user needs. */
static int check_header(Elf *e, const char *path, GElf_Ehdr *eh, km_err_t **err)
{
	if (elf_kind(e) != ELF_K_ELF)
		return km_err_set(err, 0, "%s: not an ELF file", path);
	int cls = gelf_getclass(e);
	if (cls == ELFCLASS32)
		return km_err_set(err, 0, "%s: 32-bit ELF; km runs 64-bit x86-64 programs", path);
	if (cls != ELFCLASS64 || gelf_getehdr(e, eh) == NULL)
		return km_err_set(err, 0, "%s: unreadable ELF header (%s)", path, elf_errmsg(-1));
	if (eh->e_machine != EM_X86_64)
		return km_err_set(err, 0, "%s: ELF for machine %u, not x86-64", path, eh->e_machine);
	if (eh->e_type == ET_CORE)
		return km_err_set(err, 0, "%s: a core file, not a program", path);
	if (eh->e_type != ET_EXEC && eh->e_type != ET_DYN)
		return km_err_set(err, 0, "%s: ELF type %u is not an executable", path, eh->e_type);
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0)
		return km_err_set(err, 0, "%s: no usable program headers", path);
	return 0;
}

/* Checks every program header before anything is mapped, so a bad file maps nothing. */
static int check_segments(Elf *e, const char *path, const GElf_Ehdr *eh, off_t file_size, uint64_t bias,
			  km_elf_info_t *info, km_err_t **err)
{
	bool have_load = false;
	info->exec_stack = true; /* no PT_GNU_STACK: Linux gives an executable stack */
	for (size_t i = 0; i < eh->e_phnum; i++) {
		GElf_Phdr ph;
		if (gelf_getphdr(e, (int)i, &ph) == NULL)
			return km_err_set(err, 0, "%s: truncated ELF: program header %zu unreadable", path, i);
		if (ph.p_type == PT_INTERP)
			return km_err_set(err, 0, "%s: dynamically linked program; km runs statically linked "
						  "programs for now (link with -static)", path);
		if (ph.p_type == PT_GNU_STACK)
			info->exec_stack = (ph.p_flags & PF_X) != 0;
		if (ph.p_type == PT_PHDR)
			info->phdr = ph.p_vaddr + bias;
		if (ph.p_type != PT_LOAD)
			continue;
		have_load = true;
		if (ph.p_offset + ph.p_filesz < ph.p_offset || ph.p_offset + ph.p_filesz > (uint64_t)file_size)
			return km_err_set(err, 0, "%s: truncated ELF: segment %zu ends past the end of the file", path, i);
		uint64_t start = ph.p_vaddr + bias, end = start + ph.p_memsz;
		if (ph.p_filesz > ph.p_memsz || end < start || end > KM_USER_TOP || start < 0x1000 ||
		    (ph.p_vaddr % KM_PAGE_SIZE) != (ph.p_offset % KM_PAGE_SIZE))
			return km_err_set(err, 0, "%s: segment %zu has an unusable address or size", path, i);
		if (end > info->image_end)
			info->image_end = end;
		/* AT_PHDR without PT_PHDR: the headers inside the segment that maps file offset e_phoff */
		if (info->phdr == 0 && eh->e_phoff >= ph.p_offset && eh->e_phoff < ph.p_offset + ph.p_filesz)
			info->phdr = start + (eh->e_phoff - ph.p_offset);
	}
	if (!have_load)
		return km_err_set(err, 0, "%s: no loadable segments", path);
	return 0;
}

static int map_segment(km_mm_t *mm, int fd, const char *path, const GElf_Phdr *ph, uint64_t bias, km_err_t **err)
{
	uint64_t start = ph->p_vaddr + bias;
	uint64_t page = KM_PAGE_DOWN(start);
	uint64_t file_end = start + ph->p_filesz, mem_end = KM_PAGE_UP(start + ph->p_memsz);
	int prot = elf_prot(ph->p_flags);
	uint64_t file_map_end = KM_PAGE_UP(file_end);
	if (ph->p_filesz > 0) {
		int64_t rc = km_mm_map(mm, page, file_map_end - page, prot, MAP_PRIVATE | MAP_FIXED, fd,
				       KM_PAGE_DOWN(ph->p_offset), KM_VMA_ELF, path);
		if (rc < 0)
			return km_err_set(err, (int)-rc, "%s: mapping segment at %#lx", path, (unsigned long)page);
		/* The rest of the last file page belongs to .bss: it must read as zero. */
		if (file_end < file_map_end) {
			/* Through the file's page: guarded, so a file cut short meanwhile is an error,
			 * not a SIGBUS in km. */
			static const char zeros[KM_PAGE_SIZE];
			size_t n = file_map_end - file_end;
			void *h = km_gva_to_hva(mm, file_end, n, 0);
			if (h != NULL && km_guest_memcpy(h, zeros, n, h, n) < 0)
				return km_err_set(err, EIO, "%s: the file changed while it was being loaded", path);
		}
	} else {
		file_map_end = page;
	}
	if (mem_end > file_map_end) {
		int64_t rc = km_mm_map(mm, file_map_end, mem_end - file_map_end, prot,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0, KM_VMA_ANON, NULL);
		if (rc < 0)
			return km_err_set(err, (int)-rc, "%s: mapping .bss at %#lx", path, (unsigned long)file_map_end);
	}
	return 0;
}

static int load(Elf *e, int fd, const char *path, km_mm_t *mm, km_elf_info_t *info, km_err_t **err)
{
	GElf_Ehdr eh;
	struct stat st;
	if (check_header(e, path, &eh, err) < 0)
		return -1;
	if (fstat(fd, &st) < 0)
		return km_err_set(err, errno, "%s: stat", path);
	uint64_t bias = eh.e_type == ET_DYN ? KM_PIE_BASE : 0;
	memset(info, 0, sizeof(*info));
	if (check_segments(e, path, &eh, st.st_size, bias, info, err) < 0)
		return -1;
	for (size_t i = 0; i < eh.e_phnum; i++) {
		GElf_Phdr ph;
		gelf_getphdr(e, (int)i, &ph);
		if (ph.p_type == PT_LOAD && map_segment(mm, fd, path, &ph, bias, err) < 0)
			return -1;
	}
	info->entry = eh.e_entry + bias;
	info->bias = bias;
	info->phnum = eh.e_phnum;
	info->phent = eh.e_phentsize;
	if (km_vma_find(mm, info->entry) == NULL)
		return km_err_set(err, 0, "%s: entry point %#lx is outside the program's segments", path,
				  (unsigned long)info->entry);
	return 0;
}

int km_elf_load(km_mm_t *mm, const char *path, km_elf_info_t *info, km_err_t **err)
{
	if (elf_version(EV_CURRENT) == EV_NONE)
		return km_err_set(err, 0, "libelf is unusable: %s", elf_errmsg(-1));
	km_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return km_err_set(err, errno, "%s", path);
	struct stat st;
	if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode))
		return km_err_set(err, 0, "%s: not a regular file", path);
	Elf *e = elf_begin(fd, ELF_C_READ, NULL);
	if (e == NULL)
		return km_err_set(err, 0, "%s: cannot read as ELF (%s)", path, elf_errmsg(-1));
	int rc = load(e, fd, path, mm, info, err);
	elf_end(e);
	return rc;
}

/* Placeholder until PT_INTERP is honoured: the checks of km_elf_load, nothing mapped. */
int km_elf_probe(const char *path, km_err_t **err)
{
	if (elf_version(EV_CURRENT) == EV_NONE)
		return km_err_set(err, 0, "libelf is unusable: %s", elf_errmsg(-1)) < 0 ? -ENOEXEC : 0;
	km_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		km_err_set(err, e, "%s", path);
		return -e;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		km_err_set(err, 0, "%s: not a regular file", path);
		return -EACCES;
	}
	Elf *e = elf_begin(fd, ELF_C_READ, NULL);
	if (e == NULL) {
		km_err_set(err, 0, "%s: cannot read as ELF (%s)", path, elf_errmsg(-1));
		return -ENOEXEC;
	}
	GElf_Ehdr eh;
	km_elf_info_t info;
	memset(&info, 0, sizeof(info));
	int rc = check_header(e, path, &eh, err) < 0 ||
			 check_segments(e, path, &eh, st.st_size, eh.e_type == ET_DYN ? KM_PIE_BASE : 0, &info, err) < 0
		     ? -ENOEXEC
		     : 0;
	elf_end(e);
	return rc;
}
