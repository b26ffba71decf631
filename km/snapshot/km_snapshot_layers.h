/*
 * Layers (format 2.6, NT_KM_LAYERS): which pages a snapshot holds and what lies below the ones it
 * does not: its parent snapshot (incremental snapshots), or the mapping's own file (a private
 * file mapping's pages the program never wrote: program text, libraries). The writer plans which
 * pages to hold, the reader checks the note and opens the chain below a file, the resume maps
 * each page from the newest layer that holds it. docs/snapshot-format.md, "NT_KM_LAYERS".
 * The writer's side is km_snapshot_layers.c, the reader's and the resume's km_snapshot_chain.c.
 */
#ifndef KM_SNAPSHOT_LAYERS_H
#define KM_SNAPSHOT_LAYERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "km_coredump.h"
#include "km_error.h"
#include "km_snapshot.h"

struct km_guest;
struct km_mm;

#define KM_LAYERS_DEFAULT_DEPTH 8 /* --snapshot-chain when not given */

/* What one snapshot holds, decided before it is written. */
typedef struct km_layers_plan {
	uint64_t **holds;  /* per VMA a held-page bitmap, or NULL: every page; NULL array: all full */
	uint32_t *below;   /* per VMA KM_BELOW_* */
	uint64_t *words;   /* per VMA its bitmap's length in words */
	size_t n;          /* VMAs the arrays cover */
	uint64_t **dirty;  /* what km_dirty_collect gave (per VMA, as collected), handed back if the
			    * snapshot fails; NULL: nothing collected */
	bool started;      /* km_layers_paused started the tracker at a live snapshot's pause */
	uint64_t epoch;    /* the dirty interval this plan began or saw (km_snapshot_layers.c) */
	bool detached;     /* req->detached, or a core: km_layers_finish only frees */
	km_nt_layers_t nt; /* id, parent id, depth (path_len and nsegments filled by the note) */
	char parent[4096]; /* the parent's path as recorded ("" for none) */
	uint64_t parent_dev, parent_ino; /* the parent file's identity (0: none) */
} km_layers_plan_t;

/* Plans the snapshot req asks for, with every vCPU stopped: a fresh id; pages of private file
 * mappings still their file's not held (unless self-contained); with req->parent, the parent
 * checked (the last snapshot this km wrote or resumed from, by id) and only pages changed since
 * held (a full snapshot when changes are not tracked, or the chain would be deeper than
 * --snapshot-chain). Returns 0, or -1 with *err (a parent that is not the last snapshot). */
int km_layers_plan(struct km_guest *g, const km_snapshot_req_t *req, km_layers_plan_t *p, km_err_t **err);

/* Written as name in the directory dfd, would the child replace its own parent (which it would
 * then name as itself, so that no km could resume it)? 0 if not, else -1 with *err. */
int km_layers_replaces(const km_layers_plan_t *p, int dfd, const char *name, km_err_t **err);

/* Bytes the i-th VMA's PT_LOAD holds in the file (p_filesz): up to its last held page, so that
 * gdb reads the rest (text) from the file NT_FILE names, as in the kernel's cores. */
uint64_t km_layers_filesz(const km_layers_plan_t *p, size_t i, uint64_t size);

/* KM_BELOW_* of the i-th VMA (KM_BELOW_NONE without a plan): NT_KM_VMA's saved is 2 when not
 * KM_BELOW_NONE. */
uint32_t km_layers_below(const km_layers_plan_t *p, size_t i);

/* NT_KM_LAYERS's descriptor for the plan: its length, and its bytes into d (4-byte aligned). */
size_t km_layers_note_len(const km_layers_plan_t *p);
void km_layers_note_fill(const km_layers_plan_t *p, uint8_t *d);

/* A live snapshot, at its pause once the writer holds its frozen view (every vCPU still
 * stopped): a plan that collected nothing starts the tracker now, so that the next interval
 * counts from the memory the file holds, not from when the writer reports. */
void km_layers_paused(struct km_guest *g, km_layers_plan_t *p);

/* After the write (for a live snapshot: when the writer reported; the program may be running):
 * on success the file becomes the parent the next snapshot may name and the dirty interval
 * restarts (at once if the vCPUs are stopped; at the pause for a live one); on failure a
 * collected interval is handed back, and an interval started at a live pause no longer counts
 * from the last snapshot (the next one that names it is refused; a full one is fine). Frees the
 * plan. */
void km_layers_finish(struct km_guest *g, km_layers_plan_t *p, bool written);

/* In a forked child, its only thread: the plans' lock made new (another thread of the parent may
 * have held it at the fork), and no parent current (the child's tracking starts off). */
void km_layers_forked(void);

/* Forgets a plan without touching the tracker (cores). */
void km_layers_plan_free(km_layers_plan_t *p);

/* Reader: NT_KM_LAYERS's descriptor into s (s->vmas and their file ranges known). Checks every
 * field: one record per segment, bitmaps exactly as long as their segment, no bit past its end,
 * a parent path exactly when a parent id and a depth, KM_BELOW_FILE only on a private file
 * mapping with its file's identity recorded. Returns 0, or -1 with *why. */
int km_layers_parse(km_snapshot_t *s, const uint8_t *desc, size_t len, const char **why);

/* Opens the chain below s (parent, its parent...) and checks each member: a regular file, a km
 * snapshot of this major (checksum included), its id the one its child names, its depth one
 * less. Relative parent paths are taken from the directory of `path`; with fds (the chain
 * passed as --snapshot-parent-fd, nearest first) those are used instead. Refuses a chain deeper
 * than KM_LAYERS_MAX_DEPTH. Returns 0, or -1 with *err naming the member. */
int km_layers_open_chain(km_snapshot_t *s, const char *path, const int *fds, size_t nfds, km_err_t **err);

/* Resume: maps over the VMA restored at s->vmas[i].nt.start (its host range the top file's
 * segment) every run of pages the top does not hold, from the layer below that holds it or the
 * mapping's file. Returns 0, or -1 with *err. */
int km_layers_map_vma(struct km_mm *mm, const km_snapshot_t *s, size_t i, const char *name, km_err_t **err);

/* The resumed snapshot becomes the parent the next snapshot may name; tracking starts. */
void km_layers_resumed(struct km_guest *g, const km_snapshot_t *s);

/* Pages segment i of s holds. */
uint64_t km_layers_held_pages(const km_snapshot_t *s, size_t i);

/* The id as 32 hex digits (buf of 33). */
void km_layers_id_hex(const uint8_t id[16], char buf[33]);

#endif
