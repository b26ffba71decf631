/*
 * The km snapshot (and core) file format: an ELF64 ET_CORE file for EM_X86_64. Field-by-field
 * documentation in docs/snapshot-format.md; this header is the definition.
 *
 *   ELF header
 *   program headers: PT_NOTE (first), then one PT_LOAD per guest mapping, in address order
 *   notes: standard ones (owner "CORE"/"LINUX") so binutils and gdb read the file as a core,
 *          then km's own (owner "KM")
 *   segment data, each at a page-aligned offset; pages the guest never touched, and all-zero
 *   pages, are holes in the file
 *
 * NT_KM_CHECKSUM, the first note, holds a CRC32C of the ELF header, program headers and notes
 * (checked at every resume) and one of each PT_LOAD's bytes (checked by km --inspect --verify).
 *
 * km's notes carry the format version, MAJOR.MINOR (docs/snapshot-format.md, "Versions"): a km
 * reads every minor of its own major, older and newer, and refuses any other major with a clear
 * message. All km note structures are little-endian, naturally aligned, fixed size, padded to 8.
 */
#ifndef KM_COREDUMP_H
#define KM_COREDUMP_H

#include <stdint.h>

/* The format version, in km_nt_proc_t.version: the major in the low 16 bits and the minor in the
 * high 16, so that every file written before versions had minors (a plain 2) reads as 2.0.
 * A minor adds note types, or gives meaning to reserved fields whose zero means what an older
 * file means; a reader skips what it does not know. Anything an older reader of the same major
 * would misread (a note changing size or meaning, a note it needs gone) takes a new major.
 * In every major the version is the first 4 bytes of the NT_KM_PROC note (owner "KM"), so any
 * km can name a file's version. */
#define KM_SNAPSHOT_MAJOR 2
#define KM_SNAPSHOT_MINOR 6
#define KM_SNAPSHOT_VERSION_OF(major, minor) ((uint32_t)(major) | (uint32_t)(minor) << 16)
#define KM_SNAPSHOT_VERSION KM_SNAPSHOT_VERSION_OF(KM_SNAPSHOT_MAJOR, KM_SNAPSHOT_MINOR)
#define KM_SNAPSHOT_MAJOR_OF(version) ((uint32_t)(version) & 0xffffu)
#define KM_SNAPSHOT_MINOR_OF(version) ((uint32_t)(version) >> 16)

/* What each minor of major 2 added (km_snapshot_has()). */
#define KM_SNAPSHOT_MINOR_THREADS 1 /* 2.1: threads and signals: per-thread and process-wide signal
				     * state, timers; a 2.0 file has none (nothing pending) */
#define KM_SNAPSHOT_MINOR_SECCOMP 2 /* 2.2: the guest's own seccomp filters (NT_KM_SECCOMP); an
				     * older file has none (the program was not filtered) */
#define KM_SNAPSHOT_MINOR_FILES 3   /* 2.3: the fd table (NT_KM_FILES) and its data after the memory,
				     * the process name and personality; an older file has no table
				     * (only the resuming km's own fds reach the program) */
#define KM_SNAPSHOT_MINOR_DYNLINKER 4 /* 2.4: NT_KM_DYNLINKER's content (the interpreter, and the
				       * identity of every file a private mapping maps, checked at
				       * resume); an older file's note is empty: nothing to check */
#define KM_SNAPSHOT_MINOR_VDSO 5    /* 2.5: the vDSO's layout and the guest's monotonic clocks in
				     * NT_KM_GUEST, a thread inside the vDSO's code (NT_KM_CPU
				     * reserved[7]); an older file had no vDSO (layout 0) */
#define KM_SNAPSHOT_MINOR_LAYERS 6  /* 2.6: NT_KM_LAYERS: the file's id, its parent, and which pages
				     * each segment holds; an older file holds every page and has
				     * neither id nor parent */
#define KM_NOTE_OWNER "KM"

/* km note types (owner "KM"). */
#define NT_KM_PROC 0x4b4d0001      /* once: format version, process state (km_nt_proc_t) */
#define NT_KM_CPU 0x4b4d0002       /* per vCPU: what NT_PRSTATUS lacks (km_nt_cpu_t) */
#define NT_KM_GUEST 0x4b4d0003     /* once: the runtime layout the file was taken with */
#define NT_KM_DYNLINKER 0x4b4d0004 /* once: the interpreter and mapped files' identities
				    * (km_nt_dynlinker_t, 2.4); empty before 2.4 */
#define NT_KM_VMA 0x4b4d0005       /* per PT_LOAD, same order: km's view of the mapping */
#define NT_KM_SIGACTIONS 0x4b4d0006 /* once: 64 km_sigaction_t, signal dispositions */
#define NT_KM_STRINGS 0x4b4d0007   /* once: exe path, cwd, label, argv, km version (NUL-separated) */
#define NT_KM_CHECKSUM 0x4b4d0008  /* once, the first note: checksums (km_nt_checksum_t) */
#define NT_KM_SIGPENDING 0x4b4d0009 /* 2.1, once: pending signals (km_nt_sigpending_t each) */
#define NT_KM_TIMERS 0x4b4d000a    /* 2.1, once: interval and POSIX timers (km_nt_timers_t) */
#define NT_KM_SECCOMP 0x4b4d000b   /* 2.2, at most once: the guest's seccomp filters, as text
				    * (km_guest_seccomp.h, km_gsc_save: u32 count, per filter u32
				    * length and its text) */
#define NT_KM_FILES 0x4b4d000c     /* 2.3, at most once: the fd table (km/fd/km_fdtab.h); absent in
				    * cores */
#define NT_KM_LAYERS 0x4b4d000d    /* 2.6, at most once: id, parent, held pages (km_nt_layers_t) */

/* Why the file was written (km_nt_proc_t.reason). */
#define KM_REASON_SNAPSHOT 1 /* HC_snapshot from the program */
#define KM_REASON_MGMT 2     /* a request on the management socket */
#define KM_REASON_CORE 3     /* the program died of a signal that dumps core */

typedef struct km_nt_proc {
	uint32_t version;       /* KM_SNAPSHOT_VERSION: major | minor << 16 */
	uint32_t reason;        /* KM_REASON_* */
	uint32_t nvcpus;        /* NT_KM_CPU notes that follow */
	uint32_t pid;           /* the pid the program saw */
	uint64_t created_ns;    /* CLOCK_REALTIME when written */
	uint64_t memory_limit;  /* --memory of the km that wrote it */
	uint64_t brk_start, brk_cur;
	uint64_t mmap_base, stack_top;
	uint64_t entry;         /* program entry point (informational) */
	uint32_t umask;
	uint32_t term_signal;   /* for cores: the signal the program died of */
	uint64_t rlimits[16][2]; /* RLIMIT_* soft/hard at the time (index = resource) */
	uint64_t nofile_guest[2]; /* RLIMIT_NOFILE as the guest set it (0,0: not set) */
	uint64_t ignored_signals; /* signals km inherited as ignored */
	uint64_t env_count;       /* environment the program started with: variables */
	uint64_t env_bytes;       /* ... and their bytes, NULs included */
	/* Where the argument and environment strings lie on the initial stack, and the initial
	 * stack pointer: what /proc/<pid>/cmdline, environ and stat show (0: unknown). */
	uint64_t arg_start, arg_end, env_start, env_end, start_stack;
	uint64_t reserved[1];
} km_nt_proc_t;

/* Where a vCPU stood, beyond NT_PRSTATUS's general registers. */
#define KM_CPU_RESTART_SYSCALL 1 /* stopped in a host syscall: rip points at the syscall insn */
#define KM_CPU_RESTORE_SIGMASK 2 /* 2.1: a call set a mask for its duration (sigsuspend, ppoll...):
				  * reserved[0] is the thread's own, back at its next return */

typedef struct km_nt_cpu {
	uint32_t vcpu_id;
	uint32_t tid;
	uint64_t flags;          /* KM_CPU_* */
	uint64_t fs_base, gs_base;
	uint64_t sigmask;
	uint64_t altstack_sp, altstack_size;
	uint32_t altstack_flags, reserved0;
	uint64_t clear_child_tid;
	uint64_t robust_list, robust_list_len;
	uint64_t xcr0;           /* XSAVE features the NT_X86_XSTATE image holds */
	uint64_t regs[18];       /* rax rbx rcx rdx rsi rdi rsp rbp r8-r15 rip rflags (KVM order) */
	uint64_t reserved[8];
} km_nt_cpu_t;

/* NT_KM_SIGPENDING: the note is an array of these, in the order each queue holds them. */
typedef struct km_nt_sigpending {
	uint32_t tid;       /* the thread it is pending for; 0: the process */
	uint32_t reserved0;
	uint8_t info[128];  /* siginfo_t as the x86-64 ABI lays it out */
} km_nt_sigpending_t;

/* NT_KM_TIMERS: the interval timers, then nposix km_nt_posix_timer_t. Times in nanoseconds,
 * relative to when the file was written (0: disarmed). */
typedef struct km_nt_itimer {
	uint64_t value_ns, interval_ns;
} km_nt_itimer_t;

typedef struct km_nt_posix_timer {
	uint32_t id;        /* the id the guest knows it by */
	int32_t clock;      /* CLOCK_* */
	int32_t notify;     /* SIGEV_SIGNAL, SIGEV_NONE or SIGEV_THREAD_ID (4) */
	int32_t signo;
	uint64_t value;     /* sigev_value */
	uint32_t tid;       /* SIGEV_THREAD_ID: the guest thread */
	uint32_t reserved0;
	km_nt_itimer_t time;
} km_nt_posix_timer_t;

typedef struct km_nt_timers {
	km_nt_itimer_t itimer[3]; /* ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF */
	uint32_t nposix;
	uint32_t reserved0;
} km_nt_timers_t;

typedef struct km_nt_guest {
	uint32_t runtime_version; /* layout version of runtime/ the file was taken with */
	uint32_t vdso_layout;     /* 2.5: KM_VDSO_LAYOUT of the program's vDSO; 0: none */
	uint64_t rt_gva, rt_size; /* the runtime region: never saved, rebuilt by the restoring km */
	uint64_t user_top;        /* program mappings end here */
	uint64_t vdso_gva;        /* 2.5: the vDSO's address (AT_SYSINFO_EHDR); 0: none */
	uint64_t mono_ns[3];      /* 2.5: the program's MONOTONIC, BOOTTIME, MONOTONIC_RAW; 0: unknown */
} km_nt_guest_t;

/* km_nt_vma_t.kind: as enum km_vma_kind in km_mm.h. */
typedef struct km_nt_vma {
	uint64_t start, end;
	uint32_t prot;    /* PROT_* as the program asked (PT_LOAD p_flags cannot say PROT_NONE apart) */
	uint32_t flags;   /* MAP_SHARED / MAP_PRIVATE / MAP_ANONYMOUS */
	uint32_t kind;
	uint32_t saved;   /* 1: contents are in the PT_LOAD; 0: shared file mapping, mapped from the file;
			   * 2 (2.6): in the PT_LOAD and below it (NT_KM_LAYERS): a km before 2.6 refuses
			   * the file rather than read the pages it does not hold as zeros */
	uint64_t offset;  /* file offset of start, for file mappings */
	uint64_t dev, ino;
	uint32_t path_len; /* bytes of path following this struct, NUL included, padded to 8 */
	uint32_t reserved0;
} km_nt_vma_t;

/* A file's identity as stat(2) gives it: a resume compares it with the file at the same path. */
typedef struct km_nt_fileid {
	uint64_t dev, ino, size;
	int64_t mtime_sec, mtime_nsec;
} km_nt_fileid_t;

/* NT_KM_DYNLINKER (2.4): this structure, then nfiles km_nt_mapfile_t, then the interpreter's
 * path (path_len bytes). A static program has path_len 0 and base, entry, interp all zero. */
typedef struct km_nt_dynlinker {
	uint64_t base, entry;  /* the interpreter's load address (AT_BASE) and entry point */
	km_nt_fileid_t interp; /* its identity when it was loaded */
	uint32_t nfiles;       /* km_nt_mapfile_t records that follow */
	uint32_t path_len;     /* bytes of its absolute path after them, NUL included, padded to 8 */
} km_nt_dynlinker_t;

/* One file-backed private mapping (a library, the interpreter, the program, a data file): its
 * file's identity when the snapshot was written. A resume refuses a file that is gone or whose
 * size or modification time differs (dev/ino may: a copy on another host is the same file). */
typedef struct km_nt_mapfile {
	uint32_t vma;       /* index of the NT_KM_VMA note (and PT_LOAD) it is about */
	uint32_t reserved0;
	km_nt_fileid_t id;
} km_nt_mapfile_t;

/* NT_KM_LAYERS (2.6): this structure, then nsegments km_nt_layer_seg_t (one per PT_LOAD, same
 * order), then the bitmaps of the segments that have one (in segment order, each nwords uint64_t:
 * bit p of word p/64 is page p of the segment; set: this file holds the page), then the parent's
 * path (path_len bytes). A page this file does not hold comes from below: the parent's segment
 * that covers its address (KM_BELOW_PARENT), or the mapping's own file (KM_BELOW_FILE). */
#define KM_LAYERS_MAX_DEPTH 64 /* deepest chain any km reads; --snapshot-chain is at most this */

typedef struct km_nt_layers {
	uint8_t id[16];        /* this file's identity: 128 random bits, never all zero */
	uint8_t parent_id[16]; /* the parent's id; all zero: no parent */
	uint32_t depth;        /* 0: no parent; else the parent's depth + 1 */
	uint32_t nsegments;    /* km_nt_layer_seg_t records that follow: one per PT_LOAD */
	uint32_t path_len;     /* bytes of the parent's path after the bitmaps, NUL included, padded
				* to 8; 0 exactly when there is no parent */
	uint32_t reserved0;
} km_nt_layers_t;

#define KM_BELOW_NONE 0   /* every page is held (no bitmap) */
#define KM_BELOW_PARENT 1 /* pages not held are the parent's */
#define KM_BELOW_FILE 2   /* pages not held are the mapping's file's (a private file mapping) */

typedef struct km_nt_layer_seg {
	uint32_t below;    /* KM_BELOW_* */
	uint32_t reserved0;
	uint64_t nwords;   /* bitmap words: 0 with KM_BELOW_NONE, else (pages + 63) / 64 */
} km_nt_layer_seg_t;

/* NT_KM_CHECKSUM: CRC32C (km_crc32c.h) of the file's bytes [0, covered), where covered is the end
 * of the PT_NOTE segment (so: ELF header, program headers, every note), with the four bytes of
 * header_crc read as zero; then segment_crc[i] (nsegments of them, uint32_t each, after the
 * structure) is the CRC32C of the i-th PT_LOAD's p_filesz bytes in the file, holes read as zero
 * (0 for p_filesz 0). */
#define KM_CHECKSUM_CRC32C 1

typedef struct km_nt_checksum {
	uint32_t algorithm;  /* KM_CHECKSUM_CRC32C */
	uint32_t header_crc; /* over [0, covered), this field as zero */
	uint64_t covered;    /* bytes from the file's start: the end of the PT_NOTE segment */
	uint32_t nsegments;  /* segment_crc entries that follow: one per PT_LOAD, in order */
	uint32_t reserved0;
} km_nt_checksum_t;

#endif
