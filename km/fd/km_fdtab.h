/*
 * The guest's file descriptors across a snapshot: the explicit fd table.
 *
 * While the guest runs, its fd N is km's host fd N (docs/decisions.md 5): the host kernel's table
 * is the only one, and nothing is translated on the syscall path. A snapshot makes the table
 * explicit (the NT_KM_FILES note, docs/snapshot-format.md): every guest fd is probed (fstat,
 * F_GETFL, F_GETFD, its /proc/self/fd link and /proc/self/fdinfo text), fds that share one open
 * file description (kcmp KCMP_FILE) share one record, and each description is claimed by exactly
 * one kind module (km_fd_<kind>.c) whose `save` writes its record and bulk data (blobs: file
 * contents, buffered bytes) that go in the file after the memory.
 *
 * A resume reads the table back (every byte checked: a snapshot is attacker input) and rebuilds
 * it before the guest runs: each kind's `restore` makes a host fd for its description (any
 * number: the core moves it into km's range at once), phase by phase, and once a phase is done
 * its fds are dup3'd onto every guest number that had the description, with O_CLOEXEC as it was.
 * Kinds whose restore names other guest fds (epoll) run in a later phase, when those sit at
 * their numbers. Any other fd below km's reserved base is closed: the table is the whole truth.
 *
 * What km's caller gave the program as fds 0-2 is "inherited" (wherever the program has it now):
 * recorded without state, and at resume the resuming km's own fd of that number takes its place,
 * as a terminal or pipe should. Other fds a caller leaks are saved as what they are.
 *
 * Something a kind cannot rebuild fails the resume with one line naming the fd, its kind and the
 * reason, unless --restore-missing=closed: then that fd is left closed and a warning says so.
 */
#ifndef KM_FDTAB_H
#define KM_FDTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "km_buf.h"
#include "km_error.h"

struct km_guest;

/* What an open file description is. The values are the format's (NT_KM_FILES kind field). */
enum km_fdk {
	KM_FDK_INHERITED = 1, /* given by km's caller: the resuming km's own fd takes its place */
	KM_FDK_FILE = 2,      /* regular file reopened by path; identity and offset checked/restored */
	KM_FDK_DIR = 3,       /* directory reopened by path */
	KM_FDK_DEVICE = 4,    /* character device reopened by path (/dev/null, a tty...), rdev checked */
	KM_FDK_DATAFILE = 5,  /* regular file whose contents the snapshot carries: deleted, O_TMPFILE,
			       * memfd */
	KM_FDK_PIPE = 6,      /* pipe end or FIFO, with its buffered bytes */
	KM_FDK_UNIX = 7,      /* AF_UNIX socket */
	KM_FDK_INET = 8,      /* TCP or UDP socket, IPv4 or IPv6 (established TCP by TCP_REPAIR) */
	KM_FDK_EVENTFD = 9,
	KM_FDK_EPOLL = 10,
	KM_FDK_TIMERFD = 11,
	KM_FDK_SIGNALFD = 12, /* km's signalfd (km_sigfd.h): an eventfd km keeps a record of */
	KM_FDK_INOTIFY = 13,
	KM_FDK_UNSUPPORTED = 14, /* nothing km can rebuild: the record says what it was; its resume
				  * fails (or leaves it closed, --restore-missing=closed) */
	KM_FDK_MAX = 15
};

/* How a snapshot treats an established TCP connection (--tcp-established, mgmt `tcp=`). */
enum km_tcp_policy {
	KM_TCP_REPAIR = 0, /* saved with TCP_REPAIR: the connection goes on after resume (default) */
	KM_TCP_REFUSE = 1, /* the snapshot fails, naming the socket (runc/CRIU's default) */
	KM_TCP_CLOSE = 2,  /* saved as closed: after resume the program sees the peer reset it */
};

/* What a resume does with an fd it cannot rebuild (--restore-missing). */
enum km_missing_policy {
	KM_MISSING_ERROR = 0,  /* the resume fails before the guest runs (default) */
	KM_MISSING_CLOSED = 1, /* the fd is left closed; one warning line names it */
};

#define KM_FDTAB_FILE_MAX_DEFAULT (64ull << 20) /* --snapshot-file-max default */

/* --- saving ---------------------------------------------------------------------------------- */

/* One guest fd as probed by the core, handed to the kinds' `match` and `save`. */
typedef struct km_fdprobe {
	int fd;             /* the guest's (and host's) fd number; the lowest that has the description */
	struct stat st;     /* fstat */
	int oflags;         /* F_GETFL: access mode and status flags */
	const char *link;   /* readlink /proc/self/fd/N ("/path", "pipe:[123]", "anon_inode:[eventfd]") */
	const char *fdinfo; /* /proc/self/fdinfo/N, whole text */
} km_fdprobe_t;

typedef struct km_fdsave km_fdsave_t;

/* Saving context, between km_fdtab_save and km_fdtab_release. */
struct km_guest *km_fdsave_guest(km_fdsave_t *sv);
enum km_tcp_policy km_fdsave_tcp(const km_fdsave_t *sv);
uint64_t km_fdsave_file_max(const km_fdsave_t *sv); /* largest contents a datafile may carry */
/* True if km means to end the program once the file is written (a failed write: it goes on;
 * release callbacks say which happened). */
bool km_fdsave_ends(const km_fdsave_t *sv);

/* Adds bulk data to the snapshot and returns its blob index (to put in the record), or -1 with
 * *err. _mem takes ownership of p (malloc'd; freed by the core, also on failure). _file copies
 * len bytes of fd from off when the file is written (the core dups fd; the caller keeps its own).
 * The core's copy is closed afterwards, and any close by the process drops the program's POSIX
 * locks on that file: never use _file for a file with POSIX locks (km_fd_locks.h tells). */
int64_t km_fdsave_blob_mem(km_fdsave_t *sv, void *p, uint64_t len, km_err_t **err);
int64_t km_fdsave_blob_file(km_fdsave_t *sv, int fd, uint64_t off, uint64_t len, km_err_t **err);

/* A slot a kind may keep save-wide state in (one lock for all of its connections), NULL at the
 * save's start and gone with it: what it points to, the kind frees in a release callback. */
void **km_fdsave_state(km_fdsave_t *sv, uint32_t kind);

/* True the first time `key` (an object several descriptions share: a pipe, a socketpair) is
 * marked in this save, false after: so that shared state (a pipe's bytes) is saved once. */
bool km_fdsave_first(km_fdsave_t *sv, uint32_t kind, uint64_t key);

/* Registers fn(arg, guest_goes_on) to run after the file is written or the save failed: undoing
 * what save did to a live object (TCP repair mode off when the guest goes on, kept on when km
 * ends it so that closing sends nothing). Called once each, in reverse order; fn frees arg. */
int km_fdsave_on_release(km_fdsave_t *sv, void (*fn)(void *arg, bool guest_goes_on), void *arg,
			 km_err_t **err);

/* --- records --------------------------------------------------------------------------------- */

/* A kind's record is a sequence of little-endian fields written with km_rec_put_* and read back
 * in the same order with km_rec_get_*, which never read past the end: a short or bad record sets
 * `bad` and returns zeros/NULL, so a kind checks `bad` once at the end. */
void km_rec_put_u32(km_buf_t *b, uint32_t v);
void km_rec_put_u64(km_buf_t *b, uint64_t v);
void km_rec_put_bytes(km_buf_t *b, const void *p, uint32_t len); /* u32 length, then the bytes */
void km_rec_put_str(km_buf_t *b, const char *s);                   /* u32 length with NUL, bytes */

typedef struct km_rec {
	const uint8_t *p;
	size_t len, at;
	bool bad;
} km_rec_t;

uint32_t km_rec_get_u32(km_rec_t *r);
uint64_t km_rec_get_u64(km_rec_t *r);
/* Points into the record (not aligned); *len set. */
const void *km_rec_get_bytes(km_rec_t *r, uint32_t *len);
/* A NUL-terminated string of at most max bytes (NUL included) with no NUL inside. */
const char *km_rec_get_str(km_rec_t *r, size_t max);
/* True if the whole record was read and nothing was bad. */
bool km_rec_done(const km_rec_t *r);

/* One description as read back from a snapshot. */
typedef struct km_fdrec {
	uint32_t kind;   /* enum km_fdk */
	uint32_t oflags; /* F_GETFL at save */
	uint64_t pos;    /* lseek(fd, 0, SEEK_CUR) at save where it has one, else 0 */
	int first_fd;    /* the lowest guest fd that had it (for messages) */
	const uint8_t *data; /* the kind's record */
	size_t len;
} km_fdrec_t;

/* --- restoring ------------------------------------------------------------------------------- */

typedef struct km_fdrest km_fdrest_t;

struct km_guest *km_fdrest_guest(km_fdrest_t *rs);
const char *km_fdrest_name(const km_fdrest_t *rs); /* the snapshot, for messages */

/* Blob `idx` of the snapshot: its length (0 with *err if idx is not a blob). */
int km_fdrest_blob_len(km_fdrest_t *rs, uint64_t idx, uint64_t *len, km_err_t **err);
/* Reads all of blob idx into buf (len must be its length; its checksum is checked). */
int km_fdrest_blob_read(km_fdrest_t *rs, uint64_t idx, void *buf, uint64_t len, km_err_t **err);
/* Writes all of blob idx to fd at fd's position (checksum checked; write(), so pipes work). */
int km_fdrest_blob_write(km_fdrest_t *rs, uint64_t idx, int fd, km_err_t **err);

/* An fd made for a later description of the same object (a pipe's other end, a socket's peer):
 * put moves it into km's range and keeps it under (kind, key); take hands it over (-1: none).
 * What no description takes is closed when the table is rebuilt: that end's peer is gone. */
int km_fdrest_stash_put(km_fdrest_t *rs, uint32_t kind, uint64_t key, int fd, km_err_t **err);
int km_fdrest_stash_take(km_fdrest_t *rs, uint32_t kind, uint64_t key);

/* For kinds that recreate a file under a new identity (a deleted file, a memfd): the file the
 * snapshot knew as (dev, ino) is now the description being restored (fd: its rebuilt fd), so
 * that the program's shared mappings of it map the new file (km_fdtab_restored_file). */
int km_fdrest_remember_file(km_fdrest_t *rs, uint64_t dev, uint64_t ino, int fd, km_err_t **err);

/* The host fd rebuilt for guest fd `fd` in an earlier phase (it sits at that number), or -1. */
int km_fdrest_placed(const km_fdrest_t *rs, int fd);

/* Registers fn(arg, err) to run for the description being restored once every fd sits at its
 * number and km's own copies are closed: POSIX record locks belong to the process and any close
 * of the file by it drops them, so they can only be taken then. fn returns 0, or -1 with *err,
 * which fails that description as a failed restore does (--restore-missing=closed: its fds are
 * closed). arg is malloc'd and freed by the core, also when fn is never called. */
int km_fdrest_after(km_fdrest_t *rs, int (*fn)(void *arg, km_err_t **err), void *arg, km_err_t **err);

/* --- kinds ----------------------------------------------------------------------------------- */

typedef struct km_fdkind {
	uint32_t kind;    /* enum km_fdk */
	const char *name; /* as --inspect and messages show it: "file", "pipe", ... */
	int phase;        /* restore order: 0, or 1 for kinds that name other guest fds (epoll) */
	/* True if this kind takes the probed fd. The core asks the kinds in table order. */
	bool (*match)(struct km_guest *g, const km_fdprobe_t *p);
	/* Appends the description's record to rec. 0, or -1 with *err saying why (the core adds
	 * the fd and kind): the snapshot fails. Or 1 with *err saying why a resume could not
	 * rebuild it: the snapshot goes on with it recorded as unsupported, for that reason. */
	int (*save)(km_fdsave_t *sv, const km_fdprobe_t *p, km_buf_t *rec, km_err_t **err);
	/* Rebuilds the description: a host fd with the saved access mode, status flags and
	 * offset, or -1 with *err saying why. Must treat every byte of r as hostile: paths are
	 * opened only as the guest could open them (km_fd_admit.h). */
	int (*restore)(km_fdrest_t *rs, const km_fdrec_t *r, km_err_t **err);
	/* Appends what --inspect shows after "fd N KIND " (no newline); the record may be bad. */
	void (*describe)(const km_fdrec_t *r, km_buf_t *out);
	/* Optional: once the resume's table is rebuilt (after km_fdrest_after's work), or when the
	 * resume failed, for every description of the kind: removes what the save left on the host
	 * for it (the inet kind's network lock). The record may be bad. */
	void (*finish)(const km_fdrec_t *r);
} km_fdkind_t;

/* The kinds (km_fd_<kind>.c each defines its own). */
extern const km_fdkind_t km_fdkind_inherited, km_fdkind_unsupported, km_fdkind_file, km_fdkind_dir, km_fdkind_device,
	km_fdkind_datafile, km_fdkind_pipe, km_fdkind_unix, km_fdkind_inet, km_fdkind_eventfd,
	km_fdkind_epoll, km_fdkind_timerfd, km_fdkind_signalfd, km_fdkind_inotify;

/* The kind of value `kind`, or NULL. */
const km_fdkind_t *km_fdkind_of(uint32_t kind);

/* --- the table (km_fdtab.c) ------------------------------------------------------------------ */

typedef struct km_fdtab km_fdtab_t;

typedef struct km_fdtab_save_opts {
	enum km_tcp_policy tcp;
	uint64_t file_max;
	bool ends; /* km ends the program once the file is written (unless writing it fails) */
} km_fdtab_save_opts_t;

/* Remembers what km's caller gave the program as its stdin, stdout and stderr: call once before
 * a started guest first runs. Keeps a copy of each above the guest's range. (A resume sets them
 * from the table: the resuming km's own fds that replaced inherited ones.) */
int km_fdtab_note_inherited(struct km_guest *g, km_err_t **err);

/* Probes every guest fd and builds the table (every guest thread stopped). On success *t holds
 * the note's bytes (km_fdtab_note) and the blobs to write. */
int km_fdtab_save(struct km_guest *g, const km_fdtab_save_opts_t *o, km_fdtab_t **t, km_err_t **err);

/* Appends the NT_KM_FILES note's descriptor to note. Its blob offsets and checksums are filled in
 * by km_fdtab_write_blobs, in the note's bytes, before the note is written. */
int km_fdtab_note(km_fdtab_t *t, km_buf_t *note, km_err_t **err);

/* Bytes the blobs take in the file, written from a page-aligned blob_off. */
uint64_t km_fdtab_blob_bytes(const km_fdtab_t *t);

/* Writes the blobs at blob_off of snapshot file fd and fills blob_off and their checksums into
 * `note`, the descriptor km_fdtab_note made (wherever it now lies). 0 or -1 with *err. */
int km_fdtab_write_blobs(km_fdtab_t *t, int fd, uint64_t blob_off, uint8_t *note, km_err_t **err);

/* Runs the release callbacks and frees the table; NULL is fine. */
void km_fdtab_release(km_fdtab_t *t, bool guest_goes_on);

/* Rebuilds the guest's fds from an NT_KM_FILES note of snapshot file snap_fd (size file_size,
 * named `name` in messages); before any guest thread runs. */
int km_fdtab_restore(struct km_guest *g, const void *note, size_t len, int snap_fd, uint64_t file_size,
		     const char *name, enum km_missing_policy missing, km_err_t **err);

/* After km_fdtab_restore: the program's fd of the file the snapshot knew as (dev, ino), recreated
 * by the resume (km_fdrest_remember_file), or -1. Valid until km_fdtab_forget_files. */
int km_fdtab_restored_file(struct km_guest *g, uint64_t dev, uint64_t ino);
void km_fdtab_forget_files(struct km_guest *g);

/* --inspect --verify: reads every blob of an NT_KM_FILES note from snapshot file snap_fd and
 * checks its CRC32C; *bytes grows by what was read. 0, or -1 with *err naming the first bad one. */
int km_fdtab_verify(const void *note, size_t len, int snap_fd, uint64_t file_size, const char *name,
		    uint64_t *bytes, km_err_t **err);

/* Appends --inspect's listing of an NT_KM_FILES note: one line per fd "  fd N KIND details\n";
 * a bad note gives a line saying so. */
void km_fdtab_describe(const void *note, size_t len, km_buf_t *out);

#endif
