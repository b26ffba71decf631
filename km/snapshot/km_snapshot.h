/*
 * Snapshots: writing a running guest's whole state to one ELF core file (km_snapshot_write.c),
 * reading one back (km_snapshot_read.c) and resuming it (km_snapshot_restore.c). The file format
 * is defined in km_coredump.h and documented in docs/snapshot-format.md.
 */
#ifndef KM_SNAPSHOT_H
#define KM_SNAPSHOT_H

#include <elf.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "km_coredump.h"
#include "km_error.h"
#include "km_runtime_layout.h"

#include <linux/kvm.h>

struct km_guest;
struct km_vcpu;

/* Gives the directory a snapshot goes in, called once every thread is stopped (so that an fd
 * that lands in the guest's range for a moment cannot be touched by it): an fd in km's range,
 * which the writer closes, or -errno. */
typedef int km_snapshot_dir_fn(void *arg);

/* What a snapshot is asked to be. */
typedef struct km_snapshot_req {
	const char *path;  /* file to write (temporary file beside it, then renamed); with dir_fn:
			    * the name in that directory, one component */
	km_snapshot_dir_fn *dir_fn; /* NULL: path is a path */
	void *dir_arg;
	const char *label; /* kept in the file; may be NULL */
	int reason;        /* KM_REASON_* */
	bool keep_running; /* the guest goes on afterwards (else km ends it, exit status 0) */
	const struct km_vcpu *only; /* a core: only this thread's state was captured; NULL: all */
	int tcp;           /* established TCP: 0 km's --tcp-established, else enum km_tcp_policy + 1 */
	bool self_contained; /* hold every page, whatever --self-contained says */
	bool detached;       /* a copy outside the chain (test builds): it never becomes the last snapshot
			      * and leaves change tracking alone */
	const char *parent; /* the parent snapshot (incremental), or NULL: with dir_fn a name in the
			     * same directory, else a path; recorded relative to path's directory */
	km_snapshot_dir_fn *parent_fn; /* with parent: gives the parent opened read-only (an fd in
			     * km's range, which the writer closes, or -errno), called once every thread is
			     * stopped; NULL: the writer opens req->parent, a path */
	void *parent_arg;
} km_snapshot_req_t;

/* What writing it took. */
typedef struct km_snapshot_result {
	uint64_t file_size;     /* st_size: the guest's address range laid out */
	uint64_t disk_bytes;    /* st_blocks * 512: what it really uses */
	uint64_t memory_bytes;  /* bytes of guest memory written (non-zero pages) */
	uint64_t elapsed_ns;
} km_snapshot_result_t;

/* Writes the guest's state to req->path, atomically (temporary file in the same directory,
 * fsync, rename; mode 0600). Every live vCPU must be stopped at a clean point with its state
 * captured (km_vcpu_capture; km_stopall_begin with KM_STOP_CLEAN does both). A failure leaves no file under the final name and never touches
 * an older file of that name. */
int km_snapshot_write(struct km_guest *g, const km_snapshot_req_t *req, km_snapshot_result_t *res,
		      km_err_t **err);

/* Asks a running guest, from another thread (the management socket), for a snapshot, which the
 * first vCPU to reach a clean point takes (km_snapshot_take): the vCPUs are stopped at clean points (a vCPU blocked in a host syscall is interrupted; the syscall is
 * restarted afterwards, invisibly to the program), the file written, and the guest either
 * resumed or ended. Blocks until done. Returns 0 with *res filled, or -1 with *err. */
int km_snapshot_request(struct km_guest *g, const km_snapshot_req_t *req, km_snapshot_result_t *res,
			km_err_t **err);

/* The same while the guest is paused (km_stopall_begin by the caller, a thread that is not a
 * vCPU): a parked vCPU writes the file; the guest stays stopped (ended after mode stop: the
 * caller ends its stop then). */
int km_snapshot_request_paused(struct km_guest *g, const km_snapshot_req_t *req, km_snapshot_result_t *res,
			       km_err_t **err);

/* The same from one of the guest's own threads (HC_snapshot): v stands at a clean point with
 * registers *user (which the file records for it); the other threads are stopped around the
 * write. */
int km_snapshot_take(struct km_vcpu *v, const struct kvm_regs *user, uint64_t cpu_flags,
		     const km_snapshot_req_t *req, km_snapshot_result_t *res, km_err_t **err);

/* --- cores -------------------------------------------------------------------------------- */

/* The program dies of `sig`, whose default action dumps core: writes the core file (--coredump,
 * default "kmcore") if RLIMIT_CORE allows or --coredump was given. `user` holds the program's
 * registers where it died. Sets g->core_written. Never fails the caller: a core that cannot be
 * written is reported on stderr. */
void km_core_dump(struct km_vcpu *v, const struct kvm_regs *user, int sig);

/* --- reading ------------------------------------------------------------------------------ */

typedef struct km_snap_vma {
	km_nt_vma_t nt;   /* km's record of the mapping */
	const char *path; /* file mappings: the file; points into the snapshot's note data */
	uint64_t file_off; /* where the PT_LOAD's bytes start in the snapshot file */
	uint64_t file_len; /* p_filesz: bytes in the file (0 for shared file mappings) */
	uint32_t crc;      /* NT_KM_CHECKSUM's CRC32C of those bytes (checked by km_snapshot_verify) */
	uint32_t below;    /* 2.6: KM_BELOW_* for the pages it does not hold */
	const uint8_t *held; /* 2.6: the held-page bitmap in the notes (4-byte aligned), or NULL */
} km_snap_vma_t;

typedef struct km_snap_cpu {
	km_nt_cpu_t km;           /* NT_KM_CPU */
	const uint8_t *xsave;     /* NT_X86_XSTATE image */
	size_t xsave_len;
	uint64_t prstatus_rip;    /* from NT_PRSTATUS, checked against km's copy */
} km_snap_cpu_t;

#define KM_SNAP_MAX_VCPUS KM_MAX_VCPUS /* a snapshot holds at most what a guest can have */

typedef struct km_snapshot {
	int fd;                    /* the snapshot file, open read-only */
	uint64_t file_size;
	uint8_t *notes;            /* the PT_NOTE segment, read into memory */
	size_t notes_len;
	km_nt_proc_t proc;
	km_nt_guest_t guest;
	/* Pointers into the notes, which are only 4-byte aligned: copy before use. */
	const void *sigactions;    /* 64 x {handler, flags, restorer, mask} */
	const void *auxv;          /* NT_AUXV, pairs ending with AT_NULL */
	size_t auxv_len;           /* bytes */
	const char *exe_path, *cwd, *label, *km_version;
	const char *argv;          /* NUL-separated, argc strings */
	uint32_t argc;
	km_snap_cpu_t cpus[KM_SNAP_MAX_VCPUS];
	uint32_t ncpus;
	km_snap_vma_t *vmas;       /* in address order, one per PT_LOAD */
	size_t nvmas;
	uint64_t saved_bytes;      /* sum of p_filesz */
	uint64_t saved_end;        /* where the last memory byte in the file ends (a resume's lease keeps it) */
	const uint8_t *segment_crcs; /* NT_KM_CHECKSUM's, in the notes (4-byte aligned) */
	/* 2.1 (km_snapshot_has(s, KM_SNAPSHOT_MINOR_THREADS)); NULL/0 in older files. */
	const uint8_t *sigpending;   /* NT_KM_SIGPENDING: nsigpending km_nt_sigpending_t */
	uint32_t nsigpending;
	const uint8_t *timers;       /* NT_KM_TIMERS, timers_len bytes (checked when stashed) */
	size_t timers_len;
	const uint8_t *seccomp;      /* 2.2: NT_KM_SECCOMP, seccomp_len bytes (checked when restored) */
	size_t seccomp_len;
	const uint8_t *files;        /* 2.3: NT_KM_FILES, files_len bytes (km_fdtab.h checks it) */
	size_t files_len;
	uint32_t nsegment_crcs;
	/* 2.4: NT_KM_DYNLINKER; path NULL for a static program or an older file. mapfiles are
	 * nmapfiles km_nt_mapfile_t in the notes (4-byte aligned: copy before use), each vma index
	 * checked against nvmas. */
	km_nt_dynlinker_t dynlinker;
	const char *interp_path;
	const uint8_t *mapfiles;
	uint32_t nmapfiles;
	/* 2.6: NT_KM_LAYERS (layered false: an older file, every page held, no id); the parent,
	 * opened and checked by km_layers_open_chain, owned and closed with this one. */
	bool layered;
	km_nt_layers_t layers;
	const uint8_t *layers_desc; /* the note, checked once the segments are (km_layers_parse) */
	size_t layers_len;
	const char *parent_path;   /* in the notes, or NULL */
	struct km_snapshot *parent;
	char *name;                /* how messages name this member (owned), or NULL */
} km_snapshot_t;

/* True if `path` is an ELF core file with km's notes (what `km FILE` resumes rather than runs).
 * Never fails: anything unreadable is "not a snapshot". */
bool km_snapshot_is_snapshot(const char *path);

/* Opens and checks a snapshot completely (the checksum of its headers and notes first, then
 * header, the format version (km's own major, any minor: notes a newer minor added are skipped),
 * notes, segments inside the file, in address order, not overlapping, inside the program's
 * address space) without creating anything. Memory is not read (resume maps it
 * lazily): km_snapshot_verify checks it. Errors name the file and what is wrong. */
int km_snapshot_open(const char *path, km_snapshot_t *s, km_err_t **err);

/* Same on a file already open (the fuzz target uses a memfd). Takes ownership of fd. */
int km_snapshot_open_fd(int fd, const char *name, km_snapshot_t *s, km_err_t **err);

void km_snapshot_close(km_snapshot_t *s);

/* True if an opened snapshot's format is of minor `minor` (KM_SNAPSHOT_MINOR_*) or later, so that
 * it may hold what that minor added; code reading such a note asks this first and takes the
 * older meaning when false (a 2.0 file has no signal notes: nothing is pending). km_snapshot_open
 * has already checked the major. */
bool km_snapshot_has(const km_snapshot_t *s, uint32_t minor);

/* Reads every saved segment of an opened snapshot and compares its CRC32C with the one
 * NT_KM_CHECKSUM holds. Returns 0, or -1 with *err naming the file and the first segment (its
 * index and addresses) whose bytes differ. Sets *bytes (if not NULL) to the bytes checked. */
int km_snapshot_verify(const km_snapshot_t *s, const char *name, uint64_t *bytes, km_err_t **err);

/* --- checksums (km_snapshot_checksum.c) -------------------------------------------------- */

/* NT_KM_CHECKSUM's header_crc of an image in memory: CRC32C of img[0, covered) with the four
 * bytes at field_off (header_crc itself) taken as zero. field_off + 4 <= covered. */
uint32_t km_snapshot_header_crc_buf(const uint8_t *img, uint64_t covered, uint64_t field_off);

/* The same for a file laid out as km writes it (program headers right after the ELF header,
 * the notes right after them), from the three pieces in memory: field_off is header_crc's
 * offset in `notes`. */
uint32_t km_snapshot_header_crc(const Elf64_Ehdr *eh, const Elf64_Phdr *ph, size_t nph, const uint8_t *notes,
				size_t notes_len, size_t field_off);

/* CRC32C of the file's bytes [off, off+len), holes folded in as zeros without reading them.
 * Returns 0, or -1 with errno. */
int km_snapshot_segment_crc(int fd, uint64_t off, uint64_t len, uint32_t *crc);

/* For tools that edit a snapshot image in memory on purpose (tests, the fuzzer's mutator, seed
 * makers): sets NT_KM_CHECKSUM's covered and header_crc to match the image. False (nothing
 * changed) if the image has no PT_NOTE starting with that note. Trusts nothing in buf. */
bool km_snapshot_reseal(uint8_t *buf, size_t len);

/* Builds a guest from an opened snapshot: memory mapped lazily from the file (copy-on-write),
 * fresh runtime, vCPUs with every register, process state. The guest is ready to run. */
int km_snapshot_restore(struct km_guest *g, const km_snapshot_t *s, km_err_t **err);

#endif
