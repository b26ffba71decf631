/*
 * The inotify kind of the fd table (km_fdtab.h): the watches, by path. The kernel shows each
 * watch's number (wd), mask and inode, not its name: km notes the names the guest adds watches
 * by (km_inotify_paths.h). A resume adds the watches again in wd order, so that each gets its old
 * number (a fresh inotify numbers its watches 1, 2, 3...; a number the program's removed watches
 * used is skipped by adding a watch and removing it again), and checks that each path still
 * names the inode watched. Events queued and not read are lost.
 *
 * Record: u32 n, then n x {u32 wd, u32 mask (as the kernel shows it, with IN_DONT_FOLLOW if the
 * watch was added so), u64 dev, u64 ino (the watched inode, st_dev/st_ino), path (str,
 * absolute)}, by increasing wd.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "km_fd_admit.h"
#include "km_fdtab.h"
#include "km_inotify_paths.h"
#include "km_sys_util.h"

#define WD_MAX (1u << 20)      /* a program that went through more watches than this: refused */
#define WATCHES_MAX (1u << 16)
#define IN_MASK_OK ((uint32_t)(IN_ALL_EVENTS | IN_ONESHOT | IN_EXCL_UNLINK | IN_DONT_FOLLOW))

typedef struct watch {
	uint32_t wd, mask;
	uint64_t dev, ino;
	const char *path; /* into the record, or (saving) malloc'd */
} watch_t;

static bool inotify_match(struct km_guest *g, const km_fdprobe_t *p)
{
	(void)g;
	return strcmp(p->link, "anon_inode:inotify") == 0;
}

static int by_wd(const void *a, const void *b)
{
	const watch_t *x = a, *y = b;
	return x->wd < y->wd ? -1 : x->wd > y->wd;
}

static void free_watches(watch_t *w, uint32_t n)
{
	for (uint32_t i = 0; w != NULL && i < n; i++)
		free((char *)w[i].path);
	free(w);
}

/* One fdinfo line "inotify wd:N ino:X sdev:Y mask:M ..." into *w (path looked up). -1 with *err,
 * 1 with *err (no known path: unsupported), 0. */
static int parse_watch(km_guest_t *g, const char *l, watch_t *w, km_err_t **err)
{
	int wd;
	unsigned long ino;
	unsigned int sdev, mask;
	if (sscanf(l, "inotify wd:%d ino:%lx sdev:%x mask:%x", &wd, &ino, &sdev, &mask) != 4 || wd <= 0)
		return km_err_set(err, 0, "its fdinfo is not what km reads");
	/* the kernel shows its own device encoding, major << 20 | minor */
	dev_t dev = makedev(sdev >> 20, sdev & 0xfffff);
	char path[KM_PATH_MAX];
	uint32_t flags;
	if (!km_inotify_path(g, dev, (ino_t)ino, path, sizeof(path), &flags)) {
		km_err_set(err, 0, "inotify watch %d (inode %lu) has no name km knows that still leads to it "
				   "(renamed, or removed and made again)", wd, ino);
		return 1;
	}
	*w = (watch_t){(uint32_t)wd, mask | flags, (uint64_t)dev, (uint64_t)ino, strdup(path)};
	return w->path == NULL ? km_err_set(err, ENOMEM, "inotify watch %d", wd) : 0;
}

static int inotify_save(km_fdsave_t *sv, const km_fdprobe_t *p, km_buf_t *rec, km_err_t **err)
{
	watch_t *w = NULL;
	uint32_t n = 0;
	int rc = 0;
	for (const char *l = p->fdinfo; rc == 0 && l != NULL && *l != '\0'; l = strchr(l, '\n'), l = l != NULL ? l + 1 : NULL) {
		if (strncmp(l, "inotify wd:", 11) != 0)
			continue;
		watch_t *grown = realloc(w, (n + 1) * sizeof(*w));
		if (grown == NULL) {
			rc = km_err_set(err, ENOMEM, "its watches");
			break;
		}
		w = grown;
		rc = parse_watch(km_fdsave_guest(sv), l, &w[n], err);
		n += rc == 0;
	}
	if (rc == 0) {
		qsort(w, n, sizeof(*w), by_wd);
		km_rec_put_u32(rec, n);
		for (uint32_t i = 0; i < n; i++) {
			km_rec_put_u32(rec, w[i].wd);
			km_rec_put_u32(rec, w[i].mask);
			km_rec_put_u64(rec, w[i].dev);
			km_rec_put_u64(rec, w[i].ino);
			km_rec_put_str(rec, w[i].path);
		}
	}
	free_watches(w, n);
	return rc;
}

/* The record's watches (paths point into it), or NULL if the record is bad. */
static watch_t *read_watches(const km_fdrec_t *r, uint32_t *n)
{
	km_rec_t rec = {.p = r->data, .len = r->len};
	*n = km_rec_get_u32(&rec);
	/* a watch takes at least 30 bytes of record: a count the record cannot hold is a lie */
	if (rec.bad || *n > WATCHES_MAX || *n > r->len / 30)
		return NULL;
	watch_t *w = calloc(*n + 1, sizeof(*w));
	for (uint32_t i = 0; w != NULL && i < *n && !rec.bad; i++) {
		w[i].wd = km_rec_get_u32(&rec);
		w[i].mask = km_rec_get_u32(&rec);
		w[i].dev = km_rec_get_u64(&rec);
		w[i].ino = km_rec_get_u64(&rec);
		w[i].path = km_rec_get_str(&rec, KM_PATH_MAX);
		if (w[i].wd == 0 || w[i].wd > WD_MAX || (i > 0 && w[i].wd <= w[i - 1].wd) ||
		    (w[i].mask & ~IN_MASK_OK) != 0 || (w[i].mask & IN_ALL_EVENTS) == 0 || w[i].path == NULL ||
		    w[i].path[0] != '/')
			rec.bad = true;
	}
	if (w != NULL && !km_rec_done(&rec)) {
		free(w);
		w = NULL;
	}
	return w;
}

/* Adds watch w to fd with wd w->wd (last: the wd of the watch before it, 0 for none). */
static int add_watch(km_guest_t *g, int fd, const watch_t *w, uint32_t last, km_err_t **err)
{
	long adm = km_path_admit(g, AT_FDCWD, w->path, true);
	if (adm < 0)
		return km_err_set(err, (int)-adm, "watch %u: %s is not for the program to watch", w->wd, w->path);
	for (;;) {
		int got = inotify_add_watch(fd, w->path, w->mask);
		if (got < 0)
			return km_err_set(err, errno, "watching %s", w->path);
		if ((uint32_t)got <= last || (uint32_t)got > w->wd)
			return km_err_set(err, 0, "the watched %s changed (it is now watch %d, not %u)", w->path, got,
					  w->wd);
		if ((uint32_t)got == w->wd)
			break;
		/* a number the program's removed watches used: taken and given back */
		if (inotify_rm_watch(fd, got) < 0)
			return km_err_set(err, errno, "skipping watch number %d", got);
	}
	struct stat st;
	if (fstatat(AT_FDCWD, w->path, &st, (w->mask & IN_DONT_FOLLOW) ? AT_SYMLINK_NOFOLLOW : 0) < 0 ||
	    (uint64_t)st.st_dev != w->dev || (uint64_t)st.st_ino != w->ino)
		return km_err_set(err, 0, "the watched %s changed", w->path);
	km_inotify_note(g, w->path, w->mask);
	return 0;
}

static int inotify_restore(km_fdrest_t *rs, const km_fdrec_t *r, km_err_t **err)
{
	uint32_t n;
	watch_t *w = read_watches(r, &n);
	if (w == NULL || (r->oflags & ~(uint32_t)O_NONBLOCK) != O_RDONLY) {
		free(w);
		return km_err_set(err, 0, "corrupt record");
	}
	int fd = inotify_init1(IN_CLOEXEC | ((r->oflags & O_NONBLOCK) ? IN_NONBLOCK : 0));
	int rc = fd < 0 ? km_err_set(err, errno, "inotify_init1") : 0;
	for (uint32_t i = 0; i < n && rc == 0; i++)
		rc = add_watch(km_fdrest_guest(rs), fd, &w[i], i > 0 ? w[i - 1].wd : 0, err);
	free(w);
	if (rc < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static void put_mask(km_buf_t *out, uint32_t m)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} names[] = {{IN_ACCESS, "in_access"},   {IN_MODIFY, "in_modify"},         {IN_ATTRIB, "in_attrib"},
		     {IN_CLOSE_WRITE, "in_close_write"}, {IN_CLOSE_NOWRITE, "in_close_nowrite"},
		     {IN_OPEN, "in_open"},       {IN_MOVED_FROM, "in_moved_from"}, {IN_MOVED_TO, "in_moved_to"},
		     {IN_CREATE, "in_create"},   {IN_DELETE, "in_delete"},         {IN_DELETE_SELF, "in_delete_self"},
		     {IN_MOVE_SELF, "in_move_self"}, {IN_ONESHOT, "in_oneshot"},   {IN_EXCL_UNLINK, "in_excl_unlink"},
		     {IN_DONT_FOLLOW, "in_dont_follow"}};
	if ((m & IN_ALL_EVENTS) == IN_ALL_EVENTS) {
		km_buf_printf(out, "in_all_events");
		m &= ~(uint32_t)IN_ALL_EVENTS;
		if (m != 0)
			km_buf_printf(out, ",");
	}
	const char *sep = "";
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (m & names[i].bit) {
			km_buf_printf(out, "%s%s", sep, names[i].name);
			sep = ",";
		}
}

static void inotify_describe(const km_fdrec_t *r, km_buf_t *out)
{
	uint32_t n;
	watch_t *w = read_watches(r, &n);
	if (w == NULL) {
		km_buf_printf(out, "(corrupt record)");
		return;
	}
	km_buf_printf(out, "%u watch%s%s", n, n == 1 ? "" : "es", n > 0 ? ":" : "");
	for (uint32_t i = 0; i < n; i++) {
		km_buf_printf(out, "%s wd %u %s ", i > 0 ? ";" : "", w[i].wd, w[i].path);
		put_mask(out, w[i].mask);
	}
	free(w);
}

const km_fdkind_t km_fdkind_inotify = {
    .kind = KM_FDK_INOTIFY,
    .name = "inotify",
    .match = inotify_match,
    .save = inotify_save,
    .restore = inotify_restore,
    .describe = inotify_describe,
};
