/* ELF program loading: see km_elf_load.h. */
#include "km_elf_load.h"
#include "km_guest_fault.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
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
	memset(eh, 0, sizeof(*eh));
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

/* Reads the PT_INTERP string into `out` with Linux's checks: 2..KM_INTERP_MAX bytes inside the
 * file, ending with a NUL. */
static int read_interp(int fd, const char *path, const GElf_Phdr *ph, off_t file_size, char *out, km_err_t **err)
{
	if (ph->p_filesz < 2 || ph->p_filesz > KM_INTERP_MAX || ph->p_offset > (uint64_t)file_size ||
	    ph->p_filesz > (uint64_t)file_size - ph->p_offset)
		return km_err_set(err, 0, "%s: unusable PT_INTERP (%lu bytes at %#lx)", path, (unsigned long)ph->p_filesz,
				  (unsigned long)ph->p_offset);
	ssize_t n = pread(fd, out, ph->p_filesz, (off_t)ph->p_offset);
	if (n != (ssize_t)ph->p_filesz)
		return km_err_set(err, n < 0 ? errno : EIO, "%s: reading PT_INTERP", path);
	if (out[ph->p_filesz - 1] != '\0' || out[0] == '\0')
		return km_err_set(err, 0, "%s: PT_INTERP is not a NUL-terminated path", path);
	return 0;
}

/* Checks every program header before anything is mapped, so a bad file maps nothing. An
 * interpreter (is_interp) may not name one of its own. */
static int check_segments(Elf *e, int fd, const char *path, const GElf_Ehdr *eh, off_t file_size, uint64_t bias,
			  bool is_interp, km_elf_info_t *info, km_err_t **err)
{
	bool have_load = false;
	info->exec_stack = true; /* no PT_GNU_STACK: Linux gives an executable stack */
	for (size_t i = 0; i < eh->e_phnum; i++) {
		GElf_Phdr ph;
		if (gelf_getphdr(e, (int)i, &ph) == NULL)
			return km_err_set(err, 0, "%s: truncated ELF: program header %zu unreadable", path, i);
		if (ph.p_type == PT_INTERP && is_interp)
			return km_err_set(err, 0, "%s: an interpreter that asks for an interpreter itself", path);
		if (ph.p_type == PT_INTERP && info->interp[0] == '\0' &&
		    read_interp(fd, path, &ph, file_size, info->interp, err) < 0)
			return -1;
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
		if (info->image_start == 0 || KM_PAGE_DOWN(start) < info->image_start)
			info->image_start = KM_PAGE_DOWN(start);
		/* AT_PHDR without PT_PHDR: the headers inside the segment that maps file offset e_phoff */
		if (info->phdr == 0 && eh->e_phoff >= ph.p_offset && eh->e_phoff < ph.p_offset + ph.p_filesz)
			info->phdr = start + (eh->e_phoff - ph.p_offset);
	}
	if (!have_load)
		return km_err_set(err, 0, "%s: no loadable segments", path);
	return 0;
}

static int map_segment(km_mm_t *mm, int fd, const struct stat *st, const char *path, const GElf_Phdr *ph, uint64_t bias,
		       km_err_t **err)
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
		km_vma_t *vma = km_vma_find(mm, page);
		vma->dev = st->st_dev; /* NT_FILE and a resume's check of the file name it */
		vma->ino = st->st_ino;
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

/* Maps every PT_LOAD of a checked image at `bias`; the entry point must land in one. */
static int map_image(Elf *e, int fd, const struct stat *st, const char *path, const GElf_Ehdr *eh, uint64_t bias,
		     km_mm_t *mm, km_err_t **err)
{
	for (size_t i = 0; i < eh->e_phnum; i++) {
		GElf_Phdr ph;
		gelf_getphdr(e, (int)i, &ph);
		if (ph.p_type == PT_LOAD && map_segment(mm, fd, st, path, &ph, bias, err) < 0)
			return -1;
	}
	if (km_vma_find(mm, eh->e_entry + bias) == NULL)
		return km_err_set(err, 0, "%s: entry point %#lx is outside its segments", path,
				  (unsigned long)(eh->e_entry + bias));
	return 0;
}

/* An open ELF file: the descriptor, its status and libelf's handle. */
typedef struct elf_file {
	int fd;
	struct stat st;
	Elf *e;
	GElf_Ehdr eh;
} elf_file_t;

/* Opens `path` as an x86-64 ELF program (regular file, checked header). Returns 0, or -errno as
 * execve gives it (the open's, EACCES not a regular file, ENOEXEC not ELF) with *err set. */
static int elf_open(const char *path, elf_file_t *f, km_err_t **err)
{
	memset(f, 0, sizeof(*f));
	f->fd = -1;
	if (elf_version(EV_CURRENT) == EV_NONE) {
		km_err_set(err, 0, "libelf is unusable: %s", elf_errmsg(-1));
		return -ENOEXEC;
	}
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0) {
		int rc = errno;
		km_err_set(err, rc, "%s", path);
		return -rc;
	}
	if (fstat(f->fd, &f->st) < 0 || !S_ISREG(f->st.st_mode)) {
		km_err_set(err, 0, "%s: not a regular file", path);
		return -EACCES;
	}
	if ((f->e = elf_begin(f->fd, ELF_C_READ, NULL)) == NULL) {
		km_err_set(err, 0, "%s: cannot read as ELF (%s)", path, elf_errmsg(-1));
		return -ENOEXEC;
	}
	return check_header(f->e, path, &f->eh, err) < 0 ? -ENOEXEC : 0;
}

static void elf_close(elf_file_t *f)
{
	if (f->e != NULL)
		elf_end(f->e);
	if (f->fd >= 0)
		close(f->fd);
	f->e = NULL;
	f->fd = -1;
}

int km_elf_load(km_mm_t *mm, const char *path, km_elf_info_t *info, km_err_t **err)
{
	elf_file_t f;
	memset(info, 0, sizeof(*info));
	int rc = elf_open(path, &f, err);
	uint64_t bias = f.eh.e_type == ET_DYN ? KM_PIE_BASE : 0;
	if (rc == 0 && check_segments(f.e, f.fd, path, &f.eh, f.st.st_size, bias, false, info, err) < 0)
		rc = -1;
	if (rc == 0)
		rc = map_image(f.e, f.fd, &f.st, path, &f.eh, bias, mm, err);
	info->entry = f.eh.e_entry + bias;
	info->bias = bias;
	info->phnum = f.eh.e_phnum;
	info->phent = f.eh.e_phentsize;
	elf_close(&f);
	return rc < 0 ? -1 : 0;
}

/* A free range for an image of `span` bytes where mmap(NULL) would put it: reserved to find it,
 * then released again so the segments can be mapped there. Returns 0 if none. */
static uint64_t find_room(km_mm_t *mm, uint64_t span)
{
	int64_t at = km_mm_map(mm, 0, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, KM_VMA_ANON, NULL);
	if (at < 0)
		return 0;
	km_mm_unmap(mm, (uint64_t)at, span);
	return (uint64_t)at;
}

/* Loads an opened and checked interpreter image. */
static int load_interp(elf_file_t *f, const char *path, km_mm_t *mm, km_interp_info_t *out, km_err_t **err)
{
	km_elf_info_t layout;
	memset(&layout, 0, sizeof(layout));
	/* Checked at a sample base first: the offsets, sizes and alignment do not depend on it. */
	uint64_t probe_bias = f->eh.e_type == ET_DYN ? KM_PIE_BASE : 0;
	if (check_segments(f->e, f->fd, path, &f->eh, f->st.st_size, probe_bias, true, &layout, err) < 0)
		return -1;
	uint64_t bias = 0;
	if (f->eh.e_type == ET_DYN) {
		uint64_t span = KM_PAGE_UP(layout.image_end) - layout.image_start;
		uint64_t at = find_room(mm, span);
		if (at == 0)
			return km_err_set(err, ENOMEM, "%s: no room for %lu KiB", path, (unsigned long)(span >> 10));
		bias = at - (layout.image_start - probe_bias);
	} else {
		/* At its own addresses: the segments are mapped MAP_FIXED, which must not replace the
		 * program's (Linux refuses the overlap too). */
		size_t i = km_vma_index(mm, layout.image_start);
		if (i < mm->nvmas && mm->vmas[i].start < KM_PAGE_UP(layout.image_end))
			return km_err_set(err, 0, "%s: its segments overlap the program's (%#lx-%#lx)", path,
					  (unsigned long)layout.image_start, (unsigned long)KM_PAGE_UP(layout.image_end));
	}
	if (map_image(f->e, f->fd, &f->st, path, &f->eh, bias, mm, err) < 0)
		return -1;
	out->base = bias;
	out->entry = f->eh.e_entry + bias;
	out->dev = f->st.st_dev;
	out->ino = f->st.st_ino;
	out->size = (uint64_t)f->st.st_size;
	out->mtime_sec = f->st.st_mtim.tv_sec;
	out->mtime_nsec = f->st.st_mtim.tv_nsec;
	return 0;
}

int km_elf_load_interp(km_mm_t *mm, const char *prog_path, const km_elf_info_t *prog, km_interp_info_t *out,
		       km_err_t **err)
{
	memset(out, 0, sizeof(*out));
	/* NT_FILE and --inspect name the file itself, as Linux's d_path does, not a symlink to it. */
	char *real = realpath(prog->interp, NULL);
	snprintf(out->path, sizeof(out->path), "%s", real != NULL ? real : prog->interp);
	free(real);
	elf_file_t f;
	int rc = elf_open(out->path, &f, err);
	if (rc == 0)
		rc = load_interp(&f, out->path, mm, out, err);
	elf_close(&f);
	if (rc < 0)
		return km_err_wrap(err, "%s: its interpreter", prog_path);
	return 0;
}

int km_elf_probe(const char *path, km_err_t **err)
{
	elf_file_t f;
	km_elf_info_t info;
	memset(&info, 0, sizeof(info));
	int rc = elf_open(path, &f, err);
	uint64_t bias = f.eh.e_type == ET_DYN ? KM_PIE_BASE : 0;
	if (rc == 0 && check_segments(f.e, f.fd, path, &f.eh, f.st.st_size, bias, false, &info, err) < 0)
		rc = -ENOEXEC;
	elf_close(&f);
	if (rc < 0 || info.interp[0] == '\0')
		return rc;
	/* As Linux: a missing interpreter is the open's errno (ENOENT), a bad one ELIBBAD. */
	km_elf_info_t layout;
	memset(&layout, 0, sizeof(layout));
	rc = elf_open(info.interp, &f, err);
	bias = f.eh.e_type == ET_DYN ? KM_PIE_BASE : 0;
	if (rc == 0 && check_segments(f.e, f.fd, info.interp, &f.eh, f.st.st_size, bias, true, &layout, err) < 0)
		rc = -1;
	elf_close(&f);
	if (rc == -ENOEXEC || rc == -1)
		rc = -ELIBBAD;
	if (rc < 0)
		km_err_wrap(err, "%s: its interpreter", path);
	return rc;
}
