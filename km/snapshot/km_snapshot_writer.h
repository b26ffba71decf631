/*
 * The snapshot writer's parts, shared by its files (not an interface for the rest of km):
 * the notes (km_snapshot_notes.c), guest memory into PT_LOAD segments (km_snapshot_memory.c),
 * the file's place, temporary file and publication (km_snapshot_file.c), and the whole file
 * (km_snapshot_write.c). km_snapshot.h holds the writer's contract for the rest of km.
 */
#ifndef KM_SNAPSHOT_WRITER_H
#define KM_SNAPSHOT_WRITER_H

#include <elf.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "km_buf.h"
#include "km_error.h"
#include "km_snapshot.h"

struct km_guest;
struct km_vma;
typedef struct km_fdtab km_fdtab_t;

/* The notes being built: one buffer, plus where the descriptors filled in last are. */
typedef struct notebuf {
	km_buf_t b;
	size_t sum_at; /* NT_KM_CHECKSUM's descriptor, filled in last */
	km_fdtab_t *files; /* the fd table (NULL in cores) */
	size_t files_at;   /* NT_KM_FILES's descriptor, whose blob offsets are filled in last */
	const struct km_layers_plan *layers; /* NT_KM_LAYERS's content (NULL: no such note) */
} notebuf_t;

/* Builds every note of the file (NT_KM_CHECKSUM first, left to be filled in last) for a snapshot,
 * or a core when req->reason is KM_REASON_CORE (sig: the signal it dies of). nb->files, if set,
 * is the saved fd table. Returns 0, or -1 with *err (ENOMEM). */
int km_snap_notes_build(struct km_guest *g, const km_snapshot_req_t *req, int sig, notebuf_t *nb, km_err_t **err);

/* True if the file holds the mapping's bytes (a PT_LOAD with p_filesz = its size); false for a
 * shared file mapping, whose contents are its file's. */
bool km_snap_vma_saved(const struct km_vma *v);

/* The identity a private mapping's file has now (*id), if it has one to check (a named regular
 * file, private, not deleted): size and modification time 0 when the path no longer names the
 * file the program mapped. False for anonymous, shared or deleted mappings. */
bool km_snap_mapfile_id(const struct km_vma *v, km_nt_fileid_t *id);

/* Writes each saved segment's bytes at ph[1 + i].p_offset (i: VMA index; ph[1 + i].p_filesz 0:
 * not saved) and its CRC32C into crcs[i]. holds (may be NULL) gives per VMA a bitmap of the pages
 * this file holds (bit p of word p/64: page p of the VMA); a NULL entry: every page. A page not
 * held is left a hole and folded into the CRC as zeros. Adds the bytes written to
 * res->memory_bytes. Returns 0, or -1 with *err naming path, the mapping and the file offset. */
int km_snap_write_memory(struct km_guest *g, int fd, const Elf64_Phdr *ph, const uint64_t *const *holds,
			 uint32_t *crcs, km_snapshot_result_t *res, const char *path, km_err_t **err);

/* Where the file goes: the directory (an fd in km's range) and the name in it; `shown` names it
 * in messages. */
typedef struct place {
	int dfd;
	const char *name;
	const char *shown;
} place_t;

/* What is at the snapshot's final name. Only a regular file or nothing may be replaced: rename
 * would put the snapshot over a socket (km's own management socket), a device node, a FIFO or an
 * empty directory. A symbolic link is refused too: rename would replace the link itself, not
 * the file it names, which is rarely what the user meant. */
typedef enum target { TARGET_NONE, TARGET_REGULAR } target_t;

/* The directory (opened, in km's fd range) and name for req: the directory req->dir_fn gives,
 * or the path's. *dcopy is freed by the caller. */
int km_snap_find_place(const km_snapshot_req_t *req, place_t *pl, char **dcopy, km_err_t **err);

/* What is at the final name now: nothing or a regular file (else -1 with *err: EEXIST or EISDIR
 * in (*err)->errnum, what the hypercall returns). */
int km_snap_check_target(const place_t *pl, target_t *t, km_err_t **err);

/* Opens a nameless file in the directory (O_TMPFILE), or one under a hidden temporary name
 * (then in tmpname, else tmpname is ""). Returns the fd (km's range) or -1 with errno. */
int km_snap_open_temp(const place_t *pl, char *tmpname, size_t size);

/* Gives the complete, fsynced file its final name (`was`: what check_target saw before writing)
 * and fsyncs the directory. Returns 0, or -1 with *err; the temporary name is gone either way. */
int km_snap_publish(int fd, const char *tmpname, const place_t *pl, target_t was, km_err_t **err);

#endif
